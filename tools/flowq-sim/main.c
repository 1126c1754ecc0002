/*
 * flowq-sim: the workload simulator's command line (tools/flowq-sim/sim.h
 * has the model).
 *
 *   flowq-sim run [SPEC] [--virtual|--realtime] [--seed N] [--duration T]
 *                 [--json F] [--csv F] [--html F] [--set KEY=VALUE]...
 *                 [--progress auto|always|never]
 *   flowq-sim tune [SPEC] --vary KEY=V1,V2,... [--vary ...] --objective EXPR
 *                  [--virtual|--realtime] [--seed N] [--duration T]
 *                  [--set KEY=VALUE]... [--json F] [--csv F] [--html F]
 *                  [--progress auto|always|never]
 *   flowq-sim list
 *
 * run: loads SPEC (without it the built-in default scenario), applies the
 * overrides (--seed N is "sim.seed=N", --duration T "sim.duration=T", each
 * --set as given, in command-line order), runs it, then each of its
 * `compare:` variants (the same overrides, then the variant's own: the
 * variant wins where both set a key). stdout gets the spec's table and,
 * with variants, the side-by-side comparison (sim_report_compare).
 * --json and --html write the run (with variants: the comparison,
 * sim_report_json_compare / sim_report_html_compare, every run in one
 * file); --csv writes the spec's run to F and each variant's to F with
 * ".<variant>" before the extension (out.csv, out.no-displacement.csv).
 * tune: tune.c (sim_tune) runs every combination of the --vary values,
 * prints the ranked table and the best combination as YAML; --json and
 * --csv write the ranked runs with each one's objective and key figures
 * (sim_report_tune_json, sim_report_tune_csv), --html the tuning table and
 * heat-map; the progress of each run as in run (named "tune: run I/N:
 * K=V ...") and a line per finished run on stderr, unless --progress
 * never.
 * Report files are created before the first run (a bad path fails at
 * once, not after a long run). Progress goes to stderr only: a live line
 * when stderr is a terminal (auto) or always, a line every 5 s otherwise
 * (auto), nothing with never.
 *
 * Exit status: 0; 1 when a run broke conservation (sim_result.conserved);
 * 2 on bad usage, a bad spec, or a run that could not be carried out
 * (message on stderr).
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <flowq/policy.h>

#include "sim.h"

#define EXIT_CONSERVATION 1
#define EXIT_USAGE        2

static const char usage_text[] =
	"usage: flowq-sim run [SPEC] [--virtual|--realtime] [--seed N] [--duration T]\n"
	"                     [--json F] [--csv F] [--html F] [--set KEY=VALUE]...\n"
	"                     [--progress auto|always|never]\n"
	"       flowq-sim tune [SPEC] --vary KEY=V1,V2,... [--vary ...] --objective "
	"EXPR\n"
	"                      [--virtual|--realtime] [--seed N] [--duration T]\n"
	"                      [--set KEY=VALUE]... [--json F] [--csv F] [--html F]\n"
	"                      [--progress auto|always|never]\n"
	"       flowq-sim list\n"
	"\n"
	"run   runs SPEC (a workload spec, YAML; without it the built-in default\n"
	"      scenario) and each of its compare: variants, prints the results and\n"
	"      writes the reports asked for. --virtual: deterministic, on a simulated\n"
	"      clock; --realtime: producer threads and dispatchers on the wall clock.\n"
	"      --seed and --duration are short for --set sim.seed=N, sim.duration=T.\n"
	"tune  runs SPEC once per combination of the --vary values and ranks the\n"
	"      runs by the objective (e.g. 'min:p99(band=10)', 'max:jain(band=0)';\n"
	"      tools/flowq-sim/tune.c has the grammar); prints the best as YAML;\n"
	"      --json/--csv: every run's objective and key figures, --html: the\n"
	"      table and a heat-map of the objective over the first two keys.\n"
	"list  the policies and detectors a spec may name, and the queue settings.\n"
	"\n"
	"Exit status: 0; 1 if a run broke conservation; 2 on bad usage or spec.\n";

static int
usage_error(const char *fmt, const char *arg)
{
	fputs("flowq-sim: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(flowq-sim --help for usage)\n", stderr);
	return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* list                                                                     */
/* ------------------------------------------------------------------------ */

static void
list_desc(const char *name, const char *desc)
{
	printf("  %-20s %s\n", name, desc ? desc : "");
}

/* The saturation detectors are names in struct flowq_saturation_config,
 * not a registry (flowq_config_validate() knows the three). */
static const struct {
	const char *name, *desc;
} detectors[] = {
	{"concurrency", "in flight (dispatched, not released) against max_inflight / "
			"max_inflight_bytes (default)"},
	{"utilization", "host-reported endpoint queue depth and KV-cache use (GIE's "
			"roofline score; flowq_endpoint_report)"},
	{"callback", "the host's function returns the pool's saturation (set in code, "
		     "not in YAML)"},
};

static const struct {
	const char *key, *desc;
} queue_keys[] = {
	{"shards", "registry slices with one dispatcher each; a flow lives on one"},
	{"max_requests, max_bytes", "global queue limit (displacement acts here only)"},
	{"bands[].max_requests", "per-band queue limit (also max_bytes)"},
	{"flow_max_requests", "per-flow queue limit (also flow_max_bytes)"},
	{"default_ttl_ns", "how long a request may wait (flows[].ttl overrides)"},
	{"bands[].usage_ceiling", "a band dispatches only while saturation is below it"},
	{"bands[].quantum", "drr's bytes per turn at weight 1"},
	{"displacement_max_pending",
	 "newcomers admitted ahead of their victims' shedding"},
};

static int
cmd_list(void)
{
	printf("fairness policies (engine.bands[].fairness: which flow goes next):\n");
	for (size_t i = 0; flowq_fairness_at(i); i++)
		list_desc(flowq_fairness_at(i)->desc.name,
			  flowq_fairness_at(i)->desc.description);
	printf("\nordering policies (engine.bands[].ordering: which request of a "
	       "flow):\n");
	for (size_t i = 0; flowq_ordering_at(i); i++)
		list_desc(flowq_ordering_at(i)->desc.name,
			  flowq_ordering_at(i)->desc.description);
	printf("\ndisplacement policies (engine.displacement: what is shed when "
	       "full):\n");
	for (size_t i = 0; flowq_displacement_at(i); i++)
		list_desc(flowq_displacement_at(i)->desc.name,
			  flowq_displacement_at(i)->desc.description);
	printf("\nsaturation detectors (engine.saturation.detector: when the backend is "
	       "full):\n");
	for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++)
		list_desc(detectors[i].name, detectors[i].desc);
	printf("\nqueue settings (engine.*; each flow has its own lock-free inbox):\n");
	for (size_t i = 0; i < sizeof(queue_keys) / sizeof(queue_keys[0]); i++)
		printf("  %-26s %s\n", queue_keys[i].key, queue_keys[i].desc);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                 */
/* ------------------------------------------------------------------------ */

struct progress {
	bool live;
	const char *name;
	double last_wall;
	double every_s;
	bool printed;
};

static uint64_t
queued_of(const struct sim_counts *c)
{
	uint64_t out = c->rejected_capacity + c->rejected_other + c->dispatched +
		       c->expired + c->cancelled + c->displaced + c->shutdown;
	return c->offered > out ? c->offered - out : 0;
}

static void
on_progress(void *ctx, int64_t now_ns, const struct sim_result *partial)
{
	struct progress *p = ctx;
	double w = sim_clock_s(SIM_CLOCK_WALL);
	if (w - p->last_wall < p->every_s)
		return;
	p->last_wall = w;
	const struct sim_counts *c = &partial->total;
	char line[200];
	snprintf(line, sizeof(line),
		 "%s: %.1f s / %.1f s %s, offered %llu, dispatched %llu, queued "
		 "%llu",
		 p->name, (double)now_ns * 1e-9, (double)partial->duration_ns * 1e-9,
		 partial->mode == SIM_MODE_VIRTUAL ? "simulated" : "on the wall clock",
		 (unsigned long long)c->offered, (unsigned long long)c->dispatched,
		 (unsigned long long)queued_of(c));
	if (p->live) {
		fprintf(stderr, "\r\033[K%s", line);
		p->printed = true;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	fflush(stderr);
}

static void
progress_end(struct progress *p)
{
	if (p->live && p->printed) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->printed = false;
}

/* ------------------------------------------------------------------------ */
/* run                                                                      */
/* ------------------------------------------------------------------------ */

enum progress_mode {
	PROGRESS_AUTO,
	PROGRESS_ALWAYS,
	PROGRESS_NEVER,
};

/* The options of run and tune. */
struct args {
	bool tune;
	const char *spec;
	bool mode_set;
	enum sim_mode mode;
	const char *json, *csv, *html;
	enum progress_mode progress;
	const char **overrides; /* in command-line order */
	size_t noverrides;
	char **owned; /* the overrides made from --seed, --duration */
	size_t nowned;
	const char **vary; /* tune: --vary arguments */
	size_t nvary;
	const char *objective; /* tune */
};

struct outcome {
	char *name;
	struct sim_result r;
	struct sim_spec spec;
	bool loaded, ran;
};

static void
args_free(struct args *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	free(a->overrides);
	free(a->vary);
}

static int
push(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = s;
	return 0;
}

/* "--seed" + N -> "sim.seed=N". */
static int
add_owned(struct args *a, const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *s = malloc(n);
	char **no = realloc(a->owned, (a->nowned + 1) * sizeof(*no));
	if (no)
		a->owned = no;
	if (!s || !no || push(&a->overrides, &a->noverrides, s) < 0) {
		free(s);
		return -ENOMEM;
	}
	snprintf(s, n, "%s=%s", key, value);
	a->owned[a->nowned++] = s;
	return 0;
}

/* Parse the options of run (@p tune false) or tune. @return 0 or an exit
 * status (message printed). */
static int
parse_args(struct args *a, int argc, char **argv)
{
	const char *cmd = a->tune ? "tune" : "run";
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(s, "--seed") == 0 || strcmp(s, "--duration") == 0 ||
			     strcmp(s, "--json") == 0 || strcmp(s, "--csv") == 0 ||
			     strcmp(s, "--html") == 0 || strcmp(s, "--set") == 0 ||
			     strcmp(s, "--progress") == 0 ||
			     (a->tune && (strcmp(s, "--vary") == 0 ||
					  strcmp(s, "--objective") == 0));
		if (takes && !val)
			return usage_error("%s needs a value", s);
		if (takes)
			i++;
		int rc = 0;
		if (strcmp(s, "--virtual") == 0 || strcmp(s, "--realtime") == 0) {
			enum sim_mode m =
				s[2] == 'v' ? SIM_MODE_VIRTUAL : SIM_MODE_REALTIME;
			if (a->mode_set && a->mode != m)
				return usage_error(
					"%s",
					"--virtual and --realtime exclude each other");
			a->mode_set = true;
			a->mode = m;
		} else if (strcmp(s, "--seed") == 0) {
			rc = add_owned(a, "sim.seed", val);
		} else if (strcmp(s, "--duration") == 0) {
			rc = add_owned(a, "sim.duration", val);
		} else if (strcmp(s, "--set") == 0) {
			if (!strchr(val, '=') || val[0] == '=')
				return usage_error("--set %s: expected KEY=VALUE", val);
			rc = push(&a->overrides, &a->noverrides, val);
		} else if (strcmp(s, "--vary") == 0) {
			rc = push(&a->vary, &a->nvary, val);
		} else if (strcmp(s, "--objective") == 0) {
			a->objective = val;
		} else if (strcmp(s, "--json") == 0) {
			a->json = val;
		} else if (strcmp(s, "--csv") == 0) {
			a->csv = val;
		} else if (strcmp(s, "--html") == 0) {
			a->html = val;
		} else if (strcmp(s, "--progress") == 0) {
			if (strcmp(val, "auto") == 0)
				a->progress = PROGRESS_AUTO;
			else if (strcmp(val, "always") == 0)
				a->progress = PROGRESS_ALWAYS;
			else if (strcmp(val, "never") == 0)
				a->progress = PROGRESS_NEVER;
			else
				return usage_error(
					"--progress %s: expected auto, always or never",
					val);
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr,
				"flowq-sim: %s: unknown option %s\n(flowq-sim --help for "
				"usage)\n",
				cmd, s);
			return EXIT_USAGE;
		} else if (a->spec) {
			return usage_error("one SPEC only (got a second: %s)", s);
		} else {
			a->spec = s;
		}
		if (rc < 0)
			return usage_error("%s", "out of memory");
	}
	if (a->tune) {
		if (a->nvary == 0)
			return usage_error(
				"%s",
				"tune: at least one --vary KEY=V1,V2,... is needed");
		if (!a->objective)
			return usage_error("%s", "tune: --objective EXPR is needed");
	}
	/* Fail before a long run, not after it: the report files must be
	 * writable (they are created now and rewritten at the end). */
	const char *paths[] = {a->json, a->csv, a->html};
	for (int k = 0; k < 3; k++) {
		FILE *f = paths[k] ? fopen(paths[k], "w") : NULL;
		if (paths[k] && !f) {
			fprintf(stderr, "flowq-sim: %s: cannot open for writing: %s\n",
				paths[k], strerror(errno));
			return EXIT_USAGE;
		}
		if (f)
			fclose(f);
	}
	return 0;
}

static FILE *
open_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "flowq-sim: %s: cannot open for writing: %s\n", path,
			strerror(errno));
	return f;
}

static int
close_out(FILE *f, const char *path)
{
	if (fclose(f) != 0) {
		fprintf(stderr, "flowq-sim: %s: write failed: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* F with ".<variant>" before its extension; spaces and slashes become
 * '-'. */
static char *
variant_path(const char *path, const char *variant)
{
	size_t n = strlen(path) + strlen(variant) + 2;
	char *out = malloc(n);
	if (!out)
		return NULL;
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	if (!dot || (slash && dot < slash) || dot == path || (slash && dot == slash + 1))
		dot = path + strlen(path);
	size_t head = (size_t)(dot - path);
	memcpy(out, path, head);
	size_t o = head;
	out[o++] = '.';
	for (const char *v = variant; *v; v++)
		out[o++] = (*v == ' ' || *v == '/' || *v == '\t') ? '-' : *v;
	strcpy(out + o, dot);
	return out;
}

/* The report files of the @p m runs that ran (@p names, @p rs; the first
 * is the spec's own; @p compare: the spec has variants). @return 0, or -1
 * if one could not be written (message printed). */
static int
write_reports(const struct args *a, const char *const *names,
	      const struct sim_result *const *rs, size_t m, bool compare)
{
	int bad = 0;
	FILE *f;
	if (m == 0)
		return 0;
	if (a->json && (f = open_out(a->json))) {
		if (compare)
			sim_report_json_compare(f, names, rs, m);
		else
			sim_report_json(f, rs[0]);
		bad |= close_out(f, a->json);
	} else if (a->json) {
		bad = -1;
	}
	if (a->html && (f = open_out(a->html))) {
		if (compare)
			sim_report_html_compare(f, names, rs, m);
		else
			sim_report_html(f, rs[0], NULL);
		bad |= close_out(f, a->html);
	} else if (a->html) {
		bad = -1;
	}
	for (size_t i = 0; a->csv && i < m; i++) {
		char *path = i == 0 ? strdup(a->csv) : variant_path(a->csv, names[i]);
		if (path && (f = open_out(path))) {
			sim_report_csv(f, rs[i]);
			bad |= close_out(f, path);
		} else {
			bad = -1;
		}
		free(path);
	}
	return bad;
}

static struct sim_run_opts
run_opts(const struct args *a, enum sim_mode spec_mode, struct progress *p)
{
	bool tty = isatty(fileno(stderr));
	p->live = a->progress == PROGRESS_ALWAYS || (a->progress == PROGRESS_AUTO && tty);
	p->every_s = p->live ? 0.1 : 5;
	p->last_wall = sim_clock_s(SIM_CLOCK_WALL);
	return (struct sim_run_opts){
		.mode = a->mode_set ? a->mode : spec_mode,
		.progress = a->progress == PROGRESS_NEVER ? NULL : on_progress,
		.progress_ctx = p,
		.progress_every_ns = 100000000,
	};
}

static int
run_one(const struct args *a, struct outcome *o, const char *const *ovs, size_t novs,
	bool *r_conserved)
{
	char err[512] = "";
	int rc = sim_spec_load(&o->spec, a->spec, ovs, novs, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "flowq-sim: %s\n", err[0] ? err : flowq_strerror(rc));
		return EXIT_USAGE;
	}
	o->loaded = true;
	if (!o->name) { /* the spec's own run: named after the spec */
		o->name = strdup(o->spec.name ? o->spec.name : "spec");
		if (!o->name)
			return usage_error("%s", "out of memory");
	}
	struct progress p = {.name = o->name};
	struct sim_run_opts opts = run_opts(a, o->spec.mode, &p);
	rc = sim_run(&o->spec, &opts, &o->r, err, sizeof(err));
	progress_end(&p);
	if (rc < 0) {
		fprintf(stderr, "flowq-sim: %s\n", err[0] ? err : flowq_strerror(rc));
		return EXIT_USAGE;
	}
	o->ran = true;
	if (!o->r.conserved) {
		fprintf(stderr, "flowq-sim: %s: conservation failed: %s\n", o->name,
			o->r.conservation_error);
		*r_conserved = false;
	}
	return 0;
}

static void
outcome_free(struct outcome *o)
{
	if (!o)
		return;
	if (o->ran)
		sim_result_free(&o->r);
	if (o->loaded)
		sim_spec_free(&o->spec);
	free(o->name);
	free(o);
}

/* @p name NULL: the spec's own run (run_one names it after the spec). */
static struct outcome *
outcome_new(const char *name)
{
	struct outcome *o = calloc(1, sizeof(*o));
	if (o && name && !(o->name = strdup(name))) {
		free(o);
		o = NULL;
	}
	return o;
}

static int
cmd_run(int argc, char **argv)
{
	struct args a = {.progress = PROGRESS_AUTO};
	/* One allocation per run: a result points at its spec (r->spec), so
	 * neither may move. */
	struct outcome **runs = NULL;
	const char **names = NULL;
	const struct sim_result **rs = NULL;
	size_t nruns = 0, m = 0;
	bool conserved = true;
	int status = parse_args(&a, argc, argv);
	if (status)
		goto out;
	if (!(runs = calloc(1, sizeof(*runs))) || !(runs[0] = outcome_new(NULL))) {
		status = usage_error("%s", "out of memory");
		goto out;
	}
	nruns = 1;
	status = run_one(&a, runs[0], a.overrides, a.noverrides, &conserved);
	if (status)
		goto out;
	size_t nv = runs[0]->spec.nvariants;
	struct outcome **more = realloc(runs, (nv + 1) * sizeof(*runs));
	if (!more) {
		status = usage_error("%s", "out of memory");
		goto out;
	}
	runs = more;
	for (size_t v = 0; v < nv; v++) {
		const struct sim_variant *var = &runs[0]->spec.variants[v];
		struct outcome *o = runs[nruns] =
			outcome_new(var->name ? var->name : "variant");
		const char **ovs =
			calloc(a.noverrides + var->noverrides + 1, sizeof(*ovs));
		if (!ovs || !o) {
			free(ovs);
			status = usage_error("%s", "out of memory");
			goto out;
		}
		nruns++;
		memcpy(ovs, a.overrides, a.noverrides * sizeof(*ovs));
		for (size_t i = 0; i < var->noverrides; i++)
			ovs[a.noverrides + i] = var->overrides[i];
		int st = run_one(&a, o, ovs, a.noverrides + var->noverrides, &conserved);
		free(ovs);
		if (st) {
			fprintf(stderr, "flowq-sim: variant \"%s\" did not run\n",
				o->name);
			status = st;
		}
	}
	names = calloc(nruns, sizeof(*names));
	rs = calloc(nruns, sizeof(*rs));
	if (!names || !rs) {
		status = usage_error("%s", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nruns; i++)
		if (runs[i]->ran) {
			names[m] = runs[i]->name;
			rs[m++] = &runs[i]->r;
		}
	sim_report_table(stdout, &runs[0]->r);
	if (nv) {
		fputc('\n', stdout);
		sim_report_compare(stdout, names, rs, m);
	}
	fflush(stdout);
	if (write_reports(&a, names, rs, m, nv > 0) < 0 && status == 0)
		status = EXIT_USAGE;
	if (status == 0 && !conserved)
		status = EXIT_CONSERVATION;
out:
	for (size_t i = 0; i < nruns; i++)
		outcome_free(runs[i]);
	free(runs);
	free(names);
	free(rs);
	args_free(&a);
	return status;
}

/* tune's progress: the runs' (struct progress, named "run I/N: K=V ...")
 * and the combination's line. */
struct tune_progress {
	struct progress p;
	char name[160];
	size_t nkeys;
	const struct sim_vary *vary;
};

static void
tune_on_run(void *ctx, size_t idx, size_t n, const char *const *values,
	    const struct sim_tune_row *row)
{
	struct tune_progress *tp = ctx;
	if (row) {
		progress_end(&tp->p);
		return;
	}
	int len = snprintf(tp->name, sizeof(tp->name), "tune: run %zu/%zu:", idx + 1, n);
	for (size_t k = 0; k < tp->nkeys && len > 0 && (size_t)len < sizeof(tp->name);
	     k++)
		len += snprintf(tp->name + len, sizeof(tp->name) - (size_t)len, " %s=%s",
				tp->vary[k].key, values[k]);
}

/* tune's --json, --csv and --html. @return 0, or -1 if one could not be
 * written (message printed). */
static int
write_tune_reports(const struct args *a, const struct sim_tune_result *res)
{
	int bad = 0;
	FILE *f;
	if (a->json && (f = open_out(a->json))) {
		sim_report_tune_json(f, res);
		bad |= close_out(f, a->json);
	} else if (a->json) {
		bad = -1;
	}
	if (a->csv && (f = open_out(a->csv))) {
		sim_report_tune_csv(f, res);
		bad |= close_out(f, a->csv);
	} else if (a->csv) {
		bad = -1;
	}
	if (a->html && (f = open_out(a->html))) {
		sim_report_html(f, NULL, res);
		bad |= close_out(f, a->html);
	} else if (a->html) {
		bad = -1;
	}
	return bad;
}

static int
cmd_tune(int argc, char **argv)
{
	struct args a = {.tune = true, .progress = PROGRESS_AUTO};
	struct sim_objective *obj = NULL;
	struct sim_vary *vary = NULL;
	size_t nvary = 0;
	char err[512] = "";
	int status = parse_args(&a, argc, argv);
	if (status)
		goto out;
	if (sim_objective_parse(a.objective, &obj, err, sizeof(err)) < 0) {
		status = usage_error("--objective: %s", err);
		goto out;
	}
	if (!(vary = calloc(a.nvary, sizeof(*vary)))) {
		status = usage_error("%s", "out of memory");
		goto out;
	}
	for (; nvary < a.nvary; nvary++)
		if (sim_vary_parse(a.vary[nvary], &vary[nvary], err, sizeof(err)) < 0) {
			status = usage_error("--vary: %s", err);
			goto out;
		}
	/* Without --virtual/--realtime each run takes its spec's mode. The
	 * progress: each run's as in run, named after the combination, and
	 * tune's line per run (after the live line is cleared). */
	struct sim_run_opts ropts = {.mode = a.mode};
	struct tune_progress tp = {.nkeys = nvary, .vary = vary};
	run_opts(&a, SIM_MODE_VIRTUAL, &tp.p);
	tp.p.name = tp.name;
	struct sim_tune_opts o = {
		.spec_path = a.spec,
		.overrides = a.overrides,
		.noverrides = a.noverrides,
		.vary = vary,
		.nvary = nvary,
		.objective = obj,
		.objective_text = a.objective,
		.run = a.mode_set ? &ropts : NULL,
		.progress = a.progress == PROGRESS_NEVER ? NULL : on_progress,
		.progress_ctx = &tp.p,
		.progress_every_ns = 100000000,
		.on_run = a.progress == PROGRESS_NEVER ? NULL : tune_on_run,
		.on_run_ctx = &tp,
		.log = a.progress == PROGRESS_NEVER ? NULL : stderr,
	};
	struct sim_tune_result res;
	int rc = sim_tune(&o, &res, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "flowq-sim: tune: %s\n",
			err[0] ? err : flowq_strerror(rc));
		status = EXIT_USAGE;
		goto out;
	}
	sim_tune_print(stdout, &res);
	if (sim_tune_print_best(stdout, &o, &res, err, sizeof(err)) < 0) {
		fprintf(stderr, "flowq-sim: tune: %s\n", err);
		status = EXIT_USAGE;
	}
	fflush(stdout);
	if (write_tune_reports(&a, &res) < 0 && status == 0)
		status = EXIT_USAGE;
	/* A combination that broke conservation is a failed run of the
	 * engine, as in run. */
	for (size_t i = 0; i < res.nrows && status == 0; i++)
		if (!res.rows[i].error && !res.rows[i].conserved)
			status = EXIT_CONSERVATION;
	sim_tune_result_free(&res);
out:
	for (size_t i = 0; i < nvary; i++)
		sim_vary_free(&vary[i]);
	free(vary);
	sim_objective_free(obj);
	args_free(&a);
	return status;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error("%s", "a command is needed: run, list or tune");
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "list") == 0) {
		if (argc > 2)
			return usage_error("list takes no arguments (got %s)", argv[2]);
		return cmd_list();
	}
	if (strcmp(cmd, "tune") == 0)
		return cmd_tune(argc - 2, argv + 2);
	return usage_error("unknown command \"%s\" (run, list or tune)", cmd);
}
