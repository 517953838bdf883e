/* sem_redis.pml -- the keys of one semaphore or readers-writer lock and
 * the scripts src/lua/sem_*.lua, each an inline run inside one d_step
 * (Redis runs a script with nothing in between).  Section names follow
 * the Lua functions of sem_common.lua, comments name the branch.
 *
 * The scripts this file mirrors, by the SHA-1 of the text sent to Redis
 * (common.lua and sem_common.lua prepended, as cmake/embed_lua.cmake
 * computes it; so a change to either changes every line here).  The unit
 * test model_mirrors_sem fails when a script changes and these do not:
 * review the model against the new script, run ctest -L model, then copy
 * the new SHA-1 here.  sem_status and sem_holds change nothing, and the
 * model needs no read-only query (the properties read the state itself);
 * they are recorded so that a change that makes them write is reviewed.
 *   mirrors sem_acquire 6d71dcceadf3a47ae628fce44d3b99e151c344fc
 *   mirrors sem_release 10283dabd7270b36fc903d8b2e654d2eebf4dcf1
 *   mirrors sem_cancel  e0055cb6347c88db5a40d558b5007d176c909b5f
 *   mirrors sem_extend  9d0cb2028c61f150612f919dead6a51df3bb61c7
 *   mirrors sem_status  193461fb83310b02223ac91ee7b8f3075ecc9515
 *   mirrors sem_holds   257d76867a5c515e18c602a8a7b0de07840ee208
 *
 * Abstractions beyond the mutex model's (docs/protocol.md, "The model"):
 * NAME:holders and NAME:grants are one record per token (end, permit,
 * fence) plus the "#P" entries: the scripts create, change and delete both
 * keys together (add_holder, drop_holder) and settle and sem_extend give
 * both the same expiry, so they exist together and expire together.  The
 * kind tag is one value (every client agrees; a mismatch is an error reply
 * that changes nothing).  Every token carries .f, so NAME:fencing counts
 * every grant.  MAX_EVICTIONS and the ZSCAN page never bind.  Not
 * modelled: NAME:who (identity records, which no decision reads) and the
 * tombstone NAME:gone:TOKEN that sem_cancel leaves for a request whose
 * reply never came (it only refuses a late copy of that request; the
 * mutex model checks it, under -DLATE, and test_lease tests it for the
 * semaphore). */

/* ---- the keys (sem_common.lua's KEYS) ---------------------------------- */
bool kind_on;            /* KEYS[1] NAME:kind */
byte kind_exp;
byte q_n;                /* KEYS[2] NAME:waiters, sorted by ticket */
byte q_tk[QN];
byte q_tok[QN];
byte q_ts[QN];           /* server tick of the member's last call */
byte q_exp;
bool seq_on;             /* KEYS[3] NAME:tickets */
byte seq;
byte seq_exp;
byte hd_end[NTOK];       /* KEYS[4] NAME:holders: score, 0 = no member,
                          * NOEXP = "inf" */
byte hd_pm[NTOK];        /* KEYS[5] NAME:grants: TOKEN -> permit:fence */
byte hd_fn[NTOK];
byte pm_tok[NPERM + 1];  /* KEYS[5] NAME:grants: #P -> TOKEN */
byte hd_n;               /* ZCARD NAME:holders */
byte hd_exp;             /* expiry of NAME:holders and NAME:grants */
byte fence;              /* KEYS[6] NAME:fencing */
bool w_on[NTOK];         /* NAME:grant:TOKEN, one message at most */
byte w_tk[NTOK];
byte w_px[NTOK];
byte w_fn[NTOK];
byte w_pm[NTOK];
byte w_exp[NTOK];

/* ---- script scratch ---------------------------------------------------- */
hidden byte h_i, h_k, h_p, h_t, h_px, h_cnt, h_last;
hidden byte h_wr, h_wait, h_forever, h_skip, found;
hidden byte h_j;
hidden short h_ttl;
/* arguments of the inlines that call one another */
hidden byte g_caller, g_lease, g_drop;
hidden byte g_mine, g_pm, g_fn;  /* grant_heads' result for the caller */
hidden byte tkt;                 /* the ticket argument */
/* a script's reply, copied by the caller unless the reply is lost */
hidden byte r_granted, r_ticket, r_rank, r_pttl, r_lease, r_fence, r_pm;
hidden byte r_undone, r_released, r_owned;

inline hd_clear() {
    h_i = 0;
    do
    :: h_i < NTOK -> hd_end[h_i] = 0; hd_pm[h_i] = 0; hd_fn[h_i] = 0; h_i++
    :: else -> break
    od;
    h_i = 0;
    do
    :: h_i <= NPERM -> pm_tok[h_i] = 0; h_i++
    :: else -> break
    od;
    hd_n = 0; hd_exp = 0
}

inline wake_del(tok) {
    w_on[tok] = 0; w_tk[tok] = 0; w_px[tok] = 0; w_fn[tok] = 0; w_pm[tok] = 0;
    w_exp[tok] = 0
}

/* Redis deletes a key when its TTL runs out; the model does it as the
 * clock ticks. */
inline expire_keys() {
    if :: kind_on && kind_exp <= now -> kind_on = 0; kind_exp = 0 :: else fi;
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
    if :: hd_n > 0 && hd_exp <= now -> hd_clear() :: else fi;
    h_i = 1;
    do
    :: h_i < NTOK ->
        if :: w_on[h_i] && w_exp[h_i] <= now -> wake_del(h_i) :: else fi;
        h_i++
    :: else -> break
    od;
    skip /* a d_step may not end in a loop's break */
}

/* ZREM of the queue member at index `at`. */
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
    if :: q_n == 0 -> q_exp = 0 :: else fi /* an empty zset is no key */
}

/* ZADD: a new key has no TTL; an existing one keeps its own. */
inline zadd(tk, tok, ts) {
    assert(q_n < QN);
    if :: q_n == 0 -> q_exp = NOEXP :: else fi;
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

/* common.lua's find_member(ticket, token): index in h_i, found. */
inline find_member(tk, tok) {
    found = 0; h_i = 0;
    do
    :: h_i < q_n && q_tk[h_i] == tk && q_tok[h_i] == tok -> found = 1; break
    :: h_i < q_n && !(q_tk[h_i] == tk && q_tok[h_i] == tok) -> h_i++
    :: else -> break
    od
}

/* find_member_page(token, cursor), every page at once: the client repeats
 * sem_cancel.lua until the cursor is '0', and each call is idempotent. */
inline find_member_by_token(tok) {
    found = 0; h_i = 0;
    do
    :: h_i < q_n && q_tok[h_i] == tok -> found = 1; break
    :: h_i < q_n && q_tok[h_i] != tok -> h_i++
    :: else -> break
    od
}

/* ---- sem_common.lua ---------------------------------------------------- */

/* drop_holder(token): ZREM holders, HDEL grants token and #permit (the
 * permit grant_of reads, 0 when the token has no grant). */
inline drop_holder(tok) {
    h_p = hd_pm[tok];
    if :: hd_end[tok] != 0 -> hd_n-- :: else fi;
    hd_end[tok] = 0; hd_pm[tok] = 0; hd_fn[tok] = 0;
    if :: h_p > 0 -> pm_tok[h_p] = 0 :: else fi;
    if :: hd_n == 0 -> hd_exp = 0 :: else fi /* empty: no key */
}

/* evict_expired(now): every holder whose score <= now. */
inline evict_expired() {
#ifdef SM_LEAK
    /* mutant SM_LEAK: ended leases are never removed, so a permit comes
     * back only when its holder gives it back (a crashed holder's never) */
    h_t = NTOK;
#else
    h_t = 1;
#endif
    do
    :: h_t < NTOK ->
        if
        :: hd_end[h_t] != 0 && hd_end[h_t] != NOEXP && hd_end[h_t] <= now ->
            drop_holder(h_t)
        :: else
        fi;
        h_t++
    :: else -> break
    od
}

/* free_permit(n): the lowest permit without a "#P" entry, into h_p. */
inline free_permit() {
    h_p = 1;
    do
    :: h_p <= NPERM && pm_tok[h_p] != 0 -> h_p++
    :: h_p <= NPERM && pm_tok[h_p] == 0 -> break
    :: h_p > NPERM -> h_p = 0; break
    od
}

/* add_holder(now, token, px, permit, fence): HSET #permit, ZADD, HSET. */
inline add_holder(tok, px, pm, fn) {
    if :: pm > 0 -> pm_tok[pm] = tok :: else fi;
    if :: hd_n == 0 -> hd_exp = NOEXP :: else fi; /* created without TTL */
    if :: hd_end[tok] == 0 -> hd_n++ :: else fi;
    hd_end[tok] = (px > 0 -> now + px : NOEXP);
    hd_pm[tok] = pm; hd_fn[tok] = fn
}

/* writer_holds(count): the only holder has no .s (h_wr). */
inline writer_holds() {
    h_wr = 0;
    if
    :: hd_n == 1 ->
        h_t = 1;
        do
        :: h_t < NTOK && hd_end[h_t] == 0 -> h_t++
        :: h_t < NTOK && hd_end[h_t] != 0 -> h_wr = !SHARED(h_t); break
        :: else -> break
        od
    :: else
    fi
}

/* sem_common.lua's invariants, after every grant_heads (every script
 * that changes holders but sem_extend, which changes no count): holders
 * are all live (evicted first), at most N of a semaphore, each with its
 * own permit recorded as "#P"; a writer of a readers-writer lock alone. */
inline server_invariant() {
    h_cnt = 0; h_wr = 0; h_t = 1;
    do
    :: h_t < NTOK ->
        if
        :: hd_end[h_t] != 0 ->
            assert(P1_server || hd_end[h_t] > now);
            h_cnt++;
            if :: !SHARED(h_t) -> h_wr = 1 :: else fi;
#ifndef RW
            assert(P1_server || (hd_pm[h_t] >= 1 && hd_pm[h_t] <= NPERM &&
                                 pm_tok[hd_pm[h_t]] == h_t))
#endif
        :: else
        fi;
        h_t++
    :: else -> break
    od;
    assert(P1_server || h_cnt == hd_n);
#ifdef RW
    assert(P1_server || !h_wr || h_cnt == 1)
#else
    assert(P1_server || h_cnt <= NPERM)
#endif
}

/* fits(n, shared, count, writer) for the head's token h_t */
#ifdef RW
#define FITS(t) (SHARED(t) -> !h_wr : h_cnt == 0)
#else
#define FITS(t) (h_cnt < NPERM)
#endif

/* grant_heads(now, n, caller, caller_lease, dropping): grants from the
 * head while it fits; g_mine is the caller's ticket when it was granted,
 * with its permit and fence in g_pm, g_fn.  h_j is the entry looked at:
 * always the head (0) but in mutant SM_SKIP. */
inline grant_heads() {
    g_mine = 0; g_pm = 0; g_fn = 0;
    h_cnt = hd_n;
#ifdef RW
    writer_holds();
#endif
    h_j = 0;
    do
    :: h_j >= q_n -> break /* branch: not head */
    :: else ->
        h_t = q_tok[h_j]; h_skip = 0;
        if
        :: h_t != g_drop && now - q_ts[h_j] <= LIVE && !FITS(h_t) ->
#ifdef SM_SKIP
            /* mutant SM_SKIP: a live head that does not fit is passed
             * over, not waited for (readers go past a queued writer) */
            h_skip = 1
#else
            break /* branch: not fits: nobody overtakes it */
#endif
        :: h_t != g_drop && now - q_ts[h_j] <= LIVE && FITS(h_t) ->
            /* branch: a live head that fits (terms_of: lease, live) */
#ifdef RW
            h_p = 0;
#else
            free_permit();
#endif
            fence++; /* grant_fence: every token carries .f */
            if
            :: h_t == g_caller ->
                /* branch: token == caller, its own lease */
                add_holder(h_t, g_lease, h_p, fence); handed[h_t] = 0;
                g_mine = q_tk[h_j]; g_pm = h_p; g_fn = fence
            :: else ->
                /* branch: hand-off, lease capped at the head's window,
                 * pushed (RPUSH, PEXPIRE px) before the grant is recorded */
                h_px = LEASE_OF(h_t);
#ifndef SM_NOCAP
                if :: h_px == 0 || h_px > LIVE -> h_px = LIVE :: else fi;
#endif
                /* (mutant SM_NOCAP: the head's full lease, so a head that
                 * died holds the permit that long) */
                assert(!w_on[h_t]); /* attempts delete it, grants expire it */
                w_on[h_t] = 1; w_tk[h_t] = q_tk[h_j]; w_px[h_t] = h_px;
                w_fn[h_t] = fence; w_pm[h_t] = h_p; w_exp[h_t] = now + h_px;
                add_holder(h_t, h_px, h_p, fence); handed[h_t] = 1
            fi;
            FIFO_CHECK(h_t);
            h_cnt++;
#ifdef RW
            h_wr = !SHARED(h_t)
#else
            skip
#endif
        :: else /* branch: stale, or `dropping`: removed */
        fi;
        if :: h_skip -> h_j++ :: else -> zrem(h_j) fi /* ZREM head */
    od;
    server_invariant()
}

/* settle(now, keep) */
inline settle(keep) {
    h_wait = q_n > 0;
    if
    :: !h_wait && hd_n == 0 ->
        /* branch: nobody holds or waits: DEL tickets, kind, holders,
         * grants */
        seq_on = 0; seq = 0; seq_exp = 0;
        kind_on = 0; kind_exp = 0; hd_clear()
    :: else ->
        if
        :: !h_wait -> seq_on = 0; seq = 0; seq_exp = 0 /* DEL tickets */
        :: else
        fi;
        /* the last lease's end (ZRANGE -1 -1 WITHSCORES) */
        h_last = 0; h_t = 1;
        do
        :: h_t < NTOK ->
            if :: hd_end[h_t] > h_last -> h_last = hd_end[h_t] :: else fi;
            h_t++
        :: else -> break
        od;
        h_forever = (h_last == NOEXP);
        h_ttl = (h_wait -> keep : 0);
        if
        :: h_last != 0 && !h_forever && h_last - now > h_ttl ->
            h_ttl = h_last - now
        :: else
        fi;
        /* kind, holders, waiters, tickets, grants: PTTL, then PERSIST or
         * PEXPIRE (only a longer one while anyone waits) */
#define SETTLE_KEY(on, exp) \
        if \
        :: on && h_forever -> exp = NOEXP \
        :: on && !h_forever && h_ttl > 0 && \
           (!h_wait || exp == NOEXP || exp - now < h_ttl) -> exp = now + h_ttl \
        :: else \
        fi
        SETTLE_KEY(kind_on, kind_exp);
        SETTLE_KEY(hd_n > 0, hd_exp);
#ifndef SM_NOTTL
        SETTLE_KEY(q_n > 0, q_exp);
#endif
        /* (mutant SM_NOTTL: NAME:waiters keeps the no-TTL of its ZADD, so
         * the entry of a waiter that died behind a holder that died stays
         * for ever) */
        SETTLE_KEY(seq_on, seq_exp)
    fi
}

/* first_end(now): ms until the first lease ends; the client looks again
 * then if it is > 0, so -1 (no end) and -2 (nobody) are both 0 here. */
inline first_end() {
    h_k = NOEXP; h_t = 1;
    do
    :: h_t < NTOK ->
        if :: hd_end[h_t] != 0 && hd_end[h_t] < h_k -> h_k = hd_end[h_t] :: else fi;
        h_t++
    :: else -> break
    od;
    r_pttl = (h_k == NOEXP -> 0 : h_k - now)
}

/* ---- sem_acquire.lua (ARGV: token, ticket, kind, try_once) ------------ */
inline sem_acquire_lua(tok, lease, try) {
    r_granted = 0; r_rank = 0; r_pttl = 0; r_lease = 0; r_fence = 0;
    r_pm = 0; r_ticket = tkt;
    /* check_kind(expected, true): every client agrees */
    evict_expired();
    if
    :: hd_end[tok] != 0 ->
        /* branch: held, handed over by another script since our last call */
        wake_del(tok);
        r_granted = 1;
        r_pttl = (hd_end[tok] == NOEXP -> 0 : hd_end[tok] - now);
        r_lease = r_pttl; r_fence = hd_fn[tok]; r_pm = hd_pm[tok]
    :: else ->
        /* SET kind tag KEEPTTL */
        if :: !kind_on -> kind_on = 1; kind_exp = NOEXP :: else fi;
        found = 0;
        if
        :: tkt > 0 ->
            /* branch: ticket > 0: a message still in our wake list is from
             * a grant that expired */
            wake_del(tok);
            find_member(tkt, tok);
            if :: found -> zrem(h_i) :: else fi
        :: else
        fi;
        if
        :: !found ->
            /* branch: not member: a new ticket, to the back */
            ENQ(tok);
            incr_seq();
            tkt = seq;
            if
            :: q_n > 0 && q_tk[q_n - 1] >= tkt ->
                /* branch: NAME:tickets expired under a queue that did not */
                tkt = q_tk[q_n - 1] + 1; seq = tkt; seq_exp = NOEXP
            :: else
            fi
        :: else
        fi;
        zadd(tkt, tok, now);
        r_ticket = tkt;
        g_caller = tok; g_lease = lease; g_drop = 0; grant_heads();
        if
        :: g_mine > 0 ->
            /* branch: mine */
            settle(3 * LIVE);
            r_granted = 1; r_ticket = g_mine; r_lease = lease; r_fence = g_fn;
            r_pm = g_pm
        :: else ->
            find_member(tkt, tok);
            assert(found); /* a fresh entry is never stale */
            r_rank = h_i;
            if
            :: try ->
                /* branch: try_once: leave the queue, which may unblock
                 * those behind */
                zrem(h_i);
                g_caller = 0; g_lease = 0; g_drop = 0; grant_heads()
            :: else
            fi;
            settle(3 * LIVE);
            first_end()
        fi
    fi
}

/* ---- sem_release.lua (ARGV: token, kind) ------------------------------- */
inline sem_release_lua(tok, mypm) {
    /* check_kind(ARGV[2], false): the same kind */
    evict_expired();
#ifdef SM_BYPERMIT
    /* mutant SM_BYPERMIT: the permit the caller was given is freed, whoever
     * holds it now */
    if
    :: mypm > 0 && pm_tok[mypm] != 0 -> drop_holder(pm_tok[mypm]); r_released = 1
    :: else -> r_released = 0
    fi;
    g_caller = 0; g_lease = 0; g_drop = 0; grant_heads();
    settle(0)
#else
    if
    :: hd_end[tok] == 0 ->
        /* branch: not ZSCORE: never held, or its lease ended */
        if
        :: q_n > 0 -> g_caller = 0; g_lease = 0; g_drop = 0; grant_heads()
        :: else
        fi;
        settle(0);
        r_released = 0
    :: else ->
        drop_holder(tok);
        g_caller = 0; g_lease = 0; g_drop = 0; grant_heads();
        settle(0);
        r_released = 1
    fi
#endif
}

/* ---- sem_cancel.lua (ARGV: token, ticket, kind, cursor) ---------------- */
inline sem_cancel_lua(tok) {
    /* check_kind(ARGV[3], false): the same kind */
    find_member(tkt, tok);
#ifndef SM_GHOST
    if
    :: !found -> find_member_by_token(tok) /* branch: find_member_page */
    :: else
    fi;
#endif
    /* (mutant SM_GHOST: as B3 of the mutex, an entry is found by its
     * ticket only, so the entry of a request whose first reply was lost
     * stays behind its cancel) */
    if :: found -> zrem(h_i) :: else fi;
    wake_del(tok);
    evict_expired();
    r_undone = 0;
    if
    :: hd_end[tok] != 0 -> drop_holder(tok); r_undone = 1
    :: else
    fi;
    g_caller = 0; g_lease = 0; g_drop = tok; grant_heads();
    settle(0)
}

/* ---- sem_extend.lua (standalone; ARGV: token, px) ---------------------- */
inline sem_extend_lua(tok, px) {
    if
    :: hd_end[tok] == 0 || (hd_end[tok] != NOEXP && hd_end[tok] <= now) ->
        /* branch: no score, or an ended lease: never revived */
        r_owned = 0
    :: else ->
        hd_end[tok] = (px > 0 -> now + px : NOEXP); /* ZADD XX */
#define EXTEND_KEY(on, exp) \
        if \
        :: on && px == 0 -> exp = NOEXP \
        :: on && px > 0 && exp != NOEXP && exp - now < px -> exp = now + px \
        :: else \
        fi
        EXTEND_KEY(kind_on, kind_exp);
        EXTEND_KEY(q_n > 0, q_exp);
        EXTEND_KEY(seq_on, seq_exp);
        EXTEND_KEY(hd_n > 0, hd_exp);
        r_owned = 1
    fi
}
