/*
 * json_check.c: see json_check.h. A recursive-descent recognizer over the
 * RFC 8259 grammar; depth is capped, so input cannot drive the recursion.
 * Duplicate keys are found by comparing each key's raw bytes with the
 * object's earlier keys (quadratic per object; test inputs are small).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json_check.h"
#include "utf8_seq.h"

#define JC_MAXDEPTH 64
#define JC_MAXKEYS  256

struct jc {
	const unsigned char *s;
	size_t len, pos;
	int depth;
	char *err;
	size_t errsz;
	bool failed;
};

static int
fail(struct jc *j, const char *what)
{
	if (!j->failed)
		snprintf(j->err, j->errsz, "offset %zu: %s", j->pos, what);
	j->failed = true;
	return -1;
}

static void
ws(struct jc *j)
{
	while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
				   j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
		j->pos++;
}

static bool
lit(struct jc *j, const char *w)
{
	size_t n = strlen(w);
	if (j->len - j->pos < n || memcmp(j->s + j->pos, w, n) != 0)
		return false;
	j->pos += n;
	return true;
}

static int
hex4(struct jc *j, unsigned *r)
{
	*r = 0;
	for (int i = 0; i < 4; i++) {
		if (j->pos >= j->len)
			return fail(j, "short \\u escape");
		unsigned c = j->s[j->pos++], v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return fail(j, "bad hex digit in \\u escape");
		*r = *r << 4 | v;
	}
	return 0;
}

/* One UTF-8 sequence at pos (first byte >= 0x80). */
static int
utf8(struct jc *j)
{
	size_t n = test_utf8_seq(j->s + j->pos, j->len - j->pos);
	if (n == 0)
		return fail(j, "invalid UTF-8");
	j->pos += n;
	return 0;
}

static int
string(struct jc *j)
{
	if (j->pos >= j->len || j->s[j->pos] != '"')
		return fail(j, "expected a string");
	j->pos++;
	while (j->pos < j->len) {
		unsigned c = j->s[j->pos];
		if (c == '"') {
			j->pos++;
			return 0;
		}
		if (c < 0x20)
			return fail(j, "unescaped control character in a string");
		if (c >= 0x80) {
			if (utf8(j))
				return -1;
			continue;
		}
		j->pos++;
		if (c != '\\')
			continue;
		if (j->pos >= j->len)
			break;
		c = j->s[j->pos++];
		if (strchr("\"\\/bfnrt", (int)c) && c)
			continue;
		if (c != 'u')
			return fail(j, "bad escape");
		unsigned u;
		if (hex4(j, &u))
			return -1;
		if (u >= 0xdc00 && u <= 0xdfff)
			return fail(j, "lone low surrogate");
		if (u >= 0xd800 && u <= 0xdbff) {
			unsigned lo;
			if (!lit(j, "\\u") || hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return fail(j, "high surrogate without a low one");
		}
	}
	return fail(j, "unterminated string");
}

static bool
digit(struct jc *j)
{
	return j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9';
}

static int
number(struct jc *j)
{
	if (j->pos < j->len && j->s[j->pos] == '-')
		j->pos++;
	if (!digit(j))
		return fail(j, "expected a digit");
	if (j->s[j->pos] == '0') {
		j->pos++;
		if (digit(j))
			return fail(j, "leading zero");
	} else {
		while (digit(j))
			j->pos++;
	}
	if (j->pos < j->len && j->s[j->pos] == '.') {
		j->pos++;
		if (!digit(j))
			return fail(j, "expected a digit after '.'");
		while (digit(j))
			j->pos++;
	}
	if (j->pos < j->len && (j->s[j->pos] == 'e' || j->s[j->pos] == 'E')) {
		j->pos++;
		if (j->pos < j->len && (j->s[j->pos] == '+' || j->s[j->pos] == '-'))
			j->pos++;
		if (!digit(j))
			return fail(j, "expected an exponent");
		while (digit(j))
			j->pos++;
	}
	return 0;
}

static int
value(struct jc *j);

static int
object(struct jc *j)
{
	size_t keys[JC_MAXKEYS], klen[JC_MAXKEYS], nk = 0;
	j->pos++;
	ws(j);
	if (j->pos < j->len && j->s[j->pos] == '}') {
		j->pos++;
		return 0;
	}
	for (;;) {
		ws(j);
		size_t k0 = j->pos;
		if (string(j))
			return -1;
		size_t kl = j->pos - k0;
		for (size_t i = 0; i < nk; i++)
			if (klen[i] == kl && memcmp(j->s + keys[i], j->s + k0, kl) == 0) {
				j->pos = k0;
				return fail(j, "duplicate key");
			}
		if (nk < JC_MAXKEYS) {
			keys[nk] = k0;
			klen[nk++] = kl;
		}
		ws(j);
		if (!lit(j, ":"))
			return fail(j, "expected ':'");
		if (value(j))
			return -1;
		ws(j);
		if (lit(j, "}"))
			return 0;
		if (!lit(j, ","))
			return fail(j, "expected ',' or '}'");
	}
}

static int
array(struct jc *j)
{
	j->pos++;
	ws(j);
	if (j->pos < j->len && j->s[j->pos] == ']') {
		j->pos++;
		return 0;
	}
	for (;;) {
		if (value(j))
			return -1;
		ws(j);
		if (lit(j, "]"))
			return 0;
		if (!lit(j, ","))
			return fail(j, "expected ',' or ']'");
	}
}

static int
value(struct jc *j)
{
	ws(j);
	if (j->pos >= j->len)
		return fail(j, "expected a value");
	int rc;
	switch (j->s[j->pos]) {
	case '{':
	case '[':
		if (++j->depth > JC_MAXDEPTH)
			return fail(j, "nested too deep");
		rc = j->s[j->pos] == '{' ? object(j) : array(j);
		j->depth--;
		return rc;
	case '"':
		return string(j);
	case 't':
		return lit(j, "true") ? 0 : fail(j, "bad literal");
	case 'f':
		return lit(j, "false") ? 0 : fail(j, "bad literal");
	case 'n':
		return lit(j, "null") ? 0 : fail(j, "bad literal");
	default:
		return number(j);
	}
}

int
json_check(const char *s, size_t len, char *err, size_t errsz)
{
	struct jc j = {(const unsigned char *)s, len, 0, 0, err, errsz, false};
	if (errsz)
		err[0] = '\0';
	if (value(&j))
		return -1;
	ws(&j);
	if (j.pos != len)
		return fail(&j, "text after the value");
	return 0;
}
