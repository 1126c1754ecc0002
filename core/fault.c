/*
 * Fault injection (core/fault.h): compiled only with FLOWQ_FAULT_INJECTION.
 *
 * State is process-wide (points sit in code that has no engine at hand,
 * e.g. capacity.c). The armed mask is the only word a hit reads while
 * unarmed; the configuration beside it is written by arm/disarm only while
 * no hit runs (fault.h: the synchronization note), and read relaxed.
 * Each thread draws from its own SplitMix64 generator, seeded from the
 * configured seed and the order in which threads first hit an armed point,
 * so a run's stalls are reproducible per thread up to the scheduler's
 * order of first hits.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <time.h>

#include "fault.h"
#include "mono.h"

_Atomic uint64_t flowq__fault_mask;
_Atomic uint64_t flowq__fault_fail_mask;

static struct {
	_Atomic(flowq__fault_fn *) fn;
	_Atomic(void *) ctx;
	/* The random stall's settings (read relaxed; see above). */
	_Atomic uint32_t per_million;
	_Atomic int64_t min_ns, max_ns;
	_Atomic bool spin;
	_Atomic uint64_t seed;
	/* Incremented at arm: a thread re-seeds when it sees a new one. */
	_Atomic uint64_t epoch;
	_Atomic uint64_t threads;
	_Atomic uint64_t hits[FLOWQ__FAULT_COUNT];
	_Atomic uint64_t stalls, stall_ns;
	/* Fail points: hits still to let through, then hits still to fail;
	 * and the failures made. */
	_Atomic uint64_t fail_skip[FLOWQ__FAULT_COUNT];
	_Atomic uint64_t fail_left[FLOWQ__FAULT_COUNT];
	_Atomic uint64_t failed[FLOWQ__FAULT_COUNT];
} fault;

static _Thread_local struct {
	uint64_t rng;
	uint64_t epoch;
	int64_t resumed_ns;
} self;

static const char *const names[FLOWQ__FAULT_COUNT] = {
	"D_ROUND_START",  "D_AFTER_INTAKE",  "D_BEFORE_DISPATCH", "D_CLAIMED",
	"D_BEFORE_SLEEP", "D_AFTER_WAKE",    "S_CLAIMED",         "S_QUEUED",
	"C_WON",          "CAP_IN_HAND",     "W_TAKEN",           "L_DEAD",
	"L_MADE",         "L_LOST",          "E_LFHT_NEW",        "E_THREAD_CREATE",
};

/* SplitMix64 (Steele, Lea, Flood, OOPSLA 2014). */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The random stall: with probability per_million / 10^6, sleep or spin for
 * a uniform time in [min_ns, max_ns]. */
static void
stall_fn(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	uint64_t epoch = atomic_load_explicit(&fault.epoch, memory_order_relaxed);
	if (self.epoch != epoch) {
		uint64_t k = atomic_fetch_add_explicit(&fault.threads, 1,
						       memory_order_relaxed);
		self.rng = atomic_load_explicit(&fault.seed, memory_order_relaxed) ^
			   (k + 1) * 0xd1b54a32d192ed03ull;
		self.epoch = epoch;
	}
	uint64_t r = rng_next(&self.rng);
	if (r % 1000000u >=
	    atomic_load_explicit(&fault.per_million, memory_order_relaxed))
		return;
	int64_t lo = atomic_load_explicit(&fault.min_ns, memory_order_relaxed);
	int64_t hi = atomic_load_explicit(&fault.max_ns, memory_order_relaxed);
	int64_t d =
		lo +
		(hi > lo ? (int64_t)(rng_next(&self.rng) % (uint64_t)(hi - lo + 1)) : 0);
	int64_t start = flowq__mono_ns(), end = start + d;
	if (atomic_load_explicit(&fault.spin, memory_order_relaxed)) {
		while (flowq__mono_ns() < end)
			;
	} else {
		struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	self.resumed_ns = flowq__mono_ns();
	atomic_fetch_add_explicit(&fault.stalls, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&fault.stall_ns, (uint64_t)(self.resumed_ns - start),
				  memory_order_relaxed);
}

void
flowq__fault_hit(enum flowq__fault_point p)
{
	if ((unsigned)p >= FLOWQ__FAULT_COUNT)
		return;
	atomic_fetch_add_explicit(&fault.hits[p], 1, memory_order_relaxed);
	flowq__fault_fn *fn = atomic_load_explicit(&fault.fn, memory_order_acquire);
	if (fn)
		fn(p, atomic_load_explicit(&fault.ctx, memory_order_relaxed));
}

static void
arm(uint64_t mask, flowq__fault_fn *fn, void *ctx)
{
	atomic_store_explicit(&flowq__fault_mask, 0, memory_order_relaxed);
	atomic_store_explicit(&fault.ctx, ctx, memory_order_relaxed);
	atomic_store_explicit(&fault.fn, fn, memory_order_release);
	atomic_fetch_add_explicit(&fault.epoch, 1, memory_order_relaxed);
	atomic_store_explicit(&fault.threads, 0, memory_order_relaxed);
	atomic_store_explicit(&flowq__fault_mask, fn ? mask : 0, memory_order_release);
}

void
flowq__fault_stall_arm(const struct flowq__fault_stall *cfg)
{
	atomic_store_explicit(&fault.per_million,
			      cfg->per_million > 1000000u ? 1000000u : cfg->per_million,
			      memory_order_relaxed);
	atomic_store_explicit(&fault.min_ns, cfg->min_ns < 0 ? 0 : cfg->min_ns,
			      memory_order_relaxed);
	atomic_store_explicit(&fault.max_ns,
			      cfg->max_ns < cfg->min_ns ? cfg->min_ns : cfg->max_ns,
			      memory_order_relaxed);
	atomic_store_explicit(&fault.spin, cfg->spin, memory_order_relaxed);
	atomic_store_explicit(&fault.seed, cfg->seed, memory_order_relaxed);
	arm(cfg->mask, stall_fn, NULL);
}

void
flowq__fault_hook_arm(uint64_t mask, flowq__fault_fn *fn, void *ctx)
{
	arm(mask, fn, ctx);
}

/* Take one unit from @p *w if it holds any (hits on several threads). */
static bool
take_one(_Atomic uint64_t *w)
{
	uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
	while (v != 0) {
		uint64_t next = v == UINT64_MAX ? v : v - 1; /* UINT64_MAX: for ever */
		if (atomic_compare_exchange_weak_explicit(
			    w, &v, next, memory_order_relaxed, memory_order_relaxed))
			return true;
	}
	return false;
}

bool
flowq__fault_fail_hit(enum flowq__fault_point p)
{
	if ((unsigned)p >= FLOWQ__FAULT_COUNT)
		return false;
	atomic_fetch_add_explicit(&fault.hits[p], 1, memory_order_relaxed);
	if (take_one(&fault.fail_skip[p]) || !take_one(&fault.fail_left[p]))
		return false;
	atomic_fetch_add_explicit(&fault.failed[p], 1, memory_order_relaxed);
	return true;
}

void
flowq__fault_fail_arm(enum flowq__fault_point p, uint64_t skip, uint64_t n)
{
	if ((unsigned)p >= FLOWQ__FAULT_COUNT)
		return;
	atomic_store_explicit(&fault.fail_skip[p], skip, memory_order_relaxed);
	atomic_store_explicit(&fault.fail_left[p], n, memory_order_relaxed);
	atomic_fetch_or_explicit(&flowq__fault_fail_mask, UINT64_C(1) << p,
				 memory_order_release);
}

uint64_t
flowq__fault_failed(enum flowq__fault_point p)
{
	return (unsigned)p < FLOWQ__FAULT_COUNT
		       ? atomic_load_explicit(&fault.failed[p], memory_order_relaxed)
		       : 0;
}

void
flowq__fault_disarm(void)
{
	arm(0, NULL, NULL);
	atomic_store_explicit(&flowq__fault_fail_mask, 0, memory_order_relaxed);
	for (unsigned i = 0; i < FLOWQ__FAULT_COUNT; i++) {
		atomic_store_explicit(&fault.fail_skip[i], 0, memory_order_relaxed);
		atomic_store_explicit(&fault.fail_left[i], 0, memory_order_relaxed);
	}
}

void
flowq__fault_reset(void)
{
	flowq__fault_disarm();
	for (unsigned i = 0; i < FLOWQ__FAULT_COUNT; i++) {
		atomic_store_explicit(&fault.hits[i], 0, memory_order_relaxed);
		atomic_store_explicit(&fault.failed[i], 0, memory_order_relaxed);
	}
	atomic_store_explicit(&fault.stalls, 0, memory_order_relaxed);
	atomic_store_explicit(&fault.stall_ns, 0, memory_order_relaxed);
}

uint64_t
flowq__fault_hits(enum flowq__fault_point p)
{
	return (unsigned)p < FLOWQ__FAULT_COUNT
		       ? atomic_load_explicit(&fault.hits[p], memory_order_relaxed)
		       : 0;
}

uint64_t
flowq__fault_stalls(uint64_t *r_total_ns)
{
	if (r_total_ns)
		*r_total_ns = atomic_load_explicit(&fault.stall_ns, memory_order_relaxed);
	return atomic_load_explicit(&fault.stalls, memory_order_relaxed);
}

int64_t
flowq__fault_thread_resumed_ns(void)
{
	return self.resumed_ns;
}

const char *
flowq__fault_name(enum flowq__fault_point p)
{
	return (unsigned)p < FLOWQ__FAULT_COUNT ? names[p] : "?";
}
