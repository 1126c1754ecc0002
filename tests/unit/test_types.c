/*
 * Unit tests for core/types.c: the outcome and cause vocabulary and the
 * request state machine ([T1] claim, [T2] finalize, [T3] release; the table
 * is in flowq/types.h).
 *
 * The expected tables below are written out by hand from the documentation in
 * flowq/types.h, not derived from the implementation's own tables, so that a
 * wrong entry there fails a test.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "req.h"

/* The outcome and cause names: stable strings, part of the API. */
static const char *const expected_outcome_names[FLOWQ_OUTCOME_COUNT] = {
	[FLOWQ_PENDING] = "pending",
	[FLOWQ_DISPATCHED] = "dispatched",
	[FLOWQ_REJECTED_CAPACITY] = "rejected_capacity",
	[FLOWQ_REJECTED_OTHER] = "rejected_other",
	[FLOWQ_EVICTED_TTL] = "evicted_ttl",
	[FLOWQ_EVICTED_CANCELLED] = "evicted_cancelled",
	[FLOWQ_EVICTED_DISPLACED] = "evicted_displaced",
	[FLOWQ_EVICTED_OTHER] = "evicted_other",
};

static const char *const expected_cause_names[FLOWQ_CAUSE_COUNT] = {
	[FLOWQ_CAUSE_NONE] = "none",
	[FLOWQ_CAUSE_CAPACITY_GLOBAL] = "capacity_global",
	[FLOWQ_CAUSE_CAPACITY_BAND] = "capacity_band",
	[FLOWQ_CAUSE_CAPACITY_FLOW] = "capacity_flow",
	[FLOWQ_CAUSE_TTL_EXPIRED] = "ttl_expired",
	[FLOWQ_CAUSE_DEADLINE_PASSED] = "deadline_passed",
	[FLOWQ_CAUSE_CANCELLED] = "cancelled",
	[FLOWQ_CAUSE_DISPLACED] = "displaced",
	[FLOWQ_CAUSE_SHUTDOWN] = "shutdown",
	[FLOWQ_CAUSE_INVALID_REQUEST] = "invalid_request",
	[FLOWQ_CAUSE_UNKNOWN_BAND] = "unknown_band",
	[FLOWQ_CAUSE_NO_MEMORY] = "no_memory",
};

/*
 * Which causes may accompany which outcome, from the comments on the enums:
 * capacity causes reject with REJECTED_CAPACITY; a passed deadline, shutdown
 * while stopping, a malformed request, an unknown band or an allocation
 * failure reject with REJECTED_OTHER; each eviction has its own cause, and
 * EVICTED_OTHER is the shutdown eviction. PENDING and DISPATCHED carry NONE.
 */
static const bool expected_valid[FLOWQ_OUTCOME_COUNT][FLOWQ_CAUSE_COUNT] = {
	[FLOWQ_PENDING] = {[FLOWQ_CAUSE_NONE] = true},
	[FLOWQ_DISPATCHED] = {[FLOWQ_CAUSE_NONE] = true},
	[FLOWQ_REJECTED_CAPACITY] = {[FLOWQ_CAUSE_CAPACITY_GLOBAL] = true,
				     [FLOWQ_CAUSE_CAPACITY_BAND] = true,
				     [FLOWQ_CAUSE_CAPACITY_FLOW] = true},
	[FLOWQ_REJECTED_OTHER] = {[FLOWQ_CAUSE_DEADLINE_PASSED] = true,
				  [FLOWQ_CAUSE_SHUTDOWN] = true,
				  [FLOWQ_CAUSE_INVALID_REQUEST] = true,
				  [FLOWQ_CAUSE_UNKNOWN_BAND] = true,
				  [FLOWQ_CAUSE_NO_MEMORY] = true},
	[FLOWQ_EVICTED_TTL] = {[FLOWQ_CAUSE_TTL_EXPIRED] = true,
			       [FLOWQ_CAUSE_DEADLINE_PASSED] = true},
	[FLOWQ_EVICTED_CANCELLED] = {[FLOWQ_CAUSE_CANCELLED] = true},
	[FLOWQ_EVICTED_DISPLACED] = {[FLOWQ_CAUSE_DISPLACED] = true},
	[FLOWQ_EVICTED_OTHER] = {[FLOWQ_CAUSE_SHUTDOWN] = true},
};

/* The raw state word, for checks the public getters cannot make. */
static uint32_t
state_word(const struct flowq_req *req)
{
	return atomic_load_explicit(&req->priv.state, memory_order_acquire);
}

static uint32_t
decided_word(enum flowq_outcome o, enum flowq_cause c)
{
	/* Rejections are decided before [T4] (not queued), the rest after. */
	uint32_t queued = flowq_outcome_is_rejected(o) ? 0 : FLOWQ__RS_QUEUED;

	return FLOWQ__RS_SUBMITTED | queued | (uint32_t)o |
	       ((uint32_t)c << FLOWQ__RS_CAUSE_SHIFT);
}

/* The first cause valid for @o (every outcome has one). */
static enum flowq_cause
some_cause(enum flowq_outcome o)
{
	for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
		if (expected_valid[o][c])
			return (enum flowq_cause)c;
	}
	cr_assert_fail("outcome %d has no valid cause", (int)o);
	return FLOWQ_CAUSE_NONE;
}

static void
init_claimed(struct flowq_req *req)
{
	flowq_req_init(req);
	cr_assert_eq(flowq__req_claim(req), 0);
}

/* Claimed and admitted ([T4]): ready for DISPATCHED or EVICTED_*. */
static void
init_queued(struct flowq_req *req)
{
	init_claimed(req);
	cr_assert_eq(flowq__req_mark_queued(req), 0);
}

/* In the state from which outcome @o can be decided. */
static void
init_for(struct flowq_req *req, enum flowq_outcome o)
{
	if (flowq_outcome_is_rejected(o))
		init_claimed(req);
	else
		init_queued(req);
}

/* ------------------------------------------------------------------------ */
/* Vocabulary */

Test(vocab, outcome_names_are_stable_distinct_and_known)
{
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++) {
		const char *s = flowq_outcome_str((enum flowq_outcome)o);

		cr_assert_not_null(s);
		cr_assert_str_eq(s, expected_outcome_names[o], "outcome %d: \"%s\"", o,
				 s);
		cr_assert_str_neq(s, "unknown");
		for (const char *p = s; *p != '\0'; p++)
			cr_assert((*p >= 'a' && *p <= 'z') || *p == '_',
				  "outcome %d: \"%s\" is not lower-case", o, s);
		for (int o2 = 0; o2 < o; o2++)
			cr_assert_str_neq(s, flowq_outcome_str((enum flowq_outcome)o2),
					  "outcomes %d and %d share a name", o, o2);
	}
}

Test(vocab, cause_names_are_stable_distinct_and_known)
{
	for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
		const char *s = flowq_cause_str((enum flowq_cause)c);

		cr_assert_not_null(s);
		cr_assert_str_eq(s, expected_cause_names[c], "cause %d: \"%s\"", c, s);
		cr_assert_str_neq(s, "unknown");
		for (const char *p = s; *p != '\0'; p++)
			cr_assert((*p >= 'a' && *p <= 'z') || *p == '_',
				  "cause %d: \"%s\" is not lower-case", c, s);
		for (int c2 = 0; c2 < c; c2++)
			cr_assert_str_neq(s, flowq_cause_str((enum flowq_cause)c2),
					  "causes %d and %d share a name", c, c2);
	}
}

Test(vocab, out_of_range_names_are_unknown)
{
	/* Both counts, the byte boundary, and negative values. */
	const long bad[] = {
		FLOWQ_OUTCOME_COUNT,
		FLOWQ_CAUSE_COUNT,
		64,
		255,
		256,
		INT_MAX,
		-1,
		INT_MIN,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i] >= FLOWQ_OUTCOME_COUNT || bad[i] < 0)
			cr_assert_str_eq(flowq_outcome_str((enum flowq_outcome)bad[i]),
					 "unknown", "outcome %ld", bad[i]);
		if (bad[i] >= FLOWQ_CAUSE_COUNT || bad[i] < 0)
			cr_assert_str_eq(flowq_cause_str((enum flowq_cause)bad[i]),
					 "unknown", "cause %ld", bad[i]);
	}
}

Test(vocab, rejected_and_evicted_classify_every_outcome)
{
	static const struct {
		enum flowq_outcome o;
		bool rejected, evicted;
	} table[] = {
		{FLOWQ_PENDING, false, false},
		{FLOWQ_DISPATCHED, false, false},
		{FLOWQ_REJECTED_CAPACITY, true, false},
		{FLOWQ_REJECTED_OTHER, true, false},
		{FLOWQ_EVICTED_TTL, false, true},
		{FLOWQ_EVICTED_CANCELLED, false, true},
		{FLOWQ_EVICTED_DISPLACED, false, true},
		{FLOWQ_EVICTED_OTHER, false, true},
	};

	cr_assert_eq(sizeof(table) / sizeof(table[0]), (size_t)FLOWQ_OUTCOME_COUNT,
		     "the table must list every outcome");
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		cr_assert_eq(flowq_outcome_is_rejected(table[i].o), table[i].rejected,
			     "is_rejected(%s)", flowq_outcome_str(table[i].o));
		cr_assert_eq(flowq_outcome_is_evicted(table[i].o), table[i].evicted,
			     "is_evicted(%s)", flowq_outcome_str(table[i].o));
	}
	cr_assert_not(flowq_outcome_is_rejected(FLOWQ_OUTCOME_COUNT));
	cr_assert_not(flowq_outcome_is_evicted(FLOWQ_OUTCOME_COUNT));
	cr_assert_not(flowq_outcome_is_rejected((enum flowq_outcome)255));
	cr_assert_not(flowq_outcome_is_evicted((enum flowq_outcome)255));
}

Test(vocab, cause_valid_for_matches_the_documented_table)
{
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++) {
		int valid = 0;

		for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
			bool got = flowq_cause_valid_for((enum flowq_outcome)o,
							 (enum flowq_cause)c);

			cr_assert_eq(got, expected_valid[o][c], "cause_valid_for(%s, %s)",
				     flowq_outcome_str((enum flowq_outcome)o),
				     flowq_cause_str((enum flowq_cause)c));
			valid += got;
		}
		cr_assert_gt(valid, 0, "outcome %d has no valid cause", o);
	}
	/* Every cause but NONE names one kind of fate: never DISPATCHED. */
	for (int c = 1; c < FLOWQ_CAUSE_COUNT; c++)
		cr_assert_not(
			flowq_cause_valid_for(FLOWQ_DISPATCHED, (enum flowq_cause)c));
}

Test(vocab, cause_valid_for_rejects_out_of_range)
{
	int minus_one = -1;

	cr_assert_not(flowq_cause_valid_for(FLOWQ_OUTCOME_COUNT, FLOWQ_CAUSE_NONE));
	cr_assert_not(flowq_cause_valid_for((enum flowq_outcome)255, FLOWQ_CAUSE_NONE));
	cr_assert_not(
		flowq_cause_valid_for((enum flowq_outcome)minus_one, FLOWQ_CAUSE_NONE));
	cr_assert_not(flowq_cause_valid_for(FLOWQ_DISPATCHED, FLOWQ_CAUSE_COUNT));
	cr_assert_not(flowq_cause_valid_for(FLOWQ_EVICTED_OTHER, (enum flowq_cause)31));
	cr_assert_not(flowq_cause_valid_for(FLOWQ_EVICTED_OTHER, (enum flowq_cause)32));
	cr_assert_not(
		flowq_cause_valid_for(FLOWQ_EVICTED_OTHER, (enum flowq_cause)minus_one));
}

/* ------------------------------------------------------------------------ */
/* flowq_req_init */

Test(req, init_resets_every_field)
{
	struct flowq_req req;

	/* Garbage first: init must not rely on zeroed memory. */
	memset(&req, 0xa5, sizeof(req));
	flowq_req_init(&req);
	cr_assert_null(req.flow_id);
	cr_assert_eq(req.flow_id_len, 0);
	cr_assert_eq(req.priority, 0);
	cr_assert_null(req.flow);
	cr_assert_eq(req.bytes, 0);
	cr_assert_eq(req.ttl_ns, 0, "TTL 0 means the engine default");
	cr_assert_eq(req.deadline_ns, 0);
	cr_assert_null(req.complete);
	cr_assert_null(req.arg);
	cr_assert_eq(state_word(&req), 0, "IDLE is the word 0");
	cr_assert_eq(flowq_req_outcome(&req), FLOWQ_PENDING);
	cr_assert_eq(flowq_req_cause(&req), FLOWQ_CAUSE_NONE);
	cr_assert_not(flowq_req_released(&req));
}

/* flowq_req_init() writes the caller line and the state word, nothing the
 * dispatcher owns (types.h, "Layout"): a reused request's dispatcher-owned
 * fields keep whatever the dispatcher left, and the hand-off line keeps
 * everything but the state word until submit rewrites it. */
Test(req, init_leaves_the_dispatcher_lines_alone)
{
	struct flowq_req req;
	memset(&req, 0xa5, sizeof(req));
	flowq_req_init(&req);
	cr_assert_eq(state_word(&req), 0);
	cr_assert_null(req.complete);
	const unsigned char *p = (const unsigned char *)&req;
	size_t from = offsetof(struct flowq_req, priv.hnode);
	for (size_t i = from; i < sizeof(req); i++)
		cr_assert_eq(p[i], 0xa5, "byte %zu of the dispatcher-owned fields was written", i);
	cr_assert_eq(req.priv.enqueue_ns, (int64_t)0xa5a5a5a5a5a5a5a5ull);
	cr_assert_eq(offsetof(struct flowq_req, priv.link), 64, "the hand-off line starts at 64");
	cr_assert_eq(offsetof(struct flowq_req, priv.hnode), 128,
		     "the dispatcher-owned fields start at 128");
}

/* ------------------------------------------------------------------------ */
/* [T1] flowq__req_claim */

Test(req, claim_idle_then_double_submit_is_busy)
{
	struct flowq_req req;

	flowq_req_init(&req);
	cr_assert_eq(flowq__req_claim(&req), 0);
	cr_assert_eq(state_word(&req), FLOWQ__RS_SUBMITTED);
	cr_assert_eq(flowq_req_outcome(&req), FLOWQ_PENDING);
	cr_assert_eq(flowq_req_cause(&req), FLOWQ_CAUSE_NONE);
	cr_assert_not(flowq_req_released(&req));

	cr_assert_eq(flowq__req_claim(&req), -EBUSY, "double submit");
	cr_assert_eq(state_word(&req), FLOWQ__RS_SUBMITTED,
		     "a failed claim changes nothing");
}

Test(req, claim_is_busy_in_every_later_state)
{
	struct flowq_req req;

	/* Decided, for every outcome. */
	for (int o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		enum flowq_cause c = some_cause((enum flowq_outcome)o);

		init_for(&req, (enum flowq_outcome)o);
		cr_assert(flowq__req_finalize(&req, (enum flowq_outcome)o, c));
		cr_assert_eq(flowq__req_claim(&req), -EBUSY, "claim after %s",
			     flowq_outcome_str((enum flowq_outcome)o));
		cr_assert_eq(state_word(&req), decided_word((enum flowq_outcome)o, c));
	}
	/* Dispatched and released. */
	init_queued(&req);
	cr_assert(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
	cr_assert_eq(flowq__req_release(&req), 0);
	cr_assert_eq(flowq__req_claim(&req), -EBUSY);
	/* Re-initialized: claimable again. */
	flowq_req_init(&req);
	cr_assert_eq(flowq__req_claim(&req), 0);
}

/* ------------------------------------------------------------------------ */
/* [T2] flowq__req_finalize */

Test(req, finalize_every_valid_pair_exactly_once)
{
	int pairs = 0;

	for (int o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
			struct flowq_req req;
			enum flowq_outcome oo = (enum flowq_outcome)o;
			enum flowq_cause cc = (enum flowq_cause)c;

			if (!expected_valid[o][c])
				continue;
			pairs++;
			init_for(&req, oo);
			cr_assert(flowq__req_finalize(&req, oo, cc), "finalize(%s, %s)",
				  flowq_outcome_str(oo), flowq_cause_str(cc));
			cr_assert_eq(flowq_req_outcome(&req), oo);
			cr_assert_eq(flowq_req_cause(&req), cc);
			cr_assert_eq(state_word(&req), decided_word(oo, cc));
			cr_assert_not(flowq_req_released(&req));

			/* Second attempts, same or other fate: refused, no change. */
			cr_assert_not(flowq__req_finalize(&req, oo, cc));
			for (int o2 = 1; o2 < FLOWQ_OUTCOME_COUNT; o2++) {
				enum flowq_outcome o2o = (enum flowq_outcome)o2;

				cr_assert_not(
					flowq__req_finalize(&req, o2o, some_cause(o2o)));
			}
			cr_assert_eq(state_word(&req), decided_word(oo, cc),
				     "a losing finalize changed the state");
		}
	}
	cr_assert_eq(pairs, 14, "14 valid (outcome, cause) pairs");
}

Test(req, finalize_never_claimed_returns_false)
{
	for (int o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		struct flowq_req req;
		enum flowq_outcome oo = (enum flowq_outcome)o;

		flowq_req_init(&req);
		cr_assert_not(flowq__req_finalize(&req, oo, some_cause(oo)),
			      "finalize(%s) on an IDLE request", flowq_outcome_str(oo));
		cr_assert_eq(state_word(&req), 0, "IDLE must stay IDLE");
		cr_assert_eq(flowq_req_outcome(&req), FLOWQ_PENDING);
		/* The refused finalize left it claimable. */
		cr_assert_eq(flowq__req_claim(&req), 0);
		if (!flowq_outcome_is_rejected(oo))
			cr_assert_eq(flowq__req_mark_queued(&req), 0);
		cr_assert(flowq__req_finalize(&req, oo, some_cause(oo)));
	}
}

Test(req, finalize_after_release_returns_false)
{
	struct flowq_req req;
	uint32_t released =
		decided_word(FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE) | FLOWQ__RS_RELEASED;

	init_queued(&req);
	cr_assert(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
	cr_assert_eq(flowq__req_release(&req), 0);
	cr_assert_not(flowq__req_finalize(&req, FLOWQ_EVICTED_CANCELLED,
					  FLOWQ_CAUSE_CANCELLED));
	cr_assert_not(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
	cr_assert_eq(state_word(&req), released);
}

/*
 * An invalid (outcome, cause) is an engine bug: finalize aborts rather than
 * record it. abort() raises SIGABRT; neither ASan nor UBSan intercepts it
 * (ASan's handle_abort is off by default), so these tests hold in the
 * sanitizer builds too.
 */
/*
 * A process that dies by SIGABRT never runs gcov's exit handler, so in the
 * coverage build (tools/coverage; FLOWQ_TEST_COVERAGE) the lines these
 * tests run before abort() would be recorded as never run. libgcov's
 * __gcov_dump() writes the counts now: call it from a SIGABRT handler, then
 * die by the signal as before.
 */
#ifdef FLOWQ_TEST_COVERAGE
void
__gcov_dump(void);

static void
dump_coverage_then_abort(int sig)
{
	__gcov_dump();
	signal(sig, SIG_DFL);
	raise(sig);
}
#endif

static void
req_abort_init(void)
{
#ifdef FLOWQ_TEST_COVERAGE
	cr_assert_neq(signal(SIGABRT, dump_coverage_then_abort), SIG_ERR);
#endif
}

TestSuite(req_abort, .init = req_abort_init);

Test(req_abort, finalize_pending_aborts, .signal = SIGABRT)
{
	struct flowq_req req;

	init_claimed(&req);
	flowq__req_finalize(&req, FLOWQ_PENDING, FLOWQ_CAUSE_NONE);
	cr_assert_fail("finalize(PENDING) returned");
}

Test(req_abort, finalize_out_of_range_outcome_aborts, .signal = SIGABRT)
{
	struct flowq_req req;

	init_claimed(&req);
	flowq__req_finalize(&req, FLOWQ_OUTCOME_COUNT, FLOWQ_CAUSE_NONE);
	cr_assert_fail("finalize(OUTCOME_COUNT) returned");
}

Test(req_abort, finalize_mismatched_cause_aborts, .signal = SIGABRT)
{
	struct flowq_req req;

	init_queued(&req);
	flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_TTL_EXPIRED);
	cr_assert_fail("finalize(DISPATCHED, TTL_EXPIRED) returned");
}

Test(req_abort, finalize_missing_cause_aborts, .signal = SIGABRT)
{
	struct flowq_req req;

	init_claimed(&req);
	flowq__req_finalize(&req, FLOWQ_EVICTED_TTL, FLOWQ_CAUSE_NONE);
	cr_assert_fail("finalize(EVICTED_TTL, NONE) returned");
}

Test(req_abort, finalize_out_of_range_cause_aborts, .signal = SIGABRT)
{
	struct flowq_req req;

	init_claimed(&req);
	flowq__req_finalize(&req, FLOWQ_REJECTED_OTHER, FLOWQ_CAUSE_COUNT);
	cr_assert_fail("finalize(REJECTED_OTHER, CAUSE_COUNT) returned");
}

/* The check comes before the CAS: a bad pair aborts even on an IDLE request. */
Test(req_abort, finalize_invalid_pair_aborts_on_idle_request, .signal = SIGABRT)
{
	struct flowq_req req;

	flowq_req_init(&req);
	flowq__req_finalize(&req, FLOWQ_EVICTED_OTHER, FLOWQ_CAUSE_CANCELLED);
	cr_assert_fail("finalize(EVICTED_OTHER, CANCELLED) returned");
}

/* ------------------------------------------------------------------------ */
/* [T4] flowq__req_mark_queued: rejected = never queued, evicted = was queued */

Test(req, mark_queued_only_once_and_only_after_claim)
{
	struct flowq_req req;

	flowq_req_init(&req);
	cr_assert_eq(flowq__req_mark_queued(&req), -EINVAL, "IDLE");
	cr_assert_eq(state_word(&req), 0);
	init_claimed(&req);
	cr_assert_eq(flowq__req_mark_queued(&req), 0);
	cr_assert_eq(state_word(&req), FLOWQ__RS_SUBMITTED | FLOWQ__RS_QUEUED);
	cr_assert_eq(flowq_req_outcome(&req), FLOWQ_PENDING);
	cr_assert_eq(flowq__req_mark_queued(&req), -EINVAL, "twice");
	cr_assert_eq(flowq__req_claim(&req), -EBUSY);
	/* After an outcome: no. */
	cr_assert(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
	cr_assert_eq(flowq__req_mark_queued(&req), -EINVAL, "after dispatch");
	init_claimed(&req);
	cr_assert(flowq__req_finalize(&req, FLOWQ_REJECTED_CAPACITY,
				      FLOWQ_CAUSE_CAPACITY_GLOBAL));
	cr_assert_eq(flowq__req_mark_queued(&req), -EINVAL, "after a rejection");
}

Test(req, outcomes_respect_the_queued_boundary)
{
	for (int o = 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		enum flowq_outcome oo = (enum flowq_outcome)o;
		struct flowq_req req;

		/* Claimed, not yet admitted: only a rejection can be decided;
		 * a cancel racing the submit of the same request loses. */
		init_claimed(&req);
		cr_assert_eq(flowq__req_finalize(&req, oo, some_cause(oo)),
			     flowq_outcome_is_rejected(oo), "%s before [T4]",
			     flowq_outcome_str(oo));
		/* Admitted: no rejection any more. */
		init_queued(&req);
		cr_assert_eq(flowq__req_finalize(&req, oo, some_cause(oo)),
			     !flowq_outcome_is_rejected(oo), "%s after [T4]",
			     flowq_outcome_str(oo));
	}
}

/* ------------------------------------------------------------------------ */
/* [T3] flowq__req_release */

Test(req, release_only_after_dispatch)
{
	struct flowq_req req;

	flowq_req_init(&req);
	cr_assert_eq(flowq__req_release(&req), -EINVAL, "never submitted");
	cr_assert_eq(state_word(&req), 0);

	init_claimed(&req);
	cr_assert_eq(flowq__req_release(&req), -EINVAL, "submitted, pending");
	cr_assert_eq(state_word(&req), FLOWQ__RS_SUBMITTED);

	for (int o = 2; o < FLOWQ_OUTCOME_COUNT; o++) {
		enum flowq_outcome oo = (enum flowq_outcome)o;
		enum flowq_cause c = some_cause(oo);

		init_for(&req, oo);
		cr_assert(flowq__req_finalize(&req, oo, c));
		cr_assert_eq(flowq__req_release(&req), -EINVAL, "release after %s",
			     flowq_outcome_str(oo));
		cr_assert_eq(state_word(&req), decided_word(oo, c));
		cr_assert_not(flowq_req_released(&req));
	}
}

Test(req, release_dispatched_once_then_already)
{
	struct flowq_req req;

	init_queued(&req);
	cr_assert(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
	cr_assert_not(flowq_req_released(&req));
	cr_assert_eq(flowq__req_release(&req), 0);
	cr_assert(flowq_req_released(&req));
	/* Releasing keeps the outcome and cause readable. */
	cr_assert_eq(flowq_req_outcome(&req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_req_cause(&req), FLOWQ_CAUSE_NONE);
	cr_assert_eq(state_word(&req), decided_word(FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE) |
					       FLOWQ__RS_RELEASED);

	cr_assert_eq(flowq__req_release(&req), -EALREADY);
	cr_assert_eq(flowq__req_release(&req), -EALREADY);
	cr_assert(flowq_req_released(&req));
	cr_assert_eq(state_word(&req), decided_word(FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE) |
					       FLOWQ__RS_RELEASED);
}

Test(req, full_cycle_reuses_a_request)
{
	struct flowq_req req;

	for (int round = 0; round < 3; round++) {
		init_queued(&req);
		cr_assert(flowq__req_finalize(&req, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE));
		cr_assert_eq(flowq__req_release(&req), 0);
		cr_assert_eq(flowq__req_claim(&req), -EBUSY);
	}
}

/* ------------------------------------------------------------------------ */
/* Racing finalize: exactly one winner per round. */

#define RACE_THREADS 4
#define RACE_ROUNDS  10000

/* Each racer tries a different fate, so the state word names the winner. */
static const struct {
	enum flowq_outcome o;
	enum flowq_cause c;
} race_fate[RACE_THREADS] = {
	{FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE},
	{FLOWQ_EVICTED_TTL, FLOWQ_CAUSE_TTL_EXPIRED},
	{FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED},
	{FLOWQ_EVICTED_DISPLACED, FLOWQ_CAUSE_DISPLACED},
};

struct race {
	struct flowq_req req;
	pthread_barrier_t start, done;
	/* Per round: bit t is set when racer t's finalize returned true. */
	_Atomic uint32_t winners;
	/* Per racer: rounds won (the racer's own counter). */
	unsigned wins[RACE_THREADS];
};

struct racer {
	struct race *race;
	int id;
};

static void *
race_thread(void *arg)
{
	struct racer *r = arg;
	struct race *race = r->race;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_barrier_wait(&race->start);
		if (flowq__req_finalize(&race->req, race_fate[r->id].o,
					race_fate[r->id].c)) {
			atomic_fetch_or_explicit(&race->winners, 1u << r->id,
						 memory_order_relaxed);
			race->wins[r->id]++;
		}
		pthread_barrier_wait(&race->done);
	}
	return NULL;
}

Test(req_race, finalize_has_exactly_one_winner)
{
	static struct race race;
	struct racer racers[RACE_THREADS];
	pthread_t threads[RACE_THREADS];
	unsigned total = 0;

	/* The coordinator (this thread) joins both barriers. */
	cr_assert_eq(pthread_barrier_init(&race.start, NULL, RACE_THREADS + 1), 0);
	cr_assert_eq(pthread_barrier_init(&race.done, NULL, RACE_THREADS + 1), 0);
	for (int t = 0; t < RACE_THREADS; t++) {
		racers[t] = (struct racer){.race = &race, .id = t};
		cr_assert_eq(pthread_create(&threads[t], NULL, race_thread, &racers[t]),
			     0);
	}
	for (int round = 0; round < RACE_ROUNDS; round++) {
		uint32_t w;
		int winner;

		init_queued(&race.req);
		atomic_store_explicit(&race.winners, 0, memory_order_relaxed);
		pthread_barrier_wait(&race.start);
		pthread_barrier_wait(&race.done);

		w = atomic_load_explicit(&race.winners, memory_order_relaxed);
		cr_assert(w != 0 && (w & (w - 1)) == 0,
			  "round %d: winners mask 0x%x, want exactly one bit", round, w);
		winner = __builtin_ctz(w);
		cr_assert_eq(state_word(&race.req),
			     decided_word(race_fate[winner].o, race_fate[winner].c),
			     "round %d: state 0x%x does not hold racer %d's fate", round,
			     state_word(&race.req), winner);
	}
	for (int t = 0; t < RACE_THREADS; t++) {
		cr_assert_eq(pthread_join(threads[t], NULL), 0);
		total += race.wins[t];
	}
	cr_assert_eq(total, RACE_ROUNDS, "wins must add up to the rounds");
	pthread_barrier_destroy(&race.start);
	pthread_barrier_destroy(&race.done);
}
