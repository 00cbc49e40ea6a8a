-- wb_write: write-behind's write: append an entity to its shard's stream and cache it, in one
-- step, unless the shard's backlog is full (then nothing changes: unflushed entries are never
-- trimmed to make room).
-- The stream counts exactly the unflushed entries: the flusher deletes entries as it
-- acknowledges them (wb_ack), so XLEN is the backlog. The cache entry has no TTL: it cannot
-- expire before it is flushed (wb_ack gives it one). The stream is written first: a script's
-- first write is the one the server checks against maxmemory, so out of memory refuses the
-- whole write.
-- Re-sent writes: redis-py re-sends a script whose reply timed out, although the server ran
-- it. The write's token is remembered (with its stream id) for one to two windows in the
-- shard's two op-memory hashes (window number from the server's clock; each hash holds one
-- window, field 'g' says which), and a write whose token is remembered is not applied again
-- (a newer write of the id may have come in between: it must stay the newest).
-- KEYS[1]  the shard's stream
-- KEYS[2]  the entity's cache entry (same hash tag: the shard's)
-- KEYS[3]  the shard's op memory for even windows (same hash tag)
-- KEYS[4]  the shard's op memory for odd windows (same hash tag)
-- ARGV[1]  the entity id (text)
-- ARGV[2]  the write: an 8-byte token unique to this write, then the encoded entity (stored
--          as it is in the stream and in the cache entry)
-- ARGV[3]  the shard's backlog limit (unflushed entries); 0 for none
-- ARGV[4]  the op-memory window, milliseconds (> 0)
-- Returns  the new stream entry's id (a re-sent write: the first one's); 0 when the backlog
--          is full (nothing written).
local token = string.sub(ARGV[2], 1, 8)
local t = redis.call('TIME')
local window = tonumber(ARGV[4])
local gen = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / window)
local cur, prev = KEYS[3 + gen % 2], KEYS[4 - gen % 2]
local mine = redis.call('HMGET', cur, 'g', token)
if tonumber(mine[1]) == gen and mine[2] then
  return mine[2]
end
local old = redis.call('HMGET', prev, 'g', token)
if tonumber(old[1]) == gen - 1 and old[2] then
  return old[2]
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then
  return 0
end
local sid = redis.call('XADD', KEYS[1], '*', 'i', ARGV[1], 'd', ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
if mine[1] and tonumber(mine[1]) ~= gen then
  redis.call('UNLINK', cur)
end
redis.call('HSET', cur, 'g', gen, token, sid)
redis.call('PEXPIRE', cur, 2 * window)
return sid
