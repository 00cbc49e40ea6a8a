-- lock_acquire: take a lock if it is free, with a fencing token from the same step.
-- A fencing token is the larger of the counter + 1 and the server's clock in microseconds:
-- a lost counter (FLUSHALL, eviction, a restart without persistence, a failover) is covered
-- by the clock, a clock that steps back by the counter, so tokens never decrease unless both
-- are lost at once. The counter outlives the lock by ARGV[3] ms (every acquire and extend
-- refreshes it), then expires: an idle lock name leaves no key behind.
-- Re-sent (redis-py retries a command whose reply came late, on a new connection): when the
-- lock already holds this owner token, the acquire succeeded before; its fencing token is
-- returned again and nothing changes.
-- The lock is written first: a script's first write is the one the server checks against
-- maxmemory, so out of memory refuses the acquire whole (the counter is left alone).
-- KEYS[1]  lock key (holds the owner's token)
-- KEYS[2]  fencing counter (same hash tag; holds the last token handed out)
-- ARGV[1]  owner token (random, at least 128 bits)
-- ARGV[2]  lock time-to-live, milliseconds
-- ARGV[3]  how long the counter outlives the lock, milliseconds
-- Returns  the fencing token (>= 1) when taken (or taken by this very token before); when
--          held by someone else, minus the holder's remaining time in ms (0 when it has no
--          expiry or expires this instant).
local function mint()
  local now = redis.call('TIME')
  local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local fence = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1
  if fence < clock then
    fence = clock
  end
  redis.call('SET', KEYS[2], string.format('%d', fence),
    'PX', tonumber(ARGV[2]) + tonumber(ARGV[3]))
  return fence
end

if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return mint()
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return tonumber(redis.call('GET', KEYS[2])) or mint()
end
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  return -left
end
return 0
