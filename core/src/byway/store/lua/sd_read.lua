-- KEYS: 1 service's active set, 2 service's instances hash, 3 service's leases hash
-- ARGV: 1 most instances read (the freshest heartbeats), 2 longest instance json read
-- Reads one service's instances in one step, timed by Redis's clock (the heartbeats'):
-- {now ms, then per instance: id, heartbeat ms, lease ms ('' none), json size, json}.
-- A json longer than ARGV[2] is not sent (its size says why it is missing); an id is
-- cut to 300 bytes (longer ones are refused by the reader).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local longest = tonumber(ARGV[2])
local out = {now}
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id = ids[i]
  local size = redis.call('HSTRLEN', KEYS[2], id)
  local json = ''
  if size > 0 and size <= longest then json = redis.call('HGET', KEYS[2], id) end
  out[#out + 1] = string.sub(id, 1, 300)
  out[#out + 1] = ids[i + 1]
  local lease = ''
  if redis.call('HSTRLEN', KEYS[3], id) <= 20 then lease = redis.call('HGET', KEYS[3], id) or '' end
  out[#out + 1] = lease
  out[#out + 1] = size
  out[#out + 1] = json
end
return out
