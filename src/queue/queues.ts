import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Log } from '../log.ts'
import { JOB, QUEUE, type WebhookJobData } from './names.ts'

export interface Queues {
  webhook: Queue<WebhookJobData, unknown, typeof JOB.chatwootEvent>
  close(): Promise<void>
}

/** The producer side of every queue, on one fail-fast connection owned by the caller. */
export function createQueues(deps: { config: Config['queue']; producer: Redis; log: Log }): Queues {
  const { config, producer, log } = deps
  const webhook = new Queue<WebhookJobData, unknown, typeof JOB.chatwootEvent>(QUEUE.webhook, {
    connection: producer,
    prefix: config.prefix,
    defaultJobOptions: {
      attempts: config.webhookAttempts,
      backoff: { type: 'exponential', delay: config.webhookBackoffMs, jitter: 0.5 },
      removeOnComplete: { age: config.retentionSeconds, count: config.retentionCount },
      removeOnFail: { age: config.retentionSeconds * 7, count: config.retentionCount },
    },
  })
  webhook.on('error', (error) => log.error({ queue: QUEUE.webhook, err: error.message }, 'queue error'))

  let closing: Promise<void> | undefined
  return {
    webhook,
    close: () => (closing ??= webhook.close()),
  }
}
