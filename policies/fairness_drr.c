/*
 * Fairness "drr": deficit round robin in bytes with per-flow weights
 * (M. Shreedhar and G. Varghese, "Efficient Fair Queuing using Deficit Round
 * Robin", SIGCOMM 1995), O(1) per decision whatever the request sizes.
 *
 * The textbook algorithm. Backlogged flows are visited in rounds. At each
 * visit a flow of weight w is credited w * Q bytes (Q: the band's quantum,
 * env->quantum) to its deficit counter DC, and is served while its head
 * request fits, DC >= cost(head), each request taking its cost from DC; when
 * the head does not fit the flow keeps its DC and waits for its next visit.
 * A flow that empties loses its DC (no banked credit) and, when it becomes
 * backlogged again, joins behind every flow already waiting.
 * cost(request) = max(bytes, 1): a zero-byte request costs one byte, so a
 * flow of zero-byte requests gets at most w * Q of them per visit and cannot
 * hold the band (with cost 0 the textbook loop would serve it for ever).
 *
 * The problem with the textbook form is a request larger than w * Q: the
 * flow is visited ceil(cost / (w * Q)) times before it is served, each visit
 * a step of the scheduler (the "O(1) if Q >= Max" condition of the paper).
 * Here the number of visits is computed instead of made:
 *
 * Rounds. The band counts rounds (b->round, the current one). Each
 * backlogged flow carries the round in which it is served next and its
 * credit *as of that round* (the DC it will have after that round's visit).
 * When a turn ends because the head does not fit (DC < cost), the flow
 * would be visited without service for k - 1 rounds and served at the k-th,
 * with k = ceil((cost - DC) / (w * Q)): it goes straight to round
 * round + k with credit DC + k * w * Q, one division. A flow that becomes
 * backlogged starts from DC = 0 at the current round, so with
 * k = ceil(cost / (w * Q)) >= 1 (never in the current round: a newcomer
 * queues behind the flows already served in it, as on the textbook's
 * tail-appended active list). While heads do not change, the result is the
 * textbook schedule, round for round; only the order *within* a round can
 * differ (see "Data structure" for the order).
 *
 * Data structure. Most flows are scheduled one round ahead (every flow
 * whose head fits in w * Q bytes, k = 1), so the current and the next
 * round are kept in one flow ring (flow_ring.h: a FIFO in an array, with a
 * look-ahead prefetch), split at its mark: the flows of the current round
 * not yet done with it from the front up to the mark, then the flows
 * scheduled for the next round; when the band moves on, the mark moves to
 * the tail. Flows scheduled 2 to 63 rounds ahead (and the rare flow of
 * "Places" below, one round ahead) go to a timing wheel of
 * DRR_WHEEL = 64 round buckets (FIFO lists) with a 64-bit occupancy word,
 * and flows scheduled further ahead ("far": a head larger than
 * 63 * w * Q bytes) to a 4-ary heap (flow_heap.h's flowq__kheap) by
 * (round, scheduling order). pick() is the ring's front if it is before the
 * mark, else the front of the current round's bucket, else the far heap's
 * top when its round is the current one: within a round, the flows
 * scheduled one round ahead go first, in the order they were scheduled,
 * then the wheel's, then the far ones. When the current round has no flow
 * left the band moves to the next round that has one: the next if the ring
 * has flows after the mark, else a rotate and a count of trailing zeros of
 * the occupancy word, compared with the far heap's top, so empty rounds
 * cost nothing.
 *
 * Places. A flow that leaves the ring from the middle keeps its place (a
 * tombstone, flow_ring.h) until the front passes it. Scheduled for the next
 * round again, it takes that place back if it is after the mark (the next
 * round's part). A place before the mark is in the current round, where a
 * rescheduled flow must not be served again, and the ring gives a flow one
 * place at a time: that flow waits for the next round in the wheel's
 * bucket instead (it is served after the ring's flows of that round). That
 * takes a change of head (an eviction, or a new first request under edf)
 * that ends the turn of a flow waiting in the current round, so it is rare,
 * and the ring needs one slot per flow.
 *
 * Why a ring: with the rounds' flows in lists linked through the flows'
 * states, finding the next flow meant reading the current one's state, a
 * dependent cache miss per decision once the flows outnumber the caches
 * and the round's order is not their memory order (flow_ring.h). A flow
 * scheduled 2+ rounds ahead still waits in a linked bucket: those are flows
 * whose heads exceed a quantum, each visited once per several rounds.
 *
 * Cost per call: pick O(1); update and flow_backlogged O(1) (at most one
 * 64-bit division, skipped when the head fits in one quantum; amortized:
 * a ring's front passes the places of flows that left, once each), and
 * O(log F) only when the flow goes to or leaves the far heap, i.e. for a
 * request larger than 63 * w * Q bytes (258 KB at the default quantum and
 * weight 1). flow_attach/flow_detach amortized O(1) (the rings' and the far
 * heap's arrays, the only allocations). Memory: the view's two hot words
 * and 40 bytes of state per flow, about 1.1 KB per band and shard, plus
 * per attached flow 24-96 bytes of far heap and 8-32 bytes of ring slots
 * (flow_ring.h's sizing). A decision on a flow of the ring touches the
 * view's line only, never the state ("Per-flow state" below).
 *
 * Changes while waiting. A backlogged flow's head can change before its
 * turn (an eviction, or an ordering other than fcfs putting a new request
 * first): update(f, false, 0) reschedules it at the first round after the
 * current one at which its credit covers the new head (possibly earlier
 * than before, never in the current round, in which it may have had its
 * visit already; see "Places" for its place in the ring). A flow in the current round whose new head no longer
 * fits ends its turn as above. pick() never changes state (policy.h): a
 * pick that is not followed by a dispatch (the gate closed) leaves the
 * flow where it was.
 *
 * Bound. Let M_f be the largest cost (max(bytes, 1)) of a request flow f
 * had at the head of its queue, w_f its weight, Q the quantum, S_f the bytes
 * charged to f. Over any interval in which f stays backlogged and the band
 * advances R rounds:
 *     | S_f / w_f - R * Q |  <  Q + M_f / w_f,
 * i.e. a flow's lag behind (or lead over) its Q * w bytes per round stays
 * within one quantum plus one largest request per unit of weight; and for
 * two flows i and j both backlogged over an interval:
 *     | S_i / w_i - S_j / w_j |  <  2 Q + M_i / w_i + M_j / w_j.
 * With Q >= M (the paper's operating point) every flow stays within two
 * quanta of its share. The paper's "lag within one quantum" is about its
 * deficit counter, which here too is in [0, M_f) at the end of every turn.
 * Why: let e_f be the round f is scheduled for and c_f its credit as of
 * e_f. A dispatch moves bytes from c_f to S_f, and every reschedule moves
 * e_f by some k and c_f by k * w_f * Q, so (S_f + c_f) / w_f - Q * e_f is
 * constant while f is backlogged. Hence S_f / w_f = Q * round + D_f + const,
 * with D_f = Q * (e_f - round) - c_f / w_f. A flow is only ever scheduled
 * with c_f >= (e_f - round) * w_f * Q (it earns every round it skips) and
 * c_f < cost(head) + w_f * Q (it is scheduled at the first round that
 * covers its head), so D_f is in (-(Q + M_f / w_f), 0], and the bounds are
 * the widths of that interval. tests/conformance checks the pair bound
 * after every decision for every pair of continuously backlogged flows,
 * with quanta from 1 byte to 64 KB (it reaches 0.99 of the bound at small
 * quanta: the bound is tight), and the ranges with quanta and requests up
 * to 2^62.
 * The bounds assume w * Q <= 2^62 (see "Ranges"): at w = 65535, the
 * largest weight flowq_flow_set_weight() takes, any quantum up to 2^46.
 *
 * Ranges. Requests cost at most DRR_MAX_CREDIT = 2^62 (larger ones are
 * charged 2^62) and a flow's quantum w * Q is capped at 2^62, so credits
 * stay below 2^63 and no product overflows. Rounds are a wrapping 64-bit
 * counter compared by difference; far-heap keys are rounds relative to
 * far_base, moved forward (O(far flows)) whenever the current round gets
 * 2^61 past it, which takes 2^61 rounds (never, at any real rate) unless
 * requests of ~2^60 * Q bytes jump it there.
 *
 * Weights. policy.h's f->weight (0 is read as 1). The engine sets it when a
 * flow becomes backlogged, so it is constant while the flow waits.
 *
 * Across shards: this policy shares one shard's dispatches; the engine's
 * cross-shard fairness (core/dispatch.c) equalizes *requests* per unit of
 * weight between shards, not bytes.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <flowq/list.h>
#include <flowq/policy.h>

#include "builtin.h"
#include "flow_heap.h"
#include "flow_ring.h"

/* Round buckets of the wheel: one 64-bit occupancy word. */
#define DRR_WHEEL 64u
/* Most a request costs and most a flow is credited per visit, bytes. */
#define DRR_MAX_CREDIT (UINT64_C(1) << 62)
/* How far the current round may get past far_base before the far keys are
 * moved (keeps every key, (round - far_base) < 2^61 + 2^62 + 1, positive). */
#define DRR_REBASE (UINT64_C(1) << 61)

_Static_assert(DRR_WHEEL == 64, "the occupancy word has 64 bits");

struct drr_band {
	/* The flows of the current round not yet done with it, front first,
	 * up to ring.mark; from the mark on, the flows scheduled for the
	 * next round. */
	struct flowq__fring ring;
	/* wheel[i]: flows scheduled 2 to 63 rounds ahead when they were
	 * placed (or one round ahead, "Places"), for the round in
	 * [round, round + 63] that is i modulo 64, in the order they were
	 * scheduled. */
	struct flowq_list wheel[DRR_WHEEL];
	/* Bit i set iff wheel[i] is non-empty. */
	uint64_t occupied;
	/* The current round: the ring has a flow before its mark, or its
	 * bucket is non-empty, or the far heap's top is scheduled for it,
	 * unless nothing is backlogged. */
	uint64_t round;
	/* env->quantum, checked at band_init: bytes per visit at weight 1. */
	uint64_t quantum;
	/* Far-heap keys are (scheduled round - far_base). */
	uint64_t far_base;
	/* Tie-break among far flows of one round: scheduling order. */
	uint64_t far_seq;
	/* Flows scheduled at least 64 rounds ahead when they were placed, by
	 * (round, scheduling order); room for every attached flow. */
	struct flowq__kheap far;
};

/* Where a backlogged flow is scheduled (drr_where()). */
enum drr_where {
	DRR_NONE = 0, /* not backlogged */
	DRR_RING,
	DRR_WHEEL_LIST,
	DRR_FAR,
};

/*
 * Per-flow state, in two parts (policy.h: hot words and state).
 *
 * Hot, in the view's line, which every decision touches anyway:
 * hot[FLOWQ__FRING_POS] is the flow's place in the ring (flow_ring.h), and
 * hot[DRR_HOT] its credit (bits 0-62: credits stay below 2^63, "Ranges")
 * with DRR_OFF_RING (bit 63) set while it is scheduled in the wheel or the
 * far heap. Where a flow is follows without the state: in the ring iff it
 * owns a live slot there; else in the wheel or the far heap iff
 * DRR_OFF_RING (which of them: the state's `where`); else not backlogged.
 * And so does a ring flow's round: the current one before the mark, the
 * next from it. So a decision on a flow of the ring, the common case (its
 * head fits in w * Q bytes), reads and writes only the view's line: one
 * line of the flow, not two (README, "Policies").
 *
 * The state (struct drr_flow) holds what only flows scheduled 2+ rounds
 * ahead (or parked in the wheel, "Places") need.
 */
#define DRR_HOT      1u
#define DRR_OFF_RING (UINT64_C(1) << 63)

_Static_assert(DRR_HOT < FLOWQ_POLICY_HOT_WORDS && DRR_HOT != FLOWQ__FRING_POS,
	       "the credit has a hot word of its own");

struct drr_flow {
	/* In a wheel bucket while scheduled there. */
	struct flowq_list_node link;
	/* The round the flow is served in next, while in the wheel or the
	 * far heap (a ring flow's follows from the mark). */
	uint64_t round;
	/* The engine's view of the flow, returned by pick(). */
	struct flowq_policy_flow *flow;
	/* In the far heap while scheduled 64+ rounds ahead. */
	struct flowq__kheap_node kn;
	/* DRR_WHEEL_LIST or DRR_FAR while DRR_OFF_RING is set. */
	uint8_t where;
};

static inline struct drr_flow *
drr_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
}

/* The flow's credit as of the round it is scheduled for (>= cost(head)
 * while backlogged). */
static inline uint64_t
drr_credit(const struct flowq_policy_flow *f)
{
	return f->hot[DRR_HOT] & ~DRR_OFF_RING;
}

static inline void
drr_set_credit(struct flowq_policy_flow *f, uint64_t credit)
{
	assert(credit < DRR_OFF_RING);
	f->hot[DRR_HOT] = (f->hot[DRR_HOT] & DRR_OFF_RING) | credit;
}

/* Where @f is scheduled. Reads the state only for a flow off the ring. */
static inline enum drr_where
drr_where(const struct drr_band *b, const struct flowq_policy_flow *f)
{
	if (flowq__fring_live(&b->ring, f))
		return DRR_RING;
	if (!(f->hot[DRR_HOT] & DRR_OFF_RING))
		return DRR_NONE;
	return (enum drr_where)drr_flow_of(f)->where;
}

/* The round @f (scheduled @where, not DRR_NONE) is served in next. */
static inline uint64_t
drr_round_of(const struct drr_band *b, const struct flowq_policy_flow *f,
	     enum drr_where where)
{
	if (where == DRR_RING)
		return flowq__fring_pos_of(f) < b->ring.mark ? b->round : b->round + 1;
	return drr_flow_of(f)->round;
}

static inline uint64_t
drr_cost(uint64_t bytes)
{
	return bytes == 0 ? 1 : bytes > DRR_MAX_CREDIT ? DRR_MAX_CREDIT : bytes;
}

/* The flow's credit per visit, w * Q, at most DRR_MAX_CREDIT. A checked
 * multiply, not a division: this runs on every decision. */
static inline uint64_t
drr_wq(const struct drr_band *b, const struct flowq_policy_flow *f)
{
	uint64_t w = f->weight ? f->weight : 1, wq;

	if (__builtin_mul_overflow(b->quantum, w, &wq) || wq > DRR_MAX_CREDIT)
		return DRR_MAX_CREDIT;
	return wq;
}

/* Visits needed to earn @need > 0 bytes at @wq per visit: ceil(need / wq).
 * The division is skipped in the common case of a head within a quantum. */
static inline uint64_t
drr_visits(uint64_t need, uint64_t wq)
{
	if (need <= wq)
		return 1;
	return need / wq + (need % wq != 0);
}

static inline struct drr_flow *
drr_of_kn(struct flowq__kheap_node *n)
{
	return (struct drr_flow *)((char *)n - offsetof(struct drr_flow, kn));
}

static inline uint64_t
drr_rotr(uint64_t x, unsigned s)
{
	return s == 0 ? x : (x >> s) | (x << (64 - s));
}

/* Take @f (in the wheel or the far heap) out. */
static void
drr_unschedule_far(struct drr_band *b, struct flowq_policy_flow *f)
{
	struct drr_flow *df = drr_flow_of(f);

	if (df->where == DRR_WHEEL_LIST) {
		unsigned i = (unsigned)(df->round % DRR_WHEEL);

		flowq_list_remove(&df->link);
		if (flowq_list_empty(&b->wheel[i]))
			b->occupied &= ~(UINT64_C(1) << i);
	} else {
		flowq__kheap_remove(&b->far, &df->kn);
	}
	f->hot[DRR_HOT] &= ~DRR_OFF_RING;
}

/* Take @f (scheduled @where) out of the ring, its bucket or the far heap.
 * The ring is the hot case: inline. */
static inline void
drr_unschedule(struct drr_band *b, struct flowq_policy_flow *f, enum drr_where where)
{
	assert(where != DRR_NONE);
	if (where == DRR_RING)
		flowq__fring_remove(&b->ring, f);
	else
		drr_unschedule_far(b, f);
}

/* Put @f (not scheduled) in the wheel's bucket for @round, 2 to 63 rounds
 * ahead (or the next round: "Places" above). */
static void
drr_wheel_push(struct drr_band *b, struct flowq_policy_flow *f, uint64_t round)
{
	struct drr_flow *df = drr_flow_of(f);
	unsigned i = (unsigned)(round % DRR_WHEEL);

	df->round = round;
	flowq_list_push_back(&b->wheel[i], &df->link);
	b->occupied |= UINT64_C(1) << i;
	df->where = DRR_WHEEL_LIST;
	f->hot[DRR_HOT] |= DRR_OFF_RING;
}

/* Schedule @f (not scheduled) for the next round: at the tail of the
 * ring, or at the place it still owns in the next round's part, or, if its
 * place is in the current round's part, in the wheel ("Places" above). The
 * hot case: inline, and it touches nothing but the ring and the view. */
static inline void
drr_schedule_next(struct drr_band *b, struct flowq_policy_flow *f)
{
	struct flowq__fring *r = &b->ring;

	if (flowq__fring_owns(r, f)) {
		if (flowq__fring_pos_of(f) < r->mark) {
			drr_wheel_push(b, f, b->round + 1);
			return;
		}
		flowq__fring_revive(r, f);
	} else {
		flowq__fring_push(r, f);
	}
}

/* Schedule @f (not scheduled) for round @round > b->round, at the back of
 * that round. */
static void
drr_schedule(struct drr_band *b, struct flowq_policy_flow *f, uint64_t round)
{
	uint64_t ahead = round - b->round;

	assert(drr_where(b, f) == DRR_NONE && ahead >= 1);
	if (ahead == 1) {
		drr_schedule_next(b, f);
		return;
	}
	if (ahead < DRR_WHEEL) {
		drr_wheel_push(b, f, round);
	} else {
		struct drr_flow *df = drr_flow_of(f);

		df->round = round;
		if (b->far.len == 0)
			b->far_base = b->round; /* a free rebase */
		/* The heap has room for every attached flow (flow_heap.h). */
		flowq__kheap_push(&b->far, &df->kn, (int64_t)(round - b->far_base),
				  b->far_seq++);
		df->where = DRR_FAR;
		f->hot[DRR_HOT] |= DRR_OFF_RING;
	}
}

/* Whether the ring has a flow of the current round (before its mark). */
static inline bool
drr_ring_current(const struct drr_band *b)
{
	return b->ring.head < b->ring.mark;
}

/* drr_advance() once the ring has no flow of the current round. */
static void
drr_advance_round(struct drr_band *b)
{
	struct flowq__kheap_node *top;
	uint64_t step = UINT64_MAX;

	if (b->occupied & (UINT64_C(1) << (b->round % DRR_WHEEL)))
		return;
	top = flowq__kheap_peek(&b->far);
	if (top != NULL) {
		uint64_t fr = b->far_base + (uint64_t)flowq__kheap_key(&b->far, top);

		if (fr == b->round)
			return;
		step = fr - b->round;
	}
	if (!flowq__fring_empty(&b->ring)) {
		/* The front is after the mark: a flow of the next round. */
		step = 1;
	} else if (b->occupied != 0) {
		/* Bit 0 of the rotated word is the current (empty) bucket,
		 * so the distance to the next occupied one is >= 1. */
		uint64_t d = (uint64_t)__builtin_ctzll(
			drr_rotr(b->occupied, (unsigned)(b->round % DRR_WHEEL)));

		if (d < step)
			step = d;
	}
	if (step == UINT64_MAX)
		return; /* nothing backlogged */
	b->round += step;
	/* The ring's flows (none if step > 1) are the new round's. */
	b->ring.mark = b->ring.tail;
	if (top != NULL && b->round - b->far_base >= DRR_REBASE) {
		/* Every far flow is scheduled at or after the new round, so
		 * no key goes negative. */
		flowq__kheap_shift(&b->far, (int64_t)(b->round - b->far_base));
		b->far_base = b->round;
	}
}

/* Restore the invariant on b->round: if the current round has no flow
 * left, move to the nearest round that has one (none: stay). O(1), plus
 * O(far flows) for a rebase every 2^61 rounds. The usual case, flows left
 * in the current ring, inline. */
static inline void
drr_advance(struct drr_band *b)
{
	if (!drr_ring_current(b))
		drr_advance_round(b);
}

static int
drr_band_init(void *band, const struct flowq_policy_env *env)
{
	struct drr_band *b = band;

	/* The engine resolves 0 to FLOWQ_QUANTUM_DEFAULT and validates the
	 * range (FLOWQ_LIMIT_MAX = 2^62); refuse what it would not lend. */
	if (env->quantum == 0 || env->quantum > DRR_MAX_CREDIT)
		return -EINVAL;
	flowq__fring_init(&b->ring, env);
	for (unsigned i = 0; i < DRR_WHEEL; i++)
		flowq_list_init(&b->wheel[i]);
	b->occupied = 0;
	b->round = 0;
	b->quantum = env->quantum;
	b->far_base = 0;
	b->far_seq = 0;
	flowq__kheap_init(&b->far);
	return 0;
}

static void
drr_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct drr_band *b = band;

	flowq__fring_fini(&b->ring, env->alloc);
	flowq__kheap_fini(&b->far, env->alloc);
}

static int
drr_flow_attach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct drr_band *b = band;
	struct drr_flow *df = drr_flow_of(f);
	int rc = flowq__kheap_attach(&b->far, env->alloc);

	if (rc != 0)
		return rc;
	flowq__fring_member_init(f);
	rc = flowq__fring_attach(&b->ring, env->alloc);
	if (rc != 0) {
		flowq__kheap_detach(&b->far, env->alloc);
		return rc;
	}
	f->hot[DRR_HOT] = 0; /* no credit, not off the ring */
	flowq_list_node_init(&df->link);
	flowq__kheap_node_init(&df->kn);
	df->round = 0;
	df->flow = f;
	df->where = DRR_NONE;
	return 0;
}

static void
drr_flow_detach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct drr_band *b = band;
	enum drr_where where = drr_where(b, f);

	/* A detached flow is empty, so update() has unscheduled it already;
	 * doing it here too keeps a dangling reference out of the band even
	 * if the engine got that wrong. */
	if (where != DRR_NONE) {
		drr_unschedule(b, f, where);
		drr_advance(b);
	}
	/* The ring forgets the place it may still own. */
	flowq__fring_detach(&b->ring, f, env->alloc);
	flowq__kheap_detach(&b->far, env->alloc);
}

/*
 * @f is scheduled (@where) for round @fr, later than the current one, and
 * its head changed: move it to the first round after the current one at
 * which its credit covers the head (it may have had the current round's
 * visit).
 */
static void
drr_reschedule_waiting(struct drr_band *b, struct flowq_policy_flow *f,
		       enum drr_where where, uint64_t fr, uint64_t need, uint64_t wq)
{
	uint64_t ahead = fr - b->round - 1; /* visits after the next */
	uint64_t c0 = drr_credit(f), c1, x, credit;

	/* Credit as of the next round's visit: remove the visits between
	 * that round and fr. It is >= wq when the weight has not changed
	 * since scheduling; clamp in case it has. */
	if (ahead <= c0 / wq)
		c1 = c0 - ahead * wq;
	else
		c1 = 0;
	if (c1 >= need) {
		x = b->round + 1;
		credit = c1;
	} else {
		uint64_t k = drr_visits(need - c1, wq);

		x = b->round + 1 + k;
		credit = c1 + k * wq;
	}
	if (x == fr && credit == c0)
		return; /* same place: keep its position in the round */
	drr_unschedule(b, f, where);
	drr_set_credit(f, credit);
	drr_schedule(b, f, x);
	drr_advance(b);
}

static void
drr_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct drr_band *b = band;
	enum drr_where where = drr_where(b, f);
	uint64_t need, wq, fr, credit;

	if (where == DRR_NONE)
		return;
	if (f->queued == 0) {
		/* Empty: forget it, credit included (no banked credit:
		 * flow_backlogged sets it afresh). */
		drr_unschedule(b, f, where);
		drr_advance(b);
		return;
	}
	need = drr_cost(f->head_bytes);
	wq = drr_wq(b, f);
	fr = drr_round_of(b, f, where);
	if (fr != b->round) {
		/* Waiting for a later round: only its head can have changed
		 * (pick() offers only flows of the current round). */
		drr_reschedule_waiting(b, f, where, fr, need, wq);
		return;
	}
	credit = drr_credit(f);
	if (dispatched) {
		uint64_t c = drr_cost(served_bytes);

		/* c <= credit for the head that pick() offered; saturate in
		 * case the engine served something else. */
		credit = credit > c ? credit - c : 0;
	}
	if (credit >= need) {
		/* The turn goes on (or its place in the round stays). */
		drr_set_credit(f, credit);
		return;
	}
	{
		/* Turn over: skip the visits that could not serve the head. */
		uint64_t k = drr_visits(need - credit, wq);

		drr_unschedule(b, f, where);
		drr_set_credit(f, credit + k * wq);
		drr_schedule(b, f, b->round + k);
		drr_advance(b);
	}
}

static void
drr_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct drr_band *b = band;
	uint64_t need, wq, k;

	if (drr_where(b, f) != DRR_NONE) {
		/* Already offered (a repeated call): just follow the head. */
		drr_update(band, f, false, 0);
		return;
	}
	/* DC starts at 0: first visit in the next round, served at the k-th. */
	need = drr_cost(f->head_bytes);
	wq = drr_wq(b, f);
	if (need <= wq) {
		/* k = 1, the usual case. */
		drr_set_credit(f, wq);
		drr_schedule_next(b, f);
	} else {
		k = drr_visits(need, wq);
		drr_set_credit(f, k * wq);
		drr_schedule(b, f, b->round + k);
	}
	drr_advance(b);
}

static struct flowq_policy_flow *
drr_pick(void *band)
{
	struct drr_band *b = band;
	const struct flowq_list *l;
	struct flowq__kheap_node *top;

	if (drr_ring_current(b))
		return flowq__fring_front(&b->ring);
	l = &b->wheel[b->round % DRR_WHEEL];
	if (!flowq_list_empty(l))
		return flowq_list_entry(l->head.next, struct drr_flow, link)->flow;
	/* By the invariant on b->round, a far top is scheduled for it. */
	top = flowq__kheap_peek(&b->far);
	return top == NULL ? NULL : drr_of_kn(top)->flow;
}

const struct flowq_fairness_ops flowq_fairness_drr = {
	.desc =
		{
			.abi_version = FLOWQ_POLICY_ABI,
			.name = "drr",
			.description = "deficit round robin: weighted byte shares, "
				       "w x quantum bytes per flow per round, O(1)",
			.band_state_size = sizeof(struct drr_band),
			.flow_state_size = sizeof(struct drr_flow),
			.flags = FLOWQ_POLICY_BYTE_FAIR,
		},
	.band_init = drr_band_init,
	.band_fini = drr_band_fini,
	.flow_attach = drr_flow_attach,
	.flow_detach = drr_flow_detach,
	.flow_backlogged = drr_flow_backlogged,
	.pick = drr_pick,
	.update = drr_update,
};
