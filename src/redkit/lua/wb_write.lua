-- wb_write: write-behind's write: append an entity to its shard's stream and cache it, in one
-- step, unless the shard's backlog is full (then nothing changes: unflushed entries are never
-- trimmed to make room).
-- The stream counts exactly the unflushed entries: the flusher deletes entries as it
-- acknowledges them (wb_ack), so XLEN is the backlog. The cache entry has no TTL: it cannot
-- expire before it is flushed (wb_ack gives it one). The stream is written first: a script's
-- first write is the one the server checks against maxmemory, so out of memory refuses the
-- whole write.
-- KEYS[1]  the shard's stream
-- KEYS[2]  the entity's cache entry (same hash tag: the shard's)
-- ARGV[1]  the entity id (text)
-- ARGV[2]  the write: an 8-byte token unique to this write, then the encoded entity (stored
--          as it is in the stream and in the cache entry)
-- ARGV[3]  the shard's backlog limit (unflushed entries); 0 for none
-- Returns  the new stream entry's id; 0 when the backlog is full (nothing written).
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then
  return 0
end
local sid = redis.call('XADD', KEYS[1], '*', 'i', ARGV[1], 'd', ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
return sid
