/* fairlock.pml -- the fairlock protocol on one lock, for spin.
 *
 * redis.pml holds the keys and the scripts (src/lua/), clients.pml the
 * fairlock client as src/lock.c and src/renew.c run it and the reference
 * client as tests/reference_client.py runs it.  This file holds the
 * configuration, the clock, the fault budget and the properties.
 * model/README.md says how to run it; docs/protocol.md ("The model") what
 * is modelled and why the abstractions are sound.
 *
 * Durations are ticks of one clock shared by the server and the clients:
 * the drift margin that src/renew.c subtracts from every bound exists for
 * the difference between those clocks, so a model without the difference
 * needs no margin.  The clock moves only when no process can do anything
 * else (`timeout`), i.e. every process waits for a deadline. */

/* ---- configuration (-D on the spin command line) ----------------------- */
#ifndef NF
#define NF 2            /* fairlock clients */
#endif
#ifndef NR
#define NR 1            /* reference (RedisLockFifo) clients, 0 or 1 */
#endif
#ifndef LEASE
#define LEASE 2         /* ttl_ms of the fairlock clients */
#endif
#ifndef LEASE0
#define LEASE0 LEASE    /* client 0's, to make its hand-offs capped */
#endif
#ifndef LIVE
#define LIVE 3          /* liveness window (fifo_stale_timeout) */
#endif
#ifndef CHECK
#define CHECK 1         /* check_interval */
#endif
#ifndef HOLD
#define HOLD 1          /* time in the critical section */
#endif
#ifndef TO0
#define TO0 0           /* client 0's acquire timeout, 0 = none */
#endif
#ifndef TO1
#define TO1 0           /* the other fairlock clients' */
#endif
#ifndef REF_TO
#define REF_TO 4        /* the reference's timeout, also its lease */
#endif
#ifndef NCRASH
#define NCRASH 1
#endif
#ifndef NPAUSE
#define NPAUSE 1
#endif
#ifndef PAUSE_K
#define PAUSE_K 3
#endif
#ifndef NLOST
#define NLOST 1
#endif
#ifndef TAKEOVER
#define TAKEOVER (CHECK + 1) /* most ticks a live head leaves a free lock */
#endif
#ifndef TMAX
#define TMAX 16         /* every live waiter is served by then */
#endif

#define FLIVE LIVE      /* the liveness window applied to foreign entries */
#define MINFW 2         /* MIN_FOREIGN_WINDOW: a few of the reference's polls */
#define HB ((LIVE / 3) > 0 -> (LIVE / 3) : 1)   /* heartbeat */
#define CLEAN (3 * LIVE + 2 * MINFW + 2 * FLIVE + 2)
#define NOEXP 255
#define NC (NF + NR)
#define QN (NC + 1)     /* one ghost entry besides each client's own */
#define NTOK 11
#define RTOK 9          /* first token of a reference client */
#define FOREIGN(t) ((t) >= RTOK)
#define TOKCLIENT(t) (FOREIGN(t) -> NF + (t) - RTOK : ((t) - 1) / 2)
#define LEASE_OF(t) ((((t) - 1) / 2) == 0 -> LEASE0 : LEASE)
#define TO_OF(c) ((c) == 0 -> TO0 : TO1)
#ifdef RENEW
#define AUTO_RENEW(c) ((c) == 0)   /* client 0 runs the renewal thread */
#else
#define AUTO_RENEW(c) 0
#endif

byte now = 1;

/* ---- what the clients are doing, for the properties -------------------- */
#define ST_WAIT 1
#define ST_HOLD 2
#define ST_PEND 3
#define ST_DONE 4
#define ST_CRASH 5
byte st[NC];
byte ctok[NC];          /* the token of the client's current request */
bool held[NC];          /* fairlock_state() says HELD */
bool cs[NC];            /* inside the critical section */
byte vu[NC];            /* fairlock_valid_until_ms(); the key's PX for ref */
bool waiting[NC];       /* in its acquire, entry made */
bool fifo_ok[NC];       /* never paused beyond its window, nor lost its entry */
byte enq[NC];           /* order of its first enqueue in this request */
byte enqb[NC];          /* when that enqueue began (the reference's INCR) */
byte enq_ctr;
bool resolved[NTOK];    /* the client is done with the token */
bool paused[NC];
byte idle;              /* ticks the lock has been free with a live head */
bool ref_left;          /* a reference client crashed or gave up */
byte maxfence;          /* highest fencing token a client took */
byte ncrash = NCRASH, npause = NPAUSE, nlost = NLOST;
hidden byte f_i, f_c;
/* Always 0: each names its property in pan's "assertion violated" line,
 * which is how the tests tell which property a mutant broke.
 * -DNO_BOUND_CHECK turns property 2 off, to see what a mutant that breaks
 * it first does to mutual exclusion (C1). */
#ifdef NO_BOUND_CHECK
#define BOUND_CHECK_OFF 1
#else
#define BOUND_CHECK_OFF 0
#endif
hidden byte P1_mutex, P1_fence, P3_fifo, P4_served, P5_clean,
            P6_noghost, P4_takeover;
hidden byte P2_bound = BOUND_CHECK_OFF;

/* A request's place in line is where it first queued.  The reference
 * queues in two commands (INCR, ZADD): it counts as queued from the ZADD
 * on, and as asking from the INCR on, so that neither of two waiters whose
 * registrations overlap is said to have overtaken the other. */
#define ENQ_BEGIN(t) \
    f_c = TOKCLIENT(t); \
    if \
    :: ctok[f_c] == (t) && enqb[f_c] == 0 -> enq_ctr++; enqb[f_c] = enq_ctr \
    :: else \
    fi
#define ENQ_END(t) \
    f_c = TOKCLIENT(t); \
    if \
    :: ctok[f_c] == (t) && enq[f_c] == 0 -> enq_ctr++; enq[f_c] = enq_ctr \
    :: else \
    fi
#define ENQ(t) ENQ_BEGIN(t); ENQ_END(t)

/* Property 3, FIFO, checked at every grant: nobody live who queued
 * before the grantee still waits.  A grant to a token its client no
 * longer uses is a ghost, which the monitor reports. */
inline FIFO_CHECK(t) {
    f_c = TOKCLIENT(t);
    if
    :: ctok[f_c] == t ->
        f_i = 0;
        do
        :: f_i < NC ->
            assert(P3_fifo || f_i == f_c ||
                   !(waiting[f_i] && fifo_ok[f_i] && enq[f_i] != 0 &&
                     enq[f_i] < enqb[f_c]));
            f_i++
        :: else -> break
        od
    :: else
    fi
}

/* A reply may be lost after the server ran the script (the caller's
 * `lost`), while the fault budget lasts. */
inline choose_lost() {
    if
    :: atomic { nlost > 0 -> nlost--; lost = 1 }
    :: true -> lost = 0
    fi
}

#include "redis.pml"
#ifdef RENEW
#include "renew.pml"
#endif
#include "clients.pml"

/* ---- properties 1 and 2, and the ghost check, as a monitor ------------- */
#define VALID(c) ((c) < NC && cs[c] && now < vu[c])
#define EXCL(a, b) (!(VALID(a) && VALID(b)))
/* 1: no two clients in their critical sections within valid leases */
#define MUTEX (EXCL(0, 1) && EXCL(0, 2) && EXCL(0, 3) && EXCL(1, 2) && \
               EXCL(1, 3) && EXCL(2, 3))
/* 2: a bound in the future means the key is the client's (fairlock only) */
#define BOUND(c) ((c) >= NF || !(held[c] && now < vu[c]) || owner == ctok[c])
#define BOUNDS (BOUND(0) && BOUND(1) && BOUND(2) && BOUND(3))
/* a token whose request was resolved is nowhere (B3's ghost entries) */
#define NOGHOST(i) (q_n <= (i) || !resolved[q_tok[i]])
#define NOGHOSTS ((owner == 0 || !resolved[owner]) && NOGHOST(0) && \
                  NOGHOST(1) && NOGHOST(2) && NOGHOST(3) && NOGHOST(4))

active proctype monitor() {
end_mutex:
    !MUTEX -> assert(P1_mutex || MUTEX)
}
active proctype monitor_bound() {
end_bound:
    !BOUNDS -> assert(P2_bound || BOUNDS)
}
active proctype monitor_ghost() {
end_ghost:
    !NOGHOSTS -> assert(P6_noghost || NOGHOSTS)
}

#define FINISHED(c) ((c) >= NC || st[c] == ST_DONE || st[c] == ST_CRASH)
#define ALL_DONE (FINISHED(0) && FINISHED(1) && FINISHED(2) && FINISHED(3))

/* 4, bounded: a free lock whose head is a fairlock waiter that runs (not
 * paused, not crashed, not gone) is taken within TAKEOVER ticks; B2 made
 * it wait for a heartbeat. */
#define LIVE_HEAD (owner == 0 && q_n > 0 && !FOREIGN(q_tok[0]) && \
                   ctok[TOKCLIENT(q_tok[0])] == q_tok[0] && \
                   st[TOKCLIENT(q_tok[0])] == ST_WAIT && \
                   !paused[TOKCLIENT(q_tok[0])])
inline tick() {
    if :: LIVE_HEAD -> idle++ :: else -> idle = 0 fi;
    assert(P4_takeover || idle <= TAKEOVER);
    now++;
    expire_keys()
}

/* The clock, and properties 4 and 5 at the end of time. */
active proctype clock() {
end_clock:
    do
    :: timeout && now < TMAX -> d_step { tick() }
    :: timeout && now >= TMAX && now < TMAX + CLEAN && ALL_DONE ->
        d_step { tick() }
#ifndef LTL_SERVED
    :: timeout && now == TMAX && !ALL_DONE ->
        /* 4: a live waiter still waits when the horizon is reached */
        assert(P4_served || ALL_DONE)
#endif
    :: timeout && now == TMAX + CLEAN ->
        /* 5: nothing of the lock is left but NAME:fence */
        d_step {
            assert(P5_clean || (owner == 0 && !watch_on));
            /* A reference client that crashed or timed out leaves its
             * keys by its own algorithm (a member, NAME:seq without TTL);
             * besides that, the known leak (docs/protocol.md, "The
             * model"): a queue made to persist for a reference member
             * keeps the entries of fairlock waiters that crashed behind
             * it for ever. */
            f_i = 0;
            do
            :: f_i < q_n && !ref_left ->
                assert(P5_clean || (NR > 0 && q_exp == NOEXP &&
                       st[TOKCLIENT(q_tok[f_i])] == ST_CRASH));
                f_i++
            :: else -> break
            od;
            assert(P5_clean || q_n > 0 || !seq_on || ref_left);
            f_i = 0;
            do
            :: f_i < NTOK ->
                assert(P5_clean || (!w_on[f_i] && g_exp[f_i] == 0)); f_i++
            :: else -> break
            od
        };
        break
    od
}

#ifdef LTL_SERVED
/* 4 as the liveness formula it is: every client eventually finishes
 * (served, given up, or crashed).  Runs end when the clock stops, and spin
 * extends a run that ends by stuttering its last state, so a run that
 * ends with a waiter still waiting is an acceptance cycle (pan -a -f;
 * model/run.sh).  Without LTL_SERVED the same runs fail the assertion at
 * the horizon, which needs no never claim and is what CI runs. */
ltl served { <> ALL_DONE }
#endif

init {
    byte i;
    atomic {
#ifdef RENEW
        run renewer();
#endif
        do
        :: i < NF -> run fairlock_client(i); i++
        :: i >= NF && i < NC -> run reference_client(i); i++
        :: else -> break
        od
    }
}
