import type { Log } from '../log.ts'
import { routableEvent } from '../ingest/routes.ts'
import type { Enqueuer, LockedEvent } from '../queue/enqueue.ts'
import type { WebhookJobData } from '../queue/names.ts'
import type { RedisBreaker } from '../redis/breaker.ts'
import { atMost, replicated, type Replicas } from '../redis/connections.ts'
import type { Segment, Spool } from './spool.ts'

/** How often a process looks for spooled events to move into the queue (its own, and those of dead processes). */
const REPLAY_EVERY_MS = 1000
/** A replayed event waits this long on Redis before the replay stops and tries again later. */
const REPLAY_BUDGET_MS = 5000
/** With REDIS_WAIT_REPLICAS and no replica confirming: the longest wait before the kept files are replayed again. */
const UNCONFIRMED_BACKOFF_MAX_MS = 15_000

export interface Replayer {
  /** Finishes the replay under way, if any, and stops. */
  stop(): Promise<void>
}

/**
 * Moves spooled events into the queue once Redis takes requests again, file by file and in order within a file,
 * through the normal enqueue (the dedupe lock and the job id make a replayed duplicate harmless). A file goes only once
 * every event in it is queued; a replay cut short by Redis going away again starts that file over later.
 *
 * With REDIS_WAIT_REPLICAS a file goes only once the replicas have its events too. While none confirms (a master
 * whose replica is away), every file is still replayed, so that its events are delivered, but kept, and replayed
 * again after a wait that doubles up to UNCONFIRMED_BACKOFF_MAX_MS: a master that dies meanwhile takes the events
 * only it had with it, and the next replay puts them into its successor.
 */
export function startReplayer(deps: { spool: Spool; enqueuer: Enqueuer; breaker: RedisBreaker; log: Log; replicas?: Replicas }): Replayer {
  const { spool, enqueuer, breaker, log, replicas } = deps
  let running: Promise<void> | undefined
  let stopped = false
  let unconfirmedRounds = 0
  let nextRoundAt = 0

  async function replay() {
    if (Date.now() < nextRoundAt) return
    await breaker.probe()
    if (breaker.state() === 'down') return
    await spool.rotate()
    const unconfirmed: Segment[] = []
    const slots = new Set<number>()
    for (const segment of await spool.segments()) {
      if (stopped) return
      for (const event of segment.events) {
        const lock = enqueuer.lockFor(event.jobId, lockedEvent(event.data), event.owner)
        slots.add(lock.shard.slot)
        const queued = await atMost(REPLAY_BUDGET_MS, enqueuer.enqueueWebhook(lock, event.data))
        if (!queued) {
          breaker.failed()
          log.warn({ file: segment.path }, 'spool replay interrupted: Redis is unavailable again; it resumes later')
          return
        }
      }
      if (replicas) unconfirmed.push(segment)
      else await moved(segment)
    }
    if (unconfirmed.length === 0) return
    // One WAIT for all the files: it covers every write the replay made.
    if (!(await replicated(replicas, REPLAY_BUDGET_MS, [...slots]))) {
      unconfirmedRounds++
      nextRoundAt = Date.now() + Math.min(REPLAY_EVERY_MS * 2 ** unconfirmedRounds, UNCONFIRMED_BACKOFF_MAX_MS)
      log.warn({ files: unconfirmed.length, replicas: replicas?.count }, 'spool replay: replicas did not confirm; the files are kept and replayed again')
      return
    }
    unconfirmedRounds = 0
    for (const segment of unconfirmed) await moved(segment)
  }

  async function moved(segment: Segment) {
    await spool.done(segment)
    log.info({ file: segment.path, events: segment.events.length }, 'spooled events moved into the queue')
  }

  const timer = setInterval(() => {
    running ??= replay()
      .catch((error: Error) => log.error({ err: error.message }, 'spool replay failed; it resumes later'))
      .finally(() => (running = undefined))
  }, REPLAY_EVERY_MS)
  return {
    async stop() {
      stopped = true
      clearInterval(timer)
      await running
    },
  }
}

/** What places a spooled event's lock: its instance and conversation (read again from its body), and its lanes. */
function lockedEvent(data: WebhookJobData): LockedEvent {
  const { conversation } = routableEvent(JSON.parse(data.body))
  return { instanceId: data.instanceId, conversation, lanes: data.lanes }
}
