/**
 * Baseline (b), the shape most operators run today: Node + Express + a Redis SET NX dedupe lock + BullMQ Queue.add,
 * one process, as in a typical hand-written webhook receiver. Run: node loadtest/baselines/express-server.mjs <port> <redis-url>
 */
import { Queue } from 'bullmq'
import express from 'express'
import { Redis } from 'ioredis'

const port = Number(process.argv[2] ?? 3200)
const redisUrl = process.argv[3] ?? 'redis://127.0.0.1:6379'
const redis = new Redis(redisUrl)
const queue = new Queue('webhook', { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix: '{express}' })

const app = express()
app.use(express.json({ limit: '1mb' }))
app.get('/health', (_request, response) => response.json({ status: 'ok' }))
app.post('/webhook/chatwoot/:instance', async (request, response) => {
  try {
    const event = request.body
    const key = `${request.params.instance}.${event.event}.m${event.id}`
    const locked = await redis.set(`{express}:dedupe:${key}`, '1', 'PX', 5000, 'NX')
    if (locked === null) return response.json({ status: 'already_queued', jobId: key })
    await queue.add('chatwoot-event', { body: event, receivedAt: Date.now() }, { jobId: key })
    response.status(202).json({ status: 'queued', jobId: key })
  } catch (error) {
    response.status(503).json({ error: 'unavailable', message: String(error) })
  }
})
app.listen(port, '127.0.0.1', () => console.log(`express baseline listening on ${port}`))
