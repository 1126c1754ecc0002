/*
 * Displacement (flowq.h struct flowq_config::displacement; dispatch.c
 * "displacement"): a submit that finds the global limit full sheds queued
 * requests of a strictly lower band (EVICTED_DISPLACED), chosen by the
 * policy, never of its own band or above; the global limit holds again once
 * the victims' dispatcher has run; victims that leave on their own (a
 * cancel) leave a debt that is repaid exactly. Polled mode, manual clock.
 * The contract test (every_registered_policy_keeps_the_contract) iterates
 * the registry, so a displacement policy a host registers is covered
 * without editing this suite; the others pin each built-in's choice.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "engine.h"
#include "engine_fixture.h"

#define NLOW 4

/* Global in use (exact: single-threaded). */
static uint64_t
global_in_use(struct flowq_engine *e, uint64_t *r_bytes)
{
	uint64_t req, bytes;
	flowq__cap_in_use(&e->global, &req, &bytes);
	if (r_bytes)
		*r_bytes = bytes;
	return req;
}

/* An engine whose global limit is full of band-0 requests: max_inflight 1
 * holds the gate after the first dispatch (never released here), then
 * NLOW band-0 requests fill max_requests = NLOW. low[0] is the dispatched
 * one; low[1..NLOW] are queued, taken in in that order. */
static struct flowq_engine *
full_engine(const char *policy, unsigned shards, struct fx_req low[NLOW + 1])
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = shards;
	c.max_requests = NLOW;
	c.saturation.max_inflight = 1;
	c.displacement = policy;
	struct flowq_engine *e = fx_make(&c);
	char id[16];
	for (int i = 0; i <= NLOW; i++) {
		snprintf(id, sizeof(id), "low%d", i);
		fx_req_init(&low[i], i == 0 ? "first" : id, 0, 100);
		cr_assert_eq(flowq_submit(e, &low[i].req), 0, "low[%d]", i);
		fx_advance(1000);
		fx_poll_all(e);
	}
	cr_assert_eq(low[0].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(global_in_use(e, NULL), NLOW);
	return e;
}

static void
drain_and_destroy(struct flowq_engine *e, struct fx_req *low)
{
	flowq_release(e, &low[0].req);
	flowq_engine_destroy(e);
}

Test(displace, newest_sheds_the_newest_lower_band_request)
{
	struct fx_req low[NLOW + 1], hi;
	struct flowq_engine *e = full_engine("lowest_band_newest", 1, low);
	fx_req_init(&hi, "hi", 5, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), 0, "admitted by displacement");
	cr_assert_eq(low[NLOW].completions, 0, "shed by the dispatcher, not the submitter");
	fx_poll_all(e);
	cr_assert_eq(low[NLOW].completions, 1);
	cr_assert_eq(low[NLOW].seen, FLOWQ_EVICTED_DISPLACED);
	cr_assert_eq(low[NLOW].cause, FLOWQ_CAUSE_DISPLACED);
	for (int i = 1; i < NLOW; i++)
		cr_assert_eq(low[i].completions, 0, "low[%d] untouched", i);
	cr_assert_eq(hi.completions, 0, "queued behind the held gate");
	cr_assert_eq(global_in_use(e, NULL), NLOW, "the limit holds again");

	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.outcomes[FLOWQ_EVICTED_DISPLACED], 1);
	cr_assert_eq(st.causes[FLOWQ_EVICTED_DISPLACED][FLOWQ_CAUSE_DISPLACED], 1);

	/* Strict priority: the gate goes to the band-5 request first. */
	flowq_release(e, &low[0].req);
	fx_poll_all(e);
	cr_assert_eq(hi.seen, FLOWQ_DISPATCHED);
	flowq_release(e, &hi.req);
	flowq_engine_destroy(e);
	for (int i = 1; i < NLOW; i++)
		cr_assert_eq(low[i].completions, 1, "every request has one outcome");
}

Test(displace, oldest_sheds_the_oldest_lower_band_request)
{
	struct fx_req low[NLOW + 1], hi;
	struct flowq_engine *e = full_engine("lowest_band_oldest", 1, low);
	fx_req_init(&hi, "hi", 1, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	fx_poll_all(e);
	cr_assert_eq(low[1].seen, FLOWQ_EVICTED_DISPLACED);
	for (int i = 2; i <= NLOW; i++)
		cr_assert_eq(low[i].completions, 0);
	drain_and_destroy(e, low);
}

Test(displace, never_the_same_or_a_higher_band)
{
	struct fx_req low[NLOW + 1], same, below;
	struct flowq_engine *e = full_engine("lowest_band_newest", 1, low);
	fx_req_init(&same, "same", 0, 100);
	cr_assert_eq(flowq_submit(e, &same.req), -ENOSPC);
	cr_assert_eq(flowq_req_outcome(&same.req), FLOWQ_REJECTED_CAPACITY);
	cr_assert_eq(flowq_req_cause(&same.req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	fx_req_init(&below, "below", -3, 100);
	cr_assert_eq(flowq_submit(e, &below.req), -ENOSPC);
	fx_poll_all(e);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(low[i].completions, 0, "nothing shed");
	drain_and_destroy(e, low);
}

Test(displace, none_rejects_the_newcomer)
{
	struct fx_req low[NLOW + 1], hi;
	struct flowq_engine *e = full_engine("none", 1, low);
	cr_assert_null(e->displace, "\"none\" keeps no displacement state");
	fx_req_init(&hi, "hi", 9, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), -ENOSPC);
	cr_assert_eq(flowq_req_cause(&hi.req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	fx_poll_all(e);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(low[i].completions, 0);
	drain_and_destroy(e, low);
}

Test(displace, one_ticket_per_victim)
{
	/* NLOW newcomers shed the NLOW queued requests; the next is
	 * rejected: tickets never outnumber what was published. */
	struct fx_req low[NLOW + 1], hi[NLOW + 1];
	struct flowq_engine *e = full_engine("lowest_band_newest", 1, low);
	char id[16];
	for (int i = 0; i < NLOW; i++) {
		snprintf(id, sizeof(id), "hi%d", i);
		fx_req_init(&hi[i], id, 2, 100);
		cr_assert_eq(flowq_submit(e, &hi[i].req), 0, "hi[%d]", i);
	}
	fx_req_init(&hi[NLOW], "hiX", 2, 100);
	cr_assert_eq(flowq_submit(e, &hi[NLOW].req), -ENOSPC, "nothing left to shed");
	fx_poll_all(e);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(low[i].seen, FLOWQ_EVICTED_DISPLACED, "low[%d]", i);
	cr_assert_eq(global_in_use(e, NULL), NLOW);
	drain_and_destroy(e, low);
}

Test(displace, bytes_shed_until_the_newcomer_fits)
{
	struct flowq_config c = fx_polled_cfg();
	c.max_bytes = 1000;
	c.saturation.max_inflight = 1;
	c.displacement = "lowest_band_newest";
	struct flowq_engine *e = fx_make(&c);
	struct fx_req first, low[10], hi;
	fx_req_init(&first, "first", 0, 0);
	cr_assert_eq(flowq_submit(e, &first.req), 0);
	fx_poll_all(e);
	for (int i = 0; i < 10; i++) {
		fx_req_init(&low[i], "low", 0, 100);
		cr_assert_eq(flowq_submit(e, &low[i].req), 0);
	}
	fx_poll_all(e);
	uint64_t bytes;
	global_in_use(e, &bytes);
	cr_assert_eq(bytes, 1000);
	fx_req_init(&hi, "hi", 1, 250);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	fx_poll_all(e);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(low[i].completions, i >= 7 ? 1 : 0, "low[%d]: 3 x 100 B cover 250 B",
			     i);
	global_in_use(e, &bytes);
	cr_assert_eq(bytes, 950, "700 B of band 0 + 250 B");
	/* 50 B are free now: one more 60 B band-1 request needs a victim. */
	struct fx_req hi2;
	fx_req_init(&hi2, "hi", 1, 60);
	cr_assert_eq(flowq_submit(e, &hi2.req), 0);
	fx_poll_all(e);
	cr_assert_eq(low[6].seen, FLOWQ_EVICTED_DISPLACED);
	global_in_use(e, &bytes);
	cr_assert_leq(bytes, 1000);
	flowq_release(e, &first.req);
	flowq_engine_destroy(e);
}

Test(displace, victims_that_leave_on_their_own_leave_an_exact_debt)
{
	/* The ticket is taken, then every band-0 request is cancelled before
	 * the dispatcher runs: nothing is left to shed; the debt is repaid
	 * from their departures, and the limit is exact afterwards. */
	struct fx_req low[NLOW + 1], hi, more[NLOW];
	struct flowq_engine *e = full_engine("lowest_band_oldest", 1, low);
	fx_req_init(&hi, "hi", 1, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(flowq_cancel(e, &low[i].req), 0);
	fx_poll_all(e);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(low[i].seen, FLOWQ_EVICTED_CANCELLED, "low[%d]", i);
	cr_assert_eq(global_in_use(e, NULL), 1, "only the newcomer holds capacity");
	cr_assert_eq(e->shards[0].debt_req, 0);
	char id[16];
	for (int i = 0; i < NLOW - 1; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		fx_req_init(&more[i], id, 0, 100);
		cr_assert_eq(flowq_submit(e, &more[i].req), 0, "more[%d]", i);
	}
	fx_req_init(&more[NLOW - 1], "mX", 0, 100);
	cr_assert_eq(flowq_submit(e, &more[NLOW - 1].req), -ENOSPC, "exactly full");
	drain_and_destroy(e, low);
}

Test(displace, victims_on_another_shard)
{
	/* Two shards: the band-0 flows spread over both; a band-1 newcomer
	 * sheds one request wherever the band has one, and conservation
	 * holds. */
	struct fx_req low[NLOW + 1], hi;
	struct flowq_engine *e = full_engine("lowest_band_newest", 2, low);
	fx_req_init(&hi, "hi", 1, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	fx_poll_all(e);
	int shed = 0;
	for (int i = 1; i <= NLOW; i++)
		shed += low[i].seen == FLOWQ_EVICTED_DISPLACED;
	cr_assert_eq(shed, 1);
	cr_assert_eq(global_in_use(e, NULL), NLOW);
	flowq_release(e, &low[0].req);
	flowq_engine_destroy(e);
	for (int i = 1; i <= NLOW; i++)
		cr_assert_eq(low[i].completions, 1);
	cr_assert_eq(hi.completions, 1);
}

Test(displace, config_names_the_policy)
{
	struct flowq_config c = fx_polled_cfg();
	char err[160];
	c.displacement = "lowest_band_sideways";
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "displacement: unknown displacement policy \"lowest_band_sideways\"");
	c.displacement = NULL;
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "displacement: is NULL");
	for (size_t i = 0; flowq_displacement_at(i); i++) {
		c.displacement = flowq_displacement_at(i)->desc.name;
		cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_not_null(flowq_displacement_find("none"));
	cr_assert_null(flowq_displacement_find("nonesuch"));
}

Test(displace, pending_bound_holds_until_the_dispatcher_sheds)
{
	/* displacement_max_pending = 1: a second newcomer before the
	 * dispatcher's round is rejected; after the round it displaces. */
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = NLOW;
	c.saturation.max_inflight = 1;
	c.displacement = "lowest_band_newest";
	c.displacement_max_pending = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req low[NLOW + 1], a, b, b2;
	char id[16];
	for (int i = 0; i <= NLOW; i++) {
		snprintf(id, sizeof(id), "low%d", i);
		fx_req_init(&low[i], id, 0, 1);
		cr_assert_eq(flowq_submit(e, &low[i].req), 0);
		fx_poll_all(e);
	}
	fx_req_init(&a, "a", 1, 1);
	fx_req_init(&b, "b", 1, 1);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	cr_assert_eq(flowq_submit(e, &b.req), -ENOSPC, "one pending displacement at most");
	cr_assert_eq(flowq_req_cause(&b.req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	cr_assert_leq(global_in_use(e, NULL), NLOW, "a holds no reservation of its own");
	fx_poll_all(e);
	cr_assert_eq(atomic_load(&e->disp_pending), 0, "repaid by the victim's departure");
	fx_req_init(&b2, "b", 1, 1);
	cr_assert_eq(flowq_submit(e, &b2.req), 0);
	fx_poll_all(e);
	cr_assert_eq(low[NLOW].seen, FLOWQ_EVICTED_DISPLACED);
	cr_assert_eq(low[NLOW - 1].seen, FLOWQ_EVICTED_DISPLACED);
	drain_and_destroy(e, low);
}

Test(displace, config_pending_bound_range)
{
	struct flowq_config c = fx_polled_cfg();
	char err[160];
	cr_assert_eq(c.displacement_max_pending, 64);
	c.displacement_max_pending = 0;
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "displacement_max_pending: 0 is not in [1, FLOWQ_LIMIT_MAX]");
}

/* most_over_share: the flow with the most queued bytes per unit of weight
 * pays, its newest request first. */
static void
over_share_case(uint32_t weight_a, int expect_flow_a)
{
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = 8;
	c.saturation.max_inflight = 1;
	c.displacement = "most_over_share";
	struct flowq_engine *e = fx_make(&c);
	struct fx_req first, a[5], b[3], hi;
	fx_req_init(&first, "first", 0, 1);
	cr_assert_eq(flowq_submit(e, &first.req), 0);
	fx_poll_all(e);
	struct flowq_flow *fa = NULL;
	cr_assert_eq(flowq_flow_get(e, "a", 1, 0, &fa), 0);
	cr_assert_eq(flowq_flow_set_weight(fa, weight_a), 0);
	for (int i = 0; i < 5; i++) {
		fx_req_init(&a[i], "a", 0, 100);
		cr_assert_eq(flowq_submit(e, &a[i].req), 0);
	}
	for (int i = 0; i < 3; i++) {
		fx_req_init(&b[i], "b", 0, 100);
		cr_assert_eq(flowq_submit(e, &b[i].req), 0);
	}
	fx_poll_all(e);
	fx_req_init(&hi, "hi", 1, 100);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	fx_poll_all(e);
	if (expect_flow_a) {
		cr_assert_eq(a[4].seen, FLOWQ_EVICTED_DISPLACED, "a's newest");
		for (int i = 0; i < 4; i++)
			cr_assert_eq(a[i].completions, 0);
		for (int i = 0; i < 3; i++)
			cr_assert_eq(b[i].completions, 0);
	} else {
		cr_assert_eq(b[2].seen, FLOWQ_EVICTED_DISPLACED, "b's newest");
		for (int i = 0; i < 5; i++)
			cr_assert_eq(a[i].completions, 0);
		for (int i = 0; i < 2; i++)
			cr_assert_eq(b[i].completions, 0);
	}
	flowq_flow_put(e, fa);
	flowq_release(e, &first.req);
	flowq_engine_destroy(e);
}

Test(displace, most_over_share_sheds_from_the_heaviest_flow)
{
	over_share_case(1, 1); /* a: 500 B per unit of weight, b: 300 */
	over_share_case(4, 0); /* a: 125 B per unit of weight, b: 300 */
}

/* The generic contract, over every registered displacement policy (a new
 * policy is covered without editing this): "none" sheds nothing; any other
 * sheds exactly what the newcomer needs, only from the lower band, every
 * victim once, and the global limit holds after the round. */
Test(displace, every_registered_policy_keeps_the_contract)
{
	for (size_t i = 0; flowq_displacement_at(i); i++) {
		const char *name = flowq_displacement_at(i)->desc.name;
		bool none = strcmp(name, "none") == 0;
		struct fx_req low[NLOW + 1], same, hi;
		struct flowq_engine *e = full_engine(name, 1 + (unsigned)(i % 2), low);
		fx_req_init(&same, "same", 0, 100);
		cr_assert_eq(flowq_submit(e, &same.req), -ENOSPC, "%s: same band", name);
		fx_req_init(&hi, "hi", 2, 100);
		cr_assert_eq(flowq_submit(e, &hi.req), none ? -ENOSPC : 0, "%s", name);
		fx_poll_all(e);
		int shed = 0;
		for (int k = 1; k <= NLOW; k++) {
			cr_assert_leq(low[k].completions, 1, "%s", name);
			shed += low[k].seen == FLOWQ_EVICTED_DISPLACED;
		}
		cr_assert_eq(shed, none ? 0 : 1, "%s: shed %d", name, shed);
		cr_assert_leq(global_in_use(e, NULL), NLOW, "%s", name);
		flowq_release(e, &low[0].req);
		flowq_engine_destroy(e);
		for (int k = 1; k <= NLOW; k++)
			cr_assert_eq(low[k].completions, 1, "%s: one outcome each", name);
		if (!none)
			cr_assert_eq(hi.completions, 1, "%s", name);
	}
}

/* A displacement policy's flow_attach that fails (-ENOMEM) leaves the flow
 * pending and its request queued; the dispatcher attaches it on a later
 * round once memory is back, and nothing leaks. round_robin allocates
 * nothing at attach, so most_over_share's heap room is what fails. */
Test(displace, flow_attach_enomem_is_retried)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	c.displacement = "most_over_share";
	c.default_band.fairness = "round_robin";
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *f = NULL;
	cr_assert_eq(flowq_flow_get(e, "t", 1, 0, &f), 0);
	struct fx_req r;
	fx_req_init(&r, "t", 0, 10);
	r.req.flow = f;
	cr_assert_eq(flowq_submit(e, &r.req), 0);
	test_count_alloc_budget(&ca, 0);
	fx_poll_all(e);
	fx_poll_all(e);
	cr_assert_eq(r.completions, 0, "not adopted without memory: still queued");
	ca.fail_after = ~0ul;
	fx_poll_all(e);
	cr_assert_eq(r.completions, 1);
	cr_assert_eq(r.seen, FLOWQ_DISPATCHED);
	flowq_release(e, &r.req);
	flowq_flow_put(e, f);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0, "nothing leaked");
}

/* ---- the ops themselves, as a host calling them through the registry ---- */

/*
 * The engine never calls the ops of "none" (it keeps no displacement state
 * for it), but a host may find any registered policy and drive it: so the
 * ops contract of policy.h is checked here for every registered policy,
 * straight through its ops with a fake band (no engine). Three flows of
 * weights 1, 2 and 1 hold OPS_NREQ requests, one of them of 2^64 - 1
 * bytes (beyond the 2^62 cap most_over_share puts on bytes per unit of
 * weight: uncapped, its negated key would wrap to +1 and its flow would be
 * shed last, not first); two more arrive after the first sheds. Then: victim() is NULL iff the
 * policy sheds nothing ("none": always NULL, even with requests queued),
 * else a queued request of the band; victim() changes nothing (asked twice,
 * the same answer); shedding each victim in turn (left()) empties the band,
 * every request once; band_fini gives back everything band_init and
 * flow_attach took; and a flow_attach that fails is -ENOMEM and leaves the
 * band working. The first victim of each built-in is pinned too.
 */
#define OPS_NFLOWS 3
#define OPS_NREQ   8
#define OPS_LATE   2

struct ops_req {
	struct flowq_req req;
	int flow;
	bool queued;
};

struct ops_case {
	const struct flowq_displacement_ops *ops;
	struct flowq_policy_env env;
	void *band;
	void *flow[OPS_NFLOWS + 1];
	struct ops_req r[OPS_NREQ + OPS_LATE];
	int nreq;
};

static const uint32_t ops_weight[OPS_NFLOWS] = {1, 2, 1};

static void *
ops_state(size_t size)
{
	/* A zero-size state still gets a distinct pointer. */
	void *p = aligned_alloc(FLOWQ_CACHE_LINE,
				FLOWQ_CACHE_LINE * (1 + size / FLOWQ_CACHE_LINE));
	cr_assert_not_null(p);
	memset(p, 0, FLOWQ_CACHE_LINE * (1 + size / FLOWQ_CACHE_LINE));
	return p;
}

static void
ops_arrive(struct ops_case *c, int flow, uint64_t bytes)
{
	struct ops_req *r = &c->r[c->nreq++];
	memset(r, 0, sizeof(*r));
	r->req.bytes = bytes;
	r->flow = flow;
	r->queued = true;
	c->ops->arrived(c->band, c->flow[flow], &r->req, ops_weight[flow]);
}

static int
ops_queued(const struct ops_case *c)
{
	int n = 0;
	for (int i = 0; i < c->nreq; i++)
		n += c->r[i].queued;
	return n;
}

/* The queued request that is @p req, or NULL. */
static struct ops_req *
ops_find(struct ops_case *c, const struct flowq_req *req)
{
	for (int i = 0; i < c->nreq; i++) {
		if (&c->r[i].req == req)
			return c->r[i].queued ? &c->r[i] : NULL;
	}
	return NULL;
}

/* Shed one victim, checking it; @return its index, or -1 if none. */
static int
ops_shed_one(struct ops_case *c)
{
	const char *name = c->ops->desc.name;
	bool none = strcmp(name, "none") == 0;
	struct flowq_req *v = c->ops->victim(c->band);
	cr_assert_eq(c->ops->victim(c->band), v, "%s: victim() changed nothing", name);
	if (none || ops_queued(c) == 0) {
		cr_assert_null(v, "%s: sheds nothing (%d queued)", name, ops_queued(c));
		return -1;
	}
	cr_assert_not_null(v, "%s: %d queued, no victim", name, ops_queued(c));
	struct ops_req *r = ops_find(c, v);
	cr_assert_not_null(r, "%s: the victim is a queued request of the band", name);
	r->queued = false;
	c->ops->left(c->band, c->flow[r->flow], v, ops_weight[r->flow]);
	return (int)(r - c->r);
}

Test(displace, every_registered_policy_keeps_the_ops_contract)
{
	for (size_t i = 0; flowq_displacement_at(i); i++) {
		struct test_count_alloc ca;
		struct ops_case c = {.ops = flowq_displacement_at(i)};
		const char *name = c.ops->desc.name;
		bool none = strcmp(name, "none") == 0;
		test_count_alloc_init(&ca);
		c.env = (struct flowq_policy_env){
			.alloc = &ca.a, .priority = 0, .quantum = 1500};
		c.band = ops_state(c.ops->desc.band_state_size);
		cr_assert_eq(c.ops->band_init(c.band, &c.env), 0, "%s", name);
		/* A flow whose attach fails, first (when the band's state
		 * must grow): the band keeps working. */
		c.flow[OPS_NFLOWS] = ops_state(c.ops->desc.flow_state_size);
		if (c.ops->flow_attach) {
			test_count_alloc_budget(&ca, 0);
			int rc = c.ops->flow_attach(c.band, c.flow[OPS_NFLOWS], &c.env);
			cr_assert(rc == 0 || rc == -ENOMEM, "%s: attach %d", name, rc);
			if (strcmp(name, "most_over_share") == 0) /* its heap's room */
				cr_assert_eq(rc, -ENOMEM);
			ca.fail_after = ~0ul;
			if (rc == 0 && c.ops->flow_detach)
				c.ops->flow_detach(c.band, c.flow[OPS_NFLOWS], &c.env);
		}
		for (int f = 0; f < OPS_NFLOWS; f++) {
			c.flow[f] = ops_state(c.ops->desc.flow_state_size);
			if (c.ops->flow_attach)
				cr_assert_eq(
					c.ops->flow_attach(c.band, c.flow[f], &c.env), 0,
					"%s", name);
		}
		/* Arrivals: flow 1 (weight 2) has the most requests, flow 2 one
		 * of 2^64 - 1 bytes, the last to arrive before the sheds. */
		static const int flow_of[OPS_NREQ] = {0, 1, 0, 1, 1, 0, 1, 2};
		for (int k = 0; k < OPS_NREQ; k++)
			ops_arrive(&c, flow_of[k],
				   flow_of[k] == 2 ? UINT64_MAX
						   : 100 * (uint64_t)(k + 1));
		int first = ops_shed_one(&c);
		if (strcmp(name, "none") == 0)
			cr_assert_eq(first, -1);
		else if (strcmp(name, "lowest_band_oldest") == 0)
			cr_assert_eq(first, 0, "%s: the first arrival", name);
		else if (strcmp(name, "lowest_band_newest") == 0 ||
			 strcmp(name, "most_over_share") == 0)
			/* The newest; for most_over_share also the heaviest
			 * flow's (2^64 - 1 bytes, capped at 2^62 per unit of
			 * weight: still the most). */
			cr_assert_eq(first, OPS_NREQ - 1, "%s: %d", name, first);
		int shed = first >= 0;
		for (int k = 0; k < 2; k++)
			shed += ops_shed_one(&c) >= 0;
		for (int k = 0; k < OPS_LATE; k++)
			ops_arrive(&c, k, 1);
		while (ops_shed_one(&c) >= 0)
			shed++;
		cr_assert_eq(shed, none ? 0 : OPS_NREQ + OPS_LATE, "%s: shed %d", name,
			     shed);
		cr_assert_eq(ops_queued(&c), none ? OPS_NREQ + OPS_LATE : 0, "%s", name);
		/* "none": what is queued leaves by other means (dispatch). */
		for (int k = 0; k < c.nreq; k++) {
			if (!c.r[k].queued)
				continue;
			c.r[k].queued = false;
			c.ops->left(c.band, c.flow[c.r[k].flow], &c.r[k].req,
				    ops_weight[c.r[k].flow]);
			cr_assert_null(c.ops->victim(c.band), "%s", name);
		}
		if (c.ops->flow_detach) {
			for (int f = 0; f < OPS_NFLOWS; f++)
				c.ops->flow_detach(c.band, c.flow[f], &c.env);
		}
		c.ops->band_fini(c.band, &c.env);
		cr_assert_eq(ca.blocks, 0, "%s: band_fini gave back everything", name);
		for (int f = 0; f <= OPS_NFLOWS; f++)
			free(c.flow[f]);
		free(c.band);
	}
}
