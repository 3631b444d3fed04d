import type { Redis } from 'ioredis'
import type { Config } from '../src/config.ts'
import type { Instances } from '../src/instances.ts'
import type { Log } from '../src/log.ts'
import { eventLogKey } from '../src/queue/names.ts'
import type { Duty } from './leader.ts'

/**
 * The fleet's periodic duties, run by the leader only. Locks, breakers and batches expire by themselves (each key has a
 * TTL); what needs a sweep is the event logs, which appends trim only approximately.
 */
export function fleetDuties(deps: { config: Config; instances: Instances; redis: Redis; log: Log }): Duty[] {
  const { config, instances, redis, log } = deps
  return [
    async function trimEventLogs(fencingToken) {
      let trimmed = 0
      for (const instance of instances.list()) {
        trimmed += await redis.xtrim(eventLogKey(config.queue.prefix, instance.id), 'MAXLEN', config.workers.eventLogMaxLen)
      }
      if (trimmed > 0) log.info({ trimmed, fencingToken }, 'event logs trimmed')
    },
  ]
}
