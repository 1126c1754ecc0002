/*
 * Band lifetime (core/registry.c, "Band lifetime"): template (JIT) bands are
 * collected once they have had no flow for the GC timeout, configured bands
 * never; more than FLOWQ_MAX_BANDS priorities over time are all served; a
 * flow, a queued request or a handle keeps a band; engine statistics and
 * metrics are the same before and after a collection; displacement state
 * and global capacity survive it. Polled engines on the fixture's manual
 * clock (tests/support/engine_fixture.h), so each step is deterministic:
 * a flow idle for T is collected at the next poll, its band is listed
 * idle by then and collected one T later.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "engine_fixture.h"
#include "prom_parse.h"

/* The GC timeout of every test, ns. */
#define T 1000

static struct flowq_config
cfg_gc(unsigned shards)
{
	struct flowq_config c = fx_polled_cfg();
	c.shards = shards;
	c.flow_gc_timeout_ns = T;
	return c;
}

static int
count_band(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	(void)priority;
	(void)st;
	(*(int *)ctx)++;
	return 0;
}

static int
live_bands(struct flowq_engine *e)
{
	int n = 0;
	cr_assert_eq(flowq_stats_foreach_band(e, count_band, &n), 0);
	return n;
}

static bool
band_exists(struct flowq_engine *e, int32_t priority)
{
	struct flowq_stats st;
	return flowq_stats_band(e, priority, &st) == 0;
}

/* Advance the clock by @p dt and poll every shard twice: a flow's shard
 * may be polled after its band's home, which then sees the band go idle at
 * the second poll (in threaded mode the home is woken at once). */
static void
step(struct flowq_engine *e, int64_t dt)
{
	fx_advance(dt);
	fx_poll_all(e);
	fx_poll_all(e);
}

/* Idle flows go at the first step, their bands (idle since then) at the
 * second. */
static void
collect_all(struct flowq_engine *e)
{
	step(e, T);
	step(e, T);
}

/* Ten timeouts pass; band @p prio is kept all along. */
static void
expect_kept(struct flowq_engine *e, int32_t prio)
{
	for (int i = 0; i < 10; i++) {
		step(e, T);
		cr_assert(band_exists(e, prio), "band %d went after %d timeouts", prio,
			  i + 1);
	}
}

/* Band @p prio's last flow is idle now: the flow goes after a timeout, the
 * band after another. */
static void
expect_collected(struct flowq_engine *e, int32_t prio)
{
	step(e, T);
	cr_assert(band_exists(e, prio), "band %d: its last flow just went", prio);
	step(e, T);
	cr_assert_not(band_exists(e, prio), "band %d: no flow for a timeout", prio);
}

static int
submit(struct flowq_engine *e, struct fx_req *h, const char *flow, int32_t prio,
       uint64_t bytes)
{
	fx_req_init(h, flow, prio, bytes);
	return flowq_submit(e, &h->req);
}

/* ---- more priorities than FLOWQ_MAX_BANDS ---- */

Test(bands, more_priorities_than_max_bands_over_time)
{
	struct flowq_config c = cfg_gc(2);
	struct flowq_engine *e = fx_make(&c);
	enum { N = 3 * FLOWQ_MAX_BANDS + 7 };
	static struct fx_req h[N];
	for (int i = 0; i < N; i++) {
		int32_t prio = i * 7 - 500;
		cr_assert_eq(submit(e, &h[i], "tenant", prio, 10), 0, "priority %d",
			     prio);
		fx_poll_all(e);
		cr_assert_eq(h[i].seen, FLOWQ_DISPATCHED, "priority %d", prio);
		cr_assert_eq(flowq_release(e, &h[i].req), 0);
		if (i % 16 == 15) {
			cr_assert_eq(live_bands(e), 16);
			collect_all(e);
			cr_assert_eq(live_bands(e), 0, "after %d priorities", i + 1);
		}
	}
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], N);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_UNKNOWN_BAND], 0);
	cr_assert_eq(st.queue_time.count, N);
	flowq_engine_destroy(e);
}

Test(bands, full_table_refuses_until_a_band_is_collected)
{
	struct flowq_config c = cfg_gc(2);
	struct flowq_band_config conf[2] = {c.default_band, c.default_band};
	conf[0].priority = 1000;
	conf[1].priority = -1000;
	c.bands = conf;
	c.nbands = 2;
	struct flowq_engine *e = fx_make(&c);
	enum { JIT = FLOWQ_MAX_BANDS - 2 };
	static struct fx_req h[JIT];
	for (int i = 0; i < JIT; i++) {
		cr_assert_eq(submit(e, &h[i], "f", i, 1), 0);
		fx_poll_all(e);
		cr_assert_eq(h[i].seen, FLOWQ_DISPATCHED);
	}
	struct fx_req x;
	cr_assert_eq(submit(e, &x, "f", JIT, 1), -ENOENT, "64 bands alive");
	cr_assert_eq(flowq_req_outcome(&x.req), FLOWQ_REJECTED_OTHER);
	cr_assert_eq(flowq_req_cause(&x.req), FLOWQ_CAUSE_UNKNOWN_BAND);
	step(e, T);
	cr_assert_eq(submit(e, &x, "f", JIT, 1), -ENOENT,
		     "flows collected, their bands not idle for T yet");
	cr_assert_eq(live_bands(e), FLOWQ_MAX_BANDS);
	step(e, T);
	cr_assert_eq(live_bands(e), 2, "only the configured bands are left");
	cr_assert_eq(submit(e, &x, "f", JIT, 1), 0, "a collected band's slot is reused");
	fx_poll_all(e);
	cr_assert_eq(x.seen, FLOWQ_DISPATCHED);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_UNKNOWN_BAND], 2);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], JIT + 1);
	flowq_engine_destroy(e);
}

/* ---- what keeps a band ---- */

Test(bands, queued_request_keeps_its_band)
{
	struct flowq_config c = cfg_gc(2);
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b;
	cr_assert_eq(submit(e, &a, "a", 7, 1), 0);
	fx_poll_all(e);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(submit(e, &b, "b", 7, 1), 0);
	expect_kept(e, 7);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_band(e, 7, &st), 0);
	cr_assert_eq(st.queued, 1);
	cr_assert_eq(b.completions, 0);
	cr_assert_eq(flowq_stats_flow(e, "a", 1, 7, &st), -ENOENT, "the idle flow went");
	cr_assert_eq(flowq_release(e, &a.req), 0);
	fx_poll_all(e);
	cr_assert_eq(b.seen, FLOWQ_DISPATCHED, "served after 10 timeouts in the queue");
	cr_assert_eq(flowq_release(e, &b.req), 0);
	expect_collected(e, 7);
	flowq_engine_destroy(e);
}

Test(bands, handle_keeps_its_band)
{
	struct flowq_config c = cfg_gc(2);
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *fl = NULL;
	cr_assert_eq(flowq_flow_get(e, "held", 4, 9, &fl), 0);
	expect_kept(e, 9);
	/* The handle's flow serves requests all along. */
	struct fx_req h;
	fx_req_init(&h, "ignored", 9, 1);
	h.req.flow = fl;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	flowq_flow_put(e, fl);
	expect_collected(e, 9);
	flowq_engine_destroy(e);
}

/* A band used again while listed idle is listed again with the time its
 * new last flow went, even when no collection attempt saw it in use (its
 * users word's generation moved). */
Test(bands, idle_time_restarts_when_the_band_is_used_again)
{
	struct flowq_config c = cfg_gc(1);
	struct flowq_engine *e = fx_make(&c);
	int64_t t0 = fx_now;
	struct fx_req a, b;
	cr_assert_eq(submit(e, &a, "a", 5, 1), 0);
	fx_poll_all(e);
	step(e, T); /* t0+T: "a" goes, band 5 listed */
	cr_assert_eq(submit(e, &b, "b", 5, 1), 0);
	step(e, T / 2); /* t0+1.5T: "b" served on band 5 */
	cr_assert_eq(b.seen, FLOWQ_DISPATCHED);
	step(e, T); /* t0+2.5T: "b" goes: listed for 1.5T, idle for 0 */
	cr_assert_eq(fx_now, t0 + 5 * T / 2);
	cr_assert(band_exists(e, 5), "idle since its last flow went, not since listed");
	step(e, T / 2);
	cr_assert(band_exists(e, 5), "idle T/2");
	step(e, T / 2);
	cr_assert_not(band_exists(e, 5), "idle T");
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2);
	flowq_engine_destroy(e);
}

Test(bands, configured_bands_are_never_collected)
{
	struct flowq_config c = cfg_gc(2);
	struct flowq_band_config conf[2] = {c.default_band, c.default_band};
	conf[0].priority = 10;
	conf[1].priority = 0;
	c.bands = conf;
	c.nbands = 2;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h[3];
	cr_assert_eq(submit(e, &h[0], "x", 10, 1), 0);
	cr_assert_eq(submit(e, &h[1], "x", 0, 1), 0);
	cr_assert_eq(submit(e, &h[2], "x", 5, 1), 0);
	cr_assert_eq(fx_poll_all(e), 3);
	for (int i = 0; i < 20; i++) {
		step(e, T);
	}
	cr_assert(band_exists(e, 10));
	cr_assert(band_exists(e, 0));
	cr_assert_not(band_exists(e, 5), "the template band went");
	cr_assert_eq(live_bands(e), 2);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_band(e, 10, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 1, "its counters are kept");
	/* And they still serve. */
	cr_assert_eq(submit(e, &h[0], "y", 10, 1), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h[0].seen, FLOWQ_DISPATCHED);
	flowq_engine_destroy(e);
}

/* ---- statistics and metrics across a collection ---- */

static double sat_value;

static double
sat_cb(void *ctx)
{
	(void)ctx;
	return sat_value;
}

static char *mtext;
static size_t mlen;

static void
metrics_parse(struct flowq_engine *e, struct prom_doc *doc)
{
	FILE *f = open_memstream(&mtext, &mlen);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(e, f), 0);
	cr_assert_eq(fclose(f), 0);
	struct prom_error err;
	cr_assert_eq(prom_parse(mtext, mlen, doc, &err), 0, "%s line %u: %s",
		     prom_check_str(err.check), err.line, err.msg);
	free(mtext);
	mtext = NULL;
}

/* Samples of @p doc named @p name (whole name) with a priority label of
 * @p prio ("" = any). */
static size_t
samples_with(const struct prom_doc *doc, const char *name, const char *prio)
{
	size_t n = 0;
	for (size_t i = 0; i < doc->nsamples; i++) {
		const struct prom_sample *s = &doc->samples[i];
		const char *p = prom_label(s, "priority");
		if (strcmp(s->name, name) == 0 && (!*prio || (p && strcmp(p, prio) == 0)))
			n++;
	}
	return n;
}

/* Every engine-scope (unlabelled by priority) sample of @p a equals @p b's. */
static void
engine_samples_equal(const struct prom_doc *a, const struct prom_doc *b)
{
	size_t compared = 0;
	for (size_t i = 0; i < a->nsamples; i++) {
		const struct prom_sample *s = &a->samples[i];
		if (strncmp(s->name, "flowq_band_", 11) == 0 ||
		    strncmp(s->name, "flowq_flow_", 11) == 0)
			continue;
		const struct prom_sample *t = NULL;
		for (size_t k = 0; k < b->nsamples && !t; k++) {
			const struct prom_sample *u = &b->samples[k];
			if (strcmp(u->name, s->name) || u->nlabels != s->nlabels)
				continue;
			bool same = true;
			for (size_t l = 0; l < s->nlabels && same; l++) {
				const char *v = prom_label(u, s->labels[l].name);
				same = v && strcmp(v, s->labels[l].value) == 0;
			}
			if (same)
				t = u;
		}
		cr_assert_not_null(t, "sample %s (line %u) missing after collection",
				   s->name, s->line);
		cr_assert_eq(s->value, t->value, "%s (line %u): %g before, %g after",
			     s->name, s->line, s->value, t->value);
		compared++;
	}
	cr_assert_gt(compared, 100, "the engine families were compared");
}

static void
stats_equal(const struct flowq_stats *a, const struct flowq_stats *b)
{
	cr_assert_eq(memcmp(a->causes, b->causes, sizeof(a->causes)), 0, "causes");
	cr_assert_eq(memcmp(a->outcomes, b->outcomes, sizeof(a->outcomes)), 0,
		     "outcomes");
	cr_assert_eq(memcmp(&a->queue_time, &b->queue_time, sizeof(a->queue_time)), 0,
		     "queue time histogram");
	cr_assert_eq(a->queued, b->queued);
	cr_assert_eq(a->queued_bytes, b->queued_bytes);
	cr_assert_eq(a->inflight, b->inflight);
	cr_assert_eq(a->inflight_bytes, b->inflight_bytes);
}

Test(bands, stats_and_metrics_survive_collection)
{
	struct flowq_config c = cfg_gc(2);
	/* The callback detector: no in-flight limit, so in-flight is
	 * dispatched minus released, and dispatched bytes must outlive the
	 * band. */
	c.saturation.detector = "callback";
	c.saturation.callback = sat_cb;
	c.default_band.max_requests = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req r[6];
	sat_value = 1.0; /* closed */
	cr_assert_eq(submit(e, &r[0], "a", 3, 10), 0);
	cr_assert_eq(submit(e, &r[1], "b", 3, 20), -ENOSPC, "the band holds one request");
	cr_assert_eq(flowq_req_cause(&r[1].req), FLOWQ_CAUSE_CAPACITY_BAND);
	fx_req_init(&r[2], "b", 3, 1);
	r[2].req.deadline_ns = fx_now - 1;
	cr_assert_eq(flowq_submit(e, &r[2].req), -ETIMEDOUT);
	fx_advance(300);
	cr_assert_eq(flowq_cancel(e, &r[0].req), 0);
	fx_poll_all(e);
	cr_assert_eq(r[0].seen, FLOWQ_EVICTED_CANCELLED);
	fx_req_init(&r[3], "a", 3, 30);
	r[3].req.ttl_ns = 500;
	cr_assert_eq(flowq_submit(e, &r[3].req), 0);
	step(e, 500);
	cr_assert_eq(r[3].seen, FLOWQ_EVICTED_TTL);
	cr_assert_eq(submit(e, &r[4], "b", 3, 100), 0);
	fx_advance(700);
	sat_value = 0.0; /* open */
	fx_poll_all(e);
	cr_assert_eq(r[4].seen, FLOWQ_DISPATCHED); /* in flight, not released */

	struct flowq_stats before, after, band;
	cr_assert_eq(flowq_stats_engine(e, &before), 0);
	cr_assert_eq(before.inflight, 1);
	cr_assert_eq(before.inflight_bytes, 100);
	cr_assert_eq(before.outcomes[FLOWQ_REJECTED_CAPACITY], 1);
	cr_assert_eq(before.causes[FLOWQ_REJECTED_OTHER][FLOWQ_CAUSE_DEADLINE_PASSED], 1);
	cr_assert_eq(before.queue_time.count, 3);
	cr_assert_eq(flowq_stats_band(e, 3, &band), 0);
	cr_assert_eq(band.outcomes[FLOWQ_DISPATCHED], 1);
	struct prom_doc m1, m2;
	metrics_parse(e, &m1);
	cr_assert_gt(samples_with(&m1, "flowq_band_requests_total", "3"), 0);

	collect_all(e);
	cr_assert_not(band_exists(e, 3), "collected with a request in flight");
	cr_assert_eq(flowq_stats_engine(e, &after), 0);
	stats_equal(&before, &after);
	metrics_parse(e, &m2);
	cr_assert_eq(samples_with(&m2, "flowq_band_requests_total", ""), 0,
		     "no band series is left");
	cr_assert_eq(samples_with(&m2, "flowq_band_queued_requests", ""), 0);
	engine_samples_equal(&m1, &m2);
	prom_doc_free(&m1);
	prom_doc_free(&m2);

	cr_assert_eq(flowq_release(e, &r[4].req), 0);
	cr_assert_eq(flowq_stats_engine(e, &after), 0);
	cr_assert_eq(after.inflight, 0);
	cr_assert_eq(after.inflight_bytes, 0);

	/* A new band of the priority starts from zero; the totals go on. */
	cr_assert_eq(submit(e, &r[5], "a", 3, 5), 0);
	fx_poll_all(e);
	cr_assert_eq(flowq_stats_band(e, 3, &band), 0);
	cr_assert_eq(band.outcomes[FLOWQ_DISPATCHED], 1);
	cr_assert_eq(band.outcomes[FLOWQ_EVICTED_TTL], 0);
	cr_assert_eq(flowq_stats_engine(e, &after), 0);
	cr_assert_eq(after.outcomes[FLOWQ_DISPATCHED], 2);
	cr_assert_eq(after.outcomes[FLOWQ_EVICTED_TTL], 1);
	flowq_engine_destroy(e);
}

/* ---- allocation failure ---- */

/* A band whose first flow cannot be allocated has no flow from the start:
 * it is collected like any other, and nothing leaks. */
Test(bands, band_left_by_a_failed_flow_allocation_is_collected)
{
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = cfg_gc(2);
	c.allocator = &ca.a;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	int k;
	for (k = 0;; k++) {
		test_count_alloc_budget(&ca, (unsigned long)k);
		int rc = submit(e, &h, "f", k, 1);
		ca.fail_after = ~0ul;
		if (rc == 0)
			break;
		cr_assert_eq(rc, -ENOMEM, "k=%d", k);
		cr_assert_eq(flowq_req_cause(&h.req), FLOWQ_CAUSE_NO_MEMORY);
		cr_assert_lt(k, 100, "never succeeded");
	}
	cr_assert_gt(k, 2, "a band and its flow take several allocations");
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	cr_assert_gt(live_bands(e), 1, "bands without a flow were made");
	collect_all(e);
	cr_assert_eq(live_bands(e), 0);
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0);
}

/* ---- displacement ---- */

Test(bands, displacement_across_collection_keeps_global_capacity)
{
	struct flowq_config c = cfg_gc(2);
	c.saturation.detector = "callback";
	c.saturation.callback = sat_cb;
	c.max_requests = 2;
	c.displacement = "lowest_band_newest";
	struct flowq_engine *e = fx_make(&c);
	sat_value = 1.0;
	struct fx_req lo[2], hi, x[3];
	cr_assert_eq(submit(e, &lo[0], "a", 0, 1), 0);
	cr_assert_eq(submit(e, &lo[1], "b", 0, 1), 0);
	fx_poll_all(e);
	cr_assert_eq(submit(e, &hi, "h", 5, 1), 0, "admitted by displacing band 0");
	fx_poll_all(e);
	cr_assert_eq((lo[0].seen == FLOWQ_EVICTED_DISPLACED) +
			     (lo[1].seen == FLOWQ_EVICTED_DISPLACED),
		     1, "one victim");
	sat_value = 0.0;
	step(e, 0); /* two polls: band 0 waits for band 5 on the other shard */
	cr_assert_eq(hi.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &hi.req), 0);
	for (int i = 0; i < 2; i++)
		if (lo[i].seen != FLOWQ_EVICTED_DISPLACED)
			cr_assert_eq(flowq_release(e, &lo[i].req), 0);
	collect_all(e);
	cr_assert_not(band_exists(e, 0));
	cr_assert_not(band_exists(e, 5));
	cr_assert_eq(live_bands(e), 0);

	/* The global limit is whole again: exactly two fit. */
	sat_value = 1.0;
	cr_assert_eq(submit(e, &x[0], "a", 1, 1), 0);
	cr_assert_eq(submit(e, &x[1], "b", 1, 1), 0);
	cr_assert_eq(submit(e, &x[2], "c", 1, 1), -ENOSPC, "nothing lower to displace");
	cr_assert_eq(flowq_req_cause(&x[2].req), FLOWQ_CAUSE_CAPACITY_GLOBAL);
	sat_value = 0.0;
	cr_assert_eq(fx_poll_all(e), 2);
	flowq_engine_destroy(e);
}

/* White box: a ticket's bytes that land after its dispatcher settled the
 * ticket's request (the submitter preempted between its two adds,
 * displace_ticket()) are settled by a later round: a victim is shed for
 * them, and the global bytes count the newcomer's. Before the fix the
 * bytes stayed on the band-shard with no request owed, never settled. */
Test(bands, ticket_bytes_after_their_request_is_settled)
{
	struct flowq_config c = cfg_gc(1);
	c.saturation.detector = "callback";
	c.saturation.callback = sat_cb;
	c.max_requests = 100;
	c.max_bytes = 30;
	c.displacement = "lowest_band_newest";
	struct flowq_engine *e = fx_make(&c);
	sat_value = 1.0;
	struct fx_req lo[3];
	static const char *ids[3] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++)
		cr_assert_eq(submit(e, &lo[i], ids[i], 0, 10), 0);
	fx_poll_all(e);
	struct flowq__band *b = atomic_load(&e->bands[0]);
	struct flowq__band_shard *bs = b->bss[0];
	/* A newcomer's ticket (displace_ticket(): the pending count, the
	 * request CAS), its bytes not yet added. */
	atomic_fetch_add(&e->disp_pending, 1);
	uint64_t seen = 0;
	cr_assert(atomic_compare_exchange_strong(&bs->doomed_req, &seen, 1));
	fx_poll_all(e);
	cr_assert_eq(lo[2].seen, FLOWQ_EVICTED_DISPLACED, "shed for the request");
	cr_assert_eq(lo[1].seen, FLOWQ_PENDING);
	cr_assert_eq(atomic_load(&bs->doomed_req), 0);
	/* The bytes land now, and the next round settles them. */
	atomic_fetch_add(&bs->doomed_bytes, 10);
	fx_poll_all(e);
	cr_assert_eq(atomic_load(&bs->doomed_bytes), 0, "the late bytes are settled");
	cr_assert_eq(lo[1].seen, FLOWQ_EVICTED_DISPLACED, "shed for the bytes");
	cr_assert_eq(lo[0].seen, FLOWQ_PENDING);
	uint64_t req, bytes;
	flowq__cap_in_use(&e->global, &req, &bytes);
	cr_assert_eq(req, 2, "lo[0] and the newcomer");
	cr_assert_eq(bytes, 20, "lo[0]'s and the newcomer's bytes");
	/* The newcomer leaves (it was never queued here). */
	flowq__cap_release(&e->global, 1, 10);
	sat_value = 0.0;
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_release(e, &lo[0].req), 0);
	flowq_engine_destroy(e);
}

/* White box: a band-shard with no flow of its template band is parked
 * (tickets fail), and a ticket's bytes that arrive after the park reach the
 * shard as debt once the band is freed. */
Test(bands, parked_band_shard_and_late_ticket_bytes)
{
	struct flowq_config c = cfg_gc(2);
	c.max_requests = 100;
	c.max_bytes = 1000;
	c.displacement = "lowest_band_newest";
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;
	cr_assert_eq(submit(e, &h, "v", 0, 1), 0);
	fx_poll_all(e);
	cr_assert_eq(h.seen, FLOWQ_DISPATCHED);
	struct flowq__band *b = atomic_load(&e->bands[0]);
	cr_assert_not_null(b);
	unsigned live = 0;
	for (unsigned k = 0; k < 2; k++)
		live += !(atomic_load(&b->bss[k]->doomed_req) & FLOWQ__DOOMED_PARKED);
	cr_assert_eq(live, 1, "parked except on the flow's shard");
	step(e, T); /* the flow goes; its shard parks the band-shard */
	for (unsigned k = 0; k < 2; k++) {
		uint64_t d = atomic_load(&b->bss[k]->doomed_req);
		cr_assert(d & FLOWQ__DOOMED_PARKED, "shard %u", k);
		uint64_t seen = d & ~FLOWQ__DOOMED_PARKED;
		cr_assert_not(atomic_compare_exchange_strong(&b->bss[k]->doomed_req,
							     &seen, seen + 1),
			      "a ticket on a parked band-shard fails");
	}
	/* A ticket taken just before the park adds its bytes after it. */
	atomic_fetch_add(&b->bss[1]->doomed_bytes, 7);
	step(e, T); /* the band goes */
	cr_assert_not(band_exists(e, 0));
	urcu_memb_barrier(); /* its free callback has run */
	cr_assert_eq(atomic_load(&e->shards[1].debt_in_bytes), 7);
	fx_poll_all(e);
	cr_assert_eq(atomic_load(&e->shards[1].debt_in_bytes), 0);
	uint64_t req, bytes;
	flowq__cap_in_use(&e->global, &req, &bytes);
	cr_assert_eq(bytes, 7, "the debt holds global bytes");
	cr_assert_eq(req, 0);
	flowq_engine_destroy(e);
}
