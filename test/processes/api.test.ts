import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { connect } from 'node:net'
import { freePort } from '../../src/process/embedded-redis.ts'
import { QUEUE } from '../../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testEnv } from '../helpers/deps.ts'
import { queuedEventIds } from '../helpers/jobs.ts'
import { startApiProcess, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
const running: HookgateProcess[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')))
  await redis.stop()
})

async function api(env: Record<string, string | undefined>) {
  const child = await startApiProcess(env)
  running.push(child)
  return child
}

/** A POST on a connection of its own, so duplicates race from different sockets. */
function send(port: number, body: string) {
  return fetch(`http://127.0.0.1:${port}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close' },
    body,
    keepalive: false,
  })
}

describe('several API processes', () => {
  test('racing on the same events enqueue each exactly once', async () => {
    const env = testEnv(redis, { PORT: '0' })
    const [a, b] = await Promise.all([api(env), api(env)])
    const events = Array.from({ length: 20 }, (_, i) => toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 900_000 + i })))
    const answers = await Promise.all(
      events.flatMap((body) =>
        Array.from({ length: 10 }, (_, copy) =>
          send(copy % 2 ? a.port : b.port, body).then(async (r) => ({ code: r.status, ...((await r.json()) as { status: string; jobId: string }) })),
        ),
      ),
    )
    for (let i = 0; i < events.length; i++) {
      const forEvent = answers.filter((x) => x.jobId === `acme.message_created.m${900_000 + i}`)
      expect(forEvent).toHaveLength(10)
      expect(forEvent.filter((x) => x.code === 202 && x.status === 'queued')).toHaveLength(1)
      expect(forEvent.filter((x) => x.code === 200 && x.status === 'already_queued')).toHaveLength(9)
    }
    const queue = new Queue(QUEUE.webhook, { connection: { url: redis.url }, prefix: env.REDIS_KEY_PREFIX })
    try {
      const queued = await queuedEventIds(queue, ['waiting'])
      expect(queued.sort()).toEqual(events.map((_, i) => `acme.message_created.m${900_000 + i}`).sort())
    } finally {
      await queue.close()
    }
  })

  test('share one rate-limit budget through Redis', async () => {
    const env = testEnv(redis, { PORT: '0', RATE_LIMIT_IP_BURST: '6', RATE_LIMIT_IP_PER_SECOND: '0.01' })
    const [a, b] = await Promise.all([api(env), api(env)])
    const answers: number[] = []
    for (let i = 0; i < 12; i++) {
      const response = await fetch(`http://127.0.0.1:${i % 2 ? a.port : b.port}/webhook/chatwoot/acme?token=wrong-0123456789abcdef`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      })
      answers.push(response.status)
    }
    expect(answers.filter((s) => s === 401)).toHaveLength(6)
    expect(answers.slice(6)).toEqual(Array(6).fill(429))
  })

  test('share one port (SO_REUSEPORT), and /health says which process answered', async () => {
    const port = await freePort()
    const env = testEnv(redis, { PORT: String(port) })
    const [a, b] = await Promise.all([api(env), api(env)])
    const seen = new Set<number>()
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`, { headers: { connection: 'close' }, keepalive: false })).json()) as {
        pid: number
        redis: string
      }
      expect(health.redis).toBe('up')
      seen.add(health.pid)
    }
    expect([...seen].sort()).toEqual([a.pid, b.pid].sort())
  })
})

describe('an API process started while Redis is not reachable', () => {
  test('says that it spools, and does: 202 spooled, then queued once Redis is there', async () => {
    const late = await startRedis()
    await late.kill()
    const child = await api(testEnv(late, { PORT: '0' }))
    const said = JSON.parse(await child.waitFor(/redis not reachable yet/))
    expect(said).toMatchObject({ level: 'warn', msg: expect.stringContaining('answered 202 spooled'), spoolDir: expect.any(String) })
    const body = toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 990_100 }))
    const answer = await send(child.port, body)
    expect([answer.status, await answer.json()]).toEqual([202, expect.objectContaining({ status: 'spooled' })])

    await late.start()
    await child.waitFor(/"msg":"spooled events moved into the queue"/, 30_000)
    const again = await send(child.port, body)
    expect(await again.json()).toMatchObject({ status: 'already_queued' })
    await late.stop()
  }, 40_000)
})

describe('a malformed-input barrage', () => {
  test('gets clear errors and leaves the process serving', async () => {
    const child = await api(testEnv(redis, { PORT: '0', MAX_BODY_BYTES: '65536' }))
    const url = (path: string) => `http://127.0.0.1:${child.port}${path}`
    const webhook = url(`/webhook/chatwoot/acme?token=${ACME_TOKEN}`)
    const json = { 'content-type': 'application/json' }
    const statuses: Record<string, number> = {}
    const attempt = async (name: string, request: () => Promise<Response>) => {
      statuses[name] = await request().then(
        async (r) => {
          await r.arrayBuffer()
          return r.status
        },
        () => -1,
      )
    }

    await Promise.all([
      attempt('truncated json', () => fetch(webhook, { method: 'POST', headers: json, body: '{"event":"message_created","id":' })),
      attempt('array', () => fetch(webhook, { method: 'POST', headers: json, body: '[1,2,3]' })),
      attempt('wrong types', () => fetch(webhook, { method: 'POST', headers: json, body: '{"event":{"nested":true},"id":"x"}' })),
      attempt('deep nesting', () => fetch(webhook, { method: 'POST', headers: json, body: '['.repeat(60_000) })),
      attempt('deep object', () => fetch(webhook, { method: 'POST', headers: json, body: '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) })),
      attempt('invalid utf-8', () => fetch(webhook, { method: 'POST', headers: json, body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) })),
      attempt('huge declared', () => fetch(webhook, { method: 'POST', headers: json, body: 'x'.repeat(5 * 1024 * 1024) })),
      attempt('form body', () => fetch(webhook, { method: 'POST', body: new URLSearchParams({ event: 'message_created' }) })),
      attempt('unknown instance', () => fetch(url('/webhook/chatwoot/nobody?token=x'), { method: 'POST', headers: json, body: '{}' })),
      attempt('bad instance id', () => fetch(url('/webhook/chatwoot/%00%2F..%2F?token=x'), { method: 'POST', headers: json, body: '{}' })),
      attempt('huge header', () => fetch(webhook, { method: 'POST', headers: { ...json, 'x-big': 'y'.repeat(200_000) }, body: '{}' })),
      attempt('bad signature', () =>
        fetch(webhook.replace(/\?.*/, ''), { method: 'POST', headers: { ...json, 'x-chatwoot-signature': 'sha256=' + 'g'.repeat(64), 'x-chatwoot-timestamp': '9'.repeat(40) }, body: '{}' }),
      ),
      ...Array.from({ length: 200 }, (_, i) => attempt(`flood ${i}`, () => fetch(webhook, { method: 'POST', headers: json, body: `{"event":${i}}` }))),
      rawSocket(child.port, 'GARBAGE\r\n\r\n'),
      rawSocket(child.port, 'POST /webhook/chatwoot/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"event"'),
      rawSocket(child.port, 'POST /webhook/chatwoot/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n'),
      rawSocket(child.port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'), // a TLS ClientHello on the plain port
    ])

    expect(statuses).toMatchObject({
      'truncated json': 400,
      array: 400,
      'wrong types': 400,
      'deep nesting': 400,
      'deep object': 400,
      'invalid utf-8': 400,
      'huge declared': 413,
      'form body': 415,
      'unknown instance': 401,
      'bad instance id': 401,
      'bad signature': 401,
    })
    expect([431, 400, -1]).toContain(statuses['huge header']!)
    expect(Object.entries(statuses).filter(([k]) => k.startsWith('flood')).every(([, s]) => s === 400)).toBe(true)

    expect(child.proc.exitCode).toBeNull()
    const health = (await (await fetch(url('/health'))).json()) as { pid: number; status: string }
    expect(health).toMatchObject({ status: 'ok', pid: child.pid })
    const ok = await fetch(webhook, { method: 'POST', headers: json, body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 990_001 })) })
    expect(ok.status).toBe(202)
  })
})

/** A guard, not a wait: the test awaits the server's answer or hang-up, and gives up on a socket silent this long. */
const SILENT_SOCKET_MS = 5000

/** Writes bytes that are not a proper request and waits for the server to answer or hang up. */
function rawSocket(port: number, payload: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.from(payload, 'latin1')))
    socket.on('data', () => {})
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
    socket.setTimeout(SILENT_SOCKET_MS, () => socket.destroy())
  })
}
