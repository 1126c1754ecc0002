/*
 * flowq_pheap: intrusive pairing heap (min-heap) with removal by handle.
 *
 * The heap is a tree of nodes embedded in their owners; it has no slot
 * array, so it never allocates and never needs to grow. That is why the
 * deadline orderings use it (one heap per flow, in the flow's ordering
 * state, which must not own memory: policy.h), where the 4-ary array heap
 * of flowq/heap.h would need a growing array per flow.
 *
 * Algorithm: the pairing heap of Fredman, Sedgewick, Sleator and Tarjan
 * ("The pairing heap: a new form of self-adjusting heap", Algorithmica 1,
 * 1986), two-pass variant, in the child / next-sibling / prev representation
 * (prev is the left sibling, or the parent for a first child):
 *  - push melds the new node with the root: O(1) worst case; push_batch
 *    combines n new nodes into one tree first (O(n)) and melds that;
 *  - pop removes the root and combines its children in two passes (pairs
 *    left to right, then the pairs right to left into one tree): O(log n)
 *    amortized (the paper's bound), O(n) worst case for one call (a root
 *    with n - 1 children, e.g. after n pushes in increasing order);
 *  - remove cuts the node's subtree out of its sibling list, combines the
 *    node's children as pop does and melds the result with the root:
 *    O(log n) amortized;
 *  - peek is the root: O(1).
 * Both passes are loops over the sibling lists, with the intermediate
 * results threaded through the nodes' own links: no recursion (a pairing
 * heap can be n deep) and no memory beyond the nodes.
 *
 * Order: members are ordered by (key, seq), as flowq/heap.h does: key is the
 * caller's sort key, computed once before the push; seq breaks ties, so
 * members with equal keys leave in increasing seq (FIFO when seq counts
 * pushes). Comparison is inline on two integers, no callback. Members with
 * equal (key, seq) leave in an unspecified order.
 *
 * Cost against the 4-ary array heap: BM_heap_pairing/n:N (flowq_bench) runs
 * the same pop+push "hold" loop as BM_heap_flowq_4ary in the same process,
 * and BM_heap_*_remove removes a random member by handle and pushes it back.
 *
 * Synchronization table: none of the operations is atomic. Every pair of
 * calls on one heap (and on its members' nodes) must be serialized by the
 * caller; in flowq a flow's heap is touched only by its shard's dispatcher.
 */
#ifndef FLOWQ_PHEAP_H
#define FLOWQ_PHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Handle embedded in a heap member. */
struct flowq_pheap_node {
	/** Primary sort key: smaller leaves first. Set before push; not
	 * changed while a member. */
	int64_t key;
	/** Tie-breaker: smaller leaves first among equal keys. Set before
	 * push; not changed while a member. */
	uint64_t seq;
	/** First (leftmost) child, or NULL. */
	struct flowq_pheap_node *child;
	/** Right sibling, or NULL. */
	struct flowq_pheap_node *next;
	/** Left sibling; the parent for a first child; the node itself for
	 * the root; NULL when not a member. */
	struct flowq_pheap_node *prev;
};

/** The heap. An all-zero struct is an empty heap (so is flowq_pheap_init()). */
struct flowq_pheap {
	/** The smallest member, or NULL if empty. */
	struct flowq_pheap_node *root;
	/** Members. */
	size_t len;
};

/** Make @p h empty. A zeroed struct flowq_pheap is already empty. Re-running
 * it on a heap with members strands them as "members" of nothing: pop or
 * remove them first. */
static inline void
flowq_pheap_init(struct flowq_pheap *h)
{
	h->root = NULL;
	h->len = 0;
}

/** Mark @p n as not in any heap (required before its first push). */
static inline void
flowq_pheap_node_init(struct flowq_pheap_node *n)
{
	n->child = n->next = n->prev = NULL;
}

/** Whether @p n is a member of some heap. */
static inline bool
flowq_pheap_member(const struct flowq_pheap_node *n)
{
	return n->prev != NULL;
}

static inline size_t
flowq_pheap_len(const struct flowq_pheap *h)
{
	return h->len;
}

/** The smallest member by (key, seq), or NULL if @p h is empty. O(1). */
static inline struct flowq_pheap_node *
flowq_pheap_peek(const struct flowq_pheap *h)
{
	return h->root;
}

/**
 * Insert @p n (key and seq set; not a member: initialized with
 * flowq_pheap_node_init(), or popped or removed since). O(1).
 *
 * @return 0; -EINVAL if @p n is already a member of a heap (nothing
 *         changes).
 *
 * Context: the thread that owns @p h (see the synchronization table).
 * Ordering: none (plain memory operations). Progress: wait-free, O(1).
 */
FLOWQ_API int
flowq_pheap_push(struct flowq_pheap *h, struct flowq_pheap_node *n);

/**
 * Insert @p n nodes (each as for flowq_pheap_push()) as one batch: they are
 * first combined into one tree (two-pass, n - 1 comparisons), which is then
 * melded with the root. O(n). The same members as n pushes, but the root
 * gains one child per batch instead of one per node: pushes are lazy (a
 * push adds a child to the root and the next pop combines them all), so
 * after a burst of B single pushes without a pop the next pop costs O(B),
 * and after the same burst in batches of k it costs O(B / k). Measured on
 * this project's (loaded, 2-vCPU) machines with increasing keys: B = 100 000
 * single pushes, first pop 0.26-0.49 ms; in batches of 64, 17 us (B = 10^6:
 * 4-22 ms against 0.7 ms).
 *
 * @return 0; -EINVAL if a node is already a member of a heap, or appears
 *         twice in @p nodes (nothing changes: the nodes stay non-members).
 *
 * Context: the thread that owns @p h. Ordering: none. Progress: wait-free,
 * O(n).
 */
FLOWQ_API int
flowq_pheap_push_batch(struct flowq_pheap *h, struct flowq_pheap_node *const *nodes,
		       size_t n);

/**
 * Remove and return the smallest member by (key, seq), or NULL if @p h is
 * empty. The node is left a non-member. Cannot fail.
 *
 * Context: the thread that owns @p h. Ordering: none. Progress: wait-free:
 * O(log n) amortized, O(n) worst case for one call (no recursion, no
 * allocation).
 */
FLOWQ_API struct flowq_pheap_node *
flowq_pheap_pop(struct flowq_pheap *h);

/**
 * Remove @p n, a member of @p h, from anywhere in the heap; it is left a
 * non-member. O(log n) amortized.
 *
 * @return 0; -EINVAL if @p n is not a member of any heap, or is the root of
 *         a heap other than @p h (nothing changes). A non-root member of
 *         another heap cannot be told apart in O(1): passing one is a caller
 *         bug that corrupts both heaps.
 *
 * Context: the thread that owns @p h. Ordering: none. Progress: wait-free:
 * O(log n) amortized, O(n) worst case for one call.
 */
FLOWQ_API int
flowq_pheap_remove(struct flowq_pheap *h, struct flowq_pheap_node *n);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_PHEAP_H */
