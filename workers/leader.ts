import type { Redis } from 'ioredis'
import { randomUUID } from 'node:crypto'
import type { Log } from '../src/log.ts'
import releaseScript from '../src/queue/release-lock.lua' with { type: 'text' }
import leaseScript from './leader-lease.lua' with { type: 'text' }

/** A periodic fleet-wide duty; it gets the fencing token of the leadership it runs under. */
export type Duty = (fencingToken: number) => Promise<void>

export interface Leadership {
  isLeader(): boolean
  stop(): Promise<void>
}

type LeaseCommand = Redis & {
  leaderLease(lease: string, counter: string, owner: string, ttlMs: number): Promise<[number, number]>
  releaseLock(key: string, owner: string): Promise<number>
}

/**
 * Exactly one process of the fleet runs `duties` every `dutyIntervalMs`: the holder of a lease in Redis, renewed every
 * third of its length. When the leader dies its lease runs out and another process takes over within one lease.
 */
export function runWhileLeader(deps: { redis: Redis; prefix: string; leaseMs: number; dutyIntervalMs: number; duties: Duty[]; log: Log }): Leadership {
  const { leaseMs, dutyIntervalMs, duties, log } = deps
  const redis = deps.redis as LeaseCommand
  redis.defineCommand('leaderLease', { numberOfKeys: 2, lua: leaseScript })
  redis.defineCommand('releaseLock', { numberOfKeys: 1, lua: releaseScript })
  const owner = `${process.pid}:${randomUUID()}`
  const [lease, counter] = [`${deps.prefix}:leader`, `${deps.prefix}:leader:token`]
  let token = 0
  let lastDuty = 0
  let running: Promise<void> | undefined

  async function tick() {
    const [held, newToken] = await redis.leaderLease(lease, counter, owner, leaseMs).catch(() => [0, 0] as [number, number])
    if (held && newToken) {
      token = newToken
      log.info({ fencingToken: token }, 'became leader; running fleet duties')
    } else if (!held && token) {
      log.warn({ fencingToken: token }, 'lost leadership')
      token = 0
    }
    if (token && Date.now() - lastDuty >= dutyIntervalMs && !running) {
      lastDuty = Date.now()
      running = Promise.all(duties.map((duty) => duty(token).catch((error: Error) => log.error({ err: error.message }, 'fleet duty failed'))))
        .then(() => {})
        .finally(() => (running = undefined))
    }
  }

  void tick()
  const timer = setInterval(() => void tick(), Math.max(100, Math.floor(leaseMs / 3)))
  return {
    isLeader: () => token > 0,
    async stop() {
      clearInterval(timer)
      await running
      // Hand over at once rather than after the lease runs out.
      if (token) await redis.releaseLock(lease, owner).catch(() => {})
      token = 0
    },
  }
}
