-- KEYS: 1 online lease key
-- ARGV: 1 token, 2 lease json, 3 lease ms
-- Renews the lease only if its token is ARGV[1] (ours; or, taking over a dead process's
-- lease, its token), or it is gone (lapsed, or lost by Redis). Returns 1, 2 when it was
-- gone, or 0 if another process holds the worker id now.
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, cur = pcall(cjson.decode, raw)
  if not ok or type(cur) ~= 'table' or cur['token'] ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
if raw then return 1 end
return 2
