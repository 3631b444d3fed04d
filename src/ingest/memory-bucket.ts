import { RateLimiterCompatibleAbstract, RateLimiterRes } from 'rate-limiter-flexible'

/** One bucket's settings; see token-bucket.lua for the meaning of each. */
export interface BucketParams {
  capacity: number
  ratePerSecond: number
  /** 0: no ceiling. */
  ceilingPerSecond: number
  /** 0: refuse instead of shaping. */
  maxDelayMs: number
}

interface BucketState {
  tokens: number
  ceiling: number
  at: number
}

/** Past this many keys, idle full buckets are forgotten (they are the same as no bucket). */
const MAX_KEYS = 100_000

/**
 * token-bucket.lua, in this process's memory: rate-limiter-flexible's insurance limiter while Redis is away, so limits
 * (and shaping) keep their meaning per process. Keep the two in step; test/ingest/token-bucket.test.ts runs both.
 */
export class MemoryTokenBucket extends RateLimiterCompatibleAbstract {
  private readonly buckets = new Map<string, BucketState>()

  constructor(
    private readonly params: BucketParams,
    private readonly now: () => number = Date.now,
  ) {
    super()
  }

  // Own fields shadow the base class's throwing accessors; rate-limiter-flexible copies these onto insurance limiters.
  override readonly keyPrefix = ''
  override blockDuration = 0
  override execEvenly = false

  override consume(key: string | number, take = 1): Promise<RateLimiterRes> {
    const [consumed, msBeforeNext] = this.take(String(key), take)
    const res = new RateLimiterRes(Math.max(this.params.capacity - consumed, 0), msBeforeNext, consumed)
    return consumed > this.params.capacity ? Promise.reject(res) : Promise.resolve(res)
  }

  /** Returns [consumed, msBeforeNext] exactly as token-bucket.lua does; read them side by side. */
  take(key: string, take: number): [number, number] {
    const { capacity, ceilingPerSecond } = this.params
    const rate = this.params.ratePerSecond / 1000
    const ceilingRate = ceilingPerSecond / 1000
    const maxDebt = this.params.maxDelayMs * rate
    const now = this.now()
    const state = this.buckets.get(key)
    const elapsed = Math.max(0, now - (state?.at ?? now))
    let tokens = Math.min(capacity, (state?.tokens ?? capacity) + elapsed * rate)
    let ceiling = Math.min(ceilingPerSecond, (state?.ceiling ?? ceilingPerSecond) + elapsed * ceilingRate)

    let result: [number, number]
    if (ceilingRate > 0 && ceiling < take) {
      result = [capacity + 1, Math.ceil((take - ceiling) / ceilingRate)]
    } else if (tokens - take < -maxDebt) {
      result = [capacity + 1, Math.ceil((take - tokens - maxDebt) / rate)]
    } else {
      tokens -= take
      ceiling -= take
      result = tokens >= 0 ? [capacity - Math.floor(tokens), 0] : [capacity, Math.ceil(-tokens / rate)]
    }

    if (!state && this.buckets.size >= MAX_KEYS) this.forgetIdle()
    this.buckets.set(key, { tokens, ceiling, at: now })
    return result
  }

  private forgetIdle(): void {
    const now = this.now()
    const refillMs = (this.params.capacity + this.params.maxDelayMs * (this.params.ratePerSecond / 1000)) / (this.params.ratePerSecond / 1000)
    for (const [key, state] of this.buckets) if (now - state.at > refillMs) this.buckets.delete(key)
    if (this.buckets.size >= MAX_KEYS) this.buckets.clear()
  }
}
