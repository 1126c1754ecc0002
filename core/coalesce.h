/*
 * Internal: whether the threaded dispatchers' intake-coalescing wait
 * (cfg.intake_coalesce_ns, dispatch.c intake_coalesce()) pays, decided by
 * measuring it: an A/B test the engine runs on its own rate of decisions.
 *
 * Why measure rather than infer. The wait pays when producers keep
 * requests coming while a dispatcher waits (many requests in flight per
 * producer: rounds and doorbell rings are shared, 0.4-1.0x the time per
 * request at 2 us, bench/ENGINE-LOG.md, "Session 12") and costs when arrivals depend on
 * the dispatchers' own progress (a closed loop, clients that wait for
 * their completion before they submit again: 1.2-2.2x slower in session
 * 13's A/B, up to 13x in session 12's, because the
 * wait, which yields the CPU, hands it to clients that poll for
 * completions that cannot come). Both shapes show the same local signs
 * (small rounds, an empty doorbell), and a proxy can move between them as
 * its load changes; the rate of decisions is what tells them apart, so
 * that is what the controller compares.
 *
 * One controller per engine, not per shard: shards share the CPUs, so one
 * dispatcher's wait moves the others' rates (it yields to them). Four
 * shards on two vCPUs, each with its own controller, measured 1.52x
 * slower on the flow-churn benchmark (bench/ENGINE-LOG.md, "Session 13"): each shard saw
 * its own rate rise while it waited. So every dispatcher waits or none,
 * and the rate compared is the engine's (the shards' decided counters).
 *
 * The cycle, in real time (CLOCK_MONOTONIC):
 *  PROBE_OFF  FLOWQ__COALESCE_PROBE_NS without the wait;
 *  PROBE_ON   as long with it;
 *  HOLD       with the wait on only if PROBE_ON decided at least
 *             WIN_NUM/WIN_DEN as many per ns as PROBE_OFF, and by a margin
 *             over the counts' noise (FLOWQ__COALESCE_SIGMAS); a tie, which is
 *             what an engine that keeps up with its load measures, keeps
 *             the wait off: there it would add latency and no rate;
 *             FLOWQ__COALESCE_HOLD_NS long, twice the last hold's length
 *             when the decision is the last one's again (at most
 *             FLOWQ__COALESCE_HOLD_MAX_NS);
 *  then PROBE_OFF again.
 * The worse of the two runs for one probe per cycle: PROBE / (2 * PROBE +
 * HOLD) of the time (1/18) right after the workload changed, down to 1/258
 * once it has been stable for a few seconds. While the wait is on, every
 * round looks at the clock, so PROBE_ON ends at the first round after its
 * 4 ms (a round's length late; one that overran 4x counts as a loss).
 * That bounds what a wrong guess costs (a closed loop 9x slower with the
 * wait loses about 5 %, then under 1 %), and how long a change of shape
 * goes unnoticed (a second).
 *
 * Rates are per ns of real time, sleeps included: where the dispatchers
 * outrun their producers they run dry and sleep, and the futex wake-ups
 * that follow are part of what the wait saves (one producer, two shards on
 * two vCPUs: 0.07 sleeps per request without the wait, 0.0002 with it, at
 * 2.3x the rate). A period that lasted over FLOWQ__COALESCE_OVERRUN times
 * its length (an idle engine: no dispatcher rounds, so no tick; or a
 * stopped process) measured idle time, not a rate: it is dropped and the
 * cycle starts again with the wait off (a PROBE_ON that overran holds the
 * wait off, as a loss).
 *
 * Who runs it: every dispatcher, every FLOWQ__COALESCE_CLOCK_EVERY rounds
 * (every round while the wait is on), reads the clock and
 * flowq__coalesce_due(); the one that wins
 * flowq__coalesce_trylock() sums the shards' decided counters and calls
 * flowq__coalesce_step(), which ends the period and unlocks. The others
 * go on (a transition is never waited for). The state behind the lock is
 * the holder's alone (the lock's acquire and release order it between
 * holders); `start`, `len` and `on` are atomics that dispatchers read
 * outside it, relaxed (`phase` is atomic for the tests' sake): a stale value delays a transition by a tick or
 * decides one wait, nothing else.
 *
 * Cost per round on the dispatch path: a counter, a relaxed load of `on`
 * (a line written every few ms); every 32 rounds a vDSO clock read, every
 * round while the wait is on (which reads the clock anyway).
 */
#ifndef FLOWQ_CORE_COALESCE_H
#define FLOWQ_CORE_COALESCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Lengths of a probe and of the hold that follows the pair, ns. A probe
 * covers several scheduler ticks (4 ms at 250 Hz) so that one preemption
 * does not decide it. */
#define FLOWQ__COALESCE_PROBE_NS    4000000
#define FLOWQ__COALESCE_HOLD_NS     64000000
#define FLOWQ__COALESCE_HOLD_MAX_NS 1024000000
/* A period that lasted more than this many times its length is dropped. */
#define FLOWQ__COALESCE_OVERRUN 4
/* Rounds between a dispatcher's clock reads (a power of two). */
#define FLOWQ__COALESCE_CLOCK_EVERY 32u
/* The wait must decide at least NUM/DEN as many per ns to be kept, and
 * by a margin that counting noise does not easily reach: the rates' ratio
 * r must have r - 1 >= SIGMAS / sqrt(n), n the smaller probe's decisions
 * (about 2.1 standard deviations of the ratio of two like Poisson counts,
 * sqrt(2 / n); 18 % at the 280 decisions a closed loop of 70k requests/s
 * makes in 4 ms; the 1/16 rules from about 2300 decisions per probe,
 * 580k/s). */
#define FLOWQ__COALESCE_WIN_NUM 17u
#define FLOWQ__COALESCE_WIN_DEN 16u
#define FLOWQ__COALESCE_SIGMAS  3u

enum flowq__coalesce_phase {
	FLOWQ__COALESCE_PROBE_OFF,
	FLOWQ__COALESCE_PROBE_ON,
	FLOWQ__COALESCE_HOLD,
};

struct flowq__coalesce {
	/* Read by every dispatcher (relaxed), written by the lock holder. */
	_Atomic int64_t start;  /* the current period's; INT64_MIN: none yet */
	_Atomic int64_t len;    /* and its length, ns */
	_Atomic uint32_t phase; /* enum flowq__coalesce_phase */
	_Atomic bool on;        /* the wait runs in the current period */
	_Atomic uint32_t lock;  /* 1 while a dispatcher ends a period */
	/* The lock holder's. */
	uint64_t start_decided; /* the engine's decided count at start */
	uint64_t off_n;         /* PROBE_OFF's decisions and length */
	int64_t off_ns;
	int64_t hold_ns; /* the last hold's length; 0: none yet */
	bool held_on;    /* and its decision */
	/* Holds decided, by decision, and periods dropped: written by the
	 * lock holder alone (a relaxed load and store, no locked
	 * instruction), read by flowq_stats_coalesce() at any time. */
	_Atomic uint64_t chose_on, chose_off, dropped;
};

/** Start the cycle: PROBE_OFF, wait off, the first period begins at the
 * first step. Not concurrent with anything else on @p c. */
void
flowq__coalesce_init(struct flowq__coalesce *c);

/** Whether the current period has lasted its length at @p now (or none has
 * begun): then a dispatcher should take the lock and step. */
static inline bool
flowq__coalesce_due(const struct flowq__coalesce *c, int64_t now)
{
	int64_t start = atomic_load_explicit(&c->start, memory_order_relaxed);
	return start == INT64_MIN ||
	       now - start >= atomic_load_explicit(&c->len, memory_order_relaxed);
}

/** Take the right to end the period. @return false if another dispatcher
 * holds it (go on without). Acquire: pairs with step's release. */
static inline bool
flowq__coalesce_trylock(struct flowq__coalesce *c)
{
	return atomic_load_explicit(&c->lock, memory_order_relaxed) == 0 &&
	       atomic_exchange_explicit(&c->lock, 1, memory_order_acquire) == 0;
}

/** Lock held: end the current period at @p now if it is due, the engine
 * having decided @p decided outcomes so far (a running total), start the
 * next one, and release the lock. */
void
flowq__coalesce_step(struct flowq__coalesce *c, uint64_t decided, int64_t now);

/** Whether the current period has overrun at @p now (lasted over
 * FLOWQ__COALESCE_OVERRUN times its length: an idle engine, no rounds to
 * step it): the next step drops it and turns the wait off. */
static inline bool
flowq__coalesce_overrun(const struct flowq__coalesce *c, int64_t now)
{
	int64_t start = atomic_load_explicit(&c->start, memory_order_relaxed);
	return start != INT64_MIN &&
	       now - start > FLOWQ__COALESCE_OVERRUN *
				     atomic_load_explicit(&c->len, memory_order_relaxed);
}

/** Whether the wait runs now. */
static inline bool
flowq__coalesce_on(const struct flowq__coalesce *c)
{
	return atomic_load_explicit(&c->on, memory_order_relaxed);
}

#endif /* FLOWQ_CORE_COALESCE_H */
