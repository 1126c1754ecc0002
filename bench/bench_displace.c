/*
 * bench_displace: displacement under overload, every displacement policy in
 * one run (STYLE.md §10: peers side by side; "none" is the peer).
 *
 * BM_displacement/policy:I runs the I-th registered displacement policy
 * (flowq_displacement_at(I); the label names it) on one deterministic
 * discrete-event simulation per iteration: a polled engine (2 shards) on a
 * virtual clock, a backend of SLOTS concurrency slots (the concurrency
 * detector, max_inflight = SLOTS) that holds each dispatched request for
 * SERVICE_NS, so its capacity C = SLOTS / SERVICE_NS requests per second.
 * Four bands (priorities 3, 2, 1, 0) offer Poisson arrivals at 2 C in all:
 * 50 %, 25 %, 12.5 % and 12.5 % of it, so the top band alone offers 1.0 C.
 * The global limit (GLOBAL_LIMIT queued requests) fills with lower-band work
 * within milliseconds; every request has a TTL of TTL_NS. FLOWS flows per
 * band. SIM_NS of virtual time per iteration, the same seed for every
 * policy, so the policies see the same arrivals.
 *
 * Counters (per iteration, from the simulation, not from the wall clock):
 *   top_goodput     top-band dispatches / (C x SIM_NS): target >= 0.95 (the
 *                   issue's figure; with "none" the queue full of lower-band
 *                   work turns top-band requests away);
 *   top_drops_lq    top-band requests rejected while a lower band had
 *                   requests queued (target 0 with a displacement policy);
 *   shed            requests displaced; low_goodput: bands 0-2's dispatches
 *                   / (C x SIM_NS);
 *   cpu_ns_per_req  CPU time of the iteration per offered request (the
 *                   simulation's own bookkeeping included, the same for every
 *                   policy: compare policies by ratio);
 *   violations      requests without exactly one outcome, or dispatched
 *                   above the backend's slots (must be 0; the case fails
 *                   otherwise).
 *
 * BM_displacement_shed/policy:I measures the cost of one displacement:
 * the engine's queue is held full of band-0 requests; one iteration submits
 * a band-1 request (admitted by displacing one band-0 request), polls (the
 * victim is shed), cancels the band-1 request and polls again (it leaves),
 * then submits a band-0 request to refill. With "none" the band-1 submit is
 * rejected instead: the difference between the two times is the cost of a
 * displacement (ticket + shed + debt repayment) over a rejection.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "bench.h"

#define SLOTS        32
#define SERVICE_NS   INT64_C(1000000) /* C = 32000 requests/s */
#define GLOBAL_LIMIT 256
#define TTL_NS       INT64_C(200000000)
#define FLOWS        8
#define NBANDS       4
#define SIM_NS       INT64_C(2000000000)
#define POOL         4096

static const double band_share[NBANDS] = {0.5, 0.25, 0.125, 0.125}; /* prio 3..0 */

struct sim;

struct sreq {
	struct flowq_req req;
	struct sim *sim;
	struct sreq *next_free;
	int band; /* 0 = top (priority 3) */
	int completions;
	char id[8];
};

struct sim {
	int64_t now;
	struct flowq_engine *e;
	struct sreq *pool, *free;
	/* Pending releases: a binary min-heap of (time, request). */
	int64_t rel_t[POOL];
	struct sreq *rel_r[POOL];
	size_t nrel;
	int inflight;
	uint64_t rng;
	uint64_t dispatched[NBANDS], rejected[NBANDS], offered[NBANDS];
	uint64_t shed, top_drops_lq, violations;
};

static int64_t
sim_clock(void *ctx)
{
	return ((struct sim *)ctx)->now;
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Exponential inter-arrival time with mean @p mean_ns. */
static int64_t
exp_ns(uint64_t *s, double mean_ns)
{
	double u = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
	return (int64_t)(-log(u) * mean_ns) + 1;
}

static void
rel_push(struct sim *s, int64_t t, struct sreq *r)
{
	size_t i = s->nrel++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (s->rel_t[p] <= t)
			break;
		s->rel_t[i] = s->rel_t[p];
		s->rel_r[i] = s->rel_r[p];
		i = p;
	}
	s->rel_t[i] = t;
	s->rel_r[i] = r;
}

static struct sreq *
rel_pop(struct sim *s)
{
	struct sreq *top = s->rel_r[0];
	int64_t t = s->rel_t[--s->nrel];
	struct sreq *r = s->rel_r[s->nrel];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nrel)
			break;
		if (c + 1 < s->nrel && s->rel_t[c + 1] < s->rel_t[c])
			c++;
		if (t <= s->rel_t[c])
			break;
		s->rel_t[i] = s->rel_t[c];
		s->rel_r[i] = s->rel_r[c];
		i = c;
	}
	s->rel_t[i] = t;
	s->rel_r[i] = r;
	return top;
}

static void
put_free(struct sim *s, struct sreq *r)
{
	r->next_free = s->free;
	s->free = r;
}

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct sreq *r = arg;
	struct sim *s = r->sim;
	if (++r->completions != 1)
		s->violations++;
	enum flowq_outcome o = flowq_req_outcome(req);
	if (o == FLOWQ_DISPATCHED) {
		s->dispatched[r->band]++;
		if (++s->inflight > SLOTS)
			s->violations++;
		rel_push(s, s->now + SERVICE_NS, r);
		return;
	}
	if (o == FLOWQ_EVICTED_DISPLACED)
		s->shed++;
	put_free(s, r);
}

static bool
lower_band_queued(struct sim *s, int band)
{
	for (int b = band + 1; b < NBANDS; b++) {
		struct flowq_stats st;
		if (flowq_stats_band(s->e, NBANDS - 1 - b, &st) == 0 && st.queued > 0)
			return true;
	}
	return false;
}

static void
poll_all(struct sim *s)
{
	for (unsigned k = 0; k < flowq_shard_count(s->e); k++)
		flowq_shard_poll(s->e, k, 0, NULL);
}

static int
sim_engine(struct sim *s, const char *policy)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_POLLED;
	c.shards = 2;
	c.clock = sim_clock;
	c.clock_ctx = s;
	c.max_requests = GLOBAL_LIMIT;
	c.saturation.max_inflight = SLOTS;
	c.default_ttl_ns = TTL_NS;
	c.displacement = policy;
	return flowq_engine_create(&c, &s->e);
}

static int
sim_init(struct sim *s, const char *policy)
{
	memset(s, 0, sizeof(*s));
	s->now = 1000000;
	s->rng = 0x9e3779b97f4a7c15u;
	s->pool = calloc(POOL, sizeof(*s->pool));
	if (!s->pool)
		return -ENOMEM;
	for (int i = POOL - 1; i >= 0; i--) {
		s->pool[i].sim = s;
		put_free(s, &s->pool[i]);
	}
	int rc = sim_engine(s, policy);
	if (rc)
		free(s->pool);
	return rc;
}

static void
sim_fini(struct sim *s)
{
	/* Release what is in flight, then destroy (evicts what is queued). */
	while (s->nrel) {
		struct sreq *r = rel_pop(s);
		flowq_release(s->e, &r->req);
	}
	flowq_engine_destroy(s->e);
	for (int i = 0; i < POOL; i++)
		if (s->pool[i].completions > 1)
			s->violations++;
	free(s->pool);
}

static void
submit_one(struct sim *s, int band)
{
	struct sreq *r = s->free;
	if (!r) { /* the pool is sized above any reachable population */
		s->violations++;
		return;
	}
	s->free = r->next_free;
	flowq_req_init(&r->req);
	r->band = band;
	r->completions = 0;
	unsigned flow = (unsigned)(rng_next(&s->rng) % FLOWS);
	int n = snprintf(r->id, sizeof(r->id), "b%df%u", band, flow);
	r->req.flow_id = r->id;
	r->req.flow_id_len = (uint32_t)n;
	r->req.priority = NBANDS - 1 - band;
	r->req.bytes = 1000;
	r->req.complete = on_complete;
	r->req.arg = r;
	s->offered[band]++;
	if (flowq_submit(s->e, &r->req) != 0) {
		s->rejected[band]++;
		if (band == 0 && lower_band_queued(s, band))
			s->top_drops_lq++;
		put_free(s, r);
	}
}

/* One simulated run of SIM_NS. */
static void
sim_run(struct sim *s)
{
	double cap_per_ns = (double)SLOTS / (double)SERVICE_NS;
	int64_t next[NBANDS];
	double mean[NBANDS];
	for (int b = 0; b < NBANDS; b++) {
		mean[b] = 1.0 / (2.0 * cap_per_ns * band_share[b]);
		next[b] = s->now + exp_ns(&s->rng, mean[b]);
	}
	int64_t end = s->now + SIM_NS;
	for (;;) {
		int nb = 0;
		for (int b = 1; b < NBANDS; b++)
			if (next[b] < next[nb])
				nb = b;
		int64_t t = next[nb];
		bool release = s->nrel && s->rel_t[0] <= t;
		if (release)
			t = s->rel_t[0];
		if (t >= end)
			break;
		s->now = t;
		if (release) {
			struct sreq *r = rel_pop(s);
			s->inflight--;
			flowq_release(s->e, &r->req);
			put_free(s, r);
		} else {
			submit_one(s, nb);
			next[nb] = t + exp_ns(&s->rng, mean[nb]);
		}
		poll_all(s);
	}
}

static double
cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
bm_displacement(struct bench_state *st, void *arg)
{
	(void)arg;
	const struct flowq_displacement_ops *ops =
		flowq_displacement_at((size_t)bench_range(st, 0));
	if (!ops) {
		bench_skip_with_error(st, "no such displacement policy");
		return;
	}
	double cap = (double)SLOTS / (double)SERVICE_NS * (double)SIM_NS;
	double top = 0, low = 0, shed = 0, drops = 0, cpu = 0, offered = 0;
	uint64_t violations = 0, runs = 0;
	while (bench_keep_running_batch(st, 1)) {
		struct sim *s = malloc(sizeof(*s));
		if (!s || sim_init(s, ops->desc.name)) {
			free(s);
			bench_skip_with_error(st, "engine create failed");
			return;
		}
		double c0 = cpu_seconds();
		sim_run(s);
		cpu += cpu_seconds() - c0;
		top += (double)s->dispatched[0];
		for (int b = 1; b < NBANDS; b++)
			low += (double)s->dispatched[b];
		for (int b = 0; b < NBANDS; b++)
			offered += (double)s->offered[b];
		shed += (double)s->shed;
		drops += (double)s->top_drops_lq;
		sim_fini(s);
		violations += s->violations;
		runs++;
		free(s);
	}
	if (violations) {
		bench_skip_with_error(st, "a request without exactly one outcome, or the "
					  "backend over its slots");
		return;
	}
	double n = (double)runs;
	bench_set_counter(st, "top_goodput", top / n / cap, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "low_goodput", low / n / cap, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "top_drops_lq", drops / n, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "shed", shed / n, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "cpu_ns_per_req", cpu * 1e9 / offered, BENCH_COUNTER_PLAIN);
	bench_set_counter(st, "violations", 0, BENCH_COUNTER_PLAIN);
	bench_set_label(st, ops->desc.name);
}

/* ---- BM_displacement_shed ---- */

#define SHED_BATCH 256

static void
bm_displacement_shed(struct bench_state *st, void *arg)
{
	(void)arg;
	const struct flowq_displacement_ops *ops =
		flowq_displacement_at((size_t)bench_range(st, 0));
	struct sim *s = ops ? malloc(sizeof(*s)) : NULL;
	if (!s || sim_init(s, ops->desc.name)) {
		free(s);
		bench_skip_with_error(st, "set-up failed");
		return;
	}
	/* Hold the gate (SLOTS dispatched, never released) and fill the
	 * queue with band-3 (lowest) requests. */
	while (s->inflight < SLOTS) {
		submit_one(s, 3);
		poll_all(s);
	}
	for (int i = 0; i < GLOBAL_LIMIT; i++)
		submit_one(s, 3);
	poll_all(s);
	bool displacing = strcmp(ops->desc.name, "none") != 0;
	uint64_t bad = 0, n = 0;
	while (bench_keep_running_batch(st, SHED_BATCH)) {
		for (int i = 0; i < SHED_BATCH; i++) {
			struct sreq *r = s->free;
			uint64_t shed0 = s->shed, rej0 = s->rejected[2];
			submit_one(s, 2);
			poll_all(s);
			if (displacing) {
				if (s->shed != shed0 + 1 || flowq_cancel(s->e, &r->req) != 0)
					bad++;
				poll_all(s);
				submit_one(s, 3); /* refill */
				poll_all(s);
			} else if (s->rejected[2] != rej0 + 1) {
				bad++;
			}
			n++;
		}
	}
	sim_fini(s);
	if (bad || s->violations) {
		bench_skip_with_error(st, "a displacement did not shed exactly one request");
		free(s);
		return;
	}
	free(s);
	bench_set_items_processed(st, (int64_t)n);
	bench_set_label(st, ops->desc.name);
}

void
bench_displace_register(void)
{
	struct bench_case *c = bench_register("BM_displacement", bm_displacement, NULL);
	struct bench_case *d = bench_register("BM_displacement_shed", bm_displacement_shed, NULL);
	for (size_t i = 0; flowq_displacement_at(i); i++) {
		bench_case_arg(c, (int64_t)i);
		bench_case_arg(d, (int64_t)i);
	}
	bench_case_arg_name(c, "policy");
	bench_case_arg_name(d, "policy");
	bench_case_iterations(c, 1);
	bench_case_unit(c, BENCH_UNIT_MS);
}
