-- Switchyard's shared limiter: one script, each call atomic. A call first
-- settles requests that ended (a token estimate corrected to what was
-- used, a place in flight freed, a budget's reservation moved to what was
-- really spent), then, by mode:
--
--   admit   a batch of requests, in order, each against every counter that
--           covers it: either every check passes and every one is taken,
--           or the first refusal is reported and nothing is taken.
--   read    the counters' state, taking nothing (/v1/usage, admin views).
--   settle  nothing more.
--
-- A node sends every admission that queued while its previous call was
-- out as one batch, and its settlements ride along, so under load a call
-- serves many requests. Within a call, a per-minute window and a calendar
-- budget are read once and written once however many requests touch them
-- (the batch is held in `cache` meanwhile); rolling budgets and places in
-- flight are read and written per request.
--
-- This is the twin of `decide` and `Meters` in src/governance/meters.rs
-- (the in-process backend); a test runs the same sequences against both.
--
-- ARGV[1..4]: now_ms, lease_ms, mode, S (the number of settled counters).
-- Settled counters: KEYS[1..2S] in pairs (where admission counted, where
-- the spend counts now: the same key, unless a calendar budget's period
-- turned meanwhile); from ARGV[5], six each: kind, x, y, span, ticket,
-- and the time it ended (settlement happens as of then).
--   kind "t": tokens per minute; x = used minus estimate, y = admission
--             time; span = bucket width.
--   kind "g": in flight; the ticket leaves the set.
--   kind "b": rolling budget; x = the reservation (negative), y = spent.
--   kind "c": calendar budget; x, y as "b"; span = the current period's end.
-- Then A (the number of requests) and, per request: its ticket, n (its
-- number of counters) and four per counter: kind, limit, amount, span;
-- the counters' keys follow the settled ones in KEYS, request by request
-- (a calendar budget's two: see "C").
--   kind "w": per-minute window (requests, tokens); span = bucket width ms.
--   kind "b": rolling budget window; span = bucket width ms.
--   kind "g": requests in flight; a sorted set of tickets scored by their
--             lease's end (a node that dies frees its places at the end).
--   kind "c": calendar budget; the key names the period; fields "u" (spent)
--             and "r" (reserved); span = the period's end (Unix ms).
--   kind "C": as "c", in the first lease of a period: the previous
--             period's key follows, and what requests admitted then still
--             reserve counts now (they spend in this period) until they
--             settle, or until that key expires a lease after its period.
--
-- A window is a hash: one field per bucket (bucket number -> count), "t"
-- their sum, "lo" the oldest bucket that may still be stored (every stored
-- one lies in [lo, lo + BUCKETS - 1]) and, for rolling budgets, "r" what
-- admitted requests reserved. Keeping the sum makes an admission O(1):
-- only buckets that left the window since the last call are read (usually
-- none or one); all of them only when a refusal must say when room frees.
--
-- Per-minute counts are small integers and are written back from Lua.
-- Budget amounts (nano-USD) arrive as decimal strings; a batch's amounts
-- are added up in Lua only while that is exact (below 2^53, nine million
-- dollars), larger ones reach HINCRBY untouched (Lua's numbers lose digits
-- past 2^53 and print large ones in exponent form).
--
-- Returns, for admit and read, one array per request: {1, used, reserved,
-- reset_ms, ...} (one triple per counter), or {0, index, used, reserved,
-- reset_ms} when the counter at 0-based index refuses; for settle, {}.

local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local mode = ARGV[3]
local settled = tonumber(ARGV[4])
local BUCKETS = 60
local EXACT = 9007199254740992

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
      -- A bucket corrected down to 0 has nothing to take ("-0" is not an
      -- integer to Redis).
      if counts[j] and counts[j] ~= '0' then total = redis.call('HINCRBY', key, 't', neg(counts[j])) end
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

-- Settlements. Calendar budgets' deltas are added up per key and written
-- once; `known` keeps what those writes returned, so an admission in the
-- same call need not read the key again.
local rsum, usum, cspan, expire, known = {}, {}, {}, {}, {}
for i = 1, settled do
  local at_key, now_key, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 6
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
    local xn, yn = tonumber(x), tonumber(y)
    cspan[at_key], cspan[now_key] = span, span
    if now_key ~= at_key then expire[at_key], expire[now_key] = true, true end
    if math.abs(xn) < EXACT and math.abs(yn) < EXACT then
      rsum[at_key] = (rsum[at_key] or 0) + xn
      usum[now_key] = (usum[now_key] or 0) + yn
    else
      if tostring(redis.call('HINCRBY', at_key, 'r', x)) == x then expire[at_key] = true end
      if y ~= '0' then redis.call('HINCRBY', now_key, 'u', y) end
    end
  end
end
for key, x in pairs(rsum) do
  local r = redis.call('HINCRBY', key, 'r', int(x))
  if r == x then expire[key] = true end
  known[key] = {r = r}
end
for key, y in pairs(usum) do
  -- Adding 0 to a key this call made sure exists reads it for free.
  if y ~= 0 or rsum[key] then
    local u = redis.call('HINCRBY', key, 'u', int(y))
    if known[key] then known[key].u = u end
  end
end
for key in pairs(expire) do redis.call('PEXPIREAT', key, cspan[key] + lease) end
if mode == 'settle' then return {} end

-- Per-minute windows and calendar budgets as this call leaves them.
local cache = {}

local function window(key, span)
  local st = cache[key]
  if st == nil then
    local total, _, lo, nowb, cur = advance(key, span, now)
    st = {total = total, lo = lo, nowb = nowb, cur = cur, cur0 = cur, span = span, dirty = false}
    cache[key] = st
  end
  return st
end

-- A window's live buckets, with what this call took so far.
local function live_in(key, st)
  local b = live(key, st.lo, st.nowb)
  if st.dirty then
    if #b > 0 and b[#b][1] == st.nowb then b[#b][2] = st.cur else b[#b + 1] = {st.nowb, st.cur} end
  end
  return b
end

local function calendar(key, prev, span)
  local st = cache[key]
  if st == nil then
    local k = known[key]
    if k == nil or k.u == nil then
      local v = redis.call('HMGET', key, 'u', 'r')
      k = {u = tonumber(v[1]) or 0, r = tonumber(v[2]) or 0}
    end
    local before = 0
    if prev then
      before = known[prev] and known[prev].r
      if before == nil then before = tonumber(redis.call('HGET', prev, 'r')) or 0 end
    end
    st = {cal = true, u = k.u, r = k.r, before = before, add = 0, span = span}
    cache[key] = st
  end
  return st
end

-- Admission (or reading), request by request: every check first, then,
-- if all pass, every take.
local ki, at = 2 * settled, 5 + 6 * settled
local results = {}
for q = 1, tonumber(ARGV[at]) do
  local ticket, n = ARGV[at + 1], tonumber(ARGV[at + 2])
  at = at + 2
  -- Each counter's key (and a calendar budget's previous one).
  local keys, prevs = {}, {}
  for i = 1, n do
    ki = ki + 1
    keys[i] = KEYS[ki]
    if ARGV[at + (i - 1) * 4 + 1] == 'C' then
      ki = ki + 1
      prevs[i] = KEYS[ki]
    end
  end
  local out, refusal, state = {1}, nil, {}
  for i = 1, n do
    local key, p = keys[i], at + (i - 1) * 4
    local kind = ARGV[p + 1]
    local limit, amount, span = tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])
    local used, reserved, ok, reset = 0, 0, true, 0
    if kind == 'w' then
      local st = window(key, span)
      used = st.total
      ok = mode == 'read' or used + amount <= limit
      if mode == 'read' then
        reset = 0
      elseif ok then
        -- What this request takes leaves with the current bucket.
        reset = leaves(st.nowb, span)
      elseif limit - amount < 0 then
        reset = until_empty(live_in(key, st), span)
      else
        reset = until_at_most(live_in(key, st), used, limit - amount, span)
      end
    elseif kind == 'b' then
      local lo, nowb
      used, reserved, lo, nowb = advance(key, span, now)
      state[i] = lo
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
      local st = calendar(key, prevs[i], span)
      used, reserved = st.u, st.r + st.before
      ok = mode == 'read' or used + reserved < limit
      reset = span - now
    end
    if not ok then
      refusal = {0, i - 1, used, reserved, reset}
      break
    end
    out[#out + 1] = used
    out[#out + 1] = reserved
    out[#out + 1] = reset
  end
  if refusal == nil and mode == 'admit' then
    for i = 1, n do
      local key, p = keys[i], at + (i - 1) * 4
      local kind, amount, span = ARGV[p + 1], ARGV[p + 3], tonumber(ARGV[p + 4])
      if kind == 'w' then
        local st = cache[key]
        st.cur, st.total, st.dirty = st.cur + tonumber(amount), st.total + tonumber(amount), true
      elseif kind == 'b' then
        -- Reserved at admission, spent at settlement: the key lives a lease
        -- longer than its window.
        redis.call('HINCRBY', key, 'r', amount)
        if state[i] == nil then redis.call('HSET', key, 'lo', math.floor(now / span) - BUCKETS + 1) end
        redis.call('PEXPIRE', key, (BUCKETS + 1) * span + lease)
      elseif kind == 'g' then
        redis.call('ZADD', key, now + lease, ticket)
        redis.call('PEXPIRE', key, lease)
      else
        local st, m = cache[key], tonumber(amount)
        st.r = st.r + m
        if math.abs(m) < EXACT and math.abs(st.add + m) < EXACT then
          st.add = st.add + m
        elseif tostring(redis.call('HINCRBY', key, 'r', amount)) == amount then
          redis.call('PEXPIREAT', key, span + lease)
        end
      end
    end
  end
  results[q] = refusal or out
  at = at + 4 * n
end

-- What the batch took, written once per counter.
for key, st in pairs(cache) do
  if st.cal then
    -- The first reservation in a period sets the key's expiry.
    if st.add ~= 0 and redis.call('HINCRBY', key, 'r', int(st.add)) == st.add then
      redis.call('PEXPIREAT', key, st.span + lease)
    end
  elseif st.dirty then
    if st.lo == nil then
      redis.call('HSET', key, int(st.nowb), int(st.cur), 't', int(st.total), 'lo', st.nowb - BUCKETS + 1)
    else
      redis.call('HSET', key, int(st.nowb), int(st.cur), 't', int(st.total))
    end
    if st.lo == nil or st.cur0 == 0 then redis.call('PEXPIRE', key, (BUCKETS + 1) * st.span) end
  end
end
return results
