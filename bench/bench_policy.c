/*
 * bench_policy: the cost of one policy decision, for every registered
 * policy, against a plain binary heap of the same size in the same run.
 *
 * Cases (F = flows in {4, 1000, 65536, 1000000}; the time column is CPU ns
 * per decision, one thread; items_per_second counts decisions):
 *
 *   BM_policy_fairness_<name>/flows:F  every flowq_fairness_at() policy
 *       (the registry is iterated at registration, so a new built-in shows
 *       up without editing this file). F flows of one band, all
 *       backlogged, weights 1-4, each with one queued request of 64-1500
 *       bytes (uniform, from a precomputed table), the band's quantum the
 *       default 4096. One decision is what the dispatcher does for a flow
 *       with one request: pick(); the flow's request leaves
 *       (queued 1 -> 0) and update(f, true, bytes); a new request arrives
 *       (queued 0 -> 1, a new head of the next size and a later key) and
 *       flow_backlogged(f). All flows stay backlogged in steady state. The
 *       views (policy.h, with the policy's hot words) are one line each, in
 *       an array; the policy's states, if it has any, in an array of their
 *       own (as in the engine, where the state is never the view's
 *       neighbour line: see "Flows are laid out" below). The flows join the
 *       band in memory order, and a turn-based policy keeps that order: its
 *       next flow is the next 64 bytes, which the hardware prefetchers
 *       stream. The favourable case.
 *   BM_policy_fairness_scattered_<name>/flows:F  the same, with the flows
 *       joining in a random order (bp_perm): what a dispatcher's ring looks
 *       like once flows have emptied and joined again in arrival order.
 *       The case that shows what a policy's structure costs when its next
 *       flow cannot be guessed from addresses (a list linked through the
 *       flows' states: a dependent miss per decision).
 *   BM_policy_ordering_<name>/flows:F  every flowq_ordering_at() policy.
 *       F flows' ordering states holding BP_DEPTH = 2 requests each,
 *       visited in a fixed scattered order (bp_stride). One decision is
 *       what the dispatcher does per request: peek, remove the head,
 *       re-read the head (peek + key), push the request back as a new
 *       arrival (fresh submit time, TTL expiry and, for half of them, a
 *       caller deadline, set as flowq_submit sets them), re-read the head.
 *   BM_policy_displacement_<name>/flows:F  every flowq_displacement_at()
 *       policy: F flows of one band-shard, BP_DEPTH requests each (64-1500
 *       bytes, weights 1-4), reported through arrived(). One decision is
 *       what a displacement costs the policy: victim(), the victim leaves
 *       (left()) and comes back as a new arrival on the next flow of the
 *       scattered order (arrived()), so the population stays F x BP_DEPTH.
 *       "none" never names a victim: its decision is the next flow's
 *       oldest request leaving and coming back (what every request costs
 *       an engine with that policy: nothing, through no-op calls).
 *   BM_policy_peer_binary_heap/flows:F  the peer: bench_heap.c's plain
 *       binary heap (bench_bheap_push/pop) of F members in the "hold"
 *       model: pop the minimum, push it back with key + a random increment;
 *       one pop + one push per decision, as a heap-based fairness policy
 *       does one remove + one push per decision above.
 *   BM_policy_peer_flow_touch[_scattered]/flows:F  the memory a fairness
 *       decision touches, with no policy: per decision one flow's view
 *       line, 64 bytes a flow, in the fairness cases' order (memory order;
 *       the same random order): read the head's size, write queued and the
 *       new head, write one hot word (the policy's position). The floor of
 *       any fairness policy at that F, and the layout of round_robin's
 *       flows: at 10^6 flows (64 MB) the views leave the caches, a cost of
 *       the workload, not the policy.
 *   BM_policy_peer_flow_touch_state/flows:F  the same in memory order with
 *       a state line per flow (view line + state line, 128 bytes a flow)
 *       whose first word is written: what a policy that writes its state
 *       on every decision pays, and what flow_touch measured before the
 *       hot words (policy ABI 2), so that older figures still compare.
 *   BM_policy_peer_pointer_chase/flows:F  one dependent load per step
 *       through the F flows' state lines in the random order: the cost of
 *       one cache miss that nothing can overlap, what a ring linked
 *       through the flows' states pays per decision to find its next flow.
 *
 * Targets (issue 4): heap-based policies <= 2x the binary heap at the same
 * F; round_robin and drr flat in F (<= 1.5x from F = 4 to 10^6) and
 * <= 10 ns per decision. Read ratios within one run (the machines are
 * shared; absolute numbers swing between runs).
 *
 * Setup (allocation, attach, first backlog) is outside the timed region;
 * so are the checks: a pick that found nothing, or a policy that leaked
 * allocator memory by band_fini, fails the case (bench_skip_with_error);
 * the binary heap is checked in order after the loop. Policies are called
 * through their ops pointers, as the dispatcher calls them.
 *
 * Memory at F = 10^6: fairness 64 bytes per flow (the view) plus, in its
 * own array, a line per flow of state if the policy has any, plus the
 * policy's slot arrays, 70 to 150 MB (and 4 MB of permutation in the
 * scattered cases); ordering one state line per flow plus two 144-byte
 * requests, about 350 MB. Setup there takes about a second of CPU per run of the case
 * (Google Benchmark runs a case a few times to size its iterations).
 */
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/alloc.h>
#include <flowq/flowq.h>
#include <flowq/heap.h>
#include <flowq/policy.h>
#include <flowq/types.h>

#include "bench.h"

/* Decisions per batch: a few microseconds to a few hundred. */
#define BP_BATCH 1024
/* Requests queued per flow in the ordering cases: the same at every F, so
 * the columns compare (a sorted ordering's cost grows with it). */
#define BP_DEPTH 2u
/* Request sizes cycle through a table of this many entries. */
#define BP_SIZES 4096u

static const int64_t bp_flows[] = {4, 1000, 65536, 1000000};

static inline uint64_t
bp_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* 64-1500 bytes, uniform: the conformance suite's mix. */
static void
bp_fill_sizes(uint64_t *sizes)
{
	uint64_t rng = 0x2545f4914f6cdd1dull;

	for (unsigned i = 0; i < BP_SIZES; i++)
		sizes[i] = 64 + bp_rand(&rng) % 1437;
}

/* A stride coprime with @p nflows (7919 is prime and divides none of the
 * sizes): visiting i, i + stride, ... (mod nflows) reaches every flow once
 * per nflows steps, scattered over memory. A constant stride all the same:
 * hardware stride prefetchers can follow it (a pointer chain in this order
 * measured ~35 ns a step at 10^6 flows, in a random order ~300 ns);
 * bp_perm() is the order they cannot follow. */
static size_t
bp_stride(size_t nflows)
{
	size_t stride = 7919 % nflows;

	if (stride == 0 || nflows % 7919 == 0)
		stride = 1;
	return stride;
}

/* A random permutation of 0 .. nflows - 1 (Fisher-Yates, fixed seed), or
 * NULL if out of memory: the order in which a dispatcher's flows take turns
 * once they have emptied and joined again at random, which neither the
 * hardware prefetchers nor anything but a look-up of the order itself can
 * predict. */
static uint32_t *
bp_perm(size_t nflows)
{
	uint32_t *perm = malloc(nflows * sizeof(*perm));
	uint64_t rng = 0x853c49e6748fea9bull;

	if (perm == NULL)
		return NULL;
	for (size_t i = 0; i < nflows; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = nflows - 1; i > 0; i--) {
		size_t j = bp_rand(&rng) % (i + 1);
		uint32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/* ---- an allocator that counts what is outstanding ----------------------- */

struct bp_alloc {
	struct flowq_allocator a;
	size_t outstanding;
};

static void *
bp_alloc_fn(size_t size, size_t align, void *ctx)
{
	struct bp_alloc *c = ctx;
	void *p = flowq_allocator_libc()->alloc(size, align, NULL);

	if (p != NULL)
		c->outstanding += size;
	return p;
}

static void
bp_free_fn(void *p, size_t size, size_t align, void *ctx)
{
	struct bp_alloc *c = ctx;

	c->outstanding -= size;
	flowq_allocator_libc()->free(p, size, align, NULL);
}

/* ---- fairness ------------------------------------------------------------- */

/* Flows are laid out as the engine lays them out where it matters to the
 * caches: the policy's view (with the policy's hot words) on one line, and
 * the policy's state, if it has any (flow_state_size > 0), on lines of its
 * own that are NOT the view's neighbour. In the engine (core/registry.c
 * flow_create) the view is line 8 of the 768-byte struct flowq_flow, its
 * 128-byte buddy line 9 is dispatcher state touched per request anyway,
 * and the policy state starts after the flow id, four or more lines on:
 * a decision that leaves its state alone leaves that line alone. So the
 * views are an array of lines and the states another array; laying the
 * state on the line right after the view (as this harness did until
 * session 5) made the adjacent-line prefetcher drag in an untouched state
 * line per decision, a cost the engine's layout does not have (drr at 10^6
 * flows: 14.6 ns that way, 7.7 ns apart, in one loaded session). */
#define BP_LINE 64u

static inline size_t
bp_round_up(size_t n)
{
	return (n + BP_LINE - 1) / BP_LINE * BP_LINE;
}

_Static_assert(sizeof(struct flowq_policy_flow) <= BP_LINE, "the view fits a line");
_Static_assert(FLOWQ_POLICY_HOT_WORDS >= 1, "the peers write a hot word");

/* A fairness case: the policy, and whether its flows join the band in a
 * random order (bp_perm) rather than in memory order. */
struct bp_fair_case {
	const struct flowq_fairness_ops *ops;
	bool scattered;
};

static void
bench_policy_fairness(struct bench_state *st, void *arg)
{
	const struct bp_fair_case *fc = arg;
	const struct flowq_fairness_ops *ops = fc->ops;
	size_t nflows = (size_t)bench_range(st, 0);
	uint32_t *perm = NULL;
	struct bp_alloc ca = {.a = {.alloc = bp_alloc_fn, .free = bp_free_fn}};
	struct flowq_policy_env env = {.alloc = &ca.a,
				       .priority = 0,
				       .quantum = FLOWQ_QUANTUM_DEFAULT};
	uint64_t sizes[BP_SIZES];
	size_t sstride = bp_round_up(ops->desc.flow_state_size);
	unsigned char *mem = NULL, *smem = NULL;
	void *band = NULL;
	uint64_t nulls = 0, si = 0;
	int64_t key = 0;
	size_t attached = 0;
	char msg[128];

#define BP_FLOW(i) ((struct flowq_policy_flow *)(mem + (i) * BP_LINE))
	/* The k-th flow to join. */
#define BP_JOIN(k) BP_FLOW(perm != NULL ? perm[k] : (k))
	ca.a.ctx = &ca;
	bp_fill_sizes(sizes);
	mem = aligned_alloc(BP_LINE, nflows * BP_LINE);
	if (sstride != 0)
		smem = aligned_alloc(BP_LINE, nflows * sstride);
	band = aligned_alloc(BP_LINE, bp_round_up(ops->desc.band_state_size + 1));
	if (fc->scattered)
		perm = bp_perm(nflows);
	if (mem == NULL || band == NULL || (sstride != 0 && smem == NULL) ||
	    (fc->scattered && perm == NULL)) {
		bench_skip_with_error(st, "out of memory");
		goto out_free;
	}
	memset(band, 0, ops->desc.band_state_size);
	if (ops->band_init(band, &env) != 0) {
		bench_skip_with_error(st, "band_init failed");
		goto out_free;
	}
	for (size_t k = 0; k < nflows; k++) {
		size_t i = perm != NULL ? perm[k] : k;
		struct flowq_policy_flow *f = BP_FLOW(i);
		unsigned char *state = sstride != 0 ? smem + i * sstride : NULL;

		if (state != NULL)
			memset(state, 0, ops->desc.flow_state_size);
		*f = (struct flowq_policy_flow){
			.state = ops->desc.flow_state_size ? state : NULL,
			.queued = 0,
			.weight = 1 + (uint32_t)(i % 4),
			.seq = i,
		};
		if (ops->flow_attach(band, f, &env) != 0) {
			bench_skip_with_error(st, "flow_attach failed");
			goto out_fini;
		}
		attached++;
		f->queued = 1;
		f->head_bytes = sizes[si++ % BP_SIZES];
		f->head_key = key++;
		ops->flow_backlogged(band, f);
	}

	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int k = 0; k < BP_BATCH; k++) {
			struct flowq_policy_flow *f = ops->pick(band);
			uint64_t bytes;

			if (f == NULL) {
				nulls++;
				continue;
			}
			bytes = f->head_bytes;
			f->queued = 0;
			ops->update(band, f, true, bytes);
			f->queued = 1;
			f->head_bytes = sizes[si++ % BP_SIZES];
			f->head_key = key++;
			ops->flow_backlogged(band, f);
		}
	}

	if (nulls != 0) {
		snprintf(msg, sizeof(msg), "pick found nothing %llu times",
			 (unsigned long long)nulls);
		bench_skip_with_error(st, msg);
	} else {
		bench_set_items_processed(st, bench_iterations(st));
	}
	/* Empty every flow the way the engine does before it detaches. */
	for (size_t k = 0; k < attached; k++) {
		if (BP_JOIN(k)->queued != 0) {
			BP_JOIN(k)->queued = 0;
			ops->update(band, BP_JOIN(k), false, 0);
		}
	}
	if (!bench_error_occurred(st) && ops->pick(band) != NULL)
		bench_skip_with_error(st, "a flow is offered after every flow emptied");
out_fini:
	for (size_t k = 0; k < attached; k++)
		ops->flow_detach(band, BP_JOIN(k), &env);
	ops->band_fini(band, &env);
	if (ca.outstanding != 0 && !bench_error_occurred(st))
		bench_skip_with_error(st, "band_fini left memory allocated");
out_free:
	free(perm);
	free(band);
	free(smem);
	free(mem);
#undef BP_JOIN
#undef BP_FLOW
}

/* ---- ordering --------------------------------------------------------------- */

/* Set @r up as flowq_submit() does for a new request at @now. */
static void
bp_arrive(struct flowq_req *r, int64_t now, uint64_t *rng)
{
	uint64_t x = bp_rand(rng);
	int64_t ttl = (x & 3) == 0 ? INT64_MAX : (int64_t)(1 + (x >> 2) % 60) * 1000000000;
	int64_t expire = ttl == INT64_MAX ? INT64_MAX : now + ttl;

	r->deadline_ns = (x & 4) ? now + (int64_t)(1 + (x >> 8) % 100) * 1000000 : 0;
	if (r->deadline_ns != 0 && r->deadline_ns < expire)
		expire = r->deadline_ns;
	r->priv.enqueue_ns = now;
	r->priv.expire = expire;
	r->priv.bytes = r->bytes;
}

static void
bench_policy_ordering(struct bench_state *st, void *arg)
{
	const struct flowq_ordering_ops *ops = arg;
	size_t nflows = (size_t)bench_range(st, 0);
	const size_t depth = BP_DEPTH;
	size_t nreqs, stride, i = 0;
	size_t ssz = bp_round_up(ops->desc.flow_state_size + 1);
	unsigned char *states = NULL;
	struct flowq_req *reqs = NULL;
	uint64_t rng = 0x9e3779b97f4a7c15ull, misses = 0;
	int64_t now = 1000000000;

	nreqs = nflows * depth;
	/* One or more whole lines per flow state. */
	states = aligned_alloc(BP_LINE, nflows * ssz);
	reqs = malloc(nreqs * sizeof(*reqs));
	if (states == NULL || reqs == NULL) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
	memset(states, 0, nflows * ssz);
	for (size_t f = 0; f < nflows; f++) {
		for (size_t d = 0; d < depth; d++) {
			struct flowq_req *r = &reqs[f * depth + d];

			flowq_req_init(r);
			r->bytes = 64 + bp_rand(&rng) % 1437;
			bp_arrive(r, now++, &rng);
			ops->push_batch(states + f * ssz, &r, 1);
		}
	}
	/* Every flow is visited once per nflows decisions, scattered. */
	stride = bp_stride(nflows);

	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int k = 0; k < BP_BATCH; k++) {
			void *fs = states + i * ssz;
			struct flowq_req *r = ops->peek(fs), *h;

			i += stride;
			if (i >= nflows)
				i -= nflows;
			if (r == NULL) {
				misses++;
				continue;
			}
			ops->remove(fs, r);
			/* The dispatcher's head refresh (its result goes to
			 * the fairness policy; an indirect call cannot be
			 * optimized away). */
			h = ops->peek(fs);
			if (h != NULL)
				(void)ops->key(h);
			bp_arrive(r, now++, &rng);
			ops->push_batch(fs, &r, 1);
			(void)ops->key(ops->peek(fs));
		}
	}

	if (misses != 0) {
		bench_skip_with_error(st, "a flow's queue was empty");
		goto out;
	}
	/* Every flow still holds depth requests. */
	for (size_t f = 0; f < nflows; f++) {
		size_t n = 0;

		while (ops->pop(states + f * ssz) != NULL)
			n++;
		if (n != depth) {
			bench_skip_with_error(st, "a flow lost or gained requests");
			goto out;
		}
	}
	bench_set_items_processed(st, bench_iterations(st));
out:
	free(reqs);
	free(states);
}

/* ---- displacement ---------------------------------------------------------- */

static void
bench_policy_displacement(struct bench_state *st, void *arg)
{
	const struct flowq_displacement_ops *ops = arg;
	size_t nflows = (size_t)bench_range(st, 0);
	const size_t depth = BP_DEPTH;
	size_t ssz = bp_round_up(ops->desc.flow_state_size + 1);
	size_t bsz = bp_round_up(ops->desc.band_state_size + 1);
	unsigned char *states = NULL, *band = NULL;
	struct flowq_req *reqs = NULL;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	size_t i = 0, stride;
	struct bp_alloc ca = {.a = {.alloc = bp_alloc_fn, .free = bp_free_fn}};
	struct flowq_policy_env env = {.alloc = &ca.a, .priority = 0, .quantum = 4096};
	size_t attached = 0;

	ca.a.ctx = &ca;

	states = aligned_alloc(BP_LINE, nflows * ssz);
	band = aligned_alloc(BP_LINE, bsz);
	reqs = malloc(nflows * depth * sizeof(*reqs));
	if (states == NULL || band == NULL || reqs == NULL) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
	memset(states, 0, nflows * ssz);
	memset(band, 0, bsz);
	if (ops->band_init(band, &env) != 0) {
		bench_skip_with_error(st, "band_init failed");
		goto out;
	}
	/* A request's owner is its flow's index (+1), for the bench only. */
	for (size_t f = 0; f < nflows; f++) {
		if (ops->flow_attach && ops->flow_attach(band, states + f * ssz, &env) != 0) {
			bench_skip_with_error(st, "flow_attach failed");
			goto out_fini;
		}
		attached++;
		for (size_t d = 0; d < depth; d++) {
			struct flowq_req *r = &reqs[f * depth + d];

			flowq_req_init(r);
			r->bytes = 64 + bp_rand(&rng) % 1437;
			r->priv.owner = (void *)(uintptr_t)(f + 1);
			ops->arrived(band, states + f * ssz, r, (uint32_t)(1 + f % 4));
		}
	}
	stride = bp_stride(nflows);
	/* "none": the request that leaves is the next flow's; a per-flow
	 * FIFO of indexes into reqs is overkill: take slot 0 or 1 in turn. */
	unsigned turn = 0;
	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int k = 0; k < BP_BATCH; k++) {
			struct flowq_req *r = ops->victim(band);
			size_t to = i;

			i += stride;
			if (i >= nflows)
				i -= nflows;
			if (r == NULL)
				r = &reqs[to * depth + (turn++ & 1)];
			size_t from = (size_t)(uintptr_t)r->priv.owner - 1;
			ops->left(band, states + from * ssz, r, (uint32_t)(1 + from % 4));
			r->priv.owner = (void *)(uintptr_t)(to + 1);
			ops->arrived(band, states + to * ssz, r, (uint32_t)(1 + to % 4));
		}
	}
	/* Drain through the policy: every request leaves exactly once. */
	size_t left = 0;
	struct flowq_req *r;
	while ((r = ops->victim(band)) != NULL && left <= nflows * depth) {
		size_t from = (size_t)(uintptr_t)r->priv.owner - 1;
		ops->left(band, states + from * ssz, r, (uint32_t)(1 + from % 4));
		left++;
	}
	if (strcmp(ops->desc.name, "none") != 0 && left != nflows * depth)
		bench_skip_with_error(st, "the policy lost or repeated requests");
	else
		bench_set_items_processed(st, bench_iterations(st));
out_fini:
	for (size_t f = 0; f < attached && ops->flow_detach; f++)
		ops->flow_detach(band, states + f * ssz, &env);
	ops->band_fini(band, &env);
	if (ca.outstanding != 0 && !bench_error_occurred(st))
		bench_skip_with_error(st, "band_fini left memory allocated");
out:
	free(reqs);
	free(band);
	free(states);
}

/* ---- the peer: a plain binary heap ------------------------------------------ */

static void
bench_policy_peer_heap(struct bench_state *st, void *arg)
{
	uint32_t n = (uint32_t)bench_range(st, 0);
	uint64_t rng = 0x9e3779b97f4a7c15ull, seq = 0;
	struct flowq_heap_node *nodes, **slots, *prev = NULL, *cur;
	struct flowq_heap h;
	uint32_t popped = 0;
	int rc = 0;

	(void)arg;
	nodes = malloc((size_t)n * sizeof(*nodes));
	slots = malloc((size_t)n * sizeof(*slots));
	if (nodes == NULL || slots == NULL) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
	flowq_heap_init(&h, slots, n);
	for (uint32_t i = 0; i < n; i++) {
		flowq_heap_node_init(&nodes[i]);
		nodes[i].key = (int64_t)(bp_rand(&rng) % 1437);
		nodes[i].seq = seq++;
		rc |= bench_bheap_push(&h, &nodes[i]);
	}
	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int k = 0; k < BP_BATCH; k++) {
			struct flowq_heap_node *top = bench_bheap_pop(&h);

			/* A tag-like advance: the popped member's next key is
			 * one request (64-1500) further on. */
			top->key += (int64_t)(64 + bp_rand(&rng) % 1437);
			top->seq = seq++;
			rc |= bench_bheap_push(&h, top);
		}
	}
	if (rc != 0) {
		bench_skip_with_error(st, "push failed");
		goto out;
	}
	while ((cur = bench_bheap_pop(&h)) != NULL) {
		if (prev != NULL &&
		    (cur->key < prev->key || (cur->key == prev->key && cur->seq < prev->seq))) {
			bench_skip_with_error(st, "heap order violated");
			goto out;
		}
		prev = cur;
		popped++;
	}
	if (popped != n) {
		bench_skip_with_error(st, "the heap lost members");
		goto out;
	}
	bench_set_items_processed(st, bench_iterations(st));
out:
	free(nodes);
	free(slots);
}

/* ---- peers: the memory a fairness decision touches, without a policy ------ */

/* A flow-touch peer: @p lines per flow (1: the view only, whose hot word the
 * policy writes; 2: the view and a state line, whose first word it writes),
 * and whether the flows are visited in a random order. */
struct bp_touch_case {
	unsigned lines;
	bool scattered;
};

/* Flows for the peers, @p lines lines each, zeroed. */
static unsigned char *
bp_peer_flows(size_t nflows, unsigned lines)
{
	unsigned char *mem = aligned_alloc(BP_LINE, nflows * lines * BP_LINE);

	if (mem != NULL)
		memset(mem, 0, nflows * lines * BP_LINE);
	return mem;
}

/* The word a peer's decision writes for the policy: the view's first hot
 * word, or the state line's first word. */
static inline uint64_t *
bp_peer_word(unsigned char *flow, unsigned lines)
{
	return lines == 1 ? &((struct flowq_policy_flow *)flow)->hot[0]
			  : (uint64_t *)(flow + BP_LINE);
}

static void
bench_policy_peer_touch(struct bench_state *st, void *arg)
{
	const struct bp_touch_case *tc = arg;
	const size_t stride = (size_t)tc->lines * BP_LINE;
	size_t nflows = (size_t)bench_range(st, 0), k = 0;
	unsigned char *mem = bp_peer_flows(nflows, tc->lines);
	uint32_t *perm = tc->scattered ? bp_perm(nflows) : NULL;
	uint64_t sizes[BP_SIZES], si = 0, sum = 0, count = 0;
	int64_t key = 0;

	if (mem == NULL || (tc->scattered && perm == NULL)) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
	bp_fill_sizes(sizes);
	for (size_t i = 0; i < nflows; i++) {
		struct flowq_policy_flow *f =
			(struct flowq_policy_flow *)(mem + i * stride);

		f->queued = 1;
		f->head_bytes = sizes[si++ % BP_SIZES];
	}
	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int j = 0; j < BP_BATCH; j++) {
			size_t i = perm != NULL ? perm[k] : k;
			unsigned char *flow = mem + i * stride;
			struct flowq_policy_flow *f = (struct flowq_policy_flow *)flow;

			if (++k == nflows)
				k = 0;
			/* The dispatcher reads the head and empties the flow;
			 * the policy writes its word (a position); a new head
			 * arrives. */
			sum += f->head_bytes;
			f->queued = 0;
			(*bp_peer_word(flow, tc->lines))++;
			f->queued = 1;
			f->head_bytes = sizes[si++ % BP_SIZES];
			f->head_key = key++;
		}
	}
	/* Every decision wrote one word and read a head of >= 64 bytes. */
	for (size_t i = 0; i < nflows; i++)
		count += *bp_peer_word(mem + i * stride, tc->lines);
	if (count != (uint64_t)bench_iterations(st) || sum < 64 * count)
		bench_skip_with_error(st, "a decision was lost");
	else
		bench_set_items_processed(st, bench_iterations(st));
out:
	free(perm);
	free(mem);
}

static void
bench_policy_peer_chase(struct bench_state *st, void *arg)
{
	size_t nflows = (size_t)bench_range(st, 0), n = 0;
	unsigned char *mem = bp_peer_flows(nflows, 2);
	uint32_t *perm = bp_perm(nflows);
	void **p, **q;

	(void)arg;
	if (mem == NULL || perm == NULL) {
		bench_skip_with_error(st, "out of memory");
		goto out;
	}
#define BP_NEXT(i) ((void **)(mem + (size_t)(i)*2 * BP_LINE + BP_LINE))
	/* A cycle through every flow's state line, in the random order. */
	for (size_t k = 0; k < nflows; k++)
		*BP_NEXT(perm[k]) = BP_NEXT(perm[(k + 1) % nflows]);
	p = BP_NEXT(perm[0]);
	while (bench_keep_running_batch(st, BP_BATCH)) {
		for (int j = 0; j < BP_BATCH; j++)
			p = *p;
	}
	/* p is still on the cycle: nflows steps bring it back. */
	q = p;
	do {
		q = *q;
		n++;
	} while (q != p && n <= nflows);
	if (n != nflows)
		bench_skip_with_error(st, "the chain is broken");
	else
		bench_set_items_processed(st, bench_iterations(st));
#undef BP_NEXT
out:
	free(perm);
	free(mem);
}

/* ---- registration ------------------------------------------------------------ */

static void
bp_sizes(struct bench_case *c)
{
	if (c == NULL)
		return;
	bench_case_arg_name(bench_case_unit(c, BENCH_UNIT_NS), "flows");
	for (size_t j = 0; j < sizeof(bp_flows) / sizeof(bp_flows[0]); j++)
		bench_case_arg(c, bp_flows[j]);
}

void
bench_policy_register(void)
{
	char name[96];

	static struct bp_fair_case fair[2][FLOWQ_POLICY_MAX];

	bp_sizes(bench_register("BM_policy_peer_binary_heap", bench_policy_peer_heap, NULL));
	static struct bp_touch_case touch[] = {
		{.lines = 1, .scattered = false},
		{.lines = 1, .scattered = true},
		{.lines = 2, .scattered = false},
	};

	bp_sizes(bench_register("BM_policy_peer_flow_touch", bench_policy_peer_touch,
				&touch[0]));
	bp_sizes(bench_register("BM_policy_peer_flow_touch_scattered",
				bench_policy_peer_touch, &touch[1]));
	bp_sizes(bench_register("BM_policy_peer_flow_touch_state",
				bench_policy_peer_touch, &touch[2]));
	bp_sizes(bench_register("BM_policy_peer_pointer_chase", bench_policy_peer_chase,
				NULL));
	for (size_t i = 0; flowq_fairness_at(i) != NULL && i < FLOWQ_POLICY_MAX; i++) {
		const struct flowq_fairness_ops *ops = flowq_fairness_at(i);

		fair[0][i] = (struct bp_fair_case){.ops = ops, .scattered = false};
		fair[1][i] = (struct bp_fair_case){.ops = ops, .scattered = true};
		snprintf(name, sizeof(name), "BM_policy_fairness_%s", ops->desc.name);
		bp_sizes(bench_register(name, bench_policy_fairness, &fair[0][i]));
		snprintf(name, sizeof(name), "BM_policy_fairness_scattered_%s",
			 ops->desc.name);
		bp_sizes(bench_register(name, bench_policy_fairness, &fair[1][i]));
	}
	for (size_t i = 0; flowq_ordering_at(i) != NULL; i++) {
		const struct flowq_ordering_ops *ops = flowq_ordering_at(i);

		snprintf(name, sizeof(name), "BM_policy_ordering_%s", ops->desc.name);
		bp_sizes(bench_register(name, bench_policy_ordering, (void *)ops));
	}
	for (size_t i = 0; flowq_displacement_at(i) != NULL; i++) {
		const struct flowq_displacement_ops *ops = flowq_displacement_at(i);

		snprintf(name, sizeof(name), "BM_policy_displacement_%s", ops->desc.name);
		bp_sizes(bench_register(name, bench_policy_displacement, (void *)ops));
	}
}
