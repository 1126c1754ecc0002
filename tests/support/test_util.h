/*
 * Helpers shared by the unit tests and the stress executables: a seeded
 * PRNG, a strict command-line number parser, a monotonic clock and a stall
 * watchdog for stress programs. Header
 * only (static inline) so every test stays one self-contained executable.
 */
#ifndef FLOWQ_TEST_UTIL_H
#define FLOWQ_TEST_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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

/* CLOCK_MONOTONIC in ns (the engine's default clock, flowq_now()). */
static inline int64_t
test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC in seconds (a double holds it to the ns for 104 days of
 * uptime, to the microsecond for 292 years). */
static inline double
test_now_seconds(void)
{
	return (double)test_now_ns() / 1e9;
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

/*
 * Stall watchdog for a stress program: a thread that reads @c progress every
 * 100 ms and, when it has not moved for @c seconds, prints the stall, calls
 * @c dump (the program's state, on stderr) and aborts. Liveness failures (a
 * lost wake-up) then end with a diagnosis instead of a CTest timeout.
 */
struct test_watchdog {
	const char *prog;
	_Atomic uint64_t *progress;
	int seconds;
	void (*dump)(void);
	_Atomic int stop;
	pthread_t thread;
};

static inline void *
test_watchdog_main(void *arg)
{
	struct test_watchdog *w = arg;
	uint64_t last = 0;
	double since = test_now_seconds();
	while (!atomic_load(&w->stop)) {
		struct timespec ts = {0, 100000000};
		nanosleep(&ts, NULL);
		uint64_t p = atomic_load_explicit(w->progress, memory_order_relaxed);
		double now = test_now_seconds();
		if (p != last) {
			last = p;
			since = now;
			continue;
		}
		if (now - since < w->seconds)
			continue;
		fprintf(stderr, "%s: no progress for %d s (%" PRIu64 " events): stalled\n",
			w->prog, w->seconds, p);
		w->dump();
		fflush(stderr);
		abort();
	}
	return NULL;
}

/** Start @p w (fields set, stop 0). @return 0 or exits the program. */
static inline void
test_watchdog_start(struct test_watchdog *w)
{
	atomic_store(&w->stop, 0);
	if (pthread_create(&w->thread, NULL, test_watchdog_main, w)) {
		fprintf(stderr, "%s: cannot start the watchdog\n", w->prog);
		exit(1);
	}
}

static inline void
test_watchdog_stop(struct test_watchdog *w)
{
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
}

#endif /* FLOWQ_TEST_UTIL_H */
