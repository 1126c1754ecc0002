/*
 * html.c: the simulator's HTML report (sim.h: sim_report_html,
 * sim_report_html_compare): one self-contained HTML5 file, charts drawn as
 * inline SVG by the code below. No scripts, no external resources (no
 * fonts, images, style sheets or links out): the file can be mailed,
 * archived and opened offline years later.
 *
 * What is on the page, top to bottom: the title and the spec in words
 * (engine, backend, arrivals, flow classes); the conservation verdict; the
 * outcome and queue-time tables (report.c's, as HTML); the charts:
 *   - queue-time CDF per band, log-x (id chart-cdf);
 *   - queue depth over time per band (chart-depth);
 *   - Jain's index over time per band (chart-jain);
 *   - service share per flow over time, one stacked-area chart per band
 *     (chart-share-b<band index>): the busiest flows by dispatched bytes and
 *     an "others" layer;
 *   - with a tune result: the ranked table and a heat-map of the objective
 *     over the first two --vary keys, best over the other keys
 *     (chart-heatmap), with its color scale.
 * The comparison page overlays the variants instead: chart-cmp-cdf-b<k>,
 * chart-cmp-depth-b<k>, chart-cmp-jain-b<k> for the k-th band priority of
 * the union of the variants' bands, then each variant's tables and share
 * charts (chart-cmp-share-v<variant>-b<band index>), the first open.
 *
 * Markup is XHTML-compatible (every element closed, void elements written
 * <x/>, attributes double-quoted) so that a plain tag-balance check can
 * verify it; all user text (spec name, description, flow ids, variant
 * names, tune keys and values) goes through sim__html_str.
 *
 * Size: every series is cut to at most HTML_MAX_POINTS points (windows are
 * bucketed: the depth line shows each bucket's largest value, Jain's index
 * the mean of its windows that are not NaN, shares the bucket's bytes;
 * the CDF, drawn as steps, is sampled at evenly spaced ranks) and
 * coordinates carry one decimal, so a chart stays a few tens of KB
 * whatever the run's length.
 *
 * Cost: O(B x F + F x W) for the share charts (each band scans the flows,
 * each flow's windows are read once), O(W) per depth or Jain line, O(P)
 * per CDF line; the heat-map sorts the tune rows' distinct values, the
 * only allocation here (a failure prints a note instead of the chart).
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define HTML_MAX_POINTS 240
#define HTML_SHARE_TOP  7  /* flows drawn in a share chart; the rest: others */
#define HTML_LEGEND_MAX 13 /* legend entries beside a chart */

/* Tableau 10, a categorical palette; past its ten colors lines are also
 * dashed (dash()). */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
				      "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
				      "#9c755f", "#bab0ac"};
#define NPALETTE   (sizeof(palette) / sizeof(palette[0]))
#define OTHERS_COL "#d4d4d4"

static const char *
color(size_t i)
{
	return palette[i % NPALETTE];
}

/* Past the palette, lines are dashed as well so they stay apart. */
static const char *
dash(size_t i)
{
	static const char *const d[] = {"", " stroke-dasharray=\"6 3\"",
					" stroke-dasharray=\"2 2\"",
					" stroke-dasharray=\"8 3 2 3\""};
	return d[(i / NPALETTE) % 4];
}

/* ------------------------------------------------------------------------ */
/* Small writers                                                            */
/* ------------------------------------------------------------------------ */

/* A coordinate: one decimal, C locale. */
static void
put_xy(FILE *out, double x, double y)
{
	char a[SIM_FMT_MAX], b[SIM_FMT_MAX];
	sim__fmt_fixed(a, x, 1);
	sim__fmt_fixed(b, y, 1);
	fprintf(out, "%s,%s", a, b);
}

static void
put_fx(FILE *out, double v)
{
	char a[SIM_FMT_MAX];
	sim__fmt_fixed(a, v, 1);
	fputs(a, out);
}

static void
put_num(FILE *out, double v, int sig)
{
	char a[SIM_FMT_MAX];
	sim__fmt_num(a, v, sig);
	fputs(a, out);
}

static void
put_dur(FILE *out, int64_t ns)
{
	char a[SIM_FMT_MAX];
	sim__fmt_dur(a, ns);
	fputs(a, out);
}

/* A number for an axis or a legend: 3-4 significant digits, k/M/G for
 * large ones ("12k", "1.5M"). */
static void
fmt_compact(char buf[SIM_FMT_MAX], double v)
{
	static const struct {
		double div;
		const char *suffix;
	} s[] = {{1e9, "G"}, {1e6, "M"}, {1e4, "k"}};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (fabs(v) >= s[i].div) {
			double d = i == 2 ? 1e3 : s[i].div;
			size_t n = sim__fmt_num(buf, v / d, 3);
			strcpy(buf + n, s[i].suffix);
			return;
		}
	sim__fmt_num(buf, v, 4);
}

/* An SVG <text>: x, y, extra attributes (literal markup), then the
 * escaped text, cut at @p max characters (0: whole). */
static void
svg_text_cut(FILE *out, double x, double y, const char *attrs, const char *text,
	     size_t max)
{
	fputs("<text x=\"", out);
	put_fx(out, x);
	fputs("\" y=\"", out);
	put_fx(out, y);
	fprintf(out, "\"%s%s>", *attrs ? " " : "", attrs);
	sim__html_str(out, text, max);
	fputs("</text>\n", out);
}

static void
svg_text(FILE *out, double x, double y, const char *attrs, const char *text)
{
	svg_text_cut(out, x, y, attrs, text, 0);
}

/* An SVG <rect> with extra attributes (literal markup). */
static void
svg_rect(FILE *out, double x, double y, double w, double h, const char *attrs)
{
	fputs("<rect x=\"", out);
	put_fx(out, x);
	fputs("\" y=\"", out);
	put_fx(out, y);
	fputs("\" width=\"", out);
	put_fx(out, w);
	fputs("\" height=\"", out);
	put_fx(out, h);
	fprintf(out, "\" %s/>\n", attrs);
}

/* ------------------------------------------------------------------------ */
/* Chart frame: axes, ticks, grid, titles, legend                           */
/* ------------------------------------------------------------------------ */

enum ax_kind {
	AX_NUM, /* plain numbers (compact) */
	AX_DUR, /* ns, labelled in human units */
	AX_PCT, /* fractions 0..1, labelled as percent */
};

struct axis {
	double lo, hi;
	bool log; /* lo, hi > 0, powers of ten */
	enum ax_kind kind;
};

/* Layout of every line chart: a 760x330 canvas, the plot on the left and
 * the legend in a column on the right. */
#define CH_W    760.0
#define CH_H    330.0
#define CH_L    70.0
#define CH_T    40.0
#define CH_PW   490.0
#define CH_PH   230.0
#define CH_LEGX (CH_L + CH_PW + 22)

struct chart {
	FILE *out;
	double l, t, pw, ph;
	struct axis x, y;
	size_t nlegend;
	/* The open polyline (series_pt), if any, and its points. */
	bool open;
	size_t npts;
	double lastx, lasty;
	const char *col, *dash;
};

static double
ax_frac(const struct axis *a, double v)
{
	double f;
	if (a->log) {
		if (!(v > a->lo))
			v = a->lo;
		f = (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
	} else {
		f = (v - a->lo) / (a->hi - a->lo);
	}
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

static double
px(const struct chart *c, double v)
{
	return c->l + ax_frac(&c->x, v) * c->pw;
}

static double
py(const struct chart *c, double v)
{
	return c->t + c->ph - ax_frac(&c->y, v) * c->ph;
}

/* A "nice" step (1, 2, 2.5 or 5 x 10^k) for about @p n intervals over
 * span. */
static double
nice_step(double span, int n)
{
	double raw = span / n;
	if (!(raw > 0))
		return 1;
	double mag = pow(10, floor(log10(raw)));
	double f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

/* A linear axis from 0 to a nice ceiling of @p max. */
static struct axis
axis_upto(double max, enum ax_kind kind)
{
	if (!(max > 0))
		max = 1;
	double step = nice_step(max, 5);
	return (struct axis){0, ceil(max / step - 1e-9) * step, false, kind};
}

static void
tick_label(char buf[SIM_FMT_MAX], const struct axis *a, double v)
{
	switch (a->kind) {
	case AX_DUR:
		sim__fmt_dur(buf, llround(v));
		break;
	case AX_PCT: {
		size_t n = sim__fmt_num(buf, v * 100, 3);
		strcpy(buf + n, "%");
		break;
	}
	default:
		fmt_compact(buf, v);
	}
}

/* Tick values of @p a (at most 12). */
static size_t
ticks(const struct axis *a, double *r_t)
{
	size_t n = 0;
	if (a->log) {
		for (double v = a->lo; v <= a->hi * 1.0001 && n < 12; v *= 10)
			r_t[n++] = v;
		return n;
	}
	double step = nice_step(a->hi - a->lo, 5);
	for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-6 && n < 12;
	     v += step)
		r_t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
	return n;
}

/* Opens a figure and its <svg>, draws the frame, grid, ticks and titles. */
static void
chart_begin(struct chart *c, FILE *out, const char *id, const char *title,
	    const char *xlabel, const char *ylabel)
{
	c->out = out;
	c->l = CH_L;
	c->t = CH_T;
	c->pw = CH_PW;
	c->ph = CH_PH;
	c->nlegend = 0;
	c->open = false;
	fprintf(out,
		"<figure>\n<svg id=\"%s\" class=\"chart\" "
		"viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
		"aria-labelledby=\"%s-t\">\n<title id=\"%s-t\">",
		id, (int)CH_W, (int)CH_H, (int)CH_W, (int)CH_H, id, id);
	sim__html_str(out, title, 0);
	fputs("</title>\n", out);
	svg_text(out, c->l, 20, "class=\"ct\"", title);
	svg_rect(out, c->l, c->t, c->pw, c->ph, "class=\"pa\"");

	double t[12];
	char lab[SIM_FMT_MAX];
	size_t n = ticks(&c->x, t);
	for (size_t i = 0; i < n; i++) {
		double x = px(c, t[i]);
		fputs("<path class=\"gr\" d=\"M", out);
		put_xy(out, x, c->t);
		fputs("V", out);
		put_fx(out, c->t + c->ph + 4);
		fputs("\"/>\n", out);
		tick_label(lab, &c->x, t[i]);
		svg_text(out, x, c->t + c->ph + 16, "text-anchor=\"middle\"", lab);
	}
	n = ticks(&c->y, t);
	for (size_t i = 0; i < n; i++) {
		double y = py(c, t[i]);
		fputs("<path class=\"gr\" d=\"M", out);
		put_xy(out, c->l - 4, y);
		fputs("H", out);
		put_fx(out, c->l + c->pw);
		fputs("\"/>\n", out);
		tick_label(lab, &c->y, t[i]);
		svg_text(out, c->l - 7, y + 4, "text-anchor=\"end\"", lab);
	}
	svg_text(out, c->l + c->pw / 2, c->t + c->ph + 36,
		 "class=\"al\" text-anchor=\"middle\"", xlabel);
	fprintf(out,
		"<text class=\"al\" text-anchor=\"middle\" transform=\"translate(16,");
	put_fx(out, c->t + c->ph / 2);
	fputs(") rotate(-90)\">", out);
	sim__html_str(out, ylabel, 0);
	fputs("</text>\n", out);
}

/* A legend entry: a swatch (line or block) and the escaped label, cut at
 * 22 characters, then @p suffix (not user data). Past HTML_LEGEND_MAX
 * entries, one "+ k more" line is drawn by chart_end. */
static void
legend(struct chart *c, size_t ci, bool block, const char *col, const char *label,
       const char *suffix)
{
	size_t i = c->nlegend++;
	if (i >= HTML_LEGEND_MAX)
		return;
	FILE *out = c->out;
	double y = c->t + 6 + 17.0 * (double)i;
	if (block) {
		char fill[32];
		snprintf(fill, sizeof(fill), "fill=\"%s\"", col);
		svg_rect(out, CH_LEGX, y - 5, 14, 10, fill);
	} else {
		fputs("<path d=\"M", out);
		put_xy(out, CH_LEGX, y);
		fprintf(out, "h16\" stroke=\"%s\" stroke-width=\"2.5\"%s/>\n", col,
			dash(ci));
	}
	fputs("<text x=\"", out);
	put_fx(out, CH_LEGX + 22);
	fputs("\" y=\"", out);
	put_fx(out, y + 4);
	fputs("\">", out);
	sim__html_str(out, label, 22);
	if (suffix)
		fputs(suffix, out); /* literal text from this file */
	fputs("</text>\n", out);
}

static void
chart_end(struct chart *c, const char *caption)
{
	if (c->nlegend > HTML_LEGEND_MAX) {
		char more[64];
		snprintf(more, sizeof(more), "+ %zu more", c->nlegend - HTML_LEGEND_MAX);
		svg_text(c->out, CH_LEGX + 22, c->t + 10 + 17.0 * HTML_LEGEND_MAX, "",
			 more);
	}
	fputs("</svg>\n", c->out);
	if (caption) {
		fputs("<figcaption>", c->out);
		fputs(caption, c->out); /* literal markup from this file */
		fputs("</figcaption>\n", c->out);
	}
	fputs("</figure>\n", c->out);
}

/* Polylines: series_pt adds a point, a NaN y ends the current line (a
 * gap); series_end closes it. */
static void
series_begin(struct chart *c, size_t ci)
{
	c->col = color(ci);
	c->dash = dash(ci);
	c->open = false;
}

static void
series_pt(struct chart *c, double x, double y)
{
	if (isnan(y)) {
		if (c->open) {
			/* A lone point between gaps: a zero-length segment,
			 * which the round line cap draws as a dot. */
			if (c->npts == 1) {
				fputc(' ', c->out);
				put_xy(c->out, c->lastx, c->lasty);
			}
			fputs("\"/>\n", c->out);
		}
		c->open = false;
		return;
	}
	if (!c->open) {
		fprintf(c->out, "<polyline class=\"ln\" stroke=\"%s\"%s points=\"",
			c->col, c->dash);
		c->open = true;
		c->npts = 0;
	} else {
		fputc(' ', c->out);
	}
	c->lastx = px(c, x);
	c->lasty = py(c, y);
	c->npts++;
	put_xy(c->out, c->lastx, c->lasty);
}

static void
series_end(struct chart *c)
{
	series_pt(c, 0, NAN);
}

/* ------------------------------------------------------------------------ */
/* Series sources                                                           */
/* ------------------------------------------------------------------------ */

/* One line of a chart: a band of a result (the single-result charts), or
 * one variant's band (the comparison's). */
struct line {
	const char *label;
	size_t ci; /* color index */
	const struct sim_result *r;
	const struct sim_band_result *band;
};

/* Buckets of windows: bucket b holds windows [b*nw/nb, (b+1)*nw/nb). */
static size_t
nbuckets(size_t nw)
{
	return nw < HTML_MAX_POINTS ? nw : HTML_MAX_POINTS;
}

static size_t
bucket_lo(size_t b, size_t nw, size_t nb)
{
	return (size_t)((unsigned long long)b * nw / nb);
}

/* x of a bucket: the middle of its time span, seconds. */
static double
bucket_x(const struct sim_result *r, size_t b, size_t nb)
{
	size_t w0 = bucket_lo(b, r->nwindows, nb), w1 = bucket_lo(b + 1, r->nwindows, nb);
	return ((double)w0 + (double)w1) / 2 * ((double)r->window_ns / 1e9);
}

/* A window series, bucketed: the most of win_depth, or the mean of the
 * win_jain values that are not NaN (NaN when there are none). */
static double
bucket_depth(const struct sim_result *r, const struct sim_band_result *b, size_t k,
	     size_t nb)
{
	double m = 0;
	for (size_t w = bucket_lo(k, r->nwindows, nb);
	     w < bucket_lo(k + 1, r->nwindows, nb); w++)
		if (b->win_depth[w] > m)
			m = b->win_depth[w];
	return m;
}

static double
bucket_jain(const struct sim_result *r, const struct sim_band_result *b, size_t k,
	    size_t nb)
{
	double s = 0;
	size_t n = 0;
	for (size_t w = bucket_lo(k, r->nwindows, nb);
	     w < bucket_lo(k + 1, r->nwindows, nb); w++)
		if (!isnan(b->win_jain[w])) {
			s += b->win_jain[w];
			n++;
		}
	return n ? s / (double)n : NAN;
}

/* ------------------------------------------------------------------------ */
/* The charts                                                               */
/* ------------------------------------------------------------------------ */

/* First index of a sorted sample array with a value > 0. */
static size_t
first_positive(const struct sim_samples *s)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] > 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void
chart_cdf(FILE *out, const char *id, const char *title, const char *per,
	  const struct line *ls, size_t n)
{
	/* x: decades from the smallest positive queue time to the largest,
	 * at most 7 of them; anything below the first is drawn at it. */
	double minpos = INFINITY, max = 0;
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		const struct sim_samples *s = &ls[i].band->queue_ns;
		if (s->n == 0)
			continue;
		any = true;
		size_t fp = first_positive(s);
		if (fp < s->n && (double)s->v[fp] < minpos)
			minpos = (double)s->v[fp];
		if ((double)s->v[s->n - 1] > max)
			max = (double)s->v[s->n - 1];
	}
	if (!(minpos < INFINITY))
		minpos = 1e3, max = 1e6;
	double lo = pow(10, floor(log10(minpos))), hi = pow(10, ceil(log10(max)));
	if (hi <= lo)
		hi = lo * 10;
	if (hi / lo > 1e7)
		lo = hi / 1e7;
	bool clamped = false;
	for (size_t i = 0; i < n; i++)
		if (ls[i].band->queue_ns.n && (double)ls[i].band->queue_ns.v[0] < lo)
			clamped = true;

	struct chart c = {.x = {lo, hi, true, AX_DUR}, .y = {0, 1, false, AX_PCT}};
	chart_begin(&c, out, id, title, "queue time, submit to dispatch (log scale)",
		    "dispatched within that time");
	/* Reference lines at p50, p90 and p99. */
	static const double refs[] = {0.5, 0.9, 0.99};
	static const char *const refn[] = {"p50", "p90", "p99"};
	for (size_t i = 0; i < 3; i++) {
		fputs("<path class=\"rf\" d=\"M", out);
		put_xy(out, c.l, py(&c, refs[i]));
		fputs("H", out);
		put_fx(out, c.l + c.pw);
		fputs("\"/>\n", out);
		svg_text(out, c.l + c.pw - 3, py(&c, refs[i]) + 11,
			 "class=\"rl\" text-anchor=\"end\"", refn[i]);
	}
	for (size_t i = 0; i < n; i++) {
		const struct sim_samples *s = &ls[i].band->queue_ns;
		if (s->n == 0) {
			legend(&c, ls[i].ci, false, color(ls[i].ci), ls[i].label,
			       " (none dispatched)");
			continue;
		}
		/* The empirical CDF as steps (flat between samples, a rise
		 * at each), at evenly spaced ranks when there are more
		 * samples than points; the last rank is the maximum. */
		series_begin(&c, ls[i].ci);
		series_pt(&c, (double)s->v[0], 0);
		size_t p = s->n < HTML_MAX_POINTS ? s->n : HTML_MAX_POINTS;
		double y = 0;
		for (size_t k = 0; k < p; k++) {
			size_t idx = (size_t)((unsigned long long)(k + 1) * s->n / p) - 1;
			double x = (double)s->v[idx];
			series_pt(&c, x, y);
			y = (double)(idx + 1) / (double)s->n;
			series_pt(&c, x, y);
		}
		series_end(&c);
		legend(&c, ls[i].ci, false, color(ls[i].ci), ls[i].label, NULL);
	}
	char cap[512], a[SIM_FMT_MAX];
	sim__fmt_dur(a, llround(lo));
	snprintf(
		cap, sizeof(cap),
		"One line per %s: the fraction of its dispatched requests that waited at "
		"most the time on the x axis. Further left and rising sooner means "
		"shorter queueing.%s%s%s",
		per, clamped ? " Queue times under " : "", clamped ? a : "",
		clamped ? " (including zero: dispatched at once) are drawn at the left "
			  "edge."
			: "");
	chart_end(&c, any ? cap : "No request was dispatched.");
}

enum win_kind { WIN_DEPTH, WIN_JAIN };

/* Depth or Jain's index over time, one line per @p ls entry (a band or a
 * variant: @p per names which, for the caption). */
static void
chart_windows(FILE *out, const char *id, const char *title, const char *per,
	      enum win_kind kind, const struct line *ls, size_t n)
{
	double tmax = 0, ymax = 0;
	size_t most = 1; /* windows per point, for the caption */
	for (size_t i = 0; i < n; i++) {
		const struct sim_result *r = ls[i].r;
		double t = (double)r->nwindows * ((double)r->window_ns / 1e9);
		if (t > tmax)
			tmax = t;
		size_t nb = nbuckets(r->nwindows);
		if (nb && (r->nwindows + nb - 1) / nb > most)
			most = (r->nwindows + nb - 1) / nb;
		for (size_t w = 0;
		     kind == WIN_DEPTH && ls[i].band->win_depth && w < r->nwindows; w++)
			if (ls[i].band->win_depth[w] > ymax)
				ymax = ls[i].band->win_depth[w];
	}
	struct chart c = {.x = axis_upto(tmax, AX_NUM)};
	c.x.hi = tmax > 0 ? tmax : 1; /* the run's end, not a rounded-up one */
	if (kind == WIN_DEPTH)
		c.y = axis_upto(ymax, AX_NUM);
	else
		c.y = (struct axis){0, 1, false, AX_NUM};
	chart_begin(&c, out, id, title, "time since the start (s)",
		    kind == WIN_DEPTH ? "requests queued" : "Jain's index (1 = fair)");
	for (size_t i = 0; i < n; i++) {
		const struct sim_result *r = ls[i].r;
		const struct sim_band_result *b = ls[i].band;
		size_t nb = nbuckets(r->nwindows);
		bool data =
			kind == WIN_DEPTH ? b->win_depth != NULL : b->win_jain != NULL;
		if (data && kind == WIN_JAIN) {
			data = false;
			for (size_t w = 0; w < r->nwindows && !data; w++)
				data = !isnan(b->win_jain[w]);
		}
		if (data && nb > 0) {
			series_begin(&c, ls[i].ci);
			for (size_t k = 0; k < nb; k++)
				series_pt(&c, bucket_x(r, k, nb),
					  kind == WIN_DEPTH ? bucket_depth(r, b, k, nb)
							    : bucket_jain(r, b, k, nb));
			series_end(&c);
		}
		legend(&c, ls[i].ci, false, color(ls[i].ci), ls[i].label,
		       data ? NULL : " (no data)");
	}
	char cap[640], a[SIM_FMT_MAX], merged[160] = "";
	sim__fmt_dur(a, ls && n ? ls[0].r->window_ns : 0);
	if (most > 1)
		snprintf(merged, sizeof(merged),
			 " To keep the chart small, each point covers up to %zu windows "
			 "(%s).",
			 most, kind == WIN_DEPTH ? "their largest value" : "their mean");
	if (kind == WIN_DEPTH)
		snprintf(cap, sizeof(cap),
			 "One line per %s: requests waiting (submitted, no outcome yet) "
			 "at "
			 "the end of each %s window.%s",
			 per, a, merged);
	else
		snprintf(
			cap, sizeof(cap),
			"One line per %s: fairness among the band's flows per %s window. "
			"1 when every flow that wanted service got its weighted max-min "
			"fair share of what the band dispatched, 1/n when one of n flows "
			"got it all. Gaps: windows where fewer than two flows wanted "
			"service.%s",
			per, a, merged);
	chart_end(&c, cap);
}

/* Stacked shares of band @p bi's dispatched bytes over time: its busiest
 * flows (by dispatched bytes) and the others; the chart's id is @p id_prefix
 * followed by "-b<bi>". */
static void
chart_share(FILE *out, const struct sim_result *r, size_t bi, const char *id_prefix)
{
	const struct sim_band_result *band = &r->bands[bi];
	size_t top[HTML_SHARE_TOP], total;
	size_t k = sim__top_flows(r, bi, true, top, HTML_SHARE_TOP, &total);
	size_t nb = nbuckets(r->nwindows);
	/* Bytes per bucket: the band's, then each top flow's (cumulated). */
	double tot[HTML_MAX_POINTS] = {0}, cum[HTML_SHARE_TOP + 2][HTML_MAX_POINTS];
	memset(cum, 0, sizeof(cum));
	for (size_t f = 0; f < r->nflows; f++) {
		if (r->flows[f].band != bi || !r->flows[f].win_bytes)
			continue;
		for (size_t b = 0; b < nb; b++)
			for (size_t w = bucket_lo(b, r->nwindows, nb);
			     w < bucket_lo(b + 1, r->nwindows, nb); w++)
				tot[b] += (double)r->flows[f].win_bytes[w];
	}
	for (size_t i = 0; i < k; i++) {
		const struct sim_flow_result *f = &r->flows[top[i]];
		for (size_t b = 0; b < nb; b++) {
			double s = 0;
			for (size_t w = bucket_lo(b, r->nwindows, nb);
			     f->win_bytes && w < bucket_lo(b + 1, r->nwindows, nb); w++)
				s += (double)f->win_bytes[w];
			cum[i + 1][b] = cum[i][b] + (tot[b] > 0 ? s / tot[b] : 0);
		}
	}
	bool others = total > k;
	for (size_t b = 0; b < nb; b++)
		cum[k + 1][b] = tot[b] > 0 ? 1 : 0;

	char id[64], title[128];
	snprintf(id, sizeof(id), "%.40s-b%zu", id_prefix, bi);
	snprintf(title, sizeof(title), "Service share per flow over time: band %" PRId32,
		 band->priority);
	struct chart c = {.x = {0, (double)r->nwindows * ((double)r->window_ns / 1e9),
				false, AX_NUM},
			  .y = {0, 1, false, AX_PCT}};
	if (!(c.x.hi > 0))
		c.x.hi = 1;
	chart_begin(&c, out, id, title, "time since the start (s)",
		    "share of dispatched bytes");
	size_t layers = k + (others ? 1 : 0);
	for (size_t j = 0; j < layers; j++) {
		const char *col = j < k ? color(j) : OTHERS_COL;
		fprintf(out, "<polygon class=\"ar\" fill=\"%s\" points=\"", col);
		for (size_t b = 0; b < nb; b++) {
			if (b)
				fputc(' ', out);
			put_xy(out, px(&c, bucket_x(r, b, nb)), py(&c, cum[j + 1][b]));
		}
		for (size_t b = nb; b-- > 0;) {
			fputc(' ', out);
			put_xy(out, px(&c, bucket_x(r, b, nb)), py(&c, cum[j][b]));
		}
		fputs("\"/>\n", out);
	}
	for (size_t j = 0; j < layers; j++) {
		uint64_t bytes;
		char suffix[SIM_FMT_MAX + 8], pct[SIM_FMT_MAX];
		if (j < k) {
			bytes = r->flows[top[j]].c.dispatched_bytes;
		} else {
			bytes = band->c.dispatched_bytes;
			for (size_t i = 0; i < k; i++)
				bytes -= r->flows[top[i]].c.dispatched_bytes;
		}
		double share = band->c.dispatched_bytes
				       ? (double)bytes / (double)band->c.dispatched_bytes
				       : 0;
		sim__fmt_num(pct, share * 100, 3);
		snprintf(suffix, sizeof(suffix), " (%s%%)", pct);
		char others_label[64];
		snprintf(others_label, sizeof(others_label), "%zu others", total - k);
		legend(&c, j, true, j < k ? color(j) : OTHERS_COL,
		       j < k ? (r->flows[top[j]].id ? r->flows[top[j]].id : "")
			     : others_label,
		       suffix);
	}
	char cap[512], a[SIM_FMT_MAX];
	sim__fmt_dur(a, r->window_ns);
	snprintf(cap, sizeof(cap),
		 "Each flow's part of the bytes band %" PRId32
		 " dispatched, per %s window%s; the "
		 "legend gives each one's part of the whole run. %s",
		 band->priority, a,
		 nb < r->nwindows ? " (windows merged to keep the chart small)" : "",
		 band->c.dispatched_bytes == 0 ? "The band dispatched nothing."
					       : "Blank stretches: nothing dispatched.");
	chart_end(&c, cap);
}

/* ------------------------------------------------------------------------ */
/* Page parts                                                               */
/* ------------------------------------------------------------------------ */

static const char style[] =
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d1d1f;"
	"max-width:1040px;margin:24px auto;padding:0 16px}\n"
	"h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;"
	"border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 "
	"6px}\n"
	"table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}\n"
	"th,td{padding:3px 9px;border-bottom:1px solid "
	"#eee;text-align:left;vertical-align:top}\n"
	"thead th{border-bottom:2px solid #bbb;font-weight:600}\n"
	"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
	"\n"
	"thead th.n{white-space:normal}tbody th{white-space:nowrap}\n"
	"tr.band th,tr.band td{font-weight:600;background:#f5f7fa}\n"
	"tr.flow th{font-weight:normal;padding-left:22px}tr.more th{font-weight:normal;"
	"font-style:italic;padding-left:22px;color:#666}\n"
	"tr.total th,tr.total td{font-weight:600;border-top:2px solid #bbb}\n"
	"tr.best td,tr.best th{background:#fff4c2}\n"
	"table.kv th{font-weight:600;padding-right:18px;white-space:nowrap}\n"
	".ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}\n"
	".note{color:#555;font-size:13px}\n"
	"figure{margin:14px 0 "
	"22px}figcaption{color:#444;font-size:13px;max-width:740px}\n"
	"svg.chart{max-width:100%;height:auto;display:block}\n"
	"svg text{font:11px system-ui,sans-serif;fill:#333}\n"
	"svg text.ct{font-size:14px;font-weight:600;fill:#1d1d1f}\n"
	"svg text.al{font-size:12px;fill:#444}svg text.rl{fill:#888;font-size:10px}\n"
	"svg text.cv{font-size:11px;text-anchor:middle}\n"
	".pa{fill:#fcfcfd;stroke:#999;stroke-width:1}\n"
	".gr{stroke:#e3e3e3;stroke-width:1;fill:none}\n"
	".rf{stroke:#bbb;stroke-width:1;stroke-dasharray:3 3;fill:none}\n"
	".ln{fill:none;stroke-width:1.8;stroke-linejoin:round;stroke-linecap:round}\n"
	".ar{stroke:#fff;stroke-width:0.4}\n"
	"details{margin:8px 0}summary{cursor:pointer;font-weight:600}\n"
	"code{font-size:13px;background:#f3f3f3;padding:1px 4px;border-radius:3px}\n"
	"footer{margin-top:32px;color:#777;font-size:12px}\n";

static void
page_begin(FILE *out, const char *kind, const char *name)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
	      "<meta name=\"viewport\" content=\"width=device-width, "
	      "initial-scale=1\"/>\n"
	      "<meta name=\"generator\" content=\"flowq-sim\"/>\n<title>",
	      out);
	fprintf(out, "flowq-sim %s: ", kind);
	sim__html_str(out, name, 80);
	fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>flowq-sim %s: ",
		style, kind);
	sim__html_str(out, name, 80);
	fputs("</h1>\n", out);
}

/* Whether the trace file @p path (NULL: none) is the Azure LLM inference
 * trace (cited in the footer, as its licence asks). */
static bool
azure_path(const char *path)
{
	return path && strcasestr(path, "azure") != NULL;
}

/* Whether @p r replays the Azure trace. */
static bool
azure_trace(const struct sim_result *r)
{
	return r && r->spec && r->spec->has_trace && azure_path(r->spec->trace.path);
}

static void
page_end(FILE *out, bool azure)
{
	fputs("<footer>Made by flowq-sim, which runs the real flowq engine against the "
	      "workload "
	      "and a modelled backend.",
	      out);
	if (azure)
		fputs(" Arrivals replay the Azure LLM inference trace 2023 "
		      "(Azure/AzurePublicDataset, "
		      "CC-BY 4.0; Patel et al., &#8220;Splitwise: Efficient generative "
		      "LLM inference "
		      "using phase splitting&#8221;, ISCA 2024).",
		      out);
	fputs("</footer>\n</body>\n</html>\n", out);
}

static void
put_dist(FILE *out, const struct sim_dist *d, bool time)
{
	char a[SIM_FMT_MAX], b[SIM_FMT_MAX];
	/* A value in the distribution's unit (ns or bytes). */
#define DV(buf, v)                                                                       \
	(time ? (void)sim__fmt_dur(buf, llround(v))                                      \
	      : (void)sim__fmt_bytes(buf, (uint64_t)llround(v)))
	switch (d->kind) {
	case SIM_DIST_CONST:
		DV(a, d->p1);
		fputs(a, out);
		break;
	case SIM_DIST_UNIFORM:
		DV(a, d->p1);
		DV(b, d->p2);
		fprintf(out, "uniform %s to %s", a, b);
		break;
	case SIM_DIST_EXP:
		DV(a, d->p1);
		fprintf(out, "exponential, mean %s", a);
		break;
	case SIM_DIST_LOGNORMAL:
		DV(a, d->p1);
		sim__fmt_num(b, d->p2, 3);
		fprintf(out, "lognormal, median %s, sigma %s", a, b);
		break;
	case SIM_DIST_PARETO:
		DV(a, d->p1);
		sim__fmt_num(b, d->p2, 3);
		fprintf(out, "Pareto, minimum %s, shape %s", a, b);
		break;
	}
#undef DV
}

static void
put_arrival(FILE *out, const struct sim_arrival *a)
{
	switch (a->kind) {
	case SIM_ARRIVAL_POISSON:
		fputs("Poisson, ", out);
		put_num(out, a->rate, 4);
		fputs("/s", out);
		break;
	case SIM_ARRIVAL_ONOFF:
		fputs("on/off: Poisson ", out);
		put_num(out, a->rate, 4);
		fputs("/s while on; on ", out);
		put_dist(out, &a->on_ns, true);
		fputs(", off ", out);
		put_dist(out, &a->off_ns, true);
		break;
	case SIM_ARRIVAL_CLOSED:
		fprintf(out, "closed loop: %" PRIu32 " clients, think ", a->clients);
		put_dist(out, &a->think_ns, true);
		break;
	case SIM_ARRIVAL_TRACE:
		fputs("trace rows, share ", out);
		put_num(out, a->share, 3);
		break;
	}
	if (a->start_ns || a->stop_ns) {
		fputs("; active from ", out);
		put_dur(out, a->start_ns);
		if (a->stop_ns) {
			fputs(" to ", out);
			put_dur(out, a->stop_ns);
		}
	}
}

static void
kv_begin(FILE *out, const char *key)
{
	fprintf(out, "<tr><th scope=\"row\">%s</th><td>", key);
}

static void
kv_end(FILE *out)
{
	fputs("</td></tr>\n", out);
}

/* The spec in words. */
static void
html_setup(FILE *out, const struct sim_result *r)
{
	const struct sim_spec *s = r->spec;
	fputs("<h2>Setup</h2>\n<table class=\"kv\">\n", out);
	if (s && s->source) {
		kv_begin(out, "spec");
		fputs("<code>", out);
		sim__html_str(out, s->source, 0);
		fputs("</code>", out);
		kv_end(out);
	}
	kv_begin(out, "run");
	fprintf(out, "%s (%s), seed %" PRIu64 "; arrivals for ", sim__mode_name(r->mode),
		r->mode == SIM_MODE_VIRTUAL ? "simulated clock, deterministic"
					    : "producer threads on the wall clock",
		r->seed);
	put_dur(out, r->duration_ns);
	if (s && s->drain_ns) {
		fputs(", then up to ", out);
		put_dur(out, s->drain_ns);
		fputs(" to drain", out);
	}
	fputs("; last outcome at ", out);
	put_dur(out, r->end_ns);
	fputs("; statistics per ", out);
	put_dur(out, r->window_ns);
	fputs(" window", out);
	kv_end(out);
	if (s) {
		const struct flowq_config *e = &s->engine.config;
		kv_begin(out, "engine");
		if (e->shards)
			fprintf(out, "%u shard%s", e->shards, e->shards == 1 ? "" : "s");
		else
			fputs("one shard per online CPU", out);
		fputs("; displacement <code>", out);
		sim__html_str(out, e->displacement ? e->displacement : "none", 0);
		fputs("</code>; queue limit ", out);
		if (e->max_requests)
			fprintf(out, "%" PRIu64 " requests", e->max_requests);
		else
			fputs("none", out);
		if (e->max_bytes) {
			char a[SIM_FMT_MAX];
			sim__fmt_bytes(a, e->max_bytes);
			fprintf(out, ", %s", a);
		}
		fputs("; saturation detector <code>", out);
		sim__html_str(out,
			      e->saturation.detector ? e->saturation.detector
						     : "concurrency",
			      0);
		fputs("</code>", out);
		if (e->saturation.max_inflight)
			fprintf(out, ", at most %" PRIu64 " in flight",
				e->saturation.max_inflight);
		kv_end(out);
		for (size_t b = 0; b < e->nbands; b++) {
			const struct flowq_band_config *bc = &e->bands[b];
			char key[48];
			snprintf(key, sizeof(key), "band %" PRId32, bc->priority);
			kv_begin(out, key);
			fputs("fairness <code>", out);
			sim__html_str(out, bc->fairness ? bc->fairness : "default", 0);
			fputs("</code>, ordering <code>", out);
			sim__html_str(out, bc->ordering ? bc->ordering : "default", 0);
			fputs("</code>, usage ceiling ", out);
			put_num(out, bc->usage_ceiling, 3);
			if (bc->max_requests)
				fprintf(out, ", at most %" PRIu64 " queued",
					bc->max_requests);
			kv_end(out);
		}
		kv_begin(out, "backend");
		fprintf(out, "%" PRIu32 " slot%s; service time ", s->backend.slots,
			s->backend.slots == 1 ? "" : "s");
		put_dist(out, &s->backend.service_ns, true);
		if (s->backend.ns_per_byte > 0) {
			fputs(" + ", out);
			put_num(out, s->backend.ns_per_byte, 3);
			fputs("ns per byte", out);
		}
		for (size_t i = 0; i < s->backend.nslowdowns; i++) {
			const struct sim_slowdown *sd = &s->backend.slowdowns[i];
			fputs("; slowed ", out);
			put_num(out, sd->factor, 3);
			fputs("&#215; from ", out);
			put_dur(out, sd->at_ns);
			fputs(" for ", out);
			put_dur(out, sd->for_ns);
		}
		kv_end(out);
		if (s->has_trace) {
			kv_begin(out, "trace");
			fputs("<code>", out);
			sim__html_str(out, s->trace.path ? s->trace.path : "", 0);
			fputs("</code>, replayed ", out);
			put_num(out, s->trace.time_scale, 4);
			fputs("&#215; as fast", out);
			kv_end(out);
		}
	}
	kv_begin(out, "backend load");
	put_num(out, r->backend_utilization * 100, 3);
	fprintf(out,
		"%% of slot time busy; at most %" PRIu64 " requests waited for a slot",
		r->backend_queue_max);
	kv_end(out);
	if (r->mode == SIM_MODE_REALTIME) {
		kv_begin(out, "time taken");
		put_num(out, r->wall_s, 3);
		fputs(" s wall, ", out);
		put_num(out, r->cpu_s, 3);
		fputs(" s CPU", out);
		kv_end(out);
	}
	fputs("</table>\n", out);

	if (s && s->nflows) {
		fputs("<h3>Flow classes</h3>\n<table>\n<thead><tr><th>flow</th><th "
		      "class=\"n\">"
		      "count</th><th class=\"n\">priority</th><th class=\"n\">weight</th>"
		      "<th>arrivals</th><th>request "
		      "size</th><th>TTL</th></tr></thead>\n<tbody>\n",
		      out);
		for (size_t i = 0; i < s->nflows; i++) {
			const struct sim_flow_spec *f = &s->flows[i];
			fputs("<tr><th scope=\"row\">", out);
			sim__html_str(out, f->id ? f->id : "", 40);
			if (f->count > 1)
				fputs("-<i>k</i>", out);
			fprintf(out,
				"</th><td class=\"n\">%" PRIu32
				"</td><td class=\"n\">%" PRId32
				"</td><td class=\"n\">%" PRIu32 "</td><td>",
				f->count, f->priority, f->weight);
			put_arrival(out, &f->arrival);
			fputs("</td><td>", out);
			if (f->arrival.kind == SIM_ARRIVAL_TRACE && s->has_trace &&
			    s->trace.cost_column)
				fputs("from the trace", out);
			else
				put_dist(out, &f->size, false);
			fputs("</td><td>", out);
			if (f->ttl_ns == 0)
				fputs("engine default", out);
			else if (f->ttl_ns == FLOWQ_TTL_NONE)
				fputs("none", out);
			else
				put_dur(out, f->ttl_ns);
			fputs("</td></tr>\n", out);
		}
		fputs("</tbody>\n</table>\n", out);
	}
}

static void
html_conservation(FILE *out, const struct sim_result *r)
{
	if (r->conserved) {
		fputs("<p><span class=\"ok\">Conservation: OK.</span> Every submitted "
		      "request had "
		      "exactly one outcome (per flow, per band and in total), and the "
		      "engine's own "
		      "counters agree.</p>\n",
		      out);
	} else {
		fputs("<p><span class=\"bad\">Conservation FAILED:</span> ", out);
		sim__html_str(out, r->conservation_error, 0);
		fputs(". The figures below cannot be trusted.</p>\n", out);
	}
}

static void
html_headline(FILE *out, const struct sim_result *r)
{
	const struct sim_counts *t = &r->total;
	char a[SIM_FMT_MAX];
	fprintf(out, "<p>%" PRIu64 " requests offered, %" PRIu64 " dispatched (",
		t->offered, t->dispatched);
	put_num(out, t->offered ? 100.0 * (double)t->dispatched / (double)t->offered : 0,
		3);
	fprintf(out, "%%, ");
	sim__fmt_num(a, sim__throughput(r, t), 4);
	fprintf(out,
		"%s per second); %" PRIu64 " rejected, %" PRIu64 " expired, %" PRIu64
		" cancelled, %" PRIu64 " displaced, %" PRIu64
		" still queued at shutdown. %" PRIu64 " priority inversions (",
		a, sim__rejected(t), t->expired, t->cancelled, t->displaced, t->shutdown,
		r->priority_inversions);
	put_dur(out, r->inversion_grace_ns);
	fputs(" grace).</p>\n", out);
}

static const char outcome_help[] = "<p class=\"note\">Every request has one outcome: "
				   "<b>dispatched</b> to the backend; "
				   "<b>rejected</b> at submission (a queue limit was "
				   "full, or another reason such as an "
				   "unknown band); <b>expired</b> in the queue when its "
				   "TTL ran out; <b>cancelled</b> by "
				   "its client while queued; <b>displaced</b>: shed from "
				   "the queue to make room for a "
				   "higher-priority request; <b>left at shutdown</b>: "
				   "still queued when the run ended. "
				   "Bands are listed most important first; inside each, "
				   "the flows that offered most.</p>\n";

static const char queue_help[] = "<p class=\"note\">Queue time runs from submission to "
				 "dispatch, over dispatched requests "
				 "(p99.9: 999 in 1000 waited at most this). Jain's index "
				 "measures fairness among a band's "
				 "flows per window (1 = every flow got its fair share); "
				 "a priority inversion is a dispatch "
				 "from a band while a more important band had a request "
				 "waiting past the grace time.</p>\n";

static void
html_result_body(FILE *out, const struct sim_result *r)
{
	html_conservation(out, r);
	html_headline(out, r);
	html_setup(out, r);
	fputs("<h2>Outcomes</h2>\n", out);
	fputs(outcome_help, out);
	sim__table_outcomes(out, r, true);
	fputs("<h2>Queue time and fairness</h2>\n", out);
	fputs(queue_help, out);
	sim__table_queue(out, r, true);
}

/* Band lines of one result, labelled "band <priority>". */
static void
band_lines(const struct sim_result *r, size_t nb, struct line *ls, char (*labels)[32])
{
	for (size_t b = 0; b < nb; b++) {
		snprintf(labels[b], 32, "band %" PRId32, r->bands[b].priority);
		ls[b] = (struct line){labels[b], b, r, &r->bands[b]};
	}
}

static void
html_result_charts(FILE *out, const struct sim_result *r)
{
	struct line ls[FLOWQ_MAX_BANDS] = {{0}};
	char labels[FLOWQ_MAX_BANDS][32];
	size_t nb = r->nbands < FLOWQ_MAX_BANDS ? r->nbands : FLOWQ_MAX_BANDS;
	band_lines(r, nb, ls, labels);
	fputs("<h2>Charts</h2>\n", out);
	chart_cdf(out, "chart-cdf", "Queue time per band (CDF)", "band", ls, nb);
	chart_windows(out, "chart-depth", "Queue depth per band over time", "band",
		      WIN_DEPTH, ls, nb);
	chart_windows(out, "chart-jain",
		      "Fairness inside each band over time (Jain's index)", "band",
		      WIN_JAIN, ls, nb);
	for (size_t b = 0; b < nb; b++)
		chart_share(out, r, b, "chart-share");
}

/* ------------------------------------------------------------------------ */
/* Tuning                                                                   */
/* ------------------------------------------------------------------------ */

/* The values of a --vary key are shown in command-line order: the order of
 * each value's first row in the enumeration (sim_tune_row.order). Rows
 * that tie there (e.g. results without an order) fall back to value
 * order: numerically when both are decimal numbers ([+-]digits[.digits]
 * [e[+-]digits], '.' whatever the locale), numbers before words, else
 * bytewise. as_number's value only orders, so plain double arithmetic is
 * precise enough. */
static bool
as_number(const char *s, double *r_v)
{
	double m = 0, sign = 1;
	int exp = 0, digits = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (; *s >= '0' && *s <= '9'; s++, digits++)
		m = m * 10 + (*s - '0');
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, digits++, exp--)
			m = m * 10 + (*s - '0');
	if (digits == 0)
		return false;
	if (*s == 'e' || *s == 'E') {
		int es = 1, e = 0;
		s++;
		if (*s == '+' || *s == '-')
			es = *s++ == '-' ? -1 : 1;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		for (; *s >= '0' && *s <= '9'; s++)
			if (e < 10000)
				e = e * 10 + (*s - '0');
		exp += es * e;
	}
	if (*s != '\0')
		return false;
	*r_v = sign * m * pow(10, exp);
	return true;
}

static int
cmp_value(const char *a, const char *b)
{
	double x, y;
	bool na = as_number(a, &x), nb = as_number(b, &y);
	if (na && nb && x != y)
		return x < y ? -1 : 1;
	if (na != nb)
		return na ? -1 : 1;
	return strcmp(a, b);
}

struct hval {
	const char *s;
	size_t first; /* the smallest order of a row with this value */
	size_t pos;   /* its place on the axis */
};

/* By bytes, then first order (so a group's first element has the least). */
static int
cmp_hval_name(const void *pa, const void *pb)
{
	const struct hval *a = pa, *b = pb;
	int c = strcmp(a->s, b->s);
	if (c)
		return c;
	return (a->first > b->first) - (a->first < b->first);
}

static int
cmp_hval_shown(const void *pa, const void *pb)
{
	const struct hval *a = pa, *b = pb;
	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	return cmp_value(a->s, b->s);
}

/* One axis of the heat-map: the distinct values of a key. */
struct haxis {
	struct hval *byname; /* sorted by bytes: lookups */
	const char **shown;  /* in axis order */
	size_t n;
};

/* The entry of value @p s (values are distinct in byname), or NULL. */
static struct hval *
haxis_find(const struct haxis *h, const char *s)
{
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(h->byname[mid].s, s);
		if (c == 0)
			return &h->byname[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* O(R log R) for R rows. @return 0 or -ENOMEM. */
static int
haxis_init(struct haxis *h, const struct sim_tune_result *t, size_t k)
{
	size_t n = t->nrows ? t->nrows : 1;
	struct hval *disp = malloc(n * sizeof(*disp));
	h->byname = malloc(n * sizeof(*h->byname));
	h->shown = malloc(n * sizeof(*h->shown));
	h->n = 0;
	if (!disp || !h->byname || !h->shown) {
		free(disp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->nrows; i++) {
		const char *v = t->rows[i].values[k];
		h->byname[i] = (struct hval){v ? v : "", t->rows[i].order, 0};
	}
	qsort(h->byname, t->nrows, sizeof(*h->byname), cmp_hval_name);
	for (size_t i = 0; i < t->nrows; i++)
		if (h->n == 0 || strcmp(h->byname[h->n - 1].s, h->byname[i].s) != 0)
			h->byname[h->n++] = h->byname[i];
	memcpy(disp, h->byname, h->n * sizeof(*disp));
	qsort(disp, h->n, sizeof(*disp), cmp_hval_shown);
	for (size_t i = 0; i < h->n; i++) {
		haxis_find(h, disp[i].s)->pos = i;
		h->shown[i] = disp[i].s;
	}
	free(disp);
	return 0;
}

/* The axis position of value @p s, or SIZE_MAX. */
static size_t
haxis_pos(const struct haxis *h, const char *s)
{
	const struct hval *v = haxis_find(h, s ? s : "");
	return v ? v->pos : SIZE_MAX;
}

static void
haxis_free(struct haxis *h)
{
	free(h->byname);
	free(h->shown);
}

/* Viridis at t in [0, 1] (dark purple to yellow), as #rrggbb. */
static void
viridis(char buf[8], double t)
{
	static const unsigned char stops[11][3] = {
		{68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},
		{42, 120, 142}, {33, 145, 140}, {34, 168, 132}, {68, 191, 112},
		{122, 209, 81}, {189, 223, 38}, {253, 231, 37}};
	if (!(t >= 0))
		t = 0;
	if (t > 1)
		t = 1;
	double x = t * 10;
	int i = (int)floor(x);
	if (i >= 10)
		i = 9;
	double f = x - i;
	int rgb[3];
	for (int k = 0; k < 3; k++)
		rgb[k] = (int)lround(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f);
	snprintf(buf, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static void
chart_heatmap(FILE *out, const struct sim_tune_result *t)
{
	struct haxis ax = {0}, ay = {0};
	static const char *const none[] = {""};
	const char *const *xs = NULL, *const *ys = none;
	double *cell = NULL;
	size_t nx = 0, ny = 1;
	if (haxis_init(&ax, t, 0) == 0 && (t->nkeys < 2 || haxis_init(&ay, t, 1) == 0)) {
		xs = ax.shown;
		nx = ax.n;
		if (t->nkeys > 1) {
			ys = ay.shown;
			ny = ay.n;
		}
		cell = malloc((nx ? nx : 1) * ny * sizeof(*cell));
	}
	if (!cell) {
		fputs("<p class=\"bad\">The heat-map was left out: out of memory.</p>\n",
		      out);
		goto done;
	}
	/* Best objective per (x, y) cell over the other keys. */
	for (size_t i = 0; i < nx * ny; i++)
		cell[i] = NAN;
	for (size_t i = 0; i < t->nrows; i++) {
		const struct sim_tune_row *row = &t->rows[i];
		if (isnan(row->objective))
			continue;
		size_t ix = haxis_pos(&ax, row->values[0]);
		size_t iy = t->nkeys > 1 ? haxis_pos(&ay, row->values[1]) : 0;
		if (ix == SIZE_MAX || iy == SIZE_MAX)
			continue;
		double *c = &cell[iy * nx + ix];
		if (isnan(*c) ||
		    (t->maximize ? row->objective > *c : row->objective < *c))
			*c = row->objective;
	}
	double vmin = INFINITY, vmax = -INFINITY;
	size_t bx = SIZE_MAX, by = SIZE_MAX;
	for (size_t iy = 0; iy < ny; iy++)
		for (size_t ix = 0; ix < nx; ix++) {
			double v = cell[iy * nx + ix];
			if (isnan(v))
				continue;
			if (v < vmin)
				vmin = v;
			if (v > vmax)
				vmax = v;
			double b = bx == SIZE_MAX ? NAN : cell[by * nx + bx];
			if (bx == SIZE_MAX || (t->maximize ? v > b : v < b))
				bx = ix, by = iy;
		}

	/* Layout: y labels on the left, the grid, the color scale right. */
	/* Columns as wide as their value labels need (at about 6.6 px per
	 * character of the 11 px font), within 760 px for the grid. */
	size_t maxlab = 0;
	for (size_t ix = 0; ix < nx; ix++)
		if (strlen(xs[ix]) > maxlab)
			maxlab = strlen(xs[ix]);
	double want = fmax(96, 6.6 * (double)(maxlab < 30 ? maxlab : 30) + 12);
	double cw = nx ? fmin(want, 760.0 / (double)nx) : 96,
	       chh = fmin(40, 320.0 / (double)ny);
	size_t xcut = cw > 28 ? (size_t)((cw - 8) / 6.6) : 3;
	double gl = 150, gt = 56, gw = cw * (double)nx, gh = chh * (double)ny;
	double W = fmax(gl + gw + 150, 680), H = gt + gh + 64;
	fprintf(out,
		"<figure>\n<svg id=\"chart-heatmap\" class=\"chart\" "
		"viewBox=\"0 0 %d %d\" width=\"%d\" "
		"height=\"%d\" role=\"img\" aria-labelledby=\"chart-heatmap-t\">\n"
		"<title id=\"chart-heatmap-t\">",
		(int)ceil(W), (int)ceil(H), (int)ceil(W), (int)ceil(H));
	fputs("Tuning: the objective by ", out);
	sim__html_str(out, t->keys[0], 40);
	if (t->nkeys > 1) {
		fputs(" and ", out);
		sim__html_str(out, t->keys[1], 40);
	}
	fputs("</title>\n", out);
	{
		char title[256];
		snprintf(title, sizeof(title), "Objective (%s is better) by %.32s%s%.32s",
			 t->maximize ? "higher" : "lower", t->keys[0],
			 t->nkeys > 1 ? " and " : "", t->nkeys > 1 ? t->keys[1] : "");
		svg_text(out, 10, 22, "class=\"ct\"", title);
	}
	for (size_t iy = 0; iy < ny; iy++) {
		for (size_t ix = 0; ix < nx; ix++) {
			double v = cell[iy * nx + ix], x = gl + cw * (double)ix,
			       y = gt + chh * (double)iy;
			double f = vmax > vmin ? (v - vmin) / (vmax - vmin) : 1;
			double good = t->maximize ? f : 1 - f; /* 1 = best */
			char col[8] = "#dddddd", lab[SIM_FMT_MAX] = "failed";
			if (!isnan(v)) {
				viridis(col, good);
				fmt_compact(lab, v);
			}
			char fill[48];
			snprintf(fill, sizeof(fill), "fill=\"%s\" stroke=\"#fff\"", col);
			svg_rect(out, x, y, cw, chh, fill);
			if (cw >= 34 && chh >= 14)
				svg_text(out, x + cw / 2, y + chh / 2 + 4,
					 !isnan(v) && good < 0.6
						 ? "class=\"cv\" style=\"fill:#fff\""
						 : "class=\"cv\"",
					 lab);
		}
	}
	if (bx != SIZE_MAX)
		svg_rect(out, gl + cw * (double)bx + 1.5, gt + chh * (double)by + 1.5,
			 cw - 3, chh - 3,
			 "fill=\"none\" stroke=\"#d62728\" stroke-width=\"3\"");
	/* Value labels: columns under the grid (cut shorter when cells are
	 * narrow), rows on the left; then the axis titles. */
	for (size_t ix = 0; ix < nx; ix++)
		svg_text_cut(out, gl + cw * ((double)ix + 0.5), gt + gh + 14,
			     "text-anchor=\"middle\"", xs[ix], xcut);
	for (size_t iy = 0; t->nkeys > 1 && iy < ny; iy++)
		svg_text_cut(out, gl - 6, gt + chh * ((double)iy + 0.5) + 4,
			     "text-anchor=\"end\"", ys[iy], 22);
	{
		char lab[128];
		snprintf(lab, sizeof(lab), "%.100s", t->keys[0]);
		svg_text(out, gl + gw / 2, gt + gh + 34,
			 "class=\"al\" text-anchor=\"middle\"", lab);
		if (t->nkeys > 1) {
			snprintf(lab, sizeof(lab), "%.40s", t->keys[1]);
			svg_text(out, 10, gt - 12, "class=\"al\"", lab);
		}
	}
	/* Color scale: best at the top. */
	double lx = gl + gw + 30, lt = gt, lh = fmax(gh, 100);
	fputs("<defs><linearGradient id=\"hm-scale\" x1=\"0\" y1=\"1\" x2=\"0\" "
	      "y2=\"0\">",
	      out);
	for (int i = 0; i <= 10; i++) {
		char col[8];
		viridis(col, i / 10.0);
		fprintf(out, "<stop offset=\"%d%%\" stop-color=\"%s\"/>", i * 10, col);
	}
	fputs("</linearGradient></defs>\n", out);
	svg_rect(out, lx, lt, 16, lh, "fill=\"url(#hm-scale)\" stroke=\"#999\"");
	{
		char a[SIM_FMT_MAX], lab[SIM_FMT_MAX + 16];
		bool have = vmin <= vmax;
		fmt_compact(a, t->maximize ? vmax : vmin);
		snprintf(lab, sizeof(lab), "best %s", have ? a : "-");
		svg_text(out, lx + 22, lt + 10, "", lab);
		fmt_compact(a, t->maximize ? vmin : vmax);
		snprintf(lab, sizeof(lab), "worst %s", have ? a : "-");
		svg_text(out, lx + 22, lt + lh, "", lab);
	}
	fputs("</svg>\n<figcaption>Each cell is the best objective among the runs with "
	      "those two "
	      "values (over every value of the other keys); the framed cell is the best "
	      "overall. "
	      "Grey cells: every run there failed or broke conservation.</figcaption>\n"
	      "</figure>\n",
	      out);
done:
	haxis_free(&ax);
	haxis_free(&ay);
	free(cell);
}

static void
html_tune(FILE *out, const struct sim_tune_result *t)
{
	fputs("<h2>Tuning</h2>\n<p>Objective <code>", out);
	sim__html_str(out, t->objective ? t->objective : "", 0);
	fprintf(out, "</code> (%s is better), %zu combinations of ",
		t->maximize ? "higher" : "lower", t->nrows);
	for (size_t k = 0; k < t->nkeys; k++) {
		fputs(k ? ", <code>" : "<code>", out);
		sim__html_str(out, t->keys[k], 0);
		fputs("</code>", out);
	}
	fputs(".", out);
	if (t->nrows && !isnan(t->rows[0].objective)) {
		fputs(" Best: ", out);
		for (size_t k = 0; k < t->nkeys; k++) {
			fputs(k ? ", <code>" : "<code>", out);
			sim__html_str(out, t->keys[k], 0);
			fputs("=", out);
			sim__html_str(
				out, t->rows[0].values[k] ? t->rows[0].values[k] : "", 0);
			fputs("</code>", out);
		}
		fputs(" (objective ", out);
		put_num(out, t->rows[0].objective, 6);
		fputs(").", out);
	}
	fputs("</p>\n", out);
	if (t->nkeys > 0 && t->nrows > 0)
		chart_heatmap(out, t);

	fputs("<table class=\"tune\">\n<thead><tr><th class=\"n\">rank</th>", out);
	for (size_t k = 0; k < t->nkeys; k++) {
		fputs("<th>", out);
		sim__html_str(out, t->keys[k], 40);
		fputs("</th>", out);
	}
	fputs("<th class=\"n\">objective</th><th class=\"n\">offered</th><th class=\"n\">"
	      "dispatched</th><th class=\"n\">rejected</th><th class=\"n\">expired</th>"
	      "<th "
	      "class=\"n\">displaced</th><th class=\"n\">p99 queue</th>"
	      "<th>conserved</th></tr></thead>\n<tbody>\n",
	      out);
	for (size_t i = 0; i < t->nrows; i++) {
		const struct sim_tune_row *row = &t->rows[i];
		fprintf(out, "<tr%s><td class=\"n\">%zu</td>",
			i == 0 && !isnan(row->objective) ? " class=\"best\"" : "", i + 1);
		for (size_t k = 0; k < t->nkeys; k++) {
			fputs("<td>", out);
			sim__html_str(out, row->values[k] ? row->values[k] : "", 40);
			fputs("</td>", out);
		}
		fputs("<td class=\"n\">", out);
		if (isnan(row->objective))
			fputs("-", out);
		else
			put_num(out, row->objective, 6);
		fprintf(out,
			"</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64
			"</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64
			"</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">",
			row->total.offered, row->total.dispatched,
			sim__rejected(&row->total), row->total.expired,
			row->total.displaced);
		char p99[SIM_FMT_MAX] = "-";
		if (row->queue.n)
			sim__fmt_dur(p99, row->queue.p99);
		fprintf(out, "%s</td><td>", p99);
		if (row->error) {
			fputs("<span class=\"bad\">", out);
			sim__html_str(out, row->error, 0);
			fputs("</span>", out);
		} else {
			fputs(row->conserved ? "OK" : "<span class=\"bad\">FAILED</span>",
			      out);
		}
		fputs("</td></tr>\n", out);
	}
	fputs("</tbody>\n</table>\n", out);
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

void
sim_report_html(FILE *out, const struct sim_result *r, const struct sim_tune_result *tune)
{
	const char *name = r && r->spec && r->spec->name   ? r->spec->name
			   : !r && tune && tune->spec_name ? tune->spec_name
							   : "(unnamed)";
	page_begin(out, tune ? "tuning" : "report", name);
	if (r && r->spec && r->spec->description && *r->spec->description) {
		fputs("<p>", out);
		sim__html_str(out, r->spec->description, 0);
		fputs("</p>\n", out);
	}
	if (tune) {
		html_tune(out, tune);
		if (r)
			fputs("<h2>The run</h2>\n", out);
	}
	if (r) {
		html_result_body(out, r);
		html_result_charts(out, r);
	}
	if (!r && !tune)
		fputs("<p>Nothing to report.</p>\n", out);
	page_end(out, azure_trace(r) || (tune && azure_path(tune->trace_path)));
}

void
sim_report_html_compare(FILE *out, const char *const *names,
			const struct sim_result *const *rs, size_t n)
{
	const struct sim_result *r0 = n ? rs[0] : NULL;
	page_begin(out, "comparison",
		   r0 && r0->spec && r0->spec->name ? r0->spec->name : "(unnamed)");
	fprintf(out, "<p>%zu variants of the same workload, run side by side:", n);
	bool azure = false;
	for (size_t v = 0; v < n; v++) {
		fputs(v ? ", <b>" : " <b>", out);
		sim__html_str(out, names[v], 60);
		fputs("</b>", out);
		if (!rs[v]->conserved)
			fputs(" <span class=\"bad\">(conservation FAILED)</span>", out);
		azure |= azure_trace(rs[v]);
	}
	fputs(".</p>\n<h2>Side by side</h2>\n<p class=\"note\">Per band (most important "
	      "first) "
	      "and in total: dispatched requests, the 99th percentile of queue time, "
	      "requests "
	      "shed by displacement, expired and rejected, and the band's mean Jain's "
	      "index "
	      "(1 = fair).</p>\n",
	      out);
	sim__table_compare(out, names, rs, n, true);

	int32_t prio[FLOWQ_MAX_BANDS];
	size_t nprio = sim__band_union(rs, n, prio, FLOWQ_MAX_BANDS);
	struct line ls[FLOWQ_MAX_BANDS] = {{0}};
	size_t nv = n < FLOWQ_MAX_BANDS ? n : FLOWQ_MAX_BANDS;
	fputs("<h2>Charts</h2>\n<p class=\"note\">One chart per band; one line per "
	      "variant.</p>\n",
	      out);
	for (size_t p = 0; p < nprio; p++) {
		size_t k = 0;
		for (size_t v = 0; v < nv; v++) {
			size_t b = sim__band_by_prio(rs[v], prio[p]);
			if (b != SIZE_MAX)
				ls[k++] = (struct line){names[v], v, rs[v],
							&rs[v]->bands[b]};
		}
		char id[64], title[128];
		fprintf(out, "<h3>Band %" PRId32 "</h3>\n", prio[p]);
		snprintf(id, sizeof(id), "chart-cmp-cdf-b%zu", p);
		snprintf(title, sizeof(title), "Queue time, band %" PRId32 " (CDF)",
			 prio[p]);
		chart_cdf(out, id, title, "variant", ls, k);
		snprintf(id, sizeof(id), "chart-cmp-depth-b%zu", p);
		snprintf(title, sizeof(title), "Queue depth over time, band %" PRId32,
			 prio[p]);
		chart_windows(out, id, title, "variant", WIN_DEPTH, ls, k);
		snprintf(id, sizeof(id), "chart-cmp-jain-b%zu", p);
		snprintf(title, sizeof(title), "Jain's index over time, band %" PRId32,
			 prio[p]);
		chart_windows(out, id, title, "variant", WIN_JAIN, ls, k);
	}
	fputs("<h2>Each variant</h2>\n<p class=\"note\">Each variant's own tables, "
	      "and the service share of each flow of each band over time (the first "
	      "open; click a name to open or close it).</p>\n",
	      out);
	for (size_t v = 0; v < n; v++) {
		fputs(v ? "<details>\n<summary>" : "<details open=\"open\">\n<summary>",
		      out);
		sim__html_str(out, names[v], 60);
		fputs("</summary>\n", out);
		html_result_body(out, rs[v]);
		char prefix[48];
		snprintf(prefix, sizeof(prefix), "chart-cmp-share-v%zu", v);
		for (size_t b = 0; b < rs[v]->nbands && b < FLOWQ_MAX_BANDS; b++)
			chart_share(out, rs[v], b, prefix);
		fputs("</details>\n", out);
	}
	page_end(out, azure);
}
