/*
 * stress_mpsc: P producers -> 1 consumer on one flowq_mpsc.
 *
 *   stress_mpsc [--sparse] [--recycle POOL] P [ITEMS [SEED]]
 *                                  (defaults: ITEMS 1000000, SEED 1)
 *
 * ITEMS enqueues in all, rounded up to a multiple of P; each producer makes
 * its share with sequence numbers 0, 1, 2, ... Before each enqueue the
 * producer writes its producer id, the sequence number and a check word
 * (a hash of both and of the node's slot in the producer's pool) into the
 * item, so the consumer's reads of those fields test the queue's
 * release/acquire hand-off (under TSan a missing edge is a report).
 * Producers pause at random points so the queue keeps draining and
 * refilling, and enqueue about a quarter of their items as chains of 1-8
 * (flowq_mpsc_enqueue_chain(); a chain counts as one enqueue below).
 * The consumer alternates at random between flowq_mpsc_trydequeue() and
 * flowq_mpsc_dequeue_batch() with random batch sizes (0, 1, small, larger than
 * the queue), and retries on -EAGAIN.
 *
 * Modes:
 *  - default: every item is preallocated (P x ITEMS/P nodes) and enqueued
 *    exactly once: slot == sequence number, and a fresh node's next field is
 *    still the NULL of calloc() when it is enqueued;
 *  - --recycle POOL: each producer owns only POOL nodes (1..4096; 16-64 make
 *    reuse constant). The consumer hands every node it dequeued back to its
 *    producer, and the producer enqueues it again, alone or inside a chain,
 *    under a new sequence number. This is the case the default mode cannot
 *    reach: a node comes back into the queue while the consumer may still
 *    be standing near its old place (a batch that stopped at a gap, a known
 *    tail, a failed [D3]; queues/mpsc.c I4, I5, O4, C3), and its next field
 *    then holds whatever its last trip left there (its old successor, not
 *    NULL), so an enqueue that relied on a NULL it did not store ([E0], for
 *    a node or a chain's last node) or a queue that wrote a node it had
 *    already returned (I4) corrupts the run.
 *  - --sparse (with either): the queue made by flowq_mpsc_init_sparse(),
 *    the dummy on the producers' line (queues/mpsc.c, "Where the dummy
 *    lives"), as the engine's flow inboxes and doorbells use it.
 *
 * The hand-back path (recycle mode) is a Lamport single-producer /
 * single-consumer ring per producer, written below in C11 atomics: the
 * consumer thread fills it, the producer drains it. Not a second flowq_mpsc,
 * so that a fault of the queue under test cannot hide in (or be blamed on)
 * its own return path; not ck_ring, whose x86 ck_pr accesses are inline
 * assembly that TSan does not see. Its capacity (POOL rounded up to a power
 * of two) cannot be exceeded while each node is handed back once per
 * dequeue, so a full ring is a violation. Before the hand-back the consumer
 * poisons the item's check word (the ring's release publishes that write):
 * a node that the queue returns again without a new enqueue has a bad check
 * word, and the producer checks the poison when it takes the node back (an
 * edge missing in the hand-back is then a TSan report on the item, or a
 * payload violation).
 *
 * Checks (each failure counts one violation and is described on stderr):
 *  - conservation: every enqueued sequence number is dequeued exactly once,
 *    per producer in order 0, 1, 2, ... (so a duplicate or a loss is an
 *    order violation, and a missing tail shows in the final counts); nothing
 *    outside the pool is ever returned, no node is returned twice without a
 *    new enqueue (default mode: at all; recycle mode: the consumer's
 *    "taken, not yet handed back" mark, and the poisoned check word); the
 *    count equals the number produced, and the queue is empty (-ENOENT,
 *    batch 0, empty()) at the end; in recycle mode every node of every pool
 *    is back with its producer exactly once at the end, and the producers
 *    take back only their own poisoned nodes, each once;
 *  - payload: the check word matches producer, seq and slot, and the slot is
 *    in that producer's pool (no torn or stale item);
 *  - batches never return more than asked, trydequeue returns only 0, -ENOENT
 *    or -EAGAIN, and after every producer has returned from its last enqueue
 *    no -EAGAIN or missing item can remain;
 *  - the empty -> non-empty signal (below);
 *  - liveness: a watchdog aborts the run (with the counts on stderr) if the
 *    consumer makes no progress for 20 s, e.g. when recycling deadlocks
 *    because a node got lost (its producer then waits for it forever).
 * After 1000 violations the consumer stops early (a corrupted queue can
 * return the same nodes forever), waiting producers give up, and the run
 * ends with its SUMMARY line and the final checks.
 *
 * What recycling adds, tried on local mutants of queues/mpsc.c: without
 * [E0] in flowq_mpsc_enqueue(), or in flowq_mpsc_enqueue_chain() alone,
 * every default-mode configuration passes (calloc's NULL stands in for the
 * missing store) and every recycle configuration fails at once (a stale
 * next field links the node to its old successor: "dequeued again before
 * it was handed back"). A consumer that poisons a node after handing it
 * back (a mutant of hand_back()) fails the producer's poison check, and
 * TSan reports the race. [E2] relaxed is a TSan report in both modes. Not
 * forgetting a returned known tail (no mpsc_returned() in the batch loop)
 * is only a liveness fault; both modes catch it at the end of most runs
 * ("-EAGAIN after every producer finished"), recycling masking it in some
 * (the stale tail is often re-enqueued and so becomes true again).
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
 * Recycling changes nothing here, and no ABA can make a [D3] count twice or
 * succeed on a node in its next life: the node a [D3] expects is the one
 * the consumer stands at, which it has not returned (so not handed back,
 * so not re-enqueued), and a tail value the consumer remembers (known tail,
 * I5) is forgotten when its node is returned. A re-enqueue is an ordinary
 * [E1] of a node that is in no queue.
 *
 * The consumer cannot count D, though: the API does not say whether a dequeue
 * emptied the queue. It can only ask flowq_mpsc_empty() after the call, and a
 * producer may refill the queue in between, so an emptying is sometimes
 * missed. What the consumer counts, E, is the number of successful dequeue
 * calls after which empty() was true. Each such observation is its own
 * emptying (only the consumer moves the tail to &head, and tail == &head
 * right after a successful call means that call's [D3] succeeded and no
 * exchange followed yet; where the hand-back falls does not matter, and it
 * comes after the empty() check anyway), so E <= D. And each dequeue call
 * makes at most one [D3] attempt, so D <= C, the number of calls that
 * returned an item. Hence the checked chain
 *
 *     1 <= E <= T <= C        (T == D exactly; E == T only when no race hit)
 *
 * E >= 1 because the call that takes the run's last item takes it by [D3]
 * (items leave in exchange order, so it is the tail and has no successor)
 * and no enqueue is left to refill the queue before that call's empty()
 * check (in recycle mode either: every sequence number has been dequeued).
 *
 * Output: exactly one line on stdout,
 *   SUMMARY stress_mpsc producers=P items=N violations=V seconds=S
 * (details and counters go to stderr, with pool=POOL in recycle mode); the
 * exit status is 1 if V > 0.
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

#define PROG          "stress_mpsc"
#define MAX_PRODUCERS 64
#define MAX_BATCH     256
#define MAX_CHAIN     8
#define MAX_POOL      4096 /* recycle mode: nodes per producer, at most */
#define STALL_SECONDS 20
#define GIVE_UP       1000 /* violations after which the consumer stops */

struct item {
	struct flowq_mpsc_node node;
	uint32_t producer;
	uint32_t seq;
	uint64_t check;
};

/*
 * Recycle mode's hand-back path, consumer -> producer: Lamport's SPSC ring
 * (CACM 26(11), 1983) over slot numbers. head and tail run freely (uint32_t
 * wrap-around); the ring is full when head - tail > mask.
 */
struct ring {
	/* Writer line: the consumer thread. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint32_t head;
	/* Reader line: the owning producer (main after the join). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint32_t tail;
	/* Set before the threads start, then read-only; slot[] entries are
	 * written by the writer and published by head. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) uint32_t mask;
	uint32_t slot[MAX_POOL];
};

struct producer {
	pthread_t thread;
	uint32_t id;
	uint32_t count; /* enqueues to make: seq 0 .. count - 1 */
	uint32_t pool;  /* nodes owned: items[0 .. pool - 1] */
	bool recycle;
	struct item *items;
	uint64_t rng;
	/* Recycle mode; the producer's own (main's after the join). */
	struct ring *ret; /* hand-back ring, drained by ring_reclaim() */
	uint32_t *free;   /* stack of free slots, nfree of them */
	uint32_t nfree;
	uint8_t *is_free; /* per slot: on the stack */
	uint32_t issued;  /* sequence numbers used so far */
	/* Written by the producer only; read by main after the join. */
	uint64_t enq_true;
	uint64_t reused;  /* nodes taken back from the ring (main's at the end too) */
	uint64_t starved; /* times it had no free node and had to wait */
};

static struct flowq_mpsc queue;
static struct ring rings[MAX_PRODUCERS];
static pthread_barrier_t start;
static _Atomic unsigned producers_done;
/* Successful dequeue calls, for the watchdog (relaxed: a counter). */
static _Atomic uint64_t progress;
/* Set by main once the consumer has stopped: a recycling producer waiting
 * for a node gives up (after GIVE_UP violations the consumer stops early). */
static _Atomic bool quit;

static uint64_t
check_word(uint32_t producer, uint32_t seq, uint32_t slot)
{
	uint64_t s = ((uint64_t)producer << 32 | seq) ^ 0x5bd1e995u ^
		     (uint64_t)slot * 0xff51afd7ed558ccdull;

	return test_rng_next(&s);
}

/* A short pause without a system call. */
static void
spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++) {
	}
}

/* Writer side (the consumer): append @v; false if full. */
static bool
ring_push(struct ring *r, uint32_t v)
{
	/* Relaxed: head is written by this thread alone. */
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	/* Acquire, pairs with ring_pop's release of tail: the reader has
	 * read a slot before we overwrite it. */
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);

	if (h - t > r->mask)
		return false;
	r->slot[h & r->mask] = v;
	/* Release, pairs with ring_pop's acquire of head: publishes the slot
	 * and everything the consumer wrote to the node (its poisoned check
	 * word) before the producer writes the node again. */
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return true;
}

/* Reader side (the producer, or main after the join): take the oldest entry
 * into @r_v; false if empty. */
static bool
ring_pop(struct ring *r, uint32_t *r_v)
{
	/* Relaxed: tail is written by this thread alone. */
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	/* Acquire, pairs with ring_push's release of head. */
	uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);

	if (t == h)
		return false;
	*r_v = r->slot[t & r->mask];
	/* Release, pairs with ring_push's acquire of tail. */
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

/*
 * Take back every node the consumer has handed to @p so far, checking each:
 * one of @p's slots, not already free, and still carrying the consumer's
 * poison of a payload @p wrote. Returns the number taken back.
 */
static uint32_t
ring_reclaim(struct producer *p)
{
	uint32_t slot, n = 0;

	while (ring_pop(p->ret, &slot)) {
		struct item *it;

		if (slot >= p->pool || p->is_free[slot]) {
			test_violation(
				PROG,
				"producer %" PRIu32 ": slot %" PRIu32 " handed back %s",
				p->id, slot, slot >= p->pool ? "(not ours)" : "twice");
			continue;
		}
		it = &p->items[slot];
		if (it->producer != p->id || it->seq >= p->issued ||
		    it->check != ~check_word(p->id, it->seq, slot))
			test_violation(PROG,
				       "producer %" PRIu32 ": slot %" PRIu32
				       " handed back without the consumer's poison"
				       " (producer %" PRIu32 " seq %" PRIu32 ")",
				       p->id, slot, it->producer, it->seq);
		p->is_free[slot] = 1;
		p->free[p->nfree++] = slot;
		p->reused++;
		n++;
	}
	return n;
}

/*
 * Up to @k nodes for the enqueue of sequence numbers @seq.. into @r_slots;
 * returns how many (at least 1, or 0 once told to quit). Default mode: the fresh slots seq.. . Recycle
 * mode: the most recently handed back first (the shortest turnaround),
 * waiting for the consumer when none is free; fewer than @k when fewer are
 * free (a shorter chain).
 */
static uint32_t
producer_slots(struct producer *p, uint32_t seq, uint32_t k, uint32_t *r_slots)
{
	if (!p->recycle) {
		for (uint32_t j = 0; j < k; j++)
			r_slots[j] = seq + j;
		return k;
	}
	if (p->nfree < k && ring_reclaim(p) == 0 && p->nfree == 0) {
		p->starved++;
		for (unsigned w = 1; ring_reclaim(p) == 0; w++) {
			/* Relaxed: only a request to stop; nothing to see. */
			if (atomic_load_explicit(&quit, memory_order_relaxed))
				return 0;
			if (w % 16 == 0)
				sched_yield();
			else
				spin(64);
		}
	}
	if (k > p->nfree)
		k = p->nfree;
	for (uint32_t j = 0; j < k; j++) {
		r_slots[j] = p->free[--p->nfree];
		p->is_free[r_slots[j]] = 0;
	}
	return k;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t burst = 1 + test_rng_next(&p->rng) % 1024;
	uint32_t slots[MAX_CHAIN];

	pthread_barrier_wait(&start);
	for (uint32_t i = 0; i < p->count;) {
		/* A quarter of the time, a chain of up to 8 items in one
		 * flowq_mpsc_enqueue_chain() (linked by relaxed stores before
		 * it, published by its release). */
		uint64_t c = test_rng_next(&p->rng);
		uint32_t k = c % 4 ? 1 : 1 + (uint32_t)((c >> 8) % MAX_CHAIN);
		struct item *first, *last = NULL;

		if (k > p->count - i)
			k = p->count - i;
		k = producer_slots(p, i, k, slots);
		if (k == 0)
			return NULL; /* the consumer stopped (not counted as done) */
		first = &p->items[slots[0]];
		for (uint32_t j = 0; j < k; j++) {
			struct item *it = &p->items[slots[j]];

			/* Plain writes, published by the enqueue's release. The
			 * next field of a lone node or of a chain's last node is
			 * left as it is (stale in recycle mode): the enqueue
			 * must store its NULL ([E0]). */
			it->producer = p->id;
			it->seq = i + j;
			it->check = check_word(p->id, i + j, slots[j]);
			if (last != NULL)
				atomic_store_explicit(&last->node.next, &it->node,
						      memory_order_relaxed);
			last = it;
		}
		p->issued = i + k;
		if (k == 1 && c % 8) {
			if (flowq_mpsc_enqueue(&queue, &first->node))
				p->enq_true++;
		} else {
			if (flowq_mpsc_enqueue_chain(&queue, &first->node, &last->node))
				p->enq_true++;
		}
		i += k;
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
	uint64_t nodes; /* pool size: nproducers * pool_per */
	uint64_t total; /* enqueues in the run: nproducers * per_producer */
	unsigned nproducers;
	uint32_t per_producer;
	uint32_t pool_per; /* nodes per producer */
	bool recycle;
	uint8_t *seen; /* per node: taken (and, recycling, not handed back) */
	uint32_t *next_seq;
	uint32_t *pending; /* recycle: nodes taken, not yet handed back */
	size_t npending;
	uint64_t consumed;
	uint64_t calls_ok;   /* dequeue calls that returned at least one item */
	uint64_t emptied;    /* of those, calls after which empty() was true */
	uint64_t eagain;     /* trydequeue -EAGAIN */
	uint64_t enoent;     /* trydequeue -ENOENT */
	uint64_t batch_zero; /* batch calls with max > 0 that returned 0 */
	uint64_t deferred;   /* hand-backs put off until after the next call */
	uint64_t rng;
};

static void
take(struct consumer *c, struct flowq_mpsc_node *node)
{
	uintptr_t base = (uintptr_t)c->pool, addr = (uintptr_t)node, off;
	struct item *it;
	uint64_t idx;
	uint32_t owner, slot;

	/* Compare addresses as integers: the node may be anything at all. */
	if (addr < base || addr >= base + c->nodes * sizeof(struct item)) {
		test_violation(PROG, "dequeued %p, not an item of the pool",
			       (void *)node);
		return;
	}
	off = addr - base - offsetof(struct item, node);
	if (off % sizeof(struct item) != 0) {
		test_violation(PROG, "dequeued %p, misaligned within the pool",
			       (void *)node);
		return;
	}
	idx = off / sizeof(struct item);
	it = &c->pool[idx];
	owner = (uint32_t)(idx / c->pool_per);
	slot = (uint32_t)(idx % c->pool_per);
	if (c->seen[idx] != 0) {
		c->seen[idx] += c->seen[idx] < UINT8_MAX; /* saturate: never 0 again */
		test_violation(PROG,
			       c->recycle ? "node %" PRIu64 " dequeued again before"
					    " it was handed back"
					  : "item %" PRIu64 " dequeued twice",
			       idx);
		return;
	}
	c->seen[idx] = 1;
	c->consumed++;
	if (c->recycle)
		c->pending[c->npending++] = (uint32_t)idx;
	if (it->producer != owner || it->check != check_word(owner, it->seq, slot) ||
	    (!c->recycle && it->seq != slot)) {
		test_violation(PROG,
			       "node %" PRIu64 " (producer %" PRIu32 " slot %" PRIu32
			       "): bad payload (producer %" PRIu32 " seq %" PRIu32 ")",
			       idx, owner, slot, it->producer, it->seq);
		return;
	}
	if (it->seq != c->next_seq[owner]) {
		test_violation(PROG,
			       "producer %" PRIu32 ": seq %" PRIu32
			       " dequeued, expected %" PRIu32,
			       owner, it->seq, c->next_seq[owner]);
	}
	c->next_seq[owner] = it->seq + 1;
}

/*
 * Recycle mode: hand every pending node back to its producer, poisoned
 * first (the check word complemented: a node dequeued again without a new
 * enqueue then fails the payload check).
 */
static void
hand_back(struct consumer *c)
{
	for (size_t k = 0; k < c->npending; k++) {
		uint32_t idx = c->pending[k];
		uint32_t owner = idx / c->pool_per, slot = idx % c->pool_per;

		c->pool[idx].check = ~c->pool[idx].check;
		c->seen[idx] = 0;
		if (!ring_push(&rings[owner], slot))
			test_violation(PROG,
				       "hand-back ring of producer %" PRIu32
				       " full: more than %" PRIu32 " of its nodes out",
				       owner, c->pool_per);
	}
	c->npending = 0;
}

/* After a call that returned items: did it leave the queue empty? */
static void
after_success(struct consumer *c)
{
	c->calls_ok++;
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
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
		test_violation(PROG,
			       "-EAGAIN after every producer finished (%" PRIu64
			       " of %" PRIu64 " consumed)",
			       c->consumed, c->total);
	else if (rc == -ENOENT)
		test_violation(PROG,
			       "queue empty with %" PRIu64 " of %" PRIu64
			       " items consumed: lost",
			       c->consumed, c->total);
	else
		test_violation(PROG, "trydequeue returned %d", rc);
	return true;
}

static void
consume(struct consumer *c)
{
	struct flowq_mpsc_node *buf[MAX_BATCH + 1];
	unsigned idle = 0;

	while (c->consumed < c->total) {
		if (atomic_load_explicit(test_violations(), memory_order_relaxed) >=
		    GIVE_UP) {
			fprintf(stderr, PROG ": %d violations: the consumer gives up\n",
				GIVE_UP);
			break;
		}
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
				test_violation(PROG, "trydequeue returned %d", rc);
				break;
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
				test_violation(PROG, "batch of %zu returned %zu", max, n);
				break;
			}
			if (buf[max] != NULL) {
				test_violation(PROG, "batch of %zu wrote past its end",
					       max);
				break;
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
			/* Recycle mode: hand back at once, or one time in four
			 * after the next call, so that nodes also come back
			 * while the queue has moved on by one more call. */
			if ((r >> 40) % 4 != 0)
				hand_back(c);
			else if (c->npending > 0)
				c->deferred++;
			continue;
		}
		/* Idle: the producers may be waiting for these nodes. */
		hand_back(c);
		if (check_stalled(c))
			break;
		/* Let preempted producers run (P may exceed the cores). */
		if (++idle % 64 == 0)
			sched_yield();
	}
	hand_back(c);
}

static void
stall_dump(void)
{
	fprintf(stderr,
		PROG ": %" PRIu64 " successful dequeue calls, %u producers done\n",
		atomic_load_explicit(&progress, memory_order_relaxed),
		atomic_load_explicit(&producers_done, memory_order_relaxed));
}

/* Recycle mode, after the joins: every node of every pool back with its
 * producer exactly once (ring_reclaim() reports any taken back twice). */
static void
check_pools(struct producer *prod, unsigned nprod)
{
	for (unsigned p = 0; p < nprod; p++) {
		ring_reclaim(&prod[p]);
		if (prod[p].nfree != prod[p].pool)
			test_violation(PROG,
				       "producer %u: %" PRIu32 " of its %" PRIu32
				       " nodes back at the end",
				       p, prod[p].nfree, prod[p].pool);
	}
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	static struct producer prod[MAX_PRODUCERS];
	struct consumer c = {0};
	unsigned nprod;
	uint64_t items = 1000000, seed = 1, enq_true = 0, reused = 0, starved = 0;
	uint32_t recycle_pool = 0;
	int a = 1;
	double t0, secs;

	bool sparse = false;
	for (;;) {
		if (argc > a && strcmp(argv[a], "--sparse") == 0) {
			sparse = true;
			a++;
		} else if (argc > a && strcmp(argv[a], "--recycle") == 0) {
			if (argc < a + 2) {
				fprintf(stderr, PROG ": --recycle needs a pool size\n");
				return 2;
			}
			recycle_pool = (uint32_t)test_parse_ulong(PROG, argv[a + 1],
								  "recycle pool", 1, MAX_POOL);
			a += 2;
		} else {
			break;
		}
	}
	if (argc - a < 1 || argc - a > 3) {
		fprintf(stderr, "usage: " PROG
				" [--sparse] [--recycle POOL] PRODUCERS [ITEMS [SEED]]\n");
		return 2;
	}
	nprod = (unsigned)test_parse_ulong(PROG, argv[a], "producer count", 1,
					   MAX_PRODUCERS);
	if (argc - a > 1)
		items = test_parse_ulong(PROG, argv[a + 1], "item count", 1, UINT32_MAX);
	if (argc - a > 2)
		seed = test_parse_ulong(PROG, argv[a + 2], "seed", 0, ~0ul);
	/* Soak: another schedule each iteration (iteration 0, the CTest run,
	 * keeps the given seed; stderr names each iteration's, to be given as
	 * SEED). */
	seed += stress_soak_iteration() * UINT64_C(0x9e3779b97f4a7c15);

	/* Round up so that every producer gets the same count. */
	c.per_producer = (uint32_t)((items + nprod - 1) / nprod);
	c.total = (uint64_t)c.per_producer * nprod;
	c.nproducers = nprod;
	c.recycle = recycle_pool != 0;
	c.pool_per = c.recycle ? recycle_pool : c.per_producer;
	c.nodes = (uint64_t)c.pool_per * nprod;
	c.pool = calloc(c.nodes, sizeof(*c.pool));
	c.seen = calloc(c.nodes, 1);
	c.next_seq = calloc(nprod, sizeof(*c.next_seq));
	c.pending = c.recycle ? calloc(c.nodes, sizeof(*c.pending)) : NULL;
	if (c.pool == NULL || c.seen == NULL || c.next_seq == NULL ||
	    (c.recycle && c.pending == NULL)) {
		fprintf(stderr, PROG ": out of memory\n");
		return 2;
	}
	c.rng = seed;
	fprintf(stderr, PROG ": producers=%u items=%" PRIu64 " seed=%" PRIu64, nprod,
		c.total, seed);
	if (c.recycle)
		fprintf(stderr, " pool=%" PRIu32 " per producer (recycling)", c.pool_per);
	fputc('\n', stderr);

	memset(prod, 0, sizeof(prod)); /* a clean slate for each soak iteration */
	if (sparse)
		flowq_mpsc_init_sparse(&queue);
	else
		flowq_mpsc_init(&queue);
	atomic_init(&producers_done, 0);
	atomic_init(&progress, 0);
	atomic_init(&quit, false);
	if (pthread_barrier_init(&start, NULL, nprod + 1) != 0) {
		fprintf(stderr, PROG ": pthread_barrier_init failed\n");
		return 2;
	}
	for (unsigned p = 0; p < nprod; p++) {
		struct producer *pp = &prod[p];

		pp->id = p;
		pp->count = c.per_producer;
		pp->pool = c.pool_per;
		pp->recycle = c.recycle;
		pp->items = c.pool + (size_t)p * c.pool_per;
		pp->rng = seed * 1000003u + p + 1;
		if (c.recycle) {
			uint32_t cap = 1;

			while (cap < c.pool_per)
				cap <<= 1;
			atomic_init(&rings[p].head, 0);
			atomic_init(&rings[p].tail, 0);
			rings[p].mask = cap - 1;
			pp->ret = &rings[p];
			pp->free = malloc(c.pool_per * sizeof(*pp->free));
			pp->is_free = malloc(c.pool_per);
			if (pp->free == NULL || pp->is_free == NULL) {
				fprintf(stderr, PROG ": out of memory\n");
				return 2;
			}
			/* Slot 0 on top: the first trip takes 0, 1, 2, ... */
			for (uint32_t s = 0; s < c.pool_per; s++) {
				pp->free[s] = c.pool_per - 1 - s;
				pp->is_free[s] = 1;
			}
			pp->nfree = c.pool_per;
		}
	}
	for (unsigned p = 0; p < nprod; p++) {
		if (pthread_create(&prod[p].thread, NULL, producer_main, &prod[p]) != 0) {
			fprintf(stderr, PROG ": pthread_create failed\n");
			return 2;
		}
	}
	struct test_watchdog wd = {.prog = PROG,
				   .progress = &progress,
				   .seconds = STALL_SECONDS,
				   .dump = stall_dump};
	test_watchdog_start(&wd);
	pthread_barrier_wait(&start);
	t0 = test_now_seconds();
	consume(&c);
	atomic_store_explicit(&quit, true, memory_order_relaxed);
	for (unsigned p = 0; p < nprod; p++) {
		pthread_join(prod[p].thread, NULL);
		enq_true += prod[p].enq_true;
	}
	secs = test_now_seconds() - t0;
	test_watchdog_stop(&wd);

	/* Quiescent now: the queue must be empty and every item seen once. */
	{
		struct flowq_mpsc_node *node = NULL, *buf[4];
		int rc = flowq_mpsc_trydequeue(&queue, &node);

		if (rc != -ENOENT)
			test_violation(PROG, "final trydequeue returned %d, want -ENOENT",
				       rc);
		if (flowq_mpsc_dequeue_batch(&queue, buf, 4) != 0)
			test_violation(PROG, "final batch returned items");
		if (!flowq_mpsc_empty(&queue))
			test_violation(PROG, "queue not empty at the end");
	}
	if (c.consumed != c.total)
		test_violation(PROG, "consumed %" PRIu64 " of %" PRIu64, c.consumed,
			       c.total);
	/* Default mode: each node taken once; recycle: all handed back. */
	for (uint64_t i = 0; i < c.nodes; i++) {
		if (c.seen[i] != (c.recycle ? 0 : 1)) {
			test_violation(PROG, "node %" PRIu64 " taken %u times%s", i,
				       c.seen[i],
				       c.recycle ? " and not handed back" : "");
			break;
		}
	}
	for (unsigned p = 0; p < nprod; p++) {
		if (c.next_seq[p] != c.per_producer)
			test_violation(PROG,
				       "producer %u: last seq %" PRIu32 ", want %" PRIu32,
				       p, c.next_seq[p], c.per_producer);
	}
	if (c.recycle)
		check_pools(prod, nprod);
	/* 1 <= E <= T <= C; see the comment at the top. */
	if (!(1 <= c.emptied && c.emptied <= enq_true && enq_true <= c.calls_ok))
		test_violation(PROG,
			       "empty signal: observed emptyings %" PRIu64
			       ", enqueue true %" PRIu64
			       ", successful dequeue calls %" PRIu64
			       "; want 1 <= E <= T <= C",
			       c.emptied, enq_true, c.calls_ok);

	for (unsigned p = 0; p < nprod; p++) {
		reused += prod[p].reused;
		starved += prod[p].starved;
		free(prod[p].free);
		free(prod[p].is_free);
	}
	fprintf(stderr,
		PROG ": enqueue_true=%" PRIu64 " observed_emptyings=%" PRIu64
		     " dequeue_calls_ok=%" PRIu64 " eagain=%" PRIu64 " enoent=%" PRIu64
		     " batch_zero=%" PRIu64 "\n",
		enq_true, c.emptied, c.calls_ok, c.eagain, c.enoent, c.batch_zero);
	if (c.recycle)
		fprintf(stderr,
			PROG ": taken_back=%" PRIu64 " producer_waits=%" PRIu64
			     " deferred_hand_backs=%" PRIu64 "\n",
			reused, starved, c.deferred);
	stress_soak_count("ops", c.total);
	printf("SUMMARY " PROG " producers=%u items=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       nprod, c.total, atomic_load(test_violations()), secs);
	free(c.pool);
	free(c.seen);
	free(c.next_seq);
	free(c.pending);
	pthread_barrier_destroy(&start);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main(PROG, argc, argv, run, test_violations());
}
