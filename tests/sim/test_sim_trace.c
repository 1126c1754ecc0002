/*
 * test_sim_trace: the CSV trace loader (tools/flowq-sim/trace.c): both time
 * formats, the column mapping, the three assignments, and every error
 * with its file and line.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "sim.h"
#include "sim_test_spec.h"

#define DATA FLOWQ_SIM_TESTDATA_DIR

/* gold, silver, bronze-0, bronze-1: all TRACE, shares 1, 1, 2, 2 (per
 * flow). */
static void
trace_spec(struct tspec *t, const char *path, enum sim_trace_assign assign)
{
	tspec_init(t);
	t->s.duration_ns = 100 * SEC;
	t->s.has_trace = true;
	t->s.trace = (struct sim_trace_spec){.path = (char *)path,
					     .time_column = "TIMESTAMP",
					     .time_scale = 1,
					     .cost_column = "ContextTokens",
					     .bytes_per_unit = 4,
					     .service_column = "GeneratedTokens",
					     .service_per_unit_ns = 1000,
					     .service_base_ns = 5,
					     .assign = assign,
					     .assign_column = "Tenant"};
	const char *ids[] = {"gold", "silver", "bronze"};
	for (int i = 0; i < 3; i++) {
		struct sim_flow_spec *f = tspec_flow(t, ids[i], 3 - i);
		f->arrival.kind = SIM_ARRIVAL_TRACE;
		f->arrival.share = i == 2 ? 2 : 1;
		f->count = i == 2 ? 2 : 1;
	}
}

static void
load_ok(const struct sim_spec *s, struct sim_trace *tr)
{
	char err[512] = "";
	int rc = sim_trace_load(s, tr, err, sizeof(err));
	cr_assert_eq(rc, 0, "sim_trace_load: %d %s", rc, err);
}

Test(sim_trace, date_format_maps_every_column)
{
	struct tspec t;
	trace_spec(&t, DATA "/trace_date.csv", SIM_ASSIGN_COLUMN);
	struct sim_trace tr;
	load_ok(&t.s, &tr);
	cr_assert_eq(tr.nrows, 12);
	/* Row 1 (line 2) is time 0; line 6 (after a blank line) is
	 * 46.6805900 -> 47.1234567: +0.4428667 s. */
	cr_assert_eq(tr.rows[0].t_ns, 0);
	cr_assert_eq(tr.rows[0].bytes, 374 * 4);
	cr_assert_eq(tr.rows[0].service_ns, 5 + 44 * 1000);
	cr_assert_eq(tr.rows[0].flow, 0);
	cr_assert_eq(tr.rows[1].t_ns, 100000000);
	cr_assert_eq(tr.rows[1].flow, 1);
	cr_assert_eq(tr.rows[3].t_ns, 442866700);
	cr_assert_eq(tr.rows[3].flow, 1); /* "silver", quoted */
	/* Two rows at the same instant: sorted by flow, bronze-0 first. */
	cr_assert_eq(tr.rows[4].t_ns, tr.rows[5].t_ns);
	cr_assert_eq(tr.rows[4].flow, 2);
	cr_assert_eq(tr.rows[5].flow, 3);
	cr_assert_eq(tr.rows[5].bytes, 1020 * 4);
	cr_assert_eq(tr.rows[4].service_ns, 5); /* 0 generated tokens */
	/* 49.9999999 - 46.6805900 = 3.3194099 s; the next is 200 ns later. */
	cr_assert_eq(tr.rows[6].t_ns, 3319409900);
	cr_assert_eq(tr.rows[7].t_ns, 3319410100);
	cr_assert_eq(tr.rows[11].t_ns, 20 * SEC);
	for (size_t i = 1; i < tr.nrows; i++)
		cr_assert_leq(tr.rows[i - 1].t_ns, tr.rows[i].t_ns);
	sim_trace_free(&tr);
}

Test(sim_trace, seconds_format_scale_start_and_duration)
{
	struct tspec t;
	trace_spec(&t, DATA "/trace_seconds.csv", SIM_ASSIGN_HASH);
	t.s.trace.time_column = "time";
	t.s.trace.cost_column = "prompt";
	t.s.trace.service_column = NULL;
	t.s.trace.time_scale = 2;
	t.s.trace.start_ns = 500 * MS; /* skips 12.5 (rel 0): starts at 12.75 */
	t.s.duration_ns = 4 * SEC;     /* keeps rel - 0.5 < 8 s: up to 20 */
	struct sim_trace tr;
	load_ok(&t.s, &tr);
	/* rel = time - 12.5 s; kept from rel 0.5 s (12.75 is skipped); t =
	 * (rel - 0.5 s) / 2: 13 -> 0, 13.000000001 -> 0.5 ns, rounded half
	 * away from zero to 1 ns, 13.5 -> 0.25 s, 14.25 -> 0.625 s, 15 -> 1 s,
	 * 16 -> 1.5 s, 17.5 -> 2.25 s, 20 -> 3.5 s; 22.125 (4.5625 s) and 30
	 * are past the duration. */
	cr_assert_eq(tr.nrows, 8);
	int64_t want[] = {0,         1,         250 * MS,  625 * MS,
			  1000 * MS, 1500 * MS, 2250 * MS, 3500 * MS};
	uint64_t bytes[] = {300, 400, 600, 500, 700, 800, 900, 1000};
	for (size_t i = 0; i < 8; i++) {
		cr_assert_eq(tr.rows[i].t_ns, want[i], "row %zu: %lld", i,
			     (long long)tr.rows[i].t_ns);
		cr_assert_eq(tr.rows[i].bytes, bytes[i] * 4);
		cr_assert_eq(tr.rows[i].service_ns, -1);
		cr_assert_lt(tr.rows[i].flow, 4);
	}
	/* hash: the same assignment for another seed. */
	struct sim_trace tr2;
	t.s.seed = 99;
	load_ok(&t.s, &tr2);
	cr_assert_eq(tr2.nrows, tr.nrows);
	for (size_t i = 0; i < tr.nrows; i++)
		cr_assert_eq(tr2.rows[i].flow, tr.rows[i].flow);
	sim_trace_free(&tr);
	sim_trace_free(&tr2);
}

/* Weighted and hash assignments follow the shares (1:1:2:2 per flow) and
 * give only TRACE flows; weighted depends on the seed. */
Test(sim_trace, assignment_follows_the_shares)
{
	char path[] = "/tmp/flowq-sim-traceXXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs("TIMESTAMP,ContextTokens,GeneratedTokens,Tenant\n", f);
	for (int i = 0; i < 12000; i++)
		fprintf(f, "%d.%03d,1,1,x\n", i / 1000, i % 1000);
	fclose(f);
	for (int mode = 0; mode < 2; mode++) {
		struct tspec t;
		trace_spec(&t, path, mode ? SIM_ASSIGN_HASH : SIM_ASSIGN_WEIGHTED);
		/* A Poisson flow in between: never assigned. */
		struct sim_flow_spec *p = tspec_flow(&t, "poisson", 0);
		(void)p;
		struct sim_trace tr;
		load_ok(&t.s, &tr);
		cr_assert_eq(tr.nrows, 12000);
		size_t n[5] = {0};
		for (size_t i = 0; i < tr.nrows; i++)
			n[tr.rows[i].flow]++;
		cr_assert_eq(n[4], 0);
		/* Expected 2000, 2000, 4000, 4000; sd < 60. */
		for (int k = 0; k < 4; k++) {
			double want = k < 2 ? 2000 : 4000;
			cr_assert((double)n[k] > want - 300 && (double)n[k] < want + 300,
				  "mode %d flow %d: %zu", mode, k, n[k]);
		}
		t.s.seed = 2;
		struct sim_trace tr2;
		load_ok(&t.s, &tr2);
		size_t diff = 0;
		for (size_t i = 0; i < tr.nrows; i++)
			diff += tr.rows[i].flow != tr2.rows[i].flow;
		if (mode == 0)
			cr_assert_gt(diff, 1000);
		else
			cr_assert_eq(diff, 0);
		sim_trace_free(&tr);
		sim_trace_free(&tr2);
	}
	unlink(path);
}

/* Load @p text as a trace (column assignment) and expect @p rc with
 * ":<line>: " and @p what in the message. */
static void
expect_error_n(const char *text, size_t len, int want_rc, int line, const char *what)
{
	char path[] = "/tmp/flowq-sim-traceXXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fwrite(text, 1, len, f);
	fclose(f);
	struct tspec t;
	trace_spec(&t, path, SIM_ASSIGN_COLUMN);
	struct sim_flow_spec *p = tspec_flow(&t, "poisson", 0);
	(void)p;
	struct sim_trace tr;
	char err[512] = "";
	int rc = sim_trace_load(&t.s, &tr, err, sizeof(err));
	unlink(path);
	cr_assert_eq(rc, want_rc, "rc %d (%s) for:\n%s", rc, err, text);
	char loc[64];
	snprintf(loc, sizeof(loc), "%s:%d: ", path, line);
	cr_assert(strstr(err, loc) == err, "message \"%s\" does not start with %s", err,
		  loc);
	cr_assert(strstr(err, what), "message \"%s\" lacks \"%s\"", err, what);
	cr_assert_null(tr.rows);
	cr_assert_eq(tr.nrows, 0);
}

/* A string literal, NULs included. */
#define expect_error(text, rc, line, what)                                               \
	expect_error_n(text, sizeof(text) - 1, rc, line, what)

#define HDR "TIMESTAMP,ContextTokens,GeneratedTokens,Tenant\n"

Test(sim_trace, errors_name_the_file_and_line)
{
	expect_error("", -EINVAL, 0, "empty file");
	expect_error("\n\n", -EINVAL, 2, "empty file");
	expect_error("time,ContextTokens,GeneratedTokens,Tenant\n1,1,1,gold\n", -EINVAL,
		     1, "no column \"TIMESTAMP\" (trace.time_column)");
	expect_error(
		"TIMESTAMP,ContextTokens,Tenant\n1,1,gold\n", -EINVAL, 1,
		"no column \"GeneratedTokens\" (trace.service_column); the header has "
		"\"TIMESTAMP\", \"ContextTokens\", \"Tenant\"");
	expect_error(HDR "1,1,1,gold\n2,1,1\n", -EINVAL, 3, "3 fields; the header has 4");
	expect_error(HDR "1,1,1,gold\n2,1,1,gold,x\n", -EINVAL, 3, "5 fields");
	expect_error(HDR "1,1,1,gold\nsoon,1,1,gold\n", -EINVAL, 3,
		     "TIMESTAMP \"soon\" is neither");
	expect_error(HDR "2023-11-16 18:15:46.5,1,1,gold\n2023-02-30 18:15:46,1,1,gold\n",
		     -EINVAL, 3, "is neither");
	expect_error(HDR "2023-11-16 18:15:46.5,1,1,gold\n12.5,1,1,gold\n", -EINVAL, 3,
		     "not in the first row's format (a date and time)");
	expect_error(HDR "12.5,1,1,gold\n2023-11-16 18:15:46.5,1,1,gold\n", -EINVAL, 3,
		     "not in the first row's format (seconds)");
	expect_error(HDR "5,1,1,gold\n6,1,1,gold\n4.999,1,1,gold\n", -EINVAL, 4,
		     "earlier than the first row's");
	expect_error(HDR "1,1,1,gold\n2,-1,1,gold\n", -EINVAL, 3,
		     "ContextTokens \"-1\" is not a number >= 0");
	expect_error(HDR "1,1,1,gold\n2,1,lots,gold\n", -EINVAL, 3,
		     "GeneratedTokens \"lots\" is not a number >= 0");
	expect_error(HDR "1,1,1,gold\n2,1e300,1,gold\n", -EINVAL, 3, "out of range");
	expect_error(HDR "1,1,1,gold\n2,1,1,platinum\n", -EINVAL, 3,
		     "Tenant \"platinum\" names no flow of the spec");
	expect_error(HDR "1,1,1,gold\n2,1,1,poisson\n", -EINVAL, 3,
		     "names a flow whose arrival process is not \"trace\"");
	expect_error(HDR "1,1,1,\"gold\n", -EINVAL, 2, "unterminated quoted field 4");
	expect_error(HDR "1,1,1,\"gold\"x\n", -EINVAL, 2, "text after the closing quote");
	expect_error(HDR "1,1,1,gold\n2,1,1,go\0ld\n", -EINVAL, 3, "NUL");
}

Test(sim_trace, spec_errors)
{
	struct tspec t;
	struct sim_trace tr;
	char err[512];
	trace_spec(&t, "/nonexistent/dir/trace.csv", SIM_ASSIGN_WEIGHTED);
	cr_assert_eq(sim_trace_load(&t.s, &tr, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "/nonexistent/dir/trace.csv: cannot open the trace"), "%s",
		  err);
	/* No TRACE flow. */
	trace_spec(&t, DATA "/trace_date.csv", SIM_ASSIGN_WEIGHTED);
	for (size_t i = 0; i < t.s.nflows; i++)
		t.flows[i].arrival.kind = SIM_ARRIVAL_POISSON;
	cr_assert_eq(sim_trace_load(&t.s, &tr, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no flow has arrival process \"trace\""), "%s", err);
	/* A zero share (weighted). */
	trace_spec(&t, DATA "/trace_date.csv", SIM_ASSIGN_WEIGHTED);
	t.flows[1].arrival.share = 0;
	t.flows[1].line = 17;
	cr_assert_eq(sim_trace_load(&t.s, &tr, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "<test>:17: flows: \"silver\": arrival.share must be > 0"),
		  "%s", err);
	/* A bad time scale; no trace at all. */
	trace_spec(&t, DATA "/trace_date.csv", SIM_ASSIGN_WEIGHTED);
	t.s.trace.time_scale = 0;
	cr_assert_eq(sim_trace_load(&t.s, &tr, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "time_scale must be > 0"), "%s", err);
	t.s.has_trace = false;
	cr_assert_eq(sim_trace_load(&t.s, &tr, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no trace"), "%s", err);
}

/* The real trace (one hour, 19,366 data rows) loads in one piece, in order,
 * spanning about an hour. Skipped where the data set is absent. */
Test(sim_trace, azure_trace_loads)
{
	const char *path = "/work/shared/data/azure-llm-inference-2023/"
			   "AzureLLMInferenceTrace_conv.csv";
	if (access(path, R_OK) != 0)
		cr_skip_test("%s not present", path);
	struct tspec t;
	trace_spec(&t, path, SIM_ASSIGN_WEIGHTED);
	t.s.trace.assign_column = NULL;
	t.s.duration_ns = 2 * 3600 * SEC;
	struct sim_trace tr;
	load_ok(&t.s, &tr);
	cr_assert_eq(tr.nrows, 19366); /* the README says 19,365 */
	cr_assert_gt(tr.rows[tr.nrows - 1].t_ns, 3400 * SEC);
	cr_assert_lt(tr.rows[tr.nrows - 1].t_ns, 3700 * SEC);
	sim_trace_free(&tr);
}
