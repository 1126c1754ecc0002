/*
 * flowq_heap: intrusive 4-ary min-heap with removal by handle.
 *
 * Orders members by (key, seq): key is the policy's sort key (deadline,
 * virtual finish time, ...) computed once when the member is inserted, seq
 * breaks ties so equal keys leave in insertion order (FIFO) and the order is
 * total and deterministic. Comparison is inline on two integers: no callback
 * per comparison.
 *
 * A 4-ary heap has half the levels of a binary heap, and the four child
 * pointers of a slot share one or two cache lines of the slot array (each
 * comparison still dereferences the child's node). BM_heap_* (flowq_bench)
 * compares it with a binary heap that differs only in arity, on a pop+push
 * "hold" loop: 1.5x faster at 4 members, a tie (+-5%) from 1,000 to 65,536,
 * and undecided at 1,000,000 (0.64x and 1.24x in two runs on our noisy
 * 2-vCPU machines).
 *
 * Dispatcher-private: no operation is atomic; every pair of calls on one heap
 * must be serialized by the caller.
 *
 * The heap never allocates: the owner supplies the slot array and grows it
 * with flowq_heap_grow() when flowq_heap_push() reports -ENOSPC.
 */
#ifndef FLOWQ_HEAP_H
#define FLOWQ_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Handle embedded in a heap member. */
struct flowq_heap_node {
	/** Primary sort key: smaller leaves first. Set before push. */
	int64_t key;
	/** Tie-breaker: smaller leaves first among equal keys. Set before push. */
	uint64_t seq;
	/** Position in the heap; FLOWQ_HEAP_NONE when not a member. */
	uint32_t idx;
};

#define FLOWQ_HEAP_NONE UINT32_MAX

struct flowq_heap {
	struct flowq_heap_node **slots;
	uint32_t len;
	uint32_t cap;
};

/** The most members a heap can hold (FLOWQ_HEAP_NONE is reserved). */
#define FLOWQ_HEAP_MAX_CAP (UINT32_MAX - 1u)

/**
 * Make @p h an empty heap over @p slots (caller memory of @p cap entries; may
 * be NULL with @p cap 0). A @p cap above FLOWQ_HEAP_MAX_CAP is clamped to it.
 */
FLOWQ_API void
flowq_heap_init(struct flowq_heap *h, struct flowq_heap_node **slots, uint32_t cap);

/** Mark @p n as not in any heap. */
static inline void
flowq_heap_node_init(struct flowq_heap_node *n)
{
	n->idx = FLOWQ_HEAP_NONE;
}

static inline bool
flowq_heap_member(const struct flowq_heap_node *n)
{
	return n->idx != FLOWQ_HEAP_NONE;
}

static inline uint32_t
flowq_heap_len(const struct flowq_heap *h)
{
	return h->len;
}

/** The smallest member, or NULL if @p h is empty. O(1). */
static inline struct flowq_heap_node *
flowq_heap_peek(const struct flowq_heap *h)
{
	return h->len != 0 ? h->slots[0] : NULL;
}

/**
 * Insert @p n (key and seq set; not a member: initialized with
 * flowq_heap_node_init(), or popped or removed since). O(log n). Re-running
 * flowq_heap_init() on a heap with members strands them as "members" of
 * nothing: pop or remove them first.
 *
 * @return 0; -ENOSPC if the slot array is full (grow it and retry);
 *         -EINVAL if @p n is already a member of a heap.
 */
FLOWQ_API int
flowq_heap_push(struct flowq_heap *h, struct flowq_heap_node *n);

/** Remove and return the smallest member, or NULL if @p h is empty. O(log n). */
FLOWQ_API struct flowq_heap_node *
flowq_heap_pop(struct flowq_heap *h);

/**
 * Remove @p n, a member of @p h, from anywhere in the heap. O(log n).
 *
 * @return 0; -EINVAL if @p n is not a member of @p h.
 */
FLOWQ_API int
flowq_heap_remove(struct flowq_heap *h, struct flowq_heap_node *n);

/**
 * Change the key of @p n, a member of @p h, and restore heap order. O(log n).
 *
 * @return 0; -EINVAL if @p n is not a member of @p h.
 */
FLOWQ_API int
flowq_heap_update(struct flowq_heap *h, struct flowq_heap_node *n, int64_t key);

/**
 * Move the members to @p slots (caller memory of @p cap entries) and hand back
 * the old array for the caller to free. @p slots must be a fresh array that
 * does not overlap the current one (do not pass the result of realloc() on
 * the current array: that may have freed it already).
 *
 * @param r_old  receives the previous slot array (possibly NULL).
 * @return 0; -EINVAL if @p slots is NULL or the current array, if @p cap is
 *         smaller than the current length, or if @p cap exceeds
 *         FLOWQ_HEAP_MAX_CAP (@p h is then unchanged).
 */
FLOWQ_API int
flowq_heap_grow(struct flowq_heap *h, struct flowq_heap_node **slots, uint32_t cap,
		struct flowq_heap_node ***r_old);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_HEAP_H */
