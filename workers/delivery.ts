import { DelayedError, UnrecoverableError, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config/config.ts'
import type { RouteConfig } from '../src/config/instances-schema.ts'
import type { Instances } from '../src/config/instances.ts'
import type { Metrics } from '../src/metrics.ts'
import type { EventLog } from '../src/queue/event-log.ts'
import { batchKey, destinationId, type DeliveryJobData, type LaneRef } from '../src/queue/names.ts'
import type { AnswerBack } from './answer-back.ts'
import { waitWithoutTrying } from './backoff.ts'
import { failedTryLine, type TryDelivery } from './deliver.ts'
import { Refused } from './http.ts'
import { LANE_RECHECK_MS, recheckAfterMs, type Lanes } from './lanes.ts'

export interface DeliveryDeps {
  config: Config
  instances: Instances
  tryDelivery: TryDelivery
  /** Commands connection: debounce batches. */
  redis: Redis
  answerBack: AnswerBack
  lanes: Lanes
  eventLog: EventLog
  metrics: Metrics
}

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
 * The `delivery` queue: the tries of a delivery after its first (which the event's webhook job made), and a debounced
 * route's batches, and an ordered route's deliveries parked until their turn. A delivery that fails for good stays here
 * as a dead letter, replayable (out of its lane: a replay goes at once).
 */
export function createDeliveryProcessor(deps: DeliveryDeps) {
  const { config, instances, tryDelivery, redis, answerBack, lanes, eventLog, metrics } = deps
  const { prefix } = config.queue

  return async function processDelivery(
    job: Job<DeliveryJobData>,
    token?: string,
  ): Promise<{ status: 'delivered' | 'delivered_before' | 'empty_batch'; httpStatus?: number }> {
    const id = job.id!
    const { instanceId, route: routeIndex, event, conversation } = job.data
    const instance = instances.get(instanceId)
    const destination = instance && currentDestination(instance.config.routes ?? [], routeIndex, job.data.destination)
    let lane = job.data.lane
    if (!instance || !destination) {
      if (lane) await lanes.leave(lane)
      throw new UnrecoverableError(`route ${routeIndex} of instance ${instanceId} is no longer configured`)
    }
    const attempt = (job.data.triedBefore ?? 0) + job.attemptsMade + 1
    const host = new URL(destination.url).host

    const target = { id, event, conversation, destination, attempt }
    const giveUp = async (failure: { error: Error; ms?: number }, lastAttempt: number) => {
      metrics.deliveries.inc({ instance: instanceId, host, outcome: 'failed' })
      await eventLog.append(instanceId, failedTryLine({ ...target, attempt: lastAttempt }, failure, true))
      if (instance.config.notifyOnFailure) await answerBack.notifyFailure({ deliveryId: id, instanceId, event, conversation }, destination.url, failure.error.message)
      if (lane) await lanes.leave(lane)
    }
    // Its first try failed for good in the webhook job (that try's line is written now); a replay (attemptsStarted > 1) sends it.
    const { failedFirstTry, failedFirstTryStatus } = job.data
    if (failedFirstTry !== undefined && job.attemptsStarted <= 1) {
      const error = failedFirstTryStatus === undefined ? new UnrecoverableError(failedFirstTry) : new Refused(failedFirstTry, failedFirstTryStatus)
      await giveUp({ error }, 1)
      throw error
    }
    if (lane) {
      const position = await positionAfterDeadHeads(job, lane)
      if (position === undefined) lane = undefined // Not in its lane (any more): a replay, say. It goes at once.
      else if (position > 0) return waitTurn(job, lane, position, token)
    }
    const body = job.data.body || (job.data.batch ? await takeBatch(job, job.data.batch) : '')
    if (!body) return { status: 'empty_batch' }

    const outcome = await tryDelivery({ id, instanceId, event, body, conversation, destination, attempt, lane, receivedAt: job.data.receivedAt })
    switch (outcome.status) {
      case 'delivered':
        if (job.data.batch) await redis.ltrim(batchKey(prefix, job.data.batch), job.data.batchTaken ?? 0, -1)
        return { status: 'delivered', httpStatus: outcome.httpStatus }
      case 'delivered_before':
        return { status: 'delivered_before' }
      case 'wait':
        return waitWithoutTrying(job, outcome.waitMs, token)
      case 'failed': {
        const final = outcome.error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
        if (final) await giveUp(outcome, attempt)
        else {
          metrics.deliveries.inc({ instance: instanceId, host, outcome: 'retry' })
          await eventLog.append(instanceId, failedTryLine(target, outcome, false))
        }
        throw outcome.error
      }
    }
  }

  /**
   * The delivery's place in its lane, once heads with no job left are dropped: a head seen dead on two looks at least
   * LANE_RECHECK_MS apart (the first could be an event between its lock and its job being added).
   */
  async function positionAfterDeadHeads(job: Job<DeliveryJobData>, lane: LaneRef): Promise<number | undefined> {
    for (;;) {
      const position = await lanes.position(lane)
      if (!position) return position
      const dead = await lanes.deadHead(lane)
      if (!dead) return position
      if (job.data.deadHead !== dead) {
        await job.updateData({ ...job.data, deadHead: dead })
        return position
      }
      await lanes.drop(lane, dead)
    }
  }

  /** Parks the delivery until its event heads the lane: the one before wakes it as it leaves. */
  async function waitTurn(job: Job<DeliveryJobData>, lane: LaneRef, position: number, token: string | undefined): Promise<never> {
    await job.moveToDelayed(Date.now() + recheckAfterMs(position), token)
    await lanes.parked(lane)
    throw new DelayedError()
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
}
