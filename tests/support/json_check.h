/*
 * json_check: a strict RFC 8259 validator for tests of JSON writers (no
 * tree is built). Rejects what lenient parsers let through: trailing
 * commas, leading zeros, NaN/Infinity, single quotes, unescaped controls,
 * invalid UTF-8 (overlong forms, surrogates), lone \u surrogates,
 * duplicate keys in one object, anything after the value.
 */
#ifndef FLOWQ_TEST_JSON_CHECK_H
#define FLOWQ_TEST_JSON_CHECK_H

#include <stddef.h>

/**
 * Validate @p len bytes at @p s as one JSON text (whitespace around it
 * allowed). Nesting deeper than 64 is refused.
 * @return 0, or -1 with "offset N: what" in @p err.
 */
int
json_check(const char *s, size_t len, char *err, size_t errsz);

#endif /* FLOWQ_TEST_JSON_CHECK_H */
