-- session_take: read a session and delete it in one step (rotation: the old id stops
-- working at once, and no update can land on it afterwards).
-- KEYS[1]  session key (a hash)
-- Returns  the session's field, value pairs; an empty list when it was missing.
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then
  redis.call('DEL', KEYS[1])
end
return fields
