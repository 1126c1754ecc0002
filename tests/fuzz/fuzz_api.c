/*
 * libFuzzer target: API sequences on a polled engine with a simulated clock,
 * checked against a shadow model after every step (issue 6, "Fuzzing").
 *
 * Input: the first bytes choose the engine configuration (polled mode, 1-3
 * shards, 1-4 configured bands with fairness and ordering policies taken
 * from the registries by index, global / band / template / flow limits in
 * requests and bytes with 0 = unlimited, the displacement policy and its
 * transient bound, the concurrency detector's in-flight limits, usage
 * ceilings, the default TTL, the flow GC timeout, the dispatch batch and
 * the clock's start). The rest is a sequence of operations on a pool of
 * FZ_POOL requests and FZ_HANDLES flow handles: submit (flow ids empty,
 * with NUL bytes, the longest, one byte too long, NULL, taken from the
 * input; priorities configured, unknown, at the int32 edges; byte counts
 * up to and past FLOWQ_LIMIT_MAX; TTLs and deadlines past, near, far and
 * overflowing; with or without a handle), cancel, release,
 * flowq_shard_poll() of one shard (or of an out-of-range one) with a
 * budget, clock moves (small, large, huge, and a small step back), flow
 * get / put / set_weight, hostile calls (double submit, resubmit without
 * re-init, release of a request never dispatched, cancel of a finished
 * one) and destroy with requests still queued (the input ends there).
 *
 * The shadow model (struct fz) knows each request's state, flow key,
 * shard, submit time, expiry and submit order, and the expected counters
 * of the engine and of every band. Checked (a violation prints one line
 * and abort()s, which libFuzzer reports as a crash):
 *  - exactly one outcome per request: a completion only for an admitted
 *    request, only once, only inside a poll of the request's shard or
 *    destroy; a rejected submit gets none; flowq_req_outcome() agrees with
 *    the model after every step; every errno is the documented one for the
 *    call and the request's state;
 *  - conservation: the engine's and every band's statistics equal the
 *    model's (outcomes and causes, queued requests and bytes, in flight,
 *    queue-time count and sum), and submits = sum of outcomes + queued;
 *  - capacity: queued requests and bytes within every global, band and
 *    flow limit, the global one exceeded by at most displacement_max_pending
 *    requests (and as many of the largest requests' bytes) when a
 *    displacement policy is set (flowq.h: displacement_max_pending); in
 *    flight within the concurrency limits and each band's usage ceiling;
 *    without displacement, a capacity rejection only when the level it
 *    names is really full (flowq/capacity.h I3: exact at the limit);
 *  - strict priority within a shard (the polled engine's guarantee,
 *    core/dispatch.c phase 5: a round serves bands most important first
 *    and stops whole when the gate closes; across shards it holds only
 *    through the published top band, which polled shards refresh when they
 *    run, so it is not checked there): a dispatched request leaves no
 *    request of a more important band waiting on its shard;
 *  - the ordering policy: within a flow, fcfs dispatches in submit order,
 *    edf and slo_deadline by their keys (policies/ordering_heap.h);
 *  - time: nothing is dispatched at or after its expiry (TTL or deadline)
 *    on the simulated clock, nothing expires early, after a poll nothing
 *    expired, cancelled or (with an open gate, one shard or an unlimited
 *    gate, no budget) dispatchable is left on the polled shard, and the
 *    poll's next deadline is not later than the earliest expiry there;
 *    queue times are never negative (a clock step back counts as 0).
 *
 * Build: clang, -DFLOWQ_BUILD_FUZZ=ON; run: build/tests/fuzz/fuzz_api
 * -max_len=1024 tests/fuzz/corpus_api (tools/test runs it briefly).
 * Corpus: the hand-made seeds (make_api_seeds.py writes them) plus what
 * longer runs found, minimised to the inputs that add an edge:
 *   mkdir new && cp the named seeds (not the 40-hex-digit names) to new/
 *   fuzz_api -merge=1 -use_counters=0 -max_len=1024 new tests/fuzz/corpus_api FOUND...
 * then replace corpus_api with new/ (keeps the replay in tools/test short).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>
#include <flowq/policy.h>

#include "engine.h"
#include "ordering_heap.h"

#define FZ_POOL      32
#define FZ_HANDLES   4
#define FZ_BANDS     320 /* distinct priorities the model can follow */
#define FZ_CLOCK_MAX (INT64_C(1) << 62)

/* A violation: one line on stderr, then abort() (a libFuzzer crash). */
static void
fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fz_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fuzz_api: invariant violated: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

#define FZ_CHECK(cond, ...)                                                              \
	do {                                                                             \
		if (!(cond))                                                             \
			fz_fail(__VA_ARGS__);                                            \
	} while (0)

/* ---- input ---- */

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static uint8_t
in_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t
in_u16(struct fz_in *in)
{
	uint16_t v = in_u8(in);
	return (uint16_t)(v | in_u8(in) << 8);
}

/* ---- the model ---- */

struct fz_key {
	uint8_t id[FLOWQ_FLOW_ID_MAX + 1];
	uint32_t len;
	int32_t prio;
};

enum fz_state {
	FZ_IDLE,     /* initialized, never submitted */
	FZ_REJECTED, /* submit returned an error (not -EBUSY) */
	FZ_QUEUED,   /* submit returned 0, no completion yet */
	FZ_EVICTED,  /* completed with an EVICTED_* outcome */
	FZ_INFLIGHT, /* completed DISPATCHED, not released */
	FZ_RELEASED,
};

struct fz_req {
	struct flowq_req req;
	enum fz_state st;
	bool cancelled; /* a flowq_cancel() returned 0 */
	enum flowq_outcome outcome;
	enum flowq_cause cause;
	struct fz_key key; /* its flow */
	unsigned shard;
	int64_t t_sub, expiry;
	bool by_deadline; /* the deadline, not the TTL, sets the expiry */
	uint64_t seq;     /* submit order */
	uint64_t bytes;
	uint8_t idbuf[FLOWQ_FLOW_ID_MAX + 1];
};

struct fz_counts {
	uint64_t causes[FLOWQ_OUTCOME_COUNT][FLOWQ_CAUSE_COUNT];
	uint64_t queued, queued_bytes;
	uint64_t qt_count, qt_sum;
};

struct fz_band {
	int32_t prio;
	bool used;
	struct fz_counts c;
};

struct fz_bandcfg {
	const struct flowq_band_config *cfg;
	const struct flowq_ordering_ops *ordering;
};

struct fz_handle {
	struct flowq_flow *flow;
	struct fz_key key;
};

struct fz {
	struct flowq_config cfg;
	struct flowq_band_config bands[4];
	struct flowq_engine *e;
	int64_t clock;
	struct fz_req pool[FZ_POOL];
	struct fz_handle handles[FZ_HANDLES];
	struct fz_band sb[FZ_BANDS];
	size_t nsb;
	struct fz_counts eng;
	uint64_t submits; /* submits that decided something (not -EBUSY) */
	uint64_t inflight, inflight_bytes;
	uint64_t seq;
	uint64_t max_bytes_seen; /* largest request admitted */
	/* Where completions may come from now. */
	int polling; /* the shard being polled, or -1 */
	bool destroying;
	unsigned poll_done, poll_dispatched;
	struct flowq_req spare; /* submitted from completions during destroy */
};

static struct fz g;

static const char *
fz_outcome(enum flowq_outcome o)
{
	return flowq_outcome_str(o);
}

static struct fz_band *
band_of(int32_t prio)
{
	for (size_t i = 0; i < g.nsb; i++)
		if (g.sb[i].prio == prio)
			return &g.sb[i];
	if (g.nsb == FZ_BANDS)
		fz_fail("model: more than %d priorities", FZ_BANDS);
	struct fz_band *b = &g.sb[g.nsb++];
	memset(b, 0, sizeof(*b));
	b->prio = prio;
	return b;
}

/* The configuration of band @p prio: configured, or the template. */
static struct fz_bandcfg
bandcfg_of(int32_t prio)
{
	struct fz_bandcfg bc = {&g.cfg.default_band, NULL};
	for (size_t i = 0; i < g.cfg.nbands; i++)
		if (g.bands[i].priority == prio)
			bc.cfg = &g.bands[i];
	bc.ordering = flowq_ordering_find(bc.cfg->ordering);
	return bc;
}

static bool
prio_configured(int32_t prio)
{
	for (size_t i = 0; i < g.cfg.nbands; i++)
		if (g.bands[i].priority == prio)
			return true;
	return false;
}

static bool
key_eq(const struct fz_key *a, const struct fz_key *b)
{
	return a->prio == b->prio && a->len == b->len && !memcmp(a->id, b->id, a->len);
}

static void
count_outcome(struct fz_counts *c, enum flowq_outcome o, enum flowq_cause cause)
{
	c->causes[o][cause]++;
}

static bool
gate_scarce(void)
{
	return g.cfg.saturation.max_inflight || g.cfg.saturation.max_inflight_bytes;
}

/* Whether the concurrency gate lets a request of @p bytes of a band with
 * @p ceiling go now: the saturation (in-flight / limit, in each limited
 * dimension) is below the ceiling and the request fits the limits
 * (flowq.h: usage_ceiling, saturation.detector). */
static bool
gate_fits(double ceiling, uint64_t bytes)
{
	const struct flowq_saturation_config *sc = &g.cfg.saturation;
	if (sc->max_inflight && (double)g.inflight >= ceiling * (double)sc->max_inflight)
		return false;
	if (sc->max_inflight_bytes &&
	    (g.inflight_bytes + bytes > sc->max_inflight_bytes ||
	     (ceiling < 1.0 &&
	      (double)g.inflight_bytes >= ceiling * (double)sc->max_inflight_bytes)))
		return false;
	return true;
}

/* ---- the completion ---- */

static bool
edf_like(const struct flowq_ordering_ops *o)
{
	return o == flowq_ordering_find("edf") ||
	       o == flowq_ordering_find("slo_deadline");
}

static int64_t
order_key(const struct fz_req *r, const struct flowq_ordering_ops *o)
{
	if (o == flowq_ordering_find("edf"))
		return oheap_key(r->expiry != INT64_MAX, r->expiry, r->t_sub);
	return oheap_key(r->req.deadline_ns != 0, r->req.deadline_ns, r->t_sub);
}

/* At the dispatch of @p r: nothing more important waits on its shard, and
 * its flow's ordering chose it. */
static void
check_dispatch_order(const struct fz_req *r)
{
	struct fz_bandcfg bc = bandcfg_of(r->key.prio);
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *q = &g.pool[i];
		if (q == r || q->st != FZ_QUEUED || q->shard != r->shard)
			continue;
		FZ_CHECK(q->key.prio <= r->key.prio,
			 "strict priority: request %zu (priority %" PRId32
			 ") dispatched on shard %u while request %td (priority %" PRId32
			 ", expiry %" PRId64 ", now %" PRId64 ") waits there",
			 (size_t)(r - g.pool), r->key.prio, r->shard, q - g.pool,
			 q->key.prio, q->expiry, g.clock);
		if (!key_eq(&q->key, &r->key))
			continue;
		if (bc.ordering == flowq_ordering_find("fcfs"))
			FZ_CHECK(q->seq > r->seq,
				 "fcfs: request %td (seq %" PRIu64
				 ") dispatched before the older %td (seq %" PRIu64
				 ") of its flow",
				 r - g.pool, r->seq, q - g.pool, q->seq);
		else if (edf_like(bc.ordering)) {
			int64_t kr = order_key(r, bc.ordering),
				kq = order_key(q, bc.ordering);
			FZ_CHECK(kq > kr || (kq == kr && q->seq > r->seq),
				 "%s: request %td (key %" PRId64
				 ") dispatched before %td (key %" PRId64 ") of its flow",
				 bc.cfg->ordering, r - g.pool, kr, q - g.pool, kq);
		}
	}
}

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct fz_req *r = arg;
	size_t i = (size_t)(r - g.pool);
	FZ_CHECK(&r->req == req, "completion: arg does not match the request");
	FZ_CHECK(r->st == FZ_QUEUED, "completion of request %zu in model state %d (%s)",
		 i, (int)r->st,
		 r->st == FZ_REJECTED ? "rejected at submit" : "already completed");
	FZ_CHECK(g.polling >= 0 || g.destroying,
		 "completion of request %zu outside a poll or destroy", i);
	enum flowq_outcome o = flowq_req_outcome(req);
	enum flowq_cause c = flowq_req_cause(req);
	FZ_CHECK(o == FLOWQ_DISPATCHED || flowq_outcome_is_evicted(o),
		 "completion of request %zu with outcome %s", i, fz_outcome(o));
	FZ_CHECK(flowq_cause_valid_for(o, c), "request %zu: cause %s with outcome %s", i,
		 flowq_cause_str(c), fz_outcome(o));
	FZ_CHECK((o == FLOWQ_EVICTED_CANCELLED) == r->cancelled,
		 "request %zu: outcome %s, cancel %s", i, fz_outcome(o),
		 r->cancelled ? "won" : "not called or lost");
	if (g.polling >= 0)
		FZ_CHECK(r->shard == (unsigned)g.polling,
			 "request %zu of shard %u completed by a poll of shard %d", i,
			 r->shard, g.polling);
	if (g.destroying)
		FZ_CHECK(o == FLOWQ_EVICTED_CANCELLED ||
				 (o == FLOWQ_EVICTED_OTHER && c == FLOWQ_CAUSE_SHUTDOWN),
			 "request %zu: outcome %s/%s during destroy", i, fz_outcome(o),
			 flowq_cause_str(c));
	if (o == FLOWQ_EVICTED_OTHER)
		FZ_CHECK(g.destroying, "request %zu evicted (other) outside destroy", i);
	if (o == FLOWQ_EVICTED_TTL) {
		FZ_CHECK(g.clock >= r->expiry,
			 "request %zu expired early: now %" PRId64 ", expiry %" PRId64, i,
			 g.clock, r->expiry);
		FZ_CHECK((c == FLOWQ_CAUSE_DEADLINE_PASSED) == r->by_deadline,
			 "request %zu: expiry cause %s, set by the %s", i,
			 flowq_cause_str(c), r->by_deadline ? "deadline" : "TTL");
	}
	if (o == FLOWQ_EVICTED_DISPLACED)
		FZ_CHECK(strcmp(g.cfg.displacement, "none") != 0,
			 "request %zu displaced with displacement \"none\"", i);
	if (o == FLOWQ_DISPATCHED) {
		FZ_CHECK(g.clock < r->expiry,
			 "request %zu dispatched at %" PRId64
			 ", at or past its expiry %" PRId64,
			 i, g.clock, r->expiry);
		struct fz_bandcfg bc = bandcfg_of(r->key.prio);
		FZ_CHECK(gate_fits(bc.cfg->usage_ceiling, r->bytes),
			 "request %zu (%" PRIu64
			 " bytes, ceiling %g) dispatched with %" PRIu64
			 " requests / %" PRIu64 " bytes in flight (limits %" PRIu64
			 "/%" PRIu64 ")",
			 i, r->bytes, bc.cfg->usage_ceiling, g.inflight, g.inflight_bytes,
			 g.cfg.saturation.max_inflight,
			 g.cfg.saturation.max_inflight_bytes);
		check_dispatch_order(r);
		g.inflight++;
		g.inflight_bytes += r->bytes;
		g.poll_dispatched++;
	}
	/* Queue time: outcome time - submit time, a step back of the clock
	 * counting as 0 (flowq.h: durations are clamped). */
	uint64_t waited = g.clock > r->t_sub ? (uint64_t)(g.clock - r->t_sub) : 0;
	struct fz_band *b = band_of(r->key.prio);
	struct fz_counts *cs[2] = {&g.eng, &b->c};
	for (int k = 0; k < 2; k++) {
		count_outcome(cs[k], o, c);
		cs[k]->queued--;
		cs[k]->queued_bytes -= r->bytes;
		cs[k]->qt_count++;
		cs[k]->qt_sum += waited;
	}
	r->st = o == FLOWQ_DISPATCHED ? FZ_INFLIGHT : FZ_EVICTED;
	r->outcome = o;
	r->cause = c;
	g.poll_done++;
	if (g.destroying) {
		/* flowq.h: a completion during destroy may submit; it is
		 * refused and queues nothing. */
		flowq_req_init(&g.spare);
		g.spare.flow_id = "spare";
		g.spare.flow_id_len = 5;
		g.spare.complete = on_complete;
		g.spare.arg = NULL;
		int rc = flowq_submit(g.e, &g.spare);
		FZ_CHECK(rc == -ESHUTDOWN &&
				 flowq_req_outcome(&g.spare) == FLOWQ_REJECTED_OTHER &&
				 flowq_req_cause(&g.spare) == FLOWQ_CAUSE_SHUTDOWN,
			 "submit during destroy returned %d (%s/%s)", rc,
			 fz_outcome(flowq_req_outcome(&g.spare)),
			 flowq_cause_str(flowq_req_cause(&g.spare)));
	}
}

/* ---- checks after every step ---- */

static void
check_counts(const char *scope, int32_t prio, const struct flowq_stats *st,
	     const struct fz_counts *c)
{
	/* Byte counts are exact below 2^63 (flowq.h struct flowq_stats). */
	FZ_CHECK(st->queued == c->queued &&
			 (st->queued_bytes == c->queued_bytes || c->queued_bytes >> 63),
		 "%s %" PRId32 ": queued %" PRIu64 " requests / %" PRIu64
		 " bytes, model %" PRIu64 " / %" PRIu64,
		 scope, prio, st->queued, st->queued_bytes, c->queued, c->queued_bytes);
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++) {
		uint64_t sum = 0;
		for (int k = 0; k < FLOWQ_CAUSE_COUNT; k++) {
			FZ_CHECK(st->causes[o][k] == c->causes[o][k],
				 "%s %" PRId32 ": %s/%s counted %" PRIu64
				 ", model %" PRIu64,
				 scope, prio, fz_outcome(o), flowq_cause_str(k),
				 st->causes[o][k], c->causes[o][k]);
			sum += c->causes[o][k];
		}
		FZ_CHECK(st->outcomes[o] == sum,
			 "%s %" PRId32 ": outcome %s counted %" PRIu64 ", model %" PRIu64,
			 scope, prio, fz_outcome(o), st->outcomes[o], sum);
	}
	uint64_t nb = 0;
	for (unsigned k = 0; k < FLOWQ_HIST_BUCKETS; k++)
		nb += st->queue_time.buckets[k];
	FZ_CHECK(st->queue_time.count == c->qt_count && nb == c->qt_count &&
			 st->queue_time.sum_ns == c->qt_sum,
		 "%s %" PRId32 ": queue time count %" PRIu64 " (buckets %" PRIu64
		 ") sum %" PRIu64 " ns, model %" PRIu64 " / %" PRIu64
		 " ns (a negative duration?)",
		 scope, prio, st->queue_time.count, nb, st->queue_time.sum_ns,
		 c->qt_count, c->qt_sum);
}

/* Queued requests and bytes of the requests matching @p match. */
static void
held(bool (*match)(const struct fz_req *, const void *), const void *ctx, uint64_t *r_req,
     uint64_t *r_bytes)
{
	*r_req = *r_bytes = 0;
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *q = &g.pool[i];
		if (q->st == FZ_QUEUED && match(q, ctx)) {
			(*r_req)++;
			*r_bytes += q->bytes;
		}
	}
}

static bool
match_all(const struct fz_req *q, const void *ctx)
{
	(void)q;
	(void)ctx;
	return true;
}

static bool
match_band(const struct fz_req *q, const void *ctx)
{
	return q->key.prio == *(const int32_t *)ctx;
}

static bool
match_flow(const struct fz_req *q, const void *ctx)
{
	return key_eq(&q->key, ctx);
}

static void
check_limit(const char *what, uint64_t n, uint64_t bytes, uint64_t max_n,
	    uint64_t max_bytes, uint64_t slack_n, uint64_t slack_bytes)
{
	FZ_CHECK(!max_n || n <= max_n + slack_n,
		 "capacity: %s holds %" PRIu64 " requests, limit %" PRIu64 " (+%" PRIu64
		 ")",
		 what, n, max_n, slack_n);
	FZ_CHECK(!max_bytes || bytes <= max_bytes + slack_bytes,
		 "capacity: %s holds %" PRIu64 " bytes, limit %" PRIu64 " (+%" PRIu64 ")",
		 what, bytes, max_bytes, slack_bytes);
}

static bool
displacing(void)
{
	return strcmp(g.cfg.displacement, "none") != 0;
}

static void
check_all(void)
{
	/* Each request's state word agrees with the model. */
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *r = &g.pool[i];
		enum flowq_outcome o = flowq_req_outcome(&r->req);
		switch (r->st) {
		case FZ_IDLE:
			FZ_CHECK(o == FLOWQ_PENDING, "idle request %zu has outcome %s", i,
				 fz_outcome(o));
			break;
		case FZ_QUEUED:
			FZ_CHECK(o == (r->cancelled ? FLOWQ_EVICTED_CANCELLED
						    : FLOWQ_PENDING),
				 "queued request %zu has outcome %s", i, fz_outcome(o));
			break;
		default:
			FZ_CHECK(o == r->outcome && flowq_req_cause(&r->req) == r->cause,
				 "finished request %zu: outcome %s/%s, model %s/%s", i,
				 fz_outcome(o), flowq_cause_str(flowq_req_cause(&r->req)),
				 fz_outcome(r->outcome), flowq_cause_str(r->cause));
			FZ_CHECK(flowq_req_released(&r->req) == (r->st == FZ_RELEASED),
				 "request %zu: released flag disagrees", i);
		}
	}
	if (!g.e)
		return;

	/* Conservation: the engine's counters are the model's. */
	struct flowq_stats st;
	FZ_CHECK(flowq_stats_engine(g.e, &st) == 0, "flowq_stats_engine failed");
	check_counts("engine", 0, &st, &g.eng);
	uint64_t outcomes = 0;
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		outcomes += st.outcomes[o];
	FZ_CHECK(g.submits == outcomes + st.queued,
		 "conservation: %" PRIu64 " submits, %" PRIu64 " outcomes + %" PRIu64
		 " queued",
		 g.submits, outcomes, st.queued);
	FZ_CHECK(st.inflight == g.inflight && (st.inflight_bytes == g.inflight_bytes ||
					       g.inflight_bytes >> 63),
		 "in flight %" PRIu64 " / %" PRIu64 " bytes, model %" PRIu64
		 " / %" PRIu64,
		 st.inflight, st.inflight_bytes, g.inflight, g.inflight_bytes);
	for (size_t i = 0; i < g.nsb; i++) {
		struct fz_band *b = &g.sb[i];
		int rc = flowq_stats_band(g.e, b->prio, &st);
		if (rc == -ENOENT) {
			/* Never made, or a collected template band: its counts
			 * live on only in the engine's (flowq.h). */
			FZ_CHECK(b->c.queued == 0 && !prio_configured(b->prio),
				 "band %" PRId32 " gone with %" PRIu64 " requests queued",
				 b->prio, b->c.queued);
			memset(&b->c, 0, sizeof(b->c));
			continue;
		}
		FZ_CHECK(rc == 0, "flowq_stats_band(%" PRId32 ") = %d", b->prio, rc);
		check_counts("band", b->prio, &st, &b->c);
	}

	/* Capacity. */
	uint64_t n, by, slack = displacing() ? g.cfg.displacement_max_pending : 0;
	held(match_all, NULL, &n, &by);
	check_limit("the engine", n, by, g.cfg.max_requests, g.cfg.max_bytes, slack,
		    slack * g.max_bytes_seen);
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *r = &g.pool[i];
		if (r->st != FZ_QUEUED)
			continue;
		struct fz_bandcfg bc = bandcfg_of(r->key.prio);
		held(match_band, &r->key.prio, &n, &by);
		check_limit("a band", n, by, bc.cfg->max_requests, bc.cfg->max_bytes, 0,
			    0);
		held(match_flow, &r->key, &n, &by);
		check_limit("a flow", n, by, g.cfg.flow_max_requests,
			    g.cfg.flow_max_bytes, 0, 0);
		int rc = flowq_stats_flow(g.e, r->key.id, r->key.len, r->key.prio, &st);
		FZ_CHECK(rc == 0 && st.queued == n,
			 "flow of request %zu: stats %d, queued %" PRIu64
			 ", model %" PRIu64,
			 i, rc, rc == 0 ? st.queued : 0, n);
	}
}

/* After a poll of shard @p s with @p budget that returned @p next. */
static void
check_after_poll(unsigned s, unsigned budget, int64_t next)
{
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *r = &g.pool[i];
		if (r->st != FZ_QUEUED || r->shard != s)
			continue;
		FZ_CHECK(!r->cancelled,
			 "request %zu cancelled but not completed by a poll", i);
		FZ_CHECK(r->expiry > g.clock,
			 "request %zu expired at %" PRId64
			 " still queued after a poll at %" PRId64,
			 i, r->expiry, g.clock);
		FZ_CHECK(next <= r->expiry,
			 "poll of shard %u: next deadline %" PRId64
			 " after request %zu's expiry %" PRId64,
			 s, next, i, r->expiry);
	}
	if (budget)
		return;
	/* Work conserving: a full poll stops only at a closed gate, which one
	 * of the waiting requests must not fit (cross-shard yields aside). */
	if (g.cfg.shards > 1 && gate_scarce())
		return;
	bool any = false, blocked = false;
	for (size_t i = 0; i < FZ_POOL; i++) {
		const struct fz_req *r = &g.pool[i];
		if (r->st != FZ_QUEUED || r->shard != s)
			continue;
		any = true;
		if (!gate_fits(bandcfg_of(r->key.prio).cfg->usage_ceiling, r->bytes))
			blocked = true;
	}
	FZ_CHECK(!any || blocked,
		 "poll of shard %u left requests waiting that the gate admits (%" PRIu64
		 " in flight)",
		 s, g.inflight);
}

/* ---- configuration ---- */

static size_t
ops_count(const void *(*at)(size_t))
{
	size_t n = 0;
	while (at(n))
		n++;
	return n;
}

static const void *
fair_at(size_t i)
{
	return flowq_fairness_at(i);
}

static const void *
order_at(size_t i)
{
	return flowq_ordering_at(i);
}

static const void *
disp_at(size_t i)
{
	return flowq_displacement_at(i);
}

static uint64_t
lim_req(uint8_t b)
{
	static const uint64_t v[] = {0, 0, 0, 1, 2, 3, 5, 8};
	return v[b % 8];
}

static uint64_t
lim_bytes(uint8_t b)
{
	static const uint64_t v[] = {0, 0, 0, 1, 100, 1000, 5000, 1 << 20};
	return v[b % 8];
}

static double
ceiling(uint8_t b)
{
	static const double v[] = {1.0, 1.0, 0.75, 0.5};
	return v[b % 4];
}

static int
cmp_prio_desc(const void *a, const void *b)
{
	const struct flowq_band_config *x = a, *y = b;
	return (x->priority < y->priority) - (x->priority > y->priority);
}

static void
band_fill(struct flowq_band_config *bc, struct fz_in *in, size_t nfair, size_t nord)
{
	uint8_t b = in_u8(in);
	bc->fairness = flowq_fairness_at(b % nfair)->desc.name;
	bc->ordering = flowq_ordering_at((b >> 4) % nord)->desc.name;
	b = in_u8(in);
	bc->max_requests = lim_req(b);
	bc->max_bytes = lim_bytes(b >> 3);
	bc->usage_ceiling = ceiling(b >> 6);
	static const uint64_t q[] = {0, 1, 100, 4096};
	bc->quantum = q[in_u8(in) % 4];
}

static bool
config_make(struct fz_in *in)
{
	flowq_config_init(&g.cfg);
	struct flowq_config *c = &g.cfg;
	size_t nfair = ops_count(fair_at), nord = ops_count(order_at),
	       ndisp = ops_count(disp_at);
	uint8_t b = in_u8(in);
	c->mode = FLOWQ_MODE_POLLED;
	c->shards = 1 + b % 3;
	c->nbands = 1 + (b >> 2) % 4;
	c->default_band_enabled = (b >> 4) & 1;
	c->displacement = flowq_displacement_at((size_t)(b >> 5) % ndisp)->desc.name;
	for (size_t i = 0; i < c->nbands; i++) {
		g.bands[i] = c->default_band;
		g.bands[i].priority = (int8_t)in_u8(in);
		for (size_t k = 0; k < i; k++)
			if (g.bands[k].priority == g.bands[i].priority)
				g.bands[i].priority =
					g.bands[i].priority + 1000 + (int32_t)i;
		band_fill(&g.bands[i], in, nfair, nord);
	}
	/* Ceilings must not increase toward less important bands. */
	qsort(g.bands, c->nbands, sizeof(g.bands[0]), cmp_prio_desc);
	for (size_t i = 1; i < c->nbands; i++)
		if (g.bands[i].usage_ceiling > g.bands[i - 1].usage_ceiling)
			g.bands[i].usage_ceiling = g.bands[i - 1].usage_ceiling;
	c->bands = g.bands;
	band_fill(&c->default_band, in, nfair, nord);
	b = in_u8(in);
	c->max_requests = lim_req(b);
	c->max_bytes = lim_bytes(b >> 3);
	b = in_u8(in);
	c->flow_max_requests = lim_req(b);
	c->flow_max_bytes = lim_bytes(b >> 3);
	b = in_u8(in);
	c->saturation.max_inflight = lim_req(b);
	c->saturation.max_inflight_bytes = lim_bytes(b >> 3);
	b = in_u8(in);
	c->displacement_max_pending = 1 + b % 4;
	static const int64_t ttl[] = {FLOWQ_TTL_NONE, FLOWQ_TTL_NONE, 1000, 1000000};
	c->default_ttl_ns = ttl[(b >> 2) % 4];
	static const int64_t gc[] = {INT64_C(10000000000), 1000, 1000000, 1};
	c->flow_gc_timeout_ns = gc[(b >> 4) % 4];
	static const unsigned batch[] = {32, 1, 2, 4096};
	c->dispatch_batch = batch[(b >> 6) % 4];
	c->registry_buckets = 1;
	c->clock = NULL; /* set by the caller */
	g.clock = (int64_t)in_u16(in) * 1000000;
	return true;
}

/* ---- operations ---- */

/* The longest id and one byte more (filled at the first input). */
static uint8_t id_long[FLOWQ_FLOW_ID_MAX + 1];

/* Fill @p k (and the id bytes a request points to) from the selector. */
static void
pick_id(struct fz_in *in, struct fz_key *k, const void **r_id)
{
	static const struct {
		const char *id;
		uint32_t len;
	} ids[] = {
		{"a", 1},     {"b", 1},        {"tenant-c", 8}, {"\0", 1},
		{"\0x\0", 3}, {"\xff\xfe", 2}, {"", 0},         {NULL, 3},
	};
	uint8_t b = in_u8(in);
	const void *id;
	if (b < 0x80) {
		unsigned i = b % 10;
		if (i < 8) {
			id = ids[i].id;
			k->len = ids[i].len;
		} else {
			id = id_long;
			k->len = i == 8 ? FLOWQ_FLOW_ID_MAX : FLOWQ_FLOW_ID_MAX + 1;
		}
	} else {
		/* Bytes from the input. */
		k->len = 1 + (b & 7);
		for (uint32_t i = 0; i < k->len; i++)
			k->id[i] = in_u8(in);
		id = NULL;
		*r_id = k->id;
		return;
	}
	if (id)
		memcpy(k->id, id, k->len <= FLOWQ_FLOW_ID_MAX + 1 ? k->len : 0);
	*r_id = id;
}

static int32_t
pick_prio(struct fz_in *in)
{
	uint8_t b = in_u8(in);
	switch (b % 4) {
	case 0:
	case 1:
		return g.bands[(b >> 2) % g.cfg.nbands].priority;
	case 2: {
		static const int32_t v[] = {0, 1, -1, 7, INT32_MIN, INT32_MAX, -100, 100};
		return v[(b >> 2) % 8];
	}
	default:
		return (int8_t)in_u8(in);
	}
}

static bool
id_valid(const void *id, uint32_t len)
{
	return id && len > 0 && len <= FLOWQ_FLOW_ID_MAX;
}

static void
op_submit(struct fz_in *in, bool reinit)
{
	struct fz_req *r = &g.pool[in_u8(in) % FZ_POOL];
	bool busy = r->st == FZ_QUEUED || r->st == FZ_INFLIGHT;
	uint8_t sel = in_u8(in);
	if (busy || (!reinit && r->st != FZ_IDLE)) {
		/* A double submit: refused, nothing changes. */
		enum flowq_outcome before = flowq_req_outcome(&r->req);
		int rc = flowq_submit(g.e, &r->req);
		FZ_CHECK(rc == -EBUSY && flowq_req_outcome(&r->req) == before,
			 "double submit of request %td (state %d) returned %d",
			 r - g.pool, (int)r->st, rc);
		return;
	}
	if (reinit) {
		flowq_req_init(&r->req);
		r->req.complete = on_complete;
		r->req.arg = r;
	}
	r->cancelled = false;
	const void *id = NULL;
	struct fz_handle *h = (sel & 1) ? &g.handles[(sel >> 1) % FZ_HANDLES] : NULL;
	if (h && !h->flow)
		h = NULL;
	if (reinit) {
		pick_id(in, &r->key, &id);
		r->key.prio = pick_prio(in);
		if (id == r->key.id) {
			memcpy(r->idbuf, r->key.id, r->key.len);
			id = r->idbuf;
		}
		r->req.flow_id = id;
		r->req.flow_id_len = r->key.len;
		r->req.priority = r->key.prio;
		if (h) {
			r->req.flow = h->flow;
			r->key = h->key;
		}
		static const uint64_t sizes[] = {
			0,
			1,
			10,
			100,
			1000,
			4096,
			65536,
			1 << 20,
			FLOWQ_LIMIT_MAX,
			FLOWQ_LIMIT_MAX + 1,
			UINT64_MAX,
			7,
		};
		uint8_t b = in_u8(in);
		r->req.bytes = sizes[b % 12];
		static const int64_t ttls[] = {
			0,          FLOWQ_TTL_NONE, 1,  500, 100000, 10000000,
			1000000000, INT64_MAX - 1,  -1, 0,   0,      0,
		};
		r->req.ttl_ns = ttls[(b >> 4) % 12];
		b = in_u8(in);
		int64_t now = g.clock;
		const int64_t dls[] = {
			0,   0,       0, now + 1,   now + 100000, now + 10000000,
			now, now - 1, 1, INT64_MAX, now + 1000,   0,
		};
		r->req.deadline_ns = dls[b % 12];
	} else {
		/* A never-submitted request: the fields flowq_req_init() left. */
		memset(&r->key, 0, sizeof(r->key));
		id = NULL;
	}

	/* What the call must do (flowq.h flowq_submit()). */
	bool invalid = !r->req.complete || r->req.ttl_ns < 0 ||
		       r->req.bytes > FLOWQ_LIMIT_MAX ||
		       (!r->req.flow && !id_valid(r->req.flow_id, r->req.flow_id_len));
	/* More bytes than the in-flight, global or flow byte limit: could
	 * never be dispatched, refused before the flow lookup; more than the
	 * band's (known once the band is): refused after it. */
	bool oversize = (g.cfg.saturation.max_inflight_bytes &&
			 r->req.bytes > g.cfg.saturation.max_inflight_bytes) ||
			(g.cfg.max_bytes && r->req.bytes > g.cfg.max_bytes) ||
			(g.cfg.flow_max_bytes && r->req.bytes > g.cfg.flow_max_bytes);
	int64_t now = g.clock;
	int64_t ttl = r->req.ttl_ns ? r->req.ttl_ns : g.cfg.default_ttl_ns;
	int64_t expire = ttl == FLOWQ_TTL_NONE || ttl < 0 ? INT64_MAX
			 : now > INT64_MAX - ttl          ? INT64_MAX
							  : now + ttl;
	bool by_deadline = false;
	if (r->req.deadline_ns && r->req.deadline_ns < expire) {
		expire = r->req.deadline_ns;
		by_deadline = true;
	}
	bool known_band = r->req.flow || prio_configured(r->key.prio);
	struct fz_bandcfg bc = bandcfg_of(r->key.prio);
	uint64_t by = r->req.bytes, n[3], nb[3];
	held(match_all, NULL, &n[0], &nb[0]);
	held(match_band, &r->key.prio, &n[1], &nb[1]);
	held(match_flow, &r->key, &n[2], &nb[2]);
	const uint64_t maxn[3] = {g.cfg.max_requests, bc.cfg->max_requests,
				  g.cfg.flow_max_requests};
	const uint64_t maxb[3] = {g.cfg.max_bytes, bc.cfg->max_bytes,
				  g.cfg.flow_max_bytes};
	bool band_oversize = maxb[1] && by > maxb[1];
	bool full[3];
	for (int l = 0; l < 3; l++)
		full[l] = (maxn[l] && n[l] + 1 > maxn[l]) ||
			  (maxb[l] && nb[l] + by > maxb[l]);

	int rc = flowq_submit(g.e, &r->req);
	enum flowq_outcome o = flowq_req_outcome(&r->req);
	enum flowq_cause c = flowq_req_cause(&r->req);
	size_t i = (size_t)(r - g.pool);
	g.submits++;
	if (invalid)
		FZ_CHECK(rc == -EINVAL, "submit %zu: invalid request returned %d", i, rc);
	else if (oversize || (rc != -ENOENT && band_oversize))
		FZ_CHECK(rc == -EMSGSIZE && o == FLOWQ_REJECTED_OTHER &&
				 c == FLOWQ_CAUSE_INVALID_REQUEST,
			 "submit %zu: %" PRIu64 " bytes over a byte limit returned "
			 "%d with %s/%s",
			 i, r->req.bytes, rc, fz_outcome(o), flowq_cause_str(c));
	else if (rc == -ENOENT)
		FZ_CHECK(!known_band, "submit %zu: -ENOENT for a configured band", i);
	else if (rc == -ENOMEM)
		FZ_CHECK(0, "submit %zu: -ENOMEM without an allocation failure", i);
	else if (expire <= now)
		FZ_CHECK(rc == -ETIMEDOUT, "submit %zu: expired at submit, returned %d",
			 i, rc);
	else
		FZ_CHECK(rc == 0 || rc == -ENOSPC, "submit %zu returned %d", i, rc);
	if (rc == -ENOSPC) {
		int l = c == FLOWQ_CAUSE_CAPACITY_GLOBAL ? 0
			: c == FLOWQ_CAUSE_CAPACITY_BAND ? 1
			: c == FLOWQ_CAUSE_CAPACITY_FLOW ? 2
							 : -1;
		FZ_CHECK(o == FLOWQ_REJECTED_CAPACITY && l >= 0,
			 "submit %zu: -ENOSPC with %s/%s", i, fz_outcome(o),
			 flowq_cause_str(c));
		/* Exact at the limit (capacity.h I3): every earlier outcome
		 * has given its capacity back by now (polls give back at the
		 * end of the round; a cancelled request holds it until its
		 * completion, as the model does). Displacement's debts make
		 * the global level inexact. */
		if (!(l == 0 && displacing()))
			FZ_CHECK(full[l],
				 "submit %zu: rejected (%s) with room: %" PRIu64
				 " requests / %" PRIu64 " bytes held of %" PRIu64
				 " / %" PRIu64 ", %" PRIu64 " more bytes",
				 i, flowq_cause_str(c), n[l], nb[l], maxn[l], maxb[l],
				 by);
	}
	if (rc == 0) {
		FZ_CHECK(o == FLOWQ_PENDING, "submit %zu: 0 with outcome %s", i,
			 fz_outcome(o));
		FZ_CHECK(!full[1] && !full[2], "submit %zu admitted past a %s limit", i,
			 full[1] ? "band" : "flow");
		if (full[0])
			FZ_CHECK(displacing(),
				 "submit %zu admitted past the global limit", i);
		struct flowq_flow *f = r->req.priv.owner;
		r->st = FZ_QUEUED;
		r->shard = f->shard->index;
		FZ_CHECK(f->band->priority == r->key.prio,
			 "submit %zu queued in band %" PRId32 ", expected %" PRId32, i,
			 f->band->priority, r->key.prio);
		r->t_sub = now;
		r->expiry = expire;
		r->by_deadline = by_deadline;
		r->seq = g.seq++;
		r->bytes = by;
		if (by > g.max_bytes_seen)
			g.max_bytes_seen = by;
		struct fz_band *b = band_of(r->key.prio);
		g.eng.queued++;
		g.eng.queued_bytes += by;
		b->c.queued++;
		b->c.queued_bytes += by;
		return;
	}
	FZ_CHECK(flowq_outcome_is_rejected(o) && flowq_cause_valid_for(o, c),
		 "submit %zu returned %d with %s/%s", i, rc, fz_outcome(o),
		 flowq_cause_str(c));
	r->st = FZ_REJECTED;
	r->outcome = o;
	r->cause = c;
	count_outcome(&g.eng, o, c);
	/* Rejections after the flow was found count in its band too
	 * (capacity, deadline, more bytes than the band's limit). */
	if (c == FLOWQ_CAUSE_CAPACITY_GLOBAL || c == FLOWQ_CAUSE_CAPACITY_BAND ||
	    c == FLOWQ_CAUSE_CAPACITY_FLOW || c == FLOWQ_CAUSE_DEADLINE_PASSED ||
	    (rc == -EMSGSIZE && !oversize))
		count_outcome(&band_of(r->key.prio)->c, o, c);
}

static void
op_cancel(struct fz_in *in)
{
	struct fz_req *r = &g.pool[in_u8(in) % FZ_POOL];
	int rc = flowq_cancel(g.e, &r->req);
	if (r->st == FZ_QUEUED && !r->cancelled) {
		FZ_CHECK(rc == 0, "cancel of queued request %td returned %d", r - g.pool,
			 rc);
		r->cancelled = true;
	} else {
		FZ_CHECK(rc == -EALREADY, "cancel of request %td in state %d returned %d",
			 r - g.pool, (int)r->st, rc);
	}
}

static void
op_release(struct fz_in *in)
{
	struct fz_req *r = &g.pool[in_u8(in) % FZ_POOL];
	int rc = flowq_release(g.e, &r->req);
	int want = r->st == FZ_INFLIGHT ? 0 : r->st == FZ_RELEASED ? -EALREADY : -EINVAL;
	FZ_CHECK(rc == want,
		 "release of request %td in state %d returned %d, expected %d",
		 r - g.pool, (int)r->st, rc, want);
	if (rc == 0) {
		r->st = FZ_RELEASED;
		g.inflight--;
		g.inflight_bytes -= r->bytes;
	}
}

static void
poll_shard(unsigned s, unsigned budget)
{
	int64_t next = -1;
	g.polling = (int)s;
	g.poll_done = g.poll_dispatched = 0;
	int rc = flowq_shard_poll(g.e, s, budget, &next);
	g.polling = -1;
	if (s >= g.cfg.shards) {
		FZ_CHECK(rc == -EINVAL && g.poll_done == 0,
			 "poll of shard %u of %u returned %d", s, g.cfg.shards, rc);
		return;
	}
	FZ_CHECK(rc >= 0 && (unsigned)rc == g.poll_done,
		 "poll of shard %u returned %d, %u completions ran", s, rc, g.poll_done);
	FZ_CHECK(!budget || g.poll_dispatched <= budget,
		 "poll of shard %u with budget %u dispatched %u", s, budget,
		 g.poll_dispatched);
	check_after_poll(s, budget, next);
}

static void
op_poll(struct fz_in *in)
{
	uint8_t b = in_u8(in);
	static const unsigned budgets[] = {0, 0, 1, 2, 3, 0, 1, 0};
	poll_shard(b % (g.cfg.shards + 1), budgets[(b >> 4) % 8]);
}

static void
op_poll_all(void)
{
	for (unsigned s = 0; s < g.cfg.shards; s++)
		poll_shard(s, 0);
}

static void
clock_set(int64_t t)
{
	g.clock = t < 0 ? 0 : t > FZ_CLOCK_MAX ? FZ_CLOCK_MAX : t;
}

static void
op_clock(struct fz_in *in, unsigned kind)
{
	int64_t v = in_u8(in);
	switch (kind) {
	case 0: /* small */
		clock_set(g.clock + v * 1000);
		break;
	case 1: /* large: up to ~4 min */
		clock_set(g.clock + v * 1000000000);
		break;
	case 2: /* huge: years */
		clock_set(g.clock + (v << 52));
		break;
	default: /* a step back (clock hook faults: clamped durations) */
		clock_set(g.clock - v * 1000);
		break;
	}
}

static void
op_flow_get(struct fz_in *in)
{
	struct fz_handle *h = &g.handles[in_u8(in) % FZ_HANDLES];
	if (h->flow) {
		flowq_flow_put(g.e, h->flow);
		h->flow = NULL;
	}
	struct fz_key k;
	const void *id;
	pick_id(in, &k, &id);
	k.prio = pick_prio(in);
	struct flowq_flow *f = NULL;
	int rc = flowq_flow_get(g.e, id, k.len, k.prio, &f);
	if (!id_valid(id, k.len))
		FZ_CHECK(rc == -EINVAL, "flow_get with a bad id returned %d", rc);
	else if (prio_configured(k.prio) || g.cfg.default_band_enabled)
		FZ_CHECK(rc == 0 || (rc == -ENOENT && !prio_configured(k.prio)),
			 "flow_get returned %d", rc);
	else
		FZ_CHECK(rc == -ENOENT, "flow_get of an unknown band returned %d", rc);
	if (rc == 0) {
		FZ_CHECK(f && f->band->priority == k.prio && f->id_len == k.len,
			 "flow_get returned another flow");
		h->flow = f;
		h->key = k;
	}
}

static void
op_flow_put(struct fz_in *in)
{
	struct fz_handle *h = &g.handles[in_u8(in) % FZ_HANDLES];
	flowq_flow_put(g.e, h->flow); /* NULL is ignored */
	h->flow = NULL;
}

static void
op_weight(struct fz_in *in)
{
	struct fz_handle *h = &g.handles[in_u8(in) % FZ_HANDLES];
	static const uint32_t w[] = {0, 1, 2, 3, 100, 65535, 65536, UINT32_MAX};
	uint32_t v = w[in_u8(in) % 8];
	int rc = flowq_flow_set_weight(h->flow, v);
	FZ_CHECK(rc == ((h->flow && v >= 1 && v <= 65535) ? 0 : -EINVAL),
		 "set_weight(%" PRIu32 ") returned %d", v, rc);
}

static void
engine_destroy(void)
{
	for (size_t i = 0; i < FZ_HANDLES; i++) {
		if (g.handles[i].flow)
			flowq_flow_put(g.e, g.handles[i].flow);
		g.handles[i].flow = NULL;
	}
	g.destroying = true;
	flowq_engine_destroy(g.e);
	g.destroying = false;
	g.e = NULL;
	for (size_t i = 0; i < FZ_POOL; i++)
		FZ_CHECK(g.pool[i].st != FZ_QUEUED,
			 "request %zu still queued after destroy (no completion)", i);
}

static int64_t
fz_clock(void *ctx)
{
	(void)ctx;
	return g.clock;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * One engine kept for the process's life: liburcu starts its hash-table
 * resize worker with the first table and stops it with the last, so
 * without it every input would start and join a thread (a third of the
 * time per input).
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static struct flowq_engine *keep;
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_POLLED;
	c.shards = 1;
	if (flowq_engine_create(&c, &keep))
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	if (id_long[0] != 'L')
		memset(id_long, 'L', sizeof(id_long));
	memset(&g, 0, sizeof(g));
	g.polling = -1;
	config_make(&in);
	g.cfg.clock = fz_clock;
	char err[256];
	g.cfg.errbuf = err;
	g.cfg.errbuf_size = sizeof(err);
	int rc = flowq_engine_create(&g.cfg, &g.e);
	if (rc) {
		/* Only an invalid configuration may be refused. */
		FZ_CHECK(rc == -EINVAL && err[0] != '\0',
			 "engine_create returned %d (%s)", rc, err);
		return 0;
	}
	for (size_t i = 0; i < FZ_POOL; i++) {
		flowq_req_init(&g.pool[i].req);
		g.pool[i].st = FZ_IDLE;
	}
	check_all();
	while (in.n && g.e) {
		uint8_t op = in_u8(&in);
		switch (op % 16) {
		case 0:
		case 1:
		case 2:
			op_submit(&in, true);
			break;
		case 3:
			op_submit(&in, false);
			break;
		case 4:
			op_cancel(&in);
			break;
		case 5:
			op_release(&in);
			break;
		case 6:
		case 7:
			op_poll(&in);
			break;
		case 8:
			op_poll_all();
			break;
		case 9:
			op_clock(&in, 0);
			break;
		case 10:
			op_clock(&in, (op >> 4) % 4);
			break;
		case 11:
			op_flow_get(&in);
			break;
		case 12:
			op_flow_put(&in);
			break;
		case 13:
			op_weight(&in);
			break;
		case 14:
			op_release(&in);
			break;
		default:
			if (op == 0xff) {
				engine_destroy(); /* with whatever is queued */
				break;
			}
			op_poll_all();
			break;
		}
		check_all();
	}
	if (g.e)
		engine_destroy();
	check_all();
	return 0;
}
