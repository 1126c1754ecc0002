/*
 * Faults a host can inject without FLOWQ_FAULT_INJECTION, deterministic in
 * polled mode (issue 6, "Fault injection"; the threaded stress side is
 * tests/stress/stress_faults.c):
 *  - clock: a manual clock that jumps forward and back and stands still
 *    while the engine runs: never a dispatch at or past a request's expiry
 *    by the clock of its poll, never an eviction for TTL before it, no
 *    starvation (frozen time still dispatches what the gate lets out; every
 *    request gets its outcome), no negative duration in the statistics;
 *  - oom: the allocator fails every k-th call or at random (count_alloc.h)
 *    over whole engine lives: every failing public call returns -ENOMEM,
 *    exactly one outcome per accepted request, conservation, no leak; and
 *    destroy under total allocation failure still evicts everything.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "engine_fixture.h"
#include "test_util.h"

#define MS INT64_C(1000000)

/* Slots of a random walk: h[i] is in use when used[i] (accepted); a
 * dispatched one must be released (released[i]) before its slot is reused. */
static bool
slot_busy(const struct fx_req *h, const bool *used, const bool *released, unsigned i)
{
	return used[i] &&
	       (!h[i].completions || (h[i].seen == FLOWQ_DISPATCHED && !released[i]));
}

/* Release what is dispatched and poll, the clock moving @p step_ns a
 * round, until every used slot has its outcome (at most @p rounds). */
static void
quiesce(struct flowq_engine *e, struct fx_req *h, const bool *used, bool *released,
	unsigned n, int64_t step_ns, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		bool open = false;
		for (unsigned i = 0; i < n; i++) {
			if (!used[i])
				continue;
			if (!h[i].completions)
				open = true;
			else if (h[i].seen == FLOWQ_DISPATCHED && !released[i]) {
				cr_assert_eq(flowq_release(e, &h[i].req), 0);
				released[i] = true;
			}
		}
		if (!open)
			return;
		fx_advance(step_ns);
		fx_poll_all(e);
	}
}

/* ---- clock ---- */

/* The lowest and highest clock values the run used. */
static int64_t clk_lo, clk_hi;

static void
clk_set(int64_t v)
{
	__atomic_store_n(&fx_now, v, __ATOMIC_RELAXED);
	if (v < clk_lo)
		clk_lo = v;
	if (v > clk_hi)
		clk_hi = v;
}

/* Every completion of the run is checked against the clock of its poll
 * (the clock does not move during a poll). */
static unsigned clk_checked, clk_dispatched;

static void
clk_complete(struct flowq_req *req, void *arg)
{
	int64_t now = fx_clock(NULL);
	enum flowq_outcome o = flowq_req_outcome(req);
	if (o == FLOWQ_DISPATCHED) {
		cr_assert_gt(req->priv.expire, now,
			     "dispatched at or past its expiry");
		clk_dispatched++;
	} else if (o == FLOWQ_EVICTED_TTL) {
		cr_assert_leq(req->priv.expire, now,
			      "evicted for TTL before its expiry");
	}
	clk_checked++;
	fx_on_complete(req, arg);
}

static int
clk_check_flow(const void *id, uint32_t id_len, int32_t prio,
	       const struct flowq_stats *st, void *ctx)
{
	(void)id;
	(void)id_len;
	(void)prio;
	(void)ctx;
	cr_assert_leq((double)st->queue_time.sum_ns,
		      (double)st->queue_time.count * (double)(clk_hi - clk_lo),
		      "a negative (wrapped) duration in a flow's queue time");
	return 0;
}

static int
clk_check_band(int32_t prio, const struct flowq_stats *st, void *ctx)
{
	(void)prio;
	(void)ctx;
	cr_assert_leq((double)st->queue_time.sum_ns,
		      (double)st->queue_time.count * (double)(clk_hi - clk_lo),
		      "a negative (wrapped) duration in a band's queue time");
	return 0;
}

/* A jump back makes a request's wait negative: counted as 0, not wrapped. */
Test(clock, jump_back_counts_a_zero_wait)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_advance(-500 * MS);
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.queue_time.count, 1);
	cr_assert_eq(st.queue_time.sum_ns, 0, "negative wait clamped at 0");
	cr_assert_eq(flowq_hist_quantile(&st.queue_time, 1.0), flowq_hist_bound(0));
	flowq_stats_flow(e, "f", 1, 0, &st);
	cr_assert_eq(st.queue_time.sum_ns, 0);
	flowq_release(e, &h.req);
	flowq_engine_destroy(e);
}

/* A clock that runs backwards: every read is 1 us before the last. */
static _Atomic int64_t back_now = INT64_C(1) << 50;

static int64_t
back_clock(void *ctx)
{
	(void)ctx;
	return atomic_fetch_sub(&back_now, 1000) - 1000;
}

struct back_req {
	struct flowq_req req;
	_Atomic int completions;
};

static void
back_done(struct flowq_req *req, void *arg)
{
	(void)req;
	atomic_fetch_add(&((struct back_req *)arg)->completions, 1);
}

/* Threaded, with a clock that only goes back: an idle dispatcher's spin
 * never runs out (its elapsed time is never positive) and ends at each
 * new request, measuring a negative idle gap, which counts as 0 (core/
 * dispatch.c spin_gap_note()): the spin's average stays in [0, 16 us],
 * so it keeps polling, and every request is dispatched once. */
Test(clock, backwards_clock_idle_gaps_count_as_zero)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_THREADED;
	c.shards = 1;
	c.clock = back_clock;
	c.idle_spin_ns = 1000000;
	c.intake_coalesce_ns = 0;
	struct flowq_engine *e = fx_make(&c);
	struct back_req h[5];
	for (int i = 0; i < 5; i++) {
		/* The dispatcher is spinning by now (it does not sleep: its
		 * spin cannot run out). */
		nanosleep(&(struct timespec){0, 1000000}, NULL);
		memset(&h[i], 0, sizeof(h[i]));
		flowq_req_init(&h[i].req);
		h[i].req.flow_id = "f";
		h[i].req.flow_id_len = 1;
		h[i].req.complete = back_done;
		h[i].req.arg = &h[i];
		cr_assert_eq(flowq_submit(e, &h[i].req), 0);
		for (int k = 0; k < 50000 && !atomic_load(&h[i].completions); k++)
			nanosleep(&(struct timespec){0, 100000}, NULL);
		cr_assert_eq(atomic_load(&h[i].completions), 1, "request %d", i);
		cr_assert_eq(flowq_req_outcome(&h[i].req), FLOWQ_DISPATCHED);
		cr_assert_eq(flowq_release(e, &h[i].req), 0);
	}
	/* Written by the dispatcher before the last completion (the spin
	 * that saw the request), not since: its next spin has not ended. */
	int64_t avg = e->shards[0].spin_gap_avg;
	cr_assert_geq(avg, 0, "a negative idle gap counted: average %lld",
		      (long long)avg);
	cr_assert_leq(avg, 16000);
	struct flowq_shard_stats ss;
	cr_assert_eq(flowq_stats_shard(e, 0, &ss), 0);
	cr_assert_eq(ss.sleeps, 0, "the spin never ran out");
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 5);
	/* Not queue_time.sum_ns == 0: a dispatcher preempted in a round that
	 * read the clock before a submit did takes the request in with a
	 * positive wait. */
	cr_assert_eq(st.queue_time.count, 5);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(atomic_load(&h[i].completions), 1);
}

/* Frozen time: nothing expires, but releases still let queued requests
 * out (no starvation); a jump forward then expires what is due. */
Test(clock, frozen_time_dispatches_and_a_jump_expires)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h[6];
	for (int i = 0; i < 6; i++) {
		fx_req_init(&h[i], "f", 0, 1);
		h[i].req.ttl_ns = 10 * MS;
		cr_assert_eq(flowq_submit(e, &h[i].req), 0);
	}
	for (int i = 0; i < 3; i++) { /* frozen: poll, release, poll ... */
		fx_poll_all(e);
		cr_assert_eq(h[i].seen, FLOWQ_DISPATCHED, "request %d starved", i);
		flowq_release(e, &h[i].req);
	}
	fx_advance(10 * MS); /* exactly at the expiry: due */
	fx_poll_all(e);
	for (int i = 3; i < 6; i++)
		cr_assert_eq(h[i].seen, FLOWQ_EVICTED_TTL, "request %d", i);
	flowq_engine_destroy(e);
}

/* A seeded random walk of submits, cancels, releases and polls on two
 * shards while the clock jumps both ways and stands still. */
Test(clock, random_jumps_and_freezes)
{
	enum { N = 256, STEPS = 20000 };
	for (uint64_t seed = 1; seed <= 4; seed++) {
		struct flowq_config c = fx_polled_cfg();
		c.shards = 2;
		c.saturation.max_inflight = 4;
		clk_set(1000 * MS);
		clk_lo = clk_hi = 1000 * MS;
		struct flowq_engine *e = fx_make(&c);
		static struct fx_req h[N];
		static bool used[N], released[N];
		memset(h, 0, sizeof(h));
		memset(used, 0, sizeof(used));
		memset(released, 0, sizeof(released));
		clk_checked = clk_dispatched = 0;
		unsigned accepted = 0, frozen_polls = 0, frozen_dispatches = 0;
		uint64_t rng = seed;
		int frozen = 0;
		char ids[8][4];
		for (int i = 0; i < 8; i++)
			snprintf(ids[i], sizeof(ids[i]), "f%d", i);
		for (int step = 0; step < STEPS; step++) {
			uint64_t r = test_rng_next(&rng);
			unsigned i = (unsigned)(r % N);
			switch ((r >> 16) % 8) {
			case 0:
			case 1: /* submit (a slot whose request is done) */
				if (slot_busy(h, used, released, i))
					break;
				fx_req_init(&h[i], ids[(r >> 24) % 8],
					    (int32_t)((r >> 28) % 2), 1);
				h[i].req.complete = clk_complete;
				if ((r >> 32) % 2)
					h[i].req.ttl_ns =
						MS + (int64_t)((r >> 36) % (50 * MS));
				if ((r >> 33) % 4 == 0)
					h[i].req.deadline_ns =
						fx_clock(NULL) + MS +
						(int64_t)((r >> 40) % (50 * MS));
				used[i] = true;
				released[i] = false;
				if (flowq_submit(e, &h[i].req) == 0)
					accepted++;
				else
					used[i] = false; /* rejected: no completion */
				break;
			case 2: /* cancel */
				if (used[i])
					(void)flowq_cancel(e, &h[i].req);
				break;
			case 3: /* release */
				if (used[i] && h[i].seen == FLOWQ_DISPATCHED &&
				    !released[i]) {
					cr_assert_eq(flowq_release(e, &h[i].req), 0);
					released[i] = true;
				}
				break;
			case 4:
			case 5: { /* poll */
				unsigned before = clk_dispatched;
				fx_poll_all(e);
				if (frozen) {
					frozen_polls++;
					frozen_dispatches += clk_dispatched - before;
				}
				break;
			}
			case 6: /* clock: freeze for a while, or run on */
				if (frozen)
					frozen--;
				else if ((r >> 20) % 4 == 0)
					frozen = 1 + (int)((r >> 24) % 200);
				else
					clk_set(fx_clock(NULL) +
						(int64_t)((r >> 24) % MS));
				break;
			default: /* clock: jump, forward or back, up to 100 ms */
				if (frozen)
					break;
				if ((r >> 20) % 2)
					clk_set(fx_clock(NULL) +
						(int64_t)((r >> 24) % (100 * MS)));
				else
					clk_set(fx_clock(NULL) -
						(int64_t)((r >> 24) % (100 * MS)));
				break;
			}
		}
		/* Drain: release what is out, let the clock run until all done. */
		quiesce(e, h, used, released, N, MS, 1000);
		clk_set(fx_clock(NULL));
		for (unsigned i = 0; i < N; i++)
			if (used[i])
				cr_assert_eq(h[i].completions, 1, "seed %lu: request %u",
					     (unsigned long)seed, i);
		cr_assert_gt(frozen_dispatches, 0,
			     "seed %lu: frozen time starved the queue",
			     (unsigned long)seed);
		struct flowq_stats st;
		flowq_stats_engine(e, &st);
		uint64_t out = 0;
		for (unsigned o = FLOWQ_DISPATCHED; o < FLOWQ_OUTCOME_COUNT; o++)
			if (!flowq_outcome_is_rejected(o))
				out += st.outcomes[o];
		cr_assert_eq(out, clk_checked, "conservation");
		clk_check_band(0, &st, NULL);
		flowq_stats_foreach_band(e, clk_check_band, NULL);
		flowq_stats_foreach_flow(e, clk_check_flow, NULL);
		cr_assert_gt(accepted, 1000);
		flowq_engine_destroy(e);
	}
}

/* ---- oom ---- */

struct oom_run {
	struct test_count_alloc ca;
	struct flowq_engine *e;
	/* The failure mode of the life after create (count_alloc.h). */
	unsigned long every;
	uint32_t per_million;
	unsigned enomem, creates_failed, accepted;
};

/* @p rc from a call that may fail only for lack of memory. */
static void
oom_rc(struct oom_run *o, int rc, const char *what)
{
	cr_assert(rc == 0 || rc == -ENOMEM, "%s returned %d", what, rc);
	o->enomem += rc == -ENOMEM;
}

static int
oom_band(int32_t prio, const struct flowq_stats *st, void *ctx)
{
	(void)prio;
	(void)st;
	(void)ctx;
	return 0;
}

/* One engine life under the allocator's failure mode: create, a port,
 * submits on just-in-time flows and bands (1 ms GC), handles, cancels,
 * releases, polls, statistics, destroy. */
static void
oom_life(struct oom_run *o, uint64_t seed)
{
	enum { N = 64, STEPS = 3000 };
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.saturation.max_inflight = 8;
	c.max_requests = 32;
	c.flow_gc_timeout_ns = MS;
	c.allocator = &o->ca.a;
	/* Create fails at each of its allocations in turn, then the life
	 * runs with the failure mode. */
	o->ca.every = o->every;
	o->ca.per_million = o->per_million;
	unsigned leaky;
	int rc = test_count_alloc_create(&o->ca, &c, &o->e, &o->creates_failed, &leaky);
	cr_assert_eq(rc, 0, "create: %d", rc);
	cr_assert_eq(leaky, 0, "%u failed creates left blocks", leaky);
	o->enomem += o->creates_failed;
	struct flowq_port *port;
	while ((rc = flowq_port_create(o->e, &port)) != 0)
		oom_rc(o, rc, "port_create");
	static struct fx_req h[N];
	static bool used[N], released[N];
	memset(h, 0, sizeof(h));
	memset(used, 0, sizeof(used));
	memset(released, 0, sizeof(released));
	uint64_t rng = seed;
	unsigned accepted = 0;
	for (int step = 0; step < STEPS; step++) {
		uint64_t r = test_rng_next(&rng);
		unsigned i = (unsigned)(r % N);
		char id[8];
		snprintf(id, sizeof(id), "o%u", (unsigned)((r >> 8) % 24));
		int32_t prio = (int32_t)((r >> 16) % 6);
		switch ((r >> 24) % 8) {
		case 0:
		case 1:
		case 2: { /* submit, by id or through a handle */
			if (slot_busy(h, used, released, i))
				break;
			struct flowq_flow *f = NULL;
			if ((r >> 32) % 4 == 0) {
				rc = flowq_flow_get(o->e, id, (uint32_t)strlen(id), prio,
						    &f);
				oom_rc(o, rc, "flow_get");
			}
			fx_req_init(&h[i], id, prio, 1);
			h[i].req.flow = f;
			if ((r >> 34) % 2)
				h[i].req.ttl_ns = MS + (int64_t)((r >> 36) % (5 * MS));
			rc = flowq_submit(o->e, &h[i].req);
			if (rc == 0) {
				used[i] = true;
				released[i] = false;
				accepted++;
			} else {
				used[i] = false;
				cr_assert(rc == -ENOMEM || rc == -ENOSPC, "submit %d",
					  rc);
				cr_assert(flowq_outcome_is_rejected(
					flowq_req_outcome(&h[i].req)));
				if (rc == -ENOMEM) {
					o->enomem++;
					cr_assert_eq(flowq_req_cause(&h[i].req),
						     FLOWQ_CAUSE_NO_MEMORY);
				}
			}
			if (f)
				flowq_flow_put(o->e, f);
			break;
		}
		case 3:
			if (used[i])
				(void)flowq_cancel(o->e, &h[i].req);
			break;
		case 4:
			if (used[i] && h[i].seen == FLOWQ_DISPATCHED && !released[i]) {
				cr_assert_eq(flowq_release(o->e, &h[i].req), 0);
				released[i] = true;
			}
			break;
		case 5:
			oom_rc(o, flowq_stats_foreach_band(o->e, oom_band, NULL),
			       "foreach_band");
			break;
		default:
			fx_advance((int64_t)((r >> 40) % (2 * MS)));
			fx_poll_all(o->e);
			break;
		}
	}
	/* Quiesce: release, poll until every accepted request is done. */
	quiesce(o->e, h, used, released, N, MS, 100);
	unsigned done = 0;
	for (unsigned i = 0; i < N; i++)
		if (used[i]) {
			cr_assert_eq(h[i].completions, 1, "request %u: %d outcomes", i,
				     h[i].completions);
			done++;
		}
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(o->e, &st), 0);
	cr_assert_eq(st.queued, 0);
	o->accepted = accepted;
	flowq_port_destroy(port);
	flowq_engine_destroy(o->e);
	cr_assert_eq(o->ca.blocks, 0, "%ld blocks leaked", (long)o->ca.blocks);
	cr_assert_eq(o->ca.outstanding, 0);
	cr_assert_eq(o->ca.bad_frees, 0);
}

Test(oom, every_kth_allocation_fails)
{
	unsigned long failed = 0, enomem = 0;
	for (unsigned long k = 2; k <= 9; k++) {
		struct oom_run o;
		memset(&o, 0, sizeof(o));
		test_count_alloc_init(&o.ca);
		o.every = k;
		oom_life(&o, k);
		cr_assert_gt(o.creates_failed, 3);
		/* A new band takes several allocations in a row: with every
		 * second or third failing, few are ever made. */
		if (k >= 5)
			cr_assert_gt(o.accepted, 100, "k=%lu: %u accepted", k,
				     o.accepted);
		cr_assert_gt(o.ca.failed, 0, "k=%lu: nothing failed", k);
		failed += o.ca.failed;
		enomem += o.enomem;
	}
	cr_assert_gt(enomem, 0);
	cr_log_info(
		"oom every k=2..9: %lu allocations failed, %lu calls returned -ENOMEM",
		failed, enomem);
}

Test(oom, random_allocations_fail)
{
	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct oom_run o;
		memset(&o, 0, sizeof(o));
		test_count_alloc_init(&o.ca);
		test_count_alloc_seed(&o.ca, seed);
		o.per_million = 100000; /* 10 % */
		oom_life(&o, seed * 31);
		cr_assert_gt(o.accepted, 100);
		cr_assert_gt(o.ca.failed, 0, "seed %lu: nothing failed",
			     (unsigned long)seed);
	}
}

/* Destroy while no allocation succeeds: requests whose flow the dispatcher
 * could not attach yet (no memory for the fairness policy) are still
 * evicted, once each, and destroy returns. */
Test(oom, destroy_under_total_failure_evicts_everything, .timeout = 30)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.default_band.fairness = "round_robin";
	c.allocator = &ca.a;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h[4];
	for (int i = 0; i < 4; i++) {
		char id[4] = {'d', (char)('0' + i), 0};
		fx_req_init(&h[i], id, 0, 1);
		cr_assert_eq(flowq_submit(e, &h[i].req), 0);
	}
	test_count_alloc_budget(&ca, 0); /* nothing more succeeds */
	fx_poll_all(e);
	flowq_engine_destroy(e);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(h[i].completions, 1, "request %d", i);
		cr_assert(h[i].seen == FLOWQ_DISPATCHED ||
			  h[i].seen == FLOWQ_EVICTED_OTHER);
	}
	cr_assert_eq(ca.blocks, 0);
}

/* The shard's TTL heap cannot grow (its first slot array fails to
 * allocate), so two requests taken in then are not on the timer: the
 * expiry pass cannot see them, and the dispatch loop's own check of the
 * head evicts them when they come up, past their TTL or deadline, with the
 * gate open, rather than dispatch them late (core/dispatch.c dispatch();
 * ttl_add()). */
Test(oom, requests_off_the_ttl_heap_are_evicted_not_dispatched_late)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req w, a, d, x;

	/* w holds the only gate slot; flow "a" is attached (no TTL so far:
	 * the heap has no slots yet). */
	fx_req_init(&w, "a", 0, 1);
	cr_assert_eq(flowq_submit(e, &w.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(w.seen, FLOWQ_DISPATCHED);
	fx_req_init(&a, "a", 0, 1);
	a.req.ttl_ns = 1000;
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	fx_req_init(&d, "a", 0, 1);
	d.req.deadline_ns = fx_clock(NULL) + 500;
	cr_assert_eq(flowq_submit(e, &d.req), 0);

	unsigned long failed = ca.failed;
	test_count_alloc_budget(&ca, 0);
	cr_assert_eq(fx_poll_all(e), 0, "taken in, held at the gate");
	atomic_store(&ca.fail_after, ~0ul);
	cr_assert_gt(ca.failed, failed, "the heap's allocation failed");
	cr_assert_eq(a.completions + d.completions, 0);

	int64_t next = 0;
	cr_assert_eq(flowq_release(e, &w.req), 0);
	fx_advance(2000);
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 2);
	cr_assert_eq(a.completions, 1);
	cr_assert_eq(a.seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(a.cause, FLOWQ_CAUSE_TTL_EXPIRED);
	cr_assert_eq(d.completions, 1);
	cr_assert_eq(d.seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(d.cause, FLOWQ_CAUSE_DEADLINE_PASSED);
	cr_assert_lt(a.order, d.order, "in the flow's order");

	/* The gate slot was not taken for them: a new request dispatches. */
	fx_req_init(&x, "a", 0, 1);
	x.req.ttl_ns = 1000;
	cr_assert_eq(flowq_submit(e, &x.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(x.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &x.req), 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2);
	cr_assert_eq(st.causes[FLOWQ_EVICTED_TTL][FLOWQ_CAUSE_TTL_EXPIRED], 1);
	cr_assert_eq(st.causes[FLOWQ_EVICTED_TTL][FLOWQ_CAUSE_DEADLINE_PASSED], 1);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0);
	cr_assert_eq(ca.bad_frees, 0);
}
