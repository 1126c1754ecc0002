/*
 * Soak mode for the stress executables (tools/test --long): one
 * implementation shared by all of them (stress_soak.c, compiled into each).
 *
 * A stress program renames its main to run() (which must start from a clean
 * state every time: it zeroes its own statics) and ends with
 *
 *     int main(int argc, char **argv)
 *     { return stress_soak_main(PROG, argc, argv, run, test_violations()); }
 *
 * (the program's own counter: test_violations() is static inline, one
 * counter per translation unit).
 *
 * Without FLOWQ_STRESS_SECONDS in the environment this is run(argc, argv):
 * nothing changes for CTest. With FLOWQ_STRESS_SECONDS=N, run() is called
 * again and again, with the same arguments, until N seconds have passed (at
 * least once) or an iteration fails; at the end one line goes to stdout:
 *
 *   SOAK prog iterations=I seconds=S ops=O [outcome=n ...] violations=V
 *        peak_rss_kb=P rss_first_kb=A rss_last_kb=B growth_kb=B-A
 *        busy_first_kb=X busy_last_kb=Y
 *
 * ops and the outcome counts are what run() passed to stress_soak_count()
 * summed over the iterations; V is the program's violation count; P is
 * VmHWM. The
 * growth is measured between iterations, where a program holds only what
 * leaks from one iteration to the next: A is VmRSS after the first
 * iteration that ends once the first window of min(60 s, N/4) is over (the
 * first minute of a long soak), B after the last one; B - A ~ 0 when
 * nothing leaks. X and Y are the largest VmRSS samples (one a second, by a
 * sampler thread) in the first and the last window, for runs whose
 * iterations are long.
 *
 * Exit status: run()'s first non-zero status, else 0.
 */
#ifndef FLOWQ_STRESS_SOAK_H
#define FLOWQ_STRESS_SOAK_H

#include <stdint.h>

#include <stdatomic.h>

#include <flowq/flowq.h>

/** See above. Context: main thread. */
int
stress_soak_main(const char *prog, int argc, char **argv, int (*run)(int, char **),
		 _Atomic unsigned long *violations);

/** The number of run() calls before the current one: 0 in the first (and
 * always when not soaking). A program that draws from a seed can add it to
 * the seed, so that each soak iteration explores another schedule while
 * iteration 0, the CTest run, keeps the given one. Context: main thread. */
unsigned long
stress_soak_iteration(void);

/** Add @p n to counter @p what ("ops", or an outcome name) for the SOAK
 * line; at most 16 distinct names. Any thread; a no-op when not soaking. */
void
stress_soak_count(const char *what, uint64_t n);

/** For the engine stress programs: stress_soak_count() of @p ops as "ops",
 * of the completions counted in @p completed_by (DISPATCHED and EVICTED_*,
 * indexed by outcome) and of the engine's REJECTED_* counts in @p st
 * (rejections have no completion), each under its flowq_outcome_str()
 * name. */
void
stress_soak_engine(uint64_t ops, _Atomic uint64_t const completed_by[FLOWQ_OUTCOME_COUNT],
		   const struct flowq_stats *st);

#endif /* FLOWQ_STRESS_SOAK_H */
