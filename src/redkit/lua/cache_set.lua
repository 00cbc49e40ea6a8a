-- cache_set: store an entry and revoke any fill in progress for it.
-- The entry is written first: a script's first write is the one the server checks against
-- maxmemory, so out of memory refuses the whole set (the lock is then left alone).
-- KEYS[1]     entry key
-- KEYS[2]     fill-lock key (same hash tag as the entry)
-- KEYS[3..n]  companions that expire with the entry (optional, same hash tag): their
--             expiry is set to the entry's when they exist
-- ARGV[1]     entry bytes
-- ARGV[2]     entry time-to-live, milliseconds (> 0)
-- Returns     1
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
