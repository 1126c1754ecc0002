/*
 * flowq history recorder: an opt-in log of every request event (submit,
 * reject, each outcome, release) for offline order checking
 * (tests/history/history_check). Built in only with the CMake option
 * FLOWQ_HISTORY=ON; otherwise the hooks compile to nothing and these
 * functions only say so (-ENOTSUP).
 *
 * Synchronization:
 *
 *   operation                        may run concurrently with
 *   -------------------------------  -----------------------------------
 *   recording (inside flowq calls)   everything (per-thread logs)
 *   flowq_history_dump()             nothing: call at quiescence
 *   flowq_history_reset()            nothing: call at quiescence
 *
 * "Quiescence": no thread is inside any flowq call of any engine (engine
 * threads included: dump after flowq_engine_destroy(), or while a polled
 * engine is not being polled and no submit/cancel/release runs).
 *
 * Text format written by flowq_history_dump() (one event per line, fields
 * separated by one space; integers in decimal, req and flow in hex):
 *
 *   # flowq history 1 events=N dropped=D
 *   S gseq t tid pseq req flow prio bytes now expiry fifo   admitted submit
 *   J gseq t tid pseq req flow prio bytes outcome cause     rejected submit
 *   O gseq t tid req outcome cause now shard scarce          outcome (queued)
 *   R gseq t tid req                                         release
 *
 * gseq is a process-wide order key (one relaxed fetch-add per event on a
 * shared counter: every event's key is consistent with happens-before, so a
 * resubmitted request's events follow its previous outcome); t is
 * CLOCK_MONOTONIC ns at the event; tid is the recording thread's log (a log
 * is reused by a later thread after its owner exits); pseq counts S and J
 * events of that log (the producer's submit order); req is the request's
 * address (an instance runs from its S or J event to its outcome); flow is
 * the flow's 64-bit registry hash of (id bytes, priority); now is the
 * engine clock (at admission, or the dispatcher's round time); expiry the
 * engine-clock instant past which the request must not be dispatched
 * (INT64_MAX: none); fifo is 1 if the band's ordering is fcfs; outcome and
 * cause are flowq_outcome_str()/flowq_cause_str() names; scarce is 1 if the
 * engine has a dispatch gate (concurrency limit, callback or utilization
 * detector: the cross-shard strict-priority rule applies). S is recorded
 * just before the request is marked queued ([T4]), O right after the [T2]
 * CAS that decided it (before the completion can run), R after a
 * successful [T3].
 */
#ifndef FLOWQ_HISTORY_H
#define FLOWQ_HISTORY_H

#include <stdbool.h>
#include <stdio.h>

#include <flowq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Whether this build of libflowq records histories (FLOWQ_HISTORY=ON).
 * Context: any thread. */
FLOWQ_API bool
flowq_history_enabled(void);

/**
 * Write every event recorded since the last dump or reset to @p out in the
 * text format above, then forget them. flowq_engine_destroy() also calls
 * this, appending to the file named by the environment variable
 * FLOWQ_HISTORY_FILE when it is set (so that unmodified programs can be
 * checked).
 *
 * @return 0; -ENOTSUP if recording is not built in; -EFAULT if @p out is
 *         NULL; -EIO if a write failed (the events are forgotten anyway).
 *
 * Context: quiescence only (see above); takes the recorder's registration
 * mutex. Progress: blocking (stdio). Cost: O(events).
 */
FLOWQ_API int
flowq_history_dump(FILE *out);

/**
 * Forget every recorded event (e.g. after a warm-up).
 *
 * @return 0; -ENOTSUP if recording is not built in.
 *
 * Context: quiescence only (see above); takes the recorder's registration
 * mutex. Progress: blocking. Cost: O(chunks).
 */
FLOWQ_API int
flowq_history_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_HISTORY_H */
