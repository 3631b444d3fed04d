import { Elysia, t } from 'elysia'
import { searchEvents } from '../admin/events.ts'
import { maskInstance } from '../admin/mask.ts'
import { replayFailedDeliveries } from '../admin/replay.ts'
import { AdminDisabled, AdminUnauthorized, InvalidInstances, InvalidRequest, UnknownInstance } from '../errors.ts'
import type { AppDeps } from './app.ts'
import { tokenGate } from './bearer.ts'
import type { PeerSource } from './client-ip.ts'
import { errorResponse } from './schemas.ts'

const security = [{ adminToken: [] }]
const refusals = {
  401: errorResponse('`unauthorized`: no admin token, or a wrong one'),
  403: errorResponse('`admin_disabled`: ADMIN_TOKEN is not set'),
  429: errorResponse('`rate_limited`: too many failed admin requests from this IP'),
}

const TimeParam = t.String({ description: 'ISO 8601 time, or ms since the epoch', examples: ['2026-11-23T08:00:00Z'] })
const TimeField = t.Union([TimeParam, t.Integer({ minimum: 0, description: 'ms since the epoch' })])

const LogKind = t.Union([t.Literal('routed'), t.Literal('delivered'), t.Literal('delivery_failed'), t.Literal('answer_rejected')], {
  description: '`answer_rejected`: the destination\'s answer was malformed and nothing of it was posted (`error` says why)',
})

const LoggedEvent = t.Object({
  id: t.String({ description: 'Log entry id (Redis Stream id)' }),
  kind: LogKind,
  jobId: t.String(),
  event: t.String(),
  at: t.Number({ description: 'ms since the epoch' }),
  conversation: t.Optional(t.Object({ accountId: t.Number(), conversationId: t.Number() })),
  routes: t.Optional(t.Array(t.Number())),
  host: t.Optional(t.String()),
  status: t.Optional(t.Number()),
  attempt: t.Optional(t.Number()),
  error: t.Optional(t.String()),
})

const ReplayBody = t.Object(
  {
    instance: t.Optional(t.String()),
    destination: t.Optional(t.String({ description: 'Destination URL (without query) or host' })),
    since: t.Optional(TimeField),
    until: t.Optional(TimeField),
    jobIds: t.Optional(t.Array(t.String(), { minItems: 1, maxItems: 10_000 })),
    dryRun: t.Optional(t.Boolean({ description: 'Only list what would be replayed' })),
  },
  { additionalProperties: false },
)

const ReloadReport = t.Union([
  t.Object({ pid: t.Number(), ok: t.Literal(true), instances: t.Number() }),
  t.Object({ pid: t.Number(), ok: t.Literal(false), problems: t.Array(t.String()) }),
])

/**
 * The operator's API and the queue dashboard under /admin, behind `Authorization: Bearer <ADMIN_TOKEN>` (or Basic auth with the token as its
 * password, which a browser can send for the queue dashboard). A failed attempt costs the IP a token of the admin
 * bucket, so guessing meets 429; an operator who has the token is never throttled.
 */
export function adminRoutes(deps: AppDeps) {
  const { config, instances, limiter, clientIp, queues, redis, operations } = deps
  const hasAdminToken = tokenGate(config.adminToken)

  /** Before routing, so every path under /admin (the dashboard's files and API, unknown ones) needs the token. */
  async function requireAdmin(context: { request: Request; server: PeerSource | null }) {
    const { request, server } = context
    // Elysia passes the path to onRequest; its types do not say so.
    const { path } = context as unknown as { path: string }
    if (path !== '/admin' && !path.startsWith('/admin/')) return
    if (config.adminToken === undefined) throw new AdminDisabled()
    if (hasAdminToken(request.headers.get('authorization'))) return
    await limiter.takeForIp('admin', clientIp(request, server))
    throw new AdminUnauthorized()
  }

  return new Elysia({ name: 'admin', prefix: '/admin' })
    .onRequest(requireAdmin)
    .get(
      '/instances',
      () => ({
        source: config.instancesSource.kind === 'file' ? config.instancesSource.path : 'default',
        instances: instances.list().map((instance) => maskInstance(instance.config)),
      }),
      {
        detail: { tags: ['admin'], security, summary: 'The instances in use, every secret masked to a fingerprint' },
        response: {
          200: t.Object({
            source: t.String({ description: 'The instances file, or `default`' }),
            instances: t.Array(
              t.Object({ id: t.String() }, { additionalProperties: true, description: 'As in the instances file; secrets as `sha256:` fingerprints' }),
            ),
          }),
          ...refusals,
        },
      },
    )
    .post(
      '/reload',
      async ({ set }) => {
        const processes = await operations.reloadInstances()
        const refused = processes.find((report) => !report.ok)
        if (refused && !refused.ok) throw new InvalidInstances(refused.problems)
        set.status = 200
        return { status: 'reloaded' as const, instances: instances.list().length, processes }
      },
      {
        detail: {
          tags: ['admin'],
          security,
          summary: 'Re-read the instances file (as SIGHUP does) in every process of this host; a bad file is refused and the old one kept',
        },
        response: {
          200: t.Object({ status: t.Literal('reloaded'), instances: t.Number(), processes: t.Array(ReloadReport) }),
          422: errorResponse('`invalid_instances`: the file has problems (listed); nothing changed'),
          ...refusals,
        },
      },
    )
    .get(
      '/events',
      async ({ query }) => {
        if (!instances.get(query.instance)) throw new UnknownInstance(query.instance)
        return searchEvents(redis, config.queue.prefix, {
          instance: query.instance,
          conversation: query.conversation,
          event: query.event,
          kind: query.kind,
          since: parseTime('since', query.since),
          until: parseTime('until', query.until),
          before: query.before,
          limit: query.limit ?? 100,
        })
      },
      {
        query: t.Object({
          instance: t.String({ description: 'Instance id' }),
          conversation: t.Optional(t.Numeric({ description: 'Conversation display id, as in Chatwoot\'s URLs' })),
          event: t.Optional(t.String({ description: 'Chatwoot event name', examples: ['message_created'] })),
          kind: t.Optional(LogKind),
          since: t.Optional(TimeParam),
          until: t.Optional(TimeParam),
          before: t.Optional(t.String({ pattern: '^[0-9]+-[0-9]+$', description: 'The `next` of the previous page' })),
          limit: t.Optional(t.Numeric({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        detail: { tags: ['admin'], security, summary: 'Search an instance\'s event log (what was routed and delivered), newest first' },
        response: {
          200: t.Object({ events: t.Array(LoggedEvent), next: t.Optional(t.String()), scanned: t.Number() }),
          404: errorResponse('`unknown_instance`'),
          ...refusals,
        },
      },
    )
    .post(
      '/replay',
      async ({ body }) => {
        const { instance, destination, jobIds, dryRun } = body
        const since = parseTime('since', body.since)
        const until = parseTime('until', body.until)
        if (instance === undefined && destination === undefined && since === undefined && until === undefined && !jobIds) {
          throw new InvalidRequest('Say which failed deliveries to replay: instance, destination, since/until or jobIds (any of them).')
        }
        return replayFailedDeliveries(queues, { instance, destination, since, until, jobIds, dryRun })
      },
      {
        // Elysia drops unknown fields before validating; a misspelt filter must be refused, not replay more than meant.
        transform({ body }) {
          const fields = Object.keys(body && typeof body === 'object' ? body : {})
          const unknown = fields.filter((field) => !(field in ReplayBody.properties))
          if (unknown.length) {
            throw new InvalidRequest(`Unknown field(s) ${unknown.join(', ')}; a replay filter has ${Object.keys(ReplayBody.properties).join(', ')}.`)
          }
        },
        body: ReplayBody,
        detail: {
          tags: ['admin'],
          security,
          summary: 'Send failed deliveries again, tries reset; idempotent (only failed jobs move, a delivered event never goes twice)',
        },
        response: {
          200: t.Object({
            matched: t.Number(),
            replayed: t.Array(t.String()),
            skipped: t.Array(t.Object({ id: t.String(), reason: t.String() })),
            more: t.Boolean({ description: 'More failed deliveries than one call looks at: call again' }),
          }),
          400: errorResponse('`invalid_request`: no filter, or a bad time'),
          ...refusals,
        },
      },
    )
}

/** The token of `Bearer <token>`, or the password of `Basic base64(user:token)`. */
/** ISO 8601 or ms since the epoch; undefined when not given. */
export function parseTime(name: string, value: string | number | undefined): number | undefined {
  if (value === undefined || typeof value === 'number') return value
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw new InvalidRequest(`${name}: give an ISO 8601 time or ms since the epoch, not ${JSON.stringify(value)}.`)
  return ms
}
