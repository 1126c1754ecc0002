/*
 * Unit tests for queues/mpsc.c: the intrusive MPSC FIFO.
 *
 * Single-threaded unless the test name says otherwise: these pin down the
 * API contract (FIFO order, batch sizes, the empty -> non-empty signal,
 * -ENOENT vs -EAGAIN, node reuse). Concurrency is the job of
 * tests/stress/stress_mpsc.c, which also runs under TSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/mpsc.h>

#include "test_util.h"

struct item {
	uint64_t payload;
	struct flowq_mpsc_node node; /* not first: container_of must work */
	uint32_t id;
};

static struct item *
item_of(const struct flowq_mpsc_node *n)
{
	return (struct item *)((char *)n - offsetof(struct item, node));
}

/* A value no dequeue may leave in an out-parameter or unused batch slot. */
static struct flowq_mpsc_node poison_node;
#define POISON (&poison_node)

static struct flowq_mpsc q;

static void
setup(void)
{
	flowq_mpsc_init(&q);
}

/* The same tests on a queue whose dummy is on the producers' line. */
static void
setup_sparse(void)
{
	flowq_mpsc_init_sparse(&q);
}

TestSuite(mpsc, .init = setup);
TestSuite(mpsc_gap, .init = setup);
TestSuite(mpsc_sparse, .init = setup_sparse);
TestSuite(mpsc_gap_sparse, .init = setup_sparse);

/* A test of the queue's contract, run in both layouts: SUITE and
 * SUITE_sparse. */
#define BOTH(suite, name)                                                                  \
	static void suite##_##name(void);                                                  \
	Test(suite, name)                                                                  \
	{                                                                                  \
		suite##_##name();                                                          \
	}                                                                                  \
	Test(suite##_sparse, name)                                                         \
	{                                                                                  \
		suite##_##name();                                                          \
	}                                                                                  \
	static void suite##_##name(void)

static void
init_items(struct item *it, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		it[i].payload = 0x1000 + i;
		it[i].id = (uint32_t)i;
	}
}

static void
assert_dequeue(struct item *want)
{
	struct flowq_mpsc_node *n = POISON;

	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), 0);
	cr_assert_eq(n, &want->node, "dequeued item %u, want %u", item_of(n)->id,
		     want->id);
}

static void
assert_enoent(void)
{
	struct flowq_mpsc_node *n = POISON;
	struct flowq_mpsc_node *buf[2] = {POISON, POISON};

	cr_assert(flowq_mpsc_empty(&q));
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -ENOENT);
	cr_assert_eq(n, POISON, "r_node must be untouched on error");
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 2), 0);
	cr_assert_eq(buf[0], POISON);
	cr_assert_eq(buf[1], POISON);
}

/* ------------------------------------------------------------------------ */
/* Basics */

Test(mpsc, layout_is_two_cache_lines)
{
	cr_assert_eq(sizeof(struct flowq_mpsc), 2 * FLOWQ_CACHE_LINE);
	cr_assert_eq(_Alignof(struct flowq_mpsc), FLOWQ_CACHE_LINE);
	cr_assert_eq(offsetof(struct flowq_mpsc, tail), FLOWQ_CACHE_LINE,
		     "head and tail on separate lines");
}

BOTH(mpsc, init_is_empty)
{
	struct flowq_mpsc_node *buf[1] = {POISON};

	assert_enoent();
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 0), 0);
	cr_assert_eq(buf[0], POISON);
}

BOTH(mpsc, init_resets_a_used_queue)
{
	struct item it[3];

	init_items(it, 3);
	for (int i = 0; i < 3; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	cr_assert_not(flowq_mpsc_empty(&q));
	if (q.stub == &q.head_p) /* the suite's layout */
		flowq_mpsc_init_sparse(&q);
	else
		flowq_mpsc_init(&q);
	assert_enoent();
	cr_assert(flowq_mpsc_enqueue(&q, &it[1].node), "first enqueue after init");
	assert_dequeue(&it[1]);
	assert_enoent();
}

BOTH(mpsc, one_item)
{
	struct item it;

	init_items(&it, 1);
	cr_assert(flowq_mpsc_enqueue(&q, &it.node), "empty -> non-empty returns true");
	cr_assert_not(flowq_mpsc_empty(&q));
	assert_dequeue(&it);
	cr_assert_eq(item_of(&it.node)->payload, 0x1000,
		     "payload recovered by container_of");
	assert_enoent();
}

/* The prefetch hint leaves the queue as it was, whatever state it finds:
 * empty, with items the consumer has not looked at, and with the oldest
 * found (first set, the dummy's link stale). */
BOTH(mpsc, prefetch_oldest_changes_nothing)
{
	struct item it[3];
	struct flowq_mpsc before;

	init_items(it, 3);
	flowq_mpsc_prefetch_oldest(&q);
	cr_assert_null(flowq_mpsc_oldest_hint(&q));
	assert_enoent();
	for (int i = 0; i < 3; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	memcpy(&before, &q, sizeof(q));
	flowq_mpsc_prefetch_oldest(&q);
	cr_assert_eq(flowq_mpsc_oldest_hint(&q), &it[0].node, "fresh: the oldest item");
	cr_assert(memcmp(&before, &q, sizeof(q)) == 0, "the hint wrote the queue");
	assert_dequeue(&it[0]);
	memcpy(&before, &q, sizeof(q));
	flowq_mpsc_prefetch_oldest(&q);
	cr_assert(memcmp(&before, &q, sizeof(q)) == 0, "the hint wrote the queue");
	assert_dequeue(&it[1]);
	assert_dequeue(&it[2]);
	assert_enoent();
}

BOTH(mpsc, one_item_by_batch)
{
	struct item it;
	struct flowq_mpsc_node *buf[4] = {POISON, POISON, POISON, POISON};

	init_items(&it, 1);
	cr_assert(flowq_mpsc_enqueue(&q, &it.node));
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 4), 1);
	cr_assert_eq(buf[0], &it.node);
	cr_assert_eq(buf[1], POISON, "slots past the count are untouched");
	assert_enoent();
}

/* Link it[a..b] into a chain (what a chain's producer does first). */
static void
link_chain(struct item *it, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		atomic_store_explicit(&it[i].node.next, &it[i + 1].node, memory_order_relaxed);
}

BOTH(mpsc, chains_keep_order_and_signal_like_one_node)
{
	struct item it[9];
	struct flowq_mpsc_node *buf[16];

	init_items(it, 9);
	/* it[1] garbage in next: the chain's last node needs no init. */
	atomic_store_explicit(&it[3].node.next, POISON, memory_order_relaxed);
	link_chain(it, 0, 3);
	cr_assert(flowq_mpsc_enqueue_chain(&q, &it[0].node, &it[3].node),
		  "a chain into an empty queue returns true");
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[4].node));
	cr_assert_not(flowq_mpsc_enqueue_chain(&q, &it[5].node, &it[5].node),
		      "one-node chain, queue not empty");
	link_chain(it, 6, 8);
	cr_assert_not(flowq_mpsc_enqueue_chain(&q, &it[6].node, &it[8].node));
	assert_dequeue(&it[0]);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 16), 8);
	for (size_t i = 0; i < 8; i++)
		cr_assert_eq(buf[i], &it[i + 1].node, "position %zu: item %u", i,
			     item_of(buf[i])->id);
	assert_enoent();
	/* Emptied: the next chain is an empty -> non-empty transition. */
	link_chain(it, 0, 1);
	cr_assert(flowq_mpsc_enqueue_chain(&q, &it[0].node, &it[1].node));
	assert_dequeue(&it[0]);
	assert_dequeue(&it[1]);
	assert_enoent();
}

BOTH(mpsc, many_fifo_and_true_only_first)
{
	enum { N = 1000 };
	static struct item it[N];

	init_items(it, N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(flowq_mpsc_enqueue(&q, &it[i].node), i == 0,
			     "enqueue %d on a %s queue", i,
			     i == 0 ? "empty" : "non-empty");
	for (int i = 0; i < N; i++) {
		cr_assert_not(flowq_mpsc_empty(&q));
		assert_dequeue(&it[i]);
	}
	assert_enoent();
}

BOTH(mpsc, next_field_need_not_be_initialized)
{
	struct item it[2], stray;

	init_items(it, 2);
	/* Leftovers in next must not leak into the queue. */
	atomic_init(&it[0].node.next, &stray.node);
	atomic_init(&it[1].node.next, &stray.node);
	flowq_mpsc_enqueue(&q, &it[0].node);
	flowq_mpsc_enqueue(&q, &it[1].node);
	assert_dequeue(&it[0]);
	assert_dequeue(&it[1]);
	assert_enoent();
}

/* ------------------------------------------------------------------------ */
/* Batches */

BOTH(mpsc, batch_of_zero_changes_nothing)
{
	struct item it[3];
	struct flowq_mpsc_node *buf[1] = {POISON};

	init_items(it, 3);
	for (int i = 0; i < 3; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 0), 0);
	cr_assert_eq(buf[0], POISON);
	for (int i = 0; i < 3; i++)
		assert_dequeue(&it[i]);
	assert_enoent();
}

BOTH(mpsc, batch_of_one_takes_the_oldest)
{
	struct item it[3];
	struct flowq_mpsc_node *buf[2] = {POISON, POISON};

	init_items(it, 3);
	for (int i = 0; i < 3; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 1), 1);
		cr_assert_eq(buf[0], &it[i].node, "batch(1) #%d", i);
		cr_assert_eq(buf[1], POISON);
	}
	assert_enoent();
}

BOTH(mpsc, batch_exact_size_empties_the_queue)
{
	enum { N = 16 };
	struct item it[N];
	struct flowq_mpsc_node *buf[N + 1];

	init_items(it, N);
	for (int i = 0; i < N; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	buf[N] = POISON;
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, N), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(buf[i], &it[i].node, "slot %d", i);
	cr_assert_eq(buf[N], POISON);
	assert_enoent();
	/* The queue is usable after a batch emptied it. */
	cr_assert(flowq_mpsc_enqueue(&q, &it[0].node));
	assert_dequeue(&it[0]);
}

BOTH(mpsc, batch_larger_than_queue)
{
	enum { N = 5, MAX = 64 };
	struct item it[N];
	struct flowq_mpsc_node *buf[MAX];

	init_items(it, N);
	for (int i = 0; i < N; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	for (int i = 0; i < MAX; i++)
		buf[i] = POISON;
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, MAX), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(buf[i], &it[i].node, "slot %d", i);
	for (int i = N; i < MAX; i++)
		cr_assert_eq(buf[i], POISON, "slot %d past the count was written", i);
	assert_enoent();
}

BOTH(mpsc, batches_smaller_than_queue_keep_fifo)
{
	enum { N = 100 };
	static struct item it[N];
	struct flowq_mpsc_node *buf[7];
	int next = 0;

	init_items(it, N);
	for (int i = 0; i < N; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	while (next < N) {
		size_t want = (size_t)(N - next) < 7 ? (size_t)(N - next) : 7;
		size_t got = flowq_mpsc_dequeue_batch(&q, buf, 7);

		cr_assert_eq(got, want, "at item %d", next);
		for (size_t k = 0; k < got; k++)
			cr_assert_eq(buf[k], &it[next + (int)k].node);
		next += (int)got;
	}
	assert_enoent();
}

/* ------------------------------------------------------------------------ */
/* Interleavings and the empty -> non-empty signal */

BOTH(mpsc, interleaved_enqueue_dequeue)
{
	struct item it[8];
	struct flowq_mpsc_node *buf[8];

	init_items(it, 8);
	cr_assert(flowq_mpsc_enqueue(&q, &it[0].node));
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[1].node));
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[2].node));
	assert_dequeue(&it[0]);
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[3].node), "queue still held 1 and 2");
	assert_dequeue(&it[1]);
	assert_dequeue(&it[2]);
	/* Down to one item: take it as the last one. */
	assert_dequeue(&it[3]);
	assert_enoent();
	cr_assert(flowq_mpsc_enqueue(&q, &it[4].node), "empty again -> true");
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[5].node));
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 1), 1);
	cr_assert_eq(buf[0], &it[4].node);
	/* One left; enqueue behind it, then drain both in one batch. */
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[6].node));
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 8), 2);
	cr_assert_eq(buf[0], &it[5].node);
	cr_assert_eq(buf[1], &it[6].node);
	assert_enoent();
	cr_assert(flowq_mpsc_enqueue(&q, &it[7].node));
	assert_dequeue(&it[7]);
	assert_enoent();
}

/*
 * Random enqueues, trydequeues and batches against a model FIFO. Checks FIFO
 * order, that enqueue returns true exactly when the model is empty, and that
 * the number of true returns equals the number of times a dequeue emptied the
 * queue (exact here: a single thread, so nothing refills the queue between a
 * dequeue and the check).
 */
BOTH(mpsc, random_model)
{
	enum { N = 512, OPS = 200000 };
	static struct item it[N];
	static uint32_t fifo[N]; /* ring of item ids, oldest at fifo[head % N] */
	bool in_queue[N] = {false};
	struct flowq_mpsc_node *buf[N + 8];
	unsigned long head = 0, tail = 0, trues = 0, emptied = 0;
	uint64_t seed = 12345;

	init_items(it, N);
	for (int op = 0; op < OPS; op++) {
		uint64_t r = test_rng_next(&seed);
		unsigned long len = tail - head;

		if (r % 3 == 0 && len < N) {
			int id = (int)((r >> 8) % N);
			bool was_empty = len == 0;

			if (in_queue[id])
				continue;
			cr_assert_eq(flowq_mpsc_enqueue(&q, &it[id].node), was_empty,
				     "op %d: enqueue on queue of %lu", op, len);
			trues += was_empty;
			in_queue[id] = true;
			fifo[tail++ % N] = (uint32_t)id;
		} else if (r % 3 == 1) {
			struct flowq_mpsc_node *n = POISON;
			int rc = flowq_mpsc_trydequeue(&q, &n);

			if (len == 0) {
				cr_assert_eq(rc, -ENOENT, "op %d", op);
				cr_assert_eq(n, POISON);
				continue;
			}
			cr_assert_eq(rc, 0, "op %d", op);
			cr_assert_eq(item_of(n)->id, fifo[head % N], "op %d: FIFO order",
				     op);
			in_queue[fifo[head++ % N]] = false;
			if (head == tail) {
				cr_assert(flowq_mpsc_empty(&q));
				emptied++;
			} else {
				cr_assert_not(flowq_mpsc_empty(&q));
			}
		} else {
			size_t max = (size_t)((r >> 8) % (N + 8));
			size_t want = max < len ? max : len;
			size_t got = flowq_mpsc_dequeue_batch(&q, buf, max);

			cr_assert_eq(got, want, "op %d: batch(%zu) on %lu", op, max, len);
			for (size_t k = 0; k < got; k++) {
				cr_assert_eq(item_of(buf[k])->id, fifo[head % N],
					     "op %d: FIFO order in batch slot %zu", op,
					     k);
				in_queue[fifo[head++ % N]] = false;
			}
			if (got > 0 && head == tail)
				emptied++;
			cr_assert_eq(flowq_mpsc_empty(&q), head == tail);
		}
	}
	cr_assert_gt(trues, 1000, "the walk must empty the queue often");
	/* The last true return opens an episode that may still be running. */
	cr_assert_eq(trues, emptied + (head != tail), "trues %lu, emptied %lu", trues,
		     emptied);
}

/* ------------------------------------------------------------------------ */
/* Node reuse */

BOTH(mpsc, reuse_of_a_dequeued_node)
{
	struct item it[3];

	init_items(it, 3);
	for (int round = 0; round < 3; round++) {
		cr_assert(flowq_mpsc_enqueue(&q, &it[0].node));
		assert_dequeue(&it[0]);
		assert_enoent();
	}
	/* Re-enqueue a node behind items still queued. */
	flowq_mpsc_enqueue(&q, &it[0].node);
	flowq_mpsc_enqueue(&q, &it[1].node);
	flowq_mpsc_enqueue(&q, &it[2].node);
	assert_dequeue(&it[0]);
	cr_assert_not(flowq_mpsc_enqueue(&q, &it[0].node));
	assert_dequeue(&it[1]);
	assert_dequeue(&it[2]);
	assert_dequeue(&it[0]);
	assert_enoent();
}

BOTH(mpsc, queues_are_independent)
{
	static struct flowq_mpsc q2;
	struct item a = {.id = 0}, b = {.id = 1};
	struct flowq_mpsc_node *n = POISON;

	flowq_mpsc_init(&q2);
	cr_assert(flowq_mpsc_enqueue(&q, &a.node));
	cr_assert(flowq_mpsc_enqueue(&q2, &b.node));
	cr_assert_eq(flowq_mpsc_trydequeue(&q2, &n), 0);
	cr_assert_eq(n, &b.node);
	cr_assert(flowq_mpsc_empty(&q2));
	assert_dequeue(&a);
	assert_enoent();
}

/* ------------------------------------------------------------------------ */
/*
 * -ENOENT vs -EAGAIN. A producer preempted between its exchange on the tail
 * [E1] and its link store [E2] leaves an item the consumer can see (the tail
 * moved) but not reach (the link is missing). No scheduler can stop a thread
 * at that exact point on demand, so these tests play such a producer by hand:
 * they do the two steps of flowq_mpsc_enqueue() on the struct fields
 * themselves, with the same memory orders, and stop in between.
 */

struct half_enqueue {
	struct flowq_mpsc_node *prev;
	struct flowq_mpsc_node *node;
};

/* flowq_mpsc_enqueue() up to and including [E1]. */
static struct half_enqueue
enqueue_exchange_only(struct flowq_mpsc *qq, struct flowq_mpsc_node *node)
{
	struct half_enqueue h = {.node = node};

	atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
	h.prev = atomic_exchange_explicit(&qq->tail, node, memory_order_acq_rel);
	return h;
}

/* The rest of flowq_mpsc_enqueue(): [E2]. Returns what enqueue would. */
static bool
enqueue_link(struct flowq_mpsc *qq, struct half_enqueue h)
{
	atomic_store_explicit(&h.prev->next, h.node, memory_order_release);
	return h.prev == qq->pstub;
}

BOTH(mpsc_gap, gap_on_empty_queue_is_eagain_not_enoent)
{
	struct item a = {.id = 0};
	struct flowq_mpsc_node *n = POISON;
	struct flowq_mpsc_node *buf[4] = {POISON, POISON, POISON, POISON};
	struct half_enqueue h;

	h = enqueue_exchange_only(&q, &a.node);
	cr_assert_eq(h.prev, q.stub, "the exchange saw the empty queue");
	cr_assert_not(flowq_mpsc_empty(&q), "an item being linked is not empty");
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);
	cr_assert_eq(n, POISON);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 4), 0);
	cr_assert_eq(buf[0], POISON);
	/* Repeated polls change nothing. */
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);

	cr_assert(enqueue_link(&q, h), "this enqueue made the queue non-empty");
	assert_dequeue(&a);
	assert_enoent();
}

BOTH(mpsc_gap, gap_behind_the_last_linked_item)
{
	struct item a = {.id = 0}, b = {.id = 1};
	struct flowq_mpsc_node *n = POISON;
	struct flowq_mpsc_node *buf[4] = {POISON, POISON, POISON, POISON};
	struct half_enqueue h;

	cr_assert(flowq_mpsc_enqueue(&q, &a.node));
	h = enqueue_exchange_only(&q, &b.node);
	cr_assert_eq(h.prev, &a.node);

	/*
	 * a is linked but cannot be taken as the last item (the tail has moved
	 * past it) and its successor is not linked yet: -EAGAIN, and the queue
	 * must be left as it was.
	 */
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);
	cr_assert_eq(n, POISON);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 4), 0);
	cr_assert_eq(buf[0], POISON);
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);
	cr_assert_not(flowq_mpsc_empty(&q));

	cr_assert_not(enqueue_link(&q, h));
	assert_dequeue(&a);
	assert_dequeue(&b);
	assert_enoent();
}

BOTH(mpsc_gap, batch_stops_at_the_gap)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	struct flowq_mpsc_node *buf[8];
	struct half_enqueue h;

	for (int i = 0; i < 8; i++)
		buf[i] = POISON;
	flowq_mpsc_enqueue(&q, &a.node);
	flowq_mpsc_enqueue(&q, &b.node);
	h = enqueue_exchange_only(&q, &c.node);

	/* a has a linked successor; b does not: the batch returns a only. */
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 8), 1);
	cr_assert_eq(buf[0], &a.node);
	cr_assert_eq(buf[1], POISON);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf + 1, 8), 0,
		     "b is stuck behind the gap");

	enqueue_link(&q, h);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf + 1, 8), 2);
	cr_assert_eq(buf[1], &b.node);
	cr_assert_eq(buf[2], &c.node);
	assert_enoent();
}

BOTH(mpsc_gap, gap_in_the_middle_blocks_only_what_is_behind_it)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	struct flowq_mpsc_node *n = POISON;
	struct half_enqueue h;

	/* Producer 1 stops inside its enqueue of b; producer 2 enqueues c. */
	flowq_mpsc_enqueue(&q, &a.node);
	h = enqueue_exchange_only(&q, &b.node);
	cr_assert_not(flowq_mpsc_enqueue(&q, &c.node), "producer 2 is not blocked");

	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);
	cr_assert_eq(n, POISON);

	enqueue_link(&q, h);
	assert_dequeue(&a);
	assert_dequeue(&b);
	assert_dequeue(&c);
	assert_enoent();
}

BOTH(mpsc_gap, producer_stopped_after_the_queue_drained)
{
	struct item a = {.id = 0}, b = {.id = 1};
	struct flowq_mpsc_node *buf[4] = {POISON, POISON, POISON, POISON};
	struct half_enqueue h;

	/* Empty -> a -> drained -> a producer stops inside the next enqueue. */
	cr_assert(flowq_mpsc_enqueue(&q, &a.node));
	assert_dequeue(&a);
	h = enqueue_exchange_only(&q, &b.node);
	cr_assert_eq(h.prev, q.stub);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 4), 0);
	cr_assert_not(flowq_mpsc_empty(&q));
	cr_assert(enqueue_link(&q, h));
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 4), 1);
	cr_assert_eq(buf[0], &b.node);
	assert_enoent();
}

/*
 * The consumer remembers the tail it saw at a gap (known_tail, mpsc.c I5) so
 * that it can wait on the missing link without reading the producers' line.
 * A node it has returned must never be taken for that known tail again, or
 * the consumer would report a gap that does not exist and stall forever.
 */
BOTH(mpsc_gap, known_tail_is_forgotten_when_returned_with_a_successor)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	struct flowq_mpsc_node *n = POISON;
	struct half_enqueue h;

	flowq_mpsc_enqueue(&q, &a.node);
	h = enqueue_exchange_only(&q, &b.node);
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN, "gap behind a: tail b seen");
	enqueue_link(&q, h);
	flowq_mpsc_enqueue(&q, &c.node);
	assert_dequeue(&a);
	assert_dequeue(&b); /* b leaves through its successor link, not the CAS */
	/* c is the last linked item and nothing is behind it: takeable now. */
	assert_dequeue(&c);
	assert_enoent();
}

BOTH(mpsc_gap, known_tail_is_forgotten_when_returned_by_a_batch)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2}, d = {.id = 3};
	struct flowq_mpsc_node *buf[8];
	struct flowq_mpsc_node *n = POISON;
	struct half_enqueue h;

	flowq_mpsc_enqueue(&q, &a.node);
	h = enqueue_exchange_only(&q, &b.node);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 8), 0, "gap behind a");
	enqueue_link(&q, h);
	flowq_mpsc_enqueue(&q, &c.node);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 8), 3);
	cr_assert_eq(buf[0], &a.node);
	cr_assert_eq(buf[1], &b.node);
	cr_assert_eq(buf[2], &c.node);
	assert_enoent();

	/* b comes back (node reuse) followed by d: both takeable, no gap. */
	cr_assert(flowq_mpsc_enqueue(&q, &b.node));
	flowq_mpsc_enqueue(&q, &d.node);
	assert_dequeue(&b);
	assert_dequeue(&d);
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -ENOENT);
}

BOTH(mpsc_gap, known_tail_reached_is_taken_as_the_last_item)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	struct flowq_mpsc_node *n = POISON;
	struct half_enqueue hb, hc;

	/* Two producers stop in turn; the consumer learns tail c at the first
	 * gap, then walks up to c and must take it with the CAS. */
	flowq_mpsc_enqueue(&q, &a.node);
	hb = enqueue_exchange_only(&q, &b.node);
	hc = enqueue_exchange_only(&q, &c.node);
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN);
	enqueue_link(&q, hb);
	assert_dequeue(&a);
	cr_assert_eq(flowq_mpsc_trydequeue(&q, &n), -EAGAIN,
		     "b's successor c not linked");
	enqueue_link(&q, hc);
	assert_dequeue(&b);
	assert_dequeue(&c);
	assert_enoent();
	/* The queue works normally afterwards. */
	cr_assert(flowq_mpsc_enqueue(&q, &a.node));
	assert_dequeue(&a);
	assert_enoent();
}

/* ------------------------------------------------------------------------ */
/* Which line each side writes (mpsc.c, "Unlike wfcqueue" and I6) */

static void
line_snapshot(unsigned char *buf, unsigned line)
{
	memcpy(buf, (const unsigned char *)&q + line * FLOWQ_CACHE_LINE, FLOWQ_CACHE_LINE);
}

static bool
line_unchanged(const unsigned char *buf, unsigned line)
{
	return memcmp(buf, (const unsigned char *)&q + line * FLOWQ_CACHE_LINE,
		      FLOWQ_CACHE_LINE) == 0;
}

Test(mpsc, each_dummy_on_its_line_and_the_announcement_on_the_producers)
{
	cr_assert_eq(offsetof(struct flowq_mpsc, first) / FLOWQ_CACHE_LINE, 0);
	cr_assert_eq(offsetof(struct flowq_mpsc, known_tail) / FLOWQ_CACHE_LINE, 0);
	cr_assert_eq(offsetof(struct flowq_mpsc, stub) / FLOWQ_CACHE_LINE, 0);
	cr_assert_eq(offsetof(struct flowq_mpsc, head_c) / FLOWQ_CACHE_LINE, 0);
	cr_assert_eq(offsetof(struct flowq_mpsc, pstub) / FLOWQ_CACHE_LINE, 1);
	cr_assert_eq(offsetof(struct flowq_mpsc, head_p) / FLOWQ_CACHE_LINE, 1);
	cr_assert_eq(offsetof(struct flowq_mpsc, announced) / FLOWQ_CACHE_LINE, 1);
	cr_assert_eq((offsetof(struct flowq_mpsc, announce) + sizeof(q.announce) - 1) /
			     FLOWQ_CACHE_LINE,
		     1);
	cr_assert_eq(q.stub, &q.head_c, "flowq_mpsc_init: the consumer's line");
	cr_assert_eq(q.pstub, q.stub);
	flowq_mpsc_init_sparse(&q);
	cr_assert_eq(q.stub, &q.head_p, "flowq_mpsc_init_sparse: the producers' line");
	cr_assert_eq(q.pstub, q.stub);
}

/* The point of the sparse layout: an enqueue, onto an empty queue or not,
 * leaves the consumer line alone, so a queue the consumer keeps emptying
 * costs a producer one line. In the default layout the empty -> non-empty
 * enqueue writes the dummy on the consumer's line. */
static void
enqueue_onto_emptied_queue(bool want_consumer_line_unchanged)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	unsigned char cons[FLOWQ_CACHE_LINE];

	flowq_mpsc_enqueue(&q, &a.node);
	assert_dequeue(&a); /* the consumer emptied it: its [D3] */
	line_snapshot(cons, 0);
	cr_assert(flowq_mpsc_enqueue(&q, &b.node), "empty -> non-empty");
	cr_assert_eq(line_unchanged(cons, 0), want_consumer_line_unchanged,
		     "the empty -> non-empty enqueue");
	line_snapshot(cons, 0);
	cr_assert_not(flowq_mpsc_enqueue(&q, &c.node));
	cr_assert(line_unchanged(cons, 0), "an enqueue behind an item");
	assert_dequeue(&b);
	assert_dequeue(&c);
	assert_enoent();
}

Test(mpsc_sparse, an_enqueue_never_writes_the_consumer_line)
{
	enqueue_onto_emptied_queue(true);
}

Test(mpsc, the_first_enqueue_writes_the_dummy_on_the_consumer_line)
{
	enqueue_onto_emptied_queue(false);
}

/* And the consumer writes the producers' line only when it empties the
 * queue (the NULL and [D3]): a backlog is walked on the consumer line. */
BOTH(mpsc, a_dequeue_that_leaves_items_never_writes_the_producer_line)
{
	struct item it[6];
	struct flowq_mpsc_node *buf[8];
	unsigned char prod[FLOWQ_CACHE_LINE];

	init_items(it, 6);
	for (int i = 0; i < 6; i++)
		flowq_mpsc_enqueue(&q, &it[i].node);
	line_snapshot(prod, 1);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 2), 2);
	cr_assert_eq(buf[0], &it[0].node);
	cr_assert_eq(buf[1], &it[1].node);
	assert_dequeue(&it[2]);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 2), 2);
	cr_assert_eq(buf[0], &it[3].node);
	cr_assert_eq(buf[1], &it[4].node);
	cr_assert(line_unchanged(prod, 1), "the producer line while items are left");
	assert_dequeue(&it[5]);
	cr_assert_not(line_unchanged(prod, 1), "emptying resets tail to &head");
	assert_enoent();
}

BOTH(mpsc, the_queue_never_touches_the_announcement)
{
	struct item it[4];
	struct flowq_mpsc_node *buf[4];
	struct flowq_mpsc_node other;

	init_items(it, 4);
	atomic_store(&q.announced, 7u);
	atomic_store(&q.announce.next, &other);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4; i++)
			flowq_mpsc_enqueue(&q, &it[i].node);
		cr_assert_eq(flowq_mpsc_dequeue_batch(&q, buf, 3), 3);
		assert_dequeue(&it[3]);
		assert_enoent();
	}
	cr_assert_eq(atomic_load(&q.announced), 7u);
	cr_assert_eq(atomic_load(&q.announce.next), &other);
	flowq_mpsc_init(&q);
	cr_assert_eq(atomic_load(&q.announced), 0u, "init zeroes it");
	cr_assert_null(atomic_load(&q.announce.next));
}

BOTH(mpsc_gap, linked_sees_linked_items_only)
{
	struct item a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
	struct half_enqueue h;

	cr_assert_not(flowq_mpsc_linked(&q));
	h = enqueue_exchange_only(&q, &a.node);
	cr_assert_not(flowq_mpsc_linked(&q), "exchanged, not linked");
	cr_assert_not(flowq_mpsc_empty(&q));
	enqueue_link(&q, h);
	cr_assert(flowq_mpsc_linked(&q));
	flowq_mpsc_enqueue(&q, &b.node);
	flowq_mpsc_enqueue(&q, &c.node);
	assert_dequeue(&a);
	cr_assert(flowq_mpsc_linked(&q), "b, found through the cursor");
	assert_dequeue(&b);
	assert_dequeue(&c);
	cr_assert_not(flowq_mpsc_linked(&q));
	assert_enoent();
}

/* ------------------------------------------------------------------------ */
/* flowq_mpsc_dequeue_lockstep(): several queues at once, one item per queue
 * per step. The queues take q's layout (the suite's init). */

TestSuite(mpsc_lockstep, .init = setup);
TestSuite(mpsc_lockstep_sparse, .init = setup_sparse);

enum { LS_QUEUES = 3 };
static struct flowq_mpsc lsq[FLOWQ_MPSC_LOCKSTEP_MAX + 1];

static void
lockstep_init(size_t n)
{
	bool sparse = q.stub == &q.head_p;

	for (size_t k = 0; k < n; k++) {
		if (sparse)
			flowq_mpsc_init_sparse(&lsq[k]);
		else
			flowq_mpsc_init(&lsq[k]);
	}
}

/* Enqueue @p n items, ids first .. first + n - 1, into lsq[@p k]. */
static void
lockstep_fill(struct item *it, size_t k, uint32_t first, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		it[i].id = first + (uint32_t)i;
		flowq_mpsc_enqueue(&lsq[k], &it[i].node);
	}
}

/* One lockstep call over lsq[0 .. nq - 1]; its items' ids must be @p want
 * (nwant of them), and the slots after them untouched. */
static void
assert_lockstep(size_t nq, size_t max, const uint32_t *want, size_t nwant)
{
	struct flowq_mpsc_node *buf[32];

	for (size_t i = 0; i < 32; i++)
		buf[i] = POISON;
	cr_assert_leq(max, 31);
	size_t n = flowq_mpsc_dequeue_lockstep(lsq, nq, buf, max);
	cr_assert_eq(n, nwant, "lockstep of %zu returned %zu items, want %zu", max, n,
		     nwant);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(item_of(buf[i])->id, want[i], "item %zu: id %u, want %u", i,
			     item_of(buf[i])->id, want[i]);
	cr_assert_eq(buf[n], POISON, "wrote past the items it returned");
}

static void
assert_lockstep_empty(size_t nq)
{
	for (size_t k = 0; k < nq; k++)
		cr_assert(flowq_mpsc_empty(&lsq[k]), "queue %zu not empty", k);
	assert_lockstep(nq, 8, NULL, 0);
}

BOTH(mpsc_lockstep, one_item_per_queue_per_step_in_array_order)
{
	struct item a[3], b[1], c[2];

	lockstep_init(LS_QUEUES);
	lockstep_fill(a, 0, 0, 3);  /* 0 1 2 */
	lockstep_fill(b, 1, 10, 1); /* 10 */
	lockstep_fill(c, 2, 20, 2); /* 20 21 */
	/* A step takes one from each queue that still has items. */
	assert_lockstep(LS_QUEUES, 16, (const uint32_t[]){0, 10, 20, 1, 21, 2}, 6);
	assert_lockstep_empty(LS_QUEUES);
	/* Each emptied queue signals its next empty -> non-empty enqueue. */
	for (size_t k = 0; k < LS_QUEUES; k++)
		cr_assert(flowq_mpsc_enqueue(&lsq[k], &a[k].node));
}

BOTH(mpsc_lockstep, max_reached_inside_a_step_and_at_its_end)
{
	struct item a[3], b[1], c[2];

	lockstep_init(LS_QUEUES);
	lockstep_fill(a, 0, 0, 3);
	lockstep_fill(b, 1, 10, 1);
	lockstep_fill(c, 2, 20, 2);
	/* Inside the first step: queue 2 keeps its oldest. */
	assert_lockstep(LS_QUEUES, 2, (const uint32_t[]){0, 10}, 2);
	/* At the end of a step: every queue keeps its place. */
	assert_lockstep(LS_QUEUES, 2, (const uint32_t[]){1, 20}, 2);
	assert_lockstep(LS_QUEUES, 16, (const uint32_t[]){2, 21}, 2);
	assert_lockstep_empty(LS_QUEUES);
}

BOTH(mpsc_lockstep, other_calls_go_on_where_it_stopped)
{
	struct item a[4], c[3];
	struct flowq_mpsc_node *buf[8];
	struct flowq_mpsc_node *n = POISON;

	lockstep_init(LS_QUEUES);
	lockstep_fill(a, 0, 0, 4);
	lockstep_fill(c, 2, 20, 3);
	assert_lockstep(LS_QUEUES, 3, (const uint32_t[]){0, 20, 1}, 3);
	/* The single-queue calls find each queue's cursor where it was left. */
	cr_assert_eq(flowq_mpsc_trydequeue(&lsq[2], &n), 0);
	cr_assert_eq(item_of(n)->id, 21);
	cr_assert_eq(flowq_mpsc_dequeue_batch(&lsq[0], buf, 8), 2);
	cr_assert_eq(item_of(buf[0])->id, 2);
	cr_assert_eq(item_of(buf[1])->id, 3);
	/* And the lockstep call finds theirs. */
	flowq_mpsc_enqueue(&lsq[1], &a[0].node);
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){0, 22}, 2);
	assert_lockstep_empty(LS_QUEUES);
}

BOTH(mpsc_lockstep, a_gap_holds_back_only_its_queue)
{
	struct item a[2], c[2];
	struct half_enqueue h;

	lockstep_init(LS_QUEUES);
	lockstep_fill(a, 0, 0, 1);
	a[1].id = 1;
	h = enqueue_exchange_only(&lsq[0], &a[1].node); /* 1 exchanged, not linked */
	lockstep_fill(c, 2, 20, 2);
	/* Queue 0's oldest cannot leave before its successor is linked. */
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){20, 21}, 2);
	cr_assert_not(flowq_mpsc_empty(&lsq[0]));
	assert_lockstep(LS_QUEUES, 8, NULL, 0);
	cr_assert_not(enqueue_link(&lsq[0], h));
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){0, 1}, 2);
	assert_lockstep_empty(LS_QUEUES);
}

/* As known_tail_is_forgotten_when_returned_by_a_batch (mpsc.c I5): a tail
 * the call remembered at a gap is forgotten when a step returns its node. */
BOTH(mpsc_lockstep, known_tail_is_forgotten_when_a_step_returns_it)
{
	struct item a[3], c;
	struct half_enqueue h;

	lockstep_init(LS_QUEUES);
	lockstep_fill(a, 0, 0, 1);
	a[1].id = 1;
	h = enqueue_exchange_only(&lsq[0], &a[1].node);
	assert_lockstep(LS_QUEUES, 8, NULL, 0); /* gap behind 0: tail 1 seen */
	enqueue_link(&lsq[0], h);
	lockstep_fill(&a[2], 0, 2, 1);
	lockstep_fill(&c, 1, 10, 1);
	/* 1 leaves through its successor link; 2 is then the tail. */
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){0, 10, 1, 2}, 4);
	assert_lockstep_empty(LS_QUEUES);
}

BOTH(mpsc_lockstep, gap_on_an_empty_queue)
{
	struct item a, c;
	struct half_enqueue h;

	lockstep_init(LS_QUEUES);
	a.id = 0;
	h = enqueue_exchange_only(&lsq[1], &a.node);
	lockstep_fill(&c, 2, 20, 1);
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){20}, 1);
	cr_assert_not(flowq_mpsc_empty(&lsq[1]), "an item being linked");
	cr_assert(enqueue_link(&lsq[1], h), "the enqueue that made queue 1 non-empty");
	assert_lockstep(LS_QUEUES, 8, (const uint32_t[]){0}, 1);
	assert_lockstep_empty(LS_QUEUES);
}

BOTH(mpsc_lockstep, zero_max_and_queue_counts)
{
	struct item a[2], x[FLOWQ_MPSC_LOCKSTEP_MAX + 1];

	lockstep_init(FLOWQ_MPSC_LOCKSTEP_MAX + 1);
	lockstep_fill(a, 0, 0, 2);
	assert_lockstep(LS_QUEUES, 0, NULL, 0);
	assert_lockstep(0, 8, NULL, 0);
	/* One queue: dequeue_batch's order and limits. */
	assert_lockstep(1, 1, (const uint32_t[]){0}, 1);
	assert_lockstep(1, 8, (const uint32_t[]){1}, 1);
	/* The most queues one call reads; a queue after them is not read. */
	for (size_t k = 0; k <= FLOWQ_MPSC_LOCKSTEP_MAX; k++)
		lockstep_fill(&x[k], k, 100 + (uint32_t)k, 1);
	uint32_t want[FLOWQ_MPSC_LOCKSTEP_MAX];
	for (size_t k = 0; k < FLOWQ_MPSC_LOCKSTEP_MAX; k++)
		want[k] = 100 + (uint32_t)k;
	assert_lockstep(FLOWQ_MPSC_LOCKSTEP_MAX + 1, 31, want, FLOWQ_MPSC_LOCKSTEP_MAX);
	cr_assert_not(flowq_mpsc_empty(&lsq[FLOWQ_MPSC_LOCKSTEP_MAX]));
	cr_assert_eq(flowq_mpsc_dequeue_batch(&lsq[FLOWQ_MPSC_LOCKSTEP_MAX],
					      (struct flowq_mpsc_node *[1]){0}, 1),
		     1);
	assert_lockstep_empty(FLOWQ_MPSC_LOCKSTEP_MAX);
}

/* ------------------------------------------------------------------------ */
/* A small concurrent smoke test, for the ASan/UBSan unit run. */

enum { SMOKE_PRODUCERS = 2, SMOKE_PER_PRODUCER = 100000 };

struct smoke_item {
	struct flowq_mpsc_node node;
	uint32_t producer, seq;
};

static struct smoke_item smoke_items[SMOKE_PRODUCERS][SMOKE_PER_PRODUCER];
static struct flowq_mpsc smoke_q;

static void *
smoke_producer(void *arg)
{
	uint32_t p = (uint32_t)(uintptr_t)arg;

	for (uint32_t i = 0; i < SMOKE_PER_PRODUCER; i++) {
		smoke_items[p][i].producer = p;
		smoke_items[p][i].seq = i;
		flowq_mpsc_enqueue(&smoke_q, &smoke_items[p][i].node);
	}
	return NULL;
}

Test(mpsc_threads, two_producers_conserve_and_keep_per_producer_fifo)
{
	pthread_t th[SMOKE_PRODUCERS];
	uint32_t next[SMOKE_PRODUCERS] = {0};
	unsigned long got = 0, want = (unsigned long)SMOKE_PRODUCERS * SMOKE_PER_PRODUCER;
	struct flowq_mpsc_node *buf[32];

	flowq_mpsc_init(&smoke_q);
	for (uintptr_t p = 0; p < SMOKE_PRODUCERS; p++)
		cr_assert_eq(pthread_create(&th[p], NULL, smoke_producer, (void *)p), 0);
	while (got < want) {
		size_t n = flowq_mpsc_dequeue_batch(&smoke_q, buf, 1 + got % 32);

		for (size_t k = 0; k < n; k++) {
			struct smoke_item *it = (struct smoke_item *)buf[k];

			cr_assert_lt(it->producer, SMOKE_PRODUCERS);
			cr_assert_eq(it->seq, next[it->producer], "producer %u FIFO",
				     it->producer);
			next[it->producer]++;
		}
		got += n;
	}
	for (int p = 0; p < SMOKE_PRODUCERS; p++) {
		cr_assert_eq(pthread_join(th[p], NULL), 0);
		cr_assert_eq(next[p], SMOKE_PER_PRODUCER);
	}
	cr_assert(flowq_mpsc_empty(&smoke_q));
}
