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
 */
#define _GNU_SOURCE /* sched_yield is POSIX; rcu headers need GNU */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "engine.h"

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
static bool
lease_try(struct flowq_flow *f)
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

static int
band_create(struct flowq_engine *e, const struct flowq_band_config *bc, int32_t priority,
	    bool configured, uint32_t index, struct flowq__band **r_band)
{
	struct flowq__band *b = flowq__alloc(e->alloc, sizeof(*b), FLOWQ_CACHE_LINE);
	if (!b)
		return -ENOMEM;
	memset(b, 0, sizeof(*b));
	b->priority = priority;
	b->index = index;
	b->configured = configured;
	b->usage_ceiling = bc->usage_ceiling;
	b->quantum = bc->quantum ? bc->quantum : FLOWQ_QUANTUM_DEFAULT;
	b->fairness = flowq_fairness_find(bc->fairness);
	b->ordering = flowq_ordering_find(bc->ordering);
	if (b->fairness)
		b->byte_fair = (b->fairness->desc.flags & FLOWQ_POLICY_BYTE_FAIR) != 0;
	if (!b->fairness || !b->ordering) {
		/* Validated at create; a policy cannot disappear. */
		flowq__free(e->alloc, b, sizeof(*b), FLOWQ_CACHE_LINE);
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
			flowq__free(e->alloc, b, sizeof(*b), FLOWQ_CACHE_LINE);
			return err;
		}
	}
	/* Every shard's state for the band exists before the band is
	 * published, so a dispatcher never allocates to adopt a band. */
	int err = flowq__band_shards_init(e, b);
	if (err) {
		if (b->limited)
			flowq__cap_fini(&b->cap);
		flowq__free(e->alloc, b, sizeof(*b), FLOWQ_CACHE_LINE);
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
	flowq__free(e->alloc, b, sizeof(*b), FLOWQ_CACHE_LINE);
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

static struct flowq__band *
band_scan(struct flowq_engine *e, int32_t priority)
{
	uint32_t n = atomic_load_explicit(&e->nbands, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_relaxed);
		if (b->priority == priority)
			return b;
	}
	return NULL;
}

int
flowq__band_get(struct flowq_engine *e, int32_t priority, struct flowq__band **r_band)
{
	/* [B1] acquire of nbands pairs with the release store below: a band
	 * seen in the array is fully initialized. */
	struct flowq__band *b = band_scan(e, priority);
	if (b) {
		*r_band = b;
		return 0;
	}
	if (!e->cfg.default_band_enabled)
		return -ENOENT;
	int err = 0;
	pthread_mutex_lock(&e->band_lock);
	b = band_scan(e, priority);
	if (!b) {
		uint32_t n = atomic_load_explicit(&e->nbands, memory_order_relaxed);
		if (n == FLOWQ_MAX_BANDS) {
			err = -ENOENT;
		} else {
			err = band_create(e, &e->default_band, priority, false, n, &b);
			if (!err) {
				atomic_store_explicit(&e->bands[n], b, memory_order_relaxed);
				atomic_store_explicit(&e->nbands, n + 1, memory_order_release);
			}
		}
	}
	pthread_mutex_unlock(&e->band_lock);
	if (!err)
		*r_band = b;
	return err;
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
	size_t off_o = align_up(off_f + b->fairness->desc.flow_state_size, 16);
	size_t off_d = align_up(off_o + b->ordering->desc.flow_state_size, 16);
	size_t dsz = e->displace ? e->displace->desc.flow_state_size : 0;
	size_t size = align_up(off_d + dsz, 16);
	struct flowq_flow *f = flowq__alloc(e->alloc, size, FLOWQ_CACHE_LINE);
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
	flowq_mpsc_init(&f->inbox);
	cds_lfht_node_init(&f->node);
	atomic_init(&f->lease, 1); /* the creator's */
	atomic_init(&f->in_doorbell, 0);
	atomic_init(&f->weight, 1);
	f->pf.state = (char *)f + off_f;
	f->pf.weight = 1;
	f->ostate = (char *)f + off_o;
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
	flowq__free(f->engine->alloc, f, f->alloc_size, FLOWQ_CACHE_LINE);
}

void
flowq__flow_ring(struct flowq_flow *f)
{
	/* [D1] acq_rel: if the flag was already 1, the dispatcher has not yet
	 * popped the flow; its pop clears the flag with an RMW [D2] that reads
	 * ours, so our prior enqueue is visible to its drain. */
	if (atomic_exchange_explicit(&f->in_doorbell, 1, memory_order_acq_rel))
		return;
	FLOWQ_TSAN_RELEASE(f);
	flowq_mpsc_enqueue(&f->shard->doorbell, &f->bell);
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
			bool ok = lease_try(f);
			rcu_unlock();
			if (ok) {
				if (mine)
					flowq__flow_free(mine);
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
			if (err)
				return err;
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
		bool ok = lease_try(w);
		rcu_unlock();
		if (ok) {
			flowq__flow_free(mine);
			*r_flow = w;
			return 0;
		}
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
	    atomic_load_explicit(&f->in_doorbell, memory_order_acquire)) {
		/* A request slipped in before [L1]: keep the flow. */
		atomic_fetch_sub_explicit(&f->lease, FLOWQ__LEASE_DEAD, memory_order_release);
		return false;
	}
	rcu_lock();
	int err = cds_lfht_del(f->shard->ht, &f->node);
	rcu_unlock();
	if (err) /* cannot happen: only this dispatcher removes its flows */
		abort();
	FLOWQ_TSAN_RELEASE(f);
	urcu_memb_call_rcu(&f->rcu, flow_free_rcu);
	return true;
}
