/*
 * stress_engine: the whole engine in threaded mode under concurrency.
 *
 *   stress_engine PRODUCERS SHARDS [REQUESTS [SEED [ORDERING [DISPLACEMENT]]]]
 *       REQUESTS per producer (default 100000), SEED (default 1),
 *       ORDERING (default: the engine's default, fcfs) the ordering policy
 *       of every band, or "mixed": edf and slo_deadline bands under both
 *       global_strict and round_robin (priority 2: edf/global_strict, 1:
 *       slo_deadline/global_strict, 0: edf/round_robin, -1:
 *       slo_deadline/round_robin). With an ORDERING, a quarter of the
 *       requests also carry a deadline (50-550 us ahead), so the deadline
 *       orderings reorder, expire and cancel requests in the middle of their
 *       per-flow heaps while producers race; "-" = the default.
 *       DISPLACEMENT the engine's displacement policy (default "none")
 *
 * PRODUCERS threads each own a window of WINDOW requests and submit them
 * over FLOWS flows x PRIOS priorities (flows are created just in time and,
 * with a 1 ms GC timeout, collected and re-created while submits run:
 * registry churn), with random TTLs, random cancels racing dispatch and
 * expiry, and a global limit of GLOBAL_LIMIT queued requests. A small
 * concurrency limit keeps the gate scarce, so dispatchers sleep on it and
 * are woken by releases; a producer releases its dispatched requests when it
 * reuses their slot (and with 1/4 probability the completion releases at
 * once, from the dispatcher thread). Odd producers send two thirds of
 * their submits through flowq_submit_batch() in batches of 1..batch_max
 * (BATCH_MAX, or the 7th argument, up to BATCH_LIMIT),
 * half of a batch's requests on the flow of the one before (runs), and
 * give their requests back with flowq_release_batch(). Requests on flows
 * t0..t3 at priority 0 name their flow by a handle half of the time.
 *
 * Checks (each failure is a violation, described on stderr):
 *  - exactly once: every accepted submit gets exactly one completion, with a
 *    DISPATCHED or EVICTED_* outcome whose cause is valid for it; a rejected
 *    submit gets none and its outcome is REJECTED_*;
 *  - conservation at quiescence: accepted = sum of completions by outcome,
 *    and the engine's own statistics agree with the producers' counts;
 *  - capacity: queued requests seen by the hosts (incremented before the
 *    submit, decremented at the completion) never exceed GLOBAL_LIMIT +
 *    PRODUCERS (each producer may be between its increment and the
 *    engine's decision) + (batch_max - 1) per odd producer (the rest of
 *    the batch it is preparing); with displacement, + MAX_PENDING more (the
 *    engine's displacement_max_pending: newcomers whose victims' capacity
 *    has not come back yet);
 *  - displacement: a displaced request's band is below the band of some
 *    request submitted while it was queued (checked loosely: never the
 *    top priority), and nothing is displaced with "none";
 *  - liveness: a watchdog thread aborts the run, after printing the
 *    engine's scheduling state, when nothing was submitted or completed for
 *    STALL_SECONDS (a lost wake-up; CTest's timeout is the last resort).
 *
 * Output: one line on stdout,
 *   SUMMARY stress_engine producers=P shards=S items=N violations=V seconds=T
 * (with ", ordering=O" before violations when ORDERING is given).
 * Exit status 1 if V > 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/flowq.h>

#include "engine.h"
#include "stress_engine_util.h"
#include "stress_soak.h"
#include "test_util.h"

#define PROG          "stress_engine"
#define WINDOW        64
#define FLOWS         48
#define PRIOS         4
#define GLOBAL_LIMIT  256
#define INFLIGHT      16
#define MAX_PRODUCERS 16
#define STALL_SECONDS 10
#define MAX_PENDING   8
/* Batches (odd producers): up to this many requests per
 * flowq_submit_batch() and dispatched requests per flowq_release_batch()
 * by default. Small: the capacity check's slack grows with it. The 7th
 * argument raises it up to BATCH_LIMIT, so that batches cross the
 * submit's look-ahead chunks (16 requests, core/submit.c ahead_get())
 * while flows are collected (the 1 ms GC below). */
#define BATCH_MAX   6
#define BATCH_LIMIT 40
static unsigned batch_max = BATCH_MAX;

struct hreq {
	struct flowq_req req;
	_Atomic int completions;
	_Atomic int outcome;
	_Atomic int released_by_cb;
	bool outstanding; /* producer-private: submitted, completion not seen */
	bool batched;	  /* producer-private: prepared, in the next batch */
	bool to_release;  /* producer-private: waits for the next release batch */
	char id[16];
};

static struct flowq_engine *engine;
/* Handles on flows t0..t(NHANDLES-1) at priority 0: some requests on those
 * name their flow by handle instead of id (a run may mix both). */
#define NHANDLES 4
static struct flowq_flow *handles[NHANDLES];
/* Whether requests get deadlines too (an ORDERING was given). */
static bool with_deadlines;
static _Atomic uint64_t host_queued;
static _Atomic uint64_t host_queued_max;
static _Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT];
/* Submits + completions: the watchdog's measure of progress. */
static _Atomic uint64_t progress;

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct hreq *h = arg;
	enum flowq_outcome o = stress_completion_check(PROG, req, completed_by);
	if (o == FLOWQ_EVICTED_DISPLACED && req->priority >= PRIOS - 2)
		test_violation(PROG, "a request of the top band (%d) was displaced",
			       (int)req->priority);
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&host_queued, 1, memory_order_relaxed);
	/* Release half of the dispatched ones right here, on the
	 * dispatcher: the API allows it and it exercises the gate wake from a
	 * dispatcher thread. */
	if (o == FLOWQ_DISPATCHED && ((uintptr_t)h >> 6) % 2 == 0) {
		if (flowq_release(engine, req) != 0)
			test_violation(PROG, "release from the completion failed");
		atomic_store_explicit(&h->released_by_cb, 1, memory_order_relaxed);
	}
	stress_completion_publish(PROG, h, &h->outcome, &h->completions, o);
}

struct producer {
	pthread_t thread;
	unsigned index;
	unsigned long requests;
	uint64_t seed;
	uint64_t accepted, rejected, cancels_won;
	struct hreq *win;
	/* Prepared requests for the next flowq_submit_batch(), and
	 * dispatched ones for the next flowq_release_batch(). */
	struct hreq *batch[BATCH_LIMIT];
	unsigned nbatch, batch_size;
	struct flowq_req *rel[BATCH_LIMIT];
	unsigned nrel;
};

/* Give back the dispatched requests collected for release. */
static void
release_flush(struct producer *p)
{
	int rc[BATCH_LIMIT];
	if (!p->nrel)
		return;
	int n = flowq_release_batch(engine, p->rel, p->nrel, rc);
	if (n != (int)p->nrel)
		test_violation(PROG, "release_batch released %d of %u", n, p->nrel);
	for (unsigned i = 0; i < p->nrel; i++) {
		if (rc[i] != 0)
			test_violation(PROG, "release_batch: request %u returned %d", i, rc[i]);
		((struct hreq *)(void *)p->rel[i])->to_release = false;
	}
	p->nrel = 0;
}

/* Wait until slot @h's completion has run; then release it if needed
 * (odd producers release in batches). */
static void
settle(struct producer *p, struct hreq *h)
{
	if (!h->outstanding)
		return;
	if (atomic_load_explicit(&h->completions, memory_order_acquire) == 0)
		release_flush(p); /* what it waits for may need a slot back */
	while (atomic_load_explicit(&h->completions, memory_order_acquire) == 0)
		sched_yield();
	h->outstanding = false;
	if (atomic_load_explicit(&h->outcome, memory_order_relaxed) == FLOWQ_DISPATCHED &&
	    !atomic_load_explicit(&h->released_by_cb, memory_order_relaxed)) {
		if (p->index % 2) {
			h->to_release = true;
			p->rel[p->nrel++] = &h->req;
			if (p->nrel == batch_max)
				release_flush(p);
			return;
		}
		int rc = flowq_release(engine, &h->req);
		if (rc != 0)
			test_violation(PROG, "release returned %d", rc);
	}
}

static bool
try_settle(struct producer *p, struct hreq *h)
{
	if (h->outstanding && atomic_load_explicit(&h->completions, memory_order_acquire) == 0)
		return false;
	settle(p, h);
	return true;
}

/* Account submit result @p rc of slot @p h. */
static void
submitted(struct producer *p, struct hreq *h, int rc)
{
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	if (rc == 0) {
		h->outstanding = true;
		p->accepted++;
		return;
	}
	atomic_fetch_sub_explicit(&host_queued, 1, memory_order_relaxed);
	p->rejected++;
	if (!flowq_outcome_is_rejected(flowq_req_outcome(&h->req)))
		test_violation(PROG, "submit %d left outcome %s", rc,
			       flowq_outcome_str(flowq_req_outcome(&h->req)));
	/* -ETIMEDOUT: the deadline passed between the producer's clock read
	 * and its submit (a preempted producer on a loaded machine): legal,
	 * with its cause. */
	if (rc == -ETIMEDOUT && h->req.deadline_ns != 0) {
		if (flowq_req_cause(&h->req) != FLOWQ_CAUSE_DEADLINE_PASSED)
			test_violation(PROG, "-ETIMEDOUT with cause %s",
				       flowq_cause_str(flowq_req_cause(&h->req)));
	} else if (rc != -ENOSPC) {
		test_violation(PROG, "unexpected submit error %d", rc);
	}
}

/* Submit the prepared batch in one flowq_submit_batch() call. */
static void
batch_flush(struct producer *p)
{
	struct flowq_req *reqs[BATCH_LIMIT];
	int rc[BATCH_LIMIT];
	if (!p->nbatch)
		return;
	for (unsigned i = 0; i < p->nbatch; i++)
		reqs[i] = &p->batch[i]->req;
	int n = flowq_submit_batch(engine, reqs, p->nbatch, rc);
	int queued = 0;
	for (unsigned i = 0; i < p->nbatch; i++) {
		p->batch[i]->batched = false;
		queued += rc[i] == 0;
		submitted(p, p->batch[i], rc[i]);
	}
	if (n != queued)
		test_violation(PROG, "submit_batch returned %d with %d queued", n, queued);
	p->nbatch = 0;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	uint64_t rng = p->seed;
	unsigned long done = 0;
	unsigned prev_flow = 0;
	int32_t prev_prio = 0;
	while (done < p->requests) {
		struct hreq *h = &p->win[test_rng_next(&rng) % WINDOW];
		uint64_t r = test_rng_next(&rng);
		if (h->batched) {
			batch_flush(p);
			continue;
		}
		if (!try_settle(p, h)) {
			/* Still queued: maybe cancel it (races dispatch,
			 * expiry and the gate). */
			if (r % 8 == 0 && flowq_cancel(engine, &h->req) == 0)
				p->cancels_won++;
			batch_flush(p);
			release_flush(p);
			sched_yield();
			continue;
		}
		if (h->to_release) /* not before its release */
			release_flush(p);
		flowq_req_init(&h->req);
		atomic_store_explicit(&h->completions, 0, memory_order_relaxed);
		atomic_store_explicit(&h->released_by_cb, 0, memory_order_relaxed);
		unsigned flow = (unsigned)(r % FLOWS);
		int32_t prio = (int32_t)((r >> 8) % PRIOS) - 1;
		/* Half of a batch's requests repeat the one before: runs on
		 * one flow. */
		if (p->nbatch && (r >> 60) % 2) {
			flow = prev_flow;
			prio = prev_prio;
		}
		prev_flow = flow;
		prev_prio = prio;
		int len = snprintf(h->id, sizeof(h->id), "t%u", flow);
		h->req.flow_id = h->id;
		h->req.flow_id_len = (uint32_t)len;
		h->req.priority = prio;
		if (flow < NHANDLES && prio == 0 && (r >> 52) % 2)
			h->req.flow = handles[flow];
		h->req.bytes = 64 + (r >> 16) % 1500;
		/* A quarter expire quickly (50-550 us), some never. */
		if ((r >> 32) % 4 == 0)
			h->req.ttl_ns = 50000 + (int64_t)((r >> 40) % 500000);
		/* Another, independent quarter has a deadline. */
		if (with_deadlines && (r >> 34) % 4 == 0)
			h->req.deadline_ns =
				flowq_now(engine) + 50000 + (int64_t)((r >> 44) % 500000);
		h->req.complete = on_complete;
		h->req.arg = h;
		stress_queued_inc(&host_queued, &host_queued_max);
		done++;
		/* Odd producers: two thirds of the requests go through
		 * flowq_submit_batch(), in batches of 1..batch_max. */
		if (p->index % 2 && (r >> 56) % 3 != 0) {
			if (!p->nbatch)
				p->batch_size = 1 + (unsigned)((r >> 48) % batch_max);
			h->batched = true;
			p->batch[p->nbatch++] = h;
			if (p->nbatch == p->batch_size)
				batch_flush(p);
			continue;
		}
		submitted(p, h, flowq_submit(engine, &h->req));
	}
	batch_flush(p);
	/* Settle every slot, in whatever order they complete: a queued request
	 * may be waiting for a gate slot that a dispatched, not yet released
	 * request of this same window holds. */
	for (unsigned left = WINDOW; left;) {
		left = 0;
		for (unsigned i = 0; i < WINDOW; i++)
			if (!try_settle(p, &p->win[i]))
				left++;
		release_flush(p);
		if (left)
			sched_yield();
	}
	return NULL;
}

static struct producer ps[MAX_PRODUCERS];
static unsigned nproducers;

/* The watchdog's dump: the engine's scheduling state and each producer's
 * window (racy reads: the run has stalled). */
static void
stall_dump(void)
{
	flowq__debug_dump(engine, stderr);
	for (unsigned i = 0; i < nproducers; i++) {
		unsigned out = 0, done = 0;
		for (unsigned k = 0; k < WINDOW; k++) {
			struct hreq *h = &ps[i].win[k];
			out += h->outstanding;
			done += h->outstanding && atomic_load(&h->completions);
		}
		fprintf(stderr, "producer %u: %u outstanding, %u of them completed\n", i, out,
			done);
	}
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	if (argc < 3 || argc > 8) {
		fprintf(stderr,
			"usage: %s PRODUCERS SHARDS [REQUESTS [SEED [ORDERING|mixed|- "
			"[DISPLACEMENT [BATCH_MAX]]]]]\n",
			argv[0]);
		return 2;
	}
	unsigned np = (unsigned)test_parse_ulong(PROG, argv[1], "producers", 1, MAX_PRODUCERS);
	unsigned ns = (unsigned)test_parse_ulong(PROG, argv[2], "shards", 1, 64);
	unsigned long nreq =
		argc > 3 ? test_parse_ulong(PROG, argv[3], "requests", 1, 100000000) : 100000;
	uint64_t seed = argc > 4 ? test_parse_ulong(PROG, argv[4], "seed", 0, ~0ul) : 1;
	const char *displacement = argc > 6 ? argv[6] : "none";
	batch_max = argc > 7 ? (unsigned)test_parse_ulong(PROG, argv[7], "batch_max", 1,
							  BATCH_LIMIT)
			     : BATCH_MAX;
	bool displacing = strcmp(displacement, "none") != 0;
	/* A clean slate for each soak iteration. */
	atomic_store(&host_queued, 0);
	atomic_store(&host_queued_max, 0);
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		atomic_store(&completed_by[o], 0);

	struct flowq_config cfg;
	flowq_config_init(&cfg);
	cfg.shards = ns;
	cfg.max_requests = GLOBAL_LIMIT;
	cfg.saturation.max_inflight = INFLIGHT;
	cfg.flow_gc_timeout_ns = 1000000; /* 1 ms: flows churn */
	cfg.displacement = displacement;
	cfg.displacement_max_pending = MAX_PENDING;
	const char *ordering = argc > 5 && strcmp(argv[5], "-") != 0 ? argv[5] : NULL;
	static struct flowq_band_config mixed[4];
	if (ordering && strcmp(ordering, "mixed") == 0) {
		static const char *const ord[4] = {"edf", "slo_deadline", "edf",
						   "slo_deadline"};
		static const char *const fair[4] = {"global_strict", "global_strict",
						    "round_robin", "round_robin"};
		for (int i = 0; i < 4; i++) {
			mixed[i] = cfg.default_band;
			mixed[i].priority = PRIOS - 2 - i; /* 2, 1, 0, -1 */
			mixed[i].ordering = ord[i];
			mixed[i].fairness = fair[i];
		}
		cfg.bands = mixed;
		cfg.nbands = 4;
	} else if (ordering) {
		cfg.default_band.ordering = ordering; /* create validates the name */
	}
	with_deadlines = ordering != NULL;
	engine = stress_engine_create(PROG, &cfg);
	for (unsigned i = 0; i < NHANDLES; i++) {
		char id[16];
		int len = snprintf(id, sizeof(id), "t%u", i);
		if (flowq_flow_get(engine, id, (uint32_t)len, 0, &handles[i]) != 0) {
			fprintf(stderr, "%s: flowq_flow_get(%s) failed\n", PROG, id);
			return 1;
		}
	}

	double t0 = test_now_seconds();
	nproducers = np;
	struct test_watchdog wd = {
		.prog = PROG, .progress = &progress, .seconds = STALL_SECONDS, .dump = stall_dump};
	test_watchdog_start(&wd);
	for (unsigned i = 0; i < np; i++) {
		ps[i] = (struct producer){.index = i, .requests = nreq, .seed = seed * 1000 + i};
		ps[i].win = calloc(WINDOW, sizeof(struct hreq));
		if (!ps[i].win || pthread_create(&ps[i].thread, NULL, producer_main, &ps[i])) {
			fprintf(stderr, "%s: cannot start producer %u\n", PROG, i);
			return 1;
		}
	}
	uint64_t accepted = 0, rejected = 0, cancels = 0;
	for (unsigned i = 0; i < np; i++) {
		pthread_join(ps[i].thread, NULL);
		accepted += ps[i].accepted;
		rejected += ps[i].rejected;
		cancels += ps[i].cancels_won;
	}
	double secs = test_now_seconds() - t0;
	test_watchdog_stop(&wd);

	/* Quiescent: every accepted request has completed. */
	struct flowq_stats st;
	stress_check_conservation(PROG, engine, completed_by, accepted, cancels, &st);
	uint64_t qmax = atomic_load(&host_queued_max);
	unsigned slack = np + np / 2 * (batch_max - 1) + (displacing ? MAX_PENDING : 0);
	if (qmax > GLOBAL_LIMIT + slack)
		test_violation(PROG, "queued reached %" PRIu64 " > limit %d + %u", qmax,
			       GLOBAL_LIMIT, slack);
	if (!displacing && atomic_load(&completed_by[FLOWQ_EVICTED_DISPLACED]))
		test_violation(PROG, "displaced requests with displacement \"none\"");

	if (st.outcomes[FLOWQ_REJECTED_CAPACITY] + st.outcomes[FLOWQ_REJECTED_OTHER] != rejected)
		test_violation(PROG, "stats rejected != host rejected %" PRIu64, rejected);
	if (st.inflight != 0)
		test_violation(PROG, "stats inflight %" PRIu64 " after all releases", st.inflight);

	uint64_t waits = 0;
	for (unsigned k = 0; k < ns; k++) {
		struct flowq_shard_stats ss;
		if (flowq_stats_shard(engine, k, &ss) == 0)
			waits += ss.coalesce_waits;
	}
	if (cfg.intake_coalesce_ns == 0 && waits != 0)
		test_violation(PROG, "%" PRIu64 " coalescing waits with intake_coalesce_ns 0",
			       waits);
	for (unsigned i = 0; i < NHANDLES; i++)
		flowq_flow_put(engine, handles[i]);
	flowq_engine_destroy(engine);
	for (unsigned i = 0; i < np; i++)
		free(ps[i].win);

	fprintf(stderr,
		"%s: accepted=%" PRIu64 " rejected=%" PRIu64 " dispatched=%" PRIu64
		" ttl=%" PRIu64 " cancelled=%" PRIu64 " displaced=%" PRIu64 " queued_max=%" PRIu64
		" coalesce_waits=%" PRIu64 "\n",
		PROG, accepted, rejected, (uint64_t)atomic_load(&completed_by[FLOWQ_DISPATCHED]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_TTL]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_CANCELLED]),
		(uint64_t)atomic_load(&completed_by[FLOWQ_EVICTED_DISPLACED]), qmax, waits);
	stress_soak_engine(accepted + rejected, completed_by, &st);
	unsigned long v = atomic_load(test_violations());
	printf("SUMMARY %s producers=%u shards=%u items=%" PRIu64 "%s%s violations=%lu "
	       "seconds=%.2f\n",
	       PROG, np, ns, accepted + rejected, ordering ? " ordering=" : "",
	       ordering ? ordering : "", v, secs);
	return v ? 1 : 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_engine", argc, argv, run, test_violations());
}
