/* Soak mode of the stress executables: see stress_soak.h. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stress_soak.h"
#include "test_util.h"

enum { MAX_COUNTERS = 16 };

static bool soaking;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const char *name;
	uint64_t n;
} counters[MAX_COUNTERS];
static unsigned ncounters;
static unsigned long iteration;

/* RSS samples, one per second. */
static uint64_t *samples;
static size_t nsamples, samples_cap;
static _Atomic int sampler_stop;

/* Field @p key ("VmRSS:", "VmHWM:") of /proc/self/status in kB, 0 if
 * unavailable. */
static uint64_t
status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	char line[256];
	uint64_t v = 0;
	size_t klen = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0) {
			v = strtoull(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void
sample(void)
{
	uint64_t v = status_kb("VmRSS:");
	pthread_mutex_lock(&mu);
	if (nsamples == samples_cap) {
		size_t cap = samples_cap ? 2 * samples_cap : 256;
		uint64_t *p = realloc(samples, cap * sizeof(*p));
		if (p) {
			samples = p;
			samples_cap = cap;
		}
	}
	if (nsamples < samples_cap)
		samples[nsamples++] = v;
	pthread_mutex_unlock(&mu);
}

static void *
sampler_main(void *arg)
{
	(void)arg;
	double next = test_now_seconds() + 1.0;
	while (!atomic_load(&sampler_stop)) {
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
		if (test_now_seconds() >= next) {
			sample();
			next += 1.0;
		}
	}
	return NULL;
}

unsigned long
stress_soak_iteration(void)
{
	return iteration;
}

void
stress_soak_count(const char *what, uint64_t n)
{
	if (!soaking || !n)
		return;
	pthread_mutex_lock(&mu);
	unsigned i;
	for (i = 0; i < ncounters && strcmp(counters[i].name, what) != 0; i++)
		;
	if (i == ncounters && ncounters < MAX_COUNTERS)
		counters[ncounters++].name = what;
	if (i < ncounters)
		counters[i].n += n;
	pthread_mutex_unlock(&mu);
}

void
stress_soak_engine(uint64_t ops, _Atomic uint64_t const completed_by[FLOWQ_OUTCOME_COUNT],
		   const struct flowq_stats *st)
{
	stress_soak_count("ops", ops);
	for (int o = FLOWQ_DISPATCHED; o < FLOWQ_OUTCOME_COUNT; o++) {
		enum flowq_outcome oc = (enum flowq_outcome)o;
		stress_soak_count(flowq_outcome_str(oc),
				  flowq_outcome_is_rejected(oc)
					  ? st->outcomes[o]
					  : atomic_load(&completed_by[o]));
	}
}

/* Largest sample in [from, to). */
static uint64_t
window_max(size_t from, size_t to)
{
	uint64_t m = 0;
	for (size_t i = from; i < to && i < nsamples; i++)
		if (samples[i] > m)
			m = samples[i];
	return m;
}

int
stress_soak_main(const char *prog, int argc, char **argv, int (*run)(int, char **),
		 _Atomic unsigned long *violations)
{
	const char *env = getenv("FLOWQ_STRESS_SECONDS");
	if (!env || !*env)
		return run(argc, argv);
	double secs =
		(double)test_parse_ulong(prog, env, "FLOWQ_STRESS_SECONDS", 1, 86400 * 7);
	soaking = true;
	pthread_t sampler;
	if (pthread_create(&sampler, NULL, sampler_main, NULL)) {
		fprintf(stderr, "%s: cannot start the RSS sampler\n", prog);
		return 1;
	}
	double t0 = test_now_seconds();
	/* The first window: min(60 s, N/4), at least 1 s. */
	double w = secs / 4 > 60 ? 60 : secs / 4 < 1 ? 1 : secs / 4;
	uint64_t iterations = 0, rss_first = 0, rss_last = 0;
	int rc = 0;
	do {
		/* run() may permute argv (getopt): give it a fresh copy. */
		char **av = calloc((size_t)argc + 1, sizeof(*av));
		if (!av) {
			rc = 1;
			break;
		}
		memcpy(av, argv, (size_t)argc * sizeof(*av));
		iteration = (unsigned long)iterations;
		rc = run(argc, av);
		free(av);
		iterations++;
		fflush(stdout);
		/* Between iterations the program holds only what it keeps
		 * from one to the next: where a leak shows. */
		rss_last = status_kb("VmRSS:");
		if (!rss_first && test_now_seconds() - t0 >= w)
			rss_first = rss_last;
	} while (rc == 0 && test_now_seconds() - t0 < secs);
	if (!rss_first)
		rss_first = rss_last;
	double elapsed = test_now_seconds() - t0;
	atomic_store(&sampler_stop, 1);
	pthread_join(sampler, NULL);

	size_t sw = (size_t)w;
	printf("SOAK %s iterations=%" PRIu64 " seconds=%.0f", prog, iterations, elapsed);
	for (unsigned i = 0; i < ncounters; i++)
		printf(" %s=%" PRIu64, counters[i].name, counters[i].n);
	printf(" violations=%lu peak_rss_kb=%" PRIu64 " rss_first_kb=%" PRIu64
	       " rss_last_kb=%" PRIu64 " growth_kb=%" PRId64 " busy_first_kb=%" PRIu64
	       " busy_last_kb=%" PRIu64 "\n",
	       atomic_load(violations), status_kb("VmHWM:"), rss_first, rss_last,
	       (int64_t)(rss_last - rss_first), window_max(0, sw),
	       window_max(nsamples > sw ? nsamples - sw : 0, nsamples));
	free(samples);
	return rc;
}
