import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { MetricsUnauthorized } from './errors.ts'
import { tokenGate } from './http/bearer.ts'
import { atMost } from './redis/connections.ts'

/** Seconds; a healthy webhook answer takes 1-10 ms, and anything past 50 ms is the SLO broken. */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1]
const QUEUE_DEPTH_WAIT_MS = 1000
/** Seconds; a job is a Redis round trip or a POST to a destination that may take its whole timeout. */
const JOB_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * One registry per process and every named instrument in it. Under `hookgate start` the supervisor sums the
 * registries of all its children (see metrics-aggregation.ts), so each instrument says how it combines across
 * processes: counters and histograms add up; a gauge that every process reads off the same Redis takes the max.
 */
export function createMetrics(
  sources: { queueDepths?: () => Promise<Record<string, Record<string, number>>>; spoolPending?: () => { events: number; bytes: number } } = {},
) {
  const registry = new Registry()
  const { queueDepths, spoolPending } = sources
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    httpRequests: new Counter({
      name: 'hookgate_http_requests_total',
      help: 'HTTP requests answered, by route (its pattern), method and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'hookgate_http_request_duration_seconds',
      help: 'Time from request to response, by route',
      labelNames: ['route'] as const,
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    webhooks: new Counter({
      name: 'hookgate_webhooks_total',
      help: 'Authenticated webhooks by outcome (accepted: queued; spooled: on local disk while Redis is unavailable; deduplicated: a repeat, nothing queued), instance and event',
      labelNames: ['outcome', 'instance', 'event'] as const,
      registers,
    }),
    shaped: new Counter({
      name: 'hookgate_webhooks_shaped_total',
      help: 'Webhooks accepted over their instance\'s rate and queued with a delay',
      labelNames: ['instance'] as const,
      registers,
    }),
    rateLimited: new Counter({
      name: 'hookgate_rate_limited_total',
      help: 'Requests refused with 429, by key class (ip_webhook, ip_other, ip_admin, instance) and instance',
      labelNames: ['class', 'instance'] as const,
      registers,
    }),
    acceptCalls: new Histogram({
      name: 'hookgate_accept_call_events',
      help: 'Events each call to Redis took, locked and queued together (more than one while Redis is busy)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    dedupeLocks: new Counter({
      name: 'hookgate_dedupe_locks_total',
      help: 'Dedupe lock attempts: acquired (first arrival) or held (the event is being queued or is queued already)',
      labelNames: ['result'] as const,
      registers,
    }),
    queueJobs: new Gauge({
      name: 'hookgate_queue_jobs',
      help: 'Jobs per queue and state, read from Redis at scrape time',
      labelNames: ['queue', 'state'] as const,
      aggregator: 'max',
      registers,
      async collect() {
        this.reset()
        if (!queueDepths) return
        // A scrape while Redis is away shows no depths rather than hanging or failing the whole scrape.
        const depths = await atMost(QUEUE_DEPTH_WAIT_MS, queueDepths())
        for (const [queue, states] of Object.entries(depths ?? {})) {
          for (const [state, count] of Object.entries(states)) this.set({ queue, state }, count)
        }
      },
    }),
    spoolPending: new Gauge({
      name: 'hookgate_spool_pending_events',
      help: 'Accepted events in the API processes\' spools (Redis was unavailable), not yet moved into the queue',
      aggregator: 'sum',
      registers,
      collect() {
        if (spoolPending) this.set(spoolPending().events)
      },
    }),
    jobs: new Counter({
      name: 'hookgate_jobs_total',
      help: 'Jobs finished by workers, by queue and outcome (completed; failed: tries left, retried; dead: failed for good)',
      labelNames: ['queue', 'outcome'] as const,
      registers,
    }),
    jobDuration: new Histogram({
      name: 'hookgate_job_duration_seconds',
      help: 'Time a worker spent on one try of a job, by queue',
      labelNames: ['queue'] as const,
      buckets: JOB_BUCKETS,
      registers,
    }),
    deliveries: new Counter({
      name: 'hookgate_deliveries_total',
      help: 'Delivery tries by instance, destination host and outcome (delivered, retry, failed, delivered_before)',
      labelNames: ['instance', 'host', 'outcome'] as const,
      registers,
    }),
    breakerOpen: new Gauge({
      name: 'hookgate_breaker_open',
      help: '1 while a destination\'s circuit breaker is open (as last seen by a worker), else 0',
      labelNames: ['host'] as const,
      aggregator: 'max',
      registers,
    }),
    leader: new Gauge({
      name: 'hookgate_leader',
      help: '1 for the process holding the fleet\'s leader lease (runs the periodic duties)',
      aggregator: 'sum',
      registers,
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** A `hookgate worker` run on its own (no supervisor to sum it): its registry at GET /metrics on `port`, behind `token` when set. */
export function serveMetrics(registry: Registry, options: { port: number; hostname: string; token: string | undefined }) {
  const hasMetricsToken = tokenGate(options.token)
  return Bun.serve({
    port: options.port,
    hostname: options.hostname,
    async fetch(request) {
      if (new URL(request.url).pathname !== '/metrics') return Response.json({ error: 'not_found', message: 'Only /metrics is served here.' }, { status: 404 })
      if (!hasMetricsToken(request.headers.get('authorization'))) {
        const refused = new MetricsUnauthorized()
        return Response.json({ error: refused.code, message: refused.message }, { status: refused.status, headers: refused.headers })
      }
      return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } })
    },
  })
}

/** Chatwoot's event names; anything else is counted as `other`, so a sender cannot grow the label set. */
const CHATWOOT_EVENTS = new Set([
  'message_created',
  'message_updated',
  'conversation_created',
  'conversation_updated',
  'conversation_status_changed',
  'conversation_typing_on',
  'conversation_typing_off',
  'contact_created',
  'contact_updated',
  'webwidget_triggered',
  'inbox_created',
  'inbox_updated',
])

export function eventLabel(event: string): string {
  return CHATWOOT_EVENTS.has(event) ? event : 'other'
}
