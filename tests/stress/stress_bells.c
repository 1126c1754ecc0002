/*
 * stress_bells: announcement nodes that move between lockstep queues, the
 * way the engine's doorbell uses them.
 *
 *   stress_bells P [RINGS [SEED]]   (defaults: RINGS 200000 ring attempts
 *                                    per producer, SEED 1)
 *
 * BELLS queues (the engine's FLOWQ__BELLS; even ones made by
 * flowq_mpsc_init(), odd ones by flowq_mpsc_init_sparse(), the engine's
 * layout) have one consumer. Each of P producers owns FLOWS flows; a flow is
 * an announced flag and one node, as struct flowq_mpsc's announce. A ring
 * attempt picks a random flow of the producer; if exchanging its flag to 1
 * returned 0 (the engine's [D1]), the producer counts the ring in the flow
 * (a plain field, published by the enqueue) and enqueues the node into the
 * queue its placement names: the engine's rule (core/registry.c,
 * flowq__flow_ring(): stay on a queue found empty, move on after RUN rings in
 * a row into a non-empty one, back to the first when a ring finds its queue
 * empty unless it just moved) and, one ring in five, a jump to a random
 * index (any placement is correct). So a node that one queue returned is
 * often enqueued next on another queue, while the consumer may still stand
 * near its old place there: a cursor left at a gap or at max, a known tail.
 * stress_mpsc --queues never does that (a producer keeps its queue).
 *
 * The consumer mixes flowq_mpsc_dequeue_lockstep() over all queues (three
 * calls in four, max 1..2 x BELLS x 4) with flowq_mpsc_dequeue_batch() on
 * one queue. For every node: it belongs to a flow of the run, its flag is
 * 1, the flow's ring count is its take count + 1 (each announcement is
 * delivered exactly once: a flow is announced again only after the
 * consumer cleared its flag); the consumer counts the take, then clears the
 * flag with an exchange (the engine's [D2]) that must return 1. Each call
 * returns at most max. After the producers have finished, the consumer
 * empties every queue; then every flag is 0, every flow's takes equal its
 * rings, the total equals the rings the producers made, and every queue is
 * empty. A watchdog aborts the run when the consumer takes nothing for 20 s.
 * Under TSan a missing release/acquire edge between a producer's count and
 * the consumer's read of it is a report.
 *
 * Mutants of flowq_mpsc_dequeue_lockstep() (P = 3, 200,000 attempts each,
 * seeds 1-3): the survivors' cursors not stored when max is reached: 3 of 3
 * fail at once (flows taken twice or while not announced); no
 * mpsc_returned() in a step (a returned node kept as a queue's known tail):
 * 1 of 3, the consumer then waits on a node that has moved to another queue
 * for a successor that never comes, and the watchdog aborts the run. The
 * design is that of a program a helper wrote to review session 17's change.
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

#include <flowq/mpsc.h>

#include "stress_soak.h"
#include "test_util.h"

#define PROG  "stress_bells"
#define BELLS 8u
#define RUN   8u
#define FLOWS 256u
#define MAX_P 16u
#define MAX_N (2u * BELLS * 4u)

struct flow {
	struct flowq_mpsc_node node;
	_Atomic unsigned announced;
	uint32_t owner;
	uint64_t rings; /* producer, under the flag; published by the enqueue */
	unsigned last;  /* producer, under the flag: the queue of the last ring */
	uint64_t takes; /* consumer only */
};

struct producer {
	pthread_t thread;
	uint32_t id;
	uint64_t attempts;
	uint64_t seed;
	uint64_t rings; /* made, read by main after the join */
	uint64_t moves; /* of those, into another queue than the flow's last */
};

static struct flowq_mpsc queues[BELLS];
static struct flow flows[MAX_P][FLOWS];
static struct producer prods[MAX_P];
static unsigned nprod;
static _Atomic unsigned finished;
static _Atomic uint64_t progress;

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	unsigned bell = 0, run = 0;
	bool moved = false;

	for (uint64_t i = 0; i < p->attempts; i++) {
		uint64_t r = test_rng_next(&p->seed);
		struct flow *f = &flows[p->id][r % FLOWS];

		if (atomic_exchange_explicit(&f->announced, 1, memory_order_acq_rel)) {
			if ((r >> 32) % 8 == 0)
				sched_yield(); /* let the consumer catch up */
			continue;
		}
		f->rings++;
		p->rings++;
		p->moves += f->rings > 1 && f->last != bell % BELLS;
		f->last = bell % BELLS;
		if (flowq_mpsc_enqueue(&queues[bell % BELLS], &f->node)) {
			if (!moved)
				bell = 0;
			moved = false;
			run = 0;
		} else if (++run == RUN) {
			run = 0;
			bell++;
			moved = true;
		}
		if ((r >> 40) % 5 == 0)
			bell = (unsigned)(r >> 44); /* any placement is correct */
	}
	atomic_fetch_add_explicit(&finished, 1, memory_order_release);
	return NULL;
}

static bool
taken(struct flowq_mpsc_node *n)
{
	struct flow *f = (struct flow *)((char *)n - offsetof(struct flow, node));
	uintptr_t base = (uintptr_t)flows, end = base + nprod * sizeof(flows[0]);

	if ((uintptr_t)f < base || (uintptr_t)f >= end ||
	    ((uintptr_t)f - base) % sizeof(struct flow) != 0) {
		test_violation(PROG, "node %p is not a flow's", (void *)n);
		return false;
	}
	if (atomic_load_explicit(&f->announced, memory_order_relaxed) != 1)
		test_violation(PROG, "flow %p taken while not announced", (void *)f);
	if (f->rings != f->takes + 1)
		test_violation(PROG,
			       "flow %p of producer %" PRIu32 ": taken with %" PRIu64
			       " rings and %" PRIu64 " takes before",
			       (void *)f, f->owner, f->rings, f->takes);
	f->takes++;
	if (atomic_exchange_explicit(&f->announced, 0, memory_order_acq_rel) != 1)
		test_violation(PROG, "flow %p: its flag was cleared by someone else",
			       (void *)f);
	return true;
}

static bool
all_empty(void)
{
	for (unsigned k = 0; k < BELLS; k++)
		if (!flowq_mpsc_empty(&queues[k]))
			return false;
	return true;
}

/* One call of the consumer; @return the nodes it took. */
static size_t
consume_once(uint64_t *seed, uint64_t *calls)
{
	struct flowq_mpsc_node *buf[MAX_N + 1];
	uint64_t r = test_rng_next(seed);
	size_t max = 1 + (size_t)(r % MAX_N), n;

	buf[max] = NULL;
	if ((r >> 32) % 4 != 0)
		n = flowq_mpsc_dequeue_lockstep(queues, BELLS, buf, max);
	else
		n = flowq_mpsc_dequeue_batch(&queues[(r >> 40) % BELLS], buf, max);
	(*calls)++;
	if (n > max || buf[max] != NULL) {
		test_violation(PROG, "a call with max %zu returned %zu or wrote past it",
			       max, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (!taken(buf[i]))
			return 0;
	if (n)
		atomic_fetch_add_explicit(&progress, n, memory_order_relaxed);
	return n;
}

static void
dump(void)
{
	fprintf(stderr, "%s: %u producers finished of %u\n", PROG, atomic_load(&finished),
		nprod);
	for (unsigned k = 0; k < BELLS; k++)
		fprintf(stderr, "%s: queue %u %s\n", PROG, k,
			flowq_mpsc_empty(&queues[k]) ? "empty" : "not empty");
}

static int
usage(void)
{
	fprintf(stderr, "usage: %s P [RINGS [SEED]]   (1 <= P <= %u)\n", PROG, MAX_P);
	return 2;
}

static int
run(int argc, char **argv)
{
	uint64_t attempts = 200000, seed = 1, calls = 0, took = 0, made = 0, moves = 0;
	uint64_t idle = 0;
	char *end;

	if (argc < 2 || argc > 4)
		return usage();
	unsigned long p = strtoul(argv[1], &end, 10);
	if (*end != '\0' || p < 1 || p > MAX_P)
		return usage();
	if (argc > 2) {
		attempts = strtoull(argv[2], &end, 10);
		if (*end != '\0' || attempts == 0)
			return usage();
	}
	if (argc > 3) {
		seed = strtoull(argv[3], &end, 10);
		if (*end != '\0')
			return usage();
	}
	seed += stress_soak_iteration();

	/* A clean slate for each soak iteration. */
	nprod = (unsigned)p;
	memset(flows, 0, sizeof(flows));
	memset(prods, 0, sizeof(prods));
	atomic_store(&finished, 0);
	atomic_store(&progress, 0);
	for (unsigned k = 0; k < BELLS; k++) {
		if (k % 2)
			flowq_mpsc_init_sparse(&queues[k]);
		else
			flowq_mpsc_init(&queues[k]);
	}
	for (unsigned i = 0; i < nprod; i++)
		for (unsigned j = 0; j < FLOWS; j++) {
			flows[i][j].owner = i;
			atomic_init(&flows[i][j].announced, 0);
		}

	struct test_watchdog wd = {
		.prog = PROG, .progress = &progress, .seconds = 20, .dump = dump};
	test_watchdog_start(&wd);
	double t0 = test_now_seconds();
	for (unsigned i = 0; i < nprod; i++) {
		prods[i].id = i;
		prods[i].attempts = attempts;
		prods[i].seed = seed * 0x9e3779b97f4a7c15ull + i + 1;
		if (pthread_create(&prods[i].thread, NULL, producer_main, &prods[i])) {
			fprintf(stderr, "%s: pthread_create failed\n", PROG);
			exit(1);
		}
	}
	uint64_t cseed = seed ^ 0x5bd1e995u;
	for (;;) {
		bool done =
			atomic_load_explicit(&finished, memory_order_acquire) == nprod;
		size_t n = consume_once(&cseed, &calls);
		took += n;
		/* On 2 CPUs the producers need the consumer's CPU now and
		 * then. */
		if (n == 0 && ++idle % 64 == 0)
			sched_yield();
		/* After every producer returned: no gap is left, so empty
		 * queues mean the end. */
		if (done && all_empty())
			break;
		if (atomic_load(test_violations()) >= 1000)
			break; /* a corrupted queue can return nodes forever */
	}
	for (unsigned i = 0; i < nprod; i++) {
		pthread_join(prods[i].thread, NULL);
		made += prods[i].rings;
		moves += prods[i].moves;
	}
	test_watchdog_stop(&wd);
	double secs = test_now_seconds() - t0;

	for (unsigned i = 0; i < nprod; i++)
		for (unsigned j = 0; j < FLOWS; j++) {
			struct flow *f = &flows[i][j];
			if (atomic_load(&f->announced) != 0 || f->rings != f->takes)
				test_violation(PROG,
					       "flow %u/%u at the end: flag %u, %" PRIu64
					       " rings, %" PRIu64 " takes",
					       i, j, atomic_load(&f->announced), f->rings,
					       f->takes);
		}
	if (took != made)
		test_violation(PROG, "%" PRIu64 " rings made, %" PRIu64 " taken", made,
			       took);
	for (unsigned k = 0; k < BELLS; k++) {
		struct flowq_mpsc_node *n;
		if (flowq_mpsc_trydequeue(&queues[k], &n) != -ENOENT ||
		    !flowq_mpsc_empty(&queues[k]))
			test_violation(PROG, "queue %u is not empty at the end", k);
	}
	stress_soak_count("ops", made);
	printf("SUMMARY %s producers=%u attempts=%" PRIu64 " rings=%" PRIu64
	       " moves=%" PRIu64 " taken=%" PRIu64 " calls=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       PROG, nprod, attempts * nprod, made, moves, took, calls,
	       atomic_load(test_violations()), secs);
	return atomic_load(test_violations()) != 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main(PROG, argc, argv, run, test_violations());
}
