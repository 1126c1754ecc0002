/*
 * A strict parser of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for tests
 * of flowq_metrics_write(). It parses a whole document into families and
 * samples, and rejects anything a scraper could misread.
 *
 * Checks, each reported with its own enum prom_check value and the line:
 *  - syntax: "# HELP name text", "# TYPE name type" (counter, gauge,
 *    histogram, summary, untyped), other "#" lines are comments; samples
 *    "name{label="value",...} value [timestamp]"; names and label names as
 *    the format defines them (label names starting with "__" are reserved);
 *    label values and HELP text valid UTF-8, with only the escapes \\ \" \n
 *    (HELP: \\ and \n); values a decimal float, "+Inf", "-Inf" or "NaN";
 *    every line, the last included, ends in a line feed; no CR.
 *  - every sample's family has a # TYPE line before the sample (stricter
 *    than the format, which allows untyped samples: flowq types all);
 *  - each family is declared (TYPE, HELP) at most once, never after its
 *    first sample, and its samples are contiguous;
 *  - counter names end in "_total";
 *  - histogram samples are name_bucket (with an le label that is a number),
 *    name_sum or name_count; per series (the labels other than le), le is
 *    strictly ascending, counts are non-decreasing, the last bucket is
 *    le="+Inf", and it equals name_count; name_sum and name_count exist;
 *  - no two samples with the same name and label set (in any order), and
 *    no label name twice in one sample.
 *
 * Stricter than Prometheus in one more way: no blanks inside the braces of
 * a label set (flowq writes none). The duplicate and histogram checks are
 * quadratic in the number of samples: this is for test-sized documents.
 */
#ifndef FLOWQ_TEST_PROM_PARSE_H
#define FLOWQ_TEST_PROM_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum prom_type {
	PROM_UNTYPED,
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM,
	PROM_SUMMARY,
};

/** Which check failed (PROM_OK: none). */
enum prom_check {
	PROM_OK = 0,
	/** A malformed line, name, label set, escape, value or timestamp. */
	PROM_SYNTAX,
	/** A sample whose family has no # TYPE line before it. */
	PROM_NO_TYPE,
	/** A second # TYPE or # HELP line for one family. */
	PROM_REDECLARED,
	/** A # TYPE or # HELP line after the family's first sample. */
	PROM_LATE_DECL,
	/** A sample of a family after another family's samples began. */
	PROM_SPLIT_FAMILY,
	/** A counter whose name does not end in _total. */
	PROM_COUNTER_NAME,
	/** One label name twice in one sample. */
	PROM_DUP_LABEL,
	/** A second sample with the same name and label set. */
	PROM_DUPLICATE,
	/** A sample named as its histogram family itself (not _bucket, _sum
	 * or _count; other suffixes belong to no declared family). */
	PROM_BAD_SUFFIX,
	/** A _bucket sample without an le label that is a number. */
	PROM_LE_MISSING,
	/** le not strictly ascending within a series (or a bucket after +Inf). */
	PROM_LE_ORDER,
	/** A bucket count smaller than the one before it in its series. */
	PROM_NOT_CUMULATIVE,
	/** A histogram series without an le="+Inf" bucket. */
	PROM_NO_INF,
	/** A histogram series whose +Inf bucket is not its _count, or that
	 * lacks _count or _sum. */
	PROM_COUNT_MISMATCH,
	/** Out of memory. */
	PROM_NOMEM,
};

struct prom_label {
	char *name;
	/** Unescaped; NUL-terminated (a NUL cannot be written in the format). */
	char *value;
};

struct prom_sample {
	char *name;
	struct prom_label *labels;
	size_t nlabels;
	double value;
	bool has_timestamp;
	int64_t timestamp_ms;
	/** Index of its family in prom_doc.families. */
	size_t family;
	/** 1-based line number. */
	unsigned line;
};

struct prom_family {
	char *name;
	enum prom_type type;
	/** Unescaped HELP text, or NULL if the family has none. */
	char *help;
	unsigned type_line;
};

struct prom_doc {
	struct prom_family *families;
	size_t nfamilies;
	struct prom_sample *samples;
	size_t nsamples;
};

struct prom_error {
	enum prom_check check;
	/** 1-based line of the offending line or sample; 0 if none. */
	unsigned line;
	char msg[256];
};

/**
 * Parse and check @p len bytes of @p text.
 *
 * @param r_doc  receives the document on success (free it with
 *               prom_doc_free()); zeroed on error.
 * @param r_err  receives the first failed check (PROM_OK on success); may
 *               be NULL.
 * @return 0; -EINVAL if a check failed; -ENOMEM.
 */
int
prom_parse(const char *text, size_t len, struct prom_doc *r_doc,
	   struct prom_error *r_err);

/** Free what prom_parse() allocated; @p doc is zeroed. */
void
prom_doc_free(struct prom_doc *doc);

/**
 * The sample named @p name whose label set is exactly the (name, value)
 * pairs given as variadic const char * arguments, ended by NULL (order does
 * not matter), or NULL if there is none.
 */
const struct prom_sample *
prom_find(const struct prom_doc *doc, const char *name, ...);

/** The family named @p name, or NULL. */
const struct prom_family *
prom_family_find(const struct prom_doc *doc, const char *name);

/** The value of label @p name of @p s, or NULL. */
const char *
prom_label(const struct prom_sample *s, const char *name);

/** Human name of @p c ("PROM_LE_ORDER", ...). */
const char *
prom_check_str(enum prom_check c);

#endif /* FLOWQ_TEST_PROM_PARSE_H */
