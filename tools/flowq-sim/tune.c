/*
 * tune.c: `flowq-sim tune` (sim.h): run a spec once per combination of
 * --vary values and rank the runs by an objective.
 *
 *   flowq-sim tune SPEC --vary KEY=V1,V2,... [--vary ...] --objective EXPR
 *                  [--virtual|--realtime] [--seed N] [--duration T]
 *                  [--set KEY=VALUE]... [--json F] [--csv F] [--html F]
 *                  [--progress auto|always|never]
 *
 * Each combination is the spec loaded with the --set overrides and one
 * value per --vary key (sim_spec_load's override syntax: a key the file
 * lacks is added), so a combination that the spec's validation refuses
 * fails before it runs and is listed with its error. Runs are sequential
 * and each is the same deterministic run `flowq-sim run` would make.
 *
 * Objective. "[min:|max:] EXPR" (min: when neither is given), EXPR an
 * arithmetic expression (+ - * /, unary minus, parentheses, numbers) over
 * metrics, each optionally narrowed to a band or a flow:
 *   p50 p90 p99 p999       queue time (submit -> dispatch) quantile, ms
 *   offered dispatched completed rejected expired cancelled displaced
 *   shed (= displaced) shutdown    outcome counts
 *   served                 dispatched / offered (0 when nothing offered)
 *   throughput goodput     dispatched / s and completed / s over the
 *                          duration
 *   jain                   a band's mean Jain's index over windows; with
 *                          no selector the lowest band mean
 *   inversions             priority inversions (sim_band_result)
 *   utilization            backend busy fraction (no selector)
 * Selectors: metric(band=PRIORITY) or metric(flow=ID); no selector is the
 * whole run. Examples:
 *   --objective 'min:p99(band=10)'
 *   --objective 'max:goodput - 10 * shed(band=10)'
 *   --objective 'max:jain(band=0)'
 * A metric that has no value in a run (a band that does not exist, a
 * quantile of no dispatch, a Jain's index of one flow) makes the
 * objective NaN: that run ranks last.
 *
 * Output: the ranked table on stdout (best first), then the best
 * combination as YAML to paste: the engine section through
 * flowq_config_write_yaml() (only the keys that differ from the engine's
 * defaults) and the other varied keys as overrides. Each row keeps its
 * run's key figures (struct sim_tune_row: counts, queue-time summary,
 * utilization, inversions, per band counts, queue time and Jain's index),
 * which report.c writes as JSON and CSV (sim_report_tune_json/_csv) and
 * html.c as a table and a heat-map.
 *
 * Cost: the runs, one after another, plus O(R log R) for a run's merged
 * queue-time samples (R dispatched requests; freed at once) and O(N log N)
 * for the ranking of N combinations; memory per row O(bands).
 */
#define _POSIX_C_SOURCE 200809L /* strdup, strndup */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "sim.h"

/* ---- the objective -------------------------------------------------------- */

enum metric {
	M_P50, M_P90, M_P99, M_P999, M_OFFERED, M_DISPATCHED, M_COMPLETED, M_REJECTED,
	M_EXPIRED, M_CANCELLED, M_DISPLACED, M_SHUTDOWN, M_SERVED, M_THROUGHPUT,
	M_GOODPUT, M_JAIN, M_INVERSIONS, M_UTILIZATION,
};

static const struct {
	const char *name;
	enum metric m;
} metric_names[] = {
	{"p50", M_P50},		  {"p90", M_P90},
	{"p99", M_P99},		  {"p999", M_P999},
	{"offered", M_OFFERED},	  {"dispatched", M_DISPATCHED},
	{"completed", M_COMPLETED}, {"rejected", M_REJECTED},
	{"expired", M_EXPIRED},	  {"cancelled", M_CANCELLED},
	{"displaced", M_DISPLACED}, {"shed", M_DISPLACED},
	{"shutdown", M_SHUTDOWN},	  {"served", M_SERVED},
	{"throughput", M_THROUGHPUT}, {"goodput", M_GOODPUT},
	{"jain", M_JAIN},		  {"inversions", M_INVERSIONS},
	{"utilization", M_UTILIZATION},
};

enum sel { SEL_ALL, SEL_BAND, SEL_FLOW };

enum node_kind { N_NUM, N_METRIC, N_NEG, N_ADD, N_SUB, N_MUL, N_DIV };

struct node {
	enum node_kind kind;
	double num;
	enum metric m;
	enum sel sel;
	int32_t band;
	char *flow;
	struct node *a, *b;
};

struct sim_objective {
	struct node *root;
	bool maximize;
};

struct parser {
	const char *s, *p;
	char *err;
	size_t errsz;
	int rc;
};

static void
perr(struct parser *ps, const char *fmt, ...)
{
	if (ps->rc)
		return;
	ps->rc = -EINVAL;
	int n = snprintf(ps->err, ps->errsz, "objective, column %d: ", (int)(ps->p - ps->s) + 1);
	if (n < 0 || (size_t)n >= ps->errsz)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errsz - (size_t)n, fmt, ap);
	va_end(ap);
}

static void
skip_ws(struct parser *ps)
{
	while (isspace((unsigned char)*ps->p))
		ps->p++;
}

static void
node_free(struct node *n)
{
	if (!n)
		return;
	node_free(n->a);
	node_free(n->b);
	free(n->flow);
	free(n);
}

static struct node *
node_new(struct parser *ps, enum node_kind k)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n && !ps->rc) {
		ps->rc = -ENOMEM;
		snprintf(ps->err, ps->errsz, "out of memory");
	}
	if (n)
		n->kind = k;
	return n;
}

static struct node *parse_sum(struct parser *ps, int depth);

/* Expressions nest at most this deep (a hostile --objective cannot
 * overflow the stack). */
#define MAX_DEPTH 64

static struct node *
parse_metric(struct parser *ps)
{
	const char *start = ps->p;
	while (isalnum((unsigned char)*ps->p) || *ps->p == '_')
		ps->p++;
	size_t len = (size_t)(ps->p - start);
	size_t i, nm = sizeof(metric_names) / sizeof(metric_names[0]);
	for (i = 0; i < nm; i++)
		if (strlen(metric_names[i].name) == len &&
		    memcmp(metric_names[i].name, start, len) == 0)
			break;
	if (i == nm) {
		ps->p = start;
		perr(ps, "unknown metric \"%.*s\" (p50 p90 p99 p999 offered dispatched "
			 "completed rejected expired cancelled displaced shed shutdown served "
			 "throughput goodput jain inversions utilization)",
		     (int)len, start);
		return NULL;
	}
	struct node *n = node_new(ps, N_METRIC);
	if (!n)
		return NULL;
	n->m = metric_names[i].m;
	skip_ws(ps);
	if (*ps->p != '(')
		return n;
	ps->p++;
	skip_ws(ps);
	if (strncmp(ps->p, "band", 4) == 0 || strncmp(ps->p, "flow", 4) == 0) {
		bool band = ps->p[0] == 'b';
		ps->p += 4;
		skip_ws(ps);
		if (*ps->p != '=') {
			perr(ps, "expected '=' after %s", band ? "band" : "flow");
			goto fail;
		}
		ps->p++;
		skip_ws(ps);
		if (band) {
			char *end;
			errno = 0;
			long v = strtol(ps->p, &end, 10);
			if (end == ps->p || errno || v < INT32_MIN || v > INT32_MAX) {
				perr(ps, "band= takes a priority (a 32-bit integer)");
				goto fail;
			}
			n->sel = SEL_BAND;
			n->band = (int32_t)v;
			ps->p = end;
		} else {
			const char *id = ps->p;
			while (*ps->p && *ps->p != ')')
				ps->p++;
			const char *e = ps->p;
			while (e > id && isspace((unsigned char)e[-1]))
				e--;
			if (e == id) {
				perr(ps, "flow= takes a flow id");
				goto fail;
			}
			n->sel = SEL_FLOW;
			n->flow = strndup(id, (size_t)(e - id));
			if (!n->flow) {
				ps->rc = -ENOMEM;
				snprintf(ps->err, ps->errsz, "out of memory");
				goto fail;
			}
		}
		skip_ws(ps);
	} else {
		perr(ps, "expected band=PRIORITY or flow=ID");
		goto fail;
	}
	if (*ps->p != ')') {
		perr(ps, "expected ')'");
		goto fail;
	}
	ps->p++;
	if (n->m == M_UTILIZATION) {
		perr(ps, "utilization has no band or flow selector");
		goto fail;
	}
	if (n->sel == SEL_FLOW && n->m == M_JAIN) {
		perr(ps, "jain is per band: use jain(band=P)");
		goto fail;
	}
	return n;
fail:
	node_free(n);
	return NULL;
}

static struct node *
parse_factor(struct parser *ps, int depth)
{
	skip_ws(ps);
	if (depth > MAX_DEPTH) {
		perr(ps, "nested deeper than %d", MAX_DEPTH);
		return NULL;
	}
	char c = *ps->p;
	if (c == '-') {
		ps->p++;
		struct node *n = node_new(ps, N_NEG);
		if (!n)
			return NULL;
		if (!(n->a = parse_factor(ps, depth + 1))) {
			node_free(n);
			return NULL;
		}
		return n;
	}
	if (c == '(') {
		ps->p++;
		struct node *n = parse_sum(ps, depth + 1);
		if (!n)
			return NULL;
		skip_ws(ps);
		if (*ps->p != ')') {
			perr(ps, "expected ')'");
			node_free(n);
			return NULL;
		}
		ps->p++;
		return n;
	}
	if (isdigit((unsigned char)c) || c == '.') {
		/* Numbers in the C grammar: [0-9]*.?[0-9]+(e[+-]?[0-9]+)?, read by
		 * hand so the process locale's decimal point does not matter. */
		const char *start = ps->p;
		double v = 0, scale = 1;
		bool digits = false, dot = false;
		for (;; ps->p++) {
			char d = *ps->p;
			if (isdigit((unsigned char)d)) {
				digits = true;
				if (dot) {
					scale /= 10;
					v += (d - '0') * scale;
				} else {
					v = v * 10 + (d - '0');
				}
			} else if (d == '.' && !dot) {
				dot = true;
			} else {
				break;
			}
		}
		if (!digits) {
			ps->p = start;
			perr(ps, "expected a number");
			return NULL;
		}
		if (*ps->p == 'e' || *ps->p == 'E') {
			const char *e = ps->p + 1;
			int sign = 1, ex = 0;
			if (*e == '+' || *e == '-')
				sign = *e++ == '-' ? -1 : 1;
			if (!isdigit((unsigned char)*e)) {
				perr(ps, "expected an exponent");
				return NULL;
			}
			while (isdigit((unsigned char)*e) && ex < 400)
				ex = ex * 10 + (*e++ - '0');
			while (isdigit((unsigned char)*e))
				e++;
			v *= pow(10, sign * ex);
			ps->p = e;
		}
		struct node *n = node_new(ps, N_NUM);
		if (n)
			n->num = v;
		return n;
	}
	if (isalpha((unsigned char)c))
		return parse_metric(ps);
	perr(ps, c ? "unexpected '%c'" : "unexpected end%.0s", c);
	return NULL;
}

static struct node *
parse_binary(struct parser *ps, int depth, bool sum)
{
	struct node *l = sum ? parse_binary(ps, depth, false) : parse_factor(ps, depth);
	while (l) {
		skip_ws(ps);
		char c = *ps->p;
		enum node_kind k;
		if (sum && (c == '+' || c == '-'))
			k = c == '+' ? N_ADD : N_SUB;
		else if (!sum && (c == '*' || c == '/'))
			k = c == '*' ? N_MUL : N_DIV;
		else
			break;
		ps->p++;
		struct node *n = node_new(ps, k);
		struct node *r = n ? (sum ? parse_binary(ps, depth, false)
					  : parse_factor(ps, depth))
				   : NULL;
		if (!r) {
			node_free(n);
			node_free(l);
			return NULL;
		}
		n->a = l;
		n->b = r;
		l = n;
	}
	return l;
}

static struct node *
parse_sum(struct parser *ps, int depth)
{
	return parse_binary(ps, depth, true);
}

int
sim_objective_parse(const char *text, struct sim_objective **r_obj, char *err, size_t errsz)
{
	struct parser ps = {.s = text, .p = text, .err = err, .errsz = errsz};
	*r_obj = NULL;
	bool maximize = false;
	skip_ws(&ps);
	if (strncmp(ps.p, "min:", 4) == 0 || strncmp(ps.p, "max:", 4) == 0) {
		maximize = ps.p[1] == 'a';
		ps.p += 4;
	}
	struct node *root = parse_sum(&ps, 0);
	skip_ws(&ps);
	if (root && *ps.p)
		perr(&ps, "unexpected '%c'", *ps.p);
	if (ps.rc) {
		node_free(root);
		return ps.rc;
	}
	struct sim_objective *o = malloc(sizeof(*o));
	if (!o) {
		node_free(root);
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	o->root = root;
	o->maximize = maximize;
	*r_obj = o;
	return 0;
}

bool
sim_objective_maximize(const struct sim_objective *o)
{
	return o->maximize;
}

void
sim_objective_free(struct sim_objective *o)
{
	if (!o)
		return;
	node_free(o->root);
	free(o);
}

static const struct sim_flow_result *
find_flow(const struct sim_result *r, const char *id)
{
	for (size_t i = 0; i < r->nflows; i++)
		if (strcmp(r->flows[i].id, id) == 0)
			return &r->flows[i];
	return NULL;
}

/* Every dispatched request's queue time (the bands' samples merged),
 * sorted, into @p all. @return 0 or -ENOMEM (@p all freed). */
static int
merged_samples(const struct sim_result *r, struct sim_samples *all)
{
	*all = (struct sim_samples){0};
	for (size_t b = 0; b < r->nbands; b++)
		for (size_t i = 0; i < r->bands[b].queue_ns.n; i++)
			if (sim_samples_add(all, r->bands[b].queue_ns.v[i]) != 0) {
				sim_samples_free(all);
				return -ENOMEM;
			}
	sim_samples_sort(all);
	return 0;
}

/* The quantile of every dispatched request of the run. */
static double
total_quantile(const struct sim_result *r, double q)
{
	struct sim_samples all;
	if (merged_samples(r, &all) < 0 || all.n == 0) {
		sim_samples_free(&all);
		return NAN;
	}
	double v = (double)sim_quantile(&all, q);
	sim_samples_free(&all);
	return v;
}

static double
metric_value(const struct node *n, const struct sim_result *r)
{
	const struct sim_counts *c = &r->total;
	const struct sim_samples *qs = NULL;
	const struct sim_band_result *band = NULL;
	if (n->sel == SEL_BAND) {
		size_t bi = sim__band_by_prio(r, n->band);
		if (bi == SIZE_MAX)
			return NAN;
		band = &r->bands[bi];
		c = &band->c;
		qs = &band->queue_ns;
	} else if (n->sel == SEL_FLOW) {
		const struct sim_flow_result *f = find_flow(r, n->flow);
		if (!f)
			return NAN;
		c = &f->c;
		qs = &f->queue_ns;
	}
	static const double qv[] = {0.5, 0.9, 0.99, 0.999};
	switch (n->m) {
	case M_P50:
	case M_P90:
	case M_P99:
	case M_P999: {
		double q = qv[n->m - M_P50];
		if (!qs)
			return total_quantile(r, q) / 1e6;
		return qs->n ? (double)sim_quantile(qs, q) / 1e6 : NAN;
	}
	case M_OFFERED: return (double)c->offered;
	case M_DISPATCHED: return (double)c->dispatched;
	case M_COMPLETED: return (double)c->completed;
	case M_REJECTED: return (double)(c->rejected_capacity + c->rejected_other);
	case M_EXPIRED: return (double)c->expired;
	case M_CANCELLED: return (double)c->cancelled;
	case M_DISPLACED: return (double)c->displaced;
	case M_SHUTDOWN: return (double)c->shutdown;
	case M_SERVED: return c->offered ? (double)c->dispatched / (double)c->offered : 0;
	case M_THROUGHPUT: return sim__per_s(c->dispatched, r->duration_ns);
	case M_GOODPUT: return sim__per_s(c->completed, r->duration_ns);
	case M_JAIN:
		if (band)
			return band->jain_mean;
		{
			double lo = NAN;
			for (size_t b = 0; b < r->nbands; b++) {
				double j = r->bands[b].jain_mean;
				if (!isnan(j) && (isnan(lo) || j < lo))
					lo = j;
			}
			return lo;
		}
	case M_INVERSIONS:
		if (band)
			return (double)band->inversions;
		if (n->sel == SEL_FLOW)
			return NAN;
		return (double)r->priority_inversions;
	case M_UTILIZATION: return r->backend_utilization;
	}
	return NAN;
}

static double
eval(const struct node *n, const struct sim_result *r)
{
	switch (n->kind) {
	case N_NUM: return n->num;
	case N_METRIC: return metric_value(n, r);
	case N_NEG: return -eval(n->a, r);
	case N_ADD: return eval(n->a, r) + eval(n->b, r);
	case N_SUB: return eval(n->a, r) - eval(n->b, r);
	case N_MUL: return eval(n->a, r) * eval(n->b, r);
	case N_DIV: return eval(n->a, r) / eval(n->b, r);
	}
	return NAN;
}

double
sim_objective_eval(const struct sim_objective *o, const struct sim_result *r)
{
	double v = eval(o->root, r);
	return isfinite(v) ? v : NAN;
}

/* ---- --vary --------------------------------------------------------------- */

int
sim_vary_parse(const char *arg, struct sim_vary *r, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg || !eq[1]) {
		snprintf(err, errsz, "--vary %s: expected KEY=V1,V2,...", arg);
		return -EINVAL;
	}
	if (!(r->key = strndup(arg, (size_t)(eq - arg))))
		goto nomem;
	/* Split at commas outside brackets, braces and quotes, so that a value
	 * may be a YAML flow collection ("{dist: exp, mean: 1s}"). */
	const char *p = eq + 1, *start = p;
	int nest = 0;
	char quote = 0;
	for (;; p++) {
		char c = *p;
		if (quote) {
			if (c == quote)
				quote = 0;
			else if (c == '\0')
				break;
			continue;
		}
		if (c == '"' || c == '\'')
			quote = c;
		else if (c == '[' || c == '{')
			nest++;
		else if ((c == ']' || c == '}') && nest > 0)
			nest--;
		if ((c == ',' && nest == 0) || c == '\0') {
			if (p == start) {
				snprintf(err, errsz, "--vary %s: an empty value", arg);
				sim_vary_free(r);
				return -EINVAL;
			}
			char **nv = realloc(r->values, (r->nvalues + 1) * sizeof(*nv));
			if (!nv)
				goto nomem;
			r->values = nv;
			if (!(r->values[r->nvalues] = strndup(start, (size_t)(p - start))))
				goto nomem;
			r->nvalues++;
			start = p + 1;
		}
		if (c == '\0')
			break;
	}
	if (quote || nest) {
		snprintf(err, errsz, "--vary %s: unbalanced %s", arg, quote ? "quote" : "bracket");
		sim_vary_free(r);
		return -EINVAL;
	}
	return 0;
nomem:
	snprintf(err, errsz, "out of memory");
	sim_vary_free(r);
	return -ENOMEM;
}

void
sim_vary_free(struct sim_vary *v)
{
	for (size_t i = 0; i < v->nvalues; i++)
		free(v->values[i]);
	free(v->values);
	free(v->key);
	memset(v, 0, sizeof(*v));
}

/* ---- the runs ------------------------------------------------------------- */

/* The overrides of combination @p idx (mixed radix over the vary lists,
 * the last key fastest): the base ones, then "key=value" per key. */
static char **
combo_overrides(const struct sim_tune_opts *o, size_t idx, size_t *r_n, size_t *r_pick)
{
	/* The last override drops the spec's `compare:` variants: a tune run
	 * is one run per combination, and a variant that a --vary value made
	 * invalid must not fail the combination. */
	size_t n = o->noverrides + o->nvary + 1;
	char **ov = calloc(n, sizeof(*ov));
	if (!ov)
		return NULL;
	if (!(ov[n - 1] = strdup("compare=[]")))
		goto fail;
	for (size_t i = 0; i < o->noverrides; i++)
		if (!(ov[i] = strdup(o->overrides[i])))
			goto fail;
	for (size_t k = o->nvary; k-- > 0;) {
		const struct sim_vary *v = &o->vary[k];
		size_t pick = idx % v->nvalues;
		idx /= v->nvalues;
		r_pick[k] = pick;
		size_t len = strlen(v->key) + strlen(v->values[pick]) + 2;
		char *s = malloc(len);
		if (!s)
			goto fail;
		snprintf(s, len, "%s=%s", v->key, v->values[pick]);
		ov[o->noverrides + k] = s;
	}
	*r_n = n;
	return ov;
fail:
	for (size_t i = 0; i < n; i++)
		free(ov[i]);
	free(ov);
	return NULL;
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static bool tune_maximize; /* for the qsort comparison (single-threaded) */

static int
cmp_rows(const void *pa, const void *pb)
{
	const struct sim_tune_row *a = pa, *b = pb;
	bool na = isnan(a->objective), nb = isnan(b->objective);
	if (na != nb)
		return na ? 1 : -1;
	if (!na && a->objective != b->objective) {
		bool a_better = tune_maximize ? a->objective > b->objective
					      : a->objective < b->objective;
		return a_better ? -1 : 1;
	}
	return (a->order > b->order) - (a->order < b->order);
}

/* Keep @p res's key figures in @p row. @return 0 or -ENOMEM. */
static int
row_figures(struct sim_tune_row *row, const struct sim_result *res)
{
	row->ran = true;
	row->conserved = res->conserved;
	row->total = res->total;
	row->duration_ns = res->duration_ns;
	row->utilization = res->backend_utilization;
	row->inversions = res->priority_inversions;
	struct sim_samples all;
	if (merged_samples(res, &all) < 0)
		return -ENOMEM;
	sim__qsum(&all, &row->queue);
	sim_samples_free(&all);
	if (res->nbands && !(row->bands = calloc(res->nbands, sizeof(*row->bands))))
		return -ENOMEM;
	row->nbands = res->nbands;
	for (size_t b = 0; b < res->nbands; b++) {
		const struct sim_band_result *src = &res->bands[b];
		struct sim_tune_band *dst = &row->bands[b];
		dst->priority = src->priority;
		dst->c = src->c;
		sim__qsum(&src->queue_ns, &dst->queue);
		dst->jain_mean = src->jain_mean;
		dst->inversions = src->inversions;
	}
	return 0;
}

int
sim_tune(const struct sim_tune_opts *o, struct sim_tune_result *r, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	size_t ncombo = 1;
	for (size_t k = 0; k < o->nvary; k++) {
		if (o->vary[k].nvalues == 0 || ncombo > SIM_TUNE_MAX_RUNS / o->vary[k].nvalues) {
			snprintf(err, errsz, "--vary: more than %u combinations",
				 SIM_TUNE_MAX_RUNS);
			return -E2BIG;
		}
		ncombo *= o->vary[k].nvalues;
	}
	r->nkeys = o->nvary;
	r->maximize = sim_objective_maximize(o->objective);
	if (!(r->keys = calloc(o->nvary ? o->nvary : 1, sizeof(*r->keys))) ||
	    !(r->objective = strdup(o->objective_text)) ||
	    !(r->rows = calloc(ncombo, sizeof(*r->rows))))
		goto nomem;
	for (size_t k = 0; k < o->nvary; k++)
		if (!(r->keys[k] = strdup(o->vary[k].key)))
			goto nomem;
	size_t pick[SIM_TUNE_MAX_KEYS];
	if (o->nvary > SIM_TUNE_MAX_KEYS) {
		snprintf(err, errsz, "--vary: at most %u keys", SIM_TUNE_MAX_KEYS);
		sim_tune_result_free(r);
		return -E2BIG;
	}
	for (size_t idx = 0; idx < ncombo; idx++) {
		struct sim_tune_row *row = &r->rows[idx];
		size_t nov;
		char **ov = combo_overrides(o, idx, &nov, pick);
		if (!ov)
			goto nomem;
		r->nrows++;
		row->order = idx;
		row->objective = NAN;
		row->utilization = NAN;
		row->queue.mean = NAN;
		row->values = calloc(o->nvary ? o->nvary : 1, sizeof(*row->values));
		if (!row->values) {
			strv_free(ov, nov);
			goto nomem;
		}
		for (size_t k = 0; k < o->nvary; k++)
			if (!(row->values[k] = strdup(o->vary[k].values[pick[k]]))) {
				strv_free(ov, nov);
				goto nomem;
			}
		const char *const *values = (const char *const *)row->values;
		if (o->on_run)
			o->on_run(o->on_run_ctx, idx, ncombo, values, NULL);
		char msg[512] = "";
		struct sim_spec spec;
		int rc = sim_spec_load(&spec, o->spec_path, (const char *const *)ov, nov, msg,
				       sizeof(msg));
		strv_free(ov, nov);
		bool oom = false; /* ours, not the run's: fails the tune */
		if (rc == 0 && spec.name && !r->spec_name && !(r->spec_name = strdup(spec.name)))
			oom = true;
		if (rc == 0 && spec.has_trace && spec.trace.path && !r->trace_path &&
		    !(r->trace_path = strdup(spec.trace.path)))
			oom = true;
		if (rc == 0 && !oom) {
			struct sim_run_opts ro = {
				.mode = o->run ? o->run->mode : spec.mode,
				.progress = o->progress,
				.progress_ctx = o->progress_ctx,
				.progress_every_ns = o->progress_every_ns,
			};
			struct sim_result res;
			if (sim_run(&spec, &ro, &res, msg, sizeof(msg)) == 0) {
				oom = row_figures(row, &res) < 0;
				if (!res.conserved)
					snprintf(msg, sizeof(msg), "conservation failed: %s",
						 res.conservation_error);
				else if (!oom)
					row->objective = sim_objective_eval(o->objective, &res);
				sim_result_free(&res);
			}
		}
		if (rc == 0)
			sim_spec_free(&spec);
		if (oom || (msg[0] && !(row->error = strdup(msg))))
			goto nomem;
		if (o->on_run)
			o->on_run(o->on_run_ctx, idx, ncombo, values, row);
		if (o->log) {
			fprintf(o->log, "tune: run %zu/%zu:", idx + 1, ncombo);
			for (size_t k = 0; k < o->nvary; k++)
				fprintf(o->log, " %s=%s", r->keys[k], row->values[k]);
			if (row->error)
				fprintf(o->log, ": %s\n", row->error);
			else {
				char num[SIM_FMT_MAX];
				fprintf(o->log, ": objective %s\n",
					(sim__fmt_num(num, row->objective, 6), num));
			}
		}
	}
	tune_maximize = r->maximize;
	qsort(r->rows, r->nrows, sizeof(*r->rows), cmp_rows);
	return 0;
nomem:
	snprintf(err, errsz, "out of memory");
	sim_tune_result_free(r);
	return -ENOMEM;
}

void
sim_tune_result_free(struct sim_tune_result *r)
{
	for (size_t i = 0; r->rows && i < r->nrows; i++) {
		strv_free(r->rows[i].values, r->nkeys);
		free(r->rows[i].error);
		free(r->rows[i].bands);
	}
	free(r->rows);
	strv_free(r->keys, r->nkeys);
	free(r->objective);
	free(r->spec_name);
	free(r->trace_path);
	memset(r, 0, sizeof(*r));
}

/* ---- output --------------------------------------------------------------- */

void
sim_tune_print(FILE *out, const struct sim_tune_result *r)
{
	fprintf(out, "Objective: %s (%s)\n\n", r->objective,
		r->maximize ? "higher is better" : "lower is better");
	size_t w[SIM_TUNE_MAX_KEYS];
	fprintf(out, "%4s", "rank");
	for (size_t k = 0; k < r->nkeys; k++) {
		w[k] = strlen(r->keys[k]);
		for (size_t i = 0; i < r->nrows; i++) {
			size_t l = strlen(r->rows[i].values[k]);
			if (l > w[k])
				w[k] = l;
		}
		fprintf(out, "  %-*s", (int)w[k], r->keys[k]);
	}
	fprintf(out, "  %14s  %10s  %10s  %10s\n", "objective", "offered", "dispatched", "shed");
	for (size_t i = 0; i < r->nrows; i++) {
		const struct sim_tune_row *row = &r->rows[i];
		fprintf(out, "%4zu", i + 1);
		for (size_t k = 0; k < r->nkeys; k++)
			fprintf(out, "  %-*s", (int)w[k], row->values[k]);
		if (row->error) {
			fprintf(out, "  failed: %s\n", row->error);
			continue;
		}
		char num[SIM_FMT_MAX];
		fprintf(out, "  %14s",
			isnan(row->objective) ? "n/a" : (sim__fmt_num(num, row->objective, 6), num));
		fprintf(out, "  %10llu  %10llu  %10llu\n", (unsigned long long)row->total.offered,
			(unsigned long long)row->total.dispatched,
			(unsigned long long)row->total.displaced);
	}
}

int
sim_tune_print_best(FILE *out, const struct sim_tune_opts *o, const struct sim_tune_result *r,
		    char *err, size_t errsz)
{
	if (r->nrows == 0 || isnan(r->rows[0].objective)) {
		fprintf(out, "\nNo combination produced a value of the objective.\n");
		return 0;
	}
	const struct sim_tune_row *best = &r->rows[0];
	size_t n = o->noverrides + r->nkeys + 1;
	char **ov = calloc(n, sizeof(*ov));
	if (!ov)
		goto nomem;
	if (!(ov[n - 1] = strdup("compare=[]")))
		goto nomem_ov;
	for (size_t i = 0; i < o->noverrides; i++)
		if (!(ov[i] = strdup(o->overrides[i])))
			goto nomem_ov;
	for (size_t k = 0; k < r->nkeys; k++) {
		size_t len = strlen(r->keys[k]) + strlen(best->values[k]) + 2;
		if (!(ov[o->noverrides + k] = malloc(len)))
			goto nomem_ov;
		snprintf(ov[o->noverrides + k], len, "%s=%s", r->keys[k], best->values[k]);
	}
	struct sim_spec spec;
	int rc = sim_spec_load(&spec, o->spec_path, (const char *const *)ov, n, err, errsz);
	if (rc == 0) {
		char num[SIM_FMT_MAX];
		fprintf(out, "\nBest (objective %s):", (sim__fmt_num(num, best->objective, 6), num));
		for (size_t k = 0; k < r->nkeys; k++)
			fprintf(out, " %s=%s", r->keys[k], best->values[k]);
		fprintf(out, "\n\n# The engine section of the best combination (keys that "
			     "differ from flowq_config_init()):\nengine:\n");
		rc = flowq_config_write_yaml(out, &spec.engine.config, 2, true);
		bool other = false;
		for (size_t k = 0; k < r->nkeys; k++)
			if (strncmp(r->keys[k], "engine.", 7) != 0) {
				if (!other)
					fprintf(out, "# Workload keys varied (set them in the "
						     "spec):\n");
				other = true;
				fprintf(out, "#   %s: %s\n", r->keys[k], best->values[k]);
			}
		sim_spec_free(&spec);
	}
	strv_free(ov, n);
	return rc;
nomem_ov:
	strv_free(ov, n);
nomem:
	snprintf(err, errsz, "out of memory");
	return -ENOMEM;
}
