/*
 * report.h: helpers shared by the simulator's renderers (report.c defines
 * them; report.c and html.c use them). Internal to flowq-sim: sim__ names.
 *
 * Everything here is locale-independent: numbers are formatted by our own
 * code (sim__fmt_num), never by printf's %g/%f, whose decimal point follows
 * the process's LC_NUMERIC. Integers are printed with PRIu64/PRId64, which
 * no locale changes (only the ' flag would group digits).
 */
#ifndef FLOWQ_SIM_REPORT_H
#define FLOWQ_SIM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim.h"

/** Big enough for any sim__fmt_* result. */
#define SIM_FMT_MAX 48

/**
 * Format @p x with @p sig significant digits (1..17) exactly as C's
 * "%.<sig>g" does in the C locale: round half to even on the exact binary
 * value, plain notation for exponents in [-4, sig), else d.ddde+XX, trailing
 * zeros removed. "nan", "inf", "-inf" for non-finite values (callers that
 * need JSON's null check isfinite first).
 *
 * Exact for |x| in about [1e-14, 3e22] with sig <= 9 (128-bit integer
 * arithmetic); outside that range the digits come from long double scaling,
 * which may differ from printf in the last digit. Deterministic either way.
 * @return the length written (< SIM_FMT_MAX).
 */
size_t
sim__fmt_num(char buf[SIM_FMT_MAX], double x, int sig);

/** Fixed-point with @p decimals (0..6) digits after the point, trailing
 * zeros and a trailing point removed ("12.5", "3"); for SVG coordinates.
 * |x| above 1e15 is clamped. */
size_t
sim__fmt_fixed(char buf[SIM_FMT_MAX], double x, int decimals);

/** A duration in human units with 3 significant digits: "0", "850ns",
 * "12.3us", "4.56ms", "1.23s", "1234s" (>= 1000 s: whole seconds). */
size_t
sim__fmt_dur(char buf[SIM_FMT_MAX], int64_t ns);

/** A byte count in binary units: "512B", "1.5KiB", "12.3MiB", ... */
size_t
sim__fmt_bytes(char buf[SIM_FMT_MAX], uint64_t bytes);

/**
 * The UTF-8 sequence at @p s (NUL-terminated): its length (1..4) if it is
 * a valid, printable sequence (no C0 control, DEL, C1 control, surrogate,
 * overlong form or code point past U+10FFFF), else 0: the first byte is to
 * be shown escaped. Every escaper below uses it, so all renderings agree on
 * what is text. Tab and newline count as controls: ids have no business
 * holding them.
 */
size_t
sim__utf8_seq(const char *s);

/** Display width of @p s as sim__term_str prints it (uncut). */
size_t
sim__term_width(const char *s);

/** @p s for a terminal: valid UTF-8 as is, other bytes and controls as
 * \xNN; at most @p max_chars characters (0: all), "..." when cut. Writes
 * to @p buf (NUL-terminated, cut to fit). */
void
sim__term_str(char *buf, size_t bufsz, const char *s, size_t max_chars);

/** @p s as a JSON string, quotes included: ", \ and controls escaped
 * (\n, \t, ..., \u00XX), valid UTF-8 as is, bytes that are not valid
 * UTF-8 as \u00XX (their Latin-1 reading). */
void
sim__json_str(FILE *out, const char *s);

/** @p s as HTML text or attribute value: & < > " ' as entities, valid
 * UTF-8 as is, other bytes and controls as the text \xNN; at most
 * @p max_chars characters (0: all), "&#8230;" when cut. */
void
sim__html_str(FILE *out, const char *s, size_t max_chars);

/** @p s as a CSV field (RFC 4180): quoted when it holds a comma, quote,
 * CR or LF, or starts or ends with a space; quotes doubled; bytes as is. */
void
sim__csv_str(FILE *out, const char *s);

/** The summary (sim.h: struct sim_qsum) of sorted samples. */
void
sim__qsum(const struct sim_samples *s, struct sim_qsum *r);

/** The smallest non-NaN window Jain index of band @p b, NaN if none. */
double
sim__jain_min(const struct sim_result *r, const struct sim_band_result *b);

/** Dispatched requests per second of the run's duration (NaN if 0). */
double
sim__throughput(const struct sim_result *r, const struct sim_counts *c);

/** @p n per second of @p duration_ns (NaN unless the duration is > 0). */
double
sim__per_s(uint64_t n, int64_t duration_ns);

/** Requests that got a rejection outcome (capacity or other). */
uint64_t
sim__rejected(const struct sim_counts *c);

/** "virtual" or "realtime". */
const char *
sim__mode_name(enum sim_mode m);

/**
 * The @p max flows of band @p band with the most offered requests, or
 * with @p by_bytes the most dispatched bytes (ties: lower index first), in
 * that order, written to @p r_idx; O(F x max), no allocation.
 * @return how many were written; @p r_total gets the band's flow count.
 */
size_t
sim__top_flows(const struct sim_result *r, size_t band, bool by_bytes, size_t *r_idx,
	       size_t max, size_t *r_total);

/** Index of the band with priority @p prio in @p r, or SIZE_MAX. */
size_t
sim__band_by_prio(const struct sim_result *r, int32_t prio);

/**
 * The union of the band priorities of @p n results, highest first, into
 * @p r_prio (room for FLOWQ_MAX_BANDS x n is never needed: at most
 * @p max are kept). @return how many.
 */
size_t
sim__band_union(const struct sim_result *const *rs, size_t n, int32_t *r_prio,
		size_t max);

/**
 * The report's tables, as aligned text (100 columns) or, with @p html, as
 * an HTML <table> (longer ids, more flows per band, full column names):
 * outcomes per band and flow; queue time, Jain's index and inversions per
 * band and flow; the comparison of variants (one column per variant).
 */
void
sim__table_outcomes(FILE *out, const struct sim_result *r, bool html);
void
sim__table_queue(FILE *out, const struct sim_result *r, bool html);
void
sim__table_compare(FILE *out, const char *const *names,
		   const struct sim_result *const *rs, size_t n, bool html);

#endif /* FLOWQ_SIM_REPORT_H */
