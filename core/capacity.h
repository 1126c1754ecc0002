/*
 * Internal: global capacity accounting (DESIGN.md, "Invariants across
 * shards" item 1; "Performance notes"). Not exported; tests link
 * flowq_static.
 *
 * A struct flowq__cap enforces one limit in requests and one in bytes, shared
 * by every producer thread and every dispatcher of an engine: capacity is
 * global, never partitioned per shard. A producer reserves one request plus
 * its bytes before it enqueues (flowq__cap_reserve); a dispatcher gives the
 * credit back once per dispatch batch (flowq__cap_release with the sums).
 *
 * Why not one shared counter: a counter incremented by every producer and
 * decremented by the dispatcher moves one cache line across cores per
 * request (~100 ns here), which cut a 35-50 Mops/s hand-off to ~8 Mops/s.
 * Here the free credit lives in a global pool plus one slot per CPU (one
 * cache line each, percpu_counter-style): a reserve takes credit from its
 * CPU's slot, both dimensions at once with one compare-and-swap on one
 * packed word (requests in the high bits, bytes in the low bits), and
 * touches the global line only once per chunk of requests;
 * a release returns credit to its CPU's slot and spills back to the global
 * pool once the slot holds more than two chunks. Near the limit the global
 * pool hands out exactly what is asked instead of chunks, and when it lacks
 * the credit a reserve steals all other slots' credit before it gives up,
 * so a limit is never exceeded and never under-used (I1-I3 below; the
 * algorithm and the proofs are in core/capacity.c).
 *
 * Invariants (proved in core/capacity.c, checked by tests/unit/test_capacity.c
 * and tests/stress/stress_capacity.c):
 *  I1. Never exceeded: at every instant, requests reserved and not released
 *      <= limit_req, and bytes reserved and not released <= limit_bytes.
 *  I2. Conservation at quiescence: global free + sum of slots + outstanding
 *      reservations == limit, exactly, in each limited dimension.
 *  I3. Exact at the limit: with no concurrent call, a reserve succeeds iff the
 *      total free credit (global + all slots) covers it, whichever slots hold
 *      that credit: filling to exactly the limit succeeds, one more fails.
 *
 * Synchronization table ("-": no outside synchronization needed between two
 * concurrent calls; "X": the caller must serialize the pair):
 *
 *                  reserve  release  in_use  init  fini
 *      reserve        -        -       -      X     X
 *      release        -        -       -      X     X
 *      in_use         -        -       -      X     X
 *      init           X        X       X      X     X
 *      fini           X        X       X      X     X
 *
 * Ordering: a release of credit happens-before the reserve that obtains that
 * credit (release/acquire through every counter the credit passed through).
 * So whatever a thread did before it released capacity (e.g. finishing the
 * request that held it, decrementing a usage statistic) is visible to the
 * thread whose reserve reuses that capacity. Nothing else is ordered.
 *
 * Progress: lock-free. Every operation is a bounded number of CAS loops on
 * counters; a CAS retries only when another thread changed that counter
 * between the load and the CAS, i.e. when another operation made progress.
 *
 * Limits: a slot packs both dimensions into one 64-bit word, so the two
 * limits must fit it together: bitlen(limit_req) + bitlen(limit_bytes) <= 64
 * (bitlen(x) = bits needed to write x; an unlimited dimension needs none).
 * For example 16777215 requests (24 bits) with 1 TiB - 1 bytes (40 bits),
 * or 2^32 - 1 requests with 4 GiB - 1 bytes. Either limit alone may reach
 * FLOWQ__CAP_LIMIT_MAX. flowq__cap_init() rejects other pairs with -EINVAL.
 */
#ifndef FLOWQ_CORE_CAPACITY_H
#define FLOWQ_CORE_CAPACITY_H

#include <stdatomic.h>
#include <stdint.h>

#include <flowq/alloc.h>
#include <flowq/common.h>

/** Dimensions: requests and bytes. Index into the per-dimension arrays. */
enum {
	FLOWQ__CAP_REQ = 0,
	FLOWQ__CAP_BYTES = 1,
	FLOWQ__CAP_NDIM = 2,
};

/**
 * Largest limit in either dimension: sums of credit never overflow. The pair
 * must also fit one slot word together (bitlen(limit_req) +
 * bitlen(limit_bytes) <= 64, see the top comment).
 */
#define FLOWQ__CAP_LIMIT_MAX (UINT64_C(1) << 62)
/** Most per-CPU slots (CPU ids beyond wrap around: slot = cpu % nslots). */
#define FLOWQ__CAP_MAX_SLOTS 4096u
/** Default chunk of credit a slot takes from the global pool, in requests. */
#define FLOWQ__CAP_CHUNK_REQ 64u
/** Default chunk, in bytes. */
#define FLOWQ__CAP_CHUNK_BYTES (64u * 1024u)

/**
 * One CPU's credit, both dimensions packed in one word so that one atomic
 * RMW takes or gives both: requests in bits [shift, 64), bytes in bits
 * [0, shift), where shift = flowq__cap.shift (fixed at init from the
 * limits). Written by the threads running on that CPU (reserve and release,
 * uncontended unless a thread migrates mid-operation) and, rarely, by a
 * thread that steals the slot's credit near the limit.
 */
struct flowq__cap_slot {
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t credit;
};

_Static_assert(sizeof(struct flowq__cap_slot) == FLOWQ_CACHE_LINE,
	       "a capacity slot is exactly one cache line");

/** Configuration of flowq__cap_init(). Zero-initialize, then set fields. */
struct flowq__cap_config {
	/** Limit in requests; 0 = unlimited (the dimension costs nothing). */
	uint64_t limit_req;
	/** Limit in bytes; 0 = unlimited (the dimension costs nothing). */
	uint64_t limit_bytes;
	/**
	 * Per-CPU slots; 0 = the number of configured CPUs
	 * (sysconf(_SC_NPROCESSORS_CONF)), capped at FLOWQ__CAP_MAX_SLOTS.
	 */
	unsigned nslots;
	/**
	 * Chunk of requests a slot takes from the global pool at a time;
	 * 0 = min(FLOWQ__CAP_CHUNK_REQ, limit_req / (4 * nslots)), at least 1,
	 * so that the slots can hold at most about half the limit.
	 */
	uint64_t chunk_req;
	/** Chunk of bytes, as chunk_req (default FLOWQ__CAP_CHUNK_BYTES). */
	uint64_t chunk_bytes;
};

/** Global capacity. Caller memory; align it to FLOWQ_CACHE_LINE. */
struct flowq__cap {
	/* Read-only after init: read by every call, never written. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) struct flowq__cap_slot *slots;
	unsigned nslots;
	/*
	 * Bit position of the request field in a slot word (= width of the
	 * byte field): 64 - bitlen(limit_req), at most 63.
	 */
	unsigned shift;
	uint64_t limit[FLOWQ__CAP_NDIM];
	/* 0 for an unlimited dimension. */
	uint64_t chunk[FLOWQ__CAP_NDIM];
	/*
	 * While the global pool holds less than this, a refill takes exactly
	 * what the reserve needs instead of a chunk (exact near the limit).
	 */
	uint64_t exact_below[FLOWQ__CAP_NDIM];
	/*
	 * Global free pool. Written by refills (a producer once per chunk),
	 * spills (a releaser once per chunk), large requests, steals.
	 */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t global[FLOWQ__CAP_NDIM];
	/* Read by fini only: cold, so it may share the global line. */
	const struct flowq_allocator *alloc;
};

_Static_assert(sizeof(struct flowq__cap) == 2 * FLOWQ_CACHE_LINE,
	       "flowq__cap is one read-only line and one global-pool line");

/**
 * Initialize @p cap with the limits of @p cfg: all credit in the global pool.
 *
 * @param cap    caller memory.
 * @param alloc  allocator for the slot array (complete: both callbacks).
 * @param cfg    limits, slot count and chunk sizes.
 * @return 0; -EINVAL if @p cap, @p alloc or @p cfg is NULL, @p alloc is
 *         incomplete, a limit exceeds FLOWQ__CAP_LIMIT_MAX, the two limits
 *         do not fit one slot word together (bitlen(limit_req) +
 *         bitlen(limit_bytes) > 64), nslots exceeds
 *         FLOWQ__CAP_MAX_SLOTS, a chunk exceeds its limit, or a chunk is set
 *         for an unlimited dimension; -ENOMEM if the slot array cannot be
 *         allocated (nothing is left allocated).
 *
 * Context: any thread; no other call on @p cap may run concurrently.
 * Ordering: none; publish @p cap to other threads with a release or a lock.
 * Progress: one allocation (may block in the allocator).
 */
int
flowq__cap_init(struct flowq__cap *cap, const struct flowq_allocator *alloc,
		const struct flowq__cap_config *cfg);

/**
 * Free @p cap's slot array. Outstanding reservations are forgotten.
 *
 * Context: any thread; no other call on @p cap may run concurrently.
 * Progress: one free.
 */
void
flowq__cap_fini(struct flowq__cap *cap);

/**
 * Reserve one request and @p bytes bytes, both or neither.
 *
 * Takes the credit from the calling CPU's slot, both dimensions in one CAS;
 * failing that, dimension by dimension: refills the slot from the
 * global pool a chunk at a time (exactly the amount needed near the limit,
 * or straight from the global pool when @p bytes exceeds a chunk); if the
 * global pool lacks it, steals every slot's credit into the global pool and
 * tries once more.
 *
 * @param cap    the capacity.
 * @param bytes  the request's size; 0 reserves no bytes.
 * @return 0 on success; -ENOSPC if the free credit could not cover the
 *         request (then nothing is reserved: a request reserved before the
 *         bytes failed has been given back). With no concurrent call this is
 *         exact (I3); under concurrency -ENOSPC may also be returned while
 *         other threads move the credit the caller needs (a refill, spill or
 *         steal holding it in flight, or a release landing in a slot the
 *         steal has already scanned). @p bytes larger than limit_bytes
 *         always fails with -ENOSPC, at once, touching nothing.
 *
 * Context: any thread; no RCU read lock needed; never blocks.
 * Ordering: acquire of the credit taken: every release that deposited it
 * happens-before this reserve (see the file comment).
 * Progress: lock-free (see the file comment); the common case is one CAS on
 * an uncontended line, whether one or both dimensions are limited.
 */
int
flowq__cap_reserve(struct flowq__cap *cap, uint64_t bytes);

/**
 * flowq__cap_reserve(), and *r_moved tells whether the call held credit
 * out of every counter for a moment, credit that it did not keep: a steal
 * that gathered slots' credit (all of it on failure, the surplus over the
 * request on success), a chunk taken from the global pool whose rest went
 * to the slot, or a request taken and given back when the bytes did not
 * fit. A concurrent reserve could have failed only because of such a
 * moment, so a caller that parks waiters when a reserve fails must wake
 * them after any call that reports it, successful or not (and need not
 * otherwise: a call that moved nothing could not have hidden credit).
 * (Before this was reported on success too, a successful steal's surplus
 * could hide the last free credit from a dispatcher that then slept until
 * the next release: capacity.c, H1.)
 */
int
flowq__cap_reserve_moved(struct flowq__cap *cap, uint64_t bytes, bool *r_moved);

/**
 * As flowq__cap_reserve(), but as if running on CPU slot @p slot (taken
 * modulo the slot count). Test hook: places credit in chosen slots
 * deterministically; flowq__cap_reserve() calls it with the current CPU
 * (the rseq area's cpu_id where glibc exposes it, else sched_getcpu()).
 */
int
flowq__cap_reserve_on(struct flowq__cap *cap, unsigned slot, uint64_t bytes);

/**
 * Give back @p nreq requests and @p bytes bytes, reserved earlier (by any
 * thread). Meant to be called once per dispatch batch with the batch's sums.
 *
 * The credit goes to the calling CPU's slot; a slot holding more than two
 * chunks spills down to one chunk into the global pool, so credit does not
 * pile up on the dispatcher's CPU. A release larger than a chunk goes
 * straight to the global pool.
 *
 * @param cap    the capacity.
 * @param nreq   requests to give back (0 is allowed).
 * @param bytes  bytes to give back (0 is allowed).
 *
 * Releasing more than is outstanding breaks I1 and is not detected (and,
 * the dimensions sharing a slot word, may corrupt the other dimension).
 *
 * Context: any thread; never blocks.
 * Ordering: release: everything the caller did before happens-before the
 * reserve that obtains this credit.
 * Progress: lock-free; one fetch-add on the slot (both dimensions), plus, on
 * a spill, one CAS loop on the slot and one fetch-add per spilled dimension;
 * a dimension released in more than a chunk is one fetch-add on the global
 * pool instead.
 */
void
flowq__cap_release(struct flowq__cap *cap, uint64_t nreq, uint64_t bytes);

/** As flowq__cap_release(), on slot @p slot (modulo the slot count). Test hook. */
void
flowq__cap_release_on(struct flowq__cap *cap, unsigned slot, uint64_t nreq,
		      uint64_t bytes);

/**
 * Requests and bytes reserved and not released: limit - free credit (0 for
 * an unlimited dimension).
 *
 * @param r_req    receives the requests in use; may be NULL.
 * @param r_bytes  receives the bytes in use; may be NULL.
 *
 * Context: any thread. Exact at quiescence; under concurrency approximate
 * (credit moving between the global pool and a slot while they are read can
 * be counted twice or not at all), clamped to [0, limit].
 * Ordering: relaxed loads only.
 * Progress: wait-free (reads nslots + 1 lines).
 */
void
flowq__cap_in_use(const struct flowq__cap *cap, uint64_t *r_req, uint64_t *r_bytes);

/**
 * Free credit held by slot @p slot (modulo the slot count), or by the global
 * pool if @p slot is FLOWQ__CAP_GLOBAL. Test and debugging hook; relaxed
 * loads, exact at quiescence.
 */
void
flowq__cap_credit(const struct flowq__cap *cap, unsigned slot, uint64_t *r_req,
		  uint64_t *r_bytes);

/**
 * The CPU the calling thread runs on (from the rseq area when glibc has
 * one, else sched_getcpu()), or 0 if unknown. May be stale by the time it
 * returns; callers use it only to pick an uncontended per-CPU line.
 */
unsigned
flowq__cpu_current(void);

/** The @p slot argument of flowq__cap_credit() that names the global pool. */
#define FLOWQ__CAP_GLOBAL (~0u)

#endif /* FLOWQ_CORE_CAPACITY_H */
