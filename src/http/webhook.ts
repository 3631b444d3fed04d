import { Elysia, t } from 'elysia'
import { InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from '../errors.ts'
import type { AcceptResult } from '../ingest/accept.ts'
import { credentialsFrom, dedupeKey, parseEvent, verifyChatwoot, type ChatwootEvent } from '../ingest/chatwoot.ts'
import { rateLimitHeaders, type LimitResult } from '../ingest/ratelimit.ts'
import { matchRoutes, ordered, routableEvent } from '../ingest/routes.ts'
import type { Instance } from '../config/instances.ts'
import { eventLabel } from '../metrics.ts'
import type { AppDeps } from './app.ts'
import type { PeerSource } from './client-ip.ts'
import { requestContext } from './request-context.ts'
import { errorResponse } from './schemas.ts'

const Queued = t.Object(
  {
    status: t.Literal('queued'),
    jobId: t.String({ description: 'The event\'s dedupe key' }),
    shaped: t.Optional(t.Literal(true, { description: 'Over the instance\'s rate: accepted, and its work delayed to keep the rate' })),
  },
  { description: 'First arrival: the event is queued' },
)
const Spooled = t.Object(
  {
    status: t.Literal('spooled'),
    jobId: t.String({ description: 'The event\'s dedupe key' }),
  },
  { description: 'Redis is unavailable: the event is on this host\'s disk (fsynced) and is queued as soon as Redis is back' },
)
const AlreadyQueued = t.Object(
  { status: t.Literal('already_queued'), jobId: t.String() },
  { description: 'A repeat of an event that is queued already; nothing new was queued' },
)

const documentation = {
  tags: ['webhooks'],
  security: ['chatwootSignature', 'queryToken', 'bearerToken', 'apiAccessToken'].map((scheme): Record<string, string[]> => ({
    [scheme]: [],
  })),
  requestBody: {
    required: true,
    description: 'A Chatwoot webhook payload, byte for byte as Chatwoot sent it (compact JSON with an `event` name).',
    content: {
      'application/json': {
        schema: {
          type: 'object' as const,
          required: ['event'],
          properties: { event: { type: 'string' as const, examples: ['message_created'] } },
          additionalProperties: true,
        },
      },
    },
  },
}

const responses = {
  202: t.Union([Queued, Spooled]),
  200: AlreadyQueued,
  400: errorResponse('`invalid_json`: the body is not JSON; `invalid_event`: not an object, or no `event` name'),
  401: errorResponse('`unauthorized`: unknown instance, or no valid signature or token (the same answer for both)'),
  408: errorResponse('`request_timeout`: the body did not arrive within BODY_TIMEOUT_MS'),
  413: errorResponse('`payload_too_large`: the body is over MAX_BODY_BYTES'),
  415: errorResponse('`unsupported_media_type`: the body is not sent as application/json'),
  429: errorResponse('`rate_limited`: over the instance\'s ceiling (or its rate, with policy `reject`), or too many failed requests from this IP; see Retry-After'),
  503: errorResponse('`unavailable`: Redis is unavailable and the local spool is full or not writable; see Retry-After and send it again'),
}

interface Received {
  result: { status: 'queued'; jobId: string; shaped?: true } | Exclude<AcceptResult, { status: 'queued' }>
  headers: Record<string, string>
}

/** POST /webhook/chatwoot/:instance, and POST /webhook/chatwoot with the instance in X-Chatwoot-Instance-Id. */
export function webhookRoutes(deps: AppDeps) {
  const { config, instances, acceptor, limiter, clientIp, metrics, log } = deps
  const { maxBodyBytes, bodyTimeoutMs, signatureToleranceSeconds } = config.http
  const decoder = new TextDecoder()

  /** Everything before we know who sent it; any failure here costs the sender's IP a token, so floods get 429. */
  async function authenticate(request: Request, instanceId: string, query: Query, ip: string): Promise<{ instance: Instance; raw: Uint8Array }> {
    try {
      requireJson(request.headers)
      const raw = await readBody(request, maxBodyBytes, bodyTimeoutMs)
      const instance = instances.get(instanceId)
      verifyChatwoot(instance, credentialsFrom(request.headers, query), raw, Date.now() / 1000, signatureToleranceSeconds)
      return { instance, raw }
    } catch (error) {
      await limiter.takeForIp('webhook', ip)
      throw error
    }
  }

  async function receive(request: Request, server: PeerSource | null, instanceId: string, query: Query, requestId: string): Promise<Received> {
    const started = performance.now()
    const ip = clientIp(request, server)
    const { instance, raw } = await authenticate(request, instanceId, query, ip)
    const body = decoder.decode(raw)
    let event: ChatwootEvent
    try {
      event = parseEvent(body)
    } catch (error) {
      // An authenticated sender's bad body still costs it a token, so even its floods meet the instance's limit.
      await limiter.takeForInstance(instance.id, ip)
      throw error
    }
    const deliveryId = request.headers.get('x-chatwoot-delivery')
    const routable = routableEvent(event)
    const routes = instance.config.routes ?? []
    const matched = matchRoutes(routes, routable)
    const { conversation } = routable
    // Routes that keep a conversation's events in order (not `ordered: false`, not debounced: batches are in order
    // already) put the event in the conversation's lane. Events without a conversation wait for nothing.
    const lanes = conversation ? matched.filter((index) => ordered(routes[index]!)) : []
    const receivedAt = Date.now()
    const data = { instanceId: instance.id, event: event.event, body, deliveryId: deliveryId ?? undefined, receivedAt, ...(lanes.length > 0 && { lanes }) }
    // A routed event's job goes with its lock: one Redis call takes the token, the lock and queues the job.
    const lock = acceptor.lockFor(dedupeKey(instance.id, event, raw), { instanceId: instance.id, conversation, lanes, job: matched.length > 0 ? data : undefined })
    const limit = await limiter.takeForInstance(instance.id, ip, lock)
    const delayMs = limit?.delayMs ?? 0
    const result = await acceptor.accept(
      lock,
      data,
      delayMs,
      // An event no route wants needs no job: its log line says it came.
      matched.length === 0 ? { kind: 'routed', jobId: lock.jobId, event: event.event, at: receivedAt, conversation, routes: [] } : undefined,
    )
    const shaped = delayMs > 0 && result.status === 'queued'
    if (shaped) metrics.shaped.inc({ instance: instance.id })
    metrics.webhooks.inc({ outcome: OUTCOME[result.status], instance: instance.id, event: eventLabel(event.event) })
    log.info(
      { reqId: requestId, instance: instance.id, event: event.event, jobId: result.jobId, delayMs, ms: elapsedMs(started) },
      result.status,
    )
    return { result: shaped ? { ...result, shaped: true } : result, headers: limit ? rateLimitHeaders(limit) : {} }
  }

  async function answer(context: AnswerContext, instanceId: string): Promise<Received['result']> {
    const { result, headers } = await receive(context.request, context.server, instanceId, context.query, context.requestId)
    Object.assign(context.set.headers, headers)
    context.set.status = result.status === 'already_queued' ? 200 : 202
    return result
  }

  return new Elysia({ name: 'webhook' })
    .use(requestContext)
    .post('/webhook/chatwoot/:instance', (context) => answer(context, context.params.instance), {
      parse: 'none',
      params: t.Object({ instance: t.String({ description: 'The instance id from the instances file' }) }),
      response: responses,
      detail: { ...documentation, summary: 'Receive one Chatwoot webhook for an instance' },
    })
    .post('/webhook/chatwoot', (context) => answer(context, context.request.headers.get('x-chatwoot-instance-id') ?? ''), {
      parse: 'none',
      response: responses,
      detail: {
        ...documentation,
        summary: 'Receive one Chatwoot webhook; the instance is named in X-Chatwoot-Instance-Id',
        parameters: [{ name: 'X-Chatwoot-Instance-Id', in: 'header', required: true, schema: { type: 'string' } }],
      },
    })
}

type Query = Record<string, string | undefined>

/** hookgate_webhooks_total's outcome label for each answer. */
const OUTCOME = { queued: 'accepted', already_queued: 'deduplicated', spooled: 'spooled' } as const

/** The part of a webhook route's Elysia context that answering needs. */
interface AnswerContext {
  request: Request
  server: PeerSource | null
  query: Query
  requestId: string
  set: { headers: Record<string, string | number>; status?: number | string }
}

function requireJson(headers: Headers): void {
  const type = headers.get('content-type')
  const media = type?.split(';', 1)[0]?.trim().toLowerCase()
  if (media !== 'application/json') throw new UnsupportedMediaType()
}

/**
 * The body as bytes, refused unread when it declares more than the limit (Bun caps what it buffers a little above),
 * and with 408 when it has not all arrived within `timeoutMs`: a sender trickling bytes must not hold a request open.
 */
async function readBody(request: Request, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length') ?? 0)
  if (declared > maxBytes) throw new PayloadTooLarge(maxBytes)
  let timer: Timer | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RequestTimeout(timeoutMs)), timeoutMs)))
  const raw = await Promise.race([
    request.bytes().catch(() => {
      throw new InvalidRequest('The body could not be read to its end.')
    }),
    late,
  ]).finally(() => clearTimeout(timer))
  if (raw.byteLength > maxBytes) throw new PayloadTooLarge(maxBytes)
  return raw
}

function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}
