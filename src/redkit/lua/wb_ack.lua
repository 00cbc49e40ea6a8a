-- wb_ack: after the database commit, acknowledge and delete flushed stream entries, and give
-- each flushed cache entry its TTL if it still holds the flushed write (its token: a newer
-- write keeps its entry without TTL until that write is flushed in turn).
-- Deleting (rather than trimming by length) removes exactly the acknowledged entries: an
-- unflushed entry is never removed, and XLEN stays the backlog.
-- KEYS[1]      the shard's stream
-- KEYS[2]      the shard's failed-attempt counts (a hash: stream id -> attempts)
-- KEYS[3..]    the cache entries of the flushed entities (same hash tag: the shard's)
-- ARGV[1]      the consumer group
-- ARGV[2]      the TTL of a flushed cache entry, milliseconds (> 0)
-- ARGV[3]      n, the number of stream entry ids that follow
-- ARGV[4..3+n] the stream entry ids to acknowledge and delete
-- ARGV[4+n..]  the token (8 bytes) of the write flushed for each of KEYS[3..], in order
-- Returns      the number of entries acknowledged.
local n = tonumber(ARGV[3])
local acked = 0
local chunk = 500
local counted = redis.call('EXISTS', KEYS[2]) == 1
for first = 4, 3 + n, chunk do
  local last = math.min(first + chunk - 1, 3 + n)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, first, last))
  redis.call('XDEL', KEYS[1], unpack(ARGV, first, last))
  if counted then
    redis.call('HDEL', KEYS[2], unpack(ARGV, first, last))
  end
end
for k = 3, #KEYS do
  if redis.call('GETRANGE', KEYS[k], 0, 7) == ARGV[1 + n + k] then
    redis.call('PEXPIRE', KEYS[k], ARGV[2])
  end
end
return acked
