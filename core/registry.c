/*
 * The flow registry: one liburcu cds_lfht per shard, keyed by (flow id
 * bytes, priority), read under the memb flavour's read lock; bands; liburcu
 * thread registration.
 *
 * Flow lifetime (DESIGN.md "Memory and reclamation"):
 *  - created just in time by the first submit (or flowq_flow_get()) of its
 *    key: allocated, published with cds_lfht_add_unique() (a racing creator
 *    of the same key frees its copy at once: it was never visible), then
 *    handed to its shard's dispatcher through the doorbell so that the
 *    dispatcher knows every flow it owns (even one that never gets a
 *    request) and can collect it;
 *  - pinned by its lease word: every submitter holds a lease from lookup
 *    until its request is in the inbox, every host handle holds one;
 *  - collected by its dispatcher after it has been empty and unleased for
 *    the GC timeout: the dispatcher CASes the lease from 0 to DEAD [L1],
 *    re-checks that the inbox is empty and the flow is not being rung, then
 *    removes it from the table and frees it after a grace period
 *    (call_rcu).
 *
 * Why the lease is enough: a submitter takes its lease with a fetch-add
 * [L2] inside the read-side section in which it found the flow, and gives
 * it back with a release fetch-sub [L3] after its enqueue. If [L1] succeeds,
 * it read 0: every earlier lease was returned, and each [L3] (release) is
 * read by [L1]'s CAS (acq_rel) through the lease's modification order, so
 * their enqueues are visible and the inbox check sees them. Every later
 * [L2] reads DEAD and backs off (gives its lease back, looks up again, and
 * creates a new flow once the dead one is out of the table). The memory
 * stays valid for the backing-off submitter because it still holds the
 * read lock while it touches the flow, and the flow is freed only after a
 * grace period.
 *
 * Band lifetime. Configured bands live as long as the engine. A template
 * (JIT) band is created by the first flow of its priority and collected by
 * its home shard's dispatcher (flowq__band_home(): its slot's shard) once
 * no flow has held it for the GC timeout.
 *
 * Who can hold a pointer to a template band b:
 *  (H1) a flow of b (f->band), and through it: a submitter holding the
 *       flow's lease or a host handle (b->cap, b->rejects, b->priority);
 *       the flow's dispatcher (s->bs[b->index], b's policies);
 *  (H2) a creator between flowq__band_get() and publishing its new flow
 *       (or discarding it);
 *  (H3) a shard's dispatch state: order[] (by index) and the band-shard's
 *       policy state, blocked_band/yield_band between rounds. A shard keeps
 *       b in order[] only while one of b's flows is attached there
 *       (bs->nflows > 0: dispatch.c band_shard_live()/band_shard_park()),
 *       and blocked_band/yield_band name a band with a request queued on
 *       that shard, so all of (H3) needs a flow of b on that shard. A
 *       dispatcher reads other shards' band-shards of b (vt_pub, for
 *       cross-shard fairness) only while it has b backlogged itself, which
 *       again needs a flow of b; top_waiting holds a priority, never a
 *       band;
 *  (H4) RCU readers that found b in e->bands[]: flowq__band_get()'s scan,
 *       displacement tickets (submit.c), statistics and metrics (engine.c);
 *       they read b->bss[], never a slot's current state, and keep nothing
 *       past their read-side section;
 *  (H5) the home shard's list of idle bands (home dispatcher only);
 *  (H6) the collector and the free callback.
 *
 * b->users counts (H1) and (H2): a reference is taken [B0] (fetch_add) by
 * flowq__band_get() for the flow about to be created, carried by that flow,
 * and dropped [B1] by the dispatcher that collects the flow (after it has
 * unlinked the flow and, for its shard, detached it from b's policies and
 * left order[]: gc() in dispatch.c), or by a creator that discards its
 * unpublished flow. The drop that leaves 0 bumps the generation in the
 * same CAS (release), then sets the home's band_hint and kicks it.
 *
 * Collection (flowq__band_gc(), the home dispatcher):
 *  [B2] take the hint (acq_rel exchange: reads the [B1] before it) and list
 *       every band of the home's slots whose count is 0, with the users
 *       word seen (count 0, generation g) and the time;
 *  [B3] once idle for the GC timeout: under band_lock (trylock: a busy
 *       lock means "next round", never a blocked dispatcher), CAS users
 *       from exactly (0, g) to DEAD (acq_rel). It fails if any reference
 *       was taken since (count) or taken and dropped again (g): the band
 *       stays (or is listed again with a new time by the hint);
 *  [B4] still under band_lock: fold b's counters into the engine totals
 *       and unpublish it from e->bands[] and every shards[k].bs[] (one
 *       step for statistics readers: flowq__band_unpublish());
 *  [B5] call_rcu: the callback hands leftover displacement debt to the
 *       shards (below) and frees b and its band-shards.
 *
 * Why nobody uses b after it is freed:
 *  - No reference after [B3]: [B0] happens only inside a read-side section
 *    that found b published (a fetch_add that reads DEAD gives the
 *    reference back and retries under band_lock, where b is already
 *    unpublished: [B3] and [B4] are one critical section), or under
 *    band_lock, where no published band is dead.
 *  - No holder of an earlier reference: [B3] read count 0, so every [B0]
 *    before it was matched by a [B1], and [B3]'s acquire reads every [B1]
 *    through the users word's modification order (release RMWs). So every
 *    flow of b was collected (H1: a submitter or handle holds a lease,
 *    which prevents that; RCU readers of the flow tables never dereference
 *    f->band), no creator is between [B0] and its drop (H2), and each
 *    shard left order[] before the [B1] of its last flow of b (H3).
 *  - (H4) read b only inside read-side sections that began before [B4]'s
 *    unpublish, and the callback runs after a grace period that follows
 *    [B5], i.e. after every such section ended. (H5): the home removed b
 *    from its list before [B3]. A new band may take b's slot right after
 *    [B4]; no shard holds b's index any more (H3), and (H4) read b->bss[].
 *  - Displacement: a ticket taken against one of b's band-shards would be
 *    processed by no dispatcher once it left order[]. A shard therefore
 *    parks the band-shard when it leaves order[] (doomed_req gets
 *    FLOWQ__DOOMED_PARKED, which fails every later ticket CAS) and settles
 *    the tickets already taken as debt (nothing is queued there to shed).
 *    A ticket's bytes are added after its CAS, so bytes of a ticket taken
 *    just before the park may arrive after it; the free callback, after the
 *    grace period (every ticket-taker is in a read-side section), hands
 *    whatever is left to the shard as debt (debt_in_*).
 *
 * A submit racing the collection either takes its reference before [B3]
 * (then [B3] fails and b stays) or sees DEAD and creates a fresh band for
 * the priority: its request is queued on a live band or rejected with an
 * error on the spot, never lost. A submit on an existing flow holds its
 * lease, hence b (H1).
 */
#define _GNU_SOURCE /* sched_yield is POSIX; rcu headers need GNU */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "engine.h"
#include "fault.h"

/* ---- liburcu thread registration ---- */

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static _Thread_local bool rcu_registered;

/* Annotation target for TSan: liburcu 0.13's grace periods are invisible
 * to TSan, so a read-side section's end releases this and a call_rcu
 * callback acquires it (ecosystem notes C.3). */
static char rcu_hb;

static void
rcu_key_dtor(void *p)
{
	(void)p;
	if (rcu_registered) {
		urcu_memb_unregister_thread();
		rcu_registered = false;
	}
}

static void
rcu_key_make(void)
{
	/* Failure leaves threads registered until process exit: liburcu
	 * then simply keeps their reader slot, which is harmless. */
	(void)pthread_key_create(&rcu_key, rcu_key_dtor);
}

void
flowq__rcu_thread_online(void)
{
	if (rcu_registered)
		return;
	pthread_once(&rcu_once, rcu_key_make);
	urcu_memb_register_thread();
	rcu_registered = true;
	/* A non-NULL value makes the destructor run at thread exit. */
	(void)pthread_setspecific(rcu_key, &rcu_registered);
}

void
flowq_thread_detach(void)
{
	if (!rcu_registered)
		return;
	urcu_memb_unregister_thread();
	rcu_registered = false;
	pthread_once(&rcu_once, rcu_key_make);
	(void)pthread_setspecific(rcu_key, NULL);
}

static inline void
rcu_lock(void)
{
	urcu_memb_read_lock();
}

static inline void
rcu_unlock(void)
{
	FLOWQ_TSAN_RELEASE(&rcu_hb);
	urcu_memb_read_unlock();
}

void
flowq__rcu_unlock(void)
{
	rcu_unlock();
}

/* ---- keys ---- */

/* A 64-bit hash of the key: 8 bytes at a time, multiply-xorshift mixing
 * (the finalizer of MurmurHash3/SplitMix64), then the priority folded in.
 * Flow ids are host-supplied and may be chosen by clients: the table's
 * split-ordered lists keep the cost of collisions at O(chain), and keys
 * are compared in full, so a collision costs time, never correctness. */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

uint64_t
flowq__flow_hash(const void *id, uint32_t id_len, int32_t priority)
{
	const unsigned char *p = id;
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ id_len;
	while (id_len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = mix64(h ^ w) + UINT64_C(0x9e3779b97f4a7c15);
		p += 8;
		id_len -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, p, id_len);
	h = mix64(h ^ w ^ ((uint64_t)(uint32_t)priority << 32));
	return h;
}

struct flow_key {
	const void *id;
	uint32_t id_len;
	int32_t priority;
};

static int
flow_match(struct cds_lfht_node *node, const void *key)
{
	const struct flow_key *k = key;
	struct flowq_flow *f = caa_container_of(node, struct flowq_flow, node);
	FLOWQ_TSAN_ACQUIRE(f);
	/* The table calls this only for a node whose full hash is the key's,
	 * i.e. almost always the flow the submit will write. With many flows
	 * its lines are cold (F = 50,000: the flows outgrow the last-level
	 * cache), and the submit would take the misses one after another:
	 * the key line and id here, then the lease and the inbox's producer
	 * line (tail, dummy, doorbell flag). Start them all now so they
	 * overlap. */
	__builtin_prefetch(f->id, 0, 3);
	__builtin_prefetch(&f->lease, 1, 3);
	__builtin_prefetch(&f->inbox.tail, 1, 3);
	return f->priority == k->priority && f->id_len == k->id_len &&
	       memcmp(f->id, k->id, k->id_len) == 0;
}

static inline struct flowq__shard *
shard_of(struct flowq_engine *e, uint64_t hash)
{
	/* The table indexes by the low bits; the shard takes the high ones so
	 * that the two choices are independent. */
	return &e->shards[(uint32_t)(hash >> 32) % e->nshards];
}

/* flowq__flow_lookup_rcu() with the key's hash already computed. */
static struct flowq_flow *
flow_lookup_hashed_rcu(struct flowq_engine *e, const void *id, uint32_t id_len,
		       int32_t priority, uint64_t hash)
{
	struct flowq__shard *s = shard_of(e, hash);
	struct flow_key k = {id, id_len, priority};
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->ht, hash, flow_match, &k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n)
		return NULL;
	struct flowq_flow *f = caa_container_of(n, struct flowq_flow, node);
	FLOWQ_TSAN_ACQUIRE(f);
	return f;
}

struct flowq_flow *
flowq__flow_lookup_rcu(struct flowq_engine *e, const void *id, uint32_t id_len,
		       int32_t priority)
{
	return flow_lookup_hashed_rcu(e, id, id_len, priority,
				      flowq__flow_hash(id, id_len, priority));
}

/* [L2] Take a lease unless the flow is dead. Called inside the read-side
 * section that found @p f. */
bool
flowq__flow_lease_rcu(struct flowq_flow *f)
{
	uint64_t v = atomic_fetch_add_explicit(&f->lease, 1, memory_order_acquire);
	if (!(v & FLOWQ__LEASE_DEAD))
		return true;
	atomic_fetch_sub_explicit(&f->lease, 1, memory_order_relaxed);
	return false;
}

void
flowq__flow_unlease(struct flowq_flow *f)
{
	/* [L3] release: the caller's enqueue is visible to the collector's
	 * [L1] that reads the count this leaves. */
	atomic_fetch_sub_explicit(&f->lease, 1, memory_order_release);
}

/* ---- bands ---- */

static size_t
band_size(const struct flowq_engine *e)
{
	return sizeof(struct flowq__band) + sizeof(struct flowq__band_shard *) * e->nshards;
}

static int
band_create(struct flowq_engine *e, const struct flowq_band_config *bc, int32_t priority,
	    bool configured, uint32_t index, struct flowq__band **r_band)
{
	size_t size = band_size(e);
	struct flowq__band *b = flowq__alloc(e->alloc, size, FLOWQ_CACHE_LINE);
	if (!b)
		return -ENOMEM;
	memset(b, 0, size);
	b->alloc_size = size;
	b->priority = priority;
	b->index = index;
	b->configured = configured;
	b->engine = e;
	/* A template band starts with its creator's reference ([B0]). */
	atomic_init(&b->users, configured ? 0 : 1);
	flowq_list_node_init(&b->ilink);
	b->usage_ceiling = bc->usage_ceiling;
	b->quantum = bc->quantum ? bc->quantum : FLOWQ_QUANTUM_DEFAULT;
	b->fairness = flowq_fairness_find(bc->fairness);
	b->ordering = flowq_ordering_find(bc->ordering);
	if (b->fairness)
		b->byte_fair = (b->fairness->desc.flags & FLOWQ_POLICY_BYTE_FAIR) != 0;
	if (!b->fairness || !b->ordering) {
		/* Validated at create; a policy cannot disappear. */
		flowq__free(e->alloc, b, size, FLOWQ_CACHE_LINE);
		return -EINVAL;
	}
	b->limited = bc->max_requests || bc->max_bytes;
	if (b->limited) {
		struct flowq__cap_config cc = {
			.limit_req = bc->max_requests,
			.limit_bytes = bc->max_bytes,
		};
		int err = flowq__cap_init(&b->cap, e->alloc, &cc);
		if (err) {
			flowq__free(e->alloc, b, size, FLOWQ_CACHE_LINE);
			return err;
		}
	}
	/* Every shard's state for the band exists before the band is
	 * published, so a dispatcher never allocates to adopt a band. */
	int err = flowq__band_shards_init(e, b);
	if (err) {
		if (b->limited)
			flowq__cap_fini(&b->cap);
		flowq__free(e->alloc, b, size, FLOWQ_CACHE_LINE);
		return err;
	}
	*r_band = b;
	return 0;
}

void
flowq__band_free(struct flowq_engine *e, struct flowq__band *b)
{
	flowq__band_shards_fini(e, b);
	if (b->limited)
		flowq__cap_fini(&b->cap);
	flowq__free(e->alloc, b, b->alloc_size, FLOWQ_CACHE_LINE);
}

/* Configured bands at create: indexes 0..nbands-1 in config order. */
int
flowq__bands_init(struct flowq_engine *e)
{
	for (size_t i = 0; i < e->cfg.nbands; i++) {
		const struct flowq_band_config *bc = &e->cfg.bands[i];
		struct flowq__band *b;
		int err = band_create(e, bc, bc->priority, true, (uint32_t)i, &b);
		if (err)
			return err;
		atomic_store_explicit(&e->bands[i], b, memory_order_relaxed);
		atomic_store_explicit(&e->nbands, (uint32_t)i + 1, memory_order_release);
	}
	return 0;
}

/* The published band of @p priority, or NULL. Inside a read-side section
 * or under band_lock. */
static struct flowq__band *
band_scan(struct flowq_engine *e, int32_t priority)
{
	uint32_t n = atomic_load_explicit(&e->nbands, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++) {
		/* [B6] acquire: pairs with the release store that published
		 * the band (a reused slot is not covered by nbands). */
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_acquire);
		if (b && b->priority == priority)
			return b;
	}
	return NULL;
}

/* [B0] Take a reference on @p b for a flow being created; false if @p b is
 * dead (collected). Inside the read-side section that found @p b, or under
 * band_lock. */
static bool
band_ref_try(struct flowq__band *b)
{
	if (b->configured)
		return true;
	uint64_t v = atomic_fetch_add_explicit(&b->users, 1, memory_order_acquire);
	if (!(v & FLOWQ__BU_DEAD))
		return true;
	atomic_fetch_sub_explicit(&b->users, 1, memory_order_relaxed);
	return false;
}

void
flowq__band_put(struct flowq_engine *e, struct flowq__band *b)
{
	if (b->configured)
		return;
	/* [B1] release: this holder's uses of b happen before a collector's
	 * [B3] that reads the count this leaves. The drop to 0 also moves
	 * the generation, so that a collector that listed b before a
	 * reference came and went does not take it for idle since then. */
	uint64_t v = atomic_load_explicit(&b->users, memory_order_relaxed), nv;
	do {
		if ((v & FLOWQ__BU_COUNT) == 1)
			nv = (v & ~(FLOWQ__BU_COUNT | FLOWQ__BU_GEN)) |
			     ((v + FLOWQ__BU_GEN_ONE - 1) & FLOWQ__BU_GEN);
		else
			nv = v - 1;
	} while (!atomic_compare_exchange_weak_explicit(&b->users, &v, nv, memory_order_release,
							 memory_order_relaxed));
	if (nv & FLOWQ__BU_COUNT)
		return;
	/* b may be collected from here on: only its home is touched. The
	 * home's [B2] exchange reads this store (or a later one). */
	struct flowq__shard *home = flowq__band_home(e, b);
	atomic_store_explicit(&home->band_hint, 1, memory_order_release);
	flowq__shard_kick(home);
}

int
flowq__band_get(struct flowq_engine *e, int32_t priority, struct flowq__band **r_band)
{
	rcu_lock();
	struct flowq__band *b = band_scan(e, priority);
	bool ok = b && band_ref_try(b);
	rcu_unlock();
	if (ok) {
		*r_band = b;
		return 0;
	}
	if (!b && !e->cfg.default_band_enabled)
		return -ENOENT;
	/* Absent, or dead and about to be unpublished: a collector holds
	 * band_lock from [B3] to the end of [B4], so under it the slot is
	 * empty already. */
	int err = 0;
	pthread_mutex_lock(&e->band_lock);
	b = band_scan(e, priority);
	if (b) {
		if (!band_ref_try(b)) /* published bands are alive under the lock */
			abort();
	} else {
		/* The lowest free slot: one a collected band left, or the
		 * next one. */
		uint32_t n = atomic_load_explicit(&e->nbands, memory_order_relaxed);
		uint32_t slot = 0;
		while (slot < n && atomic_load_explicit(&e->bands[slot], memory_order_relaxed))
			slot++;
		if (slot == FLOWQ_MAX_BANDS) {
			err = -ENOENT;
		} else {
			err = band_create(e, &e->default_band, priority, false, slot, &b);
			if (!err) {
				atomic_store_explicit(&e->bands[slot], b, memory_order_release);
				if (slot == n)
					atomic_store_explicit(&e->nbands, n + 1,
							      memory_order_release);
			}
		}
	}
	pthread_mutex_unlock(&e->band_lock);
	if (!err)
		*r_band = b;
	return err;
}

/* [B5]'s callback: after the grace period nobody reads b (H4), and every
 * ticket-taker that saw one of its band-shards has finished its adds. */
static void
band_free_rcu(struct rcu_head *head)
{
	FLOWQ_TSAN_ACQUIRE(&rcu_hb);
	struct flowq__band *b = caa_container_of(head, struct flowq__band, rcu);
	/* The collector's accesses (call_rcu's queue is invisible to TSan). */
	FLOWQ_TSAN_ACQUIRE(b);
	struct flowq_engine *e = b->engine;
	for (unsigned k = 0; e->displace && k < e->nshards; k++) {
		/* Debt left on a parked band-shard (the header comment,
		 * "Displacement"): its shard's dispatcher takes it as debt. */
		struct flowq__band_shard *bs = b->bss[k];
		uint64_t r = atomic_load_explicit(&bs->doomed_req, memory_order_acquire) &
			     ~FLOWQ__DOOMED_PARKED;
		uint64_t by = atomic_load_explicit(&bs->doomed_bytes, memory_order_relaxed);
		if (!r && !by)
			continue;
		struct flowq__shard *s = &e->shards[k];
		atomic_fetch_add_explicit(&s->debt_in_bytes, by, memory_order_relaxed);
		/* Release: the dispatcher's acquire exchange of debt_in_req
		 * sees the bytes too. */
		atomic_fetch_add_explicit(&s->debt_in_req, r, memory_order_release);
		flowq__shard_kick(s);
	}
	flowq__band_free(e, b);
}

/* [B3]-[B5] for @p b, idle since it was listed. @return false if
 * band_lock was busy (b stays listed: try again soon). */
static bool
band_collect(struct flowq__shard *s, struct flowq__band *b)
{
	struct flowq_engine *e = s->engine;
	if (pthread_mutex_trylock(&e->band_lock))
		return false;
	flowq_list_remove(&b->ilink);
	b->in_idle = false;
	uint64_t idle = b->idle_users;
	/* [B3] acq_rel: reads every [B1]; a later [B0] reads DEAD. */
	bool dead = atomic_compare_exchange_strong_explicit(
		&b->users, &idle, FLOWQ__BU_DEAD, memory_order_acq_rel, memory_order_relaxed);
	if (dead)
		flowq__band_unpublish(e, b); /* [B4] */
	pthread_mutex_unlock(&e->band_lock);
	if (dead) {
		FLOWQ_TSAN_RELEASE(b);
		urcu_memb_call_rcu(&b->rcu, band_free_rcu); /* [B5] */
	}
	return true;
}

/* [B2] List (or re-list, with a new time) every band of the home's slots
 * whose count is 0, and unlist those in use again. The slots s->index,
 * s->index + nshards, ...: their bands are collected only by s, so they
 * cannot go away under this scan. */
static void
band_idle_scan(struct flowq__shard *s, int64_t now)
{
	struct flowq_engine *e = s->engine;
	uint32_t n = atomic_load_explicit(&e->nbands, memory_order_acquire);
	for (uint32_t i = s->index; i < n; i += e->nshards) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_acquire);
		if (!b || b->configured)
			continue;
		uint64_t v = atomic_load_explicit(&b->users, memory_order_acquire);
		if (v & FLOWQ__BU_COUNT) {
			if (b->in_idle) {
				flowq_list_remove(&b->ilink);
				b->in_idle = false;
			}
			continue;
		}
		if (b->in_idle && b->idle_users == v)
			continue; /* idle all along: keep its time */
		if (b->in_idle)
			flowq_list_remove(&b->ilink);
		b->in_idle = true;
		b->idle_since = now;
		b->idle_users = v;
		flowq_list_push_back(&s->band_idle, &b->ilink);
	}
}

/* How soon to try again when band_lock was busy, ns. */
#define BAND_RETRY_NS 100000

int64_t
flowq__band_gc(struct flowq__shard *s, int64_t now)
{
	/* [B2] acq_rel: reads the [B1] store of the hint, hence its drop. */
	if (atomic_load_explicit(&s->band_hint, memory_order_relaxed) &&
	    atomic_exchange_explicit(&s->band_hint, 0, memory_order_acq_rel))
		band_idle_scan(s, now);
	int64_t timeout = s->engine->cfg.flow_gc_timeout_ns;
	struct flowq_list_node *ln;
	while ((ln = flowq_list_front(&s->band_idle))) {
		struct flowq__band *b =
			(struct flowq__band *)((char *)ln - offsetof(struct flowq__band, ilink));
		if (now - b->idle_since < timeout)
			return flowq__add_sat(b->idle_since, timeout);
		if (!band_collect(s, b))
			return flowq__add_sat(now, BAND_RETRY_NS);
	}
	return INT64_MAX;
}

/* ---- flows ---- */

static size_t
align_up(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

static int
flow_create(struct flowq_engine *e, struct flowq__band *b, const void *id,
	    uint32_t id_len, int32_t priority, uint64_t hash, struct flowq_flow **r_flow)
{
	/* One allocation: the flow, its id, then the fairness and ordering
	 * states. The states start a new cache line: the dispatcher writes
	 * them per request, and every submit's lookup reads the id. */
	size_t off_f = align_up(sizeof(struct flowq_flow) + id_len, FLOWQ_CACHE_LINE);
	/* A small ordering state lives inside the dispatch span instead
	 * (engine.h, ostate_inline). */
	size_t osz = b->ordering->desc.flow_state_size;
	bool o_inline = osz <= FLOWQ__OSTATE_INLINE;
	size_t off_o = align_up(off_f + b->fairness->desc.flow_state_size, 16);
	size_t off_d = align_up(off_o + (o_inline ? 0 : osz), 16);
	size_t dsz = e->displace ? e->displace->desc.flow_state_size : 0;
	size_t size = align_up(off_d + dsz, 16);
	struct flowq_flow *f = flowq__alloc(e->alloc, size, _Alignof(struct flowq_flow));
	if (!f)
		return -ENOMEM;
	memset(f, 0, size);
	f->alloc_size = size;
	f->hash = hash;
	f->engine = e;
	f->shard = shard_of(e, hash);
	f->band = b;
	f->priority = priority;
	f->id_len = id_len;
	memcpy(f->id, id, id_len);
	/* Emptied at each visit and never polled while empty (the doorbell
	 * says when it has work): the dummy on the producer line, so a
	 * submit that finds it empty writes one line (flowq/mpsc.h). */
	flowq_mpsc_init_sparse(&f->inbox);
	cds_lfht_node_init(&f->node);
	atomic_init(&f->lease, 1); /* the creator's */
	atomic_init(&f->weight, 1);
	/* A fairness policy may keep all its per-flow state in the view's
	 * hot words (flow_state_size 0): then there is nothing to point at. */
	f->pf.state = b->fairness->desc.flow_state_size ? (char *)f + off_f : NULL;
	f->pf.weight = 1;
	f->ostate = o_inline ? (void *)f->ostate_inline : (char *)f + off_o;
	f->dstate = dsz ? (char *)f + off_d : NULL;
	flowq_list_node_init(&f->plink);
	flowq_list_node_init(&f->ilink);
	flowq_list_node_init(&f->dlink);
	*r_flow = f;
	return 0;
}

void
flowq__flow_free(struct flowq_flow *f)
{
	flowq__free(f->engine->alloc, f, f->alloc_size, _Alignof(struct flowq_flow));
}

/* Free a flow that was never published, with its band reference. */
static void
flow_discard(struct flowq_flow *f)
{
	struct flowq_engine *e = f->engine;
	struct flowq__band *b = f->band;
	flowq__flow_free(f);
	flowq__band_put(e, b);
}

/* Doorbell placement slots per thread (a power of two). A thread that
 * rings several shards, of one engine or of several, keeps one placement
 * per shard, up to this many shards at once; shards whose slots collide
 * share one and start it over (bell 0) on each switch, which is only
 * slower (a backlog spreads less), never wrong. */
#define RINGER_SLOTS 8u

/* The calling thread's placement on one shard's doorbell (engine.h,
 * FLOWQ__BELLS): the queue it rings (an index), its rings in a row into a
 * queue the dispatcher had not emptied, and whether it has moved to the
 * queue and not rung it yet. The shard tags the slot. Only a placement:
 * any value is correct. */
struct ringer {
	const struct flowq__shard *shard;
	unsigned bell;
	unsigned run;
	bool moved;
};
static _Thread_local struct ringer ringers[RINGER_SLOTS];

/* The calling thread's placement on @p s: its slot, started over if
 * another shard held it. The slot is the shard's index plus an offset
 * drawn from the engine's address, so an engine's first RINGER_SLOTS
 * shards never collide and two engines' shards 0 seldom do. */
static inline struct ringer *
ringer_of(const struct flowq__shard *s)
{
	uint32_t off = (uint32_t)((uintptr_t)s->engine >> 6) * 0x9e3779b1u >> 29;
	struct ringer *r = &ringers[(s->index + off) % RINGER_SLOTS];
	if (r->shard != s)
		*r = (struct ringer){.shard = s};
	return r;
}

void
flowq__flow_ring(struct flowq_flow *f)
{
	/* [D1] acq_rel: if the flag was already 1, the dispatcher has not yet
	 * popped the flow; its pop clears the flag with an RMW [D2] that reads
	 * ours, so our prior enqueue is visible to its drain. */
	if (atomic_exchange_explicit(&f->inbox.announced, 1, memory_order_acq_rel))
		return;
	FLOWQ_TSAN_RELEASE(f);
	struct ringer *r = ringer_of(f->shard);
	struct flowq_mpsc *q = &f->shard->doorbell[r->bell % FLOWQ__BELLS];
	if (flowq_mpsc_enqueue(q, &f->inbox.announce)) {
		/* Found empty: unless we just moved here, the dispatcher
		 * keeps up with us; back to the first queue. */
		if (!r->moved)
			r->bell = 0;
		r->moved = false;
		r->run = 0;
	} else if (++r->run == FLOWQ__BELL_RUN) {
		r->run = 0;
		r->bell++;
		r->moved = true;
	}
	flowq__shard_kick(f->shard);
}

int
flowq__flow_acquire(struct flowq_engine *e, const void *id, uint32_t id_len,
		    int32_t priority, struct flowq_flow **r_flow)
{
	uint64_t hash = flowq__flow_hash(id, id_len, priority);
	struct flowq__shard *s = shard_of(e, hash);
	struct flow_key k = {id, id_len, priority};
	struct flowq_flow *mine = NULL;

	for (;;) {
		rcu_lock();
		/* The hash once per submit, not once per lookup. */
		struct flowq_flow *f =
			flow_lookup_hashed_rcu(e, id, id_len, priority, hash);
		if (f) {
			bool ok = flowq__flow_lease_rcu(f);
			rcu_unlock();
			if (ok) {
				if (mine)
					flow_discard(mine);
				*r_flow = f;
				return 0;
			}
			/* Dead: being removed; the next lookup will miss it. */
			sched_yield();
			continue;
		}
		rcu_unlock();

		if (!mine) {
			struct flowq__band *b;
			int err = flowq__band_get(e, priority, &b);
			if (err)
				return err;
			err = flow_create(e, b, id, id_len, priority, hash, &mine);
			if (err) {
				flowq__band_put(e, b);
				return err;
			}
			FLOWQ__FAULT(L_MADE);
		}
		rcu_lock();
		FLOWQ_TSAN_RELEASE(mine);
		struct cds_lfht_node *n =
			cds_lfht_add_unique(s->ht, hash, flow_match, &k, &mine->node);
		if (n == &mine->node) {
			rcu_unlock();
			*r_flow = mine;
			/* Let the dispatcher adopt it (attach, GC). */
			flowq__flow_ring(mine);
			return 0;
		}
		/* Lost the race: take the winner's (ours was never visible
		 * and is freed above or reused on the next round). */
		struct flowq_flow *w = caa_container_of(n, struct flowq_flow, node);
		FLOWQ_TSAN_ACQUIRE(w);
		bool ok = flowq__flow_lease_rcu(w);
		rcu_unlock();
		if (ok) {
			flow_discard(mine);
			*r_flow = w;
			return 0;
		}
		FLOWQ__FAULT(L_LOST);
		sched_yield();
	}
}

static void
flow_free_rcu(struct rcu_head *head)
{
	FLOWQ_TSAN_ACQUIRE(&rcu_hb);
	struct flowq_flow *f = caa_container_of(head, struct flowq_flow, rcu);
	/* The collecting dispatcher's last accesses (call_rcu's queue is
	 * invisible to TSan). */
	FLOWQ_TSAN_ACQUIRE(f);
	flowq__flow_free(f);
}

bool
flowq__flow_try_collect(struct flowq_flow *f)
{
	uint64_t zero = 0;
	/* [L1] acq_rel: reads the last [L3]; later [L2]s see DEAD. */
	if (!atomic_compare_exchange_strong_explicit(&f->lease, &zero, FLOWQ__LEASE_DEAD,
						     memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	if (!flowq_mpsc_empty(&f->inbox) ||
	    atomic_load_explicit(&f->inbox.announced, memory_order_acquire)) {
		/* A request slipped in before [L1]: keep the flow. */
		atomic_fetch_sub_explicit(&f->lease, FLOWQ__LEASE_DEAD, memory_order_release);
		return false;
	}
	FLOWQ__FAULT(L_DEAD);
	rcu_lock();
	int err = cds_lfht_del(f->shard->ht, &f->node);
	rcu_unlock();
	if (err) /* cannot happen: only this dispatcher removes its flows */
		abort();
	/* Read before call_rcu: f may be freed as soon as it is queued. */
	struct flowq_engine *e = f->engine;
	struct flowq__band *b = f->band;
	FLOWQ_TSAN_RELEASE(f);
	urcu_memb_call_rcu(&f->rcu, flow_free_rcu);
	/* [B1] the flow's band reference, last (the caller has detached
	 * it and left order[] if it was the shard's last flow of b). */
	flowq__band_put(e, b);
	return true;
}
