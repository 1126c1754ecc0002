/*
 * stress_faults: the engine under injected faults (issue 6, "Fault
 * injection"). Built only with FLOWQ_FAULT_INJECTION=ON (core/fault.h).
 *
 *   stress_faults alloc threaded|polled EVERY PER_MILLION ROUNDS [SEED]
 *       Allocation failure through the allocator hook (count_alloc.h):
 *       every EVERY-th allocation fails (0: none) and each one fails with
 *       chance PER_MILLION / 10^6, over ROUNDS whole engine lives: create
 *       (retried until it succeeds), a completion port, producers on
 *       just-in-time flows of just-in-time bands (1 ms GC: flows and bands
 *       churn), flow handles, cancels, statistics walks, destroy. Checks:
 *       every failing call returns -ENOMEM (a submit also with
 *       REJECTED_OTHER / NO_MEMORY), exactly one outcome per accepted
 *       request, conservation (stats_conservation), no block and no byte
 *       outstanding after each destroy, no bad free.
 *   stress_faults stall PRODUCERS SHARDS SECONDS [SEED]
 *       Random dispatcher stalls: every D_* point (fault.h) stalls with
 *       chance STALL_PPM for STALL_MIN..STALL_MAX ms while producers submit
 *       (with TTLs, in bursts: BURST_MS of every PERIOD_MS) against a
 *       global limit. Checks: producers never block (a submit that made a
 *       voluntary context switch, i.e. slept in the kernel, is a blocked
 *       one: at most BLOCKED_ALLOWED, for liburcu's registration and the
 *       band lock of a band's creation, plus, under TSan, its runtime's own
 *       blocking mutexes; preemption is involuntary and does
 *       not count, so the check holds on a loaded machine; the maximum
 *       latency and the submits slower than STALL_MIN are reported), the queue
 *       stays within the admission limits (hosts' count <= GLOBAL_LIMIT +
 *       PRODUCERS; the engine's sampled in flight <= INFLIGHT; its sampled
 *       queued is reported, not checked: a per-flow sum, not a snapshot,
 *       see run_stall()), and TTL expiries are delivered right after
 *       the later of the expiry and the end of their dispatcher's last
 *       stall, less the time the dispatcher waited for a CPU meanwhile
 *       (its run-queue wait since its previous completion,
 *       /proc/thread-self/schedstat: the machine's load is not the
 *       engine's): the 90th percentile of that delay below
 *       EXPIRY_P90_BOUND, the 99th below EXPIRY_P99_BOUND (p50 and the
 *       maximum reported).
 *   stress_faults clock PRODUCERS SHARDS SECONDS [SEED]
 *       Clock faults through the clock hook: a controller jumps the engine
 *       clock forward and back (up to 200 ms) and freezes it for 10-40 ms,
 *       calling flowq_engine_wake() after each move. Checks: no request is
 *       dispatched at or past its expiry by its round's clock, and none
 *       evicted for TTL before it (the round's clock is the first read
 *       after the round's D_ROUND_START point); no starvation (every
 *       request gets its outcome; dispatches happen while the clock is
 *       frozen); no negative duration in the statistics (queue-time sums
 *       within count x the clock's span).
 *   stress_faults storm PRODUCERS SHARDS ROUNDS [SEED]
 *       Cancellation storms: producers submit (short TTLs, four priorities,
 *       a full global limit with displacement) while CANCELLERS threads
 *       cancel random requests of every producer (the same request from
 *       several threads), with short spins injected between claim and
 *       finalize on every side (S_CLAIMED, S_QUEUED, C_WON, D_CLAIMED);
 *       after a random 50-300 ms each round stops its threads and destroys
 *       the engine with requests queued, in inboxes and cancel messages in
 *       flight. Checks: every accepted request gets exactly one outcome
 *       (through destroy), exactly one cancel of a request wins and it is
 *       the request's outcome, rejected submits get none.
 *
 * Output: one line on stdout, "SUMMARY stress_faults MODE ... violations=V
 * seconds=T"; the figures on stderr. Exit status 1 if V > 0. A watchdog
 * aborts a run that makes no progress for STALL_SECONDS (test_util.h).
 *
 * Soak mode (FLOWQ_STRESS_SECONDS=N, stress_soak.h; tools/test --long):
 * the run above is repeated for N seconds, each time from a clean state
 * (struct state, the fault points' counters) with its own checks, and seed
 * SEED + i x 0x9e3779b97f4a7c15 in iteration i (iteration 0 is the plain
 * run; a failing iteration prints its seed). The SOAK line counts per
 * engine life the submits (ops), the outcomes (rejections from the engine's
 * statistics, the rest from the completions) and the faults injected
 * ("faults": failed allocations, dispatcher stalls, clock jumps and
 * freezes, or storm spins).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <flowq/flowq.h>

#include "count_alloc.h"
#include "engine.h"
#include "fault.h"
#include "stress_engine_util.h"
#include "stress_soak.h"
#include "test_util.h"

#define PROG        "stress_faults"
#define MAX_THREADS 16
/* Requests per producer (the window it reuses): stall mode's 4 x 160
 * exceed GLOBAL_LIMIT, so the queue bound is tested; the allocation mode
 * uses a smaller one (polled, a producer that picks still-queued slots
 * only yields: on a loaded machine 160 slowed it tenfold). */
#define WINDOW        160
#define WINDOW_ALLOC  48
#define STALL_SECONDS 20
#define GLOBAL_LIMIT  256
#define INFLIGHT      16
#define MS            INT64_C(1000000)

/* Max of @p v into @p m. */
static void
atomic_max(_Atomic int64_t *m, int64_t v)
{
	int64_t c = atomic_load_explicit(m, memory_order_relaxed);
	while (v > c && !atomic_compare_exchange_weak_explicit(
				m, &c, v, memory_order_relaxed, memory_order_relaxed))
		;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* A log2 histogram of durations (ns) for the percentiles reported. */
struct lat_hist {
	_Atomic uint64_t b[64];
};

static void
lat_add(struct lat_hist *h, int64_t ns)
{
	unsigned i = ns <= 1 ? 0 : 64u - (unsigned)__builtin_clzll((uint64_t)ns);
	atomic_fetch_add_explicit(&h->b[i > 63 ? 63 : i], 1, memory_order_relaxed);
}

/* Upper bound (ns) of the @p q quantile. */
static int64_t
lat_quantile(struct lat_hist *h, double q)
{
	uint64_t n = 0, c = 0;
	for (unsigned i = 0; i < 64; i++)
		n += atomic_load(&h->b[i]);
	for (unsigned i = 0; i < 64; i++) {
		c += atomic_load(&h->b[i]);
		if (n && (double)c >= q * (double)n)
			return i == 0 ? 1 : (int64_t)1 << (i < 63 ? i : 62);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The host's requests (every mode)                                         */
/* ------------------------------------------------------------------------ */

struct hreq {
	struct flowq_req req;
	_Atomic int completions;
	_Atomic int outcome;
	/* storm: cancellers hold it (> 0) while they cancel; the owner takes
	 * it to -1 to re-initialize the request (test protocol, not API). */
	_Atomic int cgate;
	_Atomic int cancel_wins;
	bool outstanding;
	/* storm: the current incarnation was accepted (owner-private). */
	bool was_accepted;
	char id[24];
};

struct producer {
	pthread_t thread;
	unsigned index;
	uint64_t seed;
	unsigned long requests;
	uint64_t accepted, rejected, cancels_won;
	uint64_t enomem_submit, enomem_flow_get, enomem_stats;
	struct hreq *win;
};

/*
 * The run's state, every mode's in one place: run() resets it all at the
 * start of each run (stress_soak.h: in soak mode one process runs the
 * workload again and again). Thread-local state (the dispatchers' and the
 * clock's) belongs to threads that a run creates and joins.
 */
static struct state {
	/* Every mode. */
	_Atomic uint64_t progress; /* for the watchdog */
	struct flowq_engine *engine;
	_Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT];
	struct test_watchdog watchdog;
	struct producer ps[MAX_THREADS];
	unsigned nproducers;
	unsigned window; /* slots per producer used (<= WINDOW) */
	_Atomic int stop_flag;
	uint64_t seed; /* the run's seed (SEED, plus the soak iteration) */
	/* alloc */
	struct test_count_alloc ca;
	bool alloc_polled;
	uint64_t enomem_create, enomem_port, creates;
	/* stall */
	struct lat_hist submit_lat;
	int64_t *expiry_delays;
	_Atomic uint64_t blocked_submits;
	_Atomic int64_t submit_max, expiry_max;
	_Atomic uint64_t slow_submits, expiries, queued_seen_max, inflight_seen_max;
	_Atomic uint64_t host_queued, host_queued_max;
	double run_seconds; /* stall and clock */
	/* clock: the faulty clock is CLOCK_MONOTONIC + offset, or a frozen
	 * value (clk_frozen: 0 = running). */
	_Atomic int64_t clk_offset, clk_frozen;
	_Atomic int64_t clk_min, clk_max;
	_Atomic uint64_t jumps_fwd, jumps_back, freezes, frozen_dispatches, early_checks;
	_Atomic int clk_is_frozen;
	/* storm */
	_Atomic uint64_t storm_cancel_calls, storm_cancel_won;
} g;

static void
stall_dump(void)
{
	if (g.engine)
		flowq__debug_dump(g.engine, stderr);
}

/* The run's seed: argv[@p at] (default 1), plus a step for each soak
 * iteration before this one (stress_soak_iteration(): iteration 0, the
 * CTest run, uses the given seed; a failing soak iteration prints its own,
 * to be given as SEED). */
static uint64_t
run_seed(int argc, char **argv, int at)
{
	uint64_t seed = argc > at ? test_parse_ulong(PROG, argv[at], "seed", 0, ~0ul) : 1;
	g.seed = seed + stress_soak_iteration() * UINT64_C(0x9e3779b97f4a7c15);
	return g.seed;
}

/* PRODUCERS SHARDS N [SEED] of the stall, clock and storm modes (N: @p
 * what, at most @p nmax; exits with the usage on anything else), and in
 * @p r_cfg a configuration with those shards and at most @p inflight
 * requests in flight. */
struct args {
	unsigned np, ns;
	unsigned long n;
	uint64_t seed;
};

static struct args
mode_args(int argc, char **argv, const char *what, unsigned long nmax, uint32_t inflight,
	  struct flowq_config *r_cfg)
{
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: %s %s PRODUCERS SHARDS %s [SEED]\n", PROG,
			argv[1], what);
		exit(2);
	}
	flowq_config_init(r_cfg);
	r_cfg->saturation.max_inflight = inflight;
	r_cfg->shards = (unsigned)test_parse_ulong(PROG, argv[3], "shards", 1, 64);
	return (struct args){.np = (unsigned)test_parse_ulong(PROG, argv[2], "producers",
							      1, MAX_THREADS),
			     .ns = r_cfg->shards,
			     .n = test_parse_ulong(PROG, argv[4], what, 1, nmax),
			     .seed = run_seed(argc, argv, 5)};
}

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct hreq *h = arg;
	enum flowq_outcome o = stress_completion_check(PROG, req, g.completed_by);
	atomic_fetch_add_explicit(&g.progress, 1, memory_order_relaxed);
	stress_completion_publish(PROG, h, &h->outcome, &h->completions, o);
}

/* Release @p h's request if it was dispatched (its completion seen). */
static void
settle_done(struct hreq *h)
{
	h->outstanding = false;
	if (atomic_load_explicit(&h->outcome, memory_order_relaxed) == FLOWQ_DISPATCHED &&
	    flowq_release(g.engine, &h->req) != 0)
		test_violation(PROG, "release of a dispatched request failed");
}

static bool
try_settle(struct hreq *h)
{
	if (!h->outstanding)
		return true;
	if (atomic_load_explicit(&h->completions, memory_order_acquire) == 0)
		return false;
	settle_done(h);
	return true;
}

/* Settle the whole window (queued requests may wait for gate slots that
 * dispatched ones of this window hold: release those as they come). */
static void
settle_all(struct producer *p)
{
	for (unsigned left = g.window; left;) {
		left = 0;
		for (unsigned i = 0; i < g.window; i++)
			if (!try_settle(&p->win[i]))
				left++;
		if (left)
			sched_yield();
	}
}

/* Check a failed submit: @p rc is one of @p ok (besides -ENOMEM, which
 * needs cause NO_MEMORY), the outcome a rejection. */
static void
check_rejected(struct producer *p, struct hreq *h, int rc)
{
	p->rejected++;
	enum flowq_outcome o = flowq_req_outcome(&h->req);
	if (!flowq_outcome_is_rejected(o))
		test_violation(PROG, "submit %d left outcome %s", rc,
			       flowq_outcome_str(o));
	if (rc == -ENOMEM) {
		p->enomem_submit++;
		if (o != FLOWQ_REJECTED_OTHER ||
		    flowq_req_cause(&h->req) != FLOWQ_CAUSE_NO_MEMORY)
			test_violation(PROG, "-ENOMEM with %s/%s", flowq_outcome_str(o),
				       flowq_cause_str(flowq_req_cause(&h->req)));
	} else if (rc != -ENOSPC && rc != -ETIMEDOUT) {
		test_violation(PROG, "unexpected submit error %d", rc);
	}
}

/* Prepare @p h for a submit on flow "<prefix><flow>" at @p prio. */
static void
req_prepare(struct hreq *h, const char *prefix, unsigned flow, int32_t prio,
	    uint64_t bytes)
{
	flowq_req_init(&h->req);
	atomic_store_explicit(&h->completions, 0, memory_order_relaxed);
	atomic_store_explicit(&h->cancel_wins, 0, memory_order_relaxed);
	int len = snprintf(h->id, sizeof(h->id), "%s%u", prefix, flow);
	h->req.flow_id = h->id;
	h->req.flow_id_len = (uint32_t)len;
	h->req.priority = prio;
	h->req.bytes = bytes;
	h->req.complete = on_complete;
	h->req.arg = h;
}

/* A producer's next slot: a random one of its window, settled; NULL if
 * it is still queued (then cancelled with chance 1 / @p cancel_one_in,
 * 0 = never, and the producer yields). *r_rng gets the step's random word. */
static struct hreq *
pick_slot(struct producer *p, uint64_t *rng, uint64_t *r_rng, unsigned cancel_one_in)
{
	struct hreq *h = &p->win[test_rng_next(rng) % g.window];
	uint64_t r = *r_rng = test_rng_next(rng);
	if (try_settle(h))
		return h;
	if (cancel_one_in && r % cancel_one_in == 0 &&
	    flowq_cancel(g.engine, &h->req) == 0)
		p->cancels_won++;
	sched_yield();
	return NULL;
}

/* Account flowq_submit()'s @p rc for @p h. */
static void
submitted(struct producer *p, struct hreq *h, int rc)
{
	atomic_fetch_add_explicit(&g.progress, 1, memory_order_relaxed);
	if (rc == 0) {
		h->outstanding = true;
		p->accepted++;
	} else {
		check_rejected(p, h, rc);
	}
}

/* The producers' counts, summed. */
struct sums {
	uint64_t accepted, rejected, cancels_won;
};

static struct sums
producer_sums(void)
{
	struct sums t = {0};
	for (unsigned i = 0; i < g.nproducers; i++) {
		t.accepted += g.ps[i].accepted;
		t.rejected += g.ps[i].rejected;
		t.cancels_won += g.ps[i].cancels_won;
	}
	return t;
}

/* At quiescence: stress_check_conservation() on the producers' counts;
 * the engine's statistics in @p r_st. @return the producers' sums. */
static struct sums
check_conservation(struct flowq_stats *r_st)
{
	struct sums t = producer_sums();
	stress_check_conservation(PROG, g.engine, g.completed_by, t.accepted,
				  t.cancels_won, r_st);
	return t;
}

/* The SOAK line's counts of one engine life (stress_soak.h; nothing unless
 * soaking): @p ops submits, the outcomes (completions in g.completed_by,
 * rejections in @p st, the engine's statistics) and @p faults injected
 * (failed allocations, stalls or spins, clock moves). */
static void
soak_count(uint64_t ops, const struct flowq_stats *st, uint64_t faults)
{
	stress_soak_engine(ops, g.completed_by, st);
	stress_soak_count("faults", faults);
}

static void
sleep_ns(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
	nanosleep(&ts, NULL);
}

static void
start_producers(unsigned np, uint64_t seed, unsigned long nreq, void *(*fn)(void *))
{
	g.nproducers = np;
	for (unsigned i = 0; i < np; i++) {
		struct hreq *win = g.ps[i].win;
		g.ps[i] = (struct producer){.index = i,
					    .seed = seed * 1000 + i,
					    .requests = nreq,
					    .win = win};
		if (!g.ps[i].win)
			g.ps[i].win = calloc(WINDOW, sizeof(struct hreq));
		else
			memset(g.ps[i].win, 0, WINDOW * sizeof(struct hreq));
		if (!g.ps[i].win || pthread_create(&g.ps[i].thread, NULL, fn, &g.ps[i])) {
			fprintf(stderr, "%s: cannot start producer %u\n", PROG, i);
			exit(1);
		}
	}
}

static void
join_producers(void)
{
	for (unsigned i = 0; i < g.nproducers; i++)
		pthread_join(g.ps[i].thread, NULL);
}

/* ------------------------------------------------------------------------ */
/* alloc                                                                    */
/* ------------------------------------------------------------------------ */

static int
count_band(int32_t prio, const struct flowq_stats *st, void *ctx)
{
	(void)prio;
	(void)st;
	(*(unsigned *)ctx)++;
	return 0;
}

static void *
alloc_producer(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	for (unsigned long done = 0; done < p->requests;) {
		uint64_t r;
		struct hreq *h = pick_slot(p, &rng, &r, 8);
		if (!h)
			continue;
		/* 64 flows over 8 priorities: every request may create a
		 * flow, and a band, each collected 1 ms after its last use. */
		req_prepare(h, "a", (unsigned)(r % 64), (int32_t)((r >> 8) % 8), 64);
		if ((r >> 16) % 4 == 0)
			h->req.ttl_ns = 100000 + (int64_t)((r >> 20) % 2000000);
		struct flowq_flow *f = NULL;
		if ((r >> 24) % 8 == 0) {
			/* Through a handle (flow_get allocates too). */
			int rc = flowq_flow_get(g.engine, h->id, h->req.flow_id_len,
						h->req.priority, &f);
			if (rc == -ENOMEM) {
				p->enomem_flow_get++;
				f = NULL;
			} else if (rc != 0) {
				test_violation(PROG, "flow_get returned %d", rc);
				f = NULL;
			}
			h->req.flow = f;
		}
		int rc = flowq_submit(g.engine, &h->req);
		submitted(p, h, rc);
		if (f)
			flowq_flow_put(g.engine, f);
		if ((r >> 28) % 256 == 0) {
			unsigned n = 0;
			rc = flowq_stats_foreach_band(g.engine, count_band, &n);
			if (rc == -ENOMEM)
				p->enomem_stats++;
			else if (rc != 0)
				test_violation(PROG, "stats_foreach_band returned %d",
					       rc);
		}
		done++;
	}
	settle_all(p);
	return NULL;
}

/* Polled mode: the host's loop polls every shard until told to stop. */
static void *
alloc_poller(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&g.stop_flag, memory_order_acquire)) {
		int n = 0;
		for (unsigned s = 0; s < flowq_shard_count(g.engine); s++) {
			int k = flowq_shard_poll(g.engine, s, 0, NULL);
			if (k < 0)
				test_violation(PROG, "shard_poll returned %d", k);
			n += k > 0 ? k : 0;
		}
		if (!n)
			sched_yield();
	}
	return NULL;
}

static int
run_alloc(int argc, char **argv)
{
	if (argc < 6 || argc > 7) {
		fprintf(stderr,
			"usage: %s alloc threaded|polled EVERY PER_MILLION ROUNDS "
			"[SEED]\n",
			PROG);
		return 2;
	}
	g.alloc_polled = strcmp(argv[2], "polled") == 0;
	if (!g.alloc_polled && strcmp(argv[2], "threaded") != 0) {
		fprintf(stderr, "%s: mode must be threaded or polled\n", PROG);
		return 2;
	}
	unsigned long every = test_parse_ulong(PROG, argv[3], "every", 0, 1000000);
	unsigned long ppm = test_parse_ulong(PROG, argv[4], "per_million", 0, 1000000);
	unsigned long rounds = test_parse_ulong(PROG, argv[5], "rounds", 1, 100000);
	uint64_t seed = run_seed(argc, argv, 6);
	test_count_alloc_init(&g.ca);
	test_count_alloc_seed(&g.ca, seed);
	g.window = WINDOW_ALLOC;
	double t0 = test_now_seconds();
	test_watchdog_start(&g.watchdog);
	uint64_t accepted_total = 0, rejected_total = 0, enomem_sub = 0, enomem_fg = 0,
		 enomem_st = 0, failed_total = 0, attempts_total = 0;
	for (unsigned long round = 0; round < rounds; round++) {
		/* Failures off while the round sets up its counters. */
		atomic_store(&g.ca.every, 0);
		atomic_store(&g.ca.per_million, 0);
		g.ca.fail_after = ~0ul;
		for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
			atomic_store(&g.completed_by[o], 0);
		unsigned long f0 = atomic_load(&g.ca.failed),
			      a0 = atomic_load(&g.ca.attempts);
		atomic_store(&g.ca.every, every);
		atomic_store(&g.ca.per_million, (uint32_t)ppm);

		struct flowq_config cfg;
		flowq_config_init(&cfg);
		cfg.shards = 2;
		cfg.mode = g.alloc_polled ? FLOWQ_MODE_POLLED : FLOWQ_MODE_THREADED;
		cfg.max_requests = GLOBAL_LIMIT;
		cfg.saturation.max_inflight = INFLIGHT;
		cfg.flow_gc_timeout_ns = MS;
		cfg.allocator = &g.ca.a;
		/* Create fails at each of its allocations in turn. */
		unsigned nfail, leaky;
		int rc = test_count_alloc_create(&g.ca, &cfg, &g.engine, &nfail, &leaky);
		if (rc != 0) {
			test_violation(PROG, "create returned %d", rc);
			return 1;
		}
		if (leaky)
			test_violation(PROG, "%u failed creates left blocks", leaky);
		g.enomem_create += nfail;
		g.creates++;
		struct flowq_port *port = NULL;
		for (unsigned tries = 0; (rc = flowq_port_create(g.engine, &port)) != 0;
		     tries++) {
			if (rc != -ENOMEM || tries > 10000) {
				test_violation(PROG, "port_create returned %d", rc);
				port = NULL;
				break;
			}
			g.enomem_port++;
		}
		pthread_t poller;
		atomic_store(&g.stop_flag, 0);
		if (g.alloc_polled && pthread_create(&poller, NULL, alloc_poller, NULL))
			exit(1);
		start_producers(3, seed + round, 1000, alloc_producer);
		join_producers();
		atomic_store_explicit(&g.stop_flag, 1, memory_order_release);
		if (g.alloc_polled)
			pthread_join(poller, NULL);
		/* Quiescent: conservation and the engine's own counts. */
		struct flowq_stats st;
		struct sums t = check_conservation(&st);
		uint64_t rejected = t.rejected, enomem = 0;
		for (unsigned i = 0; i < g.nproducers; i++) {
			enomem += g.ps[i].enomem_submit;
			enomem_fg += g.ps[i].enomem_flow_get;
			enomem_st += g.ps[i].enomem_stats;
		}
		if (st.outcomes[FLOWQ_REJECTED_CAPACITY] +
			    st.outcomes[FLOWQ_REJECTED_OTHER] !=
		    rejected)
			test_violation(PROG, "stats rejected != host rejected %" PRIu64,
				       rejected);
		if (st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_NO_MEMORY] != enomem)
			test_violation(
				PROG,
				"stats no_memory %" PRIu64 " != host -ENOMEM %" PRIu64,
				st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_NO_MEMORY],
				enomem);
		if (port)
			flowq_port_destroy(port);
		flowq_engine_destroy(g.engine);
		g.engine = NULL;
		if (atomic_load(&g.ca.blocks) != 0 || atomic_load(&g.ca.outstanding) != 0)
			test_violation(PROG, "round %lu: %ld blocks (%zu bytes) leaked",
				       round, (long)atomic_load(&g.ca.blocks),
				       (size_t)atomic_load(&g.ca.outstanding));
		if (atomic_load(&g.ca.bad_frees))
			test_violation(PROG, "bad frees: %lu",
				       atomic_load(&g.ca.bad_frees));
		uint64_t failed = atomic_load(&g.ca.failed) - f0;
		soak_count(t.accepted + rejected, &st, failed);
		accepted_total += t.accepted;
		rejected_total += rejected;
		enomem_sub += enomem;
		failed_total += failed;
		attempts_total += atomic_load(&g.ca.attempts) - a0;
	}
	test_watchdog_stop(&g.watchdog);
	double secs = test_now_seconds() - t0;
	fprintf(stderr,
		"%s: alloc %s every=%lu ppm=%lu: allocations %" PRIu64 " failed %" PRIu64
		"; -ENOMEM: create %" PRIu64 " port %" PRIu64 " submit %" PRIu64
		" flow_get %" PRIu64 " stats %" PRIu64 "; accepted %" PRIu64
		" rejected %" PRIu64 "; leaked blocks 0 unless reported\n",
		PROG, argv[2], every, ppm, attempts_total, failed_total, g.enomem_create,
		g.enomem_port, enomem_sub, enomem_fg, enomem_st, accepted_total,
		rejected_total);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s alloc mode=%s every=%lu ppm=%lu rounds=%lu "
	       "alloc_failed=%" PRIu64 " enomem=%" PRIu64
	       " leaked_blocks=%ld violations=%lu seconds=%.2f\n",
	       PROG, argv[2], every, ppm, rounds, failed_total,
	       g.enomem_create + g.enomem_port + enomem_sub + enomem_fg + enomem_st,
	       (long)atomic_load(&g.ca.blocks), v, secs);
	return v ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* stall                                                                    */
/* ------------------------------------------------------------------------ */

#define STALL_PPM 20000 /* 2 % of the hits */
#define STALL_MIN (5 * MS)
#define STALL_MAX (25 * MS)
/* Producers submit in bursts of BURST ms every PERIOD ms: between bursts
 * expiries are the dispatchers' timers' alone (a dispatcher that slept
 * through its timer would deliver them at the next burst). */
#define BURST_MS  40
#define PERIOD_MS 240
/* The 90th percentile of the expiry delay after resume must stay below
 * this. About half the expiries fall between bursts (TTLs of 1-40 ms), so
 * a dispatcher that slept through its timers would put the 90th
 * percentile near the 200 ms pause; p99 and the maximum are reported, not
 * checked: on a machine shared with other jobs (load 20 on 2 cores seen)
 * a preempted dispatcher makes outliers of 100 ms under TSan. */
#ifdef FLOWQ_TSAN
#define EXPIRY_P90_BOUND (50 * MS)
#else
#define EXPIRY_P90_BOUND (20 * MS)
#endif
/* And the 99th below this (under TSan at load 20, 95 ms was seen). */
#define EXPIRY_P99_BOUND (300 * MS)
#define MAX_EXPIRIES     (1u << 20)
#define EXPIRIES_BYTES   (MAX_EXPIRIES * sizeof(int64_t))

/* Submits that slept in the kernel: a thread's first call registers it
 * with liburcu (a mutex), a new band takes the band lock. Under TSan, its
 * runtime's own internal mutexes block too, more the more the threads
 * really run in parallel (0-3 such submits in a fault build without TSan,
 * 26-47 of ~46,000 with it, at a load average of 4; under 24 at load 19):
 * one per 500 submits more there. A submit that waits for the dispatcher
 * (an injected bug) made 380 sleep. */
#ifdef FLOWQ_TSAN
#define BLOCKED_ALLOWED(np, submits) (4 * (np) + 8 + (submits) / 500)
#else
#define BLOCKED_ALLOWED(np, submits) (4 * (np) + 8 + 0 * (submits))
#endif

/* The calling thread's time spent runnable but waiting for a CPU, ns
 * (/proc/thread-self/schedstat, second field); -1 if unknown. */
static int64_t
runq_wait_self(void)
{
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	long long run, wait = -1;
	if (f) {
		if (fscanf(f, "%lld %lld", &run, &wait) != 2)
			wait = -1;
		fclose(f);
	}
	return wait;
}

/* Per dispatcher thread: the run-queue wait at its previous completion
 * (the expiry delay is corrected by the wait since then). */
static _Thread_local int64_t prev_wait = -1;

/* The calling thread's voluntary context switches so far. */
static long
nvcsw_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

static void
on_complete_stall(struct flowq_req *req, void *arg)
{
	if (flowq_req_outcome(req) == FLOWQ_EVICTED_TTL) {
		/* On the dispatcher that decided it: from the later of the
		 * expiry and this thread's last stall's end. */
		int64_t now = test_now_ns();
		int64_t from = req->priv.expire;
		int64_t resumed = flowq__fault_thread_resumed_ns();
		if (resumed > from)
			from = resumed;
		int64_t d = now - from;
		/* Time spent waiting for a CPU (a loaded machine) is not the
		 * engine's: take off the run-queue wait since this thread's
		 * previous completion. If that completion came after @from,
		 * the wait is part of the delay's own window (exact: a
		 * thread's own schedstat is current while it runs). If it came
		 * before, the wait may include some from before @from: lenient
		 * by that much, as session 7 had it; a dispatcher that slept
		 * through its timer was asleep, not waiting, and stays
		 * charged either way. (Until session 9 the wait after a
		 * completion later than @from was not taken off: one TSan run
		 * at load 10-16 failed its p90 with a dispatcher preempted
		 * between two completions.) */
		int64_t w = runq_wait_self();
		if (w >= 0 && prev_wait >= 0 && w - prev_wait > 0) {
			d -= w - prev_wait;
			d = d < 0 ? 0 : d;
		}
		atomic_max(&g.expiry_max, d);
		uint64_t i =
			atomic_fetch_add_explicit(&g.expiries, 1, memory_order_relaxed);
		if (i < MAX_EXPIRIES)
			g.expiry_delays[i] = d;
	}
	prev_wait = runq_wait_self();
	atomic_fetch_sub_explicit(&g.host_queued, 1, memory_order_relaxed);
	on_complete(req, arg);
}

static void *
stall_producer(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	double end = test_now_seconds() + g.run_seconds;
	while (test_now_seconds() < end) {
		if ((test_now_ns() / MS) % PERIOD_MS >= BURST_MS) {
			/* Between bursts no call at all (not even a release,
			 * which would wake a dispatcher): timers only. */
			sleep_ns(MS);
			continue;
		}
		uint64_t r;
		struct hreq *h = pick_slot(p, &rng, &r, 0);
		if (!h)
			continue;
		req_prepare(h, "s", (unsigned)(r % 32), (int32_t)((r >> 8) % 3), 100);
		h->req.complete = on_complete_stall;
		/* Half expire within 1-40 ms, the rest never. */
		if ((r >> 16) % 2 == 0)
			h->req.ttl_ns = MS + (int64_t)((r >> 20) % (39 * MS));
		stress_queued_inc(&g.host_queued, &g.host_queued_max);
		long cs0 = nvcsw_self();
		int64_t t0 = test_now_ns();
		int rc = flowq_submit(g.engine, &h->req);
		int64_t d = test_now_ns() - t0;
		if (nvcsw_self() != cs0)
			atomic_fetch_add_explicit(&g.blocked_submits, 1,
						  memory_order_relaxed);
		lat_add(&g.submit_lat, d);
		atomic_max(&g.submit_max, d);
		if (d >= STALL_MIN)
			atomic_fetch_add_explicit(&g.slow_submits, 1,
						  memory_order_relaxed);
		if (rc != 0)
			atomic_fetch_sub_explicit(&g.host_queued, 1,
						  memory_order_relaxed);
		submitted(p, h, rc);
		/* Hold dispatched requests a little: the gate stays scarce. */
		if ((r >> 40) % 64 == 0)
			sched_yield();
	}
	settle_all(p);
	return NULL;
}

/* Samples the engine's queued and in-flight counts while the run goes. */
static void *
sampler_main(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&g.stop_flag, memory_order_acquire)) {
		struct flowq_stats st;
		flowq_stats_engine(g.engine, &st);
		if (st.queued > atomic_load(&g.queued_seen_max))
			atomic_store(&g.queued_seen_max, st.queued);
		if (st.inflight > atomic_load(&g.inflight_seen_max))
			atomic_store(&g.inflight_seen_max, st.inflight);
		sleep_ns(200000);
	}
	return NULL;
}

static int
run_stall(int argc, char **argv)
{
	struct flowq_config cfg;
	struct args a = mode_args(argc, argv, "SECONDS", 3600, INFLIGHT, &cfg);
	unsigned np = a.np, ns = a.ns;
	uint64_t seed = a.seed;
	g.run_seconds = (double)a.n;
	cfg.max_requests = GLOBAL_LIMIT;
	g.engine = stress_engine_create(PROG, &cfg);
	/* mmap, not calloc: munmap gives the pages back at once. glibc would
	 * serve the next soak iteration's 8 MB calloc from its heap (a freed
	 * mmapped chunk raises its mmap threshold), zero it there and keep it
	 * resident after the free: 8 MB of RSS growth that is no leak. */
	g.expiry_delays = mmap(NULL, EXPIRIES_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.expiry_delays == MAP_FAILED) {
		g.expiry_delays = NULL;
		fprintf(stderr, "%s: cannot map the expiry delays\n", PROG);
		exit(1);
	}
	struct flowq__fault_stall st = {.mask = FLOWQ__FAULT_DISPATCHER,
					.per_million = STALL_PPM,
					.min_ns = STALL_MIN,
					.max_ns = STALL_MAX,
					.seed = seed};
	flowq__fault_stall_arm(&st);
	double t0 = test_now_seconds();
	test_watchdog_start(&g.watchdog);
	pthread_t sampler;
	if (pthread_create(&sampler, NULL, sampler_main, NULL))
		exit(1);
	start_producers(np, seed, 0, stall_producer);
	join_producers();
	atomic_store_explicit(&g.stop_flag, 1, memory_order_release);
	pthread_join(sampler, NULL);
	test_watchdog_stop(&g.watchdog);
	flowq__fault_disarm();
	double secs = test_now_seconds() - t0;
	struct flowq_stats est;
	struct sums t = check_conservation(&est);
	uint64_t qmax = atomic_load(&g.host_queued_max);
	if (qmax > GLOBAL_LIMIT + np)
		test_violation(PROG, "hosts' queued reached %" PRIu64 " > %d + %u", qmax,
			       GLOBAL_LIMIT, np);
	/* The engine's queued count (printed below) is a sum over the flows,
	 * not a snapshot (flowq_stats_engine()): a request that left a flow
	 * already summed, and one admitted into its capacity and a flow
	 * summed later, are both counted; under TSan CI saw 257 and 264 of
	 * 256 while the hosts' exact count (above: every request from the
	 * start of its submit to its completion, so the engine's true queued
	 * count plus the submits in transit) stayed within the limit plus
	 * those. So the hosts' count is the check; the
	 * engine's figure is reported only. */
	if (atomic_load(&g.inflight_seen_max) > INFLIGHT)
		test_violation(PROG, "in flight %" PRIu64 " > limit %d",
			       (uint64_t)atomic_load(&g.inflight_seen_max), INFLIGHT);
	uint64_t submits = t.accepted + t.rejected;
	uint64_t slow = atomic_load(&g.slow_submits),
		 blocked = atomic_load(&g.blocked_submits);
	if (blocked > BLOCKED_ALLOWED(np, submits))
		test_violation(PROG,
			       "%" PRIu64 " submits slept in the kernel (> %" PRIu64
			       "): producers block",
			       blocked, (uint64_t)BLOCKED_ALLOWED(np, submits));
	uint64_t stall_ns, stalls = flowq__fault_stalls(&stall_ns);
	if (stalls == 0)
		test_violation(PROG, "no stall was injected");
	uint64_t nexp = atomic_load(&g.expiries);
	nexp = nexp < MAX_EXPIRIES ? nexp : MAX_EXPIRIES;
	qsort(g.expiry_delays, nexp, sizeof(*g.expiry_delays), cmp_i64);
	int64_t p50 = nexp ? g.expiry_delays[nexp / 2] : 0;
	int64_t p90 = nexp ? g.expiry_delays[nexp * 9 / 10] : 0;
	int64_t p99 = nexp ? g.expiry_delays[nexp * 99 / 100] : 0;
	if (nexp == 0)
		test_violation(PROG, "no request expired");
	if (p90 > EXPIRY_P90_BOUND)
		test_violation(PROG, "expiries after expiry/resume: p90 %.3f ms > %d ms",
			       (double)p90 / 1e6, (int)(EXPIRY_P90_BOUND / MS));
	if (p99 > EXPIRY_P99_BOUND)
		test_violation(PROG, "expiries after expiry/resume: p99 %.3f ms > %d ms",
			       (double)p99 / 1e6, (int)(EXPIRY_P99_BOUND / MS));
	soak_count(submits, &est, stalls);
	flowq_engine_destroy(g.engine);
	g.engine = NULL;
	fprintf(stderr,
		"%s: stall: %" PRIu64 " stalls (%.0f ms in all), %" PRIu64
		" submits: max %.3f ms, p99.9 <= %.3f ms, %" PRIu64 " >= %d ms, %" PRIu64
		" slept; %" PRIu64 " expiries: after expiry/resume p50 %.3f ms, p90 %.3f "
		"ms, p99 %.3f ms, max %.3f ms;"
		" queued max: "
		"hosts %" PRIu64 " engine %" PRIu64 " (limit %d), in flight max %" PRIu64
		" (limit %d)\n",
		PROG, stalls, (double)stall_ns / 1e6, submits,
		(double)atomic_load(&g.submit_max) / 1e6,
		(double)lat_quantile(&g.submit_lat, 0.999) / 1e6, slow,
		(int)(STALL_MIN / MS), blocked, nexp, (double)p50 / 1e6,
		(double)p90 / 1e6, (double)p99 / 1e6,
		(double)atomic_load(&g.expiry_max) / 1e6, qmax,
		(uint64_t)atomic_load(&g.queued_seen_max), GLOBAL_LIMIT,
		(uint64_t)atomic_load(&g.inflight_seen_max), INFLIGHT);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s stall producers=%u shards=%u stalls=%" PRIu64
	       " submit_max_ms=%.3f expiry_after_resume_p90_ms=%.3f violations=%lu "
	       "seconds=%.2f\n",
	       PROG, np, ns, stalls, (double)atomic_load(&g.submit_max) / 1e6,
	       (double)p90 / 1e6, v, secs);
	return v ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* clock                                                                    */
/* ------------------------------------------------------------------------ */

/* The faulty clock: CLOCK_MONOTONIC + offset, or a frozen value. */
/* Per thread: the first clock read after the round started (dispatchers). */
static _Thread_local bool clk_capture;
static _Thread_local int64_t clk_round_now;

static int64_t
fault_clock(void *ctx)
{
	(void)ctx;
	int64_t f = atomic_load_explicit(&g.clk_frozen, memory_order_acquire);
	int64_t v = f ? f
		      : test_now_ns() + atomic_load_explicit(&g.clk_offset,
							     memory_order_acquire);
	if (clk_capture) {
		clk_capture = false;
		clk_round_now = v;
	}
	int64_t m = atomic_load_explicit(&g.clk_min, memory_order_relaxed);
	while (v < m && !atomic_compare_exchange_weak_explicit(&g.clk_min, &m, v,
							       memory_order_relaxed,
							       memory_order_relaxed))
		;
	atomic_max(&g.clk_max, v);
	return v;
}

static void
round_hook(enum flowq__fault_point p, void *ctx)
{
	(void)ctx;
	if (p == FLOWQ__FAULT_D_ROUND_START)
		clk_capture = true;
}

static void
on_complete_clock(struct flowq_req *req, void *arg)
{
	enum flowq_outcome o = flowq_req_outcome(req);
	int64_t key = req->priv.expire;
	if (o == FLOWQ_DISPATCHED) {
		if (key <= clk_round_now)
			test_violation(PROG,
				       "dispatched %.3f ms past its expiry (round clock)",
				       (double)(clk_round_now - key) / 1e6);
		if (atomic_load_explicit(&g.clk_is_frozen, memory_order_relaxed))
			atomic_fetch_add_explicit(&g.frozen_dispatches, 1,
						  memory_order_relaxed);
	} else if (o == FLOWQ_EVICTED_TTL) {
		atomic_fetch_add_explicit(&g.early_checks, 1, memory_order_relaxed);
		if (key > clk_round_now)
			test_violation(PROG,
				       "evicted %.3f ms before its expiry (round clock)",
				       (double)(key - clk_round_now) / 1e6);
	}
	on_complete(req, arg);
}

static void *
clock_producer(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	double end = test_now_seconds() + g.run_seconds;
	while (test_now_seconds() < end) {
		uint64_t r;
		struct hreq *h = pick_slot(p, &rng, &r, 16);
		if (!h)
			continue;
		req_prepare(h, "c", (unsigned)(r % 16), (int32_t)((r >> 8) % 2), 100);
		h->req.complete = on_complete_clock;
		if ((r >> 16) % 2 == 0)
			h->req.ttl_ns = MS + (int64_t)((r >> 20) % (50 * MS));
		if ((r >> 17) % 4 == 0)
			h->req.deadline_ns = flowq_now(g.engine) + MS +
					     (int64_t)((r >> 30) % (50 * MS));
		int rc = flowq_submit(g.engine, &h->req);
		submitted(p, h, rc);
	}
	settle_all(p);
	return NULL;
}

static void *
clock_controller(void *arg)
{
	uint64_t rng = *(uint64_t *)arg;
	while (!atomic_load_explicit(&g.stop_flag, memory_order_acquire)) {
		uint64_t r = test_rng_next(&rng);
		int64_t amount = MS + (int64_t)(r % (200 * MS));
		switch ((r >> 32) % 3) {
		case 0:
			atomic_fetch_add(&g.clk_offset, amount);
			atomic_fetch_add(&g.jumps_fwd, 1);
			break;
		case 1:
			atomic_fetch_sub(&g.clk_offset, amount);
			atomic_fetch_add(&g.jumps_back, 1);
			break;
		default: {
			int64_t now = test_now_ns() + atomic_load(&g.clk_offset);
			atomic_store(&g.clk_is_frozen, 1);
			atomic_store_explicit(&g.clk_frozen, now, memory_order_release);
			flowq_engine_wake(g.engine);
			sleep_ns(10 * MS + (int64_t)((r >> 40) % (30 * MS)));
			/* Resume where it stopped: the frozen span is lost. */
			atomic_store(&g.clk_offset, now - test_now_ns());
			atomic_store_explicit(&g.clk_frozen, 0, memory_order_release);
			atomic_store(&g.clk_is_frozen, 0);
			atomic_fetch_add(&g.freezes, 1);
			break;
		}
		}
		flowq_engine_wake(g.engine);
		sleep_ns(5 * MS);
	}
	return NULL;
}

/* No negative duration: the queue-time sum lies within what its buckets
 * allow (bucket i holds (bound(i-1), bound(i)]), and within count x the
 * clock's span. A negative wait recorded as is would wrap the unsigned sum
 * (too large) or, added to others, pull it below its buckets' floor. */
static int
check_hist(int32_t prio, const struct flowq_stats *st, void *ctx)
{
	(void)ctx;
	const struct flowq_hist *h = &st->queue_time;
	int64_t span = atomic_load(&g.clk_max) - atomic_load(&g.clk_min);
	double lo = 0, hi = 0;
	for (unsigned i = 0; i < FLOWQ_HIST_BUCKETS; i++) {
		if (i > 0)
			lo += (double)h->buckets[i] * (double)flowq_hist_bound(i - 1);
		hi += (double)h->buckets[i] * (double)flowq_hist_bound(i);
	}
	double sum = (double)h->sum_ns;
	if (h->count && (sum > (double)h->count * (double)span || sum < lo || sum > hi))
		test_violation(PROG,
			       "%s %d: queue-time sum %" PRIu64 " of %" PRIu64
			       " outside [%.0f, %.0f] or > count x span %" PRId64
			       " (a negative duration?)",
			       prio == INT32_MIN ? "engine" : "band", (int)prio,
			       h->sum_ns, h->count, lo, hi, span);
	return 0;
}

static int
run_clock(int argc, char **argv)
{
	struct flowq_config cfg;
	struct args a = mode_args(argc, argv, "SECONDS", 3600, INFLIGHT, &cfg);
	unsigned np = a.np, ns = a.ns;
	uint64_t seed = a.seed;
	g.run_seconds = (double)a.n;
	cfg.clock = fault_clock;
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(D_ROUND_START), round_hook, NULL);
	g.engine = stress_engine_create(PROG, &cfg);
	double t0 = test_now_seconds();
	test_watchdog_start(&g.watchdog);
	pthread_t ctl;
	uint64_t cseed = seed ^ 0x5eed;
	if (pthread_create(&ctl, NULL, clock_controller, &cseed))
		exit(1);
	start_producers(np, seed, 0, clock_producer);
	join_producers();
	atomic_store_explicit(&g.stop_flag, 1, memory_order_release);
	pthread_join(ctl, NULL);
	test_watchdog_stop(&g.watchdog);
	double secs = test_now_seconds() - t0;
	struct flowq_stats est;
	struct sums t = check_conservation(&est);
	check_hist(INT32_MIN, &est, NULL);
	flowq_stats_foreach_band(g.engine, check_hist, NULL);
	if (atomic_load(&g.freezes) && atomic_load(&g.frozen_dispatches) == 0)
		test_violation(PROG, "no dispatch while the clock was frozen (starved)");
	uint64_t moves = atomic_load(&g.jumps_fwd) + atomic_load(&g.jumps_back);
	soak_count(t.accepted + t.rejected, &est, moves + atomic_load(&g.freezes));
	flowq_engine_destroy(g.engine);
	g.engine = NULL;
	flowq__fault_disarm();
	fprintf(stderr,
		"%s: clock: %" PRIu64 " jumps forward, %" PRIu64 " back, %" PRIu64
		" freezes; dispatched %" PRIu64 " (%" PRIu64
		" while frozen), ttl %" PRIu64 ", cancelled %" PRIu64
		"; queue-time sum %" PRIu64 " ns over %" PRIu64 "\n",
		PROG, (uint64_t)atomic_load(&g.jumps_fwd),
		(uint64_t)atomic_load(&g.jumps_back), (uint64_t)atomic_load(&g.freezes),
		(uint64_t)atomic_load(&g.completed_by[FLOWQ_DISPATCHED]),
		(uint64_t)atomic_load(&g.frozen_dispatches),
		(uint64_t)atomic_load(&g.completed_by[FLOWQ_EVICTED_TTL]),
		(uint64_t)atomic_load(&g.completed_by[FLOWQ_EVICTED_CANCELLED]),
		est.queue_time.sum_ns, est.queue_time.count);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s clock producers=%u shards=%u jumps=%" PRIu64
	       " freezes=%" PRIu64 " items=%" PRIu64 " violations=%lu seconds=%.2f\n",
	       PROG, np, ns, moves, (uint64_t)atomic_load(&g.freezes), t.accepted, v,
	       secs);
	return v ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* storm                                                                    */
/* ------------------------------------------------------------------------ */

#define CANCELLERS  3
#define STORM_PRIOS 4

/* Take @p h for a cancel (false: its owner is re-initializing it). */
static bool
cgate_enter(struct hreq *h)
{
	int v = atomic_load_explicit(&h->cgate, memory_order_relaxed);
	do {
		if (v < 0)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
		&h->cgate, &v, v + 1, memory_order_acquire, memory_order_relaxed));
	return true;
}

static void
cgate_leave(struct hreq *h)
{
	atomic_fetch_sub_explicit(&h->cgate, 1, memory_order_release);
}

/* The owner locks cancellers out before re-initializing @p h. */
static void
cgate_close(struct hreq *h)
{
	int z = 0;
	while (!atomic_compare_exchange_weak_explicit(
		&h->cgate, &z, -1, memory_order_acquire, memory_order_relaxed)) {
		z = 0;
		sched_yield();
	}
}

static void
cgate_open(struct hreq *h)
{
	atomic_store_explicit(&h->cgate, 0, memory_order_release);
}

/* Once no canceller holds @p h (its gate closed, or every thread joined):
 * at most one cancel of the incarnation won, and it won iff the outcome is
 * EVICTED_CANCELLED; a rejected incarnation cannot be cancelled. */
static void
storm_check_wins(struct hreq *h)
{
	int w = atomic_load_explicit(&h->cancel_wins, memory_order_relaxed);
	if (!h->was_accepted) {
		if (w)
			test_violation(PROG, "a cancel of a request never queued won");
		return;
	}
	int o = atomic_load_explicit(&h->outcome, memory_order_relaxed);
	if (w > 1)
		test_violation(PROG, "%d cancels of one request won", w);
	if ((w == 1) != (o == FLOWQ_EVICTED_CANCELLED))
		test_violation(PROG, "%d cancels won, outcome %s", w,
			       flowq_outcome_str(o));
}

static void *
storm_producer(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	while (!atomic_load_explicit(&g.stop_flag, memory_order_acquire)) {
		uint64_t r;
		struct hreq *h = pick_slot(p, &rng, &r, 0);
		if (!h)
			continue;
		cgate_close(h);
		storm_check_wins(h);
		h->was_accepted = false;
		req_prepare(h, "x", (unsigned)(r % 24), (int32_t)((r >> 8) % STORM_PRIOS),
			    100);
		if ((r >> 16) % 2 == 0)
			h->req.ttl_ns = 20000 + (int64_t)((r >> 20) % (2 * MS));
		cgate_open(h);
		int rc = flowq_submit(g.engine, &h->req);
		submitted(p, h, rc);
		h->was_accepted = rc == 0;
	}
	/* Release what has completed; leave the rest to the destroy. */
	for (unsigned i = 0; i < g.window; i++)
		(void)try_settle(&p->win[i]);
	return NULL;
}

static void *
storm_canceller(void *arg)
{
	uint64_t rng = *(uint64_t *)arg;
	while (!atomic_load_explicit(&g.stop_flag, memory_order_acquire)) {
		uint64_t r = test_rng_next(&rng);
		struct hreq *h = &g.ps[r % g.nproducers].win[(r >> 16) % g.window];
		if (!cgate_enter(h))
			continue;
		atomic_fetch_add_explicit(&g.storm_cancel_calls, 1, memory_order_relaxed);
		/* The request may be idle, queued, completed or rejected:
		 * only a queued, undecided one can be cancelled. Wins are
		 * checked by the owner once it has closed the gate. */
		int rc = flowq_cancel(g.engine, &h->req);
		if (rc == 0) {
			atomic_fetch_add_explicit(&h->cancel_wins, 1,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&g.storm_cancel_won, 1,
						  memory_order_relaxed);
		}
		if (rc != 0 && rc != -EALREADY)
			test_violation(PROG, "cancel returned %d", rc);
		cgate_leave(h);
		/* A storm, not a monopoly: producers and dispatchers must
		 * keep the queues full for the shutdown to find. */
		if ((r >> 40) % 4 == 0) {
			sleep_ns(20000);
		}
	}
	return NULL;
}

static int
run_storm(int argc, char **argv)
{
	struct flowq_config base;
	struct args a = mode_args(argc, argv, "ROUNDS", 100000, 8, &base);
	unsigned np = a.np, ns = a.ns;
	unsigned long rounds = a.n;
	uint64_t seed = a.seed;
	uint64_t rng = seed;
	uint64_t accepted_total = 0, shutdown_total = 0, cancelled_total = 0,
		 displaced_total = 0, ttl_total = 0, dispatched_total = 0, spins = 0;
	double t0 = test_now_seconds();
	test_watchdog_start(&g.watchdog);
	/* Short spins between claim and finalize on every side. */
	struct flowq__fault_stall st = {
		.mask = FLOWQ__FAULT_BIT(S_CLAIMED) | FLOWQ__FAULT_BIT(S_QUEUED) |
			FLOWQ__FAULT_BIT(C_WON) | FLOWQ__FAULT_BIT(D_CLAIMED),
		.per_million = 50000,
		.min_ns = 1000,
		.max_ns = 200000,
		.spin = true,
		.seed = seed};
	for (unsigned long round = 0; round < rounds; round++) {
		for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
			atomic_store(&g.completed_by[o], 0);
		struct flowq_config cfg = base;
		cfg.max_requests = 64;
		cfg.displacement = "lowest_band_newest";
		cfg.displacement_max_pending = 8;
		g.engine = stress_engine_create(PROG, &cfg);
		flowq__fault_stall_arm(&st);
		atomic_store(&g.stop_flag, 0);
		start_producers(np, seed + round * 7919, 0, storm_producer);
		pthread_t cs[CANCELLERS];
		uint64_t cseed[CANCELLERS];
		for (unsigned i = 0; i < CANCELLERS; i++) {
			cseed[i] = test_rng_next(&rng);
			if (pthread_create(&cs[i], NULL, storm_canceller, &cseed[i]))
				exit(1);
		}
		sleep_ns(50 * MS + (int64_t)(test_rng_next(&rng) % (250 * MS)));
		atomic_store_explicit(&g.stop_flag, 1, memory_order_release);
		join_producers();
		for (unsigned i = 0; i < CANCELLERS; i++)
			pthread_join(cs[i], NULL);
		/* No submit from here: the rejections are final. */
		struct flowq_stats sst;
		flowq_stats_engine(g.engine, &sst);
		/* Shutdown with everything in flight: queued requests, inboxes,
		 * cancel messages, displacement tickets. */
		flowq_engine_destroy(g.engine);
		g.engine = NULL;
		flowq__fault_disarm();
		struct sums t = producer_sums();
		uint64_t accepted = t.accepted, completed = 0;
		for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
			completed += atomic_load(&g.completed_by[o]);
		if (completed != accepted)
			test_violation(PROG,
				       "round %lu: accepted %" PRIu64
				       " != outcomes %" PRIu64,
				       round, accepted, completed);
		for (unsigned i = 0; i < np; i++)
			for (unsigned k = 0; k < g.window; k++) {
				struct hreq *h = &g.ps[i].win[k];
				if (h->outstanding && atomic_load(&h->completions) != 1)
					test_violation(PROG, "a request has %d outcomes",
						       atomic_load(&h->completions));
				storm_check_wins(h);
			}
		if (atomic_load(&g.completed_by[FLOWQ_EVICTED_CANCELLED]) !=
		    atomic_load(&g.storm_cancel_won))
			test_violation(PROG,
				       "cancels won %" PRIu64 " != cancelled %" PRIu64,
				       (uint64_t)atomic_load(&g.storm_cancel_won),
				       (uint64_t)atomic_load(
					       &g.completed_by[FLOWQ_EVICTED_CANCELLED]));
		accepted_total += accepted;
		shutdown_total += atomic_load(&g.completed_by[FLOWQ_EVICTED_OTHER]);
		cancelled_total += atomic_load(&g.completed_by[FLOWQ_EVICTED_CANCELLED]);
		displaced_total += atomic_load(&g.completed_by[FLOWQ_EVICTED_DISPLACED]);
		ttl_total += atomic_load(&g.completed_by[FLOWQ_EVICTED_TTL]);
		dispatched_total += atomic_load(&g.completed_by[FLOWQ_DISPATCHED]);
		atomic_store(&g.storm_cancel_won, 0);
		uint64_t spun = flowq__fault_stalls(NULL) - spins;
		spins += spun;
		soak_count(accepted + t.rejected, &sst, spun);
	}
	test_watchdog_stop(&g.watchdog);
	double secs = test_now_seconds() - t0;
	if (shutdown_total == 0)
		test_violation(PROG, "no request was queued at any shutdown");
	fprintf(stderr,
		"%s: storm: accepted %" PRIu64 ": dispatched %" PRIu64 " ttl %" PRIu64
		" cancelled %" PRIu64 " (of %" PRIu64 " cancel calls) displaced %" PRIu64
		" shutdown %" PRIu64 "\n",
		PROG, accepted_total, dispatched_total, ttl_total, cancelled_total,
		(uint64_t)atomic_load(&g.storm_cancel_calls), displaced_total,
		shutdown_total);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s storm producers=%u shards=%u rounds=%lu items=%" PRIu64
	       " shutdown_evicted=%" PRIu64 " violations=%lu seconds=%.2f\n",
	       PROG, np, ns, rounds, accepted_total, shutdown_total, v, secs);
	return v ? 1 : 0;
}

/* One run of the mode argv[1] (stress_soak.h: main loops it in soak mode),
 * from a clean state: g, the fault points' counters. */
static int
run(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} modes[] = {
		{"alloc", run_alloc},
		{"stall", run_stall},
		{"clock", run_clock},
		{"storm", run_storm},
	};
	memset(&g, 0, sizeof(g));
	g.window = WINDOW;
	atomic_store(&g.clk_min, INT64_MAX);
	atomic_store(&g.clk_max, INT64_MIN);
	g.watchdog.prog = PROG;
	g.watchdog.progress = &g.progress;
	g.watchdog.seconds = STALL_SECONDS;
	g.watchdog.dump = stall_dump;
	flowq__fault_reset();
	int rc = -1;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (argc >= 2 && strcmp(argv[1], modes[i].name) == 0)
			rc = modes[i].fn(argc, argv);
	if (rc < 0) {
		fprintf(stderr, "usage: %s alloc|stall|clock|storm ...\n", PROG);
		return 2;
	}
	if (rc == 1 && stress_soak_iteration() > 0)
		fprintf(stderr, "%s: soak iteration %lu failed; its seed: %" PRIu64 "\n",
			PROG, stress_soak_iteration(), g.seed);
	/* Whatever the mode left (it frees nothing on an early failure). */
	for (unsigned i = 0; i < MAX_THREADS; i++)
		free(g.ps[i].win);
	if (g.expiry_delays)
		munmap(g.expiry_delays, EXPIRIES_BYTES);
	return rc;
}

int
main(int argc, char **argv)
{
	return stress_soak_main(PROG, argc, argv, run, test_violations());
}
