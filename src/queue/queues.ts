import { Queue, type DefaultJobOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Log } from '../log.ts'
import { JOB, QUEUE, type ChatwootCallsJobData, type DeliveryJobData, type WebhookJobData } from './names.ts'

export interface Queues {
  webhook: Queue<WebhookJobData, unknown, typeof JOB.chatwootEvent>
  delivery: Queue<DeliveryJobData, unknown, typeof JOB.delivery>
  chatwootNote: Queue<ChatwootCallsJobData, unknown, typeof JOB.chatwootNote>
  /** Jobs per queue name and state (waiting, active, delayed, failed): one Redis round trip per queue. */
  depths(): Promise<Record<string, Record<(typeof DEPTH_STATES)[number], number>>>
  close(): Promise<void>
}

const DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed'] as const

/** Tries of a Chatwoot API call before its note is failed for good. */
const CHATWOOT_NOTE_ATTEMPTS = 8

/**
 * Entries each queue's BullMQ event stream keeps (BullMQ's default is 10,000). Every job state change appends one
 * whatever this is; it bounds memory and how far behind a QueueEvents listener (the tests', a dashboard's) may fall
 * before it misses events. hookgate itself never reads these streams.
 */
export const QUEUE_EVENTS_KEPT = 1000

/** The producer side of every queue, on one fail-fast connection owned by the caller. */
export function createQueues(deps: { config: Config['queue']; producer: Redis; log: Log }): Queues {
  const { config, producer, log } = deps
  const kept = {
    // A completed job goes at once (no kept set for BullMQ to trim on every finish): the dedupe key and the event log
    // remember the event. Failed jobs are the dead letters: kept, bounded, replayable.
    removeOnComplete: true,
    removeOnFail: { age: config.retentionSeconds, count: config.retentionCount },
  }
  const queue = <Data, Name extends string>(name: string, defaultJobOptions: DefaultJobOptions) => {
    const created = new Queue<Data, unknown, Name>(name, {
      connection: producer,
      prefix: config.prefix,
      defaultJobOptions,
      streams: { events: { maxLen: QUEUE_EVENTS_KEPT } },
    })
    // While Redis is away the connection's own log says so once; its queues would say it on every retry.
    created.on('error', (error) => producer.status === 'ready' && log.error({ queue: name, err: error.message }, 'queue error'))
    return created
  }
  const webhook = queue<WebhookJobData, typeof JOB.chatwootEvent>(QUEUE.webhook, {
    attempts: config.webhookAttempts,
    backoff: { type: 'exponential', delay: config.webhookBackoffMs, jitter: 0.5 },
    ...kept,
  })
  // Their tries and backoff are set per job and by the workers' backoff strategy (it honours Retry-After).
  const delivery = queue<DeliveryJobData, typeof JOB.delivery>(QUEUE.delivery, { backoff: { type: 'hookgate' }, ...kept })
  const chatwootNote = queue<ChatwootCallsJobData, typeof JOB.chatwootNote>(QUEUE.chatwootNote, {
    attempts: CHATWOOT_NOTE_ATTEMPTS,
    backoff: { type: 'hookgate' },
    ...kept,
  })

  let closing: Promise<void> | undefined
  const all = [webhook, delivery, chatwootNote]
  return {
    webhook,
    delivery,
    chatwootNote,
    depths: async () =>
      Object.fromEntries(
        await Promise.all(all.map(async (q) => [q.name, (await q.getJobCounts(...DEPTH_STATES)) as Record<(typeof DEPTH_STATES)[number], number>] as const)),
      ),
    close: () => (closing ??= Promise.all(all.map((q) => q.close())).then(() => {})),
  }
}
