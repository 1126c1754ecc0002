/*
 * Displacement "most_over_share": in the band the engine chose (the lowest
 * band below the newcomer's with queued requests), shed from the flow that
 * is furthest above its fair share of the band's queue on this shard, and
 * from that flow its newest request. A flow's share of the queue is its
 * weight over the weights of the queued flows, so the flow furthest above
 * it (by ratio) is the one with the most queued bytes per unit of weight:
 * the tenant that flooded the band pays for the overload, not the tenants
 * that stayed within their share (the choice GIE's design notes ask for and
 * never built).
 *
 * State: per band-shard, a max-heap of the flows with queued requests,
 * keyed by queued bytes / weight (an intrusive pairing heap, flowq/pheap.h,
 * with the key negated); per flow, its heap node, its queued bytes and its
 * queued requests in intake order (a list through req->priv.dnode). An
 * arrival moves its flow up (decrease-key: O(1), the subtree melded with
 * the root); a departure moves it down (remove + push, O(log flows)
 * amortized); victim() is O(1) (the heap's top, the back of its list).
 * Nothing allocates. A flow leaves the heap when its last request leaves,
 * so the heap never refers to an empty (collectable) flow.
 *
 * Ties (equal bytes per weight): the flow whose state was re-keyed first
 * (seq), so the choice is deterministic. Weights are read at each call: a
 * weight changed with flowq_flow_set_weight() counts from the flow's next
 * arrival or departure.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/list.h>
#include <flowq/pheap.h>
#include <flowq/policy.h>
#include <flowq/types.h>

#include "builtin.h"

struct mos_band {
	struct flowq_pheap flows;
	uint64_t seq;
};

struct mos_flow {
	struct flowq_pheap_node node;
	uint64_t queued_bytes;
	/* Queued requests in intake order; a zeroed list is initialized on
	 * first use (the engine zeroes flow state, and an empty list's
	 * sentinel points to itself). */
	struct flowq_list reqs;
	uint64_t nreqs;
};

static int
mos_band_init(void *band, const struct flowq_policy_env *env)
{
	(void)env;
	flowq_pheap_init(&((struct mos_band *)band)->flows);
	return 0;
}

static void
mos_band_fini(void *band, const struct flowq_policy_env *env)
{
	(void)band;
	(void)env;
}

/* Smaller goes first in the heap: the most bytes per weight is the most
 * negative key. Bytes per weight never exceed 2^62 (FLOWQ_LIMIT_MAX per
 * request, and a flow's queue is bounded by memory long before the sum
 * could pass 2^63). */
static int64_t
mos_key(const struct mos_flow *f, uint32_t weight)
{
	uint64_t per = f->queued_bytes / (weight ? weight : 1);
	if (per > (UINT64_C(1) << 62))
		per = UINT64_C(1) << 62;
	/* Equal shares (e.g. flows of zero-byte requests) tie: seq decides. */
	return -(int64_t)per;
}

static void
mos_rekey(struct mos_band *b, struct mos_flow *f, uint32_t weight)
{
	bool member = flowq_pheap_member(&f->node);
	int64_t key = f->nreqs ? mos_key(f, weight) : 0;
	/* Moving up (an arrival: more bytes per weight): decrease-key, O(1).
	 * Equal: nothing moves. Down or out: remove (and push again). */
	if (member && f->nreqs && key <= f->node.key) {
		if (key < f->node.key)
			flowq_pheap_decrease(&b->flows, &f->node, key, f->node.seq);
		return;
	}
	if (member)
		flowq_pheap_remove(&b->flows, &f->node);
	if (f->nreqs == 0)
		return;
	f->node.key = key;
	f->node.seq = b->seq++;
	flowq_pheap_push(&b->flows, &f->node);
}

static void
mos_arrived(void *band, void *flow, struct flowq_req *req, uint32_t weight)
{
	struct mos_flow *f = flow;
	if (f->nreqs == 0 && f->reqs.head.next == NULL)
		flowq_list_init(&f->reqs);
	flowq_list_push_back(&f->reqs, &req->priv.dnode);
	f->nreqs++;
	f->queued_bytes += req->bytes;
	mos_rekey(band, f, weight);
}

static void
mos_left(void *band, void *flow, struct flowq_req *req, uint32_t weight)
{
	struct mos_flow *f = flow;
	flowq_list_remove(&req->priv.dnode);
	f->nreqs--;
	f->queued_bytes -= req->bytes;
	mos_rekey(band, f, weight);
}

static struct flowq_req *
mos_victim(void *band)
{
	struct mos_band *b = band;
	struct flowq_pheap_node *n = flowq_pheap_peek(&b->flows);
	if (!n)
		return NULL;
	struct mos_flow *f = (struct mos_flow *)((char *)n - offsetof(struct mos_flow, node));
	return flowq_list_entry(flowq_list_back(&f->reqs), struct flowq_req, priv.dnode);
}

const struct flowq_displacement_ops flowq_displacement_most_over_share = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "most_over_share",
			.description = "shed the newest request of the flow with the most "
				       "queued bytes per unit of weight in the lowest band "
				       "below the newcomer's",
			.band_state_size = sizeof(struct mos_band),
			.flow_state_size = sizeof(struct mos_flow),
		},
	.band_init = mos_band_init,
	.band_fini = mos_band_fini,
	.arrived = mos_arrived,
	.left = mos_left,
	.victim = mos_victim,
};
