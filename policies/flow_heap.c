/*
 * Heaps of a band's flows with room for every attached flow; see
 * flow_heap.h. flowq__fheap is the capacity management factored out of
 * fairness_global_strict.c (unchanged behaviour) so that drr shares it;
 * flowq__kheap applies the same rule to a heap with the keys in the slots,
 * written after queues/heap.c (same arity, hole-based sifts, 64-bit index
 * math).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc_internal.h"
#include "flow_heap.h"

/* Move the heap to a new slot array of @cap entries (>= the heap's length).
 * @return 0 or -ENOMEM (then nothing changed). */
static int
fheap_resize(struct flowq__fheap *h, uint32_t cap, const struct flowq_allocator *a)
{
	const size_t align = _Alignof(struct flowq_heap_node *);
	struct flowq_heap_node **slots, **old;
	uint32_t old_cap = h->heap.cap;

#if SIZE_MAX / 8 < UINT32_MAX
	/* 32-bit size_t: cap * sizeof(pointer) could wrap. */
	if ((size_t)cap > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
#endif
	slots = flowq__alloc(a, (size_t)cap * sizeof(*slots), align);
	if (slots == NULL)
		return -ENOMEM;
	/* Cannot fail: slots is fresh, cap >= len (callers keep cap >=
	 * nattached >= len) and cap <= FLOWQ_HEAP_MAX_CAP. */
	if (flowq_heap_grow(&h->heap, slots, cap, &old) != 0) {
		flowq__free(a, slots, (size_t)cap * sizeof(*slots), align);
		return -ENOMEM;
	}
	flowq__free(a, old, (size_t)old_cap * sizeof(*old), align);
	return 0;
}

void
flowq__fheap_init(struct flowq__fheap *h)
{
	flowq_heap_init(&h->heap, NULL, 0);
	h->nattached = 0;
}

void
flowq__fheap_fini(struct flowq__fheap *h, const struct flowq_allocator *a)
{
	flowq__free(a, h->heap.slots, (size_t)h->heap.cap * sizeof(*h->heap.slots),
		    _Alignof(struct flowq_heap_node *));
	flowq__fheap_init(h);
}

int
flowq__fheap_attach(struct flowq__fheap *h, const struct flowq_allocator *a)
{
	if (h->nattached == h->heap.cap) {
		uint32_t cap = flowq__cap_grown(h->heap.cap, FLOWQ_HEAP_MAX_CAP);
		int rc = cap ? fheap_resize(h, cap, a) : -ENOMEM;

		if (rc != 0)
			return rc;
	}
	h->nattached++;
	return 0;
}

void
flowq__fheap_detach(struct flowq__fheap *h, const struct flowq_allocator *a)
{
	assert(h->nattached > 0);
	if (h->nattached == 0)
		return; /* a detach without attach: keep the count sane */
	h->nattached--;
	if (flowq__cap_shrinks(h->nattached, h->heap.cap, h->heap.len))
		(void)fheap_resize(h, h->heap.cap / 2, a); /* best effort */
}

void
flowq__fheap_shift(struct flowq__fheap *h, int64_t d)
{
	for (uint32_t i = 0; i < h->heap.len; i++)
		h->heap.slots[i]->key -= d;
}

/* ---- flowq__kheap ---- */

#define KHEAP_D 4u
/* The most slots: FLOWQ__KHEAP_NONE is reserved, and the array's bytes
 * must fit size_t. */
#define KHEAP_MAX_CAP (UINT32_MAX - 1u)

static inline bool
kheap_less(const struct flowq__kheap_slot *a, const struct flowq__kheap_slot *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void
kheap_place(struct flowq__kheap *h, uint32_t i, const struct flowq__kheap_slot *s)
{
	h->slots[i] = *s;
	s->node->idx = i;
}

static void
kheap_sift_up(struct flowq__kheap *h, uint32_t i, const struct flowq__kheap_slot *s)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / KHEAP_D;

		if (!kheap_less(s, &h->slots[parent]))
			break;
		kheap_place(h, i, &h->slots[parent]);
		i = parent;
	}
	kheap_place(h, i, s);
}

static void
kheap_sift_down(struct flowq__kheap *h, uint32_t i, const struct flowq__kheap_slot *s)
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
			if (kheap_less(&h->slots[c], &h->slots[best]))
				best = c;
		}
		if (!kheap_less(&h->slots[best], s))
			break;
		kheap_place(h, i, &h->slots[best]);
		i = best;
	}
	kheap_place(h, i, s);
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
flowq__kheap_init(struct flowq__kheap *h)
{
	h->slots = NULL;
	h->len = h->cap = 0;
	h->nattached = 0;
}

void
flowq__kheap_fini(struct flowq__kheap *h, const struct flowq_allocator *a)
{
	flowq__free(a, h->slots, (size_t)h->cap * sizeof(*h->slots),
		    _Alignof(struct flowq__kheap_slot));
	flowq__kheap_init(h);
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
	struct flowq__kheap_slot s = {.key = key, .seq = seq, .node = n};

	assert(h->len < h->cap && n->idx == FLOWQ__KHEAP_NONE);
	kheap_sift_up(h, h->len++, &s);
}

void
flowq__kheap_remove(struct flowq__kheap *h, struct flowq__kheap_node *n)
{
	uint32_t i = n->idx;
	struct flowq__kheap_slot last;

	assert(i < h->len && h->slots[i].node == n);
	n->idx = FLOWQ__KHEAP_NONE;
	last = h->slots[--h->len];
	if (i == h->len)
		return;
	if (i > 0 && kheap_less(&last, &h->slots[(i - 1) / KHEAP_D]))
		kheap_sift_up(h, i, &last);
	else
		kheap_sift_down(h, i, &last);
}

void
flowq__kheap_update(struct flowq__kheap *h, struct flowq__kheap_node *n, int64_t key)
{
	uint32_t i = n->idx;
	struct flowq__kheap_slot s;

	assert(i < h->len && h->slots[i].node == n);
	s = h->slots[i];
	s.key = key;
	if (i > 0 && kheap_less(&s, &h->slots[(i - 1) / KHEAP_D]))
		kheap_sift_up(h, i, &s);
	else
		kheap_sift_down(h, i, &s);
}

void
flowq__kheap_shift(struct flowq__kheap *h, int64_t d)
{
	for (uint32_t i = 0; i < h->len; i++)
		h->slots[i].key -= d;
}
