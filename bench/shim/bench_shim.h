/*
 * bench_shim: a thin C interface to Google Benchmark 1.7.1.
 *
 * Google Benchmark has no C API (upstream issue #592), so flowq's benchmarks,
 * which are C11 like the rest of the project, go through this header and the
 * one C++ file behind it (bench_shim.cc, the only C++ in flowq). The shim
 * adds no behaviour of its own: every function maps to one Google Benchmark
 * call, named in its comment, so the library's documentation applies.
 *
 * Shape (after IREE's runtime/src/iree/testing/benchmark.h):
 * - struct bench_state is an opaque handle on the benchmark::State of the
 *   running benchmark. It is borrowed for one call of the benchmark function
 *   and must not be kept.
 * - struct bench_case is an opaque handle on a registered benchmark family,
 *   returned by bench_register() so options can be chained on it.
 *
 * Only the batch form of the loop is offered: crossing from C into C++ for
 * every iteration would add a call to every measured operation (issue #776),
 * whereas bench_keep_running_batch() is paid once per batch.
 *
 * Context: all of this is meant for the benchmark thread. Registration and
 * bench_add_context() run before bench_main(); the state functions run inside
 * a benchmark function, on the thread that Google Benchmark called it on.
 * Nothing here is thread-safe beyond what Google Benchmark itself documents.
 */
#ifndef FLOWQ_BENCH_SHIM_H
#define FLOWQ_BENCH_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The running benchmark's benchmark::State (opaque, borrowed). */
struct bench_state;

/** A registered benchmark family, benchmark::internal::Benchmark (opaque). */
struct bench_case;

/** How a counter is reported (subset of benchmark::Counter::Flags). */
enum bench_counter_kind {
	/** Reported as set (Counter::kDefaults). */
	BENCH_COUNTER_PLAIN,
	/**
	 * Divided by the measured time (Counter::kIsRate): real time when the
	 * case uses bench_case_use_real_time(), CPU time otherwise.
	 */
	BENCH_COUNTER_RATE,
};

/** Unit of the time columns (benchmark::TimeUnit). */
enum bench_time_unit {
	BENCH_UNIT_NS,
	BENCH_UNIT_US,
	BENCH_UNIT_MS,
	BENCH_UNIT_S,
};

/*
 * ---- Inside a benchmark function ----------------------------------------
 */

/**
 * State::KeepRunningBatch(n): whether to run another batch of @p n
 * iterations. The timer starts on the first call and stops when it returns
 * false. Call it until it returns false, unless bench_skip_with_error() was
 * called, in which case the function may return at once.
 *
 * @param n  iterations in the batch, > 0. The run may overshoot the
 *           iteration count Google Benchmark wanted by up to @p n - 1.
 */
bool
bench_keep_running_batch(struct bench_state *st, int64_t n);

/** State::range(i): the i-th argument of this instance (see bench_case_arg). */
int64_t
bench_range(const struct bench_state *st, int i);

/**
 * State::thread_index() (a method since 1.7): index of the calling thread
 * among the bench_case_threads() threads running this function, from 0.
 */
int
bench_thread_index(const struct bench_state *st);

/** State::threads(): how many threads run this function together. */
int
bench_threads(const struct bench_state *st);

/** State::iterations(): iterations completed so far. */
int64_t
bench_iterations(const struct bench_state *st);

/**
 * State::PauseTiming(). The timer must be running and no error reported.
 * Costly (it reads clocks and takes a lock), so pause around work per batch,
 * never per item.
 */
void
bench_pause_timing(struct bench_state *st);

/** State::ResumeTiming(). The timer must be paused and no error reported. */
void
bench_resume_timing(struct bench_state *st);

/**
 * State::SetItemsProcessed(n): reports counter items_per_second = n divided
 * by the measured time. Call after the loop.
 */
void
bench_set_items_processed(struct bench_state *st, int64_t n);

/**
 * state.counters[@p name] = Counter(@p value, flags of @p kind). Setting a
 * name twice keeps the last value. @p name is copied.
 */
void
bench_set_counter(struct bench_state *st, const char *name, double value,
		  enum bench_counter_kind kind);

/** State::SetLabel(): free text shown after the results. Call after the loop. */
void
bench_set_label(struct bench_state *st, const char *label);

/**
 * State::SkipWithError(): mark the run as failed with @p msg and stop its
 * timer. Call at most once per run; do not call pause/resume afterwards
 * (Google Benchmark CHECK-fails). The function may then return without
 * finishing the loop.
 */
void
bench_skip_with_error(struct bench_state *st, const char *msg);

/** State::error_occurred(). */
bool
bench_error_occurred(const struct bench_state *st);

/*
 * ---- Registration, before bench_main() ----------------------------------
 */

/**
 * benchmark::RegisterBenchmark(@p name, ...): register @p fn, called as
 * fn(state, @p arg) for every run of every instance of the family.
 *
 * @return the family, for chaining the bench_case_* options; NULL if
 *         Google Benchmark could not allocate it.
 */
struct bench_case *
bench_register(const char *name, void (*fn)(struct bench_state *st, void *arg),
	       void *arg);

/** Benchmark::Arg(v): add one instance whose range(0) is @p v. */
struct bench_case *
bench_case_arg(struct bench_case *c, int64_t v);

/**
 * Benchmark::ArgName(@p name): name range(0) in the instance names, giving
 * "BM_x/name:v" rather than "BM_x/v".
 */
struct bench_case *
bench_case_arg_name(struct bench_case *c, const char *name);

/**
 * Benchmark::Args({v[0], ..., v[n - 1]}): add one instance whose range(i)
 * is @p v[i], for instances with several arguments.
 *
 * @return @p c; NULL if Google Benchmark could not allocate (the instance is
 *         then not added).
 */
struct bench_case *
bench_case_args(struct bench_case *c, const int64_t *v, size_t n);

/**
 * Benchmark::ArgNames({names[0], ..., names[n - 1]}): name range(0..n) in
 * the instance names, giving "BM_x/a:1/b:2". The strings are copied.
 *
 * @return @p c; NULL if Google Benchmark could not allocate.
 */
struct bench_case *
bench_case_arg_names(struct bench_case *c, const char *const *names, size_t n);

/**
 * Benchmark::UseRealTime(): time the run by wall clock rather than by the
 * CPU time of the benchmark thread. Needed whenever the measured work runs
 * on other threads too. Google Benchmark then appends "/real_time" to the
 * instance names.
 */
struct bench_case *
bench_case_use_real_time(struct bench_case *c);

/**
 * Benchmark::Threads(n): run the function on @p n threads at once, all
 * timed together. For symmetric workloads only; an asymmetric one (P
 * producers, 1 consumer) starts its own threads instead.
 */
struct bench_case *
bench_case_threads(struct bench_case *c, int n);

/** Benchmark::Iterations(n): run exactly @p n iterations (no MinTime). */
struct bench_case *
bench_case_iterations(struct bench_case *c, int64_t n);

/** Benchmark::MinTime(s): run for at least @p s seconds (overrides the flag). */
struct bench_case *
bench_case_min_time(struct bench_case *c, double s);

/** Benchmark::Unit(u): unit of the time columns. */
struct bench_case *
bench_case_unit(struct bench_case *c, enum bench_time_unit u);

/**
 * benchmark::AddCustomContext(@p key, @p value): one more key in the
 * "context" object of the JSON output and the console header. Both strings
 * are copied.
 */
void
bench_add_context(const char *key, const char *value);

/**
 * Run the registered benchmarks the command line selects:
 * benchmark::Initialize, ReportUnrecognizedArguments, RunSpecifiedBenchmarks,
 * Shutdown.
 *
 * @return 0 on success, 1 if the command line had an unknown argument.
 *         --help prints the flags and exits the process.
 */
int
bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* FLOWQ_BENCH_SHIM_H */
