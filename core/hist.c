/*
 * Queue-time histogram: bucket layout and single-writer recording (see
 * core/hist.h for the layout and the concurrency contract).
 */
#include <math.h>

#include "hist.h"

#define HIST_MIN_SHIFT 10 /* bucket 0 is [0, 2^10) ns */
#define HIST_MAX_SHIFT 42 /* the last bucket is [2^42, inf) ns */
#define HIST_SUB_BITS  2  /* 4 buckets per power of two */

_Static_assert(1 + (HIST_MAX_SHIFT - HIST_MIN_SHIFT) * (1 << HIST_SUB_BITS) + 1 ==
		       FLOWQ_HIST_BUCKETS,
	       "FLOWQ_HIST_BUCKETS matches the bucket layout");

unsigned
flowq__hist_index(int64_t ns)
{
	if (ns < (INT64_C(1) << HIST_MIN_SHIFT))
		return 0;
	unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)ns);
	if (k >= HIST_MAX_SHIFT)
		return FLOWQ_HIST_BUCKETS - 1;
	unsigned sub = (unsigned)((uint64_t)ns >> (k - HIST_SUB_BITS)) &
		       ((1u << HIST_SUB_BITS) - 1);
	return 1 + (k - HIST_MIN_SHIFT) * (1u << HIST_SUB_BITS) + sub;
}

int64_t
flowq_hist_bound(unsigned i)
{
	if (i == 0)
		return (INT64_C(1) << HIST_MIN_SHIFT) - 1;
	if (i >= FLOWQ_HIST_BUCKETS - 1)
		return INT64_MAX;
	unsigned k = HIST_MIN_SHIFT + (i - 1) / (1u << HIST_SUB_BITS);
	unsigned sub = (i - 1) % (1u << HIST_SUB_BITS);
	return (INT64_C(1) << k) + (int64_t)(sub + 1) * (INT64_C(1) << (k - HIST_SUB_BITS)) -
	       1;
}

int64_t
flowq_hist_quantile(const struct flowq_hist *h, double q)
{
	/* NaN would pass both clamps, and converting it to an integer is
	 * undefined: no quantile, as for no data. */
	if (!h || h->count == 0 || isnan(q))
		return 0;
	if (q < 0.0)
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	/* The rank of the quantile: the smallest r with r >= q * count, at
	 * least 1 (q = 0 is the minimum's bucket). */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < FLOWQ_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			return flowq_hist_bound(i);
	}
	/* The buckets were read while being written and sum to less than
	 * count: the top observed bucket is the best answer. */
	for (unsigned i = FLOWQ_HIST_BUCKETS; i-- > 0;)
		if (h->buckets[i])
			return flowq_hist_bound(i);
	return 0;
}

/* Single writer: a relaxed load and store is enough (no other thread
 * writes these words) and avoids a locked instruction per observation;
 * readers see each word whole because it is atomic. */
static inline void
bump(_Atomic uint64_t *w, uint64_t by)
{
	atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

void
flowq__hist_record(struct flowq__hist *h, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	bump(&h->buckets[flowq__hist_index(ns)], 1);
	bump(&h->sum_ns, (uint64_t)ns);
	bump(&h->count, 1);
}

void
flowq__hist_add_to(const struct flowq__hist *h, struct flowq_hist *dst)
{
	/* Acquire (plain loads on x86): pairs with flowq__hist_merge(). */
	for (unsigned i = 0; i < FLOWQ_HIST_BUCKETS; i++)
		dst->buckets[i] += atomic_load_explicit(&h->buckets[i], memory_order_acquire);
	dst->count += atomic_load_explicit(&h->count, memory_order_acquire);
	dst->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_acquire);
}

void
flowq__hist_merge(struct flowq__hist *dst, const struct flowq__hist *src)
{
	for (unsigned i = 0; i < FLOWQ_HIST_BUCKETS; i++)
		flowq__merge_word(&dst->buckets[i], &src->buckets[i]);
	flowq__merge_word(&dst->count, &src->count);
	flowq__merge_word(&dst->sum_ns, &src->sum_ns);
}
