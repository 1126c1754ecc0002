// Every public header must compile as C++ (hosts such as Envoy are C++):
// this file includes them all; the test compiles it for C++11, 17 and 20.
#include <flowq/alloc.h>
#include <flowq/config_yaml.h>
#include <flowq/flowq.h>
#include <flowq/heap.h>
#include <flowq/history.h>
#include <flowq/jemalloc.h>
#include <flowq/list.h>
#include <flowq/mpsc.h>
#include <flowq/pheap.h>
#include <flowq/policy.h>
#include <flowq/types.h>

static_assert(sizeof(struct flowq_mpsc) == 2 * FLOWQ_CACHE_LINE, "layout as in C");
static_assert(sizeof(struct flowq_config_yaml) > sizeof(struct flowq_config), "holder");

int
main()
{
	struct flowq_list l;
	struct flowq_config cfg;
	const struct flowq_fairness_ops *fair = flowq_fairness_find("global_strict");

	flowq_list_init(&l);
	flowq_config_init(&cfg);
	bool ok = flowq_list_empty(&l) && flowq_outcome_str(FLOWQ_DISPATCHED) != nullptr;

	ok = ok && fair != nullptr && flowq_config_validate(&cfg, nullptr, 0) == 0;
	return ok ? 0 : 1;
}
