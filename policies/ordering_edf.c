/*
 * Ordering "edf": earliest deadline first within a flow, where a request's
 * deadline is its expiry: its enqueue time plus its TTL, computed once at
 * submit (core/submit.c) into req->priv.expire, also the key of the
 * shard's TTL heap. If the caller also set req->deadline_ns and it comes earlier,
 * the expiry is that deadline: the request is evicted then, so it is due
 * then. A request with neither (TTL FLOWQ_TTL_NONE, the engine default
 * unless default_ttl_ns is set) has key 2^62 + its submit time
 * (oheap_key()): it sorts after every request that can expire, and such
 * requests leave in submit order, across flows too. Equal keys leave in
 * arrival order.
 *
 * Reading priv.expire is not re-deriving a deadline: submit wrote it before
 * [T4] and nothing changes it while the request is queued (the TTL heap
 * reads it, flowq_heap_update() is never used on it). It is copied into the
 * pairing-heap node at push, and edf_key() is the one function that both
 * computes that copy and answers the key op, so global_strict compares the
 * same key the heap orders by.
 *
 * With global_strict this is EDF across the band: the head with the
 * earliest expiry, over all flows, goes next. With round_robin (or another
 * fairness policy) it decides only which request of the chosen flow goes.
 *
 * Heads without an expiry are ordered by submit time (their keys differ),
 * so global_strict serves them first come, first served across flows, as
 * fcfs would, not flow by flow (which a single "no expiry" key would do:
 * global_strict breaks ties by flow).
 * A request whose head position comes too late is not reordered around:
 * the TTL heap evicts it at its expiry wherever it is in the flow's heap
 * (remove by handle).
 *
 * Algorithm and costs: policies/ordering_heap.h (per-flow intrusive pairing
 * heap through req->priv.pnode: push O(1), pop and remove O(log n)
 * amortized, no allocation).
 */
#include <stddef.h>
#include <stdint.h>

#include <flowq/policy.h>
#include <flowq/types.h>

#include "builtin.h"
#include "ordering_heap.h"

static int64_t
edf_key(const struct flowq_req *req)
{
	return oheap_key(req->priv.expire != INT64_MAX, req->priv.expire,
			 req->priv.enqueue_ns);
}

static void
edf_push_batch(void *fs, struct flowq_req *const *reqs, size_t n)
{
	oheap_push_batch(fs, reqs, n, edf_key);
}

const struct flowq_ordering_ops flowq_ordering_edf = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "edf",
			.description = "earliest expiry (enqueue time + TTL) first "
				       "per flow; no TTL last, FIFO among equal",
			.band_state_size = 0,
			.flow_state_size = sizeof(struct oheap_state),
		},
	.push_batch = edf_push_batch,
	.peek = oheap_peek,
	.pop = oheap_pop,
	.remove = oheap_remove,
	.key = edf_key,
};
