import { createHash } from 'node:crypto'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { RedisConfig } from '../config/config.ts'
import { createOutageReporter, type Log } from '../log.ts'
import releaseScript from '../queue/release-lock.lua' with { type: 'text' }
import { giveTracingChannelHasSubscribers } from './tracing-channel.ts'

/**
 * What a connection is for decides how it fails:
 * - `producer`: BullMQ `Queue.add`; no auto-pipelining (it makes `add` ~35 % slower); no offline queue, so once the
 *   connection is lost a command fails at once instead of waiting for Redis.
 * - `commands`: locks, limits, health; auto-pipelined (~50 % faster for short commands); no offline queue either.
 * - `worker`: BullMQ workers; blocking commands, so no command timeout and retries forever (BullMQ requires it).
 */
export type RedisPurpose = 'producer' | 'commands' | 'worker'

export type ConnectedRedisConfig = Exclude<RedisConfig, { mode: 'embedded' }>

export function createRedis(config: ConnectedRedisConfig, purpose: RedisPurpose, log: Log): Redis {
  giveTracingChannelHasSubscribers()
  const options: RedisOptions = {
    connectionName: `hookgate:${purpose}:${process.pid}`,
    ...(purpose === 'worker'
      ? { maxRetriesPerRequest: null }
      : {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          commandTimeout: config.commandTimeoutMs,
          enableAutoPipelining: purpose === 'commands',
        }),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
  }
  const redis = connect(config, options, purpose)
  reportConnectionErrors(redis, purpose, log)
  return redis
}

function connect(config: ConnectedRedisConfig, baseOptions: RedisOptions, purpose: RedisPurpose): Redis {
  if (config.mode === 'url') {
    // The URL carries its own user, password and TLS (rediss://).
    return config.url.startsWith('unix://')
      ? new Redis({ ...baseOptions, path: config.url.slice('unix://'.length) })
      : new Redis(config.url, baseOptions)
  }
  const { username, password, sentinelPassword, tls } = config.auth
  const options: RedisOptions = { ...baseOptions, ...(username ? { username } : {}), ...(password ? { password } : {}), ...(tls ? { tls: {} } : {}) }
  if (config.mode === 'cluster') {
    const { enableOfflineQueue: _, enableAutoPipelining, retryStrategy, ...redisOptions } = options
    // A Cluster client has the commands, events and status of a Redis one, and BullMQ takes it as its connection.
    // Its offline queue stays on: without it, a client that started while the cluster was settling its slots was
    // seen refusing every command for good ("Cluster isn't ready"). Requests still wait at most their budget.
    return new Cluster(config.nodes, {
      redisOptions,
      enableAutoPipelining,
      clusterRetryStrategy: (attempt) => retryStrategy?.(attempt) ?? 1000,
      // A BullMQ worker resets its blocking connection (disconnect, then connect) when a wait overruns, as it does
      // while a master fails over, and waits for connect() to settle. With the ready check, a connect() that finds the
      // cluster failing (cluster_state:fail) reconnects later but never settles: that worker stopped taking its
      // shard's jobs for good. Without it, connect() settles once the slots are read; commands meanwhile are retried.
      enableReadyCheck: purpose !== 'worker',
      // After a failover, commands for a dead master's slots would wait on its connection until they time out (it
      // answers no MOVED): the slot map is read again every couple of seconds, so the promoted replica is found.
      slotsRefreshInterval: 2000,
    }) as unknown as Redis
  }
  return new Redis({ ...options, sentinels: config.sentinels, name: config.masterName, ...(sentinelPassword ? { sentinelPassword } : {}), ...(tls ? { sentinelTLS: {}, enableTLSForSentinelMode: true } : {}) })
}

/** One log line when a connection goes down and one when it is back, not one per failed retry. */
function reportConnectionErrors(redis: Redis, purpose: RedisPurpose, log: Log): void {
  const outage = createOutageReporter(log, { purpose }, { down: 'redis connection lost', up: 'redis connection back' })
  redis.on('error', (error: Error) => outage.down(error.message))
  redis.on('ready', () => outage.up())
}

/** Resolves when the connection is ready, or false after `timeoutMs`. */
export function waitForReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs)
    const onReady = () => done(true)
    function done(ready: boolean) {
      clearTimeout(timer)
      redis.off('ready', onReady)
      resolve(ready)
    }
    redis.on('ready', onReady)
  })
}

/**
 * Waits for `work`, or `ms` at most, and gives its result (undefined when it failed or took too long): closing a
 * client while Redis is away can wait forever (a worker connection retries without end), and a process asked to stop
 * must stop.
 */
export async function atMost<T>(ms: number, work: Promise<T>): Promise<T | undefined> {
  let timer: Timer | undefined
  const result = await Promise.race([work.catch(() => undefined), new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
  return result
}

export type ScriptCall = (...keysAndArgs: (string | number | Buffer)[]) => Promise<unknown>

/**
 * A Lua script run as EVALSHA (EVAL once where Redis does not have it yet: a new or restarted server, another
 * master), given its number of keys; returns the call for a number of keys. Not ioredis's defineCommand: every
 * auto-pipeline ioredis makes copies each defined command onto itself, which with a command per number of keys (a
 * Cluster's auto-pipelining needs a key, not a key count, first) cost the API a tenth of its CPU. EVALSHA is a command
 * ioredis knows the keys of, so its auto-pipelining groups it by the slot of its first key.
 */
export function defineScript(redis: Redis, lua: string): (numberOfKeys: number) => ScriptCall {
  const sha = createHash('sha1').update(lua).digest('hex')
  return (numberOfKeys) =>
    async (...keysAndArgs) => {
      try {
        return await redis.evalsha(sha, numberOfKeys, ...keysAndArgs)
      } catch (error) {
        if (!(error as Error).message.startsWith('NOSCRIPT')) throw error
        return redis.eval(lua, numberOfKeys, ...keysAndArgs)
      }
    }
}

export type WithReleaseLock = Redis & { releaseLock(key: string, owner: string): Promise<number> }

/** Gives a connection `releaseLock(key, owner)`: deletes a lock only while `owner` still holds it (release-lock.lua). */
export function withReleaseLock(redis: Redis): WithReleaseLock {
  const release = defineScript(redis, releaseScript)(1)
  return Object.assign(redis, { releaseLock: (key: string, owner: string) => release(key, owner) as Promise<number> })
}

/** Redis's maxmemory-policy, or `unknown` when it cannot be read (CONFIG disabled, as on some managed services). */
export async function evictionPolicy(redis: Redis): Promise<string> {
  const reply = await atMost(2000, redis.config('GET', 'maxmemory-policy') as Promise<string[]>)
  return reply?.[1] ?? 'unknown'
}

/**
 * At start: BullMQ loses jobs when Redis evicts keys, so anything but `noeviction` is said loudly, and with
 * REDIS_EVICTION_POLICY_CHECK=refuse stops the start (false). Redis not reachable yet: nothing to check; go on.
 */
export async function evictionPolicyAllowsStart(config: ConnectedRedisConfig, log: Log): Promise<boolean> {
  const redis = createRedis(config, 'commands', log)
  try {
    if (!(await waitForReady(redis, 3000))) return true
    const policy = await evictionPolicy(redis)
    if (policy === 'noeviction') return true
    if (policy === 'unknown') {
      log.warn('redis: could not read maxmemory-policy (CONFIG GET refused); make sure it is noeviction, or queued jobs may be evicted')
      return true
    }
    const refuse = config.evictionPolicyCheck === 'refuse'
    log[refuse ? 'fatal' : 'error'](
      { maxmemoryPolicy: policy },
      `redis: maxmemory-policy is ${policy}: under memory pressure Redis will evict queued jobs and lose events; set it to noeviction` +
        (refuse ? ' (REDIS_EVICTION_POLICY_CHECK=refuse: not starting)' : ''),
    )
    return !refuse
  } finally {
    redis.disconnect()
  }
}

/** REDIS_WAIT_REPLICAS: the connections whose writes must reach `count` replicas. */
export interface Replicas {
  /**
   * The connections that add jobs: WAIT answers for the writes of the connection it is sent on. On a Cluster, it is
   * sent on the connection to the master that serves the writes' slot.
   */
  writers: Redis[]
  count: number
}

/**
 * Whether `count` replicas have had every write of the writers so far (WAIT), within `timeoutMs`; true without. On a
 * Cluster, the writes to the masters serving `slots` (the shards written to).
 */
export async function replicated(replicas: Replicas | undefined, timeoutMs: number, slots: number[]): Promise<boolean> {
  if (!replicas) return true
  const { writers, count } = replicas
  const targets = writers.flatMap((writer) => (writer instanceof Cluster ? [...new Set(slots.map((slot) => masterOf(writer, slot)))] : [writer]))
  const acknowledged = await Promise.all(targets.map((target) => (target ? atMost(timeoutMs + 100, sharedWait(target, count, timeoutMs)) : undefined)))
  return acknowledged.every((replicasWithIt) => (replicasWithIt ?? 0) >= count)
}

/** Per connection: the WAIT on its way, and the one that follows it, which every caller meanwhile shares. */
const waits = new WeakMap<Redis, { sent?: Promise<number>; next?: Promise<number> }>()

/**
 * A WAIT for the writes the connection made until now. A WAIT blocks its connection until replicas answer, so callers
 * share them: one is on its way at most, and whoever comes meanwhile waits for the next, sent when it returns (the one
 * on its way may have left before the caller's write was answered, and then does not cover it).
 */
function sharedWait(connection: Redis, count: number, timeoutMs: number): Promise<number> {
  let state = waits.get(connection)
  if (!state) waits.set(connection, (state = {}))
  const current = state
  const send = (): Promise<number> => {
    const sent = connection.wait(count, timeoutMs)
    current.sent = sent
    const done = () => {
      if (current.sent === sent) current.sent = undefined
    }
    sent.then(done, done)
    return sent
  }
  if (!current.sent) return send()
  if (!current.next) {
    const after = () => {
      current.next = undefined
      return send()
    }
    current.next = current.sent.then(after, after)
  }
  return current.next
}

/** The connection a Cluster client sends a slot's commands on now (its master's), if it knows one. */
function masterOf(cluster: Cluster, slot: number): Redis | undefined {
  const address = cluster.slots[slot]?.[0]
  return cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === address)
}
