/** How long tokens taken ahead stay this process's to spend; unspent ones are dropped then (never given back). */
export const LEASE_MS = 50
/** The most tokens taken ahead in one call. */
const MAX_LEASE = 64
/**
 * Past this many buckets (per-IP buckets come and go) every lease is dropped: a dropped lease only leaves a few tokens
 * unspent, and the map stays bounded however many clients come at once.
 */
const MAX_BUCKETS = 4096

interface Lease {
  /** Tokens taken ahead and not yet spent. */
  tokens: number
  /** Until when they may be spent (performance.now()). */
  until: number
  /** The bucket's whole tokens left in Redis when they were taken. */
  left: number
  /** Takes since the last call to Redis, and when that call went: this process's recent demand. */
  demand: number
  since: number
}

/**
 * Tokens an API process takes from a bucket ahead of its requests, while the bucket is well stocked, so that a steady
 * stream of requests costs a call to Redis per LEASE_MS instead of one per request (with several queue shards an
 * instance's token is a script of its own: on a Redis Cluster this was a script per webhook). How many: this
 * process's demand of the last call's interval, scaled to LEASE_MS, at most MAX_LEASE; the bucket's script grants them
 * only if it keeps at least half its capacity (and of its ceiling) after: near its limit every take is Redis's again,
 * exactly as one by one. Nothing is admitted beyond what the bucket allows (a token is taken before it is spent); at
 * worst a few tokens of a well-stocked bucket go unspent, and another API process may be refused while this one
 * holds some (at most LEASE_MS of its demand).
 */
export class TokenLeases {
  private readonly leases = new Map<string, Lease>()

  /** Counts a take of the bucket `group` (once per request). */
  demanded(group: string): void {
    let lease = this.leases.get(group)
    if (!lease) {
      if (this.leases.size >= MAX_BUCKETS) this.leases.clear()
      this.leases.set(group, (lease = { tokens: 0, until: 0, left: 0, demand: 0, since: performance.now() }))
    }
    lease.demand++
  }

  /** A token of this process's lease, as the bucket's answer (`consumed` out of `capacity`); undefined when it holds none. */
  spend(group: string, capacity: number): { consumed: number; msBeforeNext: number } | undefined {
    const lease = this.leases.get(group)
    if (!lease || lease.tokens === 0 || performance.now() >= lease.until) return undefined
    lease.tokens--
    return { consumed: capacity - lease.left - lease.tokens, msBeforeNext: 0 }
  }

  /** How many tokens a call to Redis for `group` should take ahead; starts a new demand interval. */
  wanted(group: string): number {
    const lease = this.leases.get(group)
    if (!lease) return 0
    const now = performance.now()
    const perMs = lease.demand / Math.max(LEASE_MS, now - lease.since)
    lease.demand = 0
    lease.since = now
    return Math.min(MAX_LEASE, Math.floor(perMs * LEASE_MS))
  }

  /** What the call took ahead, and the bucket's whole tokens left after it. */
  granted(group: string, tokens: number, left: number): void {
    const lease = this.leases.get(group)
    if (!lease) return
    lease.tokens = tokens
    lease.left = left
    lease.until = performance.now() + LEASE_MS
  }
}
