-- ratelimit_gcra: the generic cell rate algorithm, ARGV[1] per ARGV[2] microseconds and at most
-- ARGV[3] at once, on one number per key: the theoretical arrival time (TAT).
-- The TAT is kept exactly as us + rem / limit (stored "us", or "us:rem" when rem > 0), and the
-- arithmetic works in units of 1/limit microsecond relative to now (the "debt"), in integers
-- that a double holds exactly, so a burst admits exactly ARGV[3] whatever the rate.
-- Time is the server's (TIME, microseconds). Twin: redkit._core.ratelimit_algorithms.GCRA.
-- KEYS[1]  the limited key; value "us" or "us:rem"
-- KEYS[2]  (hits only, optional) this hit's record, "<KEYS[1]>:hit:<random id>": written when
--          the hit takes its cost, for ARGV[6] ms. redis-py re-sends a command whose reply
--          timed out even when the server ran it; the re-sent hit finds its record and takes
--          nothing again (it answers as a look at the allowance left).
-- ARGV[1]  limit (int >= 1)
-- ARGV[2]  period, microseconds (int >= 1)
-- ARGV[3]  burst (int >= 1)
-- ARGV[4]  cost (int >= 0)
-- ARGV[5]  1 to consume the cost (a hit), 0 to only look (a peek)
-- ARGV[6]  (with KEYS[2]) how long the record lives, milliseconds
-- Returns  {allowed 1/0, remaining, reset_after_us, retry_after_us}; retry_after_us is 0 when
--          allowed and -1 when the cost exceeds the burst (it never fits); nothing is written
--          unless a cost above 0 is consumed.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit, period, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, consume = tonumber(ARGV[4]), ARGV[5] == '1'
if consume and KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then cost = 0 end -- a re-send
local debt = 0
local v = redis.call('GET', KEYS[1])
if v then
  local us, rem = string.match(v, '^(%d+):?(%d*)$')
  us, rem = tonumber(us), tonumber(rem) or 0
  if us and (us > now or (us == now and rem > 0)) then
    debt = (us - now) * limit + rem
  end
end
local tau = burst * period
if cost > burst then
  return {0, math.floor((tau - debt) / period), math.ceil(debt / limit), -1}
end
local need = debt + cost * period
if need <= tau then
  if consume and cost > 0 then
    if KEYS[2] then redis.call('SET', KEYS[2], '1', 'PX', ARGV[6]) end
    debt = need
    local whole = math.floor(debt / limit)
    local rem = debt - whole * limit
    local reset = math.ceil(debt / limit)
    local value = rem > 0 and string.format('%d:%d', now + whole, rem) or string.format('%d', now + whole)
    redis.call('SET', KEYS[1], value, 'PX', math.ceil(reset / 1000))
    return {1, math.floor((tau - debt) / period), reset, 0}
  end
  return {1, math.floor((tau - debt) / period), math.ceil(debt / limit), 0}
end
return {0, math.floor((tau - debt) / period), math.ceil(debt / limit), math.ceil((need - tau) / limit)}
