/*
 * Unit tests for core/metrics.c on its own: the writer runs against a
 * scripted statistics source (the flowq_stats_* functions and
 * flowq_shard_count() below stand in for the engine's), so every value it writes is known exactly. This
 * checks the exposition text itself: family names and types, exact decimal
 * seconds, cumulative buckets, label escaping of arbitrary flow ids, and
 * the -EFAULT/-EIO paths. tests/unit/test_metrics.c checks the same writer
 * end to end through a real engine.
 *
 * Every document is also run through the strict parser
 * (tests/support/prom_parse.h), so format rules (TYPE before samples,
 * contiguous families, _total counters, histogram shape, no duplicate
 * series) are checked on every output.
 */
#define _GNU_SOURCE /* fopencookie() */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>

#include "prom_parse.h"

/* ------------------------------------------------------------------------ */
/* The scripted statistics source                                           */
/* ------------------------------------------------------------------------ */

struct fake_band {
	int32_t priority;
	struct flowq_stats st;
};

struct fake_flow {
	const void *id;
	uint32_t id_len;
	int32_t priority;
	struct flowq_stats st;
};

static struct flowq_stats fake_engine;
static struct fake_band fake_bands[4];
static size_t fake_nbands;
static struct fake_flow fake_flows[8];
static size_t fake_nflows;
/* If > 0: the flow walk number (1-based) from which the last flow is gone,
 * as if it were collected while the writer ran. */
static unsigned fake_flow_vanishes_at_walk;
static unsigned fake_flow_walks;
/* If not 0: what the flow walk fails with before its first flow (the
 * real walk's -ENOMEM when it cannot allocate its snapshot). */
static int fake_flow_err;

/* Any non-NULL pointer: the fakes never look inside the engine. */
static struct flowq_engine *const fake_e = (struct flowq_engine *)&fake_engine;

/* If not 0: what flowq_stats_engine() fails with (the real one fails only
 * for a NULL argument, which the writer checks first: the writer must
 * still pass on whatever it gets). */
static int fake_engine_err;

int
flowq_stats_engine(struct flowq_engine *e, struct flowq_stats *r_stats)
{
	if (e == NULL || r_stats == NULL)
		return -EFAULT;
	if (fake_engine_err != 0)
		return fake_engine_err;
	*r_stats = fake_engine;
	return 0;
}

int
flowq_stats_foreach_band(struct flowq_engine *e, flowq_band_stats_fn *fn, void *ctx)
{
	(void)e;
	for (size_t i = 0; i < fake_nbands; i++) {
		int rc = fn(fake_bands[i].priority, &fake_bands[i].st, ctx);

		if (rc != 0)
			return rc;
	}
	return 0;
}

int
flowq_stats_foreach_flow(struct flowq_engine *e, flowq_flow_stats_fn *fn, void *ctx)
{
	size_t n = fake_nflows;

	(void)e;
	fake_flow_walks++;
	if (fake_flow_err != 0)
		return fake_flow_err;
	if (fake_flow_vanishes_at_walk != 0 &&
	    fake_flow_walks >= fake_flow_vanishes_at_walk)
		n--;
	for (size_t i = 0; i < n; i++) {
		const struct fake_flow *f = &fake_flows[i];
		int rc = fn(f->id, f->id_len, f->priority, &f->st, ctx);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static struct flowq_shard_stats fake_shards[3];
static unsigned fake_nshards = 2;
/* If not 0: what flowq_stats_shard() fails with. */
static int fake_shard_err;

unsigned
flowq_shard_count(const struct flowq_engine *e)
{
	(void)e;
	return fake_nshards;
}

int
flowq_stats_shard(struct flowq_engine *e, unsigned shard, struct flowq_shard_stats *r_stats)
{
	(void)e;
	if (fake_shard_err != 0)
		return fake_shard_err;
	cr_assert_lt(shard, fake_nshards, "the writer asks only for shards that exist");
	*r_stats = fake_shards[shard];
	return 0;
}

static struct flowq_coalesce_stats fake_coalesce;
/* If not 0: what flowq_stats_coalesce() fails with. */
static int fake_coalesce_err;

int
flowq_stats_coalesce(struct flowq_engine *e, struct flowq_coalesce_stats *r_stats)
{
	(void)e;
	if (fake_coalesce_err != 0)
		return fake_coalesce_err;
	*r_stats = fake_coalesce;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *text;
static size_t text_len;
static struct prom_doc doc;

static void
reset(void)
{
	memset(&fake_engine, 0, sizeof(fake_engine));
	memset(fake_bands, 0, sizeof(fake_bands));
	memset(fake_flows, 0, sizeof(fake_flows));
	fake_nbands = fake_nflows = 0;
	fake_flow_vanishes_at_walk = fake_flow_walks = 0;
	fake_engine_err = fake_flow_err = 0;
}

static void
cleanup(void)
{
	free(text);
	text = NULL;
	prom_doc_free(&doc);
}

TestSuite(metrics_format, .init = reset, .fini = cleanup);

/* Write the metrics into memory, then parse them strictly. */
static void
write_and_parse(void)
{
	FILE *f;
	struct prom_error err;

	free(text);
	text = NULL;
	prom_doc_free(&doc);
	f = open_memstream(&text, &text_len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(fake_e, f), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(prom_parse(text, text_len, &doc, &err), 0, "%s line %u: %s\n%s",
		     prom_check_str(err.check), err.line, err.msg, text);
}

static void
assert_has_line(const char *line)
{
	cr_assert_not_null(strstr(text, line), "missing line:\n%s\nin:\n%s", line, text);
}

static double
value_of(const struct prom_sample *s)
{
	cr_assert_not_null(s, "sample not found");
	return s->value;
}

/* Sample count of family member @name whose labels include @label=@value
 * (any label if @label is NULL). */
static size_t
count_samples(const char *name, const char *label, const char *value)
{
	size_t n = 0;

	for (size_t i = 0; i < doc.nsamples; i++) {
		const char *v;

		if (strcmp(doc.samples[i].name, name) != 0)
			continue;
		v = label ? prom_label(&doc.samples[i], label) : NULL;
		if (label == NULL || (v != NULL && strcmp(v, value) == 0))
			n++;
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

Test(metrics_format, null_arguments)
{
	cr_assert_eq(flowq_metrics_write(NULL, stdout), -EFAULT);
	cr_assert_eq(flowq_metrics_write(fake_e, NULL), -EFAULT);
}

Test(metrics_format, every_family_is_declared_typed_and_helped)
{
	static const struct {
		const char *name;
		enum prom_type type;
	} want[] = {
		{"flowq_queued_requests", PROM_GAUGE},
		{"flowq_queued_bytes", PROM_GAUGE},
		{"flowq_inflight_requests", PROM_GAUGE},
		{"flowq_inflight_bytes", PROM_GAUGE},
		{"flowq_requests_total", PROM_COUNTER},
		{"flowq_queue_time_seconds", PROM_HISTOGRAM},
		{"flowq_shard_rounds_total", PROM_COUNTER},
		{"flowq_shard_decided_total", PROM_COUNTER},
		{"flowq_shard_doorbell_intakes_total", PROM_COUNTER},
		{"flowq_shard_sleeps_total", PROM_COUNTER},
		{"flowq_shard_coalesce_waits_total", PROM_COUNTER},
		{"flowq_coalesce_wait_on", PROM_GAUGE},
		{"flowq_coalesce_holds_total", PROM_COUNTER},
		{"flowq_coalesce_dropped_periods_total", PROM_COUNTER},
		{"flowq_band_queued_requests", PROM_GAUGE},
		{"flowq_band_queued_bytes", PROM_GAUGE},
		{"flowq_band_requests_total", PROM_COUNTER},
		{"flowq_band_queue_time_seconds", PROM_HISTOGRAM},
		{"flowq_flow_queued_requests", PROM_GAUGE},
		{"flowq_flow_queued_bytes", PROM_GAUGE},
		{"flowq_flow_requests_total", PROM_COUNTER},
		{"flowq_flow_queue_time_seconds", PROM_HISTOGRAM},
	};

	/* No bands, no flows: every family is still declared once. */
	write_and_parse();
	cr_assert_eq(doc.nfamilies, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct prom_family *f = prom_family_find(&doc, want[i].name);

		cr_assert_not_null(f, "%s", want[i].name);
		cr_assert_eq(f->type, want[i].type, "%s", want[i].name);
		cr_assert_not_null(f->help, "%s has HELP", want[i].name);
		cr_assert_gt(strlen(f->help), 10);
	}
	/* Engine gauges carry no labels: no braces at all. */
	assert_has_line("\nflowq_queued_requests 0\n");
	assert_has_line("\nflowq_inflight_bytes 0\n");
	cr_assert_eq(count_samples("flowq_band_queued_requests", NULL, NULL), 0);
	cr_assert_eq(count_samples("flowq_flow_queued_requests", NULL, NULL), 0);
}

/* One sample per shard and family, labelled shard="k", exact values; a
 * failure to read a shard is the writer's failure. */
Test(metrics_format, shard_counters_are_labelled_by_shard)
{
	fake_nshards = 3;
	fake_shards[0] = (struct flowq_shard_stats){.rounds = 1, .decided = 2, .intakes = 3,
						    .sleeps = 4, .coalesce_waits = 7};
	fake_shards[2] = (struct flowq_shard_stats){.rounds = UINT64_MAX,
						    .decided = 5,
						    .intakes = 0,
						    .sleeps = 6};
	write_and_parse();
	assert_has_line("\nflowq_shard_rounds_total{shard=\"0\"} 1\n");
	assert_has_line("\nflowq_shard_decided_total{shard=\"0\"} 2\n");
	assert_has_line("\nflowq_shard_doorbell_intakes_total{shard=\"0\"} 3\n");
	assert_has_line("\nflowq_shard_sleeps_total{shard=\"0\"} 4\n");
	assert_has_line("\nflowq_shard_coalesce_waits_total{shard=\"0\"} 7\n");
	assert_has_line("\nflowq_shard_coalesce_waits_total{shard=\"2\"} 0\n");
	assert_has_line("\nflowq_shard_rounds_total{shard=\"1\"} 0\n");
	assert_has_line("\nflowq_shard_rounds_total{shard=\"2\"} 18446744073709551615\n");
	assert_has_line("\nflowq_shard_sleeps_total{shard=\"2\"} 6\n");
	cr_assert_eq(count_samples("flowq_shard_decided_total", NULL, NULL), 3);

	FILE *f = tmpfile();
	cr_assert_not_null(f);
	fake_shard_err = -EINVAL;
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EINVAL);
	fake_shard_err = 0;
	fclose(f);
}

/* The controller's state and decisions, exact; a failure to read them is
 * the writer's failure. */
Test(metrics_format, coalescing_controller)
{
	write_and_parse();
	assert_has_line("\nflowq_coalesce_wait_on 0\n");
	assert_has_line("\nflowq_coalesce_holds_total{wait=\"on\"} 0\n");
	assert_has_line("\nflowq_coalesce_holds_total{wait=\"off\"} 0\n");
	assert_has_line("\nflowq_coalesce_dropped_periods_total 0\n");
	fake_coalesce = (struct flowq_coalesce_stats){
		.on = 1, .holds_on = 3, .holds_off = UINT64_MAX, .dropped = 9};
	write_and_parse();
	assert_has_line("\nflowq_coalesce_wait_on 1\n");
	assert_has_line("\nflowq_coalesce_holds_total{wait=\"on\"} 3\n");
	assert_has_line(
		"\nflowq_coalesce_holds_total{wait=\"off\"} 18446744073709551615\n");
	assert_has_line("\nflowq_coalesce_dropped_periods_total 9\n");
	cr_assert_eq(count_samples("flowq_coalesce_holds_total", NULL, NULL), 2);

	FILE *f = tmpfile();
	cr_assert_not_null(f);
	fake_coalesce_err = -EFAULT;
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EFAULT);
	fake_coalesce_err = 0;
	fclose(f);
	fake_coalesce = (struct flowq_coalesce_stats){0};
}

Test(metrics_format, engine_gauges_and_outcomes)
{
	size_t pairs = 0;

	fake_engine.queued = 7;
	fake_engine.queued_bytes = UINT64_MAX; /* printed exactly, not as a double */
	fake_engine.inflight = 3;
	fake_engine.inflight_bytes = 12345;
	fake_engine.outcomes[FLOWQ_DISPATCHED] = 10;
	fake_engine.causes[FLOWQ_DISPATCHED][FLOWQ_CAUSE_NONE] = 10;
	fake_engine.outcomes[FLOWQ_REJECTED_CAPACITY] = 5;
	fake_engine.causes[FLOWQ_REJECTED_CAPACITY][FLOWQ_CAUSE_CAPACITY_BAND] = 2;
	fake_engine.causes[FLOWQ_REJECTED_CAPACITY][FLOWQ_CAUSE_CAPACITY_FLOW] = 3;
	/* A pair flowq_cause_valid_for() forbids: an engine bug, which the
	 * writer must show rather than hide. */
	fake_engine.causes[FLOWQ_DISPATCHED][FLOWQ_CAUSE_SHUTDOWN] = 1;
	write_and_parse();

	assert_has_line("\nflowq_queued_requests 7\n");
	assert_has_line("\nflowq_queued_bytes 18446744073709551615\n");
	assert_has_line("\nflowq_inflight_requests 3\n");
	assert_has_line("\nflowq_inflight_bytes 12345\n");
	assert_has_line(
		"\nflowq_requests_total{outcome=\"dispatched\",cause=\"none\"} 10\n");
	cr_assert_eq(
		value_of(prom_find(&doc, "flowq_requests_total", "outcome",
				   "rejected_capacity", "cause", "capacity_flow", NULL)),
		3.0);
	cr_assert_eq(value_of(prom_find(&doc, "flowq_requests_total", "outcome",
					"dispatched", "cause", "shutdown", NULL)),
		     1.0);
	/* Every valid (outcome, cause) pair exists, zero or not. */
	for (int o = FLOWQ_PENDING + 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
			const struct prom_sample *s = prom_find(
				&doc, "flowq_requests_total", "outcome",
				flowq_outcome_str((enum flowq_outcome)o), "cause",
				flowq_cause_str((enum flowq_cause)c), NULL);

			if (flowq_cause_valid_for((enum flowq_outcome)o,
						  (enum flowq_cause)c)) {
				cr_assert_not_null(s, "outcome %d cause %d", o, c);
				pairs++;
			}
		}
	}
	cr_assert_eq(count_samples("flowq_requests_total", NULL, NULL), pairs + 1,
		     "the valid pairs and the one non-zero invalid pair");
	cr_assert_null(prom_find(&doc, "flowq_requests_total", "outcome", "pending",
				 "cause", "none", NULL),
		       "pending is not an outcome");
}

/* The bucket bounds, exactly: integer nanoseconds as decimal seconds. */
Test(metrics_format, histogram_bounds_are_exact_decimal_seconds)
{
	write_and_parse();
	assert_has_line("\nflowq_queue_time_seconds_bucket{le=\"0.000001023\"} 0\n");
	assert_has_line("\nflowq_queue_time_seconds_bucket{le=\"0.000001279\"} 0\n");
	assert_has_line("\nflowq_queue_time_seconds_bucket{le=\"4398.046511103\"} 0\n");
	assert_has_line("\nflowq_queue_time_seconds_bucket{le=\"+Inf\"} 0\n");
	assert_has_line("\nflowq_queue_time_seconds_sum 0\n");
	assert_has_line("\nflowq_queue_time_seconds_count 0\n");
	cr_assert_eq(count_samples("flowq_queue_time_seconds_bucket", NULL, NULL),
		     FLOWQ_HIST_BUCKETS, "129 bounds and +Inf");
	/* Every finite le is bound(i) / 1e9, in order. */
	for (unsigned i = 0, k = 0; k < doc.nsamples; k++) {
		const struct prom_sample *s = &doc.samples[k];
		char want[64];
		int64_t b;

		if (strcmp(s->name, "flowq_queue_time_seconds_bucket") != 0 ||
		    i == FLOWQ_HIST_BUCKETS - 1)
			continue;
		b = flowq_hist_bound(i);
		snprintf(want, sizeof(want), "%lld.%09lld", (long long)(b / 1000000000),
			 (long long)(b % 1000000000));
		/* want has trailing zeros; the writer trims them. */
		cr_assert_eq(
			strncmp(prom_label(s, "le"), want, strlen(prom_label(s, "le"))),
			0, "bucket %u: le=%s, bound %lld ns", i, prom_label(s, "le"),
			(long long)b);
		cr_assert_eq(strtod(prom_label(s, "le"), NULL), (double)b / 1e9);
		i++;
	}
}

Test(metrics_format, histogram_is_cumulative_and_count_is_the_inf_bucket)
{
	struct flowq_hist *h = &fake_engine.queue_time;

	h->buckets[0] = 2;
	h->buckets[5] = 3;
	h->buckets[FLOWQ_HIST_BUCKETS - 1] = 1; /* open-ended: only in +Inf */
	/* A snapshot taken mid-record: count already bumped, bucket not yet. */
	h->count = 7;
	h->sum_ns = 1500000; /* 1.5 ms */
	write_and_parse();

	for (size_t k = 0; k < doc.nsamples; k++) {
		const struct prom_sample *s = &doc.samples[k];
		double le;

		if (strcmp(s->name, "flowq_queue_time_seconds_bucket") != 0)
			continue;
		le = strtod(prom_label(s, "le"), NULL); /* "+Inf" parses as inf */
		if (le < (double)flowq_hist_bound(5) / 1e9)
			cr_assert_eq(s->value, 2.0, "le=%s", prom_label(s, "le"));
		else if (isinf(le))
			cr_assert_eq(s->value, 6.0,
				     "the open bucket counts only at +Inf");
		else
			cr_assert_eq(s->value, 5.0, "le=%s", prom_label(s, "le"));
	}
	assert_has_line("\nflowq_queue_time_seconds_sum 0.0015\n");
	/* 6, the sum of the buckets, not the snapshot's 7: the format needs
	 * _count == the +Inf bucket (the parser checks that too). */
	assert_has_line("\nflowq_queue_time_seconds_count 6\n");
}

Test(metrics_format, sum_is_exact_for_large_values)
{
	fake_engine.queue_time.sum_ns = UINT64_MAX;
	fake_engine.queue_time.buckets[3] = 1;
	write_and_parse();
	assert_has_line("\nflowq_queue_time_seconds_sum 18446744073.709551615\n");
	fake_engine.queue_time.sum_ns = 2000000000;
	write_and_parse();
	assert_has_line("\nflowq_queue_time_seconds_sum 2\n");
}

Test(metrics_format, bands)
{
	fake_nbands = 2;
	fake_bands[0].priority = 100;
	fake_bands[0].st.queued = 4;
	fake_bands[0].st.queued_bytes = 400;
	fake_bands[0].st.outcomes[FLOWQ_EVICTED_TTL] = 2;
	fake_bands[0].st.causes[FLOWQ_EVICTED_TTL][FLOWQ_CAUSE_DEADLINE_PASSED] = 2;
	fake_bands[0].st.queue_time.buckets[40] = 2;
	fake_bands[0].st.queue_time.count = 2;
	fake_bands[0].st.queue_time.sum_ns = 3;
	fake_bands[1].priority = -7;           /* sheddable */
	fake_bands[1].st.inflight = 987654321; /* not a band metric: never written */
	write_and_parse();

	assert_has_line("\nflowq_band_queued_requests{priority=\"100\"} 4\n");
	assert_has_line("\nflowq_band_queued_bytes{priority=\"100\"} 400\n");
	assert_has_line("\nflowq_band_queued_requests{priority=\"-7\"} 0\n");
	assert_has_line(
		"\nflowq_band_requests_total{priority=\"100\",outcome=\"evicted_ttl\","
		"cause=\"deadline_passed\"} 2\n");
	assert_has_line(
		"\nflowq_band_queue_time_seconds_bucket{priority=\"100\",le=\"+Inf\"} "
		"2\n");
	assert_has_line(
		"\nflowq_band_queue_time_seconds_sum{priority=\"100\"} 0.000000003\n");
	assert_has_line("\nflowq_band_queue_time_seconds_count{priority=\"-7\"} 0\n");
	cr_assert_eq(
		count_samples("flowq_band_queue_time_seconds_bucket", "priority", "-7"),
		FLOWQ_HIST_BUCKETS, "bands get every bucket");
	cr_assert_null(strstr(text, "987654321"), "no in-flight figure per band");
	cr_assert_eq(count_samples("flowq_band_requests_total", "priority", "100"),
		     count_samples("flowq_requests_total", NULL, NULL),
		     "a band has the engine's (outcome, cause) pairs");
}

Test(metrics_format, flows_get_outcomes_and_a_sum_only_histogram)
{
	fake_nflows = 1;
	fake_flows[0].id = "tenant-a";
	fake_flows[0].id_len = 8;
	fake_flows[0].priority = 3;
	fake_flows[0].st.queued = 2;
	fake_flows[0].st.queued_bytes = 20;
	fake_flows[0].st.outcomes[FLOWQ_DISPATCHED] = 5;
	fake_flows[0].st.causes[FLOWQ_DISPATCHED][FLOWQ_CAUSE_NONE] = 5;
	fake_flows[0].st.queue_time.buckets[60] = 5;
	fake_flows[0].st.queue_time.count = 5;
	fake_flows[0].st.queue_time.sum_ns = 5000000000u;
	write_and_parse();

	assert_has_line(
		"\nflowq_flow_queued_requests{flow=\"tenant-a\",priority=\"3\"} 2\n");
	assert_has_line(
		"\nflowq_flow_queued_bytes{flow=\"tenant-a\",priority=\"3\"} 20\n");
	assert_has_line("\nflowq_flow_requests_total{flow=\"tenant-a\",priority=\"3\","
			"outcome=\"dispatched\"} 5\n");
	cr_assert_eq(count_samples("flowq_flow_requests_total", NULL, NULL),
		     FLOWQ_OUTCOME_COUNT - 1, "one per outcome, no cause label");
	cr_assert_null(prom_find(&doc, "flowq_flow_requests_total", "flow", "tenant-a",
				 "priority", "3", "outcome", "dispatched", "cause",
				 "none", NULL));
	assert_has_line("\nflowq_flow_queue_time_seconds_bucket{flow=\"tenant-a\","
			"priority=\"3\",le=\"+Inf\"} 5\n");
	assert_has_line(
		"\nflowq_flow_queue_time_seconds_sum{flow=\"tenant-a\",priority=\"3\"} "
		"5\n");
	assert_has_line("\nflowq_flow_queue_time_seconds_count{flow=\"tenant-a\","
			"priority=\"3\"} 5\n");
	cr_assert_eq(count_samples("flowq_flow_queue_time_seconds_bucket", NULL, NULL), 1,
		     "a flow has only the +Inf bucket");
}

/* The escaping scheme of core/metrics.c ("Label values"), for each byte. */
static void
expected_label_text(const unsigned char *id, size_t n, char *raw, char *decoded)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = id[i];

		if (c == '"') {
			raw += sprintf(raw, "\\\"");
			decoded += sprintf(decoded, "\"");
		} else if (c == '\n') {
			raw += sprintf(raw, "\\n");
			decoded += sprintf(decoded, "\n");
		} else if (c >= 0x20 && c <= 0x7e && c != '\\') {
			*raw++ = (char)c;
			*decoded++ = (char)c;
		} else {
			raw += sprintf(raw, "\\\\x%02x", c);
			decoded += sprintf(decoded, "\\x%02x", c);
		}
	}
	*raw = *decoded = '\0';
}

Test(metrics_format, flow_ids_of_every_byte_are_escaped)
{
	static unsigned char id[256];
	static char raw[256 * 5 + 1], decoded[256 * 4 + 1], line[2048];
	const struct prom_sample *s;

	for (unsigned i = 0; i < 256; i++)
		id[i] = (unsigned char)i;
	fake_nflows = 1;
	fake_flows[0].id = id;
	fake_flows[0].id_len = 256;
	fake_flows[0].priority = 0;
	write_and_parse();

	expected_label_text(id, 256, raw, decoded);
	snprintf(line, sizeof(line),
		 "\nflowq_flow_queued_requests{flow=\"%s\",priority=\"0\"} 0\n", raw);
	assert_has_line(line);
	s = prom_find(&doc, "flowq_flow_queued_requests", "flow", decoded, "priority",
		      "0", NULL);
	cr_assert_not_null(s, "the parsed label value is the documented text");
	/* Spot checks of the scheme, independent of expected_label_text(). */
	cr_assert_not_null(strstr(raw, "!\\\"#"), "'\"' is \\\"");
	cr_assert_not_null(strstr(raw, "[\\\\x5c]"), "'\\' is \\\\x5c");
	cr_assert_not_null(strstr(raw, "\\\\x09\\n\\\\x0b"), "tab, newline, VT");
	cr_assert_not_null(strstr(raw, "}~\\\\x7f\\\\x80"), "DEL and high bytes");
	cr_assert_eq(strncmp(raw, "\\\\x00\\\\x01", 10), 0, "NUL is escaped");
}

/*
 * Distinct ids must give distinct label values. With the naive scheme (a
 * '\' written as \\) the byte 0xff and the four characters "\xff" would
 * both become the value \xff: two series with one label set, which the
 * parser rejects as PROM_DUPLICATE.
 */
Test(metrics_format, escaping_is_one_to_one)
{
	const struct prom_sample *a, *b;

	fake_nflows = 2;
	fake_flows[0].id = "\xff";
	fake_flows[0].id_len = 1;
	fake_flows[1].id = "\\xff";
	fake_flows[1].id_len = 4;
	write_and_parse(); /* would fail on a duplicate series */
	a = prom_find(&doc, "flowq_flow_queued_requests", "flow", "\\xff", "priority",
		      "0", NULL);
	b = prom_find(&doc, "flowq_flow_queued_requests", "flow", "\\x5cxff", "priority",
		      "0", NULL);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_neq(a, b);
}

Test(metrics_format, flow_gone_between_walks_still_gives_a_valid_document)
{
	fake_nflows = 2;
	fake_flows[0].id = "a";
	fake_flows[0].id_len = 1;
	fake_flows[1].id = "b";
	fake_flows[1].id_len = 1;
	fake_flows[1].st.queue_time.buckets[2] = 1;
	/* Collected after the first two flow families were written. */
	fake_flow_vanishes_at_walk = 3;
	write_and_parse();
	cr_assert_not_null(prom_find(&doc, "flowq_flow_queued_bytes", "flow", "b",
				     "priority", "0", NULL));
	cr_assert_null(prom_find(&doc, "flowq_flow_queue_time_seconds_count", "flow", "b",
				 "priority", "0", NULL));
	cr_assert_eq(fake_flow_walks, 4, "one walk per flow family");
}

/* A write error must come back as -EIO, also when stdio only sees it when
 * it flushes its buffer (/dev/full fails every write(2) with ENOSPC). */
Test(metrics_format, write_errors_give_eio)
{
	FILE *f = fopen("/dev/full", "w");

	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EIO, "buffered: caught at a flush");
	fclose(f);

	f = fopen("/dev/full", "w");
	cr_assert_not_null(f);
	setvbuf(f, NULL, _IONBF, 0);
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EIO, "unbuffered: the first write");
	fclose(f);

	f = fopen("/dev/null", "r");
	cr_assert_not_null(f);
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EIO,
		     "a stream not open for writing");
	fclose(f);
}

/* A small output fits stdio's buffer entirely: without the writer's own
 * fflush() the failure would surface only at the caller's fclose(). */
Test(metrics_format, write_error_hidden_in_the_buffer_gives_eio)
{
	static char buf[1 << 20];
	FILE *f = fopen("/dev/full", "w");

	cr_assert_not_null(f);
	cr_assert_eq(setvbuf(f, buf, _IOFBF, sizeof(buf)), 0);
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EIO);
	fclose(f);
}

/* The walk stops at the first failed write instead of formatting every
 * remaining flow into a dead stream. */
Test(metrics_format, write_error_stops_the_walks)
{
	FILE *f;

	fake_nflows = 1;
	fake_flows[0].id = "a";
	fake_flows[0].id_len = 1;
	f = fopen("/dev/full", "w");
	cr_assert_not_null(f);
	setvbuf(f, NULL, _IONBF, 0);
	cr_assert_eq(flowq_metrics_write(fake_e, f), -EIO);
	cr_assert_eq(fake_flow_walks, 0, "failed in the engine families: no flow walk");
	fclose(f);
}

/* The engine's statistics cannot be read: that error, and not a word
 * written. */
Test(metrics_format, engine_stats_error_is_returned_before_any_write)
{
	FILE *f = open_memstream(&text, &text_len);

	cr_assert_not_null(f);
	fake_engine_err = -ENOMEM;
	cr_assert_eq(flowq_metrics_write(fake_e, f), -ENOMEM);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(text_len, 0, "wrote:\n%s", text);
}

/* The flow walk cannot allocate its snapshot: -ENOMEM (flowq.h: part of
 * the text may have been written), and no later flow family is started. */
Test(metrics_format, flow_walk_error_is_returned)
{
	FILE *f = open_memstream(&text, &text_len);

	cr_assert_not_null(f);
	fake_nflows = 1;
	fake_flows[0].id = "a";
	fake_flows[0].id_len = 1;
	fake_flow_err = -ENOMEM;
	cr_assert_eq(flowq_metrics_write(fake_e, f), -ENOMEM);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(fake_flow_walks, 1, "stopped at the first flow family");
	cr_assert_not_null(strstr(text, "# TYPE flowq_requests_total counter\n"),
			   "the engine families came first:\n%s", text);
	cr_assert_null(strstr(text, "flow=\"a\""), "no flow sample:\n%s", text);
}

/*
 * A stream that takes whole writes while its byte budget lasts, then fails
 * each write (ENOSPC, as a full disk). Unbuffered, every fputs(), putc()
 * and printf() of the writer reaches it as one write, so a budget that ends
 * at a write's start fails exactly that write. It fails by taking nothing
 * (0) rather than -1: stdio sets the error flag either way and the call
 * returns EOF, but after a -1 glibc tries the first byte once more, which
 * would blur the count of writes made.
 */
struct budget_stream {
	size_t budget;
	char *text; /* what was taken */
	size_t len, cap;
	size_t *sizes; /* the size of each write asked for */
	size_t nwrites, sizes_cap;
};

static ssize_t
budget_write(void *cookie, const char *buf, size_t n)
{
	struct budget_stream *b = cookie;

	if (b->nwrites == b->sizes_cap) {
		b->sizes_cap = b->sizes_cap ? 2 * b->sizes_cap : 256;
		b->sizes = realloc(b->sizes, b->sizes_cap * sizeof(*b->sizes));
		cr_assert_not_null(b->sizes);
	}
	b->sizes[b->nwrites++] = n;
	if (n > b->budget - b->len) {
		errno = ENOSPC;
		return 0;
	}
	if (b->len + n > b->cap) {
		b->cap = 2 * (b->len + n);
		b->text = realloc(b->text, b->cap);
		cr_assert_not_null(b->text);
	}
	memcpy(b->text + b->len, buf, n);
	b->len += n;
	return (ssize_t)n;
}

/* Write the metrics to a budget stream of @p budget bytes. */
static int
write_with_budget(struct budget_stream *b, size_t budget)
{
	static const cookie_io_functions_t io = {.write = budget_write};
	FILE *f;
	int rc;

	free(b->text);
	free(b->sizes);
	memset(b, 0, sizeof(*b));
	b->budget = budget;
	f = fopencookie(b, "w", io);
	cr_assert_not_null(f);
	cr_assert_eq(setvbuf(f, NULL, _IONBF, 0), 0);
	rc = flowq_metrics_write(fake_e, f);
	fclose(f);
	return rc;
}

/*
 * Whichever write fails (a header's fputs(), a label's putc(), a value's
 * printf(), the shard, band and flow families alike) the writer returns
 * -EIO, and writes nothing after the failed write: the text taken is the
 * start of the full document, up to that write.
 */
Test(metrics_format, every_failed_write_gives_eio_and_ends_the_output)
{
	static const char id[] = "a\"b\\c\nd";
	struct budget_stream ref = {0}, b = {0};
	size_t before = 0, ones = 0;

	fake_nbands = 1;
	fake_bands[0].priority = 3;
	fake_nflows = 1;
	fake_flows[0].id = id;
	fake_flows[0].id_len = sizeof(id) - 1;
	cr_assert_eq(write_with_budget(&ref, SIZE_MAX), 0);
	cr_assert_gt(ref.nwrites, 100);
	for (size_t k = 0; k < ref.nwrites; k++) {
		cr_assert_eq(write_with_budget(&b, before), -EIO,
			     "write %zu of %zu failed", k, ref.nwrites);
		cr_assert_eq(b.nwrites, k + 1, "write %zu failed: %zu writes made", k,
			     b.nwrites);
		cr_assert_eq(b.len, before);
		cr_assert(before == 0 || memcmp(b.text, ref.text, before) == 0,
			  "write %zu failed: the text differs from the document's start",
			  k);
		ones += ref.sizes[k] == 1;
		before += ref.sizes[k];
	}
	cr_assert_eq(before, ref.len);
	cr_assert_gt(ones, 0, "single characters (putc) failed too");
	free(ref.text);
	free(ref.sizes);
	free(b.text);
	free(b.sizes);
}
