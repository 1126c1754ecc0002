/*
 * Request state machine and the outcome/cause vocabulary. The transition
 * table is in flowq/types.h; this file is its only implementation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "req.h"

static const char *const outcome_names[FLOWQ_OUTCOME_COUNT] = {
	[FLOWQ_PENDING] = "pending",
	[FLOWQ_DISPATCHED] = "dispatched",
	[FLOWQ_REJECTED_CAPACITY] = "rejected_capacity",
	[FLOWQ_REJECTED_OTHER] = "rejected_other",
	[FLOWQ_EVICTED_TTL] = "evicted_ttl",
	[FLOWQ_EVICTED_CANCELLED] = "evicted_cancelled",
	[FLOWQ_EVICTED_DISPLACED] = "evicted_displaced",
	[FLOWQ_EVICTED_OTHER] = "evicted_other",
};

static const char *const cause_names[FLOWQ_CAUSE_COUNT] = {
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

/* Bit c of cause_sets[o] is set when cause c may accompany outcome o. */
#define CAUSE_BIT(c) (1u << (c))
static const uint32_t cause_sets[FLOWQ_OUTCOME_COUNT] = {
	[FLOWQ_PENDING] = CAUSE_BIT(FLOWQ_CAUSE_NONE),
	[FLOWQ_DISPATCHED] = CAUSE_BIT(FLOWQ_CAUSE_NONE),
	[FLOWQ_REJECTED_CAPACITY] = CAUSE_BIT(FLOWQ_CAUSE_CAPACITY_GLOBAL) |
				    CAUSE_BIT(FLOWQ_CAUSE_CAPACITY_BAND) |
				    CAUSE_BIT(FLOWQ_CAUSE_CAPACITY_FLOW),
	[FLOWQ_REJECTED_OTHER] =
		CAUSE_BIT(FLOWQ_CAUSE_DEADLINE_PASSED) | CAUSE_BIT(FLOWQ_CAUSE_SHUTDOWN) |
		CAUSE_BIT(FLOWQ_CAUSE_INVALID_REQUEST) |
		CAUSE_BIT(FLOWQ_CAUSE_UNKNOWN_BAND) | CAUSE_BIT(FLOWQ_CAUSE_NO_MEMORY),
	[FLOWQ_EVICTED_TTL] = CAUSE_BIT(FLOWQ_CAUSE_TTL_EXPIRED) |
			      CAUSE_BIT(FLOWQ_CAUSE_DEADLINE_PASSED),
	[FLOWQ_EVICTED_CANCELLED] = CAUSE_BIT(FLOWQ_CAUSE_CANCELLED),
	[FLOWQ_EVICTED_DISPLACED] = CAUSE_BIT(FLOWQ_CAUSE_DISPLACED),
	[FLOWQ_EVICTED_OTHER] = CAUSE_BIT(FLOWQ_CAUSE_SHUTDOWN),
};
_Static_assert(FLOWQ_CAUSE_COUNT <= 32, "cause_sets holds 32 causes per outcome");
_Static_assert(FLOWQ_OUTCOME_COUNT <= 256 && FLOWQ_CAUSE_COUNT <= 256,
	       "outcome and cause each take 8 bits of the state word");

const char *
flowq_outcome_str(enum flowq_outcome o)
{
	if ((unsigned)o >= FLOWQ_OUTCOME_COUNT)
		return "unknown";
	return outcome_names[o];
}

const char *
flowq_cause_str(enum flowq_cause c)
{
	if ((unsigned)c >= FLOWQ_CAUSE_COUNT)
		return "unknown";
	return cause_names[c];
}

bool
flowq_outcome_is_rejected(enum flowq_outcome o)
{
	return o == FLOWQ_REJECTED_CAPACITY || o == FLOWQ_REJECTED_OTHER;
}

bool
flowq_outcome_is_evicted(enum flowq_outcome o)
{
	return o == FLOWQ_EVICTED_TTL || o == FLOWQ_EVICTED_CANCELLED ||
	       o == FLOWQ_EVICTED_DISPLACED || o == FLOWQ_EVICTED_OTHER;
}

bool
flowq_cause_valid_for(enum flowq_outcome o, enum flowq_cause c)
{
	if ((unsigned)o >= FLOWQ_OUTCOME_COUNT || (unsigned)c >= FLOWQ_CAUSE_COUNT)
		return false;
	return (cause_sets[o] & CAUSE_BIT(c)) != 0;
}

void
flowq_req_init(struct flowq_req *req)
{
	/* The caller fields and the state word only: the rest of the
	 * hand-off line is written by flowq_submit() before anything reads
	 * it, and the dispatcher-owned fields by the dispatcher (or a
	 * winning canceller) before it reads them. Zeroing those here would
	 * take the dispatcher's line back at every reuse: a cross-core miss
	 * per request (types.h, "Layout"). */
	memset(req, 0, offsetof(struct flowq_req, priv));
	atomic_init(&req->priv.state, 0);
}

static uint32_t
req_state(const struct flowq_req *req)
{
	/* Acquire, pairs with the release of [T2]/[T3]. */
	return atomic_load_explicit(&req->priv.state, memory_order_acquire);
}

enum flowq_outcome
flowq_req_outcome(const struct flowq_req *req)
{
	return (enum flowq_outcome)(req_state(req) & FLOWQ__RS_OUTCOME_MASK);
}

enum flowq_cause
flowq_req_cause(const struct flowq_req *req)
{
	return (enum flowq_cause)((req_state(req) & FLOWQ__RS_CAUSE_MASK) >>
				  FLOWQ__RS_CAUSE_SHIFT);
}

bool
flowq_req_released(const struct flowq_req *req)
{
	return (req_state(req) & FLOWQ__RS_RELEASED) != 0;
}

int
flowq__req_claim(struct flowq_req *req)
{
	uint32_t expected = 0;

	/* [T1] acq_rel: the host's caller-field writes are published with it. */
	if (atomic_compare_exchange_strong_explicit(
		    &req->priv.state, &expected, FLOWQ__RS_SUBMITTED,
		    memory_order_acq_rel, memory_order_acquire))
		return 0;
	return -EBUSY;
}

int
flowq__req_mark_queued(struct flowq_req *req)
{
	/* Only the submitter writes the word between [T1] and [T4] (every
	 * other transition needs QUEUED, or DISPATCHED), so a load and a
	 * store do what a CAS would, without a locked instruction on the
	 * submit path. Relaxed load: our own [T1] is the last write. */
	if (atomic_load_explicit(&req->priv.state, memory_order_relaxed) != FLOWQ__RS_SUBMITTED)
		return -EINVAL;
	/* [T4] Release: see req.h. */
	atomic_store_explicit(&req->priv.state, FLOWQ__RS_SUBMITTED | FLOWQ__RS_QUEUED,
			      memory_order_release);
	return 0;
}

bool
flowq__req_finalize(struct flowq_req *req, enum flowq_outcome outcome,
		    enum flowq_cause cause)
{
	uint32_t expected, desired;

	if (outcome == FLOWQ_PENDING || !flowq_cause_valid_for(outcome, cause)) {
		/* An engine bug: continuing would record a nonsense outcome. */
		fprintf(stderr, "flowq: internal error: outcome %d with cause %d\n",
			(int)outcome, (int)cause);
		abort();
	}
	/* Rejections happen before [T4], everything else after it. */
	expected = FLOWQ__RS_SUBMITTED;
	if (!flowq_outcome_is_rejected(outcome))
		expected |= FLOWQ__RS_QUEUED;
	desired = expected | (uint32_t)outcome | ((uint32_t)cause << FLOWQ__RS_CAUSE_SHIFT);
	/*
	 * [T2] The one CAS every outcome passes through. PENDING is the only
	 * state it leaves, and no transition re-enters it, so a failure is
	 * final: strong CAS, no loop.
	 */
	return atomic_compare_exchange_strong_explicit(&req->priv.state, &expected,
						       desired, memory_order_acq_rel,
						       memory_order_acquire);
}

int
flowq__req_release(struct flowq_req *req)
{
	uint32_t cur = req_state(req);

	for (;;) {
		if ((cur & FLOWQ__RS_OUTCOME_MASK) != FLOWQ_DISPATCHED)
			return -EINVAL;
		if (cur & FLOWQ__RS_RELEASED)
			return -EALREADY;
		/* [T3] Weak CAS in a loop: a spurious failure reloads cur. */
		if (atomic_compare_exchange_weak_explicit(
			    &req->priv.state, &cur, cur | FLOWQ__RS_RELEASED,
			    memory_order_acq_rel, memory_order_acquire))
			return 0;
	}
}
