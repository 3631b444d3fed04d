import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { QueueEvents } from 'bullmq'
import { ANSWER_EXAMPLE, MAX_ANSWER_MESSAGES, MAX_MESSAGE_CHARS } from '../../src/answer-schema.ts'
import { createLogger } from '../../src/log.ts'
import { QUEUE, eventLogKey } from '../../src/queue/names.ts'
import type { ConnectedRedisConfig } from '../../src/redis/connections.ts'
import { planAnswer } from '../../workers/answer.ts'
import { startWorkers, type RunningWorkers } from '../../workers/runtime.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { startChatwootApi } from '../helpers/chatwoot-api.ts'
import { logCapture, testApp, webhookRequest, ACME_TOKEN, type TestGateway } from '../helpers/deps.ts'
import { startRecorder } from '../helpers/http-server.ts'
import { recordFinished, type FinishedJobs } from '../helpers/jobs.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const CHATWOOT_TOKEN = 'chatwoot-api-token-0123'

let redis: TestRedis
let gateway: TestGateway
let workers: RunningWorkers
let bot: Awaited<ReturnType<typeof startRecorder>>
let chatwootApi: Awaited<ReturnType<typeof startChatwootApi>>
let callsEvents: QueueEvents
let callsJobs: FinishedJobs
let nextConversation = 300

beforeAll(async () => {
  redis = await startRedis()
  bot = await startRecorder()
  chatwootApi = await startChatwootApi(CHATWOOT_TOKEN)
  const instances = {
    instances: [
      {
        id: 'acme',
        tokens: [ACME_TOKEN],
        notifyOnFailure: true,
        chatwoot: { url: chatwootApi.url, apiAccessToken: CHATWOOT_TOKEN },
        routes: [{ events: ['message_created'], messageTypes: ['incoming'], destination: { url: `${bot.url}/bot` } }],
      },
    ],
  }
  gateway = await testApp(redis, { RATE_LIMIT_ENABLED: 'false', DELIVERY_BACKOFF_MS: '10', CHATWOOT_API_PER_SECOND: '1000', CHATWOOT_API_BURST: '1000' }, instances)
  const { prefix } = gateway.config.queue
  callsEvents = new QueueEvents(QUEUE.chatwootNote, { connection: { url: redis.url }, prefix })
  await callsEvents.waitUntilReady()
  callsJobs = recordFinished(callsEvents)
  workers = startWorkers(gateway.config, gateway.config.redis as ConnectedRedisConfig, createLogger({ level: 'info' }, logCapture().stream))
})

afterAll(async () => {
  await workers.stop()
  await callsEvents.close()
  await gateway.close()
  bot.stop()
  chatwootApi.stop()
  await redis.stop()
})

/** Sends a customer's message of a conversation of its own, which the bot answers with `answer`. */
async function customerWrites(answer: unknown): Promise<{ conversationId: number; deliveryId: string }> {
  bot.answer({ status: 200, json: answer })
  const conversationId = nextConversation++
  const response = await gateway.app.handle(webhookRequest(toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: conversationId * 10, conversationId }))))
  const { jobId } = (await response.json()) as { jobId: string }
  return { conversationId, deliveryId: `${jobId}.r0` }
}

const of = (conversationId: number) => (call: { conversationId: number }) => call.conversationId === conversationId

describe('answering back as a Chatwoot agent', () => {
  test('the documented handoff example makes exactly its Chatwoot calls, in order: messages, then custom attributes, labels, priority, assignment, status', async () => {
    chatwootApi.labels.set(`31.${nextConversation}`, ['whatsapp'])
    const { conversationId, deliveryId } = await customerWrites(ANSWER_EXAMPLE)
    expect(await callsJobs.completed(`${deliveryId}.answer`)).toEqual({ calls: 8 })
    const calls = chatwootApi.calls.filter(of(conversationId)).map(({ method, endpoint, accountId, body }) => ({ method, endpoint, accountId, body }))
    const sourceId = (index: number) => `hookgate:${deliveryId}.answer.${index}`
    expect(calls).toEqual([
      { method: 'POST', endpoint: 'messages', accountId: 31, body: { content: 'Olá! Já vou te ajudar.', message_type: 'outgoing', private: false, source_id: sourceId(0) } },
      {
        method: 'POST',
        endpoint: 'messages',
        accountId: 31,
        body: { ...ANSWER_EXAMPLE.messages[1], message_type: 'outgoing', private: false, source_id: sourceId(1) },
      },
      { method: 'POST', endpoint: 'messages', accountId: 31, body: { content: 'Cliente VIP, tratar com prioridade', message_type: 'outgoing', private: true, source_id: sourceId(2) } },
      { method: 'POST', endpoint: 'custom_attributes', accountId: 31, body: { custom_attributes: { plan: 'gold' } } },
      { method: 'GET', endpoint: 'labels', accountId: 31, body: undefined },
      { method: 'POST', endpoint: 'labels', accountId: 31, body: { labels: ['whatsapp', 'vip', 'bot-handoff'] } },
      { method: 'POST', endpoint: 'toggle_priority', accountId: 31, body: { priority: 'high' } },
      { method: 'POST', endpoint: 'assignments', accountId: 31, body: { team_id: 3 } },
      { method: 'POST', endpoint: 'toggle_status', accountId: 31, body: { status: 'open' } },
    ])
    expect(chatwootApi.refused).toEqual([])
  })

  test('an agent assignment and a snooze say it the way Chatwoot takes it', async () => {
    const { conversationId, deliveryId } = await customerWrites({ actions: { assign: { agentId: 12 }, status: 'snoozed', snoozedUntil: 1_800_000_000, priority: null } })
    await callsJobs.completed(`${deliveryId}.answer`)
    expect(chatwootApi.calls.filter(of(conversationId)).map(({ endpoint, body }) => ({ endpoint, body }))).toEqual([
      { endpoint: 'toggle_priority', body: { priority: null } },
      { endpoint: 'assignments', body: { assignee_id: 12 } },
      { endpoint: 'toggle_status', body: { status: 'snoozed', snoozed_until: 1_800_000_000 } },
    ])
  })

  test('a call Chatwoot refuses (422) fails for good and the rest go on; one that gets a 500 is retried, and none is made twice', async () => {
    let assignmentFailures = 1
    chatwootApi.intercept((call) => {
      if (call.endpoint === 'toggle_priority') return Response.json({ error: 'Priority is invalid' }, { status: 422 })
      if (call.endpoint === 'assignments' && assignmentFailures-- > 0) return new Response('busy', { status: 500 })
      return undefined
    })
    try {
      const { conversationId, deliveryId } = await customerWrites({ reply: 'Um momento', actions: { priority: 'urgent', assign: { teamId: 2 }, status: 'pending' } })
      expect(await callsJobs.completed(`${deliveryId}.answer`)).toEqual({ calls: 4 })
      expect(chatwootApi.calls.filter(of(conversationId)).map((c) => c.endpoint)).toEqual(['messages', 'assignments', 'toggle_status'])
    } finally {
      chatwootApi.intercept(undefined)
    }
  })

  test('a malformed answer posts nothing: it is logged as answer_rejected, and the agents get a private note saying why', async () => {
    const { conversationId, deliveryId } = await customerWrites({ messages: [{ content: 'Oi' }], actions: { close: true } })
    expect(await callsJobs.completed(`${deliveryId}.rejected`)).toEqual({ calls: 1 })
    const posted = chatwootApi.calls.filter(of(conversationId))
    expect(posted).toHaveLength(1)
    expect(posted[0]!.body).toMatchObject({ private: true, source_id: `hookgate:${deliveryId}.rejected.0` })
    expect(posted[0]!.body!.content).toContain('/actions')
    const lines = await gateway.commands.xrevrange(eventLogKey(gateway.config.queue.prefix, 'acme'), '+', '-', 'COUNT', 50)
    const rejected = lines.map(([, fields]) => fields).find((fields) => fields.includes('answer_rejected') && fields.includes(deliveryId))
    expect(rejected).toEqual(expect.arrayContaining(['kind', 'answer_rejected', 'jobId', deliveryId, 'error']))
  })
})

describe('what an answer may hold', () => {
  const rejection = (answer: unknown) => {
    const plan = planAnswer(answer)
    return 'rejected' in plan ? plan.rejected : undefined
  }

  test('anything that is not a JSON object, or an object without our fields, asks for nothing', () => {
    for (const answer of [undefined, null, 'ok', 3, ['reply'], { ok: true }]) expect(planAnswer(answer)).toEqual({ calls: [] })
  })

  test('reply and note come first, then the messages in order', () => {
    expect(planAnswer({ note: 'n', reply: 'r', messages: [{ content: 'm', content_type: 'cards', content_attributes: { items: [] } }] })).toEqual({
      calls: [
        { kind: 'message', content: 'r', private: false },
        { kind: 'message', content: 'n', private: true },
        { kind: 'message', content: 'm', private: false, contentType: 'cards', contentAttributes: { items: [] } },
      ],
    })
  })

  test('unknown actions, wrong types, too many messages and content over the limit are refused, saying where', () => {
    expect(rejection({ actions: { close: true } })).toStartWith('/actions')
    expect(rejection({ messages: [{ content: 3 }] })).toStartWith('/messages/0/content')
    expect(rejection({ messages: [{ content: 'x', content_type: 'video' }] })).toStartWith('/messages/0/content_type')
    expect(rejection({ reply: 42 })).toStartWith('/reply')
    expect(rejection({ messages: Array.from({ length: MAX_ANSWER_MESSAGES + 1 }, () => ({ content: 'x' })) })).toStartWith('/messages')
    expect(rejection({ messages: [{ content: 'x'.repeat(MAX_MESSAGE_CHARS + 1) }] })).toStartWith('/messages/0/content')
    expect(rejection({ actions: { status: 'closed' } })).toStartWith('/actions/status')
    expect(rejection({ actions: { assign: { agentId: 1, teamId: 2 } } })).toStartWith('/actions/assign')
    expect(rejection({ actions: { status: 'open', snoozedUntil: 1 } })).toStartWith('/actions/snoozedUntil')
    expect(rejection({ actions: { labels: [] } })).toStartWith('/actions/labels')
  })
})
