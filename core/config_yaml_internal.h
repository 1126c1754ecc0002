/*
 * Internal hooks of core/config_yaml.c: for its unit test, and the located
 * load that flowq-sim's spec loader (tools/flowq-sim/spec.c) uses for the
 * `engine:` section of a spec it has edited. The scalar grammars it shares
 * are in config_yaml_scalar.h.
 */
#ifndef FLOWQ_CONFIG_YAML_INTERNAL_H
#define FLOWQ_CONFIG_YAML_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <yaml.h>

#include <flowq/config_yaml.h>

/*
 * Allocation-failure injection for the loader's own allocations (not
 * libyaml's): -1 (the default) never fails; n >= 0 lets n more allocations
 * succeed, then fails every one after. Read with a relaxed load per
 * allocation; set it only while no load runs (a test sets it, loads, resets
 * it). Compiled in every build (STYLE.md: debug code that cannot rot).
 */
extern _Atomic long flowq__config_yaml_fail_after;

/*
 * The loader's own allocations outstanding (its storage, marks, names, file
 * buffer; not libyaml's), process-wide: a test checks it returns to what it
 * was once every holder is freed, in any build (LeakSanitizer's report from
 * a Criterion worker comes too late to fail the test; the test also calls
 * LeakSanitizer itself in ASan builds, which covers libyaml's memory).
 */
extern _Atomic long flowq__config_yaml_live;

/*
 * Where the loaded text came from, for a caller that loads text it made
 * (flowq-sim applies "key=value" overrides to a spec's text before the
 * engine loader reads it, so the text's line and column are not the
 * file's). Both functions write like snprintf (truncating, NUL-terminated,
 * @size > 0) and are called only while a message is written.
 *  - prefix: the start of a message about the key @path (NULL or "" for
 *    none) at @m (0-based, as libyaml's marks: index in characters) of the
 *    loaded text, up to and including the ": " that precedes the message;
 *    the loader writes "<name>:<line>:<col>: <path>: ".
 *  - at: a position named inside a message ("duplicate key (first at
 *    <this>)"); the loader writes "<line>:<col>".
 */
struct flowq__config_yaml_where {
	void (*prefix)(void *ctx, char *buf, size_t size, const yaml_mark_t *m,
		       const char *path);
	void (*at)(void *ctx, char *buf, size_t size, const yaml_mark_t *m);
	void *ctx;
};

/*
 * flowq_config_load_yaml_buf(), with the locations in messages written by
 * @where, and, @key being non-NULL, key paths that start from the document
 * root ("engine.bands[1].fairness", "engine" for the section itself) rather
 * than from the section. Same errors, rules and ownership otherwise.
 */
int
flowq__config_load_yaml_where(struct flowq_config_yaml *r_cfg, const void *buf,
			      size_t len, const char *name, const char *key,
			      const struct flowq__config_yaml_where *where, char *errbuf,
			      size_t errbuf_size);

#endif /* FLOWQ_CONFIG_YAML_INTERNAL_H */
