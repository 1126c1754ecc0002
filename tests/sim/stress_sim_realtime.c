/*
 * stress_sim_realtime: the simulator's real-time mode (tools/flowq-sim/
 * run.c) under genuine concurrency, as a plain executable so that it runs
 * under TSan (Criterion cannot): producer threads, the engine's
 * dispatchers and the collector hand requests to each other through the
 * MPSC queues and the producers' inboxes. Three configurations (1, 2 and 4
 * shards and producers; displacement, cancels, TTLs, closed loops, two
 * bands); each must conserve every request (sim_result.conserved: exactly
 * one outcome each, sums per flow, band and total, the engine's counters).
 *
 *   stress_sim_realtime [SECONDS]   (per configuration; default 1)
 *
 * Prints one line per configuration and
 *   SUMMARY stress_sim_realtime runs=R offered=N violations=V
 * and exits 1 if a run failed or broke conservation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"
#include "sim_test_spec.h"

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1;
	if (!(secs > 0)) {
		fprintf(stderr, "usage: stress_sim_realtime [SECONDS]\n");
		return 2;
	}
	unsigned violations = 0, runs = 0;
	uint64_t offered = 0;
	static const unsigned conf[][2] = {
		{1, 1}, {2, 2}, {4, 4}}; /* shards, producers */
	for (size_t c = 0; c < sizeof(conf) / sizeof(conf[0]); c++) {
		struct tspec t;
		tspec_init(&t);
		t.s.mode = SIM_MODE_REALTIME;
		t.s.duration_ns = (int64_t)(secs * 1e9);
		t.s.drain_ns = 200 * MS;
		t.s.producers = conf[c][1];
		t.s.engine.config.shards = conf[c][0];
		t.s.engine.config.max_requests = 64;
		t.s.engine.config.displacement = "most_over_share";
		t.s.engine.config.saturation.max_inflight = 8;
		t.s.backend.slots = 8;
		t.s.backend.service_ns = texp(1e6);
		struct sim_flow_spec *a = tspec_flow(&t, "a", 10);
		a->count = 3;
		a->arrival.rate = 800;
		a->cancel_prob = 0.2;
		a->cancel_after_ns = texp(1e6);
		a->ttl_ns = 20 * MS;
		struct sim_flow_spec *b = tspec_flow(&t, "b", 0);
		b->count = 4;
		b->arrival.kind = SIM_ARRIVAL_CLOSED;
		b->arrival.clients = 8;
		b->arrival.think_ns = texp(0.2e6);
		b->size = texp(3000);
		struct sim_run_opts opts = {.mode = SIM_MODE_REALTIME};
		struct sim_result r;
		char err[256] = "";
		int rc = sim_run(&t.s, &opts, &r, err, sizeof(err));
		runs++;
		if (rc != 0) {
			fprintf(stderr, "stress_sim_realtime: run %zu failed: %d %s\n", c,
				rc, err);
			violations++;
			continue;
		}
		printf("shards=%u producers=%u offered=%" PRIu64 " dispatched=%" PRIu64
		       " cancelled=%" PRIu64 " displaced=%" PRIu64 " expired=%" PRIu64
		       " shutdown=%" PRIu64 " conserved=%d%s%s\n",
		       conf[c][0], conf[c][1], r.total.offered, r.total.dispatched,
		       r.total.cancelled, r.total.displaced, r.total.expired,
		       r.total.shutdown, r.conserved,
		       r.conserved ? "" : " error=", r.conservation_error);
		offered += r.total.offered;
		if (!r.conserved || r.total.dispatched == 0)
			violations++;
		sim_result_free(&r);
	}
	printf("SUMMARY stress_sim_realtime runs=%u offered=%" PRIu64 " violations=%u\n",
	       runs, offered, violations);
	return violations ? 1 : 0;
}
