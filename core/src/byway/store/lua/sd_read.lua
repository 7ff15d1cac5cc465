-- KEYS: 1 service's active set, 2 service's instances hash, 3 service's leases hash
-- ARGV: 1 most instances read (the freshest heartbeats), 2 longest instance json read
-- Reads one service's instances in one step, timed by Redis's clock (the heartbeats'):
-- {now ms, then per instance: id, heartbeat ms, lease ms ('' none), json size, json}.
-- A json longer than ARGV[2] is not sent (its size says why it is missing); an id is
-- cut to 300 bytes (longer ones are refused by the reader). Heartbeats are stamped by
-- this clock, so one more than 5 s ahead was planted: it is not read (nor can a flood of
-- them crowd the real instances out of the freshest ARGV[1]).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local longest = tonumber(ARGV[2])
local out = {now}
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], now + 5000, '-inf', 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #ids, 2 do
  local id = ids[i]
  local json = redis.call('HGET', KEYS[2], id) or ''
  local size = #json
  if size > longest then json = '' end
  out[#out + 1] = string.sub(id, 1, 300)
  out[#out + 1] = ids[i + 1]
  local lease = redis.call('HGET', KEYS[3], id) or ''
  if #lease > 20 then lease = '' end
  out[#out + 1] = lease
  out[#out + 1] = size
  out[#out + 1] = json
end
return out
