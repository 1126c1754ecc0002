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
 *     1625-1643): a waker's eventfd write causes at most one spurious
 *     wake-up of the host's loop: epoll returns that find no work <=
 *     eventfd writes.
 *  S1 (-DSTALL) a waker stalled right after taking the sleep word (fault
 *     point W_TAKEN, before its FUTEX_WAKE or eventfd write) holds back no
 *     other waker's wake-up: the first waker to get there may be held
 *     until nothing else in the system can move (Promela's timeout: the
 *     longest preemption a finite run can show); then, if any wake of that
 *     shard began after it took the word, the shard must have no visible
 *     work (its doorbell and cancel queue empty, no gate credit it waits
 *     for): the dispatcher or poller was woken and took it. It then resumes,
 *     so W1 and W2 are checked on the rest of the run as usual. (A stalled
 *     waker with no wake after it delays its own item, which no rule can
 *     avoid without a timeout; S1 does not ask for that.)
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
 *            flowq_engine_wake() call); -DNO_W3 leaves out W3's ghost
 *            counters (fewer states; the wake_polled_clear runs check W3);
 *            wake_polled adds -DSTALL (S1);
 *  stall:    -DNSHARD=1 -DNREQ=1 -DGATE=2 -DSTALL: one threaded shard, one
 *            submitter and the canceller, either may stall (S1);
 *            wake_stall_mut_no_gen runs the doorbell configuration (three
 *            wakers, the fewest a late SENT needs to matter) with -DSTALL.
 * Larger bounds (-DNSHARD=2 with submitters, -DNREQ=3, the doorbell with
 * -DSTALL) run for minutes; README gives the ones run by hand.
 *
 * Mutations (each must make spin report an error):
 *  -DMUT_NO_RECHECK    the dispatcher sleeps right after storing
 *                      sleeping = ASLEEP, without work_visible() (W1);
 *  -DMUT_NO_W1         the waker's load of the sleep word is not ordered
 *                      after its publication: the store-buffering outcome
 *                      that C11 allows without the [W1] seq_cst fence
 *                      (modelled by loading the sleep word first) (W1);
 *  -DMUT_GATE_NO_PROBE work_visible() does not probe the gate: a release
 *                      that came between the failed gate_take() and
 *                      gate_wait_set() is missed (W1);
 *  -DMUT_FIRST_WAKER_ONLY the old wake rule: the first waker exchanges the
 *                      word to 0 and alone wakes; a later waker reads 0 and
 *                      leaves the wake to it (S1, threaded and polled);
 *  -DMUT_CLEAR_WHEN_TAKEN the old eventfd clear rule (W3; see PollLoop);
 *  -DMUT_SENT_NO_WAKE  the waker that took the word marks it SENT without
 *                      its wake (FUTEX_WAKE; polled, the eventfd write):
 *                      later wakers skip a wake nobody made (W1, threaded
 *                      and polled);
 *  -DMUT_NO_GEN        the sleep word without its generation: a slow
 *                      waker's WOKEN -> SENT lands on a later sleep's WOKEN
 *                      whose taker is stalled before its wake, and a third
 *                      waker reads SENT and does nothing (S1).
 *
 * Memory model. Promela executes one statement at a time, sequentially
 * consistently. The C code gets the same outcomes for these handshakes
 * because every one of them is a store-buffering (Dekker) pair with a
 * seq_cst fence or seq_cst RMW on both sides, which forbids the one non-SC
 * outcome (both sides reading the other's old value):
 *  - dispatcher: atomic_store(sleeping, gen | ASLEEP, seq_cst) (dispatch.c
 *    1590-1591; polled, flowq_shard_poll 1665-1666), then
 *    atomic_thread_fence(seq_cst) at the top of work_visible() (1420), then
 *    relaxed loads of the queue
 *    tails (flowq_mpsc_empty), the stop flags and the gate's credit
 *    (flowq__cap_in_use, relaxed);
 *  - waker: its publication (the doorbell or cancel queue's [E1] exchange,
 *    queues/mpsc.c 110; a capacity release, core/capacity.c [L2]/[S2]),
 *    then [W1] atomic_thread_fence(seq_cst) (dispatch.c 207 in
 *    flowq__shard_kick, 216 in flowq__gate_wake), then relaxed loads of
 *    gate_waiters, gate_wait and sleeping (dispatch.c 217, 221, 166) and
 *    the acq_rel CAS of sleeping ASLEEP -> WOKEN (174-183).
 *  The wake rule (issue 6; engine.h, FLOWQ__SLEEP_*), in both modes: the
 *  word's low two bits are its state (AWAKE 0, ASLEEP 1, WOKEN 2, SENT 3),
 *  the bits above its generation, new per sleep (polled, per armed poll).
 *  A waker that reads ASLEEP takes the word to WOKEN (CAS, same
 *  generation); every waker that ends up seeing WOKEN (its CAS won, or it
 *  read WOKEN) makes the wake itself (FUTEX_WAKE; polled, an eventfd
 *  write), then takes WOKEN -> SENT by a relaxed CAS on the exact word it
 *  saw (it fails harmlessly); a waker that reads SENT or AWAKE does
 *  nothing; only the dispatcher stores AWAKE, after its wait returns
 *  (polled: only flowq_shard_poll(), at its start, or when its re-check
 *  takes the word back). FUTEX_WAIT on gen | ASLEEP fails for any other
 *  word; the extra wakes are at worst spurious (the dispatcher re-checks;
 *  polled, the next armed poll reads the fd). SENT is a wake that has
 *  returned for this sleep: W1 checks that skipping on it loses nothing
 *  (the mutant -DMUT_SENT_NO_WAKE must fail). The generation keeps a slow
 *  waker's WOKEN -> SENT from landing on a later sleep's WOKEN, whose
 *  taker may not have woken yet: only S1 can see that (a latency, W1
 *  holds without it), and only with three wakers; the model keeps the
 *  generation exactly (see wsnap below; -DMUT_NO_GEN drops it and must
 *  fail). The old rule (-DMUT_FIRST_WAKER_ONLY: ASLEEP to AWAKE by the
 *  first waker, and only it wakes) lost no wake-up (W1 holds), but a
 *  waker preempted between its exchange and its wake kept the dispatcher
 *  asleep while later wakers, reading 0, did nothing: S1 fails
 *  (tests/unit/test_fault.c wake_survives_a_stalled_waker and
 *  polled_wake_survives_a_stalled_waker).
 *  By C11 [atomics.order] (the fence-fence rule): if the dispatcher's fence
 *  precedes the waker's in the single total order S, the waker's loads see
 *  sleeping = gen | ASLEEP (or a later value: WOKEN from another waker, and
 *  it wakes too; SENT, a wake that has returned after the word left
 *  ASLEEP; or AWAKE, stored by the dispatcher once awake, whose next round
 *  or re-check sees the work); otherwise the dispatcher's loads see the
 *  waker's publication. The gate side adds gate_wait = 1 (relaxed) and the
 *  seq_cst fetch_add of gate_waiters (dispatch.c 227-235: 231, 234), both
 *  sequenced before the dispatcher's fence, so
 *  the same rule makes the releaser see them. Dropping either fence allows
 *  the outcome -DMUT_NO_W1 models.
 *  The futex is modelled by its contract: FUTEX_WAIT atomically checks that
 *  the word still holds gen | ASLEEP and queues the thread; FUTEX_WAKE dequeues a
 *  queued waiter (a wake before the wait is lost, which is why the value
 *  check matters). The eventfd (-DPOLLED) is a counter that a write raises
 *  and a read clears; level-triggered epoll_wait returns while it is
 *  non-zero.
 *  The capacity gate is one atomic counter here; core/capacity.c's per-CPU
 *  slots are abstracted (see the note at gate_take below).
 *
 * Map from the Promela below to the C code (line numbers of this commit):
 *  Producer      core/submit.c flowq_submit 305-306: flowq_mpsc_enqueue
 *                (queues/mpsc.c 99-114: [E1] 110, [E2] 112), then
 *                core/registry.c flowq__flow_ring 669-679 ([D1] 674,
 *                doorbell enqueue 677, kick 678)
 *  Canceller     core/submit.c flowq_cancel 314-340 ([T2] 322, cancel
 *                enqueue 337, kick 338)
 *  shard_wake    core/dispatch.c flowq__shard_wake 164-200 (load 166,
 *                AWAKE return 168-169, CAS ASLEEP -> WOKEN 174-183, SENT
 *                or AWAKE return 184-185, W_TAKEN 186 = w_taken, eventfd
 *                write 187-191 and FUTEX_WAKE 193 = wake_one, CAS WOKEN ->
 *                SENT 197-199)
 *  kick / gate   flowq__shard_kick 203-209, flowq__gate_wake 212-224
 *  Host          core/submit.c flowq_release 343-374 (cap release 367,
 *                then flowq__gate_wake 368, 372)
 *  Dispatcher    core/dispatch.c flowq__dispatcher_main 1562-1616 (run
 *                1570, exit check 1576, n > 0 1578, pending 1580-1585,
 *                idle_spin 1586 omitted: it only returns early when it sees
 *                work, new generation 1589 = new_gen, arm 1590-1591,
 *                work_visible 1417-1454 and AWAKE 1593-1596, futex wait
 *                1607, AWAKE 1610-1611)
 *   run()        flowq__shard_run 1340-1412: gate_wait_clear 1349
 *                (238-244), process_cancels 785-812, process_doorbell
 *                898-920 ([D2] 910), drain_inbox 830-895 (pending_set
 *                892), process_pending 923-942, dispatch 1069-1145
 *                (gate_take 1113, [T2] 1120, gate_untake 1122 ->
 *                1057-1064), gate_wait_set 1399 (227-235)
 *  PollLoop      core/dispatch.c flowq_shard_poll 1619-1682 (take the word
 *                back, AWAKE, 1644-1645, read the fd 1646-1650, run 1654,
 *                new generation 1664 = new_gen, arm 1665-1667, re-check
 *                and take back 1668-1676) and a host loop around it
 *                (epoll_wait on flowq_shard_fd)
 *  EngineWake    core/engine.c flowq_engine_wake 53-70 (write 63)
 *  Destroy       core/engine.c flowq_engine_destroy 329-355 (threaded:
 *                exiting 336, fenced wakes 337-340)
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
/* The sleep word (futex word; polled, the eventfd's): the generation (a
 * multiple of 4, mod GENS * 4: new per sleep or armed poll) plus the state
 * in the low two bits: AWAKE 0, ASLEEP 1, WOKEN 2, SENT 3 (engine.h). */
byte sleeping[NSHARD];
bit fwait[NSHARD];	/* the dispatcher is queued on the futex */
bit gate_wait[NSHARD];

/* Engine. */
byte gate_free = GATE;
byte gate_waiters;
bit exiting;
byte ndone;		/* ghost: completions delivered, all requests */
byte hosts_left;	/* host threads still running */

#ifdef STALL
bit stall_used;		/* one waker may stall, once per run */
bit stalled;		/* it is held at W_TAKEN now */
byte stall_s;		/* on this shard */
bit late_kick;		/* ghost: a wake of stall_s began while it was held */
#endif

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

#define AWAKE 0
#define ASLEEP 1
#define WOKEN 2
#define SENT 3

/* The generation, exactly and canonically. The C code's is new per sleep
 * (or armed poll), and the word's generation is only ever compared by a
 * waker's WOKEN -> SENT CAS (the ASLEEP -> WOKEN CAS, merged with its load
 * below, the FUTEX_WAIT and the poller's take-back always see the current
 * one): that CAS succeeds only within the sleep whose WOKEN it saw. So the
 * word holds the state alone, and wsnap[waker] says whether a waker's
 * pending WOKEN -> SENT CAS still holds the current generation (shard + 1)
 * or not (0: none pending, or the shard slept again since: the CAS must
 * fail). A new sleep makes every pending snapshot of its shard stale:
 * new_gen(). Two stale snapshots behave alike, so runs that differ only in
 * old generations merge. -DMUT_NO_GEN: no generation (a late CAS can mark a
 * later sleep's WOKEN as SENT before that sleep's taker woke; S1 must
 * fail). */
#define NPID 12
byte wsnap[NPID];
inline new_gen(ns, nk)
{
#ifndef MUT_NO_GEN
	d_step {
		nk = 0;
		do
		:: nk < NPID ->
			if
			:: wsnap[nk] == ns + 1 -> wsnap[nk] = 0
			:: else -> skip
			fi;
			nk++
		:: else -> break
		od;
		nk = 0
	}
#else
	skip
#endif
}

/* Work the shard's dispatcher would find if it ran now (S1). */
#define SHARD_WORK(s) (!MPSC_EMPTY(doorbell[s]) || !MPSC_EMPTY(cancels[s]) || \
		       (gate_wait[s] && gate_free > 0))

/* W_TAKEN, with -DSTALL: the first waker to get here may be held until
 * nothing else in the system can move (timeout), the longest preemption a
 * finite run can show; S1 is checked there, then it resumes. */
#ifdef STALL
#define STALL_NOTE(ns) \
	if \
	:: stalled && stall_s == ns -> late_kick = 1 \
	:: else -> skip \
	fi
#define W_TAKEN(ts) w_taken(ts);
inline w_taken(ts)
{
	if
	:: !stall_used ->
		atomic {
			stall_used = 1;
			stalled = 1;
			stall_s = ts
		}
		timeout;
		/* S1: a wake that began after this waker took the word was
		 * not left to it: the shard's dispatcher (or poller) took
		 * the work that was there. */
		assert(!late_kick || !SHARD_WORK(ts));
		stalled = 0
	:: true -> skip
	fi
}
#else
#define STALL_NOTE(ns) skip
#define W_TAKEN(ts)	/* nothing: no extra step */
#endif

/* The wake itself: the futex, or (polled, shard 0) the eventfd. */
inline wake_one(ws)
{
#ifdef POLLED
	if
	:: ws == 0 ->
		d_step {
			efd++;
			ewrites++
		}
	:: else -> fwait[ws] = 0	/* FUTEX_WAKE */
	fi
#else
	fwait[ws] = 0	/* FUTEX_WAKE */
#endif
}

/* flowq__shard_wake(): ASLEEP -> WOKEN by CAS; every waker that ends up
 * seeing WOKEN (its CAS won, or it read WOKEN) makes the wake itself (the
 * FUTEX_WAKE, or the eventfd write), then WOKEN -> SENT by a CAS on the
 * whole word it saw (generation included; it fails harmlessly once another
 * waker set SENT or the dispatcher stored AWAKE); a waker that reads AWAKE
 * or SENT does nothing. The C code's relaxed load and its CAS loop are one
 * step here: what a waker does next depends only on the value its CAS (or,
 * for a value other than ASLEEP, its load) read, so the load's own moment
 * adds interleavings and no outcome (S1's note of a wake that began while
 * the stalled waker is held is taken in that step too).
 * -DMUT_SENT_NO_WAKE: the taker marks SENT without its wake (W1 must fail).
 * -DMUT_FIRST_WAKER_ONLY keeps the old rule: the waker that reads ASLEEP
 * exchanges the word to AWAKE and alone wakes; later wakers read AWAKE and
 * leave the wake to it (S1 must fail). */
inline shard_wake(ws, ww)
{
	atomic {
		assert(_pid < NPID);
		ww = sleeping[ws];
		STALL_NOTE(ws);
		if
#ifdef MUT_FIRST_WAKER_ONLY
		:: ww == ASLEEP -> sleeping[ws] = AWAKE
		:: else -> ww = AWAKE	/* only the taker wakes */
#else
		:: ww == ASLEEP ->
			ww = WOKEN;
			sleeping[ws] = WOKEN;
			wsnap[_pid] = ws + 1
		:: ww == WOKEN -> wsnap[_pid] = ws + 1
		:: else -> ww = AWAKE	/* AWAKE or SENT: nothing to do */
#endif
		fi
	}
	if
#ifdef MUT_FIRST_WAKER_ONLY
	:: ww == ASLEEP ->
		W_TAKEN(ws)
		wake_one(ws);
		ww = 0
#else
	:: ww == WOKEN ->
		W_TAKEN(ws)
#ifndef MUT_SENT_NO_WAKE
		wake_one(ws);
#endif
		atomic {	/* relaxed CAS WOKEN -> SENT on the word it saw */
			if
#ifndef MUT_NO_GEN
			:: wsnap[_pid] == ws + 1 && sleeping[ws] == WOKEN ->
#else
			:: sleeping[ws] == WOKEN ->
#endif
				sleeping[ws] = SENT
			:: else -> skip
			fi;
			wsnap[_pid] = 0;
			ww = AWAKE
		}
#endif
	:: else -> skip
	fi
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
	:: pw == AWAKE -> skip
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
 * concurrent reserve that held credit for a moment, failed or not (a
 * steal and its surplus between [R3] and [R3d], capacity.c 296-316; a
 * chunk's rest between [R2] and [R2d]; a request taken back when the bytes
 * do not fit), sets "moved" and wakes the gate waiters (dispatch.c
 * 1033-1044; capacity.c H1, regression test fault/
 * cap_steal_surplus_wakes_the_gate_waiter). Not modelled: that window
 * itself; the model's atomic counter cannot show it.
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
	byte i, n, k;
	bit ok, vis;
	byte w;
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
		new_gen(s, k);	/* a new generation per sleep */
		sleeping[s] = ASLEEP;	/* seq_cst store */
#ifndef MUT_NO_RECHECK
		work_visible(s, vis);
		if
		:: vis -> sleeping[s] = AWAKE; goto again
		:: else -> skip
		fi;
#endif
		/* FUTEX_WAIT(&sleeping, gen | ASLEEP): sleeps only if the word
		 * still holds it (WOKEN, SENT or AWAKE: returns at once). */
		atomic {
			if
			:: sleeping[s] == ASLEEP -> fwait[s] = 1
			:: else -> skip
			fi
		}
		!fwait[s];
		sleeping[s] = AWAKE;	/* only the dispatcher stores AWAKE */
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
 * (poll_armed && !was, when wakers took the word 1 -> 0; with the current
 * word, "taken" reads WOKEN or SENT: the mutant tests w != ASLEEP). (a)
 * Waker W takes the word (dispatch.c 174-183) while the host's loop polls
 * for another reason; poll P1 sees it taken, reads the fd (empty: W has not
 * written yet), runs, arms (1664-1667); W now writes the fd (190). epoll
 * returns; P2 sees the word as P1 left it (nobody took it since), so it
 * does not read; it finds nothing and arms again; epoll returns at once
 * (the fd is still readable), and so on: the loop spins until some waker
 * takes the word again. (b) flowq_engine_wake() writes the fd without
 * taking the word (engine.c 63): the same spin follows at once. The fix,
 * now the code: read the fd after every poll that armed it (one read(2),
 * EAGAIN when clean, on the first poll after an idle one).
 */
proctype PollLoop()
{
	byte i, n, k;
	bit ok, vis, now, woke;
	byte w;
	DISPATCHER_PRIVATE;

	do
	:: ndone == NREQ -> break	/* the host's own requests are all done */
	:: else ->
		/* flowq_shard_poll(): take the sleep word back (only the
		 * poll stores AWAKE; the generation stays); read the eventfd
		 * if the last poll armed it. */
		atomic {
			w = sleeping[0];
			sleeping[0] = AWAKE
		}
#ifdef MUT_CLEAR_WHEN_TAKEN
		if
		:: poll_armed && w != ASLEEP -> efd = 0	/* a waker took it: old rule, must fail */
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
		new_gen(0, k);	/* a new generation per armed poll */
		sleeping[0] = ASLEEP;	/* seq_cst store */
		poll_armed = 1;
		now = 0;
#ifndef MUT_NO_RECHECK
		work_visible(0, vis);
#endif
		if
		:: vis || pending ->
			atomic {
				w = sleeping[0];
				sleeping[0] = AWAKE
			}
			if
			:: w == ASLEEP -> poll_armed = 0	/* we took it back */
			:: else -> skip	/* a waker took it (WOKEN or SENT): it wrote or writes */
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
/* flowq_engine_wake() in polled mode: an eventfd write (engine.c 59-64). */
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
 * engine: exiting, then a fenced wake of every shard (engine.c 336-340). */
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
