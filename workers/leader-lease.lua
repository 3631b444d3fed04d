--[[
  Takes or renews the fleet's leader lease. The lease is one key holding its owner; a new lease also draws the next
  fencing token, so a leader that was paused past its lease can be told apart from the one that followed it.

  KEYS[1]  the lease            KEYS[2]  the fencing token counter
  ARGV[1]  owner asking         ARGV[2]  lease length, ms

  Returns { 1, token } when the caller has just become leader; { 1, 0 } when it renewed its lease; { 0, 0 } when
  another process holds it.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return { 1, 0 }
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return { 1, redis.call('INCR', KEYS[2]) }
end
return { 0, 0 }
