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
 * Memory: the heap's slot array is the only allocation, sized by
 * policies/flow_heap.c to hold every *attached* flow, so flow_backlogged
 * can never find it full (backlogged flows are a subset of attached ones)
 * and the hot path (backlogged, pick, update) never allocates; it grows in
 * flow_attach and shrinks in flow_detach (see flow_heap.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/heap.h>
#include <flowq/policy.h>

#include "builtin.h"
#include "flow_heap.h"

struct gs_band {
	/* Backlogged flows by (head_key, seq); room for every attached flow. */
	struct flowq__fheap fh;
};

struct gs_flow {
	/* Member of gs_band.fh.heap while the flow is backlogged. */
	struct flowq_heap_node hn;
	/* The engine's view of the flow, returned by pick(). */
	struct flowq_policy_flow *flow;
};

static inline struct gs_flow *
gs_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
}

static int
gs_band_init(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	(void)env;
	flowq__fheap_init(&b->fh);
	return 0;
}

static void
gs_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	flowq__fheap_fini(&b->fh, env->alloc);
}

static int
gs_flow_attach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);
	int rc = flowq__fheap_attach(&b->fh, env->alloc);

	if (rc != 0)
		return rc;
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
		(void)flowq_heap_remove(&b->fh.heap, &gf->hn);
	flowq__fheap_detach(&b->fh, env->alloc);
}

static void
gs_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct gs_band *b = band;
	struct gs_flow *gf = gs_flow_of(f);
	int rc;

	if (flowq_heap_member(&gf->hn)) {
		/* Already offered (a repeated call): just follow the head. */
		(void)flowq_heap_update(&b->fh.heap, &gf->hn, f->head_key);
		return;
	}
	gf->hn.key = f->head_key;
	gf->hn.seq = f->seq;
	rc = flowq_heap_push(&b->fh.heap, &gf->hn);
	/* -ENOSPC is impossible for an attached flow: cap >= nattached. */
	assert(rc == 0);
	(void)rc;
}

static struct flowq_policy_flow *
gs_pick(void *band)
{
	struct gs_band *b = band;
	struct flowq_heap_node *top = flowq_heap_peek(&b->fh.heap);

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
		(void)flowq_heap_remove(&b->fh.heap, &gf->hn);
	else
		(void)flowq_heap_update(&b->fh.heap, &gf->hn, f->head_key);
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
