/*
 * Unit tests for core/capacity.c: global capacity with per-CPU credit.
 *
 * Single-threaded: these pin down the exact accounting (I2 conservation and
 * I3 exactness at the limit, whichever slot holds the credit), the refill,
 * steal, spill and large-request paths, the rollback of the request
 * dimension, and init's errors. Slots are chosen explicitly through the
 * flowq__cap_reserve_on / flowq__cap_release_on test hooks, so every credit
 * movement is deterministic. Concurrency (I1 at every step) is the job of
 * tests/stress/stress_capacity.c, which also runs under TSan.
 */
#define _GNU_SOURCE /* sched_setaffinity() */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/rseq.h>
#include <stdbool.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>

#include "alloc_internal.h"
#include "capacity.h"
#include "test_util.h"

static struct flowq__cap cap;

/** Sum of the free credit of dimension @p d: global pool plus every slot. */
static uint64_t
free_credit(int d)
{
	uint64_t v[FLOWQ__CAP_NDIM], sum;

	flowq__cap_credit(&cap, FLOWQ__CAP_GLOBAL, &v[0], &v[1]);
	sum = v[d];
	for (unsigned i = 0; i < cap.nslots; i++) {
		flowq__cap_credit(&cap, i, &v[0], &v[1]);
		sum += v[d];
	}
	return sum;
}

/** I2: free credit + outstanding == limit in each limited dimension, and
 * flowq__cap_in_use() reports the outstanding amounts exactly. */
static void
assert_conserved(uint64_t out_req, uint64_t out_bytes)
{
	uint64_t used_req = ~0ull, used_bytes = ~0ull;

	if (cap.limit[FLOWQ__CAP_REQ] != 0)
		cr_assert_eq(free_credit(FLOWQ__CAP_REQ) + out_req,
			     cap.limit[FLOWQ__CAP_REQ],
			     "requests: free %llu + outstanding %llu != limit %llu",
			     (unsigned long long)free_credit(FLOWQ__CAP_REQ),
			     (unsigned long long)out_req,
			     (unsigned long long)cap.limit[FLOWQ__CAP_REQ]);
	if (cap.limit[FLOWQ__CAP_BYTES] != 0)
		cr_assert_eq(free_credit(FLOWQ__CAP_BYTES) + out_bytes,
			     cap.limit[FLOWQ__CAP_BYTES],
			     "bytes: free %llu + outstanding %llu != limit %llu",
			     (unsigned long long)free_credit(FLOWQ__CAP_BYTES),
			     (unsigned long long)out_bytes,
			     (unsigned long long)cap.limit[FLOWQ__CAP_BYTES]);
	flowq__cap_in_use(&cap, &used_req, &used_bytes);
	cr_assert_eq(used_req, cap.limit[FLOWQ__CAP_REQ] ? out_req : 0);
	cr_assert_eq(used_bytes, cap.limit[FLOWQ__CAP_BYTES] ? out_bytes : 0);
}

/** Credit of dimension @p d held by @p slot (or FLOWQ__CAP_GLOBAL). */
static uint64_t
credit(unsigned slot, int d)
{
	uint64_t v[FLOWQ__CAP_NDIM];

	flowq__cap_credit(&cap, slot, &v[0], &v[1]);
	return v[d];
}

/** Initialize the test's cap with explicit limits, slots and chunks. */
static void
cap_setup(uint64_t limit_req, uint64_t limit_bytes, unsigned nslots, uint64_t chunk_req,
	  uint64_t chunk_bytes)
{
	struct flowq__cap_config cfg = {
		.limit_req = limit_req,
		.limit_bytes = limit_bytes,
		.nslots = nslots,
		.chunk_req = chunk_req,
		.chunk_bytes = chunk_bytes,
	};

	cr_assert_eq(flowq__cap_init(&cap, flowq_allocator_libc(), &cfg), 0);
}

static void
teardown(void)
{
	if (cap.slots != NULL)
		flowq__cap_fini(&cap);
}

TestSuite(capacity, .fini = teardown);

/* ---- init ----------------------------------------------------------------- */

struct counting {
	unsigned allocs, frees;
	size_t size, align;
	bool fail;
};

static void *
counting_alloc(size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->allocs++;
	c->size = size;
	c->align = align;
	return c->fail ? NULL : flowq_allocator_libc()->alloc(size, align, NULL);
}

static void
counting_free(void *p, size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->frees++;
	cr_assert_eq(size, c->size);
	cr_assert_eq(align, c->align);
	flowq_allocator_libc()->free(p, size, align, NULL);
}

Test(capacity, init_rejects_bad_arguments_without_allocating)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq_allocator half = {counting_alloc, NULL, &c};
	struct flowq__cap_config ok = {.limit_req = 10, .limit_bytes = 1000, .nslots = 2};
	struct flowq__cap_config bad;

	cr_assert_eq(flowq__cap_init(NULL, &a, &ok), -EINVAL, "cap NULL");
	cr_assert_eq(flowq__cap_init(&cap, &a, NULL), -EINVAL, "cfg NULL");
	cr_assert_eq(flowq__cap_init(&cap, NULL, &ok), -EINVAL, "allocator NULL");
	cr_assert_eq(flowq__cap_init(&cap, &half, &ok), -EINVAL, "allocator incomplete");
	bad = ok;
	bad.limit_req = FLOWQ__CAP_LIMIT_MAX + 1;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "request limit too large");
	bad = ok;
	bad.limit_bytes = UINT64_MAX;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "byte limit too large");
	bad = ok;
	bad.nslots = FLOWQ__CAP_MAX_SLOTS + 1;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "too many slots");
	bad = ok;
	bad.chunk_req = 11;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "chunk above limit");
	bad = ok;
	bad.limit_bytes = 0;
	bad.chunk_bytes = 64;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "chunk, unlimited");
	bad = ok;
	bad.limit_req = (1u << 24) - 1; /* 24 bits */
	bad.limit_bytes = 1ull << 40;   /* 41 bits: 65 in all */
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "limits need 65 bits");
	bad.limit_req = 1u << 24; /* 25 bits */
	bad.limit_bytes = (1ull << 40) - 1;
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "limits need 65 bits");
	bad.limit_req = FLOWQ__CAP_LIMIT_MAX; /* 63 bits */
	bad.limit_bytes = 2;                  /* 2 bits */
	cr_assert_eq(flowq__cap_init(&cap, &a, &bad), -EINVAL, "limits need 65 bits");
	cr_assert_eq(c.allocs, 0, "no argument error reaches the allocator");
}

/*
 * The slot word packs both dimensions: the two limits together may use all 64
 * bits, and either alone may use FLOWQ__CAP_LIMIT_MAX.
 */
Test(capacity, init_accepts_limits_that_fill_the_slot_word)
{
	struct flowq__cap_config cfg = {
		.limit_req = (1u << 24) - 1,
		.limit_bytes = (1ull << 40) - 1,
		.nslots = 2,
	};

	cr_assert_eq(flowq__cap_init(&cap, flowq_allocator_libc(), &cfg), 0, "24 + 40");
	cr_assert_eq(cap.shift, 40);
	flowq__cap_fini(&cap);
	cfg.limit_req = FLOWQ__CAP_LIMIT_MAX;
	cfg.limit_bytes = 0;
	cr_assert_eq(flowq__cap_init(&cap, flowq_allocator_libc(), &cfg), 0,
		     "requests alone up to the maximum");
	flowq__cap_fini(&cap);
	cfg.limit_req = 0;
	cfg.limit_bytes = FLOWQ__CAP_LIMIT_MAX;
	cr_assert_eq(flowq__cap_init(&cap, flowq_allocator_libc(), &cfg), 0,
		     "bytes alone up to the maximum");
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, FLOWQ__CAP_LIMIT_MAX), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 1), -ENOSPC);
	flowq__cap_release_on(&cap, 0, 1, FLOWQ__CAP_LIMIT_MAX);
	assert_conserved(0, 0);
}

/*
 * Both fields at their widest values in one word (C3): no carry, no borrow
 * between them, whatever moves through the slot.
 */
Test(capacity, full_fields_in_one_word_do_not_interfere)
{
	const uint64_t lr = (1u << 24) - 1, lb = (1ull << 40) - 1;

	/* One slot whose chunks are the whole limits: the slot can hold it all. */
	cap_setup(lr, lb, 1, lr, lb);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 1000), 0);
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), lr - 1, "a whole-limit chunk");
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), lb - 1000);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 0);
	flowq__cap_release_on(&cap, 0, 1, 1000);
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), lr, "every bit of both fields set");
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), lb);
	assert_conserved(0, 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, lb), 0, "all the bytes, one CAS");
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), lr - 1);
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 1), -ENOSPC,
		     "no borrow from requests");
	assert_conserved(1, lb);
	for (uint64_t i = 1; i < lr; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), -ENOSPC, "no borrow from bytes");
	assert_conserved(lr, lb);
	flowq__cap_release_on(&cap, 0, lr, lb);
	assert_conserved(0, 0);
}

Test(capacity, init_allocation_failure_is_enomem_and_leaks_nothing)
{
	struct counting c = {.fail = true};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq__cap_config cfg = {.limit_req = 10, .nslots = 3};

	cr_assert_eq(flowq__cap_init(&cap, &a, &cfg), -ENOMEM);
	cr_assert_eq(c.allocs, 1);
	cr_assert_eq(c.frees, 0, "nothing was allocated, nothing to free");
	cap.slots = NULL; /* teardown must not free */
}

Test(capacity, slots_are_cache_lines_from_the_hook_and_fini_frees_them)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq__cap_config cfg = {.limit_req = 10, .nslots = 3};

	cr_assert_eq(flowq__cap_init(&cap, &a, &cfg), 0);
	cr_assert_eq(c.allocs, 1);
	cr_assert_eq(c.size, 3 * FLOWQ_CACHE_LINE);
	cr_assert_eq(c.align, FLOWQ_CACHE_LINE);
	cr_assert_eq((uintptr_t)cap.slots % FLOWQ_CACHE_LINE, 0);
	flowq__cap_fini(&cap);
	cr_assert_eq(c.frees, 1);
	cr_assert_null(cap.slots);
}

Test(capacity, defaults_scale_chunks_to_the_limit)
{
	cap_setup(1000, 10, 2, 0, 0);
	cr_assert_eq(cap.chunk[FLOWQ__CAP_REQ], FLOWQ__CAP_CHUNK_REQ, "1000 / 8 > 64");
	cr_assert_eq(cap.chunk[FLOWQ__CAP_BYTES], 1, "10 / 8 rounds to 1");
	cr_assert_eq(cap.exact_below[FLOWQ__CAP_REQ], 2 * FLOWQ__CAP_CHUNK_REQ);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 1000,
		     "all credit global");
	flowq__cap_fini(&cap);

	cap_setup(1 << 20, 1ull << 40, 0, 0, 0); /* 21 + 41 bits: fit one word */
	cr_assert_geq(cap.nslots, 1, "nslots 0 = configured CPUs");
	cr_assert_leq(cap.nslots, FLOWQ__CAP_MAX_SLOTS);
	cr_assert_eq(cap.chunk[FLOWQ__CAP_BYTES], FLOWQ__CAP_CHUNK_BYTES);
	assert_conserved(0, 0);
}

/* ---- unlimited dimensions ------------------------------------------------- */

Test(capacity, unlimited_dimensions_cost_nothing)
{
	cap_setup(0, 0, 2, 0, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(flowq__cap_reserve(&cap, UINT64_MAX), 0);
	/* The dispatcher's variant: nothing moved, nothing to wake for. */
	bool moved = true;
	cr_assert_eq(flowq__cap_reserve_moved(&cap, UINT64_MAX, &moved), 0);
	cr_assert_not(moved, "a reserve without limits moves no credit");
	flowq__cap_release(&cap, 1000, 12345);
	for (unsigned s = 0; s < 2; s++) {
		cr_assert_eq(credit(s, FLOWQ__CAP_REQ), 0, "no slot is ever written");
		cr_assert_eq(credit(s, FLOWQ__CAP_BYTES), 0);
	}
	assert_conserved(0, 0);
}

Test(capacity, unlimited_bytes_limits_only_requests)
{
	cap_setup(3, 0, 2, 1, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, (unsigned)i, 1ull << 50), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), -ENOSPC);
	assert_conserved(3, 0);
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES) + credit(1, FLOWQ__CAP_BYTES), 0);
}

Test(capacity, unlimited_requests_limits_only_bytes)
{
	cap_setup(0, 100, 2, 0, 10);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 60), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 41), -ENOSPC);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 40), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 0), 0, "0 bytes always fits");
	assert_conserved(0, 100);
}

/* ---- exactness (I3) and conservation (I2) ---------------------------------- */

Test(capacity, fill_to_exactly_the_limit_with_credit_spread_over_slots)
{
	/* 4 slots, chunks of 2 requests / 100 bytes, limit 20 / 1000. */
	cap_setup(20, 1000, 4, 2, 100);
	/* Scatter the credit: reserve on slot 0, release on slots 1..3. */
	for (int i = 0; i < 12; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 50), 0);
	flowq__cap_release_on(&cap, 1, 3, 150);
	flowq__cap_release_on(&cap, 2, 4, 200);
	flowq__cap_release_on(&cap, 3, 1, 50);
	assert_conserved(4, 200);
	cr_assert_gt(credit(1, FLOWQ__CAP_REQ) + credit(2, FLOWQ__CAP_REQ) +
			     credit(3, FLOWQ__CAP_REQ),
		     0, "credit sits in other slots");
	/* Fill from slot 0 only: every unit of credit must be found. */
	for (int i = 4; i < 20; i++) {
		cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 50), 0, "reserve %d", i);
		assert_conserved((uint64_t)i + 1, 50 * ((uint64_t)i - 4) + 250);
	}
	cr_assert_eq(free_credit(FLOWQ__CAP_REQ), 0);
	cr_assert_eq(free_credit(FLOWQ__CAP_BYTES), 0);
	for (unsigned s = 0; s < 4; s++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, s, 0), -ENOSPC,
			     "one more fails");
	assert_conserved(20, 1000);
	/* Release everything on one slot, then the limit is reachable again. */
	flowq__cap_release_on(&cap, 3, 20, 1000);
	assert_conserved(0, 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, (unsigned)i * 7, 50), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 0), -ENOSPC);
}

Test(capacity, bytes_fill_exactly_whatever_the_sizes)
{
	cap_setup(100, 1000, 3, 4, 64);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 333), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 333), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 2, 333), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 2), -ENOSPC);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 1), 0, "the last byte");
	cr_assert_eq(flowq__cap_reserve_on(&cap, 2, 1), -ENOSPC);
	assert_conserved(4, 1000);
}

/*
 * Model check: a long random single-threaded sequence of reserves and
 * releases on random slots. I3: a reserve succeeds exactly when the
 * outstanding amounts plus the request fit the limits. I2 after every step.
 */
Test(capacity, random_sequences_are_exact_at_every_step)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		uint64_t rng = seed, out_req = 0, out_bytes = 0;
		uint64_t sizes[64];
		unsigned nheld = 0;
		unsigned nslots = 1 + (unsigned)(test_rng_next(&rng) % 5);
		uint64_t limit_req = 1 + test_rng_next(&rng) % 40;
		uint64_t limit_bytes = 1 + test_rng_next(&rng) % 5000;

		cap_setup(limit_req, limit_bytes, nslots,
			  1 + test_rng_next(&rng) % limit_req,
			  1 + test_rng_next(&rng) % limit_bytes);
		for (int step = 0; step < 2000; step++) {
			uint64_t r = test_rng_next(&rng);
			unsigned slot = (unsigned)(r >> 32) % (nslots + 2);

			if ((r & 3) != 0 && nheld < 64) {
				uint64_t b = (r >> 8) % (limit_bytes / 4 + 2);
				bool fits = out_req + 1 <= limit_req &&
					    out_bytes + b <= limit_bytes;
				int rc = flowq__cap_reserve_on(&cap, slot, b);

				cr_assert_eq(rc, fits ? 0 : -ENOSPC,
					     "seed %llu step %d: reserve %llu bytes with "
					     "%llu/%llu req %llu/%llu bytes out",
					     (unsigned long long)seed, step,
					     (unsigned long long)b,
					     (unsigned long long)out_req,
					     (unsigned long long)limit_req,
					     (unsigned long long)out_bytes,
					     (unsigned long long)limit_bytes);
				if (rc == 0) {
					sizes[nheld++] = b;
					out_req++;
					out_bytes += b;
				}
			} else if (nheld > 0) {
				/* Release a batch of the newest reservations. */
				unsigned k = 1 + (unsigned)((r >> 16) % nheld);
				uint64_t sum = 0;

				for (unsigned j = 0; j < k; j++)
					sum += sizes[--nheld];
				flowq__cap_release_on(&cap, slot, k, sum);
				out_req -= k;
				out_bytes -= sum;
			}
			assert_conserved(out_req, out_bytes);
		}
		flowq__cap_fini(&cap);
	}
}

/* ---- the individual paths --------------------------------------------------- */

Test(capacity, refill_takes_a_chunk_while_plentiful_then_exact_amounts)
{
	/* exact_below = 2 slots * 4 = 8. */
	cap_setup(10, 0, 2, 4, 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), 0);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 6, "a chunk of 4 taken");
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 3, "the chunk's rest is in the slot");
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 0), 0);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 5,
		     "below exact_below: exactly one taken");
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), 0);
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 2, "slot credit used first");
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 5, "global untouched");
	assert_conserved(3, 0);
}

Test(capacity, steal_takes_other_slots_credit_when_the_pool_is_dry)
{
	cap_setup(8, 0, 2, 4, 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 0), 0);
	cr_assert_eq(free_credit(FLOWQ__CAP_REQ), 0);
	flowq__cap_release_on(&cap, 0, 4, 0); /* 4 <= 2 chunks: stays in slot 0 */
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 4);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 0);

	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 0), 0, "stolen from slot 0");
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 0, "the victim is emptied");
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), 3,
		     "the surplus is pooled globally");
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 0);
	assert_conserved(5, 0);
}

Test(capacity, steal_of_one_dimension_leaves_the_other_field_in_the_slot)
{
	cap_setup(10, 1000, 2, 4, 100);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 50), 0, "both refilled by chunks");
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 3);
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), 50);
	/* 950 > chunk: from the pool (900), which needs slot 0's 50 bytes. */
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 950), 0);
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), 0, "the byte field was stolen");
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 3, "the request field stays");
	assert_conserved(2, 1000);
}

Test(capacity, steal_combines_slots_and_the_pool_for_a_large_request)
{
	/* Bytes: 3 slots each holding some credit, the pool a little. */
	cap_setup(100, 300, 3, 1, 50);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 300), 0, "large: straight from pool");
	flowq__cap_release_on(&cap, 0, 0, 40);
	flowq__cap_release_on(&cap, 1, 0, 45);
	flowq__cap_release_on(&cap, 2, 0, 50);
	flowq__cap_release_on(&cap, 0, 0, 60); /* > chunk: to the pool */
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_BYTES), 60);
	assert_conserved(1, 105);
	/* 195 free in 4 places; one reserve of exactly 195 must find it all. */
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 196), -ENOSPC);
	assert_conserved(1, 105);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 195), 0);
	cr_assert_eq(free_credit(FLOWQ__CAP_BYTES), 0);
	assert_conserved(2, 300);
}

Test(capacity, large_requests_bypass_the_slots)
{
	cap_setup(100, 1 << 20, 2, 4, 64 * 1024);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 200 * 1024), 0);
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_BYTES), (1 << 20) - 200 * 1024,
		     "exactly the request taken from the pool");
	cr_assert_eq(credit(0, FLOWQ__CAP_BYTES), 0, "no chunk left in the slot");
	flowq__cap_release_on(&cap, 1, 1, 200 * 1024);
	cr_assert_eq(credit(1, FLOWQ__CAP_BYTES), 0, "a large release bypasses the slot");
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_BYTES), 1 << 20);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, (1 << 20) + 1), -ENOSPC,
		     "larger than the limit never fits");
	assert_conserved(0, 0);
}

Test(capacity, release_spills_a_slot_above_two_chunks)
{
	cap_setup(100, 0, 2, 4, 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), 0);
	/* Credit left in slot 0 by its last refill; slot 1 starts empty. */
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 0);
	for (uint64_t i = 1; i <= 8; i++) {
		flowq__cap_release_on(&cap, 1, 1, 0);
		cr_assert_eq(credit(1, FLOWQ__CAP_REQ), i, "up to two chunks stay");
	}
	uint64_t before = credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ);

	flowq__cap_release_on(&cap, 1, 1, 0);
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 4, "spilled down to one chunk");
	cr_assert_eq(credit(FLOWQ__CAP_GLOBAL, FLOWQ__CAP_REQ), before + 5);
	/* A batch release that lands above two chunks spills the same way. */
	flowq__cap_release_on(&cap, 1, 4, 0);
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 8, "exactly two chunks: no spill");
	flowq__cap_release_on(&cap, 1, 3, 0);
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 4);
	assert_conserved(20 - 9 - 4 - 3, 0);
}

Test(capacity, bytes_failure_rolls_back_the_request)
{
	cap_setup(10, 100, 2, 2, 10);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 60), 0);
	assert_conserved(1, 60);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 1, 50), -ENOSPC);
	assert_conserved(1, 60);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 101), -ENOSPC, "above the limit");
	assert_conserved(1, 60);
	/* The requests are all still there: 9 more fit with 0..40 bytes. */
	for (int i = 0; i < 9; i++)
		cr_assert_eq(flowq__cap_reserve_on(&cap, (unsigned)i, i < 4 ? 10 : 0), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 0), -ENOSPC);
	assert_conserved(10, 100);
}

Test(capacity, requests_failure_takes_no_bytes)
{
	cap_setup(1, 100, 1, 0, 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 10), 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 0, 10), -ENOSPC);
	assert_conserved(1, 10);
}

Test(capacity, public_calls_use_the_current_cpu_and_stay_exact)
{
	cap_setup(50, 5000, 0, 0, 0);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(flowq__cap_reserve(&cap, 100), 0);
	cr_assert_eq(flowq__cap_reserve(&cap, 0), -ENOSPC);
	assert_conserved(50, 5000);
	flowq__cap_release(&cap, 20, 2000);
	assert_conserved(30, 3000);
	flowq__cap_release(&cap, 30, 3000);
	assert_conserved(0, 0);
}

Test(capacity, slot_numbers_wrap_modulo_the_slot_count)
{
	cap_setup(10, 0, 3, 2, 0);
	cr_assert_eq(flowq__cap_reserve_on(&cap, 4, 0), 0);
	cr_assert_eq(credit(1, FLOWQ__CAP_REQ), 1, "slot 4 is slot 1");
	flowq__cap_release_on(&cap, 3000000000u, 1, 0); /* slot 0 */
	cr_assert_eq(credit(0, FLOWQ__CAP_REQ), 1);
	assert_conserved(0, 0);
}

/*
 * flowq__cpu_current() reads the CPU from glibc's rseq area, or asks
 * sched_getcpu() when glibc registered none: CTest runs this test a second
 * time as unit_capacity_without_rseq, with GLIBC_TUNABLES=
 * glibc.pthread.rseq=0 and FLOWQ_TEST_RSEQ_OFF=1 (checked below, so that
 * the run does take the fallback). Either way, pinned to a CPU, the thread
 * is told that CPU.
 */
Test(capacity, current_cpu_is_the_cpu_the_thread_is_pinned_to)
{
	cpu_set_t all, one;
	unsigned tried = 0;

	if (getenv("FLOWQ_TEST_RSEQ_OFF") != NULL)
		cr_assert_eq(__rseq_size, 0,
			     "rseq is registered: the fallback is not tested");
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		/* The kernel moves the calling thread before it returns. */
		cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
		cr_assert_eq(flowq__cpu_current(), (unsigned)cpu);
		tried++;
	}
	cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
	cr_assert_gt(tried, 0);
}
