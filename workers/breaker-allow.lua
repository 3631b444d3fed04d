--[[
  May a delivery to this destination go now? Closed: yes. Open: no, until its time is up. Then half-open: exactly one
  delivery (the probe) may go; the others wait until the probe's outcome closes or re-opens the breaker.

  KEYS[1]  the destination's breaker (a hash: failures, openUntil ms, probe owner, probeUntil ms)
  ARGV[1]  owner asking (unique per attempt)
  ARGV[2]  how long a probe may take before another may try, ms

  Returns { allowed (1|0), ms to wait when not allowed, consecutive failures, 1 when allowed as the half-open probe }.
  The caller keeps the answer for a moment (breaker.ts), so a closed breaker costs no call per delivery.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'failures', 'openUntil', 'probe', 'probeUntil')
local failures = tonumber(state[1] or '0')
local openUntil = tonumber(state[2] or '0')
if openUntil == 0 then
  return { 1, 0, failures, 0 }
end
if now < openUntil then
  return { 0, openUntil - now, failures, 0 }
end
local probeUntil = tonumber(state[4] or '0')
if state[3] and state[3] ~= ARGV[1] and now < probeUntil then
  return { 0, probeUntil - now, failures, 0 }
end
redis.call('HSET', KEYS[1], 'probe', ARGV[1], 'probeUntil', now + tonumber(ARGV[2]))
return { 1, 0, failures, 1 }
