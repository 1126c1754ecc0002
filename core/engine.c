/*
 * Engine create and destroy, the clock, and the statistics read side.
 *
 * Create: validate (config.c), copy the configuration (the caller's memory
 * may go away), set up capacity pools, shards (hash table, queues, polled
 * mode's eventfd), the configured bands with their per-shard state, then
 * start one dispatcher per shard (threaded mode). Every failure unwinds what
 * was made; nothing is left allocated.
 *
 * Destroy (must not race with any other call): set stopping, so that every
 * dispatcher round evicts what it holds (EVICTED_OTHER, shutdown) instead
 * of dispatching; let each shard drain to empty (threaded: its own thread,
 * then exit and join; polled: on the caller's thread); wait for pending
 * call_rcu frees (rcu_barrier); then free flows, bands, shards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc_internal.h"
#include "engine.h"
#include "fault.h"
#include "history.h"
#include "mono.h"
#include "port.h"
#include "saturation_utilization.h"

static int64_t
default_clock(void *ctx)
{
	(void)ctx;
	return flowq__mono_ns();
}

int64_t
flowq_now(const struct flowq_engine *e)
{
	return flowq__now(e);
}

unsigned
flowq_shard_count(const struct flowq_engine *e)
{
	return e ? e->nshards : 0;
}

void
flowq_engine_wake(struct flowq_engine *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__shard *s = &e->shards[i];
		if (e->cfg.mode == FLOWQ_MODE_POLLED) {
			/* Polled: make the fd readable even if the shard is
			 * not marked idle; the host polls it. */
			uint64_t one = 1;
			ssize_t n = write(s->efd, &one, sizeof(one));
			(void)n;
		} else {
			atomic_thread_fence(memory_order_seq_cst);
			flowq__shard_wake(s);
		}
	}
}

/* ---- teardown helpers ---- */

static void
free_flows(struct flowq__shard *s)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct flowq_engine *e = s->engine;
	/* No reader is left (destroy is exclusive and the dispatchers are
	 * gone), but cds_lfht asks for the read lock around traversal and
	 * removal. cds_lfht_for_each (not _entry: UB in 0.13.2, ecosystem
	 * notes A.1) with container_of on non-NULL nodes. */
	urcu_memb_read_lock();
	cds_lfht_for_each(s->ht, &it, n)
	{
		struct flowq_flow *f = caa_container_of(n, struct flowq_flow, node);
		FLOWQ_TSAN_ACQUIRE(f);
		cds_lfht_del(s->ht, n);
		if (f->attached) {
			struct flowq__band_shard *bs =
				atomic_load_explicit(&s->bs[f->band->index], memory_order_relaxed);
			flowq__flow_detach_policies(e, bs, f);
		}
		flowq__flow_free(f);
	}
	flowq__rcu_unlock();
}

static void
shards_fini(struct flowq_engine *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct flowq__shard *s = &e->shards[i];
		if (s->ht) {
			free_flows(s);
			cds_lfht_destroy(s->ht, NULL);
		}
		if (s->efd >= 0)
			close(s->efd);
		flowq__shard_fini_private(s);
	}
}

static void
engine_free(struct flowq_engine *e, unsigned nshards_made)
{
	/* Flows first (they detach from band-shard states), then bands. */
	if (e->shards)
		shards_fini(e, nshards_made);
	/* Collected bands were freed by their call_rcu callbacks (the
	 * caller's rcu barrier); their slots are NULL. */
	uint32_t nb = atomic_load_explicit(&e->nbands, memory_order_relaxed);
	for (uint32_t i = 0; i < nb; i++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_relaxed);
		if (b)
			flowq__band_free(e, b);
	}
	if (e->shards)
		flowq__free(e->alloc, e->shards, sizeof(*e->shards) * e->nshards,
			    FLOWQ_CACHE_LINE);
	if (e->global_limited)
		flowq__cap_fini(&e->global);
	if (e->gate_limited)
		flowq__cap_fini(&e->gate);
	flowq__saturation_fini(e);
	if (e->pcpu)
		flowq__free(e->alloc, e->pcpu, sizeof(*e->pcpu) * e->npcpu, _Alignof(struct flowq__pcpu));
	if (e->cfg.bands)
		flowq__free(e->alloc, (void *)e->cfg.bands,
			    sizeof(*e->cfg.bands) * e->cfg.nbands, _Alignof(struct flowq_band_config));
	pthread_mutex_destroy(&e->band_lock);
	flowq__free(e->alloc, e, sizeof(*e), FLOWQ_CACHE_LINE);
}

/* Names in the engine's copy point at the policies' own (static) names, so
 * the caller's strings may be freed. */
static void
band_names_own(struct flowq_band_config *bc)
{
	bc->fairness = flowq_fairness_find(bc->fairness)->desc.name;
	bc->ordering = flowq_ordering_find(bc->ordering)->desc.name;
}

static int
cap_make(struct flowq_engine *e, struct flowq__cap *cap, uint64_t req, uint64_t bytes)
{
	struct flowq__cap_config cc = {.limit_req = req, .limit_bytes = bytes};
	return flowq__cap_init(cap, e->alloc, &cc);
}

int
flowq_engine_create(const struct flowq_config *cfg, struct flowq_engine **r_engine)
{
	if (!cfg || !r_engine)
		return -EINVAL;
	int err = flowq_config_validate(cfg, cfg->errbuf, cfg->errbuf_size);
	if (err)
		return err;
	const struct flowq_allocator *a = cfg->allocator ? cfg->allocator : flowq_allocator_libc();
	struct flowq_engine *e = flowq__alloc(a, sizeof(*e), FLOWQ_CACHE_LINE);
	if (!e)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->alloc = a;
	e->cfg = *cfg;
	e->cfg.errbuf = NULL;
	e->cfg.errbuf_size = 0;
	e->cfg.bands = NULL;
	e->cfg.nbands = 0;
	pthread_mutex_init(&e->band_lock, NULL);
	flowq__coalesce_init(&e->coalesce);
	e->clock = cfg->clock ? cfg->clock : default_clock;
	e->clock_ctx = cfg->clock_ctx;
	e->default_band = cfg->default_band;
	if (cfg->default_band_enabled)
		band_names_own(&e->default_band);
	e->cfg.default_band = e->default_band;

	unsigned made = 0;
	if (cfg->nbands) {
		struct flowq_band_config *bands =
			flowq__alloc(a, sizeof(*bands) * cfg->nbands,
				     _Alignof(struct flowq_band_config));
		if (!bands) {
			err = -ENOMEM;
			goto fail;
		}
		memcpy(bands, cfg->bands, sizeof(*bands) * cfg->nbands);
		for (size_t i = 0; i < cfg->nbands; i++)
			band_names_own(&bands[i]);
		e->cfg.bands = bands;
		e->cfg.nbands = cfg->nbands;
	}

	long online = sysconf(_SC_NPROCESSORS_ONLN);
	e->nshards = cfg->shards ? cfg->shards : (online > 0 ? (unsigned)online : 1);
	if (e->nshards > FLOWQ_MAX_SHARDS)
		e->nshards = FLOWQ_MAX_SHARDS;

	e->global_limited = cfg->max_requests || cfg->max_bytes;
	if (e->global_limited &&
	    (err = cap_make(e, &e->global, cfg->max_requests, cfg->max_bytes))) {
		e->global_limited = false;
		goto fail;
	}
	e->flow_limited = cfg->flow_max_requests || cfg->flow_max_bytes;
	/* Validated: the policy exists. The name is the policy's own from
	 * here on (the caller's string may be freed after create). */
	const struct flowq_displacement_ops *dops = flowq_displacement_find(cfg->displacement);
	e->cfg.displacement = dops->desc.name;
	e->displace = strcmp(dops->desc.name, "none") == 0 ? NULL : dops;
	const struct flowq_saturation_config *sc = &cfg->saturation;
	e->gate_callback = strcmp(sc->detector, "callback") == 0;
	e->gate_util = strcmp(sc->detector, "utilization") == 0;
	e->cfg.saturation.detector = e->gate_callback ? "callback"
				     : e->gate_util   ? "utilization"
						      : "concurrency";
	/* The utilization detector keeps an in-flight limit if one is set. */
	e->gate_limited = !e->gate_callback && (sc->max_inflight || sc->max_inflight_bytes);
	if (e->gate_limited &&
	    (err = cap_make(e, &e->gate, sc->max_inflight, sc->max_inflight_bytes))) {
		e->gate_limited = false;
		goto fail;
	}
	if ((err = flowq__saturation_init(e)))
		goto fail;
	e->max_request_bytes = FLOWQ_LIMIT_MAX;
	const uint64_t byte_limits[3] = {e->gate_limited ? sc->max_inflight_bytes : 0,
					 cfg->max_bytes, cfg->flow_max_bytes};
	for (int i = 0; i < 3; i++)
		if (byte_limits[i] && byte_limits[i] < e->max_request_bytes)
			e->max_request_bytes = byte_limits[i];

	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	e->npcpu = ncpu > 0 ? (ncpu > 4096 ? 4096 : (unsigned)ncpu) : 1;
	e->pcpu = flowq__alloc(a, sizeof(*e->pcpu) * e->npcpu, _Alignof(struct flowq__pcpu));
	if (!e->pcpu) {
		err = -ENOMEM;
		goto fail;
	}
	memset(e->pcpu, 0, sizeof(*e->pcpu) * e->npcpu);
	e->shards = flowq__alloc(a, sizeof(*e->shards) * e->nshards, FLOWQ_CACHE_LINE);
	if (!e->shards) {
		err = -ENOMEM;
		goto fail;
	}
	memset(e->shards, 0, sizeof(*e->shards) * e->nshards);
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__shard *s = &e->shards[i];
		s->engine = e;
		s->index = i;
		s->efd = -1;
		s->last_top = INT64_MIN;
		atomic_init(&s->top_waiting, INT64_MIN);
		/* The doorbell's dummy on its producers' line, as the flows'
		 * inboxes (registry.c): at F >= 1000 nearly every submit rings,
		 * and the intake empties the doorbell each round; with the
		 * inboxes alone sparse the gain at one producer was smaller
		 * (bench/ENGINE-LOG.md, "Session 11"). */
		for (unsigned k = 0; k < FLOWQ__BELLS; k++)
			flowq_mpsc_init_sparse(&s->doorbell[k]);
		flowq_mpsc_init(&s->cancels);
		flowq_list_init(&s->pending);
		flowq_list_init(&s->idle);
		flowq_list_init(&s->band_idle);
		flowq_list_init(&s->dirty);
		flowq_heap_init(&s->ttl, NULL, 0);
		made = i + 1;
		/* Pre-sized, growing on its own; the resize worker is
		 * liburcu's thread. */
		s->ht = FLOWQ__FAULT_FAILS(E_LFHT_NEW)
				? NULL
				: cds_lfht_new_flavor(
					  cfg->registry_buckets, cfg->registry_buckets, 0,
					  CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					  &urcu_memb_flavor, NULL);
		if (!s->ht) {
			err = -ENOMEM;
			goto fail;
		}
		if (cfg->mode == FLOWQ_MODE_POLLED) {
			s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (s->efd < 0) {
				err = -errno;
				goto fail;
			}
		}
	}
	if ((err = flowq__bands_init(e)))
		goto fail;

	if (cfg->mode == FLOWQ_MODE_THREADED) {
		for (unsigned i = 0; i < e->nshards; i++) {
			struct flowq__shard *s = &e->shards[i];
			if (FLOWQ__FAULT_FAILS(E_THREAD_CREATE) ||
			    pthread_create(&s->thread, NULL, flowq__dispatcher_main, s)) {
				err = -EAGAIN;
				goto fail_threads;
			}
			s->thread_started = true;
			char name[16];
			snprintf(name, sizeof(name), "flowq-d%u", i % 1000u);
			pthread_setname_np(s->thread, name);
		}
	}
	*r_engine = e;
	return 0;

fail_threads:
	atomic_store_explicit(&e->stopping, 1, memory_order_seq_cst);
	atomic_store_explicit(&e->exiting, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__shard *s = &e->shards[i];
		if (!s->thread_started)
			continue;
		atomic_thread_fence(memory_order_seq_cst);
		flowq__shard_wake(s);
		pthread_join(s->thread, NULL);
	}
fail:
	/* Flows may have been freed through call_rcu by nothing yet; still,
	 * wait so that no callback runs on freed memory. */
	urcu_memb_barrier();
	engine_free(e, made);
	return err;
}

void
flowq_engine_destroy(struct flowq_engine *e)
{
	if (!e)
		return;
	flowq__rcu_thread_online();
	atomic_store_explicit(&e->stopping, 1, memory_order_seq_cst);
	if (e->cfg.mode == FLOWQ_MODE_THREADED) {
		atomic_store_explicit(&e->exiting, 1, memory_order_seq_cst);
		for (unsigned i = 0; i < e->nshards; i++) {
			atomic_thread_fence(memory_order_seq_cst);
			flowq__shard_wake(&e->shards[i]);
		}
		for (unsigned i = 0; i < e->nshards; i++)
			pthread_join(e->shards[i].thread, NULL);
	} else {
		for (unsigned i = 0; i < e->nshards; i++) {
			e->shards[i].stopping_seen = true;
			flowq__shard_drain_all(&e->shards[i]);
		}
	}
	/* Collected flows are freed by call_rcu callbacks that use the
	 * engine's allocator: wait for all of them. */
	urcu_memb_barrier();
	engine_free(e, e->nshards);
	if (FLOWQ__HISTORY_ON)
		flowq__history_dump_env();
}

/* ---- ports ---- */

int
flowq_port_create(struct flowq_engine *e, struct flowq_port **r_port)
{
	if (!e || !r_port)
		return -EINVAL;
	return flowq__port_create(e->alloc, r_port);
}

/* ---- statistics ----
 *
 * Collected bands (registry.c, "Band lifetime"). A template band's counters
 * do not vanish with it: its collector folds them into the engine's own
 * (e->retired for outcomes, queue time and dispatched bytes; e->rejects for
 * rejections) in the same band_lock section that unpublishes it, so engine
 * totals stay conserved and never go down. The band itself is gone:
 * flowq_stats_band() answers -ENOENT, the walks skip it, and a later band
 * of the same priority starts from zero (a counter reset to Prometheus).
 *
 * Engine readers sum the live bands and the folded totals; a reader that
 * overlapped a fold could count a band twice (in its slot and folded) or
 * not at all, so the fold is a seqlock write: band_seq odd, release stores
 * of the sums and of the emptied slots, band_seq even (release). A reader
 * loads band_seq (acquire), then every value with acquire loads, then
 * band_seq again: if it saw any store of the section, that store's
 * release makes the odd band_seq visible to the second load, and it
 * retries. Acquire loads instead of a fence, because GCC's TSan rejects
 * atomic_thread_fence; on x86 both are plain loads. Writers are
 * serialized by band_lock.
 */

/* Relaxed load + release store of a sum: the fold's single writer. */
static void
counters_merge(struct flowq__counters *dst, const struct flowq__counters *src)
{
	for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		for (unsigned k = 0; k < FLOWQ_CAUSE_COUNT; k++)
			flowq__merge_word(&dst->causes[o][k], &src->causes[o][k]);
	flowq__merge_word(&dst->left, &src->left);
	flowq__merge_word(&dst->left_bytes, &src->left_bytes);
	flowq__merge_word(&dst->dispatched_bytes, &src->dispatched_bytes);
	flowq__hist_merge(&dst->queue_time, &src->queue_time);
}

void
flowq__band_unpublish(struct flowq_engine *e, struct flowq__band *b)
{
	uint64_t seq = atomic_load_explicit(&e->band_seq, memory_order_relaxed);
	atomic_store_explicit(&e->band_seq, seq + 1, memory_order_relaxed);
	/* Every band-shard is quiescent: its shard's last account_left()
	 * happened before the [B1] that [B3] read. */
	for (unsigned k = 0; k < e->nshards; k++)
		counters_merge(&e->retired, &b->bss[k]->stats);
	for (unsigned c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
		uint64_t v = atomic_load_explicit(&b->rejects.causes[c], memory_order_relaxed);
		/* An RMW (producers add here too); release heads a release
		 * sequence that their later adds continue. */
		if (v)
			atomic_fetch_add_explicit(&e->rejects.causes[c], v, memory_order_release);
	}
	atomic_store_explicit(&e->bands[b->index], NULL, memory_order_release);
	for (unsigned k = 0; k < e->nshards; k++)
		atomic_store_explicit(&e->shards[k].bs[b->index], NULL, memory_order_release);
	atomic_store_explicit(&e->band_seq, seq + 2, memory_order_release);
	atomic_fetch_add_explicit(&e->bands_collected, 1, memory_order_relaxed);
}

static void
counters_add(struct flowq_stats *st, const struct flowq__counters *c)
{
	/* Acquire: the band seqlock (above). */
	for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		for (unsigned k = 0; k < FLOWQ_CAUSE_COUNT; k++)
			st->causes[o][k] +=
				atomic_load_explicit(&c->causes[o][k], memory_order_acquire);
	flowq__hist_add_to(&c->queue_time, &st->queue_time);
}

static void
rejects_add(struct flowq_stats *st, const struct flowq__rejects *r)
{
	for (unsigned k = 0; k < FLOWQ_CAUSE_COUNT; k++) {
		uint64_t v = atomic_load_explicit(&r->causes[k], memory_order_acquire);
		if (!v)
			continue;
		enum flowq_outcome o = (k == FLOWQ_CAUSE_CAPACITY_GLOBAL ||
					k == FLOWQ_CAUSE_CAPACITY_BAND ||
					k == FLOWQ_CAUSE_CAPACITY_FLOW)
					       ? FLOWQ_REJECTED_CAPACITY
					       : FLOWQ_REJECTED_OTHER;
		st->causes[o][k] += v;
	}
}

static void
stats_finish(struct flowq_stats *st)
{
	for (unsigned o = 0; o < FLOWQ_OUTCOME_COUNT; o++) {
		st->outcomes[o] = 0;
		for (unsigned k = 0; k < FLOWQ_CAUSE_COUNT; k++)
			st->outcomes[o] += st->causes[o][k];
	}
}

/* A flow's queued requests and bytes: accepted by submit, not yet left. */
/*
 * in - out of two lifetime counters read at slightly different instants:
 * the difference modulo 2^64, so that a counter that wrapped (2^64 bytes
 * over the engine's life, or a few requests of FLOWQ_LIMIT_MAX bytes) still
 * gives the right amount; a "negative" difference (bit 63 set) is the
 * reader's reordering (out read after more left than it saw come in) and
 * reads as 0. Exact while the true amount is below 2^63 (flowq.h, struct
 * flowq_stats).
 */
static inline uint64_t
counter_diff(uint64_t in, uint64_t out)
{
	uint64_t d = in - out;
	return d >> 63 ? 0 : d;
}

static void
flow_queued(const struct flowq_flow *f, uint64_t *r_req, uint64_t *r_bytes)
{
	/* left first: every request counted in left was counted in accepted
	 * before it was enqueued; the clamp covers the reader's reordering. */
	uint64_t l = atomic_load_explicit(&f->stats.left, memory_order_acquire);
	uint64_t lb = atomic_load_explicit(&f->stats.left_bytes, memory_order_acquire);
	uint64_t a = atomic_load_explicit(&f->accepted, memory_order_acquire);
	uint64_t ab = atomic_load_explicit(&f->accepted_bytes, memory_order_acquire);
	*r_req = counter_diff(a, l);
	*r_bytes = counter_diff(ab, lb);
}

/* Call @p visit for every live flow, shard by shard, each shard under the
 * read lock (which keeps every flow seen alive while @p visit looks at it;
 * flows created or collected meanwhile may or may not be seen). Stops at
 * the first nonzero return and passes it on. */
static int
flows_foreach(struct flowq_engine *e, int (*visit)(struct flowq_flow *f, void *ctx), void *ctx)
{
	flowq__rcu_thread_online();
	int ret = 0;
	for (unsigned i = 0; i < e->nshards && !ret; i++) {
		struct cds_lfht_iter it;
		struct cds_lfht_node *n;
		urcu_memb_read_lock();
		cds_lfht_for_each(e->shards[i].ht, &it, n)
		{
			struct flowq_flow *f = caa_container_of(n, struct flowq_flow, node);
			FLOWQ_TSAN_ACQUIRE(f);
			if ((ret = visit(f, ctx)))
				break;
		}
		flowq__rcu_unlock();
	}
	return ret;
}

struct queued_sum {
	const struct flowq__band *only;
	struct flowq_stats *st;
};

static int
queued_add(struct flowq_flow *f, void *ctx)
{
	struct queued_sum *q = ctx;
	if (q->only && f->band != q->only)
		return 0;
	uint64_t n, nb;
	flow_queued(f, &n, &nb);
	q->st->queued += n;
	q->st->queued_bytes += nb;
	return 0;
}

/* Sum the queued counts of live flows (of band @p only, or all if NULL):
 * O(flows). A collected flow was empty, so it holds nothing queued. */
static void
queued_scan(struct flowq_engine *e, const struct flowq__band *only, struct flowq_stats *st)
{
	struct queued_sum q = {only, st};
	(void)flows_foreach(e, queued_add, &q);
}

/* Band @p b's counters (b->bss: a reader may hold a band whose slot a
 * newer band took). Inside a read-side section. */
static void
band_stats(const struct flowq__band *b, unsigned nshards, struct flowq_stats *st)
{
	for (unsigned i = 0; i < nshards; i++)
		counters_add(st, &b->bss[i]->stats);
	rejects_add(st, &b->rejects);
}

/* The bands' part of the engine totals: live bands, collected ones, and
 * rejections of none; one seqlock read (above). *r_dbytes: dispatched
 * bytes. Inside a read-side section. */
static void
bands_total(struct flowq_engine *e, struct flowq_stats *st, uint64_t *r_dbytes)
{
	for (;;) {
		uint64_t seq = atomic_load_explicit(&e->band_seq, memory_order_acquire);
		if (seq & 1) {
			sched_yield(); /* a collector is folding: short */
			continue;
		}
		memset(st, 0, sizeof(*st));
		uint64_t db = atomic_load_explicit(&e->retired.dispatched_bytes,
						   memory_order_acquire);
		uint32_t nb = atomic_load_explicit(&e->nbands, memory_order_acquire);
		for (uint32_t i = 0; i < nb; i++) {
			const struct flowq__band *b =
				atomic_load_explicit(&e->bands[i], memory_order_acquire);
			if (!b)
				continue;
			band_stats(b, e->nshards, st);
			for (unsigned k = 0; k < e->nshards; k++)
				db += atomic_load_explicit(&b->bss[k]->stats.dispatched_bytes,
							   memory_order_acquire);
		}
		counters_add(st, &e->retired);
		rejects_add(st, &e->rejects);
		if (atomic_load_explicit(&e->band_seq, memory_order_relaxed) == seq) {
			*r_dbytes = db;
			return;
		}
	}
}

int
flowq_stats_shard(struct flowq_engine *e, unsigned shard, struct flowq_shard_stats *r_stats)
{
	if (!e || !r_stats)
		return -EFAULT;
	if (shard >= e->nshards)
		return -EINVAL;
	const struct flowq__shard *s = &e->shards[shard];
	r_stats->rounds = atomic_load_explicit(&s->act_rounds, memory_order_relaxed);
	r_stats->decided = atomic_load_explicit(&s->act_decided, memory_order_relaxed);
	r_stats->intakes = atomic_load_explicit(&s->act_intakes, memory_order_relaxed);
	r_stats->sleeps = atomic_load_explicit(&s->act_sleeps, memory_order_relaxed);
	r_stats->coalesce_waits =
		atomic_load_explicit(&s->act_coalesce_waits, memory_order_relaxed);
	return 0;
}

int
flowq_stats_coalesce(struct flowq_engine *e, struct flowq_coalesce_stats *r_stats)
{
	if (!e || !r_stats)
		return -EFAULT;
	const struct flowq__coalesce *c = &e->coalesce;
	r_stats->on =
		flowq__coalesce_on(c) && !flowq__coalesce_overrun(c, flowq__mono_ns());
	r_stats->holds_on = atomic_load_explicit(&c->chose_on, memory_order_relaxed);
	r_stats->holds_off = atomic_load_explicit(&c->chose_off, memory_order_relaxed);
	r_stats->dropped = atomic_load_explicit(&c->dropped, memory_order_relaxed);
	return 0;
}

int
flowq_stats_engine(struct flowq_engine *e, struct flowq_stats *r_stats)
{
	if (!e || !r_stats)
		return -EFAULT;
	/* In flight: from the gate's credit in the dimensions it limits, else
	 * dispatched - released: the per-CPU release sums are read first (a
	 * release follows its dispatch, so none is counted whose dispatch is
	 * not); flowq_release() counts there every dimension the gate does not
	 * limit. */
	uint64_t rel = 0, relb = 0, db;
	for (unsigned i = 0; i < e->npcpu; i++) {
		rel += atomic_load_explicit(&e->pcpu[i].released, memory_order_acquire);
		relb += atomic_load_explicit(&e->pcpu[i].released_bytes, memory_order_acquire);
	}
	flowq__rcu_thread_online();
	urcu_memb_read_lock();
	bands_total(e, r_stats, &db);
	flowq__rcu_unlock();
	queued_scan(e, NULL, r_stats);
	stats_finish(r_stats);
	r_stats->inflight = counter_diff(r_stats->outcomes[FLOWQ_DISPATCHED], rel);
	r_stats->inflight_bytes = counter_diff(db, relb);
	if (e->gate_limited) {
		uint64_t req, bytes;
		flowq__cap_in_use(&e->gate, &req, &bytes);
		if (e->gate.limit[FLOWQ__CAP_REQ] != 0)
			r_stats->inflight = req;
		if (e->gate.limit[FLOWQ__CAP_BYTES] != 0)
			r_stats->inflight_bytes = bytes;
	}
	return 0;
}

int
flowq_stats_band(struct flowq_engine *e, int32_t priority, struct flowq_stats *r_stats)
{
	if (!e || !r_stats)
		return -EFAULT;
	flowq__rcu_thread_online();
	int ret = -ENOENT;
	urcu_memb_read_lock();
	uint32_t nb = atomic_load_explicit(&e->nbands, memory_order_acquire);
	for (uint32_t i = 0; i < nb; i++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_acquire);
		if (!b || b->priority != priority)
			continue;
		memset(r_stats, 0, sizeof(*r_stats));
		band_stats(b, e->nshards, r_stats);
		queued_scan(e, b, r_stats);
		stats_finish(r_stats);
		ret = 0;
		break;
	}
	flowq__rcu_unlock();
	return ret;
}

static void
flow_stats(const struct flowq_flow *f, struct flowq_stats *st)
{
	static const struct {
		enum flowq_outcome o;
		enum flowq_cause c;
	} pair_oc[FLOWQ__FP_COUNT] = {
		[FLOWQ__FP_DISPATCHED] = {FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE},
		[FLOWQ__FP_TTL] = {FLOWQ_EVICTED_TTL, FLOWQ_CAUSE_TTL_EXPIRED},
		[FLOWQ__FP_DEADLINE] = {FLOWQ_EVICTED_TTL, FLOWQ_CAUSE_DEADLINE_PASSED},
		[FLOWQ__FP_CANCELLED] = {FLOWQ_EVICTED_CANCELLED, FLOWQ_CAUSE_CANCELLED},
		[FLOWQ__FP_DISPLACED] = {FLOWQ_EVICTED_DISPLACED, FLOWQ_CAUSE_DISPLACED},
		[FLOWQ__FP_SHUTDOWN] = {FLOWQ_EVICTED_OTHER, FLOWQ_CAUSE_SHUTDOWN},
	};
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < FLOWQ__FP_COUNT; i++)
		st->causes[pair_oc[i].o][pair_oc[i].c] =
			atomic_load_explicit(&f->stats.pairs[i], memory_order_relaxed);
	/* Per flow: count and sum only (the buckets are per band/engine). */
	st->queue_time.count = atomic_load_explicit(&f->stats.qt_count, memory_order_relaxed);
	st->queue_time.sum_ns = atomic_load_explicit(&f->stats.qt_sum_ns, memory_order_relaxed);
	rejects_add(st, &f->rejects);
	flow_queued(f, &st->queued, &st->queued_bytes);
	stats_finish(st);
}

int
flowq_stats_flow(struct flowq_engine *e, const void *id, uint32_t id_len, int32_t priority,
		 struct flowq_stats *r_stats)
{
	if (!e || !r_stats)
		return -EFAULT;
	if (!id || id_len == 0 || id_len > FLOWQ_FLOW_ID_MAX)
		return -EINVAL;
	flowq__rcu_thread_online();
	urcu_memb_read_lock();
	struct flowq_flow *f = flowq__flow_lookup_rcu(e, id, id_len, priority);
	if (f)
		flow_stats(f, r_stats);
	flowq__rcu_unlock();
	return f ? 0 : -ENOENT;
}

static int
band_cmp(const void *a, const void *b)
{
	const struct flowq__band *x = *(struct flowq__band *const *)a;
	const struct flowq__band *y = *(struct flowq__band *const *)b;
	return (x->priority < y->priority) - (x->priority > y->priority);
}

int
flowq_stats_foreach_band(struct flowq_engine *e, flowq_band_stats_fn *fn, void *ctx)
{
	if (!e || !fn)
		return -EFAULT;
	struct flowq_stats *st = flowq__alloc(e->alloc, sizeof(*st), _Alignof(struct flowq_stats));
	if (!st)
		return -ENOMEM;
	flowq__rcu_thread_online();
	/* One read-side section for the walk, callbacks included (as
	 * flows_foreach() does per shard): the bands sorted here stay valid
	 * until its end, even if collected meanwhile (then visited with their
	 * last counts). */
	urcu_memb_read_lock();
	struct flowq__band *sorted[FLOWQ_MAX_BANDS];
	uint32_t nb = atomic_load_explicit(&e->nbands, memory_order_acquire), n = 0;
	for (uint32_t i = 0; i < nb; i++) {
		struct flowq__band *b = atomic_load_explicit(&e->bands[i], memory_order_acquire);
		if (b)
			sorted[n++] = b;
	}
	qsort(sorted, n, sizeof(sorted[0]), band_cmp);
	int ret = 0;
	for (uint32_t i = 0; i < n && !ret; i++) {
		memset(st, 0, sizeof(*st));
		band_stats(sorted[i], e->nshards, st);
		queued_scan(e, sorted[i], st);
		stats_finish(st);
		ret = fn(sorted[i]->priority, st, ctx);
	}
	flowq__rcu_unlock();
	flowq__free(e->alloc, st, sizeof(*st), _Alignof(struct flowq_stats));
	return ret;
}

struct flow_visit {
	flowq_flow_stats_fn *fn;
	void *ctx;
	struct flowq_stats *st;
};

static int
flow_visit(struct flowq_flow *f, void *ctx)
{
	struct flow_visit *v = ctx;
	flow_stats(f, v->st);
	return v->fn(f->id, f->id_len, f->priority, v->st, v->ctx);
}

int
flowq_stats_foreach_flow(struct flowq_engine *e, flowq_flow_stats_fn *fn, void *ctx)
{
	if (!e || !fn)
		return -EFAULT;
	struct flowq_stats *st = flowq__alloc(e->alloc, sizeof(*st), _Alignof(struct flowq_stats));
	if (!st)
		return -ENOMEM;
	struct flow_visit v = {fn, ctx, st};
	int ret = flows_foreach(e, flow_visit, &v);
	flowq__free(e->alloc, st, sizeof(*st), _Alignof(struct flowq_stats));
	return ret;
}

void
flowq__debug_dump(struct flowq_engine *e, FILE *out)
{
	/* Racy by design: a diagnostic for a run that stopped making
	 * progress (stress programs call it before they abort). */
	uint64_t req, bytes;
	flowq__cap_in_use(&e->gate, &req, &bytes);
	fprintf(out, "engine: gate in use %llu req %llu bytes, gate_waiters %u, stopping %u\n",
		(unsigned long long)req, (unsigned long long)bytes,
		atomic_load(&e->gate_waiters), atomic_load(&e->stopping));
	flowq__cap_in_use(&e->global, &req, &bytes);
	fprintf(out, "engine: global queued %llu req %llu bytes\n", (unsigned long long)req,
		(unsigned long long)bytes);
	fprintf(out, "engine: %u band slots, %llu template bands collected\n",
		atomic_load(&e->nbands), (unsigned long long)atomic_load(&e->bands_collected));
	if (e->util)
		flowq__util_dump(e->util, out);
	for (unsigned i = 0; i < e->nshards; i++) {
		struct flowq__shard *s = &e->shards[i];
		fprintf(out,
			"shard %u: sleeping %u gate_wait %u top_waiting %lld last_top "
			"%lld "
			"blocked %d yielded %d yield_band %p blocked_band %p "
			"blocked_bytes %llu "
			"doorbell %s cancels %s pending %s\n",
			i, atomic_load(&s->sleeping), atomic_load(&s->gate_wait),
			(long long)atomic_load(&s->top_waiting), (long long)s->last_top,
			s->blocked, s->yielded, (void *)s->yield_band,
			(void *)s->blocked_band, (unsigned long long)s->blocked_bytes,
			flowq__bells_empty(s) ? "empty" : "non-empty",
			flowq_mpsc_empty(&s->cancels) ? "empty" : "non-empty",
			flowq_list_empty(&s->pending) ? "empty" : "non-empty");
		for (unsigned oi = 0; oi < s->norder; oi++) {
			struct flowq__band *b = atomic_load(&e->bands[s->order[oi]]);
			struct flowq__band_shard *bs = b ? atomic_load(&s->bs[b->index]) : NULL;
			if (!bs) /* racy read of a collected band's slot */
				continue;
			fprintf(out, "  band %d (%p): backlogged %llu vt %llu vt_pub %llu\n",
				(int)b->priority, (void *)bs, (unsigned long long)bs->backlogged,
				(unsigned long long)bs->vt,
				(unsigned long long)atomic_load(&bs->vt_pub));
		}
	}
}
