/*
 * Misuse of the public API: the error returns that flowq.h, policy.h and
 * history.h document and no other suite checks. Each test names the call,
 * the misuse and the errno the header promises, so a change of either
 * fails here:
 *  - flowq_flow_get(): -ESHUTDOWN (from a completion that runs during a
 *    polled destroy: the one window in which a caller can see the engine
 *    stopping), -ENOENT (no band and no template; FLOWQ_MAX_BANDS alive),
 *    -ENOMEM (count_alloc.h's failing allocator, at every allocation of a
 *    new flow and of a new band);
 *  - the statistics calls: -EFAULT, -EINVAL for a bad flow id, and the
 *    walks' early stop (the callback's nonzero return ends the walk and is
 *    returned), also across shards, and -ENOMEM;
 *  - flowq_port_create(), flowq_shard_fd(): NULL arguments;
 *  - flowq_displacement_register(): every -EINVAL case, -EEXIST, -ENOSPC;
 *    flowq_ordering_register(): -ENOSPC;
 *  - the history recorder's calls in a build without it (-ENOTSUP);
 *  - flowq_config_validate(): displacement_max_pending above
 *    FLOWQ_LIMIT_MAX;
 *  - flowq_release_batch(): a NULL entry is -EFAULT, the others released.
 * Polled engines on the fixture's manual clock (engine_fixture.h).
 * Registries are process-global; Criterion runs each Test in its own
 * process, so a test may fill one.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flowq/flowq.h>
#include <flowq/history.h>
#include <flowq/policy.h>

#include "count_alloc.h"
#include "engine_fixture.h"
#include "policy_fill.h"

/* A polled engine of @p shards shards with one configured band (priority
 * 0) and no default-band template. */
static struct flowq_engine *
make_one_band(unsigned shards, const struct flowq_allocator *alloc)
{
	static struct flowq_band_config band;
	struct flowq_config c = fx_polled_cfg();

	band = c.default_band;
	band.priority = 0;
	c.shards = shards;
	c.bands = &band;
	c.nbands = 1;
	c.default_band_enabled = false;
	c.allocator = alloc;
	return fx_make(&c);
}

/* ---- flowq_flow_get ------------------------------------------------------- */

/* A completion that runs during a polled destroy (on the destroying thread)
 * asks for a flow handle: the engine is stopping, so flowq_flow_get()
 * returns -ESHUTDOWN and hands out nothing. */
static struct flowq_engine *stopping_engine;
static int stopping_get_rc = 1;
static struct flowq_flow *stopping_flow;

static void
get_on_complete(struct flowq_req *req, void *arg)
{
	fx_on_complete(req, arg);
	stopping_get_rc = flowq_flow_get(stopping_engine, "late", 4, 0, &stopping_flow);
}

Test(flow_get, on_a_stopping_engine_is_eshutdown)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h;

	fx_req_init(&h, "f", 0, 1);
	h.req.complete = get_on_complete;
	stopping_engine = e;
	cr_assert_eq(flowq_submit(e, &h.req), 0);
	flowq_engine_destroy(e); /* h is evicted; its completion asks */
	cr_assert_eq(h.seen, FLOWQ_EVICTED_OTHER);
	cr_assert_eq(h.cause, FLOWQ_CAUSE_SHUTDOWN);
	cr_assert_eq(stopping_get_rc, -ESHUTDOWN);
	cr_assert_null(stopping_flow, "no handle is handed out");
}

Test(flow_get, a_priority_without_band_or_template_is_enoent)
{
	struct flowq_engine *e = make_one_band(1, NULL);
	struct flowq_flow *f = NULL;
	struct flowq_stats st;

	cr_assert_eq(flowq_flow_get(e, "a", 1, 1, &f), -ENOENT);
	cr_assert_eq(flowq_flow_get(e, "a", 1, -1, &f), -ENOENT);
	cr_assert_null(f);
	cr_assert_eq(flowq_stats_band(e, 1, &st), -ENOENT, "no band was made");
	/* The configured band's priority is known. */
	cr_assert_eq(flowq_flow_get(e, "a", 1, 0, &f), 0);
	flowq_flow_put(e, f);
	flowq_engine_destroy(e);
}

Test(flow_get, a_new_priority_past_max_bands_is_enoent)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e = fx_make(&c);
	struct flowq_flow *f[FLOWQ_MAX_BANDS];
	struct flowq_flow *extra = NULL;

	/* Each handle pins its flow, and so its template band. */
	for (int32_t p = 0; p < (int32_t)FLOWQ_MAX_BANDS; p++)
		cr_assert_eq(flowq_flow_get(e, "a", 1, p, &f[p]), 0, "priority %d", p);
	cr_assert_eq(flowq_flow_get(e, "a", 1, (int32_t)FLOWQ_MAX_BANDS, &extra),
		     -ENOENT);
	cr_assert_null(extra);
	/* A live band still takes new flows. */
	cr_assert_eq(flowq_flow_get(e, "b", 1, 0, &extra), 0);
	flowq_flow_put(e, extra);
	for (unsigned p = 0; p < FLOWQ_MAX_BANDS; p++)
		flowq_flow_put(e, f[p]);
	flowq_engine_destroy(e);
}

/* Every allocation a new flow makes fails in turn: each time -ENOMEM and
 * nothing left allocated; then the same call succeeds. */
Test(flow_get, a_failed_flow_allocation_is_enomem_and_leaks_nothing)
{
	struct test_count_alloc ca;
	struct flowq_engine *e;
	struct flowq_flow *f = NULL;
	unsigned long k;
	int rc;

	test_count_alloc_init(&ca);
	e = make_one_band(1, &ca.a);
	for (k = 0;; k++) {
		long blocks = atomic_load(&ca.blocks);

		test_count_alloc_budget(&ca, k);
		rc = flowq_flow_get(e, "a", 1, 0, &f);
		if (rc != -ENOMEM)
			break;
		cr_assert_null(f);
		cr_assert_eq(atomic_load(&ca.blocks), blocks,
			     "a failed get at allocation %lu left blocks", k);
	}
	cr_assert_eq(rc, 0);
	cr_assert_gt(k, 0, "a new flow allocates: the first get must have failed");
	cr_assert_gt(atomic_load(&ca.failed), 0);
	atomic_store(&ca.fail_after, ~0ul);
	flowq_flow_put(e, f);
	flowq_engine_destroy(e);
	cr_assert_eq(atomic_load(&ca.blocks), 0);
	cr_assert_eq(atomic_load(&ca.outstanding), 0);
}

/* The same for a flow of a new priority, whose just-in-time band is
 * allocated first: the band's allocations fail as -ENOMEM too. */
Test(flow_get, a_failed_band_allocation_is_enomem)
{
	struct test_count_alloc ca;
	struct flowq_config c = fx_polled_cfg();
	struct flowq_engine *e;
	struct flowq_flow *f = NULL;
	unsigned long k;
	int rc;

	test_count_alloc_init(&ca);
	c.allocator = &ca.a;
	e = fx_make(&c);
	for (k = 0;; k++) {
		test_count_alloc_budget(&ca, k);
		rc = flowq_flow_get(e, "a", 1, 7, &f);
		if (rc != -ENOMEM)
			break;
		cr_assert_null(f);
	}
	cr_assert_eq(rc, 0);
	/* More failure points than a flow alone has: the band's came first. */
	cr_assert_gt(k, 1, "only %lu allocations failed", k);
	atomic_store(&ca.fail_after, ~0ul);
	flowq_flow_put(e, f);
	flowq_engine_destroy(e);
	cr_assert_eq(atomic_load(&ca.blocks), 0);
	cr_assert_eq(atomic_load(&ca.outstanding), 0);
}

/* ---- statistics: arguments ------------------------------------------------ */

Test(stats, band_with_a_null_argument_is_efault)
{
	struct flowq_engine *e = make_one_band(1, NULL);
	struct flowq_stats st;

	cr_assert_eq(flowq_stats_band(NULL, 0, &st), -EFAULT);
	cr_assert_eq(flowq_stats_band(e, 0, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_band(e, 0, &st), 0);
	flowq_engine_destroy(e);
}

Test(stats, flow_with_a_bad_id_is_einval_and_a_null_argument_efault)
{
	struct flowq_engine *e = make_one_band(1, NULL);
	struct flowq_stats st;
	static char id[FLOWQ_FLOW_ID_MAX + 1];

	memset(id, 'x', sizeof(id));
	cr_assert_eq(flowq_stats_flow(e, NULL, 1, 0, &st), -EINVAL);
	cr_assert_eq(flowq_stats_flow(e, id, 0, 0, &st), -EINVAL);
	cr_assert_eq(flowq_stats_flow(e, id, FLOWQ_FLOW_ID_MAX + 1, 0, &st), -EINVAL);
	/* The longest id is a valid one, merely unknown. */
	cr_assert_eq(flowq_stats_flow(e, id, FLOWQ_FLOW_ID_MAX, 0, &st), -ENOENT);
	cr_assert_eq(flowq_stats_flow(NULL, "a", 1, 0, &st), -EFAULT);
	cr_assert_eq(flowq_stats_flow(e, "a", 1, 0, NULL), -EFAULT);
	flowq_engine_destroy(e);
}

static int
never_called(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	(void)priority;
	(void)st;
	(void)ctx;
	cr_assert_fail("the walk must not call back");
	return 0;
}

static int
never_called_flow(const void *id, uint32_t id_len, int32_t priority,
		  const struct flowq_stats *st, void *ctx)
{
	(void)id;
	(void)id_len;
	(void)priority;
	(void)st;
	(void)ctx;
	cr_assert_fail("the walk must not call back");
	return 0;
}

Test(stats, foreach_with_a_null_argument_is_efault)
{
	struct flowq_engine *e = make_one_band(1, NULL);

	cr_assert_eq(flowq_stats_foreach_band(NULL, never_called, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_band(e, NULL, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_flow(NULL, never_called_flow, NULL), -EFAULT);
	cr_assert_eq(flowq_stats_foreach_flow(e, NULL, NULL), -EFAULT);
	flowq_engine_destroy(e);
}

/* The walks allocate their snapshot through the engine's allocator: when
 * that fails they return -ENOMEM without calling back. */
Test(stats, foreach_without_memory_is_enomem)
{
	struct test_count_alloc ca;
	struct flowq_engine *e;
	struct flowq_flow *f;

	test_count_alloc_init(&ca);
	e = make_one_band(1, &ca.a);
	cr_assert_eq(flowq_flow_get(e, "a", 1, 0, &f), 0);
	test_count_alloc_budget(&ca, 0);
	cr_assert_eq(flowq_stats_foreach_band(e, never_called, NULL), -ENOMEM);
	cr_assert_eq(flowq_stats_foreach_flow(e, never_called_flow, NULL), -ENOMEM);
	atomic_store(&ca.fail_after, ~0ul);
	flowq_flow_put(e, f);
	flowq_engine_destroy(e);
}

/* ---- statistics: the walks stop where the callback says ------------------- */

struct stop_at {
	int calls;
	int stop; /* the call (1-based) that returns nonzero */
	int ret;  /* what it returns */
	int32_t last_priority;
};

static int
band_stop_at(int32_t priority, const struct flowq_stats *st, void *ctx)
{
	struct stop_at *s = ctx;

	(void)st;
	cr_assert_lt(s->calls, s->stop, "called again after returning %d", s->ret);
	if (s->calls > 0)
		cr_assert_lt(priority, s->last_priority, "most important first");
	s->last_priority = priority;
	return ++s->calls == s->stop ? s->ret : 0;
}

static int
flow_stop_at(const void *id, uint32_t id_len, int32_t priority,
	     const struct flowq_stats *st, void *ctx)
{
	struct stop_at *s = ctx;

	(void)id;
	(void)id_len;
	(void)priority;
	(void)st;
	cr_assert_lt(s->calls, s->stop, "called again after returning %d", s->ret);
	return ++s->calls == s->stop ? s->ret : 0;
}

/* Bands 3 configured, 2 made just in time. Stopping at each band in turn
 * (positive and negative values) visits exactly that many and returns the
 * value; a walk that never stops visits every band and returns 0. */
Test(stats, foreach_band_stops_at_the_first_nonzero_return)
{
	struct flowq_config c = fx_polled_cfg();
	struct flowq_band_config b[3];
	struct flowq_flow *jit[2];
	enum { NBANDS = 5 };

	for (int i = 0; i < 3; i++) {
		b[i] = c.default_band;
		b[i].priority = 10 * i;
	}
	c.bands = b;
	c.nbands = 3;
	struct flowq_engine *e = fx_make(&c);
	cr_assert_eq(flowq_flow_get(e, "j", 1, 5, &jit[0]), 0);
	cr_assert_eq(flowq_flow_get(e, "j", 1, -5, &jit[1]), 0);

	struct stop_at all = {.stop = NBANDS + 1};
	cr_assert_eq(flowq_stats_foreach_band(e, band_stop_at, &all), 0);
	cr_assert_eq(all.calls, NBANDS);
	for (int k = 1; k <= NBANDS; k++) {
		for (int sign = 1; sign >= -1; sign -= 2) {
			struct stop_at s = {.stop = k, .ret = sign * (100 + k)};
			cr_assert_eq(flowq_stats_foreach_band(e, band_stop_at, &s), s.ret,
				     "stop at %d", k);
			cr_assert_eq(s.calls, k);
		}
	}
	flowq_flow_put(e, jit[0]);
	flowq_flow_put(e, jit[1]);
	flowq_engine_destroy(e);
}

/* Flows over 4 shards: stopping at each flow in turn visits exactly that
 * many, so a stop at the last flow of a shard also ends the walk (the next
 * shard is not started). */
Test(stats, foreach_flow_stops_at_the_first_nonzero_return_across_shards)
{
	enum { NFLOWS = 24 };
	struct flowq_engine *e = make_one_band(4, NULL);
	struct flowq_flow *f[NFLOWS];
	char id[8];

	for (int i = 0; i < NFLOWS; i++) {
		snprintf(id, sizeof(id), "f%02d", i);
		cr_assert_eq(flowq_flow_get(e, id, (uint32_t)strlen(id), 0, &f[i]), 0);
	}
	struct stop_at all = {.stop = NFLOWS + 1};
	cr_assert_eq(flowq_stats_foreach_flow(e, flow_stop_at, &all), 0);
	cr_assert_eq(all.calls, NFLOWS);
	for (int k = 1; k <= NFLOWS; k++) {
		for (int sign = 1; sign >= -1; sign -= 2) {
			struct stop_at s = {.stop = k, .ret = sign * (100 + k)};
			cr_assert_eq(flowq_stats_foreach_flow(e, flow_stop_at, &s), s.ret,
				     "stop at %d", k);
			cr_assert_eq(s.calls, k);
		}
	}
	for (int i = 0; i < NFLOWS; i++)
		flowq_flow_put(e, f[i]);
	flowq_engine_destroy(e);
}

/* ---- ports and polled mode ------------------------------------------------ */

Test(port, create_with_a_null_argument_is_einval)
{
	struct flowq_engine *e = make_one_band(1, NULL);
	struct flowq_port *p = NULL;

	cr_assert_eq(flowq_port_create(NULL, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_eq(flowq_port_create(e, NULL), -EINVAL);
	cr_assert_eq(flowq_port_create(e, &p), 0);
	flowq_engine_destroy(e);
	flowq_port_destroy(p);
}

Test(shard_fd, a_null_engine_is_einval)
{
	cr_assert_eq(flowq_shard_fd(NULL, 0), -EINVAL);
}

/* ---- policy registry ------------------------------------------------------ */

/* A valid displacement policy to mutate (lowest_band_newest's ops,
 * renamed: it leaves the optional flow_attach/flow_detach NULL). */
static struct flowq_displacement_ops
disp_template(const char *name)
{
	struct flowq_displacement_ops o = *flowq_displacement_find("lowest_band_newest");

	o.desc.name = name;
	return o;
}

static struct flowq_ordering_ops
ord_template(const char *name)
{
	struct flowq_ordering_ops o = *flowq_ordering_find("fcfs");

	o.desc.name = name;
	return o;
}

static size_t
displacement_count(void)
{
	size_t n = 0;

	while (flowq_displacement_at(n) != NULL)
		n++;
	return n;
}

Test(displacement_register, each_invalid_ops_is_einval)
{
	static const char *const bad_names[] = {
		"",
		"Upper",
		"with-dash",
		"sp ace",
		"dot.",
		"\xc3\xa9t\xc3\xa9",
		"a_name_that_is_32_chars_long_xyz", /* FLOWQ_POLICY_NAME_MAX + 1 */
	};
	static struct flowq_displacement_ops d;
	size_t before = displacement_count();

	cr_assert_eq(strlen(bad_names[6]), FLOWQ_POLICY_NAME_MAX + 1);
	cr_assert_eq(flowq_displacement_register(NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		d = disp_template(bad_names[i]);
		cr_assert_eq(flowq_displacement_register(&d), -EINVAL, "\"%s\"",
			     bad_names[i]);
	}
	d = disp_template(NULL);
	cr_assert_eq(flowq_displacement_register(&d), -EINVAL, "NULL name");
	const uint32_t bad_abi[] = {0, FLOWQ_POLICY_ABI_MIN - 1, FLOWQ_POLICY_ABI + 1};
	for (size_t i = 0; i < sizeof(bad_abi) / sizeof(bad_abi[0]); i++) {
		d = disp_template("x");
		d.desc.abi_version = bad_abi[i];
		cr_assert_eq(flowq_displacement_register(&d), -EINVAL, "abi %u",
			     bad_abi[i]);
	}
	d = disp_template("x");
	d.desc.description = NULL;
	cr_assert_eq(flowq_displacement_register(&d), -EINVAL, "NULL description");
	/* Each required op missing in turn. */
	for (int op = 0; op < 5; op++) {
		d = disp_template("x");
		switch (op) {
		case 0:
			d.band_init = NULL;
			break;
		case 1:
			d.band_fini = NULL;
			break;
		case 2:
			d.arrived = NULL;
			break;
		case 3:
			d.left = NULL;
			break;
		case 4:
			d.victim = NULL;
			break;
		}
		cr_assert_eq(flowq_displacement_register(&d), -EINVAL, "op %d", op);
	}
	/* An invalid ops is -EINVAL even under a name that exists. */
	d = disp_template("none");
	d.victim = NULL;
	cr_assert_eq(flowq_displacement_register(&d), -EINVAL);
	/* None of that registered anything. */
	cr_assert_null(flowq_displacement_find("x"));
	cr_assert_eq(displacement_count(), before);
	/* flow_attach and flow_detach are optional; the longest name is valid. */
	d = disp_template("a_name_that_is_31_chars_long_xy");
	d.flow_attach = NULL;
	d.flow_detach = NULL;
	cr_assert_eq(flowq_displacement_register(&d), 0);
	cr_assert_eq(flowq_displacement_find("a_name_that_is_31_chars_long_xy"), &d);
}

Test(displacement_register, a_duplicate_name_is_eexist)
{
	static struct flowq_displacement_ops a, b, builtin_name;

	a = disp_template("mine");
	b = disp_template("mine");
	cr_assert_eq(flowq_displacement_register(&a), 0);
	cr_assert_eq(flowq_displacement_find("mine"), &a);
	cr_assert_eq(flowq_displacement_register(&a), -EEXIST);
	cr_assert_eq(flowq_displacement_register(&b), -EEXIST, "same name, other object");
	cr_assert_eq(flowq_displacement_find("mine"), &a, "the first stays");
	builtin_name = disp_template("most_over_share");
	cr_assert_eq(flowq_displacement_register(&builtin_name), -EEXIST);
	cr_assert_neq(flowq_displacement_find("most_over_share"), &builtin_name,
		      "the built-in is not replaced");
}

Test(displacement_register, a_full_table_is_enospc)
{
	static char names[FLOWQ_POLICY_MAX + 1][24];
	static struct flowq_displacement_ops ops[FLOWQ_POLICY_MAX + 1];
	size_t nbuiltin = displacement_count(), n;

	POLICY_FILL_TO_ENOSPC(flowq_displacement_register, flowq_displacement_find,
			      disp_template, "d", names, ops, nbuiltin, &n);
	cr_assert_null(flowq_displacement_at(FLOWQ_POLICY_MAX));
	/* Validation and duplicates are still reported first. */
	cr_assert_eq(flowq_displacement_register(&ops[0]), -EEXIST);
	cr_assert_eq(flowq_displacement_register(NULL), -EINVAL);
	/* The last one registered is usable by an engine. */
	struct flowq_config c = fx_polled_cfg();
	c.displacement = names[n - 1];
	cr_assert_eq(flowq_config_validate(&c, NULL, 0), 0);
}

Test(ordering_register, a_full_table_is_enospc)
{
	static char names[FLOWQ_POLICY_MAX + 1][24];
	static struct flowq_ordering_ops ops[FLOWQ_POLICY_MAX + 1];
	size_t nbuiltin = 0, n;

	while (flowq_ordering_at(nbuiltin) != NULL)
		nbuiltin++;
	POLICY_FILL_TO_ENOSPC(flowq_ordering_register, flowq_ordering_find, ord_template, "o",
			      names, ops, nbuiltin, &n);
	cr_assert_null(flowq_ordering_at(FLOWQ_POLICY_MAX));
	cr_assert_eq(flowq_ordering_register(&ops[0]), -EEXIST);
	cr_assert_eq(flowq_ordering_register(NULL), -EINVAL);
}

/* ---- history recorder ----------------------------------------------------- */

/* history.h: without FLOWQ_HISTORY the functions "only say so": every call
 * is -ENOTSUP, a NULL stream included. With the recorder built in, a NULL
 * stream is -EFAULT. */
Test(history, calls_match_whether_recording_is_built_in)
{
	FILE *out = tmpfile();

	cr_assert_not_null(out);
	if (!flowq_history_enabled()) {
		cr_assert_eq(flowq_history_dump(out), -ENOTSUP);
		cr_assert_eq(flowq_history_dump(NULL), -ENOTSUP);
		cr_assert_eq(flowq_history_reset(), -ENOTSUP);
		cr_assert_eq(ftell(out), 0, "nothing written");
	} else {
		cr_assert_eq(flowq_history_dump(NULL), -EFAULT);
		cr_assert_eq(flowq_history_reset(), 0);
		cr_assert_eq(flowq_history_dump(out), 0);
		cr_assert_gt(ftell(out), 0, "the header line");
	}
	fclose(out);
}

/* ---- configuration -------------------------------------------------------- */

Test(config, displacement_max_pending_above_limit_max_is_einval)
{
	struct flowq_config c = fx_polled_cfg();
	char err[160];

	c.displacement_max_pending = FLOWQ_LIMIT_MAX + 1;
	memset(err, 'x', sizeof(err));
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "displacement_max_pending: 4611686018427387905 is not in "
			      "[1, FLOWQ_LIMIT_MAX]");
	c.displacement_max_pending = UINT64_MAX;
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), -EINVAL);
	cr_assert_neq(strstr(err, "displacement_max_pending: 18446744073709551615"), NULL,
		      "%s", err);
	/* The bound itself is accepted. */
	c.displacement_max_pending = FLOWQ_LIMIT_MAX;
	cr_assert_eq(flowq_config_validate(&c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(err, "");
}

/* ---- flowq_release_batch -------------------------------------------------- */

/* A NULL entry in the middle gets -EFAULT; the entries around it are
 * released, their in-flight slots come back, and the gate they held opens. */
Test(release_batch, a_null_entry_is_efault_and_the_others_are_released)
{
	struct flowq_config c = fx_polled_cfg();
	c.saturation.max_inflight = 3;
	struct flowq_engine *e = fx_make(&c);
	struct fx_req h[4];
	struct flowq_stats st;

	for (int i = 0; i < 4; i++) {
		fx_req_init(&h[i], "a", 0, 10);
		cr_assert_eq(flowq_submit(e, &h[i].req), 0);
	}
	cr_assert_eq(fx_poll_all(e), 3, "the gate holds the fourth");
	struct flowq_req *rel[4] = {&h[0].req, NULL, &h[1].req, &h[2].req};
	int rc[4] = {1, 1, 1, 1};
	cr_assert_eq(flowq_release_batch(e, rel, 4, rc), 3);
	cr_assert_eq(rc[0], 0);
	cr_assert_eq(rc[1], -EFAULT);
	cr_assert_eq(rc[2], 0);
	cr_assert_eq(rc[3], 0);
	cr_assert_eq(flowq_stats_engine(e, &st), 0);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(st.inflight_bytes, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(flowq_release(e, &h[i].req), -EALREADY, "request %d", i);
	cr_assert_eq(fx_poll_all(e), 1);
	cr_assert_eq(h[3].seen, FLOWQ_DISPATCHED);
	cr_assert_eq(flowq_release(e, &h[3].req), 0);
	flowq_engine_destroy(e);
}
