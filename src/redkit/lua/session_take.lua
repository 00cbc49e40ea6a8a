-- session_take: read a session and move it away in one step (rotation: the old id stops
-- working at once, and no update can land on it afterwards).
-- The session is renamed to its "gone" companion, marked with the rotation's token (the
-- new id), for a short while: redis-py re-sends a command whose reply was lost, and the
-- re-send of the same rotation must get the same data back, not "missing".
-- KEYS[1]  session key (a hash)
-- KEYS[2]  its gone companion (KEYS[1]:gone, same slot)
-- ARGV[1]  the rotation's token (the new session id)
-- ARGV[2]  how long the gone companion is kept, milliseconds
-- Returns  the session's field, value pairs; an empty list when it was missing (or moved
--          by another rotation or destroyed).
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], 't', ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return fields
end
if redis.call('HGET', KEYS[2], 't') == ARGV[1] then
  fields = redis.call('HGETALL', KEYS[2])
  local out = {}
  for i = 1, #fields, 2 do
    if fields[i] ~= 't' then
      out[#out + 1] = fields[i]
      out[#out + 1] = fields[i + 1]
    end
  end
  return out
end
return {}
