-- lock_fence_raise: Redlock's second step; lift this server's fencing counter to the
-- token granted by the majority, so that any later majority (which shares a server with
-- this one) hands out a larger token. Idempotent: a re-sent raise changes nothing more.
-- KEYS[1]  lock key
-- KEYS[2]  fencing counter (same hash tag)
-- ARGV[1]  owner token
-- ARGV[2]  the granted fencing token
-- ARGV[3]  how long the counter outlives the lock, milliseconds
-- Returns  1 when the caller still owns the lock here (the counter is at least ARGV[2]);
--          0 when it does not (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if (tonumber(redis.call('GET', KEYS[2])) or 0) < tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    left = 0
  end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', left + tonumber(ARGV[3]))
end
return 1
