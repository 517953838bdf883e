-- status.lua -- a consistent snapshot of the lock for operators; changes
-- nothing.
--
-- ARGV[1] most waiters to list
-- Reply {server_ms, holder or false, holder_pttl, fence or false,
--        total_waiters, member1, member2, ...} with members in queue order.

local limit = tonumber(ARGV[1])
local reply = {server_now_ms(), redis.call('GET', lock_key),
               redis.call('PTTL', lock_key), redis.call('GET', fence_key),
               redis.call('ZCARD', queue_key)}
if limit > 0 then
    local members = redis.call('ZRANGE', queue_key, 0, limit - 1)
    for i = 1, #members do
        reply[#reply + 1] = members[i]
    end
end
return reply
