-- Switchyard's shared limiter: the end of an admitted request. Corrects a
-- token estimate to what was used, frees the request's place in flight,
-- and moves a budget's reservation to what was really spent.
--
-- KEYS: two per counter: where admission counted, and where the spend
-- counts now (the same key, but for a calendar budget whose period turned
-- while the request ran).
-- ARGV: now_ms, ticket, lease_ms, then four per counter: kind, x, y, span.
--   kind "t": tokens per minute; x = used minus estimate, y = admission
--             time; span = bucket width.
--   kind "g": in flight; the ticket leaves the set.
--   kind "b": rolling budget; x = the reservation (negative), y = spent;
--             span = bucket width.
--   kind "c": calendar budget; x = the reservation (negative), y = spent;
--             span = the current period's end.
-- Amounts arrive as decimal strings and go to HINCRBY untouched (Lua's
-- numbers would print large ones in exponent form).

local now = tonumber(ARGV[1])
local ticket = ARGV[2]
local lease = tonumber(ARGV[3])
local BUCKETS = 60

for i = 1, #KEYS / 2 do
  local at_key, now_key, a = KEYS[2 * i - 1], KEYS[2 * i], 3 + (i - 1) * 4
  local kind, x, y, span = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  if kind == 't' then
    local atb = math.floor(tonumber(y) / span)
    -- A correction to a bucket that already left the window changes nothing.
    if x ~= '0' and math.floor(now / span) - atb < BUCKETS and redis.call('EXISTS', at_key) == 1 then
      redis.call('HINCRBY', at_key, tostring(atb), x)
    end
  elseif kind == 'g' then
    redis.call('ZREM', at_key, ticket)
  elseif kind == 'b' then
    if redis.call('EXISTS', at_key) == 1 then
      redis.call('HINCRBY', at_key, 'r', x)
    end
    if y ~= '0' then
      redis.call('HINCRBY', at_key, tostring(math.floor(now / span)), y)
      redis.call('PEXPIRE', at_key, (BUCKETS + 1) * span + lease)
    end
  else
    if redis.call('EXISTS', at_key) == 1 then
      redis.call('HINCRBY', at_key, 'r', x)
    end
    if y ~= '0' then
      redis.call('HINCRBY', now_key, 'u', y)
      redis.call('PEXPIREAT', now_key, span + lease)
    end
  end
end
return 1
