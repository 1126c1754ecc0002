/*
 * bench_gie: BM_gie_style_e2e, the GIE-style engine (gie_style.h) through the
 * end-to-end workload of bench_e2e.h, with the same arguments as
 * BM_engine_e2e so that tools/engine-report can put them side by side:
 *
 *   BM_gie_style_e2e/producers:P/flows:F/dist:D/shards:S/prios:K/real_time
 *
 * Engine setup, as GIE's own benchmark sets up its registry (§6): bands
 * 0..K-1, each limited to 10 GB (never reached: at most P * 1024 requests of
 * under 9.1 KB are queued), no global limit, global-strict fairness with
 * FCFS ordering, ListQueue, hand-off of max(2000 / S, 10); every flow
 * registered before the timed region, since the best-head scan visits every
 * registered flow of a band whether it is backlogged or not.
 *
 * Cost. GIE dispatches one item per cycle and a cycle scans every flow of
 * the band (about 9 us at 1000 flows and 0.5 ms at 50 000 flows per decision,
 * by the estimate), so a run is capped in requests, not time: the
 * batch is BENCH_GIE_ITEMS(F) requests (2^15 at F = 1, 2^12 at F = 1000,
 * 2^10 at F = 50 000) and the F = 50 000 cases run exactly
 * BENCH_GIE_SLOW_BATCHES batches (Iterations(), so --benchmark_min_time
 * does not apply to them: a few seconds each); the others run to
 * min_time as usual.
 *
 * Counters besides bench_e2e_case()'s: proc_cpu_ns_per_decision (the
 * processors' CPU time per dispatched request: the cost of one decision,
 * free of the producers' share of the CPUs), flows_scanned_per_decision
 * (Len() reads per dispatch), heads_peeked_per_decision (non-empty flows
 * whose head was read under its lock), cycles_per_decision, blocked_submits (submits
 * that found the hand-off full and blocked, GIE's SubmitOrBlock).
 *
 * Checks after every batch: the workload's conservation (bench_e2e.h), the
 * engine's own counters against it (received = accepted, dispatched =
 * dispatched, no capacity rejection) and gie_style_check(): every queue,
 * band, shard and the registry empty, no lease held.
 *
 * The port of GIE's own benchmark suite, the twins of BM_gie_*_flowq
 * (bench_engine.c; workloads in bench_e2e.h), set up as GIE's harness sets
 * up its controller (§6):
 *   BM_gie_matrix_gie/limit:L/shards:S/prios:P/flows:F/clients:W
 *       benchDetector with L slots (max_inflight; 0: free flow), released
 *       by the client after a dispatch; sweep and GC off (GIE: 1 h).
 *       F = 50 000 runs exactly one batch per repetition: 2 x W requests
 *       (at least 2048), since a decision scans every flow of the band;
 *   BM_gie_churn_gie/limit:L/shards:S/clients:W
 *       every request a new flow (JIT under the write lock), the flow GC
 *       every BENCH_E2E_CHURN_GC_NS;
 *   BM_gie_cancel_gie/timeout_us:T/shards:S/clients:W
 *       alwaysSaturatedDetector, the cleanup sweep every
 *       BENCH_E2E_SWEEP_NS (GIE's benchmark: 10 ms); the client's cancel is
 *       gie_style_cancel() (GIE: its context times out).
 * Extra counters: gated_cycles, swept, zombie_heads, zombie_handoffs,
 * flows_created and flows_collected (totals over the run), flows_live (at
 * the end).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_e2e.h"
#include "gie_style.h"

/* Band limit, as GIE's benchmark (10 GB per band). */
#define BENCH_GIE_BAND_BYTES (10ull * 1000 * 1000 * 1000)
/* Batches of the F = 50 000 cases. */
#define BENCH_GIE_SLOW_BATCHES 2
#define BENCH_GIE_SLOW_ITEMS   (1u << 10)
/* The GIE-suite ports: fast matrix cases, the one batch of a slow one
 * (per client, at least BENCH_GIE_MATRIX_MIN), churn, cancellation; 10
 * clients are bound by a round trip's wake-ups. */
#define BENCH_GIE_MATRIX_ITEMS      (1u << 14)
#define BENCH_GIE_MATRIX_FEW_ITEMS  (1u << 13)
#define BENCH_GIE_MATRIX_PER_CLIENT 2u
#define BENCH_GIE_MATRIX_MIN        2048u
#define BENCH_GIE_CHURN_ITEMS       (1u << 14)
#define BENCH_GIE_CANCEL_ITEMS      (1u << 14)
#define BENCH_GIE_SLOW_CANCEL_ITEMS (1u << 12)

struct bench_gie_ctx {
	struct gie_style_engine *e;
	struct gie_style_stats start;
};

static size_t
bench_gie_batch_items(const struct bench_e2e_args *a)
{
	size_t n;

	switch (a->layout) {
	case BENCH_E2E_LAYOUT_MATRIX:
		if (a->flows < 10000)
			return a->window * a->producers <= 100
				       ? BENCH_GIE_MATRIX_FEW_ITEMS
				       : BENCH_GIE_MATRIX_ITEMS;
		n = (size_t)BENCH_GIE_MATRIX_PER_CLIENT * a->window * a->producers;
		return n > BENCH_GIE_MATRIX_MIN ? n : BENCH_GIE_MATRIX_MIN;
	case BENCH_E2E_LAYOUT_CHURN:
		return BENCH_GIE_CHURN_ITEMS;
	case BENCH_E2E_LAYOUT_CANCEL:
		return a->timeout_ns >= 1000000 ? BENCH_GIE_SLOW_CANCEL_ITEMS
						: BENCH_GIE_CANCEL_ITEMS;
	default:
		break;
	}
	if (a->flows >= 10000)
		return BENCH_GIE_SLOW_ITEMS;
	if (a->flows >= 100)
		return 1u << 12;
	return 1u << 15;
}

static void
bench_gie_complete(struct gie_style_item *it, enum gie_style_outcome outcome, void *arg)
{
	struct bench_e2e_obj *o = bench_e2e_container_of(it, struct bench_e2e_obj, u.gie);

	(void)arg;
	bench_e2e_complete(o, outcome == GIE_STYLE_DISPATCHED ? BENCH_E2E_DISPATCHED
			      : outcome == GIE_STYLE_REJECTED_CAPACITY ||
					      outcome == GIE_STYLE_REJECTED_OTHER
				      ? BENCH_E2E_REJECTED
				      : BENCH_E2E_EVICTED);
}

static int
bench_gie_submit(void *engine, struct bench_e2e_obj *o, const struct bench_e2e_flow *f)
{
	struct gie_style_item *it = &o->u.gie;

	it->flow_id = f->id;
	it->flow_id_len = f->id_len;
	it->priority = f->priority;
	it->bytes = o->bytes;
	it->complete = bench_gie_complete;
	it->arg = NULL;
	return gie_style_submit(engine, it);
}

static void
bench_gie_finish(void *engine, struct bench_e2e_obj *o)
{
	/* The waiter's return from EnqueueAndWait: drop the lease; a
	 * dispatched request's client releases its detector slot at once
	 * (GIE's benchmark: detector.Release(), a no-op at L = 0). */
	if (gie_style_done(engine, &o->u.gie) != 0)
		o->producer->bad++;
	if (o->outcome == BENCH_E2E_DISPATCHED)
		gie_style_release(engine);
}

static int
bench_gie_cancel(void *engine, struct bench_e2e_obj *o)
{
	return gie_style_cancel(engine, &o->u.gie);
}

static size_t
bench_gie_produce(struct bench_pool *pool, unsigned index, void *ctx)
{
	struct bench_e2e_run *run = ctx;

	if (run->args.layout == BENCH_E2E_LAYOUT_CANCEL)
		return bench_e2e_produce_cancel_loop(pool, run->producers[index],
						     bench_gie_submit, bench_gie_cancel,
						     bench_gie_finish);
	return bench_e2e_produce_loop(pool, run->producers[index], bench_gie_submit,
				      bench_gie_finish);
}

static int
bench_gie_create(struct bench_e2e_run *run, char *msg, size_t len)
{
	struct gie_style_config cfg;
	struct bench_gie_ctx *c;
	int32_t prios[GIE_STYLE_MAX_BANDS];
	int err;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	for (unsigned k = 0; k < run->args.prios; k++)
		prios[k] = (int32_t)k;
	gie_style_config_init(&cfg);
	cfg.shards = run->args.shards;
	cfg.priorities = prios;
	cfg.npriorities = run->args.prios;
	cfg.band_max_bytes = BENCH_GIE_BAND_BYTES;
	cfg.max_inflight = run->args.limit;
	cfg.always_saturated = run->args.saturated;
	cfg.flow_gc_timeout_ns = run->args.flow_gc_ns;
	if (run->args.layout == BENCH_E2E_LAYOUT_CANCEL)
		cfg.sweep_interval_ns = BENCH_E2E_SWEEP_NS;
	err = gie_style_create(&cfg, &c->e);
	if (err != 0) {
		snprintf(msg, len, "gie_style_create: %s", strerror(-err));
		free(c);
		return -1;
	}
	for (unsigned i = 0; i < run->nreg; i++) {
		const struct bench_e2e_flow *fl = &bench_e2e_flows[run->reg[i]];

		err = gie_style_flow_ensure(c->e, fl->id, fl->id_len, fl->priority);
		if (err != 0) {
			snprintf(msg, len, "gie_style_flow_ensure(%u): %s", run->reg[i],
				 strerror(-err));
			gie_style_destroy(c->e);
			free(c);
			return -1;
		}
	}
	gie_style_stats(c->e, &c->start);
	run->engine = c->e;
	run->ctx = c;
	return 0;
}

static int
bench_gie_verify(struct bench_e2e_run *run, const struct bench_e2e_totals *t, char *msg,
		 size_t len)
{
	struct bench_gie_ctx *c = run->ctx;
	struct gie_style_stats s;

	uint64_t evicted;

	gie_style_stats(c->e, &s);
	evicted = s.outcomes[GIE_STYLE_EVICTED_OTHER] +
		  s.outcomes[GIE_STYLE_EVICTED_CANCELLED];
	if (s.received != t->accepted ||
	    s.outcomes[GIE_STYLE_DISPATCHED] != t->outcomes[BENCH_E2E_DISPATCHED] ||
	    evicted != t->outcomes[BENCH_E2E_EVICTED]) {
		snprintf(msg, len,
			 "gie_style: received %" PRIu64 " of %" PRIu64
			 " accepted, dispatched %" PRIu64 " of %" PRIu64
			 " completions, evicted %" PRIu64 " of %" PRIu64,
			 s.received, t->accepted, s.outcomes[GIE_STYLE_DISPATCHED],
			 t->outcomes[BENCH_E2E_DISPATCHED], evicted,
			 t->outcomes[BENCH_E2E_EVICTED]);
		return -1;
	}
	/* Churn: flows come and go; otherwise exactly the registered ones. */
	if (run->args.flow_gc_ns == 0 && s.flows != run->nreg) {
		snprintf(msg, len, "gie_style: %" PRIu64 " flows registered, %u expected",
			 s.flows, run->nreg);
		return -1;
	}
	return gie_style_check(c->e, msg, len);
}

/* The counters reported as totals over the run (GIE-suite layouts). */
static const struct {
	const char *name;
	size_t off;
} bench_gie_totals[] = {
	{"gated_cycles", offsetof(struct gie_style_stats, gated_cycles)},
	{"swept", offsetof(struct gie_style_stats, swept)},
	{"zombie_heads", offsetof(struct gie_style_stats, zombie_heads)},
	{"zombie_handoffs", offsetof(struct gie_style_stats, zombie_handoffs)},
	{"flows_created", offsetof(struct gie_style_stats, flows_created)},
	{"flows_collected", offsetof(struct gie_style_stats, flows_collected)},
};

static void
bench_gie_report(struct bench_state *st, struct bench_e2e_run *run,
		 const struct bench_e2e_totals *t)
{
	struct bench_gie_ctx *c = run->ctx;
	struct gie_style_stats s;
	double d = (double)t->outcomes[BENCH_E2E_DISPATCHED];

	gie_style_stats(c->e, &s);
	if (d <= 0)
		d = (double)t->completed; /* cancellation: per request */
	if (d <= 0)
		return;
	bench_set_counter(st, "proc_cpu_ns_per_decision",
			  (double)(s.processor_cpu_ns - c->start.processor_cpu_ns) / d,
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "flows_scanned_per_decision",
			  (double)(s.flows_scanned - c->start.flows_scanned) / d,
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "heads_peeked_per_decision",
			  (double)(s.heads_peeked - c->start.heads_peeked) / d,
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "cycles_per_decision",
			  (double)(s.cycles - c->start.cycles) / d, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "blocked_submits",
			  (double)(s.blocked_submits - c->start.blocked_submits),
			  BENCH_COUNTER_PLAIN);
	if (run->args.layout == BENCH_E2E_LAYOUT_E2E)
		return;
	for (size_t i = 0; i < sizeof(bench_gie_totals) / sizeof(bench_gie_totals[0]);
	     i++) {
		size_t off = bench_gie_totals[i].off;

		bench_set_counter(
			st, bench_gie_totals[i].name,
			(double)(*(const uint64_t *)((const char *)&s + off) -
				 *(const uint64_t *)((const char *)&c->start + off)),
			BENCH_COUNTER_PLAIN);
	}
	bench_set_counter(st, "flows_live", (double)s.flows, BENCH_COUNTER_PLAIN);
}

static void
bench_gie_destroy(struct bench_e2e_run *run)
{
	struct bench_gie_ctx *c = run->ctx;

	gie_style_destroy(c->e);
	free(c);
}

/* One GIE-style suite: its family name and case layout. */
#define BENCH_GIE_SUITE(nm, lay)                                                         \
	{                                                                                \
		.name = (nm), .layout = (lay), .batch_items = bench_gie_batch_items,     \
		.create = bench_gie_create, .produce = bench_gie_produce,                \
		.verify = bench_gie_verify, .report = bench_gie_report,                  \
		.destroy = bench_gie_destroy,                                            \
	}

static const struct bench_e2e_suite bench_gie_suite =
	BENCH_GIE_SUITE("BM_gie_style_e2e", BENCH_E2E_LAYOUT_E2E);
static const struct bench_e2e_suite bench_gie_matrix_suite =
	BENCH_GIE_SUITE("BM_gie_matrix_gie", BENCH_E2E_LAYOUT_MATRIX);
static const struct bench_e2e_suite bench_gie_churn_suite =
	BENCH_GIE_SUITE("BM_gie_churn_gie", BENCH_E2E_LAYOUT_CHURN);
static const struct bench_e2e_suite bench_gie_cancel_suite =
	BENCH_GIE_SUITE("BM_gie_cancel_gie", BENCH_E2E_LAYOUT_CANCEL);

static void
bench_gie_case(struct bench_state *st, void *arg)
{
	bench_e2e_case(st, arg);
}

void
bench_gie_register(void)
{
	static const unsigned fast[] = {1, 1000};
	static const unsigned slow[] = {50000};
	static const unsigned matrix_fast[] = {10};
	static const unsigned matrix_slow[] = {50000};

	/* Two families of one name: only the 50 000-flow one is capped. */
	bench_e2e_register_family(&bench_gie_suite, bench_gie_case, fast,
				  sizeof(fast) / sizeof(fast[0]), 0);
	bench_e2e_register_family(&bench_gie_suite, bench_gie_case, slow,
				  sizeof(slow) / sizeof(slow[0]),
				  (int64_t)BENCH_GIE_SLOW_BATCHES * BENCH_GIE_SLOW_ITEMS);
	/* The matrix: F = 10 to min_time, F = 50 000 one batch. */
	bench_e2e_register_matrix(&bench_gie_matrix_suite, bench_gie_case, matrix_fast, 1,
				  false);
	bench_e2e_register_matrix(&bench_gie_matrix_suite, bench_gie_case, matrix_slow, 1,
				  true);
	bench_e2e_register_gie(&bench_gie_churn_suite, bench_gie_case);
	bench_e2e_register_gie(&bench_gie_cancel_suite, bench_gie_case);
}
