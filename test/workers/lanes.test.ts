import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Job } from 'bullmq'
import { Redis } from 'ioredis'
import { loadConfig } from '../../src/config/config.ts'
import { createLogger } from '../../src/log.ts'
import { JOB, laneEntry, laneKey, type LaneRef } from '../../src/queue/names.ts'
import { createQueues, type Queues } from '../../src/queue/queues.ts'
import { createLanes, type Lanes } from '../../workers/lanes.ts'
import { createLocalTurns } from '../../workers/local-turns.ts'
import { testEnv } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let client: Redis
let queues: Queues
let lanes: Lanes
let key: string
let conversationId = 1

beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url, { maxRetriesPerRequest: null })
  const config = loadConfig(testEnv(redis))
  queues = createQueues({ config: config.queue, producer: client, log: createLogger({ level: 'silent' }) })
  lanes = createLanes({ redis: client, shard: queues.shards[0]!, localTurns: createLocalTurns(1000), log: createLogger({ level: 'silent' }) })
})

afterAll(async () => {
  await queues.close()
  client.disconnect()
  await redis.stop()
})

/** A fresh lane holding these entries, in order. */
async function laneOf(...entries: string[]): Promise<(entry: string) => LaneRef> {
  key = laneKey(queues.shards[0]!.prefix, 'acme', 0, { accountId: 1, conversationId: conversationId++ })
  await client.rpush(key, ...entries)
  return (entry) => ({ key, entry, route: 0 })
}

describe('a lane whose events came in batch jobs', () => {
  test('is not held by a dead head while the batch job holding its head is alive; once that job is gone, its head is dropped', async () => {
    const { webhook } = queues.shards[0]!
    const head = laneEntry('acme.message_created.m1', 'batch-aaaaaaaaaaaa')
    const next = laneEntry('acme.message_created.m2', 'batch-bbbbbbbbbbbb')
    const ref = await laneOf(head, next)
    const batch = await webhook.add(JOB.chatwootEvents, { events: [] }, { jobId: 'batch-aaaaaaaaaaaa' })
    expect(await lanes.deadHead(ref(next))).toBeUndefined()

    await batch.remove()
    expect(await lanes.deadHead(ref(next))).toBe(head)
    await lanes.drop(ref(next), head)
    expect(await lanes.position(ref(next))).toBe(0)
  })

  test('leaving wakes the parked delivery of the event behind, named by its own id', async () => {
    const { delivery } = queues.shards[0]!
    const ref = await laneOf(laneEntry('acme.message_created.m3', 'batch-cccccccccccc'), laneEntry('acme.message_created.m4', 'batch-cccccccccccc'))
    await delivery.add(JOB.delivery, {} as never, { jobId: 'acme.message_created.m4.r0', delay: 60_000 })
    await lanes.leave(ref(laneEntry('acme.message_created.m3', 'batch-cccccccccccc')))
    expect(await (await Job.fromId(delivery, 'acme.message_created.m4.r0'))!.getState()).toBe('waiting')
    expect(await client.lrange(key, 0, -1)).toEqual([laneEntry('acme.message_created.m4', 'batch-cccccccccccc')])
  })
})
