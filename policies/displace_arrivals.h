/*
 * The arrival list shared by the "lowest_band_newest" and
 * "lowest_band_oldest" displacement policies: a band-shard's queued
 * requests in the order its dispatcher took them in, threaded through
 * req->priv.dnode. Every op is O(1) and none allocates. The two policies
 * differ only in the end they shed from.
 */
#ifndef FLOWQ_POLICIES_DISPLACE_ARRIVALS_H
#define FLOWQ_POLICIES_DISPLACE_ARRIVALS_H

#include <flowq/list.h>
#include <flowq/policy.h>
#include <flowq/types.h>

static inline int
arrivals_band_init(void *band, const struct flowq_policy_env *env)
{
	(void)env;
	flowq_list_init(band);
	return 0;
}

static inline void
arrivals_band_fini(void *band, const struct flowq_policy_env *env)
{
	(void)band;
	(void)env;
}

static inline void
arrivals_arrived(void *band, void *flow, struct flowq_req *req, uint32_t weight)
{
	(void)flow;
	(void)weight;
	flowq_list_push_back(band, &req->priv.dnode);
}

static inline void
arrivals_left(void *band, void *flow, struct flowq_req *req, uint32_t weight)
{
	(void)band;
	(void)flow;
	(void)weight;
	flowq_list_remove(&req->priv.dnode);
}

static inline struct flowq_req *
arrivals_req(struct flowq_list_node *n)
{
	return n ? flowq_list_entry(n, struct flowq_req, priv.dnode) : NULL;
}

#endif /* FLOWQ_POLICIES_DISPLACE_ARRIVALS_H */
