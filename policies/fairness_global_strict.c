/*
 * Fairness "global_strict": the backlogged flow whose head request has the
 * smallest ordering key goes next (GIE's global-strict-fairness-policy, its
 * default, reference section 2.3). With fcfs that is one FCFS queue across
 * all tenants of the band: global order, no fairness between flows.
 *
 * Algorithm: the band state is a 4-ary min-heap (queues/heap.h) of exactly
 * the backlogged flows, keyed by (f->head_key, f->seq) through a heap node in
 * each flow's state. pick() is the heap top, O(1); a flow joins on
 * flow_backlogged, its key follows its head on update(), and it leaves when
 * it empties, each O(log flows). GIE instead scans every flow of the band on
 * each pick (O(F), a read lock per peek).
 *
 * Tie-break: equal head keys go to the smaller f->seq (deterministic; GIE
 * keeps whichever flow its map iteration saw first).
 *
 * Memory: the heap's slot array is the only allocation. Its capacity is kept
 * >= the number of *attached* flows, so flow_backlogged can never find it
 * full (backlogged flows are a subset of attached ones) and the hot path
 * (backlogged, pick, update) never allocates. flow_attach doubles the array
 * through env->alloc when it is full (first size GS_MIN_CAP, amortized O(1)
 * per attach; -ENOMEM leaves the band unchanged). flow_detach halves it when
 * at most a quarter is in use and the half is still >= GS_MIN_CAP, so a burst
 * of flows does not pin its peak memory for ever, and the 1/4 threshold
 * leaves room to grow again before the next reallocation (no thrash at a
 * boundary). A failed shrink keeps the larger array: detach cannot fail.
 * The array is allocated on the first attach, so a band that never sees a
 * flow on a shard costs no allocation there.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/heap.h>
#include <flowq/policy.h>

#include "alloc_internal.h"
#include "builtin.h"

/* Smallest slot array, in flows. */
#define GS_MIN_CAP 8u

struct gs_band {
	/* Backlogged flows by (head_key, seq); heap.cap >= nattached. */
	struct flowq_heap heap;
	/* Flows attached to this band on this shard. */
	uint32_t nattached;
};

struct gs_flow {
	/* Member of gs_band.heap while the flow is backlogged. */
	struct flowq_heap_node hn;
	/* The engine's view of the flow, returned by pick(). */
	struct flowq_policy_flow *flow;
};

static inline struct gs_flow *
gs_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
}

/* Move the heap to a new slot array of @cap entries (>= the heap's length).
 * @return 0 or -ENOMEM (then nothing changed). */
static int
gs_resize(struct gs_band *b, uint32_t cap, const struct flowq_allocator *a)
{
	const size_t align = _Alignof(struct flowq_heap_node *);
	struct flowq_heap_node **slots, **old;
	uint32_t old_cap = b->heap.cap;

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
	if (flowq_heap_grow(&b->heap, slots, cap, &old) != 0) {
		flowq__free(a, slots, (size_t)cap * sizeof(*slots), align);
		return -ENOMEM;
	}
	flowq__free(a, old, (size_t)old_cap * sizeof(*old), align);
	return 0;
}

static int
gs_band_init(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	(void)env;
	flowq_heap_init(&b->heap, NULL, 0);
	b->nattached = 0;
	return 0;
}

static void
gs_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	flowq__free(env->alloc, b->heap.slots,
		    (size_t)b->heap.cap * sizeof(*b->heap.slots),
		    _Alignof(struct flowq_heap_node *));
	flowq_heap_init(&b->heap, NULL, 0);
	b->nattached = 0;
}

static int
gs_flow_attach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);

	if (b->nattached == b->heap.cap) {
		uint32_t cap = b->heap.cap;
		int rc;

		if (cap >= FLOWQ_HEAP_MAX_CAP)
			return -ENOMEM;
		cap = cap < GS_MIN_CAP               ? GS_MIN_CAP
		      : cap > FLOWQ_HEAP_MAX_CAP / 2 ? FLOWQ_HEAP_MAX_CAP
						     : cap * 2;
		rc = gs_resize(b, cap, env->alloc);
		if (rc != 0)
			return rc;
	}
	b->nattached++;
	/* The state is zeroed, and idx 0 would read as "member of a heap". */
	flowq_heap_node_init(&gf->hn);
	gf->flow = f;
	return 0;
}

static void
gs_flow_detach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);

	/* A detached flow is empty, so update() has already removed it;
	 * removing it here too keeps a dangling node out of the heap even if
	 * the engine got that wrong. */
	if (flowq_heap_member(&gf->hn))
		(void)flowq_heap_remove(&b->heap, &gf->hn);
	assert(b->nattached > 0);
	if (b->nattached == 0)
		return; /* a detach without attach: keep the count sane */
	b->nattached--;
	if (b->nattached <= b->heap.cap / 4 && b->heap.cap / 2 >= GS_MIN_CAP)
		(void)gs_resize(b, b->heap.cap / 2, env->alloc); /* best effort */
}

static void
gs_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);
	int rc;

	if (flowq_heap_member(&gf->hn)) {
		/* Already offered (a repeated call): just follow the head. */
		(void)flowq_heap_update(&b->heap, &gf->hn, f->head_key);
		return;
	}
	gf->hn.key = f->head_key;
	gf->hn.seq = f->seq;
	rc = flowq_heap_push(&b->heap, &gf->hn);
	/* -ENOSPC is impossible for an attached flow: cap >= nattached. */
	assert(rc == 0);
	(void)rc;
}

static struct flowq_policy_flow *
gs_pick(void *band)
{
	struct gs_band *b = band;
	struct flowq_heap_node *top = flowq_heap_peek(&b->heap);

	if (top == NULL)
		return NULL;
	return ((struct gs_flow *)((char *)top - offsetof(struct gs_flow, hn)))->flow;
}

static void
gs_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);

	/* Only the head matters here, not who was served or how much. */
	(void)dispatched;
	(void)served_bytes;
	if (!flowq_heap_member(&gf->hn))
		return;
	if (f->queued == 0)
		(void)flowq_heap_remove(&b->heap, &gf->hn);
	else
		(void)flowq_heap_update(&b->heap, &gf->hn, f->head_key);
}

const struct flowq_fairness_ops flowq_fairness_global_strict = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "global_strict",
			.description = "the flow with the best head request goes next "
				       "(one global order per band, no fairness)",
			.band_state_size = sizeof(struct gs_band),
			.flow_state_size = sizeof(struct gs_flow),
		},
	.band_init = gs_band_init,
	.band_fini = gs_band_fini,
	.flow_attach = gs_flow_attach,
	.flow_detach = gs_flow_detach,
	.flow_backlogged = gs_flow_backlogged,
	.pick = gs_pick,
	.update = gs_update,
};
