-- KEYS: 1 service's active set, 2 service's instances hash, 3 service's leases hash
-- ARGV: 1 instance id, 2 instance json, 3 lease ms (0: none), 4 longest lease ms honoured
--       when pruning, 5 most entries pruned per call
-- Registers or renews one service instance: its details, its lease and its heartbeat
-- (score: Redis's clock, ms) in one step, so a renewal after a lapse restores it whole.
-- Then removes this service's entries whose lease lapsed (oldest first, a bounded
-- number): an entry without a lease (by-framework's, or registered without heartbeat)
-- is left for its readers' threshold; so are entries whose heartbeat is more than 5 s
-- ahead of this clock (planted: no heartbeat is stamped by another). Returns the
-- heartbeat's time (ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
local longest = tonumber(ARGV[4])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[5]))
for i = 1, #old, 2 do
  local lease = tonumber(redis.call('HGET', KEYS[3], old[i]) or '')
  if lease and lease > 0 then
    if lease > longest then lease = longest end
    if now - (tonumber(old[i + 1]) or 0) > lease then
      redis.call('ZREM', KEYS[1], old[i])
      redis.call('HDEL', KEYS[2], old[i])
      redis.call('HDEL', KEYS[3], old[i])
    end
  end
end
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now + 5000), '+inf',
  'LIMIT', 0, tonumber(ARGV[5]))
for i = 1, #ahead do
  redis.call('ZREM', KEYS[1], ahead[i])
  redis.call('HDEL', KEYS[2], ahead[i])
  redis.call('HDEL', KEYS[3], ahead[i])
end
return now
