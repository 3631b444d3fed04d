import { afterEach, describe, expect, test } from 'bun:test'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { startChatwootApi } from '../helpers/chatwoot-api.ts'
import { ACME_TOKEN, testEnv } from '../helpers/deps.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const CHATWOOT_TOKEN = 'chatwoot-api-token-0123'
const CONVERSATIONS = 20
const MESSAGES = 20

/** A message's content names it: `c<conversation>m<n>`; the bot's replies to it are `c<conversation>r<n>a` and `…b`. */
const parse = (content: string) => {
  const [, conversation, n] = /^c(\d+)m(\d+)$/.exec(content)!
  return { conversation: Number(conversation), n: Number(n) }
}

/**
 * A bot behind the gateway, as the conversations issue describes it: it answers in 0 to 30 ms at random, 500 to the
 * first try of every fifth message, and each message with two replies. It notes the order in which each
 * conversation's messages first reached it, and when each was delivered.
 */
async function startBot() {
  const firstArrivals = new Map<number, number[]>()
  const tries = new Map<string, number>()
  const deliveredAt = new Map<string, number>()
  let failing: { conversation: number; until: number } | undefined
  const port = await freePort()
  const server = Bun.serve({
    port,
    hostname: '127.0.0.1',
    async fetch(request) {
      const { content } = (await request.json()) as { content: string }
      const { conversation, n } = parse(content)
      const attempt = (tries.get(content) ?? 0) + 1
      tries.set(content, attempt)
      if (attempt === 1) firstArrivals.set(conversation, [...(firstArrivals.get(conversation) ?? []), n])
      if (n % 5 === 0 && attempt === 1) return new Response('first try fails', { status: 500 })
      if (failing?.conversation === conversation && Date.now() < failing.until) return new Response('down for this one', { status: 500 })
      await Bun.sleep(Math.random() * 30)
      if (!deliveredAt.has(content)) deliveredAt.set(content, Date.now())
      return Response.json({ messages: [{ content: `c${conversation}r${n}a` }, { content: `c${conversation}r${n}b` }] })
    },
  })
  return {
    url: `http://127.0.0.1:${port}/bot`,
    firstArrivals,
    deliveredAt,
    /** The conversation's deliveries answer 500 for `ms` from now. */
    fail(conversation: number, ms: number) {
      failing = { conversation, until: Date.now() + ms }
    },
    stop: () => server.stop(true),
  }
}

let redis: TestRedis | undefined
let gateway: HookgateProcess | undefined
let bot: Awaited<ReturnType<typeof startBot>> | undefined
let chatwootApi: Awaited<ReturnType<typeof startChatwootApi>> | undefined

afterEach(async () => {
  await gateway?.stop('SIGKILL')
  bot?.stop()
  chatwootApi?.stop()
  await redis?.stop()
})

/** `hookgate start` (two API processes, two workers) with one ordered route to the bot, answering back into Chatwoot. */
async function startGateway() {
  redis = await startRedis()
  bot = await startBot()
  chatwootApi = await startChatwootApi(CHATWOOT_TOKEN)
  const port = await freePort()
  const instances = {
    instances: [
      {
        id: 'acme',
        tokens: [ACME_TOKEN],
        chatwoot: { url: chatwootApi.url, apiAccessToken: CHATWOOT_TOKEN },
        routes: [{ events: ['message_created'], messageTypes: ['incoming'], destination: { url: bot.url, timeoutMs: 2000, maxAttempts: 30 } }],
      },
    ],
  }
  const env = testEnv(redis, {
    PORT: String(port),
    LOG_LEVEL: 'info',
    API_PROCESSES: '2',
    WORKER_PROCESSES: '2',
    DELIVERY_BACKOFF_MS: '50',
    JOB_LOCK_MS: '2000',
    RATE_LIMIT_INSTANCE_PER_SECOND: '100000',
    RATE_LIMIT_INSTANCE_BURST: '100000',
    RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: '100000',
    CHATWOOT_API_PER_SECOND: '100000',
    CHATWOOT_API_BURST: '100000',
    // The conversations go in step, so their fifth messages' failed first tries come in a row: with the default
    // threshold (5) the destination's breaker would open for everyone, which is another test's subject.
    BREAKER_FAILURE_THRESHOLD: '1000',
  }, instances)
  gateway = spawnHookgate(['start'], env)
  await gateway.waitFor(/"msg":"api listening"/, 15_000, 2)
  await gateway.waitFor(/"msg":"workers started"/, 15_000, 2)
  return `http://127.0.0.1:${port}`
}

let nextMessageId = 7_000_000
const sentAt = new Map<string, number>()

/** Sends one conversation's messages one after another, each once the gateway accepted the one before. */
async function sendConversation(base: string, conversation: number, from: number, to: number): Promise<void> {
  for (let n = from; n <= to; n++) {
    const content = `c${conversation}m${n}`
    const payload = { ...chatwoot.messageCreatedIncoming({ messageId: nextMessageId++, conversationId: 1000 + conversation }), content }
    sentAt.set(content, Date.now())
    const answer = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(payload),
    })
    expect(answer.status).toBe(202)
  }
}

/** Every reply posted into Chatwoot, per conversation, in the order Chatwoot got them (a call made twice, once). */
function repliesByConversation(): { replies: Map<number, string[]>; postedTwice: string[] } {
  const replies = new Map<number, string[]>()
  const seen = new Set<string>()
  const postedTwice: string[] = []
  for (const call of chatwootApi!.calls.filter((c) => c.endpoint === 'messages')) {
    const sourceId = call.body!.source_id as string
    if (seen.has(sourceId)) {
      postedTwice.push(sourceId)
      continue
    }
    seen.add(sourceId)
    const conversation = call.conversationId - 1000
    replies.set(conversation, [...(replies.get(conversation) ?? []), call.body!.content as string])
  }
  return { replies, postedTwice }
}

/** Message numbers 1…to: a conversation's messages in the order they were sent. */
const inOrder = (to = MESSAGES) => Array.from({ length: to }, (_, i) => i + 1)
const repliesInOrder = (conversation: number, to = MESSAGES) =>
  inOrder(to).flatMap((n) => [`c${conversation}r${n}a`, `c${conversation}r${n}b`])

/** Resolves once Chatwoot has every reply of `count` messages (each posted at least once). */
async function allReplied(count: number): Promise<void> {
  await chatwootApi!.until(() => new Set(chatwootApi!.calls.map((c) => c.body?.source_id)).size >= count * 2)
}

const conversations = Array.from({ length: CONVERSATIONS }, (_, i) => i)

function latencies(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b)
  return { p50: sorted[Math.floor(sorted.length / 2)]!, p99: sorted[Math.floor(sorted.length * 0.99)]! }
}

describe('conversations in order', () => {
  test(`${CONVERSATIONS} conversations × ${MESSAGES} messages, interleaved: each reaches the bot in accepted order, its replies reach Chatwoot in order, once`, async () => {
    const base = await startGateway()
    await Promise.all(conversations.map((c) => sendConversation(base, c, 1, MESSAGES)))
    await allReplied(CONVERSATIONS * MESSAGES)

    const { replies, postedTwice } = repliesByConversation()
    const gaps = latencies(conversations.flatMap((c) => inOrder().slice(1).map((n) => bot!.deliveredAt.get(`c${c}m${n}`)! - bot!.deliveredAt.get(`c${c}m${n - 1}`)!)))
    console.log(`[order] from one delivery to the next of a conversation: p50 ${gaps.p50} ms, p99 ${gaps.p99} ms`)
    for (const c of conversations) {
      expect({ conversation: c, arrivals: bot!.firstArrivals.get(c) }).toEqual({ conversation: c, arrivals: inOrder() })
      expect({ conversation: c, replies: replies.get(c) }).toEqual({ conversation: c, replies: repliesInOrder(c) })
    }
    expect(postedTwice).toEqual([])
    expect(chatwootApi!.refused).toEqual([])
  }, 120_000)

  test('a conversation whose bot answers 500 for 5 s holds only itself: the others carry on, and it resumes in order', async () => {
    const base = await startGateway()
    const stuck = 0
    const others = conversations.filter((c) => c !== stuck)
    const othersLatencies = (from: number, to: number) =>
      others.flatMap((c) => Array.from({ length: to - from + 1 }, (_, i) => `c${c}m${from + i}`)).map((m) => bot!.deliveredAt.get(m)! - sentAt.get(m)!)
    // Before: every conversation healthy.
    await Promise.all(conversations.map((c) => sendConversation(base, c, 1, 4)))
    await allReplied(CONVERSATIONS * 4)
    const before = latencies(othersLatencies(1, 4))

    bot!.fail(stuck, 5000)
    const failingSince = Date.now()
    await Promise.all(conversations.map((c) => sendConversation(base, c, 5, 8)))
    // The others' messages go through while the stuck conversation waits.
    await chatwootApi!.until(() => others.every((c) => bot!.deliveredAt.has(`c${c}m8`)))
    expect(Date.now() - failingSince).toBeLessThan(5000)
    expect(bot!.deliveredAt.has(`c${stuck}m5`)).toBe(false)
    const during = latencies(othersLatencies(5, 8))
    console.log(`[order] the other conversations' send→deliver p50 / p99: ${before.p50} / ${before.p99} ms before, ${during.p50} / ${during.p99} ms while one fails`)

    await allReplied(CONVERSATIONS * 8)
    expect(bot!.deliveredAt.get(`c${stuck}m5`)! - failingSince).toBeGreaterThanOrEqual(5000)
    expect(bot!.firstArrivals.get(stuck)).toEqual(inOrder(8))
    expect(repliesByConversation().replies.get(stuck)).toEqual(repliesInOrder(stuck, 8))
  }, 120_000)

  test('a worker SIGKILLed in the middle: still in order, nothing lost', async () => {
    const base = await startGateway()
    const sending = Promise.all(conversations.map((c) => sendConversation(base, c, 1, MESSAGES)))
    await chatwootApi!.until(() => chatwootApi!.calls.length >= 200)
    const line = gateway!.output().split('\n').find((l) => l.includes('"msg":"child started"') && l.includes('"role":"worker"'))!
    process.kill((JSON.parse(line) as { childPid: number }).childPid, 'SIGKILL')
    await gateway!.waitFor(/"msg":"child died; restarting it"/)
    await sending
    await allReplied(CONVERSATIONS * MESSAGES)

    // A call in flight at the kill may be made again; the order of first posts holds.
    const { replies } = repliesByConversation()
    for (const c of conversations) {
      expect({ conversation: c, arrivals: bot!.firstArrivals.get(c) }).toEqual({ conversation: c, arrivals: inOrder() })
      expect({ conversation: c, replies: replies.get(c) }).toEqual({ conversation: c, replies: repliesInOrder(c) })
    }
    expect(chatwootApi!.refused).toEqual([])
  }, 120_000)
})
