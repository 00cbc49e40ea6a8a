-- session_destroy: delete a session without touching its expiry first; optionally only
-- if it belongs to the given user.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  the encoded user id it must belong to, or absent for any
-- Returns  the encoded user id of the deleted session ('' for none); false when it was
--          missing or belongs to someone else (nothing changed).
local user = redis.call('HGET', KEYS[1], 'u')
if not user then
  return false
end
if ARGV[1] and user ~= ARGV[1] then
  return false
end
redis.call('DEL', KEYS[1])
return user
