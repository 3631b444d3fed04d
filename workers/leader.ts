import type { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import type { Log } from '../src/log.ts'
import { spreadPrefix } from '../src/queue/names.ts'
import { defineScript, withReleaseLock } from '../src/redis/connections.ts'
import leaseScript from './leader-lease.lua' with { type: 'text' }

/** A periodic fleet-wide duty; it gets the fencing token of the leadership it runs under. */
export type Duty = (fencingToken: number) => Promise<void>

export interface Leadership {
  stop(): Promise<void>
}

/**
 * Exactly one process of the fleet runs `duties` every `dutyIntervalMs`: the holder of a lease in Redis, renewed every
 * third of its length. When the leader dies its lease runs out and another process takes over within one lease.
 */
export function runWhileLeader(deps: {
  redis: Redis
  prefix: string
  leaseMs: number
  dutyIntervalMs: number
  duties: Duty[]
  /** Told when this process becomes leader (true) or stops being it (false). */
  onLeadership?: (leader: boolean) => void
  log: Log
}): Leadership {
  const { leaseMs, dutyIntervalMs, duties, onLeadership, log } = deps
  const redis = withReleaseLock(deps.redis)
  const leaderLease = defineScript(redis, leaseScript)(2) as (lease: string, counter: string, owner: string, ttlMs: number) => Promise<number>
  const owner = `${process.pid}:${randomUUID()}`
  // Their own hash tag: one script uses both.
  const tag = `${spreadPrefix(deps.prefix)}:{leader}`
  const [lease, counter] = [tag, `${tag}:token`]
  let token = 0
  let lastDuty = 0
  let duty: Promise<void> | undefined
  let ticking: Promise<void> | undefined
  let stopped = false

  async function tick() {
    // A failed call is no news: the lease, if ours, stays ours until it runs out, and the next tick renews it.
    const held = await leaderLease(lease, counter, owner, leaseMs).catch(() => undefined)
    if (held === undefined || stopped) return
    if (held !== token) {
      if (held) log.info({ fencingToken: held }, 'became leader; running fleet duties')
      else log.warn({ fencingToken: token }, 'lost leadership')
      if (Boolean(held) !== Boolean(token)) onLeadership?.(Boolean(held))
      token = held
    }
    if (token && Date.now() - lastDuty >= dutyIntervalMs && !duty) {
      lastDuty = Date.now()
      duty = Promise.all(duties.map((run) => run(token).catch((error: Error) => log.error({ err: error.message }, 'fleet duty failed'))))
        .then(() => {})
        .finally(() => (duty = undefined))
    }
  }

  const schedule = () => {
    ticking ??= tick().finally(() => (ticking = undefined))
  }
  schedule()
  const timer = setInterval(schedule, Math.max(100, Math.floor(leaseMs / 3)))
  return {
    async stop() {
      stopped = true
      clearInterval(timer)
      await ticking
      await duty
      // Hand over at once rather than after the lease runs out.
      if (token) {
        await redis.releaseLock(lease, `${owner}|${token}`).catch(() => {})
        onLeadership?.(false)
      }
      token = 0
    },
  }
}
