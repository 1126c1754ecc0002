/*
 * Saturation detector "utilization": host-fed per-endpoint metrics (GIE's
 * utilization-detector, reference section 1.9), plus an estimate of what
 * was dispatched since each endpoint last reported.
 *
 * Model. N endpoints (indexes 0..N-1). The host reports endpoint i's
 * waiting-queue size q_i and KV-cache use kv_i, taken at time at_i on the
 * engine clock. Its score is GIE's roofline
 *
 *     score_i = max(q_i / Q, kv_i / K)        (Q, K: the two thresholds)
 *
 * if the report is fresh (now - at_i <= staleness), and 1.0 if it is stale
 * or the endpoint never reported. GIE dispatches one request per 1 ms
 * cycle, which rate-limits what a stale-low reading lets through; flowq
 * dispatches until blocked, so a reading that is low for 50 ms would let
 * the whole backlog out at once (GIE's "thundering herd", worse). So each
 * dispatch is assumed to add `dispatch_cost` (c) waiting requests to one
 * endpoint, spread evenly, until that endpoint reports metrics taken after
 * it: with D the dispatches so far and d_i the number of them made at or
 * before the time of i's latest metrics (at_i),
 *
 *     pend_i = (D - d_i) / N                  (fresh endpoints only)
 *     saturation = (1/N) * sum_i (score_i + c * pend_i / Q)
 *
 * and a band dispatches only while saturation < its usage ceiling. With
 * c = 1, between two reports the pool takes at most about N * Q * (1 - s)
 * requests, what the roofline says it can absorb. c = 0 is GIE's formula.
 *
 * Representation (all shared words are C11 atomics):
 *  - per endpoint: a state word (tag << 1 | STALE) and two records
 *    {at, contrib, d}, rec[tag & 1] belonging to state `tag` (double
 *    buffering, so that the record of the current state is never written
 *    while it is current). contrib is score_i in fixed point (ONE = 2^32),
 *    clamped to SCORE_MAX. Never reported = tag 0, STALE.
 *  - pool sums: sum = sum_i contrib_i (ONE for a stale endpoint), and
 *    fw = F << 51 | (sum of d_i over fresh endpoints mod 2^51), F the number
 *    of fresh endpoints. Then sum_i (D - d_i) over fresh endpoints is
 *    (F * D - fw) mod 2^51, exact (both sides are reduced mod 2^51), and the
 *    estimate is O(1) from (sum, fw, D).
 *  - D: dispatches so far, one atomic add per dispatch, and a ring of the
 *    last RING dispatches' times (their round's clock reading). A report
 *    finds d_i there by scanning back from D to the latest dispatch made at
 *    or before at_i (O(dispatches since at_i), at most RING; not below the
 *    endpoint's previous d_i). So a report that arrives late, or a reporter
 *    preempted between reading its metrics and reporting them, neither
 *    drops the dispatches its metrics cannot show nor counts them twice.
 *
 * Writers of an endpoint's state: its reporter (a new report: any state ->
 * fresh tag + 1; reporters of one endpoint exclude each other with a busy
 * flag, a second concurrent one gets -EBUSY) and any dispatcher's staleness
 * sweep (fresh tag -> STALE tag + 1, when the fresh record has aged past the
 * threshold). Both are CASes on the state word; the winner of a transition
 * then applies its exact delta (new - old) to sum and fw. So at quiescence
 * the sums equal what the endpoints hold (flowq__util_check_sums()); while
 * updates run, a reader may see one transition's sum delta without its fw
 * delta or another's: an error of a few endpoints' worth, for nanoseconds.
 *
 * Staleness by time. A dispatcher keeps a private horizon: the earliest
 * moment a record it counted as fresh goes stale. Fresh records only get
 * newer (a report older than the endpoint's latest is refused, -ESTALE),
 * so the horizon stays a lower bound until a stale endpoint becomes fresh
 * again; a reporter doing that bumps `revive`, and a dispatcher that sees
 * `revive` move sweeps. A sweep (O(N)) marks the aged records stale and
 * recomputes the horizon; in steady state (reports every T < staleness)
 * each dispatcher sweeps about once per (staleness - T).
 *
 * Ordering. [U1] a reporter writes the record for tag + 1 with release
 * stores (after its acquire load of the state that freed that record) and
 * publishes it with a release CAS on the state word; [U2] a reader (sweep,
 * scan) loads the state with acquire, reads the record with acquire loads,
 * then takes a second look at the state (a CAS for the sweep): if the
 * record was being rewritten for a later state, that second look sees the
 * state moved (the seqlock argument, Boehm, MSPC 2012, with acquire loads
 * and release stores in place of the fences, which GCC's TSan does not
 * model; on x86 both are plain moves) and the reader retries. [U3] the sums are updated after the state CAS and before
 * the wake: the waker's [W1] fence (core/dispatch.c) then orders them before
 * its load of the gate waiters, the Dekker pair with a dispatcher that
 * registers as a waiter and re-checks (engine.h). Every update that lowers
 * the estimate (a report, or a sweep that retires a score above 1) calls
 * the wake after its sums, so a dispatcher that went to sleep on a higher
 * value is always woken after the last lowering. [U4] a reporter reads D
 * before it publishes d_i <= D (release); a reader loads fw with acquire
 * before D, so it sees D >= every d_i it counts (read-read coherence): the
 * pending sum is never negative. [U5] a ring slot is a seqlock: seq 0,
 * time (release), seq k (release); a reader takes the time (acquire) only
 * if it read seq k before and after it, else counts that dispatch as
 * pending.
 *
 * Progress: a report is wait-free on its endpoint (its CAS can fail only
 * once, against a sweep; a sweep never touches a stale state) and
 * lock-free on fw (a CAS loop against other transitions). A gate check is
 * wait-free when no sweep is due, else O(N) with lock-free retries per
 * endpoint. No allocation after create.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <flowq/flowq.h>

#include "alloc_internal.h"
#include "saturation_utilization.h"

#define ONE       (UINT64_C(1) << 32)
#define SCORE_MAX (UINT64_C(1) << 19) /* clamp: ONE * SCORE_MAX = 2^51 */
#define FW_SHIFT  51
#define FW_MASK   ((UINT64_C(1) << FW_SHIFT) - 1)
#define STALE     UINT64_C(1)
#define RING      1024u /* dispatch stamps kept (16 KB) */

/* sum <= N * ONE * SCORE_MAX = 2^12 * 2^51 = 2^63: fits; F <= 2^12 fits the
 * 13 bits above FW_SHIFT. */
_Static_assert(FLOWQ_MAX_ENDPOINTS <= 4096u, "sum and fw bit budgets");

struct util_rec {
	_Atomic int64_t at;
	_Atomic uint64_t contrib;
	_Atomic uint64_t d;
};

/* One endpoint: its own line (reporters of different endpoints never share
 * one; a sweep reads one line per endpoint). */
struct util_ep {
	/* tag << 1 | STALE: CAS by the reporter and by sweeps. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t state;
	/* 1 while a report of this endpoint runs (reporters only). */
	_Atomic uint32_t busy;
	/* Written by the reporter (under busy), for the state it publishes. */
	struct util_rec rec[2];
};
_Static_assert(sizeof(struct util_ep) == FLOWQ_CACHE_LINE, "one line per endpoint");

/* The stamp of dispatch number seq (1-based): when it was dispatched, on
 * the engine clock (its round's start). Ring slot (seq - 1) % RING. */
struct util_stamp {
	_Atomic uint64_t seq; /* 0 while being written */
	_Atomic int64_t at;
};

/* A dispatcher's private view: written and read by that shard's
 * dispatcher only. */
struct util_shard {
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) int64_t horizon;
	uint64_t revive_seen;
};

struct flowq__util {
	/* Read-only after create. */
	unsigned n;
	unsigned nshards;
	uint64_t q;
	double k;
	int64_t staleness;
	double cost;
	double inv_one_n;  /* 1 / (ONE * N) */
	double pend_scale; /* cost / (N * N * Q) */
	double pend_one;   /* cost / (N * Q): one endpoint's pending, per dispatch */
	flowq__util_wake_fn *wake;
	void *wake_ctx;
	size_t alloc_size;
	struct util_ep *eps;
	struct util_shard *shards;
	/* Pool sums: written per transition (reports, sweeps), read per gate
	 * check. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t sum;
	_Atomic uint64_t fw;
	/* Bumped when a stale endpoint becomes fresh (sweeps are due). */
	_Atomic uint64_t revive;
	/* Dispatches so far: written per dispatch, its own line. */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) _Atomic uint64_t dispatched;
	/* The last RING dispatches' stamps (written per dispatch). */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) struct util_stamp ring[RING];
};

static inline int64_t
add_sat(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static inline bool
is_fresh_at(const struct flowq__util *u, int64_t at, int64_t now)
{
	/* now < at (a report newer than this reader's clock reading) is
	 * fresh. Else the age now - at is in (0, 2^64): exact in uint64_t,
	 * where int64_t would overflow (at = INT64_MIN, now > 0: UB, which
	 * in practice wrapped to a negative age and called it fresh). */
	return now <= at || (uint64_t)now - (uint64_t)at <= (uint64_t)u->staleness;
}

static uint64_t
score_fixed(const struct flowq__util *u, uint64_t waiting, double kv)
{
	double qs = (double)waiting / (double)u->q;
	double ks = kv / u->k;
	double s = qs > ks ? qs : ks;
	if (!(s < (double)SCORE_MAX)) /* also NaN, which the caller refused */
		return SCORE_MAX * ONE;
	/* Rounded up, so that the fixed point never understates the load
	 * (by hand: ceil() would make libflowq depend on libm). */
	double x = s * (double)ONE;
	uint64_t v = (uint64_t)x;
	return (double)v < x ? v + 1 : v;
}

/* fw += (df fresh endpoints, dd to their d sum), as one CAS. */
static void
fw_add(struct flowq__util *u, int df, uint64_t dd)
{
	uint64_t w = atomic_load_explicit(&u->fw, memory_order_relaxed);
	for (;;) {
		uint64_t f = (w >> FW_SHIFT) + (uint64_t)(int64_t)df;
		uint64_t nw = f << FW_SHIFT | ((w + dd) & FW_MASK);
		/* Release: [U4], d values published with the count. */
		if (atomic_compare_exchange_weak_explicit(
			    &u->fw, &w, nw, memory_order_release, memory_order_relaxed))
			return;
	}
}

/* The time of endpoint @p p's latest accepted report, given its state @p st
 * (reporter only: it wrote the records). */
static int64_t
last_at(const struct util_ep *p, uint64_t st)
{
	uint64_t tag = st >> 1;
	if (!(st & STALE))
		return atomic_load_explicit(&p->rec[tag & 1].at, memory_order_relaxed);
	if (tag == 0)
		return INT64_MIN; /* never reported */
	/* A stale state follows the fresh state tag - 1 (only sweeps make
	 * stale states), whose record is still in place. */
	return atomic_load_explicit(&p->rec[(tag - 1) & 1].at, memory_order_relaxed);
}

static size_t
round_line(size_t x)
{
	return (x + FLOWQ_CACHE_LINE - 1) & ~(size_t)(FLOWQ_CACHE_LINE - 1);
}

int
flowq__util_create(const struct flowq__util_config *c, const struct flowq_allocator *a,
		   struct flowq__util **r_util)
{
	size_t head = round_line(sizeof(struct flowq__util));
	size_t eps = sizeof(struct util_ep) * c->endpoints;
	size_t shs = sizeof(struct util_shard) * c->shards;
	size_t size = head + eps + shs;
	struct flowq__util *u = flowq__alloc(a, size, FLOWQ_CACHE_LINE);
	if (!u)
		return -ENOMEM;
	memset(u, 0, size);
	u->alloc_size = size;
	u->n = c->endpoints;
	u->nshards = c->shards;
	u->q = c->queue_depth_threshold;
	u->k = c->kv_cache_util_threshold;
	u->staleness = c->staleness_ns;
	u->cost = c->dispatch_cost;
	u->inv_one_n = 1.0 / ((double)ONE * (double)u->n);
	u->pend_scale = u->cost / ((double)u->n * (double)u->n * (double)u->q);
	u->pend_one = u->cost / ((double)u->n * (double)u->q);
	u->wake = c->wake;
	u->wake_ctx = c->wake_ctx;
	u->eps = (struct util_ep *)((char *)u + head);
	u->shards = (struct util_shard *)((char *)u->eps + eps);
	for (unsigned i = 0; i < u->n; i++) {
		struct util_ep *p = &u->eps[i];
		atomic_init(&p->state, STALE); /* tag 0: never reported */
		atomic_init(&p->busy, 0);
		for (int j = 0; j < 2; j++) {
			atomic_init(&p->rec[j].at, INT64_MIN);
			atomic_init(&p->rec[j].contrib, ONE);
			atomic_init(&p->rec[j].d, 0);
		}
	}
	for (unsigned i = 0; i < u->nshards; i++) {
		/* Nothing is fresh: no horizon; revive_seen 0 = revive's start. */
		u->shards[i].horizon = INT64_MAX;
		u->shards[i].revive_seen = 0;
	}
	atomic_init(&u->sum, (uint64_t)u->n * ONE);
	atomic_init(&u->fw, 0);
	atomic_init(&u->revive, 0);
	atomic_init(&u->dispatched, 0);
	for (unsigned i = 0; i < RING; i++) {
		atomic_init(&u->ring[i].seq, 0);
		atomic_init(&u->ring[i].at, INT64_MIN);
	}
	*r_util = u;
	return 0;
}

void
flowq__util_destroy(struct flowq__util *u, const struct flowq_allocator *a)
{
	if (u)
		flowq__free(a, u, u->alloc_size, FLOWQ_CACHE_LINE);
}

unsigned
flowq__util_endpoints(const struct flowq__util *u)
{
	return u->n;
}

/* ---- reports ---- */

/*
 * How many of the first @p d dispatches the metrics taken at @p at include:
 * the number of the latest dispatch stamped at or before @p at, looking back
 * at most RING dispatches and not below @p lo (the endpoint's previous
 * count; the metrics are newer than its previous report's). A dispatch
 * whose stamp is not readable (being written, or its slot reused) counts
 * as after @p at: pending, the safe side. If none is found, the bottom of
 * the range: with @p lo that is exact (nothing since the previous report is
 * included); past RING dispatches, up to RING of them stay pending. O(the
 * dispatches after @p at), at most RING.
 */
static uint64_t
dispatches_until(const struct flowq__util *u, int64_t at, uint64_t lo, uint64_t d)
{
	uint64_t b = d > RING ? d - RING : 0;
	if (lo > b)
		b = lo < d ? lo : d;
	for (uint64_t k = d; k > b; k--) {
		const struct util_stamp *sl = &u->ring[(k - 1) % RING];
		/* [U5] seqlock read. */
		if (atomic_load_explicit(&sl->seq, memory_order_acquire) != k)
			continue;
		int64_t t = atomic_load_explicit(&sl->at, memory_order_acquire);
		if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != k)
			continue;
		if (t <= at)
			return k;
	}
	return b;
}

int
flowq__util_report(struct flowq__util *u, unsigned ep, uint64_t waiting, double kv,
		   int64_t at_ns, int64_t now_ns)
{
	struct util_ep *p = &u->eps[ep];
	/* Acquire: the previous reporter's record writes (its release below). */
	if (atomic_exchange_explicit(&p->busy, 1, memory_order_acquire))
		return -EBUSY;
	uint64_t st = atomic_load_explicit(&p->state, memory_order_acquire);
	if (at_ns < last_at(p, st) || !is_fresh_at(u, at_ns, now_ns)) {
		atomic_store_explicit(&p->busy, 0, memory_order_release);
		return -ESTALE;
	}
	uint64_t c_new = score_fixed(u, waiting, kv);
	/* [U4] D before d_i is published (fw_add's release). */
	uint64_t d_now = atomic_load_explicit(&u->dispatched, memory_order_relaxed);
	uint64_t lo = 0;
	if (!(st & STALE))
		lo = atomic_load_explicit(&p->rec[(st >> 1) & 1].d, memory_order_relaxed);
	uint64_t d_new = dispatches_until(u, at_ns, lo, d_now);
	for (;;) {
		struct util_rec *r = &p->rec[((st >> 1) + 1) & 1];
		/* [U1] release stores: a reader that sees any of them also
		 * sees the state that made this record free (pairs with
		 * [U2]). Plain moves on x86; no fences (GCC's TSan does not
		 * model them). */
		atomic_store_explicit(&r->at, at_ns, memory_order_release);
		atomic_store_explicit(&r->contrib, c_new, memory_order_release);
		atomic_store_explicit(&r->d, d_new, memory_order_release);
		/* [U1] release: the record before the state that names it.
		 * Fails only if a sweep marked the state stale meanwhile (no
		 * other reporter runs); then the other record is free. */
		if (atomic_compare_exchange_strong_explicit(
			    &p->state, &st, ((st >> 1) + 1) << 1, memory_order_acq_rel,
			    memory_order_acquire))
			break;
	}
	/* st is the state this report replaced; its record is intact (we
	 * wrote the other one). */
	double before, after = (double)c_new / (double)ONE;
	if (st & STALE) {
		atomic_fetch_add_explicit(&u->sum, c_new - ONE, memory_order_relaxed);
		fw_add(u, 1, d_new);
		/* After the state CAS: a dispatcher that sees the bump sweeps
		 * and finds this endpoint fresh. */
		atomic_fetch_add_explicit(&u->revive, 1, memory_order_release);
		before = 1.0;
		after += u->pend_one * (double)(d_now - d_new);
	} else {
		const struct util_rec *o = &p->rec[(st >> 1) & 1];
		uint64_t c_old = atomic_load_explicit(&o->contrib, memory_order_relaxed);
		uint64_t d_old = atomic_load_explicit(&o->d, memory_order_relaxed);
		atomic_fetch_add_explicit(&u->sum, c_new - c_old, memory_order_relaxed);
		if (d_new != d_old)
			fw_add(u, 0, d_new - d_old);
		/* Both with their pending dispatches as of d_now. */
		before = (double)c_old / (double)ONE +
			 u->pend_one * (double)(d_now - d_old);
		after += u->pend_one * (double)(d_now - d_new);
	}
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	/* [U3] after the sums; the wake issues the [W1] fence. */
	if (after < before && u->wake)
		u->wake(u->wake_ctx);
	return 0;
}

void
flowq__util_count(struct flowq__util *u, int64_t now_ns)
{
	/* Relaxed: a counter; readers order it through fw ([U4]). */
	uint64_t k =
		atomic_fetch_add_explicit(&u->dispatched, 1, memory_order_relaxed) + 1;
	struct util_stamp *sl = &u->ring[(k - 1) % RING];
	/* [U5] a seqlock write: seq 0 while the stamp changes (the time's
	 * release store orders it after the 0), then k (release); pairs
	 * with dispatches_until()'s reads. */
	atomic_store_explicit(&sl->seq, 0, memory_order_relaxed);
	atomic_store_explicit(&sl->at, now_ns, memory_order_release);
	atomic_store_explicit(&sl->seq, k, memory_order_release);
}

/* ---- the estimate ---- */

static double
estimate_from_sums(const struct flowq__util *u)
{
	uint64_t s = atomic_load_explicit(&u->sum, memory_order_relaxed);
	uint64_t w = atomic_load_explicit(&u->fw, memory_order_acquire); /* [U4] */
	uint64_t d = atomic_load_explicit(&u->dispatched, memory_order_relaxed);
	uint64_t pend = ((w >> FW_SHIFT) * d - w) & FW_MASK;
	/* A "negative" pending sum (bit 50 set) or a sum above 2^63 can only
	 * be a transient mix of two updates: treat as saturated for now; the
	 * update that completes the mix wakes waiters if it lowers. */
	if ((pend >> (FW_SHIFT - 1)) || (s >> 63))
		return INFINITY;
	return (double)s * u->inv_one_n + (double)pend * u->pend_scale;
}

/* Mark the aged records stale and recompute this shard's horizon. */
static void
sweep(struct flowq__util *u, struct util_shard *us, int64_t now, uint64_t revive)
{
	int64_t h = INT64_MAX;
	bool lowered = false;
	for (unsigned i = 0; i < u->n; i++) {
		struct util_ep *p = &u->eps[i];
		uint64_t st =
			atomic_load_explicit(&p->state, memory_order_acquire); /* [U2] */
		while (!(st & STALE)) {
			const struct util_rec *r = &p->rec[(st >> 1) & 1];
			/* [U2] acquire loads: the second look at the state
			 * (or the CAS) comes after them. */
			int64_t at = atomic_load_explicit(&r->at, memory_order_acquire);
			uint64_t c =
				atomic_load_explicit(&r->contrib, memory_order_acquire);
			uint64_t d = atomic_load_explicit(&r->d, memory_order_acquire);
			if (is_fresh_at(u, at, now)) {
				uint64_t st2 = atomic_load_explicit(&p->state,
								    memory_order_acquire);
				if (st2 != st) { /* rewritten meanwhile: look again */
					st = st2;
					continue;
				}
				int64_t exp = add_sat(at, add_sat(u->staleness, 1));
				if (exp < h)
					h = exp;
				break;
			}
			if (atomic_compare_exchange_strong_explicit(
				    &p->state, &st, (((st >> 1) + 1) << 1) | STALE,
				    memory_order_acq_rel, memory_order_acquire)) {
				uint64_t dn = atomic_load_explicit(&u->dispatched,
								   memory_order_relaxed);
				atomic_fetch_add_explicit(&u->sum, ONE - c,
							  memory_order_relaxed);
				fw_add(u, -1, (uint64_t)0 - d);
				if ((double)c / (double)ONE +
					    u->pend_one * (double)(dn - d) >
				    1.0)
					lowered = true;
				break;
			}
			/* st reloaded: a report (or another sweep) got there
			 * first; look again. */
		}
	}
	us->horizon = h;
	us->revive_seen = revive;
	/* [U3] a retired score above 1 lowers the estimate. */
	if (lowered && u->wake)
		u->wake(u->wake_ctx);
}

double
flowq__util_estimate(struct flowq__util *u, unsigned shard, int64_t now_ns)
{
	struct util_shard *us = &u->shards[shard];
	/* Acquire: a revival's state CAS before the sweep reads it. */
	uint64_t rv = atomic_load_explicit(&u->revive, memory_order_acquire);
	if (now_ns >= us->horizon || rv != us->revive_seen)
		sweep(u, us, now_ns, rv);
	return estimate_from_sums(u);
}

bool
flowq__util_open(struct flowq__util *u, unsigned shard, int64_t now_ns, double ceiling)
{
	return flowq__util_estimate(u, shard, now_ns) < ceiling;
}

int64_t
flowq__util_recheck(const struct flowq__util *u, unsigned shard)
{
	return u->shards[shard].horizon;
}

double
flowq__util_saturation(const struct flowq__util *u, int64_t now_ns)
{
	/* A report may land between this load of D and the load of its
	 * record, so a d_i may exceed it: pending terms are clamped at 0 one
	 * by one. */
	uint64_t d_now = atomic_load_explicit(&u->dispatched, memory_order_acquire);
	double total = 0.0;
	for (unsigned i = 0; i < u->n; i++) {
		const struct util_ep *p = &u->eps[i];
		uint64_t st = atomic_load_explicit(&p->state, memory_order_acquire);
		for (;;) {
			if (st & STALE) {
				total += 1.0;
				break;
			}
			const struct util_rec *r = &p->rec[(st >> 1) & 1];
			/* [U2] acquire loads before the second look. */
			int64_t at = atomic_load_explicit(&r->at, memory_order_acquire);
			uint64_t c =
				atomic_load_explicit(&r->contrib, memory_order_acquire);
			uint64_t d = atomic_load_explicit(&r->d, memory_order_acquire);
			uint64_t st2 =
				atomic_load_explicit(&p->state, memory_order_acquire);
			if (st2 != st) {
				st = st2;
				continue;
			}
			if (!is_fresh_at(u, at, now_ns)) {
				total += 1.0;
				break;
			}
			total += (double)c / (double)ONE;
			if (d_now > d)
				total += u->pend_one * (double)(d_now - d);
			break;
		}
	}
	return total / (double)u->n;
}

bool
flowq__util_check_sums(const struct flowq__util *u, FILE *out)
{
	uint64_t sum = 0, dsum = 0, f = 0;
	for (unsigned i = 0; i < u->n; i++) {
		const struct util_ep *p = &u->eps[i];
		uint64_t st = atomic_load_explicit(&p->state, memory_order_acquire);
		if (st & STALE) {
			sum += ONE;
			continue;
		}
		const struct util_rec *r = &p->rec[(st >> 1) & 1];
		sum += atomic_load_explicit(&r->contrib, memory_order_relaxed);
		dsum += atomic_load_explicit(&r->d, memory_order_relaxed);
		f++;
	}
	uint64_t want_fw = f << FW_SHIFT | (dsum & FW_MASK);
	uint64_t got_sum = atomic_load_explicit(&u->sum, memory_order_acquire);
	uint64_t got_fw = atomic_load_explicit(&u->fw, memory_order_acquire);
	if (got_sum == sum && got_fw == want_fw)
		return true;
	if (out)
		fprintf(out,
			"utilization: sums disagree with the endpoints: sum %" PRIu64
			" (endpoints %" PRIu64 "), fresh %" PRIu64 " (endpoints %" PRIu64
			"), d sum %" PRIu64 " (endpoints %" PRIu64 " mod 2^51)\n",
			got_sum, sum, got_fw >> FW_SHIFT, f, got_fw & FW_MASK,
			dsum & FW_MASK);
	return false;
}

void
flowq__util_dump(const struct flowq__util *u, FILE *out)
{
	uint64_t w = atomic_load(&u->fw);
	fprintf(out,
		"utilization: endpoints %u, sum %.6f, fresh %" PRIu64
		", dispatched %" PRIu64 ", revive %" PRIu64 ", estimate %.6f\n",
		u->n, (double)atomic_load(&u->sum) / (double)ONE, w >> FW_SHIFT,
		(uint64_t)atomic_load(&u->dispatched), (uint64_t)atomic_load(&u->revive),
		estimate_from_sums(u));
	for (unsigned i = 0; i < u->nshards; i++)
		fprintf(out,
			"utilization: shard %u horizon %" PRId64 " revive_seen %" PRIu64
			"\n",
			i, u->shards[i].horizon, u->shards[i].revive_seen);
	for (unsigned i = 0; i < u->n && i < 16; i++) {
		const struct util_ep *p = &u->eps[i];
		uint64_t st = atomic_load(&p->state);
		const struct util_rec *r = &p->rec[(st >> 1) & 1];
		fprintf(out,
			"utilization: endpoint %u tag %" PRIu64 " %s at %" PRId64
			" score %.6f d %" PRIu64 " busy %u\n",
			i, st >> 1, (st & STALE) ? "stale" : "fresh",
			(int64_t)atomic_load(&r->at),
			(double)atomic_load(&r->contrib) / (double)ONE,
			(uint64_t)atomic_load(&r->d), (unsigned)atomic_load(&p->busy));
	}
}
