/*
 * The flow ring's cold paths: the array's sizing (attach, detach), the
 * compaction that drops orphans, and passing dead slots at the front. See
 * flow_ring.h for the representation and the capacity rule.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc_internal.h"
#include "flow_heap.h"
#include "flow_ring.h"

#define FRING_ALIGN _Alignof(uintptr_t)

void
flowq__fring_init(struct flowq__fring *r, const struct flowq_policy_env *env)
{
	r->hint = env ? env->prefetch : NULL;
	r->hint_arg = env ? env->prefetch_arg : NULL;
	r->slots = NULL;
	r->mask = 0;
	r->cap = 0;
	/* Position 0 is never used: a zeroed position owns nothing. */
	r->head = 1;
	r->tail = 1;
	r->mark = 1;
	r->nattached = 0;
	r->orphans = 0;
}

void
flowq__fring_fini(struct flowq__fring *r, const struct flowq_allocator *a)
{
	flowq__free(a, r->slots, (size_t)r->cap * sizeof(*r->slots), FRING_ALIGN);
	flowq__fring_init(r, NULL);
}

/* Move the ring to a new array of @p cap slots (a power of two >= the
 * ring's length); positions are kept. @return 0 or -ENOMEM (then nothing
 * changed). O(ring). */
static int
fring_resize(struct flowq__fring *r, uint32_t cap, const struct flowq_allocator *a)
{
	uintptr_t *slots;

	assert(cap != 0 && (cap & (cap - 1)) == 0 && r->tail - r->head <= cap);
#if SIZE_MAX / 8 < UINT32_MAX
	/* 32-bit size_t: cap * 8 could wrap. */
	if ((size_t)cap > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
#endif
	slots = flowq__alloc(a, (size_t)cap * sizeof(*slots), FRING_ALIGN);
	if (slots == NULL)
		return -ENOMEM;
	/* Dead slots everywhere: flowq__fring_prefetch() reads slots past
	 * the tail. */
	memset(slots, 0, (size_t)cap * sizeof(*slots));
	for (uint64_t p = r->head; p != r->tail; p++)
		slots[p & (cap - 1)] = r->slots[p & r->mask];
	flowq__free(a, r->slots, (size_t)r->cap * sizeof(*r->slots), FRING_ALIGN);
	r->slots = slots;
	r->cap = cap;
	r->mask = cap - 1;
	return 0;
}

/* Drop the orphans: the survivors (live slots and tombstones, in order)
 * move up to consecutive positions from head, and each one's position word
 * follows, and so does the mark. In place: the write position never passes
 * the read position, and both stay within cap of head, so no unread slot is
 * overwritten. O(ring). */
static void
fring_compact(struct flowq__fring *r)
{
	uint64_t w = r->head, mark = r->mark;

	for (uint64_t p = r->head; p != r->tail; p++) {
		uintptr_t s = r->slots[p & r->mask];

		if (p == r->mark)
			mark = w;
		if (s == 0)
			continue;
		*flowq__fring_pos(flowq__fring_view(s)) = w;
		r->slots[w & r->mask] = s;
		w++;
	}
	if (r->mark == r->tail)
		mark = w;
	r->tail = w;
	r->mark = mark; /* unchanged if it was before head */
	r->orphans = 0;
}

int
flowq__fring_attach(struct flowq__fring *r, const struct flowq_allocator *a)
{
	/* 64-bit: nattached + orphans <= cap <= 2^31. */
	uint64_t need = (uint64_t)r->nattached + r->orphans + 1;

	if (need > r->cap && (uint64_t)r->orphans * 2 > r->cap) {
		/* Afterwards nattached < cap / 2 and no orphans. */
		fring_compact(r);
		need = (uint64_t)r->nattached + 1;
	}
	if (need > r->cap) {
		uint32_t cap = flowq__cap_grown(r->cap, FLOWQ__FRING_MAX_CAP);
		int rc = cap ? fring_resize(r, cap, a) : -ENOMEM;

		/* need <= cap + 1 (the rule held), so one doubling is
		 * enough. */
		if (rc != 0)
			return rc;
	}
	assert(need <= r->cap);
	r->nattached++;
	return 0;
}

void
flowq__fring_detach(struct flowq__fring *r, struct flowq_policy_flow *f,
		    const struct flowq_allocator *a)
{
	assert(r->nattached > 0);
	if (r->nattached == 0)
		return; /* a detach without attach: keep the count sane */
	if (flowq__fring_owns(r, f)) {
		if (flowq__fring_at_front(r, f)) {
			/* Live (the front always is): the policy should have
			 * removed it; pass it. */
			flowq__fring_remove(r, f);
		} else {
			/* Its slot stays (an orphan) until the front passes
			 * it: nattached - 1 + orphans + 1 keeps the rule. */
			r->slots[flowq__fring_pos_of(f) & r->mask] = 0;
			r->orphans++;
		}
	}
	*flowq__fring_pos(f) = 0;
	r->nattached--;
	if (flowq__cap_shrinks(r->nattached + r->orphans, r->cap,
			       (uint32_t)(r->tail - r->head)))
		(void)fring_resize(r, r->cap / 2, a); /* best effort */
}

void
flowq__fring_skip(struct flowq__fring *r)
{
	while (r->head != r->tail) {
		uintptr_t s = r->slots[r->head & r->mask];

		if (!flowq__fring_dead(s))
			break;
		if (s == 0)
			r->orphans--;
		r->head++;
	}
	flowq__fring_prefetch(r);
}
