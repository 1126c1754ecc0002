/*
 * Unit tests for the allocator hook (flowq/alloc.h, core/alloc_internal.h):
 * the libc default and the argument checks every internal allocation passes.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>

#include "alloc_internal.h"

Test(alloc, libc_allocator_is_complete_and_static)
{
	const struct flowq_allocator *a = flowq_allocator_libc();

	cr_assert_not_null(a);
	cr_assert_eq(a, flowq_allocator_libc(), "one static instance");
	cr_assert(flowq__allocator_valid(a));
}

Test(alloc, libc_allocator_honours_every_alignment)
{
	const struct flowq_allocator *a = flowq_allocator_libc();

	for (size_t align = 1; align <= FLOWQ__ALLOC_MAX_ALIGN; align *= 2) {
		/* Sizes that are and are not multiples of the alignment. */
		size_t sizes[] = {1, align, align + 1, 3 * align - 1};

		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			unsigned char *p = flowq__alloc(a, sizes[i], align);

			cr_assert_not_null(p, "size %zu align %zu", sizes[i], align);
			cr_assert_eq((uintptr_t)p % align, 0, "size %zu align %zu",
				     sizes[i], align);
			memset(p, 0xa5, sizes[i]); /* ASan checks the bounds */
			flowq__free(a, p, sizes[i], align);
		}
	}
}

struct counting {
	unsigned allocs, frees;
	size_t last_size, last_align;
	bool fail;
};

static void *
counting_alloc(size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->allocs++;
	c->last_size = size;
	c->last_align = align;
	return c->fail ? NULL : flowq_allocator_libc()->alloc(size, align, NULL);
}

static void
counting_free(void *p, size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->frees++;
	cr_assert_eq(size, c->last_size, "free gets the size that was allocated");
	cr_assert_eq(align, c->last_align, "free gets the alignment that was asked");
	flowq_allocator_libc()->free(p, size, align, NULL);
}

Test(alloc, bad_arguments_never_reach_the_hook)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};

	cr_assert_null(flowq__alloc(&a, 0, 8), "size 0");
	cr_assert_null(flowq__alloc(&a, 8, 0), "align 0");
	cr_assert_null(flowq__alloc(&a, 8, 24), "align not a power of two");
	cr_assert_null(flowq__alloc(&a, 8, 2 * FLOWQ__ALLOC_MAX_ALIGN), "align too large");
	cr_assert_null(flowq__alloc(&a, SIZE_MAX, 64), "size would overflow");
	cr_assert_eq(c.allocs, 0);
	flowq__free(&a, NULL, 8, 8);
	cr_assert_eq(c.frees, 0, "NULL is not passed to the hook");
}

Test(alloc, hook_gets_size_and_alignment_and_failures_come_back)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	void *p;

	p = flowq__alloc(&a, 100, 64);
	cr_assert_not_null(p);
	cr_assert_eq(c.allocs, 1);
	cr_assert_eq(c.last_size, 100);
	cr_assert_eq(c.last_align, 64);
	flowq__free(&a, p, 100, 64);
	cr_assert_eq(c.frees, 1);

	c.fail = true;
	cr_assert_null(flowq__alloc(&a, 100, 64), "the hook's NULL is returned");
	cr_assert_eq(c.allocs, 2);
}

Test(alloc, incomplete_allocators_are_invalid)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};

	cr_assert_not(flowq__allocator_valid(NULL));
	a.alloc = NULL;
	cr_assert_not(flowq__allocator_valid(&a));
	a.alloc = counting_alloc;
	a.free = NULL;
	cr_assert_not(flowq__allocator_valid(&a));
}
