-- session_create: write a new session whose index entry (if it has a user) is written.
-- Refuses when the session would outlive the index entry's horizon (the index was written
-- too long ago: a paused caller), so a session never lives outside its user's index.
-- KEYS[1]  session key (a hash)
-- ARGV[1]  horizon from session_index_add (server ms), or '' for a session without user
-- ARGV[2]  ttl, milliseconds
-- ARGV[3]  margin, milliseconds
-- ARGV[4]  the encoded user id ('' for none)
-- ARGV[5]  created_at to keep (server ms; rotation), or '' for now
-- ARGV[6..] field, value pairs of the session data
-- Returns  the server time (ms) when written; 0 when refused (too late); -1 when the id
--          exists already (nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
if ARGV[1] ~= '' and expiry > tonumber(ARGV[1]) - tonumber(ARGV[3]) then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local created = now
if ARGV[5] ~= '' then
  created = tonumber(ARGV[5])
end
local fields = {'u', ARGV[4], 'c', created, 'a', now, 'h', ARGV[1]}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], expiry)
return now
