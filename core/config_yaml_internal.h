/*
 * Internal hooks of core/config_yaml.c, for its unit test.
 */
#ifndef FLOWQ_CONFIG_YAML_INTERNAL_H
#define FLOWQ_CONFIG_YAML_INTERNAL_H

#include <stdatomic.h>

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

#endif /* FLOWQ_CONFIG_YAML_INTERNAL_H */
