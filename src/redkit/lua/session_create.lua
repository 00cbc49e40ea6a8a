-- session_create: write a new session whose index entry (if it has a user) is written.
-- Refuses when the index entry was written more than the creation window ago (a paused
-- caller): reads trim an entry without session once its window has passed, so a session
-- written later could live outside its user's index.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  horizon from session_index_add (server ms), or '' for a session without user
-- ARGV[2]  ttl, milliseconds
-- ARGV[3]  margin, milliseconds
-- ARGV[4]  horizon span (ttl + slack), milliseconds: the index entry was written at
--          horizon - span
-- ARGV[5]  creation window, milliseconds (<= margin)
-- ARGV[6]  the encoded user id ('' for none)
-- ARGV[7]  created_at to keep (server ms; rotation), or '' for now
-- ARGV[8..] field, value pairs of the session data
-- Returns  the server time (ms) when written; 0 when refused (too late); -1 when the id
--          exists already (nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
if ARGV[1] ~= '' then
  local horizon = tonumber(ARGV[1])
  if now > horizon - tonumber(ARGV[4]) + tonumber(ARGV[5]) or expiry > horizon - tonumber(ARGV[3]) then
    return 0
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local created = now
if ARGV[7] ~= '' then
  created = tonumber(ARGV[7])
end
local fields = {'u', ARGV[6], 'c', created, 'a', now, 'h', ARGV[1]}
for i = 8, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], expiry)
return now
