import { AggregatorRegistry, Registry } from 'prom-client'
import type { MetricsJson } from './supervisor-link.ts'

/**
 * The supervisor's view of its children's metrics. A scrape sums every live child's fresh registry with the counters
 * of children that have died, so a host's counters never go down when one of its processes is restarted.
 */
export function createFleetMetrics(own: Registry) {
  /** Each live child's latest counters (sent every few seconds, and with every scrape). */
  const latest = new Map<number, MetricsJson>()
  /** The sum of the counters of every child gone. */
  let retired: MetricsJson = []

  return {
    /** A child's latest counters (or full registry: only its counters are kept). */
    update(pid: number, metrics: MetricsJson) {
      latest.set(pid, metrics.filter(isCumulative))
    },
    /** A child is gone: its last counters join the retired sum. */
    async retire(pid: number) {
      const last = latest.get(pid)
      latest.delete(pid)
      if (!last?.length) return
      retired = (await AggregatorRegistry.aggregate([retired, last]).getMetricsAsJSON()) as MetricsJson
    },
    /** Prometheus text: the fresh registries of the children that answered, the latest counters of those that did not. */
    async render(fresh: Map<number, MetricsJson>): Promise<string> {
      for (const [pid, metrics] of fresh) this.update(pid, metrics)
      const missing = [...latest].filter(([pid]) => !fresh.has(pid)).map(([, metrics]) => metrics)
      const all = [...fresh.values(), ...missing, retired, (await own.getMetricsAsJSON()) as MetricsJson]
      return AggregatorRegistry.aggregate(all).metrics()
    },
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
  }
}

function isCumulative(metric: MetricsJson[number]): boolean {
  // prom-client's typings say an enum; its JSON carries the names.
  const type = String(metric.type)
  return type === 'counter' || type === 'histogram'
}
