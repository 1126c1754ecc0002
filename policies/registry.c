/*
 * The policy registry: built-in policies in one explicit array per kind
 * (STYLE.md rule 7: no constructor registration, so a static libflowq.a
 * needs no --whole-archive), then the policies a host registered, in a
 * fixed table per kind.
 *
 * Concurrency. Registration is rare (a host adds its policies at start-up)
 * and lookups are not hot (an engine resolves names once, at create), but a
 * lookup may run on any thread at any time, so:
 *  - register takes the table's mutex: the duplicate check, the capacity
 *    check and the append are one atomic step against other registrations
 *    (two threads registering one name: exactly one gets 0, the other
 *    -EEXIST);
 *  - lookups (find, at) take no lock. A registration fills slot n first and
 *    then publishes the count n + 1 with a release store [R1]; a lookup
 *    loads the count with acquire [L1] and reads only the slots below it.
 *    So a lookup that sees the new count also sees the slot and, through
 *    the registrant's program order, the ops struct it points to. Slots are
 *    written once and never changed or freed, so a lookup never reads a slot
 *    while it is written (it is past the count that lookup loaded).
 * Progress: lookups are wait-free (at most FLOWQ_POLICY_MAX string
 * compares); register blocks on the mutex.
 *
 * Limit: a policy cannot be unregistered (an engine may be using it, and
 * lookups hold no reference), hence "valid for the process lifetime".
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/policy.h>

#include "builtin.h"

/*
 * Both kinds of ops struct start with their struct flowq_policy_desc, so a
 * pointer to the desc converts to a pointer to the ops struct and back (C11
 * 6.7.2.1p15): the table code below is written once, on descriptors.
 */
_Static_assert(offsetof(struct flowq_fairness_ops, desc) == 0,
	       "the descriptor is the first member of a fairness ops struct");
_Static_assert(offsetof(struct flowq_ordering_ops, desc) == 0,
	       "the descriptor is the first member of an ordering ops struct");
_Static_assert(offsetof(struct flowq_displacement_ops, desc) == 0,
	       "the descriptor is the first member of a displacement ops struct");

/* Built-in fairness policies, in the order flowq_fairness_at() lists them. */
static const struct flowq_policy_desc *const fairness_builtin[] = {
	&flowq_fairness_global_strict.desc,
	&flowq_fairness_round_robin.desc,
	&flowq_fairness_drr.desc,
	&flowq_fairness_wfq.desc,
};

/* Built-in ordering policies, in the order flowq_ordering_at() lists them. */
static const struct flowq_policy_desc *const ordering_builtin[] = {
	&flowq_ordering_fcfs.desc,
	&flowq_ordering_edf.desc,
	&flowq_ordering_slo_deadline.desc,
};

static const struct flowq_policy_desc *const displacement_builtin[] = {
	&flowq_displacement_none.desc,
	&flowq_displacement_lowest_band_newest.desc,
	&flowq_displacement_lowest_band_oldest.desc,
	&flowq_displacement_most_over_share.desc,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(NELEM(fairness_builtin) <= FLOWQ_POLICY_MAX &&
		       NELEM(ordering_builtin) <= FLOWQ_POLICY_MAX &&
		       NELEM(displacement_builtin) <= FLOWQ_POLICY_MAX,
	       "the built-ins fit FLOWQ_POLICY_MAX");

struct policy_table {
	const struct flowq_policy_desc *const *builtin;
	size_t nbuiltin;
	/* Serializes registrations (never taken by lookups). */
	pthread_mutex_t lock;
	/* Registered entries in [0, nregistered): written under the lock
	 * before the count covers them, never changed after. At most
	 * FLOWQ_POLICY_MAX - nbuiltin are used. */
	const struct flowq_policy_desc *registered[FLOWQ_POLICY_MAX];
	_Atomic size_t nregistered;
};

static struct policy_table fairness_table = {
	.builtin = fairness_builtin,
	.nbuiltin = NELEM(fairness_builtin),
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct policy_table ordering_table = {
	.builtin = ordering_builtin,
	.nbuiltin = NELEM(ordering_builtin),
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct policy_table displacement_table = {
	.builtin = displacement_builtin,
	.nbuiltin = NELEM(displacement_builtin),
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* [a-z0-9_]+, at most FLOWQ_POLICY_NAME_MAX bytes. Reads at most
 * FLOWQ_POLICY_NAME_MAX + 1 bytes of @name. */
static bool
policy_name_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return false;
	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (i == FLOWQ_POLICY_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return i > 0;
}

static bool
policy_desc_valid(const struct flowq_policy_desc *d)
{
	return d->abi_version >= FLOWQ_POLICY_ABI_MIN && d->abi_version <= FLOWQ_POLICY_ABI &&
	       policy_name_valid(d->name) &&
	       d->description != NULL;
}

/* The @i-th entry of @t, or NULL past the end. Wait-free. */
static const struct flowq_policy_desc *
table_at(struct policy_table *t, size_t i)
{
	size_t n;

	if (i < t->nbuiltin)
		return t->builtin[i];
	i -= t->nbuiltin;
	/* [L1] acquire, pairs with [R1]: slots below n are filled. */
	n = atomic_load_explicit(&t->nregistered, memory_order_acquire);
	return i < n ? t->registered[i] : NULL;
}

/* The entry of @t named @name among the built-ins and the first @n
 * registered entries, or NULL. */
static const struct flowq_policy_desc *
table_find_n(const struct policy_table *t, const char *name, size_t n)
{
	for (size_t i = 0; i < t->nbuiltin; i++) {
		if (strcmp(t->builtin[i]->name, name) == 0)
			return t->builtin[i];
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t->registered[i]->name, name) == 0)
			return t->registered[i];
	}
	return NULL;
}

static const struct flowq_policy_desc *
table_find(struct policy_table *t, const char *name)
{
	if (name == NULL)
		return NULL;
	/* [L1] acquire, pairs with [R1]. */
	return table_find_n(t, name,
			    atomic_load_explicit(&t->nregistered, memory_order_acquire));
}

static void
table_lock(pthread_mutex_t *m, bool lock)
{
	/* A statically initialized default mutex fails only on misuse
	 * (EDEADLK/EPERM are for error-checking mutexes): nothing to report
	 * to the caller, and continuing unlocked could corrupt the table. */
	if ((lock ? pthread_mutex_lock(m) : pthread_mutex_unlock(m)) != 0)
		abort();
}

/* @d is valid (checked by the caller). */
static int
table_register(struct policy_table *t, const struct flowq_policy_desc *d)
{
	size_t n;
	int rc = 0;

	table_lock(&t->lock, true);
	/* Relaxed: only registrations write the count, and they hold the
	 * lock, which orders this load after every earlier store. */
	n = atomic_load_explicit(&t->nregistered, memory_order_relaxed);
	if (table_find_n(t, d->name, n) != NULL) {
		rc = -EEXIST;
	} else if (t->nbuiltin + n >= FLOWQ_POLICY_MAX) {
		rc = -ENOSPC;
	} else {
		t->registered[n] = d;
		/* [R1] release, pairs with [L1]: a lookup that sees n + 1
		 * sees slot n and the ops struct it points to. Without it a
		 * lookup could read the slot before it is written. */
		atomic_store_explicit(&t->nregistered, n + 1, memory_order_release);
	}
	table_lock(&t->lock, false);
	return rc;
}

const struct flowq_fairness_ops *
flowq_fairness_find(const char *name)
{
	return (const struct flowq_fairness_ops *)table_find(&fairness_table, name);
}

const struct flowq_ordering_ops *
flowq_ordering_find(const char *name)
{
	return (const struct flowq_ordering_ops *)table_find(&ordering_table, name);
}

const struct flowq_fairness_ops *
flowq_fairness_at(size_t i)
{
	return (const struct flowq_fairness_ops *)table_at(&fairness_table, i);
}

const struct flowq_ordering_ops *
flowq_ordering_at(size_t i)
{
	return (const struct flowq_ordering_ops *)table_at(&ordering_table, i);
}

int
flowq_fairness_register(const struct flowq_fairness_ops *ops)
{
	if (ops == NULL || !policy_desc_valid(&ops->desc) || ops->band_init == NULL ||
	    ops->band_fini == NULL || ops->flow_attach == NULL ||
	    ops->flow_detach == NULL || ops->flow_backlogged == NULL ||
	    ops->pick == NULL || ops->update == NULL)
		return -EINVAL;
	return table_register(&fairness_table, &ops->desc);
}

int
flowq_ordering_register(const struct flowq_ordering_ops *ops)
{
	if (ops == NULL || !policy_desc_valid(&ops->desc) || ops->push_batch == NULL ||
	    ops->peek == NULL || ops->pop == NULL || ops->remove == NULL ||
	    ops->key == NULL)
		return -EINVAL;
	return table_register(&ordering_table, &ops->desc);
}

const struct flowq_displacement_ops *
flowq_displacement_find(const char *name)
{
	return (const struct flowq_displacement_ops *)table_find(&displacement_table, name);
}

const struct flowq_displacement_ops *
flowq_displacement_at(size_t i)
{
	return (const struct flowq_displacement_ops *)table_at(&displacement_table, i);
}

int
flowq_displacement_register(const struct flowq_displacement_ops *ops)
{
	if (ops == NULL || !policy_desc_valid(&ops->desc) || ops->band_init == NULL ||
	    ops->band_fini == NULL || ops->arrived == NULL || ops->left == NULL ||
	    ops->victim == NULL)
		return -EINVAL;
	return table_register(&displacement_table, &ops->desc);
}
