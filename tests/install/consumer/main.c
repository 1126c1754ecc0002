/*
 * Embedding flowq in an event loop: one engine with two bands, a completion
 * port whose eventfd sits in the loop's epoll set, a backend that can take
 * two requests at a time. Built against the installed headers and library
 * (shared and static) by CTest, and shown verbatim in README.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include <flowq/flowq.h>

/* The host's own request object, with flowq's request embedded. */
struct proxy_req {
	int id;
	const char *tenant;
	struct flowq_req fq;
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

int
main(void)
{
	/* Two bands: interactive (priority 10) before batch (0); at most two
	 * requests in flight to the backend; one dispatcher thread. */
	struct flowq_config cfg;
	flowq_config_init(&cfg);
	struct flowq_band_config bands[2] = {cfg.default_band, cfg.default_band};
	bands[0].priority = 10;
	bands[0].fairness = "round_robin";
	bands[1].priority = 0;
	cfg.bands = bands;
	cfg.nbands = 2;
	cfg.shards = 1;
	cfg.max_requests = 10000;
	cfg.saturation.max_inflight = 2;
	char err[128];
	cfg.errbuf = err;
	cfg.errbuf_size = sizeof(err);

	struct flowq_engine *e;
	int rc = flowq_engine_create(&cfg, &e);
	if (rc) {
		fprintf(stderr, "flowq: %s: %s\n", flowq_strerror(rc), err);
		return 1;
	}
	struct flowq_port *port;
	if (flowq_port_create(e, &port))
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, flowq_port_fd(port), &ev))
		return 1;

	/* Six requests from two tenants at two priorities, read in one
	 * wake-up of the loop: submitted with one call (flowq_submit() takes
	 * them one at a time just as well). */
	static struct proxy_req reqs[6];
	struct flowq_req *batch[6];
	for (int i = 0; i < 6; i++) {
		struct proxy_req *r = &reqs[i];
		r->id = i;
		r->tenant = i % 2 ? "tenant-b" : "tenant-a";
		flowq_req_init(&r->fq);
		r->fq.flow_id = r->tenant;
		r->fq.flow_id_len = (uint32_t)strlen(r->tenant);
		r->fq.priority = i < 3 ? 0 : 10;
		r->fq.bytes = 512;
		r->fq.ttl_ns = 5000000000; /* 5 s in the queue at most */
		flowq_req_set_port(&r->fq, port);
		batch[i] = &r->fq;
	}
	int rcs[6];
	flowq_submit_batch(e, batch, 6, rcs);
	for (int i = 0; i < 6; i++)
		if (rcs[i]) /* rejected on the spot: no completion will come */
			printf("request %d rejected: %s (%s)\n", i,
			       flowq_outcome_str(flowq_req_outcome(batch[i])),
			       flowq_cause_str(flowq_req_cause(batch[i])));

	/* The event loop: wait for the port, drain it, "send" dispatched
	 * requests to the backend, which answers at once here: release. */
	int finished = 0;
	while (finished < 6) {
		if (epoll_wait(ep, &ev, 1, 5000) <= 0)
			return 2; /* nothing for 5 s: cannot happen here */
		struct flowq_req *done[8], *backend_done[8];
		size_t n;
		while ((n = flowq_port_drain(port, done, 8)) > 0) {
			size_t nb = 0;
			for (size_t k = 0; k < n; k++) {
				struct proxy_req *r = container_of(done[k], struct proxy_req, fq);
				enum flowq_outcome o = flowq_req_outcome(&r->fq);
				printf("request %d (%s, priority %d): %s\n", r->id, r->tenant,
				       (int)r->fq.priority, flowq_outcome_str(o));
				if (o == FLOWQ_DISPATCHED)
					backend_done[nb++] = &r->fq;
				finished++;
			}
			/* The backend is done with them: their slots come back
			 * (one call; flowq_release() per request works too). */
			flowq_release_batch(e, backend_done, nb, NULL);
			if (n < 8)
				break;
		}
	}

	struct flowq_stats st;
	flowq_stats_engine(e, &st);
	printf("dispatched %llu, queued %llu\n", (unsigned long long)st.outcomes[FLOWQ_DISPATCHED],
	       (unsigned long long)st.queued);
	flowq_engine_destroy(e); /* evicts anything still queued, then returns */
	flowq_port_destroy(port);
	printf("consumer ok\n");
	return st.outcomes[FLOWQ_DISPATCHED] == 6 ? 0 : 3;
}
