/*
 * Engine: every outcome path, capacity at each level, strict priority and
 * the gate, TTL and deadlines, cancellation, shutdown, flow handles and GC,
 * ports, detectors, statistics. Polled mode on a manual clock, so every
 * step is deterministic; a few threaded-mode cases check the dispatcher
 * threads and flowq_submit_wait().
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "mono.h"
#include "req.h"
#include "engine_fixture.h"

/* ---- fixture: tests/support/engine_fixture.h ---- */

/* ---- create / destroy ---- */

Test(engine, create_destroy_polled_and_threaded)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	cr_assert_eq(flowq_shard_count(e), 1);
	cr_assert_eq(flowq_now(e), fx_now);
	flowq_engine_destroy(e);

	flowq_config_init(&c);
	c.shards = 2;
	e = fx_make(&c);
	cr_assert_eq(flowq_shard_count(e), 2);
	cr_assert_eq(flowq_shard_poll(e, 0, 0, NULL), -EINVAL, "poll is polled-mode only");
	cr_assert_eq(flowq_shard_fd(e, 0), -EINVAL);
	flowq_engine_destroy(e);
}

/* Per-flow counters keep the six (outcome, cause) pairs a dispatcher
 * decides, each at its own index; any other pair (the rejections, counted
 * apart, PENDING, or a cause that does not go with the outcome) has none. */
Test(engine, flow_pair_indexes_exactly_the_dispatcher_decided_pairs)
{
	unsigned seen = 0;

	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
			int i = flowq__flow_pair((enum flowq_outcome)o,
						 (enum flowq_cause)c);
			bool decided = o != FLOWQ_PENDING &&
				       flowq_cause_valid_for((enum flowq_outcome)o,
							     (enum flowq_cause)c) &&
				       !flowq_outcome_is_rejected((enum flowq_outcome)o);
			if (!decided) {
				cr_assert_eq(i, -1, "outcome %d cause %d", o, c);
				continue;
			}
			cr_assert(i >= 0 && i < FLOWQ__FP_COUNT,
				  "outcome %d cause %d: %d", o, c, i);
			cr_assert_eq(seen & (1u << i), 0, "index %d twice", i);
			seen |= 1u << i;
		}
	cr_assert_eq(seen, (1u << FLOWQ__FP_COUNT) - 1, "every index is used");
}

/* A NULL engine: the wake does nothing, the shard count is 0 (both are
 * called from hosts' signal paths, where a crash would be the worst). */
Test(engine, wake_and_shard_count_of_null)
{
	flowq_engine_wake(NULL);
	cr_assert_eq(flowq_shard_count(NULL), 0);
}

/* The diagnostic dump the stress programs print before they abort: one
 * line per engine counter, per shard, per band of each shard, and the
 * utilization detector's lines when it is configured. */
static char *
dump_of(struct flowq_engine *e)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	flowq__debug_dump(e, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_not_null(text);
	return text;
}

static void
assert_in(const char *text, const char *needle)
{
	cr_assert_not_null(strstr(text, needle), "missing \"%s\" in:\n%s", needle, text);
}

Test(engine, debug_dump_shows_gate_queues_shards_and_bands)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.max_requests = 10;
	c.max_bytes = 1000;
	c.saturation.max_inflight = 1;
	c.saturation.max_inflight_bytes = 100;
	struct flowq_band_config b[2] = {c.default_band, c.default_band};
	b[0].priority = 5;
	b[1].priority = 1;
	c.bands = b;
	c.nbands = 2;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req r[3];
	fx_req_init(&r[0], "f", 5, 7);
	fx_req_init(&r[1], "f", 5, 7);
	fx_req_init(&r[2], "f", 5, 7);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
	cr_assert_eq(fx_poll_all(e), 1, "the gate lets one through");

	char *text = dump_of(e);
	assert_in(text, "engine: gate in use 1 req 7 bytes, gate_waiters ");
	assert_in(text, "stopping 0\n");
	assert_in(text, "engine: global queued 2 req 14 bytes\n");
	assert_in(text, "engine: 2 band slots, 0 template bands collected\n");
	assert_in(text, "shard 0: sleeping ");
	assert_in(text, "shard 1: sleeping ");
	cr_assert_null(strstr(text, "shard 2:"), "two shards:\n%s", text);
	cr_assert_null(strstr(text, "utilization:"), "no utilization detector");
	/* A shard lists the bands it has flows of: band 5 on the flow's
	 * shard, where the second request waits for the gate (blocked). */
	unsigned b5 = 0, b1 = 0;
	for (const char *p = text; (p = strstr(p, "  band ")) != NULL; p++) {
		b5 += strncmp(p, "  band 5 (", 10) == 0;
		b1 += strncmp(p, "  band 1 (", 10) == 0;
	}
	cr_assert_eq(b5, 1, "band 5 on the flow's shard:\n%s", text);
	cr_assert_eq(b1, 0, "band 1 has no flow:\n%s", text);
	assert_in(text, " blocked 1 ");
	assert_in(text, " blocked_bytes 7 ");
	assert_in(text, "backlogged 1 vt ");
	free(text);

	cr_assert_eq(flowq_release(e, &r[0].req), 0);
	flowq_engine_destroy(e);
	cr_assert_eq(r[1].seen, FLOWQ_EVICTED_OTHER, "evicted at destroy");

	/* With the utilization detector, its state too. */
	c = fx_polled_cfg();
	c.saturation.detector = "utilization";
	c.saturation.endpoints = 2;
	e = fx_make(&c);
	text = dump_of(e);
	assert_in(text, "utilization: endpoints 2, ");
	assert_in(text, "utilization: shard 0 horizon ");
	assert_in(text, "utilization: endpoint 1 tag ");
	free(text);
	flowq_engine_destroy(e);
}

Test(engine, create_rejects_bad_config_with_message)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_band_config b = c.default_band;
	b.priority = 3;
	b.usage_ceiling = 1.5;
	c.bands = &b;
	c.nbands = 1;
	char err[128] = "";
	c.errbuf = err;
	c.errbuf_size = sizeof(err);
	struct flowq_engine *e = (struct flowq_engine *)0x1;
	cr_assert_eq(flowq_engine_create(&c, &e), -EINVAL);
	cr_assert(strstr(err, "bands[0].usage_ceiling"), "message: %s", err);
	cr_assert_eq(e, (struct flowq_engine *)0x1, "no engine handed out");
	cr_assert_eq(flowq_engine_create(NULL, &e), -EINVAL);
	cr_assert_eq(flowq_engine_create(&c, NULL), -EINVAL);
}

Test(engine, polled_create_returns_the_eventfd_errno)
{
	/* No descriptor can be opened: the limit is the lowest free one. */
	struct rlimit old, low;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	int fd = dup(STDERR_FILENO);
	cr_assert_geq(fd, 0);
	close(fd);
	low = old;
	low.rlim_cur = (rlim_t)fd;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	struct flowq_engine *e = (struct flowq_engine *)0x1;
	int rc = flowq_engine_create(&c, &e);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(rc, -EMFILE, "rc %d", rc);
	cr_assert_eq(e, (struct flowq_engine *)0x1, "no engine handed out");
}

/* ---- the dispatched path ---- */

Test(engine, submit_dispatch_release)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "tenant-a", 0, 100);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_PENDING);
	cr_assert_eq(flowq_submit(e, &h.req), -EBUSY, "double submit");
	cr_assert_eq(flowq_release(e, &h.req), -EINVAL, "not dispatched yet");
	fx_advance(5000);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(h.cause, FLOWQ_CAUSE_NONE);
	cr_assert_eq(fx_poll_all(e), 0, "nothing more");
	cr_assert_eq(flowq_cancel(e, &h.req), -EALREADY);
	cr_assert_eq(flowq_release(e, &h.req), 0);
	cr_assert_eq(flowq_release(e, &h.req), -EALREADY);

	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.queue_time.count, 1);
	cr_assert_geq(flowq_hist_quantile(&st.queue_time, 0.5), 5000);
	cr_assert_eq(flowq_stats_flow(e, "tenant-a", 8, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(flowq_stats_band(e, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(flowq_stats_band(e, 42, &st), -ENOENT);
	flowq_engine_destroy(e);
	cr_assert_eq(h.completions, 1);
}

Test(engine, invalid_requests_rejected_without_completion)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	char longid[FLOWQ_FLOW_ID_MAX + 1];
	memset(longid, 'x', sizeof(longid));

	for (int k = 0; k < 6; k++) {
		fx_req_init(&h, "f", 0, 1);
		switch (k) {
		case 0: h.req.flow_id = NULL; break;
		case 1: h.req.flow_id_len = 0; break;
		case 2:
			h.req.flow_id = longid;
			h.req.flow_id_len = sizeof(longid);
			break;
		case 3: h.req.ttl_ns = -1; break;
		case 4: h.req.complete = NULL; break;
		case 5: h.req.bytes = FLOWQ_LIMIT_MAX + 1; break;
		}
		cr_assert_eq(flowq_submit(e, &h.req), -EINVAL, "case %d", k);
		cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
		cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_INVALID_REQUEST);
	}
	cr_assert_eq(flowq_submit(NULL, &h.req), -EFAULT);
	cr_assert_eq(flowq_submit(e, NULL), -EFAULT);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(h.completions, 0);
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_INVALID_REQUEST], 6);
	flowq_engine_destroy(e);
}

Test(engine, flow_handle_of_another_engine_is_an_invalid_request)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c), *other = fx_make(&c);
	struct flowq_flow *fl = NULL;
	cr_assert_eq(flowq_flow_get(other, "f", 1, 0, &fl), 0);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	h.req.flow = fl;
	cr_assert_eq(flowq_submit(e, &h.req), -EINVAL);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_INVALID_REQUEST);
	cr_assert_eq(fx_poll_all(e) + fx_poll_all(other), 0);
	cr_assert_eq(h.completions, 0);
	flowq_flow_put(other, fl);
	flowq_engine_destroy(other);
	flowq_engine_destroy(e);
}

Test(engine, unknown_band_without_template)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_band_config b = c.default_band;
	b.priority = 5;
	c.bands = &b;
	c.nbands = 1;
	c.default_band_enabled = false;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 6, 1);
	cr_assert_eq(flowq_submit(e, &h.req), -ENOENT);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_UNKNOWN_BAND);
	fx_req_init(&h, "f", 5, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
}

/* ---- capacity ---- */

static void
fill_until_reject(struct flowq_engine *e, struct fx_req *hs, int n, const char *flow,
		  int32_t prio, uint64_t bytes, int expect_ok, enum flowq_cause cause)
{
	for (int i = 0; i < n; i++) {
		fx_req_init(&hs[i], flow, prio, bytes);
		int rc = flowq_submit(e, &hs[i].req);
		if (i < expect_ok) {
			cr_assert_eq(rc, 0, "submit %d", i);
		} else {
			cr_assert_eq(rc, -ENOSPC, "submit %d: %d", i, rc);
			cr_assert_eq(flowq_req_outcome(&hs[i].req), FLOWQ_REJECTED_CAPACITY);
			cr_assert_eq(flowq_req_cause(&hs[i].req), cause);
		}
	}
}

Test(engine, capacity_global_band_flow)
{
	struct fx_req hs[8];
	/* Global: 3 requests. */
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = 3;
	struct flowq_engine *e = fx_make(&c);
	fill_until_reject(e, hs, 4, "a", 0, 10, 3, FLOWQ_CAUSE_CAPACITY_GLOBAL);
	cr_assert_eq(fx_poll_all(e), 3);
	fx_req_init(&hs[7], "a", 0, 10);
	cr_assert_eq(flowq_submit(e, &hs[7].req), 0, "capacity came back after dispatch");
	flowq_engine_destroy(e);

	/* Band: 250 bytes. */
	c = fx_polled_cfg();
	struct flowq_band_config b = c.default_band;
	b.priority = 1;
	b.max_bytes = 250;
	c.bands = &b;
	c.nbands = 1;
	e = fx_make(&c);
	fill_until_reject(e, hs, 3, "a", 1, 100, 2, FLOWQ_CAUSE_CAPACITY_BAND);
	fx_req_init(&hs[7], "other-band", 0, 100);
	cr_assert_eq(flowq_submit(e, &hs[7].req), 0, "another band is not limited");
	flowq_engine_destroy(e);

	/* Flow: 2 requests per flow; another flow is independent. */
	c = fx_polled_cfg();
	c.flow_max_requests = 2;
	e = fx_make(&c);
	fill_until_reject(e, hs, 3, "a", 0, 1, 2, FLOWQ_CAUSE_CAPACITY_FLOW);
	fill_until_reject(e, hs + 3, 2, "b", 0, 1, 2, FLOWQ_CAUSE_NONE);
	struct flowq_stats st;
	flowq_stats_flow(e, "a", 1, 0, &st);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_CAPACITY][FLOWQ_CAUSE_CAPACITY_FLOW], 1);
	cr_assert_eq(fx_poll_all(e), 4);
	fill_until_reject(e, hs, 3, "a", 0, 1, 2, FLOWQ_CAUSE_CAPACITY_FLOW);
	flowq_engine_destroy(e);
}

/* Polled mode's wake-up: after a poll leaves a shard idle, new work makes
 * its fd readable (no lost wake-up for a host that sleeps in epoll), and
 * a poll clears it. */
Test(engine, polled_fd_signals_new_work)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	struct flowq_engine *e = fx_make(&c);
	int fds[2] = {flowq_shard_fd(e, 0), flowq_shard_fd(e, 1)};
	cr_assert_geq(fds[0], 0);
	cr_assert_geq(fds[1], 0);
	cr_assert_eq(flowq_shard_fd(e, 2), -EINVAL);
	cr_assert_eq(flowq_shard_poll(e, 2, 0, NULL), -EINVAL);
	fx_poll_all(e); /* both idle, fds clear */
	uint64_t v;
	for (int i = 0; i < 2; i++)
		cr_assert_eq(read(fds[i], &v, sizeof(v)), -1, "fd %d clear after an idle poll", i);
	struct fx_req h;
	fx_req_init(&h, "wake-me", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	int readable = 0;
	for (int i = 0; i < 2; i++)
		readable += read(fds[i], &v, sizeof(v)) == (ssize_t)sizeof(v);
	cr_assert_eq(readable, 1, "exactly the flow's shard was signalled");
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	/* flowq_engine_wake() signals every shard (e.g. after moving a
	 * custom clock). */
	flowq_engine_wake(e);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(read(fds[i], &v, sizeof(v)), (ssize_t)sizeof(v));
	flowq_engine_destroy(e);
}

/* ---- priority and the gate ---- */

Test(engine, strict_priority_under_gate)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req lo[3], hi[2];
	for (int i = 0; i < 3; i++) {
		fx_req_init(&lo[i], "lo", -1, 1);
		cr_assert_eq(flowq_submit(e, &lo[i].req), 0);
		fx_advance(10);
	}
	for (int i = 0; i < 2; i++) {
		fx_req_init(&hi[i], "hi", 7, 1);
		cr_assert_eq(flowq_submit(e, &hi[i].req), 0);
		fx_advance(10);
	}
	/* One slot: the most important band goes first although it came
	 * last, then nothing until a release. */
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(hi[0].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(fx_poll_all(e), 0);
	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	cr_assert_eq(st.inflight, 1);
	cr_assert_eq(flowq_release(e, &hi[0].req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(hi[1].seen, FLOWQ_DISPATCHED);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lo[i].completions, 0, "low band waits while saturated");
	}
	cr_assert_eq(flowq_release(e, &hi[1].req), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(fx_poll_all(e), 1);
		cr_assert_eq(lo[i].seen, FLOWQ_DISPATCHED, "fcfs within the flow");
		cr_assert_eq(flowq_release(e, &lo[i].req), 0);
	}
	flowq_engine_destroy(e);
}

Test(engine, usage_ceiling_holds_back_a_band)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 4;
	struct flowq_band_config b[2] = {c.default_band, c.default_band};
	b[0].priority = 1;
	b[0].usage_ceiling = 1.0;
	b[1].priority = 0;
	b[1].usage_ceiling = 0.5; /* band 0 dispatches while in-flight < 2 */
	c.bands = b;
	c.nbands = 2;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req lo[4];
	for (int i = 0; i < 4; i++) {
		fx_req_init(&lo[i], "lo", 0, 1);
		cr_assert_eq(flowq_submit(e, &lo[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(fx_poll_all(e), 0);
	struct fx_req hi;
	fx_req_init(&hi, "hi", 1, 1);
	cr_assert_eq(flowq_submit(e, &hi.req), 0);
	cr_assert_eq(fx_poll_all(e), 1, "the higher band may go up to the limit");
	cr_assert_eq(hi.seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
	for (int i = 2; i < 4; i++)
		cr_assert_eq(lo[i].seen, FLOWQ_EVICTED_OTHER);
}

/* The byte dimension of the ceiling: a band dispatches only while the
 * in-flight bytes are below ceiling x limit, as for requests (found by
 * fuzz_api: at exactly the ceiling it still dispatched; corpus file
 * tests/fuzz/corpus_api/ceiling_bytes_at_equality). */
Test(engine, usage_ceiling_holds_in_bytes_at_equality)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight_bytes = 100;
	struct flowq_band_config b = c.default_band;
	b.priority = 0;
	b.usage_ceiling = 0.5; /* dispatches while in-flight bytes < 50 */
	c.bands = &b;
	c.nbands = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req r[7];
	for (int i = 0; i < 7; i++) {
		fx_req_init(&r[i], "f", 0, 10);
		cr_assert_eq(flowq_submit(e, &r[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 5, "40 bytes in flight is below 50; 50 is not");
	cr_assert_eq(r[5].seen, FLOWQ_PENDING);
	cr_assert_eq(flowq_release(e, &r[0].req), 0);
	cr_assert_eq(fx_poll_all(e), 1, "40 again: one more");
	cr_assert_eq(r[5].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(fx_poll_all(e), 0);
	flowq_engine_destroy(e);
	cr_assert_eq(r[6].seen, FLOWQ_EVICTED_OTHER);
}

static double sat_value;

static double
sat_cb(void *ctx)
{
	(void)ctx;
	return sat_value;
}

Test(engine, callback_detector)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.detector = "callback";
	c.saturation.callback = sat_cb;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	sat_value = 1.0;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	int64_t next = 0;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0);
	cr_assert_leq(next, fx_now + c.saturation.callback_poll_ns,
		      "a blocked shard asks again after callback_poll_ns");
	sat_value = 0.2;
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
}

/* ---- TTL and deadlines ---- */

Test(engine, ttl_and_deadline)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req block, t, d, forever;
	fx_req_init(&block, "x", 0, 1);
	cr_assert_eq(flowq_submit(e, &block.req), 0);
	cr_assert_eq(fx_poll_all(e), 1); /* holds the only slot */

	fx_req_init(&t, "x", 0, 1);
	t.req.ttl_ns = 1000;
	fx_req_init(&d, "y", 0, 1);
	d.req.deadline_ns = fx_now + 500;
	fx_req_init(&forever, "z", 0, 1);
	cr_assert_eq(flowq_submit(e, &t.req), 0);
	cr_assert_eq(flowq_submit(e, &d.req), 0);
	cr_assert_eq(flowq_submit(e, &forever.req), 0);
	int64_t next = 0;
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 0);
	cr_assert_eq(next, fx_now + 500, "next deadline is the earliest expiry");
	fx_advance(499);
	cr_assert_eq(fx_poll_all(e), 0, "not yet");
	fx_advance(1);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(d.seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(d.cause, FLOWQ_CAUSE_DEADLINE_PASSED);
	fx_advance(500);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(t.seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(t.cause, FLOWQ_CAUSE_TTL_EXPIRED);
	fx_advance(INT64_C(1000000000));
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(forever.completions, 0, "no TTL, no expiry");

	struct fx_req late;
	fx_req_init(&late, "x", 0, 1);
	late.req.deadline_ns = fx_now;
	cr_assert_eq(flowq_submit(e, &late.req), -ETIMEDOUT);
	cr_assert_eq(flowq_req_outcome(&late.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&late.req), FLOWQ_CAUSE_DEADLINE_PASSED);
	flowq_engine_destroy(e);
	cr_assert_eq(forever.seen, FLOWQ_EVICTED_OTHER);
}

Test(engine, default_ttl_applies)
{
	struct flowq_config c = fx_polled_cfg();
	c.default_ttl_ns = 100;
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b;
	fx_req_init(&a, "f", 0, 1);
	fx_req_init(&b, "f", 0, 1);
	flowq_submit(e, &a.req);
	flowq_submit(e, &b.req);
	cr_assert_eq(fx_poll_all(e), 1);
	fx_advance(100);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(b.seen, FLOWQ_EVICTED_TTL);
	flowq_engine_destroy(e);
}

/* ---- cancellation ---- */

Test(engine, cancel_paths)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b, q;
	fx_req_init(&a, "f", 0, 1);
	fx_req_init(&b, "f", 0, 1);
	fx_req_init(&q, "g", 0, 1);
	/* Cancel before the dispatcher ever saw it (still in the inbox). */
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	cr_assert_eq(flowq_cancel(e, &a.req), 0);
	cr_assert_eq(flowq_cancel(e, &a.req), -EALREADY);
	cr_assert_eq(a.completions, 0, "completion only from the dispatcher");
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(a.completions, 1);
	cr_assert_eq(a.seen, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(a.cause, FLOWQ_CAUSE_CANCELLED);

	/* Cancel while queued in the private structures. */
	cr_assert_eq(flowq_submit(e, &q.req), 0);
	cr_assert_eq(fx_poll_all(e), 1); /* q dispatched, holds the slot */
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	cr_assert_eq(fx_poll_all(e), 0); /* drained, gate closed */
	cr_assert_eq(flowq_cancel(e, &b.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(b.seen, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(b.completions, 1);

	/* Never submitted, and NULLs. */
	struct fx_req n;
	fx_req_init(&n, "f", 0, 1);
	cr_assert_eq(flowq_cancel(e, &n.req), -EALREADY);
	cr_assert_eq(flowq_cancel(NULL, &n.req), -EFAULT);
	cr_assert_eq(flowq_release(e, &n.req), -EINVAL);
	flowq_engine_destroy(e);
	cr_assert_eq(a.completions + b.completions + q.completions, 3);
}

/* A canceller that stalls between its [T2] and posting its message: the
 * dispatcher unlinks the request meanwhile, and the flow (which the
 * canceller reads through req->priv.owner) must survive GC until the
 * message is in (review finding: it was collected and freed). The two
 * halves of flowq_cancel() are done by hand through the internals. */
Test(engine, stalled_canceller_pins_the_flow)
{
	struct flowq_config c = fx_polled_cfg();
	c.flow_gc_timeout_ns = 1;
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hold, h;
	fx_req_init(&hold, "other", 0, 1);
	cr_assert_eq(flowq_submit(e, &hold.req), 0);
	cr_assert_eq(fx_poll_all(e), 1); /* takes the only slot */
	fx_req_init(&h, "victim", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_poll_all(e); /* queued privately, gate closed */
	cr_assert(flowq__req_finalize(&h.req, FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED));
	/* The dispatcher meets the decided request at expiry-free dispatch:
	 * release the slot so that it tries, loses [T2] and unlinks it. */
	cr_assert_eq(flowq_release(e, &hold.req), 0);
	fx_poll_all(e);
	cr_assert_eq(h.completions, 0, "no completion before the cancel message");
	for (int i = 0; i < 3; i++) {
		fx_advance(1000);
		fx_poll_all(e);
	}
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "victim", 6, 0, &st), 0,
		     "the flow is not collected while its canceller may read it");
	/* Second half of flowq_cancel(). */
	struct flowq__shard *sh = ((struct flowq_flow *)h.req.priv.owner)->shard;
	flowq_mpsc_enqueue(&sh->cancels, &h.req.priv.clink);
	fx_poll_all(e);
	cr_assert_eq(h.completions, 1);
	cr_assert_eq(h.seen, FLOWQ_EVICTED_CANCELLED);
	fx_advance(1000);
	fx_poll_all(e);
	fx_advance(1000);
	fx_poll_all(e);
	cr_assert_eq(flowq_stats_flow(e, "victim", 6, 0, &st), -ENOENT, "collected afterwards");
	flowq_engine_destroy(e);
}

/* ---- shutdown ---- */

Test(engine, destroy_evicts_everything_queued)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = 3;
	c.saturation.max_inflight = 2;
	struct flowq_engine *e = fx_make(&c);
	enum { N = 200 };
	struct fx_req *hs = calloc(N, sizeof(*hs));
	char names[N][8];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i % 17);
		fx_req_init(&hs[i], names[i], i % 3, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
	}
	fx_poll_all(e); /* two dispatched, the rest drained or in inboxes */
	flowq_engine_destroy(e);
	int dispatched = 0, evicted = 0;
	for (int i = 0; i < N; i++) {
		cr_assert_eq(hs[i].completions, 1, "request %d: %d completions", i,
			     hs[i].completions);
		if (hs[i].seen == FLOWQ_DISPATCHED) {
			dispatched++;
		} else {
			cr_assert_eq(hs[i].seen, FLOWQ_EVICTED_OTHER);
			cr_assert_eq(hs[i].cause, FLOWQ_CAUSE_SHUTDOWN);
			evicted++;
		}
	}
	cr_assert_eq(dispatched, 2);
	cr_assert_eq(evicted, N - 2);
	free(hs);
}

/* A completion that runs during destroy (polled mode: on the destroying
 * thread) may submit again: the engine is stopping, so the new request is
 * rejected on the spot and never queued. */
static struct flowq_engine *resubmit_engine;
static struct fx_req resubmitted;
static int resubmit_rc = 1;

static void
resubmit_on_complete(struct flowq_req *req, void *arg)
{
	fx_on_complete(req, arg);
	fx_req_init(&resubmitted, "again", 0, 1);
	resubmit_rc = flowq_submit(resubmit_engine, &resubmitted.req);
}

Test(engine, submit_while_stopping_is_rejected)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	h.req.complete = resubmit_on_complete;
	resubmit_engine = e;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	flowq_engine_destroy(e); /* h is evicted; its completion resubmits */
	cr_assert_eq(h.seen, FLOWQ_EVICTED_OTHER);
	cr_assert_eq(h.cause, FLOWQ_CAUSE_SHUTDOWN);
	cr_assert_eq(resubmit_rc, -ESHUTDOWN);
	cr_assert_eq(flowq_req_outcome(&resubmitted.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&resubmitted.req), FLOWQ_CAUSE_SHUTDOWN);
	cr_assert_eq(resubmitted.completions, 0);
}

/* ---- fairness ---- */

Test(engine, round_robin_alternates_flows)
{
	struct flowq_config c = fx_polled_cfg();
	c.default_band.fairness = "round_robin";
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hs[9];
	const char *flows[3] = {"a", "b", "c"};
	/* All of a's first, then b's, then c's. */
	for (int i = 0; i < 9; i++) {
		fx_req_init(&hs[i], flows[i / 3], 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
		fx_advance(1);
	}
	for (int k = 0; k < 9; k++) {
		cr_assert_eq(fx_poll_all(e), 1);
		struct fx_req *got = NULL;
		for (int i = 0; i < 9; i++)
			if (hs[i].completions && hs[i].order == k)
				got = &hs[i];
		cr_assert_not_null(got);
		cr_assert_eq(flowq_release(e, &got->req), 0);
		/* Turn k serves flow k % 3 (in order of first arrival). */
		cr_assert_eq((int)(got - hs) / 3, k % 3, "turn %d served flow %d", k,
			     (int)(got - hs) / 3);
	}
	flowq_engine_destroy(e);
}

/* ---- dispatcher activity (flowq_stats_shard) ---- */

static struct flowq_shard_stats
shard_stats(struct flowq_engine *e)
{
	struct flowq_shard_stats ss;
	cr_assert_eq(flowq_stats_shard(e, 0, &ss), 0);
	return ss;
}

/* One intake per ring (a submit that finds its flow's inbox empty and the
 * flow not yet announced; a new flow rings once to be adopted, and its
 * first submit finds it announced), rounds and outcomes per poll that
 * decided something, a sleep per poll that armed the fd. */
/* A burst from one thread over many new flows: the rings spread over the
 * shard's doorbell queues in runs (engine.h, FLOWQ__BELLS), the lockstep
 * intake takes every flow in once, nothing is lost; once the dispatcher
 * keeps up, the thread rings the first queue again. */
Test(engine, a_burst_spreads_over_the_doorbell_queues_and_loses_nothing)
{
	enum { N = 1000 };
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	static struct fx_req hs[N + 4];
	static char ids[N + 4][16];
	struct flowq__shard *s = &e->shards[0];

	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "burst%d", i);
		fx_req_init(&hs[i], ids[i], 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
	}
	for (unsigned k = 0; k < FLOWQ__BELLS; k++)
		cr_assert_not(flowq_mpsc_empty(&s->doorbell[k]),
			      "doorbell queue %u unused", k);
	cr_assert_eq(fx_poll_all(e), N);
	cr_assert(flowq__bells_empty(s));
	struct flowq_shard_stats ss = shard_stats(e);
	cr_assert_eq(ss.intakes, N, "each flow taken in once");
	for (int i = 0; i < N; i++) {
		cr_assert_eq(hs[i].completions, 1, "request %d: %d completions", i,
			     hs[i].completions);
		cr_assert_eq(hs[i].seen, FLOWQ_DISPATCHED);
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	}
	/* Rung one at a time, each taken in before the next: within two
	 * rings the thread is back on the first queue. */
	for (int i = N; i < N + 4; i++) {
		snprintf(ids[i], sizeof(ids[i]), "burst%d", i);
		fx_req_init(&hs[i], ids[i], 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
		if (i >= N + 2) {
			cr_assert_not(flowq_mpsc_empty(&s->doorbell[0]));
			for (unsigned k = 1; k < FLOWQ__BELLS; k++)
				cr_assert(flowq_mpsc_empty(&s->doorbell[k]));
		}
		cr_assert_eq(fx_poll_all(e), 1);
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	}
	flowq_engine_destroy(e);
}

/* A new flow on @p shard of an engine with @p nshards: its id in @p id
 * ("<prefix><n>" for the first n from *@p n on that maps there, as
 * registry.c's shard_of()). */
static void
id_on_shard(char *id, size_t len, const char *prefix, int *n, unsigned shard,
	    unsigned nshards)
{
	for (;; (*n)++) {
		snprintf(id, len, "%s%d", prefix, *n);
		uint64_t h = flowq__flow_hash(id, (uint32_t)strlen(id), 0);
		if ((uint32_t)(h >> 32) % nshards == shard) {
			(*n)++;
			return;
		}
	}
}

/* Submit @p h (initialized) and check that its flow lives on shard @p s and
 * that its ring is the newest item of that shard's doorbell queue @p bell. */
static void
submit_rings(struct flowq_engine *e, struct fx_req *h, unsigned s, unsigned bell)
{
	cr_assert_eq(flowq_submit(e, &h->req), 0);
	struct flowq_flow *f = h->req.priv.owner;
	cr_assert_eq(f->shard->index, s, "flow %.*s on shard %u", (int)f->id_len,
		     (const char *)f->id, f->shard->index);
	cr_assert_eq(atomic_load(&e->shards[s].doorbell[bell].tail), &f->inbox.announce,
		     "flow %.*s rang shard %u's queue %u", (int)f->id_len,
		     (const char *)f->id, s, bell);
}

/* A thread keeps its doorbell placement per shard: after a burst moved it
 * to shard 0's second queue, its first ring into shard 1 goes to that
 * shard's first queue, and that ring (found empty, which on one shard
 * sends the thread back to the first queue) does not move it on shard 0. */
Test(engine, a_threads_doorbell_placement_is_kept_per_shard)
{
	enum { BURST = 2 * FLOWQ__BELL_RUN + 1, N = BURST + 2 };
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	struct flowq_engine *e = fx_make(&c);
	static struct fx_req hs[N];
	static char ids[N][16];
	int n = 0;

	/* Shard 0: one ring into the empty first queue, FLOWQ__BELL_RUN into
	 * it while the dispatcher sleeps, then the second queue's. */
	for (int i = 0; i < BURST; i++) {
		id_on_shard(ids[i], sizeof(ids[i]), "place", &n, 0, 2);
		fx_req_init(&hs[i], ids[i], 0, 1);
		submit_rings(e, &hs[i], 0, i <= (int)FLOWQ__BELL_RUN ? 0 : 1);
	}
	/* Shard 1 has a placement of its own. */
	id_on_shard(ids[BURST], sizeof(ids[BURST]), "place", &n, 1, 2);
	fx_req_init(&hs[BURST], ids[BURST], 0, 1);
	submit_rings(e, &hs[BURST], 1, 0);
	/* Shard 0's is where the burst left it. */
	id_on_shard(ids[BURST + 1], sizeof(ids[BURST + 1]), "place", &n, 0, 2);
	fx_req_init(&hs[BURST + 1], ids[BURST + 1], 0, 1);
	submit_rings(e, &hs[BURST + 1], 0, 1);

	cr_assert_eq(fx_poll_all(e), N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(hs[i].completions, 1, "request %d: %d completions", i,
			     hs[i].completions);
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	}
	flowq_engine_destroy(e);
}

/* A ring into a doorbell queue other than the first during a poll's round
 * (here by the completion callback, after the intake) must be seen by the
 * poll's last look before it arms the fd: the poll asks to be called again
 * at once rather than sleeping to the next deadline (the GC's, seconds
 * away). A re-check of the first queue only would lose that wake-up. */
static struct flowq_engine *late_ring_engine;
static struct fx_req late_ring_b;

static void
late_ring_on_complete(struct flowq_req *req, void *arg)
{
	fx_on_complete(req, arg);
	fx_req_init(&late_ring_b, "late-b", 0, 1);
	cr_assert_eq(flowq_submit(late_ring_engine, &late_ring_b.req), 0);
}

Test(engine, a_ring_into_a_later_doorbell_queue_during_a_poll_is_seen_before_it_arms)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct flowq__shard *s = &e->shards[0];
	static struct fx_req hs[FLOWQ__BELL_RUN + 1], a;
	static char ids[FLOWQ__BELL_RUN + 1][16];
	int64_t next;

	late_ring_engine = e;
	cr_assert_geq(flowq_shard_fd(e, 0), 0, "the polls arm the fd");
	/* FLOWQ__BELL_RUN + 1 rings in a row into a queue not emptied
	 * meanwhile move this thread to the second queue. */
	for (int i = 0; i <= (int)FLOWQ__BELL_RUN; i++) {
		snprintf(ids[i], sizeof(ids[i]), "late%d", i);
		fx_req_init(&hs[i], ids[i], 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), FLOWQ__BELL_RUN + 1);
	for (int i = 0; i <= (int)FLOWQ__BELL_RUN; i++)
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	fx_req_init(&a, "late-a", 0, 1);
	a.req.complete = late_ring_on_complete;
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	cr_assert(flowq_mpsc_linked(&s->doorbell[1]), "the thread rings the second queue");

	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 1);
	cr_assert(flowq_mpsc_linked(&s->doorbell[1]), "b rang the second queue in the round");
	cr_assert_eq(next, flowq_now(e), "poll again at once, next = %lld (now %lld)",
		     (long long)next, (long long)flowq_now(e));
	cr_assert_eq(flowq_shard_poll(e, 0, 0, &next), 1);
	cr_assert_eq(late_ring_b.completions, 1);
	cr_assert_eq(flowq_release(e, &a.req), 0);
	cr_assert_eq(flowq_release(e, &late_ring_b.req), 0);
	flowq_engine_destroy(e);
}

Test(engine, shard_stats_count_rings_rounds_and_sleeps)
{
	struct flowq_config c = fx_polled_cfg();
	c.intake_coalesce_ns = 100000; /* ignored in polled mode */
	struct flowq_engine *e = fx_make(&c);
	struct flowq_shard_stats ss;
	struct fx_req hs[7];

	cr_assert_eq(flowq_stats_shard(NULL, 0, &ss), -EFAULT);
	cr_assert_eq(flowq_stats_shard(e, 0, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_shard(e, 1, &ss), -EINVAL);
	ss = shard_stats(e);
	cr_assert(ss.rounds == 0 && ss.decided == 0 && ss.intakes == 0 && ss.sleeps == 0);

	/* Three on a new flow: one ring (the creation's). */
	for (int i = 0; i < 3; i++) {
		fx_req_init(&hs[i], "a", 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 3);
	ss = shard_stats(e);
	cr_assert_eq(ss.intakes, 1);
	cr_assert_eq(ss.rounds, 1);
	cr_assert_eq(ss.decided, 3);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(shard_stats(e).rounds, 1, "a round that decides nothing is not counted");

	/* The flow is known and drained: its next submit rings, and the
	 * one after it does not (the inbox is not empty). */
	fx_req_init(&hs[3], "a", 0, 1);
	fx_req_init(&hs[4], "a", 0, 1);
	cr_assert_eq(flowq_submit(e, &hs[3].req), 0);
	cr_assert_eq(flowq_submit(e, &hs[4].req), 0);
	/* Two new flows: one ring each. */
	fx_req_init(&hs[5], "b", 0, 1);
	fx_req_init(&hs[6], "c", 0, 1);
	cr_assert_eq(flowq_submit(e, &hs[5].req), 0);
	cr_assert_eq(flowq_submit(e, &hs[6].req), 0);
	cr_assert_eq(fx_poll_all(e), 4);
	ss = shard_stats(e);
	cr_assert_eq(ss.intakes, 4);
	cr_assert_eq(ss.rounds, 2);
	cr_assert_eq(ss.decided, 7);
	cr_assert_eq(ss.sleeps, 0, "nobody waits on the fd: no poll arms it");

	/* With the fd wanted, a poll that finds nothing arms it: a sleep. */
	cr_assert_geq(flowq_shard_fd(e, 0), 0);
	cr_assert_eq(fx_poll_all(e), 0);
	cr_assert_eq(shard_stats(e).sleeps, 1);
	cr_assert_eq(shard_stats(e).coalesce_waits, 0, "polled mode never waits");
	struct flowq_coalesce_stats cs = {
		.on = 9, .holds_on = 9, .holds_off = 9, .dropped = 9};
	cr_assert_eq(flowq_stats_coalesce(e, &cs), 0);
	cr_assert(cs.on == 0 && cs.holds_on == 0 && cs.holds_off == 0 && cs.dropped == 0,
		  "no controller runs in polled mode");
	cr_assert_eq(flowq_stats_coalesce(NULL, &cs), -EFAULT);
	cr_assert_eq(flowq_stats_coalesce(e, NULL), -EFAULT);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	flowq_engine_destroy(e);
}

/* flowq_stats_coalesce() on an idle engine: the controller steps only
 * after rounds, so its flag keeps its last value; once the period has
 * overrun, the call reports the wait off, as the next round will find it.
 * (The state is set by hand: a polled engine runs no controller.) */
Test(engine, coalesce_stats_read_an_overrun_period_as_off)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct flowq__coalesce *co = &e->coalesce;
	int64_t now = flowq__mono_ns();
	atomic_store(&co->len, (int64_t)FLOWQ__COALESCE_PROBE_NS);
	atomic_store(&co->start, now);
	atomic_store(&co->on, true);
	struct flowq_coalesce_stats cs;
	cr_assert_eq(flowq_stats_coalesce(e, &cs), 0);
	cr_assert_eq(cs.on, 1, "a period under way: its flag");
	atomic_store(&co->start, now - (FLOWQ__COALESCE_OVERRUN + 1) *
						 (int64_t)FLOWQ__COALESCE_PROBE_NS);
	cr_assert_eq(flowq_stats_coalesce(e, &cs), 0);
	cr_assert_eq(cs.on, 0, "an overrun period: off, as the next round will find it");
	atomic_store(&co->on, false);
	atomic_store(&co->start, INT64_MIN);
	flowq_engine_destroy(e);
}

/* ---- where a flow's ordering state lives ---- */

/*
 * A FIFO ordering with a state of SZ bytes: a list head, then a canary
 * that push writes and every call checks (a state too short, overlapping
 * the flow's own fields or another flow's state fails it; under ASan an
 * allocation too small is a report). Records the state's address.
 */
#define BIGO_MAGIC UINT64_C(0x5eed0f5eed0f5eed)

struct bigo_state {
	struct flowq_list q;
	uint64_t canary;
};

static const void *bigo_seen[4];

static struct flowq_req *
bigo_req(struct flowq_list_node *n)
{
	return n ? (struct flowq_req *)((char *)n - offsetof(struct flowq_req, priv.lnode))
		 : NULL;
}

static struct bigo_state *
bigo_check(void *fs, size_t size)
{
	struct bigo_state *st = fs;
	uint64_t tail;

	cr_assert_eq((uintptr_t)fs % 16, 0, "the state is 16-byte aligned");
	memcpy(&tail, (char *)fs + size - sizeof(tail), sizeof(tail));
	if (st->canary == 0) {
		/* First use: the engine zeroed the whole state. */
		cr_assert_eq(tail, 0, "the state's last word is zeroed");
		flowq_list_init(&st->q);
		st->canary = BIGO_MAGIC;
		tail = BIGO_MAGIC ^ (uintptr_t)fs;
		memcpy((char *)fs + size - sizeof(tail), &tail, sizeof(tail));
	}
	cr_assert_eq(st->canary, BIGO_MAGIC);
	cr_assert_eq(tail, BIGO_MAGIC ^ (uintptr_t)fs, "last word of the state intact");
	for (size_t i = 0; i < sizeof(bigo_seen) / sizeof(bigo_seen[0]); i++)
		if (bigo_seen[i] == NULL || bigo_seen[i] == fs) {
			bigo_seen[i] = fs;
			break;
		}
	return st;
}

static int64_t
bigo_key(const struct flowq_req *r)
{
	return r->priv.enqueue_ns;
}

#define BIGO_OPS(SZ)                                                                        \
	static void bigo##SZ##_push_batch(void *fs, struct flowq_req *const *reqs, size_t n) \
	{                                                                                   \
		struct bigo_state *st = bigo_check(fs, SZ);                                 \
		for (size_t i = 0; i < n; i++)                                              \
			flowq_list_push_back(&st->q, &reqs[i]->priv.lnode);                 \
	}                                                                                   \
	static struct flowq_req *bigo##SZ##_peek(void *fs)                                  \
	{                                                                                   \
		struct bigo_state *st = bigo_check(fs, SZ);                                 \
		return bigo_req(flowq_list_front(&st->q));                                  \
	}                                                                                   \
	static struct flowq_req *bigo##SZ##_pop(void *fs)                                   \
	{                                                                                   \
		struct bigo_state *st = bigo_check(fs, SZ);                                 \
		return bigo_req(flowq_list_pop_front(&st->q));                              \
	}                                                                                   \
	static void bigo##SZ##_remove(void *fs, struct flowq_req *r)                        \
	{                                                                                   \
		bigo_check(fs, SZ);                                                         \
		flowq_list_remove(&r->priv.lnode);                                          \
	}                                                                                   \
	static const struct flowq_ordering_ops bigo##SZ = {                                 \
		.desc = {.abi_version = FLOWQ_POLICY_ABI,                                   \
			 .name = "test_fifo_" #SZ,                                          \
			 .description = "test only: FIFO with a " #SZ "-byte state",        \
			 .flow_state_size = SZ},                                            \
		.push_batch = bigo##SZ##_push_batch,                                        \
		.peek = bigo##SZ##_peek,                                                    \
		.pop = bigo##SZ##_pop,                                                      \
		.remove = bigo##SZ##_remove,                                                \
		.key = bigo_key,                                                            \
	};

/* At the inline room's size (kept inside the flow's dispatch span), and
 * larger (after the id). */
BIGO_OPS(32)
BIGO_OPS(200)

/* Three flows with ids of 1, 70 and 200 bytes (the state after the id
 * moves with its length), five requests each, interleaved; every request
 * dispatched in FIFO order per flow; the states are where the layout
 * says. */
static void
ordering_state_case(const struct flowq_ordering_ops *o, bool inline_expected)
{
	static char ids[3][201];
	struct flowq_config c = fx_polled_cfg();
	struct flowq_flow *h[3];
	struct fx_req hs[15];

	cr_assert_eq(flowq_ordering_register(o), 0);
	memset(bigo_seen, 0, sizeof(bigo_seen));
	c.default_band.ordering = o->desc.name;
	c.default_band.fairness = "round_robin";
	struct flowq_engine *e = fx_make(&c);
	const size_t len[3] = {1, 70, 200};
	for (int f = 0; f < 3; f++) {
		memset(ids[f], 'a' + f, len[f]);
		ids[f][len[f]] = 0;
		cr_assert_eq(flowq_flow_get(e, ids[f], (uint32_t)len[f], 0, &h[f]), 0);
	}
	for (int i = 0; i < 15; i++) {
		fx_req_init(&hs[i], ids[i % 3], 0, 10);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
		fx_advance(1);
	}
	cr_assert_eq(fx_poll_all(e), 15);
	for (int i = 0; i < 15; i++) {
		cr_assert_eq(hs[i].seen, FLOWQ_DISPATCHED);
		if (i >= 3)
			cr_assert_gt(hs[i].order, hs[i - 3].order, "FIFO within flow %d", i % 3);
		cr_assert_eq(flowq_release(e, &hs[i].req), 0);
	}
	for (int f = 0; f < 3; f++) {
		const char *base = (const char *)h[f];
		bool found = false;
		for (int k = 0; k < 3; k++) {
			const char *st = bigo_seen[k];
			if (st == NULL || st < base || st >= base + offsetof(struct flowq_flow, id) +
								  len[f] + 16 + o->desc.flow_state_size)
				continue;
			found = true;
			if (inline_expected)
				cr_assert(st + o->desc.flow_state_size <=
						  base + offsetof(struct flowq_flow, pf) + FLOWQ__FLOW_SPAN,
					  "flow %d: an inline state ends inside the dispatch span", f);
			else
				cr_assert_geq(st, base + offsetof(struct flowq_flow, id) + len[f],
					      "flow %d: a large state follows the id", f);
		}
		cr_assert(found, "flow %d: its ordering state was used", f);
		flowq_flow_put(e, h[f]);
	}
	flowq_engine_destroy(e);
}

Test(engine, small_ordering_state_lives_in_the_dispatch_span)
{
	cr_assert_eq(FLOWQ__OSTATE_INLINE, 32u, "the test's state size is the inline room");
	ordering_state_case(&bigo32, true);
}

Test(engine, large_ordering_state_follows_the_id)
{
	ordering_state_case(&bigo200, false);
}

Test(engine, global_strict_is_fcfs_across_flows)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hs[6];
	const char *flows[3] = {"a", "b", "c"};
	for (int i = 0; i < 6; i++) {
		fx_req_init(&hs[i], flows[(i * 2) % 3], 0, 1);
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
		fx_advance(1);
	}
	for (int k = 0; k < 6; k++) {
		cr_assert_eq(fx_poll_all(e), 1);
		cr_assert_eq(hs[k].seen, FLOWQ_DISPATCHED, "oldest head first");
		flowq_release(e, &hs[k].req);
	}
	flowq_engine_destroy(e);
}

/* ---- flows: handles, weights, GC ---- */

Test(engine, flow_handles_and_gc)
{
	struct flowq_config c = fx_polled_cfg();
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *fl = NULL;
	cr_assert_eq(flowq_flow_get(e, "held", 4, 0, &fl), 0);
	cr_assert_not_null(fl);
	cr_assert_eq(flowq_flow_get(e, NULL, 4, 0, &fl), -EINVAL);
	cr_assert_eq(flowq_flow_get(e, "x", 0, 0, &fl), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(fl, 0), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(fl, 65536), -EINVAL);
	cr_assert_eq(flowq_flow_set_weight(fl, 3), 0);

	struct fx_req h, t;
	fx_req_init(&h, "ignored", 0, 1);
	h.req.flow = fl;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_req_init(&t, "transient", 0, 1);
	cr_assert_eq(flowq_submit(e, &t.req), 0);
	cr_assert_eq(fx_poll_all(e), 2);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "held", 4, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1, "the handle's flow got it");
	cr_assert_eq(flowq_stats_flow(e, "transient", 9, 0, &st), 0);

	fx_advance(999);
	fx_poll_all(e);
	cr_assert_eq(flowq_stats_flow(e, "transient", 9, 0, &st), 0, "not idle long enough");
	fx_advance(1);
	fx_poll_all(e);
	cr_assert_eq(flowq_stats_flow(e, "transient", 9, 0, &st), -ENOENT, "collected");
	cr_assert_eq(flowq_stats_flow(e, "held", 4, 0, &st), 0, "a handle pins its flow");

	flowq_flow_put(e, fl);
	fx_advance(1000);
	fx_poll_all(e);
	cr_assert_eq(flowq_stats_flow(e, "held", 4, 0, &st), -ENOENT, "collected after put");
	/* The template band 0 has no flow now: one more timeout would
	 * collect it too (tests/unit/test_bands.c); a flow before that keeps
	 * it. */

	/* A collected key comes back as a new flow. */
	fx_req_init(&t, "transient", 0, 1);
	cr_assert_eq(flowq_submit(e, &t.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_stats_flow(e, "transient", 9, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1, "fresh counters");
	struct flowq_stats band;
	flowq_stats_band(e, 0, &band);
	cr_assert_eq(band.outcomes[FLOWQ_DISPATCHED], 3, "band totals survive GC");
	flowq_engine_destroy(e);
}

/* Serve one request of @p flow, now; it is idle again when this returns. */
static void
gc_case_serve(struct flowq_engine *e, const char *flow)
{
	struct fx_req h;
	fx_req_init(&h, flow, 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h.req), 0);
}

/* Poll (the collection runs in the poll), then whether @p flow exists. */
static bool
gc_case_alive(struct flowq_engine *e, const char *flow)
{
	struct flowq_stats st;
	fx_poll_all(e);
	return flowq_stats_flow(e, flow, strlen(flow), 0, &st) == 0;
}

/* A flow that was busy again after it went on the idle list is collected
 * one timeout after its last idle time: not after its first, and not
 * later because another flow went idle in between (a lazy idle list that
 * left a busy flow in its old place would give both; bench/ENGINE-LOG.md, "Session 18",
 * tried and not kept). */
Test(engine, gc_times_a_flow_from_its_last_idle_period)
{
	struct flowq_config c = fx_polled_cfg();
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	gc_case_serve(e, "a"); /* idle at 0 */
	fx_advance(500);
	gc_case_serve(e, "a"); /* busy again, idle at 500 */
	fx_advance(100);
	gc_case_serve(e, "b"); /* idle at 600 */
	fx_advance(400);
	cr_assert(gc_case_alive(e, "a"), "t = 1000: idle for 500 only");
	fx_advance(499);
	cr_assert(gc_case_alive(e, "a"), "t = 1499: idle for 999 only");
	cr_assert(gc_case_alive(e, "b"), "t = 1499");
	fx_advance(1);
	cr_assert_not(gc_case_alive(e, "a"), "t = 1500: idle for one timeout");
	cr_assert(gc_case_alive(e, "b"), "t = 1500: idle for 900 only");
	fx_advance(99);
	cr_assert(gc_case_alive(e, "b"), "t = 1599: idle for 999 only");
	fx_advance(1);
	cr_assert_not(gc_case_alive(e, "b"), "t = 1600: idle for one timeout");
	flowq_engine_destroy(e);
}

/* ---- ports ---- */

Test(engine, completion_port)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct flowq_port *p = NULL;
	cr_assert_eq(flowq_port_create(e, &p), 0);
	cr_assert_geq(flowq_port_fd(p), 0);
	struct fx_req h[3];
	for (int i = 0; i < 3; i++) {
		fx_req_init(&h[i], "f", 0, 1);
		flowq_req_set_port(&h[i].req, p);
		cr_assert_eq(flowq_submit(e, &h[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 3);
	struct flowq_req *out[8];
	cr_assert_eq(flowq_port_drain(p, out, 8), 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(out[i], &h[i].req);
		cr_assert_eq(flowq_req_outcome(out[i]), FLOWQ_DISPATCHED);
	}
	cr_assert_eq(flowq_port_drain(p, out, 8), 0);
	flowq_engine_destroy(e);
	flowq_port_destroy(p);
}

/* ---- allocation failure (the fixture's failing allocator) ---- */

Test(engine, allocation_failure_everywhere_in_create_leaks_nothing)
{
	/* Fail the k-th allocation of create for every k until create
	 * succeeds: each failure is -ENOMEM and frees everything. */
	for (int k = 0; k < 100; k++) {
		struct test_count_alloc ca;
		test_count_alloc_init(&ca);
		test_count_alloc_budget(&ca, (unsigned long)k);
		struct flowq_config c = fx_polled_cfg();
		c.shards = 2;
		c.max_requests = 100;
		struct flowq_band_config b = c.default_band;
		b.priority = 1;
		b.max_requests = 10;
		c.bands = &b;
		c.nbands = 1;
		c.allocator = &ca.a;
		struct flowq_engine *e = NULL;
		int rc = flowq_engine_create(&c, &e);
		if (rc == 0) {
			cr_assert_gt(k, 3, "create allocates several objects");
			flowq_engine_destroy(e);
			cr_assert_eq(ca.blocks, 0);
			return;
		}
		cr_assert_eq(rc, -ENOMEM, "k=%d rc=%d", k, rc);
		cr_assert_eq(ca.blocks, 0, "k=%d: %ld blocks leaked", k, (long)ca.blocks);
	}
	cr_assert_fail("create never succeeded");
}

Test(engine, allocation_failure_at_flow_creation)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	struct flowq_engine *e = fx_make(&c);
	test_count_alloc_budget(&ca, 0);
	struct fx_req h;
	fx_req_init(&h, "new-flow", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), -ENOMEM);
	cr_assert_eq(flowq_req_outcome(&h.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_NO_MEMORY);
	ca.fail_after = ~0ul;
	fx_req_init(&h, "new-flow", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0);
}

/* Queue capacity of expired requests goes back every dispatch_batch
 * outcomes within the round, as for dispatches: with dispatch_batch = 1 a
 * completion of the second expiry of a burst can already submit into the
 * first one's slot (before, expiries gave back only at the round's end). */
static struct flowq_engine *refill_engine;
static struct fx_req refill_new;
static int refill_rc = 1;
static int refill_expired;

static void
refill_on_complete(struct flowq_req *req, void *arg)
{
	fx_on_complete(req, arg);
	if (++refill_expired == 2) {
		fx_req_init(&refill_new, "other", 0, 1);
		refill_new.req.ttl_ns = FLOWQ_TTL_NONE;
		refill_rc = flowq_submit(refill_engine, &refill_new.req);
	}
}

static double
always_saturated(void *ctx)
{
	(void)ctx;
	return 1.0;
}

Test(engine, expiries_give_capacity_back_within_the_round)
{
	enum { N = 4 };
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = N;
	c.dispatch_batch = 1;
	c.saturation.detector = "callback";
	c.saturation.callback = always_saturated;
	struct flowq_engine *e = fx_make(&c);
	refill_engine = e;
	static struct fx_req hs[N];
	static char ids[N][8];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "x%d", i);
		fx_req_init(&hs[i], ids[i], 0, 1);
		hs[i].req.ttl_ns = 100;
		hs[i].req.complete = refill_on_complete;
		cr_assert_eq(flowq_submit(e, &hs[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 0, "saturated: nothing leaves yet");
	fx_advance(200);
	fx_poll_all(e);
	for (int i = 0; i < N; i++)
		cr_assert_eq(hs[i].seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(refill_rc, 0, "the first expiry's slot was free during the round: %d",
		     refill_rc);
	flowq_engine_destroy(e);
	cr_assert_eq(refill_new.completions, 1, "evicted at shutdown");
}

/* One put too many (a host bug) must not wrap the lease into the dead bit:
 * the flow is still collected when idle, and its id still found (before,
 * every later look-up waited for ever for a flow that never went). */
Test(engine, an_extra_flow_put_is_ignored)
{
	struct flowq_config c = fx_polled_cfg();
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *h;
	cr_assert_eq(flowq_flow_get(e, "x", 1, 0, &h), 0);
	flowq_flow_put(e, h);
	flowq_flow_put(e, h); /* the extra one */
	cr_assert_eq(atomic_load(&h->lease), 0, "lease %#llx",
		     (unsigned long long)atomic_load(&h->lease));
	struct fx_req a;
	fx_req_init(&a, "x", 0, 1);
	cr_assert_eq(flowq_submit(e, &a.req), 0, "the id is found");
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &a.req), 0);
	fx_advance(2000);
	fx_poll_all(e);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "x", 1, 0, &st), -ENOENT, "collected");
	flowq_engine_destroy(e);
}

static int
count_band(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	(void)priority;
	(void)st;
	++*(int *)ctx;
	return 0;
}

static int
count_flow(const void *id, uint32_t id_len, int32_t priority,
	   const struct flowq_stats *st, void *ctx)
{
	(void)id;
	(void)id_len;
	return count_band(priority, st, ctx);
}

Test(engine, stats_walks_refuse_null_and_report_allocation_failure)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	fx_req_init(&h, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &h.req), 0); /* a band and a flow to visit */
	int calls = 0;
	cr_assert_eq(flowq_stats_foreach_band(NULL, count_band, &calls), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_band(e, NULL, &calls), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_flow(NULL, count_flow, &calls), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_flow(e, NULL, &calls), -EFAULT);
	test_count_alloc_budget(&ca, 0);
	cr_assert_eq(flowq_stats_foreach_band(e, count_band, &calls), -ENOMEM);
	cr_assert_eq(flowq_stats_foreach_flow(e, count_flow, &calls), -ENOMEM);
	cr_assert_eq(calls, 0, "no callback after a failure");
	ca.fail_after = ~0ul;
	cr_assert_eq(flowq_stats_foreach_band(e, count_band, &calls), 0);
	cr_assert_eq(flowq_stats_foreach_flow(e, count_flow, &calls), 0);
	cr_assert_eq(calls, 2);
	fx_poll_all(e);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0);
}

/* ---- threaded mode ---- */

Test(engine, threaded_submit_wait)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.shards = 2;
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct flowq_req a, b;
	flowq_req_init(&a);
	a.flow_id = "w";
	a.flow_id_len = 1;
	cr_assert_eq(flowq_submit_wait(e, &a, -1), FLOWQ_DISPATCHED);
	/* The slot is taken: b waits, times out, is cancelled. */
	flowq_req_init(&b);
	b.flow_id = "w";
	b.flow_id_len = 1;
	cr_assert_eq(flowq_submit_wait(e, &b, 20 * 1000 * 1000), FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(flowq_release(e, &a), 0);
	flowq_req_init(&b);
	b.flow_id = "w";
	b.flow_id_len = 1;
	cr_assert_eq(flowq_submit_wait(e, &b, -1), FLOWQ_DISPATCHED,
		     "the release woke the dispatcher");
	flowq_engine_destroy(e);
}

/* ---- intake coalescing (threaded mode) ---- */

struct coalesce_prod {
	struct flowq_engine *e;
	struct flowq_req *reqs;
	unsigned n, id;
	_Atomic unsigned *completed;
};

static void
coalesce_complete(struct flowq_req *r, void *arg)
{
	_Atomic unsigned *completed = arg;
	cr_assert_eq(flowq_req_outcome(r), FLOWQ_DISPATCHED);
	atomic_fetch_add(completed, 1);
}

static void *
coalesce_producer(void *arg)
{
	struct coalesce_prod *p = arg;
	char id[8];
	for (unsigned i = 0; i < p->n; i++) {
		struct flowq_req *r = &p->reqs[i];
		flowq_req_init(r);
		/* A few flows per producer: rings and runs both happen. */
		int len = snprintf(id, sizeof(id), "p%uf%u", p->id, i % 3);
		r->flow_id = id;
		r->flow_id_len = (uint32_t)len;
		r->bytes = 1;
		r->complete = coalesce_complete;
		r->arg = p->completed;
		cr_assert_eq(flowq_submit(p->e, r), 0);
		/* Gaps: small rounds, so the wait happens; every 16 requests,
		 * so that a pass lasts 16 ms or more, past the controller's
		 * first PROBE_OFF (core/coalesce.h) even if the engine idled
		 * long enough between passes to restart its cycle. */
		if (i % 16 == 15)
			usleep(50);
	}
	return NULL;
}

enum { COALESCE_NPROD = 2, COALESCE_PER = 5000 };
static struct flowq_req coalesce_reqs[COALESCE_NPROD][COALESCE_PER];

/* Pass @p pass (from 1) of the coalescing tests' traffic through @p e (two
 * shards): two producers, COALESCE_PER requests each, every one dispatched
 * exactly once (each completion checks its outcome; the count is exact),
 * then released. @return the shards' coalescing waits so far. */
static uint64_t
coalesce_pass(struct flowq_engine *e, _Atomic unsigned *completed, unsigned pass)
{
	struct coalesce_prod p[COALESCE_NPROD];
	pthread_t t[COALESCE_NPROD];
	for (unsigned k = 0; k < COALESCE_NPROD; k++) {
		p[k] = (struct coalesce_prod){e, coalesce_reqs[k], COALESCE_PER, k, completed};
		cr_assert_eq(pthread_create(&t[k], NULL, coalesce_producer, &p[k]), 0);
	}
	for (unsigned k = 0; k < COALESCE_NPROD; k++)
		pthread_join(t[k], NULL);
	unsigned want = pass * COALESCE_NPROD * COALESCE_PER;
	for (int ms = 0; atomic_load(completed) < want && ms < 20000; ms++)
		usleep(1000);
	cr_assert_eq(atomic_load(completed), want);
	for (unsigned k = 0; k < COALESCE_NPROD; k++)
		for (unsigned i = 0; i < COALESCE_PER; i++)
			cr_assert_eq(flowq_release(e, &coalesce_reqs[k][i]), 0);
	uint64_t waits = 0, decided = 0;
	for (unsigned k = 0; k < 2; k++) {
		struct flowq_shard_stats ss;
		cr_assert_eq(flowq_stats_shard(e, k, &ss), 0);
		decided += ss.decided;
		waits += ss.coalesce_waits;
	}
	cr_assert_eq(decided, want, "the shards decided each request once");
	return waits;
}

/* Holds the engine's coalescing controller has decided so far. */
static uint64_t
coalesce_holds(struct flowq_engine *e)
{
	struct flowq_coalesce_stats cs;
	cr_assert_eq(flowq_stats_coalesce(e, &cs), 0);
	cr_assert_leq(cs.on, 1);
	return cs.holds_on + cs.holds_off;
}

/* A threaded engine of two shards with intake_coalesce_ns = @p ns. */
static struct flowq_engine *
coalesce_engine(int64_t ns)
{
	struct flowq_config c;
	flowq_config_init(&c);
	c.shards = 2;
	c.intake_coalesce_ns = ns;
	return fx_make(&c);
}

/* With the longest coalescing wait nothing is lost, and destroy returns
 * although a dispatcher may be waiting. The dispatchers run the wait only
 * in the periods where the engine measures whether it pays, or where it
 * found that it does (core/coalesce.h): passes go on until a shard has
 * waited (the first PROBE_ON begins 4 ms into the traffic) and the
 * controller has decided a hold (flowq_stats_coalesce(): after the first
 * PROBE_ON, 8 ms into the traffic), so the test covers the wait itself and
 * the counts a host sees. */
Test(engine, intake_coalescing_loses_nothing, .timeout = 120)
{
	struct flowq_engine *e = coalesce_engine(100000);
	_Atomic unsigned completed = 0;
	uint64_t waits = 0;
	unsigned pass = 0;
	while ((waits == 0 || coalesce_holds(e) == 0) && pass < 200)
		waits = coalesce_pass(e, &completed, ++pass);
	cr_assert_gt(waits, 0, "no coalescing wait in %u passes", pass);
	cr_assert_gt(coalesce_holds(e), 0, "no hold decided in %u passes", pass);
	flowq_engine_destroy(e);
}

/* intake_coalesce_ns = 0: the same traffic, never a wait. */
Test(engine, no_coalescing_wait_when_off, .timeout = 120)
{
	struct flowq_engine *e = coalesce_engine(0);
	_Atomic unsigned completed = 0;
	for (unsigned pass = 1; pass <= 4; pass++)
		cr_assert_eq(coalesce_pass(e, &completed, pass), 0);
	struct flowq_coalesce_stats cs;
	cr_assert_eq(flowq_stats_coalesce(e, &cs), 0);
	cr_assert(cs.on == 0 && cs.holds_on == 0 && cs.holds_off == 0 && cs.dropped == 0,
		  "no controller runs with intake_coalesce_ns = 0");
	flowq_engine_destroy(e);
}

/* ---- capacity rollback of a rejected submit ---- */

/* Flow @p id's reserved capacity (core/submit.c flow_cap_reserve()), read
 * through a handle: requests and bytes. */
static void
flow_cap(struct flowq_engine *e, const char *id, int32_t prio, uint64_t *r_req,
	 uint64_t *r_bytes)
{
	struct flowq_flow *fl = NULL;
	cr_assert_eq(flowq_flow_get(e, id, (uint32_t)strlen(id), prio, &fl), 0);
	*r_req = atomic_load(&fl->cap_req);
	*r_bytes = atomic_load(&fl->cap_bytes);
	flowq_flow_put(e, fl);
}

/* A submit that finds the global limit full reserves band and flow
 * capacity before it asks for a displacement ticket (core/submit.c
 * submit_admit()); with nothing lower to displace it is rejected
 * (CAPACITY_GLOBAL) and must give both back: a leak would refuse the
 * flow's next request as CAPACITY_FLOW, for ever. */
Test(engine, a_failed_displacement_gives_the_flow_capacity_back)
{
	struct flowq_config c = fx_polled_cfg();
	c.max_requests = 1;
	c.displacement = "lowest_band_newest";
	c.flow_max_requests = 1;
	c.flow_max_bytes = 100;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b, b2;
	uint64_t req, bytes;

	fx_req_init(&a, "a", 0, 10);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	fx_req_init(&b, "b", 0, 100);
	cr_assert_eq(flowq_submit(e, &b.req), -ENOSPC, "no lower band to displace");
	cr_assert_eq(flowq_req_outcome(&b.req), FLOWQ_REJECTED_CAPACITY);
	cr_assert_eq(flowq_req_cause(&b.req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	flow_cap(e, "b", 0, &req, &bytes);
	cr_assert_eq(req, 0, "the flow's request reservation was rolled back");
	cr_assert_eq(bytes, 0, "the flow's byte reservation was rolled back");

	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &a.req), 0);
	/* The global limit has room again: the flow's whole limit is free. */
	fx_req_init(&b2, "b", 0, 100);
	cr_assert_eq(flowq_submit(e, &b2.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(b2.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &b2.req), 0);
	cr_assert_eq(b.completions, 0, "a rejected request gets no completion");
	cr_assert_eq(a.completions, 1);
	cr_assert_eq(b2.completions, 1);

	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "b", 1, 0, &st), 0);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_CAPACITY][FLOWQ_CAUSE_CAPACITY_GLOBAL], 1);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2);
	cr_assert_eq(st.outcomes[FLOWQ_REJECTED_CAPACITY], 1);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.queued_bytes, 0);
	cr_assert_eq(st.inflight, 0);
	flow_cap(e, "b", 0, &req, &bytes);
	cr_assert_eq(req, 0);
	cr_assert_eq(bytes, 0);
	flowq_engine_destroy(e);
}

/* A flow with both limits: a request that fits the request count but not
 * the bytes is refused (CAPACITY_FLOW) and its request count, added
 * first, is taken back (core/submit.c flow_cap_reserve()). */
Test(engine, a_flow_byte_refusal_takes_back_the_request_count)
{
	struct flowq_config c = fx_polled_cfg();
	c.flow_max_requests = 2;
	c.flow_max_bytes = 100;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h[4];
	uint64_t req, bytes;

	fx_req_init(&h[0], "f", 0, 60);
	cr_assert_eq(flowq_submit(e, &h[0].req), 0);
	fx_req_init(&h[1], "f", 0, 60);
	cr_assert_eq(flowq_submit(e, &h[1].req), -ENOSPC, "60 + 60 bytes > 100");
	cr_assert_eq(flowq_req_outcome(&h[1].req), FLOWQ_REJECTED_CAPACITY);
	cr_assert_eq(flowq_req_cause(&h[1].req), FLOWQ_CAUSE_CAPACITY_FLOW);
	flow_cap(e, "f", 0, &req, &bytes);
	cr_assert_eq(req, 1, "the refused request's count was taken back");
	cr_assert_eq(bytes, 60);
	/* So the second request of the limit still fits. */
	fx_req_init(&h[2], "f", 0, 40);
	cr_assert_eq(flowq_submit(e, &h[2].req), 0);
	fx_req_init(&h[3], "f", 0, 0);
	cr_assert_eq(flowq_submit(e, &h[3].req), -ENOSPC, "two requests queued");
	cr_assert_eq(flowq_req_cause(&h[3].req), FLOWQ_CAUSE_CAPACITY_FLOW);
	flow_cap(e, "f", 0, &req, &bytes);
	cr_assert_eq(req, 2);
	cr_assert_eq(bytes, 100);

	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(h[0].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(h[2].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(h[1].completions + h[3].completions, 0);
	cr_assert_eq(flowq_release(e, &h[0].req), 0);
	cr_assert_eq(flowq_release(e, &h[2].req), 0);
	flow_cap(e, "f", 0, &req, &bytes);
	cr_assert_eq(req, 0, "all given back at quiescence");
	cr_assert_eq(bytes, 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_CAPACITY][FLOWQ_CAUSE_CAPACITY_FLOW], 2);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);
	flowq_engine_destroy(e);
}
