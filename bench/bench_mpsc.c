/*
 * bench_mpsc: throughput of flowq_mpsc and its peers, P producers -> 1
 * consumer (perf-anchors.md §7, workloads W2/W3/W10).
 *
 * Cases: BM_mpsc_<peer>/producers:P/real_time for P in {1, 2, 4, 8}:
 *
 *   flowq_mpsc        flowq_mpsc_enqueue / flowq_mpsc_trydequeue, per item.
 *   flowq_mpsc_batch  flowq_mpsc_enqueue / flowq_mpsc_dequeue_batch, 64 per call.
 *   cds_wfcq          liburcu wfcqueue: cds_wfcq_enqueue /
 *                     __cds_wfcq_dequeue_nonblocking (single consumer, no lock).
 *   cds_wfcq_splice   __cds_wfcq_splice_nonblocking into a consumer-local
 *                     queue, then __cds_wfcq_dequeue_nonblocking from it.
 *   ck_fifo_mpmc      Concurrency Kit's Michael-Scott queue with CAS2.
 *   mutex_list        pthread mutex + intrusive singly linked list, one
 *                     dequeue per lock: the baseline users write.
 *   ck_ring_mpmc      ck_ring_enqueue_mpmc / ck_ring_dequeue_mpmc, 64K slots.
 *
 * Workload. One benchmark iteration is one item; items move in batches of
 * BENCH_MPSC_ITEMS (2^20), split evenly among the P producers. Each batch the
 * benchmark thread (the consumer) opens a gate, the producers enqueue their
 * share as fast as they can, and the consumer dequeues until every item is
 * back; the run reports items delivered per second of wall time (counter
 * items_per_second, a rate over real time). The producer thread pool, the
 * gate, the consumer's backoff, the watchdog and pinning are the harness
 * shared with bench_capacity.c (bench_harness.h); this file supplies the
 * peers' enqueue and dequeue code, the item and the check. Threads are not
 * pinned unless FLOWQ_BENCH_PIN=1: on 2 vCPUs, P >= 2 producers plus the
 * consumer oversubscribe the machine, which is the case the engine has to
 * survive (W10), not a scaling measurement.
 *
 * Items are 64-byte, 64-byte-aligned structs holding every peer's link
 * (a union: only the running peer's is used) and the payload (producer id,
 * sequence number), all on one line. Each producer owns a contiguous array of
 * them, so no two producers ever write the same line except through the
 * queue itself. The consumer reads the payload of every item it dequeues
 * and appends it to a log: that is the work a dispatcher does at minimum
 * (look at what it got), and the log is what the conservation check reads.
 *
 * Fairness. Every peer runs in its fastest legitimate configuration:
 * wfcqueue is inlined (_LGPL_SOURCE below), its head and tail are put on
 * separate cache lines as flowq_mpsc's are, ck_fifo_mpmc's entries are
 * embedded in the items (no extra line per item), and the blocking wfcq
 * variants (which sleep 10 ms) are never used. Every queue starts its own
 * 128-byte block, so all get the same adjacent-line prefetch pairing.
 * flowq_mpsc is called through its exported functions in the static
 * library, as an application would call it, so each of its operations is a
 * real function call where wfcq's are inlined (measured: the difference is
 * below this machine's noise).
 *
 * Checks. After the timed region of every batch (timer paused), the log is
 * checked: every item dequeued exactly once, none invented, each producer's
 * items in its enqueue order. A violation fails the case through
 * bench_skip_with_error(). Nothing is checked inside the timed loop.
 *
 * Watchdog. ck_ring's multi-producer enqueue waits for earlier producers to
 * commit; with more producers than cores a preempted producer stalls all the
 * others for a timeslice (perf-anchors.md §1, §4.1: 0.0008 Mops/s). So every
 * batch has a time budget (BENCH_MPSC_WATCHDOG_NS): when it runs out, the
 * producers stop producing new items, the consumer drains what was produced,
 * and the case reports the rate actually achieved, counter stalled = 1 and a
 * label. A second, much longer limit aborts the process rather than hang.
 */

/*
 * Inline liburcu's wfcqueue into this file, as a user chasing speed would
 * (without it every wfcq operation is a call into liburcu-cds.so). liburcu
 * asks for this only from LGPL-compatible code; this benchmark program is
 * not distributed as part of the library.
 */
#define _LGPL_SOURCE

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_fifo.h>
#include <ck_ring.h>
#include <urcu/wfcqueue.h>

#include <flowq/mpsc.h>

#include "bench.h"
#include "bench_harness.h"

/* Items per batch (one iteration each), split evenly among the producers. */
#define BENCH_MPSC_ITEMS (1u << 20)
/* Largest P; BENCH_MPSC_ITEMS must be a multiple of every P used. */
#define BENCH_MPSC_MAX_PRODUCERS BENCH_POOL_MAX_PRODUCERS
/* Most items one drain call may take: bounds the consumer's bookkeeping. */
#define BENCH_MPSC_DRAIN 256
/* Most pause instructions the consumer spins after an empty poll. */
#define BENCH_MPSC_BACKOFF_MAX 64u

/* Items per flowq_mpsc_dequeue_batch() call in flowq_mpsc_batch. */
#define BENCH_MPSC_DEQUEUE_BATCH 64
/* Consumer reads the clock once per this many drain calls (power of two). */
#define BENCH_MPSC_CLOCK_EVERY 1024
/* Time budget of one batch before the watchdog stops the producers. */
#define BENCH_MPSC_WATCHDOG_NS (2ull * 1000000000ull)
/* A batch still running this long (the watchdog fired long ago): abort. */
#define BENCH_MPSC_HANG_NS (60ull * 1000000000ull)
/* ck_ring slots (power of two; ck_ring holds one less). */
#define BENCH_RING_SLOTS (1u << 16)

#define BENCH_LINE 64
/*
 * Adjacent-line prefetchers (Intel's spatial prefetcher, AMD's L2 "up/down"
 * one) move 64-byte lines in aligned 128-byte pairs.
 */
#define BENCH_BLOCK 128

/* clang-format off */
#define bench_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

/* One queued item: every peer's link plus the payload, on one line. */
struct bench_item {
	/* Written by the queue; only the running peer's member is used. */
	_Alignas(BENCH_LINE) union {
		struct flowq_mpsc_node mpsc;
		struct cds_wfcq_node wfcq;
		struct bench_item *list_next;
#ifdef CK_F_FIFO_MPMC
		struct ck_fifo_mpmc_entry fifo; /* 32 bytes, CAS2-aligned */
#endif
	} link;
	/* Written once per run before the first batch; read by the consumer. */
	uint32_t producer;
	uint32_t seq;
};

_Static_assert(sizeof(struct bench_item) == BENCH_LINE, "an item is one cache line");

enum bench_peer {
	BENCH_PEER_FLOWQ_MPSC,
	BENCH_PEER_FLOWQ_MPSC_BATCH,
	BENCH_PEER_CDS_WFCQ,
	BENCH_PEER_CDS_WFCQ_SPLICE,
	BENCH_PEER_CK_FIFO_MPMC,
	BENCH_PEER_MUTEX_LIST,
	BENCH_PEER_CK_RING_MPMC,
};

struct bench_peer_desc {
	enum bench_peer peer;
	const char *name; /* the <peer> in BM_mpsc_<peer> */
};

static const struct bench_peer_desc bench_peers[] = {
	{BENCH_PEER_FLOWQ_MPSC, "flowq_mpsc"},
	{BENCH_PEER_FLOWQ_MPSC_BATCH, "flowq_mpsc_batch"},
	{BENCH_PEER_CDS_WFCQ, "cds_wfcq"},
	{BENCH_PEER_CDS_WFCQ_SPLICE, "cds_wfcq_splice"},
#ifdef CK_F_FIFO_MPMC
	{BENCH_PEER_CK_FIFO_MPMC, "ck_fifo_mpmc"},
#endif
	{BENCH_PEER_MUTEX_LIST, "mutex_list"},
	{BENCH_PEER_CK_RING_MPMC, "ck_ring_mpmc"},
};

/* Everything one run (one call of the benchmark function) shares. */
struct bench_mpsc_run {
	/*
	 * The queues; only the running peer's is used. Each starts a
	 * BENCH_BLOCK-aligned block, so every peer's first two lines form
	 * one adjacent-line prefetch pair, whatever the allocator returns.
	 */
	_Alignas(BENCH_BLOCK) struct flowq_mpsc mpsc; /* head line, tail line */
	_Alignas(BENCH_BLOCK) struct {
		/* Consumer line. */
		_Alignas(BENCH_LINE) struct __cds_wfcq_head head;
		/* Producer line: exchanged by every enqueue. */
		_Alignas(BENCH_LINE) struct cds_wfcq_tail tail;
	} wfcq;
	_Alignas(BENCH_BLOCK) struct {
		/* The consumer's private queue for cds_wfcq_splice. */
		struct __cds_wfcq_head head;
		struct cds_wfcq_tail tail;
	} wfcq_local;
#ifdef CK_F_FIFO_MPMC
	/* ck pads head and tail a cache line apart itself. */
	_Alignas(BENCH_BLOCK) struct ck_fifo_mpmc fifo;
	_Alignas(BENCH_BLOCK) struct ck_fifo_mpmc_entry fifo_stub;
#endif
	_Alignas(BENCH_BLOCK) struct {
		/* Lock, head and tail together: the obvious user layout. */
		pthread_mutex_t lock;
		struct bench_item *head;
		struct bench_item *tail;
	} list;
	/* ck pads its consumer and producer indices apart itself. */
	_Alignas(BENCH_BLOCK) struct ck_ring ring;
	struct ck_ring_buffer *ring_buf;

	/* Read-mostly: set before the producers start. */
	_Alignas(BENCH_BLOCK) enum bench_peer peer;
	unsigned nproducers;
	size_t per; /* items per producer per batch */
};

/*
 * Item pool, shared by all runs (one run at a time); producer p owns
 * items [p * per, (p + 1) * per). Allocated and pre-faulted once, so no run
 * pays page faults in its timing.
 */
static struct bench_item *bench_mpsc_items;

/* What the consumer records of an item: (producer id, sequence number). */
static inline uint64_t
bench_item_tag(const struct bench_item *it)
{
	return bench_pool_tag(it->producer, it->seq);
}

/* ---- mutex_list: the baseline ---------------------------------------- */

static inline void
bench_list_push(struct bench_mpsc_run *r, struct bench_item *it)
{
	it->link.list_next = NULL;
	pthread_mutex_lock(&r->list.lock);
	if (r->list.tail != NULL)
		r->list.tail->link.list_next = it;
	else
		r->list.head = it;
	r->list.tail = it;
	pthread_mutex_unlock(&r->list.lock);
}

static inline struct bench_item *
bench_list_pop(struct bench_mpsc_run *r)
{
	struct bench_item *it;

	pthread_mutex_lock(&r->list.lock);
	it = r->list.head;
	if (it != NULL) {
		r->list.head = it->link.list_next;
		if (r->list.head == NULL)
			r->list.tail = NULL;
	}
	pthread_mutex_unlock(&r->list.lock);
	return it;
}

/* ---- Producers ----------------------------------------------------------- */

/*
 * The harness's produce(): enqueue producer @index's share of one batch.
 * Returns how many items it enqueued (all of them unless the watchdog
 * stopped it). The switch picks the peer once, outside the per-item loops
 * (STYLE.md §8).
 */
static size_t
bench_produce(struct bench_pool *pool, unsigned index, void *ctx)
{
	struct bench_mpsc_run *r = ctx;
	const _Atomic bool *stop = bench_pool_stop_flag(pool);
	struct bench_item *it = bench_mpsc_items + (size_t)index * r->per;
	size_t i, n = r->per;

	switch (r->peer) {
	case BENCH_PEER_FLOWQ_MPSC:
	case BENCH_PEER_FLOWQ_MPSC_BATCH:
		for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++)
			flowq_mpsc_enqueue(&r->mpsc, &it[i].link.mpsc);
		return i;
	case BENCH_PEER_CDS_WFCQ:
	case BENCH_PEER_CDS_WFCQ_SPLICE:
		for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++) {
			cds_wfcq_node_init(&it[i].link.wfcq);
			cds_wfcq_enqueue(&r->wfcq.head, &r->wfcq.tail, &it[i].link.wfcq);
		}
		return i;
	case BENCH_PEER_CK_FIFO_MPMC:
#ifdef CK_F_FIFO_MPMC
		for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++)
			ck_fifo_mpmc_enqueue(&r->fifo, &it[i].link.fifo, &it[i]);
		return i;
#else
		return 0;
#endif
	case BENCH_PEER_MUTEX_LIST:
		for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++)
			bench_list_push(r, &it[i]);
		return i;
	case BENCH_PEER_CK_RING_MPMC:
		for (i = 0; i < n && !bench_pool_stop_due(stop, i); i++) {
			unsigned spins = 0;

			/*
			 * Full ring: retry. Yield now and then, since on an
			 * oversubscribed box the spinning producer holds the
			 * CPU the consumer needs to make room.
			 */
			while (!ck_ring_enqueue_mpmc(&r->ring, r->ring_buf, &it[i])) {
				if (atomic_load_explicit(stop, memory_order_relaxed))
					return i;
				if (++spins % 64 == 0)
					sched_yield();
				else
					bench_cpu_relax();
			}
		}
		return i;
	}
	return 0;
}

/* ---- Consumer --------------------------------------------------------------- */

/*
 * Drain functions: dequeue up to @max items, logging each, and stop at the
 * first "nothing available now" (empty, or an item not yet linked). Return
 * the number taken. Per item they are the peer's plain dequeue loop.
 */

static size_t
bench_drain_flowq_mpsc(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct flowq_mpsc_node *node;
	size_t n;

	for (n = 0; n < max; n++) {
		if (flowq_mpsc_trydequeue(&r->mpsc, &node) != 0)
			break;
		log[n] = bench_item_tag(
			bench_container_of(node, struct bench_item, link.mpsc));
	}
	return n;
}

static size_t
bench_drain_flowq_mpsc_batch(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct flowq_mpsc_node *nodes[BENCH_MPSC_DEQUEUE_BATCH];
	size_t n = 0, want, got, i;

	while (n < max) {
		want = max - n < BENCH_MPSC_DEQUEUE_BATCH ? max - n
							  : BENCH_MPSC_DEQUEUE_BATCH;
		got = flowq_mpsc_dequeue_batch(&r->mpsc, nodes, want);
		for (i = 0; i < got; i++)
			log[n + i] = bench_item_tag(bench_container_of(
				nodes[i], struct bench_item, link.mpsc));
		n += got;
		if (got < want)
			break;
	}
	return n;
}

static size_t
bench_drain_cds_wfcq(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct cds_wfcq_node *node;
	size_t n;

	for (n = 0; n < max; n++) {
		node = __cds_wfcq_dequeue_nonblocking(&r->wfcq.head, &r->wfcq.tail);
		if (node == NULL || node == CDS_WFCQ_WOULDBLOCK)
			break;
		log[n] = bench_item_tag(
			bench_container_of(node, struct bench_item, link.wfcq));
	}
	return n;
}

static size_t
bench_drain_cds_wfcq_splice(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct cds_wfcq_node *node;
	enum cds_wfcq_ret ret;
	size_t n;

	/*
	 * Splice only when the private queue is empty: one splice then moves
	 * the whole backlog, which is the point of splicing.
	 */
	if (cds_wfcq_empty(&r->wfcq_local.head, &r->wfcq_local.tail)) {
		ret = __cds_wfcq_splice_nonblocking(&r->wfcq_local.head,
						    &r->wfcq_local.tail, &r->wfcq.head,
						    &r->wfcq.tail);
		if (ret == CDS_WFCQ_RET_SRC_EMPTY || ret == CDS_WFCQ_RET_WOULDBLOCK)
			return 0;
	}
	/* Spliced nodes may still await their link: nonblocking here too. */
	for (n = 0; n < max; n++) {
		node = __cds_wfcq_dequeue_nonblocking(&r->wfcq_local.head,
						      &r->wfcq_local.tail);
		if (node == NULL || node == CDS_WFCQ_WOULDBLOCK)
			break;
		log[n] = bench_item_tag(
			bench_container_of(node, struct bench_item, link.wfcq));
	}
	return n;
}

#ifdef CK_F_FIFO_MPMC
static size_t
bench_drain_ck_fifo_mpmc(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct ck_fifo_mpmc_entry *garbage;
	void *value;
	size_t n;

	/*
	 * Debian's ck 0.7.1 lacks upstream e78c421: dequeue can report empty
	 * spuriously while the head moves. Stopping here is harmless: the
	 * consumer loop calls again. The garbage entry (the previous stub) is
	 * embedded in an item of this batch and is not reused before the
	 * queue is re-initialized for the next one.
	 */
	for (n = 0; n < max; n++) {
		if (!ck_fifo_mpmc_dequeue(&r->fifo, &value, &garbage))
			break;
		log[n] = bench_item_tag(value);
	}
	return n;
}
#endif

static size_t
bench_drain_mutex_list(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	struct bench_item *it;
	size_t n;

	for (n = 0; n < max; n++) {
		it = bench_list_pop(r);
		if (it == NULL)
			break;
		log[n] = bench_item_tag(it);
	}
	return n;
}

static size_t
bench_drain_ck_ring_mpmc(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
	void *value;
	size_t n;

	for (n = 0; n < max; n++) {
		if (!ck_ring_dequeue_mpmc(&r->ring, r->ring_buf, &value))
			break;
		log[n] = bench_item_tag(value);
	}
	return n;
}

/*
 * The harness's drain(): dequeue up to @max items of the running peer. The
 * switch runs once per drain call (up to BENCH_MPSC_DRAIN items), outside
 * every per-item loop.
 */
static size_t
bench_drain(void *ctx, uint64_t *log, size_t max)
{
	struct bench_mpsc_run *r = ctx;

	switch (r->peer) {
	case BENCH_PEER_FLOWQ_MPSC:
		return bench_drain_flowq_mpsc(r, log, max);
	case BENCH_PEER_FLOWQ_MPSC_BATCH:
		return bench_drain_flowq_mpsc_batch(r, log, max);
	case BENCH_PEER_CDS_WFCQ:
		return bench_drain_cds_wfcq(r, log, max);
	case BENCH_PEER_CDS_WFCQ_SPLICE:
		return bench_drain_cds_wfcq_splice(r, log, max);
	case BENCH_PEER_CK_FIFO_MPMC:
#ifdef CK_F_FIFO_MPMC
		return bench_drain_ck_fifo_mpmc(r, log, max);
#else
		return 0; /* never registered without CAS2 */
#endif
	case BENCH_PEER_MUTEX_LIST:
		return bench_drain_mutex_list(r, log, max);
	case BENCH_PEER_CK_RING_MPMC:
		return bench_drain_ck_ring_mpmc(r, log, max);
	}
	return 0;
}

/* The harness's reset(): make the running peer's queue empty. */
static void
bench_mpsc_reset(void *ctx)
{
	struct bench_mpsc_run *r = ctx;

	switch (r->peer) {
	case BENCH_PEER_FLOWQ_MPSC:
	case BENCH_PEER_FLOWQ_MPSC_BATCH:
		flowq_mpsc_init(&r->mpsc);
		break;
	case BENCH_PEER_CDS_WFCQ:
	case BENCH_PEER_CDS_WFCQ_SPLICE:
		__cds_wfcq_init(&r->wfcq.head, &r->wfcq.tail);
		__cds_wfcq_init(&r->wfcq_local.head, &r->wfcq_local.tail);
		break;
	case BENCH_PEER_CK_FIFO_MPMC:
#ifdef CK_F_FIFO_MPMC
		ck_fifo_mpmc_init(&r->fifo, &r->fifo_stub);
#endif
		break;
	case BENCH_PEER_MUTEX_LIST:
		r->list.head = NULL;
		r->list.tail = NULL;
		break;
	case BENCH_PEER_CK_RING_MPMC:
		ck_ring_init(&r->ring, BENCH_RING_SLOTS);
		break;
	}
}

/* The harness's verify(): the log is all there is to check. */
static int
bench_mpsc_verify(const struct bench_pool *pool, const uint64_t *log, size_t got,
		  char *msg, size_t len, void *ctx)
{
	(void)ctx;
	return bench_pool_check_fifo(pool, log, got, msg, len);
}

static struct bench_mpsc_run *
bench_mpsc_run_create(enum bench_peer peer, unsigned nproducers)
{
	struct bench_mpsc_run *r;
	size_t size = (sizeof(*r) + BENCH_BLOCK - 1) / BENCH_BLOCK * BENCH_BLOCK;
	size_t per = BENCH_MPSC_ITEMS / nproducers;

	r = aligned_alloc(BENCH_BLOCK, size);
	if (r == NULL)
		return NULL;
	memset(r, 0, size);
	r->peer = peer;
	r->nproducers = nproducers;
	r->per = per;
	if (peer == BENCH_PEER_CK_RING_MPMC) {
		r->ring_buf = aligned_alloc(BENCH_LINE,
					    sizeof(*r->ring_buf) * BENCH_RING_SLOTS);
		if (r->ring_buf == NULL) {
			free(r);
			return NULL;
		}
	}
	pthread_mutex_init(&r->list.lock, NULL);
	for (unsigned p = 0; p < nproducers; p++) {
		struct bench_item *items = bench_mpsc_items + (size_t)p * per;

		for (size_t i = 0; i < per; i++) {
			items[i].producer = p;
			items[i].seq = (uint32_t)i;
		}
	}
	bench_mpsc_reset(r);
	return r;
}

static void
bench_mpsc_run_destroy(struct bench_mpsc_run *r)
{
	pthread_mutex_destroy(&r->list.lock);
	free(r->ring_buf);
	free(r);
}

/* The benchmark function of every BM_mpsc_<peer>/producers:P. */
static void
bench_mpsc_case(struct bench_state *st, void *arg)
{
	const struct bench_peer_desc *desc = arg;
	int64_t nproducers = bench_range(st, 0);
	struct bench_pool_config cfg = {
		.suite = "BM_mpsc",
		.items = BENCH_MPSC_ITEMS,
		.drain_max = BENCH_MPSC_DRAIN,
		.backoff_max = BENCH_MPSC_BACKOFF_MAX,
		.clock_every = BENCH_MPSC_CLOCK_EVERY,
		.watchdog_ns = BENCH_MPSC_WATCHDOG_NS,
		.hang_ns = BENCH_MPSC_HANG_NS,
		.produce = bench_produce,
		.drain = bench_drain,
		.verify = bench_mpsc_verify,
		.reset = bench_mpsc_reset,
	};
	struct bench_pool_totals totals;
	struct bench_mpsc_run *r;
	char msg[256];
	int err;

	if (nproducers < 1 || nproducers > BENCH_MPSC_MAX_PRODUCERS ||
	    BENCH_MPSC_ITEMS % nproducers != 0) {
		bench_skip_with_error(st, "producers must divide 2^20 and be 1..8");
		return;
	}
	if (bench_mpsc_items == NULL)
		bench_mpsc_items =
			bench_pool_prefault(sizeof(*bench_mpsc_items) * BENCH_MPSC_ITEMS);
	if (bench_mpsc_items == NULL) {
		bench_skip_with_error(st, "out of memory for the item pool");
		return;
	}
	r = bench_mpsc_run_create(desc->peer, (unsigned)nproducers);
	if (r == NULL) {
		bench_skip_with_error(st, "out of memory for the run");
		return;
	}
	cfg.nproducers = r->nproducers;
	cfg.ctx = r;
	err = bench_pool_measure(st, &cfg, &totals);
	bench_mpsc_run_destroy(r);
	if (err != 0)
		return;
	bench_set_counter(st, "stalled", totals.stalled ? 1.0 : 0.0, BENCH_COUNTER_PLAIN);
	if (totals.stalled) {
		snprintf(msg, sizeof(msg),
			 "stalled: watchdog (%.1f s per batch) stopped the producers",
			 BENCH_MPSC_WATCHDOG_NS / 1e9);
		bench_set_label(st, msg);
	}
}

void
bench_mpsc_register(void)
{
	static const int producers[] = {1, 2, 4, 8};
	char name[64];

	snprintf(name, sizeof(name), "%u", BENCH_MPSC_ITEMS);
	bench_add_context("flowq_mpsc_items_per_batch", name);
	snprintf(name, sizeof(name), "%.1f", BENCH_MPSC_WATCHDOG_NS / 1e9);
	bench_add_context("flowq_mpsc_watchdog_s", name);
	for (size_t i = 0; i < sizeof(bench_peers) / sizeof(bench_peers[0]); i++) {
		snprintf(name, sizeof(name), "BM_mpsc_%s", bench_peers[i].name);
		/* The table is never written; arg is void * only for the shim. */
		bench_pool_register(name, bench_mpsc_case, (void *)&bench_peers[i],
				    producers, sizeof(producers) / sizeof(producers[0]));
	}
}
