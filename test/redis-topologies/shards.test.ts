import { afterEach, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { QUEUE } from '../../src/queue/names.ts'
import { shardPrefixes } from '../../src/queue/shards.ts'
import { startFleet, startLoad, summary } from '../faults/fleet.ts'
import { testEnv } from '../helpers/deps.ts'
import { spawnHookgate } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined

afterEach(async () => {
  await fleet?.stop()
  await redis?.stop()
  fleet = redis = undefined
})

/** Jobs still to run (waiting, delayed, active) in the delivery and webhook queues of the given shards. */
async function jobsLeft(prefixes: string[]): Promise<number> {
  const queues = prefixes.flatMap((prefix) => [QUEUE.webhook, QUEUE.delivery].map((name) => new Queue(name, { connection: { url: redis!.url }, prefix })))
  try {
    const counts = await Promise.all(queues.map((queue) => queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized')))
    return counts.flatMap((count) => Object.values(count)).reduce((sum, n) => sum + n, 0)
  } finally {
    await Promise.all(queues.map((queue) => queue.close()))
  }
}

describe('queue shards', () => {
  test('changing their number on a running fleet (drain and switch): nothing lost, nothing delivered twice', async () => {
    redis = await startRedis({ aof: 'always' })
    // Retries far apart, so that the old shards still hold work when the fleet switches.
    const env = { REDIS_QUEUE_SHARDS: '2', DELIVERY_BACKOFF_MS: '1500', BREAKER_FAILURE_THRESHOLD: '1000', DUTY_INTERVAL_MS: '300' }
    fleet = await startFleet(redis, env)
    fleet.destination.answer(...Array.from({ length: 40 }, () => ({ status: 500 })))
    const load = startLoad(fleet.base)
    await load.answered(200)

    // The switch, as the README says: every process restarted with the new count and the old one draining.
    await fleet.gateway.stop('SIGTERM')
    const oldShards = shardPrefixes(fleet.env.REDIS_KEY_PREFIX!, 2)
    const leftInOld = await jobsLeft(oldShards)
    expect(leftInOld).toBeGreaterThan(0)
    Object.assign(fleet.env, { REDIS_QUEUE_SHARDS: '3', REDIS_QUEUE_SHARDS_DRAINING: '2' })
    await fleet.relaunch()
    await load.answered(200)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary(`shards 2 → 3 (${leftInOld} jobs left in the old shards at the switch)`, report, outcome, 0)
    expect(outcome.missing).toEqual([])
    expect(outcome.duplicated).toEqual([])
    await fleet.gateway.waitFor(/draining queue shards are empty/, 30_000)
    expect(await jobsLeft(oldShards)).toBe(0)
  }, 120_000)

  test('old shards whose hash tags are all among the new ones have nothing to drain: the leader says so at once', async () => {
    redis = await startRedis()
    // Under {drain11}, shards s0 and s1 of two are also s0 and s1 of three (their slots fall in both ranges).
    expect(shardPrefixes('{drain11}', 3)).toEqual(expect.arrayContaining(shardPrefixes('{drain11}', 2)))
    const worker = spawnHookgate(['worker'], testEnv(redis, { REDIS_KEY_PREFIX: '{drain11}', REDIS_QUEUE_SHARDS: '3', REDIS_QUEUE_SHARDS_DRAINING: '2', DUTY_INTERVAL_MS: '300', LOG_LEVEL: 'info' }))
    try {
      await worker.waitFor(/draining queue shards are empty/, 20_000)
    } finally {
      await worker.stop('SIGTERM')
    }
  }, 60_000)
})
