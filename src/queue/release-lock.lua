--[[
  Releases a dedupe lock, only if the caller still owns it (the job could not be added, so a retry must not be refused).

  KEYS[1]  dedupe lock key
  ARGV[1]  owner given when it was taken

  Returns 1 when released, 0 when the lock had expired or belongs to someone else.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
