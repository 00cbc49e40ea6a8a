-- ratelimit_fixed_window: at most ARGV[1] per window; a window starts with the first hit after
-- the previous one ended. The count and its window start are read and written in this one
-- script, with the key's expiry set by the same SET (never INCR then EXPIRE: a client that
-- dies between those two leaves a key that never expires).
-- Time is the server's (TIME, microseconds). Twin: redkit._core.ratelimit_algorithms.FixedWindow.
-- KEYS[1]  the limited key; value "start:count" (start in microseconds)
-- KEYS[2]  (hits only, optional) this hit's record, "<KEYS[1]>:hit:<random id>": written when
--          the hit takes its cost, for ARGV[5] ms. redis-py re-sends a command whose reply
--          timed out even when the server ran it; the re-sent hit finds its record and takes
--          nothing again (it answers as a look at the allowance left).
-- ARGV[1]  limit (int >= 1)
-- ARGV[2]  window, microseconds (int >= 1)
-- ARGV[3]  cost (int >= 0)
-- ARGV[4]  1 to consume the cost (a hit), 0 to only look (a peek)
-- ARGV[5]  (with KEYS[2]) how long the record lives, milliseconds
-- Returns  {allowed 1/0, remaining, reset_after_us, retry_after_us}; retry_after_us is 0 when
--          allowed and -1 when the cost exceeds the limit (it never fits); nothing is written
--          unless a cost above 0 is consumed.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, consume = tonumber(ARGV[3]), ARGV[4] == '1'
if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then cost = 0 end -- a re-send
local start, count = now, 0
local v = redis.call('GET', KEYS[1])
if v then
  local s, c = string.match(v, '^(%d+):(%d+)$')
  s, c = tonumber(s), tonumber(c)
  if s and c and now - s < window then
    start, count = s, c
  end
end
local reset = start + window - now
if cost > limit then
  return {0, limit - count, count > 0 and reset or 0, -1}
end
if count + cost <= limit then
  if consume and cost > 0 then
    if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[5]) end
    count = count + cost
    redis.call('SET', KEYS[1], string.format('%d:%d', start, count), 'PX', math.ceil(reset / 1000))
    return {1, limit - count, reset, 0}
  end
  return {1, limit - count, count > 0 and reset or 0, 0}
end
return {0, limit - count, reset, reset}
