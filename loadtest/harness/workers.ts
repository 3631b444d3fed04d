import { Queue } from 'bullmq'
import { join } from 'node:path'
import { JOB, QUEUE, type WebhookJobData } from '../../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../../test/fixtures/chatwoot.ts'
import { latencies, type Latencies } from './stats.ts'

export interface WorkerResult {
  workerProcesses: number
  destinationMs: number
  deliveryConcurrency: number | 'default'
  events: number
  seconds: number
  eventsPerSecond: number
  /** Each event from when it was accepted (queued) to when the destination got it, ms. */
  endToEnd: Latencies
  /** Events the destination got more than once: must be 0. */
  duplicates: number
}

const ROOT = join(import.meta.dir, '../..')

/**
 * Worker throughput: the webhook queue filled with `events` accepted message_created events (as a burst at the API
 * would leave it), then `hookgate worker` processes route and deliver them to a local destination answering 200
 * (after `destinationMs`). Events per second from the first delivery to the last, and each event's time from accepted to delivered.
 */
export async function measureWorkers(options: {
  redisUrl: string
  prefix: string
  work: string
  events: number
  workerProcesses: number
  deliveryConcurrency?: number
  /** How long the destination takes to answer, as a real bot does. */
  destinationMs: number
}): Promise<WorkerResult> {
  const { redisUrl, prefix, events, workerProcesses, deliveryConcurrency, destinationMs } = options
  const acceptedAt = new Map<string, number>()
  const deliveredAt = new Map<string, number>()
  let duplicates = 0
  let allDelivered!: () => void
  const finished = new Promise<void>((resolve) => (allDelivered = resolve))
  const destination = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      await request.arrayBuffer()
      if (destinationMs > 0) await Bun.sleep(destinationMs)
      // webhook-id is the delivery job's id: "<webhook job id>.r<route>".
      const id = request.headers.get('webhook-id')!.replace(/\.r\d+$/, '')
      if (deliveredAt.has(id)) duplicates++
      else deliveredAt.set(id, Date.now())
      if (deliveredAt.size === events) allDelivered()
      return Response.json({ ok: true })
    },
  })
  const instancesFile = join(options.work, `workers-${destination.port}.json`)
  await Bun.write(
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

  const queue = new Queue<WebhookJobData>(QUEUE.webhook, { connection: { url: redisUrl }, prefix })
  for (let offset = 0; offset < events; offset += 1000) {
    const now = Date.now()
    const batch = Array.from({ length: Math.min(1000, events - offset) }, (_, i) => {
      const messageId = 2_000_000 + offset + i
      const jobId = `bench.message_created.m${messageId}`
      acceptedAt.set(jobId, now)
      return {
        name: JOB.chatwootEvent,
        data: { instanceId: 'bench', event: 'message_created', body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId })), deliveryId: undefined, receivedAt: now },
        opts: { jobId },
      }
    })
    await queue.addBulk(batch)
  }
  await queue.close()

  const env = {
    ...process.env,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    HOOKGATE_CONFIG: instancesFile,
    HOOKGATE_DATA_DIR: options.work,
    LOG_LEVEL: 'warn',
    // A webhook job makes its event's first delivery try: its concurrency is the deliveries in flight.
    ...(deliveryConcurrency ? { WEBHOOK_WORKER_CONCURRENCY: String(deliveryConcurrency), DELIVERY_WORKER_CONCURRENCY: String(deliveryConcurrency) } : {}),
  }
  const children = Array.from({ length: workerProcesses }, () =>
    Bun.spawn(['bun', join(ROOT, 'src/main.ts'), 'worker'], { env, stdout: 'ignore', stderr: 'inherit' }),
  )
  try {
    await finished
  } finally {
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map((child) => child.exited))
    destination.stop(true)
  }
  const times = [...deliveredAt.values()]
  const seconds = (Math.max(...times) - Math.min(...times)) / 1000
  return {
    workerProcesses,
    destinationMs,
    deliveryConcurrency: deliveryConcurrency ?? 'default',
    events,
    seconds: Math.round(seconds * 100) / 100,
    eventsPerSecond: Math.round((events - 1) / seconds),
    endToEnd: latencies([...deliveredAt].map(([id, at]) => at - acceptedAt.get(id)!)),
    duplicates,
  }
}
