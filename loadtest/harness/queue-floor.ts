import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { QUEUE_EVENTS_KEPT } from '../../src/queue/queues.ts'
import { chatwoot, toChatwootJson } from '../../test/fixtures/chatwoot.ts'
import { redisCost, redisSnapshot, type RedisCost } from './redis-cost.ts'

export interface QueueFloorRow {
  rate: number
  jobs: number
  redis: RedisCost
}

/** After the sender stops, how long the worker may take to finish what is left. */
const DRAIN_LIMIT_MS = 60_000

/**
 * What the queue hookgate is built on costs Redis by itself: one BullMQ job per event, its data the event's body, gone
 * once completed, with hookgate's event-stream length, added at a fixed rate and taken by a worker (`concurrency`)
 * that does nothing. hookgate's Redis CPU per event over this is what the gateway adds to one job per event.
 */
export async function measureQueueFloor(options: { redisUrl: string; rates: number[]; seconds: number; concurrency: number }): Promise<QueueFloorRow[]> {
  const probe = new Redis(options.redisUrl)
  const producer = new Redis(options.redisUrl)
  const consumer = new Redis(options.redisUrl, { maxRetriesPerRequest: null })
  const body = toChatwootJson(chatwoot.messageCreatedIncoming())
  const rows: QueueFloorRow[] = []
  try {
    for (const rate of options.rates) {
      const name = `floor-${rate}`
      const queue = new Queue(name, { connection: producer, prefix: '{floor}', defaultJobOptions: { removeOnComplete: true }, streams: { events: { maxLen: QUEUE_EVENTS_KEPT } } })
      let done = 0
      const worker = new Worker(name, async () => void done++, { connection: consumer, prefix: '{floor}', concurrency: options.concurrency })
      await worker.waitUntilReady()
      const jobs = rate * options.seconds
      const before = await redisSnapshot(probe)
      const started = performance.now()
      const adds: Promise<unknown>[] = []
      for (let i = 0; i < jobs; i++) {
        const wait = started + (i * 1000) / rate - performance.now()
        if (wait > 1) await Bun.sleep(wait)
        adds.push(queue.add('event', { body }, { jobId: `e${i}` }))
      }
      await Promise.all(adds)
      const deadline = Date.now() + DRAIN_LIMIT_MS
      while (done < jobs && Date.now() < deadline) await Bun.sleep(20)
      // Let the last completions reach Redis: the worker finishes a job after its processor returns.
      while ((await queue.getActiveCount()) > 0 && Date.now() < deadline) await Bun.sleep(20)
      rows.push({ rate, jobs, redis: redisCost(before, await redisSnapshot(probe), jobs) })
      await worker.close()
      await queue.obliterate({ force: true })
      await queue.close()
    }
  } finally {
    probe.disconnect()
    producer.disconnect()
    consumer.disconnect()
  }
  return rows
}
