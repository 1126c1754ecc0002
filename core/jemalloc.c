/*
 * flowq_allocator over a private jemalloc arena; see flowq/jemalloc.h.
 * Built into its own library (flowq_jemalloc) so that libflowq itself never
 * depends on libjemalloc (Debian's is unprefixed: linking it into the core
 * would put jemalloc's malloc symbols in every host's lookup scope).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include <flowq/jemalloc.h>

/* ctx holds the arena index + 1, so that a zeroed allocator is not ours. */
static unsigned
je_arena(const struct flowq_allocator *a)
{
	return (unsigned)((uintptr_t)a->ctx - 1);
}

static int
je_flags(void *ctx, size_t align)
{
	unsigned arena = (unsigned)((uintptr_t)ctx - 1);

	/* No thread cache: allocations are rare, and a tcache per host thread
	 * would hold memory in every thread that ever submitted. */
	return MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(align);
}

static void *
je_alloc(size_t size, size_t align, void *ctx)
{
	/* mallocx(0) is undefined: the engine never asks, but be safe. */
	if (size == 0)
		return NULL;
	return mallocx(size, je_flags(ctx, align));
}

static void
je_free(void *p, size_t size, size_t align, void *ctx)
{
	/* Sized free: the hook contract gives the size and alignment that
	 * were asked for, which is what sdallocx() requires. */
	sdallocx(p, size, je_flags(ctx, align));
}

static bool
je_is_ours(const struct flowq_allocator *a)
{
	return a != NULL && a->alloc == je_alloc && a->free == je_free && a->ctx != NULL;
}

int
flowq_allocator_jemalloc_init(struct flowq_allocator *r_alloc)
{
	unsigned arena;
	size_t sz = sizeof(arena);

	/* Before the arena exists: an arena cannot be destroyed without the
	 * allocator that names it, so a NULL checked after it would leak it. */
	if (r_alloc == NULL)
		return -EFAULT;
	if (mallctl("arenas.create", &arena, &sz, NULL, 0) != 0)
		return -EIO;
	r_alloc->alloc = je_alloc;
	r_alloc->free = je_free;
	r_alloc->ctx = (void *)((uintptr_t)arena + 1);
	return 0;
}

int
flowq_allocator_jemalloc_fini(struct flowq_allocator *a)
{
	char cmd[64];

	if (!je_is_ours(a))
		return -EINVAL;
	snprintf(cmd, sizeof(cmd), "arena.%u.destroy", je_arena(a));
	if (mallctl(cmd, NULL, NULL, NULL, 0) != 0)
		return -EIO;
	memset(a, 0, sizeof(*a));
	return 0;
}

int
flowq_allocator_jemalloc_arena(const struct flowq_allocator *a)
{
	return je_is_ours(a) ? (int)je_arena(a) : -1;
}
