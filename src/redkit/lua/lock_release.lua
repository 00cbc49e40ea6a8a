-- lock_release: release a lock if the caller still owns it, and wake one waiter.
-- The wake-up list holds at most one signal and expires: a signal nobody takes costs one
-- spurious retry of a later waiter, never memory that grows.
-- KEYS[1]  lock key
-- KEYS[2]  wake-up list (same hash tag; waiters block on it with BLPOP)
-- ARGV[1]  owner token
-- ARGV[2]  how long an untaken signal lives, milliseconds
-- Returns  1 when released; 0 when the caller did not own the lock (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('RPUSH', KEYS[2], 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
