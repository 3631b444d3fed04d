--[[
  A token bucket, with an optional ceiling on the arrival rate and optional shaping, on Redis TIME so that every
  process of the fleet agrees on the clock. The store call of our rate-limiter-flexible RateLimiterRedis (ratelimit.ts);
  src/ingest/memory-bucket.ts is the same algorithm, for when Redis is away.

  KEYS[1]  the bucket: tokens, ceiling tokens and ms of the last take, packed as three doubles (struct.pack 'ddd')
  ARGV[1]  tokens to take
  ARGV[2]  capacity: the burst, in tokens
  ARGV[3]  refill rate, tokens per second
  ARGV[4]  ceiling rate, tokens per second, whose bucket holds one second of it; 0 for no ceiling
  ARGV[5]  longest shaping delay, ms: how far into debt a take may go; 0 refuses instead of shaping

  Optionally, a webhook's dedupe lock, taken in the same call when the take succeeds, exactly as
  src/queue/dedupe-lock.lua takes it: one Redis command per webhook instead of two (~8 µs of API CPU per webhook).
  A duplicate costs a token like any request; one refused by the bucket takes no lock.
  KEYS[2]  dedupe lock key, KEYS[3]  BullMQ job key, ARGV[6]  lock lifetime, ms, ARGV[7]  lock owner
  KEYS[4…] the event's conversation lanes, ARGV[8] its job id, ARGV[9] the lanes' lifetime, ms (as dedupe-lock.lua)

  Returns { consumed, msBeforeNext[, locked] }, the first two as rate-limiter-flexible reads a store's answer:
    taken:          { capacity - whole tokens left, 0 }
    taken, shaped:  { capacity, ms until the borrowed token is earned: delay the work by that }
    refused:        { capacity + 1, ms until a take could succeed }   (no lock is taken)
  locked: 1 when the caller now holds the dedupe lock, 0 when the event is queued already.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local take = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rate = tonumber(ARGV[3]) / 1000
local ceilingRate = tonumber(ARGV[4]) / 1000
local maxDebt = tonumber(ARGV[5]) * rate
local ceilingCapacity = tonumber(ARGV[4])

local tokens, ceiling, at = capacity, ceilingCapacity, now
local state = redis.call('GET', KEYS[1])
if state and #state == 24 then
  tokens, ceiling, at = struct.unpack('ddd', state)
end
local elapsed = math.max(0, now - at)
tokens = math.min(capacity, tokens + elapsed * rate)
ceiling = math.min(ceilingCapacity, ceiling + elapsed * ceilingRate)

local result
if ceilingRate > 0 and ceiling < take then
  result = { capacity + 1, math.ceil((take - ceiling) / ceilingRate) }
elseif tokens - take < -maxDebt then
  result = { capacity + 1, math.ceil((take - tokens - maxDebt) / rate) }
else
  tokens = tokens - take
  ceiling = ceiling - take
  if tokens >= 0 then
    result = { capacity - math.floor(tokens), 0 }
  else
    result = { capacity, math.ceil(-tokens / rate) }
  end
  if KEYS[2] then
    local locked = false
    if redis.call('EXISTS', KEYS[3]) == 0 then
      if redis.call('SET', KEYS[2], ARGV[7], 'NX', 'PX', ARGV[6]) then
        locked = true
        for i = 4, #KEYS do
          redis.call('RPUSH', KEYS[i], ARGV[8])
          redis.call('PEXPIRE', KEYS[i], ARGV[9])
        end
      else
        locked = redis.call('GET', KEYS[2]) == ARGV[7]
      end
    end
    result[3] = locked and 1 or 0
  end
end

-- The key lives until the bucket would be full again; a missing key is a full bucket.
local refillMs = (capacity + maxDebt) / rate
if ceilingRate > 0 then refillMs = math.max(refillMs, ceilingCapacity / ceilingRate) end
redis.call('SET', KEYS[1], struct.pack('ddd', tokens, ceiling, now), 'PX', math.ceil(refillMs) + 1000)
return result
