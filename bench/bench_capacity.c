/*
 * bench_capacity: cost of global capacity accounting on the engine's
 * submit -> dispatch hand-off (DESIGN.md, "Performance notes").
 *
 * Cases: BM_capacity_<variant>/producers:P/real_time for P in {1, 2, 4}:
 *
 *   none           no accounting: the raw flowq_mpsc hand-off, the ceiling.
 *   global_atomic  the naive design: one shared pair of atomics (requests,
 *                  bytes) on one line; a producer fetch_adds both per item
 *                  and rolls back on overflow, the consumer fetch_subs both
 *                  once per dequeue batch.
 *   flowq_cap      core/capacity.c: per-CPU credit taken from the global
 *                  pool in chunks (flowq__cap_reserve per item,
 *                  flowq__cap_release once per dequeue batch); both
 *                  dimensions of a slot packed in one word, one CAS per
 *                  reserve.
 *
 * Workload. The engine's pattern: P producers each reserve (1 request + the
 * item's bytes) and then flowq_mpsc_enqueue; one consumer (the benchmark
 * thread) takes up to BENCH_CAP_DEQUEUE_BATCH items per
 * flowq_mpsc_dequeue_batch, logs each (producer, seq) and releases the
 * batch's sums in one call. One iteration is one item; items move in
 * batches of BENCH_CAP_ITEMS split evenly among the producers, a thread pool
 * created once per run and released per batch through a gate: the harness
 * shared with bench_mpsc.c (bench_harness.h), without its watchdog, since
 * no variant makes a producer wait on another. Item sizes vary (100..1123
 * bytes) so the byte dimension really counts. Limits are high enough never
 * to reject (a batch never has more than BENCH_CAP_ITEMS items outstanding)
 * but finite, so the accounting runs; a producer whose reserve fails would
 * retry, and the retries are reported (counter rejects, expected 0).
 *
 * Checks, after the timed region of every batch (timer paused): every item
 * delivered once, in per-producer order (as bench_mpsc), and the capacity
 * back to zero in use (flowq__cap_in_use, or the naive pair == 0): the
 * conservation of I2. A failure fails the case (bench_skip_with_error).
 *
 * Pinning: FLOWQ_BENCH_PIN=1 puts the consumer alone on the last CPU and the
 * producers on the others, as in bench_mpsc.c (the harness does it).
 *
 * Read ratios within one run (flowq_cap / none, global_atomic / none): on
 * this project's shared 2-vCPU machines absolute rates swing run to run.
 */

#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/alloc.h>
#include <flowq/mpsc.h>

#include "capacity.h"
#include "bench.h"
#include "bench_harness.h"

/* Items per batch (one iteration each); a multiple of every P used. */
#define BENCH_CAP_ITEMS         (1u << 20)
#define BENCH_CAP_MAX_PRODUCERS 4
/* Items per flowq_mpsc_dequeue_batch() call, and so per release. */
#define BENCH_CAP_DEQUEUE_BATCH 64
/* Most pause instructions the consumer spins after an empty poll. */
#define BENCH_CAP_BACKOFF_MAX 64u
/* Consumer reads the clock once per this many polls (power of two; hang guard). */
#define BENCH_CAP_CLOCK_EVERY 4096
/* A batch that takes this long means lost credit: abort, do not hang. */
#define BENCH_CAP_HANG_NS (60ull * 1000000000ull)
/* Limits: never reached (at most BENCH_CAP_ITEMS outstanding), not 0. */
#define BENCH_CAP_LIMIT_REQ   (4ull * BENCH_CAP_ITEMS)
#define BENCH_CAP_LIMIT_BYTES (4ull * BENCH_CAP_ITEMS * 2048)

#define BENCH_LINE  64
#define BENCH_BLOCK 128

enum bench_cap_variant {
	BENCH_CAP_NONE,
	BENCH_CAP_GLOBAL_ATOMIC,
	BENCH_CAP_FLOWQ_CAP,
};

struct bench_cap_desc {
	enum bench_cap_variant variant;
	const char *name; /* the <variant> in BM_capacity_<variant> */
};

static const struct bench_cap_desc bench_cap_variants[] = {
	{BENCH_CAP_NONE, "none"},
	{BENCH_CAP_GLOBAL_ATOMIC, "global_atomic"},
	{BENCH_CAP_FLOWQ_CAP, "flowq_cap"},
};

/* One item: link, payload and size on one line of its producer's slice. */
struct bench_cap_item {
	_Alignas(BENCH_LINE) struct flowq_mpsc_node node;
	uint32_t producer;
	uint32_t seq;
	uint64_t bytes;
};

_Static_assert(sizeof(struct bench_cap_item) == BENCH_LINE, "an item is one line");

/* What one producer of a run owns, on its own line. */
struct bench_cap_producer {
	/* Set before the threads start; read by the producer only. */
	_Alignas(BENCH_LINE) struct bench_cap_item *items;
	size_t count;
	/*
	 * Written by the producer inside produce(), which the harness
	 * publishes to the consumer with its release increment of done.
	 */
	uint64_t rejects;
};

struct bench_cap_run {
	/* Consumer line, producer line. */
	_Alignas(BENCH_BLOCK) struct flowq_mpsc mpsc;
	/* The naive pair: one line written by every producer and the consumer. */
	_Alignas(BENCH_BLOCK) struct {
		_Atomic uint64_t req;
		_Atomic uint64_t bytes;
	} naive;
	_Alignas(BENCH_BLOCK) struct flowq__cap cap;

	/* Read-mostly. */
	_Alignas(BENCH_BLOCK) enum bench_cap_variant variant;
	unsigned nproducers;

	struct bench_cap_producer producers[BENCH_CAP_MAX_PRODUCERS];
};

/* Item pool, allocated and pre-faulted once per process; one run at a time. */
static struct bench_cap_item *bench_cap_pool;

/* ---- the naive design ---------------------------------------------------- */

/**
 * Reserve 1 request and @p bytes on the shared pair, rolling back on
 * overflow. Relaxed: on x86 every lock-prefixed RMW costs the same whatever
 * the order, and the naive design's cost is the shared line, not a fence.
 */
static inline bool
bench_naive_reserve(struct bench_cap_run *r, uint64_t bytes)
{
	if (atomic_fetch_add_explicit(&r->naive.req, 1, memory_order_relaxed) >=
	    BENCH_CAP_LIMIT_REQ) {
		atomic_fetch_sub_explicit(&r->naive.req, 1, memory_order_relaxed);
		return false;
	}
	if (atomic_fetch_add_explicit(&r->naive.bytes, bytes, memory_order_relaxed) +
		    bytes >
	    BENCH_CAP_LIMIT_BYTES) {
		atomic_fetch_sub_explicit(&r->naive.bytes, bytes, memory_order_relaxed);
		atomic_fetch_sub_explicit(&r->naive.req, 1, memory_order_relaxed);
		return false;
	}
	return true;
}

/* ---- producers ----------------------------------------------------------- */

/**
 * The harness's produce(): reserve and enqueue producer @p index's share of
 * one batch. The switch picks the variant once, outside the per-item loops
 * (STYLE.md §8). Adds the failed reserves (retried; 0 expected) to the
 * producer's rejects; returns the items enqueued, all of them (no watchdog).
 */
static size_t
bench_cap_produce(struct bench_pool *pool, unsigned index, void *ctx)
{
	struct bench_cap_run *r = ctx;
	struct bench_cap_producer *p = &r->producers[index];
	struct bench_cap_item *it = p->items;
	size_t n = p->count;
	uint64_t rejects = 0;

	(void)pool;

	switch (r->variant) {
	case BENCH_CAP_NONE:
		for (size_t i = 0; i < n; i++)
			flowq_mpsc_enqueue(&r->mpsc, &it[i].node);
		break;
	case BENCH_CAP_GLOBAL_ATOMIC:
		for (size_t i = 0; i < n; i++) {
			while (!bench_naive_reserve(r, it[i].bytes)) {
				rejects++;
				sched_yield();
			}
			flowq_mpsc_enqueue(&r->mpsc, &it[i].node);
		}
		break;
	case BENCH_CAP_FLOWQ_CAP:
		for (size_t i = 0; i < n; i++) {
			while (flowq__cap_reserve(&r->cap, it[i].bytes) != 0) {
				rejects++;
				sched_yield();
			}
			flowq_mpsc_enqueue(&r->mpsc, &it[i].node);
		}
		break;
	}
	p->rejects += rejects;
	return n;
}

/* ---- consumer ------------------------------------------------------------- */

/** Give back one dequeue batch's capacity: one call per batch. */
static inline void
bench_cap_release(struct bench_cap_run *r, uint64_t n, uint64_t bytes)
{
	switch (r->variant) {
	case BENCH_CAP_NONE:
		break;
	case BENCH_CAP_GLOBAL_ATOMIC:
		/* Relaxed: see bench_naive_reserve(). */
		atomic_fetch_sub_explicit(&r->naive.req, n, memory_order_relaxed);
		atomic_fetch_sub_explicit(&r->naive.bytes, bytes, memory_order_relaxed);
		break;
	case BENCH_CAP_FLOWQ_CAP:
		flowq__cap_release(&r->cap, n, bytes);
		break;
	}
}

/**
 * The harness's drain(): one flowq_mpsc_dequeue_batch() of up to @p max
 * (<= BENCH_CAP_DEQUEUE_BATCH) items, logged, and one release of their sums.
 */
static size_t
bench_cap_drain(void *ctx, uint64_t *log, size_t max)
{
	struct bench_cap_run *r = ctx;
	struct flowq_mpsc_node *nodes[BENCH_CAP_DEQUEUE_BATCH];
	uint64_t bytes = 0;
	size_t n;

	n = flowq_mpsc_dequeue_batch(&r->mpsc, nodes, max);
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *raw = (const char *)nodes[i];
		const struct bench_cap_item *it =
			(const void *)(raw - offsetof(struct bench_cap_item, node));

		log[i] = bench_pool_tag(it->producer, it->seq);
		bytes += it->bytes;
	}
	bench_cap_release(r, n, bytes);
	return n;
}

/**
 * Conservation check of one batch, outside the timing: every item once, in
 * per-producer order, and no capacity left in use. Returns 0 or -1 with a
 * message in @p msg.
 */
static int
bench_cap_verify(const struct bench_pool *pool, const uint64_t *log, size_t got,
		 char *msg, size_t len, void *ctx)
{
	struct bench_cap_run *r = ctx;
	uint64_t used_req = 0, used_bytes = 0;

	if (bench_pool_check_fifo(pool, log, got, msg, len) != 0)
		return -1;
	if (r->variant == BENCH_CAP_GLOBAL_ATOMIC) {
		used_req = atomic_load_explicit(&r->naive.req, memory_order_relaxed);
		used_bytes = atomic_load_explicit(&r->naive.bytes, memory_order_relaxed);
	} else if (r->variant == BENCH_CAP_FLOWQ_CAP) {
		flowq__cap_in_use(&r->cap, &used_req, &used_bytes);
	}
	if (used_req != 0 || used_bytes != 0) {
		snprintf(msg, len,
			 "capacity not conserved: %" PRIu64 " requests / %" PRIu64
			 " bytes still in use at quiescence",
			 used_req, used_bytes);
		return -1;
	}
	return 0;
}

/** Free a run made by bench_cap_run_create(). */
static void
bench_cap_run_destroy(struct bench_cap_run *r)
{
	if (r->cap.slots != NULL)
		flowq__cap_fini(&r->cap);
	free(r);
}

/** A run of @p variant with @p nproducers: queue, accounting, item slices. */
static struct bench_cap_run *
bench_cap_run_create(enum bench_cap_variant variant, unsigned nproducers)
{
	struct flowq__cap_config cfg = {
		.limit_req = BENCH_CAP_LIMIT_REQ,
		.limit_bytes = BENCH_CAP_LIMIT_BYTES,
	};
	size_t size = (sizeof(struct bench_cap_run) + BENCH_BLOCK - 1) / BENCH_BLOCK *
		      BENCH_BLOCK;
	size_t per = BENCH_CAP_ITEMS / nproducers;
	struct bench_cap_run *r = aligned_alloc(BENCH_BLOCK, size);

	if (r == NULL)
		return NULL;
	memset(r, 0, size);
	r->variant = variant;
	r->nproducers = nproducers;
	if (flowq__cap_init(&r->cap, flowq_allocator_libc(), &cfg) != 0) {
		bench_cap_run_destroy(r);
		return NULL;
	}
	flowq_mpsc_init(&r->mpsc);
	atomic_init(&r->naive.req, 0);
	atomic_init(&r->naive.bytes, 0);
	for (unsigned p = 0; p < nproducers; p++) {
		struct bench_cap_producer *pr = &r->producers[p];

		pr->items = bench_cap_pool + (size_t)p * per;
		pr->count = per;
		for (size_t i = 0; i < per; i++) {
			pr->items[i].producer = p;
			pr->items[i].seq = (uint32_t)i;
			pr->items[i].bytes = 100 + (i * 2654435761u >> 7) % 1024;
		}
	}
	return r;
}

/** The harness's reset(): an empty queue for the next batch. */
static void
bench_cap_reset(void *ctx)
{
	struct bench_cap_run *r = ctx;

	flowq_mpsc_init(&r->mpsc);
}

/** The benchmark function of every BM_capacity_<variant>/producers:P. */
static void
bench_cap_case(struct bench_state *st, void *arg)
{
	const struct bench_cap_desc *desc = arg;
	int64_t nproducers = bench_range(st, 0);
	struct bench_pool_config cfg = {
		.suite = "BM_capacity",
		.items = BENCH_CAP_ITEMS,
		.drain_max = BENCH_CAP_DEQUEUE_BATCH,
		.backoff_max = BENCH_CAP_BACKOFF_MAX,
		.clock_every = BENCH_CAP_CLOCK_EVERY,
		.watchdog_ns = 0,
		.hang_ns = BENCH_CAP_HANG_NS,
		.produce = bench_cap_produce,
		.drain = bench_cap_drain,
		.verify = bench_cap_verify,
		.reset = bench_cap_reset,
	};
	struct bench_pool_totals totals;
	struct bench_cap_run *r;
	uint64_t rejects = 0;
	int err;

	if (nproducers < 1 || nproducers > BENCH_CAP_MAX_PRODUCERS ||
	    BENCH_CAP_ITEMS % nproducers != 0) {
		bench_skip_with_error(st, "producers must divide 2^20 and be 1..4");
		return;
	}
	if (bench_cap_pool == NULL)
		bench_cap_pool =
			bench_pool_prefault(sizeof(*bench_cap_pool) * BENCH_CAP_ITEMS);
	if (bench_cap_pool == NULL) {
		bench_skip_with_error(st, "out of memory for the item pool");
		return;
	}
	r = bench_cap_run_create(desc->variant, (unsigned)nproducers);
	if (r == NULL) {
		bench_skip_with_error(st, "out of memory for the run");
		return;
	}
	cfg.nproducers = r->nproducers;
	cfg.ctx = r;
	err = bench_pool_measure(st, &cfg, &totals);
	for (unsigned p = 0; p < r->nproducers; p++)
		rejects += r->producers[p].rejects;
	bench_cap_run_destroy(r);
	if (err != 0)
		return;
	bench_set_counter(st, "rejects", (double)rejects, BENCH_COUNTER_PLAIN);
}

void
bench_capacity_register(void)
{
	static const int producers[] = {1, 2, 4};
	char name[64];

	for (size_t i = 0; i < sizeof(bench_cap_variants) / sizeof(bench_cap_variants[0]);
	     i++) {
		snprintf(name, sizeof(name), "BM_capacity_%s",
			 bench_cap_variants[i].name);
		/* The table is never written; arg is void * only for the shim. */
		bench_pool_register(name, bench_cap_case, (void *)&bench_cap_variants[i],
				    producers, sizeof(producers) / sizeof(producers[0]));
	}
}
