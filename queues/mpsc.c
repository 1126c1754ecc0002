/*
 * flowq_mpsc: intrusive unbounded MPSC FIFO (see flowq/mpsc.h for the API).
 *
 * Algorithm
 * ---------
 * A singly linked list with a dummy node embedded in the queue (q->head) and a
 * tail pointer. Producers append by *exchange-then-link*: swap the tail to
 * their node, then store a pointer to their node into the previous tail's next
 * field. This is the enqueue of Mellor-Crummey and Scott's queue lock (MCS,
 * ACM TOCS 9(1), 1991), of Vyukov's intrusive MPSC node-based queue (2010) and
 * of liburcu's wfcqueue (Desnoyers, Lai); the consumer side follows wfcqueue
 * (the dummy stays in the head, so the consumer never re-enqueues a stub the
 * way Vyukov's pop does, which would write the producers' line on every
 * dequeue of the last item).
 *
 * State: head.next points to the oldest *linked* item (NULL if none); tail
 * points to the newest item, or to &head when the queue is empty.
 *
 * Invariants
 * ----------
 * I1. Following next pointers from head reaches tail, except across "gaps":
 *     a node whose producer has done its exchange [E1] but not yet its link
 *     [E2] is reachable from tail but its predecessor's next is still NULL.
 *     There is at most one gap per preempted producer.
 * I2. tail == &head only while the queue is empty; only the consumer moves
 *     tail back to &head ([D3]), and only from the node it is dequeuing.
 * I3. Producers write head.next only when their exchange returned &head, i.e.
 *     on an empty -> non-empty transition; otherwise head.next is written by
 *     the consumer alone.
 * I4. A node returned to the consumer's caller is never written by the queue
 *     again: the consumer returns the last node only after [D3] proved no
 *     producer holds it as its predecessor, and any other node only after its
 *     successor link was observed (so its one writer, the successor's
 *     producer, has finished).
 * I5. pending, when not NULL, is the oldest item and was seen with tail !=
 *     itself: some producer's [E1] returned it, so that producer's [E2] will
 *     link its successor. tail never returns to a node still queued (only
 *     [D3] moves it back, and only to &head), so this stays true until the
 *     item leaves; every dequeue that returns items clears pending, so a
 *     node re-enqueued later is never mistaken for a pending one.
 *
 * Linearization points
 * --------------------
 * - enqueue: the exchange on tail [E1]. Its return value (previous tail ==
 *   &head) is the "queue was empty" answer, exact at that instant.
 * - trydequeue/dequeue_batch returning a node: the acquire load of head.next
 *   [D1] when the node has a linked successor, else the successful CAS [D3].
 * - -ENOENT: the load of tail that found &head. -EAGAIN is not a
 *   linearizable "empty": the queue holds an item that is not linked yet.
 *
 * Ordering guarantees (each label marks the code below)
 * --------------------
 * O1. [E0] relaxed init of node->next happens-before any later write to it:
 *     the next producer's [E1] acquires our [E1] release, so its [E2] store to
 *     node->next is later in node->next's modification order than our NULL.
 * O2. [E2] release pairs with [D1]/[D2] acquire: the consumer sees everything
 *     the producer wrote to the node's container before enqueue.
 * O3. [D3] release pairs with the next producer's [E1] acquire (the exchange
 *     reads the value the CAS wrote): the consumer's reset of head.next to
 *     NULL is ordered before that producer's [E2] store of head.next, so the
 *     producer's link cannot be overwritten by the consumer's stale NULL.
 * O4. The relaxed loads of tail in the empty checks and in [D4] only compare
 *     the pointer, never dereference it, so they need no ordering. [D4] can
 *     only see @node or a later tail: the consumer reached @node through an
 *     acquire ([D1]/[D2]) of the [E2] that linked it, which @node's [E1]
 *     happens before (write-read coherence).
 *
 * Progress
 * --------
 * enqueue is wait-free: two stores and one exchange, no loop. Dequeue is
 * wait-free for the consumer in the sense that it takes a bounded number of
 * steps and reports -EAGAIN when the head item's link is missing; that item
 * (and the ones behind it in this queue) cannot be consumed until its
 * producer runs again. This is inherent to exchange-then-link queues and is
 * the price of wait-free producers; a preempted producer never blocks other
 * producers (unlike ck_ring's in-order commit).
 */
#include <errno.h>

#include <flowq/mpsc.h>

void
flowq_mpsc_init(struct flowq_mpsc *q)
{
	atomic_init(&q->head.next, NULL);
	q->pending = NULL;
	atomic_init(&q->tail, &q->head);
}

bool
flowq_mpsc_enqueue(struct flowq_mpsc *q, struct flowq_mpsc_node *node)
{
	struct flowq_mpsc_node *prev;

	/* [E0] Relaxed: published by the release half of [E1] (O1). */
	atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
	/*
	 * [E1] acq_rel. Release: O1. Acquire: pairs with the previous [E1] or
	 * with the consumer's [D3] (O3), so our [E2] lands after their writes
	 * to prev->next.
	 */
	prev = atomic_exchange_explicit(&q->tail, node, memory_order_acq_rel);
	/* [E2] Release, pairs with [D1]/[D2]: publishes the node's payload. */
	atomic_store_explicit(&prev->next, node, memory_order_release);
	return prev == &q->head;
}

/*
 * @node is the newest linked item (no successor link at the last look). Try
 * to take it as the last item. Returns:
 * - NULL: @node was taken as the last item; head.next is NULL and tail is
 *   &head, and the caller must not write head.next (a producer may already
 *   have linked a new first item there).
 * - a successor that got linked meanwhile: the caller takes @node and sets
 *   head.next to the successor.
 * - @node itself: a producer is between [E1] and [E2] behind it, so it cannot
 *   be taken yet; head.next is unchanged (the caller sets it to @node if it
 *   advanced the head) and q->pending records @node (I5).
 */
static struct flowq_mpsc_node *
mpsc_take_last(struct flowq_mpsc *q, struct flowq_mpsc_node *node)
{
	struct flowq_mpsc_node *expected = node, *next;

	/*
	 * [D4] Relaxed (O4). Look before the CAS: if a producer has already
	 * exchanged behind @node the CAS would fail anyway, and a failed CAS
	 * still takes the producers' line exclusive. This is the common case
	 * when the consumer catches up with producers that are running.
	 */
	if (atomic_load_explicit(&q->tail, memory_order_relaxed) != node)
		goto linking;
	/*
	 * Relaxed: the consumer owns head.next while tail != &head (I3); the
	 * release of [D3] orders this store before the next producer's [E2].
	 */
	atomic_store_explicit(&q->head.next, NULL, memory_order_relaxed);
	/* [D3] Release (O3). On failure nothing is published: relaxed. */
	if (atomic_compare_exchange_strong_explicit(&q->tail, &expected, &q->head,
						    memory_order_release,
						    memory_order_relaxed))
		return NULL;
	/*
	 * A producer exchanged after @node, so tail != &head and no producer
	 * writes head.next (I2, I3): we may restore it.
	 */
	atomic_store_explicit(&q->head.next, node, memory_order_relaxed);
linking:
	/* [D2] acquire, O2. */
	next = atomic_load_explicit(&node->next, memory_order_acquire);
	if (next != NULL)
		return next;
	q->pending = node;
	return node;
}

int
flowq_mpsc_trydequeue(struct flowq_mpsc *q, struct flowq_mpsc_node **r_node)
{
	struct flowq_mpsc_node *node, *next;

	/* [D1] Acquire, pairs with [E2] (O2). */
	node = atomic_load_explicit(&q->head.next, memory_order_acquire);
	if (node == NULL) {
		/* O4: compare only. */
		return atomic_load_explicit(&q->tail, memory_order_relaxed) == &q->head
			       ? -ENOENT
			       : -EAGAIN;
	}
	/* [D2] Acquire, pairs with the successor's [E2] (O2). */
	next = atomic_load_explicit(&node->next, memory_order_acquire);
	if (next == NULL) {
		/*
		 * Known to be waiting for a link (I5): poll only node->next,
		 * the line its producer must write anyway.
		 */
		if (node == q->pending)
			return -EAGAIN;
		next = mpsc_take_last(q, node);
		if (next == node)
			return -EAGAIN;
		if (next == NULL) {
			q->pending = NULL;
			*r_node = node;
			return 0;
		}
	}
	atomic_store_explicit(&q->head.next, next, memory_order_relaxed);
	q->pending = NULL;
	*r_node = node;
	return 0;
}

size_t
flowq_mpsc_dequeue_batch(struct flowq_mpsc *q, struct flowq_mpsc_node **r_nodes,
			 size_t max)
{
	struct flowq_mpsc_node *node, *next;
	size_t n = 0;

	if (max == 0)
		return 0;
	/* [D1] */
	node = atomic_load_explicit(&q->head.next, memory_order_acquire);
	if (node == NULL)
		return 0;
	for (;;) {
		/* [D2] */
		next = atomic_load_explicit(&node->next, memory_order_acquire);
		if (next == NULL)
			break;
		r_nodes[n++] = node;
		node = next;
		if (n == max) {
			/* One consumer-line write per batch. */
			atomic_store_explicit(&q->head.next, node, memory_order_relaxed);
			q->pending = NULL;
			return n;
		}
	}
	/* @node is the newest linked item and n < max. */
	if (n > 0)
		q->pending = NULL; /* items left: I5 */
	next = node == q->pending ? node : mpsc_take_last(q, node);
	if (next == node) {
		/* @node stays, as the new oldest item if we took any. */
		if (n > 0)
			atomic_store_explicit(&q->head.next, node, memory_order_relaxed);
		return n;
	}
	r_nodes[n++] = node;
	q->pending = NULL;
	if (next != NULL)
		atomic_store_explicit(&q->head.next, next, memory_order_relaxed);
	return n;
}

bool
flowq_mpsc_empty(const struct flowq_mpsc *q)
{
	/*
	 * head.next first: the common non-empty answer then never reads the
	 * producers' line. Both loads only compare (O4).
	 */
	if (atomic_load_explicit(&q->head.next, memory_order_relaxed) != NULL)
		return false;
	return atomic_load_explicit(&q->tail, memory_order_relaxed) == &q->head;
}
