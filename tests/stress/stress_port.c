/*
 * stress_port: P poster threads -> 1 event loop on one completion port.
 *
 *   stress_port POSTERS [PER_POSTER [SEED]]    (defaults: 200000, SEED 1)
 *
 * Each poster does, for each of its requests, what the engine's dispatcher
 * does when it delivers a completion to a port: flowq_req_set_port(), then
 * req->complete(req, req->arg). It writes its poster id, sequence number
 * and a check word into the request's container first, so the loop's reads
 * of them test the port's release/acquire hand-off (a missing edge is a
 * TSan report). Posters pause at random so the port keeps emptying and
 * refilling: many empty -> non-empty transitions, each a race between a
 * post's eventfd write and the loop's drain.
 *
 * The loop is a real event loop: it sleeps in epoll_wait() on
 * flowq_port_fd() (level-triggered) and, woken, drains with a random max
 * until a drain returns less than max (the documented contract), sometimes
 * pausing so that a backlog builds. It never polls the port without being
 * woken, so a lost wake-up leaves it asleep with requests outstanding:
 * epoll_wait() has a 5 s timeout, and a timeout while requests are
 * outstanding is a violation (a live run never idles that long: posters
 * pause for microseconds).
 *
 * Checks (each failure counts one violation and is described on stderr):
 *  - no lost wake-up (above);
 *  - conservation: every request is drained exactly once, nothing else is
 *    ever returned, and the port is empty at the end (a final drain
 *    returns 0 and the MPSC is empty);
 *  - payload: the check word matches poster and seq (no torn or stale
 *    request);
 *  - per-poster FIFO: poster p's requests leave in seq order;
 *  - a drain never returns more than max.
 *
 * Output: exactly one line on stdout,
 *   SUMMARY stress_port posters=P items=N violations=V seconds=S
 * (counters on stderr); the exit status is 1 if V > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
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
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <flowq/flowq.h>

#include "port.h"
#include "stress_soak.h"
#include "test_util.h"

#define PROG            "stress_port"
#define MAX_POSTERS     64
#define MAX_BATCH       256
#define WAKE_TIMEOUT_MS 5000

struct item {
	struct flowq_req req;
	uint32_t poster;
	uint32_t seq;
	uint64_t check;
};

struct poster {
	pthread_t thread;
	uint32_t id;
	uint32_t count;
	struct item *items;
	uint64_t rng;
};

static struct flowq_port *port;
static pthread_barrier_t start;

static uint64_t
check_word(uint32_t poster, uint32_t seq)
{
	uint64_t s = ((uint64_t)poster << 32 | seq) ^ 0x2545f4914f6cdd1dull;

	return test_rng_next(&s);
}

/* A short pause without a system call. */
static void
spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++) {
	}
}

static void
pause_ns(long ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};

	nanosleep(&ts, NULL);
}

static void *
poster_main(void *arg)
{
	struct poster *p = arg;
	uint64_t burst = 1 + test_rng_next(&p->rng) % 64;

	pthread_barrier_wait(&start);
	for (uint32_t i = 0; i < p->count; i++) {
		struct item *it = &p->items[i];

		flowq_req_init(&it->req);
		flowq_req_set_port(&it->req, port);
		/* Plain writes, published by the post's release (port.c, O1). */
		it->poster = p->id;
		it->seq = i;
		it->check = check_word(p->id, i);
		/* What the dispatcher does to deliver a completion. */
		it->req.complete(&it->req, it->req.arg);
		if (--burst == 0) {
			/*
			 * Short bursts let the loop empty the port (so the next
			 * post is an empty -> non-empty transition racing a
			 * drain); a sleep lets the loop go back to epoll_wait.
			 */
			uint64_t r = test_rng_next(&p->rng);

			burst = 1 + r % (r & (1u << 21) ? 4 : 256);
			if ((r >> 22) % 8 == 0)
				pause_ns((long)((r >> 32) % 50000));
			else if (r & (1u << 20))
				sched_yield();
			else
				spin((unsigned)((r >> 40) % 4096));
		}
	}
	return NULL;
}

struct loop {
	struct item *pool;
	uint64_t total;
	unsigned nposters;
	uint32_t per_poster;
	uint8_t *seen;
	uint32_t *next_seq;
	uint64_t consumed;
	uint64_t wakeups;     /* epoll_wait returned the fd */
	uint64_t empty_wakes; /* ... and the first drain took nothing */
	uint64_t drains;
	uint64_t full_drains; /* returned max: called again at once */
	uint64_t gaps;        /* short drain on a non-empty port (re-armed) */
	uint64_t rng;
};

static void
take(struct loop *l, struct flowq_req *req)
{
	uintptr_t base = (uintptr_t)l->pool, addr = (uintptr_t)req, off;
	struct item *it;
	uint64_t idx;

	if (addr < base || addr >= base + l->total * sizeof(struct item)) {
		test_violation(PROG, "drained %p, not a request of the pool",
			       (void *)req);
		return;
	}
	off = addr - base - offsetof(struct item, req);
	if (off % sizeof(struct item) != 0) {
		test_violation(PROG, "drained %p, misaligned within the pool",
			       (void *)req);
		return;
	}
	idx = off / sizeof(struct item);
	it = &l->pool[idx];
	if (l->seen[idx]++ != 0) {
		test_violation(PROG, "request %" PRIu64 " drained twice", idx);
		return;
	}
	l->consumed++;
	if (it->poster >= l->nposters || it->check != check_word(it->poster, it->seq) ||
	    idx != (uint64_t)it->poster * l->per_poster + it->seq) {
		test_violation(PROG,
			       "request %" PRIu64 ": bad payload (poster %" PRIu32
			       " seq %" PRIu32 ")",
			       idx, it->poster, it->seq);
		return;
	}
	if (it->seq != l->next_seq[it->poster])
		test_violation(PROG,
			       "poster %" PRIu32 ": seq %" PRIu32
			       " drained, expected %" PRIu32,
			       it->poster, it->seq, l->next_seq[it->poster]);
	l->next_seq[it->poster] = it->seq + 1;
}

/* Drain until a drain returns less than its max: then, and only then, the
 * loop may sleep (flowq_port_drain() contract). */
static void
drain_all(struct loop *l)
{
	static struct flowq_req *buf[MAX_BATCH + 1];
	bool first = true;

	for (;;) {
		uint64_t r = test_rng_next(&l->rng);
		size_t max = r % 4 == 0 ? 1 + (r >> 8) % 4 : 1 + (r >> 8) % MAX_BATCH;
		size_t n;

		buf[max] = NULL;
		n = flowq_port_drain(port, buf, max);
		l->drains++;
		if (n > max || buf[max] != NULL) {
			test_violation(PROG, "drain of %zu returned %zu or wrote past it",
				       max, n);
			return;
		}
		if (first && n == 0)
			l->empty_wakes++;
		first = false;
		for (size_t i = 0; i < n; i++)
			take(l, buf[i]);
		if (n < max) {
			/* Consumer-side look (the loop is the MPSC's consumer). */
			if (!flowq_mpsc_empty(&port->q))
				l->gaps++;
			return;
		}
		l->full_drains++;
		/* Now and then a slow loop: posts pile up into full batches. */
		if ((r >> 40) % 64 == 0)
			pause_ns((long)((r >> 48) % 20000));
	}
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, flowq_port_fd(port), &ev) != 0) {
		test_violation(PROG, "epoll setup: %s", strerror(errno));
		return NULL;
	}
	pthread_barrier_wait(&start);
	while (l->consumed < l->total) {
		int n = epoll_wait(ep, &ev, 1, WAKE_TIMEOUT_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			test_violation(PROG, "epoll_wait: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			test_violation(PROG,
				       "lost wake-up: no event for %d ms with %" PRIu64
				       " of %" PRIu64 " requests outstanding (port %s)",
				       WAKE_TIMEOUT_MS, l->total - l->consumed, l->total,
				       flowq_mpsc_empty(&port->q) ? "empty"
								  : "NOT empty");
			break;
		}
		l->wakeups++;
		drain_all(l);
	}
	close(ep);
	return NULL;
}

/* The workload, once (stress_soak.h: main loops it in soak mode). */
static int
run(int argc, char **argv)
{
	static struct poster posters[MAX_POSTERS];
	struct loop l = {0};
	struct flowq_req *rest[4];
	pthread_t loop_thread;
	unsigned np;
	uint64_t per = 200000, seed = 1;
	double t0, secs;
	int rc;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: " PROG " POSTERS [PER_POSTER [SEED]]\n");
		return 2;
	}
	np = (unsigned)test_parse_ulong(PROG, argv[1], "poster count", 1, MAX_POSTERS);
	if (argc > 2)
		per = test_parse_ulong(PROG, argv[2], "requests per poster", 1,
				       UINT32_MAX);
	if (argc > 3)
		seed = test_parse_ulong(PROG, argv[3], "seed", 0, ~0ul);

	memset(posters, 0, sizeof(posters)); /* a clean slate for each soak iteration */
	l.per_poster = (uint32_t)per;
	l.total = per * np;
	l.nposters = np;
	l.pool = calloc(l.total, sizeof(*l.pool));
	l.seen = calloc(l.total, 1);
	l.next_seq = calloc(np, sizeof(*l.next_seq));
	if (l.pool == NULL || l.seen == NULL || l.next_seq == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return 2;
	}
	l.rng = seed;
	rc = flowq__port_create(flowq_allocator_libc(), &port);
	if (rc != 0) {
		fprintf(stderr, PROG ": port create: %d\n", rc);
		return 2;
	}
	fprintf(stderr, PROG ": posters=%u items=%" PRIu64 " seed=%" PRIu64 "\n", np,
		l.total, seed);
	if (pthread_barrier_init(&start, NULL, np + 2) != 0) {
		fprintf(stderr, PROG ": pthread_barrier_init failed\n");
		return 2;
	}
	if (pthread_create(&loop_thread, NULL, loop_main, &l) != 0) {
		fprintf(stderr, PROG ": pthread_create failed\n");
		return 2;
	}
	for (unsigned p = 0; p < np; p++) {
		posters[p].id = p;
		posters[p].count = l.per_poster;
		posters[p].items = l.pool + (size_t)p * l.per_poster;
		posters[p].rng = seed * 1000003u + p + 1;
		if (pthread_create(&posters[p].thread, NULL, poster_main, &posters[p]) !=
		    0) {
			fprintf(stderr, PROG ": pthread_create failed\n");
			return 2;
		}
	}
	pthread_barrier_wait(&start);
	t0 = test_now_seconds();
	for (unsigned p = 0; p < np; p++)
		pthread_join(posters[p].thread, NULL);
	pthread_join(loop_thread, NULL);
	secs = test_now_seconds() - t0;

	/* Quiescent: the loop stopped only once everything was drained (or on
	 * a violation already counted). */
	if (l.consumed == l.total) {
		if (flowq_port_drain(port, rest, 4) != 0)
			test_violation(PROG, "requests left in the port at the end");
		if (!flowq_mpsc_empty(&port->q))
			test_violation(PROG, "port not empty at the end");
	}
	if (l.consumed != l.total)
		test_violation(PROG, "drained %" PRIu64 " of %" PRIu64, l.consumed,
			       l.total);
	for (uint64_t i = 0; i < l.total && l.consumed == l.total; i++) {
		if (l.seen[i] != 1) {
			test_violation(PROG, "request %" PRIu64 " drained %u times", i,
				       l.seen[i]);
			break;
		}
	}
	for (unsigned p = 0; p < np && l.consumed == l.total; p++)
		if (l.next_seq[p] != l.per_poster)
			test_violation(PROG,
				       "poster %u: last seq %" PRIu32 ", want %" PRIu32,
				       p, l.next_seq[p], l.per_poster);

	fprintf(stderr,
		PROG ": wakeups=%" PRIu64 " empty_wakes=%" PRIu64 " drains=%" PRIu64
		     " full_drains=%" PRIu64 " gaps=%" PRIu64 "\n",
		l.wakeups, l.empty_wakes, l.drains, l.full_drains, l.gaps);
	stress_soak_count("ops", l.total);
	printf("SUMMARY " PROG " posters=%u items=%" PRIu64
	       " violations=%lu seconds=%.3f\n",
	       np, l.total, atomic_load(test_violations()), secs);
	/* The port can be destroyed only empty; after a violation it may not
	 * be, and the exit status already says so. */
	if (atomic_load(test_violations()) == 0)
		flowq_port_destroy(port);
	pthread_barrier_destroy(&start);
	free(l.pool);
	free(l.seen);
	free(l.next_seq);
	if (atomic_load(test_violations()) != 0)
		return 1; /* any violation fails the test */
	return 0;
}

int
main(int argc, char **argv)
{
	return stress_soak_main("stress_port", argc, argv, run, test_violations());
}
