/*
 * Unit tests for bench/gie_style.c, the GIE-style peer engine the benchmark
 * reports measure flowq against: a peer that loses or duplicates an item
 * would make every ratio meaningless, so its exactly-once and conservation
 * rules are tested like the library's. Covered: dispatch of every item,
 * the benchDetector limit (never more than max_inflight dispatched and not
 * released; a release wakes a gated processor), the always-saturated gate,
 * client cancellation (outcome by whether the item was queued; the
 * completion once, when the engine lets go: sweep, head, hand-off or
 * shutdown), the flow GC (idle flows collected, a later submit re-creates
 * them, leased flows never collected) and a threaded churn of new flows with
 * the GC and cancels running (the ASan build checks the memory rules of
 * gie_style.c's header comment).
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "gie_style.h"
#include "test_util.h"

#define NITEMS 512u

struct titem {
	struct gie_style_item it;
	char id[16];
	/* Completions seen and the last outcome (completing thread). */
	_Atomic unsigned completions;
	_Atomic unsigned outcome;
};

/* Per test: dispatched and not released yet, its maximum, totals. */
static _Atomic long inflight;
static _Atomic long inflight_max;
static _Atomic unsigned long completed;

static void
complete(struct gie_style_item *it, enum gie_style_outcome outcome, void *arg)
{
	struct titem *t = (struct titem *)it;
	long n;

	(void)arg;
	if (outcome == GIE_STYLE_DISPATCHED) {
		n = atomic_fetch_add(&inflight, 1) + 1;
		for (long m = atomic_load(&inflight_max);
		     n > m && !atomic_compare_exchange_weak(&inflight_max, &m, n);)
			;
	}
	atomic_store(&t->outcome, outcome);
	atomic_fetch_add(&t->completions, 1);
	atomic_fetch_add(&completed, 1);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Wait until @p n completions in all (at most 10 s). */
static void
wait_completed(unsigned long n)
{
	for (int i = 0; i < 10000 && atomic_load(&completed) < n; i++)
		sleep_ms(1);
	cr_assert_eq(atomic_load(&completed), n, "%lu of %lu completions",
		     atomic_load(&completed), n);
}

/* Wait until the processors took @p n items from their hand-offs in all
 * (at most 10 s): a fixed sleep was not enough on a loaded machine. */
static void
wait_received(struct gie_style_engine *e, uint64_t n)
{
	struct gie_style_stats s;
	gie_style_stats(e, &s);
	for (int i = 0; i < 10000 && s.received < n; i++) {
		sleep_ms(1);
		gie_style_stats(e, &s);
	}
	cr_assert_eq(s.received, n, "%llu of %llu items received",
		     (unsigned long long)s.received, (unsigned long long)n);
}

static struct gie_style_engine *
make(unsigned shards, uint64_t max_inflight, bool saturated, int64_t gc_ns,
     int64_t sweep_ns)
{
	static const int32_t prios[] = {0, 1};
	struct gie_style_config cfg;
	struct gie_style_engine *e = NULL;

	atomic_store(&inflight, 0);
	atomic_store(&inflight_max, 0);
	atomic_store(&completed, 0);
	gie_style_config_init(&cfg);
	cfg.shards = shards;
	cfg.priorities = prios;
	cfg.npriorities = 2;
	cfg.max_inflight = max_inflight;
	cfg.always_saturated = saturated;
	cfg.flow_gc_timeout_ns = gc_ns;
	cfg.sweep_interval_ns = sweep_ns;
	cr_assert_eq(gie_style_create(&cfg, &e), 0);
	return e;
}

static void
prep(struct titem *t, unsigned i, unsigned nflows)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "f%u", i % nflows);
	t->it.flow_id = t->id;
	t->it.flow_id_len = (uint32_t)strlen(t->id);
	t->it.priority = (int32_t)(i % 2);
	t->it.bytes = 100 + i;
	t->it.complete = complete;
}

/* prep() and submit items [0, n) (item i: prep(i * @p stride)). */
static void
submit_all(struct gie_style_engine *e, struct titem *t, unsigned n, unsigned nflows,
	   unsigned stride)
{
	for (unsigned i = 0; i < n; i++) {
		prep(&t[i], i * stride, nflows);
		cr_assert_eq(gie_style_submit(e, &t[i].it), 0, "submit %u", i);
	}
}

/* Every item completed exactly once; give the leases back. */
static void
finish_all(struct gie_style_engine *e, struct titem *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(atomic_load(&t[i].completions), 1, "item %u: %u completions",
			     i, atomic_load(&t[i].completions));
		cr_assert_eq(gie_style_done(e, &t[i].it), 0);
	}
}

static void
check_quiescent(struct gie_style_engine *e)
{
	char msg[256] = "";

	cr_assert_eq(gie_style_check(e, msg, sizeof(msg)), 0, "%s", msg);
}

Test(gie_style, config_rejects_bad_values)
{
	static const int32_t prios[] = {0};
	struct gie_style_config cfg;
	struct gie_style_engine *e = NULL;

	gie_style_config_init(&cfg);
	cfg.priorities = prios;
	cfg.npriorities = 1;
	cfg.flow_gc_timeout_ns = -1;
	cr_assert_eq(gie_style_create(&cfg, &e), -EINVAL);
	cfg.flow_gc_timeout_ns = 0;
	cfg.sweep_interval_ns = -5;
	cr_assert_eq(gie_style_create(&cfg, &e), -EINVAL);
	cfg.sweep_interval_ns = 0;
	cfg.max_inflight = UINT64_MAX;
	cr_assert_eq(gie_style_create(&cfg, &e), -EINVAL);
	cr_assert_null(e);
	cr_assert_eq(gie_style_cancel(NULL, NULL), -EINVAL);
	gie_style_release(NULL); /* a no-op */
}

Test(gie_style, free_flow_dispatches_everything)
{
	struct gie_style_engine *e = make(2, 0, false, 0, 0);
	struct titem *t = calloc(NITEMS, sizeof(*t));
	struct gie_style_stats s;

	submit_all(e, t, NITEMS, 13, 1);
	wait_completed(NITEMS);
	for (unsigned i = 0; i < NITEMS; i++)
		cr_assert_eq(atomic_load(&t[i].outcome), GIE_STYLE_DISPATCHED);
	finish_all(e, t, NITEMS);
	gie_style_stats(e, &s);
	cr_assert_eq(s.outcomes[GIE_STYLE_DISPATCHED], NITEMS);
	cr_assert_eq(s.flows, 26); /* 13 ids at 2 priorities (i % 13, i % 2) */
	cr_assert_eq(s.flows_created, 26);
	cr_assert_eq(s.gated_cycles, 0);
	check_quiescent(e);
	gie_style_destroy(e);
	free(t);
}

Test(gie_style, bench_detector_bounds_inflight_and_release_wakes)
{
	struct gie_style_engine *e = make(2, 3, false, 0, 0);
	struct titem *t = calloc(NITEMS, sizeof(*t));
	bool *done = calloc(NITEMS, sizeof(*done));
	unsigned released = 0;
	struct gie_style_stats s;

	submit_all(e, t, NITEMS, 7, 1);
	/* Release dispatched items as they come; the gate admits 3 at most. */
	for (int spin = 0; released < NITEMS && spin < 200000; spin++) {
		bool any = false;

		for (unsigned i = 0; i < NITEMS; i++) {
			if (atomic_load(&t[i].completions) == 1 && !done[i]) {
				cr_assert_eq(atomic_load(&t[i].outcome),
					     GIE_STYLE_DISPATCHED);
				cr_assert_eq(gie_style_done(e, &t[i].it), 0);
				done[i] = true;
				atomic_fetch_sub(&inflight, 1);
				gie_style_release(e);
				released++;
				any = true;
			}
		}
		if (!any)
			sched_yield();
	}
	cr_assert_eq(released, NITEMS);
	cr_assert_leq(atomic_load(&inflight_max), 3, "%ld dispatched at once",
		      atomic_load(&inflight_max));
	gie_style_stats(e, &s);
	cr_assert_gt(s.gated_cycles, 0, "the gate never closed");
	check_quiescent(e);
	gie_style_destroy(e);
	free(done);
	free(t);
}

Test(gie_style, saturated_cancel_and_sweep)
{
	struct gie_style_engine *e = make(2, 0, true, 0, 2000000);
	struct titem *t = calloc(NITEMS, sizeof(*t));
	struct gie_style_stats s;
	unsigned long cancelled = 0, rejected = 0;

	submit_all(e, t, NITEMS, 5, 1);
	sleep_ms(20);
	cr_assert_eq(atomic_load(&completed), 0, "a closed gate dispatched");
	for (unsigned i = 0; i < NITEMS; i++) {
		cr_assert_eq(gie_style_cancel(e, &t[i].it), 0);
		cr_assert_eq(gie_style_cancel(e, &t[i].it), -EALREADY);
	}
	wait_completed(NITEMS);
	for (unsigned i = 0; i < NITEMS; i++) {
		unsigned o = atomic_load(&t[i].outcome);

		cr_assert(o == GIE_STYLE_EVICTED_CANCELLED ||
				  o == GIE_STYLE_REJECTED_OTHER,
			  "item %u: outcome %u", i, o);
		cancelled += o == GIE_STYLE_EVICTED_CANCELLED;
		rejected += o == GIE_STYLE_REJECTED_OTHER;
	}
	finish_all(e, t, NITEMS);
	/* The sweeper counts its items after their completions ran: wait
	 * for its count, not only for theirs. */
	gie_style_stats(e, &s);
	for (int i = 0; i < 10000 && s.swept + s.zombie_handoffs < NITEMS; i++) {
		sleep_ms(1);
		gie_style_stats(e, &s);
	}
	cr_assert_eq(s.outcomes[GIE_STYLE_EVICTED_CANCELLED], cancelled);
	cr_assert_eq(s.outcomes[GIE_STYLE_REJECTED_OTHER], rejected);
	/* Queued ones leave by the sweep (a cancel racing the enqueue may
	 * leave a REJECTED_OTHER item queued: swept too), the rest from the
	 * hand-off; no cycle meets one (the gate never opens). */
	cr_assert_eq(s.swept + s.zombie_handoffs, NITEMS);
	cr_assert_geq(s.swept, cancelled);
	cr_assert_eq(s.zombie_heads, 0);
	check_quiescent(e);
	gie_style_destroy(e);
	free(t);
}

Test(gie_style, cancelled_items_without_sweep_leave_at_shutdown)
{
	struct gie_style_engine *e = make(1, 0, true, 0, 0);
	struct titem *t = calloc(64, sizeof(*t));

	submit_all(e, t, 64, 3, 1);
	wait_received(e, 64);
	/* Every other one cancelled: a zombie keeps its outcome at shutdown. */
	for (unsigned i = 0; i < 64; i += 2)
		cr_assert_eq(gie_style_cancel(e, &t[i].it), 0);
	sleep_ms(10);
	cr_assert_eq(atomic_load(&completed), 0, "completed before leaving its queue");
	gie_style_destroy(e);
	cr_assert_eq(atomic_load(&completed), 64);
	for (unsigned i = 0; i < 64; i++) {
		cr_assert_eq(atomic_load(&t[i].completions), 1);
		cr_assert_eq(atomic_load(&t[i].outcome),
			     i % 2 == 0 ? GIE_STYLE_EVICTED_CANCELLED
					: GIE_STYLE_EVICTED_OTHER,
			     "item %u", i);
	}
	free(t);
}

Test(gie_style, zombie_at_the_head_is_removed_by_a_cycle)
{
	struct gie_style_engine *e = make(1, 1, false, 0, 0);
	struct titem t[3];
	struct gie_style_stats s;

	/* One flow, one band (even ids: priority 0): t0 dispatched (the only
	 * slot), t1 and t2 wait. */
	submit_all(e, t, 3, 1, 2);
	wait_completed(1);
	cr_assert_eq(atomic_load(&t[0].outcome), GIE_STYLE_DISPATCHED);
	/* t1 must be queued, not still in the hand-off, for the cycle to
	 * meet it (a fixed 5 ms sleep was not enough on a loaded machine):
	 * taken from the hand-off, then a moment to queue it (the processor
	 * counts an item just before it looks at it). */
	wait_received(e, 3);
	sleep_ms(2);
	cr_assert_eq(gie_style_cancel(e, &t[1].it), 0);
	/* The release opens the gate: the cycle meets the zombie t1 first,
	 * gives its slot back, and the next cycle dispatches t2. */
	gie_style_release(e);
	wait_completed(3);
	cr_assert_eq(atomic_load(&t[1].outcome), GIE_STYLE_EVICTED_CANCELLED);
	cr_assert_eq(atomic_load(&t[2].outcome), GIE_STYLE_DISPATCHED);
	gie_style_stats(e, &s);
	cr_assert_eq(s.zombie_heads, 1);
	gie_style_release(e);
	finish_all(e, t, 3);
	check_quiescent(e);
	gie_style_destroy(e);
}

Test(gie_style, gc_collects_idle_flows_only)
{
	struct gie_style_engine *e = make(2, 0, false, 2000000, 0);
	struct titem t[8];
	struct gie_style_stats s;

	submit_all(e, t, 8, 4, 1); /* f0..f3 at priorities 0/1: 4 flows */
	wait_completed(8);
	/* t0..t3 keep their leases (not done yet): those flows stay. */
	for (unsigned i = 4; i < 8; i++)
		cr_assert_eq(gie_style_done(e, &t[i].it), 0);
	sleep_ms(30);
	gie_style_stats(e, &s);
	cr_assert_eq(s.flows, 4, "leased flows were collected (%lu left)",
		     (unsigned long)s.flows);
	cr_assert_eq(s.flows_collected, 0);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(gie_style_done(e, &t[i].it), 0);
	for (int i = 0; i < 500; i++) {
		gie_style_stats(e, &s);
		if (s.flows == 0)
			break;
		sleep_ms(1);
	}
	cr_assert_eq(s.flows, 0);
	cr_assert_eq(s.flows_collected, 4);
	/* A new request re-creates its flow. */
	prep(&t[0], 0, 4);
	cr_assert_eq(gie_style_submit(e, &t[0].it), 0);
	wait_completed(9);
	cr_assert_eq(gie_style_done(e, &t[0].it), 0);
	gie_style_stats(e, &s);
	cr_assert_eq(s.flows_created, 5);
	check_quiescent(e);
	gie_style_destroy(e);
}

/* Churn: two threads submit items of new flows, cancel some, and reuse
 * items once complete, while the GC collects and the sweep runs. */
struct churn_arg {
	struct gie_style_engine *e;
	unsigned index;
	unsigned long submitted;
	unsigned long bad;
};

#define CHURN_ITEMS  64u
#define CHURN_ROUNDS 150u

static void *
churn_main(void *p)
{
	struct churn_arg *a = p;
	struct titem *t = calloc(CHURN_ITEMS, sizeof(*t));
	bool handled[CHURN_ITEMS], cancelled[CHURN_ITEMS];
	uint64_t rng = 0x5eed + a->index;

	for (unsigned r = 0; r < CHURN_ROUNDS; r++) {
		for (unsigned i = 0; i < CHURN_ITEMS; i++) {
			memset(&t[i], 0, sizeof(t[i]));
			snprintf(t[i].id, sizeof(t[i].id), "c%u.%u.%u", a->index, r,
				 i % 5);
			t[i].it.flow_id = t[i].id;
			t[i].it.flow_id_len = (uint32_t)strlen(t[i].id);
			t[i].it.priority = (int32_t)(i % 2);
			t[i].it.bytes = 1024;
			t[i].it.complete = complete;
			if (gie_style_submit(a->e, &t[i].it) != 0)
				a->bad++;
			a->submitted++;
		}
		for (unsigned i = 0; i < CHURN_ITEMS; i++)
			cancelled[i] = test_rng_next(&rng) % 3 == 0 &&
				       gie_style_cancel(a->e, &t[i].it) == 0;
		/* Take completions back in any order: a dispatched item's slot
		 * goes back at once (waiting in order could hold all slots). */
		unsigned left = CHURN_ITEMS;
		double give_up = test_now_seconds() + 10.0;

		memset(handled, 0, sizeof(handled));
		while (left > 0) {
			bool any = false;
			unsigned o;

			for (unsigned i = 0; i < CHURN_ITEMS; i++) {
				if (handled[i] || atomic_load(&t[i].completions) == 0)
					continue;
				handled[i] = any = true;
				left--;
				o = atomic_load(&t[i].outcome);
				/* A cancel that won decides the outcome; every
				 * other item is dispatched (nothing rejects). */
				if (atomic_load(&t[i].completions) != 1 ||
				    (cancelled[i] ? o != GIE_STYLE_EVICTED_CANCELLED &&
							    o != GIE_STYLE_REJECTED_OTHER
						  : o != GIE_STYLE_DISPATCHED))
					a->bad++;
				if (o == GIE_STYLE_DISPATCHED) {
					atomic_fetch_sub(&inflight, 1);
					gie_style_release(a->e);
				}
				if (gie_style_done(a->e, &t[i].it) != 0)
					a->bad++;
			}
			if (any)
				continue;
			if (test_now_seconds() > give_up) {
				/* Lost: the items may still be queued, so they
				 * are neither reused nor freed. */
				a->bad += left;
				return NULL;
			}
			sched_yield();
		}
	}
	free(t);
	return NULL;
}

Test(gie_style, churn_with_gc_sweep_and_cancels)
{
	struct gie_style_engine *e = make(2, 8, false, 500000, 1000000);
	struct churn_arg a[2] = {{e, 0, 0, 0}, {e, 1, 0, 0}};
	pthread_t th[2];
	struct gie_style_stats s;
	uint64_t decided = 0;

	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, churn_main, &a[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(a[0].bad + a[1].bad, 0, "%lu bad", a[0].bad + a[1].bad);
	cr_assert_eq(atomic_load(&completed), a[0].submitted + a[1].submitted);
	cr_assert_leq(atomic_load(&inflight_max), 8);
	gie_style_stats(e, &s);
	for (unsigned o = 1; o < GIE_STYLE_OUTCOME_COUNT; o++)
		decided += s.outcomes[o];
	cr_assert_eq(decided, a[0].submitted + a[1].submitted);
	cr_assert_gt(s.flows_collected, 0, "the GC collected nothing");
	cr_assert_eq(s.flows_created - s.flows_collected, s.flows);
	check_quiescent(e);
	gie_style_destroy(e);
}
