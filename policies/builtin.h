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

#endif /* FLOWQ_POLICIES_BUILTIN_H */
