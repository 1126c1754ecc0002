/*
 * The history recorder (flowq/history.h, core/history.h).
 *
 * Each recording thread owns one log: a singly linked list of chunks of
 * CHUNK_EVENTS events that only it appends to (no atomics, no lock). Logs
 * are listed in `logs` under `mu`, which is taken only to adopt a log (a
 * thread's first event), to give it up (thread exit, through a pthread key
 * destructor) and to dump. A log outlives its thread, so that its events
 * reach the next dump, and is adopted by a later thread: its tid then names
 * a sequence of threads that ran one after the other, which is still one
 * producer for the checker's FIFO rule (the earlier thread's submits
 * happen-before the later one's, through `mu`).
 *
 * The order key gseq is one relaxed fetch-add on `gseq_next`: all
 * read-modify-writes of one atomic form one modification order, consistent
 * with happens-before (C11 7.17.3 coherence), so an event that
 * happens-before another gets the smaller key. Relaxed suffices because the
 * key orders the events only; it publishes nothing.
 *
 * Chunks come from mmap with MAP_POPULATE (chunk_new()), not the engine's
 * allocator hook: the recorder is a process-wide debugging aid.
 *
 * If a chunk cannot be allocated the event is counted in its log's
 * `dropped`; if the thread has no log and none can be allocated, in
 * `dropped_nolog` (a relaxed counter: it only counts). Both add up to the
 * header line's dropped=, and the checker refuses the history.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "history.h"
#include "mono.h"

enum { CHUNK_EVENTS = 4096 };

struct hev {
	uint64_t gseq;
	int64_t t;
	const void *req;
	uint64_t flow;
	uint64_t bytes;
	int64_t now;
	int64_t expiry;
	uint32_t pseq;
	int32_t prio;
	uint16_t shard;
	char kind; /* 'S', 'J', 'O', 'R' */
	uint8_t outcome;
	uint8_t cause;
	uint8_t flag; /* S: fifo; O: scarce */
};
_Static_assert(sizeof(struct hev) <= 72, "history event grew");

struct chunk {
	struct chunk *next;
	size_t n;
	struct hev ev[CHUNK_EVENTS];
};

struct hlog {
	struct hlog *next;
	unsigned tid;
	bool owned;
	uint32_t pseq;
	uint64_t dropped;
	struct chunk *head, *tail;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct hlog *logs;
static unsigned nlogs;
static _Atomic uint64_t gseq_next = 1;
static _Atomic uint64_t dropped_nolog;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static _Thread_local struct hlog *mine;

bool
flowq_history_enabled(void)
{
	return FLOWQ__HISTORY_ON;
}

static void
log_release(void *p)
{
	struct hlog *l = p;
	pthread_mutex_lock(&mu);
	l->owned = false;
	pthread_mutex_unlock(&mu);
}

static void
key_init(void)
{
	(void)pthread_key_create(&key, log_release);
}

static struct hlog *
log_get(void)
{
	if (mine)
		return mine;
	pthread_once(&key_once, key_init);
	pthread_mutex_lock(&mu);
	struct hlog *l;
	for (l = logs; l; l = l->next)
		if (!l->owned)
			break;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l) {
			pthread_mutex_unlock(&mu);
			return NULL;
		}
		l->tid = nlogs++;
		l->next = logs;
		logs = l;
	}
	l->owned = true;
	pthread_mutex_unlock(&mu);
	(void)pthread_setspecific(key, l);
	mine = l;
	return l;
}

void
flowq__history_stamp(struct flowq__history_stamp *r_st)
{
	r_st->gseq = atomic_fetch_add_explicit(&gseq_next, 1, memory_order_relaxed);
	r_st->t = flowq__mono_ns();
}

/* A chunk, its pages populated at once: one mmap instead of a page fault
 * per 57 events on first touch (measured on this VM, one polled-mode thread
 * submitting, dispatching and releasing: the recorder's CPU time per
 * request, 3 events, fell from 1.05-1.4 us to 0.82 us), NULL if no
 * memory. */
static struct chunk *
chunk_new(void)
{
	void *p = mmap(NULL, sizeof(struct chunk), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A zeroed event of @p kind with its order key and time (from @p st, else
 * taken now), or NULL if no memory (counted). */
static struct hev *
ev_new_at(char kind, const struct flowq__history_stamp *st)
{
	struct hlog *l = log_get();
	if (!l) {
		atomic_fetch_add_explicit(&dropped_nolog, 1, memory_order_relaxed);
		return NULL;
	}
	struct chunk *c = l->tail;
	if (!c || c->n == CHUNK_EVENTS) {
		c = chunk_new();
		if (!c) {
			l->dropped++;
			return NULL;
		}
		c->next = NULL;
		c->n = 0;
		if (l->tail)
			l->tail->next = c;
		else
			l->head = c;
		l->tail = c;
	}
	struct hev *ev = &c->ev[c->n++];
	*ev = (struct hev){.kind = kind};
	struct flowq__history_stamp now;
	if (!st) {
		flowq__history_stamp(&now);
		st = &now;
	}
	ev->gseq = st->gseq;
	ev->t = st->t;
	if (kind == 'S' || kind == 'J')
		ev->pseq = l->pseq++;
	return ev;
}

static struct hev *
ev_new(char kind)
{
	return ev_new_at(kind, NULL);
}

void
flowq__history_submit(const struct flowq_req *req, uint64_t flow, int32_t prio,
		      int64_t now, int64_t expiry, bool fifo)
{
	struct hev *ev = ev_new('S');
	if (!ev)
		return;
	ev->req = req;
	ev->flow = flow;
	ev->prio = prio;
	ev->bytes = req->bytes;
	ev->now = now;
	ev->expiry = expiry;
	ev->flag = fifo;
}

void
flowq__history_reject(const struct flowq_req *req, enum flowq_outcome o,
		      enum flowq_cause c)
{
	struct hev *ev = ev_new('J');
	if (!ev)
		return;
	ev->req = req;
	ev->prio = req->priority;
	ev->bytes = req->bytes;
	ev->outcome = (uint8_t)o;
	ev->cause = (uint8_t)c;
}

void
flowq__history_outcome(const struct flowq_req *req, enum flowq_outcome o,
		       enum flowq_cause c, int64_t now, unsigned shard, bool scarce)
{
	flowq__history_outcome_at(NULL, req, o, c, now, shard, scarce);
}

void
flowq__history_outcome_at(const struct flowq__history_stamp *st,
			  const struct flowq_req *req, enum flowq_outcome o,
			  enum flowq_cause c, int64_t now, unsigned shard, bool scarce)
{
	struct hev *ev = ev_new_at('O', st);
	if (!ev)
		return;
	ev->req = req;
	ev->outcome = (uint8_t)o;
	ev->cause = (uint8_t)c;
	ev->now = now;
	ev->shard = (uint16_t)shard;
	ev->flag = scarce;
}

void
flowq__history_release(const struct flowq_req *req)
{
	struct hev *ev = ev_new('R');
	if (ev)
		ev->req = req;
}

static int
ev_write(FILE *out, unsigned tid, const struct hev *ev)
{
	uintptr_t req = (uintptr_t)ev->req;
	switch (ev->kind) {
	case 'S':
		return fprintf(out,
			       "S %" PRIu64 " %" PRId64 " %u %" PRIu32 " %" PRIxPTR
			       " %" PRIx64 " %" PRId32 " %" PRIu64 " %" PRId64 " %" PRId64
			       " %u\n",
			       ev->gseq, ev->t, tid, ev->pseq, req, ev->flow, ev->prio,
			       ev->bytes, ev->now, ev->expiry, (unsigned)ev->flag);
	case 'J':
		return fprintf(out,
			       "J %" PRIu64 " %" PRId64 " %u %" PRIu32 " %" PRIxPTR
			       " %" PRIx64 " %" PRId32 " %" PRIu64 " %s %s\n",
			       ev->gseq, ev->t, tid, ev->pseq, req, ev->flow, ev->prio,
			       ev->bytes, flowq_outcome_str(ev->outcome),
			       flowq_cause_str(ev->cause));
	case 'O':
		return fprintf(out,
			       "O %" PRIu64 " %" PRId64 " %u %" PRIxPTR " %s %s %" PRId64
			       " %u %u\n",
			       ev->gseq, ev->t, tid, req, flowq_outcome_str(ev->outcome),
			       flowq_cause_str(ev->cause), ev->now, (unsigned)ev->shard,
			       (unsigned)ev->flag);
	default:
		return fprintf(out, "R %" PRIu64 " %" PRId64 " %u %" PRIxPTR "\n",
			       ev->gseq, ev->t, tid, req);
	}
}

/* Free @p l's events (mu held). */
static void
log_clear(struct hlog *l)
{
	struct chunk *c = l->head;
	while (c) {
		struct chunk *next = c->next;
		munmap(c, sizeof(*c));
		c = next;
	}
	l->head = l->tail = NULL;
	l->dropped = 0;
}

int
flowq_history_dump(FILE *out)
{
	if (!FLOWQ__HISTORY_ON)
		return -ENOTSUP;
	if (!out)
		return -EFAULT;
	pthread_mutex_lock(&mu);
	uint64_t n = 0;
	uint64_t dropped =
		atomic_exchange_explicit(&dropped_nolog, 0, memory_order_relaxed);
	for (struct hlog *l = logs; l; l = l->next) {
		dropped += l->dropped;
		for (struct chunk *c = l->head; c; c = c->next)
			n += c->n;
	}
	bool ok =
		fprintf(out, "# flowq history 1 events=%" PRIu64 " dropped=%" PRIu64 "\n",
			n, dropped) > 0;
	for (struct hlog *l = logs; l; l = l->next) {
		for (struct chunk *c = l->head; c && ok; c = c->next)
			for (size_t i = 0; i < c->n && ok; i++)
				ok = ev_write(out, l->tid, &c->ev[i]) > 0;
		log_clear(l);
	}
	pthread_mutex_unlock(&mu);
	if (fflush(out) != 0)
		ok = false;
	return ok ? 0 : -EIO;
}

int
flowq_history_reset(void)
{
	if (!FLOWQ__HISTORY_ON)
		return -ENOTSUP;
	pthread_mutex_lock(&mu);
	for (struct hlog *l = logs; l; l = l->next)
		log_clear(l);
	atomic_store_explicit(&dropped_nolog, 0, memory_order_relaxed);
	pthread_mutex_unlock(&mu);
	return 0;
}

void
flowq__history_dump_env(void)
{
	const char *path = getenv("FLOWQ_HISTORY_FILE");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	(void)flowq_history_dump(f);
	fclose(f);
}
