/*
 * Filling a policy registry (fairness, ordering or displacement) up to
 * FLOWQ_POLICY_MAX in a unit test, then checking that one more is refused:
 * the same steps for three registries whose ops types differ, hence a
 * macro. Criterion runs each test in its own process, so the filled
 * process-global table does not leak into other tests.
 */
#ifndef FLOWQ_TESTS_POLICY_FILL_H
#define FLOWQ_TESTS_POLICY_FILL_H

#include <errno.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include <flowq/policy.h>

/*
 * Register ops[n] = tmpl(names[n]) (names "<prefix>NN") for n = 0, 1, ...
 * through reg() until the table, which held nbuiltin policies, is full;
 * then the next one must get -ENOSPC and stay unknown to find(). names
 * and ops are arrays of FLOWQ_POLICY_MAX + 1 entries (names of at least 8
 * chars); on return *r_n is how many were registered (names[*r_n] is the
 * refused one).
 */
#define POLICY_FILL_TO_ENOSPC(reg, find, tmpl, prefix, names, ops, nbuiltin, r_n)        \
	do {                                                                             \
		size_t fill_n_;                                                          \
		for (fill_n_ = 0; (nbuiltin) + fill_n_ < FLOWQ_POLICY_MAX; fill_n_++) {  \
			snprintf((names)[fill_n_], sizeof((names)[fill_n_]),             \
				 prefix "%02zu", fill_n_);                               \
			(ops)[fill_n_] = tmpl((names)[fill_n_]);                         \
			cr_assert_eq(reg(&(ops)[fill_n_]), 0, "policy %zu", fill_n_);    \
		}                                                                        \
		snprintf((names)[fill_n_], sizeof((names)[fill_n_]), prefix "%02zu",     \
			 fill_n_);                                                       \
		(ops)[fill_n_] = tmpl((names)[fill_n_]);                                 \
		cr_assert_eq(reg(&(ops)[fill_n_]), -ENOSPC);                             \
		cr_assert_null(find((names)[fill_n_]));                                  \
		*(r_n) = fill_n_;                                                        \
	} while (0)

#endif /* FLOWQ_TESTS_POLICY_FILL_H */
