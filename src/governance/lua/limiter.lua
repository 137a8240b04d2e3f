-- Switchyard's shared limiter: one script, each call atomic. A call first
-- settles requests that ended (a token estimate corrected to what was
-- used, a place in flight freed, a budget's reservation moved to what was
-- really spent), then, by mode:
--
--   admit   one request against every counter that covers it: either every
--           check passes and every one is taken, or the first refusal is
--           reported and nothing is taken.
--   read    the counters' state, taking nothing (/v1/usage, admin views).
--   settle  nothing more.
--
-- Settlements ride along with the node's next admission, so a request
-- costs one script call, not two.
--
-- This is the twin of `decide` and `Meters` in src/governance/meters.rs
-- (the in-process backend); a test runs the same sequences against both.
--
-- ARGV[1..5]: now_ms, ticket (of the admission), lease_ms, mode, S (the
-- number of settled counters).
-- Settled counters: KEYS[1..2S] in pairs (where admission counted, where
-- the spend counts now: the same key, unless a calendar budget's period
-- turned meanwhile); from ARGV[6], six each: kind, x, y, span, ticket,
-- and the time it ended (settlement happens as of then).
--   kind "t": tokens per minute; x = used minus estimate, y = admission
--             time; span = bucket width.
--   kind "g": in flight; the ticket leaves the set.
--   kind "b": rolling budget; x = the reservation (negative), y = spent.
--   kind "c": calendar budget; x, y as "b"; span = the current period's end.
-- Admitted or read counters: the KEYS after those; from ARGV[6 + 6S], four
-- each: kind, limit, amount, span.
--   kind "w": per-minute window (requests, tokens); span = bucket width ms.
--   kind "b": rolling budget window; span = bucket width ms.
--   kind "g": requests in flight; a sorted set of tickets scored by their
--             lease's end (a node that dies frees its places at the end).
--   kind "c": calendar budget; the key names the period; fields "u" (spent)
--             and "r" (reserved); span = the period's end (Unix ms).
--
-- A window is a hash: one field per bucket (bucket number -> count), "t"
-- their sum, "lo" the oldest bucket that may still be stored (every stored
-- one lies in [lo, lo + BUCKETS - 1]) and, for rolling budgets, "r" what
-- admitted requests reserved. Keeping the sum makes an admission O(1):
-- only buckets that left the window since the last call are read (usually
-- none or one); all of them only when a refusal must say when room frees.
--
-- Per-minute counts are small integers and are written back from Lua;
-- budget amounts (nano-USD) arrive as decimal strings and reach HINCRBY
-- untouched (Lua's numbers lose digits past 2^53 and print large ones in
-- exponent form).
--
-- Returns, for admit and read, {1, used, reserved, reset_ms, ...} (one
-- triple per counter), or {0, index, used, reserved, reset_ms} when the
-- counter at 0-based index refuses; for settle, {1}.

local now = tonumber(ARGV[1])
local ticket = ARGV[2]
local lease = tonumber(ARGV[3])
local mode = ARGV[4]
local settled = tonumber(ARGV[5])
local BUCKETS = 60

local function int(x)
  return string.format('%d', x)
end

local function neg(s)
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- Drops the buckets of window `key` that left the window ending at `t`.
-- Returns its sum, reservation, oldest live bucket (nil: a new window),
-- current bucket and the current bucket's count.
local function advance(key, width, t)
  local nowb = math.floor(t / width)
  local first = nowb - BUCKETS + 1
  local v = redis.call('HMGET', key, 't', 'lo', 'r', int(nowb))
  local total, lo, reserved = tonumber(v[1]) or 0, tonumber(v[2]), tonumber(v[3]) or 0
  if lo == nil then return 0, reserved, nil, nowb, 0 end
  if lo < first then
    local fields = {}
    for b = lo, math.min(first - 1, lo + BUCKETS - 1) do fields[#fields + 1] = int(b) end
    local counts = redis.call('HMGET', key, unpack(fields))
    for j = 1, #fields do
      if counts[j] then total = redis.call('HINCRBY', key, 't', neg(counts[j])) end
    end
    redis.call('HDEL', key, unpack(fields))
    redis.call('HSET', key, 'lo', first)
    lo = first
  end
  return total, reserved, lo, nowb, tonumber(v[4]) or 0
end

-- The live buckets {bucket, count}, oldest first.
local function live(key, lo, nowb)
  if lo == nil then return {} end
  local from = math.max(lo, nowb - BUCKETS + 1)
  local fields = {}
  for b = from, nowb do fields[#fields + 1] = int(b) end
  if #fields == 0 then return {} end
  local counts = redis.call('HMGET', key, unpack(fields))
  local out = {}
  for j = 1, #fields do
    if counts[j] then out[#out + 1] = {from + j - 1, tonumber(counts[j])} end
  end
  return out
end

-- When bucket b leaves the window.
local function leaves(b, width)
  return (b + BUCKETS) * width - now
end

-- Until the window's total is at most target (oldest buckets leave first).
local function until_at_most(buckets, total, target, width)
  if total <= target then return 0 end
  for _, e in ipairs(buckets) do
    total = total - e[2]
    if total <= target then return leaves(e[1], width) end
  end
  return 0
end

-- Until every count has left the window.
local function until_empty(buckets, width)
  for j = #buckets, 1, -1 do
    if buckets[j][2] ~= 0 then return leaves(buckets[j][1], width) end
  end
  return 0
end

-- Adds budget amount `n` (a string) to window `key` at time `t` (`lo`
-- nil: a new window); the key must outlive a new bucket by `keep` ms (its
-- expiry moves once per bucket, not per call).
local function add(key, width, n, lo, keep, t)
  local nowb = math.floor(t / width)
  local c = redis.call('HINCRBY', key, int(nowb), n)
  redis.call('HINCRBY', key, 't', n)
  if lo == nil then redis.call('HSET', key, 'lo', nowb - BUCKETS + 1) end
  if lo == nil or tostring(c) == n then redis.call('PEXPIRE', key, keep) end
end

-- Settlements.
for i = 1, settled do
  local at_key, now_key, a = KEYS[2 * i - 1], KEYS[2 * i], 5 + (i - 1) * 6
  local kind, x, y, span = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local t = tonumber(ARGV[a + 6])
  if kind == 't' then
    -- A correction to a bucket that left the window changes nothing. A
    -- live bucket is stored: the key outlives its newest bucket.
    local atb = math.floor(tonumber(y) / span)
    if x ~= '0' and math.floor(t / span) - atb < BUCKETS then
      redis.call('HINCRBY', at_key, int(atb), x)
      redis.call('HINCRBY', at_key, 't', x)
    end
  elseif kind == 'g' then
    redis.call('ZREM', at_key, ARGV[a + 5])
  elseif kind == 'b' then
    local _, _, lo = advance(at_key, span, t)
    if lo ~= nil then redis.call('HINCRBY', at_key, 'r', x) end
    if y ~= '0' then add(at_key, span, y, lo, (BUCKETS + 1) * span + lease, t) end
  else
    -- Admission set the key's expiry (its period's end plus a lease); a
    -- key that had already expired gets it again.
    local r = redis.call('HINCRBY', at_key, 'r', x)
    if y ~= '0' then redis.call('HINCRBY', now_key, 'u', y) end
    if tostring(r) == x or now_key ~= at_key then
      redis.call('PEXPIREAT', at_key, span + lease)
      redis.call('PEXPIREAT', now_key, span + lease)
    end
  end
end
if mode == 'settle' then return {1} end

-- Admission (or reading): every check first, then, if all pass, every take.
local first_key, first_arg = 2 * settled, 5 + 6 * settled
local out, state = {1}, {}
for i = 1, #KEYS - first_key do
  local key, at = KEYS[first_key + i], first_arg + (i - 1) * 4
  local kind = ARGV[at + 1]
  local limit, amount, span = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local used, reserved, ok, reset = 0, 0, true, 0
  if kind == 'w' then
    local lo, nowb, cur, _r
    used, _r, lo, nowb, cur = advance(key, span, now)
    state[i] = {lo, nowb, cur, used}
    ok = mode == 'read' or used + amount <= limit
    if mode == 'read' then
      reset = 0
    elseif ok then
      -- What this request takes leaves with the current bucket.
      reset = leaves(nowb, span)
    elseif limit - amount < 0 then
      reset = until_empty(live(key, lo, nowb), span)
    else
      reset = until_at_most(live(key, lo, nowb), used, limit - amount, span)
    end
  elseif kind == 'b' then
    local lo, nowb
    used, reserved, lo, nowb = advance(key, span, now)
    state[i] = {lo}
    ok = mode == 'read' or used + reserved < limit
    if mode == 'read' then
      reset = 0
    elseif ok then
      reset = until_empty(live(key, lo, nowb), span)
    else
      reset = until_at_most(live(key, lo, nowb), used, math.max(limit - reserved - 1, 0), span)
    end
  elseif kind == 'g' then
    -- Lapsed leases (of nodes that died) matter only near the limit.
    used = redis.call('ZCARD', key)
    if mode == 'read' or used + amount > limit then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      used = redis.call('ZCARD', key)
    end
    ok = mode == 'read' or used + amount <= limit
    if not ok then reset = 1000 end
  else
    local v = redis.call('HMGET', key, 'u', 'r')
    used, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    ok = mode == 'read' or used + reserved < limit
    reset = span - now
  end
  if not ok then
    return {0, i - 1, used, reserved, reset}
  end
  out[#out + 1] = used
  out[#out + 1] = reserved
  out[#out + 1] = reset
end

if mode == 'admit' then
  for i = 1, #KEYS - first_key do
    local key, at = KEYS[first_key + i], first_arg + (i - 1) * 4
    local kind, amount, span = ARGV[at + 1], ARGV[at + 3], tonumber(ARGV[at + 4])
    if kind == 'w' then
      -- One write: the bucket and the sum (and, for a new window, "lo").
      local s = state[i]
      local lo, nowb, cur, total = s[1], s[2], s[3], s[4]
      local n = tonumber(amount)
      if lo == nil then
        redis.call('HSET', key, int(nowb), int(cur + n), 't', int(total + n), 'lo', nowb - BUCKETS + 1)
      else
        redis.call('HSET', key, int(nowb), int(cur + n), 't', int(total + n))
      end
      if lo == nil or cur == 0 then redis.call('PEXPIRE', key, (BUCKETS + 1) * span) end
    elseif kind == 'b' then
      -- Reserved at admission, spent at settlement: the key lives a lease
      -- longer than its window.
      redis.call('HINCRBY', key, 'r', amount)
      if state[i][1] == nil then redis.call('HSET', key, 'lo', math.floor(now / span) - BUCKETS + 1) end
      redis.call('PEXPIRE', key, (BUCKETS + 1) * span + lease)
    elseif kind == 'g' then
      redis.call('ZADD', key, now + lease, ticket)
      redis.call('PEXPIRE', key, lease)
    else
      -- The first reservation in a period sets the key's expiry.
      if tostring(redis.call('HINCRBY', key, 'r', amount)) == amount then
        redis.call('PEXPIREAT', key, span + lease)
      end
    end
  end
end
return out
