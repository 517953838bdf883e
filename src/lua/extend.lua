-- extend.lua -- set the remaining lease of the caller's lock.
--
-- ARGV[1] token  ARGV[2] lease in ms from now, 0 for no expiry
-- Reply 1 if the token holds the lock, else 0.

if redis.call('GET', lock_key) ~= ARGV[1] then
    return 0
end
local px = tonumber(ARGV[2])
if px > 0 then
    redis.call('PEXPIRE', lock_key, px)
else
    redis.call('PERSIST', lock_key)
end
return 1
