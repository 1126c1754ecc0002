/*
 * Internal: the monotonic clock in nanoseconds (CLOCK_MONOTONIC, the
 * engine's default clock and the real-time waits' clock). One copy for
 * core/: the engine's default clock hook, flowq_submit_wait()'s timeout,
 * the history recorder's stamps, the fault stalls and the dispatcher's
 * intake-coalescing wait. Context: any thread;
 * a vDSO call, no system call.
 */
#ifndef FLOWQ_CORE_MONO_H
#define FLOWQ_CORE_MONO_H

#include <stdint.h>
#include <time.h>

static inline int64_t
flowq__mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif /* FLOWQ_CORE_MONO_H */
