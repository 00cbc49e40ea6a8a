-- session_get: read a session and slide its expiry, in one step.
-- The expiry slides to now + ttl, but never past the session's horizon less the margin
-- (its user index would not cover it): then the caller lifts the horizon in the index
-- first and the session after (session_index_add, session_rehorizon).
-- KEYS[1]  session key (a hash)
-- ARGV[1]  ttl, milliseconds
-- ARGV[2]  margin, milliseconds
-- ARGV[3]  1 to slide the expiry and record the access, 0 to only read
-- Returns  false when missing; else {needs_horizon (0/1), server time ms, field, value, ...}
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lift = 0
if ARGV[3] == '1' then
  local horizon = nil
  for i = 1, #fields, 2 do
    if fields[i] == 'h' then
      horizon = tonumber(fields[i + 1])
    end
  end
  local expiry = now + tonumber(ARGV[1])
  if horizon and expiry > horizon - tonumber(ARGV[2]) then
    expiry = horizon - tonumber(ARGV[2])
    lift = 1
  end
  redis.call('PEXPIREAT', KEYS[1], expiry)
  redis.call('HSET', KEYS[1], 'a', now)
end
return {lift, now, fields}
