-- session_index_add: put a session in its user's index (or lift its horizon there).
-- The index is a sorted set of session ids scored by a horizon: a server time (ms) that
-- the session's expiry never passes without the index being lifted first (see
-- redkit._async.sessions). Entries whose horizon has come (less the margin) can have no
-- live session and are dropped here; the index key expires with its last horizon.
-- KEYS[1]  the user's index (a sorted set)
-- ARGV[1]  session id
-- ARGV[2]  horizon span: ttl + slack, milliseconds
-- ARGV[3]  margin, milliseconds (a session expires at least this long before its horizon)
-- Returns  the session's horizon (server time, ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local margin = tonumber(ARGV[3])
local horizon = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now + margin)
local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if current and current >= horizon then
  horizon = current
else
  redis.call('ZADD', KEYS[1], horizon, ARGV[1])
end
local last = horizon - margin
if redis.call('PTTL', KEYS[1]) < last - now then
  redis.call('PEXPIREAT', KEYS[1], last)
end
return horizon
