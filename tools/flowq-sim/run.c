/*
 * run.c: runs a spec against the real engine and a modelled backend
 * (sim.h: sim_run, sim_result_free).
 *
 * The model. Flows submit requests (struct sreq: a struct flowq_req plus
 * the simulator's bookkeeping, from a pool that grows in chunks of
 * POOL_CHUNK and is never freed before the run ends: no allocation per
 * request after warm-up) through flow handles (flowq_flow_get once per
 * flow, weight via flowq_flow_set_weight). A request the engine dispatches
 * goes to the backend: `slots` requests are served at once, the rest wait
 * in the backend's FIFO (the queue a saturated backend builds when the
 * engine's gate lets more through than it can serve). Service time = the
 * trace row's service (or a draw from the backend's distribution) + bytes
 * x ns_per_byte, times the product of the slowdown factors active when the
 * service starts; at its end the request is released (flowq_release).
 * Arrival processes: Poisson, on/off (Poisson during on periods; a flow
 * starts in an on period), closed loop (each client submits, waits for the
 * outcome, and for the backend's completion if dispatched, thinks, and
 * submits again; it waits at least MIN_THINK_NS, so a client whose
 * requests are rejected at once cannot stall the clock), and trace rows.
 * Any process submits only in its flow's window [start, stop) (stop 0 =
 * the duration). A request with cancel_prob is cancelled (flowq_cancel)
 * cancel_after after its submit if it is still queued; only a cancel that
 * wins counts (it shows as a cancelled outcome).
 *
 * Random draws: one stream per flow (SIM_STREAM_FLOW + k; in this order
 * per request: size, cancel decision, cancel delay; arrival gaps, on/off
 * periods and think times as they come), one for the backend's service
 * times (SIM_STREAM_BACKEND, in service start order), one for the trace's
 * assignment (trace.c).
 *
 * Virtual mode: a discrete-event simulation on a simulated clock (ns from
 * 0) that is the engine's clock, the engine in polled mode. Events live in
 * one intrusive 4-ary heap (flowq_heap) keyed by (time, seq), seq the order
 * of scheduling, so ties are broken the same way every run: per flow its
 * next arrival (or on/off switch), per closed-loop client its next submit,
 * the next trace row, per request its cancel (while queued) or its service
 * end (in service), the end of arrivals (duration) and the last moment of
 * the drain (duration + drain). The loop takes the earlier of the heap's
 * next event and the engine's next deadline (flowq_shard_poll's
 * r_next_deadline over all shards: TTL expiries, displacement retries,
 * saturation re-checks), moves the clock there, handles the event, and
 * polls every shard (again, up to MAX_PASSES times, while a shard says more
 * work is already visible or, with several shards, while a pass decided
 * outcomes: see poll_all), with the completions running inside the polls.
 * flowq_shard_fd() is never called: a host that polls in its own loop pays
 * no eventfd. With the utilization detector the backend reports its
 * endpoints' metrics periodically (backend_metrics). After the
 * duration no arrival is scheduled; the run stops when the engine's queues
 * and the backend are empty, or at duration + drain. Then the engine's own
 * counters (flowq_stats_engine) are compared with the simulator's, the
 * handles are put and the engine destroyed: what is still queued gets its
 * shutdown outcome, what is still in the backend is dropped (not
 * completed, not released: after destroy it is the host's). Same spec and
 * seed: the same events in the same order, the same result.
 *
 * Real-time mode: the engine threaded (its dispatchers), on the wall
 * clock (CLOCK_MONOTONIC; sim time = ns since the run began). `producers`
 * threads replay the same arrival processes: flow k belongs to producer k
 * mod producers, which alone draws from the flow's stream, keeps its
 * events in a heap of its own and sleeps (a condition variable, timed) until
 * the next is due. Submits and outcomes are handed to the calling thread,
 * the collector, through two lock-free MPSC queues (flowq_mpsc, a wake-up
 * under a mutex only when a queue goes from empty to non-empty): the
 * producer posts each request after its submit returned, the completion
 * callback (on a dispatcher) posts it with its outcome; the collector does
 * all the accounting (the same code as virtual mode, single-threaded) and
 * is also the backend: a heap of service ends and cancels, and the FIFO.
 * A request is done with when both of its records arrived and it left the
 * backend; it goes back to its producer's pool through the producer's
 * inbox (a mutex-protected list; a closed-loop client's next submit is
 * scheduled from there). Time series in real-time mode are taken when the
 * collector sees the records (microseconds late, in arrival order at the
 * collector), so windows and inversions are approximate; counts and
 * conservation are exact.
 *
 * Windows (both modes): at each boundary the bands' depth, their Jain's
 * index (sim.h, sim_band_result.win_jain) and each flow's bytes and share
 * are recorded. Up to 2 x SIM_MAX_WINDOWS windows (duration and drain);
 * per-flow windows only while flows x windows <= FLOW_WIN_CELLS (else
 * win_bytes/win_share are NULL). Cost of a boundary: O(bands + flows with
 * demand in the window, log of those).
 *
 * Inversions: each band keeps its queued requests in submit order (an
 * intrusive list): a dispatch of band b counts one if a more important
 * band's oldest queued request is older than inversion_grace. O(bands) per
 * dispatch.
 *
 * Cost per request (virtual): a few heap operations O(log events), the
 * engine's own work, one poll of every shard per event (two after a
 * dispatch with several shards). Measured (2 vCPUs shared with other
 * builds): 600 s of 1000 requests/s, 18 flows in two bands, 16 slots:
 * 1.2 M events in 0.58 s of CPU with 1 shard (~1000 simulated s per CPU
 * second, 2 M events/s), 0.74 s with 2 shards, 0.98 s with 4.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup under -std=c11 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flowq/heap.h>
#include <flowq/list.h>
#include <flowq/mpsc.h>

#include "sim.h"

#define POOL_CHUNK     1024u
#define MAX_PASSES     64
#define STALL_NS       INT64_C(1000)       /* re-poll after MAX_PASSES */
#define MIN_THINK_NS   INT64_C(1000)       /* closed loop: least wait */
#define FLOW_WIN_CELLS (UINT64_C(1) << 22) /* flows x windows, per-flow series */
#define MAX_WIN_ALLOC  (2u * SIM_MAX_WINDOWS)
#define NONE32         UINT32_MAX

enum ev_kind {
	EV_ARRIVAL, /* a flow's next arrival, or its on/off switch */
	EV_CLIENT,  /* a closed-loop client's next submit */
	EV_TRACE,   /* the next trace row (per producer in real time) */
	EV_CANCEL,  /* a request's cancel */
	EV_DONE,    /* a request's service end */
	EV_END,     /* the duration: arrivals stop */
	EV_STOP,    /* duration + drain: the run stops */
	EV_METRICS, /* utilization detector: the backend reports its metrics */
};

struct ev {
	struct flowq_heap_node hn;
	uint8_t kind;
};

/* A heap of events with its slot array. */
struct evheap {
	struct flowq_heap h;
	struct flowq_heap_node **slots;
	uint64_t seq;
};

enum rt_bits {
	RT_SUB = 1, /* the producer's record arrived */
	RT_OUT = 2, /* the completion's record arrived */
};

struct run;

struct sreq {
	struct flowq_req req;
	struct run *run;
	/* EV_CANCEL while queued (if it will be cancelled), EV_DONE in
	 * service. */
	struct ev ev;
	/* Its band's FIFO while queued; the backend's FIFO while waiting for
	 * a slot; its producer's inbox on the way back (real time). */
	struct flowq_list_node link;
	struct sreq *next_free;
	int64_t submit_ns;
	int64_t service_ns; /* trace's, or -1: the backend's distribution */
	int64_t cancel_at;  /* -1: not cancelled */
	int64_t svc_ns;     /* drawn at service start */
	int64_t fin_ns;     /* when it was done with */
	uint32_t flow;
	uint32_t client;   /* NONE32: open loop */
	uint32_t outcomes; /* completions seen: must end at 1 if queued */
	bool queued;       /* submit returned 0 */
	/* Real time. */
	struct flowq_mpsc_node sub_link, out_link;
	uint8_t rt_seen;
	int rt_outcome;
	int64_t rt_out_ns;
	unsigned producer;
};

struct rflow {
	const struct sim_flow_spec *cls;
	struct flowq_flow *h; /* NULL: by id (no band: rejected) */
	const char *id;
	uint32_t id_len;
	uint32_t band;
	unsigned producer;
	struct sim_rng rng;
	struct ev ev; /* EV_ARRIVAL */
	bool on, toggle;
	int64_t start_ns, stop_ns, period_end;
	double mean_gap_ns; /* 1e9 / rate */
	uint32_t client0;   /* first client, in run->clients */
	/* Live accounting. */
	uint64_t queued, queued_bytes;
	uint64_t w_off, w_got, w_backlog;
	bool w_listed;
};

struct rclient {
	struct ev ev; /* EV_CLIENT */
	uint32_t flow;
};

struct rband {
	struct flowq_list fifo; /* queued requests, in submit order */
	uint64_t queued;
	uint64_t depth_max;
	uint64_t w_bytes;
	uint32_t *active; /* flows listed for the window's Jain */
	size_t nactive, cap;
	double jain_sum;
	size_t jain_n;
};

/* Real time: one producer thread. */
struct producer {
	struct run *run;
	unsigned index;
	pthread_t thread;
	bool started;
	struct evheap heap;
	struct ev trace_ev;
	size_t trace_next;
	struct sreq *free;
	void **chunks;
	size_t nchunks, chunks_cap;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct flowq_list inbox; /* finished requests, under mu */
	int err;
};

struct run {
	const struct sim_spec *spec;
	const struct sim_run_opts *opts;
	struct sim_result *r;
	enum sim_mode mode;
	struct flowq_engine *e;
	unsigned nshards;
	int64_t now;
	struct evheap heap;
	struct rflow *flows;
	size_t nflows;
	struct rclient *clients;
	size_t nclients;
	struct rband *bands;
	size_t nbands;
	struct sim_trace trace;
	size_t trace_next;
	struct ev trace_ev, end_ev, stop_ev, metrics_ev;
	int64_t metrics_every; /* > 0: the engine's detector is utilization */
	unsigned endpoints;
	bool draining, stop, closed;
	/* Backend. */
	struct flowq_list bq;
	uint64_t bq_len;
	uint32_t active;
	struct sim_rng brng;
	double busy_ns;
	/* Request pool (virtual mode; real time: per producer). */
	struct sreq *free;
	void **chunks;
	size_t nchunks, chunks_cap;
	uint64_t outstanding; /* requests out of the pools */
	/* Windows. */
	size_t wcur, wcap;
	int64_t wnext;
	/* Jain scratch. */
	double *dem, *wt, *fair, *x;
	size_t *scratch;
	size_t scap;
	int64_t progress_next;
	uint64_t in_engine; /* queued in the engine (sum over bands) */
	uint64_t violations;
	char violation[160];
	int err;
	char *errbuf;
	size_t errsz;
	/* Real time. */
	int64_t t0;
	struct producer *prod;
	unsigned nprod;
	struct flowq_mpsc subq, outq;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint coll_state; /* see collector_wake() */
	atomic_bool quit;       /* producers: stop now */
	atomic_uint producers_live;
	atomic_ullong callbacks;
	uint64_t out_seen;
};

static void
set_err(struct run *run, int rc, const char *fmt, const char *a)
{
	if (run->err)
		return;
	run->err = rc;
	if (run->errbuf && run->errsz)
		snprintf(run->errbuf, run->errsz, fmt, a);
}

static void
violation(struct run *run, const char *what)
{
	if (run->violations++ == 0)
		snprintf(run->violation, sizeof(run->violation), "%s", what);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

static int
evheap_init(struct evheap *h, size_t cap)
{
	if (cap < 64)
		cap = 64;
	if (cap > FLOWQ_HEAP_MAX_CAP)
		cap = FLOWQ_HEAP_MAX_CAP;
	h->slots = malloc(cap * sizeof(*h->slots));
	if (!h->slots)
		return -ENOMEM;
	flowq_heap_init(&h->h, h->slots, (uint32_t)cap);
	h->seq = 0;
	return 0;
}

static void
evheap_fini(struct evheap *h)
{
	free(h->slots);
	h->slots = NULL;
}

static int
ev_push(struct evheap *h, struct ev *ev, int64_t t)
{
	ev->hn.key = t;
	ev->hn.seq = h->seq++;
	int rc = flowq_heap_push(&h->h, &ev->hn);
	if (rc == -ENOSPC) {
		uint64_t cap = (uint64_t)h->h.cap * 2;
		if (cap > FLOWQ_HEAP_MAX_CAP)
			return -ENOMEM;
		struct flowq_heap_node **slots = malloc(cap * sizeof(*slots)), **old;
		if (!slots)
			return -ENOMEM;
		flowq_heap_grow(&h->h, slots, (uint32_t)cap, &old);
		free(old);
		h->slots = slots;
		rc = flowq_heap_push(&h->h, &ev->hn);
	}
	return rc;
}

static void
ev_cancel(struct evheap *h, struct ev *ev)
{
	if (flowq_heap_member(&ev->hn))
		flowq_heap_remove(&h->h, &ev->hn);
}

static int64_t
ev_next(const struct evheap *h)
{
	const struct flowq_heap_node *n = flowq_heap_peek(&h->h);
	return n ? n->key : INT64_MAX;
}

#define EV_OWNER(ev, type, member) ((type *)((char *)(ev)-offsetof(type, member)))

/* ------------------------------------------------------------------------ */
/* Request pools                                                            */
/* ------------------------------------------------------------------------ */

static int
pool_grow(struct sreq **free_list, void ***chunks, size_t *nchunks, size_t *cap,
	  struct run *run, unsigned producer)
{
	if (*nchunks == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void **c = realloc(*chunks, nc * sizeof(*c));
		if (!c)
			return -ENOMEM;
		*chunks = c;
		*cap = nc;
	}
	struct sreq *chunk = calloc(POOL_CHUNK, sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	(*chunks)[(*nchunks)++] = chunk;
	for (size_t i = POOL_CHUNK; i-- > 0;) {
		chunk[i].run = run;
		chunk[i].producer = producer;
		flowq_heap_node_init(&chunk[i].ev.hn);
		chunk[i].next_free = *free_list;
		*free_list = &chunk[i];
	}
	return 0;
}

static void
pool_free(void **chunks, size_t nchunks)
{
	for (size_t i = 0; i < nchunks; i++)
		free(chunks[i]);
	free(chunks);
}

/* ------------------------------------------------------------------------ */
/* Accounting (single-threaded: the virtual loop, or the collector)         */
/* ------------------------------------------------------------------------ */

static uint64_t *
outcome_slot(struct sim_counts *c, enum flowq_outcome o)
{
	switch (o) {
	case FLOWQ_DISPATCHED:
		return &c->dispatched;
	case FLOWQ_REJECTED_CAPACITY:
		return &c->rejected_capacity;
	case FLOWQ_REJECTED_OTHER:
		return &c->rejected_other;
	case FLOWQ_EVICTED_TTL:
		return &c->expired;
	case FLOWQ_EVICTED_CANCELLED:
		return &c->cancelled;
	case FLOWQ_EVICTED_DISPLACED:
		return &c->displaced;
	case FLOWQ_EVICTED_OTHER:
		return &c->shutdown;
	default:
		return NULL;
	}
}

static void
count3(struct run *run, uint32_t flow, enum flowq_outcome o)
{
	struct sim_result *r = run->r;
	struct sim_flow_result *fr = &r->flows[flow];
	uint64_t *a = outcome_slot(&fr->c, o);
	if (!a) {
		violation(run, "a completion with an undecided outcome");
		return;
	}
	(*a)++;
	(*outcome_slot(&r->bands[fr->band].c, o))++;
	(*outcome_slot(&r->total, o))++;
}

/* Put @p f on its band's list of flows with demand in this window. */
static int
list_flow(struct run *run, uint32_t flow)
{
	struct rflow *f = &run->flows[flow];
	if (f->w_listed)
		return 0;
	struct rband *b = &run->bands[f->band];
	if (b->nactive == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		uint32_t *a = realloc(b->active, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		b->active = a;
		b->cap = cap;
	}
	b->active[b->nactive++] = flow;
	f->w_listed = true;
	return 0;
}

static void
acct_offer(struct run *run, struct sreq *sr)
{
	struct sim_result *r = run->r;
	struct sim_flow_result *fr = &r->flows[sr->flow];
	uint64_t bytes = sr->req.bytes;
	fr->c.offered++;
	fr->c.offered_bytes += bytes;
	r->bands[fr->band].c.offered++;
	r->bands[fr->band].c.offered_bytes += bytes;
	r->total.offered++;
	r->total.offered_bytes += bytes;
	if (run->closed)
		return;
	run->flows[sr->flow].w_off += bytes;
	if (list_flow(run, sr->flow) < 0)
		set_err(run, -ENOMEM, "%s", "out of memory");
}

static void
acct_queued(struct run *run, struct sreq *sr)
{
	struct rflow *f = &run->flows[sr->flow];
	struct rband *b = &run->bands[f->band];
	sr->queued = true;
	f->queued++;
	f->queued_bytes += sr->req.bytes;
	b->queued++;
	run->in_engine++;
	flowq_list_push_back(&b->fifo, &sr->link);
	if (b->queued > b->depth_max)
		b->depth_max = b->queued;
}

static void
acct_rejected(struct run *run, struct sreq *sr, enum flowq_outcome o)
{
	if (!flowq_outcome_is_rejected(o))
		violation(run, "a failed submit without a rejected outcome");
	count3(run, sr->flow, o);
}

/* A queued request got outcome @p o at @p t. */
static void
acct_outcome(struct run *run, struct sreq *sr, enum flowq_outcome o, int64_t t)
{
	struct sim_result *r = run->r;
	struct rflow *f = &run->flows[sr->flow];
	struct sim_flow_result *fr = &r->flows[sr->flow];
	struct rband *b = &run->bands[f->band];
	struct sim_band_result *br = &r->bands[f->band];
	if (++sr->outcomes != 1)
		violation(run, "a request with more than one outcome");
	if (!sr->queued || flowq_outcome_is_rejected(o)) {
		violation(run, "a completion for a request that was not queued");
		return;
	}
	count3(run, sr->flow, o);
	f->queued--;
	f->queued_bytes -= sr->req.bytes;
	b->queued--;
	run->in_engine--;
	flowq_list_remove(&sr->link);
	if (o != FLOWQ_DISPATCHED)
		return;
	uint64_t bytes = sr->req.bytes;
	fr->c.dispatched_bytes += bytes;
	br->c.dispatched_bytes += bytes;
	r->total.dispatched_bytes += bytes;
	int64_t q = t - sr->submit_ns;
	if (q < 0)
		q = 0;
	if (sim_samples_add(&fr->queue_ns, q) < 0 ||
	    sim_samples_add(&br->queue_ns, q) < 0)
		set_err(run, -ENOMEM, "%s", "out of memory");
	if (run->closed)
		return;
	f->w_got += bytes;
	b->w_bytes += bytes;
	/* Inversion: a more important band's oldest queued request has
	 * waited past the grace. */
	for (uint32_t h = 0; h < f->band; h++) {
		struct flowq_list_node *front = flowq_list_front(&run->bands[h].fifo);
		if (!front)
			continue;
		struct sreq *old = flowq_list_entry(front, struct sreq, link);
		if (t - old->submit_ns > run->spec->inversion_grace_ns) {
			br->inversions++;
			r->priority_inversions++;
			break;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Windows                                                                  */
/* ------------------------------------------------------------------------ */

static int
scratch_reserve(struct run *run, size_t n)
{
	if (n <= run->scap)
		return 0;
	size_t cap = run->scap ? run->scap : 16;
	while (cap < n)
		cap *= 2;
	double *d = realloc(run->dem, cap * sizeof(*d));
	if (d)
		run->dem = d;
	double *w = realloc(run->wt, cap * sizeof(*w));
	if (w)
		run->wt = w;
	double *fa = realloc(run->fair, cap * sizeof(*fa));
	if (fa)
		run->fair = fa;
	double *x = realloc(run->x, cap * sizeof(*x));
	if (x)
		run->x = x;
	size_t *s = realloc(run->scratch, cap * sizeof(*s));
	if (s)
		run->scratch = s;
	if (!d || !w || !fa || !x || !s)
		return -ENOMEM;
	run->scap = cap;
	return 0;
}

/* Close window run->wcur: record it (if within the arrays) and start the
 * next. */
static void
window_close(struct run *run)
{
	struct sim_result *r = run->r;
	size_t w = run->wcur;
	bool rec = w < run->wcap;
	for (size_t bi = 0; bi < run->nbands; bi++) {
		struct rband *b = &run->bands[bi];
		struct sim_band_result *br = &r->bands[bi];
		double jain = NAN;
		size_t n = 0;
		if (scratch_reserve(run, b->nactive) < 0) {
			set_err(run, -ENOMEM, "%s", "out of memory");
			return;
		}
		for (size_t i = 0; i < b->nactive; i++) {
			struct rflow *f = &run->flows[b->active[i]];
			double demand = (double)(f->w_off + f->w_backlog);
			if (rec && r->flows[b->active[i]].win_bytes) {
				r->flows[b->active[i]].win_bytes[w] = f->w_got;
				r->flows[b->active[i]].win_share[w] =
					b->w_bytes ? (double)f->w_got / (double)b->w_bytes
						   : 0;
			}
			if (!(demand > 0))
				continue;
			run->dem[n] = demand;
			run->wt[n] = (double)f->cls->weight;
			run->x[n] = (double)f->w_got;
			n++;
		}
		if (n >= 2 && b->w_bytes > 0) {
			sim_maxmin_fair(n, run->dem, run->wt, (double)b->w_bytes,
					run->fair, run->scratch);
			size_t m = 0;
			for (size_t i = 0; i < n; i++)
				if (run->fair[i] > 0)
					run->x[m++] = run->x[i] / run->fair[i];
			jain = sim_jain(m, run->x);
		}
		if (rec) {
			br->win_depth[w] = (uint32_t)(b->queued > UINT32_MAX ? UINT32_MAX
									     : b->queued);
			br->win_depth_max[w] =
				(uint32_t)(b->depth_max > UINT32_MAX ? UINT32_MAX
								     : b->depth_max);
			br->win_jain[w] = jain;
			if (!isnan(jain)) {
				b->jain_sum += jain;
				b->jain_n++;
			}
		}
		/* Next window: flows still backlogged stay listed. */
		size_t keep = 0;
		for (size_t i = 0; i < b->nactive; i++) {
			struct rflow *f = &run->flows[b->active[i]];
			f->w_off = f->w_got = 0;
			f->w_backlog = f->queued_bytes;
			f->w_listed = f->queued > 0;
			if (f->w_listed)
				b->active[keep++] = b->active[i];
		}
		b->nactive = keep;
		b->w_bytes = 0;
		b->depth_max = b->queued;
	}
	run->wcur++;
	run->wnext += run->spec->window_ns;
}

/* Close every window that ends at or before @p t, and report progress. */
static void
advance(struct run *run, int64_t t)
{
	while (t >= run->wnext && !run->err)
		window_close(run);
	const struct sim_run_opts *o = run->opts;
	if (o && o->progress && t >= run->progress_next) {
		run->r->end_ns = t;
		o->progress(o->progress_ctx, t, run->r);
		int64_t every = o->progress_every_ns > 0 ? o->progress_every_ns
							 : INT64_C(1000000000);
		while (run->progress_next <= t)
			run->progress_next += every;
	}
}

/* ------------------------------------------------------------------------ */
/* Backend                                                                  */
/* ------------------------------------------------------------------------ */

static double
slowdown(const struct sim_backend_spec *b, int64_t t)
{
	double f = 1;
	for (size_t i = 0; i < b->nslowdowns; i++) {
		const struct sim_slowdown *s = &b->slowdowns[i];
		if (t >= s->at_ns && t - s->at_ns < s->for_ns)
			f *= s->factor;
	}
	return f;
}

static void
backend_start(struct run *run, struct sreq *sr, int64_t now)
{
	const struct sim_backend_spec *b = &run->spec->backend;
	double base = sr->service_ns >= 0 ? (double)sr->service_ns
					  : sim_dist_sample(&b->service_ns, &run->brng);
	double svc = (base + (double)sr->req.bytes * b->ns_per_byte) * slowdown(b, now);
	svc = round(svc);
	sr->svc_ns = svc > 9e18 ? INT64_C(9000000000000000000) : (int64_t)svc;
	if (++run->active > b->slots)
		violation(run, "the backend served more requests than it has slots");
	sr->ev.kind = EV_DONE;
	int64_t end = now > INT64_MAX - sr->svc_ns ? INT64_MAX : now + sr->svc_ns;
	if (ev_push(&run->heap, &sr->ev, end) < 0)
		set_err(run, -ENOMEM, "%s", "out of memory");
}

static void
backend_dispatch(struct run *run, struct sreq *sr, int64_t now)
{
	if (run->active < run->spec->backend.slots) {
		backend_start(run, sr, now);
		return;
	}
	flowq_list_push_back(&run->bq, &sr->link);
	if (++run->bq_len > run->r->backend_queue_max)
		run->r->backend_queue_max = run->bq_len;
}

static void
finish(struct run *run, struct sreq *sr, int64_t now);

/* After a queued request's outcome: to the backend, or done with. Once the
 * run is closed (the engine's counters taken), a late dispatch (real time:
 * a dispatcher that went on meanwhile) is dropped, as what is still in the
 * backend is at the end. */
static void
after_outcome(struct run *run, struct sreq *sr, enum flowq_outcome o, int64_t now)
{
	if (o != FLOWQ_DISPATCHED)
		finish(run, sr, now);
	else if (run->closed)
		run->outstanding--;
	else
		backend_dispatch(run, sr, now);
}

/* A service ended at @p now. */
static void
backend_done(struct run *run, struct sreq *sr, int64_t now)
{
	struct sim_result *r = run->r;
	run->active--;
	run->busy_ns += (double)sr->svc_ns;
	struct sim_flow_result *fr = &r->flows[sr->flow];
	fr->c.completed++;
	r->bands[fr->band].c.completed++;
	r->total.completed++;
	if (flowq_release(run->e, &sr->req) != 0)
		violation(run, "flowq_release refused a dispatched request");
	finish(run, sr, now);
	struct flowq_list_node *n = flowq_list_pop_front(&run->bq);
	if (n) {
		run->bq_len--;
		backend_start(run, flowq_list_entry(n, struct sreq, link), now);
	}
}

/*
 * The utilization detector's feed: every metrics_every (a quarter of the
 * detector's staleness horizon, at most 10 ms: a scrape interval), each of
 * the `endpoints` endpoints reports its part of the backend: waiting = the
 * backend's FIFO spread evenly (the first endpoints take the remainder),
 * KV-cache use = the fraction of slots busy (a proxy: the model has no
 * memory).
 */
static void
backend_metrics(struct run *run)
{
	int64_t at = flowq_now(run->e);
	double kv = (double)run->active / (double)run->spec->backend.slots;
	unsigned n = run->endpoints;
	for (unsigned i = 0; i < n; i++) {
		uint64_t waiting = run->bq_len / n + (i < run->bq_len % n);
		int rc = flowq_endpoint_report(run->e, i, waiting, kv > 1 ? 1 : kv, at);
		if (rc < 0 && rc != -ESTALE)
			violation(run, "flowq_endpoint_report failed");
	}
}

/* The backend's own events (both modes: the virtual loop, the collector). */
static void
backend_event(struct run *run, struct ev *ev, int64_t now)
{
	if (ev->kind == EV_METRICS) {
		backend_metrics(run);
		if (ev_push(&run->heap, ev, now + run->metrics_every) < 0)
			set_err(run, -ENOMEM, "%s", "out of memory");
		return;
	}
	struct sreq *sr = EV_OWNER(ev, struct sreq, ev);
	if (ev->kind == EV_DONE) {
		backend_done(run, sr, now);
		return;
	}
	/* EV_CANCEL. Still queued in virtual mode (an outcome removes the
	 * event); in real time the request stays ours until both of its
	 * records are in, so the cancel cannot hit a reused request. A
	 * cancel that loses to a decision made meanwhile is -EALREADY. */
	int c = flowq_cancel(run->e, &sr->req);
	if (c != 0 && c != -EALREADY)
		violation(run, "flowq_cancel failed");
}

/* ------------------------------------------------------------------------ */
/* Arrivals (shared by both modes: the caller supplies the heap and pool)   */
/* ------------------------------------------------------------------------ */

/* Where a submitting thread keeps its events and requests. */
struct src {
	struct run *run;
	struct evheap *heap;
	struct sreq **free;
	void ***chunks;
	size_t *nchunks, *chunks_cap;
	unsigned producer;
};

static int64_t
gap(struct rflow *f)
{
	double g = -log(sim_rng_unit(&f->rng)) * f->mean_gap_ns;
	return g < 1 ? 1 : g > 9e18 ? INT64_MAX / 2 : (int64_t)round(g);
}

static int64_t
draw_ns(const struct sim_dist *d, struct sim_rng *rng)
{
	double v = round(sim_dist_sample(d, rng));
	return v > 9e18 ? INT64_MAX / 2 : (int64_t)v;
}

/* Schedule flow @p f's next arrival (or switch) after @p now, in its
 * window. */
static int
arrival_next(struct src *s, struct rflow *f, int64_t now)
{
	if (f->cls->arrival.kind == SIM_ARRIVAL_POISSON) {
		int64_t t = now + gap(f);
		return t < f->stop_ns ? ev_push(s->heap, &f->ev, t) : 0;
	}
	/* On/off: the next arrival if it falls in the on period, else the
	 * switch at the period's end. */
	int64_t t = f->on ? now + gap(f) : INT64_MAX;
	f->toggle = t >= f->period_end;
	if (f->toggle)
		t = f->period_end;
	return t < f->stop_ns ? ev_push(s->heap, &f->ev, t) : 0;
}

static int
arrival_start(struct src *s, struct rflow *f)
{
	const struct sim_arrival *a = &f->cls->arrival;
	if (f->start_ns >= f->stop_ns)
		return 0;
	switch (a->kind) {
	case SIM_ARRIVAL_POISSON:
		if (!(a->rate > 0))
			return 0;
		return arrival_next(s, f, f->start_ns);
	case SIM_ARRIVAL_ONOFF:
		if (!(a->rate > 0))
			return 0;
		f->on = true;
		f->period_end = f->start_ns + draw_ns(&a->on_ns, &f->rng);
		return arrival_next(s, f, f->start_ns);
	case SIM_ARRIVAL_CLOSED:
		for (uint32_t c = 0; c < a->clients; c++) {
			struct rclient *cl = &s->run->clients[f->client0 + c];
			int64_t t = f->start_ns + draw_ns(&a->think_ns, &f->rng);
			if (t < f->stop_ns) {
				int rc = ev_push(s->heap, &cl->ev, t);
				if (rc < 0)
					return rc;
			}
		}
		return 0;
	case SIM_ARRIVAL_TRACE:
		return 0;
	}
	return 0;
}

static void
on_complete(struct flowq_req *req, void *arg);
static void
rt_on_complete(struct flowq_req *req, void *arg);
static void
rt_post_sub(struct run *run, struct sreq *sr);

/*
 * Submit one request of flow @p flow at @p now (client @p client, trace row
 * @p row or NULL). Virtual mode accounts for it at once; real time posts
 * it to the collector.
 */
static int
submit(struct src *s, uint32_t flow, uint32_t client, const struct sim_trace_row *row,
       int64_t now)
{
	struct run *run = s->run;
	struct rflow *f = &run->flows[flow];
	const struct sim_flow_spec *cls = f->cls;
	if (!*s->free) {
		int rc = pool_grow(s->free, s->chunks, s->nchunks, s->chunks_cap, run,
				   s->producer);
		if (rc < 0)
			return rc;
	}
	struct sreq *sr = *s->free;
	*s->free = sr->next_free;
	flowq_req_init(&sr->req);
	if (f->h) {
		sr->req.flow = f->h;
	} else {
		sr->req.flow_id = f->id;
		sr->req.flow_id_len = f->id_len;
	}
	sr->req.priority = cls->priority;
	uint64_t bytes;
	if (row && run->spec->trace.cost_column) {
		bytes = row->bytes;
	} else {
		double b = round(sim_dist_sample(&cls->size, &f->rng));
		bytes = b > (double)FLOWQ_LIMIT_MAX ? FLOWQ_LIMIT_MAX : (uint64_t)b;
	}
	sr->req.bytes = bytes;
	sr->req.ttl_ns = cls->ttl_ns;
	sr->req.deadline_ns = cls->deadline_ns > 0 ? now + cls->deadline_ns : 0;
	sr->req.arg = sr;
	sr->flow = flow;
	sr->client = client;
	sr->submit_ns = now;
	sr->service_ns = row ? row->service_ns : -1;
	sr->cancel_at = -1;
	if (cls->cancel_prob > 0 && sim_rng_unit(&f->rng) < cls->cancel_prob)
		sr->cancel_at = now + draw_ns(&cls->cancel_after_ns, &f->rng);
	sr->outcomes = 0;
	sr->queued = false;
	sr->rt_seen = 0;
	flowq_list_node_init(&sr->link);
	if (run->mode == SIM_MODE_REALTIME) {
		sr->req.complete = rt_on_complete;
		int rc = flowq_submit(run->e, &sr->req);
		sr->queued = rc == 0;
		rt_post_sub(run, sr);
		return 0;
	}
	sr->req.complete = on_complete;
	run->outstanding++;
	acct_offer(run, sr);
	int rc = flowq_submit(run->e, &sr->req);
	if (rc != 0) {
		acct_rejected(run, sr, flowq_req_outcome(&sr->req));
		finish(run, sr, now);
		return 0;
	}
	acct_queued(run, sr);
	if (sr->cancel_at >= 0) {
		sr->ev.kind = EV_CANCEL;
		return ev_push(&run->heap, &sr->ev, sr->cancel_at);
	}
	return 0;
}

/* The next trace row at or after *@p next that belongs to this source
 * (real time: to its producer). */
static size_t
trace_skip(const struct run *run, size_t next, unsigned producer)
{
	if (run->mode != SIM_MODE_REALTIME)
		return next;
	while (next < run->trace.nrows &&
	       run->flows[run->trace.rows[next].flow].producer != producer)
		next++;
	return next;
}

/* Handle an arrival-side event (EV_ARRIVAL, EV_CLIENT, EV_TRACE) due at
 * its key, handled at @p now (later in real time, when the producer woke
 * late): the request is submitted now, the next arrival is drawn from the
 * due time, so lateness does not thin the process out. */
static int
arrival_event(struct src *s, struct ev *ev, size_t *trace_next, int64_t now)
{
	struct run *run = s->run;
	int64_t due = ev->hn.key;
	switch (ev->kind) {
	case EV_ARRIVAL: {
		struct rflow *f = EV_OWNER(ev, struct rflow, ev);
		uint32_t k = (uint32_t)(f - run->flows);
		if (f->cls->arrival.kind == SIM_ARRIVAL_ONOFF && f->toggle) {
			f->on = !f->on;
			const struct sim_dist *d =
				f->on ? &f->cls->arrival.on_ns : &f->cls->arrival.off_ns;
			int64_t len = draw_ns(d, &f->rng);
			f->period_end = due + (len < 1 ? 1 : len);
			return arrival_next(s, f, due);
		}
		int rc = submit(s, k, NONE32, NULL, now);
		return rc < 0 ? rc : arrival_next(s, f, due);
	}
	case EV_CLIENT: {
		struct rclient *c = EV_OWNER(ev, struct rclient, ev);
		struct rflow *f = &run->flows[c->flow];
		if (now >= f->stop_ns)
			return 0;
		return submit(s, c->flow, (uint32_t)(c - run->clients) - f->client0, NULL,
			      now);
	}
	case EV_TRACE: {
		const struct sim_trace_row *row = &run->trace.rows[*trace_next];
		const struct rflow *f = &run->flows[row->flow];
		int rc = 0;
		if (row->t_ns >= f->start_ns && row->t_ns < f->stop_ns)
			rc = submit(s, row->flow, NONE32, row, now);
		*trace_next = trace_skip(run, *trace_next + 1, s->producer);
		if (rc == 0 && *trace_next < run->trace.nrows)
			rc = ev_push(s->heap, ev, run->trace.rows[*trace_next].t_ns);
		return rc;
	}
	}
	return 0;
}

/* A closed-loop client's request is done with at @p now: think, then
 * submit again (from the source that owns the flow). */
static int
client_rearm(struct src *s, struct sreq *sr, int64_t now)
{
	struct run *run = s->run;
	struct rflow *f = &run->flows[sr->flow];
	int64_t think = draw_ns(&f->cls->arrival.think_ns, &f->rng);
	if (think < MIN_THINK_NS)
		think = MIN_THINK_NS;
	int64_t t = now + think;
	if (t >= f->stop_ns)
		return 0;
	return ev_push(s->heap, &run->clients[f->client0 + sr->client].ev, t);
}

/* ------------------------------------------------------------------------ */
/* Virtual mode                                                             */
/* ------------------------------------------------------------------------ */

static struct src
vsrc(struct run *run)
{
	return (struct src){.run = run,
			    .heap = &run->heap,
			    .free = &run->free,
			    .chunks = &run->chunks,
			    .nchunks = &run->nchunks,
			    .chunks_cap = &run->chunks_cap,
			    .producer = 0};
}

static void
rt_finish(struct run *run, struct sreq *sr, int64_t now);

/* Done with @p sr: its outcome (and its service) are over. */
static void
finish(struct run *run, struct sreq *sr, int64_t now)
{
	if (run->mode == SIM_MODE_REALTIME) {
		rt_finish(run, sr, now);
		return;
	}
	if (sr->client != NONE32 && !run->closed) {
		struct src s = vsrc(run);
		if (client_rearm(&s, sr, now) < 0)
			set_err(run, -ENOMEM, "%s", "out of memory");
	}
	sr->next_free = run->free;
	run->free = sr;
	run->outstanding--;
}

static int64_t
vclock(void *ctx)
{
	return ((const struct run *)ctx)->now;
}

static void
on_complete(struct flowq_req *req, void *arg)
{
	struct sreq *sr = arg;
	struct run *run = sr->run;
	(void)req;
	ev_cancel(&run->heap, &sr->ev);
	enum flowq_outcome o = flowq_req_outcome(&sr->req);
	acct_outcome(run, sr, o, run->now);
	after_outcome(run, sr, o, run->now);
}

/*
 * Poll every shard until none has more to do at this instant. Another pass
 * follows a pass in which a shard said more work is already visible, or
 * (with several shards) in which any shard decided an outcome: a dispatch
 * or a release of capacity on one shard can unblock a shard polled before
 * it in the same pass (one that yielded to its more important band, or
 * waited for the gate), and a host loop would poll that shard again at
 * once, not at the next event. @return the engine's next deadline.
 */
static int64_t
poll_all(struct run *run)
{
	for (int pass = 0;; pass++) {
		int64_t next = INT64_MAX;
		int decided = 0;
		for (unsigned k = 0; k < run->nshards; k++) {
			int64_t nd;
			int rc = flowq_shard_poll(run->e, k, 0, &nd);
			if (rc < 0) {
				set_err(run, rc, "%s", "flowq_shard_poll failed");
				return INT64_MAX;
			}
			decided += rc;
			if (nd < next)
				next = nd;
		}
		if (next > run->now && (decided == 0 || run->nshards == 1))
			return next;
		if (pass == MAX_PASSES)
			return next > run->now ? next : run->now + STALL_NS;
	}
}

static void
vevent(struct run *run, struct ev *ev)
{
	struct src s = vsrc(run);
	int rc = 0;
	switch (ev->kind) {
	case EV_ARRIVAL:
	case EV_CLIENT:
	case EV_TRACE:
		rc = arrival_event(&s, ev, &run->trace_next, run->now);
		break;
	case EV_CANCEL:
	case EV_DONE:
	case EV_METRICS:
		backend_event(run, ev, run->now);
		break;
	case EV_END:
		run->draining = true;
		break;
	case EV_STOP:
		run->stop = true;
		break;
	}
	if (rc < 0)
		set_err(run, rc, "%s", "out of memory");
}

static int
run_virtual(struct run *run)
{
	struct sim_result *r = run->r;
	const struct sim_spec *spec = run->spec;
	struct src s = vsrc(run);
	int rc = 0;
	for (size_t k = 0; k < run->nflows && rc == 0; k++)
		rc = arrival_start(&s, &run->flows[k]);
	if (rc == 0 && run->trace.nrows)
		rc = ev_push(&run->heap, &run->trace_ev, run->trace.rows[0].t_ns);
	if (rc == 0)
		rc = ev_push(&run->heap, &run->end_ev, spec->duration_ns);
	if (rc == 0)
		rc = ev_push(&run->heap, &run->stop_ev,
			     spec->duration_ns + spec->drain_ns);
	if (rc < 0)
		return rc;
	if (run->metrics_every)
		backend_event(run, &run->metrics_ev, 0);
	int64_t eng = poll_all(run);
	while (!run->err) {
		int64_t tev = ev_next(&run->heap);
		int64_t t = tev < eng ? tev : eng;
		if (t == INT64_MAX)
			break;
		if (t < run->now)
			t = run->now;
		advance(run, t);
		run->now = t;
		r->events++;
		if (tev <= eng) {
			struct ev *ev = (struct ev *)flowq_heap_pop(&run->heap.h);
			vevent(run, ev);
		}
		if (run->stop)
			break;
		eng = poll_all(run);
		if (run->draining && run->in_engine == 0 && run->active == 0 &&
		    run->bq_len == 0)
			break;
	}
	return run->err;
}

/* ------------------------------------------------------------------------ */
/* Real-time mode                                                           */
/* ------------------------------------------------------------------------ */

static int64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sim time: the engine's clock (CLOCK_MONOTONIC: cfg.clock is NULL) since
 * the run began; usable after the engine is gone. */
static int64_t
rt_now(const struct run *run)
{
	return mono_ns() - run->t0;
}

static void
abs_time(struct timespec *ts, int64_t mono_ns)
{
	ts->tv_sec = mono_ns / 1000000000;
	ts->tv_nsec = mono_ns % 1000000000;
}

/*
 * The collector's sleep and its wake-up, on one atomic word (coll_state:
 * bit 0 = the collector is about to wait, the other bits count posts):
 *   collector (holding mu): [W1] fetch_or(bit 0); if both queues look
 *              empty: timedwait (releases mu); clear bit 0;
 *   poster:    enqueue; [P1] fetch_add(2); if bit 0 was set: lock mu,
 *              signal.
 * [W1] and [P1] are acq_rel RMWs of one word, so one reads the other's
 * value: if [P1] comes first, [W1] acquires it and the emptiness check
 * sees the enqueue before it; if [W1] comes first, the poster sees bit 0
 * and signals, under mu, so not before the collector waits. (Standalone
 * fences would do too, but GCC's TSan refuses them once inlined.) The
 * timed wait (at most 10 ms) is a safety net, not the mechanism.
 */
static void
collector_wake(struct run *run)
{
	/* [P1] acq_rel, pairs with [W1]. */
	unsigned old =
		atomic_fetch_add_explicit(&run->coll_state, 2, memory_order_acq_rel);
	if (!(old & 1u))
		return;
	pthread_mutex_lock(&run->mu);
	pthread_cond_signal(&run->cv);
	pthread_mutex_unlock(&run->mu);
}

/* Producer: post a submitted (or rejected) request to the collector. */
static void
rt_post_sub(struct run *run, struct sreq *sr)
{
	flowq_mpsc_enqueue(&run->subq, &sr->sub_link);
	collector_wake(run);
}

/* Dispatcher: a completion. */
static void
rt_on_complete(struct flowq_req *req, void *arg)
{
	struct sreq *sr = arg;
	struct run *run = sr->run;
	sr->rt_outcome = (int)flowq_req_outcome(req);
	sr->rt_out_ns = rt_now(run);
	atomic_fetch_add_explicit(&run->callbacks, 1, memory_order_relaxed);
	flowq_mpsc_enqueue(&run->outq, &sr->out_link);
	collector_wake(run);
}

/* Collector: hand @p sr back to its producer. */
static void
rt_finish(struct run *run, struct sreq *sr, int64_t now)
{
	struct producer *p = &run->prod[sr->producer];
	sr->fin_ns = now;
	pthread_mutex_lock(&p->mu);
	flowq_list_push_back(&p->inbox, &sr->link);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	run->outstanding--;
}

/* Collector: the outcome of a queued request whose both records arrived. */
static void
rt_outcome(struct run *run, struct sreq *sr)
{
	ev_cancel(&run->heap, &sr->ev);
	enum flowq_outcome o = (enum flowq_outcome)sr->rt_outcome;
	int64_t t = sr->rt_out_ns;
	acct_outcome(run, sr, o, t);
	after_outcome(run, sr, o, rt_now(run));
}

static void
rt_sub_record(struct run *run, struct sreq *sr)
{
	run->outstanding++;
	acct_offer(run, sr);
	if (!sr->queued) {
		acct_rejected(run, sr, flowq_req_outcome(&sr->req));
		finish(run, sr, rt_now(run));
		return;
	}
	acct_queued(run, sr);
	sr->rt_seen |= RT_SUB;
	if (sr->rt_seen & RT_OUT) {
		rt_outcome(run, sr);
	} else if (sr->cancel_at >= 0) {
		sr->ev.kind = EV_CANCEL;
		if (ev_push(&run->heap, &sr->ev, sr->cancel_at) < 0)
			set_err(run, -ENOMEM, "%s", "out of memory");
	}
}

static void
rt_out_record(struct run *run, struct sreq *sr)
{
	run->out_seen++;
	sr->rt_seen |= RT_OUT;
	if (sr->rt_seen & RT_SUB)
		rt_outcome(run, sr); /* else when the submit record comes */
}

/* Collector: take what the queues hold. @return records taken. */
static size_t
rt_drain(struct run *run)
{
	size_t n = 0;
	struct flowq_mpsc_node *node;
	/* Submits first: a request's outcome record may overtake its submit
	 * record, never the other way round (handled either way). */
	while (flowq_mpsc_trydequeue(&run->subq, &node) == 0) {
		rt_sub_record(run, EV_OWNER(node, struct sreq, sub_link));
		n++;
	}
	while (flowq_mpsc_trydequeue(&run->outq, &node) == 0) {
		rt_out_record(run, EV_OWNER(node, struct sreq, out_link));
		n++;
	}
	return n;
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	struct run *run = p->run;
	struct src s = {.run = run,
			.heap = &p->heap,
			.free = &p->free,
			.chunks = &p->chunks,
			.nchunks = &p->nchunks,
			.chunks_cap = &p->chunks_cap,
			.producer = p->index};
	int rc = 0;
	for (size_t k = p->index; k < run->nflows && rc == 0; k += run->nprod)
		rc = arrival_start(&s, &run->flows[k]);
	p->trace_next = trace_skip(run, 0, p->index);
	if (rc == 0 && p->trace_next < run->trace.nrows)
		rc = ev_push(&p->heap, &p->trace_ev, run->trace.rows[p->trace_next].t_ns);
	int64_t end = run->spec->duration_ns;
	struct flowq_list got;
	flowq_list_init(&got);
	while (rc == 0) {
		int64_t now = rt_now(run);
		pthread_mutex_lock(&p->mu);
		flowq_list_splice_back(&got, &p->inbox);
		pthread_mutex_unlock(&p->mu);
		struct flowq_list_node *n;
		while ((n = flowq_list_pop_front(&got))) {
			struct sreq *sr = flowq_list_entry(n, struct sreq, link);
			if (sr->client != NONE32 && now < end)
				rc = client_rearm(&s, sr,
						  sr->fin_ns > now ? sr->fin_ns : now);
			sr->next_free = p->free;
			p->free = sr;
		}
		if (rc < 0 || atomic_load(&run->quit))
			break;
		int64_t t = ev_next(&p->heap);
		/* Arrivals due before the end are submitted even when this
		 * thread wakes after it (a producer kept off the CPU): late,
		 * but not dropped, so a loaded machine delays the arrival
		 * process instead of thinning it (arrival_event()). */
		if (t <= now && t < end) {
			struct ev *ev = (struct ev *)flowq_heap_pop(&p->heap.h);
			rc = arrival_event(&s, ev, &p->trace_next, now);
			continue;
		}
		if (now >= end)
			break;
		if (t > end)
			t = end;
		struct timespec ts;
		abs_time(&ts, run->t0 + t);
		pthread_mutex_lock(&p->mu);
		if (flowq_list_empty(&p->inbox))
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		pthread_mutex_unlock(&p->mu);
	}
	p->err = rc;
	atomic_fetch_sub_explicit(&run->producers_live, 1, memory_order_seq_cst);
	collector_wake(run);
	flowq_thread_detach();
	return NULL;
}

static int
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

/* Quiescent engine counters: a snapshot taken while no record is in
 * flight to the collector and no outcome is being decided (two equal
 * snapshots around a drain). */
static int
rt_quiesce(struct run *run, struct flowq_stats *st)
{
	struct flowq_stats a;
	for (int i = 0; i < 10000; i++) {
		flowq_stats_engine(run->e, &a);
		uint64_t cb = atomic_load_explicit(&run->callbacks, memory_order_acquire);
		while (run->out_seen < cb || !flowq_mpsc_empty(&run->subq) ||
		       !flowq_mpsc_empty(&run->outq)) {
			if (rt_drain(run) == 0) {
				struct timespec d = {0, 100000};
				nanosleep(&d, NULL);
			}
		}
		flowq_stats_engine(run->e, st);
		if (memcmp(a.outcomes, st->outcomes, sizeof(a.outcomes)) == 0 &&
		    atomic_load_explicit(&run->callbacks, memory_order_acquire) == cb)
			return 0;
	}
	return -EAGAIN;
}

static int
run_realtime(struct run *run)
{
	const struct sim_spec *spec = run->spec;
	struct sim_result *r = run->r;
	int rc = 0;
	run->t0 = mono_ns();
	if (run->metrics_every)
		backend_event(run, &run->metrics_ev, 0);
	atomic_store(&run->producers_live, run->nprod);
	for (unsigned i = 0; i < run->nprod; i++) {
		struct producer *p = &run->prod[i];
		if (pthread_create(&p->thread, NULL, producer_main, p) != 0) {
			atomic_fetch_sub(&run->producers_live, run->nprod - i);
			set_err(run, -EAGAIN, "%s", "cannot start a producer thread");
			break;
		}
		p->started = true;
	}
	int64_t stop = spec->duration_ns + spec->drain_ns;
	while (!run->err) {
		int64_t now = rt_now(run);
		advance(run, now);
		size_t n = rt_drain(run);
		r->events += n;
		now = rt_now(run);
		while (ev_next(&run->heap) <= now) {
			struct ev *ev = (struct ev *)flowq_heap_pop(&run->heap.h);
			backend_event(run, ev, now);
			r->events++;
		}
		if (now >= stop)
			break;
		bool producing = atomic_load(&run->producers_live) > 0;
		if (!producing && now >= spec->duration_ns && run->in_engine == 0 &&
		    run->active == 0 && run->bq_len == 0 &&
		    run->out_seen == atomic_load(&run->callbacks) &&
		    flowq_mpsc_empty(&run->subq) && flowq_mpsc_empty(&run->outq))
			break;
		if (n)
			continue;
		/* Sleep until the next timer, window, progress report or
		 * record (at most 10 ms, a safety net). */
		int64_t t = ev_next(&run->heap);
		if (run->wnext < t)
			t = run->wnext;
		if (run->opts && run->opts->progress && run->progress_next < t)
			t = run->progress_next;
		if (now + 10000000 < t)
			t = now + 10000000;
		if (stop < t)
			t = stop;
		struct timespec ts;
		abs_time(&ts, run->t0 + t);
		pthread_mutex_lock(&run->mu);
		/* [W1] acq_rel, pairs with [P1]. */
		atomic_fetch_or_explicit(&run->coll_state, 1u, memory_order_acq_rel);
		if (flowq_mpsc_empty(&run->subq) && flowq_mpsc_empty(&run->outq))
			pthread_cond_timedwait(&run->cv, &run->mu, &ts);
		atomic_fetch_and_explicit(&run->coll_state, ~1u, memory_order_relaxed);
		pthread_mutex_unlock(&run->mu);
	}
	run->now = rt_now(run);
	atomic_store(&run->quit, true);
	for (unsigned i = 0; i < run->nprod; i++) {
		struct producer *p = &run->prod[i];
		if (!p->started)
			continue;
		pthread_mutex_lock(&p->mu);
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		if (p->err && !run->err)
			set_err(run, p->err, "%s", "a producer failed (out of memory)");
	}
	/* Records of the last submits. */
	rt_drain(run);
	return run->err ? run->err : rc;
}

/* ------------------------------------------------------------------------ */
/* Set-up and results                                                       */
/* ------------------------------------------------------------------------ */

static int
cmp_prio_desc(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x < y) - (x > y);
}

static int
result_init(struct run *run)
{
	const struct sim_spec *spec = run->spec;
	struct sim_result *r = run->r;
	size_t n = sim_spec_nflows(spec);
	r->spec = spec;
	r->mode = run->mode;
	r->seed = spec->seed;
	r->duration_ns = spec->duration_ns;
	r->window_ns = spec->window_ns;
	r->inversion_grace_ns = spec->inversion_grace_ns;
	r->flows = calloc(n ? n : 1, sizeof(*r->flows));
	run->flows = calloc(n ? n : 1, sizeof(*run->flows));
	int32_t *prios = calloc(n ? n : 1, sizeof(*prios));
	if (!r->flows || !run->flows || !prios) {
		free(prios);
		return -ENOMEM;
	}
	r->nflows = run->nflows = n;
	char buf[FLOWQ_FLOW_ID_MAX + 1];
	size_t nclients = 0;
	for (size_t k = 0; k < n; k++) {
		const struct sim_flow_spec *cls =
			sim_spec_flow(spec, k, buf, sizeof(buf));
		struct sim_flow_result *fr = &r->flows[k];
		struct rflow *f = &run->flows[k];
		fr->id = strdup(buf);
		if (!fr->id) {
			free(prios);
			return -ENOMEM;
		}
		fr->priority = cls->priority;
		fr->weight = cls->weight;
		f->cls = cls;
		f->id = fr->id;
		f->id_len = (uint32_t)strlen(buf);
		f->client0 = (uint32_t)nclients;
		if (cls->arrival.kind == SIM_ARRIVAL_CLOSED)
			nclients += cls->arrival.clients;
		prios[k] = cls->priority;
	}
	/* Bands: the flows' priorities, most important first. */
	qsort(prios, n, sizeof(*prios), cmp_prio_desc);
	size_t nb = 0;
	for (size_t i = 0; i < n; i++)
		if (nb == 0 || prios[nb - 1] != prios[i])
			prios[nb++] = prios[i];
	r->bands = calloc(nb ? nb : 1, sizeof(*r->bands));
	run->bands = calloc(nb ? nb : 1, sizeof(*run->bands));
	if (!r->bands || !run->bands) {
		free(prios);
		return -ENOMEM;
	}
	r->nbands = run->nbands = nb;
	for (size_t b = 0; b < nb; b++) {
		r->bands[b].priority = prios[b];
		flowq_list_init(&run->bands[b].fifo);
	}
	for (size_t k = 0; k < n; k++) {
		int32_t p = r->flows[k].priority;
		size_t lo = 0, hi = nb - 1;
		while (r->bands[lo].priority != p) { /* descending: bisect */
			size_t mid = (lo + hi) / 2;
			if (r->bands[mid].priority > p)
				lo = mid + 1;
			else
				hi = mid;
		}
		r->flows[k].band = lo;
		run->flows[k].band = (uint32_t)lo;
		r->bands[lo].nflows++;
	}
	free(prios);
	/* Windows over the duration and the drain. */
	int64_t span = spec->duration_ns + spec->drain_ns;
	uint64_t nw = (uint64_t)(span / spec->window_ns) + 2;
	if (nw > MAX_WIN_ALLOC)
		nw = MAX_WIN_ALLOC;
	run->wcap = (size_t)nw;
	run->wnext = spec->window_ns;
	for (size_t b = 0; b < nb; b++) {
		struct sim_band_result *br = &r->bands[b];
		br->win_depth = calloc(nw, sizeof(*br->win_depth));
		br->win_depth_max = calloc(nw, sizeof(*br->win_depth_max));
		br->win_jain = calloc(nw, sizeof(*br->win_jain));
		if (!br->win_depth || !br->win_depth_max || !br->win_jain)
			return -ENOMEM;
	}
	if ((uint64_t)n * nw <= FLOW_WIN_CELLS) {
		for (size_t k = 0; k < n; k++) {
			struct sim_flow_result *fr = &r->flows[k];
			fr->win_bytes = calloc(nw, sizeof(*fr->win_bytes));
			fr->win_share = calloc(nw, sizeof(*fr->win_share));
			if (!fr->win_bytes || !fr->win_share)
				return -ENOMEM;
		}
	}
	run->clients = calloc(nclients ? nclients : 1, sizeof(*run->clients));
	if (!run->clients)
		return -ENOMEM;
	run->nclients = nclients;
	for (size_t k = 0; k < n; k++) {
		struct rflow *f = &run->flows[k];
		const struct sim_arrival *a = &f->cls->arrival;
		for (uint32_t c = 0; a->kind == SIM_ARRIVAL_CLOSED && c < a->clients;
		     c++) {
			run->clients[f->client0 + c].ev.kind = EV_CLIENT;
			run->clients[f->client0 + c].flow = (uint32_t)k;
			flowq_heap_node_init(&run->clients[f->client0 + c].ev.hn);
		}
		sim_rng_seed(&f->rng, spec->seed, SIM_STREAM_FLOW + k);
		f->ev.kind = EV_ARRIVAL;
		flowq_heap_node_init(&f->ev.hn);
		f->start_ns = a->start_ns > 0 ? a->start_ns : 0;
		f->stop_ns = a->stop_ns > 0 && a->stop_ns < spec->duration_ns
				     ? a->stop_ns
				     : spec->duration_ns;
		f->mean_gap_ns = a->rate > 0 ? 1e9 / a->rate : 0;
	}
	sim_rng_seed(&run->brng, spec->seed, SIM_STREAM_BACKEND);
	return 0;
}

static int
engine_create(struct run *run)
{
	const struct sim_spec *spec = run->spec;
	struct flowq_config cfg = spec->engine.config;
	char eb[256] = "";
	cfg.errbuf = eb;
	cfg.errbuf_size = sizeof(eb);
	if (run->mode == SIM_MODE_VIRTUAL) {
		cfg.mode = FLOWQ_MODE_POLLED;
		cfg.clock = vclock;
		cfg.clock_ctx = run;
	} else {
		cfg.mode = FLOWQ_MODE_THREADED;
		cfg.clock = NULL;
		cfg.clock_ctx = NULL;
	}
	int rc = flowq_engine_create(&cfg, &run->e);
	if (rc < 0) {
		if (run->errbuf && run->errsz)
			snprintf(run->errbuf, run->errsz, "%s: engine: %s",
				 spec->source ? spec->source : "<spec>",
				 eb[0] ? eb : flowq_strerror(rc));
		run->err = rc;
		return rc;
	}
	run->nshards = flowq_shard_count(run->e);
	if (cfg.saturation.detector &&
	    strcmp(cfg.saturation.detector, "utilization") == 0) {
		int64_t every = cfg.saturation.metrics_staleness_ns / 4;
		run->metrics_every = every < 1              ? 1
				     : every > 10 * 1000000 ? 10 * 1000000
							    : every;
		run->endpoints = cfg.saturation.endpoints ? cfg.saturation.endpoints : 1;
	}
	for (size_t k = 0; k < run->nflows; k++) {
		struct rflow *f = &run->flows[k];
		rc = flowq_flow_get(run->e, f->id, f->id_len, f->cls->priority, &f->h);
		if (rc == -ENOENT) {
			/* No band for it: its submits are rejected
			 * (unknown band), which the run shows. */
			f->h = NULL;
			continue;
		}
		if (rc == 0)
			rc = flowq_flow_set_weight(f->h, f->cls->weight);
		if (rc < 0) {
			char m[FLOWQ_FLOW_ID_MAX + 64];
			snprintf(m, sizeof(m), "flow \"%s\": %s", f->id,
				 flowq_strerror(rc));
			set_err(run, rc, "%s", m);
			return rc;
		}
	}
	return 0;
}

/* Compare the engine's counters (before destroy) with the run's. */
static void
check_engine(struct run *run, const struct flowq_stats *st)
{
	const struct sim_counts *t = &run->r->total;
	static const enum flowq_outcome os[] = {
		FLOWQ_DISPATCHED,   FLOWQ_REJECTED_CAPACITY, FLOWQ_REJECTED_OTHER,
		FLOWQ_EVICTED_TTL,  FLOWQ_EVICTED_CANCELLED, FLOWQ_EVICTED_DISPLACED,
		FLOWQ_EVICTED_OTHER};
	struct sim_counts c = *t;
	for (size_t i = 0; i < sizeof(os) / sizeof(os[0]); i++) {
		uint64_t mine = *outcome_slot(&c, os[i]);
		if (st->outcomes[os[i]] != mine) {
			char m[160];
			snprintf(m, sizeof(m),
				 "engine counted %llu %s outcomes, the simulator %llu",
				 (unsigned long long)st->outcomes[os[i]],
				 flowq_outcome_str(os[i]), (unsigned long long)mine);
			violation(run, m);
			return;
		}
	}
	if (st->queued != run->in_engine) {
		char m[160];
		snprintf(m, sizeof(m),
			 "engine has %llu requests queued, the simulator %llu",
			 (unsigned long long)st->queued,
			 (unsigned long long)run->in_engine);
		violation(run, m);
	}
}

static bool
counts_balance(const struct sim_counts *c)
{
	return c->offered == c->rejected_capacity + c->rejected_other + c->dispatched +
				     c->expired + c->cancelled + c->displaced +
				     c->shutdown &&
	       c->completed <= c->dispatched;
}

static void
conservation(struct run *run)
{
	struct sim_result *r = run->r;
	char *m = r->conservation_error;
	size_t msz = sizeof(r->conservation_error);
	r->conserved = false;
	if (run->violations) {
		snprintf(m, msz, "%s (%llu violations)", run->violation,
			 (unsigned long long)run->violations);
		return;
	}
	struct sim_counts *bsum = calloc(r->nbands ? r->nbands : 1, sizeof(*bsum));
	struct sim_counts tot = {0};
	if (!bsum) {
		snprintf(m, msz, "out of memory while checking");
		return;
	}
	for (size_t k = 0; k < r->nflows; k++) {
		const struct sim_flow_result *fr = &r->flows[k];
		if (!counts_balance(&fr->c)) {
			snprintf(m, msz, "flow %s: offered %llu != sum of outcomes",
				 fr->id, (unsigned long long)fr->c.offered);
			goto out;
		}
		sim_counts_add(&bsum[fr->band], &fr->c);
	}
	for (size_t b = 0; b < r->nbands; b++) {
		if (memcmp(&bsum[b], &r->bands[b].c, sizeof(bsum[b])) != 0 ||
		    !counts_balance(&r->bands[b].c)) {
			snprintf(m, msz,
				 "band %d: counts differ from the sum of its flows",
				 (int)r->bands[b].priority);
			goto out;
		}
		sim_counts_add(&tot, &bsum[b]);
	}
	if (memcmp(&tot, &r->total, sizeof(tot)) != 0 || !counts_balance(&r->total)) {
		snprintf(m, msz, "total counts differ from the sum of the bands");
		goto out;
	}
	if (run->outstanding != 0) {
		snprintf(m, msz, "%llu requests never got an outcome",
			 (unsigned long long)run->outstanding);
		goto out;
	}
	r->conserved = true;
	m[0] = '\0';
out:
	free(bsum);
}

/* Spec checks run.c depends on (spec.c validates the rest). */
static int
check_spec(const struct sim_spec *spec, char *err, size_t errsz)
{
	const char *src = spec->source ? spec->source : "<spec>";
	const char *what = NULL;
	if (spec->duration_ns <= 0)
		what = "sim.duration must be > 0";
	else if (spec->drain_ns < 0 || spec->drain_ns > INT64_MAX / 4 ||
		 spec->duration_ns > INT64_MAX / 4)
		what = "sim.duration and sim.drain must be in [0, 2^61) ns";
	else if (spec->window_ns <= 0 ||
		 spec->duration_ns / spec->window_ns > (int64_t)SIM_MAX_WINDOWS)
		what = "sim.window must be > 0 and at most SIM_MAX_WINDOWS windows per "
		       "duration";
	else if (spec->backend.slots < 1)
		what = "backend.slots must be >= 1";
	else if (spec->nflows == 0)
		what = "no flows";
	else if (sim_spec_nflows(spec) > SIM_MAX_FLOWS)
		what = "more than SIM_MAX_FLOWS flows";
	if (what) {
		if (err && errsz)
			snprintf(err, errsz, "%s: %s", src, what);
		return -EINVAL;
	}
	for (size_t i = 0; i < spec->nflows; i++) {
		const struct sim_flow_spec *f = &spec->flows[i];
		if (f->count < 1 || f->weight < 1 || f->weight > 65535 ||
		    (f->arrival.kind == SIM_ARRIVAL_CLOSED && f->arrival.clients < 1)) {
			if (err && errsz)
				snprintf(
					err, errsz,
					"%s:%u: flows[%zu]: count, weight (1..65535) and "
					"clients must be >= 1",
					src, f->line, i);
			return -EINVAL;
		}
	}
	return 0;
}

static void
run_fini(struct run *run)
{
	evheap_fini(&run->heap);
	pool_free(run->chunks, run->nchunks);
	for (unsigned i = 0; run->prod && i < run->nprod; i++) {
		struct producer *p = &run->prod[i];
		evheap_fini(&p->heap);
		pool_free(p->chunks, p->nchunks);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
	}
	free(run->prod);
	for (size_t b = 0; run->bands && b < run->nbands; b++)
		free(run->bands[b].active);
	free(run->bands);
	free(run->flows);
	free(run->clients);
	free(run->dem);
	free(run->wt);
	free(run->fair);
	free(run->x);
	free(run->scratch);
	sim_trace_free(&run->trace);
	if (run->mode == SIM_MODE_REALTIME) {
		pthread_mutex_destroy(&run->mu);
		pthread_cond_destroy(&run->cv);
	}
}

static int
rt_init(struct run *run)
{
	const struct sim_spec *spec = run->spec;
	run->nprod = spec->producers ? spec->producers : 1;
	flowq_mpsc_init(&run->subq);
	flowq_mpsc_init(&run->outq);
	pthread_mutex_init(&run->mu, NULL);
	int rc = cond_init_mono(&run->cv);
	if (rc < 0)
		return rc;
	run->prod = calloc(run->nprod, sizeof(*run->prod));
	if (!run->prod)
		return -ENOMEM;
	for (unsigned i = 0; i < run->nprod; i++) {
		struct producer *p = &run->prod[i];
		p->run = run;
		p->index = i;
		p->trace_ev.kind = EV_TRACE;
		flowq_heap_node_init(&p->trace_ev.hn);
		flowq_list_init(&p->inbox);
		pthread_mutex_init(&p->mu, NULL);
		if ((rc = cond_init_mono(&p->cv)) < 0)
			return rc;
		if ((rc = evheap_init(&p->heap, run->nflows / run->nprod + 64)) < 0)
			return rc;
	}
	for (size_t k = 0; k < run->nflows; k++)
		run->flows[k].producer = (unsigned)(k % run->nprod);
	return 0;
}

int
sim_run(const struct sim_spec *spec, const struct sim_run_opts *opts,
	struct sim_result *r, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	if (err && errsz)
		err[0] = '\0';
	int rc = check_spec(spec, err, errsz);
	if (rc < 0)
		return rc;
	double wall0 = sim_clock_s(SIM_CLOCK_WALL), cpu0 = sim_clock_s(SIM_CLOCK_CPU);
	struct run *run = calloc(1, sizeof(*run));
	if (!run)
		return -ENOMEM;
	run->spec = spec;
	run->opts = opts;
	run->r = r;
	run->mode = opts ? opts->mode : spec->mode;
	run->errbuf = err;
	run->errsz = errsz;
	run->trace_ev.kind = EV_TRACE;
	run->end_ev.kind = EV_END;
	run->stop_ev.kind = EV_STOP;
	run->metrics_ev.kind = EV_METRICS;
	flowq_heap_node_init(&run->metrics_ev.hn);
	flowq_heap_node_init(&run->trace_ev.hn);
	flowq_heap_node_init(&run->end_ev.hn);
	flowq_heap_node_init(&run->stop_ev.hn);
	flowq_list_init(&run->bq);
	if (opts && opts->progress)
		run->progress_next = 0;
	rc = result_init(run);
	if (rc == 0)
		rc = evheap_init(&run->heap, run->nflows + run->nclients + 1024);
	if (rc == 0 && run->mode == SIM_MODE_REALTIME)
		rc = rt_init(run);
	if (rc < 0) {
		set_err(run, rc, "%s", "out of memory");
		goto fail;
	}
	if (spec->has_trace) {
		rc = sim_trace_load(spec, &run->trace, err, errsz);
		if (rc < 0)
			goto fail;
	}
	if ((rc = engine_create(run)) < 0)
		goto fail;

	rc = run->mode == SIM_MODE_VIRTUAL ? run_virtual(run) : run_realtime(run);
	int64_t end = run->mode == SIM_MODE_VIRTUAL ? run->now : rt_now(run);
	if (rc == 0) {
		/* The last window (partial), then the engine's counters. */
		advance(run, end);
		if (end > run->wnext - spec->window_ns)
			window_close(run);
		r->nwindows = run->wcur < run->wcap ? run->wcur : run->wcap;
		run->closed = true;
		struct flowq_stats st;
		if (run->mode == SIM_MODE_VIRTUAL)
			rc = flowq_stats_engine(run->e, &st);
		else
			rc = rt_quiesce(run, &st);
		if (rc == 0)
			check_engine(run, &st);
		else
			violation(run, "the engine's counters did not settle");
		rc = 0;
	}
	for (size_t k = 0; k < run->nflows; k++)
		if (run->flows[k].h)
			flowq_flow_put(run->e, run->flows[k].h);
	flowq_engine_destroy(run->e);
	run->e = NULL;
	if (run->mode == SIM_MODE_REALTIME)
		rt_drain(run); /* the shutdown outcomes */
	/* What is still in the backend is dropped (after destroy it is
	 * ours; it is not released). */
	{
		struct flowq_heap_node *n;
		while ((n = flowq_heap_pop(&run->heap.h))) {
			struct ev *ev = (struct ev *)n;
			if (ev->kind != EV_DONE)
				continue;
			struct sreq *sr = EV_OWNER(ev, struct sreq, ev);
			/* The part of the service done by the end. */
			run->busy_ns += (double)(sr->svc_ns - (n->key - end));
			run->outstanding--;
		}
		struct flowq_list_node *ln;
		while ((ln = flowq_list_pop_front(&run->bq)))
			run->outstanding--;
		run->bq_len = 0;
	}
	if (rc != 0 || run->err) {
		rc = rc ? rc : run->err;
		goto fail;
	}
	r->end_ns = end;
	r->backend_utilization =
		end > 0 ? run->busy_ns / ((double)spec->backend.slots * (double)end) : 0;
	for (size_t k = 0; k < r->nflows; k++)
		sim_samples_sort(&r->flows[k].queue_ns);
	for (size_t b = 0; b < r->nbands; b++) {
		struct sim_band_result *br = &r->bands[b];
		sim_samples_sort(&br->queue_ns);
		br->jain_mean =
			run->bands[b].jain_n
				? run->bands[b].jain_sum / (double)run->bands[b].jain_n
				: NAN;
	}
	conservation(run);
	r->wall_s = sim_clock_s(SIM_CLOCK_WALL) - wall0;
	r->cpu_s = sim_clock_s(SIM_CLOCK_CPU) - cpu0;
	run_fini(run);
	free(run);
	return 0;
fail:
	if (run->e) {
		for (size_t k = 0; k < run->nflows; k++)
			if (run->flows && run->flows[k].h)
				flowq_flow_put(run->e, run->flows[k].h);
		run->closed = true;
		flowq_engine_destroy(run->e);
	}
	if (err && errsz && !err[0])
		snprintf(err, errsz, "%s: %s", spec->source ? spec->source : "<spec>",
			 flowq_strerror(rc));
	run_fini(run);
	free(run);
	sim_result_free(r);
	return rc < 0 ? rc : -EINVAL;
}

void
sim_result_free(struct sim_result *r)
{
	if (!r)
		return;
	for (size_t k = 0; r->flows && k < r->nflows; k++) {
		struct sim_flow_result *fr = &r->flows[k];
		free(fr->id);
		sim_samples_free(&fr->queue_ns);
		free(fr->win_bytes);
		free(fr->win_share);
	}
	free(r->flows);
	for (size_t b = 0; r->bands && b < r->nbands; b++) {
		struct sim_band_result *br = &r->bands[b];
		sim_samples_free(&br->queue_ns);
		free(br->win_depth);
		free(br->win_depth_max);
		free(br->win_jain);
	}
	free(r->bands);
	memset(r, 0, sizeof(*r));
}
