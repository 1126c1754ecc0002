/*
 * flowq: the engine. A proxy calls flowq_submit() for each request; flowq
 * decides if and when it proceeds (DESIGN.md has the vocabulary: flow, band,
 * shard, dispatcher, outcome).
 *
 * Life of a request:
 *
 *   host thread                          shard dispatcher
 *   flowq_req_init(r); set fields
 *   flowq_submit(e, r) == 0  ----------> queued on its flow (lock-free inbox)
 *                                        ... strict priority, fairness,
 *                                            TTL, cancel, capacity gate ...
 *                                        outcome decided exactly once:
 *   complete(r, arg) <-- callback ------ DISPATCHED or EVICTED_*
 *     (or via a completion port)
 *   backend work ...
 *   flowq_release(e, r)  (DISPATCHED only: frees the in-flight slot)
 *
 *   flowq_submit(e, r) < 0: rejected on the spot; no completion fires;
 *   flowq_req_outcome(r)/flowq_req_cause(r) say why.
 *
 * flowq_submit_batch() and flowq_release_batch() do the same for several
 * requests in one call, and pair in the table below as submit and release.
 *
 * Synchronization table for calls on one engine ("-": may run concurrently
 * from any threads; "X": the caller must serialize the pair):
 *
 *                   create destroy submit cancel release poll stats
 *      create         -      X       X      X      X      X    X
 *      destroy        X      X       X      X      X      X    X
 *      submit         X      X       -      -      -      -    -
 *      cancel         X      X       -      -      -      -    -
 *      release        X      X       -      -      -      -    -
 *      shard_poll     X      X       -      -      -      *    -
 *      stats/metrics  X      X       -      -      -      -    -
 *
 * flowq_endpoint_report() and flowq_saturation() pair like submit: they
 * may run concurrently with every call but create and destroy (reports of
 * one endpoint, one thread at a time: see flowq_endpoint_report()).
 *
 * (*) flowq_shard_poll() on one shard must be called by one thread at a time
 * (it *is* that shard's dispatcher); different shards may be polled
 * concurrently. flowq_engine_destroy() must not race with any other call on
 * the engine: stop submitting, cancelling and releasing first.
 *
 * Threads and RCU: the flow registry is RCU-protected (liburcu, memb
 * flavour). flowq registers each host thread with liburcu the first time it
 * calls into an engine, and unregisters it when the thread exits (a
 * pthread key destructor). Nothing is required of the host; a thread may
 * call flowq_thread_detach() early (e.g. before it is parked for a long time)
 * and will be registered again on its next call.
 *
 * Fork: create engines after fork() (in a worker's init hook), never before:
 * the dispatcher threads and liburcu's threads do not survive a fork.
 *
 * flowq never prints (except one line on stderr just before it aborts,
 * which it does only on a broken internal invariant, i.e. an engine bug,
 * or when the eventfd of a completion port fails in a way only a host bug
 * explains: the host closed it), never installs signal handlers, never
 * replaces the process allocator; its only threads are one dispatcher per shard in
 * threaded mode (none in polled mode) and liburcu's own workers: the
 * call_rcu thread that frees collected flows, the hash tables' resize
 * worker, and the short-lived helpers that worker starts and joins to
 * split a large resize (rculfhash's partitioned resize: up to one per CPU
 * for a step of 8,192 buckets or more). Counted with strace on 2 CPUs, one
 * polled shard, 100,000 flows submitted one after another: 9 threads
 * created over the engine's life from registry_buckets 1,024, 7 from
 * 16,384, 3 from 131,072 (a table pre-sized for the flows, as
 * registry_buckets below says, skips the growth steps).
 */
#ifndef FLOWQ_FLOWQ_H
#define FLOWQ_FLOWQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <flowq/alloc.h>
#include <flowq/common.h>
#include <flowq/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct flowq_engine;
struct flowq_port;

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/** How dispatch runs. */
enum flowq_mode {
	/** One flowq-owned dispatcher thread per shard. */
	FLOWQ_MODE_THREADED = 0,
	/** No threads: the host calls flowq_shard_poll() for every shard. */
	FLOWQ_MODE_POLLED = 1,
};

/** Most configured bands, and most bands alive at once (configured +
 * template; collected template bands do not count: see
 * flowq_config::flow_gc_timeout_ns). */
#define FLOWQ_MAX_BANDS 64u
/** Most shards. */
#define FLOWQ_MAX_SHARDS 256u
/** Longest flow id, bytes. */
#define FLOWQ_FLOW_ID_MAX 256u
/**
 * Largest capacity limit in either dimension (requests, bytes). A request
 * limit and the byte limit enforced with it (max_requests/max_bytes of the
 * engine and of each band, saturation.max_inflight/max_inflight_bytes) must
 * also fit one 64-bit word together: bitlen(requests) + bitlen(bytes) <= 64,
 * where bitlen(x) is the number of bits needed to write x (0 for 0 =
 * unlimited). E.g. 16777215 requests (24 bits) with 2^40 - 1 bytes (40
 * bits); either limit alone may be FLOWQ_LIMIT_MAX.
 */
#define FLOWQ_LIMIT_MAX (UINT64_C(1) << 62)

/** Most endpoints of the "utilization" detector (saturation.endpoints). */
#define FLOWQ_MAX_ENDPOINTS 4096u

/** Default fairness quantum (struct flowq_band_config::quantum), bytes. */
#define FLOWQ_QUANTUM_DEFAULT UINT64_C(4096)

/**
 * Engine clock: monotonic nanoseconds. Must never go backwards by more than
 * the caller accepts (a clock that does is tolerated: durations are clamped
 * at 0). Called from any thread, concurrently.
 */
typedef int64_t
flowq_clock_fn(void *ctx);

/**
 * Host saturation detector (detector "callback"): how loaded the backend
 * pool is, 0.0 = idle, >= 1.0 = saturated. Called by dispatchers, from any
 * of them concurrently, once per dispatch round (and by flowq_saturation()
 * on its caller's thread); must be cheap and must not block or call into
 * the engine.
 */
typedef double
flowq_saturation_fn(void *ctx);

/** One band: all flows of one priority. */
struct flowq_band_config {
	/** Priority: higher is more important. Unique among configured bands.
	 * Ignored in the default-band template. */
	int32_t priority;
	/** Most queued requests in this band; 0 = unlimited. */
	uint64_t max_requests;
	/** Most queued bytes in this band; 0 = unlimited. Default 10^9 (GIE).
	 * Must fit with max_requests: see FLOWQ_LIMIT_MAX. A larger request
	 * is refused (-EMSGSIZE, flowq_submit()). */
	uint64_t max_bytes;
	/** Fairness policy name (which flow goes next): "global_strict"
	 * (default: best head request by the ordering, no fairness),
	 * "round_robin" (one request per turn), "drr" (deficit round robin:
	 * weighted byte shares, uses @c quantum) or "wfq" (start-time fair
	 * queuing: weighted byte shares), or a host-registered name; see
	 * flowq_fairness_find(). */
	const char *fairness;
	/** Ordering policy name (which request of a flow goes next): "fcfs"
	 * (default: arrival order), "edf" (earliest expiry, enqueue time +
	 * TTL, first; no TTL last) or "slo_deadline" (earliest
	 * req->deadline_ns first; none last); equal keys leave in arrival
	 * order. See flowq_ordering_find(). */
	const char *ordering;
	/**
	 * Usage ceiling in (0, 1]: the band dispatches only while the
	 * saturation is below it. Default 1.0. Among the configured bands,
	 * ceilings must not increase from a more important band to a less
	 * important one (GIE's monotonicity rule: otherwise a lower band could
	 * take slots a higher one may not). The template's ceiling may be any
	 * value in (0, 1]: the priority of a just-in-time band is unknown until
	 * a request names it, so no static rule can place it; a JIT band whose
	 * ceiling breaks the order at its priority is not refused. Configure a
	 * band explicitly wherever the ordering of ceilings matters.
	 */
	double usage_ceiling;
	/**
	 * Quantum-based fairness policies ("drr"): the bytes of service a
	 * flow of weight 1 is credited per turn (weight w: w times as much).
	 * 0 = FLOWQ_QUANTUM_DEFAULT; at most FLOWQ_LIMIT_MAX. A larger quantum
	 * means fewer turns and coarser short-term fairness (drr's lag bound
	 * is one quantum plus one request). Ignored by the other built-ins
	 * ("wfq" shares bytes without a quantum).
	 */
	uint64_t quantum;
};

/** Saturation detector: when the backend pool can take more. */
struct flowq_saturation_config {
	/**
	 * "concurrency" (default): saturation = max(in-flight requests /
	 * max_inflight, in-flight bytes / max_inflight_bytes), where a request
	 * is in flight from its dispatch to its flowq_release(). With both
	 * limits 0 the pool is never saturated.
	 * "callback": saturation = callback(callback_ctx).
	 * "utilization": host-fed per-endpoint metrics
	 * (flowq_endpoint_report()), GIE's roofline formula: endpoint i
	 * scores max(waiting_i / queue_depth_threshold, kv_i /
	 * kv_cache_util_threshold) while its latest report is at most
	 * metrics_staleness_ns old, else 1.0 (also before its first report);
	 * saturation = the mean score over @c endpoints, plus the load
	 * dispatched since the reports (see dispatch_cost). If max_inflight or
	 * max_inflight_bytes is also set, that limit holds as well
	 * (saturation = the larger of the two detectors' values).
	 *
	 * A band dispatches only while saturation < its usage_ceiling.
	 */
	const char *detector;
	/** concurrency (and utilization): most requests in flight; 0 =
	 * unlimited. Ignored by "callback". */
	uint64_t max_inflight;
	/** concurrency (and utilization): most bytes in flight; 0 =
	 * unlimited. Must fit with max_inflight: see FLOWQ_LIMIT_MAX. A
	 * request of more bytes could never be dispatched: flowq_submit()
	 * refuses it (-EMSGSIZE). */
	uint64_t max_inflight_bytes;
	/** callback: the detector; required for "callback", else NULL. */
	flowq_saturation_fn *callback;
	/** Passed to @c callback. */
	void *callback_ctx;
	/**
	 * callback: how long a dispatcher blocked by saturation sleeps before
	 * asking again, ns (a callback has no release event to wake it).
	 * Default 1 ms.
	 */
	int64_t callback_poll_ns;
	/**
	 * utilization: endpoints in the backend pool, reported as indexes
	 * 0..endpoints-1. Default 1; in [1, FLOWQ_MAX_ENDPOINTS]. Fixed for
	 * the engine's life: an endpoint that never reports (or stops) scores
	 * 1.0, as in GIE, so configure the pool's actual size.
	 */
	unsigned endpoints;
	/** utilization: waiting requests at which an endpoint scores 1.0.
	 * Default 5 (GIE); in [1, FLOWQ_LIMIT_MAX]. */
	uint64_t queue_depth_threshold;
	/** utilization: KV-cache fraction at which an endpoint scores 1.0.
	 * Default 0.8 (GIE); in (0, 1]. */
	double kv_cache_util_threshold;
	/** utilization: a report older than this, ns, no longer counts (the
	 * endpoint scores 1.0). Default 200 ms (GIE); > 0. */
	int64_t metrics_staleness_ns;
	/**
	 * utilization: waiting requests each dispatch is assumed to add to
	 * one endpoint (spread evenly over the pool) until that endpoint
	 * reports metrics taken after the dispatch (flowq_endpoint_report()).
	 * flowq dispatches until the gate closes, so without it
	 * a low reading would let the whole backlog out before the next
	 * report shows the load (GIE's "thundering herd", which GIE's 1 ms
	 * dispatch cycle dampens and flowq would not): with 1, between two
	 * reports the pool gets about endpoints x queue_depth_threshold x
	 * (1 - saturation) requests. Default 1.0; in [0, 1000000]; 0 = GIE's
	 * formula exactly.
	 */
	double dispatch_cost;
};

/**
 * Engine configuration. flowq_config_init() fills the defaults; then set
 * fields. The engine copies everything it needs (band array, names are
 * resolved): the struct and what it points to may be freed after create.
 */
struct flowq_config {
	/** Shards (registry slices + dispatchers); 0 = online CPUs. At most
	 * FLOWQ_MAX_SHARDS. */
	unsigned shards;
	/** Threaded (default) or polled. */
	enum flowq_mode mode;
	/** Most queued requests over all bands; 0 = unlimited (default). */
	uint64_t max_requests;
	/** Most queued bytes over all bands; 0 = unlimited (default). Must
	 * fit with max_requests: see FLOWQ_LIMIT_MAX. A larger request is
	 * refused (-EMSGSIZE, flowq_submit()). */
	uint64_t max_bytes;
	/** Configured bands (never garbage-collected); may be NULL if
	 * @c nbands is 0. At most FLOWQ_MAX_BANDS. */
	const struct flowq_band_config *bands;
	size_t nbands;
	/**
	 * Whether a request at a priority with no configured band gets a band
	 * made from @c default_band (just in time). Default true. If false,
	 * such a request is rejected (REJECTED_OTHER, CAUSE_UNKNOWN_BAND).
	 * A just-in-time band is collected once it has had no flow for
	 * @c flow_gc_timeout_ns (so a priority that is no longer used frees
	 * its place among the FLOWQ_MAX_BANDS); the next request of that
	 * priority makes a new one.
	 */
	bool default_band_enabled;
	/** Template for just-in-time bands (its priority is ignored). */
	struct flowq_band_config default_band;
	/** Most queued requests per flow; 0 = unlimited (default). */
	uint64_t flow_max_requests;
	/** Most queued bytes per flow; 0 = unlimited (default). A larger
	 * request is refused (-EMSGSIZE, flowq_submit()). */
	uint64_t flow_max_bytes;
	/** TTL of requests with ttl_ns == 0, ns; FLOWQ_TTL_NONE (default) =
	 * no expiry. */
	int64_t default_ttl_ns;
	/** An idle, empty flow with no handle is reclaimed after this long,
	 * ns; a just-in-time band is collected after it has had no flow for
	 * this long (so after about twice this long without requests).
	 * Configured bands are never collected. Default 10 s; must be > 0. */
	int64_t flow_gc_timeout_ns;
	/** Saturation detector. */
	struct flowq_saturation_config saturation;
	/**
	 * Displacement policy name: what is shed when a submit finds the
	 * global limit (max_requests / max_bytes) full. "none" (default):
	 * the newcomer is rejected (REJECTED_CAPACITY, CAPACITY_GLOBAL).
	 * Otherwise, if a band of lower priority than the newcomer's has
	 * queued requests (on any shard), the newcomer is admitted and that
	 * band's dispatcher sheds requests of it (EVICTED_DISPLACED) until
	 * the newcomer's request and bytes are covered; the policy chooses
	 * which: "lowest_band_newest", "lowest_band_oldest",
	 * "most_over_share" (the newest request of the flow with the most
	 * queued bytes per unit of weight); see
	 * flowq_displacement_find(). Never a request of the same or a higher
	 * band. Only the global limit displaces: a band or flow limit holds
	 * only that band's or flow's own requests, which shedding another
	 * band cannot make room among. Transient bound: see
	 * displacement_max_pending.
	 */
	const char *displacement;
	/**
	 * Most newcomers admitted by displacement whose victims' capacity has
	 * not come back yet (their dispatcher sheds them at its next round;
	 * a victim that left on its own first is repaid from the shard's
	 * next departures or free global capacity, retried every
	 * millisecond). The global request limit is exceeded by at most this
	 * many requests (and the byte limit by at most their bytes); past it
	 * a newcomer is rejected (CAPACITY_GLOBAL) until the dispatchers
	 * catch up. Default 64; in [1, FLOWQ_LIMIT_MAX].
	 */
	uint64_t displacement_max_pending;
	/** Allocator for every internal allocation; NULL = libc. Must
	 * outlive the engine. */
	const struct flowq_allocator *allocator;
	/** Clock; NULL = CLOCK_MONOTONIC. A custom clock is meant for polled
	 * mode (deterministic simulation, tests); in threaded mode a
	 * dispatcher sleeps by the real clock: call flowq_engine_wake() after
	 * moving a custom clock. */
	flowq_clock_fn *clock;
	void *clock_ctx;
	/** Initial hash buckets per shard (a power of two in [1, 2^30]).
	 * Default 1024. The table (liburcu's cds_lfht) grows on its own, but
	 * only once it averages 8 flows per bucket, and a submit's lookup
	 * walks the flows ahead of its own in the bucket, each a cache miss
	 * once the flows outgrow the CPU caches: set it to the number of
	 * flows you expect per shard, rounded up to a power of two (16
	 * bytes per bucket). At 50,000 flows on one shard that took a
	 * submit from ~1.5 us to ~1.2 us (bench/ENGINE-LOG.md, "Session 7"). */
	unsigned long registry_buckets;
	/** Most outcomes (dispatches, expiries, cancellations) a dispatcher
	 * decides before it gives their queue capacity back to the global,
	 * band and flow limits (it also gives back at the end of every
	 * round; displacement victims go back with the round's rest). Smaller: capacity returns sooner under tight
	 * limits; larger: fewer writes to shared lines. Default 32;
	 * 1..4096. */
	unsigned dispatch_batch;
	/** How long an idle dispatcher keeps polling for work before it
	 * sleeps, ns (threaded mode), at most. Polling costs a CPU while it
	 * lasts; sleeping costs a futex wake (a system call, microseconds) on
	 * the next submit. The dispatcher polls this long only while its
	 * recent idle gaps were short (work came within about 8 us on
	 * average, or piled up while it slept); at low load it polls 1 us
	 * and sleeps. Default 50 us; 0 = sleep at once; at most 1 s. */
	int64_t idle_spin_ns;
	/**
	 * Threaded mode: after a round that decided only a few requests
	 * (fewer than 8) while no flow waits in its doorbell, how long the
	 * dispatcher may wait before it takes in new work, ns; 0 = never.
	 * A dispatcher that keeps up with its producers takes each request
	 * in almost alone: nearly every submit then finds its flow's inbox
	 * empty and rings the doorbell (a few cache lines the dispatcher last
	 * wrote), and every round pays its fixed costs for one or two
	 * requests (flowq_stats_shard() shows both). Waiting lets requests
	 * gather, so that rings and rounds are shared. The wait yields the
	 * CPU (sched_yield()), so producers or other dispatchers that share
	 * it run meanwhile.
	 *
	 * Whether it pays depends on the load's shape, so the engine
	 * measures it: every so often it runs 4 ms without the wait and 4 ms
	 * with it, and keeps it for the next 64 ms to 1 s only if the engine
	 * decided at least 1/16 more requests per second with it (all
	 * dispatchers together). With producers that keep many requests in
	 * flight, 2 us measured 0.43-1.04x the time per request at one
	 * producer (0.43-0.50x where two shards' dispatchers share the
	 * CPUs with it; bench/ENGINE-LOG.md, "Session 13"); in a closed loop (clients
	 * that each wait for their completion before they submit again) a
	 * wait after every small round measured 1.2-2.2x slower (up to 13x
	 * in session 12's runs), and the measurement turns it off there,
	 * paying its probes (about 1/18 of the time with the wait after a
	 * change of load, 1/258 while the load keeps its shape): against no
	 * wait at all, flow churn over four shards measured 1.05-1.16x and
	 * closed loops 0.88-1.27x (noisy). The cost where it stays on: up
	 * to this much more queue time for a request that arrives during a
	 * wait. flowq_stats_shard() counts the waits. Default 2 us (2000); 0 = never wait; at most
	 * 100 us (100000). Polled mode ignores it: the host decides when to
	 * poll.
	 */
	int64_t intake_coalesce_ns;
	/** If not NULL, flowq_engine_create() writes a message naming the bad
	 * field here on -EINVAL (NUL-terminated, truncated to
	 * @c errbuf_size). */
	char *errbuf;
	size_t errbuf_size;
};

/**
 * Fill @p cfg with the defaults (threaded, shards = online CPUs, no global
 * limit, default-band template on with GIE's defaults: global_strict, fcfs,
 * 10^9 bytes, ceiling 1.0; no per-flow limit; no TTL; flow GC after 10 s;
 * concurrency detector without limits, callback poll 1 ms, utilization
 * settings 1 endpoint, thresholds 5 requests and 0.8 KV, staleness 200 ms,
 * dispatch cost 1; libc allocator;
 * monotonic clock; 1024 registry buckets; dispatch batch 32; no errbuf).
 * Every other field (contexts, errbuf_size) is zeroed. A NULL @p cfg is
 * ignored.
 *
 * Context: any thread. Progress: wait-free.
 */
FLOWQ_API void
flowq_config_init(struct flowq_config *cfg);

/**
 * Check every field of @p cfg, as flowq_engine_create() does, without
 * creating anything: the ranges documented at each field, the joint limit
 * rule (FLOWQ_LIMIT_MAX), policy names that flowq_fairness_find() /
 * flowq_ordering_find() resolve, unique band priorities, monotone ceilings
 * among configured bands (see usage_ceiling), the detector name and its
 * callback, a complete allocator. The default-band template is checked
 * even when default_band_enabled is false (its priority is ignored), and
 * every detector's settings whichever detector is selected.
 * Fields are checked in struct order, bands in index order; the first bad
 * one is reported.
 *
 * @param cfg          the configuration; NULL is -EINVAL ("config is NULL").
 * @param errbuf       receives a message naming the first bad field, its
 *                     value and the rule (e.g. "bands[2].usage_ceiling: 1.5
 *                     is not in (0, 1]"), truncated to @p errbuf_size and
 *                     NUL-terminated; set to "" when @p cfg is valid. May be
 *                     NULL. (cfg->errbuf is flowq_engine_create()'s and is
 *                     not written here.)
 * @param errbuf_size  size of @p errbuf; 0 writes nothing.
 * @return 0 if valid; -EINVAL otherwise.
 *
 * Context: any thread. Progress: wait-free (bounded by the band count; the
 * policy lookups are wait-free).
 */
FLOWQ_API int
flowq_config_validate(const struct flowq_config *cfg, char *errbuf,
		      size_t errbuf_size);

/**
 * A short description of a negative errno returned by flowq (e.g.
 * flowq_strerror(-ENOSPC) = "capacity limit reached"): each errno this
 * header, flowq/policy.h and flowq/config_yaml.h document by name (the
 * loader's other file errnos are whatever open(2)/read(2) gave: its message
 * has their text), "success" for 0, "unknown error" for anything else.
 * Never NULL; static storage. Context: any thread.
 */
FLOWQ_API const char *
flowq_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Engine                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Create an engine; in threaded mode, start its dispatchers.
 *
 * @param cfg       configuration (see flowq_config_validate()).
 * @param r_engine  receives the engine.
 * @return 0; -EINVAL if @p cfg or @p r_engine is NULL or a field is invalid
 *         (message in cfg->errbuf); -ENOMEM if an allocation failed;
 *         -EAGAIN if a dispatcher thread could not be started;
 *         polled mode: the negative errno of a shard's failed eventfd(2)
 *         (-EMFILE, -ENFILE, also -ENODEV or -ENOMEM); whatever negative
 *         errno a configured band's fairness or displacement policy
 *         returned from band_init (only a host-registered policy's can
 *         fail). Nothing is left allocated on failure.
 *
 * Context: any thread. May block (allocates, starts threads).
 */
FLOWQ_API int
flowq_engine_create(const struct flowq_config *cfg, struct flowq_engine **r_engine);

/**
 * Stop and free @p e. New submits are rejected from the moment destroy
 * starts (REJECTED_OTHER, CAUSE_SHUTDOWN). Every queued request is evicted
 * (EVICTED_OTHER, CAUSE_SHUTDOWN) and its completion delivered before
 * destroy returns; dispatched requests not yet released stay the host's
 * (flowq_release() must not be called after destroy). Completion ports
 * must be destroyed after the engine, once drained.
 *
 * Requests still in a flow's inbox when destroy starts were accepted
 * (their submit returned 0), so they too are evicted (EVICTED_OTHER), not
 * rejected. Completions that run during destroy (on the dispatchers, or on
 * the calling thread in polled mode) may call flowq_submit(): it returns
 * -ESHUTDOWN and queues nothing; flowq_flow_get() likewise returns
 * -ESHUTDOWN and hands out no handle.
 *
 * Context: any thread except a dispatcher (not from a completion
 * callback); no other call on @p e may run concurrently or follow.
 * May block: joins the dispatchers, waits for an RCU grace period.
 */
FLOWQ_API void
flowq_engine_destroy(struct flowq_engine *e);

/** Number of shards of @p e (>= 1). Context: any thread. */
FLOWQ_API unsigned
flowq_shard_count(const struct flowq_engine *e);

/** The engine clock now, ns (the configured clock or CLOCK_MONOTONIC). */
FLOWQ_API int64_t
flowq_now(const struct flowq_engine *e);

/**
 * Wake every dispatcher (threaded mode) or signal every shard's fd (polled
 * mode), so that each re-reads the clock: call it after moving a custom
 * clock. Context: any thread. Progress: wait-free (one wake per shard).
 */
FLOWQ_API void
flowq_engine_wake(struct flowq_engine *e);

/**
 * Unregister the calling thread from liburcu now instead of at thread exit.
 * Harmless if it was not registered. Context: a host thread that is not
 * inside any flowq call.
 */
FLOWQ_API void
flowq_thread_detach(void);

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Submit @p req: admit it (capacity at global, band and flow level) and
 * queue it on its flow. Never blocks, never sleeps, allocates only when the
 * flow is new (a just-in-time flow or band).
 *
 * @param e    the engine.
 * @param req  initialized with flowq_req_init(), caller fields set, and not
 *             submitted since. Its flow is @c req->flow if set, else
 *             (@c flow_id, @c priority).
 * @return 0: queued; exactly one completion follows (callback or port),
 *         with DISPATCHED or an EVICTED_* outcome. The engine owns @p req
 *         until then.
 *         Negative errno: rejected on the spot, no completion fires, the
 *         request is the host's again and its outcome/cause say why:
 *         -ENOSPC   capacity (REJECTED_CAPACITY; cause names the level);
 *         -EINVAL   invalid request: flow id NULL, empty or longer than
 *                   FLOWQ_FLOW_ID_MAX (without @c req->flow), @c req->flow
 *                   a handle of another engine, ttl_ns < 0, bytes >
 *                   FLOWQ_LIMIT_MAX, or no completion callback
 *                   (REJECTED_OTHER, CAUSE_INVALID_REQUEST);
 *         -EMSGSIZE more bytes than a byte limit the request must fit
 *                   whole: saturation.max_inflight_bytes (detector
 *                   "concurrency" or "utilization" with that limit set),
 *                   or a queued-byte limit (global max_bytes,
 *                   flow_max_bytes, or its band's max_bytes): it could
 *                   never be admitted or dispatched, even into an idle
 *                   engine (REJECTED_OTHER, CAUSE_INVALID_REQUEST).
 *                   Checked before the flow look-up except for the
 *                   band's limit (a new flow or band may then exist). A
 *                   request of exactly a limit is accepted. A band's
 *                   usage_ceiling does not count: it bounds the use
 *                   before a dispatch, not the request, so a request
 *                   within the limit waits only until the pool is idle
 *                   enough. -ENOSPC above means "full now";
 *         -ETIMEDOUT deadline_ns already passed or ttl expired at submit
 *                   (REJECTED_OTHER, CAUSE_DEADLINE_PASSED);
 *         -ENOENT   no band for this priority and no template, or the
 *                   engine already holds FLOWQ_MAX_BANDS bands (template
 *                   bands are collected once they have had no flow for
 *                   flow_gc_timeout_ns: a later submit may succeed)
 *                   (REJECTED_OTHER, CAUSE_UNKNOWN_BAND);
 *         -ENOMEM   the new flow or band could not be allocated
 *                   (REJECTED_OTHER, CAUSE_NO_MEMORY);
 *         other     the negative errno a host-registered policy's
 *                   band_init returned while the just-in-time band for
 *                   this priority was made (-ENOMEM as above; the
 *                   built-in policies never fail there) (REJECTED_OTHER,
 *                   CAUSE_UNKNOWN_BAND: no band could be had);
 *         -ESHUTDOWN the engine is being destroyed (REJECTED_OTHER,
 *                   CAUSE_SHUTDOWN);
 *         -EBUSY    @p req was already submitted and not re-initialized:
 *                   nothing is changed (its outcome is that of the
 *                   earlier submit);
 *         -EFAULT   @p e or @p req is NULL (nothing is changed).
 *
 * Context: any thread; registers it with liburcu on first use.
 * Ordering: the host's writes to @p req before the call happen-before its
 * completion.
 * Progress: lock-free and O(1) for a known flow. Creating a flow
 * allocates; creating a band also takes a mutex (rare: once per new
 * priority); a submit that meets a flow being collected retries (with
 * sched_yield) until the collector has removed it from the table, and one
 * that meets a template band being collected makes a new band (the
 * request is never lost to the collection).
 */
FLOWQ_API int
flowq_submit(struct flowq_engine *e, struct flowq_req *req);

/**
 * Submit @p n requests in one call, for a host that has several at hand
 * (an event loop that read them from one wake-up). Each request is
 * admitted or rejected as flowq_submit() would, in array order, with the
 * same outcomes, causes and statistics, except for what sharing the work
 * changes:
 *  - the engine clock is read once per call, so every request of the call
 *    has the same enqueue time (its TTL and queue time start then), and a
 *    deadline that passes during the call is not refused (-ETIMEDOUT) but
 *    queued and then evicted (EVICTED_TTL, cause DEADLINE_PASSED);
 *  - requests in a row on the same flow (the same handle, or the same id
 *    and priority) form a run: one look-up and lease, one count, and they
 *    reach the flow's inbox together, in array order, with one exchange
 *    when the run ends; the flow's dispatcher is rung and woken then, as
 *    flowq_submit() would for the run's first request. So a request of a
 *    run cannot be dispatched before its run ends, and the capacity a
 *    run's earlier requests hold cannot come back before then: a limit
 *    (a flow's max_requests, say) can refuse a later request of the run
 *    that a loop of flowq_submit() racing a fast dispatcher might have
 *    admitted.
 * Other threads' requests are never held up by a call: a run rings its
 * flow as soon as it ends, never later in the call.
 * With many flows a look-up misses the cache (the table's bucket, then the
 * flow); the call claims 16 requests at a time, then looks up their flows
 * before it takes any of their leases, so that those misses overlap
 * (bench/ENGINE-LOG.md, "Session 16"). A run cut by a NULL entry or a request refused
 * at once may take one more look-up and lease, given back at once.
 * A request queued here is the engine's: its completion may run before
 * the call returns.
 *
 * @param e     the engine.
 * @param reqs  @p n requests, each as for flowq_submit(); a request must
 *              not appear twice (the second is refused with -EBUSY, as a
 *              second flowq_submit() would be). A flow handle that one of
 *              them carries must stay held until the call returns.
 * @param n     how many; 0 is allowed (nothing happens).
 * @param r_rc  NULL, or @p n ints: r_rc[i] is set to what flowq_submit()
 *              would have returned for reqs[i] (0: queued; a negative
 *              errno: rejected, or -EFAULT for a NULL entry, which is
 *              skipped).
 * @return how many were queued (each gets exactly one completion);
 *         -EFAULT if @p e is NULL, or @p reqs is NULL with @p n > 0;
 *         -EINVAL if @p n > INT_MAX. On a negative return nothing was
 *         touched.
 *
 * Context: any thread; registers it with liburcu on first use.
 * Ordering and progress: as flowq_submit(), per request; the call is
 * O(n) for known flows.
 */
FLOWQ_API int
flowq_submit_batch(struct flowq_engine *e, struct flowq_req *const *reqs, size_t n,
		   int *r_rc);

/**
 * Cancel a queued request. If its outcome is still undecided it becomes
 * EVICTED_CANCELLED and its completion follows (on the dispatcher, soon);
 * if dispatch, expiry or shutdown decided first, nothing happens.
 *
 * @return 0 if this call cancelled @p req; -EALREADY if its outcome was
 *         already decided (or it was never queued); -EFAULT if @p e or
 *         @p req is NULL.
 *
 * Context: any thread, between a successful submit and the completion (a
 * cancel after the completion has run is a host bug: the request may have
 * been reused). Progress: lock-free.
 */
FLOWQ_API int
flowq_cancel(struct flowq_engine *e, struct flowq_req *req);

/**
 * The backend finished @p req, which was DISPATCHED: give back its
 * in-flight slot (concurrency detector) and wake dispatchers that wait for
 * one. The slot's size is the request's bytes at submit, whatever
 * req->bytes holds now. @p e must be the engine that dispatched @p req:
 * flowq cannot check it (the request's flow may be gone by now), and a
 * release on another engine credits that engine's limits instead.
 *
 * @return 0; -EALREADY if it was already released; -EINVAL if @p req was
 *         not dispatched; -EFAULT if @p e or @p req is NULL.
 *
 * Context: any thread, after the DISPATCHED completion. Progress:
 * lock-free.
 */
FLOWQ_API int
flowq_release(struct flowq_engine *e, struct flowq_req *req);

/**
 * flowq_release() for @p n requests: each is released or refused exactly
 * as flowq_release() would; the in-flight accounting and the wake-up of
 * waiting dispatchers happen once for the call.
 *
 * @param r_rc  NULL, or @p n ints: r_rc[i] is what flowq_release() would
 *              have returned for reqs[i] (-EFAULT for a NULL entry).
 * @return how many were released; -EFAULT if @p e is NULL, or @p reqs is
 *         NULL with @p n > 0; -EINVAL if @p n > INT_MAX (nothing done).
 *
 * Context: any thread, each request after its DISPATCHED completion.
 * Progress: lock-free, O(n).
 */
FLOWQ_API int
flowq_release_batch(struct flowq_engine *e, struct flowq_req *const *reqs, size_t n,
		    int *r_rc);

/**
 * Submit @p req and wait for its outcome: a blocking helper for tests and
 * tools, not for a proxy's data path. Overwrites req->complete and
 * req->arg (only once the request is claimed: see the return). If
 * @p timeout_ns passes first, cancels the request and still waits for its
 * (then certain) completion.
 *
 * @param timeout_ns  how long to wait, ns, on the real clock; < 0 =
 *                    forever (a wait past INT64_MAX ns is forever too).
 * @return the outcome (also readable with flowq_req_outcome()); a rejected
 *         request returns its REJECTED_* outcome at once. FLOWQ_REJECTED_OTHER
 *         without touching anything if @p e or @p req is NULL or @p req was
 *         submitted and not re-initialized since (flowq_submit()'s -EBUSY):
 *         that request keeps its callback and its own outcome.
 *
 * Context: any thread except a dispatcher. May block. On a polled engine
 * another thread must keep polling the request's shard: the outcome, and
 * the cancel after a timeout, are decided by polls.
 */
FLOWQ_API enum flowq_outcome
flowq_submit_wait(struct flowq_engine *e, struct flowq_req *req, int64_t timeout_ns);

/* ------------------------------------------------------------------------ */
/* Saturation                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Report endpoint @p endpoint's metrics to the "utilization" detector. The
 * report replaces the endpoint's previous one: its score becomes
 * max(waiting_queue_size / queue_depth_threshold, kv_cache_usage /
 * kv_cache_util_threshold) (clamped at 2^19) until @p at_ns is older than
 * metrics_staleness_ns, and of the dispatches counted against the endpoint
 * (dispatch_cost) those made at or before @p at_ns are dropped: metrics
 * taken then include them; later ones stay counted until a report with
 * newer metrics (at most the last 1024 dispatches are told apart by time:
 * metrics older than all of them leave those 1024 counted). So pass the
 * time the metrics were taken, not the time of the call. If the report
 * lowers the saturation, dispatchers waiting for the gate are woken
 * (polled mode: their shard fd is signalled).
 *
 * @param e                   the engine (detector "utilization").
 * @param endpoint            index in [0, saturation.endpoints).
 * @param waiting_queue_size  requests waiting at the endpoint (queued in
 *                            its model server, not running).
 * @param kv_cache_usage      fraction of its KV cache in use, in [0, 1].
 * @param at_ns               when the metrics were taken, on the engine
 *                            clock (flowq_now()); not later than now.
 * @return 0;
 *         -EINVAL the detector is not "utilization", @p endpoint is out of
 *                 range, @p kv_cache_usage is not in [0, 1] (or NaN), or
 *                 @p at_ns is later than flowq_now(e);
 *         -ESTALE @p at_ns is older than this endpoint's latest accepted
 *                 report, or already older than metrics_staleness_ns
 *                 (nothing changes);
 *         -EBUSY  another report of the same endpoint is running on
 *                 another thread (nothing changes; report each endpoint
 *                 from one thread at a time);
 *         -EFAULT @p e is NULL.
 *
 * Context: any thread, concurrently with submits, dispatch and reports of
 * other endpoints; not during create or destroy. Never blocks; reads the
 * engine clock once.
 * Ordering: a gate check that starts after the call returns sees the
 * report (release publication, acquire loads). The wake follows the
 * publication through the gate's [W1] fence, so a dispatcher cannot go to
 * sleep on the saturation this report replaced.
 * Progress: wait-free on the endpoint (at most one retry against a
 * concurrent staleness sweep; a scan of at most 1024 dispatch times),
 * lock-free on the pool sums (a CAS shared with other endpoints' reports).
 * No allocation; a system call only to wake a sleeping dispatcher.
 */
FLOWQ_API int
flowq_endpoint_report(struct flowq_engine *e, unsigned endpoint,
		      uint64_t waiting_queue_size, double kv_cache_usage, int64_t at_ns);

/**
 * The backend pool's saturation now, as the gate compares it with the
 * bands' usage ceilings (0 = idle, >= 1 = saturated): "concurrency":
 * max(in-flight / max_inflight, in-flight bytes / max_inflight_bytes), 0
 * without limits; "callback": the callback's value (called on this
 * thread); "utilization": the mean endpoint score at flowq_now() plus the
 * dispatches counted since the reports, recomputed from every endpoint
 * (O(endpoints)), and the larger of that and the in-flight ratio if an
 * in-flight limit is set. For hosts, tests and the simulator; dispatchers
 * keep their own O(1) view of the same value.
 *
 * @return 0; -EFAULT @p e or @p r_saturation is NULL.
 * Context: any thread, not from the saturation callback itself. A snapshot:
 * reports and dispatches that run meanwhile may or may not be counted.
 * Progress: wait-free for concurrency, the callback's for callback,
 * lock-free (per-endpoint retries) for utilization.
 */
FLOWQ_API int
flowq_saturation(struct flowq_engine *e, double *r_saturation);

/* ------------------------------------------------------------------------ */
/* Flow handles                                                             */
/* ------------------------------------------------------------------------ */

/**
 * Get a handle on the flow (@p id, @p priority), creating it if needed. A
 * handle pins the flow (it is never garbage-collected while held) and lets
 * requests skip the registry lookup (set req->flow).
 *
 * @return 0; -EINVAL bad id (NULL, empty, too long) or NULL argument;
 *         -ENOENT no band for @p priority and no template, or
 *         FLOWQ_MAX_BANDS bands alive (as flowq_submit()); -ENOMEM;
 *         -ESHUTDOWN engine stopping; the negative errno a host policy's
 *         band_init returned for a new band (as flowq_submit()).
 * Context: any thread. Progress: lock-free (allocates for a new flow).
 */
FLOWQ_API int
flowq_flow_get(struct flowq_engine *e, const void *id, uint32_t id_len,
	       int32_t priority, struct flowq_flow **r_flow);

/**
 * Drop a handle from flowq_flow_get(). Requests already submitted with it
 * are unaffected; the flow becomes collectable once idle and empty.
 *
 * Putting a handle more times than it was got is a host bug. flowq ignores
 * a put that finds no lease at all (the count never goes below zero, so
 * the flow is still collected and its id still found), but cannot tell an
 * extra put while another handle or a submit holds a lease: that drops the
 * other's, and the flow may then be collected under it. A put after the
 * flow was collected reads freed memory.
 * Context: any thread.
 */
FLOWQ_API void
flowq_flow_put(struct flowq_engine *e, struct flowq_flow *flow);

/**
 * Set the flow's fairness weight (default 1; 1..65535). Takes effect at its
 * shard's next decision. Policies without weights ignore it.
 * @return 0; -EINVAL out of range or NULL.
 */
FLOWQ_API int
flowq_flow_set_weight(struct flowq_flow *flow, uint32_t weight);

/* ------------------------------------------------------------------------ */
/* Completion ports                                                         */
/* ------------------------------------------------------------------------ */

/**
 * Create a completion port for one host event loop. Requests submitted with
 * flowq_req_set_port() are delivered to it instead of through a callback.
 *
 * @return 0; -EINVAL NULL argument; -ENOMEM; -EMFILE/-ENFILE (no eventfd).
 * Context: any thread.
 */
FLOWQ_API int
flowq_port_create(struct flowq_engine *e, struct flowq_port **r_port);

/**
 * The port's eventfd (EFD_NONBLOCK | EFD_CLOEXEC): readable when
 * completions wait. Written only when the port goes from empty to
 * non-empty; flowq_port_drain() clears it. Add it to the loop's epoll set.
 */
FLOWQ_API int
flowq_port_fd(const struct flowq_port *port);

/**
 * Take up to @p max completed requests, oldest first, into @p r_reqs.
 *
 * @return the number taken. If it equals @p max, call again: more may
 *         wait and the eventfd may have been cleared. A smaller count means
 *         the port was empty at some point during the call (or a
 *         completion is being posted right now: then the fd is made
 *         readable again, so the loop comes back).
 * Context: one thread at a time per port (the loop that owns it).
 * Progress: wait-free.
 */
FLOWQ_API size_t
flowq_port_drain(struct flowq_port *port, struct flowq_req **r_reqs, size_t max);

/**
 * Destroy @p port. No request still queued may name it (a host bug flowq
 * cannot see: destroy the engine, or wait for those completions, first).
 *
 * @return 0 (also for NULL); -EBUSY if completed requests are still in the
 *         port: nothing is changed, drain it and call again (before 0.3.3
 *         this aborted the process).
 * Context: the owning loop.
 */
FLOWQ_API int
flowq_port_destroy(struct flowq_port *port);

/**
 * Deliver @p req's completion to @p port: sets req->complete and req->arg.
 * Call after flowq_req_init(), before flowq_submit().
 */
FLOWQ_API void
flowq_req_set_port(struct flowq_req *req, struct flowq_port *port);

/* ------------------------------------------------------------------------ */
/* Polled mode                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Run shard @p shard's dispatcher once on the calling thread: take new
 * work, reap cancellations, expire TTLs, dispatch until blocked (or until
 * @p budget requests got an outcome), run their completions.
 *
 * @param budget           most requests to dispatch; 0 = no limit.
 *                         Cancellations, expiries and shutdown evictions
 *                         found in the same round are not bounded by it,
 *                         so the return value may exceed @p budget.
 * @param r_next_deadline  receives the engine-clock time at which the shard
 *                         must be polled again even if its fd stays quiet
 *                         (the next TTL expiry, or a saturation re-check),
 *                         or INT64_MAX; may be NULL.
 * @return the number of outcomes decided (>= 0); -EINVAL if @p e is not in
 *         polled mode or @p shard is out of range.
 *
 * Context: one thread at a time per shard; completion callbacks run on it.
 */
FLOWQ_API int
flowq_shard_poll(struct flowq_engine *e, unsigned shard, unsigned budget,
		 int64_t *r_next_deadline);

/**
 * Polled mode: an eventfd that becomes readable when shard @p shard has new
 * work (a new backlogged flow, a cancellation, a release while it waits
 * for capacity) after a poll left it idle. flowq_shard_poll() clears it.
 * The fd is armed only once it has been asked for: until the first call
 * of flowq_shard_fd() on an engine, its polls leave every fd alone, so a
 * host that polls in a loop of its own (a simulator, a busy event loop)
 * pays no eventfd system calls. Ask for the fds before the first poll
 * whose idle return you will wait on.
 *
 * @return the fd (>= 0); -EINVAL if not in polled mode or out of range.
 */
FLOWQ_API int
flowq_shard_fd(struct flowq_engine *e, unsigned shard);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Queue-time histogram: log-linear buckets, 4 per power of two, from 1 us
 * to ~73 min (bucket i's upper bound is flowq_hist_bound(i)); the last
 * bucket is open-ended. Queue time is measured for every request that left
 * a queue (dispatched or evicted), submit to outcome.
 */
#define FLOWQ_HIST_BUCKETS 130u

struct flowq_hist {
	/** Observations in bucket i (not cumulative). */
	uint64_t buckets[FLOWQ_HIST_BUCKETS];
	uint64_t count;
	/** Sum of observations, ns. */
	uint64_t sum_ns;
};

/** Upper bound of bucket @p i, ns (inclusive); INT64_MAX for the last. */
FLOWQ_API int64_t
flowq_hist_bound(unsigned i);

/**
 * The @p q quantile (0 <= q <= 1) of @p h, ns: the upper bound of the
 * bucket that holds it (an over-estimate by less than 25 %); 0 if @p h is
 * NULL or empty, or @p q is NaN. A @p q below 0 is taken as 0, above 1 as 1.
 */
FLOWQ_API int64_t
flowq_hist_quantile(const struct flowq_hist *h, double q);

/** Counters of one scope (the engine, a band or a flow). */
struct flowq_stats {
	/** Requests admitted and not yet given an outcome. */
	uint64_t queued;
	/** Their bytes. The queued and in-flight byte counts are exact
	 * while under 2^63 bytes are queued (in flight) at once, which any
	 * byte limit guarantees (limits are at most FLOWQ_LIMIT_MAX = 2^62);
	 * with no byte limit, a larger backlog (two requests of
	 * FLOWQ_LIMIT_MAX bytes) reads wrong (0, or the amount modulo 2^64)
	 * until it drains below 2^63 again. Only the statistic is affected:
	 * admission and dispatch do not use it. Lifetime totals wrapping
	 * past 2^64 do no harm. */
	uint64_t queued_bytes;
	/** Dispatched and not yet released (engine scope only; 0 else). */
	uint64_t inflight;
	uint64_t inflight_bytes;
	/** Outcomes so far, by outcome (index FLOWQ_PENDING is unused). */
	uint64_t outcomes[FLOWQ_OUTCOME_COUNT];
	/** The same, split by cause. */
	uint64_t causes[FLOWQ_OUTCOME_COUNT][FLOWQ_CAUSE_COUNT];
	/** Queue time of requests that left a queue. For a flow, only
	 * count and sum_ns are kept (the mean; flows can be many): its
	 * buckets are zero. Engine and band scopes have every bucket. */
	struct flowq_hist queue_time;
};

/**
 * Snapshot of the whole engine. Read without stopping dispatch: each
 * counter is exact, the set is not one instant (a request may be counted as
 * queued and, an instant later, as dispatched). @c queued is summed flow by
 * flow, so while requests move it may count one that left a flow already
 * summed and one admitted since into a flow summed later: it can exceed a
 * queue limit by the requests that turned over during the sum, although
 * the limit itself never is (capacity is reserved at submit). The totals
 * include the counters of collected just-in-time bands (folded in at
 * collection, in one step with the band's removal), so they never go down.
 *
 * @return 0; -EFAULT NULL argument. Context: any thread.
 * Progress: lock-free; retries (sched_yield) while a band collection
 * folds its counters (a few microseconds, once per collected band).
 */
FLOWQ_API int
flowq_stats_engine(struct flowq_engine *e, struct flowq_stats *r_stats);

/**
 * What one shard's dispatcher has done: how much work each of its rounds
 * found, and how often producers had to tell it about new work. Counts
 * since the engine was created; never reset.
 *
 * intakes / requests dispatched is the fraction of submits that rang the
 * doorbell (a flow's inbox went from empty to non-empty while the flow was
 * not already announced): near 1 when the dispatcher keeps up with every
 * flow (each submit then pays the ring: a few cache lines the dispatcher
 * last wrote), lower when requests find their flow already backlogged.
 * decided / rounds is how many outcomes a round decides on average.
 */
struct flowq_shard_stats {
	/** Rounds that decided at least one outcome. */
	uint64_t rounds;
	/** Outcomes those rounds decided (dispatched, evicted, and cancelled
	 * requests completed). */
	uint64_t decided;
	/** Flows taken in from the doorbell: one per ring (a flow created
	 * just in time, or by flowq_flow_get(), rings once to be adopted). */
	uint64_t intakes;
	/** Times the dispatcher went idle and had to be woken: threaded mode,
	 * futex waits; polled mode, polls that armed the shard's fd. */
	uint64_t sleeps;
	/** Intake-coalescing waits made (config intake_coalesce_ns; threaded
	 * mode), including those of the engine's probes (4 ms with the wait
	 * in every cycle); 0 when intake_coalesce_ns is 0, and in polled
	 * mode. Since 0.3. */
	uint64_t coalesce_waits;
};

/**
 * Snapshot of shard @p shard's dispatcher counters (struct
 * flowq_shard_stats). Each counter is exact; the set is not one instant.
 *
 * @return 0; -EFAULT NULL argument; -EINVAL @p shard >= flowq_shard_count().
 * Context: any thread. Progress: wait-free (five loads).
 */
FLOWQ_API int
flowq_stats_shard(struct flowq_engine *e, unsigned shard, struct flowq_shard_stats *r_stats);

/**
 * The engine's intake-coalescing controller (flowq_config::intake_coalesce_ns,
 * threaded mode). It measures whether the wait raises the engine's rate of
 * decisions. It runs cycles of two probes of 4 ms each, the first without
 * the wait and the second with it. A hold of 64 ms to about 1 s follows,
 * which keeps the wait on only if the second probe decided enough more
 * (bench/ENGINE-LOG.md, "Session 13"). These counts let an operator see what it chose:
 * a wait that is on adds up to intake_coalesce_ns to a request's queue
 * time. All zero with intake_coalesce_ns 0 and in polled mode, where no
 * controller runs. Since 0.3.2.
 */
struct flowq_coalesce_stats {
	/** 1 while the dispatchers wait after their small rounds (during a
	 * probe with the wait, or a hold that chose it), else 0. The
	 * controller steps only after rounds that decided something, so on
	 * an idle engine its period overruns: then this reads 0, which is
	 * what the first round after the pause will find (the overrun turns
	 * the wait off). */
	uint32_t on;
	/** Holds that chose the wait: its probe decided enough more outcomes
	 * per ns than the probe without it. */
	uint64_t holds_on;
	/** Holds that chose no wait: its probe lost, tied, or overran. */
	uint64_t holds_off;
	/** Periods dropped because they lasted over 4x their length (an idle
	 * engine, a stopped process), counted when the next round ends them.
	 * A dropped probe with the wait counts in holds_off too (a hold
	 * without the wait follows it); any other dropped period starts the
	 * cycle again. */
	uint64_t dropped;
};

/**
 * Snapshot of the intake-coalescing controller (struct
 * flowq_coalesce_stats). Each field is exact; the set is not one instant.
 *
 * @return 0; -EFAULT NULL argument.
 * Context: any thread. Progress: wait-free (six loads and a vDSO clock
 * read).
 */
FLOWQ_API int
flowq_stats_coalesce(struct flowq_engine *e, struct flowq_coalesce_stats *r_stats);

/**
 * Snapshot of band @p priority. @return 0; -ENOENT no such band (never
 * made, or a just-in-time band that was collected: its counts live on only
 * in the engine totals; a band made again for the priority starts from
 * zero); -EFAULT @p e or @p r_stats is NULL. Context: any thread.
 */
FLOWQ_API int
flowq_stats_band(struct flowq_engine *e, int32_t priority, struct flowq_stats *r_stats);

/** Snapshot of one flow. @return 0; -ENOENT no such flow; -EINVAL bad id
 * (NULL, empty, longer than FLOWQ_FLOW_ID_MAX); -EFAULT @p e or @p r_stats
 * is NULL (checked first). */
FLOWQ_API int
flowq_stats_flow(struct flowq_engine *e, const void *id, uint32_t id_len,
		 int32_t priority, struct flowq_stats *r_stats);

/** Callback of flowq_stats_foreach_band(): return nonzero to stop. */
typedef int
flowq_band_stats_fn(int32_t priority, const struct flowq_stats *stats, void *ctx);

/** Callback of flowq_stats_foreach_flow(): return nonzero to stop. */
typedef int
flowq_flow_stats_fn(const void *id, uint32_t id_len, int32_t priority,
		    const struct flowq_stats *stats, void *ctx);

/**
 * Call @p fn for every band, most important first. @return 0, the first
 * nonzero value @p fn returned (no call follows it), -ENOMEM (the walk's
 * snapshot could not be allocated; @p fn is not called), or -EFAULT if @p e
 * or @p fn is NULL. A just-in-time band collected
 * during the walk may still be visited (with its final counts); a band
 * made during it may or may not be. Context: any thread except from inside
 * a callback of this engine. The walk holds an RCU read-side section
 * around @p fn, which delays (never blocks) the reclamation of collected
 * flows and bands while @p fn runs.
 */
FLOWQ_API int
flowq_stats_foreach_band(struct flowq_engine *e, flowq_band_stats_fn *fn, void *ctx);

/**
 * Call @p fn for every live flow (shard by shard, in no particular order;
 * flows created or collected meanwhile may or may not be seen). @return 0,
 * the first nonzero value @p fn returned (no call follows it), -ENOMEM (as
 * flowq_stats_foreach_band()), or -EFAULT if @p e or @p fn is NULL.
 */
FLOWQ_API int
flowq_stats_foreach_flow(struct flowq_engine *e, flowq_flow_stats_fn *fn, void *ctx);

/**
 * Write every metric of @p e to @p out in the Prometheus text exposition
 * format (version 0.0.4): names flowq_*, # HELP and # TYPE lines, counters
 * ending in _total, histograms as _bucket{le=".."}/_sum/_count (seconds).
 *
 * @return 0; -EIO if writing failed; -ENOMEM if the band or flow walk
 *         could not allocate its snapshot (part of the text may have been
 *         written); -EFAULT NULL argument.
 * Context: any thread except a completion callback.
 */
FLOWQ_API int
flowq_metrics_write(struct flowq_engine *e, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_FLOWQ_H */
