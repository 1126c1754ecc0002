/*
 * flowq: common definitions shared by every public header.
 *
 * FLOWQ_API marks the symbols exported from the shared library; everything
 * else is built with hidden visibility (see CMakeLists.txt).
 */
#ifndef FLOWQ_COMMON_H
#define FLOWQ_COMMON_H

#define FLOWQ_VERSION_MAJOR 0
#define FLOWQ_VERSION_MINOR 1
#define FLOWQ_VERSION_PATCH 0

#if defined(__GNUC__)
#define FLOWQ_API __attribute__((visibility("default")))
#else
#define FLOWQ_API
#endif

/*
 * Size of a cache line on the targets we build for (x86_64, aarch64). Used to
 * keep fields written by different threads on different lines. Adjacent-line
 * prefetch on Intel pairs lines; we have not measured a gain from 128-byte
 * separation on our targets, so we keep the smaller footprint.
 */
#define FLOWQ_CACHE_LINE 64

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
