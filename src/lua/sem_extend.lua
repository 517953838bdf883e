-- sem_extend.lua -- set the remaining lease of the caller's hold.
-- standalone: sem_common.lua is not prepended, so that the script is small
-- enough to send with EVAL when a confirmation cannot wait for its reply.
--
-- KEYS as in sem_common.lua (KEYS[4] NAME:holders is the one that counts;
-- KEYS[8] NAME:who lives as long as the rest)
-- ARGV[1] token  ARGV[2] lease in ms from now, 0 for no expiry
-- Reply 1 if the token holds a live grant, else 0.  A lease that has
-- ended is not revived: the permit may be counted free already.

local token, px = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[4], token)
if not score or (score ~= 'inf' and tonumber(score) <= now) then
    return 0
end
redis.call('ZADD', KEYS[4], 'XX', px > 0 and now + px or 'inf', token)
-- The name's keys live at least as long as the lease (sem_common's
-- settle shortens nothing but what a lease without end persisted).
for _, i in ipairs({1, 2, 3, 4, 5, 8}) do
    local pttl = redis.call('PTTL', KEYS[i])
    if px == 0 then
        redis.call('PERSIST', KEYS[i])
    elseif pttl >= 0 and pttl < px then
        redis.call('PEXPIRE', KEYS[i], px)
    end
end
return 1
