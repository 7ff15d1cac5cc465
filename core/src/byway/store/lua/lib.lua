local OUTBOX = false
local TERMINAL = {COMPLETED = true, FAILED = true, CANCELLED = true}
local function is_terminal(s) return TERMINAL[string.upper(s or '')] == true end
local function push_timeline(rec, status, now, worker, detail)
  local tl = rec['timeline']
  if type(tl) ~= 'table' or tl[1] == nil then tl = {} end
  local e = {status = status, timestamp = now, worker_id = worker}
  if detail and next(detail) ~= nil then e['detail'] = detail end
  tl[#tl + 1] = e
  rec['timeline'] = tl
end
local function is_root(rec)
  local src = rec['source_agent_type'] or ''
  return (rec['parent_message_id'] or '') == '' and (src == '' or src == 'client')
end
local function record_of(registry, message_id)
  local ex = redis.call('HGET', registry, 'msg_map:' .. message_id)
  local raw = ex and redis.call('HGET', registry, 'exec:' .. ex)
  if raw then return cjson.decode(raw) end
  return nil
end
-- Hand the session to its next queued message that has not ended: the lock goes to it
-- and its command goes to its stream (a key named by the queue item). In OUTBOX mode the
-- item stays at the head of the queue (START removes it) and is returned for the caller
-- to send. Returns the message id and the item, or false when nothing is queued.
local function hand_on(registry, lock, queue, grace_ms)
  while true do
    local item
    if OUTBOX then item = redis.call('LINDEX', queue, 0) else item = redis.call('LPOP', queue) end
    if not item then return false, '' end
    local it = cjson.decode(item)
    local rec = record_of(registry, it['message_id'])
    if not (rec and is_terminal(rec['status'])) then
      redis.call('SET', lock, it['message_id'], 'PX', grace_ms)
      if OUTBOX then return it['message_id'], item end
      redis.call('XADD', it['stream'], '*', 'data', it['data'])
      return it['message_id'], ''
    end
    if OUTBOX then redis.call('LPOP', queue) end
  end
end
-- The finalAnswer and appStreamResponse of a root execution that ends CANCELLED here.
local function add_cancelled_events(stream, rec, message_id, reason, now, maxlen)
  local ev = {trace_id = rec['trace_id'] or '', session_id = rec['session_id'] or '',
    source_agent_type = rec['target_agent_type'] or '', message_id = message_id,
    parent_message_id = '', timestamp = now, metadata = {}}
  ev['event_type'] = 'finalAnswer'
  ev['data'] = {kind = 'final', status = 'CANCELLED', content = '', reply_data = cjson.null,
    execution_id = rec['execution_id'], error = {type = 'Cancelled', message = reason}}
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', cjson.encode(ev))
  ev['event_type'] = 'appStreamResponse'
  ev['data'] = {kind = 'end', status = 'CANCELLED', execution_id = rec['execution_id']}
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'data', cjson.encode(ev))
end
-- In OUTBOX mode the caller adds the session to the set of queued sessions.
local function enqueue(queue, sessions, session_id, stream, data, message_id, ttl, first)
  local item = cjson.encode({stream = stream, data = data, message_id = message_id})
  if first then redis.call('LPUSH', queue, item) else redis.call('RPUSH', queue, item) end
  redis.call('EXPIRE', queue, ttl)
  if not OUTBOX then redis.call('SADD', sessions, session_id) end
end
