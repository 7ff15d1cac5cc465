-- KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue
-- ARGV: 1 message id to cancel ('' = every root of the session), 2 reason, 3 now ms,
--       4 requested by, 5 maxlen, 6 ttl s, 7 lock grace ms, 8 '1' for OUTBOX mode
-- Breadth-first over the message's descendants (by parent_message_id): each execution that
-- has not ended gets cancel_requested; queued and waiting ones end CANCELLED here (a root
-- also gets its final and end events), running ones are marked CANCELLING for their worker
-- to stop; a session whose running root ended here goes to its next queued message.
-- Returns json {"items": [...], "handed": item}, items in BFS order ({} when there are
-- none: cjson encodes an empty table as an object); ``handed`` (OUTBOX mode)
-- is the message the session went to, for the caller to forward.
--@include lib.lua
OUTBOX = ARGV[8] == '1'
local handed = ''
local flat = redis.call('HGETALL', KEYS[1])
local by_msg, children = {}, {}
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 5) == 'exec:' then
    local rec = cjson.decode(flat[i + 1])
    local m = rec['message_id'] or ''
    by_msg[m] = {field = flat[i], rec = rec}
    local p = rec['parent_message_id'] or ''
    if children[p] == nil then children[p] = {} end
    table.insert(children[p], m)
  end
end
local todo = {}
if ARGV[1] == '' then
  for _, m in ipairs(children[''] or {}) do table.insert(todo, m) end
else
  table.insert(todo, ARGV[1])
end
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[6])
local items, seen, head = {}, {}, 1
while head <= #todo do
  local m = todo[head]
  head = head + 1
  local entry = by_msg[m]
  if entry and not seen[m] then
    seen[m] = true
    for _, c in ipairs(children[m] or {}) do table.insert(todo, c) end
    local rec = entry.rec
    local prev = rec['status']
    if not is_terminal(prev) then
      rec['cancel_requested'] = true
      rec['cancel_reason'] = ARGV[2]
      rec['updated_at'] = now
      local ended = prev == 'QUEUED' or prev == 'WAITING_AGENT' or prev == 'WAITING_USER'
      if ended then
        rec['status'] = 'CANCELLED'
        rec['finished_at'] = now
        rec['result'] = {status = 'CANCELLED', error = {type = 'Cancelled', message = ARGV[2]}}
        push_timeline(rec, 'CANCELLED', now, '', {by = ARGV[4]})
        redis.call('HDEL', KEYS[1], 'wait:' .. rec['execution_id'], 'state:' .. rec['execution_id'])
        if is_root(rec) then
          add_cancelled_events(KEYS[2], rec, m, ARGV[2], now, ARGV[5])
          redis.call('EXPIRE', KEYS[2], ttl)
        end
        if redis.call('GET', KEYS[3]) == m then
          redis.call('DEL', KEYS[3])
          local _
          _, handed = hand_on(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[7]))
        end
      else
        rec['status'] = 'CANCELLING'
        push_timeline(rec, 'CANCELLING', now, '', {by = ARGV[4]})
      end
      redis.call('HSET', KEYS[1], entry.field, cjson.encode(rec))
      table.insert(items, {message_id = m, execution_id = rec['execution_id'], previous = prev,
        ended = ended, worker_id = rec['worker_id'] or '',
        target_agent_type = rec['target_agent_type'] or '',
        source_agent_type = rec['source_agent_type'] or '',
        parent_message_id = rec['parent_message_id'] or '',
        task_group_id = rec['task_group_id'] or '', trace_id = rec['trace_id'] or ''})
    end
  end
end
if ARGV[1] == '' then redis.call('DEL', KEYS[4]); handed = '' end
return cjson.encode({items = items, handed = handed})
