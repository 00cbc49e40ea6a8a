-- ratelimit_token_bucket: a bucket of ARGV[1] tokens refilled continuously at ARGV[2] tokens
-- per ARGV[3] microseconds (fractional tokens, so rates below one per second work).
-- Time is the server's (TIME, microseconds), never the client's. Twin:
-- redkit._core.ratelimit_algorithms.TokenBucket.
-- KEYS[1]  the limited key; value "tokens:updated" (tokens as %.17g, updated in microseconds)
-- KEYS[2]  (hits only, optional) this hit's record, "<KEYS[1]>:hit:<random id>": written when
--          the hit takes its cost, for ARGV[6] ms. redis-py re-sends a command whose reply
--          timed out even when the server ran it; the re-sent hit finds its record and takes
--          nothing again (it answers as a look at the allowance left).
-- ARGV[1]  capacity (int >= 1)
-- ARGV[2]  refill rate, tokens per interval (a number above 0)
-- ARGV[3]  refill interval, microseconds (int >= 1)
-- ARGV[4]  cost (int >= 0)
-- ARGV[5]  1 to consume the cost (a hit), 0 to only look (a peek)
-- ARGV[6]  (with KEYS[2]) how long the record lives, milliseconds
-- Returns  {allowed 1/0, remaining, reset_after_us, retry_after_us}; retry_after_us is 0 when
--          allowed and -1 when the cost exceeds the capacity (it never fits); nothing is
--          written unless a cost above 0 is consumed.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local capacity, rate, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then cost = 0 end -- a re-send
local base_tokens, base_ts = capacity, now
local v = redis.call('GET', KEYS[1])
if v then
  local tk, ts = string.match(v, '^([^:]+):(%d+)$')
  tk, ts = tonumber(tk), tonumber(ts)
  if tk and ts then base_tokens, base_ts = tk, ts end
end
local tokens, ts = base_tokens, base_ts
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / interval)
  ts = now
end
local reset = math.ceil((capacity - tokens) * interval / rate)
if cost > capacity then
  return {0, math.floor(tokens), reset, -1}
end
if tokens >= cost then
  if consume and cost > 0 then
    if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[6]) end
    tokens = tokens - cost
    reset = math.ceil((capacity - tokens) * interval / rate)
    redis.call('SET', KEYS[1], string.format('%.17g:%d', tokens, ts), 'PX', math.ceil(reset / 1000))
    return {1, math.floor(tokens), reset, 0}
  end
  return {1, math.floor(tokens), reset, 0}
end
local wait = math.ceil((cost - tokens) * interval / rate)
for _ = 1, 3 do -- what a later call computes, from the stored state
  if math.min(capacity, base_tokens + (now + wait - base_ts) * rate / interval) >= cost then break end
  wait = wait + 1
end
return {0, math.floor(tokens), reset, wait}
