import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Queue, QueueEvents } from 'bullmq'
import { writeFileSync } from 'node:fs'
import { createLogger } from '../../src/log.ts'
import { QUEUE } from '../../src/queue/names.ts'
import type { ConnectedRedisConfig } from '../../src/redis/connections.ts'
import { startWorkers, type RunningWorkers } from '../../workers/runtime.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, GLOBEX_TOKEN, logCapture, testApp, webhookRequest, type TestGateway } from '../helpers/deps.ts'
import { startRecorder } from '../helpers/http-server.ts'
import { recordFinished, type FinishedJobs } from '../helpers/jobs.ts'
import { spawnHookgate } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const ADMIN_TOKEN = 'admin-token-for-tests-0123'
const DESTINATION_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const CHATWOOT_API_TOKEN = 'chatwoot-api-token-secret-42'

let redis: TestRedis
let gateway: TestGateway
let workers: RunningWorkers
let destination: Awaited<ReturnType<typeof startRecorder>>
let deliveries: Queue
let deliveryEvents: QueueEvents
let webhookEvents: QueueEvents
let webhookJobs: FinishedJobs
let deliveryJobs: FinishedJobs
let nextMessageId = 700_000

function instancesWith(extra: object[] = []) {
  return {
    instances: [
      {
        id: 'acme',
        tokens: [ACME_TOKEN],
        chatwoot: { url: 'https://chat.example.com', apiAccessToken: CHATWOOT_API_TOKEN },
        routes: [{ events: ['message_created'], destination: { url: `${destination.url}/bot?key=query-secret`, secret: DESTINATION_SECRET, maxAttempts: 1 } }],
      },
      { id: 'globex', tokens: [GLOBEX_TOKEN] },
      ...extra,
    ],
  }
}

beforeAll(async () => {
  redis = await startRedis()
  destination = await startRecorder()
  gateway = await testApp(redis, { ADMIN_TOKEN, RATE_LIMIT_ENABLED: 'false', DELIVERY_BACKOFF_MS: '10' }, instancesWith())
  workers = startWorkers(gateway.config, gateway.config.redis as ConnectedRedisConfig, createLogger({ level: 'silent' }, logCapture().stream))
  const connection = { connection: { url: redis.url }, prefix: gateway.config.queue.prefix }
  deliveries = new Queue(QUEUE.delivery, connection)
  deliveryEvents = new QueueEvents(QUEUE.delivery, connection)
  webhookEvents = new QueueEvents(QUEUE.webhook, connection)
  await Promise.all([deliveryEvents.waitUntilReady(), webhookEvents.waitUntilReady()])
  deliveryJobs = recordFinished(deliveryEvents)
  webhookJobs = recordFinished(webhookEvents)
})

afterAll(async () => {
  await workers.stop()
  await Promise.all([deliveryEvents.close(), webhookEvents.close()])
  await deliveries.close()
  await gateway.close()
  await destination.stop()
  await redis.stop()
})

const admin = (path: string, init: RequestInit = {}, token = ADMIN_TOKEN) =>
  gateway.app.handle(
    new Request(`http://localhost${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
    }),
  )

/**
 * Sends one incoming message of `conversation` and waits until its delivery is done either way: delivered by the
 * event's webhook job, or failed (the route has one try) and left in the delivery queue as a dead letter.
 */
async function deliver(conversation: number): Promise<{ id: string; failed: boolean }> {
  const payload = chatwoot.messageCreatedIncoming({ messageId: nextMessageId++, conversationId: conversation })
  const response = await gateway.app.handle(webhookRequest(toChatwootJson(payload)))
  expect(response.status).toBe(202)
  const { jobId } = (await response.json()) as { jobId: string }
  const id = `${jobId}.r0`
  await webhookJobs.completed(jobId)
  if (!(await deliveries.getJob(id))) return { id, failed: false }
  return { id, failed: await Promise.race([deliveryJobs.completed(id).then(() => false), deliveryJobs.failed(id).then(() => true)]) }
}

describe('admin access', () => {
  test('without ADMIN_TOKEN the admin API says it is off, as JSON', async () => {
    const off = await testApp(redis, {})
    try {
      const response = await off.app.handle(new Request('http://localhost/admin/instances'))
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ error: 'admin_disabled', message: expect.stringContaining('ADMIN_TOKEN') })
    } finally {
      await off.close()
    }
  })

  test('a missing or wrong token gets 401 everywhere under /admin, the dashboard too; Bearer and Basic both work', async () => {
    for (const path of ['/admin/instances', '/admin/events?instance=acme', '/admin/queues', '/admin/queues/api/queues', '/admin/nothing']) {
      const missing = await gateway.app.handle(new Request(`http://localhost${path}`))
      expect(missing.status).toBe(401)
      expect(missing.headers.get('www-authenticate')).toContain('Basic realm="hookgate admin"')
      expect(await missing.json()).toMatchObject({ error: 'unauthorized' })
      expect((await admin(path, {}, 'wrong-token-wrong-token')).status).toBe(401)
    }
    expect((await admin('/admin/instances')).status).toBe(200)
    const basic = `Basic ${Buffer.from(`ops:${ADMIN_TOKEN}`).toString('base64')}`
    expect((await admin('/admin/queues', { headers: { authorization: basic } })).status).toBe(200)
    expect((await admin('/admin/nothing')).status).toBe(404)
  })
})

describe('GET /admin/instances', () => {
  test('lists the instances with every secret masked to a fingerprint', async () => {
    const response = await admin('/admin/instances')
    const text = await response.text()
    for (const secret of [ACME_TOKEN, GLOBEX_TOKEN, DESTINATION_SECRET, CHATWOOT_API_TOKEN, 'query-secret']) expect(text).not.toContain(secret)
    const body = JSON.parse(text) as { source: string; instances: { id: string; tokens: string[]; routes?: { destination: { url: string; secret: string } }[] }[] }
    expect(body.source).toBe(gateway.config.instancesSource.kind === 'file' ? gateway.config.instancesSource.path : '')
    expect(body.instances.map((i) => i.id)).toEqual(['acme', 'globex'])
    expect(body.instances[0]!.tokens).toEqual([expect.stringMatching(/^sha256:[0-9a-f]{8}$/)])
    expect(body.instances[0]!.routes![0]!.destination).toMatchObject({ url: `${destination.url}/bot?key=***`, secret: expect.stringMatching(/^sha256:/) })
  })
})

describe('GET /admin/events', () => {
  test('finds an instance\'s events by conversation, event, kind and time, newest first, page by page', async () => {
    const since = Date.now()
    await deliver(41)
    await deliver(42)
    await deliver(41)
    expect(((await (await admin(`/admin/events?instance=acme&since=${since}`)).json()) as { events: unknown[] }).events).toHaveLength(6) // 3 routed, 3 delivered

    type Page = { events: { kind: string; event: string; conversation: { conversationId: number }; at: number; status?: number }[]; next?: string }
    const byConversation = (await (await admin(`/admin/events?instance=acme&conversation=41&since=${since}`)).json()) as Page
    expect(byConversation.events).toHaveLength(4)
    expect(byConversation.events.every((e) => e.conversation.conversationId === 41 && e.event === 'message_created')).toBe(true)
    const ats = byConversation.events.map((e) => e.at)
    expect(ats).toEqual([...ats].sort((a, b) => b - a))

    const delivered = (await (await admin(`/admin/events?instance=acme&kind=delivered&conversation=42&since=${new Date(since).toISOString()}`)).json()) as Page
    expect(delivered.events).toEqual([expect.objectContaining({ kind: 'delivered', status: 200 })])

    const first = (await (await admin(`/admin/events?instance=acme&since=${since}&limit=4`)).json()) as Page
    expect(first.events).toHaveLength(4)
    const rest = (await (await admin(`/admin/events?instance=acme&since=${since}&limit=4&before=${first.next}`)).json()) as Page
    expect(rest.events).toHaveLength(2)
    expect(rest.next).toBeUndefined()

    const future = (await (await admin(`/admin/events?instance=acme&since=${Date.now() + 60_000}`)).json()) as Page
    expect(future.events).toEqual([])
  })

  test('says what is wrong with a bad query', async () => {
    expect(await (await admin('/admin/events?instance=nobody')).json()).toMatchObject({ error: 'unknown_instance' })
    const badTime = await admin('/admin/events?instance=acme&since=yesterday-ish')
    expect(badTime.status).toBe(400)
    expect(await badTime.json()).toMatchObject({ error: 'invalid_request', message: expect.stringContaining('since') })
    expect((await admin('/admin/events?instance=acme&limit=100000')).status).toBe(400)
    expect((await admin('/admin/events')).status).toBe(400)
  })
})

describe('replaying failed deliveries', () => {
  test('POST /admin/replay sends failed deliveries again, once, and a second replay changes nothing', async () => {
    destination.answer({ status: 400 }, { status: 400 })
    const failedAt = Date.now()
    const first = await deliver(51)
    const second = await deliver(52)
    expect([first.failed, second.failed]).toEqual([true, true])

    const nothing = (await (await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ instance: 'acme', until: failedAt }) })).json()) as { matched: number }
    expect(nothing.matched).toBe(0)
    const dry = await (await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ destination: new URL(destination.url).host, dryRun: true }) })).json()
    expect(dry).toMatchObject({ matched: 2, replayed: expect.arrayContaining([first.id, second.id]) })
    expect(await deliveries.getJobState(first.id)).toBe('failed')

    const before = destination.requests.length
    const replay = await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ instance: 'acme', since: failedAt }) })
    expect(replay.status).toBe(200)
    expect(await replay.json()).toMatchObject({ matched: 2, replayed: expect.arrayContaining([first.id, second.id]), skipped: [], more: false })
    await Promise.all([first.id, second.id].map(async (id) => expect(await deliveryJobs.completed(id)).toMatchObject({ status: 'delivered' })))
    expect(destination.requests.length - before).toBe(2)

    const again = await (await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ jobIds: [first.id, second.id] }) })).json()
    // Delivered, and gone with it (completed jobs are removed at once): nothing to replay.
    expect(again).toMatchObject({ matched: 0, replayed: [], skipped: [{ id: first.id, reason: 'not failed (gone)' }, { id: second.id, reason: 'not failed (gone)' }] })
    expect(destination.requests.length - before).toBe(2)
  })

  test('refuses a replay with no filter, or with a bad one', async () => {
    const none = await admin('/admin/replay', { method: 'POST', body: '{}' })
    expect(none.status).toBe(400)
    expect(await none.json()).toMatchObject({ error: 'invalid_request', message: expect.stringContaining('jobIds') })
    expect((await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ since: 'soon' }) })).status).toBe(400)
    expect((await admin('/admin/replay', { method: 'POST', body: JSON.stringify({ instance: 'acme', force: true }) })).status).toBe(400)
  })

  test('`hookgate replay` does the same from the command line', async () => {
    destination.answer({ status: 400 })
    const { id, failed } = await deliver(61)
    expect(failed).toBe(true)
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: gateway.config.queue.prefix,
      HOOKGATE_CONFIG: (gateway.config.instancesSource as { path: string }).path,
      LOG_LEVEL: 'silent',
    }
    const usage = spawnHookgate(['replay'], env)
    expect(await usage.exit()).toBe(2)
    expect(usage.output()).toContain('give at least one of --instance')

    const cli = spawnHookgate(['replay', '--job', id, '--job', 'no-such-job'], env)
    expect(await cli.exit()).toBe(0)
    expect(JSON.parse(cli.output())).toEqual({ matched: 1, replayed: [id], skipped: [{ id: 'no-such-job', reason: 'not failed (gone)' }], more: false })
    expect(await deliveryJobs.completed(id)).toMatchObject({ status: 'delivered' })
  })
})

describe('POST /admin/reload', () => {
  test('swaps in a valid instances file, and refuses a bad one keeping the instances in use', async () => {
    const file = (gateway.config.instancesSource as { path: string }).path
    const newcoToken = 'newco-token-0123456789abc'
    const newco = () => gateway.app.handle(webhookRequest(toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ })), { instance: 'newco', token: newcoToken }))
    expect((await newco()).status).toBe(401)

    writeFileSync(file, JSON.stringify(instancesWith([{ id: 'newco', tokens: [newcoToken] }])))
    const reloaded = await admin('/admin/reload', { method: 'POST' })
    expect(reloaded.status).toBe(200)
    expect(await reloaded.json()).toEqual({ status: 'reloaded', instances: 3, processes: [{ pid: process.pid, ok: true, instances: 3 }] })
    expect((await newco()).status).toBe(202)

    writeFileSync(file, JSON.stringify({ instances: [{ id: 'broken id!' }] }))
    const refused = await admin('/admin/reload', { method: 'POST' })
    expect(refused.status).toBe(422)
    expect(await refused.json()).toMatchObject({ error: 'invalid_instances', message: expect.stringContaining('/instances/0/id') })
    expect((await newco()).status).toBe(202)
    expect(((await (await admin('/admin/instances')).json()) as { instances: unknown[] }).instances).toHaveLength(3)
    writeFileSync(file, JSON.stringify(instancesWith()))
    expect((await admin('/admin/reload', { method: 'POST' })).status).toBe(200)
  })
})
