-- common.lua -- definitions every fairlock script starts with.
--
-- Keys, the same in every script (all of one lock, so one hash slot when the
-- name carries a hash tag):
--   KEYS[1] NAME            owner token of the holder; PX = lease
--   KEYS[2] NAME:queue      ZSET of waiters, member "ticket:token:ts_ms",
--                           score = ticket (the reference's layout)
--   KEYS[3] NAME:seq        ticket counter (INCR)
--   KEYS[4] NAME:nfwait     present while non-FIFO waiters wait
--   KEYS[5] NAME:nfwake     list a releaser pushes to wake one non-FIFO waiter
--   KEYS[6] NAME:fence      fencing counter; exists only once a client asked
--                           for fencing, and then counts every grant
--   KEYS[7] NAME:watch      "t0:member": since server time t0 the lock has
--                           been seen free with the foreign member at the
--                           head (see foreign_head_alive); expires 2 x the
--                           window + 1 s after the last look
--   KEYS[8] NAME:who        HASH of who asked (only for requests that sent
--                           an identity, see who_grant): field TOKEN ->
--                           "since_ms<TAB>ident" of a waiter (since it
--                           queued), field "@" -> "TOKEN<TAB>since_ms<TAB>
--                           ident" of the holder (since its grant); ident is
--                           the client's "pid<TAB>host<TAB>label", at most
--                           WHO_MAX bytes.  Fields go with the entry or the
--                           grant; the key lives as long as the queue and
--                           the lease, so a dead holder's record goes with
--                           its lease, and readers check "@" against the
--                           lock key anyway
-- Per-waiter wake lists are NAME:wake:TOKEN.  Only a waiter that has been
-- handed the lock has one, and it expires within that waiter's liveness
-- window, so nothing outlives its owner.
-- NAME:gone:TOKEN is a cancelled request's tombstone (cancel.lua): while
-- it lives, no entry or grant is made for TOKEN.  NAME:kind is where a
-- semaphore or readers-writer lock records itself (sem_common.lua); the
-- mutex only reads it, to refuse such a name.  Neither is in KEYS: both
-- are NAME with a suffix, so in NAME's hash slot (docs/protocol.md).
--
-- Timestamps are the server's wall clock (TIME): every client shares it.
-- Members of other clients (the reference implementation) carry a stamp
-- of their own process's monotonic clock, which means nothing here: they
-- are never aged by it (see foreign_head_alive).
-- Every loop is bounded by MAX_EVICTIONS, every scan by SCAN_PAGE.

local lock_key, queue_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local nf_wait_key, nf_wake_key, fence_key = KEYS[4], KEYS[5], KEYS[6]
local watch_key = KEYS[7]
local who_key = KEYS[8]
local WHO_MAX = 320
local MAX_EVICTIONS = 64
local SCAN_PAGE = 256
-- A live reference waiter at the head takes a free lock within its poll
-- interval (50 ms by default): no window shorter than a few of those may
-- convict it, whatever stale timeout the judging client has.
local MIN_FOREIGN_WINDOW = 250

local function server_now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- fairlock tokens read "<hex>.<lease ms>.<liveness ms>[.f]" (lease 0: no
-- expiry; .f: wants a fencing token), so any script can hand the lock to a
-- waiter on its terms.  Tokens of other clients (the reference
-- implementation) do not match.
local function token_terms(token)
    local lease, live = string.match(token, '^%x+%.(%d+)%.(%d+)$')
    if not lease then
        lease, live = string.match(token, '^%x+%.(%d+)%.(%d+)%.f$')
    end
    if lease then
        return tonumber(lease), tonumber(live)
    end
    return nil, nil
end

-- Returns ticket, token, ts of a queue member, or nil if it is malformed.
local function parse_member(member)
    local ticket, token, ts = string.match(member, '^(%d+):(.+):(%d+)$')
    if not ticket then
        return nil
    end
    return tonumber(ticket), token, tonumber(ts)
end

local function make_member(ticket, token, now)
    return string.format('%d:%s:%d', ticket, token, now)
end

local function wake_key(token)
    return lock_key .. ':wake:' .. token
end

local function gone_key(token)
    return lock_key .. ':gone:' .. token
end

local kind_key = lock_key .. ':kind'

-- Whether a request of `token` may make a queue entry or take the lock:
-- not when the name is recorded as a semaphore or readers-writer lock,
-- nor once the token's request was cancelled (a copy of it that arrives
-- after its cancel would queue or hold a token nobody uses).  Returns the
-- error to reply with, or nil; and how many of the two keys exist, so
-- that a caller that counted them with others knows what else exists.
-- One EXISTS when neither does.
local function refusal(token)
    local n = redis.call('EXISTS', kind_key, gone_key(token))
    if n == 0 then
        return nil, 0
    end
    local tag = redis.call('GET', kind_key)
    if tag and (tag == 'rwlock' or string.match(tag, '^semaphore %d+$')) then
        return redis.error_reply('ERR fairlock-kind: [' .. tag .. ']'), n
    end
    -- Without a kind, or with a key of that name that is no kind record
    -- (a mutex named NAME:kind), the tombstone is what was counted.
    if not tag or n == 2 then
        return redis.error_reply('ERR fairlock: request cancelled'), n
    end
    return nil, n
end

-- The fencing token of a grant to `token`: the next value of the counter
-- once any client asked for fencing, else 0.
local function next_fence(token)
    if string.sub(token, -2) == '.f' or
        redis.call('EXISTS', fence_key) == 1 then
        return redis.call('INCR', fence_key)
    end
    return 0
end

-- Makes `token` the holder; returns the grant's fencing token, or 0.
local function set_owner(token, px)
    if px > 0 then
        redis.call('SET', lock_key, token, 'PX', px)
    else
        redis.call('SET', lock_key, token)
    end
    return next_fence(token)
end

local function current_fence()
    return tonumber(redis.call('GET', fence_key) or '0')
end

-- The member of `token` with score `ticket`, or nil if it was evicted.
local function find_member(ticket, token)
    local found = redis.call('ZRANGEBYSCORE', queue_key, ticket, ticket,
                             'LIMIT', 0, MAX_EVICTIONS)
    for i = 1, #found do
        local _, tok = parse_member(found[i])
        if tok == token then
            return found[i]
        end
    end
    return nil
end

-- One page of the search for the member of `token` when its ticket is
-- unknown (the reply that carried it was lost).  Returns the member or nil,
-- and the ZSCAN cursor to resume from ('0': the whole queue was seen).
-- A page is bounded, so a long queue costs several calls, never one long
-- script.
local function find_member_page(token, cursor)
    local pattern = '*:' .. string.gsub(token, '[%*%?%[%]\\]', '\\%0')
                    .. ':*'
    local page = redis.call('ZSCAN', queue_key, cursor, 'MATCH', pattern,
                            'COUNT', SCAN_PAGE)
    for i = 1, #page[2], 2 do
        local _, tok = parse_member(page[2][i])
        if tok == token then
            return page[2][i], '0'
        end
    end
    return nil, page[1]
end

-- The queue keys go in the same script that empties the queue, so no
-- client can slip an INCR or ZADD between the check and the delete.
local function drop_queue_if_empty()
    if redis.call('ZCARD', queue_key) == 0 then
        redis.call('DEL', queue_key, seq_key, watch_key)
    end
end

-- A foreign head (a client of the reference implementation) takes a free
-- lock itself, with SET NX, within its poll interval; its stamp is of its
-- own monotonic clock and tells nothing.  So it is judged only while the
-- lock is free, by the server's clock: NAME:watch remembers since when
-- scripts have seen the lock free with this member at the head.  While it
-- is the head nobody else takes the lock: our scripts grant only to a
-- fairlock head, and non-FIFO ones defer to a live foreign head.  The
-- record expires when nobody looked for a while, so only a lock left free
-- for longer than `window` with the same head convicts that head.
-- Returns false when the head is dead.
local function foreign_head_alive(head, now, window)
    window = math.max(window, MIN_FOREIGN_WINDOW)
    local seen = redis.call('GET', watch_key)
    local since = now
    if seen then
        local t0, member = string.match(seen, '^(%d+):(.*)$')
        if member == head then
            since = tonumber(t0)
        end
    end
    if now - since > window then
        redis.call('DEL', watch_key)
        return false
    end
    -- Observers come at least every heartbeat (a third of a window) or
    -- check_interval; a longer silence starts the judgement again.
    redis.call('SET', watch_key, string.format('%d:%s', since, head),
               'PX', 2 * window + 1000)
    return true
end

-- A queue holding members of other clients must not expire under them:
-- they never re-register.  Our own members' expiry is only a cleanup for
-- a queue whose every waiter died.
local function keep_queue_for(token)
    if not token_terms(token) then
        redis.call('PERSIST', queue_key)
        redis.call('PERSIST', seq_key)
    end
end

-- Looks at the tail, where other clients add themselves, for a script
-- that changes the queue without enqueueing (cancel, release).
local function keep_queue_for_tail()
    local tail = redis.call('ZRANGE', queue_key, -1, -1)[1]
    if tail then
        local _, token = parse_member(tail)
        if token then
            keep_queue_for(token)
        end
    end
end

-- Whether the head of the queue is a member of another client.
local function foreign_at_head()
    local head = redis.call('ZRANGE', queue_key, 0, 0)[1]
    if not head then
        return false
    end
    local _, token = parse_member(head)
    return token ~= nil and not token_terms(token)
end

-- Removes stale entries from the head of the queue (at most MAX_EVICTIONS)
-- and returns the first live one as member, ticket, token, lease, live;
-- lease is nil for an entry of another client.  A fairlock entry is stale
-- when older than the liveness window its token carries.  A foreign head
-- is judged only when `lock_free` (foreign_head_alive, with foreign_live
-- as its window); otherwise it is returned as live.  `dropping`, when
-- given, is a token whose entry goes without judgement (its owner is
-- leaving).  Returns nil, true when it stopped at its eviction budget with
-- more entries to look at.
local function live_head(now, foreign_live, lock_free, dropping)
    for _ = 1, MAX_EVICTIONS do
        local head = redis.call('ZRANGE', queue_key, 0, 0)[1]
        if not head then
            return nil, false
        end
        local ticket, token, ts = parse_member(head)
        local lease, live = nil, nil
        if token then
            lease, live = token_terms(token)
        end
        if token and token ~= dropping then
            if lease then
                if now - ts <= live then
                    return head, ticket, token, lease, live
                end
            else
                keep_queue_for(token)
                if not lock_free or
                    foreign_head_alive(head, now, foreign_live) then
                    return head, ticket, token, nil, foreign_live
                end
            end
        end
        redis.call('ZREM', queue_key, head)
        if token then
            redis.call('HDEL', who_key, token)
        end
    end
    return nil, true
end

-- NAME:who's expiry: it never outlives the keys whose records it holds.
-- A waiter's record needs the key for as long as its entry may live: the
-- waiter's own calls keep it for `keep` (who_wait), and the queue's expiry
-- bounds every waiter's.  The holder's record "@" needs it for the lease.
-- The key is persisted only for a holder with a record and no lease end
-- (who_grant, extend.lua); whatever removes that record calls
-- who_settle, so a persisted key is always a live holder's.

-- How long the waiters recorded in NAME:who may still call: the queue's
-- expiry when it has one; for a queue kept for a client of another kind
-- (no expiry), three liveness windows of the longest-lived recorded
-- waiter (one HKEYS: rare, a queue shared with other clients); 0 when
-- nobody waits.
local function who_waiters_need()
    local q = redis.call('PTTL', queue_key)
    if q >= 0 then
        return q
    end
    if q == -2 then
        return 0
    end
    local need = 0
    local fields = redis.call('HKEYS', who_key)
    for i = 1, #fields do
        local _, live = token_terms(fields[i])
        if live and 3 * live > need then
            need = 3 * live
        end
    end
    return need
end

-- After the holder's record "@" went (release, a lost lease, a cancel):
-- a key persisted for it gets the waiters' expiry, or goes when nobody
-- waits.  One PTTL when it was not persisted.
local function who_settle()
    if redis.call('PTTL', who_key) ~= -1 then
        return
    end
    local need = who_waiters_need()
    if need > 0 then
        redis.call('PEXPIRE', who_key, need)
    else
        redis.call('DEL', who_key)
    end
end

-- Records `token` as the holder for NAME:who, granted at `now` with a
-- lease of `px` (0: none): from `ident` or, when nil, from its waiter
-- field (a hand-off: one HGET when nobody sent an identity).  The record
-- lives as long as the lease and the queue (extend.lua follows renewals);
-- `no_queue`: the caller knows there is none (one PTTL saved).
local function who_grant(token, ident, now, px, no_queue)
    if ident == nil then
        local w = redis.call('HGET', who_key, token)
        if not w then
            return
        end
        redis.call('HDEL', who_key, token)
        ident = string.match(w, '^%d+\t(.*)$') or ''
    end
    if ident == '' then
        return
    end
    redis.call('HSET', who_key, '@', token .. '\t' .. now .. '\t' ..
               string.sub(ident, 1, WHO_MAX))
    if px == 0 then
        redis.call('PERSIST', who_key)
    elseif no_queue then
        redis.call('PEXPIRE', who_key, px)
    else
        redis.call('PEXPIRE', who_key, math.max(px, who_waiters_need()))
    end
end

-- Records a waiter's identity when it queues (fresh), and keeps NAME:who
-- for `keep` ms (the queue's expiry) on each of its calls.  The expiry is
-- read before the HSET, which makes a key without one: a key that had
-- none is persisted for a holder without lease end and stays so.
local function who_wait(token, ident, now, keep, fresh)
    if ident == '' then
        return
    end
    local ttl = redis.call('PTTL', who_key)
    if fresh then
        redis.call('HSET', who_key, token, now .. '\t' ..
                   string.sub(ident, 1, WHO_MAX))
    end
    if (fresh and ttl == -2) or (ttl >= 0 and ttl < keep) then
        redis.call('PEXPIRE', who_key, keep)
    end
end

-- Called whenever the lock key is free: grants the lock to the live head
-- if it is a fairlock waiter (a head of another client takes it itself
-- with SET NX).  A head other than the caller gets a lease no longer than
-- its liveness window, so a head that died since its last heartbeat holds
-- the lock no longer than a dead waiter would hold the queue.  Returns the
-- ticket and fence when the caller itself was granted; else nil and
-- whether the eviction budget ran out before a live head was found (the
-- caller should then call again at once: the lock is free).
local function grant_to_head(now, caller, caller_lease, foreign_live, dropping)
    local head, ticket, token, lease, live =
        live_head(now, foreign_live, true, dropping)
    if not head then
        drop_queue_if_empty()
        return nil, ticket -- live_head's "budget ran out"
    end
    local granted, fence = nil, 0
    if token == caller then
        fence = set_owner(token, caller_lease)
        granted = ticket
    elseif lease then
        local px = lease
        if px == 0 or px > live then
            px = live
        end
        -- The push goes before the lock key is set: on a Cluster node whose
        -- slot is migrating, a wake list that is not here fails the script,
        -- and it must fail before the grant (a fence skipped is harmless).
        local wake = wake_key(token)
        local fence = next_fence(token)
        redis.call('RPUSH', wake, string.format('%d:%d:%d', ticket, px, fence))
        redis.call('PEXPIRE', wake, px) -- no message outlives its grant
        if px > 0 then
            redis.call('SET', lock_key, token, 'PX', px)
        else
            redis.call('SET', lock_key, token)
        end
        who_grant(token, nil, now, px)
    else
        return nil, false -- a live foreign head takes the lock itself
    end
    redis.call('ZREM', queue_key, head)
    -- Clean up behind the new holder; the lock is no longer free, so a
    -- foreign head is left alone.
    live_head(now, foreign_live, false, nil)
    keep_queue_for_tail()
    drop_queue_if_empty()
    return granted, fence
end

-- After a release: if no FIFO waiter is left (a live one of another kind
-- takes the lock itself), wake one non-FIFO waiter.  The wake list lives
-- no longer than the marker of waiters.
local function wake_non_fifo()
    if redis.call('EXISTS', lock_key, queue_key) == 0 then
        local ttl = redis.call('PTTL', nf_wait_key)
        if ttl > 0 then
            redis.call('RPUSH', nf_wake_key, '1')
            redis.call('PEXPIRE', nf_wake_key, ttl)
        end
    end
end

-- Frees the lock held by `token`.  Returns 1 if it was held.  Without a
-- queue there is nobody to hand over to, and no need for the clock.
-- `forget`: the holder's identity record goes too (only a caller that may
-- have sent one pays for the HDEL).  A holder without lease end may have
-- had NAME:who persisted for its record: its record goes whoever releases
-- it (a handle without identity breaking it by token), so that the key
-- does not stay persisted for nobody.
local function release_if_owner(token, foreign_live, dropping, forget)
    if redis.call('GET', lock_key) ~= token then
        return 0
    end
    redis.call('DEL', lock_key)
    if forget or token_terms(token) == 0 then
        redis.call('HDEL', who_key, '@')
        who_settle()
    end
    if redis.call('EXISTS', queue_key) == 1 then
        grant_to_head(server_now_ms(), nil, 0, foreign_live, dropping)
    end
    wake_non_fifo()
    return 1
end

