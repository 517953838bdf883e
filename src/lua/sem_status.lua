-- sem_status.lua -- a consistent snapshot of a semaphore or readers-writer
-- lock for operators; changes nothing.
--
-- ARGV[1] most waiters to list
-- Reply {server_ms, first holder or false, its pttl, fence or false,
--        total_waiters, kind tag or false, holder_count,
--        token1, pttl1, permit1, fence1, token2, ...,
--        member1, member2, ...}: holders in the order their leases end
-- (pttl -1: no end), members in queue order.  Holders whose lease ended
-- are left out (the next script removes them).

local limit = tonumber(ARGV[1])
local now = server_now_ms()
local holders = redis.call('ZRANGEBYSCORE', holders_key, '(' .. now, '+inf',
                           'WITHSCORES')
local reply = {now, false, -2, redis.call('GET', fence_key),
               redis.call('ZCARD', queue_key), redis.call('GET', kind_key),
               #holders / 2}
for i = 1, #holders, 2 do
    local pttl = holders[i + 1] == 'inf' and -1 or
                     tonumber(holders[i + 1]) - now
    local permit, fence = grant_of(holders[i])
    if i == 1 then
        reply[2], reply[3] = holders[i], pttl
    end
    reply[#reply + 1] = holders[i]
    reply[#reply + 1] = pttl
    reply[#reply + 1] = permit
    reply[#reply + 1] = fence
end
if limit > 0 then
    local members = redis.call('ZRANGE', queue_key, 0, limit - 1)
    for i = 1, #members do
        reply[#reply + 1] = members[i]
    end
end
return reply
