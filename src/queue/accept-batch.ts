import type { Redis } from 'ioredis'
import tokenBucketScript from '../ingest/token-bucket.lua' with { type: 'text' }
import type { Metrics } from '../metrics.ts'
import { defineScript } from '../redis/connections.ts'
import { groupCommit } from '../redis/group-commit.ts'
import { BULLMQ_ADD_FUNCTION, BULLMQ_ARGS, BULLMQ_KEYS, BULLMQ_KEYS_LUA, callWithJobAdd, jobAddOf, withJobAdd, type JobAdd } from './bullmq-add.ts'
import dedupeLockScript from './dedupe-lock.lua' with { type: 'text' }
import { LANE_TTL_MS, type DedupeLock } from './enqueue.ts'
import { JOB, laneEntry, newBatchJobId } from './names.ts'
import type { ShardQueues } from './queues.ts'

/** One event to accept: its lock (and lanes), its own job, and its instance's token when the bucket shares the slot. */
export interface AcceptCall {
  lock: DedupeLock
  /** The event's own job (its id: the dedupe key), added as it is when the call goes alone. */
  add: JobAdd
  /** token-bucket.lua's key and its five arguments (take, capacity, rate, ceiling, longest shaping delay). */
  bucket?: { key: string; args: number[] }
}

export interface AcceptAnswer {
  /** The bucket's answer as rate-limiter-flexible reads it (0, 0 without a bucket). */
  consumed: number
  msBeforeNext: number
  /** The lock is this request's (false: refused by the bucket, or a repeat of an event already queued). */
  locked: boolean
  /** Its job was queued by the call (not when shaped: the caller queues it delayed). */
  queued: boolean
}

export interface AcceptBatcher {
  /**
   * Takes the event's token and lock and queues its job, in one call to Redis with the other events this process
   * accepts meanwhile. Rejects when Redis fails; a request that gave up (past REDIS_ENQUEUE_BUDGET_MS) before its call
   * went is not sent.
   */
  accept(call: AcceptCall): Promise<AcceptAnswer>
}

/** The most events one call carries (one job's data): a few hundred KB of bodies at most. */
const MAX_BATCH_EVENTS = 64

/**
 * Lua: the lock, once its event's job is added in the same call, belongs to that job: the request's spooled copy,
 * replayed with the same owner, then finds the event queued even after the job ran and was removed (else it would
 * queue it again), and releasing the lock after a late answer leaves it be.
 */
const ownedByJob = (lockKey: string, jobId: string) => `redis.call('SET', ${lockKey}, ${jobId}, 'XX', 'KEEPTTL')`
/** dedupe-lock.lua, then the event's job in the same call when the lock is taken: the job's id, or 0. */
const lockAndAddScript = withJobAdd(dedupeLockScript, `if result == 1 then ${ownedByJob('ownKeys[1]', 'ownArgs[3]')} return addJob() end\nreturn result`)
/** token-bucket.lua with the lock, then the job in the same call when the lock is taken and nothing delays it. */
const takeTokenAndAddScript = withJobAdd(
  tokenBucketScript,
  `if result[3] == 1 and result[2] == 0 then ${ownedByJob('ownKeys[2]', 'ownArgs[8]')} result[4] = addJob() end\nreturn result`,
)

/**
 * Several events in one call: for each, the token (token-bucket.lua on its bucket alone), then the lock with its lanes
 * (dedupe-lock.lua); the events whose lock is new and whose token is not shaped go into one job, and their locks then
 * hold the batch job's id instead of their request's owner. A shaped event is locked with its own id in its lanes:
 * its caller queues it as a delayed job of its own.
 *
 * KEYS: the batch job's BullMQ keys, then per event: its bucket (when it has one), lock, job key, lanes.
 * ARGV: the batch job's add (its data, the second, is built here from the events'), batch job id, lanes' lifetime,
 *       then per event: bucket argument count (0 or 5), those, lock lifetime, owner, id, its lane entry in the batch
 *       (laneEntry), lane count, job data (JSON with its id). Returns per event { consumed, msBeforeNext, locked,
 *       queued }.
 */
const batchScript = `
${BULLMQ_ADD_FUNCTION}
local function takeToken(KEYS, ARGV)
${tokenBucketScript}
end
local function takeLock(KEYS, ARGV)
${dedupeLockScript}
end
local batchJobId, laneTtl = ARGV[${BULLMQ_ARGS + 1}], ARGV[${BULLMQ_ARGS + 2}]
local k, a = ${BULLMQ_KEYS + 1}, ${BULLMQ_ARGS + 3}
local answers, events = {}, {}
while a <= #ARGV do
  local bucketArgs = {}
  for i = 1, tonumber(ARGV[a]) do bucketArgs[i] = ARGV[a + i] end
  a = a + 1 + #bucketArgs
  local ttl, owner, id, entry, laneCount, data = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4]), ARGV[a + 5]
  a = a + 6
  local answer = { 0, 0, 0, 0 }
  local refused = false
  if #bucketArgs > 0 then
    local taken = takeToken({ KEYS[k] }, bucketArgs)
    k = k + 1
    answer[1], answer[2] = taken[1], taken[2]
    refused = taken[1] > tonumber(bucketArgs[2])
  end
  local lockKeys = {}
  for i = 0, laneCount + 1 do lockKeys[i + 1] = KEYS[k + i] end
  k = k + laneCount + 2
  if not refused then
    local shaped = answer[2] > 0
    answer[3] = takeLock(lockKeys, { ttl, owner, shaped and id or entry, laneTtl })
    if answer[3] == 1 and not shaped then
      events[#events + 1] = data
      answer[4] = 1
      ${ownedByJob('lockKeys[1]', 'batchJobId')}
    end
  end
  answers[#answers + 1] = answer
end
if #events > 0 then
  bullmqAdd(${BULLMQ_KEYS_LUA}, { ARGV[1], '{"events":[' .. table.concat(events, ',') .. ']}', ARGV[3] })
end
return answers
`

/**
 * Group commit of accepted events, per queue shard (src/redis/group-commit.ts): an event that goes alone (the normal
 * case below a few hundred events/s) is queued as its own job with its own id; events that waited for a call go
 * together, in one call and one job.
 */
export function createAcceptBatcher(deps: { redis: Redis; budgetMs: number; metrics: Metrics }): AcceptBatcher {
  const { redis, budgetMs, metrics } = deps
  const lockAndAdd = defineScript(redis, lockAndAddScript)
  const takeTokenAndAdd = defineScript(redis, takeTokenAndAddScript)
  const batch = defineScript(redis, batchScript)

  async function alone({ lock, add, bucket }: AcceptCall): Promise<AcceptAnswer> {
    const { key, jobKey, lanes } = lock
    const lockArgs = [lock.ttlMs, lock.owner, lock.jobId, LANE_TTL_MS]
    if (!bucket) {
      const answer = await callWithJobAdd(lockAndAdd, add, [key, jobKey, ...lanes], lockArgs)
      const queued = typeof answer === 'string'
      return { consumed: 0, msBeforeNext: 0, locked: queued, queued }
    }
    const answer = (await callWithJobAdd(takeTokenAndAdd, add, [bucket.key, key, jobKey, ...lanes], [...bucket.args, ...lockArgs])) as [number, number, number?, string?]
    const [consumed, msBeforeNext, locked, queued] = answer
    return { consumed, msBeforeNext, locked: locked === 1, queued: queued !== undefined }
  }

  async function together(shard: ShardQueues, calls: AcceptCall[]): Promise<AcceptAnswer[]> {
    const batchJobId = newBatchJobId()
    const add = jobAddOf(shard.webhook, JOB.chatwootEvents, { events: [] }, { jobId: batchJobId })
    const keys = [...add.keys]
    const args: (string | number | Buffer)[] = [add.args[0]!, '', add.args[2]!, batchJobId, LANE_TTL_MS]
    for (const { lock, add, bucket } of calls) {
      if (bucket) keys.push(bucket.key)
      keys.push(lock.key, lock.jobKey, ...lock.lanes)
      // The event's job data as its own job would carry it (BullMQ's JSON), with its id first.
      const data = `{"id":${JSON.stringify(lock.jobId)},${(add.args[1] as string).slice(1)}`
      args.push(bucket?.args.length ?? 0, ...(bucket?.args ?? []), lock.ttlMs, lock.owner, lock.jobId, laneEntry(lock.jobId, batchJobId), lock.lanes.length, data)
    }
    const answers = (await batch(keys.length)(...keys, ...args)) as [number, number, number, number][]
    return answers.map(([consumed, msBeforeNext, locked, queued]) => ({ consumed, msBeforeNext, locked: locked === 1, queued: queued === 1 }))
  }

  const acceptTogether = groupCommit<ShardQueues, AcceptCall, AcceptAnswer>({
    budgetMs,
    max: MAX_BATCH_EVENTS,
    async send(shard, calls) {
      metrics.acceptCalls.observe(calls.length)
      return calls.length === 1 ? [await alone(calls[0]!)] : together(shard, calls)
    },
  })
  return { accept: (call) => acceptTogether(call.lock.shard, call) }
}
