-- wb_dead: move an entity the repository refused max_attempts times to the shard's
-- dead-letter stream, with its error, and acknowledge and delete its stream entries.
-- Readers must then see what the database holds: when the entity's cache entry still holds
-- this write (its token), the entry is cut down to the token alone, which readers take as a
-- miss (they read the repository) and which wb_replay still recognises as this write (an
-- entry that holds another write means a newer write superseded the dead letter: it is left
-- as it is). The entry keeps no TTL while it holds the token.
-- Idempotent: a re-sent call (its entries already gone from the stream) changes nothing.
-- KEYS[1]  the shard's stream
-- KEYS[2]  the shard's dead-letter stream (same hash tag)
-- KEYS[3]  the shard's failed-attempt counts (a hash: stream id -> attempts)
-- KEYS[4]  the entity's cache entry (same hash tag)
-- ARGV[1]  the consumer group
-- ARGV[2]  the entity id (text)
-- ARGV[3]  the write (token and encoded entity)
-- ARGV[4]  its version (the stream id it was written as)
-- ARGV[5]  the error, as text
-- ARGV[6]  the number of attempts made
-- ARGV[7..] the stream entry ids to acknowledge and delete (at least one)
-- Returns  the dead letter's id in the dead-letter stream; 0 when its entries were already
--          gone (a re-sent call, or another flusher moved them).
local last = ARGV[#ARGV]
if #redis.call('XRANGE', KEYS[1], last, last) == 0 then
  return 0
end
-- The frees first: out of memory, a script may go on writing once it has written.
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 7))
redis.call('XDEL', KEYS[1], unpack(ARGV, 7))
redis.call('HDEL', KEYS[3], unpack(ARGV, 7))
local sid = redis.call('XADD', KEYS[2], '*', 'i', ARGV[2], 'd', ARGV[3], 'v', ARGV[4],
  'e', ARGV[5], 'a', ARGV[6])
local token = string.sub(ARGV[3], 1, 8)
if #ARGV[3] > 8 and redis.call('GETRANGE', KEYS[4], 0, 7) == token then
  redis.call('SET', KEYS[4], token)
end
return sid
