/*
 * flowq_bench: every flowq benchmark suite in one binary.
 *
 * All suites register here, before Google Benchmark parses the command line,
 * so one invocation can run a queue and all of its peers interleaved
 * (--benchmark_enable_random_interleaving=true): on this project's shared
 * 2-vCPU machines absolute numbers swing 2-5x between runs, and only ratios
 * measured within one run are trustworthy (perf-anchors.md §0).
 *
 * Usage: flowq_bench [--benchmark_filter=REGEX] [--benchmark_repetitions=N]
 *        [--benchmark_format=json] ...; tools/mpsc-report runs the queue
 *        comparison and tools/engine-report the engine comparison, and
 *        each prints its summary table.
 */
#include "bench.h"

int
main(int argc, char **argv)
{
	bench_env_register();
	bench_mpsc_register();
	bench_capacity_register();
	bench_heap_register();
	bench_policy_register();
	bench_e2e_register();
	bench_engine_register();
	bench_dispatch_register();
	bench_gie_register();
	bench_displace_register();
	return bench_main(argc, argv);
}
