-- lock_acquire: take a lock if it is free, with a fencing token from the same step.
-- The lock is written first: a script's first write is the one the server checks against
-- maxmemory, so out of memory refuses the acquire whole (the counter is left alone).
-- KEYS[1]  lock key (holds the owner's token)
-- KEYS[2]  fencing counter (same hash tag; never expires, so tokens only grow)
-- ARGV[1]  owner token (random, at least 128 bits)
-- ARGV[2]  lock time-to-live, milliseconds
-- Returns  the fencing token (>= 1) when taken; when held by someone else, minus the
--          holder's remaining time in ms (0 when it has no expiry or expires this instant).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  return -left
end
return 0
