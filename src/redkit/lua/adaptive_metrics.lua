-- adaptive_metrics: an entry's read statistics and the server's time, read together.
-- KEYS[1]  statistics key
-- Returns  {hits, misses, last hit ms (-1: never), server time ms}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seen = redis.call('HMGET', KEYS[1], 'hits', 'misses', 'last')
return {tonumber(seen[1] or 0), tonumber(seen[2] or 0), tonumber(seen[3] or -1), now}
