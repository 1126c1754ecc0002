/*
 * flowq-sim: the workload simulator's model. Three parts, each owned by one
 * module, meeting here:
 *
 *   spec.c    the workload spec (struct sim_spec), loaded from YAML: the
 *             engine's configuration (the `engine:` key, through
 *             flowq_config_load_yaml) plus the workload keys below.
 *   run.c     runs a spec against the real engine and a modelled backend,
 *             on a virtual clock (deterministic) or the wall clock, and
 *             fills a struct sim_result.
 *   report.c  renders a result: a table, JSON, CSV; html.c: one
 *             self-contained HTML file with inline SVG charts.
 *   tune.c    runs a spec once per combination of --vary values and ranks
 *             the results by an objective.
 *
 * Units everywhere: time in ns (int64_t), sizes in bytes (uint64_t), rates
 * in requests per second (double). Time 0 is the start of the run.
 *
 * The spec document (tools/scenarios/default.yaml is the worked example;
 * spec.c's header comment is the reference):
 *
 *   name: default                  # free text
 *   description: ...               # free text
 *   sim:
 *     mode: virtual                # virtual | realtime (CLI flags override)
 *     seed: 1
 *     duration: 60s                # arrivals stop here; then drain
 *     drain: 10s                   # time allowed after duration for the
 *                                  # queue to empty before shutdown
 *     window: 1s                   # time-series resolution
 *     producers: 2                 # realtime: submitting threads
 *     inversion_grace: 1ms         # see sim_band_result.inversions
 *   engine:                        # struct flowq_config (config_yaml.h)
 *     shards: 2
 *     mode: polled                 # forced by the simulator per mode
 *     ...
 *   backend:
 *     slots: 64                    # requests served at once; more wait
 *                                  # in the backend's own FIFO
 *     service: {dist: lognormal, median: 20ms, sigma: 0.5}
 *     per_byte: 2ns                # added per request byte
 *     slowdown: [{at: 20s, for: 10s, factor: 3}]
 *   trace:                         # optional: arrivals from a CSV file
 *     file: azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv
 *     time_column: TIMESTAMP       # seconds, or "YYYY-MM-DD HH:MM:SS.frac"
 *     time_scale: 10               # replay 10x denser (t / time_scale)
 *     start: 0s                    # skip the trace's first part
 *     cost_column: ContextTokens   # request bytes = value * bytes_per_unit
 *     bytes_per_unit: 4
 *     service_column: GeneratedTokens  # service = base + value * per_unit
 *     service_per_unit: 2ms
 *     service_base: 20ms
 *     assign: weighted             # weighted | hash | column
 *     assign_column: Tenant        # assign: column (value = flow id)
 *   flows:
 *     - id: premium                # flow id (count > 1: "premium-0", ...)
 *       count: 1
 *       priority: 10
 *       weight: 1
 *       arrival: {process: trace, share: 0.6}
 *       # or {process: poisson, rate: 200}
 *       #    {process: onoff, rate: 500, on: {dist: exp, mean: 2s},
 *       #     off: {dist: exp, mean: 8s}}
 *       #    {process: closed, clients: 32, think: {dist: exp, mean: 50ms}}
 *       #    any process: start: 10s, stop: 40s (active window)
 *       size: {dist: lognormal, median: 2KiB, sigma: 1}   # not for trace
 *       ttl: 5s                    # 0 / absent: the engine's default
 *       deadline: 2s               # relative; 0 / absent: none
 *       cancel: {prob: 0.05, after: {dist: exp, mean: 500ms}}
 *   compare:                       # optional: variants run side by side
 *     - name: no displacement
 *       set: {engine.displacement: none}
 */
#ifndef FLOWQ_SIM_H
#define FLOWQ_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <flowq/config_yaml.h>
#include <flowq/flowq.h>

/* ------------------------------------------------------------------------ */
/* Random numbers and distributions (dist.c)                                */
/* ------------------------------------------------------------------------ */

/** xoshiro256** state. Every random stream of a run is seeded from the
 * spec's seed and a stream number (sim_rng_seed), so one flow's draws do not
 * depend on how events of other flows interleave. */
struct sim_rng {
	uint64_t s[4];
};

void
sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t
sim_rng_next(struct sim_rng *r);
/** Stream numbers of a run (sim_rng_seed's @p stream, with the spec's
 * seed): the backend's service draws, the trace's weighted assignment, and
 * one stream per flow (flow k: SIM_STREAM_FLOW + k, sim_spec_flow
 * numbering) for its arrivals, sizes, cancels and think times. */
#define SIM_STREAM_BACKEND 0u
#define SIM_STREAM_TRACE   1u
#define SIM_STREAM_FLOW    2u

/** Uniform in (0, 1): never 0, never 1. */
double
sim_rng_unit(struct sim_rng *r);

enum sim_dist_kind {
	SIM_DIST_CONST,     /* p1 */
	SIM_DIST_UNIFORM,   /* in [p1, p2) */
	SIM_DIST_EXP,       /* mean p1 */
	SIM_DIST_LOGNORMAL, /* median p1, sigma p2 (of the underlying normal) */
	SIM_DIST_PARETO,    /* minimum p1, shape p2 (> 1) */
};

/** A distribution of non-negative values (ns or bytes). YAML: a plain
 * value (constant), or {dist: const|uniform|exp|lognormal|pareto, ...}
 * with value | min, max | mean | median, sigma | min, shape. */
struct sim_dist {
	enum sim_dist_kind kind;
	double p1, p2;
};

/** One draw, >= 0. */
double
sim_dist_sample(const struct sim_dist *d, struct sim_rng *r);
/** The distribution's mean (for reports and checks). */
double
sim_dist_mean(const struct sim_dist *d);

/* ------------------------------------------------------------------------ */
/* The spec (spec.c)                                                        */
/* ------------------------------------------------------------------------ */

enum sim_mode {
	SIM_MODE_VIRTUAL,  /* discrete events on a simulated clock, polled engine */
	SIM_MODE_REALTIME, /* producer threads, threaded engine, wall clock */
};

enum sim_arrival_kind {
	SIM_ARRIVAL_POISSON,
	SIM_ARRIVAL_ONOFF,  /* Poisson at @c rate during on periods, silent in off */
	SIM_ARRIVAL_CLOSED, /* @c clients clients: submit, wait for the outcome
	                     * (and the backend's completion when dispatched),
	                     * think, repeat */
	SIM_ARRIVAL_TRACE,  /* rows of the spec's trace assigned to this flow */
};

struct sim_arrival {
	enum sim_arrival_kind kind;
	/** POISSON, ONOFF: requests per second (per flow: a class with count
	 * N offers N x rate). */
	double rate;
	/** ONOFF: on and off period lengths, ns; a flow starts in an on
	 * period. */
	struct sim_dist on_ns, off_ns;
	/** CLOSED: clients per flow, and each client's think time, ns. */
	uint32_t clients;
	struct sim_dist think_ns;
	/** TRACE with assign: weighted: relative share of the rows (> 0). */
	double share;
	/** Active window, ns from the start: arrivals only in
	 * [start_ns, stop_ns); stop_ns 0 = the spec's duration. */
	int64_t start_ns, stop_ns;
};

/** A flow class: @c count flows with the same settings. */
struct sim_flow_spec {
	char *id;        /* count 1: the flow id; else ids "<id>-<k>" */
	uint32_t count;  /* >= 1 */
	int32_t priority;
	uint32_t weight; /* >= 1 (flowq_flow_set_weight) */
	struct sim_arrival arrival;
	struct sim_dist size; /* bytes per request (not TRACE: the cost column) */
	int64_t ttl_ns;       /* 0: engine default; FLOWQ_TTL_NONE: none */
	int64_t deadline_ns;  /* relative to submit; 0: none */
	double cancel_prob;   /* in [0, 1]: a request is cancelled ... */
	struct sim_dist cancel_after_ns; /* ... this long after submit, if
	                                  * still queued */
	unsigned line;        /* 1-based line of the entry in the spec (0:
	                       * the entry came from an override) */
	size_t first;         /* global index of the class's first flow
	                       * (sim_spec_flow numbering) */
};

struct sim_slowdown {
	int64_t at_ns, for_ns;
	double factor; /* service times of requests that start in
	                * [at, at + for) are multiplied by it (> 0) */
};

struct sim_backend_spec {
	uint32_t slots;         /* >= 1 */
	struct sim_dist service_ns;
	double ns_per_byte;     /* >= 0 */
	struct sim_slowdown *slowdowns;
	size_t nslowdowns;
};

enum sim_trace_assign {
	SIM_ASSIGN_WEIGHTED, /* by the TRACE flows' share, with the seed */
	SIM_ASSIGN_HASH,     /* by a hash of the row (its line), share-weighted */
	SIM_ASSIGN_COLUMN,   /* the value of assign_column names the flow id */
};

struct sim_trace_spec {
	char *path;           /* resolved: absolute, or relative to the cwd */
	char *time_column;
	double time_scale;    /* > 0 */
	int64_t start_ns;     /* rows before this trace time are skipped */
	char *cost_column;    /* NULL: the flow's size distribution */
	double bytes_per_unit;
	char *service_column; /* NULL: the backend's service distribution */
	int64_t service_per_unit_ns;
	int64_t service_base_ns;
	enum sim_trace_assign assign;
	char *assign_column;
};

/** A named variant of the spec for side-by-side comparison (the spec's
 * `compare:` list): the spec with these overrides applied (same syntax as
 * sim_spec_load's @p overrides). Load a variant as
 * sim_spec_load(path, <the spec's own overrides>, then @c overrides, then
 * "compare=[]"): the last drops the variant's sibling variants, which are
 * then neither checked against it nor run again. sim_spec_load checked each
 * variant that way already, so the load succeeds (unless a file changed). */
struct sim_variant {
	char *name;
	char **overrides;
	size_t noverrides;
};

struct sim_spec {
	char *name;
	char *description;
	char *source;         /* the file name, or "<default>" */
	enum sim_mode mode;
	uint64_t seed;
	int64_t duration_ns;  /* > 0 */
	int64_t drain_ns;     /* >= 0 */
	int64_t window_ns;    /* > 0; duration / window <= SIM_MAX_WINDOWS */
	uint32_t producers;   /* realtime: >= 1 */
	struct flowq_config_yaml engine;
	struct sim_backend_spec backend;
	struct sim_flow_spec *flows;
	size_t nflows;
	bool has_trace;
	struct sim_trace_spec trace;
	int64_t inversion_grace_ns; /* sim.inversion_grace; default 1ms */
	/** `compare:` variants; `flowq-sim run` runs the spec as written and
	 * then each variant, and prints them side by side. */
	struct sim_variant *variants;
	size_t nvariants;
};

#define SIM_MAX_WINDOWS 100000u
#define SIM_MAX_FLOWS   (1u << 20) /* sum of counts */

/**
 * Load a spec. @p overrides are "key.path=value" strings (e.g.
 * "engine.shards=2", "engine.bands[0].fairness=drr", "sim.seed=7",
 * "flows[1].arrival.rate=300") applied to the document before it is
 * validated, as if the file said so (a key the file lacks is added); the
 * value is read as a YAML plain scalar or flow collection.
 * @param path  the file; NULL loads the built-in default scenario
 *              (tools/scenarios/default.yaml, compiled in).
 * @return 0; -EINVAL with "<file>:<line>:<col>: <key path>: <what>" in
 *         @p err (an override's error names the override); -ENOENT (file,
 *         or the trace file: the message lists where it looked); -EFBIG
 *         (more than FLOWQ_CONFIG_YAML_MAX_SIZE); -ENOMEM; -EFAULT (a NULL
 *         argument or override); another errno of open(2)/read(2).
 * On failure @p r_spec owns nothing (it holds the defaults; freeing it is a
 * no-op). spec.c's header comment is the document's reference (keys,
 * defaults, value forms, overrides, order of checks). Context: any thread;
 * reentrant; reads the policy registries and $FLOWQ_SIM_DATA, stats the
 * trace file. Allocates (libc). Never prints.
 */
int
sim_spec_load(struct sim_spec *r_spec, const char *path, const char *const *overrides,
    size_t noverrides, char *err, size_t errsz);
/** Load from a buffer; @p name is used in messages. */
int
sim_spec_load_buf(struct sim_spec *r_spec, const char *name, const char *buf, size_t len,
    const char *const *overrides, size_t noverrides, char *err, size_t errsz);
/** Free what a load left in @p spec and reset it to the defaults;
 * idempotent; NULL is ignored. */
void
sim_spec_free(struct sim_spec *spec);
/** Total flows (sum of the classes' counts). */
size_t
sim_spec_nflows(const struct sim_spec *spec);
/** Write the flow id of flow @p k (0-based over all classes, in class
 * order) to @p buf (truncated to @p bufsz; NULL: not written); returns its
 * class, or NULL if @p k >= sim_spec_nflows(). O(log classes). */
const struct sim_flow_spec *
sim_spec_flow(const struct sim_spec *spec, size_t k, char *buf, size_t bufsz);

/* ------------------------------------------------------------------------ */
/* Trace (trace.c)                                                          */
/* ------------------------------------------------------------------------ */

struct sim_trace_row {
	int64_t t_ns;       /* arrival, after time_scale and start, from 0 */
	uint64_t bytes;     /* cost column x bytes_per_unit, or 0 = flow's size */
	int64_t service_ns; /* base + service column x per_unit, or -1 = backend's */
	uint32_t flow;      /* global flow index (sim_spec_flow numbering) */
};

struct sim_trace {
	struct sim_trace_row *rows; /* sorted by t_ns */
	size_t nrows;
};

/** Read and map the spec's trace; rows after the duration are dropped.
 * @return 0; -ENOENT, -EINVAL ("<file>:<line>: <what>"), -ENOMEM. */
int
sim_trace_load(const struct sim_spec *spec, struct sim_trace *r_trace, char *err, size_t errsz);
void
sim_trace_free(struct sim_trace *trace);

/* ------------------------------------------------------------------------ */
/* Results (run.c fills, report.c / html.c / tune.c read)                   */
/* ------------------------------------------------------------------------ */

/** Outcome counts. Every submitted request lands in exactly one of
 * rejected_capacity, rejected_other, dispatched, expired, cancelled,
 * displaced, shutdown (queued when the run ended). */
struct sim_counts {
	uint64_t offered;           /* flowq_submit() calls */
	uint64_t rejected_capacity;
	uint64_t rejected_other;
	uint64_t dispatched;
	uint64_t expired;           /* EVICTED_TTL */
	uint64_t cancelled;         /* EVICTED_CANCELLED */
	uint64_t displaced;         /* EVICTED_DISPLACED */
	uint64_t shutdown;          /* EVICTED_OTHER at the end (or drain) */
	uint64_t completed;         /* dispatched and finished by the backend */
	uint64_t offered_bytes, dispatched_bytes;
};

/** Samples of a duration, ns; sorted ascending once the run ends. */
struct sim_samples {
	int64_t *v;
	size_t n, cap;
};

/** Add @p b's counts to @p a, field by field. */
void
sim_counts_add(struct sim_counts *a, const struct sim_counts *b);
enum sim_clock {
	SIM_CLOCK_WALL, /* CLOCK_MONOTONIC */
	SIM_CLOCK_CPU,  /* CLOCK_PROCESS_CPUTIME_ID */
};
/** The clock @p which now, seconds. */
double
sim_clock_s(enum sim_clock which);

/** Append @p v. @return 0 or -ENOMEM. */
int
sim_samples_add(struct sim_samples *s, int64_t v);
/** Sort ascending (once, after the run). */
void
sim_samples_sort(struct sim_samples *s);
void
sim_samples_free(struct sim_samples *s);
/** The @p q quantile (0..1) of sorted samples (nearest rank); 0 if empty. */
int64_t
sim_quantile(const struct sim_samples *s, double q);

/**
 * Weighted max-min fair shares (water-filling): split @p capacity among n
 * claimants with demands @p demand and weights @p weight (> 0) so that no
 * one gets more than it asked for and the rest is split in proportion to
 * weight. Writes @p r_fair; O(n log n); @p scratch holds n size_t.
 */
void
sim_maxmin_fair(size_t n, const double *demand, const double *weight, double capacity,
    double *r_fair, size_t *scratch);
/** Jain's index of x[0..n): (sum x)^2 / (n sum x^2); NaN when n < 2 or
 * every x is 0. */
double
sim_jain(size_t n, const double *x);

struct sim_flow_result {
	char *id;
	int32_t priority;
	uint32_t weight;
	size_t band;              /* index into sim_result.bands */
	struct sim_counts c;
	struct sim_samples queue_ns; /* submit -> dispatch, dispatched requests */
	/** Per window: bytes dispatched, and this flow's share of its band's
	 * dispatched bytes in the window (0 when the band dispatched none).
	 * Both NULL when flows x windows is above 2^22 (run.c: memory). */
	uint64_t *win_bytes;
	double *win_share;
};

struct sim_band_result {
	int32_t priority;
	size_t nflows;
	struct sim_counts c;
	struct sim_samples queue_ns;
	/** Per window: requests queued (submitted, no outcome yet) at the
	 * window's end, and the most at any time in it. */
	uint32_t *win_depth, *win_depth_max;
	/** Per window: Jain's index of x_i = got_i / fair_i over the band's
	 * flows with demand, where fair_i is the weighted max-min fair share
	 * of the bytes the band dispatched in the window given each flow's
	 * demand (bytes offered in the window plus its backlog at the start);
	 * NaN when fewer than two flows had demand or the band dispatched
	 * nothing in the window. */
	double *win_jain;
	double jain_mean;         /* mean over windows that are not NaN */
	/** Dispatches of this band while a higher band had a request queued
	 * that had been waiting longer than inversion_grace_ns (see
	 * sim_result). */
	uint64_t inversions;
};

struct sim_result {
	const struct sim_spec *spec;
	enum sim_mode mode;
	uint64_t seed;
	/* end: when the run stopped: the queues and the backend empty after
	 * the duration, or duration + drain (the shutdown's outcomes). */
	int64_t duration_ns, end_ns;
	int64_t window_ns;
	size_t nwindows; /* windows up to end_ns; the last may be partial */
	struct sim_flow_result *flows;
	size_t nflows;
	struct sim_band_result *bands; /* by priority, highest first */
	size_t nbands;
	struct sim_counts total;
	uint64_t priority_inversions;  /* sum over bands */
	int64_t inversion_grace_ns;
	/** Conservation: offered = sum of outcomes, per flow, per band and in
	 * total, every request had exactly one outcome, and the engine's own
	 * counters (flowq_stats_engine) agree. false fails the run. */
	bool conserved;
	char conservation_error[256];
	double backend_utilization;    /* busy slot-time / (slots x time) */
	uint64_t backend_queue_max;    /* most requests waiting for a slot */
	/** Not in JSON for virtual runs (they differ between runs). */
	double wall_s, cpu_s;
	uint64_t events;
};

/** Progress callback: called about every @c every_ns of simulated time. */
typedef void
sim_progress_fn(void *ctx, int64_t now_ns, const struct sim_result *partial);

struct sim_run_opts {
	enum sim_mode mode;
	sim_progress_fn *progress; /* NULL: none */
	void *progress_ctx;
	int64_t progress_every_ns;
};

/** Run @p spec. @return 0 (check r->conserved); negative errno with a
 * message in @p err (engine creation, trace, memory). */
int
sim_run(const struct sim_spec *spec, const struct sim_run_opts *opts, struct sim_result *r,
    char *err, size_t errsz);
void
sim_result_free(struct sim_result *r);

/* ------------------------------------------------------------------------ */
/* Reports (report.c, html.c)                                               */
/* ------------------------------------------------------------------------ */

/* Every renderer: any thread (reads the result only; concurrent renders of
 * one result are fine); writes to @p out and never to stdout on its own;
 * output does not depend on the process locale. Write errors are left in
 * ferror(out) for the caller to check. Nothing allocates except the HTML
 * tuning heat-map (which prints a note instead on ENOMEM). */

/** Human table: per band and per flow (top flows by offered when there
 * are many), outcomes, queue-time quantiles, Jain, inversions,
 * conservation. */
void
sim_report_table(FILE *out, const struct sim_result *r);
/** JSON (deterministic: same result, same bytes; C locale numbers). */
void
sim_report_json(FILE *out, const struct sim_result *r);
/** CSV: one row per flow and one per band (a `kind` column). */
void
sim_report_csv(FILE *out, const struct sim_result *r);
/** The spec's `compare:` variants side by side: per band (matched by
 * priority) and in total, dispatched, p99 queue time, shed, expired,
 * rejected, Jain's index; one column per variant (@p names[i] for
 * @p rs[i]), split into several tables when they do not fit in 100
 * columns. */
void
sim_report_compare(FILE *out, const char *const *names, const struct sim_result *const *rs,
    size_t n);
/** JSON of a comparison: {"format", "variants": [{"name", "result"}]},
 * each result as sim_report_json writes it. Deterministic. */
void
sim_report_json_compare(FILE *out, const char *const *names,
    const struct sim_result *const *rs, size_t n);

/* ------------------------------------------------------------------------ */
/* Tuning (tune.c)                                                          */
/* ------------------------------------------------------------------------ */

/** Queue-time summary of sorted samples (sim_quantile, nearest rank), ns. */
struct sim_qsum {
	size_t n;
	int64_t p50, p90, p99, p999, max; /* 0 when n == 0 */
	double mean;                      /* NaN when n == 0 */
};

/** What a tune run keeps of one band of a run (sim_band_result). */
struct sim_tune_band {
	int32_t priority;
	struct sim_counts c;
	struct sim_qsum queue; /* its dispatched requests' queue times */
	double jain_mean;      /* NaN: no window with two flows wanting service */
	uint64_t inversions;
};

/** One combination of a tune run, with the key figures of its run. */
struct sim_tune_row {
	size_t order;      /* its place in the enumeration (ties keep it) */
	char **values;     /* one per key, as given on the command line */
	double objective;  /* NaN when the run failed or was not conserved */
	bool ran;          /* the run was carried out (the figures below) */
	bool conserved;
	char *error;       /* the run's error message, or NULL */
	struct sim_counts total;
	/* The figures of the run (zero, and NaN for doubles, unless ran): */
	int64_t duration_ns;          /* of the arrivals: rates are per it */
	struct sim_qsum queue;        /* every dispatched request */
	double utilization;           /* sim_result.backend_utilization */
	uint64_t inversions;          /* sim_result.priority_inversions */
	struct sim_tune_band *bands;  /* highest priority first */
	size_t nbands;
};

struct sim_tune_result {
	char **keys;       /* the --vary keys, in command-line order */
	size_t nkeys;
	char *objective;   /* the expression as given */
	bool maximize;
	char *spec_name;   /* the spec's name (first combination that loaded), or NULL */
	char *trace_path;  /* a trace file a combination replayed (the first), or NULL */
	struct sim_tune_row *rows; /* ranked: best first, failed runs last */
	size_t nrows;
};

#define SIM_TUNE_MAX_RUNS 10000u
#define SIM_TUNE_MAX_KEYS 16u

/** A parsed --objective (tune.c's header comment has the grammar). */
struct sim_objective;

/** @return 0; -EINVAL with "objective, column N: <what>"; -ENOMEM. */
int
sim_objective_parse(const char *text, struct sim_objective **r_obj, char *err, size_t errsz);
/** The objective's value for @p r; NaN when a metric has no value. */
double
sim_objective_eval(const struct sim_objective *o, const struct sim_result *r);
bool
sim_objective_maximize(const struct sim_objective *o);
void
sim_objective_free(struct sim_objective *o);

/** One --vary KEY=V1,V2,... (commas inside [], {} or quotes do not split). */
struct sim_vary {
	char *key;
	char **values;
	size_t nvalues;
};

int
sim_vary_parse(const char *arg, struct sim_vary *r, char *err, size_t errsz);
void
sim_vary_free(struct sim_vary *v);

struct sim_tune_opts {
	const char *spec_path;               /* NULL: the built-in default */
	const char *const *overrides;        /* --set, --seed, --duration */
	size_t noverrides;
	const struct sim_vary *vary;
	size_t nvary;                        /* <= SIM_TUNE_MAX_KEYS */
	const struct sim_objective *objective;
	const char *objective_text;
	const struct sim_run_opts *run;      /* mode; NULL: each spec's own */
	/** Each run's progress (sim_run_opts.progress: progress_every_ns of
	 * simulated time); NULL: none. */
	sim_progress_fn *progress;
	void *progress_ctx;
	int64_t progress_every_ns;
	/** Called before each run with @p row NULL, and after it with its row
	 * (before the ranking and before the log line); NULL: none. @p values:
	 * the combination's value per key. */
	void (*on_run)(void *ctx, size_t idx, size_t n, const char *const *values,
		       const struct sim_tune_row *row);
	void *on_run_ctx;
	FILE *log;                           /* a line per run; NULL: none */
};

/** Run every combination (at most SIM_TUNE_MAX_RUNS) and rank them. A
 * combination whose spec fails to load or whose run fails is kept, with
 * its error, and ranks last. @return 0; -E2BIG; -ENOMEM. */
int
sim_tune(const struct sim_tune_opts *o, struct sim_tune_result *r, char *err, size_t errsz);
void
sim_tune_result_free(struct sim_tune_result *r);
/** The ranked table. */
void
sim_tune_print(FILE *out, const struct sim_tune_result *r);
/** The best combination as YAML to paste (reloads its spec). */
int
sim_tune_print_best(FILE *out, const struct sim_tune_opts *o, const struct sim_tune_result *r,
    char *err, size_t errsz);

/**
 * JSON of a tune result (deterministic: the same result, the same bytes):
 *   {"format": "flowq-sim.tune.v1", "spec": NAME, "objective": TEXT,
 *    "maximize": BOOL, "keys": [KEY...], "best": [VALUE...] or null,
 *    "runs": [{"rank", "values": [VALUE...], "objective" (null: none),
 *              "error" (null: none), "ran", "conserved", "duration_ns",
 *              "total": counts, "throughput_rps", "goodput_rps",
 *              "queue_ns": {n, mean, p50, p90, p99, p999, max},
 *              "backend_utilization", "priority_inversions",
 *              "bands": [{"priority", "counts", "throughput_rps",
 *                         "queue_ns", "jain_mean", "inversions"}]}]}
 * with the runs ranked (best first) and "values" in "keys" order; counts
 * as in sim_report_json.
 */
void
sim_report_tune_json(FILE *out, const struct sim_tune_result *t);
/** CSV of a tune result (RFC 4180, CRLF): per combination, ranked, one
 * row of kind "run" (its values, objective, conservation, error, totals,
 * rates, queue time, utilization, inversions) and one of kind "band" per
 * band (the same values; its counts, queue time, Jain's index and
 * inversions). A column per --vary key, headed by the key. */
void
sim_report_tune_csv(FILE *out, const struct sim_tune_result *t);

/** One self-contained HTML file (inline SVG, no scripts or external
 * resources): queue-time CDF per band, queue depth over time per band,
 * service share per flow over time; with @p tune non-NULL also the tuning
 * table and heat-map. @p r may be NULL when @p tune is given (the tuning
 * part only). */
void
sim_report_html(FILE *out, const struct sim_result *r, const struct sim_tune_result *tune);
/** The HTML form of sim_report_compare: the comparison tables, and charts
 * that overlay the variants (queue-time CDF, depth and Jain's index per
 * band), then each variant's own tables. */
void
sim_report_html_compare(FILE *out, const char *const *names,
    const struct sim_result *const *rs, size_t n);

#endif /* FLOWQ_SIM_H */
