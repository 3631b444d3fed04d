import type { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import type { Config } from '../config.ts'
import { Unavailable } from '../errors.ts'
import type { Log } from '../log.ts'
import acquireScript from './dedupe-lock.lua' with { type: 'text' }
import releaseScript from './release-lock.lua' with { type: 'text' }
import { JOB, dedupeLockKey, webhookJobKey, type WebhookJobData } from './names.ts'
import type { Queues } from './queues.ts'

export type EnqueueResult = { status: 'queued'; jobId: string } | { status: 'already_queued'; jobId: string }

export interface Enqueuer {
  /** `delayMs`: hold the job that long before a worker may take it (shaping). */
  enqueueWebhook(dedupeKey: string, data: WebhookJobData, delayMs?: number): Promise<EnqueueResult>
}

interface LockCommands {
  acquireDedupeLock(lockKey: string, jobKey: string, ttlMs: number, owner: string): Promise<number>
  releaseDedupeLock(lockKey: string, owner: string): Promise<number>
}

/**
 * First arrival of a dedupe key takes the lock (one round trip) and adds the job with the key as its id (a second);
 * a repeat while the lock is held or the job exists is answered after the first round trip.
 */
export function createEnqueuer(deps: { config: Config['queue']; commands: Redis; queues: Queues; log: Log }): Enqueuer {
  const { config, queues, log } = deps
  const commands = deps.commands as Redis & LockCommands
  commands.defineCommand('acquireDedupeLock', { numberOfKeys: 2, lua: acquireScript })
  commands.defineCommand('releaseDedupeLock', { numberOfKeys: 1, lua: releaseScript })

  return {
    async enqueueWebhook(dedupeKey, data, delayMs = 0) {
      const lockKey = dedupeLockKey(config.prefix, dedupeKey)
      const owner = randomUUID()
      let acquired: number
      try {
        acquired = await commands.acquireDedupeLock(lockKey, webhookJobKey(config.prefix, dedupeKey), config.lockTtlMs, owner)
      } catch (error) {
        log.error({ err: (error as Error).message, jobId: dedupeKey }, 'dedupe lock failed')
        throw new Unavailable()
      }
      if (acquired === 0) return { status: 'already_queued', jobId: dedupeKey }

      try {
        await queues.webhook.add(JOB.chatwootEvent, data, delayMs > 0 ? { jobId: dedupeKey, delay: delayMs } : { jobId: dedupeKey })
      } catch (error) {
        log.error({ err: (error as Error).message, jobId: dedupeKey }, 'enqueue failed')
        // So that a retry of this event is not answered "already_queued" for a job that does not exist.
        commands.releaseDedupeLock(lockKey, owner).catch(() => {})
        throw new Unavailable()
      }
      return { status: 'queued', jobId: dedupeKey }
    },
  }
}
