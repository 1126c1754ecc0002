/*
 * The intake-coalescing controller (core/coalesce.h): its cycle of probes
 * and holds, the margin the wait must win by, dropped periods and the
 * lock, driven on a made-up clock and decided count.
 */
#include <stdbool.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "coalesce.h"

#define PROBE FLOWQ__COALESCE_PROBE_NS
#define HOLD  FLOWQ__COALESCE_HOLD_NS

/* The engine's running total of decisions, as the dispatchers sum it. */
static uint64_t total;

/* What a dispatcher does every few rounds: step if due and the lock is
 * free. @return whether the wait runs afterwards. */
static bool
tick(struct flowq__coalesce *c, uint64_t decided_since, int64_t now)
{
	total += decided_since;
	if (flowq__coalesce_due(c, now)) {
		cr_assert(flowq__coalesce_trylock(c), "nobody else holds it");
		flowq__coalesce_step(c, total, now);
	}
	return flowq__coalesce_on(c);
}

static uint32_t
phase(const struct flowq__coalesce *c)
{
	return atomic_load(&c->phase);
}

/* A controller whose first period (PROBE_OFF) starts at @p t0. */
static void
started(struct flowq__coalesce *c, int64_t t0)
{
	flowq__coalesce_init(c);
	total = 1000; /* decided before the first step: not timed */
	cr_assert(flowq__coalesce_due(c, t0), "no period yet: due at once");
	cr_assert_not(tick(c, 0, t0), "the wait starts off");
	cr_assert_eq(phase(c), FLOWQ__COALESCE_PROBE_OFF);
	cr_assert_not(flowq__coalesce_due(c, t0 + PROBE - 1));
}

/* Run both probes: @p off decisions in PROBE_OFF, @p on in PROBE_ON, each
 * lasting exactly PROBE from @p t0. @return whether the hold runs the
 * wait. */
static bool
probe_pair(struct flowq__coalesce *c, int64_t t0, uint64_t off, uint64_t on)
{
	cr_assert_eq(phase(c), FLOWQ__COALESCE_PROBE_OFF);
	cr_assert_not(tick(c, off, t0 + PROBE - 1), "PROBE_OFF runs without the wait");
	cr_assert(tick(c, 0, t0 + PROBE), "PROBE_ON runs the wait");
	cr_assert_eq(phase(c), FLOWQ__COALESCE_PROBE_ON);
	cr_assert(tick(c, on, t0 + 2 * PROBE - 1), "still PROBE_ON");
	bool held = tick(c, 0, t0 + 2 * PROBE);
	cr_assert_eq(phase(c), FLOWQ__COALESCE_HOLD);
	return held;
}

/* A fresh controller's decision after probes of @p off and @p on
 * decisions, each lasting PROBE: whether the hold runs the wait. */
static void
expect_decision(uint64_t off, uint64_t on, bool want, const char *why)
{
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert_eq(probe_pair(&c, 0, off, on), want, "%s", why);
}

Test(coalesce, the_wait_is_kept_when_it_raises_the_rate)
{
	struct flowq__coalesce c;
	started(&c, 1000);
	cr_assert(probe_pair(&c, 1000, 10000, 20000), "twice the rate: the wait holds");
	cr_assert_eq(c.chose_on, 1);
	/* The hold lasts its length, with the wait on throughout. */
	int64_t h0 = 1000 + 2 * PROBE;
	cr_assert(tick(&c, 50000, h0 + HOLD - 1));
	/* Then the cycle starts again, with the wait off. */
	cr_assert_not(tick(&c, 0, h0 + HOLD));
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_PROBE_OFF);
	cr_assert_not(probe_pair(&c, h0 + HOLD, 20000, 10000),
		      "half the rate: this time the wait is dropped");
	cr_assert_eq(c.chose_off, 1);
}

Test(coalesce, the_wait_is_dropped_when_it_lowers_the_rate)
{
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert_not(probe_pair(&c, 0, 9000, 1000),
		      "a closed loop 9x slower with the wait");
	cr_assert_not(tick(&c, 0, 2 * PROBE + HOLD / 2), "off for the hold");
}

Test(coalesce, a_tie_keeps_the_wait_off)
{
	expect_decision(16000, 16000, false,
			"an engine that keeps up measures the same rate either way");
}

Test(coalesce, the_wait_must_win_by_the_margin)
{
	uint64_t off = 16 * 1000;
	uint64_t on = off / FLOWQ__COALESCE_WIN_DEN * FLOWQ__COALESCE_WIN_NUM;
	expect_decision(off, on, true, "exactly the margin wins");
	expect_decision(off, on - 1, false, "just under it loses");
}

Test(coalesce, rates_are_per_ns_of_what_the_period_lasted)
{
	/* Dispatchers read the clock every few rounds, so periods end late
	 * by different amounts: PROBE_ON here lasts 3 probes' time with
	 * twice the decisions, a lower rate. */
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert(tick(&c, 10000, PROBE), "PROBE_ON begins");
	cr_assert_not(tick(&c, 20000, PROBE + 3 * PROBE),
		      "2x the decisions in 3x the time is a loss");
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_HOLD);
}

Test(coalesce, nothing_decided)
{
	uint64_t noise = FLOWQ__COALESCE_SIGMAS * FLOWQ__COALESCE_SIGMAS;
	expect_decision(0, noise, true,
			"OFF decided nothing, ON more than the noise alone");
	expect_decision(0, noise - 1, false,
			"OFF decided nothing, ON too little to tell");
	expect_decision(0, 0, false, "neither decided anything");
	expect_decision(16000, 0, false, "ON decided nothing where OFF did: a loss");
}

Test(coalesce, an_overrun_period_is_dropped)
{
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert(probe_pair(&c, 0, 1000, 4000));
	/* The engine went idle during the hold: no tick for a long time. */
	int64_t t = 2 * PROBE + FLOWQ__COALESCE_OVERRUN * HOLD + 1;
	cr_assert_not(tick(&c, 10, t), "the wait is off after an idle period");
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_PROBE_OFF);
	cr_assert_eq(c.dropped, 1);
	/* A probe that overran is not compared either: the cycle restarts. */
	cr_assert_not(tick(&c, 10, t + FLOWQ__COALESCE_OVERRUN * PROBE + 1));
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_PROBE_OFF);
	cr_assert_eq(c.dropped, 2);
	cr_assert_eq(c.chose_on + c.chose_off, 1, "no decision from either");
	/* Exactly OVERRUN times the length still counts. */
	int64_t t2 = t + FLOWQ__COALESCE_OVERRUN * PROBE + 1;
	cr_assert(tick(&c, 10, t2 + FLOWQ__COALESCE_OVERRUN * PROBE), "PROBE_ON");
	cr_assert_eq(c.dropped, 2);
}

/* What flowq_stats_coalesce() reads on an idle engine: a period that has
 * lasted over OVERRUN times its length is overrun (the wait it shows is
 * not what the next round will do), exactly OVERRUN times is not, and the
 * step that ends it starts a period that is not. */
Test(coalesce, overrun_is_what_the_next_step_drops)
{
	struct flowq__coalesce c;
	flowq__coalesce_init(&c);
	cr_assert_not(flowq__coalesce_overrun(&c, 123456789), "no period yet");
	started(&c, 0);
	cr_assert(probe_pair(&c, 0, 1000, 4000));
	int64_t end = 2 * PROBE + FLOWQ__COALESCE_OVERRUN * HOLD;
	cr_assert_not(flowq__coalesce_overrun(&c, end), "exactly OVERRUN times counts");
	cr_assert(flowq__coalesce_overrun(&c, end + 1));
	cr_assert(flowq__coalesce_on(&c), "the flag still says on");
	cr_assert_not(tick(&c, 1, end + 1), "and the next step turns it off");
	cr_assert_not(flowq__coalesce_overrun(&c, end + 1));
}

Test(coalesce, one_dispatcher_steps_at_a_time)
{
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert(flowq__coalesce_due(&c, PROBE));
	cr_assert(flowq__coalesce_trylock(&c));
	cr_assert_not(flowq__coalesce_trylock(&c), "a second dispatcher goes on");
	flowq__coalesce_step(&c, total + 100, PROBE);
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_PROBE_ON);
	/* One that saw the period due before that step, and got the lock
	 * after it, changes nothing: the new period is not due. */
	cr_assert(flowq__coalesce_trylock(&c), "the step released the lock");
	flowq__coalesce_step(&c, total + 200, PROBE + 1);
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_PROBE_ON);
	cr_assert_eq(atomic_load(&c.start), PROBE, "the period still began at PROBE");
	cr_assert_eq(c.start_decided, total + 100);
	cr_assert(flowq__coalesce_trylock(&c), "released again");
	atomic_store(&c.lock, 0);
}

/* The same decision again doubles the hold, up to the cap; a different
 * one, or an idle period, starts again from FLOWQ__COALESCE_HOLD_NS. */
Test(coalesce, holds_grow_while_the_decision_repeats)
{
	struct flowq__coalesce c;
	int64_t t = 0;
	started(&c, t);
	int64_t want = HOLD;
	for (int i = 0; i < 8; i++) {
		cr_assert_not(probe_pair(&c, t, 9000, 1000));
		cr_assert_eq(atomic_load(&c.len), want, "hold %d", i);
		t += 2 * PROBE + want;
		cr_assert_not(tick(&c, 0, t));
		want = want * 2 > FLOWQ__COALESCE_HOLD_MAX_NS
			       ? FLOWQ__COALESCE_HOLD_MAX_NS
			       : want * 2;
	}
	cr_assert_eq(atomic_load(&c.len), PROBE, "PROBE_OFF after the hold");
	/* The other decision: back to the shortest hold. */
	cr_assert(probe_pair(&c, t, 1000, 9000));
	cr_assert_eq(atomic_load(&c.len), HOLD);
	t += 2 * PROBE + HOLD;
	cr_assert_not(tick(&c, 0, t));
	cr_assert(probe_pair(&c, t, 1000, 9000));
	cr_assert_eq(atomic_load(&c.len), 2 * HOLD);
	/* Idle past the overrun: dropped, and the next hold is the shortest. */
	t += 2 * PROBE + FLOWQ__COALESCE_OVERRUN * 2 * HOLD + 1;
	cr_assert_not(tick(&c, 0, t));
	cr_assert_eq(c.dropped, 1);
	cr_assert(probe_pair(&c, t, 1000, 9000));
	cr_assert_eq(atomic_load(&c.len), HOLD);
}

/* Few decisions per probe (a slow closed loop): the wait must win by more
 * than counting noise, SIGMAS / sqrt(n). */
Test(coalesce, few_decisions_need_a_wider_margin)
{
	expect_decision(100, 115, false, "+15 % of 100: within the noise");
	expect_decision(100, 131, true, "+31 % of 100: over 3 / sqrt(100)");
	expect_decision(100, 129, false,
			"+29 %: under 3 / sqrt(100) (n is the smaller count, not 129)");
	expect_decision(10000, 10700, true, "+7 % of 10,000: the 1/16 margin rules");
	expect_decision(10000, 10600, false, "+6 %: under 1/16");
}

/* A PROBE_ON that overran (the wait slowed the rounds that end periods, or
 * the engine went idle) is a loss, not dropped: the wait holds off. */
Test(coalesce, an_overrun_probe_on_is_a_loss)
{
	struct flowq__coalesce c;
	started(&c, 0);
	cr_assert(tick(&c, 1000, PROBE), "PROBE_ON begins");
	int64_t t = PROBE + FLOWQ__COALESCE_OVERRUN * PROBE + 1;
	cr_assert_not(tick(&c, 100000, t), "however many it decided");
	cr_assert_eq(phase(&c), FLOWQ__COALESCE_HOLD);
	cr_assert_eq(atomic_load(&c.len), HOLD);
	cr_assert_eq(c.chose_off, 1);
	cr_assert_eq(c.dropped, 1);
}
