/*
 * flowq_mpsc: intrusive unbounded MPSC FIFO (see flowq/mpsc.h for the API).
 *
 * Algorithm
 * ---------
 * A singly linked list with a dummy node embedded in the queue ("head" below:
 * q->stub, which is &q->head_c or &q->head_p) and a tail pointer. Producers
 * append by *exchange-then-link*: swap the tail to their node, then store a
 * pointer to their node into the previous tail's next field. This is the
 * enqueue of Mellor-Crummey and Scott's queue lock (MCS, ACM TOCS 9(1),
 * 1991), of Vyukov's intrusive MPSC node-based queue (2010) and of liburcu's
 * wfcqueue (Desnoyers, Lai); the consumer side follows wfcqueue (the dummy
 * stays in the queue, so the consumer never re-enqueues a stub the way
 * Vyukov's pop does, which would write the producers' line on every dequeue
 * of the last item). The consumer walks with a private cursor (q->first) on
 * its own line, and reads the dummy's next only when first is unset (I6).
 *
 * Where the dummy lives. An enqueue that finds the queue empty writes the
 * tail and the dummy's next, and the consumer that emptied the queue wrote
 * both last (its [D3] CAS and the NULL before it). flowq_mpsc_init() keeps
 * the dummy on the consumer line (head_c, wfcqueue's layout): that enqueue
 * takes two lines from the consumer's core, but a consumer that polls the
 * empty queue reads only its own line, and the producers' tail line stays
 * with the producers while it does. flowq_mpsc_init_sparse() puts it on the
 * producers' line (head_p): that enqueue takes one line, and a consumer that
 * polls the empty queue reads the producers' line. Measured in one session
 * (bench/ENGINE-LOG.md, "Session 11"): the sparse layout for the engine's flow inboxes
 * and doorbell made the engine 0.89-0.98x the time per request with one
 * producer; the same layout for the end-to-end harness's bare queue, whose
 * consumer spins on it when it catches up, made that about 1.2x slower. The algorithm is the
 * same for both; only the lines differ. A backlogged queue is unaffected:
 * the consumer follows first and the nodes' links.
 *
 * State: tail points to the newest item, or to &head when the queue is
 * empty. The oldest *linked* item is first if that is set, else head.next
 * (NULL if none). stub and pstub (the producers' copy, on their line) are
 * read-only after init.
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
 * I5. known_tail (consumer-private) is NULL or a node that the consumer saw
 *     as the tail and that no dequeue has returned since: it is still queued,
 *     at or behind the oldest item. Tail values the consumer reads are never
 *     stale nodes (O4), and every dequeue forgets a node it returns, so a
 *     node re-enqueued later is never mistaken for a known tail. Hence when
 *     the consumer stands at the newest linked item N with every item before
 *     N returned, a known tail other than N proves that a producer has
 *     exchanged after N and will link N's successor: the consumer waits on
 *     N->next without touching the producers' line. The tail is read again
 *     only once the consumer has caught up with the tail it knew, i.e. about
 *     once per backlog, like a splice, instead of once per gap.
 * I6. first (written by the consumer only) is NULL or the oldest item not
 *     yet returned, linked. While it is set, head.next is stale (it points
 *     to a returned node or to first) and nobody reads it: producers write
 *     head.next only after an exchange returned &head (I3), which needs a
 *     [D3] since the consumer set first, and the consumer clears first in
 *     the same step as that [D3] (before it reads anything else). So "first,
 *     else head.next" is wfcqueue's head.next, and every argument below that
 *     names head.next as the consumer's pointer holds for that pair. A batch
 *     still writes the consumer line once (first), and head.next only at
 *     the NULL before [D3], which the empty queue needs.
 *
 * Linearization points
 * --------------------
 * - enqueue: the exchange on tail [E1]. Its return value (previous tail ==
 *   &head) is the "queue was empty" answer, exact at that instant.
 * - trydequeue/dequeue_batch returning a node: the acquire load of head.next
 *   [D1] (or of the predecessor's next [D2] that set first) when the node
 *   has a linked successor, else the successful CAS [D3].
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
 * O4. The relaxed loads of tail ([D4] and the empty checks) only compare
 *     the pointer or remember it (I5), never dereference it, so they need no
 *     ordering. Nor can they return a node the consumer already returned:
 *     the consumer learned of every node it returned either through its own
 *     [D3], which wrote &head later in tail's modification order, or through
 *     an acquire ([D1]/[D2]) of a successor's [E2], which that successor's
 *     [E1] precedes; read-read and write-read coherence forbid the load to
 *     see an older tail value.
 *
 * Chains (flowq_mpsc_enqueue_chain)
 * ------
 * A producer may append a chain it linked itself (first .. last, each next
 * stored before the exchange) with the same three steps: [E0] on last,
 * [E1] exchanging the tail to last, [E2] storing first into prev->next.
 * C1. To every other thread the chain is one node: its inner links are
 *     complete before [E1] makes last reachable from the tail, so the only
 *     gap it can leave is prev -> first (I1), and I3 holds as for a node.
 * C2. O2 extends to the chain: each inner link and each container write is
 *     sequenced before [E2], whose release the consumer acquires at [D1] or
 *     [D2] on prev->next before it loads any inner link; an inner link it
 *     then loads (acquire at [D2]) was written before that [E2], so it
 *     reads the link, never a stale NULL, and the node behind it is
 *     published too.
 * C3. I4 and I5 hold unchanged: an inner node's one next writer is the
 *     chain's producer, done before [E1]; a tail the consumer reads is
 *     either last (then a producer exchanged after the node it stands at,
 *     and will link first, exactly as I5 needs) or some other whole node.
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

static void
mpsc_init(struct flowq_mpsc *q, struct flowq_mpsc_node *stub)
{
	atomic_init(&q->first, NULL);
	q->known_tail = NULL;
	q->stub = q->pstub = stub;
	atomic_init(&q->head_c.next, NULL);
	atomic_init(&q->head_p.next, NULL);
	atomic_init(&q->tail, stub);
	atomic_init(&q->announced, 0);
	atomic_init(&q->announce.next, NULL);
}

void
flowq_mpsc_init(struct flowq_mpsc *q)
{
	mpsc_init(q, &q->head_c);
}

void
flowq_mpsc_init_sparse(struct flowq_mpsc *q)
{
	mpsc_init(q, &q->head_p);
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
	return prev == q->pstub;
}

bool
flowq_mpsc_enqueue_chain(struct flowq_mpsc *q, struct flowq_mpsc_node *first,
			 struct flowq_mpsc_node *last)
{
	struct flowq_mpsc_node *prev;

	/* The enqueue above with the chain in place of its node (C1-C3 at
	 * the top): [E0] on the last node, [E1] swaps the tail to it, [E2]
	 * links the first. The inner links were stored before [E1]. */
	atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&q->tail, last, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, first, memory_order_release);
	return prev == q->pstub;
}

/* A dequeue returns @node: forget it as the known tail (I5). */
static inline void
mpsc_returned(struct flowq_mpsc *q, const struct flowq_mpsc_node *node)
{
	if (node == q->known_tail)
		q->known_tail = NULL;
}

/* The consumer's cursor (I6): relaxed, only the consumer writes it. */
static inline void
mpsc_set_first(struct flowq_mpsc *q, struct flowq_mpsc_node *node)
{
	atomic_store_explicit(&q->first, node, memory_order_relaxed);
}

/* The oldest linked item as the consumer sees it, or NULL (I6). */
static inline struct flowq_mpsc_node *
mpsc_oldest(struct flowq_mpsc *q)
{
	struct flowq_mpsc_node *node = atomic_load_explicit(&q->first, memory_order_relaxed);
	if (node != NULL)
		return node;
	/* [D1] Acquire, pairs with [E2] (O2). */
	return atomic_load_explicit(&q->stub->next, memory_order_acquire);
}

/*
 * @node is the newest linked item (no successor link at the last look) and
 * every item before it has been returned (and forgotten as known tail). Try
 * to take it as the last item. Returns:
 * - NULL: @node was taken as the last item; the queue is empty (head.next
 *   NULL, tail &head, first NULL) unless a producer has enqueued since.
 * - a successor that got linked meanwhile: the caller takes @node and sets
 *   first to the successor.
 * - @node itself: a producer is between [E1] and [E2] behind it, so it cannot
 *   be taken yet; the caller sets first to @node.
 */
static struct flowq_mpsc_node *
mpsc_take_last(struct flowq_mpsc *q, struct flowq_mpsc_node *node)
{
	struct flowq_mpsc_node *t = q->known_tail, *next;

	/*
	 * A known tail other than @node is queued behind @node (I5): a producer
	 * has exchanged after @node and will link it, so neither the tail nor
	 * a CAS on it can help. Only without that knowledge do we look.
	 */
	if (t == NULL || t == node) {
		/*
		 * [D4] Relaxed (O4). Look before the CAS: a failed CAS still
		 * takes the producers' line exclusive.
		 */
		t = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (t != node)
			q->known_tail = t;
	}
	if (t == node) {
		/*
		 * Relaxed: no producer writes head.next while tail != &head
		 * (I3); the release of [D3] orders this store before the next
		 * producer's [E2]. While first is set head.next is stale
		 * (I6): this makes it NULL for the empty queue [D3] leaves.
		 */
		atomic_store_explicit(&q->stub->next, NULL, memory_order_relaxed);
		/* [D3] Release (O3). On failure nothing is published: relaxed. */
		if (atomic_compare_exchange_strong_explicit(&q->tail, &t, q->stub,
							    memory_order_release,
							    memory_order_relaxed)) {
			q->known_tail = NULL;
			mpsc_set_first(q, NULL);
			return NULL;
		}
		/*
		 * A producer exchanged after @node: t now holds a newer tail,
		 * still queued (I5). head.next stays NULL: tail != &head, so
		 * no producer writes it (I2, I3), and first (set by the
		 * caller) is what the consumer reads (I6).
		 */
		q->known_tail = t;
	}
	/* [D2] Acquire, O2: poll the one line that producer must write. */
	next = atomic_load_explicit(&node->next, memory_order_acquire);
	return next != NULL ? next : node;
}

int
flowq_mpsc_trydequeue(struct flowq_mpsc *q, struct flowq_mpsc_node **r_node)
{
	struct flowq_mpsc_node *node, *next, *t;

	node = mpsc_oldest(q);
	if (node == NULL) {
		/* A known tail is a queued item (I5): not empty. */
		if (q->known_tail != NULL)
			return -EAGAIN;
		/* O4: compare only. */
		t = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (t == q->stub)
			return -ENOENT;
		q->known_tail = t;
		return -EAGAIN;
	}
	/* [D2] Acquire, pairs with the successor's [E2] (O2). */
	next = atomic_load_explicit(&node->next, memory_order_acquire);
	if (next == NULL) {
		next = mpsc_take_last(q, node);
		if (next == node) {
			mpsc_set_first(q, node);
			return -EAGAIN;
		}
		if (next == NULL) {
			*r_node = node;
			return 0;
		}
	}
	mpsc_set_first(q, next);
	mpsc_returned(q, node);
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
	node = mpsc_oldest(q);
	if (node == NULL)
		return 0;
	for (;;) {
		/* [D2] */
		next = atomic_load_explicit(&node->next, memory_order_acquire);
		if (next == NULL)
			break;
		r_nodes[n++] = node;
		mpsc_returned(q, node);
		node = next;
		if (n == max) {
			/* One consumer-line write per batch. */
			mpsc_set_first(q, node);
			return n;
		}
	}
	/* @node is the newest linked item and n < max. */
	next = mpsc_take_last(q, node);
	if (next == node) {
		/* @node stays, as the oldest item. */
		mpsc_set_first(q, node);
		return n;
	}
	r_nodes[n++] = node;
	if (next != NULL) {
		mpsc_set_first(q, next);
		mpsc_returned(q, node);
	}
	return n;
}

/*
 * Lockstep: the loop of flowq_mpsc_dequeue_batch() run for several queues,
 * one [D2] load per queue per step, all of a step's loads before any of
 * their results is used. Why each queue's argument above carries over:
 *  - Per queue, the call is exactly one dequeue_batch run: mpsc_oldest()
 *    once, then per step one [D2] load of the current node's link; a node
 *    whose link is set is returned (mpsc_returned(), I5) and the walk moves
 *    to the link; a node whose link is NULL goes through mpsc_take_last()
 *    at most once, after which the queue leaves the walk; and first is
 *    written once, when the queue leaves the walk. Loading the links of a
 *    step before using them changes nothing: each load is of a node this
 *    call owns as its queue's oldest, as in dequeue_batch.
 *  - A queue stopped by max before its take-last keeps its current node
 *    as the oldest item in first, which I6 allows (the node is linked: the
 *    call reached it through a link or mpsc_oldest()).
 *  - No queue's state is read or written through another's: cur[], nx[]
 *    and live[] hold one entry per queue, compacted in array order.
 *  - A node returned from one queue may be enqueued next on another (the
 *    engine's announcement links move between doorbell queues): once
 *    returned, this queue never writes it again (I4) nor takes it for its
 *    known tail (I5; its tail loads cannot return it, O4), and on the other
 *    queue it is an ordinary enqueue ([E0], O1, O2 there), as for a node
 *    re-enqueued on the same queue.
 */
size_t
flowq_mpsc_dequeue_lockstep(struct flowq_mpsc *qs, size_t nq,
			    struct flowq_mpsc_node **r_nodes, size_t max)
{
	struct flowq_mpsc_node *cur[FLOWQ_MPSC_LOCKSTEP_MAX];
	struct flowq_mpsc_node *nx[FLOWQ_MPSC_LOCKSTEP_MAX];
	struct flowq_mpsc *live[FLOWQ_MPSC_LOCKSTEP_MAX];
	size_t nl = 0, n = 0;

	if (max == 0)
		return 0;
	if (nq > FLOWQ_MPSC_LOCKSTEP_MAX)
		nq = FLOWQ_MPSC_LOCKSTEP_MAX;
	for (size_t k = 0; k < nq; k++) {
		struct flowq_mpsc_node *node = mpsc_oldest(&qs[k]);
		if (node != NULL) {
			cur[nl] = node;
			live[nl++] = &qs[k];
		}
	}
	while (nl != 0) {
		size_t j = 0;

		/* [D2] Acquire, as in dequeue_batch; independent loads. */
		for (size_t i = 0; i < nl; i++)
			nx[i] = atomic_load_explicit(&cur[i]->next, memory_order_acquire);
		for (size_t i = 0; i < nl; i++) {
			struct flowq_mpsc *q = live[i];
			struct flowq_mpsc_node *node = cur[i], *next = nx[i];

			if (n == max) {
				/* Full: @node stays, as the oldest item. */
				mpsc_set_first(q, node);
				continue;
			}
			if (next == NULL) {
				/* @node is the newest linked item of @q. */
				next = mpsc_take_last(q, node);
				if (next == node) {
					mpsc_set_first(q, node);
					continue;
				}
				r_nodes[n++] = node;
				if (next != NULL) {
					mpsc_set_first(q, next);
					mpsc_returned(q, node);
				}
				continue;
			}
			r_nodes[n++] = node;
			mpsc_returned(q, node);
			cur[j] = next;
			live[j++] = q;
		}
		nl = j;
		if (n == max) {
			for (size_t i = 0; i < nl; i++)
				mpsc_set_first(live[i], cur[i]);
			break;
		}
	}
	return n;
}

bool
flowq_mpsc_empty(const struct flowq_mpsc *q)
{
	/*
	 * The consumer line first: the common non-empty answer of a backlog
	 * then never reads the producers' line. All loads only compare (O4).
	 */
	if (atomic_load_explicit(&q->first, memory_order_relaxed) != NULL)
		return false;
	if (atomic_load_explicit(&q->stub->next, memory_order_relaxed) != NULL)
		return false;
	return atomic_load_explicit(&q->tail, memory_order_relaxed) == q->stub;
}

bool
flowq_mpsc_linked(const struct flowq_mpsc *q)
{
	return atomic_load_explicit(&q->first, memory_order_relaxed) != NULL ||
	       atomic_load_explicit(&q->stub->next, memory_order_relaxed) != NULL;
}

const struct flowq_mpsc_node *
flowq_mpsc_oldest_hint(const struct flowq_mpsc *q)
{
	return atomic_load_explicit(&q->pstub->next, memory_order_relaxed);
}

void
flowq_mpsc_prefetch_oldest(const struct flowq_mpsc *q)
{
	/* The pointer is only prefetched, never dereferenced: a stale one
	 * (the item left meanwhile) costs a useless fetch at worst. */
	__builtin_prefetch(flowq_mpsc_oldest_hint(q), 1, 3);
}
