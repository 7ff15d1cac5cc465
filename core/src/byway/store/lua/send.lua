-- KEYS: 1 target stream, 2 session registry, 3 set of workers of the agent type,
--       4 session lock, 5 session queue, 6 the agent type's multitask strategy,
--       7 set of sessions with queued messages
-- ARGV: 1 command json, 2 execution id, 3 message id, 4 record json, 5 registry ttl s,
--       6 stream maxlen (0 = none), 7 online-lease key prefix ('' = no online check),
--       8 target worker id ('' = any worker of the type), 9 '1' for a root message (one
--       writer per session applies), 10 multitask strategy ('' = the agent type's, else
--       enqueue), 11 lock grace ms, 12 session id, 13 '1' for OUTBOX mode (schema v2: KEYS
--       1, 3, 6 and 7 are not touched, the strategy must be given, nothing is XADDed),
--       or '2': OUTBOX mode for what is handed on, but this (signed) command is XADDed
--       here (schema v1 with signed commands), 14 the target stream's name
-- Returns {0, code, holder} when refused (AGENT_TYPE_UNAVAILABLE, WORKER_NOT_ONLINE,
-- SESSION_BUSY), else {entry id or '', execution id, disposition, holder, handed item}
-- (the item is for the caller to forward in OUTBOX mode, else '') where
-- disposition is 'sent', 'queued' (waits for the session's running root), 'interrupt'
-- (queued first; the caller cancels the holder) or 'duplicate' (this message id already
-- ended: nothing is sent again). The online check reads lease keys by name: schema v1
-- only (v2 checks with a pipeline first).
--@include lib.lua
OUTBOX = ARGV[13] ~= '0'
if ARGV[7] ~= '' then
  local online = false
  if ARGV[8] ~= '' then
    online = redis.call('EXISTS', ARGV[7] .. ARGV[8]) == 1
    if not online then return {0, 'WORKER_NOT_ONLINE', ''} end
  else
    for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if redis.call('EXISTS', ARGV[7] .. w) == 1 then online = true; break end
    end
    if not online then return {0, 'AGENT_TYPE_UNAVAILABLE', ''} end
  end
end
local mapped = redis.call('HGET', KEYS[2], 'msg_map:' .. ARGV[3])
if mapped then
  local raw = redis.call('HGET', KEYS[2], 'exec:' .. mapped)
  if raw and is_terminal(cjson.decode(raw)['status']) then
    return {'', mapped, 'duplicate', '', ''}
  end
end
local ttl = tonumber(ARGV[5])
local disposition = 'sent'
local holder = ''
if ARGV[9] == '1' then
  holder = redis.call('GET', KEYS[4]) or ''
  if holder == ARGV[3] then holder = '' end
  if holder ~= '' or redis.call('LLEN', KEYS[5]) > 0 then
    local strategy = ARGV[10]
    if strategy == '' then strategy = redis.call('GET', KEYS[6]) or 'enqueue' end
    if holder ~= '' and strategy == 'reject' then return {0, 'SESSION_BUSY', holder} end
    disposition = 'queued'
    if holder ~= '' and strategy == 'interrupt' then
      disposition = 'interrupt'
      -- the holder is cancelled from now on (the caller then cancels its tree): however
      -- it ends, it ends CANCELLED, so its answer never stands as the session's last turn
      local held_id = redis.call('HGET', KEYS[2], 'msg_map:' .. holder)
      local held = held_id and redis.call('HGET', KEYS[2], 'exec:' .. held_id)
      if held then
        held = cjson.decode(held)
        if not is_terminal(held['status']) then
          held['cancel_requested'] = true
          held['cancel_reason'] = 'interrupted by ' .. ARGV[3]
          redis.call('HSET', KEYS[2], 'exec:' .. held_id, cjson.encode(held))
        end
      end
    end
    enqueue(KEYS[5], KEYS[7], ARGV[12], ARGV[14], ARGV[1], ARGV[3], ttl,
            disposition == 'interrupt')
  else
    redis.call('SET', KEYS[4], ARGV[3], 'PX', tonumber(ARGV[11]))
  end
end
local exec_id = ARGV[2]
if not mapped then
  redis.call('HSET', KEYS[2], 'exec:' .. exec_id, ARGV[4], 'msg_map:' .. ARGV[3], exec_id)
else
  exec_id = mapped
end
redis.call('EXPIRE', KEYS[2], ttl)
local entry = ''
local handed = ''
if disposition == 'sent' and ARGV[13] == '1' then
  entry = ''  -- the caller sends it
elseif disposition == 'sent' then
  if tonumber(ARGV[6]) > 0 then
    entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[1])
  else
    entry = redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])
  end
elseif holder == '' then
  -- a free session with messages still queued (the last holder died): keep their order
  local _
  _, handed = hand_on(KEYS[2], KEYS[4], KEYS[5], tonumber(ARGV[11]))
end
return {entry, exec_id, disposition, holder, handed}
