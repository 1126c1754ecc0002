/*
 * Internal: heaps of a band's flows whose slot array always has room for
 * every *attached* flow, for the heap-based fairness policies:
 * flowq__fheap (over queues/'s flowq_heap; global_strict, drr's far
 * rounds) and flowq__kheap (keys in the slots; wfq), below.
 *
 * Why: policy.h allows allocation only in band_init, band_fini, flow_attach
 * and flow_detach, never on the hot path (flow_backlogged, pick, update). The
 * flows in the heap are a subset of the attached ones, so keeping the
 * capacity >= the attached count means a push on the hot path can never find
 * the array full.
 *
 * Sizing: flowq__fheap_attach() doubles the array when it is full (first
 * size FLOWQ__FHEAP_MIN_CAP, amortized O(1) per attach; -ENOMEM leaves the
 * heap unchanged). flowq__fheap_detach() halves it when at most a quarter is
 * in use and the half is still >= FLOWQ__FHEAP_MIN_CAP, so a burst of flows
 * does not pin its peak memory for ever, and the 1/4 threshold leaves room to
 * grow again before the next reallocation (no thrash at a boundary). A failed
 * shrink keeps the larger array: detach cannot fail. The array is allocated
 * on the first attach, so a band that never sees a flow on a shard costs no
 * allocation there.
 *
 * Context: the band's dispatcher only, like every policy op (no atomics).
 */
#ifndef FLOWQ_POLICIES_FLOW_HEAP_H
#define FLOWQ_POLICIES_FLOW_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#include <flowq/alloc.h>
#include <flowq/heap.h>

/* Smallest slot array, in flows. */
#define FLOWQ__FHEAP_MIN_CAP 8u

/*
 * The sizing rule above, shared by both heaps and by the flow ring
 * (flow_ring.h): the capacity after a full array of @p cap slots, or 0 when
 * @p cap already is @p max (no room can be made). From 0 the first array has
 * FLOWQ__FHEAP_MIN_CAP slots; a power-of-two @p max keeps every capacity a
 * power of two.
 */
static inline uint32_t
flowq__cap_grown(uint32_t cap, uint32_t max)
{
	if (cap >= max)
		return 0;
	return cap < FLOWQ__FHEAP_MIN_CAP ? FLOWQ__FHEAP_MIN_CAP : cap > max / 2 ? max : cap * 2;
}

/* Whether to halve an array of @p cap slots after a detach left @p nattached
 * flows that may need a slot and @p len slots in use. */
static inline bool
flowq__cap_shrinks(uint32_t nattached, uint32_t cap, uint32_t len)
{
	return nattached <= cap / 4 && cap / 2 >= FLOWQ__FHEAP_MIN_CAP && len <= cap / 2;
}

struct flowq__fheap {
	/* Members by (key, seq); heap.cap >= nattached once any flow is
	 * attached. */
	struct flowq_heap heap;
	/* Flows attached to the band on this shard. */
	uint32_t nattached;
};

/** An empty heap with no array (band_init). */
void
flowq__fheap_init(struct flowq__fheap *h);

/** Free the array (band_fini); the heap is left as after init. */
void
flowq__fheap_fini(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Count one more attached flow, growing the array first if it is full.
 * @return 0; -ENOMEM (allocation failed, or FLOWQ_HEAP_MAX_CAP flows are
 *         attached): nothing changed.
 */
int
flowq__fheap_attach(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Count one attached flow less (the caller has removed it from the heap),
 * shrinking the array when it is at most a quarter used. Never fails; a
 * detach without an attach is ignored.
 */
void
flowq__fheap_detach(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Subtract @p d from every member's key. Order is preserved (every key moves
 * by the same amount), so nothing is sifted. O(members); for policies whose
 * keys are offsets from a base that must move now and then (see
 * fairness_wfq.c and fairness_drr.c). The caller guarantees that no key
 * underflows.
 */
void
flowq__fheap_shift(struct flowq__fheap *h, int64_t d);

/*
 * flowq__kheap: the same capacity rule, but a 4-ary min-heap whose slots
 * hold the (key, seq) pair next to the member pointer, for policies whose
 * members are re-keyed on every decision (wfq). flowq_heap keeps the key in
 * the member, so each level of a sift reads up to four members' nodes: with
 * one member per flow, spread over memory at the engine's flow size, that is
 * a cache miss per child. Here a level reads four adjacent slots (24 bytes
 * each) and writes one member's index; BM_policy_fairness_wfq measures the
 * difference against BM_policy_peer_binary_heap.
 */

#define FLOWQ__KHEAP_NONE UINT32_MAX

/** Handle embedded in a member: its slot, or FLOWQ__KHEAP_NONE. */
struct flowq__kheap_node {
	uint32_t idx;
};

struct flowq__kheap_slot {
	int64_t key;
	uint64_t seq;
	struct flowq__kheap_node *node;
};

struct flowq__kheap {
	struct flowq__kheap_slot *slots;
	uint32_t len, cap;
	/* Flows attached; cap >= nattached once any is. */
	uint32_t nattached;
};

/** An empty heap with no array (band_init). */
void
flowq__kheap_init(struct flowq__kheap *h);

/** Free the array (band_fini). */
void
flowq__kheap_fini(struct flowq__kheap *h, const struct flowq_allocator *a);

/** As flowq__fheap_attach(): room for one more member; 0 or -ENOMEM. */
int
flowq__kheap_attach(struct flowq__kheap *h, const struct flowq_allocator *a);

/** As flowq__fheap_detach() (the caller removed the member first). */
void
flowq__kheap_detach(struct flowq__kheap *h, const struct flowq_allocator *a);

static inline void
flowq__kheap_node_init(struct flowq__kheap_node *n)
{
	n->idx = FLOWQ__KHEAP_NONE;
}

static inline bool
flowq__kheap_member(const struct flowq__kheap_node *n)
{
	return n->idx != FLOWQ__KHEAP_NONE;
}

/** The smallest member's node, or NULL. O(1). */
static inline struct flowq__kheap_node *
flowq__kheap_peek(const struct flowq__kheap *h)
{
	return h->len != 0 ? h->slots[0].node : NULL;
}

/** The key of @p n, a member. */
static inline int64_t
flowq__kheap_key(const struct flowq__kheap *h, const struct flowq__kheap_node *n)
{
	return h->slots[n->idx].key;
}

/** Insert @p n (not a member) with (@p key, @p seq). The caller keeps
 * len < cap (the capacity rule above). O(log n). */
void
flowq__kheap_push(struct flowq__kheap *h, struct flowq__kheap_node *n, int64_t key,
		  uint64_t seq);

/** Remove @p n, a member. O(log n). */
void
flowq__kheap_remove(struct flowq__kheap *h, struct flowq__kheap_node *n);

/** Change the key of @p n, a member. O(log n). */
void
flowq__kheap_update(struct flowq__kheap *h, struct flowq__kheap_node *n, int64_t key);

/** Subtract @p d from every key (order is kept). O(members). */
void
flowq__kheap_shift(struct flowq__kheap *h, int64_t d);

#endif /* FLOWQ_POLICIES_FLOW_HEAP_H */
