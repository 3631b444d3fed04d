--[[
  A token bucket, with an optional ceiling on the arrival rate and optional shaping, on Redis TIME so that every
  process of the fleet agrees on the clock. Run by rate-limiter-flexible's RateLimiterRedis (see ratelimit.ts for
  why our subclass passes arguments 2 to 5). src/ingest/memory-bucket.ts is the same algorithm for when Redis is away.

  KEYS[1]  the bucket: a hash of tokens, ceiling (tokens of the ceiling bucket) and at (ms of the last take)
  ARGV[1]  tokens to take
  ARGV[2]  capacity: the burst, in tokens
  ARGV[3]  refill rate, tokens per second
  ARGV[4]  ceiling rate, tokens per second, whose bucket holds one second of it; 0 for no ceiling
  ARGV[5]  longest shaping delay, ms: how far into debt a take may go; 0 refuses instead of shaping

  Returns { consumed, msBeforeNext }, as rate-limiter-flexible reads a store's answer:
    taken:          { capacity - whole tokens left, 0 }
    taken, shaped:  { capacity, ms until the borrowed token is earned: delay the work by that }
    refused:        { capacity + 1, ms until a take could succeed }
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local take = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rate = tonumber(ARGV[3]) / 1000
local ceilingRate = tonumber(ARGV[4]) / 1000
local maxDebt = tonumber(ARGV[5]) * rate
local ceilingCapacity = ceilingRate * 1000

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ceiling', 'at')
local elapsed = math.max(0, now - (tonumber(state[3]) or now))
local tokens = math.min(capacity, (tonumber(state[1]) or capacity) + elapsed * rate)
local ceiling = math.min(ceilingCapacity, (tonumber(state[2]) or ceilingCapacity) + elapsed * ceilingRate)

local function save()
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ceiling', tostring(ceiling), 'at', now)
  local refill = (capacity + maxDebt) / rate
  if ceilingRate > 0 then refill = math.max(refill, ceilingCapacity / ceilingRate) end
  redis.call('PEXPIRE', KEYS[1], math.ceil(refill) + 1000)
end

if ceilingRate > 0 and ceiling < take then
  save()
  return { capacity + 1, math.ceil((take - ceiling) / ceilingRate) }
end
if tokens - take < -maxDebt then
  save()
  return { capacity + 1, math.ceil((take - tokens - maxDebt) / rate) }
end
tokens = tokens - take
ceiling = ceiling - take
save()
if tokens >= 0 then
  return { capacity - math.floor(tokens), 0 }
end
return { capacity, math.ceil(-tokens / rate) }
