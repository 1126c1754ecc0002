/*
 * Internal: the request state machine's transitions (see flowq/types.h for
 * the table). Every outcome passes through flowq__req_finalize().
 */
#ifndef FLOWQ_CORE_REQ_H
#define FLOWQ_CORE_REQ_H

#include <flowq/types.h>

#define FLOWQ__RS_OUTCOME_MASK 0xffu
#define FLOWQ__RS_CAUSE_SHIFT  8
#define FLOWQ__RS_CAUSE_MASK   (0xffu << FLOWQ__RS_CAUSE_SHIFT)
#define FLOWQ__RS_SUBMITTED    (1u << 16)
#define FLOWQ__RS_RELEASED     (1u << 17)
#define FLOWQ__RS_QUEUED       (1u << 18)

/**
 * [T1] IDLE -> SUBMITTED. The submitter claims @p req before touching any
 * engine structure.
 *
 * @return 0 on success; -EBUSY if @p req is not IDLE (already submitted and
 *         not re-initialized since: a double submit).
 *
 * Context: the submitting thread. Ordering: acq_rel: the host's writes to
 * the caller fields happen-before every engine thread that later reads the
 * state word with acquire.
 */
int
flowq__req_claim(struct flowq_req *req);

/**
 * [T4] SUBMITTED -> SUBMITTED+QUEUED: the submitter has reserved capacity and
 * will enqueue @p req; from now on only DISPATCHED or EVICTED_* outcomes can
 * be decided, and only REJECTED_* before.
 *
 * @return 0; -EINVAL if @p req is not SUBMITTED+PENDING without QUEUED (an
 *         engine bug: the submitter is the only thread that can change the
 *         word at this point, since every other transition needs QUEUED).
 *
 * Context: the submitting thread, after flowq__req_claim().
 * Ordering: release: the submitter's writes to the private fields before
 * this call are visible to whoever decides the outcome later with acquire.
 * Progress: wait-free: a load and a release store, not a CAS: no other
 * thread writes the word between [T1] and [T4] (above), so no locked
 * instruction is needed (one fewer per submit: 0.92-1.02x the time per
 * request, bench/ENGINE-LOG.md, "Session 12").
 */
int
flowq__req_mark_queued(struct flowq_req *req);

/**
 * [T2] PENDING -> @p outcome+@p cause, exactly once. REJECTED_* outcomes need
 * SUBMITTED without QUEUED, and only the submitter may decide them (the
 * thread whose [T1] won; [T4] is a plain store that relies on it);
 * DISPATCHED and EVICTED_* need SUBMITTED+QUEUED.
 *
 * @return true if this call decided the outcome; false if another thread
 *         already had, or if @p req is not in the state the outcome needs
 *         (never submitted, or not yet/already queued). Winning decides the
 *         outcome only: see "Who acts after [T2]" in flowq/types.h for who
 *         then delivers the completion.
 *
 * Aborts with a message if @p outcome is FLOWQ_PENDING or out of range, or if
 * @p cause does not belong with @p outcome: those are engine bugs, never user
 * input.
 *
 * Context: any engine thread. Ordering: acq_rel on success (the winner's
 * prior writes are visible to whoever reads the outcome with acquire);
 * acquire on failure (the loser sees the winner's writes).
 * Progress: wait-free: one CAS. PENDING is left only through this call and
 * never re-entered, so a failed CAS is final.
 */
bool
flowq__req_finalize(struct flowq_req *req, enum flowq_outcome outcome,
		    enum flowq_cause cause);

/**
 * [T3] DISPATCHED -> DISPATCHED+RELEASED.
 *
 * @return 0 on success; -EALREADY if already released; -EINVAL if @p req was
 *         not dispatched (pending, evicted, rejected or never submitted).
 *
 * Context: the host, any thread, after the completion reported DISPATCHED.
 * Ordering: acq_rel (the release is ordered after the dispatch it answers).
 * Progress: lock-free: a CAS loop that retries only if the word changed
 * between its load and its CAS, which after DISPATCHED only a concurrent
 * release can do (and then this call returns -EALREADY).
 */
int
flowq__req_release(struct flowq_req *req);

#endif /* FLOWQ_CORE_REQ_H */
