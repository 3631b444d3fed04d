import { Elysia, t } from 'elysia'
import { searchEvents } from '../admin/events.ts'
import { maskInstance } from '../admin/mask.ts'
import { listFailedDeliveries, replayFailedDeliveries } from '../admin/replay.ts'
import { AdminDisabled, AdminUnauthorized, CrossOrigin, InvalidInstances, InvalidRequest, NotFound, UnknownInstance } from '../errors.ts'
import type { AppDeps } from './app.ts'
import { tokenGate } from './bearer.ts'
import type { PeerSource } from './client-ip.ts'
import { errorResponse } from './schemas.ts'
import { CONSOLE } from './console/pages.ts'
import { SESSION_COOKIE, cookieOf, type Sessions } from './console/session.ts'
import { Breaker, EventHistory, FailedDelivery, LogKind, LoggedEvent, Overview, ReloadReport, ReplayBody, TimeParam, refusals, security } from './admin-schemas.ts'
import { breakerStates, closeBreaker } from '../admin/breakers.ts'
import { eventHistory } from '../admin/history.ts'
import { overview } from '../admin/overview.ts'

/**
 * The operator's API and the queue dashboard under /admin, behind `Authorization: Bearer <ADMIN_TOKEN>` (or Basic auth with the token as its
 * password, which a browser can send for the queue dashboard), or the console's session cookie. A failed attempt costs
 * the IP a token of the admin bucket, so guessing meets 429; an operator who has the token is never throttled.
 */
export function adminRoutes(deps: AppDeps, sessions: Sessions) {
  const { config, instances, limiter, clientIp, queues, redis, operations } = deps
  const { prefix } = config.queue
  const hasAdminToken = tokenGate(config.adminToken)
  const publicHost = new URL(config.http.publicUrl).host

  /** Before routing, so every path under /admin (the dashboard's files and API, unknown ones) needs the token. */
  async function requireAdmin(context: { request: Request; server: PeerSource | null }) {
    const { request, server } = context
    // Elysia passes the path to onRequest; its types do not say so.
    const { path } = context as unknown as { path: string }
    if (path !== '/admin' && !path.startsWith('/admin/')) return
    if (config.adminToken === undefined) throw new AdminDisabled()
    const safe = request.method === 'GET' || request.method === 'HEAD'
    // A form or script of another site must not act with the operator's cookie or cached Basic credentials.
    if (!safe && crossOrigin(request, publicHost)) throw new CrossOrigin()
    if (path === '/admin/login' || path.startsWith(`${CONSOLE}/assets/`)) return
    if (hasAdminToken(request.headers.get('authorization'))) return
    // The session cookie opens pages and the API's reads; a change goes through a console form (with its CSRF token).
    const session = cookieOf(request.headers.get('cookie'), SESSION_COOKIE)
    if (sessions.valid(session) && (safe || path.startsWith(`${CONSOLE}/`) || path === '/admin/logout')) return
    if (safe && !session && !request.headers.has('authorization') && isConsolePage(path)) {
      return new Response(null, { status: 303, headers: { location: `/admin/login?next=${encodeURIComponent(path + new URL(request.url).search)}` } })
    }
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
          host: query.host,
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
          host: t.Optional(t.String({ description: 'A destination\'s host: lines about deliveries to it' })),
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
    .get('/overview', () => overview({ redis, prefix, instances: instances.list(), rateDefaults: config.rateLimit.instance, queues }), {
      detail: { tags: ['admin'], security, summary: 'Per instance: events/min, deliveries and failures in the last hour, p95 receive→deliver, rate-limit use, open breakers; queue depths' },
      response: { 200: Overview, ...refusals },
    })
    .get(
      '/events/:instance/:jobId',
      async ({ params }) => {
        if (!instances.get(params.instance)) throw new UnknownInstance(params.instance)
        const history = await eventHistory(redis, prefix, queues, params.instance, params.jobId)
        if (!history) throw new NotFound()
        return history
      },
      {
        detail: { tags: ['admin'], security, summary: 'One event: where it was routed, every try of each delivery (time, status, duration, answer or error), what was posted back, its body' },
        response: { 200: EventHistory, 404: errorResponse('`unknown_instance`, or `not_found`: the event is not in the log'), ...refusals },
      },
    )
    .get(
      '/failed',
      ({ query }) => listFailedDeliveries(queues, { instance: query.instance, destination: query.destination, conversation: query.conversation }, query.limit ?? 100),
      {
        query: t.Object({
          instance: t.Optional(t.String()),
          destination: t.Optional(t.String({ description: 'Destination URL (without query) or host' })),
          conversation: t.Optional(t.Numeric({ description: 'Conversation display id' })),
          limit: t.Optional(t.Numeric({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        detail: { tags: ['admin'], security, summary: 'Failed deliveries (dead letters), newest first; POST /admin/replay sends them again' },
        response: { 200: t.Object({ deliveries: t.Array(FailedDelivery), total: t.Number(), more: t.Boolean() }), ...refusals },
      },
    )
    .get('/breakers', () => breakerStates(redis, prefix, instances.list()), {
      detail: { tags: ['admin'], security, summary: 'Each configured destination\'s circuit breaker, as the workers share it' },
      response: { 200: t.Array(Breaker), ...refusals },
    })
    .post(
      '/breakers/close',
      async ({ body }) => {
        const closed = await closeBreaker(redis, prefix, instances.list(), body.destination)
        if (!closed) throw new NotFound()
        return closed
      },
      {
        body: t.Object({ destination: t.String({ description: 'Destination URL (without query) or host' }) }, { additionalProperties: false }),
        detail: {
          tags: ['admin'],
          security,
          summary: 'Close a destination\'s breaker: its next delivery goes now (deliveries already waiting on it go when their wait is up)',
        },
        response: { 200: Breaker, 404: errorResponse('`not_found`: no route has that destination'), ...refusals },
      },
    )
    .post(
      '/replay',
      async ({ body }) => {
        const { instance, destination, conversation, jobIds, dryRun } = body
        const since = parseTime('since', body.since)
        const until = parseTime('until', body.until)
        if (instance === undefined && destination === undefined && since === undefined && until === undefined && !jobIds) {
          throw new InvalidRequest('Say which failed deliveries to replay: instance, destination, since/until or jobIds (any of them).')
        }
        return replayFailedDeliveries(queues, { instance, destination, conversation, since, until, jobIds, dryRun })
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

/** ISO 8601 or ms since the epoch; undefined when not given. */
export function parseTime(name: string, value: string | number | undefined): number | undefined {
  if (value === undefined || typeof value === 'number') return value
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw new InvalidRequest(`${name}: give an ISO 8601 time or ms since the epoch, not ${JSON.stringify(value)}.`)
  return ms
}

/** A request whose Origin (or Sec-Fetch-Site) says another site sent it. Scripts (curl) send neither. */
function crossOrigin(request: Request, publicHost: string): boolean {
  if (request.headers.get('sec-fetch-site') === 'cross-site') return true
  const origin = request.headers.get('origin')
  if (!origin) return false
  const host = URL.canParse(origin) ? new URL(origin).host : ''
  return host !== request.headers.get('host') && host !== publicHost
}

/** The console's HTML pages: without a session they send the browser to sign in, not a JSON 401. */
function isConsolePage(path: string): boolean {
  return path === '/admin' || (path.startsWith(`${CONSOLE}/`) && path !== `${CONSOLE}/stream`)
}
