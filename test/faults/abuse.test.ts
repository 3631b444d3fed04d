import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { connect } from 'node:net'
import { readFileSync } from 'node:fs'
import { freePort } from '../../src/process/embedded-redis.ts'
import { QUEUE } from '../../src/queue/names.ts'
import { chatwoot, everyEvent, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testEnv } from '../helpers/deps.ts'
import { queuedEventIds } from '../helpers/jobs.ts'
import { startApiProcess, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let api: HookgateProcess & { port: number; pid: number }
let base: string
let prefix: string

beforeAll(async () => {
  redis = await startRedis()
  const env = testEnv(redis, { RATE_LIMIT_ENABLED: 'false', HTTP_IDLE_TIMEOUT_SECONDS: '2', BODY_TIMEOUT_MS: '1000' })
  prefix = env.REDIS_KEY_PREFIX!
  api = await startApiProcess({ ...env, PORT: String(await freePort()) })
  base = `http://127.0.0.1:${api.port}`
})
afterAll(async () => {
  await api.stop('SIGKILL')
  await redis.stop()
})

/** A seeded generator, so a failure can be replayed. */
function random(seed: number) {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024

describe('bad input and abuse against a running API process', () => {
  test('thousands of malformed, truncated, oversized, nested, mistyped, non-UTF-8 and header-abusing requests: only 4xx JSON or acceptance, no crash, bounded memory, no job for a refusal', async () => {
    const next = random(42)
    const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!
    const valid = toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 9_000_000 }))
    const bodies: (() => string | Uint8Array)[] = [
      () => valid.slice(0, Math.floor(next() * valid.length)), // truncated
      () => Uint8Array.from({ length: 1 + Math.floor(next() * 2000) }, () => Math.floor(next() * 256)), // random bytes, mostly not UTF-8
      () => '['.repeat(20_000 + Math.floor(next() * 80_000)), // deeply nested, unterminated
      () => `${'['.repeat(5000)}${']'.repeat(5000)}`, // deeply nested, valid JSON, not an object
      () => JSON.stringify({ event: Math.floor(next() * 1000), id: 'x' }), // wrong type
      () => JSON.stringify({ event: { nested: true } }),
      () => JSON.stringify({ event: 'message_created', id: { $gt: 1 }, conversation: 'x' }), // mistyped fields: accepted, hashed
      () => JSON.stringify({ event: 'x'.repeat(500) }),
      () => JSON.stringify({ event: 'message_created\u0000' }),
      () => 'null',
      () => '"a string"',
      () => '',
      () => 'x'.repeat(1024 * 1024 + 10), // oversized
      () => toChatwootJson({ ...pick(everyEvent()), id: Math.floor(next() * 1e12) }), // a real event: accepted
    ]
    const headerSets: (() => Record<string, string>)[] = [
      () => ({ 'content-type': 'application/json' }),
      () => ({ 'content-type': pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', '', 'application/jsonx']) }),
      () => ({ 'content-type': 'application/json', 'x-request-id': 'y'.repeat(4000) }),
      () => ({ 'content-type': 'application/json', 'x-chatwoot-signature': `sha256=${'z'.repeat(Math.floor(next() * 200))}`, 'x-chatwoot-timestamp': String(next() * 1e12) }),
      () => ({ 'content-type': 'application/json', 'x-forwarded-for': Array.from({ length: 200 }, () => '10.0.0.1').join(', ') }),
      () => ({ 'content-type': 'application/json', authorization: `Bearer ${'t'.repeat(3000)}` }),
      () => Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`x-junk-${i}`, 'v'.repeat(50)])),
    ]
    const paths = [
      `/webhook/chatwoot/acme?token=${ACME_TOKEN}`,
      `/webhook/chatwoot/acme?token=${ACME_TOKEN}`,
      `/webhook/chatwoot/acme?token=${ACME_TOKEN}&token=other`,
      '/webhook/chatwoot/acme',
      '/webhook/chatwoot/%00%ff',
      `/webhook/chatwoot/${'a'.repeat(2000)}?token=${ACME_TOKEN}`,
      `/webhook/chatwoot?token=${ACME_TOKEN}`,
      '/webhook/chatwoot/acme/../../admin',
      '/../../etc/passwd',
    ]

    const rssBefore = rssOf(api.pid)
    const queuedJobIds = new Set<string>()
    const unexpected: string[] = []
    const TOTAL = 2500
    let done = 0
    const worker = async () => {
      while (done < TOTAL) {
        done++
        const path = pick(paths)
        const method = next() < 0.9 ? 'POST' : pick(['GET', 'PUT', 'DELETE', 'PATCH'])
        const headers = pick(headerSets)()
        const body = method === 'GET' ? undefined : pick(bodies)()
        const response = await fetch(`${base}${path}`, { method, headers, body }).catch((error: Error) => error)
        if (response instanceof Error) {
          unexpected.push(`${method} ${path.slice(0, 60)}: ${response.message}`)
          continue
        }
        const text = await response.text()
        let json: { error?: string; message?: string; status?: string; jobId?: string } | undefined
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        const accepted = response.status === 202 || response.status === 200
        if (accepted && json?.status === 'queued') queuedJobIds.add(json.jobId!)
        const refusal = response.status >= 400 && response.status < 500 && typeof json?.error === 'string' && typeof json.message === 'string'
        if (!accepted && !refusal) unexpected.push(`${method} ${path.slice(0, 60)} → ${response.status} ${text.slice(0, 120)}`)
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))

    expect(unexpected).toEqual([])
    expect(api.proc.exitCode).toBeNull()
    expect((await fetch(`${base}/health`)).status).toBe(200)
    Bun.gc?.(true)
    expect(rssOf(api.pid) - rssBefore).toBeLessThan(300 * 1024 * 1024)
    // Every job in the queue is one an answer said was queued: no refused request left one behind.
    const queue = new Queue(QUEUE.webhook, { connection: { url: redis.url }, prefix })
    const queued = await queuedEventIds(queue, ['waiting', 'delayed', 'active', 'completed', 'failed'])
    await queue.close()
    expect(new Set(queued)).toEqual(queuedJobIds)
    expect(queuedJobIds.size).toBeGreaterThan(10)
  }, 120_000)

  test('slow clients cannot hold the server: a silent connection is closed, a trickled body gets 408, others are served', async () => {
    const { port } = api
    // Headers started and never finished: Bun closes such a connection after about 10 s (its own limit for headers).
    const silent = connect(port, '127.0.0.1')
    silent.write('POST /webhook/chatwoot/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n')
    const startedAt = Date.now()
    const closed = new Promise<number>((resolve) => silent.on('close', () => resolve(Date.now() - startedAt)))
    silent.on('error', () => {})

    // A body of 1000 bytes sent a byte at a time: 408 once BODY_TIMEOUT_MS (1 s) has passed.
    const trickle = connect(port, '127.0.0.1')
    let answer = ''
    trickle.on('data', (chunk) => (answer += chunk.toString()))
    trickle.on('error', () => {})
    trickle.write(`POST /webhook/chatwoot/acme?token=${ACME_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`)
    const dripper = setInterval(() => trickle.writable && trickle.write(' '), 100)
    const answered = new Promise<void>((resolve) => trickle.on('data', () => answer.includes('\r\n\r\n') && resolve()))

    // Meanwhile the server serves everyone else.
    expect((await fetch(`${api.port && base}/health`)).status).toBe(200)
    await answered
    clearInterval(dripper)
    expect(answer).toStartWith('HTTP/1.1 408')
    expect(answer).toContain('"error":"request_timeout"')
    trickle.destroy()
    const closedAfterMs = await closed
    expect(closedAfterMs).toBeGreaterThanOrEqual(1500)
    expect(closedAfterMs).toBeLessThan(15_000)
  }, 30_000)
})
