--[[
  Takes or renews the fleet's leader lease. The lease holds "<owner>|<fencing token>"; a new lease draws the next
  token, so a leader that was paused past its lease can be told apart from the one that followed it.

  KEYS[1]  the lease            KEYS[2]  the fencing token counter
  ARGV[1]  owner asking         ARGV[2]  lease length, ms

  Returns the caller's fencing token when it holds the lease (taken or renewed now), else 0.
]]
local held = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. '|'
if held and string.sub(held, 1, #mine) == mine then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(held, #mine + 1))
end
if held then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], mine .. token, 'PX', ARGV[2])
return token
