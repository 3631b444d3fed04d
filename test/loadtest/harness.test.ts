import { describe, expect, test } from 'bun:test'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { runArrivalRate } from '../../loadtest/harness/arrival-rate.ts'
import { tempDir } from '../helpers/deps.ts'

describe('the constant-arrival-rate generator', () => {
  test('keeps sending on schedule while the server stalls, and counts the stall in every request that waited', async () => {
    let stalled = 0
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(request) {
        await request.arrayBuffer()
        // The first 20 requests (the first 100 ms at 200/s) wait 300 ms: a stall a closed-loop generator would hide.
        if (stalled++ < 20) await Bun.sleep(300)
        return new Response('{}', { status: 202 })
      },
    })
    try {
      const result = await runArrivalRate({ url: `http://127.0.0.1:${server.port}/`, rate: 200, seconds: 1, body: (i) => String(i) })
      expect(result.sent).toBe(200)
      expect(result.statuses).toEqual({ 202: 200 })
      // 10 % of the requests waited ≥ 300 ms from when they were due: the 95th percentile must show it, the median not.
      expect(result.latency.p50).toBeLessThan(100)
      expect(result.latency.p95).toBeGreaterThanOrEqual(300)
      expect(result.perSecond).toHaveLength(1)
      expect(result.perSecond[0]!.p95).toBeGreaterThanOrEqual(300)
    } finally {
      server.stop(true)
    }
  })
})

describe('bun run bench', () => {
  test('runs every scenario (here as small as it goes), accounts for every answer, and writes JSON, markdown and a chart', async () => {
    const out = tempDir()
    const bench = Bun.spawn(
      ['bun', join(import.meta.dir, '../../loadtest/bench.ts'), '--quick', '--seconds', '1', '--rate', '200', '--rate-seconds', '2', '--events', '300', '--pipeline-rates', '200', '--pipeline-seconds', '2', '--out', out],
      { stdout: 'pipe', stderr: 'pipe' },
    )
    const [stdout, stderr, code] = await Promise.all([new Response(bench.stdout).text(), new Response(bench.stderr).text(), bench.exited])
    expect({ code, stderr: code ? stderr : '' }).toEqual({ code: 0, stderr: '' })
    const files = readdirSync(out)
    const json = files.find((f) => f.endsWith('.json'))!
    const { results } = JSON.parse(readFileSync(join(out, json), 'utf8')) as {
      results: {
        peak: { kind: string; median: { rps: number; accepted: number; queued: number; lost: number } }[]
        rate: { sent: number; accepted: number; queued: number; lost: number; unanswered: number }
        workers: { events: number; eventsPerSecond: number; duplicates: number }[]
        pipeline: { rows: { rate: number; sent: number; accepted: number; delivered: number; lost: number; duplicated: number; redis: { scriptsPerEvent: number; commandsPerEvent: number; cpuUsecPerEvent: number } }[] }[]
        queueFloor: { rate: number; jobs: number; redis: { scriptsPerEvent: number; cpuUsecPerEvent: number } }[]
      }
    }
    expect(results.peak.map((p) => p.kind)).toEqual(['express', 'floor', 'hookgate', 'hookgate'])
    for (const { median } of results.peak) {
      expect(median.rps).toBeGreaterThan(0)
      expect(median.lost).toBe(0)
      expect(median.queued).toBeGreaterThanOrEqual(median.accepted)
    }
    expect(results.rate).toMatchObject({ sent: 400, accepted: 400, queued: 400, lost: 0, unanswered: 0 })
    expect(results.workers).toEqual([expect.objectContaining({ events: 300, duplicates: 0 })])
    const [pipeline] = results.pipeline
    expect(pipeline!.rows).toEqual([expect.objectContaining({ rate: 200, sent: 400, accepted: 400, delivered: 400, lost: 0, duplicated: 0 })])
    // Redis's work is counted: every event takes at least its enqueue script and a few commands.
    expect(pipeline!.rows[0]!.redis.scriptsPerEvent).toBeGreaterThanOrEqual(1)
    expect(pipeline!.rows[0]!.redis.commandsPerEvent).toBeGreaterThan(pipeline!.rows[0]!.redis.scriptsPerEvent)
    expect(pipeline!.rows[0]!.redis.cpuUsecPerEvent).toBeGreaterThan(0)
    // The queue alone, at the same rate: a job is at least its add and its finish.
    expect(results.queueFloor).toEqual([expect.objectContaining({ rate: 200, jobs: 400 })])
    expect(results.queueFloor[0]!.redis.scriptsPerEvent).toBeGreaterThanOrEqual(2)
    expect(results.queueFloor[0]!.redis.cpuUsecPerEvent).toBeGreaterThan(0)
    expect(files.some((f) => f.endsWith('-rate.svg'))).toBe(true)
    const markdown = readFileSync(join(out, files.find((f) => f.endsWith('.md'))!), 'utf8')
    expect(markdown).toContain('the Express baseline')
    expect(markdown).toContain('-rate.svg)')
    expect(stdout).toContain('## Fixed arrival rate: 200 req/s for 2 s')
    expect(stdout).toContain('## Pipeline: hookgate start')
    expect(stdout).toContain('## The queue alone')
  }, 120_000)
})
