/*
 * flowq: the engine configuration (struct flowq_config, flowq/flowq.h) from
 * a YAML file, through libyaml, with a strict schema.
 *
 *   struct flowq_config_yaml y;
 *   char err[256];
 *   int rc = flowq_config_load_yaml(&y, "engine.yaml", NULL, err, sizeof(err));
 *   if (rc != 0) {
 *           fprintf(stderr, "%s\n", err);  // engine.yaml:12:7: bands[2]...
 *           return rc;
 *   }
 *   y.config.clock = my_clock;             // host-only fields, in code
 *   rc = flowq_engine_create(&y.config, &engine);
 *   flowq_config_yaml_free(&y);            // the engine keeps its own copy
 *
 * The document. Keys are the field names of struct flowq_config, nested as
 * the struct is: `saturation:` and `default_band:` are mappings, `bands:` is
 * a sequence of mappings with the fields of struct flowq_band_config. Keys
 * not given keep flowq_config_init()'s defaults; each band of `bands:`
 * starts from flowq_config_init()'s default-band values (not from the
 * document's `default_band:`) and must name its `priority`. Example
 * (tools/examples/engine.yaml has every key):
 *
 *   shards: 2
 *   max_requests: 100000
 *   default_ttl_ns: 30s
 *   saturation: {max_inflight: 64}
 *   bands:
 *     - {priority: 10, fairness: round_robin, usage_ceiling: 1.0}
 *     - {priority: 0, max_bytes: 64MiB, usage_ceiling: 0.8}
 *
 * Values:
 *  - integers (counts, limits, shards, dispatch_batch, registry_buckets,
 *    displacement_max_pending, priority): plain decimal, optional sign, no leading zeros (YAML 1.1
 *    reads 010 as octal, YAML 1.2 as ten: refused as ambiguous), within the
 *    field's C type; a negative value for an unsigned field is an error.
 *  - sizes (max_bytes, flow_max_bytes, max_inflight_bytes, quantum): an
 *    integer (bytes), or a number and a unit, with optional spaces between:
 *    B; kB or KB, MB, GB, TB, PB, EB (powers of 1000); KiB, MiB, GiB, TiB,
 *    PiB, EiB (powers of 1024). "1.5KiB" is 1536; a fraction must come to
 *    whole bytes; at most 19 fraction digits; anything above 2^64 - 1 bytes
 *    ("99999999999999999999GiB") is an overflow error.
 *  - durations (the *_ns fields): an integer (ns), or a number and a unit:
 *    ns, us (or µs), ms, s, m, h ("250us", "1.5s", "10ms"); a fraction must
 *    come to whole nanoseconds; at most INT64_MAX ns; never negative.
 *    default_ttl_ns also takes `none` (FLOWQ_TTL_NONE, no expiry).
 *  - booleans: true, false (also True/TRUE/False/FALSE, YAML 1.2's core
 *    schema); YAML 1.1's yes/no/on/off are refused, not guessed.
 *  - real numbers (usage_ceiling): YAML 1.2 core floats or integers
 *    (0.5, 1, 5e-1, .inf, .nan), read in the C locale whatever the process
 *    locale is.
 *  - names (fairness, ordering, saturation.detector, displacement): strings;
 *    a plain scalar that YAML would read as null, a boolean or a number is
 *    refused (quote it). `mode` is `threaded` or `polled`.
 * Not settable from YAML, with an error that says so (set them in code
 * after loading): allocator, clock, clock_ctx, saturation.callback,
 * saturation.callback_ctx, saturation.detector "callback" (it needs the
 * function pointer), errbuf, errbuf_size, nbands (the length of `bands`),
 * default_band.priority (a just-in-time band takes its request's
 * priority).
 *
 * Refused outright (the file is plumbing, not a program): anchors and
 * aliases (no alias bombs), explicit tags, non-string keys, duplicate keys
 * in a mapping, duplicate band priorities, more than FLOWQ_MAX_BANDS bands,
 * an empty document, a document that is not a mapping, a second document,
 * nesting deeper than FLOWQ_CONFIG_YAML_MAX_DEPTH (anywhere in the
 * document), input larger than FLOWQ_CONFIG_YAML_MAX_SIZE, and everything
 * libyaml's scanner refuses (invalid UTF-8, tabs in indentation, ...).
 *
 * Errors: one message, "<name>:<line>:<column>: <key path>: <what>"
 * (1-based line and column), e.g.
 *   engine.yaml:12:7: bands[2].usage_ceiling: 1.5 is not in (0, 1]
 * The key path is relative to the config mapping (with a subtree key, the
 * key is not repeated) and uses flowq_config_validate()'s spelling, so the
 * schema's messages and validate's read alike. The location is the key of
 * the named entry (for a bad value too), the item of a sequence ("bands[3]"),
 * the anchor, alias or tag itself, or the position libyaml reports (for
 * input that is not valid UTF-8: the offending byte). The document is read
 * once, front to back, and the first problem in that order is reported (a
 * bad value on line 3 is reported before a syntax error on line 9). After
 * the schema, the loader runs flowq_config_validate() (policy names must
 * resolve in the registries: register host policies before loading) and
 * reports its message at the key it names, or at the nearest enclosing key
 * given in the document when the offending field was left at its default
 * (e.g. a band's default ceiling that breaks the ceiling order: the band).
 *
 * Memory: the loaded config points into storage the loader owns (the band
 * array, the policy and detector names), until flowq_config_yaml_free().
 * libc malloc, not cfg->allocator (it is not known yet when the file is
 * read); nothing is cached between calls.
 */
#ifndef FLOWQ_CONFIG_YAML_H
#define FLOWQ_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <flowq/common.h>
#include <flowq/flowq.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Deepest nesting of collections anywhere in a loaded document. */
#define FLOWQ_CONFIG_YAML_MAX_DEPTH 64u
/** Largest input, bytes (a file or a buffer): 16 MiB. */
#define FLOWQ_CONFIG_YAML_MAX_SIZE (16u << 20)

/**
 * A configuration loaded from YAML, and what it owns. Use @c config like any
 * struct flowq_config (set host-only fields, pass it to
 * flowq_engine_create(), copy it); its pointers (bands, band and detector
 * names) stay valid until flowq_config_yaml_free() on this holder. A copy of
 * the holder must not be freed besides the original.
 */
struct flowq_config_yaml {
	/** The configuration. */
	struct flowq_config config;
	/** Private: the loader's storage; NULL when nothing is owned. */
	void *owned;
};

/**
 * Load the engine configuration from the YAML file @p path.
 *
 * @param r_cfg        receives the configuration. Overwritten without being
 *                     read: it must not hold a loaded configuration (free
 *                     that first, or it leaks). On success it owns storage
 *                     (free it with flowq_config_yaml_free()); on failure
 *                     it owns nothing, and r_cfg->config holds
 *                     flowq_config_init()'s defaults (freeing it is a no-op).
 * @param path         the file; also the name in messages.
 * @param key          NULL: the whole document is the configuration, and an
 *                     unknown top-level key is an error. Non-NULL: the
 *                     configuration is the mapping under this top-level key
 *                     (e.g. "engine" in a simulator spec); other top-level
 *                     entries are skipped unchecked (anchors, aliases and
 *                     tags included) except for the depth limit and
 *                     libyaml's syntax checks, which cover the whole stream.
 * @param errbuf       receives the message on failure ("" on success),
 *                     truncated to @p errbuf_size and NUL-terminated; may be
 *                     NULL.
 * @param errbuf_size  size of @p errbuf; 0 writes nothing.
 * @return 0;
 *         -EFAULT  @p r_cfg or @p path is NULL (nothing is written to it);
 *         -EINVAL  the document breaks YAML, the schema or
 *                  flowq_config_validate() (message with line and column);
 *         -ENOENT  the file does not exist, or @p key is not a top-level
 *                  key of the document (the message says which);
 *         -EFBIG   the file is larger than FLOWQ_CONFIG_YAML_MAX_SIZE;
 *         -ENOMEM  an allocation failed;
 *         any other negative errno that open(2) or read(2) gave (-EACCES,
 *         -EISDIR, -EIO, ...), with "<path>: cannot open|read: <strerror>".
 *
 * Context: any thread; reentrant (no shared state: concurrent loads are
 * independent). May block (file I/O). Allocates (libc). Never prints.
 * Ordering: none (reads the policy registries, like
 * flowq_config_validate(): a policy registered before the call is seen).
 * Progress: blocking (I/O); time and memory O(input size).
 */
FLOWQ_API int
flowq_config_load_yaml(struct flowq_config_yaml *r_cfg, const char *path, const char *key,
		       char *errbuf, size_t errbuf_size);

/**
 * Load the engine configuration from @p len bytes of YAML at @p buf
 * (UTF-8, or UTF-16 with a byte order mark; need not be NUL-terminated).
 * As flowq_config_load_yaml(), with @p name in place of the file name in
 * messages (NULL: "<buffer>"). @p buf is not kept.
 *
 * @return 0; -EFAULT @p r_cfg is NULL, or @p buf is NULL with @p len > 0;
 *         -EINVAL; -ENOENT (@p key not found); -EFBIG (@p len is larger
 *         than FLOWQ_CONFIG_YAML_MAX_SIZE); -ENOMEM.
 *
 * Context: any thread; reentrant. Allocates (libc). Never prints.
 * Ordering: as flowq_config_load_yaml(). Progress: time and memory
 * O(@p len); no I/O.
 */
FLOWQ_API int
flowq_config_load_yaml_buf(struct flowq_config_yaml *r_cfg, const void *buf, size_t len,
			   const char *name, const char *key, char *errbuf,
			   size_t errbuf_size);

/**
 * Free what a successful load left in @p cfg and reset cfg->config to
 * flowq_config_init()'s defaults. An engine created from the configuration
 * is unaffected (it copied what it needs). Idempotent; NULL is ignored.
 *
 * Context: any thread, not concurrently with a use of @p cfg.
 * Progress: O(names loaded); never fails.
 */
FLOWQ_API void
flowq_config_yaml_free(struct flowq_config_yaml *cfg);

/**
 * Write @p cfg as YAML that flowq_config_load_yaml() reads back to the same
 * values: the settable keys (not the host-only ones: allocator, clock,
 * callbacks, errbuf), sizes and durations with the largest exact unit
 * ("64MiB", "30s"), names quoted when YAML would not read them as strings.
 * @param out           the stream.
 * @param cfg           the configuration.
 * @param indent        spaces before each top-level key (to nest the
 *                      output under a key such as `engine:`).
 * @param only_changed  write only keys whose value differs from
 *                      flowq_config_init()'s (a band's keys: from the
 *                      default band's; its priority always), e.g. a snippet
 *                      to paste; false writes every key.
 * @return 0; -EFAULT if @p out or @p cfg is NULL, or cfg->bands is NULL
 *         with cfg->nbands > 0 (nothing is written); -EIO if the stream
 *         reports an error, the flush of @p out at the end included (0
 *         means the text left stdio).
 * Context: any thread. Allocates nothing (but stdio). May block (flushes
 * @p out). Not validated: whatever @p cfg holds is written, but for the
 * NULL bands above, which it cannot read.
 */
FLOWQ_API int
flowq_config_write_yaml(FILE *out, const struct flowq_config *cfg, unsigned indent,
			bool only_changed);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_CONFIG_YAML_H */
