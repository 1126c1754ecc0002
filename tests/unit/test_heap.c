/*
 * Unit tests for queues/heap.c: the intrusive 4-ary min-heap on (key, seq)
 * with removal by handle. After every mutation the heap property and every
 * member's idx are checked (check_heap()), and pop orders are compared with a
 * sorted reference.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/heap.h>

#include "test_util.h"

struct hitem {
	int id;
	struct flowq_heap_node hn; /* not first, as in struct flowq_req */
};

static struct hitem *
hitem_of(const struct flowq_heap_node *n)
{
	return (struct hitem *)((char *)n - offsetof(struct hitem, hn));
}

static bool
less(const struct flowq_heap_node *a, const struct flowq_heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/* 4-ary heap order on (key, seq), and every member's idx is its slot. */
static void
check_heap(const struct flowq_heap *h)
{
	cr_assert_leq(h->len, h->cap);
	for (uint32_t i = 0; i < h->len; i++) {
		cr_assert_eq(h->slots[i]->idx, i, "slot %u holds a member with idx %u", i,
			     h->slots[i]->idx);
		if (i > 0)
			cr_assert_not(less(h->slots[i], h->slots[(i - 1) / 4]),
				      "slot %u is smaller than its parent", i);
	}
	cr_assert_eq(flowq_heap_len(h), h->len);
	cr_assert_eq(flowq_heap_peek(h), h->len ? h->slots[0] : NULL);
}

static int
cmp_node_ptr(const void *a, const void *b)
{
	const struct flowq_heap_node *x = *(struct flowq_heap_node *const *)a;
	const struct flowq_heap_node *y = *(struct flowq_heap_node *const *)b;

	return less(x, y) ? -1 : less(y, x) ? 1 : 0;
}

/* Pop everything and compare with @ref (the members, any order). */
static void
assert_pops_sorted(struct flowq_heap *h, struct flowq_heap_node **ref, size_t n)
{
	qsort(ref, n, sizeof(*ref), cmp_node_ptr);
	cr_assert_eq(flowq_heap_len(h), n);
	for (size_t i = 0; i < n; i++) {
		struct flowq_heap_node *top = flowq_heap_pop(h);

		cr_assert_eq(top, ref[i],
			     "pop %zu: got id %d (key %lld seq %llu), want id %d (key "
			     "%lld seq "
			     "%llu)",
			     i, top ? hitem_of(top)->id : -1,
			     top ? (long long)top->key : 0,
			     top ? (unsigned long long)top->seq : 0, hitem_of(ref[i])->id,
			     (long long)ref[i]->key, (unsigned long long)ref[i]->seq);
		cr_assert_not(flowq_heap_member(top), "popped node is no member");
		cr_assert_eq(top->idx, FLOWQ_HEAP_NONE);
		if (i % 64 == 0)
			check_heap(h);
	}
	cr_assert_null(flowq_heap_pop(h));
	cr_assert_eq(flowq_heap_len(h), 0);
}

static void
init_items(struct hitem *it, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		it[i].id = (int)i;
		it[i].hn.key = 0;
		it[i].hn.seq = i;
		flowq_heap_node_init(&it[i].hn);
	}
}

static struct flowq_heap_node **
new_slots(size_t cap)
{
	struct flowq_heap_node **s = calloc(cap ? cap : 1, sizeof(*s));

	cr_assert_not_null(s);
	return s;
}

/* ------------------------------------------------------------------------ */

Test(heap, init_is_empty)
{
	struct flowq_heap_node *slots[8];
	struct flowq_heap h;

	flowq_heap_init(&h, slots, 8);
	cr_assert_eq(flowq_heap_len(&h), 0);
	cr_assert_null(flowq_heap_peek(&h));
	cr_assert_null(flowq_heap_pop(&h));
	cr_assert_eq(h.cap, 8);
	check_heap(&h);
}

Test(heap, init_null_slots_has_no_room)
{
	struct flowq_heap h;
	struct flowq_heap_node *one[1];
	struct hitem it;

	/* A cap beyond the index range is clamped (the caller's array must of
	 * course really be that large before it pushes that much). */
	flowq_heap_init(&h, one, UINT32_MAX);
	cr_assert_eq(h.cap, FLOWQ_HEAP_MAX_CAP, "cap is clamped to FLOWQ_HEAP_MAX_CAP");
	/* cap is ignored with NULL slots: nothing can be pushed. */
	flowq_heap_init(&h, NULL, 5);
	cr_assert_eq(h.cap, 0);
	init_items(&it, 1);
	cr_assert_eq(flowq_heap_push(&h, &it.hn), -ENOSPC);
	cr_assert_not(flowq_heap_member(&it.hn));
	cr_assert_null(flowq_heap_pop(&h));
}

Test(heap, node_init_is_no_member)
{
	struct flowq_heap_node n = {.idx = 3};

	cr_assert(flowq_heap_member(&n));
	flowq_heap_node_init(&n);
	cr_assert_not(flowq_heap_member(&n));
	cr_assert_eq(n.idx, FLOWQ_HEAP_NONE);
}

Test(heap, one_member)
{
	struct flowq_heap_node *slots[2];
	struct flowq_heap h;
	struct hitem it;

	flowq_heap_init(&h, slots, 2);
	init_items(&it, 1);
	it.hn.key = -5;
	cr_assert_eq(flowq_heap_push(&h, &it.hn), 0);
	cr_assert(flowq_heap_member(&it.hn));
	cr_assert_eq(it.hn.idx, 0);
	cr_assert_eq(flowq_heap_len(&h), 1);
	cr_assert_eq(flowq_heap_peek(&h), &it.hn);
	cr_assert_eq(flowq_heap_pop(&h), &it.hn);
	cr_assert_not(flowq_heap_member(&it.hn));
	cr_assert_null(flowq_heap_peek(&h));
	/* Pushable again after the pop. */
	cr_assert_eq(flowq_heap_push(&h, &it.hn), 0);
	cr_assert_eq(flowq_heap_remove(&h, &it.hn), 0);
	cr_assert_eq(flowq_heap_len(&h), 0);
}

static void
random_keys_vs_sorted(uint64_t seed, uint64_t key_range)
{
	enum { N = 3000 };
	static struct hitem it[N];
	static struct flowq_heap_node *ref[N];
	struct flowq_heap_node **slots = new_slots(N);
	struct flowq_heap h;

	flowq_heap_init(&h, slots, N);
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		uint64_t r = test_rng_next(&seed);

		it[i].hn.key =
			key_range ? (int64_t)(r % key_range) - (int64_t)(key_range / 2)
				  : (int64_t)r;
		ref[i] = &it[i].hn;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
		if (i % 97 == 0)
			check_heap(&h);
	}
	check_heap(&h);
	assert_pops_sorted(&h, ref, N);
	free(slots);
}

Test(heap, random_wide_keys_pop_sorted)
{
	random_keys_vs_sorted(1, 0);
}

Test(heap, random_narrow_keys_pop_sorted_ties_by_seq)
{
	/* 16 distinct keys for 3000 members: ties everywhere. */
	random_keys_vs_sorted(2, 16);
}

Test(heap, extreme_keys_and_seqs)
{
	struct flowq_heap_node *slots[6];
	struct flowq_heap_node *ref[6];
	struct flowq_heap h;
	struct hitem it[6];
	const int64_t keys[6] = {INT64_MAX, INT64_MIN, 0, INT64_MIN, -1, INT64_MAX};
	const uint64_t seqs[6] = {0, UINT64_MAX, 7, 0, 1, UINT64_MAX};

	flowq_heap_init(&h, slots, 6);
	init_items(it, 6);
	for (int i = 0; i < 6; i++) {
		it[i].hn.key = keys[i];
		it[i].hn.seq = seqs[i];
		ref[i] = &it[i].hn;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	}
	check_heap(&h);
	cr_assert_eq(flowq_heap_peek(&h), &it[3].hn, "(INT64_MIN, 0) is the smallest");
	assert_pops_sorted(&h, ref, 6);
}

Test(heap, ties_leave_in_seq_order)
{
	enum { N = 500 };
	static struct hitem it[N];
	struct flowq_heap_node **slots = new_slots(N);
	struct flowq_heap h;
	uint64_t seed = 3;

	flowq_heap_init(&h, slots, N);
	init_items(it, N);
	/* Same key; seq = id; pushed in a random order. */
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(test_rng_next(&seed) % (uint64_t)(i + 1));
		struct hitem t = it[i];

		it[i] = it[j];
		it[j] = t;
	}
	for (int i = 0; i < N; i++) {
		it[i].hn.key = 42;
		it[i].hn.seq = (uint64_t)it[i].id;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	}
	check_heap(&h);
	for (int want = 0; want < N; want++) {
		struct flowq_heap_node *n = flowq_heap_pop(&h);

		cr_assert_not_null(n);
		cr_assert_eq(hitem_of(n)->id, want, "equal keys must leave in seq order");
	}
	free(slots);
}

Test(heap, fifo_among_equal_keys_with_other_keys_mixed_in)
{
	struct flowq_heap_node *slots[8];
	struct flowq_heap h;
	struct hitem it[8];
	const int64_t keys[8] = {5, 1, 5, 1, 5, 0, 1, 5};
	const int want[8] = {5, 1, 3, 6, 0, 2, 4, 7};

	flowq_heap_init(&h, slots, 8);
	init_items(it, 8); /* seq = insertion index */
	for (int i = 0; i < 8; i++) {
		it[i].hn.key = keys[i];
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	}
	for (int i = 0; i < 8; i++)
		cr_assert_eq(hitem_of(flowq_heap_pop(&h))->id, want[i], "pop %d", i);
}

/* ------------------------------------------------------------------------ */
/* Removal by handle */

Test(heap, remove_from_every_position)
{
	/* Up to 90 members: four levels of a 4-ary heap (1 + 4 + 16 + 64). */
	enum { MAXN = 90 };
	struct hitem it[MAXN];
	struct flowq_heap_node *slots[MAXN];
	struct flowq_heap_node *ref[MAXN];
	uint64_t seed = 4;

	for (uint32_t n = 1; n <= MAXN; n++) {
		for (uint32_t pos = 0; pos < n; pos++) {
			struct flowq_heap h;
			struct flowq_heap_node *victim;
			size_t nref = 0;

			flowq_heap_init(&h, slots, MAXN);
			init_items(it, n);
			for (uint32_t i = 0; i < n; i++) {
				it[i].hn.key = (int64_t)(test_rng_next(&seed) % 32);
				cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
			}
			victim = h.slots[pos];
			cr_assert_eq(flowq_heap_remove(&h, victim), 0, "n %u pos %u", n,
				     pos);
			cr_assert_not(flowq_heap_member(victim));
			cr_assert_eq(victim->idx, FLOWQ_HEAP_NONE);
			cr_assert_eq(flowq_heap_len(&h), n - 1);
			check_heap(&h);
			cr_assert_eq(flowq_heap_remove(&h, victim), -EINVAL,
				     "second remove");
			for (uint32_t i = 0; i < n; i++) {
				if (&it[i].hn != victim)
					ref[nref++] = &it[i].hn;
			}
			assert_pops_sorted(&h, ref, nref);
		}
	}
}

/*
 * Removing a member whose hole is filled by a last member smaller than the
 * hole's parent must sift that member up, not only down. Slots (children of
 * slot i are 4i+1 .. 4i+4): every key is at least its parent's, so each push
 * stays in its slot. The last member (slot 21, child of slot 5) has key 50;
 * slot 17 is a child of slot 4, whose key is 100. Removing slot 17 moves the
 * key-50 member there, below a parent of key 100: it has to rise to slot 4.
 */
Test(heap, remove_sifts_the_replacement_up)
{
	enum { N = 22 };
	struct flowq_heap_node *slots[N];
	struct flowq_heap_node *ref[N];
	struct hitem it[N];
	struct flowq_heap h;
	size_t nref = 0;

	flowq_heap_init(&h, slots, N);
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].hn.key = i == 0   ? 0
			       : i < 4  ? 10
			       : i == 4 ? 100
			       : i < 17 ? 20
			       : i < 21 ? 200
					: 50;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
		cr_assert_eq(it[i].hn.idx, (uint32_t)i, "push %d moved", i);
	}
	check_heap(&h);
	cr_assert_eq(flowq_heap_remove(&h, &it[17].hn), 0);
	check_heap(&h);
	cr_assert_eq(it[21].hn.idx, 4, "the replacement rose to its parent's slot");
	cr_assert_eq(it[4].hn.idx, 17, "and the parent went down into the hole");
	for (int i = 0; i < N; i++) {
		if (i != 17)
			ref[nref++] = &it[i].hn;
	}
	assert_pops_sorted(&h, ref, nref);
}

/* Removing the last slot needs no sift at all; removing the root sifts down. */
Test(heap, remove_last_slot_and_root)
{
	enum { N = 10 };
	struct flowq_heap_node *slots[N];
	struct flowq_heap_node *ref[N];
	struct hitem it[N];
	struct flowq_heap h;
	size_t nref = 0;

	flowq_heap_init(&h, slots, N);
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].hn.key = i;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	}
	cr_assert_eq(flowq_heap_remove(&h, h.slots[N - 1]), 0);
	check_heap(&h);
	cr_assert_eq(flowq_heap_remove(&h, flowq_heap_peek(&h)), 0);
	check_heap(&h);
	cr_assert_eq(flowq_heap_peek(&h), &it[1].hn);
	for (int i = 1; i < N - 1; i++)
		ref[nref++] = &it[i].hn;
	assert_pops_sorted(&h, ref, nref);
}

/* ------------------------------------------------------------------------ */
/* Update */

Test(heap, update_up_and_down)
{
	enum { N = 200 };
	struct hitem it[N];
	struct flowq_heap_node *slots[N];
	struct flowq_heap_node *ref[N];
	struct flowq_heap h;
	uint64_t seed = 5;

	flowq_heap_init(&h, slots, N);
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].hn.key = (int64_t)(test_rng_next(&seed) % 1000);
		ref[i] = &it[i].hn;
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	}

	/* The root down to the very bottom. */
	{
		struct flowq_heap_node *root = flowq_heap_peek(&h);

		cr_assert_eq(flowq_heap_update(&h, root, 5000), 0);
		cr_assert_eq(root->key, 5000);
		cr_assert(flowq_heap_member(root));
		cr_assert_neq(flowq_heap_peek(&h), root);
		check_heap(&h);
	}
	/* The last slot (a leaf) up to the top. */
	{
		struct flowq_heap_node *leaf = h.slots[h.len - 1];

		cr_assert_eq(flowq_heap_update(&h, leaf, -5000), 0);
		cr_assert_eq(flowq_heap_peek(&h), leaf);
		check_heap(&h);
	}
	/* Same key: nothing moves. */
	{
		struct flowq_heap_node *n = h.slots[7];

		cr_assert_eq(flowq_heap_update(&h, n, n->key), 0);
		cr_assert_eq(n->idx, 7);
		check_heap(&h);
	}
	/* Random updates both ways. */
	for (int k = 0; k < 5000; k++) {
		uint64_t r = test_rng_next(&seed);
		struct flowq_heap_node *n = &it[r % N].hn;
		int64_t key = (int64_t)((r >> 16) % 3000) - 1000;

		cr_assert_eq(flowq_heap_update(&h, n, key), 0);
		cr_assert_eq(n->key, key);
		if (k % 50 == 0)
			check_heap(&h);
	}
	check_heap(&h);
	assert_pops_sorted(&h, ref, N);
}

/* ------------------------------------------------------------------------ */
/* Capacity and errors */

Test(heap, full_gives_enospc_then_grow)
{
	struct flowq_heap_node **small = new_slots(4), **big = new_slots(9), **old = NULL;
	struct flowq_heap_node *ref[9];
	struct flowq_heap h;
	struct hitem it[9];

	flowq_heap_init(&h, small, 4);
	init_items(it, 9);
	for (int i = 0; i < 9; i++) {
		it[i].hn.key = 9 - i;
		ref[i] = &it[i].hn;
	}
	for (int i = 0; i < 4; i++)
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0);
	cr_assert_eq(flowq_heap_push(&h, &it[4].hn), -ENOSPC);
	cr_assert_not(flowq_heap_member(&it[4].hn), "a refused push leaves no trace");
	cr_assert_eq(flowq_heap_len(&h), 4);
	check_heap(&h);

	/* Too small (cap < len) or NULL: -EINVAL, heap unchanged. */
	old = (struct flowq_heap_node **)&old;
	cr_assert_eq(flowq_heap_grow(&h, big, 3, &old), -EINVAL);
	cr_assert_eq(flowq_heap_grow(&h, NULL, 9, &old), -EINVAL);
	cr_assert_eq(flowq_heap_grow(&h, small, 4, &old), -EINVAL, "same array");
	cr_assert_eq(flowq_heap_grow(&h, big, UINT32_MAX, &old), -EINVAL,
		     "cap above FLOWQ_HEAP_MAX_CAP");
	cr_assert_eq(old, (struct flowq_heap_node **)&old, "r_old untouched on error");
	cr_assert_eq(h.slots, small);
	cr_assert_eq(h.cap, 4);
	check_heap(&h);

	cr_assert_eq(flowq_heap_grow(&h, big, 9, &old), 0);
	cr_assert_eq(old, small, "the old array comes back to be freed");
	cr_assert_eq(h.slots, big);
	cr_assert_eq(h.cap, 9);
	check_heap(&h);
	for (int i = 4; i < 9; i++)
		cr_assert_eq(flowq_heap_push(&h, &it[i].hn), 0, "push %d after grow", i);
	check_heap(&h);
	cr_assert_eq(flowq_heap_push(&h, &it[0].hn), -EINVAL, "already a member");
	assert_pops_sorted(&h, ref, 9);
	free(old);
	free(big);
}

Test(heap, grow_to_exactly_len_and_from_null)
{
	struct flowq_heap_node **a = new_slots(2), **b = new_slots(3), **old;
	struct flowq_heap h;
	struct hitem it[3];

	init_items(it, 3);
	flowq_heap_init(&h, NULL, 0);
	cr_assert_eq(flowq_heap_grow(&h, a, 2, &old), 0);
	cr_assert_null(old, "growing from no array hands back NULL");
	cr_assert_eq(flowq_heap_push(&h, &it[0].hn), 0);
	cr_assert_eq(flowq_heap_push(&h, &it[1].hn), 0);
	/* cap == len is allowed and leaves the heap full. */
	cr_assert_eq(flowq_heap_grow(&h, b, 2, &old), 0);
	cr_assert_eq(old, a);
	cr_assert_eq(flowq_heap_push(&h, &it[2].hn), -ENOSPC);
	check_heap(&h);
	cr_assert_eq(flowq_heap_pop(&h), &it[0].hn);
	cr_assert_eq(flowq_heap_pop(&h), &it[1].hn);
	free(a);
	free(b);
}

Test(heap, einval_cases)
{
	struct flowq_heap_node *s1[4], *s2[4];
	struct flowq_heap h1, h2;
	struct hitem it[4];

	flowq_heap_init(&h1, s1, 4);
	flowq_heap_init(&h2, s2, 4);
	init_items(it, 4);
	cr_assert_eq(flowq_heap_push(&h1, &it[0].hn), 0);
	cr_assert_eq(flowq_heap_push(&h1, &it[1].hn), 0);
	cr_assert_eq(flowq_heap_push(&h2, &it[2].hn), 0);

	/* Push of a member: of this heap, of another heap. */
	cr_assert_eq(flowq_heap_push(&h1, &it[0].hn), -EINVAL);
	cr_assert_eq(flowq_heap_push(&h1, &it[2].hn), -EINVAL);
	cr_assert_eq(flowq_heap_len(&h1), 2);

	/* Remove/update of a non-member: never pushed, or in another heap. */
	cr_assert_eq(flowq_heap_remove(&h1, &it[3].hn), -EINVAL);
	cr_assert_eq(flowq_heap_update(&h1, &it[3].hn, 9), -EINVAL);
	cr_assert_eq(it[3].hn.key, 0, "a refused update leaves the key alone");
	cr_assert_eq(it[2].hn.idx, 0);
	cr_assert_eq(flowq_heap_remove(&h1, &it[2].hn), -EINVAL,
		     "idx 0 is valid in h1 but the slot holds another node");
	cr_assert_eq(flowq_heap_update(&h1, &it[2].hn, -9), -EINVAL);
	cr_assert_eq(it[2].hn.key, 0);
	cr_assert(flowq_heap_member(&it[2].hn), "still a member of h2");
	cr_assert_eq(flowq_heap_peek(&h2), &it[2].hn);

	/* A stale idx past the length. */
	{
		struct flowq_heap_node stale = {.idx = 3};

		cr_assert_eq(flowq_heap_remove(&h1, &stale), -EINVAL);
		cr_assert_eq(flowq_heap_update(&h1, &stale, 1), -EINVAL);
	}
	check_heap(&h1);
	check_heap(&h2);
	cr_assert_eq(flowq_heap_len(&h1), 2);
	cr_assert_eq(flowq_heap_len(&h2), 1);

	/* A popped or removed node is no member any more. */
	cr_assert_eq(flowq_heap_remove(&h1, &it[1].hn), 0);
	cr_assert_eq(flowq_heap_remove(&h1, &it[1].hn), -EINVAL);
	cr_assert_eq(flowq_heap_update(&h1, &it[1].hn, 1), -EINVAL);
	cr_assert_eq(flowq_heap_pop(&h1), &it[0].hn);
	cr_assert_eq(flowq_heap_remove(&h1, &it[0].hn), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Randomized model test against an unsorted array. */

Test(heap, random_model)
{
	enum { N = 256, OPS = 200000 };
	static struct hitem it[N];
	struct flowq_heap_node *model[N]; /* live members, any order */
	struct flowq_heap_node **slots = new_slots(8), **old;
	uint32_t cap = 8;
	size_t len = 0;
	uint64_t seed = 6, next_seq = 0;
	struct flowq_heap h;

	flowq_heap_init(&h, slots, cap);
	init_items(it, N);
	for (int op = 0; op < OPS; op++) {
		uint64_t r = test_rng_next(&seed);
		struct flowq_heap_node *n = &it[(r >> 8) % N].hn;

		switch (r % 5) {
		case 0:
		case 1: { /* push (grow on -ENOSPC) */
			int rc;

			if (flowq_heap_member(n)) {
				cr_assert_eq(flowq_heap_push(&h, n), -EINVAL);
				break;
			}
			n->key = (int64_t)((r >> 20) % 64);
			n->seq = next_seq++;
			rc = flowq_heap_push(&h, n);
			if (rc == -ENOSPC) {
				cr_assert_eq(len, cap, "op %d: -ENOSPC below capacity",
					     op);
				cap *= 2;
				cr_assert_eq(
					flowq_heap_grow(&h, new_slots(cap), cap, &old),
					0);
				free(old);
				rc = flowq_heap_push(&h, n);
			}
			cr_assert_eq(rc, 0, "op %d", op);
			model[len++] = n;
			break;
		}
		case 2: { /* pop: the model's minimum */
			struct flowq_heap_node *top = flowq_heap_pop(&h);
			size_t min = 0;

			if (len == 0) {
				cr_assert_null(top);
				break;
			}
			for (size_t i = 1; i < len; i++) {
				if (less(model[i], model[min]))
					min = i;
			}
			cr_assert_eq(top, model[min], "op %d: pop", op);
			model[min] = model[--len];
			break;
		}
		case 3: /* remove: any member, or a non-member */
			if (!flowq_heap_member(n)) {
				cr_assert_eq(flowq_heap_remove(&h, n), -EINVAL);
				break;
			}
			cr_assert_eq(flowq_heap_remove(&h, n), 0, "op %d", op);
			for (size_t i = 0; i < len; i++) {
				if (model[i] == n) {
					model[i] = model[--len];
					break;
				}
			}
			break;
		default: /* update */
			if (!flowq_heap_member(n)) {
				cr_assert_eq(flowq_heap_update(&h, n, 1), -EINVAL);
				break;
			}
			cr_assert_eq(flowq_heap_update(&h, n, (int64_t)((r >> 20) % 64)),
				     0);
			break;
		}
		cr_assert_eq(flowq_heap_len(&h), len, "op %d: length", op);
		if (len != 0) {
			size_t min = 0;

			for (size_t i = 1; i < len; i++) {
				if (less(model[i], model[min]))
					min = i;
			}
			cr_assert_eq(flowq_heap_peek(&h), model[min], "op %d: peek", op);
		}
		if (op % 128 == 0)
			check_heap(&h);
	}
	check_heap(&h);
	assert_pops_sorted(&h, model, len);
	free(h.slots);
}
