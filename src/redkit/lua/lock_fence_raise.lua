-- lock_fence_raise: Redlock's second step; lift this server's fencing counter to the
-- token granted by the majority, so that any later majority (which shares a server with
-- this one) hands out a larger token.
-- KEYS[1]  lock key
-- KEYS[2]  fencing counter (same hash tag)
-- ARGV[1]  owner token
-- ARGV[2]  the granted fencing token
-- Returns  1 when the caller still owns the lock here (the counter is at least ARGV[2]);
--          0 when it does not (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local wanted = tonumber(ARGV[2])
if (tonumber(redis.call('GET', KEYS[2])) or 0) < wanted then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
