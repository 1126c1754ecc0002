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

#if defined(FLOWQ_STATIC_DEFINE)
#define FLOWQ_API
#elif defined(__GNUC__)
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

#ifdef __cplusplus
#define FLOWQ_ALIGNAS(n) alignas(n)
#else
#define FLOWQ_ALIGNAS(n) _Alignas(n)
#endif

#endif /* FLOWQ_COMMON_H */
