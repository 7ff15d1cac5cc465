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


# KEYS: 1 target stream, 2 session registry, 3 set of workers of the agent type
# ARGV: 1 command json, 2 execution id, 3 message id, 4 record json, 5 registry ttl s,
#       6 stream maxlen (0 = none), 7 online-lease key prefix ('' = no online check),
#       8 target worker id ('' = any worker of the type)
# Refuses ({0, 'AGENT_TYPE_UNAVAILABLE' | 'WORKER_NOT_ONLINE'}) when the online check finds
# no live worker; otherwise writes the QUEUED execution record (unless the message id is
# known) and XADDs the command: {entry id, execution id}. The online check reads lease keys
# by name, so it is used under schema v1 only (v2 checks with a pipeline first).
SEND = Script("""
if ARGV[7] ~= '' then
  local online = false
  if ARGV[8] ~= '' then
    online = redis.call('EXISTS', ARGV[7] .. ARGV[8]) == 1
    if not online then return {0, 'WORKER_NOT_ONLINE'} end
  else
    for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if redis.call('EXISTS', ARGV[7] .. w) == 1 then online = true; break end
    end
    if not online then return {0, 'AGENT_TYPE_UNAVAILABLE'} end
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
local entry
if tonumber(ARGV[6]) > 0 then
  entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'data', ARGV[1])
else
  entry = redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])
end
return {entry, exec_id}
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

# KEYS: 1 session registry, 2 session stream
# ARGV: 1 message id, 2 new execution id, 3 worker id, 4 now ms, 5 record json (used when
#       the message has no record yet: a command written by another SDK), 6 unused,
#       7 stream entry id, 8 control stream name
# Returns {'run', exec_id, record} | {'done', exec_id, status} | {'cancelled', exec_id, reason}
START = Script("""
local exec_id = redis.call('HGET', KEYS[1], 'msg_map:' .. ARGV[1])
local rec
if exec_id then
  local raw = redis.call('HGET', KEYS[1], 'exec:' .. exec_id)
  if raw then rec = cjson.decode(raw) end
end
if not rec then
  exec_id = exec_id or ARGV[2]
  rec = cjson.decode(ARGV[5])
  rec['execution_id'] = exec_id
  redis.call('HSET', KEYS[1], 'msg_map:' .. ARGV[1], exec_id)
end
local status = rec['status']
if status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED' then
  return {'done', exec_id, status}
end
if rec['cancel_requested'] == true then
  return {'cancelled', exec_id, rec['cancel_reason'] or ''}
end
local now = tonumber(ARGV[4])
rec['status'] = 'RUNNING'
rec['worker_id'] = ARGV[3]
rec['stream_name'] = ARGV[8]
rec['redis_message_id'] = ARGV[7]
if not rec['started_at'] or rec['started_at'] == 0 then rec['started_at'] = now end
rec['updated_at'] = now
rec['attempts'] = (rec['attempts'] or 0) + 1
local tl = rec['timeline']
if type(tl) ~= 'table' or tl[1] == nil then tl = {} end
tl[#tl + 1] = {status = 'RUNNING', timestamp = now, worker_id = ARGV[3]}
rec['timeline'] = tl
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], 'exec:' .. exec_id, out)
return {'run', exec_id, out}
""")

# KEYS: 1 session registry, 2 session stream
# ARGV: 1 execution id, 2 terminal status, 3 now ms, 4 worker id, 5 result json (merged
#       into the record under 'result'), 6 stream maxlen, 7 ttl s, 8.. event jsons to XADD
# Returns 1 when this call ended the execution, 0 when it had already ended (nothing
# written: a duplicate end never emits a second final event).
FINISH = Script("""
local raw = redis.call('HGET', KEYS[1], 'exec:' .. ARGV[1])
local rec
if raw then rec = cjson.decode(raw) else rec = {execution_id = ARGV[1]} end
local status = rec['status']
if status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED' then return 0 end
local now = tonumber(ARGV[3])
rec['status'] = ARGV[2]
rec['finished_at'] = now
rec['updated_at'] = now
rec['result'] = cjson.decode(ARGV[5])
local tl = rec['timeline']
if type(tl) ~= 'table' or tl[1] == nil then tl = {} end
tl[#tl + 1] = {status = ARGV[2], timestamp = now, worker_id = ARGV[4]}
rec['timeline'] = tl
redis.call('HSET', KEYS[1], 'exec:' .. ARGV[1], cjson.encode(rec))
local ttl = tonumber(ARGV[7])
redis.call('EXPIRE', KEYS[1], ttl)
local maxlen = ARGV[6]
for i = 8, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[i])
end
if #ARGV >= 8 then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
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
