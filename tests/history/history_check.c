/*
 * history_check: the offline checker of flowq histories (flowq/history.h
 * describes the recorder and the text format).
 *
 *   history_check [--window-us W] [--expect KIND] FILE...
 *
 * Each "# flowq history" header starts one history (one dump: an engine's
 * life when written by flowq_engine_destroy()); histories are checked one by
 * one, events in order of their key gseq. A request instance runs from its
 * S (admitted) or J (rejected) event to its outcome; instances are matched
 * by request address, which a host may reuse once the outcome is delivered.
 *
 * Rules (each failure is one violation of the kind named first):
 *  - lost:      every admitted request has exactly one outcome: an S whose
 *               address still has an undecided instance, or an instance
 *               still undecided at the end of its history;
 *  - duplicate: an outcome (O) for an instance already decided or rejected;
 *  - orphan:    an outcome or release for an address never submitted;
 *  - outcome:   J carries a REJECTED_* outcome and O a DISPATCHED or
 *               EVICTED_* one (rejected = never queued, evicted = was);
 *  - release:   R only for a DISPATCHED instance, at most once;
 *  - deadline:  no DISPATCHED at an engine time at or after the request's
 *               expiry (the dispatcher's round time against min(enqueue +
 *               TTL, deadline)), and no EVICTED_TTL before it;
 *  - fifo:      under fcfs, the DISPATCHED requests one producer (log tid)
 *               submitted to one flow are dispatched in its submit order
 *               (pseq). Requests cancelled, expired or displaced drop out
 *               of the sequence; the rest must keep their order;
 *  - priority:  DESIGN.md invariant 2 as the engine states it
 *               (core/dispatch.c, "Cross-shard strict priority"): while the
 *               gate is scarce (the O event's scarce flag), a request of
 *               band b is not dispatched while a request of a band above b
 *               was admitted more than W before (its S event's t) and is
 *               still undecided. W is the documented inversion window, the
 *               time a shard takes to notice new work (wake-up plus the rest
 *               of its round): README, "Global semantics across shards",
 *               bounds it at 1 ms (the default) after taking off the time
 *               dispatchers waited for a CPU, which a history cannot see: on
 *               an oversubscribed machine pass a larger W. Without a gate
 *               nothing is checked (no slot is scarce, shards do not
 *               coordinate). The oldest such wait seen at any lower-band
 *               dispatch is reported (max_wait_us) whatever W is.
 *  - malformed: a line that does not parse, a repeated gseq, or a history
 *               whose recorder dropped events (no memory).
 *
 * Output: counts and the first violations on stdout, then one line
 *   HISTORY histories=H events=E submits=S ... violations=V
 * Exit status: 0 if no violation; 1 if any (or, with --expect KIND, 0 only
 * if there are violations and all are of KIND: the mutation tests); 2 on
 * usage or I/O errors.
 *
 * Cost: O(E log E) time (the sort), O(E) memory.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/types.h>

#define PROG "history_check"

enum vkind {
	V_LOST,
	V_DUPLICATE,
	V_ORPHAN,
	V_OUTCOME,
	V_RELEASE,
	V_DEADLINE,
	V_FIFO,
	V_PRIORITY,
	V_MALFORMED,
	V_COUNT
};
static const char *const vname[V_COUNT] = {"lost",    "duplicate", "orphan",
					   "outcome", "release",   "deadline",
					   "fifo",    "priority",  "malformed"};

struct ev {
	uint64_t gseq;
	int64_t t;
	uint64_t req, flow, bytes;
	int64_t now, expiry;
	uint32_t tid, pseq;
	int32_t prio;
	uint32_t shard;
	char kind;
	uint8_t outcome, cause, flag;
	unsigned line;
};

struct inst {
	uint64_t req, flow;
	int64_t t_sub, expiry;
	uint32_t tid, pseq;
	int32_t prio;
	/* FLOWQ_PENDING while undecided; FLOWQ_OUTCOME_COUNT once reported
	 * lost (its address was submitted again). */
	uint8_t outcome;
	bool fifo, released, admitted;
	unsigned line;
};

static uint64_t vcount[V_COUNT];
static unsigned vprinted;
static const char *cur_file;

static void
violation(enum vkind k, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
violation(enum vkind k, unsigned line, const char *fmt, ...)
{
	vcount[k]++;
	if (vprinted++ >= 20)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("VIOLATION %s %s:%u: ", vname[k], cur_file, line);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

/* ---- open-addressing maps keyed by 64-bit values ---- */

struct map {
	uint64_t *keys; /* 0 = empty (addresses and composite keys are never 0) */
	size_t *vals;
	size_t mask;
};

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static void
map_init(struct map *m, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n + 2)
		cap *= 2;
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		exit(2);
	}
	m->mask = cap - 1;
}

static void
map_fini(struct map *m)
{
	free(m->keys);
	free(m->vals);
}

/* The slot of @p key: its own, or the empty one where it would go. */
static size_t
map_slot(const struct map *m, uint64_t key)
{
	size_t i = mix(key) & m->mask;
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & m->mask;
	return i;
}

/* ---- per-priority heaps of admitted, undecided requests (by t_sub) ---- */

struct pq {
	int32_t prio;
	size_t n, cap;
	size_t *h; /* instance indexes, min-heap on t_sub */
};

static struct inst *insts;

static bool
pq_less(size_t a, size_t b)
{
	return insts[a].t_sub < insts[b].t_sub;
}

static void
pq_push(struct pq *q, size_t x)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 64;
		q->h = realloc(q->h, q->cap * sizeof(*q->h));
		if (!q->h) {
			fprintf(stderr, "%s: out of memory\n", PROG);
			exit(2);
		}
	}
	size_t i = q->n++;
	while (i && pq_less(x, q->h[(i - 1) / 2])) {
		q->h[i] = q->h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->h[i] = x;
}

static void
pq_pop(struct pq *q)
{
	size_t x = q->h[--q->n], i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->n)
			break;
		if (c + 1 < q->n && pq_less(q->h[c + 1], q->h[c]))
			c++;
		if (!pq_less(q->h[c], x))
			break;
		q->h[i] = q->h[c];
		i = c;
	}
	if (q->n)
		q->h[i] = x;
}

/* The oldest undecided request of @p q, or SIZE_MAX; decided ones are
 * dropped on the way (lazy deletion). */
static size_t
pq_oldest(struct pq *q)
{
	while (q->n && insts[q->h[0]].outcome != FLOWQ_PENDING)
		pq_pop(q);
	return q->n ? q->h[0] : SIZE_MAX;
}

/* ---- parsing ---- */

static int
outcome_parse(const char *s, uint8_t *r)
{
	for (int o = 0; o < FLOWQ_OUTCOME_COUNT; o++)
		if (strcmp(s, flowq_outcome_str((enum flowq_outcome)o)) == 0) {
			*r = (uint8_t)o;
			return 0;
		}
	return -1;
}

static int
cause_parse(const char *s, uint8_t *r)
{
	for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++)
		if (strcmp(s, flowq_cause_str((enum flowq_cause)c)) == 0) {
			*r = (uint8_t)c;
			return 0;
		}
	return -1;
}

static int
ev_parse(const char *l, struct ev *e)
{
	char o[32], c[32];
	unsigned flag;
	memset(e, 0, sizeof(*e));
	e->kind = l[0];
	switch (l[0]) {
	case 'S':
		if (sscanf(l,
			   "S %" SCNu64 " %" SCNd64 " %" SCNu32 " %" SCNu32 " %" SCNx64
			   " %" SCNx64 " %" SCNd32 " %" SCNu64 " %" SCNd64 " %" SCNd64
			   " %u",
			   &e->gseq, &e->t, &e->tid, &e->pseq, &e->req, &e->flow,
			   &e->prio, &e->bytes, &e->now, &e->expiry, &flag) != 11 ||
		    flag > 1)
			return -1;
		e->flag = (uint8_t)flag;
		return 0;
	case 'J':
		if (sscanf(l,
			   "J %" SCNu64 " %" SCNd64 " %" SCNu32 " %" SCNu32 " %" SCNx64
			   " %" SCNx64 " %" SCNd32 " %" SCNu64 " %31s %31s",
			   &e->gseq, &e->t, &e->tid, &e->pseq, &e->req, &e->flow,
			   &e->prio, &e->bytes, o, c) != 10)
			return -1;
		return outcome_parse(o, &e->outcome) || cause_parse(c, &e->cause) ? -1
										  : 0;
	case 'O':
		if (sscanf(l,
			   "O %" SCNu64 " %" SCNd64 " %" SCNu32 " %" SCNx64
			   " %31s %31s %" SCNd64 " %" SCNu32 " %u",
			   &e->gseq, &e->t, &e->tid, &e->req, o, c, &e->now, &e->shard,
			   &flag) != 9 ||
		    flag > 1)
			return -1;
		e->flag = (uint8_t)flag;
		return outcome_parse(o, &e->outcome) || cause_parse(c, &e->cause) ? -1
										  : 0;
	case 'R':
		return sscanf(l, "R %" SCNu64 " %" SCNd64 " %" SCNu32 " %" SCNx64,
			      &e->gseq, &e->t, &e->tid, &e->req) == 4
			       ? 0
			       : -1;
	default:
		return -1;
	}
}

static int
ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

/* ---- the check of one history ---- */

static struct {
	uint64_t histories, events, admitted, rejected, outcomes[FLOWQ_OUTCOME_COUNT],
		releases, unreleased, fifo_checked, prio_checked, prio_waiting;
	int64_t max_wait_ns;
} tot;
static int64_t window_ns = 1000000;

static void
check_history(struct ev *evs, size_t n)
{
	tot.histories++;
	tot.events += n;
	qsort(evs, n, sizeof(*evs), ev_cmp);
	insts = calloc(n + 1, sizeof(*insts));
	if (!insts) {
		fprintf(stderr, "%s: out of memory\n", PROG);
		exit(2);
	}
	size_t ninst = 0;
	struct map reqs, fifo;
	map_init(&reqs, n);
	map_init(&fifo, n);
	struct pq *pqs = NULL;
	size_t npq = 0;

	for (size_t i = 0; i < n; i++) {
		struct ev *e = &evs[i];
		if (i && e->gseq == evs[i - 1].gseq)
			violation(V_MALFORMED, e->line, "gseq %" PRIu64 " repeated",
				  e->gseq);
		size_t slot = map_slot(&reqs, e->req);
		struct inst *cur = reqs.keys[slot] ? &insts[reqs.vals[slot]] : NULL;
		if (e->kind == 'S' || e->kind == 'J') {
			if (cur && cur->outcome == FLOWQ_PENDING)
				violation(V_LOST, cur->line,
					  "request %" PRIx64
					  " (line %u) resubmitted at line %u "
					  "without an outcome",
					  e->req, cur->line, e->line);
			if (cur && cur->outcome == FLOWQ_PENDING)
				cur->outcome = FLOWQ_OUTCOME_COUNT; /* lost: reported */
			struct inst *x = &insts[ninst];
			*x = (struct inst){.req = e->req,
					   .flow = e->flow,
					   .t_sub = e->t,
					   .expiry = e->expiry,
					   .tid = e->tid,
					   .pseq = e->pseq,
					   .prio = e->prio,
					   .fifo = e->flag,
					   .line = e->line};
			reqs.keys[slot] = e->req;
			reqs.vals[slot] = ninst++;
			if (e->kind == 'J') {
				tot.rejected++;
				x->outcome = e->outcome;
				if (!flowq_outcome_is_rejected(e->outcome))
					violation(V_OUTCOME, e->line,
						  "a rejected submit with outcome %s",
						  flowq_outcome_str(e->outcome));
				continue;
			}
			tot.admitted++;
			x->admitted = true;
			size_t q;
			for (q = 0; q < npq && pqs[q].prio != e->prio; q++)
				;
			if (q == npq) {
				pqs = realloc(pqs, (npq + 1) * sizeof(*pqs));
				if (!pqs) {
					fprintf(stderr, "%s: out of memory\n", PROG);
					exit(2);
				}
				pqs[npq++] = (struct pq){.prio = e->prio};
			}
			pq_push(&pqs[q], ninst - 1);
			continue;
		}
		if (!cur) {
			violation(V_ORPHAN, e->line,
				  "%s for request %" PRIx64 " never submitted",
				  e->kind == 'R' ? "release" : "outcome", e->req);
			continue;
		}
		if (e->kind == 'R') {
			tot.releases++;
			if (cur->outcome != FLOWQ_DISPATCHED || cur->released)
				violation(V_RELEASE, e->line,
					  "release of request %" PRIx64
					  " (line %u): %s%s",
					  e->req, cur->line,
					  flowq_outcome_str(cur->outcome),
					  cur->released ? ", already released" : "");
			cur->released = true;
			continue;
		}
		/* 'O' */
		if (cur->outcome != FLOWQ_PENDING) {
			violation(V_DUPLICATE, e->line,
				  "second outcome %s for request %" PRIx64
				  " (line %u), first %s",
				  flowq_outcome_str(e->outcome), e->req, cur->line,
				  flowq_outcome_str(cur->outcome));
			continue;
		}
		tot.outcomes[e->outcome]++;
		cur->outcome = e->outcome;
		if (e->outcome != FLOWQ_DISPATCHED &&
		    !flowq_outcome_is_evicted(e->outcome)) {
			violation(V_OUTCOME, e->line, "a queued request with outcome %s",
				  flowq_outcome_str(e->outcome));
			continue;
		}
		if (e->outcome == FLOWQ_EVICTED_TTL && e->now < cur->expiry)
			violation(V_DEADLINE, e->line,
				  "request %" PRIx64 " (line %u) expired at %" PRId64
				  ", %" PRId64 " ns before its expiry",
				  e->req, cur->line, e->now, cur->expiry - e->now);
		if (e->outcome != FLOWQ_DISPATCHED)
			continue;
		if (e->now >= cur->expiry)
			violation(V_DEADLINE, e->line,
				  "request %" PRIx64 " (line %u) dispatched at %" PRId64
				  ", %" PRId64 " ns past its expiry",
				  e->req, cur->line, e->now, e->now - cur->expiry);
		if (cur->fifo) {
			/* Key: producer and flow (a flow hash is never 0 in
			 * practice; mixing the tid in keeps the key nonzero). */
			uint64_t key = mix(cur->flow ^ mix((uint64_t)cur->tid + 1)) | 1;
			size_t fs = map_slot(&fifo, key);
			tot.fifo_checked++;
			if (fifo.keys[fs] && insts[fifo.vals[fs]].pseq > cur->pseq)
				violation(
					V_FIFO, e->line,
					"producer %u flow %" PRIx64
					": its submit %" PRIu32
					" (line %u) dispatched after its submit %" PRIu32
					" (line %u)",
					cur->tid, cur->flow, cur->pseq, cur->line,
					insts[fifo.vals[fs]].pseq,
					insts[fifo.vals[fs]].line);
			else {
				fifo.keys[fs] = key;
				fifo.vals[fs] = (size_t)(cur - insts);
			}
		}
		if (!e->flag)
			continue;
		tot.prio_checked++;
		bool waiting = false;
		for (size_t q = 0; q < npq; q++) {
			if (pqs[q].prio <= cur->prio)
				continue;
			size_t o = pq_oldest(&pqs[q]);
			if (o == SIZE_MAX)
				continue;
			waiting = true;
			int64_t w = e->t - insts[o].t_sub;
			if (w > tot.max_wait_ns)
				tot.max_wait_ns = w;
			if (w > window_ns)
				violation(V_PRIORITY, e->line,
					  "band %" PRId32 " dispatched (request %" PRIx64
					  ") while band %" PRId32 " request %" PRIx64
					  " (line %u) had waited %.3f ms",
					  cur->prio, e->req, insts[o].prio, insts[o].req,
					  insts[o].line, (double)w / 1e6);
		}
		tot.prio_waiting += waiting;
	}
	for (size_t i = 0; i < ninst; i++) {
		if (insts[i].outcome == FLOWQ_PENDING)
			violation(V_LOST, insts[i].line,
				  "request %" PRIx64 " admitted, never given an outcome",
				  insts[i].req);
		/* The last instance of each address only: an earlier one
		 * was either released or resubmitted (not a violation). */
		if (insts[i].outcome == FLOWQ_DISPATCHED && !insts[i].released &&
		    insts[reqs.vals[map_slot(&reqs, insts[i].req)]].line == insts[i].line)
			tot.unreleased++;
	}
	for (size_t q = 0; q < npq; q++)
		free(pqs[q].h);
	free(pqs);
	map_fini(&reqs);
	map_fini(&fifo);
	free(insts);
	insts = NULL;
}

static int
check_file(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: %s: cannot open\n", PROG, path);
		return -1;
	}
	cur_file = path;
	char *line = NULL;
	size_t cap = 0, n = 0, evcap = 0;
	struct ev *evs = NULL;
	bool open = false;
	unsigned lineno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		if (strncmp(line, "# flowq history ", 16) == 0) {
			if (open)
				check_history(evs, n);
			n = 0;
			open = true;
			unsigned version;
			unsigned long long events, dropped;
			if (sscanf(line, "# flowq history %u events=%llu dropped=%llu",
				   &version, &events, &dropped) != 3 ||
			    version != 1)
				violation(V_MALFORMED, lineno, "bad header");
			else if (dropped)
				violation(V_MALFORMED, lineno,
					  "the recorder dropped %llu events (no memory)",
					  dropped);
			continue;
		}
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!open) {
			violation(V_MALFORMED, lineno, "event before a history header");
			open = true;
		}
		if (n == evcap) {
			evcap = evcap ? 2 * evcap : 4096;
			evs = realloc(evs, evcap * sizeof(*evs));
			if (!evs) {
				fprintf(stderr, "%s: out of memory\n", PROG);
				exit(2);
			}
		}
		if (ev_parse(line, &evs[n])) {
			line[strcspn(line, "\n")] = '\0';
			violation(V_MALFORMED, lineno, "cannot parse '%s'", line);
			continue;
		}
		evs[n++].line = lineno;
	}
	if (open)
		check_history(evs, n);
	free(evs);
	free(line);
	if (f != stdin)
		fclose(f);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *expect = NULL;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--window-us") == 0 && i + 1 < argc) {
			char *end;
			long long w = strtoll(argv[++i], &end, 10);
			if (*end || w < 0 || w > INT64_MAX / 1000) {
				fprintf(stderr, "%s: bad --window-us '%s'\n", PROG,
					argv[i]);
				return 2;
			}
			window_ns = w * 1000;
		} else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
			expect = argv[++i];
		} else {
			break;
		}
	}
	if (i >= argc || strncmp(argv[i], "--", 2) == 0) {
		fprintf(stderr, "usage: %s [--window-us W] [--expect KIND] FILE...\n",
			PROG);
		return 2;
	}
	enum vkind ek = V_COUNT;
	if (expect) {
		for (int k = 0; k < V_COUNT; k++)
			if (strcmp(expect, vname[k]) == 0)
				ek = (enum vkind)k;
		if (ek == V_COUNT) {
			fprintf(stderr, "%s: unknown violation kind '%s'\n", PROG,
				expect);
			return 2;
		}
	}
	for (; i < argc; i++)
		if (check_file(argv[i]))
			return 2;

	uint64_t v = 0;
	for (int k = 0; k < V_COUNT; k++)
		v += vcount[k];
	printf("HISTORY histories=%" PRIu64 " events=%" PRIu64 " admitted=%" PRIu64
	       " rejected=%" PRIu64,
	       tot.histories, tot.events, tot.admitted, tot.rejected);
	for (int o = FLOWQ_DISPATCHED; o < FLOWQ_OUTCOME_COUNT; o++)
		if (!flowq_outcome_is_rejected((enum flowq_outcome)o))
			printf(" %s=%" PRIu64, flowq_outcome_str((enum flowq_outcome)o),
			       tot.outcomes[o]);
	printf(" released=%" PRIu64 " unreleased=%" PRIu64 " fifo_checked=%" PRIu64
	       " prio_checked=%" PRIu64 " prio_higher_waiting=%" PRIu64
	       " max_wait_us=%.1f window_us=%" PRId64,
	       tot.releases, tot.unreleased, tot.fifo_checked, tot.prio_checked,
	       tot.prio_waiting, (double)tot.max_wait_ns / 1e3, window_ns / 1000);
	for (int k = 0; k < V_COUNT; k++)
		if (vcount[k])
			printf(" %s=%" PRIu64, vname[k], vcount[k]);
	printf(" violations=%" PRIu64 "\n", v);
	if (ek != V_COUNT)
		return v > 0 && vcount[ek] == v ? 0 : 1;
	return v ? 1 : 0;
}
