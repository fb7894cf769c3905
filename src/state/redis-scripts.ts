/**
 * The Lua scripts the Redis store runs server-side: each is one atomic step, so two
 * replicas charging the same budget at the same instant can never both take its last
 * units. Semantics match the in-memory store (memory-store.ts), line for line.
 *
 * Keys: a budget is a sorted set of charges (member "chargeId|cost", score = time in ms)
 * plus a running sum `<key>:sum` (both under one hash tag); a rate is a hash
 * {tokens, at}; an approval is a hash {json, status, expires_at, uses_left, ...} and the
 * index (agent, digest) → id, pending and all-approvals sorted sets, all under the
 * `{ap}` hash tag. Times are Redis's own clock (TIME) unless a caller passes one (tests).
 */

const CLOCK = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

const PRUNE = `
local function prune(key, sumkey, window)
  local cutoff = now - window
  local sum = tonumber(redis.call('GET', sumkey) or '0')
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', cutoff)
  if #old > 0 then
    for _, m in ipairs(old) do sum = sum - tonumber(string.match(m, '|([^|]*)$')) end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  end
  if redis.call('ZCARD', key) == 0 then
    sum = 0
    redis.call('DEL', sumkey)
  elseif #old > 0 then
    redis.call('SET', sumkey, tostring(sum), 'PX', window + 1000)
  end
  return sum
end
`;

/**
 * CONSUME. KEYS: per budget (zset, sum), then per rate (hash). ARGV: now, budgets,
 * rates, then per budget (cost, limit, windowMs, member), per rate (rate, burst).
 * Returns {1, used..., tokens...} or {0, kind, index, level, retryAfterMs}.
 */
export const CONSUME = `${CLOCK}${PRUNE}
local nb = tonumber(ARGV[2])
local nr = tonumber(ARGV[3])
local EPS = 1e-9
local sums = {}
for i = 1, nb do
  local key, sumkey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 + (i - 1) * 4
  local cost, limit, window = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local sum = prune(key, sumkey, window)
  if sum + cost > limit + EPS then
    local retry = window
    local remaining = sum
    local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for j = 1, #entries, 2 do
      remaining = remaining - tonumber(string.match(entries[j], '|([^|]*)$'))
      if remaining + cost <= limit + EPS then
        retry = math.max(1, tonumber(entries[j + 1]) + window - now + 1)
        break
      end
    end
    return {0, 'budget', i - 1, tostring(sum), tostring(retry)}
  end
  sums[i] = sum
end
local rb = 4 + nb * 4
local tokens = {}
for j = 1, nr do
  local key = KEYS[2 * nb + j]
  local rate, burst = tonumber(ARGV[rb + (j - 1) * 2]), tonumber(ARGV[rb + (j - 1) * 2 + 1])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local level = burst
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2])) / 1000
    level = math.min(burst, tonumber(state[1]) + elapsed * rate)
  end
  if level < 1 then
    return {0, 'rate', j - 1, tostring(level), tostring(math.ceil((1 - level) / rate * 1000))}
  end
  tokens[j] = level
end
local out = {1}
for i = 1, nb do
  local key, sumkey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 + (i - 1) * 4
  local cost, window, member = tonumber(ARGV[a]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window + 1000)
  local sum = sums[i] + cost
  redis.call('SET', sumkey, tostring(sum), 'PX', window + 1000)
  out[#out + 1] = tostring(sum)
end
for j = 1, nr do
  local key = KEYS[2 * nb + j]
  local rate, burst = tonumber(ARGV[rb + (j - 1) * 2]), tonumber(ARGV[rb + (j - 1) * 2 + 1])
  local level = tokens[j] - 1
  redis.call('HSET', key, 'tokens', tostring(level), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  out[#out + 1] = tostring(level)
end
return out
`;

/** USAGE. KEYS: per budget (zset, sum). ARGV: now, then windowMs per budget. Returns the sums. */
export const USAGE = `${CLOCK}${PRUNE}
local out = {}
for i = 1, #KEYS / 2 do
  out[i] = tostring(prune(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[i + 1])))
end
return out
`;

/** REFUND. KEYS: per charge (zset, sum). ARGV: members. Removes each charge that is still there. */
export const REFUND = `
for i = 1, #ARGV do
  local key, sumkey = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('ZREM', key, ARGV[i]) == 1 then
    if redis.call('ZCARD', key) == 0 then
      redis.call('DEL', sumkey)
    else
      local ttl = redis.call('PTTL', sumkey)
      local sum = tonumber(redis.call('GET', sumkey) or '0') - tonumber(string.match(ARGV[i], '|([^|]*)$'))
      if ttl > 0 then redis.call('SET', sumkey, tostring(sum), 'PX', ttl) else redis.call('SET', sumkey, tostring(sum)) end
    end
  end
end
return 1
`;

// Whether an approval hash is in force: pending not lapsed, or answered within validity
// and (approved) with uses left.
const LIVE = `
local function open(rec)
  local status = redis.call('HGET', rec, 'status')
  if not status then return false end
  if now > tonumber(redis.call('HGET', rec, 'expires_at')) then return false end
  if status == 'approved' and tonumber(redis.call('HGET', rec, 'uses_left')) <= 0 then return false end
  return status ~= 'expired'
end
`;

/** FIND. KEYS: index. ARGV: now, record key prefix. Returns the open record's hash, or nil. */
export const FIND = `${CLOCK}${LIVE}
local id = redis.call('GET', KEYS[1])
if not id then return nil end
local rec = ARGV[2] .. id
if not open(rec) then return nil end
return redis.call('HGETALL', rec)
`;

/**
 * REQUEST. KEYS: index, pending, all. ARGV: now, prefix, id, json, ttl_ms, retain_ms, max, uses.
 * Returns {created (0/1), hash...}: an open approval for the same call is returned instead.
 */
export const REQUEST = `${CLOCK}${LIVE}
local prefix, id, json, ttl, retain, max, uses = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local existing = redis.call('GET', KEYS[1])
if existing and open(prefix .. existing) then
  local out = {0}
  for _, v in ipairs(redis.call('HGETALL', prefix .. existing)) do out[#out + 1] = v end
  return out
end
local rec = prefix .. id
redis.call('HSET', rec, 'json', json, 'status', 'pending', 'created_at', now, 'expires_at', now + ttl, 'uses_left', 0, 'ttl_ms', ttl, 'uses', uses)
redis.call('PEXPIRE', rec, 2 * ttl + retain)
redis.call('SET', KEYS[1], id, 'PX', 2 * ttl + retain)
redis.call('ZADD', KEYS[2], now + ttl, id)
redis.call('ZADD', KEYS[3], now, id)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(max + 1))
local out = {1}
for _, v in ipairs(redis.call('HGETALL', rec)) do out[#out + 1] = v end
return out
`;

/** USE. KEYS: record. ARGV: now. Takes one use of an approved, unexpired approval; returns its hash or nil. */
export const USE = `${CLOCK}
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return nil end
if now > tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then return nil end
if tonumber(redis.call('HGET', KEYS[1], 'uses_left')) <= 0 then return nil end
redis.call('HINCRBY', KEYS[1], 'uses_left', -1)
return redis.call('HGETALL', KEYS[1])
`;

/**
 * DECIDE. KEYS: record, pending. ARGV: now, id, outcome, approver, comment, retain.
 * Returns {'ok'|'not_found'|'not_pending', hash...}.
 */
export const DECIDE = `${CLOCK}
local id, outcome, approver, comment, retain = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local rec = KEYS[1]
local status = redis.call('HGET', rec, 'status')
if not status then return {'not_found'} end
local function reply(tag)
  local out = {tag}
  for _, v in ipairs(redis.call('HGETALL', rec)) do out[#out + 1] = v end
  return out
end
if status == 'pending' and now > tonumber(redis.call('HGET', rec, 'expires_at')) then
  redis.call('HSET', rec, 'status', 'expired')
  redis.call('ZREM', KEYS[2], id)
  return reply('not_pending')
end
if status ~= 'pending' then return reply('not_pending') end
local ttl = tonumber(redis.call('HGET', rec, 'ttl_ms'))
local uses = 0
if outcome == 'approved' then uses = tonumber(redis.call('HGET', rec, 'uses')) end
redis.call('HSET', rec, 'status', outcome, 'decided_by', approver, 'decided_at', now, 'expires_at', now + ttl, 'uses_left', uses)
if comment ~= '' then redis.call('HSET', rec, 'comment', comment) end
redis.call('PEXPIRE', rec, ttl + retain)
redis.call('ZREM', KEYS[2], id)
return reply('ok')
`;

/** EXPIRE. KEYS: pending. ARGV: now, prefix. Marks lapsed pending approvals expired; returns their ids (each once). */
export const EXPIRE = `${CLOCK}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local out = {}
for _, id in ipairs(ids) do
  local rec = ARGV[2] .. id
  if redis.call('HGET', rec, 'status') == 'pending' then
    redis.call('HSET', rec, 'status', 'expired')
    out[#out + 1] = id
  end
  redis.call('ZREM', KEYS[1], id)
end
return out
`;
