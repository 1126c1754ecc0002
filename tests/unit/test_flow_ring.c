/*
 * policies/flow_ring.c: the array FIFO of flows behind round_robin and drr,
 * against a model. The model is the ring's slot sequence itself, front
 * first: each entry a member's live slot, a member's tombstone, or an
 * orphan, plus the mark as a count of entries before it. After every random
 * attach (with injected allocation failures), detach, push, revive,
 * remove, rotate and mark move, the ring's slots from head to tail must be
 * the model's entries one for one, every member's owns/live must agree, the
 * front must be live, the mark must sit where the model has it, and the
 * capacity rule (cap >= attached + orphans, a power of two) must hold.
 * Compaction, which drops the orphans during an attach, is followed by
 * dropping them from the model. A counting
 * allocator checks that only attach and detach allocate and that fini
 * frees everything. The engine's look-ahead hook (flowq_policy_env::
 * prefetch) is a checker: every call must name the live attached member
 * FLOWQ__FRING_AHEAD (stage 0) or FLOWQ__FRING_AHEAD / 2 (stage 1)
 * positions behind the front, never a dead slot or a position past the
 * tail (the engine reads the flow it is given), and a rotation must make
 * exactly the calls the model expects.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>

#include "flow_ring.h"
#include "count_alloc.h"
#include "test_util.h"

#define NM 48 /* members */

struct member {
	/* The member: the ring keeps its position in pf.hot[]. */
	struct flowq_policy_flow pf;
	bool attached;
};

/* What the random walk reached, so that the test fails if it stops
 * reaching the paths it is meant to check. */
static unsigned n_compacted, n_enomem, n_orphaned, n_revived, n_rotated;
/* Look-ahead calls checked, per stage. */
static unsigned n_hinted[2];

/* A model entry: the member owning the slot (-1: an orphan) and whether
 * the slot is live. */
struct entry {
	int m;
	bool live;
};

struct model {
	struct flowq__fring r;
	struct test_count_alloc ca;
	struct member mem[NM];
	struct entry e[4 * NM + 64];
	size_t ne;
	/* Entries before the mark (0: the mark is at or before head). */
	size_t mark;
	unsigned nattached;
	/* Look-ahead calls (counted by the hook). */
	unsigned nhint;
};

/* The ring positions behind the front that a look-ahead of @p stage
 * names. */
static uint64_t
hint_distance(unsigned stage)
{
	return stage == 0 ? FLOWQ__FRING_AHEAD : FLOWQ__FRING_AHEAD / 2;
}

/* The engine's hook: the ring calls it at the end of the op that moved
 * its front, so the ring it sees is the one after the op. */
static void
check_hint(void *arg, const struct flowq_policy_flow *f, unsigned stage)
{
	struct model *t = arg;
	const struct flowq__fring *r = &t->r;
	uint64_t pos = r->head + hint_distance(stage);

	cr_assert_leq(stage, 1u);
	cr_assert_lt(pos, r->tail, "stage %u look-ahead past the tail", stage);
	cr_assert_eq(r->slots[pos & r->mask], (uintptr_t)f,
		     "stage %u look-ahead names the live member %llu behind the front",
		     stage, (unsigned long long)hint_distance(stage));
	cr_assert(f >= &t->mem[0].pf && f <= &t->mem[NM - 1].pf);
	cr_assert(t->mem[(const struct member *)f - t->mem].attached);
	n_hinted[stage]++;
	t->nhint++;
}

static void
model_init(struct model *t)
{
	struct flowq_policy_env env = {.prefetch = check_hint, .prefetch_arg = t};

	memset(t, 0, sizeof(*t));
	test_count_alloc_init(&t->ca);
	flowq__fring_init(&t->r, &env);
	for (int i = 0; i < NM; i++)
		t->mem[i].pf.seq = (uint64_t)i;
}

/* The model entry a member owns, or -1. */
static long
model_find(const struct model *t, int m)
{
	for (size_t i = 0; i < t->ne; i++)
		if (t->e[i].m == m)
			return (long)i;
	return -1;
}

static void
model_erase(struct model *t, size_t i)
{
	memmove(&t->e[i], &t->e[i + 1], (t->ne - i - 1) * sizeof(t->e[0]));
	t->ne--;
	if (i < t->mark)
		t->mark--;
}

/* The front left: drop it and every dead entry behind it. */
static void
model_pop_front(struct model *t)
{
	model_erase(t, 0);
	while (t->ne > 0 && !t->e[0].live)
		model_erase(t, 0);
}

static unsigned
model_orphans(const struct model *t)
{
	unsigned n = 0;

	for (size_t i = 0; i < t->ne; i++)
		n += t->e[i].m < 0;
	return n;
}

/* Member @p m, which owns no slot, joins at the back. */
static void
op_push(struct model *t, int m)
{
	flowq__fring_push(&t->r, &t->mem[m].pf);
	t->e[t->ne++] = (struct entry){.m = m, .live = true};
}

/* Member @p m leaves if it is live (a tombstone, or passed at the front);
 * whether it was. */
static bool
op_remove(struct model *t, int m)
{
	long i = model_find(t, m);

	if (i < 0 || !t->e[i].live)
		return false;
	flowq__fring_remove(&t->r, &t->mem[m].pf);
	if (i == 0)
		model_pop_front(t);
	else
		t->e[i].live = false;
	return true;
}

/* Member @p m takes its place back if it owns a tombstone. */
static void
op_revive(struct model *t, int m)
{
	long i = model_find(t, m);

	if (i < 0 || t->e[i].live)
		return;
	flowq__fring_revive(&t->r, &t->mem[m].pf);
	t->e[i].live = true;
	n_revived++;
}

/* Whether the ring must pass the model's entry of @p stage to the hook
 * after its front moved: it exists and is live. */
static bool
hint_expected(const struct model *t, unsigned stage)
{
	size_t i = (size_t)hint_distance(stage);

	return i < t->ne && t->e[i].live;
}

static void
check(const struct model *t)
{
	const struct flowq__fring *r = &t->r;

	cr_assert_eq(r->tail - r->head, t->ne, "ring length %llu, model %zu",
		     (unsigned long long)(r->tail - r->head), t->ne);
	cr_assert_eq(r->nattached, t->nattached);
	cr_assert_eq(r->orphans, model_orphans(t));
	cr_assert_leq(r->tail - r->head, (uint64_t)r->cap, "the ring fits its array");
	cr_assert_geq((uint64_t)r->cap, (uint64_t)r->nattached + r->orphans,
		      "capacity rule: cap %u < %u attached + %u orphans", r->cap,
		      r->nattached, r->orphans);
	if (t->mark == 0)
		cr_assert_leq(r->mark, r->head, "the mark is at or before head");
	else
		cr_assert_eq(r->mark, r->head + t->mark, "the mark is %zu slots in",
			     t->mark);
	cr_assert_eq(r->cap & (r->cap - 1), 0u, "cap %u is a power of two", r->cap);
	if (r->cap != 0)
		cr_assert_eq(r->mask, r->cap - 1);
	for (size_t i = 0; i < t->ne; i++) {
		uintptr_t s = r->slots[(r->head + i) & r->mask];
		const struct entry *e = &t->e[i];

		if (e->m < 0) {
			cr_assert_eq(s, 0, "slot %zu: an orphan", i);
			continue;
		}
		cr_assert_eq(flowq__fring_view(s), &t->mem[e->m].pf,
			     "slot %zu: member %d's", i, e->m);
		cr_assert_eq(t->mem[e->m].pf.hot[FLOWQ__FRING_POS], r->head + i);
		if (e->live)
			cr_assert_eq(s, (uintptr_t)&t->mem[e->m].pf, "slot %zu: live", i);
		else
			cr_assert_eq(s, (uintptr_t)&t->mem[e->m].pf | FLOWQ__FRING_TOMB,
				     "slot %zu: a tombstone", i);
		cr_assert_eq(flowq__fring_dead(s), !e->live);
	}
	if (t->ne > 0)
		cr_assert(t->e[0].live, "the front is live");
	cr_assert_eq(flowq__fring_empty(r), t->ne == 0);
	cr_assert_eq(flowq__fring_front(r), t->ne ? &t->mem[t->e[0].m].pf : NULL);
	for (int m = 0; m < NM; m++) {
		long i = model_find(t, m);

		if (!t->mem[m].attached) {
			cr_assert_eq(i, -1);
			continue;
		}
		cr_assert_eq(flowq__fring_owns(r, &t->mem[m].pf), i >= 0,
			     "member %d owns", m);
		cr_assert_eq(flowq__fring_live(r, &t->mem[m].pf), i >= 0 && t->e[i].live,
			     "member %d live", m);
		cr_assert_eq(flowq__fring_at_front(r, &t->mem[m].pf), i == 0);
	}
}

static void
op_attach(struct model *t, int m, bool fail)
{
	struct member *x = &t->mem[m];
	struct flowq__fring before = t->r;
	unsigned orphans = model_orphans(t);
	int rc;

	flowq__fring_member_init(&x->pf);
	if (fail)
		t->ca.fail_after = t->ca.allocs;
	rc = flowq__fring_attach(&t->r, &t->ca.a);
	t->ca.fail_after = ~0ul;
	if (rc != 0) {
		cr_assert_eq(rc, -ENOMEM);
		n_enomem++;
		cr_assert(memcmp(&before, &t->r, sizeof(before)) == 0,
			  "a failed attach changes nothing");
		return;
	}
	x->attached = true;
	t->nattached++;
	if (orphans != 0 && t->r.orphans == 0) {
		/* Compacted: the orphans are gone, the order and the mark
		 * are kept. */
		n_compacted++;
		for (size_t i = t->ne; i-- > 0;)
			if (t->e[i].m < 0)
				model_erase(t, i);
	}
}

static void
op_detach(struct model *t, int m)
{
	long i = model_find(t, m);

	flowq__fring_detach(&t->r, &t->mem[m].pf, &t->ca.a);
	t->mem[m].attached = false;
	t->nattached--;
	if (i == 0)
		model_pop_front(t);
	else if (i > 0) {
		t->e[i] = (struct entry){.m = -1, .live = false};
		n_orphaned++;
	}
}

/* Every member leaves and is detached (live ones first leave the ring);
 * then fini must give every byte back. */
static void
model_fini(struct model *t)
{
	for (int m = 0; m < NM; m++)
		if (t->mem[m].attached) {
			op_remove(t, m);
			op_detach(t, m);
			check(t);
		}
	cr_assert_eq(t->ne, 0, "the ring is empty once everyone left");
	flowq__fring_fini(&t->r, &t->ca.a);
	cr_assert_eq(t->ca.outstanding, 0, "fini frees everything");
	free(t);
}

/* One random operation. With @hold the front never leaves (a band whose
 * dispatcher is held by its gate) and members leave from the middle and
 * are detached more often: orphans pile up until an attach compacts. */
static void
step(struct model *t, uint64_t x, bool hold)
{
	int m = (int)(x % NM);
	struct member *mb = &t->mem[m];
	long i = model_find(t, m);

	x /= NM;
	if (!mb->attached) {
		if (hold ? x % 8 == 0 : x % 3 != 0)
			op_attach(t, m, x % 7 == 0);
		return;
	}
	switch (hold && x % 8 >= 4 ? x % 2 : x % 8) {
	case 0: /* detach: normally with no live slot, sometimes live */
		if (i < 0 || !t->e[i].live || x % 5 == 0 || (hold && i > 0))
			op_detach(t, m);
		break;
	case 1:
	case 2:
	case 3: /* join: push, or take the place back */
		if (i < 0)
			op_push(t, m);
		else
			op_revive(t, m);
		break;
	case 4: /* the owner moves the mark to the tail (drr: a new round) */
		if ((x / 8) % 4 == 0) {
			t->r.mark = t->r.tail;
			t->mark = t->ne;
		}
		break;
	case 5: /* the front's turn is over: to the back */
		if (t->ne > 0 && (x / 8) % 2 == 0 && !hold) {
			struct entry e = t->e[0];

			t->nhint = 0;
			flowq__fring_rotate(&t->r);
			model_pop_front(t);
			t->e[t->ne++] = e;
			n_rotated++;
			/* A rotation moves the front: each stage whose entry
			 * is live gets exactly one call. */
			cr_assert_eq(t->nhint,
				     (unsigned)hint_expected(t, 0) +
					     (unsigned)hint_expected(t, 1),
				     "look-ahead calls after a rotation");
			break;
		}
		/* fall through */
	default: /* leave: at the front mostly, as turns are taken */
		if (x % 3 == 0 && t->ne > 0 && !hold) {
			m = t->e[0].m;
			mb = &t->mem[m];
			i = 0;
		}
		if (!(hold && i == 0) && op_remove(t, m) && x % 2 == 0 && i == 0)
			op_push(t, m); /* a turn: straight to the back */
		break;
	}
}

Test(flow_ring, random_ops_match_the_model)
{
	for (uint64_t seed = 1; seed <= 60; seed++) {
		struct model *t = calloc(1, sizeof(*t));
		uint64_t rng = seed * 0x9e3779b97f4a7c15ull;

		cr_assert_not_null(t);
		model_init(t);
		for (int k = 0; k < 4000; k++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			step(t, rng, seed % 2 == 0 && (k / 500) % 2 == 1);
			check(t);
		}
		/* Everyone leaves; the array goes back to the allocator. */
		model_fini(t);
	}
	cr_assert(n_hinted[0] > 0 && n_hinted[1] > 0, "look-ahead calls: %u, %u",
		  n_hinted[0], n_hinted[1]);
	cr_assert(n_compacted > 0 && n_enomem > 0 && n_orphaned > 0 && n_revived > 0 &&
			  n_rotated > 0,
		  "reached: %u compactions, %u -ENOMEM, %u orphans, %u revivals, "
		  "%u rotations",
		  n_compacted, n_enomem, n_orphaned, n_revived, n_rotated);
	cr_log_info("reached: %u compactions, %u -ENOMEM, %u orphans, %u revivals, "
		    "%u rotations",
		    n_compacted, n_enomem, n_orphaned, n_revived, n_rotated);
}

/* Detached members' tombstones pile up while the front stays put (a band
 * whose dispatcher is held by its gate); an attach that would need more
 * room compacts instead of growing, and the survivors keep their order and
 * their places. */
Test(flow_ring, orphans_are_compacted_at_attach_not_grown)
{
	struct model *t = calloc(1, sizeof(*t));

	cr_assert_not_null(t);
	model_init(t);
	for (int m = 0; m < 16; m++) {
		op_attach(t, m, false);
		op_push(t, m);
	}
	check(t);
	cr_assert_eq(t->r.cap, 16u);
	/* Members 1..12 leave from the middle and are detached. */
	for (int m = 1; m <= 12; m++) {
		cr_assert(op_remove(t, m));
		op_detach(t, m);
		check(t);
	}
	cr_assert_eq(t->r.orphans, 12u);
	cr_assert_eq(t->r.cap, 16u, "4 attached + 12 orphans fill 16 slots");
	/* The next attach needs a 17th slot: orphans (12) > attached (4):
	 * compaction, no allocation. */
	unsigned allocs = t->ca.allocs;

	op_attach(t, 20, false);
	cr_assert_eq(t->ca.allocs, allocs, "compacted, not grown");
	cr_assert_eq(t->r.orphans, 0u);
	cr_assert_eq(t->r.cap, 16u);
	check(t);
	op_push(t, 20);
	check(t);
	cr_assert_eq(flowq__fring_front(&t->r), &t->mem[0].pf);
	model_fini(t);
}

/* The array doubles as members attach and halves once at most a quarter
 * could be needed; push, remove and revive never allocate. */
Test(flow_ring, array_grows_and_shrinks_only_at_attach_and_detach)
{
	struct model *t = calloc(1, sizeof(*t));

	cr_assert_not_null(t);
	model_init(t);
	for (int m = 0; m < NM; m++) {
		op_attach(t, m, false);
		check(t);
	}
	cr_assert_eq(t->r.cap, 64u);
	unsigned allocs = t->ca.allocs;

	for (int round = 0; round < 3; round++) {
		for (int m = 0; m < NM; m++)
			if (!flowq__fring_owns(&t->r, &t->mem[m].pf))
				op_push(t, m);
		for (int m = 0; m < NM; m += 2)
			op_remove(t, m);
		for (int m = 0; m < NM; m += 4)
			op_revive(t, m);
		check(t);
	}
	cr_assert_eq(t->ca.allocs, allocs, "the hot path does not allocate");
	/* Drain the ring, then detach down to a quarter: the array halves. */
	while (!flowq__fring_empty(&t->r))
		op_remove(t, t->e[0].m);
	for (int m = NM - 1; m >= 8; m--) {
		op_detach(t, m);
		check(t);
	}
	cr_assert_leq(t->r.cap, 32u, "shrunk: cap %u for 8 attached", t->r.cap);
	cr_assert_geq(t->r.cap, 8u);
	model_fini(t);
}

/* A zeroed position owns nothing, whatever positions the ring has reached. */
Test(flow_ring, a_zeroed_position_owns_nothing)
{
	struct model *t = calloc(1, sizeof(*t));
	struct flowq_policy_flow z = {0};

	cr_assert_not_null(t);
	model_init(t);
	cr_assert_not(flowq__fring_owns(&t->r, &z));
	op_attach(t, 0, false);
	for (int k = 0; k < 100; k++) {
		flowq__fring_push(&t->r, &t->mem[0].pf);
		cr_assert_not(flowq__fring_owns(&t->r, &z));
		flowq__fring_remove(&t->r, &t->mem[0].pf);
	}
	model_fini(t);
}
