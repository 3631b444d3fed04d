import type { Redis } from 'ioredis'
import type { Log } from '../log.ts'
import { atMost } from './connections.ts'

/** Consecutive failed or too-slow Redis calls that open the breaker. */
const FAILURES_TO_OPEN = 3
/** How long an open breaker keeps requests off Redis before one request probes it again. */
const OPEN_MS = 1000

export interface RedisBreaker {
  /** May this request use Redis? False while the connection is down or the breaker open (one probe gets true). */
  usable(): boolean
  succeeded(): void
  failed(): void
  /** Down: the connection is not ready, or the breaker is open. */
  state(): 'up' | 'down'
  /** When the breaker is open and due a probe, pings Redis (no request may come along to probe it). */
  probe(): Promise<void>
}

/**
 * The API's circuit breaker around Redis: while Redis is down, failing over or too slow, requests go straight to the
 * spool instead of each paying a timeout. After OPEN_MS one request probes; its success closes the breaker.
 */
export function createRedisBreaker(deps: { redis: Redis; budgetMs: number; log: Log }): RedisBreaker {
  const { redis, budgetMs, log } = deps
  let failures = 0
  let openUntil = 0
  let probing = false

  const breaker: RedisBreaker = {
    usable() {
      if (redis.status !== 'ready') return false
      if (openUntil === 0) return true
      if (probing || Date.now() < openUntil) return false
      probing = true
      return true
    },
    succeeded() {
      if (openUntil !== 0) log.warn('redis breaker closed: requests use Redis again')
      failures = 0
      openUntil = 0
      probing = false
    },
    failed() {
      failures++
      probing = false
      if (failures >= FAILURES_TO_OPEN) {
        if (openUntil === 0) log.error({ failures }, 'redis breaker opened: accepted events go to the spool')
        openUntil = Date.now() + OPEN_MS
      }
    },
    state: () => (redis.status === 'ready' && openUntil === 0 ? 'up' : 'down'),
    async probe() {
      if (openUntil === 0 || !breaker.usable()) return
      if ((await atMost(budgetMs, redis.ping())) === 'PONG') breaker.succeeded()
      else breaker.failed()
    },
  }
  return breaker
}
