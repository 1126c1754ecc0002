/*
 * Internal: a heap of a band's flows whose slot array always has room for
 * every *attached* flow, shared by the heap-based fairness policies
 * (global_strict, wfq, and drr's far rounds).
 *
 * Why: policy.h allows allocation only in band_init, band_fini, flow_attach
 * and flow_detach, never on the hot path (flow_backlogged, pick, update). The
 * flows in the heap are a subset of the attached ones, so keeping the
 * capacity >= the attached count means a push on the hot path can never find
 * the array full.
 *
 * Sizing: flowq__fheap_attach() doubles the array when it is full (first
 * size FLOWQ__FHEAP_MIN_CAP, amortized O(1) per attach; -ENOMEM leaves the
 * heap unchanged). flowq__fheap_detach() halves it when at most a quarter is
 * in use and the half is still >= FLOWQ__FHEAP_MIN_CAP, so a burst of flows
 * does not pin its peak memory for ever, and the 1/4 threshold leaves room to
 * grow again before the next reallocation (no thrash at a boundary). A failed
 * shrink keeps the larger array: detach cannot fail. The array is allocated
 * on the first attach, so a band that never sees a flow on a shard costs no
 * allocation there.
 *
 * Context: the band's dispatcher only, like every policy op (no atomics).
 */
#ifndef FLOWQ_POLICIES_FLOW_HEAP_H
#define FLOWQ_POLICIES_FLOW_HEAP_H

#include <stdint.h>

#include <flowq/alloc.h>
#include <flowq/heap.h>

/* Smallest slot array, in flows. */
#define FLOWQ__FHEAP_MIN_CAP 8u

struct flowq__fheap {
	/* Members by (key, seq); heap.cap >= nattached once any flow is
	 * attached. */
	struct flowq_heap heap;
	/* Flows attached to the band on this shard. */
	uint32_t nattached;
};

/** An empty heap with no array (band_init). */
void
flowq__fheap_init(struct flowq__fheap *h);

/** Free the array (band_fini); the heap is left as after init. */
void
flowq__fheap_fini(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Count one more attached flow, growing the array first if it is full.
 * @return 0; -ENOMEM (allocation failed, or FLOWQ_HEAP_MAX_CAP flows are
 *         attached): nothing changed.
 */
int
flowq__fheap_attach(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Count one attached flow less (the caller has removed it from the heap),
 * shrinking the array when it is at most a quarter used. Never fails; a
 * detach without an attach is ignored.
 */
void
flowq__fheap_detach(struct flowq__fheap *h, const struct flowq_allocator *a);

/**
 * Subtract @p d from every member's key. Order is preserved (every key moves
 * by the same amount), so nothing is sifted. O(members); for policies whose
 * keys are offsets from a base that must move now and then (see
 * fairness_wfq.c and fairness_drr.c). The caller guarantees that no key
 * underflows.
 */
void
flowq__fheap_shift(struct flowq__fheap *h, int64_t d);

#endif /* FLOWQ_POLICIES_FLOW_HEAP_H */
