-- acquire.lua -- enqueue (or refresh) a FIFO waiter and try to take the lock.
--
-- ARGV[1] token  ARGV[2] ticket held so far, 0 for a new request
-- ARGV[3] liveness window (ms) applied to entries of other clients
-- ARGV[4] 1 to leave the queue at once if the lock is not granted
--
-- Reply {granted, ticket, rank, pttl, lease_px, fence}: granted is 1 when
-- the caller holds the lock (lease_px is the lease it was given, 0 = none;
-- fence its fencing token or 0), 0 when it waits at 0-based `rank` while
-- the holder has `pttl` ms left.

local token, ticket = ARGV[1], tonumber(ARGV[2])
local foreign_live, try_once = tonumber(ARGV[3]), ARGV[4] == '1'
local lease, live = token_terms(token)
if not lease then
    return redis.error_reply('ERR fairlock: malformed token')
end
local holder = redis.call('GET', lock_key)

if holder == token then
    -- Handed over by another script since our last call.
    redis.call('DEL', wake_key(token))
    local pttl = redis.call('PTTL', lock_key)
    return {1, ticket, 0, pttl, pttl > 0 and pttl or 0, current_fence()}
end

if not holder and ticket == 0 and
    redis.call('EXISTS', queue_key, seq_key) == 0 then
    -- Nobody waits: the caller is ticket 1 of a queue that would empty
    -- again at once, so the queue keys are never written.
    return {1, 1, 0, 0, lease, set_owner(token, lease)}
end

local now = server_now_ms()

local member = nil
if ticket > 0 then
    -- A hand-off pushes in the same script that grants, and we do not
    -- hold the lock: a message still in our wake list is from a grant that
    -- expired while we were away.  Popped later it would pass for a grant.
    redis.call('DEL', wake_key(token))
    member = find_member(ticket, token)
    if member then
        redis.call('ZREM', queue_key, member)
    end
end
if not member then
    -- New request, or one evicted for missing heartbeats: to the back.
    ticket = redis.call('INCR', seq_key)
end
member = make_member(ticket, token, now)
redis.call('ZADD', queue_key, ticket, member)

-- If every waiter dies the queue keys expire instead of staying for ever.
local keep = 3 * live
if redis.call('PTTL', queue_key) < keep then
    redis.call('PEXPIRE', queue_key, keep)
    redis.call('PEXPIRE', seq_key, keep)
end

if not holder then
    local granted, fence = grant_to_head(now, token, lease, foreign_live)
    if granted then
        return {1, granted, 0, 0, lease, fence}
    end
end

local rank = redis.call('ZRANK', queue_key, member)
if try_once then
    redis.call('ZREM', queue_key, member)
    drop_queue_if_empty()
end
return {0, ticket, rank, redis.call('PTTL', lock_key), 0, 0}
