/*
 * Completion port: an MPSC of finished requests plus an eventfd (API in
 * flowq/flowq.h, internals and synchronization table in core/port.h).
 *
 * Algorithm
 * ---------
 * The pattern of nginx's thread-pool done list with ngx_notify() and of
 * Linux's llist_add() + wake-up: posters append to a lock-free list and
 * signal only on the empty -> non-empty transition; the consumer clears
 * the signal before it takes the list, so a poster that finds the list
 * empty after the consumer emptied it signals again.
 *
 *   post(req)   [P1] e = flowq_mpsc_enqueue(q, &req->priv.link)
 *               [P2] if e (q was empty): write(fd, 1)
 *
 *   drain(max)  [R]  read(fd)                 clears the counter; EAGAIN ok
 *               [D]  n = dequeue_batch(...)   in chunks, up to max
 *               if n == max: return           the caller must call again
 *               [C]  if !flowq_mpsc_empty(q): [W'] write(fd, 1)
 *               return n
 *
 * [C]/[W'] cover the one case the MPSC leaves to its consumer (flowq/mpsc.h,
 * "Wake-ups"): a batch that stops short because a poster is between its
 * exchange and its link. That poster's enqueue returns false, so nobody
 * would signal, and the loop would sleep on a non-empty port. [W'] makes
 * the loop come back instead.
 *
 * No lost wake-up
 * ---------------
 * The loop sleeps (epoll_wait on the fd) only after a drain that returned
 * less than max (the documented contract). Claim: if, when such a drain
 * returns, some item x has been posted ([P1] linearized: x's exchange on the
 * tail) and not returned by any drain, then the eventfd counter is made
 * non-zero by a write that comes after this drain's [R] in the eventfd's
 * own order. The loop's epoll therefore reports the fd readable after it
 * goes to sleep (or at once if the write already happened).
 *
 * Before the first drain the counter is 0 and the queue empty, as after a
 * drain that emptied it, so the claim covers the first sleep too. An item
 * posted after the drain returned either finds the port empty, and then its
 * own [P2] follows [R] in real time, or joins items the claim covers.
 *
 * Proof. Look at [C], which reads the cursor and the dummy's link, then tail
 * (flowq_mpsc_empty()).
 *  (a) [C] finds the queue non-empty: the drain itself writes [W'], after
 *      its [R] in program order.
 *  (b) [C] finds the queue empty: its load of tail read &head. Let H be that
 *      value of tail, i.e. the write of &head in tail's modification order
 *      that the load returned (the initial value, or a consumer's [D3] CAS
 *      in queues/mpsc.c). x's exchange cannot precede H in that order: only
 *      a [D3] that takes the last item writes &head, and it succeeds only
 *      when tail is the node being taken, so every item whose exchange
 *      precedes that [D3] has been returned, and x has not. So x's exchange
 *      follows H, and the first exchange after H (x's, or an earlier
 *      poster's y) read &head: its enqueue returned true, and its poster
 *      writes [P2]. (The write after H is an exchange: a [D3] CAS expects
 *      a node, so it fails on &head and writes nothing.) Suppose that [P2]
 *      were ordered before this drain's [R] in the eventfd.
 *      eventfd_read() and eventfd_write() take the same spinlock
 *      (fs/eventfd.c), so the poster's exchange happens-before its
 *      [P2], which happens-before [R], which is sequenced before [C]: by
 *      write-read coherence [C]'s load of tail could not then return H,
 *      which precedes that exchange. Contradiction: the [P2] comes after
 *      [R].
 * Both cases give a write after [R], and [R] is the last read of the
 * counter before the loop sleeps. The argument needs no ordering from the
 * relaxed loads of [C] beyond coherence, and holds for level-triggered
 * epoll; it holds for EPOLLET too, since every write it relies on follows
 * the drain's read and so raises a new edge.
 *
 * The converse (no spurious wake-up) is not guaranteed and does not need
 * to be: a poster whose [P2] lands after a drain already took its item, or
 * a [W'] racing a poster's [P2], leaves the fd readable with nothing (or
 * less than one batch) to take. The next drain returns short and the loop
 * sleeps again: at most one extra epoll round per such race.
 *
 * Ordering guarantees
 * -------------------
 * O1. Everything the poster wrote before [P1] (the request's outcome, the
 *     host's fields) is visible to the loop once a drain returns the
 *     request: [P1] is the MPSC's [E2] release, paired with the acquire
 *     loads [D1]/[D2] of flowq_mpsc_dequeue_batch() (queues/mpsc.c, O2).
 * O2. The eventfd carries no data and orders nothing the algorithm relies
 *     on for data; it is only the "look again" signal proved above. (The
 *     kernel's spinlock does order [P2] before [R] when [R] sees it; the
 *     proof uses exactly that edge, case (b).)
 * O3. [C] uses relaxed loads (flowq_mpsc_empty()); case (b) needs only
 *     coherence on tail, and case (a) needs nothing.
 *
 * Progress
 * --------
 * post: wait-free, one exchange, two stores, and on the empty -> non-empty
 * transition one non-blocking write(2). drain: wait-free, bounded by max.
 *
 * Limits
 * ------
 * While a poster stays preempted between its exchange and its link, every
 * drain stops at its item and writes [W'], so the loop spins through
 * epoll_wait (read, write, wake) until that poster runs again, typically
 * within one scheduler time slice. Items posted after the stopped one wait
 * behind it (the MPSC's FIFO). Posters are the engine's dispatchers, which
 * do not sleep inside a post.
 */
#define _POSIX_C_SOURCE 200809L /* read(2), write(2), close(2) under -std=c11 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc_internal.h"
#include "port.h"

/* Requests dequeued per flowq_mpsc_dequeue_batch() call: the nodes go
 * through a stack buffer (the caller's array holds struct flowq_req
 * pointers, another type). */
#define PORT_CHUNK 64u

/*
 * The eventfd failed in a way that only a host bug explains (EBADF: the
 * host closed the port's fd, or destroyed the port while a post was in
 * progress). Continuing would silently lose wake-ups, so stop loudly, as
 * flowq__req_finalize() does for engine bugs.
 */
static void
port_die(const char *what, int err)
{
	fprintf(stderr, "flowq: completion port: %s: %s\n", what, strerror(err));
	abort();
}

/* [P2] or [W']: add 1 to the eventfd counter, making the fd readable. */
static void
port_signal(const struct flowq_port *port)
{
	uint64_t one = 1;

	for (;;) {
		if (write(port->fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return;
		/*
		 * EAGAIN: the counter is at its maximum (2^64 - 2), so the fd
		 * is readable already, which is all a signal is for. EINTR
		 * cannot happen on a non-blocking eventfd but costs nothing to
		 * handle.
		 */
		if (errno == EAGAIN)
			return;
		if (errno != EINTR)
			port_die("eventfd write", errno);
	}
}

/* [R]: reset the eventfd counter to 0; an already clear fd is fine. */
static void
port_clear(const struct flowq_port *port)
{
	uint64_t v;

	for (;;) {
		if (read(port->fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			return;
		if (errno == EAGAIN)
			return;
		if (errno != EINTR)
			port_die("eventfd read", errno);
	}
}

/*
 * The completion that flowq_req_set_port() installs. The engine calls it
 * once it is done with @req (its priv.link is free), on a dispatcher.
 */
static void
port_post(struct flowq_req *req, void *arg)
{
	struct flowq_port *port = arg;

	/*
	 * [P1] then [P2]. After the enqueue @req belongs to the loop (a drain
	 * may already have returned it and the host freed it): only @port is
	 * used from here on, and it came from @arg, not from @req.
	 */
	if (flowq_mpsc_enqueue(&port->q, &req->priv.link))
		port_signal(port);
}

int
flowq__port_create(const struct flowq_allocator *a, struct flowq_port **r_port)
{
	struct flowq_port *port;
	int fd;

	if (!flowq__allocator_valid(a) || r_port == NULL)
		return -EINVAL;
	/* Allocate first: undoing an allocation cannot fail, and no fd is
	 * ever open on the -ENOMEM path. */
	port = flowq__alloc(a, sizeof(*port), _Alignof(struct flowq_port));
	if (port == NULL)
		return -ENOMEM;
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		flowq__free(a, port, sizeof(*port), _Alignof(struct flowq_port));
		return -err;
	}
	flowq_mpsc_init(&port->q);
	port->fd = fd;
	port->allocator = a;
	*r_port = port;
	return 0;
}

int
flowq_port_fd(const struct flowq_port *port)
{
	if (port == NULL)
		return -EINVAL;
	return port->fd;
}

size_t
flowq_port_drain(struct flowq_port *port, struct flowq_req **r_reqs, size_t max)
{
	struct flowq_mpsc_node *nodes[PORT_CHUNK];
	size_t taken = 0;

	/*
	 * max == 0 must not clear the fd: the call takes nothing, so clearing
	 * would drop the signal for requests that are waiting.
	 */
	if (port == NULL || r_reqs == NULL || max == 0)
		return 0;
	port_clear(port); /* [R] */
	while (taken < max) {
		size_t want = max - taken < PORT_CHUNK ? max - taken : PORT_CHUNK;
		size_t got = flowq_mpsc_dequeue_batch(&port->q, nodes, want); /* [D] */

		for (size_t i = 0; i < got; i++)
			r_reqs[taken + i] =
				(struct flowq_req *)((char *)nodes[i] -
						     offsetof(struct flowq_req,
							      priv.link));
		taken += got;
		if (got < want) {
			/* [C] and [W']: see "No lost wake-up" above. */
			if (!flowq_mpsc_empty(&port->q))
				port_signal(port);
			return taken;
		}
	}
	/* taken == max: the caller calls again (flowq/flowq.h). */
	return taken;
}

int
flowq_port_destroy(struct flowq_port *port)
{
	const struct flowq_allocator *a;

	if (port == NULL)
		return 0;
	/*
	 * A non-empty port holds requests whose completions the host has not
	 * seen (their memory is the host's): refuse, and keep the port whole,
	 * so that the host can still drain it.
	 */
	if (!flowq_mpsc_empty(&port->q))
		return -EBUSY;
	a = port->allocator;
	/* close() of an eventfd cannot fail in a way we could act on: the
	 * descriptor is released whatever it returns. */
	(void)close(port->fd);
	flowq__free(a, port, sizeof(*port), _Alignof(struct flowq_port));
	return 0;
}

void
flowq_req_set_port(struct flowq_req *req, struct flowq_port *port)
{
	if (req == NULL)
		return;
	/*
	 * A NULL port leaves no completion at all, so flowq_submit() rejects
	 * the request with -EINVAL (CAUSE_INVALID_REQUEST) instead of a post
	 * crashing on the dispatcher later.
	 */
	req->complete = port != NULL ? port_post : NULL;
	req->arg = port;
}
