/*
 * stress_mpsc: P producers -> 1 consumer on one flowq_mpsc (or on Q of them).
 *
 *   stress_mpsc [--sparse] [--recycle POOL] [--queues Q] P [ITEMS [SEED]]
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
 *    lives"), as the engine's flow inboxes and doorbells use it;
 *  - --queues Q (2..16, with any of the above): Q queues, producer i
 *    enqueueing into queue i % Q, emptied by one consumer the way the
 *    engine empties its doorbell queues: half its calls are
 *    flowq_mpsc_dequeue_lockstep() over all Q queues or over a random
 *    contiguous run of them (one queue too; its first or its last queue
 *    drawn uniformly), the other half a trydequeue
 *    or a batch on one random queue, so that each kind of call goes on from
 *    the cursors and known tails the other left. The run ends with a final
 *    phase in which every call is checked exactly ("Lockstep" below).
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
 *    because a node got lost (its producer then waits for it forever);
 *  - --queues: the lockstep checks below.
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
 * Lockstep (--queues)
 * -------------------
 * The contract (flowq/mpsc.h): each step loads the next link of every
 * queue still contributing and takes one item from each, in array order; a
 * queue stops contributing when the call reaches its newest linked item,
 * exactly where flowq_mpsc_dequeue_batch() would return; at most max items
 * and at most FLOWQ_MPSC_LOCKSTEP_MAX queues read. The call reports only
 * its total, so the consumer reads the rest off the items: queue q gave
 * c_q items, those whose producer is on q. Checked on every call:
 *  - range: every item comes from a queue the call was given, and is its
 *    producer's queue (so also: nothing from a queue without producers);
 *  - count: at most max, and r_nodes[max] left alone;
 *  - step order: a queue that stops (newest linked item, a gap, or max
 *    reached in the step) never comes back in that call, so q gives one
 *    item to each of the steps 1 .. c_q and the call's sequence of queues is
 *    fixed by the counts: step s is every queue with c_q >= s, in array
 *    order (max may end the last step early: the same rule). Holds whatever
 *    the producers are doing (a gap only makes a c_q smaller);
 *  - the most queues: one full call in eight passes
 *    FLOWQ_MPSC_LOCKSTEP_MAX + 1 for nq; queues[] holds that many, the ones
 *    past Q empty and the last a sentinel queue with one item, which must
 *    never come out and is still there at the end;
 *  - per queue, as in the other modes: exactly once and FIFO per producer
 *    (a producer's items all go to one queue), the payload, and the
 *    empty -> non-empty chain 1 <= E_q <= T_q <= C_q (below; a lockstep
 *    call goes through mpsc_take_last(), and so tries [D3], at most once
 *    per queue, so D_q <= C_q with C_q the calls that took items of q;
 *    E_q = T_q = C_q = 0 for a queue without a producer, Q > P).
 * The final phase. Once at most hold_at items are left (1..HOLD_MAX, drawn
 * per run), the consumer stops, hands back its nodes and waits for every
 * producer to finish; in recycle mode only once every producer can finish
 * without it (no more of its items left to consume than its pool holds),
 * and until then it serves only the queues of producers that cannot, and
 * takes no more than brings one of them down to its pool, so that they
 * leave about POOL items each. (No call before the phase takes the run's
 * last item: max is capped. An idle consumer that sees every producer
 * finished starts the phase too.) Then the queues hold exactly the items
 * not consumed, all linked, left_q in queue q (from the sequence numbers),
 * and no queue can stop early: each call must take exactly what the
 * contract says, a lockstep call from each queue min(left_q, the steps max
 * allows it), in all min(max, the sum of left_q over its queues) -- the
 * lower bound that no call can be held to while producers run -- in the
 * order above; a batch min(max, left_q); a trydequeue an item, or -ENOENT.
 * First a few calls on the queues as the producers left them (with the
 * cursors and known tails of the concurrent calls); then the consumer holds
 * back the rest: it takes every queue's items out with batches (exact
 * counts) without consuming them, enqueues them again in the same order as
 * its own chains and single nodes (into each queue the first enqueue must
 * return true, and no other), and from then on compares every call node by
 * node with that order. ROUNDS (64) rounds of 1-3 calls do not consume what
 * they take: after each, batches take the rest out (which must be exactly
 * the held-back nodes after those) and the consumer enqueues them all again
 * in the held-back order, so the per-producer order stays whole; then calls
 * consume the items. Three calls in four are lockstep, most of them of
 * about two steps, and most batches small, for many checked calls.
 * Everything the checks read is the consumer's own or published by the
 * producers' release of producers_done, so they all run under TSan too.
 *
 * What --queues catches, tried on local mutants of
 * flowq_mpsc_dequeue_lockstep() in queues/mpsc.c: runs of the two CTest
 * configurations with seeds 1-5 that failed, normal build / TSan (one run
 * each; the counts of the timing-dependent ones vary from run to run), and
 * the check that fired first:
 *  - the last queue given never read (k + 1 < nq in the first loop): 10/10,
 *    10/10; a final-phase count. Only the final phase can see it: while
 *    producers run, a queue that gives nothing looks like one at a gap;
 *  - the live queues in reverse array order: 10/10, 10/10; step order;
 *  - one item past max (the in-step test n == max + 1): 10/10, 10/10;
 *    the count;
 *  - one queue past FLOWQ_MPSC_LOCKSTEP_MAX read: 10/10, 10/10; the
 *    sentinel comes out ("not an item of the pool");
 *  - no mpsc_returned() for an item a step returns (a stale known tail):
 *    7/10, 10/10; a final-phase count or order (the queue can no longer
 *    give its newest item); recycling masks it in some runs, as for the
 *    batch above;
 *  - [D2] relaxed in the step: 0/10, 10/10; a TSan report on the payload;
 *  - the survivors' cursors not stored when max ends a step: 10/10, 10/10;
 *    items dequeued twice (under TSan with recycling, a report first);
 *  - no cursor stored for a queue that stops at a gap: 7/10, 10/10; items
 *    dequeued twice, or again before their hand-back (in two recycle runs
 *    the watchdog then aborts: a node is lost).
 * The single-queue modes never call it, so they catch none of these.
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
 * (details and counters go to stderr, with pool=POOL in recycle mode, and
 * with --queues the queue count, the lockstep calls and the final phase's
 * items; the E, T and C there are sums over the queues); the exit status
 * is 1 if V > 0.
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
/* --queues Q: at most 16 queues, and no more than one lockstep call reads. */
#define MAX_QUEUES (FLOWQ_MPSC_LOCKSTEP_MAX < 16 ? FLOWQ_MPSC_LOCKSTEP_MAX : 16)
#define HOLD_MAX   1024 /* --queues: the most items the consumer holds back */
#define ROUNDS     64   /* --queues: rounds of calls on the held-back items */

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
	struct flowq_mpsc *q; /* the queue it enqueues into: queues[id % Q] */
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

/*
 * The queues: queues[0] alone, or queues[0 .. Q - 1] (--queues). The rest are
 * empty, except the last, which holds one sentinel item: a lockstep call
 * given more than FLOWQ_MPSC_LOCKSTEP_MAX queues from queues[0] must read
 * only the first FLOWQ_MPSC_LOCKSTEP_MAX, so the sentinel never comes out.
 */
static struct flowq_mpsc queues[FLOWQ_MPSC_LOCKSTEP_MAX + 1];
static struct item sentinel;
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
			if (flowq_mpsc_enqueue(p->q, &first->node))
				p->enq_true++;
		} else {
			if (flowq_mpsc_enqueue_chain(p->q, &first->node, &last->node))
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
	uint64_t eagain;     /* trydequeue -EAGAIN */
	uint64_t enoent;     /* trydequeue -ENOENT */
	uint64_t batch_zero; /* batch calls with max > 0 that returned 0 */
	uint64_t deferred;   /* hand-backs put off until after the next call */
	uint64_t rng;
	/* Per queue (queues[0] alone without --queues), for 1 <= E <= T <= C. */
	unsigned nqueues;
	uint64_t calls_q[MAX_QUEUES];    /* successful calls that took its items */
	uint64_t emptied_q[MAX_QUEUES];  /* of those, calls after which it was empty */
	uint64_t own_true_q[MAX_QUEUES]; /* the consumer's re-enqueues that said true */
	/* --queues: the final phase (every producer finished). */
	uint64_t hold_at;          /* it starts once at most this many items are left */
	bool final;                /* left[] is exact */
	bool held;                 /* ... and hold[] says which nodes, in order */
	bool dry;                  /* ... and calls do not consume (recirculate()) */
	uint64_t left[MAX_QUEUES]; /* items in each queue */
	struct flowq_mpsc_node **hold; /* the held-back nodes, queue after queue */
	/* Queue q's part of hold[]: from hold_start to hold_end, hold_next the
	 * next node a call must return. */
	uint32_t hold_start[MAX_QUEUES], hold_next[MAX_QUEUES], hold_end[MAX_QUEUES];
	/* --queues: counters for stderr. */
	uint64_t ls_calls;       /* lockstep calls */
	uint64_t ls_items;       /* items they returned */
	uint64_t ls_zero;        /* those with max > 0 that returned nothing */
	uint64_t ls_interleaved; /* those that took items of two or more queues */
	uint64_t ls_oversize;    /* those given more queues than the maximum */
	uint32_t ls_steps;       /* the most steps one call took items in */
	uint64_t final_items;    /* items left when the final phase began */
	uint64_t final_calls;    /* calls checked against what was left */
	uint64_t held_items;     /* items held back and enqueued again */
	uint64_t rounds;         /* rounds of calls that did not consume */
};

/* Check and count one dequeued node. Returns its producer, or -1 if the
 * node is not an item of the pool or was already taken. */
static int
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
		return -1;
	}
	off = addr - base - offsetof(struct item, node);
	if (off % sizeof(struct item) != 0) {
		test_violation(PROG, "dequeued %p, misaligned within the pool",
			       (void *)node);
		return -1;
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
		return -1;
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
		return (int)owner;
	}
	if (it->seq != c->next_seq[owner]) {
		test_violation(PROG,
			       "producer %" PRIu32 ": seq %" PRIu32
			       " dequeued, expected %" PRIu32,
			       owner, it->seq, c->next_seq[owner]);
	}
	c->next_seq[owner] = it->seq + 1;
	return (int)owner;
}

/*
 * take(), for a call given queues[lo .. lo + nr - 1]: the node's queue is
 * its producer's (producer % Q), and must be one of them. Returns that
 * queue, or -1.
 */
static int
take_from(struct consumer *c, struct flowq_mpsc_node *node, unsigned lo, unsigned nr)
{
	int owner = take(c, node);
	unsigned q;

	if (owner < 0)
		return -1;
	q = (unsigned)owner % c->nqueues;
	if (q < lo || q - lo >= nr) {
		test_violation(PROG,
			       "item of producer %d (queue %u) returned by a call on"
			       " queues %u..%u",
			       owner, q, lo, lo + nr - 1);
		return -1;
	}
	return (int)q;
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

/* After a call that returned items of queue @q: did it leave @q empty? */
static void
queue_done(struct consumer *c, unsigned q)
{
	c->calls_q[q]++;
	if (flowq_mpsc_empty(&queues[q]))
		c->emptied_q[q]++;
}

/* After a call that returned items: of queue @q, or (-1) of the queues a
 * lockstep call passes to queue_done() itself. */
static void
after_success(struct consumer *c, int q)
{
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	if (q >= 0)
		queue_done(c, (unsigned)q);
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
	rc = flowq_mpsc_trydequeue(&queues[0], &node);
	if (rc == 0) {
		take(c, node);
		after_success(c, 0);
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

/* --queues: the queues of a call's items, "0 2 1 ..." (the first 32), for a
 * violation's message. */
static const char *
queue_list(const int *qid, size_t n, char *s, size_t size)
{
	size_t len = 0;

	s[0] = '\0';
	for (size_t k = 0; k < n && k < 32 && len < size; k++)
		len += (size_t)snprintf(s + len, size - len, "%s%d", k ? " " : "",
					qid[k]);
	if (n > 32 && len < size)
		snprintf(s + len, size - len, " ...");
	return s;
}

/* --queues, held back (c->held): @node must be the next node of queue @q's
 * part of hold[]. */
static bool
held_next(struct consumer *c, unsigned q, const struct flowq_mpsc_node *node)
{
	const struct flowq_mpsc_node *want =
		c->hold_next[q] < c->hold_end[q] ? c->hold[c->hold_next[q]] : NULL;

	if (node != want) {
		test_violation(PROG,
			       "queue %u: %p returned, the held-back order wants %p", q,
			       (const void *)node, (const void *)want);
		return false;
	}
	c->hold_next[q]++;
	return true;
}

/*
 * --queues: one flowq_mpsc_dequeue_lockstep() call, its parameters drawn
 * from @r: over queues[base .. base + span - 1] or a random contiguous run
 * of them (one queue too), over all Q now and then given more queues than a
 * call reads, max as for a batch (at most @cap; in the final phase mostly
 * about two steps, for more calls). Checks the count against max and the end of the
 * array, each item's queue against the run, and the step order: the items
 * of a call are its steps one after the other, a step taking one item from
 * each queue still contributing, in array order, and a queue contributing
 * to the first steps only. So if queue q gave c_q items, the call's
 * sequence of queues is fixed by the counts: step s is every queue with
 * c_q >= s, in order (up to max, which may end the last step early). In
 * the final phase (c->final) the counts are fixed too: a queue stops only
 * at its newest linked item, which is then its last, so c_q = min(left_q,
 * the steps that max allows), and once held back, each item is known.
 * Returns false after a violation that ends the run (the concurrent phase)
 * or the final phase; @r_n receives the count.
 */
static bool
lockstep_call(struct consumer *c, uint64_t r, unsigned base, unsigned span, size_t cap,
	      size_t *r_n)
{
	struct flowq_mpsc_node *buf[MAX_BATCH + 1];
	int qid[MAX_BATCH];
	unsigned want[MAX_BATCH]; /* final phase: the queue of each item */
	uint32_t cnt[MAX_QUEUES] = {0};
	unsigned nqs = c->nqueues, lo = base, nr = span, nonzero = 0;
	size_t nq, max, n, nwant = 0;
	bool known = true, ok = true;
	char s1[160], s2[160];

	*r_n = 0;
	if (r & 1) {
		/* A run with its first queue drawn, or its last. */
		unsigned a = (unsigned)((r >> 2) % span),
			 b = (unsigned)((r >> 8) % (span - a));

		lo = base + ((r & 2) ? a : span - 1 - a - b);
		nr = 1 + b;
	}
	nq = nr;
	/* One call over all queues in eight: more than a call reads (queues[]
	 * holds that many, empty ones after the Q in use, then the sentinel). */
	if (lo == 0 && nr == nqs && (r >> 16) % 8 == 0) {
		nq = FLOWQ_MPSC_LOCKSTEP_MAX + 1;
		c->ls_oversize++;
	}
	/* 1/16 zero, 1/4 one, else up to MAX_BATCH. */
	max = (r >> 20) % 16 == 0  ? 0
	      : (r >> 20) % 4 == 1 ? 1
				   : 1 + (size_t)((r >> 24) % MAX_BATCH);
	if (c->final && (r >> 32) % 8 != 0)
		max = 1 + (size_t)((r >> 35) % (2 * nr));
	if (max > cap)
		max = cap;
	if (c->final) {
		/* The steps over what the queues hold, until max. */
		for (uint64_t s = 0; nwant < max; s++) {
			size_t before = nwant;

			for (unsigned q = lo; q < lo + nr && nwant < max; q++) {
				if (c->left[q] > s)
					want[nwant++] = q;
			}
			if (nwant == before)
				break;
		}
		c->final_calls++;
	}
	buf[max] = NULL;
	n = flowq_mpsc_dequeue_lockstep(&queues[lo], nq, buf, max);
	c->ls_calls++;
	if (n > max) {
		test_violation(PROG, "lockstep of %zu returned %zu", max, n);
		return false;
	}
	if (buf[max] != NULL) {
		test_violation(PROG, "lockstep of %zu wrote past its end", max);
		return false;
	}
	*r_n = n;
	if (c->final && n != nwant) {
		test_violation(PROG,
			       "lockstep over queues %u..%u (max %zu) after every"
			       " producer finished returned %zu items, want %zu",
			       lo, lo + nr - 1, max, n, nwant);
		ok = false;
	}
	for (size_t k = 0; k < n; k++) {
		if (ok && c->held && !held_next(c, want[k], buf[k]))
			ok = false;
		/* Not consumed (c->dry): held_next() has checked the node. */
		if (c->dry)
			qid[k] = ok ? (int)want[k] : -1;
		else
			qid[k] = take_from(c, buf[k], lo, nr);
		if (qid[k] < 0)
			known = false;
		else if (cnt[qid[k]]++ == 0)
			nonzero++;
	}
	/* The step order the counts fix (needs every item's queue). */
	for (size_t k = 0, s = 0; known && k < n; s++) {
		for (unsigned q = lo; q < lo + nr && k < n; q++) {
			if (cnt[q] <= s)
				continue;
			if (qid[k] != (int)q) {
				test_violation(PROG,
					       "lockstep over queues %u..%u (max %zu):"
					       " item %zu of %zu from queue %d, the step"
					       " order wants queue %u; queues: %s",
					       lo, lo + nr - 1, max, k, n, qid[k], q,
					       queue_list(qid, n, s1, sizeof(s1)));
				known = ok = false;
				break;
			}
			k++;
		}
		if (s + 1 > c->ls_steps)
			c->ls_steps = (uint32_t)(s + 1);
	}
	if (c->final && ok) {
		for (size_t k = 0; k < n; k++) {
			int wq[MAX_BATCH];

			if (qid[k] == (int)want[k])
				continue;
			for (size_t j = 0; j < nwant; j++)
				wq[j] = (int)want[j];
			test_violation(PROG,
				       "lockstep over queues %u..%u (max %zu) after every"
				       " producer finished: queues %s, want %s",
				       lo, lo + nr - 1, max,
				       queue_list(qid, n, s1, sizeof(s1)),
				       queue_list(wq, nwant, s2, sizeof(s2)));
			ok = false;
			break;
		}
	}
	if (c->final) {
		for (unsigned q = lo; q < lo + nr; q++)
			c->left[q] -= cnt[q] < c->left[q] ? cnt[q] : c->left[q];
	}
	if (n == 0) {
		c->ls_zero += max > 0;
		return ok || !c->final;
	}
	c->ls_items += n;
	c->ls_interleaved += nonzero >= 2;
	after_success(c, -1);
	for (unsigned q = lo; q < lo + nr; q++) {
		if (cnt[q] > 0)
			queue_done(c, q);
	}
	return ok || !c->final;
}

/*
 * --queues, final phase: a trydequeue or a batch (drawn from @r) on queue
 * @q, whose count is then exact: every link is in place (a trydequeue gets
 * an item or -ENOENT, a batch min(max, left)); once held back, each node is
 * known. Returns false after a violation.
 */
static bool
final_single(struct consumer *c, unsigned q, uint64_t r, size_t cap)
{
	struct flowq_mpsc_node *buf[MAX_BATCH + 1];
	size_t max, n, want;
	bool ok = true;

	c->final_calls++;
	if (r & 1 && cap > 0) {
		int rc = flowq_mpsc_trydequeue(&queues[q], &buf[0]);

		if (rc != (c->left[q] > 0 ? 0 : -ENOENT)) {
			test_violation(PROG,
				       "queue %u: trydequeue returned %d with %" PRIu64
				       " items left after every producer finished",
				       q, rc, c->left[q]);
			return false;
		}
		n = rc == 0;
	} else {
		/* 1/16 zero, then mostly up to 8, else up to MAX_BATCH. */
		max = (r >> 8) % 16 == 0  ? 0
		      : (r >> 8) % 4 != 1 ? 1 + (size_t)((r >> 12) % 8)
					  : 1 + (size_t)((r >> 12) % MAX_BATCH);
		if (max > cap)
			max = cap;
		want = max < c->left[q] ? max : (size_t)c->left[q];
		buf[max] = NULL;
		n = flowq_mpsc_dequeue_batch(&queues[q], buf, max);
		if (n > max || buf[max] != NULL) {
			test_violation(PROG, "queue %u: batch of %zu returned %zu%s", q,
				       max, n, buf[max] != NULL ? ", past its end" : "");
			return false;
		}
		if (n != want) {
			test_violation(PROG,
				       "queue %u: batch of %zu returned %zu with %" PRIu64
				       " items left after every producer finished",
				       q, max, n, c->left[q]);
			ok = false;
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (ok && c->held && !held_next(c, q, buf[k]))
			ok = false;
		if (!c->dry)
			take_from(c, buf[k], q, 1);
	}
	c->left[q] -= n < c->left[q] ? n : c->left[q];
	if (n > 0)
		after_success(c, (int)q);
	return ok;
}

/*
 * --queues, held back: enqueue queue @q's part of hold[] again, in order,
 * as the consumer's own chains and single nodes. The queue is empty and
 * nobody else enqueues, so the first enqueue must say so and no other.
 */
static bool
refill(struct consumer *c, unsigned q)
{
	uint32_t off = c->hold_start[q];

	for (uint32_t i = off; i < c->hold_end[q];) {
		uint64_t r = test_rng_next(&c->rng);
		uint32_t k = 1 + (uint32_t)(r % MAX_CHAIN);
		bool was_empty;

		if (k > c->hold_end[q] - i)
			k = c->hold_end[q] - i;
		for (uint32_t j = i + 1; j < i + k; j++)
			atomic_store_explicit(&c->hold[j - 1]->next, c->hold[j],
					      memory_order_relaxed);
		if (k == 1 && (r >> 8) % 2)
			was_empty = flowq_mpsc_enqueue(&queues[q], c->hold[i]);
		else
			was_empty = flowq_mpsc_enqueue_chain(&queues[q], c->hold[i],
							     c->hold[i + k - 1]);
		if (was_empty != (i == off)) {
			test_violation(PROG,
				       "queue %u: held-back item %u of %u enqueued again:"
				       " returned %d, want %d",
				       q, i - off, c->hold_end[q] - off, was_empty,
				       i == off);
			return false;
		}
		c->own_true_q[q] += was_empty;
		i += k;
	}
	c->hold_next[q] = off;
	c->left[q] = c->hold_end[q] - off;
	return true;
}

/*
 * --queues, final phase: one flowq_mpsc_dequeue_batch() of a random size on
 * queue @p q into @p buf (room for MAX_BATCH + 1), which holds @p rest
 * linked items, so the batch must return exactly min(size, rest) and leave
 * the entry after them alone. Sets *r_n; returns false after a violation
 * (@p what names the step in its message).
 */
static bool
exact_batch(struct consumer *c, unsigned q, struct flowq_mpsc_node **buf, uint64_t rest,
	    const char *what, size_t *r_n)
{
	size_t max = 1 + (size_t)(test_rng_next(&c->rng) % MAX_BATCH);
	size_t want = max < rest ? max : (size_t)rest, n;

	buf[max] = NULL;
	n = flowq_mpsc_dequeue_batch(&queues[q], buf, max);
	c->final_calls++;
	if (n > max || buf[max] != NULL || n != want) {
		test_violation(PROG,
			       "queue %u: %s, a batch of %zu returned %zu with %" PRIu64
			       " left",
			       q, what, max, n, rest);
		return false;
	}
	*r_n = n;
	return true;
}

/*
 * --queues, final phase, at most HOLD_MAX items left: take every queue's
 * items out with batches (each exact) without consuming them into hold[],
 * and refill() the queue. From then on every call's items are known node by
 * node (held_next()). Returns false after a violation.
 */
static bool
hold_back(struct consumer *c)
{
	uint32_t off = 0;

	for (unsigned q = 0; q < c->nqueues; q++) {
		c->hold_start[q] = c->hold_next[q] = c->hold_end[q] = off;
		while (c->hold_end[q] - off < c->left[q]) {
			size_t n;

			if (!exact_batch(c, q, &c->hold[c->hold_end[q]],
					 c->left[q] - (c->hold_end[q] - off),
					 "holding back", &n))
				return false;
			c->hold_end[q] += (uint32_t)n;
			after_success(c, (int)q);
		}
		if (!refill(c, q))
			return false;
		c->held_items += c->hold_end[q] - off;
		off = c->hold_end[q];
	}
	c->held = true;
	return true;
}

/*
 * --queues, held back, after a round of calls that did not consume
 * (c->dry): take the rest of every queue out with batches, which must
 * return exactly the held-back nodes after those the calls took, and
 * refill() the queue, the held-back order whole again. Returns false after
 * a violation.
 */
static bool
recirculate(struct consumer *c)
{
	struct flowq_mpsc_node *buf[MAX_BATCH + 1];

	for (unsigned q = 0; q < c->nqueues; q++) {
		if (c->hold_start[q] == c->hold_end[q])
			continue;
		while (c->hold_next[q] < c->hold_end[q]) {
			size_t n;

			if (!exact_batch(c, q, buf, c->hold_end[q] - c->hold_next[q],
					 "recirculating", &n))
				return false;
			for (size_t k = 0; k < n; k++) {
				if (!held_next(c, q, buf[k]))
					return false;
			}
			after_success(c, (int)q);
		}
		if (!refill(c, q))
			return false;
	}
	return true;
}

/*
 * --queues, recycle mode: does producer @p need the consumer to finish? It
 * does while more of its items are to be consumed than its pool holds
 * (hand_back() returns every node taken, so it gets all but those in the
 * queue back). Never in the default mode, whose pool is all its items.
 */
static bool
lagging(const struct consumer *c, unsigned p)
{
	return c->next_seq[p] < c->per_producer &&
	       c->per_producer - c->next_seq[p] > c->pool_per;
}

/*
 * --queues: time for the final phase? At most hold_at items left, and
 * every producer can finish without the consumer.
 */
static bool
hold_due(const struct consumer *c)
{
	if (c->total - c->consumed > c->hold_at)
		return false;
	for (unsigned p = 0; p < c->nproducers; p++) {
		if (lagging(c, p))
			return false;
	}
	return true;
}

/*
 * --queues, recycle mode, at most hold_at items left but some producer
 * lagging() (the final phase not yet due): serve only the queues of such
 * producers, and take no more than brings one of them down to its pool, so
 * that those leave about POOL items in the queues for the final phase.
 * Picks queue @r_q among them (from @r), the contiguous run of them around
 * it for a lockstep call, and lowers @r_cap to the least a producer of the
 * run may still lose.
 */
static void
lagging_queues(const struct consumer *c, uint64_t r, unsigned *r_q, unsigned *r_base,
	       unsigned *r_span, size_t *r_cap)
{
	uint64_t qcap[MAX_QUEUES] = {0}; /* 0: not lagging */
	unsigned nlag = 0, q, lo, hi;

	for (unsigned p = 0; p < c->nproducers; p++) {
		uint64_t over;

		if (!lagging(c, p))
			continue;
		over = c->per_producer - c->next_seq[p] - c->pool_per;
		q = p % c->nqueues;
		nlag += qcap[q] == 0;
		if (qcap[q] == 0 || over < qcap[q])
			qcap[q] = over;
	}
	if (nlag == 0)
		return; /* hold_due(): not reached */
	r %= nlag;
	for (q = 0; qcap[q] == 0 || r-- > 0; q++) {
	}
	for (lo = q; lo > 0 && qcap[lo - 1] != 0; lo--) {
	}
	for (hi = q + 1; hi < c->nqueues && qcap[hi] != 0; hi++) {
	}
	*r_q = q;
	*r_base = lo;
	*r_span = hi - lo;
	for (unsigned k = lo; k < hi; k++) {
		if (qcap[k] < *r_cap)
			*r_cap = (size_t)qcap[k];
	}
}

/* --queues, final phase: one call, checked; false after a violation. */
static bool
final_call(struct consumer *c, size_t cap)
{
	uint64_t r = test_rng_next(&c->rng);
	size_t n;
	bool ok;

	if (r % 4 != 0)
		ok = lockstep_call(c, r >> 2, 0, c->nqueues, cap, &n);
	else
		ok = final_single(c, (unsigned)((r >> 2) % c->nqueues), r >> 8, cap);
	hand_back(c);
	return ok;
}

static uint64_t
items_left(const struct consumer *c)
{
	uint64_t n = 0;

	for (unsigned q = 0; q < c->nqueues; q++)
		n += c->left[q];
	return n;
}

/*
 * --queues: the final phase. The consumer stops, hands back its nodes and
 * waits for every producer to finish; the queues then hold exactly the
 * items not consumed, all linked, left[q] of them in queue q. First a few
 * calls on the queues as the producers left them (more while over HOLD_MAX
 * are left), checked against left[]; then the rest held back
 * (hold_back()); then ROUNDS rounds of 1-3 calls that do not consume, each
 * followed by recirculate(); then calls until all are consumed. Every call
 * after the hold-back is checked node by node. Lockstep calls (three in
 * four) and single-queue calls on a random queue alternate at random,
 * mostly small ones, so that many calls are checked.
 */
static void
final_phase(struct consumer *c)
{
	uint64_t nleft, calls = 1 + test_rng_next(&c->rng) % 4, idle = 0;

	hand_back(c);
	/* Acquire, pairs with the producers' release: all links visible. */
	while (atomic_load_explicit(&producers_done, memory_order_acquire) !=
	       c->nproducers) {
		if (atomic_load_explicit(test_violations(), memory_order_relaxed) >=
		    GIVE_UP)
			return;
		sched_yield();
	}
	c->final = true;
	for (unsigned p = 0; p < c->nproducers; p++) {
		if (c->next_seq[p] < c->per_producer)
			c->left[p % c->nqueues] += c->per_producer - c->next_seq[p];
	}
	c->final_items = nleft = items_left(c);
	/* As the producers left them; at least half left to hold back. */
	while (nleft > HOLD_MAX || (calls > 0 && nleft >= 2)) {
		if (calls > 0)
			calls--;
		if (!final_call(c, nleft > HOLD_MAX ? SIZE_MAX : (size_t)nleft / 2))
			return;
		nleft = items_left(c);
	}
	if (nleft == 0 || !hold_back(c))
		return;
	c->dry = true;
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (calls = 1 + test_rng_next(&c->rng) % 3; calls > 0; calls--) {
			if (!final_call(c, SIZE_MAX))
				return;
		}
		if (!recirculate(c))
			return;
		c->rounds++;
	}
	c->dry = false;
	while (nleft > 0) {
		uint64_t before = nleft;

		if (!final_call(c, SIZE_MAX))
			return;
		nleft = items_left(c);
		if (nleft < before)
			idle = 0;
		else if (++idle == 10000) {
			test_violation(PROG, "final phase: no item out in 10000 calls");
			return;
		}
	}
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
		if (c->nqueues > 1 && hold_due(c)) {
			final_phase(c);
			break;
		}
		uint64_t r = test_rng_next(&c->rng);
		/* --queues: half the calls lockstep, the others on one queue; never
		 * the last item before the final phase (cap). */
		uint64_t r2 = c->nqueues > 1 ? test_rng_next(&c->rng) : 0;
		unsigned q = (unsigned)((r2 >> 8) % c->nqueues), base = 0,
			 span = c->nqueues;
		size_t cap =
			c->nqueues > 1 ? (size_t)(c->total - c->consumed - 1) : SIZE_MAX;
		bool got = false;

		if (c->nqueues > 1 && c->recycle && c->total - c->consumed <= c->hold_at)
			lagging_queues(c, r2 >> 8, &q, &base, &span, &cap);
		if (r2 & 1) {
			size_t n;

			if (!lockstep_call(c, r2 >> 16, base, span, cap, &n))
				break;
			got = n > 0;
		} else if (r & 1) {
			struct flowq_mpsc_node *node = NULL;
			int rc = flowq_mpsc_trydequeue(&queues[q], &node);

			if (rc == 0) {
				take_from(c, node, q, 1);
				after_success(c, (int)q);
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

			if (max > cap)
				max = cap;
			buf[max] = NULL;
			n = flowq_mpsc_dequeue_batch(&queues[q], buf, max);
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
				take_from(c, buf[k], q, 1);
			if (n > 0) {
				after_success(c, (int)q);
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
		if (c->nqueues > 1) {
			/* Every producer finished: the final phase checks the rest. */
			if (atomic_load_explicit(&producers_done, memory_order_acquire) ==
			    c->nproducers) {
				final_phase(c);
				break;
			}
			/* Now and then let the queues fill, so that lockstep calls
			 * find several of them backlogged. */
			if (!c->recycle && (r2 >> 56) % 8 == 0)
				spin((unsigned)((r2 >> 40) % 4096));
		} else if (check_stalled(c)) {
			break;
		}
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
	uint64_t enq_true_q[MAX_QUEUES] = {0}, emptied = 0, calls_ok = 0;
	uint32_t recycle_pool = 0;
	unsigned nqueues = 1;
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
		} else if (argc > a && strcmp(argv[a], "--queues") == 0) {
			if (argc < a + 2) {
				fprintf(stderr, PROG ": --queues needs a queue count\n");
				return 2;
			}
			nqueues = (unsigned)test_parse_ulong(
				PROG, argv[a + 1], "queue count", 2, MAX_QUEUES);
			a += 2;
		} else {
			break;
		}
	}
	if (argc - a < 1 || argc - a > 3) {
		fprintf(stderr, "usage: " PROG " [--sparse] [--recycle POOL] [--queues Q]"
				" PRODUCERS [ITEMS [SEED]]\n");
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
	c.nqueues = nqueues;
	/* Room for a batch past the last held-back item (hold_back()). */
	c.hold = nqueues > 1 ? calloc(HOLD_MAX + MAX_BATCH + 1, sizeof(*c.hold)) : NULL;
	if (c.pool == NULL || c.seen == NULL || c.next_seq == NULL ||
	    (c.recycle && c.pending == NULL) || (nqueues > 1 && c.hold == NULL)) {
		fprintf(stderr, PROG ": out of memory\n");
		return 2;
	}
	c.rng = seed;
	/* The final phase starts with at most 1..HOLD_MAX items left. */
	if (nqueues > 1)
		c.hold_at = 1 + test_rng_next(&c.rng) % HOLD_MAX;
	fprintf(stderr, PROG ": producers=%u items=%" PRIu64 " seed=%" PRIu64, nprod,
		c.total, seed);
	if (c.recycle)
		fprintf(stderr, " pool=%" PRIu32 " per producer (recycling)", c.pool_per);
	if (nqueues > 1)
		fprintf(stderr, " queues=%u (final phase at %" PRIu64 " left)", nqueues,
			c.hold_at);
	fputc('\n', stderr);

	memset(prod, 0, sizeof(prod)); /* a clean slate for each soak iteration */
	for (unsigned q = 0; q <= FLOWQ_MPSC_LOCKSTEP_MAX; q++) {
		if (sparse)
			flowq_mpsc_init_sparse(&queues[q]);
		else
			flowq_mpsc_init(&queues[q]);
	}
	if (nqueues > 1) {
		sentinel.producer = UINT32_MAX;
		flowq_mpsc_enqueue(&queues[FLOWQ_MPSC_LOCKSTEP_MAX], &sentinel.node);
	}
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
		pp->q = &queues[p % nqueues];
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
		enq_true_q[p % nqueues] += prod[p].enq_true;
	}
	secs = test_now_seconds() - t0;
	test_watchdog_stop(&wd);

	/* Quiescent now: the queues must be empty and every item seen once. */
	for (unsigned q = 0; q < nqueues; q++) {
		struct flowq_mpsc_node *node = NULL, *buf[4];
		int rc = flowq_mpsc_trydequeue(&queues[q], &node);

		if (rc != -ENOENT)
			test_violation(
				PROG,
				"queue %u: final trydequeue returned %d, want -ENOENT", q,
				rc);
		if (flowq_mpsc_dequeue_batch(&queues[q], buf, 4) != 0)
			test_violation(PROG, "queue %u: final batch returned items", q);
		if (!flowq_mpsc_empty(&queues[q]))
			test_violation(PROG, "queue %u not empty at the end", q);
	}
	if (nqueues > 1) {
		struct flowq_mpsc_node *node = NULL, *buf[4];

		if (flowq_mpsc_dequeue_lockstep(queues, nqueues, buf, 4) != 0)
			test_violation(PROG, "final lockstep returned items");
		/* The sentinel, never read by a lockstep call, is still there. */
		if (flowq_mpsc_trydequeue(&queues[FLOWQ_MPSC_LOCKSTEP_MAX], &node) != 0 ||
		    node != &sentinel.node ||
		    !flowq_mpsc_empty(&queues[FLOWQ_MPSC_LOCKSTEP_MAX]))
			test_violation(PROG,
				       "the sentinel queue after queues[%u] changed",
				       FLOWQ_MPSC_LOCKSTEP_MAX - 1);
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
	/* 1 <= E <= T <= C per queue (0 = E = T = C for a queue without a
	 * producer); see the comment at the top. */
	for (unsigned q = 0; q < nqueues; q++) {
		uint64_t e = c.emptied_q[q], t = enq_true_q[q] + c.own_true_q[q];
		uint64_t n = c.calls_q[q], lo = q < nprod ? 1 : 0;

		emptied += e; /* for stderr: the sums over the queues */
		calls_ok += n;
		enq_true += c.own_true_q[q];
		if (!(lo <= e && e <= t && t <= n && (lo || n == 0)))
			test_violation(
				PROG,
				"empty signal, queue %u: observed emptyings %" PRIu64
				", enqueue true %" PRIu64
				", successful dequeue calls %" PRIu64 "; want %s",
				q, e, t, n, lo ? "1 <= E <= T <= C" : "E = T = C = 0");
	}

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
		enq_true, emptied, calls_ok, c.eagain, c.enoent, c.batch_zero);
	if (c.recycle)
		fprintf(stderr,
			PROG ": taken_back=%" PRIu64 " producer_waits=%" PRIu64
			     " deferred_hand_backs=%" PRIu64 "\n",
			reused, starved, c.deferred);
	if (nqueues > 1)
		fprintf(stderr,
			PROG ": lockstep_calls=%" PRIu64 " items=%" PRIu64
			     " zero=%" PRIu64 " interleaved=%" PRIu64 " oversize=%" PRIu64
			     " most_steps=%" PRIu32 " final_items=%" PRIu64
			     " final_calls=%" PRIu64 " held_back=%" PRIu64
			     " rounds=%" PRIu64 "\n",
			c.ls_calls, c.ls_items, c.ls_zero, c.ls_interleaved,
			c.ls_oversize, c.ls_steps, c.final_items, c.final_calls,
			c.held_items, c.rounds);
	stress_soak_count("ops", c.total);
	printf("SUMMARY " PROG " producers=%u items=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       nprod, c.total, atomic_load(test_violations()), secs);
	free(c.pool);
	free(c.seen);
	free(c.next_seq);
	free(c.pending);
	free(c.hold);
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
