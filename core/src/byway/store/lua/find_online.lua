-- KEYS: 1 set of workers of the agent type (or a dummy key when routing to one worker)
-- ARGV: 1 online-lease key prefix, 2 target worker id ('' = any worker of the type)
-- Returns the id of one live worker, or false. One round trip (schema v1; under v2 the
-- lease keys live in other slots and the client checks them with a pipeline instead).
if ARGV[2] ~= '' then
  if redis.call('EXISTS', ARGV[1] .. ARGV[2]) == 1 then return ARGV[2] end
  return false
end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. w) == 1 then return w end
end
return false
