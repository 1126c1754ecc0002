/*
 * utf8_seq.h: the length of one well-formed UTF-8 sequence, for the test
 * checkers (json_check, html_check). Written apart from the code under
 * test on purpose: a checker must not share the bug it is looking for.
 */
#ifndef FLOWQ_TEST_UTF8_SEQ_H
#define FLOWQ_TEST_UTF8_SEQ_H

#include <stddef.h>
#include <stdint.h>

/** Length (1..4) of the well-formed UTF-8 sequence at @p s (@p len bytes
 * available), or 0: a bad lead or continuation byte, truncation, an
 * overlong form, a surrogate or a code point past U+10FFFF. */
static inline size_t
test_utf8_seq(const unsigned char *s, size_t len)
{
	if (len == 0)
		return 0;
	unsigned c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

#endif /* FLOWQ_TEST_UTF8_SEQ_H */
