/*
 * flowq_metrics_write(): the engine's statistics in the Prometheus text
 * exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Written only on the public statistics API of flowq/flowq.h
 * (flowq_stats_engine, flowq_stats_shard, flowq_stats_coalesce,
 * flowq_stats_foreach_band, flowq_stats_foreach_flow, flowq_hist_bound):
 * the exporter sees what any host sees, and the engine keeps no
 * exporter-specific state.
 *
 * Metric families
 * ---------------
 * One family per quantity and scope. The scope is in the name, not in a
 * label, so that sum() over a family never adds an engine total to the band
 * totals it is made of.
 *
 *   family                          type       labels
 *   ------------------------------  ---------  -------------------------------
 *   flowq_queued_requests           gauge      -
 *   flowq_queued_bytes              gauge      -
 *   flowq_inflight_requests         gauge      -
 *   flowq_inflight_bytes            gauge      -
 *   flowq_requests_total            counter    outcome, cause
 *   flowq_queue_time_seconds        histogram  le (129 bounds + "+Inf")
 *   flowq_shard_*_total             counter    shard (shard_families[] below:
 *                                              rounds, decided, doorbell
 *                                              intakes, sleeps, coalesce waits)
 *   flowq_coalesce_wait_on          gauge      -
 *   flowq_coalesce_holds_total      counter    wait ("on", "off")
 *   flowq_coalesce_dropped_periods_total counter -
 *   flowq_band_queued_requests      gauge      priority
 *   flowq_band_queued_bytes         gauge      priority
 *   flowq_band_requests_total       counter    priority, outcome, cause
 *   flowq_band_queue_time_seconds   histogram  priority, le (as the engine's)
 *   flowq_flow_queued_requests      gauge      flow, priority
 *   flowq_flow_queued_bytes         gauge      flow, priority
 *   flowq_flow_requests_total       counter    flow, priority, outcome
 *   flowq_flow_queue_time_seconds   histogram  flow, priority, le ("+Inf" only)
 *
 * - queued: admitted, no outcome yet; inflight: dispatched, not released
 *   (engine scope only: struct flowq_stats has it nowhere else).
 * - requests_total counts outcomes (flowq_outcome_str() names: dispatched,
 *   rejected_capacity, ..., evicted_other) split by cause
 *   (flowq_cause_str()). Every (outcome, cause) pair that
 *   flowq_cause_valid_for() allows is written, zero or not, so each series
 *   exists from the first scrape and rate() never sees it appear; a pair it
 *   does not allow is written only if non-zero (an engine bug must not hide
 *   counts). Per flow, outcome only: flows can be many, and the band and
 *   engine families carry the causes.
 * - queue_time_seconds: submit to outcome, for requests that left a queue.
 *   Engine and bands get every bucket of flowq_hist_bound() (le is that
 *   bound: it is inclusive, in integer ns, exactly as Prometheus's "<="). A
 *   flow gets only the "+Inf" bucket, _sum and _count (mean queue time per
 *   flow), because 130 series per flow would make a scrape of many tenants
 *   huge. le and _sum are exact decimals of integer nanoseconds
 *   ("0.000001023", "4398.046511103"), never rounded through a double.
 * - _count is the "+Inf" bucket, i.e. the sum of the buckets, not the
 *   snapshot's count field: the snapshot is read while dispatchers record
 *   (core/hist.h), so the two can differ by a record in progress, and the
 *   format requires _count to equal the "+Inf" bucket.
 *
 * Label values
 * ------------
 * priority is the band's decimal int32. flow is the flow id, which is
 * arbitrary bytes; the format allows only UTF-8 with the escapes \\, \" and
 * \n, so the id is written as:
 *   - printable ASCII (0x20..0x7e) except '\' and '"': as is;
 *   - '"' as \" and newline as \n (the format's escapes);
 *   - every other byte, including '\' itself, as the four characters \xhh
 *     (lower-case hex), which in the exposition is the escaped backslash
 *     \\ followed by xhh.
 * So the label value Prometheus stores is ASCII in which a backslash always
 * starts \xhh: the mapping from ids to label values is one-to-one (a '\' in
 * the id is \x5c, never a bare backslash that could be confused with an
 * escaped byte), and every id, even invalid UTF-8, has a valid value.
 *
 * Context: any thread but a completion callback (the stats walks forbid
 * it). The text is written from inside the walks' callbacks, so a slow
 * stream (a pipe or socket to a scraper) holds up each walk and whatever
 * the engine holds during it; a host serving a scrape should write into
 * memory (open_memstream()) and send that. May block (stdio). Progress:
 * blocking; allocates nothing.
 *
 * Consistency: each family is one walk of the bands or flows (families must
 * be contiguous in the output), so a flow or a just-in-time band created or
 * collected during the call may be in one family and not another, and a
 * value in one family may be a little newer than in another. Each value is
 * exact (flowq_stats_engine()). Any number of flows is written in constant
 * space.
 *
 * Collected bands: a just-in-time band that is collected (flowq.h,
 * flow_gc_timeout_ns) leaves the band families, and its counts stay in the
 * engine families; so an engine counter is the sum of the band series plus
 * what collected bands had, and it never goes down. A band made again for
 * the same priority starts its series from zero, which Prometheus's rate()
 * reads as a counter reset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <flowq/flowq.h>

/* The output stream and its first error (0 or -EIO). Once an error is
 * recorded nothing more is written. */
struct mw {
	FILE *out;
	int err;
};

static void
mw_puts(struct mw *w, const char *s)
{
	if (w->err == 0 && fputs(s, w->out) == EOF)
		w->err = -EIO;
}

static void
mw_putc(struct mw *w, int c)
{
	if (w->err == 0 && putc(c, w->out) == EOF)
		w->err = -EIO;
}

static void
mw_printf(struct mw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
mw_printf(struct mw *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err != 0)
		return;
	va_start(ap, fmt);
	if (vfprintf(w->out, fmt, ap) < 0)
		w->err = -EIO;
	va_end(ap);
}

/* Integer nanoseconds as an exact decimal number of seconds, without
 * trailing zeros ("2", "0.0015", "4398.046511103"). */
static void
fmt_seconds(char *buf, size_t size, uint64_t ns)
{
	uint64_t s = ns / 1000000000u, frac = ns % 1000000000u;
	size_t len;

	if (frac == 0) {
		snprintf(buf, size, "%" PRIu64, s);
		return;
	}
	snprintf(buf, size, "%" PRIu64 ".%09" PRIu64, s, frac);
	len = strlen(buf);
	while (buf[len - 1] == '0')
		buf[--len] = '\0';
}

/* A flow id as a label value (see "Label values" above). */
static void
put_flow_id(struct mw *w, const unsigned char *id, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		unsigned char c = id[i];

		if (c == '"')
			mw_puts(w, "\\\"");
		else if (c == '\n')
			mw_puts(w, "\\n");
		else if (c >= 0x20 && c <= 0x7e && c != '\\')
			mw_putc(w, c);
		else
			mw_printf(w, "\\\\x%02x", c);
	}
}

enum scope_kind {
	SCOPE_ENGINE,
	SCOPE_BAND,
	SCOPE_FLOW,
};

/* Whose sample is being written: selects the scope's own labels. */
struct scope {
	enum scope_kind kind;
	int32_t priority;
	const void *id;
	uint32_t id_len;
};

/*
 * One sample line: @name@suffix{<scope labels>,@extra} @value. @extra is
 * pre-formatted label text (no escaping needed: outcome and cause names and
 * le values are plain ASCII) or "". A sample without any label has no
 * braces.
 */
static void
put_sample(struct mw *w, const char *name, const char *suffix, const struct scope *s,
	   const char *extra, const char *value)
{
	bool scope_labels = s->kind != SCOPE_ENGINE;

	mw_puts(w, name);
	mw_puts(w, suffix);
	if (scope_labels || extra[0] != '\0') {
		mw_putc(w, '{');
		if (s->kind == SCOPE_FLOW) {
			mw_puts(w, "flow=\"");
			put_flow_id(w, s->id, s->id_len);
			mw_puts(w, "\",");
		}
		if (scope_labels)
			mw_printf(w, "priority=\"%" PRId32 "\"", s->priority);
		if (scope_labels && extra[0] != '\0')
			mw_putc(w, ',');
		mw_puts(w, extra);
		mw_putc(w, '}');
	}
	mw_putc(w, ' ');
	mw_puts(w, value);
	mw_putc(w, '\n');
}

static void
put_sample_u64(struct mw *w, const char *name, const char *suffix, const struct scope *s,
	       const char *extra, uint64_t v)
{
	char value[24];

	snprintf(value, sizeof(value), "%" PRIu64, v);
	put_sample(w, name, suffix, s, extra, value);
}

/* What a family shows of a struct flowq_stats. */
enum fam_kind {
	FAM_QUEUED,
	FAM_QUEUED_BYTES,
	FAM_INFLIGHT,
	FAM_INFLIGHT_BYTES,
	FAM_REQUESTS, /* by outcome and cause */
	FAM_REQUESTS_BY_OUTCOME,
	FAM_QUEUE_TIME,     /* every bucket */
	FAM_QUEUE_TIME_SUM, /* "+Inf", _sum and _count only */
};

struct family {
	const char *name;
	const char *type;
	const char *help;
	enum fam_kind kind;
};

static const struct family engine_families[] = {
	{"flowq_queued_requests", "gauge",
	 "Requests admitted and not yet given an outcome.", FAM_QUEUED},
	{"flowq_queued_bytes", "gauge", "Bytes of the queued requests.",
	 FAM_QUEUED_BYTES},
	{"flowq_inflight_requests", "gauge", "Requests dispatched and not yet released.",
	 FAM_INFLIGHT},
	{"flowq_inflight_bytes", "gauge", "Bytes of the in-flight requests.",
	 FAM_INFLIGHT_BYTES},
	{"flowq_requests_total", "counter",
	 "Requests given an outcome, by outcome and cause.", FAM_REQUESTS},
	{"flowq_queue_time_seconds", "histogram",
	 "Time from submit to outcome of requests that left a queue.", FAM_QUEUE_TIME},
};

static const struct family band_families[] = {
	{"flowq_band_queued_requests", "gauge",
	 "Requests of the band admitted and not yet given an outcome.", FAM_QUEUED},
	{"flowq_band_queued_bytes", "gauge", "Bytes of the band's queued requests.",
	 FAM_QUEUED_BYTES},
	{"flowq_band_requests_total", "counter",
	 "Requests of the band given an outcome, by outcome and cause.", FAM_REQUESTS},
	{"flowq_band_queue_time_seconds", "histogram",
	 "Time from submit to outcome of the band's requests that left a queue.",
	 FAM_QUEUE_TIME},
};

static const struct family flow_families[] = {
	{"flowq_flow_queued_requests", "gauge",
	 "Requests of the flow admitted and not yet given an outcome.", FAM_QUEUED},
	{"flowq_flow_queued_bytes", "gauge", "Bytes of the flow's queued requests.",
	 FAM_QUEUED_BYTES},
	{"flowq_flow_requests_total", "counter",
	 "Requests of the flow given an outcome, by outcome.", FAM_REQUESTS_BY_OUTCOME},
	{"flowq_flow_queue_time_seconds", "histogram",
	 "Time from submit to outcome of the flow's requests that left a queue "
	 "(no finite buckets: sum and count only).",
	 FAM_QUEUE_TIME_SUM},
};

/* Per shard (flowq_stats_shard()): counters labelled shard="k". */
static const struct {
	const char *name;
	const char *help;
	size_t off; /* of the uint64_t in struct flowq_shard_stats */
} shard_families[] = {
	{"flowq_shard_rounds_total", "Dispatcher rounds that decided at least one outcome.",
	 offsetof(struct flowq_shard_stats, rounds)},
	{"flowq_shard_decided_total", "Outcomes decided by the shard's dispatcher rounds.",
	 offsetof(struct flowq_shard_stats, decided)},
	{"flowq_shard_doorbell_intakes_total",
	 "Flows taken in from the shard's doorbell: one per ring by a submit that "
	 "found its flow's inbox empty and not yet announced.",
	 offsetof(struct flowq_shard_stats, intakes)},
	{"flowq_shard_sleeps_total", "Times the shard's dispatcher went idle and had to be woken.",
	 offsetof(struct flowq_shard_stats, sleeps)},
	{"flowq_shard_coalesce_waits_total",
	 "Intake-coalescing waits the shard's dispatcher made (intake_coalesce_ns).",
	 offsetof(struct flowq_shard_stats, coalesce_waits)},
};

static int
put_shard_families(struct mw *w, struct flowq_engine *e)
{
	unsigned n = flowq_shard_count(e);

	for (size_t i = 0; i < sizeof(shard_families) / sizeof(shard_families[0]); i++) {
		mw_printf(w, "# HELP %s %s\n# TYPE %s counter\n", shard_families[i].name,
			  shard_families[i].help, shard_families[i].name);
		for (unsigned k = 0; k < n; k++) {
			struct flowq_shard_stats ss;
			uint64_t v;
			int rc = flowq_stats_shard(e, k, &ss);

			if (rc != 0)
				return rc;
			memcpy(&v, (const char *)&ss + shard_families[i].off, sizeof(v));
			mw_printf(w, "%s{shard=\"%u\"} %" PRIu64 "\n", shard_families[i].name, k,
				  v);
		}
	}
	return 0;
}

/* The engine's intake-coalescing controller (flowq_stats_coalesce()). */
static int
put_coalesce_families(struct mw *w, struct flowq_engine *e)
{
	struct flowq_coalesce_stats cs;
	int rc = flowq_stats_coalesce(e, &cs);

	if (rc != 0)
		return rc;
	mw_printf(
		w,
		"# HELP flowq_coalesce_wait_on 1 while the dispatchers wait after small "
		"rounds (intake_coalesce_ns: a probe with the wait, or a hold that chose "
		"it); 0 once an idle engine's period has overrun.\n"
		"# TYPE flowq_coalesce_wait_on gauge\n"
		"flowq_coalesce_wait_on %u\n",
		(unsigned)cs.on);
	mw_printf(w,
		  "# HELP flowq_coalesce_holds_total Holds the intake-coalescing "
		  "controller decided, by whether they keep the wait on.\n"
		  "# TYPE flowq_coalesce_holds_total counter\n"
		  "flowq_coalesce_holds_total{wait=\"on\"} %" PRIu64 "\n"
		  "flowq_coalesce_holds_total{wait=\"off\"} %" PRIu64 "\n",
		  cs.holds_on, cs.holds_off);
	mw_printf(
		w,
		"# HELP flowq_coalesce_dropped_periods_total Controller periods dropped "
		"because they overran (an idle engine); a dropped probe with the wait "
		"also counts as a hold without it.\n"
		"# TYPE flowq_coalesce_dropped_periods_total counter\n"
		"flowq_coalesce_dropped_periods_total %" PRIu64 "\n",
		cs.dropped);
	return 0;
}

static void
put_header(struct mw *w, const struct family *f)
{
	mw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
}

static void
put_requests(struct mw *w, const struct family *f, const struct scope *s,
	     const struct flowq_stats *st)
{
	char extra[96];

	/* FLOWQ_PENDING (0) is not an outcome (flowq/flowq.h). */
	for (int o = FLOWQ_PENDING + 1; o < FLOWQ_OUTCOME_COUNT; o++) {
		const char *oname = flowq_outcome_str((enum flowq_outcome)o);

		if (f->kind == FAM_REQUESTS_BY_OUTCOME) {
			snprintf(extra, sizeof(extra), "outcome=\"%s\"", oname);
			put_sample_u64(w, f->name, "", s, extra, st->outcomes[o]);
			continue;
		}
		for (int c = 0; c < FLOWQ_CAUSE_COUNT; c++) {
			if (!flowq_cause_valid_for((enum flowq_outcome)o,
						   (enum flowq_cause)c) &&
			    st->causes[o][c] == 0)
				continue;
			snprintf(extra, sizeof(extra), "outcome=\"%s\",cause=\"%s\"",
				 oname, flowq_cause_str((enum flowq_cause)c));
			put_sample_u64(w, f->name, "", s, extra, st->causes[o][c]);
		}
	}
}

static void
put_queue_time(struct mw *w, const struct family *f, const struct scope *s,
	       const struct flowq_hist *h)
{
	char extra[48], sec[32];
	uint64_t cum = 0;

	for (unsigned i = 0; i < FLOWQ_HIST_BUCKETS; i++) {
		cum += h->buckets[i];
		/* The last bucket is open-ended: it is the "+Inf" line. */
		if (f->kind != FAM_QUEUE_TIME || i == FLOWQ_HIST_BUCKETS - 1)
			continue;
		fmt_seconds(sec, sizeof(sec), (uint64_t)flowq_hist_bound(i));
		snprintf(extra, sizeof(extra), "le=\"%s\"", sec);
		put_sample_u64(w, f->name, "_bucket", s, extra, cum);
	}
	/* Flows keep no buckets (flowq.h, struct flowq_stats): their "+Inf"
	 * bucket and _count are the snapshot's count. */
	if (f->kind != FAM_QUEUE_TIME)
		cum = h->count;
	put_sample_u64(w, f->name, "_bucket", s, "le=\"+Inf\"", cum);
	fmt_seconds(sec, sizeof(sec), h->sum_ns);
	put_sample(w, f->name, "_sum", s, "", sec);
	put_sample_u64(w, f->name, "_count", s, "", cum);
}

/* Every sample of family @f for one scope. */
static void
put_family_samples(struct mw *w, const struct family *f, const struct scope *s,
		   const struct flowq_stats *st)
{
	switch (f->kind) {
	case FAM_QUEUED:
		put_sample_u64(w, f->name, "", s, "", st->queued);
		break;
	case FAM_QUEUED_BYTES:
		put_sample_u64(w, f->name, "", s, "", st->queued_bytes);
		break;
	case FAM_INFLIGHT:
		put_sample_u64(w, f->name, "", s, "", st->inflight);
		break;
	case FAM_INFLIGHT_BYTES:
		put_sample_u64(w, f->name, "", s, "", st->inflight_bytes);
		break;
	case FAM_REQUESTS:
	case FAM_REQUESTS_BY_OUTCOME:
		put_requests(w, f, s, st);
		break;
	case FAM_QUEUE_TIME:
	case FAM_QUEUE_TIME_SUM:
		put_queue_time(w, f, s, &st->queue_time);
		break;
	}
}

/* Context of the band and flow walks: one family per walk. */
struct walk {
	struct mw *w;
	const struct family *f;
};

static int
band_cb(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	struct walk *k = ctx;
	struct scope s = {.kind = SCOPE_BAND, .priority = priority};

	put_family_samples(k->w, k->f, &s, st);
	/* Nonzero stops the walk: no point in walking on after a failed write. */
	return k->w->err;
}

static int
flow_cb(const void *id, uint32_t id_len, int32_t priority, const struct flowq_stats *st,
	void *ctx)
{
	struct walk *k = ctx;
	struct scope s = {
		.kind = SCOPE_FLOW, .priority = priority, .id = id, .id_len = id_len};

	put_family_samples(k->w, k->f, &s, st);
	return k->w->err;
}

int
flowq_metrics_write(struct flowq_engine *e, FILE *out)
{
	struct mw w = {.out = out, .err = 0};
	struct scope engine_scope = {.kind = SCOPE_ENGINE};
	struct flowq_stats st;
	int rc;

	if (e == NULL || out == NULL)
		return -EFAULT;
	rc = flowq_stats_engine(e, &st);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < sizeof(engine_families) / sizeof(engine_families[0]);
	     i++) {
		put_header(&w, &engine_families[i]);
		put_family_samples(&w, &engine_families[i], &engine_scope, &st);
	}
	rc = put_shard_families(&w, e);
	if (rc == 0)
		rc = put_coalesce_families(&w, e);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < sizeof(band_families) / sizeof(band_families[0]) && !w.err;
	     i++) {
		struct walk k = {.w = &w, .f = &band_families[i]};

		put_header(&w, k.f);
		rc = flowq_stats_foreach_band(e, band_cb, &k);
		/* The walk returns what band_cb returned (our -EIO, then
		 * w.err is set) or its own -ENOMEM. */
		if (rc != 0 && w.err == 0)
			return rc;
	}
	for (size_t i = 0; i < sizeof(flow_families) / sizeof(flow_families[0]) && !w.err;
	     i++) {
		struct walk k = {.w = &w, .f = &flow_families[i]};

		put_header(&w, k.f);
		rc = flowq_stats_foreach_flow(e, flow_cb, &k);
		if (rc != 0 && w.err == 0)
			return rc;
	}
	if (w.err != 0)
		return w.err;
	/*
	 * A buffered stream reports a full disk or a closed pipe only when it
	 * writes its buffer: flush, so that "0" means the text left stdio.
	 * ferror() also catches a failure an earlier write hid from us.
	 */
	if (fflush(out) == EOF || ferror(out))
		return -EIO;
	return 0;
}
