/*
 * flowq_mpsc: intrusive, unbounded, multi-producer / single-consumer FIFO.
 *
 * One per flow: producers are the host's threads calling flowq_submit(), the
 * consumer is the shard's dispatcher. The algorithm (wfcqueue-shaped: exchange
 * the tail, then link) and its proof are in queues/mpsc.c.
 *
 * Synchronization table ("-": no outside synchronization needed between two
 * concurrent calls; "X": the caller must serialize the pair, e.g. by calling
 * both from the one consumer thread):
 *
 *                     enqueue  trydequeue  dequeue_batch  empty  init
 *      enqueue           -         -            -           -     X
 *      trydequeue        -         X            X           -     X
 *      dequeue_batch     -         X            X           -     X
 *      empty             -         -            -           -     X
 *      init              X         X            X           X     X
 * (flowq_mpsc_linked() as empty.)
 *
 * Progress: enqueue is wait-free (one exchange and two plain stores, no
 * loop). trydequeue and dequeue_batch never wait and never sleep: if a
 * producer was preempted between its exchange and its link store they return
 * -EAGAIN (or stop the batch early) and the consumer can serve another flow
 * meanwhile. A preempted producer therefore delays only the items behind its
 * own item in this queue, never other producers' enqueues.
 *
 * Wake-ups: only an enqueue onto an empty queue returns true. When a dequeue
 * reports -EAGAIN (or a batch stops short on a non-empty queue), the producer
 * that later completes the missing link gets false: nobody will signal. The
 * consumer must keep such a queue on its own to-do list and poll it again
 * (and must not sleep on it without a timeout).
 *
 * Ordering: whatever a producer wrote to a node's container before
 * flowq_mpsc_enqueue() is visible to the consumer once a dequeue has returned
 * that node (release/acquire). Items from one producer leave in the order that
 * producer enqueued them; items of different producers leave in the order of
 * their exchanges on the tail (the linearization point of enqueue). Nothing
 * else is ordered: in particular no fence is implied for the caller's other
 * memory.
 *
 * Lifetime: the queue borrows a node from enqueue until a dequeue returns it;
 * the consumer may then free or reuse it at once. The queue never allocates.
 */
#ifndef FLOWQ_MPSC_H
#define FLOWQ_MPSC_H

#include <stdbool.h>
#include <stddef.h>

#include <flowq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Link embedded in the queued object (e.g. struct flowq_req). */
struct flowq_mpsc_node {
	FLOWQ_ATOMIC(struct flowq_mpsc_node *) next;
};

/**
 * The queue. Embed it or allocate it with at least FLOWQ_CACHE_LINE alignment
 * (the struct's alignment requirement says so; aligned_alloc honours it).
 */
struct flowq_mpsc {
	/*
	 * Consumer line. first is the oldest item once the consumer has found
	 * it (NULL: look at the dummy's next); known_tail is a node the
	 * consumer saw as the tail and has not dequeued since, or NULL
	 * (queues/mpsc.c, I5); stub is the dummy in use (read-only after
	 * init): head_c, or head_p (flowq_mpsc_init_sparse()).
	 */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) FLOWQ_ATOMIC(struct flowq_mpsc_node *) first;
	struct flowq_mpsc_node *known_tail;
	struct flowq_mpsc_node *stub;
	struct flowq_mpsc_node head_c;
	/*
	 * Producer line: the newest item, written by every enqueue; the
	 * producers' copy of stub; the dummy when it lives here.
	 */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) FLOWQ_ATOMIC(struct flowq_mpsc_node *) tail;
	struct flowq_mpsc_node *pstub;
	struct flowq_mpsc_node head_p;
	/*
	 * The owner's announcement, on the producer line: a consumer that
	 * serves many queues learns of a queue that went non-empty through a
	 * queue of announcements (a doorbell) whose items are these links.
	 * The queue never touches them (init zeroes them).
	 */
	FLOWQ_ATOMIC(unsigned) announced;
	struct flowq_mpsc_node announce;
};


FLOWQ_STATIC_ASSERT(sizeof(struct flowq_mpsc) == 2 * FLOWQ_CACHE_LINE,
	       "flowq_mpsc must be exactly one consumer and one producer line");

/**
 * Make @p q empty.
 *
 * @param q  the queue; caller memory.
 *
 * Context: any thread, but no other call on @p q may run concurrently.
 * Ordering: none; publish @p q to other threads with a release or a lock.
 * Progress: wait-free, cannot fail.
 */
FLOWQ_API void
flowq_mpsc_init(struct flowq_mpsc *q);

/**
 * Make @p q empty, with its dummy node on the producers' line instead of
 * the consumer's. Pick it for a queue that the consumer empties at each
 * visit and that goes empty -> non-empty often, such as one of many queues
 * announced to the consumer through another queue (the engine's flow
 * inboxes) or that queue of announcements (the engine's doorbells): an
 * enqueue onto the empty queue then writes one line (tail and dummy), not
 * two. Keep flowq_mpsc_init() for one hot queue whose consumer spins on it
 * whenever it catches up: polling a dummy on the producers' line takes
 * that line from the next producer (the end-to-end harness's bare queue
 * ran about 1.2x slower with it; queues/mpsc.c, "Where the dummy lives").
 * Everything else is the same.
 *
 * Context, ordering, progress: as flowq_mpsc_init().
 */
FLOWQ_API void
flowq_mpsc_init_sparse(struct flowq_mpsc *q);

/**
 * Append @p node at the tail.
 *
 * @param q     the queue.
 * @param node  the node to append; must not be in any queue. Its next field
 *              need not be initialized.
 * @return true if @p q was empty before this call (the caller's enqueue made
 *         the flow backlogged: it must tell the consumer), false otherwise.
 *         Between two dequeues that empty the queue, exactly one
 *         enqueue returns true: the first to exchange the tail.
 *
 * Context: any thread; no RCU read lock needed.
 * Ordering: release of the caller's writes to @p node's container, acquired
 * by the dequeue that returns @p node.
 * Progress: wait-free (one atomic exchange and two plain stores).
 */
FLOWQ_API bool
flowq_mpsc_enqueue(struct flowq_mpsc *q, struct flowq_mpsc_node *node);

/**
 * Append a chain of nodes at the tail in one step: @p first, then the
 * nodes the caller linked after it through their next fields (relaxed
 * stores: the chain is the caller's until this call), up to @p last
 * (@p first itself when the chain has one node). The chain keeps
 * its order and nothing else lands inside it; it costs one exchange,
 * whatever its length (wfcqueue's splice, for a chain the caller owns).
 *
 * @param q      the queue.
 * @param first  the chain's first node; no node of the chain may be in
 *               any queue.
 * @param last   the chain's last node; its next field need not be
 *               initialized.
 * @return true if @p q was empty before this call, as flowq_mpsc_enqueue().
 *
 * Context: any thread. Ordering: release of the caller's writes to every
 * node's container (and of the chain's links), acquired by the dequeue
 * that returns the node. Progress: wait-free (one atomic exchange and two
 * stores).
 */
FLOWQ_API bool
flowq_mpsc_enqueue_chain(struct flowq_mpsc *q, struct flowq_mpsc_node *first,
			 struct flowq_mpsc_node *last);

/**
 * Remove the oldest item, if one can be removed without waiting.
 *
 * @param q       the queue.
 * @param r_node  receives the removed node on success; untouched on error.
 * @return 0 on success; -ENOENT if @p q is empty; -EAGAIN if an item is
 *         present but cannot be taken without waiting: either the oldest
 *         item's producer has exchanged the tail but not yet linked its
 *         node, or the oldest item is linked and is the last linked one
 *         while the next item's producer is between its exchange and its
 *         link (taking it would need that link). Both are transient: retry
 *         later, or serve other queues. A producer that completes between
 *         the consumer's loads can also cause one spurious -EAGAIN.
 *
 * Context: the consumer only (see the synchronization table).
 * Ordering: acquire: the producer's writes to the node's container are
 * visible.
 * Progress: wait-free for the consumer (bounded steps, never spins).
 */
FLOWQ_API int
flowq_mpsc_trydequeue(struct flowq_mpsc *q, struct flowq_mpsc_node **r_node);

/**
 * Remove up to @p max of the oldest items, in FIFO order, into @p r_nodes.
 *
 * Cheaper per item than repeated trydequeue: the consumer line is written
 * once per batch (up to twice when it reaches the newest item), and the
 * producers' line is touched only when the batch reaches the newest linked
 * item and the consumer does not already know a newer tail: then one load,
 * plus a store and a CAS if that item is the tail (the batch empties the
 * queue, or the CAS fails because a producer just exchanged).
 *
 * @param q        the queue.
 * @param r_nodes  array of at least @p max entries; receives the nodes.
 * @param max      the most items to remove; 0 returns 0 at once.
 * @return the number of items removed (0 if the queue is empty or nothing
 *         can be taken without waiting, in the cases where trydequeue returns
 *         -EAGAIN). A short count does not mean the queue is empty: call
 *         flowq_mpsc_empty() to tell.
 *
 * Context: the consumer only.
 * Ordering: as trydequeue, for every returned node.
 * Progress: wait-free for the consumer (at most @p max + 1 steps).
 */
FLOWQ_API size_t
flowq_mpsc_dequeue_batch(struct flowq_mpsc *q, struct flowq_mpsc_node **r_nodes,
			 size_t max);

/** The most queues flowq_mpsc_dequeue_lockstep() takes. */
#define FLOWQ_MPSC_LOCKSTEP_MAX 16u

/**
 * flowq_mpsc_dequeue_batch() over the @p nq queues of the array @p qs at
 * once, in lockstep: each step loads the next link of every queue that
 * still has items, then takes one item from each. The loads of a step do
 * not depend on one another, so a consumer whose items are cold (a long
 * chain of nodes that live in different lines) waits for one miss per
 * step instead of one per item.
 *
 * Each queue gives its items in its own FIFO order; the items of different
 * queues interleave, one from each queue per step, in array order. A queue
 * stops contributing when the call reaches its newest linked item, exactly
 * where flowq_mpsc_dequeue_batch() would return.
 *
 * @param qs       array of @p nq queues, all with this thread as consumer.
 * @param nq       the number of queues; at most FLOWQ_MPSC_LOCKSTEP_MAX are
 *                 read (the first ones; any after them are not touched),
 *                 and 0 returns 0.
 * @param r_nodes  array of at least @p max entries; receives the nodes.
 * @param max      the most items to remove in all; 0 returns 0 at once.
 * @return the number of items removed. As for flowq_mpsc_dequeue_batch(),
 *         a short count does not mean that the queues are empty.
 *
 * Context: the consumer of every queue in @p qs.
 * Ordering: as trydequeue, for every returned node.
 * Progress: wait-free for the consumer (at most @p max + @p nq steps).
 * Since 0.3.3.
 */
FLOWQ_API size_t
flowq_mpsc_dequeue_lockstep(struct flowq_mpsc *qs, size_t nq,
			    struct flowq_mpsc_node **r_nodes, size_t max);

/**
 * Whether @p q holds no item (linked or still being linked).
 *
 * @return true if no enqueue has linearized since the last dequeue that
 *         emptied the queue.
 *
 * Context: any thread. From a producer or any thread but the consumer the
 * answer is advisory: it can be stale by the time it is read.
 * Ordering: relaxed loads only; no fence.
 * Progress: wait-free.
 */
FLOWQ_API bool
flowq_mpsc_empty(const struct flowq_mpsc *q);

/**
 * Whether the consumer would find a linked item in @p q: cheaper than
 * flowq_mpsc_empty() (it never reads the tail), and blind to an item whose
 * producer has exchanged but not linked. For a consumer polling for work.
 *
 * Context: any thread; from others than the consumer, advisory.
 * Ordering: relaxed loads only. Progress: wait-free.
 */
FLOWQ_API bool
flowq_mpsc_linked(const struct flowq_mpsc *q);

/**
 * Start fetching the line of the oldest item of @p q, for a consumer that
 * is about to drain it: a hint, with no effect on the queue. It reads the
 * dummy's link on the producer line only (a consumer that learnt of @p q
 * through the announcement link has that line in cache), so it finds the
 * oldest item when the consumer has not taken any item since the queue
 * last ran empty, and otherwise prefetches nothing useful (never an
 * error: a prefetch does not fault). The dummy's link is on the producer
 * line for a queue made by flowq_mpsc_init_sparse(), else on the consumer
 * line.
 *
 * Context: the consumer. Ordering: one relaxed load. Progress: wait-free.
 */
FLOWQ_API void
flowq_mpsc_prefetch_oldest(const struct flowq_mpsc *q);

/**
 * The node flowq_mpsc_prefetch_oldest() would prefetch, for a consumer
 * that wants to prefetch other lines of the item that contains it: the
 * oldest item when the consumer has not taken any since the queue last
 * ran empty, else a node that may have left the queue, or NULL. Only for
 * address arithmetic and prefetching: never dereference it. Since 0.3.3.
 *
 * Context: the consumer. Ordering: one relaxed load. Progress: wait-free.
 */
FLOWQ_API const struct flowq_mpsc_node *
flowq_mpsc_oldest_hint(const struct flowq_mpsc *q);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_MPSC_H */
