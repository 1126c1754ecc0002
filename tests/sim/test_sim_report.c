/*
 * test_sim_report: the simulator's reports (tools/flowq-sim/report.c,
 * html.c) on results built by hand: exact JSON for a small result, strict
 * JSON validity, determinism (also under a decimal-comma locale), CSV
 * quoting and row counts, the text table's layout, well-formed
 * self-contained HTML with every chart, the tuning heat-map and the
 * comparison of variants.
 *
 * SIM_REPORT_DUMP=DIR writes the rendered demo files there (to look at).
 */
#define _GNU_SOURCE /* open_memstream, mkdtemp, setenv */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "csv_read.h"
#include "html_check.h"
#include "json_check.h"
#include "report.h"
#include "sim.h"

/* ---- rendering into memory ------------------------------------------------ */

struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static FILE *
mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	cr_assert_not_null(m->f);
	return m->f;
}

static char *
mem_close(struct mem *m)
{
	cr_assert_eq(fclose(m->f), 0);
	return m->buf;
}

#define RENDER(var, call)                                                                \
	do {                                                                             \
		struct mem m_;                                                           \
		FILE *out = mem_open(&m_);                                               \
		call;                                                                    \
		(var) = mem_close(&m_);                                                  \
	} while (0)

static void
dump(const char *name, const char *text)
{
	const char *dir = getenv("SIM_REPORT_DUMP");
	if (!dir)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/* ---- results built by hand ------------------------------------------------ */

/* The id every renderer must escape its own way: a quote, a comma, <>&,
 * a valid two-byte UTF-8 character (é) and a byte that is not UTF-8. */
#define WEIRD_ID "q\"<&>,\xc3\xa9\xff"

static void
result_init(struct sim_result *r, size_t nbands, size_t nflows, size_t nwindows)
{
	memset(r, 0, sizeof(*r));
	r->mode = SIM_MODE_VIRTUAL;
	r->window_ns = 1000000000;
	r->nwindows = nwindows;
	r->duration_ns = (int64_t)nwindows * r->window_ns;
	r->end_ns = r->duration_ns + r->window_ns / 2;
	r->inversion_grace_ns = 1000000;
	r->conserved = true;
	r->nbands = nbands;
	r->bands = calloc(nbands, sizeof(*r->bands));
	r->nflows = nflows;
	r->flows = calloc(nflows, sizeof(*r->flows));
	cr_assert(r->bands && r->flows);
	for (size_t b = 0; b < nbands; b++) {
		struct sim_band_result *band = &r->bands[b];
		band->win_depth = calloc(nwindows + 1, sizeof(*band->win_depth));
		band->win_depth_max = calloc(nwindows + 1, sizeof(*band->win_depth_max));
		band->win_jain = calloc(nwindows + 1, sizeof(*band->win_jain));
		cr_assert(band->win_depth && band->win_depth_max && band->win_jain);
	}
	for (size_t f = 0; f < nflows; f++) {
		r->flows[f].win_bytes = calloc(nwindows + 1, sizeof(uint64_t));
		r->flows[f].win_share = calloc(nwindows + 1, sizeof(double));
		cr_assert(r->flows[f].win_bytes && r->flows[f].win_share);
	}
}

/* Band sums, window shares, Jain means and the total from the flows. */
static void
result_finish(struct sim_result *r)
{
	memset(&r->total, 0, sizeof(r->total));
	for (size_t b = 0; b < r->nbands; b++) {
		struct sim_band_result *band = &r->bands[b];
		memset(&band->c, 0, sizeof(band->c));
		band->nflows = 0;
		sim_samples_free(&band->queue_ns);
		for (size_t f = 0; f < r->nflows; f++) {
			struct sim_flow_result *fl = &r->flows[f];
			if (fl->band != b)
				continue;
			band->nflows++;
			sim_counts_add(&band->c, &fl->c);
			for (size_t i = 0; i < fl->queue_ns.n; i++)
				cr_assert_eq(sim_samples_add(&band->queue_ns,
							     fl->queue_ns.v[i]),
					     0);
		}
		sim_samples_sort(&band->queue_ns);
		for (size_t w = 0; w < r->nwindows; w++) {
			uint64_t sum = 0;
			for (size_t f = 0; f < r->nflows; f++)
				if (r->flows[f].band == b)
					sum += r->flows[f].win_bytes[w];
			for (size_t f = 0; f < r->nflows; f++)
				if (r->flows[f].band == b)
					r->flows[f].win_share[w] =
						sum ? (double)r->flows[f].win_bytes[w] /
								(double)sum
						    : 0;
		}
		double s = 0;
		size_t n = 0;
		for (size_t w = 0; w < r->nwindows; w++)
			if (!isnan(band->win_jain[w])) {
				s += band->win_jain[w];
				n++;
			}
		band->jain_mean = n ? s / (double)n : NAN;
		r->priority_inversions += band->inversions;
		sim_counts_add(&r->total, &band->c);
	}
	for (size_t f = 0; f < r->nflows; f++)
		sim_samples_sort(&r->flows[f].queue_ns);
}

static void
result_free(struct sim_result *r)
{
	for (size_t b = 0; b < r->nbands; b++) {
		free(r->bands[b].win_depth);
		free(r->bands[b].win_depth_max);
		free(r->bands[b].win_jain);
		sim_samples_free(&r->bands[b].queue_ns);
	}
	for (size_t f = 0; f < r->nflows; f++) {
		free(r->flows[f].id);
		free(r->flows[f].win_bytes);
		free(r->flows[f].win_share);
		sim_samples_free(&r->flows[f].queue_ns);
	}
	free(r->bands);
	free(r->flows);
}

static void
flow_set(struct sim_result *r, size_t f, const char *id, size_t band, uint32_t weight)
{
	r->flows[f].id = strdup(id);
	cr_assert_not_null(r->flows[f].id);
	r->flows[f].band = band;
	r->flows[f].priority = r->bands[band].priority;
	r->flows[f].weight = weight;
}

static void
add_samples(struct sim_flow_result *f, const int64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(sim_samples_add(&f->queue_ns, v[i]), 0);
}

/* The golden result: one band, two flows, two windows, a NaN window. */
static void
golden_result(struct sim_result *r, struct sim_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->name = "golden";
	spec->description = "two flows, \"one\" band";
	spec->source = "/somewhere/golden.yaml";
	result_init(r, 1, 2, 2);
	r->spec = spec;
	r->seed = 7;
	r->end_ns = 2500000000;
	r->bands[0].priority = 5;
	flow_set(r, 0, "a", 0, 1);
	flow_set(r, 1, WEIRD_ID, 0, 2);
	r->flows[0].c = (struct sim_counts){.offered = 3,
					    .dispatched = 2,
					    .expired = 1,
					    .completed = 2,
					    .offered_bytes = 300,
					    .dispatched_bytes = 200};
	r->flows[1].c = (struct sim_counts){.offered = 2,
					    .dispatched = 1,
					    .cancelled = 1,
					    .completed = 1,
					    .offered_bytes = 200,
					    .dispatched_bytes = 100};
	add_samples(&r->flows[0], (const int64_t[]){1500, 0}, 2);
	add_samples(&r->flows[1], (const int64_t[]){2000000}, 1);
	r->flows[0].win_bytes[0] = 100;
	r->flows[0].win_bytes[1] = 100;
	r->flows[1].win_bytes[0] = 100;
	r->bands[0].win_depth[0] = 2;
	r->bands[0].win_depth_max[0] = 3;
	r->bands[0].win_depth_max[1] = 1;
	r->bands[0].win_jain[0] = 1;
	r->bands[0].win_jain[1] = NAN;
	r->backend_utilization = 0.625;
	r->backend_queue_max = 4;
	r->events = 42;
	result_finish(r);
}

static const char golden_json[] =
	"{\n"
	"  \"format\": \"flowq-sim.result.v1\",\n"
	"  \"spec\": {\n"
	"    \"name\": \"golden\",\n"
	"    \"description\": \"two flows, \\\"one\\\" band\"\n"
	"  },\n"
	"  \"mode\": \"virtual\",\n"
	"  \"seed\": 7,\n"
	"  \"duration_ns\": 2000000000,\n"
	"  \"end_ns\": 2500000000,\n"
	"  \"window_ns\": 1000000000,\n"
	"  \"windows\": 2,\n"
	"  \"conservation\": {\"ok\":true,\"error\":null},\n"
	"  \"total\": "
	"{\"offered\":5,\"rejected_capacity\":0,\"rejected_other\":0,\"dispatched\":3,"
	"\"expired\":1,\"cancelled\":1,\"displaced\":0,\"shutdown\":0,\"completed\":3,"
	"\"offered_bytes\":500,\"dispatched_bytes\":300},\n"
	"  \"throughput_rps\": 1.5,\n"
	"  \"priority_inversions\": 0,\n"
	"  \"inversion_grace_ns\": 1000000,\n"
	"  \"backend\": {\"utilization\":0.625,\"queue_max\":4},\n"
	"  \"events\": 42,\n"
	"  \"bands\": [\n"
	"    {\n"
	"      \"priority\": 5,\n"
	"      \"flows\": 2,\n"
	"      \"counts\": {\"offered\":5,\"rejected_capacity\":0,\"rejected_other\":0,"
	"\"dispatched\":3,\"expired\":1,\"cancelled\":1,\"displaced\":0,\"shutdown\":0,"
	"\"completed\":3,\"offered_bytes\":500,\"dispatched_bytes\":300},\n"
	"      \"throughput_rps\": 1.5,\n"
	"      \"queue_ns\": {\"n\":3,\"mean\":667167,\"p50\":1500,\"p90\":2000000,"
	"\"p99\":2000000,\"p999\":2000000,\"max\":2000000},\n"
	"      \"jain_mean\": 1,\n"
	"      \"jain_min\": 1,\n"
	"      \"inversions\": 0,\n"
	"      \"win_depth\": [2,0],\n"
	"      \"win_depth_max\": [3,1],\n"
	"      \"win_jain\": [1,null]\n"
	"    }\n"
	"  ],\n"
	"  \"flows\": [\n"
	"    {\n"
	"      \"id\": \"a\",\n"
	"      \"priority\": 5,\n"
	"      \"weight\": 1,\n"
	"      \"band\": 0,\n"
	"      \"counts\": {\"offered\":3,\"rejected_capacity\":0,\"rejected_other\":0,"
	"\"dispatched\":2,\"expired\":1,\"cancelled\":0,\"displaced\":0,\"shutdown\":0,"
	"\"completed\":2,\"offered_bytes\":300,\"dispatched_bytes\":200},\n"
	"      \"throughput_rps\": 1,\n"
	"      \"queue_ns\": {\"n\":2,\"mean\":750,\"p50\":0,\"p90\":1500,\"p99\":1500,"
	"\"p999\":1500,\"max\":1500},\n"
	"      \"win_bytes\": [100,100],\n"
	"      \"win_share\": [0.5,1]\n"
	"    },\n"
	"    {\n"
	"      \"id\": \"q\\\"<&>,\xc3\xa9\\u00ff\",\n"
	"      \"priority\": 5,\n"
	"      \"weight\": 2,\n"
	"      \"band\": 0,\n"
	"      \"counts\": {\"offered\":2,\"rejected_capacity\":0,\"rejected_other\":0,"
	"\"dispatched\":1,\"expired\":0,\"cancelled\":1,\"displaced\":0,\"shutdown\":0,"
	"\"completed\":1,\"offered_bytes\":200,\"dispatched_bytes\":100},\n"
	"      \"throughput_rps\": 0.5,\n"
	"      \"queue_ns\": {\"n\":1,\"mean\":2000000,\"p50\":2000000,\"p90\":2000000,"
	"\"p99\":2000000,\"p999\":2000000,\"max\":2000000},\n"
	"      \"win_bytes\": [100,0],\n"
	"      \"win_share\": [0.5,0]\n"
	"    }\n"
	"  ]\n"
	"}\n";

/* A larger result: three bands (one with 15 flows, one that dispatched
 * nothing), 600 windows (so charts are downsampled), lognormal queue
 * times, NaN Jain windows, an inversion count, the weird id. */
static struct flowq_band_config demo_bands[3];

static void
demo_spec(struct sim_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->name = "demo <scenario> & \"friends\"";
	spec->description = "Three tenant classes share one backend; the batch class is "
			    "sheddable. Built by hand for the report tests.";
	spec->source = "tests/demo.yaml";
	spec->mode = SIM_MODE_VIRTUAL;
	spec->seed = 11;
	spec->duration_ns = 600000000000;
	spec->drain_ns = 10000000000;
	spec->window_ns = 1000000000;
	flowq_config_init(&spec->engine.config);
	spec->engine.config.shards = 2;
	spec->engine.config.max_requests = 5000;
	spec->engine.config.displacement = "lowest_band_newest";
	spec->engine.config.saturation.max_inflight = 64;
	demo_bands[0] = spec->engine.config.default_band;
	demo_bands[0].priority = 10;
	demo_bands[0].fairness = "wfq";
	demo_bands[0].ordering = "edf";
	demo_bands[1] = demo_bands[0];
	demo_bands[1].priority = 0;
	demo_bands[1].fairness = "drr";
	demo_bands[1].ordering = "fcfs";
	demo_bands[2] = demo_bands[1];
	demo_bands[2].priority = -1;
	spec->engine.config.bands = demo_bands;
	spec->engine.config.nbands = 3;
	spec->backend.slots = 64;
	spec->backend.service_ns = (struct sim_dist){SIM_DIST_LOGNORMAL, 20e6, 0.5};
	spec->backend.ns_per_byte = 2;
	static struct sim_slowdown slow = {200000000000, 100000000000, 3};
	spec->backend.slowdowns = &slow;
	spec->backend.nslowdowns = 1;
	static struct sim_flow_spec classes[3];
	classes[0] = (struct sim_flow_spec){
		.id = "premium",
		.count = 1,
		.priority = 10,
		.weight = 4,
		.arrival = {.kind = SIM_ARRIVAL_POISSON, .rate = 200},
		.size = {SIM_DIST_LOGNORMAL, 2048, 1},
		.ttl_ns = 5000000000};
	classes[1] = (struct sim_flow_spec){.id = "std",
					    .count = 15,
					    .priority = 0,
					    .weight = 1,
					    .arrival = {.kind = SIM_ARRIVAL_ONOFF,
							.rate = 80,
							.on_ns = {SIM_DIST_EXP, 2e9, 0},
							.off_ns = {SIM_DIST_EXP, 8e9, 0}},
					    .size = {SIM_DIST_CONST, 1024, 0}};
	classes[2] =
		(struct sim_flow_spec){.id = "batch",
				       .count = 1,
				       .priority = -1,
				       .weight = 1,
				       .arrival = {.kind = SIM_ARRIVAL_CLOSED,
						   .clients = 32,
						   .think_ns = {SIM_DIST_EXP, 50e6, 0},
						   .start_ns = 10000000000},
				       .size = {SIM_DIST_PARETO, 100, 1.5},
				       .ttl_ns = FLOWQ_TTL_NONE};
	spec->flows = classes;
	spec->nflows = 3;
}

static void
demo_result(struct sim_result *r, struct sim_spec *spec)
{
	const size_t nw = 600, nflows = 18;
	demo_spec(spec);
	result_init(r, 3, nflows, nw);
	r->spec = spec;
	r->seed = 11;
	r->bands[0].priority = 10;
	r->bands[1].priority = 0;
	r->bands[2].priority = -1;
	flow_set(r, 0, "premium", 0, 4);
	flow_set(r, 1, WEIRD_ID, 0, 1);
	for (size_t f = 2; f < 17; f++) {
		char id[32];
		snprintf(id, sizeof(id), "std-%zu", f - 2);
		flow_set(r, f, id, 1, 1);
	}
	flow_set(r, 17, "batch", 2, 1);

	struct sim_rng rng;
	sim_rng_seed(&rng, 11, 0);
	for (size_t f = 0; f < 17; f++) {
		struct sim_flow_result *fl = &r->flows[f];
		/* Queue times: lognormal around 200us (band 10) or 20ms
		 * (band 0), a few zeros (dispatched at once). */
		struct sim_dist d = {SIM_DIST_LOGNORMAL,
				     fl->band == 0 ? 2e5 : 2e7 * (1 + f % 3), 1.2};
		size_t n = 400 + 37 * f;
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(
				sim_samples_add(
					&fl->queue_ns,
					i % 50 == 0 ? 0
						    : (int64_t)sim_dist_sample(&d, &rng)),
				0);
		fl->c.dispatched = n;
		fl->c.completed = n - 3;
		fl->c.expired = f % 4;
		fl->c.displaced = fl->band == 1 ? 5 + f : 0;
		fl->c.rejected_capacity = f % 3 == 0 ? 7 : 0;
		fl->c.offered = fl->c.dispatched + fl->c.expired + fl->c.displaced +
				fl->c.rejected_capacity;
		for (size_t w = 0; w < nw; w++) {
			/* The std flows take turns in bursts; premium is steady. */
			bool on = fl->band == 0 || ((w / 40) % 5) == (f % 5);
			fl->win_bytes[w] = on ? (uint64_t)(1024 * (1 + (w + f) % 7)) : 0;
			fl->c.dispatched_bytes += fl->win_bytes[w];
		}
		fl->c.offered_bytes = fl->c.dispatched_bytes + 4096;
	}
	/* batch: offered, all rejected or shed, nothing dispatched. */
	r->flows[17].c = (struct sim_counts){.offered = 50,
					     .rejected_capacity = 20,
					     .displaced = 25,
					     .shutdown = 5,
					     .offered_bytes = 5000};
	for (size_t w = 0; w < nw; w++) {
		double t = (double)w;
		r->bands[0].win_depth[w] = (uint32_t)(5 + 4 * sin(t / 10));
		r->bands[1].win_depth[w] =
			(uint32_t)(w >= 200 && w < 300 ? 800 + 3 * (w - 200)
						       : 40 + (w % 17));
		r->bands[2].win_depth[w] = (uint32_t)(w < 10 ? 0 : 25);
		for (size_t b = 0; b < 3; b++)
			r->bands[b].win_depth_max[w] = r->bands[b].win_depth[w] + 3;
		r->bands[0].win_jain[w] = 0.9 + 0.1 * cos(t / 25);
		r->bands[1].win_jain[w] =
			w % 40 < 3 ? NAN : 0.55 + 0.4 * fabs(sin(t / 60));
		r->bands[2].win_jain[w] = NAN;
	}
	r->bands[0].inversions = 0;
	r->bands[1].inversions = 12;
	r->backend_utilization = 0.973;
	r->backend_queue_max = 120;
	r->events = 123456;
	result_finish(r);
}

/* ---- number formatting ----------------------------------------------------- */

Test(sim_report, fmt_num_matches_printf_in_the_c_locale)
{
	/* Exact rounding (half to even on the binary value) in the range the
	 * reports use: every digit as glibc's %.Ng prints it. */
	struct sim_rng rng;
	sim_rng_seed(&rng, 3, 0);
	static const double fixed[] = {0,       -0.0,      0.5,
				       0.125,   2.5,       1e-5,
				       1.5e-5,  0.0001,    123456,
				       1234567, 9.9999995, 999999.5,
				       0.625,   1e15,      1e21,
				       3.0e22,  1.0 / 3,   2.0 / 3,
				       1e-14,   99.95,     0.15,
				       0.25,    0.35,      1e100,
				       1e-100,  5e-324,    1.7976931348623157e308};
	char mine[SIM_FMT_MAX], want[64];
	for (int sig = 1; sig <= 9; sig++) {
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
			sim__fmt_num(mine, fixed[i], sig);
			snprintf(want, sizeof(want), "%.*g", sig, fixed[i]);
			if (fabs(fixed[i]) > 3e22 ||
			    (fixed[i] != 0 && fabs(fixed[i]) < 1e-14)) {
				/* Outside the exact range: same value to sig digits. */
				long double back = strtold(mine, NULL);
				cr_assert(fabsl(back - fixed[i]) <=
						  fabsl((long double)fixed[i]) *
							  powl(10, 1 - sig),
					  "%.17g: %s", fixed[i], mine);
				continue;
			}
			cr_assert_str_eq(mine, want, "%.17g at %d digits", fixed[i], sig);
		}
		for (int i = 0; i < 20000; i++) {
			/* Random mantissas over 36 decades, both signs. */
			double e = -14 + 36 * sim_rng_unit(&rng);
			double v = pow(10, e) * (sim_rng_next(&rng) & 1 ? -1 : 1);
			sim__fmt_num(mine, v, sig);
			snprintf(want, sizeof(want), "%.*g", sig, v);
			cr_assert_str_eq(mine, want, "%.17g at %d digits", v, sig);
		}
	}
	sim__fmt_num(mine, NAN, 6);
	cr_assert_str_eq(mine, "nan");
	sim__fmt_num(mine, -INFINITY, 6);
	cr_assert_str_eq(mine, "-inf");
}

Test(sim_report, human_units)
{
	static const struct {
		int64_t ns;
		const char *want;
	} dur[] = {{0, "0"},
		   {850, "850ns"},
		   {999, "999ns"},
		   {1000, "1us"},
		   {12345, "12.3us"},
		   {999499, "999us"},
		   {999500, "1ms"},
		   {4560000, "4.56ms"},
		   {1234567890, "1.23s"},
		   {999600000000, "1000s"},
		   {3600000000000, "3600s"},
		   {-2500, "-2.5us"}};
	char buf[SIM_FMT_MAX];
	for (size_t i = 0; i < sizeof(dur) / sizeof(dur[0]); i++) {
		sim__fmt_dur(buf, dur[i].ns);
		cr_assert_str_eq(buf, dur[i].want, "%lld", (long long)dur[i].ns);
	}
	sim__fmt_fixed(buf, 12.25, 1);
	cr_assert_str_eq(buf, "12.3"); /* llround: half away from zero */
	sim__fmt_fixed(buf, -0.04, 1);
	cr_assert_str_eq(buf, "0");
	sim__fmt_fixed(buf, 3.10, 2);
	cr_assert_str_eq(buf, "3.1");
	sim__fmt_bytes(buf, 512);
	cr_assert_str_eq(buf, "512B");
	sim__fmt_bytes(buf, 1536);
	cr_assert_str_eq(buf, "1.5KiB");
	sim__fmt_bytes(buf, 5u << 20);
	cr_assert_str_eq(buf, "5MiB");
}

/* ---- escaping --------------------------------------------------------------- */

Test(sim_report, escapers)
{
	char *s;
	RENDER(s, sim__json_str(out, WEIRD_ID "\n\x01\\"));
	cr_assert_str_eq(s, "\"q\\\"<&>,\xc3\xa9\\u00ff\\n\\u0001\\\\\"");
	free(s);
	RENDER(s, sim__html_str(out, WEIRD_ID "'", 0));
	cr_assert_str_eq(s, "q&quot;&lt;&amp;&gt;,\xc3\xa9\\xff&#39;");
	free(s);
	RENDER(s, sim__html_str(out, "abcdef", 4));
	cr_assert_str_eq(s, "abc&#8230;");
	free(s);
	RENDER(s, sim__csv_str(out, WEIRD_ID));
	cr_assert_str_eq(s, "\"q\"\"<&>,\xc3\xa9\xff\"");
	free(s);
	RENDER(s, sim__csv_str(out, "plain-id"));
	cr_assert_str_eq(s, "plain-id");
	free(s);
	RENDER(s, sim__csv_str(out, " padded"));
	cr_assert_str_eq(s, "\" padded\"");
	free(s);

	char buf[64];
	sim__term_str(buf, sizeof(buf), WEIRD_ID "\x1b[2J", 0);
	cr_assert_str_eq(buf, "q\"<&>,\xc3\xa9\\xff\\x1b[2J");
	cr_assert_eq(sim__term_width(buf), 18);
	sim__term_str(buf, sizeof(buf), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 4);
	cr_assert_str_eq(buf, "\xc3\xa9...");
	/* Overlong, surrogate, C1 control and truncated sequences are bytes. */
	cr_assert_eq(sim__utf8_seq("\xc0\xaf"), 0);
	cr_assert_eq(sim__utf8_seq("\xed\xa0\x80"), 0);
	cr_assert_eq(sim__utf8_seq("\xc2\x85"), 0);
	cr_assert_eq(sim__utf8_seq("\xe2\x82"), 0);
	cr_assert_eq(sim__utf8_seq("\xf0\x9f\x98\x80"), 4);
}

/* ---- the checkers can fail ---------------------------------------------------- */

Test(sim_report, checkers_refuse_bad_input)
{
	char err[128];
	static const char *const bad_json[] = {
		"{\"a\":1,}",  "[1,2",     "NaN",
		"01",          "1.",       "{\"a\":1,\"a\":2}",
		"\"\\ud800\"", "\"\xff\"", "\"a\nb\"",
		"{'a':1}",     "[1] x",    "-",
		"1e",          "tru",      NULL};
	for (size_t i = 0; bad_json[i]; i++)
		cr_assert_neq(
			json_check(bad_json[i], strlen(bad_json[i]), err, sizeof(err)), 0,
			"accepted %s", bad_json[i]);
	static const char *const good_json[] = {
		"{}",
		"[]",
		"0",
		"-0.5e+07",
		"\"\\ud83d\\ude00\"",
		" {\"a\": [1, null, true, {\"b\": \"\xc3\xa9\"}]} ",
		NULL};
	for (size_t i = 0; good_json[i]; i++)
		cr_assert_eq(
			json_check(good_json[i], strlen(good_json[i]), err, sizeof(err)),
			0, "refused %s: %s", good_json[i], err);

	static const char *const bad_html[] = {
		"<!DOCTYPE html>\n<p><b>x</p></b>",
		"<!DOCTYPE html>\n<div/>",
		"<!DOCTYPE html>\n<p>a & b</p>",
		"<!DOCTYPE html>\n<p class=x>a</p>",
		"<!DOCTYPE html>\n<p>a > b</p>",
		"<!DOCTYPE html>\n<meta charset=\"utf-8\">",
		"<!DOCTYPE html>\n<p>",
		"<html></html>",
		"<!DOCTYPE html>\n<p a=\"1\" a=\"2\"></p>",
		"<!DOCTYPE html>\n<script></script>",
		"<!DOCTYPE html>\n<p>\xff</p>",
		NULL};
	for (size_t i = 0; bad_html[i]; i++)
		cr_assert_neq(
			html_check(bad_html[i], strlen(bad_html[i]), err, sizeof(err)), 0,
			"accepted %s", bad_html[i]);
	const char *good = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/></head>"
			   "<body><p>a &amp; b &#8230;</p><svg><path d=\"M0,0\"/></svg>"
			   "<!-- note --></body></html>\n";
	cr_assert_eq(html_check(good, strlen(good), err, sizeof(err)), 0, "%s", err);
}

/* ---- JSON ----------------------------------------------------------------------- */

Test(sim_report, json_golden)
{
	struct sim_result r;
	struct sim_spec spec;
	golden_result(&r, &spec);
	char *s;
	RENDER(s, sim_report_json(out, &r));
	if (strcmp(s, golden_json) != 0) {
		size_t i = 0;
		while (s[i] && s[i] == golden_json[i])
			i++;
		cr_assert_fail("JSON differs at byte %zu:\n--- got\n%s\n--- want\n%s", i,
			       s, golden_json);
	}
	char err[128];
	cr_assert_eq(json_check(s, strlen(s), err, sizeof(err)), 0, "%s", err);
	free(s);
	result_free(&r);
}

Test(sim_report, json_is_valid_and_deterministic)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	char *a, *b, err[128];
	RENDER(a, sim_report_json(out, &r));
	RENDER(b, sim_report_json(out, &r));
	cr_assert_str_eq(a, b);
	cr_assert_eq(json_check(a, strlen(a), err, sizeof(err)), 0, "%s", err);
	cr_assert_null(strstr(a, "wall_s"), "a virtual run's JSON has no wall time");
	cr_assert_null(strstr(a, "golden.yaml"));
	dump("demo.json", a);
	free(a);
	free(b);

	/* Realtime runs carry wall and CPU time; NaN anywhere is null. */
	r.mode = SIM_MODE_REALTIME;
	r.wall_s = 1.25;
	r.cpu_s = NAN;
	r.conserved = false;
	snprintf(r.conservation_error, sizeof(r.conservation_error),
		 "flow \"x\": offered 3 != outcomes 2");
	RENDER(a, sim_report_json(out, &r));
	cr_assert_eq(json_check(a, strlen(a), err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(a, "\"wall_s\": 1.25,\n  \"cpu_s\": null,"));
	cr_assert_not_null(strstr(
		a,
		"{\"ok\":false,\"error\":\"flow \\\"x\\\": offered 3 != outcomes 2\"}"));
	free(a);
	result_free(&r);
}

/* ---- CSV ------------------------------------------------------------------------ */

/* Every CRLF-terminated record (csv_read.h): returns the record count and
 * checks every record has @p nfields fields. Writes the second field of
 * record @p want_rec (unquoted) to @p r_field. */
static size_t
csv_records(const char *s, size_t nfields, size_t want_rec, char *r_field, size_t fsz)
{
	static char fields[64][CSV_FIELD_MAX];
	char err[128];
	size_t rec = 0, n;
	int rc;
	r_field[0] = '\0';
	while ((rc = csv_read_record(&s, fields, 64, &n, err, sizeof(err))) == 1) {
		cr_assert_eq(n, nfields, "record %zu has %zu fields", rec, n);
		if (rec == want_rec)
			snprintf(r_field, fsz, "%s", fields[1]);
		rec++;
	}
	cr_assert_eq(rc, 0, "record %zu: %s", rec, err);
	return rec;
}

Test(sim_report, csv_rows_and_quoting)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	char *s;
	RENDER(s, sim_report_csv(out, &r));
	dump("demo.csv", s);
	size_t nfields = 1;
	for (const char *p = s; *p != '\r'; p++)
		nfields += *p == ',';
	cr_assert_eq(nfields, 28);
	char id[256];
	/* Records: header, 3 bands, then the flows in order (flow 1: the
	 * weird id). */
	size_t n = csv_records(s, nfields, 1 + 3 + 1, id, sizeof(id));
	cr_assert_eq(n, 1 + r.nbands + r.nflows);
	cr_assert_str_eq(id, WEIRD_ID);
	cr_assert_eq(strncmp(s, "kind,id,priority,band,", 22), 0);
	cr_assert_not_null(strstr(s, "\r\nband,,10,0,,2,"));
	/* band -1 dispatched nothing: its quantiles and Jain's index are
	 * empty fields, not 0 or nan. */
	cr_assert_not_null(strstr(
		s, "\r\nband,,-1,2,,1,50,20,0,0,0,0,25,5,0,5000,0,0,0,,,,,,,,,0\r\n"));
	cr_assert_null(strstr(s, "nan"));
	free(s);
	result_free(&r);
}

/* ---- the text table --------------------------------------------------------------- */

static size_t
display_width(const char *s, size_t len)
{
	size_t w = 0;
	for (size_t i = 0; i < len; i++)
		w += ((unsigned char)s[i] & 0xc0) != 0x80;
	return w;
}

/* Every line of @p s fits in 100 columns, has no trailing blank, and in
 * each table (a head line followed by a rule of dashes, up to a blank
 * line) every row's cells end where their column's head ends (right
 * alignment) or are blank. */
static void
check_text_tables(const char *s)
{
	char head[256] = "";
	size_t ends[16], nends = 0;
	const char *prev = NULL;
	size_t prev_len = 0;
	for (const char *line = s; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		cr_assert_leq(display_width(line, len), 100, "too wide: %.*s", (int)len,
			      line);
		cr_assert(len == 0 || line[len - 1] != ' ', "trailing blank: %.*s",
			  (int)len, line);
		if (len == 0) {
			nends = 0;
		} else if (line[0] == '-' && prev && nends == 0) {
			/* The rule under a head: column ends from the head line
			 * (its first column is left-aligned: skipped). */
			snprintf(head, sizeof(head), "%.*s", (int)prev_len, prev);
			for (size_t i = 1; i <= prev_len; i++)
				if (head[i - 1] != ' ' &&
				    (i == prev_len || head[i] == ' ') && i > 0 &&
				    nends < 16)
					ends[nends++] = i - 1;
			/* Ends of the right-aligned columns: drop the first
			 * column's end(s) (words of the left label). */
			size_t first = 0;
			while (first < nends && ends[first] < 12)
				first++;
			memmove(ends, ends + first, (nends - first) * sizeof(*ends));
			nends -= first;
		} else if (nends && line[0] != '-') {
			/* Columns are filled from the right edge: a non-blank
			 * cell ends exactly at its column's end. ASCII-only
			 * rows are checked (ids may hold multibyte text, which
			 * shifts byte positions but not columns). */
			bool ascii = true;
			for (size_t i = 0; i < len; i++)
				ascii &= (unsigned char)line[i] < 0x80;
			for (size_t k = 0; ascii && k < nends; k++) {
				size_t e = ends[k];
				if (e >= len)
					continue; /* trailing empty cells, cut */
				if (line[e] != ' ') {
					cr_assert(e + 1 == len || line[e + 1] == ' ',
						  "cell past its column end %zu: %.*s", e,
						  (int)len, line);
					continue;
				}
				/* A blank end: the whole cell must be blank. */
				size_t from = k ? ends[k - 1] + 1 : e - 3;
				for (size_t i = from; i <= e; i++)
					cr_assert_eq(
						line[i], ' ',
						"cell short of its column end %zu: %.*s",
						e, (int)len, line);
			}
		}
		prev = line;
		prev_len = len;
		line += len + (nl != NULL);
	}
}

Test(sim_report, table_fits_and_aligns)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	char *s;
	RENDER(s, sim_report_table(out, &r));
	dump("demo.txt", s);
	cr_assert_not_null(strstr(s, "  (5 more)"), "15 std flows: 10 shown");
	cr_assert_not_null(strstr(s, "q\"<&>,\xc3\xa9\\xff"),
			   "the id, escaped for a terminal");
	cr_assert_not_null(strstr(s, "\nconservation: OK"));
	cr_assert_not_null(strstr(s, "priority inversions: 12"));
	check_text_tables(s);
	/* "(5 more)" sums the 5 flows not shown: the std flows with the least
	 * offered, std-0..std-4 (f = 2..6). */
	uint64_t rest = 0;
	for (size_t f = 2; f < 7; f++)
		rest += r.flows[f].c.offered;
	unsigned long long got = 0;
	cr_assert_eq(sscanf(strstr(s, "  (5 more)") + 10, "%llu", &got), 1);
	cr_assert_eq(got, rest);
	free(s);

	r.conserved = false;
	strcpy(r.conservation_error, "band 0: offered 10 != outcomes 9");
	RENDER(s, sim_report_table(out, &r));
	cr_assert_not_null(
		strstr(s, "\nconservation: FAILED: band 0: offered 10 != outcomes 9\n"));
	free(s);
	result_free(&r);
}

/* ---- HTML ---------------------------------------------------------------------- */

/* The <svg> element with id @p id: its text up to </svg>, or NULL. */
static char *
svg_by_id(const char *html, const char *id)
{
	char key[96];
	snprintf(key, sizeof(key), "<svg id=\"%s\"", id);
	const char *a = strstr(html, key);
	if (!a)
		return NULL;
	const char *b = strstr(a, "</svg>");
	cr_assert_not_null(b);
	return strndup(a, (size_t)(b - a) + 6);
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

static void
check_html(const char *s)
{
	char err[256];
	cr_assert_eq(html_check(s, strlen(s), err, sizeof(err)), 0, "%s", err);
	/* Self-contained: nothing fetched from anywhere. */
	cr_assert_null(strcasestr(s, "http"));
	cr_assert_null(strcasestr(s, "<script"));
	cr_assert_null(strstr(s, "src="));
	cr_assert_null(strstr(s, "href="));
	cr_assert_null(strstr(s, "@import"));
	for (const char *p = s; (p = strstr(p, "url(")) != NULL; p += 4)
		cr_assert_eq(p[4], '#', "url() to something outside the file");
}

Test(sim_report, html_is_well_formed_with_every_chart)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	char *s;
	RENDER(s, sim_report_html(out, &r, NULL));
	dump("demo.html", s);
	check_html(s);
	static const char *const charts[] = {"chart-cdf",      "chart-depth",
					     "chart-jain",     "chart-share-b0",
					     "chart-share-b1", "chart-share-b2"};
	for (size_t i = 0; i < sizeof(charts) / sizeof(charts[0]); i++) {
		char *svg = svg_by_id(s, charts[i]);
		cr_assert_not_null(svg, "no %s", charts[i]);
		cr_assert_not_null(strstr(svg, "<title"), "%s has no title", charts[i]);
		free(svg);
	}
	cr_assert_null(strstr(s, "chart-heatmap"));
	/* User text is escaped everywhere it appears. */
	cr_assert_not_null(strstr(s, "q&quot;&lt;&amp;&gt;,\xc3\xa9\\xff"));
	cr_assert_not_null(strstr(s,
				  "<title>flowq-sim report: demo &lt;scenario&gt; &amp; "
				  "&quot;friends&quot;</title>"));
	cr_assert_null(strstr(s, WEIRD_ID));

	/* CDF: one line per band that dispatched, the empty band in the
	 * legend only; steps at most at 240 ranks: 2 points each, plus the
	 * start. */
	char *cdf = svg_by_id(s, "chart-cdf");
	cr_assert_eq(count(cdf, "<polyline"), 2);
	cr_assert_not_null(strstr(cdf, "band -1 (none dispatched)"));
	for (const char *p = cdf; (p = strstr(p, "points=\"")) != NULL; p++) {
		const char *e = strchr(p + 8, '"');
		size_t pts = 1;
		for (const char *q = p + 8; q < e; q++)
			pts += *q == ' ';
		cr_assert_leq(pts, 2 * 240 + 1);
	}
	/* Log axis: decade ticks labelled in human units. */
	cr_assert_not_null(strstr(cdf, ">1ms</text>"));
	cr_assert_not_null(strstr(cdf, ">10ms</text>"));
	free(cdf);
	/* Depth: 600 windows drawn as 240 points per band, said in the
	 * caption. */
	char *depth = svg_by_id(s, "chart-depth");
	cr_assert_eq(count(depth, "<polyline"), 3);
	free(depth);
	cr_assert_not_null(
		strstr(s, "each point covers up to 3 windows (their largest value)"));
	/* Jain: band -1 is all NaN (no line), band 0 has gaps. */
	char *jain = svg_by_id(s, "chart-jain");
	cr_assert_gt(count(jain, "<polyline"), 3);
	free(jain);
	cr_assert_not_null(strstr(s, "band -1 (no data)</text>"));
	cr_assert_not_null(strstr(s, "The band dispatched nothing."));
	/* Share of band 0 (15 flows): 7 flows and "others". */
	char *share = svg_by_id(s, "chart-share-b1");
	cr_assert_eq(count(share, "<polygon"), 8);
	cr_assert_not_null(strstr(share, "8 others"));
	free(share);
	free(s);

	/* The whole page is a few hundred KB at most, however long the run. */
	RENDER(s, sim_report_html(out, &r, NULL));
	cr_assert_lt(strlen(s), 400000, "%zu bytes", strlen(s));
	free(s);
	result_free(&r);
}

/* Each of @p want occurs in @p s, in that order. */
static void
check_in_order(const char *s, const char *const *want, size_t n)
{
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++) {
		s = strstr(s, want[i]);
		cr_assert_not_null(s, "%s (#%zu) missing or out of order", want[i], i);
		s += strlen(want[i]);
	}
}

static void
tune_fixture(struct sim_tune_result *t)
{
	/* shards {1, 2, 10} x fairness {drr, wfq} x ordering {fcfs, edf}; the
	 * objective (p99, lower is better) is best at shards=2, wfq, edf;
	 * one combination failed. */
	static char *keys[] = {"engine.shards", "engine.bands[0].fairness",
			       "engine.bands[0].ordering"};
	static const char *const shards[] = {"10", "1", "2"},
				 *const fair[] = {"wfq", "drr"},
				 *const ord[] = {"fcfs", "edf"};
	static char *values[12][3];
	static struct sim_tune_row rows[12];
	size_t n = 0;
	for (size_t a = 0; a < 3; a++)
		for (size_t b = 0; b < 2; b++)
			for (size_t c = 0; c < 2; c++, n++) {
				values[n][0] = (char *)shards[a];
				values[n][1] = (char *)fair[b];
				values[n][2] = (char *)ord[c];
				double obj =
					100 + 10 * (double)a + 5 * (double)b + (double)c;
				if (a == 2 && b == 0 && c == 1)
					obj = 50; /* 2, wfq, edf */
				rows[n] = (struct sim_tune_row){
					.order = n,
					.values = values[n],
					.objective = obj,
					.conserved = true,
					.total = {.offered = 1000,
						  .dispatched = 900 + n}};
			}
	rows[3].objective = NAN; /* 10, drr, edf */
	rows[3].conserved = false;
	rows[3].error = "engine: <oops> & \"bad\"";
	/* Ranked: best first, the failed last. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (isnan(rows[i].objective) ||
			    (!isnan(rows[j].objective) &&
			     rows[j].objective < rows[i].objective)) {
				struct sim_tune_row tmp = rows[i];
				rows[i] = rows[j];
				rows[j] = tmp;
			}
	*t = (struct sim_tune_result){.keys = keys,
				      .nkeys = 3,
				      .objective = "p99(band 10)",
				      .maximize = false,
				      .rows = rows,
				      .nrows = n};
}

Test(sim_report, html_tune_heatmap)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	struct sim_tune_result t;
	tune_fixture(&t);
	char *s;
	RENDER(s, sim_report_html(out, &r, &t));
	dump("demo-tune.html", s);
	check_html(s);
	char *hm = svg_by_id(s, "chart-heatmap");
	cr_assert_not_null(hm);
	/* 3 x 2 cells (best over ordering), the best cell's frame, the color
	 * scale bar. */
	cr_assert_eq(count(hm, "<rect"), 6 + 1 + 1);
	cr_assert_not_null(strstr(hm, "<linearGradient id=\"hm-scale\""));
	cr_assert_not_null(strstr(hm, ">best 50</text>"));
	cr_assert_not_null(strstr(hm, ">worst 125</text>"));
	/* Axes in command-line order (the enumeration's), cells row by row
	 * (wfq, then drr; columns 10, 1, 2), each the best over ordering;
	 * (10, drr) is fcfs's 105 since edf failed there. */
	static const char *const axis_cmdline[] = {">10<", ">1<", ">2<", ">wfq<",
						   ">drr<"};
	static const char *const cells_cmdline[] = {">100<", ">110<", ">50<",
						    ">105<", ">115<", ">125<"};
	check_in_order(hm, cells_cmdline, 6);
	check_in_order(strstr(hm, ">125<"), axis_cmdline, 5);
	free(hm);
	free(s);
	/* Without an enumeration order (all 0), values sort as numbers (1,
	 * 2, 10) or bytes (drr, wfq). */
	for (size_t i = 0; i < t.nrows; i++)
		t.rows[i].order = 0;
	RENDER(s, sim_report_html(out, &r, &t));
	hm = svg_by_id(s, "chart-heatmap");
	static const char *const axis_sorted[] = {">1<", ">2<", ">10<", ">drr<", ">wfq<"};
	static const char *const cells_sorted[] = {">115<", ">125<", ">105<",
						   ">110<", ">50<",  ">100<"};
	check_in_order(hm, cells_sorted, 6);
	check_in_order(strstr(hm, ">100<"), axis_sorted, 5);
	free(hm);
	cr_assert_not_null(strstr(s, "engine: &lt;oops&gt; &amp; &quot;bad&quot;"));
	cr_assert_not_null(strstr(s, "<code>engine.shards=2</code>"));
	free(s);

	/* A cell where every run failed is grey and says so. */
	for (size_t i = 0; i < t.nrows; i++)
		if (strcmp(t.rows[i].values[0], "10") == 0 &&
		    strcmp(t.rows[i].values[1], "drr") == 0)
			t.rows[i].objective = NAN;
	RENDER(s, sim_report_html(out, &r, &t));
	check_html(s);
	hm = svg_by_id(s, "chart-heatmap");
	cr_assert_eq(count(hm, "fill=\"#dddddd\""), 1);
	cr_assert_eq(count(hm, ">failed</text>"), 1);
	free(hm);
	free(s);

	/* Tune alone (no run to show), and a single key (one row of cells). */
	t.nkeys = 1;
	RENDER(s, sim_report_html(out, NULL, &t));
	check_html(s);
	hm = svg_by_id(s, "chart-heatmap");
	cr_assert_not_null(hm);
	cr_assert_eq(count(hm, "<rect"), 3 + 1 + 1);
	free(hm);
	free(s);
	result_free(&r);
}

/* ---- comparison ---------------------------------------------------------------- */

Test(sim_report, compare_variants)
{
	struct sim_result a, b;
	struct sim_spec sa, sb;
	demo_result(&a, &sa);
	golden_result(&b, &sb); /* band 5 only: the other bands are missing */
	const struct sim_result *rs[] = {&a, &b, &a};
	const char *names[] = {"baseline", "no <displacement>", "third, again"};
	char *s, err[256];

	RENDER(s, sim_report_compare(out, names, rs, 3));
	dump("compare.txt", s);
	cr_assert_not_null(strstr(s, "no <displacement>"));
	cr_assert_not_null(strstr(s, "band 5"));
	cr_assert_not_null(strstr(s, "band -1"));
	cr_assert_not_null(strstr(s, "conservation: OK in every variant"));
	check_text_tables(s);
	free(s);

	RENDER(s, sim_report_json_compare(out, names, rs, 3));
	cr_assert_eq(json_check(s, strlen(s), err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count(s, "\"format\": \"flowq-sim.result.v1\""), 3);
	cr_assert_not_null(strstr(s, "\"name\": \"no <displacement>\""));
	free(s);

	RENDER(s, sim_report_html_compare(out, names, rs, 3));
	dump("compare.html", s);
	check_html(s);
	/* Bands 10, 5, 0, -1 (the union): three overlay charts each. */
	for (size_t p = 0; p < 4; p++) {
		static const char *const kinds[] = {"cdf", "depth", "jain"};
		for (size_t k = 0; k < 3; k++) {
			char id[64];
			snprintf(id, sizeof(id), "chart-cmp-%s-b%zu", kinds[k], p);
			char *svg = svg_by_id(s, id);
			cr_assert_not_null(svg, "no %s", id);
			free(svg);
		}
	}
	char *cdf = svg_by_id(s, "chart-cmp-cdf-b0");
	cr_assert_eq(count(cdf, "<polyline"), 2, "band 10: two variants have it");
	free(cdf);
	/* Each variant's share per flow over time, one chart per band of it,
	 * inside its <details> (the first open). */
	for (size_t v = 0; v < 3; v++)
		for (size_t b = 0; b < rs[v]->nbands; b++) {
			char id[64];
			snprintf(id, sizeof(id), "chart-cmp-share-v%zu-b%zu", v, b);
			char *svg = svg_by_id(s, id);
			cr_assert_not_null(svg, "no %s", id);
			cr_assert_geq(count(svg, "<polygon"), 1, "%s: no layer", id);
			free(svg);
		}
	cr_assert_eq(count(s, "<details open=\"open\">"), 1);
	cr_assert_eq(count(s, "<details"), 3);
	cr_assert_not_null(strstr(s, "no &lt;displacement&gt;"));
	free(s);
	result_free(&a);
	result_free(&b);
}

/* ---- locale ------------------------------------------------------------------------ */

/* Makes LC_NUMERIC a decimal-comma locale: an installed one if any, else
 * one compiled with localedef into a temporary LOCPATH (LC_NUMERIC only,
 * ASCII: a tenth of a second). @return the directory to remove, or NULL. */
static char *
comma_locale(bool *r_ok)
{
	static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
					    "de_DE", NULL};
	*r_ok = false;
	for (size_t i = 0; names[i]; i++)
		if (setlocale(LC_NUMERIC, names[i])) {
			*r_ok = true;
			return NULL;
		}
	char tmpl[] = "/tmp/flowq-sim-locale-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		return NULL;
	char src[128], cmd[512];
	snprintf(src, sizeof(src), "%s/comma.src", dir);
	FILE *f = fopen(src, "w");
	if (f) {
		fputs("LC_NUMERIC\ndecimal_point \"<U002C>\"\nthousands_sep \"<U002E>\"\n"
		      "grouping 3;3\nEND LC_NUMERIC\n",
		      f);
		fclose(f);
		snprintf(cmd, sizeof(cmd),
			 "localedef -c -i %s -f ANSI_X3.4-1968 %s/xx_XX >/dev/null 2>&1",
			 src, dir);
		if (system(cmd) != -1) {
			setenv("LOCPATH", dir, 1);
			*r_ok = setlocale(LC_NUMERIC, "xx_XX") != NULL;
			if (*r_ok)
				cr_log_info("no comma locale installed: made one with "
					    "localedef");
		}
	}
	return strdup(dir);
}

Test(sim_report, output_ignores_the_process_locale)
{
	struct sim_result r;
	struct sim_spec spec;
	demo_result(&r, &spec);
	struct sim_tune_result t;
	tune_fixture(&t);
	char *c_json, *c_csv, *c_html, *c_table;
	RENDER(c_json, sim_report_json(out, &r));
	RENDER(c_csv, sim_report_csv(out, &r));
	RENDER(c_html, sim_report_html(out, &r, &t));
	RENDER(c_table, sim_report_table(out, &r));

	bool ok;
	char *dir = comma_locale(&ok);
	if (ok) {
		char probe[16];
		snprintf(probe, sizeof(probe), "%g", 0.5);
		cr_assert_str_eq(probe, "0,5", "the comma locale is in effect");
		char *json, *csv, *html, *table;
		RENDER(json, sim_report_json(out, &r));
		RENDER(csv, sim_report_csv(out, &r));
		RENDER(html, sim_report_html(out, &r, &t));
		RENDER(table, sim_report_table(out, &r));
		setlocale(LC_NUMERIC, "C");
		cr_assert_str_eq(json, c_json);
		cr_assert_str_eq(csv, c_csv);
		cr_assert_str_eq(html, c_html);
		cr_assert_str_eq(table, c_table);
		free(json);
		free(csv);
		free(html);
		free(table);
	} else {
		cr_log_warn("no decimal-comma locale and no localedef: checked in the C "
			    "locale "
			    "only");
	}
	if (dir) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		cr_assert_eq(system(cmd), 0);
		free(dir);
	}
	free(c_json);
	free(c_csv);
	free(c_html);
	free(c_table);
	result_free(&r);
}

/* ---- an empty result -------------------------------------------------------------- */

Test(sim_report, empty_result_renders_everywhere)
{
	/* No bands, no flows, no windows, no duration, no spec: every
	 * renderer still writes something valid. */
	struct sim_result r;
	result_init(&r, 0, 0, 0);
	r.duration_ns = 0;
	r.end_ns = 0;
	char *s, err[256];
	RENDER(s, sim_report_json(out, &r));
	cr_assert_eq(json_check(s, strlen(s), err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(s, "\"spec\": null,"));
	cr_assert_not_null(strstr(s, "\"throughput_rps\": null,"));
	cr_assert_not_null(strstr(s, "\"bands\": [],"));
	free(s);
	RENDER(s, sim_report_csv(out, &r));
	cr_assert_eq(count(s, "\r\n"), 1);
	free(s);
	RENDER(s, sim_report_table(out, &r));
	check_text_tables(s);
	free(s);
	RENDER(s, sim_report_html(out, &r, NULL));
	check_html(s);
	char *svg = svg_by_id(s, "chart-cdf");
	cr_assert_not_null(svg);
	free(svg);
	cr_assert_not_null(strstr(s, "No request was dispatched."));
	free(s);
	const struct sim_result *rs[] = {&r};
	const char *names[] = {"only"};
	RENDER(s, sim_report_html_compare(out, names, rs, 1));
	check_html(s);
	free(s);
	RENDER(s, sim_report_html(out, NULL, NULL));
	check_html(s);
	free(s);
	result_free(&r);
}
