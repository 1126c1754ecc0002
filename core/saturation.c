/*
 * The saturation detector port on the host side: the engine's detector
 * state (create/destroy), flowq_endpoint_report() (host-fed metrics for the
 * "utilization" detector) and flowq_saturation() (the current value, any
 * detector). The dispatcher's side (the gate) is in dispatch.c: gate_take()
 * asks the detector, work_visible() re-checks before sleeping, and a blocked
 * round schedules its next look (callback_poll_ns; the utilization
 * detector's staleness horizon).
 *
 * The utilization detector's algorithm lives in policies/
 * saturation_utilization.c, with no engine dependency (DESIGN.md's layout:
 * policies/ holds saturation_*); this file only validates host input, reads
 * the clock and connects the detector's wake to the gate's wake path.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine.h"
#include "saturation_utilization.h"

/* The detector's wake: dispatchers waiting for the gate look again. */
static void
util_wake(void *ctx)
{
	flowq__gate_wake(ctx);
}

int
flowq__saturation_init(struct flowq_engine *e)
{
	const struct flowq_saturation_config *sc = &e->cfg.saturation;
	if (!e->gate_util)
		return 0;
	struct flowq__util_config uc = {
		.endpoints = sc->endpoints,
		.shards = e->nshards,
		.queue_depth_threshold = sc->queue_depth_threshold,
		.kv_cache_util_threshold = sc->kv_cache_util_threshold,
		.staleness_ns = sc->metrics_staleness_ns,
		.dispatch_cost = sc->dispatch_cost,
		.wake = util_wake,
		.wake_ctx = e,
	};
	return flowq__util_create(&uc, e->alloc, &e->util);
}

void
flowq__saturation_fini(struct flowq_engine *e)
{
	if (e->util) {
		flowq__util_destroy(e->util, e->alloc);
		e->util = NULL;
	}
}

int
flowq_endpoint_report(struct flowq_engine *e, unsigned endpoint,
		      uint64_t waiting_queue_size, double kv_cache_usage, int64_t at_ns)
{
	if (!e)
		return -EFAULT;
	if (!e->gate_util || endpoint >= flowq__util_endpoints(e->util))
		return -EINVAL;
	/* Written so that NaN fails too. */
	if (!(kv_cache_usage >= 0.0 && kv_cache_usage <= 1.0))
		return -EINVAL;
	int64_t now = flowq__now(e);
	if (at_ns > now)
		return -EINVAL;
	return flowq__util_report(e->util, endpoint, waiting_queue_size, kv_cache_usage,
				  at_ns, now);
}

/* In-flight use against the concurrency limits, as a fraction (0 without
 * limits). */
static double
inflight_ratio(const struct flowq_engine *e)
{
	if (!e->gate_limited)
		return 0.0;
	const struct flowq_saturation_config *sc = &e->cfg.saturation;
	uint64_t req, bytes;
	flowq__cap_in_use(&e->gate, &req, &bytes);
	double r = 0.0;
	if (sc->max_inflight)
		r = (double)req / (double)sc->max_inflight;
	if (sc->max_inflight_bytes) {
		double b = (double)bytes / (double)sc->max_inflight_bytes;
		if (b > r)
			r = b;
	}
	return r;
}

int
flowq_saturation(struct flowq_engine *e, double *r_saturation)
{
	if (!e || !r_saturation)
		return -EFAULT;
	if (e->gate_callback) {
		*r_saturation =
			e->cfg.saturation.callback(e->cfg.saturation.callback_ctx);
		return 0;
	}
	double sat = inflight_ratio(e);
	if (e->gate_util) {
		double u = flowq__util_saturation(e->util, flowq__now(e));
		if (u > sat)
			sat = u;
	}
	*r_saturation = sat;
	return 0;
}
