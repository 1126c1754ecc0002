/*
 * flowq-sim: the workload simulator's command line (tools/flowq-sim/sim.h
 * has the model).
 *
 *   flowq-sim run [SPEC] [--virtual|--realtime] [--seed N] [--duration T]
 *                 [--json F] [--csv F] [--html F] [--set KEY=VALUE]...
 *                 [--progress auto|always|never]
 *   flowq-sim list
 *   flowq-sim tune ...        (not yet)
 *
 * run: loads SPEC (without it the built-in default scenario), applies the
 * overrides (--seed N is "sim.seed=N", --duration T "sim.duration=T", each
 * --set as given, in command-line order), runs it, then each of its
 * `compare:` variants (the same overrides, then the variant's own: the
 * variant wins where both set a key), prints each run's table and, with
 * variants, a side-by-side comparison, on stdout. --json/--csv/--html
 * write the spec's run to F and variant i's to F with ".<variant>" put
 * before the extension (e.g. out.json, out.no-displacement.json).
 * Progress goes to stderr only: a live line when stderr is a terminal
 * (auto) or always, a line every few seconds otherwise (auto), nothing
 * with never.
 *
 * Exit status: 0; 1 when a run broke conservation (sim_result.conserved);
 * 2 on bad usage, a bad spec, or a run that could not be carried out
 * (message on stderr).
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime */
#include <errno.h>
#include <math.h>
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
	"       flowq-sim list\n"
	"       flowq-sim tune SPEC --vary KEY=V1,V2,... --objective EXPR (not yet)\n"
	"\n"
	"run   runs SPEC (a workload spec, YAML; without it the built-in default\n"
	"      scenario) and each of its compare: variants, prints the results and\n"
	"      writes the reports asked for. --virtual: deterministic, on a simulated\n"
	"      clock; --realtime: producer threads and dispatchers on the wall clock.\n"
	"      --seed and --duration are short for --set sim.seed=N, sim.duration=T.\n"
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
	int64_t duration_ns;
	double last_wall;
	double every_s;
	bool printed;
};

static double
wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
	double w = wall_s();
	if (w - p->last_wall < p->every_s)
		return;
	p->last_wall = w;
	const struct sim_counts *c = &partial->total;
	char line[200];
	snprintf(line, sizeof(line),
		 "%s: %.1f s / %.1f s simulated, offered %llu, dispatched %llu, queued "
		 "%llu",
		 p->name, (double)now_ns * 1e-9, (double)p->duration_ns * 1e-9,
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

struct run_args {
	const char *spec;
	bool mode_set;
	enum sim_mode mode;
	const char *json, *csv, *html;
	enum progress_mode progress;
	const char **overrides;
	size_t noverrides;
};

struct outcome {
	char *name;
	struct sim_result r;
	struct sim_spec spec;
	bool loaded, ran;
};

static int
add_override(struct run_args *a, const char *ov)
{
	const char **n = realloc(a->overrides, (a->noverrides + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	a->overrides = n;
	a->overrides[a->noverrides++] = ov;
	return 0;
}

/* "--seed" + N -> "sim.seed=N" (owned by the caller's list of strings). */
static char *
make_override(const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", key, value);
	return s;
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

static int
write_report(const char *path, const char *kind, const struct sim_result *r)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flowq-sim: %s: cannot open for writing: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (strcmp(kind, "json") == 0)
		sim_report_json(f, r);
	else if (strcmp(kind, "csv") == 0)
		sim_report_csv(f, r);
	else
		sim_report_html(f, r, NULL);
	if (fclose(f) != 0) {
		fprintf(stderr, "flowq-sim: %s: write failed: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void
print_q(int64_t ns)
{
	if (ns >= 1000000000)
		printf(" %8.2fs ", (double)ns * 1e-9);
	else if (ns >= 1000000)
		printf(" %7.2fms ", (double)ns * 1e-6);
	else
		printf(" %7.1fus ", (double)ns * 1e-3);
}

/* The comparison of the spec's run with its variants: per band, the
 * figures that differ most between policies. */
static void
print_comparison(const struct outcome *runs, size_t n)
{
	printf("\ncomparison (%zu runs)\n", n);
	printf("%-24s %6s %10s %10s %10s %10s %10s %7s %7s\n", "run", "band", "offered",
	       "dispatched", "shed", "p50 queue", "p99 queue", "jain", "invers");
	for (size_t i = 0; i < n; i++) {
		const struct outcome *o = &runs[i];
		if (!o->ran)
			continue;
		for (size_t b = 0; b < o->r.nbands; b++) {
			const struct sim_band_result *br = &o->r.bands[b];
			uint64_t shed = br->c.rejected_capacity + br->c.rejected_other +
					br->c.expired + br->c.displaced + br->c.shutdown;
			printf("%-24.24s %6d %10llu %10llu %10llu", b == 0 ? o->name : "",
			       (int)br->priority, (unsigned long long)br->c.offered,
			       (unsigned long long)br->c.dispatched,
			       (unsigned long long)shed);
			print_q(sim_quantile(&br->queue_ns, 0.5));
			print_q(sim_quantile(&br->queue_ns, 0.99));
			if (isnan(br->jain_mean))
				printf("%7s", "-");
			else
				printf("%7.3f", br->jain_mean);
			printf(" %7llu\n", (unsigned long long)br->inversions);
		}
		printf("%-24s %6s %10llu %10llu %s\n", "", "all",
		       (unsigned long long)o->r.total.offered,
		       (unsigned long long)o->r.total.dispatched,
		       o->r.conserved ? "conserved" : "NOT CONSERVED");
	}
}

static int
run_one(const struct run_args *a, struct outcome *o, const char *const *ovs, size_t novs,
	bool *r_conserved)
{
	char err[512] = "";
	int rc = sim_spec_load(&o->spec, a->spec, ovs, novs, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "flowq-sim: %s\n", err[0] ? err : flowq_strerror(rc));
		return EXIT_USAGE;
	}
	o->loaded = true;
	struct progress p = {
		.name = o->name,
		.duration_ns = o->spec.duration_ns,
		.every_s = 0.1,
		.last_wall = 0,
	};
	bool tty = isatty(fileno(stderr));
	p.live = a->progress == PROGRESS_ALWAYS || (a->progress == PROGRESS_AUTO && tty);
	if (!p.live)
		p.every_s = 5;
	p.last_wall = wall_s();
	struct sim_run_opts opts = {
		.mode = a->mode_set ? a->mode : o->spec.mode,
		.progress = a->progress == PROGRESS_NEVER ? NULL : on_progress,
		.progress_ctx = &p,
		.progress_every_ns = 100000000,
	};
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

static int
write_reports(const struct run_args *a, const struct outcome *o, bool variant)
{
	static const char *kinds[] = {"json", "csv", "html"};
	const char *paths[] = {a->json, a->csv, a->html};
	int bad = 0;
	for (int k = 0; k < 3; k++) {
		if (!paths[k])
			continue;
		char *path = variant ? variant_path(paths[k], o->name) : strdup(paths[k]);
		if (!path || write_report(path, kinds[k], &o->r) < 0)
			bad = 1;
		free(path);
	}
	return bad;
}

static int
cmd_run(int argc, char **argv)
{
	struct run_args a = {.progress = PROGRESS_AUTO};
	char **owned = calloc((size_t)argc + 1, sizeof(*owned));
	size_t nowned = 0;
	int status = 0;
	if (!owned)
		return usage_error("%s", "out of memory");
	for (int i = 0; i < argc && status == 0; i++) {
		const char *s = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(s, "--seed") == 0 || strcmp(s, "--duration") == 0 ||
			     strcmp(s, "--json") == 0 || strcmp(s, "--csv") == 0 ||
			     strcmp(s, "--html") == 0 || strcmp(s, "--set") == 0 ||
			     strcmp(s, "--progress") == 0;
		if (takes && !val) {
			status = usage_error("%s needs a value", s);
			break;
		}
		if (strcmp(s, "--virtual") == 0 || strcmp(s, "--realtime") == 0) {
			if (a.mode_set && a.mode != (s[2] == 'v' ? SIM_MODE_VIRTUAL
								 : SIM_MODE_REALTIME)) {
				status = usage_error(
					"%s", "--virtual and --realtime exclude each "
					      "other");
				break;
			}
			a.mode_set = true;
			a.mode = s[2] == 'v' ? SIM_MODE_VIRTUAL : SIM_MODE_REALTIME;
		} else if (strcmp(s, "--seed") == 0 || strcmp(s, "--duration") == 0) {
			char *ov = make_override(
				s[2] == 's' ? "sim.seed" : "sim.duration", val);
			if (!ov || add_override(&a, ov) < 0) {
				free(ov);
				status = usage_error("%s", "out of memory");
				break;
			}
			owned[nowned++] = ov;
			i++;
		} else if (strcmp(s, "--set") == 0) {
			if (!strchr(val, '=') || val[0] == '=') {
				status = usage_error("--set %s: expected KEY=VALUE", val);
				break;
			}
			if (add_override(&a, val) < 0) {
				status = usage_error("%s", "out of memory");
				break;
			}
			i++;
		} else if (strcmp(s, "--json") == 0) {
			a.json = argv[++i];
		} else if (strcmp(s, "--csv") == 0) {
			a.csv = argv[++i];
		} else if (strcmp(s, "--html") == 0) {
			a.html = argv[++i];
		} else if (strcmp(s, "--progress") == 0) {
			if (strcmp(val, "auto") == 0)
				a.progress = PROGRESS_AUTO;
			else if (strcmp(val, "always") == 0)
				a.progress = PROGRESS_ALWAYS;
			else if (strcmp(val, "never") == 0)
				a.progress = PROGRESS_NEVER;
			else
				status = usage_error(
					"--progress %s: expected auto, always or never",
					val);
			i++;
		} else if (s[0] == '-' && s[1] != '\0') {
			status = usage_error("run: unknown option %s", s);
		} else if (a.spec) {
			status = usage_error("run: one SPEC only (got a second: %s)", s);
		} else {
			a.spec = s;
		}
	}
	if (status) {
		for (size_t i = 0; i < nowned; i++)
			free(owned[i]);
		free(owned);
		free(a.overrides);
		return status;
	}

	/* Fail before a long run, not after it: the report files must be
	 * writable (they are created now and rewritten at the end). */
	const char *paths[] = {a.json, a.csv, a.html};
	for (int k = 0; k < 3 && status == 0; k++) {
		FILE *f = paths[k] ? fopen(paths[k], "w") : NULL;
		if (paths[k] && !f) {
			fprintf(stderr, "flowq-sim: %s: cannot open for writing: %s\n",
				paths[k], strerror(errno));
			status = EXIT_USAGE;
		}
		if (f)
			fclose(f);
	}
	if (status) {
		for (size_t i = 0; i < nowned; i++)
			free(owned[i]);
		free(owned);
		free(a.overrides);
		return status;
	}

	struct outcome *runs = calloc(1, sizeof(*runs));
	size_t nruns = 1;
	bool conserved = true;
	if (!runs) {
		status = usage_error("%s", "out of memory");
		goto out;
	}
	runs[0].name = strdup("spec");
	status = run_one(&a, &runs[0], a.overrides, a.noverrides, &conserved);
	if (status)
		goto out;
	free(runs[0].name);
	runs[0].name = strdup(runs[0].spec.name ? runs[0].spec.name : "spec");
	sim_report_table(stdout, &runs[0].r);
	status |= write_reports(&a, &runs[0], false) ? EXIT_USAGE : 0;

	size_t nv = runs[0].spec.nvariants;
	if (nv) {
		struct outcome *more = realloc(runs, (nv + 1) * sizeof(*runs));
		if (!more) {
			status = usage_error("%s", "out of memory");
			goto out;
		}
		runs = more;
		memset(runs + 1, 0, nv * sizeof(*runs));
		nruns = nv + 1;
	}
	for (size_t v = 0; v < nv; v++) {
		const struct sim_variant *var = &runs[0].spec.variants[v];
		struct outcome *o = &runs[v + 1];
		const char **ovs =
			calloc(a.noverrides + var->noverrides + 1, sizeof(*ovs));
		o->name = strdup(var->name ? var->name : "variant");
		if (!ovs || !o->name) {
			free(ovs);
			status = usage_error("%s", "out of memory");
			goto out;
		}
		memcpy(ovs, a.overrides, a.noverrides * sizeof(*ovs));
		for (size_t i = 0; i < var->noverrides; i++)
			ovs[a.noverrides + i] = var->overrides[i];
		int st = run_one(&a, o, ovs, a.noverrides + var->noverrides, &conserved);
		free(ovs);
		if (st) {
			fprintf(stderr, "flowq-sim: variant \"%s\" did not run\n",
				o->name);
			status = st;
			continue;
		}
		printf("\nvariant: %s\n", o->name);
		sim_report_table(stdout, &o->r);
		status |= write_reports(&a, o, true) ? EXIT_USAGE : 0;
	}
	if (nv)
		print_comparison(runs, nruns);
	fflush(stdout);
	if (status == 0 && !conserved)
		status = EXIT_CONSERVATION;
out:
	for (size_t i = 0; runs && i < nruns; i++) {
		if (runs[i].ran)
			sim_result_free(&runs[i].r);
		if (runs[i].loaded)
			sim_spec_free(&runs[i].spec);
		free(runs[i].name);
	}
	free(runs);
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	free(a.overrides);
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
	if (strcmp(cmd, "tune") == 0) {
		fputs("flowq-sim: tune: not yet implemented (tools/flowq-sim/tune.c is "
		      "still to "
		      "be written); use run with --set and compare: variants meanwhile\n",
		      stderr);
		return EXIT_USAGE;
	}
	return usage_error("unknown command \"%s\" (run, list or tune)", cmd);
}
