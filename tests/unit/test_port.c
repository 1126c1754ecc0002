/*
 * Unit tests for core/port.c: the completion port.
 *
 * The engine posts a finished request by calling req->complete(req,
 * req->arg) on its dispatcher; post() below does exactly that after
 * flowq_req_set_port(), so these tests drive the port the way the engine
 * will. Single-threaded: they pin down the contract (when the eventfd is
 * written and cleared, FIFO order, max, the short-batch re-arm, error
 * paths). Concurrency and lost wake-ups are tests/stress/stress_port.c's.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <flowq/flowq.h>

#include "port.h"

static struct flowq_port *port;

static void
setup(void)
{
	cr_assert_eq(flowq__port_create(flowq_allocator_libc(), &port), 0);
}

static void
teardown(void)
{
	/* Every test leaves the port empty: destroy checks that. */
	cr_assert_eq(flowq_port_destroy(port), 0, "the test left the port non-empty");
}

TestSuite(port, .init = setup, .fini = teardown);
TestSuite(port_create);

/* What the engine's dispatcher does once it has decided @r's outcome. */
static void
post(struct flowq_req *r)
{
	r->complete(r, r->arg);
}

static void
init_reqs(struct flowq_req *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		flowq_req_init(&r[i]);
		flowq_req_set_port(&r[i], port);
	}
}

/* Whether the port's fd is readable now (no waiting). */
static bool
fd_readable(void)
{
	struct pollfd p = {.fd = flowq_port_fd(port), .events = POLLIN};
	int rc = poll(&p, 1, 0);

	cr_assert_geq(rc, 0, "poll: %s", strerror(errno));
	return rc == 1 && (p.revents & POLLIN);
}

/* Read (and so reset) the eventfd counter: how many times it was written
 * since it was last cleared. 0 if it was clear. */
static uint64_t
fd_take_count(void)
{
	uint64_t v = 0;
	ssize_t n = read(flowq_port_fd(port), &v, sizeof(v));

	if (n < 0) {
		cr_assert_eq(errno, EAGAIN, "read: %s", strerror(errno));
		return 0;
	}
	cr_assert_eq(n, (ssize_t)sizeof(v));
	return v;
}

/* Open file descriptors of this process. */
static unsigned
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	cr_assert_not_null(d, "/proc/self/fd: %s", strerror(errno));
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	/* ".", ".." and the directory's own descriptor. */
	return n - 3;
}

Test(port, fd_is_a_nonblocking_cloexec_eventfd)
{
	int fd = flowq_port_fd(port);

	cr_assert_geq(fd, 0);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_not(fd_readable(), "a new port is quiet");
}

Test(port, set_port_installs_the_port_completion)
{
	struct flowq_req r;

	flowq_req_init(&r);
	flowq_req_set_port(&r, port);
	cr_assert_not_null(r.complete);
	cr_assert_eq(r.arg, port);
}

Test(port, first_post_writes_the_fd_once_and_later_posts_do_not)
{
	struct flowq_req r[3], *out[4];

	init_reqs(r, 3);
	post(&r[0]);
	cr_assert(fd_readable(), "a post to an empty port makes the fd readable");
	post(&r[1]);
	post(&r[2]);
	/* Three posts, one empty -> non-empty transition: one write. */
	cr_assert_eq(fd_take_count(), 1);
	/* Clearing the fd behind the port's back loses no request. */
	cr_assert_eq(flowq_port_drain(port, out, 4), 3);
	cr_assert_not(fd_readable());
}

Test(port, drain_is_fifo)
{
	struct flowq_req r[10], *out[16];

	init_reqs(r, 10);
	for (size_t i = 0; i < 10; i++)
		post(&r[i]);
	memset(out, 0, sizeof(out));
	cr_assert_eq(flowq_port_drain(port, out, 16), 10);
	for (size_t i = 0; i < 10; i++)
		cr_assert_eq(out[i], &r[i], "slot %zu", i);
	cr_assert_null(out[10], "nothing written past the count");
}

Test(port, drain_takes_at_most_max)
{
	struct flowq_req r[10], *out[5];

	init_reqs(r, 10);
	for (size_t i = 0; i < 10; i++)
		post(&r[i]);
	out[4] = NULL;
	cr_assert_eq(flowq_port_drain(port, out, 4), 4);
	cr_assert_null(out[4], "max respected");
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(out[i], &r[i]);
	/*
	 * A full batch clears the fd although requests remain: the contract
	 * is "call again when the count equals max" (flowq/flowq.h).
	 */
	cr_assert_not(fd_readable());
	cr_assert_eq(flowq_port_drain(port, out, 4), 4);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(out[i], &r[4 + i]);
	cr_assert_eq(flowq_port_drain(port, out, 4), 2);
	cr_assert_eq(out[0], &r[8]);
	cr_assert_eq(out[1], &r[9]);
	cr_assert_not(fd_readable(), "a short drain of an empty port leaves it quiet");
}

Test(port, drain_more_than_one_chunk)
{
	/* More than the port's internal chunk (64), to cover the loop. */
	enum { N = 200 };
	static struct flowq_req r[N];
	static struct flowq_req *out[N + 1];

	init_reqs(r, N);
	for (size_t i = 0; i < N; i++)
		post(&r[i]);
	cr_assert_eq(flowq_port_drain(port, out, 150), 150);
	cr_assert_eq(flowq_port_drain(port, out + 150, N + 1 - 150), 50);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(out[i], &r[i], "slot %zu", i);
}

Test(port, drain_clears_the_fd)
{
	struct flowq_req r, *out[2];

	init_reqs(&r, 1);
	post(&r);
	cr_assert(fd_readable());
	cr_assert_eq(flowq_port_drain(port, out, 2), 1);
	cr_assert_not(fd_readable());
	cr_assert_eq(flowq_port_drain(port, out, 2), 0, "empty port, fd clear: 0");
	cr_assert_not(fd_readable());
}

Test(port, post_after_drain_rearms)
{
	struct flowq_req r[2], *out[2];

	init_reqs(r, 2);
	post(&r[0]);
	cr_assert_eq(flowq_port_drain(port, out, 2), 1);
	cr_assert_not(fd_readable());
	post(&r[1]);
	cr_assert_eq(fd_take_count(), 1, "the new empty -> non-empty transition writes");
	cr_assert_eq(flowq_port_drain(port, out, 2), 1);
	cr_assert_eq(out[0], &r[1]);
}

Test(port, drain_max_zero_keeps_the_signal)
{
	struct flowq_req r, *out[1];

	init_reqs(&r, 1);
	post(&r);
	cr_assert_eq(flowq_port_drain(port, out, 0), 0);
	cr_assert(fd_readable(), "a call that takes nothing must not clear the fd");
	cr_assert_eq(flowq_port_drain(port, out, 1), 1);
}

Test(port, request_can_be_reposted_after_drain)
{
	struct flowq_req r, *out[2];

	init_reqs(&r, 1);
	for (int round = 0; round < 3; round++) {
		flowq_req_init(&r);
		flowq_req_set_port(&r, port);
		post(&r);
		cr_assert_eq(flowq_port_drain(port, out, 2), 1);
		cr_assert_eq(out[0], &r);
	}
}

/*
 * A poster stopped between its exchange and its link (flowq/mpsc.h): the
 * drain cannot take the item before the gap, its batch stops short on a
 * non-empty port, and the stopped poster's enqueue returned false, so it
 * will not signal. The drain must write the fd itself ([W'] in
 * core/port.c), or the loop would sleep on a non-empty port.
 */
Test(port, short_batch_on_a_gap_rearms_the_fd)
{
	struct flowq_req a, b, *out[4];
	struct flowq_mpsc_node *prev;

	init_reqs(&a, 1);
	init_reqs(&b, 1);
	post(&a);
	/* b's poster: [E0] and [E1] of queues/mpsc.c, then "preempted". */
	atomic_store_explicit(&b.priv.link.next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&port->q.tail, &b.priv.link,
					memory_order_acq_rel);
	cr_assert_eq(prev, &a.priv.link, "b's exchange found a: it would return false");

	cr_assert_eq(flowq_port_drain(port, out, 4), 0, "a waits for b's link");
	cr_assert(fd_readable(), "the drain re-armed the fd for the non-empty port");
	cr_assert_eq(fd_take_count(), 1);
	/* Still stuck: every drain re-arms. */
	cr_assert_eq(flowq_port_drain(port, out, 4), 0);
	cr_assert(fd_readable());

	/* b's poster runs again: [E2]. */
	atomic_store_explicit(&prev->next, &b.priv.link, memory_order_release);
	cr_assert_eq(flowq_port_drain(port, out, 4), 2);
	cr_assert_eq(out[0], &a);
	cr_assert_eq(out[1], &b);
	cr_assert_not(fd_readable(), "drained empty: quiet again");
}

/* The same gap behind items that can be taken: they come out, then the
 * batch stops short and re-arms. */
Test(port, short_batch_after_some_items_rearms_the_fd)
{
	struct flowq_req r[3], b, *out[8];
	struct flowq_mpsc_node *prev;

	init_reqs(r, 3);
	init_reqs(&b, 1);
	for (size_t i = 0; i < 3; i++)
		post(&r[i]);
	atomic_store_explicit(&b.priv.link.next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&port->q.tail, &b.priv.link,
					memory_order_acq_rel);
	cr_assert_eq(flowq_port_drain(port, out, 8), 2,
		     "r0 and r1; r2 waits for b's link");
	cr_assert_eq(out[0], &r[0]);
	cr_assert_eq(out[1], &r[1]);
	cr_assert(fd_readable());
	atomic_store_explicit(&prev->next, &b.priv.link, memory_order_release);
	cr_assert_eq(flowq_port_drain(port, out, 8), 2);
	cr_assert_eq(out[0], &r[2]);
	cr_assert_eq(out[1], &b);
}

Test(port, null_arguments)
{
	struct flowq_req r, *out[1];

	cr_assert_eq(flowq_port_fd(NULL), -EINVAL);
	cr_assert_eq(flowq_port_drain(NULL, out, 1), 0);
	init_reqs(&r, 1);
	post(&r);
	cr_assert_eq(flowq_port_drain(port, NULL, 1), 0);
	cr_assert(fd_readable(), "a call with no output array must not clear the fd");
	cr_assert_eq(flowq_port_drain(port, out, 1), 1);
	flowq_port_destroy(NULL);       /* harmless */
	flowq_req_set_port(NULL, port); /* harmless */
}

/* A NULL port leaves the request without any completion, so flowq_submit()
 * rejects it (-EINVAL) rather than a post crashing later. */
Test(port, set_port_null_clears_the_completion)
{
	struct flowq_req r;

	flowq_req_init(&r);
	flowq_req_set_port(&r, port);
	flowq_req_set_port(&r, NULL);
	cr_assert_null(r.complete);
	cr_assert_null(r.arg);
}

/* A non-empty port is not destroyed (its request would be lost): -EBUSY,
 * and it still works; once drained it goes. */
Test(port, destroy_of_a_non_empty_port_is_refused)
{
	struct flowq_req r, *got[2];

	init_reqs(&r, 1);
	post(&r);
	cr_assert_eq(flowq_port_destroy(port), -EBUSY);
	cr_assert_eq(flowq_port_drain(port, got, 2), 1, "the request is still there");
	cr_assert_eq(got[0], &r);
	cr_assert_eq(flowq_port_destroy(port), 0);
	port = NULL;
	cr_assert_eq(flowq_port_destroy(NULL), 0);
}

/* A counter at its maximum (2^64 - 2: here written by the test; in a
 * real loop, that many posts never drained) refuses the post's write with
 * EAGAIN: the fd is readable already, which is all the write is for, so
 * the post goes on (core/port.c port_signal()), and the drain takes the
 * request and clears the fd. */
Test(port, a_counter_at_its_maximum_still_signals)
{
	struct flowq_req r, *got[2];
	uint64_t max = UINT64_MAX - 1;

	cr_assert_eq(write(flowq_port_fd(port), &max, sizeof(max)), (ssize_t)sizeof(max));
	init_reqs(&r, 1);
	post(&r); /* its write fails with EAGAIN */
	cr_assert(fd_readable());
	cr_assert_eq(flowq_port_drain(port, got, 2), 1);
	cr_assert_eq(got[0], &r);
	cr_assert_not(fd_readable(), "the drain read the counter back to 0");
}

/* The eventfd closed behind the port's back (a host bug): the next post
 * or drain cannot tell the loop about completions any more, so it aborts
 * with a message on stderr (flowq.h, "flowq never prints ..."). The
 * aborting paths of core/port.c (port_die()). */
Test(port_abort, a_post_to_a_closed_fd_aborts, .signal = SIGABRT)
{
	struct flowq_port *p = NULL;
	struct flowq_req r;

	cr_assert_eq(flowq__port_create(flowq_allocator_libc(), &p), 0);
	cr_assert_eq(close(flowq_port_fd(p)), 0);
	flowq_req_init(&r);
	flowq_req_set_port(&r, p);
	r.complete(&r, r.arg);
	cr_assert_fail("the post returned");
}

Test(port_abort, a_drain_of_a_closed_fd_aborts, .signal = SIGABRT)
{
	struct flowq_port *p = NULL;
	struct flowq_req *got[1];

	cr_assert_eq(flowq__port_create(flowq_allocator_libc(), &p), 0);
	cr_assert_eq(close(flowq_port_fd(p)), 0);
	(void)flowq_port_drain(p, got, 1);
	cr_assert_fail("the drain returned");
}

Test(port_create, null_arguments)
{
	struct flowq_port *p = NULL;
	struct flowq_allocator half = {.alloc = flowq_allocator_libc()->alloc};

	cr_assert_eq(flowq__port_create(NULL, &p), -EINVAL);
	cr_assert_eq(flowq__port_create(flowq_allocator_libc(), NULL), -EINVAL);
	cr_assert_eq(flowq__port_create(&half, &p), -EINVAL, "allocator without free");
	cr_assert_null(p, "untouched on error");
}

struct counting {
	unsigned allocs, frees;
	bool fail;
};

static void *
counting_alloc(size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->allocs++;
	return c->fail ? NULL : flowq_allocator_libc()->alloc(size, align, NULL);
}

static void
counting_free(void *p, size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;

	c->frees++;
	flowq_allocator_libc()->free(p, size, align, NULL);
}

Test(port_create, failing_allocator_gives_enomem_and_leaks_no_fd)
{
	struct counting c = {.fail = true};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq_port *p = NULL;
	unsigned before = count_open_fds();

	cr_assert_eq(flowq__port_create(&a, &p), -ENOMEM);
	cr_assert_null(p);
	cr_assert_eq(c.allocs, 1, "the allocator was asked");
	cr_assert_eq(count_open_fds(), before, "no eventfd left open");
}

Test(port_create, allocates_through_the_hook_and_destroy_frees_and_closes)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq_port *p = NULL;
	unsigned before = count_open_fds();

	cr_assert_eq(flowq__port_create(&a, &p), 0);
	cr_assert_eq((uintptr_t)p % FLOWQ_CACHE_LINE, 0, "cache-line aligned");
	cr_assert_eq(count_open_fds(), before + 1);
	flowq_port_destroy(p);
	cr_assert_eq(c.allocs, 1);
	cr_assert_eq(c.frees, 1);
	cr_assert_eq(count_open_fds(), before, "the eventfd is closed");
}

/* eventfd(2) fails: its errno comes back negated and the memory is freed. */
Test(port_create, no_fd_left_gives_emfile_and_frees)
{
	struct counting c = {0};
	struct flowq_allocator a = {counting_alloc, counting_free, &c};
	struct flowq_port *p = NULL;
	struct rlimit saved, low;
	int fd, rc;

	/* Lower the limit to the lowest free descriptor: no new fd fits. */
	fd = dup(0);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)fd;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0, "setrlimit: %s", strerror(errno));
	rc = flowq__port_create(&a, &p);
	/* Restore before asserting: Criterion may need descriptors to report. */
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);

	cr_assert_eq(rc, -EMFILE);
	cr_assert_null(p);
	cr_assert_eq(c.allocs, 1);
	cr_assert_eq(c.frees, 1, "the port's memory is given back");
}
