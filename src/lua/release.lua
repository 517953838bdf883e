-- release.lua -- free the lock if the caller's token holds it, and hand it
-- to the next live waiter in the same step.
--
-- ARGV[1] token  ARGV[2] liveness window (ms) for other clients' entries
-- ARGV[3] '1' when the holder's identity record (NAME:who "@") goes too
-- Reply 1 if released, 0 if the token did not hold the lock.

local released = release_if_owner(ARGV[1], tonumber(ARGV[2]), nil,
                                  ARGV[3] == '1')
if released == 0 and ARGV[3] == '1' then
    -- A lease that was lost: its identity record goes now, not when the
    -- record expires.
    local w = redis.call('HGET', who_key, '@')
    if w and string.sub(w, 1, #ARGV[1] + 1) == ARGV[1] .. '\t' then
        redis.call('HDEL', who_key, '@')
        who_settle()
    end
end
return released
