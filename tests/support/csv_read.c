/*
 * csv_read.c: see csv_read.h. One pass over the record, O(its length).
 */
#include <stdio.h>

#include "csv_read.h"

static int
bad(const char *start, const char *at, char *err, size_t errsz, const char *what)
{
	snprintf(err, errsz, "record text at offset %zu: %s", (size_t)(at - start), what);
	return -1;
}

int
csv_read_record(const char **p, char (*fields)[CSV_FIELD_MAX], size_t max, size_t *r_n,
		char *err, size_t errsz)
{
	const char *s = *p, *start = *p;
	size_t n = 0;
	*r_n = 0;
	if (!*s)
		return 0;
	for (;;) {
		if (n == max)
			return bad(start, s, err, errsz, "more fields than expected");
		char *f = fields[n];
		size_t len = 0;
		if (*s == '"') {
			for (s++;; s++) {
				if (!*s)
					return bad(start, s, err, errsz,
						   "unterminated quoted field");
				if (*s == '"' && s[1] != '"')
					break;
				if (*s == '"')
					s++;
				if (len + 1 == CSV_FIELD_MAX)
					return bad(start, s, err, errsz,
						   "field too long");
				f[len++] = *s;
			}
			s++;
		} else {
			for (; *s && *s != ',' && *s != '\r' && *s != '\n'; s++) {
				if (*s == '"')
					return bad(start, s, err, errsz,
						   "quote inside an unquoted field");
				if (len + 1 == CSV_FIELD_MAX)
					return bad(start, s, err, errsz,
						   "field too long");
				f[len++] = *s;
			}
		}
		f[len] = '\0';
		n++;
		if (*s == ',') {
			s++;
			continue;
		}
		if (s[0] != '\r' || s[1] != '\n')
			return bad(start, s, err, errsz, "record not ended by CRLF");
		*p = s + 2;
		*r_n = n;
		return 1;
	}
}
