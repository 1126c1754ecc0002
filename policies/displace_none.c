/*
 * Displacement "none" (the default): nothing is ever shed; a submit that
 * finds the global limit full is rejected (REJECTED_CAPACITY,
 * CAPACITY_GLOBAL), as in GIE. An engine configured with it keeps no
 * displacement state and never calls these ops; they exist so that "none"
 * is a policy like the others (listed, findable, conformance-tested).
 */
#include <stddef.h>

#include <flowq/policy.h>

#include "builtin.h"

static int
none_band_init(void *band, const struct flowq_policy_env *env)
{
	(void)band;
	(void)env;
	return 0;
}

static void
none_band_fini(void *band, const struct flowq_policy_env *env)
{
	(void)band;
	(void)env;
}

static void
none_request(void *band, void *flow, struct flowq_req *req, uint32_t weight)
{
	(void)band;
	(void)flow;
	(void)req;
	(void)weight;
}

static struct flowq_req *
none_victim(void *band)
{
	(void)band;
	return NULL;
}

const struct flowq_displacement_ops flowq_displacement_none = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "none",
			.description = "shed nothing: reject the newcomer when the global "
				       "limit is full",
			.band_state_size = 0,
			.flow_state_size = 0,
		},
	.band_init = none_band_init,
	.band_fini = none_band_fini,
	.arrived = none_request,
	.left = none_request,
	.victim = none_victim,
};
