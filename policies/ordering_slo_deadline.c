/*
 * Ordering "slo_deadline": the request with the earliest caller-supplied
 * deadline goes first within a flow. The deadline is req->deadline_ns, an
 * absolute time on the engine clock that the caller sets before submit and
 * does not change until the completion (flowq/types.h); 0 means "no
 * deadline", which sorts after every deadline (key 2^62 + submit time). Equal
 * deadlines, and requests without one, leave in arrival order: a flow whose
 * requests carry no deadline is served FIFO, as with fcfs.
 *
 * The deadline also bounds the request's life: submit rejects a request
 * whose deadline has passed and the TTL heap evicts it when the deadline
 * (or its TTL, if earlier) passes while queued (EVICTED_TTL, cause
 * DEADLINE_PASSED); that eviction removes it from the middle of the flow's
 * heap by handle. The ordering itself reads no clock: the key is
 * slo_key(req), a function of deadline_ns alone, copied into the heap node
 * at push and returned by the key op, so the heap and global_strict (which
 * compares the heads of a band's flows by the key op) see one key.
 *
 * Unlike edf, the TTL does not take part in the order: a request with a
 * short TTL and no deadline still sorts last. Use edf when the TTL is the
 * deadline.
 *
 * Requests without a deadline have key 2^62 + their submit time
 * (oheap_key()): after every deadline, and first come, first served across
 * the flows of a band under global_strict (a single "no deadline" key
 * would tie them, and global_strict breaks ties by flow).
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
slo_key(const struct flowq_req *req)
{
	return oheap_key(req->deadline_ns != 0, req->deadline_ns, req->priv.enqueue_ns);
}

static void
slo_push_batch(void *fs, struct flowq_req *const *reqs, size_t n)
{
	oheap_push_batch(fs, reqs, n, slo_key);
}

const struct flowq_ordering_ops flowq_ordering_slo_deadline = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "slo_deadline",
			.description = "earliest caller deadline (deadline_ns) first "
				       "per flow; none last, FIFO among equal",
			.band_state_size = 0,
			.flow_state_size = sizeof(struct oheap_state),
		},
	.push_batch = slo_push_batch,
	.peek = oheap_peek,
	.pop = oheap_pop,
	.remove = oheap_remove,
	.key = slo_key,
};
