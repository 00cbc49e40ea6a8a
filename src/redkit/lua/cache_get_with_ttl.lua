-- cache_get_with_ttl: read an entry together with its remaining time-to-live.
-- KEYS[1]  entry key
-- Returns  {entry bytes or false, remaining ttl in ms (-2 missing, -1 no expiry)}
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
