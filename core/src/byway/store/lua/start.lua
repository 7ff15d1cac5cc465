-- KEYS: 1 session registry, 2 session lock, 3 session queue, 4 set of sessions with
--       queued messages (OUTBOX mode: the registry again, untouched), 5 the session's
--       history list (read for ARGV[21])
-- ARGV: 1 message id, 2 new execution id, 3 worker id, 4 now ms, 5 record json (used when
--       the message has no record yet: a command written by another SDK), 6 lock lease ms,
--       7 stream entry id, 8 control stream name, 9 kind ('ask' | 'resume'),
--       10 resume: the callee's message id ('' = the user), 11 resume: wait id of a timeout,
--       12 resume: task group id, 13 the command json, 14 session id, 15 registry ttl s,
--       16 lock grace ms, 17 runs alone that died before a task is called poisonous,
--       18 '1' when this start runs the task alone (a retry after its worker died),
--       19 '1' for OUTBOX mode (KEYS[4] untouched: the caller adds a deferred session),
--       20 the worker's agent-config snapshot version (kept from the first start on),
--       21 history groups to return for a root ask (KEYS[5], the session's history list;
--       '0' = none)
-- Returns {'run', exec_id, record, state, history} | {'done', exec_id, status, handed item} |
--         {'cancelled', exec_id, reason} | {'stale', exec_id, status} |
--         {'deferred', exec_id, holder} | {'poison', exec_id, record, runs} |
--         {'suspect', exec_id, '', 0} (a retry: start it again with ARGV[18] = '1', alone)
-- A resume runs only if the execution waits for exactly that reply; anything else (a
-- duplicate, a late reply after a timeout, an answer to a question no longer open) is
-- 'stale', and so is a callee's reply unless the callee's own record (in this session)
-- says it ended and was called by this execution. An ask whose execution already started
-- from another entry and has not ended (a duplicate, a replay) is 'stale' too: only the
-- entry that started it runs or is recovered. A root execution takes its session's lock
-- with a lease; if another root holds the session, it is queued behind it ('deferred'). An entry that comes back while its
-- execution still says RUNNING was interrupted (its worker died): it runs again, the first
-- time beside other tasks, after that alone ('suspect'); after ARGV[17] runs alone that
-- died too it is 'poison' (it keeps killing its workers).
--@include lib.lua
OUTBOX = ARGV[19] == '1'
local exec_id = redis.call('HGET', KEYS[1], 'msg_map:' .. ARGV[1])
local rec
if exec_id then
  local raw = redis.call('HGET', KEYS[1], 'exec:' .. exec_id)
  if raw then rec = cjson.decode(raw) end
end
local kind = ARGV[9]
if not rec then
  if kind == 'resume' then return {'stale', exec_id or '', 'UNKNOWN'} end
  exec_id = exec_id or ARGV[2]
  rec = cjson.decode(ARGV[5])
  rec['execution_id'] = exec_id
  redis.call('HSET', KEYS[1], 'msg_map:' .. ARGV[1], exec_id, 'exec:' .. exec_id, ARGV[5])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[15]))  -- no SEND set its TTL
end
local status = rec['status']
local root = is_root(rec)
if is_terminal(status) then
  local handed = ''
  if root and redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
    local _
    _, handed = hand_on(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[16]))
  end
  return {'done', exec_id, status, handed}
end
if rec['cancel_requested'] == true and kind ~= 'resume' then
  return {'cancelled', exec_id, rec['cancel_reason'] or ''}
end
local now = tonumber(ARGV[4])
local step = 'RUNNING'
local detail = nil
local seen = rec['redis_message_id'] or ''
local taken_over = false
if kind == 'ask' and seen ~= '' and seen ~= ARGV[7] and status ~= 'QUEUED' then
  -- the same ask in another entry while its execution lives (a duplicate or a replay):
  -- the entry that started it is the one that runs (or is recovered)
  return {'stale', exec_id, status}
end
-- the same entry again while its run is still marked RUNNING: that run died with its
-- worker (or the worker let it go); run it again, unless it keeps dying
if status == 'RUNNING' and seen == ARGV[7] then
  if root then
    local holder = redis.call('GET', KEYS[2])
    if holder and holder ~= ARGV[1] then
      -- its session moved on while it was down: it runs next, after the current one
      enqueue(KEYS[3], KEYS[4], ARGV[14], ARGV[8], ARGV[13], ARGV[1], tonumber(ARGV[15]), true)
      rec['status'] = 'QUEUED'
      push_timeline(rec, 'QUEUED', now, ARGV[3], {interrupted = true})
      redis.call('HSET', KEYS[1], 'exec:' .. exec_id, cjson.encode(rec))
      return {'deferred', exec_id, holder}
    end
  end
  -- the first retry runs beside other tasks (a survivor busy with long tasks takes it over
  -- at once); if that run dies too, it is a suspect and runs alone
  if ARGV[18] ~= '1' and (rec['step_attempts'] or 1) >= 2 then
    return {'suspect', exec_id, '', 0}
  end
  rec['step_attempts'] = (rec['step_attempts'] or 1) + 1
  -- a takeover: the timeline names the worker whose run died; attempts counts it (an ask
  -- or a resumed run alike)
  detail = {retry = rec['step_attempts'], takeover_from = rec['worker_id'] or ''}
  taken_over = true
elseif kind == 'resume' then
  if status ~= 'WAITING_AGENT' and status ~= 'WAITING_USER' then
    return {'stale', exec_id, status}
  end
  local w = redis.call('HGET', KEYS[1], 'wait:' .. exec_id)
  local wait = {}
  if w then wait = cjson.decode(w) end
  local ok = false
  if ARGV[11] ~= '' then
    -- the deadline sweeper's resume: its wait and a deadline that has passed (a little
    -- clock skew between workers allowed), whoever could read the wait id
    local deadline = tonumber(wait['deadline'] or 0) or 0
    ok = ARGV[11] == wait['wait_id'] and deadline > 0 and tonumber(ARGV[4]) + 5000 >= deadline
  elseif status == 'WAITING_USER' then
    ok = ARGV[10] == '' and ARGV[12] == ''
  elseif (wait['group_id'] or '') ~= '' then
    ok = ARGV[12] == wait['group_id']
  else
    for _, c in ipairs(wait['children'] or {}) do
      if c == ARGV[10] then ok = true end
    end
    -- a callee's reply counts only once that callee, called by this execution, has ended
    local callee = ok and record_of(KEYS[1], ARGV[10])
    ok = callee and is_terminal(callee['status'])
      and (callee['parent_message_id'] or '') == ARGV[1]
  end
  if not ok then return {'stale', exec_id, status} end
  redis.call('HDEL', KEYS[1], 'wait:' .. exec_id)
  step = 'RESUMED'
  local by = 'user'
  if ARGV[11] ~= '' then by = 'timeout' elseif ARGV[12] ~= '' then by = 'group'
  elseif ARGV[10] ~= '' then by = ARGV[10] end
  detail = {by = by}
  rec['step_attempts'] = 1
else
  if root then
    local holder = redis.call('GET', KEYS[2])
    if holder and holder ~= ARGV[1] then
      enqueue(KEYS[3], KEYS[4], ARGV[14], ARGV[8], ARGV[13], ARGV[1], tonumber(ARGV[15]), false)
      return {'deferred', exec_id, holder}
    end
  end
  -- a first start, or the next start of a run interrupted and queued again
  local runs = rec['step_attempts'] or 0
  if runs >= 2 and ARGV[18] ~= '1' then return {'suspect', exec_id, '', 0} end
  rec['step_attempts'] = runs + 1
  if runs > 0 then detail = {retry = runs + 1} end
end
if ARGV[18] == '1' then
  -- a retry run alone: if the worker died every time it ran alone, it is the killer
  local solo = rec['solo_runs'] or 0
  if solo >= tonumber(ARGV[17]) then
    return {'poison', exec_id, cjson.encode(rec), solo}
  end
  rec['solo_runs'] = solo + 1
end
rec['redis_message_id'] = ARGV[7]
if ARGV[20] ~= '' and (rec['config_version'] or '') == '' then rec['config_version'] = ARGV[20] end
if kind ~= 'resume' then rec['stream_name'] = ARGV[8] end
if kind ~= 'resume' or taken_over then rec['attempts'] = (rec['attempts'] or 0) + 1 end
rec['status'] = 'RUNNING'
rec['worker_id'] = ARGV[3]
if not rec['started_at'] or rec['started_at'] == 0 then rec['started_at'] = now end
rec['updated_at'] = now
push_timeline(rec, step, now, ARGV[3], detail)
if root then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[6]))
  if OUTBOX then  -- it was handed on: it leaves the head of the queue now it runs
    local head = redis.call('LINDEX', KEYS[3], 0)
    if head and cjson.decode(head)['message_id'] == ARGV[1] then redis.call('LPOP', KEYS[3]) end
  end
end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], 'exec:' .. exec_id, out)
local state = ''
if kind == 'resume' then state = redis.call('HGET', KEYS[1], 'state:' .. exec_id) or '' end
local history = {}
local limit = tonumber(ARGV[21] or '0')
if root and kind == 'ask' and limit > 0 then history = redis.call('LRANGE', KEYS[5], -limit, -1) end
return {'run', exec_id, out, state, history}
