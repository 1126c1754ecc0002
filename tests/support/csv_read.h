/*
 * csv_read: a strict RFC 4180 record reader for tests of CSV writers:
 * records end with CRLF, a quoted field doubles its quotes, an unquoted
 * field holds no quote, CR or LF.
 */
#ifndef FLOWQ_TEST_CSV_READ_H
#define FLOWQ_TEST_CSV_READ_H

#include <stddef.h>

/** Room for one field (longer fields are an error). */
#define CSV_FIELD_MAX 256

/**
 * Read the record at *@p p: its fields, unquoted, into @p fields (at most
 * @p max; more is an error), their count into *@p r_n; *@p p moves past
 * the record's CRLF.
 * @return 1 with a record, 0 at the end of the text, -1 with "record
 * text at offset N: what" in @p err.
 */
int
csv_read_record(const char **p, char (*fields)[CSV_FIELD_MAX], size_t max, size_t *r_n,
		char *err, size_t errsz);

#endif /* FLOWQ_TEST_CSV_READ_H */
