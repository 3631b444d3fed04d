import type { Job, JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config.ts'
import type { Instances } from '../src/instances.ts'
import type { Log } from '../src/log.ts'
import { JOB, batchKey, destinationId, type ConversationRef, type DeliveryJobData, type WebhookJobData } from '../src/queue/names.ts'
import type { Queues } from '../src/queue/queues.ts'
import { matchRoutes, routableEvent } from './routes.ts'

export interface WebhookDeps {
  config: Config
  instances: Instances
  /** Commands connection: the conversations' debounce batches. */
  redis: Redis
  queues: Queues
  log: Log
}

/** An unclaimed debounce batch is dropped after this long (its delivery job normally takes it within debounceMs). */
const BATCH_KEEP_MS = 24 * 3_600_000

/**
 * The `webhook` queue: match the instance's routes and fan out one `delivery` job per destination. A route with
 * `debounceMs` collects a conversation's events in a batch and delivers them together once the conversation has been
 * quiet that long (BullMQ's debounce: a new event replaces the delayed delivery job and restarts the delay; one that
 * comes while the delivery runs starts the next batch when it is done).
 */
export function createWebhookProcessor(deps: WebhookDeps) {
  const { config, instances, redis, queues, log } = deps
  const { prefix } = config.queue

  return async function processWebhook(job: Job<WebhookJobData>): Promise<{ routes: number[] }> {
    const { instanceId, event, body } = job.data
    const instance = instances.get(instanceId)
    if (!instance) {
      log.warn({ jobId: job.id, instance: instanceId }, 'event of an instance no longer configured; not routed')
      return { routes: [] }
    }
    const routable = routableEvent(JSON.parse(body))
    const routes = instance.config.routes ?? []
    const matched = matchRoutes(routes, routable)
    const { conversation } = routable

    // One job per destination, its id derived from the event's: a duplicate never makes a second one, and one slow
    // or dead destination never delays or re-sends another.
    const jobs = await Promise.all(
      matched.map(async (route) => {
        const { debounceMs, maxAttempts, url } = routes[route]!.destination
        const opts: JobsOptions = { jobId: `${job.id}.r${route}`, attempts: maxAttempts ?? config.workers.deliveryAttempts }
        const data: DeliveryJobData = { instanceId, route, destination: destinationId(url), event, body, conversation }
        if (!debounceMs || !conversation) return { name: JOB.delivery, data, opts }
        const batch = batchId(instanceId, route, conversation)
        // Entries carry the event's job id, so one batch never holds an event twice (a retried webhook job pushes again).
        await redis.rpush(batchKey(prefix, batch), `${job.id}\n${body}`)
        await redis.pexpire(batchKey(prefix, batch), debounceMs + BATCH_KEEP_MS)
        return {
          name: JOB.delivery,
          data: { ...data, event: 'message_batch', body: '', batch },
          opts: { ...opts, delay: debounceMs, deduplication: { id: batch, replace: true, keepLastIfActive: true } },
        }
      }),
    )
    await queues.delivery.addBulk(jobs)
    // A lost log line must not send the event round again.
    await queues.log
      .add(JOB.log, { instanceId, kind: 'routed', jobId: job.id!, event, at: Date.now(), conversation, routes: matched })
      .catch((error: Error) => log.warn({ jobId: job.id, err: error.message }, 'event log line lost'))
    log.debug({ jobId: job.id, instance: instanceId, event, routes: matched, ours: routable.ours }, 'routed')
    return { routes: matched }
  }
}

function batchId(instanceId: string, route: number, conversation: ConversationRef): string {
  return `${instanceId}.r${route}.a${conversation.accountId}.c${conversation.conversationId}`
}
