-- wb_dead: move an entity the repository refused max_attempts times to the shard's
-- dead-letter stream, with its error, and acknowledge and delete its stream entries.
-- Its cache entry is left as it is (no TTL while it holds this write): wb_replay uses it to
-- tell whether a newer write has superseded the dead letter since.
-- KEYS[1]  the shard's stream
-- KEYS[2]  the shard's dead-letter stream (same hash tag)
-- KEYS[3]  the shard's failed-attempt counts (a hash: stream id -> attempts)
-- ARGV[1]  the consumer group
-- ARGV[2]  the entity id (text)
-- ARGV[3]  the write (token and encoded entity)
-- ARGV[4]  its version (the stream id it was written as)
-- ARGV[5]  the error, as text
-- ARGV[6]  the number of attempts made
-- ARGV[7..] the stream entry ids to acknowledge and delete
-- Returns  the dead letter's id in the dead-letter stream.
local sid = redis.call('XADD', KEYS[2], '*', 'i', ARGV[2], 'd', ARGV[3], 'v', ARGV[4],
  'e', ARGV[5], 'a', ARGV[6])
if #ARGV >= 7 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 7))
  redis.call('XDEL', KEYS[1], unpack(ARGV, 7))
  redis.call('HDEL', KEYS[3], unpack(ARGV, 7))
end
return sid
