-- ratelimit_sliding_window_log: at most ARGV[1] in any window of ARGV[2] microseconds, one
-- sorted-set entry per unit of cost, scored by its time. Expired entries are removed, the rest
-- counted and the new ones added in this one script, so concurrent callers can never overshoot
-- (checking in one round trip and adding in another can). Entries are unique even for
-- simultaneous calls: a stamp that would land on or before the newest entry is moved to one
-- microsecond after it, and each entry's member is its stamp.
-- Time is the server's (TIME, microseconds). Twin: redkit._core.ratelimit_algorithms.SlidingWindowLog.
-- KEYS[1]  the limited key (a sorted set: member = score = stamp in microseconds)
-- ARGV[1]  limit (int >= 1)
-- ARGV[2]  window, microseconds (int >= 1)
-- ARGV[3]  cost (int >= 0)
-- ARGV[4]  1 to consume the cost (a hit), 0 to only look (a peek)
-- Returns  {allowed 1/0, remaining, reset_after_us, retry_after_us}; retry_after_us is 0 when
--          allowed and -1 when the cost exceeds the limit (it never fits); a peek, or a cost
--          above the limit, writes nothing.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local key = KEYS[1]
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, consume = tonumber(ARGV[3]), ARGV[4] == '1'
local floor = now - window -- entries stamped at or before this have expired
local count
if consume and cost <= limit then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', floor))
  count = redis.call('ZCARD', key)
else
  count = redis.call('ZCOUNT', key, string.format('(%d', floor), '+inf')
end
local newest = nil
if count > 0 then
  newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
end
local reset = newest and newest + window - now or 0
if cost > limit then
  return {0, limit - count, reset, -1}
end
if count + cost <= limit then
  if consume and cost > 0 then
    local first = now
    if newest and newest + 1 > now then first = newest + 1 end
    local batch = {}
    for stamp = first, first + cost - 1 do
      local member = string.format('%d', stamp)
      batch[#batch + 1] = member
      batch[#batch + 1] = member
      if #batch >= 1000 then
        redis.call('ZADD', key, unpack(batch))
        batch = {}
      end
    end
    if #batch > 0 then redis.call('ZADD', key, unpack(batch)) end
    count = count + cost
    reset = first + cost - 1 + window - now
    redis.call('PEXPIRE', key, math.ceil(reset / 1000))
    return {1, limit - count, reset, 0}
  end
  return {1, limit - count, reset, 0}
end
-- the entry whose expiry leaves room for the cost
local entry = redis.call('ZRANGEBYSCORE', key, string.format('(%d', floor), '+inf',
  'WITHSCORES', 'LIMIT', count + cost - limit - 1, 1)
return {0, limit - count, reset, tonumber(entry[2]) + window - now}
