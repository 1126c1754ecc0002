/*
 * Internal: fault-injection points (issue 6, "Fault injection"). Compiled
 * in only with the CMake option FLOWQ_FAULT_INJECTION=ON, which defines the
 * macro FLOWQ_FAULT_INJECTION for every target and adds core/fault.c to the
 * library; otherwise FLOWQ__FAULT(point) expands to nothing and the library
 * holds no trace of it (CTest fault_points_compiled_out checks the normal
 * build's libraries: no flowq__fault symbol, no point name).
 *
 * A point is a call FLOWQ__FAULT(NAME) placed where a stall (a preemption,
 * a page fault, a slow callback) widens a race window the design must
 * tolerate. A test arms a set of points process-wide, either with the
 * built-in random stall (flowq__fault_stall_arm(): sleep or spin for a
 * random time in [min_ns, max_ns], with probability per_million / 10^6 at
 * each hit, from a seeded per-thread generator) or with its own callback
 * (flowq__fault_hook_arm(): deterministic interleavings, e.g. a barrier).
 *
 * The points (file, where, which race it widens):
 *   D_ROUND_START      dispatch.c flowq__shard_run(), before the round reads
 *                      the clock: a dispatcher preempted between rounds.
 *   D_AFTER_INTAKE     after cancels, doorbell and pending inboxes are taken,
 *                      before TTL expiry: requests taken in, not yet expired
 *                      or dispatched, while cancels and new submits race.
 *   D_BEFORE_DISPATCH  after expiry, before the dispatch loop: a stall here
 *                      lets requests expire between the expiry pass and the
 *                      head check (no dispatch past a deadline).
 *   D_CLAIMED          dispatch(), the gate slot taken, before [T2]
 *                      DISPATCHED: between a claim and the finalize, where a
 *                      cancel, an expiry or a displacement races to win.
 *   D_BEFORE_SLEEP     dispatcher thread, sleeping = 1 stored, before the
 *                      re-check of every work source (the sleep handshake,
 *                      engine.h): wakers run in the window.
 *   D_AFTER_WAKE       dispatcher thread, after the futex wait returns.
 *   S_CLAIMED          submit.c, after [T1] claim, before validation and the
 *                      flow lookup: a cancel of the request races it.
 *                      (flowq_submit_batch() claims 16 requests together;
 *                      each hits the point when its own turn comes.)
 *   S_QUEUED           submit.c, after [T4] mark_queued, before the inbox
 *                      enqueue: a cancel wins [T2] before the request is in
 *                      the inbox.
 *   C_WON              submit.c flowq_cancel(), after its [T2] won, before
 *                      the cancel message is enqueued (the two-event rule of
 *                      dispatch.c).
 *   CAP_IN_HAND        capacity.c, while a reserve holds credit in hand that
 *                      it will deposit (a chunk's rest after [R2], a steal's
 *                      surplus after [R3]): other reserves cannot see it.
 *   W_TAKEN            dispatch.c flowq__shard_wake(), any waker: the sleep
 *                      word taken 1 -> 2, or found 2 (both modes), before
 *                      the FUTEX_WAKE or eventfd write: a waker preempted
 *                      there.
 *   L_DEAD             registry.c flowq__flow_try_collect(), the flow marked
 *                      dead ([L1]) and still in the table: a submit's look-up
 *                      finds it and must neither lease it nor queue on it
 *                      (flowq__flow_acquire() waits for it to leave, then
 *                      makes its successor; the batch look-ahead leaves such
 *                      a request to that path).
 *   L_MADE             registry.c flowq__flow_acquire(), a new flow made
 *                      (allocated, not yet in the table) by a submit whose
 *                      look-up missed: another thread creates the same flow,
 *                      or collects the one that is there, before the insert.
 *   L_LOST             flowq__flow_acquire(), the insert lost to a flow that
 *                      is dead (being collected), before the look-up is made
 *                      again: the successor may be made meanwhile, by
 *                      another thread, and this one's made flow then goes.
 *
 * Fail points are the other kind: FLOWQ__FAULT_FAILS(NAME) is an expression,
 * false unless a test armed the point with flowq__fault_fail_arm(), and then
 * true at the hits the test chose, where the code takes the error path of a
 * call that fails only when the system is short of something (memory the
 * library's allocator does not provide, threads). Without the option it is
 * the constant false, and the call is made as usual. They are not stalls:
 * the stall and the hook never act at them.
 *   E_LFHT_NEW         engine.c flowq_engine_create(), a shard's hash table:
 *                      cds_lfht_new_flavor() returns NULL (liburcu allocates
 *                      with its own malloc(), which the configured allocator
 *                      does not reach).
 *   E_THREAD_CREATE    engine.c flowq_engine_create(), a dispatcher's
 *                      pthread_create() fails (EAGAIN: out of threads); the
 *                      dispatchers already started must be stopped and
 *                      joined.
 *
 * Synchronization: arm and disarm while no engine call runs (set-up and
 * tear-down of a test); hits may run on any thread concurrently. Progress:
 * an unarmed point costs one relaxed load and a branch.
 */
#ifndef FLOWQ_CORE_FAULT_H
#define FLOWQ_CORE_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum flowq__fault_point {
	FLOWQ__FAULT_D_ROUND_START = 0,
	FLOWQ__FAULT_D_AFTER_INTAKE,
	FLOWQ__FAULT_D_BEFORE_DISPATCH,
	FLOWQ__FAULT_D_CLAIMED,
	FLOWQ__FAULT_D_BEFORE_SLEEP,
	FLOWQ__FAULT_D_AFTER_WAKE,
	FLOWQ__FAULT_S_CLAIMED,
	FLOWQ__FAULT_S_QUEUED,
	FLOWQ__FAULT_C_WON,
	FLOWQ__FAULT_CAP_IN_HAND,
	FLOWQ__FAULT_W_TAKEN,
	FLOWQ__FAULT_L_DEAD,
	FLOWQ__FAULT_L_MADE,
	FLOWQ__FAULT_L_LOST,
	/* Fail points (FLOWQ__FAULT_FAILS()). */
	FLOWQ__FAULT_E_LFHT_NEW,
	FLOWQ__FAULT_E_THREAD_CREATE,
	FLOWQ__FAULT_COUNT
};

/** The bit of point @p p in a mask. */
#define FLOWQ__FAULT_BIT(p) (UINT64_C(1) << FLOWQ__FAULT_##p)
/** Every point a dispatcher thread runs (D_*). */
#define FLOWQ__FAULT_DISPATCHER                                                          \
	(FLOWQ__FAULT_BIT(D_ROUND_START) | FLOWQ__FAULT_BIT(D_AFTER_INTAKE) |            \
	 FLOWQ__FAULT_BIT(D_BEFORE_DISPATCH) | FLOWQ__FAULT_BIT(D_CLAIMED) |             \
	 FLOWQ__FAULT_BIT(D_BEFORE_SLEEP) | FLOWQ__FAULT_BIT(D_AFTER_WAKE))

#ifdef FLOWQ_FAULT_INJECTION

/** A test's own action at an armed point (any thread, concurrently). */
typedef void
flowq__fault_fn(enum flowq__fault_point p, void *ctx);

/** The built-in random stall (flowq__fault_stall_arm()). */
struct flowq__fault_stall {
	/** Points that stall (FLOWQ__FAULT_BIT()s). */
	uint64_t mask;
	/** Chance of a stall at each hit, per million (0..1000000). */
	uint32_t per_million;
	/** Stall length, uniform in [min_ns, max_ns]. */
	int64_t min_ns, max_ns;
	/** Spin (busy, holding the CPU) instead of nanosleep(). */
	bool spin;
	/** Seed of the per-thread generators (thread k: seed, k mixed in). */
	uint64_t seed;
};

/* The armed points (relaxed: arming happens before the threads that hit
 * them start or while they are quiet; see the synchronization note). */
extern _Atomic uint64_t flowq__fault_mask;

/** Slow path of FLOWQ__FAULT(): run the armed action for @p p. */
void
flowq__fault_hit(enum flowq__fault_point p);

/** Arm @p cfg's points with the random stall. */
void
flowq__fault_stall_arm(const struct flowq__fault_stall *cfg);

/** Arm the points of @p mask with @p fn (called with @p ctx). */
void
flowq__fault_hook_arm(uint64_t mask, flowq__fault_fn *fn, void *ctx);

/* The armed fail points (relaxed, as flowq__fault_mask). */
extern _Atomic uint64_t flowq__fault_fail_mask;

/** Slow path of FLOWQ__FAULT_FAILS(): count the hit; whether it fails. */
bool
flowq__fault_fail_hit(enum flowq__fault_point p);

/**
 * Arm fail point @p p: of its hits from now on, the first @p skip succeed,
 * the next @p n fail (n = UINT64_MAX: every one from there), the rest
 * succeed. Arming one fail point leaves the others, the stall and the hook
 * as they are. Same synchronization as the other arm calls.
 */
void
flowq__fault_fail_arm(enum flowq__fault_point p, uint64_t skip, uint64_t n);

/** Fail points' hits that were made to fail, since flowq__fault_reset(). */
uint64_t
flowq__fault_failed(enum flowq__fault_point p);

/** Disarm every point, fail points included (counters are kept until
 * flowq__fault_reset()). */
void
flowq__fault_disarm(void);

/** Disarm and zero the counters. */
void
flowq__fault_reset(void);

/** Times point @p p was hit while armed. */
uint64_t
flowq__fault_hits(enum flowq__fault_point p);

/** Stalls the random stall made, and their total length (ns). */
uint64_t
flowq__fault_stalls(uint64_t *r_total_ns);

/** CLOCK_MONOTONIC (ns) at which the calling thread's latest stall ended;
 * 0 if it never stalled. For measuring what a thread does after resuming. */
int64_t
flowq__fault_thread_resumed_ns(void);

/** The point's name ("D_CLAIMED", ...); "?" out of range. */
const char *
flowq__fault_name(enum flowq__fault_point p);

#define FLOWQ__FAULT(name)                                                               \
	do {                                                                             \
		if (__builtin_expect(atomic_load_explicit(&flowq__fault_mask,            \
							  memory_order_relaxed) &        \
					     FLOWQ__FAULT_BIT(name),                     \
				     0))                                                 \
			flowq__fault_hit(FLOWQ__FAULT_##name);                           \
	} while (0)

/* Whether fail point @p name fails at this hit (an expression). */
#define FLOWQ__FAULT_FAILS(name)                                                         \
	(__builtin_expect(                                                               \
		 atomic_load_explicit(&flowq__fault_fail_mask, memory_order_relaxed) &   \
			 FLOWQ__FAULT_BIT(name),                                         \
		 0) &&                                                                   \
	 flowq__fault_fail_hit(FLOWQ__FAULT_##name))

#else /* !FLOWQ_FAULT_INJECTION */

#define FLOWQ__FAULT(name)       ((void)0)
#define FLOWQ__FAULT_FAILS(name) false

#endif /* FLOWQ_FAULT_INJECTION */

#endif /* FLOWQ_CORE_FAULT_H */
