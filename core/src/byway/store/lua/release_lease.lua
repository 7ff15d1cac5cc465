-- KEYS: 1 online lease key; ARGV: 1 token. Deletes the lease only if it is ours.
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, cur = pcall(cjson.decode, raw)
if ok and cur['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
