import { Queue, type DefaultJobOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Log } from '../log.ts'
import { JOB, QUEUE, type ChatwootNoteJobData, type DeliveryJobData, type LogJobData, type WebhookJobData } from './names.ts'

export interface Queues {
  webhook: Queue<WebhookJobData, unknown, typeof JOB.chatwootEvent>
  delivery: Queue<DeliveryJobData, unknown, typeof JOB.delivery>
  chatwootNote: Queue<ChatwootNoteJobData, unknown, typeof JOB.chatwootNote>
  log: Queue<LogJobData, unknown, typeof JOB.log>
  /** Jobs per queue name and state (waiting, active, delayed, failed): one Redis round trip per queue. */
  depths(): Promise<Record<string, Record<(typeof DEPTH_STATES)[number], number>>>
  close(): Promise<void>
}

const DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed'] as const

/** Tries of a Chatwoot API call before its note is failed for good. */
const CHATWOOT_NOTE_ATTEMPTS = 8

/** The producer side of every queue, on one fail-fast connection owned by the caller. */
export function createQueues(deps: { config: Config['queue']; producer: Redis; log: Log }): Queues {
  const { config, producer, log } = deps
  const kept = {
    removeOnComplete: { age: config.retentionSeconds, count: config.retentionCount },
    // Failed jobs are the dead letters: kept longer, still bounded, replayable.
    removeOnFail: { age: config.retentionSeconds * 7, count: config.retentionCount },
  }
  const queue = <Data, Name extends string>(name: string, defaultJobOptions: DefaultJobOptions) => {
    const created = new Queue<Data, unknown, Name>(name, { connection: producer, prefix: config.prefix, defaultJobOptions })
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
  const chatwootNote = queue<ChatwootNoteJobData, typeof JOB.chatwootNote>(QUEUE.chatwootNote, {
    attempts: CHATWOOT_NOTE_ATTEMPTS,
    backoff: { type: 'hookgate' },
    ...kept,
  })
  // A log line is worth a few tries, not a dead letter: it is removed either way.
  const log_ = queue<LogJobData, typeof JOB.log>(QUEUE.log, { attempts: 3, backoff: { type: 'hookgate' }, removeOnComplete: true, removeOnFail: true })

  let closing: Promise<void> | undefined
  const all = [webhook, delivery, chatwootNote, log_]
  return {
    webhook,
    delivery,
    chatwootNote,
    log: log_,
    depths: async () =>
      Object.fromEntries(
        await Promise.all(all.map(async (q) => [q.name, (await q.getJobCounts(...DEPTH_STATES)) as Record<(typeof DEPTH_STATES)[number], number>] as const)),
      ),
    close: () => (closing ??= Promise.all(all.map((q) => q.close())).then(() => {})),
  }
}
