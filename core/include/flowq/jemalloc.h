/*
 * A flowq_allocator backed by a private jemalloc arena (library
 * flowq::flowq_jemalloc, `pkg-config flowq-jemalloc`; built when jemalloc is
 * found).
 *
 * Opting in does not make jemalloc the process allocator: this library calls
 * only mallctl(), mallocx() and sdallocx(), on an arena created for the
 * allocator, without thread caches (flowq allocates rarely: flows, shards and
 * policy state, never per request). The host's malloc()/free() keep binding
 * to whatever they bound to before (with glibc first in the lookup order,
 * glibc's). Caveat from Debian's jemalloc 5.3 build: it uses initial-exec
 * TLS, so a host that dlopen()s a module linking this library may fail with
 * "cannot allocate memory in static TLS block"; link it at build time.
 */
#ifndef FLOWQ_JEMALLOC_H
#define FLOWQ_JEMALLOC_H

#include <flowq/alloc.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create a private arena and fill @p r_alloc with an allocator that uses it.
 *
 * @return 0; -EFAULT if @p r_alloc is NULL (no arena is created); -EIO if
 *         jemalloc refused to create an arena (its mallctl error is not an
 *         errno; it is reported as -EIO).
 *
 * Context: any thread. The allocator may be used from any thread.
 */
FLOWQ_API int
flowq_allocator_jemalloc_init(struct flowq_allocator *r_alloc);

/**
 * Destroy the arena behind @p a (from flowq_allocator_jemalloc_init()).
 * Every allocation made through @p a must have been freed (destroy the
 * engines that use it first).
 *
 * @return 0; -EINVAL if @p a is not a jemalloc allocator from this library;
 *         -EIO if jemalloc refused to destroy the arena.
 */
FLOWQ_API int
flowq_allocator_jemalloc_fini(struct flowq_allocator *a);

/** The jemalloc arena index behind @p a, or -1 if @p a is not one of ours
 * (for diagnostics and tests). */
FLOWQ_API int
flowq_allocator_jemalloc_arena(const struct flowq_allocator *a);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_JEMALLOC_H */
