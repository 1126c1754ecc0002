/*
 * bench_env: the machine's own limits, measured in the same run as the
 * queues, so a report can state each queue's rate as a ratio of physical
 * costs instead of trusting absolute numbers that swing with vCPU placement
 * on a shared host (perf-anchors.md §0 caveat 2, §7).
 *
 * BM_env_xchg           uncontended atomic exchange on a line the thread
 *                       owns: the floor of one per-item enqueue. One
 *                       iteration is one exchange, so the time column (CPU
 *                       time: one thread) is ns per exchange.
 * BM_env_line_transfer  two threads ping-pong one cache line: the floor of
 *                       one producer -> consumer hand-off (counter
 *                       one_way_ns = round trip / 2).
 *
 * It also records in the output context what else shapes the numbers: the
 * process allocator actually bound to malloc (jemalloc when the build found
 * it), that threads are not pinned, and the compiler.
 */
#define _GNU_SOURCE /* dlsym(RTLD_DEFAULT), dladdr */

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if FLOWQ_BENCH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "bench.h"

/* Exchanges per batch: about 0.5 ms, so the loop check is noise. */
#define BENCH_XCHG_BATCH (1 << 16)
/* Round trips per batch: a few ms at the usual 85-115 ns per transfer. */
#define BENCH_PINGPONG_BATCH (1 << 14)
/* Flag value telling the ping-pong helper to exit. */
#define BENCH_PINGPONG_STOP UINT64_MAX

/*
 * BM_env_xchg. The exchanged value feeds the next exchange, so the chain is
 * serial and the time per iteration is the instruction's latency, as in a
 * producer that exchanges a queue tail it just read.
 */
static void
bench_env_xchg(struct bench_state *st, void *arg)
{
	_Alignas(64) _Atomic uint64_t word = 0;
	uint64_t x = 0;

	(void)arg;
	while (bench_keep_running_batch(st, BENCH_XCHG_BATCH)) {
		for (int i = 0; i < BENCH_XCHG_BATCH; i++)
			x = atomic_exchange_explicit(&word, x + 1, memory_order_seq_cst);
	}
	if (x == 0) /* Cannot happen; keeps the chain observable. */
		bench_set_label(st, "?");
}

/*
 * The ping-pong line, alone in a 128-byte block: Intel's adjacent-line
 * prefetcher fetches lines in pairs, and a neighbour written by anyone would
 * add transfers that are not the one being measured.
 */
static struct {
	_Alignas(128) _Atomic uint64_t flag;
	char pad[128 - sizeof(uint64_t)];
} bench_line;

/*
 * Helper side: answer every odd value v with v + 1. Relaxed loads spin on a
 * shared copy of the line; the acquire/release pair per hop is what a real
 * hand-off needs and costs nothing extra on x86.
 */
static void *
bench_pingpong_helper(void *arg)
{
	uint64_t v;

	(void)arg;
	for (;;) {
		v = atomic_load_explicit(&bench_line.flag, memory_order_acquire);
		if (v == BENCH_PINGPONG_STOP)
			return NULL;
		if (v & 1)
			atomic_store_explicit(&bench_line.flag, v + 1,
					      memory_order_release);
		else
			bench_cpu_relax();
	}
}

/*
 * BM_env_line_transfer. One round trip moves the line to the helper and
 * back, so one-way = round trip / 2 (the load/store ping-pong method of
 * perf-anchors.md §2.2). The threads are not pinned, like the queue cases;
 * on 2 vCPUs the scheduler puts the two spinners on different CPUs.
 */
static void
bench_env_line_transfer(struct bench_state *st, void *arg)
{
	pthread_t helper;
	uint64_t v = 0, t0, t1;

	(void)arg;
	atomic_store_explicit(&bench_line.flag, 0, memory_order_relaxed);
	if (pthread_create(&helper, NULL, bench_pingpong_helper, NULL) != 0) {
		bench_skip_with_error(st, "pthread_create failed");
		return;
	}
	t0 = bench_now_ns();
	while (bench_keep_running_batch(st, BENCH_PINGPONG_BATCH)) {
		for (int i = 0; i < BENCH_PINGPONG_BATCH; i++) {
			atomic_store_explicit(&bench_line.flag, v + 1,
					      memory_order_release);
			while (atomic_load_explicit(&bench_line.flag,
						    memory_order_acquire) != v + 2)
				bench_cpu_relax();
			v += 2;
		}
	}
	t1 = bench_now_ns();
	atomic_store_explicit(&bench_line.flag, BENCH_PINGPONG_STOP,
			      memory_order_release);
	pthread_join(helper, NULL);
	bench_set_counter(st, "one_way_ns",
			  (double)(t1 - t0) / (2.0 * (double)bench_iterations(st)),
			  BENCH_COUNTER_PLAIN);
}

/*
 * Name the allocator malloc resolves to in this process. Linking jemalloc is
 * not proof that it serves malloc (symbol lookup order decides, ecosystem
 * notes A.3), so ask the dynamic linker which object defines the malloc
 * every caller binds to.
 */
static void
bench_env_describe_allocator(char *buf, size_t len)
{
	void *sym = dlsym(RTLD_DEFAULT, "malloc");
	const char *from = "?";
	Dl_info info;

	if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL)
		from = info.dli_fname;
#if FLOWQ_BENCH_JEMALLOC
	{
		const char *version = "?";
		size_t sz = sizeof(version);

		if (mallctl("version", (void *)&version, &sz, NULL, 0) != 0)
			version = "?";
		snprintf(buf, len, "%s (jemalloc %s linked; malloc from %s)",
			 strstr(from, "jemalloc") != NULL ? "jemalloc" : "NOT jemalloc",
			 version, from);
	}
#else
	snprintf(buf, len, "%s (jemalloc not linked; malloc from %s)",
		 strstr(from, "jemalloc") != NULL ? "jemalloc" : "libc", from);
#endif
}

void
bench_env_register(void)
{
	char alloc[512];
	struct bench_case *c;

	bench_env_describe_allocator(alloc, sizeof(alloc));
	bench_add_context("flowq_allocator", alloc);
	{
		const char *pin = getenv("FLOWQ_BENCH_PIN");

		bench_add_context(
			"flowq_thread_pinning",
			pin != NULL && strcmp(pin, "0") != 0
				? "BM_mpsc: consumer alone on the last CPU, producers "
				  "on the others (FLOWQ_BENCH_PIN=1); BM_env unpinned"
				: "none (all threads unpinned)");
	}
#ifdef __VERSION__
	bench_add_context("flowq_compiler", __VERSION__);
#endif

	c = bench_register("BM_env_xchg", bench_env_xchg, NULL);
	if (c != NULL)
		bench_case_unit(c, BENCH_UNIT_NS);
	c = bench_register("BM_env_line_transfer", bench_env_line_transfer, NULL);
	if (c != NULL)
		bench_case_unit(bench_case_use_real_time(c), BENCH_UNIT_NS);
}

/*
 * Pinning, on request: FLOWQ_BENCH_PIN=1 puts the consumer alone on the last
 * CPU and the producers on the others (all on CPU 0 with 2 CPUs), the
 * "dispatcher owns a core" layout. Unpinned (the default), the scheduler
 * decides, and at P=1 a run lands at random in one of two regimes (producer
 * and consumer on one CPU taking turns, or on two CPUs in cross-core
 * lock-step) whose rates differ several-fold.
 */
bool
bench_pinning(void)
{
	const char *e = getenv("FLOWQ_BENCH_PIN");

	return e != NULL && strcmp(e, "0") != 0 && sysconf(_SC_NPROCESSORS_ONLN) >= 2;
}

void
bench_pin_self(long cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	/* Best effort: a failure leaves the thread unpinned, never wrong. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}
