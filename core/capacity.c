/*
 * flowq__cap: global capacity accounting with per-CPU credit (see
 * core/capacity.h for the API).
 *
 * Algorithm
 * ---------
 * Free capacity is *credit*, kept in unsigned counters: one global pool
 * (cap->global[d]) and one slot per CPU (cap->slots[i].credit[d]), for each
 * limited dimension d (requests, bytes). At init the global pool holds the
 * whole limit. Credit only ever *moves*: every operation subtracts an amount
 * from one counter with an RMW that cannot go below zero (a CAS loop that
 * checks first, or an exchange with 0), holds it "in hand" in a local
 * variable, and adds all of it to another counter or hands it to the caller
 * as a reservation. Nothing ever creates credit except a release of a
 * reservation. This is Linux's percpu_counter (lib/percpu_counter.c) turned
 * around: instead of per-CPU deltas against an approximate global count
 * (which can overshoot a limit by up to nslots * batch), each CPU owns
 * credit that was taken out of the global pool, so a limit holds exactly.
 *
 * reserve(slot, n) per dimension:
 *   R1. n <= chunk: take n from the slot (CAS). The common case: the line is
 *       the calling CPU's own, so the CAS is uncontended.
 *   R2. Else take from the global pool: a whole chunk while the pool holds at
 *       least exact_below (= nslots * chunk), keeping n and depositing the
 *       rest into the slot; exactly n below that ("exact near the limit",
 *       so the last credit is not scattered over slots), or when n > chunk
 *       (large requests never touch a slot).
 *   R3. Else steal: exchange every slot's credit with 0, add it all to what
 *       is in hand; if that covers n, keep n and put the rest into the
 *       global pool; otherwise put it all into the global pool and try to
 *       take n from the pool once more (it now holds every slot's credit
 *       plus its own). Failing that, -ENOSPC.
 * Requests then bytes; if the bytes fail, the request taken is released
 * again (both or neither).
 *
 * release(slot, n) per dimension:
 *   L1. n > chunk: add n to the global pool.
 *   L2. Else add n to the slot; if the slot now holds more than 2 chunks,
 *       CAS it down to 1 chunk and add the difference to the global pool
 *       (spill), so the dispatcher's CPU does not hoard what producers on
 *       other CPUs need, while producers on the dispatcher's CPU still find
 *       a chunk there.
 *
 * A dimension with limit 0 is unlimited: reserve and release skip it
 * without touching memory; with both unlimited they do not even ask for the
 * CPU.
 *
 * Cost: in steady state a producer touches the global line once per chunk of
 * reserves (one refill) and the dispatcher once per chunk of releases (one
 * spill); per request, only the CPU-local slot line is written. A thread
 * that migrates mid-operation just works on another CPU's slot: every slot
 * update is atomic, so this costs a contended line, never correctness.
 *
 * Invariants
 * ----------
 * Let F_d = global[d] + sum_i slots[i].credit[d] + H_d, where H_d is the
 * credit currently held in hand by operations between an RMW that took it
 * and the RMW that deposits it, and O_d = reserved and not yet released.
 *  C1. F_d + O_d == limit_d at every instant (the caller releasing exactly
 *      what it reserved). Proof: each step above moves an amount between two
 *      of these terms unchanged (take from a counter -> hand -> counter or
 *      reservation; release -> counter).
 *  C2. Every counter is >= 0 at every instant: a take is a CAS whose new
 *      value is checked to be >= 0 against the value it replaces, or an
 *      exchange with 0. No counter is ever decremented blindly.
 *  I1 (never exceeded) follows: O_d = limit_d - F_d <= limit_d since F_d is
 *     a sum of non-negative terms (C2).
 *  I2 (conservation at quiescence): with no operation running, H_d == 0, so
 *     C1 reads global + sum of slots + outstanding == limit.
 *  I3 (exact at the limit): with no concurrent operation, a reserve that
 *     fails R1 and R2 reaches R3, which moves every slot's credit into the
 *     global pool (and the hand) and then asks the pool for n: it fails only
 *     if global + sum of slots < n. The request dimension's rollback
 *     restores the request's credit before -ENOSPC is returned.
 *  Unsigned overflow cannot happen: by C1 and C2 every counter and every
 *  partial sum is <= limit <= FLOWQ__CAP_LIMIT_MAX = 2^62, and chunks are
 *  <= limit, so "2 * chunk" and "counter + n" fit.
 *
 * Ordering guarantees (each label marks the code below)
 * -------------------
 * Relaxed would suffice for C1, C2 and hence I1-I3 *on the counters
 * themselves*: these are single-location atomic RMWs, and C2 needs only
 * each RMW's atomicity and each counter's modification order; no other
 * memory is published through the credit. But I1 as the *caller* sees it
 * ("usage counted by my own bookkeeping never exceeds the limit", e.g. the
 * stress test's shadow counter decremented before release and incremented
 * after reserve) needs the release that freed some credit to happen-before
 * the reserve that reuses it; with relaxed RMWs the C11 model would let the
 * reuser's bookkeeping increment land before the releaser's decrement. So:
 *  O1. Every deposit of credit ([L1], [L2], [R2d], [R3d], [S2]) is a
 *      release RMW; every take ([R1], [R2], [R3], [R3g], [S1]) is an acquire
 *      RMW, and pairs with the deposits whose values it read. Because all of
 *      them are RMWs, each release heads a release sequence that later RMWs
 *      on that counter (by anyone) extend, so a take synchronizes with every
 *      deposit it (transitively) consumed, even through a spill or a steal
 *      that moved the credit to another counter in between (happens-before
 *      is transitive through the mover's acquire then release).
 *  O2. Failed CAS attempts and the preliminary loads are relaxed: they only
 *      pick the expected value; the successful RMW is what orders.
 *  O3. flowq__cap_in_use() and flowq__cap_credit() use relaxed loads: they
 *      are statistics, exact only at quiescence, where the caller's own
 *      synchronization (thread join, a lock) orders them.
 * On x86 every lock-prefixed RMW is a full barrier anyway, so O1 costs
 * nothing there; on AArch64 it is LDADDAL/CASAL instead of the relaxed forms.
 *
 * Progress
 * --------
 * Lock-free. The loops are CAS loops on one counter ([R1], [R2], [R3g],
 * [S1]); one retries only if another thread changed that counter between
 * this thread's load and its CAS, i.e. another operation completed a step,
 * or (the weak CAS) spuriously, which the hardware bounds. A steal is one
 * pass over the slots, no loop. No operation waits for another thread:
 * credit in another thread's hand is simply not available, which can turn
 * a reserve into -ENOSPC under concurrency (header, flowq__cap_reserve) but
 * never blocks it.
 */
/* sched_getcpu(). */
#define _GNU_SOURCE

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>

#include "alloc_internal.h"
#include "capacity.h"

/** Take @p n from counter @p c if it holds at least @p n; never below 0 (C2). */
static inline bool
cap_take(_Atomic uint64_t *c, uint64_t n)
{
	/* O2: relaxed, only the expected value. */
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

	do {
		if (v < n)
			return false;
		/* [R1]/[R3g]/[S1] acquire: O1. Failure relaxed: O2. */
	} while (!atomic_compare_exchange_weak_explicit(
		c, &v, v - n, memory_order_acquire, memory_order_relaxed));
	return true;
}

/**
 * [R2] Take credit for @p n from the global pool of dimension @p d: a chunk
 * while the pool is plentiful and n fits a chunk, otherwise exactly @p n.
 * Returns the amount taken (>= @p n), or 0 if the pool holds less than n.
 */
static inline uint64_t
cap_take_global(struct flowq__cap *cap, int d, uint64_t n)
{
	_Atomic uint64_t *g = &cap->global[d];
	/* O2: relaxed, only the expected value. */
	uint64_t v = atomic_load_explicit(g, memory_order_relaxed), want;

	do {
		if (v < n)
			return 0;
		want = n < cap->chunk[d] && v >= cap->exact_below[d] ? cap->chunk[d] : n;
		/* [R2] acquire: O1. Failure relaxed: O2. */
	} while (!atomic_compare_exchange_weak_explicit(
		g, &v, v - want, memory_order_acquire, memory_order_relaxed));
	return want;
}

/**
 * [R3] Steal: move every slot's credit of dimension @p d into the hand, keep
 * @p n if that covers it, and pool the rest globally; else pool everything
 * and ask the pool for @p n once more. Returns 0 or -ENOSPC.
 */
static int
cap_steal(struct flowq__cap *cap, int d, uint64_t n)
{
	_Atomic uint64_t *g = &cap->global[d];
	uint64_t have = 0;

	for (unsigned i = 0; i < cap->nslots; i++) {
		_Atomic uint64_t *s = &cap->slots[i].credit[d];

		/* Relaxed peek (O2): skip empty slots without writing their line. */
		if (atomic_load_explicit(s, memory_order_relaxed) == 0)
			continue;
		/* [R3] acquire: O1 (takes credit). */
		have += atomic_exchange_explicit(s, 0, memory_order_acquire);
		if (have >= n) {
			if (have > n) /* [R3d] release: O1 (deposits credit). */
				atomic_fetch_add_explicit(g, have - n,
							  memory_order_release);
			return 0;
		}
	}
	if (have > 0) /* [R3d] release: O1. */
		atomic_fetch_add_explicit(g, have, memory_order_release);
	return cap_take(g, n) ? 0 : -ENOSPC; /* [R3g] */
}

/** Reserve @p n of dimension @p d on slot @p slot (already reduced). */
static inline int
cap_reserve_dim(struct flowq__cap *cap, unsigned slot, int d, uint64_t n)
{
	_Atomic uint64_t *s = &cap->slots[slot].credit[d];
	uint64_t got;

	if (n <= cap->chunk[d] && cap_take(s, n)) /* [R1] */
		return 0;
	got = cap_take_global(cap, d, n); /* [R2] */
	if (got != 0) {
		if (got > n) /* [R2d] release: O1 (deposits the chunk's rest). */
			atomic_fetch_add_explicit(s, got - n, memory_order_release);
		return 0;
	}
	return cap_steal(cap, d, n);
}

/** Release @p n of dimension @p d on slot @p slot (already reduced). */
static inline void
cap_release_dim(struct flowq__cap *cap, unsigned slot, int d, uint64_t n)
{
	_Atomic uint64_t *s = &cap->slots[slot].credit[d];
	uint64_t chunk = cap->chunk[d], v;

	if (n > chunk) {
		/* [L1] release: O1. Large releases bypass the slot. */
		atomic_fetch_add_explicit(&cap->global[d], n, memory_order_release);
		return;
	}
	/* [L2] release: O1. */
	v = atomic_fetch_add_explicit(s, n, memory_order_release) + n;
	if (v <= 2 * chunk)
		return;
	/* Spill down to one chunk; v is the expected value (O2). */
	while (v > chunk) {
		/* [S1] acquire: O1 (takes the excess). Failure relaxed: O2. */
		if (atomic_compare_exchange_weak_explicit(
			    s, &v, chunk, memory_order_acquire, memory_order_relaxed)) {
			/* [S2] release: O1. */
			atomic_fetch_add_explicit(&cap->global[d], v - chunk,
						  memory_order_release);
			return;
		}
	}
}

/** The calling thread's slot: its CPU, modulo the slot count. */
static inline unsigned
cap_slot_self(const struct flowq__cap *cap)
{
	/* glibc >= 2.35 answers from the rseq area: a load, no system call. */
	int cpu = sched_getcpu();

	if (cpu < 0)
		return 0;
	/* Avoid the division when CPU ids fit, the usual case. */
	return (unsigned)cpu < cap->nslots ? (unsigned)cpu : (unsigned)cpu % cap->nslots;
}

int
flowq__cap_init(struct flowq__cap *cap, const struct flowq_allocator *alloc,
		const struct flowq__cap_config *cfg)
{
	uint64_t chunks[FLOWQ__CAP_NDIM], limits[FLOWQ__CAP_NDIM];
	unsigned nslots;
	long ncpu;

	if (cap == NULL || cfg == NULL || !flowq__allocator_valid(alloc))
		return -EINVAL;
	limits[FLOWQ__CAP_REQ] = cfg->limit_req;
	limits[FLOWQ__CAP_BYTES] = cfg->limit_bytes;
	chunks[FLOWQ__CAP_REQ] = cfg->chunk_req;
	chunks[FLOWQ__CAP_BYTES] = cfg->chunk_bytes;
	if (cfg->nslots > FLOWQ__CAP_MAX_SLOTS)
		return -EINVAL;
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		if (limits[d] > FLOWQ__CAP_LIMIT_MAX || chunks[d] > limits[d])
			return -EINVAL; /* also: a chunk for an unlimited dimension */
	}
	nslots = cfg->nslots;
	if (nslots == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_CONF);
		nslots = ncpu < 1 ? 1
			 : (unsigned long)ncpu > FLOWQ__CAP_MAX_SLOTS
				 ? FLOWQ__CAP_MAX_SLOTS
				 : (unsigned)ncpu;
	}

	cap->alloc = alloc;
	cap->nslots = nslots;
	cap->slots = flowq__alloc(alloc, (size_t)nslots * sizeof(*cap->slots),
				  FLOWQ_CACHE_LINE);
	if (cap->slots == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < nslots; i++) {
		for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
			atomic_init(&cap->slots[i].credit[d], 0);
	}
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		uint64_t dflt = d == FLOWQ__CAP_REQ ? FLOWQ__CAP_CHUNK_REQ
						    : FLOWQ__CAP_CHUNK_BYTES;
		uint64_t c = chunks[d];

		if (limits[d] != 0 && c == 0) {
			/* Slots hold at most ~2 chunks: keep that <= limit / 2. */
			c = limits[d] / (4u * (uint64_t)nslots);
			c = c > dflt ? dflt : c < 1 ? 1 : c;
		}
		cap->limit[d] = limits[d];
		cap->chunk[d] = c;
		/* nslots * chunk, without overflow (chunk <= limit <= 2^62). */
		cap->exact_below[d] = c > limits[d] / nslots ? limits[d] : c * nslots;
		atomic_init(&cap->global[d], limits[d]);
	}
	return 0;
}

void
flowq__cap_fini(struct flowq__cap *cap)
{
	flowq__free(cap->alloc, cap->slots, (size_t)cap->nslots * sizeof(*cap->slots),
		    FLOWQ_CACHE_LINE);
	cap->slots = NULL;
}

int
flowq__cap_reserve_on(struct flowq__cap *cap, unsigned slot, uint64_t bytes)
{
	bool req = cap->limit[FLOWQ__CAP_REQ] != 0;

	slot = slot < cap->nslots ? slot : slot % cap->nslots;
	if (req && cap_reserve_dim(cap, slot, FLOWQ__CAP_REQ, 1) != 0)
		return -ENOSPC;
	if (cap->limit[FLOWQ__CAP_BYTES] != 0 && bytes != 0 &&
	    cap_reserve_dim(cap, slot, FLOWQ__CAP_BYTES, bytes) != 0) {
		/* Both or neither: give the request back. */
		if (req)
			cap_release_dim(cap, slot, FLOWQ__CAP_REQ, 1);
		return -ENOSPC;
	}
	return 0;
}

int
flowq__cap_reserve(struct flowq__cap *cap, uint64_t bytes)
{
	/* Unlimited in both dimensions: no CPU lookup, no memory touched. */
	if (cap->limit[FLOWQ__CAP_REQ] == 0 && cap->limit[FLOWQ__CAP_BYTES] == 0)
		return 0;
	return flowq__cap_reserve_on(cap, cap_slot_self(cap), bytes);
}

void
flowq__cap_release_on(struct flowq__cap *cap, unsigned slot, uint64_t nreq,
		      uint64_t bytes)
{
	slot = slot < cap->nslots ? slot : slot % cap->nslots;
	if (cap->limit[FLOWQ__CAP_REQ] != 0 && nreq != 0)
		cap_release_dim(cap, slot, FLOWQ__CAP_REQ, nreq);
	if (cap->limit[FLOWQ__CAP_BYTES] != 0 && bytes != 0)
		cap_release_dim(cap, slot, FLOWQ__CAP_BYTES, bytes);
}

void
flowq__cap_release(struct flowq__cap *cap, uint64_t nreq, uint64_t bytes)
{
	if (cap->limit[FLOWQ__CAP_REQ] == 0 && cap->limit[FLOWQ__CAP_BYTES] == 0)
		return;
	flowq__cap_release_on(cap, cap_slot_self(cap), nreq, bytes);
}

void
flowq__cap_credit(const struct flowq__cap *cap, unsigned slot, uint64_t *r_req,
		  uint64_t *r_bytes)
{
	const _Atomic uint64_t *c;

	if (slot == FLOWQ__CAP_GLOBAL)
		c = cap->global;
	else
		c = cap->slots[slot < cap->nslots ? slot : slot % cap->nslots].credit;
	/* O3: relaxed statistics. */
	if (r_req != NULL)
		*r_req = atomic_load_explicit(&c[FLOWQ__CAP_REQ], memory_order_relaxed);
	if (r_bytes != NULL)
		*r_bytes =
			atomic_load_explicit(&c[FLOWQ__CAP_BYTES], memory_order_relaxed);
}

void
flowq__cap_in_use(const struct flowq__cap *cap, uint64_t *r_req, uint64_t *r_bytes)
{
	uint64_t used[FLOWQ__CAP_NDIM];

	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		uint64_t free_credit;

		used[d] = 0;
		if (cap->limit[d] == 0)
			continue;
		/* O3: relaxed statistics. */
		free_credit = atomic_load_explicit(&cap->global[d], memory_order_relaxed);
		for (unsigned i = 0; i < cap->nslots; i++)
			free_credit += atomic_load_explicit(&cap->slots[i].credit[d],
							    memory_order_relaxed);
		used[d] = free_credit >= cap->limit[d] ? 0 : cap->limit[d] - free_credit;
	}
	if (r_req != NULL)
		*r_req = used[FLOWQ__CAP_REQ];
	if (r_bytes != NULL)
		*r_bytes = used[FLOWQ__CAP_BYTES];
}
