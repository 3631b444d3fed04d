import { Redis } from 'ioredis'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../../test/fixtures/chatwoot.ts'
import { runArrivalRate } from './arrival-rate.ts'
import { hookgateEnv, startServer } from './processes.ts'
import { latencies, type Latencies } from './stats.ts'
import { redisCost, redisSnapshot, type RedisCost, type RedisSnapshot } from './redis-cost.ts'

export interface PipelineRow {
  rate: number
  seconds: number
  sent: number
  accepted: number
  /** Accepted events a route wants: those the destination must get. */
  routed: number
  /** Webhook answers, from when each request was due (open loop). */
  ack: Latencies
  /** From when the sender built the request to when the destination had it. */
  deliver: Latencies
  delivered: number
  /** Accepted and routed, never delivered. */
  lost: number
  /** Deliveries past the first of an event. */
  duplicated: number
  redis: RedisCost
  /** Redis CPU µs per event on each node (one on a single Redis, each master of a cluster). */
  redisCpuUsecPerNode: number[]
  /** Round trips (socket reads) per event on each node. */
  redisRoundTripsPerNode: number[]
  /** CPU ms of each role's processes, per 1,000 events. */
  cpuMsPer1000: { api: number; worker: number }
}

export interface PipelineResult {
  label: string
  apiProcesses: number
  workerProcesses: number
  conversations: number
  /** `chatwoot`: each customer message comes with the contact_updated and conversation_updated Chatwoot sends with it. */
  mix: PipelineMix
  rows: PipelineRow[]
}

/**
 * `messages`: every event a message_created the route wants. `chatwoot`: as an account webhook subscribed to everything
 * gets them, each message_created with the contact_updated (its last_activity_at) and conversation_updated Chatwoot
 * sends beside it, which the route does not want: a third of the events are delivered.
 */
export type PipelineMix = 'messages' | 'chatwoot'

const TOKEN = 'bench-token-0123456789abcdef'
/** After the sender stops, how long the pipeline may take to deliver what is left before the rest counts as lost. */
const DRAIN_LIMIT_MS = 60_000

/**
 * The path users run, end to end: `hookgate start` (API and worker processes), one route to a local destination that
 * answers 200 at once, and an open-loop sender at fixed rates. Each event carries when it was sent; the destination
 * notes when it arrives. Per rate: ack and receive→deliver percentiles, lost and duplicated events, and what each event
 * cost Redis (INFO commandstats and CPU deltas over the run and its drain, divided by events) and each role's processes.
 */
export async function measurePipeline(options: {
  /** The Redis the gateway runs on and whose work is counted. */
  redisUrl: string
  /** Run on a Redis Cluster instead: its env (REDIS_CLUSTER_NODES) and its masters, whose work is counted each. */
  cluster?: { env: Record<string, string>; masterUrls: string[] }
  work: string
  rates: number[]
  seconds: number
  apiProcesses: number
  workerProcesses: number
  /** Events spread over this many conversations, in turn. */
  conversations: number
  mix: PipelineMix
  /** false: the route sets `"ordered": false` (a conversation's deliveries in parallel). */
  ordered: boolean
  label: string
  /** The checkout whose `src/main.ts` runs (another one measures a baseline in the same run). */
  root: string
  log: (line: string) => void
}): Promise<PipelineResult> {
  const { redisUrl, work, rates, seconds, conversations, log } = options
  const sentAt = new Map<number, number>()
  const deliveredAt = new Map<number, number>()
  let duplicated = 0
  let onDelivery = () => {}
  const destination = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const body = await request.text()
      const id = Number(/"id":(\d+),"inbox"/.exec(body)?.[1])
      if (deliveredAt.has(id)) duplicated++
      else deliveredAt.set(id, performance.now())
      onDelivery()
      return Response.json({ ok: true })
    },
  })
  const instancesFile = join(work, `pipeline-${destination.port}.json`)
  await Bun.write(
    instancesFile,
    JSON.stringify({
      instances: [
        {
          id: 'bench',
          tokens: [TOKEN],
          routes: [
            {
              events: ['message_created'],
              destination: { url: `http://127.0.0.1:${destination.port}/hook`, secret: 'bench-signing-secret-0123' },
              ...(!options.ordered && { ordered: false }),
            },
          ],
        },
      ],
    }),
  )
  const port = await freePort()
  const gateway = await startServer(
    `hookgate start (${options.label})`,
    ['bun', join(options.root, 'src/main.ts'), 'start'],
    { ...hookgateEnv({ port, redisUrl, instancesFile, work, apiProcesses: options.apiProcesses, workerProcesses: options.workerProcesses }), ...options.cluster?.env },
    `http://127.0.0.1:${port}/health`,
  )
  const nodes = (options.cluster?.masterUrls ?? [redisUrl]).map((url) => new Redis(url))
  const url = `http://127.0.0.1:${port}/webhook/chatwoot/bench?token=${TOKEN}`
  const template = eventTemplate()
  const others = companionTemplates()
  /** Whether request i is a message the route wants. */
  const isRouted = (i: number) => options.mix === 'messages' || i % 3 === 0
  let nextId = 30_000_000_000
  const send = (rate: number, runSeconds: number) => {
    const first = nextId
    nextId += Math.round(rate * runSeconds) + 1
    return runArrivalRate({
      url,
      rate,
      seconds: runSeconds,
      body: (i) => {
        const id = first + i
        const conversation = 1 + (Math.floor(options.mix === 'messages' ? i : i / 3) % conversations)
        if (!isRouted(i)) return others[i % 3 === 1 ? 0 : 1]!(id, conversation)
        sentAt.set(id, performance.now())
        return template(id, conversation)
      },
    })
  }
  const rows: PipelineRow[] = []
  try {
    // Warm-up: JIT, connection pools, the destination's keep-alive connections.
    await send(Math.min(...rates), 2)
    await drained(() => sentAt.size)
    for (const rate of rates) {
      sentAt.clear()
      deliveredAt.clear()
      duplicated = 0
      const before = await snapshot(nodes, gateway.pid)
      const run = await send(rate, seconds)
      const accepted = (run.statuses[202] ?? 0) + (run.statuses[200] ?? 0)
      const routed = run.statusOf.reduce((n, status, i) => n + (isRouted(i) && status >= 200 && status < 300 ? 1 : 0), 0)
      await drained(() => routed)
      const after = await snapshot(nodes, gateway.pid)
      const deliver = latencies([...deliveredAt].map(([id, at]) => at - sentAt.get(id)!))
      const cpu = (role: 'api' | 'worker') => Math.round(((after.cpuMs[role] - before.cpuMs[role]) / Math.max(1, accepted)) * 1000 * 10) / 10
      const row: PipelineRow = {
        rate,
        seconds,
        sent: run.sent,
        accepted,
        routed,
        ack: run.latency,
        deliver,
        delivered: deliveredAt.size,
        lost: Math.max(0, routed - deliveredAt.size),
        duplicated,
        redis: redisCost(mergeSnapshots(before.redis), mergeSnapshots(after.redis), accepted),
        redisCpuUsecPerNode: before.redis.map((then, node) => Math.round((after.redis[node]!.cpuUsec - then.cpuUsec) / Math.max(1, accepted))),
        redisRoundTripsPerNode: before.redis.map((then, node) => Math.round(((after.redis[node]!.reads - then.reads) / Math.max(1, accepted)) * 100) / 100),
        cpuMsPer1000: { api: cpu('api'), worker: cpu('worker') },
      }
      rows.push(row)
      log(
        `pipeline ${options.label} ${rate}/s: ack p95 ${row.ack.p95} ms, deliver p50 ${deliver.p50} p99 ${deliver.p99} ms, ` +
          `lost ${row.lost}, dup ${duplicated}, Redis CPU ${row.redis.cpuUsecPerEvent} µs (scripts ${row.redis.scriptUsecPerEvent} µs), ` +
          `${row.redis.scriptsPerEvent} scripts, ${row.redis.commandsPerEvent} commands, ${row.redis.readsPerEvent} round trips per event`,
      )
    }
  } finally {
    for (const node of nodes) node.disconnect()
    await gateway.stop()
    destination.stop(true)
  }
  return { label: options.label, apiProcesses: options.apiProcesses, workerProcesses: options.workerProcesses, conversations, mix: options.mix, rows }

  /** Resolves once `expected()` events were delivered, or once nothing new arrived for DRAIN_LIMIT_MS. */
  async function drained(expected: () => number): Promise<void> {
    for (;;) {
      if (deliveredAt.size >= expected()) return
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), DRAIN_LIMIT_MS)
        onDelivery = () => {
          clearTimeout(timer)
          resolve(true)
        }
      })
      if (!(await arrived)) return
    }
  }
}

/** A message_created body with a fresh message id and a conversation, as the wrk and rate scenarios send. */
function eventTemplate(): (id: number, conversation: number) => string {
  const ID = 424242424242
  const CONVERSATION = 919191
  const parts = toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: ID, conversationId: CONVERSATION }))
    .split(String(CONVERSATION))
    .map((part) => part.split(String(ID)))
  return (id, conversation) => parts.map((part) => part.join(String(id))).join(String(conversation))
}

/** The contact_updated and conversation_updated of a message: fresh each (their identities include the change). */
function companionTemplates(): ((id: number, conversation: number) => string)[] {
  const STAMP = '2026-09-21T13:33:20.301Z'
  const contact = toChatwootJson(chatwoot.contactUpdated(STAMP))
  const UPDATED = 919191.5
  const CONVERSATION = 818181
  const conversationParts = toChatwootJson(chatwoot.conversationUpdated({ conversationId: CONVERSATION, updatedAt: UPDATED }))
    .split(String(UPDATED))
    .map((part) => part.split(String(CONVERSATION)))
  return [
    (id) => contact.replaceAll(STAMP, `stamp-${id}`),
    (id, conversation) => conversationParts.map((part) => part.join(String(conversation))).join(`${id}.5`),
  ]
}

async function snapshot(nodes: Redis[], supervisorPid: number): Promise<{ redis: RedisSnapshot[]; cpuMs: { api: number; worker: number } }> {
  return { redis: await Promise.all(nodes.map(redisSnapshot)), cpuMs: childCpuMs(supervisorPid) }
}

/** Several nodes' work as one. */
function mergeSnapshots(snapshots: RedisSnapshot[]): RedisSnapshot {
  const commands = new Map<string, { calls: number; usec: number }>()
  for (const snapshot of snapshots) {
    for (const [command, { calls, usec }] of snapshot.commands) {
      const sum = commands.get(command) ?? { calls: 0, usec: 0 }
      commands.set(command, { calls: sum.calls + calls, usec: sum.usec + usec })
    }
  }
  const sum = (of: (snapshot: RedisSnapshot) => number) => snapshots.reduce((total, snapshot) => total + of(snapshot), 0)
  return { commands, cpuUsec: sum((snapshot) => snapshot.cpuUsec), reads: sum((snapshot) => snapshot.reads) }
}

/** CPU ms (user + system) used so far by the supervisor's children, by role (from /proc). */
function childCpuMs(supervisorPid: number): { api: number; worker: number } {
  const total = { api: 0, worker: 0 }
  const ticksPerMs = 100 / 1000
  const children = Bun.spawnSync(['pgrep', '-P', String(supervisorPid)]).stdout.toString().split('\n').filter(Boolean)
  for (const pid of children) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      const role = cmdline.includes('worker') ? 'worker' : cmdline.includes('api') ? 'api' : undefined
      if (!role) continue
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total[role] += (Number(fields[11]) + Number(fields[12])) / ticksPerMs
    } catch {
      // The child exited between the listing and the read.
    }
  }
  return total
}
