/*
 * bench.h: what flowq_bench's suites share.
 *
 * Each suite is one bench_<module>.c with one bench_<module>_register()
 * function; bench_main.c calls them all before handing over to Google
 * Benchmark, so every comparison runs its peers in the same process run
 * (STYLE.md §10). The build defines _POSIX_C_SOURCE for every suite.
 */
#ifndef FLOWQ_BENCH_H
#define FLOWQ_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shim/bench_shim.h"

/** Register BM_env_*: the machine's own limits (xchg cost, line transfer). */
void
bench_env_register(void);

/** Register BM_mpsc_*: flowq_mpsc and its peers, P producers -> 1 consumer. */
void
bench_mpsc_register(void);

/** Register BM_capacity_*: capacity accounting on the P producers -> 1 consumer hand-off. */
void
bench_capacity_register(void);

/** Register BM_heap_*: flowq_heap (4-ary), a binary heap and flowq_pheap
 * (pairing): steady-state hold, FIFO keys, removal by handle. */
void
bench_heap_register(void);

/**
 * The plain binary heap that BM_heap_binary measures (bench_heap.c): the
 * peer of flowq_heap and of the heap-based policies (bench_policy.c).
 * Same node, struct and argument checks as flowq_heap_push/_pop.
 */
struct flowq_heap;
struct flowq_heap_node;
int
bench_bheap_push(struct flowq_heap *h, struct flowq_heap_node *n);
struct flowq_heap_node *
bench_bheap_pop(struct flowq_heap *h);

/** Register BM_policy_*: ns per decision of every registered fairness and
 * ordering policy, and a plain binary heap of the same size as their peer. */
void
bench_policy_register(void);

/** Register BM_engine_raw_mpsc: the end-to-end workload over a bare flowq_mpsc
 * hand-off, the baseline of the engine suites (bench_e2e.c). */
void
bench_e2e_register(void);

/** Register BM_gie_style_e2e: the GIE-style peer engine end to end. */
void
bench_gie_register(void);

/** Register BM_engine_e2e, BM_engine_rr_e2e and BM_engine_edf_e2e: flowq's
 * engine end to end (needs core/engine.c). */
void
bench_engine_register(void);

/** Register BM_engine_dispatch_*: the dispatcher's cost per decision with F
 * flows backlogged, in polled mode (bench_dispatch.c). */
void
bench_dispatch_register(void);

/** Register BM_displacement (overload simulation per displacement policy)
 * and BM_displacement_shed (cost of one displacement). */
void
bench_displace_register(void);

/** Whether FLOWQ_BENCH_PIN asks for pinned threads (and there are >= 2 CPUs);
 * see bench_env.c. */
bool
bench_pinning(void);

/** Pin the calling thread to @p cpu; best effort. */
void
bench_pin_self(long cpu);

/** CLOCK_MONOTONIC in nanoseconds (vDSO, about 20 ns; never inside a per-item loop). */
static inline uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** splitmix64: the next value of the seeded stream *@p x (workload setup
 * outside the timing: flow choices, permutations). */
static inline uint64_t
bench_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/*
 * Spin-wait hint. On x86 "pause" keeps a spinning hyperthread from starving
 * its sibling and avoids the memory-order mis-speculation flush when the
 * awaited line finally changes.
 */
static inline void
bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* FLOWQ_BENCH_H */
