import { UnrecoverableError, type Job, type JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config/config.ts'
import { matchRoutes, routableEvent } from '../src/ingest/routes.ts'
import type { RouteConfig } from '../src/config/instances-schema.ts'
import type { Instances } from '../src/config/instances.ts'
import type { Log } from '../src/log.ts'
import type { Metrics } from '../src/metrics.ts'
import type { EventLog } from '../src/queue/event-log.ts'
import { JOB, batchKey, destinationId, laneEntry, laneKey, type ConversationRef, type DeliveryJobData, type LaneRef, type WebhookBatchData, type WebhookJobData } from '../src/queue/names.ts'
import type { ShardQueues } from '../src/queue/queues.ts'
import { backoffStrategy } from './backoff.ts'
import { failedTryLine, type TryDelivery } from './deliver.ts'
import { statusOf } from './http.ts'
import { recheckAfterMs, type Lanes } from './lanes.ts'
import type { LocalTurns } from './local-turns.ts'

export interface WebhookDeps {
  config: Config
  instances: Instances
  /** Commands connection: the conversations' debounce batches. */
  redis: Redis
  /** The shard whose webhook jobs this processes: its deliveries and lanes are on the same shard. */
  shard: ShardQueues
  tryDelivery: TryDelivery
  lanes: Lanes
  /** This process's deliveries per lane, in order: one waits for the one before it here rather than being parked. */
  localTurns: LocalTurns
  eventLog: EventLog
  log: Log
  metrics: Metrics
}

type Routed = { routes: number[] }

/** An unclaimed debounce batch is dropped after this long (its delivery job normally takes it within debounceMs). */
const BATCH_KEEP_MS = 24 * 3_600_000

/**
 * The `webhook` queue: match the instance's routes and make each destination's first try here, at once and side by
 * side, so that an event normally costs one job, or a share of one (events accepted together come as one job:
 * src/queue/accept-batch.ts). A try that fails (or meets an open breaker) hands that destination
 * over to a `delivery` job, which makes the remaining tries with backoff; the others are not sent again.
 *
 * An ordered route (the default) delivers a conversation's events one at a time, in the order they were accepted: an
 * event that does not head its conversation's lane (lanes.ts) waits for the one before it in this process
 * (local-turns.ts) or, behind one elsewhere or being retried, is parked as a delayed delivery job until it heads it.
 *
 * A route with `debounceMs` collects a conversation's events in a batch and delivers them together once the
 * conversation has been quiet that long (BullMQ's debounce: a new event replaces the delayed delivery job and restarts
 * the delay; one that comes while the delivery runs starts the next batch when it is done).
 */
export function createWebhookProcessor(deps: WebhookDeps) {
  const { config, instances, redis, shard, tryDelivery, lanes, localTurns, eventLog, log, metrics } = deps
  const { prefix } = config.queue
  const retryDelayMs = backoffStrategy(config.workers.deliveryBackoffMs)

  /**
   * One job: an event, or a batch of events accepted together (each routed as its own job would be, side by side). A
   * batch whose event failed to be routed runs again: its other events' deliveries were delivered or handed over, and
   * their markers and job ids keep a second run from sending them again.
   */
  return async function processWebhook(job: Job<WebhookJobData | WebhookBatchData>): Promise<Routed | { events: Record<string, number[]> }> {
    if (!('events' in job.data)) return processEvent(job.id!, job.data, laneEntry(job.id!))
    const batchJobId = job.id!
    const { events } = job.data
    const outcomes = await Promise.allSettled(events.map(({ id, ...event }) => processEvent(id, event, laneEntry(id, batchJobId))))
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed) throw failed.reason
    return { events: Object.fromEntries(events.map(({ id }, i) => [id, (outcomes[i] as PromiseFulfilledResult<Routed>).value.routes])) }
  }

  /** `entry`: what the event is in its conversation lanes (its id, or with its batch job's). */
  async function processEvent(id: string, data: WebhookJobData, entry: string): Promise<Routed> {
    const { instanceId, event, body } = data
    const instance = instances.get(instanceId)
    const routable = routableEvent(JSON.parse(body))
    const routes = instance?.config.routes ?? []
    const matched = instance ? matchRoutes(routes, routable) : []
    if (!instance) log.warn({ jobId: id, instance: instanceId }, 'event of an instance no longer configured; not routed')
    const { conversation } = routable
    const joined = new Set(data.lanes)
    const laneOf = (route: number, conversation: ConversationRef): LaneRef => ({ key: laneKey(shard.prefix, instanceId, route, conversation), entry, route })
    const logged = Promise.all([
      eventLog.append(instanceId, { kind: 'routed', jobId: id, event, at: Date.now(), conversation, routes: matched }),
      eventLog.keepBody(instanceId, id, body),
    ])
    // Ids derived from the event's: a run of this job again never makes a second delivery of a route, and its marker
    // tells which routes were delivered already.
    await Promise.all(
      matched.map((route) => {
        const { destination } = routes[route]!
        const deliveryId = `${id}.r${route}`
        const delivery: DeliveryJobData = { instanceId, route, destination: destinationId(destination.url), event, body, conversation, receivedAt: data.receivedAt }
        const attempts = destination.maxAttempts ?? config.workers.deliveryAttempts
        if (destination.debounceMs && conversation) return debounce(id, delivery, deliveryId, attempts, destination.debounceMs, conversation)
        if (!conversation || !joined.delete(route)) return deliverFirst(destination, delivery, deliveryId, attempts)
        return deliverInTurn(destination, { ...delivery, lane: laneOf(route, conversation) }, deliveryId, attempts)
      }),
    )
    // Lanes the event joined for routes that no longer take it (a reload changed them): it must not hold them.
    if (conversation) await Promise.all([...joined].map((route) => lanes.leave(laneOf(route, conversation))))
    await logged
    log.debug({ jobId: id, instance: instanceId, event, routes: matched, ours: routable.ours }, 'routed')
    return { routes: matched }
  }

  /** An ordered route: delivered now if its event heads the conversation's lane (asked with the try), else parked until it does. */
  function deliverInTurn(destination: RouteConfig['destination'], data: DeliveryJobData & { lane: LaneRef }, id: string, attempts: number) {
    return localTurns.inTurn(data.lane.key, data.lane.entry, async () => {
      const outcome = await deliverFirst(destination, data, id, attempts, lanes.position(data.lane))
      if (outcome?.status !== 'not_its_turn') return
      await handOver(data, { jobId: id, attempts, delay: recheckAfterMs(outcome.position) })
      await lanes.parked(data.lane)
    })
  }

  async function deliverFirst(destination: RouteConfig['destination'], data: DeliveryJobData, id: string, attempts: number, turn?: Promise<number | undefined>) {
    const { instanceId, event, body, conversation, lane, receivedAt } = data
    const target = { id, instanceId, event, body, conversation, destination, attempt: 1, lane, receivedAt }
    const outcome = await tryDelivery(target, turn)
    if (outcome.status === 'delivered' || outcome.status === 'delivered_before') return
    if (outcome.status === 'not_its_turn') return outcome
    if (outcome.status === 'wait') return handOver(data, { jobId: id, attempts, delay: outcome.waitMs })
    const { error } = outcome
    const tried = { ...data, triedBefore: 1 }
    // A delivery that failed for good leaves its lane (and logs it) when its dead letter's first run does.
    if (error instanceof UnrecoverableError || attempts <= 1) {
      return handOver({ ...tried, failedFirstTry: error.message, failedFirstTryStatus: statusOf(error) }, { jobId: id, attempts: 1 })
    }
    metrics.deliveries.inc({ instance: instanceId, host: new URL(destination.url).host, outcome: 'retry' })
    log.warn({ jobId: id, attempt: 1, err: error.message }, 'delivery failed; will retry')
    await Promise.all([
      eventLog.append(instanceId, failedTryLine(target, outcome, false)),
      handOver(tried, { jobId: id, attempts: attempts - 1, delay: await retryDelayMs(1, 'hookgate', error) }),
    ])
  }

  async function handOver(data: DeliveryJobData, opts: JobsOptions): Promise<void> {
    await shard.delivery.add(JOB.delivery, data, opts)
  }

  async function debounce(eventId: string, data: DeliveryJobData, id: string, attempts: number, debounceMs: number, conversation: ConversationRef) {
    const batch = batchId(data.instanceId, data.route, conversation)
    // Entries carry the event's id, so one batch never holds an event twice (a retried webhook job pushes again).
    await redis.rpush(batchKey(prefix, batch), `${eventId}\n${data.body}`)
    await redis.pexpire(batchKey(prefix, batch), debounceMs + BATCH_KEEP_MS)
    await shard.delivery.add(
      JOB.delivery,
      { ...data, event: 'message_batch', body: '', batch },
      { jobId: id, attempts, delay: debounceMs, deduplication: { id: batch, replace: true, keepLastIfActive: true } },
    )
  }
}

function batchId(instanceId: string, route: number, conversation: ConversationRef): string {
  return `${instanceId}.r${route}.a${conversation.accountId}.c${conversation.conversationId}`
}
