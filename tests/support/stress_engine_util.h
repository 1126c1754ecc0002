/*
 * Helpers shared by the engine stress programs (tests/stress/stress_*.c
 * that drive a whole engine): create it or exit, and the conservation check
 * at quiescence. Header only (static inline), like test_util.h.
 */
#ifndef FLOWQ_STRESS_ENGINE_UTIL_H
#define FLOWQ_STRESS_ENGINE_UTIL_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <flowq/flowq.h>

#include "test_util.h"

/* flowq_engine_create(@p cfg) or exit(1) with its message, naming @p prog.
 * The environment variable FLOWQ_STRESS_INTAKE_COALESCE_NS, if set, sets
 * cfg->intake_coalesce_ns (CTest runs some programs with and without the
 * coalescing wait; a value that is not an integer exits 2, one out of range
 * fails the create with its message). */
static inline struct flowq_engine *
stress_engine_create(const char *prog, struct flowq_config *cfg)
{
	char err[256];
	struct flowq_engine *e = NULL;
	const char *coalesce = getenv("FLOWQ_STRESS_INTAKE_COALESCE_NS");
	if (coalesce) {
		char *end;
		long long v = strtoll(coalesce, &end, 10);
		if (*coalesce == '\0' || *end != '\0') {
			fprintf(stderr, "%s: FLOWQ_STRESS_INTAKE_COALESCE_NS=%s: not an integer\n",
				prog, coalesce);
			exit(2);
		}
		cfg->intake_coalesce_ns = v;
	}
	cfg->errbuf = err;
	cfg->errbuf_size = sizeof(err);
	int rc = flowq_engine_create(cfg, &e);
	cfg->errbuf = NULL;
	cfg->errbuf_size = 0;
	if (rc) {
		fprintf(stderr, "%s: create: %d %s\n", prog, rc, err);
		exit(1);
	}
	return e;
}

/* A host is about to submit: count it in @p queued (requests the hosts
 * submitted and have no outcome for yet) and keep @p max, its peak. */
static inline void
stress_queued_inc(_Atomic uint64_t *queued, _Atomic uint64_t *max)
{
	uint64_t q = atomic_fetch_add_explicit(queued, 1, memory_order_relaxed) + 1;
	uint64_t m = atomic_load_explicit(max, memory_order_relaxed);
	while (q > m && !atomic_compare_exchange_weak_explicit(max, &m, q, memory_order_relaxed,
							       memory_order_relaxed))
		;
}

/* The first step of a stress program's completion callback: @p req's
 * outcome must be decided, not a rejection, with a cause valid for it; it
 * is counted in @p completed_by. @return the outcome. */
static inline enum flowq_outcome
stress_completion_check(const char *prog, const struct flowq_req *req,
			_Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT])
{
	enum flowq_outcome o = flowq_req_outcome(req);
	enum flowq_cause c = flowq_req_cause(req);
	if (o == FLOWQ_PENDING || flowq_outcome_is_rejected(o) || !flowq_cause_valid_for(o, c))
		test_violation(prog, "completion with outcome %s cause %s", flowq_outcome_str(o),
			       flowq_cause_str(c));
	atomic_fetch_add_explicit(&completed_by[o], 1, memory_order_relaxed);
	return o;
}

/* The last step: publish @p o in @p outcome, then count the completion in
 * @p completions (release: the producer that sees it may reuse the request
 * at once); a second completion of one request (@p what) is a violation. */
static inline void
stress_completion_publish(const char *prog, const void *what, _Atomic int *outcome,
			  _Atomic int *completions, enum flowq_outcome o)
{
	atomic_store_explicit(outcome, (int)o, memory_order_relaxed);
	if (atomic_fetch_add_explicit(completions, 1, memory_order_release) != 0)
		test_violation(prog, "request %p completed twice", what);
}

/*
 * Conservation at quiescence (every accepted request has completed): the
 * hosts' @p accepted equals their completions by outcome (@p completed_by),
 * the cancels they won are the cancelled completions, the engine's
 * statistics count the same outcomes, and nothing is queued. The engine's
 * snapshot is left in @p r_st for the program's own checks. Violations are
 * counted for @p prog.
 */
static inline void
stress_check_conservation(const char *prog, struct flowq_engine *e,
			  _Atomic uint64_t completed_by[FLOWQ_OUTCOME_COUNT], uint64_t accepted,
			  uint64_t cancels, struct flowq_stats *r_st)
{
	uint64_t completed = 0;
	for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		completed += atomic_load(&completed_by[o]);
	if (completed != accepted)
		test_violation(prog, "accepted %" PRIu64 " != completed %" PRIu64, accepted,
			       completed);
	uint64_t cancelled = atomic_load(&completed_by[FLOWQ_EVICTED_CANCELLED]);
	if (cancelled != cancels)
		test_violation(prog, "cancels won %" PRIu64 " != cancelled completions %" PRIu64,
			       cancels, cancelled);
	flowq_stats_engine(e, r_st);
	for (unsigned o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		uint64_t host = atomic_load(&completed_by[o]);
		if (!flowq_outcome_is_rejected(o) && r_st->outcomes[o] != host)
			test_violation(prog, "stats %s %" PRIu64 " != host %" PRIu64,
				       flowq_outcome_str(o), r_st->outcomes[o], host);
	}
	if (r_st->queued != 0)
		test_violation(prog, "stats queued %" PRIu64 " at quiescence", r_st->queued);
}

#endif /* FLOWQ_STRESS_ENGINE_UTIL_H */
