/*
 * test_sim_spec: the workload spec loader (tools/flowq-sim/spec.c): every
 * scenario of tools/scenarios loads (and the built-in default is the same
 * document); defaults; every value form; overrides (replace, add, located
 * messages after an edit); each error class with its exact message, line
 * and column; variants; trace file lookup; flow numbering. Every test ends
 * with a leak check (the loader's and the engine loader's counted
 * allocations, and LeakSanitizer in the ASan build).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config_yaml_internal.h"
#include "sim.h"

#ifndef FLOWQ_SIM_SCENARIOS_DIR
#error "FLOWQ_SIM_SCENARIOS_DIR must name tools/scenarios"
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

/* spec.c's allocation-failure injection (see there). */
extern _Atomic long sim__spec_fail_after;

#define MS INT64_C(1000000)
#define S  INT64_C(1000000000)

static struct sim_spec spec;
static char err[2048];

/* A valid spec, as small as one can be. */
#define MIN_BACKEND "backend: {slots: 4, service: 10ms}\n"
#define MIN_FLOW                                                                         \
	"  - {id: a, priority: 0, arrival: {process: poisson, rate: 100}, size: 1KiB}\n"
#define MIN MIN_BACKEND "flows:\n" MIN_FLOW

static int
loadv(const char *text, const char *const *ovr, size_t n)
{
	memset(&spec, 0xA5, sizeof(spec)); /* the loader must not read it */
	memset(err, 'x', sizeof(err));
	return sim_spec_load_buf(&spec, "t.yaml", text, strlen(text), ovr, n, err,
				 sizeof(err));
}

/* Free the spec; nothing of the engine loader's may be left. */
static void
check_freed(void)
{
	sim_spec_free(&spec);
	cr_assert_eq(atomic_load(&flowq__config_yaml_live), 0,
		     "%ld allocations of the engine loader outstanding",
		     atomic_load(&flowq__config_yaml_live));
}

/* The same, and in an ASan build nothing unreachable at all (libyaml's and
 * spec.c's memory included; LeakSanitizer's exit-time report from a
 * Criterion worker comes too late to fail the test). */
static void
check_leaks(void)
{
	check_freed();
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

static void
ok_v(const char *text, const char *const *ovr, size_t n)
{
	int rc = loadv(text, ovr, n);

	cr_assert_eq(rc, 0, "rc %d for:\n%s\nmessage: %s", rc, text, err);
	cr_assert_str_eq(err, "", "a successful load clears err");
}

static void
ok(const char *text)
{
	ok_v(text, NULL, 0);
}

/* @text with overrides @ovr[0..n) fails with @rc and exactly @msg; the spec
 * owns nothing then. */
static void
fail_v(const char *text, const char *const *ovr, size_t n, int rc, const char *msg)
{
	int got = loadv(text, ovr, n);

	cr_assert_eq(got, rc, "rc %d (want %d) for:\n%s\nmessage: %s", got, rc, text,
		     err);
	cr_assert_str_eq(err, msg, "for:\n%s\ngot:  %s\nwant: %s", text, err, msg);
	cr_assert_null(spec.flows);
	cr_assert_null(spec.name);
	cr_assert_null(spec.engine.owned);
	check_leaks();
}

static void
fail(const char *text, const char *msg)
{
	fail_v(text, NULL, 0, -EINVAL, msg);
}

/* The same with one override. */
static void
fail1(const char *text, const char *o, const char *msg)
{
	fail_v(text, &o, 1, -EINVAL, msg);
}

/* ---- scenarios ------------------------------------------------------------ */

Test(sim_spec, every_scenario_loads)
{
	DIR *d = opendir(FLOWQ_SIM_SCENARIOS_DIR);
	struct dirent *e;
	size_t n = 0;
	bool have_default = false;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[1024];
		size_t len = strlen(e->d_name);
		int rc;

		if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", FLOWQ_SIM_SCENARIOS_DIR, e->d_name);
		rc = sim_spec_load(&spec, path, NULL, 0, err, sizeof(err));
		cr_assert_eq(rc, 0, "%s: rc %d: %s", path, rc, err);
		cr_assert_gt(spec.nflows, 0);
		cr_assert_eq(spec.mode, SIM_MODE_VIRTUAL,
			     "%s: scenarios are deterministic", path);
		cr_assert_str_neq(spec.description, "",
				  "%s: scenarios say what they show", path);
		have_default |= strcmp(e->d_name, "default.yaml") == 0;
		check_leaks();
		n++;
	}
	closedir(d);
	cr_assert(have_default);
	cr_assert_geq(n, 4, "default.yaml and at least 3 more");
}

/* The built-in default is default.yaml: same document, other source. */
Test(sim_spec, builtin_default_is_default_yaml)
{
	struct sim_spec file;
	char id1[64], id2[64];

	cr_assert_eq(sim_spec_load(&file, FLOWQ_SIM_SCENARIOS_DIR "/default.yaml", NULL,
				   0, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(sim_spec_load(&spec, NULL, NULL, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(spec.source, "<default>");
	cr_assert_str_eq(spec.name, "default");
	cr_assert_str_eq(spec.description, file.description);
	cr_assert_eq(spec.nflows, file.nflows);
	cr_assert_eq(sim_spec_nflows(&spec), sim_spec_nflows(&file));
	for (size_t k = 0; k < sim_spec_nflows(&spec); k++) {
		cr_assert_eq(sim_spec_flow(&spec, k, id1, sizeof(id1)) - spec.flows,
			     sim_spec_flow(&file, k, id2, sizeof(id2)) - file.flows);
		cr_assert_str_eq(id1, id2);
	}
	cr_assert_eq(spec.nvariants, file.nvariants);
	cr_assert_geq(spec.nvariants, 2);
	cr_assert_str_eq(spec.trace.path, file.trace.path);
	cr_assert(spec.has_trace);
	cr_assert_eq(spec.trace.path[0], '/', "resolved: %s", spec.trace.path);
	cr_assert_eq(spec.engine.config.nbands, 3);
	sim_spec_free(&file);
	check_leaks();
}

/* ---- defaults and values ----------------------------------------------------- */

Test(sim_spec, defaults)
{
	const struct sim_flow_spec *f;
	struct flowq_config def;

	ok(MIN);
	cr_assert_str_eq(spec.name, "t");
	cr_assert_str_eq(spec.description, "");
	cr_assert_str_eq(spec.source, "t.yaml");
	cr_assert_eq(spec.mode, SIM_MODE_REALTIME);
	cr_assert_eq(spec.seed, 1);
	cr_assert_eq(spec.duration_ns, 60 * S);
	cr_assert_eq(spec.drain_ns, 10 * S);
	cr_assert_eq(spec.window_ns, 1 * S);
	cr_assert_eq(spec.producers, 2);
	cr_assert_eq(spec.inversion_grace_ns, 1 * MS);
	flowq_config_init(&def);
	cr_assert_eq(spec.engine.config.shards, def.shards);
	cr_assert_eq(spec.engine.config.nbands, 0);
	cr_assert_eq(spec.backend.slots, 4);
	cr_assert_eq(spec.backend.service_ns.kind, SIM_DIST_CONST);
	cr_assert_eq(spec.backend.service_ns.p1, 10 * MS);
	cr_assert_eq(spec.backend.ns_per_byte, 0);
	cr_assert_eq(spec.backend.nslowdowns, 0);
	cr_assert(!spec.has_trace);
	cr_assert_eq(spec.nvariants, 0);
	cr_assert_eq(spec.nflows, 1);
	f = &spec.flows[0];
	cr_assert_str_eq(f->id, "a");
	cr_assert_eq(f->count, 1);
	cr_assert_eq(f->weight, 1);
	cr_assert_eq(f->priority, 0);
	cr_assert_eq(f->arrival.kind, SIM_ARRIVAL_POISSON);
	cr_assert_eq(f->arrival.rate, 100);
	cr_assert_eq(f->arrival.start_ns, 0);
	cr_assert_eq(f->arrival.stop_ns, 0);
	cr_assert_eq(f->size.kind, SIM_DIST_CONST);
	cr_assert_eq(f->size.p1, 1024);
	cr_assert_eq(f->ttl_ns, 0);
	cr_assert_eq(f->deadline_ns, 0);
	cr_assert_eq(f->cancel_prob, 0);
	cr_assert_eq(f->line, 3);
	cr_assert_eq(f->first, 0);
	check_leaks();
}

/* window: duration / 60 to the nearest ms, at least 1 ms. */
Test(sim_spec, default_window)
{
	static const struct {
		const char *duration;
		int64_t window;
	} c[] = {{"100s", 1667 * MS},
		 {"90s", 1500 * MS},
		 {"10ms", 1 * MS},
		 {"1ns", 1 * MS},
		 {"1h", 60 * S}};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char text[512];

		snprintf(text, sizeof(text), "sim: {duration: %s}\n" MIN, c[i].duration);
		ok(text);
		cr_assert_eq(spec.window_ns, c[i].window, "%s: %ld", c[i].duration,
			     (long)spec.window_ns);
		check_leaks();
	}
}

Test(sim_spec, every_value)
{
	const char *text =
		"name: every value\n"
		"description: \"all keys\"\n"
		"sim:\n"
		"  mode: virtual\n"
		"  seed: 18446744073709551615\n"
		"  duration: 2m\n"
		"  drain: 0\n"
		"  window: 250ms\n"
		"  producers: 8\n"
		"  inversion_grace: 5us\n"
		"engine:\n"
		"  shards: 3\n"
		"  bands: [{priority: 5, fairness: drr}]\n"
		"backend:\n"
		"  slots: 100\n"
		"  service: {dist: uniform, min: 1ms, max: 3ms}\n"
		"  per_byte: 0.25 ns\n"
		"  slowdown:\n"
		"    - {at: 10s, for: 5s, factor: 3}\n"
		"    - {at: 15s, for: 1s, factor: 0.5}\n"
		"trace:\n"
		"  file: " FLOWQ_SIM_SCENARIOS_DIR "/default.yaml\n"
		"  time_column: T\n"
		"  time_scale: 2.5\n"
		"  start: 1.5s\n"
		"  cost_column: C\n"
		"  bytes_per_unit: 4\n"
		"  service_column: G\n"
		"  service_per_unit: 2ms\n"
		"  service_base: 20ms\n"
		"  assign: column\n"
		"  assign_column: Tenant\n"
		"flows:\n"
		"  - id: p\n"
		"    count: 3\n"
		"    priority: 5\n"
		"    weight: 2\n"
		"    arrival: {process: poisson, rate: 3/ms, start: 1s, stop: 2s}\n"
		"    size: {dist: lognormal, median: 2KiB, sigma: 1}\n"
		"    ttl: none\n"
		"    deadline: 2s\n"
		"    cancel: {prob: 0.05, after: {dist: exp, mean: 500ms}}\n"
		"  - id: o\n"
		"    priority: -3\n"
		"    arrival: {process: onoff, rate: 12000/m, on: 2s,\n"
		"              off: {dist: exp, mean: 8s}}\n"
		"    size: {dist: pareto, min: 100, shape: 1.5}\n"
		"  - id: c\n"
		"    priority: 2147483647\n"
		"    arrival: {process: closed, clients: 32, think: {dist: const, value: "
		"50ms}}\n"
		"    size: 1.5KiB\n"
		"    ttl: 0\n"
		"  - id: 7\n"
		"    priority: -2147483648\n"
		"    arrival: {process: trace}\n"
		"compare:\n"
		"  - name: more shards\n"
		"    set: {engine.shards: 4, \"flows[0].arrival.rate\": 2/ms}\n"
		"  - name: two\n"
		"    set:\n"
		"      engine.bands: [{priority: 5, fairness: wfq}]\n"
		"      flows[1].size: {dist: uniform, min: 1 KiB, max: 1.5KiB}\n";
	const struct sim_flow_spec *f;

	ok(text);
	cr_assert_str_eq(spec.name, "every value");
	cr_assert_str_eq(spec.description, "all keys");
	cr_assert_eq(spec.mode, SIM_MODE_VIRTUAL);
	cr_assert_eq(spec.seed, UINT64_MAX);
	cr_assert_eq(spec.duration_ns, 120 * S);
	cr_assert_eq(spec.drain_ns, 0);
	cr_assert_eq(spec.window_ns, 250 * MS);
	cr_assert_eq(spec.producers, 8);
	cr_assert_eq(spec.inversion_grace_ns, 5000);
	cr_assert_eq(spec.engine.config.shards, 3);
	cr_assert_eq(spec.engine.config.nbands, 1);
	cr_assert_str_eq(spec.engine.config.bands[0].fairness, "drr");
	cr_assert_eq(spec.backend.slots, 100);
	cr_assert_eq(spec.backend.service_ns.kind, SIM_DIST_UNIFORM);
	cr_assert_eq(spec.backend.service_ns.p1, 1 * MS);
	cr_assert_eq(spec.backend.service_ns.p2, 3 * MS);
	cr_assert_eq(spec.backend.ns_per_byte, 0.25);
	cr_assert_eq(spec.backend.nslowdowns, 2);
	cr_assert_eq(spec.backend.slowdowns[0].at_ns, 10 * S);
	cr_assert_eq(spec.backend.slowdowns[0].for_ns, 5 * S);
	cr_assert_eq(spec.backend.slowdowns[0].factor, 3);
	cr_assert_eq(spec.backend.slowdowns[1].factor, 0.5);
	cr_assert(spec.has_trace);
	cr_assert_str_eq(spec.trace.time_column, "T");
	cr_assert_eq(spec.trace.time_scale, 2.5);
	cr_assert_eq(spec.trace.start_ns, 1500 * MS);
	cr_assert_str_eq(spec.trace.cost_column, "C");
	cr_assert_eq(spec.trace.bytes_per_unit, 4);
	cr_assert_str_eq(spec.trace.service_column, "G");
	cr_assert_eq(spec.trace.service_per_unit_ns, 2 * MS);
	cr_assert_eq(spec.trace.service_base_ns, 20 * MS);
	cr_assert_eq(spec.trace.assign, SIM_ASSIGN_COLUMN);
	cr_assert_str_eq(spec.trace.assign_column, "Tenant");
	cr_assert_eq(spec.nflows, 4);
	f = &spec.flows[0];
	cr_assert_eq(f->count, 3);
	cr_assert_eq(f->weight, 2);
	cr_assert_eq(f->arrival.rate, 3000);
	cr_assert_eq(f->arrival.start_ns, 1 * S);
	cr_assert_eq(f->arrival.stop_ns, 2 * S);
	cr_assert_eq(f->size.kind, SIM_DIST_LOGNORMAL);
	cr_assert_eq(f->size.p1, 2048);
	cr_assert_eq(f->size.p2, 1);
	cr_assert_eq(f->ttl_ns, FLOWQ_TTL_NONE);
	cr_assert_eq(f->deadline_ns, 2 * S);
	cr_assert_eq(f->cancel_prob, 0.05);
	cr_assert_eq(f->cancel_after_ns.kind, SIM_DIST_EXP);
	cr_assert_eq(f->cancel_after_ns.p1, 500 * MS);
	f = &spec.flows[1];
	cr_assert_eq(f->priority, -3);
	cr_assert_eq(f->arrival.kind, SIM_ARRIVAL_ONOFF);
	cr_assert_eq(f->arrival.rate, 200);
	cr_assert_eq(f->arrival.on_ns.kind, SIM_DIST_CONST);
	cr_assert_eq(f->arrival.on_ns.p1, 2 * S);
	cr_assert_eq(f->arrival.off_ns.kind, SIM_DIST_EXP);
	cr_assert_eq(f->arrival.off_ns.p1, 8 * S);
	cr_assert_eq(f->size.kind, SIM_DIST_PARETO);
	cr_assert_eq(f->size.p1, 100);
	cr_assert_eq(f->size.p2, 1.5);
	f = &spec.flows[2];
	cr_assert_eq(f->priority, INT32_MAX);
	cr_assert_eq(f->arrival.kind, SIM_ARRIVAL_CLOSED);
	cr_assert_eq(f->arrival.clients, 32);
	cr_assert_eq(f->arrival.think_ns.kind, SIM_DIST_CONST);
	cr_assert_eq(f->arrival.think_ns.p1, 50 * MS);
	cr_assert_eq(f->size.p1, 1536);
	f = &spec.flows[3];
	cr_assert_str_eq(f->id, "7");
	cr_assert_eq(f->priority, INT32_MIN);
	cr_assert_eq(f->arrival.kind, SIM_ARRIVAL_TRACE);
	cr_assert_eq(f->arrival.share, 1);
	cr_assert_eq(f->line, 53);
	cr_assert_eq(spec.nvariants, 2);
	cr_assert_str_eq(spec.variants[0].name, "more shards");
	cr_assert_eq(spec.variants[0].noverrides, 2);
	cr_assert_str_eq(spec.variants[0].overrides[0], "engine.shards=4");
	cr_assert_str_eq(spec.variants[0].overrides[1], "flows[0].arrival.rate=2/ms");
	cr_assert_str_eq(spec.variants[1].overrides[0],
			 "engine.bands=[{priority: 5, fairness: wfq}]");
	cr_assert_str_eq(spec.variants[1].overrides[1],
			 "flows[1].size={dist: uniform, min: 1 KiB, max: 1.5KiB}");
	check_leaks();
}

/* Flow numbering: classes in order, "<id>-<k>" for counted classes. */
Test(sim_spec, flow_numbering)
{
	const char *text =
		MIN_BACKEND "flows:\n"
			    "  - {id: a, count: 3, priority: 0, arrival: {process: "
			    "poisson, rate: 1}, size: 1}\n"
			    "  - {id: b, priority: 1, arrival: {process: poisson, "
			    "rate: 1}, size: 1}\n"
			    "  - {id: c, count: 2, priority: 1, arrival: {process: "
			    "poisson, rate: 1}, size: 1}\n";
	static const char *const want[] = {"a-0", "a-1", "a-2", "b", "c-0", "c-1"};
	char id[16];

	ok(text);
	cr_assert_eq(sim_spec_nflows(&spec), 6);
	for (size_t k = 0; k < 6; k++) {
		const struct sim_flow_spec *f = sim_spec_flow(&spec, k, id, sizeof(id));

		cr_assert_not_null(f);
		cr_assert_str_eq(id, want[k]);
		cr_assert_eq(f - spec.flows, k < 3 ? 0 : k < 4 ? 1 : 2);
	}
	cr_assert_null(sim_spec_flow(&spec, 6, id, sizeof(id)));
	check_leaks();
}

/* ---- overrides ------------------------------------------------------------- */

Test(sim_spec, overrides_replace_and_add)
{
	const char *text = "sim:\n"
			   "  seed: 3\n"
			   "engine:\n"
			   "  bands:\n"
			   "  - priority: 1\n"
			   "    fairness: round_robin\n"
			   "backend:\n"
			   "  slots: 4\n"
			   "  service: 10ms\n"
			   "flows:\n"
			   "  - id: a\n"
			   "    priority: 1\n"
			   "    arrival:\n"
			   "      process: poisson\n"
			   "      rate: 100\n"
			   "    size: 1KiB\n";
	const char *const o[] = {
		"sim.seed=7",                       /* replace a scalar */
		"sim.mode=virtual",                 /* add to a block mapping */
		"engine.bands[0].fairness=drr",     /* in an indentless sequence */
		"engine.saturation.max_inflight=8", /* add a missing mapping */
		"flows[0].arrival={process: closed, clients: 3, think: 1ms}", /* a block
										 mapping */
		"backend={slots: 9, service: 1ms}", /* a flow mapping */
		"backend.per_byte=2ns",             /* add to a flow mapping */
		"flows[0].ttl=none",
		"engine.shards=2",
	};

	ok_v(text, o, sizeof(o) / sizeof(o[0]));
	cr_assert_eq(spec.seed, 7);
	cr_assert_eq(spec.mode, SIM_MODE_VIRTUAL);
	cr_assert_str_eq(spec.engine.config.bands[0].fairness, "drr");
	cr_assert_eq(spec.engine.config.saturation.max_inflight, 8);
	cr_assert_eq(spec.engine.config.shards, 2);
	cr_assert_eq(spec.flows[0].arrival.kind, SIM_ARRIVAL_CLOSED);
	cr_assert_eq(spec.flows[0].arrival.clients, 3);
	cr_assert_eq(spec.backend.slots, 9);
	cr_assert_eq(spec.backend.ns_per_byte, 2);
	cr_assert_eq(spec.flows[0].ttl_ns, FLOWQ_TTL_NONE);
	check_leaks();
	/* Without sim: and engine: at all. */
	{
		const char *const o2[] = {"sim.duration=5s",
					  "engine.bands=[{priority: 0}]",
					  "engine.default_band_enabled=false"};

		ok_v(MIN, o2, 3);
		cr_assert_eq(spec.duration_ns, 5 * S);
		cr_assert_eq(spec.engine.config.nbands, 1);
		cr_assert(!spec.engine.config.default_band_enabled);
		check_leaks();
	}
	/* Into a document that is one flow mapping. */
	{
		const char *one =
			"{backend: {slots: 4, service: 10ms}, flows: [{id: a, "
			"priority: 0, arrival: {process: poisson, rate: 100}, size: "
			"1KiB}]}";
		const char *const o3[] = {"sim.seed=9", "flows[0].weight=4",
					  "flows[0].size=2KiB"};

		ok_v(one, o3, 3);
		cr_assert_eq(spec.seed, 9);
		cr_assert_eq(spec.flows[0].weight, 4);
		cr_assert_eq(spec.flows[0].size.p1, 2048);
		check_leaks();
	}
}

/* An edit keeps the rest of the file's lines and columns in messages. */
Test(sim_spec, messages_located_in_the_file_after_edits)
{
	const char *text =
		"sim:\n"
		"  seed: 3\n"
		"backend:\n"
		"  slots: 4\n"
		"  service: 10ms\n"
		"flows:\n"
		"  - {id: \xc3\xa9t\xc3\xa9, priority: 0, arrival: {process: poisson, "
		"rate: 100}, size: 1KiB, weight: 0}\n";
	const char *const o[] = {"sim.mode=virtual", "sim.duration=1s",
				 "sim.seed=1234567", "engine.shards=2"};
	const char *want = "t.yaml:7:80: flows[0].weight: 0 is not >= 1";

	fail(text, want);
	/* Two keys added above, one value made longer before it, a section
	 * added: the same place. */
	fail_v(text, o, 4, -EINVAL, want);
	/* The same with CR LF and with CR line breaks. */
	for (int crlf = 0; crlf < 2; crlf++) {
		char other[1024];
		size_t n = 0;

		for (const char *c = text; *c != '\0'; c++) {
			if (*c == '\n') {
				other[n++] = '\r';
				if (crlf)
					other[n++] = '\n';
			} else {
				other[n++] = *c;
			}
		}
		other[n] = '\0';
		fail(other, want);
		fail_v(other, o, 4, -EINVAL, want);
	}
}

Test(sim_spec, override_errors)
{
	fail1(MIN, "sim.seed", "override sim.seed: expected key.path=value");
	fail1(MIN, "=3", "override =3: bad key path: an empty key path");
	fail1(MIN, "sim..seed=3", "override sim..seed=3: bad key path: an empty key");
	fail1(MIN, "flows[x].id=3",
	      "override flows[x].id=3: bad key path: expected [<index>]");
	fail1(MIN, "flows[01].id=3",
	      "override flows[01].id=3: bad key path: an index has leading zeros");
	fail1(MIN, "[0]=3",
	      "override [0]=3: bad key path: an index needs a key before it");
	fail1(MIN, "compare=[{name: x}]",
	      "override compare=[{name: x}]: compare[0]: missing key \"set\"");
	fail1(MIN, "flows[1].id=b",
	      "override flows[1].id=b: flows has no item [1] (it has 1)");
	fail1(MIN, "flows.id=b", "override flows.id=b: flows is not a mapping");
	fail1(MIN, "backend[0]=b", "override backend[0]=b: backend is not a sequence");
	fail1(MIN, "compar[0].x=b",
	      "override compar[0].x=b: compar is not in the document, so it has no item "
	      "[0]");
	fail1(MIN, "sim.seed={a: 1",
	      "override sim.seed={a: 1: the value is not YAML: YAML syntax: did not find "
	      "expected ',' or '}' (while parsing a flow mapping at 1:1)");
	fail1(MIN, "sim.seed=- 1",
	      "override sim.seed=- 1: the value must be one YAML scalar or flow "
	      "collection "
	      "({...} or [...])");
	fail1(MIN, "sim.seed=1 # x",
	      "override sim.seed=1 # x: the value must be one YAML scalar or flow "
	      "collection "
	      "({...} or [...])");
	fail1(MIN, "sim.seed=1\n2",
	      "override sim.seed=1\\x0a2: the value must be one line (it has a control "
	      "character)");
	/* A value that parses alone but not where it lands. */
	fail1(MIN, "flows[0].id=a}",
	      "override flows[0].id=a}: the value does not fit here: YAML syntax: did "
	      "not find "
	      "expected '-' indicator (while parsing a block collection at 3:3)");
	/* ... or reads as something else there: the schema says what. */
	fail1(MIN, "flows[0].id=a,b",
	      "override flows[0].id=a,b: flows[0].b: unknown key (expected one of: id, "
	      "count, "
	      "priority, weight, arrival, size, ttl, deadline, cancel)");
	/* Bad values from an override name the override. */
	fail1(MIN, "engine.shards=abc",
	      "override engine.shards=abc: engine.shards: expected an integer, got "
	      "\"abc\"");
	fail1(MIN, "sim.seed=x",
	      "override sim.seed=x: sim.seed: expected an integer, got \"x\"");
	fail1(MIN, "flows[0].arrival.rate=-5",
	      "override flows[0].arrival.rate=-5: flows[0].arrival.rate: -5 is not a "
	      "finite "
	      "number > 0");
	fail1(MIN, "sim.bogus=1",
	      "override sim.bogus=1: sim.bogus: unknown key (expected one of: mode, "
	      "seed, "
	      "duration, drain, window, producers, inversion_grace)");
	fail1(MIN, "engine.bands=[{priority: 1, fairness: nope}]",
	      "override engine.bands=[{priority: 1, fairness: nope}]: "
	      "engine.bands[0].fairness: "
	      "unknown fairness policy \"nope\"");
	fail1(MIN, "flows[0].arrival={process: closed}",
	      "override flows[0].arrival={process: closed}: flows[0].arrival: missing "
	      "key "
	      "\"clients\"");
	fail1(MIN, "sim.seed=&a 1",
	      "override sim.seed=&a 1: sim.seed: anchors are not supported "
	      "(&a): write the value out");
	{
		/* MIN in UTF-16LE: it loads, but not with an override. */
		const char *const o[] = {"sim.seed=1"};
		size_t n = strlen(MIN);
		char *u = calloc(2 * n + 2, 1);
		int rc;

		u[0] = (char)0xFF;
		u[1] = (char)0xFE;
		for (size_t i = 0; i < n; i++)
			u[2 + 2 * i] = MIN[i];
		rc = sim_spec_load_buf(&spec, "t.yaml", u, 2 * n + 2, NULL, 0, err,
				       sizeof(err));
		cr_assert_eq(rc, 0, "%s", err);
		check_leaks();
		rc = sim_spec_load_buf(&spec, "t.yaml", u, 2 * n + 2, o, 1, err,
				       sizeof(err));
		cr_assert_eq(rc, -EINVAL);
		cr_assert_str_eq(
			err, "override sim.seed=1: overrides need a UTF-8 spec (this one "
			     "is UTF-16)");
		free(u);
	}
	check_leaks();
}

/* ---- errors: each class, exact message ---------------------------------------- */

Test(sim_spec, document_errors)
{
	fail("", "t.yaml:1:1: empty document: expected a mapping of spec keys");
	fail("# nothing\n",
	     "t.yaml:1:1: empty document: expected a mapping of spec keys");
	fail("- 1\n",
	     "t.yaml:1:1: the document is a sequence: expected a mapping of spec keys");
	fail("abc\n",
	     "t.yaml:1:1: the document is \"abc\": expected a mapping of spec keys");
	fail(MIN "---\nx: 1\n", "t.yaml:4:1: a second document: a spec is one document");
	fail("sim: {seed: 1\n",
	     "t.yaml:2:1: YAML syntax: did not find expected ',' or '}' "
	     "(while parsing a flow mapping at 1:6)");
	fail("sim:\n\tseed: 1\n",
	     "t.yaml:2:1: YAML syntax: found character that cannot start "
	     "any token (while scanning for the next token at 2:1)");
	fail("a: \xff\n",
	     "t.yaml:1:4: invalid input: invalid leading UTF-8 octet (#FF at byte 3)");
	{
		/* 65 levels of [ */
		char deep[200];

		memset(deep, '[', 65);
		strcpy(deep + 65, "\n");
		fail(deep, "t.yaml:1:65: nesting deeper than 64 levels");
	}
	fail_v("x", NULL, 0, -EINVAL,
	       "t.yaml:1:1: the document is \"x\": expected a mapping of spec keys");
}

/* Issue 6's hostile inputs in the spec's own parts (the engine part is
 * tests/unit/test_config_yaml.c's): each is refused at its line and column,
 * at once, without leaks. */
Test(sim_spec, hostile_yaml, .timeout = 10)
{
	/* A "billion laughs" in the flows: refused at the first anchor. */
	char bomb[4096];
	size_t at = (size_t)snprintf(bomb, sizeof(bomb),
				     MIN_BACKEND "flows:\n  - &a0 [lol]\n");
	for (int i = 1; i < 10; i++)
		at += (size_t)snprintf(
			bomb + at, sizeof(bomb) - at,
			"  - &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
			"*a%d, *a%d, *a%d]\n",
			i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
			i - 1);
	fail(bomb, "t.yaml:3:5: flows[0]: anchors are not supported (&a0): write the "
		   "value out");
	/* Huge numbers and overflowing units in workload fields. */
	fail(MIN_BACKEND "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, "
			 "rate: 1e999}, size: 1}\n",
	     "t.yaml:3:54: flows[0].arrival.rate: expected a rate (requests per second: "
	     "a "
	     "number, optionally with / and a duration unit: 200, 200/s, 3/ms), got "
	     "\"1e999\"");
	fail(MIN_BACKEND "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, "
			 "rate: 1e300/ns}, size: 1}\n",
	     "t.yaml:3:54: flows[0].arrival.rate: 1e300/ns is not a finite number > 0");
	fail(MIN_BACKEND "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, "
			 "rate: 1}, size: 1, ttl: 99999999999999999999s}\n",
	     "t.yaml:3:73: flows[0].ttl: 99999999999999999999s is more than INT64_MAX ns "
	     "(about 292 years)");
	fail(MIN_BACKEND "flows:\n  - {id: a, count: 99999999999999999999, priority: 0, "
			 "arrival: {process: poisson, rate: 1}, size: 1}\n",
	     "t.yaml:3:13: flows[0].count: 99999999999999999999 does not fit in 64 bits");
	/* Deep nesting inside a flow. */
	{
		char deep[300];
		at = (size_t)snprintf(deep, sizeof(deep), MIN_BACKEND "flows:\n  - ");
		memset(deep + at, '[', 70);
		strcpy(deep + at + 70, "\n");
		fail(deep, "t.yaml:3:67: nesting deeper than 64 levels");
	}
	/* Non-UTF-8 in a flow id and in an override. */
	fail(MIN_BACKEND
	     "flows:\n  - {id: a\xc3, priority: 0, arrival: {process: poisson, "
	     "rate: 1}, size: 1}\n",
	     "t.yaml:3:12: invalid input: invalid trailing UTF-8 octet (#2C at byte 53)");
	fail1(MIN, "flows[0].id=\xff\xfe",
	      "override flows[0].id=\xff\xfe: the value must be one YAML scalar or flow "
	      "collection ({...} or [...])");
	check_leaks();
}

Test(sim_spec, key_errors)
{
	fail("bogus: 1\n" MIN,
	     "t.yaml:1:1: bogus: unknown key (expected one of: name, description, "
	     "sim, engine, backend, trace, flows, compare)");
	fail(MIN "sim: {seeds: 1}\n",
	     "t.yaml:4:7: sim.seeds: unknown key (expected one of: mode, "
	     "seed, duration, drain, window, producers, inversion_grace)");
	fail("sim: {seed: 1}\nsim: {seed: 2}\n" MIN,
	     "t.yaml:2:1: sim: duplicate key (first at 1:1)");
	fail(MIN "sim: {seed: 1, seed: 2}\n",
	     "t.yaml:4:16: sim.seed: duplicate key (first at 4:7)");
	fail(MIN "sim: {[a]: 1}\n",
	     "t.yaml:4:7: sim: keys must be names, got a sequence as a key");
	fail(MIN "sim: &s {seed: 1}\n",
	     "t.yaml:4:6: sim: anchors are not supported (&s): write the value out");
	fail("x: &n 5\n" MIN "sim: {seed: *n}\n",
	     "t.yaml:1:1: x: unknown key (expected one of: name, description, sim, "
	     "engine, "
	     "backend, trace, flows, compare)");
	fail(MIN "sim: {seed: !!int 5}\n",
	     "t.yaml:4:13: sim.seed: tags are not supported "
	     "(tag:yaml.org,2002:int)");
	fail(MIN "name: *x\n",
	     "t.yaml:4:7: name: aliases are not supported (*x): write the value "
	     "out");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: 1}, "
	     "size: 1, sizes: 2}\n",
	     "t.yaml:3:73: flows[0].sizes: unknown key (expected one of: id, count, "
	     "priority, "
	     "weight, arrival, size, ttl, deadline, cancel)");
}

Test(sim_spec, value_errors)
{
	/* Wrong kinds. */
	fail(MIN "sim: 5\n", "t.yaml:4:1: sim: expected a mapping, got \"5\"");
	fail(MIN "sim: {seed: [1]}\n",
	     "t.yaml:4:7: sim.seed: expected an integer, got a sequence");
	fail(MIN "sim: {seed: \"5\"}\n",
	     "t.yaml:4:7: sim.seed: expected an integer, got the quoted string \"5\"");
	fail(MIN "sim: {mode: fast}\n",
	     "t.yaml:4:7: sim.mode: expected virtual or realtime, got \"fast\"");
	fail(MIN "name:\n", "t.yaml:4:1: name: expected text, got null");
	fail("flows: {a: 1}\n" MIN_BACKEND,
	     "t.yaml:1:1: flows: expected a sequence of flow classes, got a mapping");
	/* Units, grammars. */
	fail(MIN "sim: {duration: 5 parsecs}\n",
	     "t.yaml:4:7: sim.duration: expected a duration (an integer of ns, or a "
	     "number and "
	     "a unit: ns, us, ms, s, m, h), got \"5 parsecs\"");
	fail(MIN "sim: {duration: 1.5}\n",
	     "t.yaml:4:7: sim.duration: 1.5 needs a unit (a bare number is an integer of "
	     "nanoseconds)");
	fail(MIN "sim: {duration: 0.1ns}\n",
	     "t.yaml:4:7: sim.duration: 0.1ns is not a whole number of nanoseconds");
	fail(MIN "sim: {seed: 010}\n",
	     "t.yaml:4:7: sim.seed: 010 has leading zeros (octal in YAML "
	     "1.1, decimal in 1.2): write it without them");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: "
	     "1}, size: 1 KB B}\n",
	     "t.yaml:3:64: flows[0].size: expected a size (an integer of bytes, or a "
	     "number and "
	     "a unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB), got \"1 "
	     "KB B\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: "
	     "1/fortnight}, size: 1}\n",
	     "t.yaml:3:54: flows[0].arrival.rate: expected a rate (requests per second: "
	     "a "
	     "number, optionally with / and a duration unit: 200, 200/s, 3/ms), got "
	     "\"1/fortnight\"");
	fail("backend: {slots: 4, service: 1ms, per_byte: 1 byte}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:35: backend.per_byte: expected a duration per byte (a number and "
	     "a "
	     "unit: 2ns, 0.25ns; a bare number is ns), got \"1 byte\"");
	/* Overflow. */
	fail(MIN "sim: {seed: 18446744073709551616}\n",
	     "t.yaml:4:7: sim.seed: 18446744073709551616 does not fit in 64 bits");
	fail(MIN "sim: {duration: 300y}\n", "t.yaml:4:7: sim.duration: expected a "
					    "duration (an integer of ns, or a number and "
					    "a unit: ns, us, ms, s, m, h), got \"300y\"");
	fail(MIN "sim: {duration: 9999999999h}\n",
	     "t.yaml:4:7: sim.duration: 9999999999h is more than INT64_MAX ns (about 292 "
	     "years)");
	fail("backend: {slots: 4294967296, service: 1ms}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:11: backend.slots: 4294967296 is above 4294967295");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 2147483648, arrival: {process: poisson, "
	     "rate: 1}, size: 1}\n",
	     "t.yaml:3:13: flows[0].priority: 2147483648 is not in [-2147483648, "
	     "2147483647]");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: "
	     "1}, size: 8EiB}\n",
	     "t.yaml:3:64: flows[0].size: 8EiB is more than FLOWQ_LIMIT_MAX (2^62 "
	     "bytes)");
	fail(MIN "sim: {duration: 9223372036854775807, drain: 1}\n",
	     "t.yaml:4:38: sim.drain: duration + drain is more than INT64_MAX ns");
	/* Out of range. */
	fail("backend: {slots: 0, service: 1ms}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:11: backend.slots: 0 is not >= 1");
	fail(MIN "sim: {duration: 0}\n", "t.yaml:4:7: sim.duration: 0 is not > 0");
	fail(MIN "sim: {producers: 1025}\n",
	     "t.yaml:4:7: sim.producers: 1025 is above 1024");
	fail(MIN "sim: {duration: 1h, window: 1ms}\n",
	     "t.yaml:4:21: sim.window: 1ms makes more than SIM_MAX_WINDOWS (100000) "
	     "windows in "
	     "sim.duration");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: "
	     "1}, size: 1, cancel: {prob: 1.5}}\n",
	     "t.yaml:3:82: flows[0].cancel.prob: 1.5 is not in [0, 1]");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: "
	     "0/s}, size: 1}\n",
	     "t.yaml:3:54: flows[0].arrival.rate: 0/s is not a finite number > 0");
	fail(MIN "sim: {drain: .inf}\n", "t.yaml:4:7: sim.drain: expected a duration (an "
					 "integer of ns, or a number and a "
					 "unit: ns, us, ms, s, m, h), got \".inf\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: trace, share: "
	     ".nan}}\n",
	     "t.yaml:3:52: flows[0].arrival.share: .nan is not a finite number > 0");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: 1, "
	     "start: 2s, stop: 1s}, size: 1}\n",
	     "t.yaml:3:74: flows[0].arrival.stop: 1s is not after start");
	fail(MIN
	     "backend: {slots: 1, service: 1ms, slowdown: [{at: 5s, for: 5s, factor: 2}, "
	     "{at: 9s, for: 1s, factor: 2}]}\n",
	     "t.yaml:4:1: backend: duplicate key (first at 1:1)");
	fail("backend: {slots: 1, service: 1ms, slowdown: [{at: 5s, for: 5s, factor: 2}, "
	     "{at: "
	     "9s, for: 1s, factor: 2}]}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:77: backend.slowdown[1].at: 9s is before the end of "
	     "backend.slowdown[0] (slowdowns are sorted and do not overlap)");
	fail("backend: {slots: 1, service: 1ms, slowdown: [{at: 5s, for: 5s, factor: "
	     "0}]}\n"
	     "flows:\n" MIN_FLOW,
	     "t.yaml:1:64: backend.slowdown[0].factor: 0 is not a finite number > 0");
}

Test(sim_spec, distribution_errors)
{
	const char *pre =
		MIN_BACKEND "flows:\n  - id: a\n    priority: 0\n    arrival: {process: "
			    "poisson, rate: 1}\n    size: ";
	static const struct {
		const char *size, *msg;
	} c[] = {
		{"{value: 1}", "t.yaml:6:5: flows[0].size: missing key \"dist\""},
		{"{dist: normal}",
		 "t.yaml:6:12: flows[0].size.dist: expected const, uniform, exp, "
		 "lognormal or pareto, got \"normal\""},
		{"{dist: exp, median: 1}",
		 "t.yaml:6:23: flows[0].size.median: not a parameter of "
		 "dist exp (it takes: mean)"},
		{"{dist: uniform, min: 1}",
		 "t.yaml:6:5: flows[0].size: missing key \"max\""},
		{"{dist: uniform, min: 2, max: 1}",
		 "t.yaml:6:35: flows[0].size.max: 1 is less than min"},
		{"{dist: exp, mean: 0}", "t.yaml:6:23: flows[0].size.mean: 0 is not > 0"},
		{"{dist: lognormal, median: 1KiB, sigma: -1}",
		 "t.yaml:6:43: flows[0].size.sigma: -1 is not a finite number >= 0"},
		{"{dist: pareto, min: 1KiB, shape: 1}",
		 "t.yaml:6:37: flows[0].size.shape: 1 is not a finite number > 1"},
		{"{dist: pareto, min: 0, shape: 2}",
		 "t.yaml:6:26: flows[0].size.min: 0 is not > 0"},
		{"{dist: const, value: 1ms}",
		 "t.yaml:6:25: flows[0].size.value: expected a size (an integer of "
		 "bytes, or a "
		 "number and a unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, "
		 "EiB), got "
		 "\"1ms\""},
		{"[1, 2]",
		 "t.yaml:6:5: flows[0].size: expected a size distribution (a size, or "
		 "{dist: const|uniform|exp|lognormal|pareto, ...}), got a sequence"},
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char text[1024];

		snprintf(text, sizeof(text), "%s%s\n", pre, c[i].size);
		fail(text, c[i].msg);
	}
}

Test(sim_spec, missing_required)
{
	fail("flows:\n" MIN_FLOW, "t.yaml:1:1: missing key \"backend\"");
	fail(MIN_BACKEND, "t.yaml:1:1: missing key \"flows\"");
	fail(MIN_BACKEND "flows: []\n",
	     "t.yaml:2:1: flows: no flows (expected at least one class)");
	fail("backend: {service: 1ms}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:1: backend: missing key \"slots\"");
	fail("backend: {slots: 1}\nflows:\n" MIN_FLOW,
	     "t.yaml:1:1: backend: missing key \"service\"");
	fail(MIN_BACKEND
	     "flows:\n  - {priority: 0, arrival: {process: poisson, rate: 1}, size: 1}\n",
	     "t.yaml:3:5: flows[0]: missing key \"id\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, arrival: {process: poisson, rate: 1}, size: 1}\n",
	     "t.yaml:3:5: flows[0]: missing key \"priority\"");
	fail(MIN_BACKEND "flows:\n  - {id: a, priority: 1, size: 1}\n",
	     "t.yaml:3:5: flows[0]: missing key \"arrival\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 1, arrival: {process: poisson, rate: 1}}\n",
	     "t.yaml:3:5: flows[0]: missing key \"size\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 1, arrival: {rate: 1}, size: 1}\n",
	     "t.yaml:3:26: flows[0].arrival: missing key \"process\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 1, arrival: {process: onoff, rate: 1, "
	     "on: 1s}, size: 1}\n",
	     "t.yaml:3:26: flows[0].arrival: missing key \"off\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 1, arrival: {process: closed, clients: "
	     "1}, size: 1}\n",
	     "t.yaml:3:26: flows[0].arrival: missing key \"think\"");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 1, arrival: {process: closed, rate: 1, "
	     "clients: 1, think: 0}, size: 1}\n",
	     "t.yaml:3:53: flows[0].arrival.rate: not a parameter of process closed (it "
	     "takes: "
	     "clients, think, start, stop)");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: poisson, rate: 1}, "
	     "size: 1, cancel: {prob: 0.5}}\n",
	     "t.yaml:3:73: flows[0].cancel: missing key \"after\" (prob > 0 needs it)");
	fail(MIN_BACKEND
	     "flows:\n  - {id: \"\", priority: 0, arrival: {process: poisson, rate: "
	     "1}, size: 1}\n",
	     "t.yaml:3:6: flows[0].id: expected text, got an empty string");
	fail1(MIN, "name=", "override name=: name: expected text, got null");
	fail1(MIN, "sim.seed= ",
	      "override sim.seed= : sim.seed: expected an integer, got null");
	fail(MIN "compare:\n  - {name: x}\n",
	     "t.yaml:5:5: compare[0]: missing key \"set\"");
	fail(MIN "compare:\n  - {name: x, set: {}}\n",
	     "t.yaml:5:15: compare[0].set: no settings (expected at least one key.path: "
	     "value)");
}

Test(sim_spec, trace_rules)
{
	const char *tr = "trace: {file: " FLOWQ_SIM_SCENARIOS_DIR
			 "/default.yaml, time_column: T}\n";
	char text[1024];

	snprintf(text, sizeof(text), "%s%s", tr, MIN);
	fail(text,
	     "t.yaml:1:1: trace: no flow has arrival process trace (a trace needs at "
	     "least one)");
	fail(MIN_BACKEND
	     "flows:\n  - {id: a, priority: 0, arrival: {process: trace}, size: 1}\n",
	     "t.yaml:3:36: flows[0].arrival.process: process trace needs the top-level "
	     "trace: "
	     "section");
	fail("trace: {time_column: T}\n" MIN, "t.yaml:1:1: trace: missing key \"file\"");
	fail("trace: {file: x, time_column: T, bytes_per_unit: 2}\n" MIN,
	     "t.yaml:1:34: trace.bytes_per_unit: needs trace.cost_column");
	fail("trace: {file: x, time_column: T, service_column: G}\n" MIN,
	     "t.yaml:1:1: trace: missing key \"service_per_unit\" (trace.service_column "
	     "needs "
	     "it)");
	fail("trace: {file: x, time_column: T, assign: column}\n" MIN,
	     "t.yaml:1:1: trace: missing key \"assign_column\" (assign: column needs "
	     "it)");
	fail("trace: {file: x, time_column: T, assign_column: C}\n" MIN,
	     "t.yaml:1:34: trace.assign_column: needs trace.assign: column");
	snprintf(text, sizeof(text),
		 "%s" MIN_BACKEND
		 "flows:\n  - {id: a, priority: 0, arrival: {process: trace}}\n",
		 tr);
	fail(text,
	     "t.yaml:4:5: flows[0]: missing key \"size\" (trace.cost_column is not set)");
	snprintf(
		text, sizeof(text),
		"trace: {file: x.csv, time_column: T, cost_column: C, service_column: G, "
		"service_per_unit: 1ms}\n"
		"backend: {slots: 1}\nflows:\n  - {id: a, priority: 0, arrival: "
		"{process: "
		"trace}, size: 1}\n");
	fail(text, "t.yaml:4:53: flows[0].size: a trace flow's request size comes from "
		   "trace.cost_column (remove size)");
	/* Only trace flows with a service column: no backend.service needed;
	 * a trace flow of another kind needs it. */
	snprintf(text, sizeof(text),
		 "trace: {file: %s/default.yaml, time_column: T, cost_column: C, "
		 "service_column: G, service_per_unit: 1ms}\n"
		 "backend: {slots: 1}\nflows:\n  - {id: a, priority: 0, arrival: "
		 "{process: "
		 "trace}}\n",
		 FLOWQ_SIM_SCENARIOS_DIR);
	ok(text);
	check_leaks();
	strcat(text, "  - {id: b, priority: 0, arrival: {process: poisson, rate: 1}, "
		     "size: 1}\n");
	fail(text, "t.yaml:2:1: backend: missing key \"service\" (flows without "
		   "trace.service_column need it)");
}

Test(sim_spec, flow_rules)
{
	const char *p = "arrival: {process: poisson, rate: 1}, size: 1";
	char text[1024];

	snprintf(text, sizeof(text),
		 MIN_BACKEND
		 "flows:\n  - {id: a, priority: 0, %s}\n  - {id: a, priority: 0, "
		 "%s}\n",
		 p, p);
	fail(text, "t.yaml:4:6: flows[1].id: \"a\" is the id of flows[0] too (at 3:6)");
	snprintf(text, sizeof(text),
		 MIN_BACKEND
		 "flows:\n  - {id: a, count: 3, priority: 0, %s}\n  - {id: a-2, "
		 "priority: 0, %s}\n",
		 p, p);
	fail(text,
	     "t.yaml:4:6: flows[1].id: \"a-2\" is also the id of flow 2 of flows[0] (id "
	     "\"a\", count 3)");
	snprintf(text, sizeof(text),
		 MIN_BACKEND
		 "flows:\n  - {id: a, count: 3, priority: 0, %s}\n  - {id: a-3, "
		 "priority: 0, %s}\n  - {id: a-02, priority: 0, %s}\n",
		 p, p, p);
	ok(text);
	check_leaks();
	{
		char id[300];

		memset(id, 'x', 255);
		id[255] = '\0';
		snprintf(text, sizeof(text),
			 MIN_BACKEND "flows:\n  - {id: %s, count: 2, priority: 0, %s}\n",
			 id, p);
		fail(text, "t.yaml:3:6: flows[0].id: 257 bytes with the \"-<k>\" of "
			   "count: more "
			   "than FLOWQ_FLOW_ID_MAX (256)");
	}
	snprintf(text, sizeof(text),
		 MIN_BACKEND
		 "flows:\n  - {id: a, count: 1048576, priority: 0, %s}\n  - {id: b, "
		 "priority: 0, %s}\n",
		 p, p);
	fail(text,
	     "t.yaml:4:5: flows[1]: 1048577 flows in all (the sum of the counts) is more "
	     "than SIM_MAX_FLOWS (1048576)");
	snprintf(text, sizeof(text),
		 "engine: {default_band_enabled: false, bands: [{priority: "
		 "1}]}\n" MIN_BACKEND
		 "flows:\n  - {id: a, priority: 1, %s}\n  - {id: b, priority: 2, %s}\n",
		 p, p);
	fail(text,
	     "t.yaml:5:13: flows[1].priority: no band of engine.bands has priority 2 and "
	     "engine.default_band_enabled is false");
	snprintf(text, sizeof(text),
		 MIN_BACKEND
		 "flows:\n  - {id: a, priority: 0, arrival: {process: closed, "
		 "clients: 4294967295, think: 1ms}, size: 1}\n");
	fail(text, "t.yaml:3:53: flows[0].arrival.clients: 4294967295 closed-loop "
		   "clients in all "
		   "(count x clients over the flows) is more than 16777216");
}

Test(sim_spec, too_many_bands)
{
	size_t cap = 1 << 14, pos;
	char *text = malloc(cap);

	pos = (size_t)snprintf(text, cap, MIN_BACKEND "flows:\n");
	for (int i = 0; i < 65; i++)
		pos += (size_t)snprintf(
			text + pos, cap - pos,
			"- {id: f%d, priority: %d, arrival: {process: poisson, "
			"rate: 1}, size: 1}\n",
			i, i);
	fail(text,
	     "t.yaml:67:13: flows[64].priority: priority 64 would make more than "
	     "FLOWQ_MAX_BANDS (64) bands (engine.bands and one more per other priority)");
	free(text);
}

/* The engine section: the engine loader's schema and validate, full paths. */
Test(sim_spec, engine_errors)
{
	fail("engine:\n  shards: many\n" MIN,
	     "t.yaml:2:3: engine.shards: expected an integer, got \"many\"");
	fail("engine:\n  bogus: 1\n" MIN,
	     "t.yaml:2:3: engine.bogus: unknown key (expected one of: "
	     "shards, mode, max_requests, max_bytes, bands, "
	     "default_band_enabled, default_band, flow_max_requests, "
	     "flow_max_bytes, default_ttl_ns, flow_gc_timeout_ns, "
	     "saturation, displacement, displacement_max_pending, "
	     "registry_buckets, dispatch_batch, idle_spin_ns, intake_coalesce_ns)");
	fail("engine:\n  bands:\n    - {priority: 1, usage_ceiling: 1.5}\n" MIN,
	     "t.yaml:3:21: engine.bands[0].usage_ceiling: 1.5 is not in (0, 1]");
	fail("engine:\n  bands:\n    - {priority: 1}\n    - {priority: 1}\n" MIN,
	     "t.yaml:4:8: engine.bands[1].priority: 1 duplicates "
	     "engine.bands[0].priority (at "
	     "3:8)");
	fail("engine: 5\n" MIN, "t.yaml:1:1: engine: expected a mapping of engine "
				"configuration keys, got \"5\"");
	fail("engine: {displacement: nope}\n" MIN,
	     "t.yaml:1:10: engine.displacement: unknown displacement policy \"nope\"");
	fail("engine: {shards: &a 1}\n" MIN, "t.yaml:1:18: engine.shards: anchors are "
					     "not supported (&a): write the value out");
	/* Engine errors stay in document order with the workload's. */
	fail("sim: {seed: x}\nengine: {shards: x}\n" MIN,
	     "t.yaml:1:7: sim.seed: expected an integer, got \"x\"");
	fail("engine: {shards: x}\nsim: {seed: x}\n" MIN,
	     "t.yaml:1:10: engine.shards: expected an integer, got \"x\"");
	/* Located in the file after an edit above it. */
	{
		const char *const o[] = {"sim.seed=1", "name=\"a longer name\""};

		fail_v("name: n\nengine:\n  shards: many\n" MIN, o, 2, -EINVAL,
		       "t.yaml:3:3: engine.shards: expected an integer, got \"many\"");
	}
}

/* Variants: checked at load, reported at their entry. */
Test(sim_spec, variant_errors)
{
	fail(MIN "compare:\n  - name: x\n    set: {engine.shards: many}\n",
	     "t.yaml:6:11: compare[0].set: engine.shards: expected an integer, got "
	     "\"many\"");
	fail(MIN "compare:\n  - name: x\n    set:\n      sim.duration: 1s\n      "
		 "flows[3].id: b\n",
	     "t.yaml:8:7: compare[0].set: flows has no item [3] (it has 1)");
	fail(MIN
	     "compare:\n  - name: x\n    set: {sim.mode: virtual}\n  - name: x\n    set: "
	     "{sim.seed: 2}\n",
	     "t.yaml:7:5: compare[1].name: \"x\" is the name of compare[0] too");
	fail(MIN "compare:\n  - name: x\n    set: {compare: []}\n",
	     "t.yaml:6:11: compare[0].set: a variant cannot set compare");
	/* Every variant is checked, not only the first. */
	fail(MIN
	     "compare:\n  - {name: x, set: {sim.seed: 2}}\n  - {name: y, set: {sim.seed: "
	     "2}}\n  - {name: z, set: {sim.seed: -2}}\n",
	     "t.yaml:7:21: compare[2].set: sim.seed: -2 is negative (must be >= 0)");
	fail(MIN "compare:\n  - name: x\n    set: {sim.seed: &a 1}\n",
	     "t.yaml:6:21: compare[0].set: anchors are not supported (&a): write the "
	     "value out");
	/* Not the variant's own value: the whole message, with the variant. */
	fail(MIN "engine:\n  bands:\n    - {priority: 1, usage_ceiling: 0.8}\n    - "
		 "{priority: 0, "
		 "usage_ceiling: 0.5}\ncompare:\n  - name: x\n    set: "
		 "{\"engine.bands[0].usage_ceiling\": 0.4}\n",
	     "t.yaml:9:5: compare[0]: with this variant: t.yaml:7:21: "
	     "engine.bands[1].usage_ceiling: 0.5 is above the 0.4 of bands[0] (priority "
	     "1 > 0): "
	     "ceilings must not increase from a more important band to a less important "
	     "one");
	/* A variant is checked with the load's overrides before its own. */
	{
		const char *const o[] = {"sim.duration=1h"};

		fail_v(MIN "compare:\n  - name: x\n    set: {sim.window: 1ms}\n", o, 1,
		       -EINVAL,
		       "t.yaml:6:11: compare[0].set: sim.window: 1ms makes more than "
		       "SIM_MAX_WINDOWS (100000) windows in sim.duration");
	}
}

/* ---- trace files -------------------------------------------------------------- */

static char tmpdir[256];

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

#define TRACE_SPEC                                                                       \
	"trace: {file: %s, time_column: T}\n" MIN_BACKEND                                \
	"flows:\n  - {id: a, priority: 0, "                                              \
	"arrival: {process: trace}, size: 1}\n"

Test(sim_spec, trace_file_lookup)
{
	char path[512], text[1024], want[2048], data[512], real[512];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sim_spec.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/data", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/spec", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/spec/near.csv", tmpdir);
	write_file(path, "T\n1\n");
	snprintf(path, sizeof(path), "%s/data/far.csv", tmpdir);
	write_file(path, "T\n1\n");
	snprintf(data, sizeof(data), "/nonexistent:%s/data", tmpdir);
	setenv("FLOWQ_SIM_DATA", data, 1);

	/* Relative to the spec file's directory. */
	snprintf(path, sizeof(path), "%s/spec/s.yaml", tmpdir);
	snprintf(text, sizeof(text), TRACE_SPEC, "near.csv");
	write_file(path, text);
	cr_assert_eq(sim_spec_load(&spec, path, NULL, 0, err, sizeof(err)), 0, "%s", err);
	snprintf(real, sizeof(real), "%s/spec/near.csv", tmpdir);
	cr_assert_str_eq(spec.trace.path, real);
	check_leaks();
	/* In $FLOWQ_SIM_DATA. */
	snprintf(text, sizeof(text), TRACE_SPEC, "far.csv");
	write_file(path, text);
	cr_assert_eq(sim_spec_load(&spec, path, NULL, 0, err, sizeof(err)), 0, "%s", err);
	snprintf(real, sizeof(real), "%s/data/far.csv", tmpdir);
	cr_assert_str_eq(spec.trace.path, real);
	check_leaks();
	/* Absolute. */
	snprintf(text, sizeof(text), TRACE_SPEC, real);
	ok(text);
	cr_assert_str_eq(spec.trace.path, real);
	check_leaks();
	/* A directory is not a trace file; the message lists every place. */
	snprintf(text, sizeof(text), TRACE_SPEC, "data");
	snprintf(want, sizeof(want),
		 "t.yaml:1:9: trace.file: \"data\" not found (looked at: "
		 "/nonexistent/data, "
		 "%s/data/data, %s)",
		 tmpdir, "");
	{
		int rc = loadv(text, NULL, 0);
		char prefix[1024];

		cr_assert_eq(rc, -ENOENT, "%d %s", rc, err);
		snprintf(prefix, sizeof(prefix),
			 "t.yaml:1:9: trace.file: \"data\" not found (looked at: "
			 "/nonexistent/data, "
			 "%s/data/data, ",
			 tmpdir);
		cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
		cr_assert_not_null(strstr(err, "/shared/data/data"), "%s", err);
		check_leaks();
	}
	/* A file load looks in its own directory first. */
	snprintf(text, sizeof(text), TRACE_SPEC, "none.csv");
	write_file(path, text);
	{
		char prefix[2048];

		cr_assert_eq(sim_spec_load(&spec, path, NULL, 0, err, sizeof(err)),
			     -ENOENT);
		snprintf(prefix, sizeof(prefix),
			 "%s:1:9: trace.file: \"none.csv\" not found (looked at: "
			 "%s/spec/none.csv, "
			 "/nonexistent/none.csv, %s/data/none.csv, ",
			 path, tmpdir, tmpdir);
		cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "%s\n%s", err,
			  prefix);
		check_leaks();
	}
	/* The override of trace.file names the override. */
	{
		const char *o = "trace.file=/nonexistent/x.csv";

		snprintf(text, sizeof(text), TRACE_SPEC, "near.csv");
		fail_v(text, &o, 1, -ENOENT,
		       "override trace.file=/nonexistent/x.csv: trace.file: "
		       "\"/nonexistent/x.csv\" not found (looked at: "
		       "/nonexistent/x.csv)");
	}
	unsetenv("FLOWQ_SIM_DATA");
	(void)want;
}

/* ---- files and arguments ----------------------------------------------------------- */

Test(sim_spec, file_errors)
{
	cr_assert_eq(
		sim_spec_load(&spec, "/nonexistent/s.yaml", NULL, 0, err, sizeof(err)),
		-ENOENT);
	cr_assert_str_eq(err,
			 "/nonexistent/s.yaml: cannot open: No such file or directory");
	check_leaks();
	cr_assert_eq(sim_spec_load(&spec, "/", NULL, 0, err, sizeof(err)), -EISDIR);
	check_leaks();
	cr_assert_eq(
		sim_spec_load_buf(NULL, "x", MIN, strlen(MIN), NULL, 0, err, sizeof(err)),
		-EFAULT);
	cr_assert_eq(sim_spec_load_buf(&spec, "x", NULL, 3, NULL, 0, err, sizeof(err)),
		     -EFAULT);
	cr_assert_eq(sim_spec_load_buf(&spec, "x", MIN, strlen(MIN), NULL, 1, err,
				       sizeof(err)),
		     -EFAULT);
	{
		const char *const o[] = {NULL};

		cr_assert_eq(sim_spec_load_buf(&spec, "x", MIN, strlen(MIN), o, 1, err,
					       sizeof(err)),
			     -EFAULT);
		cr_assert_str_eq(err, "override #0 is NULL");
	}
	/* A NULL name: "<buffer>"; a NULL err is allowed. */
	cr_assert_eq(
		sim_spec_load_buf(&spec, NULL, "x: 1\n", 5, NULL, 0, err, sizeof(err)),
		-EINVAL);
	cr_assert(strncmp(err, "<buffer>:1:1: x: unknown key", 28) == 0, "%s", err);
	cr_assert_eq(sim_spec_load_buf(&spec, NULL, "x: 1\n", 5, NULL, 0, NULL, 0),
		     -EINVAL);
	check_leaks();
}

/* sim_spec_free is idempotent; a failed load leaves nothing to free. */
Test(sim_spec, free_twice)
{
	ok(MIN);
	sim_spec_free(&spec);
	sim_spec_free(&spec);
	sim_spec_free(NULL);
	check_leaks();
}

/* Every allocation of the loader, and of the engine loader under it, may
 * fail: -ENOMEM, the message, and nothing leaks. */
Test(sim_spec, out_of_memory_at_every_allocation)
{
	const char *text = "sim: {seed: 3}\n"
			   "engine:\n  bands: [{priority: 1, fairness: drr}]\n"
			   "backend: {slots: 4, service: 10ms, slowdown: [{at: 1s, for: "
			   "1s, factor: 2}]}\n"
			   "trace: {file: " FLOWQ_SIM_SCENARIOS_DIR
			   "/default.yaml, time_column: T}\n"
			   "flows:\n"
			   "  - {id: a, count: 2, priority: 1, arrival: {process: "
			   "trace}, size: 1KiB}\n"
			   "  - {id: b, priority: 0, arrival: {process: poisson, rate: "
			   "5}, size: 1KiB}\n"
			   "compare:\n"
			   "  - {name: v, set: {engine.shards: 2, \"flows[1].size\": "
			   "{dist: exp, mean: 1KiB}}}\n";
	const char *const o[] = {"sim.mode=virtual", "engine.shards=3",
				 "flows[0].cancel={prob: 0.5, after: 1ms}"};
	_Atomic long *hooks[] = {&sim__spec_fail_after, &flowq__config_yaml_fail_after};
	long total[2] = {0, 0};

	for (size_t h = 0; h < 2; h++) {
		for (long k = 0;; k++) {
			int rc;

			atomic_store(hooks[h], k);
			rc = loadv(text, o, 3);
			atomic_store(hooks[h], -1);
			if (rc == 0) {
				total[h] = k;
				break;
			}
			cr_assert_eq(rc, -ENOMEM, "hook %zu, after %ld: rc %d: %s", h, k,
				     rc, err);
			cr_assert_str_eq(err, "t.yaml: out of memory");
			cr_assert_null(spec.flows);
			check_freed(); /* LeakSanitizer once, below: it is slow */
		}
		check_leaks();
	}
	cr_log_info("allocations: %ld of spec.c, %ld of the engine loader", total[0],
		    total[1]);
	cr_assert_gt(total[0], 100, "%ld", total[0]);
	cr_assert_gt(total[1], 10, "%ld", total[1]);
	/* A file load: its buffer is the engine loader's. */
	atomic_store(&flowq__config_yaml_fail_after, 0);
	cr_assert_eq(sim_spec_load(&spec, FLOWQ_SIM_SCENARIOS_DIR "/closed-loop.yaml",
				   NULL, 0, err, sizeof(err)),
		     -ENOMEM);
	atomic_store(&flowq__config_yaml_fail_after, -1);
	cr_assert_str_eq(err, FLOWQ_SIM_SCENARIOS_DIR "/closed-loop.yaml: out of memory");
	check_leaks();
}

/* A variant loads as sim.h says: the overrides, the variant's, "compare=[]". */
Test(sim_spec, variants_load_as_documented)
{
	struct sim_spec v;
	const char *o[8] = {"sim.seed=5"};

	cr_assert_eq(sim_spec_load(&spec, NULL, o, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(spec.nvariants, 2);
	for (size_t i = 0; i < spec.nvariants; i++) {
		size_t n = 1;

		cr_assert_lt(spec.variants[i].noverrides, 6);
		for (size_t j = 0; j < spec.variants[i].noverrides; j++)
			o[n++] = spec.variants[i].overrides[j];
		o[n++] = "compare=[]";
		cr_assert_eq(sim_spec_load(&v, NULL, o, n, err, sizeof(err)), 0, "%s",
			     err);
		cr_assert_eq(v.nvariants, 0);
		cr_assert_eq(v.seed, 5);
		sim_spec_free(&v);
	}
	check_leaks();
}
