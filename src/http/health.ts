import { Elysia, t } from 'elysia'
import { MetricsUnauthorized } from '../errors.ts'
import type { AppDeps } from './app.ts'
import { tokenGate } from './bearer.ts'
import { errorResponse } from './schemas.ts'

const Health = t.Object({
  status: t.Literal('ok'),
  redis: t.Union([t.Literal('up'), t.Literal('down')], { description: 'down: not connected, or too slow (its breaker is open); events are spooled' }),
  spool: t.Object(
    { pending: t.Integer({ description: 'Spooled events not yet moved into the queue' }), bytes: t.Integer() },
    { description: 'This process\'s spool (SPOOL_DIR)' },
  ),
  pid: t.Integer({ description: 'The process that answered: shows how connections spread over API processes' }),
  uptimeSeconds: t.Number(),
})

/**
 * Liveness for load balancers (no Redis round trip, 200 even when Redis is down: this process still accepts, into its
 * spool) and metrics; neither is rate limited.
 */
export function healthRoutes(deps: Pick<AppDeps, 'config' | 'breaker' | 'spool' | 'metrics' | 'operations'>) {
  const startedAt = performance.now()
  const { contentType } = deps.metrics.registry
  const hasMetricsToken = tokenGate(deps.config.metrics.token)
  const metrics = new Elysia({ name: 'metrics' }).get(
    '/metrics',
    async ({ request }) => {
      if (!hasMetricsToken(request.headers.get('authorization'))) throw new MetricsUnauthorized()
      return new Response(await deps.operations.metricsText(), { headers: { 'content-type': contentType } })
    },
    {
      detail: {
        tags: ['operations'],
        summary: 'Prometheus metrics: the sum over every process of this host under `hookgate start`',
        description: 'With METRICS_TOKEN set, send `Authorization: Bearer <METRICS_TOKEN>` (Prometheus: `authorization: { credentials: … }`).',
      },
      response: { 401: errorResponse('`unauthorized`: METRICS_TOKEN is set and was not sent, or a wrong one') },
    },
  )
  return new Elysia({ name: 'health' })
    .use(deps.config.metrics.enabled ? metrics : new Elysia())
    .get(
      '/health',
      () => {
        const { events, bytes } = deps.spool.pending()
        return {
          status: 'ok' as const,
          redis: deps.breaker.state(),
          spool: { pending: events, bytes },
          pid: process.pid,
          uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
        }
      },
      { response: { 200: Health }, detail: { tags: ['operations'], summary: 'Is this process alive, and does it reach Redis?' } },
    )
}
