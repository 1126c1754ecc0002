/*
 * Unit tests for core/config.c: the documented defaults of
 * flowq_config_init(), every rule of flowq_config_validate() (each bad
 * value must give -EINVAL *and* a message naming the field and the value),
 * the boundary values each rule must still accept, errbuf truncation, and
 * flowq_strerror().
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "capacity.h"

#define ERRBUF 1024

static double
host_saturation(void *ctx)
{
	(void)ctx;
	return 0.5;
}

static void *
nop_alloc(size_t size, size_t align, void *ctx)
{
	(void)size;
	(void)align;
	(void)ctx;
	return NULL;
}

static void
nop_free(void *p, size_t size, size_t align, void *ctx)
{
	(void)p;
	(void)size;
	(void)align;
	(void)ctx;
}

/* A valid band: the template's policies, ceiling 1. */
static struct flowq_band_config
band(int32_t priority, double ceiling)
{
	struct flowq_band_config b = {
		.priority = priority,
		.max_requests = 0,
		.max_bytes = 0,
		.fairness = "global_strict",
		.ordering = "fcfs",
		.usage_ceiling = ceiling,
	};
	return b;
}

/*
 * @cfg must be rejected with -EINVAL and a message containing each of the
 * NULL-terminated substrings (the field path, the value, the rule).
 */
static void
expect_invalid(const struct flowq_config *cfg, ...)
{
	char buf[ERRBUF];
	const char *want;
	va_list ap;
	int rc;

	memset(buf, 'x', sizeof(buf));
	rc = flowq_config_validate(cfg, buf, sizeof(buf));
	cr_assert_eq(rc, -EINVAL, "rc %d, message \"%.*s\"", rc, 200, buf);
	cr_assert_neq(memchr(buf, '\0', sizeof(buf)), NULL, "message is NUL-terminated");
	va_start(ap, cfg);
	while ((want = va_arg(ap, const char *)) != NULL)
		cr_assert_neq(strstr(buf, want), NULL, "message \"%s\" lacks \"%s\"", buf,
			      want);
	va_end(ap);
}

#define EXPECT_INVALID(cfg, ...) expect_invalid((cfg), __VA_ARGS__, (const char *)NULL)

/* @cfg must be accepted, with the errbuf cleared to "". */
static void
expect_valid(const struct flowq_config *cfg)
{
	char buf[ERRBUF];
	int rc;

	memset(buf, 'x', sizeof(buf));
	rc = flowq_config_validate(cfg, buf, sizeof(buf));
	cr_assert_eq(rc, 0, "rc %d: %s", rc, rc == -EINVAL ? buf : "");
	cr_assert_str_eq(buf, "", "a valid config clears the errbuf");
}

/* ---- defaults ---------------------------------------------------------- */

Test(config, defaults_are_the_documented_values)
{
	struct flowq_config c;

	memset(&c, 0xA5, sizeof(c)); /* init must not depend on zeroed memory */
	flowq_config_init(&c);
	cr_assert_eq(c.shards, 0);
	cr_assert_eq(c.mode, FLOWQ_MODE_THREADED);
	cr_assert_eq(c.max_requests, 0);
	cr_assert_eq(c.max_bytes, 0);
	cr_assert_null(c.bands);
	cr_assert_eq(c.nbands, 0);
	cr_assert(c.default_band_enabled);
	cr_assert_str_eq(c.default_band.fairness, "global_strict");
	cr_assert_str_eq(c.default_band.ordering, "fcfs");
	cr_assert_eq(c.default_band.max_bytes, UINT64_C(1000000000));
	cr_assert_eq(c.default_band.max_requests, 0);
	cr_assert(c.default_band.usage_ceiling == 1.0);
	cr_assert_eq(c.flow_max_requests, 0);
	cr_assert_eq(c.flow_max_bytes, 0);
	cr_assert_eq(c.default_ttl_ns, FLOWQ_TTL_NONE);
	cr_assert_eq(c.flow_gc_timeout_ns, INT64_C(10000000000));
	cr_assert_str_eq(c.saturation.detector, "concurrency");
	cr_assert_eq(c.saturation.max_inflight, 0);
	cr_assert_eq(c.saturation.max_inflight_bytes, 0);
	cr_assert_null(c.saturation.callback);
	cr_assert_null(c.saturation.callback_ctx);
	cr_assert_eq(c.saturation.callback_poll_ns, INT64_C(1000000));
	cr_assert_eq(c.saturation.endpoints, 1u);
	cr_assert_eq(c.saturation.queue_depth_threshold, 5);
	cr_assert(c.saturation.kv_cache_util_threshold == 0.8);
	cr_assert_eq(c.saturation.metrics_staleness_ns, INT64_C(200000000));
	cr_assert(c.saturation.dispatch_cost == 1.0);
	cr_assert_null(c.allocator);
	cr_assert_null(c.clock);
	cr_assert_null(c.clock_ctx);
	cr_assert_eq(c.registry_buckets, 1024ul);
	cr_assert_eq(c.dispatch_batch, 32u);
	cr_assert_eq(c.idle_spin_ns, 50000);
	cr_assert_eq(c.intake_coalesce_ns, 2000);
	cr_assert_null(c.errbuf);
	cr_assert_eq(c.errbuf_size, 0);
}

Test(config, defaults_are_valid_and_their_policies_exist)
{
	struct flowq_config c;

	flowq_config_init(&c);
	expect_valid(&c);
	cr_assert_not_null(flowq_fairness_find(c.default_band.fairness));
	cr_assert_not_null(flowq_ordering_find(c.default_band.ordering));
	cr_assert_eq(flowq_config_validate(&c, NULL, 0), 0, "errbuf may be NULL");
}

Test(config, init_of_null_is_ignored)
{
	flowq_config_init(NULL);
}

/* ---- top-level fields ---------------------------------------------------- */

Test(config, null_config)
{
	EXPECT_INVALID(NULL, "config is NULL");
	cr_assert_eq(flowq_config_validate(NULL, NULL, 0), -EINVAL);
}

Test(config, shards)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.shards = FLOWQ_MAX_SHARDS + 1;
	EXPECT_INVALID(&c, "shards: 257 ", "FLOWQ_MAX_SHARDS");
	c.shards = FLOWQ_MAX_SHARDS;
	expect_valid(&c);
	c.shards = 1;
	expect_valid(&c);
}

Test(config, mode)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.mode = (enum flowq_mode)7;
	EXPECT_INVALID(&c, "mode: 7 is not FLOWQ_MODE_THREADED or FLOWQ_MODE_POLLED");
	c.mode = (enum flowq_mode) - 1;
	EXPECT_INVALID(&c, "mode: -1 ");
	c.mode = FLOWQ_MODE_POLLED;
	expect_valid(&c);
}

Test(config, global_limits_at_most_flowq_limit_max)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.max_requests = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "max_requests: 4611686018427387905 exceeds FLOWQ_LIMIT_MAX");
	c.max_requests = FLOWQ_LIMIT_MAX; /* alone: accepted */
	expect_valid(&c);
	c.max_requests = 0;
	c.max_bytes = UINT64_MAX;
	EXPECT_INVALID(&c, "max_bytes: 18446744073709551615 exceeds FLOWQ_LIMIT_MAX");
	c.max_bytes = FLOWQ_LIMIT_MAX;
	expect_valid(&c);
}

Test(config, global_limit_pair_must_fit_one_word)
{
	struct flowq_config c;

	flowq_config_init(&c);
	/* 24 + 40 bits: the example of capacity.h, exactly 64. */
	c.max_requests = 16777215;
	c.max_bytes = (UINT64_C(1) << 40) - 1;
	expect_valid(&c);
	/* One more request needs a 25th bit. */
	c.max_requests = 16777216;
	EXPECT_INVALID(&c, "max_requests + max_bytes: ", "16777216 requests (25 bits)",
		       "1099511627775 bytes (40 bits)", "65 bits", "64");
	/* 32 + 32 bits fit. */
	c.max_requests = UINT32_MAX;
	c.max_bytes = UINT32_MAX;
	expect_valid(&c);
	c.max_bytes = UINT64_C(1) << 32;
	EXPECT_INVALID(&c, "max_requests + max_bytes: ", "(33 bits)");
}

/*
 * The validator's joint rule must be exactly the one flowq__cap_init()
 * enforces, or an engine could pass validation and fail to create its
 * capacity (or refuse pairs the capacity supports). Both are asked about
 * the smallest and largest value of every bit length, in both dimensions.
 */
Test(config, joint_rule_agrees_with_capacity_init)
{
	const struct flowq_allocator *a = flowq_allocator_libc();
	struct flowq_config c;
	uint64_t vals[2 * 63 + 1];
	size_t nv = 0;

	vals[nv++] = 0;
	for (unsigned k = 1; k <= 63; k++) {
		uint64_t lo = UINT64_C(1) << (k - 1);
		uint64_t hi = k == 63 ? FLOWQ_LIMIT_MAX : (UINT64_C(1) << k) - 1;

		vals[nv++] = lo;
		if (hi != lo)
			vals[nv++] = hi;
	}
	flowq_config_init(&c);
	for (size_t i = 0; i < nv; i++) {
		for (size_t j = 0; j < nv; j++) {
			struct flowq__cap_config cc = {.limit_req = vals[i],
						       .limit_bytes = vals[j],
						       .nslots = 1};
			struct flowq__cap cap;
			int cap_rc = flowq__cap_init(&cap, a, &cc);

			if (cap_rc == 0)
				flowq__cap_fini(&cap);
			c.max_requests = vals[i];
			c.max_bytes = vals[j];
			cr_assert_eq(flowq_config_validate(&c, NULL, 0) == 0, cap_rc == 0,
				     "requests %llu bytes %llu: validate and cap_init "
				     "disagree (cap_init %d)",
				     (unsigned long long)vals[i],
				     (unsigned long long)vals[j], cap_rc);
		}
	}
}

/* ---- bands ---------------------------------------------------------------- */

Test(config, nbands_and_bands_pointer)
{
	struct flowq_band_config bands[FLOWQ_MAX_BANDS + 1];
	struct flowq_config c;

	for (unsigned i = 0; i <= FLOWQ_MAX_BANDS; i++)
		bands[i] = band((int32_t)i - 10, 1.0);
	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = FLOWQ_MAX_BANDS + 1;
	EXPECT_INVALID(&c, "nbands: 65 exceeds FLOWQ_MAX_BANDS (64)");
	c.nbands = FLOWQ_MAX_BANDS;
	expect_valid(&c);
	c.bands = NULL;
	c.nbands = 1;
	EXPECT_INVALID(&c, "bands: is NULL but nbands is 1");
	c.nbands = 0;
	expect_valid(&c);
}

Test(config, band_quantum_range)
{
	struct flowq_band_config bands[1] = {band(3, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	cr_assert(c.default_band.quantum == FLOWQ_QUANTUM_DEFAULT);
	c.bands = bands;
	c.nbands = 1;
	bands[0].quantum = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "bands[0].quantum: 4611686018427387905 is above FLOWQ_LIMIT_MAX");
	c.default_band.quantum = UINT64_MAX;
	bands[0].quantum = 0; /* 0: the default */
	EXPECT_INVALID(&c, "default_band.quantum: 18446744073709551615 is above FLOWQ_LIMIT_MAX");
	c.default_band.quantum = FLOWQ_LIMIT_MAX;
	cr_assert_eq(flowq_config_validate(&c, NULL, 0), 0);
}

Test(config, band_usage_ceiling_range)
{
	struct flowq_band_config bands[3] = {band(3, 1.0), band(2, 1.0), band(1, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 3;
	bands[2].usage_ceiling = 1.5;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: 1.5 is not in (0, 1]");
	bands[2].usage_ceiling = 0.0;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: 0 is not in (0, 1]");
	bands[2].usage_ceiling = -0.25;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: -0.25 is not in (0, 1]");
	bands[2].usage_ceiling = NAN;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: nan is not in (0, 1]");
	bands[2].usage_ceiling = INFINITY;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: inf is not in (0, 1]");
	/* Just above 1 must not print as "1". */
	bands[2].usage_ceiling = nextafter(1.0, 2.0);
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: 1.0000000000000002 is not in (0, 1]");
	/* Boundaries: exactly 1, and the smallest positive double. */
	bands[2].usage_ceiling = 1.0;
	expect_valid(&c);
	bands[2].usage_ceiling = DBL_TRUE_MIN;
	expect_valid(&c);
}

Test(config, band_policy_names)
{
	struct flowq_band_config bands[2] = {band(1, 1.0), band(0, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 2;
	bands[1].fairness = NULL;
	EXPECT_INVALID(&c, "bands[1].fairness: is NULL");
	bands[1].fairness = "drr2";
	EXPECT_INVALID(&c, "bands[1].fairness: unknown fairness policy \"drr2\"");
	/* An ordering's name is not a fairness policy. */
	bands[1].fairness = "fcfs";
	EXPECT_INVALID(&c, "bands[1].fairness: unknown fairness policy \"fcfs\"");
	bands[1].fairness = "round_robin";
	expect_valid(&c);
	bands[1].ordering = NULL;
	EXPECT_INVALID(&c, "bands[1].ordering: is NULL");
	bands[1].ordering = "edf";
	expect_valid(&c);
	bands[1].ordering = "slo_deadline";
	expect_valid(&c);
	bands[1].ordering = "lifo";
	EXPECT_INVALID(&c, "bands[1].ordering: unknown ordering policy \"lifo\"");
	bands[1].ordering = "FCFS"; /* names are case-sensitive */
	EXPECT_INVALID(&c, "bands[1].ordering: unknown ordering policy \"FCFS\"");
}

Test(config, band_limits)
{
	struct flowq_band_config bands[2] = {band(1, 1.0), band(0, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 2;
	bands[1].max_requests = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "bands[1].max_requests: 4611686018427387905 exceeds");
	bands[1].max_requests = FLOWQ_LIMIT_MAX;
	expect_valid(&c);
	bands[1].max_requests = 0;
	bands[1].max_bytes = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "bands[1].max_bytes: 4611686018427387905 exceeds");
	bands[1].max_requests = 16777215;
	bands[1].max_bytes = (UINT64_C(1) << 40) - 1;
	expect_valid(&c);
	bands[1].max_bytes = UINT64_C(1) << 40;
	EXPECT_INVALID(&c, "bands[1].max_requests + bands[1].max_bytes: ", "(41 bits)",
		       "65 bits");
}

Test(config, band_priorities_are_unique)
{
	struct flowq_band_config bands[3] = {band(5, 1.0), band(5, 1.0), band(-2, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 3;
	EXPECT_INVALID(&c, "bands[1].priority: 5 duplicates bands[0]");
	bands[1].priority = 4;
	bands[2].priority = 5;
	EXPECT_INVALID(&c, "bands[2].priority: 5 duplicates bands[0]");
	bands[2].priority = INT32_MIN;
	expect_valid(&c);
}

Test(config, band_ceilings_do_not_increase_towards_less_important)
{
	/* Deliberately not sorted by priority in the array. */
	struct flowq_band_config bands[3] = {band(0, 0.6), band(10, 0.9), band(5, 0.8)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 3;
	expect_valid(&c);
	/* Equal ceilings are monotone. */
	bands[0].usage_ceiling = 0.8;
	expect_valid(&c);
	/* Priority 0 above priority 5. */
	bands[0].usage_ceiling = 0.85;
	EXPECT_INVALID(&c, "bands[0].usage_ceiling: 0.85 is above the 0.8 of bands[2]",
		       "priority 5 > 0");
	bands[0].usage_ceiling = 0.5;
	/* Priority 5 above priority 10. */
	bands[2].usage_ceiling = 1.0;
	EXPECT_INVALID(&c, "bands[2].usage_ceiling: 1 is above the 0.9 of bands[1]",
		       "priority 10 > 5");
}

Test(config, default_band_template)
{
	struct flowq_band_config bands[1] = {band(7, 0.5)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.default_band.fairness = NULL;
	EXPECT_INVALID(&c, "default_band.fairness: is NULL");
	c.default_band.fairness = "drr2";
	EXPECT_INVALID(&c, "default_band.fairness: unknown fairness policy \"drr2\"");
	/* Checked even when the template is off. */
	c.default_band_enabled = false;
	EXPECT_INVALID(&c, "default_band.fairness: unknown fairness policy \"drr2\"");
	c.default_band_enabled = true;
	c.default_band.fairness = "round_robin";
	c.default_band.ordering = "nope";
	EXPECT_INVALID(&c, "default_band.ordering: unknown ordering policy \"nope\"");
	c.default_band.ordering = "fcfs";
	c.default_band.usage_ceiling = 0.0;
	EXPECT_INVALID(&c, "default_band.usage_ceiling: 0 is not in (0, 1]");
	c.default_band.usage_ceiling = 1.0;
	c.default_band.max_requests = 1u << 24;
	c.default_band.max_bytes = (UINT64_C(1) << 40) - 1;
	EXPECT_INVALID(&c, "default_band.max_requests + default_band.max_bytes: ");
	c.default_band.max_requests = 0;
	/* The template's priority is ignored, so it may equal a configured
	 * one, and its ceiling is not ordered against configured bands (a JIT
	 * band's priority is unknown): 1.0 above a configured 0.5 is valid. */
	c.bands = bands;
	c.nbands = 1;
	c.default_band.priority = 7;
	c.default_band.usage_ceiling = 1.0;
	expect_valid(&c);
	c.default_band.usage_ceiling = 0.1;
	expect_valid(&c);
}

/* ---- per-flow, TTL, GC ----------------------------------------------------- */

Test(config, flow_limits)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.flow_max_requests = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "flow_max_requests: 4611686018427387905 exceeds");
	c.flow_max_requests = 0;
	c.flow_max_bytes = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "flow_max_bytes: 4611686018427387905 exceeds");
	/* Per-flow limits are not packed in a shared word: no joint rule. */
	c.flow_max_requests = FLOWQ_LIMIT_MAX;
	c.flow_max_bytes = FLOWQ_LIMIT_MAX;
	expect_valid(&c);
}

Test(config, default_ttl)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.default_ttl_ns = 0;
	EXPECT_INVALID(&c, "default_ttl_ns: 0 is not > 0");
	c.default_ttl_ns = -5;
	EXPECT_INVALID(&c, "default_ttl_ns: -5 is not > 0");
	c.default_ttl_ns = 1;
	expect_valid(&c);
	c.default_ttl_ns = FLOWQ_TTL_NONE;
	expect_valid(&c);
}

Test(config, flow_gc_timeout)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.flow_gc_timeout_ns = 0;
	EXPECT_INVALID(&c, "flow_gc_timeout_ns: 0 is not > 0");
	c.flow_gc_timeout_ns = INT64_MIN;
	EXPECT_INVALID(&c, "flow_gc_timeout_ns: -9223372036854775808 is not > 0");
	c.flow_gc_timeout_ns = 1;
	expect_valid(&c);
}

/* ---- saturation ------------------------------------------------------------ */

Test(config, saturation_detector)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.saturation.detector = NULL;
	EXPECT_INVALID(&c, "saturation.detector: is NULL");
	c.saturation.detector = "Utilization";
	EXPECT_INVALID(&c, "saturation.detector: unknown detector \"Utilization\"",
		       "(\"concurrency\", \"utilization\" or \"callback\")");
	c.saturation.detector = "Concurrency";
	EXPECT_INVALID(&c, "saturation.detector: unknown detector \"Concurrency\"");
	c.saturation.detector = "utilization";
	expect_valid(&c);
	c.saturation.max_inflight = 8; /* an in-flight limit may go with it */
	expect_valid(&c);
}

Test(config, saturation_callback_iff_callback_detector)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.saturation.detector = "callback";
	EXPECT_INVALID(&c, "saturation.callback: is NULL", "\"callback\"");
	c.saturation.callback = host_saturation;
	expect_valid(&c);
	c.saturation.detector = "concurrency";
	EXPECT_INVALID(&c, "saturation.callback: is set", "\"concurrency\"");
	c.saturation.detector = "utilization";
	EXPECT_INVALID(&c,
		       "saturation.callback: is set, but saturation.detector is "
		       "\"utilization\", which would ignore it");
	c.saturation.callback = NULL;
	expect_valid(&c);
}

/* The utilization settings, each at its bounds; checked whatever the
 * detector (the defaults are valid). */
Test(config, saturation_utilization_settings)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.saturation.detector = "utilization";
	c.saturation.endpoints = 0;
	EXPECT_INVALID(&c, "saturation.endpoints: 0 is not in [1, FLOWQ_MAX_ENDPOINTS (4096)]");
	c.saturation.endpoints = FLOWQ_MAX_ENDPOINTS + 1;
	EXPECT_INVALID(&c, "saturation.endpoints: 4097 is not in [1, FLOWQ_MAX_ENDPOINTS");
	c.saturation.endpoints = FLOWQ_MAX_ENDPOINTS;
	expect_valid(&c);
	c.saturation.endpoints = 1;
	expect_valid(&c);

	c.saturation.queue_depth_threshold = 0;
	EXPECT_INVALID(&c, "saturation.queue_depth_threshold: 0 is not in [1, FLOWQ_LIMIT_MAX]");
	c.saturation.queue_depth_threshold = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "saturation.queue_depth_threshold: 4611686018427387905 is not in");
	c.saturation.queue_depth_threshold = FLOWQ_LIMIT_MAX;
	expect_valid(&c);
	c.saturation.queue_depth_threshold = 1;
	expect_valid(&c);

	c.saturation.kv_cache_util_threshold = 0.0;
	EXPECT_INVALID(&c, "saturation.kv_cache_util_threshold: 0 is not in (0, 1]");
	c.saturation.kv_cache_util_threshold = -0.5;
	EXPECT_INVALID(&c, "saturation.kv_cache_util_threshold: -0.5 is not in (0, 1]");
	c.saturation.kv_cache_util_threshold = nextafter(1.0, 2.0);
	EXPECT_INVALID(&c, "saturation.kv_cache_util_threshold: 1.0000000000000002 is not in");
	c.saturation.kv_cache_util_threshold = NAN;
	EXPECT_INVALID(&c, "saturation.kv_cache_util_threshold: nan is not in (0, 1]");
	c.saturation.kv_cache_util_threshold = 1.0;
	expect_valid(&c);
	c.saturation.kv_cache_util_threshold = DBL_MIN;
	expect_valid(&c);

	c.saturation.metrics_staleness_ns = 0;
	EXPECT_INVALID(&c, "saturation.metrics_staleness_ns: 0 is not > 0");
	c.saturation.metrics_staleness_ns = -1;
	EXPECT_INVALID(&c, "saturation.metrics_staleness_ns: -1 is not > 0");
	c.saturation.metrics_staleness_ns = 1;
	expect_valid(&c);
	c.saturation.metrics_staleness_ns = INT64_MAX;
	expect_valid(&c);

	c.saturation.dispatch_cost = -0.25;
	EXPECT_INVALID(&c, "saturation.dispatch_cost: -0.25 is not in [0, 1000000]");
	c.saturation.dispatch_cost = INFINITY;
	EXPECT_INVALID(&c, "saturation.dispatch_cost: inf is not in [0, 1000000]");
	c.saturation.dispatch_cost = NAN;
	EXPECT_INVALID(&c, "saturation.dispatch_cost: nan is not in [0, 1000000]");
	c.saturation.dispatch_cost = 1000000.5;
	EXPECT_INVALID(&c, "saturation.dispatch_cost: 1000000.5 is not in [0, 1000000]");
	c.saturation.dispatch_cost = 1000000.0;
	expect_valid(&c);
	c.saturation.dispatch_cost = 0.0;
	expect_valid(&c);

	/* Checked with the default detector too; struct order decides which
	 * bad field is named. */
	c.saturation.detector = "concurrency";
	c.saturation.dispatch_cost = -1.0;
	EXPECT_INVALID(&c, "saturation.dispatch_cost: -1 is not");
	c.saturation.endpoints = 0;
	EXPECT_INVALID(&c, "saturation.endpoints: 0 is not");
}

Test(config, saturation_callback_poll)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.saturation.callback_poll_ns = 0;
	EXPECT_INVALID(&c, "saturation.callback_poll_ns: 0 is not > 0");
	c.saturation.detector = "callback";
	c.saturation.callback = host_saturation;
	c.saturation.callback_poll_ns = -1;
	EXPECT_INVALID(&c, "saturation.callback_poll_ns: -1 is not > 0");
	c.saturation.callback_poll_ns = 1;
	expect_valid(&c);
}

Test(config, saturation_limits)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.saturation.max_inflight = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "saturation.max_inflight: 4611686018427387905 exceeds");
	c.saturation.max_inflight = 0;
	c.saturation.max_inflight_bytes = FLOWQ_LIMIT_MAX + 1;
	EXPECT_INVALID(&c, "saturation.max_inflight_bytes: 4611686018427387905 exceeds");
	c.saturation.max_inflight_bytes = FLOWQ_LIMIT_MAX;
	expect_valid(&c);
	c.saturation.max_inflight = 1; /* 1 bit + 63 bits */
	expect_valid(&c);
	c.saturation.max_inflight = 2;
	EXPECT_INVALID(&c, "saturation.max_inflight + saturation.max_inflight_bytes: ",
		       "2 requests (2 bits)", "65 bits");
}

/* ---- allocator, registry, dispatch, errbuf ---------------------------------- */

Test(config, allocator_must_be_complete)
{
	struct flowq_allocator half = {.alloc = NULL, .free = nop_free, .ctx = NULL};
	struct flowq_config c;

	flowq_config_init(&c);
	c.allocator = &half;
	EXPECT_INVALID(&c, "allocator->alloc: is NULL");
	half.alloc = nop_alloc;
	half.free = NULL;
	EXPECT_INVALID(&c, "allocator->free: is NULL");
	half.free = nop_free;
	expect_valid(&c);
	c.allocator = flowq_allocator_libc();
	expect_valid(&c);
}

Test(config, registry_buckets)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.registry_buckets = 0;
	EXPECT_INVALID(&c, "registry_buckets: 0 is not a power of two in [1, 2^30]");
	c.registry_buckets = 1000;
	EXPECT_INVALID(&c, "registry_buckets: 1000 is not a power of two");
	c.registry_buckets = 1ul << 31;
	EXPECT_INVALID(&c,
		       "registry_buckets: 2147483648 is not a power of two in [1, 2^30]");
	c.registry_buckets = 1;
	expect_valid(&c);
	c.registry_buckets = 1ul << 30;
	expect_valid(&c);
}

Test(config, dispatch_batch)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.dispatch_batch = 0;
	EXPECT_INVALID(&c, "dispatch_batch: 0 is not in [1, 4096]");
	c.dispatch_batch = 4097;
	EXPECT_INVALID(&c, "dispatch_batch: 4097 is not in [1, 4096]");
	c.dispatch_batch = 1;
	expect_valid(&c);
	c.dispatch_batch = 4096;
	expect_valid(&c);
}

Test(config, idle_spin_ns)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.idle_spin_ns = -1;
	EXPECT_INVALID(&c, "idle_spin_ns: -1 is not in [0, 1000000000]");
	c.idle_spin_ns = 1000000001;
	EXPECT_INVALID(&c, "idle_spin_ns: 1000000001 is not in [0, 1000000000]");
	c.idle_spin_ns = 0;
	expect_valid(&c);
	c.idle_spin_ns = 1000000000;
	expect_valid(&c);
}

Test(config, intake_coalesce_ns)
{
	struct flowq_config c;

	flowq_config_init(&c);
	c.intake_coalesce_ns = -1;
	EXPECT_INVALID(&c, "intake_coalesce_ns: -1 is not in [0, 100000]");
	c.intake_coalesce_ns = 100001;
	EXPECT_INVALID(&c, "intake_coalesce_ns: 100001 is not in [0, 100000]");
	c.intake_coalesce_ns = 0;
	expect_valid(&c);
	c.intake_coalesce_ns = 100000;
	expect_valid(&c);
}

Test(config, engine_errbuf_needs_a_size)
{
	char engine_buf[8] = "keep";
	struct flowq_config c;

	flowq_config_init(&c);
	c.errbuf = engine_buf;
	c.errbuf_size = 0;
	EXPECT_INVALID(&c, "errbuf_size: 0 with a non-NULL errbuf");
	c.errbuf_size = sizeof(engine_buf);
	expect_valid(&c);
	/* validate() writes its own errbuf argument, never cfg->errbuf. */
	c.dispatch_batch = 0;
	EXPECT_INVALID(&c, "dispatch_batch");
	cr_assert_str_eq(engine_buf, "keep");
	/* An errbuf_size without an errbuf is ignored. */
	c.dispatch_batch = 1;
	c.errbuf = NULL;
	c.errbuf_size = 100;
	expect_valid(&c);
}

/* ---- reporting ------------------------------------------------------------- */

Test(config, first_bad_field_in_struct_order_is_reported)
{
	struct flowq_band_config bands[2] = {band(1, 2.0), band(1, 1.0)};
	struct flowq_config c;

	flowq_config_init(&c);
	c.dispatch_batch = 0;
	c.saturation.detector = "x";
	c.bands = bands;
	c.nbands = 2;
	EXPECT_INVALID(&c, "bands[0].usage_ceiling: 2 ");
	bands[0].usage_ceiling = 1.0;
	EXPECT_INVALID(&c, "bands[1].priority: 1 duplicates bands[0]");
	c.nbands = 0;
	EXPECT_INVALID(&c, "saturation.detector");
	c.mode = (enum flowq_mode)3;
	EXPECT_INVALID(&c, "mode: 3 ");
}

Test(config, message_truncation_is_safe_and_terminated)
{
	struct flowq_band_config bands[3] = {band(3, 1.0), band(2, 1.0), band(1, 1.5)};
	char full[ERRBUF], tiny[16];
	struct flowq_config c;

	flowq_config_init(&c);
	c.bands = bands;
	c.nbands = 3;
	cr_assert_eq(flowq_config_validate(&c, full, sizeof(full)), -EINVAL);
	cr_assert_str_eq(full, "bands[2].usage_ceiling: 1.5 is not in (0, 1]");

	/* Size 8 inside a larger array: 7 characters, a NUL, and nothing
	 * written past the size given. */
	memset(tiny, '#', sizeof(tiny));
	cr_assert_eq(flowq_config_validate(&c, tiny, 8), -EINVAL);
	cr_assert_eq(tiny[7], '\0');
	cr_assert_eq(strncmp(tiny, full, 7), 0);
	for (size_t i = 8; i < sizeof(tiny); i++)
		cr_assert_eq(tiny[i], '#', "byte %zu written past errbuf_size", i);

	/* Size 1: just the NUL. */
	memset(tiny, '#', sizeof(tiny));
	cr_assert_eq(flowq_config_validate(&c, tiny, 1), -EINVAL);
	cr_assert_eq(tiny[0], '\0');
	cr_assert_eq(tiny[1], '#');

	/* Size 0: nothing at all. */
	memset(tiny, '#', sizeof(tiny));
	cr_assert_eq(flowq_config_validate(&c, tiny, 0), -EINVAL);
	cr_assert_eq(tiny[0], '#');
	/* And a NULL buffer with a size: still just -EINVAL. */
	cr_assert_eq(flowq_config_validate(&c, NULL, 64), -EINVAL);

	/* A long unknown name is cut, not overflowed. */
	{
		char name[600];

		memset(name, 'q', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		bands[2].usage_ceiling = 1.0;
		bands[2].fairness = name;
		memset(tiny, '#', sizeof(tiny));
		cr_assert_eq(flowq_config_validate(&c, tiny, sizeof(tiny)), -EINVAL);
		cr_assert_eq(tiny[sizeof(tiny) - 1], '\0');
		cr_assert_eq(strlen(tiny), sizeof(tiny) - 1);
	}
}

/* ---- flowq_strerror ---------------------------------------------------------- */

Test(config, strerror_covers_every_documented_errno)
{
	static const struct {
		int err;
		const char *text;
	} want[] = {
		{0, "success"},
		{-ENOSPC, "capacity limit reached"},
		{-ESHUTDOWN, "engine is shutting down"},
		{-EMSGSIZE,
		 "request larger than a byte limit it must fit (in-flight or queued)"},
		{-EBUSY, "busy (request already submitted, or endpoint report running)"},
		{-ESTALE, "stale endpoint report (older than its latest or its staleness limit)"},
		{-EALREADY, "already done (outcome decided, or already released)"},
		{-EINVAL, "invalid argument or configuration"},
		{-ENOENT, "no such band, flow, file or config section"},
		{-ENOMEM, "out of memory"},
		{-ETIMEDOUT, "deadline or TTL already passed"},
		{-EFAULT, "NULL argument"},
		{-EAGAIN, "could not start a dispatcher thread"},
		{-EEXIST, "name already registered"},
		{-EIO, "write failed"},
		{-EMFILE, "too many open files in the process"},
		{-ENFILE, "too many open files in the system"},
		{-EFBIG, "input too large"},
		{-EACCES, "permission denied"},
		{-EISDIR, "is a directory"},
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *s = flowq_strerror(want[i].err);

		cr_assert_not_null(s);
		cr_assert_str_eq(s, want[i].text, "err %d", want[i].err);
		/* Distinct texts: each errno says something of its own. */
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, want[j].text, "err %d and %d", want[i].err,
					  want[j].err);
	}
}

Test(config, strerror_unknown_is_generic_never_null)
{
	const int others[] = {1, ENOSPC, -EPERM, -ERANGE, -100000, INT_MIN, INT_MAX};

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		cr_assert_str_eq(flowq_strerror(others[i]), "unknown error", "err %d",
				 others[i]);
}
