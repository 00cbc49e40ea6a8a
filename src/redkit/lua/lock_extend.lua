-- lock_extend: set a held lock's remaining time, if the caller still owns it, and keep the
-- fencing counter alive at least that long plus its margin. Idempotent: a re-sent extend
-- sets the same time again.
-- KEYS[1]  lock key
-- KEYS[2]  fencing counter (same hash tag)
-- ARGV[1]  owner token
-- ARGV[2]  new time-to-live, milliseconds (replaces what was left)
-- ARGV[3]  how long the counter outlives the lock, milliseconds
-- Returns  1 when extended; 0 when the caller did not own the lock (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local keep = tonumber(ARGV[2]) + tonumber(ARGV[3])
-- -1 (a counter from a version that never expired it) is lower too: it gets a ttl now.
if redis.call('PTTL', KEYS[2]) < keep then
  redis.call('PEXPIRE', KEYS[2], keep)
end
return 1
