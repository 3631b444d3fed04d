--[[
  Records a delivery's outcome on its destination's breaker. A success closes it. A failure counts; at the threshold,
  or when the failing delivery was the half-open probe, it opens for the open time.

  KEYS[1]  the destination's breaker (a hash: failures, openUntil ms, probe owner, probeUntil ms)
  ARGV[1]  1 success, 0 failure
  ARGV[2]  consecutive failures that open it
  ARGV[3]  how long it stays open, ms
  ARGV[4]  how long an idle breaker is kept, ms
  ARGV[5]  owner of the attempt (the probe's, when this attempt was the half-open probe)

  Returns { 1 when this call opened the breaker else 0, consecutive failures, 1 when it is open or half-open else 0,
            ms it stays open }.
]]
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  return { 0, 0, 0, 0 }
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local wasProbe = redis.call('HGET', KEYS[1], 'probe') == ARGV[5]
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if failures >= tonumber(ARGV[2]) or wasProbe then
  redis.call('HSET', KEYS[1], 'openUntil', now + tonumber(ARGV[3]))
  redis.call('HDEL', KEYS[1], 'probe', 'probeUntil')
  return { 1, failures, 1, tonumber(ARGV[3]) }
end
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0')
return { 0, failures, openUntil == 0 and 0 or 1, math.max(0, openUntil - now) }
