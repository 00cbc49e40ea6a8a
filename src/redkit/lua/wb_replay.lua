-- wb_replay: put one dead letter back on its shard's stream, keeping its original version,
-- and back in its cache entry, unless a newer write of the same id has superseded it (then
-- it is only removed).
-- A dead letter's cache entry keeps no TTL while it holds the dead letter's token (wb_dead
-- cut it down to the token), so an entry that now holds another write, or none, means a
-- newer write came (and was flushed, or will be): replaying the old value could overwrite it.
-- Idempotent: a re-sent call (its op id remembered, as wb_write remembers a write's token)
-- returns what the first one did, and changes nothing.
-- KEYS[1]  the shard's stream
-- KEYS[2]  the shard's dead-letter stream
-- KEYS[3]  the entity's cache entry (same hash tag)
-- KEYS[4]  the shard's op memory of the caller's time window (same hash tag)
-- ARGV[1]  the dead letter's id in the dead-letter stream
-- ARGV[2]  the op id: 8 random bytes
-- ARGV[3]  how long the op memory lives after its last record, milliseconds (> 0)
-- Returns  1 when replayed, 0 when superseded (dropped), -1 when the dead letter is gone.
local done = redis.call('HGET', KEYS[4], ARGV[2])
if done then
  return tonumber(done)
end
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #found == 0 then
  return -1
end
local fields = {}
local flat = found[1][2]
for k = 1, #flat, 2 do
  fields[flat[k]] = flat[k + 1]
end
redis.call('XDEL', KEYS[2], ARGV[1])
local outcome = 0
if redis.call('GETRANGE', KEYS[3], 0, 7) == string.sub(fields['d'], 1, 8) then
  redis.call('XADD', KEYS[1], '*', 'i', fields['i'], 'd', fields['d'], 'v', fields['v'])
  redis.call('SET', KEYS[3], fields['d'])
  outcome = 1
end
redis.call('HSET', KEYS[4], ARGV[2], outcome)
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return outcome
