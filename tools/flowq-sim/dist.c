/*
 * dist.c: the simulator's random streams and distributions (sim.h).
 *
 * The generator is xoshiro256** (Blackman and Vigna), seeded through
 * splitmix64 from (seed, stream): a run draws from one stream per flow, one
 * for the backend and one for the trace assignment, so that one flow's
 * draws do not depend on how the events of other flows interleave (adding a
 * flow to a spec leaves the others' arrivals unchanged).
 *
 * Sampling: inversion for exp and pareto, Box-Muller (one value per call,
 * the sine half discarded: no hidden state, so a stream's draws depend only
 * on how many were made) for lognormal. Every draw is clamped at 0.
 */
#include <math.h>

#include "sim.h"

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void
sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * UINT64_C(0xd1342543de82ef95));
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
sim_rng_next(struct sim_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
sim_rng_unit(struct sim_rng *r)
{
	/* 53 random bits, offset by half a step: strictly inside (0, 1). */
	return ((double)(sim_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double
sim_dist_sample(const struct sim_dist *d, struct sim_rng *r)
{
	double v;
	switch (d->kind) {
	case SIM_DIST_CONST:
		v = d->p1;
		break;
	case SIM_DIST_UNIFORM:
		v = d->p1 + (d->p2 - d->p1) * sim_rng_unit(r);
		break;
	case SIM_DIST_EXP:
		v = -log(sim_rng_unit(r)) * d->p1;
		break;
	case SIM_DIST_LOGNORMAL: {
		double u1 = sim_rng_unit(r), u2 = sim_rng_unit(r);
		double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
		v = d->p1 * exp(d->p2 * z);
		break;
	}
	case SIM_DIST_PARETO:
		v = d->p1 / pow(sim_rng_unit(r), 1.0 / d->p2);
		break;
	default:
		v = 0;
	}
	return v > 0 ? v : 0;
}

double
sim_dist_mean(const struct sim_dist *d)
{
	switch (d->kind) {
	case SIM_DIST_CONST:
		return d->p1;
	case SIM_DIST_UNIFORM:
		return (d->p1 + d->p2) / 2;
	case SIM_DIST_EXP:
		return d->p1;
	case SIM_DIST_LOGNORMAL:
		return d->p1 * exp(d->p2 * d->p2 / 2);
	case SIM_DIST_PARETO:
		return d->p2 > 1 ? d->p1 * d->p2 / (d->p2 - 1) : INFINITY;
	}
	return 0;
}
