#!lua flags=allow-oom
-- wb_members: a flusher's heartbeat in its prefix's registry of live flushers, on the
-- server's clock; the shards are spread over the members the registry returns.
-- allow-oom: a flusher registers before it drains, also when the backlog has filled Redis;
-- a member costs a few bytes.
-- KEYS[1]  the prefix's flusher registry (a sorted set: token -> last heartbeat, ms)
-- ARGV[1]  the flusher's token
-- ARGV[2]  how long a member lives without a heartbeat, milliseconds (> 0)
-- ARGV[3]  "join" (add or refresh the token) or "leave" (remove it)
-- Returns  the live members' tokens, sorted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'join' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
return members
