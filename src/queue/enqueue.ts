import type { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import type { Config } from '../config/config.ts'
import { Unavailable } from '../errors.ts'
import type { Log } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { defineScript } from '../redis/connections.ts'
import type { AcceptBatcher } from './accept-batch.ts'
import { jobAddOf, type JobAdd } from './bullmq-add.ts'
import acquireScript from './dedupe-lock.lua' with { type: 'text' }
import releaseScript from './release-lock.lua' with { type: 'text' }
import type { EventLog } from './event-log.ts'
import { JOB, dedupeLockKey, laneKey, webhookJobKey, type ConversationRef, type EventLogLine, type WebhookJobData } from './names.ts'
import type { Queues, ShardQueues } from './queues.ts'

export type EnqueueResult = { status: 'queued'; jobId: string } | { status: 'already_queued'; jobId: string }

/**
 * The dedupe lock one event's enqueue needs: held for the dedupe window, it is the event's identity once its job is
 * done and gone. The instance's rate limit takes it in the same Redis script as its token and records the outcome in
 * `locked`; when nothing did, the enqueuer takes it itself.
 */
export interface DedupeLock {
  jobId: string
  /** The event's shard: its lock, job and lanes share the shard's hash tag. */
  shard: ShardQueues
  key: string
  /** The job's own key: while it exists, the event is queued already, lock or not. */
  jobKey: string
  ttlMs: number
  /** Unique to this request, so only its owner releases the lock. */
  owner: string
  /** The conversation lanes (laneKey) the event joins when it takes the lock: one per ordered route it goes to. */
  lanes: string[]
  /** true: held by this request; false: the event is queued already; undefined: not tried yet. */
  locked?: boolean
  /** The event's job, built ahead so that the call taking the lock queues it too, when nothing delays it. */
  add?: JobAdd
  /** true: the call that took the lock queued the job as well. */
  queued?: boolean
}

export interface Enqueuer {
  /**
   * The event's lock, on the event's shard; `lanes`: the routes whose conversation lane it joins with the lock.
   * `owner`: a lock owner of its own, for a replay of a spooled event (which may still hold its lock); new by default.
   */
  lockFor(dedupeKey: string, event: LockedEvent, owner?: string): DedupeLock
  /** Queues the event unless it is queued already; `delayMs` holds it back that long (shaping). */
  enqueueWebhook(lock: DedupeLock, data: WebhookJobData, delayMs?: number): Promise<EnqueueResult>
  /**
   * An event no route wants: its line in the instance's event log instead of a job, unless it was taken already. Its
   * dedupe lock still answers repeats within the window.
   */
  logUnrouted(lock: DedupeLock, instanceId: string, line: EventLogLine): Promise<EnqueueResult>
}

/** What places an event's lock: its instance and conversation choose its shard. */
export interface LockedEvent {
  instanceId: string
  conversation: ConversationRef | undefined
  /** Routes (indexes) whose conversation lane the event joins; only with a conversation. */
  lanes?: number[]
  /** The event's job, when it is to be queued (not only logged): taking the lock then queues it in the same call. */
  job?: WebhookJobData
}

/** How long a conversation lane lives after its last event joined: longer than any delivery's tries take. */
export const LANE_TTL_MS = 7 * 24 * 3_600_000

/**
 * The first arrival of a dedupe key holds its lock (taken by the rate limit's script, or here) and adds the job with the
 * key as its id (or, with the events accepted meanwhile, one batch job: accept-batch.ts), in the same call unless the
 * job is delayed (then a second); a repeat while the lock lives or the job exists adds nothing.
 */
export function createEnqueuer(deps: {
  config: Config['queue']
  commands: Redis
  queues: Queues
  batcher: AcceptBatcher
  eventLog: EventLog
  log: Log
  metrics: Metrics
}): Enqueuer {
  const { config, queues, batcher, eventLog, log, metrics } = deps
  const { commands } = deps
  const acquireCommand = defineScript(commands, acquireScript)
  const releaseCommand = defineScript(commands, releaseScript)
  const jobAdd = (shard: ShardQueues, jobId: string, data: WebhookJobData) => jobAddOf(shard.webhook, JOB.chatwootEvent, data, { jobId })

  /** Takes the lock; with `add`, queues the job in the same call when the lock is taken (then `lock.queued`). */
  async function acquire(lock: DedupeLock, add: JobAdd | undefined): Promise<boolean> {
    try {
      const { key, jobKey, lanes, ttlMs, owner, jobId } = lock
      if (!add) return (await acquireCommand(2 + lanes.length)(key, jobKey, ...lanes, ttlMs, owner, jobId, LANE_TTL_MS)) === 1
      lock.queued = (await batcher.accept({ lock, add })).queued
      return lock.queued
    } catch (error) {
      log.error({ err: (error as Error).message, jobId: lock.jobId }, 'dedupe lock failed')
      release(lock)
      throw new Unavailable()
    }
  }

  /** Best effort: a timed-out call may still have taken the lock, and a retry must not find the event "queued". */
  function release(lock: DedupeLock): void {
    releaseCommand(1 + lock.lanes.length)(lock.key, ...lock.lanes, lock.owner, lock.jobId).catch(() => {})
  }

  return {
    // The owner lives in the key for the whole dedupe window: 12 characters, not a 36-character UUID.
    lockFor(dedupeKey, { instanceId, conversation, lanes = [], job }, owner = randomBytes(9).toString('base64url')) {
      const shard = queues.shardOf(instanceId, conversation, dedupeKey)
      return {
        add: job && jobAdd(shard, dedupeKey, job),
        jobId: dedupeKey,
        shard,
        key: dedupeLockKey(shard.prefix, dedupeKey),
        jobKey: webhookJobKey(shard.prefix, dedupeKey),
        ttlMs: config.dedupeWindowMs,
        owner,
        lanes: conversation ? lanes.map((route) => laneKey(shard.prefix, instanceId, route, conversation)) : [],
      }
    },

    async enqueueWebhook(lock, data, delayMs = 0) {
      // Nothing delays the job: the call that takes the lock queues it too (the rate limit's, or the one here).
      const add = delayMs > 0 ? undefined : (lock.add ?? jobAdd(lock.shard, lock.jobId, data))
      if (!(await locked(lock, add))) return { status: 'already_queued', jobId: lock.jobId }
      if (lock.queued) return { status: 'queued', jobId: lock.jobId }
      try {
        await lock.shard.webhook.add(JOB.chatwootEvent, data, delayMs > 0 ? { jobId: lock.jobId, delay: delayMs } : { jobId: lock.jobId })
      } catch (error) {
        log.error({ err: (error as Error).message, jobId: lock.jobId }, 'enqueue failed')
        release(lock)
        throw new Unavailable()
      }
      return { status: 'queued', jobId: lock.jobId }
    },

    async logUnrouted(lock, instanceId, line) {
      if (!(await locked(lock, undefined))) return { status: 'already_queued', jobId: lock.jobId }
      if (!(await eventLog.append(instanceId, line))) {
        release(lock)
        throw new Unavailable()
      }
      return { status: 'queued', jobId: lock.jobId }
    },
  }

  async function locked(lock: DedupeLock, add: JobAdd | undefined): Promise<boolean> {
    const held = lock.locked ?? (await acquire(lock, add))
    metrics.dedupeLocks.inc({ result: held ? 'acquired' : 'held' })
    return held
  }
}
