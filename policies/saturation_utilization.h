/*
 * Internal: the "utilization" saturation detector (policies/
 * saturation_utilization.c): host-fed per-endpoint metrics, GIE's roofline
 * score, staleness by time, and an estimate of the load dispatched since
 * each endpoint's last report. No engine dependency: the engine (core/
 * saturation.c, core/dispatch.c) passes the clock reading, the shard index
 * and a wake function in.
 *
 * Synchronization table ("-": may run concurrently; "X": the caller
 * serializes the pair; "1": per shard, one thread at a time, the shard's
 * dispatcher):
 *
 *                 create destroy report open/recheck count saturation dump
 *   create          X       X      X        X          X       X        X
 *   destroy         X       X      X        X          X       X        X
 *   report          X       X      -(*)     -          -       -        -
 *   open/recheck    X       X      -        1          -       -        -
 *   count           X       X      -        -          -       -        -
 *   saturation      X       X      -        -          -       -        -
 *
 * (*) reports of one endpoint exclude each other: a second concurrent one
 * returns -EBUSY and changes nothing.
 */
#ifndef FLOWQ_POLICIES_SATURATION_UTILIZATION_H
#define FLOWQ_POLICIES_SATURATION_UTILIZATION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <flowq/alloc.h>

struct flowq__util;

/** Called after an update lowered the estimate (wake gate waiters). */
typedef void
flowq__util_wake_fn(void *ctx);

struct flowq__util_config {
	/** Endpoints in the pool, 1..FLOWQ_MAX_ENDPOINTS. */
	unsigned endpoints;
	/** Dispatchers that call flowq__util_open() (one private cache each). */
	unsigned shards;
	/** Waiting requests at which an endpoint scores 1.0 (>= 1). */
	uint64_t queue_depth_threshold;
	/** KV-cache fraction at which an endpoint scores 1.0, (0, 1]. */
	double kv_cache_util_threshold;
	/** A report older than this (ns, > 0) no longer counts: score 1.0. */
	int64_t staleness_ns;
	/** Waiting requests one dispatch is assumed to add to an endpoint
	 * until that endpoint's next report; 0 = none (GIE's behaviour). */
	double dispatch_cost;
	flowq__util_wake_fn *wake;
	void *wake_ctx;
};

/**
 * Allocate a detector from @p a: every endpoint unreported (score 1.0).
 * @return 0; -ENOMEM. @p c is assumed valid (config.c checked it).
 * Context: any thread. May block (allocates).
 */
int
flowq__util_create(const struct flowq__util_config *c, const struct flowq_allocator *a,
		   struct flowq__util **r_util);

/** Free @p u (allocated from @p a). No other call may run or follow. */
void
flowq__util_destroy(struct flowq__util *u, const struct flowq_allocator *a);

/** Number of endpoints of @p u. */
unsigned
flowq__util_endpoints(const struct flowq__util *u);

/**
 * Publish endpoint @p ep's metrics taken at @p at_ns; @p now_ns is the
 * engine clock now (at_ns <= now_ns, checked by the caller, as are @p ep
 * and @p kv). Calls the wake function if the pool's estimate went down.
 * @return 0; -ESTALE @p at_ns is older than the endpoint's latest accepted
 * report, or older than the staleness threshold at @p now_ns (nothing
 * changes); -EBUSY another report of @p ep is running (nothing changes).
 * Context: any thread. Progress: wait-free for the endpoint (at most one
 * retry against a staleness sweep); lock-free for the pool sums. No
 * allocation.
 */
int
flowq__util_report(struct flowq__util *u, unsigned ep, uint64_t waiting, double kv,
		   int64_t at_ns, int64_t now_ns);

/**
 * Whether the estimate at @p now_ns is below @p ceiling: the gate check of
 * shard @p shard's dispatcher. Applies staleness first when due (a sweep
 * over the endpoints, O(endpoints), when the earliest fresh report this
 * shard knows of has gone stale or a stale endpoint has reported again);
 * otherwise O(1): three loads and a few flops.
 * Context: shard @p shard's dispatcher. Progress: lock-free.
 */
bool
flowq__util_open(struct flowq__util *u, unsigned shard, int64_t now_ns, double ceiling);

/**
 * The estimate at @p now_ns as flowq__util_open() compares it (the same
 * cache and sweep). Context: shard @p shard's dispatcher.
 */
double
flowq__util_estimate(struct flowq__util *u, unsigned shard, int64_t now_ns);

/** When shard @p shard must check again at the latest if it is blocked:
 * the earliest moment a report it counts as fresh goes stale (INT64_MAX if
 * none). Context: shard @p shard's dispatcher. */
int64_t
flowq__util_recheck(const struct flowq__util *u, unsigned shard);

/** Count one dispatch, made at @p now_ns (an atomic add and a stamp in a
 * ring, on shared lines). Context: any thread. Progress: wait-free. */
void
flowq__util_count(struct flowq__util *u, int64_t now_ns);

/**
 * The estimate at @p now_ns computed from the endpoints themselves, without
 * any cache or sweep: O(endpoints), read-only. Context: any thread.
 */
double
flowq__util_saturation(const struct flowq__util *u, int64_t now_ns);

/**
 * Whether the pool sums equal what the endpoints hold (recomputed, O(N)):
 * true at every quiescent point (no report or gate check running). On a
 * mismatch, describes it on @p out (may be NULL). Tests and stress checks.
 */
bool
flowq__util_check_sums(const struct flowq__util *u, FILE *out);

/** Print the detector's state (racy: diagnostics). */
void
flowq__util_dump(const struct flowq__util *u, FILE *out);

#endif /* FLOWQ_POLICIES_SATURATION_UTILIZATION_H */
