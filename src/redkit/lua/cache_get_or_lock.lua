-- cache_get_or_lock: read a cache entry, or take its fill lock when it is missing.
-- A caller re-sending this call (its client timed out on the reply of a run that took the
-- lock) finds its own token there and is told it holds the lock, instead of waiting for it.
-- KEYS[1]  entry key
-- KEYS[2]  fill-lock key (same hash tag as the entry)
-- ARGV[1]  lock token (random, unique to this caller)
-- ARGV[2]  lock time-to-live, milliseconds
-- Returns  {1, entry bytes} when the entry exists;
--          {0, 1} when the entry is missing and this caller now holds the fill lock;
--          {0, 0} when the entry is missing and another caller holds the lock.
local entry = redis.call('GET', KEYS[1])
if entry then
  return {1, entry}
end
local holder = redis.call('GET', KEYS[2])
if not holder then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {0, 1}
end
if holder == ARGV[1] then
  return {0, 1}
end
return {0, 0}
