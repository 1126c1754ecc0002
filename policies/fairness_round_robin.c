/*
 * Fairness "round_robin": the backlogged flows of a band take turns, one
 * dispatched request per turn (GIE's round-robin-fairness-policy, reference
 * section 2.4).
 *
 * Algorithm: the band state is a ring of exactly the backlogged flows, a
 * FIFO in an array (flow_ring.h). pick() returns the front. When a request
 * of a flow is dispatched and the flow stays backlogged, the flow moves to
 * the back; when a flow empties it leaves the ring; a flow that becomes
 * backlogged joins at the back, behind every flow already waiting, unless
 * it still has its place: a flow emptied by an eviction (cancel, TTL,
 * displacement) before its turn came, that has a request again before the
 * front reaches its place, takes that place back, exactly as if the
 * eviction had left it backlogged (it loses the place only by being served
 * or by being passed while empty). Every op is O(1) (amortized: the front
 * passes the places of flows that left, once each); flow_attach and
 * flow_detach size the ring's array, amortized O(1).
 *
 * Guarantee: while k flows stay backlogged, each gets exactly one dispatch
 * in any k consecutive dispatches; more generally, two flows that are both
 * backlogged throughout an interval get dispatch counts in it that differ
 * by at most one (tests/unit/test_policy.c checks both). Taking a place
 * back cannot beat this: a flow has one place at a time, and is moved to
 * the back when served.
 *
 * Why an array: the ring used to be a list linked through the flows'
 * states, which costs one or two dependent cache misses per decision once
 * the flows outnumber the caches and the ring order is not their memory
 * order; the array knows the flows a few turns ahead and prefetches them
 * (flow_ring.h has the figures).
 *
 * Per-flow state: none of its own (flow_state_size 0). All a flow needs is
 * its place in the ring, which the ring keeps in the view's hot words
 * (policy.h), on the line the dispatcher touches anyway: a decision touches
 * one line of the flow. Memory: 8 to 32 bytes of ring slots per attached
 * flow.
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

#include <flowq/policy.h>

#include "builtin.h"
#include "flow_ring.h"

struct rr_band {
	/* Backlogged flows, the next to serve at the front. */
	struct flowq__fring ring;
};

static int
rr_band_init(void *band, const struct flowq_policy_env *env)
{
	struct rr_band *b = band;

	flowq__fring_init(&b->ring, env);
	return 0;
}

static void
rr_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct rr_band *b = band;

	flowq__fring_fini(&b->ring, env->alloc);
}

static int
rr_flow_attach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct rr_band *b = band;

	flowq__fring_member_init(f);
	return flowq__fring_attach(&b->ring, env->alloc);
}

static void
rr_flow_detach(void *band, struct flowq_policy_flow *f,
	       const struct flowq_policy_env *env)
{
	struct rr_band *b = band;

	/* A detached flow is empty, so update() has taken it out of the ring
	 * already; the ring forgets its place, and would take it out too if
	 * the engine got that wrong. */
	flowq__fring_detach(&b->ring, f, env->alloc);
}

static void
rr_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct rr_band *b = band;

	if (flowq__fring_owns(&b->ring, f)) {
		/* Its place is not passed yet: take it back (a no-op for a
		 * repeated call, which must not give the flow two places). */
		if (!flowq__fring_live(&b->ring, f))
			flowq__fring_revive(&b->ring, f);
		return;
	}
	flowq__fring_push(&b->ring, f);
}

static struct flowq_policy_flow *
rr_pick(void *band)
{
	struct rr_band *b = band;

	return flowq__fring_front(&b->ring);
}

static void
rr_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct rr_band *b = band;

	(void)served_bytes; /* turns, not bytes */
	if (flowq__fring_at_front(&b->ring, f)) {
		if (f->queued == 0)
			flowq__fring_pop_front(&b->ring);
		else if (dispatched)
			flowq__fring_rotate(&b->ring); /* its turn is used */
		return;
	}
	/* Not the front: it leaves if it emptied. Evicted (or a new head
	 * after a push) and still backlogged: it keeps its place. So does a
	 * flow served without being the front (pick() did not offer it: an
	 * engine bug), since moving it would give it a second slot. */
	if (f->queued == 0 && flowq__fring_live(&b->ring, f))
		flowq__fring_remove(&b->ring, f);
}

const struct flowq_fairness_ops flowq_fairness_round_robin = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "round_robin",
			.description = "backlogged flows take turns, one request each",
			.band_state_size = sizeof(struct rr_band),
			.flow_state_size = 0, /* the ring's position is a hot word */
		},
	.band_init = rr_band_init,
	.band_fini = rr_band_fini,
	.flow_attach = rr_flow_attach,
	.flow_detach = rr_flow_detach,
	.flow_backlogged = rr_flow_backlogged,
	.pick = rr_pick,
	.update = rr_update,
};
