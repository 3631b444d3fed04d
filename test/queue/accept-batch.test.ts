import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Job } from 'bullmq'
import { Redis } from 'ioredis'
import { loadConfig, type Config } from '../../src/config/config.ts'
import { createLogger } from '../../src/log.ts'
import { createMetrics } from '../../src/metrics.ts'
import { createAcceptBatcher } from '../../src/queue/accept-batch.ts'
import { createEnqueuer, type Enqueuer } from '../../src/queue/enqueue.ts'
import { createEventLog } from '../../src/queue/event-log.ts'
import { laneEntry, type WebhookBatchData, type WebhookJobData } from '../../src/queue/names.ts'
import { createQueues, type Queues } from '../../src/queue/queues.ts'
import { testEnv } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let client: Redis
let config: Config
let queues: Queues
let enqueuer: Enqueuer
let batcher: ReturnType<typeof createAcceptBatcher>
const log = createLogger({ level: 'silent' })

beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url, { maxRetriesPerRequest: null })
  config = loadConfig(testEnv(redis))
  queues = createQueues({ config: config.queue, producer: client, log })
  const metrics = createMetrics()
  batcher = createAcceptBatcher({ redis: client, budgetMs: 1000, metrics })
  const eventLog = createEventLog({ redis: client, prefix: config.queue.prefix, maxLen: 100, bodiesKept: 0, log })
  enqueuer = createEnqueuer({ config: config.queue, commands: client, queues, batcher, eventLog, log, metrics })
})

afterAll(async () => {
  await queues.close()
  client.disconnect()
  await redis.stop()
})

const conversation = { accountId: 1, conversationId: 77 }
const data = (id: number): WebhookJobData => ({ instanceId: 'acme', event: 'message_created', body: `{"id":${id}}`, deliveryId: undefined, receivedAt: Date.now(), lanes: [0] })

describe('the accept call', () => {
  test('are queued as one job, in order in their lane; a retry of one with its owner (its spooled copy) finds it queued', async () => {
    const events = [1, 2, 3].map((id) => ({ id: `acme.message_created.m${id}`, data: data(id) }))
    const locks = events.map(({ id, data }) => enqueuer.lockFor(id, { instanceId: 'acme', conversation, lanes: [0], job: data }))
    // Asked in the same tick: the first goes alone, the two others wait for it and go together.
    const answers = await Promise.all(locks.map((lock) => batcher.accept({ lock, add: lock.add! })))
    expect(answers.map((answer) => answer.queued)).toEqual([true, true, true])

    const { webhook } = queues.shards[0]!
    expect((await Job.fromId(webhook, events[0]!.id))?.data).toMatchObject({ body: '{"id":1}' })
    const [batch] = (await webhook.getJobs(['waiting'])).filter((job) => 'events' in job.data) as Job<WebhookBatchData>[]
    expect(batch!.data.events.map((event) => [event.id, event.body])).toEqual([[events[1]!.id, '{"id":2}'], [events[2]!.id, '{"id":3}']])
    expect(await client.lrange(locks[0]!.lanes[0]!, 0, -1)).toEqual([events[0]!.id, laneEntry(events[1]!.id, batch!.id), laneEntry(events[2]!.id, batch!.id)])

    // The request of the second timed out and its event was spooled: the replay, with the same owner, adds nothing.
    const replay = enqueuer.lockFor(events[1]!.id, { instanceId: 'acme', conversation, lanes: [0], job: events[1]!.data }, locks[1]!.owner)
    expect(await enqueuer.enqueueWebhook(replay, events[1]!.data)).toEqual({ status: 'already_queued', jobId: events[1]!.id })
    expect(await webhook.getJobs(['waiting'])).toHaveLength(2)
    expect(await client.llen(locks[0]!.lanes[0]!)).toBe(3)
  })

  test('an event queued alone whose job already ran and was removed: its spooled copy (same owner) queues nothing again', async () => {
    const bucket = { key: `${config.queue.prefix}:test-bucket`, args: [1, 100, 100, 0, 0] }
    for (const [n, withBucket] of [[4, false], [5, true]] as const) {
      const id = `acme.message_created.m${n}`
      const lock = enqueuer.lockFor(id, { instanceId: 'acme', conversation: undefined, job: data(n) })
      expect(await batcher.accept({ lock, add: lock.add!, bucket: withBucket ? bucket : undefined })).toMatchObject({ locked: true, queued: true })
      const { webhook } = queues.shards[0]!
      await (await Job.fromId(webhook, id))!.remove()

      const replay = enqueuer.lockFor(id, { instanceId: 'acme', conversation: undefined, job: data(n) }, lock.owner)
      expect(await enqueuer.enqueueWebhook(replay, data(n))).toEqual({ status: 'already_queued', jobId: id })
      expect(await Job.fromId(webhook, id)).toBeUndefined()
    }
  })
})
