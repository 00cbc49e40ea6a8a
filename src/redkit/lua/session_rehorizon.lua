-- session_rehorizon: record a lifted horizon in a live session and slide it fully.
-- Never creates a session: a destroyed or expired one stays gone.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  the new horizon (server ms, from session_index_add)
-- ARGV[2]  ttl, milliseconds
-- ARGV[3]  margin, milliseconds
-- Returns  1 when updated, 0 when the session is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local horizon = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'h'))
if current and current > horizon then
  horizon = current
end
redis.call('HSET', KEYS[1], 'h', horizon)
local expiry = math.min(now + tonumber(ARGV[2]), horizon - tonumber(ARGV[3]))
if expiry > now then
  redis.call('PEXPIREAT', KEYS[1], expiry)
end
return 1
