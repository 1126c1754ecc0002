/*
 * Unit tests for the private-arena jemalloc allocator (flowq/jemalloc.h):
 * memory comes from the allocator's own arena, every alignment is honoured,
 * the arena is destroyed on fini, and a NULL result pointer makes none.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jemalloc/jemalloc.h>

#include <flowq/jemalloc.h>

/* The arena jemalloc says @p holds (mallctl "arenas.lookup", jemalloc >= 5.1). */
static unsigned
arena_of(void *p)
{
	unsigned arena = ~0u;
	size_t sz = sizeof(arena);

	cr_assert_eq(mallctl("arenas.lookup", &arena, &sz, &p, sizeof(p)), 0);
	return arena;
}

Test(jemalloc, memory_comes_from_a_private_arena)
{
	struct flowq_allocator a, b;
	void *p, *q, *m;

	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	cr_assert_eq(flowq_allocator_jemalloc_init(&b), 0);
	cr_assert_geq(flowq_allocator_jemalloc_arena(&a), 0);
	cr_assert_neq(flowq_allocator_jemalloc_arena(&a), flowq_allocator_jemalloc_arena(&b),
		      "each allocator has its own arena");

	p = a.alloc(256, 64, a.ctx);
	q = b.alloc(256, 64, b.ctx);
	cr_assert_not_null(p);
	cr_assert_not_null(q);
	cr_assert_eq(arena_of(p), (unsigned)flowq_allocator_jemalloc_arena(&a));
	cr_assert_eq(arena_of(q), (unsigned)flowq_allocator_jemalloc_arena(&b));
	/* The process's own malloc (jemalloc's, in this test) uses another arena. */
	m = mallocx(256, 0);
	cr_assert_neq(arena_of(m), (unsigned)flowq_allocator_jemalloc_arena(&a));
	dallocx(m, 0);

	a.free(p, 256, 64, a.ctx);
	b.free(q, 256, 64, b.ctx);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&b), 0);
}

Test(jemalloc, every_alignment_is_honoured)
{
	struct flowq_allocator a;

	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	for (size_t align = 1; align <= 4096; align *= 2) {
		unsigned char *p = a.alloc(align + 3, align, a.ctx);

		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % align, 0, "align %zu", align);
		memset(p, 0x5a, align + 3);
		a.free(p, align + 3, align, a.ctx);
	}
	cr_assert_null(a.alloc(0, 8, a.ctx), "size 0 is refused, never mallocx(0)");
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
}

Test(jemalloc, fini_rejects_what_is_not_ours)
{
	struct flowq_allocator a, copy;

	cr_assert_eq(flowq_allocator_jemalloc_fini(NULL), -EINVAL);
	memset(&a, 0, sizeof(a));
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), -EINVAL);
	cr_assert_eq(flowq_allocator_jemalloc_arena(&a), -1);
	copy = *flowq_allocator_libc();
	cr_assert_eq(flowq_allocator_jemalloc_fini(&copy), -EINVAL);
	cr_assert_eq(flowq_allocator_jemalloc_arena(&copy), -1);

	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), -EINVAL, "fini clears it: twice fails");
}

/* How many arenas jemalloc has made ("arenas.narenas": destroyed ones are
 * still counted, so it never goes down). */
static unsigned
narenas(void)
{
	unsigned n = 0;
	size_t sz = sizeof(n);

	cr_assert_eq(mallctl("arenas.narenas", &n, &sz, NULL, 0), 0);
	return n;
}

/* A NULL result pointer is refused before an arena is made: nothing to
 * leak, nothing dereferenced. */
Test(jemalloc, init_without_a_result_is_efault_and_makes_no_arena)
{
	struct flowq_allocator a;
	unsigned before = narenas();

	cr_assert_eq(flowq_allocator_jemalloc_init(NULL), -EFAULT);
	cr_assert_eq(narenas(), before, "no arena was created");
	/* The counter does count creations. */
	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	cr_assert_eq(narenas(), before + 1);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
}
