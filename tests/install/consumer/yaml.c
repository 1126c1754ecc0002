/*
 * An installed flowq's YAML loader: a simulator-style spec whose `engine:`
 * section configures an engine. Built against the installed headers and
 * library, shared and static (the static link needs libyaml from flowq's
 * CMake package or .pc file).
 */
#include <stdio.h>
#include <string.h>

#include <flowq/config_yaml.h>
#include <flowq/flowq.h>

static const char spec[] = "workload: {rate: 100}\n"
			   "engine:\n"
			   "  mode: polled\n"
			   "  shards: 1\n"
			   "  bands:\n"
			   "    - {priority: 10, fairness: round_robin}\n"
			   "    - {priority: 0, max_bytes: 64MiB, usage_ceiling: 0.8}\n"
			   "  default_ttl_ns: 30s\n";

int
main(void)
{
	struct flowq_config_yaml y;
	struct flowq_engine *e;
	char err[256];
	int rc;

	rc = flowq_config_load_yaml_buf(&y, spec, strlen(spec), "spec.yaml", "engine",
					err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "flowq: %s\n", err);
		return 1;
	}
	if (y.config.nbands != 2 || y.config.bands[1].max_bytes != 64u << 20 ||
	    y.config.default_ttl_ns != 30000000000) {
		fprintf(stderr, "flowq: the spec did not load as written\n");
		return 1;
	}
	rc = flowq_engine_create(&y.config, &e);
	flowq_config_yaml_free(&y);
	if (rc != 0) {
		fprintf(stderr, "flowq: %s\n", flowq_strerror(rc));
		return 1;
	}
	flowq_engine_destroy(e);
	/* A bad file: the message names the key and its line:column. */
	rc = flowq_config_load_yaml_buf(&y, "engine: {shards: lots}\n", 23, "spec.yaml",
					"engine", err, sizeof(err));
	if (rc == 0 || strcmp(err, "spec.yaml:1:10: shards: expected an integer, got "
				   "\"lots\"") != 0) {
		fprintf(stderr, "flowq: unexpected result %d: %s\n", rc, err);
		return 1;
	}
	printf("yaml consumer: ok\n");
	return 0;
}
