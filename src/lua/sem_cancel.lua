-- sem_cancel.lua -- a waiter gives up, or a request of unknown outcome is
-- resolved: remove its entry, undo its grant, and grant to the head.
--
-- ARGV[1] token  ARGV[2] ticket: > 0 as last known, 0 unknown
-- ARGV[3] the kind the caller expects  ARGV[4] ZSCAN cursor, '0' at first
-- ARGV[5] '1' when the request may still be on its way (its reply never
-- came): NAME:gone:TOKEN is left for one liveness window, as cancel.lua
-- does, and sem_acquire.lua makes no entry for the token while it lives
--
-- Reply {undone, cursor} as cancel.lua's.  A name recorded as another
-- kind is left alone: the caller never got in.

local token, ticket = ARGV[1], tonumber(ARGV[2])
local cursor = ARGV[4] or '0'
-- The tombstone first, whatever the name is now: the copy on its way
-- may find it different.
if ARGV[5] == '1' then
    local _, live = terms_of(token)
    if live then
        redis.call('SET', gone_key(token), '1', 'PX', math.max(live, 1))
    end
end
local tag = check_kind(ARGV[3], false)
if not tag then
    return {0, '0'}
end
local member = nil
if ticket > 0 and cursor == '0' then
    member = find_member(ticket, token)
    if not member then
        member, cursor = find_member_page(token, '0')
    end
else
    member, cursor = find_member_page(token, cursor)
end
if member then
    redis.call('ZREM', queue_key, member)
    redis.call('HDEL', who_key, token)
end
redis.call('DEL', wake_key(token))
local now = server_now_ms()
evict_expired(now)
local undone = 0
if redis.call('ZSCORE', holders_key, token) then
    drop_holder(token)
    undone = 1
end
grant_heads(now, permits_of(tag), nil, 0, token)
settle(now, 0)
return {undone, cursor}
