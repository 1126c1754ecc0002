/*
 * gie_style: GIE's flow-control engine modelled in C (see gie_style.h for
 * what is modelled, from which GIE file and section, and what is not).
 *
 * Locks, in the order they may nest (never the other way):
 *   registry rwlock (e->reg_lock)  >  flow queue mutex (flow->lock)
 *   hand-off mutex (shard->ho.lock), flow lease mutex: leaves, never nested
 *   with anything.
 * As in GIE, no lock is held across a completion callback.
 *
 * Memory. Without flow GC (flow_gc_timeout_ns = 0, as in a benchmark run of
 * GIE, whose GC period is 5 min) flows live until destroy. With it, the GC
 * thread unlinks a collected flow under the registry write lock and pushes
 * it on its shard's graveyard, which the shard's processor frees at the top
 * of its loop. Who may hold a flow pointer outside the registry lock, and
 * why that is safe:
 *   - an item's lease and queue pointers: the flow is leased (pinned from
 *     submit to gie_style_done()), and a leased flow is never collected;
 *   - a processor's pick snapshot: lives within one cycle, and the graveyard
 *     is freed by that same processor between cycles;
 *   - the sweeper: walks under the registry read lock, so it never sees a
 *     flow that is being unlinked, and holds nothing after the walk.
 * A submitter pins under the read lock, and the GC marks a flow (under its
 * lease mutex, read lock held) before it unlinks it: a pin of a marked flow
 * fails and the submitter retries until the flow is gone and it creates a
 * new one (GIE's markedForDeletion, §4.3).
 *
 * Gate wake-up handshake (benchDetector): a processor whose cycle met the
 * closed gate stores gate_waiting = true [G1], re-reads the in-flight count
 * and waits only if the gate is still closed; gie_style_release() decrements
 * the count [G2] and then reads gate_waiting. Both sides are seq_cst, so
 * either the processor sees the freed slot or the releaser sees the flag
 * and signals. The wait is also bounded by GIE's 1 ms tick.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gie_style.h"

#define GIE_STYLE_LINE 64
/* Initial hash buckets (power of two); the table doubles past 3/4 full. */
#define GIE_STYLE_BUCKETS 1024u
/* dispatch_cycle_duration buckets, ns (GIE: 0.0001 .. 0.1 s, §8.1). */
#define GIE_STYLE_HIST_BUCKETS 10u
/* GIE's dispatch ticker period (§1.11): a gated processor looks again at
 * least this often. */
#define GIE_STYLE_TICK_NS 1000000

static const uint64_t gie_style_hist_bounds_ns[GIE_STYLE_HIST_BUCKETS] = {
	100000,  200000,   500000,   1000000,  2000000,
	5000000, 10000000, 20000000, 50000000, 100000000,
};

/* A flow: ManagedQueue + ListQueue + its lease state (flowState). */
struct gie_style_flow {
	/* Immutable after creation (hnext: under the registry write lock). */
	struct gie_style_flow *hnext;
	uint64_t hash;
	int32_t priority;
	uint32_t id_len;
	unsigned shard;
	struct gie_style_band *band;

	/* The queue: list and counters written under lock. */
	pthread_mutex_t lock;
	struct gie_style_item *head;
	struct gie_style_item *tail;
	/* Len() and ByteSize(): read without the lock (relaxed). */
	_Atomic int64_t len;
	_Atomic int64_t bytes;

	/* The lease (flowState's mutex and count). */
	pthread_mutex_t lease_lock;
	uint64_t leases;
	/* Under lease_lock: when the last lease went (0 = leased, or never
	 * leased and not yet seen idle by the GC), and whether the GC has
	 * claimed the flow (pins fail from then on). */
	int64_t idle_since;
	bool marked;
	/* GC victim list, then the shard's graveyard. */
	struct gie_style_flow *gcnext;

	char id[];
};

/*
 * A priority band on one shard. Its flows are kept as GIE keeps them, in a
 * hash map (priorityBand.queues, a Go map[string]*managedQueue): the
 * processor looks a flow up in it on every enqueue, and every global-strict
 * pick iterates all of it. Here: open addressing with linear probing, grown
 * past 13/16 full (Go's maps grow at 6.5 of 8 slots per bucket), so an
 * iteration visits about 1.25 slots per flow.
 */
struct gie_style_band {
	int32_t priority;
	/* This shard's partition of the band's limits. */
	uint64_t max_bytes;
	uint64_t max_requests;
	/* Band-level stats (written under the flows' locks). */
	_Atomic int64_t len;
	_Atomic int64_t bytes;
	/* The map: under the registry lock. */
	struct gie_style_flow **slots;
	size_t slot_mask;
	size_t nflows;
};

/*
 * What IterateQueues() hands the policy per flow: at bca878b3,
 * FlowQueueAccessor() returned a new proxy object on every call (it was made
 * a pre-allocated field only in 1edb6040), so every pick allocates one per
 * flow.
 */
struct gie_style_accessor {
	struct gie_style_flow *mq;
};

/* PriorityBandAccessor(): a proxy allocated per call at bca878b3. */
struct gie_style_band_accessor {
	struct gie_style_shard *shard;
	struct gie_style_band *band;
};

/* What shard.Stats() hands hasCapacity() per band. */
struct gie_style_band_stats {
	int32_t priority;
	uint64_t max_bytes;
	uint64_t max_requests;
	int64_t bytes;
	int64_t len;
};

/* GIE's enqueueChan. */
struct gie_style_handoff {
	pthread_mutex_t lock;
	pthread_cond_t nonempty; /* the processor waits here */
	pthread_cond_t notfull;  /* blocked submitters wait here */
	struct gie_style_item *head;
	struct gie_style_item *tail;
	/* Written under lock; read without it by the processor's fast
	 * "channel empty?" check, as Go's non-blocking receive does. */
	_Atomic unsigned count;
	unsigned cap;
	unsigned senders_waiting;
	bool proc_waiting;
	bool stop;
};

/* A Prometheus-style histogram: Observe() is three atomic adds. */
struct gie_style_hist {
	_Atomic uint64_t buckets[GIE_STYLE_HIST_BUCKETS + 1];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

struct gie_style_shard {
	struct gie_style_engine *e;
	unsigned index;
	/* This shard's partition of the global limits. */
	uint64_t max_bytes;
	uint64_t max_requests;
	/* Bands, priority descending (orderedPriorityLevels). */
	struct gie_style_band *bands;
	size_t nbands;

	/* Shard totals, written under the flows' locks. */
	_Alignas(GIE_STYLE_LINE) _Atomic int64_t len;
	_Atomic int64_t bytes;

	_Alignas(GIE_STYLE_LINE) struct gie_style_handoff ho;
	/* Written under ho.lock by submitters. */
	_Atomic uint64_t blocked;
	/* Collected flows for the processor to free (pushed by the GC). */
	_Atomic(struct gie_style_flow *) graveyard;
	/* The processor waits on a closed gate ([G1]). */
	_Atomic bool gate_waiting;

	/* Processor-written instrumentation (single writer, relaxed). */
	_Alignas(GIE_STYLE_LINE) _Atomic uint64_t received;
	_Atomic uint64_t outcomes[GIE_STYLE_OUTCOME_COUNT];
	_Atomic uint64_t cycles;
	_Atomic uint64_t idle_cycles;
	_Atomic uint64_t scanned;
	_Atomic uint64_t peeked;
	_Atomic uint64_t gated;
	_Atomic uint64_t zombie_heads;
	_Atomic uint64_t zombie_handoffs;
	struct gie_style_hist cycle_hist;
	/* Sweeper-written. */
	_Alignas(GIE_STYLE_LINE) _Atomic uint64_t swept;

	pthread_t thread;
	pthread_t sweeper;
	clockid_t cpu_clock;
	bool started;
	bool sweeper_started;
	bool cpu_clock_ok;
};

struct gie_style_engine {
	/* The registry: hash table and band flow arrays under reg_lock. */
	pthread_rwlock_t reg_lock;
	struct gie_style_flow **buckets;
	size_t mask;
	size_t nflows;
	/* Registry-level stats. */
	_Alignas(GIE_STYLE_LINE) _Atomic int64_t len;
	_Atomic int64_t bytes;

	/* Under the registry write lock / the GC thread. */
	_Atomic uint64_t flows_created;
	_Atomic uint64_t flows_collected;

	/* benchDetector: dispatched and not yet released. */
	_Alignas(GIE_STYLE_LINE) _Atomic int64_t inflight;
	/* Outcomes decided by gie_style_cancel() (any thread). */
	_Alignas(GIE_STYLE_LINE) _Atomic uint64_t cancelled[GIE_STYLE_OUTCOME_COUNT];

	_Alignas(GIE_STYLE_LINE) _Atomic bool stopping;
	uint64_t max_inflight;
	bool always_saturated;
	int64_t gc_timeout_ns;
	int64_t sweep_ns;
	unsigned nshards;
	struct gie_style_shard *shards;

	/* The GC and sweeper threads sleep here (CLOCK_MONOTONIC) until
	 * their period passes or bg_stop is set. */
	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;
	bool bg_stop;
	pthread_t gc_thread;
	bool gc_started;
};

/* ---- small helpers ------------------------------------------------------- */

static inline int64_t
gie_style_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Add to a counter that one thread writes (or writers serialized by a lock):
 * no lock prefix, so the instrumentation costs what GIE's does not. */
static inline void
gie_style_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t
gie_style_rotl(uint64_t x, unsigned r)
{
	return x << r | x >> (64 - r);
}

/*
 * Hash of a flow key, 8 bytes a step (Go's map hashes strings with AES-NI,
 * a few ns for a short id; a byte-at-a-time hash would cost the peer more
 * than GIE pays).
 */
static uint64_t
gie_style_hash(const void *id, uint32_t len, int32_t priority)
{
	const unsigned char *p = id;
	uint64_t h = 0x9e3779b97f4a7c15u ^ len ^ (uint64_t)(uint32_t)priority << 32;
	uint64_t k;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&k, p, 8);
		h ^= gie_style_rotl(k * 0x87c37b91114253d5u, 31) * 0x4cf5ad432745937fu;
		h = gie_style_rotl(h, 27) * 5 + 0x52dce729;
	}
	k = 0;
	memcpy(&k, p, len);
	h ^= gie_style_rotl(k * 0x87c37b91114253d5u, 31) * 0x4cf5ad432745937fu;
	/* fmix64 (MurmurHash3). */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

/* GIE's partitionUint64 (§4.4): total / n each, the first total % n get one
 * more; 0 (unlimited) stays 0. */
static uint64_t
gie_style_partition(uint64_t total, unsigned n, unsigned i)
{
	if (total == 0)
		return 0;
	return total / n + (i < total % n ? 1 : 0);
}

static void
gie_style_hist_observe(struct gie_style_hist *h, uint64_t ns)
{
	unsigned i = 0;

	while (i < GIE_STYLE_HIST_BUCKETS && ns > gie_style_hist_bounds_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* ---- registry ------------------------------------------------------------- */

/* The band of @p priority on @p sh, or NULL. Caller holds the registry lock. */
static struct gie_style_band *
gie_style_band_find(struct gie_style_shard *sh, int32_t priority)
{
	for (size_t i = 0; i < sh->nbands; i++)
		if (sh->bands[i].priority == priority)
			return &sh->bands[i];
	return NULL;
}

/* The flow (id, len) in @p band's map, or NULL. Caller holds the registry
 * lock (either mode). */
static struct gie_style_flow *
gie_style_band_lookup_locked(struct gie_style_band *band, const void *id, uint32_t len,
			     uint64_t hash)
{
	struct gie_style_flow *f;

	for (size_t i = hash & band->slot_mask;; i = (i + 1) & band->slot_mask) {
		f = band->slots[i];
		if (f == NULL)
			return NULL;
		if (f->hash == hash && f->id_len == len && memcmp(f->id, id, len) == 0)
			return f;
	}
}

static void
gie_style_band_put_locked(struct gie_style_band *band, struct gie_style_flow *f)
{
	size_t i = f->hash & band->slot_mask;

	while (band->slots[i] != NULL)
		i = (i + 1) & band->slot_mask;
	band->slots[i] = f;
}

/*
 * Remove @p f from @p band's map: backward-shift deletion, so every other
 * flow stays reachable from its home slot without tombstones. Caller holds
 * the registry write lock.
 */
static void
gie_style_band_del_locked(struct gie_style_band *band, struct gie_style_flow *f)
{
	size_t mask = band->slot_mask, i = f->hash & mask, j, home;

	while (band->slots[i] != f)
		i = (i + 1) & mask;
	band->slots[i] = NULL;
	for (j = (i + 1) & mask; band->slots[j] != NULL; j = (j + 1) & mask) {
		home = band->slots[j]->hash & mask;
		/* Leave slots[j] if its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		band->slots[i] = band->slots[j];
		band->slots[j] = NULL;
		i = j;
	}
	band->nflows--;
}

/* Make room for one more flow in @p band's map. Caller holds the registry
 * write lock. */
static int
gie_style_band_reserve_locked(struct gie_style_band *band)
{
	size_t n = band->slot_mask + 1;
	struct gie_style_flow **old = band->slots;

	if ((band->nflows + 1) * 16 <= n * 13)
		return 0;
	band->slots = calloc(n * 2, sizeof(*band->slots));
	if (band->slots == NULL) {
		band->slots = old;
		return -ENOMEM;
	}
	band->slot_mask = n * 2 - 1;
	for (size_t i = 0; i < n; i++)
		if (old[i] != NULL)
			gie_style_band_put_locked(band, old[i]);
	free(old);
	return 0;
}

/* Caller holds the registry lock (either mode). */
static struct gie_style_flow *
gie_style_lookup_locked(struct gie_style_engine *e, const void *id, uint32_t len,
			int32_t priority, uint64_t hash)
{
	struct gie_style_flow *f;

	for (f = e->buckets[hash & e->mask]; f != NULL; f = f->hnext)
		if (f->hash == hash && f->priority == priority && f->id_len == len &&
		    memcmp(f->id, id, len) == 0)
			return f;
	return NULL;
}

/* Double the hash table. Caller holds the registry write lock. */
static int
gie_style_rehash_locked(struct gie_style_engine *e)
{
	size_t n = (e->mask + 1) * 2;
	struct gie_style_flow **b = calloc(n, sizeof(*b));
	struct gie_style_flow *f, *next;

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= e->mask; i++) {
		for (f = e->buckets[i]; f != NULL; f = next) {
			next = f->hnext;
			f->hnext = b[f->hash & (n - 1)];
			b[f->hash & (n - 1)] = f;
		}
	}
	free(e->buckets);
	e->buckets = b;
	e->mask = n - 1;
	return 0;
}

/* Create a flow (JIT). Caller holds the registry write lock. */
static int
gie_style_flow_create_locked(struct gie_style_engine *e, const void *id, uint32_t len,
			     int32_t priority, uint64_t hash,
			     struct gie_style_flow **r_flow)
{
	unsigned shard = (unsigned)((hash >> 32) % e->nshards);
	struct gie_style_band *band = gie_style_band_find(&e->shards[shard], priority);
	struct gie_style_flow *f;
	int err;

	if (band == NULL)
		return -ENOENT;
	if (e->nflows + 1 > (e->mask + 1) / 4 * 3) {
		err = gie_style_rehash_locked(e);
		if (err != 0)
			return err;
	}
	err = gie_style_band_reserve_locked(band);
	if (err != 0)
		return err;
	f = calloc(1, sizeof(*f) + len);
	if (f == NULL)
		return -ENOMEM;
	f->hash = hash;
	f->priority = priority;
	f->id_len = len;
	f->shard = shard;
	f->band = band;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->lease_lock, NULL);
	atomic_init(&f->len, 0);
	atomic_init(&f->bytes, 0);
	memcpy(f->id, id, len);
	gie_style_band_put_locked(band, f);
	band->nflows++;
	f->hnext = e->buckets[hash & e->mask];
	e->buckets[hash & e->mask] = f;
	e->nflows++;
	gie_style_count(&e->flows_created, 1);
	*r_flow = f;
	return 0;
}

/* Remove @p f from the registry (GC). Caller holds the registry write lock. */
static void
gie_style_flow_unlink_locked(struct gie_style_engine *e, struct gie_style_flow *f)
{
	struct gie_style_flow **pp = &e->buckets[f->hash & e->mask];

	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	gie_style_band_del_locked(f->band, f);
	e->nflows--;
}

/* Pin @p f unless the GC claimed it. Caller holds the registry lock. */
static bool
gie_style_try_pin(struct gie_style_flow *f)
{
	bool ok;

	pthread_mutex_lock(&f->lease_lock);
	ok = !f->marked;
	if (ok) {
		f->leases++;
		f->idle_since = 0;
	}
	pthread_mutex_unlock(&f->lease_lock);
	return ok;
}

/*
 * The flow of (id, priority), created if new, and pinned if @p pin (GIE's
 * WithConnection, §4.2): a lookup under the read lock and, for a new flow,
 * a double-checked create under the write lock. A flow the GC has claimed
 * cannot be pinned: yield until the GC has unlinked it, then create anew.
 */
static int
gie_style_flow_get(struct gie_style_engine *e, const void *id, uint32_t len,
		   int32_t priority, bool pin, struct gie_style_flow **r_flow)
{
	uint64_t hash = gie_style_hash(id, len, priority);
	struct gie_style_flow *f;
	bool ok;
	int err = 0;

	for (;;) {
		pthread_rwlock_rdlock(&e->reg_lock);
		f = gie_style_lookup_locked(e, id, len, priority, hash);
		ok = f != NULL && (!pin || gie_style_try_pin(f));
		pthread_rwlock_unlock(&e->reg_lock);
		if (ok)
			break;
		if (f == NULL) {
			pthread_rwlock_wrlock(&e->reg_lock);
			f = gie_style_lookup_locked(e, id, len, priority, hash);
			if (f == NULL)
				err = gie_style_flow_create_locked(e, id, len, priority,
								   hash, &f);
			ok = err == 0 && (!pin || gie_style_try_pin(f));
			pthread_rwlock_unlock(&e->reg_lock);
			if (ok || err != 0)
				break;
		}
		sched_yield(); /* marked for deletion: let the GC finish */
	}
	*r_flow = f;
	return err;
}

int
gie_style_flow_ensure(struct gie_style_engine *e, const void *id, uint32_t id_len,
		      int32_t priority)
{
	struct gie_style_flow *f;

	if (e == NULL || id == NULL || id_len == 0 || id_len > GIE_STYLE_FLOW_ID_MAX)
		return -EINVAL;
	return gie_style_flow_get(e, id, id_len, priority, false, &f);
}

/* ---- the queue (ManagedQueue over ListQueue) ------------------------------- */

/* Three-level stats propagation (§1.7). Caller holds f->lock. */
static inline void
gie_style_stats_delta(struct gie_style_engine *e, struct gie_style_flow *f, int64_t dlen,
		      int64_t dbytes)
{
	struct gie_style_shard *sh = &e->shards[f->shard];

	atomic_fetch_add_explicit(&f->len, dlen, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->bytes, dbytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->band->len, dlen, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->band->bytes, dbytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&sh->len, dlen, memory_order_relaxed);
	atomic_fetch_add_explicit(&sh->bytes, dbytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->len, dlen, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->bytes, dbytes, memory_order_relaxed);
}

/* ManagedQueue.Add. */
static void
gie_style_queue_add(struct gie_style_engine *e, struct gie_style_flow *f,
		    struct gie_style_item *it)
{
	pthread_mutex_lock(&f->lock);
	it->priv.next = NULL;
	it->priv.prev = f->tail;
	if (f->tail != NULL)
		f->tail->priv.next = it;
	else
		f->head = it;
	f->tail = it;
	it->priv.queue = f;
	/* SetHandle: from now on a cancel infers EVICTED_CANCELLED. */
	atomic_store_explicit(&it->priv.queued, true, memory_order_release);
	gie_style_stats_delta(e, f, 1, (int64_t)it->bytes);
	pthread_mutex_unlock(&f->lock);
}

/* Unlink @p it. Caller holds f->lock. */
static void
gie_style_queue_unlink_locked(struct gie_style_engine *e, struct gie_style_flow *f,
			      struct gie_style_item *it)
{
	if (it->priv.prev != NULL)
		it->priv.prev->priv.next = it->priv.next;
	else
		f->head = it->priv.next;
	if (it->priv.next != NULL)
		it->priv.next->priv.prev = it->priv.prev;
	else
		f->tail = it->priv.prev;
	it->priv.queue = NULL;
	gie_style_stats_delta(e, f, -1, -(int64_t)it->bytes);
}

/* ManagedQueue.Remove(handle): false if the item is no longer queued there
 * (GIE: ErrQueueItemNotFound). */
static bool
gie_style_queue_remove(struct gie_style_engine *e, struct gie_style_flow *f,
		       struct gie_style_item *it)
{
	bool ok;

	pthread_mutex_lock(&f->lock);
	ok = it->priv.queue == f;
	if (ok)
		gie_style_queue_unlink_locked(e, f, it);
	pthread_mutex_unlock(&f->lock);
	return ok;
}

/* ---- the processor ---------------------------------------------------------- */

/*
 * An item the calling processor has just unlinked
 * from everything: FinalizeWithOutcome(@p outcome), exactly once (sync.Once:
 * one CAS), then the completion. If a cancel decided first, its outcome
 * stands and the completion carries it: the unlinker always completes, the
 * canceller never does, so the completion runs once, when the engine lets
 * go of the item. Returns whether @p outcome was the one decided.
 */
static bool
gie_style_retire(_Atomic uint64_t *counter, struct gie_style_item *it,
		 enum gie_style_outcome outcome)
{
	uint32_t state = GIE_STYLE_PENDING;
	bool won;

	/* acq_rel: the winner's writes are visible to whoever reads the
	 * outcome; on failure, acquire the canceller's decision. */
	won = atomic_compare_exchange_strong_explicit(
		&it->priv.state, &state, (uint32_t)outcome, memory_order_acq_rel,
		memory_order_acquire);
	/* Before the callback, so a caller that saw its completion also sees
	 * the count (gie_style_check). @p counter: the processor's own
	 * outcome counters. */
	if (won)
		gie_style_count(&counter[outcome], 1);
	else
		outcome = (enum gie_style_outcome)state;
	it->complete(it, outcome, it->arg);
	return won;
}

/* One item from the hand-off, or NULL: Go's non-blocking channel receive
 * (an unlocked emptiness check, then the channel lock). */
static struct gie_style_item *
gie_style_handoff_take(struct gie_style_shard *sh)
{
	struct gie_style_handoff *ho = &sh->ho;
	struct gie_style_item *it;

	if (atomic_load_explicit(&ho->count, memory_order_relaxed) == 0)
		return NULL;
	pthread_mutex_lock(&ho->lock);
	it = ho->head;
	if (it != NULL) {
		ho->head = it->priv.next;
		if (ho->head == NULL)
			ho->tail = NULL;
		atomic_store_explicit(
			&ho->count,
			atomic_load_explicit(&ho->count, memory_order_relaxed) - 1,
			memory_order_relaxed);
		if (ho->senders_waiting != 0)
			pthread_cond_signal(&ho->notfull);
	}
	pthread_mutex_unlock(&ho->lock);
	return it;
}

/* Whether a cycle could reserve a benchDetector slot now (no side effect). */
static bool
gie_style_gate_open(struct gie_style_engine *e)
{
	if (e->always_saturated)
		return false;
	return e->max_inflight == 0 ||
	       atomic_load_explicit(&e->inflight, memory_order_seq_cst) <
		       (int64_t)e->max_inflight;
}

/* @p ts = CLOCK_MONOTONIC now + @p ns. */
static void
gie_style_deadline(struct timespec *ts, int64_t ns)
{
	int64_t t = gie_style_now() + ns;

	ts->tv_sec = (time_t)(t / 1000000000);
	ts->tv_nsec = (long)(t % 1000000000);
}

/*
 * Sleep until the hand-off has an item or the engine stops. @p gated: the
 * last cycle met a closed gate; then also until a release opens it, or at
 * most one tick (GIE's 1 ms ticker).
 */
static void
gie_style_handoff_wait(struct gie_style_shard *sh, bool gated)
{
	struct gie_style_handoff *ho = &sh->ho;
	struct timespec until;

	pthread_mutex_lock(&ho->lock);
	if (gated) {
		/* [G1] seq_cst, pairs with [G2] in gie_style_release(). */
		atomic_store_explicit(&sh->gate_waiting, true, memory_order_seq_cst);
		if (!gie_style_gate_open(sh->e)) {
			gie_style_deadline(&until, GIE_STYLE_TICK_NS);
			/* A release clears gate_waiting under ho->lock. */
			while (ho->head == NULL && !ho->stop &&
			       atomic_load_explicit(&sh->gate_waiting,
						    memory_order_relaxed)) {
				int rc;

				ho->proc_waiting = true;
				rc = pthread_cond_timedwait(&ho->nonempty, &ho->lock,
							    &until);
				ho->proc_waiting = false;
				if (rc == ETIMEDOUT)
					break; /* the tick */
			}
		}
		atomic_store_explicit(&sh->gate_waiting, false, memory_order_relaxed);
	} else {
		while (ho->head == NULL && !ho->stop) {
			ho->proc_waiting = true;
			pthread_cond_wait(&ho->nonempty, &ho->lock);
			ho->proc_waiting = false;
		}
	}
	pthread_mutex_unlock(&ho->lock);
}

/*
 * shard.Stats() + hasCapacity() (§1.8): a snapshot of every band's stats,
 * built in an allocated array under the registry read lock, then GIE's five
 * checks against this shard's partition.
 */
static bool
gie_style_has_capacity(struct gie_style_shard *sh, int32_t priority, uint64_t bytes)
{
	struct gie_style_engine *e = sh->e;
	struct gie_style_band_stats *snap, *b = NULL;
	int64_t tot_bytes, tot_len;
	bool ok = true;

	snap = malloc(sh->nbands * sizeof(*snap));
	if (snap == NULL)
		return false;
	pthread_rwlock_rdlock(&e->reg_lock);
	tot_bytes = atomic_load_explicit(&sh->bytes, memory_order_relaxed);
	tot_len = atomic_load_explicit(&sh->len, memory_order_relaxed);
	for (size_t i = 0; i < sh->nbands; i++) {
		snap[i].priority = sh->bands[i].priority;
		snap[i].max_bytes = sh->bands[i].max_bytes;
		snap[i].max_requests = sh->bands[i].max_requests;
		snap[i].bytes =
			atomic_load_explicit(&sh->bands[i].bytes, memory_order_relaxed);
		snap[i].len =
			atomic_load_explicit(&sh->bands[i].len, memory_order_relaxed);
	}
	pthread_rwlock_unlock(&e->reg_lock);

	if (sh->max_bytes > 0 && (uint64_t)tot_bytes + bytes > sh->max_bytes)
		ok = false;
	if (sh->max_requests > 0 && (uint64_t)tot_len + 1 > sh->max_requests)
		ok = false;
	for (size_t i = 0; ok && i < sh->nbands; i++)
		if (snap[i].priority == priority)
			b = &snap[i];
	if (b == NULL)
		ok = false; /* fail closed */
	else if (b->max_bytes > 0 && (uint64_t)b->bytes + bytes > b->max_bytes)
		ok = false;
	else if (b->max_requests > 0 && (uint64_t)b->len + 1 > b->max_requests)
		ok = false;
	free(snap);
	return ok;
}

/* PriorityBandAccessor(priority): the read lock, a lookup and, at
 * bca878b3, a proxy allocated per call (the caller frees it). */
static struct gie_style_band_accessor *
gie_style_band_accessor_get(struct gie_style_shard *sh, int32_t priority)
{
	struct gie_style_band_accessor *ba = NULL;
	struct gie_style_band *band;

	pthread_rwlock_rdlock(&sh->e->reg_lock);
	band = gie_style_band_find(sh, priority);
	pthread_rwlock_unlock(&sh->e->reg_lock);
	if (band != NULL) {
		ba = malloc(sizeof(*ba));
		if (ba != NULL) {
			ba->shard = sh;
			ba->band = band;
		}
	}
	return ba;
}

/* ShardProcessor.enqueue (§5.3). */
static void
gie_style_enqueue(struct gie_style_shard *sh, struct gie_style_item *it)
{
	struct gie_style_engine *e = sh->e;
	uint64_t hash = gie_style_hash(it->flow_id, it->flow_id_len, it->priority);
	struct gie_style_band_accessor *ba;
	struct gie_style_flow *f;
	struct gie_style_band *band;
	uint32_t state;

	gie_style_count(&sh->received, 1);
	/* Finalized while buffered (cancelled): discarded, and let go of. */
	state = atomic_load_explicit(&it->priv.state, memory_order_acquire);
	if (state != GIE_STYLE_PENDING) {
		gie_style_count(&sh->zombie_handoffs, 1);
		it->complete(it, (enum gie_style_outcome)state, it->arg);
		return;
	}
	/* ManagedQueue(key): the shard read lock, the band, its map. */
	pthread_rwlock_rdlock(&e->reg_lock);
	band = gie_style_band_find(sh, it->priority);
	f = band != NULL ? gie_style_band_lookup_locked(band, it->flow_id,
							it->flow_id_len, hash)
			 : NULL;
	pthread_rwlock_unlock(&e->reg_lock);
	if (f == NULL) {
		gie_style_retire(sh->outcomes, it, GIE_STYLE_REJECTED_OTHER);
		return;
	}
	/* PriorityBandAccessor(priority): the read lock again, a proxy. */
	ba = gie_style_band_accessor_get(sh, it->priority);
	if (ba == NULL) {
		gie_style_retire(sh->outcomes, it, GIE_STYLE_REJECTED_OTHER);
		return;
	}
	free(ba);
	if (!gie_style_has_capacity(sh, it->priority, it->bytes)) {
		gie_style_retire(sh->outcomes, it, GIE_STYLE_REJECTED_CAPACITY);
		return;
	}
	gie_style_queue_add(e, f, it);
}

/*
 * global-strict Pick (§2.3) over IterateQueues() as of bca878b3: under the
 * read lock, range over the band's map, allocating one accessor per flow
 * into an allocated slice; then, lock dropped, every accessor's Len() (an
 * atomic load through the proxy), and for each non-empty flow its head
 * under its lock; the earliest enqueue time wins, ties to the first seen.
 * The accessors and the slice become garbage (freed here).
 */
static struct gie_style_flow *
gie_style_pick_global_strict(struct gie_style_shard *sh, struct gie_style_band *band)
{
	struct gie_style_engine *e = sh->e;
	struct gie_style_accessor **snap, *acc;
	struct gie_style_flow *best = NULL, *q;
	struct gie_style_item *head;
	int64_t best_ns = 0, ns;
	uint64_t peeked = 0;
	size_t n = 0, cap;
	bool oom = false;

	pthread_rwlock_rdlock(&e->reg_lock);
	cap = band->nflows;
	snap = cap != 0 ? malloc(cap * sizeof(*snap)) : NULL;
	for (size_t i = 0; snap != NULL && i <= band->slot_mask; i++) {
		if (band->slots[i] == NULL)
			continue;
		acc = malloc(sizeof(*acc));
		if (acc == NULL) {
			oom = true;
			break;
		}
		acc->mq = band->slots[i];
		snap[n++] = acc;
	}
	pthread_rwlock_unlock(&e->reg_lock);

	for (size_t i = 0; !oom && i < n; i++) {
		q = snap[i]->mq;
		if (atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
			continue;
		pthread_mutex_lock(&q->lock);
		head = q->head;
		ns = head != NULL ? head->priv.enqueue_ns : 0;
		pthread_mutex_unlock(&q->lock);
		peeked++;
		if (head == NULL)
			continue;
		if (best == NULL || ns < best_ns) {
			best = q;
			best_ns = ns;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(snap[i]);
	free(snap);
	gie_style_count(&sh->scanned, oom ? 0 : n);
	gie_style_count(&sh->peeked, peeked);
	return oom ? NULL : best;
}

/* What a dispatch cycle did. */
enum gie_style_cycle {
	GIE_STYLE_CYCLE_IDLE,
	GIE_STYLE_CYCLE_DISPATCHED,
	GIE_STYLE_CYCLE_GATED,
};

/*
 * SaturationDetector.Saturation() of GIE's benchmark detectors (§6), once
 * per cycle. benchDetector reserves a slot as a side effect: *@p reserved
 * tells the cycle to give it back if it dispatches nothing.
 */
static double
gie_style_saturation(struct gie_style_engine *e, bool *reserved)
{
	*reserved = false;
	if (e->always_saturated)
		return 1.0;
	if (e->max_inflight == 0)
		return 0.0; /* free flow */
	if (atomic_fetch_add_explicit(&e->inflight, 1, memory_order_seq_cst) + 1 <=
	    (int64_t)e->max_inflight) {
		*reserved = true;
		return 0.99;
	}
	atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_seq_cst);
	return 1.0;
}

/*
 * dispatchCycle (§1.10): one saturation reading, bands highest first, the
 * usage ceiling, Pick, PeekHead, Remove, finalize: at most one item. A
 * zombie (cancelled) at the head is removed and let go of, and the cycle
 * ends as if it had dispatched (GIE: the finalize is a no-op, the cycle
 * reports success).
 */
static enum gie_style_cycle
gie_style_dispatch_cycle(struct gie_style_shard *sh)
{
	struct gie_style_engine *e = sh->e;
	/* The static usage-limit policy's ceiling: 1.0 for every band. */
	const double ceiling = 1.0;
	int64_t t0 = gie_style_now();
	struct gie_style_band_accessor *ba;
	struct gie_style_flow *f;
	struct gie_style_item *it;
	enum gie_style_cycle r = GIE_STYLE_CYCLE_IDLE;
	bool reserved, used = false;
	double saturation = gie_style_saturation(e, &reserved);

	for (size_t i = 0; i < sh->nbands && r == GIE_STYLE_CYCLE_IDLE; i++) {
		ba = gie_style_band_accessor_get(sh, sh->bands[i].priority);
		if (ba == NULL)
			continue;
		if (saturation >= ceiling) {
			free(ba);
			r = GIE_STYLE_CYCLE_GATED; /* HoL: stop the whole cycle */
			break;
		}
		f = gie_style_pick_global_strict(sh, ba->band);
		free(ba);
		if (f == NULL)
			continue;
		/* selectItem: the chosen queue's PeekHead(). */
		pthread_mutex_lock(&f->lock);
		it = f->head;
		pthread_mutex_unlock(&f->lock);
		if (it == NULL)
			continue;
		/* dispatchItem: Remove(handle), then finalize. A failed
		 * Remove (item swept meanwhile) counts as success in GIE. */
		if (gie_style_queue_remove(e, f, it)) {
			used = gie_style_retire(sh->outcomes, it, GIE_STYLE_DISPATCHED);
			if (!used)
				gie_style_count(&sh->zombie_heads, 1);
		}
		r = GIE_STYLE_CYCLE_DISPATCHED;
	}
	if (reserved && !used)
		atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_seq_cst);
	gie_style_count(&sh->cycles, 1);
	if (r != GIE_STYLE_CYCLE_DISPATCHED)
		gie_style_count(&sh->idle_cycles, 1);
	if (r == GIE_STYLE_CYCLE_GATED)
		gie_style_count(&sh->gated, 1);
	gie_style_hist_observe(&sh->cycle_hist, (uint64_t)(gie_style_now() - t0));
	return r;
}

/* Shutdown (§5.3): buffered items REJECTED_OTHER, queued ones EVICTED_OTHER. */
static void
gie_style_processor_shutdown(struct gie_style_shard *sh)
{
	struct gie_style_engine *e = sh->e;
	struct gie_style_item *it, *next;
	struct gie_style_flow *f;

	pthread_mutex_lock(&sh->ho.lock);
	it = sh->ho.head;
	sh->ho.head = sh->ho.tail = NULL;
	atomic_store_explicit(&sh->ho.count, 0, memory_order_relaxed);
	pthread_mutex_unlock(&sh->ho.lock);
	for (; it != NULL; it = next) {
		next = it->priv.next;
		gie_style_retire(sh->outcomes, it, GIE_STYLE_REJECTED_OTHER);
	}
	/* Submitters have stopped (destroy's contract), so the band maps no
	 * longer change. */
	for (size_t b = 0; b < sh->nbands; b++) {
		for (size_t i = 0; i <= sh->bands[b].slot_mask; i++) {
			f = sh->bands[b].slots[i];
			while (f != NULL) {
				pthread_mutex_lock(&f->lock);
				it = f->head;
				if (it != NULL)
					gie_style_queue_unlink_locked(e, f, it);
				pthread_mutex_unlock(&f->lock);
				if (it == NULL)
					break;
				gie_style_retire(sh->outcomes, it,
						 GIE_STYLE_EVICTED_OTHER);
			}
		}
	}
}

/* Free the flows the GC collected on @p sh (no pick holds one now). */
static void
gie_style_graveyard_free(struct gie_style_shard *sh)
{
	struct gie_style_flow *f, *next;

	if (atomic_load_explicit(&sh->graveyard, memory_order_relaxed) == NULL)
		return;
	/* Acquire, pairs with the GC's release push. */
	f = atomic_exchange_explicit(&sh->graveyard, NULL, memory_order_acquire);
	for (; f != NULL; f = next) {
		next = f->gcnext;
		pthread_mutex_destroy(&f->lock);
		pthread_mutex_destroy(&f->lease_lock);
		free(f);
	}
}

/*
 * ShardProcessor.Run: per turn at most one arrival (enqueue + one cycle);
 * with no arrival, one cycle; sleep only when that cycle dispatched
 * nothing (for at most a tick if the gate was closed). No 1 ms ticker
 * while there is work (see gie_style.h).
 */
static void *
gie_style_processor_main(void *arg)
{
	struct gie_style_shard *sh = arg;
	struct gie_style_engine *e = sh->e;
	struct gie_style_item *it;
	enum gie_style_cycle r;

	while (!atomic_load_explicit(&e->stopping, memory_order_relaxed)) {
		gie_style_graveyard_free(sh);
		it = gie_style_handoff_take(sh);
		if (it != NULL) {
			gie_style_enqueue(sh, it);
			gie_style_dispatch_cycle(sh);
			continue;
		}
		r = gie_style_dispatch_cycle(sh);
		if (r == GIE_STYLE_CYCLE_DISPATCHED)
			continue;
		gie_style_handoff_wait(sh, r == GIE_STYLE_CYCLE_GATED);
	}
	gie_style_processor_shutdown(sh);
	return NULL;
}

/* Sleep on the background condvar for @p ns; false once bg_stop is set. */
static bool
gie_style_bg_sleep(struct gie_style_engine *e, int64_t ns)
{
	struct timespec until;
	bool go;

	gie_style_deadline(&until, ns);
	pthread_mutex_lock(&e->bg_lock);
	while (!e->bg_stop &&
	       pthread_cond_timedwait(&e->bg_cond, &e->bg_lock, &until) != ETIMEDOUT)
		;
	go = !e->bg_stop;
	pthread_mutex_unlock(&e->bg_lock);
	return go;
}

/*
 * The cleanup sweep of one shard (§5.3, sweepFinalizedItems): under the
 * registry read lock, every non-empty queue of the shard is locked in turn
 * and its finalized (cancelled) items are unlinked; their completions run
 * after the locks are dropped. GIE cleans up with a snapshot and a pool of
 * up to 4 goroutines; one walker here.
 */
static void
gie_style_sweep(struct gie_style_shard *sh)
{
	struct gie_style_engine *e = sh->e;
	struct gie_style_item *dead = NULL, *it, *next;
	struct gie_style_flow *f;
	uint64_t n = 0;

	pthread_rwlock_rdlock(&e->reg_lock);
	for (size_t b = 0; b < sh->nbands; b++) {
		for (size_t i = 0; i <= sh->bands[b].slot_mask; i++) {
			f = sh->bands[b].slots[i];
			if (f == NULL ||
			    atomic_load_explicit(&f->len, memory_order_relaxed) == 0)
				continue;
			pthread_mutex_lock(&f->lock);
			for (it = f->head; it != NULL; it = next) {
				next = it->priv.next;
				if (atomic_load_explicit(&it->priv.state,
							 memory_order_acquire) ==
				    GIE_STYLE_PENDING)
					continue;
				gie_style_queue_unlink_locked(e, f, it);
				it->priv.next = dead;
				dead = it;
			}
			pthread_mutex_unlock(&f->lock);
		}
	}
	pthread_rwlock_unlock(&e->reg_lock);
	for (it = dead; it != NULL; it = next) {
		next = it->priv.next;
		it->complete(it,
			     (enum gie_style_outcome)atomic_load_explicit(
				     &it->priv.state, memory_order_acquire),
			     it->arg);
		n++;
	}
	gie_style_count(&sh->swept, n);
}

static void *
gie_style_sweeper_main(void *arg)
{
	struct gie_style_shard *sh = arg;

	while (gie_style_bg_sleep(sh->e, sh->e->sweep_ns))
		gie_style_sweep(sh);
	return NULL;
}

/*
 * One GC cycle (§4.3, gcFlows + cleanupFlowResources): mark every unleased
 * flow idle for at least the timeout (a flow seen idle without a timestamp
 * gets one now, as checkAndMarkForDeletion does), then unlink the marked
 * ones under the write lock and hand each to its shard's processor.
 */
static void
gie_style_gc(struct gie_style_engine *e)
{
	struct gie_style_flow *victims = NULL, *f, *next, *top;
	int64_t now = gie_style_now();
	uint64_t n = 0;

	pthread_rwlock_rdlock(&e->reg_lock);
	for (size_t i = 0; i <= e->mask; i++) {
		for (f = e->buckets[i]; f != NULL; f = f->hnext) {
			pthread_mutex_lock(&f->lease_lock);
			if (f->leases == 0 && !f->marked) {
				if (f->idle_since == 0) {
					f->idle_since = now;
				} else if (now - f->idle_since >= e->gc_timeout_ns) {
					f->marked = true;
					f->gcnext = victims;
					victims = f;
				}
			}
			pthread_mutex_unlock(&f->lease_lock);
		}
	}
	pthread_rwlock_unlock(&e->reg_lock);
	if (victims == NULL)
		return;
	pthread_rwlock_wrlock(&e->reg_lock);
	for (f = victims; f != NULL; f = f->gcnext) {
		gie_style_flow_unlink_locked(e, f);
		n++;
	}
	/* Counted with the unlinking, under the lock: gie_style_stats()
	 * reads it with nflows, so created - collected == flows holds in
	 * every snapshot. */
	gie_style_count(&e->flows_collected, n);
	pthread_rwlock_unlock(&e->reg_lock);
	for (f = victims; f != NULL; f = next) {
		struct gie_style_shard *sh = &e->shards[f->shard];

		next = f->gcnext;
		top = atomic_load_explicit(&sh->graveyard, memory_order_relaxed);
		do
			f->gcnext = top;
		/* Release: the unlinking, to the processor that frees it. */
		while (!atomic_compare_exchange_weak_explicit(&sh->graveyard, &top, f,
							      memory_order_release,
							      memory_order_relaxed));
	}
}

static void *
gie_style_gc_main(void *arg)
{
	struct gie_style_engine *e = arg;

	while (gie_style_bg_sleep(e, e->gc_timeout_ns))
		gie_style_gc(e);
	return NULL;
}

/* ---- submit side ------------------------------------------------------------ */

/* Hand @p it to @p sh's processor, blocking while the hand-off is full. */
static int
gie_style_handoff_send(struct gie_style_shard *sh, struct gie_style_item *it)
{
	struct gie_style_handoff *ho = &sh->ho;
	unsigned count;

	pthread_mutex_lock(&ho->lock);
	if (!ho->stop &&
	    atomic_load_explicit(&ho->count, memory_order_relaxed) >= ho->cap) {
		/* Submit() found the channel full: SubmitOrBlock(). */
		gie_style_count(&sh->blocked, 1);
		while (!ho->stop &&
		       atomic_load_explicit(&ho->count, memory_order_relaxed) >=
			       ho->cap) {
			ho->senders_waiting++;
			pthread_cond_wait(&ho->notfull, &ho->lock);
			ho->senders_waiting--;
		}
	}
	if (ho->stop) {
		pthread_mutex_unlock(&ho->lock);
		return -ESHUTDOWN;
	}
	it->priv.next = NULL;
	if (ho->tail != NULL)
		ho->tail->priv.next = it;
	else
		ho->head = it;
	ho->tail = it;
	count = atomic_load_explicit(&ho->count, memory_order_relaxed);
	atomic_store_explicit(&ho->count, count + 1, memory_order_relaxed);
	/* Go wakes a parked receiver only; so do we. */
	if (ho->proc_waiting)
		pthread_cond_signal(&ho->nonempty);
	pthread_mutex_unlock(&ho->lock);
	return 0;
}

/* The lease's unpin(now): the last one starts the flow's idle time. */
static void
gie_style_unpin(struct gie_style_flow *f)
{
	pthread_mutex_lock(&f->lease_lock);
	if (--f->leases == 0)
		f->idle_since = gie_style_now();
	pthread_mutex_unlock(&f->lease_lock);
}

int
gie_style_submit(struct gie_style_engine *e, struct gie_style_item *it)
{
	struct gie_style_flow *f;
	int err;

	if (e == NULL || it == NULL || it->complete == NULL || it->flow_id == NULL ||
	    it->flow_id_len == 0 || it->flow_id_len > GIE_STYLE_FLOW_ID_MAX)
		return -EINVAL;
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed))
		return -ESHUTDOWN;
	/* WithConnection: find or JIT-create the flow, and pin it. */
	err = gie_style_flow_get(e, it->flow_id, it->flow_id_len, it->priority, true, &f);
	if (err != 0)
		return err;
	it->priv.lease = f;
	it->priv.queue = NULL;
	atomic_store_explicit(&it->priv.queued, false, memory_order_relaxed);
	/* createRequestContext: enqueueTime = clock.Now(). */
	it->priv.enqueue_ns = gie_style_now();
	atomic_store_explicit(&it->priv.state, GIE_STYLE_PENDING, memory_order_relaxed);
	/* The hand-off's mutex publishes the item to the processor. */
	err = gie_style_handoff_send(&e->shards[f->shard], it);
	if (err != 0)
		gie_style_unpin(f);
	return err;
}

int
gie_style_cancel(struct gie_style_engine *e, struct gie_style_item *it)
{
	uint32_t state = GIE_STYLE_PENDING;
	enum gie_style_outcome outcome;

	if (e == NULL || it == NULL)
		return -EINVAL;
	/* inferOutcome(cause, handle != nil): acquire, pairs with the
	 * release in gie_style_queue_add(). */
	outcome = atomic_load_explicit(&it->priv.queued, memory_order_acquire)
			  ? GIE_STYLE_EVICTED_CANCELLED
			  : GIE_STYLE_REJECTED_OTHER;
	if (!atomic_compare_exchange_strong_explicit(
		    &it->priv.state, &state, (uint32_t)outcome, memory_order_acq_rel,
		    memory_order_relaxed))
		return -EALREADY;
	atomic_fetch_add_explicit(&e->cancelled[outcome], 1, memory_order_relaxed);
	return 0;
}

void
gie_style_release(struct gie_style_engine *e)
{
	if (e == NULL || e->max_inflight == 0)
		return;
	/* [G2] seq_cst, pairs with [G1] in gie_style_handoff_wait(). */
	atomic_fetch_sub_explicit(&e->inflight, 1, memory_order_seq_cst);
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		if (!atomic_load_explicit(&sh->gate_waiting, memory_order_seq_cst))
			continue;
		pthread_mutex_lock(&sh->ho.lock);
		atomic_store_explicit(&sh->gate_waiting, false, memory_order_relaxed);
		if (sh->ho.proc_waiting)
			pthread_cond_signal(&sh->ho.nonempty);
		pthread_mutex_unlock(&sh->ho.lock);
	}
}

int
gie_style_done(struct gie_style_engine *e, struct gie_style_item *it)
{
	(void)e;
	if (atomic_load_explicit(&it->priv.state, memory_order_acquire) ==
	    GIE_STYLE_PENDING)
		return -EINVAL;
	gie_style_unpin(it->priv.lease);
	return 0;
}

/* ---- life cycle and introspection -------------------------------------------- */

void
gie_style_config_init(struct gie_style_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->shards = 1;
}

/* A condvar whose timed waits use CLOCK_MONOTONIC (gie_style_deadline). */
static void
gie_style_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static int
gie_style_prio_desc(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return x > y ? -1 : x < y ? 1 : 0;
}

static void
gie_style_free(struct gie_style_engine *e)
{
	struct gie_style_flow *f, *next;

	for (unsigned s = 0; e->shards != NULL && s < e->nshards; s++)
		gie_style_graveyard_free(&e->shards[s]);
	if (e->buckets != NULL) {
		for (size_t i = 0; i <= e->mask; i++) {
			for (f = e->buckets[i]; f != NULL; f = next) {
				next = f->hnext;
				pthread_mutex_destroy(&f->lock);
				pthread_mutex_destroy(&f->lease_lock);
				free(f);
			}
		}
	}
	free(e->buckets);
	for (unsigned s = 0; e->shards != NULL && s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		for (size_t b = 0; sh->bands != NULL && b < sh->nbands; b++)
			free(sh->bands[b].slots);
		free(sh->bands);
		pthread_cond_destroy(&sh->ho.notfull);
		pthread_cond_destroy(&sh->ho.nonempty);
		pthread_mutex_destroy(&sh->ho.lock);
	}
	free(e->shards);
	pthread_cond_destroy(&e->bg_cond);
	pthread_mutex_destroy(&e->bg_lock);
	pthread_rwlock_destroy(&e->reg_lock);
	free(e);
}

/* Stop the GC and the sweepers, then every processor (and blocked
 * submitter), and join them. */
static void
gie_style_stop(struct gie_style_engine *e)
{
	pthread_mutex_lock(&e->bg_lock);
	e->bg_stop = true;
	pthread_cond_broadcast(&e->bg_cond);
	pthread_mutex_unlock(&e->bg_lock);
	if (e->gc_started)
		pthread_join(e->gc_thread, NULL);
	e->gc_started = false;
	for (unsigned s = 0; s < e->nshards; s++) {
		if (e->shards[s].sweeper_started)
			pthread_join(e->shards[s].sweeper, NULL);
		e->shards[s].sweeper_started = false;
	}
	atomic_store_explicit(&e->stopping, true, memory_order_relaxed);
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_handoff *ho = &e->shards[s].ho;

		pthread_mutex_lock(&ho->lock);
		ho->stop = true;
		pthread_cond_broadcast(&ho->nonempty);
		pthread_cond_broadcast(&ho->notfull);
		pthread_mutex_unlock(&ho->lock);
	}
	for (unsigned s = 0; s < e->nshards; s++) {
		if (e->shards[s].started)
			pthread_join(e->shards[s].thread, NULL);
		e->shards[s].started = false;
	}
}

int
gie_style_create(const struct gie_style_config *cfg, struct gie_style_engine **r_engine)
{
	struct gie_style_engine *e;
	int32_t prios[GIE_STYLE_MAX_BANDS];
	size_t nb;
	unsigned cap;
	int err;

	if (cfg == NULL || r_engine == NULL || cfg->shards < 1 ||
	    cfg->shards > GIE_STYLE_MAX_SHARDS || cfg->priorities == NULL ||
	    cfg->npriorities < 1 || cfg->npriorities > GIE_STYLE_MAX_BANDS ||
	    cfg->max_inflight > INT64_MAX || cfg->flow_gc_timeout_ns < 0 ||
	    cfg->sweep_interval_ns < 0)
		return -EINVAL;
	nb = cfg->npriorities;
	memcpy(prios, cfg->priorities, nb * sizeof(prios[0]));
	qsort(prios, nb, sizeof(prios[0]), gie_style_prio_desc);
	for (size_t i = 1; i < nb; i++)
		if (prios[i] == prios[i - 1])
			return -EINVAL;
	cap = cfg->handoff_capacity != 0
		      ? cfg->handoff_capacity
		      : (2000 / cfg->shards > 10 ? 2000 / cfg->shards : 10);

	e = aligned_alloc(GIE_STYLE_LINE, (sizeof(*e) + GIE_STYLE_LINE - 1) /
						  GIE_STYLE_LINE * GIE_STYLE_LINE);
	if (e == NULL)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	pthread_rwlock_init(&e->reg_lock, NULL);
	pthread_mutex_init(&e->bg_lock, NULL);
	gie_style_cond_init(&e->bg_cond);
	e->max_inflight = cfg->max_inflight;
	e->always_saturated = cfg->always_saturated;
	e->gc_timeout_ns = cfg->flow_gc_timeout_ns;
	e->sweep_ns = cfg->sweep_interval_ns;
	atomic_init(&e->inflight, 0);
	atomic_init(&e->len, 0);
	atomic_init(&e->bytes, 0);
	atomic_init(&e->stopping, false);
	e->nshards = cfg->shards;
	e->buckets = calloc(GIE_STYLE_BUCKETS, sizeof(*e->buckets));
	e->mask = GIE_STYLE_BUCKETS - 1;
	e->shards = aligned_alloc(GIE_STYLE_LINE, cfg->shards * sizeof(*e->shards));
	if (e->buckets == NULL || e->shards == NULL) {
		free(e->shards);
		e->shards = NULL;
		gie_style_free(e);
		return -ENOMEM;
	}
	memset(e->shards, 0, cfg->shards * sizeof(*e->shards));
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		sh->e = e;
		sh->index = s;
		sh->max_bytes = gie_style_partition(cfg->max_bytes, e->nshards, s);
		sh->max_requests = gie_style_partition(cfg->max_requests, e->nshards, s);
		pthread_mutex_init(&sh->ho.lock, NULL);
		gie_style_cond_init(&sh->ho.nonempty);
		pthread_cond_init(&sh->ho.notfull, NULL);
		sh->ho.cap = cap;
		sh->bands = calloc(nb, sizeof(*sh->bands));
		if (sh->bands == NULL) {
			e->nshards = s + 1;
			gie_style_free(e);
			return -ENOMEM;
		}
		sh->nbands = nb;
		for (size_t b = 0; b < nb; b++) {
			sh->bands[b].slots = calloc(64, sizeof(*sh->bands[b].slots));
			sh->bands[b].slot_mask = 63;
			if (sh->bands[b].slots == NULL) {
				e->nshards = s + 1;
				gie_style_free(e);
				return -ENOMEM;
			}
			sh->bands[b].priority = prios[b];
			sh->bands[b].max_bytes =
				gie_style_partition(cfg->band_max_bytes, e->nshards, s);
			sh->bands[b].max_requests = gie_style_partition(
				cfg->band_max_requests, e->nshards, s);
		}
	}
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		err = pthread_create(&sh->thread, NULL, gie_style_processor_main, sh);
		if (err != 0) {
			gie_style_stop(e);
			gie_style_free(e);
			return -EAGAIN;
		}
		sh->started = true;
		sh->cpu_clock_ok = pthread_getcpuclockid(sh->thread, &sh->cpu_clock) == 0;
		if (e->sweep_ns > 0) {
			err = pthread_create(&sh->sweeper, NULL, gie_style_sweeper_main,
					     sh);
			if (err != 0) {
				gie_style_stop(e);
				gie_style_free(e);
				return -EAGAIN;
			}
			sh->sweeper_started = true;
		}
	}
	if (e->gc_timeout_ns > 0) {
		err = pthread_create(&e->gc_thread, NULL, gie_style_gc_main, e);
		if (err != 0) {
			gie_style_stop(e);
			gie_style_free(e);
			return -EAGAIN;
		}
		e->gc_started = true;
	}
	*r_engine = e;
	return 0;
}

void
gie_style_destroy(struct gie_style_engine *e)
{
	if (e == NULL)
		return;
	gie_style_stop(e);
	gie_style_free(e);
}

void
gie_style_stats(struct gie_style_engine *e, struct gie_style_stats *r)
{
	struct timespec ts;

	memset(r, 0, sizeof(*r));
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		r->received += atomic_load_explicit(&sh->received, memory_order_relaxed);
		for (unsigned o = 0; o < GIE_STYLE_OUTCOME_COUNT; o++)
			r->outcomes[o] += atomic_load_explicit(&sh->outcomes[o],
							       memory_order_relaxed);
		r->gated_cycles += atomic_load_explicit(&sh->gated, memory_order_relaxed);
		r->swept += atomic_load_explicit(&sh->swept, memory_order_relaxed);
		r->zombie_heads +=
			atomic_load_explicit(&sh->zombie_heads, memory_order_relaxed);
		r->zombie_handoffs +=
			atomic_load_explicit(&sh->zombie_handoffs, memory_order_relaxed);
		r->cycles += atomic_load_explicit(&sh->cycles, memory_order_relaxed);
		r->idle_cycles +=
			atomic_load_explicit(&sh->idle_cycles, memory_order_relaxed);
		r->flows_scanned +=
			atomic_load_explicit(&sh->scanned, memory_order_relaxed);
		r->heads_peeked +=
			atomic_load_explicit(&sh->peeked, memory_order_relaxed);
		r->blocked_submits +=
			atomic_load_explicit(&sh->blocked, memory_order_relaxed);
		if (sh->started && sh->cpu_clock_ok &&
		    clock_gettime(sh->cpu_clock, &ts) == 0)
			r->processor_cpu_ns +=
				(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	for (unsigned o = 0; o < GIE_STYLE_OUTCOME_COUNT; o++)
		r->outcomes[o] +=
			atomic_load_explicit(&e->cancelled[o], memory_order_relaxed);
	r->queued = (uint64_t)atomic_load_explicit(&e->len, memory_order_relaxed);
	r->queued_bytes = (uint64_t)atomic_load_explicit(&e->bytes, memory_order_relaxed);
	/* The flow counts together, under the registry lock that creation and
	 * collection change them under: one consistent snapshot. */
	pthread_rwlock_rdlock(&e->reg_lock);
	r->flows_created = atomic_load_explicit(&e->flows_created, memory_order_relaxed);
	r->flows_collected =
		atomic_load_explicit(&e->flows_collected, memory_order_relaxed);
	r->flows = e->nflows;
	pthread_rwlock_unlock(&e->reg_lock);
}

/* gie_style_check() of one flow: empty, no lease held. */
static int
gie_style_flow_check(struct gie_style_flow *f, char *msg, size_t len)
{
	unsigned long long leases;
	bool busy;

	pthread_mutex_lock(&f->lock);
	busy = f->head != NULL ||
	       atomic_load_explicit(&f->len, memory_order_relaxed) != 0 ||
	       atomic_load_explicit(&f->bytes, memory_order_relaxed) != 0;
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_lock(&f->lease_lock);
	leases = f->leases;
	pthread_mutex_unlock(&f->lease_lock);
	if (!busy && leases == 0)
		return 0;
	snprintf(msg, len,
		 "gie_style: flow %.*s/%d not empty at quiescence (%llu leases)",
		 (int)f->id_len, f->id, (int)f->priority, leases);
	return -1;
}

/* gie_style_check() of one band on one shard and of its flows. */
static int
gie_style_band_check(struct gie_style_band *band, unsigned shard, char *msg, size_t len)
{
	if (atomic_load_explicit(&band->len, memory_order_relaxed) != 0 ||
	    atomic_load_explicit(&band->bytes, memory_order_relaxed) != 0) {
		snprintf(msg, len, "gie_style: shard %u band %d not empty at quiescence",
			 shard, (int)band->priority);
		return -1;
	}
	for (size_t i = 0; i <= band->slot_mask; i++)
		if (band->slots[i] != NULL &&
		    gie_style_flow_check(band->slots[i], msg, len) != 0)
			return -1;
	return 0;
}

int
gie_style_check(struct gie_style_engine *e, char *msg, size_t len)
{
	struct gie_style_stats st;
	uint64_t decided = 0;

	gie_style_stats(e, &st);
	for (unsigned o = GIE_STYLE_PENDING + 1; o < GIE_STYLE_OUTCOME_COUNT; o++)
		decided += st.outcomes[o];
	if (decided != st.received) {
		snprintf(msg, len,
			 "gie_style: %llu items received, %llu outcomes delivered",
			 (unsigned long long)st.received, (unsigned long long)decided);
		return -1;
	}
	if (st.queued != 0 || st.queued_bytes != 0) {
		snprintf(msg, len,
			 "gie_style: registry stats at quiescence: %llu queued, %llu B",
			 (unsigned long long)st.queued,
			 (unsigned long long)st.queued_bytes);
		return -1;
	}
	for (unsigned s = 0; s < e->nshards; s++) {
		struct gie_style_shard *sh = &e->shards[s];

		if (atomic_load_explicit(&sh->ho.count, memory_order_relaxed) != 0 ||
		    atomic_load_explicit(&sh->len, memory_order_relaxed) != 0 ||
		    atomic_load_explicit(&sh->bytes, memory_order_relaxed) != 0) {
			snprintf(msg, len, "gie_style: shard %u not empty at quiescence",
				 s);
			return -1;
		}
		for (size_t b = 0; b < sh->nbands; b++)
			if (gie_style_band_check(&sh->bands[b], s, msg, len) != 0)
				return -1;
	}
	return 0;
}
