-- session_destroy: delete a session without touching its expiry first; optionally only
-- if it belongs to the given user.
-- A short-lived "gone" companion remembers the call's token and the user: redis-py
-- re-sends a command whose reply was lost, and the re-send of the same destroy must
-- answer as the first run did (it did delete the session), not "missing".
-- KEYS[1]  session key (a hash)
-- KEYS[2]  its gone companion (KEYS[1]:gone, same slot): a string '<token>:<user>'
-- ARGV[1]  the call's token (random, one per destroy call, without ':')
-- ARGV[2]  how long the gone companion is kept, milliseconds
-- ARGV[3]  the encoded user id it must belong to, or absent for any
-- Returns  the encoded user id of the deleted session ('' for none); false when it was
--          missing or belongs to someone else (nothing changed).
local user = redis.call('HGET', KEYS[1], 'u')
if not user then
  -- a rotation leaves a hash there, a destroy a string: '<token>:<user>'
  if redis.call('TYPE', KEYS[2]).ok == 'string' then
    local gone = redis.call('GET', KEYS[2])
    local prefix = ARGV[1] .. ':'
    if string.sub(gone, 1, #prefix) == prefix then
      return string.sub(gone, #prefix + 1)
    end
  end
  return false
end
if ARGV[3] and user ~= ARGV[3] then
  return false
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1] .. ':' .. user, 'PX', ARGV[2])
return user
