/*
 * Internal: the queue-time histogram each dispatcher records into. One
 * writer per histogram (the dispatcher that owns the band-shard or flow),
 * any number of readers (stats, metrics), no locks: buckets are atomics
 * written with relaxed load+store by their single writer (no locked
 * instruction) and read with relaxed loads. A reader may see a count
 * updated before the matching bucket; each value is exact, the set is not
 * one instant (flowq_stats_engine() documents that).
 *
 * Buckets (FLOWQ_HIST_BUCKETS = 130): bucket 0 holds [0, 1024) ns; buckets
 * 1..128 split each power of two 2^k (k = 10..41) into 4 equal parts; bucket
 * 129 holds >= 2^42 ns (~73 min). So a quantile read as its bucket's upper
 * bound over-estimates by less than 25 %.
 */
#ifndef FLOWQ_CORE_HIST_H
#define FLOWQ_CORE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#include <flowq/flowq.h>

struct flowq__hist {
	_Atomic uint64_t buckets[FLOWQ_HIST_BUCKETS];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

/** Bucket index of @p ns (negative counts as 0). */
unsigned
flowq__hist_index(int64_t ns);

/** Record one observation. Context: the histogram's single writer. */
void
flowq__hist_record(struct flowq__hist *h, int64_t ns);

/** Add @p h's counts into @p dst (relaxed loads). Context: any thread. */
void
flowq__hist_add_to(const struct flowq__hist *h, struct flowq_hist *dst);

#endif /* FLOWQ_CORE_HIST_H */
