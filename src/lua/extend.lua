-- extend.lua -- set the remaining lease of the caller's lock.
-- standalone: common.lua is not prepended; it needs none of it, and it is
-- the renewal thread's one script, sent on a connection of its own.
--
-- KEYS[1] NAME, KEYS[2] NAME:queue, KEYS[8] NAME:who (the other keys of common.lua are
-- passed but not used)
-- ARGV[1] token  ARGV[2] lease in ms from now, 0 for no expiry
-- Reply 1 if the token holds the lock, else 0.

local lock_key = KEYS[1]
if redis.call('GET', lock_key) ~= ARGV[1] then
    return 0
end
local px = tonumber(ARGV[2])
if px > 0 then
    redis.call('PEXPIRE', lock_key, px)
else
    redis.call('PERSIST', lock_key)
end
-- The holder's identity record lives at least as long as its lease; the
-- key is persisted only for the caller's own record (it may hold waiters'
-- records, which must not outlive the queue).  A key that had no expiry
-- was persisted for this holder: from a lease with an end on, it lives as
-- long as the lease and the queue.
local who_ttl = redis.call('PTTL', KEYS[8])
if who_ttl ~= -2 and (px == 0 or who_ttl < px) then
    local w = redis.call('HGET', KEYS[8], '@')
    if w and string.sub(w, 1, #ARGV[1] + 1) == ARGV[1] .. '\t' then
        if px > 0 then
            redis.call('PEXPIRE', KEYS[8],
                       math.max(px, redis.call('PTTL', KEYS[2])))
        else
            redis.call('PERSIST', KEYS[8])
        end
    end
end
return 1
