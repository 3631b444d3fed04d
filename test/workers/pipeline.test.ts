import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Job, Queue, QueueEvents } from 'bullmq'
import { createLogger } from '../../src/log.ts'
import { QUEUE, deliveredKey, eventLogKey, laneKey } from '../../src/queue/names.ts'
import type { ConnectedRedisConfig } from '../../src/redis/connections.ts'
import { startWorkers, type RunningWorkers } from '../../workers/runtime.ts'
import { jobOnceAdded, recordFinished, type FinishedJobs } from '../helpers/jobs.ts'
import { signStandardWebhook } from '../../workers/sign.ts'
import { LANE_RECHECK_MS } from '../../workers/lanes.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, logCapture, testApp, webhookRequest, type TestGateway } from '../helpers/deps.ts'
import { startRecorder } from '../helpers/http-server.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const CHATWOOT_TOKEN = 'chatwoot-api-token-0123'
const BREAKER_OPEN_MS = 400
const DEBOUNCE_MS = 300

let redis: TestRedis
let gateway: TestGateway
let workers: RunningWorkers
let destination: Awaited<ReturnType<typeof startRecorder>>
let chatwootApi: Awaited<ReturnType<typeof startRecorder>>
let webhookEvents: QueueEvents
let deliveryEvents: QueueEvents
let deliveries: Queue
let webhookJobs: FinishedJobs
let deliveryJobs: FinishedJobs
let nextMessageId = 500_000

beforeAll(async () => {
  redis = await startRedis()
  destination = await startRecorder()
  chatwootApi = await startRecorder({ status: 200, json: { id: 1 } })
  const instances = {
    instances: [
      {
        id: 'acme',
        tokens: [ACME_TOKEN],
        notifyOnFailure: true,
        chatwoot: { url: chatwootApi.url, apiAccessToken: CHATWOOT_TOKEN },
        routes: [
          {
            events: ['message_created'],
            messageTypes: ['incoming'],
            destination: { url: `${destination.url}/bot?key=k`, secret: SECRET, timeoutMs: 500, maxAttempts: 3 },
          },
          {
            events: ['message_created'],
            inboxes: [9],
            destination: { url: `${destination.url}/batched`, secret: SECRET, debounceMs: DEBOUNCE_MS },
          },
        ],
      },
    ],
  }
  gateway = await testApp(
    redis,
    {
      DELIVERY_BACKOFF_MS: '10',
      RATE_LIMIT_ENABLED: 'false',
      BREAKER_FAILURE_THRESHOLD: '3',
      BREAKER_OPEN_MS: String(BREAKER_OPEN_MS),
      CHATWOOT_API_PER_SECOND: '10',
      CHATWOOT_API_BURST: '1',
    },
    instances,
  )
  const { prefix } = gateway.config.queue
  const connection = { url: redis.url }
  ;[webhookEvents, deliveryEvents] = [new QueueEvents(QUEUE.webhook, { connection, prefix }), new QueueEvents(QUEUE.delivery, { connection, prefix })]
  await Promise.all([webhookEvents.waitUntilReady(), deliveryEvents.waitUntilReady()])
  webhookJobs = recordFinished(webhookEvents)
  deliveryJobs = recordFinished(deliveryEvents)
  deliveries = new Queue(QUEUE.delivery, { connection, prefix })
  workers = startWorkers(gateway.config, gateway.config.redis as ConnectedRedisConfig, createLogger({ level: 'info' }, logCapture().stream))
})

afterAll(async () => {
  await workers.stop()
  await Promise.all([webhookEvents.close(), deliveryEvents.close(), deliveries.close()])
  await gateway.close()
  destination.stop()
  chatwootApi.stop()
  await redis.stop()
})

/** Sends an event through the API and waits until the worker has routed it (and made each route's first try). */
async function ingest(payload: Record<string, unknown>): Promise<{ webhookJob: string; routes: number[] }> {
  const response = await gateway.app.handle(webhookRequest(toChatwootJson(payload)))
  const { jobId } = (await response.json()) as { jobId: string }
  const { routes } = (await webhookJobs.completed(jobId)) as { routes: number[] }
  return { webhookJob: jobId, routes }
}

/** Sends an event no route wants: the API answers 202, logs it as routed nowhere, and queues nothing. */
async function ingestUnrouted(payload: Record<string, unknown>): Promise<void> {
  const response = await gateway.app.handle(webhookRequest(toChatwootJson(payload)))
  expect(response.status).toBe(202)
  const { jobId } = (await response.json()) as { jobId: string }
  const lines = await gateway.commands.xrevrange(eventLogKey(gateway.config.queue.prefix, 'acme'), '+', '-', 'COUNT', 100)
  expect(lines.map(([, fields]) => fields).find((fields) => fields.includes(jobId))).toEqual(expect.arrayContaining(['kind', 'routed', 'routes', '[]']))
  expect(await gateway.queue.getJob(jobId)).toBeUndefined()
}

/** The requests the destination got for one delivery (its webhook-id), once there are `count` of them. */
function triesOf(deliveryId: string, count: number) {
  return destination.received(count, (r) => r.headers['webhook-id'] === deliveryId)
}

function incoming() {
  return chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ })
}

describe('webhook → delivery', () => {
  test('POSTs the event byte for byte, signed with the Standard Webhooks scheme, to the matching route', async () => {
    const payload = incoming()
    const { webhookJob, routes } = await ingest(payload)
    expect(routes).toEqual([0])
    // Its first try was made by the webhook job itself: delivered by the time the job completed, no delivery job.
    const [request] = destination.requests.filter((r) => r.headers['webhook-id'] === `${webhookJob}.r0`)
    expect(await Job.fromId(deliveries, `${webhookJob}.r0`)).toBeUndefined()
    expect(request).toMatchObject({ method: 'POST', path: '/bot?key=k', body: toChatwootJson(payload) })
    expect(request!.headers).toMatchObject({ 'x-hookgate-instance': 'acme', 'x-chatwoot-event': 'message_created', 'content-type': 'application/json' })
    const expected = signStandardWebhook(SECRET, request!.headers['webhook-id']!, Number(request!.headers['webhook-timestamp']), request!.body)
    expect(request!.headers['webhook-signature']).toBe(expected['webhook-signature']!)
  })

  const sendInConversation = async (messageId: number, conversationId: number) => {
    const response = await gateway.app.handle(webhookRequest(toChatwootJson(chatwoot.messageCreatedIncoming({ messageId, conversationId }))))
    return ((await response.json()) as { jobId: string }).jobId
  }

  test('a conversation\'s next events wait in the worker for the one before, and go in order without being parked', async () => {
    destination.answer({ status: 200, json: {}, delayMs: 300 })
    const [first, second, third] = [await sendInConversation(nextMessageId++, 4241), await sendInConversation(nextMessageId++, 4241), await sendInConversation(nextMessageId++, 4241)]
    await Promise.all([first, second, third].map((id) => webhookJobs.completed(id)))
    const arrivals = await Promise.all([first, second, third].map(async (id) => (await triesOf(`${id}.r0`, 1))[0]!.at))
    expect(arrivals).toEqual([...arrivals].sort((a, b) => a - b))
    // Each went once the one before was delivered, from its own webhook job: no delivery job was needed.
    const handedOver = await Promise.all([second, third].map((id) => Job.fromId(deliveries, `${id}.r0`)))
    expect(handedOver).toEqual([undefined, undefined])
  })

  test('a conversation\'s next event behind one being retried waits its turn parked, holding no claim on its delivery, and goes when the one before is delivered', async () => {
    // The first event's first try fails, and its retry (from the delivery queue) takes a while: the others find it
    // still heading the lane.
    destination.answer({ status: 503 }, { status: 200, json: {}, delayMs: 400 })
    const [first, second, third] = [await sendInConversation(nextMessageId++, 4242), await sendInConversation(nextMessageId++, 4242), await sendInConversation(nextMessageId++, 4242)]
    await Promise.all([webhookJobs.completed(second), webhookJobs.completed(third)])
    // The first is still being POSTed: the others' deliveries are parked, their markers free for when they are woken.
    expect(destination.requests.filter((r) => [`${second}.r0`, `${third}.r0`].includes(r.headers['webhook-id']!))).toHaveLength(0)
    const [parkedSecond, parkedThird] = await Promise.all([Job.fromId(deliveries, `${second}.r0`), Job.fromId(deliveries, `${third}.r0`)])
    expect(await parkedSecond?.getState()).toBe('delayed')
    expect(await gateway.commands.exists(deliveredKey(gateway.config.queue.prefix, `${second}.r0`))).toBe(0)
    // Right behind the head it looks again every LANE_RECHECK_MS; further back, less often (it is woken in turn).
    expect([parkedSecond?.delay, parkedThird?.delay]).toEqual([LANE_RECHECK_MS, 2 * LANE_RECHECK_MS])
    const delivered = async (id: string, tries: number) => (await triesOf(`${id}.r0`, tries)).find((r) => r.answered === 200)!.at
    const arrivals: number[] = await Promise.all([delivered(first, 2), delivered(second, 1), delivered(third, 1)])
    expect(arrivals).toEqual([...arrivals].sort((a, b) => a - b))
    expect(await deliveryJobs.completed(`${third}.r0`)).toMatchObject({ status: 'delivered' })
  })

  test('events that arrive together are queued as one batch job, repeats answered, each delivered once, a conversation\'s in the order accepted', async () => {
    destination.answer({ status: 200, json: {} })
    const batches: string[][] = []
    const recordBatch = ({ returnvalue }: { returnvalue: unknown }) => {
      const events = (returnvalue as { events?: Record<string, unknown> } | null)?.events
      if (events) batches.push(Object.keys(events))
    }
    webhookEvents.on('completed', recordBatch)
    const payloads = Array.from({ length: 16 }, (_, i) => chatwoot.messageCreatedIncoming({ messageId: nextMessageId++, conversationId: i % 2 === 0 ? 4243 : 5000 + i }))
    // Sent at once: the first goes alone, the others wait for its call and go together. Two repeats come along.
    const requests = [...payloads, payloads[2]!, payloads[3]!].map((payload) => gateway.app.handle(webhookRequest(toChatwootJson(payload))))
    const answers = await Promise.all(requests.map(async (r) => (await (await r).json()) as { status: string; jobId: string }))
    const ids = answers.slice(0, 16).map((answer) => answer.jobId)
    expect(answers.filter((answer) => answer.status === 'queued').map((answer) => answer.jobId).sort()).toEqual([...ids].sort())
    expect(answers.filter((answer) => answer.status === 'already_queued').map((answer) => answer.jobId).sort()).toEqual([ids[2]!, ids[3]!].sort())

    await Promise.all(ids.map((id) => webhookJobs.completed(id)))
    webhookEvents.off('completed', recordBatch)
    expect(batches.flat().length).toBeGreaterThanOrEqual(2)
    const arrivals = new Map<string, number>()
    for (const id of ids) {
      const [request] = await triesOf(`${id}.r0`, 1)
      arrivals.set(id, request!.at)
      expect(await Job.fromId(deliveries, `${id}.r0`)).toBeUndefined() // delivered from the batch, neither parked nor retried
    }
    // A conversation's events left in the order the batch holds them (the order their lane got them in).
    const conversation = new Set(ids.filter((_, i) => i % 2 === 0))
    for (const batch of batches) {
      const times = batch.filter((id) => conversation.has(id)).map((id) => arrivals.get(id)!)
      expect(times).toEqual([...times].sort((a, b) => a - b))
    }
    expect(destination.requests.filter((r) => ids.some((id) => r.headers['webhook-id'] === `${id}.r0`))).toHaveLength(16)
    // Each left its lane as itself: the lane's entries name the batch, and nothing is left holding the conversation.
    expect(await gateway.commands.llen(laneKey(gateway.config.queue.prefix, 'acme', 0, { accountId: 31, conversationId: 4243 }))).toBe(0)
  })

  test('routes nothing the routes do not ask for', async () => {
    await ingestUnrouted(chatwoot.messageCreatedOutgoing({ messageId: nextMessageId++ }))
  })

  test('retries 5xx with backoff, keeping the same webhook-id, until it is delivered', async () => {
    destination.answer({ status: 500 }, { status: 503 })
    const { webhookJob } = await ingest(incoming())
    // The webhook job's try failed: a delivery job of the same id makes the next ones.
    expect(await deliveryJobs.completed(`${webhookJob}.r0`)).toMatchObject({ status: 'delivered' })
    expect(await triesOf(`${webhookJob}.r0`, 3)).toHaveLength(3)
    expect(await deliveries.getJob(`${webhookJob}.r0`)).toBeUndefined() // completed jobs go at once
  })

  test('honours Retry-After on a 429', async () => {
    destination.answer({ status: 429, headers: { 'retry-after': '1' } })
    const before = destination.requests.length
    const { webhookJob } = await ingest(incoming())
    await deliveryJobs.completed(`${webhookJob}.r0`)
    const [first, second] = destination.requests.slice(before)
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950)
  })

  test('a timeout is retried like a 5xx', async () => {
    destination.answer('hang')
    const { webhookJob } = await ingest(incoming())
    expect(await deliveryJobs.completed(`${webhookJob}.r0`)).toMatchObject({ status: 'delivered' })
    expect(await triesOf(`${webhookJob}.r0`, 2)).toHaveLength(2)
  })

  test('another 4xx fails for good at once, stays in the failed set, and tells the agents in a private note', async () => {
    destination.answer({ status: 400 })
    const before = destination.requests.length
    const { webhookJob } = await ingest(incoming())
    const id = `${webhookJob}.r0`
    expect(await deliveryJobs.failed(id)).toContain('answered 400')
    expect(await deliveries.getJobState(id)).toBe('failed')
    expect(destination.requests.length - before).toBe(1)
    const lines = await gateway.commands.xrevrange(eventLogKey(gateway.config.queue.prefix, 'acme'), '+', '-', 'COUNT', 100)
    const failed = lines.map(([, fields]) => fields).find((fields) => fields.includes(id) && fields.includes('delivery_failed'))
    expect(failed).toEqual(expect.arrayContaining(['attempt', '1', 'error', `${new URL(destination.url).host} answered 400`]))
    const [failureNote] = await chatwootApi.received(1, (r) => r.body.includes(`hookgate:${id}.failure.0`))
    const note = JSON.parse(failureNote!.body) as { content: string; private: boolean; source_id: string }
    expect(note).toMatchObject({ private: true, source_id: `hookgate:${id}.failure.0` })
    expect(note.content).toContain('answered 400')
    expect(note.content).not.toContain('key=k') // the destination's query (it may hold a secret) stays out
  })

  test('a delivery, or an event\'s job, run again after it succeeded does not deliver twice', async () => {
    const payload = incoming()
    const { webhookJob } = await ingest(payload)
    const id = `${webhookJob}.r0`
    const before = destination.requests.length
    await deliveries.add('deliver', { instanceId: 'acme', route: 0, event: 'message_created', body: toChatwootJson(payload) }, { jobId: id })
    expect(await deliveryJobs.completed(id)).toEqual({ status: 'delivered_before' })
    // As a spooled copy replayed after its first was done and gone would be.
    const again = await gateway.queue.add('chatwoot-event', { instanceId: 'acme', event: 'message_created', body: toChatwootJson(payload), deliveryId: undefined, receivedAt: Date.now() }, { jobId: webhookJob })
    expect(await webhookJobs.completed(again.id!)).toEqual({ routes: [0] })
    expect(destination.requests.length).toBe(before)
  })
})

describe('the event log', () => {
  test('gets a line when an event is routed and one when it is delivered, in the instance\'s capped stream', async () => {
    const { webhookJob } = await ingest(incoming())
    const key = eventLogKey(gateway.config.queue.prefix, 'acme')
    const lines: Record<string, string>[] = []
    let lastId = '0'
    const reader = gateway.commands.duplicate({ enableOfflineQueue: true })
    try {
      while (!lines.some((l) => l.kind === 'delivered' && l.jobId === `${webhookJob}.r0`)) {
        const read = await reader.xread('BLOCK', 5000, 'STREAMS', key, lastId)
        if (!read) throw new Error('no log line within 5 s')
        for (const [id, fields] of read[0]![1]) {
          lastId = id
          lines.push(Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!])))
        }
      }
    } finally {
      reader.disconnect()
    }
    expect(lines.find((l) => l.kind === 'routed' && l.jobId === webhookJob)).toMatchObject({ event: 'message_created', routes: '[0]' })
    expect(lines.find((l) => l.kind === 'delivered' && l.jobId === `${webhookJob}.r0`)).toMatchObject({ status: '200', attempt: '1' })
  })
})

describe('a failing destination', () => {
  test('opens its breaker: later deliveries wait, delayed without using a try, and go once a probe succeeds', async () => {
    destination.answer({ status: 500 }, { status: 500 }, { status: 500 })
    const failing = await ingest(incoming())
    const failingId = `${failing.webhookJob}.r0`
    await (await jobOnceAdded(deliveries, deliveryEvents, failingId)).waitUntilFinished(deliveryEvents).catch(() => {})
    expect(await deliveries.getJobState(failingId)).toBe('failed')
    const openedAt = Date.now()

    const before = destination.requests.length
    const { webhookJob } = await ingest(incoming())
    // The webhook job met the open breaker: no try, a delivery job waits for the probe.
    expect(destination.requests.length - before).toBe(0)
    expect(await deliveryJobs.completed(`${webhookJob}.r0`)).toMatchObject({ status: 'delivered' })
    expect(destination.requests.length - before).toBe(1)
    expect(destination.requests.at(-1)!.at - openedAt).toBeGreaterThanOrEqual(BREAKER_OPEN_MS - 50)
  })
})

describe('a debounced route', () => {
  test('delivers a conversation\'s quick messages together, once it has been quiet for debounceMs', async () => {
    const message = (conversationId: number, content: string) => ({
      ...chatwoot.messageCreatedIncoming({ messageId: nextMessageId++, conversationId }),
      inbox: { id: 9, name: 'WhatsApp Suporte' },
      content,
    })
    const quick = [message(4242, 'Oi'), message(4242, 'tudo bem?'), message(4242, 'quero pão de queijo')]
    const sent = await Promise.all(quick.map((m) => ingest(m)).map(async (p) => (await p).webhookJob))
    expect(sent).toHaveLength(3)
    const firstAt = Date.now()
    const [batch] = await destination.received(1, (r) => r.path === '/batched')
    expect(Date.now() - firstAt).toBeGreaterThanOrEqual(DEBOUNCE_MS - 100)
    const payload = JSON.parse(batch!.body) as { event: string; conversation: unknown; messages: { content: string; id: number }[] }
    expect(batch!.headers['x-chatwoot-event']).toBe('message_batch')
    expect(payload.event).toBe('message_batch')
    expect(payload.conversation).toEqual({ accountId: 31, conversationId: 4242 })
    expect(payload.messages.map((m) => m.content).sort()).toEqual(['Oi', 'quero pão de queijo', 'tudo bem?'])
    const expected = signStandardWebhook(SECRET, batch!.headers['webhook-id']!, Number(batch!.headers['webhook-timestamp']), batch!.body)
    expect(batch!.headers['webhook-signature']).toBe(expected['webhook-signature']!)

    // A later message is a batch of its own; the first is not sent again.
    await ingest(message(4242, 'obrigado'))
    const batches = await destination.received(2, (r) => r.path === '/batched')
    expect((JSON.parse(batches[1]!.body) as { messages: { content: string }[] }).messages.map((m) => m.content)).toEqual(['obrigado'])
  })
})

describe('answering back into Chatwoot', () => {
  test('a reply and a note from the destination reach the conversation, marked as ours, and their echo is not routed', async () => {
    destination.answer({ status: 200, json: { reply: 'Temos sim!', note: 'Cliente quer pão de queijo' } })
    const { webhookJob } = await ingest(incoming())
    const posted = (await chatwootApi.received(2, (r) => r.body.includes(`hookgate:${webhookJob}.r0.`))).sort((a, b) => a.body.localeCompare(b.body))
    for (const request of posted) {
      expect(request).toMatchObject({ method: 'POST', path: '/api/v1/accounts/31/conversations/77/messages' })
      expect(request.headers['api_access_token']).toBe(CHATWOOT_TOKEN)
    }
    const bodies = posted.map((r) => JSON.parse(r.body) as { content: string; private: boolean; message_type: string; source_id: string })
    expect(bodies.map(({ content, private: isPrivate, message_type }) => ({ content, private: isPrivate, message_type }))).toEqual([
      { content: 'Cliente quer pão de queijo', private: true, message_type: 'outgoing' },
      { content: 'Temos sim!', private: false, message_type: 'outgoing' },
    ])
    for (const body of bodies) expect(body.source_id).toStartWith('hookgate:')

    // The instance's Chatwoot API budget is 10 calls a second with a burst of 1: the second waited its turn.
    expect(Math.abs(posted[1]!.at - posted[0]!.at)).toBeGreaterThanOrEqual(80)

    // Chatwoot sends our reply back as a message_created; with our source_id it goes nowhere.
    const echo = { ...chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ }), source_id: bodies[1]!.source_id }
    await ingestUnrouted(echo)
  })
})
