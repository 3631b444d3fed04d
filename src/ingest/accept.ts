import type { DedupeLock, EnqueueResult, Enqueuer } from '../queue/enqueue.ts'
import type { EventLogLine, WebhookJobData } from '../queue/names.ts'
import type { RedisBreaker } from '../redis/breaker.ts'
import { atMost, replicated, type Replicas } from '../redis/connections.ts'
import type { Spool } from '../spool/spool.ts'

export type AcceptResult = EnqueueResult | { status: 'spooled'; jobId: string }

export interface Acceptor {
  lockFor: Enqueuer['lockFor']
  /**
   * Queues the event in Redis or, when Redis is down, too slow (past the budget) or its breaker open, appends it to
   * the spool: either way it will be processed. Throws SpoolFull or SpoolUnavailable (503) when neither can take it.
   * With `unrouted` (no route of its instance wants it), the event's log line is written instead of a job: an event
   * no one is waiting for costs its dedupe lock and one XADD, not a job's three scripts. Spooled, it is queued as any
   * other and routed by a worker.
   */
  accept(lock: DedupeLock, data: WebhookJobData, delayMs: number, unrouted?: EventLogLine): Promise<AcceptResult>
}

export function createAcceptor(deps: {
  enqueuer: Enqueuer
  spool: Spool
  breaker: RedisBreaker
  budgetMs: number
  /** With REDIS_WAIT_REPLICAS: the connections that add jobs, and how many replicas must have them. */
  replicas?: Replicas
}): Acceptor {
  const { enqueuer, spool, breaker, budgetMs, replicas } = deps
  return {
    lockFor: enqueuer.lockFor,
    async accept(lock, data, delayMs, unrouted) {
      if (breaker.usable()) {
        // A late answer after the budget is harmless: the job id dedupes it against the spooled copy's replay.
        const queued = await atMost(
          budgetMs,
          unrouted ? enqueuer.logUnrouted(lock, data.instanceId, unrouted) : enqueuer.enqueueWebhook(lock, data, delayMs),
        )
        if (queued) breaker.succeeded()
        else breaker.failed()
        // A job only the master has could be lost in a failover: the spooled copy covers it (the replay dedupes).
        if (queued && (queued.status === 'already_queued' || (await replicated(replicas, budgetMs, [lock.shard.slot])))) return queued
      }
      await spool.append({ jobId: lock.jobId, owner: lock.owner, data })
      return { status: 'spooled', jobId: lock.jobId }
    },
  }
}
