import { UnrecoverableError, type Job } from 'bullmq'
import { randomUUID } from 'node:crypto'
import type { Config } from '../src/config.ts'
import type { RouteConfig } from '../src/instances-schema.ts'
import type { Instances } from '../src/instances.ts'
import type { Log } from '../src/log.ts'
import type { Metrics } from '../src/metrics.ts'
import type { WithReleaseLock } from '../src/redis.ts'
import { JOB, OUR_SOURCE_ID_PREFIX, batchKey, destinationId, deliveredKey, deliveringKey, type DeliveryJobData, type LogJobData } from '../src/queue/names.ts'
import type { Queues } from '../src/queue/queues.ts'
import { RetryLater, waitWithoutTrying } from './backoff.ts'
import type { Breaker } from './breaker.ts'
import { postJson } from './http.ts'
import { signStandardWebhook } from './sign.ts'

export interface DeliveryDeps {
  config: Config
  instances: Instances
  breaker: Breaker
  /** Commands connection: the delivered marker and the in-flight lock. */
  redis: WithReleaseLock
  queues: Queues
  log: Log
  metrics: Metrics
}

const DEFAULT_TIMEOUT_MS = 10_000
/** How much longer than its POST's timeout a delivery's in-flight lock lives. */
const IN_FLIGHT_MARGIN_MS = 1000

/**
 * The destination a delivery goes to now: its route's, found by the URL it was routed to, since a reload may have
 * moved the route to another index (or removed it: undefined). Jobs routed before URLs were recorded go by index.
 */
function currentDestination(routes: readonly RouteConfig[], index: number, routedTo: string | undefined) {
  if (!routedTo) return routes[index]?.destination
  const atIndex = routes[index]?.destination
  if (atIndex && destinationId(atIndex.url) === routedTo) return atIndex
  return routes.find((route) => destinationId(route.destination.url) === routedTo)?.destination
}

/**
 * Writes what must not be lost once the destination has the event (its delivered marker), trying again while Redis is
 * away, for up to `withinMs` (the job's lock): failing at once would have the job run again and deliver twice.
 */
async function untilWritten(write: () => Promise<unknown>, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs
  for (;;) {
    try {
      await write()
      return
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await Bun.sleep(100)
    }
  }
}

/** A reply or note longer than this is cut: Chatwoot messages are meant for people. */
const MAX_MESSAGE_CHARS = 10_000

/** The `delivery` queue: POST one event to one destination, signed; post its reply or note back into Chatwoot. */
export function createDeliveryProcessor(deps: DeliveryDeps) {
  const { config, instances, breaker, redis, queues, log, metrics } = deps
  const { prefix } = config.queue

  return async function processDelivery(
    job: Job<DeliveryJobData>,
    token?: string,
  ): Promise<{ status: 'delivered' | 'delivered_before' | 'empty_batch'; httpStatus?: number }> {
    const id = job.id!
    const { instanceId, route: routeIndex, event, conversation } = job.data
    const instance = instances.get(instanceId)
    const destination = instance && currentDestination(instance.config.routes ?? [], routeIndex, job.data.destination)
    if (!instance || !destination) throw new UnrecoverableError(`route ${routeIndex} of instance ${instanceId} is no longer configured`)
    const host = new URL(destination.url).host
    const count = (outcome: 'delivered' | 'delivered_before' | 'retry' | 'failed') => metrics.deliveries.inc({ instance: instanceId, host, outcome })
    const delivered = async () => (await redis.exists(deliveredKey(prefix, id))) === 1
    if (await delivered()) {
      count('delivered_before')
      return { status: 'delivered_before' }
    }
    const body = job.data.body || (job.data.batch ? await takeBatch(job, job.data.batch) : '')
    if (!body) return { status: 'empty_batch' }
    const appendLog = (line: Omit<LogJobData, 'instanceId' | 'jobId' | 'event' | 'at' | 'conversation'>) =>
      queues.log.add(JOB.log, { instanceId, jobId: id, event, at: Date.now(), conversation, ...line })

    const timeoutMs = destination.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const owner = randomUUID()
    const permission = await breaker.allow(destination.url, owner, timeoutMs + IN_FLIGHT_MARGIN_MS)
    if (!permission.allowed) {
      metrics.breakerOpen.set({ host }, 1)
      log.debug({ jobId: id, waitMs: permission.waitMs }, 'destination breaker open; delivery waits')
      return waitWithoutTrying(job, permission.waitMs, token)
    }
    const lockKey = deliveringKey(prefix, id)
    if (!(await redis.set(lockKey, owner, 'PX', timeoutMs + IN_FLIGHT_MARGIN_MS, 'NX'))) {
      // Another worker's attempt may still be running (or died mid-POST: its lock expires with its timeout).
      log.debug({ jobId: id }, 'delivery in flight elsewhere; waits')
      return waitWithoutTrying(job, timeoutMs, token)
    }
    try {
      // A run of this job that held the lock before us (a stalled one) may have delivered it meanwhile.
      if (await delivered()) {
        count('delivered_before')
        return { status: 'delivered_before' }
      }
      const signed = destination.secret ? signStandardWebhook(destination.secret, id, Math.floor(Date.now() / 1000), body) : { 'webhook-id': id }
      const answer = await postJson(destination.url, body, { ...signed, 'x-hookgate-instance': instanceId, 'x-chatwoot-event': event }, timeoutMs).catch(
        async (error: Error) => {
          if (await breaker.record(destination.url, !(error instanceof RetryLater && error.unhealthy), owner)) metrics.breakerOpen.set({ host }, 1)
          const final = error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
          count(final ? 'failed' : 'retry')
          if (final) {
            await appendLog({ kind: 'delivery_failed', host, attempt: job.attemptsMade + 1, error: error.message })
            if (instance.config.notifyOnFailure) await notifyFailure(id, instanceId, conversation, destination.url, error.message)
          }
          throw error
        },
      )
      // The reply or note first (its jobs' ids are stable, so adding them twice is harmless), then the marker: a
      // failure in between delivers the event again (destinations dedupe by webhook-id) rather than losing a reply.
      await answerBack(id, instanceId, conversation, answer.json)
      await untilWritten(() => redis.set(deliveredKey(prefix, id), '1', 'EX', config.queue.retentionSeconds), config.workers.jobLockMs)
      if (job.data.batch) await redis.ltrim(batchKey(prefix, job.data.batch), job.data.batchTaken ?? 0, -1)
      await breaker.record(destination.url, true, owner)
      metrics.breakerOpen.set({ host }, 0)
      count('delivered')
      await appendLog({ kind: 'delivered', host, status: answer.status, attempt: job.attemptsMade + 1 })
      log.info({ jobId: id, instance: instanceId, host, status: answer.status, attempt: job.attemptsMade + 1 }, 'delivered')
      return { status: 'delivered', httpStatus: answer.status }
    } finally {
      await redis.releaseLock(lockKey, owner).catch(() => {})
    }
  }

  /**
   * Puts a debounced conversation's pending events into this job's data (kept for every retry). They leave the batch
   * only once delivered, so a job replaced by a newer one (BullMQ's debounce) loses nothing: the newer takes them too.
   * A batch is `{"event":"message_batch","instance":…,"conversation":…,"messages":[…]}`, the bodies as they came.
   */
  async function takeBatch(job: Job<DeliveryJobData>, batch: string): Promise<string> {
    const entries = await redis.lrange(batchKey(prefix, batch), 0, -1)
    const seen = new Set<string>()
    const messages: string[] = []
    for (const entry of entries) {
      const cut = entry.indexOf('\n')
      const eventJobId = entry.slice(0, cut)
      if (seen.has(eventJobId)) continue
      seen.add(eventJobId)
      messages.push(entry.slice(cut + 1))
    }
    if (messages.length === 0) return ''
    const { instanceId, conversation } = job.data
    const body = `{"event":"message_batch","instance":${JSON.stringify(instanceId)},"conversation":${JSON.stringify(conversation)},"messages":[${messages.join(',')}]}`
    await job.updateData({ ...job.data, body, batchTaken: entries.length })
    return body
  }

  /** Tells the conversation's agents, in a private note, that its automation gave up (the instance's notifyOnFailure). */
  async function notifyFailure(deliveryId: string, instanceId: string, conversation: DeliveryJobData['conversation'], url: string, reason: string) {
    if (!conversation) return
    const content = `hookgate could not deliver this event to ${new URL(url).host} and gave up: ${reason}. The automation did not run.`
    await queues.chatwootNote.add(
      JOB.chatwootNote,
      { instanceId, conversation, content, private: true, sourceId: `${OUR_SOURCE_ID_PREFIX}${deliveryId}.failure` },
      { jobId: `${deliveryId}.failure` },
    )
  }

  /** `{ "reply": "…" }` becomes an outgoing message, `{ "note": "…" }` a private note, in the event's conversation. */
  async function answerBack(deliveryId: string, instanceId: string, conversation: DeliveryJobData['conversation'], json: unknown) {
    if (!json || typeof json !== 'object') return
    const messages = (['reply', 'note'] as const)
      .map((kind) => ({ kind, content: (json as Record<string, unknown>)[kind] }))
      .filter((m): m is { kind: 'reply' | 'note'; content: string } => typeof m.content === 'string' && m.content.trim() !== '')
    if (messages.length === 0) return
    if (!conversation) {
      log.warn({ jobId: deliveryId, instance: instanceId }, 'destination answered a reply or note, but the event has no conversation')
      return
    }
    await queues.chatwootNote.addBulk(
      messages.map(({ kind, content }) => ({
        name: JOB.chatwootNote,
        data: {
          instanceId,
          conversation,
          content: content.slice(0, MAX_MESSAGE_CHARS),
          private: kind === 'note',
          sourceId: `${OUR_SOURCE_ID_PREFIX}${deliveryId}.${kind}`,
        },
        opts: { jobId: `${deliveryId}.${kind}` },
      })),
    )
  }
}
