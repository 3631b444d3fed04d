/**
 * Ingest benchmark: one hookgate API process, with rate limiting off and on (limits set high so nothing is refused),
 * against a bare Bun.serve doing the same lock + Queue.add (loadtest/baseline-server.ts); same Redis, same wrk load,
 * the order rotated each round so drift hits all alike.
 *
 *   bun loadtest/bench-ingest.ts [--rounds 3] [--duration 10] [--connections 64] [--threads 2] [--api-processes 1,2]
 *                                [--metrics-cost]
 *
 * Needs redis-server and wrk on PATH (apt-get install redis-server wrk). Every request is a realistic ~2.6 KB
 * Chatwoot message_created with a new message id, so each one takes the full path: auth, parse, lock, enqueue.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { Redis } from 'ioredis'
import { freePort } from '../src/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../test/fixtures/chatwoot.ts'
import { startRedis } from '../test/helpers/redis.ts'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    /** e.g. 1,2: compare `hookgate start` with that many API processes instead (no workers, limits high). */
    'api-processes': { type: 'string' },
    /** Compare one API process with metrics on and off (METRICS_ENABLED), rate limiting on, limits high. */
    'metrics-cost': { type: 'boolean' },
  },
})
const ROOT = join(import.meta.dir, '..')
const TOKEN = 'bench-token-0123456789abcdef'
const PLACEHOLDER_ID = 424242424242

interface Sample {
  rps: number
  p50: number
  p99: number
  non2xx: number
}

interface Target {
  name: string
  command: string[]
  env: Record<string, string>
  path: string
}

const work = mkdtempSync(join(tmpdir(), 'hookgate-bench-'))
const bodyFile = join(work, 'body.json')
writeFileSync(bodyFile, toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: PLACEHOLDER_ID })))
const instancesFile = join(work, 'instances.json')
writeFileSync(instancesFile, JSON.stringify({ instances: [{ id: 'bench', tokens: [TOKEN] }] }))

const redisServer = await startRedis()
const redisUrl = redisServer.url
const admin = new Redis(redisUrl)

const hookgate = (port: number, name: string, limits: Record<string, string>): Target => ({
  name,
  command: ['bun', join(ROOT, 'src/main.ts'), 'api'],
  env: { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, HOOKGATE_CONFIG: instancesFile, LOG_LEVEL: 'info', HOOKGATE_DATA_DIR: work, ...limits },
  path: `/webhook/chatwoot/bench?token=${TOKEN}`,
})
const HIGH = '1000000'
const supervised = (port: number, processes: number): Target => ({
  name: `hookgate start, API_PROCESSES=${processes}`,
  path: `/webhook/chatwoot/bench?token=${TOKEN}`,
  command: ['bun', join(ROOT, 'src/main.ts'), 'start'],
  env: {
    PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, HOOKGATE_CONFIG: instancesFile, LOG_LEVEL: 'info', HOOKGATE_DATA_DIR: work,
    API_PROCESSES: String(processes), WORKER_PROCESSES: '0', ...HIGH_LIMITS,
  },
})
const HIGH_LIMITS = { RATE_LIMIT_INSTANCE_PER_SECOND: HIGH, RATE_LIMIT_INSTANCE_BURST: HIGH, RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: HIGH }
const targets = (port: number): Target[] => {
  if (args['api-processes']) return args['api-processes'].split(',').map((n) => supervised(port, Number(n)))
  if (args['metrics-cost']) {
    return [hookgate(port, 'hookgate api, metrics on', HIGH_LIMITS), hookgate(port, 'hookgate api, metrics off', { ...HIGH_LIMITS, METRICS_ENABLED: 'false' })]
  }
  return [
    { name: 'baseline (Bun.serve + SET NX + Queue.add)', command: ['bun', join(ROOT, 'loadtest/baseline-server.ts'), String(port), redisUrl], env: {}, path: '/' },
    hookgate(port, 'hookgate api, rate limiting off', { RATE_LIMIT_ENABLED: 'false' }),
    hookgate(port, 'hookgate api, rate limiting on', HIGH_LIMITS),
  ]
}

const results = new Map<string, Sample[]>()
try {
  for (let round = 0; round < Number(args.rounds); round++) {
    const port = await freePort()
    const all = targets(port)
    const order = [...all.slice(round % all.length), ...all.slice(0, round % all.length)]
    for (const target of order) {
      const sample = await measure(target, port)
      results.set(target.name, [...(results.get(target.name) ?? []), sample])
      console.error(`round ${round + 1} ${target.name}: ${sample.rps.toFixed(0)} req/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, non-2xx ${sample.non2xx}`)
      await admin.flushall()
    }
  }
  report()
} finally {
  admin.disconnect()
  await redisServer.stop()
}

async function measure(target: Target, port: number): Promise<Sample> {
  // Logs go to /dev/null: the JSON is still built and written, as in production, without filling a disk.
  const server = Bun.spawn(target.command, { env: { ...process.env, ...target.env }, stdout: 'ignore', stderr: 'inherit' })
  try {
    await waitUntilServing(`http://127.0.0.1:${port}/health`, target.path === '/')
    await wrk(port, target.path, 2) // warm-up: JIT, connection pools
    return await wrk(port, target.path, Number(args.duration))
  } finally {
    server.kill()
    await server.exited
  }
}

async function waitUntilServing(url: string, anyAnswer: boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(url).then((r) => anyAnswer || r.ok, () => false)
    if (ok) return
    await Bun.sleep(50)
  }
  throw new Error(`${url} did not come up`)
}

async function wrk(port: number, path: string, seconds: number): Promise<Sample> {
  const run = Bun.spawn(
    ['wrk', '-t', args.threads!, '-c', args.connections!, '-d', `${seconds}s`, '--latency', '-s', join(ROOT, 'loadtest/wrk-webhook.lua'), `http://127.0.0.1:${port}`],
    { env: { ...process.env, BODY_FILE: bodyFile, WEBHOOK_PATH: path }, stdout: 'pipe', stderr: 'inherit' },
  )
  const out = await new Response(run.stdout).text()
  if ((await run.exited) !== 0) throw new Error(`wrk failed:\n${out}`)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: latencyMs(out, '50%'),
    p99: latencyMs(out, '99%'),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
  }
}

function latencyMs(out: string, percentile: string): number {
  const match = new RegExp(`^\\s+${percentile}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out)
  if (!match) throw new Error(`no ${percentile} latency in wrk output:\n${out}`)
  const value = Number(match[1])
  return Number((match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value).toFixed(2))
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function report(): void {
  const rows = targets(0).map(({ name }) => results.get(name)!).map((samples, i) => ({
    name: targets(0)[i]!.name,
    rps: median(samples.map((s) => s.rps)),
    p50: median(samples.map((s) => s.p50)),
    p99: median(samples.map((s) => s.p99)),
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
  }))
  console.log(`\nmedians of ${args.rounds} rounds, wrk -t${args.threads} -c${args.connections} -d${args.duration}s, ${args['api-processes'] ? 'hookgate start' : 'one API process'}, local Redis`)
  console.log('| target | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|')
  for (const row of rows) console.log(`| ${row.name} | ${row.rps.toFixed(0)} | ${row.p50} | ${row.p99} | ${row.non2xx} |`)
  const [first, ...others] = rows
  for (const row of others) console.log(`${row.name} / ${first!.name} throughput: ${(row.rps / first!.rps).toFixed(2)}`)
  const [off, on] = others
  if (!args['api-processes'] && off && on) console.log(`rate limiting costs ${((1 - on.rps / off.rps) * 100).toFixed(1)} % of throughput`)
}
