--[[
  Releases a lock, only if the caller still owns it: a dedupe lock whose job could not be added (so a retry must not
  be refused), or a delivery's in-flight claim.

  KEYS[1]  lock key
  KEYS[2…] for a dedupe lock, the lanes its event joined: it leaves them (ARGV[2], its job id), or it would head them
           with no job to deliver; its replay joins them again
  ARGV[1]  owner given when it was taken

  Returns 1 when released, 0 when the lock had expired or belongs to someone else.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  for i = 2, #KEYS do
    redis.call('LREM', KEYS[i], 0, ARGV[2])
  end
  return redis.call('DEL', KEYS[1])
end
return 0
