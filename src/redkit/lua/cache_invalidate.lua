-- cache_invalidate: remove an entry and its companions, revoking any fill in progress.
-- KEYS[1]     entry key
-- KEYS[2..n]  its companion keys (fill lock, ...; same hash tag as the entry)
-- Returns     1 when the entry existed, 0 otherwise.
for i = 2, #KEYS do
  redis.call('UNLINK', KEYS[i])
end
return redis.call('UNLINK', KEYS[1])
