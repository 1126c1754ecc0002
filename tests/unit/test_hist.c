/*
 * Unit tests for core/hist.c: the queue-time histogram's bucket layout,
 * quantiles, and single-writer recording read concurrently.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>

#include "hist.h"
#include "test_util.h"

#define LAST (FLOWQ_HIST_BUCKETS - 1)

Test(hist, every_bound_is_in_its_bucket_and_the_next_ns_in_the_next)
{
	for (unsigned i = 0; i < LAST; i++) {
		int64_t b = flowq_hist_bound(i);

		cr_assert_eq(flowq__hist_index(b), i, "bound(%u) = %lld", i,
			     (long long)b);
		cr_assert_eq(flowq__hist_index(b + 1), i + 1, "bound(%u) + 1 = %lld", i,
			     (long long)b + 1);
		if (i > 0)
			cr_assert_gt(b, flowq_hist_bound(i - 1), "bounds increase at %u",
				     i);
	}
	cr_assert_eq(flowq_hist_bound(LAST), INT64_MAX, "the last bucket is open-ended");
	cr_assert_eq(flowq_hist_bound(LAST + 1), INT64_MAX,
		     "out of range: the last bound");
}

Test(hist, boundaries)
{
	const int64_t t42 = INT64_C(1) << 42;

	cr_assert_eq(flowq__hist_index(0), 0);
	cr_assert_eq(flowq__hist_index(1023), 0);
	cr_assert_eq(flowq__hist_index(1024), 1);
	cr_assert_eq(flowq_hist_bound(0), 1023);
	cr_assert_eq(flowq_hist_bound(1), 1024 + 256 - 1,
		     "1024 split in 4: [1024, 1279]");
	cr_assert_eq(flowq__hist_index(t42 - 1), LAST - 1);
	cr_assert_eq(flowq_hist_bound(LAST - 1), t42 - 1);
	cr_assert_eq(flowq__hist_index(t42), LAST);
	cr_assert_eq(flowq__hist_index(INT64_MAX), LAST);
	cr_assert_eq(flowq__hist_index(-1), 0, "negative durations count as 0");
	cr_assert_eq(flowq__hist_index(INT64_MIN), 0);
}

/* Each finite bucket above bucket 0 is at most a quarter of its lower
 * edge wide: the "< 25 %" over-estimate of flowq_hist_quantile(). */
Test(hist, finite_buckets_are_narrower_than_a_quarter_of_their_lower_edge)
{
	for (unsigned i = 1; i < LAST; i++) {
		int64_t lo = flowq_hist_bound(i - 1) + 1, hi = flowq_hist_bound(i);

		cr_assert_leq(4 * (hi - lo + 1), lo, "bucket %u [%lld, %lld]", i,
			      (long long)lo, (long long)hi);
	}
}

Test(hist, record_counts_negatives_as_zero)
{
	static struct flowq__hist h;
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	flowq__hist_record(&h, -5);
	flowq__hist_record(&h, 3000);
	flowq__hist_add_to(&h, &s);
	cr_assert_eq(s.count, 2);
	cr_assert_eq(s.sum_ns, 3000, "the negative adds 0 to the sum");
	cr_assert_eq(s.buckets[0], 1);
	cr_assert_eq(s.buckets[flowq__hist_index(3000)], 1);
}

Test(hist, add_to_accumulates)
{
	static struct flowq__hist a, b;
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	flowq__hist_record(&a, 5000);
	flowq__hist_record(&b, 5000);
	flowq__hist_record(&b, 1);
	flowq__hist_add_to(&a, &s);
	flowq__hist_add_to(&b, &s);
	cr_assert_eq(s.count, 3);
	cr_assert_eq(s.sum_ns, 10001);
	cr_assert_eq(s.buckets[flowq__hist_index(5000)], 2);
	cr_assert_eq(s.buckets[0], 1);
}

Test(hist, empty_quantile_is_zero)
{
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	cr_assert_eq(flowq_hist_quantile(&s, 0.5), 0);
	cr_assert_eq(flowq_hist_quantile(&s, 1.0), 0);
	cr_assert_eq(flowq_hist_quantile(NULL, 0.5), 0);
}

/* A snapshot read while a writer records (flowq__hist_add_to() reads the
 * words one by one) can count more observations than its buckets hold: a
 * rank past the buckets' sum is answered with the top bucket observed,
 * never with the last bucket's INT64_MAX nor a bound of no observation. */
Test(hist, torn_snapshot_quantile_is_the_top_observed_bucket)
{
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	s.count = 10;
	s.buckets[3] = 2;
	s.buckets[7] = 2;
	cr_assert_eq(flowq_hist_quantile(&s, 0.2), flowq_hist_bound(3),
		     "rank 2: in the sum");
	cr_assert_eq(flowq_hist_quantile(&s, 0.4), flowq_hist_bound(7),
		     "rank 4: in the sum");
	cr_assert_eq(flowq_hist_quantile(&s, 0.5), flowq_hist_bound(7),
		     "rank 5: past it");
	cr_assert_eq(flowq_hist_quantile(&s, 1.0), flowq_hist_bound(7));
	/* The count seen, no bucket yet: nothing to answer with. */
	memset(s.buckets, 0, sizeof(s.buckets));
	cr_assert_eq(flowq_hist_quantile(&s, 0.5), 0);
}

Test(hist, nan_quantile_is_zero)
{
	static struct flowq__hist h;
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	flowq__hist_record(&h, 1000000);
	flowq__hist_record(&h, 2000000);
	flowq__hist_add_to(&h, &s);
	cr_assert_eq(flowq_hist_quantile(&s, NAN), 0, "no quantile, as for no data");
	cr_assert_eq(flowq_hist_quantile(&s, -NAN), 0);
	cr_assert_neq(flowq_hist_quantile(&s, 0.0), 0, "the data is there");
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Quantiles on known data: the answer is the upper bound of the bucket that
 * holds the exact quantile (the smallest value with rank >= q * n), so it
 * is >= the exact value and, for values >= 1024 ns, less than 25 % above
 * it. (Below 1024 ns the over-estimate is bounded by 1023 ns instead:
 * bucket 0 is [0, 1023].)
 */
Test(hist, quantiles_over_estimate_by_less_than_a_quarter)
{
	enum { N = 10000 };
	static int64_t v[N];
	static struct flowq__hist h;
	struct flowq_hist s;
	const double qs[] = {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0};
	uint64_t rng = 42;

	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < N; i++) {
		/* Log-uniform from 1 us to ~1 h: every octave gets data. */
		unsigned shift = 10 + (unsigned)(test_rng_next(&rng) % 32);

		v[i] = (int64_t)((INT64_C(1) << shift) +
				 (int64_t)(test_rng_next(&rng) % (UINT64_C(1) << shift)));
		flowq__hist_record(&h, v[i]);
	}
	flowq__hist_add_to(&h, &s);
	qsort(v, N, sizeof(v[0]), cmp_i64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		double want_rank = qs[k] * N;
		size_t rank = (size_t)want_rank;
		int64_t exact, got;

		if ((double)rank < want_rank)
			rank++;
		if (rank == 0)
			rank = 1;
		exact = v[rank - 1];
		got = flowq_hist_quantile(&s, qs[k]);
		cr_assert_geq(got, exact, "q=%g: %lld < exact %lld", qs[k],
			      (long long)got, (long long)exact);
		cr_assert_lt((double)got, 1.25 * (double)exact,
			     "q=%g: %lld vs exact %lld", qs[k], (long long)got,
			     (long long)exact);
		cr_assert_eq(flowq__hist_index(got), flowq__hist_index(exact),
			     "q=%g: the exact value's own bucket", qs[k]);
	}
	cr_assert_eq(flowq_hist_quantile(&s, -1.0), flowq_hist_quantile(&s, 0.0),
		     "q < 0 clamps to 0");
	cr_assert_eq(flowq_hist_quantile(&s, 2.0), flowq_hist_quantile(&s, 1.0),
		     "q > 1 clamps to 1");
}

Test(hist, quantiles_of_small_known_sets)
{
	static struct flowq__hist h;
	struct flowq_hist s;

	memset(&s, 0, sizeof(s));
	/* 1, 2, 3 ms and one 1 s straggler. */
	flowq__hist_record(&h, 1000000);
	flowq__hist_record(&h, 2000000);
	flowq__hist_record(&h, 3000000);
	flowq__hist_record(&h, 1000000000);
	flowq__hist_add_to(&h, &s);
	cr_assert_eq(flowq_hist_quantile(&s, 0.0),
		     flowq_hist_bound(flowq__hist_index(1000000)));
	cr_assert_eq(flowq_hist_quantile(&s, 0.5),
		     flowq_hist_bound(flowq__hist_index(2000000)), "rank 2 of 4");
	cr_assert_eq(flowq_hist_quantile(&s, 0.75),
		     flowq_hist_bound(flowq__hist_index(3000000)));
	cr_assert_eq(flowq_hist_quantile(&s, 0.76),
		     flowq_hist_bound(flowq__hist_index(1000000000)), "rank 4 of 4");
	cr_assert_eq(flowq_hist_quantile(&s, 1.0),
		     flowq_hist_bound(flowq__hist_index(1000000000)));
	/* Beyond 2^42 ns the answer is the open bucket's INT64_MAX. */
	flowq__hist_record(&h, INT64_C(1) << 50);
	memset(&s, 0, sizeof(s));
	flowq__hist_add_to(&h, &s);
	cr_assert_eq(flowq_hist_quantile(&s, 1.0), INT64_MAX);
}

/*
 * One writer records while one reader snapshots. Each observation adds
 * V = 2^32 + 1 to sum_ns, so a sum read half-updated (a torn 64-bit word,
 * e.g. low half new and high half old) is not a multiple of V; reads of
 * each word must also never go backwards (single writer, coherence).
 */
#define TEAR_V    ((INT64_C(1) << 32) + 1)
#define TEAR_RECS 200000u

static struct flowq__hist tear_h;
static _Atomic bool tear_done;

static void *
tear_writer(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < TEAR_RECS; i++)
		flowq__hist_record(&tear_h, TEAR_V);
	atomic_store_explicit(&tear_done, true, memory_order_release);
	return NULL;
}

Test(hist, concurrent_reads_see_whole_monotonic_values)
{
	const unsigned b = flowq__hist_index(TEAR_V);
	uint64_t last_count = 0, last_sum = 0, last_bucket = 0, reads = 0;
	pthread_t t;
	bool done;

	cr_assert_eq(pthread_create(&t, NULL, tear_writer, NULL), 0);
	do {
		struct flowq_hist s;

		/* Acquire: after "done", the final values are visible. */
		done = atomic_load_explicit(&tear_done, memory_order_acquire);
		memset(&s, 0, sizeof(s));
		flowq__hist_add_to(&tear_h, &s);
		reads++;
		cr_assert_eq(s.sum_ns % (uint64_t)TEAR_V, 0, "torn sum %llu",
			     (unsigned long long)s.sum_ns);
		cr_assert_leq(s.sum_ns / (uint64_t)TEAR_V, TEAR_RECS);
		cr_assert_geq(s.count, last_count, "count went backwards");
		cr_assert_geq(s.sum_ns, last_sum, "sum went backwards");
		cr_assert_geq(s.buckets[b], last_bucket, "bucket went backwards");
		cr_assert_leq(s.count, TEAR_RECS);
		last_count = s.count;
		last_sum = s.sum_ns;
		last_bucket = s.buckets[b];
	} while (!done);
	pthread_join(t, NULL);
	cr_assert_eq(last_count, TEAR_RECS,
		     "the read after the writer finished is exact");
	cr_assert_eq(last_sum, (uint64_t)TEAR_V * TEAR_RECS);
	cr_assert_eq(last_bucket, TEAR_RECS);
	cr_log_info("%llu concurrent reads", (unsigned long long)reads);
}
