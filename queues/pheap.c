/*
 * Pairing heap on (key, seq), two-pass; see flowq/pheap.h for the
 * algorithm, its bounds and the paper.
 *
 * Representation invariants (checked after every step by
 * tests/unit/test_pheap.c):
 *  - heap order: no child is smaller than its parent by (key, seq);
 *  - the root's prev is the root itself and its next is NULL;
 *  - a first child's prev is its parent, any other child's prev is its
 *    left sibling, and x->next->prev == x for every x with a next;
 *  - a non-member has prev == NULL (child and next NULL too), so membership
 *    is an O(1) test and push can refuse a member;
 *  - len counts the members.
 */
#include <errno.h>
#include <stddef.h>

#include <flowq/pheap.h>

static inline bool
pheap_less(const struct flowq_pheap_node *a, const struct flowq_pheap_node *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/*
 * Meld two trees whose roots are @a and @b: the larger root becomes the
 * first child of the smaller (ties: @a stays on top). The loser's prev and
 * next are set; the winner's are left as they were, for the caller to set.
 * O(1).
 */
static inline struct flowq_pheap_node *
pheap_link(struct flowq_pheap_node *a, struct flowq_pheap_node *b)
{
	if (pheap_less(b, a)) {
		struct flowq_pheap_node *t = a;

		a = b;
		b = t;
	}
	b->next = a->child;
	if (a->child != NULL)
		a->child->prev = b;
	b->prev = a;
	a->child = b;
	return a;
}

/*
 * Combine the sibling list that starts at @first into one tree and return
 * its root (prev = itself, next = NULL).
 *
 * Pass 1, left to right: meld the siblings in pairs; each result is pushed
 * on a stack threaded through its next link (the sibling list it came from
 * is no longer needed once a pair is taken). Pass 2, right to left: pop the
 * stack (the rightmost pair first) and meld each tree into the accumulated
 * one. This is the two-pass rule whose O(log n) amortized bound Fredman et
 * al. prove; melding pass 1's results left to right instead loses it.
 */
static struct flowq_pheap_node *
pheap_combine(struct flowq_pheap_node *first)
{
	struct flowq_pheap_node *stack = NULL, *acc;

	while (first != NULL) {
		struct flowq_pheap_node *a = first, *b = a->next;

		if (b != NULL) {
			first = b->next;
			a = pheap_link(a, b);
		} else {
			first = NULL;
		}
		a->next = stack;
		stack = a;
	}
	acc = stack;
	stack = stack->next;
	while (stack != NULL) {
		struct flowq_pheap_node *t = stack;

		stack = t->next;
		acc = pheap_link(t, acc);
	}
	acc->next = NULL;
	acc->prev = acc;
	return acc;
}

/* Meld the tree rooted at @t (a root: prev = itself) into @h's tree. */
static inline void
pheap_meld_root(struct flowq_pheap *h, struct flowq_pheap_node *t)
{
	struct flowq_pheap_node *r;

	if (h->root == NULL) {
		h->root = t;
		return;
	}
	r = pheap_link(h->root, t);
	r->prev = r;
	r->next = NULL;
	h->root = r;
}

int
flowq_pheap_push(struct flowq_pheap *h, struct flowq_pheap_node *n)
{
	if (n->prev != NULL)
		return -EINVAL;
	n->child = NULL;
	n->next = NULL;
	n->prev = n;
	pheap_meld_root(h, n);
	h->len++;
	return 0;
}

int
flowq_pheap_push_batch(struct flowq_pheap *h, struct flowq_pheap_node *const *nodes,
		       size_t n)
{
	if (n == 0)
		return 0;
	/* Chain the nodes into a sibling list for pheap_combine(), checking
	 * each as it is chained: a member, or a node met earlier in this
	 * batch (its prev is set by then), is refused after the chain built
	 * so far is taken apart again. */
	for (size_t i = 0; i < n; i++) {
		struct flowq_pheap_node *x = nodes[i];

		if (x->prev != NULL) {
			for (size_t j = 0; j < i; j++)
				flowq_pheap_node_init(nodes[j]);
			return -EINVAL;
		}
		x->child = NULL;
		x->next = NULL;
		x->prev = i == 0 ? x : nodes[i - 1];
		if (i > 0)
			nodes[i - 1]->next = x;
	}
	pheap_meld_root(h, pheap_combine(nodes[0]));
	h->len += n;
	return 0;
}

struct flowq_pheap_node *
flowq_pheap_pop(struct flowq_pheap *h)
{
	struct flowq_pheap_node *top = h->root;

	if (top == NULL)
		return NULL;
	h->root = top->child != NULL ? pheap_combine(top->child) : NULL;
	h->len--;
	flowq_pheap_node_init(top);
	return top;
}

int
flowq_pheap_remove(struct flowq_pheap *h, struct flowq_pheap_node *n)
{
	struct flowq_pheap_node *p = n->prev;

	if (p == NULL)
		return -EINVAL;
	if (p == n) {
		/* A root: ours, or another heap's. */
		if (h->root != n)
			return -EINVAL;
		(void)flowq_pheap_pop(h);
		return 0;
	}
	/* Cut n's subtree out of its sibling list. p is n's parent exactly
	 * when n is p's first child (a left sibling's first child is one
	 * level further down, never n). */
	if (p->child == n)
		p->child = n->next;
	else
		p->next = n->next;
	if (n->next != NULL)
		n->next->prev = p;
	/* n's children become one tree, melded back under the root (which is
	 * not n, so the heap is not empty). */
	if (n->child != NULL)
		pheap_meld_root(h, pheap_combine(n->child));
	h->len--;
	flowq_pheap_node_init(n);
	return 0;
}
