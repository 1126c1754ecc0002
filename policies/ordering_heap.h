/*
 * Internal: what the heap orderings (ordering_edf.c, ordering_slo_deadline.c)
 * share. Each is a per-flow intrusive pairing heap (flowq/pheap.h) through
 * req->priv.pnode, ordered by (key, seq), where key is the ordering's key of
 * the request and seq counts the flow's pushes; the orderings differ only in
 * the key function, which each passes to oheap_push_batch() as a constant
 * (these helpers are static inline, so the call is inlined).
 *
 * Keys are computed once, at push, from fields fixed at submit, by the same
 * function the ordering's key op is: the heap and global_strict (which
 * compares the heads of a band's flows through the key op) see one key.
 *
 * FIFO among equal keys: seq is the flow's push count, and push_batch takes
 * the inbox batch in arrival order (oldest first), so requests with equal
 * keys leave in inbox order, the order fcfs would give them. A uint64_t at
 * one push per nanosecond wraps after 584 years: never.
 *
 * State: struct oheap_state, which the engine zeroes before the first
 * push_batch; a zeroed struct flowq_pheap is an empty heap and seq may start
 * anywhere, so no init op is needed. It owns no memory: the nodes are in the
 * requests.
 *
 * Cost per request: push O(1), pop and remove O(log n) amortized in the
 * flow's queue length n (flowq/pheap.h), peek O(1). Nothing allocates.
 * Pushes go in as batches (see oheap_push_batch()).
 */
#ifndef FLOWQ_POLICIES_ORDERING_HEAP_H
#define FLOWQ_POLICIES_ORDERING_HEAP_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/pheap.h>
#include <flowq/types.h>

/*
 * Keys of requests without a deadline: after every deadline, and in submit
 * order across the flows of a band (OHEAP_NONE + enqueue time). A single
 * INT64_MAX would tie every such head, and global_strict breaks ties by
 * flow (its attach order), so it would serve them flow by flow instead of
 * first come, first served. Deadlines at or past OHEAP_NONE (2^62 ns = 146
 * years of engine clock) count as OHEAP_NONE - 1; enqueue times are
 * clamped to [0, 2^62).
 */
#define OHEAP_NONE (INT64_C(1) << 62)

static inline int64_t
oheap_key(bool has_deadline, int64_t deadline, int64_t enqueue_ns)
{
	if (has_deadline)
		return deadline < OHEAP_NONE ? deadline : OHEAP_NONE - 1;
	int64_t t = enqueue_ns < 0 ? 0 : enqueue_ns < OHEAP_NONE ? enqueue_ns : OHEAP_NONE - 1;
	return OHEAP_NONE + t;
}

struct oheap_state {
	/* The flow's queued requests by (key, seq). */
	struct flowq_pheap heap;
	/* seq of the next pushed request. */
	uint64_t next_seq;
};

static inline struct flowq_req *
oheap_req_of(struct flowq_pheap_node *n)
{
	return n == NULL ? NULL
			 : (struct flowq_req *)((char *)n -
						offsetof(struct flowq_req, priv.pnode));
}

/* Requests melded into the heap as one tree (flowq_pheap_push_batch()): the
 * dispatcher's inbox chunk (DRAIN_CHUNK in core/dispatch.c). */
#define OHEAP_BATCH 64

/*
 * Batched rather than one push per request: a pairing heap's push only adds
 * a child to the root and the next pop pays for combining them, so a flow
 * that takes a burst while the gate is closed (its requests pile up with no
 * pop) would make the next pop O(burst); batches of OHEAP_BATCH make it
 * O(burst / OHEAP_BATCH). The total work is the same.
 */
static inline void
oheap_push_batch(void *fs, struct flowq_req *const *reqs, size_t n,
		 int64_t (*key)(const struct flowq_req *))
{
	struct oheap_state *st = fs;
	struct flowq_pheap_node *nodes[OHEAP_BATCH];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < OHEAP_BATCH ? n - done : OHEAP_BATCH;
		int rc;

		for (size_t i = 0; i < k; i++) {
			const struct flowq_req *r = reqs[done + i];
			struct flowq_pheap_node *pn = &reqs[done + i]->priv.pnode;

			/* The node shares storage with lnode, which submit
			 * set up, not with this node: initialize it here. */
			flowq_pheap_node_init(pn);
			pn->key = key(r);
			pn->seq = st->next_seq++;
			nodes[i] = pn;
		}
		rc = flowq_pheap_push_batch(&st->heap, nodes, k);
		/* Cannot fail: the nodes were just made non-members, and the
		 * engine never passes a request twice. */
		assert(rc == 0);
		(void)rc;
		done += k;
	}
}

static inline struct flowq_req *
oheap_peek(void *fs)
{
	return oheap_req_of(flowq_pheap_peek(&((struct oheap_state *)fs)->heap));
}

static inline struct flowq_req *
oheap_pop(void *fs)
{
	return oheap_req_of(flowq_pheap_pop(&((struct oheap_state *)fs)->heap));
}

static inline void
oheap_remove(void *fs, struct flowq_req *req)
{
	int rc = flowq_pheap_remove(&((struct oheap_state *)fs)->heap, &req->priv.pnode);

	/* policy.h: @req is a member of this flow's state. -EINVAL would be
	 * an engine bug (it changes nothing). */
	assert(rc == 0);
	(void)rc;
}

#endif /* FLOWQ_POLICIES_ORDERING_HEAP_H */
