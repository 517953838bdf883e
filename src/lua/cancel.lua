-- cancel.lua -- a waiter gives up: remove its entry, undo a hand-off that
-- raced with the decision, and pass the lock on if it is free.
--
-- ARGV[1] token  ARGV[2] ticket, 0 if unknown  ARGV[3] liveness window of
-- other clients
-- Reply 1 if a hand-off to the caller was undone, else 0.

local token, ticket = ARGV[1], tonumber(ARGV[2])
local foreign_live = tonumber(ARGV[3])
local now = server_now_ms()
local member = find_member(ticket, token)
if member then
    redis.call('ZREM', queue_key, member)
    drop_queue_if_empty()
end
redis.call('DEL', wake_key(token))
local undone = release_if_owner(token, foreign_live)
if undone == 0 and redis.call('EXISTS', lock_key) == 0 then
    grant_to_head(now, nil, 0, foreign_live)
end
return undone
