-- Switchyard's shared limiter: admission of one request against every
-- counter that covers it, atomically. Either every check passes and every
-- one is taken, or the first refusal is reported and nothing is taken.
-- This is the twin of `decide` in src/governance/meters.rs (the
-- in-process backend); tests run the same sequences against both.
--
-- KEYS[i]: counter i.
-- ARGV: now_ms, ticket, lease_ms, mode ("admit" or "read"), then four per
-- counter: kind, limit, amount, span.
--   kind "w": per-minute window (requests, tokens); span = bucket width ms.
--             A hash of bucket number -> count.
--   kind "b": rolling budget window; span = bucket width ms. The same hash,
--             with field "r" holding what admitted requests reserved.
--   kind "g": requests in flight; a sorted set of tickets scored by their
--             lease's end (a node that dies frees its places at the end).
--   kind "c": calendar budget; the key names the period; fields "u" (spent)
--             and "r" (reserved); span = the period's end (Unix ms).
-- Returns {1, used, reserved, reset_ms, ...} (one triple per counter) when
-- admitted or read, {0, index, used, reserved, reset_ms} when the counter
-- at 0-based index refuses.

local now = tonumber(ARGV[1])
local ticket = ARGV[2]
local lease = tonumber(ARGV[3])
local mode = ARGV[4]
local BUCKETS = 60

-- The live buckets of a window ending now (dead ones are deleted).
local function window(key, width)
  local nowb = math.floor(now / width)
  local flat = redis.call('HGETALL', key)
  local total, live, reserved = 0, {}, 0
  for j = 1, #flat, 2 do
    local f, c = flat[j], tonumber(flat[j + 1])
    if f == 'r' then
      reserved = c
    else
      local b = tonumber(f)
      if b > nowb - BUCKETS and b <= nowb then
        total = total + c
        live[#live + 1] = {b, c}
      elseif b <= nowb - BUCKETS then
        redis.call('HDEL', key, f)
      end
    end
  end
  return total, live, reserved
end

-- When bucket b leaves the window.
local function leaves(b, width)
  return (b + BUCKETS) * width - now
end

-- Until the window's total is at most target (oldest buckets leave first).
local function until_at_most(live, total, target, width)
  if total <= target then return 0 end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  for _, e in ipairs(live) do
    total = total - e[2]
    if total <= target then return leaves(e[1], width) end
  end
  return 0
end

-- Until every count has left the window.
local function until_empty(live, width)
  local newest = nil
  for _, e in ipairs(live) do
    if e[2] ~= 0 and (newest == nil or e[1] > newest) then newest = e[1] end
  end
  if newest == nil then return 0 end
  return leaves(newest, width)
end

local out = {1}
for i = 1, #KEYS do
  local key, at = KEYS[i], 4 + (i - 1) * 4
  local kind = ARGV[at + 1]
  local limit, amount, span = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local used, reserved, ok, reset = 0, 0, true, 0
  if kind == 'w' then
    local live
    used, live = window(key, span)
    ok = used + amount <= limit
    if ok and mode == 'admit' then
      reset = leaves(math.floor(now / span), span)
    elseif ok or limit - amount < 0 then
      reset = until_empty(live, span)
    else
      reset = until_at_most(live, used, limit - amount, span)
    end
  elseif kind == 'b' then
    local live
    used, live, reserved = window(key, span)
    ok = used + reserved < limit
    if ok then
      reset = until_empty(live, span)
    else
      reset = until_at_most(live, used, math.max(limit - reserved - 1, 0), span)
    end
  elseif kind == 'g' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    used = redis.call('ZCARD', key)
    ok = used + amount <= limit
    if not ok then reset = 1000 end
  else
    local v = redis.call('HMGET', key, 'u', 'r')
    used, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    ok = used + reserved < limit
    reset = span - now
  end
  if mode == 'admit' and not ok then
    return {0, i - 1, used, reserved, reset}
  end
  out[#out + 1] = used
  out[#out + 1] = reserved
  out[#out + 1] = reset
end

if mode == 'admit' then
  for i = 1, #KEYS do
    local key, at = KEYS[i], 4 + (i - 1) * 4
    local kind, amount, span = ARGV[at + 1], ARGV[at + 3], tonumber(ARGV[at + 4])
    if kind == 'w' then
      redis.call('HINCRBY', key, tostring(math.floor(now / span)), amount)
      redis.call('PEXPIRE', key, (BUCKETS + 1) * span)
    elseif kind == 'b' then
      redis.call('HINCRBY', key, 'r', amount)
      redis.call('PEXPIRE', key, (BUCKETS + 1) * span + lease)
    elseif kind == 'g' then
      redis.call('ZADD', key, now + lease, ticket)
      redis.call('PEXPIRE', key, lease)
    else
      redis.call('HINCRBY', key, 'r', amount)
      redis.call('PEXPIREAT', key, span + lease)
    end
  end
end
return out
