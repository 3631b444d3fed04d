import type { Redis } from 'ioredis'
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { instanceRateLimit, type Config, type InstanceRateLimit } from '../config/config.ts'
import { RateLimited } from '../errors.ts'
import type { Instances } from '../config/instances.ts'
import type { InstanceConfig } from '../config/instances-schema.ts'
import { createOutageReporter, type Log, type OutageReporter } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { RedisBreaker } from '../redis/breaker.ts'
import { atMost, defineScript } from '../redis/connections.ts'
import { groupCommit } from '../redis/group-commit.ts'
import type { AcceptBatcher } from '../queue/accept-batch.ts'
import { LANE_TTL_MS, type DedupeLock } from '../queue/enqueue.ts'
import { spreadPrefix } from '../queue/names.ts'
import { MemoryTokenBucket, type BucketParams } from './memory-bucket.ts'
import { TokenLeases } from './token-lease.ts'
import tokenBucketScript from './token-bucket.lua' with { type: 'text' }

/** Which bucket refused: per-IP ones by route class, or the instance's own. */
export type KeyClass = 'ip_webhook' | 'ip_other' | 'ip_admin' | 'instance'
export type RouteClass = 'webhook' | 'admin' | 'other'

/** What one take left, for the RateLimit-* headers; `delayMs` > 0 when the work is shaped (delayed) instead. */
export interface LimitResult {
  limit: number
  remaining: number
  resetSeconds: number
  delayMs: number
}

export interface Limiter {
  /** The per-IP bucket of a route class: everything but authenticated webhooks. Throws RateLimited. */
  takeForIp(routeClass: RouteClass, ip: string): Promise<LimitResult | null>
  /**
   * The instance's bucket (per instance and client IP) for its authenticated webhooks. Throws RateLimited. Given the
   * event's dedupe lock, takes it in the same Redis command when the token is granted (if the lock shares the bucket's
   * hash tag: one queue shard), with the event's job when the lock carries it and the token is not shaped, and records
   * both in the lock.
   */
  takeForInstance(instanceId: string, ip: string, lock?: DedupeLock): Promise<LimitResult | null>
}

interface Deps {
  config: Config['rateLimit']
  /** The Redis key prefix; bucket keys keep its hash tag, as the dedupe lock taken beside them must share their slot. */
  keyPrefix: string
  redis: Redis
  instances: Instances
  log: Log
  metrics: Metrics
  /** Whether to try Redis at all, and told how each try went. */
  breaker: RedisBreaker
  /** How long a bucket waits for Redis before it decides in memory (REDIS_ENQUEUE_BUDGET_MS). */
  budgetMs: number
  /** Takes a webhook's token with its lock and queues its job, with the other events accepted meanwhile. */
  batcher: AcceptBatcher
}

const DISABLED: Limiter = { takeForIp: async () => null, takeForInstance: async () => null }

/** Every bucket is built here (an instance's on first use); a request only picks one and takes a token (one auto-pipelined round trip). */
export function createLimiter(deps: Deps): Limiter {
  const { config, log, metrics } = deps
  if (!config.enabled) return DISABLED
  // The per-IP buckets spread over a Cluster's slots; an instance's buckets share the queues' hash tag, since their
  // script also takes the event's dedupe lock.
  const spread = `${spreadPrefix(deps.keyPrefix)}:rl`
  const tagged = `${deps.keyPrefix}:rl`
  const { redis } = deps
  // token-bucket.lua with the bucket, the dedupe lock's keys and the lanes (a lock asked for without its job).
  const takeToken = defineScript(redis, tokenBucketScript) as TakeToken
  const takeEach = defineScript(redis, takeEachScript)
  // Takes of one bucket (with the same parameters) that arrive while another is out go together, in one call: with
  // several queue shards, an instance's token is not taken with its event's lock, and this is a script per webhook.
  // A steady stream of them takes tokens ahead (token-lease.ts): a call per LEASE_MS rather than per webhook.
  const leases = new TokenLeases()
  const takeTogether = groupCommit<string, BucketTake, BucketAnswer>({
    budgetMs: deps.budgetMs,
    max: MAX_TAKES_PER_CALL,
    async send(bucket, takes) {
      const { key, args } = takes[0]!
      const capacity = args[1]!
      // Takes that waited for the call before may be answered by what it took ahead.
      const answers: BucketAnswer[] = []
      for (let leased; answers.length < takes.length && (leased = leases.spend(bucket, capacity)); ) answers.push(leased)
      if (answers.length === takes.length) return answers
      const [each, leased, left] = (await takeEach(1)(key, ...args, takes.length - answers.length, leases.wanted(bucket))) as TakeEachAnswer
      leases.granted(bucket, leased, left)
      return [...answers, ...each.map(bucketAnswer)]
    },
  })
  const takeTokens = (take: BucketTake) => {
    const bucket = `${take.key} ${take.args.join(' ')}`
    leases.demanded(bucket)
    const leased = leases.spend(bucket, take.args[1]!)
    return leased ? Promise.resolve(leased) : takeTogether(bucket, take)
  }
  const redisState = createOutageReporter(log, {}, {
    down: 'rate limiter: Redis unavailable; limiting per process in memory until it is back',
    up: 'rate limiter: Redis is back; limits are fleet-wide again',
  })
  const bucket = (keyPrefix: string, params: BucketParams) => ({
    params,
    limiter: new RedisTokenBucket(redis, { takeToken, takeTokens, batcher: deps.batcher }, params, keyPrefix, redisState, deps.breaker, deps.budgetMs),
  })

  const ipBuckets = {
    webhook: { keyClass: 'ip_webhook' as const, ...bucket(`${spread}:ip-webhook`, plain(config.ip)) },
    other: { keyClass: 'ip_other' as const, ...bucket(`${spread}:ip-other`, plain(config.ip)) },
    admin: { keyClass: 'ip_admin' as const, ...bucket(`${spread}:ip-admin`, plain(config.admin)) },
  }
  // Keyed by the instance's config object: a reload that changes an instance's limit gets a new bucket object (its
  // state in Redis carries on under the same key).
  const instanceBuckets = new WeakMap<InstanceConfig, ReturnType<typeof bucket>>()
  function instanceBucket(instanceId: string) {
    const instance = deps.instances.get(instanceId)
    if (!instance) return undefined
    let chosen = instanceBuckets.get(instance.config)
    if (!chosen) {
      chosen = bucket(`${tagged}:instance:${instance.id}`, shaping(instanceRateLimit(config.instance, instance.config), config.maxShapeDelayMs))
      instanceBuckets.set(instance.config, chosen)
    }
    return chosen
  }

  function take(
    chosen: ReturnType<typeof bucket>,
    key: string,
    keyClass: KeyClass,
    instance: string,
    options?: TakeOptions,
  ): Promise<LimitResult | null> {
    const { capacity, ratePerSecond } = chosen.params
    return chosen.limiter.consume(key, 1, options).then(
      (res) => ({
        limit: capacity,
        remaining: res.remainingPoints,
        resetSeconds: Math.ceil((capacity - res.remainingPoints) / ratePerSecond + res.msBeforeNext / 1000),
        delayMs: res.msBeforeNext,
      }),
      (refusal) => {
        if (!(refusal instanceof RateLimiterRes)) {
          log.error({ err: (refusal as Error).message }, 'rate limiter failed; letting the request through')
          return null
        }
        metrics.rateLimited.inc({ class: keyClass, instance })
        const retryAfter = Math.max(1, Math.ceil(refusal.msBeforeNext / 1000))
        throw new RateLimited(retryAfter, rateLimitHeaders({ limit: capacity, remaining: 0, resetSeconds: retryAfter, delayMs: 0 }))
      },
    )
  }

  return {
    takeForIp(routeClass, ip) {
      const chosen = ipBuckets[routeClass]
      return take(chosen, keyOf(ip), chosen.keyClass, '')
    },
    takeForInstance(instanceId, ip, lock) {
      const chosen = instanceBucket(instanceId)
      // With several queue shards the lock is on its shard's slot, not the bucket's: the enqueue takes it then.
      const sameSlot = lock?.shard.prefix === deps.keyPrefix
      return chosen ? take(chosen, keyOf(ip), 'instance', instanceId, sameSlot ? { lock } : undefined) : Promise.resolve(null)
    },
  }
}

export function rateLimitHeaders(result: LimitResult): Record<string, string> {
  return {
    'ratelimit-limit': String(result.limit),
    'ratelimit-remaining': String(result.remaining),
    'ratelimit-reset': String(result.resetSeconds),
  }
}

/** An IPv6 client is keyed by its /64: one subscriber usually holds a whole /64, and must not get a bucket per address. */
export function keyOf(ip: string): string {
  if (!ip.includes(':')) return ip
  const [head = '', tail] = ip.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const width = (groups: string[]) => groups.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0)
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - width(left) - width(right)).fill('0'), ...right]
  return `${groups.slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`
}

function plain(limit: { perSecond: number; burst: number }): BucketParams {
  return { capacity: limit.burst, ratePerSecond: limit.perSecond, ceilingPerSecond: 0, maxDelayMs: 0 }
}

function shaping(limit: InstanceRateLimit, maxShapeDelayMs: number): BucketParams {
  return {
    capacity: limit.burst,
    ratePerSecond: limit.perSecond,
    ceilingPerSecond: limit.ceilingPerSecond,
    maxDelayMs: limit.policy === 'shape' ? maxShapeDelayMs : 0,
  }
}

/** What a consume may carry to the bucket's script: rate-limiter-flexible hands its options through to `_upsert`. */
interface TakeOptions {
  lock?: DedupeLock
}

type TakeToken = (numberOfKeys: number) => (...keysAndArgs: (string | number | Buffer)[]) => Promise<[number, number, number?]>

/** A take of a bucket alone: its key and token-bucket.lua's five arguments (take, capacity, rate, ceiling, longest shaping delay). */
interface BucketTake {
  key: string
  args: number[]
}

/** The most takes of one bucket a call carries. */
const MAX_TAKES_PER_CALL = 64

/**
 * token-bucket.lua on one bucket, ARGV[6] times: a call's takes (one, or those that waited for it), in order. Then
 * ARGV[7] tokens taken ahead (token-lease.ts), only if the bucket keeps half its capacity and of its ceiling after.
 * Returns { answers, tokens taken ahead, whole tokens left }.
 */
const takeEachScript = `
local function takeToken(KEYS, ARGV)
${tokenBucketScript}
end
local answers = {}
for i = 1, tonumber(ARGV[6]) do answers[i] = takeToken(KEYS, ARGV) end
local tokens, ceiling = struct.unpack('ddd', redis.call('GET', KEYS[1]))
local ahead = tonumber(ARGV[7])
local ceilingCapacity = tonumber(ARGV[4])
if ahead > 0 and tokens - ahead >= tonumber(ARGV[2]) / 2 and (ceilingCapacity == 0 or ceiling - ahead >= ceilingCapacity / 2) then
  takeToken(KEYS, { ahead, ARGV[2], ARGV[3], ARGV[4], ARGV[5] })
  tokens = tokens - ahead
else
  ahead = 0
end
return { answers, ahead, math.floor(tokens) }
`
type TakeEachAnswer = [[number, number][], number, number]

/** What a take answered: the bucket's two numbers and, when the lock was asked for, whether it is this request's. */
type BucketAnswer = { consumed: number; msBeforeNext: number; locked?: boolean; queued?: boolean }

function bucketAnswer([consumed, msBeforeNext, locked]: [number, number, number?]): BucketAnswer {
  return { consumed, msBeforeNext, locked: locked === undefined ? undefined : locked === 1 }
}

const REDIS_UNUSABLE = new Error('Redis is down, or too slow (its breaker is open)')
const TOO_SLOW = new Error('Redis did not answer within REDIS_ENQUEUE_BUDGET_MS')

/**
 * rate-limiter-flexible's Redis limiter with token-bucket.lua as its store call. Its `customIncrTtlLuaScript` would
 * hand the script only the key, points, TTL and fixed-window settings; a bucket needs its rate, ceiling, shaping bound
 * and, for webhooks, the dedupe lock's keys, so `_upsert` (the one store call of a consume) runs it with those. All
 * around it is the library's: results, refusals, in-memory blocking of refused keys without a round trip, and the
 * insurance limiter (the same bucket in memory) when Redis fails.
 */
class RedisTokenBucket extends RateLimiterRedis {
  constructor(
    redis: Redis,
    private readonly scripts: { takeToken: TakeToken; takeTokens: (take: BucketTake) => Promise<BucketAnswer>; batcher: AcceptBatcher },
    readonly params: BucketParams,
    keyPrefix: string,
    private readonly redisState: OutageReporter,
    private readonly breaker: RedisBreaker,
    private readonly budgetMs: number,
  ) {
    super({
      storeClient: redis,
      keyPrefix,
      points: params.capacity,
      duration: 1,
      inMemoryBlockOnConsumed: params.capacity + 1,
      insuranceLimiter: new MemoryTokenBucket(params),
    })
  }

  /** Called by the library for every consume (its signature: key, points, msDuration, forceExpire, options). */
  async _upsert(key: string, take: number, _msDuration?: number, _forceExpire?: boolean, options?: TakeOptions): Promise<[number, number]> {
    if (!this.breaker.usable()) {
      this.redisState.down(REDIS_UNUSABLE.message)
      throw REDIS_UNUSABLE
    }
    const { capacity, ratePerSecond, ceilingPerSecond, maxDelayMs } = this.params
    const lock = options?.lock
    const bucketArgs = [take, capacity, ratePerSecond, ceilingPerSecond, maxDelayMs]
    const { takeToken, takeTokens, batcher } = this.scripts
    let call: Promise<BucketAnswer>
    if (!lock) call = takeTokens({ key, args: bucketArgs })
    else if (lock.add) call = batcher.accept({ lock, add: lock.add, bucket: { key, args: bucketArgs } })
    else {
      const keys = [key, lock.key, lock.jobKey, ...lock.lanes]
      call = takeToken(keys.length)(...keys, ...bucketArgs, lock.ttlMs, lock.owner, lock.jobId, LANE_TTL_MS).then(bucketAnswer)
    }
    // Past the budget the request goes on without Redis (this bucket in memory); a late answer changes nothing but
    // may leave the lock taken for this request's owner (and its job queued), which its enqueue or its spooled replay
    // finds.
    const answer = await atMost(this.budgetMs, call)
    if (!answer) {
      this.breaker.failed()
      this.redisState.down(TOO_SLOW.message)
      throw TOO_SLOW
    }
    this.breaker.succeeded()
    this.redisState.up()
    const { consumed, msBeforeNext, locked, queued } = answer
    if (lock && locked !== undefined) {
      lock.locked = locked
      lock.queued = queued === true
    }
    return [consumed, msBeforeNext]
  }
}
