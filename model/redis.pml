/* redis.pml -- the keys of one lock and the scripts of src/lua/, each an
 * inline run inside one d_step, because Redis runs a script without
 * interleaving anything else.  Section names follow the Lua functions so
 * that a change in a script points at the inline to change here.
 *
 * The scripts this file mirrors, by the SHA-1 of the text sent to Redis
 * (common.lua prepended, as cmake/embed_lua.cmake computes it).  The unit
 * test model_mirrors fails when a script changes and these do not: review
 * the model against the new script, then copy the new SHA-1 here.
 *   mirrors acquire 46ed948235c1c0dc51b530a7d2a7f05b92089c48
 *   mirrors cancel  32d90d2190013447f8bcb5acf330ea27ae581680
 *   mirrors release 17d5620bd6c609542b6d9689b764d162825e803e
 *   mirrors extend  da2bad2bf0c6991d6d9e435e4803f989f145d1e4
 *
 * Not modelled: NAME:who, the identity records (KEYS[8]).  The scripts
 * only write it (and status.lua reads it), and no decision of any script
 * depends on it -- who is granted, evicted or woken is the same with or
 * without it -- so it adds nothing to the states the model checks.
 *
 * Scratch variables are `hidden`: they live only inside one d_step, so
 * keeping them out of the state vector loses nothing and keeps states
 * that differ only by leftovers from counting twice. */

#define WATCH_DEL() watch_on = 0; watch_t0 = 0; watch_tk = 0; watch_tok = 0; watch_exp = 0

/* ---- the keys (common.lua's KEYS) ------------------------------------- */
byte owner;              /* NAME: token of the holder, 0 = no key */
byte own_exp;            /* its expiry (absolute tick), NOEXP = none */
byte q_n;                /* NAME:queue, members sorted by ticket */
byte q_tk[QN];
byte q_tok[QN];
byte q_ts[QN];           /* server tick for ours; 0 for the reference's */
byte q_exp;
bool seq_on;             /* NAME:seq */
byte seq;
byte seq_exp;
bool w_on[NTOK];         /* NAME:wake:TOKEN, one message at most */
byte w_tk[NTOK];
byte w_px[NTOK];
byte w_fn[NTOK];
byte w_exp[NTOK];
byte fence;              /* NAME:fence: every token asks for fencing */
byte g_exp[NTOK];        /* NAME:gone:TOKEN, a cancelled request's
                          * tombstone: its expiry, 0 = no key */
bool watch_on;           /* NAME:watch */
byte watch_t0;
byte watch_tk;
byte watch_tok;
byte watch_exp;

/* ---- script scratch ---------------------------------------------------- */
hidden byte h_i, h_j, h_k;
hidden byte lh_found, fh_alive;
hidden byte gt_granted, gt_fence, gt_px, gt_tk, gt_tok;
hidden byte fw, since;
hidden byte tail_tk, tail_tok;
hidden short ttl;
/* arguments of the inlines that call one another (spin inlines take no
 * nested parameters) */
hidden byte lh_free, lh_drop, g_caller, g_lease, g_drop, rl_tok, rl_drop, kq_tok;
hidden byte holder;
hidden byte found, is_foreign;
hidden byte tkt;   /* the ticket argument of acquire and cancel */
/* a script's reply, copied by the caller unless the reply is lost */
hidden byte r_granted, r_ticket, r_rank, r_pttl, r_lease, r_fence, r_next;
hidden byte r_undone, r_released, r_owned;
hidden byte r_refused;  /* acquire.lua replied "request cancelled" */

/* Redis deletes a key when its TTL runs out; the model does it as the
 * clock ticks, so every state already shows what a command would see. */
inline expire_keys() {
    if
    :: owner != 0 && own_exp <= now -> owner = 0; own_exp = 0
    :: else
    fi;
    if
    :: q_n > 0 && q_exp <= now ->
        h_i = 0;
        do
        :: h_i < QN -> q_tk[h_i] = 0; q_tok[h_i] = 0; q_ts[h_i] = 0; h_i++
        :: else -> break
        od;
        q_n = 0; q_exp = 0
    :: else
    fi;
    if
    :: seq_on && seq_exp <= now -> seq_on = 0; seq = 0; seq_exp = 0
    :: else
    fi;
    h_i = 0;
    do
    :: h_i < NTOK ->
        if
        :: w_on[h_i] && w_exp[h_i] <= now ->
            w_on[h_i] = 0; w_tk[h_i] = 0; w_px[h_i] = 0; w_fn[h_i] = 0;
            w_exp[h_i] = 0
        :: else
        fi;
        if
        :: g_exp[h_i] != 0 && g_exp[h_i] <= now -> g_exp[h_i] = 0
        :: else
        fi;
        h_i++
    :: else -> break
    od;
    if
    :: watch_on && watch_exp <= now -> WATCH_DEL()
    :: else
    fi
}

/* ZREM of the member at index `at`. */
inline zrem(at) {
    h_k = at;
    do
    :: h_k + 1 < q_n ->
        q_tk[h_k] = q_tk[h_k + 1]; q_tok[h_k] = q_tok[h_k + 1];
        q_ts[h_k] = q_ts[h_k + 1]; h_k++
    :: else -> break
    od;
    q_n--;
    q_tk[q_n] = 0; q_tok[q_n] = 0; q_ts[q_n] = 0;
    if
    :: q_n == 0 -> q_exp = 0 /* an empty zset is no key */
    :: else
    fi
}

/* ZADD: a new key has no TTL; an existing one keeps its own. */
inline zadd(tk, tok, ts) {
    assert(q_n < QN);
    if
    :: q_n == 0 -> q_exp = NOEXP
    :: else
    fi;
    h_k = q_n;
    do
    :: h_k > 0 && q_tk[h_k - 1] > tk ->
        q_tk[h_k] = q_tk[h_k - 1]; q_tok[h_k] = q_tok[h_k - 1];
        q_ts[h_k] = q_ts[h_k - 1]; h_k--
    :: else -> break
    od;
    q_tk[h_k] = tk; q_tok[h_k] = tok; q_ts[h_k] = ts;
    q_n++
}

/* INCR: a missing key counts from 0 and has no TTL. */
inline incr_seq() {
    if
    :: seq_on -> seq++
    :: else -> seq_on = 1; seq = 1; seq_exp = NOEXP
    fi
}

inline wake_del(tok) {
    w_on[tok] = 0; w_tk[tok] = 0; w_px[tok] = 0; w_fn[tok] = 0; w_exp[tok] = 0
}

/* ---- common.lua -------------------------------------------------------- */

/* next_fence / set_owner: every token carries .f, so every grant counts. */
inline set_owner(tok, px) {
    owner = tok;
    own_exp = (px > 0 -> now + px : NOEXP);
    fence++;
    FIFO_CHECK(tok)
}

/* drop_queue_if_empty: DEL queue, seq, watch in the script that empties
 * the queue. */
inline drop_queue_if_empty() {
    if
    :: q_n == 0 -> seq_on = 0; seq = 0; seq_exp = 0; WATCH_DEL()
    :: else
    fi
}

/* keep_queue_for: PERSIST queue and seq for a member of another client. */
inline keep_queue_for() {
    if
    :: FOREIGN(kq_tok) ->
        if :: q_n > 0 -> q_exp = NOEXP :: else fi;
        if :: seq_on -> seq_exp = NOEXP :: else fi
    :: else
    fi
}

inline keep_queue_for_tail() {
    if
    :: q_n > 0 -> kq_tok = q_tok[q_n - 1]; keep_queue_for()
    :: else
    fi
}

/* foreign_head_alive(head, now, window), the head at index 0. */
inline foreign_head_alive() {
    fw = (FLIVE > MINFW -> FLIVE : MINFW);
    since = now;
    if
    :: watch_on && watch_tk == q_tk[0] && watch_tok == q_tok[0] ->
        since = watch_t0
    :: else
    fi;
    if
    :: now - since > fw -> WATCH_DEL(); fh_alive = 0
    :: else ->
        watch_on = 1; watch_t0 = since; watch_tk = q_tk[0];
        watch_tok = q_tok[0]; watch_exp = now + 2 * fw + 1; fh_alive = 1
    fi
}

/* live_head(now, foreign_live, lock_free, dropping): evicts stale heads;
 * lh_found says whether index 0 is a live head.  MAX_EVICTIONS (64) never
 * binds with at most QN members, so the "budget ran out" result is not
 * modelled. */
inline live_head() {
    lh_found = 0;
    do
    :: q_n == 0 -> break
    :: else ->
        if
        :: q_tok[0] != lh_drop && !FOREIGN(q_tok[0]) ->
            /* a fairlock entry: stale when older than its window */
            if
            :: now - q_ts[0] <= LIVE -> lh_found = 1
            :: else
            fi
        :: q_tok[0] != lh_drop && FOREIGN(q_tok[0]) ->
            kq_tok = q_tok[0]; keep_queue_for();
#ifdef R1
            /* mutant R1: aged by its own monotonic stamp, which is far
             * behind the server's epoch clock: always stale */
            skip
#else
            if
            :: !lh_free -> lh_found = 1
            :: else ->
                foreign_head_alive();
                if :: fh_alive -> lh_found = 1 :: else fi
            fi
#endif
        :: else /* dropping: its owner is leaving */
        fi;
        if
        :: lh_found -> break
        :: else -> zrem(0)
        fi
    od
}

/* grant_to_head(now, caller, caller_lease, foreign_live, dropping):
 * gt_granted is the caller's ticket when the caller got the lock. */
inline grant_to_head() {
    gt_granted = 0; gt_fence = 0;
    lh_free = 1; lh_drop = g_drop; live_head();
    if
    :: !lh_found -> drop_queue_if_empty()
    :: else ->
        gt_tk = q_tk[0]; gt_tok = q_tok[0];
        if
        :: gt_tok == g_caller ->
            /* branch: token == caller */
            set_owner(g_caller, g_lease);
            gt_fence = fence; gt_granted = gt_tk
        :: gt_tok != g_caller && !FOREIGN(gt_tok) ->
            /* branch: hand-off, lease capped at the head's window, pushed
             * before the key is set */
            gt_px = LEASE_OF(gt_tok);
            if :: gt_px == 0 || gt_px > LIVE -> gt_px = LIVE :: else fi;
#ifndef B1
            assert(!w_on[gt_tok]); /* attempts delete it, grants expire it */
#endif
            w_on[gt_tok] = 1; w_tk[gt_tok] = gt_tk; w_px[gt_tok] = gt_px;
            w_fn[gt_tok] = fence + 1;
#ifdef B1
            w_exp[gt_tok] = now + LIVE; /* mutant B1: outlives the grant */
#else
            w_exp[gt_tok] = now + gt_px; /* PEXPIRE wake px */
#endif
            set_owner(gt_tok, gt_px)
        :: else /* a live foreign head takes the lock itself */
        fi;
        if
        :: owner == gt_tok ->
            zrem(0);
            lh_free = 0; lh_drop = 0; live_head();
            keep_queue_for_tail();
            drop_queue_if_empty()
        :: else
        fi
    fi
}

/* release_if_owner(token, foreign_live, dropping) -> h_j; the non-FIFO
 * wake-up (wake_non_fifo) has no waiter to wake in the model. */
inline release_if_owner() {
    if
    :: owner != rl_tok -> h_j = 0
    :: else ->
        owner = 0; own_exp = 0;
        if
        :: q_n > 0 -> g_caller = 0; g_lease = 0; g_drop = rl_drop; grant_to_head()
        :: else
        fi;
        h_j = 1
    fi
}

/* find_member(ticket, token): index in h_i, found. */
inline find_member(tk, tok) {
    found = 0; h_i = 0;
    do
    :: h_i < q_n && q_tk[h_i] == tk && q_tok[h_i] == tok -> found = 1; break
    :: h_i < q_n && !(q_tk[h_i] == tk && q_tok[h_i] == tok) -> h_i++
    :: else -> break
    od
}

/* find_member_page(token, cursor), every page at once: the client repeats
 * cancel.lua until the cursor is '0' with nothing else on its connection,
 * and each call is idempotent, so one call that scans all equals those. */
inline find_member_by_token(tok) {
    found = 0; h_i = 0;
    do
    :: h_i < q_n && q_tok[h_i] == tok -> found = 1; break
    :: h_i < q_n && q_tok[h_i] != tok -> h_i++
    :: else -> break
    od
}

/* ---- acquire.lua (ARGV: token, ticket, foreign_live, try_once = 0) -----
 * NAME:kind (a semaphore's record) is not modelled: the model has no
 * client of the other kinds, so the key never exists here. */
inline acquire_lua(tok, lease) {
    holder = owner;
    r_granted = 0; r_rank = 0; r_pttl = 0; r_lease = 0; r_fence = 0;
    r_next = 0; r_ticket = tkt; r_refused = 0;
    found = 0;
    if
    :: holder != tok && tkt > 0 -> find_member(tkt, tok)
    :: else
    fi;
    if
    :: holder == tok ->
        /* branch: handed over since our last call */
        wake_del(tok);
        r_granted = 1; r_pttl = (own_exp == NOEXP -> 0 : own_exp - now);
        r_lease = r_pttl; r_fence = fence
    :: holder == 0 && tkt == 0 && q_n == 0 && !seq_on && g_exp[tok] == 0 ->
        /* branch: nobody waits (EXISTS queue seq kind gone is 0), ticket
         * 1 without the queue keys */
        ENQ(tok);
        set_owner(tok, lease);
        r_granted = 1; r_ticket = 1; r_lease = lease; r_fence = fence
    :: holder != tok && !found && g_exp[tok] != 0 ->
        /* refusal: the token was cancelled; a copy of its request that
         * arrives after the cancel makes no entry and takes nothing */
        r_refused = 1
    :: else ->
        if
        :: tkt > 0 ->
#ifndef B1
            /* a message here is from a grant that expired */
            wake_del(tok);
#endif
            if :: found -> zrem(h_i) :: else fi
        :: else
        fi;
        tail_tk = 0; tail_tok = 0;
        if
        :: q_n > 0 -> tail_tk = q_tk[q_n - 1]; tail_tok = q_tok[q_n - 1]
        :: else
        fi;
        if
        :: !found ->
            /* branch: new request, or evicted: to the back */
            ENQ(tok);
            incr_seq();
            tkt = seq;
            if
            :: q_n > 0 && tail_tk >= tkt ->
                /* branch: NAME:seq deleted under a live queue */
                tkt = tail_tk + 1; seq = tkt; seq_exp = NOEXP
            :: else
            fi
        :: else
        fi;
        ttl = (q_n > 0 -> (q_exp == NOEXP -> -1 : q_exp - now) : -2);
        is_foreign = q_n > 0 && FOREIGN(tail_tok);
        zadd(tkt, tok, now);
        if
        :: is_foreign -> kq_tok = tail_tok; keep_queue_for()
        :: !is_foreign && (ttl == -2 || (ttl >= 0 && ttl < 3 * LIVE)) ->
            q_exp = now + 3 * LIVE;
            if :: seq_on -> seq_exp = now + 3 * LIVE :: else fi
        :: !is_foreign && ttl >= 0 && ttl >= 3 * LIVE && seq_on &&
           seq_exp == NOEXP ->
            seq_exp = now + 3 * LIVE /* remade by an INCR of its own */
        :: else
        fi;
        r_ticket = tkt;
        if
        :: holder == 0 ->
            g_caller = tok; g_lease = lease; g_drop = 0; grant_to_head();
            if
            :: gt_granted > 0 ->
                r_granted = 1; r_ticket = gt_granted; r_lease = lease;
                r_fence = gt_fence
            :: else
            fi
        :: else
        fi;
        if
        :: !r_granted ->
            find_member(tkt, tok);
            assert(found); /* a fresh entry is never stale */
            r_rank = h_i;
            if
            :: is_foreign || (holder != 0 && FOREIGN(holder)) ||
               (r_rank > 1 && q_n > 0 && FOREIGN(q_tok[0])) -> r_next = 2
            :: else
            fi;
            r_pttl = (owner == 0 || own_exp == NOEXP -> 0 : own_exp - now)
        :: else
        fi
    fi
}

/* ---- cancel.lua (ARGV: token, ticket, foreign_live, cursor, in_flight) -
 * in_flight: the request's last acquire got no reply, so a copy of it
 * may still arrive (late_acquire); the tombstone lives one window.  Only
 * a late copy ever reads it (the client never uses a token after its
 * cancel, which acquire_lua's caller asserts), so without -DLATE it is
 * left out: the same runs, without states that differ only by it. */
inline cancel_lua(tok, in_flight) {
#if defined(LATE) && !defined(M1)
    if
    :: in_flight -> g_exp[tok] = now + LIVE
    :: else
    fi;
#endif
    found = 0;
    if
    :: tkt > 0 ->
        find_member(tkt, tok);
#ifndef B3
        if :: !found -> find_member_by_token(tok) :: else fi
#endif
    :: else ->
#ifndef B3
        find_member_by_token(tok)
#else
        skip /* mutant B3: an unknown ticket finds nothing */
#endif
    fi;
    if
    :: found -> zrem(h_i); drop_queue_if_empty()
    :: else
    fi;
    wake_del(tok);
    rl_tok = tok; rl_drop = tok; release_if_owner();
    r_undone = h_j;
    if
    :: !r_undone && owner == 0 ->
        g_caller = 0; g_lease = 0; g_drop = tok; grant_to_head()
    :: else
    fi;
    keep_queue_for_tail()
}

/* ---- release.lua ------------------------------------------------------- */
inline release_lua(tok) {
    rl_tok = tok; rl_drop = 0; release_if_owner();
    r_released = h_j
}

/* ---- extend.lua (standalone) ------------------------------------------- */
inline extend_lua(tok, px) {
    if
    :: owner != tok -> r_owned = 0
    :: else ->
        own_exp = (px > 0 -> now + px : NOEXP);
        r_owned = 1
    fi
}
