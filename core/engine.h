/*
 * Internal: the engine's data structures, shared by engine.c (create,
 * destroy, bands, stats), registry.c (flows, RCU), submit.c (the host-facing
 * request calls) and dispatch.c (the shard dispatcher).
 *
 * Who writes what (STYLE rule 6; every line's writer is named below):
 *  - producers (host threads in flowq_submit/flowq_cancel/flowq_release)
 *    write a flow's inbox tail and lease line, a shard's doorbell and cancel
 *    queues, the capacity pools, and rejection counters (slow path);
 *  - a shard's dispatcher writes everything else of its shard and of its
 *    flows: private queues, policy state, statistics (single writer);
 *  - the engine's configuration, bands' settings and the shard array are
 *    read-only once published.
 *
 * Wake-up handshake (DESIGN.md invariant 5; the no-lost-wake-up argument):
 *  A dispatcher about to sleep stores shard->sleeping = 1 (seq_cst), then
 *  re-checks every source of work (doorbell, cancel queue, stop flag, the
 *  capacity gate it waits for, the band hint and the debt a collected band
 *  left: registry.c); only if all are empty does it sleep on the
 *  futex word shard->sleeping while it still reads 1. A waker publishes its
 *  work first (an atomic RMW on a queue tail, or a capacity release), then
 *  issues a seq_cst fence [W1] and loads shard->sleeping; if it reads 1 it
 *  takes it to 2 (CAS) and wakes the futex; if it reads 2 (another waker
 *  took it, and the dispatcher has not stored 0 since) it wakes the futex
 *  too, so a waker preempted before its FUTEX_WAKE cannot keep the
 *  dispatcher asleep (dispatch.c, flowq__shard_wake()); a waker whose
 *  FUTEX_WAKE returned takes 2 to 3, and a waker that reads 3 does nothing
 *  (the dispatcher's wait has returned or returns at once). Only the
 *  dispatcher stores 0, once it is awake. These are the word's state bits;
 *  the bits above them count the sleeps, so that a late 2 -> 3 cannot mark
 *  a later sleep's wake as made. Polled mode follows the same rule with the
 *  shard's eventfd for the futex: a poll that leaves the shard idle stores
 *  1 (a new generation) and re-checks; every waker that reads 1 or 2 writes
 *  the fd, one whose write returned takes 2 to 3; only flowq_shard_poll()
 *  stores 0 (dispatch.c).
 *  Both sides execute "store (or RMW) own flag, seq_cst fence, load the
 *  other's": by the seq_cst total order at least one of them sees the
 *  other's write, so either the dispatcher sees the work and does not sleep,
 *  or the waker sees sleeping == 1 and wakes it. futex_wait() itself returns
 *  at once if the word is no longer 1, closing the window between the check
 *  and the sleep.
 */
#ifndef FLOWQ_CORE_ENGINE_H
#define FLOWQ_CORE_ENGINE_H

/* States of flowq__shard.sleeping (the wake-up handshake above): the low
 * two bits. The bits above them hold the sleep's generation
 * (FLOWQ__SLEEP_GEN per sleep, or per armed poll; dispatch.c,
 * flowq__shard_wake()). */
/*
 * A shard's doorbell is FLOWQ__BELLS queues of flows, which the intake
 * empties in lockstep (flowq_mpsc_dequeue_lockstep()). With one queue the
 * intake of a backlog of cold flows was a chain of misses, one flow after
 * another, since each flow's link is on its own producer line (bench/ENGINE-LOG.md,
 * "Session 17"). A producer thread rings one queue of the shard until it
 * has rung FLOWQ__BELL_RUN times in a row into a queue the dispatcher had
 * not emptied, then moves to the next (flowq__flow_ring(); the thread
 * keeps this placement per shard, so its rings into one shard do not move
 * it in another): a backlog is spread over the queues in runs, while a
 * producer the dispatcher keeps up with stays on one queue, so a round
 * finds its rings on one line, as with a single queue.
 */
#define FLOWQ__BELLS    8u
#define FLOWQ__BELL_RUN 8u

#define FLOWQ__SLEEP_AWAKE  0u
#define FLOWQ__SLEEP_ASLEEP 1u
/* A waker took the word; the dispatcher (or, polled, the next poll) has not
 * yet stored AWAKE. */
#define FLOWQ__SLEEP_WOKEN  2u
/* A waker's wake for this generation has returned (threaded: FUTEX_WAKE,
 * the dispatcher is runnable; polled: the eventfd write, the fd is
 * readable); later wakers make no system call. */
#define FLOWQ__SLEEP_SENT  3u
#define FLOWQ__SLEEP_STATE 3u
#define FLOWQ__SLEEP_GEN   4u

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef FLOWQ_TSAN
/* liburcu's small functions inline without requiring LGPL terms for the
 * caller (liburcu README); TSan builds call the library instead so that
 * the suppressions in tests/stress/tsan.supp match (ecosystem notes C.3). */
#define URCU_INLINE_SMALL_FUNCTIONS
#endif
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "capacity.h"
#include "coalesce.h"
#include "hist.h"

#ifdef FLOWQ_TSAN
#include <sanitizer/tsan_interface.h>
/* Hand-offs through liburcu 0.13, which TSan cannot see (no annotations
 * before 0.15): a release before publishing, an acquire after obtaining. */
#define FLOWQ_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define FLOWQ_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define FLOWQ_TSAN_RELEASE(p) ((void)(p))
#define FLOWQ_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* Relaxed single-writer counter bump: no locked instruction (the writer is
 * the only thread that stores), readers load relaxed. */
static inline void
flowq__bump(_Atomic uint64_t *w, uint64_t by)
{
	atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

/* req->priv.dflags: written by the submitter before [T4] (RF_DEADLINE),
 * then only by the dispatcher of the request's shard. */
#define FLOWQ__RF_IN_PRIVATE 0x1u /* in the flow's ordering structure */
#define FLOWQ__RF_IN_TTL     0x2u /* in the shard's TTL heap */
#define FLOWQ__RF_UNLINKED   0x4u /* decided by another thread and unlinked */
#define FLOWQ__RF_CANCEL_MSG 0x8u /* the cancel message was received */
#define FLOWQ__RF_DEADLINE   0x10u /* the expiry is the caller's deadline */

/* Outcome counters of one scope, written by one dispatcher. */
struct flowq__counters {
	_Atomic uint64_t causes[FLOWQ_OUTCOME_COUNT][FLOWQ_CAUSE_COUNT];
	/* Requests (and bytes) that left a queue with an outcome. */
	_Atomic uint64_t left;
	_Atomic uint64_t left_bytes;
	/* Bytes of the requests dispatched (in-flight accounting). */
	_Atomic uint64_t dispatched_bytes;
	struct flowq__hist queue_time;
};

/*
 * A flow's counters, kept small because flows can be many (50,000 flows x
 * the band-level set would be ~90 MB, and the dispatcher touches a flow's
 * counters per request: at many flows they decide the cache misses). The
 * outcomes a dispatcher decides come in six (outcome, cause) pairs
 * (flowq__flow_pair()); queue time is kept as count and sum (the mean):
 * histograms are per band and engine.
 */
enum {
	FLOWQ__FP_DISPATCHED = 0, /* DISPATCHED, NONE */
	FLOWQ__FP_TTL,		  /* EVICTED_TTL, TTL_EXPIRED */
	FLOWQ__FP_DEADLINE,	  /* EVICTED_TTL, DEADLINE_PASSED */
	FLOWQ__FP_CANCELLED,	  /* EVICTED_CANCELLED, CANCELLED */
	FLOWQ__FP_DISPLACED,	  /* EVICTED_DISPLACED, DISPLACED */
	FLOWQ__FP_SHUTDOWN,	  /* EVICTED_OTHER, SHUTDOWN */
	FLOWQ__FP_COUNT
};

struct flowq__flow_counters {
	_Atomic uint64_t pairs[FLOWQ__FP_COUNT];
	_Atomic uint64_t left;
	_Atomic uint64_t left_bytes;
	_Atomic uint64_t qt_count;
	_Atomic uint64_t qt_sum_ns;
};

/** The FLOWQ__FP_* index of a dispatcher-decided (outcome, cause) pair;
 * -1 for any other pair (rejections are counted in flowq__rejects). */
static inline int
flowq__flow_pair(enum flowq_outcome o, enum flowq_cause c)
{
	switch (o) {
	case FLOWQ_DISPATCHED:
		return c == FLOWQ_CAUSE_NONE ? FLOWQ__FP_DISPATCHED : -1;
	case FLOWQ_EVICTED_TTL:
		return c == FLOWQ_CAUSE_TTL_EXPIRED	  ? FLOWQ__FP_TTL
		       : c == FLOWQ_CAUSE_DEADLINE_PASSED ? FLOWQ__FP_DEADLINE
							  : -1;
	case FLOWQ_EVICTED_CANCELLED:
		return c == FLOWQ_CAUSE_CANCELLED ? FLOWQ__FP_CANCELLED : -1;
	case FLOWQ_EVICTED_DISPLACED:
		return c == FLOWQ_CAUSE_DISPLACED ? FLOWQ__FP_DISPLACED : -1;
	case FLOWQ_EVICTED_OTHER:
		return c == FLOWQ_CAUSE_SHUTDOWN ? FLOWQ__FP_SHUTDOWN : -1;
	default:
		return -1;
	}
}

/* Rejections: counted by producers with an atomic add (the slow path). */
struct flowq__rejects {
	/* By cause; the outcome follows from it (the CAPACITY_* causes are
	 * REJECTED_CAPACITY, the others REJECTED_OTHER: engine.c). */
	_Atomic uint64_t causes[FLOWQ_CAUSE_COUNT];
};

/* A band: every flow of one priority. Settings read-only once published.
 * Configured bands live as long as the engine; template (JIT) bands are
 * collected once no flow holds them (registry.c, "Band lifetime"). */
struct flowq__band {
	int32_t priority;
	/* Index in engine->bands and in every shard's band-shard array (a
	 * collected band's index is reused by a later band). */
	uint32_t index;
	bool configured;
	size_t alloc_size;
	struct flowq_engine *engine;
	double usage_ceiling;
	uint64_t quantum; /* resolved: never 0 */
	/* Cross-shard fairness counts bytes (FLOWQ_POLICY_BYTE_FAIR). */
	bool byte_fair;
	const struct flowq_fairness_ops *fairness;
	const struct flowq_ordering_ops *ordering;
	/* Band capacity (global, never per shard): used when limited. */
	bool limited;
	struct flowq__cap cap;
	/* Rejections of requests that resolved to this band. */
	struct flowq__rejects rejects;
	/* Lifetime of a template band (unused for configured ones): the
	 * flows holding it (FLOWQ__BU_COUNT), a generation bumped each time
	 * that count drops to 0 (FLOWQ__BU_GEN), and FLOWQ__BU_DEAD once it
	 * is collected. Written by flow creators and flow collectors (once
	 * per flow, never per request): its own line. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t users;
	/* The home shard's dispatcher only (registry.c flowq__band_gc()):
	 * link in its list of idle bands, since when, and the users word it
	 * saw then (count 0, that generation). */
	struct flowq_list_node ilink;
	bool in_idle;
	int64_t idle_since;
	uint64_t idle_users;
	struct rcu_head rcu;
	/* The band's state on each shard (engine->nshards entries), also
	 * published in shards[k].bs[index] while the band is. Read-only. */
	struct flowq__band_shard *bss[];
};

/* The users word of a template band. */
#define FLOWQ__BU_COUNT UINT64_C(0xffffffff)
#define FLOWQ__BU_GEN_ONE (UINT64_C(1) << 32)
#define FLOWQ__BU_GEN (UINT64_C(0x7fffffff) << 32)
#define FLOWQ__BU_DEAD (UINT64_C(1) << 63)

/* A band's state on one shard: dispatcher-private except the counters and
 * the published pointer (readers: stats). */
struct flowq__band_shard {
	struct flowq__band *band;
	/* Fairness policy state (band->fairness->desc.band_state_size). */
	void *fstate;
	/* Flows of this band currently offered to the fairness policy. */
	uint64_t backlogged;
	/* Whether the band is in the shard's order[] (from its first flow
	 * here; a template band leaves it again when nflows drops to 0). */
	bool fstate_live;
	/* Template bands: flows of the band attached on this shard. */
	uint32_t nflows;
	size_t alloc_size;
	/* Cross-shard fairness (dispatch.c): the band's virtual time on this
	 * shard (service per unit of weight given to its backlogged flows)
	 * and the weight of those flows. Dispatcher-private. */
	uint64_t vt; /* fixed point, wrapping: dispatch.c, VT_ONE */
	uint64_t wsum;
	/* vt moved since it was last published (no gate pressure). */
	bool vt_dirty;
	/* vt published for the other shards' dispatchers (fixed point,
	 * FLOWQ__VT_IDLE while no flow of the band is backlogged here);
	 * written by this shard's dispatcher, read by the others while the
	 * gate is scarce. Its own line. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t vt_pub;
	/* Queue capacity to give back at the end of the round (batched). */
	uint64_t release_req;
	uint64_t release_bytes;
	/* Displacement (engine->displace set; dispatch.c "displacement"):
	 * the policy's state, and the requests taken in and still queued
	 * here (dispatcher-private), with the values last published. */
	void *dstate;
	uint64_t dq_req, dq_bytes;
	uint64_t dq_pub_req, dq_pub_bytes;
	struct flowq__counters stats;
	/* Displacement, shared: avail_* published by this shard's dispatcher
	 * (what it could shed); doomed_* added by submitters that were
	 * admitted against it (tickets), taken off by the dispatcher once it
	 * has shed for them. Own line: written only on the displacement
	 * path. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t avail_req;
	_Atomic uint64_t avail_bytes;
	/* Tickets; FLOWQ__DOOMED_PARKED while the band-shard is out of its
	 * shard's order[] (a template band with no flow here: dispatch.c
	 * band_shard_park()), which makes every ticket CAS fail. */
	_Atomic uint64_t doomed_req;
	_Atomic uint64_t doomed_bytes;
};

#define FLOWQ__DOOMED_PARKED (UINT64_C(1) << 63)

/* vt_pub of a band-shard with nothing backlogged (a published vt is
 * always odd: dispatch.c). */
#define FLOWQ__VT_IDLE UINT64_C(0)

/* Lease word of a flow: in-flight submitters + host handles; DEAD once the
 * dispatcher has claimed the flow for collection. */
#define FLOWQ__LEASE_DEAD (UINT64_C(1) << 63)

/* Bytes of ordering state kept inside the flow's dispatch span. */
#define FLOWQ__OSTATE_INLINE 32u

/* struct flowq_flow is the public name of a flow handle. */
struct flowq_flow {
	/* Read-only after creation (written before publication). */
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint64_t hash;
	struct flowq_engine *engine;
	struct flowq__shard *shard;
	struct flowq__band *band;
	int32_t priority;
	uint32_t id_len;
	size_t alloc_size;
	/* Weight (flowq_flow_set_weight: rare), read by the dispatcher each
	 * time the flow becomes backlogged: on the read-mostly line. */
	_Atomic uint32_t weight;

	/* The inbox: a consumer line (dispatcher) and a producer line. The
	 * producer line also holds the doorbell flag and link
	 * (inbox.announced, inbox.announce): announced is 1 while the flow
	 * is in its shard's doorbell queue, set by the producer that pushes
	 * it ([D1]), cleared by the dispatcher that pops it ([D2]). A submit
	 * that finds the inbox empty writes the tail, the dummy's link, the
	 * flag and the link on this one line, which the dispatcher wrote
	 * last when it emptied the inbox: one cross-core transfer where the
	 * flag on a line of its own and the dummy on the consumer line took
	 * three (bench/ENGINE-LOG.md, "Session 11"). */
	struct flowq_mpsc inbox;

	/* Dispatcher-private. The fairness policy's view, one line of its
	 * own (policy.h): read and written per request, with the policy's
	 * hot words in it, so a policy whose per-decision state fits them
	 * (round_robin, drr) touches no other line of the flow. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) struct flowq_policy_flow pf;
	/* From here on the next three lines, up to the statistics' end:
	 * also touched per request (the ordering state's address and, for
	 * a small one, the state itself; the release counters, the idle and
	 * dirty links, stats). With the view that is the flow's dispatch
	 * span (FLOWQ__FLOW_SPAN): four consecutive lines, where a dispatch
	 * touched a fifth, the ordering state after the id, before. (A ring
	 * that prefetched the whole span of the flow 8 turns ahead made the
	 * dispatcher faster but the end-to-end round_robin benchmark slower
	 * at 1000 flows: bench/ENGINE-LOG.md, "Session 10".) */
	void *ostate;
	/* Displacement policy state (engine->displace set), else NULL. */
	void *dstate;
	/* Queue capacity of this flow to give back at the end of the round. */
	uint64_t release_req;
	uint64_t release_bytes;
	/* Requests of this flow unlinked after a cancel won [T2] whose cancel
	 * message has not arrived yet: the canceller still reads
	 * req->priv.owner (this flow) to find the shard, so the flow must not
	 * be collected until they are all completed. */
	uint32_t cancel_wait;
	bool attached;
	bool in_pending;
	bool in_idle;
	bool in_dirty;
	int64_t idle_since;
	/* Link in the shard's idle and dirty lists (per request once flows
	 * empty at every dispatch, as with many flows). */
	struct flowq_list_node ilink;
	struct flowq_list_node dlink;
	/* The ordering policy's per-flow state when it fits here (fcfs: a
	 * list head; edf, slo_deadline: a pairing heap's root, length and
	 * sequence), so that it is inside the span; a larger one follows
	 * the id. */
	FLOWQ_ALIGNAS(16) unsigned char ostate_inline[FLOWQ__OSTATE_INLINE];
	struct flowq__flow_counters stats;
	/* Link in the shard's pending list (rare: a producer was between its
	 * exchange and its link, or a drain stopped at its batch size). */
	struct flowq_list_node plink;
	/* Producer lines: lease, flow capacity, accepted counters, then the
	 * rejection counters (the dispatcher writes here only to give flow
	 * capacity back, once per round, and to collect the flow). They
	 * start a 128-byte block (FLOWQ_PREFETCH_PAIR) shared with nothing
	 * the dispatcher touches: next to the doorbell flag's line, as they
	 * once were, the dispatcher's [D2] and its reads of that line kept a
	 * prefetched copy of the lease line, and the lease RMW of every
	 * submit paid a cross-core invalidation (~40 % of a producer's time at F = 1000 in
	 * perf; the A/B is in the commit). The block after them holds the
	 * last rejection counters and the id line, which only producers
	 * read. */
	FLOWQ_ALIGNAS(FLOWQ_PREFETCH_PAIR) _Atomic uint64_t lease;
	/* Flow capacity (reserved by producers, given back by the
	 * dispatcher once per round): requests and bytes queued. */
	_Atomic uint64_t cap_req;
	_Atomic uint64_t cap_bytes;
	/* Requests (and bytes) accepted by submit; queued = accepted - left
	 * (left: the dispatcher's counters), exact including requests still
	 * in the inbox. */
	_Atomic uint64_t accepted;
	_Atomic uint64_t accepted_bytes;
	struct flowq__rejects rejects;

	/* The id bytes follow (id_len of them, not NUL-terminated), on a line
	 * of their own after the producer lines: every submit's lookup
	 * compares them, and nothing the dispatcher writes shares their
	 * block. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) unsigned char id[];
};

/* The flow's dispatch span: the view and the dispatcher lines after it
 * that a dispatch touches (up to the statistics' end), whole lines. */
#define FLOWQ__FLOW_SPAN                                                                    \
	((offsetof(struct flowq_flow, plink) - offsetof(struct flowq_flow, pf) +            \
	  FLOWQ_CACHE_LINE - 1) /                                                           \
	 FLOWQ_CACHE_LINE * FLOWQ_CACHE_LINE)
FLOWQ_STATIC_ASSERT(offsetof(struct flowq_flow, pf) % FLOWQ_CACHE_LINE == 0,
		    "the view starts a line");
FLOWQ_STATIC_ASSERT(FLOWQ__FLOW_SPAN <= 4 * FLOWQ_CACHE_LINE,
		    "a dispatch touches at most four lines of the flow");
FLOWQ_STATIC_ASSERT(offsetof(struct flowq_flow, plink) <= offsetof(struct flowq_flow, lease),
		    "the dispatch span stays off the producer lines");

/* A shard: one registry slice and one dispatcher. */
struct flowq__shard {
	/* Read-only after create. */
	struct flowq_engine *engine;
	unsigned index;
	struct cds_lfht *ht;
	int efd; /* polled mode: readable when there is new work */
	/* Polled mode, the polling thread's: the last poll left sleeping = 1
	 * (a waker may have written efd since). */
	bool poll_armed;
	pthread_t thread;
	bool thread_started;

	/* Queues written by producers: flows that became backlogged (the
	 * doorbell: FLOWQ__BELLS queues; a flow rings the queue of the thread
	 * that rings it, flowq__flow_ring()), and requests whose cancel won. */
	struct flowq_mpsc doorbell[FLOWQ__BELLS];
	struct flowq_mpsc cancels;

	/* Sleep word (futex): written by the dispatcher and by wakers;
	 * FLOWQ__SLEEP_* (the handshake above). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint32_t sleeping;
	/* 1 while the dispatcher waits for the capacity gate (a release must
	 * wake it); written by the dispatcher, read by releasers. */
	_Atomic uint32_t gate_wait;
	/* A template band homed here (index % nshards == this shard) lost its
	 * last flow: set by whoever dropped it, taken by this dispatcher
	 * (registry.c flowq__band_gc()). */
	_Atomic uint32_t band_hint;
	/* Displacement debt left on collected bands' band-shards (tickets
	 * whose bytes arrived after the band-shard was parked), added by the
	 * band's free callback, taken by this dispatcher. */
	_Atomic uint64_t debt_in_req;
	_Atomic uint64_t debt_in_bytes;

	/* Published by the dispatcher when it changes, read by other shards'
	 * dispatchers while the gate is scarce (cross-shard priority). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic int64_t top_waiting;

	/* Activity counters (flowq_stats_shard()): written by the dispatcher
	 * alone (flowq__bump(), per round or chunk, not per request), read by
	 * statistics readers; a line of their own. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t act_rounds;
	_Atomic uint64_t act_decided;
	_Atomic uint64_t act_intakes;
	_Atomic uint64_t act_sleeps;
	_Atomic uint64_t act_coalesce_waits;

	/* Dispatcher-private from here. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic(struct flowq__band_shard *)
		bs[FLOWQ_MAX_BANDS];
	/* Band indexes with state on this shard, most important first. */
	uint32_t order[FLOWQ_MAX_BANDS];
	unsigned norder;
	/* TTL timers: requests with a finite expiry, earliest first. */
	struct flowq_heap ttl;
	uint32_t ttl_cap;
	/* Flows whose inbox must be polled again (a producer was between its
	 * exchange and its link, or the drain stopped at its batch size). */
	struct flowq_list pending;
	/* Empty, attached flows, oldest idle first: GC candidates. */
	struct flowq_list idle;
	/* Template bands homed here with no flow, oldest idle first. */
	struct flowq_list band_idle;
	/* Flows with queue capacity to give back at the end of the round. */
	struct flowq_list dirty;
	uint64_t flow_seq;
	/* The generation of the last sleep (threaded) or armed poll (polled),
	 * a multiple of FLOWQ__SLEEP_GEN: the high bits of the sleep word;
	 * written only by the dispatcher or the polling thread. */
	uint32_t sleep_gen;
	bool stopping_seen;
	/* The last round stopped at the gate (or yielded to another shard's
	 * more important band); blocked_bytes: the size it could not fit. */
	bool blocked;
	bool yielded;
	/* dispatch() ended a round early for new arrivals and has made no
	 * dispatch since (its stale-intake check, once per dispatch made). */
	bool reintook;
	/* The band whose gate check failed (its usage ceiling matters). */
	const struct flowq__band *blocked_band;
	/* The band-shard that yielded for fairness (else a priority yield). */
	struct flowq__band_shard *yield_band;
	uint64_t blocked_bytes;
	int64_t last_top;
	/* Adaptive idle spin (dispatch.c idle_spin()): the moving average
	 * of the idle gaps the spins measured, ns, and whether the last
	 * idle period ended in a sleep (the round after it counts its
	 * work). */
	int64_t spin_gap_avg;
	bool slept;
	/* Rounds since the intake-coalescing controller was last ticked
	 * (threaded mode, cfg.intake_coalesce_ns > 0: coalesce.h). */
	uint32_t coalesce_rounds;
	/* A fairness publication (dispatch.c fair_publish()) or a gate
	 * reserve that moved credit (gate_take(), gate_untake()) owes the
	 * other shards a gate wake, made by gate_wake_flush() once the
	 * completion in hand is delivered (never later than the end of the
	 * round). */
	bool gate_wake_owed;
	/* Displacement: global capacity that newcomers admitted against this
	 * shard hold without a reservation of their own, not yet repaid by
	 * departures (dispatch.c give_back()). */
	uint64_t debt_req, debt_bytes;
	/* Outcomes whose queue capacity give_back() has not returned yet
	 * (dispatch.c give_back_due()). */
	unsigned owed;
};

/* Releases counted per CPU (in-flight statistics without a concurrency
 * limit): written by releasing threads on their CPU's line, summed by
 * readers. */
struct flowq__pcpu {
	/* A block each (FLOWQ_PREFETCH_PAIR): two CPUs' counters on one
	 * 128-byte block would be written by both. */
	FLOWQ_ALIGNAS(FLOWQ_PREFETCH_PAIR) _Atomic uint64_t released;
	_Atomic uint64_t released_bytes;
};

struct flowq_engine {
	/* Read-only after create. */
	struct flowq_config cfg;
	struct flowq_band_config default_band;
	const struct flowq_allocator *alloc;
	flowq_clock_fn *clock;
	void *clock_ctx;
	unsigned nshards;
	struct flowq__shard *shards;
	struct flowq__pcpu *pcpu;
	unsigned npcpu;
	bool global_limited;
	bool flow_limited;
	/* The concurrency detector's in-flight limit (when limited). */
	bool gate_limited;
	bool gate_callback;
	/* Detector "utilization": the per-endpoint metrics (policies/
	 * saturation_utilization.c); NULL for the other detectors. */
	bool gate_util;
	struct flowq__util *util;
	bool any_ceiling; /* some band's usage ceiling is below 1 */
	/* The largest request that can ever be admitted and dispatched: the
	 * least of FLOWQ_LIMIT_MAX, the in-flight byte limit (when the gate
	 * keeps one), the global and the per-flow max_bytes (submit.c). */
	uint64_t max_request_bytes;
	/* The displacement policy; NULL for "none" (no state is kept). */
	const struct flowq_displacement_ops *displace;
	struct flowq__cap gate;
	struct flowq__cap global;

	/* Bands: slots 0..nbands-1, each a band published with release or
	 * NULL (a collected template band's slot, free for the next one);
	 * created and collected under band_lock (a new priority is rare:
	 * flow creation only). Read under RCU (registry.c). */
	pthread_mutex_t band_lock;
	_Atomic(struct flowq__band *) bands[FLOWQ_MAX_BANDS];
	_Atomic uint32_t nbands;
	/* Collected bands' counters, folded in by their collector (under
	 * band_lock) so that engine totals never shrink; band_seq is odd
	 * while a collector folds and unpublishes (a seqlock for the
	 * readers: engine.c flowq_stats_engine()). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t band_seq;
	/* Template bands collected so far (diagnostics: debug dump, stress). */
	_Atomic uint64_t bands_collected;
	struct flowq__counters retired;

	/* Polled mode: flowq_shard_fd() was called (polls arm the fds). */
	_Atomic uint32_t fd_wanted;
	/* Whether the intake-coalescing wait pays (threaded mode,
	 * cfg.intake_coalesce_ns > 0): coalesce.h. Read after every round
	 * that decided something by every dispatcher, written every few ms:
	 * its own line. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) struct flowq__coalesce coalesce;
	/* Written once by stop/destroy. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint32_t stopping;
	_Atomic uint32_t exiting;
	/* Dispatchers waiting for the gate (a release must wake them). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint32_t gate_waiters;
	/* Displacement: newcomers admitted without a global reservation whose
	 * debt is not repaid yet (<= cfg.displacement_max_pending). Own line:
	 * written on the displacement path only. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t disp_pending;
	/* Rejections that resolved no band (invalid, shutdown, ...), and
	 * those of collected bands (folded in at collection). */
	struct flowq__rejects rejects;
};

/* ---- registry.c ---- */

/** Register the calling thread with liburcu if it is not yet. */
void
flowq__rcu_thread_online(void);

/**
 * Find or create the flow (@p id, @p priority) and take a lease on it.
 * @return 0 with *r_flow leased; -ENOENT no band; -ENOMEM; or what a new
 * band's policy band_init returned (any negative errno, host policies).
 * Context: registered thread, not inside a read-side section.
 */
int
flowq__flow_acquire(struct flowq_engine *e, const void *id, uint32_t id_len,
		    int32_t priority, struct flowq_flow **r_flow);

/** Drop a lease taken by flowq__flow_acquire(). */
void
flowq__flow_unlease(struct flowq_flow *f);

/** Lease @p f, found by flowq__flow_lookup_rcu() in the read-side section
 * the caller still holds. @return false (no lease) if the flow is being
 * collected: flowq__flow_acquire() will find or make its successor. */
bool
flowq__flow_lease_rcu(struct flowq_flow *f);

/** Look the flow up without creating it (read-side section held by the
 * caller). NULL if absent. */
struct flowq_flow *
flowq__flow_lookup_rcu(struct flowq_engine *e, const void *id, uint32_t id_len,
		       int32_t priority);

/** Whether dispatch slots are scarce: a gate (concurrency limit, callback
 * or utilization detector) can stop a dispatch, so the cross-shard
 * strict-priority rule applies (dispatch.c). */
static inline bool
flowq__gate_scarce(const struct flowq_engine *e)
{
	return e->gate_limited || e->gate_callback || e->gate_util;
}

/** Hash of a flow key. */
uint64_t
flowq__flow_hash(const void *id, uint32_t id_len, int32_t priority);

/** The band of @p priority, creating it from the template if allowed, with
 * a reference for the flow about to be created (template bands; give it
 * back with flowq__band_put() if that flow is never published).
 * @return 0; -ENOENT; -ENOMEM; or what a new band's policy band_init
 * returned (any negative errno, host policies). Context: registered
 * thread, not inside a read-side section. */
int
flowq__band_get(struct flowq_engine *e, int32_t priority, struct flowq__band **r_band);

/** Drop a flow's reference on @p b (no-op for configured bands); the last
 * one tells the band's home shard. Any thread; @p b is not touched after
 * the drop. */
void
flowq__band_put(struct flowq_engine *e, struct flowq__band *b);

/** The home shard's band collection step: take new idle bands, collect
 * those idle past the GC timeout. @return when to run it again at the
 * latest. Context: the dispatcher of @p s. */
int64_t
flowq__band_gc(struct flowq__shard *s, int64_t now);

/** Create the configured bands (engine create). */
int
flowq__bands_init(struct flowq_engine *e);

/* One lockstep call takes in every queue: it reads at most
 * FLOWQ_MPSC_LOCKSTEP_MAX, and a queue it never read would never be
 * emptied. */
FLOWQ_STATIC_ASSERT(FLOWQ__BELLS <= FLOWQ_MPSC_LOCKSTEP_MAX,
		    "the intake's lockstep call reads every doorbell queue");

/** Whether every doorbell queue of @p s is empty (flowq_mpsc_empty()). */
static inline bool
flowq__bells_empty(const struct flowq__shard *s)
{
	for (unsigned k = 0; k < FLOWQ__BELLS; k++)
		if (!flowq_mpsc_empty(&s->doorbell[k]))
			return false;
	return true;
}

/** Whether a doorbell queue of @p s holds a linked flow
 * (flowq_mpsc_linked()). */
static inline bool
flowq__bells_linked(const struct flowq__shard *s)
{
	for (unsigned k = 0; k < FLOWQ__BELLS; k++)
		if (flowq_mpsc_linked(&s->doorbell[k]))
			return true;
	return false;
}

/** Tell the flow's dispatcher about @p f (new, or its inbox went
 * non-empty) unless it is already on the doorbell. */
void
flowq__flow_ring(struct flowq_flow *f);

/** Free a band (engine teardown, or after its collection's grace
 * period). */
void
flowq__band_free(struct flowq_engine *e, struct flowq__band *b);

/** Try to collect @p f (dispatcher of its shard). @return true if it was
 * unlinked and handed to call_rcu (its band reference is then dropped). */
bool
flowq__flow_try_collect(struct flowq_flow *f);

/** Free @p f at once (teardown, no reader left). */
void
flowq__flow_free(struct flowq_flow *f);

/* ---- dispatch.c ---- */

/** One dispatcher round on @p s: see flowq_shard_poll(). @return outcomes
 * decided. *r_next: when to run again at the latest (engine clock). */
unsigned
flowq__shard_run(struct flowq__shard *s, unsigned budget, int64_t *r_next);

/** Wake @p s if it sleeps (threaded: futex; polled: eventfd). */
void
flowq__shard_wake(struct flowq__shard *s);

/** Wake @p s after publishing work to it (issues the [W1] fence). */
void
flowq__shard_kick(struct flowq__shard *s);

/** Threaded mode: the dispatcher thread body. */
void *
flowq__dispatcher_main(void *arg);

/** Final drain at destroy (every queued request evicted, shutdown). */
void
flowq__shard_drain_all(struct flowq__shard *s);

/** Allocate and init band @p b's state on every shard (before the band is
 * published). @return 0 or a negative errno (nothing left allocated). */
int
flowq__band_shards_init(struct flowq_engine *e, struct flowq__band *b);

/** Free band @p b's state on every shard (no flow attached any more). */
void
flowq__band_shards_fini(struct flowq_engine *e, struct flowq__band *b);

/** Tear down the dispatcher-private state of @p s (band-shards, heap). */
void
flowq__shard_fini_private(struct flowq__shard *s);

/* ---- saturation.c ---- */

/** Set up the detector's state (utilization: e->util) from e->cfg.
 * @return 0; -ENOMEM. */
int
flowq__saturation_init(struct flowq_engine *e);

/** Free what flowq__saturation_init() made (safe on a partial create). */
void
flowq__saturation_fini(struct flowq_engine *e);

/* ---- engine.c ---- */

/** a + b for b >= 0, saturating at INT64_MAX (deadlines, timeouts). */
static inline int64_t
flowq__add_sat(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static inline int64_t
flowq__now(const struct flowq_engine *e)
{
	return e->clock(e->clock_ctx);
}

/** Which shard collects template band @p b: its slot's, so that every band
 * a slot ever holds has the same home (registry.c, "Band lifetime"). */
static inline struct flowq__shard *
flowq__band_home(struct flowq_engine *e, const struct flowq__band *b)
{
	return &e->shards[b->index % e->nshards];
}

/** Fold collected band @p b's counters into the engine's and unpublish it
 * from e->bands and every shard's bs[], as one step for statistics readers
 * (the band_seq seqlock). Context: under band_lock, @p b dead. */
void
flowq__band_unpublish(struct flowq_engine *e, struct flowq__band *b);

/** Count a rejection with @p cause in @p r (atomic add). */
static inline void
flowq__reject_count(struct flowq__rejects *r, enum flowq_cause cause)
{
	atomic_fetch_add_explicit(&r->causes[cause], 1, memory_order_relaxed);
}

/** End an RCU read-side section (with the TSan hand-off annotation that
 * a later call_rcu callback acquires: registry.c). */
void
flowq__rcu_unlock(void);

/** Wake dispatchers that wait for the gate (after a release). */
void
flowq__gate_wake(struct flowq_engine *e);

/** The engine's look-ahead hook for band @p arg's policy
 * (flowq_policy_env::prefetch; dispatch.c). */
void
flowq__flow_prefetch(void *arg, const struct flowq_policy_flow *pf, unsigned stage);

/** What band @p b's policies are lent (allocator, priority, quantum, the
 * look-ahead hook with the band as its argument). */
static inline struct flowq_policy_env
flowq__policy_env(const struct flowq_engine *e, const struct flowq__band *b)
{
	return (struct flowq_policy_env){.alloc = e->alloc,
					 .priority = b->priority,
					 .quantum = b->quantum,
					 .prefetch = flowq__flow_prefetch,
					 .prefetch_arg = (void *)b};
}

/** Detach @p f from its band's fairness and displacement policies on
 * band-shard @p bs (it has nothing queued). Its shard's dispatcher, or
 * teardown. */
void
flowq__flow_detach_policies(struct flowq_engine *e, struct flowq__band_shard *bs,
			    struct flowq_flow *f);

/** Print the shards' scheduling state to @p out (racy: a diagnostic for a
 * run that stopped making progress; stress programs call it, then abort). */
void
flowq__debug_dump(struct flowq_engine *e, FILE *out);

#endif /* FLOWQ_CORE_ENGINE_H */
