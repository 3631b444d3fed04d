import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, GLOBEX_TOKEN, testApp, testInstances, everyEventRoutes } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
const open: { close(): Promise<void> }[] = []
let nextMessageId = 300_000

beforeAll(async () => {
  redis = await startRedis()
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()))
})
afterAll(() => redis.stop())

async function gateway(env: Record<string, string>, instances: unknown = testInstances) {
  const app = await testApp(redis, env, instances)
  open.push(app)
  return { ...app, base: app.serve() }
}

function post(base: string, options: { instance?: string; token?: string; headers?: Record<string, string> } = {}) {
  const { instance = 'acme', token = ACME_TOKEN, headers = {} } = options
  return fetch(`${base}/webhook/chatwoot/${instance}?token=${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ })),
  })
}

/** Scripts the test's Redis has run so far (EVAL and EVALSHA calls). */
async function scriptCalls(): Promise<number> {
  const client = new Redis(redis.url)
  try {
    const stats = await client.info('commandstats')
    return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0)
  } finally {
    client.disconnect()
  }
}

async function statuses(responses: Promise<Response>[]) {
  return Promise.all(responses.map(async (r) => (await r).status))
}

describe('per client IP, for everything but authenticated webhooks', () => {
  test('admits the burst, then answers 429 with Retry-After and RateLimit-* headers, and enqueues nothing', async () => {
    const { base, metrics, queue } = await gateway({ RATE_LIMIT_IP_BURST: '5', RATE_LIMIT_IP_PER_SECOND: '0.1' })
    const before = await queue.count()
    const answers: Response[] = []
    for (let i = 0; i < 7; i++) answers.push(await post(base, { token: 'guessed-token-0123456789' }))
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 429, 429])
    const refused = answers[5]!
    expect(await refused.json()).toMatchObject({ error: 'rate_limited', message: expect.any(String) })
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(refused.headers.get('ratelimit-limit')).toBe('5')
    expect(refused.headers.get('ratelimit-remaining')).toBe('0')
    expect(Number(refused.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1)
    expect(await queue.count()).toBe(before)
    expect((await metrics.rateLimited.get()).values).toContainEqual(expect.objectContaining({ labels: { class: 'ip_webhook', instance: '' }, value: 2 }))
  })

  test('requests that come together take their tokens in fewer calls to Redis, each answered as if it came alone', async () => {
    const { base } = await gateway({ RATE_LIMIT_IP_BURST: '5', RATE_LIMIT_IP_PER_SECOND: '0.1' })
    const before = await scriptCalls()
    const answers = await statuses(Array.from({ length: 12 }, () => post(base, { token: 'guessed-token-0123456789' })))
    const calls = (await scriptCalls()) - before
    expect(answers.filter((status) => status === 401)).toHaveLength(5)
    expect(answers.filter((status) => status === 429)).toHaveLength(7)
    expect(calls).toBeGreaterThan(0)
    expect(calls).toBeLessThan(12)
  })

  test('does not throttle the authenticated deliveries of a Chatwoot sharing that IP', async () => {
    const { base } = await gateway({ RATE_LIMIT_IP_BURST: '2', RATE_LIMIT_IP_PER_SECOND: '0.1' })
    expect(await statuses([1, 2, 3].map(() => post(base, { token: 'guessed-token-0123456789' })))).toContain(429)
    expect(await statuses(Array.from({ length: 20 }, () => post(base)))).toEqual(Array(20).fill(202))
  })

  test('refills continuously: refused, then admitted again a token-interval later', async () => {
    const { base } = await gateway({ RATE_LIMIT_IP_BURST: '2', RATE_LIMIT_IP_PER_SECOND: '20' })
    const docs = () => fetch(`${base}/docs/json`)
    expect((await docs()).status).toBe(200)
    const second = await docs()
    expect(second.status).toBe(200)
    expect(second.headers.get('ratelimit-remaining')).toBe('0')
    expect((await docs()).status).toBe(429)
    await Bun.sleep(60) // one token is 50 ms at 20/s
    expect((await docs()).status).toBe(200)
  })

  test('ignores X-Forwarded-For from an untrusted peer, honours it from a trusted proxy', async () => {
    const env = { RATE_LIMIT_IP_BURST: '3', RATE_LIMIT_IP_PER_SECOND: '0.1' }
    const forged = (base: string, i: number) => post(base, { token: 'nope-0123456789abcdef', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
    const direct = await gateway(env)
    const directAnswers: number[] = []
    for (let i = 0; i < 5; i++) directAnswers.push((await forged(direct.base, i)).status)
    expect(directAnswers).toEqual([401, 401, 401, 429, 429])

    const proxied = await gateway({ ...env, TRUSTED_PROXIES: '127.0.0.1/32,::1' })
    const proxiedAnswers: number[] = []
    for (let i = 0; i < 5; i++) proxiedAnswers.push((await forged(proxied.base, i)).status)
    expect(proxiedAnswers).toEqual([401, 401, 401, 401, 401])
  })

  test('limits failed /admin attempts (never the operator with the token), and never /health or /metrics', async () => {
    const adminToken = 'admin-token-0123456789'
    const { base } = await gateway({
      ADMIN_TOKEN: adminToken,
      RATE_LIMIT_IP_BURST: '1',
      RATE_LIMIT_IP_PER_SECOND: '0.1',
      RATE_LIMIT_ADMIN_BURST: '1',
      RATE_LIMIT_ADMIN_PER_SECOND: '0.1',
    })
    const wrong = { authorization: 'Bearer not-the-admin-token' }
    expect(await statuses([fetch(`${base}/admin/instances`, { headers: wrong })])).toEqual([401])
    expect(await statuses([fetch(`${base}/admin/instances`, { headers: wrong })])).toEqual([429])
    const right = { authorization: `Bearer ${adminToken}` }
    expect(await statuses(Array.from({ length: 5 }, () => fetch(`${base}/admin/instances`, { headers: right })))).toEqual(Array(5).fill(200))
    // Not a webhook route, though under /webhook: limited per IP like any other (the class's one token, then 429).
    expect((await fetch(`${base}/webhook/chatwoot/acme`)).status).toBe(404)
    expect((await fetch(`${base}/webhook/chatwoot/acme/extra`, { method: 'POST' })).status).toBe(429)
    const health = await statuses(Array.from({ length: 20 }, (_, i) => fetch(`${base}/${i % 2 ? 'health' : 'metrics'}`)))
    expect(health).toEqual(Array(20).fill(200))
  })
})

describe('per instance', () => {
  const instances = {
    instances: [
      { id: 'noisy', tokens: [ACME_TOKEN], rateLimit: { perSecond: 2, burst: 2, ceilingPerSecond: 5 }, routes: everyEventRoutes },
      { id: 'strict', tokens: [ACME_TOKEN], rateLimit: { perSecond: 2, burst: 2, policy: 'reject' } },
      { id: 'quiet', tokens: [GLOBEX_TOKEN] },
    ],
  }

  test('a noisy tenant is shaped, then refused past its ceiling, while another passes untouched', async () => {
    const { base, queue, metrics } = await gateway({ RATE_LIMIT_SHAPE_MAX_DELAY_MS: '60000' }, instances)
    const noisy: Response[] = []
    for (let i = 0; i < 6; i++) noisy.push(await post(base, { instance: 'noisy' }))
    const quiet = await Promise.all(Array.from({ length: 20 }, () => post(base, { instance: 'quiet', token: GLOBEX_TOKEN })))

    const bodies = (await Promise.all(noisy.map((r) => r.json()))) as { status: string; jobId: string; shaped?: boolean }[]
    expect(noisy.map((r) => r.status)).toEqual([202, 202, 202, 202, 202, 429])
    expect(bodies.map((b) => b.shaped ?? false)).toEqual([false, false, true, true, true, false])
    expect(noisy[5]!.headers.get('retry-after')).toBe('1')

    const delays = await Promise.all(bodies.slice(0, 5).map(async (b) => (await queue.getJob(b.jobId))!.opts.delay ?? 0))
    expect(delays.slice(0, 2)).toEqual([0, 0])
    // The bots of `noisy` see 2 events a second: borrowed tokens are due 500, 1000, 1500 ms later.
    expect(delays[2]).toBeWithin(400, 501)
    expect(delays[3]).toBeWithin(900, 1001)
    expect(delays[4]).toBeWithin(1400, 1501)
    expect(await queue.getJobState(bodies[2]!.jobId)).toBe('delayed')

    expect(quiet.map((r) => r.status)).toEqual(Array(20).fill(202))
    for (const r of quiet) {
      expect(((await r.json()) as { shaped?: boolean }).shaped).toBeUndefined()
      expect(Number(r.headers.get('ratelimit-remaining'))).toBeGreaterThan(150)
    }
    expect((await metrics.rateLimited.get()).values).toEqual([expect.objectContaining({ labels: { class: 'instance', instance: 'noisy' }, value: 1 })])
    expect((await metrics.shaped.get()).values).toEqual([expect.objectContaining({ labels: { instance: 'noisy' }, value: 3 })])
  })

  test('with several queue shards (the token taken apart from the lock), events that come together are shaped and refused as if they came one by one', async () => {
    const { base } = await gateway({ RATE_LIMIT_SHAPE_MAX_DELAY_MS: '60000', REDIS_QUEUE_SHARDS: '2' }, instances)
    const noisy = await Promise.all(Array.from({ length: 6 }, () => post(base, { instance: 'noisy' })))
    expect(noisy.map((r) => r.status).sort()).toEqual([202, 202, 202, 202, 202, 429])
    const accepted = (await Promise.all(noisy.filter((r) => r.status === 202).map((r) => r.json()))) as { status: string; shaped?: boolean }[]
    expect(accepted.filter((b) => b.shaped).length).toBe(3)
    expect(accepted.every((b) => b.status === 'queued')).toBe(true)
  })

  test('with several queue shards, a steady stream of webhooks takes its tokens ahead: about one script per webhook in all, not two', async () => {
    const steady = { instances: [{ id: 'steady', tokens: [ACME_TOKEN], rateLimit: { perSecond: 5000, burst: 5000, ceilingPerSecond: 5000 } }] }
    const { base } = await gateway({ REDIS_QUEUE_SHARDS: '2', REDIS_KEY_PREFIX: '{steady}' }, steady)
    const before = await scriptCalls()
    // Two senders, each waiting for its answer: the takes mostly come alone, so grouping them alone saves little.
    const sender = async () => {
      const answers: number[] = []
      for (let i = 0; i < 100; i++) answers.push((await post(base, { instance: 'steady' })).status)
      return answers
    }
    const answers = (await Promise.all([sender(), sender()])).flat()
    const calls = (await scriptCalls()) - before
    expect(answers).toEqual(Array(200).fill(202))
    // Each webhook's lock and job are a script (one per shard call); its token was another one before.
    expect(calls).toBeLessThan(250)
  })

  test('tokens taken ahead by two API processes never admit more than the bucket holds', async () => {
    const scarce = { instances: [{ id: 'scarce', tokens: [ACME_TOKEN], rateLimit: { perSecond: 0.01, burst: 20, policy: 'reject' } }] }
    const env = { REDIS_QUEUE_SHARDS: '2', REDIS_KEY_PREFIX: '{scarce}' }
    const [one, two] = [await gateway(env, scarce), await gateway(env, scarce)]
    const answers: number[] = []
    for (let i = 0; i < 20; i++) answers.push(...(await statuses([post(one.base, { instance: 'scarce' }), post(two.base, { instance: 'scarce' })])))
    const admitted = answers.filter((status) => status === 202).length
    expect(answers.filter((status) => status !== 202 && status !== 429)).toEqual([])
    expect(admitted).toBeLessThanOrEqual(20)
    // Tokens left unspent in a lease are dropped; sent this close together, few are.
    expect(admitted).toBeGreaterThanOrEqual(15)
  })

  test('with policy reject, over the rate is 429 at once, and a refused event leaves no dedupe lock behind', async () => {
    const fast = { instances: [{ id: 'strict', tokens: [ACME_TOKEN], rateLimit: { perSecond: 20, burst: 2, policy: 'reject' } }] }
    const { base } = await gateway({}, fast)
    const answers: number[] = []
    for (let i = 0; i < 3; i++) answers.push((await post(base, { instance: 'strict' })).status)
    expect(answers).toEqual([202, 202, 429])
    const refusedEvent = toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId - 1 }))
    await Bun.sleep(60) // one token is 50 ms at 20/s
    const retried = await fetch(`${base}/webhook/chatwoot/strict?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: refusedEvent,
    })
    expect(await retried.json()).toMatchObject({ status: 'queued' })
  })
})

describe('with Redis away', () => {
  test('limits in memory per process, logs it once, and keeps serving', async () => {
    const app = await gateway({ RATE_LIMIT_IP_BURST: '3', RATE_LIMIT_IP_PER_SECOND: '0.1' })
    await redis.stop()
    try {
      if (app.commands.status === 'ready') await new Promise((resolve) => app.commands.once('close', resolve))
      const answers: number[] = []
      for (let i = 0; i < 5; i++) answers.push((await post(app.base, { token: 'guessed-token-0123456789' })).status)
      expect(answers).toEqual([401, 401, 401, 429, 429])
      expect((await fetch(`${app.base}/health`)).status).toBe(200)
      expect(app.logs.filter((l) => l.includes('limiting per process in memory'))).toHaveLength(1)
    } finally {
      await redis.restart()
    }
    expect(await app.reconnected()).toBe(true)
    expect((await post(app.base)).status).toBe(202)
    expect(app.logs.filter((l) => l.includes('limits are fleet-wide again'))).toHaveLength(1)
  })
})
