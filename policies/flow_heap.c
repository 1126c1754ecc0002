/*
 * flowq__kheap, a heap of a band's flows with room for every attached
 * flow and the keys in the slots (see flow_heap.h), written after
 * queues/heap.c (same arity, hole-based sifts, 64-bit index math).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc_internal.h"
#include "flow_heap.h"

/* ---- flowq__kheap ---- */

#define KHEAP_D FLOWQ__KHEAP_D
/* The most slots: FLOWQ__KHEAP_NONE is reserved, and the array's bytes
 * must fit size_t. */
#define KHEAP_MAX_CAP (UINT32_MAX - 1u)

/*
 * Slots are read and written one 8-byte field at a time, and the element
 * being sifted travels in registers (key, seq, member), never as a struct:
 * an operation often reads a slot that the previous one has just written
 * (the top, at every decision), and a 16-byte load of a key and seq written
 * by two 8-byte stores cannot be forwarded from the store buffer; it waits
 * for both stores to reach the cache (a failed store forward, ~10 ns, twice
 * per update when the slot went through the stack: bench/ENGINE-LOG.md, "Session 15").
 * Written this way, GCC 12 at -O2 emits no vector access here (a struct
 * copy of a slot became one 16-byte and one 8-byte load); check the
 * disassembly after touching these functions.
 */
/* Whether (key, seq) orders before slot @p b. */
static inline bool
kheap_less_than(int64_t key, uint64_t seq, const struct flowq__kheap_slot *b)
{
	return flowq__kheap_before(key, seq, b->key, b->seq);
}

/* Put (key, seq, member) in slot @p i and tell the member. */
static inline void
kheap_place(struct flowq__kheap *h, uint32_t i, int64_t key, uint64_t seq, void *member)
{
	struct flowq__kheap_slot *d = &h->slots[i];
	d->key = key;
	d->seq = seq;
	d->member = member;
	flowq__kheap_node_of(h, member)->idx = i;
}

/* Move slot @p from to slot @p to. */
static inline void
kheap_move(struct flowq__kheap *h, uint32_t to, uint32_t from)
{
	const struct flowq__kheap_slot *s = &h->slots[from];
	kheap_place(h, to, s->key, s->seq, s->member);
}

static void
kheap_sift_up(struct flowq__kheap *h, uint32_t i, int64_t key, uint64_t seq, void *member)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / KHEAP_D;

		if (!kheap_less_than(key, seq, &h->slots[parent]))
			break;
		kheap_move(h, i, parent);
		i = parent;
	}
	kheap_place(h, i, key, seq, member);
}

static void
kheap_sift_down(struct flowq__kheap *h, uint32_t i, int64_t key, uint64_t seq,
		void *member)
{
	for (;;) {
		/* 64-bit index math: 4i+4 overflows 32 bits for i >= 2^30. */
		uint64_t first64 = (uint64_t)i * KHEAP_D + 1;
		uint32_t first, best, c, end;

		if (first64 >= h->len)
			break;
		first = (uint32_t)first64;
		end = h->len - first > KHEAP_D ? first + KHEAP_D : h->len;
		best = first;
		for (c = first + 1; c < end; c++) {
			if (kheap_less_than(h->slots[c].key, h->slots[c].seq,
					    &h->slots[best]))
				best = c;
		}
		if (!flowq__kheap_before(h->slots[best].key, h->slots[best].seq, key,
					 seq))
			break;
		kheap_move(h, i, best);
		i = best;
	}
	kheap_place(h, i, key, seq, member);
}

/* Sift (key, seq, member), which belongs at @p i, up or down. */
static inline void
kheap_sift(struct flowq__kheap *h, uint32_t i, int64_t key, uint64_t seq, void *member)
{
	if (i > 0 && kheap_less_than(key, seq, &h->slots[(i - 1) / KHEAP_D]))
		kheap_sift_up(h, i, key, seq, member);
	else
		kheap_sift_down(h, i, key, seq, member);
}

static int
kheap_resize(struct flowq__kheap *h, uint32_t cap, const struct flowq_allocator *a)
{
	const size_t align = _Alignof(struct flowq__kheap_slot);
	struct flowq__kheap_slot *slots;

#if SIZE_MAX / 32 < UINT32_MAX
	if ((size_t)cap > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
#endif
	slots = flowq__alloc(a, (size_t)cap * sizeof(*slots), align);
	if (slots == NULL)
		return -ENOMEM;
	/* Members keep their indices: the slots move as they are. */
	for (uint32_t i = 0; i < h->len; i++)
		slots[i] = h->slots[i];
	flowq__free(a, h->slots, (size_t)h->cap * sizeof(*h->slots), align);
	h->slots = slots;
	h->cap = cap;
	return 0;
}

void
flowq__kheap_init_at(struct flowq__kheap *h, uint32_t node_off)
{
	h->slots = NULL;
	h->len = h->cap = 0;
	h->nattached = 0;
	h->node_off = node_off;
}

void
flowq__kheap_init(struct flowq__kheap *h)
{
	flowq__kheap_init_at(h, 0);
}

void
flowq__kheap_fini(struct flowq__kheap *h, const struct flowq_allocator *a)
{
	flowq__free(a, h->slots, (size_t)h->cap * sizeof(*h->slots),
		    _Alignof(struct flowq__kheap_slot));
	flowq__kheap_init_at(h, h->node_off);
}

int
flowq__kheap_attach(struct flowq__kheap *h, const struct flowq_allocator *a)
{
	if (h->nattached == h->cap) {
		uint32_t cap = flowq__cap_grown(h->cap, KHEAP_MAX_CAP);
		int rc = cap ? kheap_resize(h, cap, a) : -ENOMEM;

		if (rc != 0)
			return rc;
	}
	h->nattached++;
	return 0;
}

void
flowq__kheap_detach(struct flowq__kheap *h, const struct flowq_allocator *a)
{
	assert(h->nattached > 0);
	if (h->nattached == 0)
		return;
	h->nattached--;
	if (flowq__cap_shrinks(h->nattached, h->cap, h->len))
		(void)kheap_resize(h, h->cap / 2, a); /* best effort */
}

void
flowq__kheap_push(struct flowq__kheap *h, struct flowq__kheap_node *n, int64_t key,
		  uint64_t seq)
{
	assert(h->len < h->cap && n->idx == FLOWQ__KHEAP_NONE);
	kheap_sift_up(h, h->len++, key, seq, flowq__kheap_member_of(h, n));
}

void
flowq__kheap_remove(struct flowq__kheap *h, struct flowq__kheap_node *n)
{
	uint32_t i = (uint32_t)n->idx;

	assert(n->idx < h->len && h->slots[i].member == flowq__kheap_member_of(h, n));
	n->idx = FLOWQ__KHEAP_NONE;
	if (i == --h->len)
		return;
	const struct flowq__kheap_slot *last = &h->slots[h->len];
	kheap_sift(h, i, last->key, last->seq, last->member);
}

void
flowq__kheap_update(struct flowq__kheap *h, struct flowq__kheap_node *n, int64_t key)
{
	uint32_t i = (uint32_t)n->idx;

	assert(n->idx < h->len && h->slots[i].member == flowq__kheap_member_of(h, n));
	kheap_sift(h, i, key, h->slots[i].seq, h->slots[i].member);
}

void
flowq__kheap_shift(struct flowq__kheap *h, int64_t d)
{
	for (uint32_t i = 0; i < h->len; i++)
		h->slots[i].key -= d;
}
