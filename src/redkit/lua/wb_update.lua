-- wb_update: write-behind's atomic update: add numbers to fields of an entity's cached value
-- and append the result to its shard's stream, in one step (so concurrent increments are
-- never lost), unless the shard's backlog is full (then nothing changes).
-- The cached value is JSON (a 0x00 codec header, then an object). It is patched as text: the
-- numbers of the updated top-level fields are replaced (a missing or null field counts as 0
-- and is added); every other byte stays as written (cjson would re-encode floats with 14
-- digits, large integers as floats and [] as {}). Integers stay integers; a float result is
-- written with the shortest of 15 to 17 digits that reads back exactly.
-- An entry that holds no value (none, or a dead-lettered write's bare token) starts from
-- ARGV[5], the value the repository holds, which the caller reads when told to.
-- Re-sent updates: the op id is remembered as wb_write remembers a write's token, and an
-- update whose op id is remembered is not applied twice (its reply: the current value).
-- KEYS[1]  the shard's stream
-- KEYS[2]  the entity's cache entry (same hash tag: the shard's)
-- KEYS[3]  the shard's op memory of the writer's time window (same hash tag)
-- ARGV[1]  the entity id (text)
-- ARGV[2]  the op id: 8 random bytes, also the token of the write this update makes
-- ARGV[3]  the shard's backlog limit (unflushed entries); 0 for none
-- ARGV[4]  how long the op memory lives after its last record, milliseconds (> 0)
-- ARGV[5]  the encoded entity to start from when the entry holds none; "" to ask for it
-- ARGV[6..] pairs: a top-level field name, the number to add (decimal text)
-- Returns  {stream id, the new write's bytes} when applied (a re-sent update: {its stream id,
--          the entry's bytes now}); {0, ""} when the backlog is full; {-1, ""} when the
--          entry holds no value and ARGV[5] is ""; {-2, why} when the value cannot be updated.
local token = ARGV[2]
local done = redis.call('HGET', KEYS[3], token)
if done then
  return {done, redis.call('GET', KEYS[2]) or ''}
end

local entry = redis.call('GET', KEYS[2])
if not entry or #entry <= 8 then
  if ARGV[5] == '' then
    return {-1, ''}
  end
  entry = '12345678' .. ARGV[5]
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then
  return {0, ''}
end
if string.byte(entry, 9) ~= 0 then
  return {-2, 'its cached value is not plain (compressed, or not written by WriteBehind)'}
end
local json = string.sub(entry, 10)
local valid, decoded = pcall(cjson.decode, json)
if not valid or type(decoded) ~= 'table' then
  return {-2, 'its cached value is not JSON'}
end

local function skip_ws(i)
  return string.find(json, '[^ \t\r\n]', i) or (#json + 1)
end
local function skip_string(i) -- json[i] is '"'; the index after the closing quote
  local j = i + 1
  while true do
    local k = string.find(json, '["\\]', j)
    if string.sub(json, k, k) == '"' then
      return k + 1
    end
    j = k + 2
  end
end
local function skip_value(i)
  local c = string.sub(json, i, i)
  if c == '"' then
    return skip_string(i)
  end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local k = string.find(json, '["{}%[%]]', j)
      local d = string.sub(json, k, k)
      if d == '"' then
        j = skip_string(k)
      else
        depth = depth + ((d == '{' or d == '[') and 1 or -1)
        j = k + 1
        if depth == 0 then
          return j
        end
      end
    end
  end
  return string.find(json, '[,}%] \t\r\n]', i) or (#json + 1)
end

-- The top-level fields: name -> {first, last} character of its value.
local spans, count = {}, 0
local i = skip_ws(1)
if string.sub(json, i, i) ~= '{' then
  return {-2, 'its cached value is not a JSON object'}
end
i = skip_ws(i + 1)
local close
while true do
  if string.sub(json, i, i) == '}' then
    close = i
    break
  end
  local after = skip_string(i)
  local name = cjson.decode(string.sub(json, i, after - 1))
  i = skip_ws(skip_ws(after) + 1) -- past the ':'
  local stop = skip_value(i)
  spans[name] = {i, stop - 1}
  count = count + 1
  i = skip_ws(stop)
  if string.sub(json, i, i) == ',' then
    i = skip_ws(i + 1)
  end
end

local LIMIT = 9007199254740992 -- 2**53: integers above lose digits in Lua's doubles
local function is_int(text)
  return string.find(text, '^-?%d+$') ~= nil
end
local function render(value, int)
  if int then
    return string.format('%.0f', value)
  end
  local text
  for digits = 15, 17 do
    text = string.format('%.' .. digits .. 'g', value)
    if tonumber(text) == value then
      break
    end
  end
  if not string.find(text, '[%.eEn]') then
    text = text .. '.0'
  end
  return text
end

local patches, added = {}, {}
for k = 6, #ARGV, 2 do
  local name, delta = ARGV[k], ARGV[k + 1]
  local span = spans[name]
  local text = span and string.sub(json, span[1], span[2]) or 'null'
  local current, int
  if text == 'null' then
    current, int = 0, true
  elseif is_int(text) then
    current, int = tonumber(text), true
  elseif string.find(text, '^-?[%d.eE+-]+$') and tonumber(text) then
    current, int = tonumber(text), false
  else
    return {-2, 'field ' .. name .. ' holds ' .. string.sub(text, 1, 40) .. ', not a number'}
  end
  local by = tonumber(delta)
  int = int and is_int(delta)
  local value = current + by
  if int and (math.abs(current) >= LIMIT or math.abs(value) >= LIMIT) then
    return {-2, 'field ' .. name .. ' would hold an integer beyond 2**53'}
  end
  if value ~= value or value == math.huge or value == -math.huge then
    return {-2, 'field ' .. name .. ' would not be a finite number'}
  end
  if span then
    patches[#patches + 1] = {span[1], span[2], render(value, int)}
  else
    added[#added + 1] = cjson.encode(name) .. ':' .. render(value, int)
  end
end
table.sort(patches, function(a, b) return a[1] > b[1] end)
if #added > 0 then
  local glue = count > 0 and ',' or ''
  json = string.sub(json, 1, close - 1) .. glue .. table.concat(added, ',') .. string.sub(json, close)
end
for _, patch in ipairs(patches) do
  json = string.sub(json, 1, patch[1] - 1) .. patch[3] .. string.sub(json, patch[2] + 1)
end

local write = token .. '\0' .. json
local sid = redis.call('XADD', KEYS[1], '*', 'i', ARGV[1], 'd', write)
redis.call('SET', KEYS[2], write)
redis.call('HSET', KEYS[3], token, sid)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {sid, write}
