/*
 * stress_req: threads race the request state machine on a shared pool.
 *
 *   stress_req THREADS [ROUNDS [SEED]]     (defaults: ROUNDS 1000, SEED 1)
 *
 * Each round the main thread re-initializes a pool of POOL requests; then
 * every worker walks the whole pool (all in the same order, or each in its
 * own random order: the mode changes per round) and on each request tries, at
 * random, a subset of: claim [T1], finalize [T2] with a random valid
 * (outcome, cause), release [T3], in that order. A REJECTED_* finalize is
 * tried only by the worker whose claim won in the same visit: the engine's
 * rule (only the submitter rejects), which [T4], a plain release store,
 * relies on. With any worker rejecting, the store lost racing rejections
 * (976 violations in one run of 4 threads), which is how this test caught
 * the rule missing from a first version of the change. After the round the main
 * thread checks every request. Each request is one item: THREADS workers
 * making up to three attempts each on ROUNDS * POOL items.
 *
 * Checks (each failure is one violation, described on stderr):
 *  - exactly once: per request at most one claim returns 0, and one did iff
 *    the state word has SUBMITTED; at most one finalize returns true, and one
 *    did iff the state word holds an outcome, which is the winner's (outcome,
 *    cause); at most one release returns 0, and one did iff RELEASED is set,
 *    which implies DISPATCHED; an unclaimed request is still the word 0;
 *  - return codes: claim gives 0 or -EBUSY; a finalize after this thread's own
 *    claim attempt loses only to a decided outcome; release gives 0 or
 *    -EALREADY exactly when the decided outcome is DISPATCHED, else -EINVAL;
 *  - publication: each worker writes its own note in the request's slot just
 *    before its finalize; a loser identifies the winner from the state word
 *    (in each round every (outcome, cause) pair belongs to one worker) and
 *    reads the winner's note with plain loads. The finalize contract (release
 *    on success, acquire on the loser's side) makes that read race-free and
 *    the value current; TSan reports it otherwise;
 *  - conservation: per outcome, the finalize wins counted by the workers equal
 *    the outcomes found in the pool; claims, releases likewise; the outcomes
 *    (with PENDING for requests nobody finalized) add up to the items.
 *
 * Output: exactly one line on stdout,
 *   SUMMARY stress_req threads=T items=N violations=V seconds=S
 * (details and counters go to stderr); the exit status is 1 if V > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "req.h"

#include "stress_soak.h"
#include "test_util.h"

#define POOL        1024 /* a power of two: odd strides walk the whole pool */
#define NPAIRS      13
#define MAX_THREADS NPAIRS /* every worker must own at least one pair */

/* Every valid (outcome, cause) pair, written out from flowq/types.h. */
static const struct {
	enum flowq_outcome o;
	enum flowq_cause c;
} pairs[NPAIRS] = {
	{FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE},
	{FLOWQ_REJECTED_CAPACITY, FLOWQ_CAUSE_CAPACITY_GLOBAL},
	{FLOWQ_REJECTED_CAPACITY, FLOWQ_CAUSE_CAPACITY_BAND},
	{FLOWQ_REJECTED_CAPACITY, FLOWQ_CAUSE_CAPACITY_FLOW},
	{FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_DEADLINE_PASSED},
	{FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_SHUTDOWN},
	{FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_INVALID_REQUEST},
	{FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_UNKNOWN_BAND},
	{FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_NO_MEMORY},
	{FLOWQ_EVICTED_TTL, FLOWQ_CAUSE_TTL_EXPIRED},
	{FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED},
	{FLOWQ_EVICTED_DISPLACED, FLOWQ_CAUSE_DISPLACED},
	{FLOWQ_EVICTED_OTHER, FLOWQ_CAUSE_SHUTDOWN},
};

struct slot {
	struct flowq_req req;
	/* Successful calls, counted by the callers (checked by main). */
	_Atomic uint32_t claim_wins, fin_wins, rel_wins;
	/* 1 + the pair of the finalize that returned true. */
	_Atomic uint32_t win_pair;
	/* note[t]: written by worker t only, before its finalize. */
	uint64_t note[MAX_THREADS];
};

struct worker {
	pthread_t thread;
	unsigned id;
	uint64_t rng;
	/* The worker's own counters, read by main after the join. */
	uint64_t claim_ok, claim_busy, queued_ok;
	uint64_t fin_won[NPAIRS], fin_lost, fin_unclaimed, fin_boundary, fin_skipped;
	uint64_t rel_ok, rel_already, rel_inval;
};

static struct slot pool[POOL];
static pthread_barrier_t round_start, round_done;
static unsigned nthreads;
static unsigned long rounds = 1000;
static uint64_t seed = 1;

/* The worker that owns pair @p on request @r in round @round. */
static unsigned
pair_owner(unsigned p, unsigned r, unsigned long round)
{
	return (unsigned)((p + r + round) % nthreads);
}

static int
pair_index(enum flowq_outcome o, enum flowq_cause c)
{
	for (int p = 0; p < NPAIRS; p++) {
		if (pairs[p].o == o && pairs[p].c == c)
			return p;
	}
	return -1;
}

/* A pair this worker owns here; DISPATCHED half the time when it owns it. */
static unsigned
pick_pair(struct worker *w, unsigned r, unsigned long round, uint64_t rnd)
{
	unsigned mine[NPAIRS], n = 0;

	for (unsigned p = 0; p < NPAIRS; p++) {
		if (pair_owner(p, r, round) == w->id)
			mine[n++] = p;
	}
	if (mine[0] == 0 && (rnd & 1))
		return 0;
	return mine[(rnd >> 1) % n];
}

static uint64_t
note_value(unsigned long round, unsigned r, unsigned t)
{
	return ((uint64_t)round << 24) ^ ((uint64_t)r << 8) ^ t ^ 0xa5a5000000000000ull;
}

static void
visit(struct worker *w, unsigned r, unsigned long round)
{
	struct slot *s = &pool[r];
	struct flowq_req *req = &s->req;
	uint64_t rnd = test_rng_next(&w->rng);
	bool tried_claim = rnd % 16 != 0;     /* 15/16 */
	bool tried_fin = (rnd >> 4) % 8 != 0; /* 7/8 */
	bool tried_rel = (rnd >> 7) % 4 != 0; /* 3/4 */
	bool decided_seen = false, claimed_here = false;
	int rc;

	if (tried_claim) {
		rc = flowq__req_claim(req);
		if (rc == 0) {
			claimed_here = true;
			w->claim_ok++;
			atomic_fetch_add_explicit(&s->claim_wins, 1,
						  memory_order_relaxed);
			/*
			 * The claimer is the submitter: most of the time it
			 * admits the request ([T4]). Nothing can come between:
			 * only rejections are possible before [T4], and only
			 * the submitter decides them (below).
			 */
			if ((rnd >> 20) % 4 != 0) {
				int mq = flowq__req_mark_queued(req);

				if (mq == 0)
					w->queued_ok++;
				else
					test_violation(
						"stress_req",
						"mark_queued returned %d with outcome %s",
						mq,
						flowq_outcome_str(
							flowq_req_outcome(req)));
			}
		} else if (rc == -EBUSY) {
			w->claim_busy++;
		} else {
			test_violation("stress_req", "claim returned %d", rc);
		}
	}
	if (tried_fin) {
		unsigned p = pick_pair(w, r, round, rnd >> 9);

		/*
		 * The engine's rule that [T4] relies on (req.h): only the
		 * submitter, the thread whose claim won, decides a REJECTED_*
		 * outcome. Other threads try only the outcomes of a queued
		 * request, which race [T4]'s store.
		 */
		if (flowq_outcome_is_rejected(pairs[p].o) && !claimed_here) {
			w->fin_skipped++;
			goto release;
		}
		s->note[w->id] = note_value(round, r, w->id);
		if (flowq__req_finalize(req, pairs[p].o, pairs[p].c)) {
			w->fin_won[p]++;
			decided_seen = true;
			atomic_fetch_add_explicit(&s->fin_wins, 1, memory_order_relaxed);
			atomic_store_explicit(&s->win_pair, p + 1, memory_order_relaxed);
			if (flowq_req_outcome(req) != pairs[p].o ||
			    flowq_req_cause(req) != pairs[p].c)
				test_violation(
					"stress_req",
					"round %lu req %u: winner reads back %s/%s, "
					"set %s/%s",
					round, r,
					flowq_outcome_str(flowq_req_outcome(req)),
					flowq_cause_str(flowq_req_cause(req)),
					flowq_outcome_str(pairs[p].o),
					flowq_cause_str(pairs[p].c));
		} else {
			/* Acquire (the getters): pairs with the winner's release. */
			enum flowq_outcome o = flowq_req_outcome(req);
			enum flowq_cause c = flowq_req_cause(req);

			if (o != FLOWQ_PENDING) {
				int wp = pair_index(o, c);
				unsigned owner;

				w->fin_lost++;
				decided_seen = true;
				if (wp < 0) {
					test_violation(
						"stress_req",
						"round %lu req %u: invalid decided "
						"pair %d/%d",
						round, r, (int)o, (int)c);
				} else if ((owner = pair_owner((unsigned)wp, r, round)) ==
					   w->id) {
					test_violation(
						"stress_req",
						"round %lu req %u: lost to my own pair "
						"%s/%s",
						round, r, flowq_outcome_str(o),
						flowq_cause_str(c));
				} else if (s->note[owner] !=
					   note_value(round, r, owner)) {
					test_violation(
						"stress_req",
						"round %lu req %u: winner %u's note "
						"not visible",
						round, r, owner);
				}
			} else if (tried_claim) {
				/*
				 * Claimed (by us or, per -EBUSY, before us) and
				 * still pending: the only other reason to fail is
				 * the [T4] boundary. A rejection fails only once
				 * QUEUED is set, and QUEUED never clears, so it
				 * must be set now. An eviction fails only before
				 * [T4], which may have happened since: not checkable.
				 */
				uint32_t st = atomic_load_explicit(&req->priv.state,
								   memory_order_acquire);

				w->fin_boundary++;
				if (flowq_outcome_is_rejected(pairs[p].o) &&
				    !(st & FLOWQ__RS_QUEUED))
					test_violation(
						"stress_req",
						"round %lu req %u: rejection refused "
						"while not queued and pending",
						round, r);
			} else {
				w->fin_unclaimed++;
			}
		}
	}
release:
	if (tried_rel) {
		enum flowq_outcome o;

		rc = flowq__req_release(req);
		o = flowq_req_outcome(req);
		if (rc == 0) {
			w->rel_ok++;
			atomic_fetch_add_explicit(&s->rel_wins, 1, memory_order_relaxed);
			if (o != FLOWQ_DISPATCHED)
				test_violation("stress_req",
					       "round %lu req %u: released a %s request",
					       round, r, flowq_outcome_str(o));
		} else if (rc == -EALREADY) {
			w->rel_already++;
			if (o != FLOWQ_DISPATCHED || !flowq_req_released(req))
				test_violation(
					"stress_req",
					"round %lu req %u: -EALREADY on %s, released=%d",
					round, r, flowq_outcome_str(o),
					flowq_req_released(req));
		} else if (rc == -EINVAL) {
			w->rel_inval++;
			/* Once decided the outcome is final: -EINVAL must mean
			 * "not dispatched". */
			if (decided_seen && o == FLOWQ_DISPATCHED)
				test_violation(
					"stress_req",
					"round %lu req %u: -EINVAL on a dispatched "
					"request",
					round, r);
		} else {
			test_violation("stress_req",
				       "round %lu req %u: release returned %d", round, r,
				       rc);
		}
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned long round = 0; round < rounds; round++) {
		uint64_t rs = seed ^ (round * 0x9e3779b97f4a7c15ull);
		unsigned start, stride;

		pthread_barrier_wait(&round_start);
		switch (round % 3) {
		case 0: /* everyone in step: the most collisions */
			start = 0;
			stride = 1;
			break;
		case 1: /* one shared random walk */
			start = (unsigned)test_rng_next(&rs) % POOL;
			stride = (unsigned)test_rng_next(&rs) % POOL | 1;
			break;
		default: /* each worker its own random walk */
			start = (unsigned)test_rng_next(&w->rng) % POOL;
			stride = (unsigned)test_rng_next(&w->rng) % POOL | 1;
			break;
		}
		for (unsigned i = 0; i < POOL; i++)
			visit(w, (start + i * stride) % POOL, round);
		pthread_barrier_wait(&round_done);
	}
	return NULL;
}

struct totals {
	uint64_t claimed, released, outcomes[FLOWQ_OUTCOME_COUNT];
};

/* After a round, with every worker parked at the barrier. */
static void
check_round(unsigned long round, struct totals *tot)
{
	const uint32_t known = FLOWQ__RS_OUTCOME_MASK | FLOWQ__RS_CAUSE_MASK |
			       FLOWQ__RS_SUBMITTED | FLOWQ__RS_RELEASED |
			       FLOWQ__RS_QUEUED;

	for (unsigned r = 0; r < POOL; r++) {
		struct slot *s = &pool[r];
		uint32_t st =
			atomic_load_explicit(&s->req.priv.state, memory_order_relaxed);
		uint32_t cw = atomic_load_explicit(&s->claim_wins, memory_order_relaxed);
		uint32_t fw = atomic_load_explicit(&s->fin_wins, memory_order_relaxed);
		uint32_t rw = atomic_load_explicit(&s->rel_wins, memory_order_relaxed);
		uint32_t wp = atomic_load_explicit(&s->win_pair, memory_order_relaxed);
		enum flowq_outcome o = (enum flowq_outcome)(st & FLOWQ__RS_OUTCOME_MASK);
		enum flowq_cause c = (enum flowq_cause)((st & FLOWQ__RS_CAUSE_MASK) >>
							FLOWQ__RS_CAUSE_SHIFT);
		bool claimed = st & FLOWQ__RS_SUBMITTED,
		     released = st & FLOWQ__RS_RELEASED;

		if (st & ~known)
			test_violation("stress_req",
				       "round %lu req %u: stray bits in state 0x%" PRIx32,
				       round, r, st);
		if (cw > 1 || (cw == 1) != claimed)
			test_violation("stress_req",
				       "round %lu req %u: %" PRIu32
				       " claims won, state 0x%" PRIx32,
				       round, r, cw, st);
		if (!claimed && st != 0)
			test_violation("stress_req",
				       "round %lu req %u: unclaimed but state 0x%" PRIx32,
				       round, r, st);
		if (fw > 1 || (fw == 1) != (o != FLOWQ_PENDING))
			test_violation("stress_req",
				       "round %lu req %u: %" PRIu32
				       " finalizes won, outcome %s",
				       round, r, fw, flowq_outcome_str(o));
		if (fw == 1 && (wp == 0 || wp > NPAIRS || pairs[wp - 1].o != o ||
				pairs[wp - 1].c != c))
			test_violation(
				"stress_req",
				"round %lu req %u: state holds %s/%s, not the winner's "
				"pair %" PRIu32,
				round, r, flowq_outcome_str(o), flowq_cause_str(c), wp);
		if (!flowq_cause_valid_for(o, c))
			test_violation("stress_req",
				       "round %lu req %u: invalid pair %d/%d", round, r,
				       (int)o, (int)c);
		if (rw > 1 || (rw == 1) != released)
			test_violation("stress_req",
				       "round %lu req %u: %" PRIu32
				       " releases won, state 0x%" PRIx32,
				       round, r, rw, st);
		/* rejected = never queued, everything else decided = queued */
		if (o != FLOWQ_PENDING &&
		    flowq_outcome_is_rejected(o) == ((st & FLOWQ__RS_QUEUED) != 0))
			test_violation("stress_req",
				       "round %lu req %u: outcome %s with QUEUED %s",
				       round, r, flowq_outcome_str(o),
				       (st & FLOWQ__RS_QUEUED) ? "set" : "clear");
		if (released && o != FLOWQ_DISPATCHED)
			test_violation("stress_req", "round %lu req %u: released but %s",
				       round, r, flowq_outcome_str(o));
		tot->claimed += claimed;
		tot->released += released;
		if ((unsigned)o < FLOWQ_OUTCOME_COUNT)
			tot->outcomes[o]++;
	}
}

static void
reset_pool(void)
{
	for (unsigned r = 0; r < POOL; r++) {
		struct slot *s = &pool[r];

		flowq_req_init(&s->req);
		atomic_store_explicit(&s->claim_wins, 0, memory_order_relaxed);
		atomic_store_explicit(&s->fin_wins, 0, memory_order_relaxed);
		atomic_store_explicit(&s->rel_wins, 0, memory_order_relaxed);
		atomic_store_explicit(&s->win_pair, 0, memory_order_relaxed);
	}
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	static struct worker workers[MAX_THREADS];
	struct totals tot = {0};
	uint64_t claim_ok = 0, claim_busy = 0, fin_lost = 0, fin_unclaimed = 0;
	uint64_t fin_boundary = 0, queued_ok = 0, fin_skipped = 0;
	uint64_t rel_ok = 0, rel_already = 0, rel_inval = 0;
	uint64_t won_by_outcome[FLOWQ_OUTCOME_COUNT] = {0}, items, decided = 0;
	double t0, secs;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: stress_req THREADS [ROUNDS [SEED]]\n");
		return 2;
	}
	nthreads = (unsigned)test_parse_ulong("stress_req", argv[1], "thread count", 1,
					      MAX_THREADS);
	if (argc > 2)
		rounds = test_parse_ulong("stress_req", argv[2], "round count", 1,
					  1ul << 30);
	if (argc > 3)
		seed = test_parse_ulong("stress_req", argv[3], "seed", 0, ~0ul);
	memset(workers, 0, sizeof(workers)); /* a clean slate for each soak iteration */
	items = (uint64_t)rounds * POOL;
	fprintf(stderr, "stress_req: threads=%u rounds=%lu pool=%d seed=%" PRIu64 "\n",
		nthreads, rounds, POOL, seed);

	if (pthread_barrier_init(&round_start, NULL, nthreads + 1) != 0 ||
	    pthread_barrier_init(&round_done, NULL, nthreads + 1) != 0) {
		fprintf(stderr, "stress_req: pthread_barrier_init failed\n");
		return 2;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		workers[t].id = t;
		workers[t].rng = seed * 1000003u + t + 1;
		if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) !=
		    0) {
			fprintf(stderr, "stress_req: pthread_create failed\n");
			return 2;
		}
	}
	t0 = test_now_seconds();
	for (unsigned long round = 0; round < rounds; round++) {
		reset_pool();
		pthread_barrier_wait(&round_start);
		pthread_barrier_wait(&round_done);
		check_round(round, &tot);
	}
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(workers[t].thread, NULL);
	secs = test_now_seconds() - t0;

	for (unsigned t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];

		claim_ok += w->claim_ok;
		claim_busy += w->claim_busy;
		fin_lost += w->fin_lost;
		fin_unclaimed += w->fin_unclaimed;
		fin_boundary += w->fin_boundary;
		queued_ok += w->queued_ok;
		fin_skipped += w->fin_skipped;
		rel_ok += w->rel_ok;
		rel_already += w->rel_already;
		rel_inval += w->rel_inval;
		for (int p = 0; p < NPAIRS; p++)
			won_by_outcome[pairs[p].o] += w->fin_won[p];
	}
	/* Conservation: what the workers say they won is what the pool holds. */
	if (claim_ok != tot.claimed)
		test_violation("stress_req",
			       "claims won %" PRIu64 " != requests claimed %" PRIu64,
			       claim_ok, tot.claimed);
	if (rel_ok != tot.released)
		test_violation("stress_req",
			       "releases won %" PRIu64 " != requests released %" PRIu64,
			       rel_ok, tot.released);
	for (int o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		decided += tot.outcomes[o];
		if (won_by_outcome[o] != tot.outcomes[o])
			test_violation("stress_req",
				       "%s: %" PRIu64 " finalizes won, %" PRIu64
				       " requests hold it",
				       flowq_outcome_str((enum flowq_outcome)o),
				       won_by_outcome[o], tot.outcomes[o]);
	}
	if (decided + tot.outcomes[FLOWQ_PENDING] != items)
		test_violation("stress_req",
			       "outcomes add up to %" PRIu64 ", want %" PRIu64,
			       decided + tot.outcomes[FLOWQ_PENDING], items);
	/* A real run must actually have raced, or it checked nothing. */
	if (nthreads > 1 && rounds >= 100 &&
	    (claim_busy == 0 || fin_lost == 0 || rel_already == 0 || queued_ok == 0 ||
	     fin_boundary == 0))
		test_violation("stress_req",
			       "no contention seen (claim_busy %" PRIu64
			       ", fin_lost %" PRIu64 ", rel_already %" PRIu64 ")",
			       claim_busy, fin_lost, rel_already);

	fprintf(stderr,
		"stress_req: claimed=%" PRIu64 " claim_busy=%" PRIu64 " decided=%" PRIu64
		" pending=%" PRIu64 " fin_lost=%" PRIu64 " fin_unclaimed=%" PRIu64
		" dispatched=%" PRIu64 " released=%" PRIu64 " rel_already=%" PRIu64
		" rel_inval=%" PRIu64 " queued=%" PRIu64 " fin_skipped=%" PRIu64
		" fin_boundary=%" PRIu64 "\n",
		tot.claimed, claim_busy, decided, tot.outcomes[FLOWQ_PENDING], fin_lost,
		fin_unclaimed, tot.outcomes[FLOWQ_DISPATCHED], tot.released, rel_already,
		rel_inval, queued_ok, fin_skipped, fin_boundary);
	stress_soak_count("ops", items);
	for (int o = FLOWQ_DISPATCHED; o < FLOWQ_OUTCOME_COUNT; o++)
		stress_soak_count(flowq_outcome_str((enum flowq_outcome)o), won_by_outcome[o]);
	printf("SUMMARY stress_req threads=%u items=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       nthreads, items, atomic_load(test_violations()), secs);
	pthread_barrier_destroy(&round_start);
	pthread_barrier_destroy(&round_done);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_req", argc, argv, run, test_violations());
}
