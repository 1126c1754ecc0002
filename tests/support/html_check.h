/*
 * html_check: a well-formedness checker for the HTML that flowq's tools
 * write (XHTML-style HTML5: every element closed). It is stricter than a
 * browser, so that what passes here parses the same everywhere:
 *   - the text starts with <!DOCTYPE html> and is valid UTF-8;
 *   - start and end tags balance, in order; nothing is left open;
 *   - HTML void elements (meta, br, ...) are written <x/>; other elements
 *     may be self-closed only inside <svg> (an HTML parser ignores "/>" on
 *     a non-void HTML element and would leave it open);
 *   - attributes are name="value", double-quoted, unique per tag;
 *   - text and attribute values hold no raw '<' or '>', and every '&'
 *     starts an entity (&name; from a short list, &#N; or &#xH;);
 *   - comments <!-- --> are allowed; <script> is refused.
 */
#ifndef FLOWQ_TEST_HTML_CHECK_H
#define FLOWQ_TEST_HTML_CHECK_H

#include <stddef.h>

/** @return 0, or -1 with "line L: what" in @p err. */
int
html_check(const char *s, size_t len, char *err, size_t errsz);

#endif /* FLOWQ_TEST_HTML_CHECK_H */
