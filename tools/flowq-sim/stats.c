/*
 * stats.c: the simulator's statistics helpers (sim.h): duration samples
 * with exact quantiles, weighted max-min fair shares, Jain's index.
 *
 * Quantiles are exact (every sample is kept, 8 bytes each, and sorted once
 * at the end): a run of a minute at 10^4 requests/s keeps 5 MB, and golden
 * tests compare exact figures rather than a histogram's bucket bounds.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "sim.h"

int
sim_samples_add(struct sim_samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		int64_t *nv = realloc(s->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

void
sim_samples_sort(struct sim_samples *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
}

void
sim_samples_free(struct sim_samples *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

int64_t
sim_quantile(const struct sim_samples *s, double q)
{
	if (s->n == 0)
		return 0;
	if (!(q > 0))
		return s->v[0];
	if (q >= 1)
		return s->v[s->n - 1];
	/* Nearest rank: the smallest sample with at least q of them <= it. */
	double rank = ceil(q * (double)s->n);
	size_t i = rank < 1 ? 0 : (size_t)rank - 1;
	return s->v[i < s->n ? i : s->n - 1];
}

/* qsort has no context argument: the comparison reads these (the simulator
 * is single-threaded where it computes shares). */
static const double *cmp_demand, *cmp_weight;

static int
cmp_level(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	double x = cmp_demand[i] / cmp_weight[i], y = cmp_demand[j] / cmp_weight[j];
	if (x != y)
		return x < y ? -1 : 1;
	return (i > j) - (i < j);
}

void
sim_maxmin_fair(size_t n, const double *demand, const double *weight, double capacity,
    double *r_fair, size_t *scratch)
{
	/* Water-filling: visit claimants by demand per unit of weight,
	 * smallest first; each gets min(its demand, its weighted part of what
	 * is left). Once one is not satisfied, no later one is, and they all
	 * get the same level. */
	double wsum = 0;
	for (size_t i = 0; i < n; i++) {
		scratch[i] = i;
		wsum += weight[i];
	}
	cmp_demand = demand;
	cmp_weight = weight;
	qsort(scratch, n, sizeof(*scratch), cmp_level);
	double left = capacity > 0 ? capacity : 0;
	for (size_t k = 0; k < n; k++) {
		size_t i = scratch[k];
		double part = wsum > 0 ? left * weight[i] / wsum : 0;
		double got = demand[i] < part ? demand[i] : part;
		r_fair[i] = got;
		left -= got;
		wsum -= weight[i];
	}
}

double
sim_jain(size_t n, const double *x)
{
	if (n < 2)
		return NAN;
	double sum = 0, sq = 0;
	for (size_t i = 0; i < n; i++) {
		sum += x[i];
		sq += x[i] * x[i];
	}
	if (!(sq > 0))
		return NAN;
	return sum * sum / ((double)n * sq);
}

void
sim_counts_add(struct sim_counts *a, const struct sim_counts *b)
{
	a->offered += b->offered;
	a->rejected_capacity += b->rejected_capacity;
	a->rejected_other += b->rejected_other;
	a->dispatched += b->dispatched;
	a->expired += b->expired;
	a->cancelled += b->cancelled;
	a->displaced += b->displaced;
	a->shutdown += b->shutdown;
	a->completed += b->completed;
	a->offered_bytes += b->offered_bytes;
	a->dispatched_bytes += b->dispatched_bytes;
}

double
sim_clock_s(enum sim_clock which)
{
	struct timespec ts;
	clock_gettime(which == SIM_CLOCK_CPU ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
