-- sem_acquire.lua -- enqueue (or refresh) a waiter of a semaphore or
-- readers-writer lock and grant to the head of the queue while it fits.
--
-- ARGV[1] token  ARGV[2] ticket held so far, 0 for a new request
-- ARGV[3] the kind the caller expects: "semaphore N" or "rwlock"
-- ARGV[4] 1 to leave the queue at once if not granted
-- ARGV[5] identity "pid<TAB>host<TAB>label" for NAME:who, '' for none
--
-- Reply {granted, ticket, rank, pttl, lease_px, fence, next, permit}, as
-- acquire.lua's with an eighth field: the permit (1..N) of a semaphore
-- grant, 0 otherwise.  pttl is the time until the first holder's lease
-- ends (see first_end): a waiter looks again then.

local token, ticket = ARGV[1], tonumber(ARGV[2])
local expected, try_once = ARGV[3], ARGV[4] == '1'
local ident = ARGV[5] or ''
local lease, live = terms_of(token)
if not lease then
    return redis.error_reply('ERR fairlock: malformed token')
end
local tag, bad = check_kind(expected, true)
if not tag then
    return redis.error_reply(bad)
end
local n = permits_of(tag)
local now = server_now_ms()
evict_expired(now)

local held = redis.call('ZSCORE', holders_key, token)
if held then
    -- Handed over by another script since our last call.
    redis.call('DEL', wake_key(token))
    local permit, fence = grant_of(token)
    local left = held == 'inf' and 0 or tonumber(held) - now
    return {1, ticket, 0, left, left, fence, 0, permit}
end

local member = nil
if ticket > 0 then
    member = find_member(ticket, token)
end
-- A copy of a cancelled request that arrives after its cancel makes no
-- entry (see cancel.lua); a heartbeat that finds its entry pays nothing.
if not member and redis.call('EXISTS', gone_key(token)) == 1 then
    return redis.error_reply('ERR fairlock: request cancelled')
end
redis.call('SET', kind_key, tag, 'KEEPTTL')
if ticket > 0 then
    -- A message still in our wake list is from a grant that expired
    -- while we were away (see acquire.lua).
    redis.call('DEL', wake_key(token))
end
if member then
    redis.call('ZREM', queue_key, member)
else
    ticket = redis.call('INCR', seq_key)
    local tail = redis.call('ZRANGE', queue_key, -1, -1)[1]
    local tail_ticket = tail and parse_member(tail)
    if tail_ticket and tail_ticket >= ticket then
        -- NAME:tickets expired under a queue that did not: go on after it.
        ticket = tail_ticket + 1
        redis.call('SET', seq_key, ticket)
    end
end
local fresh = not member
member = make_member(ticket, token, now)
redis.call('ZADD', queue_key, ticket, member)
if fresh and ident ~= '' then
    redis.call('HSET', who_key, token, now .. '\t' ..
               string.sub(ident, 1, WHO_MAX))
end

local mine, more = grant_heads(now, n, token, lease, nil, ident)
if mine then
    settle(now, 3 * live)
    return {1, mine[1], 0, 0, lease, mine[3], 0, mine[2]}
end
local rank = redis.call('ZRANK', queue_key, member)
if try_once then
    -- Leaving may unblock those behind (a writer at the head holds back
    -- readers that would fit).
    redis.call('ZREM', queue_key, member)
    if ident ~= '' then
        redis.call('HDEL', who_key, token)
    end
    grant_heads(now, n, nil, 0, nil)
end
settle(now, 3 * live)
return {0, ticket, rank, first_end(now), 0, 0, more and 1 or 0, 0}
