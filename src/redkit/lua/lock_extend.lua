-- lock_extend: set a held lock's remaining time, if the caller still owns it.
-- KEYS[1]  lock key
-- ARGV[1]  owner token
-- ARGV[2]  new time-to-live, milliseconds (replaces what was left)
-- Returns  1 when extended; 0 when the caller did not own the lock (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
