/*
 * test_sim_tune: flowq-sim tune's objective expressions and --vary lists
 * (tools/flowq-sim/tune.c), on results built by hand.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "csv_read.h"
#include "html_check.h"
#include "json_check.h"
#include "sim.h"

static char err[256];

/* Two bands (priorities 10 and 0), two flows; band 10 dispatched 4
 * requests with queue times 1..4 ms, band 0 two with 10 and 20 ms. */
static struct sim_band_result bands[2];
static struct sim_flow_result flows[2];
static struct sim_result res;
static int64_t q10[] = {1000000, 2000000, 3000000, 4000000}, q0[] = {10000000, 20000000};

static void
setup(void)
{
	memset(bands, 0, sizeof(bands));
	memset(flows, 0, sizeof(flows));
	memset(&res, 0, sizeof(res));
	bands[0] = (struct sim_band_result){.priority = 10, .nflows = 1, .jain_mean = 0.9,
					    .inversions = 0};
	bands[0].c = (struct sim_counts){.offered = 5, .dispatched = 4, .completed = 4,
					 .expired = 1};
	bands[0].queue_ns = (struct sim_samples){q10, 4, 4};
	bands[1] = (struct sim_band_result){.priority = 0, .nflows = 1, .jain_mean = NAN,
					    .inversions = 3};
	bands[1].c = (struct sim_counts){.offered = 10, .dispatched = 2, .completed = 1,
					 .displaced = 6, .rejected_capacity = 2};
	bands[1].queue_ns = (struct sim_samples){q0, 2, 2};
	flows[0] = (struct sim_flow_result){.id = "premium", .priority = 10, .band = 0,
					    .c = bands[0].c, .queue_ns = bands[0].queue_ns};
	flows[1] = (struct sim_flow_result){.id = "batch-0", .priority = 0, .band = 1,
					    .c = bands[1].c, .queue_ns = bands[1].queue_ns};
	res.bands = bands;
	res.nbands = 2;
	res.flows = flows;
	res.nflows = 2;
	res.duration_ns = 2000000000;
	res.backend_utilization = 0.75;
	res.priority_inversions = 3;
	res.total = (struct sim_counts){.offered = 15, .dispatched = 6, .completed = 5,
					.expired = 1, .displaced = 6, .rejected_capacity = 2};
	res.conserved = true;
}

static double
value(const char *text, bool *r_max)
{
	struct sim_objective *o;
	int rc = sim_objective_parse(text, &o, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s: %s", text, err);
	double v = sim_objective_eval(o, &res);
	if (r_max)
		*r_max = sim_objective_maximize(o);
	sim_objective_free(o);
	return v;
}

TestSuite(sim_objective, .init = setup);

Test(sim_objective, metrics_and_selectors)
{
	bool max;
	cr_assert_float_eq(value("p99(band=10)", &max), 4.0, 1e-9);
	cr_assert(!max, "min is the default");
	cr_assert_float_eq(value("max: p50(band=0)", &max), 10.0, 1e-9);
	cr_assert(max);
	/* No selector: every dispatched request (1 2 3 4 10 20 ms). */
	cr_assert_float_eq(value("p50", NULL), 3.0, 1e-9);
	cr_assert_float_eq(value("p99", NULL), 20.0, 1e-9);
	cr_assert_float_eq(value("shed", NULL), 6, 1e-9);
	cr_assert_float_eq(value("displaced(band=0)", NULL), 6, 1e-9);
	cr_assert_float_eq(value("rejected(flow=batch-0)", NULL), 2, 1e-9);
	cr_assert_float_eq(value("served(band=10)", NULL), 0.8, 1e-9);
	cr_assert_float_eq(value("goodput", NULL), 2.5, 1e-9);
	cr_assert_float_eq(value("throughput(band=0)", NULL), 1.0, 1e-9);
	cr_assert_float_eq(value("jain", NULL), 0.9, 1e-9); /* NaN band skipped */
	cr_assert_float_eq(value("inversions", NULL), 3, 1e-9);
	cr_assert_float_eq(value("utilization", NULL), 0.75, 1e-9);
	cr_assert_float_eq(value("expired(flow = premium )", NULL), 1, 1e-9);
}

Test(sim_objective, arithmetic)
{
	cr_assert_float_eq(value("1 + 2 * 3", NULL), 7, 1e-12);
	cr_assert_float_eq(value("(1 + 2) * 3", NULL), 9, 1e-12);
	cr_assert_float_eq(value("10 - 4 - 3", NULL), 3, 1e-12);
	cr_assert_float_eq(value("8 / 4 / 2", NULL), 1, 1e-12);
	cr_assert_float_eq(value("-2 * -3", NULL), 6, 1e-12);
	cr_assert_float_eq(value("1.5e3 + .5", NULL), 1500.5, 1e-9);
	cr_assert_float_eq(value("max: goodput - 10 * shed(band=10)", NULL), 2.5, 1e-9);
}

Test(sim_objective, no_value_is_nan)
{
	cr_assert(isnan(value("p99(band=7)", NULL)), "no such band");
	cr_assert(isnan(value("p99(flow=nobody)", NULL)), "no such flow");
	cr_assert(isnan(value("jain(band=0)", NULL)), "one flow");
	cr_assert(isnan(value("1 / 0", NULL)), "not finite");
	cr_assert(isnan(value("inversions(flow=premium)", NULL)));
}

static void
bad(const char *text, const char *want)
{
	struct sim_objective *o = (void *)1;
	cr_assert_eq(sim_objective_parse(text, &o, err, sizeof(err)), -EINVAL, "%s", text);
	cr_assert_null(o);
	cr_assert_str_eq(err, want, "%s", text);
}

Test(sim_objective, errors_name_the_column)
{
	bad("", "objective, column 1: unexpected end");
	bad("p98", "objective, column 1: unknown metric \"p98\" (p50 p90 p99 p999 offered "
		   "dispatched completed rejected expired cancelled displaced shed shutdown "
		   "served throughput goodput jain inversions utilization)");
	bad("p99(band=x)", "objective, column 10: band= takes a priority (a 32-bit integer)");
	bad("p99(band=99999999999)",
	    "objective, column 10: band= takes a priority (a 32-bit integer)");
	bad("p99(tenant=a)", "objective, column 5: expected band=PRIORITY or flow=ID");
	bad("p99(band 1)", "objective, column 10: expected '=' after band");
	bad("p99(band=1", "objective, column 11: expected ')'");
	bad("p99(flow=)", "objective, column 10: flow= takes a flow id");
	bad("utilization(band=1)",
	    "objective, column 20: utilization has no band or flow selector");
	bad("jain(flow=a)", "objective, column 13: jain is per band: use jain(band=P)");
	bad("1 +", "objective, column 4: unexpected end");
	bad("(1 + 2", "objective, column 7: expected ')'");
	bad("1 2", "objective, column 3: unexpected '2'");
	bad("1e", "objective, column 2: expected an exponent");
	bad("#", "objective, column 1: unexpected '#'");
	char deep[200];
	memset(deep, '(', 100);
	strcpy(deep + 100, "1");
	bad(deep, "objective, column 66: nested deeper than 64");
}

Test(sim_vary, splits_values)
{
	struct sim_vary v;
	cr_assert_eq(sim_vary_parse("engine.shards=1,2,4", &v, err, sizeof(err)), 0);
	cr_assert_str_eq(v.key, "engine.shards");
	cr_assert_eq(v.nvalues, 3);
	cr_assert_str_eq(v.values[2], "4");
	sim_vary_free(&v);
	cr_assert_eq(sim_vary_parse("backend.service={dist: exp, mean: 1s},\"a,b\",[1, 2]", &v,
				    err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(v.nvalues, 3);
	cr_assert_str_eq(v.values[0], "{dist: exp, mean: 1s}");
	cr_assert_str_eq(v.values[1], "\"a,b\"");
	cr_assert_str_eq(v.values[2], "[1, 2]");
	sim_vary_free(&v);
}

Test(sim_vary, errors)
{
	struct sim_vary v;
	cr_assert_eq(sim_vary_parse("engine.shards", &v, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "--vary engine.shards: expected KEY=V1,V2,...");
	cr_assert_eq(sim_vary_parse("=1,2", &v, err, sizeof(err)), -EINVAL);
	cr_assert_eq(sim_vary_parse("a=", &v, err, sizeof(err)), -EINVAL);
	cr_assert_eq(sim_vary_parse("a=1,,2", &v, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "--vary a=1,,2: an empty value");
	cr_assert_eq(sim_vary_parse("a=1,", &v, err, sizeof(err)), -EINVAL);
	cr_assert_eq(sim_vary_parse("a={1,2", &v, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "--vary a={1,2: unbalanced bracket");
	cr_assert_eq(sim_vary_parse("a=\"x", &v, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "--vary a=\"x: unbalanced quote");
}

/* Run tune over the golden spec with one --vary and an objective. */
static struct sim_vary tv;
static struct sim_objective *tobj;
static struct sim_run_opts trun = {.mode = SIM_MODE_VIRTUAL};
static struct sim_tune_opts topts;

static void
tune_golden(const char *vary, const char *objective, struct sim_tune_result *r)
{
	cr_assert_eq(sim_vary_parse(vary, &tv, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sim_objective_parse(objective, &tobj, err, sizeof(err)), 0, "%s", err);
	topts = (struct sim_tune_opts){
		.spec_path = FLOWQ_SIM_TESTDATA_DIR "/golden_small.yaml",
		.vary = &tv,
		.nvary = 1,
		.objective = tobj,
		.objective_text = objective,
		.run = &trun,
	};
	cr_assert_eq(sim_tune(&topts, r, err, sizeof(err)), 0, "%s", err);
}

static void
tune_done(struct sim_tune_result *r)
{
	sim_tune_result_free(r);
	sim_objective_free(tobj);
	sim_vary_free(&tv);
}

/* A real tune run: two displacement policies ranked by shed requests; the
 * runs are the same virtual runs `flowq-sim run` makes, so "none" sheds
 * nothing and ranks first under min:. */
Test(sim_tune, ranks_real_runs_and_prints_the_best)
{
	struct sim_tune_result r;
	tune_golden("engine.displacement=lowest_band_newest,none", "min: shed", &r);
	cr_assert_eq(r.nrows, 2);
	cr_assert_str_eq(r.rows[0].values[0], "none");
	cr_assert_float_eq(r.rows[0].objective, 0, 1e-12);
	cr_assert_gt(r.rows[1].objective, 0, "the golden spec displaces");
	cr_assert(r.rows[0].conserved && r.rows[1].conserved);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	sim_tune_print(f, &r);
	cr_assert_eq(sim_tune_print_best(f, &topts, &r, err, sizeof(err)), 0, "%s", err);
	fclose(f);
	cr_assert_not_null(strstr(text, "Best (objective 0): engine.displacement=none"), "%s",
			   text);
	cr_assert_not_null(strstr(text, "\nengine:\n"), "%s", text);
	free(text);
	tune_done(&r);
}

Test(sim_tune, a_bad_combination_fails_alone)
{
	struct sim_tune_result r;
	tune_golden("engine.shards=1,nonsense", "max: goodput", &r);
	cr_assert_eq(r.nrows, 2);
	cr_assert_str_eq(r.rows[0].values[0], "1");
	cr_assert_null(r.rows[0].error);
	cr_assert_not_null(r.rows[1].error, "the bad value ranks last with its error");
	cr_assert(isnan(r.rows[1].objective));
	tune_done(&r);
}

/* Each row keeps its run's key figures, consistent with its counts. */
Test(sim_tune, rows_keep_the_figures_of_their_runs)
{
	struct sim_tune_result r;
	tune_golden("engine.displacement=lowest_band_newest,none", "min: shed", &r);
	cr_assert_str_eq(r.spec_name, "golden-small");
	for (size_t i = 0; i < r.nrows; i++) {
		const struct sim_tune_row *row = &r.rows[i];
		cr_assert(row->ran);
		cr_assert_eq(row->duration_ns, 2000000000);
		cr_assert_eq(row->nbands, 3, "bands 10, 0 and the template's -5");
		cr_assert_eq(row->queue.n, row->total.dispatched);
		cr_assert(row->queue.p50 <= row->queue.p99 && row->queue.p99 <= row->queue.max);
		cr_assert(row->utilization > 0 && row->utilization <= 1);
		struct sim_counts sum = {0};
		for (size_t b = 0; b < row->nbands; b++) {
			sim_counts_add(&sum, &row->bands[b].c);
			cr_assert_eq(row->bands[b].queue.n, row->bands[b].c.dispatched);
			if (b)
				cr_assert_gt(row->bands[b - 1].priority, row->bands[b].priority);
		}
		cr_assert_eq(memcmp(&sum, &row->total, sizeof(sum)), 0,
			     "the bands' counts add up to the run's");
	}
	cr_assert_gt(r.rows[1].total.displaced, 0);
	cr_assert_eq(r.rows[1].bands[1].c.displaced + r.rows[1].bands[2].c.displaced,
		     r.rows[1].total.displaced, "band 10 is never displaced");
	tune_done(&r);
}

static char *
render_tune(void (*fn)(FILE *, const struct sim_tune_result *), const struct sim_tune_result *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	fn(f, r);
	cr_assert_eq(fclose(f), 0);
	return text;
}

static void
html_no_run(FILE *f, const struct sim_tune_result *r)
{
	sim_report_html(f, NULL, r);
}

static size_t
count_of(const char *s, const char *what)
{
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

/* JSON, CSV and HTML of a real tune: values with commas and quotes (YAML
 * flow maps), a combination that fails, every run's figures. */
Test(sim_tune, json_csv_and_html_of_a_tune)
{
	struct sim_tune_result r;
	tune_golden("backend.service={dist: exp, mean: 10ms},\"nonsense\",{dist: const, "
		    "value: 5ms}",
		    "max: goodput", &r);
	cr_assert_eq(r.nrows, 3);
	cr_assert_str_eq(r.rows[0].values[0], "{dist: const, value: 5ms}",
			 "the faster backend has the higher goodput");
	cr_assert_not_null(r.rows[2].error);

	char *json = render_tune(sim_report_tune_json, &r);
	char jerr[256];
	cr_assert_eq(json_check(json, strlen(json), jerr, sizeof(jerr)), 0, "%s\n%s", jerr,
		     json);
	cr_assert_not_null(strstr(json, "\"format\": \"flowq-sim.tune.v1\""));
	cr_assert_not_null(strstr(json, "\"spec\": \"golden-small\""));
	cr_assert_not_null(strstr(json, "\"keys\": [\"backend.service\"]"));
	cr_assert_not_null(strstr(json, "\"best\": [\"{dist: const, value: 5ms}\"]"));
	cr_assert_not_null(strstr(json, "\"values\": [\"\\\"nonsense\\\"\"]"), "%s", json);
	cr_assert_eq(count_of(json, "\"rank\": "), 3);
	cr_assert_eq(count_of(json, "\"ran\": true"), 2);
	cr_assert_eq(count_of(json, "\"ran\": false"), 1);
	cr_assert_eq(count_of(json, "\"error\": null"), 2);
	cr_assert_eq(count_of(json, "\"priority\": 10,"), 2, "a band list per run that ran");
	free(json);

	char *csv = render_tune(sim_report_tune_csv, &r);
	const char *p = csv;
	static char fields[40][CSV_FIELD_MAX];
	size_t ncol, n;
	cr_assert_eq(csv_read_record(&p, fields, 40, &ncol, jerr, sizeof(jerr)), 1, "%s", jerr);
	cr_assert_eq(ncol, 30, "rank, kind, one key, 27 figures");
	cr_assert_str_eq(fields[2], "backend.service");
	cr_assert_str_eq(fields[3], "objective");
	size_t runs = 0, bands = 0;
	int rc;
	while ((rc = csv_read_record(&p, fields, 40, &n, jerr, sizeof(jerr))) == 1) {
		cr_assert_eq(n, ncol, "every record has the header's columns");
		bool run = strcmp(fields[1], "run") == 0;
		cr_assert(run || strcmp(fields[1], "band") == 0);
		runs += run;
		bands += !run;
		if (run && strcmp(fields[0], "1") == 0) {
			cr_assert_str_eq(fields[2], "{dist: const, value: 5ms}");
			cr_assert_str_eq(fields[4], "true");
			cr_assert_str_eq(fields[5], "");
		}
		if (run && strcmp(fields[0], "3") == 0) {
			cr_assert_str_eq(fields[2], "\"nonsense\"");
			cr_assert_str_eq(fields[3], "", "no objective");
			cr_assert_neq(fields[5][0], '\0', "the error");
		}
	}
	cr_assert_eq(rc, 0, "%s", jerr);
	cr_assert_eq(runs, 3);
	cr_assert_eq(bands, 6, "three bands for each of the two runs that ran");
	free(csv);

	char *html = render_tune(html_no_run, &r);
	cr_assert_eq(html_check(html, strlen(html), jerr, sizeof(jerr)), 0, "%s", jerr);
	cr_assert_not_null(strstr(html, "<title>flowq-sim tuning: golden-small"));
	cr_assert_not_null(strstr(html, "<svg id=\"chart-heatmap\""));
	free(html);
	tune_done(&r);
}

/* The progress hooks: on_run before (no row) and after (its row) each
 * run, the runs' own progress in between. */
struct hooks {
	size_t before, after, progress;
	bool in_run;
};

static void
hook_run(void *ctx, size_t idx, size_t n, const char *const *values,
	 const struct sim_tune_row *row)
{
	struct hooks *h = ctx;
	cr_assert_eq(n, 2);
	cr_assert_not_null(values[0]);
	if (!row) {
		cr_assert_eq(idx, h->before);
		cr_assert(!h->in_run);
		h->before++;
		h->in_run = true;
	} else {
		cr_assert_eq(idx, h->after);
		cr_assert(h->in_run);
		cr_assert_str_eq(row->values[0], values[0]);
		h->after++;
		h->in_run = false;
	}
}

static void
hook_progress(void *ctx, int64_t now_ns, const struct sim_result *partial)
{
	struct hooks *h = ctx;
	cr_assert(h->in_run);
	cr_assert(now_ns >= 0 && partial->duration_ns == 2000000000);
	h->progress++;
}

Test(sim_tune, progress_hooks)
{
	struct hooks h = {0};
	cr_assert_eq(sim_vary_parse("engine.shards=1,2", &tv, err, sizeof(err)), 0);
	cr_assert_eq(sim_objective_parse("max: goodput", &tobj, err, sizeof(err)), 0);
	topts = (struct sim_tune_opts){
		.spec_path = FLOWQ_SIM_TESTDATA_DIR "/golden_small.yaml",
		.vary = &tv,
		.nvary = 1,
		.objective = tobj,
		.objective_text = "max: goodput",
		.progress = hook_progress,
		.progress_ctx = &h,
		.progress_every_ns = 500000000,
		.on_run = hook_run,
		.on_run_ctx = &h,
	};
	struct sim_tune_result r;
	cr_assert_eq(sim_tune(&topts, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(h.before, 2);
	cr_assert_eq(h.after, 2);
	cr_assert_geq(h.progress, 2 * 4, "every 0.5 s of 2 s, in each run");
	tune_done(&r);
}

/* A tune of the built-in default scenario replays the Azure trace: its
 * page cites it, as the trace's licence asks; the golden spec has none. */
Test(sim_tune, the_tuning_page_cites_the_trace_it_replayed)
{
	static const char *const ov[] = {"sim.duration=3s"};
	cr_assert_eq(sim_vary_parse("engine.shards=1", &tv, err, sizeof(err)), 0);
	cr_assert_eq(sim_objective_parse("max: goodput", &tobj, err, sizeof(err)), 0);
	topts = (struct sim_tune_opts){
		.overrides = ov,
		.noverrides = 1,
		.vary = &tv,
		.nvary = 1,
		.objective = tobj,
		.objective_text = "max: goodput",
	};
	struct sim_tune_result r;
	cr_assert_eq(sim_tune(&topts, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(r.rows[0].error, "%s", r.rows[0].error);
	cr_assert_not_null(r.trace_path);
	char *html = render_tune(html_no_run, &r);
	cr_assert_not_null(strstr(html, "Splitwise"), "the Azure trace is cited");
	free(html);
	tune_done(&r);

	tune_golden("engine.shards=1", "max: goodput", &r);
	cr_assert_null(r.trace_path);
	html = render_tune(html_no_run, &r);
	cr_assert_null(strstr(html, "Splitwise"));
	free(html);
	tune_done(&r);
}
