-- acquire_nonfifo.lua -- take the lock if free, ignoring the queue.
--
-- ARGV[1] token  ARGV[2] how long (ms) to advertise that non-FIFO waiters
-- wait, 0 for a single try  ARGV[3] liveness window of other clients
-- ARGV[4] identity for NAME:who, '' for none (acquire.lua's ARGV[5])
--
-- Reply as acquire.lua's; the ticket is always 0.  A request that would
-- take the lock is refused as in acquire.lua (common.lua's refusal).

local token, waiting = ARGV[1], tonumber(ARGV[2])
local foreign_live = tonumber(ARGV[3])
local lease = token_terms(token)
if not lease then
    return redis.error_reply('ERR fairlock: malformed token')
end
local holder = redis.call('GET', lock_key)
if holder == token then
    local pttl = redis.call('PTTL', lock_key)
    return {1, 0, 0, pttl, pttl > 0 and pttl or 0, current_fence(), 0}
end
if not holder then
    -- A live FIFO waiter of another kind at the head takes a free lock
    -- itself, by polling; barging in at every release would starve it (and
    -- hide a dead one from its judgement).  fairlock FIFO waiters need no
    -- such care: a release hands them the lock before it is ever free.
    local defer = false
    local queued = redis.call('EXISTS', queue_key, kind_key, gone_key(token))
    if queued > 0 then
        local refused, counted = refusal(token)
        if refused then
            return refused
        end
        queued = queued - counted -- what is left is the queue
    end
    if queued > 0 then
        local head, _, _, head_lease =
            live_head(server_now_ms(), foreign_live, true, nil)
        defer = head ~= nil and head_lease == nil
        drop_queue_if_empty()
    end
    if not defer then
        if (ARGV[4] or '') ~= '' then
            who_grant(token, ARGV[4], server_now_ms(), lease)
        end
        return {1, 0, 0, 0, lease, set_owner(token, lease), 0}
    end
end
if waiting > 0 and redis.call('PTTL', nf_wait_key) < waiting then
    redis.call('SET', nf_wait_key, '1', 'PX', waiting)
end
return {0, 0, 0, redis.call('PTTL', lock_key), 0, 0, 0}
