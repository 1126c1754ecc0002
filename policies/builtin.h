/*
 * Internal: the built-in policy objects. Each lives in its own file
 * (policies/<kind>_<name>.c) and is listed, once, in policies/registry.c's
 * built-in arrays (STYLE.md rule 7: explicit lists, no constructor
 * registration, so a static libflowq.a needs no --whole-archive). Not
 * installed: hosts reach the built-ins by name through flowq_fairness_find()
 * and flowq_ordering_find(). Tests may include this header (they link
 * flowq_static).
 */
#ifndef FLOWQ_POLICIES_BUILTIN_H
#define FLOWQ_POLICIES_BUILTIN_H

#include <flowq/policy.h>

/* "global_strict": the flow with the best head request goes next (GIE's
 * default, reference section 2.3); a 4-ary heap of backlogged flows. */
extern const struct flowq_fairness_ops flowq_fairness_global_strict;

/* "round_robin": backlogged flows take turns, one request per turn (GIE
 * section 2.4); a ring of backlogged flows. */
extern const struct flowq_fairness_ops flowq_fairness_round_robin;

/* "drr": deficit round robin in bytes with weights (Shreedhar and Varghese,
 * SIGCOMM 1995); a wheel of rounds, O(1) per decision. */
extern const struct flowq_fairness_ops flowq_fairness_drr;

/* "wfq": weighted fair queuing by start-time fair queuing (Goyal, Vin and
 * Cheng, SIGCOMM 1996); a heap of backlogged flows by start tag. */
extern const struct flowq_fairness_ops flowq_fairness_wfq;

/* "fcfs": requests of a flow leave in arrival order (GIE section 2.5); an
 * intrusive list through req->priv.lnode. */
extern const struct flowq_ordering_ops flowq_ordering_fcfs;

/* "edf": earliest expiry (enqueue time + TTL, or the caller's deadline if
 * earlier) first; no TTL last, FIFO among equal expiries. A per-flow
 * intrusive pairing heap through req->priv.pnode (ordering_heap.h). */
extern const struct flowq_ordering_ops flowq_ordering_edf;

/* "slo_deadline": earliest caller-supplied deadline (req->deadline_ns)
 * first; no deadline last, FIFO among equal deadlines. The same heap as
 * edf with another key. */
extern const struct flowq_ordering_ops flowq_ordering_slo_deadline;

/* "none": never sheds (the engine rejects the newcomer instead). */
extern const struct flowq_displacement_ops flowq_displacement_none;

/* "lowest_band_newest": sheds the request the band's dispatcher took in
 * last (the newest work loses the least time already spent waiting). */
extern const struct flowq_displacement_ops flowq_displacement_lowest_band_newest;

/* "lowest_band_oldest": sheds the request taken in first (the one most
 * likely to miss its deadline anyway). */
extern const struct flowq_displacement_ops flowq_displacement_lowest_band_oldest;

/* "most_over_share": sheds the newest request of the flow with the most
 * queued bytes per unit of weight (the tenant furthest above its share). */
extern const struct flowq_displacement_ops flowq_displacement_most_over_share;

#endif /* FLOWQ_POLICIES_BUILTIN_H */
