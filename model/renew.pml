/* renew.pml -- src/renew.c for client 0 with auto_renew: the ledger that
 * makes fairlock_valid_until_ms() a lower bound, the renewal thread, and
 * fairlock_extend() from the owner, as two processes sharing the ledger
 * (renew.c's mutex: every ledger step is one atomic block).
 *
 * Lease-setting commands are not instantaneous here: each is sent, then
 * run by the server in the same tick or up to STALL ticks later (the
 * network, a stalled server), then answered; a lost reply
 * leaves it unknown whether and when it ran.  That is what lets the
 * server run the renewal and the extend in either order whatever the
 * order of their replies. */

#ifndef STALL
#define STALL 1     /* most ticks a command waits before the server runs it */
#endif
/* The server runs what was sent at `at` now or up to STALL ticks later. */
inline server_delay(at) {
    if
    :: true
    :: STALL >= 1 -> now >= at + 1
    :: STALL >= 2 -> now >= at + 2
    :: STALL >= 3 -> now >= at + 3
    fi
}
#define BY_RENEWER 0
#define BY_OWNER 1
#ifndef EXT_MIN
#define EXT_MIN (LEASE / 2)
#endif
#ifndef EXT_MAX
#define EXT_MAX (2 * LEASE)
#endif
#ifndef HOLD_R
#define HOLD_R 4
#endif

typedef lease_cmd {
    bit used;
    byte sent;
    byte lease;
    byte begun;
    byte done;
};
lease_cmd l_last[2];
lease_cmd l_flight[2];
byte l_base, l_unknown, l_seq;
bit r_active, r_inflight, r_lost, r_gone, r_stop;
byte r_grant, rn_lease, rn_next;
#ifdef R3
byte r3_src; /* mutant R3: the bound from the last reply alone */
#endif
hidden byte lb_bound, lb_n, lb_s, lb_v, lb_f, lb_p;
hidden lease_cmd lc;

/* bound_from(max(sent, base), lease) of the candidate in lb_f, lb_p */
inline bound_from() {
    if :: lb_f < l_base -> lb_f = l_base :: else fi;
    lb_v = (lb_p == 0 -> NOEXP : lb_f + lb_p)
}

/* ledger_bound: min over the candidates of max(sent, base) + lease */
inline ledger_bound() {
    lb_bound = NOEXP; lb_n = 0; lb_s = 0;
#ifdef R3
    if
    :: l_last[r3_src].used ->
        lb_f = l_last[r3_src].sent; lb_p = l_last[r3_src].lease;
        bound_from();
        lb_bound = lb_v; lb_n = 1
    :: else
    fi;
    lb_s = 2;
#endif
    do
    :: lb_s < 2 ->
        if
        :: l_last[lb_s].used ->
            lb_n++;
            lb_f = l_last[lb_s].sent; lb_p = l_last[lb_s].lease;
            bound_from();
            if :: lb_v < lb_bound -> lb_bound = lb_v :: else fi
        :: else
        fi;
        if
        :: l_flight[lb_s].used ->
            lb_n++;
            lb_f = l_flight[lb_s].sent; lb_p = l_flight[lb_s].lease;
            bound_from();
            if :: lb_v < lb_bound -> lb_bound = lb_v :: else fi
        :: else
        fi;
        lb_s++
    :: else -> break
    od;
#ifndef R3
    if
    :: l_unknown > 0 ->
        lb_f = l_base; lb_p = l_unknown; bound_from();
        if :: lb_v < lb_bound -> lb_bound = lb_v :: else fi
    :: else
    fi
#endif
}

inline ledger_reset() {
    l_last[0].used = 0; l_last[0].sent = 0; l_last[0].lease = 0;
    l_last[0].begun = 0; l_last[0].done = 0;
    l_last[1].used = 0; l_last[1].sent = 0; l_last[1].lease = 0;
    l_last[1].begun = 0; l_last[1].done = 0;
    l_flight[0].used = 0; l_flight[0].sent = 0; l_flight[0].lease = 0;
    l_flight[0].begun = 0; l_flight[0].done = 0;
    l_flight[1].used = 0; l_flight[1].sent = 0; l_flight[1].lease = 0;
    l_flight[1].begun = 0; l_flight[1].done = 0;
    l_base = 0; l_unknown = 0; r_gone = 0; l_seq = 0
}

inline ledger_send(src, s_at, s_px) {
    l_flight[src].used = 1; l_flight[src].sent = s_at;
    l_flight[src].lease = s_px; l_seq++; l_flight[src].begun = l_seq;
    l_flight[src].done = 0
}

/* outcome: 1 ran on our key, 0 found it not ours, 2 unknown */
inline ledger_reply(src, outcome) {
    lc.used = l_flight[src].used; lc.sent = l_flight[src].sent;
    lc.lease = l_flight[src].lease; lc.begun = l_flight[src].begun;
    l_flight[src].used = 0; l_flight[src].sent = 0; l_flight[src].lease = 0;
    l_flight[src].begun = 0; l_flight[src].done = 0;
    if
    :: !lc.used
    :: lc.used && outcome == 2 ->
        if
        :: lc.lease > 0 && (l_unknown == 0 || lc.lease < l_unknown) ->
            l_unknown = lc.lease
        :: else
        fi
    :: lc.used && outcome == 0 -> r_gone = 1
    :: lc.used && outcome == 1 ->
        l_seq++; lc.done = l_seq;
        /* what was known to have run before this was sent ran before it */
        lb_s = 0;
        do
        :: lb_s < 2 ->
            if
            :: l_last[lb_s].used && l_last[lb_s].done < lc.begun ->
                l_last[lb_s].used = 0; l_last[lb_s].sent = 0;
                l_last[lb_s].lease = 0; l_last[lb_s].begun = 0;
                l_last[lb_s].done = 0
            :: else
            fi;
            lb_s++
        :: else -> break
        od;
        l_last[src].used = 1; l_last[src].sent = lc.sent;
        l_last[src].lease = lc.lease; l_last[src].begun = lc.begun;
        l_last[src].done = lc.done;
#ifdef R3
        r3_src = src;
#endif
        if :: lc.sent > l_base -> l_base = lc.sent :: else fi
    fi;
    lc.used = 0; lc.sent = 0; lc.lease = 0; lc.begun = 0; lc.done = 0
}

/* ledger_publish: the bound, and when the renewer goes next */
inline ledger_publish() {
    ledger_bound();
    if :: !r_lost && !r_gone -> vu[0] = lb_bound :: else fi;
    if
    :: lb_bound == NOEXP -> rn_next = NOEXP
    :: lb_bound != NOEXP && lb_n > 1 && !l_flight[0].used &&
       !l_flight[1].used -> rn_next = 0
    :: else -> rn_next = l_base + (lb_bound - l_base) / 3
    fi
}

/* fairlock__lease_start, from take_grant: after a capped hand-off with
 * the capped lease, and clients.pml then sets rn_lease to the full one
 * (fairlock__lease_start_capped: the first renewal is the confirmation) */
inline renew_start(rs_px, rs_at) {
    r_grant++; rn_lease = rs_px;
    ledger_reset();
    ledger_send(BY_OWNER, rs_at, rs_px);
    ledger_reply(BY_OWNER, 1);
    r_active = 1; r_lost = 0;
    ledger_publish()
}

/* The renewal thread (renew_main).  r_stop ends it with the client. */
proctype renewer() {
    byte rtok, rl, rs, rg, outcome, pu;
    bit lost;
end_renewer:
    do
    :: atomic {
           r_active && !r_inflight && now >= rn_next ->
           rtok = ctok[0]; rl = rn_lease; rs = now; rg = r_grant;
           ledger_send(BY_RENEWER, rs, rl); ledger_publish(); r_inflight = 1
       };
       /* on the wire, or held by a stalled server */
       server_delay(rs);
       choose_lost();
       if
       :: lost ->
           /* an I/O error: it ran, or it did not (yet) */
           if
           :: d_step { extend_lua(rtok, rl) }
           :: true
           fi;
           outcome = 2
       :: else -> d_step { extend_lua(rtok, rl); outcome = r_owned }
       fi;
       atomic {
           r_inflight = 0;
           printf("MSC: t%d renewal sent t%d px%d outcome%d\n", now, rs, rl, outcome);
           if
           :: r_active && rg == r_grant ->
               ledger_reply(BY_RENEWER, outcome);
               ledger_publish();
               ledger_bound();
               if
               :: outcome == 1
               :: outcome == 0 || (outcome == 2 && now >= lb_bound) ->
                   /* on_lost: the lease is gone, or Redis did not answer
                    * until it ran out */
                   r_lost = 1; r_active = 0; vu[0] = 0
               :: else -> rn_next = now + 1 /* RETRY_MS */
               fi
           :: else
           fi;
           rtok = 0; rl = 0; rs = 0; rg = 0; outcome = 0
       }
    :: r_stop -> break
    od
}

/* fairlock_extend(ttl) from the owner, while the renewer runs. */
inline owner_extend() {
    atomic {
        if
        :: ext = EXT_MIN
        :: ext = EXT_MAX
        fi;
        es = now;
        ledger_send(BY_OWNER, es, ext); ledger_publish()
    };
    server_delay(es);
    choose_lost();
    if
    :: lost ->
        if
        :: d_step { extend_lua(tok, ext) }
        :: true
        fi;
        outcome = 2
    :: else -> d_step { extend_lua(tok, ext); outcome = r_owned }
    fi;
    atomic {
        /* fairlock__renew_extend_end */
        ext = l_flight[BY_OWNER].lease;
        ledger_reply(BY_OWNER, outcome);
        granted = outcome == 1 && !r_gone;
        if
        :: granted ->
            rn_lease = ext;
            if :: r_lost -> r_active = 1 :: else fi;
            r_lost = 0
        :: else
        fi;
        ledger_publish();
        printf("MSC: t%d extend sent t%d px%d outcome%d bound %d\n", now, es, ext, outcome, vu[0])
    };
    if
    :: outcome == 0 || (outcome == 1 && !granted) ->
        /* NOTOWNED: renew_stop and forget the request */
        r_active = 0; !r_inflight;
        d_step { held[c] = 0; cs[c] = 0; vu[c] = 0; resolved[tok] = 1 };
        goto done
    :: else
    fi;
    es = 0; ext = 0; outcome = 0
}
