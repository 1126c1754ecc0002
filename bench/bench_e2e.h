/*
 * bench_e2e: the end-to-end workload that BM_engine_* (bench_engine.c, flowq)
 * and BM_gie_style_e2e (bench_gie.c, the GIE-style peer) share, and its
 * baseline BM_engine_raw_mpsc (bench_e2e.c): submit -> dispatch -> release
 * through a whole engine, P producers, F flows, S shards, K priorities.
 *
 * Keeping one copy of the workload is what makes the ratios mean something:
 * every engine sees the same producers, flows, request objects, window,
 * completion path and latency sampling; a suite supplies only its engine
 * (struct bench_e2e_suite) and its submit/finish calls, which the producer
 * loop below inlines (the loop is a static inline template instantiated in
 * each suite's file with constant function pointers, so no engine pays an
 * indirect call per request that another does not).
 *
 * Cases: BM_<suite>/producers:P/flows:F/dist:D/shards:S/prios:K/real_time,
 * with D 0 = uniform, 1 = Zipf (s = 1.0). Flow i has priority i % K (GIE's
 * benchmark convention, §6), so F = 1 uses one band whatever K is, and the
 * Zipf distribution is registered only for F > 1 (at F = 1 it is uniform).
 *
 * Producers. The shared bench_harness pool in completion mode: P threads,
 * released per batch by a gate. Each owns BENCH_E2E_WINDOW preallocated
 * request objects and reuses one only after its completion came back and it
 * was finished (flowq: released): a closed loop with at most
 * BENCH_E2E_WINDOW requests outstanding per producer, so queues stay bounded
 * (P * 1024 requests at most) and deep enough to keep the dispatchers busy.
 * Its share of a batch done, a producer waits for all of its requests to come
 * back, so a batch measures whole request lives and the engine is empty at
 * every check.
 *
 * Flow choice: each producer walks its own precomputed table of
 * BENCH_E2E_SEQ_LEN flow indices, drawn before the run from a seeded RNG
 * (splitmix64), uniform or Zipf(s = 1.0) by inverse CDF over a precomputed
 * CDF table (rank r has weight 1 / (r + 1); rank r is flow r). The hot path
 * pays one sequential load per request, the same whatever F or the
 * distribution, so a cost that changes with F is the engine's.
 *
 * Completion path. Every engine reports a request's outcome by a callback
 * on its dispatcher thread (flowq's completion callback; the GIE peer's
 * processor in place of the channel its waiter blocks on). The callback
 * calls bench_e2e_complete(), which stamps the latency of sampled requests
 * and hands the object back to its producer through the producer's return
 * port: a flowq_mpsc (completing threads -> producer) plus a sleep/wake
 * handshake, the shape of a flowq completion port. The producer, as a
 * proxy's event loop would, takes completions in batches, finishes them
 * (flowq_release() for a dispatched flowq request, the lease drop for the
 * GIE peer: GIE's own benchmark client releases after Dispatched, §6) and
 * reuses the objects. Releasing on the producer rather than in the callback
 * keeps the dispatcher's callback minimal and puts the release where a proxy
 * makes it: on its own thread, when the backend is done.
 *
 * Latency: submit -> dispatch (the completion callback), for one request in
 * BENCH_E2E_SAMPLE_EVERY per producer: the producer reads the clock before
 * submit, the callback reads it again and stores the difference in the
 * object; the producer adds it to its own histogram (log-linear, 16
 * sub-buckets per power of two: quantiles over-estimate by < 6.25 %) when
 * it takes the completion back. Cost: two vDSO clock reads (~20 ns each) per
 * sampled request, i.e. under 1 ns per request on average, on both sides
 * alike for every engine. In this closed loop the latency is mostly queueing
 * behind the window (Little's law: about P * BENCH_E2E_WINDOW / rate), so it
 * compares engines at equal windows; it is not an open-loop latency.
 *
 * Checks, after the timed region of every batch (timer paused): every
 * producer's attempts = accepted + rejected on the spot, accepted =
 * completions taken back (each object completed exactly once, and only if
 * submitted), completions = dispatched + rejected later + evicted, no
 * eviction (nothing in this workload cancels or expires), every object back
 * in its free list; then the suite's own engine-side check (its counters
 * against the producers' totals, queues empty). A violation fails the case
 * through bench_skip_with_error().
 *
 * The port of GIE's benchmark suite (§6 of reference/gie-flowcontrol.md;
 * its harness: W blocking clients, each a closed loop of EnqueueAndWait
 * then, if dispatched, an immediate detector.Release()) uses the same
 * producers with other case layouts (enum bench_e2e_layout):
 *
 *   BM_gie_matrix_<engine>/limit:L/shards:S/prios:P/flows:F/clients:W
 *       PerformanceMatrix. W clients = W requests outstanding, spread over
 *       BENCH_E2E_GIE_PRODUCERS producer threads (event loops, not a thread
 *       per client: the host flowq is built for), each re-submitting as soon
 *       as a completion comes back; L = the egress limit: at most L
 *       dispatched requests not yet released (0 = free flow), released by
 *       the producer as soon as it takes the completion back, so the
 *       queues hold about W - L requests; flow choice Zipf(s = 1.1, v = 1)
 *       over F flows (GIE's hot tenant), flow i at priority i % P; every
 *       flow the producers' choice tables name is registered before the
 *       timed region (GIE creates them just in time on first use and keeps
 *       them 5 min, so a run reaches that state after its warm-up).
 *   BM_gie_churn_<engine>/limit:L/shards:S/clients:W
 *       TopologyChurn, as a stream: every request names a flow never seen
 *       before (priority 0, 1024 B), created just in time, and flows idle
 *       for BENCH_E2E_CHURN_GC_NS are collected while the submits run.
 *   BM_gie_cancel_<engine>/timeout_us:T/shards:S/clients:W
 *       MassCancellation: the gate is always closed (GIE's
 *       alwaysSaturatedDetector), one flow, 1024 B; each of the W clients
 *       cancels its request T after submitting it (its context timing out)
 *       and submits the next one at once; the engine must get rid of the
 *       cancelled request (GIE: a zombie until the cleanup sweep every
 *       BENCH_E2E_SWEEP_NS). The object of a cancelled request is reused
 *       once its completion came back, so a producer owns
 *       BENCH_E2E_MAX_OBJS objects for its clients. items_per_second is
 *       then requests completed per second (GIE's zombies/s).
 * Those cases report cpu_ns_per_request too: the CPU time of every thread
 * but the benchmark thread (producers included: their submit and cancel
 * calls are engine code) per completed request.
 *
 * Context: one case at a time in the process (the flow table, the producers
 * and their tables are process-wide and reused).
 */
#ifndef FLOWQ_BENCH_E2E_H
#define FLOWQ_BENCH_E2E_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/mpsc.h>
#include <flowq/types.h>

#include "bench.h"
#include "bench_harness.h"
#include "gie_style.h"

/** Requests outstanding per producer at most in the e2e layout. */
#define BENCH_E2E_WINDOW 1024u
/** Most requests outstanding (clients) per producer in any layout. */
#define BENCH_E2E_MAX_WINDOW 4096u
/** Objects a producer owns: its clients' requests plus cancelled ones
 * whose completion has not come back yet. */
#define BENCH_E2E_MAX_OBJS 16384u
/** Producers of the GIE-benchmark layouts (GOMAXPROCS on the project's
 * 2-CPU machines). */
#define BENCH_E2E_GIE_PRODUCERS 2u
/** Churn layout: flows idle this long are collected, ns. */
#define BENCH_E2E_CHURN_GC_NS 1000000
/** Cancel layout: the GIE peer's cleanup sweep period (GIE's benchmark:
 * ExpiryCleanupInterval 10 ms), ns. */
#define BENCH_E2E_SWEEP_NS 10000000
/** Most producers a case may have. */
#define BENCH_E2E_MAX_PRODUCERS 4u
/** Most flows a case may have. */
#define BENCH_E2E_MAX_FLOWS 50000u
/** Flow choices per producer, walked cyclically (a power of two). */
#define BENCH_E2E_SEQ_LEN (1u << 17)
/** One latency sample per this many submits of a producer. */
#define BENCH_E2E_SAMPLE_EVERY 64u
/** Completions a producer takes back per return-port dequeue. */
#define BENCH_E2E_REAP 64u
/** Requests per submit call in the batch suites (BM_engine_batch_e2e,
 * BM_engine_raw_mpsc_batch): what an event loop might have read in one
 * wake-up. */
#define BENCH_E2E_SUBMIT_BATCH 32u
/** Empty polls (with exponential backoff) before a thread sleeps. */
#define BENCH_E2E_SPINS 32u
/** Latency histogram: 16 exact buckets, then 16 per power of two to 2^40 ns. */
#define BENCH_E2E_HIST_BUCKETS (16u + 16u * 36u)

/* clang-format off */
#define bench_e2e_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

/** How a family's case names read, and which workload they run. */
enum bench_e2e_layout {
	/** producers:P/flows:F/dist:D/shards:S/prios:K (BM_engine_*...). */
	BENCH_E2E_LAYOUT_E2E,
	/** limit:L/shards:S/prios:P/flows:F/clients:W (GIE's matrix). */
	BENCH_E2E_LAYOUT_MATRIX,
	/** limit:L/shards:S/clients:W (flow churn). */
	BENCH_E2E_LAYOUT_CHURN,
	/** timeout_us:T/shards:S/clients:W (mass cancellation). */
	BENCH_E2E_LAYOUT_CANCEL,
};

/** Argument positions of the e2e layout, in the order of the case names. */
enum bench_e2e_arg {
	BENCH_E2E_ARG_PRODUCERS,
	BENCH_E2E_ARG_FLOWS,
	BENCH_E2E_ARG_DIST,
	BENCH_E2E_ARG_SHARDS,
	BENCH_E2E_ARG_PRIOS,
	BENCH_E2E_NARGS
};

enum bench_e2e_dist {
	BENCH_E2E_UNIFORM = 0,
	/** Zipf, s = 1.0 (rank r has weight 1 / (r + 1)). */
	BENCH_E2E_ZIPF = 1,
	/** Zipf, s = 1.1, v = 1.0: GIE's benchmark (weight (r + 1)^-1.1). */
	BENCH_E2E_ZIPF_GIE = 2,
};

/** One case's workload and the engine settings it asks for. */
struct bench_e2e_args {
	enum bench_e2e_layout layout;
	unsigned producers;
	/** Flows of the workload (churn: 0, every request a new flow). */
	unsigned flows;
	unsigned dist;
	unsigned shards;
	unsigned prios;
	/** Requests outstanding per producer (its clients). */
	unsigned window;
	/** Most dispatched requests not yet released; 0 = unlimited. */
	unsigned limit;
	/** The gate never opens (GIE's alwaysSaturatedDetector). */
	bool saturated;
	/** Collect flows idle this long, ns; 0 = never within a run. */
	int64_t flow_gc_ns;
	/** Cancel layout: each client cancels its request this long after
	 * submitting it, ns; 0 = never. */
	uint64_t timeout_ns;
};

/** One flow of the workload; 16 bytes, in one process-wide table. */
struct bench_e2e_flow {
	/** "tenant%05u", not NUL-terminated. */
	char id[11];
	uint8_t id_len;
	/** i % K for the running case. */
	int32_t priority;
};

/** What a completion reported. */
enum bench_e2e_outcome {
	BENCH_E2E_DISPATCHED,
	/** Rejected after the submit returned (the GIE peer's capacity
	 * check runs on its processor). */
	BENCH_E2E_REJECTED,
	BENCH_E2E_EVICTED,
	BENCH_E2E_OUTCOMES
};

/** Where an object is in its life (a check, not a synchronization). */
enum bench_e2e_state {
	BENCH_E2E_FREE = 0,
	BENCH_E2E_SUBMITTED,
	BENCH_E2E_COMPLETED,
};

struct bench_e2e_producer;
struct bench_e2e_run;

/** A host request object: the engine's request plus the harness's fields. */
struct bench_e2e_obj {
	/** The engine's request; only the running suite's member is used.
	 * Objects start a line: no two share one. */
	_Alignas(64) union {
		struct flowq_req fq;
		struct gie_style_item gie;
		struct flowq_mpsc_node raw;
	} u;
	/** Link in the producer's return port; written by the completer. */
	struct flowq_mpsc_node ret;
	/** Owner; set once per case. */
	struct bench_e2e_producer *producer;
	/** Producer: 0, or the clock at submit for a sampled request. */
	uint64_t t_submit;
	/** Completer: dispatch - submit, ns, for a sampled request. */
	uint64_t lat_ns;
	/** enum bench_e2e_state. Relaxed: the submit and the return port
	 * order it; it only catches an engine completing an object twice or
	 * one it never had. */
	_Atomic uint32_t state;
	/** enum bench_e2e_outcome; completer-written. */
	uint32_t outcome;
	/** Request size, bytes (100..9099, fixed per object; churn and
	 * cancel layouts: 1024, as GIE's benchmark). */
	uint32_t bytes;
	/** Submits of this object so far (the cancel layout's clients tell a
	 * stale entry by it). */
	uint32_t gen;
	/** Churn layout: this request's flow, a new one each submit. */
	struct bench_e2e_flow churn;
};

/** A client of the cancel layout: its request and when it gives up. */
struct bench_e2e_client {
	struct bench_e2e_obj *obj;
	uint32_t gen;
	uint64_t deadline_ns;
};

/**
 * A sleep/wake handshake for a thread that waits for a flowq_mpsc to become
 * non-empty. Sleeper: set sleeping, [S1] seq_cst fence, re-check the queue,
 * wait. Waker (whose enqueue made the queue non-empty): [K1] seq_cst fence,
 * load sleeping, wake only if set. The two fences make the store-load pairs
 * sequentially consistent: the waker sees sleeping or the sleeper sees the
 * item, so no wake-up is lost, and a waker pays one fence and one load of a
 * read-shared line when nobody sleeps.
 */
struct bench_e2e_sleeper {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Set by the sleeper, cleared by a waker; both under lock. */
	_Atomic bool sleeping;
};

/** One producer thread's state; one per producer, reused by every case. */
struct bench_e2e_producer {
	/** Return port: enqueued by completing threads, dequeued here. */
	_Alignas(128) struct flowq_mpsc ret;
	/** The producer sleeps here when its window is full. */
	_Alignas(128) struct bench_e2e_sleeper wake;

	/* Producer-private from here on (read by the benchmark thread only
	 * after the batch, through the harness's done handshake). */
	_Alignas(128) struct bench_e2e_run *run;
	/** The engine handle passed to submit/finish. */
	void *engine;
	unsigned index;
	/** Flow choices (BENCH_E2E_SEQ_LEN) and the next position. */
	uint32_t *seq;
	uint32_t seq_pos;
	uint32_t sample_ctr;
	/** Objects (BENCH_E2E_MAX_OBJS, nobjs in use by the case) and the
	 * free ones (a stack). */
	struct bench_e2e_obj *objs;
	struct bench_e2e_obj *free[BENCH_E2E_MAX_OBJS];
	size_t nfree;
	size_t nobjs;
	/** Cancel layout: the clients waiting, a ring (BENCH_E2E_MAX_WINDOW). */
	struct bench_e2e_client *clients;
	/** Churn layout: flows named so far. */
	uint64_t churn_ctr;
	/* Counters over the whole case. */
	uint64_t attempts;
	uint64_t sync_rejects;
	uint64_t accepted;
	uint64_t completed;
	uint64_t outcomes[BENCH_E2E_OUTCOMES];
	/** CPU time of this thread inside produce(), ns. */
	uint64_t cpu_ns;
	/** Objects that came back in a wrong state, or failed to finish. */
	uint64_t bad;
	/** Of those, objects not put back in the free list (wrong state). */
	uint64_t leaked;
	uint64_t hist[BENCH_E2E_HIST_BUCKETS];
};

/** The producers' counters summed, for a suite's engine-side check. */
struct bench_e2e_totals {
	uint64_t attempts;
	uint64_t sync_rejects;
	uint64_t accepted;
	uint64_t completed;
	uint64_t outcomes[BENCH_E2E_OUTCOMES];
};

/** What a suite supplies: its engine. */
struct bench_e2e_suite {
	/** "BM_<suite>": the family name. */
	const char *name;
	/** Its case names and workload. */
	enum bench_e2e_layout layout;
	/** Free for the suite (e.g. a fairness policy name). */
	const char *param;
	/** Items per batch for @p a; a multiple of every P registered. */
	size_t (*batch_items)(const struct bench_e2e_args *a);
	/**
	 * Create the engine for @p run (args and flow priorities set) as
	 * run->args asks (limit, saturated, flow_gc_ns), register the flows
	 * run->reg lists (GIE's scan and flowq's registry must hold them
	 * before the timed region), set run->engine (passed to submit and
	 * finish) and run->ctx. Returns 0 or -1 with a message.
	 */
	int (*create)(struct bench_e2e_run *run, char *msg, size_t len);
	/** The harness's produce(): bench_e2e_produce_loop() instantiated. */
	size_t (*produce)(struct bench_pool *pool, unsigned index, void *ctx);
	/** Engine-side check after a batch (quiescent). 0 or -1 + message. */
	int (*verify)(struct bench_e2e_run *run, const struct bench_e2e_totals *t,
		      char *msg, size_t len);
	/** Extra counters after the run; may be NULL. */
	void (*report)(struct bench_state *st, struct bench_e2e_run *run,
		       const struct bench_e2e_totals *t);
	/** Destroy what create made. */
	void (*destroy)(struct bench_e2e_run *run);
};

/** One case's run. */
struct bench_e2e_run {
	struct bench_e2e_args args;
	const struct bench_e2e_suite *suite;
	/** Passed to submit/finish. */
	void *engine;
	/** The suite's own state. */
	void *ctx;
	/** Items each producer submits per batch. */
	size_t per_producer;
	/** Items the batches asked for so far (harness's produced sums). */
	uint64_t expected;
	struct bench_e2e_producer *producers[BENCH_E2E_MAX_PRODUCERS];
	/** The flows to register before the timed region (indexes into
	 * bench_e2e_flows): all F in the e2e layout, the ones the producers'
	 * tables name in the matrix, flow 0 for cancel, none for churn. */
	const uint32_t *reg;
	unsigned nreg;
	/** Completions of objects that were not submitted (any thread). */
	_Atomic uint64_t bad_completions;
};

/** The workload's flows (BENCH_E2E_MAX_FLOWS), process-wide. */
extern struct bench_e2e_flow *bench_e2e_flows;

/** Engine submit: 0 = accepted (a completion follows), < 0 = rejected. */
typedef int
bench_e2e_submit_fn(void *engine, struct bench_e2e_obj *o,
		    const struct bench_e2e_flow *f);
/** Producer-side finish of a completed object (flowq_release, ...). */
typedef void
bench_e2e_finish_fn(void *engine, struct bench_e2e_obj *o);
/** Engine submit of @p n objects at once (@p flows[i] for objs[i]):
 * rc[i] = 0 accepted (a completion follows), < 0 rejected. */
typedef void
bench_e2e_submit_batch_fn(void *engine, struct bench_e2e_obj *const *objs,
			  const struct bench_e2e_flow *const *flows, size_t n, int *rc);
/** Producer-side finish of @p n completed objects at once. */
typedef void
bench_e2e_finish_batch_fn(void *engine, struct bench_e2e_obj *const *objs, size_t n);
/** Client-side cancel of a submitted object (its completion follows, or
 * has already run); the return value is not used. */
typedef int
bench_e2e_cancel_fn(void *engine, struct bench_e2e_obj *o);

/** CPU time of the calling thread, ns (a vDSO-less syscall: per batch only). */
static inline uint64_t
bench_e2e_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** Sleep until @p q is non-empty or *@p stop (may be NULL) is set. */
void
bench_e2e_sleep(struct bench_e2e_sleeper *s, const struct flowq_mpsc *q,
		const _Atomic bool *stop);

/** Wake @p s's sleeper (slow path of bench_e2e_kick). */
void
bench_e2e_wake(struct bench_e2e_sleeper *s);

/** Record a completion of an object that was not submitted. */
void
bench_e2e_bad_completion(struct bench_e2e_obj *o);

/** After an enqueue that made the watched queue non-empty. */
static inline void
bench_e2e_kick(struct bench_e2e_sleeper *s)
{
	/* [K1] seq_cst, pairs with [S1] in bench_e2e_sleep(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->sleeping, memory_order_relaxed))
		bench_e2e_wake(s);
}

/**
 * The completion every engine callback ends in: stamp a sampled request's
 * latency, record the outcome, hand the object back to its producer.
 * Context: the completing thread (an engine dispatcher). The object is the
 * producer's as soon as it is enqueued: nothing after touches it.
 */
static inline void
bench_e2e_complete(struct bench_e2e_obj *o, enum bench_e2e_outcome outcome)
{
	struct bench_e2e_producer *p = o->producer;

	if (atomic_load_explicit(&o->state, memory_order_relaxed) !=
	    BENCH_E2E_SUBMITTED) {
		bench_e2e_bad_completion(o);
		return;
	}
	if (o->t_submit != 0)
		o->lat_ns = bench_now_ns() - o->t_submit;
	o->outcome = (uint32_t)outcome;
	atomic_store_explicit(&o->state, BENCH_E2E_COMPLETED, memory_order_relaxed);
	/* Release (in flowq_mpsc_enqueue): the fields above, to the producer. */
	if (flowq_mpsc_enqueue(&p->ret, &o->ret))
		bench_e2e_kick(&p->wake);
}

static inline unsigned
bench_e2e_hist_index(uint64_t ns)
{
	unsigned e, idx;

	if (ns < 16)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns); /* >= 4 */
	idx = 16u + (e - 4u) * 16u + (unsigned)((ns >> (e - 4u)) & 15u);
	return idx < BENCH_E2E_HIST_BUCKETS ? idx : BENCH_E2E_HIST_BUCKETS - 1;
}

/* Check a completion taken back and count it; false (counted as bad and
 * leaked) if the object must not be reused. */
static inline bool
bench_e2e_taken_back(struct bench_e2e_producer *p, struct bench_e2e_obj *o)
{
	if (atomic_load_explicit(&o->state, memory_order_relaxed) != BENCH_E2E_COMPLETED ||
	    o->outcome >= BENCH_E2E_OUTCOMES) {
		/* Not reused: whatever holds it may still write it. The case
		 * fails. */
		p->bad++;
		p->leaked++;
		return false;
	}
	p->completed++;
	p->outcomes[o->outcome]++;
	if (o->t_submit != 0)
		p->hist[bench_e2e_hist_index(o->lat_ns)]++;
	return true;
}

/* A finished object back on the free list. */
static inline void
bench_e2e_put_free(struct bench_e2e_producer *p, struct bench_e2e_obj *o)
{
	atomic_store_explicit(&o->state, BENCH_E2E_FREE, memory_order_relaxed);
	p->free[p->nfree++] = o;
}

/* Take back up to BENCH_E2E_REAP completions and finish each with
 * @p finish, or all of them with one @p finish_batch call (the other NULL);
 * returns how many came back. */
static inline size_t
bench_e2e_reap_with(struct bench_e2e_producer *p, bench_e2e_finish_fn *finish,
		    bench_e2e_finish_batch_fn *finish_batch)
{
	struct flowq_mpsc_node *nodes[BENCH_E2E_REAP];
	struct bench_e2e_obj *objs[BENCH_E2E_REAP];
	size_t n = flowq_mpsc_dequeue_batch(&p->ret, nodes, BENCH_E2E_REAP), k = 0;

	for (size_t i = 0; i < n; i++) {
		struct bench_e2e_obj *o =
			bench_e2e_container_of(nodes[i], struct bench_e2e_obj, ret);
		if (!bench_e2e_taken_back(p, o))
			continue;
		if (finish_batch) {
			objs[k++] = o;
			continue;
		}
		finish(p->engine, o);
		bench_e2e_put_free(p, o);
	}
	if (k) {
		finish_batch(p->engine, objs, k);
		for (size_t i = 0; i < k; i++)
			bench_e2e_put_free(p, objs[i]);
	}
	return n;
}

/* Take back up to BENCH_E2E_REAP completions; returns how many. */
static inline size_t
bench_e2e_reap(struct bench_e2e_producer *p, bench_e2e_finish_fn *finish)
{
	return bench_e2e_reap_with(p, finish, NULL);
}

/* Take back at least one completion, sleeping if none comes soon
 * (@p finish or @p finish_batch as bench_e2e_reap_with()). */
static inline void
bench_e2e_reap_wait_with(struct bench_e2e_producer *p, bench_e2e_finish_fn *finish,
			 bench_e2e_finish_batch_fn *finish_batch)
{
	unsigned spins = 0;

	while (bench_e2e_reap_with(p, finish, finish_batch) == 0) {
		if (++spins < BENCH_E2E_SPINS) {
			for (unsigned i = 0; i < 1u << (spins < 6 ? spins : 6); i++)
				bench_cpu_relax();
			continue;
		}
		bench_e2e_sleep(&p->wake, &p->ret, NULL);
		spins = 0;
	}
}

static inline void
bench_e2e_reap_wait(struct bench_e2e_producer *p, bench_e2e_finish_fn *finish)
{
	bench_e2e_reap_wait_with(p, finish, NULL);
}

/*
 * Churn layout: name a new flow in @p o: "c" and 10 hex digits of the
 * producer and its flow count (unique for 2^36 flows per producer).
 */
static inline const struct bench_e2e_flow *
bench_e2e_churn_flow(struct bench_e2e_producer *p, struct bench_e2e_obj *o)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = (uint64_t)p->index << 36 | (p->churn_ctr++ & ((1ull << 36) - 1));

	o->churn.id[0] = 'c';
	for (int d = 10; d >= 1; d--, v >>= 4)
		o->churn.id[d] = hex[v & 15];
	return &o->churn;
}

/*
 * The next free object, prepared for a submit on the next flow of the
 * producer's table (churn layout: a new flow) in *@p r_flow: latency
 * stamp for one in BENCH_E2E_SAMPLE_EVERY, state SUBMITTED. Needs a free
 * object.
 */
static inline struct bench_e2e_obj *
bench_e2e_next_obj(struct bench_e2e_producer *p, bool churn,
		   const struct bench_e2e_flow **r_flow)
{
	struct bench_e2e_obj *o = p->free[--p->nfree];

	if (churn)
		*r_flow = bench_e2e_churn_flow(p, o);
	else
		*r_flow = &bench_e2e_flows[p->seq[p->seq_pos++ & (BENCH_E2E_SEQ_LEN - 1)]];
	if (++p->sample_ctr == BENCH_E2E_SAMPLE_EVERY) {
		p->sample_ctr = 0;
		o->t_submit = bench_now_ns();
	} else {
		o->t_submit = 0;
	}
	atomic_store_explicit(&o->state, BENCH_E2E_SUBMITTED, memory_order_relaxed);
	return o;
}

/* Count the submit of @p o that returned @p rc; a rejected object goes
 * back on the free list. */
static inline void
bench_e2e_submitted(struct bench_e2e_producer *p, struct bench_e2e_obj *o, int rc)
{
	p->attempts++;
	if (rc == 0) {
		p->accepted++;
		return;
	}
	p->sync_rejects++;
	bench_e2e_put_free(p, o);
}

/**
 * One producer's share of a batch: submit run->per_producer requests (fewer
 * if the watchdog stops it), each on the next flow of its table (churn
 * layout: a new flow each), reusing objects as completions come back, then
 * wait for all of them. Returns the number of submits attempted.
 * Instantiate it with the suite's own @p submit and @p finish (constants:
 * the calls inline).
 */
static inline size_t
bench_e2e_produce_loop(struct bench_pool *pool, struct bench_e2e_producer *p,
		       bench_e2e_submit_fn *submit, bench_e2e_finish_fn *finish)
{
	const _Atomic bool *stop = bench_pool_stop_flag(pool);
	const bool churn = p->run->args.layout == BENCH_E2E_LAYOUT_CHURN;
	size_t n = p->run->per_producer, i;
	struct bench_e2e_obj *o;
	const struct bench_e2e_flow *f;
	uint64_t cpu0 = bench_e2e_thread_cpu_ns();

	for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++) {
		if (p->nfree == 0)
			bench_e2e_reap_wait(p, finish);
		o = bench_e2e_next_obj(p, churn, &f);
		bench_e2e_submitted(p, o, submit(p->engine, o, f));
	}
	/* The batch ends when every request of ours is back. */
	while (p->nfree + p->leaked < p->nobjs)
		bench_e2e_reap_wait(p, finish);
	p->cpu_ns += bench_e2e_thread_cpu_ns() - cpu0;
	return i;
}

/**
 * bench_e2e_produce_loop() for an engine's batch calls: the producer
 * prepares up to BENCH_E2E_SUBMIT_BATCH free objects (fewer when fewer are
 * free, or at the end of its share), submits them with one @p submit_batch
 * call, and finishes the completions it takes back with one
 * @p finish_batch call per return-port dequeue (up to BENCH_E2E_REAP). A
 * sampled request's latency starts when it is prepared, i.e. up to one
 * batch's preparation before the call. Returns the submits attempted.
 */
static inline size_t
bench_e2e_produce_batch_loop(struct bench_pool *pool, struct bench_e2e_producer *p,
			     bench_e2e_submit_batch_fn *submit_batch,
			     bench_e2e_finish_batch_fn *finish_batch)
{
	const _Atomic bool *stop = bench_pool_stop_flag(pool);
	const bool churn = p->run->args.layout == BENCH_E2E_LAYOUT_CHURN;
	size_t n = p->run->per_producer, i = 0;
	struct bench_e2e_obj *objs[BENCH_E2E_SUBMIT_BATCH];
	const struct bench_e2e_flow *fl[BENCH_E2E_SUBMIT_BATCH];
	int rc[BENCH_E2E_SUBMIT_BATCH];
	uint64_t cpu0 = bench_e2e_thread_cpu_ns();

	while (i < n && !atomic_load_explicit(stop, memory_order_relaxed)) {
		if (p->nfree == 0)
			bench_e2e_reap_wait_with(p, NULL, finish_batch);
		size_t b = p->nfree < BENCH_E2E_SUBMIT_BATCH ? p->nfree : BENCH_E2E_SUBMIT_BATCH;
		if (b > n - i)
			b = n - i;
		for (size_t k = 0; k < b; k++)
			objs[k] = bench_e2e_next_obj(p, churn, &fl[k]);
		submit_batch(p->engine, objs, fl, b, rc);
		for (size_t k = 0; k < b; k++)
			bench_e2e_submitted(p, objs[k], rc[k]);
		i += b;
	}
	while (p->nfree + p->leaked < p->nobjs)
		bench_e2e_reap_wait_with(p, NULL, finish_batch);
	p->cpu_ns += bench_e2e_thread_cpu_ns() - cpu0;
	return i;
}

/* Cancel layout: wait for the oldest client's deadline @p deadline, taking
 * completions back meanwhile; sleeps when it is far (the CPUs are shared
 * with the engine's threads). */
static inline void
bench_e2e_client_wait(struct bench_e2e_producer *p, bench_e2e_finish_fn *finish,
		      uint64_t deadline)
{
	struct timespec ts;
	uint64_t now;

	while ((now = bench_now_ns()) < deadline) {
		if (bench_e2e_reap(p, finish) != 0)
			continue;
		if (deadline - now < 20000) {
			bench_cpu_relax();
			continue;
		}
		ts.tv_sec = 0;
		ts.tv_nsec =
			(long)((deadline - now) < 1000000 ? deadline - now : 1000000);
		nanosleep(&ts, NULL);
	}
}

/**
 * One producer's share of a batch in the cancel layout: run->args.window
 * clients, each submitting a request, cancelling it run->args.timeout_ns
 * later (its context timing out) and submitting the next one at once, on a
 * fresh object: the cancelled one is reused once its completion came back.
 * A client keeps its request for the whole timeout even if it completes
 * earlier (the workload's gate is always closed, so none does). Deadlines
 * come in submit order, so the waiting clients form a FIFO ring. Returns the
 * number of submits attempted.
 */
static inline size_t
bench_e2e_produce_cancel_loop(struct bench_pool *pool, struct bench_e2e_producer *p,
			      bench_e2e_submit_fn *submit, bench_e2e_cancel_fn *cancel,
			      bench_e2e_finish_fn *finish)
{
	const _Atomic bool *stop = bench_pool_stop_flag(pool);
	const struct bench_e2e_flow *f = &bench_e2e_flows[0];
	struct bench_e2e_client *ring = p->clients, *c;
	unsigned clients = p->run->args.window, head = 0, count = 0;
	uint64_t timeout = p->run->args.timeout_ns;
	size_t n = p->run->per_producer, i = 0;
	struct bench_e2e_obj *o;
	uint64_t cpu0 = bench_e2e_thread_cpu_ns(), now;

	for (;;) {
		/* Every idle client submits. */
		while (count < clients && i < n && !bench_pool_stop_due(stop, i)) {
			if (p->nfree == 0)
				bench_e2e_reap_wait(p, finish);
			o = p->free[--p->nfree];
			o->t_submit = 0;
			o->gen++;
			atomic_store_explicit(&o->state, BENCH_E2E_SUBMITTED,
					      memory_order_relaxed);
			p->attempts++;
			i++;
			if (submit(p->engine, o, f) != 0) {
				p->sync_rejects++;
				atomic_store_explicit(&o->state, BENCH_E2E_FREE,
						      memory_order_relaxed);
				p->free[p->nfree++] = o;
				continue;
			}
			p->accepted++;
			c = &ring[(head + count++) % BENCH_E2E_MAX_WINDOW];
			c->obj = o;
			c->gen = o->gen;
			c->deadline_ns = bench_now_ns() + timeout;
		}
		if (count == 0)
			break; /* share done, every client has given up */
		/* The oldest client times out first. */
		c = &ring[head];
		bench_e2e_client_wait(p, finish, c->deadline_ns);
		now = bench_now_ns();
		while (count != 0 && ring[head].deadline_ns <= now) {
			c = &ring[head];
			head = (head + 1) % BENCH_E2E_MAX_WINDOW;
			count--;
			/* Still this client's request (not completed and
			 * reused already): cancel it. */
			if (c->obj->gen == c->gen &&
			    atomic_load_explicit(&c->obj->state, memory_order_relaxed) !=
				    BENCH_E2E_FREE)
				(void)cancel(p->engine, c->obj);
		}
	}
	while (p->nfree + p->leaked < p->nobjs)
		bench_e2e_reap_wait(p, finish);
	p->cpu_ns += bench_e2e_thread_cpu_ns() - cpu0;
	return i;
}

/**
 * The benchmark function of every case of @p suite: set the case up, run
 * bench_pool_measure() in completion mode, check, report. Counters:
 * items_per_second (dispatched requests per second of wall time), p50_ns
 * and p99_ns (submit -> dispatch of the sampled requests), lat_samples,
 * rejected (on the spot or later), window, stalled,
 * engine_cpu_ns_per_decision (CPU time of the process minus the benchmark
 * thread's and the producers', i.e. of the engine's own threads, per
 * dispatched request: the decision cost without the producers' share, for
 * engines that do not expose their threads; it includes their idle
 * spinning, if any); plus the suite's.
 */
void
bench_e2e_case(struct bench_state *st, const struct bench_e2e_suite *suite);

/**
 * Register @p suite's family (layout MATRIX) over GIE's PerformanceMatrix:
 * L in {0, 1, 100} x S in {1, 2} x P in {1, 8} x flows @p flows x W in {10,
 * 5000}, without the coordinates GIE skips (L = 0 with W > 100: free flow
 * needs no depth; L > 0 with W <= L: no backpressure). @p one_batch: run
 * exactly one batch per repetition (Iterations(1)) for slow engines. The
 * family's benchmark function must call bench_e2e_case().
 */
struct bench_case *
bench_e2e_register_matrix(const struct bench_e2e_suite *suite,
			  void (*fn)(struct bench_state *st, void *arg),
			  const unsigned *flows, size_t nflows, bool one_batch);

/**
 * Register @p suite's family in the churn or the cancel layout (by
 * suite->layout). Churn: GIE's TopologyChurn coordinate, L = 100, S = 4, W =
 * 200 (100 per GOMAXPROCS), plus S = 1. Cancel: GIE's MassCancellation
 * coordinate, S = 4, W = 200, a 50 ms timeout, plus a 100 us timeout, at
 * which the clients give up faster than an engine takes requests in and the
 * engine's cost per cancellation sets the rate.
 */
struct bench_case *
bench_e2e_register_gie(const struct bench_e2e_suite *suite,
		       void (*fn)(struct bench_state *st, void *arg));

/**
 * Register @p suite's family over the matrix P in {1, 2, 4} x flows @p flows
 * (each with both distributions, but F = 1 uniform only) x S in {1, 2} x K in
 * {1, 8}. @p iterations > 0 fixes the iteration count (for slow engines:
 * Google Benchmark's min_time then no longer applies); 0 leaves it to
 * min_time. The family's benchmark function must call bench_e2e_case().
 */
struct bench_case *
bench_e2e_register_family(const struct bench_e2e_suite *suite,
			  void (*fn)(struct bench_state *st, void *arg),
			  const unsigned *flows, size_t nflows, int64_t iterations);

#endif /* FLOWQ_BENCH_E2E_H */
