/*
 * spec.c: the workload spec (sim.h: struct sim_spec) from YAML, through
 * libyaml, with a strict schema. This comment is the reference for the
 * document; tools/scenarios/default.yaml is the worked example.
 *
 * The document is one YAML mapping. `engine:` is the engine's configuration,
 * read by the engine's own loader (flowq/config_yaml.h: its keys, values,
 * refusals and messages), and every other key is the workload:
 *
 *   name: text                  default: the file name without directory
 *                               and extension ("<default>": "default")
 *   description: text           default ""
 *   sim:
 *     mode: virtual | realtime  default realtime (CLI flags override)
 *     seed: integer             default 1 (0 .. 2^64 - 1)
 *     duration: duration > 0    default 60s; arrivals stop here
 *     drain: duration           default 10s; after duration, for the queue
 *                               to empty; duration + drain <= INT64_MAX ns
 *     window: duration > 0      default duration / 60 rounded to the
 *                               nearest ms, at least 1ms; at most
 *                               SIM_MAX_WINDOWS windows in duration
 *     producers: 1 .. 1024      default 2 (realtime: submitting threads)
 *     inversion_grace: duration default 1ms
 *   engine: {...}               optional; absent = flowq_config_init()
 *   backend:                    required
 *     slots: 1 .. 2^32 - 1      required
 *     service: dist (duration)  required unless every flow is a trace flow
 *                               and trace.service_column is set
 *     per_byte: number + duration unit, >= 0 (fractions of a ns allowed:
 *                               "0.25ns"; a bare number is ns); default 0
 *     slowdown: [{at: duration, for: duration > 0, factor: number > 0}]
 *                               each key required; sorted by at, not
 *                               overlapping; default none
 *   trace:                      optional; required iff a flow has
 *                               arrival process trace
 *     file: text                required; see "Trace files" below
 *     time_column: text         required
 *     time_scale: number > 0    default 1
 *     start: duration           default 0
 *     cost_column: text         optional (absent: each trace flow's size)
 *     bytes_per_unit: number > 0  default 1; only with cost_column
 *     service_column: text      optional (absent: backend.service)
 *     service_per_unit: duration  required with service_column, else refused
 *     service_base: duration    default 0; only with service_column
 *     assign: weighted | hash | column   default weighted
 *     assign_column: text       required iff assign is column
 *   flows:                      required, at least one class
 *     - id: text                required, non-empty; count > 1 makes the
 *                               ids "<id>-0" .. "<id>-<count-1>"; every
 *                               id unique and at most FLOWQ_FLOW_ID_MAX bytes
 *       count: 1 .. 2^32 - 1    default 1; all counts sum to <= SIM_MAX_FLOWS
 *       priority: int32         required
 *       weight: 1 .. 2^32 - 1   default 1
 *       arrival:                required
 *         process: poisson | onoff | closed | trace   required, and then
 *           poisson: rate (required)
 *           onoff:   rate, on, off (dists, duration; all required)
 *           closed:  clients (1 .. 2^32 - 1), think (dist, duration); both
 *                    required; all flows' count x clients <= 2^24
 *           trace:   share (number > 0, default 1; not with assign column)
 *           any:     start (duration, default 0), stop (duration > start;
 *                    default 0 = the spec's duration)
 *       size: dist (size)       required, except for trace flows when
 *                               trace.cost_column is set (then refused)
 *       ttl: duration | none    default 0 (the engine's default TTL)
 *       deadline: duration      default 0 (none)
 *       cancel: {prob: [0, 1] (required), after: dist (duration; required
 *                when prob > 0)}   default prob 0
 *     (sim_flow_spec.line: the class's line in the file, 0 if it came from
 *     an override; .first: its first flow's index over all classes)
 *   compare:                    optional: variants run beside the spec
 *     - name: text              required, unique
 *       set: {dotted.key: value, ...}  required, at least one entry; each
 *                               entry is an override (below); a key with
 *                               [ ] must be quoted in a flow mapping
 *                               ({"flows[0].weight": 2}), not in a block one
 *
 * Values. Integers, sizes, durations, numbers and booleans are read by the
 * engine loader's own grammars (core/config_yaml_scalar.h: "10ms", "1.5KiB",
 * no leading zeros, YAML 1.2 core numbers in the C locale). A rate is a
 * number of requests per second, optionally with "/" and a duration unit:
 * "200", "200/s", "12000/m", "0.5/ms". Text is any scalar but null or ""
 * (description may be ""): ids, names, columns, files; "7" is the id "7".
 * A distribution (dist) is a
 * plain value (a constant in the field's unit), or a mapping
 *   {dist: const, value: V} | {dist: uniform, min: A, max: B} (A <= B)
 *   | {dist: exp, mean: M} (M > 0) | {dist: lognormal, median: M, sigma: S}
 *   (M > 0, S >= 0) | {dist: pareto, min: A, shape: K} (A > 0, K > 1)
 * where V, A, B, M are sizes or durations as the field is, and sigma and
 * shape are numbers. A size distribution's parameters are at most
 * FLOWQ_LIMIT_MAX bytes.
 *
 * Refused, as by the engine loader: unknown keys, duplicate keys, anchors
 * and aliases, tags, non-scalar keys, nesting deeper than
 * FLOWQ_CONFIG_YAML_MAX_DEPTH, input above FLOWQ_CONFIG_YAML_MAX_SIZE, an
 * empty document, a second document, and what libyaml refuses.
 *
 * Errors: -EINVAL and one message "<file>:<line>:<col>: <key path>: <what>"
 * (1-based), the key path from the document root ("flows[1].arrival.rate",
 * "engine.bands[0].fairness": the engine's messages use full paths here),
 * located at the key of the named entry (for a bad value too), the item of
 * a sequence, or the node that is refused. libyaml's syntax is checked for
 * the whole document first; then the top-level sections in document order
 * (the engine's by its loader when its key is reached); within a section,
 * its keys (unknown, duplicate) before its values; then the rules between
 * sections (trace and trace flows, bands of the flows' priorities, unique
 * flow ids, ...); then the trace file; then each compare variant.
 *
 * Overrides ("key.path=value", sim_spec_load): each is applied, in order,
 * to the document's text before anything is validated, as if the file said
 * so: the value (one YAML scalar or flow collection on one line: "2",
 * "drr", "{dist: exp, mean: 5ms}") replaces the node at the key path, or,
 * if the last keys are missing, is added with them to the deepest mapping
 * that exists; an index must name an existing item ("flows[5]" of two flows
 * is an error). The edit is made in the text (so the rest keeps its lines
 * and columns for messages) and checked:
 * the edited text is parsed again and the value must be found at its path.
 * A problem in an override, or a bad value that came from one, is reported
 * as "override <key=value>: <key path>: <what>". An override into a spec
 * that is UTF-16 is refused (messages locate characters of UTF-8 text).
 *
 * Variants. Each `compare:` entry is checked at load by loading the spec
 * once more with the load's overrides, then the entry's, then "compare=[]"
 * (the variant as `flowq-sim run` runs it: sim.h, struct sim_variant): a
 * failure is reported at the entry ("<file>:<l>:<c>: compare[1].set: <what>"
 * for a bad value of its own, else "...: compare[1]: with this variant:
 * <the message>"). A variant cannot set compare.
 *
 * Trace files. trace.file is used as is when absolute; else it is looked up
 * relative to the spec file's directory (not for a buffer or the built-in
 * default), then in each directory of $FLOWQ_SIM_DATA (colon-separated),
 * then in FLOWQ_SIM_DATA_DIRS (compiled in: tools/flowq-sim/CMakeLists.txt).
 * The first that exists and is not a directory is taken; none: -ENOENT and
 * a message listing every place looked at.
 *
 * How. The text is parsed once into a tree (struct sn: kind, style, value,
 * anchor and tag, start and end marks, children) that keeps libyaml's marks
 * (0-based line, column, and index in characters). Overrides are text
 * edits located by the tree; a list of segments (struct seg) says which
 * characters of the edited text came from the file (and where) or from
 * which override, so every message is located in the file or blamed on an
 * override. The schema walk reads the tree; its recursion depth is bounded
 * by the schema (and the tree's by FLOWQ_CONFIG_YAML_MAX_DEPTH). The engine
 * loader reads the edited text with locating hooks
 * (flowq__config_load_yaml_where) that map its marks the same way.
 *
 * Complexity: O(input) per parse, one parse per override and per variant;
 * flow id uniqueness O(F log F) for F classes. Memory O(input + flows).
 * Allocates (libc); never prints.
 */
#define _GNU_SOURCE /* newlocale, strtod_l */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "config_yaml_internal.h"
#include "config_yaml_scalar.h"
#include "sim.h"

#ifndef FLOWQ_SIM_DATA_DIRS
#define FLOWQ_SIM_DATA_DIRS ""
#endif

/* tools/scenarios/default.yaml, compiled in (default_scenario.c, made by
 * tools/flowq-sim/embed.cmake at build time). */
extern const unsigned char sim_default_spec[];
extern const size_t sim_default_spec_len;

/* Most closed-loop clients over all flows (count x clients). */
#define SPEC_MAX_CLIENTS (UINT64_C(1) << 24)
/* Most components of an override's key path. */
#define SPEC_MAX_PATH 32
/* Key paths in messages. */
#define SPEC_PATH 256

/* ---- allocations ----------------------------------------------------------- */

/*
 * Allocation-failure injection for test_sim_spec (declared there): -1 (the
 * default) never fails; n >= 0 lets n more allocations of this file
 * succeed, then fails every one after. Relaxed: it orders nothing; a test
 * sets it only while no load runs. Compiled in every build (STYLE.md:
 * debug code that cannot rot). libyaml's and the engine loader's own
 * allocations are not counted here (the engine loader has its own hook).
 */
_Atomic long sim__spec_fail_after = -1;

static bool
sp_fails(void)
{
	long f = atomic_load_explicit(&sim__spec_fail_after, memory_order_relaxed);

	if (f < 0)
		return false;
	if (f > 0)
		atomic_store_explicit(&sim__spec_fail_after, f - 1, memory_order_relaxed);
	return f == 0;
}

static void *
sp_malloc(size_t n)
{
	return sp_fails() ? NULL : malloc(n);
}

static void *
sp_calloc(size_t n, size_t size)
{
	return sp_fails() ? NULL : calloc(n, size);
}

static void *
sp_realloc(void *p, size_t n)
{
	return sp_fails() ? NULL : realloc(p, n);
}

static char *
sp_strndup(const char *s, size_t n)
{
	char *d = sp_malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static char *
sp_strdup(const char *s)
{
	return sp_strndup(s, strlen(s));
}

/* ---- the document tree ------------------------------------------------- */

enum sn_kind { SN_SCALAR, SN_SEQ, SN_MAP, SN_ALIAS };

/* A node of the document: libyaml's event data and marks. */
struct sn {
	enum sn_kind kind;
	bool plain;         /* scalar: plain style */
	bool flow;          /* collection: flow style */
	char *anchor, *tag; /* NULL: none */
	yaml_mark_t start;  /* the node's start (its anchor or tag, if any) */
	yaml_mark_t end;    /* after the node (a collection: after its end) */
	struct sn **kid;    /* SEQ: items; MAP: key, value, key, value, ... */
	size_t nkid, cap;
	size_t len;   /* scalar value or alias name length */
	char value[]; /* NUL-terminated */
};

static void
sn_free(struct sn *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nkid; i++)
		sn_free(n->kid[i]);
	free(n->kid);
	free(n->anchor);
	free(n->tag);
	free(n);
}

static char *
dup_str(const char *s)
{
	return s != NULL ? sp_strdup(s) : NULL;
}

static struct sn *
sn_new(const yaml_event_t *e)
{
	const char *v = "", *anchor = NULL, *tag = NULL;
	size_t len = 0;
	struct sn *n;

	switch (e->type) {
	case YAML_SCALAR_EVENT:
		v = (const char *)e->data.scalar.value;
		len = e->data.scalar.length;
		anchor = (const char *)e->data.scalar.anchor;
		tag = (const char *)e->data.scalar.tag;
		break;
	case YAML_ALIAS_EVENT:
		v = (const char *)e->data.alias.anchor;
		len = strlen(v);
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = (const char *)e->data.sequence_start.anchor;
		tag = (const char *)e->data.sequence_start.tag;
		break;
	default:
		anchor = (const char *)e->data.mapping_start.anchor;
		tag = (const char *)e->data.mapping_start.tag;
		break;
	}
	if ((n = sp_calloc(1, sizeof(*n) + len + 1)) == NULL)
		return NULL;
	memcpy(n->value, v, len);
	n->len = len;
	n->start = e->start_mark;
	n->end = e->end_mark;
	switch (e->type) {
	case YAML_SCALAR_EVENT:
		n->kind = SN_SCALAR;
		n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		break;
	case YAML_ALIAS_EVENT:
		n->kind = SN_ALIAS;
		break;
	case YAML_SEQUENCE_START_EVENT:
		n->kind = SN_SEQ;
		n->flow = e->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
		break;
	default:
		n->kind = SN_MAP;
		n->flow = e->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
		break;
	}
	if ((anchor != NULL && (n->anchor = dup_str(anchor)) == NULL) ||
	    (tag != NULL && (n->tag = dup_str(tag)) == NULL)) {
		sn_free(n);
		return NULL;
	}
	return n;
}

static int
sn_add(struct sn *parent, struct sn *kid)
{
	if (parent->nkid == parent->cap) {
		size_t cap = parent->cap ? 2 * parent->cap : 8;
		struct sn **k = sp_realloc(parent->kid, cap * sizeof(*k));

		if (k == NULL)
			return -ENOMEM;
		parent->kid = k;
		parent->cap = cap;
	}
	parent->kid[parent->nkid++] = kid;
	return 0;
}

/* A parse failure: code, message (no location), where (0-based). */
struct perr {
	int rc;
	yaml_mark_t m;
	char msg[FLOWQ__YAML_MSG];
};

static int
perr_set(struct perr *pe, int rc, yaml_mark_t m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
perr_set(struct perr *pe, int rc, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	pe->rc = rc;
	pe->m = m;
	va_start(ap, fmt);
	vsnprintf(pe->msg, sizeof(pe->msg), fmt, ap);
	va_end(ap);
	return rc;
}

/*
 * Parse @in[0..len) into a tree: *r_root is the document's root node, or
 * NULL for an empty stream. Refuses a second document and nesting deeper
 * than FLOWQ_CONFIG_YAML_MAX_DEPTH; nothing else (the schema walk refuses
 * anchors, aliases and tags where it meets them). Iterative.
 */
static int
tree_parse(const unsigned char *in, size_t len, struct sn **r_root, struct perr *pe)
{
	struct sn *stack[FLOWQ_CONFIG_YAML_MAX_DEPTH + 1], *root = NULL;
	size_t depth = 0, docs = 0;
	yaml_parser_t p;
	yaml_event_t e;
	bool have = false, done = false;
	int rc = 0;

	*r_root = NULL;
	if (!yaml_parser_initialize(&p))
		return perr_set(pe, -ENOMEM, (yaml_mark_t){0}, "out of memory");
	yaml_parser_set_input_string(&p, in, len);
	while (!done) {
		struct sn *n = NULL;

		if (!yaml_parser_parse(&p, &e)) {
			yaml_mark_t m;

			pe->rc = rc = flowq__yaml_syntax_error(&p, in, len, &m, pe->msg,
							       sizeof(pe->msg));
			pe->m = m;
			break;
		}
		have = true;
		switch (e.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++ > 0) {
				rc = perr_set(
					pe, -EINVAL, e.start_mark,
					"a second document: a spec is one document");
				done = true;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			stack[--depth]->end = e.end_mark;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if ((e.type == YAML_SEQUENCE_START_EVENT ||
			     e.type == YAML_MAPPING_START_EVENT) &&
			    depth == FLOWQ_CONFIG_YAML_MAX_DEPTH) {
				rc = perr_set(pe, -EINVAL, e.start_mark,
					      "nesting deeper than %u levels",
					      FLOWQ_CONFIG_YAML_MAX_DEPTH);
				done = true;
				break;
			}
			if ((n = sn_new(&e)) == NULL) {
				rc = perr_set(pe, -ENOMEM, e.start_mark, "out of memory");
				done = true;
				break;
			}
			if (depth == 0) {
				root = n;
			} else if (sn_add(stack[depth - 1], n) != 0) {
				sn_free(n);
				rc = perr_set(pe, -ENOMEM, e.start_mark, "out of memory");
				done = true;
				break;
			}
			if (n->kind == SN_SEQ || n->kind == SN_MAP)
				stack[depth++] = n;
			break;
		default:
			break;
		}
		yaml_event_delete(&e);
		have = false;
	}
	if (have)
		yaml_event_delete(&e);
	yaml_parser_delete(&p);
	if (rc != 0) {
		sn_free(root);
		return rc;
	}
	*r_root = root;
	return 0;
}

/* The value of key @key (a name) in mapping @map: its index in kid[], or
 * -1. The first, if the key is given twice. */
static long
map_find(const struct sn *map, const char *key, size_t klen)
{
	for (size_t i = 0; i + 1 < map->nkid; i += 2) {
		const struct sn *k = map->kid[i];

		if (k->kind == SN_SCALAR && k->len == klen &&
		    memcmp(k->value, key, klen) == 0)
			return (long)i + 1;
	}
	return -1;
}

/* ---- text: characters, edits and where they came from -------------------- */

/* Bytes of a UTF-8 sequence that starts with @c (the text parsed: valid). */
static size_t
utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
}

/* libyaml skips a UTF-8 byte order mark and counts characters after it. */
static size_t
bom_len(const unsigned char *t, size_t len)
{
	return len >= 3 && t[0] == 0xEF && t[1] == 0xBB && t[2] == 0xBF ? 3 : 0;
}

/* Byte offset of character @ci of @t[0..len) (after its BOM). */
static size_t
char_byte(const unsigned char *t, size_t len, size_t ci)
{
	size_t i = bom_len(t, len);

	for (; ci > 0 && i < len; ci--)
		i += utf8_len(t[i]);
	return i < len ? i : len;
}

/* Characters in @s[0..n). */
static size_t
char_count(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i += utf8_len((unsigned char)s[i]))
		c++;
	return c;
}

/* Line and column (0-based) of character @ci of UTF-8 @t, counted as
 * libyaml counts them (CR LF, CR, LF, NEL, LS and PS break lines). */
static void
char_line_col(const unsigned char *t, size_t len, size_t ci, size_t *r_line,
	      size_t *r_col)
{
	size_t i = bom_len(t, len), line = 0, col = 0;

	while (ci > 0 && i < len) {
		unsigned char c = t[i];

		if (c == '\r' && i + 1 < len && t[i + 1] == '\n') {
			i += 2, line++, col = 0;
			ci -= ci >= 2 ? 2 : 1;
			continue;
		}
		if (c == '\r' || c == '\n' ||
		    (c == 0xC2 && i + 1 < len && t[i + 1] == 0x85) ||
		    (c == 0xE2 && i + 2 < len && t[i + 1] == 0x80 &&
		     (t[i + 2] == 0xA8 || t[i + 2] == 0xA9)))
			line++, col = 0;
		else
			col++;
		i += utf8_len(c);
		ci--;
	}
	*r_line = line;
	*r_col = col;
}

/* Characters [at, at + len) of the edited text came from the file's
 * character @from on (src < 0) or from override @src. */
struct seg {
	size_t at, len;
	long src;
	size_t from;
};

/* ---- one load ------------------------------------------------------------- */

struct ld {
	const char *name; /* the file's name in messages */
	const char *dir;  /* its directory, or NULL (trace files) */
	char *err;
	size_t errsz;
	size_t rest; /* err[rest..]: the message after its location */
	long blame;  /* the override a failure is blamed on, or -1 */
	locale_t loc;
	const unsigned char *orig; /* the file's text */
	size_t orig_len;
	unsigned char *text; /* the edited text (== orig until an edit) */
	size_t len;
	struct seg *segs; /* NULL: no edit yet (text == orig) */
	size_t nsegs;
	const char *const *ovr; /* the overrides, in order */
	size_t novr;
	struct sn *root;
	struct sim_spec *spec;
	const struct sn *compare; /* the `compare` sequence, checked last */
};

/*
 * Where character @m->index of the edited text came from: the override it
 * came from (>= 0), or -1 with its line and column in the file (0-based).
 */
static long
ld_origin(const struct ld *ld, const yaml_mark_t *m, size_t *r_line, size_t *r_col)
{
	const struct seg *s = NULL;

	if (ld->segs == NULL) {
		*r_line = m->line;
		*r_col = m->column;
		return -1;
	}
	for (size_t i = 0; i < ld->nsegs; i++) {
		s = &ld->segs[i];
		if (m->index < s->at + s->len)
			break;
	}
	if (s == NULL) { /* an empty text: cannot happen after an edit */
		*r_line = *r_col = 0;
		return -1;
	}
	if (s->src >= 0)
		return s->src;
	char_line_col(ld->orig, ld->orig_len,
		      s->from + (m->index > s->at ? m->index - s->at : 0), r_line, r_col);
	return -1;
}

/* Whether override @i sets @path or a key under it. */
static bool
ovr_covers(const char *ovr, const char *path)
{
	size_t n = strcspn(ovr, "=");

	return path != NULL && strncmp(ovr, path, n) == 0 &&
	       (path[n] == '\0' || path[n] == '.' || path[n] == '[');
}

/*
 * The start of a message about @path at @m, blamed on the override @m (or
 * @blame, a mark of the offending value) came from, else located in the
 * file: "override <o>: <path>: " or "<file>:<l>:<c>: <path>: ". Writes from
 * ld->err[0] and sets ld->rest and ld->blame.
 */
static void
ld_prefix(struct ld *ld, const yaml_mark_t *m, const yaml_mark_t *blame, const char *path,
	  bool by_path)
{
	size_t pos = 0, line, col;
	long o = blame != NULL ? ld_origin(ld, blame, &line, &col) : -1;
	char show[128];

	if (o < 0)
		o = ld_origin(ld, m, &line, &col);
	for (size_t i = ld->novr; o < 0 && by_path && i-- > 0;) {
		if (ovr_covers(ld->ovr[i], path))
			o = (long)i;
	}
	if (ld->err != NULL && ld->errsz > 0)
		ld->err[0] = '\0';
	if (o >= 0)
		flowq__yaml_append(
			ld->err, ld->errsz, &pos, "override %s: ",
			flowq__yaml_show(show, ld->ovr[o], strlen(ld->ovr[o])));
	else
		flowq__yaml_append(ld->err, ld->errsz, &pos, "%s:%zu:%zu: ", ld->name,
				   line + 1, col + 1);
	ld->rest = pos;
	ld->blame = o;
	if (path != NULL && path[0] != '\0')
		flowq__yaml_append(ld->err, ld->errsz, &pos, "%s: ", path);
}

/* A position inside a message: "<l>:<c>" in the file, or the override. */
static const char *
ld_at(const struct ld *ld, char buf[160], const yaml_mark_t *m)
{
	size_t line, col;
	long o = ld_origin(ld, m, &line, &col);
	char show[128];

	if (o >= 0)
		snprintf(buf, 160, "override %s",
			 flowq__yaml_show(show, ld->ovr[o], strlen(ld->ovr[o])));
	else
		snprintf(buf, 160, "%zu:%zu", line + 1, col + 1);
	return buf;
}

/*
 * Fail with "<where>: <path>: <fmt...>": located at mark @at, blamed on the
 * override that mark @blame (of the offending value; may be NULL) came
 * from. Returns @rc.
 */
static int
ld_vfail(struct ld *ld, int rc, const yaml_mark_t *at, const yaml_mark_t *blame,
	 const char *path, const char *fmt, va_list ap)
{
	size_t pos;

	ld_prefix(ld, at, blame, path, false);
	pos = ld->err != NULL && ld->errsz > 0 ? strlen(ld->err) : 0;
	flowq__yaml_vappend(ld->err, ld->errsz, &pos, fmt, ap);
	return rc;
}

static int
ld_failm(struct ld *ld, int rc, const yaml_mark_t *at, const yaml_mark_t *blame,
	 const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int
ld_failm(struct ld *ld, int rc, const yaml_mark_t *at, const yaml_mark_t *blame,
	 const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rc = ld_vfail(ld, rc, at, blame, path, fmt, ap);
	va_end(ap);
	return rc;
}

/* The same at node @at, blamed by node @blame (may be NULL). */
static int
ld_fail(struct ld *ld, int rc, const struct sn *at, const struct sn *blame,
	const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int
ld_fail(struct ld *ld, int rc, const struct sn *at, const struct sn *blame,
	const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rc = ld_vfail(ld, rc, &at->start, blame != NULL ? &blame->start : NULL, path, fmt,
		      ap);
	va_end(ap);
	return rc;
}

/* A message without a location. */
static int
ld_fail_plain(struct ld *ld, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
ld_fail_plain(struct ld *ld, int rc, const char *fmt, ...)
{
	size_t pos = 0;
	va_list ap;

	ld->rest = 0;
	ld->blame = -1;
	va_start(ap, fmt);
	flowq__yaml_vappend(ld->err, ld->errsz, &pos, fmt, ap);
	va_end(ap);
	return rc;
}

static int
ld_nomem(struct ld *ld)
{
	return ld_fail_plain(ld, -ENOMEM, "%s: out of memory", ld->name);
}

/* A failure of override @o itself: "override <o>: <fmt...>". */
static int
ld_fail_ovr(struct ld *ld, int rc, size_t o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
ld_fail_ovr(struct ld *ld, int rc, size_t o, const char *fmt, ...)
{
	size_t pos = 0;
	char show[128];
	va_list ap;

	flowq__yaml_append(ld->err, ld->errsz, &pos, "override %s: ",
			   flowq__yaml_show(show, ld->ovr[o], strlen(ld->ovr[o])));
	ld->rest = pos;
	ld->blame = (long)o;
	va_start(ap, fmt);
	flowq__yaml_vappend(ld->err, ld->errsz, &pos, fmt, ap);
	va_end(ap);
	return rc;
}

/* The engine loader's hooks (config_yaml_internal.h): its marks are in the
 * edited text; a message about a key an override set is the override's. */
static void
ld_hook_prefix(void *ctx, char *buf, size_t size, const yaml_mark_t *m, const char *path)
{
	struct ld *ld = ctx;
	char *err = ld->err;
	size_t errsz = ld->errsz;

	ld->err = buf;
	ld->errsz = size;
	ld_prefix(ld, m, NULL, path, true);
	ld->err = err;
	ld->errsz = errsz;
}

static void
ld_hook_at(void *ctx, char *buf, size_t size, const yaml_mark_t *m)
{
	char at[160];

	snprintf(buf, size, "%s", ld_at(ctx, at, m));
}

/* ---- overrides ------------------------------------------------------------- */

struct ocomp {
	const char *name; /* NULL: an index */
	size_t n;
	size_t index;
};

struct opath {
	struct ocomp c[SPEC_MAX_PATH];
	size_t nc;
};

/* Parse the key path @s[0..n) ("a.b[0].c"); NULL or why not. */
static const char *
opath_parse(const char *s, size_t n, struct opath *p)
{
	size_t i = 0;

	p->nc = 0;
	while (i < n) {
		if (p->nc == SPEC_MAX_PATH)
			return "too many keys";
		if (s[i] == '[') {
			size_t j = ++i, v = 0;

			if (p->nc == 0)
				return "an index needs a key before it";
			while (i < n && s[i] >= '0' && s[i] <= '9') {
				if (v > (SIZE_MAX - 9) / 10)
					return "an index is too large";
				v = v * 10 + (size_t)(s[i++] - '0');
			}
			if (i == j || i == n || s[i] != ']')
				return "expected [<index>]";
			if (s[j] == '0' && i - j > 1)
				return "an index has leading zeros";
			p->c[p->nc++] = (struct ocomp){.name = NULL, .index = v};
			i++;
		} else {
			size_t j = i;

			if (p->nc > 0) {
				if (s[i] != '.')
					return "expected . or [ after a key";
				j = ++i;
			}
			while (i < n && s[i] != '.' && s[i] != '[' && s[i] != ']')
				i++;
			if (i == j)
				return "an empty key";
			p->c[p->nc++] = (struct ocomp){.name = s + j, .n = i - j};
		}
	}
	if (p->nc == 0)
		return "an empty key path";
	return NULL;
}

/* The path @p up to component @k, for messages. */
static const char *
opath_str(char buf[SPEC_PATH], const struct opath *p, size_t k)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < k && pos < SPEC_PATH; i++) {
		if (p->c[i].name == NULL)
			pos += (size_t)snprintf(buf + pos, SPEC_PATH - pos, "[%zu]",
						p->c[i].index);
		else
			pos += (size_t)snprintf(buf + pos, SPEC_PATH - pos, "%s%.*s",
						i ? "." : "", (int)p->c[i].n,
						p->c[i].name);
	}
	return buf;
}

/* Where a key path leads in the tree. */
struct ofind {
	struct sn *node;   /* the node at the path, or NULL: missing */
	struct sn *parent; /* its parent (missing: the deepest mapping found) */
	struct sn *key;    /* its key, in a mapping */
	size_t k;          /* missing: the first component not found */
};

/* Walk @p from @root; -EINVAL with @why for a path that cannot be. */
static int
ofind(struct sn *root, const struct opath *p, struct ofind *r, char why[SPEC_PATH + 96])
{
	struct sn *n = root;
	char at[SPEC_PATH];

	*r = (struct ofind){0};
	for (size_t k = 0; k < p->nc; k++) {
		const struct ocomp *c = &p->c[k];

		if (c->name != NULL) {
			long v;

			if (n->kind != SN_MAP) {
				snprintf(why, SPEC_PATH + 96, "%s is not a mapping",
					 k ? opath_str(at, p, k) : "the document");
				return -EINVAL;
			}
			if ((v = map_find(n, c->name, c->n)) < 0) {
				r->parent = n;
				r->k = k;
				for (size_t j = k + 1; j < p->nc; j++) {
					if (p->c[j].name != NULL)
						continue;
					snprintf(
						why, SPEC_PATH + 96,
						"%s is not in the document, so it has no "
						"item [%zu]",
						opath_str(at, p, j), p->c[j].index);
					return -EINVAL;
				}
				return 0;
			}
			r->key = n->kid[v - 1];
			r->parent = n;
			n = n->kid[v];
		} else {
			if (n->kind != SN_SEQ) {
				snprintf(why, SPEC_PATH + 96, "%s is not a sequence",
					 opath_str(at, p, k));
				return -EINVAL;
			}
			if (c->index >= n->nkid) {
				snprintf(why, SPEC_PATH + 96,
					 "%s has no item [%zu] (it has %zu)",
					 opath_str(at, p, k), c->index, n->nkid);
				return -EINVAL;
			}
			r->key = NULL;
			r->parent = n;
			n = n->kid[c->index];
		}
	}
	r->node = n;
	return 0;
}

/* A growing byte buffer. */
struct sbuf {
	char *s;
	size_t n, cap;
	bool nomem;
};

static void
sbuf_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		if ((p = sp_realloc(b->s, cap)) == NULL) {
			b->nomem = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void
sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_put(b, s, strlen(s));
}

static void
sbuf_spaces(struct sbuf *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sbuf_put(b, " ", 1);
}

/* Replace characters [a, b) of the edited text by @ins (from override
 * @o): the text and the segments. */
static int
ld_splice(struct ld *ld, size_t a, size_t b, const char *ins, size_t o)
{
	size_t ba = char_byte(ld->text, ld->len, a), bb = char_byte(ld->text, ld->len, b);
	size_t n = strlen(ins), nc = char_count(ins, n), len = ld->len - (bb - ba) + n;
	size_t ns = 0,
	       total = ld->segs != NULL ? 0 : char_count((const char *)ld->text, ld->len);
	unsigned char *t;
	struct seg *segs;

	if (len > FLOWQ_CONFIG_YAML_MAX_SIZE)
		return ld_fail_ovr(ld, -EFBIG, o,
				   "the spec would be larger than "
				   "FLOWQ_CONFIG_YAML_MAX_SIZE (%u bytes)",
				   FLOWQ_CONFIG_YAML_MAX_SIZE);
	if (ld->segs == NULL) {
		/* The first edit: one segment, the whole file. */
		if ((ld->segs = sp_malloc(sizeof(*ld->segs))) == NULL)
			return ld_nomem(ld);
		ld->segs[0] = (struct seg){.at = 0, .len = total, .src = -1, .from = 0};
		ld->nsegs = 1;
	}
	if ((t = sp_malloc(len + 1)) == NULL ||
	    (segs = sp_malloc((ld->nsegs + 2) * sizeof(*segs))) == NULL) {
		free(t);
		return ld_nomem(ld);
	}
	memcpy(t, ld->text, ba);
	memcpy(t + ba, ins, n);
	memcpy(t + ba + n, ld->text + bb, ld->len - bb);
	t[len] = '\0';
	for (size_t i = 0; i < ld->nsegs; i++) {
		struct seg s = ld->segs[i];
		size_t end = s.at + s.len;

		if (s.at < a) /* the part before the edit */
			segs[ns++] = (struct seg){s.at, (end < a ? end : a) - s.at, s.src,
						  s.from};
	}
	/* The edit, then the parts after it, shifted. */
	segs[ns++] = (struct seg){a, nc, (long)o, 0};
	for (size_t i = 0; i < ld->nsegs; i++) {
		struct seg s = ld->segs[i];
		size_t end = s.at + s.len, st = s.at > b ? s.at : b;

		if (end > b)
			segs[ns++] = (struct seg){st - b + a + nc, end - st, s.src,
						  s.src < 0 ? s.from + (st - s.at) : 0};
	}
	if (ld->text != ld->orig)
		free(ld->text);
	free(ld->segs);
	ld->text = t;
	ld->len = len;
	ld->segs = segs;
	ld->nsegs = ns;
	return 0;
}

/* A scalar as YAML text that reads back the same: plain when it was plain
 * and holds only characters that are plain in any context, else
 * double-quoted with escapes. */
static void
emit_scalar(struct sbuf *b, const char *s, size_t n, bool plain)
{
	bool raw = plain && n > 0 && s[0] != ' ' && s[n - 1] != ' ';

	for (size_t i = 0; raw && i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		raw = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("_-.+/ ", c) != NULL;
	}
	if (raw && s[0] == '-' && n > 1 && s[1] == ' ')
		raw = false;
	if (raw) {
		sbuf_put(b, s, n);
		return;
	}
	sbuf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sbuf_put(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			sbuf_put(b, esc, 4);
		} else {
			sbuf_put(b, s + i, 1);
		}
	}
	sbuf_put(b, "\"", 1);
}

/* Node @n as one line of YAML (flow style); the caller refused anchors,
 * aliases and tags in it. Recursion depth: the tree's. */
static void
emit_node(struct sbuf *b, const struct sn *n)
{
	switch (n->kind) {
	case SN_MAP:
	case SN_SEQ:
		sbuf_str(b, n->kind == SN_MAP ? "{" : "[");
		for (size_t i = 0; i < n->nkid; i++) {
			if (i > 0)
				sbuf_str(b, n->kind == SN_MAP && (i & 1) ? ": " : ", ");
			emit_node(b, n->kid[i]);
		}
		sbuf_str(b, n->kind == SN_MAP ? "}" : "]");
		break;
	default:
		emit_scalar(b, n->value, n->len, n->plain);
		break;
	}
}

/* The character index where node @n's text ends: its end mark, less the
 * whitespace before it (a block node ends where the next token starts). */
static size_t
ld_cut(const struct ld *ld, const struct sn *n)
{
	size_t ci = n->end.index, b = char_byte(ld->text, ld->len, ci);

	while (ci > n->start.index && b > 0 && ld->text[b - 1] != '\0' &&
	       strchr(" \t\r\n", ld->text[b - 1]) != NULL)
		ci--, b--;
	return ci;
}

/* Whether the character before index @ci of the text is a blank, a line
 * break or the start. */
static bool
ld_blank_before(const struct ld *ld, size_t ci)
{
	size_t b = char_byte(ld->text, ld->len, ci);

	return b == bom_len(ld->text, ld->len) ||
	       strchr(" \t\r\n", ld->text[b - 1]) != NULL;
}

/* Check an override's value: one scalar or flow collection, one line. */
static int
ld_ovr_value(struct ld *ld, size_t o, const char *v)
{
	size_t n = strlen(v), lead = strspn(v, " "), trail = n;
	struct sn *root = NULL;
	struct perr pe;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return ld_fail_ovr(ld, -EINVAL, o,
					   "the value must be one line (it has a control "
					   "character)");
	}
	while (trail > lead && v[trail - 1] == ' ')
		trail--;
	if ((rc = tree_parse((const unsigned char *)v, n, &root, &pe)) != 0)
		return rc == -ENOMEM ? ld_nomem(ld)
				     : ld_fail_ovr(ld, rc, o, "the value is not YAML: %s",
						   pe.msg);
	if (root == NULL
		    ? trail > lead
		    : (root->kind == SN_SEQ || root->kind == SN_MAP) && !root->flow) {
		rc = -EINVAL;
	} else if (root != NULL) {
		/* Nothing after the node (a comment would hide the rest of
		 * the line it lands in). */
		rc = root->start.index == char_count(v, lead) &&
				     root->end.index == char_count(v, trail)
			     ? 0
			     : -EINVAL;
	}
	sn_free(root);
	if (rc != 0)
		return ld_fail_ovr(ld, rc, o,
				   "the value must be one YAML scalar or flow collection "
				   "({...} or [...])");
	return 0;
}

/* Apply override @o to the text (see the header comment). */
static int
ld_override(struct ld *ld, size_t o)
{
	const char *s = ld->ovr[o], *eq = strchr(s, '='), *why, *value;
	char msg[SPEC_PATH + 96], at[SPEC_PATH];
	struct sbuf ins = {0};
	struct ofind f;
	struct opath p;
	size_t a, b, nc;
	struct sn *root = NULL;
	struct perr pe;
	int rc;

	if (eq == NULL)
		return ld_fail_ovr(ld, -EINVAL, o, "expected key.path=value");
	if ((why = opath_parse(s, (size_t)(eq - s), &p)) != NULL)
		return ld_fail_ovr(ld, -EINVAL, o, "bad key path: %s", why);
	if ((rc = ld_ovr_value(ld, o, eq + 1)) != 0)
		return rc;
	/* An empty value is null; written "~" so that it is a node of the
	 * edited text (where messages about it are located). */
	value = eq[1 + strspn(eq + 1, " ")] == '\0' ? "~" : eq + 1;
	if ((rc = ofind(ld->root, &p, &f, msg)) != 0)
		return ld_fail_ovr(ld, rc, o, "%s", msg);
	if (f.node != NULL) {
		/* Replace the node; a value on a line after its key is
		 * replaced from the key on ("key:\n  - a" -> "key: v"). */
		b = ld_cut(ld, f.node);
		if (f.key != NULL && f.node->start.line > f.key->end.line) {
			a = f.key->end.index;
			sbuf_str(&ins, ": ");
		} else {
			a = f.node->start.index;
			if (!ld_blank_before(ld, a))
				sbuf_str(&ins, " ");
		}
		sbuf_str(&ins, value);
	} else {
		/* Add "key: {key: ... value}" to the deepest mapping found,
		 * first in it. */
		struct sn *m = f.parent;
		size_t close = 0;

		for (size_t k = f.k; k < p.nc; k++) {
			emit_scalar(&ins, p.c[k].name, p.c[k].n, true);
			sbuf_str(&ins, k + 1 < p.nc ? ": {" : ": ");
			close += k + 1 < p.nc;
		}
		sbuf_str(&ins, value);
		while (close-- > 0)
			sbuf_str(&ins, "}");
		a = b = m->start.index;
		if (m->flow) {
			size_t cb = char_byte(ld->text, ld->len, a);

			if (cb >= ld->len || ld->text[cb] != '{') {
				free(ins.s);
				return ld_fail_ovr(ld, -EINVAL, o,
						   "cannot add %s here (edit the file)",
						   opath_str(at, &p, f.k + 1));
			}
			a = b = a + 1;
			if (m->nkid > 0)
				sbuf_str(&ins, ", ");
		} else {
			sbuf_str(&ins, "\n");
			sbuf_spaces(&ins, m->start.column);
		}
	}
	if (ins.nomem)
		rc = ld_nomem(ld);
	else
		rc = ld_splice(ld, a, b, ins.s, o);
	nc = ins.s != NULL ? char_count(ins.s, ins.n) : 0;
	free(ins.s);
	if (rc != 0)
		return rc;
	/* Parse the edited text, and find the value where it was put. */
	if ((rc = tree_parse(ld->text, ld->len, &root, &pe)) != 0)
		return rc == -ENOMEM
			       ? ld_nomem(ld)
			       : ld_fail_ovr(ld, rc, o, "the value does not fit here: %s",
					     pe.msg);
	sn_free(ld->root);
	ld->root = root;
	if (root == NULL || ofind(root, &p, &f, msg) != 0 || f.node == NULL ||
	    f.node->start.index < a || f.node->start.index >= a + nc)
		return ld_fail_ovr(
			ld, -EINVAL, o,
			"cannot be applied to this document's layout (edit the "
			"file)");
	return 0;
}

/* ---- schema: helpers ----------------------------------------------------- */

/* One entry of a mapping (key NULL: a sequence item), or absent (val NULL). */
struct kv {
	const struct sn *key, *val;
};

static const struct sn *
kv_at(const struct kv *e)
{
	return e->key != NULL ? e->key : e->val;
}

/* "<pre>.<name>" ("<name>" at the root); paths are far below SPEC_PATH
 * (an unknown key enters one only through flowq__yaml_show()), and a path
 * cut short would still name its start. */
static const char *
kpath(char buf[SPEC_PATH], const char *pre, const char *name)
{
	if (snprintf(buf, SPEC_PATH, "%s%s%s", pre, pre[0] != '\0' ? "." : "", name) >=
	    SPEC_PATH)
		buf[SPEC_PATH - 1] = '\0';
	return buf;
}

/* "a mapping", "a sequence", "an alias" or the scalar, for "got ...". */
static const char *
sn_what(char buf[160], const struct sn *n)
{
	switch (n->kind) {
	case SN_MAP:
		return "a mapping";
	case SN_SEQ:
		return "a sequence";
	case SN_ALIAS:
		return "an alias";
	default:
		return flowq__yaml_describe(buf, n->value, n->len, n->plain);
	}
}

/* Anchors, aliases and tags are refused on node @n (named @path). */
static int
ld_plain(struct ld *ld, const struct sn *n, const char *path)
{
	char msg[FLOWQ__YAML_MSG];
	int rc = flowq__yaml_refuse_node(n->kind == SN_ALIAS ? n->value : NULL, n->anchor,
					 n->tag, msg, sizeof(msg));

	return rc != 0 ? ld_fail(ld, rc, n, n, path, "%s", msg) : 0;
}

/*
 * The entries of mapping @map (named @path) by the keys @names
 * (NULL-terminated): r[i] is names[i]'s entry, val NULL when absent.
 * Non-scalar, unknown and duplicate keys are refused, in document order.
 */
static int
ld_keys(struct ld *ld, const struct sn *map, const char *path, const char *const *names,
	struct kv *r)
{
	char kp[SPEC_PATH], show[128], at[160];
	size_t nn = 0;
	int rc;

	while (names[nn] != NULL)
		r[nn++] = (struct kv){0};
	for (size_t i = 0; i + 1 < map->nkid; i += 2) {
		const struct sn *k = map->kid[i];
		size_t j = 0;

		if ((rc = ld_plain(ld, k, path)) != 0)
			return rc;
		if (k->kind != SN_SCALAR)
			return ld_fail(ld, -EINVAL, k, k, path,
				       "keys must be names, got %s as a key",
				       k->kind == SN_MAP ? "a mapping" : "a sequence");
		while (j < nn && !(strlen(names[j]) == k->len &&
				   memcmp(names[j], k->value, k->len) == 0))
			j++;
		if (j == nn) {
			char known[512];
			size_t pos = 0;

			known[0] = '\0';
			for (size_t q = 0; q < nn && pos < sizeof(known); q++)
				pos += (size_t)snprintf(known + pos, sizeof(known) - pos,
							"%s%s", q ? ", " : "", names[q]);
			return ld_fail(
				ld, -EINVAL, k, k,
				kpath(kp, path, flowq__yaml_show(show, k->value, k->len)),
				"unknown key (expected one of: %s)", known);
		}
		if (r[j].key != NULL)
			return ld_fail(ld, -EINVAL, k, k, kpath(kp, path, names[j]),
				       "duplicate key (first at %s)",
				       ld_at(ld, at, &r[j].key->start));
		r[j] = (struct kv){k, map->kid[i + 1]};
	}
	return 0;
}

/* "missing key" for mapping entry @e (named @path) without @name. */
static int
ld_missing(struct ld *ld, const struct kv *e, const char *path, const char *name,
	   const char *why)
{
	return ld_fail(ld, -EINVAL, kv_at(e), e->val, path, "missing key \"%s\"%s", name,
		       why != NULL ? why : "");
}

/* The value of @e is a node of @kind (else "expected @what, got ..."). */
static int
ld_kind(struct ld *ld, const struct kv *e, const char *path, enum sn_kind kind,
	const char *what)
{
	char buf[160];
	int rc;

	if ((rc = ld_plain(ld, e->val, path)) != 0)
		return rc;
	if (e->val->kind != kind)
		return ld_fail(ld, -EINVAL, kv_at(e), e->val, path, "expected %s, got %s",
			       what, sn_what(buf, e->val));
	return 0;
}

/* A shared scalar parser's result. */
static int
ld_parsed(struct ld *ld, const struct kv *e, const char *path, int rc, const char *msg)
{
	return rc != 0 ? ld_fail(ld, rc, kv_at(e), e->val, path, "%s", msg) : 0;
}

#define SV(e) (e)->val->value, (e)->val->len, (e)->val->plain

/*
 * The value of @e must be a scalar (else "expected @what, got ...") that a
 * shared parser read: @rc and @msg are its result. The parser runs before
 * the kind is checked, harmlessly: a collection's value is "", which every
 * parser refuses without writing its result.
 */
static int
ld_scalar(struct ld *ld, const struct kv *e, const char *path, const char *what, int rc,
	  const char *msg)
{
	int k = ld_kind(ld, e, path, SN_SCALAR, what);

	return k != 0 ? k : ld_parsed(ld, e, path, rc, msg);
}

/* "<value> is not <what>" for the value of @e. */
static int
ld_not(struct ld *ld, const struct kv *e, const char *path, const char *what)
{
	char show[128];

	return ld_fail(ld, -EINVAL, kv_at(e), e->val, path, "%s is not %s",
		       flowq__yaml_show(show, e->val->value, e->val->len), what);
}

static int
ld_uint(struct ld *ld, const struct kv *e, const char *path, uint64_t min, uint64_t max,
	uint64_t *r)
{
	char msg[FLOWQ__YAML_MSG], what[32];
	int rc = ld_scalar(ld, e, path, "an integer",
			   flowq__yaml_parse_uint(SV(e), max, r, msg, sizeof(msg)), msg);

	if (rc != 0 || *r >= min)
		return rc;
	snprintf(what, sizeof(what), ">= %" PRIu64, min);
	return ld_not(ld, e, path, what);
}

static int
ld_u32(struct ld *ld, const struct kv *e, const char *path, uint32_t min, uint32_t *r)
{
	uint64_t v = 0;
	int rc = ld_uint(ld, e, path, min, UINT32_MAX, &v);

	*r = (uint32_t)v;
	return rc;
}

static int
ld_i32(struct ld *ld, const struct kv *e, const char *path, int32_t *r)
{
	char msg[FLOWQ__YAML_MSG];
	int64_t v = 0;
	int rc = ld_scalar(ld, e, path, "an integer",
			   flowq__yaml_parse_sint(SV(e), 32, &v, msg, sizeof(msg)), msg);

	*r = (int32_t)v;
	return rc;
}

static int
ld_size(struct ld *ld, const struct kv *e, const char *path, uint64_t *r)
{
	char msg[FLOWQ__YAML_MSG];

	return ld_scalar(ld, e, path, "a size",
			 flowq__yaml_parse_size(SV(e), r, msg, sizeof(msg)), msg);
}

/* A duration; @positive: > 0; @none: `none` is FLOWQ_TTL_NONE. */
static int
ld_dur(struct ld *ld, const struct kv *e, const char *path, bool positive, bool none,
       int64_t *r)
{
	char msg[FLOWQ__YAML_MSG];
	int rc = ld_scalar(ld, e, path, "a duration",
			   flowq__yaml_parse_duration(SV(e), none, r, msg, sizeof(msg)),
			   msg);

	if (rc != 0 || !positive || *r != 0)
		return rc;
	return ld_not(ld, e, path, "> 0");
}

/* Ranges of real numbers (all finite). */
enum rrange {
	RR_POS,    /* > 0 */
	RR_NONNEG, /* >= 0 */
	RR_UNIT,   /* [0, 1] */
	RR_ABOVE1, /* > 1 */
};

static bool
rr_ok(double v, enum rrange rr)
{
	if (!isfinite(v))
		return false;
	switch (rr) {
	case RR_POS:
		return v > 0;
	case RR_NONNEG:
		return v >= 0;
	case RR_UNIT:
		return v >= 0 && v <= 1;
	default:
		return v > 1;
	}
}

static const char *const rr_what[] = {
	[RR_POS] = "a finite number > 0",
	[RR_NONNEG] = "a finite number >= 0",
	[RR_UNIT] = "in [0, 1]",
	[RR_ABOVE1] = "a finite number > 1",
};

/* @v, read from @e, must be in @rr. */
static int
ld_range(struct ld *ld, const struct kv *e, const char *path, double v, enum rrange rr)
{
	return rr_ok(v, rr) ? 0 : ld_not(ld, e, path, rr_what[rr]);
}

static int
ld_real(struct ld *ld, const struct kv *e, const char *path, enum rrange rr, double *r)
{
	char msg[FLOWQ__YAML_MSG];
	int rc = ld_scalar(ld, e, path, "a number",
			   flowq__yaml_parse_real(SV(e), ld->loc, r, msg, sizeof(msg)),
			   msg);

	return rc != 0 ? rc : ld_range(ld, e, path, *r, rr);
}

/*
 * A number with an optional unit: "<number>[ ]<suffix>", the suffix a
 * duration unit after @sep ("/s" for rates; "" for per_byte's "0.25ns").
 * r = number * scale(unit) ^ @power (rates: per second, so 1/s; per_byte:
 * ns). @what names the grammar for messages.
 */
static int
ld_real_unit(struct ld *ld, const struct kv *e, const char *path, const char *sep,
	     bool per, const char *what, enum rrange rr, double *r)
{
	const char *s = e->val->value;
	size_t n = e->val->len, i = n, num;
	char msg[FLOWQ__YAML_MSG], buf[64], what_got[160];
	uint64_t scale = 0;
	double v;
	int rc;

	if ((rc = ld_kind(ld, e, path, SN_SCALAR, what)) != 0)
		return rc;
	/* The unit: the letters at the end (and the separator). */
	while (i > 0 &&
	       ((s[i - 1] >= 'a' && s[i - 1] <= 'z') || (unsigned char)s[i - 1] >= 0x80))
		i--;
	num = i;
	if (i < n) {
		size_t sl = strlen(sep);

		if (num < sl || memcmp(s + num - sl, sep, sl) != 0 ||
		    !flowq__yaml_duration_unit(s + i, n - i, &scale))
			goto bad;
		num -= sl;
		while (num > 0 && s[num - 1] == ' ')
			num--;
	}
	if (num == 0 || num >= sizeof(buf))
		goto bad;
	memcpy(buf, s, num);
	buf[num] = '\0';
	if (flowq__yaml_parse_real(buf, num, e->val->plain, ld->loc, &v, msg,
				   sizeof(msg)) != 0)
		goto bad;
	if (scale != 0)
		v = per ? v * 1e9 / (double)scale : v * (double)scale;
	*r = v;
	return ld_range(ld, e, path, v, rr);
bad:
	return ld_fail(ld, -EINVAL, kv_at(e), e->val, path, "expected %s, got %s", what,
		       sn_what(what_got, e->val));
}

static int
ld_rate(struct ld *ld, const struct kv *e, const char *path, double *r)
{
	return ld_real_unit(
		ld, e, path, "/", true,
		"a rate (requests per second: a number, optionally with / and a "
		"duration unit: 200, 200/s, 3/ms)",
		RR_POS, r);
}

/* Any scalar but null (and but "" unless @empty), as text (copied). */
static int
ld_text(struct ld *ld, const struct kv *e, const char *path, bool empty, char **r)
{
	char buf[160], show[128];
	int rc;

	if ((rc = ld_kind(ld, e, path, SN_SCALAR, "text")) != 0)
		return rc;
	if (strcmp(flowq__yaml_describe(buf, SV(e)), "null") == 0 ||
	    (!empty && e->val->len == 0))
		return ld_fail(
			ld, -EINVAL, kv_at(e), e->val, path, "expected text, got %s",
			e->val->len == 0 && !e->val->plain ? "an empty string" : "null");
	if (memchr(e->val->value, '\0', e->val->len) != NULL)
		return ld_fail(ld, -EINVAL, kv_at(e), e->val, path,
			       "\"%s\" contains a NUL character",
			       flowq__yaml_show(show, e->val->value, e->val->len));
	free(*r);
	if ((*r = sp_strdup(e->val->value)) == NULL)
		return ld_nomem(ld);
	return 0;
}

/* One of @names (NULL-terminated): its index. */
static int
ld_enum(struct ld *ld, const struct kv *e, const char *path, const char *const *names,
	int *r)
{
	char what[160], buf[160];
	size_t pos = 0;
	int rc;

	for (size_t i = 0; names[i] != NULL && pos < sizeof(what); i++)
		pos += (size_t)snprintf(what + pos, sizeof(what) - pos, "%s%s",
					i == 0                 ? ""
					: names[i + 1] == NULL ? " or "
							       : ", ",
					names[i]);
	if ((rc = ld_kind(ld, e, path, SN_SCALAR, what)) != 0)
		return rc;
	for (int i = 0; names[i] != NULL; i++) {
		if (strlen(names[i]) == e->val->len &&
		    strcmp(names[i], e->val->value) == 0) {
			*r = i;
			return 0;
		}
	}
	return ld_fail(ld, -EINVAL, kv_at(e), e->val, path, "expected %s, got %s", what,
		       sn_what(buf, e->val));
}

/* ---- schema: distributions ------------------------------------------------- */

static const char *const dist_names[] = {"const",     "uniform", "exp",
					 "lognormal", "pareto",  NULL};
enum { DK_DIST, DK_VALUE, DK_MIN, DK_MAX, DK_MEAN, DK_MEDIAN, DK_SIGMA, DK_SHAPE, DK_N };
static const char *const dist_keys[] = {"dist",   "value", "min",   "max", "mean",
					"median", "sigma", "shape", NULL};
/* The parameters of each kind: p1's key, p2's key (-1: none). */
static const int dist_params[][2] = {
	[SIM_DIST_CONST] = {DK_VALUE, -1},
	[SIM_DIST_UNIFORM] = {DK_MIN, DK_MAX},
	[SIM_DIST_EXP] = {DK_MEAN, -1},
	[SIM_DIST_LOGNORMAL] = {DK_MEDIAN, DK_SIGMA},
	[SIM_DIST_PARETO] = {DK_MIN, DK_SHAPE},
};

/* A quantity of a distribution: a size (<= FLOWQ_LIMIT_MAX) or a duration. */
static int
ld_quantity(struct ld *ld, const struct kv *e, const char *path, bool size, double *r)
{
	char show[128];
	int rc;

	if (size) {
		uint64_t v = 0;

		if ((rc = ld_size(ld, e, path, &v)) != 0)
			return rc;
		if (v > FLOWQ_LIMIT_MAX)
			return ld_fail(
				ld, -EINVAL, kv_at(e), e->val, path,
				"%s is more than FLOWQ_LIMIT_MAX (2^62 bytes)",
				flowq__yaml_show(show, e->val->value, e->val->len));
		*r = (double)v;
	} else {
		int64_t v = 0;

		if ((rc = ld_dur(ld, e, path, false, false, &v)) != 0)
			return rc;
		*r = (double)v;
	}
	return 0;
}

/* A distribution of sizes (@size) or durations; see the header comment. */
static int
ld_dist(struct ld *ld, const struct kv *e, const char *path, bool size,
	struct sim_dist *d)
{
	struct kv k[DK_N];
	char kp[SPEC_PATH], show[128];
	int kind = 0, rc;

	if ((rc = ld_plain(ld, e->val, path)) != 0)
		return rc;
	if (e->val->kind == SN_SCALAR) {
		d->kind = SIM_DIST_CONST;
		d->p2 = 0;
		return ld_quantity(ld, e, path, size, &d->p1);
	}
	if ((rc = ld_kind(ld, e, path, SN_MAP,
			  size ? "a size distribution (a size, or {dist: const|uniform|"
				 "exp|lognormal|pareto, ...})"
			       : "a duration distribution (a duration, or {dist: "
				 "const|uniform|exp|lognormal|pareto, ...})")) != 0 ||
	    (rc = ld_keys(ld, e->val, path, dist_keys, k)) != 0)
		return rc;
	if (k[DK_DIST].val == NULL)
		return ld_missing(ld, e, path, "dist", NULL);
	if ((rc = ld_enum(ld, &k[DK_DIST], kpath(kp, path, "dist"), dist_names, &kind)) !=
	    0)
		return rc;
	for (int i = DK_VALUE; i < DK_N; i++) {
		const int *pp = dist_params[kind];
		char takes[64];

		if (k[i].val == NULL || i == pp[0] || i == pp[1])
			continue;
		snprintf(takes, sizeof(takes), "%s%s%s", dist_keys[pp[0]],
			 pp[1] >= 0 ? ", " : "", pp[1] >= 0 ? dist_keys[pp[1]] : "");
		return ld_fail(ld, -EINVAL, k[i].key, k[i].val,
			       kpath(kp, path, dist_keys[i]),
			       "not a parameter of dist %s (it takes: %s)",
			       dist_names[kind], takes);
	}
	for (int j = 0; j < 2; j++) {
		int p = dist_params[kind][j];

		if (p >= 0 && k[p].val == NULL)
			return ld_missing(ld, e, path, dist_keys[p], NULL);
	}
	d->kind = (enum sim_dist_kind)kind;
	d->p2 = 0;
	if ((rc = ld_quantity(ld, &k[dist_params[kind][0]],
			      kpath(kp, path, dist_keys[dist_params[kind][0]]), size,
			      &d->p1)) != 0)
		return rc;
	switch (kind) {
	case SIM_DIST_UNIFORM:
		if ((rc = ld_quantity(ld, &k[DK_MAX], kpath(kp, path, "max"), size,
				      &d->p2)) != 0)
			return rc;
		if (d->p2 < d->p1)
			return ld_fail(ld, -EINVAL, k[DK_MAX].key, k[DK_MAX].val, kp,
				       "%s is less than min",
				       flowq__yaml_show(show, k[DK_MAX].val->value,
							k[DK_MAX].val->len));
		return 0;
	case SIM_DIST_EXP:
	case SIM_DIST_LOGNORMAL:
	case SIM_DIST_PARETO: {
		const struct kv *p1 = &k[dist_params[kind][0]];

		if (d->p1 <= 0)
			return ld_not(ld, p1,
				      kpath(kp, path, dist_keys[dist_params[kind][0]]),
				      "> 0");
		if (kind == SIM_DIST_EXP)
			return 0;
		return ld_real(ld, &k[dist_params[kind][1]],
			       kpath(kp, path, dist_keys[dist_params[kind][1]]),
			       kind == SIM_DIST_LOGNORMAL ? RR_NONNEG : RR_ABOVE1,
			       &d->p2);
	}
	default:
		return 0;
	}
}

/* ---- schema: sections ------------------------------------------------------- */

/* Where some entries are, for the rules between sections. */
struct flow_at {
	const struct sn *item;
	struct kv id, count, priority, size, process, share, clients;
};

struct spec_at {
	struct kv top[8];
	struct kv window, drain, service, trace_file;
	struct flow_at *flows;
	bool window_given;
};

enum {
	TOP_NAME,
	TOP_DESCRIPTION,
	TOP_SIM,
	TOP_ENGINE,
	TOP_BACKEND,
	TOP_TRACE,
	TOP_FLOWS,
	TOP_COMPARE
};
static const char *const top_keys[] = {"name",   "description", "sim",
				       "engine", "backend",     "trace",
				       "flows",  "compare",     NULL};

static const char *const mode_names[] = {"virtual", "realtime", NULL};

static int
ld_sim(struct ld *ld, const struct kv *e, struct spec_at *at)
{
	enum { MODE, SEED, DURATION, DRAIN, WINDOW, PRODUCERS, GRACE, N };
	static const char *const keys[] = {
		"mode",   "seed",      "duration",        "drain",
		"window", "producers", "inversion_grace", NULL};
	struct sim_spec *sp = ld->spec;
	struct kv k[N];
	char kp[SPEC_PATH];
	int mode = 0, rc;

	if ((rc = ld_kind(ld, e, "sim", SN_MAP, "a mapping")) != 0 ||
	    (rc = ld_keys(ld, e->val, "sim", keys, k)) != 0)
		return rc;
	if (k[MODE].val != NULL) {
		if ((rc = ld_enum(ld, &k[MODE], "sim.mode", mode_names, &mode)) != 0)
			return rc;
		sp->mode = mode == 0 ? SIM_MODE_VIRTUAL : SIM_MODE_REALTIME;
	}
	if (k[SEED].val != NULL &&
	    (rc = ld_uint(ld, &k[SEED], "sim.seed", 0, UINT64_MAX, &sp->seed)) != 0)
		return rc;
	if (k[DURATION].val != NULL && (rc = ld_dur(ld, &k[DURATION], "sim.duration",
						    true, false, &sp->duration_ns)) != 0)
		return rc;
	if (k[DRAIN].val != NULL &&
	    (rc = ld_dur(ld, &k[DRAIN], "sim.drain", false, false, &sp->drain_ns)) != 0)
		return rc;
	if (k[WINDOW].val != NULL &&
	    (rc = ld_dur(ld, &k[WINDOW], "sim.window", true, false, &sp->window_ns)) != 0)
		return rc;
	if (k[PRODUCERS].val != NULL) {
		uint64_t v = 0;

		if ((rc = ld_uint(ld, &k[PRODUCERS], kpath(kp, "sim", "producers"), 1,
				  1024, &v)) != 0)
			return rc;
		sp->producers = (uint32_t)v;
	}
	if (k[GRACE].val != NULL &&
	    (rc = ld_dur(ld, &k[GRACE], "sim.inversion_grace", false, false,
			 &sp->inversion_grace_ns)) != 0)
		return rc;
	at->window = k[WINDOW];
	at->drain = k[DRAIN];
	at->window_given = k[WINDOW].val != NULL;
	return 0;
}

static int
ld_backend(struct ld *ld, const struct kv *e, struct spec_at *at)
{
	enum { SLOTS, SERVICE, PER_BYTE, SLOWDOWN, N };
	static const char *const keys[] = {"slots", "service", "per_byte", "slowdown",
					   NULL};
	enum { AT, FOR, FACTOR, SN };
	static const char *const skeys[] = {"at", "for", "factor", NULL};
	struct sim_backend_spec *b = &ld->spec->backend;
	struct kv k[N];
	char ip[SPEC_PATH], kp[SPEC_PATH], show[128];
	int rc;

	if ((rc = ld_kind(ld, e, "backend", SN_MAP, "a mapping")) != 0 ||
	    (rc = ld_keys(ld, e->val, "backend", keys, k)) != 0)
		return rc;
	if (k[SLOTS].val == NULL)
		return ld_missing(ld, e, "backend", "slots", NULL);
	if ((rc = ld_u32(ld, &k[SLOTS], "backend.slots", 1, &b->slots)) != 0)
		return rc;
	at->service = k[SERVICE];
	if (k[SERVICE].val != NULL && (rc = ld_dist(ld, &k[SERVICE], "backend.service",
						    false, &b->service_ns)) != 0)
		return rc;
	if (k[PER_BYTE].val != NULL &&
	    (rc = ld_real_unit(ld, &k[PER_BYTE], "backend.per_byte", "", false,
			       "a duration per byte (a number and a unit: 2ns, 0.25ns; a "
			       "bare number is ns)",
			       RR_NONNEG, &b->ns_per_byte)) != 0)
		return rc;
	if (k[SLOWDOWN].val == NULL)
		return 0;
	if ((rc = ld_kind(ld, &k[SLOWDOWN], "backend.slowdown", SN_SEQ,
			  "a sequence of {at, for, factor}")) != 0)
		return rc;
	if ((b->slowdowns =
		     sp_calloc(k[SLOWDOWN].val->nkid + 1, sizeof(*b->slowdowns))) == NULL)
		return ld_nomem(ld);
	for (size_t i = 0; i < k[SLOWDOWN].val->nkid; i++) {
		struct kv item = {NULL, k[SLOWDOWN].val->kid[i]}, s[SN];
		struct sim_slowdown *d = &b->slowdowns[i];

		snprintf(ip, sizeof(ip), "backend.slowdown[%zu]", i);
		if ((rc = ld_kind(ld, &item, ip, SN_MAP,
				  "a mapping {at, for, factor}")) != 0 ||
		    (rc = ld_keys(ld, item.val, ip, skeys, s)) != 0)
			return rc;
		for (int j = 0; j < SN; j++) {
			if (s[j].val == NULL)
				return ld_missing(ld, &item, ip, skeys[j], NULL);
		}
		if ((rc = ld_dur(ld, &s[AT], kpath(kp, ip, "at"), false, false,
				 &d->at_ns)) != 0 ||
		    (rc = ld_dur(ld, &s[FOR], kpath(kp, ip, "for"), true, false,
				 &d->for_ns)) != 0 ||
		    (rc = ld_real(ld, &s[FACTOR], kpath(kp, ip, "factor"), RR_POS,
				  &d->factor)) != 0)
			return rc;
		if (d->at_ns > INT64_MAX - d->for_ns)
			return ld_fail(ld, -EINVAL, s[FOR].key, s[FOR].val,
				       kpath(kp, ip, "for"),
				       "at + for is more than INT64_MAX ns");
		if (i > 0 && d->at_ns < d[-1].at_ns + d[-1].for_ns)
			return ld_fail(
				ld, -EINVAL, s[AT].key, s[AT].val, kpath(kp, ip, "at"),
				"%s is before the end of backend.slowdown[%zu] "
				"(slowdowns "
				"are sorted and do not overlap)",
				flowq__yaml_show(show, s[AT].val->value, s[AT].val->len),
				i - 1);
		b->nslowdowns = i + 1;
	}
	return 0;
}

static const char *const assign_names[] = {"weighted", "hash", "column", NULL};

static int
ld_trace(struct ld *ld, const struct kv *e, struct spec_at *at)
{
	enum {
		FILE_,
		TIME_COLUMN,
		TIME_SCALE,
		START,
		COST_COLUMN,
		BYTES_PER_UNIT,
		SERVICE_COLUMN,
		SERVICE_PER_UNIT,
		SERVICE_BASE,
		ASSIGN,
		ASSIGN_COLUMN,
		N
	};
	static const char *const keys[] = {
		"file",         "time_column",    "time_scale",     "start",
		"cost_column",  "bytes_per_unit", "service_column", "service_per_unit",
		"service_base", "assign",         "assign_column",  NULL};
	struct sim_trace_spec *t = &ld->spec->trace;
	struct kv k[N];
	int assign = 0, rc;

	if ((rc = ld_kind(ld, e, "trace", SN_MAP, "a mapping")) != 0 ||
	    (rc = ld_keys(ld, e->val, "trace", keys, k)) != 0)
		return rc;
	ld->spec->has_trace = true;
	if (k[FILE_].val == NULL)
		return ld_missing(ld, e, "trace", "file", NULL);
	if (k[TIME_COLUMN].val == NULL)
		return ld_missing(ld, e, "trace", "time_column", NULL);
	if (k[SERVICE_COLUMN].val != NULL && k[SERVICE_PER_UNIT].val == NULL)
		return ld_missing(ld, e, "trace", "service_per_unit",
				  " (trace.service_column needs it)");
	if ((rc = ld_text(ld, &k[FILE_], "trace.file", false, &t->path)) != 0 ||
	    (rc = ld_text(ld, &k[TIME_COLUMN], "trace.time_column", false,
			  &t->time_column)) != 0)
		return rc;
	at->trace_file = k[FILE_];
	if (k[TIME_SCALE].val != NULL &&
	    (rc = ld_real(ld, &k[TIME_SCALE], "trace.time_scale", RR_POS,
			  &t->time_scale)) != 0)
		return rc;
	if (k[START].val != NULL &&
	    (rc = ld_dur(ld, &k[START], "trace.start", false, false, &t->start_ns)) != 0)
		return rc;
	if (k[COST_COLUMN].val != NULL &&
	    (rc = ld_text(ld, &k[COST_COLUMN], "trace.cost_column", false,
			  &t->cost_column)) != 0)
		return rc;
	if (k[BYTES_PER_UNIT].val != NULL) {
		if (k[COST_COLUMN].val == NULL)
			return ld_fail(ld, -EINVAL, k[BYTES_PER_UNIT].key,
				       k[BYTES_PER_UNIT].val, "trace.bytes_per_unit",
				       "needs trace.cost_column");
		if ((rc = ld_real(ld, &k[BYTES_PER_UNIT], "trace.bytes_per_unit", RR_POS,
				  &t->bytes_per_unit)) != 0)
			return rc;
	}
	if (k[SERVICE_COLUMN].val != NULL &&
	    (rc = ld_text(ld, &k[SERVICE_COLUMN], "trace.service_column", false,
			  &t->service_column)) != 0)
		return rc;
	for (int i = SERVICE_PER_UNIT; i <= SERVICE_BASE; i++) {
		char kp[SPEC_PATH];

		if (k[i].val == NULL)
			continue;
		kpath(kp, "trace", keys[i]);
		if (k[SERVICE_COLUMN].val == NULL)
			return ld_fail(ld, -EINVAL, k[i].key, k[i].val, kp,
				       "needs trace.service_column");
		if ((rc = ld_dur(ld, &k[i], kp, false, false,
				 i == SERVICE_BASE ? &t->service_base_ns
						   : &t->service_per_unit_ns)) != 0)
			return rc;
	}
	if (k[ASSIGN].val != NULL) {
		if ((rc = ld_enum(ld, &k[ASSIGN], "trace.assign", assign_names,
				  &assign)) != 0)
			return rc;
		t->assign = (enum sim_trace_assign)assign;
	}
	if (t->assign == SIM_ASSIGN_COLUMN && k[ASSIGN_COLUMN].val == NULL)
		return ld_missing(ld, e, "trace", "assign_column",
				  " (assign: column needs it)");
	if (k[ASSIGN_COLUMN].val != NULL) {
		if (t->assign != SIM_ASSIGN_COLUMN)
			return ld_fail(ld, -EINVAL, k[ASSIGN_COLUMN].key,
				       k[ASSIGN_COLUMN].val, "trace.assign_column",
				       "needs trace.assign: column");
		if ((rc = ld_text(ld, &k[ASSIGN_COLUMN], "trace.assign_column", false,
				  &t->assign_column)) != 0)
			return rc;
	}
	return 0;
}

static const char *const process_names[] = {"poisson", "onoff", "closed", "trace", NULL};

/* flows[i].arrival. */
static int
ld_arrival(struct ld *ld, const struct kv *e, const char *fp, struct sim_flow_spec *f,
	   struct flow_at *fa)
{
	enum { PROCESS, RATE, ON, OFF, CLIENTS, THINK, SHARE, START, STOP, N };
	static const char *const keys[] = {"process", "rate",  "on",    "off",  "clients",
					   "think",   "share", "start", "stop", NULL};
	/* The keys of each process besides process, start and stop. */
	static const unsigned takes[] = {
		[SIM_ARRIVAL_POISSON] = 1u << RATE,
		[SIM_ARRIVAL_ONOFF] = 1u << RATE | 1u << ON | 1u << OFF,
		[SIM_ARRIVAL_CLOSED] = 1u << CLIENTS | 1u << THINK,
		[SIM_ARRIVAL_TRACE] = 1u << SHARE,
	};
	struct sim_arrival *a = &f->arrival;
	struct kv k[N];
	char ap[SPEC_PATH], kp[SPEC_PATH], show[128];
	int process = 0, rc;

	kpath(ap, fp, "arrival");
	if ((rc = ld_kind(ld, e, ap, SN_MAP, "a mapping")) != 0 ||
	    (rc = ld_keys(ld, e->val, ap, keys, k)) != 0)
		return rc;
	if (k[PROCESS].val == NULL)
		return ld_missing(ld, e, ap, "process", NULL);
	if ((rc = ld_enum(ld, &k[PROCESS], kpath(kp, ap, "process"), process_names,
			  &process)) != 0)
		return rc;
	a->kind = (enum sim_arrival_kind)process;
	fa->process = k[PROCESS];
	fa->share = k[SHARE];
	fa->clients = k[CLIENTS];
	for (int i = RATE; i <= SHARE; i++) {
		char list[64];
		size_t pos = 0;

		if (k[i].val == NULL || (takes[process] & (1u << i)))
			continue;
		for (int j = RATE; j <= SHARE; j++) {
			if (takes[process] & (1u << j))
				pos += (size_t)snprintf(list + pos, sizeof(list) - pos,
							"%s, ", keys[j]);
		}
		return ld_fail(ld, -EINVAL, k[i].key, k[i].val, kpath(kp, ap, keys[i]),
			       "not a parameter of process %s (it takes: %sstart, stop)",
			       process_names[process], list);
	}
	for (int i = RATE; i <= THINK; i++) {
		if ((takes[process] & (1u << i)) && k[i].val == NULL)
			return ld_missing(ld, e, ap, keys[i], NULL);
	}
	if (k[RATE].val != NULL &&
	    (rc = ld_rate(ld, &k[RATE], kpath(kp, ap, "rate"), &a->rate)) != 0)
		return rc;
	if (k[ON].val != NULL &&
	    ((rc = ld_dist(ld, &k[ON], kpath(kp, ap, "on"), false, &a->on_ns)) != 0 ||
	     (rc = ld_dist(ld, &k[OFF], kpath(kp, ap, "off"), false, &a->off_ns)) != 0))
		return rc;
	if (k[CLIENTS].val != NULL &&
	    ((rc = ld_u32(ld, &k[CLIENTS], kpath(kp, ap, "clients"), 1, &a->clients)) !=
		     0 ||
	     (rc = ld_dist(ld, &k[THINK], kpath(kp, ap, "think"), false, &a->think_ns)) !=
		     0))
		return rc;
	if (k[SHARE].val != NULL &&
	    (rc = ld_real(ld, &k[SHARE], kpath(kp, ap, "share"), RR_POS, &a->share)) != 0)
		return rc;
	if (k[START].val != NULL && (rc = ld_dur(ld, &k[START], kpath(kp, ap, "start"),
						 false, false, &a->start_ns)) != 0)
		return rc;
	if (k[STOP].val != NULL) {
		if ((rc = ld_dur(ld, &k[STOP], kpath(kp, ap, "stop"), false, false,
				 &a->stop_ns)) != 0)
			return rc;
		if (a->stop_ns <= a->start_ns)
			return ld_fail(ld, -EINVAL, k[STOP].key, k[STOP].val, kp,
				       "%s is not after start",
				       flowq__yaml_show(show, k[STOP].val->value,
							k[STOP].val->len));
	}
	return 0;
}

/* flows[i]. */
static int
ld_flow(struct ld *ld, const struct kv *item, const char *fp, struct sim_flow_spec *f,
	struct flow_at *fa)
{
	enum { ID, COUNT, PRIORITY, WEIGHT, ARRIVAL, SIZE, TTL, DEADLINE, CANCEL, N };
	static const char *const keys[] = {"id",      "count", "priority", "weight",
					   "arrival", "size",  "ttl",      "deadline",
					   "cancel",  NULL};
	static const char *const ckeys[] = {"prob", "after", NULL};
	struct kv k[N], c[2];
	char kp[SPEC_PATH], cp[SPEC_PATH];
	int rc;

	if ((rc = ld_kind(ld, item, fp, SN_MAP, "a mapping (one flow class)")) != 0 ||
	    (rc = ld_keys(ld, item->val, fp, keys, k)) != 0)
		return rc;
	fa->item = item->val;
	fa->id = k[ID];
	fa->count = k[COUNT];
	fa->priority = k[PRIORITY];
	fa->size = k[SIZE];
	if (k[ID].val == NULL)
		return ld_missing(ld, item, fp, "id", NULL);
	if (k[PRIORITY].val == NULL)
		return ld_missing(ld, item, fp, "priority", NULL);
	if (k[ARRIVAL].val == NULL)
		return ld_missing(ld, item, fp, "arrival", NULL);
	if ((rc = ld_text(ld, &k[ID], kpath(kp, fp, "id"), false, &f->id)) != 0)
		return rc;
	if ((k[COUNT].val != NULL &&
	     (rc = ld_u32(ld, &k[COUNT], kpath(kp, fp, "count"), 1, &f->count)) != 0) ||
	    (rc = ld_i32(ld, &k[PRIORITY], kpath(kp, fp, "priority"), &f->priority)) !=
		    0 ||
	    (k[WEIGHT].val != NULL &&
	     (rc = ld_u32(ld, &k[WEIGHT], kpath(kp, fp, "weight"), 1, &f->weight)) !=
		     0) ||
	    (rc = ld_arrival(ld, &k[ARRIVAL], fp, f, fa)) != 0 ||
	    (k[SIZE].val != NULL &&
	     (rc = ld_dist(ld, &k[SIZE], kpath(kp, fp, "size"), true, &f->size)) != 0) ||
	    (k[TTL].val != NULL && (rc = ld_dur(ld, &k[TTL], kpath(kp, fp, "ttl"), false,
						true, &f->ttl_ns)) != 0) ||
	    (k[DEADLINE].val != NULL &&
	     (rc = ld_dur(ld, &k[DEADLINE], kpath(kp, fp, "deadline"), false, false,
			  &f->deadline_ns)) != 0))
		return rc;
	if (k[CANCEL].val == NULL)
		return 0;
	kpath(cp, fp, "cancel");
	if ((rc = ld_kind(ld, &k[CANCEL], cp, SN_MAP, "a mapping {prob, after}")) != 0 ||
	    (rc = ld_keys(ld, k[CANCEL].val, cp, ckeys, c)) != 0)
		return rc;
	if (c[0].val == NULL)
		return ld_missing(ld, &k[CANCEL], cp, "prob", NULL);
	if ((rc = ld_real(ld, &c[0], kpath(kp, cp, "prob"), RR_UNIT, &f->cancel_prob)) !=
	    0)
		return rc;
	if (c[1].val == NULL && f->cancel_prob > 0)
		return ld_missing(ld, &k[CANCEL], cp, "after", " (prob > 0 needs it)");
	if (c[1].val != NULL && (rc = ld_dist(ld, &c[1], kpath(kp, cp, "after"), false,
					      &f->cancel_after_ns)) != 0)
		return rc;
	return 0;
}

static int
ld_flows(struct ld *ld, const struct kv *e, struct spec_at *at)
{
	struct sim_spec *sp = ld->spec;
	const struct sn *seq = e->val;
	char fp[SPEC_PATH];
	size_t total = 0;
	int rc;

	if ((rc = ld_kind(ld, e, "flows", SN_SEQ, "a sequence of flow classes")) != 0)
		return rc;
	if (seq->nkid == 0)
		return ld_fail(ld, -EINVAL, e->key, seq, "flows",
			       "no flows (expected at least one class)");
	if ((sp->flows = sp_calloc(seq->nkid, sizeof(*sp->flows))) == NULL ||
	    (at->flows = sp_calloc(seq->nkid, sizeof(*at->flows))) == NULL)
		return ld_nomem(ld);
	for (size_t i = 0; i < seq->nkid; i++) {
		struct sim_flow_spec *f = &sp->flows[i];
		struct kv item = {NULL, seq->kid[i]};

		*f = (struct sim_flow_spec){
			.count = 1,
			.weight = 1,
			.arrival = {.share = 1},
			.cancel_after_ns = {SIM_DIST_CONST, 0, 0},
			.first = total,
		};
		sp->nflows = i + 1;
		snprintf(fp, sizeof(fp), "flows[%zu]", i);
		if ((rc = ld_flow(ld, &item, fp, f, &at->flows[i])) != 0)
			return rc;
		{
			size_t line = 0, col = 0;

			/* 0: the class came from an override. */
			if (ld_origin(ld, &item.val->start, &line, &col) < 0)
				f->line = (unsigned)line + 1;
		}
		total += f->count;
		if (total > SIM_MAX_FLOWS) {
			const struct kv *c = at->flows[i].count.val != NULL
						     ? &at->flows[i].count
						     : &item;
			char kp[SPEC_PATH];

			return ld_fail(
				ld, -EINVAL, kv_at(c), c->val,
				c == &item ? fp : kpath(kp, fp, "count"),
				"%zu flows in all (the sum of the counts) is more than "
				"SIM_MAX_FLOWS (%u)",
				total, SIM_MAX_FLOWS);
		}
	}
	return 0;
}

/* Anchors, aliases and tags are refused anywhere under @n. */
static int
ld_plain_tree(struct ld *ld, const struct sn *n, const char *path)
{
	int rc = ld_plain(ld, n, path);

	for (size_t i = 0; rc == 0 && i < n->nkid; i++)
		rc = ld_plain_tree(ld, n->kid[i], path);
	return rc;
}

/* compare: the variants, as override lists (checked at the end). */
static int
ld_compare(struct ld *ld, const struct kv *e)
{
	enum { NAME, SET, N };
	static const char *const keys[] = {"name", "set", NULL};
	struct sim_spec *sp = ld->spec;
	const struct sn *seq = e->val;
	char vp[SPEC_PATH], kp[SPEC_PATH], show[128], at[160];
	int rc;

	ld->compare = NULL;
	if ((rc = ld_kind(ld, e, "compare", SN_SEQ, "a sequence of {name, set}")) != 0)
		return rc;
	if (seq->nkid > 0 &&
	    (sp->variants = sp_calloc(seq->nkid, sizeof(*sp->variants))) == NULL)
		return ld_nomem(ld);
	for (size_t i = 0; i < seq->nkid; i++) {
		struct sim_variant *v = &sp->variants[i];
		struct kv item = {NULL, seq->kid[i]}, k[N];
		const struct sn *set;

		sp->nvariants = i + 1;
		snprintf(vp, sizeof(vp), "compare[%zu]", i);
		if ((rc = ld_kind(ld, &item, vp, SN_MAP, "a mapping {name, set}")) != 0 ||
		    (rc = ld_keys(ld, item.val, vp, keys, k)) != 0)
			return rc;
		if (k[NAME].val == NULL)
			return ld_missing(ld, &item, vp, "name", NULL);
		if (k[SET].val == NULL)
			return ld_missing(ld, &item, vp, "set", NULL);
		if ((rc = ld_text(ld, &k[NAME], kpath(kp, vp, "name"), false,
				  &v->name)) != 0)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(sp->variants[j].name, v->name) == 0)
				return ld_fail(
					ld, -EINVAL, k[NAME].key, k[NAME].val, kp,
					"\"%s\" is the name of compare[%zu] too",
					flowq__yaml_show(show, v->name, strlen(v->name)),
					j);
		}
		kpath(kp, vp, "set");
		if ((rc = ld_kind(ld, &k[SET], kp, SN_MAP,
				  "a mapping of key.path: value")) != 0)
			return rc;
		set = k[SET].val;
		if (set->nkid == 0)
			return ld_fail(
				ld, -EINVAL, k[SET].key, set, kp,
				"no settings (expected at least one key.path: value)");
		if ((v->overrides = sp_calloc(set->nkid / 2, sizeof(*v->overrides))) ==
		    NULL)
			return ld_nomem(ld);
		for (size_t j = 0; j + 1 < set->nkid; j += 2) {
			struct kv s = {set->kid[j], set->kid[j + 1]};
			struct sbuf b = {0};
			char *key = NULL;

			if ((rc = ld_plain(ld, s.key, kp)) != 0)
				return rc;
			if (s.key->kind != SN_SCALAR)
				return ld_fail(ld, -EINVAL, s.key, s.key, kp,
					       "keys must be names, got %s as a key",
					       s.key->kind == SN_MAP ? "a mapping"
								     : "a sequence");
			for (size_t q = 0; q < j; q += 2) {
				const struct sn *o = set->kid[q];

				if (o->len == s.key->len &&
				    memcmp(o->value, s.key->value, o->len) == 0)
					return ld_fail(
						ld, -EINVAL, s.key, s.key, kp,
						"duplicate key %s (first at %s)",
						flowq__yaml_show(show, o->value, o->len),
						ld_at(ld, at, &o->start));
			}
			if ((rc = ld_text(ld, &(struct kv){s.key, s.key}, kp, false,
					  &key)) != 0 ||
			    (rc = ld_plain_tree(ld, s.val, kp)) != 0) {
				free(key);
				return rc;
			}
			if (strncmp(key, "compare", 7) == 0 &&
			    strchr(".[", key[7]) != NULL) {
				free(key);
				return ld_fail(ld, -EINVAL, s.key, s.key, kp,
					       "a variant cannot set compare");
			}
			sbuf_str(&b, key);
			sbuf_str(&b, "=");
			emit_node(&b, s.val);
			free(key);
			if (b.nomem) {
				free(b.s);
				return ld_nomem(ld);
			}
			v->overrides[v->noverrides++] = b.s;
		}
	}
	ld->compare = seq;
	return 0;
}

/* The directory where flowq-sim looks for trace files of relative paths. */
static void
looked_add(struct sbuf *looked, struct sbuf *cand, const char *dir, size_t dn,
	   const char *file)
{
	cand->n = 0;
	if (dn > 0) {
		sbuf_put(cand, dir, dn);
		if (dir[dn - 1] != '/')
			sbuf_str(cand, "/");
	}
	sbuf_str(cand, file);
	if (looked->n > 0)
		sbuf_str(looked, ", ");
	sbuf_str(looked, cand->s != NULL ? cand->s : "");
}

static bool
is_file(const char *p)
{
	struct stat st;

	return p != NULL && stat(p, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* trace.file resolved (see the header comment). */
static int
ld_trace_file(struct ld *ld, const struct spec_at *at)
{
	struct sim_trace_spec *t = &ld->spec->trace;
	const char *lists[3] = {ld->dir, getenv("FLOWQ_SIM_DATA"), FLOWQ_SIM_DATA_DIRS};
	struct sbuf looked = {0}, cand = {0};
	char show[128];
	bool found = false;
	int rc = 0;

	if (!ld->spec->has_trace)
		return 0;
	if (t->path[0] == '/') {
		looked_add(&looked, &cand, "", 0, t->path);
		found = is_file(cand.s);
	}
	for (int l = 0; !found && t->path[0] != '/' && l < 3; l++) {
		const char *d = lists[l];

		/* The spec's directory is one directory; the others are
		 * colon-separated lists. */
		while (!found && d != NULL && d[0] != '\0') {
			size_t dn = l == 0 ? strlen(d) : strcspn(d, ":");

			if (dn > 0) {
				looked_add(&looked, &cand, d, dn, t->path);
				found = is_file(cand.s);
			}
			d += dn;
			d += d[0] == ':';
		}
	}
	if (looked.nomem || cand.nomem)
		rc = ld_nomem(ld);
	else if (found) {
		/* Absolute and without "..", where the system allows. */
		char *real = realpath(cand.s, NULL);

		free(t->path);
		t->path = real != NULL ? real : cand.s;
		if (real == NULL)
			cand.s = NULL;
	} else {
		rc = ld_fail(ld, -ENOENT, at->trace_file.key, at->trace_file.val,
			     "trace.file", "\"%s\" not found (looked at: %s)",
			     flowq__yaml_show(show, t->path, strlen(t->path)),
			     looked.s != NULL ? looked.s : "nowhere");
	}
	free(looked.s);
	free(cand.s);
	return rc;
}

/* Flow class order by id, for qsort_r. */
static int
cmp_id(const void *a, const void *b, void *ctx)
{
	const struct sim_flow_spec *f = ctx;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(f[i].id, f[j].id);

	return c != 0 ? c : (i > j) - (i < j);
}

/* strcmp(@id, the first @bl bytes of @base). */
static int
cmp_base(const char *id, const char *base, size_t bl)
{
	int c = strncmp(id, base, bl);

	return c != 0 ? c : id[bl] != '\0';
}

/* Every flow id unique and short enough (see the header comment). */
static int
ld_ids(struct ld *ld, const struct spec_at *at)
{
	const struct sim_spec *sp = ld->spec;
	const struct sim_flow_spec *f = sp->flows;
	size_t n = sp->nflows, *ord, bad = SIZE_MAX, other = 0;
	char kp[SPEC_PATH], show[128], where[160];
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		char digits[24];
		size_t len = strlen(f[i].id);

		if (f[i].count > 1)
			len += (size_t)snprintf(digits, sizeof(digits), "-%u",
						f[i].count - 1);
		if (len > FLOWQ_FLOW_ID_MAX) {
			snprintf(kp, sizeof(kp), "flows[%zu].id", i);
			return ld_fail(
				ld, -EINVAL, at->flows[i].id.key, at->flows[i].id.val, kp,
				"%zu bytes%s: more than FLOWQ_FLOW_ID_MAX (%u)", len,
				f[i].count > 1 ? " with the \"-<k>\" of count" : "",
				FLOWQ_FLOW_ID_MAX);
		}
	}
	if ((ord = sp_malloc(n * sizeof(*ord))) == NULL)
		return ld_nomem(ld);
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	qsort_r(ord, n, sizeof(*ord), cmp_id, (void *)f);
	/* Equal ids: the later class is the duplicate. */
	for (size_t i = 1; i < n; i++) {
		if (strcmp(f[ord[i - 1]].id, f[ord[i]].id) == 0 && ord[i] < bad) {
			bad = ord[i];
			other = ord[i - 1];
		}
	}
	if (bad != SIZE_MAX) {
		snprintf(kp, sizeof(kp), "flows[%zu].id", bad);
		rc = ld_fail(ld, -EINVAL, at->flows[bad].id.key, at->flows[bad].id.val,
			     kp, "\"%s\" is the id of flows[%zu] too (at %s)",
			     flowq__yaml_show(show, f[bad].id, strlen(f[bad].id)), other,
			     ld_at(ld, where, &at->flows[other].id.key->start));
		goto out;
	}
	/* A class of one flow named like one of a counted class's flows:
	 * "<base>-<k>" with base's count > k. */
	for (size_t i = 0; i < n; i++) {
		const char *dash = strrchr(f[i].id, '-'), *d;
		size_t lo = 0, hi = n, k = 0, bl;

		if (f[i].count != 1 || dash == NULL || dash[1] == '\0' ||
		    (dash[1] == '0' && dash[2] != '\0'))
			continue;
		for (d = dash + 1; *d >= '0' && *d <= '9' && k < UINT32_MAX; d++)
			k = k * 10 + (size_t)(*d - '0');
		if (*d != '\0')
			continue;
		bl = (size_t)(dash - f[i].id);
		while (lo < hi) { /* the first id >= the base (sorted by strcmp) */
			size_t mid = (lo + hi) / 2;

			if (cmp_base(f[ord[mid]].id, f[i].id, bl) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < n && cmp_base(f[ord[lo]].id, f[i].id, bl) == 0 &&
		    f[ord[lo]].count > k && f[ord[lo]].count > 1) {
			const struct sim_flow_spec *b = &f[ord[lo]];

			snprintf(kp, sizeof(kp), "flows[%zu].id", i);
			rc = ld_fail(ld, -EINVAL, at->flows[i].id.key,
				     at->flows[i].id.val, kp,
				     "\"%s\" is also the id of flow %zu of flows[%zu] "
				     "(id \"%s\", "
				     "count %u)",
				     flowq__yaml_show(show, f[i].id, strlen(f[i].id)), k,
				     ord[lo], b->id, b->count);
			goto out;
		}
	}
out:
	free(ord);
	return rc;
}

/* Every flow's priority has a band: configured, or just in time. */
static int
ld_bands(struct ld *ld, const struct spec_at *at)
{
	const struct sim_spec *sp = ld->spec;
	const struct flowq_config *cfg = &sp->engine.config;
	int32_t jit[FLOWQ_MAX_BANDS];
	size_t njit = 0;
	char kp[SPEC_PATH];

	for (size_t i = 0; i < sp->nflows; i++) {
		int32_t p = sp->flows[i].priority;
		const struct kv *e = &at->flows[i].priority;
		bool have = false;

		for (size_t b = 0; b < cfg->nbands && !have; b++)
			have = cfg->bands[b].priority == p;
		for (size_t b = 0; b < njit && !have; b++)
			have = jit[b] == p;
		if (have)
			continue;
		snprintf(kp, sizeof(kp), "flows[%zu].priority", i);
		if (!cfg->default_band_enabled)
			return ld_fail(ld, -EINVAL, e->key, e->val, kp,
				       "no band of engine.bands has priority %" PRId32
				       " and engine.default_band_enabled is false",
				       p);
		if (cfg->nbands + njit >= FLOWQ_MAX_BANDS)
			return ld_fail(
				ld, -EINVAL, e->key, e->val, kp,
				"priority %" PRId32 " would make more than "
				"FLOWQ_MAX_BANDS (%u) bands (engine.bands and one more "
				"per other priority)",
				p, FLOWQ_MAX_BANDS);
		jit[njit++] = p;
	}
	return 0;
}

/* The rules between sections, and the defaults that depend on others. */
static int
ld_rules(struct ld *ld, struct spec_at *at)
{
	struct sim_spec *sp = ld->spec;
	const struct sim_trace_spec *t = &sp->trace;
	uint64_t clients = 0;
	size_t ntrace = 0;
	bool service = false;
	char kp[SPEC_PATH], show[128];
	int rc;

	if (!at->window_given) {
		/* duration / 60, to the nearest ms, at least 1 ms. */
		int64_t w = (sp->duration_ns / 60 + 500000) / 1000000 * 1000000;

		sp->window_ns = w > 1000000 ? w : 1000000;
	}
	if ((uint64_t)(sp->duration_ns - 1) / (uint64_t)sp->window_ns + 1 >
	    SIM_MAX_WINDOWS)
		return ld_fail(
			ld, -EINVAL, at->window.key, at->window.val, "sim.window",
			"%s makes more than SIM_MAX_WINDOWS (%u) windows in sim.duration",
			flowq__yaml_show(show, at->window.val->value,
					 at->window.val->len),
			SIM_MAX_WINDOWS);
	if (sp->drain_ns > INT64_MAX - sp->duration_ns) {
		const struct kv *e =
			at->drain.val != NULL ? &at->drain : &at->top[TOP_SIM];

		return ld_fail(ld, -EINVAL, e->key, e->val,
			       at->drain.val ? "sim.drain" : "sim",
			       "duration + drain is more than INT64_MAX ns");
	}
	for (size_t i = 0; i < sp->nflows; i++) {
		const struct sim_flow_spec *f = &sp->flows[i];
		const struct flow_at *fa = &at->flows[i];
		struct kv item = {NULL, fa->item};
		bool trace = f->arrival.kind == SIM_ARRIVAL_TRACE;
		char fp[SPEC_PATH];

		snprintf(fp, sizeof(fp), "flows[%zu]", i);
		ntrace += trace;
		service |= !trace || t->service_column == NULL;
		if (trace && !sp->has_trace)
			return ld_fail(
				ld, -EINVAL, fa->process.key, fa->process.val,
				kpath(kp, fp, "arrival.process"),
				"process trace needs the top-level trace: section");
		if (trace && t->cost_column != NULL && fa->size.val != NULL)
			return ld_fail(ld, -EINVAL, fa->size.key, fa->size.val,
				       kpath(kp, fp, "size"),
				       "a trace flow's request size comes from "
				       "trace.cost_column (remove size)");
		if (fa->size.val == NULL && (!trace || t->cost_column == NULL))
			return ld_missing(ld, &item, fp, "size",
					  trace ? " (trace.cost_column is not set)"
						: NULL);
		if (trace && t->assign == SIM_ASSIGN_COLUMN && fa->share.val != NULL)
			return ld_fail(ld, -EINVAL, fa->share.key, fa->share.val,
				       kpath(kp, fp, "arrival.share"),
				       "not used with trace.assign: column (remove it)");
		if (f->arrival.kind == SIM_ARRIVAL_CLOSED) {
			clients += (uint64_t)f->count * f->arrival.clients;
			if (clients > SPEC_MAX_CLIENTS)
				return ld_fail(
					ld, -EINVAL, fa->clients.key, fa->clients.val,
					kpath(kp, fp, "arrival.clients"),
					"%" PRIu64 " closed-loop clients in all (count x "
					"clients over the flows) is more than %" PRIu64,
					clients, SPEC_MAX_CLIENTS);
		}
	}
	if (sp->has_trace && ntrace == 0)
		return ld_fail(
			ld, -EINVAL, at->top[TOP_TRACE].key, at->top[TOP_TRACE].val,
			"trace",
			"no flow has arrival process trace (a trace needs at least "
			"one)");
	if (service && at->service.val == NULL)
		return ld_missing(
			ld, &at->top[TOP_BACKEND], "backend", "service",
			sp->has_trace ? " (flows without trace.service_column need it)"
				      : NULL);
	if ((rc = ld_ids(ld, at)) != 0 || (rc = ld_bands(ld, at)) != 0)
		return rc;
	return 0;
}

static int
spec_load(struct sim_spec *sp, const char *name, const char *dir,
	  const unsigned char *buf, size_t len, const char *const *ovr, size_t novr,
	  char *err, size_t errsz, long *r_blame, size_t *r_rest);

/* Each compare variant loads: with the load's overrides, the variant's and
 * "compare=[]" (see the header comment). */
static int
ld_variants(struct ld *ld)
{
	struct sim_spec *sp = ld->spec;
	size_t esz = ld->errsz > 512 ? ld->errsz : 512;
	char *err = sp_malloc(esz), vp[SPEC_PATH], setp[SPEC_PATH];
	int rc = 0;

	if (err == NULL)
		return ld_nomem(ld);
	for (size_t v = 0; rc == 0 && v < sp->nvariants; v++) {
		const struct sim_variant *var = &sp->variants[v];
		size_t n = ld->novr + var->noverrides + 1, rest = 0;
		const char **o = sp_malloc(n * sizeof(*o));
		struct sim_spec tmp;
		long blame = -1;

		if (o == NULL) {
			rc = ld_nomem(ld);
			break;
		}
		for (size_t i = 0; i < ld->novr; i++)
			o[i] = ld->ovr[i];
		for (size_t i = 0; i < var->noverrides; i++)
			o[ld->novr + i] = var->overrides[i];
		o[n - 1] = "compare=[]"; /* the siblings are not checked with it */
		rc = spec_load(&tmp, ld->name, ld->dir, ld->orig, ld->orig_len, o, n, err,
			       esz, &blame, &rest);
		free(o);
		sim_spec_free(&tmp);
		if (rc == 0)
			continue;
		snprintf(vp, sizeof(vp), "compare[%zu]", v);
		if (rc == -ENOMEM) {
			rc = ld_nomem(ld);
		} else if (blame >= (long)ld->novr &&
			   blame < (long)(ld->novr + var->noverrides)) {
			/* A value of the variant's own: at its entry of set. */
			const struct sn *item = ld->compare->kid[v];
			long s = map_find(item, "set", 3);
			const struct sn *key =
				item->kid[s]->kid[2 * (size_t)(blame - (long)ld->novr)];

			rc = ld_fail(ld, rc, key, NULL, kpath(setp, vp, "set"), "%s",
				     err + rest);
		} else {
			rc = ld_fail(ld, rc, ld->compare->kid[v], NULL, vp,
				     "with this variant: %s", err);
		}
	}
	free(err);
	return rc;
}

/* The document (see the header comment for the order of checks). */
static int
ld_top(struct ld *ld)
{
	const struct sn *root = ld->root;
	struct sim_spec *sp = ld->spec;
	struct spec_at at = {0};
	struct kv rootkv = {NULL, root};
	int rc;

	if ((rc = ld_keys(ld, root, "", top_keys, at.top)) != 0)
		goto out;
	for (size_t i = 0; rc == 0 && i + 1 < root->nkid; i += 2) {
		int t = 0;

		while (at.top[t].key != root->kid[i])
			t++;
		switch (t) {
		case TOP_NAME:
			rc = ld_text(ld, &at.top[t], "name", false, &sp->name);
			break;
		case TOP_DESCRIPTION:
			rc = ld_text(ld, &at.top[t], "description", true,
				     &sp->description);
			break;
		case TOP_SIM:
			rc = ld_sim(ld, &at.top[t], &at);
			break;
		case TOP_ENGINE: {
			struct flowq__config_yaml_where w = {ld_hook_prefix, ld_hook_at,
							     ld};

			ld->blame = -1;
			ld->rest = 0;
			rc = flowq__config_load_yaml_where(&sp->engine, ld->text, ld->len,
							   ld->name, "engine", &w,
							   ld->err, ld->errsz);
			break;
		}
		case TOP_BACKEND:
			rc = ld_backend(ld, &at.top[t], &at);
			break;
		case TOP_TRACE:
			rc = ld_trace(ld, &at.top[t], &at);
			break;
		case TOP_FLOWS:
			rc = ld_flows(ld, &at.top[t], &at);
			break;
		default:
			rc = ld_compare(ld, &at.top[t]);
			break;
		}
	}
	if (rc != 0)
		goto out;
	if (at.top[TOP_BACKEND].val == NULL) {
		rc = ld_missing(ld, &rootkv, "", "backend", NULL);
		goto out;
	}
	if (at.top[TOP_FLOWS].val == NULL) {
		rc = ld_missing(ld, &rootkv, "", "flows", NULL);
		goto out;
	}
	if ((rc = ld_rules(ld, &at)) != 0 || (rc = ld_trace_file(ld, &at)) != 0)
		goto out;
	if (ld->compare != NULL)
		rc = ld_variants(ld);
out:
	free(at.flows);
	return rc;
}

/* A spec holding nothing, with the defaults. */
static void
spec_init(struct sim_spec *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->mode = SIM_MODE_REALTIME;
	sp->seed = 1;
	sp->duration_ns = INT64_C(60000000000);
	sp->drain_ns = INT64_C(10000000000);
	sp->producers = 2;
	sp->inversion_grace_ns = 1000000;
	flowq_config_init(&sp->engine.config);
	sp->engine.owned = NULL;
	sp->backend.service_ns = (struct sim_dist){SIM_DIST_CONST, 0, 0};
	sp->trace.time_scale = 1;
	sp->trace.bytes_per_unit = 1;
	sp->trace.assign = SIM_ASSIGN_WEIGHTED;
}

/* name's default: the file name without directory and extension. */
static char *
default_name(const char *source)
{
	const char *b = strrchr(source, '/'), *dot;

	if (strcmp(source, "<default>") == 0)
		return sp_strdup("default");
	b = b != NULL ? b + 1 : source;
	dot = strrchr(b, '.');
	return sp_strndup(b, dot != NULL && dot > b ? (size_t)(dot - b) : strlen(b));
}

static int
spec_load(struct sim_spec *sp, const char *name, const char *dir,
	  const unsigned char *buf, size_t len, const char *const *ovr, size_t novr,
	  char *err, size_t errsz, long *r_blame, size_t *r_rest)
{
	struct ld ld = {
		.name = name,
		.dir = dir,
		.err = err,
		.errsz = errsz,
		.blame = -1,
		.orig = buf,
		.orig_len = len,
		.text = (unsigned char *)buf,
		.len = len,
		.ovr = ovr,
		.novr = novr,
		.spec = sp,
	};
	struct perr pe;
	int rc = 0;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	spec_init(sp);
	if ((sp->source = sp_strdup(name)) == NULL ||
	    (ld.loc = newlocale(LC_ALL_MASK, "C", (locale_t)0)) == (locale_t)0) {
		rc = ld_nomem(&ld);
		goto out;
	}
	if (len > FLOWQ_CONFIG_YAML_MAX_SIZE) {
		rc = ld_fail_plain(
			&ld, -EFBIG,
			"%s: larger than FLOWQ_CONFIG_YAML_MAX_SIZE (%u bytes)", name,
			FLOWQ_CONFIG_YAML_MAX_SIZE);
		goto out;
	}
	for (size_t i = 0; i < novr; i++) {
		if (ovr[i] == NULL) {
			rc = ld_fail_plain(&ld, -EFAULT, "override #%zu is NULL", i);
			goto out;
		}
	}
	if ((rc = tree_parse(buf, len, &ld.root, &pe)) != 0) {
		if (rc == -ENOMEM)
			rc = ld_nomem(&ld);
		else
			rc = ld_failm(&ld, rc, &pe.m, NULL, NULL, "%s", pe.msg);
		goto out;
	}
	if (ld.root == NULL || ld.root->kind != SN_MAP) {
		char what[160];
		yaml_mark_t m = {0};

		if (ld.root == NULL)
			rc = ld_failm(&ld, -EINVAL, &m, NULL, NULL,
				      "empty document: expected a mapping of spec keys");
		else
			rc = ld_fail(
				&ld, -EINVAL, ld.root, ld.root, NULL,
				"the document is %s: expected a mapping of spec keys",
				sn_what(what, ld.root));
		goto out;
	}
	if (novr > 0 && len >= 2 &&
	    ((buf[0] == 0xFE && buf[1] == 0xFF) || (buf[0] == 0xFF && buf[1] == 0xFE))) {
		rc = ld_fail_ovr(&ld, -EINVAL, 0,
				 "overrides need a UTF-8 spec (this one is UTF-16)");
		goto out;
	}
	for (size_t i = 0; i < novr; i++) {
		if ((rc = ld_override(&ld, i)) != 0)
			goto out;
	}
	if ((rc = ld_top(&ld)) != 0)
		goto out;
	if ((sp->name == NULL && (sp->name = default_name(name)) == NULL) ||
	    (sp->description == NULL && (sp->description = sp_strdup("")) == NULL))
		rc = ld_nomem(&ld);
out:
	if (r_blame != NULL)
		*r_blame = ld.blame;
	if (r_rest != NULL)
		*r_rest = ld.rest;
	sn_free(ld.root);
	free(ld.segs);
	if (ld.text != buf)
		free(ld.text);
	if (ld.loc != (locale_t)0)
		freelocale(ld.loc);
	if (rc != 0)
		sim_spec_free(sp);
	return rc;
}

/* ---- public ------------------------------------------------------------------ */

int
sim_spec_load_buf(struct sim_spec *r_spec, const char *name, const char *buf, size_t len,
		  const char *const *overrides, size_t noverrides, char *err,
		  size_t errsz)
{
	if (r_spec == NULL || (buf == NULL && len > 0) ||
	    (overrides == NULL && noverrides > 0)) {
		if (err != NULL && errsz > 0)
			snprintf(err, errsz, "%s is NULL",
				 r_spec == NULL ? "r_spec"
				 : buf == NULL  ? "buf"
						: "overrides");
		if (r_spec != NULL)
			spec_init(r_spec);
		return -EFAULT;
	}
	return spec_load(r_spec, name != NULL ? name : "<buffer>", NULL,
			 (const unsigned char *)(buf != NULL ? buf : ""), len, overrides,
			 noverrides, err, errsz, NULL, NULL);
}

int
sim_spec_load(struct sim_spec *r_spec, const char *path, const char *const *overrides,
	      size_t noverrides, char *err, size_t errsz)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	char *dir, *slash;
	locale_t loc;
	int rc;

	if (path == NULL)
		return sim_spec_load_buf(
			r_spec, "<default>", (const char *)sim_default_spec,
			sim_default_spec_len, overrides, noverrides, err, errsz);
	if (r_spec == NULL || (overrides == NULL && noverrides > 0))
		return sim_spec_load_buf(r_spec, path, NULL, 0, overrides, noverrides,
					 err, errsz);
	spec_init(r_spec);
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if ((loc = newlocale(LC_ALL_MASK, "C", (locale_t)0)) == (locale_t)0) {
		if (err != NULL && errsz > 0)
			snprintf(err, errsz, "%s: out of memory", path);
		return -ENOMEM;
	}
	rc = flowq__yaml_read_file(path, loc, &buf, &len, err, errsz);
	freelocale(loc);
	if (rc != 0)
		return rc;
	if ((dir = sp_strdup(path)) == NULL) {
		flowq__yaml_free(buf);
		if (err != NULL && errsz > 0)
			snprintf(err, errsz, "%s: out of memory", path);
		return -ENOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0';
	rc = spec_load(r_spec, path, dir, buf, len, overrides, noverrides, err, errsz,
		       NULL, NULL);
	free(dir);
	flowq__yaml_free(buf);
	return rc;
}

void
sim_spec_free(struct sim_spec *spec)
{
	if (spec == NULL)
		return;
	free(spec->name);
	free(spec->description);
	free(spec->source);
	flowq_config_yaml_free(&spec->engine);
	free(spec->backend.slowdowns);
	for (size_t i = 0; i < spec->nflows; i++)
		free(spec->flows[i].id);
	free(spec->flows);
	free(spec->trace.path);
	free(spec->trace.time_column);
	free(spec->trace.cost_column);
	free(spec->trace.service_column);
	free(spec->trace.assign_column);
	for (size_t i = 0; i < spec->nvariants; i++) {
		for (size_t j = 0; j < spec->variants[i].noverrides; j++)
			free(spec->variants[i].overrides[j]);
		free(spec->variants[i].overrides);
		free(spec->variants[i].name);
	}
	free(spec->variants);
	spec_init(spec);
}

size_t
sim_spec_nflows(const struct sim_spec *spec)
{
	if (spec->nflows == 0)
		return 0;
	return spec->flows[spec->nflows - 1].first + spec->flows[spec->nflows - 1].count;
}

const struct sim_flow_spec *
sim_spec_flow(const struct sim_spec *spec, size_t k, char *buf, size_t bufsz)
{
	size_t lo = 0, hi = spec->nflows;
	const struct sim_flow_spec *f;

	if (k >= sim_spec_nflows(spec))
		return NULL;
	while (hi - lo > 1) { /* the last class with first <= k */
		size_t mid = (lo + hi) / 2;

		if (spec->flows[mid].first <= k)
			lo = mid;
		else
			hi = mid;
	}
	f = &spec->flows[lo];
	if (buf != NULL && bufsz > 0) {
		if (f->count == 1)
			snprintf(buf, bufsz, "%s", f->id);
		else
			snprintf(buf, bufsz, "%s-%zu", f->id, k - f->first);
	}
	return f;
}
