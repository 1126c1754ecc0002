/*
 * Saturation detectors through the engine: the "utilization" detector's
 * score formula and mean, staleness (by the engine clock, also while no
 * report arrives), the per-dispatch load estimate (dispatch_cost), usage
 * ceilings per band, wake-ups by reports (polled: the shard fd and the next
 * poll; threaded: the dispatcher thread), bad input, and flowq_saturation()
 * for every detector. Polled mode on the fixture's manual clock, except the
 * threaded cases.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "engine_fixture.h"
#include "saturation_utilization.h"
#include "test_util.h"

#define MS INT64_C(1000000)

/* A polled, one-shard engine with the utilization detector. */
static struct flowq_config
util_cfg(unsigned endpoints, uint64_t q, double cost)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.detector = "utilization";
	c.saturation.endpoints = endpoints;
	c.saturation.queue_depth_threshold = q;
	c.saturation.dispatch_cost = cost;
	return c;
}

static double
sat_of(struct flowq_engine *e)
{
	double v = -1.0;
	cr_assert_eq(flowq_saturation(e, &v), 0);
	/* The gate's own O(1) view (shard 0's cache, sums) must agree with
	 * the O(endpoints) recomputation, and the sums with the endpoints. */
	double g = flowq__util_estimate(e->util, 0, flowq_now(e));
	cr_assert(fabs(g - v) < 1e-9, "gate estimate %.12f != scan %.12f", g, v);
	cr_assert(flowq__util_check_sums(e->util, stderr));
	return v;
}

static void
report(struct flowq_engine *e, unsigned ep, uint64_t q, double kv)
{
	int rc = flowq_endpoint_report(e, ep, q, kv, flowq_now(e));
	cr_assert_eq(rc, 0, "report endpoint %u: %d", ep, rc);
}

static bool
fd_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void
submit_n(struct flowq_engine *e, struct fx_req *r, int n, const char *flow, int32_t prio)
{
	for (int i = 0; i < n; i++) {
		fx_req_init(&r[i], flow, prio, 100);
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
		fx_advance(1);
	}
}

static int
count_dispatched(const struct fx_req *r, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += r[i].seen == FLOWQ_DISPATCHED;
	return k;
}

/* ---- the formula ---- */

Test(utilization, score_formula_and_mean)
{
	struct flowq_config c = util_cfg(4, 5, 0.0);
	struct flowq_engine *e = fx_make(&c);
	cr_assert_eq(sat_of(e), 1.0, "never reported: every endpoint scores 1.0");
	report(e, 0, 0, 0.4); /* kv 0.4 / 0.8 = 0.5 */
	cr_assert(fabs(sat_of(e) - (0.5 + 3.0) / 4) < 1e-9);
	report(e, 1, 10, 0.0); /* queue 10 / 5 = 2.0: above 1 counts */
	report(e, 2, 2, 0.6);  /* max(0.4, 0.75) */
	report(e, 3, 5, 0.8);  /* max(1.0, 1.0) */
	cr_assert(fabs(sat_of(e) - (0.5 + 2.0 + 0.75 + 1.0) / 4) < 1e-9, "%.12f",
		  sat_of(e));
	/* Replacing a report replaces its score. */
	report(e, 1, 0, 0.2); /* 0.25 */
	cr_assert(fabs(sat_of(e) - (0.5 + 0.25 + 0.75 + 1.0) / 4) < 1e-9);
	/* An absurd queue is clamped (2^19), not overflowed. */
	report(e, 1, UINT64_MAX, 1.0);
	cr_assert(fabs(sat_of(e) - (0.5 + 524288.0 + 0.75 + 1.0) / 4) < 1e-6);
	flowq_engine_destroy(e);
}

Test(utilization, staleness_turns_a_score_to_one)
{
	struct flowq_config c = util_cfg(2, 4, 0.0);
	c.saturation.metrics_staleness_ns = 10 * MS;
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 1, 0.0); /* 0.25 */
	fx_advance(4 * MS);
	report(e, 1, 2, 0.0); /* 0.5 */
	cr_assert_eq(sat_of(e), 0.375);
	fx_advance(6 * MS); /* endpoint 0's report is exactly 10 ms old: fresh */
	cr_assert_eq(sat_of(e), 0.375);
	fx_advance(1);
	cr_assert_eq(sat_of(e), (1.0 + 0.5) / 2, "older than the threshold: 1.0");
	fx_advance(4 * MS);
	cr_assert_eq(sat_of(e), 1.0, "both stale");
	/* A report that is already stale changes nothing. */
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, flowq_now(e) - 10 * MS - 1),
		     -ESTALE);
	cr_assert_eq(sat_of(e), 1.0);
	/* A fresh one revives the endpoint. */
	report(e, 0, 0, 0.0);
	cr_assert_eq(sat_of(e), 0.5);
	flowq_engine_destroy(e);
}

Test(utilization, report_from_the_distant_past_is_stale_without_overflow)
{
	struct flowq_config c = util_cfg(2, 4, 0.0);
	struct flowq_engine *e = fx_make(&c);
	/* now - at_ns does not fit in 64 bits (the clock reads > 0): the
	 * age check must still call these stale, not wrap to "fresh". */
	cr_assert_gt(flowq_now(e), 0);
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, INT64_MIN), -ESTALE);
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, INT64_MIN + 1), -ESTALE);
	cr_assert_eq(sat_of(e), 1.0, "the refused reports changed nothing");
	/* The same after an accepted report (the older-than-latest check
	 * comes first there). */
	report(e, 1, 1, 0.0);
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, 0.0, INT64_MIN), -ESTALE);
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, 0.0, INT64_MIN + 1), -ESTALE);
	cr_assert_eq(sat_of(e), (1.0 + 0.25) / 2);
	flowq_engine_destroy(e);
}

Test(utilization, reports_out_of_order_and_bad_input)
{
	struct flowq_config c = util_cfg(2, 5, 1.0);
	struct flowq_engine *e = fx_make(&c);
	int64_t t = flowq_now(e);
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, t), 0);
	cr_assert_eq(flowq_endpoint_report(e, 0, 5, 0.0, t - 1), -ESTALE,
		     "older than the endpoint's latest report");
	cr_assert_eq(sat_of(e), (0.0 + 1.0) / 2, "the refused report changed nothing");
	cr_assert_eq(flowq_endpoint_report(e, 0, 5, 0.0, t), 0,
		     "the same time is accepted");
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, t + 1), -EINVAL,
		     "in the future");
	cr_assert_eq(flowq_endpoint_report(e, 2, 0, 0.0, t), -EINVAL,
		     "endpoint out of range");
	cr_assert_eq(flowq_endpoint_report(e, UINT32_MAX, 0, 0.0, t), -EINVAL);
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, -0.01, t), -EINVAL, "kv below 0");
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, 1.01, t), -EINVAL, "kv above 1");
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, NAN, t), -EINVAL, "kv NaN");
	cr_assert_eq(flowq_endpoint_report(e, 1, 0, 1.0, t), 0, "kv 1 is valid");
	cr_assert_eq(flowq_endpoint_report(NULL, 0, 0, 0.0, t), -EFAULT);
	double v;
	cr_assert_eq(flowq_saturation(NULL, &v), -EFAULT);
	cr_assert_eq(flowq_saturation(e, NULL), -EFAULT);
	cr_assert_eq(sat_of(e), (1.0 + 1.25) / 2);
	flowq_engine_destroy(e);

	/* Another detector: reports are refused. */
	struct flowq_config cc = fx_polled_cfg();
	e = fx_make(&cc);
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, flowq_now(e)), -EINVAL);
	flowq_engine_destroy(e);
}

/* ---- the gate ---- */

Test(utilization, unreported_pool_is_saturated)
{
	struct flowq_config c = util_cfg(2, 5, 1.0);
	struct flowq_engine *e = fx_make(&c);
	struct fx_req r[2];
	submit_n(e, r, 2, "f", 0);
	cr_assert_eq(fx_poll_all(e), 0, "saturation 1.0 is not below ceiling 1.0");
	report(e, 0, 0, 0.0);
	cr_assert_eq(sat_of(e), 0.5, "(0 + 1) / 2");
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(sat_of(e), 0.5 + 2 * 0.05,
		     "two dispatches counted on the one fresh endpoint: 2 / 2 / 5 / 2");
	flowq_engine_destroy(e);
}

Test(utilization, ceilings_per_band)
{
	struct flowq_config c = util_cfg(1, 10, 0.0);
	struct flowq_band_config b[2] = {c.default_band, c.default_band};
	b[0].priority = 1;
	b[0].usage_ceiling = 1.0;
	b[1].priority = 0;
	b[1].usage_ceiling = 0.5;
	c.bands = b;
	c.nbands = 2;
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 6, 0.0); /* 0.6 */
	struct fx_req lo[2], hi[2];
	submit_n(e, lo, 2, "lo", 0);
	submit_n(e, hi, 2, "hi", 1);
	cr_assert_eq(fx_poll_all(e), 2, "band 1 (ceiling 1.0) goes at 0.6");
	cr_assert_eq(count_dispatched(hi, 2), 2);
	cr_assert_eq(count_dispatched(lo, 2), 0, "band 0 (ceiling 0.5) waits at 0.6");
	report(e, 0, 5, 0.0); /* 0.5: not below 0.5 */
	cr_assert_eq(fx_poll_all(e), 0);
	report(e, 0, 4, 0.0); /* 0.4 */
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(count_dispatched(lo, 2), 2);
	flowq_engine_destroy(e);
}

Test(utilization, strict_priority_holds_at_the_gate)
{
	/* A lower band never takes what the gate refused a higher one. */
	struct flowq_config c = util_cfg(1, 4, 1.0);
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 2, 0.0); /* 0.5: two dispatches of 0.25 each fit */
	struct fx_req lo[3], hi[3];
	submit_n(e, lo, 3, "lo", -1);
	submit_n(e, hi, 3, "hi", 5);
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(count_dispatched(hi, 3), 2);
	cr_assert_eq(count_dispatched(lo, 3), 0);
	flowq_engine_destroy(e);
}

Test(utilization, dispatch_cost_bounds_a_burst_between_reports)
{
	/* 2 endpoints, threshold 4, cost 1: each dispatch adds 1/8. */
	struct flowq_config c = util_cfg(2, 4, 1.0);
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 0, 0.0);
	report(e, 1, 0, 0.0);
	cr_assert_eq(sat_of(e), 0.0);
	struct fx_req r[20];
	submit_n(e, r, 20, "f", 0);
	cr_assert_eq(fx_poll_all(e), 8, "8 x 1/8 reaches 1.0");
	cr_assert_eq(sat_of(e), 1.0);
	/* Endpoint 0 shows its share (4 waiting): its pending part goes,
	 * its score takes it over; endpoint 1 still has 4 pending. */
	report(e, 0, 4, 0.0);
	cr_assert_eq(sat_of(e), 1.0);
	cr_assert_eq(fx_poll_all(e), 0);
	/* Endpoint 1 reports 1 waiting (3 were served): 0.625. */
	report(e, 1, 1, 0.0);
	cr_assert_eq(sat_of(e), 0.625);
	cr_assert_eq(fx_poll_all(e), 3, "0.625 -> 0.75 -> 0.875 -> 1.0");
	cr_assert_eq(sat_of(e), 1.0);
	cr_assert_eq(count_dispatched(r, 20), 11);
	flowq_engine_destroy(e);
}

Test(utilization, metrics_taken_before_dispatches_keep_them_pending)
{
	/* A report counts as included only the dispatches made at or before
	 * its metrics' time, however late the report call comes. */
	struct flowq_config c = util_cfg(1, 4, 1.0);
	struct flowq_engine *e = fx_make(&c);
	int64_t t0 = flowq_now(e);
	report(e, 0, 0, 0.0);
	fx_advance(1 * MS);
	struct fx_req r[2];
	submit_n(e, r, 2, "f", 0);
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(sat_of(e), 0.5);
	cr_assert_eq(flowq_endpoint_report(e, 0, 1, 0.0, t0 + MS / 2), 0);
	cr_assert_eq(sat_of(e), 0.25 + 0.5,
		     "taken before both dispatches: still pending");
	cr_assert_eq(flowq_endpoint_report(e, 0, 1, 0.0, flowq_now(e)), 0);
	cr_assert_eq(sat_of(e), 0.25, "taken after them: included");
	flowq_engine_destroy(e);
}

Test(utilization, pending_dispatches_look_back_at_most_1024)
{
	struct flowq_config c = util_cfg(1, 2000, 1.0);
	struct flowq_engine *e = fx_make(&c);
	int64_t t0 = flowq_now(e);
	report(e, 0, 0, 0.0);
	fx_advance(1 * MS);
	enum { N = 1500 };
	struct fx_req *r = calloc(N, sizeof(*r));
	for (int i = 0; i < N; i++) {
		fx_req_init(&r[i], "f", 0, 1);
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), N);
	cr_assert_eq(sat_of(e), 1500.0 / 2000);
	/* Taken before all 1500: the last 1024 stamps are all later, so
	 * those 1024 stay pending (the older ones are beyond the record). */
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, t0 + 1), 0);
	cr_assert_eq(sat_of(e), 1024.0 / 2000);
	cr_assert_eq(flowq_endpoint_report(e, 0, 0, 0.0, flowq_now(e)), 0);
	cr_assert_eq(sat_of(e), 0.0);
	flowq_engine_destroy(e);
	free(r);
}

Test(utilization, without_dispatch_cost_a_low_reading_lets_everything_out)
{
	/* GIE's formula (cost 0): the weakness dispatch_cost addresses. */
	struct flowq_config c = util_cfg(2, 4, 0.0);
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 0, 0.0);
	report(e, 1, 0, 0.0);
	struct fx_req r[20];
	submit_n(e, r, 20, "f", 0);
	cr_assert_eq(fx_poll_all(e), 20);
	flowq_engine_destroy(e);
}

Test(utilization, report_that_lowers_saturation_signals_the_waiting_shard)
{
	struct flowq_config c = util_cfg(1, 5, 0.0);
	struct flowq_engine *e = fx_make(&c);
	int fd = flowq_shard_fd(e, 0);
	report(e, 0, 10, 0.0); /* 2.0 */
	struct fx_req r[2];
	submit_n(e, r, 2, "f", 0);
	int64_t next = 0;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0);
	cr_assert_eq(fx_poll_all(e), 0); /* drains the fd of the submit signal */
	cr_assert_not(fd_readable(fd));
	report(e, 0, 12, 0.0); /* higher: no reason to look */
	cr_assert_not(fd_readable(fd), "a report that raises saturation does not signal");
	report(e, 0, 4, 0.0); /* 0.8 */
	cr_assert(fd_readable(fd),
		  "a report that lowers it signals the gate-waiting shard");
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(count_dispatched(r, 2), 2);
	flowq_engine_destroy(e);
}

/* A clock that, once armed, makes a report at the moment the polled shard
 * has registered as a gate waiter and marked itself idle (inside its
 * pre-sleep re-check): the window where the report's wake and the shard's
 * re-check must meet (the Dekker pair of engine.h). */
static struct flowq_engine *hook_engine;
static bool hook_armed, hook_fired;

static int64_t
hook_clock(void *ctx)
{
	(void)ctx;
	struct flowq__shard *s = hook_engine ? &hook_engine->shards[0] : NULL;
	if (hook_armed && !hook_fired && s && atomic_load(&s->gate_wait) &&
	    (atomic_load(&s->sleeping) & FLOWQ__SLEEP_STATE) != FLOWQ__SLEEP_AWAKE) {
		hook_fired = true;
		cr_assert_eq(flowq_endpoint_report(hook_engine, 0, 0, 0.0, fx_now), 0);
	}
	return fx_now;
}

Test(utilization, report_racing_the_sleep_is_not_lost)
{
	struct flowq_config c = util_cfg(1, 5, 0.0);
	c.clock = hook_clock;
	c.saturation.metrics_staleness_ns = 600 * INT64_C(1000000000);
	hook_engine = NULL;
	struct flowq_engine *e = fx_make(&c);
	hook_engine = e;
	/* A host that waits on the shard's fd: polls arm it (sleeping = 1
	 * before the re-check), the window a report must not fall into. */
	cr_assert_geq(flowq_shard_fd(e, 0), 0);
	report(e, 0, 10, 0.0); /* 2.0 */
	struct fx_req r;
	submit_n(e, &r, 1, "f", 0);
	int64_t next = 0;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0, "blocked");
	cr_assert_gt(next, flowq_now(e), "and nothing to do before the horizon");
	hook_armed = true;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0,
		     "still blocked at the gate check");
	cr_assert(hook_fired, "the report ran inside the shard's pre-sleep re-check");
	cr_assert_eq(next, flowq_now(e), "the re-check saw it: poll again now");
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 1);
	cr_assert_eq(r.seen, FLOWQ_DISPATCHED);
	hook_armed = false;
	hook_engine = NULL;
	flowq_engine_destroy(e);
}

Test(utilization, blocked_shard_looks_again_when_a_report_goes_stale)
{
	/* Endpoint 1 reported an overload (score 10) and went quiet: once
	 * its report is stale it counts 1.0, which opens the gate although
	 * no report arrives. The blocked poll says when. */
	struct flowq_config c = util_cfg(2, 5, 0.0);
	c.saturation.metrics_staleness_ns = 20 * MS;
	struct flowq_engine *e = fx_make(&c);
	int64_t t1 = flowq_now(e);
	report(e, 1, 50, 0.0);
	fx_advance(5 * MS);
	report(e, 0, 1, 0.0); /* 0.2 */
	struct fx_req r;
	submit_n(e, &r, 1, "f", 0);
	int64_t next = 0;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0);
	cr_assert_eq(next, t1 + 20 * MS + 1, "the earliest fresh report goes stale then");
	fx_advance(next - flowq_now(e) - 1);
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0, "one ns early: still 5.1");
	fx_advance(1);
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 1, "(0.2 + 1.0) / 2 = 0.6");
	cr_assert_eq(r.seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
}

Test(utilization, in_flight_limit_holds_as_well)
{
	struct flowq_config c = util_cfg(1, 100, 0.0);
	c.saturation.max_inflight = 2;
	struct flowq_engine *e = fx_make(&c);
	report(e, 0, 0, 0.0);
	struct fx_req r[3];
	submit_n(e, r, 3, "f", 0);
	cr_assert_eq(fx_poll_all(e), 2, "the in-flight limit stops the third");
	double v;
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 1.0, "max(utilization 0, in flight 2/2)");
	cr_assert_eq(flowq_release(e, &r[0].req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	report(e, 0, 100, 0.0); /* utilization 1.0: closed whatever the slots */
	cr_assert_eq(flowq_release(e, &r[1].req), 0);
	cr_assert_eq(flowq_release(e, &r[2].req), 0);
	struct fx_req s;
	submit_n(e, &s, 1, "f", 0);
	cr_assert_eq(fx_poll_all(e), 0);
	flowq_engine_destroy(e);
}

/* A reference model of the formula, independent of the detector's fixed
 * point and sums: endpoint scores, and for each report the number of
 * dispatches its metrics include (those made at or before its time, not
 * fewer than its previous report's count; at most 1024 dispatches back). */
struct model {
	unsigned n;
	double q, k, cost;
	int64_t st;
	bool seen[8];
	int64_t at[8];
	double score[8];
	uint64_t d[8];
	uint64_t dispatched;
	int64_t stamp[8192]; /* stamp[i]: when dispatch i + 1 was made */
};

static uint64_t
model_included(const struct model *m, unsigned ep, int64_t at, int64_t now)
{
	uint64_t lo = m->seen[ep] && now - m->at[ep] <= m->st ? m->d[ep] : 0;
	uint64_t b = m->dispatched > 1024 ? m->dispatched - 1024 : 0;
	if (lo > b)
		b = lo;
	uint64_t k = m->dispatched;
	while (k > b && m->stamp[k - 1] > at)
		k--;
	return k;
}

static double
model_sat(const struct model *m, int64_t now)
{
	double t = 0;
	for (unsigned i = 0; i < m->n; i++) {
		if (!m->seen[i] || now - m->at[i] > m->st) {
			t += 1.0;
			continue;
		}
		t += m->score[i] +
		     m->cost * (double)(m->dispatched - m->d[i]) / m->n / m->q;
	}
	return t / m->n;
}

Test(utilization, random_reports_dispatches_and_time_match_a_model)
{
	for (unsigned shards = 1; shards <= 2; shards++) {
		struct flowq_config c = util_cfg(5, 3, 0.7);
		c.shards = shards;
		c.saturation.kv_cache_util_threshold = 0.5;
		c.saturation.metrics_staleness_ns = 3 * MS;
		struct flowq_engine *e = fx_make(&c);
		static struct model m;
		m = (struct model){.n = 5, .q = 3, .k = 0.5, .cost = 0.7, .st = 3 * MS};
		uint64_t rng = 42 + shards;
		enum { NREQ = 4000 };
		struct fx_req *r = calloc(NREQ, sizeof(*r));
		int submitted = 0;
		for (int step = 0; step < 3000; step++) {
			uint64_t x = test_rng_next(&rng);
			switch (x % 4) {
			case 0: { /* a report, sometimes of an old reading */
				unsigned ep = (unsigned)(x >> 8) % m.n;
				uint64_t q = (x >> 16) % 8;
				double kv = (double)((x >> 24) % 101) / 100.0;
				int64_t at =
					flowq_now(e) - (int64_t)((x >> 32) % (4 * MS));
				int rc = flowq_endpoint_report(e, ep, q, kv, at);
				bool older = m.seen[ep] && at < m.at[ep];
				bool stale = flowq_now(e) - at > m.st;
				cr_assert_eq(rc, older || stale ? -ESTALE : 0, "rc %d",
					     rc);
				if (rc == 0) {
					m.d[ep] =
						model_included(&m, ep, at, flowq_now(e));
					m.seen[ep] = true;
					m.at[ep] = at;
					double a = (double)q / m.q, b = kv / m.k;
					m.score[ep] = a > b ? a : b;
				}
				break;
			}
			case 1: /* time passes */
				fx_advance((int64_t)((x >> 8) % (2 * MS)));
				break;
			case 2: /* arrivals */
				for (int i = 0; i < 3 && submitted < NREQ; i++)
					submit_n(e, &r[submitted++], 1,
						 (x >> 9) & 1 ? "a" : "b", 0);
				break;
			case 3: { /* a dispatch round; the model counts them */
				int n = fx_poll_all(e);
				for (int i = 0; i < n; i++)
					m.stamp[m.dispatched++] = flowq_now(e);
				/* Blocked means the gate is at or above 1 now:
				 * the last dispatch crossed it, or nothing
				 * could go. */
				bool backlog = count_dispatched(r, submitted) < submitted;
				if (backlog)
					cr_assert_geq(model_sat(&m, flowq_now(e)),
						      1.0 - 1e-9, "blocked below 1");
				break;
			}
			}
			double v = sat_of(e);
			double want = model_sat(&m, flowq_now(e));
			cr_assert(fabs(v - want) < 1e-6, "step %d: %.9f != model %.9f",
				  step, v, want);
		}
		flowq_engine_destroy(e);
		free(r);
	}
}

/* ---- create: every allocation failure unwinds ---- */

Test(utilization, allocation_failure_in_create_leaks_nothing)
{
	for (int k = 0; k < 100; k++) {
		struct test_count_alloc ca;
		test_count_alloc_init(&ca);
		test_count_alloc_budget(&ca, (unsigned long)k);
		struct flowq_config c = util_cfg(64, 5, 1.0);
		c.shards = 2;
		c.saturation.max_inflight = 8; /* the in-flight pool too */
		c.allocator = &ca.a;
		struct flowq_engine *e = NULL;
		int rc = flowq_engine_create(&c, &e);
		if (rc == 0) {
			cr_assert_not_null(e->util);
			flowq_engine_destroy(e);
			cr_assert_eq(ca.blocks, 0);
			return;
		}
		cr_assert_eq(rc, -ENOMEM, "k=%d rc=%d", k, rc);
		cr_assert_eq(ca.blocks, 0, "k=%d: %ld blocks leaked", k, (long)ca.blocks);
	}
	cr_assert_fail("create never succeeded");
}

/* ---- threaded: a report wakes a sleeping dispatcher ---- */

static _Atomic int done_count;

static void
count_done(struct flowq_req *req, void *arg)
{
	(void)req;
	(void)arg;
	atomic_fetch_add(&done_count, 1);
}

static bool
wait_done(int want, int64_t timeout_ms)
{
	for (int64_t i = 0; i < timeout_ms; i++) {
		if (atomic_load(&done_count) >= want)
			return true;
		usleep(1000);
	}
	return atomic_load(&done_count) >= want;
}

Test(utilization, threaded_report_wakes_the_dispatchers)
{
	for (unsigned shards = 1; shards <= 2; shards++) {
		struct flowq_config c;
		flowq_config_init(&c);
		c.shards = shards;
		c.saturation.detector = "utilization";
		c.saturation.endpoints = 2;
		c.saturation.dispatch_cost = 0.0;
		/* Staleness far away: no timed re-check can hide a lost
		 * wake-up. */
		c.saturation.metrics_staleness_ns = 600 * INT64_C(1000000000);
		struct flowq_engine *e = fx_make(&c);
		atomic_store(&done_count, 0);
		report(e, 0, 50, 0.0);
		report(e, 1, 50, 0.0);
		enum { N = 16 };
		struct flowq_req r[N];
		char ids[N][8];
		for (int i = 0; i < N; i++) {
			flowq_req_init(&r[i]);
			snprintf(ids[i], sizeof(ids[i]), "f%d", i);
			r[i].flow_id = ids[i];
			r[i].flow_id_len = (uint32_t)strlen(ids[i]);
			r[i].complete = count_done;
			cr_assert_eq(flowq_submit(e, &r[i]), 0);
		}
		usleep(50000);
		cr_assert_eq(atomic_load(&done_count), 0, "saturated: nothing goes");
		report(e, 0, 0, 0.0);
		usleep(20000);
		cr_assert_eq(atomic_load(&done_count), 0,
			     "(0 + 10) / 2 is still saturated");
		report(e, 1, 0, 0.0);
		cr_assert(wait_done(N, 5000), "woken by the report: %d of %d dispatched",
			  atomic_load(&done_count), N);
		flowq_engine_destroy(e);
	}
}

/* ---- flowq_saturation for the other detectors ---- */

static double cb_value;

static double
cb(void *ctx)
{
	(void)ctx;
	return cb_value;
}

Test(saturation, value_of_every_detector)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	double v = -1;
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 0.0, "concurrency without limits: never saturated");
	flowq_engine_destroy(e);

	c.saturation.max_inflight = 4;
	c.saturation.max_inflight_bytes = 1000;
	e = fx_make(&c);
	struct fx_req r;
	submit_n(e, &r, 1, "f", 0); /* 100 bytes */
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 0.25, "max(1/4 requests, 100/1000 bytes)");
	cr_assert_eq(flowq_release(e, &r.req), 0);
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 0.0);
	flowq_engine_destroy(e);

	/* The bytes' fraction when it is the larger of the two. */
	c.saturation.max_inflight_bytes = 200;
	e = fx_make(&c);
	submit_n(e, &r, 1, "f", 0); /* 100 bytes */
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 0.5, "max(1/4 requests, 100/200 bytes)");
	cr_assert_eq(flowq_release(e, &r.req), 0);
	flowq_engine_destroy(e);

	c = fx_polled_cfg();
	c.saturation.detector = "callback";
	c.saturation.callback = cb;
	e = fx_make(&c);
	cb_value = 0.7;
	cr_assert_eq(flowq_saturation(e, &v), 0);
	cr_assert_eq(v, 0.7);
	flowq_engine_destroy(e);
}

Test(saturation, strerror_of_the_report_errors)
{
	cr_assert_str_eq(
		flowq_strerror(-ESTALE),
		"stale endpoint report (older than its latest or its staleness limit)");
	cr_assert(strstr(flowq_strerror(-EBUSY), "endpoint report running"));
}
