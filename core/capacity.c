/*
 * flowq__cap: global capacity accounting with per-CPU credit (see
 * core/capacity.h for the API).
 *
 * Algorithm
 * ---------
 * Free capacity is *credit*, kept in unsigned counters: one global pool per
 * limited dimension d (cap->global[d]: requests, bytes) and one slot per CPU
 * (cap->slots[i].credit). A slot is ONE 64-bit word holding both dimensions
 * as two fields: requests in bits [shift, 64), bytes in bits [0, shift),
 * with shift = 64 - bitlen(limit_req) (63 if requests are unlimited) fixed
 * at init, and init requires limit_bytes < 2^shift. Each field is a counter
 * of its own for everything below; packing only lets one RMW update both.
 * At init the global pools hold the whole limits. Credit only ever *moves*:
 * every operation subtracts an amount from a counter (a field) with an RMW
 * that cannot take it below zero (a CAS loop that checks first, or an
 * atomic AND that clears the field), holds it "in hand" in a local
 * variable, and adds all of it to another counter or hands it to the
 * caller as a reservation. Nothing ever creates credit except a release of
 * a reservation. This is Linux's percpu_counter (lib/percpu_counter.c)
 * turned around: instead of per-CPU deltas against an approximate global
 * count (which can overshoot a limit by up to nslots * batch), each CPU
 * owns credit that was taken out of the global pool, so a limit holds
 * exactly.
 *
 * reserve(slot, 1 request, b bytes):
 *   R0. b > limit_bytes: -ENOSPC at once (it can never fit), nothing
 *       touched. This also keeps b below 2^shift, so it packs.
 *   R1. b <= chunk_bytes: take the request and the b bytes from the slot in
 *       one CAS on the packed word, if both fields cover them. The common
 *       case: the line is the calling CPU's own, so the CAS is uncontended.
 *       One atomic RMW per reserve, whether one or both dimensions are
 *       limited (the previous layout, one word per dimension, needed two).
 *   Failing R1, each limited dimension d in turn (requests, then bytes),
 *   with n = 1 or b:
 *   R1'. n <= chunk: take n from the slot's field d alone (CAS on the word,
 *       checking field d only): R1 may have failed on the other field.
 *   R2. Else take from the global pool: a whole chunk while the pool holds at
 *       least exact_below (= nslots * chunk), keeping n and depositing the
 *       rest into the slot's field d; exactly n below that ("exact near the
 *       limit", so the last credit is not scattered over slots), or when
 *       n > chunk (large requests never touch a slot).
 *   R3. Else steal: clear field d of every slot (atomic AND), add what it
 *       held to the hand; if that covers n, keep n and put the rest into
 *       the global pool; otherwise put it all into the global pool and try
 *       to take n from the pool once more (it now holds every slot's credit
 *       plus its own). Failing that, -ENOSPC. The other field of each slot
 *       is left where it is.
 *   If the bytes fail, the request taken is released again (both or
 *   neither).
 *
 * release(slot, r requests, b bytes):
 *   L1. A dimension whose amount exceeds its chunk is added to its global
 *       pool.
 *   L2. The others are added to the slot in one fetch-add on the packed
 *       word. Each field that now holds more than 2 chunks is CASed down to
 *       1 chunk and the difference added to the global pool (spill), so the
 *       dispatcher's CPU does not hoard what producers on other CPUs need,
 *       while producers on the dispatcher's CPU still find a chunk there.
 *
 * A dimension with limit 0 is unlimited: its amount is taken as 0, so it
 * never touches a field or a pool (its field has width 0, or is unused);
 * with both unlimited, reserve and release do not even ask for the CPU.
 *
 * Cost: in steady state a producer does one CAS per reserve on its CPU's
 * slot line and touches the global line once per chunk of reserves (one
 * refill per dimension); the dispatcher does one fetch-add per release and
 * touches the global line once per chunk of releases (one spill). A thread
 * that migrates mid-operation just works on another CPU's slot: every slot
 * update is atomic, so this costs a contended line, never correctness.
 *
 * Invariants
 * ----------
 * Let F_d = global[d] + sum_i field_d(slots[i].credit) + H_d, where H_d is
 * the credit currently held in hand by operations between an RMW that took
 * it and the RMW that deposits it, and O_d = reserved and not yet released.
 *  C1. F_d + O_d == limit_d at every instant (the caller releasing exactly
 *      what it reserved). Proof: each step above moves an amount between two
 *      of these terms unchanged (take from a counter -> hand -> counter or
 *      reservation; release -> counter). An RMW on a slot word that moves
 *      amounts of both dimensions ([R1], [L2], [S1]) is such a move in each
 *      dimension at once.
 *  C2. Every counter (every field) is >= 0 at every instant: a take is a CAS
 *      whose new value is checked, field by field, to be >= 0 against the
 *      value it replaces, or an AND that sets the field to 0. No counter is
 *      ever decremented blindly.
 *  C3. No field ever carries into its neighbour: by C1 and C2 each field is
 *      <= limit_d at every instant, also right after a deposit (the amount
 *      deposited was part of F_d), and init chose the widths so that
 *      limit_req < 2^(64 - shift) and limit_bytes < 2^shift. So word
 *      arithmetic on packed amounts is field-wise arithmetic, and a take
 *      that checks each field (C2) never borrows across fields either.
 *  I1 (never exceeded) follows: O_d = limit_d - F_d <= limit_d since F_d is
 *     a sum of non-negative terms (C2).
 *  I2 (conservation at quiescence): with no operation running, H_d == 0, so
 *     C1 reads global + sum of slots + outstanding == limit.
 *  I3 (exact at the limit): with no concurrent operation, a reserve that
 *     fails R1, R1' and R2 in dimension d reaches R3, which moves every
 *     slot's field d into the global pool (and the hand) and then asks the
 *     pool for n: it fails only if global + sum of slots < n. R0 fails only
 *     if b > limit_bytes, which no amount of free credit covers. The
 *     request dimension's rollback restores the request's credit before
 *     -ENOSPC is returned.
 *  Unsigned overflow cannot happen: by C1 and C2 every counter and every
 *  partial sum is <= limit <= FLOWQ__CAP_LIMIT_MAX = 2^62, and chunks are
 *  <= limit, so "2 * chunk" and "counter + n" fit; within a word, C3.
 *
 * Hidden credit (H1)
 * -----------------
 * Credit in hand (H_d) is in no counter: a reserve that runs while another
 * holds credit can fail although F_d covers it. For a caller that only
 * rejects, that is the documented -ENOSPC under concurrency; a caller that
 * parks a waiter on failure (the dispatcher's gate) must be woken once the
 * credit lands. So every take that holds more than the caller keeps (a
 * failed steal, a steal's surplus, a global chunk's rest, a rolled-back
 * request) sets *r_moved, success or not, and the gate wakes its waiters
 * after any reserve that moved credit (flowq__cap_reserve_moved()). The
 * surplus of a successful steal used to be deposited without it: found
 * by tests/unit/test_fault.c (cap_steal_surplus_wakes_the_gate_waiter),
 * which holds a steal in the window with the CAP_IN_HAND fault point.
 *
 * Ordering guarantees (each label marks the code below)
 * -------------------
 * Relaxed would suffice for C1-C3 and hence I1-I3 *on the counters
 * themselves*: these are single-location atomic RMWs, and C2 needs only
 * each RMW's atomicity and each counter's modification order; no other
 * memory is published through the credit. But I1 as the *caller* sees it
 * ("usage counted by my own bookkeeping never exceeds the limit", e.g. the
 * stress test's shadow counter decremented before release and incremented
 * after reserve) needs the release that freed some credit to happen-before
 * the reserve that reuses it; with relaxed RMWs the C11 model would let the
 * reuser's bookkeeping increment land before the releaser's decrement. So:
 *  O1. Every deposit of credit ([L1], [L2], [R2d], [R3d], [S2]) is a
 *      release RMW; every take ([R1], [R1'], [R2], [R3], [R3g], [S1]) is an
 *      acquire RMW, and pairs with the deposits whose values it read.
 *      Because all of them are RMWs, each release heads a release sequence
 *      that later RMWs on that word (by anyone) extend, so a take
 *      synchronizes with every deposit it (transitively) consumed, even
 *      through a spill or a steal that moved the credit to another counter
 *      in between (happens-before is transitive through the mover's acquire
 *      then release). Packing both dimensions in one word only adds
 *      synchronization (a take also pairs with deposits of the other
 *      dimension), which costs nothing.
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
 * Lock-free. The loops are CAS loops on one word ([R1], [R1'], [R2], [R3g],
 * [S1], and the AND of [R3], which x86 compiles to a CAS loop); one retries
 * only if another thread changed that word between this thread's load and
 * its CAS, i.e. another operation completed a step, or (the weak CAS)
 * spuriously, which the hardware bounds. A steal is one pass over the
 * slots. No operation waits for another thread: credit in another thread's
 * hand is simply not available, which can turn a reserve into -ENOSPC under
 * concurrency (header, flowq__cap_reserve) but never blocks it.
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
#include "fault.h"

/*
 * The current CPU straight from the thread's rseq area (glibc >= 2.35
 * registers it and exports its offset from the thread pointer): one load,
 * ~0.3 ns here, against ~1.5 ns for the call to sched_getcpu(), which reads
 * the same field behind a function call (measured on the project's EPYC VM;
 * the reserve fast path is ~9 ns in all). Without the header or the
 * builtin, sched_getcpu() alone.
 */
#if defined(__has_include) && defined(__has_builtin)
#if __has_include(<sys/rseq.h>) && __has_builtin(__builtin_thread_pointer)
#include <sys/rseq.h>
#define CAP_HAVE_RSEQ 1
#endif
#endif

/** The byte field's mask in a slot word (bits [0, shift)). */
static inline uint64_t
cap_bytes_mask(const struct flowq__cap *cap)
{
	return (UINT64_C(1) << cap->shift) - 1;
}

/** The value of field @p d of slot word @p v. */
static inline uint64_t
cap_field(const struct flowq__cap *cap, uint64_t v, int d)
{
	return d == FLOWQ__CAP_REQ ? v >> cap->shift : v & cap_bytes_mask(cap);
}

/** @p n of dimension @p d as a slot word (n <= limit_d, so it fits: C3). */
static inline uint64_t
cap_pack(const struct flowq__cap *cap, int d, uint64_t n)
{
	return d == FLOWQ__CAP_REQ ? n << cap->shift : n;
}

/** bitlen(x): the number of bits needed to write @p x (0 for 0). */
static unsigned
cap_bitlen(uint64_t x)
{
	return x == 0 ? 0 : 64u - (unsigned)__builtin_clzll(x);
}

/** Take @p n from global pool @p g if it holds at least @p n (C2). */
static inline bool
cap_take(_Atomic uint64_t *g, uint64_t n)
{
	/* O2: relaxed, only the expected value. */
	uint64_t v = atomic_load_explicit(g, memory_order_relaxed);

	do {
		if (v < n)
			return false;
		/* [R3g] acquire: O1. Failure relaxed: O2. */
	} while (!atomic_compare_exchange_weak_explicit(
		g, &v, v - n, memory_order_acquire, memory_order_relaxed));
	return true;
}

/**
 * [R1'] Take @p n of dimension @p d from slot word @p s if its field d holds
 * at least @p n; the other field is left as it is (C2, C3).
 */
static inline bool
cap_slot_take(const struct flowq__cap *cap, _Atomic uint64_t *s, int d, uint64_t n)
{
	uint64_t packed = cap_pack(cap, d, n);
	/* O2: relaxed, only the expected value. */
	uint64_t v = atomic_load_explicit(s, memory_order_relaxed);

	do {
		if (cap_field(cap, v, d) < n)
			return false;
		/* [R1'] acquire: O1. Failure relaxed: O2. */
	} while (!atomic_compare_exchange_weak_explicit(
		s, &v, v - packed, memory_order_acquire, memory_order_relaxed));
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
 * [R3] Steal: move field @p d of every slot into the hand, keep @p n if that
 * covers it, and pool the rest globally; else pool everything and ask the
 * pool for @p n once more. Returns 0 or -ENOSPC.
 */
static int
cap_steal(struct flowq__cap *cap, int d, uint64_t n, bool *r_moved)
{
	_Atomic uint64_t *g = &cap->global[d];
	/* AND with this clears field d and keeps the other one. */
	uint64_t keep = d == FLOWQ__CAP_REQ ? cap_bytes_mask(cap) : ~cap_bytes_mask(cap);
	uint64_t have = 0;

	for (unsigned i = 0; i < cap->nslots; i++) {
		_Atomic uint64_t *s = &cap->slots[i].credit;

		/* Relaxed peek (O2): skip empty fields without writing the line. */
		if (cap_field(cap, atomic_load_explicit(s, memory_order_relaxed), d) == 0)
			continue;
		/* [R3] acquire: O1 (takes credit). */
		have += cap_field(
			cap, atomic_fetch_and_explicit(s, keep, memory_order_acquire), d);
		if (have >= n) {
			if (have > n) {
				/* The surplus was out of every counter until
				 * this deposit: a reserve that failed meanwhile
				 * may have parked a waiter (H1). */
				FLOWQ__FAULT(CAP_IN_HAND);
				/* [R3d] release: O1 (deposits credit). */
				atomic_fetch_add_explicit(g, have - n,
							  memory_order_release);
				*r_moved = true;
			}
			return 0;
		}
	}
	if (have > 0) { /* [R3d] release: O1. */
		FLOWQ__FAULT(CAP_IN_HAND);
		atomic_fetch_add_explicit(g, have, memory_order_release);
		*r_moved = true;
	}
	return cap_take(g, n) ? 0 : -ENOSPC; /* [R3g] */
}

/** Reserve @p n of dimension @p d on slot @p slot, after [R1] failed. */
static int
cap_reserve_dim(struct flowq__cap *cap, unsigned slot, int d, uint64_t n, bool *r_moved)
{
	_Atomic uint64_t *s = &cap->slots[slot].credit;
	uint64_t got;

	if (n <= cap->chunk[d] && cap_slot_take(cap, s, d, n)) /* [R1'] */
		return 0;
	got = cap_take_global(cap, d, n); /* [R2] */
	if (got != 0) {
		if (got > n) {
			/* The chunk's rest is in hand until deposited (H1). */
			FLOWQ__FAULT(CAP_IN_HAND);
			/* [R2d] release: O1 (deposits the chunk's rest). */
			atomic_fetch_add_explicit(s, cap_pack(cap, d, got - n),
						  memory_order_release);
			*r_moved = true;
		}
		return 0;
	}
	return cap_steal(cap, d, n, r_moved);
}

/**
 * [L2] Add @p packed (amounts of both dimensions, each <= its chunk) to slot
 * @p slot; spill every field that now exceeds two chunks down to one.
 */
static void
cap_release_slot(struct flowq__cap *cap, unsigned slot, uint64_t packed)
{
	_Atomic uint64_t *s = &cap->slots[slot].credit;
	bool spill[FLOWQ__CAP_NDIM];
	uint64_t v, excess[FLOWQ__CAP_NDIM];

	/* [L2] release: O1. */
	v = atomic_fetch_add_explicit(s, packed, memory_order_release) + packed;
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
		spill[d] = cap->chunk[d] != 0 && cap_field(cap, v, d) > 2 * cap->chunk[d];
	if (!spill[FLOWQ__CAP_REQ] && !spill[FLOWQ__CAP_BYTES])
		return;
	/* Spill the fields above two chunks down to one; v is the expected value (O2). */
	for (;;) {
		uint64_t take = 0;

		for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
			uint64_t f = cap_field(cap, v, d);

			excess[d] = spill[d] && f > cap->chunk[d] ? f - cap->chunk[d] : 0;
			take += cap_pack(cap, d, excess[d]);
		}
		if (take == 0)
			return; /* someone else took it meanwhile */
		/* [S1] acquire: O1 (takes the excess). Failure relaxed: O2. */
		if (atomic_compare_exchange_weak_explicit(
			    s, &v, v - take, memory_order_acquire, memory_order_relaxed))
			break;
	}
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		if (excess[d] != 0) /* [S2] release: O1. */
			atomic_fetch_add_explicit(&cap->global[d], excess[d],
						  memory_order_release);
	}
}

/* The current CPU, or -1 if unknown. */
static inline int
cpu_now(void)
{
	int cpu = -1;

#ifdef CAP_HAVE_RSEQ
	/*
	 * The kernel rewrites cpu_id before the thread returns to user space on
	 * another CPU; volatile, as glibc reads it. Negative (as a signed value)
	 * when registration failed or was disabled (GLIBC_TUNABLES
	 * glibc.pthread.rseq=0): then ask sched_getcpu(). A stale value (the
	 * thread migrates right after the load) only picks another CPU's slot,
	 * which any slot update tolerates (see the file comment).
	 */
	cpu = (int)((const volatile struct rseq *)((char *)__builtin_thread_pointer() +
						   __rseq_offset))
		      ->cpu_id;
#endif
	if (cpu < 0)
		cpu = sched_getcpu(); /* glibc >= 2.35: from the rseq area, no syscall. */
	return cpu;
}

unsigned
flowq__cpu_current(void)
{
	int cpu = cpu_now();
	return cpu < 0 ? 0 : (unsigned)cpu;
}

/** The calling thread's slot: its CPU, modulo the slot count. */
static inline unsigned
cap_slot_self(const struct flowq__cap *cap)
{
	int cpu = cpu_now();

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
	unsigned nslots, shift;
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
	/*
	 * The slot word: requests take the top bitlen(limit_req) bits, bytes
	 * the rest (C3). With requests unlimited, shift 63 still leaves room
	 * for any byte limit <= 2^62 and keeps every shift below 64.
	 */
	shift = 64u - cap_bitlen(limits[FLOWQ__CAP_REQ]);
	shift = shift > 63u ? 63u : shift;
	if (cap_bitlen(limits[FLOWQ__CAP_BYTES]) > shift)
		return -EINVAL;
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
	cap->shift = shift;
	cap->slots = flowq__alloc(alloc, (size_t)nslots * sizeof(*cap->slots),
				  FLOWQ_CACHE_LINE);
	if (cap->slots == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < nslots; i++)
		atomic_init(&cap->slots[i].credit, 0);
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

static int
cap_reserve_on(struct flowq__cap *cap, unsigned slot, uint64_t bytes, bool *r_moved)
{
	bool req = cap->limit[FLOWQ__CAP_REQ] != 0;
	uint64_t nbytes = cap->limit[FLOWQ__CAP_BYTES] != 0 ? bytes : 0;
	_Atomic uint64_t *s;
	uint64_t v, want;

	if (nbytes > cap->limit[FLOWQ__CAP_BYTES])
		return -ENOSPC; /* [R0]: never fits; nbytes now packs (C3). */
	slot = slot < cap->nslots ? slot : slot % cap->nslots;
	s = &cap->slots[slot].credit;
	if (nbytes <= cap->chunk[FLOWQ__CAP_BYTES]) {
		/* [R1] both dimensions, one CAS. O2: relaxed expected value. */
		want = (uint64_t)req << cap->shift | nbytes;
		v = atomic_load_explicit(s, memory_order_relaxed);
		while (v >> cap->shift >= (uint64_t)req &&
		       (v & cap_bytes_mask(cap)) >= nbytes) {
			/* [R1] acquire: O1. Failure relaxed: O2. */
			if (atomic_compare_exchange_weak_explicit(s, &v, v - want,
								  memory_order_acquire,
								  memory_order_relaxed))
				return 0;
		}
	}
	/* One dimension at a time: [R1'], [R2], [R3]. */
	if (req && cap_reserve_dim(cap, slot, FLOWQ__CAP_REQ, 1, r_moved) != 0)
		return -ENOSPC;
	if (nbytes != 0 && cap_reserve_dim(cap, slot, FLOWQ__CAP_BYTES, nbytes, r_moved) != 0) {
		/* Both or neither: give the request back. */
		if (req) {
			flowq__cap_release_on(cap, slot, 1, 0);
			*r_moved = true;
		}
		return -ENOSPC;
	}
	return 0;
}

int
flowq__cap_reserve_on(struct flowq__cap *cap, unsigned slot, uint64_t bytes)
{
	bool moved = false;
	return cap_reserve_on(cap, slot, bytes, &moved);
}

int
flowq__cap_reserve_moved(struct flowq__cap *cap, uint64_t bytes, bool *r_moved)
{
	*r_moved = false;
	if (cap->limit[FLOWQ__CAP_REQ] == 0 && cap->limit[FLOWQ__CAP_BYTES] == 0)
		return 0;
	return cap_reserve_on(cap, cap_slot_self(cap), bytes, r_moved);
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
	uint64_t n[FLOWQ__CAP_NDIM] = {nreq, bytes}, packed = 0;

	slot = slot < cap->nslots ? slot : slot % cap->nslots;
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		if (cap->limit[d] == 0 || n[d] == 0)
			continue;
		if (n[d] > cap->chunk[d]) /* [L1] release: O1. Bypasses the slot. */
			atomic_fetch_add_explicit(&cap->global[d], n[d],
						  memory_order_release);
		else
			packed += cap_pack(cap, d, n[d]);
	}
	if (packed != 0)
		cap_release_slot(cap, slot, packed); /* [L2] */
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
	uint64_t c[FLOWQ__CAP_NDIM], v;

	/* O3: relaxed statistics. */
	if (slot == FLOWQ__CAP_GLOBAL) {
		for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
			c[d] = atomic_load_explicit(&cap->global[d],
						    memory_order_relaxed);
	} else {
		slot = slot < cap->nslots ? slot : slot % cap->nslots;
		v = atomic_load_explicit(&cap->slots[slot].credit, memory_order_relaxed);
		/* An unlimited dimension's field is unused: report 0. */
		for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
			c[d] = cap->limit[d] != 0 ? cap_field(cap, v, d) : 0;
	}
	if (r_req != NULL)
		*r_req = c[FLOWQ__CAP_REQ];
	if (r_bytes != NULL)
		*r_bytes = c[FLOWQ__CAP_BYTES];
}

void
flowq__cap_in_use(const struct flowq__cap *cap, uint64_t *r_req, uint64_t *r_bytes)
{
	uint64_t free_credit[FLOWQ__CAP_NDIM], used[FLOWQ__CAP_NDIM];

	/* O3: relaxed statistics. */
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
		free_credit[d] =
			atomic_load_explicit(&cap->global[d], memory_order_relaxed);
	for (unsigned i = 0; i < cap->nslots; i++) {
		uint64_t v =
			atomic_load_explicit(&cap->slots[i].credit, memory_order_relaxed);

		for (int d = 0; d < FLOWQ__CAP_NDIM; d++)
			free_credit[d] += cap_field(cap, v, d);
	}
	for (int d = 0; d < FLOWQ__CAP_NDIM; d++) {
		used[d] = cap->limit[d] == 0 || free_credit[d] >= cap->limit[d]
				  ? 0
				  : cap->limit[d] - free_credit[d];
	}
	if (r_req != NULL)
		*r_req = used[FLOWQ__CAP_REQ];
	if (r_bytes != NULL)
		*r_bytes = used[FLOWQ__CAP_BYTES];
}
