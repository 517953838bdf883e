-- sem_common.lua -- definitions every semaphore and readers-writer script
-- starts with.  common.lua comes first (see embed_lua.cmake), for its
-- queue helpers (server_now_ms, parse_member, make_member, find_member,
-- find_member_page), which read the queue as KEYS[2] and the counters as
-- KEYS[3] and KEYS[6], as they do here; its mutex functions are never
-- called, and its other keys mean nothing here.
--
-- Keys, the same in every script, all of one name (so one hash slot when
-- the name carries a hash tag, as for the mutex), none of them the
-- mutex's but the last:
--   KEYS[1] NAME:kind     what the name is: "semaphore N" or "rwlock".
--                         Set by the first acquire, checked by every
--                         script, deleted with the rest when nobody holds
--                         or waits
--   KEYS[2] NAME:waiters  ZSET of waiters, member "ticket:token:ts_ms",
--                         score = ticket (the mutex queue's layout)
--   KEYS[3] NAME:tickets  ticket counter (INCR)
--   KEYS[4] NAME:holders  ZSET token -> end of its lease (server ms, "inf"
--                         for none).  Holders whose end has passed are
--                         removed by the next script, before it counts
--   KEYS[5] NAME:grants   HASH token -> "permit:fence" of each holder, and
--                         "#permit" -> token for the permits in use
--   KEYS[6] NAME:fencing  fencing counter; exists once a client asked for
--                         fencing, and then counts every grant
--   KEYS[7] NAME          the mutex's lock key, only looked at: a name in
--                         use as a mutex is refused, not shared
--   KEYS[8] NAME:who      HASH of who asked (requests that sent an
--                         identity): TOKEN -> "since_ms<TAB>ident" of each
--                         waiter (since it queued) and holder (since its
--                         grant), removed with the entry or the holder
--                         (drop_holder: an ended lease takes it too)
-- A holder handed a grant has a wake list NAME:grant:TOKEN, which expires
-- with the capped lease it carries.  A request cancelled while its reply
-- was owed leaves NAME:gone:TOKEN for one liveness window (sem_cancel.lua),
-- as the mutex's does.  Neither is in KEYS: both are NAME with a suffix,
-- so in NAME's hash slot.
--
-- Invariants every script keeps (docs/protocol.md):
--   semaphore: live holders <= N; permit numbers of live holders are
--              distinct and in 1..N
--   rwlock:    either one holder without ".s" (a writer) or only ".s"
--              holders (readers)
--   FIFO:      a waiter is granted only when every waiter ahead of it was
--              granted or removed (stale, cancelled): the head blocks those
--              behind it, so a writer is never overtaken by later readers
-- Every loop is bounded: by MAX_EVICTIONS, or by the number of holders
-- (at most the largest N the name has had).

local kind_key, holders_key = KEYS[1], KEYS[4]
local grants_key, mutex_key = KEYS[5], KEYS[7]

-- Tokens read "<hex>.<lease ms>.<liveness ms>[.f][.s]": .f wants a fencing
-- token, .s asks for a shared (reader) hold of a readers-writer lock.
-- Returns lease, live, shared or nil.
local function terms_of(token)
    local lease, live, flags = string.match(token, '^%x+%.(%d+)%.(%d+)(.*)$')
    if not lease or not (flags == '' or flags == '.f' or flags == '.s' or
                         flags == '.f.s') then
        return nil
    end
    return tonumber(lease), tonumber(live), string.sub(flags, -2) == '.s'
end

local function wake_key(token)
    return string.sub(kind_key, 1, -6) .. ':grant:' .. token
end

-- common.lua's gone_key and kind_key are the mutex's; these are ours.
local function gone_key(token)
    return string.sub(kind_key, 1, -6) .. ':gone:' .. token
end

-- The permits of a tag: N for "semaphore N", 0 for a readers-writer lock.
local function permits_of(tag)
    return tonumber(string.match(tag or '', '^semaphore (%d+)$') or '0')
end

-- The tag recorded for the name, after checking it against the caller's:
-- `exact` (acquire) wants the same tag, N included; otherwise the same
-- kind will do, so that a holder can still release after N was changed on
-- purpose.  Returns tag, or nil and the error to reply with.  The error
-- names the recorded tag in brackets; the client words the message.
local function check_kind(expected, exact)
    local tag = redis.call('GET', kind_key)
    if not tag then
        if redis.call('EXISTS', mutex_key) == 1 then
            return nil, 'ERR fairlock-kind: [mutex]'
        end
        return expected
    end
    if tag == expected or (not exact and string.match(tag, '^%a+') ==
                                         string.match(expected, '^%a+')) then
        return tag
    end
    return nil, 'ERR fairlock-kind: [' .. tag .. ']'
end

-- common.lua's next_fence, for tokens that may end in .s.
local function grant_fence(token)
    if string.find(token, '.f', 1, true) or
        redis.call('EXISTS', fence_key) == 1 then
        return redis.call('INCR', fence_key)
    end
    return 0
end

-- The permit and fence recorded for a holder.
local function grant_of(token)
    local g = redis.call('HGET', grants_key, token)
    if not g then
        return 0, 0
    end
    local permit, fence = string.match(g, '^(%d+):(%d+)$')
    return tonumber(permit), tonumber(fence)
end

local function drop_holder(token)
    redis.call('ZREM', holders_key, token)
    redis.call('HDEL', who_key, token)
    local permit = grant_of(token)
    redis.call('HDEL', grants_key, token, '#' .. permit)
end

-- Removes every holder whose lease has ended: all of them, so that the
-- count of holders is the count of live ones.
local function evict_expired(now)
    local gone = redis.call('ZRANGEBYSCORE', holders_key, '-inf', now)
    for i = 1, #gone do
        drop_holder(gone[i])
    end
end

-- The lowest free permit: at most holders + 1 lookups.
local function free_permit(n)
    for p = 1, n do
        if redis.call('HEXISTS', grants_key, '#' .. p) == 0 then
            return p
        end
    end
    return 0 -- only after N was lowered on purpose: none free yet
end

-- Records `token` as a holder until now + px (px 0: no expiry) with the
-- permit and fence it was given.
local function add_holder(now, token, px, permit, fence)
    if permit > 0 then
        redis.call('HSET', grants_key, '#' .. permit, token)
    end
    redis.call('ZADD', holders_key, px > 0 and now + px or 'inf', token)
    redis.call('HSET', grants_key, token, permit .. ':' .. fence)
end

-- Whether one more holder of this mode fits beside the current ones.
local function fits(n, shared, count, writer)
    if n > 0 then
        return count < n
    end
    if shared then
        return not writer
    end
    return count == 0
end

-- Whether the only holder is a writer (holders are all live here).
local function writer_holds(count)
    if count ~= 1 then
        return false
    end
    local _, _, shared = terms_of(redis.call('ZRANGE', holders_key, 0, 0)[1])
    return not shared
end

-- The identity record of a waiter granted at `now`: the caller's from
-- `ident` ('' for none), another's restamped (one HGET when it has none).
local function who_granted(token, now, ident)
    if ident == nil then
        local w = redis.call('HGET', who_key, token)
        ident = w and string.match(w, '^%d+\t(.*)$') or ''
    end
    if ident ~= '' then
        redis.call('HSET', who_key, token, now .. '\t' ..
                   string.sub(ident, 1, WHO_MAX))
    end
end

-- Grants to waiters from the head of the queue for as long as they fit,
-- removing stale and malformed entries (and `dropping`, whose owner is
-- leaving) on the way.  A head that does not fit stops the loop: nobody
-- overtakes it.  A waiter other than the caller gets a lease capped at its
-- liveness window (as the mutex's hand-off), pushed to its wake list.
-- Returns {ticket, permit, fence} when the caller was granted, and whether
-- the budget ran out with entries left to look at.
local function grant_heads(now, n, caller, caller_lease, dropping, ident)
    local count = redis.call('ZCARD', holders_key)
    local writer = n == 0 and writer_holds(count)
    local mine = nil
    for _ = 1, MAX_EVICTIONS do
        local head = redis.call('ZRANGE', queue_key, 0, 0)[1]
        if not head then
            return mine, false
        end
        local ticket, token, ts = parse_member(head)
        local lease, live, shared = nil, nil, false
        if token then
            lease, live, shared = terms_of(token)
        end
        if lease and token ~= dropping and now - ts <= live then
            if not fits(n, shared, count, writer) then
                return mine, false
            end
            local permit = n > 0 and free_permit(n) or 0
            local fence = grant_fence(token)
            if token == caller then
                add_holder(now, token, caller_lease, permit, fence)
                who_granted(token, now, ident or '')
                mine = {ticket, permit, fence}
            else
                local px = lease
                if px == 0 or px > live then
                    px = live
                end
                -- Pushed before the grant is recorded, as the mutex does:
                -- on a Cluster node whose slot is migrating the push fails
                -- first (a fence skipped is harmless).
                local wake = wake_key(token)
                redis.call('RPUSH', wake, string.format('%d:%d:%d:%d', ticket,
                                                        px, fence, permit))
                redis.call('PEXPIRE', wake, px)
                add_holder(now, token, px, permit, fence)
                who_granted(token, now, nil)
            end
            count = count + 1
            writer = n == 0 and not shared
        elseif token then
            redis.call('HDEL', who_key, token) -- stale, malformed or leaving
        end
        redis.call('ZREM', queue_key, head)
    end
    return mine, redis.call('ZCARD', queue_key) > 0
end

-- Keeps the keys for as long as someone may still call: until the last
-- lease ends, and while anyone waits `keep` ms (three liveness windows of
-- a waiter) after a waiter's call.  While anyone waits expiries only grow
-- (a waiter with a longer window may have set them), but for a key kept
-- for a lease without end, which gets one again once no such lease is
-- held; with nobody waiting they are the last lease's end, exactly, so a
-- dead holder's keys go with its lease.  With nobody holding or waiting,
-- the keys go at once (the fencing counter stays, as the mutex's does).
local function settle(now, keep)
    local waiting = redis.call('ZCARD', queue_key) > 0
    if not waiting then
        -- Tickets start again with the next queue, as the mutex's do.
        redis.call('DEL', seq_key)
        if redis.call('ZCARD', holders_key) == 0 then
            redis.call('DEL', kind_key, holders_key, grants_key, who_key)
            return
        end
    end
    local last = redis.call('ZRANGE', holders_key, -1, -1, 'WITHSCORES')
    local forever = last[2] == 'inf'
    local ttl = waiting and keep or 0
    if last[2] and not forever then
        ttl = math.max(ttl, tonumber(last[2]) - now)
    end
    local keys = {kind_key, holders_key, queue_key, seq_key, grants_key,
                  who_key}
    for i = 1, #keys do
        local pttl = redis.call('PTTL', keys[i])
        if pttl ~= -2 then
            if forever then
                redis.call('PERSIST', keys[i])
            elseif ttl > 0 and (not waiting or pttl == -1 or pttl < ttl) then
                redis.call('PEXPIRE', keys[i], ttl)
            end
        end
    end
end

-- What a waiter needs to know of the holders: ms until the first lease
-- ends (waiters look again then: an expiry pushes nothing), -1 if every
-- lease is without end, -2 if nobody holds.
local function first_end(now)
    local first = redis.call('ZRANGE', holders_key, 0, 0, 'WITHSCORES')
    if not first[2] then
        return -2
    end
    if first[2] == 'inf' then
        return -1
    end
    return tonumber(first[2]) - now
end
