/*
 * bench_harness.h: the P producers -> 1 consumer harness that BM_mpsc and
 * BM_capacity share.
 *
 * Both suites measure one hand-off the same way, and the way is as much
 * part of the figure as the queue is: a pool of producer threads created
 * once per run and released per batch through a gate, a consumer (the
 * benchmark thread) that polls with a bounded backoff, a watchdog, pinning
 * on request, and conservation checks after the timed region. Keeping one
 * copy keeps the suites' figures comparable with each other; a suite only
 * supplies what differs, through struct bench_pool_config:
 *
 *   produce  one producer's share of one batch (its enqueue/reserve code);
 *   drain    the consumer's dequeue of up to max items, logged;
 *   verify   the suite's conservation check of one batch's log;
 *   reset    the suite's queue made empty for the next batch.
 *
 * One batch (bench_pool_config.items iterations): the consumer opens the
 * gate, every producer calls produce() once, and the consumer calls drain()
 * until every item is back. The harness times nothing itself: Google
 * Benchmark's timer runs over the batches and is paused around the checks.
 *
 * Completion mode (drain == NULL), for the engine suites (bench_e2e.h): the
 * consumers are threads the suite runs itself (an engine's dispatchers),
 * which hand every item back to its producer; produce() returns only once
 * all of its items are back, so a batch ends when every producer has
 * returned. The benchmark thread then only opens the gate and sleeps until
 * the last producer is done (it must not spin: on 2 CPUs the dispatchers
 * need them), and still runs the watchdog and the hang guard.
 *
 * Context: bench_pool_measure() runs inside a benchmark function, on the
 * benchmark thread, one run at a time in the process (the consumer log is
 * shared by every run).
 */
#ifndef FLOWQ_BENCH_HARNESS_H
#define FLOWQ_BENCH_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/** Most producers a run may have (the largest P any suite registers). */
#define BENCH_POOL_MAX_PRODUCERS 8
/** Producers look at the stop flag once per this many items. */
#define BENCH_POOL_STOP_EVERY 64

/** A run's producer threads, gate and counters (opaque; see bench_harness.c). */
struct bench_pool;

/** What a suite supplies to bench_pool_measure(). */
struct bench_pool_config {
	/** "BM_<suite>", for the message of a hung batch. */
	const char *suite;
	/** Producer threads, 1..BENCH_POOL_MAX_PRODUCERS. */
	unsigned nproducers;
	/** Items per batch, all producers together; one iteration each. */
	size_t items;
	/** Most items one drain() call is asked for: bounds its bookkeeping. */
	size_t drain_max;
	/**
	 * Most pause instructions the consumer spins after an empty poll;
	 * the backoff doubles from 1 up to this and resets on a hit.
	 */
	unsigned backoff_max;
	/** Consumer polls per clock read (a power of two). */
	unsigned clock_every;
	/**
	 * Time budget of one batch, after which bench_pool_stopping() turns
	 * true and the batch ends with what the producers had produced
	 * (counted as stalled); 0 for none, when produce() never waits on
	 * anyone and so cannot stall.
	 */
	uint64_t watchdog_ns;
	/** A batch still running this long after it began aborts the process. */
	uint64_t hang_ns;

	/**
	 * Producer @p index's share of one batch; returns how many items it
	 * produced (all of them unless bench_pool_stopping() cut it short).
	 * Runs on the producer's thread, once per batch; what it writes is
	 * visible to verify() (the harness publishes it with a release
	 * increment that the consumer acquires before the check).
	 */
	size_t (*produce)(struct bench_pool *pool, unsigned index, void *ctx);
	/**
	 * Dequeue up to @p max (>= 1) items, write each one's tag to @p log,
	 * and return how many; 0 when none is available now. Runs on the
	 * benchmark thread inside the timed region. NULL selects completion
	 * mode (see the top of this file): drain_max, backoff_max and
	 * clock_every are then unused.
	 */
	size_t (*drain)(void *ctx, uint64_t *log, size_t max);
	/**
	 * Check one batch (@p got tags in @p log, in dequeue order), timer
	 * paused, every producer done. Returns 0, or -1 with a message in
	 * @p msg, which fails the case. In completion mode @p log is NULL and
	 * @p got is what the producers' produce() calls returned, summed.
	 */
	int (*verify)(const struct bench_pool *pool, const uint64_t *log, size_t got,
		      char *msg, size_t len, void *ctx);
	/** Make the queue empty for the next batch; timer paused, producers parked. */
	void (*reset)(void *ctx);
	/** Passed to every callback. */
	void *ctx;
};

/** What a run measured, for the suite's own counters. */
struct bench_pool_totals {
	/** Items delivered over every batch (completion mode: produced). */
	uint64_t delivered;
	/** Whether the watchdog stopped the producers in any batch. */
	bool stalled;
};

/**
 * Run one benchmark case: start @p cfg->nproducers producer threads (pinned
 * when bench_pinning(), the benchmark thread then on the last CPU), run
 * batches while Google Benchmark asks for them, verify each one after the
 * timed region, then join the threads and restore the benchmark thread's
 * affinity. Sets counter items_per_second (a rate over the measured time)
 * and fills @p r_totals.
 *
 * The items_per_second counter counts what drain() delivered or, in
 * completion mode, what produce() returned; a suite whose items can fail
 * (an engine's rejections) overwrites it after the call.
 *
 * @return 0, or a negative errno after bench_skip_with_error() (no counter
 *         set): -EINVAL (@p cfg out of range), -ENOMEM (log or pool),
 *         pthread_create()'s error, or -EIO when verify() failed.
 */
int
bench_pool_measure(struct bench_state *st, const struct bench_pool_config *cfg,
		   struct bench_pool_totals *r_totals);

/**
 * The pool's stop flag, for produce() to read through bench_pool_stop_due()
 * without a call per item. Set by the watchdog; cleared between batches.
 */
const _Atomic bool *
bench_pool_stop_flag(const struct bench_pool *pool);

/**
 * Whether a producer at item @p i should give up on this batch: looks at
 * @p stop once every BENCH_POOL_STOP_EVERY items. Relaxed: the flag carries
 * no data, and the consumer learns how far each producer got from
 * produce()'s return value.
 */
static inline bool
bench_pool_stop_due(const _Atomic bool *stop, size_t i)
{
	return i % BENCH_POOL_STOP_EVERY == 0 &&
	       atomic_load_explicit(stop, memory_order_relaxed);
}

/** What producer @p index returned from produce() this batch; for verify(). */
size_t
bench_pool_produced(const struct bench_pool *pool, unsigned index);

/**
 * What drain() logs of an item: its producer and its number in that
 * producer's share of the batch (dense from 0), so that the log alone
 * proves conservation (bench_pool_check_fifo()).
 */
static inline uint64_t
bench_pool_tag(uint32_t producer, uint32_t seq)
{
	return (uint64_t)producer << 32 | seq;
}

/**
 * The conservation check every suite makes of a batch, for verify(): each
 * producer's tags appear in order 0, 1, 2, ... and as many as its
 * produce() returned, which proves at once no loss, no duplicate, nothing
 * invented and per-producer FIFO. Returns 0, or -1 with a message in
 * @p msg.
 */
int
bench_pool_check_fifo(const struct bench_pool *pool, const uint64_t *log, size_t got,
		      char *msg, size_t len);

/**
 * Allocate @p size bytes, cache-line aligned and zeroed, which also faults
 * every page in now rather than inside a timed region. For the suites'
 * item arrays, allocated once per process. Returns NULL when out of memory.
 */
void *
bench_pool_prefault(size_t size);

/**
 * Register the family @p name run by @p fn (with @p arg) over the producer
 * counts @p producers[0..count): cases "<name>/producers:P/real_time",
 * timed in real time (the producers' work is on other threads), unit ns.
 * Returns the case, or NULL when Google Benchmark refused it.
 */
struct bench_case *
bench_pool_register(const char *name, void (*fn)(struct bench_state *st, void *arg),
		    void *arg, const int *producers, size_t count);

#endif /* FLOWQ_BENCH_HARNESS_H */
