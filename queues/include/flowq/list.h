/*
 * flowq_list: intrusive circular doubly linked list with a sentinel.
 *
 * Dispatcher-private: no operation is atomic. Synchronization table: every
 * pair of calls on one list must be serialized by the caller (in flowq, by
 * being made from the one dispatcher thread that owns the list).
 *
 * All operations are O(1) and cannot fail; the list never allocates.
 */
#ifndef FLOWQ_LIST_H
#define FLOWQ_LIST_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Link embedded in a list member. Unlinked members have prev == next == NULL
 * after flowq_list_node_init() or flowq_list_remove(). */
struct flowq_list_node {
	struct flowq_list_node *prev, *next;
};

/** The list: a sentinel node; empty when it points to itself. */
struct flowq_list {
	struct flowq_list_node head;
};

/** Recover the containing object from a link. */
#define flowq_list_entry(node, type, member)                                             \
	((type *)((char *)(node)-offsetof(type, member)))

static inline void
flowq_list_init(struct flowq_list *l)
{
	l->head.prev = l->head.next = &l->head;
}

static inline void
flowq_list_node_init(struct flowq_list_node *n)
{
	n->prev = n->next = NULL;
}

static inline bool
flowq_list_empty(const struct flowq_list *l)
{
	return l->head.next == &l->head;
}

/** Whether @p n is in some list (it was initialized or removed otherwise). */
static inline bool
flowq_list_linked(const struct flowq_list_node *n)
{
	return n->next != NULL;
}

static inline void
flowq_list__insert(struct flowq_list_node *n, struct flowq_list_node *prev,
		   struct flowq_list_node *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

/** Append @p n (not linked) at the back. */
static inline void
flowq_list_push_back(struct flowq_list *l, struct flowq_list_node *n)
{
	flowq_list__insert(n, l->head.prev, &l->head);
}

/** Insert @p n (not linked) at the front. */
static inline void
flowq_list_push_front(struct flowq_list *l, struct flowq_list_node *n)
{
	flowq_list__insert(n, &l->head, l->head.next);
}

/** Insert @p n (not linked) right after @p pos (a member or the sentinel). */
static inline void
flowq_list_insert_after(struct flowq_list_node *pos, struct flowq_list_node *n)
{
	flowq_list__insert(n, pos, pos->next);
}

/** Unlink @p n, which must be linked; it is left unlinked (NULL links). */
static inline void
flowq_list_remove(struct flowq_list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/** The first member, or NULL if @p l is empty. */
static inline struct flowq_list_node *
flowq_list_front(const struct flowq_list *l)
{
	return flowq_list_empty(l) ? NULL : l->head.next;
}

/** The last member, or NULL if @p l is empty. */
static inline struct flowq_list_node *
flowq_list_back(const struct flowq_list *l)
{
	return flowq_list_empty(l) ? NULL : l->head.prev;
}

/** Unlink and return the first member, or NULL if @p l is empty. */
static inline struct flowq_list_node *
flowq_list_pop_front(struct flowq_list *l)
{
	struct flowq_list_node *n = flowq_list_front(l);

	if (n != NULL)
		flowq_list_remove(n);
	return n;
}

/** The member after @p n, or NULL if @p n is the last of @p l. */
static inline struct flowq_list_node *
flowq_list_next(const struct flowq_list *l, const struct flowq_list_node *n)
{
	return n->next == &l->head ? NULL : n->next;
}

/** Move every member of @p src to the back of @p dst, in order; @p src is
 * left empty. */
static inline void
flowq_list_splice_back(struct flowq_list *dst, struct flowq_list *src)
{
	struct flowq_list_node *first, *last;

	if (flowq_list_empty(src))
		return;
	first = src->head.next;
	last = src->head.prev;
	first->prev = dst->head.prev;
	dst->head.prev->next = first;
	last->next = &dst->head;
	dst->head.prev = last;
	flowq_list_init(src);
}

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_LIST_H */
