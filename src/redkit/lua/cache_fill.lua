-- cache_fill: store a freshly fetched entry if this caller still holds the fill lock.
-- Invalidations and explicit sets delete the lock, so a fetch that raced with them (and may
-- hold data older than the source now has) is refused instead of caching a stale value.
-- The entry is written before the lock is deleted: a script's first write is the one the
-- server checks against maxmemory, so out of memory refuses the whole fill.
-- A fill re-sent after its reply was lost (the first run stored the entry and deleted the
-- lock) finds its own bytes in the entry and reports them stored; anything else there wins.
-- KEYS[1]     entry key
-- KEYS[2]     fill-lock key (same hash tag as the entry)
-- KEYS[3..n]  companions that expire with the entry (optional, same hash tag): their
--             expiry is set to the entry's when they exist
-- ARGV[1]     lock token held by the caller
-- ARGV[2]     entry bytes
-- ARGV[3]     entry time-to-live, milliseconds (> 0)
-- Returns     1 when stored (and the lock released), or when the entry already holds
--             exactly these bytes; 0 when the lock was lost and nothing changed.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  if redis.call('GET', KEYS[1]) == ARGV[2] then
    return 1
  end
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return 1
