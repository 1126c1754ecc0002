/*
 * Unit tests for the private-arena jemalloc allocator (flowq/jemalloc.h):
 * memory comes from the allocator's own arena, every alignment is honoured,
 * the arena is destroyed on fini, and a NULL result pointer makes none;
 * jemalloc's refusals (no arena to be had, an arena already destroyed)
 * come back as -EIO.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jemalloc/jemalloc.h>

#include <flowq/jemalloc.h>

/*
 * jemalloc refuses "arenas.create" only when it has made all the arenas it
 * can (EAGAIN past about 4090: trying that costs some 360 MB of arena
 * metadata). So this test's own mallctl() stands in front of jemalloc's:
 * libflowq_jemalloc.so binds to the executable's definition first, and this
 * one passes every call on to jemalloc's except an "arenas.create" while
 * refuse_create is set, which fails as jemalloc would then. flowq_jemalloc
 * is a library of its own, without core/fault.c, so a fault point cannot
 * be placed there.
 */
static bool refuse_create;
static unsigned refused;

int
mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
	static int (*real)(const char *, void *, size_t *, void *, size_t);

	if (refuse_create && strcmp(name, "arenas.create") == 0) {
		refused++;
		return EAGAIN;
	}
	if (real == NULL) {
		*(void **)&real = dlsym(RTLD_NEXT, "mallctl");
		cr_assert_not_null(real, "jemalloc's mallctl(): %s", dlerror());
	}
	return real(name, oldp, oldlenp, newp, newlen);
}

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

/* No arena to be had: -EIO (flowq/jemalloc.h), the result left untouched
 * (a caller may test it), and nothing was made; once jemalloc has arenas
 * again, init works. */
Test(jemalloc, init_when_jemalloc_refuses_an_arena_is_eio)
{
	struct flowq_allocator a, untouched;
	unsigned before = narenas();

	memset(&a, 0x5a, sizeof(a));
	untouched = a;
	refuse_create = true;
	cr_assert_eq(flowq_allocator_jemalloc_init(&a), -EIO);
	refuse_create = false;
	cr_assert_eq(refused, 1, "the library asked jemalloc, through mallctl()");
	cr_assert_eq(memcmp(&a, &untouched, sizeof(a)), 0, "the result is untouched");
	cr_assert_eq(narenas(), before, "no arena was created");
	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	cr_assert_eq(narenas(), before + 1);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
}

/* A copy of an allocator outlives the original's fini: its arena is gone,
 * jemalloc refuses to destroy it again, and fini says -EIO instead of
 * claiming success (the copy still looks like ours: only jemalloc can
 * tell). */
Test(jemalloc, fini_of_an_arena_already_destroyed_is_eio)
{
	struct flowq_allocator a, copy;

	cr_assert_eq(flowq_allocator_jemalloc_init(&a), 0);
	copy = a;
	cr_assert_eq(flowq_allocator_jemalloc_fini(&a), 0);
	cr_assert_eq(flowq_allocator_jemalloc_fini(&copy), -EIO);
	cr_assert_neq(flowq_allocator_jemalloc_arena(&copy), -1,
		      "a failed fini leaves the allocator as it was");
}
