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
-- Per-waiter wake lists are NAME:wake:TOKEN.  Only a waiter that has been
-- handed the lock has one, and it expires within that waiter's liveness
-- window, so nothing outlives its owner.
--
-- Timestamps are the server's wall clock (TIME): every client shares it.
-- Every loop is bounded by MAX_EVICTIONS.

local lock_key, queue_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local nf_wait_key, nf_wake_key, fence_key = KEYS[4], KEYS[5], KEYS[6]
local MAX_EVICTIONS = 64

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

-- Makes `token` the holder; returns the grant's fencing token, or 0.
local function set_owner(token, px)
    if px > 0 then
        redis.call('SET', lock_key, token, 'PX', px)
    else
        redis.call('SET', lock_key, token)
    end
    if string.sub(token, -2) == '.f' or
        redis.call('EXISTS', fence_key) == 1 then
        return redis.call('INCR', fence_key)
    end
    return 0
end

local function current_fence()
    return tonumber(redis.call('GET', fence_key) or '0')
end

-- The member of `token` with score `ticket`, or nil if it was evicted.
-- Ticket 0 means "unknown" (the reply that carried it was lost): then the
-- whole queue is scanned, which only such a rare recovery pays for.
local function find_member(ticket, token)
    if ticket == 0 then
        local pattern = '*:' .. string.gsub(token, '[%*%?%[%]\\]', '\\%0')
                        .. ':*'
        local cursor = '0'
        repeat
            local page = redis.call('ZSCAN', queue_key, cursor, 'MATCH',
                                    pattern, 'COUNT', 1000)
            cursor = page[1]
            for i = 1, #page[2], 2 do
                local _, tok = parse_member(page[2][i])
                if tok == token then
                    return page[2][i]
                end
            end
        until cursor == '0'
        return nil
    end
    local suffix = ':' .. token .. ':'
    local found = redis.call('ZRANGEBYSCORE', queue_key, ticket, ticket)
    for i = 1, math.min(#found, MAX_EVICTIONS) do
        local m = found[i]
        local _, tok = parse_member(m)
        if tok == token then
            return m
        end
    end
    return nil
end

-- The queue keys go in the same script that empties the queue, so no
-- client can slip an INCR or ZADD between the check and the delete.
local function drop_queue_if_empty()
    if redis.call('ZCARD', queue_key) == 0 then
        redis.call('DEL', queue_key, seq_key)
    end
end

-- Removes stale entries from the head of the queue (bounded) and returns
-- the first live one as member, ticket, token, lease, live; lease is nil
-- for an entry of another client.  Staleness is judged by the waiter's own
-- liveness window when its token carries one, else by foreign_live.
local function live_head(now, foreign_live)
    for _ = 1, MAX_EVICTIONS do
        local head = redis.call('ZRANGE', queue_key, 0, 0)[1]
        if not head then
            return nil
        end
        local ticket, token, ts = parse_member(head)
        local lease, live = nil, nil
        if token then
            lease, live = token_terms(token)
        end
        live = live or foreign_live
        if token and now - ts <= live then
            return head, ticket, token, lease, live
        end
        redis.call('ZREM', queue_key, head)
    end
    return nil
end

-- Called whenever the lock key is free: grants the lock to the live head
-- if it is a fairlock waiter (a head of another client takes it itself
-- with SET NX).  A head other than the caller gets a lease no longer than
-- its liveness window, so a head that died since its last heartbeat holds
-- the lock no longer than a dead waiter would hold the queue.  Returns the
-- ticket and fence when the caller itself was granted.
local function grant_to_head(now, caller, caller_lease, foreign_live)
    local head, ticket, token, lease, live = live_head(now, foreign_live)
    local granted, fence = nil, 0
    if head and token == caller then
        fence = set_owner(token, caller_lease)
        granted = ticket
    elseif head and lease then
        local px = lease
        if px == 0 or px > live then
            px = live
        end
        local wake = wake_key(token)
        redis.call('RPUSH', wake, string.format('%d:%d:%d', ticket, px,
                                                set_owner(token, px)))
        redis.call('PEXPIRE', wake, px) -- no message outlives its grant
    else
        drop_queue_if_empty()
        return nil
    end
    redis.call('ZREM', queue_key, head)
    live_head(now, foreign_live)
    drop_queue_if_empty()
    return granted, fence
end

-- After a release: if no FIFO waiter took the lock, wake one non-FIFO
-- waiter.  The wake list lives no longer than the marker of waiters.
local function wake_non_fifo()
    if redis.call('EXISTS', lock_key) == 0 then
        local ttl = redis.call('PTTL', nf_wait_key)
        if ttl > 0 then
            redis.call('RPUSH', nf_wake_key, '1')
            redis.call('PEXPIRE', nf_wake_key, ttl)
        end
    end
end

-- Frees the lock held by `token`.  Returns 1 if it was held.  Without a
-- queue there is nobody to hand over to, and no need for the clock.
local function release_if_owner(token, foreign_live)
    if redis.call('GET', lock_key) ~= token then
        return 0
    end
    redis.call('DEL', lock_key)
    if redis.call('EXISTS', queue_key) == 1 then
        grant_to_head(server_now_ms(), nil, 0, foreign_live)
    end
    wake_non_fifo()
    return 1
end

