/*
 * flowq_allocator: the hook through which flowq makes every internal
 * allocation (engine, shards, flows, policy state, heap arrays). The request
 * path allocates nothing; requests are caller-owned.
 *
 * flowq never replaces the process allocator. The default hook is libc's
 * (flowq_allocator_libc()); a host that wants flowq's memory in a private
 * jemalloc arena links flowq::flowq_jemalloc and uses
 * flowq_allocator_jemalloc_init() (flowq/jemalloc.h), which calls only
 * jemalloc's non-standard API (mallocx/sdallocx on its own arena), so the
 * host's malloc stays whatever it was.
 */
#ifndef FLOWQ_ALLOC_H
#define FLOWQ_ALLOC_H

#include <stddef.h>

#include <flowq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An allocator. Both callbacks may be called from any thread, concurrently:
 * they must be thread-safe.
 */
struct flowq_allocator {
	/**
	 * Return @p size bytes aligned to @p align (a power of two, at most
	 * 4096), or NULL on failure. @p size is never 0.
	 */
	void *(*alloc)(size_t size, size_t align, void *ctx);
	/** Free @p p (never NULL), returned by alloc with this @p size and
	 * @p align. */
	void (*free)(void *p, size_t size, size_t align, void *ctx);
	/** Passed to both callbacks. */
	void *ctx;
};

/**
 * The default allocator: aligned_alloc() and free() from libc (or whatever
 * the process has interposed on them). Never NULL; static storage.
 */
FLOWQ_API const struct flowq_allocator *
flowq_allocator_libc(void);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_ALLOC_H */
