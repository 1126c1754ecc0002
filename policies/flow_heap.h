/*
 * Internal: flowq__kheap, a heap of a band's flows whose slot array always
 * has room for every *attached* flow, for the heap-based policies
 * (global_strict, wfq, drr's far rounds, most_over_share).
 *
 * Why: policy.h allows allocation only in band_init, band_fini, flow_attach
 * and flow_detach, never on the hot path (flow_backlogged, pick, update). The
 * flows in the heap are a subset of the attached ones, so keeping the
 * capacity >= the attached count means a push on the hot path can never find
 * the array full.
 *
 * Sizing: flowq__kheap_attach() doubles the array when it is full (first
 * size FLOWQ__FLOWS_MIN_CAP, amortized O(1) per attach; -ENOMEM leaves the
 * heap unchanged). flowq__kheap_detach() halves it when at most a quarter is
 * in use and the half is still >= FLOWQ__FLOWS_MIN_CAP, so a burst of flows
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
#include <flowq/policy.h>

/* Smallest slot array, in flows. */
#define FLOWQ__FLOWS_MIN_CAP 8u

/*
 * The sizing rule above, shared by the heap and by the flow ring
 * (flow_ring.h): the capacity after a full array of @p cap slots, or 0 when
 * @p cap already is @p max (no room can be made). From 0 the first array has
 * FLOWQ__FLOWS_MIN_CAP slots; a power-of-two @p max keeps every capacity a
 * power of two.
 */
static inline uint32_t
flowq__cap_grown(uint32_t cap, uint32_t max)
{
	if (cap >= max)
		return 0;
	return cap < FLOWQ__FLOWS_MIN_CAP ? FLOWQ__FLOWS_MIN_CAP
	       : cap > max / 2            ? max
					  : cap * 2;
}

/* Whether to halve an array of @p cap slots after a detach left @p nattached
 * flows that may need a slot and @p len slots in use. */
static inline bool
flowq__cap_shrinks(uint32_t nattached, uint32_t cap, uint32_t len)
{
	return nattached <= cap / 4 && cap / 2 >= FLOWQ__FLOWS_MIN_CAP && len <= cap / 2;
}

/*
 * flowq__kheap: a 4-ary min-heap whose slots hold the (key, seq) pair next
 * to the member pointer, for policies whose members are re-keyed on every
 * decision (wfq, global_strict). flowq_heap keeps the key in the member, so
 * each level of a sift reads up to four members' nodes: with one member per
 * flow, spread over memory at the engine's flow size, that is a cache miss
 * per child. Here a level reads four adjacent slots (24 bytes each) and
 * writes one member's index; BM_policy_fairness_wfq and
 * BM_policy_fairness_scattered_global_strict measure the difference against
 * BM_policy_peer_binary_heap.
 *
 * Members and nodes. The slot keeps the *member*, the address the owner
 * wants back (flowq__kheap_top_member(), flowq__kheap_second_member()),
 * and the member's index word, its node, sits at a fixed offset inside it,
 * set per heap (flowq__kheap_init_at()). global_strict's and wfq's members
 * are the flows' views, with the node in a hot word of the view
 * (policy.h), so a policy decision reads the next flows from the array and
 * writes only the views' lines; drr and most_over_share embed a node in
 * their own per-flow state (offset 0: the member is the node).
 */

#define FLOWQ__KHEAP_NONE UINT32_MAX
/* Children per node. */
#define FLOWQ__KHEAP_D 4u

/** Handle embedded in a member: its slot, or FLOWQ__KHEAP_NONE. A 64-bit
 * word, so that it can be one of a view's hot words (uint64_t). */
struct flowq__kheap_node {
	uint64_t idx;
};

struct flowq__kheap_slot {
	int64_t key;
	uint64_t seq;
	/* The member: its node is node_off bytes into it. */
	void *member;
};

struct flowq__kheap {
	struct flowq__kheap_slot *slots;
	uint32_t len, cap;
	/* Flows attached; cap >= nattached once any is. */
	uint32_t nattached;
	/* Where a member's node is, in bytes from the member's start. */
	uint32_t node_off;
};

/** An empty heap with no array (band_init), whose members are their
 * nodes (node offset 0). */
void
flowq__kheap_init(struct flowq__kheap *h);

/** As flowq__kheap_init(), for members whose node is @p node_off bytes
 * into them. */
void
flowq__kheap_init_at(struct flowq__kheap *h, uint32_t node_off);

/** Free the array (band_fini). */
void
flowq__kheap_fini(struct flowq__kheap *h, const struct flowq_allocator *a);

/**
 * Count one more attached flow, growing the array first if it is full.
 * @return 0; -ENOMEM (allocation failed, or the array is at its largest):
 *         nothing changed.
 */
int
flowq__kheap_attach(struct flowq__kheap *h, const struct flowq_allocator *a);

/**
 * Count one attached flow less (the caller has removed it from the heap),
 * shrinking the array when it is at most a quarter used. Never fails; a
 * detach without an attach is ignored.
 */
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

/** The node of @p member (any address with a node at the heap's
 * offset). */
static inline struct flowq__kheap_node *
flowq__kheap_node_of(const struct flowq__kheap *h, void *member)
{
	return (struct flowq__kheap_node *)((char *)member + h->node_off);
}

/** The member whose node is @p n. */
static inline void *
flowq__kheap_member_of(const struct flowq__kheap *h, struct flowq__kheap_node *n)
{
	return (char *)n - h->node_off;
}

/** The smallest member's node, or NULL. O(1). */
static inline struct flowq__kheap_node *
flowq__kheap_peek(const struct flowq__kheap *h)
{
	return h->len != 0 ? flowq__kheap_node_of(h, h->slots[0].member) : NULL;
}

/** The smallest member, or NULL. O(1), reads the slot array only. */
static inline void *
flowq__kheap_top_member(const struct flowq__kheap *h)
{
	return h->len != 0 ? h->slots[0].member : NULL;
}

/** Whether (@p ka, @p sa) orders before (@p kb, @p sb): the heap's order. */
static inline bool
flowq__kheap_before(int64_t ka, uint64_t sa, int64_t kb, uint64_t sb)
{
	return ka < kb || (ka == kb && sa < sb);
}

/** The second smallest member (the smallest child of the top), or NULL if
 * there are fewer than two. Reads at most FLOWQ__KHEAP_D adjacent slots. */
static inline void *
flowq__kheap_second_member(const struct flowq__kheap *h)
{
	if (h->len < 2)
		return NULL;
	uint32_t end = h->len - 1 > FLOWQ__KHEAP_D ? FLOWQ__KHEAP_D + 1 : h->len;
	uint32_t best = 1;
	for (uint32_t c = 2; c < end; c++) {
		const struct flowq__kheap_slot *a = &h->slots[c], *b = &h->slots[best];
		if (flowq__kheap_before(a->key, a->seq, b->key, b->seq))
			best = c;
	}
	return h->slots[best].member;
}

/** The key of @p n, a member. */
static inline int64_t
flowq__kheap_key(const struct flowq__kheap *h, const struct flowq__kheap_node *n)
{
	return h->slots[n->idx].key;
}

/* Members from which flowq__kheap_look_ahead() passes the next two on. */
#define FLOWQ__KHEAP_AHEAD_MIN 8u

/**
 * For a fairness policy whose members are the flows' views and whose next
 * pick is the top: pass the top to the engine's look-ahead
 * (flowq_policy_env::prefetch) as stage 1 and the second smallest as stage
 * 0, after a decision has changed the heap. The second is the pick after
 * next whenever the top's next key comes later than it (nearly always with
 * many flows backlogged). Nothing with fewer than FLOWQ__KHEAP_AHEAD_MIN
 * members: they stay in the caches, and the calls would be pure cost.
 */
static inline void
flowq__kheap_look_ahead(const struct flowq__kheap *h,
			void (*hint)(void *, const struct flowq_policy_flow *, unsigned),
			void *arg)
{
	if (hint == NULL || h->len < FLOWQ__KHEAP_AHEAD_MIN)
		return;
	hint(arg, flowq__kheap_top_member(h), 1);
	hint(arg, flowq__kheap_second_member(h), 0);
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
