-- cache_invalidate: remove an entry and revoke any fill in progress for it.
-- KEYS[1]  entry key
-- KEYS[2]  fill-lock key (same hash tag as the entry)
-- Returns  1 when the entry existed, 0 otherwise.
redis.call('UNLINK', KEYS[2])
return redis.call('UNLINK', KEYS[1])
