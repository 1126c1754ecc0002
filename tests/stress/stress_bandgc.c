/*
 * stress_bandgc: template (JIT) band collection under concurrency
 * (core/registry.c, "Band lifetime").
 *
 *   stress_bandgc PRODUCERS SHARDS [REQUESTS [SEED [DISPLACEMENT]]]
 *       REQUESTS per producer (default 20000), SEED (default 1),
 *       DISPLACEMENT the engine's displacement policy (default "none"; any
 *       other also sets a global limit of GLOBAL_LIMIT requests and bytes)
 *
 * A threaded engine with a 200 us GC timeout. Each producer walks through
 * NPRIOS (more than FLOWQ_MAX_BANDS) priorities over its run, a few at a
 * time, so bands keep being made, emptied, collected and made again while
 * other producers submit to them and the dispatchers of every shard serve
 * them; one request in CONF_EVERY goes to a configured band, which must
 * never be collected; one in HANDLE_EVERY goes through a flow handle
 * (flowq_flow_get/put: a handle pins its flow, hence its band). Requests
 * have random sizes and TTLs, some are cancelled, a small in-flight limit
 * keeps the gate scarce (so the cross-shard priority and fairness words of
 * the bands are read and written), and a template band limit makes band
 * capacity refuse some. A reader thread takes engine and band statistics
 * and writes the metrics text all along.
 *
 * Checks (each failure is a violation, described on stderr):
 *  - exactly once: every accepted submit gets exactly one completion, with
 *    a DISPATCHED or EVICTED_* outcome valid for its cause; a rejected one
 *    gets none: -ENOSPC (capacity) or -ENOENT (CAUSE_UNKNOWN_BAND: every
 *    band slot was alive at that moment), nothing else;
 *  - conservation at quiescence: accepted = completions, and the engine's
 *    statistics agree with the producers' counts, by outcome;
 *  - the reader's engine totals never go down (a collected band's counters
 *    are folded in, never lost or counted twice), and it never sees more
 *    than FLOWQ_MAX_BANDS bands;
 *  - collection happens: more than FLOWQ_MAX_BANDS distinct priorities were
 *    served, and once quiet every template band is collected within
 *    QUIET_SECONDS while the configured band stays with all its counts;
 *  - capacity: with displacement, the queued requests seen by the hosts stay
 *    within GLOBAL_LIMIT + PRODUCERS + MAX_PENDING, and once every template
 *    band is gone the global pool is whole again (no ticket or debt lost
 *    with a collected band);
 *  - liveness: the watchdog aborts with the engine's state after
 *    STALL_SECONDS without a submit or a completion.
 * No crash under TSan, no leak under ASan (the engine is destroyed at the
 * end).
 *
 * Output: one line on stdout,
 *   SUMMARY stress_bandgc producers=P shards=S items=N priorities=K
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
#include "stress_engine_util.h"
#include "stress_soak.h"
#include "test_util.h"

#define PROG          "stress_bandgc"
#define WINDOW        32
#define FLOWS         6
#define NPRIOS        240 /* template priorities 0..NPRIOS-1 */
#define SPREAD        4   /* priorities a producer uses at once */
#define CONF_PRIO     1000
#define CONF_EVERY    16
#define HANDLE_EVERY  64
#define INFLIGHT      8
#define BAND_LIMIT    24
#define GLOBAL_LIMIT  96
#define MAX_PENDING   8
#define GC_TIMEOUT_NS 200000
#define MAX_PRODUCERS 16
#define STALL_SECONDS 10
#define QUIET_SECONDS 10

struct hreq {
	struct flowq_req req;
	_Atomic int completions;
	_Atomic int outcome;
	struct flowq_flow *handle; /* producer-private: put after completion */
	bool outstanding;	   /* producer-private */
	char id[24];
};

static struct flowq_engine *engine;
static bool displacing;
static _Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT];
static _Atomic uint64_t conf_completed;
static _Atomic uint64_t host_queued, host_queued_max;
static _Atomic uint64_t progress;
static _Atomic uint32_t served[NPRIOS];
static _Atomic int producers_done;

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct hreq *h = arg;
	enum flowq_outcome o = stress_completion_check(PROG, req, completed_by);
	if (req->priority == CONF_PRIO)
		atomic_fetch_add_explicit(&conf_completed, 1, memory_order_relaxed);
	else if (o == FLOWQ_DISPATCHED && req->priority >= 0 && req->priority < NPRIOS)
		atomic_store_explicit(&served[req->priority], 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&host_queued, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	stress_completion_publish(PROG, h, &h->outcome, &h->completions, o);
}

struct producer {
	pthread_t thread;
	unsigned index;
	unsigned long requests;
	uint64_t seed;
	uint64_t accepted, rejected, no_band, cancels_won, conf_accepted;
	struct hreq *win;
};

/* If slot @p h's completion has run (or it holds nothing): release a
 * dispatched request, drop its handle. @return false if still queued. */
static bool
try_settle(struct hreq *h)
{
	if (h->outstanding) {
		if (!atomic_load_explicit(&h->completions, memory_order_acquire))
			return false;
		h->outstanding = false;
		if (atomic_load_explicit(&h->outcome, memory_order_relaxed) == FLOWQ_DISPATCHED &&
		    flowq_release(engine, &h->req) != 0)
			test_violation(PROG, "release failed");
	}
	if (h->handle) {
		flowq_flow_put(engine, h->handle);
		h->handle = NULL;
	}
	return true;
}

/* A rejection: its return value and outcome must agree. */
static void
check_rejection(struct producer *p, struct hreq *h, int rc)
{
	enum flowq_outcome o = flowq_req_outcome(&h->req);
	enum flowq_cause c = flowq_req_cause(&h->req);
	if (rc == -ENOENT && o == FLOWQ_REJECTED_OTHER && c == FLOWQ_CAUSE_UNKNOWN_BAND &&
	    h->req.priority != CONF_PRIO)
		p->no_band++;
	else if (rc != -ENOSPC || o != FLOWQ_REJECTED_CAPACITY)
		test_violation(PROG, "submit %d with outcome %s cause %s (priority %d)", rc,
			       flowq_outcome_str(o), flowq_cause_str(c), (int)h->req.priority);
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	/* Each producer starts its walk elsewhere and moves one priority
	 * every `phase` requests, so it goes round all of them once. */
	unsigned long phase = p->requests / NPRIOS ? p->requests / NPRIOS : 1;
	unsigned base = p->index * (NPRIOS / 4);
	unsigned long done = 0;
	while (done < p->requests) {
		struct hreq *h = &p->win[test_rng_next(&rng) % WINDOW];
		uint64_t r = test_rng_next(&rng);
		if (!try_settle(h)) {
			if (r % 64 == 0 && flowq_cancel(engine, &h->req) == 0)
				p->cancels_won++;
			sched_yield();
			continue;
		}
		/* Mostly the walk's current priorities; one request in four goes
		 * to one left behind, whose band is idle: collected or about to
		 * be (the submit races its collection). */
		unsigned step = (unsigned)(done / phase) + NPRIOS;
		if ((r >> 6) % 4 == 0)
			step -= 1 + (unsigned)((r >> 8) % (2 * SPREAD));
		else
			step += (unsigned)((r >> 8) % SPREAD);
		int32_t prio = (int32_t)((base + step) % NPRIOS);
		if ((r >> 12) % CONF_EVERY == 0)
			prio = CONF_PRIO;
		flowq_req_init(&h->req);
		atomic_store_explicit(&h->completions, 0, memory_order_relaxed);
		int len = snprintf(h->id, sizeof(h->id), "f%u", (unsigned)((r >> 16) % FLOWS));
		h->req.flow_id = h->id;
		h->req.flow_id_len = (uint32_t)len;
		h->req.priority = prio;
		h->req.bytes = 1 + (r >> 20) % 1000;
		if ((r >> 32) % 4 == 0)
			h->req.ttl_ns = 20000 + (int64_t)((r >> 36) % 300000);
		h->req.complete = on_complete;
		h->req.arg = h;
		if ((r >> 44) % HANDLE_EVERY == 0) {
			int rc = flowq_flow_get(engine, h->id, (uint32_t)len, prio, &h->handle);
			if (rc == 0)
				h->req.flow = h->handle;
			else if (rc != -ENOENT)
				test_violation(PROG, "flow_get returned %d", rc);
		}
		stress_queued_inc(&host_queued, &host_queued_max);
		int rc = flowq_submit(engine, &h->req);
		atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
		if (rc == 0) {
			h->outstanding = true;
			p->accepted++;
			p->conf_accepted += prio == CONF_PRIO;
		} else {
			atomic_fetch_sub_explicit(&host_queued, 1, memory_order_relaxed);
			p->rejected++;
			check_rejection(p, h, rc);
		}
		done++;
	}
	for (unsigned left = WINDOW; left;) {
		left = 0;
		for (unsigned i = 0; i < WINDOW; i++)
			left += !try_settle(&p->win[i]);
		if (left)
			sched_yield();
	}
	return NULL;
}

/* ---- the statistics reader ---- */

static int
band_seen(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	(void)priority;
	(void)st;
	(*(unsigned *)ctx)++;
	return 0;
}

static void *
reader_main(void *arg)
{
	(void)arg;
	struct flowq_stats last, now;
	memset(&last, 0, sizeof(last));
	for (unsigned round = 0; !atomic_load_explicit(&producers_done, memory_order_acquire);
	     round++) {
		if (flowq_stats_engine(engine, &now) != 0)
			test_violation(PROG, "stats_engine failed");
		for (unsigned o = 1; o < FLOWQ_OUTCOME_COUNT; o++)
			if (now.outcomes[o] < last.outcomes[o])
				test_violation(PROG, "engine %s went down: %" PRIu64 " -> %" PRIu64,
					       flowq_outcome_str(o), last.outcomes[o],
					       now.outcomes[o]);
		if (now.queue_time.count < last.queue_time.count)
			test_violation(PROG, "engine queue-time count went down");
		last = now;
		unsigned nb = 0;
		if (flowq_stats_foreach_band(engine, band_seen, &nb) != 0)
			test_violation(PROG, "stats_foreach_band failed");
		if (nb > FLOWQ_MAX_BANDS)
			test_violation(PROG, "%u bands seen at once", nb);
		struct flowq_stats band;
		int rc = flowq_stats_band(engine, (int32_t)(round % NPRIOS), &band);
		if (rc != 0 && rc != -ENOENT)
			test_violation(PROG, "stats_band returned %d", rc);
		if (round % 16 == 0) {
			char *buf = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&buf, &len);
			if (!f || flowq_metrics_write(engine, f) != 0)
				test_violation(PROG, "metrics_write failed");
			if (f)
				fclose(f);
			free(buf);
		}
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static struct producer ps[MAX_PRODUCERS];
static unsigned nproducers;

static void
stall_dump(void)
{
	flowq__debug_dump(engine, stderr);
	for (unsigned i = 0; i < nproducers; i++) {
		unsigned out = 0;
		for (unsigned k = 0; k < WINDOW; k++)
			out += ps[i].win[k].outstanding;
		fprintf(stderr, "producer %u: %u outstanding\n", i, out);
	}
}

/* Wait (up to QUIET_SECONDS) until only the configured band is left and,
 * with a global limit, the pool is whole. @return true if so. */
static bool
wait_collected(unsigned *r_bands, uint64_t *r_req, uint64_t *r_bytes)
{
	double until = test_now_seconds() + QUIET_SECONDS;
	for (;;) {
		*r_bands = 0;
		flowq_stats_foreach_band(engine, band_seen, r_bands);
		*r_req = *r_bytes = 0;
		if (displacing)
			flowq__cap_in_use(&engine->global, r_req, r_bytes);
		if ((*r_bands == 1 && !*r_req && !*r_bytes) || test_now_seconds() > until)
			return *r_bands == 1 && !*r_req && !*r_bytes;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	if (argc < 3 || argc > 6) {
		fprintf(stderr, "usage: %s PRODUCERS SHARDS [REQUESTS [SEED [DISPLACEMENT]]]\n",
			argv[0]);
		return 2;
	}
	unsigned np = (unsigned)test_parse_ulong(PROG, argv[1], "producers", 1, MAX_PRODUCERS);
	unsigned ns = (unsigned)test_parse_ulong(PROG, argv[2], "shards", 1, 64);
	unsigned long nreq =
		argc > 3 ? test_parse_ulong(PROG, argv[3], "requests", 1, 100000000) : 20000;
	uint64_t seed = argc > 4 ? test_parse_ulong(PROG, argv[4], "seed", 0, ~0ul) : 1;
	const char *displacement = argc > 5 ? argv[5] : "none";
	displacing = strcmp(displacement, "none") != 0;
	/* A clean slate for each soak iteration. */
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		atomic_store(&completed_by[o], 0);
	atomic_store(&conf_completed, 0);
	atomic_store(&host_queued, 0);
	atomic_store(&host_queued_max, 0);
	for (unsigned i = 0; i < NPRIOS; i++)
		atomic_store(&served[i], 0);
	atomic_store(&producers_done, 0);

	struct flowq_config cfg;
	flowq_config_init(&cfg);
	cfg.shards = ns;
	cfg.flow_gc_timeout_ns = GC_TIMEOUT_NS;
	cfg.saturation.max_inflight = INFLIGHT;
	cfg.default_band.max_requests = BAND_LIMIT;
	struct flowq_band_config conf = cfg.default_band;
	conf.priority = CONF_PRIO;
	conf.fairness = "round_robin";
	cfg.bands = &conf;
	cfg.nbands = 1;
	cfg.displacement = displacement;
	cfg.displacement_max_pending = MAX_PENDING;
	if (displacing) {
		cfg.max_requests = GLOBAL_LIMIT;
		cfg.max_bytes = GLOBAL_LIMIT * 500;
	}
	engine = stress_engine_create(PROG, &cfg);

	double t0 = test_now_seconds();
	nproducers = np;
	struct test_watchdog wd = {
		.prog = PROG, .progress = &progress, .seconds = STALL_SECONDS, .dump = stall_dump};
	test_watchdog_start(&wd);
	pthread_t reader;
	if (pthread_create(&reader, NULL, reader_main, NULL)) {
		fprintf(stderr, "%s: cannot start the reader\n", PROG);
		return 1;
	}
	for (unsigned i = 0; i < np; i++) {
		ps[i] = (struct producer){.index = i, .requests = nreq, .seed = seed * 1000 + i};
		ps[i].win = calloc(WINDOW, sizeof(struct hreq));
		if (!ps[i].win || pthread_create(&ps[i].thread, NULL, producer_main, &ps[i])) {
			fprintf(stderr, "%s: cannot start producer %u\n", PROG, i);
			return 1;
		}
	}
	uint64_t accepted = 0, rejected = 0, no_band = 0, cancels = 0, conf_accepted = 0;
	for (unsigned i = 0; i < np; i++) {
		pthread_join(ps[i].thread, NULL);
		accepted += ps[i].accepted;
		rejected += ps[i].rejected;
		no_band += ps[i].no_band;
		cancels += ps[i].cancels_won;
		conf_accepted += ps[i].conf_accepted;
	}
	atomic_store_explicit(&producers_done, 1, memory_order_release);
	pthread_join(reader, NULL);
	test_watchdog_stop(&wd);

	uint64_t qmax = atomic_load(&host_queued_max);
	if (displacing && qmax > GLOBAL_LIMIT + np + MAX_PENDING)
		test_violation(PROG, "queued reached %" PRIu64 " > limit %d + %u + %d", qmax,
			       GLOBAL_LIMIT, np, MAX_PENDING);
	unsigned prios = 0;
	for (unsigned i = 0; i < NPRIOS; i++)
		prios += atomic_load(&served[i]);
	if (prios <= FLOWQ_MAX_BANDS)
		test_violation(PROG, "only %u priorities served: bands are not reused", prios);

	unsigned bands;
	uint64_t greq, gbytes;
	if (!wait_collected(&bands, &greq, &gbytes))
		test_violation(PROG,
			       "%d s after the last request: %u bands left (want the configured "
			       "one), global pool in use %" PRIu64 " requests %" PRIu64 " bytes",
			       QUIET_SECONDS, bands, greq, gbytes);

	/* Quiescent, and every template band collected (its counts folded
	 * into the engine's). */
	struct flowq_stats st;
	stress_check_conservation(PROG, engine, completed_by, accepted, cancels, &st);
	if (st.outcomes[FLOWQ_REJECTED_CAPACITY] + st.outcomes[FLOWQ_REJECTED_OTHER] != rejected)
		test_violation(PROG, "stats rejected != host rejected %" PRIu64, rejected);
	if (st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_UNKNOWN_BAND] != no_band)
		test_violation(PROG, "stats unknown-band rejections != host %" PRIu64, no_band);
	if (st.inflight != 0)
		test_violation(PROG, "in flight %" PRIu64 " at quiescence", st.inflight);
	struct flowq_stats cst;
	if (flowq_stats_band(engine, CONF_PRIO, &cst) != 0)
		test_violation(PROG, "the configured band went");
	else if (cst.outcomes[FLOWQ_DISPATCHED] + cst.outcomes[FLOWQ_EVICTED_TTL] +
			 cst.outcomes[FLOWQ_EVICTED_CANCELLED] +
			 cst.outcomes[FLOWQ_EVICTED_DISPLACED] != conf_accepted ||
		 conf_accepted != atomic_load(&conf_completed))
		test_violation(PROG, "configured band outcomes != its %" PRIu64 " requests",
			       conf_accepted);
	double secs = test_now_seconds() - t0;
	uint64_t collected_bands = atomic_load(&engine->bands_collected);
	if (collected_bands < prios)
		test_violation(PROG, "%u template priorities served, %" PRIu64 " bands collected",
			       prios, collected_bands);

	flowq_engine_destroy(engine);
	for (unsigned i = 0; i < np; i++)
		free(ps[i].win);

	fprintf(stderr,
		"%s: accepted=%" PRIu64 " rejected=%" PRIu64 " no_band=%" PRIu64
		" dispatched=%" PRIu64 " ttl=%" PRIu64 " cancelled=%" PRIu64 " displaced=%" PRIu64
		" queued_max=%" PRIu64 "\n",
		PROG, accepted, rejected, no_band,
		(uint64_t)atomic_load(&completed_by[FLOWQ_DISPATCHED]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_TTL]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_CANCELLED]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_DISPLACED]), qmax);
	stress_soak_engine(accepted + rejected, completed_by, &st);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s producers=%u shards=%u items=%" PRIu64 " priorities=%u "
	       "bands_collected=%" PRIu64 " displacement=%s violations=%lu seconds=%.2f\n",
	       PROG, np, ns, accepted + rejected, prios, collected_bands, displacement, v, secs);
	return v ? 1 : 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_bandgc", argc, argv, run, test_violations());
}
