/*
 * Engine test fixture (Criterion suites): a polled engine on a manual clock,
 * host requests that record their completion, and a poll of every shard.
 * Header-only; each suite that includes it gets its own copy of the state.
 */
#ifndef FLOWQ_TESTS_ENGINE_FIXTURE_H
#define FLOWQ_TESTS_ENGINE_FIXTURE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>

/* Allocation-failure and leak checks use count_alloc.h's allocator. */
#include "count_alloc.h"

static int64_t fx_now = 1000000;

static int64_t
fx_clock(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&fx_now, __ATOMIC_RELAXED);
}

static inline void
fx_advance(int64_t ns)
{
	__atomic_add_fetch(&fx_now, ns, __ATOMIC_RELAXED);
}

struct fx_req {
	struct flowq_req req;
	int completions;
	enum flowq_outcome seen;
	enum flowq_cause cause;
	int order; /* position in the completion order */
};

static int fx_seq;

static void
fx_on_complete(struct flowq_req *req, void *arg)
{
	struct fx_req *h = arg;
	cr_assert_eq(&h->req, req);
	h->completions++;
	h->seen = flowq_req_outcome(req);
	h->cause = flowq_req_cause(req);
	h->order = fx_seq++;
}

static inline void
fx_req_init(struct fx_req *h, const char *flow, int32_t prio, uint64_t bytes)
{
	memset(h, 0, sizeof(*h));
	flowq_req_init(&h->req);
	h->req.flow_id = flow;
	h->req.flow_id_len = (uint32_t)strlen(flow);
	h->req.priority = prio;
	h->req.bytes = bytes;
	h->req.complete = fx_on_complete;
	h->req.arg = h;
}

static inline struct flowq_config
fx_polled_cfg(void)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_POLLED;
	c.shards = 1;
	c.clock = fx_clock;
	return c;
}

static inline struct flowq_engine *
fx_make(const struct flowq_config *c)
{
	struct flowq_engine *e = NULL;
	char err[256] = "";
	struct flowq_config cc = *c;
	cc.errbuf = err;
	cc.errbuf_size = sizeof(err);
	int rc = flowq_engine_create(&cc, &e);
	cr_assert_eq(rc, 0, "create: %d %s", rc, err);
	fx_seq = 0;
	return e;
}

static inline int
fx_poll_all(struct flowq_engine *e)
{
	int total = 0;
	for (unsigned s = 0; s < flowq_shard_count(e); s++) {
		int n = flowq_shard_poll(e, s, 0, NULL);
		cr_assert_geq(n, 0);
		total += n;
	}
	return total;
}

#endif /* FLOWQ_TESTS_ENGINE_FIXTURE_H */
