import { Elysia } from 'elysia'
import type { Redis } from 'ioredis'
import type { Config } from '../config/config.ts'
import { HookgateError, InvalidJson, InvalidRequest, NotFound, toErrorBody } from '../errors.ts'
import { rateLimitHeaders, type Limiter, type RouteClass } from '../ingest/ratelimit.ts'
import type { Instances } from '../config/instances.ts'
import type { Log } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { Acceptor } from '../ingest/accept.ts'
import type { Queues } from '../queue/queues.ts'
import type { RedisBreaker } from '../redis/breaker.ts'
import type { Spool } from '../spool/spool.ts'
import type { ReloadReport } from '../process/supervisor-link.ts'
import { randomBytes } from 'node:crypto'
import { adminRoutes } from './admin.ts'
import type { ClientIp } from './client-ip.ts'
import { consoleRoutes } from './console/routes.ts'
import { createSessions } from './console/session.ts'
import { docsRoutes } from './docs.ts'
import { healthRoutes } from './health.ts'
import { queueDashboard } from './queue-dashboard.ts'
import { requestContext, requestIdOf } from './request-context.ts'
import { requestMetrics } from './request-metrics.ts'
import { webhookRoutes } from './webhook.ts'

export interface AppDeps {
  config: Config
  log: Log
  instances: Instances
  acceptor: Acceptor
  limiter: Limiter
  clientIp: ClientIp
  metrics: Metrics
  /** The commands connection: admin reads (event search). */
  redis: Redis
  /** Whether Redis takes requests; /health says so without a round trip. */
  breaker: RedisBreaker
  spool: Spool
  queues: Queues
  operations: Operations
}

/** What an API process does for the whole host when it runs under `hookgate start`, or for itself alone. */
export interface Operations {
  /** Prometheus text: the sum over this host's processes under the supervisor, else this process's own. */
  metricsText(): Promise<string>
  /** Re-reads the instances file in every process of the host (or this one alone); one report per process. */
  reloadInstances(): Promise<ReloadReport[]>
}

/** The whole HTTP surface, built from deps; never listens (tests call `app.handle`). */
export function createApp(deps: AppDeps) {
  // Without ADMIN_TOKEN every /admin path answers 403; a key of its own keeps the sessions' code path the same.
  const sessions = createSessions(deps.config.adminToken ?? randomBytes(32).toString('hex'))
  const { log, limiter, clientIp } = deps
  return new Elysia({ name: 'hookgate' })
    .use(deps.config.metrics.enabled ? requestMetrics(deps.metrics) : new Elysia())
    .error({ HookgateError })
    .onRequest(async function limitByIp(context) {
      const { request, server, set } = context
      // Elysia passes the path to onRequest; its types do not say so.
      const routeClass = routeClassOf(request.method, (context as unknown as { path: string }).path)
      if (!routeClass) return
      const limit = await limiter.takeForIp(routeClass, clientIp(request, server))
      if (limit) Object.assign(set.headers, rateLimitHeaders(limit))
    })
    .use(requestContext)
    .onError(function answerError({ code, error, set, request, path, ...context }) {
      const requestId = (context as { requestId?: string }).requestId ?? requestIdOf(request)
      const known = toHookgateError(code, error)
      set.headers['x-request-id'] = requestId
      if (known) {
        set.status = known.status
        Object.assign(set.headers, known.headers)
        log.info({ reqId: requestId, path, status: known.status, error: known.code }, 'request refused')
        return toErrorBody(known, requestId)
      }
      log.error({ reqId: requestId, path, err: error }, 'unhandled error')
      set.status = 500
      return { error: 'internal_error', message: 'Something went wrong on our side; it is logged under this request id.', requestId }
    })
    .use(healthRoutes(deps))
    .use(docsRoutes())
    .use(webhookRoutes(deps))
    .use(adminRoutes(deps, sessions))
    .use(consoleRoutes(deps, sessions))
    .use(queueDashboard(deps.queues))
}

const WEBHOOK_ROUTE = /^\/webhook\/chatwoot(\/[^/]+)?\/?$/

/**
 * The webhook and admin routes limit themselves, after authentication (a failure costs the IP a token); health and
 * metrics are never limited.
 */
function routeClassOf(method: string, path: string): RouteClass | undefined {
  if (path === '/health' || path === '/metrics' || path.startsWith('/admin')) return undefined
  if (method === 'POST' && WEBHOOK_ROUTE.test(path)) return undefined
  return 'other'
}

function toHookgateError(code: string | number, error: unknown): HookgateError | undefined {
  if (error instanceof HookgateError) return error
  switch (code) {
    case 'PARSE':
      return new InvalidJson()
    case 'VALIDATION':
      return new InvalidRequest((error as { summary?: string }).summary ?? 'The request does not match its schema.')
    case 'NOT_FOUND':
      return new NotFound()
    default:
      return undefined
  }
}
