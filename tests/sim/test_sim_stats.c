/*
 * test_sim_stats: the simulator's random streams, distributions and
 * statistics helpers (tools/flowq-sim/dist.c, stats.c).
 */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "sim.h"

Test(sim_rng, streams_are_reproducible_and_distinct)
{
	struct sim_rng a, b, c;
	sim_rng_seed(&a, 42, 1);
	sim_rng_seed(&b, 42, 1);
	sim_rng_seed(&c, 42, 2);
	int same_c = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = sim_rng_next(&a), y = sim_rng_next(&b), z = sim_rng_next(&c);
		cr_assert_eq(x, y);
		same_c += x == z;
	}
	cr_assert_lt(same_c, 2);
	for (int i = 0; i < 100000; i++) {
		double u = sim_rng_unit(&a);
		cr_assert(u > 0 && u < 1);
	}
}

/* The sample mean of 200k draws lies within 2% of the distribution's mean
 * (each case's coefficient of variation is small enough for that to be a
 * > 6-sigma bound), and no draw is negative. */
static void
check_mean(struct sim_dist d)
{
	struct sim_rng r;
	sim_rng_seed(&r, 7, 0);
	double sum = 0;
	const int n = 200000;
	for (int i = 0; i < n; i++) {
		double v = sim_dist_sample(&d, &r);
		cr_assert_geq(v, 0);
		sum += v;
	}
	double want = sim_dist_mean(&d);
	cr_assert(fabs(sum / n - want) < 0.02 * want, "kind %d: mean %g, want %g", d.kind,
	    sum / n, want);
}

Test(sim_dist, sample_means_match)
{
	check_mean((struct sim_dist){SIM_DIST_CONST, 5, 0});
	check_mean((struct sim_dist){SIM_DIST_UNIFORM, 10, 30});
	check_mean((struct sim_dist){SIM_DIST_EXP, 1e6, 0});
	check_mean((struct sim_dist){SIM_DIST_LOGNORMAL, 2048, 0.5});
	check_mean((struct sim_dist){SIM_DIST_PARETO, 100, 3.5});
}

Test(sim_dist, lognormal_median)
{
	struct sim_dist d = {SIM_DIST_LOGNORMAL, 1000, 1.0};
	struct sim_rng r;
	sim_rng_seed(&r, 3, 0);
	int below = 0;
	for (int i = 0; i < 100000; i++)
		below += sim_dist_sample(&d, &r) < 1000;
	cr_assert(below > 49000 && below < 51000, "%d below the median", below);
}

Test(sim_samples, quantiles_nearest_rank)
{
	struct sim_samples s = {0};
	cr_assert_eq(sim_quantile(&s, 0.5), 0);
	for (int i = 100; i >= 1; i--)
		cr_assert_eq(sim_samples_add(&s, i), 0);
	sim_samples_sort(&s);
	cr_assert_eq(s.v[0], 1);
	cr_assert_eq(sim_quantile(&s, 0.5), 50);
	cr_assert_eq(sim_quantile(&s, 0.99), 99);
	cr_assert_eq(sim_quantile(&s, 0.999), 100);
	cr_assert_eq(sim_quantile(&s, 0.0), 1);
	cr_assert_eq(sim_quantile(&s, 1.0), 100);
	cr_assert_eq(sim_quantile(&s, 0.011), 2);
	sim_samples_free(&s);
	cr_assert_null(s.v);
}

Test(sim_fair, water_filling)
{
	/* Capacity 100 among demands 10, 50, 80 with weights 1, 1, 2: the
	 * first is satisfied (10); 90 is left for weights 1 and 2: 30 and 60,
	 * under both demands. */
	double demand[] = {10, 50, 80}, weight[] = {1, 1, 2}, fair[3];
	size_t scratch[3];
	sim_maxmin_fair(3, demand, weight, 100, fair, scratch);
	cr_assert_float_eq(fair[0], 10, 1e-9);
	cr_assert_float_eq(fair[1], 30, 1e-9);
	cr_assert_float_eq(fair[2], 60, 1e-9);
	/* Plenty of capacity: everyone gets its demand. */
	sim_maxmin_fair(3, demand, weight, 1000, fair, scratch);
	cr_assert_float_eq(fair[0] + fair[1] + fair[2], 140, 1e-9);
	cr_assert_float_eq(fair[2], 80, 1e-9);
	/* Second claimant's demand binds after the first is full. */
	double d2[] = {100, 20}, w2[] = {1, 1}, f2[2];
	sim_maxmin_fair(2, d2, w2, 60, f2, scratch);
	cr_assert_float_eq(f2[0], 40, 1e-9);
	cr_assert_float_eq(f2[1], 20, 1e-9);
}

Test(sim_fair, jain)
{
	double eq[] = {3, 3, 3, 3};
	cr_assert_float_eq(sim_jain(4, eq), 1.0, 1e-12);
	double one[] = {1, 0, 0, 0};
	cr_assert_float_eq(sim_jain(4, one), 0.25, 1e-12);
	cr_assert(isnan(sim_jain(1, eq)));
	double zero[] = {0, 0};
	cr_assert(isnan(sim_jain(2, zero)));
}
