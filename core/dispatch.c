/*
 * The shard dispatcher: the single consumer of its shard's inboxes and the
 * only thread that touches its policy state (DESIGN.md "Data flow").
 *
 * One round (flowq__shard_run):
 *   1. cancel queue: requests whose flowq_cancel() won [T2]; each is
 *      unlinked from the private structures and completed (a request still
 *      in an inbox is completed when the drain reaches it);
 *   2. doorbell: flows whose inbox went empty -> non-empty (and new flows):
 *      adopt (attach to the band's fairness policy), drain the inbox into
 *      the ordering policy's private structure and the TTL heap;
 *   3. pending: inboxes that a previous drain left non-empty (a producer was
 *      between its exchange and its link, or the drain hit its bound);
 *   4. TTL: pop every expired timer, evict (EVICTED_TTL), complete;
 *   5. dispatch until blocked: bands most important first; in each, the
 *      fairness policy picks a flow and the ordering policy its request, the
 *      capacity gate (saturation detector, usage ceiling) admits it, [T2]
 *      decides DISPATCHED, the completion runs. The gate closing stops the
 *      whole round (strict priority: a lower band never takes a slot a
 *      higher band was refused);
 *   6. give back queue capacity once per flow and band for the round (not
 *      per request: DESIGN.md "Performance notes"); publish the shard's top
 *      waiting band; collect flows idle past the GC timeout.
 *
 * Exactly-once (DESIGN.md invariant 4): every outcome is decided by [T2]
 * (flowq__req_finalize), whichever thread decides, and every completion is
 * delivered here, by the thread that owns the links, after the request is
 * unlinked from everything. A cancelled request needs two events before its
 * completion runs: the cancel message (after which the canceller no longer
 * touches it) and its unlinking (RF_CANCEL_MSG and RF_UNLINKED below), in
 * either order; so the host never gets a request back while another thread
 * still holds it.
 *
 * Cross-shard strict priority (DESIGN.md invariant 2): while the gate is
 * scarce (a concurrency limit, a callback or a utilization detector) each
 * shard publishes the priority of its most important backlogged band
 * (top_waiting, written only when it changes), and before each dispatch of
 * band b a dispatcher checks whether another shard publishes a band above
 * b; if so it yields: it waits as if the gate were closed, and the shard
 * whose top drops wakes the waiters. The inversion window is bounded by the
 * time a shard takes to notice new work (its wake-up plus the rest of its
 * current round): a request of band b' > b that lands on shard A is not
 * yet published while A's dispatcher has not drained A's doorbell, and
 * during that window shard B may dispatch band b. When the gate is not
 * scarce nothing is published or read: shards do not touch each other's
 * lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_backoff.h>
#include <ck_pr.h>

#include "alloc_internal.h"
#include "engine.h"
#include "history.h"
#include "fault.h"
#include "mono.h"
#include "req.h"
#include "saturation_utilization.h"

#define RF_IN_PRIVATE FLOWQ__RF_IN_PRIVATE
#define RF_IN_TTL     FLOWQ__RF_IN_TTL
#define RF_UNLINKED   FLOWQ__RF_UNLINKED
#define RF_CANCEL_MSG FLOWQ__RF_CANCEL_MSG
#define RF_DEADLINE   FLOWQ__RF_DEADLINE

/* Most requests moved from one inbox per visit before the flow goes to
 * the pending list (keeps one flooded flow from stalling a round). */
#define DRAIN_CHUNK 64u
#define DRAIN_MAX_PER_VISIT 1024u
/* How soon a round must run again while an inbox is pending, ns. */
#define PENDING_RETRY_NS 50000

static inline struct flowq__band_shard *
bs_of(struct flowq__shard *s, const struct flowq__band *b)
{
	return atomic_load_explicit(&s->bs[b->index], memory_order_relaxed);
}

static inline struct flowq_flow *
flow_of_pf(struct flowq_policy_flow *pf)
{
	return (struct flowq_flow *)((char *)pf - offsetof(struct flowq_flow, pf));
}

static inline struct flowq_req *
req_of_link(struct flowq_mpsc_node *n)
{
	return (struct flowq_req *)((char *)n - offsetof(struct flowq_req, priv.link));
}

static inline struct flowq_req *
req_of_clink(struct flowq_mpsc_node *n)
{
	return (struct flowq_req *)((char *)n - offsetof(struct flowq_req, priv.clink));
}

static inline struct flowq_req *
req_of_hnode(struct flowq_heap_node *n)
{
	return (struct flowq_req *)((char *)n - offsetof(struct flowq_req, priv.hnode));
}

static inline struct flowq_flow *
flow_of_bell(struct flowq_mpsc_node *n)
{
	return (struct flowq_flow *)((char *)n - offsetof(struct flowq_flow, inbox.announce));
}

/* ---- sleeping and waking ---- */

static long
futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

/*
 * Both modes: every waker that finds the shard asleep and not yet awake
 * again makes the wake itself, unless another waker's wake for the same
 * sleep is known to have been made (engine.h, the handshake: the word's
 * state goes ASLEEP -> WOKEN by CAS, then WOKEN -> SENT once the taker's
 * wake has returned, and only the dispatcher, or flowq_shard_poll(), stores
 * AWAKE): threaded, a FUTEX_WAKE; polled, an eventfd write. The word used to
 * be taken 1 -> 0 by the first waker alone, and the others saw 0 and left
 * the wake to it; a waker preempted between its exchange and its wake then
 * kept the dispatcher (or the host's loop, in epoll on the fd) asleep, with
 * work queued, for as long as the scheduler kept the waker off the CPU:
 * nothing was lost, but the wake-up latency of a shard became that of an
 * unrelated thread (4-15 ms on the loaded 2-core machine: the cross-shard
 * priority inversions of stress_global, issue 6; regression tests
 * fault/wake_survives_a_stalled_waker and
 * fault/polled_wake_survives_a_stalled_waker; tests/model/wake.pml, the
 * -DSTALL runs and their -DMUT_FIRST_WAKER_ONLY mutants). A waker that
 * reads WOKEN therefore wakes too: the taker may be stalled before its
 * system call. One that reads SENT does not: a wake made after the word
 * left ASLEEP has returned, so the dispatcher's wait (on ASLEEP of this
 * generation) has returned or will return at once (polled: the fd is
 * readable, and the next poll reads it); its next round, or the re-check
 * before its next sleep, sees this waker's work as it would after reading
 * AWAKE (a waker's SENT comes before the dispatcher's AWAKE in the word's
 * modification order: the WOKEN -> SENT CAS fails once AWAKE is stored;
 * by the seq_cst fences of [W1] and of the sleep path, the re-check then
 * sees the work). Without SENT, every kick between the first wake and the
 * dispatcher's return made a system call; a producer submitting while the
 * woken dispatcher waited for a CPU (P = 1, S = 2 on 2 CPUs, or any loaded
 * machine) made one per request at F >= 1000: 2-5x its CPU per request
 * (bench/ENGINE-LOG.md, "Sessions 2-6"). What is left: the wakers between the
 * first waker's CAS and its wake's return (one system call's length,
 * longer only if it is preempted there) each make one call.
 * The generation (the high bits, new for every sleep or armed poll) keeps a
 * slow waker's WOKEN -> SENT from landing on a later sleep's WOKEN, whose
 * taker may not have woken yet (ABA): its CAS compares the whole word.
 */
void
flowq__shard_wake(struct flowq__shard *s)
{
	uint32_t v = atomic_load_explicit(&s->sleeping, memory_order_relaxed);
	uint32_t st = v & FLOWQ__SLEEP_STATE;
	if (st == FLOWQ__SLEEP_AWAKE)
		return;
	/* ASLEEP -> WOKEN: the futex wait (on ASLEEP) returns at once from
	 * here on; the poller's re-check sees that a waker took the word. A
	 * failed CAS reads another waker's WOKEN (wake anyway) or SENT, AWAKE
	 * or a newer sleep (the dispatcher woke since our load). */
	while (st == FLOWQ__SLEEP_ASLEEP) {
		uint32_t w = v - FLOWQ__SLEEP_ASLEEP + FLOWQ__SLEEP_WOKEN;
		if (atomic_compare_exchange_strong_explicit(&s->sleeping, &v, w,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			v = w;
			break;
		}
		st = v & FLOWQ__SLEEP_STATE;
	}
	if ((v & FLOWQ__SLEEP_STATE) != FLOWQ__SLEEP_WOKEN)
		return; /* AWAKE, or SENT: the wake is made */
	FLOWQ__FAULT(W_TAKEN);
	if (s->engine->cfg.mode == FLOWQ_MODE_POLLED) {
		uint64_t one = 1;
		/* EAGAIN (counter saturated) still leaves the fd readable. */
		ssize_t n = write(s->efd, &one, sizeof(one));
		(void)n;
	} else {
		futex(&s->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
	/* Relaxed: a hint to later wakers (above); it fails harmlessly if
	 * another waker set it or the dispatcher is awake again. */
	atomic_compare_exchange_strong_explicit(
		&s->sleeping, &v, v - FLOWQ__SLEEP_WOKEN + FLOWQ__SLEEP_SENT,
		memory_order_relaxed, memory_order_relaxed);
}

void
flowq__shard_kick(struct flowq__shard *s)
{
	/* [W1] the waker's fence: orders the caller's publication (an RMW on
	 * a queue tail) before the load of s->sleeping (see engine.h). */
	atomic_thread_fence(memory_order_seq_cst);
	flowq__shard_wake(s);
}

void
flowq__gate_wake(struct flowq_engine *e)
{
	/* [W1] as in flowq__shard_kick(): the capacity release (or the drop of
	 * a published top band) comes before the load of the waiter count. */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&e->gate_waiters, memory_order_relaxed))
		return;
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__shard *s = &e->shards[i];
		if (atomic_load_explicit(&s->gate_wait, memory_order_relaxed))
			flowq__shard_wake(s);
	}
}

static void
gate_wait_set(struct flowq__shard *s)
{
	if (atomic_load_explicit(&s->gate_wait, memory_order_relaxed))
		return;
	atomic_store_explicit(&s->gate_wait, 1, memory_order_relaxed);
	/* seq_cst RMW: the dispatcher's half of the Dekker pair with
	 * flowq__gate_wake()'s [W1]; its re-check of the gate follows. */
	atomic_fetch_add_explicit(&s->engine->gate_waiters, 1, memory_order_seq_cst);
}

static void
gate_wait_clear(struct flowq__shard *s)
{
	if (!atomic_load_explicit(&s->gate_wait, memory_order_relaxed))
		return;
	atomic_store_explicit(&s->gate_wait, 0, memory_order_relaxed);
	atomic_fetch_sub_explicit(&s->engine->gate_waiters, 1, memory_order_relaxed);
}

/* ---- band and flow adoption ---- */

static void
order_insert(struct flowq__shard *s, struct flowq__band *b)
{
	unsigned i = s->norder;
	while (i > 0) {
		struct flowq__band *o =
			atomic_load_explicit(&s->engine->bands[s->order[i - 1]],
					     memory_order_relaxed);
		if (o->priority >= b->priority)
			break;
		s->order[i] = s->order[i - 1];
		i--;
	}
	s->order[i] = b->index;
	s->norder++;
}

static void
order_remove(struct flowq__shard *s, const struct flowq__band *b)
{
	unsigned i = 0;
	while (s->order[i] != b->index)
		i++;
	s->norder--;
	memmove(&s->order[i], &s->order[i + 1], sizeof(s->order[0]) * (s->norder - i));
}

static unsigned
displace_settle(struct flowq__shard *s, struct flowq__band_shard *bs, int64_t now);

/* The band-shard takes part in this shard's rounds (its band's first flow
 * here): into order[] and, for a template band, out of the park. */
static void
band_shard_live(struct flowq__shard *s, struct flowq__band_shard *bs)
{
	order_insert(s, bs->band);
	bs->fstate_live = true;
	if (s->engine->displace && !bs->band->configured)
		atomic_fetch_and_explicit(&bs->doomed_req, ~FLOWQ__DOOMED_PARKED,
					  memory_order_relaxed);
}

/*
 * A template band's last flow here was detached: the band-shard leaves
 * order[] (so that no round looks at it, and the band can be collected:
 * registry.c (H3)). Nothing of it is queued, backlogged or owed: the flow
 * was idle, and give_back() and displace_publish() ran after its last
 * request left. With displacement, park it: tickets taken from here on
 * fail their CAS, and those taken already are settled now, as debt (there
 * is nothing to shed), since process_displacement() no longer looks here.
 */
static void
band_shard_park(struct flowq__shard *s, struct flowq__band_shard *bs, int64_t now)
{
	order_remove(s, bs->band);
	bs->fstate_live = false;
	if (!s->engine->displace)
		return;
	/* acq_rel: reads every ticket CAS before it (their bytes may come
	 * later: registry.c, the free callback takes what is left). */
	atomic_fetch_or_explicit(&bs->doomed_req, FLOWQ__DOOMED_PARKED, memory_order_acq_rel);
	(void)displace_settle(s, bs, now);
}

/* Attach @p f to its band's fairness policy on this shard. @return 0 or
 * -ENOMEM (then retried on a later round: the flow stays pending, its
 * requests in its inbox, where their TTL is not watched until memory comes
 * back: late evictions, never late dispatches). While stopping a flow
 * that cannot be attached is drained all the same: the drain evicts
 * everything and needs no policy state, and retrying it instead made
 * destroy spin for ever while allocations kept failing (found by
 * tests/unit/test_resilience.c, oom destroy_under_total_failure). */
static int
flow_adopt(struct flowq__shard *s, struct flowq_flow *f)
{
	if (f->attached)
		return 0;
	struct flowq__band *b = f->band;
	struct flowq__band_shard *bs = bs_of(s, b);
	struct flowq_policy_env env = flowq__policy_env(s->engine, b);
	f->pf.seq = s->flow_seq++;
	int err = b->fairness->flow_attach(bs->fstate, &f->pf, &env);
	if (err)
		return err;
	const struct flowq_displacement_ops *d = s->engine->displace;
	if (d && d->flow_attach && (err = d->flow_attach(bs->dstate, f->dstate, &env))) {
		b->fairness->flow_detach(bs->fstate, &f->pf, &env);
		return err;
	}
	f->attached = true;
	if (!b->configured)
		bs->nflows++;
	if (!bs->fstate_live)
		band_shard_live(s, bs);
	return 0;
}

void
flowq__flow_detach_policies(struct flowq_engine *e, struct flowq__band_shard *bs,
			    struct flowq_flow *f)
{
	struct flowq_policy_env env = flowq__policy_env(e, f->band);
	f->band->fairness->flow_detach(bs->fstate, &f->pf, &env);
	if (e->displace && e->displace->flow_detach)
		e->displace->flow_detach(bs->dstate, f->dstate, &env);
}

/* ---- cross-shard fairness ----
 *
 * DESIGN.md invariant 3: equal-weight backlogged flows of one band get
 * equal service whichever shard they live on. Inside a shard the band's
 * fairness policy shares the shard's dispatches among its flows; across
 * shards nothing would, and while the gate is scarce each dispatcher takes
 * slots as they free up, so a shard with one backlogged flow would give
 * it as much as a shard with ten gives all ten.
 *
 * So each band-shard keeps a virtual time vt: the service (dispatched
 * requests) per unit of backlogged weight it has given, vt += 1 / wsum per
 * dispatch, where wsum is the weight of its backlogged flows of the band
 * (as in start-time fair queuing, Goyal, Vin and Cheng, SIGCOMM 1996, with
 * shards in the role of flows and the shard's own policy below). While the
 * gate is under pressure (a concurrency limit, a callback or a utilization
 * detector is configured, there is more than one shard, and some shard is
 * waiting for the gate or this one was blocked in its last round), a
 * dispatcher publishes vt after each dispatch and takes a slot for band b
 * only if its vt is at most FAIR_SLACK above the smallest vt published for b by the
 * other shards (those with b backlogged); otherwise it yields like a gate
 * wait, and the shard whose publication may let it go on wakes the
 * waiters. Without pressure every dispatcher gets the slots it asks for, so
 * there is nothing to share out: vt is still kept (locally) but not
 * published, and no other shard's vt is read; the first dispatch under
 * pressure publishes the current vt before it compares. A stale vt read in
 * the meantime can only make a shard yield too early, and then it waits for
 * the gate, which puts the others under pressure: they publish and wake
 * it. A band-shard
 * that becomes backlogged starts at max(own vt, smallest other vt), so idle
 * time is not banked as credit (SFQ's start-tag rule). The shard with the
 * smallest vt never yields for fairness, so the shards cannot all wait on
 * each other. When the gate is not scarce every request is dispatched as
 * it comes and nothing is published or read.
 *
 * vt is a wrapping fixed-point counter (VT_ONE below), so it never runs out
 * of range or precision however long the engine runs.
 *
 * Bound: per-flow service of two backlogged equal-weight flows on different
 * shards differs by at most FAIR_SLACK + 1 requests plus the requests
 * dispatched during one stale read of vt_pub (a dispatch round).
 *
 * Bands whose policy shares bytes (FLOWQ_POLICY_BYTE_FAIR: drr, wfq) count
 * bytes instead: vt += bytes x VT_BYTE / wsum per dispatch (a zero-byte
 * request counts one byte, as drr charges it), and the slack is one band
 * quantum of bytes; the bound becomes one quantum plus one largest request
 * per unit of weight, plus a round's stale read. Measured before: three
 * 200 B flows on one shard and one 1600 B flow on the other, equal
 * weights, drr and wfq: Jain's index of bytes 0.45 (the lone flow got 8x
 * the bytes of each other one; requests were equal).
 */
/*
 * vt is fixed point, VT_ONE = one request per unit of weight, in a uint64_t
 * that is allowed to wrap: vts are only ever compared by their signed
 * difference (as TCP compares sequence numbers), which is right while the
 * shards of a band are within 2^63 / VT_ONE = 2^31 requests per unit of
 * weight of each other (the slack keeps them within a few). VT_ONE = 2^32
 * keeps VT_ONE / wsum >= 1 for any weight sum below 2^32. The published
 * value is vt | 1, so that 0 can mean "nothing backlogged here"
 * (FLOWQ__VT_IDLE); the lost bit is 2^-32 of a request.
 */
#define VT_ONE     (UINT64_C(1) << 32)
#define FAIR_SLACK ((int64_t)VT_ONE)
/* Byte-fair bands: one byte per unit of weight is VT_BYTE; a charge counts
 * at most VT_BYTE_MAX bytes (2^46 x 2^16 = 2^62 < 2^63: a single charge
 * never reaches the comparison's range), and the slack at most as much. */
#define VT_BYTE     (UINT64_C(1) << 16)
#define VT_BYTE_MAX (UINT64_C(1) << 46)

/* The largest vt lead a band-shard may have over the others. */
static inline int64_t
fair_slack(const struct flowq__band *b)
{
	if (!b->byte_fair)
		return FAIR_SLACK;
	uint64_t q = b->quantum < VT_BYTE_MAX ? b->quantum : VT_BYTE_MAX;
	return (int64_t)(q * VT_BYTE);
}

/* What one dispatch of @p bytes adds to vt at weight sum @p wsum. */
static inline uint64_t
fair_cost(const struct flowq__band *b, uint64_t bytes, uint64_t wsum)
{
	if (!b->byte_fair)
		return VT_ONE / wsum;
	uint64_t n = bytes == 0 ? 1 : bytes < VT_BYTE_MAX ? bytes : VT_BYTE_MAX;
	uint64_t c = n * VT_BYTE / wsum;
	return c ? c : 1;
}

static bool
fair_on(const struct flowq__shard *s)
{
	const struct flowq_engine *e = s->engine;
	return e->nshards > 1 && (e->gate_limited || e->gate_callback || e->gate_util);
}

/* The signed distance from @p bs's vt to the smallest vt published for its
 * band by the other shards (negative: another shard is behind us);
 * *r_any tells whether any other shard has the band backlogged. */
static int64_t
fair_min_delta(const struct flowq__shard *s, const struct flowq__band_shard *bs, bool *r_any)
{
	const struct flowq_engine *e = s->engine;
	int64_t m = INT64_MAX;
	*r_any = false;
	for (unsigned i = 0; i < e->nshards; i++) {
		if (i == s->index)
			continue;
		const struct flowq__band_shard *o =
			atomic_load_explicit(&e->shards[i].bs[bs->band->index], memory_order_relaxed);
		uint64_t v = atomic_load_explicit(&o->vt_pub, memory_order_acquire);
		if (v == FLOWQ__VT_IDLE)
			continue;
		int64_t d = (int64_t)(v - bs->vt);
		if (d < m)
			m = d;
		*r_any = true;
	}
	return m;
}

/*
 * Publish @p v as @p bs's vt. Shards that yielded to this band-shard may go
 * on now, but the gate wake that tells them is owed, not made here: it is
 * a system call (FUTEX_WAKE, or an eventfd write), and the thread it wakes
 * may preempt this one on its CPU. fair_charge() and fair_idle() run
 * between a dispatch decision ([T2]) and its completion, so a wake made
 * here held the completion, and with it the backend's use of the slot just
 * taken, for as long as the woken thread kept this dispatcher off the CPU:
 * 1.5-2.9 ms on the loaded 2-core machine, traced in stress_global
 * (issue 6; README "Reliability"), where the request looked dispatched
 * milliseconds after the decision and the other shard could not get a slot
 * meanwhile. gate_wake_flush() makes the wake after the completion in hand
 * is delivered, and at the end of every round, so no wake is lost (the
 * Dekker pair with gate_wait_set() needs the store above before the
 * waiter-count load in flowq__gate_wake(), which any later point keeps).
 */
static void
fair_publish(struct flowq__shard *s, struct flowq__band_shard *bs, uint64_t v)
{
	atomic_store_explicit(&bs->vt_pub, v, memory_order_seq_cst);
	s->gate_wake_owed = true;
}

/* Make the gate wake that fair_publish(), gate_take() or gate_untake()
 * owes, if any. */
static void
gate_wake_flush(struct flowq__shard *s)
{
	if (!s->gate_wake_owed)
		return;
	s->gate_wake_owed = false;
	flowq__gate_wake(s->engine);
}

/* The band became backlogged on this shard: start no earlier than the
 * shard that is furthest behind (idle time is not banked as credit). */
static void
fair_active(struct flowq__shard *s, struct flowq__band_shard *bs)
{
	if (!fair_on(s))
		return;
	bool any;
	int64_t d = fair_min_delta(s, bs, &any);
	if (any && d > 0)
		bs->vt += (uint64_t)d;
	atomic_store_explicit(&bs->vt_pub, bs->vt | 1, memory_order_seq_cst);
}

/* The band has nothing backlogged on this shard any more. */
static void
fair_idle(struct flowq__shard *s, struct flowq__band_shard *bs)
{
	if (fair_on(s))
		fair_publish(s, bs, FLOWQ__VT_IDLE);
}

/* May this shard take a slot for band-shard @p bs now? */
static bool
fair_may_dispatch(const struct flowq__shard *s, const struct flowq__band_shard *bs)
{
	bool any;
	int64_t d = fair_min_delta(s, bs, &any);
	return !any || d >= -fair_slack(bs->band);
}

/* Whether the gate is under pressure now (see above): the cross-shard
 * checks and publications run only then. */
static bool
fair_pressed(const struct flowq__shard *s)
{
	return s->blocked || atomic_load_explicit(&s->engine->gate_waiters, memory_order_relaxed);
}

/* Publish vt if it moved while nothing was published (no pressure). */
static void
fair_catch_up(struct flowq__shard *s, struct flowq__band_shard *bs)
{
	if (bs->vt_dirty) {
		bs->vt_dirty = false;
		fair_publish(s, bs, bs->vt | 1);
	}
}

static void
fair_charge(struct flowq__shard *s, struct flowq__band_shard *bs, uint64_t bytes, bool pressed)
{
	if (!fair_on(s) || !bs->wsum)
		return;
	bs->vt += fair_cost(bs->band, bytes, bs->wsum); /* wraps by design (VT_ONE) */
	if (!pressed) {
		bs->vt_dirty = true;
		return;
	}
	bs->vt_dirty = false;
	fair_publish(s, bs, bs->vt | 1);
}

/* ---- TTL heap ---- */

static void
ttl_add(struct flowq__shard *s, struct flowq_req *r)
{
	if (r->priv.expire == INT64_MAX)
		return;
	if (s->ttl.len == s->ttl_cap) {
		uint32_t ncap = s->ttl_cap ? s->ttl_cap * 2 : 256;
		struct flowq_heap_node **slots =
			flowq__alloc(s->engine->alloc, sizeof(*slots) * ncap, sizeof(void *));
		struct flowq_heap_node **old;
		if (!slots || flowq_heap_grow(&s->ttl, slots, ncap, &old)) {
			/* No memory: the request is still checked against its
			 * expiry when it reaches the head of its flow, so it is
			 * never dispatched late; it may only be evicted late. */
			if (slots)
				flowq__free(s->engine->alloc, slots, sizeof(*slots) * ncap,
					    sizeof(void *));
			return;
		}
		if (old)
			flowq__free(s->engine->alloc, old, sizeof(*old) * s->ttl_cap,
				    sizeof(void *));
		s->ttl_cap = ncap;
	}
	/* hnode is dispatcher-owned and uninitialised until here (types.h). */
	flowq_heap_node_init(&r->priv.hnode);
	r->priv.hnode.key = r->priv.expire;
	r->priv.hnode.seq = (uint64_t)r->priv.enqueue_ns;
	if (flowq_heap_push(&s->ttl, &r->priv.hnode) == 0)
		r->priv.dflags |= RF_IN_TTL;
}

/* ---- displacement ----
 *
 * When a submit finds the global limit full and the engine has a
 * displacement policy, the submitter looks for a band-shard of a lower band
 * that has published more sheddable requests (avail_*) than tickets already
 * taken against it (doomed_*), takes a ticket (its request and bytes) with a
 * CAS, and is admitted without a global reservation of its own: it
 * inherits what the victims hold (submit.c displace_ticket()). This
 * shard's dispatcher, at the start of its next round, sheds requests of
 * that band-shard (the policy picks each) until the tickets' requests and
 * bytes are covered, and adds the tickets to its debt; give_back() repays
 * the debt out of the global capacity this shard's departures would give
 * back, and reserves what is still owed from the global pool when it can.
 * Transient excess over the global limit: the tickets not yet shed for
 * (one dispatcher round), plus debt whose victims left on their own before
 * the dispatcher got to them (repaid by the next departures or the next
 * free global credit; a shard with debt looks again every DEBT_RETRY_NS).
 * Never a victim of the newcomer's band or above: tickets are taken only on
 * strictly lower bands, and the dispatcher sheds only from the ticketed
 * band-shard.
 */
#define DEBT_RETRY_NS 1000000

static void
displace_arrived(struct flowq__shard *s, struct flowq__band_shard *bs, struct flowq_req *r)
{
	struct flowq_flow *f = r->priv.owner;
	s->engine->displace->arrived(bs->dstate, f->dstate, r, f->pf.weight);
	bs->dq_req++;
	bs->dq_bytes += r->priv.bytes;
}

static void
displace_left(struct flowq__shard *s, struct flowq__band_shard *bs, struct flowq_req *r)
{
	struct flowq_flow *f = r->priv.owner;
	s->engine->displace->left(bs->dstate, f->dstate, r, f->pf.weight);
	bs->dq_req--;
	bs->dq_bytes -= r->priv.bytes;
}

/* Publish what each band-shard could shed (only when it changed). */
static void
displace_publish(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[s->order[oi]],
							     memory_order_relaxed);
		struct flowq__band_shard *bs = bs_of(s, b);
		if (bs->dq_req == bs->dq_pub_req && bs->dq_bytes == bs->dq_pub_bytes)
			continue;
		bs->dq_pub_req = bs->dq_req;
		bs->dq_pub_bytes = bs->dq_bytes;
		atomic_store_explicit(&bs->avail_bytes, bs->dq_bytes, memory_order_relaxed);
		atomic_store_explicit(&bs->avail_req, bs->dq_req, memory_order_release);
	}
}

/* ---- leaving ---- */

static void
idle_check(struct flowq__shard *s, struct flowq_flow *f, int64_t now)
{
	if (f->pf.queued || f->in_pending || f->in_idle || f->cancel_wait)
		return;
	f->in_idle = true;
	f->idle_since = now;
	flowq_list_push_back(&s->idle, &f->ilink);
}

/* Copy the head's key and size into f->pf; @return the head (or NULL). */
static struct flowq_req *
head_refresh(struct flowq_flow *f)
{
	struct flowq_req *h = f->band->ordering->peek(f->ostate);
	if (h) {
		f->pf.head_key = f->band->ordering->key(h);
		f->pf.head_bytes = h->priv.bytes;
	}
	return h;
}

static void
give_back(struct flowq__shard *s);

/* Give queue capacity back once dispatch_batch outcomes are owed, not only
 * at the end of a long round (of dispatches, expiries or cancellations).
 * Not inside displace_settle(): its victims' capacity must first net the
 * tickets' debt, which it records after them. */
static inline void
give_back_due(struct flowq__shard *s)
{
	if (s->owed >= s->engine->cfg.dispatch_batch)
		give_back(s);
}

static void
account_left(struct flowq__shard *s, struct flowq__band_shard *bs, struct flowq_flow *f,
	     struct flowq_req *r, enum flowq_outcome o, enum flowq_cause c, int64_t now)
{
	int64_t waited = now - r->priv.enqueue_ns;
	flowq__bump(&bs->stats.causes[o][c], 1);
	flowq__bump(&bs->stats.left, 1);
	flowq__bump(&bs->stats.left_bytes, r->priv.bytes);
	flowq__hist_record(&bs->stats.queue_time, waited);
	int pair = flowq__flow_pair(o, c);
	if (pair < 0) /* only dispatcher-decided pairs come here */
		abort();
	flowq__bump(&f->stats.pairs[pair], 1);
	flowq__bump(&f->stats.left, 1);
	flowq__bump(&f->stats.left_bytes, r->priv.bytes);
	flowq__bump(&f->stats.qt_count, 1);
	flowq__bump(&f->stats.qt_sum_ns, waited > 0 ? (uint64_t)waited : 0);
	/* Queue capacity goes back in sums: at the end of the round, or
	 * sooner once dispatch_batch outcomes are owed (give_back_due()). */
	f->release_req++;
	f->release_bytes += r->priv.bytes;
	bs->release_req++;
	bs->release_bytes += r->priv.bytes;
	s->owed++;
}

/* Unlink @p r from the flow's ordering structure and the TTL heap and tell
 * the fairness policy. */
static void
unlink_req(struct flowq__shard *s, struct flowq__band_shard *bs, struct flowq_flow *f,
	   struct flowq_req *r, bool dispatched)
{
	if (r->priv.dflags & RF_IN_TTL) {
		flowq_heap_remove(&s->ttl, &r->priv.hnode);
		r->priv.dflags &= ~RF_IN_TTL;
	}
	if (r->priv.dflags & RF_IN_PRIVATE) {
		f->band->ordering->remove(f->ostate, r);
		r->priv.dflags &= ~RF_IN_PRIVATE;
		if (s->engine->displace)
			displace_left(s, bs, r);
		f->pf.queued--;
		head_refresh(f);
		f->band->fairness->update(bs->fstate, &f->pf, dispatched,
					  dispatched ? r->priv.bytes : 0);
		if (!f->pf.queued) {
			bs->backlogged--;
			bs->wsum -= f->pf.weight;
			if (!bs->backlogged)
				fair_idle(s, bs);
		}
	}
	if (!f->in_dirty) {
		f->in_dirty = true;
		flowq_list_push_back(&s->dirty, &f->dlink);
	}
}

static inline void
deliver(struct flowq_req *r)
{
	/* The last access to @p r: from here on it is the host's. */
	r->priv.complete(r, r->priv.arg);
}

/* Evict @p r (in private structures or just drained) with (@p o, @p c) if
 * [T2] lets us; else it was cancelled: finish the cancel protocol.
 * @return 1 if an outcome was decided here or a cancelled request was
 * completed, else 0. */
static unsigned
evict(struct flowq__shard *s, struct flowq_flow *f, struct flowq_req *r,
      enum flowq_outcome o, enum flowq_cause c, int64_t now)
{
	struct flowq__band_shard *bs = bs_of(s, f->band);
	bool won = flowq__req_finalize(r, o, c);
	if (FLOWQ__HISTORY_ON && won)
		flowq__history_outcome(r, o, c, now, s->index, flowq__gate_scarce(s->engine));
	unlink_req(s, bs, f, r, false);
	if (won) {
		account_left(s, bs, f, r, o, c, now);
		deliver(r);
		idle_check(s, f, now);
		return 1;
	}
	/* Lost to a cancel: completed once the message is in too. */
	r->priv.dflags |= RF_UNLINKED;
	if (r->priv.dflags & RF_CANCEL_MSG) {
		account_left(s, bs, f, r, FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED, now);
		deliver(r);
		idle_check(s, f, now);
		return 1;
	}
	/* The canceller has not posted its message yet and still reads
	 * req->priv.owner: keep the flow from collection until then. */
	f->cancel_wait++;
	return 0;
}

/* ---- phase 1: cancellations ---- */

static unsigned
process_cancels(struct flowq__shard *s, int64_t now)
{
	struct flowq_mpsc_node *nodes[DRAIN_CHUNK];
	unsigned done = 0;
	size_t n;
	do {
		n = flowq_mpsc_dequeue_batch(&s->cancels, nodes, DRAIN_CHUNK);
		for (size_t i = 0; i < n; i++) {
			struct flowq_req *r = req_of_clink(nodes[i]);
			FLOWQ_TSAN_ACQUIRE(r);
			struct flowq_flow *f = r->priv.owner;
			r->priv.dflags |= RF_CANCEL_MSG;
			if (r->priv.dflags & (RF_IN_PRIVATE | RF_UNLINKED)) {
				struct flowq__band_shard *bs = bs_of(s, f->band);
				if (r->priv.dflags & RF_UNLINKED)
					f->cancel_wait--;
				unlink_req(s, bs, f, r, false);
				account_left(s, bs, f, r, FLOWQ_EVICTED_CANCELLED,
					     FLOWQ_CAUSE_CANCELLED, now);
				deliver(r);
				idle_check(s, f, now);
				done++;
				give_back_due(s);
			}
			/* Else still in the inbox: the drain completes it. */
		}
	} while (n == DRAIN_CHUNK);
	return done;
}

/* ---- phases 2 and 3: inboxes ---- */

static void
pending_set(struct flowq__shard *s, struct flowq_flow *f, bool on)
{
	if (on == f->in_pending)
		return;
	f->in_pending = on;
	if (on)
		flowq_list_push_back(&s->pending, &f->plink);
	else
		flowq_list_remove(&f->plink);
}

/* Move what the inbox holds into the flow's private structures. */
static unsigned
drain_inbox(struct flowq__shard *s, struct flowq_flow *f, int64_t now, bool stopping)
{
	struct flowq_mpsc_node *nodes[DRAIN_CHUNK];
	struct flowq_req *live[DRAIN_CHUNK];
	struct flowq__band_shard *bs = bs_of(s, f->band);
	unsigned done = 0, moved = 0;
	size_t n;

	if (f->in_idle) {
		f->in_idle = false;
		flowq_list_remove(&f->ilink);
	}
	do {
		n = flowq_mpsc_dequeue_batch(&f->inbox, nodes, DRAIN_CHUNK);
		size_t k = 0;
		/* A flow's weight counts from the start of each backlog
		 * period (the displacement policy sees it at each arrival). */
		if (f->pf.queued == 0)
			f->pf.weight = atomic_load_explicit(&f->weight, memory_order_relaxed);
		for (size_t i = 0; i < n; i++) {
			struct flowq_req *r = req_of_link(nodes[i]);
			FLOWQ_TSAN_ACQUIRE(r);
			uint32_t st = atomic_load_explicit(&r->priv.state, memory_order_acquire);
			if ((st & FLOWQ__RS_OUTCOME_MASK) != FLOWQ_PENDING || stopping) {
				/* Cancelled before we saw it, or shutting down. */
				done += evict(s, f, r, FLOWQ_EVICTED_OTHER, FLOWQ_CAUSE_SHUTDOWN,
					      now);
				continue;
			}
			r->priv.dflags |= RF_IN_PRIVATE;
			ttl_add(s, r);
			if (s->engine->displace)
				displace_arrived(s, bs, r);
			live[k++] = r;
		}
		if (k) {
			bool was_empty = f->pf.queued == 0;
			/* A push may give a backlogged flow a new head (edf,
			 * slo_deadline: an earlier key). Compared by identity,
			 * not by key: a new head with an equal key but another
			 * size must reach the fairness policy too. */
			struct flowq_req *old_head =
				was_empty ? NULL : f->band->ordering->peek(f->ostate);
			f->band->ordering->push_batch(f->ostate, live, k);
			f->pf.queued += k;
			struct flowq_req *new_head = head_refresh(f);
			if (was_empty) {
				bs->backlogged++;
				bs->wsum += f->pf.weight;
				if (bs->backlogged == 1)
					fair_active(s, bs);
				f->band->fairness->flow_backlogged(bs->fstate, &f->pf);
			} else if (new_head != old_head) {
				f->band->fairness->update(bs->fstate, &f->pf, false, 0);
			}
		}
		moved += (unsigned)n;
	} while (n == DRAIN_CHUNK && moved < DRAIN_MAX_PER_VISIT);
	if (f->in_idle && f->pf.queued) {
		f->in_idle = false;
		flowq_list_remove(&f->ilink);
	}
	pending_set(s, f, !flowq_mpsc_empty(&f->inbox));
	idle_check(s, f, now);
	return done;
}

/*
 * Intake look-ahead. With many flows, most flows a round takes in are cold:
 * the doorbell walk has fetched each one's producer line (the announcement
 * link is on it), and the drain then needs the read-only line (band), the
 * inbox's consumer line, the dispatch span (view, ordering state, idle
 * link, statistics), the oldest request and, for a flow on the idle list,
 * its two neighbours there (the removal writes them). One after the other
 * those are a chain of misses per flow; the walk hands over DRAIN_CHUNK
 * flows at a time, so while it drains flow i the intake prefetches the
 * lines of flow i + 2 * INTAKE_AHEAD, and the addresses that live in
 * those lines (the oldest request, the idle neighbours) for flow
 * i + INTAKE_AHEAD, whose lines have had INTAKE_AHEAD drains' time to
 * arrive. Prefetches only: nothing is read through a stale address, and
 * the flows after i are dispatcher-owned fields read by this thread.
 */
#define INTAKE_AHEAD 4u

static inline void
intake_prefetch_lines(const struct flowq_flow *f)
{
	__builtin_prefetch(&f->band, 0, 3);
	__builtin_prefetch(&f->weight, 0, 3);
	__builtin_prefetch(&f->inbox, 1, 3);
	for (size_t off = 0; off < FLOWQ__FLOW_SPAN; off += FLOWQ_CACHE_LINE)
		__builtin_prefetch((const char *)&f->pf + off, 1, 3);
}

static inline void
intake_prefetch_links(const struct flowq_flow *f)
{
	/* The oldest request's link and state, and the line its ordering
	 * node is on, which the push writes (only address arithmetic on a
	 * hint that may be stale). */
	const struct flowq_mpsc_node *n = flowq_mpsc_oldest_hint(&f->inbox);
	if (n) {
		const struct flowq_req *r =
			(const struct flowq_req *)((const char *)n -
						   offsetof(struct flowq_req, priv.link));
		__builtin_prefetch(n, 1, 3);
		__builtin_prefetch(&r->priv.lnode, 1, 3);
	}
	if (f->in_idle) {
		__builtin_prefetch(f->ilink.prev, 1, 3);
		__builtin_prefetch(f->ilink.next, 1, 3);
	}
}

static unsigned
process_doorbell(struct flowq__shard *s, int64_t now, bool stopping)
{
	struct flowq_mpsc_node *nodes[DRAIN_CHUNK];
	unsigned done = 0;
	size_t n;
	do {
		/* All doorbell queues at once: the links of a backlog's flows
		 * load in parallel, one per queue (engine.h, FLOWQ__BELLS). */
		n = flowq_mpsc_dequeue_lockstep(s->doorbell, FLOWQ__BELLS, nodes,
						DRAIN_CHUNK);
		if (n)
			flowq__bump(&s->act_intakes, n);
		/* Only for a batch with flows INTAKE_AHEAD behind the first:
		 * a round that takes in a few flows (one producer at 1000
		 * flows: 2.7 per round) gains nothing to overlap, and an early
		 * read of a request its producer is still linking costs a
		 * line transfer. */
		size_t ahead = n > INTAKE_AHEAD ? n : 0;
		for (size_t i = 0; i < ahead && i < 2 * INTAKE_AHEAD; i++)
			intake_prefetch_lines(flow_of_bell(nodes[i]));
		for (size_t i = 0; i < ahead && i < INTAKE_AHEAD; i++)
			intake_prefetch_links(flow_of_bell(nodes[i]));
		for (size_t i = 0; i < n; i++) {
			struct flowq_flow *f = flow_of_bell(nodes[i]);
			if (i + 2 * INTAKE_AHEAD < ahead)
				intake_prefetch_lines(
					flow_of_bell(nodes[i + 2 * INTAKE_AHEAD]));
			if (i + INTAKE_AHEAD < ahead)
				intake_prefetch_links(
					flow_of_bell(nodes[i + INTAKE_AHEAD]));
			FLOWQ_TSAN_ACQUIRE(f);
			/* [D2] acq_rel: pairs with the ringer's [D1] exchange;
			 * cleared before the drain, so an enqueue after this
			 * point rings again. */
			atomic_exchange_explicit(&f->inbox.announced, 0, memory_order_acq_rel);
			if (flow_adopt(s, f) && !stopping) {
				pending_set(s, f, true);
				continue;
			}
			done += drain_inbox(s, f, now, stopping);
		}
	} while (n == DRAIN_CHUNK);
	return done;
}

static unsigned
process_pending(struct flowq__shard *s, int64_t now, bool stopping)
{
	unsigned done = 0;
	/* Take the current list: a flow that stays pending is re-added. */
	struct flowq_list todo;
	flowq_list_init(&todo);
	flowq_list_splice_back(&todo, &s->pending);
	struct flowq_list_node *ln;
	while ((ln = flowq_list_pop_front(&todo))) {
		struct flowq_flow *f =
			(struct flowq_flow *)((char *)ln - offsetof(struct flowq_flow, plink));
		f->in_pending = false;
		if (flow_adopt(s, f) && !stopping) {
			pending_set(s, f, true);
			continue;
		}
		done += drain_inbox(s, f, now, stopping);
	}
	return done;
}

/*
 * The policies' look-ahead (flowq_policy_env::prefetch): a ring policy
 * calls it for the member 8 turns behind its front (stage 0: the flow's
 * read-only line and its dispatch span after the view, which the ring
 * loads itself) and for the member 4 turns behind (stage 1: its head
 * request, found through the ordering state that stage 0 loaded; the
 * private line, which the expiry check, the claim and the completion
 * read, and the public one, which a host's completion callback usually
 * reads). With cold flows a decision otherwise waits for the flow and
 * then for its head request (bench/ENGINE-LOG.md, "Session 14").
 */
void
flowq__flow_prefetch(void *arg, const struct flowq_policy_flow *pf, unsigned stage)
{
	const struct flowq__band *b = arg;
	const struct flowq_flow *f = flow_of_pf((struct flowq_policy_flow *)pf);
	if (stage == 0) {
		/* The read-only line (f->band, read by unlink_req()), then
		 * the span after the view. */
		__builtin_prefetch(&f->band, 0, 3);
		for (size_t off = FLOWQ_CACHE_LINE; off < FLOWQ__FLOW_SPAN;
		     off += FLOWQ_CACHE_LINE)
			__builtin_prefetch((const char *)pf + off, 1, 3);
		return;
	}
	const struct flowq_req *r = b->ordering->peek(f->ostate);
	__builtin_prefetch(r, 1, 3);
	__builtin_prefetch(&r->priv, 1, 3);
	__builtin_prefetch(&r->priv.lnode, 1, 3);
}

/* ---- phase 4: TTL ---- */

static unsigned
expire(struct flowq__shard *s, int64_t now)
{
	unsigned done = 0;
	struct flowq_heap_node *hn;
	while ((hn = flowq_heap_peek(&s->ttl)) && hn->key <= now) {
		struct flowq_req *r = req_of_hnode(hn);
		enum flowq_cause c = (r->priv.dflags & RF_DEADLINE) ? FLOWQ_CAUSE_DEADLINE_PASSED
								   : FLOWQ_CAUSE_TTL_EXPIRED;
		done += evict(s, r->priv.owner, r, FLOWQ_EVICTED_TTL, c, now);
		give_back_due(s);
	}
	return done;
}

/* ---- phase 5: dispatch ---- */

/* The most important band another shard has waiting, or INT64_MIN. */
static int64_t
others_top(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	int64_t top = INT64_MIN;
	for (unsigned i = 0; i < e->nshards; i++) {
		if (i == s->index)
			continue;
		int64_t t = atomic_load_explicit(&e->shards[i].top_waiting, memory_order_acquire);
		if (t > top)
			top = t;
	}
	return top;
}

/*
 * Read-only: whether a band with usage ceiling @p ceiling may dispatch a
 * request of @p bytes now (approximate under concurrency,
 * flowq__cap_in_use()): the saturation is below the ceiling (flowq.h
 * usage_ceiling), i.e. in each limited dimension the use is below ceiling x
 * the limit, and the request fits the limits. At ceiling 1 only the fit
 * counts: that is the reserve gate_take() makes (a request of 0 bytes
 * needs no byte room). gate_take() asks with @p bytes 0 for the ceiling
 * alone; the sleep probe asks for the blocked head, so both apply one
 * rule (the probe once compared use + head with ceiling x limit in bytes,
 * stricter than the dispatch, and could sleep on a head the gate admits).
 */
static bool
gate_under_ceiling(const struct flowq_engine *e, double ceiling, uint64_t bytes)
{
	uint64_t req, by;
	flowq__cap_in_use(&e->gate, &req, &by);
	const struct flowq_saturation_config *sc = &e->cfg.saturation;
	if (sc->max_inflight && (double)req >= ceiling * (double)sc->max_inflight)
		return false;
	/* by and bytes are at most FLOWQ_LIMIT_MAX (2^62): no overflow. */
	if (sc->max_inflight_bytes &&
	    (by + bytes > sc->max_inflight_bytes ||
	     (ceiling < 1.0 && (double)by >= ceiling * (double)sc->max_inflight_bytes)))
		return false;
	return true;
}

/* Whether band @p b may take one more in-flight slot for @p bytes; if so
 * the slot is reserved (concurrency detector) and the dispatch counted
 * (utilization detector, which also keeps an in-flight limit if set). */
static bool
gate_take(struct flowq__shard *s, const struct flowq__band *b, uint64_t bytes,
	  int64_t now)
{
	struct flowq_engine *e = s->engine;
	if (e->gate_callback) {
		double sat = e->cfg.saturation.callback(e->cfg.saturation.callback_ctx);
		return sat < b->usage_ceiling;
	}
	if (e->gate_util) {
		if (!flowq__util_open(e->util, s->index, now, b->usage_ceiling))
			return false;
		if (!e->gate_limited) {
			flowq__util_count(e->util, now);
			return true;
		}
	}
	if (!e->gate_limited)
		return true;
	if (b->usage_ceiling < 1.0 && !gate_under_ceiling(e, b->usage_ceiling, 0))
		return false;
	bool moved;
	int err = flowq__cap_reserve_moved(&e->gate, bytes, &moved);
	/* A reserve that held credit it did not keep for a moment (a steal,
	 * a global chunk's rest, a request taken and given back when the
	 * bytes did not fit), failed or not: a shard that looked while we
	 * held it must look again (capacity.c H1: a successful steal's
	 * surplus used to go unannounced, and a dispatcher that failed
	 * meanwhile slept until the next release). Only then: a wake after
	 * every failure made blocked dispatchers wake each other in turn (a
	 * futex or eventfd write per round) while the gate stayed full.
	 * Owed, not made here: on success the decision and the completion
	 * follow, and a dispatcher preempted in the wake's system call by
	 * the thread it woke would hold the slot just taken (fair_publish()
	 * has the measured case); on failure the round ends, and the flush
	 * at its end comes before this dispatcher can wait. */
	if (moved)
		s->gate_wake_owed = true;
	if (err)
		return false;
	if (e->gate_util)
		flowq__util_count(e->util, now);
	return true;
}

/* Give back a slot that gate_take() granted. (A utilization dispatch count
 * stays: the counter only grows, which the detector's pending sum relies
 * on; one extra count over-estimates by one dispatch until the next
 * reports.) */
static void
gate_untake(struct flowq__shard *s, uint64_t bytes)
{
	struct flowq_engine *e = s->engine;
	if (e->gate_limited && !e->gate_callback) {
		flowq__cap_release(&e->gate, 1, bytes);
		/* Owed: the cancelled request's completion comes next. */
		s->gate_wake_owed = true;
	}
}

/* Whether a flow rang @p s's doorbell since the round's intake:
 * flowq_mpsc_linked() of each doorbell queue, the first one first (where
 * a producer the dispatcher keeps up with rings), as idle_spin(). After an
 * intake that emptied a queue it reads the dummy's link, on that queue's
 * producers' line: the first ring after the intake writes it, later ones
 * only exchange the tail on that line. So a check costs a line transfer
 * only after a ring, which ends the round anyway; the queues nobody rang
 * stay in this core's cache. An arrival still being linked is missed; the
 * round after sees it. */
static inline bool
doorbell_rung(const struct flowq__shard *s)
{
	return flowq__bells_linked(s);
}

/* @return outcomes decided; sets *r_blocked when the gate (or a more
 * important band on another shard) stopped the round.
 *
 * Stale intake. The round decides from what its intake took in; a
 * request of a more important band that arrives later waits for the next
 * round. That is short while the dispatcher runs, but one preempted
 * between its intake and its decisions resumes with a stale view, and
 * when the gate is saturated (the last round ended at it) the slots
 * released meanwhile go to the lower band: stress_global caught a
 * dispatcher preempted ~1.8 ms in one round, then dispatching band 0
 * while a band-1 request on its own shard had waited 1.3 ms (the
 * round's intake ended 0.58 ms before that request entered). So in that
 * state, before each dispatch from a band with a more important band
 * above it, new doorbell rings end the round: the next one takes them in
 * first. At most once per dispatch made (s->reintook), so a stream of
 * rings cannot starve the lower band; one load of a consumer line per
 * such dispatch, and none at all while the gate has room. */
static unsigned
dispatch(struct flowq__shard *s, int64_t now, unsigned budget, bool *r_blocked)
{
	struct flowq_engine *e = s->engine;
	bool scarce = flowq__gate_scarce(e) && e->nshards > 1;
	bool recheck = s->blocked && flowq__gate_scarce(e);
	unsigned done = 0;
	*r_blocked = false;
	s->yielded = false;
	s->yield_band = NULL;
	s->blocked_band = NULL;
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[s->order[oi]],
							     memory_order_relaxed);
		struct flowq__band_shard *bs = bs_of(s, b);
		while (bs->backlogged) {
			if (budget && done >= budget)
				return done;
			if (scarce && others_top(s) > b->priority) {
				s->yielded = true;
				*r_blocked = true;
				return done;
			}
			if (recheck && oi > 0 && !s->reintook && doorbell_rung(s)) {
				s->reintook = true;
				return done;
			}
			bool pressed = scarce && fair_pressed(s);
			if (pressed)
				fair_catch_up(s, bs);
			if (pressed && !fair_may_dispatch(s, bs)) {
				s->yielded = true;
				s->yield_band = bs;
				*r_blocked = true;
				return done;
			}
			struct flowq_policy_flow *pf = b->fairness->pick(bs->fstate);
			if (!pf) /* policy and count disagree: an engine bug */
				abort();
			struct flowq_flow *f = flow_of_pf(pf);
			struct flowq_req *r = b->ordering->peek(f->ostate);
			if (r->priv.expire <= now) {
				/* Never dispatch past the expiry, even if the
				 * timer could not be armed. */
				enum flowq_cause c = (r->priv.dflags & RF_DEADLINE)
							     ? FLOWQ_CAUSE_DEADLINE_PASSED
							     : FLOWQ_CAUSE_TTL_EXPIRED;
				done += evict(s, f, r, FLOWQ_EVICTED_TTL, c, now);
				give_back_due(s);
				continue;
			}
			if (!gate_take(s, b, r->priv.bytes, now)) {
				s->blocked_bytes = r->priv.bytes;
				s->blocked_band = b;
				*r_blocked = true;
				return done;
			}
			FLOWQ__FAULT(D_CLAIMED);
			if (!flowq__req_finalize(r, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE)) {
				/* Cancelled meanwhile: the slot goes back. */
				gate_untake(s, r->priv.bytes);
				done += evict(s, f, r, FLOWQ_EVICTED_CANCELLED,
					      FLOWQ_CAUSE_CANCELLED, now);
				give_back_due(s);
				continue;
			}
			if (FLOWQ__HISTORY_ON)
				flowq__history_outcome(r, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE, now,
						       s->index, flowq__gate_scarce(e));
			fair_charge(s, bs, r->priv.bytes, pressed);
			unlink_req(s, bs, f, r, true);
			account_left(s, bs, f, r, FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE, now);
			flowq__bump(&bs->stats.dispatched_bytes, r->priv.bytes);
			deliver(r);
			s->reintook = false;
			/* After the completion, not before (fair_publish()). */
			gate_wake_flush(s);
			idle_check(s, f, now);
			done++;
			give_back_due(s);
		}
	}
	return done;
}

/* Shed for the tickets taken against band-shard @p bs (its own
 * shard's). @return outcomes decided.
 *
 * A ticket is two adds, the request's CAS and then its bytes
 * (displace_ticket()), so a settle can see a ticket's request without its
 * bytes; those bytes are then left on the band-shard with no request, and
 * a later settle takes them alone (bytes-only debt, which debt_repay()
 * handles). Returning when no request is owed would leave them for ever:
 * the newcomer would hold global bytes nobody reserved, and the leftover
 * would make every later ticket's byte check fail here. */
static unsigned
displace_settle(struct flowq__shard *s, struct flowq__band_shard *bs, int64_t now)
{
	struct flowq_engine *e = s->engine;
	unsigned done = 0;
	uint64_t treq = atomic_load_explicit(&bs->doomed_req, memory_order_acquire) &
			~FLOWQ__DOOMED_PARKED;
	/* The same line as the count: no extra miss per round. */
	uint64_t tbytes = atomic_load_explicit(&bs->doomed_bytes, memory_order_relaxed);
	if (!treq && !tbytes)
		return 0;
	uint64_t shed = 0, shed_bytes = 0;
	struct flowq_req *r;
	while ((shed < treq || shed_bytes < tbytes) &&
	       (r = e->displace->victim(bs->dstate)) != NULL) {
		shed++;
		shed_bytes += r->priv.bytes;
		/* A victim whose cancel won leaves as cancelled: it frees its
		 * capacity all the same. */
		done += evict(s, r->priv.owner, r, FLOWQ_EVICTED_DISPLACED,
			      FLOWQ_CAUSE_DISPLACED, now);
	}
	s->debt_req += treq;
	s->debt_bytes += tbytes;
	atomic_fetch_sub_explicit(&bs->doomed_bytes, tbytes, memory_order_relaxed);
	atomic_fetch_sub_explicit(&bs->doomed_req, treq, memory_order_release);
	return done;
}

/* Shed for the tickets taken against this shard's band-shards, and take
 * the debt collected bands left (registry.c band_free_rcu()). */
static unsigned
process_displacement(struct flowq__shard *s, int64_t now)
{
	struct flowq_engine *e = s->engine;
	unsigned done = 0;
	if (atomic_load_explicit(&s->debt_in_req, memory_order_relaxed) ||
	    atomic_load_explicit(&s->debt_in_bytes, memory_order_relaxed)) {
		/* Acquire: pairs with the callback's release add of req. */
		s->debt_req += atomic_exchange_explicit(&s->debt_in_req, 0, memory_order_acquire);
		s->debt_bytes +=
			atomic_exchange_explicit(&s->debt_in_bytes, 0, memory_order_relaxed);
	}
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[s->order[oi]],
							     memory_order_relaxed);
		done += displace_settle(s, bs_of(s, b), now);
	}
	return done;
}

/* Repay debt out of @p *greq / @p *gbytes (capacity about to go back to
 * the global pool), then from free global credit. */
static void
debt_repay(struct flowq__shard *s, uint64_t *greq, uint64_t *gbytes)
{
	struct flowq_engine *e = s->engine;
	uint64_t before = s->debt_req;
	uint64_t r = s->debt_req < *greq ? s->debt_req : *greq;
	uint64_t by = s->debt_bytes < *gbytes ? s->debt_bytes : *gbytes;
	s->debt_req -= r;
	*greq -= r;
	s->debt_bytes -= by;
	*gbytes -= by;
	/* Still owed (the victims left before we shed them): take it from
	 * the pool, one request at a time (a reservation is one request),
	 * the bytes with the last. */
	while (s->debt_req || s->debt_bytes) {
		uint64_t b = s->debt_req <= 1 ? s->debt_bytes : 0;
		if (flowq__cap_reserve(&e->global, b) != 0)
			break;
		if (!s->debt_req) /* bytes only: give the request back */
			flowq__cap_release(&e->global, 1, 0);
		else
			s->debt_req--;
		s->debt_bytes -= b;
	}
	if (before != s->debt_req)
		atomic_fetch_sub_explicit(&e->disp_pending, before - s->debt_req,
					  memory_order_relaxed);
}

/* ---- phase 6 ---- */

static void
give_back(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	uint64_t greq = 0, gbytes = 0;
	struct flowq_list_node *ln;
	s->owed = 0;
	while ((ln = flowq_list_pop_front(&s->dirty))) {
		struct flowq_flow *f =
			(struct flowq_flow *)((char *)ln - offsetof(struct flowq_flow, dlink));
		f->in_dirty = false;
		if (e->flow_limited) {
			if (e->cfg.flow_max_requests)
				atomic_fetch_sub_explicit(&f->cap_req, f->release_req,
							  memory_order_release);
			if (e->cfg.flow_max_bytes)
				atomic_fetch_sub_explicit(&f->cap_bytes, f->release_bytes,
							  memory_order_release);
		}
		f->release_req = 0;
		f->release_bytes = 0;
	}
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[s->order[oi]],
							     memory_order_relaxed);
		struct flowq__band_shard *bs = bs_of(s, b);
		if (!bs->release_req)
			continue;
		if (b->limited)
			flowq__cap_release(&b->cap, bs->release_req, bs->release_bytes);
		greq += bs->release_req;
		gbytes += bs->release_bytes;
		bs->release_req = 0;
		bs->release_bytes = 0;
	}
	if (e->global_limited && (s->debt_req || s->debt_bytes))
		debt_repay(s, &greq, &gbytes);
	if ((greq || gbytes) && e->global_limited)
		flowq__cap_release(&e->global, greq, gbytes);
}

static void
publish_top(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	if (!flowq__gate_scarce(e) || e->nshards == 1)
		return;
	int64_t top = INT64_MIN;
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[s->order[oi]],
							     memory_order_relaxed);
		if (bs_of(s, b)->backlogged) {
			top = b->priority;
			break;
		}
	}
	if (top == s->last_top)
		return;
	atomic_store_explicit(&s->top_waiting, top, memory_order_seq_cst);
	bool dropped = top < s->last_top;
	s->last_top = top;
	/* Shards that yielded to our old top may go on. */
	if (dropped)
		flowq__gate_wake(e);
}

static int64_t
gc(struct flowq__shard *s, int64_t now)
{
	const struct flowq_engine *e = s->engine;
	int64_t timeout = e->cfg.flow_gc_timeout_ns;
	struct flowq_list_node *ln;
	while ((ln = flowq_list_front(&s->idle))) {
		struct flowq_flow *f =
			(struct flowq_flow *)((char *)ln - offsetof(struct flowq_flow, ilink));
		if (now - f->idle_since < timeout)
			return flowq__add_sat(f->idle_since, timeout);
		flowq_list_remove(&f->ilink);
		f->in_idle = false;
		if (f->pf.queued || f->in_pending || !f->attached || f->cancel_wait)
			continue; /* busy again since it was listed */
		struct flowq__band_shard *bs = bs_of(s, f->band);
		/* Detach first: the flow is empty and not offered; if the
		 * collection fails (a lease), attach it again. A template
		 * band's last flow here takes the band-shard out of the
		 * rounds before the flow's band reference goes (registry.c
		 * (H3)). */
		flowq__flow_detach_policies(s->engine, bs, f);
		f->attached = false;
		if (!f->band->configured && --bs->nflows == 0)
			band_shard_park(s, bs, now);
		if (flowq__flow_try_collect(f))
			continue;
		if (flow_adopt(s, f)) {
			pending_set(s, f, true);
			continue;
		}
		/* Leased (a handle or a submit in flight): look again one
		 * timeout from now. It goes to the back with the newest
		 * idle_since, so this loop stops when it comes round to it
		 * (the timeout is > 0). */
		f->in_idle = true;
		f->idle_since = now;
		flowq_list_push_back(&s->idle, &f->ilink);
	}
	return INT64_MAX;
}

unsigned
flowq__shard_run(struct flowq__shard *s, unsigned budget, int64_t *r_next)
{
	struct flowq_engine *e = s->engine;
	FLOWQ__FAULT(D_ROUND_START);
	int64_t now = flowq__now(e);
	bool stopping = atomic_load_explicit(&e->stopping, memory_order_acquire);
	unsigned done = 0;
	bool blocked = false;

	gate_wait_clear(s);
	done += process_cancels(s, now);
	done += process_doorbell(s, now, stopping);
	done += process_pending(s, now, stopping);
	if (e->displace && !stopping)
		done += process_displacement(s, now);
	FLOWQ__FAULT(D_AFTER_INTAKE);
	if (stopping) {
		/* Evict everything queued: pick order, no gate. */
		for (unsigned oi = 0; oi < s->norder; oi++) {
			struct flowq__band *b = atomic_load_explicit(
				&e->bands[s->order[oi]], memory_order_relaxed);
			struct flowq__band_shard *bs = bs_of(s, b);
			while (bs->backlogged) {
				struct flowq_policy_flow *pf = b->fairness->pick(bs->fstate);
				struct flowq_flow *f = flow_of_pf(pf);
				struct flowq_req *r = b->ordering->peek(f->ostate);
				done += evict(s, f, r, FLOWQ_EVICTED_OTHER, FLOWQ_CAUSE_SHUTDOWN,
					      now);
			}
		}
	} else {
		done += expire(s, now);
		FLOWQ__FAULT(D_BEFORE_DISPATCH);
		publish_top(s);
		done += dispatch(s, now, budget, &blocked);
	}
	give_back(s);
	publish_top(s);
	/* Evictions, cancellations and a dispatch loop that stopped may have
	 * published or owed a wake without a completion to flush after
	 * (fair_publish(), gate_take()). */
	gate_wake_flush(s);
	if (e->displace)
		displace_publish(s);

	int64_t next = INT64_MAX;
	if (!stopping) {
		next = gc(s, now);
		int64_t bnext = flowq__band_gc(s, now);
		if (bnext < next)
			next = bnext;
	}
	if ((s->debt_req || s->debt_bytes) && !stopping && now + DEBT_RETRY_NS < next)
		next = now + DEBT_RETRY_NS;
	struct flowq_heap_node *hn = flowq_heap_peek(&s->ttl);
	if (hn && hn->key < next)
		next = hn->key;
	if (!flowq_list_empty(&s->pending) && now + PENDING_RETRY_NS < next)
		next = now + PENDING_RETRY_NS;
	if (blocked) {
		gate_wait_set(s);
		int64_t again = flowq__add_sat(now, e->cfg.saturation.callback_poll_ns);
		if (e->gate_callback && again < next)
			next = again;
		/* A report going stale may lower the utilization estimate (a
		 * score above 1 becomes 1): look again then. */
		again = e->gate_util ? flowq__util_recheck(e->util, s->index) : INT64_MAX;
		if (again < next)
			next = again;
	}
	s->blocked = blocked;
	if (done) {
		flowq__bump(&s->act_rounds, 1);
		flowq__bump(&s->act_decided, done);
	}
	*r_next = next;
	return done;
}

/* Whether work became visible since the round (called with sleeping == 1
 * stored: the dispatcher's half of the handshake in engine.h). */
static bool
work_visible(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	atomic_thread_fence(memory_order_seq_cst);
	if (!flowq__bells_empty(s) || !flowq_mpsc_empty(&s->cancels))
		return true;
	/* A band to collect, debt to take (set before their kick's [W1]). */
	if (atomic_load_explicit(&s->band_hint, memory_order_relaxed) ||
	    atomic_load_explicit(&s->debt_in_req, memory_order_relaxed) ||
	    atomic_load_explicit(&s->debt_in_bytes, memory_order_relaxed))
		return true;
	if (atomic_load_explicit(&e->stopping, memory_order_acquire) != s->stopping_seen)
		return true;
	if (atomic_load_explicit(&e->exiting, memory_order_acquire))
		return true;
	if (s->blocked && s->yielded) {
		/* Yielded to a more important band elsewhere, or to a shard
		 * behind on fairness: go on once that is over (the other
		 * shard's publication wakes us). */
		if (s->yield_band ? fair_may_dispatch(s, s->yield_band)
				  : others_top(s) <= s->last_top)
			return true;
	} else if (s->blocked && !e->gate_callback && s->blocked_band &&
		   (e->gate_limited || e->gate_util)) {
		/* Read-only probe with the blocked band's ceiling: would its
		 * head fit now? (Reserving and releasing here would hold the
		 * last slot for a moment without waking anyone, and would
		 * ignore the ceiling, so a ceiling-held band would never
		 * sleep.) The utilization estimate may sweep stale reports,
		 * which takes nothing. */
		double c = s->blocked_band->usage_ceiling;
		int64_t now = flowq__now(e);
		if ((!e->gate_util || flowq__util_open(e->util, s->index, now, c)) &&
		    (!e->gate_limited || gate_under_ceiling(e, c, s->blocked_bytes)))
			return true;
	}
	return false;
}

static bool
shard_empty(struct flowq__shard *s)
{
	if (!flowq__bells_empty(s) || !flowq_mpsc_empty(&s->cancels) ||
	    !flowq_list_empty(&s->pending))
		return false;
	for (unsigned oi = 0; oi < s->norder; oi++) {
		struct flowq__band *b = atomic_load_explicit(&s->engine->bands[s->order[oi]],
							     memory_order_relaxed);
		if (bs_of(s, b)->backlogged)
			return false;
	}
	return true;
}

/*
 * Adaptive idle spin. An idle dispatcher polls for new work before it
 * sleeps: a futex wake costs the next submitter a system call and this
 * thread a context switch (several microseconds of CPU between them, and
 * on a loaded machine a scheduling delay), while work that arrives within
 * the spin is picked up in nanoseconds. Polling pays only when work comes
 * soon, so the spin follows the idle gaps it measures itself (from the
 * start of the spin to the work it sees; a spin that runs out counts as
 * SPIN_GAP_CLAMP_NS) in a moving average (weight 1/8: a busy shard needs
 * six spins in a row to run out before it polls less): while the average is
 * at most SPIN_WORTH_NS it polls for up to cfg.idle_spin_ns; otherwise
 * (low load: requests tens of microseconds apart or slower) it polls only
 * SPIN_PROBE_NS, which still measures the short gaps when the load comes
 * back, then sleeps. A gap measured through a sleep would include the
 * wake-up latency, so sleeps feed the average only one way: a round right
 * after a wake-up that finds SPIN_WAKE_BATCH or more outcomes to decide
 * (work piled up while the shard slept: requests come faster than wake-ups)
 * resets it to 0, i.e. to polling. SPIN_WORTH_NS is about the CPU a sleep
 * and its wake cost on the project's machines (README, "GIE's benchmark
 * suite": 13.9 us of CPU per request polling the full 50 us at 10 clients,
 * 7.1 us never polling). Correctness does not depend on any of this: the
 * spin only decides how long to poll before the sleep handshake (engine.h),
 * which is unchanged.
 */
#define SPIN_WORTH_NS	  8000
#define SPIN_GAP_CLAMP_NS (2 * SPIN_WORTH_NS)
#define SPIN_PROBE_NS	  1000
#define SPIN_WAKE_BATCH	  16u

/* A spin measured an idle gap of @p gap ns (clamped). */
static void
spin_gap_note(struct flowq__shard *s, int64_t gap)
{
	if (gap > SPIN_GAP_CLAMP_NS)
		gap = SPIN_GAP_CLAMP_NS;
	if (gap < 0)
		gap = 0;
	s->spin_gap_avg += (gap - s->spin_gap_avg) / 8;
}

/* Poll for new work before sleeping (see "Adaptive idle spin" above).
 * Exponential backoff between polls (ck_backoff) keeps the polling off the
 * producers' lines. @return true if work (or a deadline) came up. */
static bool
idle_spin(struct flowq__shard *s, int64_t next)
{
	struct flowq_engine *e = s->engine;
	int64_t budget = e->cfg.idle_spin_ns;
	if (budget <= 0 || s->blocked)
		return false; /* a blocked shard waits for the gate, not work */
	int64_t start = flowq__now(e);
	if (s->spin_gap_avg > SPIN_WORTH_NS && budget > SPIN_PROBE_NS)
		budget = SPIN_PROBE_NS;
	if (next != INT64_MAX && next - start < budget)
		budget = next - start;
	/* Read the clock every few polls only (a poll with the backoff is
	 * ~0.3 us; a probe checks more often to keep its length). */
	unsigned mask = budget > 4 * SPIN_PROBE_NS ? 15u : 1u;
	ck_backoff_t backoff = CK_BACKOFF_INITIALIZER;
	for (unsigned i = 0;; i++) {
		/* flowq_mpsc_linked(): while the queues are empty, the
		 * dummies' links, which the first producer to enqueue
		 * writes; never a comparison of the tails. The line is the
		 * producers' (the dummy sits by the tail: queues/mpsc.c), but
		 * only the first enqueue writes it while we spin, and its
		 * link ends the spin. An item still being linked is seen
		 * once it is linked; the sleep path (work_visible) does the
		 * full check. */
		if (doorbell_rung(s) ||
		    flowq_mpsc_linked(&s->cancels) ||
		    atomic_load_explicit(&e->exiting, memory_order_relaxed)) {
			spin_gap_note(s, flowq__now(e) - start);
			return true;
		}
		if ((i & mask) == mask) {
			int64_t now = flowq__now(e);
			if (now - start >= budget) {
				if (next != INT64_MAX && now >= next)
					return true; /* a deadline, not a gap */
				spin_gap_note(s, SPIN_GAP_CLAMP_NS);
				return false;
			}
		}
		if (backoff < (1u << 10))
			ck_backoff_eb(&backoff);
		else
			ck_pr_stall();
	}
}

/* The shards' decided counters, summed (the coalescing controller's
 * running total; each is written by its dispatcher alone). */
static uint64_t
engine_decided(const struct flowq_engine *e)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < e->nshards; i++)
		n += atomic_load_explicit(&e->shards[i].act_decided, memory_order_relaxed);
	return n;
}

/* After a round that decided something: @return whether the coalescing
 * wait may follow it. Every FLOWQ__COALESCE_CLOCK_EVERY rounds, and every
 * round while the wait is on (so that PROBE_ON ends on time however much
 * the wait slows the rounds), reads the clock and ends the controller's
 * period if it is due (coalesce.h). */
static inline bool
coalesce_note(struct flowq__shard *s)
{
	struct flowq_engine *e = s->engine;
	bool on = flowq__coalesce_on(&e->coalesce);
	if (on || ++s->coalesce_rounds % FLOWQ__COALESCE_CLOCK_EVERY == 0) {
		if (flowq__coalesce_due(&e->coalesce, flowq__mono_ns()) &&
		    flowq__coalesce_trylock(&e->coalesce))
			/* The clock again, after the lock: a dispatcher held up
			 * between its look and the lock would credit the
			 * decisions made meanwhile to an earlier instant. */
			flowq__coalesce_step(&e->coalesce, engine_decided(e), flowq__mono_ns());
		on = flowq__coalesce_on(&e->coalesce);
	}
	return on;
}

/* Rounds that decide fewer outcomes than this may be followed by a
 * coalescing wait (cfg.intake_coalesce_ns). */
#define COALESCE_SMALL_ROUND 8u

/*
 * Threaded mode, after a round that decided @p n outcomes, while the
 * engine's controller has the wait on (coalesce_note(), coalesce.h): wait
 * up to cfg.intake_coalesce_ns before the next intake if the round was
 * small and no flow waits in the doorbell, i.e. the dispatcher keeps up
 * and would otherwise take the next request in alone (flowq.h). Only a delay: the
 * producers ring and kick exactly as they always do (a ring during the
 * wait lands in the doorbell and is taken in by the next round), so no
 * protocol changes. Waits on the real clock (a custom engine clock may not
 * move in threaded mode), reading nothing producers write except the exit
 * flag, so it leaves their lines alone.
 *
 * It yields the CPU rather than spin: where producers (or other shards'
 * dispatchers) share this CPU, the wait is theirs to use (bench/ENGINE-LOG.md, "Session
 * 12"). A busy-wait here made four producers on two vCPUs 1.15-1.62x
 * slower (sessions 10-12). Where nothing else is runnable, sched_yield() returns
 * at once and the loop polls the clock between system calls. A closed loop
 * pays the whole wait on nearly every request (1.2-2.2x slower with the
 * wait after every small round, up to 13x in session 12's runs): the
 * controller measures that and keeps the wait off there.
 */
static void
intake_coalesce(struct flowq__shard *s, unsigned n)
{
	struct flowq_engine *e = s->engine;
	int64_t wait = e->cfg.intake_coalesce_ns;
	if (wait <= 0 || n == 0 || n >= COALESCE_SMALL_ROUND || doorbell_rung(s))
		return;
	flowq__bump(&s->act_coalesce_waits, 1);
	int64_t until = flowq__mono_ns() + wait;
	while (flowq__mono_ns() < until &&
	       !atomic_load_explicit(&e->exiting, memory_order_relaxed))
		sched_yield();
}

void *
flowq__dispatcher_main(void *arg)
{
	struct flowq__shard *s = arg;
	struct flowq_engine *e = s->engine;
	flowq__rcu_thread_online();
	for (;;) {
		int64_t next;
		s->stopping_seen = atomic_load_explicit(&e->stopping, memory_order_acquire);
		unsigned n = flowq__shard_run(s, 0, &next);
		if (s->slept) {
			s->slept = false;
			if (n >= SPIN_WAKE_BATCH)
				s->spin_gap_avg = 0;
		}
		if (atomic_load_explicit(&e->exiting, memory_order_acquire) && shard_empty(s))
			break;
		if (n) {
			if (e->cfg.intake_coalesce_ns > 0 && coalesce_note(s))
				intake_coalesce(s, n);
			continue;
		}
		if (!flowq_list_empty(&s->pending)) {
			/* A producer is between its exchange and its link: it
			 * will not ring; poll again shortly. */
			sched_yield();
			continue;
		}
		if (idle_spin(s, next))
			continue;
		/* A new generation per sleep (flowq__shard_wake()). */
		uint32_t gen = s->sleep_gen += FLOWQ__SLEEP_GEN;
		atomic_store_explicit(&s->sleeping, gen | FLOWQ__SLEEP_ASLEEP,
				      memory_order_seq_cst);
		FLOWQ__FAULT(D_BEFORE_SLEEP);
		if (work_visible(s)) {
			atomic_store_explicit(&s->sleeping, gen | FLOWQ__SLEEP_AWAKE,
					      memory_order_relaxed);
			continue;
		}
		struct timespec ts, *tsp = NULL;
		if (next != INT64_MAX) {
			int64_t d = next - flowq__now(e);
			if (d < 0)
				d = 0;
			ts.tv_sec = d / 1000000000;
			ts.tv_nsec = d % 1000000000;
			tsp = &ts;
		}
		flowq__bump(&s->act_sleeps, 1);
		futex(&s->sleeping, FUTEX_WAIT_PRIVATE, gen | FLOWQ__SLEEP_ASLEEP, tsp);
		FLOWQ__FAULT(D_AFTER_WAKE);
		/* Awake: wakers stop making system calls from here on. */
		atomic_store_explicit(&s->sleeping, gen | FLOWQ__SLEEP_AWAKE,
				      memory_order_relaxed);
		s->slept = true;
	}
	flowq_thread_detach();
	return NULL;
}

int
flowq_shard_poll(struct flowq_engine *e, unsigned shard, unsigned budget,
		 int64_t *r_next_deadline)
{
	if (!e || e->cfg.mode != FLOWQ_MODE_POLLED || shard >= e->nshards)
		return -EINVAL;
	struct flowq__shard *s = &e->shards[shard];
	flowq__rcu_thread_online();
	/* The eventfd is written by every waker that finds sleeping not 0
	 * (it takes 1 to 2, or finds 2: flowq__shard_wake()) and by
	 * flowq_engine_wake(); nothing writes it while no poll has armed it
	 * (fd_wanted: only then do polls arm, and only a poll stores 1). So
	 * it is read (a system call, EAGAIN when clean) after every poll that
	 * armed it, not on every poll of a busy host loop. Reading only when a
	 * waker took the word since (an earlier rule) missed a waker whose
	 * write lands after that read, and flowq_engine_wake()'s write: the fd
	 * stayed readable across polls that never read it, and a
	 * level-triggered loop spun until the next real wake-up (found by
	 * tests/model/wake.pml; the mutant wake_polled_mut_clear_when_taken
	 * keeps the old rule and must fail). A waker that read the word
	 * before our exchange and writes after our read leaves the fd
	 * readable: one spurious wake-up of the host's loop per such late
	 * write, whose next poll (armed) reads it. Every waker between the
	 * first one and this exchange writes (so that none of them, preempted,
	 * holds the wake-up back): the counter may be above 1; one read clears
	 * it all. */
	(void)atomic_exchange_explicit(&s->sleeping, s->sleep_gen | FLOWQ__SLEEP_AWAKE,
				       memory_order_acquire);
	if (s->poll_armed) {
		uint64_t v;
		ssize_t rd = read(s->efd, &v, sizeof(v)); /* EAGAIN is fine */
		(void)rd;
	}
	s->poll_armed = false;
	s->stopping_seen = atomic_load_explicit(&e->stopping, memory_order_acquire);
	int64_t next;
	unsigned n = flowq__shard_run(s, budget, &next);
	if (budget && n >= budget) {
		next = flowq__now(e); /* more may be waiting: come back now */
	} else if (!atomic_load_explicit(&e->fd_wanted, memory_order_relaxed)) {
		/* Nobody waits on the fd: do not arm it (no waker will write
		 * it); still say when more work is already visible. */
		if (work_visible(s) || !flowq_list_empty(&s->pending))
			next = flowq__now(e);
	} else {
		/* A new generation per armed poll (flowq__shard_wake()). */
		uint32_t gen = s->sleep_gen += FLOWQ__SLEEP_GEN;
		atomic_store_explicit(&s->sleeping, gen | FLOWQ__SLEEP_ASLEEP,
				      memory_order_seq_cst);
		s->poll_armed = true;
		if (work_visible(s) || !flowq_list_empty(&s->pending)) {
			/* Take it back; if a waker took it first (WOKEN or
			 * SENT), it wrote (or will write) the fd: the next poll
			 * clears it. */
			if (atomic_exchange_explicit(&s->sleeping, gen | FLOWQ__SLEEP_AWAKE,
						     memory_order_relaxed) ==
			    (gen | FLOWQ__SLEEP_ASLEEP))
				s->poll_armed = false;
			next = flowq__now(e);
		} else {
			flowq__bump(&s->act_sleeps, 1);
		}
	}
	if (r_next_deadline)
		*r_next_deadline = next;
	return (int)(n > INT_MAX ? INT_MAX : n);
}

int
flowq_shard_fd(struct flowq_engine *e, unsigned shard)
{
	if (!e || e->cfg.mode != FLOWQ_MODE_POLLED || shard >= e->nshards)
		return -EINVAL;
	atomic_store_explicit(&e->fd_wanted, 1, memory_order_relaxed);
	return e->shards[shard].efd;
}

void
flowq__shard_drain_all(struct flowq__shard *s)
{
	int64_t next;
	while (!shard_empty(s))
		flowq__shard_run(s, 0, &next);
	/* One more round gives back the last round's capacity. */
	flowq__shard_run(s, 0, &next);
}

int
flowq__band_shards_init(struct flowq_engine *e, struct flowq__band *b)
{
	size_t ssz = (b->fairness->desc.band_state_size + 15) & ~(size_t)15;
	size_t dsz = e->displace ? e->displace->desc.band_state_size : 0;
	size_t size = sizeof(struct flowq__band_shard) + ssz + dsz;
	struct flowq_policy_env env = flowq__policy_env(e, b);
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__band_shard *bs = flowq__alloc(e->alloc, size, FLOWQ_CACHE_LINE);
		int err = bs ? 0 : -ENOMEM;
		if (bs) {
			memset(bs, 0, size);
			atomic_init(&bs->vt_pub, FLOWQ__VT_IDLE);
			bs->band = b;
			bs->alloc_size = size;
			/* A template band-shard is parked until its first
			 * flow here (band_shard_live()). */
			if (e->displace && !b->configured)
				atomic_init(&bs->doomed_req, FLOWQ__DOOMED_PARKED);
			bs->fstate = ssz ? (void *)(bs + 1) : NULL;
			bs->dstate = dsz ? (void *)((char *)(bs + 1) + ssz) : NULL;
			err = b->fairness->band_init(bs->fstate, &env);
			if (!err && e->displace) {
				err = e->displace->band_init(bs->dstate, &env);
				if (err)
					b->fairness->band_fini(bs->fstate, &env);
			}
			if (err)
				flowq__free(e->alloc, bs, size, FLOWQ_CACHE_LINE);
		}
		if (err) {
			flowq__band_shards_fini(e, b);
			return err;
		}
		b->bss[i] = bs;
		atomic_store_explicit(&e->shards[i].bs[b->index], bs, memory_order_release);
	}
	return 0;
}

void
flowq__band_shards_fini(struct flowq_engine *e, struct flowq__band *b)
{
	struct flowq_policy_env env = flowq__policy_env(e, b);
	for (unsigned i = 0; i < e->nshards; i++) {
		/* b->bss, not the shard's slot: a collected band's slot may
		 * hold a newer band's state by now. */
		struct flowq__band_shard *bs = b->bss[i];
		if (!bs)
			continue;
		b->fairness->band_fini(bs->fstate, &env);
		if (e->displace)
			e->displace->band_fini(bs->dstate, &env);
		/* A band that fails to initialize (never published) leaves
		 * its slot empty. */
		struct flowq__band_shard *mine = bs;
		atomic_compare_exchange_strong_explicit(&e->shards[i].bs[b->index], &mine, NULL,
							memory_order_relaxed,
							memory_order_relaxed);
		flowq__free(e->alloc, bs, bs->alloc_size, FLOWQ_CACHE_LINE);
		b->bss[i] = NULL;
	}
}

void
flowq__shard_fini_private(struct flowq__shard *s)
{
	if (s->ttl.slots) {
		flowq__free(s->engine->alloc, s->ttl.slots, sizeof(*s->ttl.slots) * s->ttl_cap,
			    sizeof(void *));
		s->ttl.slots = NULL;
		s->ttl_cap = 0;
	}
}
