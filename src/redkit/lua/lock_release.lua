-- lock_release: release a lock if the caller still owns it, and wake one waiter.
-- The wake-up list holds at most one signal and expires: a signal nobody takes costs one
-- spurious retry of a later waiter, never memory that grows.
-- Re-sent (redis-py retries a command whose reply came late, on a new connection): the
-- first run left a marker holding the owner token, so the re-send reports the release it
-- made instead of "not owned". Only a release by this token writes that marker.
-- KEYS[1]  lock key
-- KEYS[2]  wake-up list (same hash tag; waiters block on it with BLPOP)
-- KEYS[3]  release marker (same hash tag; the token of the last release)
-- ARGV[1]  owner token
-- ARGV[2]  how long an untaken signal lives, milliseconds
-- ARGV[3]  how long the release marker lives, milliseconds
-- Returns  1 when released (now, or by an earlier run of this same release); 0 when the
--          caller did not own the lock (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  if redis.call('GET', KEYS[3]) == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('RPUSH', KEYS[2], 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
return 1
