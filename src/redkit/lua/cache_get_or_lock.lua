-- cache_get_or_lock: read a cache entry, or take its fill lock when it is missing.
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
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, 1}
end
return {0, 0}
