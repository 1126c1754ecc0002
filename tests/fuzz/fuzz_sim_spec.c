/*
 * libFuzzer target for flowq-sim's spec loader (sim_spec_load_buf,
 * tools/flowq-sim/spec.c). The input is a spec; if it holds NUL bytes, the
 * part before the first is the spec and each NUL-terminated part after it
 * (at most 4) is an override ("key.path=value"), so overrides, their text
 * edits and the located messages are fuzzed too. Checked on every input,
 * besides the sanitizers' own checks:
 *  - the result is 0, -EINVAL, -ENOENT (a trace file) or -EFBIG;
 *  - a failure leaves a non-empty, NUL-terminated message and a spec that
 *    owns nothing;
 *  - a success is a spec whose invariants hold (flows, counts, windows,
 *    the engine configuration flowq_config_validate() accepts);
 *  - after sim_spec_free(), none of the engine loader's allocations remain.
 * Build: configure with clang, -DFLOWQ_BUILD_FUZZ=ON (and FLOWQ_BUILD_SIM,
 * the default); run: build/tests/fuzz/fuzz_sim_spec tests/fuzz/corpus_sim_spec
 * (seeds: that directory and tools/scenarios; dictionary:
 * -dict=tests/fuzz/sim_spec.dict). Trace files are looked up on the real
 * file system (unset FLOWQ_SIM_DATA to keep runs alike).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>

#include "config_yaml_internal.h"
#include "sim.h"

static void
check(int rc, const struct sim_spec *s, const char *err, size_t size)
{
	if (memchr(err, '\0', size) == NULL)
		abort();
	if (rc != 0) {
		if ((rc != -EINVAL && rc != -ENOENT && rc != -EFBIG) || err[0] == '\0' ||
		    s->flows != NULL || s->name != NULL || s->engine.owned != NULL ||
		    s->variants != NULL)
			abort();
		return;
	}
	if (err[0] != '\0' || s->nflows == 0 || s->duration_ns <= 0 ||
	    s->window_ns <= 0 || s->drain_ns < 0 || s->producers < 1 ||
	    s->backend.slots < 1 || sim_spec_nflows(s) > SIM_MAX_FLOWS ||
	    (uint64_t)(s->duration_ns - 1) / (uint64_t)s->window_ns + 1 >
		    SIM_MAX_WINDOWS ||
	    flowq_config_validate(&s->engine.config, NULL, 0) != 0 ||
	    (s->has_trace && s->trace.path == NULL))
		abort();
	for (size_t i = 0; i < s->nflows; i++) {
		const struct sim_flow_spec *f = &s->flows[i];

		if (f->count < 1 || f->weight < 1 || f->id == NULL || f->id[0] == '\0' ||
		    (i > 0 && f->first != s->flows[i - 1].first + s->flows[i - 1].count))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *ovr[4];
	size_t novr = 0, speclen;
	struct sim_spec s;
	char err[512], *copy;
	const uint8_t *nul = memchr(data, '\0', size);
	int rc;

	/* A NUL-terminated copy: overrides are C strings. */
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	speclen = nul != NULL ? (size_t)(nul - data) : size;
	for (size_t at = speclen + 1; nul != NULL && at <= size && novr < 4;) {
		ovr[novr++] = copy + at;
		at += strlen(copy + at) + 1;
	}
	rc = sim_spec_load_buf(&s, "fuzz", copy, speclen, ovr, novr, err, sizeof(err));
	check(rc, &s, err, sizeof(err));
	sim_spec_free(&s);
	if (atomic_load(&flowq__config_yaml_live) != 0)
		abort();
	free(copy);
	return 0;
}
