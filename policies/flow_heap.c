/*
 * Heap of a band's flows with room for every attached flow; see
 * flow_heap.h. Factored out of fairness_global_strict.c (unchanged
 * behaviour) so that wfq and drr share it.
 */
#include <assert.h>
#include <errno.h>
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
		uint32_t cap = h->heap.cap;
		int rc;

		if (cap >= FLOWQ_HEAP_MAX_CAP)
			return -ENOMEM;
		cap = cap < FLOWQ__FHEAP_MIN_CAP       ? FLOWQ__FHEAP_MIN_CAP
		      : cap > FLOWQ_HEAP_MAX_CAP / 2 ? FLOWQ_HEAP_MAX_CAP
						     : cap * 2;
		rc = fheap_resize(h, cap, a);
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
	if (h->nattached <= h->heap.cap / 4 && h->heap.cap / 2 >= FLOWQ__FHEAP_MIN_CAP &&
	    h->heap.len <= h->heap.cap / 2)
		(void)fheap_resize(h, h->heap.cap / 2, a); /* best effort */
}

void
flowq__fheap_shift(struct flowq__fheap *h, int64_t d)
{
	for (uint32_t i = 0; i < h->heap.len; i++)
		h->heap.slots[i]->key -= d;
}
