-- cancel.lua -- a waiter gives up: remove its entry, undo a hand-off that
-- raced with the decision, and pass the lock on if it is free.
--
-- ARGV[1] token  ARGV[2] ticket: > 0 as last known, 0 unknown (the reply
-- that carried it was lost), -1 none (a non-FIFO request never queues)
-- ARGV[3] liveness window of other clients
-- ARGV[4] the ZSCAN cursor to resume a search from, '0' at first
-- ARGV[5] '1' when the request may still be on its way (its reply never
-- came), else '0'
--
-- Reply {undone, cursor}: undone is 1 if a grant to the caller was undone.
-- cursor is '0' when the work is done; otherwise call again with it.  The
-- entry is looked up by ticket, and searched for by token one bounded page
-- per call when the ticket is unknown or stale (a heartbeat whose reply
-- was lost may have re-queued it under a new ticket).  Every call undoes a
-- grant, so one made by another script between two calls is undone by the
-- next.
--
-- A request whose reply never came may reach the server after this call
-- (held up in a dead connection or a stalled server while the client
-- cancels on a new one).  It would then queue or be granted a token nobody
-- uses, a ghost that blocks the lock until its window or lease ends.  So
-- the call leaves NAME:gone:TOKEN for one liveness window of the token,
-- which acquire.lua and acquire_nonfifo.lua honour (docs/protocol.md,
-- Unknown outcomes, argues the bound).  It is set first: a call that
-- fails on it changes nothing.

local token, ticket = ARGV[1], tonumber(ARGV[2])
local foreign_live = tonumber(ARGV[3])
local cursor = ARGV[4] or '0'
if ARGV[5] == '1' then
    local _, live = token_terms(token)
    if live then
        redis.call('SET', gone_key(token), '1', 'PX', math.max(live, 1))
    end
end
local member = nil
if ticket > 0 and cursor == '0' then
    member = find_member(ticket, token)
    if not member then
        member, cursor = find_member_page(token, '0')
    end
elseif ticket >= 0 then
    member, cursor = find_member_page(token, cursor)
end
if member then
    redis.call('ZREM', queue_key, member)
    redis.call('HDEL', who_key, token)
    drop_queue_if_empty()
end
redis.call('DEL', wake_key(token))
local undone = release_if_owner(token, foreign_live, token, true)
if undone == 0 and redis.call('EXISTS', lock_key) == 0 then
    grant_to_head(server_now_ms(), nil, 0, foreign_live, token)
end
keep_queue_for_tail()
return {undone, cursor}
