/*
 * Internal: a FIFO of a band's flows kept in an array (the "flow ring"), for
 * the turn-based fairness policies: round_robin's ring of backlogged flows
 * and drr's current and next rounds.
 *
 * Why an array, not a list linked through the flows' states. Both are O(1)
 * per operation, but in a linked ring the next flow is found by reading the
 * current flow's state: the walk is a chain of dependent loads, and once
 * the flows' states leave the caches each decision waits for one or two
 * full cache misses in a row. A benchmark whose ring order is the flows'
 * memory order hides this (the hardware prefetcher streams the states); a
 * dispatcher does not get that order for long, since flows empty and join
 * again in arrival order. With the flows joining in a random order
 * (BM_policy_fairness_scattered_*, README), the linked round_robin cost
 * 172 ns per decision at 65536 flows and 292 ns at 10^6, a dependent miss
 * per decision (BM_policy_peer_pointer_chase: 149 and 267 ns in the same
 * run). In an array the flows FLOWQ__FRING_AHEAD turns ahead are known
 * without touching them: each time the front moves, the ring prefetches
 * that flow's view (struct flowq_policy_flow) and its policy state (both
 * addresses are in the slot, so the prefetch waits for nothing), and the
 * misses of successive decisions overlap instead of following one another:
 * 6.5 and 20.9 ns in the same run (drr: 174 and 316 ns before, 9.7 and 25.9
 * after). The price is the slots' own traffic, two sequential streams:
 * with the flows in memory order, which the hardware prefetchers already
 * stream, round_robin at 10^6 flows measured 11.0 ns against the linked
 * ring's 7.6 in that run. (A slot of 8 bytes, the view only, with the
 * state's address read from the prefetched view, halves that traffic but
 * stalls on the read when the view has not arrived: 2-6x slower
 * scattered.)
 *
 * Positions. Each append takes the next 64-bit position (tail); the slot of
 * position p is slots[p & mask], and the ring is positions [head, tail). A
 * member records its position in its struct flowq__fring_node and owns that
 * slot while head <= pos < tail: positions are never reused (it would take
 * 2^64 appends), so no other member can hold the same one, and a position
 * the front has passed is simply stale. Positions start at 1, so a zeroed
 * node (pos 0) owns nothing.
 *
 * Slots. Live: flow and node set. Tombstone: flow NULL, node set: its
 * member left from the middle of the ring (O(1), instead of shifting the
 * slots behind it). Orphan: both NULL: a tombstone whose member was
 * detached. The front (the slot at head) is always live: when the front
 * member leaves, head moves past it and past every dead slot behind it
 * (amortized O(1): each dead slot is passed once; passing reads only the
 * array, never a member). A member that owns a tombstone and joins again
 * revives it (flowq__fring_revive()): it takes its old place back. So a
 * member owns at most one slot.
 *
 * The mark: a position the owner keeps as a boundary between two parts of
 * the ring (drr: the first slot of the next round); compaction moves it
 * with the slots. The ring itself does not use it.
 *
 * Capacity rule: cap >= nattached + orphans at all times, so that a push
 * (by a member that owns no slot) always finds room, without allocating:
 * the ring holds at most one slot per attached member plus the orphans, and
 * a detach turns an owned slot into an orphan (the sum does not grow).
 * flowq__fring_attach() grows the array (flow_heap.h's sizing rule, powers
 * of two from FLOWQ__FHEAP_MIN_CAP) or, when the orphans are more than half
 * of it, compacts it first (drops the orphans and renumbers the survivors,
 * writing each one's node: O(ring), paid for by the detaches that made the
 * orphans); flowq__fring_detach() halves it when nattached + orphans
 * <= cap / 4. Only attach and detach allocate. Memory: 16 bytes per slot,
 * between 1 and 4 slots per attached flow (plus orphans until the next
 * compaction).
 *
 * Context: the band's dispatcher only, like every policy op (no atomics).
 */
#ifndef FLOWQ_POLICIES_FLOW_RING_H
#define FLOWQ_POLICIES_FLOW_RING_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include <flowq/alloc.h>
#include <flowq/policy.h>

/* How many turns ahead of the front the ring prefetches. Each decision
 * starts two misses (the flow's view and its state); 8 turns keep up to 16
 * in flight, about what one core's miss buffers hold. 4 was slower with the
 * flows in a random order at 10^6 flows; 16 and 32 were no better within
 * this machine's noise (+-30% between runs). */
#define FLOWQ__FRING_AHEAD 8u

/* The largest slot array (a power of two, so every capacity is one). */
#define FLOWQ__FRING_MAX_CAP (UINT32_C(1) << 31)

/** Handle embedded in a member's policy state. */
struct flowq__fring_node {
	/* Position of the member's slot; owned while in [head, tail). */
	uint64_t pos;
};

struct flowq__fring_slot {
	/* The member's view (returned as the front); NULL in a dead slot. */
	struct flowq_policy_flow *flow;
	/* The member's node; NULL in an orphan. */
	struct flowq__fring_node *node;
};

struct flowq__fring {
	/* cap slots, cap a power of two (0 and NULL before the first attach). */
	struct flowq__fring_slot *slots;
	uint32_t mask; /* cap - 1 */
	uint32_t cap;
	/* The ring is positions [head, tail); the slot at head is live. */
	uint64_t head, tail;
	/* The owner's boundary (see above). */
	uint64_t mark;
	/* Members attached; orphans in [head, tail). cap >= their sum. */
	uint32_t nattached, orphans;
};

/** An empty ring with no array (band_init); the mark is at the tail. */
void
flowq__fring_init(struct flowq__fring *r);

/** Free the array (band_fini); the ring is left as after init. */
void
flowq__fring_fini(struct flowq__fring *r, const struct flowq_allocator *a);

/**
 * Room for one more member (flow_attach), growing or compacting the array.
 * The member's node must be initialized by the caller.
 * @return 0; -ENOMEM (allocation failed, or FLOWQ__FRING_MAX_CAP slots
 *         would not be enough): nothing changed.
 */
int
flowq__fring_attach(struct flowq__fring *r, const struct flowq_allocator *a);

/**
 * The member of @p n leaves for good (flow_detach): a slot it owns becomes
 * an orphan (or, at the front, is passed), and the array may shrink. Never
 * fails; a detach without an attach is ignored.
 */
void
flowq__fring_detach(struct flowq__fring *r, struct flowq__fring_node *n,
		    const struct flowq_allocator *a);

/* Out of line: move head past the dead slots at the front, then prefetch. */
void
flowq__fring_skip(struct flowq__fring *r);

static inline void
flowq__fring_node_init(struct flowq__fring_node *n)
{
	n->pos = 0;
}

/** Whether the ring has no live member. */
static inline bool
flowq__fring_empty(const struct flowq__fring *r)
{
	return r->head == r->tail;
}

/** Whether @p n owns a slot (live or a tombstone). */
static inline bool
flowq__fring_owns(const struct flowq__fring *r, const struct flowq__fring_node *n)
{
	return n->pos - r->head < r->tail - r->head;
}

/** Whether @p n owns a live slot: its member is in the ring. */
static inline bool
flowq__fring_live(const struct flowq__fring *r, const struct flowq__fring_node *n)
{
	return flowq__fring_owns(r, n) && r->slots[n->pos & r->mask].flow != NULL;
}

/** The front member's view, or NULL if the ring is empty. O(1). */
static inline struct flowq_policy_flow *
flowq__fring_front(const struct flowq__fring *r)
{
	return r->head == r->tail ? NULL : r->slots[r->head & r->mask].flow;
}

/** Whether @p n is the front member. */
static inline bool
flowq__fring_at_front(const struct flowq__fring *r, const struct flowq__fring_node *n)
{
	return n->pos == r->head && r->head != r->tail;
}

/* Start loading the view and state of the member FLOWQ__FRING_AHEAD turns
 * behind the front. A hint only, unconditional to keep it cheap: when the
 * ring is shorter, the slot read is a dead or stale one (the array is
 * zeroed when allocated, so it is never uninitialized), and prefetching a
 * stale or NULL address is harmless: a prefetch does not fault and nothing
 * is read through it. */
static inline void
flowq__fring_prefetch(const struct flowq__fring *r)
{
	const struct flowq__fring_slot *s =
		&r->slots[(r->head + FLOWQ__FRING_AHEAD) & r->mask];

	__builtin_prefetch(s->flow, 1);
	__builtin_prefetch(s->node, 1);
}

/** The front member leaves the ring; head moves on to the next live member
 * and the ring prefetches the member FLOWQ__FRING_AHEAD turns behind it.
 * O(1) amortized. */
static inline void
flowq__fring_pop_front(struct flowq__fring *r)
{
	assert(r->head != r->tail);
	r->head++;
	if (r->head != r->tail && r->slots[r->head & r->mask].flow == NULL)
		flowq__fring_skip(r);
	else
		flowq__fring_prefetch(r);
}

/** The front member moves to the back (its turn is over, it stays): as
 * flowq__fring_pop_front() then flowq__fring_push(), in one step. */
static inline void
flowq__fring_rotate(struct flowq__fring *r)
{
	struct flowq__fring_slot s = r->slots[r->head & r->mask];

	assert(r->head != r->tail);
	/* With the array full, tail's slot is head's: rewritten with itself,
	 * then passed. */
	r->slots[r->tail & r->mask] = s;
	s.node->pos = r->tail++;
	flowq__fring_pop_front(r);
}

/** Append the member (@p f, @p n), which owns no slot, at the back. O(1). */
static inline void
flowq__fring_push(struct flowq__fring *r, struct flowq_policy_flow *f,
		  struct flowq__fring_node *n)
{
	struct flowq__fring_slot *s = &r->slots[r->tail & r->mask];

	assert(!flowq__fring_owns(r, n));
	/* The capacity rule: one slot per attached member plus orphans. */
	assert(r->tail - r->head < r->cap);
	s->flow = f;
	s->node = n;
	n->pos = r->tail++;
}

/** The member of @p n, which owns a tombstone, takes its place back. O(1). */
static inline void
flowq__fring_revive(struct flowq__fring *r, struct flowq_policy_flow *f,
		    struct flowq__fring_node *n)
{
	struct flowq__fring_slot *s = &r->slots[n->pos & r->mask];

	assert(flowq__fring_owns(r, n) && s->flow == NULL && s->node == n);
	s->flow = f;
}

/**
 * The member of @p n, which owns a live slot, leaves the ring: from the
 * middle its slot becomes a tombstone (it still owns it, and may revive
 * it); from the front, as flowq__fring_pop_front(). O(1) amortized.
 */
static inline void
flowq__fring_remove(struct flowq__fring *r, struct flowq__fring_node *n)
{
	assert(flowq__fring_live(r, n));
	if (n->pos == r->head)
		flowq__fring_pop_front(r);
	else
		r->slots[n->pos & r->mask].flow = NULL;
}

#endif /* FLOWQ_POLICIES_FLOW_RING_H */
