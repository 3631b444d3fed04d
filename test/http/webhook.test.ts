import { describe, expect, test } from 'bun:test'
import type { Redis } from 'ioredis'
import { chatwoot, everyEvent, toChatwootJson } from '../fixtures/chatwoot.ts'
import { signedDelivery } from '../fixtures/signed-delivery.ts'
import { eventLogKey } from '../../src/queue/names.ts'
import { ACME_SECRET_2, ACME_TOKEN, GLOBEX_TOKEN, sign, testApp, webhookRequest, withTestApp, type PostOptions } from '../helpers/deps.ts'

const file = withTestApp()
let nextMessageId = 700_000


async function post(body: string | Uint8Array, options?: PostOptions) {
  const response = await file.gateway.app.handle(webhookRequest(body, options))
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers }
}

/** Lua scripts Redis has run since it started. */
async function scriptCalls(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats')
  return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, [, calls]) => sum + Number(calls), 0)
}

function freshMessage() {
  return toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ }))
}

describe('accepting events', () => {
  test('queues one job per Chatwoot event type, with the raw body, instance, event and receive time', async () => {
    for (const payload of everyEvent()) {
      const body = toChatwootJson(payload)
      const before = Date.now()
      const answer = await post(body, { headers: { 'x-chatwoot-delivery': crypto.randomUUID() } })
      expect(answer.status).toBe(202)
      expect(answer.body.status).toBe('queued')
      const job = await file.gateway.queue.getJob(answer.body.jobId as string)
      expect(job?.data).toMatchObject({ instanceId: 'acme', event: payload.event, body })
      expect(job!.data.receivedAt).toBeGreaterThanOrEqual(before)
      expect(job!.opts.attempts).toBe(file.gateway.config.queue.webhookAttempts)
      expect(job!.opts.backoff).toMatchObject({ type: 'exponential' })
    }
    expect(await file.gateway.queue.count()).toBeGreaterThanOrEqual(everyEvent().length)
  })

  test('an event no route wants is logged, not queued: no job, one log line, and repeats still deduplicated', async () => {
    const onlyIncoming = await testApp(file.redis, {}, {
      instances: [{ id: 'acme', tokens: [ACME_TOKEN], routes: [{ events: ['message_created'], messageTypes: ['incoming'], destination: { url: 'http://127.0.0.1:9/bot' } }] }],
    })
    try {
      const send = async (payload: Record<string, unknown>) => {
        const response = await onlyIncoming.app.handle(webhookRequest(toChatwootJson(payload)))
        return { status: response.status, body: (await response.json()) as { status: string; jobId: string } }
      }
      const since = Date.now()
      const typing = await send(chatwoot.conversationTypingOn())
      expect(typing).toMatchObject({ status: 202, body: { status: 'queued' } })
      expect(await onlyIncoming.queue.getJob(typing.body.jobId)).toBeUndefined()
      expect(await send(chatwoot.conversationTypingOn())).toMatchObject({ status: 200, body: { status: 'already_queued', jobId: typing.body.jobId } })
      const lines = await onlyIncoming.commands.xrange(eventLogKey(onlyIncoming.config.queue.prefix, 'acme'), since, '+')
      expect(lines.map(([, fields]) => fields)).toEqual([
        expect.arrayContaining(['kind', 'routed', 'jobId', typing.body.jobId, 'event', 'conversation_typing_on', 'routes', '[]']),
      ])
      // One a route wants is queued.
      const incoming = await send(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ }))
      expect(await onlyIncoming.queue.getJob(incoming.body.jobId)).toBeDefined()
    } finally {
      await onlyIncoming.close()
    }
  })

  test('accepts a Chatwoot-signed delivery over the exact bytes, with no token', async () => {
    const now = Math.floor(Date.now() / 1000)
    const answer = await post(signedDelivery.body, {
      token: '',
      headers: {
        'x-chatwoot-signature': sign(signedDelivery.secret, now, signedDelivery.body),
        'x-chatwoot-timestamp': String(now),
        'x-chatwoot-delivery': signedDelivery.deliveryId,
        'user-agent': 'Ruby',
        accept: 'application/json',
      },
    })
    expect(answer).toMatchObject({ status: 202, body: { status: 'queued', jobId: 'acme.message_created.m50099' } })
    const job = await file.gateway.queue.getJob('acme.message_created.m50099')
    expect(Buffer.from(job!.data.body)).toEqual(signedDelivery.body)
    expect(job!.data.deliveryId).toBe(signedDelivery.deliveryId)
  })

  test('accepts the instance\'s other signing secret, and a stale signature never', async () => {
    const now = Math.floor(Date.now() / 1000)
    const body = freshMessage()
    const headers = (secret: string, ts: number) => ({ 'x-chatwoot-signature': sign(secret, ts, body), 'x-chatwoot-timestamp': String(ts) })
    expect((await post(body, { token: '', headers: headers(ACME_SECRET_2, now - 400) })).status).toBe(401)
    expect((await post(body, { token: '', headers: headers('not-the-secret', now) })).status).toBe(401)
    expect((await post(body, { token: '', headers: headers(ACME_SECRET_2, now) })).status).toBe(202)
  })

  test('takes the token from Authorization: Bearer and api_access_token too', async () => {
    expect((await post(freshMessage(), { token: '', headers: { authorization: `Bearer ${ACME_TOKEN}` } })).status).toBe(202)
    expect((await post(freshMessage(), { token: '', headers: { api_access_token: ACME_TOKEN } })).status).toBe(202)
  })

  test('takes the instance from X-Chatwoot-Instance-Id on /webhook/chatwoot', async () => {
    const request = new Request('http://localhost/webhook/chatwoot', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-chatwoot-instance-id': 'globex', authorization: `Bearer ${GLOBEX_TOKEN}` },
      body: freshMessage(),
    })
    const response = await file.gateway.app.handle(request)
    expect(response.status).toBe(202)
    expect(((await response.json()) as { jobId: string }).jobId).toStartWith('globex.message_created.m')
  })

  test('accepts application/json with a charset', async () => {
    expect((await post(freshMessage(), { headers: { 'content-type': 'application/json; charset=utf-8' } })).status).toBe(202)
  })

  test('echoes a sane X-Request-Id and makes one otherwise', async () => {
    expect((await post(freshMessage(), { headers: { 'x-request-id': 'trace-42' } })).headers.get('x-request-id')).toBe('trace-42')
    expect((await post(freshMessage(), { headers: { 'x-request-id': 'bad id\u0001' } })).headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('dedupe', () => {
  test('a repeat answers 200 already_queued with the same job id, and queues nothing', async () => {
    const body = freshMessage()
    const first = await post(body, { headers: { 'x-chatwoot-delivery': 'first' } })
    const jobsAfterFirst = await file.gateway.queue.count()
    const again = await post(body, { headers: { 'x-chatwoot-delivery': 'second' } })
    expect(first).toMatchObject({ status: 202, body: { status: 'queued' } })
    expect(again).toMatchObject({ status: 200, body: { status: 'already_queued', jobId: first.body.jobId } })
    expect(await file.gateway.queue.count()).toBe(jobsAfterFirst)
    expect((await file.gateway.queue.getJob(first.body.jobId as string))?.data.deliveryId).toBe('first')
  })

  test('a repeat is refused for the dedupe window, and past it while the job is still queued', async () => {
    const shortLock = await testApp(file.redis, { DEDUPE_WINDOW_SECONDS: '1' })
    try {
      const body = freshMessage()
      const send = async () => (await shortLock.app.handle(webhookRequest(body))).status
      expect(await send()).toBe(202)
      const lockKey = `${shortLock.config.queue.prefix}:dedupe:acme.message_created.m${nextMessageId - 1}`
      expect(await shortLock.commands.pttl(lockKey)).toBeWithin(1, 1001)
      await shortLock.commands.del(lockKey) // what expiry does, without waiting for it
      expect(await send()).toBe(200)
      await shortLock.queue.remove(`acme.message_created.m${nextMessageId - 1}`)
      expect(await send()).toBe(202)
    } finally {
      await shortLock.close()
    }
  })

  test('a signed message_updated replayed under a new X-Chatwoot-Delivery is the same event', async () => {
    const body = toChatwootJson({ ...chatwoot.messageUpdated(), content: `edited ${nextMessageId++}` })
    const send = (delivery: string, timestamp: number) =>
      post(body, {
        token: '',
        headers: { 'x-chatwoot-delivery': delivery, 'x-chatwoot-timestamp': String(timestamp), 'x-chatwoot-signature': sign(ACME_SECRET_2, timestamp, body) },
      })
    const now = Math.floor(Date.now() / 1000)
    expect((await send(crypto.randomUUID(), now)).status).toBe(202)
    expect(await send(crypto.randomUUID(), now + 1)).toMatchObject({ status: 200, body: { status: 'already_queued' } })
  })

  test('with rate limiting off, the enqueuer takes the lock itself and still queues once', async () => {
    const unlimited = await testApp(file.redis, { RATE_LIMIT_ENABLED: 'false' })
    try {
      const body = freshMessage()
      const answers = await Promise.all(Array.from({ length: 30 }, () => unlimited.app.handle(webhookRequest(body))))
      expect(answers.map((a) => a.status).sort()).toEqual([...Array(29).fill(200), 202])
      expect(answers[0]!.headers.get('ratelimit-limit')).toBeNull()
    } finally {
      await unlimited.close()
    }
  })

  test('a routed event is taken in one Redis call: its token, its dedupe lock and its job together', async () => {
    const unlimited = await testApp(file.redis, { RATE_LIMIT_ENABLED: 'false' })
    try {
      for (const gateway of [file.gateway, unlimited]) {
        const before = await scriptCalls(gateway.commands)
        const response = await gateway.app.handle(webhookRequest(freshMessage()))
        const answer = (await response.json()) as { status: string; jobId: string }
        expect(answer.status).toBe('queued')
        expect(await scriptCalls(gateway.commands)).toBe(before + 1)
        expect((await gateway.queue.getJob(answer.jobId))?.data).toMatchObject({ instanceId: 'acme', event: 'message_created' })
      }
    } finally {
      await unlimited.close()
    }
  })

  test('100 concurrent copies of one event queue it once', async () => {
    const body = freshMessage()
    const answers = await Promise.all(Array.from({ length: 100 }, () => post(body)))
    expect(answers.filter((a) => a.status === 202)).toHaveLength(1)
    expect(answers.filter((a) => a.status === 200)).toHaveLength(99)
    expect(new Set(answers.map((a) => a.body.jobId)).size).toBe(1)
  })
})

describe('refusals', () => {
  test('400 invalid_json for a body that is not JSON', async () => {
    for (const body of ['{"event":', 'not json', '', '\xff\xfe']) {
      expect(await post(body)).toMatchObject({ status: 400, body: { error: 'invalid_json' } })
    }
  })

  test('400 invalid_event for JSON that is not a Chatwoot event', async () => {
    for (const body of ['[]', '"x"', 'null', '{}', '{"event":7}', '{"event":"bad name"}']) {
      const answer = await post(body)
      expect(answer).toMatchObject({ status: 400, body: { error: 'invalid_event' } })
      expect(answer.body.message).toBeString()
    }
  })

  test('401 unauthorized, the same for an unknown instance and a bad token', async () => {
    const body = freshMessage()
    const unknown = await post(body, { instance: 'nobody' })
    const badToken = await post(body, { token: 'wrong-token-0123456789' })
    const noToken = await post(body, { token: '' })
    const otherInstancesToken = await post(body, { token: GLOBEX_TOKEN })
    for (const answer of [unknown, badToken, noToken, otherInstancesToken]) {
      expect(answer.status).toBe(401)
      expect({ error: answer.body.error, message: answer.body.message }).toEqual({ error: unknown.body.error, message: unknown.body.message })
    }
    expect(unknown.body.error).toBe('unauthorized')
  })

  test('401 comes before 400: a bad body without credentials learns nothing', async () => {
    expect((await post('{bad', { token: '' })).status).toBe(401)
  })

  test('413 payload_too_large, by declared length and by the bytes read', async () => {
    const limit = file.gateway.config.http.maxBodyBytes
    const big = `{"event":"message_created","pad":"${'x'.repeat(limit)}"}`
    expect(await post(big)).toMatchObject({ status: 413, body: { error: 'payload_too_large' } })
    const streamed = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big))
        controller.close()
      },
    })
    const response = await file.gateway.app.handle(
      new Request(`http://localhost/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: streamed,
      }),
    )
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: 'payload_too_large' })
  })

  test('415 unsupported_media_type for anything but application/json', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      expect(await post(freshMessage(), { headers: { 'content-type': type } })).toMatchObject({
        status: 415,
        body: { error: 'unsupported_media_type' },
      })
    }
  })

  test('404 not_found as JSON for unknown routes and methods', async () => {
    for (const request of [new Request('http://localhost/nope'), new Request('http://localhost/webhook/chatwoot/acme')]) {
      const response = await file.gateway.app.handle(request)
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ error: 'not_found' })
    }
  })

  test('with Redis away, 202 spooled (health says so); once Redis is back the event reaches the queue, once', async () => {
    const body = freshMessage()
    const health = async () => (await file.gateway.app.handle(new Request('http://localhost/health'))).json() as Promise<{ redis: string; spool: { pending: number } }>
    await file.redis.stop()
    try {
      const spooled = await post(body)
      expect(spooled).toMatchObject({ status: 202, body: { status: 'spooled', jobId: expect.stringMatching(/^acme\.message_created\.m/) } })
      expect(await post(body)).toMatchObject({ status: 202, body: { status: 'spooled' } }) // a repeat: harmless, deduped on replay
      expect(await health()).toMatchObject({ redis: 'down', spool: { pending: 2 } })
    } finally {
      await file.redis.restart()
    }
    expect(await file.gateway.reconnected()).toBe(true)
    await until(async () => (await health()).spool.pending === 0)
    const jobId = ((await (await file.gateway.app.handle(webhookRequest(body))).json()) as { status: string; jobId: string })
    expect(jobId.status).toBe('already_queued')
    expect(await file.gateway.queue.getJob(jobId.jobId)).toBeDefined()
    expect(file.gateway.logs.some((line) => line.includes('"events":2,"msg":"spooled events moved into the queue"'))).toBe(true)
  })
})

describe('REDIS_WAIT_REPLICAS', () => {
  test('an event no replica has confirmed is spooled as well, and its file is kept until one does', async () => {
    const gateway = await testApp(file.redis, { REDIS_WAIT_REPLICAS: '1', REDIS_ENQUEUE_BUDGET_MS: '100' })
    try {
      const response = await gateway.app.handle(webhookRequest(freshMessage()))
      const body = (await response.json()) as { status: string; jobId: string }
      // This Redis has no replica: the job is on it, but only the spool makes it safe from a failover.
      expect({ status: response.status, said: body.status }).toEqual({ status: 202, said: 'spooled' })
      expect(await gateway.queue.getJob(body.jobId)).toBeDefined()
      await until(async () => gateway.logs.some((line) => line.includes('replicas did not confirm; the files are kept')))
      const health = (await (await gateway.app.handle(new Request('http://localhost/health'))).json()) as { spool: { pending: number } }
      expect(health.spool.pending).toBe(1)
    } finally {
      await gateway.close()
    }
  })
})

/** Polls a condition no event announces (the replayer's once-a-second pass), at most 10 s. */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s')
    await Bun.sleep(50)
  }
}

describe('logs', () => {
  test('carry request id, instance, event, job id and latency, and never a token or secret', async () => {
    const body = freshMessage()
    const now = Math.floor(Date.now() / 1000)
    await post(body, { token: '', headers: { 'x-request-id': 'log-check', 'x-chatwoot-signature': sign(ACME_SECRET_2, now, body), 'x-chatwoot-timestamp': String(now) } })
    await post(body, { token: 'wrong-token-0123456789', headers: { authorization: `Bearer ${ACME_TOKEN}` } })
    const line = file.gateway.logs.map((l) => JSON.parse(l)).find((l) => l.reqId === 'log-check')
    expect(line).toMatchObject({ instance: 'acme', event: 'message_created', jobId: expect.stringMatching(/^acme\.message_created\.m/) })
    expect(line.ms).toBeNumber()
    const all = file.gateway.logs.join('\n')
    for (const secret of [ACME_TOKEN, ACME_SECRET_2, signedDelivery.secret, GLOBEX_TOKEN, 'wrong-token-0123456789']) {
      expect(all).not.toContain(secret)
    }
  })
})
