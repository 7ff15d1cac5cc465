-- KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue, 5 session
--       history list
-- ARGV: 1 execution id, 2 terminal status, 3 now ms, 4 worker id, 5 result json (kept in
--       the record under 'result'; no arrays), 6 stream maxlen, 7 ttl s, 8 message id,
--       9 lock grace ms, 10 '1' for OUTBOX mode, 11 history groups kept, 12 history ttl s,
--       13 this task's history group json ('' = none), 14 how many of its bytes precede
--       its last (assistant) turn, 15 that turn as a cancelled run writes it, 16.. event
--       jsons to XADD
-- Returns {1, next, item, status} when this call ended the execution, {0, '', '', ''}
-- when it had already ended (nothing written: a duplicate end never emits a second final
-- event). ``next`` is the message id the session was handed on to: its command is on its
-- stream already, or (OUTBOX mode) ``item`` is for the caller to forward. ``status`` is the
-- state written: a root execution whose cancel was requested (cancel_task, or a message
-- that interrupts it) ends CANCELLED whatever its handler returned; its answer is
-- discarded (the events and the history turn of a cancelled run are written instead).
--@include lib.lua
OUTBOX = ARGV[10] == '1'
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
local rec
if raw then rec = cjson.decode(raw) else rec = {execution_id = ARGV[1]} end
if is_terminal(rec['status']) then return {0, '', '', ''} end
local now = tonumber(ARGV[3])
local status = ARGV[2]
local group = ARGV[13]
local discarded = status ~= 'CANCELLED' and rec['cancel_requested'] == true and is_root(rec)
local reason = rec['cancel_reason'] or ''
if reason == '' then reason = 'cancelled' end
if discarded then
  status = 'CANCELLED'
  rec['result'] = {status = 'CANCELLED', error = {type = 'Cancelled', message = reason}}
  if group ~= '' then group = string.sub(group, 1, tonumber(ARGV[14])) .. ARGV[15] .. ']' end
else
  rec['result'] = cjson.decode(ARGV[5])
end
rec['status'] = status
rec['finished_at'] = now
rec['updated_at'] = now
local detail = nil
if discarded then detail = {discarded = ARGV[2]} end
push_timeline(rec, status, now, ARGV[4], detail)
local waited = rec['waited'] == true
rec['waited'] = nil
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec))
if waited then redis.call('HDEL', KEYS[1], 'wait:' .. ARGV[1], 'state:' .. ARGV[1]) end
local ttl = tonumber(ARGV[7])
if discarded then
  add_cancelled_events(KEYS[2], rec, ARGV[8], reason, now, ARGV[6])
else
  for i = 16, #ARGV do
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[i])
  end
end
if #ARGV >= 16 or discarded then redis.call('EXPIRE', KEYS[2], ttl) end
if group ~= '' then
  redis.call('RPUSH', KEYS[5], group)
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[11]), -1)
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[12]))
end
local nxt, handed = '', ''
if redis.call('GET', KEYS[3]) == ARGV[8] then
  redis.call('DEL', KEYS[3])
  nxt, handed = hand_on(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[9]))
end
return {1, nxt or '', handed, status}
