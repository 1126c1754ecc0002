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
 * [T2] SUBMITTED+PENDING -> SUBMITTED+@p outcome+@p cause, exactly once.
 *
 * @return true if this call decided the outcome; false if another thread
 *         already had (the caller must then do nothing with @p req), or if
 *         @p req was never submitted.
 *
 * Aborts with a message if @p outcome is FLOWQ_PENDING or out of range, or if
 * @p cause does not belong with @p outcome: those are engine bugs, never user
 * input.
 *
 * Context: any engine thread. Ordering: release on success (the winner's
 * prior writes are visible to whoever reads the outcome with acquire);
 * acquire on failure (the loser sees the winner's writes).
 * Progress: wait-free: one CAS. SUBMITTED+PENDING is left only through
 * this call and never re-entered, so a failed CAS is final.
 */
bool
flowq__req_finalize(struct flowq_req *req, enum flowq_outcome outcome,
		    enum flowq_cause cause);

/**
 * [T3] DISPATCHED -> DISPATCHED+RELEASED.
 *
 * @return 0 on success; -EALREADY if already released; -EINVAL if @p req was
 *         not dispatched (pending, evicted, rejected or never submitted).
 */
int
flowq__req_release(struct flowq_req *req);

#endif /* FLOWQ_CORE_REQ_H */
