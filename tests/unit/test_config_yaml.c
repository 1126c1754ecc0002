/*
 * Unit tests for core/config_yaml.c (flowq_config_load_yaml): the shipped
 * example (every key), a randomized round trip of every field through YAML
 * text, units, the subtree-key mode, each schema error class with its exact
 * message and line:column, flowq_config_validate()'s messages placed at the
 * key they name, libyaml's errors, robustness cases (aliases, depth, NUL,
 * non-UTF-8, several documents), file errors with their errno, allocation
 * failure at every step of a load. Leaks on any path fail the ASan build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <flowq/config_yaml.h>
#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "config_yaml_internal.h"

/*
 * libc's malloc and realloc made to fail, on this thread, after
 * libc_fail_after more calls (-1: never): libyaml allocates through them,
 * not through the loader's hooks, and so does the loader itself. Not in
 * sanitized builds, whose runtime owns malloc.
 */
#if !defined(__SANITIZE_ADDRESS__)
#define LIBC_FAILS 1
extern void *
__libc_malloc(size_t n);
extern void *
__libc_realloc(void *p, size_t n);

static _Thread_local long libc_fail_after = -1;

static bool
libc_fails(void)
{
	if (libc_fail_after < 0)
		return false;
	if (libc_fail_after == 0)
		return true;
	libc_fail_after--;
	return false;
}

void *
malloc(size_t n)
{
	if (libc_fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *
realloc(void *p, size_t n)
{
	if (libc_fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}
#endif

#ifndef FLOWQ_TEST_EXAMPLES_DIR
#error "FLOWQ_TEST_EXAMPLES_DIR must name tools/examples"
#endif

#define ERRBUF 2048

static struct flowq_config_yaml y;
static char err[ERRBUF];

static int
load(const char *text, const char *key)
{
	memset(&y, 0xA5, sizeof(y)); /* the loader must not read r_cfg */
	memset(err, 'x', sizeof(err));
	return flowq_config_load_yaml_buf(&y, text, strlen(text), "t.yaml", key, err,
					  sizeof(err));
}

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

/*
 * Free the holder; then nothing of the loader's may be outstanding (its own
 * counter, any build) and, in an ASan build, nothing unreachable at all
 * (libyaml's memory included). Called after every failed load and at the
 * end of every test: LeakSanitizer's exit-time report from a Criterion
 * worker comes after the result is recorded, and an assertion in a .fini
 * is printed but does not fail the test, so the check is made inside the
 * test body.
 */
static void
check_leaks(void)
{
	flowq_config_yaml_free(&y);
	cr_assert_eq(atomic_load(&flowq__config_yaml_live), 0,
		     "%ld allocations of the loader outstanding",
		     atomic_load(&flowq__config_yaml_live));
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

/* A failed load leaves defaults, owns nothing, and freeing is a no-op. */
static void
expect_reset(void)
{
	struct flowq_config def;

	flowq_config_init(&def);
	cr_assert_null(y.owned);
	cr_assert_eq(memcmp(&y.config, &def, sizeof(def)), 0, "config reset to defaults");
	flowq_config_yaml_free(&y);
	cr_assert_eq(memcmp(&y.config, &def, sizeof(def)), 0);
	check_leaks();
}

/* @text (subtree @key) must fail with @rc and exactly @msg. */
static void
expect_fail_key(const char *text, const char *key, int rc, const char *msg)
{
	int got = load(text, key);

	cr_assert_eq(got, rc, "rc %d (want %d) for:\n%s\nmessage: %s", got, rc, text,
		     err);
	cr_assert_str_eq(err, msg, "for:\n%s\ngot:  %s\nwant: %s", text, err, msg);
	expect_reset();
}

static void
expect_fail(const char *text, const char *msg)
{
	expect_fail_key(text, NULL, -EINVAL, msg);
}

static void
expect_ok_key(const char *text, const char *key)
{
	int rc = load(text, key);

	cr_assert_eq(rc, 0, "rc %d for:\n%s\nmessage: %s", rc, text, err);
	cr_assert_str_eq(err, "", "a successful load clears the errbuf");
}

static void
expect_ok(const char *text)
{
	expect_ok_key(text, NULL);
}

static void
free_y(void)
{
	flowq_config_yaml_free(&y);
}

/* Every field of two configs, strings by content. */
static void
band_eq(const struct flowq_band_config *a, const struct flowq_band_config *b,
	const char *what)
{
	cr_assert_eq(a->priority, b->priority, "%s.priority %d != %d", what, a->priority,
		     b->priority);
	cr_assert_eq(a->max_requests, b->max_requests, "%s.max_requests", what);
	cr_assert_eq(a->max_bytes, b->max_bytes, "%s.max_bytes %lu != %lu", what,
		     (unsigned long)a->max_bytes, (unsigned long)b->max_bytes);
	cr_assert_str_eq(a->fairness, b->fairness, "%s.fairness", what);
	cr_assert_str_eq(a->ordering, b->ordering, "%s.ordering", what);
	cr_assert(a->usage_ceiling == b->usage_ceiling, "%s.usage_ceiling %.17g != %.17g",
		  what, a->usage_ceiling, b->usage_ceiling);
	cr_assert_eq(a->quantum, b->quantum, "%s.quantum", what);
}

static void
config_eq(const struct flowq_config *a, const struct flowq_config *b)
{
	char what[32];

	cr_assert_eq(a->shards, b->shards);
	cr_assert_eq(a->mode, b->mode);
	cr_assert_eq(a->max_requests, b->max_requests);
	cr_assert_eq(a->max_bytes, b->max_bytes);
	cr_assert_eq(a->nbands, b->nbands, "nbands %zu != %zu", a->nbands, b->nbands);
	for (size_t i = 0; i < a->nbands; i++) {
		snprintf(what, sizeof(what), "bands[%zu]", i);
		band_eq(&a->bands[i], &b->bands[i], what);
	}
	cr_assert_eq(a->default_band_enabled, b->default_band_enabled);
	cr_assert_eq(a->default_band.max_requests, b->default_band.max_requests);
	band_eq(&a->default_band, &b->default_band, "default_band");
	cr_assert_eq(a->flow_max_requests, b->flow_max_requests);
	cr_assert_eq(a->flow_max_bytes, b->flow_max_bytes);
	cr_assert_eq(a->default_ttl_ns, b->default_ttl_ns);
	cr_assert_eq(a->flow_gc_timeout_ns, b->flow_gc_timeout_ns);
	cr_assert_str_eq(a->saturation.detector, b->saturation.detector);
	cr_assert_eq(a->saturation.max_inflight, b->saturation.max_inflight);
	cr_assert_eq(a->saturation.max_inflight_bytes, b->saturation.max_inflight_bytes);
	cr_assert_eq(a->saturation.callback, b->saturation.callback);
	cr_assert_eq(a->saturation.callback_ctx, b->saturation.callback_ctx);
	cr_assert_eq(a->saturation.callback_poll_ns, b->saturation.callback_poll_ns);
	cr_assert_eq(a->saturation.endpoints, b->saturation.endpoints);
	cr_assert_eq(a->saturation.queue_depth_threshold,
		     b->saturation.queue_depth_threshold);
	cr_assert(a->saturation.kv_cache_util_threshold ==
			  b->saturation.kv_cache_util_threshold,
		  "kv_cache_util_threshold %.17g != %.17g",
		  a->saturation.kv_cache_util_threshold,
		  b->saturation.kv_cache_util_threshold);
	cr_assert_eq(a->saturation.metrics_staleness_ns,
		     b->saturation.metrics_staleness_ns);
	cr_assert(a->saturation.dispatch_cost == b->saturation.dispatch_cost,
		  "dispatch_cost %.17g != %.17g", a->saturation.dispatch_cost,
		  b->saturation.dispatch_cost);
	cr_assert_str_eq(a->displacement, b->displacement);
	cr_assert_eq(a->displacement_max_pending, b->displacement_max_pending);
	cr_assert_eq(a->allocator, b->allocator);
	cr_assert_eq(a->clock, b->clock);
	cr_assert_eq(a->clock_ctx, b->clock_ctx);
	cr_assert_eq(a->registry_buckets, b->registry_buckets);
	cr_assert_eq(a->dispatch_batch, b->dispatch_batch);
	cr_assert_eq(a->idle_spin_ns, b->idle_spin_ns);
	cr_assert_eq(a->intake_coalesce_ns, b->intake_coalesce_ns);
	cr_assert_eq(a->errbuf, b->errbuf);
	cr_assert_eq(a->errbuf_size, b->errbuf_size);
}

/* Each table's keys, as "unknown key" messages list them: a field added to
 * a struct and its table is added here too. */
#define ROOT_KEYS                                                                        \
	"shards, mode, max_requests, max_bytes, bands, default_band_enabled, "           \
	"default_band, flow_max_requests, flow_max_bytes, default_ttl_ns, "              \
	"flow_gc_timeout_ns, saturation, displacement, displacement_max_pending, "       \
	"registry_buckets, dispatch_batch, idle_spin_ns, intake_coalesce_ns"
#define TEMPLATE_KEYS                                                                    \
	"max_requests, max_bytes, fairness, ordering, usage_ceiling, quantum"
#define BAND_KEYS "priority, " TEMPLATE_KEYS
#define SATURATION_KEYS                                                                  \
	"detector, max_inflight, max_inflight_bytes, callback_poll_ns, endpoints, "      \
	"queue_depth_threshold, kv_cache_util_threshold, metrics_staleness_ns, "         \
	"dispatch_cost"

#define KiB UINT64_C(1024)
#define MiB (KiB * KiB)
#define GiB (MiB * KiB)
#define MS  INT64_C(1000000)
#define SEC INT64_C(1000000000)

/* ---- the shipped example ---------------------------------------------- */

Test(config_yaml, example_file_sets_every_key)
{
	static const struct flowq_band_config bands[3] = {
		{100, 20000, 1 * GiB, "round_robin", "fcfs", 1.0, 4 * KiB},
		{0, 0, UINT64_C(2000000000), "global_strict", "fcfs", 0.8, 1500},
		{-10, 0, 256 * MiB, "global_strict", "fcfs", 0.5, 4096},
	};
	struct flowq_config want;
	int rc;

	flowq_config_init(&want);
	want.shards = 4;
	want.mode = FLOWQ_MODE_THREADED;
	want.max_requests = 100000;
	want.max_bytes = 4 * GiB;
	want.bands = bands;
	want.nbands = 3;
	want.default_band_enabled = true;
	want.default_band = (struct flowq_band_config){
		0, 1000, 64 * MiB, "round_robin", "fcfs", 0.5, 0};
	want.flow_max_requests = 500;
	want.flow_max_bytes = 16 * MiB;
	want.default_ttl_ns = 30 * SEC;
	want.flow_gc_timeout_ns = 90 * SEC;
	want.saturation.detector = "concurrency";
	want.saturation.max_inflight = 256;
	want.saturation.max_inflight_bytes = 1 * GiB;
	want.saturation.callback_poll_ns = 2 * MS;
	want.saturation.endpoints = 16;
	want.saturation.queue_depth_threshold = 8;
	want.saturation.kv_cache_util_threshold = 0.9;
	want.saturation.metrics_staleness_ns = 250 * MS;
	want.saturation.dispatch_cost = 1.5;
	want.displacement = "lowest_band_newest";
	want.displacement_max_pending = 128;
	want.registry_buckets = 4096;
	want.dispatch_batch = 64;
	want.idle_spin_ns = 20000;
	want.intake_coalesce_ns = 5000;

	memset(err, 'x', sizeof(err));
	rc = flowq_config_load_yaml(&y, FLOWQ_TEST_EXAMPLES_DIR "/engine.yaml", NULL, err,
				    sizeof(err));
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_str_eq(err, "");
	cr_assert_not_null(y.owned);
	config_eq(&y.config, &want);
	check_leaks();
}

Test(config_yaml, loaded_config_creates_an_engine)
{
	struct flowq_engine *e;
	struct flowq_config cfg;

	expect_ok("mode: polled\nshards: 2\nbands:\n  - {priority: 5, fairness: "
		  "round_robin}\n"
		  "  - {priority: 1}\n");
	/* The host sets host-only fields on a copy, then the engine copies. */
	cfg = y.config;
	cr_assert_eq(flowq_engine_create(&cfg, &e), 0);
	flowq_config_yaml_free(&y);
	cr_assert_null(y.config.bands, "free resets to defaults");
	flowq_engine_destroy(e);
	check_leaks();
}

/* ---- round trip: random valid configs through YAML text ------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t
rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

static uint64_t
rnd_below(uint64_t n)
{
	return n == 0 ? 0 : rnd() % n;
}

/* A value of at most @bits bits, often small or round. */
static uint64_t
rnd_bits(unsigned bits)
{
	switch (rnd_below(4)) {
	case 0:
		return 0;
	case 1:
		return rnd_below(100);
	case 2:
		return (rnd_below(64) + 1) << (rnd_below(bits > 7 ? bits - 6 : 1));
	default:
		return bits >= 64 ? rnd() : rnd() & ((UINT64_C(1) << bits) - 1);
	}
}

struct out {
	char buf[16384];
	size_t pos;
};

static void
emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emit(struct out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	o->pos += (size_t)vsnprintf(o->buf + o->pos, sizeof(o->buf) - o->pos, fmt, ap);
	va_end(ap);
	cr_assert_lt(o->pos, sizeof(o->buf));
}

/* A size in one of the spellings the loader accepts for @v. */
static const char *
size_text(char buf[64], uint64_t v)
{
	static const struct {
		const char *unit;
		uint64_t scale;
	} units[] = {{"EiB", GiB * GiB}, {"GiB", GiB},    {"MiB", MiB}, {"KiB", KiB},
		     {"GB", 1000000000}, {"MB", 1000000}, {"kB", 1000}};
	size_t k = rnd_below(sizeof(units) / sizeof(units[0]) + 2);

	if (k < sizeof(units) / sizeof(units[0]) && v > 0) {
		uint64_t s = units[k].scale;

		if (v % s == 0) {
			snprintf(buf, 64, "%" PRIu64 "%s%s", v / s,
				 rnd_below(2) ? " " : "", units[k].unit);
			return buf;
		}
		/* Half units: "1.5KiB". */
		if ((2 * v) % s == 0 && v / s < (UINT64_C(1) << 60)) {
			snprintf(buf, 64, "%" PRIu64 ".5%s", v / s, units[k].unit);
			return buf;
		}
	}
	if (k == sizeof(units) / sizeof(units[0])) {
		snprintf(buf, 64, "\"%" PRIu64 "B\"", v);
		return buf;
	}
	snprintf(buf, 64, "%" PRIu64, v);
	return buf;
}

static const char *
duration_text(char buf[64], int64_t v)
{
	static const struct {
		const char *unit;
		int64_t scale;
	} units[] = {{"h", 3600 * SEC}, {"m", 60 * SEC}, {"s", SEC},
		     {"ms", MS},        {"us", 1000},    {"ns", 1}};
	size_t k = rnd_below(sizeof(units) / sizeof(units[0]) + 1);

	if (v == FLOWQ_TTL_NONE)
		return rnd_below(2) ? "none" : "9223372036854775807";
	if (k < sizeof(units) / sizeof(units[0])) {
		int64_t s = units[k].scale;

		if (v % s == 0) {
			snprintf(buf, 64, "%" PRId64 "%s", v / s, units[k].unit);
			return buf;
		}
		if (s % 4 == 0 && (4 * (v % s)) % s == 0) { /* quarter units */
			snprintf(buf, 64, "%" PRId64 ".%02d%s", v / s,
				 (int)(4 * (v % s) / s) * 25, units[k].unit);
			return buf;
		}
	}
	snprintf(buf, 64, "%" PRId64, v);
	return buf;
}

static const char *
real_text(char buf[64], double v)
{
	snprintf(buf, 64, "%.17g", v);
	return buf;
}

/* A registered policy name, so that policies added later are covered. */
static const char *
rnd_fairness(void)
{
	size_t n = 0;

	while (flowq_fairness_at(n) != NULL)
		n++;
	return flowq_fairness_at((size_t)rnd_below(n))->desc.name;
}

static const char *
rnd_ordering(void)
{
	size_t n = 0;

	while (flowq_ordering_at(n) != NULL)
		n++;
	return flowq_ordering_at((size_t)rnd_below(n))->desc.name;
}

static const char *
rnd_displacement(void)
{
	size_t n = 0;

	while (flowq_displacement_at(n) != NULL)
		n++;
	return flowq_displacement_at((size_t)rnd_below(n))->desc.name;
}

/* A band with limits that satisfy the joint rule. */
static void
rnd_band(struct flowq_band_config *b, double ceiling)
{
	unsigned rbits = (unsigned)rnd_below(25);

	b->max_requests = rnd_bits(rbits);
	b->max_bytes = rnd_bits(40);
	b->fairness = rnd_fairness();
	b->ordering = rnd_ordering();
	b->usage_ceiling = ceiling;
	b->quantum = rnd_bits(62);
}

static void
emit_band(struct out *o, const struct flowq_band_config *b, bool with_priority,
	  const char *indent, bool flow)
{
	char t[64];
	/* Keys in a random order: order must not matter. */
	int order[7] = {0, 1, 2, 3, 4, 5, 6};
	bool first = true;

	for (int i = 6; i > 0; i--) {
		int j = (int)rnd_below((uint64_t)i + 1), tmp = order[i];

		order[i] = order[j];
		order[j] = tmp;
	}
	if (flow)
		emit(o, "{");
	for (int i = 0; i < 7; i++) {
		const char *sep = flow ? (first ? "" : ", ") : indent;

		switch (order[i]) {
		case 0:
			if (!with_priority)
				continue;
			emit(o, "%spriority: %d", sep, b->priority);
			break;
		case 1:
			emit(o, "%smax_requests: %" PRIu64, sep, b->max_requests);
			break;
		case 2:
			emit(o, "%smax_bytes: %s", sep, size_text(t, b->max_bytes));
			break;
		case 3:
			emit(o, "%sfairness: %s", sep, b->fairness);
			break;
		case 4:
			emit(o, "%sordering: '%s'", sep, b->ordering);
			break;
		case 5:
			emit(o, "%susage_ceiling: %s", sep,
			     real_text(t, b->usage_ceiling));
			break;
		case 6:
			emit(o, "%squantum: %s", sep, size_text(t, b->quantum));
			break;
		}
		if (!flow)
			emit(o, "\n");
		first = false;
	}
	if (flow)
		emit(o, "}\n");
}

static int
prio_desc(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, z = *(const int32_t *)b;

	return (x < z) - (x > z);
}

Test(config_yaml, round_trip_of_every_field)
{
	static const char *const bools[2][3] = {{"false", "False", "FALSE"},
						{"true", "True", "TRUE"}};

	for (int iter = 0; iter < 300; iter++) {
		struct flowq_band_config bands[FLOWQ_MAX_BANDS];
		int32_t prios[FLOWQ_MAX_BANDS];
		struct flowq_config want;
		struct out *o = calloc(1, sizeof(*o));
		size_t nb = iter % 7 == 6 ? FLOWQ_MAX_BANDS : (size_t)rnd_below(9);
		double ceiling = 1.0;
		char t[64];
		char vbuf[ERRBUF];
		int rc;

		cr_assert_not_null(o);
		flowq_config_init(&want);
		want.shards = (unsigned)rnd_below(FLOWQ_MAX_SHARDS + 1);
		want.mode = rnd_below(2) ? FLOWQ_MODE_POLLED : FLOWQ_MODE_THREADED;
		want.max_requests = rnd_bits(22);
		want.max_bytes = rnd_bits(42);
		/* Unique priorities, placed in descending order so ceilings can
		 * be made non-increasing, then shuffled. */
		for (size_t i = 0; i < nb; i++) {
			bool dup;

			do {
				prios[i] =
					rnd_below(8) == 0
						? (rnd_below(2) ? INT32_MIN : INT32_MAX)
						: (int32_t)(rnd_below(2001)) - 1000;
				dup = false;
				for (size_t j = 0; j < i; j++)
					dup |= prios[j] == prios[i];
			} while (dup);
		}
		qsort(prios, nb, sizeof(prios[0]), prio_desc);
		for (size_t i = 0; i < nb; i++) {
			if (rnd_below(2))
				ceiling *= 0.5 + (double)rnd_below(1000) / 2000.0;
			bands[i].priority = prios[i];
			rnd_band(&bands[i], ceiling > 0 ? ceiling : 1e-300);
		}
		for (size_t i = nb; i > 1; i--) {
			size_t j = (size_t)rnd_below(i);
			struct flowq_band_config tmp = bands[i - 1];

			bands[i - 1] = bands[j];
			bands[j] = tmp;
		}
		want.bands = nb > 0 ? bands : NULL;
		want.nbands = nb;
		want.default_band_enabled = rnd_below(2);
		rnd_band(&want.default_band, (double)(rnd_below(1000) + 1) / 1000.0);
		want.default_band.priority = 0;
		want.flow_max_requests = rnd_bits(62);
		want.flow_max_bytes = rnd_bits(62);
		want.default_ttl_ns = rnd_below(4) == 0
					      ? FLOWQ_TTL_NONE
					      : (int64_t)rnd_below(INT64_C(1) << 50) + 1;
		want.flow_gc_timeout_ns = (int64_t)rnd_below(INT64_C(1) << 45) + 1;
		want.saturation.max_inflight = rnd_bits(20);
		want.saturation.max_inflight_bytes = rnd_bits(44);
		want.saturation.callback_poll_ns = (int64_t)rnd_below(10 * SEC) + 1;
		want.saturation.endpoints = (unsigned)rnd_below(FLOWQ_MAX_ENDPOINTS) + 1;
		want.saturation.queue_depth_threshold = rnd_bits(62) + 1;
		want.saturation.kv_cache_util_threshold =
			(double)(rnd_below(1000) + 1) / 1000.0;
		want.saturation.metrics_staleness_ns =
			(int64_t)rnd_below(INT64_C(1) << 45) + 1;
		want.saturation.dispatch_cost = (double)rnd_below(4000001) / 4.0;
		want.displacement = rnd_displacement();
		want.displacement_max_pending = rnd_below(2) ? rnd_bits(62) + 1 : 64;
		want.registry_buckets = 1ul << rnd_below(31);
		want.dispatch_batch = (unsigned)rnd_below(4096) + 1;
		want.idle_spin_ns = (int64_t)rnd_below(SEC + 1);
		want.intake_coalesce_ns = (int64_t)rnd_below(100001);
		cr_assert_eq(flowq_config_validate(&want, vbuf, sizeof(vbuf)), 0,
			     "generator made an invalid config: %s", vbuf);

		/* Top-level keys in a random order. */
		int order[19];
		for (int i = 0; i < 19; i++)
			order[i] = i;
		for (int i = 18; i > 0; i--) {
			int j = (int)rnd_below((uint64_t)i + 1), tmp = order[i];

			order[i] = order[j];
			order[j] = tmp;
		}
		emit(o, "# round trip %d\n", iter);
		for (int i = 0; i < 19; i++) {
			switch (order[i]) {
			case 0:
				emit(o, "shards: %u\n", want.shards);
				break;
			case 1:
				emit(o, "mode: %s\n",
				     want.mode == FLOWQ_MODE_POLLED ? "polled"
								    : "\"threaded\"");
				break;
			case 2:
				emit(o, "max_requests: %" PRIu64 "\n", want.max_requests);
				break;
			case 3:
				emit(o, "max_bytes: %s\n", size_text(t, want.max_bytes));
				break;
			case 4:
				emit(o, "bands:%s\n", nb == 0 ? " []" : "");
				for (size_t b = 0; b < nb; b++) {
					if (rnd_below(2)) {
						emit(o, "  - ");
						emit_band(o, &bands[b], true, "", true);
					} else {
						emit(o, "  -\n");
						emit_band(o, &bands[b], true, "    ",
							  false);
					}
				}
				break;
			case 5:
				emit(o, "default_band_enabled: %s\n",
				     bools[want.default_band_enabled][rnd_below(3)]);
				break;
			case 6:
				emit(o, "default_band:\n");
				emit_band(o, &want.default_band, false, "  ", false);
				break;
			case 7:
				emit(o, "flow_max_requests: %" PRIu64 "\n",
				     want.flow_max_requests);
				break;
			case 8:
				emit(o, "flow_max_bytes: %s\n",
				     size_text(t, want.flow_max_bytes));
				break;
			case 9:
				emit(o, "default_ttl_ns: %s\n",
				     duration_text(t, want.default_ttl_ns));
				break;
			case 10:
				emit(o, "flow_gc_timeout_ns: %s\n",
				     duration_text(t, want.flow_gc_timeout_ns));
				break;
			case 11:
				emit(o, "saturation:\n  detector: concurrency\n");
				emit(o, "  max_inflight: %" PRIu64 "\n",
				     want.saturation.max_inflight);
				emit(o, "  max_inflight_bytes: %s\n",
				     size_text(t, want.saturation.max_inflight_bytes));
				emit(o, "  callback_poll_ns: %s\n",
				     duration_text(t, want.saturation.callback_poll_ns));
				emit(o, "  endpoints: %u\n", want.saturation.endpoints);
				emit(o, "  queue_depth_threshold: %" PRIu64 "\n",
				     want.saturation.queue_depth_threshold);
				emit(o, "  kv_cache_util_threshold: %s\n",
				     real_text(t,
					       want.saturation.kv_cache_util_threshold));
				emit(o, "  metrics_staleness_ns: %s\n",
				     duration_text(t,
						   want.saturation.metrics_staleness_ns));
				emit(o, "  dispatch_cost: %s\n",
				     real_text(t, want.saturation.dispatch_cost));
				break;
			case 12:
				emit(o, "registry_buckets: %lu\n", want.registry_buckets);
				break;
			case 13:
				emit(o, "dispatch_batch: %u\n", want.dispatch_batch);
				break;
			case 14:
				emit(o, "idle_spin_ns: %s\n",
				     duration_text(t, want.idle_spin_ns));
				break;
			case 16:
				emit(o, "displacement: %s\n", want.displacement);
				break;
			case 17:
				emit(o, "displacement_max_pending: %" PRIu64 "\n",
				     want.displacement_max_pending);
				break;
			case 18:
				emit(o, "intake_coalesce_ns: %s\n",
				     duration_text(t, want.intake_coalesce_ns));
				break;
			default:
				emit(o, "# end\n");
				break;
			}
		}
		rc = load(o->buf, NULL);
		cr_assert_eq(rc, 0, "rc %d: %s\n%s", rc, err, o->buf);
		config_eq(&y.config, &want);
		flowq_config_yaml_free(&y);
		free(o);
		/* flowq_config_write_yaml() writes what loads back to the same
		 * config: every key, or the changed ones only, nested under a
		 * key (indent) or at the top. */
		for (int mode = 0; mode < 2; mode++) {
			char *text = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&text, &len);
			cr_assert_not_null(f);
			if (mode == 1)
				fputs("engine:\n", f);
			cr_assert_eq(flowq_config_write_yaml(f, &want, mode == 1 ? 2 : 0,
							     mode == 1), 0);
			fclose(f);
			rc = flowq_config_load_yaml_buf(&y, text, len, "written",
							mode == 1 ? "engine" : NULL, err,
							sizeof(err));
			cr_assert_eq(rc, 0, "rc %d: %s\n%s", rc, err, text);
			config_eq(&y.config, &want);
			flowq_config_yaml_free(&y);
			free(text);
		}
	}
	check_leaks();
}

Test(config_yaml, write_only_changed_is_a_snippet)
{
	struct flowq_band_config bands[2] = {{.priority = 10}, {.priority = 0}};
	struct flowq_config c;
	char *text = NULL;
	size_t len = 0;

	flowq_config_init(&c);
	for (int i = 0; i < 2; i++) {
		int32_t prio = bands[i].priority;
		bands[i] = c.default_band;
		bands[i].priority = prio;
	}
	bands[0].fairness = "drr";
	bands[1].max_bytes = 64 * MiB;
	c.bands = bands;
	c.nbands = 2;
	c.shards = 2;
	c.default_ttl_ns = 30 * SEC;
	c.saturation.max_inflight = 64;
	c.displacement = "most_over_share";
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_config_write_yaml(f, &c, 0, true), 0);
	fclose(f);
	cr_assert_str_eq(text, "shards: 2\n"
			       "bands:\n"
			       "  - priority: 10\n"
			       "    fairness: drr\n"
			       "  - priority: 0\n"
			       "    max_bytes: 64MiB\n"
			       "default_ttl_ns: 30s\n"
			       "saturation:\n"
			       "  max_inflight: 64\n"
			       "displacement: most_over_share\n");
	free(text);
	cr_assert_eq(flowq_config_write_yaml(NULL, &c, 0, true), -EFAULT);
	cr_assert_eq(flowq_config_write_yaml(stderr, NULL, 0, true), -EFAULT);
}

/* Names YAML would not read back as those strings are double-quoted, with
 * '"', '\\' and control characters escaped; NaN and infinite reals are
 * written as YAML's .nan, .inf and -.inf (not validated: write_yaml writes
 * what it is given). The text parses back: the first refusal is
 * validation's, of the first name. */
Test(config_yaml, write_quotes_names_and_writes_nan_and_infinities)
{
	struct flowq_config c;
	char *text = NULL;
	size_t len = 0;

	flowq_config_init(&c);
	c.default_band.fairness = "0x1F";      /* a hex integer */
	c.default_band.ordering = "0xZZ";      /* not hex, but starts with a digit */
	c.displacement = "a \"b\"\\c\x01\x7f"; /* quote, backslash, controls */
	c.saturation.detector = "1e";          /* starts with a digit */
	c.saturation.dispatch_cost = INFINITY;
	c.saturation.kv_cache_util_threshold = -INFINITY;
	c.default_band.usage_ceiling = NAN;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_config_write_yaml(f, &c, 0, true), 0);
	fclose(f);
	cr_assert_str_eq(text, "default_band:\n"
			       "  fairness: \"0x1F\"\n"
			       "  ordering: \"0xZZ\"\n"
			       "  usage_ceiling: .nan\n"
			       "saturation:\n"
			       "  detector: \"1e\"\n"
			       "  kv_cache_util_threshold: -.inf\n"
			       "  dispatch_cost: .inf\n"
			       "displacement: \"a \\\"b\\\"\\\\c\\x01\\x7f\"\n");
	cr_assert_eq(load(text, NULL), -EINVAL);
	cr_assert_str_eq(err,
			 "t.yaml:2:3: default_band.fairness: unknown fairness policy "
			 "\"0x1F\"");
	expect_reset();
	free(text);
}

/* A NULL name (set by a host; flowq_config_validate() refuses it) is
 * written as YAML's null, which the loader refuses where a name goes. */
Test(config_yaml, write_writes_a_null_name_as_null)
{
	struct flowq_config c;
	char *text = NULL;
	size_t len = 0;

	flowq_config_init(&c);
	c.displacement = NULL;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_config_write_yaml(f, &c, 0, true), 0);
	fclose(f);
	cr_assert_str_eq(text, "displacement: null\n");
	expect_fail(text,
		    "t.yaml:1:1: displacement: expected a name (quote it if it is one), "
		    "got null");
	free(text);
}

Test(config_yaml, write_reports_an_error_still_in_the_stdio_buffer)
{
	struct flowq_config c;

	flowq_config_init(&c);
	/* /dev/full fails every write(2) with ENOSPC; the whole document fits
	 * in stdio's buffer, so only a flush can see the failure. */
	FILE *f = fopen("/dev/full", "w");
	cr_assert_not_null(f);
	cr_assert_eq(flowq_config_write_yaml(f, &c, 0, false), -EIO);
	fclose(f);
}

Test(config_yaml, write_refuses_null_bands_with_a_count)
{
	struct flowq_config c;
	char *text = NULL;
	size_t len = 0;

	flowq_config_init(&c);
	c.bands = NULL;
	c.nbands = 2;
	FILE *f = open_memstream(&text, &len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_config_write_yaml(f, &c, 0, false), -EFAULT);
	fclose(f);
	cr_assert_eq(len, 0, "nothing is written before the refusal");
	free(text);
}

/* ---- defaults and partial configs ------------------------------------------ */

Test(config_yaml, keys_left_out_keep_the_defaults)
{
	struct flowq_config def;

	flowq_config_init(&def);
	expect_ok("{}");
	config_eq(&y.config, &def);
	flowq_config_yaml_free(&y);

	expect_ok("# only comments and one key\nshards: 3\n");
	def.shards = 3;
	config_eq(&y.config, &def);
	check_leaks();
}

Test(config_yaml, band_keys_left_out_take_the_builtin_template)
{
	struct flowq_config def;

	flowq_config_init(&def);
	/* The document's default_band does not leak into configured bands. */
	expect_ok("default_band: {fairness: round_robin, max_bytes: 1KiB}\n"
		  "bands: [{priority: 7}]\n");
	cr_assert_eq(y.config.nbands, 1);
	def.default_band.priority = 7;
	band_eq(&y.config.bands[0], &def.default_band, "bands[0]");
	cr_assert_str_eq(y.config.default_band.fairness, "round_robin");
	cr_assert_eq(y.config.default_band.max_bytes, 1024);
	cr_assert_str_eq(y.config.default_band.ordering, "fcfs",
			 "template keeps the rest");
	check_leaks();
}

Test(config_yaml, empty_bands_sequence)
{
	expect_ok("bands: []\n");
	cr_assert_eq(y.config.nbands, 0);
	check_leaks();
}

Test(config_yaml, host_registered_policy_names_are_accepted)
{
	static struct flowq_fairness_ops mine;

	mine = *flowq_fairness_find("round_robin");
	mine.desc.name = "host_rr";
	cr_assert_eq(flowq_fairness_register(&mine), 0);
	expect_ok("bands: [{priority: 1, fairness: host_rr}]\n");
	cr_assert_str_eq(y.config.bands[0].fairness, "host_rr");
	check_leaks();
}

Test(config_yaml, numbers_ignore_the_process_locale)
{
	/* A locale with a decimal comma, if this machine has one. */
	static const char *const comma[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", NULL};
	const char *set = NULL;

	for (int i = 0; comma[i] != NULL && set == NULL; i++)
		set = setlocale(LC_NUMERIC, comma[i]);
	expect_ok("default_band: {usage_ceiling: 0.25}\n");
	cr_assert(y.config.default_band.usage_ceiling == 0.25);
	setlocale(LC_NUMERIC, "C");
	if (set == NULL)
		cr_log_info("no decimal-comma locale installed: checked in the C locale "
			    "only");
	check_leaks();
}

/* ---- units --------------------------------------------------------------------- */

struct unit_case {
	const char *text;
	uint64_t want;
};

static void
expect_size(const char *text, uint64_t want)
{
	char doc[256];

	snprintf(doc, sizeof(doc), "flow_max_bytes: %s\n", text);
	expect_ok(doc);
	cr_assert_eq(y.config.flow_max_bytes, want, "%s -> %lu, want %lu", text,
		     (unsigned long)y.config.flow_max_bytes, (unsigned long)want);
	flowq_config_yaml_free(&y);
}

static void
expect_duration(const char *text, int64_t want)
{
	char doc[256];

	snprintf(doc, sizeof(doc), "flow_gc_timeout_ns: %s\n", text);
	expect_ok(doc);
	cr_assert_eq(y.config.flow_gc_timeout_ns, want, "%s -> %ld, want %ld", text,
		     (long)y.config.flow_gc_timeout_ns, (long)want);
	flowq_config_yaml_free(&y);
}

/* A size above FLOWQ_LIMIT_MAX parses, then validation names its value. */
static void
expect_big_size(const char *text, uint64_t want)
{
	char doc[256], msg[256];

	snprintf(doc, sizeof(doc), "flow_max_bytes: %s\n", text);
	snprintf(msg, sizeof(msg),
		 "t.yaml:1:1: flow_max_bytes: %" PRIu64
		 " exceeds FLOWQ_LIMIT_MAX (2^62 = 4611686018427387904)",
		 want);
	expect_fail(doc, msg);
}

Test(config_yaml, sizes)
{
	expect_size("0", 0);
	expect_size("123", 123);
	expect_size("+7", 7);
	expect_big_size("18446744073709551615", UINT64_MAX);
	expect_size("1B", 1);
	expect_size("64KiB", 64 * KiB);
	expect_size("64 KiB", 64 * KiB);
	expect_size("\"64KiB\"", 64 * KiB);
	expect_size("'1MB'", 1000000);
	expect_size("1kB", 1000);
	expect_size("1KB", 1000);
	expect_size("3GB", UINT64_C(3000000000));
	expect_size("2TB", UINT64_C(2000000000000));
	expect_size("1PB", UINT64_C(1000000000000000));
	expect_big_size("18EB", UINT64_C(18000000000000000000));
	expect_size("1.5KiB", 1536);
	expect_size("0.25KiB", 256);
	expect_size(".5MiB", 512 * KiB);
	expect_size("1.000KiB", 1024);
	expect_size("3TiB", 3 * GiB * KiB);
	expect_size("1PiB", GiB * MiB);
	expect_big_size("15EiB", 15 * GiB * GiB);
	expect_big_size("15.75EiB", 15 * GiB * GiB + 3 * (GiB * GiB / 4));
	expect_size("4EiB", 4 * GiB * GiB); /* = FLOWQ_LIMIT_MAX */
	expect_size("0.5 KB", 500);
	expect_size("0.000000000000000001EB", 1);
	expect_big_size("9.223372036854775807EB",
			UINT64_C(9223372036854775807)); /* 18 fraction digits, exact */
	check_leaks();
}

Test(config_yaml, size_errors)
{
	expect_fail("max_bytes: -5KiB\n",
		    "t.yaml:1:1: max_bytes: -5KiB is negative (must be >= 0)");
	expect_fail("max_bytes: -1\n",
		    "t.yaml:1:1: max_bytes: -1 is negative (must be >= 0)");
	expect_fail("max_bytes: 99999999999999999999GiB\n",
		    "t.yaml:1:1: max_bytes: 99999999999999999999GiB is more than 2^64 - "
		    "1 bytes");
	expect_fail("max_bytes: 16EiB\n",
		    "t.yaml:1:1: max_bytes: 16EiB is more than 2^64 - 1 bytes");
	expect_fail("max_bytes: 18446744073709551616\n",
		    "t.yaml:1:1: max_bytes: 18446744073709551616 is more than 2^64 - 1 "
		    "bytes");
	expect_fail("max_bytes: 1.1KiB\n",
		    "t.yaml:1:1: max_bytes: 1.1KiB is not a whole number of bytes");
	expect_fail("max_bytes: 0.5B\n",
		    "t.yaml:1:1: max_bytes: 0.5B is not a whole number of bytes");
	expect_fail("max_bytes: 0.00000000000000000001EiB\n",
		    "t.yaml:1:1: max_bytes: 0.00000000000000000001EiB has more than 19 "
		    "fraction "
		    "digits");
	expect_fail("max_bytes: 1.5\n", "t.yaml:1:1: max_bytes: 1.5 needs a unit (a bare "
					"number is an integer of bytes)");
	expect_fail("max_bytes: 010\n", "t.yaml:1:1: max_bytes: 010 has leading zeros "
					"(octal in YAML 1.1, decimal in "
					"1.2): write it without them");
	expect_fail("max_bytes: 1K\n", "t.yaml:1:1: max_bytes: expected a size (an "
				       "integer of bytes, or a number and a "
				       "unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, "
				       "TiB, PiB, EiB), got \"1K\"");
	expect_fail("max_bytes: \"100\"\n", "t.yaml:1:1: max_bytes: expected a size (an "
					    "integer of bytes, or a number and a "
					    "unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, "
					    "GiB, TiB, PiB, EiB), got the quoted "
					    "string \"100\"");
	expect_fail("max_bytes: 1e3\n", "t.yaml:1:1: max_bytes: expected a size (an "
					"integer of bytes, or a number and a "
					"unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, "
					"TiB, PiB, EiB), got \"1e3\"");
	expect_fail("max_bytes: [1]\n",
		    "t.yaml:1:1: max_bytes: expected a size, got a sequence");
	/* A quoted size may carry a unit after a space, not a space alone. */
	expect_fail("max_bytes: \"10 \"\n", "t.yaml:1:1: max_bytes: expected a size (an "
					    "integer of bytes, or a number and a "
					    "unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, "
					    "GiB, TiB, PiB, EiB), got the quoted "
					    "string \"10 \"");
	check_leaks();
}

Test(config_yaml, durations)
{
	expect_ok("idle_spin_ns: 0\n");
	cr_assert_eq(y.config.idle_spin_ns, 0);
	flowq_config_yaml_free(&y);
	expect_duration("100ns", 100);
	expect_duration("250us", 250000);
	expect_duration("250\xc2\xb5s", 250000);
	expect_duration("10ms", 10 * MS);
	expect_duration("10 ms", 10 * MS);
	expect_duration("1.5s", 1500 * MS);
	expect_duration("'1.5s'", 1500 * MS);
	expect_duration("1.5m", 90 * SEC);
	expect_duration("2h", 7200 * SEC);
	expect_duration("0.000000001s", 1);
	expect_duration("9223372036854775807", INT64_MAX);
	expect_duration("9223372036854775807ns", INT64_MAX);
	expect_duration("2562047h", INT64_C(2562047) * 3600 * SEC);
	expect_ok("default_ttl_ns: none\n");
	cr_assert_eq(y.config.default_ttl_ns, FLOWQ_TTL_NONE);
	flowq_config_yaml_free(&y);
	expect_ok("default_ttl_ns: 5s\n");
	cr_assert_eq(y.config.default_ttl_ns, 5 * SEC);
	flowq_config_yaml_free(&y);
	check_leaks();
}

Test(config_yaml, duration_errors)
{
	const char *want_dur =
		"expected a duration (an integer of ns, or a number and a unit: "
		"ns, us, ms, s, m, h)";
	char msg[512];

	expect_fail("idle_spin_ns: -1s\n",
		    "t.yaml:1:1: idle_spin_ns: -1s is negative (must be >= 0)");
	expect_fail("flow_gc_timeout_ns: 1.5ns\n",
		    "t.yaml:1:1: flow_gc_timeout_ns: 1.5ns is not a whole number of "
		    "nanoseconds");
	expect_fail(
		"flow_gc_timeout_ns: 0.0000000001s\n",
		"t.yaml:1:1: flow_gc_timeout_ns: 0.0000000001s is not a whole number of "
		"nanoseconds");
	expect_fail("flow_gc_timeout_ns: 1.5\n",
		    "t.yaml:1:1: flow_gc_timeout_ns: 1.5 needs a unit (a bare number is "
		    "an integer "
		    "of nanoseconds)");
	expect_fail("flow_gc_timeout_ns: 2562048h\n",
		    "t.yaml:1:1: flow_gc_timeout_ns: 2562048h is more than INT64_MAX ns "
		    "(about 292 "
		    "years)");
	expect_fail("flow_gc_timeout_ns: 9223372036854775808\n",
		    "t.yaml:1:1: flow_gc_timeout_ns: 9223372036854775808 is more than "
		    "INT64_MAX ns "
		    "(about 292 years)");
	snprintf(msg, sizeof(msg),
		 "t.yaml:1:1: flow_gc_timeout_ns: %s, got \"10 parsecs\"", want_dur);
	expect_fail("flow_gc_timeout_ns: 10 parsecs\n", msg);
	/* `none` only where the field documents it (default_ttl_ns). */
	snprintf(msg, sizeof(msg), "t.yaml:1:1: flow_gc_timeout_ns: %s, got \"none\"",
		 want_dur);
	expect_fail("flow_gc_timeout_ns: none\n", msg);
	snprintf(msg, sizeof(msg),
		 "t.yaml:1:1: flow_gc_timeout_ns: %s, got the quoted string "
		 "\"100\"",
		 want_dur);
	expect_fail("flow_gc_timeout_ns: \"100\"\n", msg);
	/* In range for the schema, refused by validation, at the key. */
	expect_fail("\ndefault_ttl_ns: 0s\n", "t.yaml:2:1: default_ttl_ns: 0 is not > 0 "
					      "(FLOWQ_TTL_NONE means no expiry)");
	expect_fail("idle_spin_ns: 2s\n",
		    "t.yaml:1:1: idle_spin_ns: 2000000000 is not in [0, 1000000000]");
	expect_fail("saturation:\n  callback_poll_ns: 0\n",
		    "t.yaml:2:3: saturation.callback_poll_ns: 0 is not > 0");
	check_leaks();
}

/* ---- schema errors --------------------------------------------------------- */

Test(config_yaml, unknown_keys)
{
	expect_fail("shards: 1\nshard: 2\n",
		    "t.yaml:2:1: shard: unknown key (expected one of: " ROOT_KEYS ")");
	expect_fail(
		"bands:\n  - priority: 1\n    weight: 2\n",
		"t.yaml:3:5: bands[0].weight: unknown key (expected one of: " BAND_KEYS
		")");
	expect_fail("default_band:\n  prio: 1\n",
		    "t.yaml:2:3: default_band.prio: unknown key (expected one "
		    "of: " TEMPLATE_KEYS ")");
	expect_fail("saturation: {detectr: concurrency}\n",
		    "t.yaml:1:14: saturation.detectr: unknown key (expected one "
		    "of: " SATURATION_KEYS ")");
	/* Merge keys are not special. */
	expect_fail("<<: {shards: 1}\n",
		    "t.yaml:1:1: <<: unknown key (expected one of: " ROOT_KEYS ")");
	/* A long unknown key is shown cut, escaped. */
	expect_fail("\"a\\tbcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"
		    "lmnop\": 1\n",
		    "t.yaml:1:1: "
		    "a\\x09bcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd...: "
		    "unknown key (expected one of: " ROOT_KEYS ")");
	/* The cut (60 bytes) never splits a character: a character the cut
	 * left incomplete goes, a complete one stays. */
	expect_fail("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9"
		    "bbbb: 1\n",
		    "t.yaml:1:1: "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...: "
		    "unknown key (expected one of: " ROOT_KEYS ")");
	expect_fail(
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9"
		"bbbb: 1\n",
		"t.yaml:1:1: "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9...: "
		"unknown key (expected one of: " ROOT_KEYS ")");
	check_leaks();
}

Test(config_yaml, wrong_types)
{
	expect_fail("shards: abc\n",
		    "t.yaml:1:1: shards: expected an integer, got \"abc\"");
	expect_fail(
		"shards: \"4\"\n",
		"t.yaml:1:1: shards: expected an integer, got the quoted string \"4\"");
	expect_fail("shards: 1.5\n",
		    "t.yaml:1:1: shards: expected an integer, got \"1.5\"");
	expect_fail("shards:\n", "t.yaml:1:1: shards: expected an integer, got null");
	expect_fail("shards: ~\n", "t.yaml:1:1: shards: expected an integer, got null");
	expect_fail("shards: [1]\n",
		    "t.yaml:1:1: shards: expected an integer, got a sequence");
	expect_fail("shards: {a: 1}\n",
		    "t.yaml:1:1: shards: expected an integer, got a mapping");
	expect_fail("shards: 0x10\n",
		    "t.yaml:1:1: shards: expected an integer, got \"0x10\"");
	expect_fail("saturation: [1]\n",
		    "t.yaml:1:1: saturation: expected a mapping, got a sequence");
	expect_fail("saturation:\n",
		    "t.yaml:1:1: saturation: expected a mapping, got null");
	expect_fail("bands: {priority: 1}\n",
		    "t.yaml:1:1: bands: expected a sequence of bands, got a mapping");
	expect_fail("bands: [1]\n",
		    "t.yaml:1:9: bands[0]: expected a mapping (one band), got \"1\"");
	expect_fail(
		"bands:\n  - [priority, 1]\n",
		"t.yaml:2:5: bands[0]: expected a mapping (one band), got a sequence");
	expect_fail("default_band_enabled: yes\n",
		    "t.yaml:1:1: default_band_enabled: yes is a boolean only in YAML "
		    "1.1: write "
		    "true or false");
	expect_fail(
		"default_band_enabled: 1\n",
		"t.yaml:1:1: default_band_enabled: expected true or false, got \"1\"");
	expect_fail("default_band_enabled: \"true\"\n",
		    "t.yaml:1:1: default_band_enabled: expected true or false, got the "
		    "quoted "
		    "string \"true\"");
	expect_fail("default_band: {usage_ceiling: high}\n",
		    "t.yaml:1:16: default_band.usage_ceiling: expected a number, got "
		    "\"high\"");
	expect_fail("default_band: {usage_ceiling: '0.5'}\n",
		    "t.yaml:1:16: default_band.usage_ceiling: expected a number, got the "
		    "quoted "
		    "string \"0.5\"");
	expect_fail(
		"default_band: {usage_ceiling: 1e999}\n",
		"t.yaml:1:16: default_band.usage_ceiling: 1e999 is out of the range of a "
		"double");
	expect_fail("mode: fast\n",
		    "t.yaml:1:1: mode: expected threaded or polled, got \"fast\"");
	expect_fail("mode: 1\n",
		    "t.yaml:1:1: mode: expected threaded or polled, got \"1\"");
	expect_fail("bands: [{priority: 1, fairness: 12}]\n",
		    "t.yaml:1:23: bands[0].fairness: expected a name (quote it if it is "
		    "one), got "
		    "\"12\"");
	expect_fail("bands: [{priority: 1, ordering: false}]\n",
		    "t.yaml:1:23: bands[0].ordering: expected a name (quote it if it is "
		    "one), got "
		    "\"false\"");
	expect_fail("saturation: {detector: ~}\n",
		    "t.yaml:1:14: saturation.detector: expected a name (quote it if it "
		    "is one), got "
		    "null");
	expect_fail("saturation: {detector: [a]}\n",
		    "t.yaml:1:14: saturation.detector: expected a name, got a sequence");
	/* A quoted name that looks like a number is a name (then validated). */
	expect_fail("bands: [{priority: 1, fairness: '12'}]\n",
		    "t.yaml:1:23: bands[0].fairness: unknown fairness policy \"12\"");
	check_leaks();
}

Test(config_yaml, integer_ranges)
{
	expect_fail(
		"max_requests: 99999999999999999999\n",
		"t.yaml:1:1: max_requests: 99999999999999999999 does not fit in 64 bits");
	expect_fail("shards: 4294967296\n",
		    "t.yaml:1:1: shards: 4294967296 is above 4294967295");
	expect_fail("shards: -1\n", "t.yaml:1:1: shards: -1 is negative (must be >= 0)");
	expect_fail("shards: 010\n", "t.yaml:1:1: shards: 010 has leading zeros (octal "
				     "in YAML 1.1, decimal in 1.2): "
				     "write it without them");
	expect_fail("bands: [{priority: 2147483648}]\n",
		    "t.yaml:1:10: bands[0].priority: 2147483648 is not in [-2147483648, "
		    "2147483647]");
	expect_fail("bands: [{priority: -2147483649}]\n",
		    "t.yaml:1:10: bands[0].priority: -2147483649 is not in [-2147483648, "
		    "2147483647]");
	expect_fail("max_requests: -0x1\n",
		    "t.yaml:1:1: max_requests: expected an integer, got \"-0x1\"");
	/* The signed integers' grammar errors (priority is the one signed
	 * key). */
	expect_fail("bands: [{priority: abc}]\n",
		    "t.yaml:1:10: bands[0].priority: expected an integer, got \"abc\"");
	expect_fail("bands: [{priority: \"1\"}]\n",
		    "t.yaml:1:10: bands[0].priority: expected an integer, got the quoted "
		    "string \"1\"");
	expect_fail(
		"bands: [{priority: -01}]\n",
		"t.yaml:1:10: bands[0].priority: -01 has leading zeros (octal in YAML "
		"1.1, decimal in 1.2): write it without them");
	/* Validation's ranges, at the key. */
	expect_fail("shards: 300\n",
		    "t.yaml:1:1: shards: 300 exceeds FLOWQ_MAX_SHARDS (256)");
	expect_fail("mode: polled\ndispatch_batch: 0\n",
		    "t.yaml:2:1: dispatch_batch: 0 is not in [1, 4096]");
	expect_fail(
		"registry_buckets: 1000\n",
		"t.yaml:1:1: registry_buckets: 1000 is not a power of two in [1, 2^30]");
	expect_fail("flow_max_bytes: 4611686018427387905\n",
		    "t.yaml:1:1: flow_max_bytes: 4611686018427387905 exceeds "
		    "FLOWQ_LIMIT_MAX (2^62 "
		    "= 4611686018427387904)");
	check_leaks();
}

Test(config_yaml, integer_extremes)
{
	expect_ok("bands: [{priority: -2147483648}, {priority: 2147483647}, {priority: "
		  "-0}]\n"
		  "shards: 0\nmax_requests: +12\n");
	cr_assert_eq(y.config.bands[0].priority, INT32_MIN);
	cr_assert_eq(y.config.bands[1].priority, INT32_MAX);
	cr_assert_eq(y.config.bands[2].priority, 0);
	cr_assert_eq(y.config.max_requests, 12);
	check_leaks();
}

Test(config_yaml, validation_messages_carry_the_key_location)
{
	expect_fail("bands:\n  - priority: 3\n  - priority: 2\n  - priority: 1\n"
		    "    usage_ceiling: 1.5\n",
		    "t.yaml:5:5: bands[2].usage_ceiling: 1.5 is not in (0, 1]");
	expect_fail(
		"bands:\n  - priority: 1\n    fairness: drr_typo\n",
		"t.yaml:3:5: bands[0].fairness: unknown fairness policy \"drr_typo\"");
	expect_fail(
		"default_band:\n  ordering: lifo\n",
		"t.yaml:2:3: default_band.ordering: unknown ordering policy \"lifo\"");
	expect_fail("default_band:\n  usage_ceiling: .nan\n",
		    "t.yaml:2:3: default_band.usage_ceiling: nan is not in (0, 1]");
	expect_fail(
		"bands:\n  - {priority: 10, usage_ceiling: 0.5}\n"
		"  - {priority: 0, usage_ceiling: 0.9}\n",
		"t.yaml:3:19: bands[1].usage_ceiling: 0.9 is above the 0.5 of bands[0] "
		"(priority 10 > 0): ceilings must not increase from a more important "
		"band to a "
		"less important one");
	/* The ceiling was left at its default: the band's own location. */
	expect_fail("bands:\n  - {priority: 10, usage_ceiling: 0.5}\n  - {priority: 0}\n",
		    "t.yaml:3:5: bands[1].usage_ceiling: 1 is above the 0.5 of bands[0] "
		    "(priority "
		    "10 > 0): ceilings must not increase from a more important band to a "
		    "less "
		    "important one");
	expect_fail("max_requests: 16777216\nmax_bytes: 1099511627776\n",
		    "t.yaml:1:1: max_requests + max_bytes: 16777216 requests (25 bits) + "
		    "1099511627776 bytes (41 bits) = 66 bits, more than 64: the two "
		    "limits share "
		    "one 64-bit counter word, so bitlen(requests) + bitlen(bytes) must "
		    "be <= 64 "
		    "(e.g. 16777215 requests with 2^40 - 1 bytes); lower one of them or "
		    "set it to 0 "
		    "(unlimited)");
	expect_fail("bands:\n  - priority: 1\n    max_requests: 16777216\n    max_bytes: "
		    "1TiB\n",
		    "t.yaml:3:5: bands[0].max_requests + bands[0].max_bytes: 16777216 "
		    "requests (25 "
		    "bits) + 1099511627776 bytes (41 bits) = 66 bits, more than 64: the "
		    "two limits "
		    "share one 64-bit counter word, so bitlen(requests) + bitlen(bytes) "
		    "must be <= "
		    "64 (e.g. 16777215 requests with 2^40 - 1 bytes); lower one of them "
		    "or set it "
		    "to 0 (unlimited)");
	expect_fail("\ndisplacement: shed_everything\n",
		    "t.yaml:2:1: displacement: unknown displacement policy "
		    "\"shed_everything\"");
	expect_fail(
		"displacement_max_pending: 0\n",
		"t.yaml:1:1: displacement_max_pending: 0 is not in [1, FLOWQ_LIMIT_MAX]");
	expect_fail("saturation:\n  detector: magic\n",
		    "t.yaml:2:3: saturation.detector: unknown detector \"magic\" "
		    "(\"concurrency\", \"utilization\" or \"callback\")");
	expect_fail("saturation:\n  detector: utilization\n  endpoints: 0\n",
		    "t.yaml:3:3: saturation.endpoints: 0 is not in [1, "
		    "FLOWQ_MAX_ENDPOINTS (4096)]");
	expect_fail(
		"saturation:\n  kv_cache_util_threshold: 1.5\n",
		"t.yaml:2:3: saturation.kv_cache_util_threshold: 1.5 is not in (0, 1]");
	/* .inf and -.inf are numbers (YAML 1.2 core), refused by the range. */
	expect_fail("bands:\n  - priority: 1\n    usage_ceiling: .inf\n",
		    "t.yaml:3:5: bands[0].usage_ceiling: inf is not in (0, 1]");
	expect_fail("bands:\n  - priority: 1\n    usage_ceiling: -.INF\n",
		    "t.yaml:3:5: bands[0].usage_ceiling: -inf is not in (0, 1]");
	/* Not a float ("1e" has no exponent digits) and not a hex integer
	 * ("0xZZ"): plain names, unknown to the registry. */
	expect_fail("bands:\n  - priority: 1\n    fairness: 1e\n",
		    "t.yaml:3:5: bands[0].fairness: unknown fairness policy \"1e\"");
	expect_fail("bands:\n  - priority: 1\n    fairness: 0xZZ\n",
		    "t.yaml:3:5: bands[0].fairness: unknown fairness policy \"0xZZ\"");
	check_leaks();
}

Test(config_yaml, host_only_fields_say_so)
{
	expect_fail("clock: 0\n",
		    "t.yaml:1:1: clock: is a function pointer and cannot be set "
		    "from YAML: set it in code after loading");
	expect_fail("clock_ctx: 0\n",
		    "t.yaml:1:1: clock_ctx: is a host pointer and cannot be "
		    "set from YAML: set it in code after loading");
	expect_fail("allocator: jemalloc\n", "t.yaml:1:1: allocator: is a host object "
					     "and cannot be set from YAML: set it in "
					     "code after loading");
	expect_fail("errbuf: x\n",
		    "t.yaml:1:1: errbuf: is a host buffer and cannot be set from "
		    "YAML: set it in code after loading");
	expect_fail("errbuf_size: 10\n", "t.yaml:1:1: errbuf_size: is the size of a host "
					 "buffer and cannot be set from "
					 "YAML: set it in code after loading");
	expect_fail("nbands: 2\n", "t.yaml:1:1: nbands: is the length of bands and "
				   "cannot be set on its own");
	expect_fail("saturation:\n  callback: f\n",
		    "t.yaml:2:3: saturation.callback: is a function pointer and cannot "
		    "be set from "
		    "YAML: set it (and saturation.detector \"callback\") in code after "
		    "loading");
	expect_fail("saturation: {callback_ctx: 1}\n",
		    "t.yaml:1:14: saturation.callback_ctx: is a host pointer and cannot "
		    "be set from "
		    "YAML: set it in code after loading");
	expect_fail(
		"saturation: {detector: callback}\n",
		"t.yaml:1:14: saturation.detector: \"callback\" cannot be set from YAML: "
		"that "
		"detector needs a function pointer; set saturation.detector, "
		"saturation.callback and saturation.callback_ctx in code after loading");
	expect_fail(
		"default_band: {priority: 5}\n",
		"t.yaml:1:16: default_band.priority: the template has no priority: a "
		"just-in-time band takes the priority of the request that creates it");
	check_leaks();
}

Test(config_yaml, duplicates)
{
	char *doc = malloc(4096);
	size_t pos = 0;

	cr_assert_not_null(doc);
	expect_fail("shards: 1\nmode: polled\nshards: 2\n",
		    "t.yaml:3:1: shards: duplicate key (first at 1:1)");
	expect_fail("bands:\n  - priority: 1\n    fairness: round_robin\n    fairness: "
		    "fcfs\n",
		    "t.yaml:4:5: bands[0].fairness: duplicate key (first at 3:5)");
	expect_fail(
		"saturation: {max_inflight: 1, max_inflight: 2}\n",
		"t.yaml:1:31: saturation.max_inflight: duplicate key (first at 1:14)");
	/* A quoted key is the same key. */
	expect_fail("shards: 1\n\"shards\": 1\n",
		    "t.yaml:2:1: shards: duplicate key (first at 1:1)");
	expect_fail(
		"bands:\n  - priority: 5\n  - priority: 6\n  - {fairness: round_robin, "
		"priority: 5}\n",
		"t.yaml:4:29: bands[2].priority: 5 duplicates bands[0].priority (at "
		"2:5)");
	expect_fail("bands:\n  - priority: 1\n  - max_requests: 5\n",
		    "t.yaml:3:5: bands[1]: missing key \"priority\"");
	expect_fail("bands: [{}]\n", "t.yaml:1:9: bands[0]: missing key \"priority\"");
	/* FLOWQ_MAX_BANDS + 1 bands: the last is refused where it starts. */
	pos += (size_t)snprintf(doc + pos, 4096 - pos, "bands:\n");
	for (int i = 0; i <= (int)FLOWQ_MAX_BANDS; i++)
		pos += (size_t)snprintf(doc + pos, 4096 - pos, "  - {priority: %d}\n", i);
	expect_fail(doc, "t.yaml:66:5: bands[64]: more than FLOWQ_MAX_BANDS (64) bands");
	free(doc);
	check_leaks();
}

/* ---- robustness -------------------------------------------------------------------- */

Test(config_yaml, anchors_aliases_and_tags_are_refused)
{
	expect_fail("shards: &n 2\ndispatch_batch: *n\n",
		    "t.yaml:1:9: shards: anchors are not supported (&n): write the value "
		    "out");
	expect_fail("dispatch_batch: *n\n", "t.yaml:1:17: dispatch_batch: aliases are "
					    "not supported (*n): write the value "
					    "out");
	expect_fail(
		"bands: &b []\n",
		"t.yaml:1:8: bands: anchors are not supported (&b): write the value out");
	expect_fail("bands:\n  - &x {priority: 1}\n",
		    "t.yaml:2:5: bands[0]: anchors are not supported (&x): write the "
		    "value out");
	expect_fail("*k : 1\n",
		    "t.yaml:1:1: aliases are not supported (*k): write the value out");
	expect_fail("shards: !!int 3\n",
		    "t.yaml:1:9: shards: tags are not supported (tag:yaml.org,2002:int)");
	expect_fail("!!str shards: 3\n",
		    "t.yaml:1:1: tags are not supported (tag:yaml.org,2002:str)");
	expect_fail("saturation: !custom {}\n",
		    "t.yaml:1:13: saturation: tags are not supported (!custom)");
	expect_fail("? [a]\n: 1\n",
		    "t.yaml:1:3: keys must be names, got a sequence as a key");
	expect_fail(
		"saturation: {? {a: 1} : 2}\n",
		"t.yaml:1:16: saturation: keys must be names, got a mapping as a key");
	check_leaks();
}

/* The "billion laughs": 10 levels of 10 aliases each. */
static const char laughs[] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
			     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
			     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
			     "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
			     "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";

Test(config_yaml, alias_bomb, .timeout = 10)
{
	char doc[2048];

	/* In the engine's part: refused at the first alias. */
	snprintf(doc, sizeof(doc), "engine:\n  bands: *i\n%s", laughs);
	expect_fail_key(doc, "engine", -EINVAL,
			"t.yaml:2:10: bands: aliases are not supported (*i): write the "
			"value out");
	/* In someone else's section: skipped event by event, never expanded. */
	snprintf(doc, sizeof(doc), "%sengine: {shards: 3}\n", laughs);
	expect_ok_key(doc, "engine");
	cr_assert_eq(y.config.shards, 3);
	check_leaks();
}

Test(config_yaml, depth_is_limited)
{
	char doc[512];
	size_t pos;

	/* 64 levels (the root mapping is the first) load; 65 do not. */
	pos = (size_t)snprintf(doc, sizeof(doc), "engine: {}\nworkload: ");
	for (int i = 0; i < 63; i++)
		doc[pos++] = '[';
	for (int i = 0; i < 63; i++)
		doc[pos++] = ']';
	doc[pos++] = '\n';
	doc[pos] = '\0';
	expect_ok_key(doc, "engine");
	flowq_config_yaml_free(&y);

	pos = (size_t)snprintf(doc, sizeof(doc), "engine: {}\nworkload: ");
	for (int i = 0; i < 100; i++)
		doc[pos++] = '[';
	for (int i = 0; i < 100; i++)
		doc[pos++] = ']';
	doc[pos++] = '\n';
	doc[pos] = '\0';
	expect_fail_key(doc, "engine", -EINVAL,
			"t.yaml:2:74: nesting deeper than 64 levels");
	check_leaks();
}

Test(config_yaml, deep_nesting_in_the_config_fails_at_once, .timeout = 10)
{
	/* 1 MiB of '[': refused at the first one (no recursion, no scan). */
	size_t n = 1u << 20;
	char *doc = malloc(n + 16);

	cr_assert_not_null(doc);
	memcpy(doc, "shards: ", 8);
	memset(doc + 8, '[', n);
	doc[8 + n] = '\0';
	expect_fail(doc, "t.yaml:1:1: shards: expected an integer, got a sequence");
	free(doc);
	check_leaks();
}

Test(config_yaml, nul_characters_in_names)
{
	expect_fail("bands: [{priority: 1, fairness: \"round\\0robin\"}]\n",
		    "t.yaml:1:23: bands[0].fairness: \"round\\x00robin\" contains a NUL "
		    "character");
	/* Hex and octal integers (YAML 1.2 core) are not names unquoted. */
	expect_fail("bands: [{priority: 1, fairness: 0x1F}]\n",
		    "t.yaml:1:23: bands[0].fairness: expected a name (quote it if it is "
		    "one), got \"0x1F\"");
	expect_fail(
		"displacement: 0o17\n",
		"t.yaml:1:1: displacement: expected a name (quote it if it is one), got "
		"\"0o17\"");
	check_leaks();
}

Test(config_yaml, libyaml_errors_with_line_and_column)
{
	expect_fail("shards: 1\nmode: \xff\n", "t.yaml:2:7: invalid input: invalid "
					       "leading UTF-8 octet (#FF at byte 16)");
	expect_fail("shards: 1\x01\n", "t.yaml:1:10: invalid input: control characters "
				       "are not allowed (#1 at byte 9)");
	expect_fail("mode: \"polled\n", "t.yaml:2:1: YAML syntax: found unexpected end "
					"of stream (while scanning a "
					"quoted scalar at 1:7)");
	expect_fail("saturation:\n\tmax_inflight: 1\n",
		    "t.yaml:2:1: YAML syntax: found character that cannot start any "
		    "token (while "
		    "scanning for the next token at 2:1)");
	expect_fail("shards: 1\nmode: polled: x\n",
		    "t.yaml:2:13: YAML syntax: mapping values are not allowed in this "
		    "context");
	/* Problems are reported in document order: a bad value before a
	 * syntax error further on is what is reported. */
	expect_fail("shards: 1\n  mode: polled\n",
		    "t.yaml:1:1: shards: expected an integer, got \"1 mode\"");
	expect_fail("bands: [{priority: 1}\n",
		    "t.yaml:2:1: YAML syntax: did not find expected ',' or ']' (while "
		    "parsing a flow "
		    "sequence at 1:8)");
	/* A reader error without a value: an input cut inside a character. */
	expect_fail("\xc3", "t.yaml:1:1: invalid input: incomplete UTF-8 octet sequence "
			    "(at byte 0)");
	expect_fail("\xff",
		    "t.yaml:1:1: invalid input: invalid leading UTF-8 octet (#FF at "
		    "byte 0)");
	/* At the root node, and after the document's end. */
	expect_fail("]\n", "t.yaml:1:1: YAML syntax: did not find expected node content "
			   "(while parsing a block node at 1:1)");
	expect_fail("shards: 1\n...\n]\n",
		    "t.yaml:3:1: YAML syntax: did not find expected <document start>");
	check_leaks();
}

Test(config_yaml, documents)
{
	expect_fail(
		"",
		"t.yaml:1:1: empty document: expected a mapping of engine configuration "
		"keys");
	expect_fail("# nothing\n",
		    "t.yaml:2:1: empty document: expected a mapping of engine "
		    "configuration keys");
	expect_fail("---\n",
		    "t.yaml:2:1: the document is null: expected a mapping of engine "
		    "configuration keys");
	expect_fail("- a\n- b\n",
		    "t.yaml:1:1: the document is a sequence: expected a mapping of "
		    "engine configuration keys");
	expect_fail("42\n",
		    "t.yaml:1:1: the document is \"42\": expected a mapping of engine "
		    "configuration keys");
	expect_fail("shards: 1\n---\nshards: 2\n",
		    "t.yaml:2:1: a second document: a configuration is one document");
	expect_fail("shards: 1\n...\n---\n",
		    "t.yaml:3:1: a second document: a configuration is one document");
	expect_ok("%YAML 1.1\n---\nshards: 1\n...\n");
	free_y();
	check_leaks();
}

/* ---- subtree key -------------------------------------------------------------------- */

static const char spec[] = "workload:\n"
			   "  rate: 100\n"
			   "  anything: [1, {a: b}]\n"
			   "  shared: &x [1]\n"
			   "  again: *x\n"
			   "  !tagged t: 1\n"
			   "engine:\n"
			   "  shards: 2\n"
			   "  bands:\n"
			   "    - priority: 1\n"
			   "      usage_ceiling: 0.5\n"
			   "report: {format: csv}\n";

Test(config_yaml, subtree_key_loads_the_engine_part)
{
	expect_ok_key(spec, "engine");
	cr_assert_eq(y.config.shards, 2);
	cr_assert_eq(y.config.nbands, 1);
	cr_assert(y.config.bands[0].usage_ceiling == 0.5);
	flowq_config_yaml_free(&y);
	/* Without a key, the simulator's sections are unknown keys. */
	expect_fail(spec,
		    "t.yaml:1:1: workload: unknown key (expected one of: " ROOT_KEYS ")");
	check_leaks();
}

Test(config_yaml, subtree_key_errors)
{
	expect_fail_key(spec, "sim", -ENOENT,
			"t.yaml:1:1: no top-level key \"sim\" in the document");
	expect_fail_key("engine: 5\n", "engine", -EINVAL,
			"t.yaml:1:1: engine: expected a mapping of engine configuration "
			"keys, got "
			"\"5\"");
	expect_fail_key("engine:\n", "engine", -EINVAL,
			"t.yaml:1:1: engine: expected a mapping of engine configuration "
			"keys, got "
			"null");
	expect_fail_key("engine: &e {}\n", "engine", -EINVAL,
			"t.yaml:1:9: engine: anchors are not supported (&e): write the "
			"value out");
	expect_fail_key("engine: {}\nx: 1\nengine: {}\n", "engine", -EINVAL,
			"t.yaml:3:1: engine: duplicate key (first at 1:1)");
	expect_fail_key(
		"- 1\n", "engine", -EINVAL,
		"t.yaml:1:1: the document is a sequence: expected a mapping with the key "
		"\"engine\"");
	expect_fail_key(
		"", "engine", -EINVAL,
		"t.yaml:1:1: empty document: expected a mapping of engine configuration "
		"keys");
	/* Paths are relative to the engine mapping; locations are the file's. */
	expect_fail_key("workload: {}\nengine:\n  bands:\n    - priority: 1\n"
			"      usage_ceiling: 1.5\n",
			"engine", -EINVAL,
			"t.yaml:5:7: bands[0].usage_ceiling: 1.5 is not in (0, 1]");
	expect_fail_key("engine:\n  shard: 1\n", "engine", -EINVAL,
			"t.yaml:2:3: shard: unknown key (expected one of: " ROOT_KEYS
			")");
	/* The whole stream is still YAML-checked, and one document. */
	expect_fail_key("engine: {}\nworkload: [1, 2\n", "engine", -EINVAL,
			"t.yaml:3:1: YAML syntax: did not find expected ',' or ']' "
			"(while parsing a "
			"flow sequence at 2:11)");
	expect_fail_key("engine: {}\n---\nengine: {}\n", "engine", -EINVAL,
			"t.yaml:2:1: a second document: a configuration is one document");
	expect_fail_key(
		"*a\n", "engine", -EINVAL,
		"t.yaml:1:1: the document is an alias: expected a mapping with the key "
		"\"engine\"");
	check_leaks();
}

/* ---- files ------------------------------------------------------------------------------ */

static char tmpdir[64];

static void
make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/flowq_yaml_XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	cr_assert_eq(fclose(f), 0);
}

Test(config_yaml, file_errors_give_errno_and_message)
{
	char path[128], want[512];

	make_tmpdir();
	memset(err, 'x', sizeof(err));
	cr_assert_eq(flowq_config_load_yaml(&y, "/nonexistent/engine.yaml", NULL, err,
					    sizeof(err)),
		     -ENOENT);
	cr_assert_str_eq(
		err, "/nonexistent/engine.yaml: cannot open: No such file or directory");
	expect_reset();

	/* A directory opens but does not read. */
	cr_assert_eq(flowq_config_load_yaml(&y, tmpdir, NULL, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	cr_assert_str_eq(err, want);
	expect_reset();

	/* Permissions (root reads anything: checked only as another user). */
	snprintf(path, sizeof(path), "%s/secret.yaml", tmpdir);
	write_file(path, "shards: 1\n");
	cr_assert_eq(chmod(path, 0), 0);
	if (geteuid() != 0) {
		cr_assert_eq(flowq_config_load_yaml(&y, path, NULL, err, sizeof(err)),
			     -EACCES);
		snprintf(want, sizeof(want), "%s: cannot open: Permission denied", path);
		cr_assert_str_eq(err, want);
		expect_reset();
	} else {
		cr_log_info("running as root: the -EACCES case is not checked");
	}
	unlink(path);

	/* Too large: FLOWQ_CONFIG_YAML_MAX_SIZE + 1 bytes (sparse). */
	snprintf(path, sizeof(path), "%s/huge.yaml", tmpdir);
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		cr_assert_geq(fd, 0);
		cr_assert_eq(ftruncate(fd, (off_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1), 0);
		close(fd);
	}
	cr_assert_eq(flowq_config_load_yaml(&y, path, NULL, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want),
		 "%s: larger than FLOWQ_CONFIG_YAML_MAX_SIZE (16777216 bytes)", path);
	cr_assert_str_eq(err, want);
	expect_reset();
	unlink(path);

	/* A file's messages carry its path. */
	snprintf(path, sizeof(path), "%s/bad.yaml", tmpdir);
	write_file(path, "shards: 1\nbands:\n  - priority: 1\n    quantum: lots\n");
	cr_assert_eq(flowq_config_load_yaml(&y, path, NULL, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:4:5: bands[0].quantum: expected a size (an integer of bytes, or a "
		 "number "
		 "and a unit: B, kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB), "
		 "got \"lots\"",
		 path);
	cr_assert_str_eq(err, want);
	expect_reset();
	unlink(path);
	rmdir(tmpdir);
	check_leaks();
}

Test(config_yaml, buffer_limits_and_null_arguments)
{
	char *big = malloc((size_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1);

	cr_assert_not_null(big);
	memset(big, ' ', (size_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1);
	memset(err, 'x', sizeof(err));
	cr_assert_eq(flowq_config_load_yaml_buf(&y, big,
						(size_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1,
						"big", NULL, err, sizeof(err)),
		     -EFBIG);
	cr_assert_str_eq(err,
			 "big: larger than FLOWQ_CONFIG_YAML_MAX_SIZE (16777216 bytes)");
	expect_reset();
	free(big);

	cr_assert_eq(flowq_config_load_yaml(NULL, "x", NULL, err, sizeof(err)), -EFAULT);
	cr_assert_str_eq(err, "r_cfg is NULL");
	cr_assert_eq(flowq_config_load_yaml(&y, NULL, NULL, err, sizeof(err)), -EFAULT);
	cr_assert_str_eq(err, "path is NULL");
	cr_assert_eq(
		flowq_config_load_yaml_buf(NULL, "", 0, NULL, NULL, err, sizeof(err)),
		-EFAULT);
	cr_assert_eq(
		flowq_config_load_yaml_buf(&y, NULL, 3, NULL, NULL, err, sizeof(err)),
		-EFAULT);
	cr_assert_str_eq(err, "buf is NULL");
	/* NULL with length 0 is an empty document; NULL name is "<buffer>". */
	cr_assert_eq(
		flowq_config_load_yaml_buf(&y, NULL, 0, NULL, NULL, err, sizeof(err)),
		-EINVAL);
	cr_assert_str_eq(err,
			 "<buffer>:1:1: empty document: expected a mapping of engine "
			 "configuration keys");
	expect_reset();
	/* Not NUL-terminated: only @len bytes are read. */
	cr_assert_eq(flowq_config_load_yaml_buf(&y, "shards: 7junk", 9, NULL, NULL, err,
						sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(y.config.shards, 7);
	flowq_config_yaml_free(&y);
	check_leaks();
}

Test(config_yaml, errbuf_may_be_null_or_small)
{
	static const char doc[] = "shards: abc\n";
	const char *full = "t.yaml:1:1: shards: expected an integer, got \"abc\"";
	char small[64];

	cr_assert_eq(
		flowq_config_load_yaml_buf(&y, doc, strlen(doc), "t.yaml", NULL, NULL, 0),
		-EINVAL);
	expect_reset();
	for (size_t n = 1; n <= strlen(full) + 1; n++) {
		memset(small, 'x', sizeof(small));
		cr_assert_eq(flowq_config_load_yaml_buf(&y, doc, strlen(doc), "t.yaml",
							NULL, small, n),
			     -EINVAL);
		cr_assert_eq(small[n - 1], '\0', "size %zu", n);
		cr_assert_eq(strncmp(small, full, n - 1), 0, "size %zu: \"%s\"", n,
			     small);
		cr_assert_eq(small[n], 'x', "size %zu: wrote past the buffer", n);
		expect_reset();
	}
	/* Size 0 writes nothing. */
	small[0] = 'x';
	cr_assert_eq(flowq_config_load_yaml_buf(&y, doc, strlen(doc), "t.yaml", NULL,
						small, 0),
		     -EINVAL);
	cr_assert_eq(small[0], 'x');
	expect_reset();
	check_leaks();
}

Test(config_yaml, free_is_idempotent)
{
	flowq_config_yaml_free(NULL);
	expect_ok("bands: [{priority: 1, fairness: round_robin}]\n");
	cr_assert_not_null(y.owned);
	flowq_config_yaml_free(&y);
	expect_reset();
	flowq_config_yaml_free(&y);
	expect_reset();
	check_leaks();
}

/*
 * Every allocation of the loader fails in turn: each load returns -ENOMEM
 * with a message and frees what it had (the ASan build checks the leaks),
 * until the first load that needs no more allocations succeeds.
 */
static void
fail_each_allocation(const char *path, const char *text, const char *key)
{
	long n;
	int rc = -ENOMEM;

	for (n = 0; rc == -ENOMEM && n < 100000; n++) {
		atomic_store(&flowq__config_yaml_fail_after, n);
		memset(err, 'x', sizeof(err));
		if (path != NULL)
			rc = flowq_config_load_yaml(&y, path, key, err, sizeof(err));
		else
			rc = flowq_config_load_yaml_buf(&y, text, strlen(text), "t.yaml",
							key, err, sizeof(err));
		atomic_store(&flowq__config_yaml_fail_after, -1);
		if (rc == -ENOMEM) {
			cr_assert_not_null(strstr(err, ": out of memory"), "%s", err);
			expect_reset();
		}
	}
	cr_assert_eq(rc, 0, "after %ld allocations: rc %d: %s", n, rc, err);
	cr_assert_gt(n, 3, "the load allocates (input, storage, marks, names)");
	flowq_config_yaml_free(&y);
}

Test(config_yaml, allocation_failure_at_every_step)
{
	fail_each_allocation(FLOWQ_TEST_EXAMPLES_DIR "/engine.yaml", NULL, NULL);
	fail_each_allocation(NULL, spec, "engine");
	check_leaks();
}

#ifdef LIBC_FAILS
/*
 * Every libc allocation of a load fails in turn (libyaml's parser set-up
 * and its buffers while parsing, the loader's own): each load returns
 * -ENOMEM with "t.yaml: out of memory", resets the result and frees what
 * it had, until the first load that needs no more allocations succeeds.
 */
Test(config_yaml, libyaml_allocation_failure_at_every_step)
{
	long n;
	int rc = -ENOMEM;

	for (n = 0; rc == -ENOMEM && n < 100000; n++) {
		memset(&y, 0xA5, sizeof(y));
		memset(err, 'x', sizeof(err));
		libc_fail_after = n;
		rc = flowq_config_load_yaml_buf(&y, spec, strlen(spec), "t.yaml",
						"engine", err, sizeof(err));
		libc_fail_after = -1;
		if (rc == -ENOMEM) {
			cr_assert_str_eq(err, "t.yaml: out of memory");
			expect_reset();
		}
	}
	cr_assert_eq(rc, 0, "after %ld allocations: rc %d: %s", n, rc, err);
	cr_assert_gt(n, 5, "libyaml allocates too");
	cr_assert_eq(y.config.shards, 2);
	check_leaks();
}
#endif
