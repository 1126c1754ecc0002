/*
 * The YAML loader's scalar grammars, messages and plumbing
 * (core/config_yaml.c), shared with flowq-sim's spec loader
 * (tools/flowq-sim/spec.c) so that both read integers, sizes, durations,
 * reals, booleans and names by one definition and say the same things about
 * them. Internal: flowq__ names, hidden in the shared library (the simulator
 * links flowq_static).
 *
 * The parsers take a scalar as libyaml gives it: its value @s[0..n) (libyaml
 * NUL-terminates it, so s[n] == '\0') and whether its style is plain (a
 * quoted "5" is a string, not a number). They return 0 and the value, or
 * -EINVAL and a message without location or key path, which the caller
 * prepends: e.g. "expected an integer, got \"abc\"" or "\"010\" has leading
 * zeros (...)". Grammars: see core/include/flowq/config_yaml.h. The message
 * buffer needs FLOWQ__YAML_MSG bytes to hold every message whole.
 *
 * Context: any thread; no shared state (pure functions of their arguments).
 */
#ifndef FLOWQ_CONFIG_YAML_SCALAR_H
#define FLOWQ_CONFIG_YAML_SCALAR_H

#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

/* Room for any parser message (a shown value is at most ~128 bytes). */
#define FLOWQ__YAML_MSG 384

/*
 * Append to the message in @buf[0..size) at *@pos (truncating, always
 * NUL-terminated; nothing if @buf is NULL or @size is 0), advancing *@pos.
 */
void
flowq__yaml_vappend(char *buf, size_t size, size_t *pos, const char *fmt, va_list ap);
void
flowq__yaml_append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * @s[0..n) for a message: control bytes, quotes and backslashes escaped, at
 * most about 60 bytes of input shown, "..." if cut (never in the middle of a
 * UTF-8 sequence). Returns @out.
 */
const char *
flowq__yaml_show(char out[128], const char *s, size_t n);

/*
 * A scalar for "expected X, got <this>": "null" (a plain empty, ~ or null),
 * "\"v\"" (plain), or "the quoted string \"v\"" (any other style).
 */
const char *
flowq__yaml_describe(char out[160], const char *s, size_t n, bool plain);

/* A decimal integer in [0, @max]. */
int
flowq__yaml_parse_uint(const char *s, size_t n, bool plain, uint64_t max, uint64_t *r,
		       char *msg, size_t msgsz);

/* A decimal integer that fits @bits (8, 16, 32 or 64) signed bits. */
int
flowq__yaml_parse_sint(const char *s, size_t n, bool plain, unsigned bits, int64_t *r,
		       char *msg, size_t msgsz);

/* A size: bytes, or a number and a unit (B, kB, KiB, ...). */
int
flowq__yaml_parse_size(const char *s, size_t n, bool plain, uint64_t *r, char *msg,
		       size_t msgsz);

/* A duration: ns, or a number and a unit (ns, us, ms, s, m, h); with @none,
 * `none` is FLOWQ_TTL_NONE. */
int
flowq__yaml_parse_duration(const char *s, size_t n, bool plain, bool none, int64_t *r,
			   char *msg, size_t msgsz);

/* A YAML 1.2 core float or integer (.inf, .nan too), read in @c_locale (a
 * "C" locale from newlocale()). */
int
flowq__yaml_parse_real(const char *s, size_t n, bool plain, locale_t c_locale, double *r,
		       char *msg, size_t msgsz);

/* true or false (YAML 1.2 core); YAML 1.1's yes/no/on/off are refused. */
int
flowq__yaml_parse_bool(const char *s, size_t n, bool plain, bool *r, char *msg,
		       size_t msgsz);

/* A name: refused if a plain scalar that YAML reads as something else
 * (null, boolean, number) or if it holds a NUL character. */
int
flowq__yaml_check_name(const char *s, size_t n, bool plain, char *msg, size_t msgsz);

/* The duration unit @s[0..n) ("ms", "s", ...): its length in ns into
 * @r_ns; false if it is not one. */
bool
flowq__yaml_duration_unit(const char *s, size_t n, uint64_t *r_ns);

/*
 * A node with an alias (@alias: its anchor name), an anchor or a tag (NULL:
 * none) is refused: -EINVAL and "aliases are not supported (*a): write the
 * value out" (or anchors, tags); 0 if all three are NULL.
 */
int
flowq__yaml_refuse_node(const char *alias, const char *anchor, const char *tag, char *msg,
			size_t msgsz);

/*
 * libyaml's parser @p failed: the message ("YAML syntax: ...", "invalid
 * input: ...") and where (0-based; for a reader error, the offending byte of
 * @in[0..len), its index a byte offset). Returns -ENOMEM for libyaml's
 * memory error (message "out of memory"), else -EINVAL.
 */
int
flowq__yaml_syntax_error(const yaml_parser_t *p, const unsigned char *in, size_t len,
			 yaml_mark_t *r_mark, char *msg, size_t msgsz);

/*
 * Read the file @path whole (at most FLOWQ_CONFIG_YAML_MAX_SIZE bytes) into
 * a buffer that flowq__yaml_free() releases (counted in
 * flowq__config_yaml_live; failures injected by
 * flowq__config_yaml_fail_after, config_yaml_internal.h). @c_locale for
 * strerror_l. Returns 0; -EFBIG "<path>: larger than ..."; -ENOMEM "<path>:
 * out of memory"; open(2)'s and read(2)'s errno, "<path>: cannot open: ...".
 * Blocks (I/O).
 */
int
flowq__yaml_read_file(const char *path, locale_t c_locale, unsigned char **r_buf,
		      size_t *r_len, char *msg, size_t msgsz);

void
flowq__yaml_free(void *p);

#endif /* FLOWQ_CONFIG_YAML_SCALAR_H */
