-- KEYS: 1 session registry, 2 session stream, 3 session lock
-- ARGV: 1 execution id, 2 waiting status, 3 now ms, 4 worker id, 5 wait json, 6 state json,
--       7 timeline detail json, 8 message id, 9 event json ('' = none), 10 maxlen, 11 ttl s,
--       12 the suspending run's trace context json ('' = none; its resume continues it)
-- Records that the execution waits (WAITING_AGENT / WAITING_USER): what for, its handler
-- state, and the question event if any, atomically, so no reply can arrive before the
-- record says it is expected. A waiting root keeps its session (for the record's TTL).
-- Returns 1, 0 if the execution already ended, -1 if it was cancelled while running.
--@include lib.lua
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if is_terminal(rec['status']) then return 0 end
if rec['cancel_requested'] == true then return -1 end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['updated_at'] = now
rec['waited'] = true
if (ARGV[12] or '') ~= '' then rec['trace'] = cjson.decode(ARGV[12]) end
push_timeline(rec, ARGV[2], now, ARGV[4], cjson.decode(ARGV[7]))
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec),
           'wait:' .. ARGV[1], ARGV[5], 'state:' .. ARGV[1], ARGV[6])
local ttl = tonumber(ARGV[11])
if redis.call('GET', KEYS[3]) == ARGV[8] then redis.call('PEXPIRE', KEYS[3], ttl * 1000) end
redis.call('EXPIRE', KEYS[1], ttl)
if ARGV[9] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'data', ARGV[9])
  redis.call('EXPIRE', KEYS[2], ttl)
end
return 1
