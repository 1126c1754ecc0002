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
 * differ (flows are served in the order they were scheduled for it).
 *
 * Data structure: a timing wheel of DRR_WHEEL = 64 round buckets (each a
 * FIFO list of flows) for rounds round .. round + 63, with a 64-bit
 * occupancy word, and a heap (flow_heap.h) for flows scheduled further
 * ahead ("far": a head larger than 63 * w * Q bytes). pick() is the front
 * of the current round's bucket, or else the far heap's top when its round
 * is the current one. When the current round has no flow left the band
 * moves to the next round that has one: a rotate and a count of trailing
 * zeros of the occupancy word, compared with the far heap's top, so empty
 * rounds cost nothing.
 *
 * Cost per call: pick O(1); update and flow_backlogged O(1) (at most one
 * 64-bit division, skipped when the head fits in one quantum), and
 * O(log F) only when the flow goes to or leaves the far heap, i.e. for a
 * request larger than 63 * w * Q bytes (258 KB at the default quantum and
 * weight 1). flow_attach/flow_detach amortized O(1) (the far heap's slot
 * array, flow_heap.h, the only allocation). Memory: 64 bytes per flow,
 * about 1.1 KB per band and shard plus 8 bytes per attached flow.
 *
 * Changes while waiting. A backlogged flow's head can change before its
 * turn (an eviction, or an ordering other than fcfs putting a new request
 * first): update(f, false, 0) reschedules it at the first round after the
 * current one at which its credit covers the new head (possibly earlier
 * than before, never in the current round, in which it may have had its
 * visit already). A flow in the current round whose new head no longer
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

#include <flowq/heap.h>
#include <flowq/list.h>
#include <flowq/policy.h>

#include "builtin.h"
#include "flow_heap.h"

/* Round buckets of the wheel: one 64-bit occupancy word. */
#define DRR_WHEEL 64u
/* Most a request costs and most a flow is credited per visit, bytes. */
#define DRR_MAX_CREDIT (UINT64_C(1) << 62)
/* How far the current round may get past far_base before the far keys are
 * moved (keeps every key, (round - far_base) < 2^61 + 2^62 + 1, positive). */
#define DRR_REBASE (UINT64_C(1) << 61)

_Static_assert(DRR_WHEEL == 64, "the occupancy word has 64 bits");

struct drr_band {
	/* wheel[i]: flows scheduled for the round in [round, round + 63]
	 * that is i modulo 64, in the order they were scheduled. */
	struct flowq_list wheel[DRR_WHEEL];
	/* Bit i set iff wheel[i] is non-empty. */
	uint64_t occupied;
	/* The current round: its bucket is non-empty or the far heap's top is
	 * scheduled for it, unless nothing is backlogged. */
	uint64_t round;
	/* env->quantum, checked at band_init: bytes per visit at weight 1. */
	uint64_t quantum;
	/* Far-heap keys are (scheduled round - far_base). */
	uint64_t far_base;
	/* Tie-break among far flows of one round: scheduling order. */
	uint64_t far_seq;
	/* Flows scheduled at least 64 rounds ahead when they were placed, by
	 * (round, scheduling order); room for every attached flow. */
	struct flowq__fheap far;
};

struct drr_flow {
	/* In a wheel bucket while scheduled within 64 rounds. */
	struct flowq_list_node link;
	/* In the far heap while scheduled further ahead. */
	struct flowq_heap_node hn;
	/* The round the flow is served in next (while backlogged). */
	uint64_t round;
	/* Its deficit counter as of that round's visit (>= cost(head) while
	 * backlogged). */
	uint64_t credit;
	/* The engine's view of the flow, returned by pick(). */
	struct flowq_policy_flow *flow;
};

static inline struct drr_flow *
drr_flow_of(const struct flowq_policy_flow *f)
{
	return f->state;
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

static inline bool
drr_scheduled(const struct drr_flow *df)
{
	return flowq_list_linked(&df->link) || flowq_heap_member(&df->hn);
}

static inline struct drr_flow *
drr_of_hn(struct flowq_heap_node *n)
{
	return (struct drr_flow *)((char *)n - offsetof(struct drr_flow, hn));
}

static inline uint64_t
drr_rotr(uint64_t x, unsigned s)
{
	return s == 0 ? x : (x >> s) | (x << (64 - s));
}

/* Take @df out of its bucket or the far heap. */
static void
drr_unschedule(struct drr_band *b, struct drr_flow *df)
{
	if (flowq_list_linked(&df->link)) {
		unsigned i = (unsigned)(df->round % DRR_WHEEL);

		flowq_list_remove(&df->link);
		if (flowq_list_empty(&b->wheel[i]))
			b->occupied &= ~(UINT64_C(1) << i);
	} else if (flowq_heap_member(&df->hn)) {
		(void)flowq_heap_remove(&b->far.heap, &df->hn);
	}
}

/* Schedule @df (not scheduled) for round @round >= b->round, at the back
 * of that round. */
static void
drr_schedule(struct drr_band *b, struct drr_flow *df, uint64_t round)
{
	df->round = round;
	if (round - b->round < DRR_WHEEL) {
		unsigned i = (unsigned)(round % DRR_WHEEL);

		flowq_list_push_back(&b->wheel[i], &df->link);
		b->occupied |= UINT64_C(1) << i;
	} else {
		int rc;

		if (flowq_heap_len(&b->far.heap) == 0)
			b->far_base = b->round; /* a free rebase */
		df->hn.key = (int64_t)(round - b->far_base);
		df->hn.seq = b->far_seq++;
		rc = flowq_heap_push(&b->far.heap, &df->hn);
		/* -ENOSPC is impossible: the heap has room for every
		 * attached flow (flow_heap.h). */
		assert(rc == 0);
		(void)rc;
	}
}

/* Restore the invariant on b->round: if its bucket is empty and the far
 * heap has nothing for it, move to the nearest round that has a flow (none:
 * stay). O(1), plus O(far flows) for a rebase every 2^61 rounds. */
static void
drr_advance(struct drr_band *b)
{
	struct flowq_heap_node *top;
	uint64_t step = UINT64_MAX;

	if (b->occupied & (UINT64_C(1) << (b->round % DRR_WHEEL)))
		return;
	top = flowq_heap_peek(&b->far.heap);
	if (top != NULL) {
		uint64_t fr = b->far_base + (uint64_t)top->key;

		if (fr == b->round)
			return;
		step = fr - b->round;
	}
	if (b->occupied != 0) {
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
	if (top != NULL && b->round - b->far_base >= DRR_REBASE) {
		/* Every far flow is scheduled at or after the new round, so
		 * no key goes negative. */
		flowq__fheap_shift(&b->far, (int64_t)(b->round - b->far_base));
		b->far_base = b->round;
	}
}

static int
drr_band_init(void *band, const struct flowq_policy_env *env)
{
	struct drr_band *b = band;

	/* The engine resolves 0 to FLOWQ_QUANTUM_DEFAULT and validates the
	 * range (FLOWQ_LIMIT_MAX = 2^62); refuse what it would not lend. */
	if (env->quantum == 0 || env->quantum > DRR_MAX_CREDIT)
		return -EINVAL;
	for (unsigned i = 0; i < DRR_WHEEL; i++)
		flowq_list_init(&b->wheel[i]);
	b->occupied = 0;
	b->round = 0;
	b->quantum = env->quantum;
	b->far_base = 0;
	b->far_seq = 0;
	flowq__fheap_init(&b->far);
	return 0;
}

static void
drr_band_fini(void *band, const struct flowq_policy_env *env)
{
	struct drr_band *b = band;

	flowq__fheap_fini(&b->far, env->alloc);
}

static int
drr_flow_attach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct drr_band *b = band;
	struct drr_flow *df = drr_flow_of(f);
	int rc = flowq__fheap_attach(&b->far, env->alloc);

	if (rc != 0)
		return rc;
	flowq_list_node_init(&df->link);
	/* The state is zeroed, and idx 0 would read as "member of a heap". */
	flowq_heap_node_init(&df->hn);
	df->round = 0;
	df->credit = 0;
	df->flow = f;
	return 0;
}

static void
drr_flow_detach(void *band, struct flowq_policy_flow *f,
		const struct flowq_policy_env *env)
{
	struct drr_band *b = band;
	struct drr_flow *df = drr_flow_of(f);

	/* A detached flow is empty, so update() has unscheduled it already;
	 * doing it here too keeps a dangling link out of the band even if the
	 * engine got that wrong. */
	if (drr_scheduled(df)) {
		drr_unschedule(b, df);
		drr_advance(b);
	}
	flowq__fheap_detach(&b->far, env->alloc);
}

/*
 * @df is scheduled for a later round than the current one and its head
 * changed: move it to the first round after the current one at which its
 * credit covers the head (it may have had the current round's visit).
 */
static void
drr_reschedule_waiting(struct drr_band *b, struct drr_flow *df, uint64_t need,
		       uint64_t wq)
{
	uint64_t ahead = df->round - b->round - 1; /* visits after the next */
	uint64_t c1, x, credit;

	/* Credit as of the next round's visit: remove the visits between
	 * that round and df->round. It is >= wq when the weight has not
	 * changed since scheduling; clamp in case it has. */
	if (ahead <= df->credit / wq)
		c1 = df->credit - ahead * wq;
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
	if (x == df->round && credit == df->credit)
		return; /* same place: keep its position in the round */
	drr_unschedule(b, df);
	df->credit = credit;
	drr_schedule(b, df, x);
	drr_advance(b);
}

static void
drr_update(void *band, struct flowq_policy_flow *f, bool dispatched, uint64_t served_bytes)
{
	struct drr_band *b = band;
	struct drr_flow *df = drr_flow_of(f);
	uint64_t need, wq;

	if (!drr_scheduled(df))
		return;
	if (f->queued == 0) {
		/* Empty: forget it, credit included (no banked credit). */
		drr_unschedule(b, df);
		drr_advance(b);
		return;
	}
	need = drr_cost(f->head_bytes);
	wq = drr_wq(b, f);
	if (df->round != b->round) {
		/* Waiting for a later round: only its head can have changed
		 * (pick() offers only flows of the current round). */
		drr_reschedule_waiting(b, df, need, wq);
		return;
	}
	if (dispatched) {
		uint64_t c = drr_cost(served_bytes);

		/* c <= credit for the head that pick() offered; saturate in
		 * case the engine served something else. */
		df->credit = df->credit > c ? df->credit - c : 0;
	}
	if (df->credit >= need)
		return; /* the turn goes on (or its place in the round stays) */
	{
		/* Turn over: skip the visits that could not serve the head. */
		uint64_t k = drr_visits(need - df->credit, wq);

		drr_unschedule(b, df);
		df->credit += k * wq;
		drr_schedule(b, df, b->round + k);
		drr_advance(b);
	}
}

static void
drr_flow_backlogged(void *band, struct flowq_policy_flow *f)
{
	struct drr_band *b = band;
	struct drr_flow *df = drr_flow_of(f);
	uint64_t need, wq, k;

	if (drr_scheduled(df)) {
		/* Already offered (a repeated call): just follow the head. */
		drr_update(band, f, false, 0);
		return;
	}
	/* DC starts at 0: first visit in the next round, served at the k-th. */
	need = drr_cost(f->head_bytes);
	wq = drr_wq(b, f);
	k = drr_visits(need, wq);
	df->credit = k * wq;
	drr_schedule(b, df, b->round + k);
	drr_advance(b);
}

static struct flowq_policy_flow *
drr_pick(void *band)
{
	struct drr_band *b = band;
	const struct flowq_list *l = &b->wheel[b->round % DRR_WHEEL];
	struct flowq_heap_node *top;

	if (!flowq_list_empty(l))
		return flowq_list_entry(l->head.next, struct drr_flow, link)->flow;
	/* By the invariant on b->round, a far top is scheduled for it. */
	top = flowq_heap_peek(&b->far.heap);
	return top == NULL ? NULL : drr_of_hn(top)->flow;
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
