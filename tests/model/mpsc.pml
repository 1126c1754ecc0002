/*
 * mpsc.pml: flowq_mpsc (queues/mpsc.c, flowq/mpsc.h) as both models use
 * it. Include after defining QN, the number of positions: each position is
 * used once (a model enqueues at most QN - 1 items on one queue), so hd and
 * tl only grow.
 *
 * item[p] entered position p with the producer's [E1] exchange of the tail
 * (queues/mpsc.c, flowq_mpsc_enqueue()); lk[p] is set by its [E2] store
 * that links it to its predecessor (the dummy, or the previous item). The
 * consumer can take the oldest item only once it is linked and, unless it
 * is the tail, its successor is linked too (the batch dequeue needs that
 * link to advance, or a CAS of the tail back to the dummy when it is the
 * last: flowq/mpsc.h, trydequeue's -EAGAIN cases). flowq_mpsc_empty()
 * counts an exchanged, unlinked item as present (tail != &head), and so
 * does MPSC_EMPTY. Where the dummy and the consumer's cursor live (mpsc.c
 * I6) changes which cache lines a step writes, not the steps, so the model
 * does not see it. The C11 argument that the queue behaves like this
 * (linearizable at [E1], items visible once linked) is queues/mpsc.c's.
 */
typedef Mpsc {
	byte item[QN];
	bit lk[QN];
	byte hd;	/* consumer: position of the oldest item */
	byte tl;	/* producers: position the next exchange takes */
};

#define MPSC_EMPTY(q)    (q.hd == q.tl)
#define MPSC_CAN_TAKE(q) (q.hd < q.tl && q.lk[q.hd] && \
			  (q.hd + 1 == q.tl || q.lk[q.hd + 1]))

/* [E1]: exchange the tail; xwas = it found the queue empty (enqueue's
 * return value). The caller stores xq.lk[xpos] = 1 later: [E2]. */
inline mpsc_exchange(xq, xx, xpos, xwas)
{
	xwas = MPSC_EMPTY(xq);
	xpos = xq.tl;
	xq.item[xpos] = xx;
	xq.tl++
}
