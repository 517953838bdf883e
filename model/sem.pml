/* sem.pml -- the semaphore and readers-writer lock of one name, for spin.
 *
 * The counterpart of fairlock.pml for src/lua/sem_*.lua: sem_redis.pml
 * holds the keys and the scripts, sem_client.pml the fairlock client as
 * src/acquire.c drives them (the same acquire loop as the mutex's, with the
 * semaphore scripts behind src/protocol.c).  This file holds the
 * configuration, the clock, the fault budget and the properties; it shares
 * nothing with the mutex model but the conventions (ticks, faults, the
 * always-0 P..._ names that pan's "assertion violated" line reports).
 * model/README.md says how to run it, docs/protocol.md ("The model") what
 * is modelled.
 *
 * Without -DRW the name is "semaphore PERMITS"; with -DRW it is "rwlock"
 * and the clients in WRITERS (a bit mask) ask for exclusive holds, the
 * others for shared ones.  Every client agrees on the kind: a mismatch is
 * an error reply that changes nothing (check_kind), so it has no state to
 * explore. */

/* ---- configuration (-D on the spin command line) ----------------------- */
#ifndef NC
#define NC 3            /* clients, at most 4 (the properties name 0..3) */
#endif
#ifndef PERMITS
#define PERMITS 2       /* N of "semaphore N" */
#endif
#ifndef WRITERS
#define WRITERS 1       /* -DRW: bit c set = client c is a writer */
#endif
#ifndef LEASE
#define LEASE 2         /* ttl_ms */
#endif
#ifndef LEASE0
#define LEASE0 LEASE    /* client 0's, to make its hand-offs capped */
#endif
#ifndef LIVE
#define LIVE 3          /* liveness window, in every token */
#endif
#ifndef CHECK
#define CHECK 1         /* check_interval */
#endif
#ifndef HOLD
#define HOLD 1          /* time in the critical section */
#endif
#ifndef TO0
#define TO0 0           /* acquire timeout of the clients but the last, 0 = none */
#endif
#ifndef TOL
#define TOL 0           /* the last client's */
#endif
#ifndef TRYL
#define TRYL 0          /* 1: the last client only tries (blocking = 0) */
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
#define TAKEOVER (CHECK + 1) /* most ticks a running head that fits waits */
#endif
#ifndef TMAX
#define TMAX 16         /* every live waiter is served by then */
#endif

#ifdef RW
#define NPERM 0         /* permits_of("rwlock") */
#define WRITER(c) ((WRITERS >> (c)) & 1)
#else
#define NPERM PERMITS
#define WRITER(c) 0
#endif
#define HB ((LIVE / 3) > 0 -> (LIVE / 3) : 1)   /* heartbeat */
#define LMAX (LEASE0 > LEASE -> LEASE0 : LEASE)
#define CLEAN (3 * LIVE + LMAX + 2)
#define NOEXP 255
#define QN (NC + 1)     /* one ghost entry besides each client's own */
#define NTOK (2 * NC + 1)
/* Token t = 1 + 2c + gen: client c's request, gen 1 its retry after a
 * lost reply.  Its terms (sem_common.lua's terms_of) follow from c. */
#define TOKCLIENT(t) (((t) - 1) / 2)
#define LEASE_OF(t) (TOKCLIENT(t) == 0 -> LEASE0 : LEASE)
#define SHARED(t) (!WRITER(TOKCLIENT(t)))
#define TO_OF(c) ((c) == NC - 1 -> TOL : TO0)
#define TRY_OF(c) ((c) == NC - 1 && TRYL)

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
byte vu[NC];            /* fairlock_valid_until_ms() */
byte perm[NC];          /* fairlock_permit() */
bool waiting[NC];       /* in its acquire */
bool fifo_ok[NC];       /* live for FIFO: see fault() in sem_client.pml */
byte enq[NC];           /* order of its first enqueue in this request */
byte enq_ctr;
bool resolved[NTOK];    /* the client is done with the token */
bool paused[NC];
byte dead_at[NC];       /* when it crashed */
byte took[NC];          /* the token it last took a grant with */
bool handed[NTOK];      /* its last grant was a hand-off (pushed) */
byte idle;              /* ticks a running head that fits has waited */
byte ncrash = NCRASH, npause = NPAUSE, nlost = NLOST;
#ifdef RW
byte maxfence, maxfence_w; /* highest fence taken by anyone, by a writer */
#else
byte pmfence[NPERM + 1];   /* highest fence taken with each permit */
#endif
hidden byte f_i, f_c, f_n;
hidden byte f_w;
/* Always 0: each names its property in pan's "assertion violated" line.
 * -DNO_SERVER_INV turns the scripts' own invariants off (P1_server), to
 * see what a client sees of a mutant that breaks them first;
 * -DNO_BOUND_CHECK likewise property 2 (P2_bound), to see what a mutant
 * that breaks it first does to the capacity (SM_NOCONFIRM). */
#ifdef NO_SERVER_INV
#define SERVER_INV_OFF 1
#else
#define SERVER_INV_OFF 0
#endif
#ifdef NO_BOUND_CHECK
#define BOUND_CHECK_OFF 1
#else
#define BOUND_CHECK_OFF 0
#endif
hidden byte P1_cap, P1_fence, P3_fifo, P4_served, P5_clean,
            P6_noghost, P4_takeover, P4_deadhead;
hidden byte P1_server = SERVER_INV_OFF;
hidden byte P2_bound = BOUND_CHECK_OFF;

#define ENQ(t) \
    f_c = TOKCLIENT(t); \
    if \
    :: ctok[f_c] == (t) && enq[f_c] == 0 -> enq_ctr++; enq[f_c] = enq_ctr \
    :: else \
    fi

/* Property 3, FIFO, checked at every grant: nobody live who queued before
 * the grantee still waits without a grant of its own.  One script may
 * grant to several heads in turn; those granted before are holders by
 * then, so they do not count as overtaken. */
inline FIFO_CHECK(t) {
    f_c = TOKCLIENT(t);
    if
    :: ctok[f_c] == t ->
        f_i = 0;
        do
        :: f_i < NC ->
            assert(P3_fifo || f_i == f_c ||
                   !(waiting[f_i] && fifo_ok[f_i] && enq[f_i] != 0 &&
                     enq[f_i] < enq[f_c] && hd_end[ctok[f_i]] == 0));
            f_i++
        :: else -> break
        od
    :: else
    fi
}

/* A reply may be lost after the server ran the script. */
inline choose_lost() {
    if
    :: atomic { nlost > 0 -> nlost--; lost = 1 }
    :: true -> lost = 0
    fi
}

#include "sem_redis.pml"
#include "sem_client.pml"

/* ---- properties 1 and 2, and the ghost check, as monitors -------------- */
#define VALID(c) ((c) < NC && cs[c] && now < vu[c])
#ifdef RW
/* 1: a writer within its lease overlaps nobody within theirs */
#define EXCL(a, b) (!(VALID(a) && VALID(b) && (WRITER(a) || WRITER(b))))
#else
/* 1: never more than N within their leases, each with its own permit */
#define EXCL(a, b) (!(VALID(a) && VALID(b) && perm[a] == perm[b]))
#endif
#define NVALID (VALID(0) + VALID(1) + VALID(2) + VALID(3))
#define CAP (NVALID <= (NPERM > 0 -> NPERM : NC) && EXCL(0, 1) && \
             EXCL(0, 2) && EXCL(0, 3) && EXCL(1, 2) && EXCL(1, 3) && \
             EXCL(2, 3))
/* 2: a bound in the future means the server counts the client a holder
 * of that permit until then */
#define BOUND(c) ((c) >= NC || !(held[c] && now < vu[c]) || \
                  (hd_end[ctok[c]] >= vu[c] && hd_pm[ctok[c]] == perm[c]))
#define BOUNDS (BOUND(0) && BOUND(1) && BOUND(2) && BOUND(3))
/* a token whose request was resolved is nowhere (neither holds nor waits) */
#define NOGHOST(i) (q_n <= (i) || !resolved[q_tok[i]])
#define NOGHOSTH(t) ((t) >= NTOK || !resolved[t] || hd_end[t] == 0)
#define NOGHOSTS (NOGHOST(0) && NOGHOST(1) && NOGHOST(2) && NOGHOST(3) && \
                  NOGHOST(4) && NOGHOSTH(1) && NOGHOSTH(2) && \
                  NOGHOSTH(3) && NOGHOSTH(4) && NOGHOSTH(5) && \
                  NOGHOSTH(6) && NOGHOSTH(7) && NOGHOSTH(8))

active proctype monitor_cap() {
end_cap:
    !CAP -> assert(P1_cap || CAP)
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

/* 4, bounded: a head that fits beside the live holders, whose client runs
 * (waits, not paused), is granted within TAKEOVER ticks.  Nothing pushes
 * when a lease ends, so this is the waiters' polling at work. */
inline head_fits() {
    f_w = 0;
    if
    :: q_n > 0 && ctok[TOKCLIENT(q_tok[0])] == q_tok[0] &&
       st[TOKCLIENT(q_tok[0])] == ST_WAIT && !paused[TOKCLIENT(q_tok[0])] ->
        f_n = 0; f_i = 1;
        do
        :: f_i < NTOK ->
            if
            :: hd_end[f_i] > now ->
                f_n++;
                if :: !SHARED(f_i) -> f_w = 1 :: else fi
            :: else
            fi;
            f_i++
        :: else -> break
        od;
#ifdef RW
        f_w = (SHARED(q_tok[0]) -> !f_w : f_n == 0)
#else
        f_w = (f_n < NPERM)
#endif
    :: else
    fi
}
/* 4, the cost of a dead waiter: a hand-off to a client that crashed
 * before it took it ends within two windows of the crash (its entry goes
 * stale within one, the capped lease of a hand-off lasts at most one). */
inline dead_heads() {
    f_i = 1;
    do
    :: f_i < NTOK ->
        f_c = TOKCLIENT(f_i);
        assert(P4_deadhead || !(handed[f_i] && hd_end[f_i] > now &&
                                st[f_c] == ST_CRASH && took[f_c] != f_i) ||
               hd_end[f_i] <= dead_at[f_c] + 2 * LIVE);
        f_i++
    :: else -> break
    od
}
inline tick() {
    dead_heads();
    head_fits();
    if :: f_w -> idle++ :: else -> idle = 0 fi;
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
        /* 5: nothing of the name is left but NAME:fencing */
        d_step {
            assert(P5_clean || (!kind_on && q_n == 0 && !seq_on &&
                                hd_n == 0));
            f_i = 1;
            do
            :: f_i < NTOK -> assert(P5_clean || !w_on[f_i]); f_i++
            :: else -> break
            od;
            f_i = 1;
            do
            :: f_i <= NPERM -> assert(P5_clean || pm_tok[f_i] == 0); f_i++
            :: else -> break
            od
        };
        break
    od
}

#ifdef LTL_SERVED
/* 4 as the liveness formula: every client eventually finishes (served,
 * given up, or crashed); pan -a -f, see model/run.sh. */
ltl served { <> ALL_DONE }
#endif

init {
    byte i;
    atomic {
        do
        :: i < NC -> run sem_client(i); i++
        :: else -> break
        od
    }
}
