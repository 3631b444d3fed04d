import type { Redis } from 'ioredis'
import { instanceRateLimit, type InstanceRateLimit } from '../config/config.ts'
import type { Instance } from '../config/instances.ts'
import type { Queues } from '../queue/queues.ts'
import { breakerStates } from './breakers.ts'
import { searchEvents } from './events.ts'

export interface InstanceOverview {
  id: string
  /** Events routed in the last minute. */
  eventsPerMinute: number
  /** Deliveries in the last hour: delivered, and failed for good. */
  delivered: number
  failed: number
  /** Receive→deliver over the last hour's deliveries, ms (undefined with none). */
  p95LatencyMs: number | undefined
  /** The last minute's events against the instance's rate limit (perSecond), percent. */
  rateLimitUsePercent: number
  ratePerSecond: number
  /** Hosts of the instance's destinations whose breaker is open or half-open. */
  openBreakers: string[]
  /** Log entries of the last hour that were read; `partial` when the log holds more than one look reads. */
  partial: boolean
}

export interface Overview {
  at: number
  instances: InstanceOverview[]
  queues: Awaited<ReturnType<Queues['depths']>>
}

const HOUR_MS = 3_600_000
const MINUTE_MS = 60_000

/** What the console's overview shows: per instance, from its event log's last hour; the queues; the breakers. */
export async function overview(deps: { redis: Redis; prefix: string; instances: readonly Instance[]; rateDefaults: InstanceRateLimit; queues: Pick<Queues, 'depths'> }): Promise<Overview> {
  const { redis, prefix, instances, rateDefaults, queues } = deps
  const now = Date.now()
  const [depths, breakers, pages] = await Promise.all([
    queues.depths(),
    breakerStates(redis, prefix, instances),
    Promise.all(instances.map((instance) => searchEvents(redis, prefix, { instance: instance.id, since: now - HOUR_MS, limit: Number.MAX_SAFE_INTEGER }))),
  ])
  return {
    at: now,
    queues: depths,
    instances: instances.map((instance, i) => {
      const { events, next } = pages[i]!
      let eventsPerMinute = 0
      let delivered = 0
      let failed = 0
      const latencies: number[] = []
      for (const line of events) {
        if (line.kind === 'routed' && line.at >= now - MINUTE_MS) eventsPerMinute++
        else if (line.kind === 'delivered') {
          delivered++
          if (line.latencyMs !== undefined) latencies.push(line.latencyMs)
        } else if (line.kind === 'delivery_failed') failed++
      }
      const { perSecond } = instanceRateLimit(rateDefaults, instance.config)
      return {
        id: instance.id,
        eventsPerMinute,
        delivered,
        failed,
        p95LatencyMs: percentile(latencies, 0.95),
        rateLimitUsePercent: Math.round((eventsPerMinute / 60 / perSecond) * 100),
        ratePerSecond: perSecond,
        openBreakers: breakers.filter((b) => b.state !== 'closed' && b.instances.includes(instance.id)).map((b) => b.host),
        partial: next !== undefined,
      }
    }),
  }
}

function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = values.sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}
