/*
 * test_hostile: mistaken and hostile use of the public API (issue 6). Each
 * misuse gets its documented negative errno and changes nothing; nothing is
 * lost or completed twice. Polled engine on a manual clock
 * (tests/support/engine_fixture.h).
 *
 * What cannot be detected, and is documented as undefined instead: calls on
 * a destroyed engine (the memory is gone), a cancel after the completion has
 * run on a request the host has since re-initialised or freed, a port
 * destroyed while requests still name it.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>

#include "engine_fixture.h"

static double
sat_zero(void *ctx)
{
	(void)ctx;
	return 0.0;
}

static struct flowq_engine *
make_default(void)
{
	struct flowq_config c = fx_polled_cfg();
	return fx_make(&c);
}

Test(hostile, double_submit_is_busy_and_changes_nothing)
{
	struct flowq_engine *e = make_default();
	struct fx_req h;
	fx_req_init(&h, "f", 0, 10);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	/* Again while queued: refused, still one request queued. */
	cr_assert_eq(flowq_submit(e, &h.req), -EBUSY);
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.queued, 1);
	cr_assert_eq(st.queued_bytes, 10);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	/* Again after the outcome, without flowq_req_init(): refused, the
	 * outcome stays. */
	cr_assert_eq(flowq_submit(e, &h.req), -EBUSY);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	cr_assert_eq(flowq_submit(e, &h.req), -EBUSY);
	/* A rejected request, resubmitted without init: refused too. */
	struct fx_req bad;
	fx_req_init(&bad, "f", 0, 1);
	bad.req.ttl_ns = -5;
	cr_assert_eq(flowq_submit(e, &bad.req), -EINVAL);
	cr_assert_eq(flowq_submit(e, &bad.req), -EBUSY);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(bad.completions, 0);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(st.outcomes[FLOWQ_REJECTED_OTHER], 1);
	cr_assert_eq(st.queued + st.inflight, 0);
	flowq_engine_destroy(e);
}

Test(hostile, cancel_of_what_is_not_queued_is_already)
{
	struct flowq_engine *e = make_default();
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	/* Never submitted. */
	cr_assert_eq(flowq_cancel(e, &h.req), -EALREADY);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_PENDING);
	/* Rejected on the spot. */
	h.req.complete = NULL;
	cr_assert_eq(flowq_submit(e, &h.req), -EINVAL);
	cr_assert_eq(flowq_cancel(e, &h.req), -EALREADY);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
	/* Dispatched (before the host released it). */
	fx_req_init(&h, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_poll_all(e);
	cr_assert_eq(flowq_cancel(e, &h.req), -EALREADY);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	/* Cancelled twice: the second loses. */
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *g = fx_make(&c);
	struct fx_req a, b;
	fx_req_init(&a, "f", 0, 1);
	fx_req_init(&b, "f", 0, 1);
	cr_assert_eq(flowq_submit(g, &a.req), 0);
	cr_assert_eq(flowq_submit(g, &b.req), 0);
	fx_poll_all(g); /* a dispatched; b held by the gate */
	cr_assert_eq(flowq_cancel(g, &b.req), 0);
	cr_assert_eq(flowq_cancel(g, &b.req), -EALREADY);
	fx_poll_all(g);
	cr_assert_eq(b.completions, 1);
	cr_assert_eq(b.seen, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(flowq_cancel(NULL, &b.req), -EFAULT);
	cr_assert_eq(flowq_cancel(g, NULL), -EFAULT);
	cr_assert_eq(flowq_release(g, &a.req), 0);
	flowq_engine_destroy(g);
	flowq_engine_destroy(e);
}

Test(hostile, release_of_what_was_not_dispatched)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b;
	fx_req_init(&a, "f", 0, 1);
	fx_req_init(&b, "f", 0, 1);
	/* Never submitted. */
	cr_assert_eq(flowq_release(e, &a.req), -EINVAL);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	/* Queued, not dispatched yet. */
	cr_assert_eq(flowq_release(e, &a.req), -EINVAL);
	fx_poll_all(e);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	fx_poll_all(e); /* b waits for a's slot */
	cr_assert_eq(flowq_release(e, &b.req), -EINVAL);
	/* Released twice: the in-flight count drops once. */
	cr_assert_eq(flowq_release(e, &a.req), 0);
	cr_assert_eq(flowq_release(e, &a.req), -EALREADY);
	fx_poll_all(e);
	cr_assert_eq(b.seen, FLOWQ_DISPATCHED, "b takes the freed slot");
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.inflight, 1, "a's second release gave back nothing");
	/* A cancelled request cannot be released. */
	struct fx_req k;
	fx_req_init(&k, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &k.req), 0);
	cr_assert_eq(flowq_cancel(e, &k.req), 0);
	fx_poll_all(e);
	cr_assert_eq(flowq_release(e, &k.req), -EINVAL);
	cr_assert_eq(flowq_release(NULL, &k.req), -EFAULT);
	cr_assert_eq(flowq_release(e, NULL), -EFAULT);
	cr_assert_eq(flowq_release(e, &b.req), 0);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
}

/* The release gives back the bytes the dispatch took, whatever the host
 * wrote to req->bytes after the completion (a caller field it owns again
 * by then). */
Test(hostile, release_gives_back_the_dispatched_size)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight_bytes = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b;
	struct flowq_stats st;
	fx_req_init(&a, "f", 0, 600);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	fx_poll_all(e);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	a.req.bytes = 5; /* the host reuses the field before it releases */
	cr_assert_eq(flowq_release(e, &a.req), 0);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.inflight_bytes, 0, "%llu bytes left in flight",
		     (unsigned long long)st.inflight_bytes);
	/* The whole limit is free again: 1000 bytes fit at once. */
	fx_req_init(&b, "f", 0, 1000);
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	fx_poll_all(e);
	cr_assert_eq(b.seen, FLOWQ_DISPATCHED);
	b.req.bytes = 2000;
	struct flowq_req *batch[1] = {&b.req};
	cr_assert_eq(flowq_release_batch(e, batch, 1, NULL), 1);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.inflight_bytes, 0);
	flowq_engine_destroy(e);
}

/* flowq_submit_wait() on what it must not touch: NULLs, and a request
 * still queued (its completion keeps the host's callback); a request
 * rejected on the spot returns at once, also with the longest timeout. */
Test(hostile, submit_wait_misuse_and_rejections)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, big;
	cr_assert_eq(flowq_submit_wait(NULL, &a.req, 0), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_submit_wait(e, NULL, 0), FLOWQ_REJECTED_OTHER);
	fx_req_init(&a, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	cr_assert_eq(flowq_submit_wait(e, &a.req, INT64_MAX), FLOWQ_REJECTED_OTHER,
		     "already submitted: refused at once");
	cr_assert_eq(a.req.complete, fx_on_complete, "its callback is the host's still");
	cr_assert_eq(a.req.arg, &a);
	cr_assert_eq(flowq_req_outcome(&a.req), FLOWQ_PENDING);
	fx_poll_all(e);
	cr_assert_eq(a.completions, 1);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &a.req), 0);
	/* Rejected on the spot (larger than any byte count may be): at
	 * once, whatever the timeout (INT64_MAX: no overflow). */
	fx_req_init(&big, "f", 0, FLOWQ_LIMIT_MAX + 1);
	cr_assert_eq(flowq_submit_wait(e, &big.req, INT64_MAX), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&big.req), FLOWQ_CAUSE_INVALID_REQUEST);
	cr_assert_eq(big.completions, 0);
	flowq_engine_destroy(e);
}

static uint64_t
flow_queued(struct flowq_engine *e, const void *id, uint32_t len, int32_t prio)
{
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, id, len, prio, &st), 0);
	return st.queued;
}

Test(hostile, flow_ids_are_bytes)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1; /* keep everything queued */
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hold;
	fx_req_init(&hold, "hold", 0, 1);
	cr_assert_eq(flowq_submit(e, &hold.req), 0);
	fx_poll_all(e);
	/* "a\0b", "a\0c", "a" and a non-UTF-8 id are four flows. */
	static const char ids[4][3] = {{'a', 0, 'b'}, {'a', 0, 'c'}, {'a'}, {(char)0xff, (char)0xfe}};
	static const uint32_t lens[4] = {3, 3, 1, 2};
	struct fx_req r[4];
	for (int i = 0; i < 4; i++) {
		fx_req_init(&r[i], "x", 0, 1);
		r[i].req.flow_id = ids[i];
		r[i].req.flow_id_len = lens[i];
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
	}
	for (int i = 0; i < 4; i++)
		cr_assert_eq(flow_queued(e, ids[i], lens[i], 0), 1, "id %d", i);
	/* The longest id is accepted, one byte more is not. */
	char longid[FLOWQ_FLOW_ID_MAX + 1];
	memset(longid, 'L', sizeof(longid));
	struct fx_req l;
	fx_req_init(&l, "x", 0, 1);
	l.req.flow_id = longid;
	l.req.flow_id_len = FLOWQ_FLOW_ID_MAX;
	cr_assert_eq(flowq_submit(e, &l.req), 0);
	struct flowq_flow *f;
	cr_assert_eq(flowq_flow_get(e, longid, FLOWQ_FLOW_ID_MAX + 1, 0, &f), -EINVAL);
	cr_assert_eq(flowq_flow_get(e, longid, 0, 0, &f), -EINVAL);
	cr_assert_eq(flowq_flow_get(e, NULL, 1, 0, &f), -EINVAL);
	cr_assert_eq(flowq_flow_get(e, "a", 1, 0, NULL), -EINVAL);
	flowq_engine_destroy(e); /* evicts the queued ones */
	for (int i = 0; i < 4; i++)
		cr_assert_eq(r[i].completions, 1);
	cr_assert_eq(l.completions, 1);
}

Test(hostile, priorities_at_the_integer_edges)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hold, lo, hi, mid;
	fx_req_init(&hold, "hold", 0, 1);
	fx_req_init(&lo, "lo", INT32_MIN, 1);
	fx_req_init(&mid, "mid", 0, 1);
	fx_req_init(&hi, "hi", INT32_MAX, 1);
	cr_assert_eq(flowq_submit(e, &hold.req), 0);
	fx_poll_all(e);
	cr_assert_eq(flowq_submit(e, &lo.req), 0);
	cr_assert_eq(flowq_submit(e, &mid.req), 0);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	fx_poll_all(e);
	struct fx_req *order[] = {&hi, &mid, &lo};
	for (int i = 0; i < 3; i++) {
		struct fx_req *prev = i == 0 ? &hold : order[i - 1];
		cr_assert_eq(flowq_release(e, &prev->req), 0);
		fx_poll_all(e);
		cr_assert_eq(order[i]->seen, FLOWQ_DISPATCHED, "step %d", i);
		for (int j = i + 1; j < 3; j++)
			cr_assert_eq(order[j]->completions, 0, "step %d: %d early", i, j);
	}
	cr_assert_eq(flowq_release(e, &lo.req), 0);
	flowq_engine_destroy(e);
}

Test(hostile, byte_counts_near_the_limits)
{
	/* Four requests of FLOWQ_LIMIT_MAX (2^62) bytes each, 2^64 in all,
	 * with no byte limit anywhere: all are admitted and served, and the
	 * engine's state stays right. The byte statistics are exact below
	 * 2^63 queued (flowq.h, struct flowq_stats): 2^64 and 3 * 2^62 read
	 * as 0, and once the backlog is back to 2^62 it reads exactly, though
	 * the lifetime byte counter behind it has wrapped past 2^64 (it read
	 * 0 for as long as the counter stayed wrapped before the fix). */
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	c.default_band.max_bytes = 0; /* the default band holds 1 GB */
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hold, r[4];
	fx_req_init(&hold, "hold", 0, 1);
	cr_assert_eq(flowq_submit(e, &hold.req), 0);
	fx_poll_all(e);
	for (int i = 0; i < 4; i++) {
		fx_req_init(&r[i], "big", 0, FLOWQ_LIMIT_MAX);
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
	}
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.queued, 4);
	cr_assert_eq(st.queued_bytes, 0, "2^64 modulo 2^64");
	cr_assert_eq(flowq_release(e, &hold.req), 0);
	fx_poll_all(e);
	cr_assert_eq(r[0].seen, FLOWQ_DISPATCHED);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.queued, 3);
	cr_assert_eq(st.queued_bytes, 0, "3 * 2^62 is above 2^63");
	cr_assert_eq(st.inflight_bytes, FLOWQ_LIMIT_MAX);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(flowq_release(e, &r[i].req), 0);
		fx_poll_all(e);
		cr_assert_eq(r[i + 1].seen, FLOWQ_DISPATCHED);
		flowq_stats_engine(e, &st);
		cr_assert_eq(st.queued, 2u - (unsigned)i);
		cr_assert_eq(st.inflight_bytes, FLOWQ_LIMIT_MAX);
		if (i == 0)
			cr_assert_eq(st.queued_bytes, 0, "2^63 is not below 2^63");
		if (i == 1)
			cr_assert_eq(st.queued_bytes, FLOWQ_LIMIT_MAX, "after the wrap");
	}
	cr_assert_eq(flowq_release(e, &r[3].req), 0);
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.queued + st.queued_bytes + st.inflight + st.inflight_bytes, 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 5);
	/* With a byte limit of FLOWQ_LIMIT_MAX, one fits and the next does
	 * not. */
	struct flowq_config c2 = fx_polled_cfg();
	c2.default_band.max_bytes = 0;
	c2.max_bytes = FLOWQ_LIMIT_MAX;
	struct flowq_engine *g = fx_make(&c2);
	struct fx_req x, y;
	fx_req_init(&x, "big", 0, FLOWQ_LIMIT_MAX);
	fx_req_init(&y, "big", 0, 1);
	cr_assert_eq(flowq_submit(g, &x.req), 0);
	cr_assert_eq(flowq_submit(g, &y.req), -ENOSPC);
	cr_assert_eq(flowq_req_cause(&y.req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	flowq_engine_destroy(g);
	flowq_engine_destroy(e);
}

/* Submits @p h (expecting @p err, @p o, @p c), then polls: a refused
 * request leaves nothing queued and gets no completion. */
static void
submit_refused(struct flowq_engine *e, struct fx_req *h, int err, enum flowq_outcome o,
	       enum flowq_cause c)
{
	cr_assert_eq(flowq_submit(e, &h->req), err, "%llu bytes",
		     (unsigned long long)h->req.bytes);
	cr_assert_eq(flowq_req_outcome(&h->req), o);
	cr_assert_eq(flowq_req_cause(&h->req), c);
	fx_poll_all(e);
	cr_assert_eq(h->completions, 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued + st.queued_bytes + st.inflight + st.inflight_bytes, 0);
	cr_assert_eq(st.causes[o][c], 1);
}

/* Submits @p h and polls: it must be dispatched at once. */
static void
submit_dispatched(struct flowq_engine *e, struct fx_req *h)
{
	cr_assert_eq(flowq_submit(e, &h->req), 0);
	fx_poll_all(e);
	cr_assert_eq(h->seen, FLOWQ_DISPATCHED);
}

Test(hostile, request_larger_than_the_inflight_byte_limit)
{
	/* It could never be dispatched (in flight + bytes must fit the limit
	 * even when nothing is in flight): refused at once instead of
	 * holding queue capacity until its TTL, or for ever without one. The
	 * same rule holds for the utilization detector, which keeps the
	 * in-flight limit. */
	for (int util = 0; util < 2; util++) {
		struct flowq_config c = fx_polled_cfg();
		c.saturation.max_inflight_bytes = 1000;
		if (util)
			c.saturation.detector = "utilization";
		c.default_ttl_ns = FLOWQ_TTL_NONE;
		struct flowq_engine *e = fx_make(&c);
		struct fx_req big, fit;
		fx_req_init(&big, "big", 0, 1001);
		submit_refused(e, &big, -EMSGSIZE, FLOWQ_REJECTED_OTHER,
			       FLOWQ_CAUSE_INVALID_REQUEST);
		/* Refused before the flow lookup: no flow was made. */
		struct flowq_stats st;
		cr_assert_eq(flowq_stats_flow(e, "big", 3, 0, &st), -ENOENT);
		if (!util) {
			/* Exactly the limit dispatches. (The utilization
			 * detector's endpoints have not reported: its gate
			 * stays closed, which is "not now".) */
			fx_req_init(&fit, "big", 0, 1000);
			submit_dispatched(e, &fit);
			cr_assert_eq(flowq_release(e, &fit.req), 0);
		}
		flowq_engine_destroy(e);
	}
	/* "callback" ignores the in-flight limits: nothing to refuse. */
	struct flowq_config c = fx_polled_cfg();
	c.saturation.detector = "callback";
	c.saturation.callback = sat_zero;
	c.saturation.max_inflight_bytes = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 5000);
	submit_dispatched(e, &h);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	flowq_engine_destroy(e);
}

Test(hostile, request_larger_than_a_queued_byte_limit)
{
	/* A request that could never fit a queued-byte limit (global, band or
	 * flow max_bytes) is "never", not "full now": -EMSGSIZE with cause
	 * invalid_request, where a full limit gives -ENOSPC. Global and flow
	 * limits are checked before the flow look-up (no flow is made); the
	 * band's after it. Exactly the limit is admitted and dispatched. */
	for (int level = 0; level < 3; level++) {
		struct flowq_config c = fx_polled_cfg();
		c.default_ttl_ns = FLOWQ_TTL_NONE;
		if (level == 0)
			c.max_bytes = 1000;
		else if (level == 1)
			c.default_band.max_bytes = 1000;
		else
			c.flow_max_bytes = 1000;
		struct flowq_engine *e = fx_make(&c);
		struct fx_req big, fit, full;
		fx_req_init(&big, "big", 0, 1001);
		submit_refused(e, &big, -EMSGSIZE, FLOWQ_REJECTED_OTHER,
			       FLOWQ_CAUSE_INVALID_REQUEST);
		struct flowq_stats st;
		cr_assert_eq(flowq_stats_flow(e, "big", 3, 0, &st), level == 1 ? 0 : -ENOENT,
			     "level %d", level);
		/* Exactly the limit is admitted; with it queued, one more
		 * byte is "full now". */
		fx_req_init(&fit, "big", 0, 1000);
		cr_assert_eq(flowq_submit(e, &fit.req), 0, "level %d", level);
		fx_req_init(&full, "big", 0, 1);
		cr_assert_eq(flowq_submit(e, &full.req), -ENOSPC, "level %d", level);
		cr_assert_eq(flowq_req_outcome(&full.req), FLOWQ_REJECTED_CAPACITY);
		fx_poll_all(e);
		cr_assert_eq(fit.seen, FLOWQ_DISPATCHED, "level %d", level);
		cr_assert_eq(flowq_release(e, &fit.req), 0);
		flowq_engine_destroy(e);
	}
}

Test(hostile, usage_ceiling_delays_a_large_request_but_never_refuses_it)
{
	/* A band's ceiling bounds the use before a dispatch (saturation <
	 * ceiling), not the request: a request of 0.8 x the limit in a band
	 * of ceiling 0.5 waits while 300 bytes are in flight (300 + 800 >
	 * 1000) and dispatches once the pool is idle. So only the absolute
	 * limit makes a request impossible. */
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight_bytes = 1000;
	c.default_band.usage_ceiling = 0.5;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req small, big;
	fx_req_init(&small, "s", 0, 300);
	fx_req_init(&big, "b", 0, 800);
	submit_dispatched(e, &small);
	cr_assert_eq(flowq_submit(e, &big.req), 0);
	fx_poll_all(e);
	cr_assert_eq(big.completions, 0);
	cr_assert_eq(flowq_release(e, &small.req), 0);
	fx_poll_all(e);
	cr_assert_eq(big.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &big.req), 0);
	flowq_engine_destroy(e);
}

Test(hostile, ttl_and_deadline_edges)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hold, far, past, now;
	fx_req_init(&hold, "hold", 0, 1);
	cr_assert_eq(flowq_submit(e, &hold.req), 0);
	fx_poll_all(e);
	/* A TTL so long that submit time + TTL overflows int64: never
	 * expires (it must not wrap into the past). */
	fx_req_init(&far, "f", 0, 1);
	far.req.ttl_ns = INT64_MAX - 1;
	far.req.deadline_ns = INT64_MAX;
	cr_assert_eq(flowq_submit(e, &far.req), 0);
	fx_advance(INT64_C(1) << 40);
	fx_poll_all(e);
	cr_assert_eq(far.completions, 0, "expired: outcome %d", far.seen);
	/* A deadline already passed: refused at submit. */
	fx_req_init(&past, "f", 0, 1);
	past.req.deadline_ns = fx_clock(NULL) - 1;
	cr_assert_eq(flowq_submit(e, &past.req), -ETIMEDOUT);
	cr_assert_eq(flowq_req_cause(&past.req), FLOWQ_CAUSE_DEADLINE_PASSED);
	/* A deadline of exactly now: passed too (nothing can run before it). */
	fx_req_init(&now, "f", 0, 1);
	now.req.deadline_ns = fx_clock(NULL);
	int rc = flowq_submit(e, &now.req);
	cr_assert(rc == -ETIMEDOUT || rc == 0, "rc %d", rc);
	cr_assert_eq(flowq_release(e, &hold.req), 0);
	fx_poll_all(e);
	cr_assert_eq(far.seen, FLOWQ_DISPATCHED);
	if (rc == 0)
		cr_assert_neq(now.seen, FLOWQ_DISPATCHED, "dispatched at or past its deadline");
	flowq_engine_destroy(e);
}

Test(hostile, weights_and_handles)
{
	struct flowq_engine *e = make_default();
	struct flowq_flow *f;
	cr_assert_eq(flowq_flow_get(e, "w", 1, 0, &f), 0);
	cr_assert_eq(flowq_flow_set_weight(f, 0), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(f, 65536), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(f, UINT32_MAX), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(NULL, 1), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(f, 65535), 0);
	cr_assert_eq(flowq_flow_set_weight(f, 1), 0);
	flowq_flow_put(e, f);
	flowq_flow_put(e, NULL); /* a no-op */
	flowq_engine_destroy(e);
	flowq_engine_destroy(NULL); /* a no-op */
}

Test(hostile, polled_calls_out_of_range)
{
	struct flowq_engine *e = make_default();
	int64_t next;
	cr_assert_eq(flowq_shard_poll(e, 1, 0, &next), -EINVAL);
	cr_assert_eq(flowq_shard_poll(e, UINT32_MAX, 0, NULL), -EINVAL);
	cr_assert_eq(flowq_shard_fd(e, 1), -EINVAL);
	cr_assert_eq(flowq_shard_poll(NULL, 0, 0, NULL), -EINVAL);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(NULL, &st), -EFAULT);
	cr_assert_eq(flowq_stats_engine(e, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_band(e, 12345, &st), -ENOENT);
	cr_assert_eq(flowq_stats_flow(e, "nobody", 6, 0, &st), -ENOENT);
	flowq_engine_destroy(e);
	/* A threaded engine has no polled calls. */
	struct flowq_config c;
	flowq_config_init(&c);
	c.shards = 1;
	struct flowq_engine *t = fx_make(&c);
	cr_assert_eq(flowq_shard_poll(t, 0, 0, NULL), -EINVAL);
	cr_assert_eq(flowq_shard_fd(t, 0), -EINVAL);
	flowq_engine_destroy(t);
}
