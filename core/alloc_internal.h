/*
 * Internal: allocation through the engine's allocator hook. Every internal
 * allocation goes through these two functions, so fault injection and
 * accounting have one place to hook.
 */
#ifndef FLOWQ_CORE_ALLOC_INTERNAL_H
#define FLOWQ_CORE_ALLOC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/alloc.h>

#define FLOWQ__ALLOC_MAX_ALIGN 4096u

/** Whether @p a has both callbacks. */
bool
flowq__allocator_valid(const struct flowq_allocator *a);

/**
 * @p size bytes aligned to @p align from @p a, or NULL: on allocation
 * failure, and without calling the hook when @p size is 0, @p align is not a
 * power of two or exceeds FLOWQ__ALLOC_MAX_ALIGN, or the rounded size would
 * overflow.
 */
void *
flowq__alloc(const struct flowq_allocator *a, size_t size, size_t align);

/** Free @p p (NULL is ignored), allocated from @p a with @p size and
 * @p align. */
void
flowq__free(const struct flowq_allocator *a, void *p, size_t size, size_t align);

#endif /* FLOWQ_CORE_ALLOC_INTERNAL_H */
