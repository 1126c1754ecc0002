/*
 * Strict parser of the Prometheus text exposition format 0.0.4, for tests
 * (see prom_parse.h for what it checks). Line checks run while parsing;
 * the duplicate and histogram checks run on the whole document afterwards,
 * since a histogram's _count may come after its buckets.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_parse.h"

/* Per family: has it had samples, and did another family's samples follow
 * them (so that it may not have more)? */
enum fam_state {
	FAM_NO_SAMPLES,
	FAM_OPEN,
	FAM_CLOSED,
};

struct parser {
	struct prom_doc doc;
	size_t fam_cap, samp_cap;
	enum fam_state *fam_state; /* parallel to doc.families */
	bool have_current;
	size_t current; /* family of the last sample */
	struct prom_error *err;
	unsigned line;
};

/* The part of the current line not yet parsed. */
struct cur {
	const char *s, *e;
};

static int
fail(struct parser *p, enum prom_check check, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(struct parser *p, enum prom_check check, unsigned line, const char *fmt, ...)
{
	va_list ap;

	p->err->check = check;
	p->err->line = line;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return check == PROM_NOMEM ? -ENOMEM : -EINVAL;
}

static char *
dup_range(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static size_t
skip_blanks(struct cur *c)
{
	size_t n = 0;

	while (c->s < c->e && is_blank(*c->s)) {
		c->s++;
		n++;
	}
	return n;
}

static bool
is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, with @label, a label name
 * ([a-zA-Z_][a-zA-Z0-9_]*). Returns its length, 0 if there is none. */
static size_t
scan_name(const struct cur *c, bool label)
{
	const char *q = c->s;

	if (q >= c->e || !(is_alpha_(*q) || (!label && *q == ':')))
		return 0;
	while (q < c->e && (is_alpha_(*q) || is_digit(*q) || (!label && *q == ':')))
		q++;
	return (size_t)(q - c->s);
}

/* Whether @s[0..n) is valid UTF-8 (no overlong forms, no surrogates, at
 * most U+10FFFF). */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char b = s[i];
		uint32_t cp;
		size_t len;

		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xe0) == 0xc0) {
			len = 2;
			cp = b & 0x1f;
		} else if ((b & 0xf0) == 0xe0) {
			len = 3;
			cp = b & 0x0f;
		} else if ((b & 0xf8) == 0xf0) {
			len = 4;
			cp = b & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/*
 * Unescape @c's text into a new string: with @quoted, a label value up to
 * its closing '"' (escapes \\ \" \n), else HELP text up to the line end
 * (escapes \\ \n). On success @c is past the text and the closing quote.
 */
static int
unescape(struct parser *p, struct cur *c, bool quoted, char **r_out)
{
	size_t cap = (size_t)(c->e - c->s) + 1, n = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return fail(p, PROM_NOMEM, p->line, "out of memory");
	for (;;) {
		char ch;

		if (c->s >= c->e) {
			if (!quoted)
				break;
			free(out);
			return fail(p, PROM_SYNTAX, p->line, "unterminated label value");
		}
		ch = *c->s++;
		if (quoted && ch == '"')
			break;
		if (ch == '\\') {
			char x = c->s < c->e ? *c->s++ : '\0';

			if (x == '\\')
				ch = '\\';
			else if (x == 'n')
				ch = '\n';
			else if (x == '"' && quoted)
				ch = '"';
			else {
				free(out);
				return fail(p, PROM_SYNTAX, p->line,
					    "bad escape \\%c in %s", x ? x : '0',
					    quoted ? "label value" : "HELP");
			}
		}
		out[n++] = ch;
	}
	out[n] = '\0';
	/* No NUL can get here: prom_parse() rejects lines that hold one. */
	if (!utf8_valid((const unsigned char *)out, n)) {
		free(out);
		return fail(p, PROM_SYNTAX, p->line, "%s is not valid UTF-8",
			    quoted ? "label value" : "HELP text");
	}
	*r_out = out;
	return 0;
}

/* A sample value: a decimal float, +Inf, -Inf or NaN, nothing else. */
static bool
parse_value(const char *s, size_t n, double *r)
{
	size_t i = 0, digits = 0;
	char buf[64];

	if ((n == 4 && memcmp(s, "+Inf", 4) == 0) ||
	    (n == 3 && memcmp(s, "Inf", 3) == 0)) {
		*r = INFINITY;
		return true;
	}
	if (n == 4 && memcmp(s, "-Inf", 4) == 0) {
		*r = -INFINITY;
		return true;
	}
	if (n == 3 && memcmp(s, "NaN", 3) == 0) {
		*r = NAN;
		return true;
	}
	if (n == 0 || n >= sizeof(buf))
		return false;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < n && is_digit(s[i])) {
		i++;
		digits++;
	}
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i])) {
			i++;
			digits++;
		}
	}
	if (digits == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t exp_digits = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && is_digit(s[i])) {
			i++;
			exp_digits++;
		}
		if (exp_digits == 0)
			return false;
	}
	if (i != n)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*r = strtod(buf, NULL);
	return true;
}

static bool
parse_timestamp(const char *s, size_t n, int64_t *r)
{
	char buf[32], *end;
	long long v;

	if (n == 0 || n >= sizeof(buf))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]) && !(i == 0 && s[i] == '-' && n > 1))
			return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0)
		return false;
	*r = v;
	return true;
}

static long
family_index(const struct parser *p, const char *name, size_t n)
{
	for (size_t i = 0; i < p->doc.nfamilies; i++)
		if (strlen(p->doc.families[i].name) == n &&
		    memcmp(p->doc.families[i].name, name, n) == 0)
			return (long)i;
	return -1;
}

static int
family_add(struct parser *p, const char *name, size_t n, size_t *r_idx)
{
	struct prom_family *f;

	if (p->doc.nfamilies == p->fam_cap) {
		size_t cap = p->fam_cap ? 2 * p->fam_cap : 16;
		struct prom_family *nf = realloc(p->doc.families, cap * sizeof(*nf));
		enum fam_state *ns;

		if (nf == NULL)
			return fail(p, PROM_NOMEM, p->line, "out of memory");
		p->doc.families = nf;
		ns = realloc(p->fam_state, cap * sizeof(*ns));
		if (ns == NULL)
			return fail(p, PROM_NOMEM, p->line, "out of memory");
		p->fam_state = ns;
		p->fam_cap = cap;
	}
	f = &p->doc.families[p->doc.nfamilies];
	memset(f, 0, sizeof(*f));
	f->name = dup_range(name, n);
	if (f->name == NULL)
		return fail(p, PROM_NOMEM, p->line, "out of memory");
	p->fam_state[p->doc.nfamilies] = FAM_NO_SAMPLES;
	*r_idx = p->doc.nfamilies++;
	return 0;
}

static bool
ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* "# HELP ..." or "# TYPE ..." (after "#", blanks and the keyword). */
static int
parse_decl(struct parser *p, struct cur *c, bool help)
{
	static const char *const types[] = {
		[PROM_UNTYPED] = "untyped", [PROM_COUNTER] = "counter",
		[PROM_GAUGE] = "gauge",     [PROM_HISTOGRAM] = "histogram",
		[PROM_SUMMARY] = "summary",
	};
	const char *name;
	size_t n, idx;
	long found;
	int rc;

	if (skip_blanks(c) == 0)
		return fail(p, PROM_SYNTAX, p->line, "no blank after %s",
			    help ? "HELP" : "TYPE");
	name = c->s;
	n = scan_name(c, false);
	if (n == 0)
		return fail(p, PROM_SYNTAX, p->line, "bad metric name in %s",
			    help ? "HELP" : "TYPE");
	c->s += n;
	if (c->s < c->e && !is_blank(*c->s))
		return fail(p, PROM_SYNTAX, p->line, "bad metric name in %s",
			    help ? "HELP" : "TYPE");
	found = family_index(p, name, n);
	if (found >= 0 && p->fam_state[found] != FAM_NO_SAMPLES)
		return fail(p, PROM_LATE_DECL, p->line, "%s of %s after its samples",
			    help ? "HELP" : "TYPE", p->doc.families[found].name);
	if (help) {
		char *text;

		if (found >= 0 && p->doc.families[found].help != NULL)
			return fail(p, PROM_REDECLARED, p->line, "second HELP for %s",
				    p->doc.families[found].name);
		skip_blanks(c);
		rc = unescape(p, c, false, &text);
		if (rc != 0)
			return rc;
		if (found < 0) {
			rc = family_add(p, name, n, &idx);
			if (rc != 0) {
				free(text);
				return rc;
			}
			found = (long)idx;
		}
		p->doc.families[found].help = text;
		return 0;
	}
	if (found >= 0 && p->doc.families[found].type_line != 0)
		return fail(p, PROM_REDECLARED, p->line, "second TYPE for %s",
			    p->doc.families[found].name);
	skip_blanks(c);
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		size_t k = strlen(types[t]);

		if ((size_t)(c->e - c->s) < k || memcmp(c->s, types[t], k) != 0)
			continue;
		struct cur rest = {c->s + k, c->e};

		skip_blanks(&rest);
		if (rest.s != rest.e)
			continue;
		if (t == PROM_COUNTER && !ends_with(name, n, "_total"))
			return fail(p, PROM_COUNTER_NAME, p->line,
				    "counter %.*s does not end in _total", (int)n, name);
		if (found < 0) {
			rc = family_add(p, name, n, &idx);
			if (rc != 0)
				return rc;
			found = (long)idx;
		}
		p->doc.families[found].type = (enum prom_type)t;
		p->doc.families[found].type_line = p->line;
		return 0;
	}
	return fail(p, PROM_SYNTAX, p->line, "unknown TYPE for %.*s", (int)n, name);
}

/*
 * The family a sample named @name belongs to: a declared family of that
 * name, or a histogram @name minus _bucket/_sum/_count, or a summary @name
 * minus _sum/_count. -1 if none has a TYPE.
 */
static long
sample_family(const struct parser *p, const char *name)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(name);
	long f = family_index(p, name, n);

	if (f >= 0 && p->doc.families[f].type_line != 0)
		return f;
	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(suffixes[i]);

		if (!ends_with(name, n, suffixes[i]))
			continue;
		f = family_index(p, name, n - k);
		if (f < 0 || p->doc.families[f].type_line == 0)
			continue;
		if (p->doc.families[f].type == PROM_HISTOGRAM ||
		    (p->doc.families[f].type == PROM_SUMMARY && i > 0))
			return f;
	}
	return -1;
}

static bool
parse_le(const char *s, double *r)
{
	return parse_value(s, strlen(s), r) && !isnan(*r);
}

static void
sample_free(struct prom_sample *s)
{
	for (size_t i = 0; i < s->nlabels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].value);
	}
	free(s->labels);
	free(s->name);
}

static int
parse_labels(struct parser *p, struct cur *c, struct prom_sample *s)
{
	size_t cap = 0;

	c->s++; /* '{' */
	for (;;) {
		const char *name;
		size_t n;
		char *value;
		int rc;

		if (c->s < c->e && *c->s == '}') {
			c->s++;
			return 0;
		}
		name = c->s;
		n = scan_name(c, true);
		if (n == 0)
			return fail(p, PROM_SYNTAX, p->line, "bad label name");
		if (n >= 2 && name[0] == '_' && name[1] == '_')
			return fail(p, PROM_SYNTAX, p->line, "reserved label name %.*s",
				    (int)n, name);
		c->s += n;
		if (c->s + 1 >= c->e || c->s[0] != '=' || c->s[1] != '"')
			return fail(p, PROM_SYNTAX, p->line,
				    "expected =\" after label %.*s", (int)n, name);
		c->s += 2;
		for (size_t i = 0; i < s->nlabels; i++)
			if (strlen(s->labels[i].name) == n &&
			    memcmp(s->labels[i].name, name, n) == 0)
				return fail(p, PROM_DUP_LABEL, p->line,
					    "label %.*s twice in one sample", (int)n,
					    name);
		rc = unescape(p, c, true, &value);
		if (rc != 0)
			return rc;
		if (s->nlabels == cap) {
			size_t ncap = cap ? 2 * cap : 4;
			struct prom_label *nl = realloc(s->labels, ncap * sizeof(*nl));

			if (nl == NULL) {
				free(value);
				return fail(p, PROM_NOMEM, p->line, "out of memory");
			}
			s->labels = nl;
			cap = ncap;
		}
		s->labels[s->nlabels].name = dup_range(name, n);
		s->labels[s->nlabels].value = value;
		s->nlabels++;
		if (s->labels[s->nlabels - 1].name == NULL)
			return fail(p, PROM_NOMEM, p->line, "out of memory");
		if (c->s < c->e && *c->s == ',') {
			c->s++; /* a trailing comma before '}' is allowed */
			continue;
		}
		if (c->s < c->e && *c->s == '}')
			continue;
		return fail(p, PROM_SYNTAX, p->line,
			    "expected , or } after a label value");
	}
}

/* The next blank-delimited token of @c (possibly empty). */
static struct cur
next_token(struct cur *c)
{
	struct cur t = {c->s, c->s};

	while (c->s < c->e && !is_blank(*c->s))
		c->s++;
	t.e = c->s;
	return t;
}

/* The part of a sample line after its name and labels: " value [ts]". */
static int
parse_sample_value(struct parser *p, struct cur *c, struct prom_sample *s)
{
	struct cur tok;

	if (skip_blanks(c) == 0)
		return fail(p, PROM_SYNTAX, p->line, "no blank before the value of %s",
			    s->name);
	tok = next_token(c);
	if (!parse_value(tok.s, (size_t)(tok.e - tok.s), &s->value))
		return fail(p, PROM_SYNTAX, p->line, "bad value of %s: %.*s", s->name,
			    (int)(tok.e - tok.s), tok.s);
	skip_blanks(c);
	if (c->s == c->e)
		return 0;
	tok = next_token(c);
	if (!parse_timestamp(tok.s, (size_t)(tok.e - tok.s), &s->timestamp_ms))
		return fail(p, PROM_SYNTAX, p->line, "bad timestamp of %s: %.*s", s->name,
			    (int)(tok.e - tok.s), tok.s);
	s->has_timestamp = true;
	skip_blanks(c);
	if (c->s != c->e)
		return fail(p, PROM_SYNTAX, p->line, "text after the timestamp of %s",
			    s->name);
	return 0;
}

/* Assign @s to its family and check the family rules that apply per line. */
static int
place_sample(struct parser *p, struct prom_sample *s)
{
	long f = sample_family(p, s->name);

	if (f < 0)
		return fail(p, PROM_NO_TYPE, p->line, "sample %s has no TYPE before it",
			    s->name);
	s->family = (size_t)f;
	if (p->fam_state[f] == FAM_CLOSED)
		return fail(p, PROM_SPLIT_FAMILY, p->line,
			    "sample %s: family %s resumed after another family", s->name,
			    p->doc.families[f].name);
	if (p->have_current && p->current != (size_t)f)
		p->fam_state[p->current] = FAM_CLOSED;
	p->fam_state[f] = FAM_OPEN;
	p->have_current = true;
	p->current = (size_t)f;
	if (p->doc.families[f].type == PROM_HISTOGRAM) {
		const char *suffix = s->name + strlen(p->doc.families[f].name);
		const char *le = prom_label(s, "le");
		double v;

		if (strcmp(suffix, "_bucket") != 0 && strcmp(suffix, "_sum") != 0 &&
		    strcmp(suffix, "_count") != 0)
			return fail(p, PROM_BAD_SUFFIX, p->line,
				    "histogram sample %s is not _bucket, _sum or _count",
				    s->name);
		if (strcmp(suffix, "_bucket") == 0 && (le == NULL || !parse_le(le, &v)))
			return fail(p, PROM_LE_MISSING, p->line,
				    "bucket %s without a numeric le label", s->name);
	}
	return 0;
}

static int
parse_sample(struct parser *p, struct cur *c)
{
	struct prom_sample s = {.line = p->line};
	size_t n = scan_name(c, false);
	int rc;

	if (n == 0)
		return fail(p, PROM_SYNTAX, p->line, "bad metric name");
	s.name = dup_range(c->s, n);
	if (s.name == NULL)
		return fail(p, PROM_NOMEM, p->line, "out of memory");
	c->s += n;
	rc = 0;
	if (c->s < c->e && *c->s == '{')
		rc = parse_labels(p, c, &s);
	if (rc == 0)
		rc = parse_sample_value(p, c, &s);
	if (rc == 0)
		rc = place_sample(p, &s);
	if (rc == 0 && p->doc.nsamples == p->samp_cap) {
		size_t cap = p->samp_cap ? 2 * p->samp_cap : 64;
		struct prom_sample *ns = realloc(p->doc.samples, cap * sizeof(*ns));

		if (ns == NULL) {
			rc = fail(p, PROM_NOMEM, p->line, "out of memory");
		} else {
			p->doc.samples = ns;
			p->samp_cap = cap;
		}
	}
	if (rc != 0) {
		sample_free(&s);
		return rc;
	}
	p->doc.samples[p->doc.nsamples++] = s;
	return 0;
}

static int
parse_line(struct parser *p, const char *s, const char *e)
{
	struct cur c = {s, e};

	if (memchr(s, '\r', (size_t)(e - s)) != NULL)
		return fail(p, PROM_SYNTAX, p->line, "carriage return");
	if (s == e)
		return 0; /* empty lines are ignored */
	if (*s == '#') {
		c.s++;
		if (skip_blanks(&c) == 0)
			return 0; /* "#..." without a blank: a comment */
		if ((size_t)(e - c.s) >= 4 &&
		    (memcmp(c.s, "HELP", 4) == 0 || memcmp(c.s, "TYPE", 4) == 0)) {
			bool help = c.s[0] == 'H';
			struct cur after = {c.s + 4, e};

			if (after.s == e || is_blank(*after.s))
				return parse_decl(p, &after, help);
		}
		return 0; /* any other comment */
	}
	return parse_sample(p, &c);
}

static bool
labels_equal(const struct prom_sample *a, const struct prom_sample *b, const char *skip)
{
	size_t na = 0, nb = 0;

	for (size_t i = 0; i < a->nlabels; i++) {
		const char *v;

		if (skip && strcmp(a->labels[i].name, skip) == 0)
			continue;
		na++;
		v = prom_label(b, a->labels[i].name);
		if (v == NULL || strcmp(v, a->labels[i].value) != 0)
			return false;
	}
	for (size_t i = 0; i < b->nlabels; i++)
		if (!(skip && strcmp(b->labels[i].name, skip) == 0))
			nb++;
	return na == nb;
}

static int
check_duplicates(struct parser *p)
{
	for (size_t i = 0; i < p->doc.nsamples; i++) {
		const struct prom_sample *a = &p->doc.samples[i];

		for (size_t j = 0; j < i; j++) {
			const struct prom_sample *b = &p->doc.samples[j];

			if (strcmp(a->name, b->name) == 0 && labels_equal(a, b, NULL))
				return fail(p, PROM_DUPLICATE, a->line,
					    "sample %s repeats line %u", a->name,
					    b->line);
		}
	}
	return 0;
}

/* One histogram series: the samples of a family with the same labels
 * other than le. */
struct series {
	const struct prom_sample *rep;
	bool has_bucket, has_inf, has_count, has_sum;
	double last_le, last_count, inf_count, count;
};

static int
check_histogram(struct parser *p, size_t fam)
{
	const char *fname = p->doc.families[fam].name;
	size_t flen = strlen(fname), nseries = 0;
	struct series *ser = calloc(p->doc.nsamples + 1, sizeof(*ser));
	int rc = 0;

	if (ser == NULL)
		return fail(p, PROM_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < p->doc.nsamples && rc == 0; i++) {
		const struct prom_sample *s = &p->doc.samples[i];
		const char *suffix = s->name + flen;
		struct series *x = NULL;

		if (s->family != fam)
			continue;
		for (size_t k = 0; k < nseries && x == NULL; k++)
			if (labels_equal(s, ser[k].rep, "le"))
				x = &ser[k];
		if (x == NULL) {
			x = &ser[nseries++];
			x->rep = s;
		}
		if (strcmp(suffix, "_count") == 0) {
			x->has_count = true;
			x->count = s->value;
		} else if (strcmp(suffix, "_sum") == 0) {
			x->has_sum = true;
		} else {
			double le;

			parse_le(prom_label(s, "le"), &le); /* checked at parse time */
			if (x->has_inf || (x->has_bucket && !(le > x->last_le)))
				rc = fail(p, PROM_LE_ORDER, s->line,
					  "%s: le=%s does not ascend in its series",
					  s->name, prom_label(s, "le"));
			else if (x->has_bucket && !(s->value >= x->last_count))
				rc = fail(p, PROM_NOT_CUMULATIVE, s->line,
					  "%s: count %g below the previous bucket's %g",
					  s->name, s->value, x->last_count);
			x->has_bucket = true;
			x->last_le = le;
			x->last_count = s->value;
			if (isinf(le) && le > 0) {
				x->has_inf = true;
				x->inf_count = s->value;
			}
		}
	}
	for (size_t k = 0; k < nseries && rc == 0; k++) {
		const struct series *x = &ser[k];

		if (!x->has_inf)
			rc = fail(p, PROM_NO_INF, x->rep->line,
				  "histogram %s: a series without le=\"+Inf\"", fname);
		else if (!x->has_count || !x->has_sum)
			rc = fail(p, PROM_COUNT_MISMATCH, x->rep->line,
				  "histogram %s: a series without _count or _sum", fname);
		else if (x->inf_count != x->count)
			rc = fail(p, PROM_COUNT_MISMATCH, x->rep->line,
				  "histogram %s: +Inf bucket %g != _count %g", fname,
				  x->inf_count, x->count);
	}
	free(ser);
	return rc;
}

int
prom_parse(const char *text, size_t len, struct prom_doc *r_doc, struct prom_error *r_err)
{
	struct prom_error local;
	struct parser p = {.err = r_err != NULL ? r_err : &local};
	const char *s = text, *end = text + len;
	int rc = 0;

	memset(p.err, 0, sizeof(*p.err));
	memset(r_doc, 0, sizeof(*r_doc));
	while (s < end && rc == 0) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		p.line++;
		if (nl == NULL) {
			rc = fail(&p, PROM_SYNTAX, p.line,
				  "the last line has no line feed");
			break;
		}
		if (memchr(s, '\0', (size_t)(nl - s)) != NULL)
			rc = fail(&p, PROM_SYNTAX, p.line, "NUL byte");
		else
			rc = parse_line(&p, s, nl);
		s = nl + 1;
	}
	if (rc == 0)
		rc = check_duplicates(&p);
	for (size_t f = 0; f < p.doc.nfamilies && rc == 0; f++)
		if (p.doc.families[f].type == PROM_HISTOGRAM)
			rc = check_histogram(&p, f);
	free(p.fam_state);
	if (rc != 0) {
		prom_doc_free(&p.doc);
		return rc;
	}
	*r_doc = p.doc;
	return 0;
}

void
prom_doc_free(struct prom_doc *doc)
{
	for (size_t i = 0; i < doc->nsamples; i++)
		sample_free(&doc->samples[i]);
	for (size_t i = 0; i < doc->nfamilies; i++) {
		free(doc->families[i].name);
		free(doc->families[i].help);
	}
	free(doc->samples);
	free(doc->families);
	memset(doc, 0, sizeof(*doc));
}

const struct prom_sample *
prom_find(const struct prom_doc *doc, const char *name, ...)
{
	const char *pairs[64][2];
	size_t npairs = 0;
	va_list ap;

	va_start(ap, name);
	for (;;) {
		const char *k = va_arg(ap, const char *);

		if (k == NULL || npairs == sizeof(pairs) / sizeof(pairs[0]))
			break;
		pairs[npairs][0] = k;
		pairs[npairs][1] = va_arg(ap, const char *);
		npairs++;
	}
	va_end(ap);
	for (size_t i = 0; i < doc->nsamples; i++) {
		const struct prom_sample *s = &doc->samples[i];
		bool match = strcmp(s->name, name) == 0 && s->nlabels == npairs;

		for (size_t k = 0; k < npairs && match; k++) {
			const char *v = prom_label(s, pairs[k][0]);

			match = v != NULL && strcmp(v, pairs[k][1]) == 0;
		}
		if (match)
			return s;
	}
	return NULL;
}

const struct prom_family *
prom_family_find(const struct prom_doc *doc, const char *name)
{
	for (size_t i = 0; i < doc->nfamilies; i++)
		if (strcmp(doc->families[i].name, name) == 0)
			return &doc->families[i];
	return NULL;
}

const char *
prom_label(const struct prom_sample *s, const char *name)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

const char *
prom_check_str(enum prom_check c)
{
	static const char *const names[] = {
		[PROM_OK] = "PROM_OK",
		[PROM_SYNTAX] = "PROM_SYNTAX",
		[PROM_NO_TYPE] = "PROM_NO_TYPE",
		[PROM_REDECLARED] = "PROM_REDECLARED",
		[PROM_LATE_DECL] = "PROM_LATE_DECL",
		[PROM_SPLIT_FAMILY] = "PROM_SPLIT_FAMILY",
		[PROM_COUNTER_NAME] = "PROM_COUNTER_NAME",
		[PROM_DUP_LABEL] = "PROM_DUP_LABEL",
		[PROM_DUPLICATE] = "PROM_DUPLICATE",
		[PROM_BAD_SUFFIX] = "PROM_BAD_SUFFIX",
		[PROM_LE_MISSING] = "PROM_LE_MISSING",
		[PROM_LE_ORDER] = "PROM_LE_ORDER",
		[PROM_NOT_CUMULATIVE] = "PROM_NOT_CUMULATIVE",
		[PROM_NO_INF] = "PROM_NO_INF",
		[PROM_COUNT_MISMATCH] = "PROM_COUNT_MISMATCH",
		[PROM_NOMEM] = "PROM_NOMEM",
	};

	if ((size_t)c < sizeof(names) / sizeof(names[0]) && names[c] != NULL)
		return names[c];
	return "unknown";
}
