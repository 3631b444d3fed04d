import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createMetrics } from '../../src/metrics.ts'

const dashboard = (await Bun.file(join(import.meta.dir, '../../grafana/hookgate.json')).json()) as {
  uid: string
  templating: { list: { name: string }[] }
  panels: { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: { expr: string; refId: string }[] }[]
}

/** Every metric name a host's /metrics can show: an API or worker process's registry, and the supervisor's own. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set(['hookgate_child_restarts_total'])
  for (const metric of await createMetrics().registry.getMetricsAsJSON()) {
    names.add(metric.name)
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix)
  }
  return names
}

describe('grafana/hookgate.json', () => {
  test('is an importable dashboard: a uid, a datasource variable, unique panel ids, panels that do not overlap', () => {
    expect(dashboard.uid).toBe('hookgate-overview')
    expect(dashboard.templating.list.map((v) => v.name)).toContain('datasource')
    const ids = dashboard.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    const cells = new Set<string>()
    for (const { gridPos, title } of dashboard.panels) {
      expect(gridPos.x + gridPos.w).toBeLessThanOrEqual(24)
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
          expect(cells.has(`${x},${y}`) ? title : '').toBe('')
          cells.add(`${x},${y}`)
        }
      }
    }
  })

  test('queries only metrics hookgate exports, and covers throughput, latency, errors, queues and per-tenant failures', async () => {
    const names = await exportedNames()
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
    const used = new Set(exprs.flatMap((expr) => expr.match(/\b(?:hookgate|process|nodejs)_[a-z0-9_]+/g) ?? []))
    expect([...used].filter((name) => !names.has(name))).toEqual([])
    for (const needed of ['hookgate_webhooks_total', 'hookgate_http_request_duration_seconds_bucket', 'hookgate_http_requests_total', 'hookgate_queue_jobs', 'hookgate_deliveries_total']) {
      expect(used.has(needed)).toBe(true)
    }
    expect(exprs.some((e) => e.includes('histogram_quantile(0.99'))).toBe(true)
  })
})
