-- status.lua -- a consistent snapshot of the lock for operators; changes
-- nothing.
--
-- ARGV[1] most waiters to list
-- Reply {server_ms, holder or false, holder_pttl, fence or false,
--        total_waiters, member1, ..., memberK, holder_who or false,
--        who1, ..., whoK} with members in queue order, and then NAME:who's
-- records ("@" and each member's token's, false where there is none).

local limit = tonumber(ARGV[1])
local reply = {server_now_ms(), redis.call('GET', lock_key),
               redis.call('PTTL', lock_key), redis.call('GET', fence_key),
               redis.call('ZCARD', queue_key)}
local members = {}
if limit > 0 then
    members = redis.call('ZRANGE', queue_key, 0, limit - 1)
    for i = 1, #members do
        reply[#reply + 1] = members[i]
    end
end
reply[#reply + 1] = redis.call('HGET', who_key, '@')
-- HMGET in chunks: unpack() has a limit on how many values it returns.
for first = 1, #members, 1000 do
    local tokens = {}
    for i = first, math.min(#members, first + 999) do
        local _, token = parse_member(members[i])
        tokens[#tokens + 1] = token or ''
    end
    local whos = redis.call('HMGET', who_key, unpack(tokens))
    for i = 1, #tokens do
        reply[#reply + 1] = whos[i]
    end
end
return reply
