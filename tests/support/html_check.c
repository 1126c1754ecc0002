/*
 * html_check.c: see html_check.h. One pass over the text with a stack of
 * open element names (depth capped at 256).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "html_check.h"
#include "utf8_seq.h"

#define HC_MAXDEPTH 256
#define HC_MAXNAME  32
#define HC_MAXATTRS 32

struct hc {
	const char *s;
	size_t len, pos;
	char *err;
	size_t errsz;
	char stack[HC_MAXDEPTH][HC_MAXNAME];
	size_t depth;
	size_t svg; /* open <svg> elements */
};

static int
fail(struct hc *h, const char *what, const char *detail)
{
	size_t line = 1;
	for (size_t i = 0; i < h->pos && i < h->len; i++)
		line += h->s[i] == '\n';
	snprintf(h->err, h->errsz, "line %zu: %s%s%s", line, what, detail ? ": " : "",
		 detail ? detail : "");
	return -1;
}

static bool
is_void(const char *name)
{
	static const char *const v[] = {"area",   "base",  "br",    "col",  "embed",
					"hr",     "img",   "input", "link", "meta",
					"source", "track", "wbr",   NULL};
	for (size_t i = 0; v[i]; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static bool
utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n)
		if ((n = test_utf8_seq(s + i, len - i)) == 0)
			return false;
	return true;
}

/* An '&' at pos: a known entity; moves past it. */
static int
entity(struct hc *h)
{
	static const char *const named[] = {"amp",  "lt",   "gt", "quot",
					    "apos", "nbsp", NULL};
	size_t p = h->pos + 1;
	if (p < h->len && h->s[p] == '#') {
		p++;
		bool hex = p < h->len && (h->s[p] == 'x' || h->s[p] == 'X');
		p += hex;
		size_t d0 = p;
		while (p < h->len &&
		       (hex ? strchr("0123456789abcdefABCDEF", h->s[p]) != NULL
			    : (h->s[p] >= '0' && h->s[p] <= '9')) &&
		       h->s[p])
			p++;
		if (p == d0 || p >= h->len || h->s[p] != ';')
			return fail(h, "bad character reference", NULL);
		h->pos = p + 1;
		return 0;
	}
	for (size_t i = 0; named[i]; i++) {
		size_t n = strlen(named[i]);
		if (h->len - p > n && memcmp(h->s + p, named[i], n) == 0 &&
		    h->s[p + n] == ';') {
			h->pos = p + n + 1;
			return 0;
		}
	}
	return fail(h, "'&' that starts no entity", NULL);
}

/* Text up to the next '<' (or, in raw text elements, up to "</name"). */
static int
text(struct hc *h)
{
	while (h->pos < h->len && h->s[h->pos] != '<') {
		char c = h->s[h->pos];
		if (c == '>')
			return fail(h, "raw '>' in text", NULL);
		if (c == '&') {
			if (entity(h))
				return -1;
			continue;
		}
		h->pos++;
	}
	return 0;
}

static bool
name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first &&
		((c >= '0' && c <= '9') || c == '-' || c == ':' || c == '_' || c == '.'));
}

static size_t
name(struct hc *h, char *buf)
{
	size_t n = 0;
	while (h->pos < h->len && name_char(h->s[h->pos], n == 0) && n + 1 < HC_MAXNAME)
		buf[n++] = h->s[h->pos++];
	buf[n] = '\0';
	return n;
}

static void
skip_ws(struct hc *h)
{
	while (h->pos < h->len && strchr(" \t\r\n", h->s[h->pos]) && h->s[h->pos])
		h->pos++;
}

static int
start_tag(struct hc *h)
{
	char tag[HC_MAXNAME], attrs[HC_MAXATTRS][HC_MAXNAME];
	size_t nattrs = 0;
	h->pos++; /* '<' */
	if (!name(h, tag))
		return fail(h, "bad tag name", NULL);
	if (strcmp(tag, "script") == 0)
		return fail(h, "script element", NULL);
	for (;;) {
		bool space = h->pos < h->len && strchr(" \t\r\n", h->s[h->pos]) &&
			     h->s[h->pos];
		skip_ws(h);
		if (h->pos >= h->len)
			return fail(h, "unterminated tag", tag);
		if (h->s[h->pos] == '>' || h->s[h->pos] == '/')
			break;
		if (!space)
			return fail(h, "attributes must be separated by white space",
				    tag);
		char an[HC_MAXNAME];
		if (!name(h, an))
			return fail(h, "bad attribute name", tag);
		for (size_t i = 0; i < nattrs; i++)
			if (strcmp(attrs[i], an) == 0)
				return fail(h, "duplicate attribute", an);
		if (nattrs < HC_MAXATTRS)
			strcpy(attrs[nattrs++], an);
		if (h->pos + 1 >= h->len || h->s[h->pos] != '=' ||
		    h->s[h->pos + 1] != '"')
			return fail(h, "attribute value not double-quoted", an);
		h->pos += 2;
		while (h->pos < h->len && h->s[h->pos] != '"') {
			char c = h->s[h->pos];
			if (c == '<' || c == '>')
				return fail(h, "raw '<' or '>' in an attribute value",
					    an);
			if (c == '&') {
				if (entity(h))
					return -1;
				continue;
			}
			h->pos++;
		}
		if (h->pos >= h->len)
			return fail(h, "unterminated attribute value", an);
		h->pos++;
	}
	bool self = h->s[h->pos] == '/';
	if (self) {
		h->pos++;
		if (h->pos >= h->len || h->s[h->pos] != '>')
			return fail(h, "'/' not followed by '>'", tag);
	}
	h->pos++;
	if (is_void(tag)) {
		if (!self)
			return fail(h, "void element not written <x/>", tag);
		return 0;
	}
	if (self) {
		if (h->svg == 0)
			return fail(h,
				    "self-closed HTML element (an HTML parser leaves it "
				    "open)",
				    tag);
		return 0;
	}
	if (h->depth == HC_MAXDEPTH)
		return fail(h, "nested too deep", tag);
	strcpy(h->stack[h->depth++], tag);
	h->svg += strcmp(tag, "svg") == 0;
	if (strcmp(tag, "style") == 0) {
		/* Raw text: no markup characters at all in ours. */
		const char *end = strstr(h->s + h->pos, "</style>");
		if (!end)
			return fail(h, "unterminated style", NULL);
		for (const char *p = h->s + h->pos; p < end; p++)
			if (*p == '<' || *p == '>' || *p == '&')
				return fail(h, "markup character in style", NULL);
		h->pos = (size_t)(end - h->s);
	}
	return 0;
}

static int
end_tag(struct hc *h)
{
	char tag[HC_MAXNAME];
	h->pos += 2;
	if (!name(h, tag))
		return fail(h, "bad end tag", NULL);
	skip_ws(h);
	if (h->pos >= h->len || h->s[h->pos] != '>')
		return fail(h, "unterminated end tag", tag);
	h->pos++;
	if (h->depth == 0)
		return fail(h, "end tag with nothing open", tag);
	if (strcmp(h->stack[h->depth - 1], tag) != 0) {
		char both[2 * HC_MAXNAME + 16];
		snprintf(both, sizeof(both), "</%s> closes <%s>", tag,
			 h->stack[h->depth - 1]);
		return fail(h, "tags out of order", both);
	}
	h->depth--;
	h->svg -= strcmp(tag, "svg") == 0;
	return 0;
}

int
html_check(const char *s, size_t len, char *err, size_t errsz)
{
	static struct hc zero;
	struct hc h = zero;
	h.s = s;
	h.len = len;
	h.err = err;
	h.errsz = errsz;
	if (errsz)
		err[0] = '\0';
	if (!utf8_valid((const unsigned char *)s, len))
		return fail(&h, "not valid UTF-8", NULL);
	if (len < 15 || memcmp(s, "<!DOCTYPE html>", 15) != 0)
		return fail(&h, "no <!DOCTYPE html> first", NULL);
	h.pos = 15;
	while (h.pos < len) {
		if (text(&h))
			return -1;
		if (h.pos >= len)
			break;
		if (len - h.pos >= 4 && memcmp(s + h.pos, "<!--", 4) == 0) {
			const char *end = strstr(s + h.pos + 4, "-->");
			if (!end)
				return fail(&h, "unterminated comment", NULL);
			h.pos = (size_t)(end - s) + 3;
		} else if (len - h.pos >= 2 && s[h.pos + 1] == '/') {
			if (end_tag(&h))
				return -1;
		} else if (start_tag(&h)) {
			return -1;
		}
	}
	if (h.depth)
		return fail(&h, "left open", h.stack[h.depth - 1]);
	return 0;
}
