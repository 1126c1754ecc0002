/*
 * stress_capacity: T producers reserve capacity and hand their requests to
 * one consumer that releases them in batches, the engine's submit/dispatch
 * pattern, on one struct flowq__cap with limits small enough that -ENOSPC
 * is frequent.
 *
 *   stress_capacity T [ATTEMPTS [SEED]]   (defaults: ATTEMPTS 2000000, SEED 1)
 *
 * Producer p makes ATTEMPTS / T reserve attempts of random sizes: mostly
 * below a byte chunk, one in eight above it (the large-request path), some
 * of 0 bytes. Three in four go through flowq__cap_reserve() (the calling
 * CPU's slot), one in four through flowq__cap_reserve_on() with a random
 * slot, which simulates migration mid-operation: several threads then race
 * on one slot, and refills, spills and steals race each other (a steal
 * clears one field of a slot word while reserves and releases move both). A successful
 * reserve hands a preallocated item (its size inside) to the consumer
 * through a flowq_mpsc. The consumer dequeues random batches and releases
 * each batch with one call (sums), sometimes on a random slot, sometimes
 * after a pause so that the limit is reached and producers see -ENOSPC.
 *
 * Checks (each failure counts one violation, described on stderr):
 *  - I1 at every step, through shadow counters: a producer increments them
 *    after a successful reserve and checks the new value <= limit; the
 *    consumer decrements them before it releases. A release happens-before
 *    the reserve that reuses its credit (core/capacity.c, O1), and the
 *    shadow operations are sequenced inside that window, so a shadow value
 *    above the limit is a real over-admission, not a benign race;
 *  - reserve returns only 0 or -ENOSPC;
 *  - at the end (quiescent, threads joined): every successful reserve was
 *    consumed exactly once, shadows are 0, flowq__cap_in_use() is (0, 0),
 *    and I2: global pool + every slot == limit exactly, in both dimensions;
 *  - after that, a single-threaded fill must reach the limit exactly (I3).
 *
 * Output: exactly one line on stdout,
 *   SUMMARY stress_capacity threads=T attempts=N reserved=R enospc=E
 *     violations=V seconds=S
 * (details to stderr); the exit status is 1 if V > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
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
#include "stress_soak.h"
#include "test_util.h"

#define MAX_THREADS 64
#define MAX_BATCH   64

/* Small limits: a few dozen requests in flight, so -ENOSPC is common. */
#define LIMIT_REQ   48u
#define LIMIT_BYTES 40000u
/* More slots than this machine's CPUs: random-slot calls contend. */
#define NSLOTS 4u

struct item {
	struct flowq_mpsc_node node;
	uint32_t producer;
	uint64_t bytes;
	/* Producer writes 1 before enqueue; the consumer checks and clears. */
	uint32_t live;
};

struct producer {
	pthread_t thread;
	uint32_t id;
	uint32_t attempts;
	struct item *items;
	uint64_t rng;
	/* Written by the producer only; read by main after the join. */
	uint64_t reserved, enospc, bytes;
};

static struct flowq__cap cap;
static struct flowq_mpsc queue;
static pthread_barrier_t start;
static _Atomic unsigned producers_done;
static _Atomic uint64_t shadow_req, shadow_bytes;

/** A short pause without a system call. */
static void
spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++) {
	}
}

/** A random request size: mostly under a chunk, 1/8 large, 1/16 zero. */
static uint64_t
random_size(uint64_t *rng)
{
	uint64_t r = test_rng_next(rng);

	if (r % 16 == 0)
		return 0;
	if (r % 8 == 1)
		return cap.chunk[FLOWQ__CAP_BYTES] + 1 + (r >> 20) % 8000;
	return 1 + (r >> 20) % 2000;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint32_t used = 0;

	pthread_barrier_wait(&start);
	for (uint32_t i = 0; i < p->attempts; i++) {
		uint64_t r = test_rng_next(&p->rng), b = random_size(&p->rng), v;
		int rc;

		if (r % 4 == 0)
			rc = flowq__cap_reserve_on(&cap, (unsigned)(r >> 32), b);
		else
			rc = flowq__cap_reserve(&cap, b);
		if (rc == -ENOSPC) {
			p->enospc++;
			if ((r >> 8) % 8 == 0)
				sched_yield();
			else
				spin((unsigned)((r >> 40) % 256));
			continue;
		}
		if (rc != 0) {
			test_violation("stress_capacity", "reserve returned %d", rc);
			continue;
		}
		/* Relaxed: ordered by the credit's release/acquire (O1). */
		v = atomic_fetch_add_explicit(&shadow_req, 1, memory_order_relaxed) + 1;
		if (v > LIMIT_REQ)
			test_violation("stress_capacity",
				       "I1: %" PRIu64 " requests outstanding, limit %u",
				       v, LIMIT_REQ);
		v = atomic_fetch_add_explicit(&shadow_bytes, b, memory_order_relaxed) + b;
		if (v > LIMIT_BYTES)
			test_violation("stress_capacity",
				       "I1: %" PRIu64 " bytes outstanding, limit %u", v,
				       LIMIT_BYTES);
		struct item *it = &p->items[used++];

		it->producer = p->id;
		it->bytes = b;
		it->live = 1;
		p->reserved++;
		p->bytes += b;
		flowq_mpsc_enqueue(&queue, &it->node);
	}
	/* Release: every enqueue above happens-before the consumer's acquire. */
	atomic_fetch_add_explicit(&producers_done, 1, memory_order_release);
	return NULL;
}

struct consumer {
	unsigned nthreads;
	uint64_t rng;
	uint64_t consumed, bytes, batches;
};

/** Take up to a random batch; release it with one call. Returns the count. */
static size_t
consume_batch(struct consumer *c)
{
	struct flowq_mpsc_node *buf[MAX_BATCH];
	uint64_t r = test_rng_next(&c->rng), sum = 0;
	size_t n = flowq_mpsc_dequeue_batch(&queue, buf, 1 + r % MAX_BATCH);

	if (n == 0)
		return 0;
	for (size_t k = 0; k < n; k++) {
		struct item *it =
			(struct item *)((char *)buf[k] - offsetof(struct item, node));

		if (it->live != 1)
			test_violation("stress_capacity",
				       "item consumed twice or never produced");
		it->live = 0;
		sum += it->bytes;
	}
	/* Shadows down before the credit is released (see the top comment). */
	atomic_fetch_sub_explicit(&shadow_req, n, memory_order_relaxed);
	atomic_fetch_sub_explicit(&shadow_bytes, sum, memory_order_relaxed);
	if ((r >> 8) % 8 == 0)
		flowq__cap_release_on(&cap, (unsigned)(r >> 32), n, sum);
	else
		flowq__cap_release(&cap, n, sum);
	c->consumed += n;
	c->bytes += sum;
	c->batches++;
	/* Sometimes hold the capacity for a while: producers hit the limit. */
	if ((r >> 16) % 32 == 0)
		spin((unsigned)((r >> 40) % 20000));
	return n;
}

static void
consume(struct consumer *c)
{
	unsigned idle = 0;

	for (;;) {
		if (consume_batch(c) > 0) {
			idle = 0;
			continue;
		}
		/* Acquire: pairs with the producers' release increment. */
		if (atomic_load_explicit(&producers_done, memory_order_acquire) ==
			    c->nthreads &&
		    flowq_mpsc_empty(&queue))
			return;
		if (++idle % 64 == 0)
			sched_yield();
	}
}

/** I2 at quiescence: global + slots == limit in both dimensions. */
static void
check_quiescent(const char *when)
{
	uint64_t g[2], s[2], sum[2], used_req, used_bytes;

	flowq__cap_credit(&cap, FLOWQ__CAP_GLOBAL, &g[0], &g[1]);
	sum[0] = g[0];
	sum[1] = g[1];
	for (unsigned i = 0; i < cap.nslots; i++) {
		flowq__cap_credit(&cap, i, &s[0], &s[1]);
		sum[0] += s[0];
		sum[1] += s[1];
	}
	if (sum[0] != LIMIT_REQ || sum[1] != LIMIT_BYTES)
		test_violation("stress_capacity",
			       "I2 %s: free credit %" PRIu64 " req / %" PRIu64
			       " bytes, limits %u / %u",
			       when, sum[0], sum[1], LIMIT_REQ, LIMIT_BYTES);
	flowq__cap_in_use(&cap, &used_req, &used_bytes);
	if (used_req != 0 || used_bytes != 0)
		test_violation("stress_capacity",
			       "in_use %s: %" PRIu64 " req / %" PRIu64 " bytes, want 0",
			       when, used_req, used_bytes);
}

/** I3 after the run: one thread fills to exactly the limit, one more fails. */
static void
check_exact_fill(void)
{
	uint64_t n = 0;

	while (n < LIMIT_REQ) {
		int rc =
			flowq__cap_reserve_on(&cap, (unsigned)n, LIMIT_BYTES / LIMIT_REQ);

		if (rc != 0) {
			test_violation("stress_capacity",
				       "I3: reserve %" PRIu64 " of %u failed (%d)", n,
				       LIMIT_REQ, rc);
			return;
		}
		n++;
	}
	if (flowq__cap_reserve_on(&cap, 1, 0) != -ENOSPC)
		test_violation("stress_capacity",
			       "I3: reserve beyond the request limit succeeded");
	flowq__cap_release_on(&cap, 2, n, n * (LIMIT_BYTES / LIMIT_REQ));
	check_quiescent("after the exact fill");
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	static struct producer prod[MAX_THREADS];
	struct flowq__cap_config cfg = {
		.limit_req = LIMIT_REQ,
		.limit_bytes = LIMIT_BYTES,
		.nslots = NSLOTS,
	};
	struct consumer c = {0};
	uint64_t attempts = 2000000, seed = 1, reserved = 0, enospc = 0, bytes = 0;
	unsigned nthreads;
	uint32_t per;
	double t0, secs;
	int rc;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: stress_capacity THREADS [ATTEMPTS [SEED]]\n");
		return 2;
	}
	nthreads = (unsigned)test_parse_ulong("stress_capacity", argv[1], "thread count",
					      1, MAX_THREADS);
	if (argc > 2)
		attempts = test_parse_ulong("stress_capacity", argv[2], "attempt count",
					    1, UINT32_MAX);
	if (argc > 3)
		seed = test_parse_ulong("stress_capacity", argv[3], "seed", 0, ~0ul);
	per = (uint32_t)((attempts + nthreads - 1) / nthreads);

	rc = flowq__cap_init(&cap, flowq_allocator_libc(), &cfg);
	if (rc != 0) {
		fprintf(stderr, "stress_capacity: flowq__cap_init: %d\n", rc);
		return 2;
	}
	fprintf(stderr,
		"stress_capacity: threads=%u attempts=%" PRIu64 " seed=%" PRIu64
		" limits=%u req/%u bytes slots=%u chunks=%" PRIu64 "/%" PRIu64
		" byte field bits=%u\n",
		nthreads, (uint64_t)per * nthreads, seed, LIMIT_REQ, LIMIT_BYTES,
		cap.nslots, cap.chunk[FLOWQ__CAP_REQ], cap.chunk[FLOWQ__CAP_BYTES],
		cap.shift);
	/* A clean slate for each soak iteration. */
	memset(prod, 0, sizeof(prod));
	atomic_store(&producers_done, 0);
	atomic_store(&shadow_req, 0);
	atomic_store(&shadow_bytes, 0);
	flowq_mpsc_init(&queue);
	c.nthreads = nthreads;
	c.rng = seed;
	if (pthread_barrier_init(&start, NULL, nthreads + 1) != 0) {
		fprintf(stderr, "stress_capacity: pthread_barrier_init failed\n");
		return 2;
	}
	for (unsigned p = 0; p < nthreads; p++) {
		prod[p].id = p;
		prod[p].attempts = per;
		prod[p].rng = seed * 1000003u + p + 1;
		/* One item per attempt at most: never reused, never allocated late. */
		prod[p].items = calloc(per, sizeof(struct item));
		if (prod[p].items == NULL ||
		    pthread_create(&prod[p].thread, NULL, producer_main, &prod[p]) != 0) {
			fprintf(stderr, "stress_capacity: out of memory or threads\n");
			return 2;
		}
	}
	pthread_barrier_wait(&start);
	t0 = test_now_seconds();
	consume(&c);
	for (unsigned p = 0; p < nthreads; p++) {
		pthread_join(prod[p].thread, NULL);
		reserved += prod[p].reserved;
		enospc += prod[p].enospc;
		bytes += prod[p].bytes;
	}
	secs = test_now_seconds() - t0;

	/* Quiescent now. */
	if (c.consumed != reserved || c.bytes != bytes)
		test_violation("stress_capacity",
			       "consumed %" PRIu64 " items / %" PRIu64
			       " bytes, reserved %" PRIu64 " / %" PRIu64,
			       c.consumed, c.bytes, reserved, bytes);
	if (atomic_load_explicit(&shadow_req, memory_order_relaxed) != 0 ||
	    atomic_load_explicit(&shadow_bytes, memory_order_relaxed) != 0)
		test_violation("stress_capacity", "shadow counters not back to 0");
	if (enospc == 0)
		test_violation("stress_capacity",
			       "no -ENOSPC at all: the limits did not bite");
	check_quiescent("at the end");
	check_exact_fill();

	fprintf(stderr,
		"stress_capacity: reserved=%" PRIu64 " enospc=%" PRIu64
		" batches=%" PRIu64 " bytes=%" PRIu64 "\n",
		reserved, enospc, c.batches, bytes);
	stress_soak_count("ops", (uint64_t)per * nthreads);
	stress_soak_count("reserved", reserved);
	stress_soak_count("enospc", enospc);
	printf("SUMMARY stress_capacity threads=%u attempts=%" PRIu64 " reserved=%" PRIu64
	       " enospc=%" PRIu64 " violations=%lu seconds=%.3f\n",
	       nthreads, (uint64_t)per * nthreads, reserved, enospc,
	       atomic_load(test_violations()), secs);
	for (unsigned p = 0; p < nthreads; p++)
		free(prod[p].items);
	flowq__cap_fini(&cap);
	pthread_barrier_destroy(&start);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_capacity", argc, argv, run, test_violations());
}
