/*
 * stress_flowcap: T threads submit huge requests on one flow whose byte
 * limit is FLOWQ_LIMIT_MAX (2^62), on a polled engine that is never polled
 * while they run, so an admitted request never leaves: the flow's byte
 * limit must hold over the whole run, not only at each instant.
 *
 *   stress_flowcap T [ATTEMPTS [SEED]]   (defaults: ATTEMPTS 40000 per
 *                                         thread, SEED 1; T <= 16)
 *
 * Sizes are 2^62 bytes (two attempts in three) and 2^61, so at most two
 * requests fit and every other attempt is refused at the flow limit.
 * This is the case that broke the flow reservation when it added first and
 * checked after (core/submit.c flow_cap_reserve()): with three adds of
 * 2^62 in flight on top of a held request the counter passed 2^64 and
 * wrapped, and later reserves read a small total and were admitted (a
 * first program, 6 threads submitting 2^62-byte requests for 3 s: 25 to
 * 301 admitted, against 1 allowed; this one with 12 or 16 threads: 6 to
 * 18 violations in each of 6 runs of 0.15 s). More threads than CPUs is
 * the point: adds stay in flight while their threads are preempted.
 *
 * Checks (each failure counts one violation, described on stderr):
 *  - every submit returns 0 or -ENOSPC, and a refusal's cause is
 *    CAPACITY_FLOW;
 *  - the bytes admitted so far (a shadow sum each thread adds to after its
 *    submit returned 0) never exceed the limit;
 *  - at the end: the flow's queued bytes and count (flowq_stats_flow())
 *    equal the admitted ones; destroying the engine completes every
 *    admitted request exactly once, as EVICTED_OTHER / shutdown.
 *
 * Output: one line on stdout,
 *   SUMMARY stress_flowcap threads=T attempts=N admitted=A violations=V
 *     seconds=S
 * (details to stderr); the exit status is 1 if V > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>

#include "stress_soak.h"
#include "test_util.h"

#define PROG        "stress_flowcap"
#define MAX_THREADS 16

struct held {
	struct flowq_req req;
	_Atomic unsigned completions;
	_Atomic int outcome;
	_Atomic int cause;
};

static struct flowq_engine *engine;
/* Request records: each thread takes one, keeps it while its submits are
 * refused and takes the next once one is admitted (the engine then holds
 * it to the end). More than the limit allows, so that an over-admission is
 * seen and counted rather than running out at once. */
#define POOL (MAX_THREADS + 64)
static struct held pool[POOL];
static _Atomic unsigned pool_next;
static _Atomic unsigned admitted;
static _Atomic uint64_t admitted_bytes;
static pthread_barrier_t start;

struct worker {
	pthread_t thread;
	uint64_t rng;
	unsigned long attempts;
};

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct held *h = arg;
	atomic_store(&h->outcome, (int)flowq_req_outcome(req));
	atomic_store(&h->cause, (int)flowq_req_cause(req));
	atomic_fetch_add(&h->completions, 1);
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A fresh record from the pool, or NULL when it is used up. */
static struct held *
take(void)
{
	unsigned k = atomic_fetch_add(&pool_next, 1);
	return k < POOL ? &pool[k] : NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct held *h = take();
	pthread_barrier_wait(&start);
	for (unsigned long i = 0; h && i < w->attempts; i++) {
		uint64_t bytes = FLOWQ_LIMIT_MAX >> (xorshift(&w->rng) % 3 == 0 ? 1 : 0);
		flowq_req_init(&h->req);
		h->req.flow_id = "x";
		h->req.flow_id_len = 1;
		h->req.bytes = bytes;
		h->req.complete = on_complete;
		h->req.arg = h;
		int rc = flowq_submit(engine, &h->req);
		if (rc == -ENOSPC) {
			if (flowq_req_cause(&h->req) != FLOWQ_CAUSE_CAPACITY_FLOW)
				test_violation(PROG, "refused with cause %s",
					       flowq_cause_str(flowq_req_cause(&h->req)));
			continue;
		}
		if (rc != 0) {
			test_violation(PROG, "submit returned %d", rc);
			continue;
		}
		/* Admitted: the engine keeps it queued to the end. */
		unsigned n = atomic_fetch_add(&admitted, 1) + 1;
		uint64_t sum = atomic_fetch_add(&admitted_bytes, bytes) + bytes;
		if (sum > FLOWQ_LIMIT_MAX || sum < bytes)
			test_violation(PROG,
				       "%u requests admitted, %" PRIu64
				       " bytes in all (limit %" PRIu64 ")",
				       n, sum, (uint64_t)FLOWQ_LIMIT_MAX);
		h = take();
	}
	return NULL;
}

static int
run(int argc, char **argv)
{
	static struct worker workers[MAX_THREADS];
	unsigned long attempts = 40000, seed = 1;
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: " PROG " THREADS [ATTEMPTS [SEED]]\n");
		return 2;
	}
	unsigned nt =
		(unsigned)test_parse_ulong(PROG, argv[1], "thread count", 1, MAX_THREADS);
	if (argc > 2)
		attempts =
			test_parse_ulong(PROG, argv[2], "attempts per thread", 1, ~0ul);
	if (argc > 3)
		seed = test_parse_ulong(PROG, argv[3], "seed", 0, ~0ul);
	seed += stress_soak_iteration();
	memset(workers, 0, sizeof(workers));
	memset(pool, 0, sizeof(pool));
	atomic_store(&pool_next, 0);
	atomic_store(&admitted, 0);
	atomic_store(&admitted_bytes, 0);

	struct flowq_config c;
	char err[256] = "";
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_POLLED;
	c.shards = 1;
	c.flow_max_bytes = FLOWQ_LIMIT_MAX;
	c.default_band.max_bytes = 0;
	c.errbuf = err;
	c.errbuf_size = sizeof(err);
	int rc = flowq_engine_create(&c, &engine);
	if (rc != 0) {
		fprintf(stderr, PROG ": engine create: %d %s\n", rc, err);
		return 2;
	}
	if (pthread_barrier_init(&start, NULL, nt + 1) != 0) {
		fprintf(stderr, PROG ": pthread_barrier_init failed\n");
		return 2;
	}
	for (unsigned t = 0; t < nt; t++) {
		workers[t].rng = seed * 0x9e3779b97f4a7c15ull + t + 1;
		workers[t].attempts = attempts;
		if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) !=
		    0) {
			fprintf(stderr, PROG ": pthread_create failed\n");
			return 2;
		}
	}
	double t0 = test_now_seconds();
	pthread_barrier_wait(&start);
	for (unsigned t = 0; t < nt; t++)
		pthread_join(workers[t].thread, NULL);
	double secs = test_now_seconds() - t0;

	/* Quiescent: the flow holds exactly what was admitted. */
	unsigned n = atomic_load(&admitted);
	uint64_t nbytes = atomic_load(&admitted_bytes);
	struct flowq_stats st;
	rc = flowq_stats_flow(engine, "x", 1, 0, &st);
	if (rc != 0)
		test_violation(PROG, "flowq_stats_flow: %d", rc);
	else if (st.queued != n || st.queued_bytes != nbytes)
		test_violation(PROG,
			       "flow queues %" PRIu64 " requests, %" PRIu64
			       " bytes; admitted %u, %" PRIu64,
			       st.queued, st.queued_bytes, n, nbytes);
	/* Destroy evicts every admitted request, each exactly once. */
	flowq_engine_destroy(engine);
	unsigned used = atomic_load(&pool_next);
	unsigned completed = 0;
	for (unsigned k = 0; k < POOL && k < used; k++) {
		unsigned got = atomic_load(&pool[k].completions);
		completed += got;
		if (got > 1)
			test_violation(PROG, "request %u completed %u times", k, got);
		if (got == 1 && (atomic_load(&pool[k].outcome) != FLOWQ_EVICTED_OTHER ||
				 atomic_load(&pool[k].cause) != FLOWQ_CAUSE_SHUTDOWN))
			test_violation(PROG, "request %u: outcome %s, cause %s", k,
				       flowq_outcome_str(atomic_load(&pool[k].outcome)),
				       flowq_cause_str(atomic_load(&pool[k].cause)));
	}
	if (completed != n)
		test_violation(PROG, "%u completions for %u admitted", completed, n);

	stress_soak_count("ops", (uint64_t)nt * attempts);
	printf("SUMMARY " PROG
	       " threads=%u attempts=%lu admitted=%u violations=%lu seconds=%.3f\n",
	       nt, attempts, n, atomic_load(test_violations()), secs);
	pthread_barrier_destroy(&start);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main(PROG, argc, argv, run, test_violations());
}
