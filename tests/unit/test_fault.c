/*
 * Fault injection (core/fault.h), deterministic parts: the points are
 * compiled in and hit where documented, the random stall, and the
 * interleavings a hook can force. Built only with FLOWQ_FAULT_INJECTION=ON
 * (tools/test's ASan tree). The stress side is tests/stress/stress_faults.c.
 *
 * cap_steal_surplus_wakes_the_gate_waiter is the regression test of the
 * hidden-credit bug (core/capacity.c, H1): a gate reserve that stole more
 * than it needed held the surplus out of every counter without reporting
 * it, so a dispatcher whose reserve failed in that window slept with free
 * capacity until the next release. It also checks where that wake is made:
 * after the completion of the request the reserve was for (core/dispatch.c
 * gate_take(); it used to be made between the reserve and the decision).
 *
 * wake_survives_a_stalled_waker is the regression test of the stalled-wake
 * bug (core/dispatch.c, flowq__shard_wake()): the first waker took the
 * sleep word 1 -> 0 and every later waker, seeing 0, left the FUTEX_WAKE to
 * it; preempted in between, it kept the dispatcher asleep with work queued
 * (stress_global's cross-shard priority inversions, issue 6).
 *
 * completion_precedes_the_fairness_wake is the regression test of the
 * held-completion bug (core/dispatch.c, fair_publish()): a dispatcher
 * published its fairness vt and made the gate wake that goes with it
 * between a dispatch decision and the completion, so a dispatcher
 * preempted in that system call by the thread it woke held a decided
 * request (and its gate slot) from the host for milliseconds (stress_global
 * again, issue 6).
 *
 * polled_wake_survives_a_stalled_waker is the same bug in polled mode: the
 * stalled first waker was the only one to write the shard's eventfd, so the
 * host's loop slept in poll(2) on it with work queued.
 *
 * saturated_round_takes_in_a_more_important_arrival is the regression test
 * of the stale-intake inversion (core/dispatch.c dispatch()): with the gate
 * saturated, a round spent the slots released meanwhile on a lower band
 * from what its intake had taken in, though a more important request had
 * rung the doorbell since (stress_global's decision trace caught a
 * dispatcher preempted in such a round, issue 6).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/flowq.h>

#include "capacity.h"
#include "engine.h"
#include "engine_fixture.h"
#include "fault.h"

static void
fini(void)
{
	flowq__fault_reset();
}

TestSuite(fault, .fini = fini);

/* ---- the points are where fault.h says ---- */

static void
count_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	atomic_fetch_add((_Atomic int *)ctx, 1);
}

Test(fault, points_are_hit_on_the_request_paths)
{
	_Atomic int n = 0;
	flowq__fault_reset();
	flowq__fault_hook_arm(~UINT64_C(0), count_hook, &n);
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a, b;
	fx_req_init(&a, "f", 0, 1);
	fx_req_init(&b, "f", 0, 1);
	cr_assert_eq(flowq_submit(e, &a.req), 0);
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	cr_assert_eq(flowq_cancel(e, &b.req), 0);
	fx_poll_all(e);
	cr_assert_eq(a.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(b.seen, FLOWQ_EVICTED_CANCELLED);
	flowq_release(e, &a.req);
	flowq_engine_destroy(e);
	static const enum flowq__fault_point hit[] = {
		FLOWQ__FAULT_S_CLAIMED,      FLOWQ__FAULT_S_QUEUED,
		FLOWQ__FAULT_C_WON,          FLOWQ__FAULT_D_ROUND_START,
		FLOWQ__FAULT_D_AFTER_INTAKE, FLOWQ__FAULT_D_BEFORE_DISPATCH,
		FLOWQ__FAULT_D_CLAIMED};
	for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++)
		cr_assert_gt(flowq__fault_hits(hit[i]), 0, "%s never hit",
			     flowq__fault_name(hit[i]));
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_S_CLAIMED), 2);
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_C_WON), 1);
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_D_CLAIMED), 1);
	cr_assert_gt(atomic_load(&n), 0);
	/* Disarmed: nothing counts any more. */
	flowq__fault_disarm();
	uint64_t before = flowq__fault_hits(FLOWQ__FAULT_D_ROUND_START);
	e = fx_make(&c);
	fx_poll_all(e);
	flowq_engine_destroy(e);
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_D_ROUND_START), before);
}

/* Names are the enum's, without the prefix; a point out of range has the
 * name "?", no counter, and does not run the armed action (a corrupt point
 * number must not index past the tables). */
Test(fault, names_and_points_out_of_range)
{
	static const char *const want[FLOWQ__FAULT_COUNT] = {
		[FLOWQ__FAULT_D_ROUND_START] = "D_ROUND_START",
		[FLOWQ__FAULT_D_AFTER_INTAKE] = "D_AFTER_INTAKE",
		[FLOWQ__FAULT_D_BEFORE_DISPATCH] = "D_BEFORE_DISPATCH",
		[FLOWQ__FAULT_D_CLAIMED] = "D_CLAIMED",
		[FLOWQ__FAULT_D_BEFORE_SLEEP] = "D_BEFORE_SLEEP",
		[FLOWQ__FAULT_D_AFTER_WAKE] = "D_AFTER_WAKE",
		[FLOWQ__FAULT_S_CLAIMED] = "S_CLAIMED",
		[FLOWQ__FAULT_S_QUEUED] = "S_QUEUED",
		[FLOWQ__FAULT_C_WON] = "C_WON",
		[FLOWQ__FAULT_CAP_IN_HAND] = "CAP_IN_HAND",
		[FLOWQ__FAULT_W_TAKEN] = "W_TAKEN",
		[FLOWQ__FAULT_L_DEAD] = "L_DEAD",
		[FLOWQ__FAULT_L_MADE] = "L_MADE",
		[FLOWQ__FAULT_L_LOST] = "L_LOST",
		[FLOWQ__FAULT_E_LFHT_NEW] = "E_LFHT_NEW",
		[FLOWQ__FAULT_E_THREAD_CREATE] = "E_THREAD_CREATE",
	};
	for (unsigned i = 0; i < FLOWQ__FAULT_COUNT; i++)
		cr_assert_str_eq(flowq__fault_name((enum flowq__fault_point)i), want[i]);
	cr_assert_str_eq(flowq__fault_name(FLOWQ__FAULT_COUNT), "?");
	cr_assert_str_eq(flowq__fault_name((enum flowq__fault_point) - 1), "?");

	_Atomic int n = 0;
	flowq__fault_reset();
	flowq__fault_hook_arm(~UINT64_C(0), count_hook, &n);
	flowq__fault_hit(FLOWQ__FAULT_COUNT);
	flowq__fault_hit((enum flowq__fault_point) - 1);
	cr_assert_eq(atomic_load(&n), 0, "no action for a point out of range");
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_COUNT), 0);
	for (unsigned i = 0; i < FLOWQ__FAULT_COUNT; i++)
		cr_assert_eq(flowq__fault_hits((enum flowq__fault_point)i), 0, "%s",
			     want[i]);
	/* In range, the same call runs it and counts. */
	flowq__fault_hit(FLOWQ__FAULT_L_DEAD);
	cr_assert_eq(atomic_load(&n), 1);
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_L_DEAD), 1);
	flowq__fault_reset();
}

Test(fault, random_stall_sleeps_and_records_the_resume)
{
	flowq__fault_reset();
	struct flowq__fault_stall st = {.mask = FLOWQ__FAULT_BIT(D_ROUND_START),
					.per_million = 1000000,
					.min_ns = 1000000,
					.max_ns = 2000000,
					.seed = 7};
	flowq__fault_stall_arm(&st);
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 3; i++)
		flowq_shard_poll(e, 0, 0, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	flowq__fault_disarm();
	flowq_engine_destroy(e);
	uint64_t total;
	cr_assert_eq(flowq__fault_stalls(&total), 3);
	cr_assert_geq(total, 3000000);
	int64_t el = (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
	cr_assert_geq(el, 3000000, "three stalls of >= 1 ms");
	int64_t r = flowq__fault_thread_resumed_ns();
	int64_t end = (int64_t)t1.tv_sec * 1000000000 + t1.tv_nsec;
	cr_assert(r > 0 && r <= end, "resume time recorded on this thread");
	/* per_million 0: never stalls. */
	st.per_million = 0;
	flowq__fault_reset();
	flowq__fault_stall_arm(&st);
	e = fx_make(&c);
	flowq_shard_poll(e, 0, 0, NULL);
	flowq_engine_destroy(e);
	cr_assert_eq(flowq__fault_stalls(NULL), 0);
	cr_assert_gt(flowq__fault_hits(FLOWQ__FAULT_D_ROUND_START), 0);
}

/* ---- H1: a steal's surplus must wake the gate's waiters ---- */

static void
pin(unsigned cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof(set), &set), 0);
	sched_yield();
}

static struct {
	_Atomic int in_hand; /* the stealer is inside the window */
	_Atomic int go;      /* let it finish */
	pthread_t stealer;
	struct flowq_engine *e;
	unsigned shard;
	/* Wakes the stealer made (W_TAKEN) before and after the completion
	 * of the request it reserved for. */
	struct fx_req *watch;
	_Atomic int held, after;
} h1;

static void
hold_in_hand(enum flowq__fault_point p, void *ctx)
{
	(void)ctx;
	if (!pthread_equal(pthread_self(), h1.stealer))
		return;
	if (p == FLOWQ__FAULT_W_TAKEN) {
		if (h1.watch->completions == 0)
			atomic_fetch_add(&h1.held, 1);
		else
			atomic_fetch_add(&h1.after, 1);
		return;
	}
	if (p != FLOWQ__FAULT_CAP_IN_HAND)
		return;
	atomic_store(&h1.in_hand, 1);
	while (!atomic_load(&h1.go)) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
}

static void *
stealer_main(void *arg)
{
	(void)arg;
	pin(1);
	/* Budget 1: the shard keeps a request queued, so its published top
	 * band does not drop (a drop wakes the gate's waiters anyway). */
	flowq_shard_poll(h1.e, h1.shard, 1, NULL);
	return NULL;
}

/* A flow id of @p e that lives on shard @p shard. */
static void
flow_on(struct flowq_engine *e, unsigned shard, char *id, size_t idsz)
{
	for (int i = 0; i < 1000; i++) {
		snprintf(id, idsz, "f%d", i);
		struct flowq_flow *f;
		cr_assert_eq(flowq_flow_get(e, id, (uint32_t)strlen(id), 0, &f), 0);
		unsigned k = f->shard->index;
		flowq_flow_put(e, f);
		if (k == shard)
			return;
	}
	cr_assert_fail("no flow id for shard %u", shard);
}

static bool
fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, timeout_ms) == 1;
}

Test(fault, cap_steal_surplus_wakes_the_gate_waiter)
{
	cpu_set_t allowed;
	CPU_ZERO(&allowed);
	sched_getaffinity(0, sizeof(allowed), &allowed);
	if (!CPU_ISSET(0, &allowed) || !CPU_ISSET(1, &allowed))
		cr_skip("needs CPUs 0 and 1");
	flowq__fault_reset();
	pin(0);
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.saturation.max_inflight = 4;
	struct flowq_engine *e = fx_make(&c);
	if (e->gate.nslots < 2 || e->gate.chunk[FLOWQ__CAP_REQ] != 1) {
		flowq_engine_destroy(e);
		cr_skip("the gate needs 2+ slots with chunk 1 here (%u slots)",
			e->gate.nslots);
	}
	char ida[16], idb[16];
	flow_on(e, 0, ida, sizeof(ida));
	flow_on(e, 1, idb, sizeof(idb));
	int fdb = flowq_shard_fd(e, 1);

	/* Fill the gate from CPU 0, then free two slots there: slot 0 holds
	 * 2 credits, the global pool none. */
	struct fx_req fill[4], ra, ra2, rb;
	for (int i = 0; i < 4; i++) {
		fx_req_init(&fill[i], idb, 0, 1);
		cr_assert_eq(flowq_submit(e, &fill[i].req), 0);
	}
	cr_assert_eq(flowq_shard_poll(e, 1, 0, NULL), 4);
	cr_assert_eq(flowq_release(e, &fill[0].req), 0);
	cr_assert_eq(flowq_release(e, &fill[1].req), 0);
	uint64_t g, s0;
	flowq__cap_credit(&e->gate, FLOWQ__CAP_GLOBAL, &g, NULL);
	flowq__cap_credit(&e->gate, 0, &s0, NULL);
	cr_assert(g == 0 && s0 == 2, "set-up: global %lu slot0 %lu", (unsigned long)g,
		  (unsigned long)s0);
	(void)fd_readable(fdb, 0);
	flowq_shard_poll(e, 1, 0, NULL); /* clears shard 1's fd */

	fx_req_init(&ra, ida, 0, 1);
	fx_req_init(&ra2, ida, 0, 1);
	fx_req_init(&rb, idb, 0, 1);
	cr_assert_eq(flowq_submit(e, &ra.req), 0);
	cr_assert_eq(flowq_submit(e, &ra2.req), 0);
	cr_assert_eq(flowq_submit(e, &rb.req), 0);

	/* Shard 0's poll on CPU 1 steals slot 0's 2 credits for its first
	 * request and stops, the surplus in hand. */
	h1.e = e;
	h1.shard = 0;
	atomic_store(&h1.in_hand, 0);
	atomic_store(&h1.go, 0);
	h1.watch = &ra;
	atomic_store(&h1.held, 0);
	atomic_store(&h1.after, 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(CAP_IN_HAND) | FLOWQ__FAULT_BIT(W_TAKEN),
			      hold_in_hand, NULL);
	cr_assert_eq(pthread_create(&h1.stealer, NULL, stealer_main, NULL), 0);
	while (!atomic_load(&h1.in_hand))
		sched_yield();
	/* Shard 1's poll finds no credit anywhere: it waits for the gate with
	 * its fd armed. */
	cr_assert_eq(flowq_shard_poll(e, 1, 0, NULL), 0);
	cr_assert_eq(rb.completions, 0);
	cr_assert(!fd_readable(fdb, 0), "nothing freed yet");
	atomic_store(&h1.go, 1);
	pthread_join(h1.stealer, NULL);
	flowq__fault_disarm();
	cr_assert_eq(ra.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(ra2.completions, 0);
	/* One slot is free now (3 of 4 in flight): shard 1 must be told. */
	uint64_t used;
	flowq__cap_in_use(&e->gate, &used, NULL);
	cr_assert_eq(used, 3);
	cr_assert(fd_readable(fdb, 200),
		  "the waiting shard was not woken: the steal's surplus was hidden");
	/* And woken after ra's completion, not between the reserve and it:
	 * a stealer preempted in that wake by the thread it woke would hold
	 * the slot it just took, with ra decided or about to be, from the
	 * host (gate_take(): the same exposure as fair_publish()'s). */
	cr_assert_gt(atomic_load(&h1.after), 0, "no wake from the stealer after ra's completion");
	cr_assert_eq(atomic_load(&h1.held), 0,
		     "%d wake(s) made between the reserve for ra and its completion",
		     atomic_load(&h1.held));
	/* (Shard 1 may now yield the slot to shard 0, which is behind on
	 * cross-shard fairness: what matters is that it was told.) */
	for (int i = 2; i < 4; i++)
		flowq_release(e, &fill[i].req);
	for (int i = 0; i < 4 && (!rb.completions || !ra2.completions); i++)
		fx_poll_all(e);
	cr_assert_eq(rb.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(ra2.seen, FLOWQ_DISPATCHED);
	flowq_release(e, &ra.req);
	flowq_release(e, &ra2.req);
	flowq_release(e, &rb.req);
	flowq_engine_destroy(e);
}

/* ---- a waker stalled before its FUTEX_WAKE must not keep the shard asleep ---- */

static struct {
	pthread_t waker;
	struct flowq_engine *e;
	_Atomic int held; /* the waker is stalled at W_TAKEN */
	_Atomic int go;
} w1;

struct timed_req {
	struct flowq_req req;
	_Atomic int done;
};

static void
timed_done(struct flowq_req *req, void *arg)
{
	(void)req;
	atomic_store(&((struct timed_req *)arg)->done, 1);
}

static void
timed_req_init(struct timed_req *t, const char *flow)
{
	memset(t, 0, sizeof(*t));
	flowq_req_init(&t->req);
	t->req.flow_id = flow;
	t->req.flow_id_len = (uint32_t)strlen(flow);
	t->req.complete = timed_done;
	t->req.arg = t;
}

static void
hold_wake(enum flowq__fault_point p, void *ctx)
{
	(void)ctx;
	if (p != FLOWQ__FAULT_W_TAKEN || !pthread_equal(pthread_self(), w1.waker) ||
	    atomic_exchange(&w1.held, 1))
		return; /* only the waker's first wake stalls */
	while (!atomic_load(&w1.go)) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
}

static void *
waker_main(void *arg)
{
	/* Its flow's creation rings the doorbell and kicks the sleeping
	 * dispatcher: that kick stalls after taking the sleep word. */
	cr_assert_eq(flowq_submit(w1.e, &((struct timed_req *)arg)->req), 0);
	return NULL;
}

/* Wait up to @p ms for *@p flag (a word set by another thread). */
static bool
wait_flag(_Atomic int *flag, int ms)
{
	for (int i = 0; i < ms * 10 && !atomic_load(flag); i++) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return atomic_load(flag);
}

/* Wait up to @p ms for shard @p s's dispatcher to sleep in its futex. */
static bool
wait_asleep(struct flowq__shard *s, int ms)
{
	for (int i = 0; i < ms * 10; i++) {
		if ((atomic_load(&s->sleeping) & FLOWQ__SLEEP_STATE) ==
		    FLOWQ__SLEEP_ASLEEP)
			return true;
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Start a thread whose submit of @p a (flow "a") kicks shard 0 of @p e
 * and is held at W_TAKEN, after taking the sleep word; @p b is set up for
 * flow "b". Let it go with release_stalled_waker(). */
static void
stall_first_waker(struct flowq_engine *e, struct timed_req *a, struct timed_req *b)
{
	timed_req_init(a, "a");
	timed_req_init(b, "b");
	w1.e = e;
	atomic_store(&w1.held, 0);
	atomic_store(&w1.go, 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(W_TAKEN), hold_wake, NULL);
	cr_assert_eq(pthread_create(&w1.waker, NULL, waker_main, a), 0);
	cr_assert(wait_flag(&w1.held, 5000), "the waker never took the sleep word");
}

static void
release_stalled_waker(void)
{
	atomic_store(&w1.go, 1);
	pthread_join(w1.waker, NULL);
	flowq__fault_disarm();
}

Test(fault, wake_survives_a_stalled_waker)
{
	flowq__fault_reset();
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_THREADED;
	c.shards = 1;
	c.idle_spin_ns = 0; /* sleep as soon as idle */
	struct flowq_engine *e = fx_make(&c);
	/* Asleep with no timeout: no flow, no TTL, nothing due. */
	cr_assert(wait_asleep(&e->shards[0], 5000), "the dispatcher never slept");

	struct timed_req a, b;
	stall_first_waker(e, &a, &b);
	/* The waker holds the wake. Another submit (another flow: its own
	 * ring and kick) must wake the dispatcher itself: before the fix it
	 * read the word the waker had cleared and left the wake to it, and B
	 * waited for the waker to be let go. */
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	bool woke = wait_flag(&b.done, 2000);
	release_stalled_waker();
	cr_assert(woke, "the dispatcher slept with work queued while a waker was stalled");
	cr_assert(wait_flag(&a.done, 5000));
	cr_assert_eq(flowq_req_outcome(&b.req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &a.req), 0);
	cr_assert_eq(flowq_release(e, &b.req), 0);
	flowq_engine_destroy(e);
}

/* ---- no wake between a dispatch decision and its completion ---- */

/* The request to watch and what the W_TAKEN hook saw of it: a wake made
 * after its decision with its completion not yet run is "held". */
static struct {
	struct fx_req *watch;
	_Atomic uint32_t *rearm; /* a sleep word to set back to asleep */
	_Atomic int held, after;
} fw;

static void
fairness_wake_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (flowq_req_outcome(&fw.watch->req) == FLOWQ_DISPATCHED) {
		atomic_fetch_add(&fw.after, 1);
		if (fw.watch->completions == 0)
			atomic_fetch_add(&fw.held, 1);
	}
	/* Keep the other shard "asleep", so that every later wake comes
	 * through this point too (the first one took the word). */
	atomic_store(fw.rearm, FLOWQ__SLEEP_ASLEEP);
}

Test(fault, completion_precedes_the_fairness_wake)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	c.shards = 2;
	c.saturation.max_inflight = 1; /* scarce: fairness is cross-shard */
	struct flowq_engine *e = fx_make(&c);
	/* A host that waits on the fds: polls arm the sleep words. */
	cr_assert_geq(flowq_shard_fd(e, 0), 0);
	cr_assert_geq(flowq_shard_fd(e, 1), 0);
	char ida[32], idb[32];
	flow_on(e, 0, ida, sizeof(ida));
	flow_on(e, 1, idb, sizeof(idb));
	struct fx_req a1, a2, b1;
	fx_req_init(&a1, ida, 0, 1);
	fx_req_init(&a2, ida, 0, 1);
	fx_req_init(&b1, idb, 0, 1);
	cr_assert_eq(flowq_submit(e, &a1.req), 0);
	cr_assert_eq(flowq_submit(e, &a2.req), 0);
	cr_assert_eq(flowq_submit(e, &b1.req), 0);
	/* Shard 0 takes the only slot for a1 and blocks on a2; shard 1 blocks
	 * on b1: both wait for the gate. */
	cr_assert_geq(flowq_shard_poll(e, 0, 0, NULL), 1);
	cr_assert_eq(a1.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_shard_poll(e, 1, 0, NULL), 0);
	cr_assert_eq(b1.completions, 0);
	cr_assert_gt(atomic_load(&e->gate_waiters), 0);
	/* The slot comes back (its gate wake takes both sleep words); shard
	 * 1's host loop goes back to waiting, as it would after reading its
	 * fd, still a gate waiter. */
	cr_assert_eq(flowq_release(e, &a1.req), 0);
	atomic_store(&e->shards[1].sleeping, FLOWQ__SLEEP_ASLEEP);
	cr_assert(atomic_load(&e->shards[1].gate_wait));
	fw.watch = &a2;
	fw.rearm = &e->shards[1].sleeping;
	atomic_store(&fw.held, 0);
	atomic_store(&fw.after, 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(W_TAKEN), fairness_wake_hook, NULL);
	/* Shard 0 dispatches a2 under pressure: it publishes its vt, which
	 * owes shard 1 a wake. */
	cr_assert_geq(flowq_shard_poll(e, 0, 0, NULL), 1);
	flowq__fault_disarm();
	cr_assert_eq(a2.seen, FLOWQ_DISPATCHED);
	cr_assert_gt(atomic_load(&fw.after), 0, "no wake after the decision: the test did not run");
	cr_assert_eq(atomic_load(&fw.held), 0,
		     "%d wake(s) made between a2's decision and its completion",
		     atomic_load(&fw.held));
	cr_assert_eq(flowq_release(e, &a2.req), 0);
	fx_poll_all(e);
	cr_assert_eq(b1.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &b1.req), 0);
	flowq_engine_destroy(e);
}

Test(fault, polled_wake_survives_a_stalled_waker)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	int fd = flowq_shard_fd(e, 0);
	cr_assert_geq(fd, 0);
	/* An idle poll arms the fd: the host's loop would now sleep on it. */
	cr_assert_eq(flowq_shard_poll(e, 0, 0, NULL), 0);
	cr_assert_eq(atomic_load(&e->shards[0].sleeping) & FLOWQ__SLEEP_STATE,
		     FLOWQ__SLEEP_ASLEEP);
	cr_assert(!fd_readable(fd, 0), "set-up: the fd is readable with no work");

	struct timed_req a, b;
	stall_first_waker(e, &a, &b);
	/* The waker holds its eventfd write. Another submit (another flow:
	 * its own ring and kick) must write the fd itself: before the fix it
	 * read the word the waker had cleared and left the write to it, and
	 * the fd stayed quiet until the waker was let go. */
	cr_assert_eq(flowq_submit(e, &b.req), 0);
	bool readable = fd_readable(fd, 2000);
	release_stalled_waker();
	cr_assert(readable,
		  "the shard's fd stayed quiet with work queued while a waker was stalled");
	/* Both wakers wrote: one armed poll's read clears the fd, and the
	 * poll that finds the shard idle again leaves it quiet. */
	for (int i = 0; i < 8 && !(atomic_load(&a.done) && atomic_load(&b.done)); i++)
		cr_assert_geq(flowq_shard_poll(e, 0, 0, NULL), 0);
	cr_assert(atomic_load(&a.done) && atomic_load(&b.done));
	cr_assert_eq(flowq_req_outcome(&a.req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_req_outcome(&b.req), FLOWQ_DISPATCHED);
	cr_assert(!fd_readable(fd, 0), "the fd stayed readable after an armed poll read it");
	cr_assert_eq(flowq_release(e, &a.req), 0);
	cr_assert_eq(flowq_release(e, &b.req), 0);
	flowq_engine_destroy(e);
}

/* ---- a saturated round takes in a more important arrival first ---- */

static struct {
	struct flowq_engine *e;
	struct fx_req *late;
	_Atomic int fired;
} si;

/* At D_BEFORE_DISPATCH (after the intake): the arrival the intake missed. */
static void
late_arrival_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (atomic_exchange(&si.fired, 1))
		return;
	cr_assert_eq(flowq_submit(si.e, &si.late->req), 0);
}

Test(fault, saturated_round_takes_in_a_more_important_arrival)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req hi0, hi, lo1, lo2;
	fx_req_init(&hi0, "hi", 1, 1);
	fx_req_init(&hi, "hi", 1, 1);
	fx_req_init(&lo1, "lo", 0, 1);
	fx_req_init(&lo2, "lo", 0, 1);
	cr_assert_eq(flowq_submit(e, &hi0.req), 0);
	cr_assert_eq(flowq_submit(e, &lo1.req), 0);
	cr_assert_eq(flowq_submit(e, &lo2.req), 0);
	/* hi0 takes the only slot; the round ends at the closed gate with
	 * band 0 queued: saturated. */
	cr_assert_eq(flowq_shard_poll(e, 0, 0, NULL), 1);
	cr_assert_eq(hi0.seen, FLOWQ_DISPATCHED);
	cr_assert(e->shards[0].blocked, "set-up: the round did not end at the gate");
	/* The slot comes back; in the next round a band-1 request arrives
	 * after the intake, before the dispatch loop. */
	cr_assert_eq(flowq_release(e, &hi0.req), 0);
	si.e = e;
	si.late = &hi;
	atomic_store(&si.fired, 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(D_BEFORE_DISPATCH), late_arrival_hook, NULL);
	for (int i = 0; i < 4 && !hi.completions && !lo1.completions; i++)
		cr_assert_geq(flowq_shard_poll(e, 0, 0, NULL), 0);
	flowq__fault_disarm();
	cr_assert(atomic_load(&si.fired), "set-up: the late arrival was never submitted");
	cr_assert_eq(lo1.completions, 0,
		     "band 0 got the slot from a stale intake while a band-1 request waited");
	cr_assert_eq(hi.seen, FLOWQ_DISPATCHED);
	/* The lower band is not starved: it goes once the slot is back. */
	cr_assert_eq(flowq_release(e, &hi.req), 0);
	fx_poll_all(e);
	cr_assert_eq(lo1.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &lo1.req), 0);
	fx_poll_all(e);
	cr_assert_eq(lo2.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &lo2.req), 0);
	flowq_engine_destroy(e);
}

/* ---- a batch's run is rung when it ends, not when the call ends ---- */

static struct {
	struct flowq_engine *e;
	struct fx_req *a1, *b1;
	int claims;
	int a1_seen, b1_seen; /* completions seen inside the call */
} bi;

/* At the third S_CLAIMED of the batch [a1, b1, b2]: a1's run ended when
 * b1's began. */
static void
batch_claim_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (++bi.claims != 3)
		return;
	cr_assert_geq(flowq_shard_poll(bi.e, 0, 0, NULL), 0);
	bi.a1_seen = bi.a1->completions;
	bi.b1_seen = bi.b1->completions;
}

Test(fault, batch_run_is_visible_when_it_ends)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a0, b0, a1, b1, b2;
	/* The flows exist first (a new flow rings its shard by itself). */
	fx_req_init(&a0, "a", 0, 1);
	fx_req_init(&b0, "b", 0, 1);
	cr_assert_eq(flowq_submit(e, &a0.req), 0);
	cr_assert_eq(flowq_submit(e, &b0.req), 0);
	cr_assert_eq(fx_poll_all(e), 2);
	fx_req_init(&a1, "a", 0, 1);
	fx_req_init(&b1, "b", 0, 1);
	fx_req_init(&b2, "b", 0, 1);
	struct flowq_req *reqs[3] = {&a1.req, &b1.req, &b2.req};
	bi.e = e;
	bi.a1 = &a1;
	bi.b1 = &b1;
	bi.claims = 0;
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(S_CLAIMED), batch_claim_hook, NULL);
	cr_assert_eq(flowq_submit_batch(e, reqs, 3, NULL), 3);
	flowq__fault_disarm();
	cr_assert_eq(bi.claims, 3);
	cr_assert_eq(bi.a1_seen, 1, "a's run was not queued and rung when it ended");
	cr_assert_eq(bi.b1_seen, 0, "b1 was visible before its run ended");
	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(b1.seen, FLOWQ_DISPATCHED);
	cr_assert_lt(b1.order, b2.order);
	flowq_engine_destroy(e);
}

/* ---- a cancel of a request admitted by a batch, before its run is queued ---- */

static struct {
	struct flowq_engine *e;
	struct fx_req *victim;
	int queued;
	int rc;
} ci;

/* At the third S_QUEUED of the batch: the first request is admitted ([T4])
 * but still in the call's private chain. */
static void
batch_cancel_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (++ci.queued == 3)
		ci.rc = flowq_cancel(ci.e, &ci.victim->req);
}

Test(fault, cancel_of_a_batch_request_not_yet_queued)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req a[3];
	struct flowq_req *reqs[3];
	for (int i = 0; i < 3; i++) {
		fx_req_init(&a[i], "a", 0, 1);
		reqs[i] = &a[i].req;
	}
	ci.e = e;
	ci.victim = &a[0];
	ci.queued = 0;
	ci.rc = 1;
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(S_QUEUED), batch_cancel_hook, NULL);
	cr_assert_eq(flowq_submit_batch(e, reqs, 3, NULL), 3);
	flowq__fault_disarm();
	cr_assert_eq(ci.rc, 0, "the cancel lost: %d", ci.rc);
	cr_assert_eq(a[0].completions, 0, "completed before it was even queued");
	cr_assert_eq(fx_poll_all(e), 3);
	cr_assert_eq(a[0].completions, 1);
	cr_assert_eq(a[0].seen, FLOWQ_EVICTED_CANCELLED);
	cr_assert_eq(a[1].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(a[2].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(fx_poll_all(e), 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.outcomes[FLOWQ_EVICTED_CANCELLED], 1);
	flowq_engine_destroy(e);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(a[i].completions, 1);
}

/* ---- a batch's look-up finds a flow being collected ---- */

static struct {
	struct flowq_engine *e;
	struct flowq_req *reqs[3];
	int rc[3];
	int queued;
	_Atomic int at_dead, started, done;
} ld;

static void *
dead_submitter(void *arg)
{
	(void)arg;
	while (!atomic_load(&ld.at_dead))
		sched_yield();
	atomic_store(&ld.started, 1);
	ld.queued = flowq_submit_batch(ld.e, ld.reqs, 3, ld.rc);
	atomic_store(&ld.done, 1);
	return NULL;
}

/* At L_DEAD, on the polling thread: "v" is dead and still in the table.
 * Let the submitter look it up, then check that it waits. */
static void
dead_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	atomic_store(&ld.at_dead, 1);
	while (!atomic_load(&ld.started))
		sched_yield();
	nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	cr_assert_eq(atomic_load(&ld.done), 0,
		     "a submit returned while its flow was dead and still in the table");
}

/* The batch's look-ahead (core/submit.c ahead_get()) finds "v" dead: it
 * must not lease it, and the request takes flowq_submit()'s path, which
 * waits for the flow to leave the table and makes a new one. */
Test(fault, batch_look_up_of_a_flow_being_collected)
{
	flowq__fault_reset();
	struct flowq_config c = fx_polled_cfg();
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req v0, v1, v2, w;
	fx_req_init(&v0, "v", 0, 1);
	cr_assert_eq(flowq_submit(e, &v0.req), 0);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_release(e, &v0.req), 0);
	fx_req_init(&v1, "v", 0, 1);
	fx_req_init(&w, "w", 0, 1);
	fx_req_init(&v2, "v", 0, 1);
	ld.e = e;
	ld.reqs[0] = &v1.req;
	ld.reqs[1] = &w.req;
	ld.reqs[2] = &v2.req;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, dead_submitter, NULL), 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(L_DEAD), dead_hook, NULL);
	fx_advance(2000);
	fx_poll_all(e); /* collects "v", through the hook */
	flowq__fault_disarm();
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_L_DEAD), 1);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(ld.queued, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ld.rc[i], 0, "reqs[%d]: %d", i, ld.rc[i]);
	cr_assert_eq(fx_poll_all(e), 3);
	cr_assert_eq(v1.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(v2.seen, FLOWQ_DISPATCHED);
	cr_assert_lt(v1.order, v2.order);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "v", 1, 0, &st), 0,
		     "the new flow is in the table");
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2,
		     "the new flow's counts start at zero");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(flowq_release(e, ld.reqs[i]), 0);
	flowq_engine_destroy(e);
}

/* ---- a batch never reads a request it has not claimed ---- */

/* The claims of flowq_submit_batch() (core/submit.c ahead_get()): a
 * request that appears twice, whose first appearance completes during the
 * call, and which the host then releases and changes, must be refused at
 * its second appearance without a read of its fields, or queued as what
 * it names by then; never queued on what it named before. */

enum { TWICE_N = 24 };

static struct {
	struct flowq_engine *e;
	struct fx_req h[TWICE_N];
	struct flowq_req *reqs[TWICE_N];
	int rc[TWICE_N];
	char *id;    /* reqs[0]'s id, on the heap */
	int at_turn; /* the S_CLAIMED hit at which reqs[0] completes */
	bool reuse;  /* then: the host re-initialises it for "new" (else frees its id) */
	_Atomic int turns, go, done;
} tw;

static void *
twice_host(void *arg)
{
	(void)arg;
	while (!atomic_load(&tw.go))
		sched_yield();
	fx_poll_all(tw.e);
	if (tw.h[0].seen == FLOWQ_DISPATCHED && flowq_release(tw.e, &tw.h[0].req) == 0) {
		/* The request is the host's again. */
		if (tw.reuse) {
			fx_req_init(&tw.h[0], "new", 0, 1);
		} else {
			memset(tw.id, 'x', 4);
			free(tw.id);
			tw.id = NULL;
		}
	}
	atomic_store(&tw.done, 1);
	return NULL;
}

static void
twice_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (atomic_fetch_add(&tw.turns, 1) + 1 != tw.at_turn)
		return;
	atomic_store(&tw.go, 1);
	while (!atomic_load(&tw.done))
		sched_yield();
}

/* reqs[0] ("oldd", its id on the heap) appears again at reqs[@p again]. */
static void
twice_run(int again, int at_turn, bool reuse)
{
	flowq__fault_reset();
	memset(&tw, 0, sizeof(tw));
	struct flowq_config c = fx_polled_cfg();
	tw.e = fx_make(&c);
	tw.id = malloc(4);
	cr_assert_not_null(tw.id);
	memcpy(tw.id, "oldd", 4);
	tw.at_turn = at_turn;
	tw.reuse = reuse;
	static char names[TWICE_N][8];
	for (int i = 0; i < TWICE_N; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		fx_req_init(&tw.h[i], names[i], 0, 1);
		tw.reqs[i] = &tw.h[i].req;
	}
	tw.h[0].req.flow_id = tw.id;
	tw.h[0].req.flow_id_len = 4;
	tw.reqs[again] = &tw.h[0].req;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, twice_host, NULL), 0);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(S_CLAIMED), twice_hook, NULL);
	int queued = flowq_submit_batch(tw.e, tw.reqs, TWICE_N, tw.rc);
	flowq__fault_disarm();
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(atomic_load(&tw.done), 1, "the host never ran");
	cr_assert_eq(tw.h[0].completions, reuse ? 0 : 1); /* fx_req_init zeroes it */
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(tw.e, "oldd", 4, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED] + st.queued, 1,
		     "the second appearance was queued on the flow the first named");
	if (tw.rc[again] == 0) {
		cr_assert(reuse, "queued again without a reuse");
		cr_assert_eq(flowq_stats_flow(tw.e, "new", 3, 0, &st), 0);
		cr_assert_eq(st.queued, 1);
	} else {
		cr_assert_eq(tw.rc[again], -EBUSY);
	}
	cr_assert_eq(queued, TWICE_N - (tw.rc[again] != 0));
	fx_poll_all(tw.e);
	for (int i = 1; i < TWICE_N; i++)
		if (i != again)
			cr_assert_eq(flowq_release(tw.e, tw.reqs[i]), 0);
	if (tw.rc[again] == 0)
		cr_assert_eq(flowq_release(tw.e, tw.reqs[again]), 0);
	free(tw.id);
	flowq_engine_destroy(tw.e);
}

/* Completed (and its id freed) while the call is in its first chunk: its
 * second appearance, in the next chunk, is refused unread (ASan would
 * report a read of the freed id). */
Test(fault, batch_refuses_a_request_completed_during_the_call)
{
	twice_run(16, 3, false);
	cr_assert_eq(tw.rc[16], -EBUSY);
}

/* Re-initialised for another flow while the call runs, after the chunk
 * that holds its second appearance was claimed: refused, never queued on
 * its old flow. */
Test(fault, batch_never_queues_a_reused_request_on_its_old_flow)
{
	twice_run(20, 18, true);
}

/* A double submit across calls: the request completed, its id freed, and
 * it is passed again by mistake. Refused like a second flowq_submit(),
 * without a read of the id. */
Test(fault, batch_refuses_a_finished_request_unread)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req r;
	fx_req_init(&r, "x", 0, 1);
	char *id = malloc(4);
	cr_assert_not_null(id);
	memcpy(id, "abcd", 4);
	r.req.flow_id = id;
	r.req.flow_id_len = 4;
	struct flowq_req *reqs[1] = {&r.req};
	cr_assert_eq(flowq_submit_batch(e, reqs, 1, NULL), 1);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(flowq_release(e, &r.req), 0);
	free(id);
	cr_assert_eq(flowq_submit(e, &r.req), -EBUSY);
	int rc = 0;
	cr_assert_eq(flowq_submit_batch(e, reqs, 1, &rc), 0);
	cr_assert_eq(rc, -EBUSY);
	flowq_engine_destroy(e);
}

/* ---- a flow's creation loses to a dead flow, then to its successor ---- */

/*
 * flowq__flow_acquire() (core/registry.c) on thread A, for flow "k": its
 * look-up misses and it makes a flow (held at L_MADE). Meanwhile the main
 * thread makes "k" itself (w), dispatches its request and, past the GC
 * timeout, collects it; held at L_DEAD (w dead, still in the table), it
 * lets A insert: A's insert finds w and cannot lease it (held at L_LOST).
 * w leaves the table, the main thread makes "k" again (w2) and queues on
 * it, and A, let go, finds w2 at its next look-up: it queues there and
 * frees the flow it made, with the band reference that flow held. Every
 * request gets one outcome, and nothing stays allocated or referenced (a
 * leaked band reference would keep the just-in-time band for ever).
 */
static struct {
	struct flowq_engine *e;
	struct fx_req x;
	int rc;
	_Atomic int made, go1, lost, go2;
} lr;

static _Thread_local bool lr_is_a;

static void
lr_wait(_Atomic int *flag)
{
	while (!atomic_load(flag))
		sched_yield();
}

static void
lr_hook(enum flowq__fault_point p, void *ctx)
{
	(void)ctx;
	if (p == FLOWQ__FAULT_L_MADE && lr_is_a) {
		cr_assert_eq(atomic_exchange(&lr.made, 1), 0, "A makes one flow");
		lr_wait(&lr.go1);
	} else if (p == FLOWQ__FAULT_L_DEAD) {
		atomic_store(&lr.go1, 1);
		lr_wait(&lr.lost);
	} else if (p == FLOWQ__FAULT_L_LOST && lr_is_a) {
		cr_assert_eq(atomic_exchange(&lr.lost, 1), 0);
		lr_wait(&lr.go2);
	}
}

static void *
lr_thread_a(void *arg)
{
	(void)arg;
	lr_is_a = true;
	lr.rc = flowq_submit(lr.e, &lr.x.req);
	return NULL;
}

Test(fault, a_flow_made_while_its_predecessor_is_collected_is_freed_for_the_successor)
{
	flowq__fault_reset();
	struct test_count_alloc ca;
	test_count_alloc_init(&ca);
	struct flowq_config c = fx_polled_cfg();
	c.allocator = &ca.a;
	c.flow_gc_timeout_ns = 1000;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req y, z;
	pthread_t a;

	lr.e = e;
	fx_req_init(&lr.x, "k", 0, 1);
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(L_MADE) | FLOWQ__FAULT_BIT(L_LOST) |
				      FLOWQ__FAULT_BIT(L_DEAD),
			      lr_hook, NULL);
	cr_assert_eq(pthread_create(&a, NULL, lr_thread_a, NULL), 0);
	lr_wait(&lr.made);

	fx_req_init(&y, "k", 0, 1);
	cr_assert_eq(flowq_submit(e, &y.req), 0, "the main thread makes w");
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(y.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &y.req), 0);
	fx_advance(2000);
	cr_assert_eq(fx_poll_all(e), 0); /* collects w, through L_DEAD */
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_L_DEAD), 1);

	fx_req_init(&z, "k", 0, 1);
	cr_assert_eq(flowq_submit(e, &z.req), 0, "the main thread makes w2");
	atomic_store(&lr.go2, 1);
	cr_assert_eq(pthread_join(a, NULL), 0);
	flowq__fault_disarm();
	cr_assert_eq(lr.rc, 0, "A's request queued on w2");
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_L_LOST), 1);
	cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_L_MADE), 3, "A, w and w2");

	cr_assert_eq(fx_poll_all(e), 2);
	cr_assert_eq(z.seen, FLOWQ_DISPATCHED);
	cr_assert_eq(lr.x.seen, FLOWQ_DISPATCHED);
	cr_assert_lt(z.order, lr.x.order, "w2's inbox order");
	struct fx_req *all[] = {&y, &z, &lr.x};
	for (int i = 0; i < 3; i++)
		cr_assert_eq(all[i]->completions, 1, "request %d", i);
	cr_assert_eq(flowq_release(e, &z.req), 0);
	cr_assert_eq(flowq_release(e, &lr.x.req), 0);
	struct flowq_stats st;
	cr_assert_eq(flowq_stats_flow(e, "k", 1, 0, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 2, "w2's counts: z and A's");
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.outcomes[FLOWQ_DISPATCHED], 3);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.inflight, 0);

	/* w2 goes after a timeout, then its just-in-time band after another:
	 * the band reference of A's discarded flow was given back. */
	for (int i = 0; i < 2; i++) {
		fx_advance(2000);
		fx_poll_all(e);
		fx_poll_all(e);
	}
	cr_assert_eq(flowq_stats_flow(e, "k", 1, 0, &st), -ENOENT);
	cr_assert_eq(flowq_stats_band(e, 0, &st), -ENOENT, "the band was collected");
	flowq_engine_destroy(e);
	cr_assert_eq(ca.blocks, 0, "A's discarded flow was freed");
	cr_assert_eq(ca.bad_frees, 0);
}

/* ---- destroy starts while a dispatcher is about to sleep ---- */

struct once_req {
	struct flowq_req req;
	_Atomic int completions;
};

static void
once_done(struct flowq_req *req, void *arg)
{
	(void)req;
	atomic_fetch_add(&((struct once_req *)arg)->completions, 1);
}

static void
once_init(struct once_req *r, const char *flow)
{
	memset(r, 0, sizeof(*r));
	flowq_req_init(&r->req);
	r->req.flow_id = flow;
	r->req.flow_id_len = (uint32_t)strlen(flow);
	r->req.complete = once_done;
	r->req.arg = r;
}

static struct {
	struct flowq_engine *e;
	_Atomic int want, at_sleep, saw_stop;
} bs;

/* At D_BEFORE_SLEEP (sleeping stored, before the re-check of every work
 * source), once asked: hold the dispatcher until destroy has started. */
static void
stop_at_sleep_hook(enum flowq__fault_point p, void *ctx)
{
	(void)p;
	(void)ctx;
	if (!atomic_load(&bs.want) || atomic_exchange(&bs.at_sleep, 1))
		return;
	while (!atomic_load(&bs.e->stopping))
		sched_yield();
	atomic_store(&bs.saw_stop, 1);
}

/* A dispatcher blocked at the gate with a request queued goes to sleep just
 * as destroy starts: its re-check sees the stop it has not acted on
 * (core/dispatch.c work_visible()), so it runs the stopping round, which
 * evicts the request (EVICTED_OTHER, SHUTDOWN), and exits. */
Test(fault, destroy_during_the_sleep_recheck_evicts_what_is_queued)
{
	flowq__fault_reset();
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_THREADED;
	c.shards = 1;
	c.idle_spin_ns = 0;
	c.intake_coalesce_ns = 0;
	c.saturation.max_inflight = 1;
	struct flowq_engine *e = fx_make(&c);
	struct once_req w, r;

	bs.e = e;
	flowq__fault_hook_arm(FLOWQ__FAULT_BIT(D_BEFORE_SLEEP), stop_at_sleep_hook, NULL);
	once_init(&w, "w");
	cr_assert_eq(flowq_submit(e, &w.req), 0);
	for (int i = 0; i < 50000 && !atomic_load(&w.completions); i++)
		nanosleep(&(struct timespec){0, 100000}, NULL);
	cr_assert_eq(flowq_req_outcome(&w.req), FLOWQ_DISPATCHED, "w holds the gate");
	once_init(&r, "r");
	cr_assert_eq(flowq_submit(e, &r.req), 0);
	/* r is held at the gate; the next time the dispatcher goes to sleep
	 * (after the round this wake starts) it waits for the stop. */
	atomic_store(&bs.want, 1);
	flowq_engine_wake(e);
	for (int i = 0; i < 50000 && !atomic_load(&bs.at_sleep); i++)
		nanosleep(&(struct timespec){0, 100000}, NULL);
	cr_assert(atomic_load(&bs.at_sleep), "the dispatcher never went to sleep");
	cr_assert_eq(atomic_load(&r.completions), 0, "r waits at the gate");
	flowq_engine_destroy(e);
	flowq__fault_disarm();
	cr_assert(atomic_load(&bs.saw_stop));
	cr_assert_eq(atomic_load(&w.completions), 1);
	cr_assert_eq(atomic_load(&r.completions), 1);
	cr_assert_eq(flowq_req_outcome(&r.req), FLOWQ_EVICTED_OTHER);
	cr_assert_eq(flowq_req_cause(&r.req), FLOWQ_CAUSE_SHUTDOWN);
}

/* ---- fail points: create's error paths (fault.h, E_*) ---- */

/* Open file descriptors of the process. */
static int
open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* opendir()'s own */
}

/* Threads of the process whose name starts with @p prefix. */
static int
threads_named(const char *prefix)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	cr_assert_not_null(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* the thread has just exited */
		if (fgets(comm, sizeof(comm), f) &&
		    strncmp(comm, prefix, strlen(prefix)) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The engine made after the failures works: a request is dispatched. */
static void
assert_usable(struct flowq_config *c)
{
	struct flowq_engine *e = fx_make(c);
	struct fx_req r;
	fx_req_init(&r, "after", 0, 1);
	if (c->mode == FLOWQ_MODE_POLLED) {
		cr_assert_eq(flowq_submit(e, &r.req), 0);
		cr_assert_eq(fx_poll_all(e), 1);
	} else {
		cr_assert_eq(flowq_submit_wait(e, &r.req, 5000000000), FLOWQ_DISPATCHED);
	}
	cr_assert_eq(flowq_req_outcome(&r.req), FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &r.req), 0);
	flowq_engine_destroy(e);
}

/* A shard's hash table cannot be made (liburcu's own malloc() failed):
 * create returns -ENOMEM whichever shard it was, and everything made for
 * the shards before it (their tables, polled mode's eventfds) and the
 * engine itself is freed. */
Test(fault, create_unwinds_a_failed_hash_table)
{
	flowq__fault_reset();
	for (enum flowq_mode mode = FLOWQ_MODE_POLLED;; mode = FLOWQ_MODE_THREADED) {
		for (unsigned k = 0; k < 3; k++) {
			struct test_count_alloc ca;
			test_count_alloc_init(&ca);
			struct flowq_config c = fx_polled_cfg();
			c.mode = mode;
			c.shards = 3;
			c.allocator = &ca.a;
			int fds = open_fds();
			flowq__fault_reset();
			flowq__fault_fail_arm(FLOWQ__FAULT_E_LFHT_NEW, k, 1);
			struct flowq_engine *e = NULL;
			cr_assert_eq(flowq_engine_create(&c, &e), -ENOMEM,
				     "mode %d shard %u", (int)mode, k);
			cr_assert_null(e, "no engine on failure");
			cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_E_LFHT_NEW), k + 1);
			cr_assert_eq(flowq__fault_failed(FLOWQ__FAULT_E_LFHT_NEW), 1);
			cr_assert_eq(ca.blocks, 0, "mode %d shard %u: %ld blocks leaked",
				     (int)mode, k, (long)ca.blocks);
			cr_assert_eq(open_fds(), fds, "mode %d shard %u: an fd leaked",
				     (int)mode, k);
			cr_assert_eq(threads_named("flowq-d"), 0,
				     "no dispatcher was started");
			/* Only one failure was armed: the next create works. */
			assert_usable(&c);
			cr_assert_eq(ca.blocks, 0);
		}
		if (mode == FLOWQ_MODE_THREADED)
			break;
	}
}

/* A dispatcher cannot be started (pthread_create() failed): create returns
 * -EAGAIN, the dispatchers started before it are stopped and joined (none
 * is left running on freed memory), and nothing is leaked. */
Test(fault, create_stops_the_dispatchers_started_before_a_failed_one)
{
	flowq__fault_reset();
	for (unsigned k = 0; k < 4; k++) {
		struct test_count_alloc ca;
		test_count_alloc_init(&ca);
		struct flowq_config c;
		flowq_config_init(&c);
		c.mode = FLOWQ_MODE_THREADED;
		c.shards = 4;
		c.allocator = &ca.a;
		flowq__fault_reset();
		/* The dispatchers started stall 50 ms in their rounds: still
		 * running when the failure is met, so only a join (not a
		 * detach, not nothing) has them gone when create returns. */
		struct flowq__fault_stall st = {.mask = FLOWQ__FAULT_BIT(D_ROUND_START),
						.per_million = 1000000,
						.min_ns = 50000000,
						.max_ns = 50000000,
						.seed = k};
		flowq__fault_stall_arm(&st);
		flowq__fault_fail_arm(FLOWQ__FAULT_E_THREAD_CREATE, k, 1);
		struct flowq_engine *e = NULL;
		cr_assert_eq(flowq_engine_create(&c, &e), -EAGAIN, "dispatcher %u", k);
		flowq__fault_disarm();
		cr_assert_null(e, "no engine on failure");
		cr_assert_eq(flowq__fault_hits(FLOWQ__FAULT_E_THREAD_CREATE), k + 1,
			     "the failure ends the loop");
		cr_assert_eq(flowq__fault_failed(FLOWQ__FAULT_E_THREAD_CREATE), 1);
		cr_assert_eq(threads_named("flowq-d"), 0,
			     "dispatcher %u failed: a started one still runs", k);
		cr_assert_eq(ca.blocks, 0, "dispatcher %u: %ld blocks leaked", k,
			     (long)ca.blocks);
		assert_usable(&c);
		cr_assert_eq(threads_named("flowq-d"), 0);
		cr_assert_eq(ca.blocks, 0);
	}
	/* Every start failing: none is made, the same error. */
	struct flowq_config c;
	flowq_config_init(&c);
	c.mode = FLOWQ_MODE_THREADED;
	c.shards = 2;
	flowq__fault_reset();
	flowq__fault_fail_arm(FLOWQ__FAULT_E_THREAD_CREATE, 0, UINT64_MAX);
	struct flowq_engine *e = NULL;
	cr_assert_eq(flowq_engine_create(&c, &e), -EAGAIN);
	cr_assert_eq(flowq_engine_create(&c, &e), -EAGAIN);
	cr_assert_eq(flowq__fault_failed(FLOWQ__FAULT_E_THREAD_CREATE), 2);
	flowq__fault_disarm();
	assert_usable(&c);
}
