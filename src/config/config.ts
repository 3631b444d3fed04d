import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { parseCidr } from '../http/client-ip.ts'
import { InstancesFileSchema, type InstanceConfig } from './instances-schema.ts'

export type Env = Record<string, string | undefined>

export type RedisConfig = RedisCommon &
  (
    | { mode: 'url'; url: string }
    | { mode: 'sentinel'; sentinels: { host: string; port: number }[]; masterName: string }
    /** Redis Cluster: any of its nodes; the client finds the rest. */
    | { mode: 'cluster'; nodes: { host: string; port: number }[] }
    /** No REDIS_URL: `hookgate start` runs redis-server itself; other roles refuse. */
    | { mode: 'embedded' }
  )

interface RedisCommon {
  commandTimeoutMs: number
  /**
   * For Sentinel and Cluster (a REDIS_URL carries its own): the Redis password (REDIS_PASSWORD, with REDIS_USERNAME
   * for an ACL user), the sentinels' (REDIS_SENTINEL_PASSWORD), and TLS to Redis and sentinels (REDIS_TLS, false).
   */
  auth: { username?: string; password?: string; sentinelPassword?: string; tls: boolean }
  /**
   * What to do at start when Redis may evict keys (maxmemory-policy other than noeviction), which loses queued jobs:
   * `warn` loudly and go on, or `refuse` to start (REDIS_EVICTION_POLICY_CHECK, warn).
   */
  evictionPolicyCheck: 'warn' | 'refuse'
}

export interface Config {
  http: {
    port: number
    host: string
    /** Largest webhook body accepted, bytes (MAX_BODY_BYTES, 1 MiB). */
    maxBodyBytes: number
    /** A connection silent this long is closed: slow headers, idle keep-alive (HTTP_IDLE_TIMEOUT_SECONDS, 10). */
    idleTimeoutSeconds: number
    /** The whole body must arrive within this, however it trickles, or 408 (BODY_TIMEOUT_MS, 10000). */
    bodyTimeoutMs: number
    /** How far X-Chatwoot-Timestamp may be from our clock, seconds (SIGNATURE_TOLERANCE_SECONDS, 300). */
    signatureToleranceSeconds: number
    /** Base of the webhook URL printed for operators (PUBLIC_URL, default http://localhost:PORT). */
    publicUrl: string
  }
  redis: RedisConfig
  queue: {
    /** Prefix of every key (REDIS_KEY_PREFIX, {hookgate}); a hash tag keeps them in one Redis Cluster slot. */
    prefix: string
    /**
     * How many shards the queues are split into (REDIS_QUEUE_SHARDS): 1 on a single Redis or Sentinel (nothing
     * changes), 6 with REDIS_CLUSTER_NODES (two per master of a 3-master cluster). Each shard has a hash tag of its
     * own (queue/shards.ts), so a cluster spreads them over its masters.
     */
    shards: number
    /**
     * A previous REDIS_QUEUE_SHARDS while the fleet changes its number of shards (REDIS_QUEUE_SHARDS_DRAINING): new
     * events go to the new shards, and workers also serve the old ones until they are empty.
     */
    drainingShards: number | undefined
    /**
     * How long an event's identity is remembered (DEDUPE_WINDOW_SECONDS, 600): a repeat within it, or while its job
     * is queued, is `already_queued`, and a delivery or a post to Chatwoot run again within it is not made twice. One
     * short key per event (and one per delivery), each about 150 bytes: at 100 events/s, ~18 MB.
     */
    dedupeWindowMs: number
    /** Tries of one webhook job before it is failed (WEBHOOK_JOB_ATTEMPTS, 8). */
    webhookAttempts: number
    /** First retry delay, ms, doubled per attempt with jitter (WEBHOOK_JOB_BACKOFF_MS, 1000). */
    webhookBackoffMs: number
    /**
     * Failed jobs (the dead letters, replayable) kept: age in seconds and count (JOB_RETENTION_SECONDS 604800,
     * JOB_RETENTION_COUNT 100000). Completed jobs go at once: the event log says what became of each event.
     */
    retentionSeconds: number
    retentionCount: number
  }
  rateLimit: {
    /** RATE_LIMIT_ENABLED (true). */
    enabled: boolean
    /** Per client IP, for everything but authenticated webhooks (RATE_LIMIT_IP_PER_SECOND 100, RATE_LIMIT_IP_BURST 50). */
    ip: BucketLimit
    /** Per client IP on /admin (RATE_LIMIT_ADMIN_PER_SECOND 5, RATE_LIMIT_ADMIN_BURST 10). */
    admin: BucketLimit
    /** Defaults of each instance's authenticated webhooks (RATE_LIMIT_INSTANCE_*). */
    instance: InstanceRateLimit
    /** The furthest a shaped event is scheduled ahead, ms (RATE_LIMIT_SHAPE_MAX_DELAY_MS, 60000); past it, 429. */
    maxShapeDelayMs: number
  }
  /**
   * Children of `hookgate start` (API_PROCESSES: the number of CPUs; WORKER_PROCESSES: 1). `supervisorPid` is set in
   * the children themselves (HOOKGATE_SUPERVISOR_PID), so that they stop when their supervisor is gone.
   */
  processes: { api: number; workers: number; supervisorPid: number | undefined }
  workers: {
    /**
     * Jobs each worker process runs at once, per queue (WEBHOOK_WORKER_CONCURRENCY 200, DELIVERY_WORKER_CONCURRENCY
     * 200, CHATWOOT_NOTE_WORKER_CONCURRENCY 20). A webhook job makes its event's first delivery tries, the delivery
     * queue the retries; both wait on the network: measured with a destination answering in 100 ms, one worker
     * delivered 96/s at 10, 435/s at 50 and 1311/s at 200
     * (`bun run bench -- --scenarios workers --destination-ms 100 --concurrency N`, before first tries moved into the
     * webhook job).
     */
    webhookConcurrency: number
    deliveryConcurrency: number
    chatwootNoteConcurrency: number
    /** Entries kept in each instance's event log, the newest (EVENT_LOG_MAX_LEN, 10000). */
    eventLogMaxLen: number
    /** Event bodies kept per instance for the console's event page, the newest (EVENT_BODIES_KEPT, 1000; 0: none). */
    eventBodiesKept: number
    /** Tries of one delivery when its route sets no `maxAttempts` (DELIVERY_MAX_ATTEMPTS, 8). */
    deliveryAttempts: number
    /** Base of the exponential backoff with full jitter between tries, ms (DELIVERY_BACKOFF_MS, 1000). */
    deliveryBackoffMs: number
    /** How long a shutting-down worker lets active jobs finish, ms (SHUTDOWN_TIMEOUT_MS, 10000). */
    shutdownTimeoutMs: number
    /** A job's lock, renewed while it runs; a dead worker's jobs are taken up again about this long after (JOB_LOCK_MS, 30000). */
    jobLockMs: number
    breaker: BreakerConfig
    /** Calls each instance may make to its Chatwoot API, fleet-wide (CHATWOOT_API_PER_SECOND 10, CHATWOOT_API_BURST 20). */
    chatwootApi: BucketLimit
    /** Whether this process may become the fleet's leader and run its periodic duties (ENABLE_CRON, true). */
    enableCron: boolean
    /** The leader's lease: another process takes over within this long of the leader's death (LEADER_LEASE_MS, 10000). */
    leaderLeaseMs: number
    /** How often the leader runs the duties (DUTY_INTERVAL_MS, 60000). */
    dutyIntervalMs: number
  }
  /** Peers whose X-Forwarded-For / X-Real-IP are believed (TRUSTED_PROXIES, CIDRs; none by default). */
  trustedProxies: readonly string[]
  log: {
    level: LogLevel
    /** `pretty` for people (a terminal), `json` for machines (LOG_FORMAT; `auto`, the default: pretty when stdout is a TTY). */
    format: 'json' | 'pretty'
    /** Pretty lines in ANSI colours: stdout is a terminal and NO_COLOR (no-color.org) is not set. */
    colour: boolean
  }
  metrics: {
    /** Prometheus metrics at /metrics and their per-request bookkeeping (METRICS_ENABLED, true). */
    enabled: boolean
    /** A `hookgate worker` run on its own serves its /metrics on this port (WORKER_METRICS_PORT; unset: none). */
    workerPort: number | undefined
    /** When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (unset: open, as before). */
    token: string | undefined
  }
  /** Opens the admin API (/admin/*) to `Authorization: Bearer <ADMIN_TOKEN>`; unset, it answers 403 (ADMIN_TOKEN). */
  adminToken: string | undefined
  /** Where hookgate keeps local state: embedded Redis data, the default instance token (HOOKGATE_DATA_DIR). */
  dataDir: string
  spool: {
    /** Where an API process keeps the events Redis could not take (SPOOL_DIR, <data dir>/spool). */
    dir: string
    /** The most one API process keeps there; past it, 503 with Retry-After (SPOOL_MAX_BYTES, 256 MiB). */
    maxBytes: number
    /** How long a webhook waits on Redis (each of its commands) before it is spooled (REDIS_ENQUEUE_BUDGET_MS, 250). */
    redisBudgetMs: number
    /**
     * Replicas that must have a queued event before it counts as queued (REDIS_WAIT_REPLICAS, 0): Redis replicates
     * asynchronously, so without it a failover can lose what the old master acknowledged. On a Cluster, WAIT goes to
     * the master of the event's shard.
     */
    waitReplicas: number
  }
  instances: readonly InstanceConfig[]
  /**
   * A file, with the environment its `${ENV}` references are read from again on a reload (the one read at start), or
   * the built-in `default` instance, its token from HOOKGATE_DEFAULT_TOKEN or made once and kept in the data dir.
   */
  instancesSource: { kind: 'file'; path: string; env: Env } | { kind: 'default'; token: 'env' | 'file' }
}

export interface BucketLimit {
  perSecond: number
  burst: number
}

export interface BreakerConfig {
  /** Consecutive failed deliveries that open a destination's breaker (BREAKER_FAILURE_THRESHOLD, 5). */
  failureThreshold: number
  /** How long it stays open before one probe may go, ms (BREAKER_OPEN_MS, 30000). */
  openMs: number
}

export interface InstanceRateLimit extends BucketLimit {
  /** Arrivals per second past which even a shaping instance gets 429. */
  ceilingPerSecond: number
  /** `shape`: over the rate, accept and delay the work; `reject`: answer 429. */
  policy: 'shape' | 'reject'
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export interface LoadOptions {
  /**
   * The command being run. With no instances file and no HOOKGATE_DEFAULT_TOKEN, `api` and `worker` run on their own
   * (no supervisor) may not make the default instance's token: in a container it would die with the container, and
   * each replica would make its own.
   */
  command?: string
}

/** The only reader of the environment: validates all of it, reports every problem at once. */
export function loadConfig(env: Env, options: LoadOptions = {}): Config {
  const problems: string[] = []
  const read = reader(env, problems)

  const port = read.int('PORT', 3000, 0, 65535)
  const dataDir = resolve(read.str('HOOKGATE_DATA_DIR', '.hookgate'))
  // A webhook may wait on up to three commands, and Chatwoot gives up after 5 s.
  const commandTimeoutMs = read.int('REDIS_COMMAND_TIMEOUT_MS', 1000, 50, 60_000)
  const redis = readRedis(env, read, problems, commandTimeoutMs)
  const instanceDefaults: InstanceRateLimit = {
    perSecond: read.num('RATE_LIMIT_INSTANCE_PER_SECOND', 100),
    burst: read.int('RATE_LIMIT_INSTANCE_BURST', 200, 1, 1_000_000),
    ceilingPerSecond: read.num('RATE_LIMIT_INSTANCE_CEILING_PER_SECOND', 1000),
    policy: read.oneOf('RATE_LIMIT_INSTANCE_POLICY', ['shape', 'reject'] as const, 'shape'),
  }
  if (instanceDefaults.ceilingPerSecond < instanceDefaults.perSecond) {
    problems.push('RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: must be at least RATE_LIMIT_INSTANCE_PER_SECOND')
  }
  const instancesPath = env.HOOKGATE_CONFIG?.trim()
  const defaultToken = readSecret(env, 'HOOKGATE_DEFAULT_TOKEN', problems)
  const standalone = (options.command === 'api' || options.command === 'worker') && !env.HOOKGATE_SUPERVISOR_PID
  const mayMakeToken = defaultToken !== undefined || !standalone
  if (instancesPath && defaultToken) problems.push('HOOKGATE_DEFAULT_TOKEN: only for the built-in `default` instance; with HOOKGATE_CONFIG, tokens are in the instances file')
  if (!instancesPath && !mayMakeToken) {
    problems.push(
      'no instances: set HOOKGATE_CONFIG to an instances file, or HOOKGATE_DEFAULT_TOKEN to the token of the built-in `default` ' +
        'instance (the same on every replica; one made here would be this container\'s alone, and lost with it)',
    )
  }
  const instances = instancesPath
    ? readInstancesFile(instancesPath, env, instanceDefaults, problems)
    : mayMakeToken ? [{ id: 'default', tokens: [defaultToken ?? defaultTokenFile(dataDir)], routes: [] }] : []

  const config: Config = {
    http: {
      port,
      host: read.str('HOST', '0.0.0.0'),
      maxBodyBytes: read.int('MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
      idleTimeoutSeconds: read.int('HTTP_IDLE_TIMEOUT_SECONDS', 10, 1, 255),
      bodyTimeoutMs: read.int('BODY_TIMEOUT_MS', 10_000, 100, 600_000),
      signatureToleranceSeconds: read.int('SIGNATURE_TOLERANCE_SECONDS', 300, 1, 86_400),
      publicUrl: read.str('PUBLIC_URL', `http://localhost:${port}`).replace(/\/+$/, ''),
    },
    redis,
    queue: {
      prefix: read.matching('REDIS_KEY_PREFIX', /^\{[A-Za-z0-9_-]{1,32}\}$/, '{hookgate}', 'a hash tag such as {hookgate}'),
      shards: read.int('REDIS_QUEUE_SHARDS', redis.mode === 'cluster' ? 6 : 1, 1, 64),
      drainingShards: env.REDIS_QUEUE_SHARDS_DRAINING?.trim() ? read.int('REDIS_QUEUE_SHARDS_DRAINING', 1, 1, 64) : undefined,
      dedupeWindowMs: read.int('DEDUPE_WINDOW_SECONDS', 600, 1, 7 * 86_400) * 1000,
      webhookAttempts: read.int('WEBHOOK_JOB_ATTEMPTS', 8, 1, 100),
      webhookBackoffMs: read.int('WEBHOOK_JOB_BACKOFF_MS', 1000, 10, 3_600_000),
      retentionSeconds: read.int('JOB_RETENTION_SECONDS', 7 * 86_400, 1, 90 * 86_400),
      retentionCount: read.int('JOB_RETENTION_COUNT', 100_000, 1, 10_000_000),
    },
    rateLimit: {
      enabled: read.bool('RATE_LIMIT_ENABLED', true),
      ip: { perSecond: read.num('RATE_LIMIT_IP_PER_SECOND', 100), burst: read.int('RATE_LIMIT_IP_BURST', 50, 1, 1_000_000) },
      admin: { perSecond: read.num('RATE_LIMIT_ADMIN_PER_SECOND', 5), burst: read.int('RATE_LIMIT_ADMIN_BURST', 10, 1, 1_000_000) },
      instance: instanceDefaults,
      maxShapeDelayMs: read.int('RATE_LIMIT_SHAPE_MAX_DELAY_MS', 60_000, 0, 3_600_000),
    },
    processes: {
      api: read.int('API_PROCESSES', availableParallelism(), 1, 256),
      workers: read.int('WORKER_PROCESSES', 1, 0, 256),
      supervisorPid: env.HOOKGATE_SUPERVISOR_PID ? read.int('HOOKGATE_SUPERVISOR_PID', 0, 1, 2 ** 31) : undefined,
    },
    workers: {
      webhookConcurrency: read.int('WEBHOOK_WORKER_CONCURRENCY', 200, 1, 10_000),
      deliveryConcurrency: read.int('DELIVERY_WORKER_CONCURRENCY', 200, 1, 10_000),
      chatwootNoteConcurrency: read.int('CHATWOOT_NOTE_WORKER_CONCURRENCY', 20, 1, 10_000),
      eventLogMaxLen: read.int('EVENT_LOG_MAX_LEN', 10_000, 10, 10_000_000),
      eventBodiesKept: read.int('EVENT_BODIES_KEPT', 1000, 0, 1_000_000),
      deliveryAttempts: read.int('DELIVERY_MAX_ATTEMPTS', 8, 1, 100),
      deliveryBackoffMs: read.int('DELIVERY_BACKOFF_MS', 1000, 10, 3_600_000),
      shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
      jobLockMs: read.int('JOB_LOCK_MS', 30_000, 1000, 600_000),
      breaker: {
        failureThreshold: read.int('BREAKER_FAILURE_THRESHOLD', 5, 1, 1000),
        openMs: read.int('BREAKER_OPEN_MS', 30_000, 100, 3_600_000),
      },
      chatwootApi: { perSecond: read.num('CHATWOOT_API_PER_SECOND', 10), burst: read.int('CHATWOOT_API_BURST', 20, 1, 100_000) },
      enableCron: read.bool('ENABLE_CRON', true),
      leaderLeaseMs: read.int('LEADER_LEASE_MS', 10_000, 300, 600_000),
      dutyIntervalMs: read.int('DUTY_INTERVAL_MS', 60_000, 100, 86_400_000),
    },
    trustedProxies: readTrustedProxies(env, problems),
    log: { level: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'), format: readLogFormat(read), colour: Boolean(process.stdout.isTTY) && !env.NO_COLOR },
    metrics: {
      enabled: read.bool('METRICS_ENABLED', true),
      workerPort: env.WORKER_METRICS_PORT ? read.int('WORKER_METRICS_PORT', 0, 1, 65535) : undefined,
      token: readSecret(env, 'METRICS_TOKEN', problems),
    },
    adminToken: readSecret(env, 'ADMIN_TOKEN', problems),
    dataDir,
    spool: {
      dir: resolve(read.str('SPOOL_DIR', join(dataDir, 'spool'))),
      maxBytes: read.int('SPOOL_MAX_BYTES', 256 * 1024 * 1024, 4096, 1024 ** 4),
      redisBudgetMs: read.int('REDIS_ENQUEUE_BUDGET_MS', 250, 10, 60_000),
      waitReplicas: read.int('REDIS_WAIT_REPLICAS', 0, 0, 16),
    },
    instances,
    instancesSource: instancesPath
      ? { kind: 'file', path: resolve(instancesPath), env: { ...env } }
      : { kind: 'default', token: defaultToken ? 'env' : 'file' },
  }
  for (const [old, now] of Object.entries(REPLACED)) {
    if (env[old]?.trim()) problems.push(`${old}: no longer read; use ${now}`)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return deepFreeze(config)
}

/** Variables an earlier version read, and what replaced them: set, they are refused rather than silently ignored. */
const REPLACED: Record<string, string> = {
  WEBHOOK_JOB_CREATE_LOCK_TTL: 'DEDUPE_WINDOW_SECONDS (seconds; a repeat is refused for that long)',
  LOG_WORKER_CONCURRENCY: 'nothing: event-log lines are written where they happen, without a queue',
}

function reader(env: Env, problems: string[]) {
  const value = (name: string) => {
    const raw = env[name]?.trim()
    return raw === undefined || raw === '' ? undefined : raw
  }
  return {
    str(name: string, fallback: string): string {
      return value(name) ?? fallback
    },
    int(name: string, fallback: number, min: number, max: number): number {
      const raw = value(name)
      if (raw === undefined) return fallback
      const n = Number(raw)
      if (!/^\d+$/.test(raw) || n < min || n > max) {
        problems.push(`${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`)
        return fallback
      }
      return n
    },
    bool(name: string, fallback: boolean): boolean {
      const raw = value(name)?.toLowerCase()
      if (raw === undefined) return fallback
      if (['true', '1', 'yes', 'on'].includes(raw)) return true
      if (['false', '0', 'no', 'off'].includes(raw)) return false
      problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`)
      return fallback
    },
    /** A positive rate, decimals allowed (0.5 = one every two seconds). */
    num(name: string, fallback: number): number {
      const raw = value(name)
      if (raw === undefined) return fallback
      const n = Number(raw)
      if (!/^\d+(\.\d+)?$/.test(raw) || n < 0.001 || n > 1_000_000) {
        problems.push(`${name}=${JSON.stringify(raw)}: expected a number from 0.001 to 1000000`)
        return fallback
      }
      return n
    },
    matching(name: string, pattern: RegExp, fallback: string, expected: string): string {
      const raw = value(name)
      if (raw === undefined) return fallback
      if (pattern.test(raw)) return raw
      problems.push(`${name}=${JSON.stringify(raw)}: expected ${expected}`)
      return fallback
    },
    oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
      const raw = value(name)?.toLowerCase()
      if (raw === undefined) return fallback
      if ((allowed as readonly string[]).includes(raw)) return raw as T
      problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`)
      return fallback
    },
  }
}

function readRedis(env: Env, read: ReturnType<typeof reader>, problems: string[], commandTimeoutMs: number): RedisConfig {
  const optional = (name: string) => env[name] || undefined
  const common: RedisCommon = {
    commandTimeoutMs,
    evictionPolicyCheck: read.oneOf('REDIS_EVICTION_POLICY_CHECK', ['warn', 'refuse'] as const, 'warn'),
    auth: {
      username: optional('REDIS_USERNAME'),
      password: optional('REDIS_PASSWORD'),
      sentinelPassword: optional('REDIS_SENTINEL_PASSWORD'),
      tls: read.bool('REDIS_TLS', false),
    },
  }
  const hostPorts = (name: string) =>
    read.str(name, '').split(',').map((s) => s.trim()).filter(Boolean).map((entry) => {
      const match = /^([^\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(entry)
      if (!match) problems.push(`${name}: ${JSON.stringify(entry)} is not host:port`)
      return { host: (match?.[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(match?.[2] ?? 0) }
    })
  if (read.bool('REDIS_SENTINEL_ENABLED', false)) {
    const sentinels = hostPorts('REDIS_SENTINELS')
    if (sentinels.length === 0) problems.push('REDIS_SENTINELS: required when REDIS_SENTINEL_ENABLED=true (host:port,host:port)')
    return { ...common, mode: 'sentinel', sentinels, masterName: read.str('REDIS_MASTER_NAME', 'mymaster') }
  }
  if (env.REDIS_CLUSTER_NODES?.trim()) return { ...common, mode: 'cluster', nodes: hostPorts('REDIS_CLUSTER_NODES') }
  const url = env.REDIS_URL?.trim()
  if (!url) return { ...common, mode: 'embedded' }
  if (!/^(rediss?|unix):\/\/./.test(url)) {
    problems.push('REDIS_URL: expected redis://[user:password@]host:port[/db], rediss://… or unix:///path/to/redis.sock')
  }
  return { ...common, mode: 'url', url }
}

function readTrustedProxies(env: Env, problems: string[]): string[] {
  const list = env.TRUSTED_PROXIES?.split(',').map((s) => s.trim()).filter(Boolean) ?? []
  for (const entry of list) {
    if (!parseCidr(entry)) problems.push(`TRUSTED_PROXIES: ${JSON.stringify(entry)} is not an IP address or CIDR (10.0.0.0/8, ::1)`)
  }
  return list
}

/** A token from the environment: unset is undefined; a short one is refused. */
function readSecret(env: Env, name: string, problems: string[]): string | undefined {
  const token = env[name]?.trim()
  if (!token) return undefined
  if (token.length < 16) problems.push(`${name}: use at least 16 characters`)
  return token
}

/** `auto` is decided here, once: pretty for a person at a terminal, JSON for anything that reads the output. */
function readLogFormat(read: ReturnType<typeof reader>): Config['log']['format'] {
  const format = read.oneOf('LOG_FORMAT', ['auto', 'json', 'pretty'] as const, 'auto')
  if (format !== 'auto') return format
  return process.stdout.isTTY ? 'pretty' : 'json'
}

/** An instance's rate limit: its own settings over the RATE_LIMIT_INSTANCE_* defaults. */
export function instanceRateLimit(defaults: InstanceRateLimit, instance: InstanceConfig): InstanceRateLimit {
  return { ...defaults, ...instance.rateLimit }
}

/** Re-reads the instances file with the checks of start-up (SIGHUP, POST /admin/reload); throws ConfigError. */
export function reloadInstancesFile(config: Config): readonly InstanceConfig[] {
  if (config.instancesSource.kind !== 'file') {
    throw new ConfigError(['there is no instances file to reload: set HOOKGATE_CONFIG (the built-in default instance never changes)'])
  }
  const problems: string[] = []
  const { path, env } = config.instancesSource
  const instances = readInstancesFile(path, env, config.rateLimit.instance, problems)
  if (problems.length > 0) throw new ConfigError(problems)
  return deepFreeze(instances)
}

/** Reads the instances file: JSON, `${ENV}` interpolated in string values, then schema-checked. */
function readInstancesFile(path: string, env: Env, rateDefaults: InstanceRateLimit, problems: string[]): InstanceConfig[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    // Without quoted fragments: the file holds secrets, and this message goes to the terminal and CI logs.
    problems.push(`HOOKGATE_CONFIG: cannot read ${path}: ${(error as Error).message.replace(/"[^"]*"/g, '"…"')}`)
    return []
  }
  const missingBefore = problems.length
  const interpolated = interpolateEnv(parsed, env, '', problems)
  if (problems.length > missingBefore) return []
  const schemaErrors = [...Value.Errors(InstancesFileSchema, interpolated)]
  for (const error of schemaErrors.slice(0, 20)) {
    problems.push(`${path}: ${error.path || '/'}: ${error.message}`)
  }
  if (schemaErrors.length > 0) return []
  const { instances } = interpolated as { instances: InstanceConfig[] }
  const seen = new Set<string>()
  instances.forEach((instance, i) => {
    if (seen.has(instance.id)) problems.push(`${path}: /instances/${i}/id: duplicate instance id ${JSON.stringify(instance.id)}`)
    seen.add(instance.id)
    if (!instance.tokens?.length && !instance.webhookSecret?.length) {
      problems.push(`${path}: /instances/${i}: give "tokens" or "webhookSecret" (or both), or nothing can authenticate`)
    }
    const limit = instanceRateLimit(rateDefaults, instance)
    if (limit.ceilingPerSecond < limit.perSecond) {
      problems.push(`${path}: /instances/${i}/rateLimit: ceilingPerSecond (${limit.ceilingPerSecond}) is below perSecond (${limit.perSecond})`)
    }
  })
  return instances
}

function interpolateEnv(value: unknown, env: Env, at: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name]
      if (found === undefined) problems.push(`HOOKGATE_CONFIG: ${at || '/'}: environment variable ${name} is not set`)
      return found ?? ''
    })
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolateEnv(item, env, `${at}/${i}`, problems))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, `${at}/${k}`, problems)]))
  }
  return value
}

/** The `default` instance's token when none is given: made once and kept in the data dir. */
function defaultTokenFile(dataDir: string): string {
  const tokenFile = join(dataDir, 'default-token')
  if (!existsSync(tokenFile)) {
    mkdirSync(dataDir, { recursive: true })
    try {
      writeFileSync(tokenFile, randomBytes(24).toString('base64url'), { mode: 0o600, flag: 'wx' })
    } catch (error) {
      // Another process of this host made it first; theirs is the token.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  return readFileSync(tokenFile, 'utf8').trim()
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
