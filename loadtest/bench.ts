/**
 * The benchmark harness, `bun run bench` (`-- --quick` for a one-minute run). It starts its own Redis and measures, in
 * one run on this machine:
 *
 *   peak     peak req/s (wrk, closed loop) of hookgate start with each API_PROCESSES, and of two baselines on the same
 *            Redis: (a) bare Bun.serve doing only lock + Queue.add, our overhead floor; (b) Node + Express + SET NX +
 *            Queue.add, what operators run today. Rounds rotate the order so drift hits all alike; medians are kept.
 *   rate     latency at a fixed arrival rate (open loop, no coordinated omission) against hookgate, per second too
 *            (charted), with every answer accounted for against the events queued in Redis.
 *   workers  a webhook queue pre-filled with N events drained by `hookgate worker` into a local destination.
 *   pipeline the whole path at fixed rates: `hookgate start` (API and worker processes), one route to a local
 *            destination, an open-loop sender; ack and receive→deliver percentiles, lost and duplicated events, and
 *            Redis's work per event (INFO commandstats, CPU) on a Redis run as the embedded one is (AOF always);
 *            then the queue alone at the same rates (one BullMQ job per event, a no-op worker): what it costs Redis
 *            by itself, to set hookgate's cost per event against.
 *   metrics  (not by default) peak req/s of one API process with METRICS_ENABLED on and off.
 *   cluster  (not by default) peak req/s of one API process on the single Redis and on a 3-master Redis Cluster; then
 *            the pipeline on each, with each master's Redis CPU per event (per --cluster-shards count, and with
 *            --pipeline-baseline that checkout too).
 *
 * Writes bench/results/<time>.json, .md (the tables) and -rate.svg (the chart). Needs redis-server, wrk and node.
 *
 *   bun run bench [-- --quick] [--rounds 3] [--seconds 10] [--api-processes 1,2] [--rate 1000] [--rate-seconds 20]
 *                 [--events 20000] [--worker-processes 1] [--concurrency N] [--destination-ms 0]
 *                 [--pipeline-rates 500,1000,2000,3000] [--pipeline-seconds 10] [--pipeline-api-processes 1]
 *                 [--pipeline-worker-processes 1] [--pipeline-aof always|no] [--pipeline-mix messages|chatwoot]
 *                 [--conversations 200] [--cluster-shards 6] [--redis-cpus 1] [--scenarios peak,rate,workers,pipeline]
 *
 * --redis-cpus: the Redis processes of the pipeline, the queue alone and the cluster's pipeline run on these CPUs
 * (taskset), everything else (the gateway, the sender, the destination) on the others: Redis's work without the
 * gateway on its cores.
 */
import { Cluster, Redis } from 'ioredis'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../src/process/embedded-redis.ts'
import { QUEUE } from '../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../test/fixtures/chatwoot.ts'
import { shardPrefixes } from '../src/queue/shards.ts'
import { startCluster } from '../test/helpers/cluster.ts'
import { startRedis } from '../test/helpers/redis.ts'
import { runArrivalRate, type ArrivalRateResult } from './harness/arrival-rate.ts'
import { latencyChartSvg } from './harness/chart.ts'
import { hookgateEnv, startServer } from './harness/processes.ts'
import { median } from './harness/stats.ts'
import { measurePipeline, type PipelineMix, type PipelineResult } from './harness/pipeline.ts'
import { measureQueueFloor, type QueueFloorRow } from './harness/queue-floor.ts'
import { measureWorkers, type WorkerResult } from './harness/workers.ts'
import { runWrk, type WrkResult } from './harness/wrk.ts'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    'api-processes': { type: 'string', default: '1,2' },
    rate: { type: 'string', default: '1000' },
    'rate-seconds': { type: 'string' },
    events: { type: 'string' },
    'worker-processes': { type: 'string', default: '1' },
    concurrency: { type: 'string' },
    'destination-ms': { type: 'string', default: '0' },
    'pipeline-rates': { type: 'string' },
    'pipeline-seconds': { type: 'string' },
    'pipeline-api-processes': { type: 'string', default: '1' },
    'pipeline-worker-processes': { type: 'string', default: '1' },
    conversations: { type: 'string', default: '200' },
    'pipeline-mix': { type: 'string', default: 'messages' },
    'pipeline-baseline': { type: 'string' },
    'pipeline-aof': { type: 'string', default: 'always' },
    'cluster-shards': { type: 'string' },
    'redis-cpus': { type: 'string' },
    scenarios: { type: 'string', default: 'peak,rate,workers,pipeline' },
    out: { type: 'string', default: 'bench/results' },
  },
})
const quick = args.quick!
const settings = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  seconds: Number(args.seconds ?? (quick ? 3 : 10)),
  warmupSeconds: quick ? 1 : 2,
  connections: Number(args.connections),
  threads: Number(args.threads),
  apiProcesses: args['api-processes']!.split(',').map(Number),
  rate: Number(args.rate),
  rateSeconds: Number(args['rate-seconds'] ?? (quick ? 5 : 20)),
  events: Number(args.events ?? (quick ? 3000 : 20_000)),
  workerProcesses: args['worker-processes']!.split(',').map(Number),
  deliveryConcurrency: args.concurrency ? Number(args.concurrency) : undefined,
  destinationMs: Number(args['destination-ms']),
  pipeline: {
    rates: (args['pipeline-rates'] ?? (quick ? '500,1000' : '500,1000,2000,3000')).split(',').map(Number),
    seconds: Number(args['pipeline-seconds'] ?? (quick ? 4 : 10)),
    apiProcesses: Number(args['pipeline-api-processes']),
    workerProcesses: Number(args['pipeline-worker-processes']),
    conversations: Number(args.conversations),
    mix: args['pipeline-mix'] as PipelineMix,
    /** Another checkout (e.g. `git worktree add /tmp/base main`) measured the same way in the same run. */
    baseline: args['pipeline-baseline'],
    /** The pipeline's Redis: `always` as the embedded one runs (every write fsynced before it is answered), or `no`. */
    aof: args['pipeline-aof'] as 'always' | 'no',
  },
  /** REDIS_QUEUE_SHARDS of each cluster pipeline run (one run per count); unset: the gateway's default. */
  clusterShards: args['cluster-shards']?.split(',').map(Number) ?? [undefined],
  /** CPUs (a taskset list, e.g. `1`) of the measured Redis processes; the rest of the run is kept off them. */
  redisCpus: args['redis-cpus'],
  scenarios: new Set(args.scenarios!.split(',')),
}

const ROOT = join(import.meta.dir, '..')

/** With --redis-cpus: this process (and so every process it starts) on the other CPUs. */
if (settings.redisCpus) {
  const redisCpus = cpuList(settings.redisCpus)
  const others = Array.from({ length: availableParallelism() }, (_, cpu) => cpu).filter((cpu) => !redisCpus.includes(cpu))
  if (others.length === 0) throw new Error(`--redis-cpus ${settings.redisCpus} leaves no CPU for the rest`)
  taskset(others.join(','), process.pid)
}

/** A measured Redis process onto --redis-cpus (when given). */
function pinRedis(pid: number): void {
  if (settings.redisCpus) taskset(settings.redisCpus, pid)
}

function taskset(cpus: string, pid: number): void {
  const pinned = Bun.spawnSync(['taskset', '--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdout: 'ignore', stderr: 'pipe' })
  if (pinned.exitCode !== 0) throw new Error(`taskset ${cpus} ${pid} failed: ${pinned.stderr.toString()}`)
}

/** `1,3-5` → [1, 3, 4, 5]. */
function cpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to = from] = part.split('-').map(Number)
    return Array.from({ length: to! - from! + 1 }, (_, i) => from! + i)
  })
}

const TOKEN = 'bench-token-0123456789abcdef'
/** A message id the wrk script and the arrival-rate client replace with a fresh one per request. */
const PLACEHOLDER_ID = 424242424242
const body = toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: PLACEHOLDER_ID }))
/** The body around each place the id goes (the event's id, and its conversation's last message's). */
const bodyParts = body.split(String(PLACEHOLDER_ID))
const bodyWithId = (id: number) => bodyParts.join(String(id))

const work = mkdtempSync(join(tmpdir(), 'hookgate-bench-'))
const bodyFile = join(work, 'body.json')
writeFileSync(bodyFile, body)
const instancesFile = join(work, 'instances.json')
// A route for the events sent (an event no route wants is logged, not queued); the peak and rate scenarios run no
// worker, so nothing is delivered to it.
const routes = [{ events: ['message_created'], destination: { url: 'http://127.0.0.1:9/unreached' } }]
writeFileSync(instancesFile, JSON.stringify({ instances: [{ id: 'bench', tokens: [TOKEN], routes }] }))

/**
 * Events in a target's webhook queue, whatever their state: a job of events accepted together (hookgate's batches)
 * counts each of them.
 */
const COUNT_EVENTS = `
local n = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local ids = {}
  if kind == 'list' then ids = redis.call('LRANGE', key, 0, -1) elseif kind == 'zset' then ids = redis.call('ZRANGE', key, 0, -1) end
  for _, id in ipairs(ids) do
    local data = redis.call('HGET', ARGV[1] .. id, 'data')
    if data and string.sub(data, 1, 11) == '{"events":[' then n = n + #cjson.decode(data).events else n = n + 1 end
  end
end
return n
`

interface Target {
  name: string
  kind: 'hookgate' | 'floor' | 'express'
  /** Where its jobs go (each queue shard's prefix), to count them (on the harness's Redis unless `redis` says otherwise). */
  prefixes: string[]
  redis?: Redis
  start(port: number): ReturnType<typeof startServer>
  path: string
}

const hookgate = (apiProcesses: number, extraEnv: Record<string, string> = {}, note = ''): Target => ({
  name: `hookgate, API_PROCESSES=${apiProcesses}${note}`,
  kind: 'hookgate',
  // A cluster splits the queues into REDIS_QUEUE_SHARDS (6 by default) shards.
  prefixes: shardPrefixes('{hookgate}', extraEnv.REDIS_CLUSTER_NODES ? 6 : 1),
  path: `/webhook/chatwoot/bench?token=${TOKEN}`,
  start: (port) =>
    startServer(
      `hookgate API_PROCESSES=${apiProcesses}`,
      ['bun', join(ROOT, 'src/main.ts'), 'start'],
      { ...hookgateEnv({ port, redisUrl, instancesFile, work, apiProcesses, workerProcesses: 0 }), ...extraEnv },
      `http://127.0.0.1:${port}/health`,
    ),
})
const floor: Target = {
  name: 'baseline (a): bare Bun.serve + SET NX + Queue.add',
  kind: 'floor',
  prefixes: ['{baseline}'],
  path: '/',
  start: (port) => startServer('bun baseline', ['bun', join(ROOT, 'loadtest/baselines/bun-server.ts'), String(port), redisUrl], {}, `http://127.0.0.1:${port}/`),
}
const express: Target = {
  name: 'baseline (b): Node + Express + SET NX + Queue.add',
  kind: 'express',
  prefixes: ['{express}'],
  path: '/webhook/chatwoot/bench',
  start: (port) =>
    startServer('express baseline', ['node', join(ROOT, 'loadtest/baselines/express-server.mjs'), String(port), redisUrl], {}, `http://127.0.0.1:${port}/health`),
}

interface PeakRun extends WrkResult {
  accepted: number
  queued: number
  lost: number
}

const redisServer = await startRedis()
const redisUrl = redisServer.url
const redis = new Redis(redisUrl)
const startedAt = new Date()
const began = performance.now()
const results: {
  peak?: { target: string; kind: Target['kind']; runs: PeakRun[]; median: PeakRun }[]
  metrics?: Awaited<ReturnType<typeof peak>>
  cluster?: Awaited<ReturnType<typeof peak>>
  clusterPipeline?: PipelineResult[]
  rate?: ArrivalRateResult & { target: string; accepted: number; queued: number; lost: number; unanswered: number }
  workers?: WorkerResult[]
  pipeline?: PipelineResult[]
  queueFloor?: QueueFloorRow[]
} = {}

try {
  if (settings.scenarios.has('peak')) results.peak = await peak([express, floor, ...settings.apiProcesses.map((n) => hookgate(n))])
  if (settings.scenarios.has('metrics')) results.metrics = await peak([hookgate(1), hookgate(1, { METRICS_ENABLED: 'false' }, ', metrics off')])
  if (settings.scenarios.has('cluster')) {
    results.cluster = await onCluster()
    results.clusterPipeline = await pipelineOnCluster()
  }
  if (settings.scenarios.has('rate')) results.rate = await fixedRate()
  if (settings.scenarios.has('workers')) results.workers = await workers()
  if (settings.scenarios.has('pipeline')) {
    results.pipeline = await pipeline()
    results.queueFloor = await queueFloor()
  }
  report()
} finally {
  redis.disconnect()
  await redisServer.stop()
}

async function peak(targets: Target[]) {
  const runs = new Map<Target, PeakRun[]>(targets.map((t) => [t, []]))
  for (let round = 0; round < settings.rounds; round++) {
    const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]
    for (const target of order) {
      await redis.flushall()
      const port = await freePort()
      const server = await target.start(port)
      try {
        const url = `http://127.0.0.1:${port}${target.path}`
        const wrk = { url, connections: settings.connections, threads: settings.threads, bodyFile }
        await runWrk({ ...wrk, seconds: settings.warmupSeconds }) // JIT, connection pools
        const before = await settledEventCount(target, port)
        const result = await runWrk({ ...wrk, seconds: settings.seconds })
        const queued = (await settledEventCount(target, port)) - before
        const accepted = result.requests - result.non2xx
        // wrk stops counting at its deadline with up to one request per connection in flight: those may be queued
        // unanswered (queued > accepted); an answered request not queued would be a loss.
        const run = { ...result, accepted, queued, lost: Math.max(0, accepted - queued) }
        runs.get(target)!.push(run)
        log(`peak round ${round + 1}, ${target.name}: ${result.rps} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, non-2xx ${result.non2xx}, accepted ${accepted}, queued ${queued}`)
      } finally {
        await server.stop()
      }
    }
  }
  return targets.map((target) => {
    const all = runs.get(target)!
    const mid = (pick: (r: PeakRun) => number) => median(all.map(pick))
    return {
      target: target.name,
      kind: target.kind,
      runs: all,
      median: {
        requests: mid((r) => r.requests),
        rps: Math.round(mid((r) => r.rps)),
        non2xx: all.reduce((n, r) => n + r.non2xx, 0),
        socketErrors: all.reduce((n, r) => n + r.socketErrors, 0),
        p50: mid((r) => r.p50),
        p95: mid((r) => r.p95),
        p99: mid((r) => r.p99),
        max: mid((r) => r.max),
        accepted: all.reduce((n, r) => n + r.accepted, 0),
        queued: all.reduce((n, r) => n + r.queued, 0),
        lost: all.reduce((n, r) => n + r.lost, 0),
      },
    }
  })
}

/** Peak of one API process on the single Redis and on a Redis Cluster of three masters, in the same run. */
async function onCluster() {
  // No persistence, like the harness's single Redis: the same work on both.
  const cluster = await startCluster({ persistent: false })
  const clusterClient = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: null } })
  try {
    const onIt = { ...hookgate(1, cluster.env, ', Redis Cluster (3 masters)'), redis: clusterClient as unknown as Redis }
    return await peak([hookgate(1, {}, ', single Redis'), onIt])
  } finally {
    clusterClient.disconnect()
    await cluster.stop()
  }
}

/**
 * The pipeline at the same rates on one Redis and on a 3-master Redis Cluster (the queues in six shards), both with
 * AOF fsynced always: events delivered, and each Redis's CPU per event. The masters share this machine's cores, so
 * what shows scale-out is each master's share of the work, not events/s.
 */
async function pipelineOnCluster(): Promise<PipelineResult[]> {
  const { baseline, aof: _, ...common } = settings.pipeline
  const label = `API_PROCESSES=${common.apiProcesses}, WORKER_PROCESSES=${common.workerProcesses}`
  const measured: PipelineResult[] = []
  const single = await startRedis({ aof: 'always' })
  pinRedis(single.pid())
  try {
    measured.push(await measurePipeline({ redisUrl: single.url, work, ...common, root: ROOT, label: `${label}, single Redis`, ordered: true, log }))
  } finally {
    await single.stop()
  }
  // Each --cluster-shards count, and with --pipeline-baseline that checkout, on a cluster of its own, in the same run.
  const onCluster = settings.clusterShards.flatMap((shards) => {
    const named = `${label}, Redis Cluster (3 masters)${shards ? `, ${shards} shards` : ''}`
    return [{ root: ROOT, label: named, shards }, ...(baseline ? [{ root: baseline, label: `${named}, baseline ${baseline}`, shards }] : [])]
  })
  for (const { shards, ...run } of onCluster) {
    const cluster = await startCluster()
    cluster.pids().forEach(pinRedis)
    try {
      const masterUrls = cluster.ports.map((port) => `redis://127.0.0.1:${port}`)
      const env = { ...cluster.env, ...(shards && { REDIS_QUEUE_SHARDS: String(shards) }) }
      measured.push(await measurePipeline({ redisUrl: masterUrls[0]!, cluster: { env, masterUrls }, work, ...common, ...run, ordered: true, log }))
    } finally {
      await cluster.stop()
    }
  }
  return measured
}

async function fixedRate() {
  const target = hookgate(Math.max(...settings.apiProcesses))
  await redis.flushall()
  const port = await freePort()
  const server = await target.start(port)
  try {
    const url = `http://127.0.0.1:${port}${target.path}`
    const firstId = 10_000_000_000
    await runArrivalRate({ url, rate: settings.rate, seconds: 1, body: (i) => bodyWithId(firstId - 1_000_000 + i) }) // warm-up
    const before = await settledEventCount(target, port)
    const run = await runArrivalRate({ url, rate: settings.rate, seconds: settings.rateSeconds, body: (i) => bodyWithId(firstId + i) })
    const queued = (await settledEventCount(target, port)) - before
    const accepted = run.statuses[202] ?? 0
    log(`rate ${settings.rate}/s for ${settings.rateSeconds} s, ${target.name}: p50 ${run.latency.p50} ms, p95 ${run.latency.p95} ms, p99 ${run.latency.p99} ms, accepted ${accepted}/${run.sent}, queued ${queued}`)
    return { ...run, target: target.name, accepted, queued, lost: Math.max(0, accepted - queued), unanswered: Math.max(0, queued - accepted) }
  } finally {
    await server.stop()
  }
}

async function workers() {
  const all: WorkerResult[] = []
  for (const workerProcesses of settings.workerProcesses) {
    await redis.flushall()
    const result = await measureWorkers({
      redisUrl,
      prefix: '{hookgate}',
      work,
      events: settings.events,
      workerProcesses,
      deliveryConcurrency: settings.deliveryConcurrency,
      destinationMs: settings.destinationMs,
    })
    log(`workers ×${workerProcesses}: ${result.eventsPerSecond} events/s, end to end p50 ${result.endToEnd.p50} ms, p99 ${result.endToEnd.p99} ms, duplicates ${result.duplicates}`)
    all.push(result)
  }
  return all
}

/** The whole path at each rate, on a Redis of its own run as the embedded one is (AOF, fsync always) unless told. */
async function pipeline(): Promise<PipelineResult[]> {
  const { baseline, aof, ...common } = settings.pipeline
  const label = `API_PROCESSES=${common.apiProcesses}, WORKER_PROCESSES=${common.workerProcesses}`
  // What keeping conversations in order costs: the same route with `"ordered": false`, in the same run.
  const runs = [
    { root: ROOT, label, ordered: true },
    { root: ROOT, label: `${label}, route "ordered": false`, ordered: false },
    ...(baseline ? [{ root: baseline, label: `${label}, baseline ${baseline}`, ordered: true }] : []),
  ]
  const measured: PipelineResult[] = []
  for (const run of runs) {
    const pipelineRedis = await startRedis(aof === 'always' ? { aof } : {})
    pinRedis(pipelineRedis.pid())
    try {
      measured.push(await measurePipeline({ redisUrl: pipelineRedis.url, work, ...common, ...run, log }))
    } finally {
      await pipelineRedis.stop()
    }
  }
  return measured
}

/** BullMQ alone at the pipeline's rates, on a Redis run as the pipeline's: what one job per event costs by itself. */
async function queueFloor(): Promise<QueueFloorRow[]> {
  const floorRedis = await startRedis(settings.pipeline.aof === 'always' ? { aof: 'always' } : {})
  pinRedis(floorRedis.pid())
  try {
    const rows = await measureQueueFloor({ redisUrl: floorRedis.url, rates: settings.pipeline.rates, seconds: settings.pipeline.seconds, concurrency: 200 })
    for (const row of rows) log(`the queue alone ${row.rate}/s: Redis CPU ${row.redis.cpuUsecPerEvent} µs, ${row.redis.scriptsPerEvent} scripts, ${row.redis.commandsPerEvent} commands per job`)
    return rows
  } finally {
    await floorRedis.stop()
  }
}

async function eventCount(target: Target): Promise<number> {
  const client = target.redis ?? redis
  const counts = await Promise.all(
    target.prefixes.map((prefix) => {
      const queue = `${prefix}:${QUEUE.webhook}:`
      const keys = ['wait', 'paused', 'active', 'delayed', 'prioritized', 'failed'].map((state) => queue + state)
      return client.eval(COUNT_EVENTS, keys.length, ...keys, queue) as Promise<number>
    }),
  )
  return counts.reduce((sum, n) => sum + n, 0)
}

/**
 * The event count once requests still in the server (wrk's last ones) have been handled, and hookgate's spool (events
 * answered `spooled` while Redis was slower than REDIS_ENQUEUE_BUDGET_MS) has been queued: stable for 200 ms.
 */
async function settledEventCount(target: Target, port: number): Promise<number> {
  await spoolDrained(target, port)
  let last = -1
  for (;;) {
    const count = await eventCount(target)
    if (count === last) return count
    last = count
    await Bun.sleep(200)
  }
}

/** Waits (up to a minute) until the hookgate under test has queued what it spooled; the spool outlives the process. */
async function spoolDrained(target: Target, port: number): Promise<void> {
  if (target.kind !== 'hookgate') return
  for (let waited = 0; waited < 60_000; waited += 200) {
    const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { spool: { pending: number } }
    if (health.spool.pending === 0) return
    await Bun.sleep(200)
  }
  log(`${target.name}: its spool still holds events after a minute; they count as not queued`)
}

function report() {
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-')
  mkdirSync(args.out!, { recursive: true })
  const lines: string[] = [
    `# hookgate benchmark, ${startedAt.toISOString()}`,
    '',
    `${availableParallelism()} CPUs, Bun ${Bun.version}, Node ${(Bun.spawnSync(['node', '--version']).stdout.toString() || '?').trim()}, one local redis-server; ` +
      `load generator on the same machine. ${settings.redisCpus ? `The measured Redis processes on CPU ${settings.redisCpus}, the rest on the others. ` : ''}${quick ? 'Quick run. ' : ''}Took ${Math.round((performance.now() - began) / 1000)} s.`,
  ]
  const peakTable = (rows: NonNullable<typeof results.peak>) => [
    '| target | req/s | p50 ms | p95 ms | p99 ms | max ms | non-2xx | accepted | events queued | lost |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(({ target, median: m }) => `| ${target} | ${m.rps} | ${m.p50} | ${m.p95} | ${m.p99} | ${m.max} | ${m.non2xx} | ${m.accepted} | ${m.queued} | ${m.lost} |`),
  ]
  const wrkSettings = `wrk -t${settings.threads} -c${settings.connections} -d${settings.seconds}s, median of ${settings.rounds} round(s)`
  if (results.peak) {
    lines.push(
      '',
      `## Peak throughput (${wrkSettings})`,
      '',
      ...peakTable(results.peak),
      '',
      'accepted: 2xx answers over all rounds; events queued: the events those runs left in the queue, in jobs of one or of several (may exceed accepted by the requests in flight when wrk stopped); lost: accepted and not queued.',
    )
    const best = results.peak.filter((p) => p.kind === 'hookgate').sort((a, b) => b.median.rps - a.median.rps)[0]
    const floorRps = results.peak.find((p) => p.kind === 'floor')!.median.rps
    const expressRps = results.peak.find((p) => p.kind === 'express')!.median.rps
    if (best) {
      lines.push(
        '',
        `hookgate's peak (${best.target}): **${(best.median.rps / expressRps).toFixed(2)}×** the Express baseline, **${Math.round((best.median.rps / floorRps) * 100)} %** of the bare-Bun floor.`,
      )
    }
  }
  if (results.metrics) {
    const [on, off] = results.metrics
    lines.push('', `## Cost of metrics on the hot path (${wrkSettings})`, '', ...peakTable(results.metrics), '')
    lines.push(`Metrics on: ${Math.round((on!.median.rps / off!.median.rps) * 1000) / 10} % of the throughput with them off.`)
  }
  if (results.cluster) {
    const [single, clustered] = results.cluster
    lines.push('', `## Single Redis vs Redis Cluster (${wrkSettings})`, '', ...peakTable(results.cluster), '')
    lines.push(`On the cluster: ${Math.round((clustered!.median.rps / single!.median.rps) * 1000) / 10} % of the throughput on one Redis.`)
  }
  if (results.clusterPipeline) {
    lines.push(
      '',
      `## Pipeline on one Redis and on a 3-master Redis Cluster (${settings.pipeline.seconds} s per rate, AOF fsync always on every node)`,
      '',
      '| Redis | rate/s | delivered/s | receive→deliver p50 / p99 ms | lost / dup | Redis CPU µs/event, all nodes | per node | per node ÷ single Redis | scripts/event | µs a script | round trips/event, all nodes | per node |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...results.clusterPipeline.flatMap((p) =>
        p.rows.map((r) => {
          // Each node's share of the single Redis's work at the same rate: a third each is even scale-out over three.
          const single = results.clusterPipeline![0]!.rows.find((row) => row.rate === r.rate)!.redis.cpuUsecPerEvent
          const shares = r.redisCpuUsecPerNode.map((usec) => (usec / single).toFixed(2)).join(', ')
          const scriptPrice = Math.round(r.redis.scriptUsecPerEvent / Math.max(0.01, r.redis.scriptsPerEvent))
          return `| ${p.label.split(', ').slice(2).join(', ')} | ${r.rate} | ${Math.round(r.delivered / r.seconds)} | ${r.deliver.p50} / ${r.deliver.p99} | ${r.lost} / ${r.duplicated} | ${r.redis.cpuUsecPerEvent} | ${r.redisCpuUsecPerNode.join(', ')} | ${shares} | ${r.redis.scriptsPerEvent} | ${scriptPrice} | ${r.redis.readsPerEvent} | ${r.redisRoundTripsPerNode.join(', ')} |`
        }),
      ),
    )
  }
  if (results.rate) {
    const r = results.rate
    const chart = `${stamp}-rate.svg`
    writeFileSync(join(args.out!, chart), latencyChartSvg(`${r.target}: ${r.rate} req/s for ${r.seconds} s, latency per second`, r.perSecond))
    lines.push(
      '',
      `## Fixed arrival rate: ${r.rate} req/s for ${r.seconds} s (open loop; latency from when each request was due)`,
      '',
      '| target | sent | p50 ms | p95 ms | p99 ms | max ms | answers | accepted | events queued | lost | queued, never answered |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      `| ${r.target} | ${r.sent} | ${r.latency.p50} | ${r.latency.p95} | ${r.latency.p99} | ${r.latency.max} | ${Object.entries(r.statuses).map(([s, n]) => `${s === '0' ? 'no answer' : s}: ${n}`).join(', ')} | ${r.accepted} | ${r.queued} | ${r.lost} | ${r.unanswered} |`,
      '',
      `![latency percentiles per second](${chart})`,
    )
  }
  if (results.workers) {
    lines.push(
      '',
      `## Workers: ${settings.events} queued events drained into a local destination answering 200 after ${settings.destinationMs} ms`,
      '',
      '| worker processes | delivery concurrency | events/s | seconds | accepted → delivered p50 ms | p95 ms | p99 ms | duplicates |',
      '|---|---|---|---|---|---|---|---|',
      ...results.workers.map(
        (w) => `| ${w.workerProcesses} | ${w.deliveryConcurrency} | ${w.eventsPerSecond} | ${w.seconds} | ${w.endToEnd.p50} | ${w.endToEnd.p95} | ${w.endToEnd.p99} | ${w.duplicates} |`,
      ),
      '',
      'The queue is filled first, so accepted → delivered is mostly the wait behind the backlog.',
    )
  }
  for (const p of results.pipeline ?? []) {
    lines.push(
      '',
      `## Pipeline: hookgate start (${p.label}), one route to a local destination, ${p.conversations} conversations, ${p.mix === 'chatwoot' ? 'each message with the contact_updated and conversation_updated Chatwoot sends beside it (routed: messages only)' : 'every event a routed message'}, ${settings.pipeline.seconds} s per rate`,
      '',
      '| rate/s | accepted | routed | ack p50 ms | p95 | p99 | receive→deliver p50 ms | p95 | p99 | delivered | lost | duplicated | Redis CPU µs/event | scripts/event | commands/event | Redis round trips/event | API CPU ms/1k | worker CPU ms/1k |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...p.rows.map(
        (r) =>
          `| ${r.rate} | ${r.accepted} | ${r.routed} | ${r.ack.p50} | ${r.ack.p95} | ${r.ack.p99} | ${r.deliver.p50} | ${r.deliver.p95} | ${r.deliver.p99} | ${r.delivered} | ${r.lost} | ${r.duplicated} | ${r.redis.cpuUsecPerEvent} | ${r.redis.scriptsPerEvent} | ${r.redis.commandsPerEvent} | ${r.redis.readsPerEvent} | ${r.cpuMsPer1000.api} | ${r.cpuMsPer1000.worker} |`,
      ),
      '',
      'Redis work per event over each run and its drain (INFO commandstats and used_cpu deltas ÷ accepted events; commands include those scripts call; round trips: the socket reads Redis made, total_reads_processed). Commands per event at the first rate:',
      '',
      '| command | calls/event | µs/event |',
      '|---|---|---|',
      ...(p.rows[0]?.redis.breakdown ?? []).filter((b) => b.perEvent >= 0.05).map((b) => `| ${b.command} | ${b.perEvent} | ${b.usecPerEvent} |`),
    )
  }
  if (results.queueFloor) {
    const hookgate = results.pipeline?.[0]
    lines.push(
      '',
      `## The queue alone: one BullMQ job per event (the same body, removed once completed), a worker that does nothing, ${settings.pipeline.seconds} s per rate`,
      '',
      `What any gateway that queues each event as a BullMQ job costs Redis at least; the last column is the first pipeline's Redis CPU per event over it.`,
      '',
      '| rate/s | jobs | Redis CPU µs/job | scripts/job | commands/job | hookgate ÷ queue alone |',
      '|---|---|---|---|---|---|',
      ...results.queueFloor.map((f) => {
        const row = hookgate?.rows.find((r) => r.rate === f.rate)
        const ratio = row ? `${Math.round((row.redis.cpuUsecPerEvent / f.redis.cpuUsecPerEvent) * 100) / 100}×` : '–'
        return `| ${f.rate} | ${f.jobs} | ${f.redis.cpuUsecPerEvent} | ${f.redis.scriptsPerEvent} | ${f.redis.commandsPerEvent} | ${ratio} |`
      }),
    )
  }
  const markdown = `${lines.join('\n')}\n`
  writeFileSync(join(args.out!, `${stamp}.md`), markdown)
  writeFileSync(join(args.out!, `${stamp}.json`), JSON.stringify({ startedAt, settings: { ...settings, scenarios: [...settings.scenarios] }, results }, null, 2))
  console.log(`\n${markdown}\nwritten to ${join(args.out!, stamp)}.{md,json}`)
}

function log(line: string) {
  console.error(`[${Math.round((performance.now() - began) / 1000)} s] ${line}`)
}
