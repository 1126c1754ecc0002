/*
 * The engine configuration from YAML (flowq/config_yaml.h): libyaml's event
 * parser, a schema walk driven by key tables, then flowq_config_validate()
 * with its message placed at the key it names.
 *
 * Shape. libyaml's parser (yaml_parser_parse) turns the input into events
 * with 0-based marks; no document tree is built. The schema walk is a
 * recursive descent over those events whose depth is bounded by the schema
 * (document -> config -> bands -> band -> value: at most five frames): every
 * value of the wrong kind is refused at its first event, so input nesting
 * never drives recursion. Subtrees that are skipped (other top-level entries
 * when a subtree key is given) are walked iteratively with a depth counter
 * capped at FLOWQ_CONFIG_YAML_MAX_DEPTH, which also bounds libyaml's own
 * per-level stacks (its scanner looks ahead at most 1024 characters for a
 * simple key, so it cannot run far past the cap either).
 *
 * Key tables. Each struct has one table of `struct yk`, one line per field:
 * the name is the C field name (#f), the offset and size come from the
 * struct, and the macro checks the field's C type at compile time (a _Generic
 * selection sized into an array: the wrong type is a negative array size).
 * Adding a field to struct flowq_config is one line, e.g.
 *     YK_NAME(T, displacement, NULL),
 * in config_keys[]. Host-only fields (function pointers, contexts, buffers)
 * have a YK_HOST line so that naming them gives a specific error rather
 * than "unknown key".
 *
 * What is checked where. The schema layer owns what only the text shows:
 * kinds (scalar, sequence, mapping), scalar grammars, the C type's range,
 * units, duplicate keys, duplicate band priorities, the band count, required
 * keys, anchors/aliases/tags. Semantic ranges (ceilings in (0, 1], the joint
 * limit rule, policy names in the registries, ...) stay in
 * flowq_config_validate() only, so there is one definition of each rule;
 * its message starts with the field path, which is looked up in the marks
 * recorded during the walk (trimmed one component at a time until found:
 * "bands[1].usage_ceiling" -> "bands[1]" -> "bands" -> the config itself).
 *
 * Memory. Three owners, each freed on every path: the result storage
 * (struct yl_owned: the band array and the copied names) belongs to the
 * holder on success and is freed on failure; the marks array and the input
 * buffer (file loads) are freed before returning; libyaml's parser and the
 * current event are deleted before returning. No allocation outlives a
 * failed call.
 *
 * Sharing. The scalar grammars with their messages, the refusal of
 * anchors, aliases and tags, libyaml's error text and the file reader are
 * flowq__yaml_* functions (config_yaml_scalar.h) that flowq-sim's spec
 * loader uses too, so a spec and an engine file read values alike;
 * flowq__config_load_yaml_where() (config_yaml_internal.h) is the load whose
 * messages the caller locates (the simulator edits a spec's text before the
 * engine section is read, so the text's line and column are not the file's).
 *
 * Complexity: O(input) time and memory; duplicate-priority checks are
 * O(bands^2) with bands <= FLOWQ_MAX_BANDS; mark lookups after a failed
 * validation are linear in the keys given.
 */
#define _GNU_SOURCE /* newlocale, strtod_l, strerror_l (POSIX.1-2008) */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include <flowq/config_yaml.h>
#include <flowq/flowq.h>

#include "config_yaml_internal.h"
#include "config_yaml_scalar.h"

_Atomic long flowq__config_yaml_fail_after = -1;
_Atomic long flowq__config_yaml_live = 0;

/* ---- key tables --------------------------------------------------------- */

enum yk_kind {
	YK_INT,      /* signed integer, width from the field */
	YK_UINT,     /* unsigned integer, width from the field */
	YK_SIZE,     /* uint64_t bytes: integer or number + unit */
	YK_DURATION, /* int64_t ns: integer or number + unit */
	YK_REAL,     /* double */
	YK_BOOL,     /* bool */
	YK_NAME,     /* const char *, copied into the owned storage */
	YK_ENUM,     /* an int-sized enum, by name */
	YK_MAP,      /* nested struct, aux = its struct yk_table */
	YK_BANDS,    /* const struct flowq_band_config * + size_t count */
	YK_HOST,     /* set in code only, aux = the reason */
};

#define YK_REQUIRED     0x1u /* must be given (a band's priority) */
#define YK_NOT_TEMPLATE 0x2u /* refused in default_band: aux2 = the reason */
#define YK_NONE         0x4u /* duration: `none` = FLOWQ_TTL_NONE */
#define YK_TEMPLATE     0x8u /* YK_MAP: the default-band template */

struct yk {
	const char *name;
	enum yk_kind kind;
	unsigned flags;
	size_t offset;
	size_t size;
	/* YK_BANDS: offset of the count field. */
	size_t offset2;
	/* YK_MAP: const struct yk_table *; YK_ENUM: const struct yk_enum *;
	 * YK_NAME: const struct yk_refuse * or NULL; YK_HOST: const char *. */
	const void *aux;
	/* YK_NOT_TEMPLATE: why the template refuses the key. */
	const char *aux2;
};

struct yk_table {
	const struct yk *keys;
	size_t n;
};

/* A name YAML may not give (NULL-terminated list), and why. */
struct yk_refuse {
	const char *value;
	const char *why;
};

struct yk_enum {
	const char *name;
	int value;
};

/* Most keys in one table (the duplicate-key bitmap is on the stack). */
#define YK_MAX_KEYS 64

/* clang-format 14 splits _Generic associations apart: */
/* clang-format off */
/* 0, or a compile error if field @f of @T is not of type @type. */
#define YK_IS(T, f, type) (sizeof(char[_Generic(((T *)0)->f, type: 1, default: -1)]) - 1)
#define YK_INT_SIZED(T, f) (sizeof(char[sizeof(((T *)0)->f) == sizeof(int) ? 1 : -1]) - 1)
#define YK_FIELD(T, f)    .name = #f, .offset = offsetof(T, f), .size = sizeof(((T *)0)->f)
#define YK_SIGNED(T, f)                                                                  \
	_Generic(((T *)0)->f, signed char: YK_INT, short: YK_INT, int: YK_INT, long: YK_INT, \
		 long long: YK_INT, unsigned char: YK_UINT, unsigned short: YK_UINT,          \
		 unsigned: YK_UINT, unsigned long: YK_UINT, unsigned long long: YK_UINT)

/* One line per field; each checks the field's type. */
#define YK_INTEGER(T, f, fl) {YK_FIELD(T, f), .kind = YK_SIGNED(T, f), .flags = (fl)}
#define YK_SIZE(T, f)                                                                    \
	{YK_FIELD(T, f), .kind = YK_SIZE + YK_IS(T, f, uint64_t)}
#define YK_DURATION(T, f, fl)                                                            \
	{YK_FIELD(T, f), .kind = YK_DURATION + YK_IS(T, f, int64_t), .flags = (fl)}
#define YK_REAL(T, f) {YK_FIELD(T, f), .kind = YK_REAL + YK_IS(T, f, double)}
#define YK_BOOL(T, f) {YK_FIELD(T, f), .kind = YK_BOOL + YK_IS(T, f, bool)}
#define YK_NAME(T, f, refuse)                                                            \
	{YK_FIELD(T, f), .kind = YK_NAME + YK_IS(T, f, const char *), .aux = (refuse)}
#define YK_ENUM(T, f, names)                                                             \
	{YK_FIELD(T, f),                                                                 \
	 .kind = YK_ENUM + YK_INT_SIZED(T, f),                                           \
	 .aux = (names)}
#define YK_MAP(T, f, table, fl) {YK_FIELD(T, f), .kind = YK_MAP, .flags = (fl), .aux = (table)}
#define YK_BANDS(T, f, count)                                                            \
	{YK_FIELD(T, f),                                                                 \
	 .kind = YK_BANDS + YK_IS(T, f, const struct flowq_band_config *) +              \
		 YK_IS(T, count, size_t),                                                \
	 .offset2 = offsetof(T, count)}
#define YK_HOST(T, f, why) {YK_FIELD(T, f), .kind = YK_HOST, .aux = (why)}
#define YK_TABLE(keys)     {(keys), sizeof(keys) / sizeof((keys)[0])}
/* clang-format on */

#define T struct flowq_band_config
static const struct yk band_keys[] = {
	{YK_FIELD(T, priority), .kind = YK_SIGNED(T, priority),
	 .flags = YK_REQUIRED | YK_NOT_TEMPLATE,
	 .aux2 = "the template has no priority: a just-in-time band takes the "
		 "priority of the request that creates it"},
	YK_INTEGER(T, max_requests, 0),
	YK_SIZE(T, max_bytes),
	YK_NAME(T, fairness, NULL),
	YK_NAME(T, ordering, NULL),
	YK_REAL(T, usage_ceiling),
	YK_SIZE(T, quantum),
};
#undef T
static const struct yk_table band_table = YK_TABLE(band_keys);

static const struct yk_refuse detector_refuse[] = {
	{"callback",
	 "\"callback\" cannot be set from YAML: that detector needs a function "
	 "pointer; set saturation.detector, saturation.callback and "
	 "saturation.callback_ctx in code after loading"},
	{NULL, NULL},
};

#define T struct flowq_saturation_config
static const struct yk saturation_keys[] = {
	YK_NAME(T, detector, detector_refuse),
	YK_INTEGER(T, max_inflight, 0),
	YK_SIZE(T, max_inflight_bytes),
	YK_HOST(T, callback,
		"is a function pointer and cannot be set from YAML: set it "
		"(and saturation.detector \"callback\") in code after loading"),
	YK_HOST(T, callback_ctx,
		"is a host pointer and cannot be set from YAML: set it in "
		"code after loading"),
	YK_DURATION(T, callback_poll_ns, 0),
	YK_INTEGER(T, endpoints, 0),
	YK_INTEGER(T, queue_depth_threshold, 0),
	YK_REAL(T, kv_cache_util_threshold),
	YK_DURATION(T, metrics_staleness_ns, 0),
	YK_REAL(T, dispatch_cost),
};
#undef T
static const struct yk_table saturation_table = YK_TABLE(saturation_keys);

static const struct yk_enum mode_names[] = {
	{"threaded", FLOWQ_MODE_THREADED},
	{"polled", FLOWQ_MODE_POLLED},
	{NULL, 0},
};

#define T struct flowq_config
static const struct yk config_keys[] = {
	YK_INTEGER(T, shards, 0),
	YK_ENUM(T, mode, mode_names),
	YK_INTEGER(T, max_requests, 0),
	YK_SIZE(T, max_bytes),
	YK_BANDS(T, bands, nbands),
	YK_HOST(T, nbands, "is the length of bands and cannot be set on its own"),
	YK_BOOL(T, default_band_enabled),
	YK_MAP(T, default_band, &band_table, YK_TEMPLATE),
	YK_INTEGER(T, flow_max_requests, 0),
	YK_SIZE(T, flow_max_bytes),
	YK_DURATION(T, default_ttl_ns, YK_NONE),
	YK_DURATION(T, flow_gc_timeout_ns, 0),
	YK_MAP(T, saturation, &saturation_table, 0),
	YK_NAME(T, displacement, NULL),
	YK_INTEGER(T, displacement_max_pending, 0),
	YK_HOST(T, allocator,
		"is a host object and cannot be set from YAML: set it in code "
		"after loading"),
	YK_HOST(T, clock,
		"is a function pointer and cannot be set from YAML: set it in "
		"code after loading"),
	YK_HOST(T, clock_ctx,
		"is a host pointer and cannot be set from YAML: set it in code "
		"after loading"),
	YK_INTEGER(T, registry_buckets, 0),
	YK_INTEGER(T, dispatch_batch, 0),
	YK_DURATION(T, idle_spin_ns, 0),
	YK_DURATION(T, intake_coalesce_ns, 0),
	YK_HOST(T, errbuf,
		"is a host buffer and cannot be set from YAML: set it in code "
		"after loading"),
	YK_HOST(T, errbuf_size,
		"is the size of a host buffer and cannot be set from YAML: "
		"set it in code after loading"),
};
#undef T
static const struct yk_table config_table = YK_TABLE(config_keys);

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= YK_MAX_KEYS,
	       "config_keys: raise YK_MAX_KEYS");
_Static_assert(sizeof(band_keys) / sizeof(band_keys[0]) <= YK_MAX_KEYS,
	       "band_keys: raise YK_MAX_KEYS");
_Static_assert(sizeof(saturation_keys) / sizeof(saturation_keys[0]) <= YK_MAX_KEYS,
	       "saturation_keys: raise YK_MAX_KEYS");

/* ---- one load ------------------------------------------------------------ */

/* A copied name; the list is freed with the storage. */
struct yl_str {
	struct yl_str *next;
	char s[];
};

/* What a loaded config points into. */
struct yl_owned {
	struct flowq_band_config bands[FLOWQ_MAX_BANDS];
	struct yl_str *names;
};

/* Where a key path was given (0-based, as libyaml). */
struct yl_mark {
	char *path;
	yaml_mark_t m;
};

struct yl {
	yaml_parser_t parser;
	yaml_event_t ev; /* the current event, valid while have_ev */
	bool have_ev;
	const char *name;        /* file name or buffer name, for messages */
	const unsigned char *in; /* the input, for reader-error positions */
	size_t len;
	char *err;
	size_t err_size;
	locale_t c_locale;
	/* NULL: messages say "<name>:<line>:<col>"; else where->prefix and
	 * where->at write the locations (config_yaml_internal.h). */
	const struct flowq__config_yaml_where *where;
	/* What key paths start with: "" (relative to the configuration), or
	 * "<key>." (from the root: a located load with a subtree key). */
	const char *pre;
	struct yl_owned *owned;
	struct yl_mark *marks;
	size_t nmarks;
	size_t cap_marks;
};

/*
 * The loader's own allocations (libyaml allocates for itself): libc, with
 * the test hooks of config_yaml_internal.h. Relaxed atomics: the counters
 * order nothing, they are read by a test after its loads returned.
 */
static void *
yl_malloc(size_t n)
{
	long f = atomic_load_explicit(&flowq__config_yaml_fail_after,
				      memory_order_relaxed);
	void *p;

	if (f >= 0) {
		if (f == 0)
			return NULL;
		atomic_store_explicit(&flowq__config_yaml_fail_after, f - 1,
				      memory_order_relaxed);
	}
	if ((p = malloc(n)) != NULL)
		atomic_fetch_add_explicit(&flowq__config_yaml_live, 1,
					  memory_order_relaxed);
	return p;
}

static void
yl_free(void *p)
{
	if (p == NULL)
		return;
	atomic_fetch_sub_explicit(&flowq__config_yaml_live, 1, memory_order_relaxed);
	free(p);
}

void
flowq__yaml_free(void *p)
{
	yl_free(p);
}

static void
yl_owned_free(struct yl_owned *o)
{
	if (o == NULL)
		return;
	while (o->names != NULL) {
		struct yl_str *next = o->names->next;

		yl_free(o->names);
		o->names = next;
	}
	yl_free(o);
}

/* ---- messages -------------------------------------------------------------- */

void
flowq__yaml_vappend(char *buf, size_t size, size_t *pos, const char *fmt, va_list ap)
{
	int n;

	if (buf == NULL || size == 0 || *pos >= size - 1)
		return;
	n = vsnprintf(buf + *pos, size - *pos, fmt, ap);
	if (n > 0)
		*pos = *pos + (size_t)n < size ? *pos + (size_t)n : size - 1;
}

void
flowq__yaml_append(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	flowq__yaml_vappend(buf, size, pos, fmt, ap);
	va_end(ap);
}

/*
 * "<name>:<line>:<col>: <path>: <message>" with a 0-based @m (printed
 * 1-based); an empty @path is left out. Returns @rc.
 */
static int
yl_fail(struct yl *l, int rc, yaml_mark_t m, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
yl_fail(struct yl *l, int rc, yaml_mark_t m, const char *path, const char *fmt, ...)
{
	size_t pos = 0;
	va_list ap;

	if (l->where != NULL) {
		if (l->err != NULL && l->err_size > 0) {
			l->err[0] = '\0';
			l->where->prefix(l->where->ctx, l->err, l->err_size, &m, path);
			pos = strlen(l->err);
		}
	} else {
		flowq__yaml_append(l->err, l->err_size, &pos, "%s:%zu:%zu: ", l->name,
				   m.line + 1, m.column + 1);
		if (path != NULL && path[0] != '\0')
			flowq__yaml_append(l->err, l->err_size, &pos, "%s: ", path);
	}
	va_start(ap, fmt);
	flowq__yaml_vappend(l->err, l->err_size, &pos, fmt, ap);
	va_end(ap);
	return rc;
}

/* A message without a position (file errors, out of memory). */
static int
yl_fail_plain(struct yl *l, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
yl_fail_plain(struct yl *l, int rc, const char *fmt, ...)
{
	size_t pos = 0;
	va_list ap;

	va_start(ap, fmt);
	flowq__yaml_vappend(l->err, l->err_size, &pos, fmt, ap);
	va_end(ap);
	return rc;
}

static int
yl_nomem(struct yl *l)
{
	return yl_fail_plain(l, -ENOMEM, "%s: out of memory", l->name);
}

/* A position inside a message ("first at <line>:<col>"); returns @buf. */
static const char *
yl_at(const struct yl *l, char buf[64], yaml_mark_t m)
{
	if (l->where != NULL)
		l->where->at(l->where->ctx, buf, 64, &m);
	else
		snprintf(buf, 64, "%zu:%zu", m.line + 1, m.column + 1);
	return buf;
}

/*
 * @s[0..n) for a message: control bytes, quotes and backslashes escaped, at
 * most about 60 bytes of input shown, "..." if cut (never in the middle of a
 * UTF-8 sequence). Returns @out.
 */
const char *
flowq__yaml_show(char out[128], const char *s, size_t n)
{
	size_t o = 0, i;

	for (i = 0; i < n && o < 60; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < n) {
		/* Back off to a character boundary: drop the last character
		 * if the cut left it incomplete (its lead byte gives its
		 * length), keep it if it is whole. */
		size_t lead = o;

		while (lead > 0 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
			lead--;
		if (lead > 0 && ((unsigned char)out[lead - 1] & 0xC0) == 0xC0) {
			unsigned char c = (unsigned char)out[lead - 1];
			size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

			if (o - (lead - 1) < len)
				o = lead - 1;
		}
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/*
 * A key path ("bands[2].usage_ceiling"). Paths are built from table names
 * and indices below FLOWQ_MAX_BANDS, far below the bound; an unknown key
 * enters one only through flowq__yaml_show(), itself bounded.
 */
#define YL_PATH_MAX 192

static void
yl_path(char dst[YL_PATH_MAX], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
yl_path(char dst[YL_PATH_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, YL_PATH_MAX, fmt, ap);
	va_end(ap);
}

/* ---- events -------------------------------------------------------------- */

/* Line and column (0-based) of byte @off of @in[0..len). */
static yaml_mark_t
offset_mark(const unsigned char *in, size_t len, size_t off)
{
	yaml_mark_t m = {.index = off, .line = 0, .column = 0};

	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		unsigned char c = in[i];

		if (c == '\n' || (c == '\r' && (i + 1 >= len || in[i + 1] != '\n'))) {
			m.line++;
			m.column = 0;
		} else if (c != '\r' && (c & 0xC0) != 0x80) {
			m.column++; /* count characters, not continuation bytes */
		}
	}
	return m;
}

/* Format into @msg (truncating); returns @rc. */
static int
msg_fmt(char *msg, size_t msgsz, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
msg_fmt(char *msg, size_t msgsz, int rc, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msgsz == 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
	return rc;
}

/* libyaml refused the input: its problem, where, and in what context. */
int
flowq__yaml_syntax_error(const yaml_parser_t *p, const unsigned char *in, size_t len,
			 yaml_mark_t *r_mark, char *msg, size_t msgsz)
{
	const char *problem = p->problem != NULL ? p->problem : "unknown error";

	*r_mark = p->problem_mark;
	switch (p->error) {
	case YAML_NO_ERROR:
		/* A failure without an error type: libyaml 0.2.5's scanner
		 * leaves the type unset when it cannot allocate a tag's handle
		 * or suffix (yaml_parser_scan_tag(): "if (!handle) goto
		 * error;"); every other failure sets one. */
	case YAML_MEMORY_ERROR:
		return msg_fmt(msg, msgsz, -ENOMEM, "out of memory");
	case YAML_READER_ERROR:
		*r_mark = offset_mark(in, len, p->problem_offset);
		if (p->problem_value != -1)
			return msg_fmt(msg, msgsz, -EINVAL,
				       "invalid input: %s (#%X at byte %zu)", problem,
				       (unsigned)p->problem_value, p->problem_offset);
		return msg_fmt(msg, msgsz, -EINVAL, "invalid input: %s (at byte %zu)",
			       problem, p->problem_offset);
	default:
		if (p->context != NULL)
			return msg_fmt(msg, msgsz, -EINVAL,
				       "YAML syntax: %s (%s at %zu:%zu)", problem,
				       p->context, p->context_mark.line + 1,
				       p->context_mark.column + 1);
		return msg_fmt(msg, msgsz, -EINVAL, "YAML syntax: %s", problem);
	}
}

static int
yl_syntax_error(struct yl *l)
{
	char msg[FLOWQ__YAML_MSG];
	yaml_mark_t m;
	int rc =
		flowq__yaml_syntax_error(&l->parser, l->in, l->len, &m, msg, sizeof(msg));

	if (rc == -ENOMEM)
		return yl_nomem(l);
	return yl_fail(l, rc, m, NULL, "%s", msg);
}

/* Advance to the next event (l->ev). */
static int
yl_next(struct yl *l)
{
	if (l->have_ev) {
		yaml_event_delete(&l->ev);
		l->have_ev = false;
	}
	if (!yaml_parser_parse(&l->parser, &l->ev))
		return yl_syntax_error(l);
	l->have_ev = true;
	return 0;
}

static yaml_mark_t
yl_mark(const struct yl *l)
{
	return l->ev.start_mark;
}

const char *
flowq__yaml_describe(char out[160], const char *s, size_t n, bool plain)
{
	char show[128];

	if (plain &&
	    (n == 0 || (n == 1 && s[0] == '~') ||
	     (n == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
			 memcmp(s, "NULL", 4) == 0))))
		return "null";
	snprintf(out, 160, "%s\"%s\"", plain ? "" : "the quoted string ",
		 flowq__yaml_show(show, s, n));
	return out;
}

/* What the current event is, for "expected X, got Y". */
static const char *
yl_what(const struct yl *l, char buf[160])
{
	switch (l->ev.type) {
	case YAML_SEQUENCE_START_EVENT:
		return "a sequence";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_ALIAS_EVENT:
		return "an alias";
	case YAML_SCALAR_EVENT:
		return flowq__yaml_describe(buf, (const char *)l->ev.data.scalar.value,
					    l->ev.data.scalar.length,
					    l->ev.data.scalar.style ==
						    YAML_PLAIN_SCALAR_STYLE);
	default:
		return "something else";
	}
}

int
flowq__yaml_refuse_node(const char *alias, const char *anchor, const char *tag, char *msg,
			size_t msgsz)
{
	char show[128];

	if (alias != NULL)
		return msg_fmt(msg, msgsz, -EINVAL,
			       "aliases are not supported (*%s): write the value out",
			       flowq__yaml_show(show, alias, strlen(alias)));
	if (anchor != NULL)
		return msg_fmt(msg, msgsz, -EINVAL,
			       "anchors are not supported (&%s): write the value out",
			       flowq__yaml_show(show, anchor, strlen(anchor)));
	if (tag != NULL)
		return msg_fmt(msg, msgsz, -EINVAL, "tags are not supported (%s)",
			       flowq__yaml_show(show, tag, strlen(tag)));
	return 0;
}

/*
 * Refuse anchors, aliases and explicit tags on the current event (a node of
 * the configuration): aliases could expand without bound, and neither a tag
 * nor a shared node means anything in a config. @path names the node.
 */
static int
yl_plain_node(struct yl *l, const char *path)
{
	const yaml_event_t *e = &l->ev;
	const yaml_char_t *alias = NULL, *anchor = NULL, *tag = NULL;
	char msg[FLOWQ__YAML_MSG];
	int rc;

	switch (e->type) {
	case YAML_ALIAS_EVENT:
		alias = e->data.alias.anchor;
		break;
	case YAML_SCALAR_EVENT:
		anchor = e->data.scalar.anchor;
		tag = e->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = e->data.sequence_start.anchor;
		tag = e->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = e->data.mapping_start.anchor;
		tag = e->data.mapping_start.tag;
		break;
	default:
		break;
	}
	rc = flowq__yaml_refuse_node((const char *)alias, (const char *)anchor,
				     (const char *)tag, msg, sizeof(msg));
	return rc != 0 ? yl_fail(l, rc, yl_mark(l), path, "%s", msg) : 0;
}

/*
 * Skip the node that starts at the current event (a subtree the caller does
 * not read), iteratively; @depth is the nesting of its parent.
 */
static int
yl_skip(struct yl *l, unsigned depth)
{
	unsigned d = 0;
	int rc;

	do {
		switch (l->ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth + ++d > FLOWQ_CONFIG_YAML_MAX_DEPTH)
				return yl_fail(l, -EINVAL, yl_mark(l), NULL,
					       "nesting deeper than %u levels",
					       FLOWQ_CONFIG_YAML_MAX_DEPTH);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			d--;
			break;
		default:
			break;
		}
		if (d == 0)
			return 0;
		if ((rc = yl_next(l)) != 0)
			return rc;
	} while (true);
}

/* ---- key marks (for validate's messages) ----------------------------------- */

static int
yl_mark_add(struct yl *l, const char *path, yaml_mark_t m)
{
	size_t n = strlen(path) + 1;
	char *p;

	if (l->nmarks == l->cap_marks) {
		size_t cap = l->cap_marks ? 2 * l->cap_marks : 32;
		struct yl_mark *a = yl_malloc(cap * sizeof(*a));

		if (a == NULL)
			return yl_nomem(l);
		if (l->nmarks > 0)
			memcpy(a, l->marks, l->nmarks * sizeof(*a));
		yl_free(l->marks);
		l->marks = a;
		l->cap_marks = cap;
	}
	if ((p = yl_malloc(n)) == NULL)
		return yl_nomem(l);
	memcpy(p, path, n);
	l->marks[l->nmarks++] = (struct yl_mark){.path = p, .m = m};
	return 0;
}

static const struct yl_mark *
yl_mark_find(const struct yl *l, const char *path)
{
	for (size_t i = 0; i < l->nmarks; i++) {
		if (strcmp(l->marks[i].path, path) == 0)
			return &l->marks[i];
	}
	return NULL;
}

static void
yl_marks_free(struct yl *l)
{
	for (size_t i = 0; i < l->nmarks; i++)
		yl_free(l->marks[i].path);
	yl_free(l->marks);
	l->marks = NULL;
	l->nmarks = l->cap_marks = 0;
}

/* ---- scalar grammars --------------------------------------------------------- */

static const char *
yl_sv(const struct yl *l)
{
	return (const char *)l->ev.data.scalar.value;
}

static size_t
yl_sn(const struct yl *l)
{
	return l->ev.data.scalar.length;
}

static bool
yl_plain(const struct yl *l)
{
	return l->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits @s[0..n) into @r (overflow: false). */
static bool
digits_u64(const char *s, size_t n, uint64_t *r)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return false;
	}
	*r = v;
	return true;
}

enum num_rc {
	NUM_OK,
	NUM_SYNTAX,    /* not the grammar */
	NUM_ZEROS,     /* integer with leading zeros */
	NUM_NEGATIVE,  /* below zero where that cannot be */
	NUM_OVERFLOW,  /* above the maximum */
	NUM_FRACTION,  /* not a whole number of the base unit */
	NUM_DIGITS,    /* too many fraction digits */
	NUM_NEEDS_UNIT /* a fraction without a unit */
};

/*
 * A YAML 1.2 core integer in decimal: [-+]?[0-9]+, no leading zeros (010 is
 * octal in YAML 1.1 and ten in 1.2: refused rather than guessed). The
 * magnitude goes to @r_mag (NUM_OVERFLOW above UINT64_MAX), the sign to
 * @r_neg.
 */
static enum num_rc
parse_int(const char *s, size_t n, bool *r_neg, uint64_t *r_mag)
{
	size_t i = 0;

	*r_neg = false;
	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		*r_neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return NUM_SYNTAX;
	for (size_t j = i; j < n; j++) {
		if (!is_digit(s[j]))
			return NUM_SYNTAX;
	}
	if (s[i] == '0' && n - i > 1)
		return NUM_ZEROS;
	return digits_u64(s + i, n - i, r_mag) ? NUM_OK : NUM_OVERFLOW;
}

struct unit {
	const char *name;
	uint64_t scale;
};

#define KIB (UINT64_C(1) << 10)
static const struct unit size_units[] = {
	{"B", 1},
	{"kB", UINT64_C(1000)},
	{"KB", UINT64_C(1000)},
	{"MB", UINT64_C(1000000)},
	{"GB", UINT64_C(1000000000)},
	{"TB", UINT64_C(1000000000000)},
	{"PB", UINT64_C(1000000000000000)},
	{"EB", UINT64_C(1000000000000000000)},
	{"KiB", KIB},
	{"MiB", KIB *KIB},
	{"GiB", KIB *KIB *KIB},
	{"TiB", KIB *KIB *KIB *KIB},
	{"PiB", KIB *KIB *KIB *KIB *KIB},
	{"EiB", KIB *KIB *KIB *KIB *KIB *KIB},
	{NULL, 0},
};

static const struct unit duration_units[] = {
	{"ns", 1},
	{"us", UINT64_C(1000)},
	{"\xc2\xb5s", UINT64_C(1000)}, /* U+00B5 MICRO SIGN */
	{"\xce\xbcs", UINT64_C(1000)}, /* U+03BC GREEK SMALL LETTER MU */
	{"ms", UINT64_C(1000000)},
	{"s", UINT64_C(1000000000)},
	{"m", UINT64_C(60000000000)},
	{"h", UINT64_C(3600000000000)},
	{NULL, 0},
};

/* @s[0..n) in @units: its scale, or NULL. */
static const struct unit *
unit_find(const struct unit *units, const char *s, size_t n)
{
	for (const struct unit *c = units; c->name != NULL; c++) {
		if (strlen(c->name) == n && memcmp(c->name, s, n) == 0)
			return c;
	}
	return NULL;
}

bool
flowq__yaml_duration_unit(const char *s, size_t n, uint64_t *r_ns)
{
	const struct unit *u = unit_find(duration_units, s, n);

	if (u != NULL)
		*r_ns = u->scale;
	return u != NULL;
}

/*
 * A quantity: a plain integer (the base unit), or a decimal number and a
 * unit from @units with optional spaces between: [-+]?(D+(.D*)?|.D+) *U.
 * Exact: value = I * scale + F * scale / 10^k for the fraction digits F
 * (trailing zeros dropped, k <= 19), which must divide evenly (whole base
 * units); computed in 128 bits (F < 10^19, scale <= 2^60), so nothing is
 * rounded. Negative (non-zero) values are refused; above @max overflows.
 */
static enum num_rc
parse_quantity(const char *s, size_t n, bool plain, const struct unit *units,
	       uint64_t max, uint64_t *r)
{
	__extension__ typedef unsigned __int128 u128;
	size_t i = 0, int_start, int_len, frac_start, frac_len = 0, u;
	bool neg = false, dot = false, nonzero = false;
	uint64_t ipart = 0, fpart = 0, scale = 0, pow10 = 1, v;
	const struct unit *unit = NULL;

	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	int_start = i;
	while (i < n && is_digit(s[i]))
		i++;
	int_len = i - int_start;
	frac_start = i;
	if (i < n && s[i] == '.') {
		dot = true;
		frac_start = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		frac_len = i - frac_start;
	}
	if (int_len + frac_len == 0)
		return NUM_SYNTAX;
	for (size_t j = int_start; j < i; j++)
		nonzero |= is_digit(s[j]) && s[j] != '0';
	u = i;
	while (u < n && s[u] == ' ')
		u++;
	if (u < n) {
		if ((unit = unit_find(units, s + u, n - u)) == NULL)
			return NUM_SYNTAX;
	} else if (u != i) {
		return NUM_SYNTAX; /* trailing spaces, no unit */
	}
	if (unit == NULL) {
		/* A bare number: a plain integer of base units. */
		bool ineg;

		if (dot)
			return NUM_NEEDS_UNIT;
		if (!plain)
			return NUM_SYNTAX;
		switch (parse_int(s, n, &ineg, &v)) {
		case NUM_OK:
			break;
		case NUM_ZEROS:
			return NUM_ZEROS;
		case NUM_OVERFLOW:
			return neg ? NUM_NEGATIVE : NUM_OVERFLOW;
		default:
			return NUM_SYNTAX;
		}
		if (ineg && v != 0)
			return NUM_NEGATIVE;
		if (v > max)
			return NUM_OVERFLOW;
		*r = v;
		return NUM_OK;
	}
	if (neg && nonzero)
		return NUM_NEGATIVE;
	scale = unit->scale;
	while (frac_len > 0 && s[frac_start + frac_len - 1] == '0')
		frac_len--;
	if (frac_len > 19)
		return NUM_DIGITS;
	if (!digits_u64(s + int_start, int_len, &ipart))
		return NUM_OVERFLOW;
	if (!digits_u64(s + frac_start, frac_len, &fpart))
		return NUM_DIGITS; /* cannot happen: 19 digits fit */
	for (size_t j = 0; j < frac_len; j++)
		pow10 *= 10;
	{
		u128 f = (u128)fpart * scale;

		if (f % pow10 != 0)
			return NUM_FRACTION;
		if (__builtin_mul_overflow(ipart, scale, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(f / pow10), &v))
			return NUM_OVERFLOW;
	}
	if (v > max)
		return NUM_OVERFLOW;
	*r = v;
	return NUM_OK;
}

/* YAML 1.2 core float or integer grammar (plain scalars). */
static bool
is_core_number(const char *s, size_t n)
{
	size_t i = 0, d = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && is_digit(s[i]))
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, d++;
	}
	if (d == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < n && is_digit(s[i]))
			i++, e++;
		if (e == 0)
			return false;
	}
	return i == n;
}

static bool
is_one_of(const char *s, size_t n, const char *const *words)
{
	for (; *words != NULL; words++) {
		if (strlen(*words) == n && memcmp(*words, s, n) == 0)
			return true;
	}
	return false;
}

static const char *const yaml_true[] = {"true", "True", "TRUE", NULL};
static const char *const yaml_false[] = {"false", "False", "FALSE", NULL};
/* YAML 1.1 booleans that 1.2 reads as strings: refused, not guessed. */
static const char *const yaml11_bool[] = {"yes", "Yes", "YES", "no",  "No",  "NO",
					  "on",  "On",  "ON",  "off", "Off", "OFF",
					  "y",   "Y",   "n",   "N",   NULL};
static const char *const yaml_inf[] = {".inf",  ".Inf",  ".INF", "+.inf",
				       "+.Inf", "+.INF", NULL};
static const char *const yaml_ninf[] = {"-.inf", "-.Inf", "-.INF", NULL};
static const char *const yaml_nan[] = {".nan", ".NaN", ".NAN", NULL};
static const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", NULL};

/* Whether a plain scalar is something other than a string in YAML 1.2's
 * core schema (null, boolean, integer, float; 0x/0o integers too). */
static bool
is_core_non_string(const char *s, size_t n)
{
	size_t i = 0;

	if (is_one_of(s, n, yaml_null) || is_one_of(s, n, yaml_true) ||
	    is_one_of(s, n, yaml_false) || is_one_of(s, n, yaml_inf) ||
	    is_one_of(s, n, yaml_ninf) || is_one_of(s, n, yaml_nan) ||
	    is_core_number(s, n))
		return true;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		for (i = 2; i < n; i++) {
			char c = s[i];

			if (!(is_digit(c) || (s[1] == 'x' && ((c >= 'a' && c <= 'f') ||
							      (c >= 'A' && c <= 'F')))))
				return false;
		}
		return true;
	}
	return false;
}

/* ---- scalar values (shared: config_yaml_scalar.h) ---------------------------- */

/* "expected @what, got <the scalar>". */
static int
msg_expected(char *msg, size_t msgsz, const char *s, size_t n, bool plain,
	     const char *what)
{
	char buf[160];

	return msg_fmt(msg, msgsz, -EINVAL, "expected %s, got %s", what,
		       flowq__yaml_describe(buf, s, n, plain));
}

static int
msg_zeros(char *msg, size_t msgsz, const char *show)
{
	return msg_fmt(msg, msgsz, -EINVAL,
		       "%s has leading zeros (octal in YAML 1.1, decimal in 1.2): "
		       "write it without them",
		       show);
}

/* An integer's magnitude and sign, or the message why not. */
static int
scalar_int(const char *s, size_t n, bool plain, bool *r_neg, uint64_t *r_mag,
	   char show[128], char *msg, size_t msgsz)
{
	enum num_rc rc = parse_int(s, n, r_neg, r_mag);

	if (!plain || rc == NUM_SYNTAX)
		return msg_expected(msg, msgsz, s, n, plain, "an integer");
	flowq__yaml_show(show, s, n);
	if (rc == NUM_ZEROS)
		return msg_zeros(msg, msgsz, show);
	if (rc == NUM_OVERFLOW)
		return msg_fmt(msg, msgsz, -EINVAL, "%s does not fit in 64 bits", show);
	return 0;
}

int
flowq__yaml_parse_uint(const char *s, size_t n, bool plain, uint64_t max, uint64_t *r,
		       char *msg, size_t msgsz)
{
	char show[128];
	bool neg;
	uint64_t mag;
	int rc = scalar_int(s, n, plain, &neg, &mag, show, msg, msgsz);

	if (rc != 0)
		return rc;
	if (neg && mag != 0)
		return msg_fmt(msg, msgsz, -EINVAL, "%s is negative (must be >= 0)",
			       show);
	if (mag > max)
		return msg_fmt(msg, msgsz, -EINVAL, "%s is above %" PRIu64, show, max);
	*r = mag;
	return 0;
}

int
flowq__yaml_parse_sint(const char *s, size_t n, bool plain, unsigned bits, int64_t *r,
		       char *msg, size_t msgsz)
{
	char show[128];
	bool neg;
	uint64_t mag, lim = UINT64_C(1) << (bits - 1); /* |min|; max = lim - 1 */
	int rc = scalar_int(s, n, plain, &neg, &mag, show, msg, msgsz);

	if (rc != 0)
		return rc;
	if (neg ? mag > lim : mag >= lim)
		return msg_fmt(msg, msgsz, -EINVAL,
			       "%s is not in [-%" PRIu64 ", %" PRIu64 "]", show, lim,
			       lim - 1);
	/* -(mag - 1) - 1: no overflow at mag = 2^63. */
	*r = neg && mag > 0 ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	return 0;
}

/* A size (@duration false) or a duration. */
static int
scalar_quantity(const char *s, size_t n, bool plain, bool duration, uint64_t *r,
		char *msg, size_t msgsz)
{
	const char *what =
		duration
			? "a duration (an integer of ns, or a number and a unit: ns, us, "
			  "ms, s, m, h)"
			: "a size (an integer of bytes, or a number and a unit: B, kB, "
			  "MB, "
			  "GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB)";
	uint64_t max = duration ? (uint64_t)INT64_MAX : UINT64_MAX;
	char show[128];

	flowq__yaml_show(show, s, n);
	switch (parse_quantity(s, n, plain, duration ? duration_units : size_units, max,
			       r)) {
	case NUM_OK:
		return 0;
	case NUM_ZEROS:
		return msg_zeros(msg, msgsz, show);
	case NUM_NEGATIVE:
		return msg_fmt(msg, msgsz, -EINVAL, "%s is negative (must be >= 0)",
			       show);
	case NUM_OVERFLOW:
		return msg_fmt(msg, msgsz, -EINVAL,
			       duration ? "%s is more than INT64_MAX ns (about 292 years)"
					: "%s is more than 2^64 - 1 bytes",
			       show);
	case NUM_FRACTION:
		return msg_fmt(msg, msgsz, -EINVAL, "%s is not a whole number of %s",
			       show, duration ? "nanoseconds" : "bytes");
	case NUM_DIGITS:
		return msg_fmt(msg, msgsz, -EINVAL, "%s has more than 19 fraction digits",
			       show);
	case NUM_NEEDS_UNIT:
		return msg_fmt(msg, msgsz, -EINVAL,
			       "%s needs a unit (a bare number is an integer of %s)",
			       show, duration ? "nanoseconds" : "bytes");
	default:
		return msg_expected(msg, msgsz, s, n, plain, what);
	}
}

int
flowq__yaml_parse_size(const char *s, size_t n, bool plain, uint64_t *r, char *msg,
		       size_t msgsz)
{
	return scalar_quantity(s, n, plain, false, r, msg, msgsz);
}

int
flowq__yaml_parse_duration(const char *s, size_t n, bool plain, bool none, int64_t *r,
			   char *msg, size_t msgsz)
{
	uint64_t v;
	int rc;

	if (none && n == 4 && memcmp(s, "none", 4) == 0) {
		*r = FLOWQ_TTL_NONE;
		return 0;
	}
	if ((rc = scalar_quantity(s, n, plain, true, &v, msg, msgsz)) == 0)
		*r = (int64_t)v;
	return rc;
}

int
flowq__yaml_parse_real(const char *s, size_t n, bool plain, locale_t c_locale, double *r,
		       char *msg, size_t msgsz)
{
	char show[128], *end;
	double v;

	if (!plain)
		return msg_expected(msg, msgsz, s, n, plain, "a number");
	if (is_one_of(s, n, yaml_inf)) {
		*r = INFINITY;
		return 0;
	}
	if (is_one_of(s, n, yaml_ninf)) {
		*r = -INFINITY;
		return 0;
	}
	if (is_one_of(s, n, yaml_nan)) {
		*r = NAN;
		return 0;
	}
	if (!is_core_number(s, n))
		return msg_expected(msg, msgsz, s, n, plain, "a number");
	/* libyaml NUL-terminates values; the C locale makes '.' the decimal
	 * point whatever setlocale() the host ran. */
	errno = 0;
	v = strtod_l(s, &end, c_locale);
	if (end != s + n)
		return msg_expected(msg, msgsz, s, n, plain, "a number");
	if (errno == ERANGE && isinf(v))
		return msg_fmt(msg, msgsz, -EINVAL, "%s is out of the range of a double",
			       flowq__yaml_show(show, s, n));
	*r = v;
	return 0;
}

int
flowq__yaml_parse_bool(const char *s, size_t n, bool plain, bool *r, char *msg,
		       size_t msgsz)
{
	char show[128];

	if (plain && is_one_of(s, n, yaml_true)) {
		*r = true;
		return 0;
	}
	if (plain && is_one_of(s, n, yaml_false)) {
		*r = false;
		return 0;
	}
	if (plain && is_one_of(s, n, yaml11_bool))
		return msg_fmt(msg, msgsz, -EINVAL,
			       "%s is a boolean only in YAML 1.1: write true or false",
			       flowq__yaml_show(show, s, n));
	return msg_expected(msg, msgsz, s, n, plain, "true or false");
}

int
flowq__yaml_check_name(const char *s, size_t n, bool plain, char *msg, size_t msgsz)
{
	char show[128];

	if (plain && is_core_non_string(s, n))
		return msg_expected(msg, msgsz, s, n, plain,
				    "a name (quote it if it is one)");
	if (memchr(s, '\0', n) != NULL)
		return msg_fmt(msg, msgsz, -EINVAL, "\"%s\" contains a NUL character",
			       flowq__yaml_show(show, s, n));
	return 0;
}

/* ---- values ------------------------------------------------------------------ */

/* "expected @what, got ..." for the current event. */
static int
yl_expected(struct yl *l, yaml_mark_t m, const char *path, const char *what)
{
	char buf[160];

	return yl_fail(l, -EINVAL, m, path, "expected %s, got %s", what, yl_what(l, buf));
}

/* A shared parser's failure (@rc, @msg) as the message for @path. */
static int
yl_scalar_fail(struct yl *l, int rc, yaml_mark_t m, const char *path, const char *msg)
{
	return rc == 0 ? 0 : yl_fail(l, rc, m, path, "%s", msg);
}

static int
yl_store_int(struct yl *l, const struct yk *k, void *dst, yaml_mark_t m, const char *path)
{
	char msg[FLOWQ__YAML_MSG];
	uint64_t u = 0;
	int rc;

	if (k->kind == YK_UINT) {
		uint64_t max =
			k->size >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * k->size)) - 1;

		rc = flowq__yaml_parse_uint(yl_sv(l), yl_sn(l), yl_plain(l), max, &u, msg,
					    sizeof(msg));
	} else {
		unsigned bits = k->size >= 8 ? 64 : 8 * (unsigned)k->size;
		int64_t v = 0;

		rc = flowq__yaml_parse_sint(yl_sv(l), yl_sn(l), yl_plain(l), bits, &v,
					    msg, sizeof(msg));
		u = (uint64_t)
			v; /* two's complement: its low bytes are the narrow value */
	}
	if (rc != 0)
		return yl_scalar_fail(l, rc, m, path, msg);
	/* The unsigned type of the field's width: a signed field may be
	 * written through it (C11 6.5p7), and the value is in range. */
	switch (k->size) {
	case 1:
		*(uint8_t *)dst = (uint8_t)u;
		break;
	case 2:
		*(uint16_t *)dst = (uint16_t)u;
		break;
	case 4:
		*(uint32_t *)dst = (uint32_t)u;
		break;
	default:
		*(uint64_t *)dst = u;
		break;
	}
	return 0;
}

static int
yl_store_quantity(struct yl *l, const struct yk *k, void *dst, yaml_mark_t m,
		  const char *path)
{
	char msg[FLOWQ__YAML_MSG];

	if (k->kind == YK_DURATION)
		return yl_scalar_fail(
			l,
			flowq__yaml_parse_duration(yl_sv(l), yl_sn(l), yl_plain(l),
						   (k->flags & YK_NONE) != 0, dst, msg,
						   sizeof(msg)),
			m, path, msg);
	return yl_scalar_fail(l,
			      flowq__yaml_parse_size(yl_sv(l), yl_sn(l), yl_plain(l), dst,
						     msg, sizeof(msg)),
			      m, path, msg);
}

static int
yl_store_real(struct yl *l, double *dst, yaml_mark_t m, const char *path)
{
	char msg[FLOWQ__YAML_MSG];

	return yl_scalar_fail(l,
			      flowq__yaml_parse_real(yl_sv(l), yl_sn(l), yl_plain(l),
						     l->c_locale, dst, msg, sizeof(msg)),
			      m, path, msg);
}

static int
yl_store_bool(struct yl *l, bool *dst, yaml_mark_t m, const char *path)
{
	char msg[FLOWQ__YAML_MSG];

	return yl_scalar_fail(l,
			      flowq__yaml_parse_bool(yl_sv(l), yl_sn(l), yl_plain(l), dst,
						     msg, sizeof(msg)),
			      m, path, msg);
}

static int
yl_store_name(struct yl *l, const struct yk *k, const char **dst, yaml_mark_t m,
	      const char *path)
{
	const char *s = yl_sv(l);
	size_t n = yl_sn(l);
	struct yl_str *str;
	char msg[FLOWQ__YAML_MSG];
	int rc;

	if ((rc = flowq__yaml_check_name(s, n, yl_plain(l), msg, sizeof(msg))) != 0)
		return yl_scalar_fail(l, rc, m, path, msg);
	for (const struct yk_refuse *r = k->aux; r != NULL && r->value != NULL; r++) {
		if (strlen(r->value) == n && memcmp(r->value, s, n) == 0)
			return yl_fail(l, -EINVAL, m, path, "%s", r->why);
	}
	if ((str = yl_malloc(sizeof(*str) + n + 1)) == NULL)
		return yl_nomem(l);
	memcpy(str->s, s, n);
	str->s[n] = '\0';
	str->next = l->owned->names;
	l->owned->names = str;
	*dst = str->s;
	return 0;
}

static int
yl_store_enum(struct yl *l, const struct yk *k, int *dst, yaml_mark_t m, const char *path)
{
	char what[160];
	size_t pos = 0;

	for (const struct yk_enum *e = k->aux; e->name != NULL; e++) {
		if (strlen(e->name) == yl_sn(l) &&
		    memcmp(e->name, yl_sv(l), yl_sn(l)) == 0) {
			*dst = e->value;
			return 0;
		}
	}
	for (const struct yk_enum *e = k->aux; e->name != NULL && pos < sizeof(what); e++)
		pos += (size_t)snprintf(what + pos, sizeof(what) - pos, "%s%s",
					pos == 0 ? "" : " or ", e->name);
	return yl_expected(l, m, path, what);
}

static int
yl_map(struct yl *l, const struct yk_table *t, void *base, const char *pre, bool template,
       yaml_mark_t map_mark);

static int
yl_bands(struct yl *l, const struct yk *k, void *base, const char *path);

/*
 * The value of key @k (the current event), stored into @base; @m is the
 * key's mark, @path its path.
 */
static int
yl_value(struct yl *l, const struct yk *k, void *base, const char *path, yaml_mark_t m)
{
	void *dst = (char *)base + k->offset;
	char pre[YL_PATH_MAX];
	int rc;

	if (k->kind == YK_HOST)
		return yl_fail(l, -EINVAL, m, path, "%s", (const char *)k->aux);
	if ((rc = yl_plain_node(l, path)) != 0)
		return rc;
	switch (k->kind) {
	case YK_MAP:
		if (l->ev.type != YAML_MAPPING_START_EVENT)
			return yl_expected(l, m, path, "a mapping");
		yl_path(pre, "%s.", path);
		return yl_map(l, k->aux, dst, pre, (k->flags & YK_TEMPLATE) != 0, m);
	case YK_BANDS:
		if (l->ev.type != YAML_SEQUENCE_START_EVENT)
			return yl_expected(l, m, path, "a sequence of bands");
		return yl_bands(l, k, base, path);
	default:
		break;
	}
	if (l->ev.type != YAML_SCALAR_EVENT) {
		static const char *const what[] = {
			[YK_INT] = "an integer", [YK_UINT] = "an integer",
			[YK_SIZE] = "a size",    [YK_DURATION] = "a duration",
			[YK_REAL] = "a number",  [YK_BOOL] = "true or false",
			[YK_NAME] = "a name",    [YK_ENUM] = "a name",
		};
		return yl_expected(l, m, path, what[k->kind]);
	}
	switch (k->kind) {
	case YK_INT:
	case YK_UINT:
		return yl_store_int(l, k, dst, m, path);
	case YK_SIZE:
	case YK_DURATION:
		return yl_store_quantity(l, k, dst, m, path);
	case YK_REAL:
		return yl_store_real(l, dst, m, path);
	case YK_BOOL:
		return yl_store_bool(l, dst, m, path);
	case YK_NAME:
		return yl_store_name(l, k, dst, m, path);
	case YK_ENUM:
		return yl_store_enum(l, k, dst, m, path);
	default:
		return yl_fail(l, -EINVAL, m, path, "internal error: key kind %d",
			       (int)k->kind);
	}
}

/* The keys of @t a document may give, for "unknown key" messages. */
static const char *
yl_known(char buf[768], const struct yk_table *t, bool template)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->n && pos < 768; i++) {
		const struct yk *k = &t->keys[i];

		if (k->kind == YK_HOST || (template && (k->flags & YK_NOT_TEMPLATE)))
			continue;
		pos += (size_t)snprintf(buf + pos, 768 - pos, "%s%s", pos ? ", " : "",
					k->name);
	}
	return buf;
}

/*
 * A mapping of the keys of @t into @base (the current event is its
 * MAPPING_START, at @map_mark); @pre prefixes key paths ("" or
 * "saturation."). Leaves the current event at the MAPPING_END.
 */
static int
yl_map(struct yl *l, const struct yk_table *t, void *base, const char *pre, bool template,
       yaml_mark_t map_mark)
{
	yaml_mark_t seen[YK_MAX_KEYS];
	uint64_t seen_mask = 0;
	char path[YL_PATH_MAX], show[128], known[768], at[64];
	size_t plen = strlen(pre);
	int rc;

	/* The mapping's own path, for errors about it ("" at the top). */
	yl_path(path, "%.*s", plen > 0 ? (int)plen - 1 : 0, pre);
	for (;;) {
		const struct yk *k = NULL;
		yaml_mark_t km;
		size_t i;

		if ((rc = yl_next(l)) != 0)
			return rc;
		if (l->ev.type == YAML_MAPPING_END_EVENT)
			break;
		km = yl_mark(l);
		if ((rc = yl_plain_node(l, path)) != 0)
			return rc;
		if (l->ev.type != YAML_SCALAR_EVENT)
			return yl_fail(l, -EINVAL, km, path,
				       "keys must be names, got %s as a key",
				       l->ev.type == YAML_MAPPING_START_EVENT
					       ? "a mapping"
					       : "a sequence");
		for (i = 0; i < t->n; i++) {
			if (strlen(t->keys[i].name) == yl_sn(l) &&
			    memcmp(t->keys[i].name, yl_sv(l), yl_sn(l)) == 0) {
				k = &t->keys[i];
				break;
			}
		}
		if (k == NULL) {
			yl_path(path, "%s%s", pre,
				flowq__yaml_show(show, yl_sv(l), yl_sn(l)));
			return yl_fail(l, -EINVAL, km, path,
				       "unknown key (expected one of: %s)",
				       yl_known(known, t, template));
		}
		yl_path(path, "%s%s", pre, k->name);
		if (seen_mask & (UINT64_C(1) << i))
			return yl_fail(l, -EINVAL, km, path,
				       "duplicate key (first at %s)",
				       yl_at(l, at, seen[i]));
		seen_mask |= UINT64_C(1) << i;
		seen[i] = km;
		if (template && (k->flags & YK_NOT_TEMPLATE))
			return yl_fail(l, -EINVAL, km, path, "%s", k->aux2);
		if ((rc = yl_mark_add(l, path, km)) != 0 || (rc = yl_next(l)) != 0 ||
		    (rc = yl_value(l, k, base, path, km)) != 0)
			return rc;
		yl_path(path, "%.*s", plen > 0 ? (int)plen - 1 : 0, pre);
	}
	for (size_t i = 0; i < t->n && !template; i++) {
		if ((t->keys[i].flags & YK_REQUIRED) && !(seen_mask & (UINT64_C(1) << i)))
			return yl_fail(l, -EINVAL, map_mark, path, "missing key \"%s\"",
				       t->keys[i].name);
	}
	return 0;
}

/* The bands sequence (the current event is its SEQUENCE_START). */
static int
yl_bands(struct yl *l, const struct yk *k, void *base, const char *path)
{
	struct flowq_band_config *bands = l->owned->bands, tmpl;
	struct flowq_config defaults;
	char ipath[YL_PATH_MAX], pre[YL_PATH_MAX];
	size_t n = 0;
	int rc;

	/* Each band starts from the built-in template values. */
	flowq_config_init(&defaults);
	tmpl = defaults.default_band;
	for (;;) {
		const struct yl_mark *pm;
		yaml_mark_t im;

		if ((rc = yl_next(l)) != 0)
			return rc;
		if (l->ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		im = yl_mark(l);
		yl_path(ipath, "%s[%zu]", path, n);
		if (n == FLOWQ_MAX_BANDS)
			return yl_fail(l, -EINVAL, im, ipath,
				       "more than FLOWQ_MAX_BANDS (%u) bands",
				       FLOWQ_MAX_BANDS);
		if ((rc = yl_plain_node(l, ipath)) != 0)
			return rc;
		if (l->ev.type != YAML_MAPPING_START_EVENT)
			return yl_expected(l, im, ipath, "a mapping (one band)");
		if ((rc = yl_mark_add(l, ipath, im)) != 0)
			return rc;
		bands[n] = tmpl;
		yl_path(pre, "%s.", ipath);
		if ((rc = yl_map(l, &band_table, &bands[n], pre, false, im)) != 0)
			return rc;
		/* Unique priorities: report the later band, with the first. */
		for (size_t j = 0; j < n; j++) {
			char jpath[YL_PATH_MAX], at[64];
			const struct yl_mark *jm;

			if (bands[j].priority != bands[n].priority)
				continue;
			yl_path(ipath, "%s[%zu].priority", path, n);
			yl_path(jpath, "%s[%zu].priority", path, j);
			/* Both were recorded: priority is a required key. */
			pm = yl_mark_find(l, ipath);
			jm = yl_mark_find(l, jpath);
			if (pm == NULL || jm == NULL)
				return yl_fail(l, -EINVAL, im, ipath,
					       "%" PRId32 " duplicates %s",
					       bands[n].priority, jpath);
			return yl_fail(l, -EINVAL, pm->m, ipath,
				       "%" PRId32 " duplicates %s (at %s)",
				       bands[n].priority, jpath, yl_at(l, at, jm->m));
		}
		n++;
	}
	*(const struct flowq_band_config **)((char *)base + k->offset) = bands;
	*(size_t *)((char *)base + k->offset2) = n;
	return 0;
}

/* ---- document ------------------------------------------------------------------ */

static bool
yl_scalar_is(const struct yl *l, const char *s)
{
	return l->ev.type == YAML_SCALAR_EVENT && strlen(s) == yl_sn(l) &&
	       memcmp(s, yl_sv(l), yl_sn(l)) == 0;
}

/* The configuration mapping: the current event, at @m, under @path. */
static int
yl_config(struct yl *l, struct flowq_config *cfg, const char *path, yaml_mark_t m)
{
	char root[YL_PATH_MAX];
	int rc;

	if ((rc = yl_plain_node(l, path)) != 0)
		return rc;
	if (l->ev.type != YAML_MAPPING_START_EVENT) {
		char buf[160];

		if (path[0] == '\0')
			return yl_fail(l, -EINVAL, m, NULL,
				       "the document is %s: expected a mapping of engine "
				       "configuration keys",
				       yl_what(l, buf));
		return yl_expected(l, m, path, "a mapping of engine configuration keys");
	}
	/* The config itself: validate's last-resort location ("" or the
	 * key, as l->pre without its dot). */
	yl_path(root, "%.*s", l->pre[0] != '\0' ? (int)strlen(l->pre) - 1 : 0, l->pre);
	if ((rc = yl_mark_add(l, root, m)) != 0)
		return rc;
	return yl_map(l, &config_table, cfg, l->pre, false, m);
}

static int
yl_document(struct yl *l, const char *key, struct flowq_config *cfg)
{
	yaml_mark_t found = {0}, root;
	bool have = false;
	char at[64];
	int rc;

	if ((rc = yl_next(l)) != 0) /* STREAM_START */
		return rc;
	if ((rc = yl_next(l)) != 0)
		return rc;
	if (l->ev.type == YAML_STREAM_END_EVENT)
		return yl_fail(
			l, -EINVAL, yl_mark(l), NULL,
			"empty document: expected a mapping of engine configuration "
			"keys");
	if ((rc = yl_next(l)) != 0) /* DOCUMENT_START -> the root node */
		return rc;
	if (key == NULL) {
		if ((rc = yl_config(l, cfg, "", yl_mark(l))) != 0)
			return rc;
	} else {
		if (l->ev.type != YAML_MAPPING_START_EVENT) {
			char buf[160];

			return yl_fail(
				l, -EINVAL, yl_mark(l), NULL,
				"the document is %s: expected a mapping with the key "
				"\"%s\"",
				yl_what(l, buf), key);
		}
		root = yl_mark(l);
		for (;;) {
			yaml_mark_t km;

			if ((rc = yl_next(l)) != 0)
				return rc;
			if (l->ev.type == YAML_MAPPING_END_EVENT)
				break;
			km = yl_mark(l);
			if (yl_scalar_is(l, key)) {
				if (have)
					return yl_fail(l, -EINVAL, km, key,
						       "duplicate key (first at %s)",
						       yl_at(l, at, found));
				have = true;
				found = km;
				if ((rc = yl_next(l)) != 0 ||
				    (rc = yl_config(l, cfg, key, km)) != 0)
					return rc;
				continue;
			}
			/* Another section: the caller's; skip key and value. */
			if ((rc = yl_skip(l, 1)) != 0 || (rc = yl_next(l)) != 0 ||
			    (rc = yl_skip(l, 1)) != 0)
				return rc;
		}
		if (!have)
			return yl_fail(l, -ENOENT, root, NULL,
				       "no top-level key \"%s\" in the document", key);
	}
	if ((rc = yl_next(l)) != 0) /* DOCUMENT_END */
		return rc;
	if ((rc = yl_next(l)) != 0)
		return rc;
	if (l->ev.type != YAML_STREAM_END_EVENT)
		return yl_fail(l, -EINVAL, yl_mark(l), NULL,
			       "a second document: a configuration is one document");
	return 0;
}

/*
 * flowq_config_validate(), with its message placed at the key it names
 * (the longest recorded prefix of its field path).
 */
static int
yl_validate(struct yl *l, const struct flowq_config *cfg)
{
	char msg[1024], path[YL_PATH_MAX], field[YL_PATH_MAX];
	const struct yl_mark *m = NULL;
	const char *text = msg;
	size_t n;
	int rc = flowq_config_validate(cfg, msg, sizeof(msg));

	if (rc == 0)
		return 0;
	n = strcspn(msg, ": ");
	yl_path(path, "%s%.*s", l->pre, (int)(n < sizeof(path) ? n : sizeof(path) - 1),
		msg);
	/* "<field path>: <what>": the path goes where key paths go. */
	field[0] = '\0';
	if (n > 0 && msg[n] == ':' && msg[n + 1] == ' ') {
		yl_path(field, "%s", path);
		text = msg + n + 2;
	}
	while ((m = yl_mark_find(l, path)) == NULL && path[0] != '\0') {
		char *dot = strrchr(path, '.'), *br = strrchr(path, '[');
		char *cut = dot > br ? dot : br;

		if (cut == NULL)
			cut = path;
		*cut = '\0';
	}
	if (m == NULL) /* cannot happen: the root is recorded first */
		return yl_fail_plain(l, rc, "%s: %s", l->name, msg);
	return yl_fail(l, rc, m->m, field, "%s", text);
}

/* Read @path whole, at most FLOWQ_CONFIG_YAML_MAX_SIZE bytes. */
int
flowq__yaml_read_file(const char *path, locale_t c_locale, unsigned char **r_buf,
		      size_t *r_len, char *msg, size_t msgsz)
{
	size_t cap = 4096, len = 0;
	unsigned char *buf = NULL;
	int fd, err;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		err = errno;
		return msg_fmt(msg, msgsz, -err, "%s: cannot open: %s", path,
			       strerror_l(err, c_locale));
	}
	for (;;) {
		ssize_t got;

		if (buf == NULL || len == cap) {
			unsigned char *nb;

			if (buf != NULL)
				cap *= 2;
			if (cap > (size_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1)
				cap = (size_t)FLOWQ_CONFIG_YAML_MAX_SIZE + 1;
			if ((nb = yl_malloc(cap)) == NULL) {
				yl_free(buf);
				close(fd);
				return msg_fmt(msg, msgsz, -ENOMEM, "%s: out of memory",
					       path);
			}
			if (len > 0)
				memcpy(nb, buf, len);
			yl_free(buf);
			buf = nb;
		}
		got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = errno;
			yl_free(buf);
			close(fd);
			return msg_fmt(msg, msgsz, -err, "%s: cannot read: %s", path,
				       strerror_l(err, c_locale));
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > FLOWQ_CONFIG_YAML_MAX_SIZE) {
			yl_free(buf);
			close(fd);
			return msg_fmt(
				msg, msgsz, -EFBIG,
				"%s: larger than FLOWQ_CONFIG_YAML_MAX_SIZE (%u bytes)",
				path, FLOWQ_CONFIG_YAML_MAX_SIZE);
		}
	}
	close(fd);
	*r_buf = buf;
	*r_len = len;
	return 0;
}

/* One load: from @path (buf NULL) or from @buf/@len. */
static int
yl_load(struct flowq_config_yaml *r_cfg, const char *path, const void *buf, size_t len,
	const char *name, const char *key, const struct flowq__config_yaml_where *where,
	char *errbuf, size_t errbuf_size)
{
	struct yl l = {
		.name = name,
		.err = errbuf,
		.err_size = errbuf_size,
		.where = where,
		.pre = "",
	};
	char pre[YL_PATH_MAX];
	unsigned char *file = NULL;
	bool parser = false;
	int rc;

	if (errbuf != NULL && errbuf_size > 0)
		errbuf[0] = '\0';
	flowq_config_init(&r_cfg->config);
	r_cfg->owned = NULL;
	l.c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (l.c_locale == (locale_t)0) {
		rc = yl_fail_plain(&l, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	if (where != NULL && key != NULL) {
		yl_path(pre, "%s.", key);
		l.pre = pre;
	}
	if (path != NULL) {
		if ((rc = flowq__yaml_read_file(path, l.c_locale, &file, &len, errbuf,
						errbuf_size)) != 0)
			goto out;
		buf = file;
	} else if (len > FLOWQ_CONFIG_YAML_MAX_SIZE) {
		rc = yl_fail_plain(
			&l, -EFBIG,
			"%s: larger than FLOWQ_CONFIG_YAML_MAX_SIZE (%u bytes)", name,
			FLOWQ_CONFIG_YAML_MAX_SIZE);
		goto out;
	}
	l.in = buf != NULL ? buf : (const unsigned char *)"";
	l.len = len;
	if ((l.owned = yl_malloc(sizeof(*l.owned))) == NULL) {
		rc = yl_nomem(&l);
		goto out;
	}
	l.owned->names = NULL;
	if (!yaml_parser_initialize(&l.parser)) {
		rc = yl_nomem(&l);
		goto out;
	}
	parser = true;
	yaml_parser_set_input_string(&l.parser, l.in, l.len);
	if ((rc = yl_document(&l, key, &r_cfg->config)) != 0 ||
	    (rc = yl_validate(&l, &r_cfg->config)) != 0)
		goto out;
	r_cfg->owned = l.owned;
	l.owned = NULL;
out:
	if (l.have_ev)
		yaml_event_delete(&l.ev);
	if (parser)
		yaml_parser_delete(&l.parser);
	yl_marks_free(&l);
	yl_free(file);
	if (l.c_locale != (locale_t)0)
		freelocale(l.c_locale);
	if (rc != 0) {
		yl_owned_free(l.owned);
		flowq_config_init(&r_cfg->config);
		r_cfg->owned = NULL;
	}
	return rc;
}

int
flowq_config_load_yaml(struct flowq_config_yaml *r_cfg, const char *path, const char *key,
		       char *errbuf, size_t errbuf_size)
{
	if (r_cfg == NULL || path == NULL) {
		if (errbuf != NULL && errbuf_size > 0)
			snprintf(errbuf, errbuf_size, "%s is NULL",
				 r_cfg == NULL ? "r_cfg" : "path");
		return -EFAULT;
	}
	return yl_load(r_cfg, path, NULL, 0, path, key, NULL, errbuf, errbuf_size);
}

int
flowq_config_load_yaml_buf(struct flowq_config_yaml *r_cfg, const void *buf, size_t len,
			   const char *name, const char *key, char *errbuf,
			   size_t errbuf_size)
{
	return flowq__config_load_yaml_where(r_cfg, buf, len, name, key, NULL, errbuf,
					     errbuf_size);
}

int
flowq__config_load_yaml_where(struct flowq_config_yaml *r_cfg, const void *buf,
			      size_t len, const char *name, const char *key,
			      const struct flowq__config_yaml_where *where, char *errbuf,
			      size_t errbuf_size)
{
	if (r_cfg == NULL || (buf == NULL && len > 0)) {
		if (errbuf != NULL && errbuf_size > 0)
			snprintf(errbuf, errbuf_size, "%s is NULL",
				 r_cfg == NULL ? "r_cfg" : "buf");
		return -EFAULT;
	}
	return yl_load(r_cfg, NULL, buf, len, name != NULL ? name : "<buffer>", key,
		       where, errbuf, errbuf_size);
}

void
flowq_config_yaml_free(struct flowq_config_yaml *cfg)
{
	if (cfg == NULL)
		return;
	yl_owned_free(cfg->owned);
	cfg->owned = NULL;
	flowq_config_init(&cfg->config);
}

/* ---- writing ------------------------------------------------------------- */

/*
 * The writer walks the same key tables as the loader, so every key it
 * writes is one the loader reads back to the same value (tested as a round
 * trip), and a field added to a table is written without more code.
 */

static int64_t
yw_signed(const void *p, size_t size)
{
	switch (size) {
	case 1: return *(const int8_t *)p;
	case 2: return *(const int16_t *)p;
	case 4: return *(const int32_t *)p;
	default: return *(const int64_t *)p;
	}
}

static uint64_t
yw_unsigned(const void *p, size_t size)
{
	switch (size) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

/* The largest unit of @p units that divides @p v exactly, or none. */
static void
yw_unit(FILE *out, uint64_t v, const struct unit *units)
{
	const struct unit *best = NULL;
	for (const struct unit *u = units; u->name != NULL && v != 0; u++)
		if (u->scale > 1 && v % u->scale == 0 && (best == NULL || u->scale > best->scale))
			best = u;
	if (best != NULL)
		fprintf(out, "%" PRIu64 "%s", v / best->scale, best->name);
	else
		fprintf(out, "%" PRIu64, v);
}

/* A name as a plain scalar when YAML reads it back as that string, else
 * double-quoted. */
static void
yw_name(FILE *out, const char *s)
{
	size_t n = strlen(s);
	bool plain = n > 0 && !is_core_non_string(s, n) && !is_one_of(s, n, yaml11_bool);
	for (const char *c = s; plain && *c; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			(*c >= '0' && *c <= '9' && c != s) || *c == '_' ||
			(*c == '-' && c != s);
	if (plain) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(out, "\\x%02x", *c);
		else
			fputc(*c, out);
	}
	fputc('"', out);
}

static bool yw_differs(const struct yk *k, const void *obj, const void *def);

static void yw_table(FILE *out, const struct yk_table *t, const void *obj, const void *def,
		     unsigned indent, bool all, bool first_dash, bool tmpl);

/* One value (a scalar, or a nested mapping/sequence on the next lines). */
static void
yw_value(FILE *out, const struct yk *k, const void *obj, unsigned indent, bool all)
{
	const char *p = (const char *)obj + k->offset;
	char num[40];
	switch (k->kind) {
	case YK_INT:
		fprintf(out, "%" PRId64 "\n", yw_signed(p, k->size));
		break;
	case YK_UINT:
		fprintf(out, "%" PRIu64 "\n", yw_unsigned(p, k->size));
		break;
	case YK_SIZE:
		yw_unit(out, *(const uint64_t *)p, size_units);
		fputc('\n', out);
		break;
	case YK_DURATION: {
		int64_t v = *(const int64_t *)p;
		if ((k->flags & YK_NONE) && v == FLOWQ_TTL_NONE)
			fputs("none", out);
		else
			yw_unit(out, (uint64_t)v, duration_units);
		fputc('\n', out);
		break;
	}
	case YK_REAL: {
		double v = *(const double *)p;
		if (isnan(v))
			fputs(".nan", out);
		else if (isinf(v))
			fputs(v > 0 ? ".inf" : "-.inf", out);
		else {
			/* The shortest %.Ng (N = 15..17) that reads back to v
			 * ("0.9", not "0.90000000000000002"), in the C locale:
			 * a '.' whatever the process locale says. */
			locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
			locale_t old = c != (locale_t)0 ? uselocale(c) : (locale_t)0;
			for (int prec = 15; prec <= 17; prec++) {
				snprintf(num, sizeof(num), "%.*g", prec, v);
				if (strtod(num, NULL) == v)
					break;
			}
			if (c != (locale_t)0) {
				uselocale(old);
				freelocale(c);
			}
			fputs(num, out);
		}
		fputc('\n', out);
		break;
	}
	case YK_BOOL:
		fputs(*(const bool *)p ? "true\n" : "false\n", out);
		break;
	case YK_NAME: {
		const char *s = *(const char *const *)p;
		if (s == NULL)
			fputs("null\n", out); /* a host's NULL: written as given */
		else {
			yw_name(out, s);
			fputc('\n', out);
		}
		break;
	}
	case YK_ENUM: {
		int v = *(const int *)p;
		const char *name = "?";
		for (const struct yk_enum *e = k->aux; e->name != NULL; e++)
			if (e->value == v)
				name = e->name;
		fprintf(out, "%s\n", name);
		break;
	}
	case YK_MAP: {
		/* A template band's defaults are flowq_config_init()'s; other
		 * maps compare against the defaults of the same struct. */
		struct flowq_config d;
		flowq_config_init(&d);
		fputc('\n', out);
		yw_table(out, k->aux, p, (const char *)&d + k->offset, indent + 2, all, false,
			 (k->flags & YK_TEMPLATE) != 0);
		break;
	}
	case YK_BANDS: {
		const struct flowq_band_config *b = *(const struct flowq_band_config *const *)p;
		size_t n = *(const size_t *)((const char *)obj + k->offset2);
		struct flowq_config d;
		flowq_config_init(&d);
		fputs(n == 0 ? " []\n" : "\n", out);
		for (size_t i = 0; i < n; i++)
			yw_table(out, &band_table, &b[i], &d.default_band, indent + 4, all, true,
				 false);
		break;
	}
	case YK_HOST:
		break;
	}
}

static bool
yw_differs(const struct yk *k, const void *obj, const void *def)
{
	const char *p = (const char *)obj + k->offset, *q = (const char *)def + k->offset;
	switch (k->kind) {
	case YK_NAME: {
		const char *a = *(const char *const *)p, *b = *(const char *const *)q;
		return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
	}
	case YK_REAL: {
		double a = *(const double *)p, b = *(const double *)q;
		return !(a == b || (isnan(a) && isnan(b)));
	}
	case YK_BANDS:
		return *(const size_t *)((const char *)obj + k->offset2) != 0;
	case YK_MAP:
		for (size_t i = 0; i < ((const struct yk_table *)k->aux)->n; i++)
			if (yw_differs(&((const struct yk_table *)k->aux)->keys[i], p, q))
				return true;
		return false;
	case YK_HOST:
		return false;
	default:
		return memcmp(p, q, k->size) != 0;
	}
}

static void
yw_table(FILE *out, const struct yk_table *t, const void *obj, const void *def, unsigned indent,
	 bool all, bool first_dash, bool tmpl)
{
	bool dash = first_dash;
	for (size_t i = 0; i < t->n; i++) {
		const struct yk *k = &t->keys[i];
		if (k->kind == YK_HOST || (tmpl && (k->flags & YK_NOT_TEMPLATE)))
			continue;
		bool required = (k->flags & YK_REQUIRED) != 0;
		if (!all && !required && !yw_differs(k, obj, def))
			continue;
		if (dash) {
			fprintf(out, "%*s- ", (int)(indent - 2), "");
			dash = false;
		} else {
			fprintf(out, "%*s", (int)indent, "");
		}
		fprintf(out, "%s:", k->name);
		if (k->kind != YK_MAP && k->kind != YK_BANDS)
			fputc(' ', out);
		yw_value(out, k, obj, indent, all);
	}
	if (dash) /* an entry with nothing to say: still one sequence item */
		fprintf(out, "%*s- {}\n", (int)(indent - 2), "");
}

int
flowq_config_write_yaml(FILE *out, const struct flowq_config *cfg, unsigned indent,
			bool only_changed)
{
	if (out == NULL || cfg == NULL || (cfg->bands == NULL && cfg->nbands > 0))
		return -EFAULT;
	struct flowq_config d;
	flowq_config_init(&d);
	yw_table(out, &config_table, cfg, &d, indent, !only_changed, false, false);
	/* As flowq_metrics_write(): a full disk or a closed pipe shows only
	 * when stdio writes its buffer, so flush before asking ferror(). */
	if (fflush(out) == EOF || ferror(out))
		return -EIO;
	return 0;
}
