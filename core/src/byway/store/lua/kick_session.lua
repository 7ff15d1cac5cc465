-- KEYS: 1 session registry, 2 session lock, 3 session queue
-- ARGV: 1 lock grace ms, 2 '1' for OUTBOX mode
-- A session with queued messages and no lock (its last root's worker died, or the worker
-- that handed it on died before forwarding): hand it on. Returns {'busy', ''},
-- {'empty', ''} or {message id, item to forward ('' unless OUTBOX mode)}.
--@include lib.lua
OUTBOX = ARGV[2] == '1'
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', ''} end
local m, item = hand_on(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
if not m then return {'empty', ''} end
return {m, item}
