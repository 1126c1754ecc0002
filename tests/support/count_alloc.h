/*
 * The tests' one counting, failing flowq_allocator (unit, conformance and
 * stress tests alike): counts what is outstanding (bytes and blocks) and
 * can be made to fail in three ways, combined:
 *  - fail_after: allocations succeed while allocs < fail_after (set
 *    fail_after = allocs to fail every one from there, allocs + k to allow
 *    k more, ~0ul to never fail);
 *  - every: every every-th attempt fails (0 = off);
 *  - per_million: each attempt fails with that chance, drawn from a
 *    SplitMix64 sequence seeded by test_count_alloc_seed() (the sequence
 *    is shared by all threads: reproducible in a single-threaded test).
 * Thread-safe (atomic counters: engines allocate and free on dispatcher
 * and liburcu threads). A free of more than is outstanding is counted in
 * bad_frees and, in a Criterion test (criterion.h included first), fails
 * the test at once. Header only (static inline), like test_util.h.
 */
#ifndef FLOWQ_TEST_COUNT_ALLOC_H
#define FLOWQ_TEST_COUNT_ALLOC_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <flowq/alloc.h>
#include <flowq/flowq.h>

struct test_count_alloc {
	struct flowq_allocator a;
	/* Bytes and blocks allocated and not freed. */
	_Atomic size_t outstanding;
	_Atomic long blocks;
	/* Calls to the hook, allocations and frees, failed or not (a test can
	 * check that some code does not call it at all). */
	_Atomic unsigned long calls;
	/* Allocations that succeeded; attempts, and those made to fail. */
	_Atomic unsigned long allocs, attempts, failed;
	/* Failure modes (see the top comment). */
	_Atomic unsigned long fail_after;
	_Atomic unsigned long every;
	_Atomic uint32_t per_million;
	_Atomic uint64_t rng;
	/* Frees of more than was outstanding (a double free, a wrong size). */
	_Atomic unsigned long bad_frees;
};

/* Whether attempt number @p n (1-based) is made to fail. */
static inline int
test_count_alloc_fails(struct test_count_alloc *c, unsigned long n)
{
	unsigned long every = atomic_load_explicit(&c->every, memory_order_relaxed);
	uint32_t pm = atomic_load_explicit(&c->per_million, memory_order_relaxed);

	if (atomic_load_explicit(&c->allocs, memory_order_relaxed) >=
	    atomic_load_explicit(&c->fail_after, memory_order_relaxed))
		return 1;
	if (every != 0 && n % every == 0)
		return 1;
	if (pm != 0) {
		/* SplitMix64 (as test_util.h), on a shared atomic state. */
		uint64_t z = atomic_fetch_add_explicit(&c->rng, 0x9e3779b97f4a7c15ull,
						       memory_order_relaxed) +
			     0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		if (z % 1000000u < pm)
			return 1;
	}
	return 0;
}

static inline void *
test_count_alloc_fn(size_t size, size_t align, void *ctx)
{
	struct test_count_alloc *c = ctx;
	void *p;

	atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
	unsigned long n =
		atomic_fetch_add_explicit(&c->attempts, 1, memory_order_relaxed) + 1;
	if (test_count_alloc_fails(c, n)) {
		atomic_fetch_add_explicit(&c->failed, 1, memory_order_relaxed);
		return NULL;
	}
	p = flowq_allocator_libc()->alloc(size, align, NULL);
	if (p != NULL) {
		atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->outstanding, size, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->blocks, 1, memory_order_relaxed);
	}
	return p;
}

static inline void
test_count_free_fn(void *p, size_t size, size_t align, void *ctx)
{
	struct test_count_alloc *c = ctx;
	size_t out = atomic_load_explicit(&c->outstanding, memory_order_relaxed);

	atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
	/* Subtract only what is there: an over-free is counted, not wrapped. */
	do {
		if (out < size) {
			atomic_fetch_add_explicit(&c->bad_frees, 1, memory_order_relaxed);
#ifdef CRITERION_H_
			cr_assert_fail("freed more than allocated");
#endif
			break;
		}
	} while (!atomic_compare_exchange_weak_explicit(&c->outstanding, &out, out - size,
							memory_order_relaxed,
							memory_order_relaxed));
	atomic_fetch_sub_explicit(&c->blocks, 1, memory_order_relaxed);
	flowq_allocator_libc()->free(p, size, align, NULL);
}

/* Nothing outstanding, never failing. */
static inline void
test_count_alloc_init(struct test_count_alloc *c)
{
	memset(c, 0, sizeof(*c));
	c->a.alloc = test_count_alloc_fn;
	c->a.free = test_count_free_fn;
	c->a.ctx = c;
	c->fail_after = ~0ul;
}

/* Start the random failures' sequence at @p seed. */
static inline void
test_count_alloc_seed(struct test_count_alloc *c, uint64_t seed)
{
	atomic_store_explicit(&c->rng, seed, memory_order_relaxed);
}

/* Allow @p k more allocations, then fail every one (fail_after mode). */
static inline void
test_count_alloc_budget(struct test_count_alloc *c, unsigned long k)
{
	atomic_store(&c->fail_after, atomic_load(&c->allocs) + k);
}

/*
 * flowq_engine_create(@p cfg) (whose allocator is @p c's) with each of
 * create's allocations failing in turn, until one succeeds: every k-th
 * failure would never let a create of k or more allocations through, so
 * create's own failure points are walked this way, and the failure mode
 * (every, per_million) is suspended meanwhile and restored after.
 * @return 0 with *r_engine set, or the first error other than -ENOMEM.
 * *r_enomem counts the creates that failed; *r_leaky those that left
 * blocks allocated (must be 0).
 */
static inline int
test_count_alloc_create(struct test_count_alloc *c, const struct flowq_config *cfg,
			struct flowq_engine **r_engine, unsigned *r_enomem,
			unsigned *r_leaky)
{
	unsigned long every = atomic_load(&c->every);
	uint32_t pm = atomic_load(&c->per_million);
	long blocks = atomic_load(&c->blocks);
	int rc;

	atomic_store(&c->every, 0);
	atomic_store(&c->per_million, 0);
	*r_enomem = *r_leaky = 0;
	for (unsigned long j = 0;; j++) {
		test_count_alloc_budget(c, j);
		rc = flowq_engine_create(cfg, r_engine);
		if (rc != -ENOMEM)
			break;
		(*r_enomem)++;
		*r_leaky += atomic_load(&c->blocks) != blocks;
	}
	atomic_store(&c->fail_after, ~0ul);
	atomic_store(&c->every, every);
	atomic_store(&c->per_million, pm);
	return rc;
}

#endif /* FLOWQ_TEST_COUNT_ALLOC_H */
