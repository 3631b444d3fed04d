/**
 * Worker benchmark: end-to-end events per second from the `webhook` queue to a local destination that answers 200 at
 * once (routing, one delivery job per event, the signed POST), with 1 and 2 `hookgate worker` processes and several
 * concurrencies, so the defaults can be chosen from measurement.
 *
 *   bun loadtest/bench-workers.ts [--events 10000] [--workers 1,2] [--concurrency 10,50,200] [--latency-ms 0]
 *
 * --latency-ms makes the destination take that long to answer, as a real bot does; --webhook-concurrency fixes the
 * routing queue's concurrency while --concurrency varies the delivery queue's (by default both vary together).
 *
 * Needs redis-server on PATH. The queue is filled first, as a burst of accepted webhooks would fill it.
 */
import { Queue } from 'bullmq'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { JOB, QUEUE, type WebhookJobData } from '../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../test/fixtures/chatwoot.ts'
import { startRedis } from '../test/helpers/redis.ts'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '1,2' },
    concurrency: { type: 'string', default: '10,50,200' },
    'latency-ms': { type: 'string', default: '0' },
    'webhook-concurrency': { type: 'string' },
  },
})
const ROOT = join(import.meta.dir, '..')
const PREFIX = '{bench}'
const events = Number(args.events)
const latencyMs = Number(args['latency-ms'])

const work = mkdtempSync(join(tmpdir(), 'hookgate-bench-workers-'))
const redisServer = await startRedis()
const redisUrl = redisServer.url
const admin = new Redis(redisUrl)

let received = 0
let onReceived: (() => void) | undefined
const destination = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(request) {
    await request.arrayBuffer()
    if (latencyMs > 0) await Bun.sleep(latencyMs)
    received++
    onReceived?.()
    return Response.json({ ok: true })
  },
})
const instancesFile = join(work, 'instances.json')
writeFileSync(
  instancesFile,
  JSON.stringify({
    instances: [
      {
        id: 'bench',
        tokens: ['bench-token-0123456789abcdef'],
        routes: [{ events: ['message_created'], destination: { url: `http://127.0.0.1:${destination.port}/hook`, secret: 'bench-signing-secret-0123' } }],
      },
    ],
  }),
)

const rows: string[] = []
try {
  for (const workers of args.workers!.split(',').map(Number)) {
    for (const concurrency of args.concurrency!.split(',').map(Number)) {
      const perSecond = await measure(workers, concurrency)
      rows.push(`| ${workers} | ${concurrency} | ${perSecond.toFixed(0)} |`)
      console.error(`${workers} worker(s), concurrency ${concurrency}: ${perSecond.toFixed(0)} events/s`)
    }
  }
  console.log(`\n${events} events, queue filled first; events/s from the webhook queue to a local destination answering 200 after ${latencyMs} ms`)
  console.log(`| worker processes | delivery concurrency (webhook: ${args['webhook-concurrency'] ?? 'the same'}) | events/s |\n|---|---|---|`)
  for (const row of rows) console.log(row)
} finally {
  admin.disconnect()
  destination.stop(true)
  await redisServer.stop()
}

async function measure(workers: number, concurrency: number): Promise<number> {
  await admin.flushall()
  await fill()
  received = 0
  // Timed from the first delivery, so the workers' start-up is not counted.
  let started = 0
  const done = new Promise<void>((resolve) => {
    onReceived = () => {
      if (received === 1) started = performance.now()
      if (received >= events) resolve()
    }
  })
  const env = {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: PREFIX,
    HOOKGATE_CONFIG: instancesFile,
    HOOKGATE_DATA_DIR: work,
    LOG_LEVEL: 'warn',
    WEBHOOK_WORKER_CONCURRENCY: args['webhook-concurrency'] ?? String(concurrency),
    DELIVERY_WORKER_CONCURRENCY: String(concurrency),
  }
  const children = Array.from({ length: workers }, () => Bun.spawn(['bun', join(ROOT, 'src/main.ts'), 'worker'], { env, stdout: 'ignore', stderr: 'inherit' }))
  await done
  const seconds = (performance.now() - started) / 1000
  onReceived = undefined
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(children.map((child) => child.exited))
  return (events - 1) / seconds
}

/** Fills the webhook queue with distinct message_created events, as the API would. */
async function fill(): Promise<void> {
  const queue = new Queue<WebhookJobData>(QUEUE.webhook, { connection: { url: redisUrl }, prefix: PREFIX })
  for (let offset = 0; offset < events; offset += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, events - offset) }, (_, i) => {
        const id = 1_000_000 + offset + i
        return {
          name: JOB.chatwootEvent,
          data: { instanceId: 'bench', event: 'message_created', body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: id })), deliveryId: undefined, receivedAt: Date.now() },
          opts: { jobId: `bench.message_created.m${id}`, removeOnComplete: true },
        }
      }),
    )
  }
  await queue.close()
}
