/* clients.pml -- the fairlock client (src/lock.c) and the reference client
 * (tests/reference_client.py).
 *
 * A script call is one d_step: sent, run by the server and answered in
 * one go (renew.pml and -DLATE let a command run later than it was sent).
 * Whether its reply is lost is chosen before the step, so the step stays
 * deterministic; a lost reply leaves the script's effects on the server
 * and the client PENDING (mark_pending). */

/* A fault may be taken here: a pause of PAUSE_K ticks, or a crash (the
 * process never runs again).  A pause that outlasts what a heartbeat
 * leaves of the window costs the waiter its place, by design, so such a
 * waiter no longer counts as live for FIFO. */
inline fault(c) {
    if
    :: atomic { npause > 0 -> npause--; pu = now + PAUSE_K; paused[c] = 1;
                if :: PAUSE_K + HB > LIVE -> fifo_ok[c] = 0 :: else fi };
       printf("MSC: t%d c%d paused\n", now, c);
       now >= pu; pu = 0; paused[c] = 0
    :: atomic { ncrash > 0 -> ncrash--; st[c] = ST_CRASH; cs[c] = 0;
                ref_left = ref_left || c >= NF;
                held[c] = 0; vu[c] = 0; waiting[c] = 0 };
       printf("MSC: t%d c%d crashed\n", now, c);
       goto crashed
    :: true
    fi
}

/* ---- fairlock client: fairlock_acquire_ex, acquire_loop, take_grant,
 *      fairlock_release, resolve_pending ----------------------------------- */
proctype fairlock_client(byte c) {
    byte tok, gen, ticket, sent, rank, pttl, nxt, rlease, rfence;
    byte wake_at, deadline, pu, t, vul;
    byte due;    /* when the renewal thread sends the confirmation */
    bit granted, lost, releasing;
    bit unans;   /* the last acquire got no reply (attempt_unanswered) */
    bit owed;    /* a capped hand-off's confirmation is owed (not renewed) */
    bit capped;  /* the grant was recorded with the capped lease */
    short left;
#ifdef RENEW
    byte ext, es, outcome;
#endif

newreq: skip;
    d_step {
        tok = 1 + 2 * c + gen; ticket = 0; rank = 0; pttl = 0; nxt = 0;
        deadline = (TO_OF(c) == 0 -> NOEXP : now + TO_OF(c));
        ctok[c] = tok; st[c] = ST_WAIT; waiting[c] = 1; fifo_ok[c] = 1;
        enq[c] = 0; enqb[c] = 0; releasing = 0
    }
attempt:
    /* run_attempt: mark_pending, last_sent_ms, acquire.lua; a failed call
     * with no reply sets attempt_unanswered */
    choose_lost();
    unans = lost;
#ifdef LATE
    if
    :: lost ->
        /* the request itself is held up (a stalled server, a slow
         * network): it runs later, maybe after the cancel that resolves
         * this request */
        run late_acquire(tok, ticket, now);
        goto pending
    :: else
    fi;
#endif
    d_step {
        sent = now; tkt = ticket;
        acquire_lua(tok, LEASE_OF(tok));
        /* only a cancel of this token makes its tombstone, and the
         * client never uses a token after its cancel */
        assert(!r_refused);
        if
        :: !lost ->
            granted = r_granted;
            if :: r_ticket > 0 -> ticket = r_ticket :: else fi;
            rank = r_rank; pttl = r_pttl; rlease = r_lease; rfence = r_fence;
            nxt = r_next
        :: else
        fi
    };
    printf("MSC: t%d c%d tok%d acquire -> g%d tk%d rank%d lost%d | owner%d q%d\n", now, c, tok, granted, ticket, rank, lost, owner, q_n);
    if
    :: lost -> goto pending
    :: else
    fi;
    if
    :: granted -> goto take
    :: else
    fi;
    /* acquire_loop: next = 1 (eviction budget) never happens, see
     * live_head */
    d_step {
        /* the poll: a heartbeat, check_interval near the head or while
         * reference clients are about, and the holder's lease as seen */
        t = HB;
        if
        :: rank <= 1 || nxt == 2 -> t = (t < CHECK -> t : CHECK)
        :: else
        fi;
#ifndef B2
        if
        :: pttl > 0 && pttl + 1 < t -> t = pttl + 1
        :: else
        fi;
#endif
        wake_at = now + t;
        if :: deadline < wake_at -> wake_at = deadline :: else fi;
        rank = 0; pttl = 0; nxt = 0
    };
    fault(c);
    /* wait_for_push: BLPOP NAME:wake:TOKEN until wake_at */
    if
    :: d_step {
           now < wake_at && w_on[tok] ->
           ticket = w_tk[tok]; rlease = w_px[tok]; rfence = w_fn[tok];
           wake_del(tok)
       };
       printf("MSC: t%d c%d tok%d popped hand-off tk%d px%d f%d\n", now, c, tok, ticket, rlease, rfence);
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
        /* confirm_later: nothing is sent.  The grant is recorded with the
         * capped lease, so the bound stays the capped lease's, and the
         * renewal thread owes the confirmation (extend.lua to the full
         * lease) when a renewal would be due: a third of the way from
         * `sent` to that bound (ledger_publish's next_ms; the tick in
         * which it falls).  With auto_renew that is the thread's first
         * renewal (renew_start below, renew.pml); otherwise a one-shot
         * that the hold below runs, or never if the hold ends first. */
#ifdef C1
        /* mutant: the full lease believed at once, never confirmed */
        vul = (LEASE_OF(tok) == 0 -> NOEXP : sent + LEASE_OF(tok))
#else
        d_step {
            capped = 1; owed = !AUTO_RENEW(c); due = sent + rlease / 3
        }
#endif
    :: rlease == LEASE_OF(tok) && (rlease == 0 || left >= rlease * 2 / 3) ->
        skip
    :: else ->
        /* an extend buys a fresh bound, needed after a capped hand-off */
        choose_lost();
        d_step {
            sent = now; extend_lua(tok, LEASE_OF(tok));
            granted = r_owned;
            vul = (LEASE_OF(tok) == 0 -> NOEXP : now + LEASE_OF(tok))
        };
        if
        :: lost -> goto pending /* abandon_request on a dropped link */
        :: !lost && !granted -> goto attempt /* HANDOFF_EXPIRED */
        :: else
        fi
    fi;
    d_step {
        held[c] = 1; cs[c] = 1; vu[c] = vul; st[c] = ST_HOLD;
        waiting[c] = 0;
        /* 1: fencing tokens of successive grants strictly increase */
        printf("MSC: t%d c%d tok%d HOLDS until %d fence %d (owner%d)\n", now, c, tok, vul, rfence, owner);
        assert(P1_fence || rfence > maxfence);
        maxfence = rfence;
        t = now + HOLD;
#ifdef RENEW
        if
        :: c == 0 ->
            /* from here renew.c publishes the bound; after a capped
             * hand-off the grant is recorded with the capped lease and
             * the first renewal asks for the full one (confirm_later) */
            t = (capped -> rlease : LEASE_OF(tok));
            renew_start(t, sent);
            rn_lease = LEASE_OF(tok); t = now + HOLD_R
        :: else
        fi
#endif
    };
#ifdef RENEW
    if
    :: c == 0 ->
        /* fairlock_extend() at some point of the hold, or never */
        if
        :: owner_extend()
        :: now >= t - 2; owner_extend()
        :: true
        fi
    :: else -> fault(c)
    fi;
#else
    fault(c);
#endif
    /* The hold.  The renewal thread sends an owed confirmation once it is
     * due; the clock stands still while it can, so it goes in the tick it
     * falls due unless the hold ends in that tick first (then the release
     * deletes the key and none is sent).  The thread stops with the
     * process: a pause or a crash holds it up too. */
    do
    :: owed && now >= due ->
        choose_lost();
        if
        :: lost ->
            /* an I/O error: it ran, or it did not */
            if
            :: d_step { extend_lua(tok, LEASE_OF(tok)) }
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
                extend_lua(tok, LEASE_OF(tok));
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
#ifdef RENEW
    if
    :: c == 0 ->
        /* fairlock__renew_stop: quiet before the release is sent */
        r_active = 0;
        !r_inflight;
        d_step { ledger_reset(); r_lost = 0 }
    :: else
    fi;
#endif
    /* fairlock_release */
    releasing = 1;
    choose_lost();
    d_step {
        release_lua(tok);
        held[c] = 0; vu[c] = 0; owed = 0; due = 0; capped = 0;
        if
        :: !lost -> resolved[tok] = 1; st[c] = ST_DONE
        :: else
        fi
    };
    printf("MSC: t%d c%d tok%d release lost%d\n", now, c, tok, lost);
    if
    :: lost -> goto pending
    :: else -> goto done
    fi;

giveup:
    /* timeout: abandon_request runs cancel.lua on the live connection */
    waiting[c] = 0;
    releasing = 1;
pending: skip;
    d_step {
        st[c] = ST_PEND; fifo_ok[c] = 0; held[c] = 0; cs[c] = 0; vu[c] = 0
    };
    /* the next call on the handle, or fairlock_free: resolve_pending */
    fault(c);
    choose_lost();
    d_step {
        tkt = ticket;
        cancel_lua(tok, unans);
        if :: !lost -> resolved[tok] = 1 :: else fi
    };
    printf("MSC: t%d c%d tok%d cancel tk%d lost%d | owner%d q%d\n", now, c, tok, ticket, lost, owner, q_n);
    if
    :: lost -> goto pending
    :: !lost && !releasing && gen == 0 ->
        /* the application asks again, with a new token */
        gen = 1; goto newreq
    :: else
    fi;
done: skip;
    d_step { st[c] = ST_DONE; waiting[c] = 0 };
#ifdef RENEW
    if :: c == 0 -> r_active = 0; r_stop = 1 :: else fi;
#endif
    goto end_fl;
crashed:
    skip;
end_fl:
    skip
}

#ifdef LATE
proctype late_acquire(byte ltok, lticket, at) {
    if
    :: true
    :: now >= at + 1
    :: now >= at + 2
    fi;
    d_step {
        tkt = lticket; acquire_lua(ltok, LEASE_OF(ltok));
        printf("MSC: t%d late acquire of tok%d ran: refused%d owner%d q%d\n", now, ltok, r_refused, owner, q_n)
    }
}
#endif

/* ---- reference client: RedisLockFifo.acquire / release, FIFO,
 *      timeout = REF_TO (also its lease and its stale timeout) ------------ */
proctype reference_client(byte c) {
    byte tok, ticket, reg, deadline, pu, t;
    bit ok, qempty;

    d_step {
        tok = RTOK + c - NF; ctok[c] = tok; st[c] = ST_WAIT; waiting[c] = 1;
        fifo_ok[c] = 1; deadline = now + REF_TO; reg = now
    };
    /* RedisTicketQueue.register: INCR, then ZADD, two commands */
    d_step { incr_seq(); ticket = seq; ENQ_BEGIN(tok) };
    /* the stamp is its own monotonic clock, near 0 on this scale */
    d_step { zadd(ticket, tok, 0); ENQ_END(tok) };
loop: skip;
    /* cleanup_stale: its own clock judges only its own member (a
     * fairlock stamp is the server's epoch, far in its future) */
    d_step {
        if
        :: q_n > 0 && q_tok[0] == tok && now - reg >= REF_TO ->
            /* only at its deadline: it gives up right after */
            zrem(0); waiting[c] = 0; fifo_ok[c] = 0
        :: else
        fi
    };
    /* is_head: ZRANGE 0 0, the head's ticket against ours */
    if
    :: q_n > 0 && q_tk[0] == ticket -> goto try
    :: else
    fi;
sleep:
    if
    :: now >= deadline ->
        /* LockTimeoutError; its member stays in the queue */
        printf("MSC: t%d c%d ref timed out\n", now, c);
        ref_left = 1;
        d_step { st[c] = ST_DONE; waiting[c] = 0 };
        goto end_ref
    :: else
    fi;
    t = now + CHECK;
    fault(c);
    now >= t;
    goto loop;
try: skip;
    /* SET NAME token NX PX timeout: no fencing token */
    d_step {
        if
        :: owner == 0 ->
            owner = tok; own_exp = now + REF_TO; ok = 1; FIFO_CHECK(tok)
        :: else -> ok = 0
        fi
    };
    printf("MSC: t%d c%d ref SET NX ok%d\n", now, c, ok);
    if
    :: !ok -> goto sleep
    :: else
    fi;
    d_step {
        /* queue.remove(member) */
        tkt = ticket; find_member(tkt, tok);
        if :: found -> zrem(h_i) :: else fi;
        cs[c] = 1; vu[c] = now + REF_TO; st[c] = ST_HOLD; waiting[c] = 0;
        t = now + HOLD
    };
    fault(c);
    now >= t;
    cs[c] = 0; vu[c] = 0;
    /* release: the check-and-delete script */
    d_step {
        if :: owner == tok -> owner = 0; own_exp = 0 :: else fi
    };
    /* maybe_cleanup: ZCARD, then DEL queue, then DEL seq */
    qempty = (q_n == 0);
    if
    :: qempty ->
        d_step {
            /* whoever queued since the ZCARD loses the entry (documented) */
            h_i = 0;
            do
            :: h_i < q_n ->
                f_c = TOKCLIENT(q_tok[h_i]);
                if
                :: ctok[f_c] == q_tok[h_i] -> fifo_ok[f_c] = 0
                :: else
                fi;
                q_tk[h_i] = 0; q_tok[h_i] = 0; q_ts[h_i] = 0; h_i++
            :: else -> break
            od;
            q_n = 0; q_exp = 0
        };
        d_step { seq_on = 0; seq = 0; seq_exp = 0 }
    :: else
    fi;
    printf("MSC: t%d c%d ref released, cleanup %d\n", now, c, qempty);
    d_step { st[c] = ST_DONE; resolved[tok] = 1; qempty = 0; ok = 0 };
    goto end_ref;
crashed:
    skip;
end_ref:
    skip
}
