/*
 * gie_style: a C model of the flow-control engine of the Gateway API
 * Inference Extension (GIE) as it stood at bca878b3, the last sharded design
 * (reference/gie-flowcontrol.md). It is the peer BM_gie_style_e2e measures
 * flowq against (bench_gie.c); it is benchmark code, not part of libflowq.
 *
 * The point is to measure GIE's *design* (its locks, its O(flows) best-head
 * scan, one dispatch per cycle), not Go against C: every lock, lookup, scan
 * and counter update that GIE performs per request and per decision is
 * performed here too, in C, with the same structure. What is left out is
 * listed below, each omission making this peer cheaper than GIE, so ratios
 * of flowq against it are conservative.
 *
 * What is modelled, and where it comes from (GIE paths relative to
 * pkg/epp/flowcontrol/ unless noted; § = reference/gie-flowcontrol.md):
 *
 *   GIE                                        here
 *   -----------------------------------------  ---------------------------------
 *   FlowRegistry/registryShard (registry/       one registry rwlock over a chained
 *   registry.go, shard.go; §4.1): the shard     hash table (flow key -> flow, the
 *   RWMutex is read-locked by ManagedQueue(),   submit-side lookup) and, per band
 *   PriorityBandAccessor(), Stats() and         and shard, a hash map of its flows
 *   IterateQueues(); each band keeps its        (priorityBand.queues); read-locked
 *   flows in a map (priorityBand.queues);       for every lookup on submit and on
 *   JIT flow creation (§4.2 step 3,             enqueue, every band accessor, stats
 *   synchronizeFlow) takes it for writing       read and pick; write-locked to
 *                                               create a flow
 *   PriorityBandAccessor() returns a proxy      one malloc'd proxy per call (per
 *   allocated per call                          band per cycle, once per enqueue)
 *   Lease for the whole request (WithConnec-    submit pins the flow (lease count
 *   tion, pin under the flow state's mutex;     under the flow's lease mutex);
 *   §4.2, 194cc332)                             gie_style_done() unpins it
 *   ManagedQueue (registry/managedqueue.go,     per flow: an intrusive doubly
 *   §3.5) over ListQueue (framework/plugins/    linked list under the flow's
 *   queue/listqueue.go, §3.2): mutations        mutex; len/bytes atomics written
 *   under a mutex, Len() lock-free, PeekHead()  under it, read without it; the
 *   under the list's lock                       head read under it
 *   Three-level stats propagation (§1.7)        every add/remove updates the
 *                                               flow's, band's, shard's and
 *                                               registry's len and bytes
 *   enqueueChan, buffered max(2000/S, 10) in    per shard a hand-off list under a
 *   GIE's benchmark (§6); Submit, then          mutex with two condvars, same
 *   SubmitOrBlock when full (§5.2)              capacity; a full list blocks the
 *                                               submitter until there is room
 *   ShardProcessor.Run (controller/internal/    one processor thread per shard:
 *   processor.go; §5.3, §1.11): per select,     take at most one arrival, move it
 *   one arrival -> enqueue() + dispatch-        into its flow's queue, run one
 *   Cycle(), or a tick -> dispatchCycle()       dispatch cycle; repeat
 *   enqueue(): ManagedQueue(key) lookup, band   the same steps: lookup under the
 *   lookup, hasCapacity() from shard.Stats()    read lock, band under the read
 *   (read lock plus a per-band map built on     lock, a per-band stats snapshot
 *   every call; §1.8), ManagedQueue.Add()       malloc'd and filled under the
 *                                               read lock, add under the flow mutex
 *   dispatchCycle() (§1.10): saturation once    the same loop; the detector is
 *   per cycle, bands highest first, usage       one of GIE's benchmark detectors
 *   ceiling, Pick, PeekHead, Remove, finalize;  (§6): free flow (always 0.0),
 *   at most ONE item per cycle                  benchDetector (reserves one of
 *                                               max_inflight slots per cycle:
 *                                               0.99, or 1.0 when none is
 *                                               left; gie_style_release() gives
 *                                               it back) or alwaysSaturated-
 *                                               Detector (1.0); the ceiling the
 *                                               static policy's 1.0
 *   Client cancellation (§1.4: the context      gie_style_cancel(): one CAS on
 *   ends, Finalize(cause) through sync.Once,    the item's state, EVICTED_CANCEL-
 *   inferOutcome by whether the handle is set)  LED if it is queued, else
 *                                               REJECTED_OTHER; the item stays in
 *                                               its queue as a zombie
 *   Zombies: the cleanup sweep every Expiry-    one sweeper thread per shard
 *   CleanupInterval removes finalized items     every sweep_interval_ns: under
 *   (§5.3); a zombie met at a head is removed   each non-empty queue's lock,
 *   by dispatchItem and the cycle counts as a   finalized items are unlinked;
 *   dispatch; a finalized item still in the     the dispatch cycle and the
 *   hand-off is discarded by enqueue()          hand-off take do the same
 *   Lease-based flow GC (registry Run, §4.3):   a GC thread every flow_gc_-
 *   every FlowGCTimeout, an unleased flow idle  timeout_ns: marks (under the
 *   for a timeout is marked (pins then fail     read lock, each flow's lease
 *   and retry) and deleted from the map and     mutex) then unlinks (under the
 *   from every shard under the write lock       write lock) flows idle that long
 *   global-strict Pick (framework/plugins/      under the read lock, the band's map
 *   flowcontrol/fairness/globalstrict; §2.3)    is iterated and one accessor per
 *   over IterateQueues() (registry/shard.go):   flow is malloc'd into a malloc'd
 *   under the read lock, range over the         slice; then for EVERY flow:
 *   band's map appending mq.FlowQueue-          len == 0 -> skip (atomic load
 *   Accessor(), a new proxy per flow until      through the accessor), else its
 *   1edb6040; then per queue: Len() == 0 ->     head under its mutex; best =
 *   skip, else PeekHead(); keep the best by     earliest enqueue time; the
 *   the FCFS Less (enqueue time)                accessors and slice are freed
 *   FlowItem finalization via sync.Once         one CAS on the item's state word;
 *   (controller/internal/item.go; §1.4)         the winner calls the completion
 *   enqueueTime = clock.Now() at                the engine clock read per submit
 *   EnqueueAndWait entry (§1.4)
 *   dispatch_cycle_duration histogram per       two clock reads and a histogram
 *   cycle (§8.1)                                observe (three atomic adds)
 *   Shutdown (§5.3)                             hand-off items REJECTED_OTHER,
 *                                               queued ones EVICTED_OTHER
 *
 * The dispatch ticker (§1.11, 94b2fa02). GIE runs a dispatch cycle on each
 * arrival and on a 1 ms tick, so a backlog with no arrivals drains at about
 * 1000 items/s per shard. This model does NOT keep the ticker: when a cycle
 * dispatched something and no item is waiting in the hand-off, the
 * processor runs the next cycle at once (the busy loop GIE had before the
 * ticker, fb2dfd83), and it sleeps on the hand-off's condvar only when a
 * cycle found nothing to do. That is GIE's best case for throughput: the
 * benchmark measures the per-decision cost, not the ticker. At L = 0 (no
 * saturation) the ticker would only ever be needed while idle.
 *
 * Sharding. GIE's sharded era put every flow on every shard and chose a
 * shard per request by JSQ-Bytes (an O(S log S) sort per request, §5.2), so
 * each processor's scan covered all F flows. Here flows are partitioned by
 * hash (flow affinity, as flowq does), so at S = 2 each processor scans
 * about F / 2 flows: cheaper than GIE.
 *
 * What a decision costs, and why. GIE's loop takes one arrival and runs one
 * cycle, which dispatches one item; with arrivals waiting, the flow queues
 * therefore hold about one item and the backlog sits in the hand-off
 * (measured: one head peeked per decision), so a decision is dominated by
 * the walk over every registered flow of the band: map iteration, one
 * accessor allocated per flow, a Len() load through it. Measured on this
 * project's 2-vCPU machine (processor CPU per decision, P = 1, S = 1,
 * K = 1, median of 3, another process busy on one CPU): 11.2 us at 1000
 * flows and 0.88 ms at 50 000 (runs from 0.68 to 1.16 ms; up to 22 us and
 * 1.04 ms with both CPUs contended); the issue estimates about 9 us and
 * 0.5 ms. With the accessors pre-allocated, as GIE did after 1edb6040:
 * 5.5 us and 0.26 ms (contended run). Go's map
 * iteration and interface calls are not reproduced beyond that, so the
 * model's walk is, if anything, cheaper per flow than Go's.
 *
 * Timing that differs from GIE, each in the peer's favour or neutral. The
 * dispatch ticker (above). A gie_style_release() wakes a processor whose
 * last cycle met a closed gate (GIE's processor notices a release only at
 * its next tick or arrival; the model also keeps a 1 ms tick while gated, so
 * the gate is never slower than GIE's). A cycle that reserved a benchDetector
 * slot and dispatched nothing (or only removed a zombie) gives the slot back
 * (GIE's benchmark detector leaks it). The completion of a cancelled item
 * runs when the engine unlinks it (sweep, head, hand-off), since its memory
 * is the caller's again only then (Go's garbage collector keeps a zombie
 * alive for free); its outcome is decided at the cancel, as in GIE. A flow
 * is pinned under the registry read lock rather than pinned and then looked
 * up again (Go's CAS loop, §4.2). The GC walks the registry under its read
 * lock (Go ranges over a sync.Map without one), which only delays flow
 * creation, and frees a collected flow on its shard's processor once no
 * pick can still see it.
 *
 * Not modelled (each one would only make this peer slower): the Go runtime (a
 * goroutine blocked per request, channel hand-offs, garbage collection);
 * per-request allocations (FlowItem, a context with a deadline timer per
 * request, ListQueue's list element and handle per Add: 224 B and 5
 * allocations per op in GIE's own queue benchmark, §3.6); the labelled
 * per-request Prometheus metrics (queue_size and queue_bytes gauges,
 * request_queue_duration, enqueue_duration, each a label-hash lookup); logr
 * WithValues per band per cycle; JSQ-Bytes and the replication of flows on
 * every shard; the sync.Map loads around the lease pin; the second lock per
 * mutation (ManagedQueue.mu and the ListQueue's own lock; one mutex here);
 * the ordering-policy type check per non-empty queue in Pick; TTLs, band
 * GC and the processor reconcile loop (all idle in GIE's own benchmark,
 * §6); the sweep's pool of up to 4 goroutines per shard (one thread walks).
 *
 * Synchronization table ("-": may run concurrently from any threads; "X":
 * the caller must serialize the pair):
 *
 *                  create destroy flow_ensure submit done cancel release stats check
 *      create        -      X         X         X     X     X      X       X     X
 *      destroy       X      X         X         X     X     X      X       X     X
 *      flow_ensure   X      X         -         -     -     -      -       -     X
 *      submit        X      X         -         -     -     -      -       -     X
 *      done          X      X         -         -     -     -      -       -     X
 *      cancel        X      X         -         -     -     -      -       -     X
 *      release       X      X         -         -     -     -      -       -     X
 *      stats         X      X         -         -     -     -      -       -     -
 *      check         X      X         X         X     X     X      X       -     X
 *
 * Completions run on the processor threads and, for swept zombies, on the
 * sweeper threads. gie_style_check() needs a quiescent engine: no submit in
 * flight and every completion delivered.
 */
#ifndef FLOWQ_BENCH_GIE_STYLE_H
#define FLOWQ_BENCH_GIE_STYLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/** Most shards (processors). */
#define GIE_STYLE_MAX_SHARDS 16u
/** Most priority bands. */
#define GIE_STYLE_MAX_BANDS 64u
/** Longest flow id, bytes. */
#define GIE_STYLE_FLOW_ID_MAX 256u

struct gie_style_engine;
struct gie_style_flow;
struct gie_style_item;

/** What happened to a submitted item (GIE's QueueOutcome, §1.5). */
enum gie_style_outcome {
	/** Not decided yet. */
	GIE_STYLE_PENDING = 0,
	GIE_STYLE_DISPATCHED,
	/** The processor's capacity check failed (reported asynchronously, as
	 * in GIE: the check runs after the hand-off). */
	GIE_STYLE_REJECTED_CAPACITY,
	/** Never queued: shutdown while in the hand-off, flow vanished. */
	GIE_STYLE_REJECTED_OTHER,
	/** Was queued; removed at shutdown. */
	GIE_STYLE_EVICTED_OTHER,
	/** Was queued; the client cancelled it (GIE: EvictedContextCancelled;
	 * a cancel before the item was queued gives REJECTED_OTHER). */
	GIE_STYLE_EVICTED_CANCELLED,
	GIE_STYLE_OUTCOME_COUNT
};

/**
 * Completion: @p item got @p outcome and the engine no longer holds it. Runs
 * on a processor (or sweeper) thread, exactly once per submitted item; must
 * be short and must not call into the engine. The item is the caller's
 * again once this is called, except that gie_style_done() must still be
 * called for it. For a cancelled item it runs when the item leaves its
 * queue (the sweep, or a dispatch cycle meeting it at the head), not at the
 * cancel.
 */
typedef void
gie_style_complete_fn(struct gie_style_item *item, enum gie_style_outcome outcome,
		      void *arg);

/** An item (GIE's FlowControlRequest plus its FlowItem), caller-owned. */
struct gie_style_item {
	/* Caller fields: set before gie_style_submit(). */
	/** Flow id bytes (GIE: FlowKey.ID). */
	const void *flow_id;
	uint32_t flow_id_len;
	/** FlowKey.Priority: higher is more important. */
	int32_t priority;
	/** ByteSize(). */
	uint64_t bytes;
	/** Completion; required. */
	gie_style_complete_fn *complete;
	void *arg;

	/* Private: owned by the engine from submit to gie_style_done(). */
	struct {
		/* Hand-off list or flow queue links. */
		struct gie_style_item *next;
		struct gie_style_item *prev;
		/* The flow pinned by submit (the lease). */
		struct gie_style_flow *lease;
		/* The flow queue holding the item, or NULL. */
		struct gie_style_flow *queue;
		/* GIE's handle != nil: set (release) once the item is queued,
		 * read by a canceller to infer its outcome. */
		_Atomic bool queued;
		/* EnqueueTime(): the engine clock at submit, ns. */
		int64_t enqueue_ns;
		/* enum gie_style_outcome; PENDING until finalized (one CAS). */
		_Atomic uint32_t state;
	} priv;
};

/** Engine configuration; gie_style_config_init() fills the defaults. */
struct gie_style_config {
	/** Shards, one processor thread each: 1..GIE_STYLE_MAX_SHARDS. */
	unsigned shards;
	/** Priorities of the bands (unique, any order): 1..GIE_STYLE_MAX_BANDS
	 * of them. Copied. */
	const int32_t *priorities;
	size_t npriorities;
	/** Global limits (GIE Config.MaxBytes, MaxRequests); 0 = unlimited.
	 * Partitioned over the shards as GIE does (§4.4). */
	uint64_t max_bytes;
	uint64_t max_requests;
	/** Per-band limits, every band; 0 = unlimited. Partitioned too. */
	uint64_t band_max_bytes;
	uint64_t band_max_requests;
	/** Hand-off capacity per shard; 0 = max(2000 / shards, 10), GIE's
	 * benchmark setting (§6). */
	unsigned handoff_capacity;
	/** GIE's benchDetector (§6): at most this many dispatched items not
	 * yet released (gie_style_release()); 0 = free flow (saturation
	 * always 0.0, the default). */
	uint64_t max_inflight;
	/** GIE's alwaysSaturatedDetector (§6): nothing is ever dispatched
	 * (overrides max_inflight). */
	bool always_saturated;
	/** Flow GC (§4.3): every this many ns, flows without a lease that
	 * have been idle this long are collected; 0 = never (the default;
	 * GIE's is 5 min, i.e. never within a benchmark). */
	int64_t flow_gc_timeout_ns;
	/** Cleanup sweep (§5.3): every this many ns each shard's finalized
	 * (cancelled) items are removed from the queues; 0 = no sweep (the
	 * default, as GIE's benchmark's 1 h; cancelled items then leave only
	 * at a head or at shutdown). */
	int64_t sweep_interval_ns;
};

/** Counters, summed over the shards. */
struct gie_style_stats {
	/** Items the processors took from their hand-offs. */
	uint64_t received;
	/** Outcomes delivered, by outcome. */
	uint64_t outcomes[GIE_STYLE_OUTCOME_COUNT];
	/** Queued now: registry-level len and bytes. */
	uint64_t queued;
	uint64_t queued_bytes;
	/** Dispatch cycles run, and those that dispatched nothing. */
	uint64_t cycles;
	uint64_t idle_cycles;
	/** Flows whose Len() a global-strict pick read, and heads peeked. */
	uint64_t flows_scanned;
	uint64_t heads_peeked;
	/** Submits that found the hand-off full and blocked. */
	uint64_t blocked_submits;
	/** Cycles that stopped at a closed gate (saturation >= ceiling). */
	uint64_t gated_cycles;
	/** Cancelled items removed by the sweep, met at a head by a cycle,
	 * and discarded from the hand-off. */
	uint64_t swept;
	uint64_t zombie_heads;
	uint64_t zombie_handoffs;
	/** Flows created (JIT or flow_ensure) and collected by the GC. */
	uint64_t flows_created;
	uint64_t flows_collected;
	/** CPU time of the processor threads so far, ns. */
	uint64_t processor_cpu_ns;
	/** Registered flows. */
	uint64_t flows;
};

/** Defaults: 1 shard, no bands (set them), no limits, GIE's hand-off size. */
void
gie_style_config_init(struct gie_style_config *cfg);

/**
 * Create an engine and start its processor threads.
 *
 * @return 0; -EINVAL bad configuration or NULL; -ENOMEM; -EAGAIN a thread
 *         could not be started. Nothing is left allocated on failure.
 * Context: any thread. May block.
 */
int
gie_style_create(const struct gie_style_config *cfg, struct gie_style_engine **r_engine);

/**
 * Stop the processors (items in a hand-off complete REJECTED_OTHER, queued
 * ones EVICTED_OTHER, on the processors, before this returns) and free
 * everything. Context: not a processor; no other call may run concurrently.
 */
void
gie_style_destroy(struct gie_style_engine *e);

/**
 * Register the flow (@p id, @p priority) if it does not exist yet, as a
 * request of a new flow would (JIT, §4.2), without submitting anything: a
 * benchmark registers all its flows before it measures, since GIE's scan
 * covers every registered flow, backlogged or not.
 *
 * @return 0; -EINVAL bad id; -ENOENT no band for @p priority; -ENOMEM.
 */
int
gie_style_flow_ensure(struct gie_style_engine *e, const void *id, uint32_t id_len,
		      int32_t priority);

/**
 * Submit @p item: look its flow up (creating it if new), pin it, stamp the
 * enqueue time and hand the item to its shard's processor, blocking while
 * that hand-off is full (GIE's SubmitOrBlock).
 *
 * @return 0: exactly one completion follows (DISPATCHED, or a REJECTED_* or
 *         EVICTED_* outcome decided by the processor); then call
 *         gie_style_done(). -EINVAL bad id or no completion; -ENOENT no band
 *         for the priority; -ENOMEM; -ESHUTDOWN engine stopping. On error no
 *         completion fires and gie_style_done() must not be called.
 * Context: any thread but a processor. May block (full hand-off).
 */
int
gie_style_submit(struct gie_style_engine *e, struct gie_style_item *item);

/**
 * The waiter's side after its completion: drop the flow lease (GIE:
 * WithConnection's deferred unpin once EnqueueAndWait returns).
 *
 * @return 0; -EINVAL if @p item has no outcome yet.
 * Context: any thread, after @p item's completion ran.
 */
int
gie_style_done(struct gie_style_engine *e, struct gie_style_item *item);

/**
 * The client gives up on @p item (its context ended: GIE's Finalize(cause)
 * from EnqueueAndWait, §1.4): if the item has no outcome yet it gets
 * EVICTED_CANCELLED when it is queued, REJECTED_OTHER while it is still in
 * the hand-off (GIE's inferOutcome). The item stays where it is until the
 * engine removes it (a zombie, §1.4); its completion runs then.
 *
 * @return 0 if this call decided the outcome; -EALREADY if an outcome was
 *         decided already; -EINVAL NULL argument.
 * Context: any thread, between a successful submit and gie_style_done().
 * Ordering: the outcome is published by the CAS (acq_rel); the completion
 * happens-after it. Progress: wait-free (one load, one CAS).
 */
int
gie_style_cancel(struct gie_style_engine *e, struct gie_style_item *item);

/**
 * The client is done with a dispatched item: give its benchDetector slot
 * back (GIE benchmark's detector.Release()); a no-op without max_inflight.
 * Wakes a processor whose last cycle met the closed gate.
 *
 * Context: any thread. Progress: lock-free unless a processor waits on the
 * gate (then one mutex per waiting shard).
 */
void
gie_style_release(struct gie_style_engine *e);

/** Fill @p r_stats. Context: any thread. */
void
gie_style_stats(struct gie_style_engine *e, struct gie_style_stats *r_stats);

/**
 * Conservation self-check of a quiescent engine: hand-offs empty, every
 * flow, band, shard and the registry at zero length and bytes, no lease
 * held, and every item received has exactly one outcome.
 *
 * @return 0, or -1 with a message in @p msg.
 */
int
gie_style_check(struct gie_style_engine *e, char *msg, size_t len);

#endif /* FLOWQ_BENCH_GIE_STYLE_H */
