/*
 * Conformance: every registered fairness policy against the contract of
 * policy.h, and each against the fairness it claims.
 *
 * The suite iterates flowq_fairness_at(), so a policy added to the built-in
 * array, or registered by a host before the suite runs, is tested without
 * editing this file (a host-registered one, "conf_stack", is registered
 * here to show it). Each policy is driven directly through its ops by a
 * fake band (struct band below: no engine, no ordering policy; each flow's
 * queue is a deque of (bytes, key) requests kept by the test), which
 * maintains struct flowq_policy_flow exactly as policy.h says: queued,
 * head_bytes and head_key describe the flow before every op;
 * flow_backlogged when a flow goes from empty to non-empty, update(f, true,
 * bytes) after a dispatch, update(f, false, 0) after an eviction or a push
 * that changed the head; the weight changes only while the flow is empty
 * (as the engine does: it reads the weight when the flow becomes
 * backlogged).
 *
 * The generic contract, for every policy:
 *  - pick() returns NULL iff no attached flow is backlogged, and otherwise
 *    an attached, backlogged flow of this band (never an empty one);
 *  - pick() is idempotent: asked again without an update in between, it
 *    returns the same flow (the dispatcher may pick and then not dispatch);
 *  - no flow is lost or duplicated: every request pushed is dispatched or
 *    evicted exactly once, a drain empties the band, and a flow that
 *    emptied is never offered again until it is backlogged again;
 *  - attach/detach churn, flows going idle and backlogged again, weights
 *    from 1 to 65535 changed while idle, zero-byte requests, heads changed
 *    by evictions and by pushes at the front, request sizes from 0 to 2^62
 *    bytes, quanta from 1 byte to 64 KB;
 *  - the engine's look-ahead hook (flowq_policy_env::prefetch), for a policy
 *    that calls it, is given only attached flows of the band with a request
 *    queued, at stage 0 or 1 (band_hint());
 *  - flow_backlogged, pick and update never allocate or free (policy.h);
 *    band_fini gives back everything; an allocation failure in flow_attach
 *    is -ENOMEM and leaves the band working.
 *
 * Claimed properties (struct claim, a table keyed by name: a policy not
 * in it, e.g. one a host registered, gets the generic contract only):
 *  - WEIGHTED_BYTES (drr, wfq): byte service in proportion to weight. For
 *    every pair of flows i, j and every interval over which both stay
 *    backlogged, |S_i/w_i - S_j/w_j| stays within the policy's stated
 *    bound (the header of each policy file; S = bytes charged, a zero-byte
 *    request costing 1), checked after every decision in every scenario;
 *    and Jain's fairness index of S_k/w_k is >= 0.99 over 10^4 decisions
 *    with request sizes 64-1500 bytes, mixed weights, and one flow 10x more
 *    aggressive than the others (10x the arrivals, always backlogged).
 *  - TURNS (round_robin): dispatch counts of two flows backlogged over an
 *    interval differ by at most one; Jain's index of the counts >= 0.99 in
 *    the same aggressive scenario (weights ignored).
 *  - HEAD_ORDER (global_strict): the pick is the backlogged flow with the
 *    smallest (head_key, seq), checked against a scan.
 *  - NO_STARVATION (drr, wfq, round_robin): with one flow sending only
 *    zero-byte requests, the others are still served, within the bound.
 */
#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flowq/alloc.h>
#include <flowq/list.h>
#include <flowq/policy.h>

#include "count_alloc.h"
#include "test_util.h"

/* ---- claims ------------------------------------------------------------ */

enum {
	CLAIM_WEIGHTED_BYTES = 1u << 0,
	CLAIM_TURNS = 1u << 1,
	CLAIM_HEAD_ORDER = 1u << 2,
	CLAIM_NO_STARVATION = 1u << 3,
};

/*
 * What a policy claims. bound(): the most X = S_i * w_j - S_j * w_i may move
 * (max minus min) over an interval in which flows i and j are both
 * backlogged, i.e. |S_i/w_i - S_j/w_j| scaled by w_i * w_j. n_x is the
 * largest cost / weight (cost = max(bytes, 1), with the weight the flow had
 * when the request was queued) of any request flow x had since it was
 * attached, m_x the largest cost; a flow's debt for its last request can
 * outlive a change of its weight while it is idle, hence the weight at the
 * time.
 */
struct claim {
	const char *name;
	unsigned flags;
	long double (*bound)(long double q, long double ni, long double mi, long double wi,
			     long double nj, long double mj, long double wj);
};

/* fairness_drr.c: < 2Q + M_i/w_i + M_j/w_j, while w * Q <= 2^62 (beyond
 * that a flow's quantum is capped and nothing is claimed). */
static long double
drr_bound(long double q, long double ni, long double mi, long double wi, long double nj,
	  long double mj, long double wj)
{
	(void)mi, (void)mj;
	if (q * (wi > wj ? wi : wj) > 0x1p62L)
		return INFINITY;
	return (2 * q + ni + nj) * wi * wj;
}

/* fairness_wfq.c (SFQ, Goyal et al. Theorem 1): M_i/w_i + M_j/w_j + 4
 * units of integer rounding, for costs up to 2^60 (larger requests are
 * charged 2^60 and nothing is claimed). */
static long double
wfq_bound(long double q, long double ni, long double mi, long double wi, long double nj,
	  long double mj, long double wj)
{
	(void)q;
	if (mi > 0x1p60L || mj > 0x1p60L)
		return INFINITY;
	return (ni + nj + 4) * wi * wj;
}

/* fairness_round_robin.c: counts within one of each other (S counts
 * requests, weights are 1). */
static long double
rr_bound(long double q, long double ni, long double mi, long double wi, long double nj,
	 long double mj, long double wj)
{
	(void)q, (void)ni, (void)mi, (void)wi, (void)nj, (void)mj, (void)wj;
	return 1;
}

static const struct claim claims[] = {
	{"global_strict", CLAIM_HEAD_ORDER, NULL},
	{"round_robin", CLAIM_TURNS | CLAIM_NO_STARVATION, rr_bound},
	{"drr", CLAIM_WEIGHTED_BYTES | CLAIM_NO_STARVATION, drr_bound},
	{"wfq", CLAIM_WEIGHTED_BYTES | CLAIM_NO_STARVATION, wfq_bound},
};

static const struct claim no_claim = {"(unknown)", 0, NULL};

static const struct claim *
claim_of(const struct flowq_fairness_ops *ops)
{
	for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
		if (strcmp(claims[i].name, ops->desc.name) == 0)
			return &claims[i];
	}
	return &no_claim;
}

/* ---- a host-registered policy: the generic contract applies to it too --- */

/*
 * "conf_stack": the most recently backlogged flow goes next and keeps the
 * band until it empties. Valid by the contract, fair by nothing (it is not
 * in the claims table).
 */
struct stack_band {
	struct flowq_list stack;
};

struct stack_flow {
	struct flowq_list_node link;
	struct flowq_policy_flow *flow;
};

static int
stack_band_init(void *band, const struct flowq_policy_env *env)
{
	(void)env;
	flowq_list_init(&((struct stack_band *)band)->stack);
	return 0;
}

static void
stack_band_fini(void *band, const struct flowq_policy_env *env)
{
	(void)band, (void)env;
}

static int
stack_flow_attach(void *band, struct flowq_policy_flow *f,
		  const struct flowq_policy_env *env)
{
	struct stack_flow *sf = f->state;

	(void)band, (void)env;
	flowq_list_node_init(&sf->link);
	sf->flow = f;
	return 0;
}

static void
stack_flow_detach(void *band, struct flowq_policy_flow *f,
		  const struct flowq_policy_env *env)
{
	struct stack_flow *sf = f->state;

	(void)band, (void)env;
	if (flowq_list_linked(&sf->link))
		flowq_list_remove(&sf->link);
}

static void
stack_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct stack_flow *sf = f->state;

	if (!flowq_list_linked(&sf->link))
		flowq_list_push_front(&((struct stack_band *)band)->stack, &sf->link);
}

static struct flowq_policy_flow *
stack_pick(void *band)
{
	struct flowq_list_node *n = flowq_list_front(&((struct stack_band *)band)->stack);

	return n == NULL ? NULL : flowq_list_entry(n, struct stack_flow, link)->flow;
}

static void
stack_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t bytes)
{
	struct stack_flow *sf = f->state;

	(void)band, (void)dispatched, (void)bytes;
	if (f->queued == 0 && flowq_list_linked(&sf->link))
		flowq_list_remove(&sf->link);
}

static const struct flowq_fairness_ops conf_stack = {
	.desc = {.abi_version = FLOWQ_POLICY_ABI,
		 .name = "conf_stack",
		 .description = "conformance test only: newest backlogged flow first",
		 .band_state_size = sizeof(struct stack_band),
		 .flow_state_size = sizeof(struct stack_flow)},
	.band_init = stack_band_init,
	.band_fini = stack_band_fini,
	.flow_attach = stack_flow_attach,
	.flow_detach = stack_flow_detach,
	.flow_backlogged = stack_flow_backlogged,
	.pick = stack_pick,
	.update = stack_update,
};

/* Register conf_stack (once per process; every Test runs in its own). */
static void
register_host_policy(void)
{
	int rc = flowq_fairness_register(&conf_stack);

	cr_assert(rc == 0 || rc == -EEXIST, "register conf_stack: %d", rc);
}

/* ---- the fake band ------------------------------------------------------- */

#define NF 24 /* flow slots */

struct creq {
	uint64_t bytes;
	int64_t key;
};

struct cflow {
	bool attached;
	struct flowq_policy_flow pf;
	void *state;
	/* The queue: a deque, head at q[qhead]. */
	struct creq *q;
	uint32_t qhead, qlen, qcap;
	/* Service since attach: cost charged (long double: sizes up to 2^62
	 * add past 2^64 in the extreme scenario) and dispatches. */
	long double charged;
	uint64_t dispatches;
	/* Largest cost, and cost / weight, of any request queued since
	 * attach (the weight it had then). */
	uint64_t max_cost;
	long double max_norm;
};

struct pair {
	bool on;
	long double lo, hi;
};

struct band {
	const struct flowq_fairness_ops *ops;
	const struct claim *claim;
	struct test_count_alloc ca;
	struct flowq_policy_env env;
	void *state;
	struct cflow f[NF];
	struct pair pairs[NF][NF];
	uint64_t next_seq;
	int64_t clock;
	uint64_t rng;
	uint64_t pushed, dispatched, evicted;
	/* Look-ahead calls (band_hint()), each checked. */
	uint64_t hints;
	long double worst_ratio; /* largest pair range / bound seen */
};

static uint64_t
rnd(struct band *b, uint64_t n)
{
	return n == 0 ? 0 : test_rng_next(&b->rng) % n;
}

static void *
xzalloc(size_t n)
{
	/* Policy state is engine memory: aligned for any type, zeroed. */
	void *p = aligned_alloc(alignof(max_align_t),
				(n + alignof(max_align_t) - 1) / alignof(max_align_t) *
					alignof(max_align_t));

	cr_assert_not_null(p);
	memset(p, 0, n);
	return p;
}

static uint64_t
cost_of(uint64_t bytes)
{
	return bytes == 0 ? 1 : bytes;
}

/*
 * The engine's look-ahead hook (policy.h, flowq_policy_env::prefetch) as
 * this band lends it: every call must name an attached flow of this band
 * with a request queued, at stage 0 or 1 (the engine reads the flow's
 * lines, and at stage 1 its head request). tests/unit/test_policy.c checks
 * the same against the ordering policies; here it runs under every
 * scenario below (churn, idle flows, weights, evictions, huge sizes).
 */
static void
band_hint(void *arg, const struct flowq_policy_flow *f, unsigned stage)
{
	struct band *b = arg;
	int i;

	cr_assert_leq(stage, 1u, "%s: look-ahead stage %u", b->ops->desc.name, stage);
	for (i = 0; i < NF && &b->f[i].pf != f; i++)
		;
	cr_assert_lt(i, NF, "%s: look-ahead named %p, not a flow of this band",
		     b->ops->desc.name, (const void *)f);
	cr_assert(b->f[i].attached, "%s: look-ahead named detached flow %d",
		  b->ops->desc.name, i);
	cr_assert(b->f[i].qlen > 0 && f->queued > 0,
		  "%s: look-ahead named flow %d, which has nothing queued",
		  b->ops->desc.name, i);
	b->hints++;
}

static void
band_init(struct band *b, const struct flowq_fairness_ops *ops, uint64_t quantum,
	  uint64_t seed)
{
	memset(b, 0, sizeof(*b));
	b->ops = ops;
	b->claim = claim_of(ops);
	b->ca.a.alloc = test_count_alloc_fn;
	b->ca.a.free = test_count_free_fn;
	b->ca.a.ctx = &b->ca;
	b->ca.fail_after = ~0ul;
	b->env.alloc = &b->ca.a;
	b->env.priority = 7;
	b->env.quantum = quantum;
	b->env.prefetch = band_hint;
	b->env.prefetch_arg = b;
	b->rng = seed;
	b->clock = 1;
	b->state = xzalloc(ops->desc.band_state_size);
	cr_assert_eq(ops->band_init(b->state, &b->env), 0, "%s: band_init",
		     ops->desc.name);
	for (int i = 0; i < NF; i++)
		b->f[i].state = xzalloc(ops->desc.flow_state_size);
}

static void
band_fini(struct band *b)
{
	for (int i = 0; i < NF; i++) {
		cr_assert_not(b->f[i].attached, "%s: flow %d still attached",
			      b->ops->desc.name, i);
		free(b->f[i].state);
		free(b->f[i].q);
	}
	b->ops->band_fini(b->state, &b->env);
	cr_assert_eq(b->ca.outstanding, 0, "%s: %zu bytes not freed by band_fini",
		     b->ops->desc.name, b->ca.outstanding);
	free(b->state);
}

/* Hot-path ops: they must neither allocate nor free. */
#define HOT(b, call)                                                                     \
	do {                                                                             \
		unsigned long calls_ = (b)->ca.calls;                                    \
		call;                                                                    \
		cr_assert_eq((b)->ca.calls, calls_, "%s: allocator called from %s",      \
			     (b)->ops->desc.name, #call);                                \
	} while (0)

static struct flowq_policy_flow *
hot_pick(struct band *b)
{
	struct flowq_policy_flow *p;

	HOT(b, p = b->ops->pick(b->state));
	return p;
}

static void
refresh_head(struct cflow *cf)
{
	cf->pf.queued = cf->qlen;
	if (cf->qlen != 0) {
		const struct creq *h = &cf->q[cf->qhead];

		cf->pf.head_bytes = h->bytes;
		cf->pf.head_key = h->key;
	}
}

static long double
service_of(const struct band *b, const struct cflow *cf)
{
	return (b->claim->flags & CLAIM_TURNS) ? (long double)cf->dispatches : cf->charged;
}

static long double
weight_of(const struct band *b, const struct cflow *cf)
{
	return (b->claim->flags & CLAIM_TURNS) ? 1.0L : (long double)cf->pf.weight;
}

static bool
backlogged(const struct cflow *cf)
{
	return cf->attached && cf->qlen != 0;
}

static long double
pair_x(const struct band *b, int i, int j)
{
	const struct cflow *fi = &b->f[i], *fj = &b->f[j];

	return service_of(b, fi) * weight_of(b, fj) - service_of(b, fj) * weight_of(b, fi);
}

/* Flow @i became backlogged: with every other backlogged flow it starts a
 * common interval now. Pairs are kept as (min, max) of the index, so each
 * has one record. */
static void
pairs_start(struct band *b, int i)
{
	for (int j = 0; j < NF; j++) {
		int lo = i < j ? i : j, hi = i < j ? j : i;
		struct pair *p = &b->pairs[lo][hi];

		if (j == i)
			continue;
		p->on = backlogged(&b->f[j]);
		if (p->on)
			p->lo = p->hi = pair_x(b, lo, hi);
	}
}

/* Flow @i emptied: its intervals end. */
static void
pairs_stop(struct band *b, int i)
{
	for (int j = 0; j < NF; j++) {
		b->pairs[i][j].on = false;
		b->pairs[j][i].on = false;
	}
}

/* Check the pair bound of every open pair of the flow just served. */
static void
pairs_check(struct band *b, int served)
{
	const struct claim *c = b->claim;

	if (c->bound == NULL)
		return;
	for (int j = 0; j < NF; j++) {
		int lo = served < j ? served : j, hi = served < j ? j : served;
		struct pair *p = &b->pairs[lo][hi];
		const struct cflow *fi = &b->f[lo], *fj = &b->f[hi];
		long double x, bound, range;

		if (j == served || !p->on)
			continue;
		x = pair_x(b, lo, hi);
		if (x < p->lo)
			p->lo = x;
		if (x > p->hi)
			p->hi = x;
		range = p->hi - p->lo;
		bound = c->bound((long double)b->env.quantum, fi->max_norm,
				 (long double)fi->max_cost, weight_of(b, fi), fj->max_norm,
				 (long double)fj->max_cost, weight_of(b, fj));
		if (bound > 0 && isfinite(bound) && range / bound > b->worst_ratio)
			b->worst_ratio = range / bound;
		cr_assert(range <= bound,
			  "%s (quantum %llu): flows %d (w %u, M %llu) and %d (w %u, M %llu) "
			  "moved apart by %.1Lf (scaled), bound %.1Lf",
			  b->ops->desc.name, (unsigned long long)b->env.quantum, lo,
			  fi->pf.weight, (unsigned long long)fi->max_cost, hi, fj->pf.weight,
			  (unsigned long long)fj->max_cost, range, bound);
	}
}

static void
flow_attach(struct band *b, int i, uint32_t weight)
{
	struct cflow *cf = &b->f[i];
	int rc;

	cr_assert_not(cf->attached);
	memset(cf->state, 0, b->ops->desc.flow_state_size);
	memset(&cf->pf, 0, sizeof(cf->pf));
	/* policy.h: the hot words are undefined before flow_attach, which
	 * must set what the policy uses. Garbage, not the zeros the engine
	 * happens to give, so that a policy relying on them fails here. */
	memset(cf->pf.hot, 0xa5, sizeof(cf->pf.hot));
	cf->pf.state = cf->state;
	cf->pf.weight = weight;
	cf->pf.seq = b->next_seq++;
	cf->qhead = cf->qlen = 0;
	cf->charged = 0;
	cf->dispatches = 0;
	cf->max_cost = 0;
	cf->max_norm = 0;
	rc = b->ops->flow_attach(b->state, &cf->pf, &b->env);
	cr_assert_eq(rc, 0, "%s: flow_attach: %d", b->ops->desc.name, rc);
	cf->attached = true;
}

static void
flow_detach(struct band *b, int i)
{
	struct cflow *cf = &b->f[i];

	cr_assert(cf->attached && cf->qlen == 0);
	b->ops->flow_detach(b->state, &cf->pf, &b->env);
	cf->attached = false;
}

static void
queue_reserve(struct cflow *cf)
{
	if (cf->qlen < cf->qcap)
		return;
	{
		uint32_t ncap = cf->qcap ? 2 * cf->qcap : 16;
		struct creq *nq = malloc(ncap * sizeof(*nq));

		cr_assert_not_null(nq);
		for (uint32_t k = 0; k < cf->qlen; k++)
			nq[k] = cf->q[(cf->qhead + k) % cf->qcap];
		free(cf->q);
		cf->q = nq;
		cf->qcap = ncap;
		cf->qhead = 0;
	}
}

/* Push one request of @bytes to flow @i, at the back or (a new head, as an
 * ordering other than fcfs may do) at the front. */
static void
push(struct band *b, int i, uint64_t bytes, bool front)
{
	struct cflow *cf = &b->f[i];
	bool was_empty = cf->qlen == 0;
	struct creq r = {.bytes = bytes, .key = b->clock++};

	cr_assert(cf->attached);
	queue_reserve(cf);
	if (front) {
		cf->qhead = (cf->qhead + cf->qcap - 1) % cf->qcap;
		cf->q[cf->qhead] = r;
	} else {
		cf->q[(cf->qhead + cf->qlen) % cf->qcap] = r;
	}
	cf->qlen++;
	b->pushed++;
	if (cost_of(bytes) > cf->max_cost)
		cf->max_cost = cost_of(bytes);
	if ((long double)cost_of(bytes) / weight_of(b, cf) > cf->max_norm)
		cf->max_norm = (long double)cost_of(bytes) / weight_of(b, cf);
	refresh_head(cf);
	if (was_empty) {
		pairs_start(b, i);
		HOT(b, b->ops->flow_backlogged(b->state, &cf->pf));
	} else if (front) {
		HOT(b, b->ops->update(b->state, &cf->pf, false, 0));
	}
}

/* The index of the flow whose view is @p, checked to be ours and attached. */
static int
index_of(const struct band *b, const struct flowq_policy_flow *p)
{
	for (int i = 0; i < NF; i++) {
		if (&b->f[i].pf == p) {
			cr_assert(b->f[i].attached, "%s: picked detached flow %d",
				  b->ops->desc.name, i);
			return i;
		}
	}
	cr_assert_fail("%s: picked %p, not a flow of this band", b->ops->desc.name,
		       (const void *)p);
	return -1;
}

/* Ask the policy and check the answer; the flow index or -1. */
static int
check_pick(struct band *b)
{
	struct flowq_policy_flow *p = hot_pick(b);
	int best = -1, i;

	for (int j = 0; j < NF; j++) {
		const struct cflow *cf = &b->f[j];

		if (!backlogged(cf))
			continue;
		if (best < 0 || cf->pf.head_key < b->f[best].pf.head_key ||
		    (cf->pf.head_key == b->f[best].pf.head_key &&
		     cf->pf.seq < b->f[best].pf.seq))
			best = j;
	}
	if (best < 0) {
		cr_assert_null(p, "%s: picked a flow with nothing backlogged",
			       b->ops->desc.name);
		return -1;
	}
	cr_assert_not_null(p, "%s: picked nothing with flow %d backlogged",
			   b->ops->desc.name, best);
	i = index_of(b, p);
	cr_assert_gt(b->f[i].qlen, 0, "%s: picked empty flow %d", b->ops->desc.name, i);
	cr_assert_eq(hot_pick(b), p, "%s: a second pick changed the choice",
		     b->ops->desc.name);
	if (b->claim->flags & CLAIM_HEAD_ORDER)
		cr_assert_eq(i, best, "%s: picked flow %d, the best head is flow %d",
			     b->ops->desc.name, i, best);
	return i;
}

/* One decision as the dispatcher makes it; the flow served or -1. */
static int
dispatch(struct band *b)
{
	int i = check_pick(b);
	struct cflow *cf;
	struct creq r;

	if (i < 0)
		return -1;
	cf = &b->f[i];
	r = cf->q[cf->qhead];
	cf->qhead = (cf->qhead + 1) % cf->qcap;
	cf->qlen--;
	refresh_head(cf);
	cf->charged += (long double)cost_of(r.bytes);
	cf->dispatches++;
	b->dispatched++;
	HOT(b, b->ops->update(b->state, &cf->pf, true, r.bytes));
	pairs_check(b, i);
	if (cf->qlen == 0)
		pairs_stop(b, i);
	return i;
}

/* Evict request @k (0 = head) of flow @i. */
static void
evict(struct band *b, int i, uint32_t k)
{
	struct cflow *cf = &b->f[i];

	cr_assert(k < cf->qlen);
	for (uint32_t m = k; m > 0; m--)
		cf->q[(cf->qhead + m) % cf->qcap] = cf->q[(cf->qhead + m - 1) % cf->qcap];
	cf->qhead = (cf->qhead + 1) % cf->qcap;
	cf->qlen--;
	refresh_head(cf);
	b->evicted++;
	HOT(b, b->ops->update(b->state, &cf->pf, false, 0));
	if (cf->qlen == 0)
		pairs_stop(b, i);
}

/* Dispatch until the policy offers nothing; then everything is accounted
 * for and every flow can be detached. */
static void
drain_and_detach(struct band *b)
{
	while (dispatch(b) >= 0)
		;
	for (int i = 0; i < NF; i++)
		cr_assert_eq(b->f[i].qlen, 0, "%s: flow %d left with %u requests",
			     b->ops->desc.name, i, b->f[i].qlen);
	cr_assert_eq(b->dispatched + b->evicted, b->pushed,
		     "%s: %llu pushed, %llu dispatched, %llu evicted", b->ops->desc.name,
		     (unsigned long long)b->pushed, (unsigned long long)b->dispatched,
		     (unsigned long long)b->evicted);
	cr_assert_null(hot_pick(b));
	for (int i = 0; i < NF; i++) {
		if (b->f[i].attached)
			flow_detach(b, i);
	}
}

/* ---- generic contract ----------------------------------------------------- */

static uint64_t
random_size(struct band *b, bool extreme)
{
	uint64_t r = rnd(b, 256);

	if (r < 32)
		return 0;
	if (extreme && r < 64)
		return (UINT64_C(1) << 62) - rnd(b, 3);
	if (extreme && r < 96)
		return UINT64_C(1) << (40 + rnd(b, 22));
	if (r < 40)
		return 1 + rnd(b, 1u << 20);
	return 64 + rnd(b, 1437);
}

static uint32_t
random_weight(struct band *b)
{
	switch (rnd(b, 4)) {
	case 0:
		return 1;
	case 1:
		return 1 + (uint32_t)rnd(b, 8);
	case 2:
		return 1 + (uint32_t)rnd(b, 300);
	default:
		return 1 + (uint32_t)rnd(b, 65535);
	}
}

static int
random_flow(struct band *b, int want) /* 0 detached, 1 attached, 2 empty+attached */
{
	int cand[NF], n = 0;

	for (int i = 0; i < NF; i++) {
		const struct cflow *cf = &b->f[i];

		if ((want == 0 && !cf->attached) || (want == 1 && cf->attached) ||
		    (want == 2 && cf->attached && cf->qlen == 0))
			cand[n++] = i;
	}
	return n == 0 ? -1 : cand[rnd(b, (uint64_t)n)];
}

/*
 * @steps random operations. Attach pressure swings between phases so the
 * attached population rises and falls (slot arrays grow and shrink); the
 * arrival/service balance keeps queues short so flows keep going idle and
 * backlogged again.
 */
static void
churn(struct band *b, unsigned steps, bool extreme)
{
	for (unsigned s = 0; s < steps; s++) {
		bool growing = (s / 1000) % 2 == 0;
		uint64_t r = rnd(b, 100);
		int i;

		if (r < (growing ? 8u : 2u)) {
			if ((i = random_flow(b, 0)) >= 0)
				flow_attach(b, i, random_weight(b));
		} else if (r < 12) {
			if ((i = random_flow(b, 2)) >= 0)
				flow_detach(b, i);
		} else if (r < 14) {
			/* Weight change while idle (the engine reads the
			 * weight when the flow becomes backlogged). */
			if ((i = random_flow(b, 2)) >= 0)
				b->f[i].pf.weight = random_weight(b);
		} else if (r < 42) {
			if ((i = random_flow(b, 1)) >= 0) {
				unsigned n = 1 + (unsigned)rnd(b, 3);

				for (unsigned k = 0; k < n; k++)
					push(b, i, random_size(b, extreme), false);
			}
		} else if (r < 46) {
			if ((i = random_flow(b, 1)) >= 0)
				push(b, i, random_size(b, extreme), true);
		} else if (r < 50) {
			/* A pick the dispatcher does not act on (gate). */
			(void)check_pick(b);
		} else if (r < 92) {
			dispatch(b);
		} else {
			int cand[NF], n = 0;

			for (int j = 0; j < NF; j++) {
				if (backlogged(&b->f[j]))
					cand[n++] = j;
			}
			if (n > 0) {
				i = cand[rnd(b, (uint64_t)n)];
				evict(b, i, (uint32_t)rnd(b, b->f[i].qlen));
			}
		}
	}
	drain_and_detach(b);
}

/* Run @fn over every registered fairness policy (conf_stack included). */
static unsigned
for_each_policy(void (*fn)(const struct flowq_fairness_ops *ops))
{
	unsigned n = 0;
	bool saw_host = false;

	register_host_policy();
	for (size_t k = 0; flowq_fairness_at(k) != NULL; k++) {
		const struct flowq_fairness_ops *ops = flowq_fairness_at(k);

		saw_host |= ops == &conf_stack;
		fn(ops);
		n++;
	}
	cr_assert(saw_host, "the host-registered policy was listed");
	return n;
}

static void
generic_churn(const struct flowq_fairness_ops *ops)
{
	static const uint64_t quanta[] = {1, 512, 4096, 65536};
	static const uint64_t seeds[] = {1, 0xc0ffee, 0x5eed5eed5eedull};

	for (size_t q = 0; q < sizeof(quanta) / sizeof(quanta[0]); q++) {
		for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
			struct band b;

			band_init(&b, ops, quanta[q], seeds[s] + q);
			churn(&b, 12000, false);
			cr_assert_gt(b.dispatched, 1000, "%s: the run dispatched little",
				     ops->desc.name);
			cr_assert_gt(b.evicted, 0);
			band_fini(&b);
		}
	}
}

Test(fairness_contract, churn_idle_backlog_weights_zero_bytes_every_policy)
{
	unsigned n = for_each_policy(generic_churn);

	cr_assert_geq(n, 5, "the four built-ins and conf_stack");
}

static void
generic_extreme(const struct flowq_fairness_ops *ops)
{
	/* Requests up to 2^62 bytes, quanta of 1 byte: drr's far rounds and
	 * round rebase, wfq's tag rebase, saturating arithmetic. */
	static const uint64_t quanta[] = {1, 4096, UINT64_C(1) << 62};

	for (size_t q = 0; q < sizeof(quanta) / sizeof(quanta[0]); q++) {
		struct band b;

		band_init(&b, ops, quanta[q], 77 + q);
		churn(&b, 6000, true);
		band_fini(&b);
	}
}

Test(fairness_contract, extreme_sizes_and_quanta_every_policy)
{
	for_each_policy(generic_extreme);
}

static void
generic_enomem(const struct flowq_fairness_ops *ops)
{
	struct band b;
	int attached = 0, rc = 0;

	band_init(&b, ops, 4096, 5);
	while (attached < NF) {
		struct cflow *cf = &b.f[attached];

		/* The first attach may allocate what it needs (drr: three
		 * arrays); after it, a budget of one allocation: policies that
		 * grow arrays by doubling run out (round_robin, drr, wfq,
		 * global_strict), drr half-way through an attach (its far heap
		 * grows, then a ring cannot: the attach must undo the first). */
		if (attached == 1)
			b.ca.fail_after = b.ca.allocs + 1;

		memset(cf->state, 0, ops->desc.flow_state_size);
		memset(&cf->pf, 0, sizeof(cf->pf));
		cf->pf.state = cf->state;
		cf->pf.weight = 1;
		cf->pf.seq = b.next_seq++;
		rc = ops->flow_attach(b.state, &cf->pf, &b.env);
		if (rc != 0)
			break;
		cf->attached = true;
		attached++;
	}
	if (attached < NF)
		cr_assert_eq(rc, -ENOMEM, "%s: flow_attach failed with %d",
			     ops->desc.name, rc);
	cr_assert_gt(attached, 0, "%s: nothing attached", ops->desc.name);
	/* Every flow attached before the failure works. */
	for (int i = 0; i < attached; i++) {
		push(&b, i, 100 + 10 * (uint64_t)i, false);
		push(&b, i, 0, false);
	}
	for (int k = 0; k < attached; k++)
		cr_assert_geq(dispatch(&b), 0);
	/* Memory is back: the flow that failed attaches. */
	b.ca.fail_after = ~0ul;
	if (attached < NF) {
		flow_attach(&b, attached, 3);
		push(&b, attached, 1500, false);
	}
	drain_and_detach(&b);
	band_fini(&b);
}

Test(fairness_contract, attach_enomem_leaves_the_band_working_every_policy)
{
	for_each_policy(generic_enomem);
}

/* Many flows going idle and backlogged at once, from a fresh band and after
 * the band went fully idle (virtual time / round catch-up). */
static void
generic_bursts(const struct flowq_fairness_ops *ops)
{
	struct band b;

	band_init(&b, ops, 1000, 9);
	for (int i = 0; i < NF; i++)
		flow_attach(&b, i, 1 + (uint32_t)(i % 5));
	for (int burst = 0; burst < 50; burst++) {
		for (int i = 0; i < NF; i++) {
			if (rnd(&b, 2) == 0) {
				unsigned n = 1 + (unsigned)rnd(&b, 6);

				for (unsigned k = 0; k < n; k++)
					push(&b, i, random_size(&b, false), false);
			}
		}
		/* Drain fully, so the band goes idle between bursts. */
		while (dispatch(&b) >= 0)
			;
		cr_assert_null(hot_pick(&b));
	}
	drain_and_detach(&b);
	band_fini(&b);
}

Test(fairness_contract, bursts_after_idle_every_policy)
{
	for_each_policy(generic_bursts);
}

/* ---- claimed fairness ------------------------------------------------------- */

/*
 * Jain's fairness index of x[0..n): (sum x)^2 / (n * sum x^2); 1 when all
 * are equal, 1/n when one takes everything.
 */
static double
jain(const long double *x, int n)
{
	long double s = 0, s2 = 0;

	for (int i = 0; i < n; i++) {
		s += x[i];
		s2 += x[i] * x[i];
	}
	return s2 == 0 ? 1.0 : (double)(s * s / (n * s2));
}

#define AGG_FLOWS     8
#define AGG_DECISIONS 10000
#define AGG_QCAP      256

/*
 * The aggressive scenario: AGG_FLOWS flows with mixed weights, all
 * backlogged from the start; per decision, flow 0 gets 10 arrivals and each
 * other flow 1 (each dropped if the flow already has AGG_QCAP queued: all
 * stay backlogged throughout), sizes uniform in 64..1500 bytes. Returns
 * Jain's index of the claimed service per unit of weight over
 * AGG_DECISIONS decisions; the pair bound is checked on every decision.
 */
static double
aggressive(const struct flowq_fairness_ops *ops, uint64_t quantum, uint64_t seed,
	   long double *r_worst)
{
	static const uint32_t weights[AGG_FLOWS] = {1, 1, 2, 3, 1, 4, 2, 7};
	struct band b;
	long double x[AGG_FLOWS];
	double j;

	band_init(&b, ops, quantum, seed);
	for (int i = 0; i < AGG_FLOWS; i++) {
		flow_attach(&b, i, weights[i]);
		for (int k = 0; k < 32; k++)
			push(&b, i, 64 + rnd(&b, 1437), false);
	}
	for (int d = 0; d < AGG_DECISIONS; d++) {
		for (int i = 0; i < AGG_FLOWS; i++) {
			int arrivals = i == 0 ? 10 : 1;

			for (int a = 0; a < arrivals; a++) {
				if (b.f[i].qlen < AGG_QCAP)
					push(&b, i, 64 + rnd(&b, 1437), false);
			}
		}
		cr_assert_geq(dispatch(&b), 0);
		for (int i = 0; i < AGG_FLOWS; i++)
			cr_assert_gt(b.f[i].qlen, 0, "scenario: flow %d ran dry", i);
	}
	for (int i = 0; i < AGG_FLOWS; i++)
		x[i] = service_of(&b, &b.f[i]) / weight_of(&b, &b.f[i]);
	j = jain(x, AGG_FLOWS);
	*r_worst = b.worst_ratio;
	drain_and_detach(&b);
	band_fini(&b);
	return j;
}

static void
claimed_aggressive(const struct flowq_fairness_ops *ops)
{
	static const uint64_t quanta[] = {1, 64, 1500, 4096};
	const struct claim *c = claim_of(ops);

	if (!(c->flags & (CLAIM_WEIGHTED_BYTES | CLAIM_TURNS)))
		return;
	for (size_t q = 0; q < sizeof(quanta) / sizeof(quanta[0]); q++) {
		long double worst;
		double j = aggressive(ops, quanta[q], 1000 + q, &worst);

		cr_log_info("%s quantum %llu: Jain %.5f over %d decisions, worst pair "
			    "range %.2Lf of its bound",
			    ops->desc.name, (unsigned long long)quanta[q], j, AGG_DECISIONS,
			    worst);
		cr_assert_geq(j, 0.99, "%s quantum %llu: Jain's index %.4f < 0.99",
			      ops->desc.name, (unsigned long long)quanta[q], j);
	}
}

Test(fairness_claims, aggressive_flow_jain_at_least_0_99)
{
	for_each_policy(claimed_aggressive);
}

/*
 * A flow that goes idle and comes back must not bring credit from its idle
 * time: flows 0-3 stay backlogged, flows 4-5 alternate 400 decisions idle
 * and a burst of 64 requests; the pair bound (tracked from each return)
 * fails if a returning flow is served ahead of its share.
 */
static void
claimed_no_banked_credit(const struct flowq_fairness_ops *ops)
{
	const struct claim *c = claim_of(ops);
	static const uint64_t quanta[] = {64, 4096};

	if (c->bound == NULL)
		return;
	for (size_t q = 0; q < sizeof(quanta) / sizeof(quanta[0]); q++) {
		struct band b;

		band_init(&b, ops, quanta[q], 31 + q);
		for (int i = 0; i < 6; i++)
			flow_attach(&b, i, (uint32_t)(1 + i % 3));
		for (int d = 0; d < 12000; d++) {
			for (int i = 0; i < 4; i++) {
				if (b.f[i].qlen < 8)
					push(&b, i, 64 + rnd(&b, 1437), false);
			}
			if (d % 800 == 0) {
				for (int i = 4; i < 6; i++) {
					for (int k = 0; k < 64; k++)
						push(&b, i, 64 + rnd(&b, 1437), false);
				}
			}
			cr_assert_geq(dispatch(&b), 0);
		}
		cr_log_info("%s quantum %llu: idle/return worst pair range %.2Lf of its "
			    "bound",
			    ops->desc.name, (unsigned long long)quanta[q], b.worst_ratio);
		drain_and_detach(&b);
		band_fini(&b);
	}
}

Test(fairness_claims, no_banked_credit_after_idle)
{
	for_each_policy(claimed_no_banked_credit);
}

/*
 * Zero-byte requests: flow 0 sends only zero-byte requests (weight 1), flow
 * 1 1500-byte ones (weight 1), flow 2 a mix (weight 3). Every flow keeps
 * being served, and the pair bound holds with a zero-byte request costing
 * one byte (one turn for round_robin).
 */
static void
claimed_zero_bytes(const struct flowq_fairness_ops *ops)
{
	const struct claim *c = claim_of(ops);
	struct band b;
	uint64_t before[3];

	if (!(c->flags & CLAIM_NO_STARVATION))
		return;
	band_init(&b, ops, 4096, 3);
	flow_attach(&b, 0, 1);
	flow_attach(&b, 1, 1);
	flow_attach(&b, 2, 3);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 3; i++)
			before[i] = b.f[i].dispatches;
		for (int d = 0; d < 20000; d++) {
			if (b.f[0].qlen < 64)
				push(&b, 0, 0, false);
			if (b.f[1].qlen < 64)
				push(&b, 1, 1500, false);
			if (b.f[2].qlen < 64)
				push(&b, 2, rnd(&b, 2) ? 0 : 700, false);
			cr_assert_geq(dispatch(&b), 0);
		}
		for (int i = 0; i < 3; i++)
			cr_assert_gt(b.f[i].dispatches, before[i],
				     "%s: flow %d starved for 20000 decisions", ops->desc.name,
				     i);
	}
	drain_and_detach(&b);
	band_fini(&b);
}

Test(fairness_claims, zero_byte_requests_do_not_starve_others)
{
	for_each_policy(claimed_zero_bytes);
}

/* The suite tested the policies it knows about; a built-in that the claims
 * table does not know would run the generic contract only, so say so. */
Test(fairness_claims, every_builtin_has_claims)
{
	static const char *const builtins[] = {"global_strict", "round_robin", "drr", "wfq"};

	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		const struct flowq_fairness_ops *ops = flowq_fairness_find(builtins[i]);

		cr_assert_not_null(ops, "%s is registered", builtins[i]);
		cr_assert_neq(claim_of(ops), &no_claim, "%s has claims", builtins[i]);
	}
	register_host_policy();
	cr_assert_eq(claim_of(&conf_stack), &no_claim);
}
