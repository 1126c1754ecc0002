/*
 * Fairness "round_robin": the backlogged flows of a band take turns, one
 * dispatched request per turn (GIE's round-robin-fairness-policy, reference
 * section 2.4).
 *
 * Algorithm: the band state is a ring (struct flowq_list) of exactly the
 * backlogged flows, through a link in each flow's state. pick() returns the
 * front. When a request of a flow is dispatched and the flow stays
 * backlogged, the flow moves to the back; when a flow empties it leaves the
 * ring; a flow that becomes backlogged joins at the back, behind every flow
 * already waiting. Every op is O(1).
 *
 * Guarantee: while k flows stay backlogged, each gets exactly one dispatch
 * in any k consecutive dispatches; more generally, two flows that are both
 * backlogged throughout an interval get dispatch counts in it that differ
 * by at most one (tests/unit/test_policy.c checks both).
 *
 * Differences from GIE, on purpose: GIE sorts every flow key of the band and
 * scans them on each pick (O(F log F), empty flows included); here empty
 * flows are not in the ring at all. GIE's order is by flow id, ours by the
 * time a flow (re)joined the ring, which is the same rotation up to a
 * relabelling. An eviction (cancel, TTL) that leaves the flow backlogged
 * does not cost it its turn: it keeps its place.
 *
 * Limits: the unit of fairness is a turn, as in GIE: request size and the
 * flow's weight are ignored (byte-fair and weighted policies are drr and
 * wfq, DESIGN.md).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/list.h>
#include <flowq/policy.h>

#include "builtin.h"

struct rr_band {
	/* Backlogged flows, the next to serve at the front. */
	struct flowq_list ring;
};

struct rr_flow {
	/* Link in rr_band.ring; unlinked while the flow is not backlogged. */
	struct flowq_list_node link;
	/* The engine's view of the flow, returned by pick(). */
	struct flowq_policy_flow *flow;
};

static inline struct rr_flow *
rr_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
}

static int
rr_band_init(void *band, const struct flowq_policy_env *env)
{
	struct rr_band *b = band;

	(void)env;
	flowq_list_init(&b->ring);
	return 0;
}

static void
rr_band_fini(void *band, const struct flowq_policy_env *env)
{
	/* The ring is intrusive: nothing was allocated. */
	(void)band;
	(void)env;
}

static int
rr_flow_attach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct rr_flow *rf = rr_flow_of(f);

	(void)band;
	(void)env;
	flowq_list_node_init(&rf->link);
	rf->flow = f;
	return 0;
}

static void
rr_flow_detach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct rr_flow *rf = rr_flow_of(f);

	(void)band;
	(void)env;
	/* A detached flow is empty, so update() has already unlinked it;
	 * unlinking here too keeps a dangling link out of the ring even if
	 * the engine got that wrong. */
	if (flowq_list_linked(&rf->link))
		flowq_list_remove(&rf->link);
}

static void
rr_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct rr_band *b = band;
	struct rr_flow *rf = rr_flow_of(f);

	/* Idempotent: a second call must not link the node twice, which
	 * would corrupt the ring. */
	if (!flowq_list_linked(&rf->link))
		flowq_list_push_back(&b->ring, &rf->link);
}

static struct flowq_policy_flow *
rr_pick(void *band)
{
	struct rr_band *b = band;
	struct flowq_list_node *n = flowq_list_front(&b->ring);

	return n == NULL ? NULL : flowq_list_entry(n, struct rr_flow, link)->flow;
}

static void
rr_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct rr_band *b = band;
	struct rr_flow *rf = rr_flow_of(f);

	(void)served_bytes; /* turns, not bytes */
	if (!flowq_list_linked(&rf->link))
		return;
	if (f->queued == 0) {
		flowq_list_remove(&rf->link);
	} else if (dispatched) {
		/* Its turn is used: to the back of the ring. */
		flowq_list_remove(&rf->link);
		flowq_list_push_back(&b->ring, &rf->link);
	}
	/* Evicted (or a new head after a push) and still backlogged: the
	 * flow keeps its place. */
}

const struct flowq_fairness_ops flowq_fairness_round_robin = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "round_robin",
			.description = "backlogged flows take turns, one request each",
			.band_state_size = sizeof(struct rr_band),
			.flow_state_size = sizeof(struct rr_flow),
		},
	.band_init = rr_band_init,
	.band_fini = rr_band_fini,
	.flow_attach = rr_flow_attach,
	.flow_detach = rr_flow_detach,
	.flow_backlogged = rr_flow_backlogged,
	.pick = rr_pick,
	.update = rr_update,
};
