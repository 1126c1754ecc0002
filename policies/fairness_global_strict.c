/*
 * Fairness "global_strict": the backlogged flow whose head request has the
 * smallest ordering key goes next (GIE's global-strict-fairness-policy, its
 * default, reference section 2.3). With fcfs that is one FCFS queue across
 * all tenants of the band: global order, no fairness between flows.
 *
 * Algorithm: the band state is a 4-ary min-heap (flow_heap.h's
 * flowq__kheap) of exactly the backlogged flows, keyed by (f->head_key,
 * f->seq). The keys and each flow's view sit in the heap's slot array, and
 * each flow's slot index in a hot word of its view, so the policy has no
 * per-flow state: a sift compares adjacent slots instead of reading four
 * flows' nodes per level, and writes only the lines of the views it moves.
 * pick() is the top, O(1); a flow joins on flow_backlogged, its key
 * follows its head on update(), and it leaves when it empties, each
 * O(log flows). GIE instead scans every flow of the band on each pick
 * (O(F), a read lock per peek).
 *
 * Look-ahead: after each update() the array names the next pick (the top)
 * and, nearly always, the one after it (the second smallest: the top's
 * next head comes later than it with many flows backlogged). The engine
 * gets the top for stage 1 (its head request) and the second for stage 0
 * (its lines), so with cold flows a decision finds the flow and its head
 * request on their way (flowq__kheap_look_ahead(); only with at least
 * FLOWQ__KHEAP_AHEAD_MIN flows backlogged).
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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/policy.h>

#include "builtin.h"
#include "flow_heap.h"

/* The flow's slot in gs_band.heap: the view's first hot word (policy.h),
 * so that a decision writes only the lines of the views it moves. */
#define GS_HOT_SLOT 0
FLOWQ_STATIC_ASSERT(GS_HOT_SLOT < FLOWQ_POLICY_HOT_WORDS, "the slot index is a hot word");
FLOWQ_STATIC_ASSERT(sizeof(struct flowq__kheap_node) == sizeof(uint64_t),
		    "a heap node is one hot word");

struct gs_band {
	/* Backlogged flows by (head_key, seq), each slot's member the flow's
	 * view; room for every attached flow. */
	struct flowq__kheap heap;
	/* The engine's look-ahead (env->prefetch), or NULL. */
	void (*hint)(void *arg, const struct flowq_policy_flow *f, unsigned stage);
	void *hint_arg;
};

static inline struct flowq__kheap_node *
gs_node(struct flowq_policy_flow *f)
{
	return (struct flowq__kheap_node *)&f->hot[GS_HOT_SLOT];
}

static int
gs_band_init(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	flowq__kheap_init_at(
		&b->heap, (uint32_t)offsetof(struct flowq_policy_flow, hot[GS_HOT_SLOT]));
	b->hint = env->prefetch;
	b->hint_arg = env->prefetch_arg;
	return 0;
}

static void
gs_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	flowq__kheap_fini(&b->heap, env->alloc);
}

static int
gs_flow_attach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct gs_band *b = band;
	int rc = flowq__kheap_attach(&b->heap, env->alloc);

	if (rc != 0)
		return rc;
	/* Hot words are undefined until here; 0 would read as "in slot 0". */
	flowq__kheap_node_init(gs_node(f));
	return 0;
}

static void
gs_flow_detach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct gs_band *b = band;

	/* A detached flow is empty, so update() has already removed it;
	 * removing it here too keeps a dangling slot out of the heap even if
	 * the engine got that wrong. */
	if (flowq__kheap_member(gs_node(f)))
		flowq__kheap_remove(&b->heap, gs_node(f));
	flowq__kheap_detach(&b->heap, env->alloc);
}

static void
gs_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct gs_band *b = band;

	if (flowq__kheap_member(gs_node(f))) {
		/* Already offered (a repeated call): just follow the head. */
		flowq__kheap_update(&b->heap, gs_node(f), f->head_key);
		return;
	}
	/* Never full for an attached flow: cap >= nattached. */
	flowq__kheap_push(&b->heap, gs_node(f), f->head_key, f->seq);
}

static struct flowq_policy_flow *
gs_pick(void *band)
{
	struct gs_band *b = band;

	return flowq__kheap_top_member(&b->heap);
}

static void
gs_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct gs_band *b = band;

	/* Only the head matters here, not who was served or how much. */
	(void)dispatched;
	(void)served_bytes;
	if (!flowq__kheap_member(gs_node(f)))
		return;
	if (f->queued == 0)
		flowq__kheap_remove(&b->heap, gs_node(f));
	else
		flowq__kheap_update(&b->heap, gs_node(f), f->head_key);
	flowq__kheap_look_ahead(&b->heap, b->hint, b->hint_arg);
}

const struct flowq_fairness_ops flowq_fairness_global_strict = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "global_strict",
			.description = "the flow with the best head request goes next "
				       "(one global order per band, no fairness)",
			.band_state_size = sizeof(struct gs_band),
			.flow_state_size = 0,
		},
	.band_init = gs_band_init,
	.band_fini = gs_band_fini,
	.flow_attach = gs_flow_attach,
	.flow_detach = gs_flow_detach,
	.flow_backlogged = gs_flow_backlogged,
	.pick = gs_pick,
	.update = gs_update,
};
