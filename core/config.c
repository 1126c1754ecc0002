/*
 * Engine configuration: the documented defaults (flowq_config_init), the
 * checks flowq_engine_create() runs (flowq_config_validate), and the short
 * errno texts (flowq_strerror).
 *
 * Validation reports the *first* bad field in struct order (bands in index
 * order, each band's fields in struct order, then the rules that relate
 * bands to each other), as "<field path>: <value> <what is wrong>", so a
 * host can print it as is. A config is plain data the host filled in; a bad
 * value is always an -EINVAL with a message, never a crash and never a
 * silent default (STYLE.md rule 3).
 *
 * Plumbing, not a hot path: every check is a bounded loop (bands are at most
 * FLOWQ_MAX_BANDS, so the pairwise band rules cost at most 64 * 63 compares).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

/* Bounds documented in flowq.h next to each field. */
#define CONFIG_BUCKETS_MAX        (1ul << 30)
#define CONFIG_DISPATCH_BATCH_MAX 4096u
#define CONFIG_IDLE_SPIN_MAX      INT64_C(1000000000)
#define CONFIG_COALESCE_MAX       INT64_C(100000)
#define CONFIG_DISPATCH_COST_MAX  1000000.0

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S  INT64_C(1000000000)

void
flowq_config_init(struct flowq_config *cfg)
{
	if (cfg == NULL)
		return;
	/* Zero first: every field not named below (contexts, errbuf_size,
	 * padding) starts at 0/NULL, so two initialized configs compare
	 * equal byte for byte. */
	memset(cfg, 0, sizeof(*cfg));
	cfg->shards = 0;
	cfg->mode = FLOWQ_MODE_THREADED;
	cfg->max_requests = 0;
	cfg->max_bytes = 0;
	cfg->bands = NULL;
	cfg->nbands = 0;
	cfg->default_band_enabled = true;
	/* GIE's default band (reference section 1.2): global-strict
	 * fairness, FCFS ordering, 1 GB, no request limit. */
	cfg->default_band.priority = 0;
	cfg->default_band.max_requests = 0;
	cfg->default_band.max_bytes = UINT64_C(1000000000);
	cfg->default_band.fairness = "global_strict";
	cfg->default_band.ordering = "fcfs";
	cfg->default_band.usage_ceiling = 1.0;
	cfg->default_band.quantum = FLOWQ_QUANTUM_DEFAULT;
	cfg->flow_max_requests = 0;
	cfg->flow_max_bytes = 0;
	cfg->default_ttl_ns = FLOWQ_TTL_NONE;
	cfg->flow_gc_timeout_ns = 10 * NS_PER_S;
	cfg->saturation.detector = "concurrency";
	cfg->displacement = "none";
	cfg->displacement_max_pending = 64;
	cfg->saturation.max_inflight = 0;
	cfg->saturation.max_inflight_bytes = 0;
	cfg->saturation.callback = NULL;
	cfg->saturation.callback_ctx = NULL;
	cfg->saturation.callback_poll_ns = NS_PER_MS;
	/* GIE's utilization-detector defaults (reference section 1.9). */
	cfg->saturation.endpoints = 1;
	cfg->saturation.queue_depth_threshold = 5;
	cfg->saturation.kv_cache_util_threshold = 0.8;
	cfg->saturation.metrics_staleness_ns = 200 * NS_PER_MS;
	cfg->saturation.dispatch_cost = 1.0;
	cfg->allocator = NULL;
	cfg->clock = NULL;
	cfg->clock_ctx = NULL;
	cfg->registry_buckets = 1024;
	cfg->dispatch_batch = 32;
	cfg->idle_spin_ns = 50000;
	cfg->intake_coalesce_ns = 2000;
	cfg->errbuf = NULL;
	cfg->errbuf_size = 0;
}

/* Where validation writes its message; buf may be NULL (no message). */
struct config_err {
	char *buf;
	size_t size;
};

/* Write the message (truncated, NUL-terminated) and return -EINVAL. */
static int
config_fail(const struct config_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
config_fail(const struct config_err *e, const char *fmt, ...)
{
	va_list ap;

	if (e->buf != NULL && e->size > 0) {
		va_start(ap, fmt);
		vsnprintf(e->buf, e->size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * @v as text that reads back as @v where possible: "1.5", "0.8", not
 * "0.80000000000000004", yet 1.0000000000000002 does not print as "1" (which
 * would make "1 is not in (0, 1]" look absurd).
 */
static const char *
config_fmt_double(char buf[32], double v)
{
	snprintf(buf, 32, "%.15g", v);
	if (isfinite(v) && strtod(buf, NULL) != v)
		snprintf(buf, 32, "%.17g", v);
	return buf;
}

/* bitlen(x): bits needed to write @x (0 for 0), as in core/capacity.c. */
static unsigned
config_bitlen(uint64_t x)
{
	return x == 0 ? 0 : 64u - (unsigned)__builtin_clzll(x);
}

/* One limit of the pair (@path)@req_name / (@path)@bytes_name. */
static int
config_check_limit(const struct config_err *e, const char *path, const char *name,
		   uint64_t v)
{
	if (v > FLOWQ_LIMIT_MAX)
		return config_fail(e,
				   "%s%s: %" PRIu64
				   " exceeds FLOWQ_LIMIT_MAX (2^62 = %" PRIu64 ")",
				   path, name, v, FLOWQ_LIMIT_MAX);
	return 0;
}

/*
 * A request limit and a byte limit enforced together: each at most
 * FLOWQ_LIMIT_MAX, and, because capacity accounting packs both counters of
 * a per-CPU credit slot in one 64-bit word (core/capacity.h), the two must
 * fit that word together: bitlen(requests) + bitlen(bytes) <= 64. The same
 * rule as flowq__cap_init(); tests/unit/test_config.c checks they agree.
 */
static int
config_check_limits(const struct config_err *e, const char *path, const char *req_name,
		    uint64_t req, const char *bytes_name, uint64_t bytes)
{
	unsigned rbits = config_bitlen(req), bbits = config_bitlen(bytes);
	int rc;

	if ((rc = config_check_limit(e, path, req_name, req)) != 0 ||
	    (rc = config_check_limit(e, path, bytes_name, bytes)) != 0)
		return rc;
	if (rbits + bbits > 64)
		return config_fail(e,
				   "%s%s + %s%s: %" PRIu64
				   " requests (%u bits) + %" PRIu64
				   " bytes (%u bits) = %u bits, more than 64: the two "
				   "limits share one 64-bit counter word, so "
				   "bitlen(requests) + bitlen(bytes) must be <= 64 (e.g. "
				   "16777215 requests with 2^40 - 1 bytes); lower one of "
				   "them or set it to 0 (unlimited)",
				   path, req_name, path, bytes_name, req, rbits, bytes,
				   bbits, rbits + bbits);
	return 0;
}

/* Every field of one band but its priority (the template's is ignored;
 * configured bands' priorities are checked against each other later). */
static int
config_check_band(const struct config_err *e, const char *path,
		  const struct flowq_band_config *b)
{
	char num[32];
	int rc;

	rc = config_check_limits(e, path, "max_requests", b->max_requests, "max_bytes",
				 b->max_bytes);
	if (rc != 0)
		return rc;
	if (b->fairness == NULL)
		return config_fail(e, "%sfairness: is NULL", path);
	if (flowq_fairness_find(b->fairness) == NULL)
		return config_fail(e, "%sfairness: unknown fairness policy \"%s\"", path,
				   b->fairness);
	if (b->ordering == NULL)
		return config_fail(e, "%sordering: is NULL", path);
	if (flowq_ordering_find(b->ordering) == NULL)
		return config_fail(e, "%sordering: unknown ordering policy \"%s\"", path,
				   b->ordering);
	/* Written so that NaN fails too (every comparison with NaN is false). */
	if (!(isfinite(b->usage_ceiling) && b->usage_ceiling > 0.0 &&
	      b->usage_ceiling <= 1.0))
		return config_fail(e, "%susage_ceiling: %s is not in (0, 1]", path,
				   config_fmt_double(num, b->usage_ceiling));
	if (b->quantum > FLOWQ_LIMIT_MAX)
		return config_fail(e, "%squantum: %" PRIu64 " is above FLOWQ_LIMIT_MAX", path,
				   b->quantum);
	return 0;
}

/* The configured bands: each band, unique priorities, then monotone
 * ceilings (GIE reference section 1.10, llm-d-router#2149). */
static int
config_check_bands(const struct config_err *e, const struct flowq_config *cfg)
{
	char path[48], n1[32], n2[32];
	int rc;

	if (cfg->nbands > FLOWQ_MAX_BANDS)
		return config_fail(e, "nbands: %zu exceeds FLOWQ_MAX_BANDS (%u)",
				   cfg->nbands, FLOWQ_MAX_BANDS);
	if (cfg->nbands > 0 && cfg->bands == NULL)
		return config_fail(e, "bands: is NULL but nbands is %zu", cfg->nbands);
	for (size_t i = 0; i < cfg->nbands; i++) {
		const struct flowq_band_config *b = &cfg->bands[i];

		snprintf(path, sizeof(path), "bands[%zu].", i);
		for (size_t j = 0; j < i; j++) {
			if (cfg->bands[j].priority == b->priority)
				return config_fail(e,
						   "%spriority: %" PRId32
						   " duplicates bands[%zu]",
						   path, b->priority, j);
		}
		if ((rc = config_check_band(e, path, b)) != 0)
			return rc;
	}
	/*
	 * A less important band must not have a higher ceiling than a more
	 * important one: the dispatcher stops at the first band whose ceiling
	 * the saturation has reached (head-of-line, to prevent priority
	 * inversion), so a lower band with a higher ceiling could take slots
	 * that a higher band may not. Blame the less important band.
	 */
	for (size_t i = 0; i < cfg->nbands; i++) {
		const struct flowq_band_config *lo = &cfg->bands[i];

		for (size_t j = 0; j < cfg->nbands; j++) {
			const struct flowq_band_config *hi = &cfg->bands[j];

			if (hi->priority > lo->priority &&
			    lo->usage_ceiling > hi->usage_ceiling)
				return config_fail(
					e,
					"bands[%zu].usage_ceiling: %s is above the %s of "
					"bands[%zu] (priority %" PRId32 " > %" PRId32
					"): ceilings must not increase from a more "
					"important band to a less important one",
					i, config_fmt_double(n1, lo->usage_ceiling),
					config_fmt_double(n2, hi->usage_ceiling), j,
					hi->priority, lo->priority);
		}
	}
	return 0;
}

/*
 * The detector and every detector's settings, in struct order. Settings of
 * a detector that is not selected are still checked (their defaults are
 * valid), as the default-band template is: a bad value fails now, not when
 * someone switches detectors.
 */
static int
config_check_saturation(const struct config_err *e,
			const struct flowq_saturation_config *s)
{
	char num[32];
	bool callback;
	int rc;

	if (s->detector == NULL)
		return config_fail(e, "saturation.detector: is NULL");
	if (strcmp(s->detector, "concurrency") == 0 ||
	    strcmp(s->detector, "utilization") == 0)
		callback = false;
	else if (strcmp(s->detector, "callback") == 0)
		callback = true;
	else
		return config_fail(
			e,
			"saturation.detector: unknown detector \"%s\" (\"concurrency\", "
			"\"utilization\" or \"callback\")",
			s->detector);
	rc = config_check_limits(e, "saturation.", "max_inflight", s->max_inflight,
				 "max_inflight_bytes", s->max_inflight_bytes);
	if (rc != 0)
		return rc;
	if (callback && s->callback == NULL)
		return config_fail(
			e, "saturation.callback: is NULL, but saturation.detector "
			   "is \"callback\"");
	if (!callback && s->callback != NULL)
		return config_fail(e,
				   "saturation.callback: is set, but saturation.detector "
				   "is \"%s\", which would ignore it",
				   s->detector);
	if (s->callback_poll_ns <= 0)
		return config_fail(e,
				   "saturation.callback_poll_ns: %" PRId64 " is not > 0",
				   s->callback_poll_ns);
	if (s->endpoints < 1 || s->endpoints > FLOWQ_MAX_ENDPOINTS)
		return config_fail(e,
				   "saturation.endpoints: %u is not in [1, "
				   "FLOWQ_MAX_ENDPOINTS (%u)]",
				   s->endpoints, FLOWQ_MAX_ENDPOINTS);
	if (s->queue_depth_threshold < 1 || s->queue_depth_threshold > FLOWQ_LIMIT_MAX)
		return config_fail(e,
				   "saturation.queue_depth_threshold: %" PRIu64
				   " is not in [1, FLOWQ_LIMIT_MAX]",
				   s->queue_depth_threshold);
	/* Written so that NaN fails too. */
	if (!(s->kv_cache_util_threshold > 0.0 && s->kv_cache_util_threshold <= 1.0))
		return config_fail(e,
				   "saturation.kv_cache_util_threshold: %s is not in "
				   "(0, 1]",
				   config_fmt_double(num, s->kv_cache_util_threshold));
	if (s->metrics_staleness_ns <= 0)
		return config_fail(e,
				   "saturation.metrics_staleness_ns: %" PRId64
				   " is not > 0",
				   s->metrics_staleness_ns);
	if (!(s->dispatch_cost >= 0.0 && s->dispatch_cost <= CONFIG_DISPATCH_COST_MAX))
		return config_fail(e,
				   "saturation.dispatch_cost: %s is not in [0, 1000000]",
				   config_fmt_double(num, s->dispatch_cost));
	return 0;
}

int
flowq_config_validate(const struct flowq_config *cfg, char *errbuf, size_t errbuf_size)
{
	const struct config_err e = {.buf = errbuf, .size = errbuf_size};
	int rc;

	if (cfg == NULL)
		return config_fail(&e, "config is NULL");
	if (cfg->shards > FLOWQ_MAX_SHARDS)
		return config_fail(&e, "shards: %u exceeds FLOWQ_MAX_SHARDS (%u)",
				   cfg->shards, FLOWQ_MAX_SHARDS);
	if (cfg->mode != FLOWQ_MODE_THREADED && cfg->mode != FLOWQ_MODE_POLLED)
		return config_fail(
			&e, "mode: %d is not FLOWQ_MODE_THREADED or FLOWQ_MODE_POLLED",
			(int)cfg->mode);
	rc = config_check_limits(&e, "", "max_requests", cfg->max_requests, "max_bytes",
				 cfg->max_bytes);
	if (rc != 0)
		return rc;
	if ((rc = config_check_bands(&e, cfg)) != 0)
		return rc;
	/* Checked even when default_band_enabled is false: a template that
	 * is wrong now would fail only later, when someone turns it on. */
	if ((rc = config_check_band(&e, "default_band.", &cfg->default_band)) != 0)
		return rc;
	if ((rc = config_check_limit(&e, "", "flow_max_requests",
				     cfg->flow_max_requests)) != 0 ||
	    (rc = config_check_limit(&e, "", "flow_max_bytes", cfg->flow_max_bytes)) != 0)
		return rc;
	/* FLOWQ_TTL_NONE is INT64_MAX, so "> 0" admits it. 0 would be
	 * circular: a request's ttl_ns 0 means "the engine default". */
	if (cfg->default_ttl_ns <= 0)
		return config_fail(&e,
				   "default_ttl_ns: %" PRId64
				   " is not > 0 (FLOWQ_TTL_NONE "
				   "means no expiry)",
				   cfg->default_ttl_ns);
	if (cfg->flow_gc_timeout_ns <= 0)
		return config_fail(&e, "flow_gc_timeout_ns: %" PRId64 " is not > 0",
				   cfg->flow_gc_timeout_ns);
	if ((rc = config_check_saturation(&e, &cfg->saturation)) != 0)
		return rc;
	if (cfg->displacement == NULL)
		return config_fail(&e, "displacement: is NULL");
	if (flowq_displacement_find(cfg->displacement) == NULL)
		return config_fail(&e, "displacement: unknown displacement policy \"%s\"",
				   cfg->displacement);
	if (cfg->displacement_max_pending == 0 || cfg->displacement_max_pending > FLOWQ_LIMIT_MAX)
		return config_fail(&e,
				   "displacement_max_pending: %" PRIu64
				   " is not in [1, FLOWQ_LIMIT_MAX]",
				   cfg->displacement_max_pending);
	if (cfg->allocator != NULL && cfg->allocator->alloc == NULL)
		return config_fail(&e, "allocator->alloc: is NULL");
	if (cfg->allocator != NULL && cfg->allocator->free == NULL)
		return config_fail(&e, "allocator->free: is NULL");
	/* clock and clock_ctx: any value (NULL = CLOCK_MONOTONIC). */
	if (cfg->registry_buckets == 0 || cfg->registry_buckets > CONFIG_BUCKETS_MAX ||
	    (cfg->registry_buckets & (cfg->registry_buckets - 1)) != 0)
		return config_fail(
			&e, "registry_buckets: %lu is not a power of two in [1, 2^30]",
			cfg->registry_buckets);
	if (cfg->dispatch_batch < 1 || cfg->dispatch_batch > CONFIG_DISPATCH_BATCH_MAX)
		return config_fail(&e, "dispatch_batch: %u is not in [1, %u]",
				   cfg->dispatch_batch, CONFIG_DISPATCH_BATCH_MAX);
	if (cfg->idle_spin_ns < 0 || cfg->idle_spin_ns > CONFIG_IDLE_SPIN_MAX)
		return config_fail(&e, "idle_spin_ns: %lld is not in [0, 1000000000]",
				   (long long)cfg->idle_spin_ns);
	if (cfg->intake_coalesce_ns < 0 || cfg->intake_coalesce_ns > CONFIG_COALESCE_MAX)
		return config_fail(&e, "intake_coalesce_ns: %lld is not in [0, 100000]",
				   (long long)cfg->intake_coalesce_ns);
	if (cfg->errbuf != NULL && cfg->errbuf_size == 0)
		return config_fail(&e,
				   "errbuf_size: 0 with a non-NULL errbuf (no room for "
				   "a message)");
	if (errbuf != NULL && errbuf_size > 0)
		errbuf[0] = '\0';
	return 0;
}

const char *
flowq_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOSPC:
		return "capacity limit reached";
	case -ESHUTDOWN:
		return "engine is shutting down";
	case -EMSGSIZE:
		return "request larger than a byte limit it must fit (in-flight or "
		       "queued)";
	case -EBUSY:
		return "busy (request already submitted, or endpoint report running)";
	case -ESTALE:
		return "stale endpoint report (older than its latest or its staleness "
		       "limit)";
	case -EALREADY:
		return "already done (outcome decided, or already released)";
	case -EINVAL:
		return "invalid argument or configuration";
	case -ENOENT:
		return "no such band, flow, file or config section";
	case -ENOMEM:
		return "out of memory";
	case -ETIMEDOUT:
		return "deadline or TTL already passed";
	case -EFAULT:
		return "NULL argument";
	case -EAGAIN:
		return "could not start a dispatcher thread";
	case -EEXIST:
		return "name already registered";
	case -EIO:
		return "write failed";
	case -EMFILE:
		return "too many open files in the process";
	case -ENFILE:
		return "too many open files in the system";
	case -EFBIG:
		return "input too large";
	case -EACCES:
		return "permission denied";
	case -EISDIR:
		return "is a directory";
	default:
		return "unknown error";
	}
}
