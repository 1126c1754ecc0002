/*
 * libFuzzer target for flowq_config_load_yaml_buf(): every input is loaded
 * as a whole-document config and as a document with an `engine:` section.
 * Checked on every input, besides the sanitizers' own checks:
 *  - the result is 0, -EINVAL, -ENOENT (subtree key absent) or -EFBIG;
 *  - a failure leaves a non-empty, NUL-terminated message and a holder that
 *    owns nothing;
 *  - a success is a config flowq_config_validate() accepts;
 *  - after the holder is freed, none of the loader's allocations remain.
 * Build: configure with clang and -DFLOWQ_BUILD_FUZZ=ON (tests/CMakeLists.txt);
 * run: build/tests/fuzz/fuzz_config_yaml tests/fuzz/corpus_config_yaml
 * (seeds: the YAML files of tools/examples and of that directory;
 * dictionary: -dict=tests/fuzz/config_yaml.dict).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/config_yaml.h>
#include <flowq/flowq.h>

#include "config_yaml_internal.h"

static void
check(int rc, const struct flowq_config_yaml *y, const char *err, size_t size)
{
	if (memchr(err, '\0', size) == NULL)
		abort();
	if (rc == 0) {
		if (err[0] != '\0' || y->owned == NULL ||
		    flowq_config_validate(&y->config, NULL, 0) != 0)
			abort();
		return;
	}
	if (rc != -EINVAL && rc != -ENOENT && rc != -EFBIG)
		abort();
	if (err[0] == '\0' || y->owned != NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {NULL, "engine"};
	struct flowq_config_yaml y;
	char err[512];

	for (size_t k = 0; k < 2; k++) {
		int rc = flowq_config_load_yaml_buf(&y, data, size, "fuzz", keys[k], err,
						    sizeof(err));

		check(rc, &y, err, sizeof(err));
		flowq_config_yaml_free(&y);
		if (atomic_load(&flowq__config_yaml_live) != 0)
			abort();
	}
	return 0;
}
