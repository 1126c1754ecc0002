/*
 * Internal: the completion port (public API in flowq/flowq.h, "Completion
 * ports"). A port hands finished requests from the dispatchers that decide
 * their outcomes to the one host event loop that owns the port, without a
 * lock and without a system call per request.
 *
 * A port is a flowq_mpsc of finished requests (linked through
 * req->priv.link, which the engine no longer uses once it calls the
 * completion) plus an eventfd that the loop adds to its epoll set. A post
 * (the completion function that flowq_req_set_port() installs) enqueues the
 * request and writes the eventfd only when its enqueue found the port empty;
 * flowq_port_drain() clears the eventfd, then dequeues. core/port.c proves
 * that this loses no wake-up.
 *
 * Synchronization table ("-": no outside synchronization needed between two
 * concurrent calls; "X": the caller must serialize the pair):
 *
 *                 post   drain   fd   destroy  set_port
 *      post        -       -      -      X        -
 *      drain       -       X      -      X        -
 *      fd          -       -      -      X        -
 *      destroy     X       X      X      X        X
 *      set_port    -       -      -      X        -
 *
 * "post" is req->complete(req, req->arg) after flowq_req_set_port(): the
 * engine calls it on a dispatcher (any number of dispatchers may post to one
 * port at once). set_port only writes the request's own fields.
 *
 * Ordering: whatever the posting thread wrote before the post (the outcome
 * in the request's state word, the host's own fields) is visible to the
 * thread whose drain returns the request (the MPSC's release/acquire).
 * Nothing is ordered by the eventfd: it only says "look again".
 *
 * Progress: post is wait-free (one exchange, two stores, and one
 * non-blocking eventfd write on the empty -> non-empty transition only).
 * Drain is wait-free (one non-blocking read, at most max/PORT_CHUNK + 1
 * dequeue batches, at most one non-blocking write).
 *
 * Lifetime: the port borrows each request from its post until a drain
 * returns it. Destroy the port only once it is empty and no request that
 * names it can still be posted (after flowq_engine_destroy(), and after
 * the last drain). An empty port is not enough while the engine runs: a
 * post finishes its eventfd write after its enqueue, so a loop can drain
 * the request and destroy the port while that write is still to come, and
 * the write would then hit a closed, or reused, descriptor.
 */
#ifndef FLOWQ_CORE_PORT_H
#define FLOWQ_CORE_PORT_H

#include <flowq/alloc.h>
#include <flowq/common.h>
#include <flowq/flowq.h>
#include <flowq/mpsc.h>

/*
 * The port. Tests see the layout (to simulate a poster stopped between its
 * exchange and its link); the engine needs only flowq__port_create().
 */
struct flowq_port {
	/*
	 * Finished requests. Its consumer line is written by the draining
	 * loop, its producer line by posters (see flowq/mpsc.h).
	 */
	struct flowq_mpsc q;
	/*
	 * Read-only after create, read by posters (fd, on empty -> non-empty)
	 * and by the loop. On a line of its own, after the MPSC's two lines,
	 * so that reading the fd never pulls a line that another thread is
	 * writing.
	 */
	FLOWQ_ALIGNAS(FLOWQ_CACHE_LINE) int fd;
	const struct flowq_allocator *allocator;
};

FLOWQ_STATIC_ASSERT(sizeof(struct flowq_port) == 3 * FLOWQ_CACHE_LINE,
		    "flowq_port: the MPSC's two lines plus one read-only line");

/**
 * Create an empty completion port whose memory comes from @p a. The public
 * flowq_port_create(e, r_port) is this with the engine's allocator.
 *
 * @param a       the allocator (both callbacks set); must outlive the port.
 * @param r_port  receives the port; untouched on error.
 * @return 0; -EINVAL if @p a or @p r_port is NULL or @p a lacks a
 *         callback; -ENOMEM if the allocation failed; -EMFILE or -ENFILE
 *         (or another -errno of eventfd(2), e.g. -ENODEV) if no eventfd
 *         could be made. Nothing is left allocated or open on error.
 *
 * Context: any thread. Ordering: none; hand the port to the loop that
 * drains it and to the threads that set it on requests before they use it
 * (e.g. before flowq_submit(), which orders the request's fields).
 * Progress: blocking (allocates; one system call).
 */
int
flowq__port_create(const struct flowq_allocator *a, struct flowq_port **r_port);

#endif /* FLOWQ_CORE_PORT_H */
