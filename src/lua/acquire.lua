-- acquire.lua -- enqueue (or refresh) a FIFO waiter and try to take the lock.
--
-- ARGV[1] token  ARGV[2] ticket held so far, 0 for a new request
-- ARGV[3] liveness window (ms) applied to entries of other clients
-- ARGV[4] 1 to leave the queue at once if the lock is not granted
-- ARGV[5] identity "pid<TAB>host<TAB>label" for NAME:who, '' for none
--
-- Reply {granted, ticket, rank, pttl, lease_px, fence, next}: granted is 1
-- when the caller holds the lock (lease_px is the lease it was given, 0 =
-- none; fence its fencing token or 0), 0 when it waits at 0-based `rank`
-- while the holder has `pttl` ms left.  next tells a waiter when to call
-- again: 0 when a push or its own schedule will do; 1 at once (the lock is
-- free but this call stopped at its eviction budget before reaching a live
-- head); 2 at check_interval, because clients of another kind are in the
-- queue or hold the lock: they take the lock and release it without
-- pushing, so ranks change and the lock frees without notice.
--
-- A request that would make a new entry or take the lock is refused with
-- an error when the name is a semaphore's or readers-writer lock's, or
-- when its token was cancelled (common.lua's refusal): a heartbeat that
-- finds its entry pays nothing for that, a first attempt on a free lock
-- nobody waits for neither (the EXISTS it makes anyway counts both keys).

local token, ticket = ARGV[1], tonumber(ARGV[2])
local foreign_live, try_once = tonumber(ARGV[3]), ARGV[4] == '1'
local ident = ARGV[5] or ''
local lease, live = token_terms(token)
if not lease then
    return redis.error_reply('ERR fairlock: malformed token')
end
local holder = redis.call('GET', lock_key)

if holder == token then
    -- Handed over by another script since our last call.
    redis.call('DEL', wake_key(token))
    local pttl = redis.call('PTTL', lock_key)
    return {1, ticket, 0, pttl, pttl > 0 and pttl or 0, current_fence(), 0}
end

if not holder and ticket == 0 and
    redis.call('EXISTS', queue_key, seq_key, kind_key,
               gone_key(token)) == 0 then
    -- Nobody waits: the caller is ticket 1 of a queue that would empty
    -- again at once, so the queue keys are never written.
    if ident ~= '' then
        who_grant(token, ident, server_now_ms(), lease, true)
    end
    return {1, 1, 0, 0, lease, set_owner(token, lease), 0}
end

local member = nil
if ticket > 0 then
    member = find_member(ticket, token)
end
if not member then
    local refused = refusal(token)
    if refused then
        return refused
    end
end

local now = server_now_ms()

if ticket > 0 then
    -- A hand-off pushes in the same script that grants, and we do not
    -- hold the lock: a message still in our wake list is from a grant that
    -- expired while we were away.  Popped later it would pass for a grant.
    redis.call('DEL', wake_key(token))
    if member then
        redis.call('ZREM', queue_key, member)
    end
end
local tail = redis.call('ZRANGE', queue_key, -1, -1)[1]
local tail_ticket, tail_token = nil, nil
if tail then
    tail_ticket, tail_token = parse_member(tail)
end
if not member then
    -- New request, or one evicted for missing heartbeats: to the back.
    ticket = redis.call('INCR', seq_key)
    if tail_ticket and tail_ticket >= ticket then
        -- NAME:seq was deleted under a queue that is not empty (the
        -- reference's release deletes it with a command of its own, and
        -- its INCR and ZADD are two commands too): go on after the tail.
        ticket = tail_ticket + 1
        redis.call('SET', seq_key, ticket)
    end
end
-- If every waiter dies the queue keys expire instead of staying for ever,
-- unless a client of another kind waits: it never re-registers, so the
-- queue must not expire under it.  Its members arrive at the tail, where
-- every enqueue and heartbeat looks; a queue that exists without an expiry
-- was made or kept for one, and stays so until it empties.
local ttl = tail and redis.call('PTTL', queue_key) or -2
local fresh = not member
member = make_member(ticket, token, now)
redis.call('ZADD', queue_key, ticket, member)
local keep = 3 * live
local foreign = tail_token and not token_terms(tail_token)
if foreign then
    keep_queue_for(tail_token)
elseif ttl == -2 or (ttl >= 0 and ttl < keep) then
    redis.call('PEXPIRE', queue_key, keep)
    redis.call('PEXPIRE', seq_key, keep)
elseif ttl >= 0 and redis.call('PTTL', seq_key) == -1 then
    redis.call('PEXPIRE', seq_key, keep) -- remade by an INCR of its own
end
who_wait(token, ident, now, keep, fresh)

local next_call = 0
if not holder then
    local granted, fence_or_more = grant_to_head(now, token, lease,
                                                 foreign_live)
    if granted then
        if ident ~= '' then
            who_grant(token, nil, now, lease)
        end
        return {1, granted, 0, 0, lease, fence_or_more, 0}
    end
    if fence_or_more and redis.call('EXISTS', lock_key) == 0 then
        next_call = 1
    end
end
local rank = redis.call('ZRANK', queue_key, member)
-- Waiters at rank 0 and 1 poll at check_interval anyway: only those
-- behind need to look at the head.
if next_call == 0 and (foreign or (holder and not token_terms(holder)) or
                       (rank > 1 and foreign_at_head())) then
    next_call = 2
end
if try_once then
    redis.call('ZREM', queue_key, member)
    if ident ~= '' then
        redis.call('HDEL', who_key, token)
    end
    drop_queue_if_empty()
end
return {0, ticket, rank, redis.call('PTTL', lock_key), 0, 0, next_call}
