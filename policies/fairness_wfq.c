/*
 * Fairness "wfq": weighted fair queuing by start-time fair queuing (SFQ:
 * P. Goyal, H. M. Vin and H. Cheng, "Start-time Fair Queuing: A Scheduling
 * Algorithm for Integrated Services Packet Switching Networks", SIGCOMM 1996
 * and IEEE/ACM ToN 1997), in bytes, with per-flow weights.
 *
 * SFQ, as used here. Each request gets a start tag S and a finish tag
 * F = S + cost / w (w: the flow's weight, cost: its bytes), in bytes per
 * unit of weight. A flow's next request starts where its previous one
 * finished, S = F_prev, or at the band's virtual time v if the flow was idle
 * and F_prev is behind it: S = max(v, F_prev). The backlogged flow whose
 * head has the smallest start tag goes next, and v is the start tag of the
 * request in service (here: of the last request dispatched). When the band
 * has nothing backlogged (the end of a busy period), v jumps to the largest
 * finish tag given out, as the paper prescribes, so that a flow returning
 * after idle time starts level with the others: idle time is never banked
 * as credit, and a flow cannot shed what it owes for its last request by
 * going idle (its start tag stays at its finish tag while that is ahead of
 * v). Start tags, not finish tags: a flow's tag does not depend on the size
 * of its head request, so an eviction, or an ordering that changes the head,
 * moves nothing (SFQ charges a request when it is served), and a
 * newcomer's tag is known without knowing the service rate, which a
 * dispatcher behind a capacity gate does not have.
 *
 * Bound (Goyal et al., Theorem 1): for any interval in which flows i and j
 * are both backlogged,
 *     | S_i / w_i - S_j / w_j |  <=  M_i / w_i + M_j / w_j  (+ 4, rounding)
 * where S is the bytes charged in the interval and M_x / w_x the largest
 * cost per unit of weight of a request of flow x, with the weight the flow
 * had when that request was charged (what a flow owes for its last request
 * outlives a change of its weight while it is idle). It does not grow with
 * the number of flows. The "+ 4" is this implementation's integer
 * arithmetic: tags count whole bytes per unit of weight, and the bytes a
 * request leaves below one unit (cost mod w) are carried to the flow's next
 * request rather than rounded away (dropped if the weight changed in
 * between), so a flow's charged units differ from its bytes / w by less
 * than one, and each request is charged less than one unit more than
 * cost / w. tests/conformance checks the bound after every decision for
 * every pair of continuously backlogged flows (it reaches 0.99 of it).
 *
 * Costs: cost(request) = max(bytes, 1), at most WFQ_COST_MAX = 2^60 bytes
 * (larger requests are charged 2^60). A zero-byte request costs one byte,
 * so a flow of them advances its tag every w requests and cannot hold the
 * band: no loop, no starvation.
 *
 * Data structure: a heap (flow_heap.h's flowq__kheap: 4-ary, the keys in
 * the slot array rather than in the flows, with room for every attached
 * flow) of the backlogged flows keyed by (start tag, f->seq);
 * f->seq makes ties deterministic. pick() is the top, O(1); update() re-keys
 * the served flow (sift down) or removes it, and flow_backlogged pushes it,
 * O(log F) each; an eviction or a new head that leaves the flow backlogged
 * is O(1). Allocation only in flow_attach/flow_detach (amortized O(1)).
 * Memory: 32 bytes per flow plus a 24-byte slot per attached flow.
 *
 * Where the per-flow state lives (as global_strict's): each slot's member
 * is the flow's view, the flow's slot index is the view's first hot word
 * and the carry with its weight the second (policy.h), so a decision on a
 * flow that stays backlogged touches the view's line and the slot array,
 * not a state line; the state (the idle start tag and the list link for
 * the rebase) is touched when a flow joins or leaves the heap. After each
 * update() the heap names the next pick and the one after it to the
 * engine's look-ahead (flowq__kheap_look_ahead(), as global_strict).
 *
 * Ranges, without wrap-around. Tags are int64_t byte counts kept in
 * [0, 2^62]: every live tag is within WFQ_COST_MAX of v (a backlogged
 * flow's start tag is the finish tag of a request that started at or below
 * v), and when v reaches WFQ_REBASE = 2^60 every tag is moved down by v
 * (flows whose tag is behind v are set to v, which max(v, tag) would have
 * done anyway), keeping v < 2^60 + 2^60 and every F < 2^62 between moves.
 * A move is O(attached flows) (a list of them is kept for it) and happens
 * once every 2^60 bytes per unit of weight of virtual time: about 4 months
 * of a single flow taking 100 GB/s, or a handful of exabyte requests.
 *
 * Weights: policy.h's f->weight (0 is read as 1), read when a request is
 * charged. Across shards: this policy shares one shard's dispatches; the
 * engine's cross-shard fairness (core/dispatch.c) equalizes *requests* per
 * unit of weight between shards, not bytes.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/list.h>
#include <flowq/policy.h>

#include "builtin.h"
#include "flow_heap.h"

/* Most bytes one request is charged. */
#define WFQ_COST_MAX (INT64_C(1) << 60)
/* v at which every tag is moved down (see the ranges above). */
#define WFQ_REBASE (INT64_C(1) << 60)

/* The view's hot words (policy.h): the flow's slot in wfq_band.heap, and
 * the carry (low 32 bits: bytes charged below one unit, < the weight) with
 * the weight it was computed with (high 32 bits; policy.h's weight is a
 * uint32_t, 0 read as 1): a flow's weight can change while it is idle, and
 * a carry of up to w - 1 bytes read with a smaller weight would charge up
 * to w - 1 units at once. */
#define WFQ_HOT_SLOT  0
#define WFQ_HOT_CARRY 1
FLOWQ_STATIC_ASSERT(WFQ_HOT_CARRY < FLOWQ_POLICY_HOT_WORDS, "two hot words");
FLOWQ_STATIC_ASSERT(sizeof(struct flowq__kheap_node) == sizeof(uint64_t),
		    "a heap node is one hot word");

struct wfq_band {
	/* Backlogged flows by (start tag of the head, f->seq), each slot's
	 * member the flow's view. */
	struct flowq__kheap heap;
	/* Every attached flow (for the rebase). */
	struct flowq_list flows;
	/* Virtual time: the start tag of the last request dispatched, or
	 * vmax after the band went idle. Never decreases except by a
	 * rebase. */
	int64_t v;
	/* The largest finish tag given out. */
	int64_t vmax;
	/* The engine's look-ahead (env->prefetch), or NULL. */
	void (*hint)(void *arg, const struct flowq_policy_flow *f, unsigned stage);
	void *hint_arg;
};

/* Off the hot path: read and written when the flow joins or leaves the
 * heap, and by the rebase. */
struct wfq_flow {
	/* While idle: where its next start tag begins at the earliest (the
	 * finish tag of its last dispatched request, or the start tag it had
	 * if it left without service). */
	int64_t tag;
	/* In wfq_band.flows while attached. */
	struct flowq_list_node link;
	/* The flow's view (the rebase walks the states). */
	struct flowq_policy_flow *flow;
};

static inline struct wfq_flow *
wfq_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
}

static inline struct flowq__kheap_node *
wfq_node(struct flowq_policy_flow *f)
{
	return (struct flowq__kheap_node *)&f->hot[WFQ_HOT_SLOT];
}

/* Move every tag down by v: O(attached flows). */
static void
wfq_rebase(struct wfq_band *b)
{
	const int64_t d = b->v;
	struct flowq_list_node *n;

	for (n = flowq_list_front(&b->flows); n != NULL; n = flowq_list_next(&b->flows, n)) {
		struct wfq_flow *wf = flowq_list_entry(n, struct wfq_flow, link);

		/* Idle flows behind v start at v anyway. */
		if (!flowq__kheap_member(wfq_node(wf->flow)))
			wf->tag = wf->tag > d ? wf->tag - d : 0;
	}
	/* Heap members are >= v: their order is kept. */
	flowq__kheap_shift(&b->heap, d);
	b->vmax -= d;
	b->v = 0;
}

/* v moved: end of a busy period, or a rebase due. */
static inline void
wfq_settle(struct wfq_band *b)
{
	if (b->heap.len == 0)
		b->v = b->vmax;
	if (b->v >= WFQ_REBASE)
		wfq_rebase(b);
}

static int
wfq_band_init(void *band, const struct flowq_policy_env *env)
{
	struct wfq_band *b = band;

	flowq__kheap_init_at(&b->heap, (uint32_t)offsetof(struct flowq_policy_flow,
							  hot[WFQ_HOT_SLOT]));
	flowq_list_init(&b->flows);
	b->v = 0;
	b->vmax = 0;
	b->hint = env->prefetch;
	b->hint_arg = env->prefetch_arg;
	return 0;
}

static void
wfq_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct wfq_band *b = band;

	flowq__kheap_fini(&b->heap, env->alloc);
	flowq_list_init(&b->flows);
}

static int
wfq_flow_attach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct wfq_band *b = band;
	struct wfq_flow *wf = wfq_flow_of(f);
	int rc = flowq__kheap_attach(&b->heap, env->alloc);

	if (rc != 0)
		return rc;
	/* Hot words are undefined until here; 0 would read as "in slot 0". */
	flowq__kheap_node_init(wfq_node(f));
	f->hot[WFQ_HOT_CARRY] = UINT64_C(1) << 32; /* no carry, weight 1 */
	wf->tag = 0; /* max(v, 0) = v: a new flow starts at v */
	wf->flow = f;
	flowq_list_push_back(&b->flows, &wf->link);
	return 0;
}

static void
wfq_flow_detach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct wfq_band *b = band;
	struct wfq_flow *wf = wfq_flow_of(f);

	/* A detached flow is empty, so update() has removed it already;
	 * removing it here too keeps a dangling node out of the heap even if
	 * the engine got that wrong. */
	if (flowq__kheap_member(wfq_node(f))) {
		flowq__kheap_remove(&b->heap, wfq_node(f));
		wfq_settle(b);
	}
	if (flowq_list_linked(&wf->link))
		flowq_list_remove(&wf->link);
	flowq__kheap_detach(&b->heap, env->alloc);
}

static void
wfq_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct wfq_band *b = band;

	/* A repeated call: the start tag does not depend on the head. */
	if (flowq__kheap_member(wfq_node(f)))
		return;
	/* S = max(v, F_prev): no banked credit. The heap has room for every
	 * attached flow (flow_heap.h), so the push cannot fail. */
	int64_t tag = wfq_flow_of(f)->tag;
	flowq__kheap_push(&b->heap, wfq_node(f), tag < b->v ? b->v : tag, f->seq);
}

static struct flowq_policy_flow *
wfq_pick(void *band)
{
	struct wfq_band *b = band;

	return flowq__kheap_top_member(&b->heap);
}

static void
wfq_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct wfq_band *b = band;
	struct flowq__kheap_node *kn = wfq_node(f);
	int64_t start;

	if (!flowq__kheap_member(kn))
		return;
	start = flowq__kheap_key(&b->heap, kn);
	if (dispatched) {
		uint64_t w = f->weight ? f->weight : 1;
		uint64_t cost = served_bytes == 0 ? 1
				: served_bytes > (uint64_t)WFQ_COST_MAX
					? (uint64_t)WFQ_COST_MAX
					: served_bytes;
		uint64_t hc = f->hot[WFQ_HOT_CARRY];
		/* New weight: drop the carry (less than one unit). */
		uint64_t carry = hc >> 32 == w ? (uint32_t)hc : 0;
		/* cost + carry < 2^60 + 2^32: no overflow. */
		uint64_t total = cost + carry;
		int64_t finish = start + (int64_t)(total / w);

		/* total % w < w <= UINT32_MAX: fits the low half. */
		f->hot[WFQ_HOT_CARRY] = w << 32 | total % w;
		/* v is the start tag of the request in service: this one's,
		 * the heap's minimum, so v never goes back. */
		b->v = start;
		if (finish > b->vmax)
			b->vmax = finish;
		if (f->queued == 0) {
			flowq__kheap_remove(&b->heap, kn);
			wfq_flow_of(f)->tag = finish;
		} else {
			/* The next request starts where this one finished. */
			flowq__kheap_update(&b->heap, kn, finish);
		}
		wfq_settle(b);
		flowq__kheap_look_ahead(&b->heap, b->hint, b->hint_arg);
		return;
	}
	/* Evicted, or a new head: SFQ's tags do not depend on the head, so
	 * only a flow that emptied changes anything. It keeps its start tag
	 * for when it returns. */
	if (f->queued == 0) {
		flowq__kheap_remove(&b->heap, kn);
		wfq_flow_of(f)->tag = start;
		wfq_settle(b);
	}
	flowq__kheap_look_ahead(&b->heap, b->hint, b->hint_arg);
}

const struct flowq_fairness_ops flowq_fairness_wfq = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "wfq",
			.description = "weighted fair queuing (start-time fair queuing): "
				       "weighted byte shares, O(log flows)",
			.band_state_size = sizeof(struct wfq_band),
			.flow_state_size = sizeof(struct wfq_flow),
			.flags = FLOWQ_POLICY_BYTE_FAIR,
		},
	.band_init = wfq_band_init,
	.band_fini = wfq_band_fini,
	.flow_attach = wfq_flow_attach,
	.flow_detach = wfq_flow_detach,
	.flow_backlogged = wfq_flow_backlogged,
	.pick = wfq_pick,
	.update = wfq_update,
};
