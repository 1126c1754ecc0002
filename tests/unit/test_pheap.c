/*
 * Unit tests for queues/pheap.c: the intrusive pairing heap on (key, seq)
 * with removal by handle. After mutations the representation invariants of
 * queues/pheap.c are checked (check_pheap(): heap order, prev/next/child
 * links, the root's self-prev, len), and pop orders are compared with a
 * sorted reference, including a randomized model check (push, pop, remove
 * by handle, peek) over many seeds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/pheap.h>

#include "test_util.h"

struct pitem {
	int id;
	struct flowq_pheap_node pn; /* not first, as in struct flowq_req */
	bool in;                    /* the model's view: a member */
};

static struct pitem *
pitem_of(const struct flowq_pheap_node *n)
{
	return (struct pitem *)((char *)n - offsetof(struct pitem, pn));
}

static bool
less(const struct flowq_pheap_node *a, const struct flowq_pheap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/*
 * Every invariant listed at the top of queues/pheap.c, by an iterative walk
 * (a pairing heap can be len deep: no recursion here either).
 */
static void
check_pheap(const struct flowq_pheap *h)
{
	const struct flowq_pheap_node *root = flowq_pheap_peek(h);
	const struct flowq_pheap_node **stack;
	size_t top = 0, seen = 0;

	if (root == NULL) {
		cr_assert_eq(flowq_pheap_len(h), 0, "empty heap with len %zu",
			     flowq_pheap_len(h));
		return;
	}
	cr_assert_eq(root->prev, root, "the root's prev is not itself");
	cr_assert_null(root->next, "the root has a sibling");
	stack = malloc(flowq_pheap_len(h) * sizeof(*stack));
	cr_assert_not_null(stack);
	stack[top++] = root;
	while (top > 0) {
		const struct flowq_pheap_node *n = stack[--top], *left = n;

		seen++;
		cr_assert_leq(seen, flowq_pheap_len(h), "more nodes than len (a cycle?)");
		for (const struct flowq_pheap_node *c = n->child; c != NULL;
		     c = c->next) {
			cr_assert_eq(c->prev, left, "child %d: prev is not %s",
				     pitem_of(c)->id,
				     left == n ? "its parent" : "its left sibling");
			cr_assert_not(less(c, n), "child %d is smaller than parent %d",
				      pitem_of(c)->id, pitem_of(n)->id);
			cr_assert(flowq_pheap_member(c));
			cr_assert_lt(top, flowq_pheap_len(h), "more nodes than len");
			stack[top++] = c;
			left = c;
		}
	}
	free(stack);
	cr_assert_eq(seen, flowq_pheap_len(h), "len %zu but %zu nodes reachable",
		     flowq_pheap_len(h), seen);
}

static void
init_items(struct pitem *it, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		it[i].id = (int)i;
		it[i].in = false;
		it[i].pn.key = 0;
		it[i].pn.seq = i;
		flowq_pheap_node_init(&it[i].pn);
	}
}

static int
cmp_node_ptr(const void *a, const void *b)
{
	const struct flowq_pheap_node *x = *(struct flowq_pheap_node *const *)a;
	const struct flowq_pheap_node *y = *(struct flowq_pheap_node *const *)b;

	return less(x, y) ? -1 : less(y, x) ? 1 : 0;
}

/* Pop everything and compare with @ref (the members, any order). */
static void
assert_pops_sorted(struct flowq_pheap *h, struct flowq_pheap_node **ref, size_t n)
{
	qsort(ref, n, sizeof(*ref), cmp_node_ptr);
	cr_assert_eq(flowq_pheap_len(h), n);
	for (size_t i = 0; i < n; i++) {
		struct flowq_pheap_node *top = flowq_pheap_pop(h);

		cr_assert_eq(
			top, ref[i],
			"pop %zu: got id %d (key %lld seq %llu), want id %d (key %lld "
			"seq %llu)",
			i, top ? pitem_of(top)->id : -1, top ? (long long)top->key : 0,
			top ? (unsigned long long)top->seq : 0, pitem_of(ref[i])->id,
			(long long)ref[i]->key, (unsigned long long)ref[i]->seq);
		cr_assert_not(flowq_pheap_member(top), "a popped node is no member");
		cr_assert(top->child == NULL && top->next == NULL && top->prev == NULL);
		/* Every pop on small heaps, 16 times per run on big ones. */
		if (n < 2000 || i % (n / 16) == 0)
			check_pheap(h);
	}
	cr_assert_null(flowq_pheap_pop(h));
	cr_assert_eq(flowq_pheap_len(h), 0);
}

/* ------------------------------------------------------------------------ */

Test(pheap, zeroed_and_init_are_empty)
{
	struct flowq_pheap h;

	memset(&h, 0, sizeof(h));
	cr_assert_eq(flowq_pheap_len(&h), 0);
	cr_assert_null(flowq_pheap_peek(&h));
	cr_assert_null(flowq_pheap_pop(&h));
	h.root = (struct flowq_pheap_node *)&h; /* garbage */
	h.len = 7;
	flowq_pheap_init(&h);
	cr_assert_null(flowq_pheap_peek(&h));
	cr_assert_eq(flowq_pheap_len(&h), 0);
	check_pheap(&h);
}

Test(pheap, one_member)
{
	struct flowq_pheap h = {0};
	struct pitem it;

	init_items(&it, 1);
	cr_assert_not(flowq_pheap_member(&it.pn));
	cr_assert_eq(flowq_pheap_push(&h, &it.pn), 0);
	cr_assert(flowq_pheap_member(&it.pn));
	cr_assert_eq(flowq_pheap_peek(&h), &it.pn);
	cr_assert_eq(flowq_pheap_len(&h), 1);
	check_pheap(&h);
	cr_assert_eq(flowq_pheap_pop(&h), &it.pn);
	cr_assert_not(flowq_pheap_member(&it.pn));
	cr_assert_null(flowq_pheap_peek(&h));
	/* Pushed again after a pop, then removed by handle as the root. */
	cr_assert_eq(flowq_pheap_push(&h, &it.pn), 0);
	cr_assert_eq(flowq_pheap_remove(&h, &it.pn), 0);
	cr_assert_not(flowq_pheap_member(&it.pn));
	cr_assert_eq(flowq_pheap_len(&h), 0);
	check_pheap(&h);
}

Test(pheap, misuse_is_einval_and_changes_nothing)
{
	struct flowq_pheap h = {0}, other = {0};
	struct pitem it[4];

	init_items(it, 4);
	for (int i = 0; i < 3; i++) {
		it[i].pn.key = i;
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
	}
	cr_assert_eq(flowq_pheap_push(&other, &it[3].pn), 0);
	/* Pushing a member, of this heap or another, is refused. */
	cr_assert_eq(flowq_pheap_push(&h, &it[0].pn), -EINVAL, "the root");
	cr_assert_eq(flowq_pheap_push(&h, &it[2].pn), -EINVAL, "a child");
	cr_assert_eq(flowq_pheap_push(&h, &it[3].pn), -EINVAL, "another heap's");
	/* Removing a non-member or another heap's root is refused. */
	cr_assert_eq(flowq_pheap_remove(&h, &it[3].pn), -EINVAL);
	cr_assert_eq(flowq_pheap_remove(&other, &it[0].pn), -EINVAL);
	cr_assert_eq(flowq_pheap_pop(&h), &it[0].pn);
	cr_assert_eq(flowq_pheap_remove(&h, &it[0].pn), -EINVAL, "popped already");
	cr_assert_eq(flowq_pheap_len(&h), 2);
	cr_assert_eq(flowq_pheap_len(&other), 1);
	check_pheap(&h);
	check_pheap(&other);
	cr_assert_eq(flowq_pheap_pop(&h), &it[1].pn);
	cr_assert_eq(flowq_pheap_pop(&h), &it[2].pn);
	cr_assert_eq(flowq_pheap_pop(&other), &it[3].pn);
}

/* FIFO among equal keys: seq decides, whatever the push order. */
Test(pheap, equal_keys_leave_by_seq)
{
	enum { N = 300 };
	struct flowq_pheap h = {0};
	struct pitem it[N];
	uint64_t rng = 42;

	init_items(it, N);
	/* Pushed in a shuffled order. */
	int order[N];
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(test_rng_next(&rng) % (uint64_t)(i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < N; i++) {
		it[order[i]].pn.key = 5;
		cr_assert_eq(flowq_pheap_push(&h, &it[order[i]].pn), 0);
	}
	check_pheap(&h);
	for (int i = 0; i < N; i++) {
		struct flowq_pheap_node *n = flowq_pheap_pop(&h);
		cr_assert_eq(pitem_of(n)->id, i, "pop %d gave seq %llu", i,
			     (unsigned long long)n->seq);
	}
	/* And in push (= seq) order with mixed keys: among equal keys the
	 * earlier push leaves first, which is what the orderings rely on. */
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].pn.key = (int64_t)(test_rng_next(&rng) % 4);
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
	}
	struct flowq_pheap_node *prev = NULL;
	for (int i = 0; i < N; i++) {
		struct flowq_pheap_node *n = flowq_pheap_pop(&h);
		if (prev != NULL)
			cr_assert(prev->key < n->key ||
					  (prev->key == n->key && prev->seq < n->seq),
				  "pop %d out of order", i);
		prev = n;
	}
}

/*
 * Remove each position of a shaped heap: the root, a first child, a middle
 * sibling, a last sibling, a node with children, a leaf deep down.
 */
Test(pheap, remove_by_handle_at_every_position)
{
	enum { N = 64 };
	struct pitem it[N];
	struct flowq_pheap_node *ref[N];

	for (int victim = 0; victim < N; victim++) {
		struct flowq_pheap h = {0};
		uint64_t rng = 7;
		size_t nref = 0;

		init_items(it, N);
		for (int i = 0; i < N; i++) {
			it[i].pn.key = (int64_t)(test_rng_next(&rng) % 50);
			cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
		}
		/* A pop restructures the root's children into a deeper tree. */
		struct flowq_pheap_node *first = flowq_pheap_pop(&h);
		cr_assert_not_null(first);
		check_pheap(&h);
		if (first == &it[victim].pn)
			continue; /* already gone */
		cr_assert_eq(flowq_pheap_remove(&h, &it[victim].pn), 0, "victim %d",
			     victim);
		cr_assert_not(flowq_pheap_member(&it[victim].pn));
		check_pheap(&h);
		for (int i = 0; i < N; i++) {
			if (&it[i].pn != first && i != victim)
				ref[nref++] = &it[i].pn;
		}
		assert_pops_sorted(&h, ref, nref);
	}
}

/*
 * The model check: random pushes (small key range, so ties are common),
 * pops, removes of a random member and peeks, against the model's member
 * set; every pop must be the minimum by (key, seq) of the model's members.
 * At the end what is left is popped against a sorted copy.
 */
static void
model_run(uint64_t seed, size_t nitems, unsigned steps, uint64_t keyrange)
{
	struct flowq_pheap h = {0};
	struct pitem *it = calloc(nitems, sizeof(*it));
	struct flowq_pheap_node **ref = calloc(nitems, sizeof(*ref));
	uint64_t rng = seed, seq = 0;
	size_t members = 0;

	cr_assert(it != NULL && ref != NULL);
	init_items(it, nitems);
	for (unsigned step = 0; step < steps; step++) {
		uint64_t r = test_rng_next(&rng) % 100;
		/* Phases of growth and shrinkage. */
		bool grow = (step / 997) % 2 == 0;

		if (r < (grow ? 20u : 10u)) {
			/* A batch of up to 16 distinct non-members. */
			struct flowq_pheap_node *batch[16];
			size_t k = 0, want = 1 + test_rng_next(&rng) % 16;
			for (size_t tries = 0; tries < 64 && k < want; tries++) {
				struct pitem *p = &it[test_rng_next(&rng) % nitems];
				bool dup = false;
				for (size_t j = 0; j < k; j++)
					dup |= batch[j] == &p->pn;
				if (p->in || dup)
					continue;
				p->pn.key = (int64_t)(test_rng_next(&rng) % keyrange) - 3;
				p->pn.seq = seq++;
				batch[k++] = &p->pn;
			}
			cr_assert_eq(flowq_pheap_push_batch(&h, batch, k), 0);
			for (size_t j = 0; j < k; j++)
				pitem_of(batch[j])->in = true;
			members += k;
		} else if (r < (grow ? 55u : 30u)) {
			struct pitem *p = &it[test_rng_next(&rng) % nitems];
			if (p->in) {
				cr_assert_eq(flowq_pheap_push(&h, &p->pn), -EINVAL);
				continue;
			}
			p->pn.key = (int64_t)(test_rng_next(&rng) % keyrange) - 3;
			p->pn.seq = seq++;
			cr_assert_eq(flowq_pheap_push(&h, &p->pn), 0);
			p->in = true;
			members++;
		} else if (r < 80) {
			struct flowq_pheap_node *want = NULL;
			for (size_t i = 0; i < nitems; i++) {
				if (it[i].in && (want == NULL || less(&it[i].pn, want)))
					want = &it[i].pn;
			}
			cr_assert_eq(flowq_pheap_peek(&h), want,
				     "peek is not the minimum");
			struct flowq_pheap_node *got = flowq_pheap_pop(&h);
			cr_assert_eq(got, want,
				     "step %u: pop gave id %d, the minimum is %d", step,
				     got ? pitem_of(got)->id : -1,
				     want ? pitem_of(want)->id : -1);
			if (got != NULL) {
				pitem_of(got)->in = false;
				members--;
			}
		} else {
			struct pitem *p = &it[test_rng_next(&rng) % nitems];
			if (!p->in) {
				cr_assert_eq(flowq_pheap_remove(&h, &p->pn), -EINVAL);
				continue;
			}
			cr_assert_eq(flowq_pheap_remove(&h, &p->pn), 0);
			cr_assert_not(flowq_pheap_member(&p->pn));
			p->in = false;
			members--;
		}
		cr_assert_eq(flowq_pheap_len(&h), members);
		if (nitems <= 256 || step % 64 == 0)
			check_pheap(&h);
	}
	size_t n = 0;
	for (size_t i = 0; i < nitems; i++) {
		if (it[i].in)
			ref[n++] = &it[i].pn;
	}
	assert_pops_sorted(&h, ref, n);
	free(it);
	free(ref);
}

Test(pheap, model_check_small_key_range)
{
	for (uint64_t seed = 1; seed <= 20; seed++)
		model_run(seed, 64, 6000, 8);
}

Test(pheap, model_check_wide_key_range)
{
	for (uint64_t seed = 100; seed < 110; seed++)
		model_run(seed, 512, 20000, UINT64_C(1) << 40);
}

Test(pheap, extreme_keys)
{
	struct flowq_pheap h = {0};
	struct pitem it[6];
	struct flowq_pheap_node *ref[6];
	const int64_t keys[] = {INT64_MAX, INT64_MIN, 0, INT64_MAX, -1, INT64_MIN};

	init_items(it, 6);
	for (int i = 0; i < 6; i++) {
		it[i].pn.key = keys[i];
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
		ref[i] = &it[i].pn;
	}
	assert_pops_sorted(&h, ref, 6);
}

/*
 * Monotone sequences make degenerate shapes: increasing keys give a root
 * with n - 1 children, decreasing keys a chain n deep. A recursive
 * implementation would overflow the stack on the chain; the first pop after
 * the increasing run is the O(n) worst case. Both must stay correct.
 */
Test(pheap, degenerate_shapes_million)
{
	enum { N = 1000000 };
	struct pitem *it = calloc(N, sizeof(*it));
	struct flowq_pheap_node **ref = calloc(N, sizeof(*ref));
	struct flowq_pheap h = {0};

	cr_assert(it != NULL && ref != NULL);
	/* Increasing. */
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].pn.key = i;
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
		ref[i] = &it[i].pn;
	}
	check_pheap(&h);
	assert_pops_sorted(&h, ref, N);
	/* Decreasing: a chain; remove from its middle and bottom, then pop. */
	init_items(it, N);
	for (int i = 0; i < N; i++) {
		it[i].pn.key = N - i;
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
	}
	check_pheap(&h);
	cr_assert_eq(flowq_pheap_remove(&h, &it[N / 2].pn), 0);
	cr_assert_eq(flowq_pheap_remove(&h, &it[0].pn), 0, "the deepest node");
	cr_assert_eq(flowq_pheap_remove(&h, &it[N - 1].pn), 0, "the root");
	check_pheap(&h);
	size_t n = 0;
	for (int i = 1; i < N - 1; i++) {
		if (i != N / 2)
			ref[n++] = &it[i].pn;
	}
	assert_pops_sorted(&h, ref, n);
	free(it);
	free(ref);
}

Test(pheap, push_batch_refuses_members_and_duplicates)
{
	struct flowq_pheap h = {0}, other = {0};
	struct pitem it[6];

	init_items(it, 6);
	for (int i = 0; i < 6; i++)
		it[i].pn.key = 10 - i;
	cr_assert_eq(flowq_pheap_push(&h, &it[0].pn), 0);
	cr_assert_eq(flowq_pheap_push(&other, &it[5].pn), 0);
	struct flowq_pheap_node *with_member[] = {&it[1].pn, &it[2].pn, &it[0].pn};
	struct flowq_pheap_node *with_other[] = {&it[1].pn, &it[5].pn};
	struct flowq_pheap_node *with_dup[] = {&it[1].pn, &it[2].pn, &it[3].pn,
					       &it[2].pn};
	struct flowq_pheap_node *with_first_dup[] = {&it[1].pn, &it[2].pn, &it[1].pn};

	cr_assert_eq(flowq_pheap_push_batch(&h, with_member, 3), -EINVAL);
	cr_assert_eq(flowq_pheap_push_batch(&h, with_other, 2), -EINVAL);
	cr_assert_eq(flowq_pheap_push_batch(&h, with_dup, 4), -EINVAL);
	cr_assert_eq(flowq_pheap_push_batch(&h, with_first_dup, 3), -EINVAL);
	/* Nothing changed: the refused nodes are still non-members. */
	for (int i = 1; i < 5; i++)
		cr_assert_not(flowq_pheap_member(&it[i].pn), "node %d", i);
	cr_assert_eq(flowq_pheap_len(&h), 1);
	cr_assert_eq(flowq_pheap_len(&other), 1);
	check_pheap(&h);
	check_pheap(&other);
	cr_assert_eq(flowq_pheap_push_batch(&h, NULL, 0), 0, "an empty batch");
	struct flowq_pheap_node *ok[] = {&it[1].pn, &it[2].pn, &it[3].pn, &it[4].pn};
	cr_assert_eq(flowq_pheap_push_batch(&h, ok, 4), 0);
	check_pheap(&h);
	struct flowq_pheap_node *ref[] = {&it[0].pn, &it[1].pn, &it[2].pn, &it[3].pn,
					  &it[4].pn};
	assert_pops_sorted(&h, ref, 5);
}

/* The root's children: what the next pop has to combine. */
static size_t
root_degree(const struct flowq_pheap *h)
{
	size_t d = 0;

	for (const struct flowq_pheap_node *c = h->root->child; c != NULL; c = c->next)
		d++;
	return d;
}

/*
 * Why the orderings push in batches: B single pushes of increasing keys
 * leave the root with B - 1 children (the next pop combines them all), the
 * same B nodes in batches of 64 with about B / 64.
 */
Test(pheap, push_batch_keeps_the_root_degree_down)
{
	enum { B = 64000, K = 64 };
	struct pitem *it = calloc(B, sizeof(*it));
	struct flowq_pheap_node **ref = calloc(B, sizeof(*ref));
	struct flowq_pheap h = {0};

	cr_assert(it != NULL && ref != NULL);
	init_items(it, B);
	for (int i = 0; i < B; i++) {
		it[i].pn.key = i / 3; /* increasing, with ties */
		cr_assert_eq(flowq_pheap_push(&h, &it[i].pn), 0);
		ref[i] = &it[i].pn;
	}
	cr_assert_eq(root_degree(&h), B - 1);
	assert_pops_sorted(&h, ref, B);

	init_items(it, B);
	for (int i = 0; i < B; i++) {
		it[i].pn.key = i / 3;
		ref[i] = &it[i].pn;
	}
	for (int i = 0; i < B; i += K)
		cr_assert_eq(flowq_pheap_push_batch(&h, ref + i, K), 0);
	check_pheap(&h);
	cr_assert_leq(root_degree(&h), B / K + 8, "root degree %zu", root_degree(&h));
	assert_pops_sorted(&h, ref, B);
	free(it);
	free(ref);
}
