import { Elysia } from 'elysia'
import type { Metrics } from '../metrics.ts'

/** Counts every answer by route pattern and status, and times it from the first byte we saw to the answer. */
export function requestMetrics(metrics: Metrics) {
  const { httpRequests, httpDuration } = metrics
  return new Elysia({ name: 'request-metrics' })
    .onRequest(function startClock(context) {
      ;(context as Timed).startedAt = performance.now()
    })
    .onAfterResponse({ as: 'global' }, function observe(context) {
      // An unmatched path is one label value, not one per path a scanner tries.
      const route = context.route || 'unmatched'
      const status = String(context.set.status ?? 200)
      httpRequests.inc({ route, method: context.request.method, status })
      const startedAt = (context as Timed).startedAt
      if (startedAt !== undefined) httpDuration.observe({ route }, (performance.now() - startedAt) / 1000)
    })
}

/** Elysia keeps one context object per request; the clock rides on it. */
interface Timed {
  startedAt?: number
}
