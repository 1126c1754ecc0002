/*
 * Displacement "lowest_band_newest": in the band the engine chose (the
 * lowest band below the newcomer's with queued requests), shed the request
 * its dispatcher took in last. The newest request has spent the least time
 * waiting, so shedding it wastes the least queueing already done, and it
 * leaves the band's oldest requests, closest to dispatch, in place.
 * "Newest" is by intake on the victim's shard (the order the dispatcher
 * drained the flows' inboxes), which follows submit order up to the drain
 * batching; requests still in an inbox are not candidates yet.
 * O(1) per request and per victim (displace_arrivals.h).
 */
#include <flowq/policy.h>

#include "builtin.h"
#include "displace_arrivals.h"

static struct flowq_req *
newest_victim(void *band)
{
	struct flowq_list *l = band;
	return flowq_list_empty(l) ? NULL : arrivals_req(flowq_list_back(l));
}

const struct flowq_displacement_ops flowq_displacement_lowest_band_newest = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "lowest_band_newest",
			.description = "shed the newest queued request of the lowest band "
				       "below the newcomer's",
			.band_state_size = sizeof(struct flowq_list),
			.flow_state_size = 0,
		},
	.band_init = arrivals_band_init,
	.band_fini = arrivals_band_fini,
	.arrived = arrivals_arrived,
	.left = arrivals_left,
	.victim = newest_victim,
};
