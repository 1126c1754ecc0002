/*
 * bench_dispatch: the dispatcher's cost per decision, alone, for a burst of
 * requests spread over F flows:
 *
 *   BM_engine_dispatch_<fairness>/flows:F
 *
 * for <fairness> in round_robin and global_strict (the engine issue's two),
 * wfq and drr (the byte-fair ones), F in {1, 1000, 50000}.
 * The engine-core issue asks for "per-decision cost flat in F for
 * round_robin (<= 1.5x from 1 to 50000 flows)". BM_engine_rr_e2e measures
 * whole request lives (submit, lookup, dispatch, completion, release on
 * two threads), and at F = 50,000 its rate is set by the producer's
 * registry lookup (cds_lfht_lookup's cold walk), not by a decision. This
 * family measures what a decision costs the dispatcher, one thread, nothing
 * else running: the time per dispatched request of flowq_shard_poll().
 *
 * Workload, per batch of BENCH_DISPATCH_N (16,384) requests:
 *  - untimed: every request is re-initialized and submitted by handle (no
 *    lookup), to a flow drawn uniformly at random (seeded splitmix64, the
 *    same draws at every F), in a random order of the request objects (a
 *    permutation drawn once per case), so the dispatcher visits the
 *    request objects in an order unrelated to memory at every F;
 *  - timed: flowq_shard_poll() until every request has its outcome. This
 *    is the dispatcher's whole job per request: the doorbell, each flow's
 *    inbox drain, ordering (fcfs), the fairness decision, the gate (the
 *    concurrency detector, no limit), the outcome, statistics (queue-time
 *    histogram, counters), capacity return, and the completion callback
 *    (it counts). The first poll of a batch has budget 1: it takes in
 *    every rung flow (at F = 1, DRAIN_MAX_PER_VISIT requests of the one
 *    flow) and dispatches one request; its time per decision of the batch
 *    is reported as first_poll_ns_per_decision, so at F > 1 the intake
 *    and the decisions can be told apart;
 *  - untimed: flowq_release_batch() of every request, then checks: every
 *    request completed exactly once and dispatched, nothing queued or in
 *    flight in the engine's statistics.
 * The time per iteration is ns per decision (one iteration = one dispatched
 * request); the F = 1 case of the same family in the same run is the base
 * of the flatness ratio (tools/engine-report).
 *
 * Why 16,384 requests: their objects (4 MB) stay in the last-level cache,
 * so what changes with F is the flows, not the requests. With 2^17 random
 * objects (33 MB) the inbox drain's chase took a memory miss per request
 * at every F, and at F >= 1000 (every flow taken in before the first
 * decision) the decision took a second one: 270 / 365 / 620 ns at F = 1 /
 * 1000 / 50,000, the memory system's figure more than the dispatcher's.
 * At F = 50,000 about 14,300 flows get requests (one or two each), out of
 * 50,000 registered, so nearly every intake and every decision is on a
 * flow whose lines are cold: that is the cost a proxy with that many
 * tenants pays, and the one the flatness target is about.
 *
 * Engine: polled mode, one shard, one configured band (priority 0) with the
 * fairness under test and fcfs, no limits, the concurrency detector with no
 * in-flight limit, flow GC after an hour, registry pre-sized; every flow
 * registered before the timed region and held by handle. At F = 50,000 the
 * flows (~0.9 KB each) and the requests (BENCH_DISPATCH_N x 256 B) far
 * outgrow the caches, as they would on a proxy with that many tenants.
 *
 * Context: the benchmark thread is the dispatcher (polled mode), so CPU
 * time and wall time agree; the case reports CPU time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>

#include "bench.h"
#include "bench_harness.h"

/* Requests per batch: a backlog of 2.6 per flow at F = 50,000. */
#define BENCH_DISPATCH_N (1u << 14)
/* Release calls take at most this many requests. */
#define BENCH_DISPATCH_RELEASE 256u
#define BENCH_DISPATCH_BYTES   1024u
#define BENCH_DISPATCH_GC_NS   (3600ll * 1000000000ll)

/* A request object as a host would embed one: one 256-byte block each. */
struct bench_dispatch_obj {
	_Alignas(64) struct flowq_req req;
	uint32_t flow;      /* index of its flow in the case */
	uint32_t completed; /* completions seen for the current batch */
};

struct bench_dispatch_case {
	const char *fairness;
};

struct bench_dispatch_run {
	struct flowq_engine *e;
	struct flowq_flow **flows;
	unsigned nflows;
	struct bench_dispatch_obj *objs;
	uint32_t *order; /* submit order: a permutation of the objects */
	uint64_t done;   /* completions of the current batch */
	uint64_t bad;    /* completions that were not DISPATCHED, or twice */
};

static void
bench_dispatch_complete(struct flowq_req *req, void *arg)
{
	struct bench_dispatch_run *run = arg;
	struct bench_dispatch_obj *o =
		(struct bench_dispatch_obj *)((char *)req -
					      offsetof(struct bench_dispatch_obj, req));

	if (flowq_req_outcome(req) != FLOWQ_DISPATCHED || o->completed++ != 0)
		run->bad++;
	run->done++;
}

static void
bench_dispatch_free(struct bench_dispatch_run *run)
{
	for (unsigned i = 0; i < run->nflows; i++)
		flowq_flow_put(run->e, run->flows[i]);
	if (run->e != NULL)
		flowq_engine_destroy(run->e);
	free(run->flows);
	free(run->objs);
	free(run->order);
}

static int
bench_dispatch_setup(struct bench_dispatch_run *run, const char *fairness,
		     unsigned nflows, char *msg, size_t len)
{
	struct flowq_band_config band;
	struct flowq_config cfg;
	char errbuf[160] = "";
	uint64_t seed = 42;
	int err;

	memset(run, 0, sizeof(*run));
	run->flows = calloc(nflows, sizeof(*run->flows));
	run->objs = bench_pool_prefault(sizeof(*run->objs) * BENCH_DISPATCH_N);
	run->order = malloc(sizeof(*run->order) * BENCH_DISPATCH_N);
	if (run->flows == NULL || run->objs == NULL || run->order == NULL) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	flowq_config_init(&cfg);
	band = cfg.default_band;
	band.priority = 0;
	band.max_requests = 0;
	band.max_bytes = 0;
	band.fairness = fairness;
	band.ordering = "fcfs";
	band.usage_ceiling = 1.0;
	cfg.shards = 1;
	cfg.mode = FLOWQ_MODE_POLLED;
	cfg.bands = &band;
	cfg.nbands = 1;
	cfg.default_band_enabled = false;
	cfg.flow_gc_timeout_ns = BENCH_DISPATCH_GC_NS;
	cfg.saturation.detector = "concurrency";
	cfg.saturation.max_inflight = 0;
	cfg.saturation.max_inflight_bytes = 0;
	cfg.registry_buckets = 1024;
	while (cfg.registry_buckets < nflows)
		cfg.registry_buckets <<= 1;
	cfg.errbuf = errbuf;
	cfg.errbuf_size = sizeof(errbuf);
	err = flowq_engine_create(&cfg, &run->e);
	if (err != 0) {
		snprintf(msg, len, "flowq_engine_create: %s: %s", flowq_strerror(err),
			 errbuf);
		run->e = NULL;
		return -1;
	}
	for (unsigned i = 0; i < nflows; i++) {
		char id[16];
		int n = snprintf(id, sizeof(id), "t%u", i);

		err = flowq_flow_get(run->e, id, (uint32_t)n, 0, &run->flows[i]);
		if (err != 0) {
			snprintf(msg, len, "flowq_flow_get(%u): %s", i,
				 flowq_strerror(err));
			return -1;
		}
		run->nflows = i + 1;
	}
	/* Each object's flow, then a random submit order (Fisher-Yates). */
	for (uint32_t i = 0; i < BENCH_DISPATCH_N; i++) {
		run->objs[i].flow = (uint32_t)(bench_splitmix64(&seed) % nflows);
		run->order[i] = i;
	}
	for (uint32_t i = BENCH_DISPATCH_N - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(bench_splitmix64(&seed) % (i + 1));
		uint32_t t = run->order[i];

		run->order[i] = run->order[j];
		run->order[j] = t;
	}
	return 0;
}

/* Submit @p o on its flow: by @p id if not NULL, else by handle. */
static int
bench_dispatch_submit(struct bench_dispatch_run *run, struct bench_dispatch_obj *o,
		      const char *id, char *msg, size_t len)
{
	struct flowq_req *r = &o->req;
	int err;

	o->completed = 0;
	flowq_req_init(r);
	if (id != NULL) {
		r->flow_id = id;
		r->flow_id_len = (uint32_t)strlen(id);
	} else {
		r->flow = run->flows[o->flow];
	}
	r->bytes = BENCH_DISPATCH_BYTES;
	r->complete = bench_dispatch_complete;
	r->arg = run;
	err = flowq_submit(run->e, r);
	if (err != 0) {
		snprintf(msg, len, "flowq_submit: %s", flowq_strerror(err));
		return -1;
	}
	return 0;
}

/* Submit the whole batch (untimed). */
static int
bench_dispatch_fill(struct bench_dispatch_run *run, char *msg, size_t len)
{
	run->done = 0;
	for (uint32_t k = 0; k < BENCH_DISPATCH_N; k++) {
		if (bench_dispatch_submit(run, &run->objs[run->order[k]], NULL, msg, len) != 0)
			return -1;
	}
	return 0;
}

/* The engine's statistics: nothing queued or in flight. */
static int
bench_dispatch_empty(struct bench_dispatch_run *run, char *msg, size_t len)
{
	static struct flowq_stats s; /* large (histogram, cause table) */
	int err = flowq_stats_engine(run->e, &s);

	if (err != 0) {
		snprintf(msg, len, "flowq_stats_engine: %s", flowq_strerror(err));
		return -1;
	}
	if (s.queued != 0 || s.inflight != 0 || s.queued_bytes != 0 ||
	    s.inflight_bytes != 0) {
		snprintf(msg, len,
			 "engine not empty after the batch: queued %" PRIu64
			 ", in flight %" PRIu64,
			 s.queued, s.inflight);
		return -1;
	}
	return 0;
}

/* Release the batch and check it (untimed). */
static int
bench_dispatch_check(struct bench_dispatch_run *run, char *msg, size_t len)
{
	struct flowq_req *reqs[BENCH_DISPATCH_RELEASE];

	if (run->done != BENCH_DISPATCH_N || run->bad != 0) {
		snprintf(msg, len, "%" PRIu64 " completions of %u, %" PRIu64 " bad",
			 run->done, BENCH_DISPATCH_N, run->bad);
		return -1;
	}
	for (uint32_t i = 0; i < BENCH_DISPATCH_N; i += BENCH_DISPATCH_RELEASE) {
		size_t n = 0;

		for (uint32_t j = i;
		     j < i + BENCH_DISPATCH_RELEASE && j < BENCH_DISPATCH_N; j++) {
			if (run->objs[j].completed != 1) {
				snprintf(msg, len, "request %u completed %u times", j,
					 run->objs[j].completed);
				return -1;
			}
			reqs[n++] = &run->objs[j].req;
		}
		if (flowq_release_batch(run->e, reqs, n, NULL) != (int)n) {
			snprintf(msg, len,
				 "flowq_release_batch refused a dispatched request");
			return -1;
		}
	}
	return bench_dispatch_empty(run, msg, len);
}

/* Poll until the batch is dispatched: the first poll with budget 1 (its
 * time added to *r_first_ns), the rest unbounded; polls counted in
 * *r_polls. Returns 0, or -1 with a message. */
static int
bench_dispatch_drain(struct bench_dispatch_run *run, uint64_t *r_first_ns, uint64_t *r_polls,
		     char *msg, size_t len)
{
	for (unsigned budget = 1; run->done < BENCH_DISPATCH_N; budget = 0) {
		uint64_t t0 = budget ? bench_now_ns() : 0;
		int n = flowq_shard_poll(run->e, 0, budget, NULL);

		if (budget)
			*r_first_ns += bench_now_ns() - t0;
		if (n < 0) {
			snprintf(msg, len, "flowq_shard_poll: %s", flowq_strerror(n));
			return -1;
		}
		(*r_polls)++;
	}
	return 0;
}

static void
bench_dispatch_case_fn(struct bench_state *st, void *arg)
{
	const struct bench_dispatch_case *c = arg;
	struct bench_dispatch_run run;
	unsigned nflows = (unsigned)bench_range(st, 0);
	uint64_t decisions = 0, polls = 0, intake = 0, warm = 0;
	char msg[200] = "";

	if (bench_dispatch_setup(&run, c->fairness, nflows, msg, sizeof(msg)) != 0)
		goto fail;
	/* A first batch outside the timed loop: lazily sized engine state
	 * (rings, heaps, histograms) reaches its working size. */
	if (bench_dispatch_fill(&run, msg, sizeof(msg)) != 0 ||
	    bench_dispatch_drain(&run, &warm, &warm, msg, sizeof(msg)) != 0 ||
	    bench_dispatch_check(&run, msg, sizeof(msg)) != 0)
		goto fail;

	while (bench_keep_running_batch(st, BENCH_DISPATCH_N)) {
		bench_pause_timing(st);
		if (bench_dispatch_fill(&run, msg, sizeof(msg)) != 0)
			goto fail;
		bench_resume_timing(st);
		if (bench_dispatch_drain(&run, &intake, &polls, msg, sizeof(msg)) != 0)
			goto fail;
		bench_pause_timing(st);
		if (bench_dispatch_check(&run, msg, sizeof(msg)) != 0)
			goto fail;
		decisions += BENCH_DISPATCH_N;
		bench_resume_timing(st);
	}
	bench_set_items_processed(st, (int64_t)decisions);
	bench_set_counter(st, "polls_per_batch",
			  decisions ? (double)polls * BENCH_DISPATCH_N / (double)decisions
				    : 0,
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "first_poll_ns_per_decision",
			  decisions ? (double)intake / (double)decisions : 0,
			  BENCH_COUNTER_PLAIN);
	bench_dispatch_free(&run);
	return;
fail:
	bench_skip_with_error(st, msg);
	bench_dispatch_free(&run);
}

/* ---- BM_engine_request_alone: one request's whole path on one thread ---- */

/* Requests in flight per window: BM_engine_e2e's window. */
#define BENCH_ALONE_WINDOW 1024u

static const char bench_alone_fairness[] = "global_strict";

/* The flows' ids, as the e2e harness names them ("t<index>"); the
 * dispatcher-alone set-up registers them under these names. */
static char (*bench_alone_ids)[16];
static unsigned bench_alone_nids;

static int
bench_alone_window(struct bench_dispatch_run *run, bool by_id, uint64_t *r_ns, char *msg,
		   size_t len)
{
	uint64_t t0 = bench_now_ns(), polls = 0;

	run->done = 0;
	for (uint32_t k = 0; k < BENCH_ALONE_WINDOW; k++) {
		struct bench_dispatch_obj *o = &run->objs[k];

		if (bench_dispatch_submit(run, o, by_id ? bench_alone_ids[o->flow] : NULL, msg,
					  len) != 0)
			return -1;
	}
	uint64_t t1 = bench_now_ns();
	while (run->done < BENCH_ALONE_WINDOW) {
		int n = flowq_shard_poll(run->e, 0, 0, NULL);

		if (n < 0 || ++polls > 1000000) {
			snprintf(msg, len, "flowq_shard_poll: %s after %" PRIu64 " polls",
				 n < 0 ? flowq_strerror(n) : "no progress", polls);
			return -1;
		}
	}
	uint64_t t2 = bench_now_ns();
	for (uint32_t k = 0; k < BENCH_ALONE_WINDOW; k++) {
		if (run->objs[k].completed != 1 || flowq_release(run->e, &run->objs[k].req)) {
			snprintf(msg, len, "request %u: %u completions, or its release refused",
				 k, run->objs[k].completed);
			return -1;
		}
	}
	uint64_t t3 = bench_now_ns();
	if (run->bad != 0) {
		snprintf(msg, len, "%" PRIu64 " bad completions", run->bad);
		return -1;
	}
	r_ns[0] += t1 - t0;
	r_ns[1] += t2 - t1;
	r_ns[2] += t3 - t2;
	return 0;
}

/*
 * BM_engine_request_alone/flows:F/by_id:B: BM_engine_e2e's request on one
 * thread, so that every line it touches stays in that core's cache: the
 * cost of its instructions alone, the floor under the end-to-end cases
 * (where the same steps run on two cores and the lines they share move
 * between them). Polled mode, the dispatcher-alone cases' engine
 * (global_strict, fcfs, no limits); per window of BENCH_ALONE_WINDOW
 * requests on the same objects, in order: each submitted (by id as
 * BM_engine_e2e does, B = 1, or by handle, B = 0) on a flow drawn
 * uniformly of F, all dispatched by flowq_shard_poll(), each released with
 * flowq_release(). The time per item is the whole request; the counters
 * split it: submit_ns, dispatch_ns, release_ns per request. The engine's
 * statistics are checked at the end (nothing queued or in flight).
 */
static void
bench_alone_case_fn(struct bench_state *st, void *arg)
{
	struct bench_dispatch_run run;
	unsigned nflows = (unsigned)bench_range(st, 0);
	bool by_id = bench_range(st, 1) != 0;
	uint64_t ns[3] = {0, 0, 0}, warm[3] = {0, 0, 0}, n = 0;
	char msg[200] = "";

	(void)arg;
	if (bench_alone_nids < nflows) {
		free(bench_alone_ids);
		bench_alone_nids = 0;
		bench_alone_ids = calloc(nflows, sizeof(*bench_alone_ids));
		if (bench_alone_ids == NULL) {
			bench_skip_with_error(st, "out of memory");
			return;
		}
		for (unsigned i = 0; i < nflows; i++)
			snprintf(bench_alone_ids[i], sizeof(bench_alone_ids[i]), "t%u", i);
		bench_alone_nids = nflows;
	}
	if (bench_dispatch_setup(&run, bench_alone_fairness, nflows, msg, sizeof(msg)) != 0)
		goto fail;
	/* Warm: the flows' state and the objects reach their working size. */
	for (int i = 0; i < 4; i++)
		if (bench_alone_window(&run, by_id, warm, msg, sizeof(msg)) != 0)
			goto fail;
	while (bench_keep_running_batch(st, BENCH_ALONE_WINDOW)) {
		if (bench_alone_window(&run, by_id, ns, msg, sizeof(msg)) != 0)
			goto fail;
		n += BENCH_ALONE_WINDOW;
	}
	if (bench_dispatch_empty(&run, msg, sizeof(msg)) != 0)
		goto fail;
	bench_set_items_processed(st, (int64_t)n);
	bench_set_counter(st, "submit_ns", n ? (double)ns[0] / (double)n : 0, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "dispatch_ns", n ? (double)ns[1] / (double)n : 0,
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "release_ns", n ? (double)ns[2] / (double)n : 0,
			  BENCH_COUNTER_PLAIN);
	bench_dispatch_free(&run);
	return;
fail:
	bench_skip_with_error(st, msg);
	bench_dispatch_free(&run);
}

void
bench_dispatch_register(void)
{
	static const struct bench_dispatch_case cases[] = {
		{"round_robin"},
		{"global_strict"},
		{"wfq"},
		{"drr"},
	};
	static const int64_t flows[] = {1, 1000, 50000};
	char name[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bench_case *bc;

		snprintf(name, sizeof(name), "BM_engine_dispatch_%s", cases[i].fairness);
		bc = bench_register(name, bench_dispatch_case_fn, (void *)&cases[i]);
		if (bc == NULL)
			continue;
		for (size_t k = 0; k < sizeof(flows) / sizeof(flows[0]); k++)
			bench_case_arg(bc, flows[k]);
		bench_case_arg_name(bc, "flows");
		bench_case_unit(bc, BENCH_UNIT_NS);
	}

	static const char *const alone_names[] = {"flows", "by_id"};
	static const int64_t alone_flows[] = {1, 1000};
	struct bench_case *bc = bench_register("BM_engine_request_alone", bench_alone_case_fn, NULL);

	if (bc == NULL)
		return;
	for (size_t k = 0; k < sizeof(alone_flows) / sizeof(alone_flows[0]); k++)
		for (int64_t by_id = 0; by_id <= 1; by_id++)
			bench_case_args(bc, (const int64_t[]){alone_flows[k], by_id}, 2);
	bench_case_arg_names(bc, alone_names, 2);
	bench_case_unit(bc, BENCH_UNIT_NS);
}
