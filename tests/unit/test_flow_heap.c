/*
 * policies/flow_heap.c: flowq__kheap's capacity rule, and its heap
 * operations against a brute-force model (members that are their nodes,
 * and members with the node inside): after every
 * random push, remove, update and shift, every member's index names its
 * slot, the top is the model's minimum (key, seq), and popping everything
 * comes out in order. Allocation goes through a counting allocator that can
 * fail: attach doubles, detach halves at a quarter, -ENOMEM changes nothing,
 * fini frees everything.
 */
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/alloc.h>

#include "flow_heap.h"
#include "count_alloc.h"
#include "test_util.h"

#define N 600

struct member {
	/* Room before the node, so that a heap with a node offset (as
	 * global_strict's, whose node is a hot word of the view) is tested. */
	uint64_t pad[3];
	struct flowq__kheap_node kn;
	bool in;
	int64_t key;
	uint64_t seq;
};

/* What the heap keeps for member i: the address node_off bytes before its
 * node (the node itself at offset 0). */
static void *
member_ptr(const struct flowq__kheap *h, struct member *m, int i)
{
	return (char *)&m[i].kn - h->node_off;
}

/* Whether member a orders before member b. */
static bool
before(const struct member *a, const struct member *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/* Every member's index names its slot and key; the top and the second
 * smallest, through every accessor, are the model's. */
static void
check(const struct flowq__kheap *h, struct member *m)
{
	int best = -1, second = -1;
	uint32_t len = 0;

	for (int i = 0; i < N; i++) {
		if (!m[i].in) {
			cr_assert_not(flowq__kheap_member(&m[i].kn));
			continue;
		}
		len++;
		cr_assert(flowq__kheap_member(&m[i].kn));
		cr_assert_lt(m[i].kn.idx, h->len);
		cr_assert_eq(h->slots[m[i].kn.idx].member, member_ptr(h, m, i),
			     "idx names its slot");
		cr_assert_eq(flowq__kheap_node_of(h, member_ptr(h, m, i)), &m[i].kn);
		cr_assert_eq(flowq__kheap_key(h, &m[i].kn), m[i].key);
		if (best < 0 || before(&m[i], &m[best])) {
			second = best;
			best = i;
		} else if (second < 0 || before(&m[i], &m[second])) {
			second = i;
		}
	}
	cr_assert_eq(len, h->len);
	if (best < 0) {
		cr_assert_null(flowq__kheap_peek(h));
		cr_assert_null(flowq__kheap_top_member(h));
	} else {
		cr_assert_eq(flowq__kheap_peek(h), &m[best].kn);
		cr_assert_eq(flowq__kheap_top_member(h), member_ptr(h, m, best));
	}
	if (second < 0)
		cr_assert_null(flowq__kheap_second_member(h));
	else
		cr_assert_eq(flowq__kheap_second_member(h), member_ptr(h, m, second),
			     "the second smallest");
}

static void
model_case(uint32_t node_off)
{
	static struct member m[N];
	struct test_count_alloc ca;
	struct flowq__kheap h;
	uint64_t rng = 42 + node_off, seq = 0;

	test_count_alloc_init(&ca);
	flowq__kheap_init_at(&h, node_off);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(flowq__kheap_attach(&h, &ca.a), 0);
		flowq__kheap_node_init(&m[i].kn);
		m[i].in = false;
	}
	cr_assert_geq(h.cap, N);
	for (int step = 0; step < 40000; step++) {
		int i = (int)(test_rng_next(&rng) % N);
		uint64_t r = test_rng_next(&rng) % 100;
		/* Few distinct keys, so ties (seq order) are common. */
		int64_t key = (int64_t)(test_rng_next(&rng) % 64) - 32;

		if (!m[i].in && r < 60) {
			m[i].key = key;
			m[i].seq = seq++;
			m[i].in = true;
			flowq__kheap_push(&h, &m[i].kn, key, m[i].seq);
		} else if (m[i].in && r < 40) {
			flowq__kheap_remove(&h, &m[i].kn);
			m[i].in = false;
		} else if (m[i].in) {
			m[i].key = key;
			flowq__kheap_update(&h, &m[i].kn, key);
		} else if (r > 97) {
			flowq__kheap_shift(&h, 5);
			for (int j = 0; j < N; j++)
				m[j].key -= m[j].in ? 5 : 0;
		}
		if (step % 97 == 0 || h.len < 8)
			check(&h, m);
	}
	check(&h, m);
	/* Drain by the top: non-decreasing (key, seq). */
	{
		struct member *prev = NULL;
		struct flowq__kheap_node *top;

		while ((top = flowq__kheap_peek(&h)) != NULL) {
			struct member *cur =
				(struct member *)((char *)top -
						  offsetof(struct member, kn));

			cr_assert_eq(flowq__kheap_top_member(&h),
				     flowq__kheap_member_of(&h, top));
			if (prev != NULL)
				cr_assert(before(prev, cur));
			flowq__kheap_remove(&h, top);
			cur->in = false;
			prev = cur;
		}
	}
	for (int i = 0; i < N; i++)
		flowq__kheap_detach(&h, &ca.a);
	cr_assert_leq(h.cap, 2 * FLOWQ__FLOWS_MIN_CAP, "shrunk back");
	flowq__kheap_fini(&h, &ca.a);
	cr_assert_eq(h.node_off, node_off, "fini keeps the offset");
	cr_assert_eq(ca.outstanding, 0);
}

Test(flow_heap, kheap_matches_a_model_through_random_operations)
{
	model_case(0);
}

Test(flow_heap, kheap_with_the_node_inside_its_member_matches_the_model)
{
	model_case((uint32_t)offsetof(struct member, kn));
}

/* The look-ahead (flowq__kheap_look_ahead()): with FLOWQ__KHEAP_AHEAD_MIN
 * members or more, exactly two calls, the top at stage 1 and the second
 * smallest at stage 0; below that, and without a hook, none. */
struct hints {
	const void *f[4];
	unsigned stage[4];
	unsigned n;
};

static void
record_hint(void *arg, const struct flowq_policy_flow *f, unsigned stage)
{
	struct hints *h = arg;

	cr_assert_lt(h->n, 4u);
	h->f[h->n] = f;
	h->stage[h->n] = stage;
	h->n++;
}

Test(flow_heap, look_ahead_names_the_top_then_the_second)
{
	static struct member m[32];
	struct test_count_alloc ca;
	struct flowq__kheap h;
	struct hints hints = {0};

	test_count_alloc_init(&ca);
	flowq__kheap_init_at(&h, (uint32_t)offsetof(struct member, kn));
	for (int i = 0; i < 32; i++) {
		cr_assert_eq(flowq__kheap_attach(&h, &ca.a), 0);
		flowq__kheap_node_init(&m[i].kn);
	}
	for (int i = 0; i < 32; i++) {
		/* Keys descending: every push is a new top; the old top
		 * becomes the second. */
		flowq__kheap_push(&h, &m[i].kn, 100 - i, (uint64_t)i);
		hints.n = 0;
		flowq__kheap_look_ahead(&h, NULL, &hints);
		flowq__kheap_look_ahead(&h, record_hint, &hints);
		if (i + 1 < (int)FLOWQ__KHEAP_AHEAD_MIN) {
			cr_assert_eq(hints.n, 0u, "a call with %d members", i + 1);
			continue;
		}
		cr_assert_eq(hints.n, 2u);
		cr_assert_eq(hints.stage[0], 1u);
		cr_assert_eq(hints.f[0], (void *)&m[i]);
		cr_assert_eq(hints.stage[1], 0u);
		cr_assert_eq(hints.f[1], (void *)&m[i - 1]);
	}
	while (flowq__kheap_peek(&h) != NULL)
		flowq__kheap_remove(&h, flowq__kheap_peek(&h));
	for (int i = 0; i < 32; i++)
		flowq__kheap_detach(&h, &ca.a);
	flowq__kheap_fini(&h, &ca.a);
	cr_assert_eq(ca.outstanding, 0);
}

/* The capacity rule: doubling, room for every attached flow, shrink at a
 * quarter, -ENOMEM leaves it unchanged. */
Test(flow_heap, capacity_grows_shrinks_and_survives_enomem)
{
	struct test_count_alloc ca;
	struct flowq__kheap k;
	uint32_t cap;

	test_count_alloc_init(&ca);
	flowq__kheap_init(&k);
	cr_assert_eq(ca.allocs, 0, "nothing before the first attach");
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(flowq__kheap_attach(&k, &ca.a), 0);
		cr_assert_geq(k.cap, k.nattached);
	}
	cr_assert_leq(ca.allocs, 10u, "doubling: about log2(1000)");
	cap = k.cap;
	ca.fail_after = ca.allocs; /* every allocation fails from here */
	while (k.nattached < cap)
		cr_assert_eq(flowq__kheap_attach(&k, &ca.a), 0, "room left: no allocation");
	cr_assert_eq(flowq__kheap_attach(&k, &ca.a), -ENOMEM);
	cr_assert_eq(k.cap, cap, "unchanged");
	cr_assert_eq(k.nattached, cap);
	/* Shrinking also allocates (a smaller array): it fails quietly and
	 * keeps the larger one; once memory is back, detach shrinks. */
	while (k.nattached > cap / 4)
		flowq__kheap_detach(&k, &ca.a);
	cr_assert_eq(k.cap, cap, "a failed shrink keeps the array");
	ca.fail_after = ~0ul;
	flowq__kheap_detach(&k, &ca.a);
	cr_assert_lt(k.cap, cap, "shrunk");
	while (k.nattached > 0)
		flowq__kheap_detach(&k, &ca.a);
	cr_assert_eq(k.cap, FLOWQ__FLOWS_MIN_CAP);
	flowq__kheap_fini(&k, &ca.a);
	cr_assert_eq(ca.outstanding, 0);
}

/* The growth rule both flow arrays use (flow_heap.h): the minimum first,
 * then doubling, then straight to the ceiling, and 0 (no room: attach
 * fails with -ENOMEM) at or above it. */
Test(flow_heap, capacity_growth_rule)
{
	const uint32_t max = UINT32_C(1) << 31;

	cr_assert_eq(flowq__cap_grown(0, max), FLOWQ__FLOWS_MIN_CAP);
	cr_assert_eq(flowq__cap_grown(FLOWQ__FLOWS_MIN_CAP - 1, max),
		     FLOWQ__FLOWS_MIN_CAP);
	cr_assert_eq(flowq__cap_grown(FLOWQ__FLOWS_MIN_CAP, max),
		     2 * FLOWQ__FLOWS_MIN_CAP);
	cr_assert_eq(flowq__cap_grown(max / 2, max), max);
	cr_assert_eq(flowq__cap_grown(max / 2 + 1, max), max,
		     "capped, not doubled past it");
	cr_assert_eq(flowq__cap_grown(max, max), 0);
	cr_assert_eq(flowq__cap_grown(UINT32_MAX, max), 0);
	/* A ceiling that is not a power of two (the heap's, 2^32 - 2). */
	cr_assert_eq(flowq__cap_grown(UINT32_C(1) << 31, UINT32_MAX - 1), UINT32_MAX - 1);
	cr_assert_eq(flowq__cap_grown(UINT32_MAX - 1, UINT32_MAX - 1), 0);
}
