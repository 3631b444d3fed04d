import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { testApp, type TestGateway } from '../helpers/deps.ts'
import type { K6RunReport } from '../helpers/k6-shim.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const SHIM = join(import.meta.dir, '../helpers/k6-shim.ts')
const LOADTEST = join(import.meta.dir, '../../loadtest')
const TOKEN = 'k6-load-token-0123456789'
const SECRET = 'k6-chatwoot-webhook-secret'
const QUIET_TOKEN = 'k6-quiet-token-0123456789'
const NOISY_TOKEN = 'k6-noisy-token-0123456789'

let redis: TestRedis
let gateway: TestGateway
let base: string

beforeAll(async () => {
  redis = await startRedis()
  gateway = await testApp(redis, {}, {
    instances: [
      { id: 'load', tokens: [TOKEN], webhookSecret: SECRET },
      { id: 'quiet', tokens: [QUIET_TOKEN] },
      { id: 'noisy', tokens: [NOISY_TOKEN], rateLimit: { perSecond: 5, burst: 5, policy: 'reject' } },
    ],
  })
  base = gateway.serve()
})
afterAll(async () => {
  await gateway.close()
  await redis.stop()
})

/** Runs a scenario's function in the k6 stand-in against the gateway; returns what it reported. */
async function k6(script: string, exec: string, vus: number, iterations: number, env: Record<string, string>): Promise<K6RunReport> {
  const summaryDir = gateway.config.dataDir
  const child = Bun.spawn(['bun', SHIM, join(LOADTEST, script), exec, String(vus), String(iterations)], {
    env: { PATH: process.env.PATH!, BASE_URL: base, SUMMARY_DIR: summaryDir, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  expect({ code, err }).toEqual({ code: 0, err: '' })
  return JSON.parse(out) as K6RunReport
}

const failures = (report: K6RunReport) => Object.entries(report.checks).filter(([, c]) => c.fails > 0)

describe('the k6 scenarios, run in a k6 stand-in against a real gateway', () => {
  test('smoke.js with a token: every event queued, every repeat already_queued', async () => {
    const report = await k6('smoke.js', 'default', 1, 2, { INSTANCE: 'load', TOKEN })
    expect(failures(report)).toEqual([])
    expect(report.checks['new event: 202 queued']).toEqual({ passes: 34, fails: 0 })
    expect(report.statuses).toEqual({ 200: 34, 202: 34 })
    expect(report.summaryFiles).toEqual(['stdout', `${gateway.config.dataDir}/smoke-summary.txt`, `${gateway.config.dataDir}/smoke-summary.json`])
    expect(report.summaryText).toContain('ok     http_req_duration: p(95)<50')
  })

  test('smoke.js signed as Chatwoot 4.12+ signs (SECRET), without a token', async () => {
    const report = await k6('smoke.js', 'default', 1, 1, { INSTANCE: 'load', SECRET })
    expect(failures(report)).toEqual([])
    expect(report.statuses).toEqual({ 200: 17, 202: 17 })
  })

  test('throughput.js asks for RATE × REPLICAS a second with the SLO as thresholds, and its requests are accepted', async () => {
    const report = await k6('throughput.js', 'default', 3, 5, { INSTANCE: 'load', TOKEN, RATE: '1000', REPLICAS: '3', DURATION: '2m' })
    expect(report.options).toMatchObject({
      scenarios: { throughput: { executor: 'constant-arrival-rate', rate: 3000, timeUnit: '1s', duration: '2m' } },
      thresholds: { http_req_duration: ['p(95)<50'], http_req_failed: ['rate<0.001'], checks: ['rate>0.999'] },
    })
    expect(report.checks['202 queued']).toEqual({ passes: 15, fails: 0 })
  })

  test('dedupe.js: of all the copies of each event, exactly one is queued', async () => {
    const report = await k6('dedupe.js', 'default', 4, 2, { INSTANCE: 'load', TOKEN, EVENTS: '10', PAUSE_SECONDS: '0' })
    expect(report.counters).toEqual({ queued_answers: 10 })
    expect(report.statuses).toEqual({ 200: 70, 202: 10 })
    expect(failures(report)).toEqual([])
    expect(report.options).toMatchObject({ thresholds: { queued_answers: ['count==10'], unexpected_answers: ['count==0'] } })
  })

  test('ratelimit.js: the noisy tenant gets 429s with Retry-After; the quiet one gets everything through', async () => {
    const noisy = await k6('ratelimit.js', 'noisy', 1, 12, { INSTANCE: 'noisy', TOKEN: NOISY_TOKEN })
    expect(noisy.counters.rate_limited).toBeGreaterThan(0)
    expect(noisy.statuses['429']).toBe(noisy.counters.rate_limited)
    expect(failures(noisy)).toEqual([])
    const quiet = await k6('ratelimit.js', 'quiet', 1, 5, { INSTANCE_B: 'quiet', TOKEN_B: QUIET_TOKEN })
    expect(quiet.statuses).toEqual({ 202: 5 })
    expect(failures(quiet)).toEqual([])
  })

  test('spike.js and soak.js accept their requests', async () => {
    for (const script of ['spike.js', 'soak.js']) {
      const report = await k6(script, 'default', 2, 3, { INSTANCE: 'load', TOKEN })
      expect(report.checks['202 queued'], script).toEqual({ passes: 6, fails: 0 })
    }
  })

  test('a check that should fail does: a wrong token makes smoke.js fail its checks', async () => {
    const report = await k6('smoke.js', 'default', 1, 1, { INSTANCE: 'load', TOKEN: 'not-a-valid-token-at-all' })
    expect(report.checks['new event: 202 queued']).toEqual({ passes: 0, fails: 17 })
    expect(report.statuses).toEqual({ 401: 34 })
  })
})
