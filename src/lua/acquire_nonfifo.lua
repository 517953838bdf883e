-- acquire_nonfifo.lua -- take the lock if free, ignoring the queue.
--
-- ARGV[1] token  ARGV[2] how long (ms) to advertise that non-FIFO waiters
-- wait, 0 for a single try
--
-- Reply as acquire.lua's; the ticket is always 0.

local token, waiting = ARGV[1], tonumber(ARGV[2])
local lease = token_terms(token)
if not lease then
    return redis.error_reply('ERR fairlock: malformed token')
end
local holder = redis.call('GET', lock_key)
if holder == token then
    local pttl = redis.call('PTTL', lock_key)
    return {1, 0, 0, pttl, pttl > 0 and pttl or 0, current_fence()}
end
if not holder then
    return {1, 0, 0, 0, lease, set_owner(token, lease)}
end
if waiting > 0 and redis.call('PTTL', nf_wait_key) < waiting then
    redis.call('SET', nf_wait_key, '1', 'PX', waiting)
end
return {0, 0, 0, redis.call('PTTL', lock_key), 0, 0}
