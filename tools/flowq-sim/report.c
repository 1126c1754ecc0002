/*
 * report.c: the simulator's text renderings of a result (sim.h): the human
 * table, JSON and CSV, the side-by-side comparison of variants (table and
 * JSON), and the helpers html.c shares (report.h).
 *
 * Determinism. The JSON of a result is a pure function of the result: keys
 * in a fixed order, arrays in the result's order, numbers formatted by
 * sim__fmt_num (6 significant digits, the digits C's %.6g gives in the C
 * locale, computed exactly with integer arithmetic) so neither the process
 * locale nor the C library's printf can change a byte. Integers stay
 * integers (PRIu64: no locale groups digits without the ' flag); NaN and
 * infinities are null. wall_s and cpu_s are written for realtime runs only
 * (a virtual run's JSON must not depend on the machine's speed). The spec's
 * file name is left out too, so golden files do not depend on where the
 * checkout lives.
 *
 * Text. Flow ids are user data (a trace's column, a spec's key): every
 * renderer escapes them its own way (report.h) after one shared UTF-8
 * check, sim__utf8_seq, so bytes that are not valid UTF-8 or are controls
 * never reach a terminal, a JSON parser or a browser raw.
 *
 * The table is laid out in two passes over the same row generator: the
 * first measures every column, the second prints, so columns align
 * whatever the numbers are without buffering rows. It fits in 100 columns
 * for counts below 10^7 and ids cut at 14 characters; a band with more than
 * SIM_TABLE_TOP_FLOWS flows shows its busiest ones (by offered) and a
 * "(k more)" line with the rest's sums. Nothing here allocates.
 *
 * Complexity: O(F x W) for JSON and CSV (every flow's windows), O(F x N)
 * for the table (top-N selection per band, N = SIM_TABLE_TOP_FLOWS),
 * O(sum of samples) nowhere: quantiles are lookups in sorted samples.
 */
#define _POSIX_C_SOURCE 200809L /* stpcpy */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

__extension__ typedef unsigned __int128 sim_u128;

static sim_u128
pow10_u128(int k)
{
	sim_u128 p = 1;
	while (k-- > 0)
		p *= 10;
	return p;
}

/* round_half_even(|x| * 10^k) exactly, from x = m * 2^e2 with m a 53-bit
 * integer, as the ratio num / den of 128-bit integers. false when an
 * operand does not fit (the caller falls back). */
static bool
scale_exact(double ax, int k, uint64_t *r_q)
{
	int e2;
	double fr = frexp(ax, &e2);
	uint64_t m = (uint64_t)ldexp(fr, 53);
	e2 -= 53;
	/* Strip the mantissa's trailing zero bits: smaller operands. */
	while (m != 0 && (m & 1) == 0) {
		m >>= 1;
		e2++;
	}
	sim_u128 num = m, den = 1;
	if (k > 38 || k < -38)
		return false;
	if (k >= 0) {
		sim_u128 p = pow10_u128(k);
		if (p != 0 && num > ~(sim_u128)0 / p)
			return false;
		num *= p;
	} else {
		den = pow10_u128(-k);
	}
	if (e2 >= 0) {
		if (e2 >= 127 || (num >> (127 - e2)) != 0)
			return false;
		num <<= e2;
	} else {
		if (-e2 >= 127 || (den >> (127 + e2)) != 0)
			return false;
		den <<= -e2;
	}
	sim_u128 q = num / den, rem = num % den;
	/* Half to even, like printf in the default rounding mode. */
	if (rem > den - rem || (rem == den - rem && (q & 1) != 0))
		q++;
	if (q > UINT64_MAX)
		return false;
	*r_q = (uint64_t)q;
	return true;
}

static uint64_t
scale_round(double ax, int k)
{
	uint64_t q;
	if (scale_exact(ax, k, &q))
		return q;
	long double v = (long double)ax * powl(10.0L, (long double)k);
	long double r = nearbyintl(v);
	return r >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)r;
}

size_t
sim__fmt_num(char buf[SIM_FMT_MAX], double x, int sig)
{
	char *p = buf;
	if (isnan(x))
		return (size_t)(stpcpy(buf, "nan") - buf);
	if (signbit(x))
		*p++ = '-';
	double ax = fabs(x);
	if (isinf(ax))
		return (size_t)(stpcpy(p, "inf") - buf);
	if (ax == 0)
		return (size_t)(stpcpy(p, "0") - buf);
	if (sig < 1)
		sig = 1;
	if (sig > 17)
		sig = 17;

	/* Digits: q = |x| rounded to sig digits, |x| ~ q * 10^(e10 - sig + 1). */
	uint64_t lo = 1, hi;
	for (int i = 1; i < sig; i++)
		lo *= 10;
	hi = lo * 10;
	int e10 = (int)floor(log10(ax));
	uint64_t q = scale_round(ax, sig - 1 - e10);
	if (q >= hi) {
		e10++;
		q = scale_round(ax, sig - 1 - e10);
	} else if (q < lo) {
		e10--;
		q = scale_round(ax, sig - 1 - e10);
	}
	if (q >= hi) { /* 9.99..5 rounding up at the new exponent */
		e10++;
		q = lo;
	}
	char dig[24];
	for (int i = sig - 1; i >= 0; i--) {
		dig[i] = (char)('0' + q % 10);
		q /= 10;
	}
	int nd = sig;
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;

	if (e10 < -4 || e10 >= sig) {
		*p++ = dig[0];
		if (nd > 1) {
			*p++ = '.';
			memcpy(p, dig + 1, (size_t)nd - 1);
			p += nd - 1;
		}
		*p++ = 'e';
		*p++ = e10 < 0 ? '-' : '+';
		int ae = abs(e10);
		if (ae >= 100)
			*p++ = (char)('0' + ae / 100);
		*p++ = (char)('0' + ae / 10 % 10);
		*p++ = (char)('0' + ae % 10);
	} else if (e10 >= 0) {
		for (int i = 0; i <= e10; i++)
			*p++ = i < nd ? dig[i] : '0';
		if (nd > e10 + 1) {
			*p++ = '.';
			memcpy(p, dig + e10 + 1, (size_t)(nd - e10 - 1));
			p += nd - e10 - 1;
		}
	} else {
		*p++ = '0';
		*p++ = '.';
		for (int i = 0; i < -e10 - 1; i++)
			*p++ = '0';
		memcpy(p, dig, (size_t)nd);
		p += nd;
	}
	*p = '\0';
	return (size_t)(p - buf);
}

size_t
sim__fmt_fixed(char buf[SIM_FMT_MAX], double x, int decimals)
{
	if (decimals < 0)
		decimals = 0;
	if (decimals > 6)
		decimals = 6;
	if (!isfinite(x))
		x = 0;
	if (x > 1e15)
		x = 1e15;
	if (x < -1e15)
		x = -1e15;
	int64_t scale = 1;
	for (int i = 0; i < decimals; i++)
		scale *= 10;
	int64_t v = llround(x * (double)scale);
	char *p = buf;
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	int64_t ip = v / scale, fp = v % scale;
	p += sprintf(p, "%" PRId64, ip);
	if (fp != 0) {
		char frac[8];
		for (int i = decimals - 1; i >= 0; i--) {
			frac[i] = (char)('0' + fp % 10);
			fp /= 10;
		}
		int nd = decimals;
		while (nd > 0 && frac[nd - 1] == '0')
			nd--;
		*p++ = '.';
		memcpy(p, frac, (size_t)nd);
		p += nd;
	}
	*p = '\0';
	if (strcmp(buf, "-0") == 0)
		return (size_t)(stpcpy(buf, "0") - buf);
	return (size_t)(p - buf);
}

size_t
sim__fmt_dur(char buf[SIM_FMT_MAX], int64_t ns)
{
	static const struct {
		double div;
		const char *unit;
	} units[] = {{1, "ns"}, {1e3, "us"}, {1e6, "ms"}, {1e9, "s"}};
	if (ns == 0)
		return (size_t)(stpcpy(buf, "0") - buf);
	double v = (double)ns, av = fabs(v);
	if (av >= 1e12) {
		size_t n = sim__fmt_fixed(buf, v / 1e9, 0);
		return (size_t)(stpcpy(buf + n, "s") - buf);
	}
	size_t u = 0;
	while (u + 1 < sizeof(units) / sizeof(units[0]) && av >= units[u + 1].div)
		u++;
	/* 999.6us rounds to "1e+03us" at 3 digits: move up a unit instead. */
	if (u + 1 < sizeof(units) / sizeof(units[0]) && av / units[u].div >= 999.5)
		u++;
	size_t n = sim__fmt_num(buf, v / units[u].div, 3);
	if (u == 3 && av / 1e9 >= 999.5)
		n = sim__fmt_fixed(buf, v / 1e9, 0);
	return (size_t)(stpcpy(buf + n, units[u].unit) - buf);
}

size_t
sim__fmt_bytes(char buf[SIM_FMT_MAX], uint64_t bytes)
{
	static const char *const units[] = {"B",   "KiB", "MiB", "GiB",
					    "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (u + 1 < sizeof(units) / sizeof(units[0]) && v >= 1023.5) {
		v /= 1024;
		u++;
	}
	size_t n = u == 0 ? (size_t)sprintf(buf, "%" PRIu64, bytes)
			  : sim__fmt_num(buf, v, 3);
	return (size_t)(stpcpy(buf + n, units[u]) - buf);
}

/* A rate in requests per second: whole numbers from 1000 on, else 3
 * significant digits. */
static size_t
fmt_rate(char buf[SIM_FMT_MAX], double v)
{
	if (!isfinite(v))
		return (size_t)(stpcpy(buf, "-") - buf);
	return v >= 999.5 ? sim__fmt_fixed(buf, v, 0) : sim__fmt_num(buf, v, 3);
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

size_t
sim__utf8_seq(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned c = s[0];
	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp >= 0x80 && cp <= 0x9f) /* C1 controls */
		return 0;
	return n;
}

/* Appends to a bounded buffer, NUL-terminated; a piece that does not fit
 * whole is dropped (so a UTF-8 sequence or an escape is never cut). */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void
sbuf_put(struct sbuf *b, const char *s, size_t len)
{
	if (b->cap == 0 || len > b->cap - 1 - b->n)
		return;
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

/* Characters in @p s as the escapers count them: code points of valid
 * sequences, and single bytes otherwise. */
static size_t
utf8_chars(const char *s)
{
	size_t n = 0;
	while (*s) {
		size_t k = sim__utf8_seq(s);
		s += k ? k : 1;
		n++;
	}
	return n;
}

/* The terminal escaper: the first @p max characters of @p s (0: all) into
 * @p b (NULL: only counted). @return their display width (one column per
 * character, four per escaped byte). */
static size_t
term_walk(struct sbuf *b, const char *s, size_t max)
{
	size_t width = 0;
	for (size_t i = 0; *s && (max == 0 || i < max); i++) {
		size_t n = sim__utf8_seq(s);
		if (n == 0) {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)*s);
			if (b)
				sbuf_put(b, esc, 4);
			width += 4;
			s++;
		} else {
			if (b)
				sbuf_put(b, s, n);
			width++;
			s += n;
		}
	}
	return width;
}

void
sim__term_str(char *buf, size_t bufsz, const char *s, size_t max_chars)
{
	struct sbuf b = {buf, 0, bufsz};
	if (bufsz)
		buf[0] = '\0';
	if (max_chars == 0 || utf8_chars(s) <= max_chars) {
		term_walk(&b, s, 0);
		return;
	}
	/* Cut: max_chars - 3 characters, then "...". */
	term_walk(&b, s, max_chars > 3 ? max_chars - 3 : 1);
	sbuf_put(&b, "...", 3);
}

size_t
sim__term_width(const char *s)
{
	return term_walk(NULL, s, 0);
}

void
sim__json_str(FILE *out, const char *s)
{
	fputc('"', out);
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n;
		switch (c) {
		case '"':
			fputs("\\\"", out);
			s++;
			continue;
		case '\\':
			fputs("\\\\", out);
			s++;
			continue;
		case '\n':
			fputs("\\n", out);
			s++;
			continue;
		case '\r':
			fputs("\\r", out);
			s++;
			continue;
		case '\t':
			fputs("\\t", out);
			s++;
			continue;
		default:
			break;
		}
		n = sim__utf8_seq(s);
		if (n == 0) {
			/* A control, or a byte that is not UTF-8: its Latin-1
			 * reading, so the JSON stays valid UTF-8. */
			fprintf(out, "\\u%04x", c);
			s++;
		} else {
			fwrite(s, 1, n, out);
			s += n;
		}
	}
	fputc('"', out);
}

void
sim__html_str(FILE *out, const char *s, size_t max_chars)
{
	size_t total = utf8_chars(s), keep = total;
	bool cut = max_chars && total > max_chars;
	if (cut)
		keep = max_chars > 1 ? max_chars - 1 : 0;
	for (size_t i = 0; i < keep; i++) {
		size_t n = sim__utf8_seq(s);
		if (n == 0) {
			fprintf(out, "\\x%02x", (unsigned char)*s);
			s++;
			continue;
		}
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			fwrite(s, 1, n, out);
		}
		s += n;
	}
	if (cut)
		fputs("&#8230;", out);
}

void
sim__csv_str(FILE *out, const char *s)
{
	size_t len = strlen(s);
	bool quote = strpbrk(s, ",\"\r\n") != NULL ||
		     (len > 0 && (s[0] == ' ' || s[len - 1] == ' '));
	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* ------------------------------------------------------------------------ */
/* Result summaries                                                         */
/* ------------------------------------------------------------------------ */

void
sim__qsum(const struct sim_samples *s, struct sim_qsum *r)
{
	r->n = s->n;
	r->p50 = sim_quantile(s, 0.5);
	r->p90 = sim_quantile(s, 0.9);
	r->p99 = sim_quantile(s, 0.99);
	r->p999 = sim_quantile(s, 0.999);
	r->max = s->n ? s->v[s->n - 1] : 0;
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	r->mean = s->n ? sum / (double)s->n : NAN;
}

double
sim__jain_min(const struct sim_result *r, const struct sim_band_result *b)
{
	double m = NAN;
	for (size_t w = 0; b->win_jain && w < r->nwindows; w++)
		if (!isnan(b->win_jain[w]) && !(m <= b->win_jain[w]))
			m = b->win_jain[w];
	return m;
}

double
sim__per_s(uint64_t n, int64_t duration_ns)
{
	if (duration_ns <= 0)
		return NAN;
	return (double)n / ((double)duration_ns / 1e9);
}

double
sim__throughput(const struct sim_result *r, const struct sim_counts *c)
{
	return sim__per_s(c->dispatched, r->duration_ns);
}

uint64_t
sim__rejected(const struct sim_counts *c)
{
	return c->rejected_capacity + c->rejected_other;
}

const char *
sim__mode_name(enum sim_mode m)
{
	return m == SIM_MODE_REALTIME ? "realtime" : "virtual";
}

size_t
sim__top_flows(const struct sim_result *r, size_t band, bool by_bytes, size_t *r_idx,
	       size_t max, size_t *r_total)
{
	size_t n = 0, total = 0;
	for (size_t f = 0; f < r->nflows; f++) {
		if (r->flows[f].band != band)
			continue;
		total++;
		if (max == 0)
			continue;
		const struct sim_counts *c = &r->flows[f].c;
		uint64_t key = by_bytes ? c->dispatched_bytes : c->offered;
		/* Insertion into the sorted top list: only strictly more moves
		 * ahead, so ties keep the lower index first. */
		size_t pos = n;
		while (pos > 0) {
			const struct sim_counts *p = &r->flows[r_idx[pos - 1]].c;
			if ((by_bytes ? p->dispatched_bytes : p->offered) >= key)
				break;
			pos--;
		}
		if (pos >= max)
			continue;
		size_t last = n < max ? n : max - 1;
		memmove(r_idx + pos + 1, r_idx + pos, (last - pos) * sizeof(*r_idx));
		r_idx[pos] = f;
		if (n < max)
			n++;
	}
	if (r_total)
		*r_total = total;
	return n;
}

size_t
sim__band_by_prio(const struct sim_result *r, int32_t prio)
{
	for (size_t b = 0; b < r->nbands; b++)
		if (r->bands[b].priority == prio)
			return b;
	return SIZE_MAX;
}

size_t
sim__band_union(const struct sim_result *const *rs, size_t n, int32_t *r_prio, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; rs[i] && b < rs[i]->nbands; b++) {
			int32_t p = rs[i]->bands[b].priority;
			size_t pos = 0;
			while (pos < k && r_prio[pos] > p)
				pos++;
			if ((pos < k && r_prio[pos] == p) || pos >= max)
				continue;
			size_t last = k < max ? k : max - 1;
			memmove(r_prio + pos + 1, r_prio + pos,
				(last - pos) * sizeof(*r_prio));
			r_prio[pos] = p;
			if (k < max)
				k++;
		}
	}
	return k;
}

/* ------------------------------------------------------------------------ */
/* Aligned text tables                                                      */
/* ------------------------------------------------------------------------ */

#define TT_MAXCOLS 12
#define TT_CELL    192

enum tt_kind {
	TT_HEAD,  /* column names */
	TT_BAND,  /* a band, or a block title */
	TT_FLOW,  /* a flow, or a line of a block */
	TT_MORE,  /* "(k more)" */
	TT_TOTAL, /* the total */
};

/* A table printed by running its row generator twice: measure, then
 * print (text), or once into an HTML <table>. Column 0 is left-aligned,
 * the others right-aligned. Cells hold terminal-safe text (sim__term_str);
 * HTML mode escapes it again for markup. */
struct tt {
	FILE *out;
	bool measure, html;
	size_t ncols;
	size_t width[TT_MAXCOLS];
	size_t id_chars; /* flow ids are cut at this many characters */
	size_t top;      /* flows shown per band */
};

/* Text mode: a line of dashes across the table. */
static void
tt_rule(const struct tt *t)
{
	size_t w = 0;
	for (size_t c = 0; c < t->ncols; c++)
		w += t->width[c] + (c ? 2 : 0);
	for (size_t i = 0; i < w; i++)
		fputc('-', t->out);
	fputc('\n', t->out);
}

static void
tt_row(struct tt *t, char cells[][TT_CELL], enum tt_kind kind)
{
	if (t->html) {
		static const char *const cls[] = {"", "band", "flow", "more", "total"};
		if (kind == TT_HEAD) {
			fputs("<thead><tr>", t->out);
			for (size_t c = 0; c < t->ncols; c++) {
				fputs(c ? "<th class=\"n\">" : "<th>", t->out);
				sim__html_str(t->out, cells[c], 0);
				fputs("</th>", t->out);
			}
			fputs("</tr></thead>\n<tbody>\n", t->out);
			return;
		}
		fprintf(t->out, "<tr class=\"%s\">", cls[kind]);
		for (size_t c = 0; c < t->ncols; c++) {
			/* The text form's indentation is the style sheet's job. */
			const char *cell =
				cells[c] + (c == 0 ? strspn(cells[c], " ") : 0);
			fputs(c ? "<td class=\"n\">" : "<th scope=\"row\">", t->out);
			sim__html_str(t->out, cell, 0);
			fputs(c ? "</td>" : "</th>", t->out);
		}
		fputs("</tr>\n", t->out);
		return;
	}
	if (t->measure) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = sim__term_width(cells[c]);
			if (w > t->width[c])
				t->width[c] = w;
		}
		return;
	}
	if (kind == TT_TOTAL)
		tt_rule(t);
	/* The line is built whole so that trailing blanks (empty cells at
	 * the end) can be cut; a cell's width never exceeds its bytes. */
	char line[TT_MAXCOLS * (2 * TT_CELL + 2) + 1];
	size_t n = 0;
	for (size_t c = 0; c < t->ncols; c++) {
		size_t w = sim__term_width(cells[c]), len = strlen(cells[c]);
		size_t pad = t->width[c] > w ? t->width[c] - w : 0;
		if (c > 0) {
			memset(line + n, ' ', pad + 2);
			n += pad + 2;
		}
		memcpy(line + n, cells[c], len);
		n += len;
		if (c == 0) {
			memset(line + n, ' ', pad);
			n += pad;
		}
	}
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n++] = '\n';
	fwrite(line, 1, n, t->out);
	if (kind == TT_HEAD)
		tt_rule(t);
}

typedef void
tt_gen_fn(struct tt *t, const void *arg);

static void
tt_print(struct tt *t, const char *cls, tt_gen_fn *gen, const void *arg)
{
	if (t->html) {
		fprintf(t->out, "<table class=\"%s\">\n", cls);
		gen(t, arg);
		fputs("</tbody>\n</table>\n", t->out);
		return;
	}
	t->measure = true;
	gen(t, arg);
	t->measure = false;
	gen(t, arg);
}

/* Table settings for text (100 columns) and HTML (a browser scrolls). */
static struct tt
tt_make(FILE *out, bool html, size_t ncols)
{
	return (struct tt){.out = out,
			   .html = html,
			   .ncols = ncols,
			   .id_chars = html ? 40 : 14,
			   .top = html ? 20 : 10};
}

static void
tt_head(struct tt *t, const char *const *text, const char *const *html)
{
	char cells[TT_MAXCOLS][TT_CELL];
	for (size_t c = 0; c < t->ncols; c++)
		snprintf(cells[c], TT_CELL, "%s", t->html ? html[c] : text[c]);
	tt_row(t, cells, TT_HEAD);
}

static void
cell_u64(char *cell, uint64_t v)
{
	snprintf(cell, TT_CELL, "%" PRIu64, v);
}

static void
cell_dur(char *cell, int64_t ns, size_t n)
{
	if (n == 0)
		strcpy(cell, "-");
	else
		sim__fmt_dur(cell, ns);
}

static void
cell_jain(char *cell, double j)
{
	if (isnan(j))
		strcpy(cell, "-");
	else
		sim__fmt_fixed(cell, j, 3);
}

static void
cell_flow(const struct tt *t, char *cell, const char *id)
{
	cell[0] = cell[1] = ' ';
	sim__term_str(cell + 2, TT_CELL - 2, id ? id : "", t->id_chars);
}

static void
cell_band(char *cell, const struct sim_band_result *b)
{
	snprintf(cell, TT_CELL, "band %" PRId32, b->priority);
}

/* ------------------------------------------------------------------------ */
/* The human table                                                          */
/* ------------------------------------------------------------------------ */

#define TT_TOP_MAX 20

static void
outcome_cells(char cells[][TT_CELL], const struct sim_result *r,
	      const struct sim_counts *c)
{
	cell_u64(cells[1], c->offered);
	cell_u64(cells[2], c->dispatched);
	cell_u64(cells[3], c->rejected_capacity);
	cell_u64(cells[4], c->rejected_other);
	cell_u64(cells[5], c->expired);
	cell_u64(cells[6], c->cancelled);
	cell_u64(cells[7], c->displaced);
	cell_u64(cells[8], c->shutdown);
	fmt_rate(cells[9], sim__throughput(r, c));
}

/* a -= b, field by field. */
static void
counts_sub(struct sim_counts *a, const struct sim_counts *b)
{
	a->offered -= b->offered;
	a->rejected_capacity -= b->rejected_capacity;
	a->rejected_other -= b->rejected_other;
	a->dispatched -= b->dispatched;
	a->expired -= b->expired;
	a->cancelled -= b->cancelled;
	a->displaced -= b->displaced;
	a->shutdown -= b->shutdown;
	a->completed -= b->completed;
	a->offered_bytes -= b->offered_bytes;
	a->dispatched_bytes -= b->dispatched_bytes;
}

static void
gen_outcomes(struct tt *t, const void *arg)
{
	const struct sim_result *r = arg;
	char cells[10][TT_CELL];
	static const char *const head[] = {"outcomes", "offered", "dispatch", "rej.cap",
					   "rej.oth",  "expired", "cancel",   "displ",
					   "shutdn",   "req/s"};
	static const char *const head_html[] = {"",
						"offered",
						"dispatched",
						"rejected (capacity)",
						"rejected (other)",
						"expired (TTL)",
						"cancelled",
						"displaced (shed)",
						"left at shutdown",
						"dispatched per second"};
	tt_head(t, head, head_html);
	for (size_t b = 0; b < r->nbands; b++) {
		cell_band(cells[0], &r->bands[b]);
		outcome_cells(cells, r, &r->bands[b].c);
		tt_row(t, cells, TT_BAND);
		size_t top[TT_TOP_MAX], total;
		size_t n = sim__top_flows(r, b, false, top, t->top, &total);
		struct sim_counts rest = r->bands[b].c;
		for (size_t i = 0; i < n; i++) {
			const struct sim_flow_result *f = &r->flows[top[i]];
			cell_flow(t, cells[0], f->id);
			outcome_cells(cells, r, &f->c);
			tt_row(t, cells, TT_FLOW);
			counts_sub(&rest, &f->c);
		}
		if (total > n) {
			/* The rest: the band's counts minus the shown flows'. */
			snprintf(cells[0], TT_CELL, "  (%zu more)", total - n);
			outcome_cells(cells, r, &rest);
			tt_row(t, cells, TT_MORE);
		}
	}
	strcpy(cells[0], "total");
	outcome_cells(cells, r, &r->total);
	tt_row(t, cells, TT_TOTAL);
}

static void
queue_cells(char cells[][TT_CELL], const struct sim_samples *s)
{
	struct sim_qsum q;
	sim__qsum(s, &q);
	cell_dur(cells[2], q.p50, q.n);
	cell_dur(cells[3], q.p90, q.n);
	cell_dur(cells[4], q.p99, q.n);
	cell_dur(cells[5], q.p999, q.n);
	cell_dur(cells[6], q.max, q.n);
}

static void
gen_queue(struct tt *t, const void *arg)
{
	const struct sim_result *r = arg;
	char cells[10][TT_CELL];
	static const char *const head[] = {"queue time", "flows",     "p50", "p90",
					   "p99",        "p999",      "max", "jain",
					   "jain.min",   "inversions"};
	static const char *const head_html[] = {"",
						"flows",
						"p50",
						"p90",
						"p99",
						"p99.9",
						"max",
						"Jain's index (mean)",
						"Jain's index (min)",
						"priority inversions"};
	tt_head(t, head, head_html);
	for (size_t b = 0; b < r->nbands; b++) {
		const struct sim_band_result *band = &r->bands[b];
		cell_band(cells[0], band);
		snprintf(cells[1], TT_CELL, "%zu", band->nflows);
		queue_cells(cells, &band->queue_ns);
		cell_jain(cells[7], band->jain_mean);
		cell_jain(cells[8], sim__jain_min(r, band));
		cell_u64(cells[9], band->inversions);
		tt_row(t, cells, TT_BAND);
		size_t top[TT_TOP_MAX], total;
		size_t n = sim__top_flows(r, b, false, top, t->top, &total);
		for (size_t i = 0; i < n; i++) {
			const struct sim_flow_result *f = &r->flows[top[i]];
			cell_flow(t, cells[0], f->id);
			cells[1][0] = cells[7][0] = cells[8][0] = cells[9][0] = '\0';
			queue_cells(cells, &f->queue_ns);
			tt_row(t, cells, TT_FLOW);
		}
		if (total > n) {
			snprintf(cells[0], TT_CELL, "  (%zu more)", total - n);
			for (size_t c = 1; c < 10; c++)
				cells[c][0] = '\0';
			tt_row(t, cells, TT_MORE);
		}
	}
}

void
sim__table_outcomes(FILE *out, const struct sim_result *r, bool html)
{
	struct tt t = tt_make(out, html, 10);
	tt_print(&t, "outcomes", gen_outcomes, r);
}

void
sim__table_queue(FILE *out, const struct sim_result *r, bool html)
{
	struct tt t = tt_make(out, html, 10);
	tt_print(&t, "queue", gen_queue, r);
}

void
sim_report_table(FILE *out, const struct sim_result *r)
{
	char a[SIM_FMT_MAX], b[SIM_FMT_MAX], c[SIM_FMT_MAX];
	const char *name = r->spec && r->spec->name ? r->spec->name : "(unnamed)";
	char id[TT_CELL];
	sim__term_str(id, sizeof(id), name, 40);
	sim__fmt_dur(a, r->duration_ns);
	sim__fmt_dur(b, r->end_ns);
	sim__fmt_dur(c, r->window_ns);
	fprintf(out,
		"flowq-sim: %s\n%s run, seed %" PRIu64
		", %s of arrivals (last outcome at %s), "
		"windows of %s\n\n",
		id, sim__mode_name(r->mode), r->seed, a, b, c);
	sim__table_outcomes(out, r, false);
	fputc('\n', out);
	sim__table_queue(out, r, false);
	fputc('\n', out);
	sim__fmt_dur(a, r->inversion_grace_ns);
	fprintf(out,
		"priority inversions: %" PRIu64
		" (dispatches while a higher band had waited "
		"over %s)\n",
		r->priority_inversions, a);
	sim__fmt_fixed(a, r->backend_utilization * 100, 1);
	fprintf(out, "backend: %s%% utilized, at most %" PRIu64 " waiting for a slot\n",
		a, r->backend_queue_max);
	if (r->mode == SIM_MODE_REALTIME) {
		sim__fmt_num(a, r->wall_s, 3);
		sim__fmt_num(b, r->cpu_s, 3);
		fprintf(out, "time: %ss wall, %ss cpu, %" PRIu64 " events\n", a, b,
			r->events);
	}
	if (r->conserved)
		fprintf(out, "conservation: OK (offered = sum of outcomes, per flow, per "
			     "band and "
			     "in total)\n");
	else
		fprintf(out, "conservation: FAILED: %s\n", r->conservation_error);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

#define JW_MAXDEPTH 16

/* A streaming JSON writer: indented two spaces per level, except
 * containers opened "inline", which go on one line without spaces. */
struct jw {
	FILE *out;
	int depth;
	bool first; /* nothing written yet in the current container */
	bool keyed; /* a key was written; its value comes next */
	bool inl[JW_MAXDEPTH + 1];
};

static void
jw_nl(struct jw *j)
{
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Separator and key before a value. */
static void
jw_pre(struct jw *j, const char *key)
{
	if (!j->keyed) {
		if (!j->first)
			fputc(',', j->out);
		if (j->depth > 0 && !j->inl[j->depth])
			jw_nl(j);
	}
	j->first = false;
	j->keyed = false;
	if (key) {
		fprintf(j->out, j->inl[j->depth] ? "\"%s\":" : "\"%s\": ", key);
	}
}

static void
jw_open(struct jw *j, const char *key, char brace, bool inl)
{
	jw_pre(j, key);
	fputc(brace, j->out);
	j->depth++;
	j->inl[j->depth] = inl || j->inl[j->depth - 1];
	j->first = true;
}

static void
jw_close(struct jw *j, char brace)
{
	bool empty = j->first, inl = j->inl[j->depth];
	j->depth--;
	if (!empty && !inl)
		jw_nl(j);
	fputc(brace, j->out);
	j->first = false;
}

static void
jw_u64(struct jw *j, const char *key, uint64_t v)
{
	jw_pre(j, key);
	fprintf(j->out, "%" PRIu64, v);
}

static void
jw_i64(struct jw *j, const char *key, int64_t v)
{
	jw_pre(j, key);
	fprintf(j->out, "%" PRId64, v);
}

static void
jw_num(struct jw *j, const char *key, double v)
{
	char buf[SIM_FMT_MAX];
	jw_pre(j, key);
	if (!isfinite(v)) {
		fputs("null", j->out);
		return;
	}
	sim__fmt_num(buf, v, 6);
	fputs(buf, j->out);
}

static void
jw_str(struct jw *j, const char *key, const char *s)
{
	jw_pre(j, key);
	if (s)
		sim__json_str(j->out, s);
	else
		fputs("null", j->out);
}

static void
jw_bool(struct jw *j, const char *key, bool v)
{
	jw_pre(j, key);
	fputs(v ? "true" : "false", j->out);
}

static void
json_counts(struct jw *j, const char *key, const struct sim_counts *c)
{
	jw_open(j, key, '{', true);
	jw_u64(j, "offered", c->offered);
	jw_u64(j, "rejected_capacity", c->rejected_capacity);
	jw_u64(j, "rejected_other", c->rejected_other);
	jw_u64(j, "dispatched", c->dispatched);
	jw_u64(j, "expired", c->expired);
	jw_u64(j, "cancelled", c->cancelled);
	jw_u64(j, "displaced", c->displaced);
	jw_u64(j, "shutdown", c->shutdown);
	jw_u64(j, "completed", c->completed);
	jw_u64(j, "offered_bytes", c->offered_bytes);
	jw_u64(j, "dispatched_bytes", c->dispatched_bytes);
	jw_close(j, '}');
}

static void
json_qsum(struct jw *j, const struct sim_qsum q)
{
	jw_open(j, "queue_ns", '{', true);
	jw_u64(j, "n", q.n);
	if (q.n == 0) {
		static const char *const keys[] = {"mean", "p50",  "p90",
						   "p99",  "p999", "max"};
		for (size_t i = 0; i < 6; i++)
			jw_num(j, keys[i], NAN);
	} else {
		jw_i64(j, "mean", llround(q.mean));
		jw_i64(j, "p50", q.p50);
		jw_i64(j, "p90", q.p90);
		jw_i64(j, "p99", q.p99);
		jw_i64(j, "p999", q.p999);
		jw_i64(j, "max", q.max);
	}
	jw_close(j, '}');
}

static void
json_queue(struct jw *j, const struct sim_samples *s)
{
	struct sim_qsum q;
	sim__qsum(s, &q);
	json_qsum(j, q);
}

static void
json_result(struct jw *j, const char *key, const struct sim_result *r)
{
	jw_open(j, key, '{', false);
	jw_str(j, "format", "flowq-sim.result.v1");
	if (r->spec) {
		jw_open(j, "spec", '{', false);
		jw_str(j, "name", r->spec->name);
		jw_str(j, "description", r->spec->description);
		jw_close(j, '}');
	} else {
		jw_pre(j, "spec");
		fputs("null", j->out);
	}
	jw_str(j, "mode", sim__mode_name(r->mode));
	jw_u64(j, "seed", r->seed);
	jw_i64(j, "duration_ns", r->duration_ns);
	jw_i64(j, "end_ns", r->end_ns);
	jw_i64(j, "window_ns", r->window_ns);
	jw_u64(j, "windows", r->nwindows);
	jw_open(j, "conservation", '{', true);
	jw_bool(j, "ok", r->conserved);
	jw_str(j, "error", r->conserved ? NULL : r->conservation_error);
	jw_close(j, '}');
	json_counts(j, "total", &r->total);
	jw_num(j, "throughput_rps", sim__throughput(r, &r->total));
	jw_u64(j, "priority_inversions", r->priority_inversions);
	jw_i64(j, "inversion_grace_ns", r->inversion_grace_ns);
	jw_open(j, "backend", '{', true);
	jw_num(j, "utilization", r->backend_utilization);
	jw_u64(j, "queue_max", r->backend_queue_max);
	jw_close(j, '}');
	jw_u64(j, "events", r->events);
	if (r->mode != SIM_MODE_VIRTUAL) {
		jw_num(j, "wall_s", r->wall_s);
		jw_num(j, "cpu_s", r->cpu_s);
	}

	jw_open(j, "bands", '[', false);
	for (size_t b = 0; b < r->nbands; b++) {
		const struct sim_band_result *band = &r->bands[b];
		jw_open(j, NULL, '{', false);
		jw_i64(j, "priority", band->priority);
		jw_u64(j, "flows", band->nflows);
		json_counts(j, "counts", &band->c);
		jw_num(j, "throughput_rps", sim__throughput(r, &band->c));
		json_queue(j, &band->queue_ns);
		jw_num(j, "jain_mean", band->jain_mean);
		jw_num(j, "jain_min", sim__jain_min(r, band));
		jw_u64(j, "inversions", band->inversions);
		jw_open(j, "win_depth", '[', true);
		for (size_t w = 0; band->win_depth && w < r->nwindows; w++)
			jw_u64(j, NULL, band->win_depth[w]);
		jw_close(j, ']');
		jw_open(j, "win_depth_max", '[', true);
		for (size_t w = 0; band->win_depth_max && w < r->nwindows; w++)
			jw_u64(j, NULL, band->win_depth_max[w]);
		jw_close(j, ']');
		jw_open(j, "win_jain", '[', true);
		for (size_t w = 0; band->win_jain && w < r->nwindows; w++)
			jw_num(j, NULL, band->win_jain[w]);
		jw_close(j, ']');
		jw_close(j, '}');
	}
	jw_close(j, ']');

	jw_open(j, "flows", '[', false);
	for (size_t f = 0; f < r->nflows; f++) {
		const struct sim_flow_result *flow = &r->flows[f];
		jw_open(j, NULL, '{', false);
		jw_str(j, "id", flow->id ? flow->id : "");
		jw_i64(j, "priority", flow->priority);
		jw_u64(j, "weight", flow->weight);
		jw_u64(j, "band", flow->band);
		json_counts(j, "counts", &flow->c);
		jw_num(j, "throughput_rps", sim__throughput(r, &flow->c));
		json_queue(j, &flow->queue_ns);
		jw_open(j, "win_bytes", '[', true);
		for (size_t w = 0; flow->win_bytes && w < r->nwindows; w++)
			jw_u64(j, NULL, flow->win_bytes[w]);
		jw_close(j, ']');
		jw_open(j, "win_share", '[', true);
		for (size_t w = 0; flow->win_share && w < r->nwindows; w++)
			jw_num(j, NULL, flow->win_share[w]);
		jw_close(j, ']');
		jw_close(j, '}');
	}
	jw_close(j, ']');
	jw_close(j, '}');
}

void
sim_report_json(FILE *out, const struct sim_result *r)
{
	struct jw j = {.out = out, .first = true};
	json_result(&j, NULL, r);
	fputc('\n', out);
}

void
sim_report_json_compare(FILE *out, const char *const *names,
			const struct sim_result *const *rs, size_t n)
{
	struct jw j = {.out = out, .first = true};
	jw_open(&j, NULL, '{', false);
	jw_str(&j, "format", "flowq-sim.compare.v1");
	jw_open(&j, "variants", '[', false);
	for (size_t i = 0; i < n; i++) {
		jw_open(&j, NULL, '{', false);
		jw_str(&j, "name", names[i]);
		json_result(&j, "result", rs[i]);
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	jw_close(&j, '}');
	fputc('\n', out);
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                      */
/* ------------------------------------------------------------------------ */

static void
csv_num(FILE *out, double v)
{
	char buf[SIM_FMT_MAX];
	fputc(',', out);
	if (isfinite(v)) {
		sim__fmt_num(buf, v, 6);
		fputs(buf, out);
	}
}

static void
csv_counts(FILE *out, const struct sim_counts *c)
{
	fprintf(out,
		",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64,
		c->offered, c->rejected_capacity, c->rejected_other, c->dispatched,
		c->expired, c->cancelled, c->displaced, c->shutdown, c->completed,
		c->offered_bytes, c->dispatched_bytes);
}

/* ",n,mean,p50,p90,p99,p999,max" (all but n empty when n is 0). */
static void
csv_qsum(FILE *out, const struct sim_qsum *q)
{
	fprintf(out, ",%zu", q->n);
	if (q->n)
		fprintf(out,
			",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
			",%" PRId64,
			(int64_t)llround(q->mean), q->p50, q->p90, q->p99, q->p999,
			q->max);
	else
		fputs(",,,,,,", out);
}

static void
csv_common(FILE *out, const struct sim_result *r, const struct sim_counts *c,
	   const struct sim_samples *s)
{
	csv_counts(out, c);
	csv_num(out, sim__throughput(r, c));
	struct sim_qsum q;
	sim__qsum(s, &q);
	csv_qsum(out, &q);
}

void
sim_report_csv(FILE *out, const struct sim_result *r)
{
	fputs("kind,id,priority,band,weight,flows,offered,rejected_capacity,rejected_"
	      "other,"
	      "dispatched,expired,cancelled,displaced,shutdown,completed,offered_bytes,"
	      "dispatched_bytes,throughput_rps,queue_n,queue_mean_ns,queue_p50_ns,queue_"
	      "p90_ns,"
	      "queue_p99_ns,queue_p999_ns,queue_max_ns,jain_mean,jain_min,inversions\r\n",
	      out);
	for (size_t b = 0; b < r->nbands; b++) {
		const struct sim_band_result *band = &r->bands[b];
		fprintf(out, "band,,%" PRId32 ",%zu,,%zu", band->priority, b,
			band->nflows);
		csv_common(out, r, &band->c, &band->queue_ns);
		csv_num(out, band->jain_mean);
		csv_num(out, sim__jain_min(r, band));
		fprintf(out, ",%" PRIu64 "\r\n", band->inversions);
	}
	for (size_t f = 0; f < r->nflows; f++) {
		const struct sim_flow_result *flow = &r->flows[f];
		fputs("flow,", out);
		sim__csv_str(out, flow->id ? flow->id : "");
		fprintf(out, ",%" PRId32 ",%zu,%" PRIu32 ",", flow->priority, flow->band,
			flow->weight);
		csv_common(out, r, &flow->c, &flow->queue_ns);
		fputs(",,,\r\n", out);
	}
}

/* ------------------------------------------------------------------------ */
/* Tune results: JSON and CSV                                               */
/* ------------------------------------------------------------------------ */

void
sim_report_tune_json(FILE *out, const struct sim_tune_result *t)
{
	struct jw j = {.out = out, .first = true};
	jw_open(&j, NULL, '{', false);
	jw_str(&j, "format", "flowq-sim.tune.v1");
	jw_str(&j, "spec", t->spec_name);
	jw_str(&j, "objective", t->objective);
	jw_bool(&j, "maximize", t->maximize);
	jw_open(&j, "keys", '[', true);
	for (size_t k = 0; k < t->nkeys; k++)
		jw_str(&j, NULL, t->keys[k]);
	jw_close(&j, ']');
	if (t->nrows && !isnan(t->rows[0].objective)) {
		jw_open(&j, "best", '[', true);
		for (size_t k = 0; k < t->nkeys; k++)
			jw_str(&j, NULL, t->rows[0].values[k]);
		jw_close(&j, ']');
	} else {
		jw_str(&j, "best", NULL);
	}
	jw_open(&j, "runs", '[', false);
	for (size_t i = 0; i < t->nrows; i++) {
		const struct sim_tune_row *row = &t->rows[i];
		jw_open(&j, NULL, '{', false);
		jw_u64(&j, "rank", i + 1);
		jw_open(&j, "values", '[', true);
		for (size_t k = 0; k < t->nkeys; k++)
			jw_str(&j, NULL, row->values[k]);
		jw_close(&j, ']');
		jw_num(&j, "objective", row->objective);
		jw_str(&j, "error", row->error);
		jw_bool(&j, "ran", row->ran);
		jw_bool(&j, "conserved", row->conserved);
		jw_i64(&j, "duration_ns", row->duration_ns);
		json_counts(&j, "total", &row->total);
		jw_num(&j, "throughput_rps",
		       sim__per_s(row->total.dispatched, row->duration_ns));
		jw_num(&j, "goodput_rps",
		       sim__per_s(row->total.completed, row->duration_ns));
		json_qsum(&j, row->queue);
		jw_num(&j, "backend_utilization", row->utilization);
		jw_u64(&j, "priority_inversions", row->inversions);
		jw_open(&j, "bands", '[', false);
		for (size_t b = 0; b < row->nbands; b++) {
			const struct sim_tune_band *band = &row->bands[b];
			jw_open(&j, NULL, '{', false);
			jw_i64(&j, "priority", band->priority);
			json_counts(&j, "counts", &band->c);
			jw_num(&j, "throughput_rps",
			       sim__per_s(band->c.dispatched, row->duration_ns));
			json_qsum(&j, band->queue);
			jw_num(&j, "jain_mean", band->jain_mean);
			jw_u64(&j, "inversions", band->inversions);
			jw_close(&j, '}');
		}
		jw_close(&j, ']');
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	jw_close(&j, '}');
	fputc('\n', out);
}

/* The columns a tune CSV row starts with: rank, kind, the values. */
static void
csv_tune_head(FILE *out, const struct sim_tune_result *t, size_t i, const char *kind)
{
	fprintf(out, "%zu,%s", i + 1, kind);
	for (size_t k = 0; k < t->nkeys; k++) {
		fputc(',', out);
		sim__csv_str(out, t->rows[i].values[k]);
	}
}

void
sim_report_tune_csv(FILE *out, const struct sim_tune_result *t)
{
	fputs("rank,kind", out);
	for (size_t k = 0; k < t->nkeys; k++) {
		fputc(',', out);
		sim__csv_str(out, t->keys[k]);
	}
	fputs(",objective,conserved,error,priority,offered,rejected_capacity,"
	      "rejected_other,dispatched,expired,cancelled,displaced,shutdown,completed,"
	      "offered_bytes,dispatched_bytes,throughput_rps,goodput_rps,queue_n,"
	      "queue_mean_ns,queue_p50_ns,queue_p90_ns,queue_p99_ns,queue_p999_ns,"
	      "queue_max_ns,jain_mean,inversions,backend_utilization\r\n",
	      out);
	for (size_t i = 0; i < t->nrows; i++) {
		const struct sim_tune_row *row = &t->rows[i];
		csv_tune_head(out, t, i, "run");
		csv_num(out, row->objective);
		fputs(row->conserved ? ",true," : ",false,", out);
		if (row->error)
			sim__csv_str(out, row->error);
		fputc(',', out); /* no priority: the whole run */
		csv_counts(out, &row->total);
		csv_num(out, sim__per_s(row->total.dispatched, row->duration_ns));
		csv_num(out, sim__per_s(row->total.completed, row->duration_ns));
		csv_qsum(out, &row->queue);
		fprintf(out, ",,%" PRIu64, row->inversions);
		csv_num(out, row->utilization);
		fputs("\r\n", out);
		for (size_t b = 0; b < row->nbands; b++) {
			const struct sim_tune_band *band = &row->bands[b];
			csv_tune_head(out, t, i, "band");
			fprintf(out, ",,,,%" PRId32, band->priority);
			csv_counts(out, &band->c);
			csv_num(out, sim__per_s(band->c.dispatched, row->duration_ns));
			csv_num(out, sim__per_s(band->c.completed, row->duration_ns));
			csv_qsum(out, &band->queue);
			csv_num(out, band->jain_mean);
			fprintf(out, ",%" PRIu64 ",\r\n", band->inversions);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Comparison table                                                         */
/* ------------------------------------------------------------------------ */

/* Lines of each block of the comparison (a block per band, and the total). */
enum cmp_line {
	CMP_DISPATCHED,
	CMP_P99,
	CMP_SHED,
	CMP_EXPIRED,
	CMP_REJECTED,
	CMP_JAIN,
	CMP_NLINES,
};

static const char *const cmp_line_names[CMP_NLINES] = {
	"dispatched", "p99 queue time", "shed (displaced)",
	"expired",    "rejected",       "Jain's index"};

/* The cell of one variant: band @p prio's, or the total's. */
static void
cmp_cell(char *cell, const struct sim_result *r, int32_t prio, bool total,
	 enum cmp_line line)
{
	const struct sim_counts *c;
	const struct sim_band_result *band = NULL;
	if (total) {
		c = &r->total;
	} else {
		size_t b = sim__band_by_prio(r, prio);
		if (b == SIZE_MAX) {
			strcpy(cell, "-");
			return;
		}
		band = &r->bands[b];
		c = &band->c;
	}
	switch (line) {
	case CMP_DISPATCHED:
		cell_u64(cell, c->dispatched);
		break;
	case CMP_P99:
		cell_dur(cell, sim_quantile(&band->queue_ns, 0.99), band->queue_ns.n);
		break;
	case CMP_SHED:
		cell_u64(cell, c->displaced);
		break;
	case CMP_EXPIRED:
		cell_u64(cell, c->expired);
		break;
	case CMP_REJECTED:
		cell_u64(cell, sim__rejected(c));
		break;
	case CMP_JAIN:
		cell_jain(cell, band->jain_mean);
		break;
	default:
		cell[0] = '\0';
	}
}

struct cmp_args {
	const char *const *names;
	const struct sim_result *const *rs;
	size_t from, to; /* the variants in this table */
	const int32_t *prio;
	size_t nprio;
};

static void
gen_compare(struct tt *t, const void *arg)
{
	const struct cmp_args *a = arg;
	char cells[TT_MAXCOLS][TT_CELL];
	/* sim__table_compare puts at most TT_MAXCOLS - 1 variants in a
	 * table; said here too, so that the compiler sees the bound (GCC 12's
	 * -O3 -Wstringop-overflow does not). */
	size_t nv = a->to - a->from < TT_MAXCOLS ? a->to - a->from : TT_MAXCOLS - 1;
	strcpy(cells[0], "");
	for (size_t i = 0; i < nv; i++)
		sim__term_str(cells[1 + i], TT_CELL, a->names[a->from + i],
			      t->html ? 40 : 20);
	tt_row(t, cells, TT_HEAD);
	for (size_t p = 0; p <= a->nprio; p++) {
		bool total = p == a->nprio;
		if (total)
			strcpy(cells[0], "total");
		else
			snprintf(cells[0], TT_CELL, "band %" PRId32, a->prio[p]);
		for (size_t i = 0; i < nv; i++)
			cells[1 + i][0] = '\0';
		tt_row(t, cells, total ? TT_TOTAL : TT_BAND);
		for (size_t line = 0; line < CMP_NLINES; line++) {
			if (total && (line == CMP_P99 || line == CMP_JAIN))
				continue; /* no samples or windows for the total */
			snprintf(cells[0], TT_CELL, "  %s", cmp_line_names[line]);
			for (size_t i = 0; i < nv; i++)
				cmp_cell(cells[1 + i], a->rs[a->from + i],
					 total ? 0 : a->prio[p], total, line);
			tt_row(t, cells, TT_FLOW);
		}
	}
	strcpy(cells[0], "conservation");
	for (size_t i = 0; i < nv; i++)
		strcpy(cells[1 + i], a->rs[a->from + i]->conserved ? "OK" : "FAILED");
	tt_row(t, cells, TT_FLOW);
}

/* Text: as many variants per table as fit in 100 columns (each variant's
 * column measured alone, packed greedily; at least one per table). */
#define CMP_TEXT_COLUMNS 100

void
sim__table_compare(FILE *out, const char *const *names,
		   const struct sim_result *const *rs, size_t n, bool html)
{
	int32_t prio[FLOWQ_MAX_BANDS];
	size_t nprio = sim__band_union(rs, n, prio, FLOWQ_MAX_BANDS);
	size_t from = 0;
	while (from < n) {
		size_t to = from, used = 0;
		while (to < n && to - from < TT_MAXCOLS - 1) {
			struct cmp_args one = {names, rs, to, to + 1, prio, nprio};
			struct tt m = tt_make(out, false, 2);
			m.measure = true;
			gen_compare(&m, &one);
			if (used == 0)
				used = m.width[0];
			if (!html && to > from &&
			    used + 2 + m.width[1] > CMP_TEXT_COLUMNS)
				break;
			used += 2 + m.width[1];
			to++;
		}
		struct cmp_args a = {names, rs, from, to, prio, nprio};
		struct tt t = tt_make(out, html, 1 + to - from);
		if (!html && from > 0)
			fputc('\n', out);
		tt_print(&t, "compare", gen_compare, &a);
		from = to;
	}
}

void
sim_report_compare(FILE *out, const char *const *names,
		   const struct sim_result *const *rs, size_t n)
{
	fprintf(out,
		"comparison of %zu variants, per band: dispatched, p99 queue time, "
		"shed,\n"
		"expired, rejected, Jain's index\n\n",
		n);
	sim__table_compare(out, names, rs, n, false);
	fputc('\n', out);
	bool ok = true;
	for (size_t v = 0; v < n; v++)
		if (!rs[v]->conserved) {
			char nm[TT_CELL];
			sim__term_str(nm, sizeof(nm), names[v], 40);
			fprintf(out, "conservation: FAILED in %s: %s\n", nm,
				rs[v]->conservation_error);
			ok = false;
		}
	if (ok)
		fprintf(out, "conservation: OK in every variant\n");
}
