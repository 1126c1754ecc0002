/*
 * Unit tests for the history recorder (core/history.c) in a recording
 * build (linked with the FLOWQ_HISTORY library of this directory): the
 * event lines and the header, dump's and reset's effects and errors, the
 * $FLOWQ_HISTORY_FILE dump, a log handed from an exited thread to the next,
 * and events lost for want of memory, which must be counted in the header's
 * dropped= (history_check refuses a history that lost events; one that lost
 * them uncounted would be checked as if complete).
 *
 * lost_log_is_counted is the regression test of the uncounted-loss bug: an
 * event whose thread could not get a log (calloc failed) was lost without
 * being counted anywhere, so the header said dropped=0.
 *
 * The recording calls are made directly (the engine makes them from submit,
 * dispatch and release; tests/history's stress runs cover that path).
 * Criterion runs each test in its own process, so each starts with no logs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <flowq/history.h>
#include <flowq/types.h>

#include "history.h"

/*
 * calloc made to fail on the threads that ask (fail_calloc), for the
 * recorder's log allocation; everything else gets glibc's. The static
 * library's calloc calls bind to this definition.
 */
extern void *
__libc_calloc(size_t n, size_t size);

static _Thread_local bool fail_calloc;

void *
calloc(size_t n, size_t size)
{
	if (fail_calloc) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

/* The dump as a string (caller frees). */
static char *
dump_text(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	cr_assert_eq(flowq_history_dump(f), 0);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

/* The header's events= and dropped= of a dump. */
static void
dump_counts(uint64_t *r_events, uint64_t *r_dropped)
{
	char *t = dump_text();
	cr_assert_eq(sscanf(t,
			    "# flowq history 1 events=%" SCNu64 " dropped=%" SCNu64 "\n",
			    r_events, r_dropped),
		     2, "header: %s", t);
	free(t);
}

static struct flowq_req reqs[4];

static void
record_one_of_each(void)
{
	reqs[0].bytes = 100;
	reqs[1].bytes = 7;
	reqs[1].priority = -3;
	flowq__history_submit(&reqs[0], 0xabc, 2, 1000, INT64_MAX, true);
	flowq__history_reject(&reqs[1], FLOWQ_REJECTED_CAPACITY,
			      FLOWQ_CAUSE_CAPACITY_GLOBAL);
	flowq__history_outcome(&reqs[0], FLOWQ_DISPATCHED, FLOWQ_CAUSE_NONE, 2000, 1,
			       true);
	flowq__history_release(&reqs[0]);
}

Test(history, every_kind_of_event_in_the_documented_format)
{
	cr_assert(flowq_history_enabled());
	record_one_of_each();
	char *t = dump_text();
	char want[1024];
	uintptr_t r0 = (uintptr_t)&reqs[0], r1 = (uintptr_t)&reqs[1];
	uint64_t g[4];
	int64_t tm[4];
	unsigned tid[4];
	char out[64], cause[64];
	const char *l = strchr(t, '\n') + 1;
	static const char header[] = "# flowq history 1 events=4 dropped=0\n";
	cr_assert_eq(strncmp(t, header, strlen(header)), 0, "%s", t);
	cr_assert_eq(sscanf(l, "S %" SCNu64 " %" SCNd64 " %u 0 ", &g[0], &tm[0], &tid[0]),
		     3, "%s", l);
	snprintf(want, sizeof(want),
		 "S %" PRIu64 " %" PRId64 " %u 0 %" PRIxPTR " abc 2 100 1000 %" PRId64
		 " 1\n",
		 g[0], tm[0], tid[0], r0, INT64_MAX);
	cr_assert_eq(strncmp(l, want, strlen(want)), 0, "got %.*s want %s",
		     (int)strlen(want), l, want);
	l = strchr(l, '\n') + 1;
	cr_assert_eq(sscanf(l, "J %" SCNu64 " %" SCNd64 " %u 1 ", &g[1], &tm[1], &tid[1]),
		     3, "%s", l);
	snprintf(want, sizeof(want),
		 "J %" PRIu64 " %" PRId64 " %u 1 %" PRIxPTR " 0 -3 7 %s %s\n", g[1],
		 tm[1], tid[1], r1, flowq_outcome_str(FLOWQ_REJECTED_CAPACITY),
		 flowq_cause_str(FLOWQ_CAUSE_CAPACITY_GLOBAL));
	cr_assert_eq(strncmp(l, want, strlen(want)), 0, "got %.*s want %s",
		     (int)strlen(want), l, want);
	l = strchr(l, '\n') + 1;
	cr_assert_eq(sscanf(l, "O %" SCNu64 " %" SCNd64 " %u %*x %63s %63s", &g[2],
			    &tm[2], &tid[2], out, cause),
		     5, "%s", l);
	snprintf(want, sizeof(want),
		 "O %" PRIu64 " %" PRId64 " %u %" PRIxPTR " %s %s 2000 1 1\n", g[2],
		 tm[2], tid[2], r0, flowq_outcome_str(FLOWQ_DISPATCHED),
		 flowq_cause_str(FLOWQ_CAUSE_NONE));
	cr_assert_eq(strncmp(l, want, strlen(want)), 0, "got %.*s want %s",
		     (int)strlen(want), l, want);
	l = strchr(l, '\n') + 1;
	cr_assert_eq(sscanf(l, "R %" SCNu64 " %" SCNd64 " %u ", &g[3], &tm[3], &tid[3]),
		     3, "%s", l);
	snprintf(want, sizeof(want), "R %" PRIu64 " %" PRId64 " %u %" PRIxPTR "\n", g[3],
		 tm[3], tid[3], r0);
	cr_assert_str_eq(l, want);
	for (int i = 1; i < 4; i++) {
		cr_assert_gt(g[i], g[i - 1], "gseq follows happens-before");
		cr_assert_geq(tm[i], tm[i - 1]);
		cr_assert_eq(tid[i], tid[0], "one thread, one log");
	}
	free(t);
	/* A dump takes the events: the next one is empty. */
	uint64_t n, d;
	dump_counts(&n, &d);
	cr_assert_eq(n, 0);
	cr_assert_eq(d, 0);
}

Test(history, reset_discards_the_events)
{
	record_one_of_each();
	cr_assert_eq(flowq_history_reset(), 0);
	uint64_t n, d;
	dump_counts(&n, &d);
	cr_assert_eq(n, 0);
	cr_assert_eq(d, 0);
	/* Recording goes on after a reset. */
	flowq__history_release(&reqs[2]);
	dump_counts(&n, &d);
	cr_assert_eq(n, 1);
}

Test(history, dump_errors)
{
	cr_assert_eq(flowq_history_dump(NULL), -EFAULT);
	record_one_of_each();
	/* The write fails at the flush (/dev/full: ENOSPC): -EIO, and the
	 * events are gone all the same (a dump always takes them). */
	FILE *full = fopen("/dev/full", "w");
	cr_assert_not_null(full);
	cr_assert_eq(flowq_history_dump(full), -EIO);
	fclose(full);
	uint64_t n, d;
	dump_counts(&n, &d);
	cr_assert_eq(n, 0);
}

Test(history, dump_env_appends_to_the_named_file)
{
	record_one_of_each();
	/* Unset, empty, or a file that cannot be opened: nothing is dumped,
	 * the events stay for a later dump. */
	cr_assert_eq(unsetenv("FLOWQ_HISTORY_FILE"), 0);
	flowq__history_dump_env();
	cr_assert_eq(setenv("FLOWQ_HISTORY_FILE", "", 1), 0);
	flowq__history_dump_env();
	cr_assert_eq(setenv("FLOWQ_HISTORY_FILE", "/nonexistent-dir/h.txt", 1), 0);
	flowq__history_dump_env();
	char path[] = "/tmp/flowq-history-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(setenv("FLOWQ_HISTORY_FILE", path, 1), 0);
	flowq__history_dump_env();
	flowq__history_release(&reqs[3]);
	flowq__history_dump_env();
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	char line[256];
	int headers = 0, events = 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#') {
			cr_assert_str_eq(
				line, headers == 0
					      ? "# flowq history 1 events=4 dropped=0\n"
					      : "# flowq history 1 events=1 dropped=0\n");
			headers++;
		} else {
			events++;
		}
	}
	fclose(f);
	unlink(path);
	cr_assert_eq(headers, 2, "appended, not overwritten");
	cr_assert_eq(events, 5);
}

static void *
record_submit(void *arg)
{
	flowq__history_submit(arg, 1, 0, 0, INT64_MAX, true);
	return NULL;
}

/* A log outlives its thread and is adopted by the next thread that
 * records: same tid, and its pseq goes on (one producer, sequenced by the
 * recorder's lock). */
Test(history, a_log_passes_from_an_exited_thread_to_the_next)
{
	pthread_t t;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(pthread_create(&t, NULL, record_submit, &reqs[i]), 0);
		cr_assert_eq(pthread_join(t, NULL), 0);
	}
	char *text = dump_text();
	const char *l = strchr(text, '\n') + 1;
	unsigned tid[2], pseq[2];
	uint64_t g;
	int64_t tm;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(sscanf(l, "S %" SCNu64 " %" SCNd64 " %u %u", &g, &tm,
				    &tid[i], &pseq[i]),
			     4, "%s", text);
		l = strchr(l, '\n') + 1;
	}
	cr_assert_eq(tid[1], tid[0], "the second thread adopted the first's log:\n%s",
		     text);
	cr_assert_eq(pseq[0], 0);
	cr_assert_eq(pseq[1], 1);
	free(text);
}

/* No memory for a chunk (the address space capped just above what the
 * process has mapped; a chunk is one 288 KiB mmap): every kind of event is
 * dropped and counted. */
Test(history, lost_chunk_is_counted)
{
	flowq__history_release(&reqs[0]);       /* this thread's log, one chunk */
	cr_assert_eq(flowq_history_reset(), 0); /* the chunk unmapped */
	long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld", &pages), 1);
	fclose(f);
	struct rlimit old, low;
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 64 * 1024;
	cr_assert_eq(setrlimit(RLIMIT_AS, &low), 0);
	record_one_of_each();
	int rc = setrlimit(RLIMIT_AS, &old);
	cr_assert_eq(rc, 0);
	uint64_t n, d;
	dump_counts(&n, &d);
	cr_assert_eq(n, 0);
	cr_assert_eq(d, 4, "every lost event counted");
	dump_counts(&n, &d);
	cr_assert_eq(d, 0, "a dump reports a loss once");
}

static void *
record_without_memory(void *arg)
{
	fail_calloc = true;
	flowq__history_submit(arg, 1, 0, 0, INT64_MAX, true);
	flowq__history_release(arg);
	fail_calloc = false;
	/* Memory is back: this thread gets its log and records. */
	flowq__history_release(arg);
	return NULL;
}

/* No memory for the thread's log: the events are lost, and counted. */
Test(history, lost_log_is_counted)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, record_without_memory, &reqs[0]), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	uint64_t n, d;
	dump_counts(&n, &d);
	cr_assert_eq(n, 1);
	cr_assert_eq(d, 2, "the two events recorded without a log are counted");
	dump_counts(&n, &d);
	cr_assert_eq(d, 0, "a dump reports a loss once");
	/* A reset forgets losses as well as events. This thread adopts the
	 * log the other left, so the next thread needs a new one. */
	flowq__history_release(&reqs[1]);
	cr_assert_eq(pthread_create(&t, NULL, record_without_memory, &reqs[0]), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(flowq_history_reset(), 0);
	dump_counts(&n, &d);
	cr_assert_eq(n, 0);
	cr_assert_eq(d, 0);
}
