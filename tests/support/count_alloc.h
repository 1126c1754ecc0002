/*
 * A flowq_allocator for the Criterion unit tests that counts what is
 * outstanding and can be made to fail: allocations succeed while
 * allocs < fail_after (set fail_after = allocs to fail every one from
 * there, ~0ul to never fail). A free of more than is outstanding fails the
 * test. Header only (static inline), like test_util.h; needs Criterion.
 */
#ifndef FLOWQ_TEST_COUNT_ALLOC_H
#define FLOWQ_TEST_COUNT_ALLOC_H

#include <stddef.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>

struct test_count_alloc {
	struct flowq_allocator a;
	/* Bytes allocated and not freed. */
	size_t outstanding;
	/* Calls to the hook, allocations and frees, failed or not (a test can
	 * check that some code does not call it at all). */
	unsigned long calls;
	/* Allocations that succeeded; the first one at or past fail_after
	 * returns NULL. */
	unsigned long allocs, fail_after;
};

static inline void *
test_count_alloc_fn(size_t size, size_t align, void *ctx)
{
	struct test_count_alloc *c = ctx;
	void *p;

	c->calls++;
	if (c->allocs >= c->fail_after)
		return NULL;
	p = flowq_allocator_libc()->alloc(size, align, NULL);
	if (p != NULL) {
		c->allocs++;
		c->outstanding += size;
	}
	return p;
}

static inline void
test_count_free_fn(void *p, size_t size, size_t align, void *ctx)
{
	struct test_count_alloc *c = ctx;

	c->calls++;
	cr_assert_geq(c->outstanding, size, "freed more than allocated");
	c->outstanding -= size;
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

#endif /* FLOWQ_TEST_COUNT_ALLOC_H */
