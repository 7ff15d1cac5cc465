-- KEYS: 1 session lock; ARGV: 1 message id of the holder, 2 lease ms
-- Extends the lock only while it is still held by that message.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
