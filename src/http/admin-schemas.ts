import { t } from 'elysia'
import { errorResponse } from './schemas.ts'

export const security = [{ adminToken: [] }]
export const refusals = {
  401: errorResponse('`unauthorized`: no admin token, or a wrong one'),
  403: errorResponse('`admin_disabled`: ADMIN_TOKEN is not set'),
  429: errorResponse('`rate_limited`: too many failed admin requests from this IP'),
}

export const TimeParam = t.String({ description: 'ISO 8601 time, or ms since the epoch', examples: ['2026-11-23T08:00:00Z'] })
export const TimeField = t.Union([TimeParam, t.Integer({ minimum: 0, description: 'ms since the epoch' })])

export const LogKind = t.Union(
  [t.Literal('routed'), t.Literal('delivered'), t.Literal('attempt_failed'), t.Literal('delivery_failed'), t.Literal('answer_rejected'), t.Literal('posted')],
  {
    description:
      '`routed`: the event matched these routes; `delivered`, `attempt_failed` (tried again later), `delivery_failed` (gave up): one per try of a delivery; ' +
      '`answer_rejected`: the destination\'s answer was malformed and nothing of it was posted (`error` says why); `posted`: the calls its answer asked for were made in Chatwoot (`answer` lists them)',
  },
)

export const LoggedEvent = t.Object({
  id: t.String({ description: 'Log entry id (Redis Stream id)' }),
  kind: LogKind,
  jobId: t.String(),
  event: t.String(),
  at: t.Number({ description: 'ms since the epoch' }),
  conversation: t.Optional(t.Object({ accountId: t.Number(), conversationId: t.Number() })),
  routes: t.Optional(t.Array(t.Number())),
  host: t.Optional(t.String()),
  status: t.Optional(t.Number({ description: 'The destination\'s HTTP status, when it answered' })),
  attempt: t.Optional(t.Number()),
  ms: t.Optional(t.Number({ description: 'How long the try took' })),
  latencyMs: t.Optional(t.Number({ description: 'From the webhook\'s acceptance to its delivery' })),
  answer: t.Optional(t.String({ description: 'The start of the destination\'s answer, or what was posted into Chatwoot' })),
  error: t.Optional(t.String()),
})

export const ReplayBody = t.Object(
  {
    instance: t.Optional(t.String()),
    destination: t.Optional(t.String({ description: 'Destination URL (without query) or host' })),
    conversation: t.Optional(t.Integer({ description: 'Conversation display id' })),
    since: t.Optional(TimeField),
    until: t.Optional(TimeField),
    jobIds: t.Optional(t.Array(t.String(), { minItems: 1, maxItems: 10_000 })),
    dryRun: t.Optional(t.Boolean({ description: 'Only list what would be replayed' })),
  },
  { additionalProperties: false },
)

export const ReloadReport = t.Union([
  t.Object({ pid: t.Number(), ok: t.Literal(true), instances: t.Number() }),
  t.Object({ pid: t.Number(), ok: t.Literal(false), problems: t.Array(t.String()) }),
])


export const Conversation = t.Object({ accountId: t.Number(), conversationId: t.Number() })

export const EventHistory = t.Object({
  instance: t.String(),
  jobId: t.String({ description: 'The event\'s webhook job id' }),
  event: t.Optional(t.String()),
  routed: t.Optional(LoggedEvent),
  deliveries: t.Array(
    t.Object({
      id: t.String({ description: '`<job id>.r<route>`: the delivery job, and the webhook-id its destination saw' }),
      route: t.Number(),
      host: t.Optional(t.String()),
      outcome: t.Union([t.Literal('delivered'), t.Literal('failed'), t.Literal('retrying'), t.Literal('pending')]),
      attempts: t.Array(LoggedEvent, { description: 'Each try, oldest first' }),
      answers: t.Array(LoggedEvent, { description: 'What its answer became in Chatwoot' }),
      replayable: t.Boolean({ description: 'A dead letter: POST /admin/replay with its id sends it again' }),
    }),
  ),
  body: t.Optional(t.String({ description: 'The body as Chatwoot sent it, while kept (EVENT_BODIES_KEPT, or a dead letter\'s)' })),
})

export const InstanceOverview = t.Object({
  id: t.String(),
  eventsPerMinute: t.Number({ description: 'Events routed in the last minute' }),
  delivered: t.Number({ description: 'Deliveries made in the last hour' }),
  failed: t.Number({ description: 'Deliveries given up in the last hour' }),
  p95LatencyMs: t.Optional(t.Number({ description: 'Receive→deliver, 95th percentile, last hour' })),
  rateLimitUsePercent: t.Number({ description: 'The last minute\'s events against the instance\'s rate limit' }),
  ratePerSecond: t.Number(),
  openBreakers: t.Array(t.String(), { description: 'Hosts of its destinations whose breaker is open' }),
  partial: t.Boolean({ description: 'The hour held more log entries than one look reads' }),
})

const DepthCounts = t.Object({ waiting: t.Number(), active: t.Number(), delayed: t.Number(), failed: t.Number() })
export const Overview = t.Object({ at: t.Number(), instances: t.Array(InstanceOverview), queues: t.Record(t.String(), DepthCounts) })

export const FailedDelivery = t.Object({
  id: t.String(),
  instance: t.String(),
  destination: t.Optional(t.String()),
  event: t.String(),
  conversation: t.Optional(Conversation),
  failedAt: t.Optional(t.Number()),
  reason: t.String(),
  attempts: t.Number(),
})

export const Breaker = t.Object({
  destination: t.String({ description: 'URL without its query' }),
  host: t.String(),
  instances: t.Array(t.String()),
  state: t.Union([t.Literal('closed'), t.Literal('open'), t.Literal('half_open')]),
  failures: t.Number(),
  openForMs: t.Number(),
})
