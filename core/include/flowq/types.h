/*
 * flowq core types: the request, its outcomes and causes, and its state
 * machine. This is the vocabulary of the whole library (see DESIGN.md).
 *
 * The request life cycle, one atomic 32-bit state word per request:
 *
 *      bits  0..7   outcome (enum flowq_outcome; FLOWQ_PENDING = undecided)
 *      bits  8..15  cause   (enum flowq_cause)
 *      bit   16     SUBMITTED: flowq_submit() has claimed the request
 *      bit   17     RELEASED:  the host released a DISPATCHED request
 *      bit   18     QUEUED:    admitted (capacity reserved); about to enter,
 *                              or in, the engine's queues
 *
 *   transition                          made by        how
 *   ----------------------------------  -------------  ----------------------
 *   -> IDLE (word 0)                    host           flowq_req_init()
 *   IDLE -> SUBMITTED                   submitter      CAS [T1] claim
 *   SUBMITTED -> SUBMITTED+REJECTED_*   submitter      CAS [T2] finalize
 *   SUBMITTED -> SUBMITTED+QUEUED       submitter      store [T4] mark_queued
 *   SUBMITTED+QUEUED -> +DISPATCHED     dispatcher,    CAS [T2] finalize
 *     or +EVICTED_* (exactly once)      canceller,
 *                                       TTL expiry,
 *                                       displacer,
 *                                       shutdown
 *   +DISPATCHED -> +RELEASED            host           CAS [T3] release
 *
 * [T2] is the only way an outcome is set, and it succeeds only from PENDING:
 * when several threads race to decide a request's fate (dispatch vs cancel vs
 * TTL expiry vs displacement vs shutdown), exactly one CAS wins. A REJECTED_*
 * outcome is possible only before [T4] and a DISPATCHED or EVICTED_* outcome
 * only after it, so "rejected = never queued, evicted = was queued" holds by
 * construction: a cancel that races the submit of the same request, before
 * [T4], loses and changes nothing. [T1] fails on a request that is not IDLE,
 * which catches a double submit. [T3] fails on a request that is not
 * DISPATCHED or was already released.
 *
 * Who acts after [T2]: the CAS only *decides* the outcome. A queued request
 * stays linked in engine structures (its flow's inbox, a dispatcher-private
 * list or heap) until its shard's dispatcher unlinks it, so the dispatcher,
 * which owns those links, always delivers the completion and rolls back the
 * capacity, whichever thread won [T2]. A winner other than the dispatcher
 * must not touch the request again (the completion may already have run and
 * the host freed it); it tells the shard through engine-owned state.
 *
 * Ownership: the host owns a request until flowq_submit(). If submit returns
 * an error the request is the host's again at once (its outcome says why).
 * If submit returns 0 the engine holds the request until its completion has
 * run (callback or completion port); only then may the host free it or
 * re-initialize it for another submit, and a DISPATCHED request must first
 * be given back with flowq_release() (which gives back the byte size the
request was submitted with: changing req->bytes after the completion does
not change what the release returns). Calling
 * flowq_cancel() on a request after its completion has run is a host bug the
 * state word cannot always detect (the request may have been re-initialized
 * and resubmitted); do not.
 */
#ifndef FLOWQ_TYPES_H
#define FLOWQ_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include <flowq/common.h>
#include <flowq/heap.h>
#include <flowq/list.h>
#include <flowq/mpsc.h>
#include <flowq/pheap.h>

#ifdef __cplusplus
extern "C" {
#endif

/** TTL value meaning "wait forever" (no expiry). 0 means the engine default. */
#define FLOWQ_TTL_NONE INT64_MAX

/** What happened to a request. Exactly one per submitted request. */
enum flowq_outcome {
	/** Not decided yet (queued, or never submitted). */
	FLOWQ_PENDING = 0,
	/** Sent to the backend. */
	FLOWQ_DISPATCHED,
	/** Never queued: a global, band or flow limit was full. */
	FLOWQ_REJECTED_CAPACITY,
	/** Never queued: invalid request, engine stopping, no memory, ... */
	FLOWQ_REJECTED_OTHER,
	/** Was queued; its TTL ran out before dispatch. */
	FLOWQ_EVICTED_TTL,
	/** Was queued; the host cancelled it. */
	FLOWQ_EVICTED_CANCELLED,
	/** Was queued; shed to admit a more important request. */
	FLOWQ_EVICTED_DISPLACED,
	/** Was queued; removed for another reason (shutdown, ...). */
	FLOWQ_EVICTED_OTHER,
	FLOWQ_OUTCOME_COUNT
};

/** Why a request got its outcome. Values are stable; new ones are appended. */
enum flowq_cause {
	FLOWQ_CAUSE_NONE = 0,
	/** The global limit (requests or bytes) was full. */
	FLOWQ_CAUSE_CAPACITY_GLOBAL,
	/** The band's limit was full. */
	FLOWQ_CAUSE_CAPACITY_BAND,
	/** The flow's limit was full. */
	FLOWQ_CAUSE_CAPACITY_FLOW,
	/** The request's TTL expired while queued. */
	FLOWQ_CAUSE_TTL_EXPIRED,
	/** The request's deadline had passed: at submit (REJECTED_OTHER) or
	 * while queued (EVICTED_TTL). */
	FLOWQ_CAUSE_DEADLINE_PASSED,
	/** flowq_cancel() was called. */
	FLOWQ_CAUSE_CANCELLED,
	/** Displaced by a request of a higher band. */
	FLOWQ_CAUSE_DISPLACED,
	/** The engine shut down (queued requests) or is stopping (submits). */
	FLOWQ_CAUSE_SHUTDOWN,
	/** The request was malformed (flow id, size, TTL, ...), or larger
	 * than a byte limit it must fit whole, in-flight or queued (global,
	 * band or flow max_bytes): it could never be admitted or dispatched. */
	FLOWQ_CAUSE_INVALID_REQUEST,
	/** No band accepts this priority (no default-band template, or
	 * FLOWQ_MAX_BANDS bands alive), or the just-in-time band for it could
	 * not be made: a host policy's band_init failed (flowq_submit()
	 * returns that errno; -ENOMEM is NO_MEMORY). */
	FLOWQ_CAUSE_UNKNOWN_BAND,
	/** An internal allocation failed (e.g. creating the flow). */
	FLOWQ_CAUSE_NO_MEMORY,
	FLOWQ_CAUSE_COUNT
};

struct flowq_req;
struct flowq_flow;

/**
 * Completion callback: the request has its outcome. Runs on a dispatcher
 * thread (or the thread that drains a completion port); must be short and
 * must not block. The request belongs to the host again when it is called.
 */
typedef void
flowq_complete_fn(struct flowq_req *req, void *arg);

/**
 * A request. Caller-owned and intrusive: embed it in the host's own request
 * object and recover that with container_of in the completion. flowq never
 * allocates per request.
 *
 * Call flowq_req_init() first, then set the caller fields.
 */
struct flowq_req {
	/* Caller fields: set before flowq_submit(), not changed until the
	 * completion. */

	/** Flow (tenant) id bytes; need not be NUL-terminated. Ignored if
	 * @c flow is set. Copied by the engine when it creates the flow. */
	const void *flow_id;
	/** Length of @c flow_id in bytes. */
	uint32_t flow_id_len;
	/** Priority: higher is more important; negative is sheddable. */
	int32_t priority;
	/** Optional flow handle (flowq_flow_get()); skips the registry lookup. */
	struct flowq_flow *flow;
	/** Cost of the request in bytes, for byte limits and byte fairness. */
	uint64_t bytes;
	/** Time to live in the queue, ns. 0: engine default; FLOWQ_TTL_NONE: forever. */
	int64_t ttl_ns;
	/** Absolute deadline on the engine clock, ns, for deadline orderings; 0: none. */
	int64_t deadline_ns;
	/** Completion callback, or NULL when the engine delivers to a port. */
	flowq_complete_fn *complete;
	/** Passed to @c complete. */
	void *arg;

	/*
	 * Private fields: owned by flowq from submit until the completion.
	 * Two groups, one cache line each when the request starts a line
	 * (see "Layout" below): a cross-core miss costs 37-250 ns on the
	 * project's 2-vCPU machines (depending on where the hypervisor
	 * places the vCPUs), so which core writes which line is most of
	 * what the submit path costs.
	 *
	 * The hand-off line, 64..127: everything the submitting thread writes
	 * at submit and the dispatcher reads, plus the two words the
	 * dispatcher writes (state at the outcome, dflags). The host's
	 * flowq_release() takes this line back once per request; after that
	 * the next submit's writes to it hit. The dispatcher reads no caller
	 * field on its default path (bytes, complete and arg are copied
	 * here), so the host's writes to the caller line on reuse hit too.
	 */
	struct {
		/** Link in the flow's inbox (later: in a completion port). */
		struct flowq_mpsc_node link;
		/** The state word (see the table at the top of this file). */
		FLOWQ_ATOMIC(uint32_t) state;
		/** Flags: RF_DEADLINE set at submit; the rest dispatcher-
		 * private bookkeeping (reap steps, heap membership). */
		uint32_t dflags;
		/** Engine clock at submit, ns. */
		int64_t enqueue_ns;
		/** Expiry, computed once at submit: the earlier of enqueue_ns
		 * + TTL and deadline_ns, INT64_MAX for neither; never
		 * changed afterwards (the TTL heap's key and the edf
		 * ordering's key). */
		int64_t expire;
		/** The flow the request was queued on. */
		void *owner;
		/** Copies of the caller fields taken at submit (bytes,
		 * complete, arg), so the dispatcher reads this line only. */
		uint64_t bytes;
		flowq_complete_fn *complete;
		void *arg;

		/* Dispatcher-owned, 128..215: written only by the
		 * dispatcher (and clink by a winning canceller); never
		 * initialised by flowq_req_init() or the submit path. */

		/** Position in the shard's TTL heap (key = expire, set by
		 * the dispatcher when it pushes the request). */
		struct flowq_heap_node hnode;
		/**
		 * The ordering policy's node: the request's link in its
		 * flow's ordering structure, which the flow's ordering
		 * (one per band) alone uses, from push_batch until pop or
		 * remove. One ordering uses one member: fcfs the list link
		 * @c lnode, the deadline orderings the pairing-heap node
		 * @c pnode (with the key and FIFO sequence they computed at
		 * push). They share storage because a request is in at most
		 * one ordering structure and nothing else in flowq touches
		 * either (the dispatcher's own lists link flows, not
		 * requests; the TTL heap uses @c hnode).
		 */
		union {
			struct flowq_list_node lnode;
			struct flowq_pheap_node pnode;
		};
		/** Link in the shard's cancel queue: written by the thread
		 * whose flowq_cancel() won, read by the dispatcher. */
		struct flowq_mpsc_node clink;
		/** Link for the band's displacement policy (dispatcher-
		 * private; unused when the engine's displacement is
		 * "none"). */
		struct flowq_list_node dnode;
	} priv;
};

/**
 * Reset @p req to IDLE with every field zeroed (TTL: engine default, no
 * deadline, no callback). Call it before setting the caller fields.
 *
 * Context: the host's thread, while it owns @p req (never between a
 * successful submit and its completion).
 */
FLOWQ_API void
flowq_req_init(struct flowq_req *req);

/**
 * The outcome of @p req so far: FLOWQ_PENDING until decided.
 *
 * Context: any thread. Ordering: acquire: once an outcome is seen, so is
 * everything the deciding thread wrote before deciding.
 */
FLOWQ_API enum flowq_outcome
flowq_req_outcome(const struct flowq_req *req);

/** The cause of @p req's outcome (FLOWQ_CAUSE_NONE while pending). Context as
 * flowq_req_outcome(). */
FLOWQ_API enum flowq_cause
flowq_req_cause(const struct flowq_req *req);

/** Whether the host has released @p req after its dispatch. */
FLOWQ_API bool
flowq_req_released(const struct flowq_req *req);

/** Stable lower-case name of @p o ("dispatched", ...); "unknown" if out of
 * range. Never NULL. */
FLOWQ_API const char *
flowq_outcome_str(enum flowq_outcome o);

/** Stable lower-case name of @p c ("capacity_global", ...); "unknown" if out
 * of range. Never NULL. */
FLOWQ_API const char *
flowq_cause_str(enum flowq_cause c);

/** True for REJECTED_CAPACITY and REJECTED_OTHER (the request was never
 * queued). */
FLOWQ_API bool
flowq_outcome_is_rejected(enum flowq_outcome o);

/** True for the four EVICTED_* outcomes (the request was queued, then
 * removed without dispatch). */
FLOWQ_API bool
flowq_outcome_is_evicted(enum flowq_outcome o);

/** Whether @p c is a cause that may accompany outcome @p o (e.g. TTL_EXPIRED
 * only with EVICTED_TTL). FLOWQ_PENDING accepts only FLOWQ_CAUSE_NONE. */
FLOWQ_API bool
flowq_cause_valid_for(enum flowq_outcome o, enum flowq_cause c);

/*
 * Layout on LP64 (offsets in bytes): caller fields 0..63 (the first cache
 * line); the hand-off line 64..127: link 64, state 72, dflags 76,
 * enqueue_ns 80, expire 88, owner 96, bytes 104, complete 112, arg 120;
 * dispatcher-owned from 128: hnode 128..151 (key, seq, idx + 4 bytes of
 * padding), the ordering node 152..191 (lnode 16 bytes or pnode 40
 * bytes: key, seq, child, next, prev), clink 192, dnode 200..215 (the
 * displacement policy's link). 216 bytes in all. Allocate requests on a
 * 64-byte boundary (as the benchmarks do) for the line split to hold; any
 * alignment of a pointer is correct, only slower.
 *
 * Why 216 and not 184 as before: moving the dispatcher's fields off the
 * hand-off line and copying bytes/complete/arg onto it cost 32 bytes per
 * request and cut the submitting thread's cross-core misses per request
 * from three lines (caller, hand-off, ordering) to one (the measurement
 * is in the commit that made the change and in README "Engine end to
 * end"). Growing it costs every host memory per in-flight request, so a
 * change must be deliberate.
 */
FLOWQ_STATIC_ASSERT(sizeof(struct flowq_req) <= 216, "struct flowq_req grew");

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_TYPES_H */
