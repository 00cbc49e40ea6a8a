-- cache_set: store an entry and revoke any fill in progress for it, once per write token.
-- redis-py re-sends a script whose reply timed out even when the server ran it; the tokens of
-- the last few sets applied to the entry are kept in a short list, so a re-send of a set that
-- already ran writes nothing (it never overwrites a later write).
-- The entry is written first among the writes: a script's first write is the one the server
-- checks against maxmemory, so out of memory refuses the whole set (the lock is then left alone).
-- KEYS[1]     entry key
-- KEYS[2]     fill-lock key (same hash tag as the entry)
-- KEYS[3]     applied-tokens list (same hash tag): the last few write tokens applied
-- KEYS[4..n]  companions that expire with the entry (optional, same hash tag): their
--             expiry is set to the entry's when they exist
-- ARGV[1]     entry bytes
-- ARGV[2]     entry time-to-live, milliseconds (> 0)
-- ARGV[3]     write token (random, one per set call; a re-send carries the same one)
-- ARGV[4]     how many tokens the list keeps
-- ARGV[5]     the list's time-to-live, milliseconds (well above socket timeout x retries)
-- Returns     1 when stored, 0 when this token was already applied (a re-send: nothing written)
if redis.call('LPOS', KEYS[3], ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
for i = 4, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
