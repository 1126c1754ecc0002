/*
 * The libc allocator hook and the internal allocation helpers every module
 * uses (flowq__alloc/flowq__free in alloc_internal.h).
 */
#include <stdlib.h>

#include <flowq/alloc.h>

#include "alloc_internal.h"

static void *
libc_alloc(size_t size, size_t align, void *ctx)
{
	(void)ctx;
	if (align < sizeof(void *))
		align = sizeof(void *);
	/* aligned_alloc() wants size to be a multiple of the alignment. */
	size = (size + align - 1) & ~(align - 1);
	return aligned_alloc(align, size);
}

static void
libc_free(void *p, size_t size, size_t align, void *ctx)
{
	(void)size;
	(void)align;
	(void)ctx;
	free(p);
}

static const struct flowq_allocator libc_allocator = {
	.alloc = libc_alloc,
	.free = libc_free,
	.ctx = NULL,
};

const struct flowq_allocator *
flowq_allocator_libc(void)
{
	return &libc_allocator;
}

bool
flowq__allocator_valid(const struct flowq_allocator *a)
{
	return a != NULL && a->alloc != NULL && a->free != NULL;
}

void *
flowq__alloc(const struct flowq_allocator *a, size_t size, size_t align)
{
	if (size == 0 || align == 0 || (align & (align - 1)) != 0 ||
	    align > FLOWQ__ALLOC_MAX_ALIGN || size > SIZE_MAX - align)
		return NULL;
	return a->alloc(size, align, a->ctx);
}

void
flowq__free(const struct flowq_allocator *a, void *p, size_t size, size_t align)
{
	if (p != NULL)
		a->free(p, size, align, a->ctx);
}
