/*
 * trace.c: arrivals from a CSV trace (sim.h, sim_trace_load).
 *
 * The file: a header row naming the columns, then one request per row
 * (RFC 4180 fields: a field may be quoted, "" is a quote inside quotes;
 * CRLF or LF line ends; blank lines are skipped). The spec names the
 * columns it uses; other columns are ignored. Used with the Azure LLM
 * inference trace 2023 (Patel et al., "Splitwise: Efficient generative LLM
 * inference using phase splitting", ISCA 2024; CC-BY 4.0), read where it
 * lies, never copied.
 *
 * Mapping of one row:
 *   time     the time column: "YYYY-MM-DD HH:MM:SS[.fraction]" (or a 'T'
 *            between date and time; UTC, no zone) or plain seconds
 *            ("12.5"); every row in the first row's format. Up to 9
 *            fraction digits are exact; more are truncated to the ns.
 *            rel = time - the first row's time (a row earlier than the
 *            first is an error: the file must start with its earliest
 *            row); rows with rel < trace.start_ns are skipped (start is
 *            trace time, before scaling); t_ns = (rel - start) /
 *            time_scale, rounded to the ns; rows with t_ns >= the spec's
 *            duration are dropped.
 *   bytes    cost column x bytes_per_unit, rounded (0 when there is no
 *            cost column: run.c then draws the flow's size).
 *   service  service_base + service column x service_per_unit, rounded
 *            (-1 when there is no service column: the backend's
 *            distribution).
 *   flow     one of the flows whose arrival process is "trace":
 *            weighted  a draw from the SIM_STREAM_TRACE stream, by share;
 *                      one draw per data row of the file (skipped and
 *                      dropped rows too), so a row's flow depends on the
 *                      seed and its position, not on start or duration;
 *            hash      a hash of the row's line number, by share (the same
 *                      for every seed);
 *            column    the assign column's value is the flow id.
 * Rows come out sorted by t_ns (the file need not be; ties keep no order
 * but are fully compared, so equal rows are identical and the result is
 * deterministic).
 *
 * Errors name the file and the 1-based line: "<file>:<line>: <what>".
 * Complexity: O(rows log rows) time (the sort; O(rows) for a sorted
 * file), O(kept rows + flows) memory.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getline, strdup under -std=c11 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* A TRACE flow: its global index and its cumulative share. */
struct tflow {
	uint32_t flow;
	double cum;
};

/* A flow id for assign: column (sorted, looked up with bsearch). */
struct fid {
	char *id;
	uint32_t flow;
	bool trace;
};

enum tfmt {
	TFMT_UNSET,
	TFMT_DATE,
	TFMT_SECONDS,
};

struct loader {
	const struct sim_spec *spec;
	const struct sim_trace_spec *ts;
	char *err;
	size_t errsz;
	FILE *f;
	unsigned long line;
	/* Fields of the current line: pointers into fbuf. */
	char *fbuf;
	size_t fcap;
	char **fields;
	size_t nfields, fields_cap;
	/* Columns. */
	size_t ncols;
	long c_time, c_cost, c_service, c_assign;
	/* Flows. */
	struct tflow *tf;
	size_t ntf;
	struct fid *ids;
	size_t nids;
	struct sim_rng rng;
	enum tfmt fmt;
	int64_t t0;
	bool have_t0;
	/* Output. */
	struct sim_trace_row *rows;
	size_t nrows, cap;
	bool sorted;
};

static int
fail(struct loader *l, int rc, const char *fmt, ...)
{
	if (l->err && l->errsz) {
		int n = snprintf(l->err, l->errsz, "%s:%lu: ", l->ts->path, l->line);
		if (n >= 0 && (size_t)n < l->errsz) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(l->err + n, l->errsz - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return rc;
}

/*
 * Split @p s (one line without its end) into fields. Quoted fields lose
 * their quotes; "" inside quotes is one quote. The fields are copied into
 * l->fbuf. @return 0, -EINVAL (an unterminated quote, text after a closing
 * quote), -ENOMEM.
 */
static int
split(struct loader *l, const char *s, size_t len)
{
	if (l->fcap < len + 1) {
		char *nb = realloc(l->fbuf, len + 1);
		if (!nb)
			return -ENOMEM;
		l->fbuf = nb;
		l->fcap = len + 1;
	}
	char *out = l->fbuf;
	size_t i = 0;
	l->nfields = 0;
	for (;;) {
		if (l->nfields == l->fields_cap) {
			size_t cap = l->fields_cap ? l->fields_cap * 2 : 16;
			char **nf = realloc(l->fields, cap * sizeof(*nf));
			if (!nf)
				return -ENOMEM;
			l->fields = nf;
			l->fields_cap = cap;
		}
		l->fields[l->nfields++] = out;
		if (i < len && s[i] == '"') {
			i++;
			for (;;) {
				if (i >= len)
					return fail(l, -EINVAL,
						    "unterminated quoted field %zu",
						    l->nfields);
				if (s[i] == '"') {
					if (i + 1 < len && s[i + 1] == '"') {
						*out++ = '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				*out++ = s[i++];
			}
			if (i < len && s[i] != ',')
				return fail(l, -EINVAL,
					    "text after the closing quote of field %zu",
					    l->nfields);
		} else {
			while (i < len && s[i] != ',')
				*out++ = s[i++];
		}
		*out++ = '\0';
		if (i >= len)
			return 0;
		i++; /* the comma */
	}
}

/* Read the next non-blank line into l->fields. @return 1, 0 at the end,
 * or a negative errno. */
static int
next_line(struct loader *l, char **buf, size_t *cap)
{
	for (;;) {
		ssize_t n = getline(buf, cap, l->f);
		if (n < 0) {
			if (ferror(l->f))
				return fail(l, -EIO, "cannot read: %s", strerror(errno));
			return 0;
		}
		l->line++;
		size_t len = (size_t)n;
		while (len && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		if (memchr(*buf, '\0', len))
			return fail(l, -EINVAL, "a NUL byte (not a text file?)");
		int rc = split(l, *buf, len);
		return rc < 0 ? rc : 1;
	}
}

static long
column(struct loader *l, const char *name, const char *what)
{
	for (size_t i = 0; i < l->nfields; i++)
		if (strcmp(l->fields[i], name) == 0)
			return (long)i;
	/* List the header in the message. */
	char cols[256];
	size_t off = 0;
	cols[0] = '\0';
	for (size_t i = 0; i < l->nfields && off < sizeof(cols); i++) {
		int n = snprintf(cols + off, sizeof(cols) - off, "%s\"%s\"",
				 i ? ", " : "", l->fields[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	return fail(l, -EINVAL, "no column \"%s\" (trace.%s); the header has %s", name,
		    what, cols);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Read exactly @p n digits at *p. */
static bool
digits(const char **p, int n, int64_t *r)
{
	int64_t v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*r = v;
	return true;
}

/* A fraction after the '.' at *p: up to 9 digits exact, more truncated.
 * At least one digit. */
static bool
fraction(const char **p, int64_t *r_ns)
{
	int64_t ns = 0;
	int n = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++, n++)
		if (n < 9)
			ns = ns * 10 + (**p - '0');
	if (n == 0)
		return false;
	for (int i = n < 9 ? n : 9; i < 9; i++)
		ns *= 10;
	*r_ns = ns;
	return true;
}

static bool
leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD HH:MM:SS[.f]" -> ns since the epoch. @return false if @p s
 * is not a date-time. */
static bool
parse_date(const char *s, int64_t *r_ns)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int64_t y, mo, d, h, mi, se, frac = 0;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d) || (*p != ' ' && *p != 'T'))
		return false;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
	    !digits(&p, 2, &se))
		return false;
	if (*p == '.') {
		p++;
		if (!fraction(&p, &frac))
			return false;
	}
	if (*p != '\0')
		return false;
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return false;
	int64_t days = days_from_civil(y, mo, d);
	*r_ns = ((days * 24 + h) * 60 + mi) * 60 * INT64_C(1000000000) +
		se * INT64_C(1000000000) + frac;
	return true;
}

/* Plain seconds: [-]digits[.digits] (or .digits) -> ns, exactly. */
static bool
parse_seconds(const char *s, int64_t *r_ns)
{
	const char *p = s;
	bool neg = false;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	int64_t whole = 0, frac = 0;
	int nd = 0;
	while (*p >= '0' && *p <= '9') {
		if (whole > (INT64_MAX / 1000000000 - 9) / 10)
			return false; /* beyond ~292 years */
		whole = whole * 10 + (*p++ - '0');
		nd++;
	}
	if (*p == '.') {
		p++;
		if (!fraction(&p, &frac)) {
			if (nd == 0)
				return false;
		}
	} else if (nd == 0) {
		return false;
	}
	if (*p != '\0')
		return false;
	int64_t v = whole * INT64_C(1000000000) + frac;
	*r_ns = neg ? -v : v;
	return true;
}

/* A non-negative finite number (the cost and service columns). */
static bool
parse_number(const char *s, double *r)
{
	if (*s == '\0')
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(v) || v < 0)
		return false;
	*r = v;
	return true;
}

/* The flow of weighted share position @p u in [0, 1). */
static uint32_t
by_share(const struct loader *l, double u)
{
	double x = u * l->tf[l->ntf - 1].cum;
	size_t lo = 0, hi = l->ntf - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (x < l->tf[mid].cum)
			hi = mid;
		else
			lo = mid + 1;
	}
	return l->tf[lo].flow;
}

static int
cmp_fid(const void *a, const void *b)
{
	return strcmp(((const struct fid *)a)->id, ((const struct fid *)b)->id);
}

static int
cmp_row(const void *a, const void *b)
{
	const struct sim_trace_row *x = a, *y = b;
	if (x->t_ns != y->t_ns)
		return x->t_ns < y->t_ns ? -1 : 1;
	if (x->flow != y->flow)
		return x->flow < y->flow ? -1 : 1;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? -1 : 1;
	return (x->service_ns > y->service_ns) - (x->service_ns < y->service_ns);
}

/* The TRACE flows and, for assign: column, every flow id. */
static int
load_flows(struct loader *l)
{
	const struct sim_spec *spec = l->spec;
	size_t n = sim_spec_nflows(spec);
	l->tf = calloc(n ? n : 1, sizeof(*l->tf));
	if (!l->tf)
		return -ENOMEM;
	bool column = l->ts->assign == SIM_ASSIGN_COLUMN;
	if (column) {
		l->ids = calloc(n ? n : 1, sizeof(*l->ids));
		if (!l->ids)
			return -ENOMEM;
	}
	char buf[FLOWQ_FLOW_ID_MAX + 1];
	double cum = 0;
	for (size_t k = 0; k < n; k++) {
		const struct sim_flow_spec *fs = sim_spec_flow(spec, k, buf, sizeof(buf));
		bool trace = fs->arrival.kind == SIM_ARRIVAL_TRACE;
		if (trace) {
			if (!column && !(fs->arrival.share > 0)) {
				snprintf(
					l->err, l->errsz,
					"%s:%u: flows: \"%s\": arrival.share must be > 0 "
					"(trace.assign is %s)",
					spec->source ? spec->source : "<spec>", fs->line,
					buf,
					l->ts->assign == SIM_ASSIGN_HASH ? "hash"
									 : "weighted");
				return -EINVAL;
			}
			cum += column ? 1 : fs->arrival.share;
			l->tf[l->ntf].flow = (uint32_t)k;
			l->tf[l->ntf].cum = cum;
			l->ntf++;
		}
		if (column) {
			l->ids[k].id = strdup(buf);
			if (!l->ids[k].id)
				return -ENOMEM;
			l->ids[k].flow = (uint32_t)k;
			l->ids[k].trace = trace;
			l->nids++;
		}
	}
	if (l->ntf == 0) {
		snprintf(
			l->err, l->errsz,
			"%s: trace: no flow has arrival process \"trace\" (nothing would "
			"replay %s)",
			spec->source ? spec->source : "<spec>", l->ts->path);
		return -EINVAL;
	}
	if (column)
		qsort(l->ids, l->nids, sizeof(*l->ids), cmp_fid);
	return 0;
}

static int
read_header(struct loader *l, char **buf, size_t *cap)
{
	int rc = next_line(l, buf, cap);
	if (rc == 0)
		return fail(l, -EINVAL,
			    "empty file (a header row naming the columns is needed)");
	if (rc < 0)
		return rc;
	l->ncols = l->nfields;
	l->c_cost = l->c_service = l->c_assign = -1;
	if (!l->ts->time_column)
		return fail(l, -EINVAL, "trace.time_column is not set");
	if ((l->c_time = column(l, l->ts->time_column, "time_column")) < 0)
		return (int)l->c_time;
	if (l->ts->cost_column &&
	    (l->c_cost = column(l, l->ts->cost_column, "cost_column")) < 0)
		return (int)l->c_cost;
	if (l->ts->service_column &&
	    (l->c_service = column(l, l->ts->service_column, "service_column")) < 0)
		return (int)l->c_service;
	if (l->ts->assign == SIM_ASSIGN_COLUMN) {
		if (!l->ts->assign_column)
			return fail(l, -EINVAL,
				    "trace.assign is column but trace.assign_column "
				    "is not set");
		if ((l->c_assign = column(l, l->ts->assign_column, "assign_column")) < 0)
			return (int)l->c_assign;
	}
	return 0;
}

static int
push_row(struct loader *l, const struct sim_trace_row *row)
{
	if (l->nrows == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct sim_trace_row *nr = realloc(l->rows, cap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		l->rows = nr;
		l->cap = cap;
	}
	if (l->nrows && cmp_row(&l->rows[l->nrows - 1], row) > 0)
		l->sorted = false;
	l->rows[l->nrows++] = *row;
	return 0;
}

/* Map the current line (a data row). */
static int
map_row(struct loader *l)
{
	const struct sim_trace_spec *ts = l->ts;
	if (l->nfields != l->ncols)
		return fail(l, -EINVAL, "%zu fields; the header has %zu", l->nfields,
			    l->ncols);
	/* The assignment draw comes first: one per data row, whatever
	 * happens to the row below. */
	uint32_t flow = 0;
	if (ts->assign == SIM_ASSIGN_WEIGHTED) {
		flow = by_share(l, sim_rng_unit(&l->rng));
	} else if (ts->assign == SIM_ASSIGN_HASH) {
		/* A stream seeded by the line alone (not the spec's seed):
		 * its first draw is a well-mixed hash of the line. */
		struct sim_rng h;
		sim_rng_seed(&h, l->line, SIM_STREAM_TRACE);
		flow = by_share(l, sim_rng_unit(&h));
	} else {
		const char *v = l->fields[l->c_assign];
		struct fid key = {.id = (char *)v};
		const struct fid *id =
			bsearch(&key, l->ids, l->nids, sizeof(*l->ids), cmp_fid);
		if (!id)
			return fail(l, -EINVAL, "%s \"%s\" names no flow of the spec",
				    ts->assign_column, v);
		if (!id->trace)
			return fail(l, -EINVAL,
				    "%s \"%s\" names a flow whose arrival process is not "
				    "\"trace\"",
				    ts->assign_column, v);
		flow = id->flow;
	}

	const char *tv = l->fields[l->c_time];
	int64_t t;
	enum tfmt fmt;
	if (parse_date(tv, &t))
		fmt = TFMT_DATE;
	else if (parse_seconds(tv, &t))
		fmt = TFMT_SECONDS;
	else
		return fail(l, -EINVAL,
			    "%s \"%s\" is neither \"YYYY-MM-DD HH:MM:SS[.fraction]\" nor "
			    "seconds",
			    ts->time_column, tv);
	if (l->fmt == TFMT_UNSET)
		l->fmt = fmt;
	else if (fmt != l->fmt)
		return fail(l, -EINVAL, "%s \"%s\" is not in the first row's format (%s)",
			    ts->time_column, tv,
			    l->fmt == TFMT_DATE ? "a date and time" : "seconds");
	if (!l->have_t0) {
		l->t0 = t;
		l->have_t0 = true;
	}
	if (t < l->t0)
		return fail(l, -EINVAL,
			    "%s \"%s\" is earlier than the first row's (times are taken "
			    "relative to the first row: put the earliest first)",
			    ts->time_column, tv);

	struct sim_trace_row row = {.flow = flow, .bytes = 0, .service_ns = -1};
	if (l->c_cost >= 0) {
		double v;
		const char *cv = l->fields[l->c_cost];
		if (!parse_number(cv, &v))
			return fail(l, -EINVAL, "%s \"%s\" is not a number >= 0",
				    ts->cost_column, cv);
		double b = round(v * ts->bytes_per_unit);
		if (!(b >= 0) || b > (double)FLOWQ_LIMIT_MAX)
			return fail(l, -EINVAL,
				    "%s \"%s\" x bytes_per_unit %g is out of range",
				    ts->cost_column, cv, ts->bytes_per_unit);
		row.bytes = (uint64_t)b;
	}
	if (l->c_service >= 0) {
		double v;
		const char *sv = l->fields[l->c_service];
		if (!parse_number(sv, &v))
			return fail(l, -EINVAL, "%s \"%s\" is not a number >= 0",
				    ts->service_column, sv);
		double s = round((double)ts->service_base_ns +
				 v * (double)ts->service_per_unit_ns);
		if (!(s >= 0) || s > 9.2e18)
			return fail(l, -EINVAL,
				    "%s \"%s\": the service time is out of range",
				    ts->service_column, sv);
		row.service_ns = (int64_t)s;
	}

	int64_t rel = t - l->t0;
	if (rel < ts->start_ns)
		return 0; /* skipped */
	double scaled = round((double)(rel - ts->start_ns) / ts->time_scale);
	if (scaled >= (double)l->spec->duration_ns)
		return 0; /* dropped: after the duration */
	row.t_ns = (int64_t)scaled;
	return push_row(l, &row);
}

static void
loader_fini(struct loader *l)
{
	if (l->f)
		fclose(l->f);
	free(l->fbuf);
	free(l->fields);
	free(l->tf);
	for (size_t i = 0; i < l->nids; i++)
		free(l->ids[i].id);
	free(l->ids);
	free(l->rows);
}

int
sim_trace_load(const struct sim_spec *spec, struct sim_trace *r_trace, char *err,
	       size_t errsz)
{
	static char dummy[1];
	r_trace->rows = NULL;
	r_trace->nrows = 0;
	struct loader l = {
		.spec = spec,
		.ts = &spec->trace,
		.err = err && errsz ? err : dummy,
		.errsz = err && errsz ? errsz : sizeof(dummy),
		.sorted = true,
	};
	l.err[0] = '\0';
	if (!spec->has_trace || !spec->trace.path) {
		snprintf(l.err, l.errsz, "%s: no trace: the spec has no trace.file",
			 spec->source ? spec->source : "<spec>");
		return -EINVAL;
	}
	if (!(spec->trace.time_scale > 0) || spec->trace.start_ns < 0 ||
	    !(spec->trace.bytes_per_unit >= 0) || spec->trace.service_per_unit_ns < 0 ||
	    spec->trace.service_base_ns < 0) {
		snprintf(l.err, l.errsz,
			 "%s: trace: time_scale must be > 0; start, bytes_per_unit, "
			 "service_per_unit and service_base >= 0",
			 spec->source ? spec->source : "<spec>");
		return -EINVAL;
	}
	sim_rng_seed(&l.rng, spec->seed, SIM_STREAM_TRACE);
	int rc;
	l.f = fopen(spec->trace.path, "r");
	if (!l.f) {
		rc = -errno;
		snprintf(l.err, l.errsz, "%s: cannot open the trace: %s",
			 spec->trace.path, strerror(errno));
		goto out;
	}
	rc = load_flows(&l);
	if (rc < 0)
		goto out;
	char *buf = NULL;
	size_t cap = 0;
	rc = read_header(&l, &buf, &cap);
	while (rc == 0) {
		rc = next_line(&l, &buf, &cap);
		if (rc <= 0)
			break;
		rc = map_row(&l);
	}
	free(buf);
	if (rc < 0)
		goto out;
	if (!l.sorted)
		qsort(l.rows, l.nrows, sizeof(*l.rows), cmp_row);
	r_trace->rows = l.rows;
	r_trace->nrows = l.nrows;
	l.rows = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && l.err[0] == '\0')
		snprintf(l.err, l.errsz, "%s: out of memory", spec->trace.path);
	loader_fini(&l);
	return rc;
}

void
sim_trace_free(struct sim_trace *trace)
{
	if (!trace)
		return;
	free(trace->rows);
	trace->rows = NULL;
	trace->nrows = 0;
}
