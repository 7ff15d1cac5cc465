-- KEYS: 1 task group hash, 2 its results hash
-- ARGV: 1 child message id, 2 result json, 3 ttl s, 4 group id, 5 '1' for OUTBOX mode
-- Keeps the child's result under its own message id (once) and counts it. When the last
-- child reports, the waiting caller (if any) gets one Resume on its stream (named in the
-- group hash) with reply_data = the results in task order (null for a lost one). Returns {1, stream, resume}
-- then (OUTBOX mode: the caller sends ``resume`` to ``stream`` and then sets 'resumed', so
-- that a caller dying in between leaves the Resume to the next report), else {0}.
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
-- the Resume as cjson encodes it, but for reply_data: the children's results go in as
-- their workers wrote them (decoded and encoded again here, [] would become {} and floats
-- lose digits). Inside a string cjson escapes every quote, so the placeholder pair below
-- occurs once, where reply_data goes.
local resume = cjson.encode({action_type = 'RESUME',
  header = {message_id = g[6], session_id = g[7], trace_id = g[8], source_agent_type = '',
    target_agent_type = g[5], parent_message_id = '', task_group_id = ARGV[4],
    user_code = '', user_name = '', metadata = {}},
  body = {content = '', status = 'COMPLETED', reply_data = false, extra_payload = {}}})
local at, stop = string.find(resume, '"reply_data":false', 1, true)
resume = string.sub(resume, 1, at - 1) .. '"reply_data":[' .. table.concat(parts, ',') .. ']' ..
  string.sub(resume, stop + 1)
if ARGV[5] == '1' then return {1, g[3], resume} end
redis.call('XADD', g[3], '*', 'data', resume)
return {1, '', ''}
