import { Counter, Registry } from 'prom-client'

/** One registry per process and every named instrument in it. */
export function createMetrics() {
  const registry = new Registry()
  return {
    registry,
    rateLimited: new Counter({
      name: 'hookgate_rate_limited_total',
      help: 'Requests refused with 429, by key class (ip_webhook, ip_other, ip_admin, instance) and instance',
      labelNames: ['class', 'instance'] as const,
      registers: [registry],
    }),
    shaped: new Counter({
      name: 'hookgate_webhooks_shaped_total',
      help: 'Webhooks accepted over their instance\'s rate and queued with a delay',
      labelNames: ['instance'] as const,
      registers: [registry],
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>
