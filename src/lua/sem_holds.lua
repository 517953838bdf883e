-- sem_holds.lua -- whether a token holds a live grant, or anyone does;
-- changes nothing.
-- standalone: a query needs none of sem_common.lua.
--
-- KEYS as in sem_common.lua  ARGV[1] token, or '' for anyone
-- Reply 1 or 0.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == '' then
    return redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf') > 0 and 1 or 0
end
local score = redis.call('ZSCORE', KEYS[4], ARGV[1])
if score and (score == 'inf' or tonumber(score) > now) then
    return 1
end
return 0
