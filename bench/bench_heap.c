/*
 * bench_heap: flowq_heap's 4-ary layout against a binary heap, measured.
 *
 * flowq/heap.h chose a 4-ary heap on an argument (half the levels, the four
 * children of a slot adjacent in the slot array) that no benchmark had
 * checked. This suite runs it next to the obvious alternative in one run.
 *
 * Cases: BM_heap_<variant>/n:N for N in {4, 1000, 65536, 1000000}:
 *
 *   flowq_4ary  queues/heap.c: flowq_heap_push / flowq_heap_pop.
 *   binary      a plain intrusive binary heap written below: the same node
 *               (struct flowq_heap_node) and heap struct, the same (key, seq)
 *               comparison, the same hole-based sifts and idx rewrite on
 *               every move, the same argument checks (-EINVAL, -ENOSPC).
 *               Only the arity differs.
 *
 * Workload: the "hold" model of a WFQ/EDF dispatcher in steady state. The
 * heap holds N members with random keys; one iteration pops the minimum and
 * pushes the same member back with key = popped key + a random increment and
 * a fresh seq, so the size stays N. The time column (CPU time: one thread)
 * is ns per pop+push; items_per_second counts the same iterations. Both
 * variants are called through the same function pointers from the same loop
 * (the library's functions are out of line in flowq_static anyway, so the
 * peer must not be inlined either), and both draw the same xorshift
 * increments, whose cost is in both numbers.
 *
 * Setup (nodes, slot array, pre-fill with N pushes) runs before the first
 * bench_keep_running_batch(), so outside the timed region. After the loop
 * (timer stopped) the heap is checked: every slot's idx names its slot, and
 * popping all N members gives a non-decreasing (key, seq) sequence; a
 * violation fails the case (bench_skip_with_error).
 *
 * Read the ratio binary / flowq_4ary within one run: on this project's
 * shared 2-vCPU machines absolute numbers swing between runs.
 *
 * The pairing heap of the deadline orderings (flowq/pheap.h) is measured
 * against the 4-ary heap below, on three workloads (see "The pairing heap").
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <flowq/heap.h>
#include <flowq/pheap.h>

#include "bench.h"

/* Pop+push pairs per batch: well under a millisecond even at N = 1M. */
#define BENCH_HEAP_BATCH 1024
/* Initial keys are uniform in [0, 2^20); increments in [1, 2^20]. */
#define BENCH_HEAP_KEY_BITS 20

struct bench_heap_variant {
	const char *name;
	int (*push)(struct flowq_heap *h, struct flowq_heap_node *n);
	struct flowq_heap_node *(*pop)(struct flowq_heap *h);
};

/* ---- The binary peer: queues/heap.c with children 2i+1, 2i+2. --------- */

static inline bool
bheap_less(const struct flowq_heap_node *a, const struct flowq_heap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void
bheap_place(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	h->slots[i] = n;
	n->idx = i;
}

static void
bheap_sift_up(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		struct flowq_heap_node *p = h->slots[parent];

		if (!bheap_less(n, p))
			break;
		bheap_place(h, i, p);
		i = parent;
	}
	bheap_place(h, i, n);
}

static void
bheap_sift_down(struct flowq_heap *h, uint32_t i, struct flowq_heap_node *n)
{
	for (;;) {
		uint64_t first64 = (uint64_t)i * 2 + 1;
		uint32_t best;

		if (first64 >= h->len)
			break;
		best = (uint32_t)first64;
		if (best + 1 < h->len && bheap_less(h->slots[best + 1], h->slots[best]))
			best++;
		if (!bheap_less(h->slots[best], n))
			break;
		bheap_place(h, i, h->slots[best]);
		i = best;
	}
	bheap_place(h, i, n);
}

int
bench_bheap_push(struct flowq_heap *h, struct flowq_heap_node *n)
{
	if (n->idx != FLOWQ_HEAP_NONE)
		return -EINVAL;
	if (h->len == h->cap)
		return -ENOSPC;
	bheap_sift_up(h, h->len++, n);
	return 0;
}

struct flowq_heap_node *
bench_bheap_pop(struct flowq_heap *h)
{
	struct flowq_heap_node *top, *last;

	if (h->len == 0)
		return NULL;
	top = h->slots[0];
	last = h->slots[--h->len];
	if (h->len != 0)
		bheap_sift_down(h, 0, last);
	top->idx = FLOWQ_HEAP_NONE;
	return top;
}

static const struct bench_heap_variant bench_heap_variants[] = {
	{"BM_heap_flowq_4ary", flowq_heap_push, flowq_heap_pop},
	{"BM_heap_binary", bench_bheap_push, bench_bheap_pop},
};

/* ---- The workload ------------------------------------------------------- */

static inline uint64_t
bench_heap_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/*
 * Every slot's idx names its slot, then pop everything: N members in
 * non-decreasing (key, seq) order, each left a non-member.
 */
static const char *
bench_heap_check(const struct bench_heap_variant *v, struct flowq_heap *h, uint32_t n)
{
	struct flowq_heap_node *prev = NULL, *cur;
	uint32_t i, popped = 0;

	if (h->len != n)
		return "heap size changed during the run";
	for (i = 0; i < h->len; i++) {
		if (h->slots[i]->idx != i)
			return "a member's idx does not name its slot";
	}
	while ((cur = v->pop(h)) != NULL) {
		if (prev != NULL && bheap_less(cur, prev))
			return "heap order violated: pops decrease in (key, seq)";
		if (cur->idx != FLOWQ_HEAP_NONE)
			return "popped member still marked as a member";
		prev = cur;
		popped++;
	}
	return popped == n ? NULL : "pop-all returned the wrong number of members";
}

static void
bench_heap_hold(struct bench_state *st, void *arg)
{
	const struct bench_heap_variant *v = arg;
	uint32_t n = (uint32_t)bench_range(st, 0);
	uint64_t rng = 0x9e3779b97f4a7c15u, seq = 0;
	const uint64_t mask = (UINT64_C(1) << BENCH_HEAP_KEY_BITS) - 1;
	struct flowq_heap_node *nodes, **slots;
	struct flowq_heap h;
	const char *err;
	int rc = 0;

	nodes = malloc((size_t)n * sizeof(*nodes));
	slots = malloc((size_t)n * sizeof(*slots));
	if (nodes == NULL || slots == NULL) {
		free(nodes);
		free(slots);
		bench_skip_with_error(st, "out of memory");
		return;
	}
	flowq_heap_init(&h, slots, n);
	for (uint32_t i = 0; i < n; i++) {
		flowq_heap_node_init(&nodes[i]);
		nodes[i].key = (int64_t)(bench_heap_rand(&rng) & mask);
		nodes[i].seq = seq++;
		rc |= v->push(&h, &nodes[i]);
	}
	if (rc != 0) {
		bench_skip_with_error(st, "pre-fill push failed");
		goto out;
	}

	while (bench_keep_running_batch(st, BENCH_HEAP_BATCH)) {
		for (int i = 0; i < BENCH_HEAP_BATCH; i++) {
			struct flowq_heap_node *top = v->pop(&h);

			top->key += (int64_t)(bench_heap_rand(&rng) & mask) + 1;
			top->seq = seq++;
			rc |= v->push(&h, top);
		}
	}

	if (rc != 0) {
		bench_skip_with_error(st, "push failed in the timed loop");
		goto out;
	}
	err = bench_heap_check(v, &h, n);
	if (err != NULL) {
		bench_skip_with_error(st, err);
		goto out;
	}
	bench_set_items_processed(st, bench_iterations(st));
out:
	free(nodes);
	free(slots);
}

/* ---- The pairing heap (flowq/pheap.h) against the 4-ary heap ----------- */

/*
 * Three workloads, each for both heaps, through function pointers as above
 * (both libraries' functions are out of line; neither is inlined):
 *
 *   BM_heap_pairing/n:N           the hold loop above (random increments),
 *                                 next to BM_heap_flowq_4ary;
 *   BM_heap_<heap>_fifo/n:N       pop the minimum, push it back with the
 *                                 largest key so far + 1: a flow's queue
 *                                 under edf with one TTL for all requests
 *                                 (or slo_deadline without deadlines), the
 *                                 common case of the deadline orderings;
 *   BM_heap_<heap>_remove/n:N     remove a random member by handle, push it
 *                                 back with its key + a random increment:
 *                                 cancellation and TTL expiry in the middle
 *                                 of a flow's heap.
 *
 * Every iteration is one pop (or remove) and one push; the time column is ns
 * per iteration. After the loop (timer stopped) the heap is emptied and its
 * pops checked for non-decreasing (key, seq) order and count.
 */
enum bench_pq_work { BENCH_PQ_HOLD, BENCH_PQ_FIFO, BENCH_PQ_REMOVE };

struct bench_pq_case {
	const char *name;
	bool pairing;
	enum bench_pq_work work;
};

struct bench_pq_ops4 {
	int (*push)(struct flowq_heap *h, struct flowq_heap_node *n);
	struct flowq_heap_node *(*pop)(struct flowq_heap *h);
	int (*remove)(struct flowq_heap *h, struct flowq_heap_node *n);
};

struct bench_pq_opsp {
	int (*push)(struct flowq_pheap *h, struct flowq_pheap_node *n);
	struct flowq_pheap_node *(*pop)(struct flowq_pheap *h);
	int (*remove)(struct flowq_pheap *h, struct flowq_pheap_node *n);
};

static const struct bench_pq_ops4 bench_pq_ops4 = {flowq_heap_push, flowq_heap_pop,
						   flowq_heap_remove};
static const struct bench_pq_opsp bench_pq_opsp = {flowq_pheap_push, flowq_pheap_pop,
						   flowq_pheap_remove};

/* The first key of member i in a pre-fill. */
static int64_t
bench_pq_key0(enum bench_pq_work w, uint32_t i, uint64_t *rng)
{
	const uint64_t mask = (UINT64_C(1) << BENCH_HEAP_KEY_BITS) - 1;

	return w == BENCH_PQ_FIFO ? (int64_t)i : (int64_t)(bench_heap_rand(rng) & mask);
}

static void
bench_pq_4ary(struct bench_state *st, const struct bench_pq_case *c, uint32_t n)
{
	const struct bench_pq_ops4 *ops = &bench_pq_ops4;
	const uint64_t mask = (UINT64_C(1) << BENCH_HEAP_KEY_BITS) - 1;
	uint64_t rng = 0x9e3779b97f4a7c15u, seq = 0;
	int64_t next_key = n;
	struct flowq_heap_node *nodes = malloc((size_t)n * sizeof(*nodes));
	struct flowq_heap_node **slots = malloc((size_t)n * sizeof(*slots));
	struct flowq_heap h;
	int rc = 0;

	if (nodes == NULL || slots == NULL) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
	flowq_heap_init(&h, slots, n);
	for (uint32_t i = 0; i < n; i++) {
		flowq_heap_node_init(&nodes[i]);
		nodes[i].key = bench_pq_key0(c->work, i, &rng);
		nodes[i].seq = seq++;
		rc |= ops->push(&h, &nodes[i]);
	}
	while (bench_keep_running_batch(st, BENCH_HEAP_BATCH)) {
		for (int i = 0; i < BENCH_HEAP_BATCH; i++) {
			struct flowq_heap_node *x;

			if (c->work == BENCH_PQ_REMOVE) {
				x = &nodes[bench_heap_rand(&rng) % n];
				rc |= ops->remove(&h, x);
			} else {
				x = ops->pop(&h);
			}
			if (c->work == BENCH_PQ_FIFO)
				x->key = next_key++;
			else
				x->key += (int64_t)(bench_heap_rand(&rng) & mask) + 1;
			x->seq = seq++;
			rc |= ops->push(&h, x);
		}
	}
	if (rc != 0) {
		bench_skip_with_error(st, "a push or remove failed");
		goto out;
	}
	{
		struct flowq_heap_node *prev = NULL, *cur;
		uint32_t popped = 0;

		while ((cur = ops->pop(&h)) != NULL) {
			if (prev != NULL && bheap_less(cur, prev)) {
				bench_skip_with_error(st, "4-ary heap order violated");
				goto out;
			}
			prev = cur;
			popped++;
		}
		if (popped != n) {
			bench_skip_with_error(st, "4-ary heap lost members");
			goto out;
		}
	}
	bench_set_items_processed(st, bench_iterations(st));
out:
	free(nodes);
	free(slots);
}

static void
bench_pq_pairing(struct bench_state *st, const struct bench_pq_case *c, uint32_t n)
{
	const struct bench_pq_opsp *ops = &bench_pq_opsp;
	const uint64_t mask = (UINT64_C(1) << BENCH_HEAP_KEY_BITS) - 1;
	uint64_t rng = 0x9e3779b97f4a7c15u, seq = 0;
	int64_t next_key = n;
	struct flowq_pheap_node *nodes = malloc((size_t)n * sizeof(*nodes));
	struct flowq_pheap h;
	int rc = 0;

	if (nodes == NULL) {
		bench_skip_with_error(st, "out of memory");
		return;
	}
	flowq_pheap_init(&h);
	for (uint32_t i = 0; i < n; i++) {
		flowq_pheap_node_init(&nodes[i]);
		nodes[i].key = bench_pq_key0(c->work, i, &rng);
		nodes[i].seq = seq++;
		rc |= ops->push(&h, &nodes[i]);
	}
	while (bench_keep_running_batch(st, BENCH_HEAP_BATCH)) {
		for (int i = 0; i < BENCH_HEAP_BATCH; i++) {
			struct flowq_pheap_node *x;

			if (c->work == BENCH_PQ_REMOVE) {
				x = &nodes[bench_heap_rand(&rng) % n];
				rc |= ops->remove(&h, x);
			} else {
				x = ops->pop(&h);
			}
			if (c->work == BENCH_PQ_FIFO)
				x->key = next_key++;
			else
				x->key += (int64_t)(bench_heap_rand(&rng) & mask) + 1;
			x->seq = seq++;
			rc |= ops->push(&h, x);
		}
	}
	if (rc != 0) {
		bench_skip_with_error(st, "a push or remove failed");
		goto out;
	}
	{
		struct flowq_pheap_node *prev = NULL, *cur;
		uint32_t popped = 0;

		while ((cur = ops->pop(&h)) != NULL) {
			if (prev != NULL &&
			    (cur->key < prev->key ||
			     (cur->key == prev->key && cur->seq < prev->seq))) {
				bench_skip_with_error(st, "pairing heap order violated");
				goto out;
			}
			prev = cur;
			popped++;
		}
		if (popped != n) {
			bench_skip_with_error(st, "pairing heap lost members");
			goto out;
		}
	}
	bench_set_items_processed(st, bench_iterations(st));
out:
	free(nodes);
}

static void
bench_pq_run(struct bench_state *st, void *arg)
{
	const struct bench_pq_case *c = arg;
	uint32_t n = (uint32_t)bench_range(st, 0);

	if (c->pairing)
		bench_pq_pairing(st, c, n);
	else
		bench_pq_4ary(st, c, n);
}

static const struct bench_pq_case bench_pq_cases[] = {
	{"BM_heap_pairing", true, BENCH_PQ_HOLD},
	{"BM_heap_flowq_4ary_fifo", false, BENCH_PQ_FIFO},
	{"BM_heap_pairing_fifo", true, BENCH_PQ_FIFO},
	{"BM_heap_flowq_4ary_remove", false, BENCH_PQ_REMOVE},
	{"BM_heap_pairing_remove", true, BENCH_PQ_REMOVE},
};

void
bench_heap_register(void)
{
	static const int64_t sizes[] = {4, 1000, 65536, 1000000};
	const size_t nvariants =
		sizeof(bench_heap_variants) / sizeof(bench_heap_variants[0]);

	for (size_t i = 0; i < nvariants; i++) {
		struct bench_case *c =
			bench_register(bench_heap_variants[i].name, bench_heap_hold,
				       (void *)&bench_heap_variants[i]);

		if (c == NULL)
			continue;
		bench_case_arg_name(bench_case_unit(c, BENCH_UNIT_NS), "n");
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
			bench_case_arg(c, sizes[j]);
	}
	for (size_t i = 0; i < sizeof(bench_pq_cases) / sizeof(bench_pq_cases[0]); i++) {
		struct bench_case *c = bench_register(
			bench_pq_cases[i].name, bench_pq_run, (void *)&bench_pq_cases[i]);

		if (c == NULL)
			continue;
		bench_case_arg_name(bench_case_unit(c, BENCH_UNIT_NS), "n");
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
			bench_case_arg(c, sizes[j]);
	}
}
