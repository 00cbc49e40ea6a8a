-- adaptive_get: read an entry and record the read in its statistics, in one step.
-- The statistics (a hash: hits, misses, last = time of the last hit in server milliseconds)
-- expire with the entry: a hit that creates them gives them the entry's expiry (ARGV[2]
-- when the entry has none); a miss gives them ARGV[1], the life of statistics of an absent
-- entry; fills and sets give them their entry's (cache_fill.lua, cache_set.lua).
-- KEYS[1]  entry key
-- KEYS[2]  statistics key (same hash tag as the entry)
-- ARGV[1]  time-to-live of the statistics of an absent entry, milliseconds (> 0)
-- ARGV[2]  time-to-live of the statistics of an entry without expiry, milliseconds (> 0)
-- Returns  {entry bytes} on a hit;
--          {false, hits, misses, last hit ms (-1: never), server time ms} on a miss.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local entry = redis.call('GET', KEYS[1])
if entry then
  local hits = redis.call('HINCRBY', KEYS[2], 'hits', 1)
  redis.call('HSET', KEYS[2], 'last', now)
  -- Statistics made by a miss, a fill or a set have an expiry: only those this hit has just
  -- made (hits == 1) may lack one.
  if hits == 1 and redis.call('PTTL', KEYS[2]) < 0 then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl < 0 then
      ttl = ARGV[2]
    elseif ttl == 0 then
      ttl = 1
    end
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  return {entry}
end
local misses = redis.call('HINCRBY', KEYS[2], 'misses', 1)
if redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
local seen = redis.call('HMGET', KEYS[2], 'hits', 'last')
return {false, tonumber(seen[1] or 0), misses, tonumber(seen[2] or -1), now}
