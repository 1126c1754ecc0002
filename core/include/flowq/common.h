/*
 * flowq: common definitions shared by every public header.
 *
 * FLOWQ_API marks the symbols exported from the shared library; everything
 * else is built with hidden visibility (see CMakeLists.txt).
 */
#ifndef FLOWQ_COMMON_H
#define FLOWQ_COMMON_H

#define FLOWQ_VERSION_MAJOR 0
#define FLOWQ_VERSION_MINOR 3
#define FLOWQ_VERSION_PATCH 3

#if defined(__GNUC__)
#define FLOWQ_API __attribute__((visibility("default")))
#else
#define FLOWQ_API
#endif

/*
 * Size of a cache line on the targets we build for (x86_64, aarch64). Used to
 * keep fields written by different threads on different lines.
 */
#define FLOWQ_CACHE_LINE 64

/*
 * The block an adjacent-line ("spatial") prefetcher fetches as one: x86
 * cores pull a line's 128-byte-aligned partner in with it. A line that one
 * thread writes on every operation must not share such a block with a line
 * another core touches, or that core's prefetches keep a copy of it and
 * each write pays a cross-core invalidation. Used where it was measured to
 * matter (the flow's producer lines: the commit that introduced it has the
 * A/B) and, by the same argument but not measured apart, for the per-CPU
 * release counters; elsewhere FLOWQ_CACHE_LINE keeps the smaller
 * footprint (one wider separation tried and measured worse,
 * bench/ENGINE-LOG.md, "Session 7").
 */
#define FLOWQ_PREFETCH_PAIR 128

/*
 * The public headers compile as C11 and as C++11 or later (hosts such as
 * Envoy are C++). Atomic members are _Atomic(T) in C and std::atomic<T> in
 * C++, which GCC and Clang lay out identically for the pointer and integer
 * types used here; C++ code must not touch them (they are private fields).
 */
#ifdef __cplusplus
#include <atomic>
#define FLOWQ_ALIGNAS(n)          alignas(n)
#define FLOWQ_ATOMIC(T)           std::atomic<T>
#define FLOWQ_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#include <stdatomic.h>
#define FLOWQ_ALIGNAS(n)          _Alignas(n)
#define FLOWQ_ATOMIC(T)           _Atomic(T)
#define FLOWQ_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#endif /* FLOWQ_COMMON_H */
