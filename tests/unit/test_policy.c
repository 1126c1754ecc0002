/*
 * Unit and contract tests for the policies (policies/fairness_*.c,
 * policies/ordering_*.c) and their registry (policies/registry.c), and what
 * an engine returns when a host-registered policy fails.
 *
 * The contract suite enumerates flowq_fairness_at() x flowq_ordering_at(),
 * so a policy added to the built-in arrays, or registered before the suite
 * runs, is covered without editing this file. Each pair is driven by a small
 * model of the engine's dispatcher (struct model) that keeps struct
 * flowq_policy_flow exactly as policy.h's contract says (queued, head_key,
 * head_bytes, seq, weight; update() after every request that leaves and
 * after a push that changes the head; allocations through libc, counted)
 * through seeded random sequences of
 * attach, push, dispatch, evict and detach, and checks after every step:
 *  - pick() returns NULL iff no attached flow is backlogged, never an empty
 *    flow, and the same flow when asked twice (it must not change state);
 *  - pop() returns what peek() returned, and that request belongs to the
 *    picked flow and is queued;
 *  - no request is lost or duplicated: every pushed request ends dispatched
 *    or evicted exactly once (conservation at the end, after a drain);
 * plus what each built-in promises: fcfs pops each flow in arrival order;
 * round_robin keeps the dispatch counts of any two continuously backlogged
 * flows within one of each other; global_strict always picks the minimal
 * (head_key, seq), checked against a brute-force scan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>
#include <flowq/list.h>
#include <flowq/policy.h>
#include <flowq/types.h>

#include "count_alloc.h"
#include "engine_fixture.h"
#include "policy_fill.h"
#include "flow_heap.h"
#include "test_util.h"

/* ---- a test ordering: newest first ---------------------------------------- */

/*
 * "test_lifo": the newest request of a flow goes first. Not useful as a
 * policy; it is here because with it a push changes the head of a backlogged
 * flow, which exercises the update(f, false, 0) path of every fairness
 * policy (fcfs never changes the head on a push). Its key is the negated
 * submit time, so the head has the smallest key, as the contract wants.
 */
static void
lifo_push_batch(void *fs, struct flowq_req *const *reqs, size_t n)
{
	struct flowq_list *l = fs;

	if (l->head.next == NULL) /* zeroed state: see ordering_fcfs.c */
		flowq_list_init(l);
	for (size_t i = 0; i < n; i++)
		flowq_list_push_front(l, &reqs[i]->priv.lnode);
}

static struct flowq_req *
lifo_peek(void *fs)
{
	struct flowq_list *l = fs;

	if (l->head.next == NULL || flowq_list_empty(l))
		return NULL;
	return flowq_list_entry(l->head.next, struct flowq_req, priv.lnode);
}

static struct flowq_req *
lifo_pop(void *fs)
{
	struct flowq_req *r = lifo_peek(fs);

	if (r != NULL)
		flowq_list_remove(&r->priv.lnode);
	return r;
}

static void
lifo_remove(void *fs, struct flowq_req *req)
{
	(void)fs;
	flowq_list_remove(&req->priv.lnode);
}

static int64_t
lifo_key(const struct flowq_req *req)
{
	return -req->priv.enqueue_ns;
}

static const struct flowq_ordering_ops test_lifo = {
	.desc = {.abi_version = FLOWQ_POLICY_ABI,
		 .name = "test_lifo",
		 .description = "test only: newest first",
		 .band_state_size = 0,
		 .flow_state_size = sizeof(struct flowq_list)},
	.push_batch = lifo_push_batch,
	.peek = lifo_peek,
	.pop = lifo_pop,
	.remove = lifo_remove,
	.key = lifo_key,
};

/* ---- the model engine ------------------------------------------------------ */

/*
 * The model allocates through struct test_count_alloc (count_alloc.h) and
 * checks that a policy gives back everything by band_fini; LeakSanitizer
 * alone would not fail the suite, because a leak report from a Criterion
 * worker comes after the test result is recorded.
 */

/* Flow slots of a model; at most MODEL_FLOWS are attached at once. */
#define MODEL_FLOWS 40

enum treq_state { T_QUEUED = 1, T_DISPATCHED, T_EVICTED };

/* A test request: the engine's request plus what the model knows of it. */
struct treq {
	struct flowq_req req;
	int flow;
	/* Arrival order within its flow (0, 1, 2, ...). */
	uint64_t arrival;
	enum treq_state state;
	/* Index in its flow's queued[] (for eviction of a random member). */
	uint32_t qpos;
};

struct mflow {
	bool attached;
	/* What the engine maintains for the policy. */
	struct flowq_policy_flow pf;
	void *fair_state;
	void *ord_state;
	/* The flow's queued requests, in no order (the model's truth). */
	struct treq **queued;
	uint32_t nqueued, cap;
	uint64_t next_arrival;
};

struct model {
	const struct flowq_fairness_ops *fair;
	const struct flowq_ordering_ops *ord;
	struct test_count_alloc ca;
	struct flowq_policy_env env;
	void *band;
	struct mflow flows[MODEL_FLOWS];
	unsigned nattached;
	/* Request pool; never reused, so a duplicate dispatch is visible. */
	struct treq *reqs;
	size_t nreqs, maxreqs;
	uint64_t next_seq;
	int64_t clock;
	uint64_t rng;
	uint64_t dispatched, evicted;
	/* Look-ahead calls (model_hint()), each checked. */
	uint64_t hints;
	/* round_robin: dispatches of a minus dispatches of b since both
	 * became backlogged (meaningful while both are). */
	int64_t rr_diff[MODEL_FLOWS][MODEL_FLOWS];
	bool is_rr, is_gs, is_wfq, is_fcfs;
};

static uint64_t
model_rand(struct model *m, uint64_t n)
{
	return test_rng_next(&m->rng) % n;
}

static struct treq *
treq_of(struct flowq_req *r)
{
	return (struct treq *)((char *)r - offsetof(struct treq, req));
}

static void *
zalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	cr_assert_not_null(p);
	return p;
}

/*
 * The engine's look-ahead hook (policy.h, flowq_policy_env::prefetch) as
 * the contract model lends it: every call must name a flow of this band
 * that is attached and backlogged, at stage 0 or 1, because the engine's
 * stage 1 reads the flow's ordering state and its head request (here: the
 * ordering's peek must find one). A policy that named a detached, empty or
 * foreign flow would have the engine read a dead one.
 */
static void
model_hint(void *arg, const struct flowq_policy_flow *f, unsigned stage)
{
	struct model *m = arg;
	int i;

	cr_assert_leq(stage, 1u, "%s: look-ahead stage %u", m->fair->desc.name, stage);
	for (i = 0; i < MODEL_FLOWS && &m->flows[i].pf != f; i++)
		;
	cr_assert_lt(i, MODEL_FLOWS, "%s: look-ahead named %p, not a flow of this band",
		     m->fair->desc.name, (const void *)f);
	cr_assert(m->flows[i].attached, "%s: look-ahead named detached flow %d",
		  m->fair->desc.name, i);
	cr_assert_gt(f->queued, 0, "%s: look-ahead named empty flow %d",
		     m->fair->desc.name, i);
	if (stage == 1)
		cr_assert_not_null(m->ord->peek(m->flows[i].ord_state),
				   "%s: stage 1 for flow %d, whose ordering is empty",
				   m->fair->desc.name, i);
	m->hints++;
}

static void
model_init(struct model *m, const struct flowq_fairness_ops *fair,
	   const struct flowq_ordering_ops *ord, uint64_t seed, size_t maxreqs)
{
	memset(m, 0, sizeof(*m));
	m->fair = fair;
	m->ord = ord;
	m->ca.a.alloc = test_count_alloc_fn;
	m->ca.a.free = test_count_free_fn;
	m->ca.a.ctx = &m->ca;
	m->ca.fail_after = ~0ul;
	m->env.alloc = &m->ca.a;
	m->env.priority = 3;
	/* Resolved by the engine, never 0 (policy.h); drr refuses 0. Small,
	 * so that drr's multi-round skips run too. */
	m->env.quantum = 512;
	m->env.prefetch = model_hint;
	m->env.prefetch_arg = m;
	m->rng = seed;
	m->clock = 1000;
	m->maxreqs = maxreqs;
	m->reqs = zalloc(maxreqs * sizeof(*m->reqs));
	m->is_rr = strcmp(fair->desc.name, "round_robin") == 0;
	m->is_gs = strcmp(fair->desc.name, "global_strict") == 0;
	m->is_wfq = strcmp(fair->desc.name, "wfq") == 0;
	m->is_fcfs = strcmp(ord->desc.name, "fcfs") == 0;
	/* The engine zeroes policy state before init. */
	m->band = zalloc(fair->desc.band_state_size);
	cr_assert_eq(fair->band_init(m->band, &m->env), 0, "%s: band_init",
		     fair->desc.name);
	for (int i = 0; i < MODEL_FLOWS; i++) {
		m->flows[i].fair_state = zalloc(fair->desc.flow_state_size);
		m->flows[i].ord_state = zalloc(ord->desc.flow_state_size);
	}
}

static void
model_fini(struct model *m)
{
	for (int i = 0; i < MODEL_FLOWS; i++) {
		cr_assert_not(m->flows[i].attached, "flow %d still attached", i);
		free(m->flows[i].fair_state);
		free(m->flows[i].ord_state);
		free(m->flows[i].queued);
	}
	m->fair->band_fini(m->band, &m->env);
	cr_assert_eq(m->ca.outstanding, 0, "%s: %zu bytes not freed by band_fini",
		     m->fair->desc.name, m->ca.outstanding);
	free(m->band);
	free(m->reqs);
}

/* The index of the model flow whose policy view is @f, checked. */
static int
model_flow_index(const struct model *m, const struct flowq_policy_flow *f)
{
	for (int i = 0; i < MODEL_FLOWS; i++) {
		if (&m->flows[i].pf == f) {
			cr_assert(m->flows[i].attached, "pick returned detached flow %d",
				  i);
			return i;
		}
	}
	cr_assert_fail("pick returned %p, not a flow of this band", (const void *)f);
	return -1;
}

/* Re-read the head from the ordering, as the dispatcher does. */
static void
model_refresh_head(struct model *m, struct mflow *mf)
{
	struct flowq_req *h = m->ord->peek(mf->ord_state);

	cr_assert_eq(h != NULL, mf->pf.queued > 0, "%s: peek %p with %llu queued",
		     m->ord->desc.name, (void *)h, (unsigned long long)mf->pf.queued);
	if (h != NULL) {
		cr_assert_eq(treq_of(h)->state, T_QUEUED);
		cr_assert_eq(treq_of(h)->flow, (int)(mf - m->flows),
			     "head of another flow");
		mf->pf.head_key = m->ord->key(h);
		mf->pf.head_bytes = h->bytes;
	}
}

static void
model_attach(struct model *m, int i)
{
	struct mflow *mf = &m->flows[i];
	int rc;

	/* A new flow: the engine hands the policies zeroed state. */
	memset(mf->fair_state, 0, m->fair->desc.flow_state_size);
	memset(mf->ord_state, 0, m->ord->desc.flow_state_size);
	memset(&mf->pf, 0, sizeof(mf->pf));
	mf->pf.state = mf->fair_state;
	mf->pf.weight = 1 + (uint32_t)model_rand(m, 4);
	mf->pf.seq = m->next_seq++;
	mf->nqueued = 0;
	mf->next_arrival = 0;
	rc = m->fair->flow_attach(m->band, &mf->pf, &m->env);
	cr_assert_eq(rc, 0, "%s: flow_attach: %d", m->fair->desc.name, rc);
	mf->attached = true;
	m->nattached++;
	/* A zeroed ordering state is an empty queue. */
	cr_assert_null(m->ord->peek(mf->ord_state), "%s: zeroed state not empty",
		       m->ord->desc.name);
	cr_assert_null(m->ord->pop(mf->ord_state));
}

static void
model_detach(struct model *m, int i)
{
	struct mflow *mf = &m->flows[i];

	cr_assert(mf->attached && mf->nqueued == 0);
	m->fair->flow_detach(m->band, &mf->pf, &m->env);
	mf->attached = false;
	m->nattached--;
}

static void
model_rr_reset(struct model *m, int i)
{
	for (int j = 0; j < MODEL_FLOWS; j++)
		m->rr_diff[i][j] = m->rr_diff[j][i] = 0;
}

/* Append @n new requests to flow @i in one push_batch. */
static void
model_push(struct model *m, int i, size_t n)
{
	struct mflow *mf = &m->flows[i];
	struct flowq_req *batch[8];
	struct flowq_req *old_head = m->ord->peek(mf->ord_state);
	bool was_backlogged = mf->pf.queued > 0;

	cr_assert(n <= 8 && m->nreqs + n <= m->maxreqs);
	if (mf->nqueued + n > mf->cap) {
		mf->cap = mf->cap ? 2 * mf->cap : 16;
		mf->queued = realloc(mf->queued, mf->cap * sizeof(*mf->queued));
		cr_assert_not_null(mf->queued);
	}
	for (size_t k = 0; k < n; k++) {
		struct treq *t = &m->reqs[m->nreqs++];

		flowq_req_init(&t->req);
		t->req.bytes = model_rand(m, 3) == 0 ? 0 : 1 + model_rand(m, 4096);
		/* Submit times jitter a little against arrival order (as two
		 * producers' clock reads can) and collide now and then, so
		 * equal keys and out-of-order keys both occur. */
		m->clock += (int64_t)model_rand(m, 3);
		t->req.priv.enqueue_ns = m->clock - (int64_t)model_rand(m, 4);
		t->flow = i;
		t->arrival = mf->next_arrival++;
		t->state = T_QUEUED;
		t->qpos = mf->nqueued;
		mf->queued[mf->nqueued++] = t;
		batch[k] = &t->req;
	}
	m->ord->push_batch(mf->ord_state, batch, n);
	mf->pf.queued += n;
	model_refresh_head(m, mf);
	if (!was_backlogged) {
		if (m->is_rr)
			model_rr_reset(m, i);
		m->fair->flow_backlogged(m->band, &mf->pf);
	} else if (m->ord->peek(mf->ord_state) != old_head) {
		/* A push that changed the head of a backlogged flow. */
		m->fair->update(m->band, &mf->pf, false, 0);
	}
}

/* Forget @t in its flow's queued[] (swap with the last). */
static void
model_unqueue(struct model *m, struct treq *t, enum treq_state to)
{
	struct mflow *mf = &m->flows[t->flow];
	struct treq *last = mf->queued[--mf->nqueued];

	cr_assert_eq(t->state, T_QUEUED, "request left twice");
	cr_assert_eq(mf->queued[t->qpos], t);
	mf->queued[t->qpos] = last;
	last->qpos = t->qpos;
	t->state = to;
	mf->pf.queued--;
}

/*
 * Ask the policy, check the answer against the model, return the flow's
 * index or -1.
 */
static int
model_pick(struct model *m)
{
	struct flowq_policy_flow *f = m->fair->pick(m->band);
	int best = -1;
	int i;

	for (int j = 0; j < MODEL_FLOWS; j++) {
		const struct mflow *mf = &m->flows[j];

		cr_assert_eq(mf->pf.queued, mf->nqueued);
		if (!mf->attached || mf->nqueued == 0)
			continue;
		if (best < 0 || mf->pf.head_key < m->flows[best].pf.head_key ||
		    (mf->pf.head_key == m->flows[best].pf.head_key &&
		     mf->pf.seq < m->flows[best].pf.seq))
			best = j;
	}
	if (best < 0) {
		cr_assert_null(f, "%s: picked a flow with nothing backlogged",
			       m->fair->desc.name);
		return -1;
	}
	cr_assert_not_null(f, "%s: picked nothing with flow %d backlogged",
			   m->fair->desc.name, best);
	i = model_flow_index(m, f);
	cr_assert_gt(f->queued, 0, "%s: picked empty flow %d", m->fair->desc.name, i);
	cr_assert_eq(m->fair->pick(m->band), f, "%s: pick changed state",
		     m->fair->desc.name);
	if (m->is_gs)
		cr_assert_eq(i, best,
			     "global_strict picked flow %d (key %lld seq %llu), the best "
			     "is %d (key %lld seq %llu)",
			     i, (long long)f->head_key, (unsigned long long)f->seq, best,
			     (long long)m->flows[best].pf.head_key,
			     (unsigned long long)m->flows[best].pf.seq);
	return i;
}

/* One dispatch, as the dispatcher makes it; returns the flow or -1. */
static int
model_dispatch(struct model *m)
{
	int i = model_pick(m);
	struct mflow *mf;
	struct flowq_req *peeked, *r;
	struct treq *t;

	if (i < 0)
		return -1;
	mf = &m->flows[i];
	peeked = m->ord->peek(mf->ord_state);
	r = m->ord->pop(mf->ord_state);
	cr_assert_eq(r, peeked, "%s: pop is not peek", m->ord->desc.name);
	t = treq_of(r);
	cr_assert_eq(t->flow, i, "popped a request of flow %d from flow %d", t->flow, i);
	if (m->is_fcfs) {
		/* The oldest queued request of the flow, by arrival. */
		for (uint32_t k = 0; k < mf->nqueued; k++)
			cr_assert_geq(mf->queued[k]->arrival, t->arrival,
				      "fcfs: popped arrival %llu before %llu",
				      (unsigned long long)t->arrival,
				      (unsigned long long)mf->queued[k]->arrival);
	}
	model_unqueue(m, t, T_DISPATCHED);
	model_refresh_head(m, mf);
	if (m->is_rr) {
		/* Both backlogged since their last reset: counts within 1. */
		for (int j = 0; j < MODEL_FLOWS; j++) {
			if (j == i || !m->flows[j].attached || m->flows[j].nqueued == 0)
				continue;
			m->rr_diff[i][j]++;
			m->rr_diff[j][i]--;
			cr_assert_leq(
				m->rr_diff[i][j], 1,
				"round_robin: flow %d served %lld more than flow %d", i,
				(long long)m->rr_diff[i][j], j);
		}
	}
	m->fair->update(m->band, &mf->pf, true, r->bytes);
	m->dispatched++;
	return i;
}

/* Evict queued request @t (cancel, TTL, displacement), as the dispatcher
 * does: unlink it, update the flow, tell the fairness policy. */
static void
model_evict_req(struct model *m, struct treq *t)
{
	struct mflow *mf = &m->flows[t->flow];

	m->ord->remove(mf->ord_state, &t->req);
	model_unqueue(m, t, T_EVICTED);
	model_refresh_head(m, mf);
	m->fair->update(m->band, &mf->pf, false, 0);
	m->evicted++;
}

/* Evict a random queued request of a random backlogged flow. */
static void
model_evict(struct model *m)
{
	int cand[MODEL_FLOWS], n = 0;
	struct mflow *mf;

	for (int j = 0; j < MODEL_FLOWS; j++) {
		if (m->flows[j].attached && m->flows[j].nqueued > 0)
			cand[n++] = j;
	}
	if (n == 0)
		return;
	mf = &m->flows[cand[model_rand(m, (uint64_t)n)]];
	model_evict_req(m, mf->queued[model_rand(m, mf->nqueued)]);
}

static int
model_random_flow(struct model *m, bool attached, bool empty_only)
{
	int cand[MODEL_FLOWS], n = 0;

	for (int j = 0; j < MODEL_FLOWS; j++) {
		if (m->flows[j].attached == attached &&
		    (!empty_only || m->flows[j].nqueued == 0))
			cand[n++] = j;
	}
	return n == 0 ? -1 : cand[model_rand(m, (uint64_t)n)];
}

/* Dispatch until pick() says nothing is left, then check conservation. */
static void
model_drain_and_check(struct model *m)
{
	while (model_dispatch(m) >= 0)
		;
	for (int j = 0; j < MODEL_FLOWS; j++) {
		cr_assert_eq(m->flows[j].nqueued, 0);
		if (m->flows[j].attached) {
			cr_assert_null(m->ord->peek(m->flows[j].ord_state));
			cr_assert_null(m->ord->pop(m->flows[j].ord_state));
		}
	}
	cr_assert_eq(m->dispatched + m->evicted, m->nreqs, "lost or duplicated requests");
	for (size_t k = 0; k < m->nreqs; k++)
		cr_assert(m->reqs[k].state == T_DISPATCHED ||
				  m->reqs[k].state == T_EVICTED,
			  "request %zu never left", k);
	cr_assert_null(m->fair->pick(m->band));
	for (int j = 0; j < MODEL_FLOWS; j++) {
		if (m->flows[j].attached)
			model_detach(m, j);
	}
}

/*
 * @ops random steps. Attach and detach weights swing between phases so the
 * number of attached flows rises and falls (global_strict's slot array
 * grows and shrinks).
 */
static void
model_run(struct model *m, unsigned ops)
{
	for (unsigned step = 0; step < ops; step++) {
		bool growing = (step / 1500) % 2 == 0;
		uint64_t r = model_rand(m, 100);
		int i;

		/* Pushes bring ~0.6 requests per step, dispatches and
		 * evictions take ~0.55: queues hover near empty, so flows
		 * keep going idle and backlogged again. */
		if (r < (growing ? 10u : 2u)) {
			if ((i = model_random_flow(m, false, false)) >= 0)
				model_attach(m, i);
		} else if (r < 15) {
			if ((i = model_random_flow(m, true, true)) >= 0)
				model_detach(m, i);
		} else if (r < 45) {
			if ((i = model_random_flow(m, true, false)) >= 0)
				model_push(m, i, 1 + model_rand(m, 3));
		} else if (r < 90) {
			model_dispatch(m);
		} else {
			model_evict(m);
		}
	}
	model_drain_and_check(m);
}

/* Every fairness x ordering pair of the registry, several seeds each. */
static void
contract_all(unsigned ops)
{
	const uint64_t seeds[] = {1, 0x5eed, 0xfeedface12345ull};
	unsigned pairs = 0;

	for (size_t fi = 0; flowq_fairness_at(fi) != NULL; fi++) {
		for (size_t oi = 0; flowq_ordering_at(oi) != NULL; oi++) {
			for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
				struct model m;

				model_init(&m, flowq_fairness_at(fi),
					   flowq_ordering_at(oi), seeds[s],
					   4 * (size_t)ops + 8);
				model_run(&m, ops);
				cr_assert_gt(m.dispatched, ops / 10,
					     "the run dispatched little");
				cr_assert_gt(m.evicted, 0);
				/* The built-ins that know their next picks
				 * said so (with the 40 model flows). */
				if (m.is_rr || m.is_gs || m.is_wfq)
					cr_assert_gt(m.hints, 0, "%s: no look-ahead",
						     flowq_fairness_at(fi)->desc.name);
				model_fini(&m);
			}
			pairs++;
		}
	}
	cr_assert_geq(pairs, 2, "at least the built-in pairs ran");
}

Test(policy_contract, every_listed_pair_keeps_the_contract)
{
	contract_all(10000);
}

Test(policy_contract, registered_policies_are_covered_too)
{
	size_t n = 0;

	cr_assert_eq(flowq_ordering_register(&test_lifo), 0);
	while (flowq_ordering_at(n) != NULL)
		n++;
	cr_assert_eq(flowq_ordering_at(n - 1), &test_lifo, "listed after the built-ins");
	/* test_lifo changes heads on push: update(f, false, 0) is exercised. */
	contract_all(10000);
}

/* ---- what each built-in promises, beyond the contract ---------------------- */

/*
 * What the built-in fairness policies do when the engine breaks the
 * contract (each says it guards against it): update() of a flow it was never
 * told is backlogged changes nothing; flow_backlogged() repeated while the
 * flow is offered gives it no second place (global_strict and drr follow a
 * changed head; wfq's start tag ignores the head); a flow detached while
 * still backlogged leaves no reference behind. Driven through the ops with
 * no look-ahead hook (env->prefetch NULL, as a host's own tests lend it).
 */
static void
misuse_serve(const struct flowq_fairness_ops *p, void *band, struct flowq_policy_flow *pf,
	     int n, int served[])
{
	struct flowq_policy_flow *f;
	int steps = 0;

	while ((f = p->pick(band)) != NULL) {
		cr_assert_lt(++steps, 10, "%s: picks go on", p->desc.name);
		cr_assert(f >= pf && f < pf + n, "%s: picked an unknown flow",
			  p->desc.name);
		cr_assert_gt(f->queued, 0, "%s: picked an empty flow", p->desc.name);
		served[f - pf]++;
		f->queued--;
		p->update(band, f, true, f->head_bytes);
	}
}

Test(policy_contract, builtins_survive_engine_misuse)
{
	static const char *const names[] = {"global_strict", "round_robin", "drr", "wfq"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct flowq_fairness_ops *p = flowq_fairness_find(names[i]);
		struct test_count_alloc ca;
		struct flowq_policy_env env = {.priority = 0, .quantum = 100};
		struct flowq_policy_flow pf[2];
		_Alignas(max_align_t) unsigned char fstate[2][128];
		int served[2] = {0, 0};
		void *band;

		cr_assert_not_null(p, "%s", names[i]);
		cr_assert_leq(p->desc.flow_state_size, sizeof(fstate[0]));
		test_count_alloc_init(&ca);
		env.alloc = &ca.a;
		band = zalloc(p->desc.band_state_size);
		memset(fstate, 0, sizeof(fstate));
		cr_assert_eq(p->band_init(band, &env), 0, "%s", names[i]);
		for (int k = 0; k < 2; k++) {
			pf[k] = (struct flowq_policy_flow){
				.state = fstate[k], .seq = (uint64_t)k, .weight = 1};
			cr_assert_eq(p->flow_attach(band, &pf[k], &env), 0, "%s",
				     names[i]);
		}
		/* Flow 0 has a request, but flow_backlogged() was not called:
		 * an update is ignored. */
		pf[0].queued = 1;
		pf[0].head_bytes = 10;
		pf[0].head_key = 50;
		p->update(band, &pf[0], false, 0);
		cr_assert_null(p->pick(band), "%s: update adopted a flow", names[i]);
		/* Offered, then offered again with a better head. */
		p->flow_backlogged(band, &pf[0]);
		pf[1].queued = 1;
		pf[1].head_bytes = 10;
		pf[1].head_key = 40;
		p->flow_backlogged(band, &pf[1]);
		pf[0].head_key = 10;
		p->flow_backlogged(band, &pf[0]);
		if (strcmp(names[i], "global_strict") == 0)
			cr_assert_eq(p->pick(band), &pf[0], "the new head key counts");
		misuse_serve(p, band, pf, 2, served);
		cr_assert_eq(served[0], 1, "%s: flow 0 served %d times", names[i],
			     served[0]);
		cr_assert_eq(served[1], 1, "%s: flow 1 served %d times", names[i],
			     served[1]);
		/* Flow 0 detached while backlogged: only flow 1 is left. */
		pf[0].queued = pf[1].queued = 1;
		p->flow_backlogged(band, &pf[0]);
		p->flow_backlogged(band, &pf[1]);
		p->flow_detach(band, &pf[0], &env);
		served[0] = served[1] = 0;
		misuse_serve(p, band, pf, 2, served);
		cr_assert_eq(served[0], 0, "%s: a detached flow was picked", names[i]);
		cr_assert_eq(served[1], 1, "%s", names[i]);
		p->flow_detach(band, &pf[1], &env);
		p->band_fini(band, &env);
		cr_assert_eq(ca.outstanding, 0, "%s: band_fini freed everything",
			     names[i]);
		free(band);
	}
}

/* With k flows backlogged throughout, any k consecutive dispatches serve
 * each flow exactly once. */
Test(round_robin, k_backlogged_flows_each_served_once_per_k_dispatches)
{
	const struct flowq_fairness_ops *rr = flowq_fairness_find("round_robin");
	const struct flowq_ordering_ops *fcfs = flowq_ordering_find("fcfs");

	cr_assert_not_null(rr);
	for (int k = 1; k <= 7; k++) {
		struct model m;
		int seq[7 * 30];
		int n = 0;

		model_init(&m, rr, fcfs, (uint64_t)k, 7 * 40);
		for (int i = 0; i < k; i++)
			model_attach(&m, i);
		/* Each flow gets one batch per round, first backlogged in
		 * reverse index order: 40 requests each, more than the 30
		 * per flow dispatched below. */
		for (int round = 0; round < 5; round++) {
			for (int i = k - 1; i >= 0; i--)
				model_push(&m, (i + round) % k, 8);
		}
		for (n = 0; n < 30 * k; n++)
			seq[n] = model_dispatch(&m);
		for (int s = 0; s + k <= n; s++) {
			int seen[7] = {0};

			for (int w = s; w < s + k; w++)
				seen[seq[w]]++;
			for (int i = 0; i < k; i++)
				cr_assert_eq(seen[i], 1,
					     "k=%d: flow %d served %d times in window %d",
					     k, i, seen[i], s);
		}
		model_drain_and_check(&m);
		model_fini(&m);
	}
}

Test(round_robin, eviction_keeps_the_turn_and_a_new_flow_joins_at_the_back)
{
	const struct flowq_fairness_ops *rr = flowq_fairness_find("round_robin");
	struct model m;

	model_init(&m, rr, flowq_ordering_find("fcfs"), 7, 64);
	for (int i = 0; i < 3; i++) {
		model_attach(&m, i);
		model_push(&m, i, 4);
	}
	cr_assert_eq(model_dispatch(&m), 0);
	/* Ring 1, 2, 0. Evicting the head and a later request of flow 1
	 * (which stays backlogged) keeps it at the front. */
	model_evict_req(&m, treq_of(m.ord->peek(m.flows[1].ord_state)));
	model_evict_req(&m, m.flows[1].queued[0]);
	cr_assert_eq(m.flows[1].nqueued, 2);
	cr_assert_eq(model_pick(&m), 1);
	model_attach(&m, 3);
	model_push(&m, 3, 1);
	cr_assert_eq(model_dispatch(&m), 1);
	cr_assert_eq(model_dispatch(&m), 2);
	cr_assert_eq(model_dispatch(&m), 0);
	cr_assert_eq(model_dispatch(&m), 3); /* joined behind 0 */
	cr_assert_eq(model_dispatch(&m), 1);
	model_drain_and_check(&m);
	model_fini(&m);
}

Test(global_strict, picks_follow_head_keys_with_seq_tie_break)
{
	const struct flowq_fairness_ops *gs = flowq_fairness_find("global_strict");
	struct model m;
	int order[6];

	model_init(&m, gs, flowq_ordering_find("fcfs"), 1, 16);
	for (int i = 0; i < 3; i++)
		model_attach(&m, i);
	/* Keys by hand (the model's push draws them at random). */
	{
		static const int64_t keys[3][2] = {{50, 70}, {50, 60}, {10, 90}};

		for (int i = 0; i < 3; i++) {
			struct mflow *mf = &m.flows[i];

			for (int k = 0; k < 2; k++) {
				model_push(&m, i, 1);
				mf->queued[mf->nqueued - 1]->req.priv.enqueue_ns =
					keys[i][k];
			}
			/* Re-read the head with the key set by hand, and tell
			 * the policy. */
			model_refresh_head(&m, mf);
			m.fair->update(m.band, &mf->pf, false, 0);
		}
	}
	for (int n = 0; n < 6; n++)
		order[n] = model_dispatch(&m);
	/* 10 (flow 2), 50 (flow 0: seq 0 beats flow 1's seq 1), 50 (flow 1),
	 * 60 (flow 1), 70 (flow 0), 90 (flow 2). */
	cr_assert_arr_eq(order, ((int[]){2, 0, 1, 1, 0, 2}), sizeof(order));
	cr_assert_eq(model_dispatch(&m), -1);
	model_drain_and_check(&m);
	model_fini(&m);
}

Test(global_strict, slot_array_grows_shrinks_and_frees_through_the_hook)
{
	const struct flowq_fairness_ops *gs = flowq_fairness_find("global_strict");
	enum { N = 1000 };
	struct test_count_alloc ca = {.a = {.alloc = test_count_alloc_fn, .free = test_count_free_fn},
				 .fail_after = ~0ul};
	struct flowq_policy_env env = {.alloc = &ca.a, .priority = 0};
	static struct flowq_policy_flow pf[N];
	/* Policy state is engine memory, aligned for any type. */
	static _Alignas(max_align_t) unsigned char fstate[N][64];
	void *band = zalloc(gs->desc.band_state_size);

	ca.a.ctx = &ca;
	cr_assert_leq(gs->desc.flow_state_size, sizeof(fstate[0]));
	cr_assert_eq(gs->band_init(band, &env), 0);
	cr_assert_eq(ca.outstanding, 0, "no allocation before a flow attaches");
	for (int i = 0; i < N; i++) {
		pf[i] = (struct flowq_policy_flow){.state = fstate[i],
						   .seq = (uint64_t)i};
		cr_assert_eq(gs->flow_attach(band, &pf[i], &env), 0);
		/* Every attached flow can be backlogged at once. */
		pf[i].queued = 1;
		pf[i].head_key = (int64_t)((i * 7919) % N);
		gs->flow_backlogged(band, &pf[i]);
	}
	/* Doubling: about log2(N) allocations, not N. */
	cr_assert_leq(ca.allocs, 12u, "%llu allocations for %d flows", (unsigned long long)ca.allocs, N);
	cr_assert_geq(ca.outstanding, N * sizeof(struct flowq__kheap_slot));
	cr_assert_leq(ca.outstanding, 2 * N * sizeof(struct flowq__kheap_slot));
	/* All backlogged: the heap order is the key order. */
	for (int64_t want = 0; want < N; want++) {
		struct flowq_policy_flow *f = gs->pick(band);

		cr_assert_not_null(f);
		cr_assert_eq(f->head_key, want);
		f->queued = 0;
		gs->update(band, f, true, 1);
	}
	cr_assert_null(gs->pick(band));
	/* Detach down to 10: the array shrinks to within 4x of what is
	 * attached (GS_MIN_CAP = 8 slots at least). */
	for (int i = 10; i < N; i++)
		gs->flow_detach(band, &pf[i], &env);
	cr_assert_leq(ca.outstanding, 4 * (10 + 1) * sizeof(struct flowq__kheap_slot),
		      "%zu bytes kept", ca.outstanding);
	for (int i = 0; i < 10; i++)
		gs->flow_detach(band, &pf[i], &env);
	gs->band_fini(band, &env);
	cr_assert_eq(ca.outstanding, 0, "band_fini freed everything");
	free(band);
}

/* Detach @p n flows of @p pf from @p band, end it and free it. */
static void
band_teardown(const struct flowq_fairness_ops *ops, void *band,
	      struct flowq_policy_flow *pf, int n, const struct flowq_policy_env *env)
{
	for (int i = 0; i < n; i++)
		ops->flow_detach(band, &pf[i], env);
	ops->band_fini(band, env);
	free(band);
}

/* The engine's look-ahead hook as global_strict drives it: after each
 * dispatch (update()) with at least 8 flows backlogged, exactly two calls:
 * stage 1 for the next pick (the heap top) and stage 0 for the flow second
 * by (head_key, seq), found here by brute force; with fewer flows, none;
 * never from flow_backlogged() or pick(). The policy keeps no per-flow
 * state: its index lives in a hot word of the view. */
struct gs_hints {
	const struct flowq_policy_flow *f[4];
	unsigned stage[4];
	unsigned n;
};

static void
gs_record_hint(void *arg, const struct flowq_policy_flow *f, unsigned stage)
{
	struct gs_hints *h = arg;

	cr_assert_lt(h->n, 4u, "more than two look-ahead calls per update");
	h->f[h->n] = f;
	h->stage[h->n] = stage;
	h->n++;
}

Test(global_strict, look_ahead_names_the_next_two_picks)
{
	const struct flowq_fairness_ops *gs = flowq_fairness_find("global_strict");
	enum { N = 40 };
	struct test_count_alloc ca = {
		.a = {.alloc = test_count_alloc_fn, .free = test_count_free_fn},
		.fail_after = ~0ul};
	struct gs_hints hints = {0};
	struct flowq_policy_env env = {.alloc = &ca.a,
				       .quantum = 4096,
				       .prefetch = gs_record_hint,
				       .prefetch_arg = &hints};
	static struct flowq_policy_flow pf[N];
	void *band = zalloc(gs->desc.band_state_size);
	uint64_t rng = 7;
	unsigned checked = 0, quiet = 0;

	ca.a.ctx = &ca;
	cr_assert_eq(gs->desc.flow_state_size, 0u, "no per-flow state");
	cr_assert_eq(gs->band_init(band, &env), 0);
	for (int i = 0; i < N; i++) {
		/* Hot words are the policy's from attach on: garbage before. */
		pf[i] = (struct flowq_policy_flow){
			.seq = (uint64_t)i, .weight = 1, .hot = {0, ~0ull}};
		cr_assert_eq(gs->flow_attach(band, &pf[i], &env), 0);
		pf[i].queued = 1 + (uint64_t)(i % 5);
		pf[i].head_key = (int64_t)(test_rng_next(&rng) % 1000);
		gs->flow_backlogged(band, &pf[i]);
	}
	cr_assert_eq(hints.n, 0u, "no look-ahead outside update()");
	for (struct flowq_policy_flow *f; (f = gs->pick(band)) != NULL;) {
		const struct flowq_policy_flow *second = NULL;
		unsigned backlogged = 0;

		cr_assert(hints.n == 0 || hints.f[0] == f,
			  "the last stage 1 call named this pick");
		/* Serve f's head: its next one comes later (or it empties). */
		f->queued--;
		f->head_key += (int64_t)(test_rng_next(&rng) % 500);
		hints.n = 0;
		gs->update(band, f, true, 1);
		for (int i = 0; i < N; i++)
			backlogged += pf[i].queued > 0;
		if (backlogged < 8) {
			cr_assert_eq(hints.n, 0u, "look-ahead with %u flows backlogged",
				     backlogged);
			quiet++;
			continue;
		}
		struct flowq_policy_flow *top = gs->pick(band);
		for (int i = 0; i < N; i++) {
			const struct flowq_policy_flow *g = &pf[i];

			if (g->queued == 0 || g == top)
				continue;
			if (second == NULL || g->head_key < second->head_key ||
			    (g->head_key == second->head_key && g->seq < second->seq))
				second = g;
		}
		cr_assert_eq(hints.n, 2u, "two look-ahead calls per update");
		cr_assert_eq(hints.stage[0], 1u);
		cr_assert_eq(hints.f[0], top, "stage 1 names the next pick");
		cr_assert_eq(hints.stage[1], 0u);
		cr_assert_eq(hints.f[1], second, "stage 0 names the one after it");
		checked++;
	}
	cr_assert(checked > 50 && quiet > 0, "checked %u updates, %u quiet", checked,
		  quiet);
	band_teardown(gs, band, pf, N, &env);
	cr_assert_eq(ca.outstanding, 0);
}

/* wfq keeps its per-decision state in the view's hot words (the slot index,
 * the carry and its weight) and, after each update() with 8 or more flows
 * backlogged, names the next pick at stage 1 and another backlogged flow
 * at stage 0 (the second smallest start tag); never from flow_backlogged()
 * or pick(). Weights and sizes vary, so carries and tags differ. */
Test(wfq, look_ahead_names_the_next_pick)
{
	const struct flowq_fairness_ops *wfq = flowq_fairness_find("wfq");
	enum { N = 40 };
	struct test_count_alloc ca = {
		.a = {.alloc = test_count_alloc_fn, .free = test_count_free_fn},
		.fail_after = ~0ul};
	struct gs_hints hints = {0};
	struct flowq_policy_env env = {.alloc = &ca.a,
				       .quantum = 4096,
				       .prefetch = gs_record_hint,
				       .prefetch_arg = &hints};
	static struct flowq_policy_flow pf[N];
	static _Alignas(max_align_t) unsigned char st[N][64];
	void *band = zalloc(wfq->desc.band_state_size);
	uint64_t rng = 11;
	unsigned checked = 0, quiet = 0;

	ca.a.ctx = &ca;
	cr_assert_leq(wfq->desc.flow_state_size, sizeof(st[0]));
	cr_assert_eq(wfq->band_init(band, &env), 0);
	for (int i = 0; i < N; i++) {
		/* Hot words are the policy's from attach on: garbage before. */
		pf[i] = (struct flowq_policy_flow){.state = st[i],
						   .seq = (uint64_t)i,
						   .weight = 1 + (uint32_t)(i % 3),
						   .hot = {0, ~0ull}};
		cr_assert_eq(wfq->flow_attach(band, &pf[i], &env), 0);
		pf[i].queued = 1 + (uint64_t)(i % 5);
		pf[i].head_bytes = 1 + test_rng_next(&rng) % 3000;
		wfq->flow_backlogged(band, &pf[i]);
	}
	cr_assert_eq(hints.n, 0u, "no look-ahead outside update()");
	for (struct flowq_policy_flow *f; (f = wfq->pick(band)) != NULL;) {
		unsigned backlogged = 0;

		cr_assert(hints.n == 0 || hints.f[0] == f,
			  "the last stage 1 call named this pick");
		f->queued--;
		uint64_t served = f->head_bytes;
		f->head_bytes = 1 + test_rng_next(&rng) % 3000;
		hints.n = 0;
		wfq->update(band, f, true, served);
		for (int i = 0; i < N; i++)
			backlogged += pf[i].queued > 0;
		cr_assert_eq(wfq->pick(band) == NULL, backlogged == 0);
		if (backlogged < 8) {
			cr_assert_eq(hints.n, 0u, "look-ahead with %u flows backlogged",
				     backlogged);
			quiet++;
			continue;
		}
		cr_assert_eq(hints.n, 2u, "two look-ahead calls per update");
		cr_assert_eq(hints.stage[0], 1u);
		cr_assert_eq(hints.f[0], wfq->pick(band), "stage 1 names the next pick");
		cr_assert_eq(hints.stage[1], 0u);
		cr_assert(hints.f[1] != hints.f[0] && hints.f[1]->queued > 0,
			  "stage 0 names another backlogged flow");
		checked++;
	}
	cr_assert(checked > 50 && quiet > 0, "checked %u updates, %u quiet", checked,
		  quiet);
	band_teardown(wfq, band, pf, N, &env);
	cr_assert_eq(ca.outstanding, 0);
}

/* wfq's carry lives in the view's second hot word with the weight it was
 * computed with (fairness_wfq.c, WFQ_HOT_CARRY): every uint32 weight fits,
 * and attach clears whatever the word held (here a carry that the flow's
 * own weight would accept; conformance_fairness covers a weight change).
 * Checked through the tags: with weight w and requests of b bytes, the k-th
 * request finishes at floor(k * b / w), which only an exact carry gives. */
Test(wfq, carry_holds_at_any_weight)
{
	const struct flowq_fairness_ops *wfq = flowq_fairness_find("wfq");
	struct test_count_alloc ca = {
		.a = {.alloc = test_count_alloc_fn, .free = test_count_free_fn},
		.fail_after = ~0ul};
	struct flowq_policy_env env = {.alloc = &ca.a, .quantum = 4096};
	static const uint32_t weights[] = {1,     3,        65535,     65536,
					   70001, 1u << 31, UINT32_MAX};

	ca.a.ctx = &ca;
	for (size_t k = 0; k < sizeof(weights) / sizeof(weights[0]); k++) {
		uint64_t w = weights[k];
		/* A request size that leaves a carry of nearly w. */
		uint64_t b = w > 1 ? w - 1 : 1;
		struct flowq_policy_flow pf[2];
		_Alignas(max_align_t) unsigned char st[2][64];
		void *band = zalloc(wfq->desc.band_state_size);

		cr_assert_eq(wfq->band_init(band, &env), 0);
		for (int i = 0; i < 2; i++) {
			pf[i] = (struct flowq_policy_flow){
				.state = st[i],
				.seq = (uint64_t)i,
				.weight = (uint32_t)w,
				.hot = {0, w << 32 | (w > 1 ? w - 1 : 0)}};
			cr_assert_eq(wfq->flow_attach(band, &pf[i], &env), 0);
		}
		/* Flow 0 alone: n requests of b bytes; its tag (v, as the
		 * next pick's start) must be floor(n * b / w) exactly. */
		pf[0].queued = 1000;
		pf[0].head_bytes = b;
		wfq->flow_backlogged(band, &pf[0]);
		for (uint64_t n = 1; n <= 6; n++) {
			cr_assert_eq(wfq->pick(band), &pf[0]);
			pf[0].queued--;
			wfq->update(band, &pf[0], true, b);
			/* Flow 1 joins at v = flow 0's start tag, then leaves
			 * (evicted): a probe of v that changes nothing. */
			uint64_t want = (n - 1) * b / w; /* this request's start */
			pf[1].queued = 1;
			pf[1].head_bytes = 1;
			wfq->flow_backlogged(band, &pf[1]);
			/* flow 1 starts at v = want; it goes first only if flow
			 * 0's next start (n * b / w) is later, or equal with
			 * its larger seq losing the tie. */
			bool f1_first = n * b / w > want;
			cr_assert_eq(wfq->pick(band), f1_first ? &pf[1] : &pf[0],
				     "w %llu, request %llu: tags off (carry lost or kept "
				     "wrongly)",
				     (unsigned long long)w, (unsigned long long)n);
			pf[1].queued = 0;
			wfq->update(band, &pf[1], false, 0);
		}
		band_teardown(wfq, band, pf, 2, &env);
	}
	cr_assert_eq(ca.outstanding, 0);
}

/* drr refuses a quantum the engine would not lend (0, or above its 2^62
 * credit ceiling). */
Test(drr, band_init_refuses_a_quantum_out_of_range)
{
	const struct flowq_fairness_ops *d = flowq_fairness_find("drr");
	struct flowq_policy_env env = {.alloc = flowq_allocator_libc(), .quantum = 0};
	void *band = zalloc(d->desc.band_state_size);

	cr_assert_eq(d->band_init(band, &env), -EINVAL);
	env.quantum = (UINT64_C(1) << 62) + 1;
	cr_assert_eq(d->band_init(band, &env), -EINVAL);
	env.quantum = UINT64_C(1) << 62;
	cr_assert_eq(d->band_init(band, &env), 0);
	d->band_fini(band, &env);
	free(band);
}

/* drr's attach takes room in its far heap, then in its ring: either
 * allocation failing is -ENOMEM (when the ring's fails, the heap's room is
 * given back), and the band works once memory is back. */
Test(drr, attach_enomem_at_either_allocation)
{
	const struct flowq_fairness_ops *d = flowq_fairness_find("drr");
	struct test_count_alloc ca;
	struct flowq_policy_env env = {.quantum = 100};
	struct flowq_policy_flow pf;
	_Alignas(max_align_t) unsigned char fstate[128] = {0};
	void *band = zalloc(d->desc.band_state_size);

	cr_assert_leq(d->desc.flow_state_size, sizeof(fstate));
	test_count_alloc_init(&ca);
	env.alloc = &ca.a;
	cr_assert_eq(d->band_init(band, &env), 0);
	pf = (struct flowq_policy_flow){.state = fstate, .weight = 1};
	test_count_alloc_budget(&ca, 0); /* the heap's slots */
	cr_assert_eq(d->flow_attach(band, &pf, &env), -ENOMEM);
	cr_assert_eq(ca.failed, 1);
	cr_assert_eq(ca.outstanding, 0);
	test_count_alloc_budget(&ca, 1); /* the heap's, not the ring's */
	cr_assert_eq(d->flow_attach(band, &pf, &env), -ENOMEM);
	cr_assert_eq(ca.failed, 2, "the second allocation (the ring's) failed");
	/* Memory back: the flow attaches and is served. */
	ca.fail_after = ~0ul;
	cr_assert_eq(d->flow_attach(band, &pf, &env), 0);
	pf.queued = 1;
	pf.head_bytes = 10;
	d->flow_backlogged(band, &pf);
	cr_assert_eq(d->pick(band), &pf);
	pf.queued = 0;
	d->update(band, &pf, true, 10);
	cr_assert_null(d->pick(band));
	d->flow_detach(band, &pf, &env);
	d->band_fini(band, &env);
	cr_assert_eq(ca.outstanding, 0);
	free(band);
}

/* A flow waiting for a later round (its head needs 10 visits) whose weight
 * grew meanwhile (the engine changes weights only of empty flows; drr
 * clamps in case) and whose head then shrank is moved up with the credit of
 * one visit at its new weight, not an underflowed one (which trips
 * drr_set_credit's assert, or in a release build gives the flow a turn of
 * ~2^64 bytes). The clamp counts nothing for the next round's visit, so the
 * flow is served in the round after it: after flow 1's turns of three
 * rounds (30 picks), not ten rounds on (100). */
Test(drr, a_waiting_flow_whose_weight_grew_is_rescheduled_without_underflow)
{
	const struct flowq_fairness_ops *d = flowq_fairness_find("drr");
	struct flowq_policy_env env = {.alloc = flowq_allocator_libc(), .quantum = 100};
	struct flowq_policy_flow pf[2];
	_Alignas(max_align_t) unsigned char fstate[2][128] = {{0}};
	void *band = zalloc(d->desc.band_state_size);
	int picks_before_0 = 0;

	cr_assert_eq(d->band_init(band, &env), 0);
	for (int k = 0; k < 2; k++) {
		pf[k] = (struct flowq_policy_flow){
			.state = fstate[k], .seq = (uint64_t)k, .weight = 1};
		cr_assert_eq(d->flow_attach(band, &pf[k], &env), 0);
	}
	/* Flow 1: 50 requests of 10 bytes (10 per visit); flow 0: a head of
	 * 1000 bytes (10 visits ahead). */
	pf[1].queued = 50;
	pf[1].head_bytes = 10;
	d->flow_backlogged(band, &pf[1]);
	pf[0].queued = 1;
	pf[0].head_bytes = 1000;
	d->flow_backlogged(band, &pf[0]);
	pf[0].weight = 100;
	pf[0].head_bytes = 500;
	d->update(band, &pf[0], false, 0);
	for (;;) {
		struct flowq_policy_flow *f = d->pick(band);

		cr_assert_not_null(f);
		if (f == &pf[0])
			break;
		picks_before_0++;
		f->queued--;
		d->update(band, f, true, 10);
	}
	cr_assert_eq(picks_before_0, 30, "served after %d picks of flow 1",
		     picks_before_0);
	pf[0].queued = 0;
	d->update(band, &pf[0], true, 500);
	while (pf[1].queued > 0) {
		cr_assert_eq(d->pick(band), &pf[1]);
		pf[1].queued--;
		d->update(band, &pf[1], true, 10);
	}
	cr_assert_null(d->pick(band));
	for (int k = 0; k < 2; k++)
		d->flow_detach(band, &pf[k], &env);
	d->band_fini(band, &env);
	free(band);
}

Test(global_strict, attach_enomem_leaves_the_band_working)
{
	const struct flowq_fairness_ops *gs = flowq_fairness_find("global_strict");
	struct test_count_alloc ca = {.a = {.alloc = test_count_alloc_fn, .free = test_count_free_fn},
				 .fail_after = 1};
	struct flowq_policy_env env = {.alloc = &ca.a, .priority = 0};
	struct flowq_policy_flow pf[40];
	_Alignas(max_align_t) unsigned char fstate[40][64];
	void *band = zalloc(gs->desc.band_state_size);
	int attached = 0, rc = 0;

	ca.a.ctx = &ca;
	cr_assert_eq(gs->band_init(band, &env), 0);
	/* One allocation allowed: the first array; growing it fails. */
	while (attached < 40) {
		pf[attached] = (struct flowq_policy_flow){.state = fstate[attached],
							  .seq = (uint64_t)attached};
		rc = gs->flow_attach(band, &pf[attached], &env);
		if (rc != 0)
			break;
		attached++;
	}
	cr_assert_eq(rc, -ENOMEM);
	cr_assert_gt(attached, 0);
	/* The flows attached before the failure all still work. */
	for (int i = 0; i < attached; i++) {
		pf[i].queued = 1;
		pf[i].head_key = -i;
		gs->flow_backlogged(band, &pf[i]);
	}
	for (int i = attached - 1; i >= 0; i--) {
		cr_assert_eq(gs->pick(band), &pf[i]);
		pf[i].queued = 0;
		gs->update(band, &pf[i], true, 0);
	}
	cr_assert_null(gs->pick(band));
	/* Once memory is back, the failed flow attaches. */
	ca.fail_after = ~0ul;
	cr_assert_eq(gs->flow_attach(band, &pf[attached], &env), 0);
	for (int i = 0; i <= attached; i++)
		gs->flow_detach(band, &pf[i], &env);
	gs->band_fini(band, &env);
	cr_assert_eq(ca.outstanding, 0);
	free(band);
}

/* ---- registry ------------------------------------------------------------- */

static bool
name_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '_'))
			return false;
	}
	return n >= 1 && n <= FLOWQ_POLICY_NAME_MAX;
}

Test(registry, builtins_are_listed_and_found_by_name)
{
	static const char *const fair_names[] = {"global_strict", "round_robin", "drr",
						 "wfq"};
	size_t nf = 0, no = 0;

	for (size_t i = 0; i < 4; i++) {
		const struct flowq_fairness_ops *f = flowq_fairness_find(fair_names[i]);

		cr_assert_not_null(f, "%s", fair_names[i]);
		cr_assert_str_eq(f->desc.name, fair_names[i]);
	}
	cr_assert_str_eq(flowq_ordering_find("fcfs")->desc.name, "fcfs");
	cr_assert_str_eq(flowq_ordering_find("edf")->desc.name, "edf");
	cr_assert_str_eq(flowq_ordering_find("slo_deadline")->desc.name, "slo_deadline");
	/* at() lists each exactly once, and find() returns the same object. */
	for (const struct flowq_fairness_ops *f; (f = flowq_fairness_at(nf)) != NULL;
	     nf++) {
		cr_assert_eq(flowq_fairness_find(f->desc.name), f);
		for (size_t j = 0; j < nf; j++)
			cr_assert_str_neq(flowq_fairness_at(j)->desc.name, f->desc.name);
	}
	for (const struct flowq_ordering_ops *o; (o = flowq_ordering_at(no)) != NULL;
	     no++)
		cr_assert_eq(flowq_ordering_find(o->desc.name), o);
	cr_assert_eq(nf, 4, "built-in fairness policies");
	cr_assert_eq(no, 3, "built-in ordering policies");
	cr_assert_null(flowq_fairness_at(nf + 1));
	cr_assert_null(flowq_fairness_at(SIZE_MAX));
	cr_assert_null(flowq_ordering_at(SIZE_MAX));
}

Test(registry, find_misses)
{
	cr_assert_null(flowq_fairness_find(NULL));
	cr_assert_null(flowq_ordering_find(NULL));
	cr_assert_null(flowq_fairness_find(""));
	cr_assert_null(flowq_fairness_find("drr2"));
	cr_assert_null(flowq_fairness_find("global_strict "));
	cr_assert_null(flowq_fairness_find("GLOBAL_STRICT"));
	/* Kinds are separate name spaces. */
	cr_assert_null(flowq_fairness_find("fcfs"));
	cr_assert_null(flowq_ordering_find("round_robin"));
}

/* Every listed policy is well formed: re-registering it gets past
 * validation (-EINVAL comes first) and stops at the duplicate name. */
Test(registry, every_listed_policy_is_valid)
{
	for (size_t i = 0; flowq_fairness_at(i) != NULL; i++) {
		const struct flowq_fairness_ops *f = flowq_fairness_at(i);

		cr_assert(name_ok(f->desc.name));
		cr_assert_eq(f->desc.abi_version, FLOWQ_POLICY_ABI);
		cr_assert_not_null(f->desc.description);
		cr_assert_eq(flowq_fairness_register(f), -EEXIST, "%s", f->desc.name);
	}
	for (size_t i = 0; flowq_ordering_at(i) != NULL; i++) {
		const struct flowq_ordering_ops *o = flowq_ordering_at(i);

		cr_assert(name_ok(o->desc.name));
		cr_assert_eq(flowq_ordering_register(o), -EEXIST, "%s", o->desc.name);
	}
}

/* A valid fairness policy to mutate (round_robin's ops, renamed). */
static struct flowq_fairness_ops
fair_template(const char *name)
{
	struct flowq_fairness_ops o = *flowq_fairness_find("round_robin");

	o.desc.name = name;
	return o;
}

static struct flowq_ordering_ops
ord_template(const char *name)
{
	struct flowq_ordering_ops o = test_lifo;

	o.desc.name = name;
	return o;
}

/* A policy built for the oldest ABI still accepted (3: before
 * flowq_policy_env gained the look-ahead hook, which it never reads)
 * registers. */
Test(registry, a_policy_of_the_oldest_accepted_abi_registers)
{
	static struct flowq_fairness_ops f;

	f = fair_template("abi_oldest");
	f.desc.abi_version = FLOWQ_POLICY_ABI_MIN;
	cr_assert_lt(FLOWQ_POLICY_ABI_MIN, FLOWQ_POLICY_ABI);
	cr_assert_eq(flowq_fairness_register(&f), 0);
	cr_assert_eq(flowq_fairness_find("abi_oldest"), &f);
}

Test(registry, register_rejects_invalid_ops)
{
	static const char *const bad_names[] = {
		"",
		"Upper",
		"with-dash",
		"sp ace",
		"dot.",
		"\xc3\xa9t\xc3\xa9",
		"a_name_that_is_32_chars_long_xyz", /* FLOWQ_POLICY_NAME_MAX + 1 */
	};
	static struct flowq_fairness_ops f;
	static struct flowq_ordering_ops o;

	cr_assert_eq(strlen(bad_names[6]), FLOWQ_POLICY_NAME_MAX + 1);
	cr_assert_eq(flowq_fairness_register(NULL), -EINVAL);
	cr_assert_eq(flowq_ordering_register(NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		f = fair_template(bad_names[i]);
		cr_assert_eq(flowq_fairness_register(&f), -EINVAL, "\"%s\"",
			     bad_names[i]);
		o = ord_template(bad_names[i]);
		cr_assert_eq(flowq_ordering_register(&o), -EINVAL, "\"%s\"",
			     bad_names[i]);
	}
	f = fair_template(NULL);
	cr_assert_eq(flowq_fairness_register(&f), -EINVAL);
	f = fair_template("x");
	f.desc.abi_version = FLOWQ_POLICY_ABI + 1;
	cr_assert_eq(flowq_fairness_register(&f), -EINVAL);
	f.desc.abi_version = 0;
	cr_assert_eq(flowq_fairness_register(&f), -EINVAL);
	f.desc.abi_version = FLOWQ_POLICY_ABI_MIN - 1;
	cr_assert_eq(flowq_fairness_register(&f), -EINVAL);
	f = fair_template("x");
	f.desc.description = NULL;
	cr_assert_eq(flowq_fairness_register(&f), -EINVAL);
	o = ord_template("x");
	o.desc.abi_version = FLOWQ_POLICY_ABI + 1;
	cr_assert_eq(flowq_ordering_register(&o), -EINVAL);

	/* Each op missing in turn. */
	for (int op = 0; op < 7; op++) {
		f = fair_template("x");
		switch (op) {
		case 0:
			f.band_init = NULL;
			break;
		case 1:
			f.band_fini = NULL;
			break;
		case 2:
			f.flow_attach = NULL;
			break;
		case 3:
			f.flow_detach = NULL;
			break;
		case 4:
			f.flow_backlogged = NULL;
			break;
		case 5:
			f.pick = NULL;
			break;
		case 6:
			f.update = NULL;
			break;
		}
		cr_assert_eq(flowq_fairness_register(&f), -EINVAL, "fairness op %d", op);
	}
	for (int op = 0; op < 5; op++) {
		o = ord_template("x");
		switch (op) {
		case 0:
			o.push_batch = NULL;
			break;
		case 1:
			o.peek = NULL;
			break;
		case 2:
			o.pop = NULL;
			break;
		case 3:
			o.remove = NULL;
			break;
		case 4:
			o.key = NULL;
			break;
		}
		cr_assert_eq(flowq_ordering_register(&o), -EINVAL, "ordering op %d", op);
	}
	/* None of that registered anything (4 and 3 built-ins). */
	cr_assert_null(flowq_fairness_find("x"));
	cr_assert_null(flowq_ordering_find("x"));
	cr_assert_null(flowq_fairness_at(4));
	cr_assert_null(flowq_ordering_at(3));
	/* The longest valid name is accepted. */
	f = fair_template("a_name_that_is_31_chars_long_xy");
	cr_assert_eq(strlen(f.desc.name), FLOWQ_POLICY_NAME_MAX);
	cr_assert_eq(flowq_fairness_register(&f), 0);
}

Test(registry, register_rejects_duplicates)
{
	static struct flowq_fairness_ops a, b, builtin_name;
	static struct flowq_ordering_ops same_name_other_kind;

	a = fair_template("mine");
	b = fair_template("mine");
	cr_assert_eq(flowq_fairness_register(&a), 0);
	cr_assert_eq(flowq_fairness_find("mine"), &a);
	cr_assert_eq(flowq_fairness_register(&a), -EEXIST);
	cr_assert_eq(flowq_fairness_register(&b), -EEXIST, "same name, other object");
	builtin_name = fair_template("global_strict");
	cr_assert_eq(flowq_fairness_register(&builtin_name), -EEXIST);
	cr_assert_neq(flowq_fairness_find("global_strict"), &builtin_name,
		      "the built-in is not replaced");
	/* Names are unique per kind only. */
	same_name_other_kind = ord_template("mine");
	cr_assert_eq(flowq_ordering_register(&same_name_other_kind), 0);
	cr_assert_eq(flowq_ordering_find("mine"), &same_name_other_kind);
	cr_assert_eq(flowq_fairness_find("mine"), &a);
}

Test(registry, register_fills_the_table_then_enospc)
{
	static char names[FLOWQ_POLICY_MAX + 1][24];
	static struct flowq_fairness_ops ops[FLOWQ_POLICY_MAX + 1];
	size_t nbuiltin = 0, n;

	while (flowq_fairness_at(nbuiltin) != NULL)
		nbuiltin++;
	POLICY_FILL_TO_ENOSPC(flowq_fairness_register, flowq_fairness_find, fair_template, "p",
			      names, ops, nbuiltin, &n);
	/* Validation and duplicates are still reported first. */
	cr_assert_eq(flowq_fairness_register(&ops[0]), -EEXIST);
	cr_assert_eq(flowq_fairness_register(NULL), -EINVAL);
	/* Listed after the built-ins, in registration order; found by name. */
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(flowq_fairness_at(nbuiltin + i), &ops[i]);
		cr_assert_eq(flowq_fairness_find(names[i]), &ops[i]);
	}
	cr_assert_null(flowq_fairness_at(FLOWQ_POLICY_MAX));
	cr_assert_null(flowq_fairness_find(names[n]));
	/* The other kind has its own table. */
	{
		static struct flowq_ordering_ops o;

		o = ord_template("still_room");
		cr_assert_eq(flowq_ordering_register(&o), 0);
	}
}

/* Lookups run concurrently with registrations: every entry a lookup returns
 * is complete (found by its own name, valid name, ops set). */
static struct flowq_fairness_ops conc_ops[FLOWQ_POLICY_MAX];
static char conc_names[FLOWQ_POLICY_MAX][24];
static atomic_bool conc_done;

static void *
conc_registrar(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;

	for (size_t i = 0; i < n; i++) {
		snprintf(conc_names[i], sizeof(conc_names[i]), "c%02zu", i);
		conc_ops[i] = fair_template(conc_names[i]);
		if (flowq_fairness_register(&conc_ops[i]) != 0)
			abort();
	}
	atomic_store_explicit(&conc_done, true, memory_order_release);
	return NULL;
}

Test(registry, lookups_concurrent_with_register_see_complete_entries)
{
	size_t nbuiltin = 0, seen_max = 0;
	pthread_t t;

	while (flowq_fairness_at(nbuiltin) != NULL)
		nbuiltin++;
	cr_assert_eq(pthread_create(&t, NULL, conc_registrar,
				    (void *)(uintptr_t)(FLOWQ_POLICY_MAX - nbuiltin)),
		     0);
	for (bool done = false; !done;) {
		size_t i;

		done = atomic_load_explicit(&conc_done, memory_order_acquire);
		for (i = 0; flowq_fairness_at(i) != NULL; i++) {
			const struct flowq_fairness_ops *f = flowq_fairness_at(i);

			cr_assert(name_ok(f->desc.name));
			cr_assert_not_null(f->pick);
			cr_assert_eq(flowq_fairness_find(f->desc.name), f);
		}
		/* Entries appear in order and never disappear. */
		cr_assert_geq(i, seen_max);
		seen_max = i;
	}
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(seen_max, FLOWQ_POLICY_MAX);
}

/* ---- a host policy's errors in an engine ---------------------------------- */

/* round_robin whose band_init fails with -EIO (a host policy may return any
 * negative errno there). */
static int
failing_band_init(void *band, const struct flowq_policy_env *env)
{
	(void)band;
	(void)env;
	return -EIO;
}

static const struct flowq_fairness_ops *
register_failing_fairness(void)
{
	static struct flowq_fairness_ops f;

	f = fair_template("fails_band_init");
	f.band_init = failing_band_init;
	cr_assert_eq(flowq_fairness_register(&f), 0);
	return &f;
}

Test(engine_policy, create_returns_a_configured_bands_band_init_error)
{
	struct test_count_alloc ca;
	struct flowq_config c = fx_polled_cfg();
	struct flowq_band_config b = c.default_band;
	struct flowq_engine *e = (struct flowq_engine *)0x1;

	register_failing_fairness();
	test_count_alloc_init(&ca);
	c.allocator = &ca.a;
	c.shards = 2;
	b.priority = 1;
	b.fairness = "fails_band_init";
	c.bands = &b;
	c.nbands = 1;
	cr_assert_eq(flowq_engine_create(&c, &e), -EIO);
	cr_assert_eq(e, (struct flowq_engine *)0x1, "no engine handed out");
	cr_assert_eq(ca.blocks, 0, "nothing left allocated");
}

Test(engine_policy, submit_returns_a_new_bands_band_init_error)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e;
	struct flowq_stats st;
	struct fx_req h;

	register_failing_fairness();
	c.default_band.fairness = "fails_band_init";
	e = fx_make(&c);
	/* The just-in-time band for priority 3 cannot be made: the policy's
	 * errno, not "no such band". */
	fx_req_init(&h, "f", 3, 1);
	cr_assert_eq(flowq_submit(e, &h.req), -EIO);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_UNKNOWN_BAND);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(h.completions, 0);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_UNKNOWN_BAND], 1);
	/* A batch and a flow handle go through the same look-up. */
	struct flowq_req *one = &h.req;
	int rc = 0;
	fx_req_init(&h, "f", 3, 1);
	cr_assert_eq(flowq_submit_batch(e, &one, 1, &rc), 0);
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_UNKNOWN_BAND);
	struct flowq_flow *fl = NULL;
	cr_assert_eq(flowq_flow_get(e, "f", 1, 3, &fl), -EIO);
	cr_assert_null(fl);
	flowq_engine_destroy(e);
}

/* ---- a host displacement policy that fails ---------------------------------- */

/*
 * "count_rr": round_robin with its band and flow calls counted, so that a
 * test can check the engine undoes what it did when a later step fails
 * (every band_init has its band_fini, every flow_attach its flow_detach).
 * "flaky_disp": lowest_band_newest with a flow_attach that fails while
 * flaky.fail_attach is set, and a band_init that fails while
 * flaky.fail_band_init is set (the errno given). Criterion runs each test
 * in its own process: the counters and registrations start from zero.
 */
static struct {
	int band_init, band_fini, attach, detach;
	int fail_band_init;
	bool fail_attach;
	int attach_failed;
} flaky;

static const struct flowq_fairness_ops *flaky_rr;
static const struct flowq_displacement_ops *flaky_lbn;

static int
count_rr_band_init(void *band, const struct flowq_policy_env *env)
{
	int err = flaky_rr->band_init(band, env);
	flaky.band_init += err == 0;
	return err;
}

static void
count_rr_band_fini(void *band, const struct flowq_policy_env *env)
{
	flaky.band_fini++;
	flaky_rr->band_fini(band, env);
}

static int
count_rr_attach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	int err = flaky_rr->flow_attach(band, f, env);
	flaky.attach += err == 0;
	return err;
}

static void
count_rr_detach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	flaky.detach++;
	flaky_rr->flow_detach(band, f, env);
}

static int
flaky_band_init(void *band, const struct flowq_policy_env *env)
{
	if (flaky.fail_band_init)
		return flaky.fail_band_init;
	return flaky_lbn->band_init(band, env);
}

static int
flaky_attach(void *band, void *flow, const struct flowq_policy_env *env)
{
	(void)band;
	(void)flow;
	(void)env;
	if (flaky.fail_attach) {
		flaky.attach_failed++;
		return -ENOMEM;
	}
	return 0;
}

/* Register "count_rr" and "flaky_disp" (once per test process). */
static void
register_flaky(void)
{
	static struct flowq_fairness_ops f;
	static struct flowq_displacement_ops d;

	flaky_rr = flowq_fairness_find("round_robin");
	flaky_lbn = flowq_displacement_find("lowest_band_newest");
	cr_assert_not_null(flaky_lbn);
	cr_assert_null(flaky_lbn->flow_attach, "the wrapper assumes no flow state");
	f = *flaky_rr;
	f.desc.name = "count_rr";
	f.band_init = count_rr_band_init;
	f.band_fini = count_rr_band_fini;
	f.flow_attach = count_rr_attach;
	f.flow_detach = count_rr_detach;
	cr_assert_eq(flowq_fairness_register(&f), 0);
	d = *flaky_lbn;
	d.desc.name = "flaky_disp";
	d.band_init = flaky_band_init;
	d.flow_attach = flaky_attach;
	cr_assert_eq(flowq_displacement_register(&d), 0);
}

static struct flowq_config
flaky_cfg(struct test_count_alloc *ca)
{
	struct flowq_config c = fx_polled_cfg();
	test_count_alloc_init(ca);
	c.allocator = &ca->a;
	c.default_band.fairness = "count_rr";
	c.displacement = "flaky_disp";
	return c;
}

/* A displacement policy's band_init fails after the band's fairness state
 * was set up: that state is finished again (core/dispatch.c
 * flowq__band_shards_init()), and create (a configured band) or the submit
 * that needed a just-in-time band returns the policy's errno. */
Test(engine_policy, a_displacement_band_init_error_finishes_the_fairness_state)
{
	struct test_count_alloc ca;
	struct flowq_engine *e = (struct flowq_engine *)0x1;
	struct flowq_stats st;
	struct fx_req h;

	register_flaky();
	struct flowq_config c = flaky_cfg(&ca);
	struct flowq_band_config b = c.default_band;
	b.priority = 1;
	c.bands = &b;
	c.nbands = 1;
	c.shards = 2;
	flaky.fail_band_init = -EIO;
	cr_assert_eq(flowq_engine_create(&c, &e), -EIO);
	cr_assert_eq(e, (struct flowq_engine *)0x1, "no engine handed out");
	cr_assert_eq(flaky.band_init, 1, "the first shard's fairness state was made");
	cr_assert_eq(flaky.band_fini, flaky.band_init, "and finished again");
	cr_assert_eq(ca.blocks, 0, "nothing left allocated");

	/* A just-in-time band: the submit that needs it is refused. */
	c.bands = NULL;
	c.nbands = 0;
	flaky.fail_band_init = 0;
	e = fx_make(&c);
	flaky.fail_band_init = -EIO;
	fx_req_init(&h, "f", 3, 1);
	cr_assert_eq(flowq_submit(e, &h.req), -EIO);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_UNKNOWN_BAND);
	cr_assert_eq(flaky.band_init, 2);
	cr_assert_eq(flaky.band_fini, flaky.band_init);
	/* Once band_init works again the band is made. */
	flaky.fail_band_init = 0;
	fx_req_init(&h, "f", 3, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_UNKNOWN_BAND], 1);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
	cr_assert_eq(flaky.band_fini, flaky.band_init);
	cr_assert_eq(ca.blocks, 0);
}

/* A displacement policy's flow_attach fails when the dispatcher adopts a
 * new flow: the fairness attach made before it is undone (core/dispatch.c
 * flow_adopt()), the flow stays pending with its request in its inbox
 * (neither dispatched nor lost), and the adoption is retried each round
 * until it succeeds. */
Test(engine_policy, a_displacement_flow_attach_error_leaves_the_flow_pending)
{
	struct test_count_alloc ca;
	struct flowq_stats st;
	struct fx_req h;
	int64_t next = 0;

	register_flaky();
	struct flowq_config c = flaky_cfg(&ca);
	struct flowq_engine *e = fx_make(&c);
	flaky.fail_attach = true;
	fx_req_init(&h, "f", 0, 10);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0);
		cr_assert_lt(next, INT64_MAX, "a pending flow is retried");
	}
	/* A round tries at its intake and again among its pending flows. */
	cr_assert_geq(flaky.attach_failed, 3);
	cr_assert_eq(flaky.attach, flaky.attach_failed,
		     "the fairness attach was made each time");
	cr_assert_eq(flaky.detach, flaky.attach, "and undone each time");
	int tries = flaky.attach_failed;
	cr_assert_eq(h.completions, 0);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_PENDING);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued, 1);
	cr_assert_eq(st.queued_bytes, 10);

	flaky.fail_attach = false;
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flaky.attach, tries + 1);
	cr_assert_eq(flaky.detach, tries);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	flowq_engine_destroy(e);
	cr_assert_eq(flaky.detach, flaky.attach, "every attach undone at destroy");
	cr_assert_eq(flaky.band_fini, flaky.band_init);
	cr_assert_eq(ca.blocks, 0);
}

/* The flow GC finds an idle flow past its timeout that a handle still
 * leases: it detaches it, fails to collect it, and attaches it again
 * (core/dispatch.c gc()). When that attach fails the flow goes pending;
 * a request submitted through the handle meanwhile waits there and is
 * dispatched once the attach succeeds. */
Test(engine_policy, a_failed_reattach_by_the_flow_gc_leaves_the_flow_pending)
{
	struct test_count_alloc ca;
	struct flowq_stats st;
	struct fx_req h;
	struct flowq_flow *fl = NULL;

	register_flaky();
	struct flowq_config c = flaky_cfg(&ca);
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	cr_assert_eq(flowq_flow_get(e, "f", 1, 0, &fl), 0);
	cr_assert_eq(fx_poll_all(e), 0); /* adopted: attached, idle */
	cr_assert_eq(flaky.attach, 1);
	flaky.fail_attach = true;
	fx_advance(2000);
	cr_assert_eq(fx_poll_all(e), 0); /* the GC: detach, leased, re-attach fails */
	cr_assert_eq(flaky.detach, 2, "the GC's detach, then the failed attach's undo");
	cr_assert_eq(flaky.attach, 2);
	cr_assert_eq(flaky.attach_failed, 1);
	cr_assert_eq(flowq_stats_flow(e, "f", 1, 0, &st), 0, "the handle keeps the flow");

	memset(&h, 0, sizeof(h));
	fx_req_init(&h, "f", 0, 10);
	h.req.flow = fl;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(h.completions, 0, "not dispatched from a flow with no policy state");
	cr_assert_gt(flaky.attach_failed, 1, "retried");

	flaky.fail_attach = false;
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	cr_assert_eq(flowq_stats_flow(e, "f", 1, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(st.queued, 0);
	flowq_flow_put(e, fl);
	/* Without the handle, the GC collects the flow. */
	fx_advance(2000);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(flowq_stats_flow(e, "f", 1, 0, &st), -ENOENT);
	cr_assert_eq(flaky.detach, flaky.attach);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
	cr_assert_eq(flaky.band_fini, flaky.band_init);
	cr_assert_eq(ca.blocks, 0);
}
