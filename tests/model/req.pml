/*
 * req.pml: the request state machine (flowq/types.h, "The request life
 * cycle") with every thread that can decide a request's fate racing on it:
 * the submitter, a canceller, the shard's dispatcher (dispatch, TTL expiry,
 * displacement), a double submit, the host's releases (also hostile ones)
 * and engine destroy (shutdown). Checked by tests/model/CMakeLists.txt:
 *
 *   spin -a req.pml && cc -DSAFETY -o pan pan.c && ./pan -m2000000
 *
 * Properties (assert()s below, plus spin's invalid-end-state check):
 *  P1 exactly-once finalisation: [T2] succeeds at most once per request
 *     (nfinal <= 1) and, once the dispatcher has exited, exactly once for
 *     every claimed request;
 *  P2 exactly one completion for a queued request, none for a rejected one
 *     (the host gets a rejected request back from submit's return);
 *  P3 no dispatch after a successful cancel;
 *  P4 a release succeeds only on a DISPATCHED request, at most once, and
 *     gives back exactly the gate slot its dispatch took (gate conservation);
 *  P5 no access to a request after its completion ran (the host may free or
 *     reuse it then): the canceller's accesses after its [T2] and every
 *     dispatcher access check it (DESIGN.md invariant 4, dispatch.c's
 *     "two-event rule");
 *  P6 queue capacity given back exactly once per queued request
 *     (account_left), and the flow's cancel_wait pin back to 0;
 *  P7 no thread is left blocked: spin's invalid-end-state check (destroy
 *     joins the dispatcher only once the shard is empty).
 *
 * Bounds: NREQ = 2 requests on one flow of one shard (-DNREQ=1 also
 * works; 3 runs for many minutes). Request 0 has every actor: its
 * submitter, a canceller, a releaser (hostile too: a release before the
 * completion, a second release), and with -DDOUBLE_SUBMIT a second submit
 * racing the first; request 1 has a submitter only and contends for the
 * inbox (the exchange/link window), the doorbell and the gate. One
 * displacement ticket, a gate of GATE = 1 in-flight slot, TTL expiry and
 * capacity rejection at any moment (nondeterministic), then destroy. The
 * dispatcher picks any backlogged request for dispatch, expiry or
 * displacement (this over-approximates every fairness, ordering and
 * displacement policy: they only choose among these).
 * Also checked for non-progress cycles under weak fairness (pan -l -f):
 * every fair run ends (the dispatcher exits after destroy).
 *
 * Mutations (tests/model/CMakeLists.txt runs each and expects spin to find
 * a counterexample):
 *  -DMUT_PLAIN_FINALIZE  [T2] as a load, a compare and a plain store
 *                        instead of one CAS: two deciders both win (P1/P3);
 *  -DMUT_NO_TWO_EVENT    the dispatcher completes a request whose cancel
 *                        won without waiting for the cancel message: the
 *                        canceller then touches a completed request (P5).
 *
 * Memory model. Promela is sequentially consistent; the C code is not, and
 * the SC model is sound for it because of these orderings:
 *  - The state word is one atomic location and every transition but one is
 *    an RMW on it ([T1] claim, [T2] finalize: core/types.c
 *    flowq__req_claim, flowq__req_finalize; [T3] flowq__req_release).
 *    RMWs on one location are totally ordered (modification order) and each
 *    reads the latest value, whatever their memory_order, so "exactly one
 *    [T2] wins" holds in C11 exactly as in the SC model. The exception is
 *    [T4] mark_queued (flowq__req_mark_queued), a release store: between
 *    [T1] and [T4] no other thread writes the word (every other transition
 *    needs QUEUED or DISPATCHED; a CAS that fails writes nothing), so the
 *    store takes the word from the SUBMITTED its own thread wrote, as the
 *    model's atomic step does, and it is in the modification order that
 *    every later RMW reads from. The orderings
 *    (acq_rel / release) only carry the *other* fields, below.
 *  - The private fields (owner, dflags, TTL key) are written by the
 *    submitter before [T4] (release, core/submit.c 248-258) and read by the
 *    dispatcher after it dequeues the request from the inbox (the MPSC's
 *    [E2] release / [D1] acquire, queues/mpsc.c 110-112) or by the
 *    canceller after its [T2] (acq_rel, reads-from [T4] or a later RMW in
 *    its release sequence, core/submit.c 279-285). So every read of a plain
 *    field in the model sees the value SC would give it.
 *  - dflags is written by the submitter (before [T4]) and then only by the
 *    dispatcher; the dispatcher's first write to it (RF_CANCEL_MSG, or
 *    RF_IN_PRIVATE) comes after an acquire that the submitter's write
 *    happens-before ([T4] -> canceller's [T2] -> cancels enqueue [E2] ->
 *    dispatcher's dequeue; or the inbox hand-off). No data race.
 *  - The queues (flow inbox, shard cancel queue) are modelled with their
 *    two-step enqueue ([E1] exchange of the tail, [E2] link of the
 *    predecessor) and the consumer's rule that it can take an item only once
 *    it and its successor are linked (flowq/mpsc.h), which is what the C11
 *    proof in queues/mpsc.c establishes; flowq_mpsc_empty() counts an
 *    exchanged, unlinked item as present (tail != head).
 *  The dispatcher's sleep is abstracted to "runs rounds while it likes"
 *  here; the sleep/wake handshake is wake.pml's subject.
 *
 * Map from the Promela below to the C code (line numbers of this commit):
 *  finalize()          core/types.c flowq__req_finalize, 157-182 ([T2])
 *  Submitter           core/submit.c flowq_submit, 160-271: [T1] 165,
 *                      stopping 167-169, capacity rejections 213-246 (one
 *                      nondeterministic REJECTED_CAPACITY stands for all),
 *                      [T4] 257 (core/types.c 144-155), inbox enqueue 265,
 *                      ring 266 ->
 *                      core/registry.c flowq__flow_ring 392-402 ([D1])
 *  Canceller           core/submit.c flowq_cancel, 273-290
 *  Releaser            core/submit.c flowq_release 292-314 and
 *                      core/types.c flowq__req_release 184-200 ([T3])
 *  Dispatcher          core/dispatch.c flowq__shard_run 1160-1221, with
 *    process_cancel    process_cancels 643-671
 *    doorbell / drain  process_doorbell 756-779 ([D2] 770), drain_inbox
 *                      688-754, process_pending 781-801
 *    evict()           evict 614-639 (+ unlink_req 573-601, deliver 603)
 *    displacement      process_displacement 993-1023
 *    stopping          flowq__shard_run 1175-1188
 *    expiry            expire 805-817
 *    dispatch          dispatch 919-990 (gate_take 866, [T2] 970,
 *                      gate_untake 973)
 *    exit              flowq__dispatcher_main 1325, shard_empty 1260-1273
 *  Destroy             core/engine.c flowq_engine_destroy 314-336 (called
 *                      only once every other call on the engine returned:
 *                      flowq.h's synchronization table)
 */

#ifndef NREQ
#define NREQ 2
#endif
#define GATE 1
#define QN (NREQ + 1)
#define NONE 255

/* enum flowq_outcome */
#define PENDING    0
#define DISPATCHED 1
#define REJ_CAP    2
#define REJ_OTHER  3
#define EV_TTL     4
#define EV_CANCEL  5
#define EV_DISP    6
#define EV_OTHER   7
#define IS_REJ(o)  ((o) == REJ_CAP || (o) == REJ_OTHER)

typedef Req {
	/* The state word: SUBMITTED, QUEUED, RELEASED bits and the outcome. */
	bit sub;
	bit queued;
	bit rel;
	byte outc;
	/* dflags (dispatcher-private after [T4]). */
	bit in_priv;	/* RF_IN_PRIVATE: in the flow's ordering structure */
	bit in_ttl;	/* RF_IN_TTL: in the shard's TTL heap */
	bit unlinked;	/* RF_UNLINKED */
	bit cmsg;	/* RF_CANCEL_MSG */
	/* Ghost variables (not in the C code): what the properties count. */
	byte nfinal;	/* successful [T2] CASes */
	byte ncompl;	/* completions delivered */
	byte nleft;	/* account_left() calls: queue capacity given back */
	bit cwon;	/* a flowq_cancel() won [T2] */
	bit gslot;	/* holds the gate slot taken by its dispatch */
};

#include "mpsc.pml"

Req r[NREQ];
Mpsc inbox;		/* the flow's inbox */
Mpsc cancels;		/* the shard's cancel queue */
bit in_doorbell;	/* flow->inbox.announced */
bit bell;		/* the flow is in the shard's doorbell queue */
bit pending;		/* the flow is on the shard's pending list */
byte cancel_wait;	/* flow->cancel_wait */
byte npriv;		/* ghost: requests with in_priv set (bs->backlogged) */
byte gate_free = GATE;	/* free in-flight slots of the capacity gate */
bit stopping;
bit exiting;
byte hosts_left;	/* host calls still running (destroy waits for 0) */
bit disp_exited;

/* P5: the request is not the host's again yet. */
#define LIVE(i) assert(r[i].ncompl == 0)

/* [T2]: PENDING -> o, needing SUBMITTED, and QUEUED iff o is not a
 * rejection. One CAS (core/types.c 157-182). */
inline finalize(i, o, won)
{
#ifndef MUT_PLAIN_FINALIZE
	atomic {
		if
		:: r[i].sub && r[i].queued == !IS_REJ(o) && r[i].outc == PENDING ->
			r[i].outc = o;
			r[i].nfinal++;
			won = 1
		:: else ->
			won = 0
		fi
	}
#else
	/* The mutation: check, then a separate plain store. */
	if
	:: r[i].sub && r[i].queued == !IS_REJ(o) && r[i].outc == PENDING -> won = 1
	:: else -> won = 0
	fi;
	if
	:: won -> r[i].outc = o; r[i].nfinal++
	:: else -> skip
	fi
#endif
	assert(r[i].nfinal <= 1)	/* P1 */
}

inline account_left(i)
{
	r[i].nleft++;
	assert(r[i].nleft == 1)		/* P6 */
}

/* The completion: the last access; the request is the host's from here. */
inline deliver(i)
{
	assert(r[i].outc != PENDING && !IS_REJ(r[i].outc));
	r[i].ncompl++;
	assert(r[i].ncompl == 1)	/* P2 */
}

/* unlink_req(): out of the ordering structure and the TTL heap. */
inline unlink_req(i)
{
	if
	:: r[i].in_priv -> npriv--
	:: else -> skip
	fi;
	r[i].in_priv = 0;
	r[i].in_ttl = 0
}

/* evict() (dispatch.c 614-639): decide o if [T2] lets us, else the request
 * was cancelled: complete it once the cancel message is in too. */
inline evict(i, o)
{
	LIVE(i);
	finalize(i, o, won);
	d_step {
		unlink_req(i);
		if
		:: won ->
			account_left(i);
			deliver(i)
		:: else ->
			r[i].unlinked = 1;
#ifndef MUT_NO_TWO_EVENT
			if
			:: r[i].cmsg ->
				account_left(i);
				deliver(i)
			:: else ->
				cancel_wait++
			fi
#else
			account_left(i);
			deliver(i)
#endif
		fi
	}
}

#define ANY_PRIV (npriv > 0)

/* Some request in the private structures, any of them (any policy's
 * pick): a nondeterministic starting point, then the first one from there.
 * Call only while ANY_PRIV. */
inline pick_priv(v)
{
	atomic {
		assert(ANY_PRIV);
		v = 0;
		do
		:: v + 1 < NREQ -> v++
		:: break
		od;
		do
		:: r[v].in_priv -> break
		:: else -> v = (v + 1) % NREQ
		od
	}
}


proctype Submitter(byte i)
{
	bit won, was;
	byte pos;

	/*
	 * [T1] claim, the stopping check, the capacity reservations and [T4]
	 * as one step: between [T1] and [T4] the word is SUBMITTED+PENDING,
	 * in which every other thread's CAS fails exactly as on IDLE (cancel
	 * and release need QUEUED or DISPATCHED; a double submit fails on
	 * either), and stopping is constant while host calls run (destroy
	 * does not overlap them), so no interleaving is lost.
	 */
	atomic {
		if
		:: !r[i].sub -> r[i].sub = 1
		:: else -> goto done	/* -EBUSY: a double submit changes nothing */
		fi;
		if
		:: stopping ->
			finalize(i, REJ_OTHER, won);
			assert(won);
			goto done
		:: else -> skip
		fi;
		/* A global, band or flow limit may be full (or a displacement
		 * ticket refused): REJECTED_CAPACITY, before [T4]. */
		if
		:: finalize(i, REJ_CAP, won);
			assert(won);
			goto done
		:: skip
		fi;
		/* [T4] mark_queued: only this thread can change the word. */
		assert(r[i].sub && !r[i].queued && r[i].outc == PENDING);
		r[i].queued = 1
	}
	/* flowq_mpsc_enqueue(&f->inbox): [E1] then [E2]; a completion cannot
	 * have run yet (the dispatcher reaches the request only through the
	 * inbox), but a cancel may already have won. */
	atomic {
		LIVE(i);
		mpsc_exchange(inbox, i, pos, was)
	}
	atomic {
		LIVE(i);
		inbox.lk[pos] = 1
	}
	/* From here submit touches only the flow. */
	if
	:: was ->
		/* flowq__flow_ring: [D1] exchange in_doorbell; if it was 0,
		 * the doorbell enqueue (then the kick: wake.pml). */
		atomic {
			if
			:: !in_doorbell -> in_doorbell = 1; bell = 1
			:: else -> skip
			fi
		}
	:: else -> skip
	fi;
done:
	hosts_left--
}

proctype Canceller(byte i)
{
	bit won, was;
	byte pos;

	if
	:: atomic {
		/* The host cancels only while it has not seen the completion
		 * (flowq/types.h, "Ownership"). */
		r[i].ncompl == 0 ->
		finalize(i, EV_CANCEL, won)
	   }
		if
		:: won ->
			r[i].cwon = 1;
			/* Reads req->priv.owner to find the shard. */
			LIVE(i);
			atomic {
				LIVE(i);
				mpsc_exchange(cancels, i, pos, was)
			}
			LIVE(i);
			cancels.lk[pos] = 1
			/* flowq__shard_kick: touches the shard only. */
		:: else -> skip	/* -EALREADY: touches nothing */
		fi
	:: skip	/* never cancels */
	fi;
	hosts_left--
}

/* flowq_release(): [T3], then the gate slot goes back. */
inline release(i, ok)
{
	atomic {
		if
		:: r[i].outc == DISPATCHED && !r[i].rel -> r[i].rel = 1; ok = 1
		:: else -> ok = 0
		fi
	}
	if
	:: ok ->
		atomic {
			assert(r[i].gslot);	/* P4 */
			r[i].gslot = 0;
			gate_free++;
			assert(gate_free <= GATE)
		}
	:: else -> skip
	fi
}

proctype Releaser(byte i)
{
	bit ok;

	if
	:: r[i].ncompl > 0 ->
		/* The completion ran: release it if it was dispatched. */
		release(i, ok);
		assert(ok == (r[i].outc == DISPATCHED));
		/* Hostile: a second release is refused (-EALREADY). */
		if
		:: release(i, ok); assert(!ok)
		:: skip
		fi
	:: skip ->
		/* Hostile: a release at any time (before the completion). */
		if
		:: release(i, ok)
		:: skip
		fi
	fi;
	hosts_left--
}

proctype Dispatcher()
{
	byte i;
	bit won, stop_l, ok, pend, ticket;

	do
	:: /* Runs a round when there is something to do (the wake-up that
	    * guarantees it is wake.pml's subject). */
	   bell || pending || MPSC_CAN_TAKE(cancels) || ANY_PRIV || exiting ->
		stop_l = stopping;
		/* Phase 1: cancel messages. */
		do
		:: atomic {
			MPSC_CAN_TAKE(cancels) ->
			i = cancels.item[cancels.hd];
			cancels.hd++;
			LIVE(i);	/* P5: not completed before its message */
			r[i].cmsg = 1;
			if
			:: r[i].in_priv || r[i].unlinked ->
				if
				:: r[i].unlinked -> cancel_wait--
				:: else -> skip
				fi;
				unlink_req(i);
				assert(r[i].outc == EV_CANCEL);
				account_left(i);
				deliver(i)
			:: else -> skip	/* still in the inbox: the drain completes it */
			fi
		   }
		:: else -> break
		od;
		/* Phases 2 and 3: the doorbell (pop, then [D2]) or the pending
		 * list, each followed by a drain of the inbox. */
		if
		:: atomic {
			bell || pending ->
			bell = 0;
			in_doorbell = 0;	/* [D2] */
			pending = 0
		   }
			do
			:: atomic {
				MPSC_CAN_TAKE(inbox) ->
				i = inbox.item[inbox.hd];
				inbox.hd++;
				LIVE(i);
				pend = (r[i].outc == PENDING)	/* acquire load */
			   }
				if
				:: !pend || stop_l -> evict(i, EV_OTHER)
				:: else ->
					d_step {
						r[i].in_priv = 1;
						r[i].in_ttl = 1;
						npriv++;
						pend = 0
					}
				fi
			:: else -> break
			od;
			pending = !MPSC_EMPTY(inbox)
		:: else -> skip
		fi;
		/* Displacement: a more important submitter may have taken a
		 * ticket against the band (submit.c displace_ticket(), once in
		 * the run); the dispatcher sheds one victim for it. */
		if
		:: !stop_l && !ticket && ANY_PRIV ->
			ticket = 1;
			pick_priv(i);
			evict(i, EV_DISP)
		:: else -> skip
		fi;
		if
		:: stop_l ->
			/* Shutdown: evict everything queued. */
			do
			:: ANY_PRIV ->
				pick_priv(i);
				evict(i, EV_OTHER)
			:: else -> break
			od
		:: else ->
			/* TTL expiry, then dispatch until blocked: any request may
			 * be picked (any policy) and may have expired (the clock:
			 * dispatch.c 955 never dispatches past the expiry). */
			do
			:: !ANY_PRIV -> break
			:: ANY_PRIV ->
				pick_priv(i);
				if
				:: r[i].in_ttl -> evict(i, EV_TTL); goto next
				:: skip
				fi;
				atomic {
					if
					:: gate_free > 0 ->
						gate_free--;
						r[i].gslot = 1;
						ok = 1
					:: else -> ok = 0
					fi
				}
				if
				:: !ok -> break	/* blocked at the gate */
				:: else -> skip
				fi;
				LIVE(i);
				finalize(i, DISPATCHED, won);
				if
				:: won ->
					d_step {
						assert(!r[i].cwon);	/* P3 */
						unlink_req(i);
						account_left(i);
						deliver(i)
					}
				:: else ->
					/* Cancelled meanwhile: the slot goes back. */
					d_step {
						r[i].gslot = 0;
						gate_free++
					}
					evict(i, EV_CANCEL)
				fi;
next:				skip
			od
		fi;
		skip;	/* (a break target may not be a d_step) */
		d_step {
			i = 0; won = 0; stop_l = 0; ok = 0
		}
		/* flowq__dispatcher_main 1325: exit once told to and empty. */
		if
		:: exiting && !bell && !pending && MPSC_EMPTY(cancels) && !ANY_PRIV ->
			break
		:: else -> skip
		fi
	od;
	disp_exited = 1
}

proctype Destroy()
{
	byte i, held;

	/* flowq_engine_destroy() must not race with any other call. */
	hosts_left == 0;
	stopping = 1;
	exiting = 1;
	disp_exited;	/* pthread_join */
	/* The end: every claimed request has exactly one outcome; a queued
	 * one exactly one completion; nothing is pinned or leaked. */
	i = 0;
	do
	:: i < NREQ ->
		if
		:: r[i].sub ->
			assert(r[i].outc != PENDING && r[i].nfinal == 1);	/* P1 */
			if
			:: r[i].queued ->
				assert(!IS_REJ(r[i].outc));
				assert(r[i].ncompl == 1 && r[i].nleft == 1)	/* P2, P6 */
			:: else ->
				assert(IS_REJ(r[i].outc));
				assert(r[i].ncompl == 0 && r[i].nleft == 0)
			fi;
			assert(!r[i].cwon || r[i].outc == EV_CANCEL)	/* P3 */
		:: else ->
			assert(r[i].outc == PENDING && r[i].nfinal == 0)
		fi;
		if
		:: r[i].outc == DISPATCHED -> assert(r[i].rel == !r[i].gslot)	/* P4 */
		:: else -> assert(!r[i].rel && !r[i].gslot)
		fi;
		held = held + r[i].gslot;
		i++
	:: else -> break
	od;
	assert(cancel_wait == 0);	/* P6 */
	assert(MPSC_EMPTY(inbox) && MPSC_EMPTY(cancels));
	/* P4: the gate holds exactly the slots of dispatched, unreleased
	 * requests. */
	assert(gate_free + held == GATE)
}

init {
	byte i;

	atomic {
		/* Request 0 has every actor; requests 1.. only a submitter (they
		 * contend for the inbox, the doorbell and the gate). */
		hosts_left = NREQ + 2;
		run Canceller(0);
		run Releaser(0);
#ifdef DOUBLE_SUBMIT
		hosts_left++;
		run Submitter(0);	/* the double submit */
#endif
		i = 0;
		do
		:: i < NREQ -> run Submitter(i); i++
		:: else -> break
		od;
		run Dispatcher();
		run Destroy()
	}
}
