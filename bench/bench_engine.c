/*
 * bench_engine: flowq's engine end to end, through the public API of
 * flowq.h and the workload of bench_e2e.h:
 *
 *   BM_engine_e2e/producers:P/flows:F/dist:D/shards:S/prios:K/real_time
 *       fairness "global_strict" (GIE's default): the peer of
 *       BM_gie_style_e2e (bench_gie.c), same arguments, same workload;
 *   BM_engine_rr_e2e/...  the same with fairness "round_robin": the
 *       per-decision cost must stay flat in F (<= 1.5x from 1 to 50 000
 *       flows);
 *   BM_engine_edf_e2e/...  BM_engine_e2e with ordering "edf" instead of
 *       "fcfs": the cost of the per-flow pairing heap against fcfs's list.
 *       The workload's requests have no TTL, so every key is INT64_MAX and
 *       the heap keeps FIFO order by its sequence (the same dispatch order
 *       as fcfs): only the data structure differs;
 *   BM_engine_batch_e2e/...  BM_engine_e2e through the batch calls: each
 *       producer submits up to BENCH_E2E_SUBMIT_BATCH prepared requests
 *       per flowq_submit_batch() and releases each return-port dequeue's
 *       dispatched requests with one flowq_release_batch(), as an event
 *       loop that read several requests in one wake-up would. Its peer is
 *       BM_engine_raw_mpsc_batch (one chain enqueue per batch); the GIE
 *       design has no batch call, so against BM_gie_style_e2e it shows what
 *       the batch API buys, not a like-for-like ratio;
 *   BM_engine_raw_mpsc/producers:P/...  (bench_e2e.c) the raw flowq_mpsc
 *       hand-off in the same harness: end to end must keep >= 0.5x of it
 *       at F = 1.
 * tools/engine-report runs these with BM_gie_style_e2e in one process and
 * prints the ratios against the targets (which concern the per-request
 * calls).
 *
 * The port of GIE's benchmark suite (bench_e2e.h has the workloads), each
 * with a GIE-style twin in bench_gie.c; tools/bench-report prints the
 * ratios:
 *   BM_gie_matrix_flowq/limit:L/shards:S/prios:P/flows:F/clients:W
 *       GIE's PerformanceMatrix: global_strict + fcfs (GIE's defaults), the
 *       concurrency detector with max_inflight = L (0: none), released by
 *       the client as soon as its request is dispatched;
 *   BM_gie_churn_flowq/limit:L/shards:S/clients:W
 *       every request a new flow, created just in time by flowq_submit()
 *       and collected BENCH_E2E_CHURN_GC_NS after it went idle;
 *   BM_gie_cancel_flowq/timeout_us:T/shards:S/clients:W
 *       the "callback" detector answering 1.0 (always saturated): every
 *       request waits until its client's flowq_cancel() (EVICTED_CANCELLED).
 *
 * Engine setup: threaded mode, cfg.shards = S, cfg.intake_coalesce_ns from
 * the environment variable FLOWQ_BENCH_INTAKE_COALESCE_NS (default 2 us, as
 * flowq.h's; an invalid value fails the case with the engine's message);
 * bands 0..K-1 configured
 * (no just-in-time band: every priority the workload uses has one), each
 * with the fairness under test, FCFS ordering (edf for BM_engine_edf_e2e),
 * a 10 GB byte limit (GIE's
 * benchmark: never reached, at most P * 1024 requests of under 9.1 KB are
 * queued, but set, so the accounting runs) and no request limit; no global
 * limit; the concurrency detector with no in-flight limit (GIE's benchmark
 * at L = 0: the backend never saturates, so this measures the engine, not a
 * gate); flow GC after an hour (never during a run); every flow registered
 * before the timed region with flowq_flow_get() and its handle held until
 * the engine is destroyed, so no flow is created or collected while timed.
 * Requests still name their flow by id (req->flow stays NULL): every submit
 * pays the registry lookup, as a proxy that does not cache handles would,
 * and as the GIE peer does.
 *
 * Per request: the producer re-initializes the object's struct flowq_req
 * (flowq_req_init(): required before each submit), sets flow id, priority,
 * bytes and the callback, and submits. The completion callback, on a
 * dispatcher, reads the outcome and ends in bench_e2e_complete() (latency
 * stamp, return to the producer); the producer releases a dispatched
 * request when it takes it back (see bench_e2e.h for why there).
 *
 * Checks after every batch: the workload's conservation, then the engine's
 * counters (flowq_stats_engine()): outcomes[DISPATCHED] and the REJECTED_*
 * counts equal the producers' totals, nothing queued, nothing in flight.
 * The engine's counters are read once its dispatchers are done with the
 * batch; flowq.h does not say whether a dispatcher counts an outcome before
 * or after it runs the completion, so a mismatch is re-read for up to
 * BENCH_ENGINE_SETTLE_MS before the case fails.
 *
 * This file needs core/engine.c: until the engine lands, flowq_bench does
 * not link (bench_gie.c and bench_e2e.c do not need it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/flowq.h>

#include "bench.h"
#include "bench_e2e.h"

/* Items per batch (a multiple of every P registered). */
#define BENCH_ENGINE_ITEMS (1u << 18)
/* The GIE-suite ports: matrix (10 clients or L = 1: bound by the wake-ups
 * of a round trip, ~10^4 requests/s), churn, and cancellation (a 50 ms
 * timeout takes W requests per 50 ms). */
#define BENCH_ENGINE_MATRIX_ITEMS      (1u << 17)
#define BENCH_ENGINE_MATRIX1_ITEMS     (1u << 15)
#define BENCH_ENGINE_MATRIX_FEW_ITEMS  (1u << 13)
#define BENCH_ENGINE_CHURN_ITEMS       (1u << 16)
#define BENCH_ENGINE_CANCEL_ITEMS      (1u << 16)
#define BENCH_ENGINE_SLOW_CANCEL_ITEMS (1u << 12)
/* Band byte limit, as GIE's benchmark (10 GB per band). */
#define BENCH_ENGINE_BAND_BYTES (10ull * 1000 * 1000 * 1000)
/* Flow GC timeout: longer than any run. */
#define BENCH_ENGINE_FLOW_GC_NS (3600ll * 1000000000ll)
/* How long the engine's counters may take to settle after a batch. */
#define BENCH_ENGINE_SETTLE_MS 200

struct bench_engine_ctx {
	struct flowq_engine *e;
	/* Handles on every flow of the case (pins them). */
	struct flowq_flow **flows;
	unsigned nflows;
};

static size_t
bench_engine_batch_items(const struct bench_e2e_args *a)
{
	switch (a->layout) {
	case BENCH_E2E_LAYOUT_MATRIX:
		if (a->window * a->producers <= 100)
			return BENCH_ENGINE_MATRIX_FEW_ITEMS;
		return a->limit == 1 ? BENCH_ENGINE_MATRIX1_ITEMS
				     : BENCH_ENGINE_MATRIX_ITEMS;
	case BENCH_E2E_LAYOUT_CHURN:
		return BENCH_ENGINE_CHURN_ITEMS;
	case BENCH_E2E_LAYOUT_CANCEL:
		return a->timeout_ns >= 1000000 ? BENCH_ENGINE_SLOW_CANCEL_ITEMS
						: BENCH_ENGINE_CANCEL_ITEMS;
	default:
		return BENCH_ENGINE_ITEMS;
	}
}

/* GIE's alwaysSaturatedDetector. */
static double
bench_engine_saturated(void *ctx)
{
	(void)ctx;
	return 1.0;
}

static void
bench_engine_complete(struct flowq_req *req, void *arg)
{
	struct bench_e2e_obj *o = bench_e2e_container_of(req, struct bench_e2e_obj, u.fq);
	enum flowq_outcome out = flowq_req_outcome(req);

	(void)arg;
	bench_e2e_complete(o, out == FLOWQ_DISPATCHED          ? BENCH_E2E_DISPATCHED
			      : flowq_outcome_is_rejected(out) ? BENCH_E2E_REJECTED
							       : BENCH_E2E_EVICTED);
}

static int
bench_engine_submit(void *engine, struct bench_e2e_obj *o, const struct bench_e2e_flow *f)
{
	struct flowq_req *r = &o->u.fq;

	flowq_req_init(r);
	r->flow_id = f->id;
	r->flow_id_len = f->id_len;
	r->priority = f->priority;
	r->bytes = o->bytes;
	r->complete = bench_engine_complete;
	r->arg = NULL;
	return flowq_submit(engine, r);
}

static void
bench_engine_finish(void *engine, struct bench_e2e_obj *o)
{
	/* The backend is done with it at once: give the slot back. */
	if (o->outcome == BENCH_E2E_DISPATCHED && flowq_release(engine, &o->u.fq) != 0)
		o->producer->bad++;
}

static void
bench_engine_submit_batch(void *engine, struct bench_e2e_obj *const *objs,
			  const struct bench_e2e_flow *const *flows, size_t n, int *rc)
{
	/* Initialized: GCC cannot see that the loop fills the first n. */
	struct flowq_req *reqs[BENCH_E2E_SUBMIT_BATCH] = {NULL};

	if (n == 0 || n > BENCH_E2E_SUBMIT_BATCH)
		return;
	for (size_t i = 0; i < n; i++) {
		struct flowq_req *r = &objs[i]->u.fq;

		flowq_req_init(r);
		r->flow_id = flows[i]->id;
		r->flow_id_len = flows[i]->id_len;
		r->priority = flows[i]->priority;
		r->bytes = objs[i]->bytes;
		r->complete = bench_engine_complete;
		r->arg = NULL;
		reqs[i] = r;
	}
	if (flowq_submit_batch(engine, reqs, n, rc) < 0)
		for (size_t i = 0; i < n; i++)
			rc[i] = -EFAULT; /* cannot happen: counted as rejects */
}

static void
bench_engine_finish_batch(void *engine, struct bench_e2e_obj *const *objs, size_t n)
{
	struct flowq_req *reqs[BENCH_E2E_REAP];
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (objs[i]->outcome == BENCH_E2E_DISPATCHED)
			reqs[k++] = &objs[i]->u.fq;
	if (k && flowq_release_batch(engine, reqs, k, NULL) != (int)k)
		objs[0]->producer->bad++;
}

static int
bench_engine_cancel(void *engine, struct bench_e2e_obj *o)
{
	return flowq_cancel(engine, &o->u.fq);
}

/* The suites of this file (bench_engine_suites[]). */
enum bench_engine_suite {
	BENCH_ENGINE_GS,
	BENCH_ENGINE_RR,
	BENCH_ENGINE_EDF,
	BENCH_ENGINE_BATCH,
	BENCH_ENGINE_MATRIX,
	BENCH_ENGINE_CHURN,
	BENCH_ENGINE_CANCEL,
	BENCH_ENGINE_NSUITES
};
static const struct bench_e2e_suite bench_engine_suites[BENCH_ENGINE_NSUITES];

static size_t
bench_engine_produce(struct bench_pool *pool, unsigned index, void *ctx)
{
	struct bench_e2e_run *run = ctx;

	if (run->suite == &bench_engine_suites[BENCH_ENGINE_BATCH])
		return bench_e2e_produce_batch_loop(pool, run->producers[index],
						    bench_engine_submit_batch,
						    bench_engine_finish_batch);
	if (run->args.layout == BENCH_E2E_LAYOUT_CANCEL)
		return bench_e2e_produce_cancel_loop(
			pool, run->producers[index], bench_engine_submit,
			bench_engine_cancel, bench_engine_finish);
	return bench_e2e_produce_loop(pool, run->producers[index], bench_engine_submit,
				      bench_engine_finish);
}

static void
bench_engine_ctx_free(struct bench_engine_ctx *c)
{
	for (unsigned i = 0; i < c->nflows; i++)
		flowq_flow_put(c->e, c->flows[i]);
	if (c->e != NULL)
		flowq_engine_destroy(c->e);
	free(c->flows);
	free(c);
}


static int
bench_engine_create(struct bench_e2e_run *run, char *msg, size_t len)
{
	struct flowq_band_config bands[FLOWQ_MAX_BANDS];
	struct flowq_config cfg;
	struct bench_engine_ctx *c;
	char errbuf[160] = "";
	int err;

	if (run->args.prios > FLOWQ_MAX_BANDS) {
		snprintf(msg, len, "more priorities than FLOWQ_MAX_BANDS");
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c != NULL)
		c->flows = calloc(run->nreg + 1, sizeof(*c->flows));
	if (c == NULL || c->flows == NULL) {
		free(c);
		snprintf(msg, len, "out of memory");
		return -1;
	}
	flowq_config_init(&cfg);
	for (unsigned k = 0; k < run->args.prios; k++) {
		/* The template's defaults (ordering, ceiling), then ours. */
		bands[k] = cfg.default_band;
		bands[k].priority = (int32_t)k;
		bands[k].max_requests = 0;
		bands[k].max_bytes = BENCH_ENGINE_BAND_BYTES;
		bands[k].fairness = run->suite->param;
		bands[k].ordering = run->suite == &bench_engine_suites[BENCH_ENGINE_EDF]
					    ? "edf"
					    : "fcfs";
		bands[k].usage_ceiling = 1.0;
	}
	cfg.shards = run->args.shards;
	/* Pre-sized for the flows the case registers, as the design has it
	 * and as a host that knows its tenant count would configure it: a
	 * power of two >= flows per shard. Left at the default (1024),
	 * liburcu's table grows only once it holds 8 nodes per bucket
	 * (rculfhash.c: CHAIN_LEN_RESIZE_THRESHOLD 3 with node accounting),
	 * so at F = 50,000 a lookup walks several flows' cold lines: 1.47-1.63
	 * us per request against 1.12-1.20 us pre-sized (P = 1, S = 1; the
	 * figures are in bench/ENGINE-LOG.md, "Session 7"). The GIE-style peer's
	 * own table grows at 13/16 full. */
	{
		unsigned long per = run->nreg / (run->args.shards ? run->args.shards : 1) + 1;
		unsigned long b = 1024;
		while (b < per && b < (1ul << 24))
			b <<= 1;
		cfg.registry_buckets = b;
	}
	cfg.mode = FLOWQ_MODE_THREADED;
	/* flowq.h's default (2 us) unless FLOWQ_BENCH_INTAKE_COALESCE_NS says
	 * otherwise: an A/B of the knob in one binary. */
	{
		const char *v = getenv("FLOWQ_BENCH_INTAKE_COALESCE_NS");

		if (v != NULL && *v != '\0')
			cfg.intake_coalesce_ns = strtoll(v, NULL, 10);
	}
	cfg.bands = bands;
	cfg.nbands = run->args.prios;
	cfg.default_band_enabled = false;
	cfg.flow_gc_timeout_ns =
		run->args.flow_gc_ns > 0 ? run->args.flow_gc_ns : BENCH_ENGINE_FLOW_GC_NS;
	if (run->args.saturated) {
		cfg.saturation.detector = "callback";
		cfg.saturation.callback = bench_engine_saturated;
	} else {
		cfg.saturation.detector = "concurrency";
		cfg.saturation.max_inflight = run->args.limit;
		cfg.saturation.max_inflight_bytes = 0;
	}
	cfg.errbuf = errbuf;
	cfg.errbuf_size = sizeof(errbuf);
	err = flowq_engine_create(&cfg, &c->e);
	if (err != 0) {
		snprintf(msg, len, "flowq_engine_create: %s%s%s", flowq_strerror(err),
			 errbuf[0] != '\0' ? ": " : "", errbuf);
		c->e = NULL;
		bench_engine_ctx_free(c);
		return -1;
	}
	for (unsigned i = 0; i < run->nreg; i++) {
		const struct bench_e2e_flow *fl = &bench_e2e_flows[run->reg[i]];

		err = flowq_flow_get(c->e, fl->id, fl->id_len, fl->priority,
				     &c->flows[i]);
		if (err != 0) {
			snprintf(msg, len, "flowq_flow_get(%u): %s", run->reg[i],
				 flowq_strerror(err));
			bench_engine_ctx_free(c);
			return -1;
		}
		c->nflows = i + 1;
	}
	run->engine = c->e;
	run->ctx = c;
	return 0;
}

static int
bench_engine_verify(struct bench_e2e_run *run, const struct bench_e2e_totals *t,
		    char *msg, size_t len)
{
	static struct flowq_stats s; /* large (histogram, cause table) */
	struct bench_engine_ctx *c = run->ctx;
	const struct timespec ms = {0, 1000000};
	uint64_t rejected = t->sync_rejects + t->outcomes[BENCH_E2E_REJECTED];
	uint64_t eng_rejected = 0, eng_evicted = 0;
	int err;

	for (int tries = 0;; tries++) {
		err = flowq_stats_engine(c->e, &s);
		if (err != 0) {
			snprintf(msg, len, "flowq_stats_engine: %s", flowq_strerror(err));
			return -1;
		}
		eng_rejected = s.outcomes[FLOWQ_REJECTED_CAPACITY] +
			       s.outcomes[FLOWQ_REJECTED_OTHER];
		eng_evicted = 0;
		for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
			if (flowq_outcome_is_evicted((enum flowq_outcome)o))
				eng_evicted += s.outcomes[o];
		if (s.outcomes[FLOWQ_DISPATCHED] == t->outcomes[BENCH_E2E_DISPATCHED] &&
		    eng_rejected == rejected &&
		    eng_evicted == t->outcomes[BENCH_E2E_EVICTED] && s.queued == 0 &&
		    s.queued_bytes == 0 && s.inflight == 0 && s.inflight_bytes == 0)
			return 0;
		if (tries >= BENCH_ENGINE_SETTLE_MS)
			break;
		nanosleep(&ms, NULL);
	}
	snprintf(msg, len,
		 "flowq engine stats after the batch: dispatched %" PRIu64
		 " (producers %" PRIu64 "), rejected %" PRIu64 " (producers %" PRIu64
		 "), evicted %" PRIu64 " (producers %" PRIu64 "), queued %" PRIu64
		 " (%" PRIu64 " B), in flight %" PRIu64 " (%" PRIu64 " B)",
		 s.outcomes[FLOWQ_DISPATCHED], t->outcomes[BENCH_E2E_DISPATCHED],
		 eng_rejected, rejected, eng_evicted, t->outcomes[BENCH_E2E_EVICTED],
		 s.queued, s.queued_bytes, s.inflight, s.inflight_bytes);
	return -1;
}

/* The dispatchers' activity over the case (flowq_stats_shard(), summed over
 * the shards): rings_per_request, the fraction of submits that rang the
 * doorbell (each registered flow rang once more, to be adopted: not
 * counted); decisions_per_round; sleeps_per_request, how often a
 * dispatcher went to sleep and had to be woken; coalesce_waits_per_round,
 * how often the intake-coalescing wait followed a round (the engine runs it
 * while it measures, or has found, that it pays: core/coalesce.h; 0 with
 * FLOWQ_BENCH_INTAKE_COALESCE_NS=0). */
static void
bench_engine_report(struct bench_state *st, struct bench_e2e_run *run,
		    const struct bench_e2e_totals *t)
{
	struct bench_engine_ctx *c = run->ctx;
	uint64_t intakes = 0, rounds = 0, decided = 0, sleeps = 0, waits = 0;
	uint64_t dispatched = t->outcomes[BENCH_E2E_DISPATCHED];

	for (unsigned k = 0; k < flowq_shard_count(c->e); k++) {
		struct flowq_shard_stats ss;

		if (flowq_stats_shard(c->e, k, &ss) != 0)
			return;
		intakes += ss.intakes;
		rounds += ss.rounds;
		decided += ss.decided;
		sleeps += ss.sleeps;
		waits += ss.coalesce_waits;
	}
	intakes = intakes > c->nflows ? intakes - c->nflows : 0;
	if (dispatched != 0) {
		bench_set_counter(st, "rings_per_request", (double)intakes / (double)dispatched,
				  BENCH_COUNTER_PLAIN);
		bench_set_counter(st, "sleeps_per_request", (double)sleeps / (double)dispatched,
				  BENCH_COUNTER_PLAIN);
	}
	if (rounds != 0) {
		bench_set_counter(st, "decisions_per_round", (double)decided / (double)rounds,
				  BENCH_COUNTER_PLAIN);
		bench_set_counter(st, "coalesce_waits_per_round",
				  (double)waits / (double)rounds, BENCH_COUNTER_PLAIN);
	}
}

static void
bench_engine_destroy(struct bench_e2e_run *run)
{
	bench_engine_ctx_free(run->ctx);
}

/* One flowq suite: its family name, case layout and fairness policy. */
#define BENCH_ENGINE_SUITE(nm, lay, fair)                                                \
	{                                                                                \
		.name = (nm), .layout = (lay), .param = (fair),                          \
		.batch_items = bench_engine_batch_items, .create = bench_engine_create,  \
		.produce = bench_engine_produce, .verify = bench_engine_verify,          \
		.report = bench_engine_report, .destroy = bench_engine_destroy,          \
	}

/* The GIE-suite ports run global_strict + fcfs, GIE's defaults. */
static const struct bench_e2e_suite bench_engine_suites[BENCH_ENGINE_NSUITES] = {
	[BENCH_ENGINE_GS] = BENCH_ENGINE_SUITE("BM_engine_e2e", BENCH_E2E_LAYOUT_E2E,
					       "global_strict"),
	[BENCH_ENGINE_RR] = BENCH_ENGINE_SUITE("BM_engine_rr_e2e", BENCH_E2E_LAYOUT_E2E,
					       "round_robin"),
	[BENCH_ENGINE_EDF] = BENCH_ENGINE_SUITE("BM_engine_edf_e2e", BENCH_E2E_LAYOUT_E2E,
						"global_strict"),
	[BENCH_ENGINE_BATCH] = BENCH_ENGINE_SUITE("BM_engine_batch_e2e",
						  BENCH_E2E_LAYOUT_E2E, "global_strict"),
	[BENCH_ENGINE_MATRIX] = BENCH_ENGINE_SUITE(
		"BM_gie_matrix_flowq", BENCH_E2E_LAYOUT_MATRIX, "global_strict"),
	[BENCH_ENGINE_CHURN] = BENCH_ENGINE_SUITE(
		"BM_gie_churn_flowq", BENCH_E2E_LAYOUT_CHURN, "global_strict"),
	[BENCH_ENGINE_CANCEL] = BENCH_ENGINE_SUITE(
		"BM_gie_cancel_flowq", BENCH_E2E_LAYOUT_CANCEL, "global_strict"),
};

static void
bench_engine_case(struct bench_state *st, void *arg)
{
	bench_e2e_case(st, arg);
}

void
bench_engine_register(void)
{
	static const unsigned flows[] = {1, 1000, 50000};
	static const unsigned matrix_flows[] = {10, 50000};

	for (int i = BENCH_ENGINE_GS; i <= BENCH_ENGINE_BATCH; i++)
		bench_e2e_register_family(&bench_engine_suites[i], bench_engine_case,
					  flows, sizeof(flows) / sizeof(flows[0]), 0);
	bench_e2e_register_matrix(&bench_engine_suites[BENCH_ENGINE_MATRIX],
				  bench_engine_case, matrix_flows,
				  sizeof(matrix_flows) / sizeof(matrix_flows[0]), false);
	bench_e2e_register_gie(&bench_engine_suites[BENCH_ENGINE_CHURN],
			       bench_engine_case);
	bench_e2e_register_gie(&bench_engine_suites[BENCH_ENGINE_CANCEL],
			       bench_engine_case);
}
