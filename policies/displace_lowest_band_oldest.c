/*
 * Displacement "lowest_band_oldest": in the band the engine chose (the
 * lowest band below the newcomer's with queued requests), shed the request
 * its dispatcher took in first. The oldest request is the one most likely
 * to miss its deadline or TTL anyway, and the client behind it has waited
 * longest for an answer it may no longer use (the right choice when
 * requests go stale, e.g. interactive traffic behind a saturated backend).
 * O(1) per request and per victim (displace_arrivals.h).
 */
#include <flowq/policy.h>

#include "builtin.h"
#include "displace_arrivals.h"

static struct flowq_req *
oldest_victim(void *band)
{
	struct flowq_list *l = band;
	return flowq_list_empty(l) ? NULL : arrivals_req(flowq_list_front(l));
}

const struct flowq_displacement_ops flowq_displacement_lowest_band_oldest = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "lowest_band_oldest",
			.description = "shed the oldest queued request of the lowest band "
				       "below the newcomer's",
			.band_state_size = sizeof(struct flowq_list),
			.flow_state_size = 0,
		},
	.band_init = arrivals_band_init,
	.band_fini = arrivals_band_fini,
	.arrived = arrivals_arrived,
	.left = arrivals_left,
	.victim = oldest_victim,
};
