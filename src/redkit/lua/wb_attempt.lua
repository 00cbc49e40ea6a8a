#!lua flags=allow-oom
-- wb_attempt: count one failed attempt of a stream entry the repository refused (counted in
-- Redis, so the count adds up across flushers and restarts); a re-sent call (its op id
-- remembered, as wb_write remembers a write's token) counts nothing more.
-- allow-oom: a refused entity must reach the dead-letter stream also when the backlog has
-- filled Redis (the count is a few bytes; wb_dead frees the entry's).
-- KEYS[1]  the shard's failed-attempt counts (a hash: stream id -> attempts)
-- KEYS[2]  the shard's op memory of the caller's time window (same hash tag)
-- ARGV[1]  the stream entry id
-- ARGV[2]  the op id: 8 random bytes
-- ARGV[3]  how long the op memory lives after its last record, milliseconds (> 0)
-- Returns  the attempts counted so far.
local done = redis.call('HGET', KEYS[2], ARGV[2])
if done then
  return tonumber(done)
end
local attempts = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[2], ARGV[2], attempts)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return attempts
