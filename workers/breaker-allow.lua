--[[
  May a delivery to this destination go now? Closed: yes. Open: no, until its time is up. Then half-open: exactly one
  delivery (the probe) may go; the others wait until the probe's outcome closes or re-opens the breaker.

  KEYS[1]  the destination's breaker (a hash: failures, openUntil ms, probe owner)
  ARGV[1]  owner asking (unique per attempt)
  ARGV[2]  how long a probe may take before another may try, ms

  Returns { allowed (1|0), ms to wait when not allowed }.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0')
if openUntil == 0 then
  return { 1, 0 }
end
if now < openUntil then
  return { 0, openUntil - now }
end
local probe = redis.call('HGET', KEYS[1], 'probe')
local probeUntil = tonumber(redis.call('HGET', KEYS[1], 'probeUntil') or '0')
if probe and probe ~= ARGV[1] and now < probeUntil then
  return { 0, probeUntil - now }
end
redis.call('HSET', KEYS[1], 'probe', ARGV[1], 'probeUntil', now + tonumber(ARGV[2]))
return { 1, 0 }
