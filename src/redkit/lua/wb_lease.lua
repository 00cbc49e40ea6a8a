#!lua flags=allow-oom
-- wb_lease: take or renew a flusher's lease on one shard (the shard's stream is read by its
-- lease holder only, so entries of one id are flushed in stream order).
-- Taking a free lease also creates the shard's consumer group (and stream) if missing.
-- allow-oom: a flusher must start when the backlog has filled Redis (maxmemory with
-- noeviction), as it is the one process that frees memory; this script writes a few bytes
-- at most (the lease, and a consumer group where none exists yet).
-- KEYS[1]  the shard's lease
-- KEYS[2]  the shard's stream (same hash tag)
-- ARGV[1]  the flusher's token (its consumer name)
-- ARGV[2]  the lease's time-to-live, milliseconds (> 0)
-- ARGV[3]  the consumer group
-- ARGV[4]  "renew" (only extend a lease still held) or "take" (extend, or take a free one)
-- Returns  1 when held and extended; 2 when taken now; 0 when another flusher holds it, or
--          (renew) when it was lost.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder or ARGV[4] ~= 'take' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], ARGV[3], '0', 'MKSTREAM')
if not ok then
  local message = type(err) == 'table' and err.err or tostring(err)
  if not string.find(message, 'BUSYGROUP', 1, true) then
    return redis.error_reply(message)
  end
end
return 2
