"""Lua scripts for every state change that must be atomic and one round trip.

Each script touches only the keys it is given, and the keys of one call share a slot
under schema v2 (session stream and session registry are tagged with the session id).
Scripts use only commands Redis 6.2 has.

Under schema v1 a script also writes to other entities' keys it names in its arguments
(a handed-on message's control stream, the set of queued sessions): one round trip, all
atomic. A Redis Cluster forbids that, so under schema v2 scripts run in *outbox* mode:
they write only their own slot and return the rest, which the caller writes next (see
``Flow.forward``). A message handed on stays at the head of its session's queue until it
starts, so if the caller dies before forwarding it the orphan sweep sends it again. Execution records are JSON in the session
registry hash; ``timeline`` always holds at least one entry, so cjson never sees an
empty array (which it would re-encode as ``{}``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

_QUEUED = "_byway_scripts"  # attribute of a pipeline: the scripts queued in it


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA): 40 bytes on the wire instead of the text.

    Redis forgets scripts on restart or SCRIPT FLUSH. A direct call then falls back to
    EVAL, which loads it. In a pipeline, :func:`execute` finds the script calls that
    answered NOSCRIPT (they did not run) and runs them again with EVAL.
    """

    source: str
    body: bytes = b""
    sha: str = ""

    def __post_init__(self) -> None:
        body = self.source.encode()
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "sha", hashlib.sha1(body).hexdigest())

    async def run(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.body, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        queued = getattr(pipe, _QUEUED, None)
        if queued is None:
            queued = []
            setattr(pipe, _QUEUED, queued)
        queued.append((len(pipe), self, keys, args))
        # the raw command: a cluster pipeline refuses its evalsha() method, but routes a
        # raw EVALSHA by its first key's slot
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


async def execute(redis: Any, pipe: Any, *, raise_on_error: bool = False) -> list[Any]:
    """Execute ``pipe``; script calls that met NOSCRIPT run again (loading the script).

    Commands after a NOSCRIPT script call in the same pipeline have run by then; every
    pipeline Byway builds keeps that harmless (a script is re-run, never the others).
    """
    queued = getattr(pipe, _QUEUED, None) or []
    setattr(pipe, _QUEUED, None)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    for position, script, keys, args in queued:
        if isinstance(results[position], NoScriptError):
            results[position] = await script.run(redis, keys, args)
    if raise_on_error:
        for item in results:
            if isinstance(item, Exception):
                raise item
    return results


# Shared Lua helpers, prepended to the scripts that use them. A script sets OUTBOX (schema
# v2) before calling them.
LIB = """
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
"""

# KEYS: 1 target stream, 2 session registry, 3 set of workers of the agent type,
#       4 session lock, 5 session queue, 6 the agent type's multitask strategy,
#       7 set of sessions with queued messages
# ARGV: 1 command json, 2 execution id, 3 message id, 4 record json, 5 registry ttl s,
#       6 stream maxlen (0 = none), 7 online-lease key prefix ('' = no online check),
#       8 target worker id ('' = any worker of the type), 9 '1' for a root message (one
#       writer per session applies), 10 multitask strategy ('' = the agent type's, else
#       enqueue), 11 lock grace ms, 12 session id, 13 '1' for OUTBOX mode (schema v2: KEYS
#       1, 3, 6 and 7 are not touched, the strategy must be given, nothing is XADDed),
#       or '2': OUTBOX mode for what is handed on, but this (signed) command is XADDed
#       here (schema v1 with signed commands), 14 the target stream's name
# Returns {0, code, holder} when refused (AGENT_TYPE_UNAVAILABLE, WORKER_NOT_ONLINE,
# SESSION_BUSY), else {entry id or '', execution id, disposition, holder, handed item}
# (the item is for the caller to forward in OUTBOX mode, else '') where
# disposition is 'sent', 'queued' (waits for the session's running root), 'interrupt'
# (queued first; the caller cancels the holder) or 'duplicate' (this message id already
# ended: nothing is sent again). The online check reads lease keys by name: schema v1
# only (v2 checks with a pipeline first).
SEND = Script(
    LIB
    + """
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
"""
)

# KEYS: 1 session registry, 2 the stream the answer goes to
# ARGV: 1 message id, 2 the Resume json, 3 stream maxlen (0 = none)
# Writes a user's answer only while its execution waits for one (WAITING_USER) and no
# other answer to the same question (its wait) went out before; the question is then
# marked answered (`answered:<exec>` = the wait it answers), so a second answer is
# refused even before a worker reads the first. Schema v1 only (two slots).
# Returns {1, entry id} or {0, status}: the execution's status, 'UNKNOWN' (no execution
# of that message in the session) or 'ANSWERED'.
RESUME = Script("""
local exec_id = redis.call('HGET', KEYS[1], 'msg_map:' .. ARGV[1])
local raw = exec_id and redis.call('HGET', KEYS[1], 'exec:' .. exec_id)
if not raw then return {0, 'UNKNOWN'} end
local status = cjson.decode(raw)['status'] or ''
if status ~= 'WAITING_USER' then return {0, status} end
local wait = redis.call('HGET', KEYS[1], 'wait:' .. exec_id) or ''
if wait ~= '' and redis.call('HGET', KEYS[1], 'answered:' .. exec_id) == wait then
  return {0, 'ANSWERED'}
end
redis.call('HSET', KEYS[1], 'answered:' .. exec_id, wait)
local entry
if tonumber(ARGV[3]) > 0 then
  entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'data', ARGV[2])
else
  entry = redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
end
return {1, entry}
""")


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


# KEYS: 1 session registry, 2 session lock, 3 session queue, 4 set of sessions with
#       queued messages
# ARGV: 1 message id, 2 new execution id, 3 worker id, 4 now ms, 5 record json (used when
#       the message has no record yet: a command written by another SDK), 6 lock lease ms,
#       7 stream entry id, 8 control stream name, 9 kind ('ask' | 'resume'),
#       10 resume: the callee's message id ('' = the user), 11 resume: wait id of a timeout,
#       12 resume: task group id, 13 the command json, 14 session id, 15 registry ttl s,
#       16 lock grace ms, 17 runs alone that died before a task is called poisonous,
#       18 '1' when this start runs the task alone (a retry after its worker died),
#       19 '1' for OUTBOX mode (KEYS[4] untouched: the caller adds a deferred session),
#       20 the worker's agent-config snapshot version (kept from the first start on),
#       21 history groups to return for a root ask (KEYS[5], the session's history list;
#       '0' = none)
# Returns {'run', exec_id, record, state, history} | {'done', exec_id, status, handed item} |
#         {'cancelled', exec_id, reason} | {'stale', exec_id, status} |
#         {'deferred', exec_id, holder} | {'poison', exec_id, record, runs} |
#         {'suspect', exec_id, '', 0} (a retry: start it again with ARGV[18] = '1', alone)
# A resume runs only if the execution waits for exactly that reply; anything else (a
# duplicate, a late reply after a timeout, an answer to a question no longer open) is
# 'stale', and so is a callee's reply unless the callee's own record (in this session)
# says it ended and was called by this execution. An ask whose execution already started
# from another entry and has not ended (a duplicate, a replay) is 'stale' too: only the
# entry that started it runs or is recovered. A root execution takes its session's lock
# with a lease; if another root holds
# the session, it is queued behind it ('deferred'). An entry that comes back while its
# execution still says RUNNING was interrupted (its worker died): it runs again, the first
# time beside other tasks, after that alone ('suspect'); after ARGV[17] runs alone that
# died too it is 'poison' (it keeps killing its workers).
START = Script(
    LIB
    + """
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
"""
)

# KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue, 5 session
#       history list
# ARGV: 1 execution id, 2 terminal status, 3 now ms, 4 worker id, 5 result json (kept in
#       the record under 'result'; no arrays), 6 stream maxlen, 7 ttl s, 8 message id,
#       9 lock grace ms, 10 '1' for OUTBOX mode, 11 history groups kept, 12 history ttl s,
#       13 this task's history group json ('' = none), 14 how many of its bytes precede
#       its last (assistant) turn, 15 that turn as a cancelled run writes it, 16.. event
#       jsons to XADD
# Returns {1, next, item, status} when this call ended the execution, {0, '', '', ''}
# when it had already ended (nothing written: a duplicate end never emits a second final
# event). ``next`` is the message id the session was handed on to: its command is on its
# stream already, or (OUTBOX mode) ``item`` is for the caller to forward. ``status`` is the
# state written: a root execution whose cancel was requested (cancel_task, or a message
# that interrupts it) ends CANCELLED whatever its handler returned; its answer is
# discarded (the events and the history turn of a cancelled run are written instead).
FINISH = Script(
    LIB
    + """
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
"""
)

# KEYS: 1 session registry, 2 session stream, 3 session lock
# ARGV: 1 execution id, 2 waiting status, 3 now ms, 4 worker id, 5 wait json, 6 state json,
#       7 timeline detail json, 8 message id, 9 event json ('' = none), 10 maxlen, 11 ttl s,
#       12 the suspending run's trace context json ('' = none; its resume continues it)
# Records that the execution waits (WAITING_AGENT / WAITING_USER): what for, its handler
# state, and the question event if any, atomically, so no reply can arrive before the
# record says it is expected. A waiting root keeps its session (for the record's TTL).
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
"""
)

# KEYS: 1 task group hash, 2 its results hash
# ARGV: 1 child message id, 2 result json, 3 ttl s, 4 group id, 5 '1' for OUTBOX mode
# Keeps the child's result under its own message id (once) and counts it. When the last
# child reports, the waiting caller (if any) gets one Resume on its stream (named in the
# group hash) with reply_data = the results in task order. Returns {1, stream, resume}
# then (OUTBOX mode: the caller sends ``resume`` to ``stream`` and then sets 'resumed', so
# that a caller dying in between leaves the Resume to the next report), else {0}.
GROUP_RESULT = Script("""
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'completed', 1)
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local g = redis.call('HMGET', KEYS[1], 'total', 'completed', 'caller_stream', 'order',
                     'source_agent_type', 'parent_message_id', 'session_id', 'trace_id')
local total, done = tonumber(g[1] or '0'), tonumber(g[2] or '0')
if total == 0 or done < total then return {0} end
if ARGV[5] == '1' then  -- the caller marks 'resumed' once it has sent the Resume
  if redis.call('HEXISTS', KEYS[1], 'resumed') == 1 then return {0} end
elseif redis.call('HSETNX', KEYS[1], 'resumed', '1') == 0 then return {0} end
if (g[3] or '') == '' then return {0} end
local parts = {}
for i, id in ipairs(cjson.decode(g[4])) do
  parts[i] = redis.call('HGET', KEYS[2], id) or 'null'
end
local group_id = ARGV[4]
local header = cjson.encode({message_id = g[6], session_id = g[7], trace_id = g[8],
  source_agent_type = '', target_agent_type = g[5], parent_message_id = '',
  task_group_id = group_id, user_code = '', user_name = '', metadata = {}})
local resume = '{"action_type":"RESUME","header":' .. header ..
  ',"body":{"content":"","status":"COMPLETED","reply_data":[' .. table.concat(parts, ',') ..
  '],"extra_payload":{}}}'
if ARGV[5] == '1' then return {1, g[3], resume} end
redis.call('XADD', g[3], '*', 'data', resume)
return {1, '', ''}
""")

# KEYS: 1 session registry, 2 session stream, 3 session lock, 4 session queue
# ARGV: 1 message id to cancel ('' = every root of the session), 2 reason, 3 now ms,
#       4 requested by, 5 maxlen, 6 ttl s, 7 lock grace ms, 8 '1' for OUTBOX mode
# Breadth-first over the message's descendants (by parent_message_id): each execution that
# has not ended gets cancel_requested; queued and waiting ones end CANCELLED here (a root
# also gets its final and end events), running ones are marked CANCELLING for their worker
# to stop; a session whose running root ended here goes to its next queued message.
# Returns json {"items": [...], "handed": item}, items in BFS order; ``handed`` (OUTBOX mode)
# is the message the session went to, for the caller to forward.
CANCEL_TREE = Script(
    LIB
    + """
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
if #items == 0 then return '{"items": [], "handed": ""}' end
return cjson.encode({items = items, handed = handed})
"""
)

# KEYS: 1 deadlines sorted set; ARGV: 1 now ms, 2 limit, 3 claim ms
# Claims the waits whose deadline has passed: each goes to one sweeper, which removes it
# once handled; if that sweeper dies, the wait is due again after the claim.
CLAIM_DEADLINES = Script("""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], until_ms, m) end
return due
""")

# KEYS: 1 session registry, 2 session lock, 3 session queue
# ARGV: 1 lock grace ms, 2 '1' for OUTBOX mode
# A session with queued messages and no lock (its last root's worker died, or the worker
# that handed it on died before forwarding): hand it on. Returns {'busy', ''},
# {'empty', ''} or {message id, item to forward ('' unless OUTBOX mode)}.
KICK_SESSION = Script(
    LIB
    + """
OUTBOX = ARGV[2] == '1'
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', ''} end
local m, item = hand_on(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
if not m then return {'empty', ''} end
return {m, item}
"""
)

# KEYS: 1 session registry
# ARGV: 1 execution id, 2 state, 3 now ms, 4 worker id, 5 detail json
# Appends a handler-defined state (CALLING_AGENT, "searching"...) to the record's
# timeline. States the scheduler owns (QUEUED, RUNNING, WAITING_*, terminal ones...) are
# refused: 0, as when the record is gone or already ended.
TRANSITION = Script("""
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
local status = rec['status']
if status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED' then return 0 end
local now = tonumber(ARGV[3])
local reserved = {QUEUED = 1, RUNNING = 1, RESUMED = 1, WAITING_AGENT = 1, WAITING_USER = 1,
                  CANCELLING = 1, CANCELLED = 1, COMPLETED = 1, FAILED = 1}
if reserved[string.upper(ARGV[2])] then return 0 end
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
# Renews the lease only if its token is ARGV[1] (ours; or, taking over a dead process's
# lease, its token), or it is gone (lapsed, or lost by Redis). Returns 1, 2 when it was
# gone, or 0 if another process holds the worker id now.
RENEW_LEASE = Script("""
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, cur = pcall(cjson.decode, raw)
  if not ok or type(cur) ~= 'table' or cur['token'] ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
if raw then return 1 end
return 2
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
