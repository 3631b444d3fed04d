import type { Redis } from 'ioredis'
import type { Instance } from '../config/instances.ts'
import { breakerKey, destinationId } from '../queue/names.ts'

export interface BreakerView {
  /** The destination's URL without its query (which may hold a secret). */
  destination: string
  host: string
  /** Instances with a route to it. */
  instances: string[]
  /** `open`: deliveries wait; `half_open`: one probe may go; `closed`: deliveries go. */
  state: 'closed' | 'open' | 'half_open'
  /** Consecutive failed deliveries. */
  failures: number
  /** While open: ms until a probe may go. */
  openForMs: number
}

/** Every configured destination's breaker, as the workers share it in Redis (workers/breaker.ts). */
export async function breakerStates(redis: Redis, prefix: string, instances: readonly Instance[]): Promise<BreakerView[]> {
  const destinations = new Map<string, { url: string; instances: Set<string> }>()
  for (const instance of instances) {
    for (const route of instance.config.routes ?? []) {
      const id = destinationId(route.destination.url)
      const entry = destinations.get(id) ?? { url: route.destination.url, instances: new Set() }
      entry.instances.add(instance.id)
      destinations.set(id, entry)
    }
  }
  const now = Date.now()
  return Promise.all(
    [...destinations].map(async ([id, { url, instances: users }]) => {
      const [failures, openUntil] = await redis.hmget(breakerKey(prefix, url), 'failures', 'openUntil')
      const until = Number(openUntil ?? 0)
      const state = until === 0 ? 'closed' : now < until ? 'open' : 'half_open'
      return { destination: id, host: new URL(id).host, instances: [...users], state, failures: Number(failures ?? 0), openForMs: Math.max(0, until - now) } as BreakerView
    }),
  )
}

/**
 * Closes a destination's breaker: the next delivery goes (a probe, in effect), and what waited on it goes within a
 * second (each worker's view of a breaker is trusted that long). Undefined when no route has that destination.
 */
export async function closeBreaker(redis: Redis, prefix: string, instances: readonly Instance[], destination: string): Promise<BreakerView | undefined> {
  const found = (await breakerStates(redis, prefix, instances)).find((b) => b.destination === destination || b.host === destination)
  if (!found) return undefined
  await redis.del(breakerKey(prefix, found.destination))
  return { ...found, state: 'closed', failures: 0, openForMs: 0 }
}
