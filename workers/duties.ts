import type { Redis } from 'ioredis'
import type { Config } from '../src/config/config.ts'
import type { Instances } from '../src/config/instances.ts'
import type { Log } from '../src/log.ts'
import { eventLogKey } from '../src/queue/names.ts'
import type { Queues } from '../src/queue/queues.ts'
import type { Duty } from './leader.ts'

/**
 * The fleet's periodic duties, run by the leader only. Locks, breakers and batches expire by themselves (each key has a
 * TTL); what needs a sweep is the event logs, which appends trim only approximately.
 */
export function fleetDuties(deps: { config: Config; instances: Instances; redis: Redis; queues: Queues; log: Log }): Duty[] {
  const { config, instances, redis, queues, log } = deps
  let drained = false
  return [
    /**
     * While REDIS_QUEUE_SHARDS_DRAINING is set: says, once, when the old shards have nothing left to run. Old shards
     * that are among the new ones (their hash tags can coincide) are served as new ones: none left is empty at once.
     */
    async function watchDrainingShards() {
      if (!config.queue.drainingShards || drained) return
      const counts = await Promise.all(
        queues.draining.flatMap((shard) => [shard.webhook, shard.delivery, shard.chatwootNote]).map((queue) => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')),
      )
      const left = counts.reduce((sum, c) => sum + c.waiting! + c.active! + c.delayed! + c.prioritized!, 0)
      const failed = counts.reduce((sum, c) => sum + c.failed!, 0)
      if (left > 0) {
        log.info({ left, failed }, 'draining queue shards: jobs left')
        return
      }
      drained = true
      log.info({ failed }, 'draining queue shards are empty: REDIS_QUEUE_SHARDS_DRAINING can be removed (replay their failed deliveries first, if any)')
    },
    async function trimEventLogs(fencingToken) {
      let trimmed = 0
      for (const instance of instances.list()) {
        trimmed += await redis.xtrim(eventLogKey(config.queue.prefix, instance.id), 'MAXLEN', config.workers.eventLogMaxLen)
      }
      if (trimmed > 0) log.info({ trimmed, fencingToken }, 'event logs trimmed')
    },
  ]
}
