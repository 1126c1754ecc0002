// bench_shim.cc: the C interface of bench_shim.h over Google Benchmark 1.7.1.
//
// The only C++ in flowq. Each function is one call into Google Benchmark;
// keep it that way, so that what the library documents is what a C caller
// gets. The opaque C handles are the C++ objects themselves, cast: no wrapper
// is allocated and nothing is copied on the per-batch path.
//
// No C++ exception may cross into C: registration, the only place that
// allocates on behalf of a C caller (bench_register, bench_case_args,
// bench_case_arg_names), catches them and reports NULL.

#include "bench_shim.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <new>
#include <string>
#include <vector>

namespace
{

// Runs that called bench_skip_with_error(): any makes bench_main() fail.
std::atomic<int> skipped_with_error{0};

benchmark::State &
state(struct bench_state *st)
{
	return *reinterpret_cast<benchmark::State *>(st);
}

const benchmark::State &
state(const struct bench_state *st)
{
	return *reinterpret_cast<const benchmark::State *>(st);
}

benchmark::internal::Benchmark *
family(struct bench_case *c)
{
	return reinterpret_cast<benchmark::internal::Benchmark *>(c);
}

struct bench_case *
handle(benchmark::internal::Benchmark *b)
{
	return reinterpret_cast<struct bench_case *>(b);
}

} // namespace

extern "C" {

bool
bench_keep_running_batch(struct bench_state *st, int64_t n)
{
	return state(st).KeepRunningBatch(n);
}

int64_t
bench_range(const struct bench_state *st, int i)
{
	return state(st).range(static_cast<std::size_t>(i));
}

int
bench_thread_index(const struct bench_state *st)
{
	return state(st).thread_index();
}

int
bench_threads(const struct bench_state *st)
{
	return state(st).threads();
}

int64_t
bench_iterations(const struct bench_state *st)
{
	return state(st).iterations();
}

void
bench_pause_timing(struct bench_state *st)
{
	state(st).PauseTiming();
}

void
bench_resume_timing(struct bench_state *st)
{
	state(st).ResumeTiming();
}

void
bench_set_items_processed(struct bench_state *st, int64_t n)
{
	state(st).SetItemsProcessed(n);
}

void
bench_set_counter(struct bench_state *st, const char *name, double value,
		  enum bench_counter_kind kind)
{
	benchmark::Counter::Flags flags = kind == BENCH_COUNTER_RATE
						  ? benchmark::Counter::kIsRate
						  : benchmark::Counter::kDefaults;

	state(st).counters[name] = benchmark::Counter(value, flags);
}

void
bench_set_label(struct bench_state *st, const char *label)
{
	state(st).SetLabel(label);
}

void
bench_skip_with_error(struct bench_state *st, const char *msg)
{
	// Counted so that bench_main() can fail the process: a benchmark whose
	// result check failed must not look like a successful run to a script.
	skipped_with_error.fetch_add(1, std::memory_order_relaxed);
	state(st).SkipWithError(msg);
}

bool
bench_error_occurred(const struct bench_state *st)
{
	return state(st).error_occurred();
}

struct bench_case *
bench_register(const char *name, void (*fn)(struct bench_state *st, void *arg), void *arg)
{
	try {
		// The lambda owns copies of fn and arg; Google Benchmark owns
		// the family for the life of the process.
		return handle(benchmark::RegisterBenchmark(
			name, [fn, arg](benchmark::State &s) {
				fn(reinterpret_cast<struct bench_state *>(&s), arg);
			}));
	} catch (const std::bad_alloc &) {
		return nullptr;
	}
}

struct bench_case *
bench_case_arg(struct bench_case *c, int64_t v)
{
	return handle(family(c)->Arg(v));
}

struct bench_case *
bench_case_arg_name(struct bench_case *c, const char *name)
{
	return handle(family(c)->ArgName(name));
}

struct bench_case *
bench_case_args(struct bench_case *c, const int64_t *v, size_t n)
{
	try {
		return handle(family(c)->Args(std::vector<int64_t>(v, v + n)));
	} catch (const std::bad_alloc &) {
		return nullptr;
	}
}

struct bench_case *
bench_case_arg_names(struct bench_case *c, const char *const *names, size_t n)
{
	try {
		return handle(family(c)->ArgNames(std::vector<std::string>(names, names + n)));
	} catch (const std::bad_alloc &) {
		return nullptr;
	}
}

struct bench_case *
bench_case_use_real_time(struct bench_case *c)
{
	return handle(family(c)->UseRealTime());
}

struct bench_case *
bench_case_threads(struct bench_case *c, int n)
{
	return handle(family(c)->Threads(n));
}

struct bench_case *
bench_case_iterations(struct bench_case *c, int64_t n)
{
	return handle(family(c)->Iterations(n));
}

struct bench_case *
bench_case_min_time(struct bench_case *c, double s)
{
	return handle(family(c)->MinTime(s));
}

struct bench_case *
bench_case_unit(struct bench_case *c, enum bench_time_unit u)
{
	benchmark::TimeUnit unit = benchmark::kNanosecond;

	switch (u) {
	case BENCH_UNIT_NS:
		unit = benchmark::kNanosecond;
		break;
	case BENCH_UNIT_US:
		unit = benchmark::kMicrosecond;
		break;
	case BENCH_UNIT_MS:
		unit = benchmark::kMillisecond;
		break;
	case BENCH_UNIT_S:
		unit = benchmark::kSecond;
		break;
	}
	return handle(family(c)->Unit(unit));
}

void
bench_add_context(const char *key, const char *value)
{
	benchmark::AddCustomContext(key, value);
}

int
bench_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	int errors = skipped_with_error.load(std::memory_order_relaxed);
	if (errors != 0) {
		std::fprintf(stderr, "flowq_bench: %d benchmark run(s) failed their checks\n",
			     errors);
		return 1;
	}
	return 0;
}

} // extern "C"
