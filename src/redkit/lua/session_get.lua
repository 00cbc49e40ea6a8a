-- session_get: read a session and slide its expiry, in one step.
-- The expiry slides to now + ttl, but never past the session's horizon less the margin
-- (its user index would not cover it): then the caller lifts the horizon in the index
-- first and the session after (session_index_add, session_rehorizon).
-- The writes go through pcall: a server that refuses writes (OOM under maxmemory with
-- noeviction, a READONLY replica) still answers the read; the expiry then does not slide.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  ttl, milliseconds
-- ARGV[2]  margin, milliseconds
-- ARGV[3]  1 to slide the expiry and record the access, 0 to only read
-- Returns  false when missing; else {needs_horizon (0/1), server time ms, {field, value,
--          ...}, refused (1 when the server refused to slide, else 0)}
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lift = 0
local refused = 0
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
  local slid = redis.pcall('PEXPIREAT', KEYS[1], expiry)
  if type(slid) == 'table' and slid.err then
    return {0, now, fields, 1}
  end
  local recorded = redis.pcall('HSET', KEYS[1], 'a', now)
  if type(recorded) == 'table' and recorded.err then
    refused = 1
  end
end
return {lift, now, fields, refused}
