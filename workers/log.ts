import type { Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config.ts'
import { eventLogKey, type LogJobData } from '../src/queue/names.ts'

/** The `log` queue: append one line to the instance's event log, a Redis Stream capped (approximately) at its length. */
export function createLogProcessor(deps: { config: Config; redis: Redis }) {
  const { config, redis } = deps
  return async function processLog(job: Job<LogJobData>): Promise<void> {
    const { instanceId, ...line } = job.data
    const fields = Object.entries(line).flatMap(([name, value]) =>
      value === undefined ? [] : [name, typeof value === 'object' ? JSON.stringify(value) : String(value)],
    )
    await redis.xadd(eventLogKey(config.queue.prefix, instanceId), 'MAXLEN', '~', config.workers.eventLogMaxLen, '*', ...fields)
  }
}
