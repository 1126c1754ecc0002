/*
 * A program outside the flowq tree that uses the installed headers and
 * library: proves the install is self-contained (headers merged into
 * include/flowq, library found, symbols exported).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <flowq/mpsc.h>
#include <flowq/types.h>

int
main(void)
{
	static struct flowq_mpsc q;
	struct flowq_req a, b;
	struct flowq_mpsc_node *n = NULL;

	flowq_req_init(&a);
	flowq_req_init(&b);
	flowq_mpsc_init(&q);
	if (!flowq_mpsc_enqueue(&q, &a.priv.link) || flowq_mpsc_enqueue(&q, &b.priv.link))
		return 1;
	if (flowq_mpsc_trydequeue(&q, &n) != 0 || n != &a.priv.link)
		return 2;
	if (flowq_mpsc_trydequeue(&q, &n) != 0 || n != &b.priv.link)
		return 3;
	if (flowq_mpsc_trydequeue(&q, &n) != -ENOENT || !flowq_mpsc_empty(&q))
		return 4;
	if (flowq_req_outcome(&a) != FLOWQ_PENDING ||
	    strcmp(flowq_outcome_str(FLOWQ_DISPATCHED), "dispatched") != 0)
		return 5;
	printf("consumer ok\n");
	return 0;
}
