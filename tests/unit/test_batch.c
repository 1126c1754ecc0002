/*
 * flowq_submit_batch() and flowq_release_batch(): argument errors, each
 * rejection path inside a batch, runs on one flow (by id and by handle),
 * FIFO order within a flow, the one wake per call, allocation failure in
 * the middle of a batch, and a differential check: random batches given to
 * one engine through the batch calls and to a twin through one call per
 * request must get the same return codes, outcomes, causes, per-flow order
 * and statistics. Polled mode on a manual clock (every step deterministic)
 * except the threaded wake-up case.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flowq/flowq.h>

#include "engine_fixture.h"
#include "test_util.h"

/* ---- arguments ---- */

Test(batch, argument_errors_touch_nothing)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "a", 0, 1);
	struct flowq_req *one[1] = {&h.req};
	int rc[1] = {12345};

	cr_assert_eq(flowq_submit_batch(e, one, 0, rc), 0);
	cr_assert_eq(rc[0], 12345, "n = 0 writes no return code");
	cr_assert_eq(flowq_submit_batch(e, NULL, 0, NULL), 0);
	cr_assert_eq(flowq_submit_batch(NULL, one, 1, rc), -EFAULT);
	cr_assert_eq(flowq_submit_batch(e, NULL, 1, rc), -EFAULT);
	cr_assert_eq(flowq_submit_batch(e, one, (size_t)INT_MAX + 1, rc), -EINVAL);
	cr_assert_eq(flowq_release_batch(NULL, one, 1, rc), -EFAULT);
	cr_assert_eq(flowq_release_batch(e, NULL, 1, rc), -EFAULT);
	cr_assert_eq(flowq_release_batch(e, one, (size_t)INT_MAX + 1, rc), -EINVAL);
	cr_assert_eq(rc[0], 12345);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_PENDING);
	/* Untouched: it can still be submitted. */
	cr_assert_eq(flowq_submit_batch(e, one, 1, NULL), 1);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release_batch(e, one, 1, NULL), 1);
	flowq_engine_destroy(e);
}

/* ---- every rejection inside one batch ---- */

Test(batch, each_rejection_as_single_submit)
{
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = 3;
	c.flow_max_bytes = 1000;
	struct flowq_band_config band = c.default_band;
	band.priority = 0;
	c.bands = &band;
	c.nbands = 1;
	c.default_band_enabled = false; /* priority 5 has no band */
	struct flowq_engine *e = fx_make(&c);
	enum { N = 9 };
	struct fx_req h[N];
	const char *ids[N] = {"a", "a", "a", "b", "b", "b", "c", "d", "nope"};
	for (int i = 0; i < N; i++)
		fx_req_init(&h[i], ids[i], 0, 10);
	h[2].req.complete = NULL;	   /* invalid */
	h[3].req.bytes = 2000;		   /* over flow_max_bytes */
	h[4].req.deadline_ns = fx_now;	   /* already passed */
	h[8].req.priority = 5;		   /* no band */
	/* h[1] is not in the batch (a NULL entry stands there); h[7] is the
	 * 4th queued: over the global limit; h[0] comes again at the end. */
	struct flowq_req *reqs[N + 1] = {&h[0].req, NULL,      &h[2].req, &h[3].req, &h[4].req,
					 &h[5].req, &h[6].req, &h[7].req, &h[8].req, &h[0].req};
	int rc[N + 1];
	cr_assert_eq(flowq_submit_batch(e, reqs, N + 1, rc), 3);
	const int want[N + 1] = {0,	   -EFAULT, -EINVAL, -EMSGSIZE, -ETIMEDOUT,
				 0,	   0,	    -ENOSPC, -ENOENT,	-EBUSY};
	for (int i = 0; i < N + 1; i++)
		cr_assert_eq(rc[i], want[i], "reqs[%d]: %d, not %d", i, rc[i], want[i]);
	cr_assert_eq(flowq_req_cause(&h[2].req), FLOWQ_CAUSE_INVALID_REQUEST);
	cr_assert_eq(flowq_req_outcome(&h[3].req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&h[4].req), FLOWQ_CAUSE_DEADLINE_PASSED);
	cr_assert_eq(flowq_req_outcome(&h[7].req), FLOWQ_REJECTED_CAPACITY);
	cr_assert_eq(flowq_req_cause(&h[7].req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	cr_assert_eq(flowq_req_cause(&h[8].req), FLOWQ_CAUSE_UNKNOWN_BAND);
	cr_assert_eq(flowq_req_outcome(&h[0].req), FLOWQ_PENDING, "still queued");

	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued, 3);
	cr_assert_eq(st.queued_bytes, 30);
	cr_assert_eq(st.outcomes[FLOWQ_REJECTED_OTHER], 4);
	cr_assert_eq(st.outcomes[FLOWQ_REJECTED_CAPACITY], 1);
	cr_assert_eq(fx_poll_all(e), 3);
	for (int i = 0; i < N; i++) {
		bool queued = i == 0 || i == 5 || i == 6;
		cr_assert_eq(h[i].completions, queued ? 1 : 0, "h[%d]", i);
	}
	flowq_engine_destroy(e);
}

/* ---- runs, order, handles ---- */

Test(batch, runs_keep_array_order_per_flow)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *hb;
	cr_assert_eq(flowq_flow_get(e, "b", 1, 0, &hb), 0);
	enum { N = 12 };
	struct fx_req h[N];
	struct flowq_req *reqs[N];
	/* a a (b by handle) (b by id) a (b by handle) a a c c (b by id) a */
	const char *ids[N] = {"a", "a", NULL, "b", "a", NULL, "a", "a", "c", "c", "b", "a"};
	for (int i = 0; i < N; i++) {
		fx_req_init(&h[i], ids[i] ? ids[i] : "b", 0, 1 + (uint64_t)i);
		if (!ids[i])
			h[i].req.flow = hb;
		reqs[i] = &h[i].req;
	}
	int rc[N];
	cr_assert_eq(flowq_submit_batch(e, reqs, N, rc), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(rc[i], 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "a", 1, 0, &st), 0);
	cr_assert_eq(st.queued, 6);
	cr_assert_eq(st.queued_bytes, 1 + 2 + 5 + 7 + 8 + 12);
	cr_assert_eq(flowq_stats_flow(e, "b", 1, 0, &st), 0);
	cr_assert_eq(st.queued, 4);
	cr_assert_eq(fx_poll_all(e), N);
	/* FIFO within each flow: completion order follows array order. */
	for (int i = 0; i < N; i++) {
		cr_assert_eq(h[i].completions, 1);
		cr_assert_eq(h[i].seen, FLOWQ_DISPATCHED);
		for (int j = i + 1; j < N; j++)
			if (!strcmp(h[i].req.flow_id, h[j].req.flow_id))
				cr_assert_lt(h[i].order, h[j].order, "%d before %d", i, j);
	}
	struct flowq_req *rel[N + 2];
	for (int i = 0; i < N; i++)
		rel[i] = reqs[i];
	rel[N] = reqs[0]; /* twice */
	rel[N + 1] = NULL;
	int rrc[N + 2];
	cr_assert_eq(flowq_release_batch(e, rel, N + 2, rrc), N);
	cr_assert_eq(rrc[N], -EALREADY);
	cr_assert_eq(rrc[N + 1], -EFAULT);
	flowq_flow_put(e, hb);
	flowq_engine_destroy(e);
}

/* ---- the look-ahead (ahead_get() in core/submit.c) ---- */

/* A batch of 40 crosses two of the look-ahead's chunks (16 requests): runs
 * across a chunk's end, a key that comes back after another, the same
 * request twice, NULL and invalid entries, a band that does not exist,
 * a flow named by handle and then by id, new flows and known ones. Every
 * result is flowq_submit()'s, and every lease the look-ahead took is given
 * back: each flow is collected once idle, but the one a handle holds. */
Test(batch, look_ahead_gives_back_every_lease)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.flow_gc_timeout_ns = 1000;
	struct flowq_band_config b = c.default_band;
	b.priority = 0;
	c.bands = &b;
	c.nbands = 1;
	c.default_band_enabled = false;
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *hh;
	cr_assert_eq(flowq_flow_get(e, "h", 1, 0, &hh), 0);
	/* Known before the call: "k" (and "h", by its handle). */
	struct fx_req k0;
	fx_req_init(&k0, "k", 0, 1);
	cr_assert_eq(flowq_submit(e, &k0.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_release(e, &k0.req), 0);

	enum { N = 40 };
	static const char *const ids[N] = {"a",  "a",  "a",  "b",  "a",  "-",  "!",  "x",
					   "h*", "h",  "n0", "n1", "k",  "n2", "r",  "r",
					   "r",  "r",  "r",  "b",  "z0", "z1", "z2", "z3",
					   "z4", "z5", "z6", "z7", "z8", "z9", "za", "zb",
					   "zc", "zd", "ze", "zf", "k",  "zf", "k",  "a"};
	struct fx_req h[N];
	struct flowq_req *reqs[N];
	for (int i = 0; i < N; i++) {
		fx_req_init(&h[i], ids[i], 0, 1);
		reqs[i] = &h[i].req;
		if (!strcmp(ids[i], "-"))
			reqs[i] = NULL; /* skipped, -EFAULT */
		else if (!strcmp(ids[i], "!"))
			h[i].req.flow_id = NULL; /* invalid, -EINVAL */
		else if (!strcmp(ids[i], "x"))
			h[i].req.priority = 7; /* no band, -ENOENT */
		else if (!strcmp(ids[i], "h*"))
			h[i].req.flow = hh; /* the handle */
	}
	/* The same request twice: -EBUSY (in the first chunk, and in the
	 * last, where its lease is one the call must give back at its end). */
	reqs[19] = reqs[3];
	reqs[38] = reqs[36];
	int rc[N];
	cr_assert_eq(flowq_submit_batch(e, reqs, N, rc), N - 5);
	for (int i = 0; i < N; i++) {
		int want = i == 5               ? -EFAULT
			   : i == 6             ? -EINVAL
			   : i == 7             ? -ENOENT
			   : i == 19 || i == 38 ? -EBUSY
						: 0;
		cr_assert_eq(rc[i], want, "reqs[%d] (%s): %d", i, ids[i], rc[i]);
	}
	cr_assert_eq(fx_poll_all(e), N - 5);
	for (int i = 0; i < N; i++) {
		if (rc[i])
			continue;
		cr_assert_eq(h[i].seen, FLOWQ_DISPATCHED, "reqs[%d]", i);
		cr_assert_eq(flowq_release(e, reqs[i]), 0);
	}
	/* Each request on the flow it names (the handle's is "h"). */
	struct flowq_stats st;
	for (int i = 0; i < N; i++) {
		if (rc[i])
			continue;
		const char *id = strcmp(ids[i], "h*") ? ids[i] : "h";
		uint64_t want = !strcmp(id, "k"); /* k0, before the call */
		for (int j = 0; j < N; j++)
			want += rc[j] == 0 && !strncmp(ids[j], id, strlen(id)) &&
				(ids[j][strlen(id)] == 0 || ids[j][strlen(id)] == '*');
		cr_assert_eq(flowq_stats_flow(e, id, (uint32_t)strlen(id), 0, &st), 0);
		cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], want, "flow %s", id);
	}
	/* Idle for longer than the GC timeout: every flow goes, but "h". */
	for (int i = 0; i < 3; i++) {
		fx_advance(2000);
		fx_poll_all(e);
	}
	for (int i = 0; i < N; i++) {
		if (i == 5 || i == 6 || i == 7 || i == 8)
			continue;
		int want = strcmp(ids[i], "h") ? -ENOENT : 0;
		cr_assert_eq(
			flowq_stats_flow(e, ids[i], (uint32_t)strlen(ids[i]), 0, &st),
			want, "flow %s: a lease was kept", ids[i]);
	}
	flowq_flow_put(e, hh);
	for (int i = 0; i < 3; i++) {
		fx_advance(2000);
		fx_poll_all(e);
	}
	cr_assert_eq(flowq_stats_flow(e, "h", 1, 0, &st), -ENOENT);
	flowq_engine_destroy(e);
}

/* ---- release_batch and the gate ---- */

Test(batch, release_batch_gives_slots_back_once)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 2;
	struct flowq_engine *e = fx_make(&c);
	enum { N = 5 };
	struct fx_req h[N];
	struct flowq_req *reqs[N];
	for (int i = 0; i < N; i++) {
		fx_req_init(&h[i], i % 2 ? "odd" : "even", 0, 10);
		reqs[i] = &h[i].req;
	}
	cr_assert_eq(flowq_submit_batch(e, reqs, N, NULL), N);
	cr_assert_eq(fx_poll_all(e), 2, "the gate holds two");
	struct flowq_req *d[2], *rel[4];
	int nd = 0, rc[4];
	for (int i = 0; i < N; i++)
		if (h[i].completions)
			d[nd++] = reqs[i];
	cr_assert_eq(nd, 2);
	struct flowq_req *waiting = h[0].completions ? (h[1].completions ? reqs[2] : reqs[1])
						     : reqs[0];
	rel[0] = d[0];
	rel[1] = waiting; /* not dispatched */
	rel[2] = d[1];
	rel[3] = d[0]; /* again */
	cr_assert_eq(flowq_release_batch(e, rel, 4, rc), 2);
	cr_assert_eq(rc[0], 0);
	cr_assert_eq(rc[1], -EINVAL);
	cr_assert_eq(rc[2], 0);
	cr_assert_eq(rc[3], -EALREADY);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(fx_poll_all(e), 2, "both slots came back");
	flowq_engine_destroy(e);
}

/* ---- the wake-up ---- */

Test(batch, one_call_wakes_each_shard)
{
	/* Polled: a shard's fd becomes readable when its doorbell rang. */
	struct flowq_config c = fx_polled_cfg();
	c.shards = 4;
	struct flowq_engine *e = fx_make(&c);
	int fd[4];
	for (unsigned s = 0; s < 4; s++)
		cr_assert_geq(fd[s] = flowq_shard_fd(e, s), 0); /* before any poll */
	enum { N = 64 };
	static struct fx_req h[N];
	struct flowq_req *reqs[N];
	char ids[N][8];
	/* Round 0 creates the flows (a new flow rings its shard by itself);
	 * round 1 must wake every shard through the batch's own kick. */
	for (int round = 0; round < 2; round++) {
		for (unsigned s = 0; s < 4; s++) {
			int64_t next;
			cr_assert_eq(flowq_shard_poll(e, s, 0, &next), 0); /* arms the fd */
			struct pollfd p = {.fd = fd[s], .events = POLLIN};
			cr_assert_eq(poll(&p, 1, 0), 0, "shard %u readable while idle", s);
		}
		for (int i = 0; i < N; i++) {
			snprintf(ids[i], sizeof(ids[i]), "f%02d", i);
			fx_req_init(&h[i], ids[i], 0, 1);
			reqs[i] = &h[i].req;
		}
		cr_assert_eq(flowq_submit_batch(e, reqs, N, NULL), N);
		for (unsigned s = 0; s < 4; s++) {
			struct pollfd p = {.fd = fd[s], .events = POLLIN};
			cr_assert_eq(poll(&p, 1, 0), 1, "round %d: shard %u not woken", round, s);
		}
		cr_assert_eq(fx_poll_all(e), N);
		cr_assert_eq(flowq_release_batch(e, reqs, N, NULL), N);
	}
	flowq_engine_destroy(e);
}

struct done_count {
	_Atomic int n;
};

static void
count_done(struct flowq_req *req, void *arg)
{
	(void)req;
	atomic_fetch_add((_Atomic int *)arg, 1);
}

Test(batch, threaded_dispatchers_wake_for_a_batch)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.shards = 2;
	c.idle_spin_ns = 0; /* every dispatcher sleeps when idle */
	struct flowq_engine *e = fx_make(&c);
	enum { N = 200 };
	static struct flowq_req r[N];
	struct flowq_req *reqs[N];
	static _Atomic int done;
	char ids[N][8];
	for (int round = 0; round < 20; round++) {
		atomic_store(&done, 0);
		for (int i = 0; i < N; i++) {
			snprintf(ids[i], sizeof(ids[i]), "t%03d", (i * 7 + round) % 50);
			flowq_req_init(&r[i]);
			r[i].flow_id = ids[i];
			r[i].flow_id_len = (uint32_t)strlen(ids[i]);
			r[i].complete = count_done;
			r[i].arg = (void *)&done;
			reqs[i] = &r[i];
		}
		/* Let the dispatchers fall asleep first. */
		usleep(2000);
		cr_assert_eq(flowq_submit_batch(e, reqs, N, NULL), N);
		for (int w = 0; w < 5000 && atomic_load(&done) < N; w++)
			usleep(1000);
		cr_assert_eq(atomic_load(&done), N, "round %d: %d of %d completed", round,
			     atomic_load(&done), N);
		cr_assert_eq(flowq_release_batch(e, reqs, N, NULL), N);
	}
	flowq_engine_destroy(e);
}

/* ---- allocation failure in the middle ---- */

Test(batch, allocation_failure_rejects_only_its_run)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req old;
	fx_req_init(&old, "old", 0, 1);
	cr_assert_eq(flowq_submit(e, &old.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	enum { N = 5 };
	struct fx_req h[N];
	struct flowq_req *reqs[N];
	const char *ids[N] = {"old", "new", "new", "old", "new"};
	for (int i = 0; i < N; i++) {
		fx_req_init(&h[i], ids[i], 0, 1);
		reqs[i] = &h[i].req;
	}
	test_count_alloc_budget(&ca, 0); /* a new flow cannot be made */
	int rc[N];
	cr_assert_eq(flowq_submit_batch(e, reqs, N, rc), 2);
	const int want[N] = {0, -ENOMEM, -ENOMEM, 0, -ENOMEM};
	for (int i = 0; i < N; i++)
		cr_assert_eq(rc[i], want[i], "reqs[%d]: %d", i, rc[i]);
	cr_assert_eq(flowq_req_cause(&h[1].req), FLOWQ_CAUSE_NO_MEMORY);
	ca.fail_after = ~0ul;
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(h[0].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(h[3].seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0);
}

/* ---- differential: batch calls against one call per request ---- */

enum { DIFF_OBJS = 48, DIFF_FLOWS = 6 };

struct diff_req {
	struct flowq_req req;
	int completions;
	int order;
	enum flowq_outcome seen;
	enum flowq_cause cause;
	bool out; /* submitted and not yet finished */
};

struct diff_side {
	struct flowq_engine *e;
	struct flowq_flow *handle[2];
	struct diff_req r[DIFF_OBJS];
	int seq;
};

static void
diff_complete(struct flowq_req *req, void *arg)
{
	struct diff_side *s = arg;
	struct diff_req *d = (struct diff_req *)req;
	d->completions++;
	d->seen = flowq_req_outcome(req);
	d->cause = flowq_req_cause(req);
	d->order = s->seq++;
}

static const char *const diff_ids[DIFF_FLOWS] = {"a", "b", "c", "d", "h0", "h1"};

static void
diff_setup(struct diff_side *s)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.max_requests = 24;
	c.flow_max_requests = 7;
	c.saturation.max_inflight = 5;
	struct flowq_band_config b[2] = {c.default_band, c.default_band};
	b[0].priority = 0;
	b[1].priority = 1;
	b[1].fairness = "round_robin";
	b[1].max_bytes = 3000;
	c.bands = b;
	c.nbands = 2;
	memset(s, 0, sizeof(*s));
	s->e = fx_make(&c);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(flowq_flow_get(s->e, diff_ids[4 + k], 2, 0, &s->handle[k]), 0);
}

/* Prepare object @p i of @p s from the draw @p r. */
static void
diff_prepare(struct diff_side *s, int i, uint64_t r)
{
	struct diff_req *d = &s->r[i];
	int flow = (int)(r % DIFF_FLOWS);
	memset(d, 0, sizeof(*d));
	flowq_req_init(&d->req);
	d->req.flow_id = diff_ids[flow];
	d->req.flow_id_len = (uint32_t)strlen(diff_ids[flow]);
	d->req.priority = flow >= 4 ? 0 : (int32_t)((r >> 8) % 3); /* 2: no band */
	if (flow >= 4 && (r >> 12) % 2)
		d->req.flow = s->handle[flow - 4];
	d->req.bytes = 1 + (r >> 16) % 900;
	d->req.complete = (r >> 28) % 29 ? diff_complete : NULL;
	d->req.arg = s;
	if ((r >> 34) % 23 == 0)
		d->req.deadline_ns = fx_now - 1;
	else if ((r >> 34) % 7 == 0)
		d->req.ttl_ns = 1 + (int64_t)((r >> 40) % 3000);
	d->out = true;
}

static void
diff_compare(struct diff_side *a, struct diff_side *b, int round)
{
	for (int i = 0; i < DIFF_OBJS; i++) {
		struct diff_req *x = &a->r[i], *y = &b->r[i];
		cr_assert_eq(x->completions, y->completions, "round %d obj %d", round, i);
		cr_assert_eq(flowq_req_outcome(&x->req), flowq_req_outcome(&y->req),
			     "round %d obj %d", round, i);
		cr_assert_eq(flowq_req_cause(&x->req), flowq_req_cause(&y->req));
		cr_assert_eq(x->order, y->order, "round %d obj %d: completion order", round, i);
	}
	struct flowq_stats sa, sb;
	cr_assert_eq(flowq_stats_engine(a->e, &sa), 0);
	cr_assert_eq(flowq_stats_engine(b->e, &sb), 0);
	cr_assert_eq(sa.queued, sb.queued, "round %d", round);
	cr_assert_eq(sa.queued_bytes, sb.queued_bytes);
	cr_assert_eq(sa.inflight, sb.inflight);
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		for (int k = 0; k < FLOWQ_CAUSE_COUNT; k++)
			cr_assert_eq(sa.causes[o][k], sb.causes[o][k], "round %d (%d, %d)",
				     round, o, k);
}

Test(batch, same_results_as_one_submit_per_request)
{
	static struct diff_side one, bat;
	diff_setup(&one);
	diff_setup(&bat);
	uint64_t x = 0x5eed;
	for (int round = 0; round < 300; round++) {
		/* Submit up to 16 free objects (sometimes one of them twice). */
		int idx[20], m = 0, want = 1 + (int)(test_rng_next(&x) % 16);
		for (int i = 0; i < DIFF_OBJS && m < want; i++) {
			if (one.r[i].out)
				continue;
			uint64_t r = test_rng_next(&x);
			diff_prepare(&one, i, r);
			diff_prepare(&bat, i, r);
			idx[m++] = i;
		}
		if (m > 1 && test_rng_next(&x) % 5 == 0)
			idx[m++] = idx[0];
		struct flowq_req *reqs[20];
		int rc_one[20], rc_bat[20], queued = 0;
		for (int k = 0; k < m; k++) {
			rc_one[k] = flowq_submit(one.e, &one.r[idx[k]].req);
			queued += rc_one[k] == 0;
			reqs[k] = &bat.r[idx[k]].req;
		}
		cr_assert_eq(flowq_submit_batch(bat.e, reqs, (size_t)m, rc_bat), queued);
		for (int k = 0; k < m; k++) {
			cr_assert_eq(rc_one[k], rc_bat[k], "round %d, reqs[%d] (obj %d)", round,
				     k, idx[k]);
			if (rc_one[k] != 0 && rc_one[k] != -EBUSY)
				one.r[idx[k]].out = bat.r[idx[k]].out = false;
		}
		fx_advance((int64_t)(test_rng_next(&x) % 2000));
		if (test_rng_next(&x) % 3) {
			fx_poll_all(one.e);
			fx_poll_all(bat.e);
		}
		/* Finish what completed: release the dispatched, in batches on
		 * one side. */
		struct flowq_req *rel[DIFF_OBJS];
		int nrel = 0, released = 0;
		for (int i = 0; i < DIFF_OBJS; i++) {
			if (!one.r[i].out || !one.r[i].completions || test_rng_next(&x) % 4 == 0)
				continue;
			if (one.r[i].seen == FLOWQ_DISPATCHED) {
				cr_assert_eq(flowq_release(one.e, &one.r[i].req), 0);
				released++;
				rel[nrel++] = &bat.r[i].req;
			}
			one.r[i].out = bat.r[i].out = false;
		}
		cr_assert_eq(flowq_release_batch(bat.e, rel, (size_t)nrel, NULL), released);
		diff_compare(&one, &bat, round);
	}
	for (int k = 0; k < 2; k++) {
		flowq_flow_put(one.e, one.handle[k]);
		flowq_flow_put(bat.e, bat.handle[k]);
	}
	flowq_engine_destroy(one.e);
	flowq_engine_destroy(bat.e);
	for (int i = 0; i < DIFF_OBJS; i++)
		cr_assert_eq(one.r[i].completions, bat.r[i].completions);
}
