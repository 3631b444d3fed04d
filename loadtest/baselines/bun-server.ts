/**
 * Baseline (a), hookgate's overhead floor: a bare Bun.serve doing the same Redis work per webhook (SET NX PX dedupe
 * lock on an auto-pipelined connection, then BullMQ Queue.add with the key as job id on a plain one), with no
 * framework, auth, validation or logging. Run: bun loadtest/baselines/bun-server.ts <port> <redis-url>
 */
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'

const [port, redisUrl] = [Number(process.argv[2] ?? 3100), process.argv[3] ?? 'redis://127.0.0.1:6379']
const locks = new Redis(redisUrl, { enableAutoPipelining: true, enableOfflineQueue: false })
const producer = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
const queue = new Queue('webhook', { connection: producer, prefix: '{baseline}' })
await new Promise((resolve) => locks.once('ready', resolve))

Bun.serve({
  port,
  hostname: '127.0.0.1',
  reusePort: true,
  async fetch(request) {
    if (request.method === 'GET') return Response.json({ status: 'ok' })
    const body = await request.text()
    const event = JSON.parse(body) as { event: string; id: number }
    const key = `${event.event}.m${event.id}`
    if ((await locks.set(`{baseline}:dedupe:${key}`, '1', 'PX', 5000, 'NX')) === null) {
      return Response.json({ status: 'already_queued', jobId: key })
    }
    await queue.add('chatwoot-event', { body, receivedAt: Date.now() }, { jobId: key })
    return Response.json({ status: 'queued', jobId: key }, { status: 202 })
  },
})
console.log(`baseline listening on ${port}`)
