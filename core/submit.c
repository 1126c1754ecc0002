/*
 * The host-facing request calls: submit, cancel, release, submit_wait, and
 * flow handles. Each runs on a host thread and touches only the request,
 * its flow's producer lines, the capacity pools and the shard's queues; the
 * dispatcher does the rest (core/dispatch.c).
 *
 * Submit, in order (each step names what it guards against):
 *   [T1] claim the request (a double submit fails here, changing nothing);
 *   refuse if the engine is stopping;
 *   validate the caller fields, and refuse a request larger than the
 *   in-flight byte limit or the global or flow queued-byte limit (it could
 *   never be admitted or dispatched) (no engine state touched yet; the
 *   band's limit is checked once the flow, and so its band, is known);
 *   find or create the flow and lease it (registry.c: the lease keeps the
 *   flow from being collected until the request is in its inbox);
 *   reserve capacity: global, then band, then flow, each rolled back if a
 *   later one fails, so a rejected request holds nothing;
 *   fill the private fields, then [T4] (release: the dispatcher and any
 *   canceller see them);
 *   enqueue on the inbox; if it was empty, ring the shard's doorbell and
 *   wake the dispatcher only if it sleeps (engine.h, the handshake);
 *   drop the lease.
 * After the enqueue the request may already be dispatched and completed on
 * another thread: submit does not touch it again.
 *
 * flowq_submit_batch() runs the same steps per request, with one clock
 * read per call, and for a run of requests on one flow one look-up and
 * lease, and the enqueue (one chain exchange), ring and unlease once, when
 * the run ends (see "flowq_submit_batch()" below); it claims SUBMIT_AHEAD
 * requests at a time, then looks up their flows before it leases any
 * (ahead_get()), then takes each through the remaining steps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "engine.h"
#include "history.h"
#include "mono.h"
#include "fault.h"
#include "req.h"


static int
reject(struct flowq_req *req, struct flowq__rejects *where, struct flowq__rejects *also,
       enum flowq_outcome o, enum flowq_cause c, int err)
{
	flowq__req_finalize(req, o, c);
	if (FLOWQ__HISTORY_ON)
		flowq__history_reject(req, o, c);
	flowq__reject_count(where, c);
	if (also)
		flowq__reject_count(also, c);
	return err;
}

static bool
flow_cap_reserve(const struct flowq_engine *e, struct flowq_flow *f, uint64_t bytes)
{
	uint64_t maxr = e->cfg.flow_max_requests, maxb = e->cfg.flow_max_bytes;
	/* Requests: add, then check. A concurrent reserve may be refused
	 * while this one is rolled back, but the limit is never exceeded, and
	 * the count cannot wrap (one add per thread in flight). */
	if (maxr) {
		uint64_t v = atomic_fetch_add_explicit(&f->cap_req, 1, memory_order_acquire);
		if (v + 1 > maxr) {
			atomic_fetch_sub_explicit(&f->cap_req, 1, memory_order_relaxed);
			return false;
		}
	}
	/* Bytes: check, then add (a CAS loop). Adding first would let the
	 * counter wrap: with requests of up to FLOWQ_LIMIT_MAX = 2^62 bytes,
	 * three adds in flight on top of one held request pass 2^64, and a
	 * fourth reserve would read a small total and be admitted. The same
	 * one locked instruction when nothing races. */
	if (maxb) {
		uint64_t v = atomic_load_explicit(&f->cap_bytes, memory_order_relaxed);
		do {
			if (bytes > maxb || v > maxb - bytes) {
				if (maxr)
					atomic_fetch_sub_explicit(&f->cap_req, 1,
								  memory_order_relaxed);
				return false;
			}
		} while (!atomic_compare_exchange_weak_explicit(&f->cap_bytes, &v, v + bytes,
								memory_order_acquire,
								memory_order_relaxed));
	}
	return true;
}

/*
 * Displacement (dispatch.c, "displacement"): the global limit is full;
 * take a ticket against the band-shard of the lowest band below @p prio
 * that has published more sheddable requests and bytes than tickets
 * already taken against it. @return true with the ticket taken and the
 * shard woken: the newcomer is admitted without a global reservation.
 * Slow path (only at the global limit): O(bands x shards) loads.
 *
 * Inside a read-side section: the bands seen may be template bands being
 * collected (registry.c, "Band lifetime"); their band-shards stay valid
 * until the section ends, a parked one fails the ticket CAS, and the
 * bytes added after a successful CAS are seen by the band's free callback,
 * which runs after this section.
 */
static bool
displace_ticket(struct flowq_engine *e, int32_t prio, uint64_t bytes)
{
	bool bytes_limited = e->cfg.max_bytes != 0;
	/* The transient bound first (flowq.h displacement_max_pending). */
	uint64_t p = atomic_load_explicit(&e->disp_pending, memory_order_relaxed);
	do {
		if (p >= e->cfg.displacement_max_pending)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&e->disp_pending, &p, p + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	/* A request with a handle did not register the thread yet. */
	flowq__rcu_thread_online();
	urcu_memb_read_lock();
	uint32_t nb = atomic_load_explicit(&e->nbands, memory_order_acquire);
	for (;;) {
		/* The lowest band below prio with something to shed. */
		struct flowq__band *best = NULL;
		struct flowq__band_shard *bbs = NULL;
		unsigned bk = 0;
		uint64_t seen = 0;
		for (uint32_t i = 0; i < nb; i++) {
			struct flowq__band *b =
				atomic_load_explicit(&e->bands[i], memory_order_acquire);
			if (!b || b->priority >= prio || (best && b->priority >= best->priority))
				continue;
			for (unsigned k = 0; k < e->nshards; k++) {
				/* b's own state, never its slot's: a collected
				 * band's slot may hold a newer band. */
				struct flowq__band_shard *bs = b->bss[k];
				uint64_t av = atomic_load_explicit(&bs->avail_req,
								   memory_order_acquire);
				/* A parked band-shard's count has the top bit
				 * set: never below av. */
				uint64_t d = atomic_load_explicit(&bs->doomed_req,
								  memory_order_relaxed);
				if (av <= d)
					continue;
				if (bytes_limited &&
				    atomic_load_explicit(&bs->avail_bytes, memory_order_relaxed) <
					    atomic_load_explicit(&bs->doomed_bytes,
								 memory_order_relaxed) +
						    bytes)
					continue;
				best = b;
				bbs = bs;
				bk = k;
				seen = d;
				break;
			}
		}
		if (!best) {
			flowq__rcu_unlock();
			atomic_fetch_sub_explicit(&e->disp_pending, 1, memory_order_relaxed);
			return false;
		}
		/* The CAS on the ticket count is what makes two submitters
		 * that saw the same last request take one ticket, not two
		 * (and fails once the band-shard is parked). */
		if (!atomic_compare_exchange_strong_explicit(&bbs->doomed_req, &seen, seen + 1,
							     memory_order_acq_rel,
							     memory_order_relaxed))
			continue;
		atomic_fetch_add_explicit(&bbs->doomed_bytes, bytes, memory_order_relaxed);
		flowq__rcu_unlock();
		/* The dispatcher may be asleep with nothing else to do. */
		flowq__shard_kick(&e->shards[bk]);
		return true;
	}
}

static void
flow_cap_unreserve(const struct flowq_engine *e, struct flowq_flow *f, uint64_t bytes)
{
	if (e->cfg.flow_max_requests)
		atomic_fetch_sub_explicit(&f->cap_req, 1, memory_order_relaxed);
	if (e->cfg.flow_max_bytes)
		atomic_fetch_sub_explicit(&f->cap_bytes, bytes, memory_order_relaxed);
}

/*
 * The first steps of a submit after its [T1] claim, before the flow is
 * known: the engine's state, the caller fields. @return 0 with @p req
 * valid; else what flowq_submit() returns (@p req rejected).
 */
static int
submit_check(struct flowq_engine *e, struct flowq_req *req)
{
	FLOWQ__FAULT(S_CLAIMED);
	if (atomic_load_explicit(&e->stopping, memory_order_acquire))
		return reject(req, &e->rejects, NULL, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_SHUTDOWN, -ESHUTDOWN);

	struct flowq_flow *f = req->flow;
	if (!req->complete || req->ttl_ns < 0 || req->bytes > FLOWQ_LIMIT_MAX ||
	    (f && f->engine != e) ||
	    (!f && (!req->flow_id || req->flow_id_len == 0 ||
		    req->flow_id_len > FLOWQ_FLOW_ID_MAX)))
		return reject(req, &e->rejects, NULL, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_INVALID_REQUEST, -EINVAL);
	/* A request larger than a byte limit it must fit whole could never be
	 * dispatched: the in-flight limit (gate_under_ceiling() in dispatch.c
	 * needs in-flight + bytes <= the limit even with nothing in flight),
	 * or a queued-byte limit (global or flow max_bytes here, the band's
	 * after the look-up; displacement cannot make room beyond the limit
	 * itself). It would hold queue capacity until its TTL evicts it, or
	 * for ever, or be refused as "full, retry later" for ever: refused
	 * at once instead, before the flow is looked up, so it creates
	 * nothing. The usage ceiling does not count: it compares the use
	 * before the request with ceiling x limit, so any request within the
	 * limit dispatches once the pool is idle enough ("not now", not
	 * "never"). */
	if (req->bytes > e->max_request_bytes)
		return reject(req, &e->rejects, NULL, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_INVALID_REQUEST, -EMSGSIZE);
	return 0;
}

/* Find or create @p req's flow by its id and lease it. @return 0 with
 * *r_flow leased; else @p req is rejected with the errno returned: -ENOMEM,
 * -ENOENT (no band for the priority), or whatever else making the
 * just-in-time band failed with (a host policy's band_init), kept as it is
 * under the cause closest to it, UNKNOWN_BAND (no band could be had). */
static int
submit_lookup(struct flowq_engine *e, struct flowq_req *req, struct flowq_flow **r_flow)
{
	flowq__rcu_thread_online();
	int err = flowq__flow_acquire(e, req->flow_id, req->flow_id_len, req->priority, r_flow);
	if (err == -ENOMEM)
		return reject(req, &e->rejects, NULL, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_NO_MEMORY, -ENOMEM);
	if (err)
		return reject(req, &e->rejects, NULL, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_UNKNOWN_BAND, err);
	return 0;
}

/*
 * Admit @p req (claimed and checked) on its flow @p f at engine time
 * @p now: its expiry, capacity at every level, the hand-off line, [T4].
 * @return 0: queued as far as the request's state goes, and the caller
 * must count it in f->accepted and enqueue it; else rejected (nothing
 * held).
 */
static int
submit_admit(struct flowq_engine *e, struct flowq_req *req, struct flowq_flow *f,
	     int64_t now)
{
	struct flowq__band *b = f->band;
	if (b->limited && b->cap.limit[FLOWQ__CAP_BYTES] &&
	    req->bytes > b->cap.limit[FLOWQ__CAP_BYTES])
		return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_INVALID_REQUEST, -EMSGSIZE);

	int64_t ttl = req->ttl_ns ? req->ttl_ns : e->cfg.default_ttl_ns;
	int64_t expire = ttl == FLOWQ_TTL_NONE ? INT64_MAX : flowq__add_sat(now, ttl);
	uint32_t dflags = 0;
	if (req->deadline_ns && req->deadline_ns < expire) {
		expire = req->deadline_ns;
		dflags = FLOWQ__RF_DEADLINE;
	}
	if (expire <= now)
		return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_OTHER,
			      FLOWQ_CAUSE_DEADLINE_PASSED, -ETIMEDOUT);

	uint64_t bytes = req->bytes;
	/* global_held: this request holds a global reservation of its own
	 * (else none is needed, or it will displace: then it may fail the
	 * band and flow limits first, before any ticket is taken). */
	bool global_held = false, displacing = false;
	if (e->global_limited) {
		global_held = flowq__cap_reserve(&e->global, bytes) == 0;
		if (!global_held && !e->displace)
			return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_CAPACITY,
				      FLOWQ_CAUSE_CAPACITY_GLOBAL, -ENOSPC);
		displacing = !global_held;
	}
	if (b->limited && flowq__cap_reserve(&b->cap, bytes)) {
		if (global_held)
			flowq__cap_release(&e->global, 1, bytes);
		return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_CAPACITY,
			      FLOWQ_CAUSE_CAPACITY_BAND, -ENOSPC);
	}
	if (e->flow_limited && !flow_cap_reserve(e, f, bytes)) {
		if (b->limited)
			flowq__cap_release(&b->cap, 1, bytes);
		if (global_held)
			flowq__cap_release(&e->global, 1, bytes);
		return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_CAPACITY,
			      FLOWQ_CAUSE_CAPACITY_FLOW, -ENOSPC);
	}
	if (displacing && !displace_ticket(e, b->priority, bytes)) {
		if (e->flow_limited)
			flow_cap_unreserve(e, f, bytes);
		if (b->limited)
			flowq__cap_release(&b->cap, 1, bytes);
		return reject(req, &b->rejects, &f->rejects, FLOWQ_REJECTED_CAPACITY,
			      FLOWQ_CAUSE_CAPACITY_GLOBAL, -ENOSPC);
	}

	/* The hand-off line (types.h): all the dispatcher will read. */
	req->priv.enqueue_ns = now;
	req->priv.expire = expire;
	req->priv.owner = f;
	req->priv.dflags = dflags;
	req->priv.bytes = bytes;
	req->priv.complete = req->complete;
	req->priv.arg = req->arg;
	if (FLOWQ__HISTORY_ON)
		flowq__history_submit(req, f->hash, b->priority, now, expire,
				      b->ordering == &flowq_ordering_fcfs);
	/* [T4] release: the fields above are visible to the dispatcher (it
	 * reads them after the inbox hand-off, which also orders them) and to
	 * a canceller (its [T2] CAS acquires this). */
	if (flowq__req_mark_queued(req))
		abort(); /* only this thread can change the word here */
	FLOWQ__FAULT(S_QUEUED);
	FLOWQ_TSAN_RELEASE(req);
	return 0;
}

/* Count @p n admitted requests of @p bytes in all on @p f: before their
 * enqueue, so a reader never sees a request leave before it arrived
 * (queued = accepted - left stays >= 0 up to the reader's own reordering,
 * which it clamps). */
static inline void
count_accepted(struct flowq_flow *f, uint64_t n, uint64_t bytes)
{
	atomic_fetch_add_explicit(&f->accepted, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->accepted_bytes, bytes, memory_order_relaxed);
}

/* flowq_submit() after its [T1] claim of @p req. */
static inline int
submit_claimed(struct flowq_engine *e, struct flowq_req *req)
{
	int err = submit_check(e, req);
	if (err)
		return err;
	struct flowq_flow *f = req->flow;
	bool leased = !f;
	if (leased && (err = submit_lookup(e, req, &f)))
		return err;
	err = submit_admit(e, req, f, flowq__now(e));
	if (!err) {
		count_accepted(f, 1, req->priv.bytes);
		if (flowq_mpsc_enqueue(&f->inbox, &req->priv.link))
			flowq__flow_ring(f);
	}
	if (leased)
		flowq__flow_unlease(f);
	return err;
}

int
flowq_submit(struct flowq_engine *e, struct flowq_req *req)
{
	if (!e || !req)
		return -EFAULT;
	/* [T1]: a second submit of the request fails here, changing and
	 * reading nothing. */
	if (flowq__req_claim(req))
		return -EBUSY;
	return submit_claimed(e, req);
}

/*
 * flowq_submit_batch(): the requests admitted on one flow in a row, queued
 * together at the end of the run: one lease and look-up (for requests named
 * by id), one count of accepted, one inbox exchange, and the ring and kick
 * of flowq_submit() if the inbox was empty. Each run rings and kicks as
 * soon as it ends, not at the end of the call: a flow claimed for the
 * doorbell ([D1]) and not yet on it would hide every other producer's
 * requests on that flow from its dispatcher (their own rings see the claim
 * and stop), for as long as the call lasts.
 */
struct submit_run {
	struct flowq_flow *f;
	bool leased;
	struct flowq_mpsc_node *first, *last;
	uint64_t n, bytes;
};

/* Does @p req (claimed, naming its flow by id) name flow @p f (leased)? */
static inline bool
names_flow(const struct flowq_req *req, const struct flowq_flow *f)
{
	return f && req->priority == f->priority && req->flow_id_len == f->id_len &&
	       memcmp(req->flow_id, f->id, f->id_len) == 0;
}

/* Does @p req (checked, naming its flow by id) name the run's flow? */
static inline bool
run_same_key(const struct submit_run *run, const struct flowq_req *req)
{
	return names_flow(req, run->f);
}

/* Queue the run's requests, ring their flow if its inbox was empty, and
 * end the run. */
static void
run_flush(struct submit_run *run)
{
	struct flowq_flow *f = run->f;
	if (!f)
		return;
	if (run->n) {
		count_accepted(f, run->n, run->bytes);
		if (flowq_mpsc_enqueue_chain(&f->inbox, run->first, run->last))
			flowq__flow_ring(f);
	}
	if (run->leased)
		flowq__flow_unlease(f);
	*run = (struct submit_run){0};
}

/* The argument check both batch calls make: 0 or what they return. */
static int
batch_args(const struct flowq_engine *e, struct flowq_req *const *reqs, size_t n)
{
	if (!e || (!reqs && n))
		return -EFAULT;
	return n > INT_MAX ? -EINVAL : 0;
}

/* How many requests ahead_get() looks up at once: enough for the misses
 * of several look-ups to overlap, few enough that their lines are still
 * in the cache when the requests reach them. */
#define SUBMIT_AHEAD 16
FLOWQ_STATIC_ASSERT(SUBMIT_AHEAD <= 32, "ahead_get()'s mask has 32 bits");

/* Does @p req (claimed) name a flow by an id that flowq_submit() would
 * look up? */
static inline bool
names_id(const struct flowq_req *req)
{
	return !req->flow && req->flow_id && req->flow_id_len != 0 &&
	       req->flow_id_len <= FLOWQ_FLOW_ID_MAX;
}

/* Do @p a and @p b (both claimed, naming an id) name the same flow? */
static inline bool
same_key(const struct flowq_req *a, const struct flowq_req *b)
{
	return a->priority == b->priority && a->flow_id_len == b->flow_id_len &&
	       memcmp(a->flow_id, b->flow_id, a->flow_id_len) == 0;
}

/*
 * The batch's look-ahead, on reqs[base .. base + m): claim them all ([T1];
 * @return bit j set: reqs[base + j] is claimed, else it is NULL or was
 * submitted already), then lease the flows of those that start a new key
 * (an id not the one of the request before, or, for the first, not the
 * current run's @p run_f), in one read-side section, all the look-ups first
 * and then all the leases. ahead[j] is reqs[base + j]'s flow, leased, or
 * NULL (no look-up made, the flow is absent, or it is being collected: the
 * request then takes flowq_submit()'s path).
 *
 * Why: with many flows every look-up misses twice in a row, on the table's
 * bucket and then on the flow. Look-ups of different requests do not
 * depend on each other, so the core can run several at once, but only if
 * no locked instruction sits between them: on x86 a locked instruction
 * waits for the loads before it, so a lease taken as each flow is found
 * would make the next look-up wait for this one's misses, as a loop of
 * flowq_submit() does.
 *
 * The claims come first because a request's caller fields are read only
 * once this call owns it, as flowq_submit() does: an unclaimed request may
 * be one the host submitted already (a bug the claim refuses with -EBUSY,
 * reading nothing), whose completion may run during this call and whose
 * fields the host may then change or free. Claiming a chunk together
 * changes nothing a host can tell from one flowq_submit() per request: a
 * claimed request cannot be cancelled or completed before it is queued,
 * later in this call. The caller gives back every lease no run takes
 * (ahead_put()).
 */
static uint32_t
ahead_get(struct flowq_engine *e, struct flowq_req *const *reqs, size_t base, size_t m,
	  const struct flowq_flow *run_f, struct flowq_flow **ahead)
{
	uint32_t claimed = 0, fresh = 0;
	/* reqs[base + j - 1] if this call claimed it and it names an id. */
	const struct flowq_req *prev = NULL;
	for (size_t j = 0; j < m; j++) {
		struct flowq_req *req = reqs[base + j];
		ahead[j] = NULL;
		if (!req || flowq__req_claim(req)) {
			prev = NULL;
			continue;
		}
		claimed |= UINT32_C(1) << j;
		if (!names_id(req)) {
			prev = NULL;
			continue;
		}
		if (prev ? !same_key(prev, req) : !(j == 0 && names_flow(req, run_f)))
			fresh |= UINT32_C(1) << j;
		prev = req;
	}
	if (!fresh)
		return claimed;
	flowq__rcu_thread_online();
	urcu_memb_read_lock();
	for (size_t j = 0; j < m; j++) {
		const struct flowq_req *req = reqs[base + j];
		if (fresh >> j & 1)
			ahead[j] = flowq__flow_lookup_rcu(e, req->flow_id, req->flow_id_len,
							  req->priority);
	}
	for (size_t j = 0; j < m; j++)
		if (ahead[j] && !flowq__flow_lease_rcu(ahead[j]))
			ahead[j] = NULL;
	flowq__rcu_unlock();
	return claimed;
}

/* Give back the leases of ahead_get() that no run took. */
static void
ahead_put(struct flowq_flow **ahead, size_t m)
{
	for (size_t j = 0; j < m; j++)
		if (ahead[j])
			flowq__flow_unlease(ahead[j]);
}

int
flowq_submit_batch(struct flowq_engine *e, struct flowq_req *const *reqs, size_t n,
		   int *r_rc)
{
	int bad = batch_args(e, reqs, n);
	if (bad)
		return bad;
	struct submit_run run = {0};
	struct flowq_flow *ahead[SUBMIT_AHEAD];
	size_t m = 0;
	uint32_t claimed = 0;
	int64_t now = 0;
	bool have_now = false;
	int queued = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % SUBMIT_AHEAD == 0) {
			ahead_put(ahead, m);
			m = n - i < SUBMIT_AHEAD ? n - i : SUBMIT_AHEAD;
			claimed = ahead_get(e, reqs, i, m, run.f, ahead);
		}
		struct flowq_req *req = reqs[i];
		int err = !req                                   ? -EFAULT
			  : !(claimed >> (i % SUBMIT_AHEAD) & 1) ? -EBUSY
								 : submit_check(e, req);
		if (!err) {
			struct flowq_flow *f = req->flow;
			if (f ? f != run.f : !run_same_key(&run, req)) {
				run_flush(&run);
				struct flowq_flow **mine = &ahead[i % SUBMIT_AHEAD];
				if (!f && *mine) {
					/* Leased by ahead_get(): now the run's. */
					f = *mine;
					*mine = NULL;
					run.leased = true;
				} else if (!f && !(err = submit_lookup(e, req, &f))) {
					run.leased = true;
				}
				run.f = err ? NULL : f;
			}
		}
		if (!err) {
			/* One clock read per call (flowq.h). */
			if (!have_now) {
				now = flowq__now(e);
				have_now = true;
			}
			err = submit_admit(e, req, run.f, now);
		}
		if (!err) {
			struct flowq_mpsc_node *node = &req->priv.link;
			if (run.n)
				atomic_store_explicit(&run.last->next, node,
						      memory_order_relaxed);
			else
				run.first = node;
			run.last = node;
			run.n++;
			run.bytes += req->priv.bytes;
			queued++;
		}
		if (r_rc)
			r_rc[i] = err;
	}
	run_flush(&run);
	ahead_put(ahead, m);
	return queued;
}

int
flowq_cancel(struct flowq_engine *e, struct flowq_req *req)
{
	if (!e || !req)
		return -EFAULT;
	struct flowq__history_stamp hst;
	if (FLOWQ__HISTORY_ON)
		flowq__history_stamp(&hst);
	/* [T2]: only a queued, undecided request can be cancelled. */
	if (!flowq__req_finalize(req, FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED))
		return -EALREADY;
	if (FLOWQ__HISTORY_ON) {
		struct flowq__shard *hs = ((struct flowq_flow *)req->priv.owner)->shard;
		flowq__history_outcome_at(&hst, req, FLOWQ_EVICTED_CANCELLED,
					  FLOWQ_CAUSE_CANCELLED, flowq__now(e), hs->index,
					  flowq__gate_scarce(e));
	}
	FLOWQ__FAULT(C_WON);
	/* The request cannot complete before the dispatcher has our message
	 * (dispatch.c, the two-event rule), so it and its flow (which cannot
	 * be collected while the request is queued) stay valid until the
	 * enqueue below; the shard outlives both. */
	struct flowq__shard *s = ((struct flowq_flow *)req->priv.owner)->shard;
	FLOWQ_TSAN_RELEASE(req);
	flowq_mpsc_enqueue(&s->cancels, &req->priv.clink);
	flowq__shard_kick(s);
	return 0;
}

/* Account @p n requests of @p bytes in all released: the in-flight
 * statistics or the gate's credit, then wake dispatchers that wait. */
static void
released(struct flowq_engine *e, uint64_t n, uint64_t bytes)
{
	/* A dimension the gate does not limit (none, with no gate) is counted
	 * on this CPU's line for the in-flight statistics (never a line shared
	 * with other CPUs); a limited one is known from the gate's credit. */
	bool req_counted = e->gate_limited && e->gate.limit[FLOWQ__CAP_REQ] != 0;
	bool bytes_counted = e->gate_limited && e->gate.limit[FLOWQ__CAP_BYTES] != 0;
	if (!req_counted || !bytes_counted) {
		struct flowq__pcpu *pc = &e->pcpu[flowq__cpu_current() % e->npcpu];
		if (!req_counted)
			atomic_fetch_add_explicit(&pc->released, n, memory_order_relaxed);
		if (!bytes_counted)
			atomic_fetch_add_explicit(&pc->released_bytes, bytes,
						  memory_order_relaxed);
	}
	if (e->gate_limited) {
		flowq__cap_release(&e->gate, n, bytes);
		flowq__gate_wake(e);
		return;
	}
	if (e->gate_callback) /* the host's detector may have room now */
		flowq__gate_wake(e);
}

/* [T3] on @p req; @return 0 (its bytes added to *r_bytes) or what
 * flowq_release() returns. */
static int
release_one(struct flowq_req *req, uint64_t *r_bytes)
{
	/* The size the gate reserved at dispatch (the submit's copy), not
	 * the caller field, which the host may change after the completion.
	 * The hand-off line: [T3] takes it anyway. */
	uint64_t bytes = req->priv.bytes;
	int err = flowq__req_release(req);
	if (err)
		return err;
	if (FLOWQ__HISTORY_ON)
		flowq__history_release(req);
	*r_bytes += bytes;
	return 0;
}

int
flowq_release(struct flowq_engine *e, struct flowq_req *req)
{
	if (!e || !req)
		return -EFAULT;
	uint64_t bytes = 0;
	int err = release_one(req, &bytes);
	if (!err)
		released(e, 1, bytes);
	return err;
}

int
flowq_release_batch(struct flowq_engine *e, struct flowq_req *const *reqs, size_t n,
		    int *r_rc)
{
	int bad = batch_args(e, reqs, n);
	if (bad)
		return bad;
	uint64_t bytes = 0;
	int done = 0;
	for (size_t i = 0; i < n; i++) {
		int err = reqs[i] ? release_one(reqs[i], &bytes) : -EFAULT;
		done += err == 0;
		if (r_rc)
			r_rc[i] = err;
	}
	if (done)
		released(e, (uint64_t)done, bytes);
	return done;
}

/* ---- submit_wait ---- */

struct waiter {
	_Atomic uint32_t done;
};

static void
waiter_complete(struct flowq_req *req, void *arg)
{
	(void)req;
	struct waiter *w = arg;
	atomic_store_explicit(&w->done, 1, memory_order_release);
	/* The waiter may return (and its frame die) as soon as it sees done;
	 * a wake on a dead address is harmless: the kernel only hashes it. */
	syscall(SYS_futex, (uint32_t *)&w->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static bool
wait_done(struct waiter *w, int64_t deadline)
{
	while (!atomic_load_explicit(&w->done, memory_order_acquire)) {
		struct timespec ts, *tsp = NULL;
		if (deadline >= 0) {
			int64_t d = deadline - flowq__mono_ns();
			if (d <= 0)
				return false;
			ts.tv_sec = d / 1000000000;
			ts.tv_nsec = d % 1000000000;
			tsp = &ts;
		}
		syscall(SYS_futex, (uint32_t *)&w->done, FUTEX_WAIT_PRIVATE, 0, tsp, NULL, 0);
	}
	return true;
}

enum flowq_outcome
flowq_submit_wait(struct flowq_engine *e, struct flowq_req *req, int64_t timeout_ns)
{
	struct waiter w;
	atomic_init(&w.done, 0);
	if (!e || !req)
		return FLOWQ_REJECTED_OTHER;
	/* [T1] before the callback fields: a request already submitted is
	 * the engine's, and its completion must keep calling the host's
	 * callback, not one that points into this stack frame. */
	if (flowq__req_claim(req))
		return FLOWQ_REJECTED_OTHER;
	req->complete = waiter_complete;
	req->arg = &w;
	int64_t deadline = timeout_ns < 0 ? -1 : flowq__add_sat(flowq__mono_ns(), timeout_ns);
	if (submit_claimed(e, req))
		return flowq_req_outcome(req);
	if (!wait_done(&w, deadline)) {
		/* Timed out: cancel (or lose to the outcome being decided) and
		 * wait for the completion, which is now certain. */
		(void)flowq_cancel(e, req);
		wait_done(&w, -1);
	}
	return flowq_req_outcome(req);
}

/* ---- flow handles ---- */

int
flowq_flow_get(struct flowq_engine *e, const void *id, uint32_t id_len, int32_t priority,
	       struct flowq_flow **r_flow)
{
	if (!e || !id || !r_flow || id_len == 0 || id_len > FLOWQ_FLOW_ID_MAX)
		return -EINVAL;
	if (atomic_load_explicit(&e->stopping, memory_order_acquire))
		return -ESHUTDOWN;
	flowq__rcu_thread_online();
	/* The lease taken here is the handle's; flowq_flow_put() drops it. */
	return flowq__flow_acquire(e, id, id_len, priority, r_flow);
}

void
flowq_flow_put(struct flowq_engine *e, struct flowq_flow *flow)
{
	(void)e;
	if (!flow)
		return;
	/* Never below zero: one put too many would wrap the count into the
	 * dead bit, and the flow would never be collected while every
	 * look-up of its id waited for it to go. A CAS loop, not the submit
	 * path's subtraction: handles are rare. [L3] release, as there. */
	uint64_t v = atomic_load_explicit(&flow->lease, memory_order_relaxed);
	do {
		if ((v & ~FLOWQ__LEASE_DEAD) == 0)
			return; /* a put of a handle nobody holds */
	} while (!atomic_compare_exchange_weak_explicit(&flow->lease, &v, v - 1,
							memory_order_release,
							memory_order_relaxed));
}

int
flowq_flow_set_weight(struct flowq_flow *flow, uint32_t weight)
{
	if (!flow || weight == 0 || weight > 65535)
		return -EINVAL;
	atomic_store_explicit(&flow->weight, weight, memory_order_relaxed);
	return 0;
}
