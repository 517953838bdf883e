-- extend.lua -- set the remaining lease of the caller's lock.
-- standalone: common.lua is not prepended, so that the whole script is
-- small enough to send with EVAL when a confirmation cannot wait for its
-- reply (a NOSCRIPT there would have nobody to retry it).
--
-- KEYS[1] NAME, KEYS[8] NAME:who (the other keys of common.lua are
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
-- The holder's identity record lives at least as long as its lease.
local who_ttl = redis.call('PTTL', KEYS[8])
if who_ttl >= 0 and (px == 0 or who_ttl < px) then
    if px > 0 then
        redis.call('PEXPIRE', KEYS[8], px)
    else
        redis.call('PERSIST', KEYS[8])
    end
end
return 1
