/*
 * Unit tests for flowq/list.h: the intrusive circular doubly linked list.
 * Every inline function and flowq_list_entry() is exercised; after each
 * change the whole ring is walked both ways and compared with the expected
 * contents.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/list.h>

struct elem {
	int value;
	char pad[3];
	struct flowq_list_node link; /* not first: entry() must subtract */
};

/* A member at offset 0, for the degenerate case of flowq_list_entry(). */
struct first {
	struct flowq_list_node link;
	int value;
};

#define ELEM(n) flowq_list_entry(n, struct elem, link)

/*
 * Walk @l forward with flowq_list_next() and backward through prev, checking
 * every link pair and that the values are exactly @want[0..n).
 */
static void
assert_list(const struct flowq_list *l, const int *want, size_t n)
{
	const struct flowq_list_node *node, *prev = &l->head;
	size_t i = 0;

	cr_assert_eq(flowq_list_empty(l), n == 0);
	if (n == 0) {
		cr_assert_null(flowq_list_front(l));
		cr_assert_null(flowq_list_back(l));
		cr_assert_eq(l->head.next, &l->head);
		cr_assert_eq(l->head.prev, &l->head);
		return;
	}
	cr_assert_eq(ELEM(flowq_list_front(l))->value, want[0], "front");
	cr_assert_eq(ELEM(flowq_list_back(l))->value, want[n - 1], "back");
	for (node = flowq_list_front(l); node != NULL; node = flowq_list_next(l, node)) {
		cr_assert_lt(i, n, "more members than expected");
		cr_assert(flowq_list_linked(node));
		cr_assert_eq(node->prev, prev, "prev link of member %zu", i);
		cr_assert_eq(prev->next, node, "next link into member %zu", i);
		cr_assert_eq(ELEM(node)->value, want[i], "member %zu", i);
		prev = node;
		i++;
	}
	cr_assert_eq(i, n, "fewer members than expected");
	cr_assert_eq(prev->next, &l->head, "ring closes at the sentinel");
	cr_assert_eq(l->head.prev, prev);
	/* Backward: the prev chain visits the same members in reverse. */
	i = n;
	for (node = l->head.prev; node != &l->head; node = node->prev) {
		cr_assert_gt(i, 0);
		cr_assert_eq(ELEM(node)->value, want[--i]);
	}
	cr_assert_eq(i, 0);
}

static void
init_elems(struct elem *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		e[i].value = (int)i;
		flowq_list_node_init(&e[i].link);
	}
}

Test(list, init_is_empty)
{
	struct flowq_list l;

	flowq_list_init(&l);
	cr_assert(flowq_list_empty(&l));
	cr_assert_null(flowq_list_front(&l));
	cr_assert_null(flowq_list_back(&l));
	cr_assert_null(flowq_list_pop_front(&l));
	cr_assert(flowq_list_empty(&l), "pop on empty changes nothing");
	assert_list(&l, NULL, 0);
}

Test(list, node_init_is_unlinked)
{
	struct elem e;

	e.link.prev = e.link.next = &e.link; /* garbage */
	flowq_list_node_init(&e.link);
	cr_assert_not(flowq_list_linked(&e.link));
	cr_assert_null(e.link.prev);
	cr_assert_null(e.link.next);
}

Test(list, push_back_keeps_order)
{
	struct flowq_list l;
	struct elem e[5];
	const int want[] = {0, 1, 2, 3, 4};

	flowq_list_init(&l);
	init_elems(e, 5);
	for (int i = 0; i < 5; i++) {
		flowq_list_push_back(&l, &e[i].link);
		cr_assert(flowq_list_linked(&e[i].link));
		assert_list(&l, want, (size_t)i + 1);
	}
}

Test(list, push_front_reverses_order)
{
	struct flowq_list l;
	struct elem e[4];
	const int want[] = {3, 2, 1, 0};

	flowq_list_init(&l);
	init_elems(e, 4);
	for (int i = 0; i < 4; i++)
		flowq_list_push_front(&l, &e[i].link);
	assert_list(&l, want, 4);
}

Test(list, one_member)
{
	struct flowq_list l;
	struct elem e;
	const int want[] = {0};

	flowq_list_init(&l);
	init_elems(&e, 1);
	flowq_list_push_back(&l, &e.link);
	assert_list(&l, want, 1);
	cr_assert_eq(flowq_list_front(&l), &e.link);
	cr_assert_eq(flowq_list_back(&l), &e.link);
	cr_assert_null(flowq_list_next(&l, &e.link), "the only member has no next");
	cr_assert_eq(flowq_list_pop_front(&l), &e.link);
	cr_assert_not(flowq_list_linked(&e.link));
	assert_list(&l, NULL, 0);
}

Test(list, mixed_push_front_and_back)
{
	struct flowq_list l;
	struct elem e[4];
	const int want[] = {2, 0, 1, 3};

	flowq_list_init(&l);
	init_elems(e, 4);
	flowq_list_push_back(&l, &e[0].link);
	flowq_list_push_back(&l, &e[1].link);
	flowq_list_push_front(&l, &e[2].link);
	flowq_list_push_back(&l, &e[3].link);
	assert_list(&l, want, 4);
}

Test(list, insert_after_member_sentinel_and_last)
{
	struct flowq_list l;
	struct elem e[5];
	const int want1[] = {0, 2, 1};
	const int want2[] = {3, 0, 2, 1};
	const int want3[] = {3, 0, 2, 1, 4};

	flowq_list_init(&l);
	init_elems(e, 5);
	flowq_list_push_back(&l, &e[0].link);
	flowq_list_push_back(&l, &e[1].link);
	flowq_list_insert_after(&e[0].link, &e[2].link);
	assert_list(&l, want1, 3);
	/* After the sentinel: becomes the front. */
	flowq_list_insert_after(&l.head, &e[3].link);
	assert_list(&l, want2, 4);
	/* After the last member: becomes the back. */
	flowq_list_insert_after(&e[1].link, &e[4].link);
	assert_list(&l, want3, 5);
}

Test(list, insert_after_into_empty_list)
{
	struct flowq_list l;
	struct elem e;
	const int want[] = {0};

	flowq_list_init(&l);
	init_elems(&e, 1);
	flowq_list_insert_after(&l.head, &e.link);
	assert_list(&l, want, 1);
}

Test(list, remove_first_middle_last_only)
{
	struct flowq_list l;
	struct elem e[4];
	const int want1[] = {0, 2, 3};
	const int want2[] = {2, 3};
	const int want3[] = {2};

	flowq_list_init(&l);
	init_elems(e, 4);
	for (int i = 0; i < 4; i++)
		flowq_list_push_back(&l, &e[i].link);

	flowq_list_remove(&e[1].link); /* middle */
	cr_assert_not(flowq_list_linked(&e[1].link));
	cr_assert_null(e[1].link.prev);
	cr_assert_null(e[1].link.next);
	assert_list(&l, want1, 3);

	flowq_list_remove(&e[0].link); /* first */
	assert_list(&l, want2, 2);

	flowq_list_remove(&e[3].link); /* last */
	assert_list(&l, want3, 1);

	flowq_list_remove(&e[2].link); /* only */
	cr_assert_not(flowq_list_linked(&e[2].link));
	assert_list(&l, NULL, 0);
}

Test(list, pop_front_drains_in_order)
{
	struct flowq_list l;
	struct elem e[6];

	flowq_list_init(&l);
	init_elems(e, 6);
	for (int i = 0; i < 6; i++)
		flowq_list_push_back(&l, &e[i].link);
	for (int i = 0; i < 6; i++) {
		struct flowq_list_node *n = flowq_list_pop_front(&l);

		cr_assert_not_null(n);
		cr_assert_eq(ELEM(n)->value, i);
		cr_assert_not(flowq_list_linked(n), "popped member is unlinked");
	}
	cr_assert_null(flowq_list_pop_front(&l));
	assert_list(&l, NULL, 0);
}

Test(list, next_walks_to_null)
{
	struct flowq_list l;
	struct elem e[3];

	flowq_list_init(&l);
	init_elems(e, 3);
	for (int i = 0; i < 3; i++)
		flowq_list_push_back(&l, &e[i].link);
	cr_assert_eq(flowq_list_next(&l, &e[0].link), &e[1].link);
	cr_assert_eq(flowq_list_next(&l, &e[1].link), &e[2].link);
	cr_assert_null(flowq_list_next(&l, &e[2].link));
}

Test(list, removed_node_is_reusable)
{
	struct flowq_list a, b;
	struct elem e[2];
	const int want_a[] = {1};
	const int want_b[] = {0};

	flowq_list_init(&a);
	flowq_list_init(&b);
	init_elems(e, 2);
	flowq_list_push_back(&a, &e[0].link);
	flowq_list_push_back(&a, &e[1].link);
	flowq_list_remove(&e[0].link);
	flowq_list_push_back(&b, &e[0].link);
	assert_list(&a, want_a, 1);
	assert_list(&b, want_b, 1);
}

Test(list, splice_empty_source_changes_nothing)
{
	struct flowq_list dst, src;
	struct elem e[2];
	const int want[] = {0, 1};

	flowq_list_init(&dst);
	flowq_list_init(&src);
	init_elems(e, 2);
	flowq_list_push_back(&dst, &e[0].link);
	flowq_list_push_back(&dst, &e[1].link);
	flowq_list_splice_back(&dst, &src);
	assert_list(&dst, want, 2);
	assert_list(&src, NULL, 0);

	/* Both empty. */
	flowq_list_init(&dst);
	flowq_list_splice_back(&dst, &src);
	assert_list(&dst, NULL, 0);
	assert_list(&src, NULL, 0);
}

Test(list, splice_into_empty_destination)
{
	struct flowq_list dst, src;
	struct elem e[3];
	const int want[] = {0, 1, 2};

	flowq_list_init(&dst);
	flowq_list_init(&src);
	init_elems(e, 3);
	for (int i = 0; i < 3; i++)
		flowq_list_push_back(&src, &e[i].link);
	flowq_list_splice_back(&dst, &src);
	assert_list(&dst, want, 3);
	assert_list(&src, NULL, 0);
}

Test(list, splice_appends_in_order_and_source_is_reusable)
{
	struct flowq_list dst, src;
	struct elem e[7];
	const int want[] = {0, 1, 2, 3, 4};
	const int want_src[] = {5};
	const int want_all[] = {0, 1, 2, 3, 4, 5, 6};

	flowq_list_init(&dst);
	flowq_list_init(&src);
	init_elems(e, 7);
	flowq_list_push_back(&dst, &e[0].link);
	flowq_list_push_back(&dst, &e[1].link);
	flowq_list_push_back(&src, &e[2].link);
	flowq_list_push_back(&src, &e[3].link);
	flowq_list_push_back(&src, &e[4].link);
	flowq_list_splice_back(&dst, &src);
	assert_list(&dst, want, 5);
	assert_list(&src, NULL, 0);

	/* The emptied source works as a list again. */
	flowq_list_push_back(&src, &e[5].link);
	assert_list(&src, want_src, 1);
	flowq_list_splice_back(&dst, &src);
	/* One-member splice, then the destination keeps growing. */
	flowq_list_push_back(&dst, &e[6].link);
	assert_list(&dst, want_all, 7);
	assert_list(&src, NULL, 0);
}

Test(list, entry_recovers_the_container)
{
	struct elem e = {.value = 42};
	struct first f = {.value = 7};
	struct flowq_list_node *n = &e.link;

	cr_assert_eq(flowq_list_entry(n, struct elem, link), &e);
	cr_assert_eq(flowq_list_entry(n, struct elem, link)->value, 42);
	cr_assert_eq(flowq_list_entry(&f.link, struct first, link), &f);
	cr_assert_eq(flowq_list_entry(&f.link, struct first, link)->value, 7);
	cr_assert_neq((void *)&e.link, (void *)&e, "the test needs a nonzero offset");
}

/* Random operations against an array model. */
Test(list, random_model)
{
	enum { N = 64, OPS = 100000 };
	static struct elem e[N];
	int model[N];
	size_t len = 0;
	uint64_t s = 99;
	struct flowq_list l;

	flowq_list_init(&l);
	init_elems(e, N);
	for (int op = 0; op < OPS; op++) {
		unsigned r;
		int v;

		s = s * 6364136223846793005ull + 1442695040888963407ull;
		r = (unsigned)(s >> 33);
		v = (int)((r >> 4) % N);
		switch (r % 6) {
		case 0: /* push_back */
			if (flowq_list_linked(&e[v].link))
				break;
			flowq_list_push_back(&l, &e[v].link);
			model[len++] = v;
			break;
		case 1: /* push_front */
			if (flowq_list_linked(&e[v].link))
				break;
			flowq_list_push_front(&l, &e[v].link);
			memmove(model + 1, model, len * sizeof(model[0]));
			model[0] = v;
			len++;
			break;
		case 2: { /* insert_after a random member */
			size_t at;

			if (len == 0 || flowq_list_linked(&e[v].link))
				break;
			at = (r >> 12) % len;
			flowq_list_insert_after(&e[model[at]].link, &e[v].link);
			memmove(model + at + 2, model + at + 1,
				(len - at - 1) * sizeof(model[0]));
			model[at + 1] = v;
			len++;
			break;
		}
		case 3: { /* remove a random member */
			size_t at;

			if (len == 0)
				break;
			at = (r >> 12) % len;
			flowq_list_remove(&e[model[at]].link);
			cr_assert_not(flowq_list_linked(&e[model[at]].link));
			memmove(model + at, model + at + 1,
				(len - at - 1) * sizeof(model[0]));
			len--;
			break;
		}
		default: { /* pop_front */
			struct flowq_list_node *n = flowq_list_pop_front(&l);

			if (len == 0) {
				cr_assert_null(n);
				break;
			}
			cr_assert_not_null(n);
			cr_assert_eq(ELEM(n)->value, model[0], "op %d", op);
			memmove(model, model + 1, (len - 1) * sizeof(model[0]));
			len--;
			break;
		}
		}
		if (op % 16 == 0)
			assert_list(&l, model, len);
	}
	assert_list(&l, model, len);
}
