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
 * that flow's view (its address is in the slot, so the prefetch waits for
 * nothing), and the misses of successive decisions overlap instead of
 * following one another: 6.5 and 20.9 ns in the same run (drr: 174 and
 * 316 ns before, 9.7 and 25.9 after).
 *
 * One line per member. A member's position, the only thing the ring keeps
 * in the member, is the view's hot[FLOWQ__FRING_POS] (policy.h: the words
 * of the view's line that the fairness policy owns), not a word of the
 * policy's state: the dispatcher touches the view's line on every request
 * anyway, so a decision that moves a flow through the ring touches that one
 * line of it, where an earlier version, with the position in the policy
 * state, touched two (the view's and the state's) and streamed 128 bytes of
 * flow memory per decision at 10^6 flows. And since the view is the whole
 * member, a slot is one tagged pointer (8 bytes), not a (view, state node)
 * pair: half the slot traffic, with nothing read through a prefetched view
 * (an 8-byte slot that had to read the state's address from the view
 * stalled on that read, 2-6x slower scattered). README, "Policies", has
 * the A/B figures.
 *
 * Positions. Each append takes the next 64-bit position (tail); the slot of
 * position p is slots[p & mask], and the ring is positions [head, tail). A
 * member records its position in its view (hot[FLOWQ__FRING_POS]) and owns
 * that slot while head <= pos < tail: positions are never reused (it would take
 * 2^64 appends), so no other member can hold the same one, and a position
 * the front has passed is simply stale. Positions start at 1, so a zeroed
 * position owns nothing.
 *
 * Slots. Live: the member's view. Tombstone: the view with bit 0 set
 * (FLOWQ__FRING_TOMB): its member left from the middle of the ring (O(1),
 * instead of shifting the slots behind it). Orphan: 0: a tombstone whose
 * member was detached. The front (the slot at head) is always live: when
 * the front member leaves, head moves past it and past every dead slot
 * behind it (amortized O(1): each dead slot is passed once; passing reads
 * only the array, never a member). A member that owns a tombstone and
 * joins again revives it (flowq__fring_revive()): it takes its old place
 * back. So a member owns at most one slot.
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
 * of two from FLOWQ__FLOWS_MIN_CAP) or, when the orphans are more than half
 * of it, compacts it first (drops the orphans and renumbers the survivors,
 * writing each one's position: O(ring), paid for by the detaches that
 * made the orphans); flowq__fring_detach() halves it when nattached +
 * orphans <= cap / 4. Only attach and detach allocate. Memory: 8 bytes per
 * slot, between 1 and 4 slots per attached flow (plus orphans until the
 * next compaction), and one of the view's hot words.
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
 * starts one miss (the flow's view; the slots stream); 8 turns keep 8 in
 * flight. (With two misses per decision, the view and a state line, 4 was
 * slower with the flows in a random order at 10^6 flows and 16 and 32 no
 * better within this machine's noise; README has the re-check for one.) */
#define FLOWQ__FRING_AHEAD 8u

/* The view's hot word that holds a member's position. */
#define FLOWQ__FRING_POS 0u

/* Bit 0 of a slot: a tombstone (views are 8-byte aligned at least). */
#define FLOWQ__FRING_TOMB ((uintptr_t)1)

/* The largest slot array (a power of two, so every capacity is one). */
#define FLOWQ__FRING_MAX_CAP (UINT32_C(1) << 31)

_Static_assert(FLOWQ__FRING_POS < FLOWQ_POLICY_HOT_WORDS, "the position is a hot word");
_Static_assert(_Alignof(struct flowq_policy_flow) > 1, "a view's bit 0 is free");

struct flowq__fring {
	/* cap slots, cap a power of two (0 and NULL before the first attach):
	 * a view (live), a view | FLOWQ__FRING_TOMB (tombstone) or 0
	 * (orphan). */
	uintptr_t *slots;
	uint32_t mask; /* cap - 1 */
	uint32_t cap;
	/* The ring is positions [head, tail); the slot at head is live. */
	uint64_t head, tail;
	/* The owner's boundary (see above). */
	uint64_t mark;
	/* Members attached; orphans in [head, tail). cap >= their sum. */
	uint32_t nattached, orphans;
	/* The engine's look-ahead (flowq_policy_env::prefetch), or NULL. */
	void (*hint)(void *arg, const struct flowq_policy_flow *f, unsigned stage);
	void *hint_arg;
};

/* Whether slot value @p s is dead (a tombstone or an orphan). */
static inline bool
flowq__fring_dead(uintptr_t s)
{
	return s == 0 || (s & FLOWQ__FRING_TOMB) != 0;
}

/** An empty ring with no array (band_init); the mark is at the tail. It
 * passes the members FLOWQ__FRING_AHEAD and FLOWQ__FRING_AHEAD / 2 turns
 * behind the front to @p env's prefetch hook, if there is one. */
void
flowq__fring_init(struct flowq__fring *r, const struct flowq_policy_env *env);

/** Free the array (band_fini); the ring is left as after init. */
void
flowq__fring_fini(struct flowq__fring *r, const struct flowq_allocator *a);

/**
 * Room for one more member (flow_attach), growing or compacting the array.
 * The member's position must be set with flowq__fring_member_init() by the
 * caller.
 * @return 0; -ENOMEM (allocation failed, or FLOWQ__FRING_MAX_CAP slots
 *         would not be enough): nothing changed.
 */
int
flowq__fring_attach(struct flowq__fring *r, const struct flowq_allocator *a);

/**
 * The member @p f leaves for good (flow_detach): a slot it owns becomes an
 * orphan (or, at the front, is passed), and the array may shrink. Never
 * fails; a detach without an attach is ignored.
 */
void
flowq__fring_detach(struct flowq__fring *r, struct flowq_policy_flow *f,
		    const struct flowq_allocator *a);

/* Out of line: move head past the dead slots at the front, then prefetch. */
void
flowq__fring_skip(struct flowq__fring *r);

/* The member's position word. */
static inline uint64_t *
flowq__fring_pos(struct flowq_policy_flow *f)
{
	return &f->hot[FLOWQ__FRING_POS];
}

static inline uint64_t
flowq__fring_pos_of(const struct flowq_policy_flow *f)
{
	return f->hot[FLOWQ__FRING_POS];
}

/* The view in slot value @p s (live or tombstone), or NULL (orphan). */
static inline struct flowq_policy_flow *
flowq__fring_view(uintptr_t s)
{
	return (struct flowq_policy_flow *)(s & ~FLOWQ__FRING_TOMB);
}

/** A member that owns nothing (flow_attach). */
static inline void
flowq__fring_member_init(struct flowq_policy_flow *f)
{
	*flowq__fring_pos(f) = 0;
}

/** Whether the ring has no live member. */
static inline bool
flowq__fring_empty(const struct flowq__fring *r)
{
	return r->head == r->tail;
}

/** Whether @p f owns a slot (live or a tombstone). */
static inline bool
flowq__fring_owns(const struct flowq__fring *r, const struct flowq_policy_flow *f)
{
	return flowq__fring_pos_of(f) - r->head < r->tail - r->head;
}

/** Whether @p f owns a live slot: it is in the ring. */
static inline bool
flowq__fring_live(const struct flowq__fring *r, const struct flowq_policy_flow *f)
{
	return flowq__fring_owns(r, f) &&
	       !(r->slots[flowq__fring_pos_of(f) & r->mask] & FLOWQ__FRING_TOMB);
}

/** The front member's view, or NULL if the ring is empty. O(1). */
static inline struct flowq_policy_flow *
flowq__fring_front(const struct flowq__fring *r)
{
	return r->head == r->tail
		       ? NULL
		       : (struct flowq_policy_flow *)r->slots[r->head & r->mask];
}

/** Whether @p f is the front member. */
static inline bool
flowq__fring_at_front(const struct flowq__fring *r, const struct flowq_policy_flow *f)
{
	return flowq__fring_pos_of(f) == r->head && r->head != r->tail;
}

/* Start loading the view of the member FLOWQ__FRING_AHEAD turns behind the
 * front. A hint only, unconditional to keep it cheap: when the ring is
 * shorter, the slot read is a dead or stale one (the array is zeroed when
 * allocated, so it is never uninitialized), and prefetching a stale or NULL
 * address (or a tombstone's, bit 0 set: the same line) is harmless: a
 * prefetch does not fault and nothing is read through it.
 *
 * With the engine's hook (r->hint), that member's flow lines too (stage
 * 0), and the head request of the member FLOWQ__FRING_AHEAD / 2 turns
 * behind the front (stage 1, which reads the flow: its lines have had
 * FLOWQ__FRING_AHEAD / 2 decisions' time to arrive). The hook reads
 * through the view, so it gets live members only: positions before the
 * tail whose slot is not dead. */
static inline void
flowq__fring_prefetch(const struct flowq__fring *r)
{
	uintptr_t far = r->slots[(r->head + FLOWQ__FRING_AHEAD) & r->mask];

	__builtin_prefetch((const void *)far, 1);
	if (r->hint == NULL)
		return;
	if (r->head + FLOWQ__FRING_AHEAD < r->tail && !flowq__fring_dead(far))
		r->hint(r->hint_arg, (const struct flowq_policy_flow *)far, 0);
	if (r->head + FLOWQ__FRING_AHEAD / 2 < r->tail) {
		uintptr_t near = r->slots[(r->head + FLOWQ__FRING_AHEAD / 2) & r->mask];

		if (!flowq__fring_dead(near))
			r->hint(r->hint_arg, (const struct flowq_policy_flow *)near, 1);
	}
}

/** The front member leaves the ring; head moves on to the next live member
 * and the ring prefetches the member FLOWQ__FRING_AHEAD turns behind it.
 * O(1) amortized. */
static inline void
flowq__fring_pop_front(struct flowq__fring *r)
{
	assert(r->head != r->tail);
	r->head++;
	if (r->head != r->tail && flowq__fring_dead(r->slots[r->head & r->mask]))
		flowq__fring_skip(r);
	else
		flowq__fring_prefetch(r);
}

/** The front member moves to the back (its turn is over, it stays): as
 * flowq__fring_pop_front() then flowq__fring_push(), in one step. */
static inline void
flowq__fring_rotate(struct flowq__fring *r)
{
	uintptr_t s = r->slots[r->head & r->mask];

	assert(r->head != r->tail);
	/* With the array full, tail's slot is head's: rewritten with itself,
	 * then passed. */
	r->slots[r->tail & r->mask] = s;
	*flowq__fring_pos((struct flowq_policy_flow *)s) = r->tail++;
	flowq__fring_pop_front(r);
}

/** Append @p f, which owns no slot, at the back. O(1). */
static inline void
flowq__fring_push(struct flowq__fring *r, struct flowq_policy_flow *f)
{
	assert(!flowq__fring_owns(r, f));
	/* The capacity rule: one slot per attached member plus orphans. */
	assert(r->tail - r->head < r->cap);
	r->slots[r->tail & r->mask] = (uintptr_t)f;
	*flowq__fring_pos(f) = r->tail++;
}

/** @p f, which owns a tombstone, takes its place back. O(1). */
static inline void
flowq__fring_revive(struct flowq__fring *r, struct flowq_policy_flow *f)
{
	uintptr_t *s = &r->slots[flowq__fring_pos_of(f) & r->mask];

	assert(flowq__fring_owns(r, f) && *s == ((uintptr_t)f | FLOWQ__FRING_TOMB));
	*s = (uintptr_t)f;
}

/**
 * @p f, which owns a live slot, leaves the ring: from the middle its slot
 * becomes a tombstone (it still owns it, and may revive it); from the
 * front, as flowq__fring_pop_front(). O(1) amortized.
 */
static inline void
flowq__fring_remove(struct flowq__fring *r, struct flowq_policy_flow *f)
{
	uint64_t pos = flowq__fring_pos_of(f);

	assert(flowq__fring_live(r, f));
	if (pos == r->head)
		flowq__fring_pop_front(r);
	else
		r->slots[pos & r->mask] = (uintptr_t)f | FLOWQ__FRING_TOMB;
}

#endif /* FLOWQ_POLICIES_FLOW_RING_H */
