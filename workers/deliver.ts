import { randomUUID } from 'node:crypto'
import type { Config } from '../src/config/config.ts'
import type { RouteConfig } from '../src/config/instances-schema.ts'
import type { Log } from '../src/log.ts'
import type { Metrics } from '../src/metrics.ts'
import type { EventLog } from '../src/queue/event-log.ts'
import { deliveredKey, type ConversationRef, type EventLogLine, type LaneRef } from '../src/queue/names.ts'
import type { WithReleaseLock } from '../src/redis/connections.ts'
import type { AnswerBack } from './answer-back.ts'
import { RetryLater } from './backoff.ts'
import type { Breaker } from './breaker.ts'
import { sendJson, statusOf } from './http.ts'
import type { Lanes } from './lanes.ts'
import { signStandardWebhook } from './sign.ts'

export type Destination = RouteConfig['destination']

/** One event for one destination. */
export interface DeliveryTarget {
  /** `<event's job id>.r<route>`: the delivery's webhook-id, marker and (once handed to the delivery queue) job id. */
  id: string
  instanceId: string
  event: string
  body: string
  conversation: ConversationRef | undefined
  destination: Destination
  /** Which try this is, from 1 (for the log). */
  attempt: number
  /** When the API accepted the event, ms since the epoch (absent on jobs queued by an earlier version). */
  receivedAt?: number
  /** An ordered route's: the event heads this lane, which its answer holds until posted. */
  lane?: LaneRef
}

/**
 * What one try came to; `wait` (breaker open, or the same delivery in flight elsewhere) is not a try. Delivered (now or
 * before), the event has left its lane, or its answer's calls hold it and leave it once made.
 */
export type TryOutcome =
  | { status: 'delivered'; httpStatus: number }
  | { status: 'delivered_before' }
  | { status: 'wait'; waitMs: number }
  | { status: 'failed'; error: Error; ms: number }
  | { status: 'not_its_turn'; position: number }

/**
 * `turn`: on an ordered route, the event's place in its lane (Lanes.position), asked for beside the marker's claim so
 * that both share a round trip. Not at the head, the try gives its claim back and is `not_its_turn`; not in the lane
 * (any more), it goes without one.
 */
export interface TryDelivery {
  (target: DeliveryTarget): Promise<Exclude<TryOutcome, { status: 'not_its_turn' }>>
  (target: DeliveryTarget, turn?: Promise<number | undefined>): Promise<TryOutcome>
}

const DEFAULT_TIMEOUT_MS = 10_000
/** How much of a destination's answer its event-log line keeps (the console shows it). */
export const ANSWER_LOGGED_CHARS = 300
/** How much longer than its POST's timeout a run's claim on the marker lives. */
const IN_FLIGHT_MARGIN_MS = 1000
/** The marker of a delivery done; ANSWERING: done, and its answer's calls (which hold its lane) were queued. */
const DELIVERED = 'delivered'
const ANSWERING = 'answering'

/**
 * One try of one delivery: the destination's breaker, its marker claimed (two runs never POST at once; a run after it
 * was delivered does nothing), a signed POST with its timeout, the Chatwoot calls its answer asks for queued, then the
 * marker set to `delivered` for the dedupe window, the event-log line and, on an ordered route, the event leaving its
 * lane. Normally two Redis round trips, no script.
 */
export function createDeliverer(deps: {
  config: Config
  breaker: Breaker
  /** Commands connection: the delivered marker. */
  redis: WithReleaseLock
  answerBack: AnswerBack
  lanes: Lanes
  eventLog: EventLog
  log: Log
  metrics: Metrics
}): TryDelivery {
  const { config, breaker, redis, answerBack, lanes, eventLog, log, metrics } = deps
  const { prefix, dedupeWindowMs } = config.queue

  return async function tryDelivery(target: DeliveryTarget, turn?: Promise<number | undefined>): Promise<TryOutcome> {
    const { id, instanceId, event, conversation, destination } = target
    let { lane } = target
    turn?.catch(() => {}) // Awaited below unless the breaker says wait first: its failure must not go unhandled then.
    const host = new URL(destination.url).host
    const timeoutMs = destination.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const marker = deliveredKey(prefix, id)
    const deliveredBefore = async (markerValue: string): Promise<TryOutcome> => {
      metrics.deliveries.inc({ instance: instanceId, host, outcome: 'delivered_before' })
      if (lane && markerValue !== ANSWERING) await lanes.leave(lane)
      return { status: 'delivered_before' }
    }
    const owner = randomUUID()
    // Not awaited when answered at once: the claim below then leaves in the caller's tick, sharing the write of its
    // event-log line (with AOF fsync always, each separate write to Redis costs it ~160 µs of CPU here).
    const asked = breaker.allow(destination.url, owner, timeoutMs + IN_FLIGHT_MARGIN_MS)
    const permission = asked instanceof Promise ? await asked : asked
    if (!permission.allowed) {
      metrics.breakerOpen.set({ host }, 1)
      log.debug({ jobId: id, waitMs: permission.waitMs }, 'destination breaker open; delivery waits')
      return { status: 'wait', waitMs: permission.waitMs }
    }
    // Claimed on every run, first ones too: a job whose lock was lost while it ran (a stalled event loop, Redis away)
    // is run again by another worker while the first run may still be POSTing; the fault suite saw that happen.
    const [claimed, position] = await Promise.all([redis.set(marker, owner, 'PX', timeoutMs + IN_FLIGHT_MARGIN_MS, 'NX'), turn])
    if (turn && position === undefined) lane = undefined
    if (!claimed) {
      const value = await redis.get(marker)
      if (value === DELIVERED || value === ANSWERING) return deliveredBefore(value)
      // Another run may still be POSTing (or died mid-POST: its claim expires with its timeout).
      log.debug({ jobId: id }, 'delivery in flight elsewhere; waits')
      return { status: 'wait', waitMs: timeoutMs }
    }
    if (position) {
      // Just taken and far from expiring: ours to delete without a compare.
      await redis.del(marker)
      return { status: 'not_its_turn', position }
    }
    const release = () => redis.releaseLock(marker, owner).catch(() => 0)

    let answer: Awaited<ReturnType<typeof sendJson>>
    const startedAt = performance.now()
    const took = () => Math.round(performance.now() - startedAt)
    try {
      const signed = destination.secret ? signStandardWebhook(destination.secret, id, Math.floor(Date.now() / 1000), target.body) : { 'webhook-id': id }
      answer = await sendJson(destination.url, target.body, { ...signed, 'x-hookgate-instance': instanceId, 'x-chatwoot-event': event }, timeoutMs)
    } catch (error) {
      if (await breaker.record(destination.url, !(error instanceof RetryLater && error.unhealthy), owner)) metrics.breakerOpen.set({ host }, 1)
      await release()
      return { status: 'failed', error: error as Error, ms: took() }
    }
    const ms = took()
    let answerHoldsLane: boolean
    try {
      // The answer's calls first, then the marker: a failure in between delivers the event again (destinations dedupe
      // by webhook-id) rather than losing an answer.
      answerHoldsLane = await answerBack.answer({ deliveryId: id, instanceId, event, conversation, lane }, answer.json)
    } catch (error) {
      await release()
      return { status: 'failed', error: error as Error, ms }
    }
    const now = Date.now()
    // Marker, log line and leaving the lane in the same tick: one round trip on the auto-pipelined connection.
    await Promise.all([
      untilWritten(() => redis.set(marker, answerHoldsLane ? ANSWERING : DELIVERED, 'PX', dedupeWindowMs), dedupeWindowMs),
      eventLog.append(instanceId, {
        kind: 'delivered',
        jobId: id,
        event,
        at: now,
        conversation,
        host,
        status: answer.status,
        attempt: target.attempt,
        ms,
        latencyMs: target.receivedAt === undefined ? undefined : now - target.receivedAt,
        answer: answer.json === undefined ? undefined : JSON.stringify(answer.json).slice(0, ANSWER_LOGGED_CHARS),
      }),
      lane && !answerHoldsLane ? lanes.leave(lane) : undefined,
    ])
    await breaker.record(destination.url, true, owner)
    metrics.breakerOpen.set({ host }, 0)
    metrics.deliveries.inc({ instance: instanceId, host, outcome: 'delivered' })
    log.info({ jobId: id, instance: instanceId, host, status: answer.status, attempt: target.attempt }, 'delivered')
    return { status: 'delivered', httpStatus: answer.status }
  } as TryDelivery
}

/** The event-log line of a try that failed: `attempt_failed` when another follows, `delivery_failed` when it was the last. */
export function failedTryLine(
  target: Pick<DeliveryTarget, 'id' | 'event' | 'conversation' | 'destination' | 'attempt'>,
  failure: { error: Error; ms?: number },
  final: boolean,
): EventLogLine {
  return {
    kind: final ? 'delivery_failed' : 'attempt_failed',
    jobId: target.id,
    event: target.event,
    at: Date.now(),
    conversation: target.conversation,
    host: new URL(target.destination.url).host,
    status: statusOf(failure.error),
    attempt: target.attempt,
    ms: failure.ms,
    error: failure.error.message,
  }
}

/**
 * Writes what must not be lost once the destination has the event (its delivered marker), trying again every 100 ms
 * while Redis is away, for up to `withinMs` (the dedupe window, past which a run again would deliver anyway). Failing
 * sooner would have the job run again and deliver twice: when Redis is away longer than the job's lock (a failover),
 * the run again only comes once Redis is back and a stalled-job check has seen the lock gone, and this write goes
 * within 100 ms of Redis being back, before that run's claim.
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
