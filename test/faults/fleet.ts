import { Queue, type ConnectionOptions } from 'bullmq'
import { readdirSync } from 'node:fs'
import { loadConfig } from '../../src/config/config.ts'
import { freePort } from '../../src/process/embedded-redis.ts'
import { QUEUE } from '../../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testEnv } from '../helpers/deps.ts'
import { startRecorder } from '../helpers/http-server.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import type { TestRedis } from '../helpers/redis.ts'

/**
 * A whole gateway for fault tests: `hookgate start` (API and worker processes) on a test Redis, routing every
 * message_created of instance `acme` to a local destination that records what it gets.
 */
export async function startFleet(
  redis: TestRedis,
  env: Record<string, string> = {},
  routeTo = (recorderUrl: string) => recorderUrl,
  /** How the test itself reaches Redis (to see the queues): the test Redis by default. */
  connection: ConnectionOptions = { url: redis.url },
) {
  const destination = await startRecorder()
  const port = await freePort()
  const url = `${routeTo(destination.url)}/bot`
  const instances = {
    instances: [{ id: 'acme', tokens: [ACME_TOKEN], routes: [{ events: ['message_created'], destination: { url, timeoutMs: 2000, maxAttempts: 50 } }] }],
  }
  // Limits high: the load is far over an instance's default rate, and shaping would only delay what these tests check.
  const limits = { RATE_LIMIT_INSTANCE_PER_SECOND: '100000', RATE_LIMIT_INSTANCE_BURST: '100000', RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: '100000' }
  const fleetEnv = testEnv(
    redis,
    { PORT: String(port), LOG_LEVEL: 'info', API_PROCESSES: '2', WORKER_PROCESSES: '1', DELIVERY_BACKOFF_MS: '50', JOB_LOCK_MS: '2000', ...limits, ...env },
    instances,
  )
  const launch = async () => {
    const started = spawnHookgate(['start'], fleetEnv)
    await started.waitFor(/"msg":"api listening"/, 15_000, Number(fleetEnv.API_PROCESSES))
    if (fleetEnv.WORKER_PROCESSES !== '0') await started.waitFor(/"msg":"workers started"/)
    return started
  }
  let gateway = await launch()
  const base = `http://127.0.0.1:${port}`
  const deliveries = new Queue(QUEUE.delivery, { connection, prefix: fleetEnv.REDIS_KEY_PREFIX })

  /** How many times each message id was taken by the destination: answered 2xx (counted as they come). */
  const deliveredCounts = new Map<number, number>()
  let counted = 0
  const count = () => {
    for (; counted < destination.requests.length; counted++) {
      const request = destination.requests[counted]!
      if (typeof request.answered !== 'number' || request.answered >= 300) continue
      const id = (JSON.parse(request.body) as { id: number }).id
      deliveredCounts.set(id, (deliveredCounts.get(id) ?? 0) + 1)
    }
    return deliveredCounts
  }

  return {
    base,
    get gateway(): HookgateProcess {
      return gateway
    },
    /** Starts the gateway again with the same settings (after it was stopped). */
    async relaunch() {
      gateway = await launch()
    },
    destination,
    env: fleetEnv,
    /**
     * Resolves once every id in `accepted` has reached the destination and the delivery queue has nothing left to
     * run (so a late duplicate would have shown); returns the ids never delivered and those delivered more than once.
     */
    async settle(accepted: Set<number>, timeoutMs = 60_000): Promise<{ missing: number[]; duplicated: number[]; settledAt: number }> {
      const allDelivered = async () => {
        for (;;) {
          const counts = count()
          const missing = [...accepted].filter((id) => !counts.has(id)).length
          if (missing === 0) return
          await destination.received(destination.requests.length + missing)
        }
      }
      await Promise.race([allDelivered(), Bun.sleep(timeoutMs)])
      const settledAt = Date.now()
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
        const counts = await deliveries.getJobCounts('waiting', 'active', 'delayed', 'prioritized')
        if (Object.values(counts).every((n) => n === 0)) break
        await Bun.sleep(100) // nothing announces an empty queue across processes: poll, bounded
      }
      const counts = count()
      return {
        missing: [...accepted].filter((id) => !counts.has(id)),
        duplicated: [...counts].filter(([, n]) => n > 1).map(([id]) => id),
        settledAt,
      }
    },
    /** The spool files still there after waiting up to `timeoutMs` for the replays to empty the spool. */
    async spoolLeft(timeoutMs = 15_000): Promise<string[]> {
      const { dir } = loadConfig(fleetEnv).spool
      const files = () => readdirSync(dir).filter((name) => name.includes('.spool'))
      // Nothing announces the last file's removal across processes: poll, bounded.
      for (const deadline = Date.now() + timeoutMs; files().length > 0 && Date.now() < deadline; ) await Bun.sleep(200)
      return files()
    },
    async stop() {
      await gateway.stop('SIGKILL')
      await deliveries.close()
      destination.stop()
    },
  }
}

export interface LoadReport {
  sent: number
  /** Answers by status (0: no answer). */
  statuses: Record<number, number>
  /** Message ids answered 2xx: the gateway promised to process them. */
  accepted: Set<number>
  spooled: number
  /** Answer times, ms, with the message id, when each request was sent, and what the answer said (`queued`, `spooled`, …). */
  timings: { id: number; at: number; ms: number; status: number; said?: string }[]
}

/**
 * The conversations the load's messages belong to, in turn: a conversation's deliveries go one at a time. Enough of
 * them that a cluster's six queue shards each get about a sixth (64 gave one master a fifth less than the others).
 */
export const LOAD_CONVERSATIONS = 128

/** Message `id` of the steady load, as Chatwoot sends it (the same bytes each time: a repeat is a repeat). */
export function loadMessage(id: number): string {
  return toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: id, conversationId: 1000 + (id % LOAD_CONVERSATIONS) }))
}

/**
 * Steady load from `concurrency` clients, each sending new message_created events one after another over fresh
 * connections (so every API process gets some), recording every answer.
 */
export function startLoad(base: string, concurrency = 6, firstId = 5_000_000) {
  let stopped = false
  let nextId = firstId
  const report: LoadReport = { sent: 0, statuses: {}, accepted: new Set(), spooled: 0, timings: [] }
  const waiters: { count: number; resolve: () => void }[] = []
  const sayers: { said: string; after: number; resolve: () => void }[] = []
  const client = async () => {
    while (!stopped) {
      const id = nextId++
      const at = Date.now()
      report.sent++
      const answer = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', connection: 'close' },
        body: loadMessage(id),
        keepalive: false,
        signal: AbortSignal.timeout(10_000),
      }).then(
        async (response) => ({ status: response.status, body: (await response.json().catch(() => ({}))) as { status?: string } }),
        () => ({ status: 0, body: {} as { status?: string } }),
      )
      report.statuses[answer.status] = (report.statuses[answer.status] ?? 0) + 1
      report.timings.push({ id, at, ms: Date.now() - at, status: answer.status, said: answer.body.status })
      if (answer.status >= 200 && answer.status < 300) report.accepted.add(id)
      if (answer.body.status === 'spooled') report.spooled++
      const answered = report.timings.length
      for (const waiter of waiters.filter((w) => answered >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
      for (const sayer of sayers.filter((w) => w.said === answer.body.status && at >= w.after)) {
        sayers.splice(sayers.indexOf(sayer), 1)
        sayer.resolve()
      }
    }
  }
  const clients = Array.from({ length: concurrency }, client)
  return {
    report,
    /** Resolves once `more` further answers have come back. */
    answered(more: number): Promise<void> {
      const count = report.timings.length + more
      return new Promise((resolve) => waiters.push({ count, resolve }))
    },
    /** Resolves at the first answer saying `said` (e.g. `queued`) to a request sent from now on. */
    says(said: string): Promise<void> {
      const after = Date.now()
      return new Promise((resolve) => sayers.push({ said, after, resolve }))
    },
    async stop(): Promise<LoadReport> {
      stopped = true
      await Promise.all(clients)
      return report
    },
  }
}

/** One line per fault, for the record: what was sent, accepted, spooled, delivered, lost and duplicated. */
export function summary(fault: string, report: LoadReport, outcome: { missing: number[]; duplicated: number[] }, recoveryMs: number) {
  const delivered = report.accepted.size - outcome.missing.length
  const window = spooledWindow(report)
  console.log(
    `[fault] ${fault}: sent ${report.sent}, accepted ${report.accepted.size}, spooled ${report.spooled}, delivered ${delivered}, ` +
      `lost ${outcome.missing.length}, duplicated ${outcome.duplicated.length}, answers ${JSON.stringify(report.statuses)}, ` +
      `Redis unavailable to writes for ${window ?? '-'} ms, recovery ${recoveryMs} ms`,
  )
  // What the first lost events were told, and when they were sent (ms after the load's first request): enough to tell
  // which part failed.
  const start = Math.min(...report.timings.map((t) => t.at))
  for (const id of outcome.missing.slice(0, 10)) {
    const answer = report.timings.find((t) => t.id === id)
    console.log(`[fault]   lost ${id}: answered ${answer?.status} ${answer?.said ?? ''} in ${answer?.ms} ms, sent at +${answer ? answer.at - start : '?'} ms`)
  }
}

/** What clients saw of an outage: from the first request spooled to the first queued in Redis again, ms. */
export function spooledWindow(report: LoadReport): number | undefined {
  const byTime = [...report.timings].sort((a, b) => a.at - b.at)
  const first = byTime.find((t) => t.said === 'spooled')
  const back = first && byTime.find((t) => t.at > first.at && t.said === 'queued')
  return first && back ? back.at - first.at : undefined
}
