#!/usr/bin/env bun
import { parseArgs } from 'node:util'
import { replayFailedDeliveries, type ReplayFilter } from './admin/replay.ts'
import { startApi } from './api.ts'
import { ConfigError, loadConfig, type Config } from './config/config.ts'
import { RedisServerMissing, freePort, startEmbeddedRedis } from './process/embedded-redis.ts'
import { parseTime } from './http/admin.ts'
import { createLogger, type Log } from './log.ts'
import { serveMetrics } from './metrics.ts'
import { createQueues } from './queue/queues.ts'
import { atMost, createRedis, evictionPolicy, evictionPolicyAllowsStart, waitForReady } from './redis/connections.ts'
import { ensureConnectionsMigrate } from './process/reuseport.ts'
import { startSupervisor } from './process/supervisor.ts'
import { startWorkers } from '../workers/runtime.ts'

const USAGE = `usage: hookgate <command>

  start    run the gateway: API_PROCESSES API and WORKER_PROCESSES worker processes, restarted when they die
           (and an embedded redis-server when REDIS_URL is unset)
  api      run one API process and print its webhook URLs (needs REDIS_URL or Sentinel settings, and
           HOOKGATE_CONFIG or HOOKGATE_DEFAULT_TOKEN)
  worker   run one worker process (needs the same settings as api)
  check    validate the configuration and reach Redis, then exit
  health   exit 0 when this host's API answers /health on PORT (a container HEALTHCHECK with no curl)
  replay   send failed deliveries again (as POST /admin/replay), then exit; give at least one filter:
             --instance ID  --destination URL|HOST  --since TIME  --until TIME  --job ID (repeatable)  [--dry-run]
           TIME is ISO 8601 or ms since the epoch

Configuration comes from the environment and the instances file (HOOKGATE_CONFIG); see README.md.`

async function main(argv: string[]): Promise<number> {
  const command = argv[0]
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE)
    return command ? 0 : 2
  }
  if (!['start', 'api', 'worker', 'check', 'health', 'replay'].includes(command)) {
    console.error(`hookgate: unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
    return 2
  }

  let config: Config
  try {
    config = loadConfig(process.env, { command })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`hookgate: ${error.message}`)
    return 2
  }
  const log = createLogger(config.log)

  switch (command) {
    case 'start':
      return start(config, log)
    case 'api':
      return api(config, log)
    case 'worker':
      return worker(config, log)
    case 'replay':
      return replay(config, log, argv.slice(1))
    case 'health':
      return fetch(`http://127.0.0.1:${config.http.port}/health`, { signal: AbortSignal.timeout(2000) }).then(
        (response) => (response.ok ? 0 : 1),
        () => 1,
      )
    default:
      return check(config, log)
  }
}

async function start(config: Config, log: Log): Promise<number> {
  const signalled = shutdownSignal(log)
  let embedded: Awaited<ReturnType<typeof startEmbeddedRedis>> | undefined
  // Checked once here for every child (they skip it); the embedded Redis is started with noeviction.
  if (config.redis.mode !== 'embedded' && !(await evictionPolicyAllowsStart(config.redis, log))) return 1
  if (config.redis.mode === 'embedded') {
    try {
      embedded = await startEmbeddedRedis(config.dataDir, log)
    } catch (error) {
      if (!(error instanceof RedisServerMissing)) throw error
      console.error(`hookgate: ${error.message}`)
      return 1
    }
  }
  // Every child must bind the same port: pick it here when PORT=0.
  const port = config.http.port || (await freePort())
  const env = { ...process.env, PORT: String(port), ...(embedded ? { REDIS_URL: embedded.url } : {}) }
  if (config.processes.api > 1) ensureConnectionsMigrate(log)
  const supervisor = startSupervisor(config, env, log)
  process.on('SIGHUP', () => void supervisor.reload())
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host
  const ended = Promise.race([signalled.then(() => false), supervisor.failed.then(() => true)])
  if (await untilServing(`http://${host.includes(':') ? `[${host}]` : host}:${port}/health`, ended)) printWebhookUrls(config, port)
  const gaveUp = await ended
  await supervisor.stop()
  await embedded?.stop()
  return gaveUp ? 1 : 0
}

/** Waits for the API children to answer (until the gateway ends, or 30 s): true once one does. */
async function untilServing(url: string, ended: Promise<unknown>): Promise<boolean> {
  let stop = false
  void ended.then(() => (stop = true))
  for (let waited = 0; !stop && waited < 30_000; waited += 100) {
    if (await fetch(url, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)) return true
    await Bun.sleep(100)
  }
  return false
}

async function api(config: Config, log: Log): Promise<number> {
  if (config.redis.mode === 'embedded') return needsRedis('api')
  if (!config.processes.supervisorPid && !(await evictionPolicyAllowsStart(config.redis, log))) return 1
  const signalled = shutdownSignal(log, config.processes.supervisorPid)
  const running = await startApi(config, config.redis, log)
  if (!config.processes.supervisorPid) printWebhookUrls(config, running.port)
  process.on('SIGHUP', () => running.reload())
  await signalled
  return stopCleanly(log, running)
}

async function worker(config: Config, log: Log): Promise<number> {
  if (config.redis.mode === 'embedded') return needsRedis('worker')
  if (!config.processes.supervisorPid && !(await evictionPolicyAllowsStart(config.redis, log))) return 1
  const signalled = shutdownSignal(log, config.processes.supervisorPid)
  const running = startWorkers(config, config.redis, log)
  process.on('SIGHUP', () => running.reload())
  const { workerPort } = config.metrics
  const metricsServer = workerPort && !running.supervised ? serveMetrics(running.registry, { port: workerPort, hostname: config.http.host, token: config.metrics.token }) : undefined
  if (metricsServer) log.info({ port: metricsServer.port }, 'worker metrics listening')
  await signalled
  await metricsServer?.stop()
  return stopCleanly(log, running)
}

function needsRedis(role: string): number {
  console.error(`hookgate ${role}: set REDIS_URL (or REDIS_SENTINEL_ENABLED with REDIS_SENTINELS); only \`hookgate start\` runs a Redis of its own.`)
  return 2
}

/** Validates the configuration (done by now) and reaches Redis; prints what it found. */
async function check(config: Config, log: Log): Promise<number> {
  console.log(`configuration ok: ${config.instances.length} instance(s) from ${describeSource(config)}`)
  if (config.redis.mode === 'embedded') {
    const binary = Bun.which('redis-server')
    console.log(binary ? `redis: none configured; hookgate start will run ${binary}` : `redis: ${new RedisServerMissing().message}`)
    return binary ? 0 : 1
  }
  const redis = createRedis(config.redis, 'commands', log)
  try {
    if (!(await waitForReady(redis, 5000))) {
      console.error('redis: not reachable within 5 s')
      return 1
    }
    const info = await redis.info('server')
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'
    const policy = await evictionPolicy(redis)
    console.log(`redis: reachable, version ${version}, maxmemory-policy ${policy}`)
    if (policy !== 'noeviction' && policy !== 'unknown') {
      console.log('redis: warning: set maxmemory-policy noeviction, or Redis may evict queued jobs under memory pressure')
    }
    return 0
  } finally {
    redis.disconnect()
  }
}

/** `hookgate replay …`: the same replay as POST /admin/replay, from a shell with the gateway's environment. */
async function replay(config: Config, log: Log, args: string[]): Promise<number> {
  if (config.redis.mode === 'embedded') return needsRedis('replay')
  let filter: ReplayFilter
  try {
    const { values } = parseArgs({
      args,
      options: {
        instance: { type: 'string' },
        destination: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        job: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean' },
      },
      strict: true,
    })
    filter = {
      instance: values.instance,
      destination: values.destination,
      since: parseTime('--since', values.since),
      until: parseTime('--until', values.until),
      jobIds: values.job,
      dryRun: values['dry-run'],
    }
    if (!values.instance && !values.destination && !values.since && !values.until && !values.job) {
      throw new Error('give at least one of --instance, --destination, --since, --until, --job')
    }
  } catch (error) {
    console.error(`hookgate replay: ${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const producer = createRedis(config.redis, 'producer', log)
  const queues = createQueues({ config: config.queue, producer, log })
  try {
    if (!(await waitForReady(producer, 5000))) {
      console.error('hookgate replay: redis not reachable within 5 s')
      return 1
    }
    const result = await replayFailedDeliveries(queues, filter)
    console.log(JSON.stringify(result, null, 2))
    return 0
  } finally {
    await atMost(2000, queues.close())
    producer.disconnect()
  }
}

function describeSource(config: Config): string {
  return config.instancesSource.kind === 'file' ? config.instancesSource.path : 'the built-in default instance'
}

/**
 * The URLs to paste into Chatwoot, to stderr for a human. A token made here is shown (it is theirs to paste, and
 * nowhere else to be read); one given in HOOKGATE_DEFAULT_TOKEN is not, since container output is collected as logs.
 */
function printWebhookUrls(config: Config, port: number): void {
  const base = config.http.publicUrl.replace(`:${config.http.port}`, `:${port}`)
  const source = config.instancesSource
  const lines = config.instances.map((instance) => {
    const url = `  ${base}/webhook/chatwoot/${instance.id}`
    if (source.kind === 'default') return source.token === 'file' ? `${url}?token=${instance.tokens?.[0]}` : `${url}?token=$HOOKGATE_DEFAULT_TOKEN`
    return instance.tokens?.length ? `${url}?token=<one of its tokens>` : url
  })
  const hint = new URL(base).hostname === 'localhost' ? '\n(Chatwoot elsewhere? Set PUBLIC_URL to the address it reaches this gateway at.)' : ''
  console.error(`hookgate is listening. Point Chatwoot's webhook at:\n${lines.join('\n')}${hint}`)
}

/**
 * Resolves on the first SIGTERM or SIGINT (listening from the start, so a signal during start-up is not lost), or,
 * for a child of `hookgate start`, once its supervisor is gone: a supervisor killed with SIGKILL leaves no orphans.
 */
function shutdownSignal(log: Log, supervisorPid?: number): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: string) => {
      clearInterval(watch)
      log.info({ signal }, 'shutting down')
      resolve()
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
    const watch = supervisorPid ? setInterval(() => process.ppid !== supervisorPid && onSignal('supervisor gone'), 1000) : undefined
  })
}

/** Stops what runs; 0 when it stopped cleanly. */
async function stopCleanly(log: Log, running: { stop(): Promise<void> }): Promise<number> {
  try {
    await running.stop()
    return 0
  } catch (error) {
    log.error({ err: error }, 'shutdown failed')
    return 1
  }
}

const code = await main(process.argv.slice(2))
process.exit(code)
