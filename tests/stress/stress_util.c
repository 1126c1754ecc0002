/*
 * stress_util: the "utilization" saturation detector in threaded mode,
 * reporters feeding metrics while producers submit and the dispatchers gate
 * on them.
 *
 *   stress_util PRODUCERS SHARDS REPORTERS MODE [REQUESTS [SEED]]
 *       MODE "fresh": staleness 60 s, no TTLs and no cancels, so that
 *            nothing but a report wakes a dispatcher blocked by the
 *            detector (a TTL timer or a cancel message would cover a lost
 *            wake-up), and the over-dispatch bound is checked;
 *       MODE "stale": staleness 2 ms and reporters that go quiet for 3-5 ms
 *            now and then (sweeps and revivals race reports); an eighth of
 *            the requests have short TTLs, some are cancelled;
 *       REQUESTS per producer (default 20000), SEED (default 1).
 *
 * The backend: ENDPOINTS endpoints, each with a waiting count. A
 * dispatched request is routed to the next endpoint (round robin) by its
 * completion callback; each reporter owns every REPORTERS-th endpoint and,
 * every tick (100 us), finishes 0-2 of its waiting requests, or all of them
 * one tick in four, and reports the count (with a KV figure below the queue
 * term) at flowq_now(); a rogue thread reports endpoints it does not own,
 * at random and without pause (races with the owner: -EBUSY, -ESTALE).
 * Producers submit over two bands (ceilings 1.0 and 0.75) with a window of
 * WINDOW requests each.
 *
 * Checks (each failure is a violation, described on stderr):
 *  - exactly once and conservation at quiescence, as stress_engine: every
 *    accepted submit gets one completion; accepted = sum of completions by
 *    outcome; the engine's statistics agree;
 *  - the detector's pool sums equal what its endpoints hold once every
 *    thread has stopped (flowq__util_check_sums());
 *  - fresh mode, over-dispatch: requests waiting at the backend never
 *    exceed ENDPOINTS x QDEPTH + ENDPOINTS + 4 x SHARDS + 4 (the estimate
 *    counts every dispatch until a report whose metrics were taken after
 *    it; the slack is round-robin unevenness, shards passing the gate at
 *    the same moment, and a dispatch stamped before a reporter's time but
 *    routed after its reading, one per shard). Without dispatch_cost the
 *    whole backlog would go out (checked: 171 > 52);
 *  - liveness: a watchdog aborts, printing the engine's and the detector's
 *    state, when nothing was completed or finished for STALL_SECONDS (a
 *    lost wake-up: in fresh mode only reports and new submits wake a
 *    blocked dispatcher, and with full windows nobody submits). Lost
 *    wake-ups are rare events that this run may not hit; test_saturation
 *    checks the sleep path's re-check deterministically.
 *
 * Output: one line on stdout,
 *   SUMMARY stress_util producers=P shards=S reporters=R mode=M items=N
 *   violations=V seconds=T
 * Exit status 1 if V > 0.
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
#include <time.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "saturation_utilization.h"
#include "stress_engine_util.h"
#include "stress_soak.h"
#include "test_util.h"

#define PROG          "stress_util"
#define WINDOW        48
#define FLOWS         24
#define ENDPOINTS     8
#define QDEPTH        4
#define MAX_PRODUCERS 16
#define MAX_REPORTERS 8
#define STALL_SECONDS 10
#define TICK_NS       100000 /* reporter tick: 100 us */

struct hreq {
	struct flowq_req req;
	_Atomic int completions;
	_Atomic int outcome;
	bool outstanding; /* producer-private */
	char id[16];
};

static struct flowq_engine *engine;
static bool stale_mode;
static unsigned nshards;
static _Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT];
static _Atomic uint64_t progress;
static _Atomic int finished;

/* The backend. */
static _Atomic uint64_t route_seq;
static _Atomic int64_t waiting[ENDPOINTS];
static _Atomic int64_t backend_total;
static _Atomic int64_t backend_max;
static _Atomic uint64_t reports_ok, reports_busy, reports_stale;

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct hreq *h = arg;
	enum flowq_outcome o = stress_completion_check(PROG, req, completed_by);
	if (o == FLOWQ_DISPATCHED) {
		/* Route to the next endpoint; count it waiting there. */
		uint64_t k =
			atomic_fetch_add_explicit(&route_seq, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&waiting[k % ENDPOINTS], 1,
					  memory_order_relaxed);
		int64_t t = atomic_fetch_add_explicit(&backend_total, 1,
						      memory_order_relaxed) +
			    1;
		int64_t m = atomic_load_explicit(&backend_max, memory_order_relaxed);
		while (t > m && !atomic_compare_exchange_weak_explicit(
					&backend_max, &m, t, memory_order_relaxed,
					memory_order_relaxed))
			;
		/* The request goes back to the host at once (the backend
		 * holds only a count); no in-flight limit to release. */
		if (flowq_release(engine, req) != 0)
			test_violation(PROG, "release failed");
	}
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	stress_completion_publish(PROG, h, &h->outcome, &h->completions, o);
}

struct producer {
	pthread_t thread;
	unsigned long requests;
	uint64_t seed;
	uint64_t accepted, rejected, cancels_won;
	struct hreq *win;
};

static bool
try_settle(struct hreq *h)
{
	if (h->outstanding &&
	    atomic_load_explicit(&h->completions, memory_order_acquire) == 0)
		return false;
	h->outstanding = false;
	return true;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	unsigned long done = 0;
	while (done < p->requests) {
		struct hreq *h = &p->win[test_rng_next(&rng) % WINDOW];
		uint64_t r = test_rng_next(&rng);
		if (!try_settle(h)) {
			if (stale_mode && r % 16 == 0 &&
			    flowq_cancel(engine, &h->req) == 0)
				p->cancels_won++;
			sched_yield();
			continue;
		}
		flowq_req_init(&h->req);
		atomic_store_explicit(&h->completions, 0, memory_order_relaxed);
		int len = snprintf(h->id, sizeof(h->id), "u%u", (unsigned)(r % FLOWS));
		h->req.flow_id = h->id;
		h->req.flow_id_len = (uint32_t)len;
		h->req.priority = (int32_t)((r >> 8) % 2); /* bands 0 and 1 */
		h->req.bytes = 64 + (r >> 16) % 1000;
		if (stale_mode && (r >> 32) % 8 == 0) /* expire after 0.2-2.2 ms */
			h->req.ttl_ns = 200000 + (int64_t)((r >> 40) % 2000000);
		h->req.complete = on_complete;
		h->req.arg = h;
		int rc = flowq_submit(engine, &h->req);
		atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
		if (rc == 0) {
			h->outstanding = true;
			p->accepted++;
		} else {
			p->rejected++;
			test_violation(PROG, "unexpected submit error %d", rc);
		}
		done++;
	}
	for (unsigned left = WINDOW; left;) {
		left = 0;
		for (unsigned i = 0; i < WINDOW; i++)
			if (!try_settle(&p->win[i]))
				left++;
		if (left)
			sched_yield();
	}
	return NULL;
}

static void
count_report(int rc)
{
	if (rc == 0)
		atomic_fetch_add_explicit(&reports_ok, 1, memory_order_relaxed);
	else if (rc == -EBUSY)
		atomic_fetch_add_explicit(&reports_busy, 1, memory_order_relaxed);
	else if (rc == -ESTALE)
		atomic_fetch_add_explicit(&reports_stale, 1, memory_order_relaxed);
	else
		test_violation(PROG, "report returned %d", rc);
}

/* Report endpoint @ep's waiting count (and a KV figure at most the queue
 * term, so that the max() is exercised without changing the score). */
static int
report_ep(unsigned ep, uint64_t *rng)
{
	/* The time first, then the reading: dispatches after the time stay
	 * pending whenever the report call comes (a preempted reporter
	 * neither loses nor double counts them). */
	int64_t at = flowq_now(engine);
	int64_t w = atomic_load_explicit(&waiting[ep], memory_order_relaxed);
	double qterm = (double)w / QDEPTH;
	double kv = 0.8 * qterm * (double)(test_rng_next(rng) % 101) / 100.0;
	if (kv > 1.0)
		kv = 1.0;
	return flowq_endpoint_report(engine, ep, (uint64_t)w, kv, at);
}

struct reporter {
	pthread_t thread;
	unsigned index, count;
	uint64_t seed;
	bool rogue;
};

static void
nap(long ns)
{
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}

static void *
reporter_main(void *arg)
{
	struct reporter *rp = arg;
	uint64_t rng = rp->seed;
	int64_t quiet_until[ENDPOINTS] = {0};
	while (!atomic_load_explicit(&finished, memory_order_acquire)) {
		if (rp->rogue) {
			/* Reports endpoints it does not own, at random: races
			 * the owner (-EBUSY) and reports older readings
			 * (-ESTALE). Its value is the current count. */
			unsigned ep = (unsigned)(test_rng_next(&rng) % ENDPOINTS);
			count_report(report_ep(ep, &rng));
			if (test_rng_next(&rng) % 4 == 0)
				sched_yield();
			continue;
		}
		/* One tick in four, the backend serves everything it holds
		 * (the pool drains: the lowering report may be the last one
		 * for a while, so a lost wake-up would stall); else 0-2
		 * requests per endpoint. */
		bool drain = test_rng_next(&rng) % 4 == 0;
		for (unsigned ep = rp->index; ep < ENDPOINTS; ep += rp->count) {
			int64_t served =
				drain ? INT64_MAX : (int64_t)(test_rng_next(&rng) % 3);
			int64_t w =
				atomic_load_explicit(&waiting[ep], memory_order_relaxed);
			while (served > 0 && w > 0) {
				int64_t k = served < w ? served : w;
				if (atomic_compare_exchange_weak_explicit(
					    &waiting[ep], &w, w - k, memory_order_relaxed,
					    memory_order_relaxed)) {
					atomic_fetch_sub_explicit(&backend_total, k,
								  memory_order_relaxed);
					atomic_fetch_add_explicit(&progress, (uint64_t)k,
								  memory_order_relaxed);
					break;
				}
			}
			int64_t now = flowq_now(engine);
			if (stale_mode && now < quiet_until[ep])
				continue;
			if (stale_mode && test_rng_next(&rng) % 200 == 0) {
				/* Go quiet for 3-5 ms: the report goes stale. */
				quiet_until[ep] =
					now + 3000000 +
					(int64_t)(test_rng_next(&rng) % 2000000);
				continue;
			}
			count_report(report_ep(ep, &rng));
		}
		nap(TICK_NS);
	}
	return NULL;
}

/* The watchdog's dump: the backend model, the detector and the engine
 * (racy reads: the run has stalled). */
static void
stall_dump(void)
{
	for (unsigned i = 0; i < ENDPOINTS; i++)
		fprintf(stderr, "backend: endpoint %u waiting %" PRId64 "\n", i,
			(int64_t)atomic_load(&waiting[i]));
	double s = -1;
	flowq_saturation(engine, &s);
	fprintf(stderr, "flowq_saturation %.6f\n", s);
	flowq__debug_dump(engine, stderr);
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	if (argc < 5 || argc > 7) {
		fprintf(stderr,
			"usage: %s PRODUCERS SHARDS REPORTERS fresh|stale [REQUESTS "
			"[SEED]]\n",
			argv[0]);
		return 2;
	}
	unsigned np =
		(unsigned)test_parse_ulong(PROG, argv[1], "producers", 1, MAX_PRODUCERS);
	nshards = (unsigned)test_parse_ulong(PROG, argv[2], "shards", 1, 64);
	unsigned nr =
		(unsigned)test_parse_ulong(PROG, argv[3], "reporters", 1, MAX_REPORTERS);
	if (strcmp(argv[4], "fresh") != 0 && strcmp(argv[4], "stale") != 0) {
		fprintf(stderr, "%s: bad mode '%s' (fresh or stale)\n", PROG, argv[4]);
		return 2;
	}
	stale_mode = strcmp(argv[4], "stale") == 0;
	/* A clean slate for each soak iteration. */
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		atomic_store(&completed_by[o], 0);
	atomic_store(&finished, 0);
	for (unsigned i = 0; i < ENDPOINTS; i++)
		atomic_store(&waiting[i], 0);
	atomic_store(&backend_total, 0);
	atomic_store(&backend_max, 0);
	atomic_store(&reports_ok, 0);
	atomic_store(&reports_busy, 0);
	atomic_store(&reports_stale, 0);
	unsigned long nreq =
		argc > 5 ? test_parse_ulong(PROG, argv[5], "requests", 1, 100000000)
			 : 20000;
	uint64_t seed = argc > 6 ? test_parse_ulong(PROG, argv[6], "seed", 0, ~0ul) : 1;

	struct flowq_config cfg;
	flowq_config_init(&cfg);
	cfg.shards = nshards;
	struct flowq_band_config bands[2] = {cfg.default_band, cfg.default_band};
	bands[0].priority = 1;
	bands[0].usage_ceiling = 1.0;
	bands[1].priority = 0;
	bands[1].usage_ceiling = 0.75;
	cfg.bands = bands;
	cfg.nbands = 2;
	cfg.saturation.detector = "utilization";
	cfg.saturation.endpoints = ENDPOINTS;
	cfg.saturation.queue_depth_threshold = QDEPTH;
	cfg.saturation.dispatch_cost = 1.0;
	cfg.saturation.metrics_staleness_ns =
		stale_mode ? 2000000 : 60 * INT64_C(1000000000);
	engine = stress_engine_create(PROG, &cfg);

	double t0 = test_now_seconds();
	struct test_watchdog wd = {
		.prog = PROG, .progress = &progress, .seconds = STALL_SECONDS, .dump = stall_dump};
	test_watchdog_start(&wd);
	static struct reporter rs[MAX_REPORTERS + 1];
	unsigned nthreads_r = nr + 1;
	for (unsigned i = 0; i < nthreads_r; i++) {
		rs[i] = (struct reporter){.index = i,
					  .count = nr,
					  .seed = seed * 7919 + i,
					  .rogue = i == nr};
		if (pthread_create(&rs[i].thread, NULL, reporter_main, &rs[i])) {
			fprintf(stderr, "%s: cannot start reporter %u\n", PROG, i);
			return 1;
		}
	}
	static struct producer ps[MAX_PRODUCERS];
	for (unsigned i = 0; i < np; i++) {
		ps[i] = (struct producer){.requests = nreq, .seed = seed * 1000 + i};
		ps[i].win = calloc(WINDOW, sizeof(struct hreq));
		if (!ps[i].win ||
		    pthread_create(&ps[i].thread, NULL, producer_main, &ps[i])) {
			fprintf(stderr, "%s: cannot start producer %u\n", PROG, i);
			return 1;
		}
	}
	uint64_t accepted = 0, rejected = 0, cancels = 0;
	for (unsigned i = 0; i < np; i++) {
		pthread_join(ps[i].thread, NULL);
		accepted += ps[i].accepted;
		rejected += ps[i].rejected;
		cancels += ps[i].cancels_won;
	}
	double secs = test_now_seconds() - t0;
	test_watchdog_stop(&wd);
	atomic_store_explicit(&finished, 1, memory_order_release);
	for (unsigned i = 0; i < nthreads_r; i++)
		pthread_join(rs[i].thread, NULL);
	/* Every request has its outcome, so no dispatcher checks the gate:
	 * the detector is quiescent. */
	if (!flowq__util_check_sums(engine->util, stderr))
		test_violation(PROG,
			       "pool sums disagree with the endpoints at quiescence");

	struct flowq_stats st;
	stress_check_conservation(PROG, engine, completed_by, accepted, cancels, &st);
	int64_t bmax = atomic_load(&backend_max);
	int64_t bound = ENDPOINTS * QDEPTH + ENDPOINTS + 4 * (int64_t)nshards + 4;
	if (!stale_mode && bmax > bound)
		test_violation(PROG,
			       "backend held %" PRId64
			       " waiting requests > bound %" PRId64
			       " (over-dispatch between reports)",
			       bmax, bound);
	uint64_t dispatched = atomic_load(&completed_by[FLOWQ_DISPATCHED]);
	if (dispatched == 0)
		test_violation(PROG, "nothing was dispatched");

	/* How much staleness the run saw: "revive" counts stale endpoints
	 * that reported again (every one was marked stale by a sweep). */
	flowq__util_dump(engine->util, stderr);
	flowq_engine_destroy(engine);
	for (unsigned i = 0; i < np; i++)
		free(ps[i].win);

	fprintf(stderr,
		"%s: accepted=%" PRIu64 " dispatched=%" PRIu64 " ttl=%" PRIu64
		" cancelled=%" PRIu64 " backend_max=%" PRId64 " (bound %" PRId64
		"%s) reports ok=%" PRIu64 " busy=%" PRIu64 " stale=%" PRIu64 "\n",
		PROG, accepted, dispatched,
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_TTL]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_CANCELLED]), bmax,
		bound, stale_mode ? ", not checked in stale mode" : "",
		(uint64_t)atomic_load(&reports_ok), (uint64_t)atomic_load(&reports_busy),
		(uint64_t)atomic_load(&reports_stale));
	stress_soak_engine(accepted + rejected, completed_by, &st);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s producers=%u shards=%u reporters=%u mode=%s items=%" PRIu64
	       " violations=%lu seconds=%.2f\n",
	       PROG, np, nshards, nr, argv[4], accepted + rejected, v, secs);
	return v ? 1 : 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_util", argc, argv, run, test_violations());
}
