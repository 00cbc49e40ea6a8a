-- wb_write: write-behind's write: append an entity to its shard's stream and cache it, in one
-- step, unless the shard's backlog is full (then nothing changes: unflushed entries are never
-- trimmed to make room).
-- The stream counts exactly the unflushed entries: the flusher deletes entries as it
-- acknowledges them (wb_ack), so XLEN is the backlog. The cache entry has no TTL: it cannot
-- expire before it is flushed (wb_ack gives it one). The stream is written first: a script's
-- first write is the one the server checks against maxmemory, so out of memory refuses the
-- whole write.
-- Re-sent writes: redis-py re-sends a script whose reply timed out, although the server ran
-- it, with the same KEYS and ARGV. The write's token is remembered (with its stream id) in
-- KEYS[3], an op-memory hash the writer names after its current time window, and a write
-- whose token is there is not applied again (a newer write of the id may have come in
-- between: it must stay the newest). The hash lives ARGV[4] ms after its last record.
-- KEYS[1]  the shard's stream
-- KEYS[2]  the entity's cache entry (same hash tag: the shard's)
-- KEYS[3]  the shard's op memory of the writer's time window (same hash tag)
-- ARGV[1]  the entity id (text)
-- ARGV[2]  the write: an 8-byte token unique to this write, then the encoded entity (stored
--          as it is in the stream and in the cache entry)
-- ARGV[3]  the shard's backlog limit (unflushed entries); 0 for none
-- ARGV[4]  how long the op memory lives after its last record, milliseconds (> 0)
-- Returns  the new stream entry's id (a re-sent write: the first one's); 0 when the backlog
--          is full (nothing written).
local token = string.sub(ARGV[2], 1, 8)
local done = redis.call('HGET', KEYS[3], token)
if done then
  return done
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then
  return 0
end
local sid = redis.call('XADD', KEYS[1], '*', 'i', ARGV[1], 'd', ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], token, sid)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return sid
