/* sem_client.pml -- the fairlock client of a semaphore or readers-writer
 * lock: src/acquire.c's fairlock_acquire_ex, acquire_loop, take_grant and
 * confirm_later, fairlock_release and resolve_pending, with src/protocol.c
 * sending the sem_*.lua scripts for a name of these kinds.  The loop is the
 * mutex's (clients.pml); what differs is the scripts and their replies:
 * the permit, and pttl as the time until the first holder's lease ends.
 *
 * A script call is one d_step: sent, run by the server and answered in
 * one go.  Whether its reply is lost is chosen before the step; a lost
 * reply leaves the script's effects on the server and the client PENDING.
 * No auto_renew and no wait_replicas: confirm_later leaves a capped
 * hand-off's confirmation to the renewal thread, which sends it only if
 * the hold outlasts a third of the capped lease. */

/* A fault may be taken here: a pause of PAUSE_K ticks, or a crash.  A
 * pause that outlasts what a heartbeat leaves of the window costs the
 * waiter its place, by design, and so does one as long as the capped lease
 * of a hand-off that comes during it (the grant ends unused and the waiter
 * queues again at the back): either way it no longer counts as live for
 * FIFO. */
#ifdef FIFO_STRICT
/* known_pause: only the window counts, as the reliability table first
 * said; the model shows the waiter losing its place (docs/protocol.md) */
#define HANDOFF_PX(c) (PAUSE_K + 1)
#else
#define HANDOFF_PX(c) (LEASE_OF(1 + 2 * (c)) < LIVE -> LEASE_OF(1 + 2 * (c)) : LIVE)
#endif
inline fault(c) {
    if
    :: atomic { npause > 0 -> npause--; pu = now + PAUSE_K; paused[c] = 1;
                if
                :: PAUSE_K + HB > LIVE || PAUSE_K >= HANDOFF_PX(c) ->
                    fifo_ok[c] = 0
                :: else
                fi };
       printf("MSC: t%d c%d paused\n", now, c);
       now >= pu; pu = 0; paused[c] = 0
    :: atomic { ncrash > 0 -> ncrash--; st[c] = ST_CRASH; cs[c] = 0;
                dead_at[c] = now;
                held[c] = 0; vu[c] = 0; waiting[c] = 0 };
       printf("MSC: t%d c%d crashed\n", now, c);
       goto crashed
    :: true
    fi
}

proctype sem_client(byte c) {
    byte tok, gen, ticket, sent, rank, pttl, rlease, rfence, rpm, pm;
    byte wake_at, deadline, pu, t, vul;
    byte due;    /* when the renewal thread sends the confirmation */
    bit granted, lost, releasing;
    bit owed;    /* a capped hand-off's confirmation is owed */
    short left;

newreq: skip;
    d_step {
        tok = 1 + 2 * c + gen; ticket = 0; rank = 0; pttl = 0; pm = 0;
        deadline = (TO_OF(c) == 0 -> NOEXP : now + TO_OF(c));
        ctok[c] = tok; st[c] = ST_WAIT; waiting[c] = 1; fifo_ok[c] = 1;
        enq[c] = 0; releasing = 0
    }
attempt:
    /* run_attempt: request_pending, last_sent_ms, sem_acquire.lua */
    choose_lost();
    d_step {
        sent = now; tkt = ticket;
        sem_acquire_lua(tok, LEASE_OF(tok), TRY_OF(c));
        if
        :: TRY_OF(c) && !r_granted ->
            waiting[c] = 0; fifo_ok[c] = 0 /* the script left no entry */
        :: else
        fi;
        if
        :: !lost ->
            granted = r_granted;
            if :: r_ticket > 0 -> ticket = r_ticket :: else fi;
            rank = r_rank; pttl = r_pttl; rlease = r_lease; rfence = r_fence;
            rpm = r_pm
        :: else
        fi
    };
    printf("MSC: t%d c%d tok%d sem_acquire -> g%d tk%d rank%d pm%d lost%d | holders%d q%d\n", now, c, tok, granted, ticket, rank, rpm, lost, hd_n, q_n);
    if
    :: lost -> goto pending
    :: else
    fi;
    if
    :: granted -> goto take
    :: !granted && TRY_OF(c) ->
        /* try_once: request_forget, FAIRLOCK_TIMEOUT; the script left no
         * entry */
        d_step { resolved[tok] = 1; waiting[c] = 0; fifo_ok[c] = 0 };
        printf("MSC: t%d c%d tok%d try_once not granted\n", now, c, tok);
        goto done
    :: else
    fi;
    /* acquire_loop: next = 1 (eviction budget) never happens, nor
     * next = 2 (no clients of another kind) */
    d_step {
        t = HB;
        if :: rank <= 1 -> t = (t < CHECK -> t : CHECK) :: else fi;
        /* the first holder's lease as seen: an expiry pushes nothing */
        if :: pttl > 0 && pttl + 1 < t -> t = pttl + 1 :: else fi;
        wake_at = now + t;
        if :: deadline < wake_at -> wake_at = deadline :: else fi;
        rank = 0; pttl = 0
    };
    fault(c);
    /* wait_for_push: BLPOP NAME:grant:TOKEN until wake_at */
    if
    :: d_step {
           now < wake_at && w_on[tok] ->
           ticket = w_tk[tok]; rlease = w_px[tok]; rfence = w_fn[tok];
           rpm = w_pm[tok]; wake_del(tok)
       };
       printf("MSC: t%d c%d tok%d popped hand-off tk%d px%d f%d pm%d\n", now, c, tok, ticket, rlease, rfence, rpm);
       fault(c);
       goto take
    :: now >= wake_at
    fi;
    if
    :: now >= deadline -> goto giveup
    :: else -> goto attempt
    fi;

take: skip;
    /* take_grant(attempt, last_sent_ms) */
    d_step {
        vul = (rlease == 0 -> NOEXP : sent + rlease);
        left = vul - now
    };
    if
    :: rlease != LEASE_OF(tok) && rlease > 0 && left >= rlease * 2 / 3 ->
        /* confirm_later: nothing is sent.  The bound stays the capped
         * lease's, and the renewal thread owes the confirmation
         * (sem_extend.lua to the full lease) a third of the way from
         * `sent` to that bound (the tick in which it falls): the hold
         * below sends it, or never if the hold ends first. */
#ifdef SM_NOCONFIRM
        /* mutant: the full lease believed at once, never confirmed */
        vul = (LEASE_OF(tok) == 0 -> NOEXP : sent + LEASE_OF(tok))
#else
        d_step { owed = 1; due = sent + rlease / 3 }
#endif
    :: rlease == LEASE_OF(tok) && (rlease == 0 || left >= rlease * 2 / 3) ->
        skip
    :: else ->
        /* sem_extend.lua now: a fresh bound after a capped hand-off or
         * one with less than two thirds of its lease left */
        choose_lost();
        d_step {
            sent = now; sem_extend_lua(tok, LEASE_OF(tok));
            granted = r_owned;
            vul = (LEASE_OF(tok) == 0 -> NOEXP : now + LEASE_OF(tok))
        };
        if
        :: lost -> goto pending /* request_abandon on a dropped link */
        :: !lost && !granted -> goto attempt /* HANDOFF_EXPIRED */
        :: else
        fi
    fi;
    d_step {
        held[c] = 1; cs[c] = 1; vu[c] = vul; perm[c] = rpm; pm = rpm;
        took[c] = tok;
        st[c] = ST_HOLD; waiting[c] = 0;
        printf("MSC: t%d c%d tok%d HOLDS until %d permit %d fence %d (holders%d)\n", now, c, tok, vul, rpm, rfence, hd_n);
        /* 1: fencing tokens of successive grants increase: for each
         * permit of a semaphore; for a readers-writer lock, a writer's
         * above every fence taken before, a reader's above every
         * writer's (readers taken together may come in any order) */
#ifdef RW
        assert(P1_fence || rfence > maxfence_w);
        if
        :: WRITER(c) -> assert(P1_fence || rfence > maxfence);
           maxfence_w = rfence
        :: else
        fi;
        if :: rfence > maxfence -> maxfence = rfence :: else fi;
#else
        assert(P1_fence || (rpm >= 1 && rpm <= NPERM &&
                            rfence > pmfence[rpm]));
        pmfence[rpm] = rfence;
#endif
        t = now + HOLD
    };
    fault(c);
    /* The hold.  The renewal thread sends an owed confirmation once it is
     * due; the clock stands still while it can, so it goes in the tick it
     * falls due unless the hold ends in that tick first (then the release
     * frees the permit and none is sent).  The thread stops with the
     * process: a pause or a crash holds it up too. */
    do
    :: owed && now >= due ->
        choose_lost();
        if
        :: lost ->
            /* an I/O error: it ran, or it did not */
            if
            :: d_step { sem_extend_lua(tok, LEASE_OF(tok)) }
            :: true
            fi;
            d_step {
                /* no answer: retried (RETRY_MS, below a tick: the next
                 * tick) until the capped bound, then LOST */
                if
                :: now >= vu[c] -> owed = 0; vu[c] = 0
                :: else -> due = now + 1
                fi
            }
        :: else ->
            d_step {
                sem_extend_lua(tok, LEASE_OF(tok));
                owed = 0;
                if
                :: r_owned ->
                    vu[c] = (LEASE_OF(tok) == 0 -> NOEXP : now + LEASE_OF(tok))
                :: else -> vu[c] = 0 /* not ours: LOST */
                fi
            }
        fi;
        printf("MSC: t%d c%d tok%d confirmed px%d lost%d: until %d owed%d\n", now, c, tok, LEASE_OF(tok), lost, vu[c], owed);
        fault(c)
    :: now >= t -> break
    od;
    cs[c] = 0;
    /* fairlock_release: sem_release.lua */
    releasing = 1;
    choose_lost();
    d_step {
        sem_release_lua(tok, pm);
        held[c] = 0; vu[c] = 0; perm[c] = 0; owed = 0; due = 0;
        if
        :: !lost -> resolved[tok] = 1; st[c] = ST_DONE
        :: else
        fi
    };
    printf("MSC: t%d c%d tok%d release -> %d lost%d\n", now, c, tok, r_released, lost);
    if
    :: lost -> goto pending
    :: else -> goto done
    fi;

giveup:
    /* timeout: request_abandon runs sem_cancel.lua */
    waiting[c] = 0;
    releasing = 1;
pending: skip;
    d_step {
        st[c] = ST_PEND; fifo_ok[c] = 0; held[c] = 0; cs[c] = 0; vu[c] = 0;
        perm[c] = 0
    };
    /* the next call on the handle, or fairlock_free: resolve_pending */
    fault(c);
    choose_lost();
    d_step {
        tkt = ticket;
        sem_cancel_lua(tok);
        if :: !lost -> resolved[tok] = 1 :: else fi
    };
    printf("MSC: t%d c%d tok%d sem_cancel tk%d -> %d lost%d | holders%d q%d\n", now, c, tok, ticket, r_undone, lost, hd_n, q_n);
    if
    :: lost -> goto pending
    :: !lost && !releasing && gen == 0 ->
        /* the application asks again, with a new token */
        gen = 1; goto newreq
    :: else
    fi;
done: skip;
    d_step { st[c] = ST_DONE; waiting[c] = 0 };
    goto end_sc;
crashed:
    skip;
end_sc:
    skip
}
