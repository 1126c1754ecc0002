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
 * items_per_second, a rate over real time). Producers are a thread pool
 * created once per run and parked on a condition variable between batches,
 * so thread creation is outside the timing and a wake-up (tens of us) is
 * well under 1% of a batch (tens of ms). Threads are not pinned: on 2 vCPUs,
 * P >= 2 producers plus the consumer oversubscribe the machine, which is the
 * case the engine has to survive (W10), not a scaling measurement.
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

/* pthread_setaffinity_np() for FLOWQ_BENCH_PIN. */
#define _GNU_SOURCE

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
#include <unistd.h>

#include <ck_fifo.h>
#include <ck_ring.h>
#include <urcu/wfcqueue.h>

#include <flowq/mpsc.h>

#include "bench.h"

/* Items per batch (one iteration each), split evenly among the producers. */
#define BENCH_MPSC_ITEMS (1u << 20)
/* Largest P; BENCH_MPSC_ITEMS must be a multiple of every P used. */
#define BENCH_MPSC_MAX_PRODUCERS 8
/* Most items one drain call may take: bounds the consumer's bookkeeping. */
#define BENCH_MPSC_DRAIN 256
/* Most pause instructions the consumer spins after an empty poll. */
#define BENCH_MPSC_BACKOFF_MAX 64u

/* Items per flowq_mpsc_dequeue_batch() call in flowq_mpsc_batch. */
#define BENCH_MPSC_DEQUEUE_BATCH 64
/* Producers look at the stop flag once per this many items. */
#define BENCH_MPSC_STOP_EVERY 64
/* Consumer reads the clock once per this many drain calls (power of two). */
#define BENCH_MPSC_CLOCK_EVERY 1024
/* Time budget of one batch before the watchdog stops the producers. */
#define BENCH_MPSC_WATCHDOG_NS (2ull * 1000000000ull)
/* After the watchdog fired, give up on the process after this long. */
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

struct bench_mpsc_run;

/* One producer thread of a run. */
struct bench_producer {
	/* Set before the thread starts; read by the producer only. */
	_Alignas(BENCH_LINE) struct bench_mpsc_run *run;
	struct bench_item *items;
	size_t count; /* items per batch */
	unsigned index;
	pthread_t thread;
	/*
	 * Written by the producer before its release increment of done;
	 * read by the consumer after an acquire load of done == P.
	 */
	size_t produced;
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

	/*
	 * Read by every producer, written by the consumer only between
	 * batches and once when the watchdog fires: stays shared.
	 */
	_Alignas(BENCH_BLOCK) _Atomic bool stop;
	enum bench_peer peer;
	unsigned nproducers;

	/* Start gate: the consumer bumps gen to release one batch. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	unsigned gate_gen;
	bool quit;

	/* Producers that finished the batch; one increment each. */
	_Alignas(BENCH_BLOCK) _Atomic unsigned done;

	struct bench_producer producers[BENCH_MPSC_MAX_PRODUCERS];
};

/*
 * Item pool and consumer log, shared by all runs (one run at a time).
 * Allocated and pre-faulted once, so no run pays page faults in its timing.
 */
static struct bench_item *bench_pool;
static uint64_t *bench_log;

static int
bench_pool_get(void)
{
	if (bench_pool != NULL)
		return 0;
	bench_pool = aligned_alloc(BENCH_LINE, sizeof(*bench_pool) * BENCH_MPSC_ITEMS);
	bench_log = aligned_alloc(BENCH_LINE, sizeof(*bench_log) * BENCH_MPSC_ITEMS);
	if (bench_pool == NULL || bench_log == NULL) {
		free(bench_pool);
		free(bench_log);
		bench_pool = NULL;
		bench_log = NULL;
		return -1;
	}
	memset(bench_pool, 0, sizeof(*bench_pool) * BENCH_MPSC_ITEMS);
	memset(bench_log, 0, sizeof(*bench_log) * BENCH_MPSC_ITEMS);
	return 0;
}

/* What the consumer records of an item: (producer id, sequence number). */
static inline uint64_t
bench_item_tag(const struct bench_item *it)
{
	return (uint64_t)it->producer << 32 | it->seq;
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
 * Whether the watchdog asked producers to stop, looked at once every
 * BENCH_MPSC_STOP_EVERY items. Relaxed: the flag carries no data, and the
 * consumer learns how far each producer got from produced/done instead.
 */
static inline bool
bench_stop_due(struct bench_mpsc_run *r, size_t i)
{
	return i % BENCH_MPSC_STOP_EVERY == 0 &&
	       atomic_load_explicit(&r->stop, memory_order_relaxed);
}

/*
 * Enqueue this producer's share of one batch. Returns how many items it
 * enqueued (all of them unless the watchdog stopped it). The switch picks
 * the peer once, outside the per-item loops (STYLE.md §8).
 */
static size_t
bench_produce(struct bench_mpsc_run *r, struct bench_producer *p)
{
	struct bench_item *it = p->items;
	size_t i, n = p->count;

	switch (r->peer) {
	case BENCH_PEER_FLOWQ_MPSC:
	case BENCH_PEER_FLOWQ_MPSC_BATCH:
		for (i = 0; i < n && !bench_stop_due(r, i); i++)
			flowq_mpsc_enqueue(&r->mpsc, &it[i].link.mpsc);
		return i;
	case BENCH_PEER_CDS_WFCQ:
	case BENCH_PEER_CDS_WFCQ_SPLICE:
		for (i = 0; i < n && !bench_stop_due(r, i); i++) {
			cds_wfcq_node_init(&it[i].link.wfcq);
			cds_wfcq_enqueue(&r->wfcq.head, &r->wfcq.tail, &it[i].link.wfcq);
		}
		return i;
	case BENCH_PEER_CK_FIFO_MPMC:
#ifdef CK_F_FIFO_MPMC
		for (i = 0; i < n && !bench_stop_due(r, i); i++)
			ck_fifo_mpmc_enqueue(&r->fifo, &it[i].link.fifo, &it[i]);
		return i;
#else
		return 0;
#endif
	case BENCH_PEER_MUTEX_LIST:
		for (i = 0; i < n && !bench_stop_due(r, i); i++)
			bench_list_push(r, &it[i]);
		return i;
	case BENCH_PEER_CK_RING_MPMC:
		for (i = 0; i < n && !bench_stop_due(r, i); i++) {
			unsigned spins = 0;

			/*
			 * Full ring: retry. Yield now and then, since on an
			 * oversubscribed box the spinning producer holds the
			 * CPU the consumer needs to make room.
			 */
			while (!ck_ring_enqueue_mpmc(&r->ring, r->ring_buf, &it[i])) {
				if (atomic_load_explicit(&r->stop, memory_order_relaxed))
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

static void *
bench_producer_main(void *arg)
{
	struct bench_producer *p = arg;
	struct bench_mpsc_run *r = p->run;
	unsigned seen = 0;

	if (bench_pinning())
		bench_pin_self((long)p->index % (sysconf(_SC_NPROCESSORS_ONLN) - 1));

	for (;;) {
		/*
		 * The gate lock orders the consumer's reset of the queue, stop
		 * and done before this batch's enqueues.
		 */
		pthread_mutex_lock(&r->gate_lock);
		while (r->gate_gen == seen && !r->quit)
			pthread_cond_wait(&r->gate_cond, &r->gate_lock);
		if (r->quit) {
			pthread_mutex_unlock(&r->gate_lock);
			return NULL;
		}
		seen = r->gate_gen;
		pthread_mutex_unlock(&r->gate_lock);

		p->produced = bench_produce(r, p);
		/* Release: publishes produced, and the end of our enqueues. */
		atomic_fetch_add_explicit(&r->done, 1, memory_order_release);
	}
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
 * Dequeue up to @max items of the running peer. The switch runs once per
 * drain call (up to BENCH_MPSC_DRAIN items), outside every per-item loop.
 */
static size_t
bench_drain(struct bench_mpsc_run *r, uint64_t *log, size_t max)
{
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

/* Make the running peer's queue empty and arm the next batch. */
static void
bench_mpsc_reset(struct bench_mpsc_run *r)
{
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
	atomic_store_explicit(&r->stop, false, memory_order_relaxed);
	atomic_store_explicit(&r->done, 0, memory_order_relaxed);
}

/* Release the producers for one batch. */
static void
bench_gate_open(struct bench_mpsc_run *r)
{
	pthread_mutex_lock(&r->gate_lock);
	r->gate_gen++;
	pthread_cond_broadcast(&r->gate_cond);
	pthread_mutex_unlock(&r->gate_lock);
}

/* Sum of the producers' counts; valid once done == nproducers (acquire). */
static size_t
bench_produced_total(const struct bench_mpsc_run *r)
{
	size_t total = 0;

	for (unsigned p = 0; p < r->nproducers; p++)
		total += r->producers[p].produced;
	return total;
}

/*
 * Run one batch: open the gate, then consume until every item produced is
 * back. Returns the number of items delivered (logged into @log, in
 * dequeue order); *r_stalled tells whether the watchdog had to stop the
 * producers. Producers may still be returning from their last enqueue when
 * this returns: wait for done before touching the queue again.
 */
static size_t
bench_mpsc_batch(struct bench_mpsc_run *r, uint64_t *log, bool *r_stalled)
{
	size_t got = 0, expected = BENCH_MPSC_ITEMS, want, n;
	uint64_t start, now;
	unsigned long polls = 0;
	unsigned backoff = 1;
	bool stopped = false, counted = false;

	start = bench_now_ns();
	bench_gate_open(r);
	while (got < expected) {
		want = expected - got < BENCH_MPSC_DRAIN ? expected - got
							 : BENCH_MPSC_DRAIN;
		n = bench_drain(r, log + got, want);
		got += n;
		/*
		 * Found nothing: back off exponentially (bounded), as a real
		 * dispatcher does before it sleeps. Re-polling at once would
		 * keep pulling the line the producer is about to write, and
		 * the run would settle, at random, either in that slow
		 * lock-step or in a fast streaming regime (P=1 repetitions
		 * spread 4x without this). Same for every peer.
		 */
		if (n == 0) {
			for (unsigned i = 0; i < backoff; i++)
				bench_cpu_relax();
			if (backoff < BENCH_MPSC_BACKOFF_MAX)
				backoff *= 2;
		} else {
			backoff = 1;
		}
		if (++polls % BENCH_MPSC_CLOCK_EVERY == 0) {
			now = bench_now_ns();
			if (!stopped && now - start > BENCH_MPSC_WATCHDOG_NS) {
				atomic_store_explicit(&r->stop, true,
						      memory_order_relaxed);
				stopped = true;
			}
			if (stopped && now - start > BENCH_MPSC_HANG_NS) {
				fprintf(stderr,
					"flowq_bench: BM_mpsc: %zu of %zu items after "
					"%llu s, "
					"producers still running: giving up\n",
					got, expected,
					(unsigned long long)(BENCH_MPSC_HANG_NS /
							     1000000000u));
				abort();
			}
		}
		/*
		 * Once stopped, the target is what the producers actually
		 * enqueued, known when all of them are done (acquire pairs
		 * with their release increment).
		 */
		if (stopped && !counted &&
		    atomic_load_explicit(&r->done, memory_order_acquire) ==
			    r->nproducers) {
			expected = bench_produced_total(r);
			counted = true;
		}
	}
	*r_stalled = stopped;
	return got;
}

/* Wait until every producer has left its enqueue loop for this batch. */
static void
bench_mpsc_wait_done(struct bench_mpsc_run *r)
{
	unsigned spins = 0;

	while (atomic_load_explicit(&r->done, memory_order_acquire) != r->nproducers) {
		/* A producer preempted after its last enqueue needs our CPU. */
		if (++spins % 64 == 0)
			sched_yield();
		else
			bench_cpu_relax();
	}
}

/*
 * Conservation check of one batch, outside the timing. Sequence numbers are
 * dense per producer, so "each producer's items appear in order 0, 1, 2, ...
 * and as many as it enqueued" proves at once: no loss, no duplicate, nothing
 * invented, per-producer FIFO. Returns 0, or -1 with a message in @msg.
 */
static int
bench_mpsc_verify(const struct bench_mpsc_run *r, const uint64_t *log, size_t got,
		  char *msg, size_t len)
{
	uint32_t next[BENCH_MPSC_MAX_PRODUCERS] = {0};
	uint32_t producer, seq;

	for (size_t i = 0; i < got; i++) {
		producer = (uint32_t)(log[i] >> 32);
		seq = (uint32_t)log[i];
		if (producer >= r->nproducers) {
			snprintf(msg, len,
				 "dequeue %zu: invented item (producer %" PRIu32
				 " of %u)",
				 i, producer, r->nproducers);
			return -1;
		}
		if (seq != next[producer]) {
			snprintf(msg, len,
				 "dequeue %zu: producer %" PRIu32 " item %" PRIu32
				 " where %" PRIu32
				 " was due (lost, duplicated or reordered)",
				 i, producer, seq, next[producer]);
			return -1;
		}
		next[producer]++;
	}
	for (unsigned p = 0; p < r->nproducers; p++) {
		if (next[p] != r->producers[p].produced) {
			snprintf(msg, len,
				 "producer %u: %zu items enqueued, %" PRIu32 " dequeued",
				 p, r->producers[p].produced, next[p]);
			return -1;
		}
	}
	return 0;
}

static void
bench_mpsc_quit(struct bench_mpsc_run *r, unsigned started)
{
	pthread_mutex_lock(&r->gate_lock);
	r->quit = true;
	pthread_cond_broadcast(&r->gate_cond);
	pthread_mutex_unlock(&r->gate_lock);
	for (unsigned p = 0; p < started; p++)
		pthread_join(r->producers[p].thread, NULL);
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
	if (peer == BENCH_PEER_CK_RING_MPMC) {
		r->ring_buf = aligned_alloc(BENCH_LINE,
					    sizeof(*r->ring_buf) * BENCH_RING_SLOTS);
		if (r->ring_buf == NULL) {
			free(r);
			return NULL;
		}
	}
	pthread_mutex_init(&r->list.lock, NULL);
	pthread_mutex_init(&r->gate_lock, NULL);
	pthread_cond_init(&r->gate_cond, NULL);
	for (unsigned p = 0; p < nproducers; p++) {
		struct bench_producer *pr = &r->producers[p];

		pr->run = r;
		pr->items = bench_pool + (size_t)p * per;
		pr->count = per;
		for (size_t i = 0; i < per; i++) {
			pr->items[i].producer = p;
			pr->items[i].seq = (uint32_t)i;
		}
	}
	bench_mpsc_reset(r);
	return r;
}

static void
bench_mpsc_run_destroy(struct bench_mpsc_run *r)
{
	pthread_cond_destroy(&r->gate_cond);
	pthread_mutex_destroy(&r->gate_lock);
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
	struct bench_mpsc_run *r;
	uint64_t delivered = 0;
	unsigned started = 0;
	bool stalled = false, stalled_now, failed = false;
	cpu_set_t saved_cpus;
	char msg[256];
	size_t got;

	if (nproducers < 1 || nproducers > BENCH_MPSC_MAX_PRODUCERS ||
	    BENCH_MPSC_ITEMS % nproducers != 0) {
		bench_skip_with_error(st, "producers must divide 2^20 and be 1..8");
		return;
	}
	if (bench_pool_get() != 0) {
		bench_skip_with_error(st, "out of memory for the item pool");
		return;
	}
	r = bench_mpsc_run_create(desc->peer, (unsigned)nproducers);
	if (r == NULL) {
		bench_skip_with_error(st, "out of memory for the run");
		return;
	}
	if (bench_pinning()) {
		pthread_getaffinity_np(pthread_self(), sizeof(saved_cpus), &saved_cpus);
		bench_pin_self(sysconf(_SC_NPROCESSORS_ONLN) - 1);
	}
	for (; started < r->nproducers; started++) {
		r->producers[started].index = started;
		if (pthread_create(&r->producers[started].thread, NULL,
				   bench_producer_main, &r->producers[started]) != 0)
			break;
	}
	if (started < r->nproducers) {
		bench_mpsc_quit(r, started);
		bench_mpsc_run_destroy(r);
		bench_skip_with_error(st, "pthread_create failed");
		return;
	}

	while (bench_keep_running_batch(st, BENCH_MPSC_ITEMS)) {
		got = bench_mpsc_batch(r, bench_log, &stalled_now);
		bench_pause_timing(st);
		bench_mpsc_wait_done(r);
		delivered += got;
		stalled |= stalled_now;
		if (bench_mpsc_verify(r, bench_log, got, msg, sizeof(msg)) != 0) {
			bench_skip_with_error(st, msg);
			failed = true;
			break;
		}
		bench_mpsc_reset(r);
		bench_resume_timing(st);
	}

	bench_mpsc_quit(r, started);
	bench_mpsc_run_destroy(r);
	if (bench_pinning())
		pthread_setaffinity_np(pthread_self(), sizeof(saved_cpus), &saved_cpus);
	if (failed)
		return;
	bench_set_counter(st, "items_per_second", (double)delivered, BENCH_COUNTER_RATE);
	bench_set_counter(st, "stalled", stalled ? 1.0 : 0.0, BENCH_COUNTER_PLAIN);
	if (stalled) {
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
	struct bench_case *c;

	snprintf(name, sizeof(name), "%u", BENCH_MPSC_ITEMS);
	bench_add_context("flowq_mpsc_items_per_batch", name);
	snprintf(name, sizeof(name), "%.1f", BENCH_MPSC_WATCHDOG_NS / 1e9);
	bench_add_context("flowq_mpsc_watchdog_s", name);
	for (size_t i = 0; i < sizeof(bench_peers) / sizeof(bench_peers[0]); i++) {
		snprintf(name, sizeof(name), "BM_mpsc_%s", bench_peers[i].name);
		/* The table is never written; arg is void * only for the shim. */
		c = bench_register(name, bench_mpsc_case, (void *)&bench_peers[i]);
		if (c == NULL)
			continue;
		bench_case_arg_name(c, "producers");
		for (size_t j = 0; j < sizeof(producers) / sizeof(producers[0]); j++)
			bench_case_arg(c, producers[j]);
		bench_case_use_real_time(c);
		bench_case_unit(c, BENCH_UNIT_NS);
	}
}
