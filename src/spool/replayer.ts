import type { Log } from '../log.ts'
import { routableEvent } from '../ingest/routes.ts'
import type { Enqueuer, LockedEvent } from '../queue/enqueue.ts'
import type { WebhookJobData } from '../queue/names.ts'
import type { RedisBreaker } from '../redis/breaker.ts'
import { atMost, replicated, type Replicas } from '../redis/connections.ts'
import type { Spool } from './spool.ts'

/** How often a process looks for spooled events to move into the queue (its own, and those of dead processes). */
const REPLAY_EVERY_MS = 1000
/** A replayed event waits this long on Redis before the replay stops and tries again later. */
const REPLAY_BUDGET_MS = 5000

export interface Replayer {
  /** Finishes the replay under way, if any, and stops. */
  stop(): Promise<void>
}

/**
 * Moves spooled events into the queue once Redis takes requests again, file by file and in order within a file,
 * through the normal enqueue (the dedupe lock and the job id make a replayed duplicate harmless). A file goes only once
 * every event in it is queued; a replay cut short by Redis going away again starts that file over later.
 */
export function startReplayer(deps: { spool: Spool; enqueuer: Enqueuer; breaker: RedisBreaker; log: Log; replicas?: Replicas }): Replayer {
  const { spool, enqueuer, breaker, log, replicas } = deps
  let running: Promise<void> | undefined
  let stopped = false

  async function replay() {
    await breaker.probe()
    if (breaker.state() === 'down') return
    await spool.rotate()
    for (const segment of await spool.segments()) {
      if (stopped) return
      const slots = new Set<number>()
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
      // With REDIS_WAIT_REPLICAS the file goes only once the replicas have its events too.
      if (!(await replicated(replicas, REPLAY_BUDGET_MS, [...slots]))) {
        log.warn({ file: segment.path, replicas: replicas?.count }, 'spool replay: replicas did not confirm; the file is kept and replayed again')
        return
      }
      await spool.done(segment)
      log.info({ file: segment.path, events: segment.events.length }, 'spooled events moved into the queue')
    }
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
