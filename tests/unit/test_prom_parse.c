/*
 * Unit tests for tests/support/prom_parse.c, the strict exposition-format
 * parser the metrics tests rely on. A parser that accepted everything would
 * make those tests pass vacuously, so every check is shown to fire on a
 * minimal bad document, next to the good document it was broken from.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "prom_parse.h"

static struct prom_doc doc;

static void
cleanup(void)
{
	prom_doc_free(&doc);
}

TestSuite(prom_parse, .fini = cleanup);

static int
parse(const char *text, struct prom_error *err)
{
	prom_doc_free(&doc);
	return prom_parse(text, strlen(text), &doc, err);
}

/* @text must fail with check @want (and the message names the line). */
static void
assert_fails(const char *text, enum prom_check want, unsigned line)
{
	struct prom_error err;
	int rc = parse(text, &err);

	cr_assert_eq(rc, -EINVAL, "accepted a bad document (want %s):\n%s",
		     prom_check_str(want), text);
	cr_assert_eq(err.check, want, "got %s (%s), want %s", prom_check_str(err.check),
		     err.msg, prom_check_str(want));
	cr_assert_eq(err.line, line, "line %u, want %u (%s)", err.line, line, err.msg);
	cr_assert_eq(doc.nsamples, 0, "no document on error");
}

static void
assert_parses(const char *text)
{
	struct prom_error err;
	int rc = parse(text, &err);

	cr_assert_eq(rc, 0, "rejected a good document: %s line %u: %s\n%s",
		     prom_check_str(err.check), err.line, err.msg, text);
	cr_assert_eq(err.check, PROM_OK);
}

/* A small document using every construct flowq writes. */
static const char good[] = "# HELP q_total Requests, \\\\ and \\n escaped.\n"
			   "# TYPE q_total counter\n"
			   "q_total{outcome=\"dispatched\",cause=\"none\"} 3\n"
			   "q_total{outcome=\"evicted\",cause=\"none\"} 0\n"
			   "# a comment\n"
			   "\n"
			   "# TYPE g gauge\n"
			   "g 1.5e3\n"
			   "# TYPE h_seconds histogram\n"
			   "# HELP h_seconds Latency.\n"
			   "h_seconds_bucket{p=\"1\",le=\"0.001\"} 1\n"
			   "h_seconds_bucket{p=\"1\",le=\"0.01\"} 1\n"
			   "h_seconds_bucket{p=\"1\",le=\"+Inf\"} 2\n"
			   "h_seconds_sum{p=\"1\"} 0.5\n"
			   "h_seconds_count{p=\"1\"} 2\n"
			   "h_seconds_bucket{le=\"+Inf\",p=\"2\"} 0\n"
			   "h_seconds_count{p=\"2\"} 0\n"
			   "h_seconds_sum{p=\"2\"} 0\n"
			   "# TYPE f gauge\n"
			   "f{id=\"a\\\"b\\\\c\\nd\"} NaN 1700000000000\n"
			   "f{id=\"x\",} -Inf\n";

Test(prom_parse, good_document)
{
	const struct prom_sample *s;
	const struct prom_family *f;

	assert_parses(good);
	cr_assert_eq(doc.nfamilies, 4);
	cr_assert_eq(doc.nsamples, 13);
	f = prom_family_find(&doc, "q_total");
	cr_assert_not_null(f);
	cr_assert_eq(f->type, PROM_COUNTER);
	cr_assert_str_eq(f->help, "Requests, \\ and \n escaped.");
	f = prom_family_find(&doc, "h_seconds");
	cr_assert_eq(f->type, PROM_HISTOGRAM);
	cr_assert_str_eq(f->help, "Latency.");
	cr_assert_null(prom_family_find(&doc, "g")->help);

	s = prom_find(&doc, "q_total", "cause", "none", "outcome", "dispatched", NULL);
	cr_assert_not_null(s, "labels match in any order");
	cr_assert_eq(s->value, 3.0);
	cr_assert_null(prom_find(&doc, "q_total", "outcome", "dispatched", NULL),
		       "prom_find wants the exact label set");
	cr_assert_eq(prom_find(&doc, "g", NULL)->value, 1500.0);
	s = prom_find(&doc, "h_seconds_bucket", "p", "1", "le", "0.01", NULL);
	cr_assert_not_null(s);
	cr_assert_eq(s->line, 12);
	cr_assert_eq(doc.families[s->family].type, PROM_HISTOGRAM);
	s = prom_find(&doc, "f", "id", "a\"b\\c\nd", NULL);
	cr_assert_not_null(s, "label escapes are undone");
	cr_assert(isnan(s->value));
	cr_assert(s->has_timestamp);
	cr_assert_eq(s->timestamp_ms, 1700000000000);
	s = prom_find(&doc, "f", "id", "x", NULL);
	cr_assert_not_null(s, "a trailing comma in a label set is allowed");
	cr_assert(isinf(s->value) && s->value < 0);
	cr_assert_str_eq(prom_label(s, "id"), "x");
	cr_assert_null(prom_label(s, "nope"));
}

Test(prom_parse, empty_document_and_families_without_samples)
{
	assert_parses("");
	cr_assert_eq(doc.nfamilies, 0);
	assert_parses("# HELP a_total A.\n# TYPE a_total counter\n");
	cr_assert_eq(doc.nfamilies, 1);
	cr_assert_eq(doc.nsamples, 0);
}

Test(prom_parse, values)
{
	assert_parses(
		"# TYPE g gauge\ng{a=\"1\"} +Inf\ng{a=\"2\"} -0.5e-3\ng{a=\"3\"} .5\n"
		"g{a=\"4\"} 7.\ng{a=\"5\"} 1E+2\n");
	cr_assert_eq(prom_find(&doc, "g", "a", "2", NULL)->value, -0.0005);
	cr_assert_eq(prom_find(&doc, "g", "a", "5", NULL)->value, 100.0);
	assert_fails("# TYPE g gauge\ng 0x10\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng 1e\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng inf\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng 1 2 3\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng 1 1.5\n", PROM_SYNTAX, 2);
}

Test(prom_parse, syntax_errors)
{
	assert_fails("# TYPE g gauge\ng 1", PROM_SYNTAX, 2); /* no final line feed */
	assert_fails("# TYPE g gauge\r\ng 1\n", PROM_SYNTAX, 1);
	assert_fails("# TYPE g gauge\n9g 1\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng{a=\"x\\t\"} 1\n", PROM_SYNTAX,
		     2);                                              /* bad escape */
	assert_fails("# TYPE g gauge\ng{a=\"x} 1\n", PROM_SYNTAX, 2); /* unterminated */
	assert_fails("# TYPE g gauge\ng{a=x} 1\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng{a=\"x\" b=\"y\"} 1\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng{ a=\"x\"} 1\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng{__a=\"x\"} 1\n", PROM_SYNTAX, 2);
	assert_fails("# TYPE g gauge\ng{a=\"\xff\"} 1\n", PROM_SYNTAX, 2); /* not UTF-8 */
	assert_fails("# TYPE g gauge\ng{a=\"\xc0\xaf\"} 1\n", PROM_SYNTAX,
		     2); /* overlong */
	assert_fails("# TYPE g gaug\n", PROM_SYNTAX, 1);
	assert_fails("# TYPE g gauge extra\n", PROM_SYNTAX, 1);
	assert_fails("# HELP g a \\t b\n", PROM_SYNTAX, 1);
	/* Valid UTF-8 is fine in a label value. */
	assert_parses("# TYPE g gauge\ng{a=\"\xc3\xa9\"} 1\n");
}

Test(prom_parse, sample_without_type)
{
	assert_parses("# TYPE g gauge\ng 1\n");
	assert_fails("g 1\n", PROM_NO_TYPE, 1);
	assert_fails("# HELP g G.\ng 1\n", PROM_NO_TYPE, 2);
	/* TYPE after the sample is too late: the sample had none before it. */
	assert_fails("g 1\n# TYPE g gauge\n", PROM_NO_TYPE, 1);
	/* A gauge's name plus _count is not part of it. */
	assert_fails("# TYPE g gauge\ng_count 1\n", PROM_NO_TYPE, 2);
}

Test(prom_parse, family_declared_twice)
{
	assert_fails("# TYPE g gauge\n# TYPE g gauge\ng 1\n", PROM_REDECLARED, 2);
	assert_fails("# HELP g A.\n# HELP g B.\n# TYPE g gauge\n", PROM_REDECLARED, 2);
}

Test(prom_parse, declaration_after_samples)
{
	assert_fails("# TYPE g gauge\ng 1\n# HELP g G.\n", PROM_LATE_DECL, 3);
	assert_fails("# TYPE g gauge\ng 1\n# TYPE g gauge\n", PROM_LATE_DECL, 3);
}

Test(prom_parse, family_split_by_another)
{
	assert_parses("# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\n");
	assert_fails("# TYPE a gauge\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n",
		     PROM_SPLIT_FAMILY, 5);
}

Test(prom_parse, counter_name_without_total)
{
	assert_parses("# TYPE requests_total counter\nrequests_total 1\n");
	assert_fails("# TYPE requests counter\nrequests 1\n", PROM_COUNTER_NAME, 1);
}

Test(prom_parse, duplicate_label_in_one_sample)
{
	assert_fails("# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n", PROM_DUP_LABEL, 2);
}

Test(prom_parse, duplicate_sample)
{
	assert_parses("# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{a=\"1\",b=\"3\"} 1\n");
	assert_fails("# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 2\n",
		     PROM_DUPLICATE, 3);
	assert_fails("# TYPE g gauge\ng 1\ng 1\n", PROM_DUPLICATE, 3);
}

/* A histogram family with one series, whose lines the bad variants change. */
#define H_HEAD "# TYPE h histogram\n"

Test(prom_parse, histogram_sample_with_a_bad_suffix)
{
	assert_fails(H_HEAD "h 1\n", PROM_BAD_SUFFIX, 2);
	/* Another suffix is not part of the histogram at all. */
	assert_fails(H_HEAD "h_total 1\n", PROM_NO_TYPE, 2);
}

Test(prom_parse, histogram_bucket_without_le)
{
	assert_fails(H_HEAD "h_bucket 1\n", PROM_LE_MISSING, 2);
	assert_fails(H_HEAD "h_bucket{le=\"fast\"} 1\n", PROM_LE_MISSING, 2);
	assert_fails(H_HEAD "h_bucket{le=\"NaN\"} 1\n", PROM_LE_MISSING, 2);
}

Test(prom_parse, histogram_le_not_ascending)
{
	assert_parses(H_HEAD "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\n"
			     "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n");
	assert_fails(H_HEAD "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
			    "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		     PROM_LE_ORDER, 3);
	/* Equal le is not ascending either (and not a duplicate: "1" != "1.0"). */
	assert_fails(H_HEAD "h_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 1\n"
			    "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		     PROM_LE_ORDER, 3);
	/* Nothing after +Inf. */
	assert_fails(H_HEAD "h_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"5\"} 1\n"
			    "h_sum 1\nh_count 1\n",
		     PROM_LE_ORDER, 3);
}

Test(prom_parse, histogram_not_cumulative)
{
	assert_fails(H_HEAD "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
			    "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
		     PROM_NOT_CUMULATIVE, 3);
}

Test(prom_parse, histogram_without_inf)
{
	assert_fails(H_HEAD "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", PROM_NO_INF, 2);
	/* _sum and _count alone are a series without buckets. */
	assert_fails(H_HEAD "h_sum 1\nh_count 1\n", PROM_NO_INF, 2);
}

Test(prom_parse, histogram_count_mismatch)
{
	assert_fails(H_HEAD "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
		     PROM_COUNT_MISMATCH, 2);
	assert_fails(H_HEAD "h_bucket{le=\"+Inf\"} 2\nh_sum 1\n", PROM_COUNT_MISMATCH, 2);
	assert_fails(H_HEAD "h_bucket{le=\"+Inf\"} 2\nh_count 2\n", PROM_COUNT_MISMATCH,
		     2);
	/* Series are told apart by their other labels: b's count is checked
	 * against b's +Inf, not a's. */
	assert_fails(H_HEAD "h_bucket{s=\"a\",le=\"+Inf\"} 2\nh_sum{s=\"a\"} 1\n"
			    "h_count{s=\"a\"} 2\nh_bucket{s=\"b\",le=\"+Inf\"} 5\n"
			    "h_sum{s=\"b\"} 1\nh_count{s=\"b\"} 2\n",
		     PROM_COUNT_MISMATCH, 5);
}

Test(prom_parse, check_names_are_distinct)
{
	/* The tests above tell checks apart by these names. */
	for (int a = PROM_OK; a <= PROM_NOMEM; a++)
		for (int b = a + 1; b <= PROM_NOMEM; b++)
			cr_assert_str_neq(prom_check_str((enum prom_check)a),
					  prom_check_str((enum prom_check)b));
	cr_assert_str_eq(prom_check_str((enum prom_check)999), "unknown");
}
