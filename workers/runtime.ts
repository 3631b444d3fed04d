import { Worker, type Job, type Processor } from 'bullmq'
import type { Registry } from 'prom-client'
import type { Config } from '../src/config/config.ts'
import { createInstances, instancesReloader } from '../src/config/instances.ts'
import type { Log } from '../src/log.ts'
import { createMetrics } from '../src/metrics.ts'
import { createEventLog } from '../src/queue/event-log.ts'
import { QUEUE } from '../src/queue/names.ts'
import { createQueues, type ShardQueues } from '../src/queue/queues.ts'
import { atMost, createRedis, withReleaseLock, type ConnectedRedisConfig } from '../src/redis/connections.ts'
import { linkToSupervisor } from '../src/process/supervisor-link.ts'
import { createAnswerBack } from './answer-back.ts'
import { backoffStrategy } from './backoff.ts'
import { createBreaker } from './breaker.ts'
import { createChatwootCallsProcessor } from './chatwoot-calls.ts'
import { createDeliverer } from './deliver.ts'
import { createDeliveryProcessor } from './delivery.ts'
import { fleetDuties } from './duties.ts'
import { createLanes } from './lanes.ts'
import { createLocalTurns } from './local-turns.ts'
import { runWhileLeader } from './leader.ts'
import { createWebhookProcessor } from './webhook.ts'

/**
 * The longest a delivery waits in the process for its conversation's earlier event (LocalTurns) before it is parked.
 * Measured at 1,000 events/s over 20 conversations: a cap on how many may wait (half the job slots) parked most of
 * them again (5.2 scripts an event); a time bound parked almost none (2.0), and still frees the slots of a slow
 * conversation's events within a second.
 */
const LOCAL_TURN_WAIT_MS = 1000

/** How many times a job whose lock was lost (its worker died, stalled, or lost Redis) is run again before it fails. */
const MAX_STALLED_RUNS = 5

/** The most each closing step past the active jobs may take (Redis may be gone). */
const CLOSE_STEP_MS = 2000

export interface RunningWorkers {
  /** Stops taking jobs, lets active ones finish within SHUTDOWN_TIMEOUT_MS, then closes connections. Idempotent. */
  stop(): Promise<void>
  /** Re-reads the instances file in this process (SIGHUP); a bad file is refused and logged. */
  reload(): void
  /** This process's metrics; under `hookgate start` the supervisor sums them with its other children's. */
  registry: Registry
  supervised: boolean
}

/** One worker process: a BullMQ Worker per queue, each with its concurrency, in this process (no sandboxes). */
export function startWorkers(config: Config, redisConfig: ConnectedRedisConfig, log: Log): RunningWorkers {
  const producer = createRedis(redisConfig, 'producer', log)
  const commands = withReleaseLock(createRedis(redisConfig, 'commands', log))
  const connection = createRedis(redisConfig, 'worker', log)
  const queues = createQueues({ config: config.queue, producer, log })
  const instances = createInstances(config.instances)
  const metrics = createMetrics()
  const reload = instancesReloader({ config, instances, log })
  const supervisor = linkToSupervisor({ supervised: config.processes.supervisorPid !== undefined, registry: metrics.registry, reload })
  const settings = { backoffStrategy: backoffStrategy(config.workers.deliveryBackoffMs) }
  const breaker = createBreaker({ redis: commands, prefix: config.queue.prefix, config: config.workers.breaker, log })
  const eventLog = createEventLog({ redis: commands, prefix: config.queue.prefix, maxLen: config.workers.eventLogMaxLen, bodiesKept: config.workers.eventBodiesKept, log })

  const start = (shard: ShardQueues, queue: string, processor: Processor, concurrency: number) => {
    // drainDelay (s): how long an idle worker blocks waiting for jobs. Measured here: a retry due in 10 ms sometimes
    // waited out the whole default 5 s block; 1 s bounds that wait at the cost of one idle poll a second.
    // BullMQ's own `metrics` stay off: they would add a sorted-set update to every job's finish script, and the
    // Prometheus counters (jobs, durations, deliveries) already say the same per process.
    const { jobLockMs } = config.workers
    const worker = new Worker(queue, processor, {
      connection,
      prefix: shard.prefix,
      concurrency,
      settings,
      drainDelay: 1,
      lockDuration: jobLockMs,
      stalledInterval: jobLockMs,
      // BullMQ fails a job for good once it has stalled more than this: a webhook job (a batch of events, above all)
      // that lost its lock twice in one Redis failover would take its events with it. Running one again is safe (each
      // delivery's claim and marker, each post's marker), so it may stall a few times before it counts as a poison.
      maxStalledCount: MAX_STALLED_RUNS,
    })
    // While Redis is away the connection's own log says so once; its workers would say it on every retry.
    worker.on('error', (error) => connection.status === 'ready' && log.error({ queue, err: error.message }, 'worker error'))
    const observe = (job: Job | undefined, outcome: 'completed' | 'failed' | 'dead') => {
      metrics.jobs.inc({ queue, outcome })
      if (job?.processedOn) metrics.jobDuration.observe({ queue }, ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000)
    }
    worker.on('completed', (job) => observe(job, 'completed'))
    worker.on('failed', (job, error) => {
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || error.name === 'UnrecoverableError'
      observe(job, final ? 'dead' : 'failed')
      log[final ? 'error' : 'warn']({ queue, jobId: job?.id, attempt: job?.attemptsMade, err: error.message }, final ? 'job failed for good' : 'job failed; will retry')
    })
    return worker
  }
  // Every shard has its own Worker per queue, with its share of the process's concurrency: each shard is served
  // whatever the others hold, so none starves behind a busy one.
  const served = [...queues.shards, ...queues.draining]
  const share = (concurrency: number) => Math.max(1, Math.ceil(concurrency / served.length))
  const { workers: concurrency } = config
  const localTurns = createLocalTurns(LOCAL_TURN_WAIT_MS)
  const workers = served.flatMap((shard) => {
    const answerBack = createAnswerBack({ shard, instances, eventLog, log })
    const lanes = createLanes({ redis: commands, shard, localTurns, log })
    const tryDelivery = createDeliverer({ config, breaker, redis: commands, answerBack, lanes, eventLog, log, metrics })
    return [
      start(shard, QUEUE.webhook, createWebhookProcessor({ config, instances, redis: commands, shard, tryDelivery, lanes, localTurns, eventLog, log, metrics }), share(concurrency.webhookConcurrency)),
      start(shard, QUEUE.delivery, createDeliveryProcessor({ config, instances, tryDelivery, redis: commands, answerBack, lanes, eventLog, metrics }), share(concurrency.deliveryConcurrency)),
      start(shard, QUEUE.chatwootNote, createChatwootCallsProcessor({ config, instances, redis: commands, lanes, eventLog, log }), share(concurrency.chatwootNoteConcurrency)),
    ]
  })
  const { enableCron, leaderLeaseMs, dutyIntervalMs } = config.workers
  const leadership = enableCron
    ? runWhileLeader({
        redis: commands,
        prefix: config.queue.prefix,
        leaseMs: leaderLeaseMs,
        dutyIntervalMs,
        duties: fleetDuties({ config, instances, redis: commands, queues, log }),
        onLeadership: (leader) => metrics.leader.set(leader ? 1 : 0),
        log,
      })
    : undefined
  log.info({ queues: [...new Set(workers.map((w) => w.name))], shards: queues.shards.length, draining: queues.draining.length, concurrency, enableCron }, 'workers started')

  let stopping: Promise<void> | undefined
  return {
    reload,
    registry: metrics.registry,
    supervised: supervisor !== undefined,
    stop: () =>
      (stopping ??= (async () => {
        await atMost(CLOSE_STEP_MS, leadership?.stop() ?? Promise.resolve())
        let finished = false
        const graceful = Promise.all(workers.map((w) => w.close())).then(() => (finished = true))
        await atMost(config.workers.shutdownTimeoutMs, graceful)
        if (!finished) {
          log.warn('workers: active jobs did not finish in time; they will be picked up again as stalled')
          await atMost(CLOSE_STEP_MS, Promise.all(workers.map((w) => w.close(true))))
        }
        await atMost(CLOSE_STEP_MS, queues.close())
        for (const client of [producer, commands, connection]) client.disconnect()
        await supervisor?.flush().catch(() => {})
        log.info('workers stopped')
      })()),
  }
}
