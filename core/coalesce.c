/*
 * The intake-coalescing controller: see coalesce.h for the cycle and why.
 */
#include "coalesce.h"

static void
set_phase(struct flowq__coalesce *c, enum flowq__coalesce_phase phase, bool on,
	  int64_t len)
{
	atomic_store_explicit(&c->phase, (uint32_t)phase, memory_order_relaxed);
	atomic_store_explicit(&c->on, on, memory_order_relaxed);
	atomic_store_explicit(&c->len, len, memory_order_relaxed);
}

/* The length of a hold that follows decision @p on: doubled while the
 * decisions repeat. */
static int64_t
hold_len(struct flowq__coalesce *c, bool on)
{
	if (c->hold_ns == 0 || on != c->held_on)
		c->hold_ns = FLOWQ__COALESCE_HOLD_NS;
	else if (c->hold_ns < FLOWQ__COALESCE_HOLD_MAX_NS / 2)
		c->hold_ns *= 2;
	else
		c->hold_ns = FLOWQ__COALESCE_HOLD_MAX_NS;
	c->held_on = on;
	return c->hold_ns;
}

void
flowq__coalesce_init(struct flowq__coalesce *c)
{
	atomic_init(&c->start, INT64_MIN);
	atomic_init(&c->len, FLOWQ__COALESCE_PROBE_NS);
	atomic_init(&c->phase, FLOWQ__COALESCE_PROBE_OFF);
	atomic_init(&c->on, false);
	atomic_init(&c->lock, 0);
	c->start_decided = 0;
	c->off_n = 0;
	c->off_ns = 0;
	c->hold_ns = 0;
	c->held_on = false;
	atomic_init(&c->chose_on, 0);
	atomic_init(&c->chose_off, 0);
	atomic_init(&c->dropped, 0);
}

/* One more in a counter only the lock holder writes (coalesce.h). */
static inline void
count(_Atomic uint64_t *n)
{
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Whether PROBE_ON (@p on_n decisions in @p on_ns) beat PROBE_OFF by the
 * margin (coalesce.h): the ratio of the rates r = (on_n / on_ns) / (off_n /
 * off_ns) must be at least WIN_NUM/WIN_DEN, and r - 1 at least
 * FLOWQ__COALESCE_SIGMAS / sqrt(min(on_n, off_n)), compared squared (no
 * libm). In double: the products can pass 2^64. If OFF decided nothing
 * (not idle: that period would have been dropped), ON must have decided
 * SIGMAS^2. */
static bool
coalesce_won(const struct flowq__coalesce *c, uint64_t on_n, int64_t on_ns)
{
	if (c->off_n == 0) /* OFF decided nothing: ON must beat the noise alone */
		return on_n >= (uint64_t)FLOWQ__COALESCE_SIGMAS * FLOWQ__COALESCE_SIGMAS;
	if (on_n == 0 || on_ns <= 0 || c->off_ns <= 0)
		return false;
	double r =
		((double)on_n * (double)c->off_ns) / ((double)c->off_n * (double)on_ns);
	double d = r - 1.0;
	double n = (double)(on_n < c->off_n ? on_n : c->off_n);
	return r * FLOWQ__COALESCE_WIN_DEN >= FLOWQ__COALESCE_WIN_NUM &&
	       d * d * n >= (double)FLOWQ__COALESCE_SIGMAS * FLOWQ__COALESCE_SIGMAS;
}

void
flowq__coalesce_step(struct flowq__coalesce *c, uint64_t decided, int64_t now)
{
	int64_t start = atomic_load_explicit(&c->start, memory_order_relaxed);
	enum flowq__coalesce_phase phase =
		(enum flowq__coalesce_phase)atomic_load_explicit(&c->phase,
								 memory_order_relaxed);
	int64_t want = atomic_load_explicit(&c->len, memory_order_relaxed);
	int64_t len = start == INT64_MIN ? 0 : now - start;
	if (start != INT64_MIN && len < want)
		goto out; /* another dispatcher ended it since our look */
	uint64_t n = decided - c->start_decided;
	if (start == INT64_MIN) {
		/* The first period begins. */
	} else if (len > FLOWQ__COALESCE_OVERRUN * want) {
		/* Idle (or stopped) for most of it: not a rate. A PROBE_ON
		 * that overran counts as a loss, though: the wait itself may
		 * have slowed the rounds that end periods (it ends at the
		 * first round after its length, coalesce_note(), but a round
		 * can be long), and a loss is the safe reading of idle. */
		count(&c->dropped);
		if (phase == FLOWQ__COALESCE_PROBE_ON) {
			count(&c->chose_off);
			set_phase(c, FLOWQ__COALESCE_HOLD, false, hold_len(c, false));
		} else {
			c->hold_ns = 0; /* what held before the idle period is stale */
			set_phase(c, FLOWQ__COALESCE_PROBE_OFF, false,
				  FLOWQ__COALESCE_PROBE_NS);
		}
	} else {
		switch (phase) {
		case FLOWQ__COALESCE_PROBE_OFF:
			c->off_n = n;
			c->off_ns = len;
			set_phase(c, FLOWQ__COALESCE_PROBE_ON, true,
				  FLOWQ__COALESCE_PROBE_NS);
			break;
		case FLOWQ__COALESCE_PROBE_ON: {
			bool on = coalesce_won(c, n, len);
			count(on ? &c->chose_on : &c->chose_off);
			set_phase(c, FLOWQ__COALESCE_HOLD, on, hold_len(c, on));
			break;
		}
		case FLOWQ__COALESCE_HOLD:
			set_phase(c, FLOWQ__COALESCE_PROBE_OFF, false,
				  FLOWQ__COALESCE_PROBE_NS);
			break;
		}
	}
	c->start_decided = decided;
	atomic_store_explicit(&c->start, now, memory_order_relaxed);
out:
	/* Release: the next holder sees this one's state. */
	atomic_store_explicit(&c->lock, 0, memory_order_release);
}
