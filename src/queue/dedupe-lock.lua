--[[
  Takes the dedupe lock of one webhook, unless it is held or the job it guards still exists.

  KEYS[1]  dedupe lock key   ({hookgate}:dedupe:<dedupeKey>)
  KEYS[2]  BullMQ job key    ({hookgate}:webhook:<dedupeKey>)
  ARGV[1]  lock lifetime, ms
  ARGV[2]  owner (a value unique to this request, so only its owner releases the lock; once the event's job is added in
           the same call, src/queue/accept-batch.ts sets the lock to that job's id: the event is queued, whoever asks)
  KEYS[3…] the conversation lanes of the event's ordered routes: the event's job id (ARGV[3]) joins their tail when
           the lock is new, so a lane holds its events in the order they were accepted; ARGV[4] the lanes' lifetime, ms

  Returns 1 when the caller now holds the lock and must enqueue the job (also when it held it already: a call that
            timed out on the client may have run, and its retry must not find the event "queued");
          0 when the event is already queued (lock held by another request, or the job exists).
  src/ingest/token-bucket.lua takes the same lock, the same way, beside a rate-limit token.
]]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1]) then
  for i = 3, #KEYS do
    redis.call('RPUSH', KEYS[i], ARGV[3])
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  end
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return 1
end
return 0
