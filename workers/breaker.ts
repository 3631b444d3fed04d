import type { Redis } from 'ioredis'
import { createHash } from 'node:crypto'
import type { BreakerConfig } from '../src/config.ts'
import type { Log } from '../src/log.ts'
import { destinationId, spreadPrefix } from '../src/queue/names.ts'
import allowScript from './breaker-allow.lua' with { type: 'text' }
import recordScript from './breaker-record.lua' with { type: 'text' }

export type Permission = { allowed: true } | { allowed: false; waitMs: number }

export interface Breaker {
  allow(destinationUrl: string, owner: string, probeTimeoutMs: number): Promise<Permission>
  /** `owner`: the one given to allow() for this attempt. True when this outcome opened the breaker. */
  record(destinationUrl: string, succeeded: boolean, owner: string): Promise<boolean>
}

type BreakerCommands = Redis & {
  breakerAllow(key: string, owner: string, probeTimeoutMs: number): Promise<[number, number]>
  breakerRecord(key: string, succeeded: number, threshold: number, openMs: number, keepMs: number, owner: string): Promise<number>
}

/** Failures count as consecutive across retries spaced this far apart; an idle breaker is forgotten after it. */
const KEEP_IDLE_BREAKER_MS = 60 * 60_000

/** Per-destination circuit breakers whose state lives in Redis, so every worker of the fleet sees the same one. */
export function createBreaker(deps: { redis: Redis; prefix: string; config: BreakerConfig; log: Log }): Breaker {
  const { config, log } = deps
  const redis = deps.redis as BreakerCommands
  redis.defineCommand('breakerAllow', { numberOfKeys: 1, lua: allowScript })
  redis.defineCommand('breakerRecord', { numberOfKeys: 1, lua: recordScript })
  const keyOf = (url: string) => `${spreadPrefix(deps.prefix)}:breaker:${createHash('sha256').update(destinationId(url)).digest('hex').slice(0, 24)}`

  return {
    async allow(url, owner, probeTimeoutMs) {
      const [allowed, waitMs] = await redis.breakerAllow(keyOf(url), owner, probeTimeoutMs)
      return allowed === 1 ? { allowed: true } : { allowed: false, waitMs }
    },
    async record(url, succeeded, owner) {
      const opened = await redis.breakerRecord(keyOf(url), succeeded ? 1 : 0, config.failureThreshold, config.openMs, KEEP_IDLE_BREAKER_MS, owner)
      if (opened === 1) log.warn({ host: new URL(url).host, openMs: config.openMs }, 'destination breaker opened; its deliveries wait')
      return opened === 1
    },
  }
}
