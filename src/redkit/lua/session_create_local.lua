-- session_create_local: session_index_add and session_create in one step, for a single
-- server (standalone or Sentinel), where the session and its index may share a script.
-- KEYS[1]  session key (a hash)
-- KEYS[2]  the user's index (a sorted set); absent for a session without user
-- ARGV[1]  horizon span: ttl + slack, milliseconds
-- ARGV[2]  ttl, milliseconds
-- ARGV[3]  margin, milliseconds
-- ARGV[4]  the session id
-- ARGV[5]  the encoded user id ('' for none)
-- ARGV[6..] field, value pairs of the session data
-- Returns  the server time (ms) when written; -1 when the id exists already (nothing
--          changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local margin = tonumber(ARGV[3])
local horizon = ''
if #KEYS == 2 then
  horizon = now + tonumber(ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now + margin)
  redis.call('ZADD', KEYS[2], horizon, ARGV[4])
  local last = horizon - margin
  if redis.call('PTTL', KEYS[2]) < last - now then
    redis.call('PEXPIREAT', KEYS[2], last)
  end
end
local fields = {'u', ARGV[5], 'c', now, 'a', now, 'h', horizon}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now
