-- compare_and_delete: delete a key only if it still holds the expected bytes.
-- KEYS[1]  the key
-- ARGV[1]  the expected value (a lock token, or the corrupt bytes being dropped)
-- Returns  1 when deleted, 0 when the key held something else or nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
