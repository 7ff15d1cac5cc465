-- KEYS: 1 deadlines sorted set; ARGV: 1 now ms, 2 limit, 3 claim ms
-- Claims the waits whose deadline has passed: each goes to one sweeper, which removes it
-- once handled; if that sweeper dies, the wait is due again after the claim.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], until_ms, m) end
return due
