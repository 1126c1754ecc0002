/*
 * Specs built in code for the simulator's tests (no YAML: the loader is
 * tested on its own). Header-only; each suite gets its own copy.
 *
 *   struct tspec t;
 *   tspec_init(&t);                     // 2 s, drain 1 s, 100 ms windows
 *   struct sim_flow_spec *f = tspec_flow(&t, "a", 10);
 *   f->arrival.rate = 100;              // Poisson by default
 *   ... run sim_run(&t.s, ...)
 */
#ifndef FLOWQ_TESTS_SIM_TEST_SPEC_H
#define FLOWQ_TESTS_SIM_TEST_SPEC_H

#include <string.h>

#include "sim.h"

#define TSPEC_MAX_FLOWS 8
#define TSPEC_MAX_BANDS 4
#define MS              INT64_C(1000000)
#define SEC             INT64_C(1000000000)

struct tspec {
	struct sim_spec s;
	struct sim_flow_spec flows[TSPEC_MAX_FLOWS];
	struct flowq_band_config bands[TSPEC_MAX_BANDS];
	struct sim_slowdown slow[2];
};

static inline struct sim_dist
tconst(double v)
{
	return (struct sim_dist){.kind = SIM_DIST_CONST, .p1 = v};
}

static inline struct sim_dist
texp(double mean)
{
	return (struct sim_dist){.kind = SIM_DIST_EXP, .p1 = mean};
}

/* Defaults: seed 1, 2 s of arrivals, 1 s of drain, 100 ms windows, 2
 * shards, a backend of 4 slots serving each request for 1 ms, the engine's
 * gate at 4 in flight, grace 1 ms, 2 producers. */
static inline void
tspec_init(struct tspec *t)
{
	memset(t, 0, sizeof(*t));
	struct sim_spec *s = &t->s;
	s->name = "test";
	s->source = "<test>";
	s->mode = SIM_MODE_VIRTUAL;
	s->seed = 1;
	s->duration_ns = 2 * SEC;
	s->drain_ns = 1 * SEC;
	s->window_ns = 100 * MS;
	s->producers = 2;
	s->inversion_grace_ns = 1 * MS;
	flowq_config_init(&s->engine.config);
	s->engine.config.shards = 2;
	s->engine.config.saturation.max_inflight = 4;
	s->backend.slots = 4;
	s->backend.service_ns = tconst(1e6);
	s->flows = t->flows;
}

/* Add a flow class (count 1, weight 1, Poisson at 100/s, 1000 bytes). Set
 * its count before adding the next class (that class's `first` follows
 * from it). */
static inline struct sim_flow_spec *
tspec_flow(struct tspec *t, const char *id, int32_t priority)
{
	struct sim_flow_spec *f = &t->flows[t->s.nflows++];
	/* The previous classes' counts are final once another is added. */
	if (f > t->flows)
		f->first = f[-1].first + f[-1].count;
	f->id = (char *)id;
	f->count = 1;
	f->priority = priority;
	f->weight = 1;
	f->arrival.kind = SIM_ARRIVAL_POISSON;
	f->arrival.rate = 100;
	f->size = tconst(1000);
	f->line = (unsigned)t->s.nflows;
	return f;
}

/* Configure band @p priority with @p fairness. */
static inline struct flowq_band_config *
tspec_band(struct tspec *t, int32_t priority, const char *fairness)
{
	struct flowq_config *c = &t->s.engine.config;
	struct flowq_band_config *b = &t->bands[c->nbands++];
	*b = c->default_band;
	b->priority = priority;
	b->fairness = fairness;
	c->bands = t->bands;
	return b;
}

#endif
