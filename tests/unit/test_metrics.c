/*
 * End-to-end test of flowq_metrics_write(): a polled-mode engine with a
 * manual clock runs a known script of submits, polls, a cancel, releases
 * and a rejection; the metrics it writes are parsed with the strict parser
 * (tests/support/prom_parse.h) and checked value by value against what the
 * script implies. tests/unit/test_metrics_format.c checks the writer alone
 * against a scripted statistics source.
 *
 * The script (two bands, one flow in each, 2 shards; times on the engine
 * clock):
 *
 *   t = 0       submit A1 (100 B), A2 (200 B) on flow "tenant-a", band 10
 *               submit B1 (1000 B), B2 (2000 B) on flow Q, band 0, where
 *               Q's id is 'a' '"' 'b' '\' 'c' '\n' 'd' 0xff (every byte the
 *               label escaping treats specially)
 *   t = 1.5 ms  cancel B1; poll every shard until idle: A1, A2, B2
 *               dispatched and B1 evicted (cancelled), each after 1.5 ms
 *               release A1 and B2; submit A3 (300 B)
 *   t = 5 ms    poll: A3 dispatched after 3.5 ms
 *               submit an invalid request (empty flow id): rejected
 *               submit A4 (400 B), never polled: still queued
 *
 * No capacity limit and no in-flight limit are configured, so nothing
 * waits for anything but the polls, and the default band template is off,
 * so the two configured bands are the only ones.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>

#include "count_alloc.h"
#include "prom_parse.h"

#define MS INT64_C(1000000)

struct treq {
	struct flowq_req req;
	unsigned completions;
	enum flowq_outcome outcome;
};

static int64_t clock_now;
static struct flowq_engine *e;
static char *text;
static size_t text_len;
static struct prom_doc doc;

static const char tenant_a[] = "tenant-a";
static const char quirky_id[] = {'a', '"', 'b', '\\', 'c', '\n', 'd', (char)0xff};
/* quirky_id as core/metrics.c writes it, and as a scraper reads it back. */
static const char quirky_raw[] = "a\\\"b\\\\x5cc\\nd\\\\xff";
static const char quirky_value[] = "a\"b\\x5cc\nd\\xff";

static int64_t
manual_clock(void *ctx)
{
	return *(const int64_t *)ctx;
}

/* Runs on the polling thread (this one): no synchronization needed. */
static void
on_complete(struct flowq_req *req, void *arg)
{
	struct treq *t = arg;

	t->completions++;
	t->outcome = flowq_req_outcome(req);
}

static void
submit(struct treq *t, const void *id, uint32_t id_len, int32_t priority, uint64_t bytes)
{
	memset(t, 0, sizeof(*t));
	flowq_req_init(&t->req);
	t->req.flow_id = id;
	t->req.flow_id_len = id_len;
	t->req.priority = priority;
	t->req.bytes = bytes;
	t->req.complete = on_complete;
	t->req.arg = t;
	cr_assert_eq(flowq_submit(e, &t->req), 0, "submit of %llu bytes",
		     (unsigned long long)bytes);
}

/* Poll every shard until a whole round decides nothing. */
static void
poll_all(void)
{
	int decided;

	do {
		decided = 0;
		for (unsigned s = 0; s < flowq_shard_count(e); s++) {
			int n = flowq_shard_poll(e, s, 0, NULL);

			cr_assert_geq(n, 0, "poll of shard %u: %d", s, n);
			decided += n;
		}
	} while (decided > 0);
}

static void
setup(void)
{
	struct flowq_config cfg;
	struct flowq_band_config bands[2];
	char errbuf[256] = "";

	flowq_config_init(&cfg);
	cfg.mode = FLOWQ_MODE_POLLED;
	cfg.shards = 2;
	cfg.clock = manual_clock;
	cfg.clock_ctx = &clock_now;
	bands[0] = cfg.default_band;
	bands[0].priority = 10;
	bands[1] = cfg.default_band;
	bands[1].priority = 0;
	cfg.bands = bands;
	cfg.nbands = 2;
	cfg.default_band_enabled = false;
	cfg.errbuf = errbuf;
	cfg.errbuf_size = sizeof(errbuf);
	clock_now = 0;
	cr_assert_eq(flowq_engine_create(&cfg, &e), 0, "engine: %s", errbuf);
}

static void
teardown(void)
{
	if (e != NULL)
		flowq_engine_destroy(e);
	e = NULL;
	free(text);
	text = NULL;
	prom_doc_free(&doc);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static void
write_and_parse(void)
{
	FILE *f = open_memstream(&text, &text_len);
	struct prom_error err;

	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(e, f), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(prom_parse(text, text_len, &doc, &err), 0, "%s line %u: %s\n%s",
		     prom_check_str(err.check), err.line, err.msg, text);
}

static double
value_of(const struct prom_sample *s, const char *what)
{
	cr_assert_not_null(s, "no sample %s in:\n%s", what, text);
	return s->value;
}

/* Value of the sample @name whose label set is exactly the given
 * (name, value) pairs, ended by NULL. */
#define VAL(name, ...) value_of(prom_find(&doc, name, __VA_ARGS__), name)

/*
 * Check histogram @fam for the series whose labels, besides le, are
 * (@k1, @v1) and (@k2, @v2) (either key may be NULL): every bucket counts
 * the observations @obs_s (seconds) that are <= its le, _count is @n,
 * _sum is @sum_s, and there are @nbuckets bucket lines.
 */
static void
check_hist(const char *fam, const char *k1, const char *v1, const char *k2,
	   const char *v2, const double *obs_s, size_t n, double sum_s, size_t nbuckets)
{
	char bucket[128], sum[128], count[128];
	size_t seen = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", fam);
	snprintf(sum, sizeof(sum), "%s_sum", fam);
	snprintf(count, sizeof(count), "%s_count", fam);
	for (size_t i = 0; i < doc.nsamples; i++) {
		const struct prom_sample *s = &doc.samples[i];
		size_t want_labels = 1 + (k1 != NULL) + (k2 != NULL), want = 0;
		double le;

		if (strcmp(s->name, bucket) != 0 || s->nlabels != want_labels)
			continue;
		if ((k1 && strcmp(prom_label(s, k1) ? prom_label(s, k1) : "", v1) != 0) ||
		    (k2 && strcmp(prom_label(s, k2) ? prom_label(s, k2) : "", v2) != 0))
			continue;
		le = strtod(prom_label(s, "le"), NULL);
		for (size_t k = 0; k < n; k++)
			want += obs_s[k] <= le;
		cr_assert_eq(s->value, (double)want, "%s{%s=%s} le=%s: %g, want %zu", fam,
			     k1 ? k1 : "", v1 ? v1 : "", prom_label(s, "le"), s->value,
			     want);
		seen++;
	}
	cr_assert_eq(seen, nbuckets, "%s{%s=%s}: %zu bucket lines", fam, k1 ? k1 : "",
		     v1 ? v1 : "", seen);
	/* The series' _sum and _count have the same labels minus le. */
	for (size_t i = 0; i < doc.nsamples; i++) {
		const struct prom_sample *s = &doc.samples[i];
		bool is_sum = strcmp(s->name, sum) == 0,
		     is_count = strcmp(s->name, count) == 0;

		if (!(is_sum || is_count) ||
		    s->nlabels != (size_t)((k1 != NULL) + (k2 != NULL)))
			continue;
		if ((k1 && strcmp(prom_label(s, k1) ? prom_label(s, k1) : "", v1) != 0) ||
		    (k2 && strcmp(prom_label(s, k2) ? prom_label(s, k2) : "", v2) != 0))
			continue;
		if (is_count)
			cr_assert_eq(s->value, (double)n, "%s", count);
		else
			cr_assert(fabs(s->value - sum_s) < 1e-12,
				  "%s = %.12g, want %.12g", sum, s->value, sum_s);
	}
}

Test(metrics, null_arguments)
{
	cr_assert_eq(flowq_metrics_write(NULL, stdout), -EFAULT);
	cr_assert_eq(flowq_metrics_write(e, NULL), -EFAULT);
}

Test(metrics, allocation_failure_in_a_walk_returns_enomem)
{
	/* Static: the teardown destroys the engine, through this allocator. */
	static struct test_count_alloc ca;
	struct flowq_config cfg;

	flowq_engine_destroy(e);
	test_count_alloc_init(&ca);
	flowq_config_init(&cfg);
	cfg.mode = FLOWQ_MODE_POLLED;
	cfg.shards = 1;
	cfg.allocator = &ca.a;
	cr_assert_eq(flowq_engine_create(&cfg, &e), 0);
	/* The band walk's snapshot is the writer's first allocation. */
	test_count_alloc_budget(&ca, 0);
	FILE *f = open_memstream(&text, &text_len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(e, f), -ENOMEM);
	cr_assert_eq(fclose(f), 0);
	atomic_store(&ca.fail_after, ~0ul);
}

Test(metrics, end_to_end)
{
	/* Static: A4 is still queued when the test body returns, and the
	 * teardown's destroy evicts it then (its completion writes here). */
	static struct treq a1, a2, a3, a4, b1, b2, bad;
	const double band10_obs[] = {0.0015, 0.0015, 0.0035};
	const double band0_obs[] = {0.0015, 0.0015};
	const double all_obs[] = {0.0015, 0.0015, 0.0015, 0.0015, 0.0035};
	const uint32_t qlen = sizeof(quirky_id);

	/* t = 0 */
	submit(&a1, tenant_a, 8, 10, 100);
	submit(&a2, tenant_a, 8, 10, 200);
	submit(&b1, quirky_id, qlen, 0, 1000);
	submit(&b2, quirky_id, qlen, 0, 2000);

	/* t = 1.5 ms */
	clock_now = 3 * MS / 2;
	cr_assert_eq(flowq_cancel(e, &b1.req), 0);
	poll_all();
	cr_assert_eq(a1.completions, 1);
	cr_assert_eq(a1.outcome, FLOWQ_DISPATCHED);
	cr_assert_eq(a2.outcome, FLOWQ_DISPATCHED);
	cr_assert_eq(b2.outcome, FLOWQ_DISPATCHED);
	cr_assert_eq(b1.completions, 1);
	cr_assert_eq(b1.outcome, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(flowq_release(e, &a1.req), 0);
	cr_assert_eq(flowq_release(e, &b2.req), 0);
	submit(&a3, tenant_a, 8, 10, 300);

	/* t = 5 ms */
	clock_now = 5 * MS;
	poll_all();
	cr_assert_eq(a3.completions, 1);
	cr_assert_eq(a3.outcome, FLOWQ_DISPATCHED);
	flowq_req_init(&bad.req);
	bad.req.flow_id = tenant_a;
	bad.req.flow_id_len = 0; /* empty: invalid */
	bad.req.complete = on_complete;
	bad.req.arg = &bad;
	cr_assert_eq(flowq_submit(e, &bad.req), -EINVAL);
	submit(&a4, tenant_a, 8, 10, 400);

	write_and_parse();

	/* Engine: A4 queued; A2 and A3 in flight (A1, B2 released). */
	cr_assert_eq(VAL("flowq_queued_requests", NULL), 1);
	cr_assert_eq(VAL("flowq_queued_bytes", NULL), 400);
	cr_assert_eq(VAL("flowq_inflight_requests", NULL), 2);
	cr_assert_eq(VAL("flowq_inflight_bytes", NULL), 500);
	cr_assert_eq(VAL("flowq_requests_total", "outcome", "dispatched", "cause", "none",
			 NULL),
		     4);
	cr_assert_eq(VAL("flowq_requests_total", "outcome", "evicted_cancelled", "cause",
			 "cancelled", NULL),
		     1);
	cr_assert_eq(VAL("flowq_requests_total", "outcome", "rejected_other", "cause",
			 "invalid_request", NULL),
		     1);
	cr_assert_eq(VAL("flowq_requests_total", "outcome", "evicted_ttl", "cause",
			 "ttl_expired", NULL),
		     0);
	check_hist("flowq_queue_time_seconds", NULL, NULL, NULL, NULL, all_obs, 5, 0.0095,
		   FLOWQ_HIST_BUCKETS);

	/* Band 10: A1, A2, A3 dispatched; A4 queued. */
	cr_assert_eq(VAL("flowq_band_queued_requests", "priority", "10", NULL), 1);
	cr_assert_eq(VAL("flowq_band_queued_bytes", "priority", "10", NULL), 400);
	cr_assert_eq(VAL("flowq_band_requests_total", "priority", "10", "outcome",
			 "dispatched", "cause", "none", NULL),
		     3);
	cr_assert_eq(VAL("flowq_band_requests_total", "priority", "10", "outcome",
			 "evicted_cancelled", "cause", "cancelled", NULL),
		     0);
	check_hist("flowq_band_queue_time_seconds", "priority", "10", NULL, NULL,
		   band10_obs, 3, 0.0065, FLOWQ_HIST_BUCKETS);

	/* Band 0: B2 dispatched, B1 cancelled, nothing queued. */
	cr_assert_eq(VAL("flowq_band_queued_requests", "priority", "0", NULL), 0);
	cr_assert_eq(VAL("flowq_band_requests_total", "priority", "0", "outcome",
			 "dispatched", "cause", "none", NULL),
		     1);
	cr_assert_eq(VAL("flowq_band_requests_total", "priority", "0", "outcome",
			 "evicted_cancelled", "cause", "cancelled", NULL),
		     1);
	check_hist("flowq_band_queue_time_seconds", "priority", "0", NULL, NULL,
		   band0_obs, 2, 0.003, FLOWQ_HIST_BUCKETS);
	cr_assert_null(
		prom_find(&doc, "flowq_band_queued_requests", "priority", "5", NULL));

	/* Flows. */
	cr_assert_eq(VAL("flowq_flow_queued_requests", "flow", "tenant-a", "priority",
			 "10", NULL),
		     1);
	cr_assert_eq(VAL("flowq_flow_queued_bytes", "flow", "tenant-a", "priority", "10",
			 NULL),
		     400);
	cr_assert_eq(VAL("flowq_flow_requests_total", "flow", "tenant-a", "priority",
			 "10", "outcome", "dispatched", NULL),
		     3);
	check_hist("flowq_flow_queue_time_seconds", "flow", "tenant-a", "priority", "10",
		   band10_obs, 3, 0.0065, 1);
	cr_assert_eq(VAL("flowq_flow_requests_total", "flow", quirky_value, "priority",
			 "0", "outcome", "dispatched", NULL),
		     1);
	cr_assert_eq(VAL("flowq_flow_requests_total", "flow", quirky_value, "priority",
			 "0", "outcome", "evicted_cancelled", NULL),
		     1);
	cr_assert_eq(VAL("flowq_flow_queued_requests", "flow", quirky_value, "priority",
			 "0", NULL),
		     0);
	check_hist("flowq_flow_queue_time_seconds", "flow", quirky_value, "priority", "0",
		   band0_obs, 2, 0.003, 1);

	/* The escaped id, byte for byte, as it is on the wire. */
	{
		char line[256];

		snprintf(line, sizeof(line),
			 "\nflowq_flow_queued_bytes{flow=\"%s\",priority=\"0\"} 0\n",
			 quirky_raw);
		cr_assert_not_null(strstr(text, line), "missing:%s", line);
	}
	/* Exactly two flows: the rejected request created none. */
	{
		size_t flows = 0;

		for (size_t i = 0; i < doc.nsamples; i++)
			flows += strcmp(doc.samples[i].name,
					"flowq_flow_queued_requests") == 0;
		cr_assert_eq(flows, 2);
	}
	/* Nothing completed twice, nothing still owed but A4's. */
	cr_assert_eq(a2.completions + b2.completions + a4.completions + bad.completions,
		     2);
}
