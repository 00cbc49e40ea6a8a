-- session_index_read: a user's index, without the entries that can have no live session.
-- KEYS[1]  the user's index (a sorted set)
-- ARGV[1]  margin, milliseconds
-- Returns  {server time ms, id, horizon, id, horizon, ...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now + tonumber(ARGV[1]))
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
table.insert(entries, 1, now)
return entries
