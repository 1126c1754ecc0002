/*
 * wake.pml: the dispatcher sleep/wake handshakes (core/engine.h, "Wake-up
 * handshake"; DESIGN.md invariant 5, no lost wake-ups):
 *  - submitters and cancellers publish work on a shard's queues (the flow's
 *    inbox and the shard's doorbell, the cancel queue), then kick the
 *    dispatcher, which may be on its way to sleep on its futex word;
 *  - the capacity gate: a dispatcher blocked at the gate parks (gate_wait,
 *    gate_waiters) and sleeps; a host's release, or another dispatcher
 *    giving a slot back, wakes it (flowq__gate_wake);
 *  - with -DPOLLED, shard 0 is run by the host's loop through
 *    flowq_shard_poll() and sleeps in epoll_wait on the shard's eventfd.
 * Checked by tests/model/CMakeLists.txt:
 *
 *   spin -a wake.pml && cc -DSAFETY -o pan pan.c && ./pan -m2000000
 *
 * Properties:
 *  W1 no lost wake-up: the host waits for every completion before it
 *     destroys the engine, and every sleep is a blocking wait with no
 *     timeout (the real futex wait is timed only when a TTL, a retry or a
 *     GC deadline is due; the model takes the worst case, none). A
 *     dispatcher asleep while its shard has work that nobody will announce
 *     any more leaves every process blocked: spin reports an invalid end
 *     state.
 *  W2 exactly one completion per request, and the gate never over- or
 *     under-flows (asserts).
 *  W3 (-DPOLLED) the claim of flowq_shard_poll()'s comment (dispatch.c
 *     1366-1371): a waker that takes the sleep word causes at most one
 *     spurious wake-up of the host's loop: epoll returns that find no work
 *     <= eventfd writes.
 *
 * Bounds (the configurations tests/model/CMakeLists.txt runs): request i
 * goes to shard i % NSHARD, one flow per shard; request 0 also has a
 * canceller (-DNO_CANCEL drops it); one host thread per request releases
 * it after a DISPATCHED completion, then the host destroys the engine.
 *  doorbell: -DNSHARD=1 -DGATE=2: one threaded shard, two submitters on
 *            its one flow (the inbox's exchange/link window, the pending
 *            list, the doorbell's [D1]/[D2]), the cancel queue; the gate
 *            never blocks;
 *  gate:     -DNSHARD=2 -DPREQUEUED: two threaded shards whose request is
 *            already in their private structures, a gate of GATE = 1
 *            slot: a host's release, or the other dispatcher's
 *            gate_untake() after losing [T2] to the cancel, must wake a
 *            shard parked at the gate;
 *  polled:   -DNSHARD=1 -DNREQ=1 -DPOLLED: shard 0 in polled mode, one
 *            submitter and the canceller as wakers (-DENGINE_WAKE adds a
 *            flowq_engine_wake() call); -DNO_W3 leaves out W3, which the
 *            current code does not meet (see PollLoop).
 * Larger bounds (-DNSHARD=2 with submitters, -DNREQ=3) run for minutes.
 *
 * Mutations (each must make spin report an error):
 *  -DMUT_NO_RECHECK    the dispatcher sleeps right after storing
 *                      sleeping = 1, without work_visible() (W1);
 *  -DMUT_NO_W1         the waker's load of the sleep word is not ordered
 *                      after its publication: the store-buffering outcome
 *                      that C11 allows without the [W1] seq_cst fence
 *                      (modelled by loading the sleep word first) (W1);
 *  -DMUT_GATE_NO_PROBE work_visible() does not probe the gate: a release
 *                      that came between the failed gate_take() and
 *                      gate_wait_set() is missed (W1).
 *  -DMUT_SENT_NO_WAKE  the waker that took the word marks it SENT without
 *                      its FUTEX_WAKE: later wakers skip a wake nobody
 *                      made (W1).
 *
 * Memory model. Promela executes one statement at a time, sequentially
 * consistently. The C code gets the same outcomes for these handshakes
 * because every one of them is a store-buffering (Dekker) pair with a
 * seq_cst fence or seq_cst RMW on both sides, which forbids the one non-SC
 * outcome (both sides reading the other's old value):
 *  - dispatcher: atomic_store(sleeping, 1, seq_cst) (dispatch.c 1337), then
 *    atomic_thread_fence(seq_cst) at the top of work_visible() (1229), then
 *    relaxed loads of the queue tails (flowq_mpsc_empty), the stop flags and
 *    the gate's credit (flowq__cap_in_use, relaxed);
 *  - waker: its publication (the doorbell or cancel queue's [E1] exchange,
 *    queues/mpsc.c 110; a capacity release, core/capacity.c [L2]/[S2]),
 *    then [W1] atomic_thread_fence(seq_cst) (dispatch.c 146 in
 *    flowq__shard_kick, 155 in flowq__gate_wake), then relaxed loads of
 *    gate_waiters, gate_wait and sleeping (dispatch.c 127, 156, 160) and
 *    the acq_rel exchange of sleeping (129).
 *  The threaded wake (shard_wake_threaded below) takes the word ASLEEP ->
 *  WOKEN by CAS, makes the FUTEX_WAKE, then WOKEN -> SENT by CAS; a waker
 *  that reads WOKEN wakes too, one that reads SENT or AWAKE does nothing;
 *  only the dispatcher stores AWAKE, after its wait returns. The SENT skip
 *  is what W1 checks here (the mutant MUT_SENT_NO_WAKE marks SENT without
 *  the wake and must fail). The word's generation (new per sleep, so a
 *  slow waker's WOKEN -> SENT cannot land on a later sleep) is modelled
 *  with GENS generations, default 1: it only bounds wake-up latency, which
 *  W1 does not express (a taker that has not woken yet always will); a run
 *  with -DGENS=4 (doorbell configuration) was stopped after 46 million
 *  states without an error, not exhaustive (not run by CTest). Also latency only: with the old 1 -> 0 rule
 *  a waker preempted between its exchange and its FUTEX_WAKE kept the
 *  dispatcher asleep while later wakers, reading 0, did nothing
 *  (tests/unit/test_fault.c wake_survives_a_stalled_waker).
 *  By C11 [atomics.order] (the fence-fence rule): if the dispatcher's fence
 *  precedes the waker's in the single total order S, the waker's loads see
 *  sleeping = 1 (or a later value: 0 from another waker that then does the
 *  wake itself, or from the dispatcher being awake); otherwise the
 *  dispatcher's loads see the waker's publication. The gate side adds
 *  gate_wait = 1 (relaxed) and the seq_cst fetch_add of gate_waiters
 *  (dispatch.c 165-174), both sequenced before the dispatcher's fence, so
 *  the same rule makes the releaser see them. Dropping either fence allows
 *  the outcome -DMUT_NO_W1 models.
 *  The futex is modelled by its contract: FUTEX_WAIT atomically checks that
 *  the word still holds 1 and queues the thread; FUTEX_WAKE dequeues a
 *  queued waiter (a wake before the wait is lost, which is why the value
 *  check matters). The eventfd (-DPOLLED) is a counter that a write raises
 *  and a read clears; level-triggered epoll_wait returns while it is
 *  non-zero.
 *  The capacity gate is one atomic counter here; core/capacity.c's per-CPU
 *  slots are abstracted (see the note at gate_take below).
 *
 * Map from the Promela below to the C code (line numbers of this commit):
 *  Producer      core/submit.c flowq_submit 265-266: flowq_mpsc_enqueue
 *                (queues/mpsc.c 99-114: [E1] 110, [E2] 112), then
 *                core/registry.c flowq__flow_ring 392-402 ([D1] 397,
 *                doorbell enqueue 400, kick 401)
 *  Canceller     core/submit.c flowq_cancel 273-290
 *  kick / wake   core/dispatch.c flowq__shard_kick 141-148,
 *                flowq__shard_wake 124-139, flowq__gate_wake 150-163
 *  Host          core/submit.c flowq_release 292-305 (cap release, then
 *                flowq__gate_wake)
 *  Dispatcher    core/dispatch.c flowq__dispatcher_main 1315-1356 (run,
 *                exit check 1325, n > 0 1327, pending 1329-1334, idle_spin
 *                omitted: it only returns early when it sees work, arm
 *                1337, work_visible 1225-1258, futex wait 1351, disarm 1352)
 *   run()        flowq__shard_run 1160-1221: gate_wait_clear 1169 (176-183),
 *                process_cancels 643-671, process_doorbell 756-779 ([D2]
 *                770), drain_inbox 688-754 (pending_set 751),
 *                process_pending 781-801, dispatch 919-990 (gate_take 964,
 *                [T2] 970, gate_untake 973 -> 907-915), gate_wait_set
 *                1207-1208 (165-174)
 *  PollLoop      core/dispatch.c flowq_shard_poll 1358-1403 and a host loop
 *                around it (epoll_wait on flowq_shard_fd)
 *  Destroy       core/engine.c flowq_engine_destroy 314-336 (threaded)
 */

#ifndef NSHARD
#define NSHARD 2
#endif
#ifndef NREQ
#define NREQ 2
#endif
#ifndef GATE
#define GATE 1
#endif
#define QN (NREQ + 1)
#define SH(i) ((i) % NSHARD)

/* Request outcome, simplified: [T2] as a CAS between DISP and CANC. */
#define PEND 0
#define DISP 1
#define CANC 2

#include "mpsc.pml"

/* Per request (the dispatcher-private dflags are locals of the
 * Dispatcher: DISPATCHER_PRIVATE below). */
byte dec[NREQ];		/* the state word's outcome */
byte ncompl[NREQ];	/* ghost: completions delivered */

/* Per flow (= per shard here). */
Mpsc inbox[NSHARD];
bit in_doorbell[NSHARD];

/* Per shard. */
Mpsc doorbell[NSHARD];	/* items: flow ids */
Mpsc cancels[NSHARD];	/* items: request ids */
/* The futex word: polled shard 0 uses 0 and 1; a threaded shard, the
 * sleep generation (a multiple of 4, mod GENS * 4) plus the state in the low
 * two bits: 0 awake, 1 asleep, 2 woken, 3 wake sent (engine.h). */
byte sleeping[NSHARD];
bit fwait[NSHARD];	/* the dispatcher is queued on the futex */
bit gate_wait[NSHARD];

/* Engine. */
byte gate_free = GATE;
byte gate_waiters;
bit exiting;
byte ndone;		/* ghost: completions delivered, all requests */
byte hosts_left;	/* host threads still running */

#ifdef POLLED
byte efd;		/* shard 0's eventfd counter */
bit poll_armed;
byte ewrites;		/* ghost: eventfd writes */
byte empty_wakes;	/* ghost: epoll returns that found no work */
#endif

/* Dispatcher-private state, a local of each dispatcher (so that spin's
 * partial-order reduction knows no other process reads it). */
#define DISPATCHER_PRIVATE \
	bit in_priv[NREQ];	/* RF_IN_PRIVATE */ \
	bit cmsg[NREQ];		/* RF_CANCEL_MSG */ \
	bit unl[NREQ];		/* RF_UNLINKED */ \
	byte npriv;		/* requests in the private structures */ \
	bit pending;		/* the flow is on s->pending */ \
	bit blocked		/* s->blocked */

#ifndef GENS
#define GENS 1
#endif
#define ST(v) ((v) & 3)

/* flowq__shard_wake(), threaded: ASLEEP -> WOKEN; on WOKEN the FUTEX_WAKE,
 * then WOKEN -> SENT by CAS (the whole word, generation included). AWAKE
 * and SENT: nothing. The C code's relaxed load and its CAS loop are one
 * step here: what a waker does next depends only on the value its CAS
 * (or, for a value other than ASLEEP, its load) read, so the load's own
 * moment adds interleavings and no outcome. The mutation MUT_SENT_NO_WAKE
 * marks SENT without the FUTEX_WAKE: a later waker then relies on a wake
 * nobody made (W1 must fail). */
inline shard_wake_threaded(ws, ww)
{
	atomic {
		ww = sleeping[ws];
		if
		:: ST(ww) == 1 -> ww = ww + 1; sleeping[ws] = ww
		:: else -> skip
		fi
	}
	if
	:: ST(ww) == 2 ->
#ifndef MUT_SENT_NO_WAKE
		fwait[ws] = 0;	/* FUTEX_WAKE */
#endif
		atomic {
			if
			:: sleeping[ws] == ww -> sleeping[ws] = ww + 1
			:: else -> skip
			fi
		}
	:: else -> skip
	fi
}

/* flowq__shard_wake(): polled shard 0 takes the word 1 -> 0 by exchange
 * and the taker writes the eventfd; threaded shards above. */
inline shard_wake(ws, ww)
{
#ifdef POLLED
	if
	:: ws == 0 ->
		if
		:: sleeping[ws] == 0 -> skip
		:: else ->
			atomic {
				ww = sleeping[ws];
				sleeping[ws] = 0
			}
			if
			:: ww ->
				d_step {
					efd++;
					ewrites++
				}
			:: else -> skip
			fi
		fi
	:: else -> shard_wake_threaded(ws, ww)
	fi
#else
	shard_wake_threaded(ws, ww)
#endif
}

/* flowq__gate_wake(): [W1], then the waiter count, then each waiting
 * shard. */
inline gate_wake(gk, gw)
{
	if
	:: gate_waiters == 0 -> skip
	:: else ->
		gk = 0;
		do
		:: gk < NSHARD ->
			if
			:: gate_wait[gk] -> shard_wake(gk, gw)
			:: else -> skip
			fi;
			gk++
		:: else -> break
		od;
		skip
	fi
}

inline complete(ci)
{
	ncompl[ci]++;
	assert(ncompl[ci] == 1);		/* W2 */
	ndone++
}

/* flowq_mpsc_enqueue on shard s's queue q, then flowq__shard_kick(s). The
 * MUT_NO_W1 mutation loads the sleep word before the publication is
 * visible (the outcome the missing fence would allow). */
inline publish_and_kick(pq, px, ps, ppos, pwas, pw)
{
#ifdef MUT_NO_W1
	pw = sleeping[ps];
#endif
	atomic { mpsc_exchange(pq, px, ppos, pwas) }	/* [E1] */
	pq.lk[ppos] = 1;					/* [E2] */
	/* [W1] atomic_thread_fence(seq_cst): nothing to do under SC. */
#ifdef MUT_NO_W1
	if
	:: ST(pw) == 0 -> skip
	:: else -> shard_wake(ps, pw)
	fi
#else
	shard_wake(ps, pw)
#endif
}

proctype Producer(byte i)
{
	byte s = SH(i), pos;
	bit was;
	byte w;

	/* flowq_mpsc_enqueue(&f->inbox): [E1], [E2]. */
	atomic { mpsc_exchange(inbox[s], i, pos, was) }
	inbox[s].lk[pos] = 1;
	if
	:: was ->
		/* flowq__flow_ring: [D1]. */
		atomic {
			w = in_doorbell[s];
			in_doorbell[s] = 1
		}
		if
		:: !w -> publish_and_kick(doorbell[s], s, s, pos, was, w)
		:: else -> skip
		fi
	:: else -> skip
	fi;
	hosts_left--
}

proctype Canceller()
{
	byte pos;
	bit was, won;
	byte w;

	/* flowq_cancel(req 0): [T2], then the message and the kick. */
	atomic {
		if
		:: dec[0] == PEND && ncompl[0] == 0 -> dec[0] = CANC; won = 1
		:: else -> won = 0
		fi
	}
	if
	:: won -> publish_and_kick(cancels[SH(0)], 0, SH(0), pos, was, w)
	:: else -> skip
	fi;
	hosts_left--
}

/* The host thread of request i: after a DISPATCHED completion, release:
 * the capacity goes back, then flowq__gate_wake(). */
proctype Host(byte i)
{
	byte k;
	byte w;

	ncompl[i] > 0;
	if
	:: dec[i] == DISP ->
		d_step {
			gate_free++;
			assert(gate_free <= GATE)	/* W2 */
		}
		gate_wake(k, w)
	:: else -> skip
	fi;
	hosts_left--
}

/* drain_inbox(): the inbox into the private structures; a request whose
 * cancel won is unlinked and completed once its message is in. */
inline drain(ds, di, dn)
{
	do
	:: atomic {
		MPSC_CAN_TAKE(inbox[ds]) ->
		di = inbox[ds].item[inbox[ds].hd];
		inbox[ds].hd++;
		if
		:: dec[di] != PEND ->
			unl[di] = 1;
			if
			:: cmsg[di] -> complete(di); dn++
			:: else -> skip
			fi
		:: else ->
			in_priv[di] = 1;
			npriv++
		fi
	   }
	:: else -> break
	od;
	pending = !MPSC_EMPTY(inbox[ds])	/* pending_set */
}

/*
 * gate_take(): one in-flight slot. Note on the abstraction: the real gate
 * is core/capacity.c's pool with per-CPU slots. A release deposits its
 * credit (one RMW, or a spill whose CAS and fetch_add both come before the
 * releaser's [W1]), so the probe after the dispatcher's fence sees it. A
 * concurrent reserve that *fails* after holding credit for a moment (a
 * steal, a request taken back when the bytes do not fit) sets "moved" and
 * wakes the gate waiters (dispatch.c 893-899). Not modelled: credit held
 * for a moment by a reserve that *succeeds* with more than it needs (a
 * steal's surplus between its fetch_and [R3] and its deposit [R3d],
 * capacity.c 280-287; a chunk refill between [R2] and [R2d]). A shard
 * whose reserve and probe fall in that window sleeps although credit is
 * about to be free, until the next gate wake-up (any release) or its
 * futex timeout; the model's atomic counter cannot show it.
 */
inline gate_take(tok)
{
	atomic {
		if
		:: gate_free > 0 -> gate_free--; tok = 1
		:: else -> tok = 0
		fi
	}
}

/* flowq__shard_run(): one round; n = outcomes decided. */
inline shard_run(rs, ri, rn, rok, rk, rw)
{
	rn = 0;
	/* gate_wait_clear(). */
	if
	:: gate_wait[rs] ->
		gate_wait[rs] = 0;	/* relaxed store */
		gate_waiters--		/* relaxed RMW */
	:: else -> skip
	fi;
	/* Phase 1: cancel messages. */
	do
	:: atomic {
		MPSC_CAN_TAKE(cancels[rs]) ->
		ri = cancels[rs].item[cancels[rs].hd];
		cancels[rs].hd++;
		cmsg[ri] = 1;
		if
		:: in_priv[ri] || unl[ri] ->
			if
			:: in_priv[ri] -> in_priv[ri] = 0; npriv--
			:: else -> skip
			fi;
			complete(ri);
			rn++
		:: else -> skip
		fi
	   }
	:: else -> break
	od;
	/* Phase 2: the doorbell: pop the flow, [D2], drain. */
	do
	:: atomic {
		MPSC_CAN_TAKE(doorbell[rs]) ->
		doorbell[rs].hd++
	   }
		in_doorbell[rs] = 0;	/* [D2] */
		drain(rs, ri, rn)
	:: else -> break
	od;
	/* Phase 3: pending. */
	if
	:: pending ->
		pending = 0;
		drain(rs, ri, rn)
	:: else -> skip
	fi;
	/* Phase 5: dispatch until blocked. Each atomic below holds one
	 * access to shared state plus dispatcher-private bookkeeping. */
	blocked = 0;
	do
	:: npriv > 0 ->
		/* The policy's pick (private), then gate_take(). */
		atomic {
			ri = 0;
			do
			:: !in_priv[ri] || SH(ri) != rs -> ri++
			:: else -> break
			od;
			gate_take(rok)
		}
		if
		:: !rok -> blocked = 1; break
		:: else -> skip
		fi;
		/* [T2] DISPATCHED; the winner's completion runs at once. */
		atomic {
			if
			:: dec[ri] == PEND ->
				dec[ri] = DISP;
				in_priv[ri] = 0;
				npriv--;
				complete(ri);
				rn++;
				rok = 1
			:: else -> rok = 0
			fi
		}
		if
		:: rok -> skip
		:: else ->
			/* Cancelled meanwhile (the failed CAS read CANC, which
			 * never changes again, so it moves next to this step):
			 * gate_untake() gives the slot back and wakes the gate's
			 * waiters. */
			d_step {
				gate_free++;
				assert(gate_free <= GATE)
			}
			gate_wake(rk, rw);
			d_step {
				in_priv[ri] = 0;
				npriv--;
				unl[ri] = 1;
				if
				:: cmsg[ri] -> complete(ri); rn++
				:: else -> skip
				fi
			}
		fi
	:: else -> break
	od;
	/* gate_wait_set(): relaxed store, then the seq_cst RMW. */
	if
	:: blocked && !gate_wait[rs] ->
		gate_wait[rs] = 1;
		gate_waiters++
	:: else -> skip
	fi
}

/* work_visible(): after the fence, each source of work, one load at a
 * time, in the C code's order. */
inline work_visible(vs, vv)
{
	vv = 0;
	if
	:: !MPSC_EMPTY(doorbell[vs]) -> vv = 1
	:: else -> skip
	fi;
	if
	:: !vv && !MPSC_EMPTY(cancels[vs]) -> vv = 1
	:: else -> skip
	fi;
	if
	:: !vv && exiting -> vv = 1
	:: else -> skip
	fi;
#ifndef MUT_GATE_NO_PROBE
	if
	:: !vv && blocked && gate_free > 0 -> vv = 1	/* the gate probe */
	:: else -> skip
	fi
#endif
}

#define SHARD_EMPTY(s) (MPSC_EMPTY(doorbell[s]) && MPSC_EMPTY(cancels[s]) && \
			!pending && npriv == 0)

proctype Dispatcher(byte s)
{
	byte i, n, k, gen, w;
	bit ok, vis;
	DISPATCHER_PRIVATE;

#ifdef PREQUEUED
	/* The shard's requests are already drained into its private
	 * structures (their submits returned before the run). */
	d_step {
		i = 0;
		do
		:: i < NREQ ->
			if
			:: SH(i) == s -> in_priv[i] = 1; npriv++
			:: else -> skip
			fi;
			i++
		:: else -> break
		od;
		i = 0
	}
#endif
	do
	:: true ->
		shard_run(s, i, n, ok, k, w);
		if
		:: exiting && SHARD_EMPTY(s) -> break
		:: else -> skip
		fi;
		if
		:: n > 0 || pending -> goto again
		:: else -> skip
		fi;
		gen = (gen + 4) % (GENS * 4);	/* a new generation per sleep */
		sleeping[s] = gen + 1;	/* seq_cst store */
#ifndef MUT_NO_RECHECK
		work_visible(s, vis);
		if
		:: vis -> sleeping[s] = gen; goto again
		:: else -> skip
		fi;
#endif
		/* FUTEX_WAIT(&sleeping, gen | 1): sleeps only if the word
		 * still holds it. */
		atomic {
			if
			:: sleeping[s] == gen + 1 -> fwait[s] = 1
			:: else -> skip
			fi
		}
		!fwait[s];
		sleeping[s] = gen;
again:
		skip;
		d_step {
			i = 0; n = 0; ok = 0; w = 0; vis = 0; k = 0
		}
	od
}

#ifdef POLLED
/*
 * Shard 0 in polled mode: the host's loop calls flowq_shard_poll() and
 * sleeps in epoll_wait on the shard's eventfd (flowq_shard_fd() was asked
 * for, so polls arm it). Completions run on this thread.
 *
 * Finding, fixed in the C code (the mutant -DMUT_CLEAR_WHEN_TAKEN keeps the
 * old rule and must fail): flowq_shard_poll() read the eventfd only when
 * the last poll armed it and a waker took the word since
 * (poll_armed && !was). (a) Waker W takes sleeping
 * 1 -> 0 (dispatch.c 129) while the host's loop polls for another reason;
 * poll P1 sees was == 0, reads the fd (empty: W has not written yet),
 * runs, arms (1390-1391); W now writes the fd (134). epoll returns; P2 sees
 * was == 1 (nobody took the word since P1 armed it), so it does not read;
 * it finds nothing and arms again; epoll returns at once (the fd is still
 * readable), and so on: the loop spins until some waker takes the word
 * again. (b) flowq_engine_wake() writes the fd without taking the word
 * (engine.c 57-63): the same spin follows at once. The fix, now the code:
 * read the fd after every poll that armed it (one read(2), EAGAIN when
 * clean, on the first poll after an idle one).
 */
proctype PollLoop()
{
	byte i, n, k, w;
	bit ok, vis, now, woke;
	DISPATCHER_PRIVATE;

	do
	:: ndone == NREQ -> break	/* the host's own requests are all done */
	:: else ->
		/* flowq_shard_poll(): take the sleep word back; clear the
		 * eventfd if the last poll armed it and a waker took it. */
		atomic {
			w = sleeping[0];
			sleeping[0] = 0
		}
#ifdef MUT_CLEAR_WHEN_TAKEN
		if
		:: poll_armed && !w -> efd = 0	/* the old rule: must fail */
		:: else -> skip
		fi;
#else
		if
		:: poll_armed -> efd = 0	/* read(efd) */
		:: else -> skip
		fi;
#endif
		poll_armed = 0;
		shard_run(0, i, n, ok, k, w);
		if
		:: woke && n == 0 -> empty_wakes++
		:: else -> skip
		fi;
		woke = 0;
		sleeping[0] = 1;	/* seq_cst store */
		poll_armed = 1;
		now = 0;
#ifndef MUT_NO_RECHECK
		work_visible(0, vis);
#endif
		if
		:: vis || pending ->
			atomic {
				w = sleeping[0];
				sleeping[0] = 0
			}
			if
			:: w -> poll_armed = 0
			:: else -> skip
			fi;
			now = 1
		:: else -> skip
		fi;
#ifndef NO_W3
		/* W3: at most one spurious wake-up per eventfd write. */
		assert(empty_wakes <= ewrites);
#endif
		if
		:: now -> skip	/* *r_next_deadline = now: poll again */
		:: else ->
			/* epoll_wait(): returns while the eventfd is readable;
			 * the loop also ends once all its requests are done. */
			if
			:: efd > 0 -> woke = 1
			:: ndone == NREQ -> skip
			fi
		fi;
		skip;
		d_step {
			i = 0; n = 0; ok = 0; vis = 0; k = 0
		}
	od
}

#ifdef ENGINE_WAKE
/* flowq_engine_wake() in polled mode: an eventfd write (engine.c 57-63). */
proctype EngineWake()
{
	d_step {
		efd++;
		ewrites++
	}
}
#endif
#endif

/* The host waits for every completion and release, then destroys the
 * engine: exiting, then a fenced wake of every shard (engine.c 320-326). */
proctype Destroy()
{
	byte k;
	byte w;

	hosts_left == 0 && ndone == NREQ;
	exiting = 1;
	k = 0;
	do
	:: k < NSHARD -> shard_wake(k, w); k++
	:: else -> break
	od;
	assert(gate_free == GATE)	/* W2: every dispatched request released */
}

init {
	byte i;

	atomic {
		hosts_left = 2 * NREQ + 1;
		i = 0;
		do
		:: i < NREQ ->
#ifndef PREQUEUED
			run Producer(i);
#else
			hosts_left--;
#endif
			run Host(i);
			i++
		:: else -> break
		od;
#ifndef NO_CANCEL
		run Canceller();
#else
		hosts_left--;
#endif
#ifdef POLLED
		run PollLoop();
#ifdef ENGINE_WAKE
		run EngineWake();
#endif
		i = 1;
#else
		i = 0;
#endif
		do
		:: i < NSHARD -> run Dispatcher(i); i++
		:: else -> break
		od;
		run Destroy()
	}
}
