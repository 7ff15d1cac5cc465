"""Lua scripts for every state change that must be atomic and one round trip.

Each script touches only the keys it is given, and the keys of one call share a slot
under schema v2 (session stream and session registry are tagged with the session id).
Scripts use only commands Redis 6.2 has. Execution records are JSON in the session
registry hash; ``timeline`` always holds at least one entry, so cjson never sees an
empty array (which it would re-encode as ``{}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script sent with EVAL: Redis caches the compiled script by its SHA, and
    unlike EVALSHA there is no NOSCRIPT case to handle after a restart or SCRIPT FLUSH
    (nor the SCRIPT EXISTS round trip redis-py adds before a pipeline of EVALSHAs)."""

    source: str

    async def run(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        return await redis.eval(self.source, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        pipe.eval(self.source, len(keys), *keys, *args)


# Shared Lua helpers, prepended to the scripts that use them.
LIB = """
local function is_terminal(s) return s == 'COMPLETED' or s == 'FAILED' or s == 'CANCELLED' end
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
-- Hand the session to the next queued message that has not ended: set the lock to it and
-- return its queue item (json with stream, data, message_id), or false.
local function next_in_session(registry, lock, queue, grace_ms)
  while true do
    local item = redis.call('LPOP', queue)
    if not item then return false end
    local it = cjson.decode(item)
    local ex = redis.call('HGET', registry, 'msg_map:' .. it['message_id'])
    local raw = ex and redis.call('HGET', registry, 'exec:' .. ex)
    local ended = raw and is_terminal(cjson.decode(raw)['status'])
    if not ended then
      redis.call('SET', lock, it['message_id'], 'PX', grace_ms)
      return item
    end
  end
end
"""

# KEYS: 1 target stream, 2 session registry, 3 set of workers of the agent type,
#       4 session lock, 5 session queue, 6 the agent type's multitask strategy
# ARGV: 1 command json, 2 execution id, 3 message id, 4 record json, 5 registry ttl s,
#       6 stream maxlen (0 = none), 7 online-lease key prefix ('' = no online check),
#       8 target worker id ('' = any worker of the type), 9 '1' for a root message (one
#       writer per session applies), 10 multitask strategy ('' = the agent type's, else
#       enqueue), 11 lock grace ms
# Returns {0, code, holder} when refused (AGENT_TYPE_UNAVAILABLE, WORKER_NOT_ONLINE,
# SESSION_BUSY), else {entry id or '', execution id, disposition, holder} where
# disposition is 'sent', 'queued' (waits for the session's running root) or 'interrupt'
# (queued first; the caller cancels the holder). The online check reads lease keys by
# name: schema v1 only (v2 checks with a pipeline first).
SEND = Script(
    LIB
    + """
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
local disposition = 'sent'
local holder = ''
if ARGV[9] == '1' then
  holder = redis.call('GET', KEYS[4]) or ''
  if holder == ARGV[3] then holder = '' end
  local waiting = redis.call('LLEN', KEYS[5])
  if holder ~= '' or waiting > 0 then
    local strategy = ARGV[10]
    if strategy == '' then strategy = redis.call('GET', KEYS[6]) or 'enqueue' end
    if holder ~= '' and strategy == 'reject' then return {0, 'SESSION_BUSY', holder} end
    disposition = 'queued'
    local item = cjson.encode({stream = KEYS[1], data = ARGV[1], message_id = ARGV[3]})
    if holder ~= '' and strategy == 'interrupt' then
      disposition = 'interrupt'
      redis.call('LPUSH', KEYS[5], item)
    else
      redis.call('RPUSH', KEYS[5], item)
    end
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[5]))
  else
    redis.call('SET', KEYS[4], ARGV[3], 'PX', tonumber(ARGV[11]))
  end
end
local mapped = redis.call('HGET', KEYS[2], 'msg_map:' .. ARGV[3])
local exec_id = ARGV[2]
if not mapped then
  redis.call('HSET', KEYS[2], 'exec:' .. exec_id, ARGV[4], 'msg_map:' .. ARGV[3], exec_id)
else
  exec_id = mapped
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
local entry = ''
if disposition == 'sent' then
  if tonumber(ARGV[6]) > 0 then
    entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[1])
  else
    entry = redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])
  end
elseif holder == '' then
  -- a free session with messages still queued (the last holder died): keep their order
  local item = next_in_session(KEYS[2], KEYS[4], KEYS[5], tonumber(ARGV[11]))
  if item then
    local it = cjson.decode(item)
    redis.call('XADD', it['stream'], '*', 'data', it['data'])
  end
end
return {entry, exec_id, disposition, holder}
"""
)

# KEYS: 1 set of workers of the agent type (or a dummy key when routing to one worker)
# ARGV: 1 online-lease key prefix, 2 target worker id ('' = any worker of the type)
# Returns the id of one live worker, or false. One round trip (schema v1; under v2 the
# lease keys live in other slots and the client checks them with a pipeline instead).
FIND_ONLINE = Script("""
if ARGV[2] ~= '' then
  if redis.call('EXISTS', ARGV[1] .. ARGV[2]) == 1 then return ARGV[2] end
  return false
end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. w) == 1 then return w end
end
return false
""")


# KEYS: 1 session registry, 2 session lock
# ARGV: 1 message id, 2 new execution id, 3 worker id, 4 now ms, 5 record json (used when
#       the message has no record yet: a command written by another SDK), 6 lock lease ms,
#       7 stream entry id, 8 control stream name, 9 kind ('ask' | 'resume'),
#       10 resume: the callee's message id ('' = the user), 11 resume: wait id of a timeout,
#       12 resume: task group id
# Returns {'run', exec_id, record, state} | {'done', exec_id, status} |
#         {'cancelled', exec_id, reason} | {'stale', exec_id, status}
# A resume runs only if the execution is waiting for exactly that reply; anything else
# (a duplicate, a late reply after a timeout, an answer to a question no longer open) is
# 'stale'. A root execution takes (or keeps) its session's lock with a lease.
START = Script(
    LIB
    + """
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
  redis.call('HSET', KEYS[1], 'msg_map:' .. ARGV[1], exec_id)
end
local status = rec['status']
if is_terminal(status) then return {'done', exec_id, status} end
if rec['cancel_requested'] == true and kind ~= 'resume' then
  return {'cancelled', exec_id, rec['cancel_reason'] or ''}
end
local now = tonumber(ARGV[4])
local step = 'RUNNING'
local detail = nil
if kind == 'resume' then
  if status ~= 'WAITING_AGENT' and status ~= 'WAITING_USER' then
    return {'stale', exec_id, status}
  end
  local w = redis.call('HGET', KEYS[1], 'wait:' .. exec_id)
  local wait = {}
  if w then wait = cjson.decode(w) end
  local ok = false
  if ARGV[11] ~= '' then
    ok = ARGV[11] == wait['wait_id']
  elseif status == 'WAITING_USER' then
    ok = ARGV[10] == ''
  elseif (wait['group_id'] or '') ~= '' then
    ok = ARGV[12] == wait['group_id']
  else
    for _, c in ipairs(wait['children'] or {}) do
      if c == ARGV[10] then ok = true end
    end
  end
  if not ok then return {'stale', exec_id, status} end
  redis.call('HDEL', KEYS[1], 'wait:' .. exec_id)
  step = 'RESUMED'
  local by = 'user'
  if ARGV[11] ~= '' then by = 'timeout' elseif ARGV[12] ~= '' then by = 'group'
  elseif ARGV[10] ~= '' then by = ARGV[10] end
  detail = {by = by}
else
  rec['stream_name'] = ARGV[8]
  rec['redis_message_id'] = ARGV[7]
  rec['attempts'] = (rec['attempts'] or 0) + 1
end
rec['status'] = 'RUNNING'
rec['worker_id'] = ARGV[3]
if not rec['started_at'] or rec['started_at'] == 0 then rec['started_at'] = now end
rec['updated_at'] = now
push_timeline(rec, step, now, ARGV[3], detail)
if is_root(rec) then
  local holder = redis.call('GET', KEYS[2])
  if (not holder) or holder == ARGV[1] then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[6]))
  end
end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], 'exec:' .. exec_id, out)
return {'run', exec_id, out, redis.call('HGET', KEYS[1], 'state:' .. exec_id) or ''}
"""
)

# KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue
# ARGV: 1 execution id, 2 terminal status, 3 now ms, 4 worker id, 5 result json (kept in
#       the record under 'result'; no arrays), 6 stream maxlen, 7 ttl s, 8 message id,
#       9 lock grace ms, 10.. event jsons to XADD
# Returns {1, next} when this call ended the execution, {0, ''} when it had already ended
# (nothing written: a duplicate end never emits a second final event). ``next`` is the
# queue item of the session's next message when a root task hands the session on.
FINISH = Script(
    LIB
    + """
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
local rec
if raw then rec = cjson.decode(raw) else rec = {execution_id = ARGV[1]} end
if is_terminal(rec['status']) then return {0, ''} end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['finished_at'] = now
rec['updated_at'] = now
rec['result'] = cjson.decode(ARGV[5])
push_timeline(rec, ARGV[2], now, ARGV[4], nil)
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec))
redis.call('HDEL', KEYS[1], 'wait:' .. ARGV[1], 'state:' .. ARGV[1])
local ttl = tonumber(ARGV[7])
redis.call('EXPIRE', KEYS[1], ttl)
for i = 10, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[i])
end
if #ARGV >= 10 then redis.call('EXPIRE', KEYS[2], ttl) end
local nxt = ''
if redis.call('GET', KEYS[3]) == ARGV[8] then
  redis.call('DEL', KEYS[3])
  nxt = next_in_session(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[9])) or ''
end
return {1, nxt}
"""
)

# KEYS: 1 session registry, 2 session stream, 3 session lock
# ARGV: 1 execution id, 2 waiting status, 3 now ms, 4 worker id, 5 wait json, 6 state json,
#       7 timeline detail json, 8 message id, 9 event json ('' = none), 10 maxlen, 11 ttl s
# Records that the execution waits (WAITING_AGENT / WAITING_USER): what for, its handler
# state, and the question event if any, atomically, so no reply can arrive before the
# record says it is expected. A waiting root keeps its session (the lock loses its TTL).
# Returns 1, 0 if the execution already ended, -1 if it was cancelled while running.
SUSPEND = Script(
    LIB
    + """
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if is_terminal(rec['status']) then return 0 end
if rec['cancel_requested'] == true then return -1 end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['updated_at'] = now
push_timeline(rec, ARGV[2], now, ARGV[4], cjson.decode(ARGV[7]))
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec),
           'wait:' .. ARGV[1], ARGV[5], 'state:' .. ARGV[1], ARGV[6])
if redis.call('GET', KEYS[3]) == ARGV[8] then redis.call('PERSIST', KEYS[3]) end
local ttl = tonumber(ARGV[11])
redis.call('EXPIRE', KEYS[1], ttl)
if ARGV[9] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'data', ARGV[9])
  redis.call('EXPIRE', KEYS[2], ttl)
end
return 1
"""
)

# KEYS: 1 task group hash, 2 its results hash
# ARGV: 1 child message id, 2 result json, 3 ttl s
# Keeps the child's result under its own message id (once) and counts it. When the last
# child reports, returns {1, results (json list in task order), caller agent type, caller
# message id}; the caller is resumed by whoever gets that answer, exactly once.
GROUP_RESULT = Script("""
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'completed', 1)
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local done = tonumber(redis.call('HGET', KEYS[1], 'completed') or '0')
if total == 0 or done < total then return {0} end
if redis.call('HSETNX', KEYS[1], 'resumed', '1') == 0 then return {0} end
local parts = {}
for i, id in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'order'))) do
  parts[i] = redis.call('HGET', KEYS[2], id) or 'null'
end
return {1, '[' .. table.concat(parts, ',') .. ']',
        redis.call('HGET', KEYS[1], 'source_agent_type') or '',
        redis.call('HGET', KEYS[1], 'parent_message_id') or ''}
""")

# KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue
# ARGV: 1 message id to cancel ('' = every root of the session), 2 reason, 3 now ms,
#       4 requested by, 5 maxlen, 6 ttl s, 7 lock grace ms
# Breadth-first over the message's descendants (by parent_message_id): each execution that
# has not ended gets cancel_requested; queued and waiting ones end CANCELLED here (a root
# also gets its final and end events), running ones are marked CANCELLING for their worker
# to stop. Returns json {"items": [...], "next": queue item or ""}; items are in BFS order.
CANCEL_TREE = Script(
    LIB
    + """
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
local items, seen, head, nxt = {}, {}, 1, ''
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
          local ev = {trace_id = rec['trace_id'] or '', session_id = rec['session_id'] or '',
            source_agent_type = rec['target_agent_type'] or '', message_id = m,
            parent_message_id = '', timestamp = now, metadata = {}}
          ev['event_type'] = 'finalAnswer'
          ev['data'] = {kind = 'final', status = 'CANCELLED', content = '', reply_data = cjson.null,
            execution_id = rec['execution_id'], error = {type = 'Cancelled', message = ARGV[2]}}
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'data', cjson.encode(ev))
          ev['event_type'] = 'appStreamResponse'
          ev['data'] = {kind = 'end', status = 'CANCELLED', execution_id = rec['execution_id']}
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'data', cjson.encode(ev))
          redis.call('EXPIRE', KEYS[2], ttl)
        end
        if redis.call('GET', KEYS[3]) == m then
          redis.call('DEL', KEYS[3])
          nxt = next_in_session(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[7])) or ''
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
if ARGV[1] == '' then redis.call('DEL', KEYS[4]) end
if #items == 0 then return '{"items": [], "next": ""}' end
return cjson.encode({items = items, next = nxt})
"""
)

# KEYS: 1 deadlines sorted set; ARGV: 1 now ms, 2 limit
# Takes the waits whose deadline has passed off the set (each goes to exactly one sweeper).
POP_DEADLINES = Script("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZREM', KEYS[1], m) end
return due
""")

# KEYS: 1 session registry
# ARGV: 1 execution id, 2 state, 3 now ms, 4 worker id, 5 detail json
# Appends a non-terminal state to the record's timeline. Returns 0 if the record is gone
# or already terminal.
TRANSITION = Script("""
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
local status = rec['status']
if status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED' then return 0 end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['updated_at'] = now
local entry = {status = ARGV[2], timestamp = now, worker_id = ARGV[4]}
local detail = cjson.decode(ARGV[5])
if next(detail) ~= nil then entry['detail'] = detail end
local tl = rec['timeline']
if type(tl) ~= 'table' or tl[1] == nil then tl = {} end
tl[#tl + 1] = entry
rec['timeline'] = tl
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec))
return 1
""")

# KEYS: 1 online lease key
# ARGV: 1 token, 2 lease json, 3 lease ms
# Renews the lease only if it is ours (or lapsed and free). Returns 1, or 0 if another
# process holds the worker id now.
RENEW_LEASE = Script("""
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, cur = pcall(cjson.decode, raw)
  if not ok or cur['token'] ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return 1
""")

# KEYS: 1 online lease key; ARGV: 1 token. Deletes the lease only if it is ours.
RELEASE_LEASE = Script("""
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, cur = pcall(cjson.decode, raw)
if ok and cur['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

# KEYS: 1 session lock; ARGV: 1 message id of the holder, 2 lease ms
# Extends the lock only while it is still held by that message.
RENEW_LOCK = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
""")
