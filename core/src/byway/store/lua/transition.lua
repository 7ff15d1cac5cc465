-- KEYS: 1 session registry
-- ARGV: 1 execution id, 2 state, 3 now ms, 4 worker id, 5 detail json (an object)
-- Appends a handler-defined state (CALLING_AGENT, "searching"...) to the record's
-- timeline. States the scheduler owns (QUEUED, RUNNING, WAITING_*, terminal ones...) are
-- refused: 0, as when the record is gone or already ended. Returns 1 when written.
--@include lib.lua
local RESERVED = {QUEUED = true, RUNNING = true, RESUMED = true, WAITING_AGENT = true,
                  WAITING_USER = true, CANCELLING = true, CANCELLED = true, COMPLETED = true,
                  FAILED = true}
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if is_terminal(rec['status']) then return 0 end
if RESERVED[string.upper(ARGV[2])] then return 0 end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['updated_at'] = now
push_timeline(rec, ARGV[2], now, ARGV[4], cjson.decode(ARGV[5]))
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec))
return 1
