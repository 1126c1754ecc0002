/*
 * stress_mpsc: P producers -> 1 consumer on one flowq_mpsc.
 *
 *   stress_mpsc P [ITEMS [SEED]]     (defaults: ITEMS 1000000, SEED 1)
 *
 * Every item is preallocated; producer p owns the slice pool[p * per .. ] and
 * writes its producer id, sequence number and a check word into each item just
 * before enqueueing it, so the consumer's reads of those fields test the
 * queue's release/acquire hand-off (under TSan a missing edge is a report).
 * Producers pause at random points so the queue keeps draining and refilling,
 * and enqueue about a quarter of their items as chains of 1-8
 * (flowq_mpsc_enqueue_chain(); a chain counts as one enqueue below).
 * The consumer alternates at random between flowq_mpsc_trydequeue() and
 * flowq_mpsc_dequeue_batch() with random batch sizes (0, 1, small, larger than
 * the queue), and retries on -EAGAIN.
 *
 * Checks (each failure counts one violation and is described on stderr):
 *  - conservation: every item is dequeued exactly once, nothing outside the
 *    pool is ever returned, the count equals the number produced, and the
 *    queue is empty (-ENOENT, batch 0, empty()) at the end;
 *  - payload: the check word matches producer and seq (no torn or stale item);
 *  - per-producer FIFO: producer p's items leave in seq order 0, 1, 2, ...;
 *  - batches never return more than asked, trydequeue returns only 0, -ENOENT
 *    or -EAGAIN, and after every producer has returned from its last enqueue
 *    no -EAGAIN or missing item can remain;
 *  - the empty -> non-empty signal (below).
 *
 * The empty -> non-empty signal
 * -----------------------------
 * Let T be the number of enqueues that returned true and D the number of
 * dequeues that took the queue's last item, i.e. whose CAS [D3] moved the
 * tail back to &head. The tail's modification order alternates: it starts at
 * &head; only an exchange [E1] can move it off &head (a [D3] CAS expects a
 * node), and that exchange is exactly the one that returns true; only a [D3]
 * moves it back. So at quiescence with the queue drained (tail == &head),
 * T == D exactly.
 *
 * The consumer cannot count D, though: the API does not say whether a dequeue
 * emptied the queue. It can only ask flowq_mpsc_empty() after the call, and a
 * producer may refill the queue in between, so an emptying is sometimes
 * missed. What the consumer counts, E, is the number of successful dequeue
 * calls after which empty() was true. Each such observation is its own
 * emptying (only the consumer moves the tail to &head, and tail == &head
 * right after a successful call means that call's [D3] succeeded and no
 * exchange followed yet), so E <= D. And each dequeue call makes at most one
 * [D3] attempt, so D <= C, the number of calls that returned an item. Hence
 * the checked chain
 *
 *     1 <= E <= T <= C        (T == D exactly; E == T only when no race hit)
 *
 * E >= 1 because the final drain happens after every producer has finished,
 * so nothing can refill the queue before that last empty() check.
 *
 * Output: exactly one line on stdout,
 *   SUMMARY stress_mpsc producers=P items=N violations=V seconds=S
 * (details and counters go to stderr); the exit status is 1 if V > 0.
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
#include <time.h>

#include <flowq/mpsc.h>

#include "stress_soak.h"
#include "test_util.h"

#define MAX_PRODUCERS 64
#define MAX_BATCH     256

struct item {
	struct flowq_mpsc_node node;
	uint32_t producer;
	uint32_t seq;
	uint64_t check;
};

struct producer {
	pthread_t thread;
	uint32_t id;
	uint32_t count;
	struct item *items;
	uint64_t rng;
	/* Written by the producer only; read by main after the join. */
	uint64_t enq_true;
};

static struct flowq_mpsc queue;
static pthread_barrier_t start;
static _Atomic unsigned producers_done;

static uint64_t
check_word(uint32_t producer, uint32_t seq)
{
	uint64_t s = ((uint64_t)producer << 32 | seq) ^ 0x5bd1e995u;

	return test_rng_next(&s);
}

/* A short pause without a system call. */
static void
spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++) {
	}
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t burst = 1 + test_rng_next(&p->rng) % 1024;

	pthread_barrier_wait(&start);
	for (uint32_t i = 0; i < p->count; i++) {
		struct item *it = &p->items[i];

		/* Plain writes, published by the enqueue's release. */
		it->producer = p->id;
		it->seq = i;
		it->check = check_word(p->id, i);
		/* A quarter of the time, a chain of up to 8 items in one
		 * flowq_mpsc_enqueue_chain() (linked by relaxed stores before
		 * it, published by its release). */
		uint64_t c = test_rng_next(&p->rng);
		uint32_t k = c % 4 ? 1 : 1 + (uint32_t)((c >> 8) % 8);
		if (k > p->count - i)
			k = p->count - i;
		if (k == 1 && c % 8) {
			if (flowq_mpsc_enqueue(&queue, &it->node))
				p->enq_true++;
		} else {
			for (uint32_t j = 1; j < k; j++) {
				struct item *nx = &p->items[i + j];
				nx->producer = p->id;
				nx->seq = i + j;
				nx->check = check_word(p->id, i + j);
				atomic_store_explicit(&p->items[i + j - 1].node.next, &nx->node,
						      memory_order_relaxed);
			}
			if (flowq_mpsc_enqueue_chain(&queue, &it->node,
						     &p->items[i + k - 1].node))
				p->enq_true++;
			i += k - 1;
		}
		if (--burst == 0) {
			/*
			 * Pause so the consumer catches up and the queue empties:
			 * short bursts make many empty <-> non-empty transitions
			 * (the [D3]-vs-[E1] race), long ones a backlog for batches.
			 */
			uint64_t r = test_rng_next(&p->rng);

			burst = 1 + r % (r & (1u << 21) ? 16 : 1024);
			if (r & (1u << 20))
				sched_yield();
			else
				spin((unsigned)((r >> 40) % 2048));
		}
	}
	/* Release: every link store [E2] above happens-before the consumer's
	 * acquire load that sees this producer counted. */
	atomic_fetch_add_explicit(&producers_done, 1, memory_order_release);
	return NULL;
}

struct consumer {
	struct item *pool;
	uint64_t total;
	unsigned nproducers;
	uint32_t per_producer;
	uint8_t *seen;
	uint32_t *next_seq;
	uint64_t consumed;
	uint64_t calls_ok;   /* dequeue calls that returned at least one item */
	uint64_t emptied;    /* of those, calls after which empty() was true */
	uint64_t eagain;     /* trydequeue -EAGAIN */
	uint64_t enoent;     /* trydequeue -ENOENT */
	uint64_t batch_zero; /* batch calls with max > 0 that returned 0 */
	uint64_t rng;
};

static void
take(struct consumer *c, struct flowq_mpsc_node *node)
{
	uintptr_t base = (uintptr_t)c->pool, addr = (uintptr_t)node, off;
	struct item *it;
	uint64_t idx;

	/* Compare addresses as integers: the node may be anything at all. */
	if (addr < base || addr >= base + c->total * sizeof(struct item)) {
		test_violation("stress_mpsc", "dequeued %p, not an item of the pool",
			       (void *)node);
		return;
	}
	off = addr - base - offsetof(struct item, node);
	if (off % sizeof(struct item) != 0) {
		test_violation("stress_mpsc", "dequeued %p, misaligned within the pool",
			       (void *)node);
		return;
	}
	idx = off / sizeof(struct item);
	it = &c->pool[idx];
	if (c->seen[idx]++ != 0) {
		test_violation("stress_mpsc", "item %" PRIu64 " dequeued twice", idx);
		return;
	}
	c->consumed++;
	if (it->producer >= c->nproducers ||
	    it->check != check_word(it->producer, it->seq) ||
	    idx != (uint64_t)it->producer * c->per_producer + it->seq) {
		test_violation("stress_mpsc",
			       "item %" PRIu64 ": bad payload (producer %" PRIu32
			       " seq %" PRIu32 ")",
			       idx, it->producer, it->seq);
		return;
	}
	if (it->seq != c->next_seq[it->producer]) {
		test_violation("stress_mpsc",
			       "producer %" PRIu32 ": seq %" PRIu32
			       " dequeued, expected %" PRIu32,
			       it->producer, it->seq, c->next_seq[it->producer]);
	}
	c->next_seq[it->producer] = it->seq + 1;
}

/* After a call that returned items: did it leave the queue empty? */
static void
after_success(struct consumer *c)
{
	c->calls_ok++;
	if (flowq_mpsc_empty(&queue))
		c->emptied++;
}

/*
 * Nothing came out of the last call. Once every producer has returned (seen
 * with acquire, so all their links are visible) the queue must hold exactly
 * the items not yet consumed, all linked: a trydequeue then either returns one
 * or says -ENOENT, and -ENOENT means items were lost.
 */
static bool
check_stalled(struct consumer *c)
{
	struct flowq_mpsc_node *node = NULL;
	int rc;

	if (atomic_load_explicit(&producers_done, memory_order_acquire) != c->nproducers)
		return false;
	rc = flowq_mpsc_trydequeue(&queue, &node);
	if (rc == 0) {
		take(c, node);
		after_success(c);
		return false;
	}
	if (rc == -EAGAIN)
		test_violation("stress_mpsc",
			       "-EAGAIN after every producer finished (%" PRIu64
			       " of %" PRIu64 " consumed)",
			       c->consumed, c->total);
	else if (rc == -ENOENT)
		test_violation("stress_mpsc",
			       "queue empty with %" PRIu64 " of %" PRIu64
			       " items consumed: lost",
			       c->consumed, c->total);
	else
		test_violation("stress_mpsc", "trydequeue returned %d", rc);
	return true;
}

static void
consume(struct consumer *c)
{
	struct flowq_mpsc_node *buf[MAX_BATCH + 1];
	unsigned idle = 0;

	while (c->consumed < c->total) {
		uint64_t r = test_rng_next(&c->rng);
		bool got = false;

		if (r & 1) {
			struct flowq_mpsc_node *node = NULL;
			int rc = flowq_mpsc_trydequeue(&queue, &node);

			if (rc == 0) {
				take(c, node);
				after_success(c);
				got = true;
			} else if (rc == -EAGAIN) {
				c->eagain++; /* a producer is mid-link: retry */
			} else if (rc == -ENOENT) {
				c->enoent++;
			} else {
				test_violation("stress_mpsc", "trydequeue returned %d",
					       rc);
				return;
			}
		} else {
			/* 1/16 zero, 1/4 one, else up to MAX_BATCH. */
			size_t max = (r >> 8) % 16 == 0  ? 0
				     : (r >> 8) % 4 == 1 ? 1
							 : 1 + (r >> 16) % MAX_BATCH;
			size_t n;

			buf[max] = NULL;
			n = flowq_mpsc_dequeue_batch(&queue, buf, max);
			if (n > max) {
				test_violation("stress_mpsc", "batch of %zu returned %zu",
					       max, n);
				return;
			}
			if (buf[max] != NULL) {
				test_violation("stress_mpsc",
					       "batch of %zu wrote past its end", max);
				return;
			}
			for (size_t k = 0; k < n; k++)
				take(c, buf[k]);
			if (n > 0) {
				after_success(c);
				got = true;
			} else if (max > 0) {
				c->batch_zero++;
			}
		}
		if (got) {
			idle = 0;
			continue;
		}
		if (check_stalled(c))
			return;
		/* Let preempted producers run (P may exceed the cores). */
		if (++idle % 64 == 0)
			sched_yield();
	}
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	static struct producer prod[MAX_PRODUCERS];
	struct consumer c = {0};
	unsigned nprod;
	uint64_t items = 1000000, seed = 1, enq_true = 0;
	double t0, secs;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: stress_mpsc PRODUCERS [ITEMS [SEED]]\n");
		return 2;
	}
	nprod = (unsigned)test_parse_ulong("stress_mpsc", argv[1], "producer count", 1,
					   MAX_PRODUCERS);
	if (argc > 2)
		items = test_parse_ulong("stress_mpsc", argv[2], "item count", 1,
					 UINT32_MAX);
	if (argc > 3)
		seed = test_parse_ulong("stress_mpsc", argv[3], "seed", 0, ~0ul);

	/* Round up so that every producer gets the same count. */
	c.per_producer = (uint32_t)((items + nprod - 1) / nprod);
	c.total = (uint64_t)c.per_producer * nprod;
	c.nproducers = nprod;
	c.pool = calloc(c.total, sizeof(*c.pool));
	c.seen = calloc(c.total, 1);
	c.next_seq = calloc(nprod, sizeof(*c.next_seq));
	if (c.pool == NULL || c.seen == NULL || c.next_seq == NULL) {
		fprintf(stderr, "stress_mpsc: out of memory\n");
		return 2;
	}
	c.rng = seed;
	fprintf(stderr, "stress_mpsc: producers=%u items=%" PRIu64 " seed=%" PRIu64 "\n",
		nprod, c.total, seed);

	memset(prod, 0, sizeof(prod)); /* a clean slate for each soak iteration */
	flowq_mpsc_init(&queue);
	atomic_init(&producers_done, 0);
	if (pthread_barrier_init(&start, NULL, nprod + 1) != 0) {
		fprintf(stderr, "stress_mpsc: pthread_barrier_init failed\n");
		return 2;
	}
	for (unsigned p = 0; p < nprod; p++) {
		prod[p].id = p;
		prod[p].count = c.per_producer;
		prod[p].items = c.pool + (size_t)p * c.per_producer;
		prod[p].rng = seed * 1000003u + p + 1;
		if (pthread_create(&prod[p].thread, NULL, producer_main, &prod[p]) != 0) {
			fprintf(stderr, "stress_mpsc: pthread_create failed\n");
			return 2;
		}
	}
	pthread_barrier_wait(&start);
	t0 = test_now_seconds();
	consume(&c);
	for (unsigned p = 0; p < nprod; p++) {
		pthread_join(prod[p].thread, NULL);
		enq_true += prod[p].enq_true;
	}
	secs = test_now_seconds() - t0;

	/* Quiescent now: the queue must be empty and every item seen once. */
	{
		struct flowq_mpsc_node *node = NULL, *buf[4];
		int rc = flowq_mpsc_trydequeue(&queue, &node);

		if (rc != -ENOENT)
			test_violation("stress_mpsc",
				       "final trydequeue returned %d, want -ENOENT", rc);
		if (flowq_mpsc_dequeue_batch(&queue, buf, 4) != 0)
			test_violation("stress_mpsc", "final batch returned items");
		if (!flowq_mpsc_empty(&queue))
			test_violation("stress_mpsc", "queue not empty at the end");
	}
	if (c.consumed != c.total)
		test_violation("stress_mpsc", "consumed %" PRIu64 " of %" PRIu64,
			       c.consumed, c.total);
	for (uint64_t i = 0; i < c.total; i++) {
		if (c.seen[i] != 1) {
			test_violation("stress_mpsc",
				       "item %" PRIu64 " dequeued %u times", i,
				       c.seen[i]);
			break;
		}
	}
	for (unsigned p = 0; p < nprod; p++) {
		if (c.next_seq[p] != c.per_producer)
			test_violation("stress_mpsc",
				       "producer %u: last seq %" PRIu32 ", want %" PRIu32,
				       p, c.next_seq[p], c.per_producer);
	}
	/* 1 <= E <= T <= C; see the comment at the top. */
	if (!(1 <= c.emptied && c.emptied <= enq_true && enq_true <= c.calls_ok))
		test_violation("stress_mpsc",
			       "empty signal: observed emptyings %" PRIu64
			       ", enqueue true %" PRIu64
			       ", successful dequeue calls %" PRIu64
			       "; want 1 <= E <= T <= C",
			       c.emptied, enq_true, c.calls_ok);

	fprintf(stderr,
		"stress_mpsc: enqueue_true=%" PRIu64 " observed_emptyings=%" PRIu64
		" dequeue_calls_ok=%" PRIu64 " eagain=%" PRIu64 " enoent=%" PRIu64
		" batch_zero=%" PRIu64 "\n",
		enq_true, c.emptied, c.calls_ok, c.eagain, c.enoent, c.batch_zero);
	stress_soak_count("ops", c.total);
	printf("SUMMARY stress_mpsc producers=%u items=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       nprod, c.total, atomic_load(test_violations()), secs);
	free(c.pool);
	free(c.seen);
	free(c.next_seq);
	pthread_barrier_destroy(&start);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_mpsc", argc, argv, run, test_violations());
}
