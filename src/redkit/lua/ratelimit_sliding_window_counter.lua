-- ratelimit_sliding_window_counter: the weighted two-window estimate,
-- previous * (unelapsed share of the current window) + current, at most ARGV[1]; O(1) memory.
-- Windows of ARGV[2] microseconds follow each other from the first hit. Error bound: at most
-- ARGV[1] in each window, and in any span of one window at most limit + previous * elapsed
-- share (below 2 * limit, reached only when the previous window's hits all came at its end);
-- exact when the previous window's hits were evenly spread.
-- Time is the server's (TIME, microseconds). Twin: redkit._core.ratelimit_algorithms.SlidingWindowCounter.
-- KEYS[1]  the limited key; value "start:previous:current" (start in microseconds)
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
local start, prev, cur = now, 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local s, p, c = string.match(v, '^(%d+):(%d+):(%d+)$')
  s, p, c = tonumber(s), tonumber(p), tonumber(c)
  if s and p and c then
    local elapsed = now - s
    if elapsed < window then
      start, prev, cur = s, p, c
    elseif elapsed < 2 * window then
      start, prev, cur = s + window, c, 0
    end
  end
end

local function used_at(at)
  local s, p, c = start, prev, cur
  if at - s >= window then
    if at - s >= 2 * window then return 0 end
    s, p, c = s + window, c, 0
  end
  local e = math.max(0, at - s)
  return p * (window - e) / window + c
end

local function left(used)
  return math.max(0, math.floor(limit - used))
end

local function reset_after()
  if cur > 0 then return start + 2 * window - now end
  if prev > 0 then return start + window - now end
  return 0
end

local used = used_at(now)
if cost > limit then
  return {0, left(used), reset_after(), -1}
end
if used + cost <= limit then
  if consume and cost > 0 then
    if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[5]) end
    cur = cur + cost
    redis.call('SET', KEYS[1], string.format('%d:%d:%d', start, prev, cur),
      'PX', math.ceil((start + 2 * window - now) / 1000))
    return {1, left(used_at(now)), reset_after(), 0}
  end
  return {1, left(used), reset_after(), 0}
end
local e = math.max(0, now - start)
local wait
if cur + cost <= limit then -- only the previous window's share is in the way
  wait = math.ceil(window - (limit - cur - cost) * window / prev - e)
else -- wait for the next window, then for the current count's share to shrink
  local share = window - (limit - cost) * window / cur
  wait = start + window - now + math.ceil(math.max(0, share))
end
for _ = 1, 3 do
  if used_at(now + wait) + cost <= limit then break end
  wait = wait + 1
end
return {0, left(used), reset_after(), wait}
