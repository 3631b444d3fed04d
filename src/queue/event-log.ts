import type { Redis } from 'ioredis'
import type { Log } from '../log.ts'
import { eventBodiesKey, eventLogKey, type EventLogLine } from './names.ts'

export interface EventLog {
  /**
   * Appends a line to the instance's log; false when it could not be written. Never throws: a lost line is logged, and
   * must not send an event round again.
   */
  append(instanceId: string, line: EventLogLine): Promise<boolean>
  /** Keeps an event's body among the instance's latest (EVENT_BODIES_KEPT), for the console. Never throws. */
  keepBody(instanceId: string, jobId: string, body: string): Promise<void>
}

/**
 * Each instance's event log: a Redis Stream capped (approximately, so trimming is cheap) at EVENT_LOG_MAX_LEN entries,
 * written where the event happens. One XADD a line: a BullMQ job per line cost six scripts (add, fetch, finish, twice).
 * Beside it, the latest event bodies (another capped stream, written in the same round trip as the `routed` line).
 */
export function createEventLog(deps: { redis: Redis; prefix: string; maxLen: number; bodiesKept: number; log: Log }): EventLog {
  const { redis, prefix, maxLen, bodiesKept, log } = deps
  return {
    async keepBody(instanceId, jobId, body) {
      if (bodiesKept === 0) return
      await redis.xadd(eventBodiesKey(prefix, instanceId), 'MAXLEN', '~', bodiesKept, '*', 'jobId', jobId, 'body', body).catch((error: Error) => {
        log.debug({ jobId, err: error.message }, 'event body not kept')
      })
    },
    async append(instanceId, line) {
      const fields: string[] = []
      for (const [name, value] of Object.entries(line)) {
        if (value !== undefined) fields.push(name, typeof value === 'object' ? JSON.stringify(value) : String(value))
      }
      return redis.xadd(eventLogKey(prefix, instanceId), 'MAXLEN', '~', maxLen, '*', ...fields).then(
        () => true,
        (error: Error) => {
          log.warn({ jobId: line.jobId, kind: line.kind, err: error.message }, 'event log line lost')
          return false
        },
      )
    },
  }
}
