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

/** Add @p h's counts into @p dst. Context: any thread. Ordering: acquire
 * loads, so that a reader that sees a value flowq__hist_merge() stored
 * also sees what its writer did before (the engine's band seqlock). */
void
flowq__hist_add_to(const struct flowq__hist *h, struct flowq_hist *dst);

/** dst += src for a counter with a single writer (the caller) whose source
 * no longer changes: a relaxed load and a release store, so a reader whose
 * acquire load sees the sum also sees the writer's earlier stores (the
 * engine's band seqlock, engine.c). */
static inline void
flowq__merge_word(_Atomic uint64_t *dst, const _Atomic uint64_t *src)
{
	uint64_t v = atomic_load_explicit(src, memory_order_relaxed);
	if (v)
		atomic_store_explicit(dst, atomic_load_explicit(dst, memory_order_relaxed) + v,
				      memory_order_release);
}

/** Add @p src's counts into @p dst (release stores). Context: @p dst's
 * single writer; @p src no longer written (a collected band's). */
void
flowq__hist_merge(struct flowq__hist *dst, const struct flowq__hist *src);

#endif /* FLOWQ_CORE_HIST_H */
