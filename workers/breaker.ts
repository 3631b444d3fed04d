import type { Redis } from 'ioredis'
import type { BreakerConfig } from '../src/config/config.ts'
import type { Log } from '../src/log.ts'
import { breakerKey, destinationId } from '../src/queue/names.ts'
import { defineScript } from '../src/redis/connections.ts'
import allowScript from './breaker-allow.lua' with { type: 'text' }
import recordScript from './breaker-record.lua' with { type: 'text' }

export type Permission = { allowed: true } | { allowed: false; waitMs: number }

export interface Breaker {
  /** Synchronous while this process's view is fresh: the caller's next Redis command can share its round trip. */
  allow(destinationUrl: string, owner: string, probeTimeoutMs: number): Permission | Promise<Permission>
  /** `owner`: the one given to allow() for this attempt. True when this outcome opened the breaker. */
  record(destinationUrl: string, succeeded: boolean, owner: string): Promise<boolean>
}

type BreakerAnswer = Promise<[number, number, number, number]>

/** Failures count as consecutive across retries spaced this far apart; an idle breaker is forgotten after it. */
const KEEP_IDLE_BREAKER_MS = 60 * 60_000
/**
 * How long a process trusts what it last heard of a breaker. Measured on the pipeline benchmark: asking Redis before
 * every delivery and recording every success were two of the ~12 scripts an event cost. Now a closed breaker costs
 * one script per destination per process per interval; the price is that a breaker opened by another process is
 * seen here up to this much later.
 */
export const BREAKER_SYNC_MS = 1000

const ALLOWED: Permission = { allowed: true }

/** What this process last heard of one destination's breaker. */
interface Known {
  key: string
  failures: number
  /** Open or half-open: anything but closed. */
  tripped: boolean
  /** While open: when, on this process's clock, its open time is up. */
  openUntil: number
  /** Until when the view may be used without asking Redis; 0 when Redis must be asked (half-open). */
  freshUntil: number
}

/**
 * Per-destination circuit breakers whose state lives in Redis, so every worker of the fleet sees the same one. Each
 * process keeps the last answer for BREAKER_SYNC_MS: a healthy destination's deliveries then cost Redis nothing here,
 * while failures are always counted in Redis and the half-open probe is always given out by it (one at a time).
 */
export function createBreaker(deps: { redis: Redis; prefix: string; config: BreakerConfig; log: Log }): Breaker {
  const { config, log } = deps
  const breakerAllow = defineScript(deps.redis, allowScript)(1) as (key: string, owner: string, probeTimeoutMs: number) => BreakerAnswer
  const breakerRecord = defineScript(deps.redis, recordScript)(1) as (...keyAndArgs: (string | number)[]) => BreakerAnswer
  const known = new Map<string, Known>()

  function knownOf(url: string): Known {
    const id = destinationId(url)
    let entry = known.get(id)
    if (!entry) {
      entry = { key: breakerKey(deps.prefix, url), failures: 0, tripped: false, openUntil: 0, freshUntil: 0 }
      known.set(id, entry)
    }
    return entry
  }

  function learn(entry: Known, failures: number, tripped: boolean, openForMs: number): void {
    const now = Date.now()
    entry.failures = failures
    entry.tripped = tripped
    entry.openUntil = now + openForMs
    // Closed, the answer holds for a while; open, until its open time is up at most; half-open, only Redis can hand
    // out the probe, so it is asked every time.
    if (!tripped) entry.freshUntil = now + BREAKER_SYNC_MS
    else entry.freshUntil = openForMs > 0 ? now + Math.min(BREAKER_SYNC_MS, openForMs) : 0
  }

  async function ask(entry: Known, owner: string, probeTimeoutMs: number): Promise<Permission> {
    const [allowed, waitMs, failures, probe] = await breakerAllow(entry.key, owner, probeTimeoutMs)
    if (probe === 1) learn(entry, failures, true, 0)
    else learn(entry, failures, allowed !== 1, allowed === 1 ? 0 : waitMs)
    return allowed === 1 ? ALLOWED : { allowed: false, waitMs }
  }

  return {
    allow(url, owner, probeTimeoutMs) {
      const entry = knownOf(url)
      const now = Date.now()
      if (now >= entry.freshUntil) return ask(entry, owner, probeTimeoutMs)
      return entry.tripped ? { allowed: false, waitMs: Math.max(1, entry.openUntil - now) } : ALLOWED
    },
    async record(url, succeeded, owner) {
      const entry = knownOf(url)
      // The common case: a success while this process knows of no failure has nothing to reset.
      if (succeeded && !entry.tripped && entry.failures === 0) return false
      const [opened, failures, tripped, openForMs] = await breakerRecord(
        entry.key,
        succeeded ? 1 : 0,
        config.failureThreshold,
        config.openMs,
        KEEP_IDLE_BREAKER_MS,
        owner,
      )
      learn(entry, failures, tripped === 1, openForMs)
      if (opened === 1) log.warn({ host: new URL(url).host, openMs: config.openMs }, 'destination breaker opened; its deliveries wait')
      return opened === 1
    },
  }
}
