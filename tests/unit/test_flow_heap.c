/*
 * policies/flow_heap.c: the capacity rule shared by the heap-based policies
 * (flowq__fheap over flowq_heap, flowq__kheap with keys in the slots), and
 * flowq__kheap's heap operations against a brute-force model: after every
 * random push, remove, update and shift, every member's index names its
 * slot, the top is the model's minimum (key, seq), and popping everything
 * comes out in order. Allocation goes through a counting allocator that can
 * fail: attach doubles, detach halves at a quarter, -ENOMEM changes nothing,
 * fini frees everything.
 */
#include <errno.h>
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
	struct flowq__kheap_node kn;
	bool in;
	int64_t key;
	uint64_t seq;
};

static void
check(const struct flowq__kheap *h, struct member *m)
{
	int best = -1;
	uint32_t len = 0;

	for (int i = 0; i < N; i++) {
		if (!m[i].in) {
			cr_assert_not(flowq__kheap_member(&m[i].kn));
			continue;
		}
		len++;
		cr_assert(flowq__kheap_member(&m[i].kn));
		cr_assert_lt(m[i].kn.idx, h->len);
		cr_assert_eq(h->slots[m[i].kn.idx].node, &m[i].kn, "idx names its slot");
		cr_assert_eq(flowq__kheap_key(h, &m[i].kn), m[i].key);
		if (best < 0 || m[i].key < m[best].key ||
		    (m[i].key == m[best].key && m[i].seq < m[best].seq))
			best = i;
	}
	cr_assert_eq(len, h->len);
	if (best < 0)
		cr_assert_null(flowq__kheap_peek(h));
	else
		cr_assert_eq(flowq__kheap_peek(h), &m[best].kn);
}

Test(flow_heap, kheap_matches_a_model_through_random_operations)
{
	static struct member m[N];
	struct test_count_alloc ca;
	struct flowq__kheap h;
	uint64_t rng = 42, seq = 0;

	test_count_alloc_init(&ca);
	flowq__kheap_init(&h);
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
			struct member *cur = (struct member *)top;

			if (prev != NULL)
				cr_assert(prev->key < cur->key ||
					  (prev->key == cur->key && prev->seq < cur->seq));
			flowq__kheap_remove(&h, top);
			cur->in = false;
			prev = cur;
		}
	}
	for (int i = 0; i < N; i++)
		flowq__kheap_detach(&h, &ca.a);
	cr_assert_leq(h.cap, 2 * FLOWQ__FHEAP_MIN_CAP, "shrunk back");
	flowq__kheap_fini(&h, &ca.a);
	cr_assert_eq(ca.outstanding, 0);
}

/* The capacity rule, the same for both kinds: doubling, room for every
 * attached flow, shrink at a quarter, -ENOMEM leaves it unchanged. */
Test(flow_heap, capacity_grows_shrinks_and_survives_enomem)
{
	struct test_count_alloc ca;
	struct flowq__kheap k;
	struct flowq__fheap f;
	uint32_t cap;

	test_count_alloc_init(&ca);
	flowq__kheap_init(&k);
	flowq__fheap_init(&f);
	cr_assert_eq(ca.allocs, 0, "nothing before the first attach");
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(flowq__kheap_attach(&k, &ca.a), 0);
		cr_assert_eq(flowq__fheap_attach(&f, &ca.a), 0);
		cr_assert_geq(k.cap, k.nattached);
		cr_assert_geq(f.heap.cap, f.nattached);
	}
	cr_assert_leq(ca.allocs, 2 * 10u, "doubling: about log2(1000) each");
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
	while (f.nattached > 0)
		flowq__fheap_detach(&f, &ca.a);
	cr_assert_eq(k.cap, FLOWQ__FHEAP_MIN_CAP);
	cr_assert_eq(f.heap.cap, FLOWQ__FHEAP_MIN_CAP);
	flowq__kheap_fini(&k, &ca.a);
	flowq__fheap_fini(&f, &ca.a);
	cr_assert_eq(ca.outstanding, 0);
}
