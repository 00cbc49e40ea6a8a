-- session_update: set and remove data fields of a live session; never resurrects one.
-- Fields not named are left alone, so concurrent updates of different fields all land.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  n, the number of fields to set
-- ARGV[2..2n+1]  field, value pairs to set
-- ARGV[2n+2..]   fields to remove
-- Returns  1 when updated, 0 when the session is gone (nothing written).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local count = tonumber(ARGV[1])
if count > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2, 1 + 2 * count))
end
if #ARGV > 1 + 2 * count then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 2 + 2 * count))
end
return 1
