-- sem_status.lua -- a consistent snapshot of a semaphore or readers-writer
-- lock for operators; changes nothing.
--
-- ARGV[1] most waiters to list
-- Reply {server_ms, first holder or false, its pttl, fence or false,
--        total_waiters, kind tag or false, holder_count,
--        token1, pttl1, permit1, fence1, token2, ...,
--        member1, ..., memberK, who of holder1, ..., who of member1,
--        ...}: holders in the order their leases end
-- (pttl -1: no end), members in queue order.  Holders whose lease ended
-- are left out (the next script removes them).  The who fields are
-- NAME:who's records of each holder and member, false where none.

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
local members = {}
if limit > 0 then
    members = redis.call('ZRANGE', queue_key, 0, limit - 1)
    for i = 1, #members do
        reply[#reply + 1] = members[i]
    end
end
-- HMGET in chunks: unpack() has a limit on how many values it returns.
local tokens = {}
for i = 1, #holders, 2 do
    tokens[#tokens + 1] = holders[i]
end
for i = 1, #members do
    local _, token = parse_member(members[i])
    tokens[#tokens + 1] = token or ''
end
for first = 1, #tokens, 1000 do
    local whos = redis.call('HMGET', who_key,
                            unpack(tokens, first, math.min(#tokens,
                                                           first + 999)))
    for i = 1, #whos do
        reply[#reply + 1] = whos[i]
    end
end
return reply
