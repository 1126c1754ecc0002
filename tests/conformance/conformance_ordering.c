/*
 * Conformance suite for ordering policies: every ordering that
 * flowq_ordering_at() lists (built-in or registered before the suite runs)
 * goes through the same contract, so a new ordering is tested without
 * editing this file.
 *
 * 1. The contract (policy.h), on the ops directly, against a reference
 *    model, through seeded random sequences of push_batch (arrival order,
 *    1-8 requests), pop, peek and remove-by-handle over several flow states
 *    at once; after every step:
 *     - a zeroed state is empty; peek() is NULL iff the flow is empty;
 *     - peek() does not change the state and is what the next pop() returns;
 *     - nothing is lost or duplicated: every popped or removed request is
 *       one the flow holds, and at the end pushed = popped + removed;
 *     - key(head) is the smallest key() of the flow's queued requests.
 *    Requests are made as core/submit.c makes them (one producer: submit
 *    times non-decreasing in arrival order, often equal): enqueue_ns, the
 *    expiry in priv.expire = min(enqueue_ns + TTL, deadline_ns) (INT64_MAX
 *    for neither), deadline_ns (0 = none), priv.bytes.
 * 2. Order properties, from a small table (order_props[]) keyed by name: an
 *    "order key" the suite computes itself from the submit fields, and the
 *    property that every pop is the queued request with the smallest
 *    (order key, arrival): fcfs arrival order; edf non-decreasing expiry
 *    (enqueue_ns + ttl_ns, or the deadline if earlier; none last), FIFO among
 *    equal; slo_deadline non-decreasing deadline_ns, none (0) last, FIFO
 *    among equal. For edf and slo_deadline the key op must also equal the
 *    order key (global_strict compares flows by it): requests with no
 *    expiry (edf) or no deadline (slo_deadline) have order key 2^62 + their
 *    submit time, so they sort last and in submit order across flows too.
 *    An ordering with no table entry gets the generic contract only.
 * 3. End to end through a polled engine on a manual clock (the clock hook):
 *    a seeded random run per (fairness, ordering) pair of the registries,
 *    with submits over several flows, TTLs, deadlines, cancels, clock steps
 *    and a one-slot gate, checks at every dispatch (from the completion)
 *    that the request is the best of its flow by key() and by the order
 *    property, and with global_strict the best of the band by key(); every
 *    request gets one completion, TTL evictions only at or after their
 *    expiry. Plus fixed scenarios: a later push with an earlier deadline
 *    overtakes another flow's head under global_strict (the update(false,
 *    0) path after push_batch), a cancel and a TTL expiry in the middle of a
 *    flow's heap, FIFO among requests without a deadline.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>
#include <flowq/list.h>
#include <flowq/policy.h>
#include <flowq/types.h>

#include "test_util.h"

/* ---- order properties ------------------------------------------------------ */

/* The expiry as core/submit.c computes it, from the caller fields. */
static int64_t
expiry_of(const struct flowq_req *r)
{
	int64_t e =
		r->ttl_ns == FLOWQ_TTL_NONE ? INT64_MAX : r->priv.enqueue_ns + r->ttl_ns;

	if (r->deadline_ns != 0 && r->deadline_ns < e)
		e = r->deadline_ns;
	return e;
}

static int64_t
okey_fcfs(const struct flowq_req *r)
{
	(void)r;
	return 0; /* arrival alone decides */
}

/* "None" keys: after every deadline, by submit time (the suite's submit
 * times are small and non-negative: no clamping needed here). */
#define NONE_BASE (INT64_C(1) << 62)

static int64_t
okey_edf(const struct flowq_req *r)
{
	int64_t e = expiry_of(r);
	return e == INT64_MAX ? NONE_BASE + r->priv.enqueue_ns : e;
}

static int64_t
okey_slo(const struct flowq_req *r)
{
	return r->deadline_ns != 0 ? r->deadline_ns : NONE_BASE + r->priv.enqueue_ns;
}

struct order_prop {
	const char *name;
	/* Requests leave by (okey, arrival), smallest first. */
	int64_t (*okey)(const struct flowq_req *r);
	/* Whether ops->key() must equal okey(). */
	bool key_is_okey;
};

static const struct order_prop order_props[] = {
	{"fcfs", okey_fcfs, false},
	{"edf", okey_edf, true},
	{"slo_deadline", okey_slo, true},
};

static const struct order_prop *
prop_find(const char *name)
{
	for (size_t i = 0; i < sizeof(order_props) / sizeof(order_props[0]); i++) {
		if (strcmp(order_props[i].name, name) == 0)
			return &order_props[i];
	}
	return NULL;
}

/* ---- request generation (as submit would) ----------------------------------- */

/* A TTL from a small set, so equal expiries are common; 1 in 4 without. */
static int64_t
pick_ttl(uint64_t *rng)
{
	static const int64_t ttls[] = {FLOWQ_TTL_NONE, 1000, 1000, 4000, 0};
	int64_t t = ttls[test_rng_next(rng) % 5];

	return t == 0 ? 1 + (int64_t)(test_rng_next(rng) % 8000) : t;
}

/* A deadline on a coarse grid after @now, so equal deadlines are common;
 * half the requests have none. */
static int64_t
pick_deadline(uint64_t *rng, int64_t now)
{
	if (test_rng_next(rng) % 2 == 0)
		return 0;
	return now + 1 + 500 * (int64_t)(test_rng_next(rng) % 12);
}

/* Fill @r's fields as flowq_submit() would at time @now. */
static void
make_submitted(struct flowq_req *r, int64_t now, int64_t ttl, int64_t deadline)
{
	flowq_req_init(r);
	r->bytes = 1;
	r->ttl_ns = ttl;
	r->deadline_ns = deadline;
	r->priv.enqueue_ns = now;
	r->priv.expire = expiry_of(r);
	r->priv.bytes = r->bytes;
}

/* ---- 1 and 2: the contract on the ops ------------------------------------- */

#define CFLOWS 3

enum creq_state { C_NEW, C_QUEUED, C_POPPED, C_REMOVED };

struct creq {
	struct flowq_req req;
	int flow;
	uint64_t arrival; /* within its flow */
	enum creq_state state;
	uint32_t qpos; /* index in its flow's queued[] */
};

struct cflow {
	void *state;
	struct creq **queued; /* the model's truth, in no order */
	uint32_t nqueued;
	uint64_t next_arrival;
};

struct cmodel {
	const struct flowq_ordering_ops *ord;
	const struct order_prop *prop;
	struct cflow flows[CFLOWS];
	struct creq *reqs;
	size_t nreqs, maxreqs;
	uint64_t rng;
	int64_t clock;
	uint64_t popped, removed;
};

static struct creq *
creq_of(struct flowq_req *r)
{
	return (struct creq *)((char *)r - offsetof(struct creq, req));
}

static void
cmodel_init(struct cmodel *m, const struct flowq_ordering_ops *ord, uint64_t seed,
	    size_t maxreqs)
{
	memset(m, 0, sizeof(*m));
	m->ord = ord;
	m->prop = prop_find(ord->desc.name);
	m->rng = seed;
	m->clock = 1000000;
	m->maxreqs = maxreqs;
	m->reqs = calloc(maxreqs, sizeof(*m->reqs));
	cr_assert_not_null(m->reqs);
	for (int f = 0; f < CFLOWS; f++) {
		/* The engine zeroes the state before the first push_batch. */
		m->flows[f].state = calloc(
			1, ord->desc.flow_state_size ? ord->desc.flow_state_size : 1);
		m->flows[f].queued = calloc(maxreqs, sizeof(struct creq *));
		cr_assert(m->flows[f].state != NULL && m->flows[f].queued != NULL);
		cr_assert_null(ord->peek(m->flows[f].state),
			       "%s: a zeroed state is not empty", ord->desc.name);
		cr_assert_null(ord->pop(m->flows[f].state), "%s: pop on a zeroed state",
			       ord->desc.name);
	}
}

static void
cmodel_fini(struct cmodel *m)
{
	for (int f = 0; f < CFLOWS; f++) {
		free(m->flows[f].state);
		free(m->flows[f].queued);
	}
	free(m->reqs);
}

/* Whether @a leaves before @b by the order property. */
static bool
prop_before(const struct cmodel *m, const struct creq *a, const struct creq *b)
{
	int64_t ka = m->prop->okey(&a->req), kb = m->prop->okey(&b->req);

	return ka < kb || (ka == kb && a->arrival < b->arrival);
}

/*
 * The generic head checks: peek NULL iff empty, peek stable, the head is a
 * queued member of this flow with the smallest key(); and the property's
 * head if the ordering has one. @return the head.
 */
static struct flowq_req *
cmodel_check_head(struct cmodel *m, int f)
{
	struct cflow *cf = &m->flows[f];
	const char *name = m->ord->desc.name;
	struct flowq_req *h = m->ord->peek(cf->state);

	cr_assert_eq(m->ord->peek(cf->state), h, "%s: peek changed the state", name);
	if (cf->nqueued == 0) {
		cr_assert_null(h, "%s: peek on an empty flow returned a request", name);
		return NULL;
	}
	cr_assert_not_null(h, "%s: peek returned NULL with %u queued", name, cf->nqueued);
	struct creq *t = creq_of(h);
	cr_assert_eq(t->state, C_QUEUED, "%s: the head is not queued (state %d)", name,
		     t->state);
	cr_assert_eq(t->flow, f, "%s: the head of flow %d belongs to flow %d", name, f,
		     t->flow);
	int64_t hk = m->ord->key(h);
	for (uint32_t i = 0; i < cf->nqueued; i++) {
		const struct creq *q = cf->queued[i];

		cr_assert_geq(
			m->ord->key(&q->req), hk,
			"%s: the head's key %lld is not the smallest (arrival %llu has "
			"%lld)",
			name, (long long)hk, (unsigned long long)q->arrival,
			(long long)m->ord->key(&q->req));
		if (m->prop != NULL && q != t)
			cr_assert(prop_before(m, t, q),
				  "%s: head arrival %llu (order key %lld) should leave "
				  "after "
				  "arrival %llu (order key %lld)",
				  name, (unsigned long long)t->arrival,
				  (long long)m->prop->okey(&t->req),
				  (unsigned long long)q->arrival,
				  (long long)m->prop->okey(&q->req));
	}
	return h;
}

static void
cmodel_unqueue(struct cmodel *m, struct creq *t, enum creq_state to)
{
	struct cflow *cf = &m->flows[t->flow];
	struct creq *last;

	cr_assert_eq(t->state, C_QUEUED, "%s: a request left twice", m->ord->desc.name);
	cr_assert_eq(cf->queued[t->qpos], t);
	last = cf->queued[--cf->nqueued];
	cf->queued[t->qpos] = last;
	last->qpos = t->qpos;
	t->state = to;
}

static void
cmodel_push(struct cmodel *m, int f, size_t n)
{
	struct cflow *cf = &m->flows[f];
	struct flowq_req *batch[8];

	cr_assert(n <= 8);
	if (m->nreqs + n > m->maxreqs)
		return;
	for (size_t k = 0; k < n; k++) {
		struct creq *t = &m->reqs[m->nreqs++];

		/* One producer: the clock never goes back, often stands. */
		m->clock += (int64_t)(test_rng_next(&m->rng) % 3);
		make_submitted(&t->req, m->clock, pick_ttl(&m->rng),
			       pick_deadline(&m->rng, m->clock));
		t->flow = f;
		t->arrival = cf->next_arrival++;
		t->state = C_QUEUED;
		t->qpos = cf->nqueued;
		cf->queued[cf->nqueued++] = t;
		batch[k] = &t->req;
		if (m->prop != NULL && m->prop->key_is_okey)
			cr_assert_eq(m->ord->key(&t->req), m->prop->okey(&t->req),
				     "%s: key() is not the order key", m->ord->desc.name);
	}
	m->ord->push_batch(cf->state, batch, n);
	cmodel_check_head(m, f);
}

static void
cmodel_pop(struct cmodel *m, int f)
{
	struct cflow *cf = &m->flows[f];
	struct flowq_req *h = cmodel_check_head(m, f);
	struct flowq_req *r = m->ord->pop(cf->state);

	cr_assert_eq(r, h, "%s: pop did not return what peek did", m->ord->desc.name);
	if (r == NULL)
		return;
	cmodel_unqueue(m, creq_of(r), C_POPPED);
	m->popped++;
	cmodel_check_head(m, f);
}

static void
cmodel_remove(struct cmodel *m, int f)
{
	struct cflow *cf = &m->flows[f];

	if (cf->nqueued == 0)
		return;
	struct creq *t = cf->queued[test_rng_next(&m->rng) % cf->nqueued];
	m->ord->remove(cf->state, &t->req);
	cmodel_unqueue(m, t, C_REMOVED);
	m->removed++;
	cmodel_check_head(m, f);
}

static void
cmodel_run(struct cmodel *m, unsigned steps)
{
	for (unsigned s = 0; s < steps; s++) {
		int f = (int)(test_rng_next(&m->rng) % CFLOWS);
		uint64_t r = test_rng_next(&m->rng) % 100;
		/* Queues grow in one phase and shrink in the next. */
		bool grow = (s / 500) % 2 == 0;

		if (r < (grow ? 40u : 20u))
			cmodel_push(m, f, 1 + (size_t)(test_rng_next(&m->rng) % 8));
		else if (r < 75)
			cmodel_pop(m, f);
		else if (r < 95)
			cmodel_remove(m, f);
		else
			cmodel_check_head(m, f);
	}
	/* Drain: everything comes out once, in order. */
	for (int f = 0; f < CFLOWS; f++) {
		while (m->flows[f].nqueued > 0)
			cmodel_pop(m, f);
		cr_assert_null(m->ord->pop(m->flows[f].state));
	}
	cr_assert_eq(m->popped + m->removed, m->nreqs, "%s: lost or duplicated requests",
		     m->ord->desc.name);
	for (size_t i = 0; i < m->nreqs; i++)
		cr_assert(m->reqs[i].state == C_POPPED || m->reqs[i].state == C_REMOVED,
			  "%s: request %zu never left", m->ord->desc.name, i);
}

/* Every listed ordering, several seeds; @return how many ran with a
 * property entry. */
static unsigned
contract_all(unsigned steps, unsigned *r_orderings)
{
	static const uint64_t seeds[] = {1, 0xc0ffee, 0x5eed5eed5eedull, 77};
	unsigned with_prop = 0, n = 0;

	for (size_t i = 0; flowq_ordering_at(i) != NULL; i++) {
		const struct flowq_ordering_ops *o = flowq_ordering_at(i);

		for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
			struct cmodel m;

			cmodel_init(&m, o, seeds[s], 4 * (size_t)steps + 16);
			cmodel_run(&m, steps);
			cr_assert_gt(m.popped, steps / 10, "%s: the run popped little",
				     o->desc.name);
			cr_assert_gt(m.removed, 0);
			cmodel_fini(&m);
		}
		with_prop += prop_find(o->desc.name) != NULL;
		n++;
	}
	*r_orderings = n;
	return with_prop;
}

Test(ordering_contract, every_listed_ordering_keeps_the_contract)
{
	unsigned n;
	unsigned with_prop = contract_all(5000, &n);

	/* The built-ins all have a property entry. */
	cr_assert_geq(n, 3);
	cr_assert_geq(with_prop, 3);
	cr_assert_not_null(flowq_ordering_find("fcfs"));
	cr_assert_not_null(flowq_ordering_find("edf"));
	cr_assert_not_null(flowq_ordering_find("slo_deadline"));
}

/* Many requests in one flow, equal keys everywhere: FIFO must hold at scale,
 * and a state emptied by pops works again. */
Test(ordering_contract, big_batches_and_reuse)
{
	for (size_t i = 0; flowq_ordering_at(i) != NULL; i++) {
		const struct flowq_ordering_ops *o = flowq_ordering_at(i);
		struct cmodel m;

		cmodel_init(&m, o, 3 + i, 5000);
		for (int round = 0; round < 2; round++) {
			for (int k = 0; k < 300; k++)
				cmodel_push(&m, 0, 8);
			while (m.flows[0].nqueued > 0) {
				cmodel_pop(&m, 0);
				if (m.flows[0].nqueued % 97 == 0)
					cmodel_remove(&m, 0);
			}
		}
		cr_assert_eq(m.popped + m.removed, m.nreqs);
		cmodel_fini(&m);
	}
}

/* ---- a registered ordering with no property entry -------------------------- */

/*
 * "conf_lifo": newest first; key = -enqueue_ns, so with non-decreasing
 * submit times the head has the smallest key (the contract). It has no entry
 * in order_props[]: the suite must still run it through the generic
 * contract.
 */
static void
lifo_push_batch(void *fs, struct flowq_req *const *reqs, size_t n)
{
	struct flowq_list *l = fs;

	if (l->head.next == NULL)
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

static const struct flowq_ordering_ops conf_lifo = {
	.desc = {.abi_version = FLOWQ_POLICY_ABI,
		 .name = "conf_lifo",
		 .description = "test only: newest first",
		 .band_state_size = 0,
		 .flow_state_size = sizeof(struct flowq_list)},
	.push_batch = lifo_push_batch,
	.peek = lifo_peek,
	.pop = lifo_pop,
	.remove = lifo_remove,
	.key = lifo_key,
};

Test(ordering_contract, a_registered_ordering_gets_the_generic_contract)
{
	unsigned before, after;
	unsigned with_prop_before = contract_all(200, &before);

	cr_assert_eq(flowq_ordering_register(&conf_lifo), 0);
	cr_assert_null(prop_find("conf_lifo"));
	unsigned with_prop = contract_all(3000, &after);
	cr_assert_eq(after, before + 1, "the registered ordering was iterated");
	cr_assert_eq(with_prop, with_prop_before, "and checked without a property entry");
}

/* The property table is not vacuous: fcfs keeps arrival order, which edf's
 * property refuses when a later arrival expires earlier. */
Test(ordering_contract, the_property_check_tells_orderings_apart)
{
	struct cmodel m;

	cmodel_init(&m, flowq_ordering_find("fcfs"), 9, 4);
	m.prop = prop_find("edf");
	struct creq *late = &m.reqs[0], *soon = &m.reqs[1];
	make_submitted(&late->req, m.clock, 5000, 0);
	late->arrival = 0;
	make_submitted(&soon->req, m.clock, 1000, 0);
	soon->arrival = 1;
	struct flowq_req *batch[2] = {&late->req, &soon->req};
	m.ord->push_batch(m.flows[0].state, batch, 2);
	cr_assert_eq(m.ord->peek(m.flows[0].state), &late->req, "fcfs: arrival order");
	cr_assert_not(prop_before(&m, late, soon), "edf's property flags fcfs's head");
	cr_assert(prop_before(&m, soon, late));
	m.prop = prop_find("fcfs");
	cr_assert(prop_before(&m, late, soon));
	cr_assert_eq(m.ord->pop(m.flows[0].state), &late->req);
	cr_assert_eq(m.ord->pop(m.flows[0].state), &soon->req);
	cmodel_fini(&m);
}

/* ---- 3: end to end through the engine ------------------------------------- */

static int64_t fake_now = 1000000;

static int64_t
fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

#define EFLOWS 4

struct ereq {
	struct flowq_req req;
	int flow;
	uint64_t arrival; /* global submit order (monotone within a flow) */
	bool queued;      /* the test's view: accepted, no completion yet */
	bool cancelled;   /* flowq_cancel() returned 0 */
	int completions;
	enum flowq_outcome outcome;
	enum flowq_cause cause;
	int order; /* position among completions */
};

struct erun {
	const struct flowq_ordering_ops *ord;
	const struct order_prop *prop;
	bool global; /* global_strict: the band's best key goes first */
	struct ereq *reqs;
	size_t nreqs;
	int ncompleted;
	struct ereq *inflight; /* dispatched, not yet released */
	uint64_t dispatched, ttl, cancelled;
};

static struct erun *erun;

static const char *const eflow_ids[EFLOWS] = {"fa", "fb", "fc", "fd"};

/* The checks at each completion (on the polling thread, synchronously). */
static void
e_complete(struct flowq_req *req, void *arg)
{
	struct erun *run = erun;
	struct ereq *x = arg;
	const char *name = run->ord->desc.name;

	cr_assert_eq(&x->req, req);
	cr_assert(x->queued, "%s: completion of a request that is not queued", name);
	x->completions++;
	x->outcome = flowq_req_outcome(req);
	x->cause = flowq_req_cause(req);
	x->order = run->ncompleted++;
	x->queued = false;
	switch (x->outcome) {
	case FLOWQ_DISPATCHED: {
		int64_t k = run->ord->key(req);
		for (size_t i = 0; i < run->nreqs; i++) {
			const struct ereq *q = &run->reqs[i];

			/* Cancelled requests whose cancel message is not
			 * processed yet still count: the dispatcher has not
			 * seen the cancel, the ordering still holds them. */
			if (!q->queued)
				continue;
			if (q->flow == x->flow || run->global)
				cr_assert_geq(
					run->ord->key(&q->req), k,
					"%s: dispatched key %lld (flow %d) while flow %d "
					"holds key %lld",
					name, (long long)k, x->flow, q->flow,
					(long long)run->ord->key(&q->req));
			if (q->flow == x->flow && run->prop != NULL) {
				int64_t a = run->prop->okey(&x->req),
					b = run->prop->okey(&q->req);
				cr_assert(a < b || (a == b && x->arrival < q->arrival),
					  "%s: dispatched arrival %llu (order key %lld) "
					  "before "
					  "arrival %llu (order key %lld) of its flow",
					  name, (unsigned long long)x->arrival,
					  (long long)a, (unsigned long long)q->arrival,
					  (long long)b);
			}
		}
		cr_assert_null(run->inflight, "two in flight with a one-slot gate");
		run->inflight = x;
		run->dispatched++;
		break;
	}
	case FLOWQ_EVICTED_TTL:
		cr_assert_geq(fake_now, expiry_of(req), "%s: evicted before its expiry",
			      name);
		run->ttl++;
		break;
	case FLOWQ_EVICTED_CANCELLED:
		cr_assert(x->cancelled, "%s: cancelled without a cancel", name);
		run->cancelled++;
		break;
	default:
		cr_assert_fail("%s: outcome %s", name, flowq_outcome_str(x->outcome));
	}
}

static struct flowq_engine *
e_make(const char *fairness, const char *ordering)
{
	struct flowq_config c;
	struct flowq_engine *e = NULL;
	char err[256] = "";

	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_POLLED;
	c.shards = 1;
	c.clock = fake_clock;
	c.saturation.max_inflight = 1;
	c.default_band.fairness = fairness;
	c.default_band.ordering = ordering;
	c.errbuf = err;
	c.errbuf_size = sizeof(err);
	cr_assert_eq(flowq_engine_create(&c, &e), 0, "create %s/%s: %s", fairness,
		     ordering, err);
	return e;
}

static void
e_req_init(struct ereq *x, int flow, uint64_t arrival, int64_t ttl, int64_t deadline)
{
	memset(x, 0, sizeof(*x));
	flowq_req_init(&x->req);
	x->flow = flow;
	x->arrival = arrival;
	x->req.flow_id = eflow_ids[flow];
	x->req.flow_id_len = (uint32_t)strlen(eflow_ids[flow]);
	x->req.priority = 0;
	x->req.bytes = 1;
	x->req.ttl_ns = ttl;
	x->req.deadline_ns = deadline;
	x->req.complete = e_complete;
	x->req.arg = x;
}

static void
e_submit(struct flowq_engine *e, struct ereq *x)
{
	x->queued = true;
	cr_assert_eq(flowq_submit(e, &x->req), 0, "submit");
}

/* Release what is in flight (the one gate slot) and poll once. */
static int
e_step(struct flowq_engine *e, struct erun *run)
{
	if (run->inflight != NULL) {
		cr_assert_eq(flowq_release(e, &run->inflight->req), 0);
		run->inflight = NULL;
	}
	int n = flowq_shard_poll(e, 0, 0, NULL);
	cr_assert_geq(n, 0);
	return n;
}

static void
e_random_run(const struct flowq_fairness_ops *fair, const struct flowq_ordering_ops *ord,
	     uint64_t seed, size_t nreqs)
{
	struct erun run = {.ord = ord,
			   .prop = prop_find(ord->desc.name),
			   .global = strcmp(fair->desc.name, "global_strict") == 0};
	uint64_t rng = seed;
	size_t next = 0;

	run.reqs = calloc(nreqs, sizeof(*run.reqs));
	cr_assert_not_null(run.reqs);
	run.nreqs = nreqs;
	erun = &run;
	fake_now = 1000000;
	struct flowq_engine *e = e_make(fair->desc.name, ord->desc.name);
	while (next < nreqs) {
		uint64_t r = test_rng_next(&rng) % 100;

		/* Submits bring ~0.6 requests per step, polls dispatch at
		 * most 0.5: a queue builds up (so the order matters) and
		 * part of it expires (mid-heap removals). */
		if (r < 30) {
			/* A burst of 1-3 submits, maybe at the same instant. */
			for (uint64_t k = 1 + test_rng_next(&rng) % 3;
			     k > 0 && next < nreqs; k--) {
				struct ereq *x = &run.reqs[next];
				int flow = (int)(test_rng_next(&rng) % EFLOWS);
				e_req_init(x, flow, next, pick_ttl(&rng),
					   pick_deadline(&rng, fake_now));
				next++;
				e_submit(e, x);
				fake_now += (int64_t)(test_rng_next(&rng) % 2);
			}
		} else if (r < 36) {
			/* Cancel a random queued request (mid-heap, mostly). */
			struct ereq *x =
				next ? &run.reqs[test_rng_next(&rng) % next] : NULL;
			if (x != NULL && x->queued && !x->cancelled) {
				cr_assert_eq(flowq_cancel(e, &x->req), 0);
				x->cancelled = true;
			}
		} else if (r < 50) {
			fake_now += (int64_t)(test_rng_next(&rng) % 200);
		} else {
			e_step(e, &run);
		}
	}
	/* Drain without moving the clock. */
	for (int guard = 0;; guard++) {
		bool any = false;
		for (size_t i = 0; i < nreqs; i++)
			any |= run.reqs[i].queued;
		if (!any)
			break;
		cr_assert_lt(guard, 10 * (int)nreqs + 10,
			     "%s/%s: the queue does not drain", fair->desc.name,
			     ord->desc.name);
		e_step(e, &run);
	}
	if (run.inflight != NULL) {
		cr_assert_eq(flowq_release(e, &run.inflight->req), 0);
		run.inflight = NULL;
	}
	flowq_engine_destroy(e);
	for (size_t i = 0; i < nreqs; i++)
		cr_assert_eq(run.reqs[i].completions, 1, "request %zu: %d completions", i,
			     run.reqs[i].completions);
	cr_assert_eq(run.dispatched + run.ttl + run.cancelled, nreqs);
	cr_assert_gt(run.dispatched, nreqs / 4, "%s/%s: few dispatches (%llu)",
		     fair->desc.name, ord->desc.name, (unsigned long long)run.dispatched);
	cr_assert_gt(run.ttl, 0, "%s/%s: no TTL eviction", fair->desc.name,
		     ord->desc.name);
	cr_assert_gt(run.cancelled, 0, "%s/%s: no cancel", fair->desc.name,
		     ord->desc.name);
	free(run.reqs);
	erun = NULL;
}

Test(ordering_engine, every_pair_dispatches_in_order_end_to_end)
{
	unsigned pairs = 0;

	for (size_t fi = 0; flowq_fairness_at(fi) != NULL; fi++) {
		for (size_t oi = 0; flowq_ordering_at(oi) != NULL; oi++) {
			for (uint64_t seed = 1; seed <= 3; seed++)
				e_random_run(flowq_fairness_at(fi), flowq_ordering_at(oi),
					     seed * 7919, 1500);
			pairs++;
		}
	}
	cr_assert_geq(pairs, 6, "2 fairness x 3 ordering built-ins at least");
}

/* A fixed run: the blocker takes the slot, the rest queue. */
struct fixed {
	struct flowq_engine *e;
	struct erun run;
	struct ereq x[16];
	size_t n;
};

static void
fixed_start(struct fixed *fx, const char *fairness, const char *ordering)
{
	memset(fx, 0, sizeof(*fx));
	fake_now = 1000000;
	fx->run.ord = flowq_ordering_find(ordering);
	fx->run.prop = prop_find(ordering);
	fx->run.global = strcmp(fairness, "global_strict") == 0;
	fx->run.reqs = fx->x;
	erun = &fx->run;
	fx->e = e_make(fairness, ordering);
	/* The blocker: dispatched at once, holds the only slot. */
	e_req_init(&fx->x[0], 3, 0, FLOWQ_TTL_NONE, 0);
	fx->run.nreqs = fx->n = 1;
	e_submit(fx->e, &fx->x[0]);
	cr_assert_eq(flowq_shard_poll(fx->e, 0, 0, NULL), 1);
	cr_assert_eq(fx->x[0].outcome, FLOWQ_DISPATCHED);
}

static struct ereq *
fixed_submit(struct fixed *fx, int flow, int64_t ttl, int64_t deadline)
{
	struct ereq *x = &fx->x[fx->n];

	cr_assert_lt(fx->n, 16);
	e_req_init(x, flow, fx->n, ttl, deadline);
	fx->n++;
	fx->run.nreqs = fx->n;
	e_submit(fx->e, x);
	return x;
}

/* Release the slot and dispatch once; @return the dispatched request. */
static struct ereq *
fixed_next(struct fixed *fx)
{
	int before = fx->run.ncompleted;

	e_step(fx->e, &fx->run);
	for (size_t i = 0; i < fx->n; i++) {
		if (fx->x[i].completions && fx->x[i].order >= before &&
		    fx->x[i].outcome == FLOWQ_DISPATCHED)
			return &fx->x[i];
	}
	return NULL;
}

static void
fixed_end(struct fixed *fx)
{
	if (fx->run.inflight != NULL)
		cr_assert_eq(flowq_release(fx->e, &fx->run.inflight->req), 0);
	fx->run.inflight = NULL;
	flowq_engine_destroy(fx->e);
	for (size_t i = 0; i < fx->n; i++)
		cr_assert_eq(fx->x[i].completions, 1, "request %zu", i);
	erun = NULL;
}

/*
 * global_strict across flows: flow a's head has a late deadline, flow b's an
 * earlier one; then a request with the earliest deadline of all arrives in
 * flow a. It becomes a's head in push_batch, the dispatcher must tell
 * global_strict (update(a, false, 0)), and it must go first, before b's.
 */
static void
overtake(const char *ordering, bool by_ttl)
{
	struct fixed fx;

	fixed_start(&fx, "global_strict", ordering);
	int64_t t0 = fake_now;
	struct ereq *a1 = by_ttl ? fixed_submit(&fx, 0, 9000, 0)
				 : fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 9000);
	struct ereq *b1 = by_ttl ? fixed_submit(&fx, 1, 5000, 0)
				 : fixed_submit(&fx, 1, FLOWQ_TTL_NONE, t0 + 5000);
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 0, "both queue (gate held)");
	struct ereq *a2 = by_ttl ? fixed_submit(&fx, 0, 1000, 0)
				 : fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 1000);
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 0, "a2 drained into flow a");
	cr_assert_eq(fixed_next(&fx), a2, "%s: the new earliest head of flow a first",
		     ordering);
	cr_assert_eq(fixed_next(&fx), b1, "%s: then flow b's", ordering);
	cr_assert_eq(fixed_next(&fx), a1, "%s: then flow a's late one", ordering);
	fixed_end(&fx);
}

Test(ordering_engine, edf_later_earlier_expiry_overtakes_across_flows)
{
	overtake("edf", true);
}

Test(ordering_engine, slo_deadline_later_earlier_deadline_overtakes_across_flows)
{
	overtake("slo_deadline", false);
}

Test(ordering_engine, edf_uses_the_deadline_when_it_is_earlier_than_the_ttl)
{
	struct fixed fx;

	fixed_start(&fx, "global_strict", "edf");
	int64_t t0 = fake_now;
	struct ereq *a = fixed_submit(&fx, 0, 3000, 0);
	struct ereq *b =
		fixed_submit(&fx, 0, 9000, t0 + 2000); /* expires at the deadline */
	struct ereq *c = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	cr_assert_eq(fixed_next(&fx), b);
	cr_assert_eq(fixed_next(&fx), a);
	cr_assert_eq(fixed_next(&fx), c, "no TTL and no deadline: last");
	fixed_end(&fx);
}

/*
 * slo_deadline: a cancel in the middle of the heap and a TTL expiry of a
 * request without a deadline (at the bottom of the order) are removed by
 * handle; the rest leaves in deadline order, then the requests without a
 * deadline in arrival order.
 */
Test(ordering_engine, slo_deadline_mid_heap_cancel_and_expiry)
{
	struct fixed fx;

	fixed_start(&fx, "round_robin", "slo_deadline");
	int64_t t0 = fake_now;
	struct ereq *n1 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	struct ereq *d3 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 3000);
	struct ereq *d1 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 1000);
	struct ereq *short_ttl = fixed_submit(&fx, 0, 500, 0);
	struct ereq *d2 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 2000);
	struct ereq *n2 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	struct ereq *d2b = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, t0 + 2000);
	struct ereq *n3 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 0);
	/* Cancel d2, in the middle of the order. */
	d2->cancelled = true;
	cr_assert_eq(flowq_cancel(fx.e, &d2->req), 0);
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 1);
	cr_assert_eq(d2->outcome, FLOWQ_EVICTED_CANCELLED);
	/* The short TTL runs out while it sorts after every deadline. */
	fake_now += 500;
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 1);
	cr_assert_eq(short_ttl->outcome, FLOWQ_EVICTED_TTL);
	cr_assert_eq(short_ttl->cause, FLOWQ_CAUSE_TTL_EXPIRED);
	cr_assert_eq(fixed_next(&fx), d1);
	cr_assert_eq(fixed_next(&fx), d2b);
	cr_assert_eq(fixed_next(&fx), d3);
	cr_assert_eq(fixed_next(&fx), n1, "no deadline: arrival order");
	cr_assert_eq(fixed_next(&fx), n2);
	cr_assert_eq(fixed_next(&fx), n3);
	cr_assert_null(fixed_next(&fx));
	fixed_end(&fx);
}

/* edf: cancel the middle of the heap; equal expiries leave FIFO; the head
 * and the request behind it with the same expiry both expire. */
Test(ordering_engine, edf_mid_heap_cancel_and_equal_expiries)
{
	struct fixed fx;

	fixed_start(&fx, "global_strict", "edf");
	struct ereq *e1 = fixed_submit(&fx, 0, 500, 0);
	struct ereq *e1b = fixed_submit(&fx, 0, 500, 0); /* same expiry, behind e1 */
	struct ereq *l3 = fixed_submit(&fx, 0, 3000, 0);
	struct ereq *l2 = fixed_submit(&fx, 0, 2000, 0);
	struct ereq *l2b = fixed_submit(&fx, 0, 2000, 0);
	struct ereq *none = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 0);
	l2->cancelled = true;
	cr_assert_eq(flowq_cancel(fx.e, &l2->req), 0);
	fake_now += 500;
	cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 3, "one cancel, two expiries");
	cr_assert_eq(e1->outcome, FLOWQ_EVICTED_TTL);
	cr_assert_eq(e1b->outcome, FLOWQ_EVICTED_TTL);
	cr_assert_eq(l2->outcome, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(fixed_next(&fx), l2b);
	cr_assert_eq(fixed_next(&fx), l3);
	cr_assert_eq(fixed_next(&fx), none);
	fixed_end(&fx);
}

/* Without deadlines, slo_deadline is FIFO per flow, as fcfs. */
Test(ordering_engine, slo_deadline_without_deadlines_is_fifo)
{
	struct fixed fx;
	struct ereq *xs[10];

	fixed_start(&fx, "round_robin", "slo_deadline");
	for (int i = 0; i < 10; i++) {
		xs[i] = fixed_submit(&fx, 0, i % 3 == 0 ? 100000 : FLOWQ_TTL_NONE, 0);
		if (i % 4 == 3) /* several inbox batches */
			cr_assert_eq(flowq_shard_poll(fx.e, 0, 0, NULL), 0);
	}
	for (int i = 0; i < 10; i++)
		cr_assert_eq(fixed_next(&fx), xs[i], "request %d", i);
	fixed_end(&fx);
}

/* Requests without a deadline under global_strict: first come, first served
 * across flows (keys 2^62 + submit time), not flow by flow (which a single
 * "none" key did: global_strict breaks ties by flow). */
static void
no_deadline_fifo_across_flows(const char *ordering)
{
	struct fixed fx;

	fixed_start(&fx, "global_strict", ordering);
	struct ereq *a1 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	fake_now += 10;
	struct ereq *b1 = fixed_submit(&fx, 1, FLOWQ_TTL_NONE, 0);
	fake_now += 10;
	struct ereq *a2 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	fake_now += 10;
	struct ereq *a3 = fixed_submit(&fx, 0, FLOWQ_TTL_NONE, 0);
	cr_assert_eq(fixed_next(&fx), a1, "%s", ordering);
	cr_assert_eq(fixed_next(&fx), b1, "%s: b1 before a2 (submit order)", ordering);
	cr_assert_eq(fixed_next(&fx), a2, "%s", ordering);
	cr_assert_eq(fixed_next(&fx), a3, "%s", ordering);
	fixed_end(&fx);
}

Test(ordering_engine, no_deadline_is_fifo_across_flows_under_global_strict)
{
	no_deadline_fifo_across_flows("edf");
	no_deadline_fifo_across_flows("slo_deadline");
}
