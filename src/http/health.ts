import { Elysia, t } from 'elysia'
import type { AppDeps } from './app.ts'

const Health = t.Object({
  status: t.Literal('ok'),
  redis: t.Union([t.Literal('up'), t.Literal('down')]),
  pid: t.Integer({ description: 'The process that answered: shows how connections spread over API processes' }),
  uptimeSeconds: t.Number(),
})

/** Liveness for load balancers (no Redis round trip, 200 even when Redis is down) and metrics; neither is rate limited. */
export function healthRoutes(deps: Pick<AppDeps, 'redis' | 'metrics'>) {
  const startedAt = performance.now()
  const { registry } = deps.metrics
  return new Elysia({ name: 'health' })
    .get(
      '/metrics',
      async () => new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } }),
      { detail: { tags: ['operations'], summary: 'Prometheus metrics of this process' } },
    )
    .get(
    '/health',
    () => ({
      status: 'ok' as const,
      redis: deps.redis.status === 'ready' ? ('up' as const) : ('down' as const),
      pid: process.pid,
      uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
    }),
    { response: { 200: Health }, detail: { tags: ['operations'], summary: 'Is this process alive, and does it reach Redis?' } },
  )
}
