/*
 * Helpers shared by the unit tests and the stress executables: a seeded
 * PRNG, a strict command-line number parser and a monotonic clock. Header
 * only (static inline) so every test stays one self-contained executable.
 */
#ifndef FLOWQ_TEST_UTIL_H
#define FLOWQ_TEST_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* SplitMix64 (Steele, Lea, Flood, OOPSLA 2014): fast, seedable, and good
 * enough to drive test schedules reproducibly from one 64-bit seed. */
static inline uint64_t
test_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Parse @s as a decimal in [lo, hi]; on anything else print why (naming
 * @prog and @what) and exit(2), the usage-error status. */
static inline unsigned long
test_parse_ulong(const char *prog, const char *s, const char *what, unsigned long lo,
		 unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: bad %s '%s' (%lu..%lu)\n", prog, what, s, lo, hi);
		exit(2);
	}
	return v;
}

/* CLOCK_MONOTONIC in seconds. */
static inline double
test_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Violations a stress program found: one counter per process (it is a
 * function-local static, so a unit test that never calls it pays nothing). */
static inline _Atomic unsigned long *
test_violations(void)
{
	static _Atomic unsigned long n;

	return &n;
}

/* Most violations described on stderr; all are counted. */
#define TEST_MAX_REPORTS 20

/* Count a violation found by program @prog and describe the first
 * TEST_MAX_REPORTS on stderr. Any thread. */
static inline void
test_violation(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void
test_violation(const char *prog, const char *fmt, ...)
{
	va_list ap;

	/* Relaxed: a plain counter, read by main after the joins. */
	if (atomic_fetch_add_explicit(test_violations(), 1, memory_order_relaxed) >=
	    TEST_MAX_REPORTS)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "%s: VIOLATION: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#endif /* FLOWQ_TEST_UTIL_H */
