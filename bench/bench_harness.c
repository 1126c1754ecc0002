/*
 * bench_harness: the P producers -> 1 consumer harness of BM_mpsc and
 * BM_capacity (see bench_harness.h for the interface).
 *
 * Producers. A pool of threads created once per run and parked on a
 * condition variable between batches, so thread creation is outside the
 * timing and a wake-up (tens of us) is well under 1% of a batch (tens of
 * ms). The consumer bumps a generation counter under the gate lock to
 * release one batch; each producer calls produce() once, stores what it
 * returned, and increments done with release.
 *
 * Consumer. The benchmark thread drains until every item produced is back,
 * backing off (bounded, exponential) after an empty poll, and reads the
 * clock once per clock_every polls for the watchdog and the hang guard.
 * In completion mode (no drain(): the suite's own threads consume and hand
 * each item back to its producer) it sleeps on a condition variable that
 * the last producer to finish signals, with a timeout at the watchdog and
 * the hang deadlines: it must not spin, since on 2 CPUs the suite's
 * consumer threads need both.
 *
 * Watchdog. A producer can stall the others (ck_ring's multi-producer
 * enqueue waits for earlier producers to commit; with more producers than
 * cores a preempted one stalls the rest for a timeslice, perf-anchors.md
 * §1, §4.1). So a batch has a time budget (watchdog_ns): when it runs out,
 * the stop flag tells the producers to stop producing new items, the
 * consumer drains what was produced, and the run reports the rate actually
 * achieved and that it stalled. A second, much longer limit (hang_ns)
 * aborts the process rather than hang.
 *
 * Pinning, on request (bench_pinning(), FLOWQ_BENCH_PIN=1): the consumer
 * alone on the last CPU, the producers on the others, so that P=1 does not
 * land at random in one of two regimes several-fold apart.
 */
/* pthread_{get,set}affinity_np() and cpu_set_t for FLOWQ_BENCH_PIN. */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_harness.h"

#define BENCH_POOL_LINE 64
/*
 * Adjacent-line prefetchers (Intel's spatial prefetcher, AMD's L2 "up/down"
 * one) move 64-byte lines in aligned 128-byte pairs.
 */
#define BENCH_POOL_BLOCK 128

/* One producer thread of a run. */
struct bench_pool_producer {
	/* Set before the thread starts; read by the producer only. */
	_Alignas(BENCH_POOL_LINE) struct bench_pool *pool;
	unsigned index;
	pthread_t thread;
	/*
	 * Written by the producer before its release increment of done;
	 * read by the consumer after an acquire load of done == P.
	 */
	size_t produced;
};

struct bench_pool {
	/*
	 * Read by every producer, written by the consumer only between
	 * batches and once when the watchdog fires: stays shared.
	 */
	_Alignas(BENCH_POOL_BLOCK) _Atomic bool stop;
	/* Read-mostly: a copy, so no producer reads the caller's stack. */
	struct bench_pool_config cfg;
	bool pinned;
	unsigned started; /* producer threads running; consumer only */

	/* Start gate: the consumer bumps gen to release one batch. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	/*
	 * Completion mode: the last producer to finish a batch signals it,
	 * under gate_lock. CLOCK_MONOTONIC, for the timed waits.
	 */
	pthread_cond_t done_cond;
	unsigned gate_gen;
	bool quit;

	/* Producers that finished the batch; one increment each. */
	_Alignas(BENCH_POOL_BLOCK) _Atomic unsigned done;

	struct bench_pool_producer producers[BENCH_POOL_MAX_PRODUCERS];
};

/*
 * Consumer log, shared by all runs (one run at a time). Allocated and
 * pre-faulted once, so no run pays page faults in its timing.
 */
static uint64_t *bench_pool_log;
static size_t bench_pool_log_len;

void *
bench_pool_prefault(size_t size)
{
	size_t rounded = (size + BENCH_POOL_LINE - 1) / BENCH_POOL_LINE * BENCH_POOL_LINE;
	void *mem;

	/* aligned_alloc() wants a multiple of the alignment. */
	mem = aligned_alloc(BENCH_POOL_LINE, rounded);
	if (mem != NULL)
		memset(mem, 0, rounded);
	return mem;
}

static int
bench_pool_log_get(size_t items)
{
	uint64_t *log;

	if (items <= bench_pool_log_len)
		return 0;
	log = bench_pool_prefault(sizeof(*log) * items);
	if (log == NULL)
		return -ENOMEM;
	free(bench_pool_log);
	bench_pool_log = log;
	bench_pool_log_len = items;
	return 0;
}

const _Atomic bool *
bench_pool_stop_flag(const struct bench_pool *pool)
{
	return &pool->stop;
}

size_t
bench_pool_produced(const struct bench_pool *pool, unsigned index)
{
	return pool->producers[index].produced;
}

int
bench_pool_check_fifo(const struct bench_pool *pool, const uint64_t *log, size_t got,
		      char *msg, size_t len)
{
	uint32_t next[BENCH_POOL_MAX_PRODUCERS] = {0};
	unsigned nproducers = pool->cfg.nproducers;
	uint32_t producer, seq;

	for (size_t i = 0; i < got; i++) {
		producer = (uint32_t)(log[i] >> 32);
		seq = (uint32_t)log[i];
		if (producer >= nproducers) {
			snprintf(msg, len,
				 "dequeue %zu: invented item (producer %" PRIu32
				 " of %u)",
				 i, producer, nproducers);
			return -1;
		}
		if (seq != next[producer]) {
			snprintf(msg, len,
				 "dequeue %zu: producer %" PRIu32 " item %" PRIu32
				 " where %" PRIu32
				 " was due (lost, duplicated or reordered)",
				 i, producer, seq, next[producer]);
			return -1;
		}
		next[producer]++;
	}
	for (unsigned p = 0; p < nproducers; p++) {
		if (next[p] != pool->producers[p].produced) {
			snprintf(msg, len,
				 "producer %u: %zu items enqueued, %" PRIu32 " dequeued",
				 p, pool->producers[p].produced, next[p]);
			return -1;
		}
	}
	return 0;
}

struct bench_case *
bench_pool_register(const char *name, void (*fn)(struct bench_state *st, void *arg),
		    void *arg, const int *producers, size_t count)
{
	struct bench_case *c = bench_register(name, fn, arg);

	if (c == NULL)
		return NULL;
	bench_case_arg_name(c, "producers");
	for (size_t i = 0; i < count; i++)
		bench_case_arg(c, producers[i]);
	bench_case_use_real_time(c);
	bench_case_unit(c, BENCH_UNIT_NS);
	return c;
}

/* ---- Producers ----------------------------------------------------------- */

static void *
bench_pool_producer_main(void *arg)
{
	struct bench_pool_producer *p = arg;
	struct bench_pool *pool = p->pool;
	unsigned seen = 0;

	if (pool->pinned)
		bench_pin_self((long)p->index % (sysconf(_SC_NPROCESSORS_ONLN) - 1));

	for (;;) {
		/*
		 * The gate lock orders the consumer's reset of the queue, stop
		 * and done before this batch's enqueues.
		 */
		pthread_mutex_lock(&pool->gate_lock);
		while (pool->gate_gen == seen && !pool->quit)
			pthread_cond_wait(&pool->gate_cond, &pool->gate_lock);
		if (pool->quit) {
			pthread_mutex_unlock(&pool->gate_lock);
			return NULL;
		}
		seen = pool->gate_gen;
		pthread_mutex_unlock(&pool->gate_lock);

		p->produced = pool->cfg.produce(pool, p->index, pool->cfg.ctx);
		/*
		 * Release: publishes produced, whatever produce() wrote, and
		 * the end of our enqueues; pairs with the consumer's acquire
		 * loads of done.
		 */
		if (atomic_fetch_add_explicit(&pool->done, 1, memory_order_release) + 1 ==
			    pool->cfg.nproducers &&
		    pool->cfg.drain == NULL) {
			/*
			 * The consumer checks done under gate_lock before it
			 * waits, so taking the lock here cannot slip the
			 * signal between its check and its wait.
			 */
			pthread_mutex_lock(&pool->gate_lock);
			pthread_cond_broadcast(&pool->done_cond);
			pthread_mutex_unlock(&pool->gate_lock);
		}
	}
}

/* Tell the producers to quit and join the ones started. */
static void
bench_pool_quit(struct bench_pool *pool)
{
	pthread_mutex_lock(&pool->gate_lock);
	pool->quit = true;
	pthread_cond_broadcast(&pool->gate_cond);
	pthread_mutex_unlock(&pool->gate_lock);
	for (unsigned p = 0; p < pool->started; p++)
		pthread_join(pool->producers[p].thread, NULL);
	pool->started = 0;
}

/* Start every producer thread; on failure, join those started. */
static int
bench_pool_start(struct bench_pool *pool)
{
	int err;

	for (; pool->started < pool->cfg.nproducers; pool->started++) {
		err = pthread_create(&pool->producers[pool->started].thread, NULL,
				     bench_pool_producer_main,
				     &pool->producers[pool->started]);
		if (err != 0) {
			bench_pool_quit(pool);
			return -err;
		}
	}
	return 0;
}

static struct bench_pool *
bench_pool_create(const struct bench_pool_config *cfg)
{
	struct bench_pool *pool;
	pthread_condattr_t attr;
	size_t size = (sizeof(*pool) + BENCH_POOL_BLOCK - 1) / BENCH_POOL_BLOCK *
		      BENCH_POOL_BLOCK;

	pool = aligned_alloc(BENCH_POOL_BLOCK, size);
	if (pool == NULL)
		return NULL;
	memset(pool, 0, size);
	pool->cfg = *cfg;
	pool->pinned = bench_pinning();
	atomic_init(&pool->stop, false);
	atomic_init(&pool->done, 0);
	pthread_mutex_init(&pool->gate_lock, NULL);
	pthread_cond_init(&pool->gate_cond, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->done_cond, &attr);
	pthread_condattr_destroy(&attr);
	for (unsigned p = 0; p < cfg->nproducers; p++) {
		pool->producers[p].pool = pool;
		pool->producers[p].index = p;
	}
	return pool;
}

static void
bench_pool_destroy(struct bench_pool *pool)
{
	pthread_cond_destroy(&pool->done_cond);
	pthread_cond_destroy(&pool->gate_cond);
	pthread_mutex_destroy(&pool->gate_lock);
	free(pool);
}

/* ---- Consumer ------------------------------------------------------------ */

/* Release the producers for one batch. */
static void
bench_pool_gate_open(struct bench_pool *pool)
{
	pthread_mutex_lock(&pool->gate_lock);
	pool->gate_gen++;
	pthread_cond_broadcast(&pool->gate_cond);
	pthread_mutex_unlock(&pool->gate_lock);
}

/* Sum of the producers' counts; valid once done == nproducers (acquire). */
static size_t
bench_pool_produced_total(const struct bench_pool *pool)
{
	size_t total = 0;

	for (unsigned p = 0; p < pool->cfg.nproducers; p++)
		total += pool->producers[p].produced;
	return total;
}

/* A batch outlived hang_ns: say how far it got, then abort, not hang. */
static void
bench_pool_hung(const struct bench_pool *pool, size_t got, size_t expected, bool stopped)
{
	fprintf(stderr, "flowq_bench: %s: %zu of %zu items after %llu s%s: giving up\n",
		pool->cfg.suite, got, expected,
		(unsigned long long)(pool->cfg.hang_ns / 1000000000u),
		stopped ? ", producers still running" : "");
	abort();
}

/*
 * Run one batch: open the gate, then drain until every item produced is
 * back. Returns the number of items delivered (logged into @log, in
 * dequeue order); *r_stalled tells whether the watchdog had to stop the
 * producers. Producers may still be returning from their last enqueue when
 * this returns: wait for done before touching the queue again.
 */
static size_t
bench_pool_batch(struct bench_pool *pool, uint64_t *log, bool *r_stalled)
{
	/* Locals: drain() is opaque, so fields would be reloaded per poll. */
	size_t (*drain)(void *, uint64_t *, size_t) = pool->cfg.drain;
	void *ctx = pool->cfg.ctx;
	size_t drain_max = pool->cfg.drain_max;
	unsigned backoff_max = pool->cfg.backoff_max;
	unsigned clock_mask = pool->cfg.clock_every - 1;
	uint64_t watchdog_ns = pool->cfg.watchdog_ns;
	size_t got = 0, expected = pool->cfg.items, want, n;
	uint64_t start, now;
	unsigned long polls = 0;
	unsigned backoff = 1;
	bool stopped = false, counted = false;

	start = bench_now_ns();
	bench_pool_gate_open(pool);
	while (got < expected) {
		want = expected - got < drain_max ? expected - got : drain_max;
		n = drain(ctx, log + got, want);
		got += n;
		/*
		 * Found nothing: back off exponentially (bounded), as a real
		 * dispatcher does before it sleeps. Re-polling at once would
		 * keep pulling the line the producer is about to write, and
		 * the run would settle, at random, either in that slow
		 * lock-step or in a fast streaming regime (P=1 repetitions
		 * spread 4x without this). Same for every peer.
		 */
		if (n == 0) {
			for (unsigned i = 0; i < backoff; i++)
				bench_cpu_relax();
			if (backoff < backoff_max)
				backoff *= 2;
		} else {
			backoff = 1;
		}
		if ((++polls & clock_mask) == 0) {
			now = bench_now_ns();
			if (!stopped && watchdog_ns != 0 && now - start > watchdog_ns) {
				atomic_store_explicit(&pool->stop, true,
						      memory_order_relaxed);
				stopped = true;
			}
			/*
			 * Past hang_ns the watchdog (shorter) has fired too, if
			 * there is one: the producers are not coming back.
			 */
			if (now - start > pool->cfg.hang_ns)
				bench_pool_hung(pool, got, expected, stopped);
		}
		/*
		 * Once stopped, the target is what the producers actually
		 * enqueued, known when all of them are done (acquire pairs
		 * with their release increment).
		 */
		if (stopped && !counted &&
		    atomic_load_explicit(&pool->done, memory_order_acquire) ==
			    pool->cfg.nproducers) {
			expected = bench_pool_produced_total(pool);
			counted = true;
		}
	}
	*r_stalled = stopped;
	return got;
}

/*
 * Completion mode: run one batch by opening the gate and sleeping until
 * every producer has returned from produce() (each returns only once all of
 * its items are back). Returns what the producers produced, summed;
 * *r_stalled tells whether the watchdog had to stop them.
 */
static size_t
bench_pool_batch_wait(struct bench_pool *pool, bool *r_stalled)
{
	uint64_t start, now, deadline;
	uint64_t watchdog_ns = pool->cfg.watchdog_ns;
	unsigned done;
	struct timespec until;
	bool stopped = false;

	start = bench_now_ns();
	bench_pool_gate_open(pool);
	pthread_mutex_lock(&pool->gate_lock);
	/* Acquire: pairs with the producers' release increment of done. */
	while ((done = atomic_load_explicit(&pool->done, memory_order_acquire)) !=
	       pool->cfg.nproducers) {
		now = bench_now_ns();
		deadline = !stopped && watchdog_ns != 0 ? start + watchdog_ns
							: start + pool->cfg.hang_ns;
		if (now >= deadline) {
			if (!stopped && watchdog_ns != 0) {
				atomic_store_explicit(&pool->stop, true,
						      memory_order_relaxed);
				stopped = true;
				continue;
			}
			pthread_mutex_unlock(&pool->gate_lock);
			fprintf(stderr,
				"flowq_bench: %s: %u of %u producers done "
				"after %llu s%s: giving up\n",
				pool->cfg.suite, done, pool->cfg.nproducers,
				(unsigned long long)(pool->cfg.hang_ns / 1000000000u),
				stopped ? " (watchdog fired)" : "");
			abort();
		}
		until.tv_sec = (time_t)(deadline / 1000000000u);
		until.tv_nsec = (long)(deadline % 1000000000u);
		pthread_cond_timedwait(&pool->done_cond, &pool->gate_lock, &until);
	}
	pthread_mutex_unlock(&pool->gate_lock);
	*r_stalled = stopped;
	return bench_pool_produced_total(pool);
}

/* Wait until every producer has left its produce() for this batch. */
static void
bench_pool_wait_done(struct bench_pool *pool)
{
	unsigned spins = 0;

	/* Acquire: pairs with the producers' release increment. */
	while (atomic_load_explicit(&pool->done, memory_order_acquire) !=
	       pool->cfg.nproducers) {
		/* A producer preempted after its last enqueue needs our CPU. */
		if (++spins % 64 == 0)
			sched_yield();
		else
			bench_cpu_relax();
	}
}

/* Arm the next batch; the producers are parked, the gate lock publishes it. */
static void
bench_pool_rearm(struct bench_pool *pool)
{
	atomic_store_explicit(&pool->stop, false, memory_order_relaxed);
	atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
}

int
bench_pool_measure(struct bench_state *st, const struct bench_pool_config *cfg,
		   struct bench_pool_totals *r_totals)
{
	struct bench_pool *pool;
	uint64_t delivered = 0;
	bool stalled = false, stalled_now;
	cpu_set_t saved_cpus;
	char msg[256];
	size_t got;
	int err;

	if (cfg->nproducers < 1 || cfg->nproducers > BENCH_POOL_MAX_PRODUCERS ||
	    cfg->items == 0 ||
	    (cfg->drain != NULL && (cfg->drain_max == 0 || cfg->clock_every == 0 ||
				    (cfg->clock_every & (cfg->clock_every - 1)) != 0))) {
		bench_skip_with_error(st, "bench_pool_config out of range");
		return -EINVAL;
	}
	if (cfg->drain != NULL && bench_pool_log_get(cfg->items) != 0) {
		bench_skip_with_error(st, "out of memory for the consumer log");
		return -ENOMEM;
	}
	pool = bench_pool_create(cfg);
	if (pool == NULL) {
		bench_skip_with_error(st, "out of memory for the producer pool");
		return -ENOMEM;
	}
	if (pool->pinned) {
		pthread_getaffinity_np(pthread_self(), sizeof(saved_cpus), &saved_cpus);
		bench_pin_self(sysconf(_SC_NPROCESSORS_ONLN) - 1);
	}
	err = bench_pool_start(pool);
	if (err != 0) {
		bench_skip_with_error(st, "pthread_create failed");
		goto out;
	}

	while (bench_keep_running_batch(st, (int64_t)cfg->items)) {
		if (cfg->drain != NULL)
			got = bench_pool_batch(pool, bench_pool_log, &stalled_now);
		else
			got = bench_pool_batch_wait(pool, &stalled_now);
		bench_pause_timing(st);
		bench_pool_wait_done(pool);
		delivered += got;
		stalled |= stalled_now;
		if (cfg->verify(pool, cfg->drain != NULL ? bench_pool_log : NULL, got,
				msg, sizeof(msg), cfg->ctx) != 0) {
			bench_skip_with_error(st, msg);
			err = -EIO;
			break;
		}
		cfg->reset(cfg->ctx);
		bench_pool_rearm(pool);
		bench_resume_timing(st);
	}
	bench_pool_quit(pool);
out:
	if (pool->pinned)
		pthread_setaffinity_np(pthread_self(), sizeof(saved_cpus), &saved_cpus);
	bench_pool_destroy(pool);
	if (err != 0)
		return err;
	bench_set_counter(st, "items_per_second", (double)delivered, BENCH_COUNTER_RATE);
	r_totals->delivered = delivered;
	r_totals->stalled = stalled;
	return 0;
}
