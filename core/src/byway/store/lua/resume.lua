-- KEYS: 1 session registry, 2 the stream the answer goes to
-- ARGV: 1 message id, 2 the Resume json, 3 stream maxlen (0 = none)
-- Writes a user's answer only while its execution waits for one (WAITING_USER) and no
-- other answer to the same question (its wait) went out before; the question is then
-- marked answered (`answered:<exec>` = the wait it answers), so a second answer is
-- refused even before a worker reads the first. Schema v1 only (two slots).
-- Returns {1, entry id} or {0, status}: the execution's status, 'UNKNOWN' (no execution
-- of that message in the session) or 'ANSWERED'.
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
