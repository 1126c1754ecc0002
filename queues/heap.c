/*
 * 4-ary min-heap on (key, seq); see flowq/heap.h. Children of slot i are
 * 4i+1 .. 4i+4, the parent of slot i is (i-1)/4. Every move of a member
 * rewrites its idx so removal by handle is O(log n).
 */
#include <errno.h>
#include <string.h>

#include <flowq/heap.h>

#define HEAP_D 4u

static inline bool
heap_less(const struct flowq_heap_node *a, const struct flowq_heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void
heap_place(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	h->slots[i] = n;
	n->idx = i;
}

/* Move @n up from hole @i until its parent is not greater. */
static void
heap_sift_up(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / HEAP_D;
		struct flowq_heap_node *p = h->slots[parent];

		if (!heap_less(n, p))
			break;
		heap_place(h, i, p);
		i = parent;
	}
	heap_place(h, i, n);
}

/* Move @n down from hole @i until no child is smaller. */
static void
heap_sift_down(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	for (;;) {
		/* 64-bit index math: 4i+4 overflows 32 bits for i >= 2^30. */
		uint64_t first64 = (uint64_t)i * HEAP_D + 1;
		uint32_t first, best, c, end;

		if (first64 >= h->len)
			break;
		first = (uint32_t)first64;
		end = h->len - first > HEAP_D ? first + HEAP_D : h->len;
		best = first;
		for (c = first + 1; c < end; c++) {
			if (heap_less(h->slots[c], h->slots[best]))
				best = c;
		}
		if (!heap_less(h->slots[best], n))
			break;
		heap_place(h, i, h->slots[best]);
		i = best;
	}
	heap_place(h, i, n);
}

void
flowq_heap_init(struct flowq_heap *h, struct flowq_heap_node **slots, uint32_t cap)
{
	h->slots = slots;
	h->len = 0;
	if (slots == NULL)
		cap = 0;
	h->cap = cap > FLOWQ_HEAP_MAX_CAP ? FLOWQ_HEAP_MAX_CAP : cap;
}

int
flowq_heap_push(struct flowq_heap *h, struct flowq_heap_node *n)
{
	if (n->idx != FLOWQ_HEAP_NONE)
		return -EINVAL;
	if (h->len == h->cap)
		return -ENOSPC;
	heap_sift_up(h, h->len++, n);
	return 0;
}

/* Fill the hole at @i with the last member and restore order around it. */
static void
heap_fill_hole(struct flowq_heap *h, uint32_t i)
{
	struct flowq_heap_node *last = h->slots[--h->len];

	if (i == h->len)
		return;
	if (i > 0 && heap_less(last, h->slots[(i - 1) / HEAP_D]))
		heap_sift_up(h, i, last);
	else
		heap_sift_down(h, i, last);
}

struct flowq_heap_node *
flowq_heap_pop(struct flowq_heap *h)
{
	struct flowq_heap_node *top;

	if (h->len == 0)
		return NULL;
	top = h->slots[0];
	heap_fill_hole(h, 0);
	top->idx = FLOWQ_HEAP_NONE;
	return top;
}

static bool
heap_owns(const struct flowq_heap *h, const struct flowq_heap_node *n)
{
	return n->idx < h->len && h->slots[n->idx] == n;
}

int
flowq_heap_remove(struct flowq_heap *h, struct flowq_heap_node *n)
{
	if (!heap_owns(h, n))
		return -EINVAL;
	heap_fill_hole(h, n->idx);
	n->idx = FLOWQ_HEAP_NONE;
	return 0;
}

int
flowq_heap_update(struct flowq_heap *h, struct flowq_heap_node *n, int64_t key)
{
	uint32_t i;

	if (!heap_owns(h, n))
		return -EINVAL;
	i = n->idx;
	n->key = key;
	if (i > 0 && heap_less(n, h->slots[(i - 1) / HEAP_D]))
		heap_sift_up(h, i, n);
	else
		heap_sift_down(h, i, n);
	return 0;
}

int
flowq_heap_grow(struct flowq_heap *h, struct flowq_heap_node **slots, uint32_t cap,
		struct flowq_heap_node ***r_old)
{
	if (slots == NULL || slots == h->slots || cap < h->len ||
	    cap > FLOWQ_HEAP_MAX_CAP)
		return -EINVAL;
	if (h->len != 0)
		memcpy(slots, h->slots, (size_t)h->len * sizeof(*slots));
	*r_old = h->slots;
	h->slots = slots;
	h->cap = cap;
	return 0;
}
