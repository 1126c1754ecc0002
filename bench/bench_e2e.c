/*
 * bench_e2e: the end-to-end workload shared by the engine suites (see
 * bench_e2e.h), and its baseline BM_engine_raw_mpsc.
 *
 * BM_engine_raw_mpsc/producers:P/flows:1/dist:0/shards:1/prios:1/real_time:
 * the same workload with the engine replaced by the least an engine can be:
 * one flowq_mpsc from the producers to one consumer thread, which takes up to
 * BENCH_RAW_BATCH requests per flowq_mpsc_dequeue_batch() and completes each
 * (bench_e2e_complete(), the callback every engine ends in), sleeping through
 * the same handshake as everything else here when idle. It has every cost of
 * the harness (producers, window, flow table walk, latency sampling, return
 * port, reuse) and none of an engine's (no registry, no flows, no policy, no
 * capacity accounting), so "flowq end to end / raw" in one run is the share
 * of the raw queue's rate that the engine keeps (target >= 0.5 at F = 1).
 * The flows, shards and prios arguments are fixed at 1 (names kept uniform
 * for tools/engine-report). BM_engine_raw_mpsc_batch: the same with the
 * batch producer loop, each batch one flowq_mpsc_enqueue_chain() (the
 * peer of BM_engine_batch_e2e). BM_mpsc_flowq_mpsc* measure the queue without
 * the harness's return path.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/mpsc.h>

#include "bench.h"
#include "bench_e2e.h"
#include "bench_harness.h"

/* Watchdog per batch (a batch is well under a second for every engine) and
 * hang guard (abort rather than hang on a lost completion). */
#define BENCH_E2E_WATCHDOG_NS (30ull * 1000000000ull)
#define BENCH_E2E_HANG_NS     (120ull * 1000000000ull)

/* Raw baseline: items per batch, requests per consumer dequeue. */
#define BENCH_RAW_ITEMS (1u << 18)
#define BENCH_RAW_BATCH 64u

struct bench_e2e_flow *bench_e2e_flows;

/* Producers, reused by every case (one case at a time). */
static struct bench_e2e_producer *bench_e2e_producers[BENCH_E2E_MAX_PRODUCERS];

/* Zipf CDF (exponent bench_e2e_zipf_s) for bench_e2e_zipf_n flows, kept for
 * the next case. */
static double *bench_e2e_zipf_cdf;
static unsigned bench_e2e_zipf_n;
static double bench_e2e_zipf_s;

/* The flows a case registers (run->reg): a list and a membership bitmap. */
static uint32_t bench_e2e_reg_list[BENCH_E2E_MAX_FLOWS];
static uint64_t bench_e2e_reg_bits[(BENCH_E2E_MAX_FLOWS + 63) / 64];

/* ---- sleep / wake --------------------------------------------------------- */

void
bench_e2e_sleep(struct bench_e2e_sleeper *s, const struct flowq_mpsc *q,
		const _Atomic bool *stop)
{
	pthread_mutex_lock(&s->lock);
	atomic_store_explicit(&s->sleeping, true, memory_order_relaxed);
	/* [S1] seq_cst, pairs with [K1] in bench_e2e_kick(): either the waker
	 * sees sleeping, or the check below sees its item. */
	atomic_thread_fence(memory_order_seq_cst);
	/* A waker clears sleeping under the lock we hold until the wait
	 * releases it, so its signal cannot fall between check and wait. */
	while (atomic_load_explicit(&s->sleeping, memory_order_relaxed) &&
	       flowq_mpsc_empty(q) &&
	       (stop == NULL || !atomic_load_explicit(stop, memory_order_relaxed)))
		pthread_cond_wait(&s->cond, &s->lock);
	atomic_store_explicit(&s->sleeping, false, memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
}

void
bench_e2e_wake(struct bench_e2e_sleeper *s)
{
	pthread_mutex_lock(&s->lock);
	atomic_store_explicit(&s->sleeping, false, memory_order_relaxed);
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void
bench_e2e_bad_completion(struct bench_e2e_obj *o)
{
	atomic_fetch_add_explicit(&o->producer->run->bad_completions, 1,
				  memory_order_relaxed);
}

/* ---- workload setup (outside the timing) ---------------------------------- */

/* The flow ids, once per process. */
static int
bench_e2e_flows_get(void)
{
	char id[16];

	if (bench_e2e_flows != NULL)
		return 0;
	bench_e2e_flows =
		bench_pool_prefault(sizeof(*bench_e2e_flows) * BENCH_E2E_MAX_FLOWS);
	if (bench_e2e_flows == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < BENCH_E2E_MAX_FLOWS; i++) {
		snprintf(id, sizeof(id), "tenant%05u", i);
		memcpy(bench_e2e_flows[i].id, id, sizeof(bench_e2e_flows[i].id));
		bench_e2e_flows[i].id_len = sizeof(bench_e2e_flows[i].id);
	}
	return 0;
}

/*
 * The Zipf CDF over @p n ranks with exponent @p s: cdf[r] = sum_{i <= r}
 * (i + 1)^-s, normalized (Go's rand.Zipf with v = 1, which GIE's benchmark
 * draws from, has the same weights).
 */
static int
bench_e2e_zipf_get(unsigned n, double s)
{
	double sum = 0;
	double *cdf;

	if (bench_e2e_zipf_n == n && bench_e2e_zipf_s == s)
		return 0;
	cdf = malloc(n * sizeof(*cdf));
	if (cdf == NULL)
		return -ENOMEM;
	for (unsigned r = 0; r < n; r++) {
		sum += s == 1.0 ? 1.0 / (r + 1) : pow(r + 1.0, -s);
		cdf[r] = sum;
	}
	for (unsigned r = 0; r < n; r++)
		cdf[r] /= sum;
	cdf[n - 1] = 1.0;
	free(bench_e2e_zipf_cdf);
	bench_e2e_zipf_cdf = cdf;
	bench_e2e_zipf_n = n;
	bench_e2e_zipf_s = s;
	return 0;
}

static double
bench_e2e_zipf_exponent(unsigned dist)
{
	return dist == BENCH_E2E_ZIPF_GIE ? 1.1 : 1.0;
}

/* Inverse CDF: the first rank whose cdf exceeds @p u in [0, 1). */
static uint32_t
bench_e2e_zipf_draw(double u)
{
	unsigned lo = 0, hi = bench_e2e_zipf_n - 1, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (bench_e2e_zipf_cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Fill @p p's flow table for @p a: seeded per producer and case. */
static void
bench_e2e_seq_fill(struct bench_e2e_producer *p, const struct bench_e2e_args *a)
{
	uint64_t x = 0x5eed0000u + 7919u * p->index + 31u * a->flows + a->dist;
	double u;

	for (uint32_t i = 0; i < BENCH_E2E_SEQ_LEN; i++) {
		uint64_t r = bench_splitmix64(&x);

		if (a->dist != BENCH_E2E_UNIFORM && a->flows > 1) {
			u = (double)(r >> 11) * 0x1.0p-53;
			p->seq[i] = bench_e2e_zipf_draw(u);
		} else {
			p->seq[i] = a->flows > 0 ? (uint32_t)(r % a->flows) : 0;
		}
	}
}

static struct bench_e2e_producer *
bench_e2e_producer_get(unsigned index)
{
	struct bench_e2e_producer *p = bench_e2e_producers[index];
	size_t size = (sizeof(*p) + 127) / 128 * 128;

	if (p != NULL)
		return p;
	p = aligned_alloc(128, size);
	if (p == NULL)
		return NULL;
	memset(p, 0, size);
	p->objs = bench_pool_prefault(sizeof(*p->objs) * BENCH_E2E_MAX_OBJS);
	p->seq = bench_pool_prefault(sizeof(*p->seq) * BENCH_E2E_SEQ_LEN);
	p->clients = bench_pool_prefault(sizeof(*p->clients) * BENCH_E2E_MAX_WINDOW);
	if (p->objs == NULL || p->seq == NULL || p->clients == NULL) {
		free(p->objs);
		free(p->seq);
		free(p->clients);
		free(p);
		return NULL;
	}
	p->index = index;
	pthread_mutex_init(&p->wake.lock, NULL);
	pthread_cond_init(&p->wake.cond, NULL);
	atomic_init(&p->wake.sleeping, false);
	bench_e2e_producers[index] = p;
	return p;
}

/* Reset @p p for a case of @p run: counters, objects, return port, table. */
static void
bench_e2e_producer_reset(struct bench_e2e_producer *p, struct bench_e2e_run *run)
{
	p->run = run;
	p->engine = NULL;
	p->seq_pos = 0;
	p->sample_ctr = 0;
	p->attempts = p->sync_rejects = p->accepted = p->completed = 0;
	p->bad = p->leaked = 0;
	p->cpu_ns = 0;
	memset(p->outcomes, 0, sizeof(p->outcomes));
	memset(p->hist, 0, sizeof(p->hist));
	flowq_mpsc_init(&p->ret);
	atomic_store_explicit(&p->wake.sleeping, false, memory_order_relaxed);
	p->nobjs = run->args.layout == BENCH_E2E_LAYOUT_CANCEL ? BENCH_E2E_MAX_OBJS
							       : run->args.window;
	for (unsigned i = 0; i < p->nobjs; i++) {
		struct bench_e2e_obj *o = &p->objs[i];

		memset(o, 0, sizeof(*o));
		o->producer = p;
		/* 100 B .. 9099 B by a multiplicative hash, as GIE's benchmark
		 * sizes its payloads (§6); its churn and cancellation cases
		 * send 1024 B. */
		if (run->args.layout == BENCH_E2E_LAYOUT_CHURN ||
		    run->args.layout == BENCH_E2E_LAYOUT_CANCEL)
			o->bytes = 1024;
		else
			o->bytes = 100u + (uint32_t)(((p->index * BENCH_E2E_WINDOW + i) *
						      2654435761u) >>
						     7) %
						  9000u;
		o->churn.id_len = sizeof(o->churn.id);
		o->churn.priority = 0;
		atomic_init(&o->state, BENCH_E2E_FREE);
		p->free[i] = o;
	}
	p->nfree = p->nobjs;
	bench_e2e_seq_fill(p, &run->args);
}

/*
 * Set run->reg to the flows to register before the timed region: all F in
 * the e2e layout, the distinct flows of the producers' choice tables in the
 * matrix (the flows GIE's benchmark creates on their first use), flow 0 in
 * the cancel layout, none for churn.
 */
static void
bench_e2e_reg_set(struct bench_e2e_run *run)
{
	unsigned n = 0;

	switch (run->args.layout) {
	case BENCH_E2E_LAYOUT_MATRIX:
		memset(bench_e2e_reg_bits, 0, sizeof(bench_e2e_reg_bits));
		for (unsigned i = 0; i < run->args.producers; i++) {
			const uint32_t *seq = run->producers[i]->seq;

			for (uint32_t k = 0; k < BENCH_E2E_SEQ_LEN; k++) {
				uint32_t fl = seq[k];

				if (bench_e2e_reg_bits[fl / 64] >> (fl % 64) & 1)
					continue;
				bench_e2e_reg_bits[fl / 64] |= 1ull << (fl % 64);
				bench_e2e_reg_list[n++] = fl;
			}
		}
		break;
	case BENCH_E2E_LAYOUT_CHURN:
		break;
	case BENCH_E2E_LAYOUT_CANCEL:
		bench_e2e_reg_list[n++] = 0;
		break;
	default:
		for (unsigned i = 0; i < run->args.flows; i++)
			bench_e2e_reg_list[n++] = i;
		break;
	}
	run->reg = bench_e2e_reg_list;
	run->nreg = n;
}

static void
bench_e2e_totals(const struct bench_e2e_run *run, struct bench_e2e_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < run->args.producers; i++) {
		const struct bench_e2e_producer *p = run->producers[i];

		t->attempts += p->attempts;
		t->sync_rejects += p->sync_rejects;
		t->accepted += p->accepted;
		t->completed += p->completed;
		for (unsigned o = 0; o < BENCH_E2E_OUTCOMES; o++)
			t->outcomes[o] += p->outcomes[o];
	}
}

/* ---- checks and report ---------------------------------------------------- */

/* The harness's verify(): conservation over the producers, then the engine's. */
static int
bench_e2e_verify(const struct bench_pool *pool, const uint64_t *log, size_t got,
		 char *msg, size_t len, void *ctx)
{
	struct bench_e2e_run *run = ctx;
	struct bench_e2e_totals t;
	uint64_t bad;

	(void)pool;
	(void)log;
	run->expected += got;
	bad = atomic_load_explicit(&run->bad_completions, memory_order_relaxed);
	if (bad != 0) {
		snprintf(msg, len, "%" PRIu64 " completions of requests not submitted",
			 bad);
		return -1;
	}
	for (unsigned i = 0; i < run->args.producers; i++) {
		const struct bench_e2e_producer *p = run->producers[i];

		if (p->bad != 0) {
			snprintf(msg, len,
				 "producer %u: %" PRIu64 " requests came back in a wrong "
				 "state or failed to finish",
				 i, p->bad);
			return -1;
		}
		if (p->nfree != p->nobjs) {
			snprintf(msg, len, "producer %u: %zu of %zu requests back", i,
				 p->nfree, p->nobjs);
			return -1;
		}
	}
	bench_e2e_totals(run, &t);
	if (t.attempts != run->expected || t.attempts != t.accepted + t.sync_rejects ||
	    t.accepted != t.completed ||
	    t.completed != t.outcomes[BENCH_E2E_DISPATCHED] +
				   t.outcomes[BENCH_E2E_REJECTED] +
				   t.outcomes[BENCH_E2E_EVICTED]) {
		snprintf(msg, len,
			 "not conserved: %" PRIu64 " submits (%" PRIu64
			 " expected) = %" PRIu64 " accepted + %" PRIu64
			 " rejected; %" PRIu64 " completed = %" PRIu64
			 " dispatched + %" PRIu64 " rejected + %" PRIu64 " evicted",
			 t.attempts, run->expected, t.accepted, t.sync_rejects,
			 t.completed, t.outcomes[BENCH_E2E_DISPATCHED],
			 t.outcomes[BENCH_E2E_REJECTED], t.outcomes[BENCH_E2E_EVICTED]);
		return -1;
	}
	if (run->args.layout != BENCH_E2E_LAYOUT_CANCEL &&
	    t.outcomes[BENCH_E2E_EVICTED] != 0) {
		snprintf(msg, len,
			 "%" PRIu64 " requests evicted in a run that neither cancels "
			 "nor expires anything",
			 t.outcomes[BENCH_E2E_EVICTED]);
		return -1;
	}
	if (run->args.saturated && t.outcomes[BENCH_E2E_DISPATCHED] != 0) {
		snprintf(msg, len,
			 "%" PRIu64 " requests dispatched through a gate that is always "
			 "closed",
			 t.outcomes[BENCH_E2E_DISPATCHED]);
		return -1;
	}
	return run->suite->verify(run, &t, msg, len);
}

static void
bench_e2e_reset(void *ctx)
{
	(void)ctx; /* every request is back: the engine is empty already */
}

/* Upper bound of histogram bucket @p idx, ns. */
static uint64_t
bench_e2e_hist_bound(unsigned idx)
{
	unsigned e, m;

	if (idx < 16)
		return idx;
	e = (idx - 16) / 16 + 4;
	m = (idx - 16) % 16;
	return ((uint64_t)(17 + m) << (e - 4)) - 1;
}

static uint64_t
bench_e2e_quantile(const uint64_t *h, uint64_t count, double q)
{
	double want = q * (double)count;
	uint64_t rank = (uint64_t)want, seen = 0;

	if (count == 0)
		return 0;
	if ((double)rank < want || rank == 0)
		rank++; /* ceil, at least the first sample */
	for (unsigned i = 0; i < BENCH_E2E_HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen >= rank)
			return bench_e2e_hist_bound(i);
	}
	return bench_e2e_hist_bound(BENCH_E2E_HIST_BUCKETS - 1);
}

static uint64_t
bench_e2e_process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
bench_e2e_report(struct bench_state *st, struct bench_e2e_run *run,
		 const struct bench_pool_totals *pt, uint64_t other_cpu_ns)
{
	static uint64_t h[BENCH_E2E_HIST_BUCKETS];
	struct bench_e2e_totals t;
	uint64_t count = 0;
	char label[160];

	memset(h, 0, sizeof(h));
	for (unsigned i = 0; i < run->args.producers; i++)
		for (unsigned b = 0; b < BENCH_E2E_HIST_BUCKETS; b++)
			h[b] += run->producers[i]->hist[b];
	for (unsigned b = 0; b < BENCH_E2E_HIST_BUCKETS; b++)
		count += h[b];
	bench_e2e_totals(run, &t);
	/* The harness counted submits; the rate that matters is dispatches
	 * (with mass cancellation: requests completed, GIE's zombies/s). */
	bench_set_counter(st, "items_per_second",
			  (double)(run->args.layout == BENCH_E2E_LAYOUT_CANCEL
					   ? t.completed
					   : t.outcomes[BENCH_E2E_DISPATCHED]),
			  BENCH_COUNTER_RATE);
	if (run->args.layout != BENCH_E2E_LAYOUT_E2E && t.completed != 0)
		bench_set_counter(st, "cpu_ns_per_request",
				  (double)other_cpu_ns / (double)t.completed,
				  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "p50_ns", (double)bench_e2e_quantile(h, count, 0.50),
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "p99_ns", (double)bench_e2e_quantile(h, count, 0.99),
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "lat_samples", (double)count, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "rejected",
			  (double)(t.sync_rejects + t.outcomes[BENCH_E2E_REJECTED]),
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "evicted", (double)t.outcomes[BENCH_E2E_EVICTED],
			  BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "window", (double)run->args.window, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "stalled", pt->stalled ? 1.0 : 0.0, BENCH_COUNTER_PLAIN);
	uint64_t prod_cpu_ns = 0;
	for (unsigned i = 0; i < run->args.producers; i++) {
		prod_cpu_ns += run->producers[i]->cpu_ns;
		other_cpu_ns = other_cpu_ns > run->producers[i]->cpu_ns
				       ? other_cpu_ns - run->producers[i]->cpu_ns
				       : 0;
	}
	/* The producers' own CPU time (submit, reap, finish: engine code
	 * for the most part, plus their waiting for completions when the
	 * window is full) per completed request: on a machine shared with
	 * other jobs it moves less than the wall-clock rate does. */
	if (t.completed != 0)
		bench_set_counter(st, "producer_cpu_ns_per_request",
				  (double)prod_cpu_ns / (double)t.completed,
				  BENCH_COUNTER_PLAIN);
	if (t.outcomes[BENCH_E2E_DISPATCHED] != 0)
		bench_set_counter(st, "engine_cpu_ns_per_decision",
				  (double)other_cpu_ns /
					  (double)t.outcomes[BENCH_E2E_DISPATCHED],
				  BENCH_COUNTER_PLAIN);
	if (run->suite->report != NULL)
		run->suite->report(st, run, &t);
	if (pt->stalled) {
		snprintf(label, sizeof(label),
			 "stalled: watchdog (%.0f s per batch) stopped the producers",
			 BENCH_E2E_WATCHDOG_NS / 1e9);
		bench_set_label(st, label);
	}
}

/* ---- the case runner ------------------------------------------------------ */

/* The argument names of each layout, in case-name order. */
static const char *const bench_e2e_names_e2e[] = {
	"producers", "flows", "dist", "shards", "prios",
};
static const char *const bench_e2e_names_matrix[] = {
	"limit", "shards", "prios", "flows", "clients",
};
static const char *const bench_e2e_names_churn[] = {"limit", "shards", "clients"};
static const char *const bench_e2e_names_cancel[] = {"timeout_us", "shards", "clients"};

/* Argument @p name of the running case (layout @p names, @p n of them). */
static int64_t
bench_e2e_arg(struct bench_state *st, const char *const *names, size_t n,
	      const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return bench_range(st, (int)i);
	return -1;
}

/* The e2e layout's arguments. */
static void
bench_e2e_args_e2e(struct bench_state *st, struct bench_e2e_args *a)
{
	int64_t v[BENCH_E2E_NARGS];

	for (int i = 0; i < BENCH_E2E_NARGS; i++)
		v[i] = bench_range(st, i);
	a->producers = (unsigned)v[BENCH_E2E_ARG_PRODUCERS];
	a->flows = (unsigned)v[BENCH_E2E_ARG_FLOWS];
	a->dist = (unsigned)v[BENCH_E2E_ARG_DIST];
	a->shards = (unsigned)v[BENCH_E2E_ARG_SHARDS];
	a->prios = (unsigned)v[BENCH_E2E_ARG_PRIOS];
	a->window = BENCH_E2E_WINDOW;
}

/* One of the GIE-benchmark layouts' arguments (clients -> window). */
static int
bench_e2e_args_gie(struct bench_state *st, struct bench_e2e_args *a)
{
#define BENCH_E2E_ARG(names, name)                                                       \
	bench_e2e_arg(st, names, sizeof(names) / sizeof(names[0]), name)
	int64_t clients;

	a->producers = BENCH_E2E_GIE_PRODUCERS;
	a->prios = 1;
	a->flows = 1;
	switch (a->layout) {
	case BENCH_E2E_LAYOUT_MATRIX:
		a->limit = (unsigned)BENCH_E2E_ARG(bench_e2e_names_matrix, "limit");
		a->shards = (unsigned)BENCH_E2E_ARG(bench_e2e_names_matrix, "shards");
		a->prios = (unsigned)BENCH_E2E_ARG(bench_e2e_names_matrix, "prios");
		a->flows = (unsigned)BENCH_E2E_ARG(bench_e2e_names_matrix, "flows");
		clients = BENCH_E2E_ARG(bench_e2e_names_matrix, "clients");
		a->dist = BENCH_E2E_ZIPF_GIE;
		break;
	case BENCH_E2E_LAYOUT_CHURN:
		a->limit = (unsigned)BENCH_E2E_ARG(bench_e2e_names_churn, "limit");
		a->shards = (unsigned)BENCH_E2E_ARG(bench_e2e_names_churn, "shards");
		clients = BENCH_E2E_ARG(bench_e2e_names_churn, "clients");
		a->flows = 0;
		a->flow_gc_ns = BENCH_E2E_CHURN_GC_NS;
		break;
	default: /* BENCH_E2E_LAYOUT_CANCEL */
		a->timeout_ns =
			(uint64_t)BENCH_E2E_ARG(bench_e2e_names_cancel, "timeout_us") *
			1000u;
		a->shards = (unsigned)BENCH_E2E_ARG(bench_e2e_names_cancel, "shards");
		clients = BENCH_E2E_ARG(bench_e2e_names_cancel, "clients");
		a->saturated = true;
		break;
	}
#undef BENCH_E2E_ARG
	if (clients < (int64_t)a->producers || clients % a->producers != 0 ||
	    clients / a->producers > BENCH_E2E_MAX_WINDOW)
		return -1;
	a->window = (unsigned)(clients / a->producers);
	return 0;
}

static int
bench_e2e_args_get(struct bench_state *st, enum bench_e2e_layout layout,
		   struct bench_e2e_args *a, char *msg, size_t len)
{
	memset(a, 0, sizeof(*a));
	a->layout = layout;
	if (layout == BENCH_E2E_LAYOUT_E2E)
		bench_e2e_args_e2e(st, a);
	else if (bench_e2e_args_gie(st, a) != 0)
		goto bad;
	if (a->producers < 1 || a->producers > BENCH_E2E_MAX_PRODUCERS ||
	    a->flows > BENCH_E2E_MAX_FLOWS ||
	    (a->flows < 1 && layout != BENCH_E2E_LAYOUT_CHURN) ||
	    (a->dist != BENCH_E2E_UNIFORM && a->dist != BENCH_E2E_ZIPF &&
	     a->dist != BENCH_E2E_ZIPF_GIE) ||
	    a->shards < 1 || a->shards > GIE_STYLE_MAX_SHARDS || a->prios < 1 ||
	    a->prios > GIE_STYLE_MAX_BANDS)
		goto bad;
	return 0;
bad:
	snprintf(msg, len,
		 "arguments out of range (producers 1..%u, flows 1..%u, dist 0..2, "
		 "shards 1..%u, prios 1..%u, clients a multiple of the producers, "
		 "at most %u each)",
		 BENCH_E2E_MAX_PRODUCERS, BENCH_E2E_MAX_FLOWS, GIE_STYLE_MAX_SHARDS,
		 GIE_STYLE_MAX_BANDS, BENCH_E2E_MAX_WINDOW);
	return -1;
}

void
bench_e2e_case(struct bench_state *st, const struct bench_e2e_suite *suite)
{
	struct bench_e2e_run run;
	struct bench_pool_config cfg = {
		.suite = suite->name,
		.watchdog_ns = BENCH_E2E_WATCHDOG_NS,
		.hang_ns = BENCH_E2E_HANG_NS,
		.produce = suite->produce,
		.drain = NULL, /* completion mode: the engine consumes */
		.verify = bench_e2e_verify,
		.reset = bench_e2e_reset,
		.ctx = &run,
	};
	struct bench_pool_totals pt;
	uint64_t proc_cpu, self_cpu;
	char msg[256];
	size_t items;

	memset(&run, 0, sizeof(run));
	atomic_init(&run.bad_completions, 0);
	run.suite = suite;
	if (bench_e2e_args_get(st, suite->layout, &run.args, msg, sizeof(msg)) != 0) {
		bench_skip_with_error(st, msg);
		return;
	}
	items = suite->batch_items(&run.args);
	if (items == 0 || items % run.args.producers != 0) {
		bench_skip_with_error(st, "batch size not a multiple of the producers");
		return;
	}
	run.per_producer = items / run.args.producers;
	if (bench_e2e_flows_get() != 0 ||
	    (run.args.dist != BENCH_E2E_UNIFORM && run.args.flows > 1 &&
	     bench_e2e_zipf_get(run.args.flows, bench_e2e_zipf_exponent(run.args.dist)) !=
		     0)) {
		bench_skip_with_error(st, "out of memory for the flow tables");
		return;
	}
	for (unsigned i = 0; i < run.args.flows; i++)
		bench_e2e_flows[i].priority = (int32_t)(i % run.args.prios);
	for (unsigned i = 0; i < run.args.producers; i++) {
		run.producers[i] = bench_e2e_producer_get(i);
		if (run.producers[i] == NULL) {
			bench_skip_with_error(st, "out of memory for the producers");
			return;
		}
		bench_e2e_producer_reset(run.producers[i], &run);
	}
	bench_e2e_reg_set(&run);
	if (suite->create(&run, msg, sizeof(msg)) != 0) {
		bench_skip_with_error(st, msg);
		return;
	}
	for (unsigned i = 0; i < run.args.producers; i++)
		run.producers[i]->engine = run.engine;
	cfg.nproducers = run.args.producers;
	cfg.items = items;
	/*
	 * The engine's threads are the process minus this thread minus the
	 * producers (which count their own time inside produce(); parked, they
	 * use none).
	 */
	proc_cpu = bench_e2e_process_cpu_ns();
	self_cpu = bench_e2e_thread_cpu_ns();
	if (bench_pool_measure(st, &cfg, &pt) == 0) {
		proc_cpu = bench_e2e_process_cpu_ns() - proc_cpu;
		self_cpu = bench_e2e_thread_cpu_ns() - self_cpu;
		bench_e2e_report(st, &run, &pt,
				 proc_cpu > self_cpu ? proc_cpu - self_cpu : 0);
	}
	suite->destroy(&run);
}

/* Add the cases (P, F, D) x S in {1, 2} x K in {1, 8} to @p c. */
static int
bench_e2e_add_cases(struct bench_case *c, int64_t p, int64_t f, int64_t d)
{
	static const int64_t shards[] = {1, 2};
	static const int64_t prios[] = {1, 8};
	int64_t v[BENCH_E2E_NARGS];

	for (size_t s = 0; s < sizeof(shards) / sizeof(shards[0]); s++) {
		for (size_t k = 0; k < sizeof(prios) / sizeof(prios[0]); k++) {
			v[BENCH_E2E_ARG_PRODUCERS] = p;
			v[BENCH_E2E_ARG_FLOWS] = f;
			v[BENCH_E2E_ARG_DIST] = d;
			v[BENCH_E2E_ARG_SHARDS] = shards[s];
			v[BENCH_E2E_ARG_PRIOS] = prios[k];
			if (bench_case_args(c, v, BENCH_E2E_NARGS) == NULL)
				return -1;
		}
	}
	return 0;
}

struct bench_case *
bench_e2e_register_family(const struct bench_e2e_suite *suite,
			  void (*fn)(struct bench_state *st, void *arg),
			  const unsigned *flows, size_t nflows, int64_t iterations)
{
	static const int64_t producers[] = {1, 2, 4};
	struct bench_case *c;
	int64_t dists;

	/* The suite is never written; arg is void * only for the shim. */
	c = bench_register(suite->name, fn, (void *)suite);
	if (c == NULL ||
	    bench_case_arg_names(c, bench_e2e_names_e2e, BENCH_E2E_NARGS) == NULL)
		return NULL;
	for (size_t p = 0; p < sizeof(producers) / sizeof(producers[0]); p++) {
		for (size_t f = 0; f < nflows; f++) {
			/* Zipf over one flow is uniform: not registered. */
			dists = flows[f] > 1 ? 2 : 1;
			for (int64_t d = 0; d < dists; d++)
				if (bench_e2e_add_cases(c, producers[p], flows[f], d) !=
				    0)
					return NULL;
		}
	}
	bench_case_use_real_time(c);
	bench_case_unit(c, BENCH_UNIT_NS);
	if (iterations > 0)
		bench_case_iterations(c, iterations);
	return c;
}

/* Register @p suite's family with the argument names @p names (@p n). */
static struct bench_case *
bench_e2e_family(const struct bench_e2e_suite *suite,
		 void (*fn)(struct bench_state *st, void *arg), const char *const *names,
		 size_t n)
{
	struct bench_case *c = bench_register(suite->name, fn, (void *)suite);

	if (c == NULL || bench_case_arg_names(c, names, n) == NULL)
		return NULL;
	bench_case_use_real_time(c);
	bench_case_unit(c, BENCH_UNIT_NS);
	return c;
}

struct bench_case *
bench_e2e_register_matrix(const struct bench_e2e_suite *suite,
			  void (*fn)(struct bench_state *st, void *arg),
			  const unsigned *flows, size_t nflows, bool one_batch)
{
	static const int64_t limits[] = {0, 1, 100};
	static const int64_t shards[] = {1, 2};
	static const int64_t prios[] = {1, 8};
	static const int64_t clients[] = {10, 5000};
	struct bench_case *c;

	c = bench_e2e_family(suite, fn, bench_e2e_names_matrix,
			     sizeof(bench_e2e_names_matrix) /
				     sizeof(bench_e2e_names_matrix[0]));
	if (c == NULL)
		return NULL;
	/* The cross product, L outermost, W innermost (GIE's order). */
	for (size_t i = 0; i < 3 * 2 * 2 * nflows * 2; i++) {
		int64_t v[] = {limits[i / (2 * 2 * nflows * 2)],
			       shards[i / (2 * nflows * 2) % 2],
			       prios[i / (nflows * 2) % 2], flows[i / 2 % nflows],
			       clients[i % 2]};

		/* GIE's skipped coordinates. */
		if ((v[0] == 0 && v[4] > 100) || (v[0] > 0 && v[4] <= v[0]))
			continue;
		if (bench_case_args(c, v, 5) == NULL)
			return NULL;
	}
	if (one_batch)
		bench_case_iterations(c, 1);
	return c;
}

struct bench_case *
bench_e2e_register_gie(const struct bench_e2e_suite *suite,
		       void (*fn)(struct bench_state *st, void *arg))
{
	/* Churn: L = 100, S = 4 and 1, W = 200; cancel: T = 50 ms and
	 * 100 us, S = 4, W = 200. */
	static const int64_t churn[][3] = {{100, 4, 200}, {100, 1, 200}};
	static const int64_t cancel[][3] = {{50000, 4, 200}, {100, 4, 200}};
	bool is_churn = suite->layout == BENCH_E2E_LAYOUT_CHURN;
	const int64_t(*cases)[3] = is_churn ? churn : cancel;
	struct bench_case *c;

	c = bench_e2e_family(
		suite, fn, is_churn ? bench_e2e_names_churn : bench_e2e_names_cancel, 3);
	for (size_t i = 0; c != NULL && i < 2; i++)
		if (bench_case_args(c, cases[i], 3) == NULL)
			return NULL;
	return c;
}

/* ---- BM_engine_raw_mpsc: the baseline ---------------------------------- */

struct bench_raw {
	/* Inbox: consumer line, producers' line. */
	_Alignas(128) struct flowq_mpsc inbox;
	/* The consumer sleeps here when idle. */
	_Alignas(128) struct bench_e2e_sleeper wake;
	/* Consumer-written: requests taken, before their completions. */
	_Alignas(128) _Atomic uint64_t delivered;
	_Atomic bool stop;
	pthread_t thread;
};

static void *
bench_raw_main(void *arg)
{
	struct bench_raw *r = arg;
	struct flowq_mpsc_node *nodes[BENCH_RAW_BATCH];
	struct bench_e2e_obj *o;
	uint64_t delivered = 0;
	unsigned idle = 0;
	size_t n;

	for (;;) {
		n = flowq_mpsc_dequeue_batch(&r->inbox, nodes, BENCH_RAW_BATCH);
		if (n != 0) {
			/* Counted first: a producer that saw its completions
			 * (through the return port's release/acquire) sees it. */
			delivered += n;
			atomic_store_explicit(&r->delivered, delivered,
					      memory_order_relaxed);
			for (size_t i = 0; i < n; i++) {
				o = bench_e2e_container_of(nodes[i], struct bench_e2e_obj,
							   u.raw);
				bench_e2e_complete(o, BENCH_E2E_DISPATCHED);
			}
			idle = 0;
			continue;
		}
		if (atomic_load_explicit(&r->stop, memory_order_relaxed))
			return NULL;
		if (++idle < BENCH_E2E_SPINS) {
			for (unsigned i = 0; i < 1u << (idle < 6 ? idle : 6); i++)
				bench_cpu_relax();
			continue;
		}
		bench_e2e_sleep(&r->wake, &r->inbox, &r->stop);
		idle = 0;
	}
}

static size_t
bench_raw_batch_items(const struct bench_e2e_args *a)
{
	(void)a;
	return BENCH_RAW_ITEMS;
}

static int
bench_raw_create(struct bench_e2e_run *run, char *msg, size_t len)
{
	struct bench_raw *r;
	size_t size = (sizeof(*r) + 127) / 128 * 128;

	r = aligned_alloc(128, size);
	if (r == NULL) {
		snprintf(msg, len, "out of memory for the raw queue");
		return -1;
	}
	memset(r, 0, size);
	flowq_mpsc_init(&r->inbox);
	pthread_mutex_init(&r->wake.lock, NULL);
	pthread_cond_init(&r->wake.cond, NULL);
	atomic_init(&r->wake.sleeping, false);
	atomic_init(&r->delivered, 0);
	atomic_init(&r->stop, false);
	if (pthread_create(&r->thread, NULL, bench_raw_main, r) != 0) {
		pthread_cond_destroy(&r->wake.cond);
		pthread_mutex_destroy(&r->wake.lock);
		free(r);
		snprintf(msg, len, "pthread_create failed");
		return -1;
	}
	run->engine = r;
	run->ctx = r;
	return 0;
}

static int
bench_raw_submit(void *engine, struct bench_e2e_obj *o, const struct bench_e2e_flow *f)
{
	struct bench_raw *r = engine;

	(void)f;
	if (flowq_mpsc_enqueue(&r->inbox, &o->u.raw))
		bench_e2e_kick(&r->wake);
	return 0;
}

static void
bench_raw_finish(void *engine, struct bench_e2e_obj *o)
{
	(void)engine;
	(void)o;
}

/* The batch baseline: the objects linked into one chain, one exchange. */
static void
bench_raw_submit_batch(void *engine, struct bench_e2e_obj *const *objs,
		       const struct bench_e2e_flow *const *flows, size_t n, int *rc)
{
	struct bench_raw *r = engine;

	(void)flows;
	for (size_t i = 0; i + 1 < n; i++)
		atomic_store_explicit(&objs[i]->u.raw.next, &objs[i + 1]->u.raw,
				      memory_order_relaxed);
	for (size_t i = 0; i < n; i++)
		rc[i] = 0;
	if (n && flowq_mpsc_enqueue_chain(&r->inbox, &objs[0]->u.raw, &objs[n - 1]->u.raw))
		bench_e2e_kick(&r->wake);
}

static void
bench_raw_finish_batch(void *engine, struct bench_e2e_obj *const *objs, size_t n)
{
	(void)engine;
	(void)objs;
	(void)n;
}

static const struct bench_e2e_suite bench_raw_batch_suite;

static size_t
bench_raw_produce(struct bench_pool *pool, unsigned index, void *ctx)
{
	struct bench_e2e_run *run = ctx;

	if (run->suite == &bench_raw_batch_suite)
		return bench_e2e_produce_batch_loop(pool, run->producers[index],
						    bench_raw_submit_batch,
						    bench_raw_finish_batch);
	return bench_e2e_produce_loop(pool, run->producers[index], bench_raw_submit,
				      bench_raw_finish);
}

static int
bench_raw_verify(struct bench_e2e_run *run, const struct bench_e2e_totals *t, char *msg,
		 size_t len)
{
	struct bench_raw *r = run->ctx;
	uint64_t delivered = atomic_load_explicit(&r->delivered, memory_order_relaxed);

	if (delivered != t->accepted ||
	    t->outcomes[BENCH_E2E_DISPATCHED] != t->accepted) {
		snprintf(msg, len,
			 "raw: %" PRIu64 " accepted, %" PRIu64
			 " taken by the consumer, %" PRIu64 " completed",
			 t->accepted, delivered, t->outcomes[BENCH_E2E_DISPATCHED]);
		return -1;
	}
	return 0;
}

static void
bench_raw_destroy(struct bench_e2e_run *run)
{
	struct bench_raw *r = run->ctx;

	atomic_store_explicit(&r->stop, true, memory_order_relaxed);
	bench_e2e_wake(&r->wake);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->wake.cond);
	pthread_mutex_destroy(&r->wake.lock);
	free(r);
}

#define BENCH_RAW_SUITE(nm)                                                              \
	{                                                                                \
		.name = (nm), .batch_items = bench_raw_batch_items,                      \
		.create = bench_raw_create, .produce = bench_raw_produce,                \
		.verify = bench_raw_verify, .destroy = bench_raw_destroy,                \
	}
static const struct bench_e2e_suite bench_raw_suite = BENCH_RAW_SUITE("BM_engine_raw_mpsc");
/* The producers submit BENCH_E2E_SUBMIT_BATCH requests per chain enqueue:
 * the peer of BM_engine_batch_e2e. */
static const struct bench_e2e_suite bench_raw_batch_suite =
	BENCH_RAW_SUITE("BM_engine_raw_mpsc_batch");

static void
bench_raw_case(struct bench_state *st, void *arg)
{
	bench_e2e_case(st, arg);
}

void
bench_e2e_register(void)
{
	static const int64_t producers[] = {1, 2, 4};
	struct bench_case *c;
	char buf[32];

	snprintf(buf, sizeof(buf), "%u", BENCH_E2E_WINDOW);
	bench_add_context("flowq_e2e_window", buf);
	snprintf(buf, sizeof(buf), "%u", BENCH_E2E_SAMPLE_EVERY);
	bench_add_context("flowq_e2e_latency_sample_every", buf);
	bench_add_context("flowq_e2e_zipf_s", "1.0");
	snprintf(buf, sizeof(buf), "%u", BENCH_E2E_SUBMIT_BATCH);
	bench_add_context("flowq_e2e_submit_batch", buf);
	const struct bench_e2e_suite *raws[] = {&bench_raw_suite, &bench_raw_batch_suite};
	for (size_t k = 0; k < 2; k++) {
		c = bench_register(raws[k]->name, bench_raw_case, (void *)raws[k]);
		if (c == NULL ||
		    bench_case_arg_names(c, bench_e2e_names_e2e, BENCH_E2E_NARGS) == NULL)
			return;
		for (size_t p = 0; p < sizeof(producers) / sizeof(producers[0]); p++) {
			int64_t v[BENCH_E2E_NARGS] = {producers[p], 1, 0, 1, 1};

			if (bench_case_args(c, v, BENCH_E2E_NARGS) == NULL)
				return;
		}
		bench_case_use_real_time(c);
		bench_case_unit(c, BENCH_UNIT_NS);
	}
}
