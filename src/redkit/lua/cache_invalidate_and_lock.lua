-- cache_invalidate_and_lock: remove an entry and take its fill lock in one step.
-- Replacing the lock revokes every fill in progress (their tokens no longer match) and gives
-- the caller the right to refill the entry from a read that starts after this call.
-- KEYS[1]  entry key
-- KEYS[2]  fill-lock key (same hash tag as the entry)
-- ARGV[1]  lock token (random, unique to this caller)
-- ARGV[2]  lock time-to-live, milliseconds
-- Returns  1 when the entry existed, 0 otherwise.
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('UNLINK', KEYS[1])
