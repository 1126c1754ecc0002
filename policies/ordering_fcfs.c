/*
 * Ordering "fcfs": first come, first served within a flow (GIE's
 * fcfs-ordering-policy, reference section 2.5).
 *
 * The flow state is a struct flowq_list threaded through req->priv.lnode:
 * push_batch appends, peek/pop take the front, remove unlinks by handle.
 * Every op is O(1) (push_batch is O(n) for n requests, one indirect call per
 * inbox batch) and none allocates.
 *
 * Order: the list is in inbox order, i.e. the order in which producers'
 * enqueues on the flow's MPSC inbox linearized. The key is the submit time,
 * req->priv.enqueue_ns, which each producer read from the clock *before* its
 * enqueue, so two producers racing on one flow can leave the list slightly
 * out of key order (a request with a larger key ahead of one with a smaller
 * key). This is GIE's "physical FIFO, approximate FCFS" on its ListQueue; a
 * heap would make it exact at O(log n) per request, which fcfs does not buy.
 * global_strict compares only the heads' keys, so it sees each flow's head
 * as the list has it.
 *
 * State initialization: policy.h gives an ordering no init op; the engine
 * zeroes the flow state before first use. A zeroed struct flowq_list is not
 * an empty list (an empty list's sentinel points to itself), so the list is
 * made empty lazily, on the first push_batch. Before that, peek and pop read
 * head.next == NULL, which fcfs_first() treats as empty.
 */
#include <stddef.h>

#include <flowq/list.h>
#include <flowq/policy.h>
#include <flowq/types.h>

#include "builtin.h"

/* The first request of @l or NULL, accepting a never-pushed (zeroed) list. */
static inline struct flowq_list_node *
fcfs_first(const struct flowq_list *l)
{
	if (l->head.next == NULL)
		return NULL;
	return flowq_list_front(l);
}

static inline struct flowq_req *
fcfs_req_of(struct flowq_list_node *n)
{
	return n == NULL ? NULL : flowq_list_entry(n, struct flowq_req, priv.lnode);
}

static void
fcfs_push_batch(void *fs, struct flowq_req *const *reqs, size_t n)
{
	struct flowq_list *l = fs;

	if (l->head.next == NULL)
		flowq_list_init(l);
	for (size_t i = 0; i < n; i++)
		flowq_list_push_back(l, &reqs[i]->priv.lnode);
}

static struct flowq_req *
fcfs_peek(void *fs)
{
	return fcfs_req_of(fcfs_first(fs));
}

static struct flowq_req *
fcfs_pop(void *fs)
{
	struct flowq_list_node *n = fcfs_first(fs);

	if (n != NULL)
		flowq_list_remove(n);
	return fcfs_req_of(n);
}

static void
fcfs_remove(void *fs, struct flowq_req *req)
{
	/* A member of a list is linked to its neighbours: unlinking needs
	 * neither the list nor a search. */
	(void)fs;
	flowq_list_remove(&req->priv.lnode);
}

static int64_t
fcfs_key(const struct flowq_req *req)
{
	return req->priv.enqueue_ns;
}

const struct flowq_ordering_ops flowq_ordering_fcfs = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "fcfs",
			.description =
				"first come, first served (arrival order per flow)",
			.band_state_size = 0,
			.flow_state_size = sizeof(struct flowq_list),
		},
	.push_batch = fcfs_push_batch,
	.peek = fcfs_peek,
	.pop = fcfs_pop,
	.remove = fcfs_remove,
	.key = fcfs_key,
};
