import type { Redis } from 'ioredis'
import type { Log } from '../log.ts'
import { eventLogKey, type EventLogLine } from './names.ts'

export interface EventLog {
  /**
   * Appends a line to the instance's log; false when it could not be written. Never throws: a lost line is logged, and
   * must not send an event round again.
   */
  append(instanceId: string, line: EventLogLine): Promise<boolean>
}

/**
 * Each instance's event log: a Redis Stream capped (approximately, so trimming is cheap) at EVENT_LOG_MAX_LEN entries,
 * written where the event happens. One XADD a line: a BullMQ job per line cost six scripts (add, fetch, finish, twice).
 */
export function createEventLog(deps: { redis: Redis; prefix: string; maxLen: number; log: Log }): EventLog {
  const { redis, prefix, maxLen, log } = deps
  return {
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
