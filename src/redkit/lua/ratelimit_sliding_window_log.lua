-- ratelimit_sliding_window_log: at most ARGV[1] in any window of ARGV[2] microseconds, exactly.
-- One sorted-set entry per admitted hit, whatever its cost: scored by its time, and named
-- "total:cost", where total is the running sum of the costs admitted (this hit's included).
-- The count in the window is total(newest) - total(oldest live) + cost(oldest live): a few
-- O(log n) lookups, so a hit's server time does not grow with its cost (one entry per unit made
-- a cost of a million block the server for seconds). Stamps are unique and follow the totals'
-- order: a stamp that would land on or before the newest entry is moved to one microsecond
-- after it. Expired entries are removed (at most 1000 per hit, so no hit pays for a flood; the
-- key expires with its newest entry), the rest counted and the new one added in this one
-- script, so concurrent callers can never overshoot (checking in one round trip and adding in
-- another can).
-- Time is the server's (TIME, microseconds). Twin: redkit._core.ratelimit_algorithms.SlidingWindowLog.
-- KEYS[1]  the limited key (a sorted set: score = stamp in microseconds, member = "total:cost")
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
--          allowed and -1 when the cost exceeds the limit (it never fits); a peek, or a cost
--          above the limit, writes nothing.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local key = KEYS[1]
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, consume = tonumber(ARGV[3]), ARGV[4] == '1'
if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then cost = 0 end -- a re-send
local floor = now - window -- entries stamped at or before this have expired

local function total_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end

-- count: the costs of the live entries; expired: how many expired entries precede them
local count, expired, newest, total = 0, 0, nil, 0
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if last[1] then
  newest, total = tonumber(last[2]), total_of(last[1])
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if tonumber(first[2]) <= floor then
    expired = redis.call('ZCOUNT', key, '-inf', string.format('%d', floor))
    first = redis.call('ZRANGE', key, expired, expired)
  end
  if first[1] then
    local before, c = string.match(first[1], '^(%d+):(%d+)$')
    count = total - tonumber(before) + tonumber(c)
  end
end
if consume and cost <= limit and expired > 0 then
  local removed = math.min(expired, 1000)
  redis.call('ZREMRANGEBYRANK', key, 0, removed - 1)
  expired = expired - removed
end
local reset = count > 0 and newest + window - now or 0
if cost > limit then
  return {0, limit - count, reset, -1}
end
if count + cost <= limit then
  if consume and cost > 0 then
    if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[5]) end
    local stamp = now
    if newest and newest + 1 > now then stamp = newest + 1 end
    total = total + cost
    redis.call('ZADD', key, string.format('%d', stamp), string.format('%d:%d', total, cost))
    count = count + cost
    reset = stamp + window - now
    redis.call('PEXPIRE', key, math.ceil(reset / 1000))
    return {1, limit - count, reset, 0}
  end
  return {1, limit - count, reset, 0}
end
-- the oldest entry whose expiry leaves room for the cost: the first live one whose total
-- reaches total + cost - limit (totals grow with the stamps, so a binary search finds it)
local target = total + cost - limit
local lo, hi = expired, redis.call('ZCARD', key) - 1
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if total_of(redis.call('ZRANGE', key, mid, mid)[1]) >= target then hi = mid else lo = mid + 1 end
end
local entry = redis.call('ZRANGE', key, lo, lo, 'WITHSCORES')
return {0, limit - count, reset, tonumber(entry[2]) + window - now}
