-- sem_release.lua -- give back the caller's permit (or shared or exclusive
-- hold) and grant to the head of the queue while it fits, in one step.
--
-- ARGV[1] token  ARGV[2] the kind the caller expects
-- Reply 1 if released, 0 if the token held nothing (never, or its lease
-- ended).

local token = ARGV[1]
local tag, bad = check_kind(ARGV[2], false)
if not tag then
    return redis.error_reply(bad)
end
local now = server_now_ms()
evict_expired(now)
if not redis.call('ZSCORE', holders_key, token) then
    if redis.call('EXISTS', queue_key) == 1 then
        grant_heads(now, permits_of(tag), nil, 0, nil)
    end
    settle(now, 0)
    return 0
end
drop_holder(token)
grant_heads(now, permits_of(tag), nil, 0, nil)
settle(now, 0)
return 1
