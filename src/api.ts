import type { Config } from './config/config.ts'
import { createApp } from './http/app.ts'
import { createClientIp } from './http/client-ip.ts'
import { createLimiter } from './ingest/ratelimit.ts'
import { createInstances, instancesReloader } from './config/instances.ts'
import type { Log } from './log.ts'
import { createMetrics } from './metrics.ts'
import { createAcceptor } from './ingest/accept.ts'
import { createAcceptBatcher } from './queue/accept-batch.ts'
import { createEnqueuer } from './queue/enqueue.ts'
import { createEventLog } from './queue/event-log.ts'
import { spreadPrefix } from './queue/names.ts'
import { createQueues } from './queue/queues.ts'
import { createRedisBreaker } from './redis/breaker.ts'
import { atMost, createRedis, waitForReady, type ConnectedRedisConfig } from './redis/connections.ts'
import { startReplayer } from './spool/replayer.ts'
import { createSpool } from './spool/spool.ts'
import { linkToSupervisor } from './process/supervisor-link.ts'

export interface RunningApi {
  port: number
  /** Re-reads the instances file in this process (SIGHUP); a bad file is refused and logged. */
  reload(): void
  /** Stops accepting, lets in-flight requests finish, then closes queues and connections. Idempotent. */
  stop(): Promise<void>
}

/** Headroom over MAX_BODY_BYTES for Bun's own cap, so a body just over our limit gets our JSON 413. */
const BUN_BODY_HEADROOM_BYTES = 1024 * 1024

/** Builds an API process's dependencies once, in order, and the app on them; `close` releases them in reverse. */
export async function buildApi(config: Config, redisConfig: ConnectedRedisConfig, log: Log) {
  const producer = createRedis(redisConfig, 'producer', log)
  const commands = createRedis(redisConfig, 'commands', log)
  const queues = createQueues({ config: config.queue, producer, log })
  const spool = createSpool({ dir: config.spool.dir, maxBytes: config.spool.maxBytes, log })
  if (!(await waitForReady(commands, 5000))) {
    log.warn({ spoolDir: config.spool.dir }, 'redis not reachable yet; webhooks are answered 202 spooled, kept on disk and queued once it is (503 only when the spool is full)')
  }
  const metrics = createMetrics({ queueDepths: queues.depths, spoolPending: spool.pending })
  const instances = createInstances(config.instances)
  const reloadHere = instancesReloader({ config, instances, log })
  const supervisor = linkToSupervisor({ supervised: config.processes.supervisorPid !== undefined, registry: metrics.registry, reload: reloadHere })
  const operations = {
    metricsText: supervisor ? supervisor.fleetMetrics : () => metrics.registry.metrics(),
    reloadInstances: supervisor ? supervisor.reloadAll : async () => [reloadHere()],
  }
  const eventLog = createEventLog({ redis: commands, prefix: config.queue.prefix, maxLen: config.workers.eventLogMaxLen, bodiesKept: config.workers.eventBodiesKept, log })
  const budgetMs = config.spool.redisBudgetMs
  const batcher = createAcceptBatcher({ redis: commands, budgetMs, metrics })
  const enqueuer = createEnqueuer({ config: config.queue, commands, queues, batcher, eventLog, log, metrics })
  const breaker = createRedisBreaker({ redis: commands, budgetMs, log })
  // A job is added by the call that takes its lock (commands), or by its queue when delayed (producer).
  const replicas = config.spool.waitReplicas > 0 ? { writers: [commands, producer], count: config.spool.waitReplicas } : undefined
  const acceptor = createAcceptor({ enqueuer, spool, breaker, budgetMs, replicas })
  const replayer = startReplayer({ spool, enqueuer, breaker, log, replicas })
  // With several queue shards no script takes a bucket and a lock together: the buckets spread over the cluster too.
  const limiter = createLimiter({ config: config.rateLimit, keyPrefix: config.queue.shards === 1 ? config.queue.prefix : spreadPrefix(config.queue.prefix), redis: commands, instances, log, metrics, breaker, budgetMs, batcher })
  const clientIp = createClientIp(config.trustedProxies)
  const app = createApp({ config, log, instances, acceptor, limiter, clientIp, metrics, breaker, spool, queues, operations, redis: commands })
  return {
    app,
    producer,
    commands,
    metrics,
    /** This process alone: SIGHUP. */
    reload: reloadHere,
    async close() {
      await atMost(2000, replayer.stop())
      await spool.close()
      await supervisor?.flush().catch(() => {})
      await atMost(2000, queues.close())
      producer.disconnect()
      commands.disconnect()
    },
  }
}

/** One API process: the app on PORT, shared with the host's other API processes (SO_REUSEPORT). */
export async function startApi(config: Config, redisConfig: ConnectedRedisConfig, log: Log): Promise<RunningApi> {
  const api = await buildApi(config, redisConfig, log)
  api.app.listen({
    port: config.http.port,
    hostname: config.http.host,
    reusePort: true,
    maxRequestBodySize: config.http.maxBodyBytes + BUN_BODY_HEADROOM_BYTES,
    idleTimeout: config.http.idleTimeoutSeconds,
    // Elysia turns Bun's development mode on unless NODE_ENV=production; a gateway never wants it.
    development: false,
  })
  const port = api.app.server?.port ?? config.http.port
  log.info({ port, host: config.http.host, instances: config.instances.length }, 'api listening')

  let stopping: Promise<void> | undefined
  return {
    port,
    reload: api.reload,
    stop: () =>
      (stopping ??= (async () => {
        await api.app.stop()
        await api.close()
        log.info('api stopped')
      })()),
  }
}
