/*
 * Policy objects: the seam between a shard's dispatcher and the algorithms
 * that choose what it dispatches (STYLE.md rule 7). Each policy is one
 * `const` ops struct with a common descriptor; the engine allocates and
 * zeroes the policy's state (per band on each shard, per flow), and calls the
 * ops only from that shard's dispatcher, so policies need no atomics and
 * never allocate on the hot path.
 *
 * Two kinds ship with the engine:
 *  - fairness: which flow of a band goes next ("global_strict": best head
 *    request, no fairness; "round_robin": one request per turn; "drr":
 *    deficit round robin, weighted byte shares, O(1); "wfq": start-time
 *    fair queuing, weighted byte shares, O(log flows));
 *  - ordering: which request of a flow goes next ("fcfs", "edf",
 *    "slo_deadline");
 *  - displacement: which queued request of a lower band is shed for a
 *    more important newcomer ("none", "lowest_band_newest",
 *    "lowest_band_oldest", "most_over_share").
 * Built-ins are listed in policies/registry.c; a host adds its own with
 * flowq_fairness_register()/flowq_ordering_register() before it creates an
 * engine that names them.
 *
 * Call sequence for one band on one shard (F = a struct flowq_policy_flow):
 *
 *   band_init(band)
 *   flow_attach(band, F)        a flow of this band is created on the shard
 *     flow_backlogged(band, F)  F's queue went from empty to non-empty
 *     pick(band) -> F           the dispatcher takes F's head request...
 *     update(band, F, true, b)  ...and reports it: dispatched, b bytes
 *                               (b may be 0 for a zero-byte request)
 *     update(band, F, false, 0) a request of F left without service
 *                               (cancelled, expired, displaced), or a
 *                               push_batch gave the backlogged F a new head
 *                               request (edf, slo_deadline: a pushed
 *                               request with a smaller key than the head;
 *                               never with fcfs)
 *                               In both forms F->queued and F->head_* are
 *                               already updated; when F->queued is 0 the
 *                               policy forgets F until its next
 *                               flow_backlogged.
 *   flow_detach(band, F)        F is garbage-collected (it is empty)
 *   band_fini(band)
 *
 * F itself (the struct flowq_policy_flow) must stay at one address from
 * flow_attach to flow_detach: policies keep pointers to it and return them
 * from pick().
 *
 * Context: every op runs on the shard's dispatcher thread (or the polling
 * thread in polled mode), never concurrently with another op on the same
 * band state. Ops must not block, must not call into the engine, and must be
 * O(1) or O(log flows) per call, never a scan of all flows.
 */
#ifndef FLOWQ_POLICY_H
#define FLOWQ_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/alloc.h>
#include <flowq/common.h>
#include <flowq/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version of the ops structs below; register() refuses a policy
 * built for a version outside [FLOWQ_POLICY_ABI_MIN, FLOWQ_POLICY_ABI].
 * 3: struct flowq_policy_flow gained the policy's hot words (hot[]) and is
 * one cache line (64 bytes). 4: struct flowq_policy_env gained prefetch and
 * prefetch_arg at its end (so a policy built for 4 is refused by a library
 * that would not fill them, and one built for 3, which never reads them,
 * still works). */
#define FLOWQ_POLICY_ABI 4u
/** The oldest policy ABI this library still accepts. */
#define FLOWQ_POLICY_ABI_MIN 3u

/** Words of a flow's view (struct flowq_policy_flow::hot) that its band's
 * fairness policy owns. */
#define FLOWQ_POLICY_HOT_WORDS 2u

/** Longest policy name, bytes, without the NUL. */
#define FLOWQ_POLICY_NAME_MAX 31u

/** Most policies of one kind (built-in + registered). */
#define FLOWQ_POLICY_MAX 32u

/** Common descriptor of every policy. */
struct flowq_policy_desc {
	/** FLOWQ_POLICY_ABI. */
	uint32_t abi_version;
	/** Unique within its kind: [a-z0-9_]+, at most FLOWQ_POLICY_NAME_MAX. */
	const char *name;
	/** One line for `flowq-sim list`; required (not NULL). */
	const char *description;
	/** Bytes of state per (band, shard); zeroed before band_init. */
	size_t band_state_size;
	/** Bytes of state per flow; zeroed before the flow is first used,
	 * 16-byte aligned (the engine keeps an ordering state of up to 32
	 * bytes on the flow's dispatcher lines, a larger one after the flow's
	 * id: either way it is the policy's alone). May be 0 (fairness: a policy whose per-flow state fits the view's
	 * hot words; then struct flowq_policy_flow::state is not to be
	 * used). */
	size_t flow_state_size;
	/** FLOWQ_POLICY_* flags (0 for none). */
	uint32_t flags;
};

/**
 * Fairness flag: the policy shares *bytes* among a band's flows (by
 * weight), not requests. The engine's cross-shard fairness then counts
 * bytes for the band too (core/dispatch.c, "cross-shard fairness"): two
 * flows on different shards get equal bytes per unit of weight, not equal
 * requests.
 */
#define FLOWQ_POLICY_BYTE_FAIR (1u << 0)

/**
 * What a policy sees of a flow (its "view"). Owned by the engine; the
 * fields other than hot[] are maintained by the dispatcher before each op
 * is called. The view is one cache line: the engine keeps it on a line of
 * its own (FLOWQ_CACHE_LINE-aligned), which the dispatcher reads and writes
 * on every request of the flow anyway.
 */
struct flowq_policy_flow {
	/** This policy's per-flow state (flow_state_size bytes; unusable
	 * when that is 0). */
	void *state;
	/** Requests queued in the flow's ordering structure. */
	uint64_t queued;
	/** Ordering key of the flow's next request (smaller goes first);
	 * meaningful only while queued > 0. */
	int64_t head_key;
	/** Byte size of the flow's next request (queued > 0). */
	uint64_t head_bytes;
	/** Weight set with flowq_flow_set_weight() (default 1). */
	uint32_t weight;
	/** Unique per flow and shard, for deterministic tie-breaks. */
	uint64_t seq;
	/**
	 * The band's fairness policy's own words, on the view's line: the
	 * place for per-flow state that the policy reads or writes on every
	 * decision, so that a decision touches one line of the flow, not
	 * the view's line and a state line (at 10^6 flows, half the flow
	 * memory per decision; README, "Policies"). What does not fit, or
	 * is touched only off the hot path, goes in @c state
	 * (flow_state_size, which may be 0). Undefined before flow_attach
	 * (the policy sets them there; the engine happens to zero them);
	 * the policy owns them from flow_attach to flow_detach, and
	 * nothing else reads or writes them.
	 */
	uint64_t hot[FLOWQ_POLICY_HOT_WORDS];
};

/* One line: the view must not spill onto a second line per request. */
FLOWQ_STATIC_ASSERT(sizeof(struct flowq_policy_flow) <= FLOWQ_CACHE_LINE,
		    "the view fits a cache line");

/** What the engine lends a policy at init/attach time. */
struct flowq_policy_env {
	/** Allocator for state that must grow (e.g. a heap's slot array);
	 * only from band_init, band_fini, flow_attach and flow_detach. */
	const struct flowq_allocator *alloc;
	/** The band's priority (for messages and tie-breaks). */
	int32_t priority;
	/** The band's quantum (struct flowq_band_config::quantum, resolved:
	 * never 0): bytes of credit per turn at weight 1, for byte-based
	 * policies. */
	uint64_t quantum;
	/**
	 * Optional (NULL in a policy's own tests): the engine's look-ahead
	 * for a flow this band's policy knows it will pick soon, e.g. a
	 * member some turns behind the front of a ring. With many flows
	 * most are cold, and a decision waits for the flow's lines and
	 * then for its head request, one miss after the other; a policy
	 * that knows its next picks overlaps them by calling
	 * prefetch(prefetch_arg, f, 0) about 2k picks before it picks
	 * @p f (the engine starts loading the flow's lines) and
	 * prefetch(prefetch_arg, f, 1) about k picks before (the engine
	 * reads those lines and starts loading the head request). A hint:
	 * it changes nothing the policy or a decision sees. @p f must be
	 * attached to this band and backlogged (stage 1 reads the flow's
	 * ordering state); only from the dispatcher's calls (pick, update,
	 * flow_backlogged).
	 */
	void (*prefetch)(void *prefetch_arg, const struct flowq_policy_flow *f,
			 unsigned stage);
	/** The first argument of @c prefetch. */
	void *prefetch_arg;
};

/** Fairness policy: which flow of a band goes next. */
struct flowq_fairness_ops {
	struct flowq_policy_desc desc;
	/** Set up @p band (zeroed). @return 0 or a negative errno. */
	int (*band_init)(void *band, const struct flowq_policy_env *env);
	/** Free what band_init and flow_attach allocated; no flow is
	 * attached any more. */
	void (*band_fini)(void *band, const struct flowq_policy_env *env);
	/** A flow joins the band on this shard (not backlogged yet). May
	 * allocate through env->alloc. @return 0 or -ENOMEM. */
	int (*flow_attach)(void *band, struct flowq_policy_flow *f,
			   const struct flowq_policy_env *env);
	/** The flow leaves (it is empty and not backlogged). */
	void (*flow_detach)(void *band, struct flowq_policy_flow *f,
			    const struct flowq_policy_env *env);
	/** @p f went from empty to non-empty (f->queued > 0). */
	void (*flow_backlogged)(void *band, struct flowq_policy_flow *f);
	/** The flow whose head goes next, or NULL if no flow is backlogged.
	 * Does not change the state: the dispatcher may decide not to
	 * dispatch (capacity gate) and ask again later. */
	struct flowq_policy_flow *(*pick)(void *band);
	/**
	 * @p f changed while backlogged: a request left its queue, dispatched
	 * (@p dispatched true, @p served_bytes its size, possibly 0) or
	 * evicted (@p dispatched false, @p served_bytes 0); or push_batch gave
	 * it a new head request (@p dispatched false, @p served_bytes 0,
	 * f->queued > 0). f->queued and f->head_* already describe the new
	 * state; if f->queued == 0 the policy must stop offering @p f.
	 */
	void (*update)(void *band, struct flowq_policy_flow *f, bool dispatched,
		       uint64_t served_bytes);
};

/**
 * Ordering policy: which request of a flow goes next.
 *
 * There is no init or fini op and no allocator: the engine zeroes the flow
 * state (flow_state_size bytes) before its first push_batch, so an all-zero
 * state must read as an empty queue, and the state must never own memory.
 * What an ordering links its requests with lives in the requests:
 * req->priv.lnode (a list link, as fcfs uses) or req->priv.pnode (a
 * pairing-heap node, flowq/pheap.h, as edf and slo_deadline use for a
 * per-flow priority queue without a growing array); the two share storage,
 * an ordering uses one of them, and nothing else touches them while the
 * request is in the ordering (from push_batch until pop or remove).
 * band_state_size is ignored: orderings have no band state; set it to 0.
 *
 * Keys: key() is a function of fields fixed at submit, never of the clock,
 * and must give the order the ordering keeps: the request peek() returns
 * has the smallest key of the flow's queued requests (ties are the
 * ordering's to break; the built-ins break them FIFO). fcfs is the one
 * approximation: its key is the submit time, which two producers racing
 * on one flow can leave out of inbox order (ordering_fcfs.c). The
 * dispatcher copies key(head) into flowq_policy_flow::head_key after every
 * change, and global_strict compares flows by it.
 * tests/conformance/test_conformance_ordering.c runs every listed ordering
 * through this contract.
 */
struct flowq_ordering_ops {
	struct flowq_policy_desc desc;
	/** Add @p n new requests, given in arrival order (oldest first), to
	 * the flow state @p fs. One call per inbox batch. Arrival order is
	 * the tie-break orderings owe their equal keys (FIFO). */
	void (*push_batch)(void *fs, struct flowq_req *const *reqs, size_t n);
	/** The next request, or NULL if empty. */
	struct flowq_req *(*peek)(void *fs);
	/** Remove and return the next request, or NULL if empty. */
	struct flowq_req *(*pop)(void *fs);
	/** Remove @p req, a member of @p fs (cancel, expiry). */
	void (*remove)(void *fs, struct flowq_req *req);
	/**
	 * The ordering key of @p req (smaller goes first), comparable across
	 * the flows of a band: global_strict uses it to find the best head.
	 * Must read only fields fixed at submit (never re-derive a deadline
	 * from the clock).
	 */
	int64_t (*key)(const struct flowq_req *req);
};

/**
 * Displacement policy: which queued request of a band to shed when a more
 * important request needs the global capacity it holds (DESIGN.md
 * vocabulary). The engine decides *whether* and *which band* (the lowest
 * band below the newcomer's with queued requests, on any shard); the policy
 * decides *which request* of that band on its shard, among the requests the
 * dispatcher has taken in from the flows' inboxes. Policy state lives per
 * (band, shard): band_state_size bytes, zeroed, then band_init; and per flow:
 * flow_state_size bytes, zeroed when the flow is created (the policy must
 * hold no reference to it once the flow has nothing queued: an empty flow
 * may be freed). Each queued request lends the policy its priv.dnode link
 * (struct flowq_list_node), untouched by anything else while the request is
 * queued. Context, as for the other kinds: the shard's
 * dispatcher thread only, never concurrently on one band state, O(1) or
 * O(log n) per call, no allocation outside band_init/band_fini and
 * flow_attach/flow_detach.
 * The built-in "none" never picks a victim; an engine configured with it
 * does not call the ops at all (and keeps no displacement state).
 */
struct flowq_displacement_ops {
	struct flowq_policy_desc desc;
	/** Set up @p band (zeroed). @return 0 or a negative errno. */
	int (*band_init)(void *band, const struct flowq_policy_env *env);
	/** Free what band_init and flow_attach allocated; no flow is
	 * attached any more. */
	void (*band_fini)(void *band, const struct flowq_policy_env *env);
	/** Optional (NULL: nothing to do). A flow joins the band on this
	 * shard (its state @p flow zeroed); may allocate through env->alloc
	 * (e.g. room in a heap of flows). @return 0 or -ENOMEM. */
	int (*flow_attach)(void *band, void *flow, const struct flowq_policy_env *env);
	/** Optional (NULL: nothing to do). The flow leaves (it has nothing
	 * queued). */
	void (*flow_detach)(void *band, void *flow, const struct flowq_policy_env *env);
	/** @p req joined the band's queues on this shard (taken in from its
	 * flow's inbox, in the order the dispatcher takes requests in);
	 * @p flow is its flow's state, @p weight the flow's weight (>= 1). */
	void (*arrived)(void *band, void *flow, struct flowq_req *req, uint32_t weight);
	/** @p req left them (dispatched, expired, cancelled, displaced). */
	void (*left)(void *band, void *flow, struct flowq_req *req, uint32_t weight);
	/** The request to shed next, or NULL to shed nothing. Must not
	 * change the state (the engine calls left() when it sheds it). */
	struct flowq_req *(*victim)(void *band);
};

/**
 * The fairness policy named @p name (built-in or registered), or NULL if
 * there is none or @p name is NULL.
 *
 * Context: any thread, concurrently with registrations.
 * Ordering: finds every policy whose register() returned before this call
 * started (happens-before); one registered concurrently may or may not be
 * found.
 * Progress: wait-free (at most FLOWQ_POLICY_MAX name compares).
 */
FLOWQ_API const struct flowq_fairness_ops *
flowq_fairness_find(const char *name);

/** The ordering policy named @p name, or NULL; as flowq_fairness_find(). */
FLOWQ_API const struct flowq_ordering_ops *
flowq_ordering_find(const char *name);

/** The displacement policy named @p name, or NULL; as
 * flowq_fairness_find(). */
FLOWQ_API const struct flowq_displacement_ops *
flowq_displacement_find(const char *name);

/**
 * Add a fairness policy. @p ops must stay valid for the process lifetime
 * (there is no unregister: engines and lookups keep the pointer).
 *
 * @return 0; -EINVAL @p ops is NULL, abi_version is outside
 *         [FLOWQ_POLICY_ABI_MIN, FLOWQ_POLICY_ABI],
 *         the name is NULL, empty, longer than FLOWQ_POLICY_NAME_MAX or not
 *         [a-z0-9_]+, the description is NULL, or an op is NULL;
 *         -EEXIST a policy of that name exists (built-in or registered);
 *         -ENOSPC the kind already has FLOWQ_POLICY_MAX policies. Checked
 *         in that order: an invalid @p ops is -EINVAL even if its name
 *         exists.
 *
 * Context: any thread; registrations are serialized by a mutex inside.
 * Ordering: release: a lookup that returns @p ops sees everything the
 * caller wrote before this call (the ops struct itself included).
 * Progress: blocking (takes the mutex).
 */
FLOWQ_API int
flowq_fairness_register(const struct flowq_fairness_ops *ops);

/** Add an ordering policy; as flowq_fairness_register(). */
FLOWQ_API int
flowq_ordering_register(const struct flowq_ordering_ops *ops);

/** Add a displacement policy; as flowq_fairness_register(). */
FLOWQ_API int
flowq_displacement_register(const struct flowq_displacement_ops *ops);

/**
 * The @p i-th fairness policy (built-ins first, then registered ones in
 * registration order), or NULL past the end: for listing and for the
 * conformance suite. Indices are stable: a policy keeps its index for the
 * process lifetime.
 *
 * Context, Ordering, Progress: as flowq_fairness_find().
 */
FLOWQ_API const struct flowq_fairness_ops *
flowq_fairness_at(size_t i);

/** The @p i-th ordering policy, or NULL past the end; as
 * flowq_fairness_at(). */
FLOWQ_API const struct flowq_ordering_ops *
flowq_ordering_at(size_t i);

/** The @p i-th displacement policy, or NULL past the end; as
 * flowq_fairness_at(). */
FLOWQ_API const struct flowq_displacement_ops *
flowq_displacement_at(size_t i);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_POLICY_H */
