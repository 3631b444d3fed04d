import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testEnv, testInstances } from '../helpers/deps.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import { parsePrometheus, total } from '../helpers/prometheus.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const ADMIN_TOKEN = 'fleet-admin-token-0123456'
const NEWCO_TOKEN = 'newco-token-0123456789abc'
const withNewco = { instances: [...testInstances.instances, { id: 'newco', tokens: [NEWCO_TOKEN] }] }

let redis: TestRedis
let gateway: HookgateProcess
let base: string
let instancesFile: string
let nextMessageId = 900_000

beforeAll(async () => {
  redis = await startRedis()
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  const env = testEnv(redis, { PORT: String(port), API_PROCESSES: '2', WORKER_PROCESSES: '1', LOG_LEVEL: 'info', ADMIN_TOKEN })
  instancesFile = env.HOOKGATE_CONFIG!
  gateway = spawnHookgate(['start'], env)
  await gateway.waitFor(/"msg":"api listening"/, 15_000, 2)
  await gateway.waitFor(/"msg":"workers started"/)
})
afterAll(async () => {
  await gateway.stop('SIGKILL')
  await redis.stop()
})

/** A webhook over a fresh connection, so that the kernel spreads them over both API processes. */
function sendWebhook(instance = 'acme', token = ACME_TOKEN): Promise<number> {
  return fetch(`${base}/webhook/chatwoot/${instance}?token=${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close' },
    body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ })),
    keepalive: false,
  }).then((response) => response.status)
}

async function scrape() {
  const response = await fetch(`${base}/metrics`, { headers: { connection: 'close' }, keepalive: false })
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toStartWith('text/plain; version=0.0.4')
  return parsePrometheus(await response.text())
}

/** pids of the API processes that logged accepting a webhook. */
function acceptingPids(): Set<number> {
  const lines = gateway.output().split('\n').filter((line) => line.includes('"msg":"queued"'))
  return new Set(lines.map((line) => (JSON.parse(line) as { pid: number }).pid))
}

describe('/metrics under hookgate start with 2 API processes', () => {
  const N = 60

  test('reports exactly the N webhooks accepted, summed over both processes, as valid Prometheus text', async () => {
    const statuses = await Promise.all(Array.from({ length: N }, () => sendWebhook()))
    expect(statuses).toEqual(Array(N).fill(202))
    expect(acceptingPids().size).toBe(2)

    const samples = await scrape()
    expect(total(samples, 'hookgate_webhooks_total', { outcome: 'accepted', instance: 'acme', event: 'message_created' })).toBe(N)
    expect(total(samples, 'hookgate_dedupe_locks_total', { result: 'acquired' })).toBe(N)
    expect(total(samples, 'hookgate_http_requests_total', { route: '/webhook/chatwoot/:instance', status: '202' })).toBe(N)
    expect(total(samples, 'hookgate_http_request_duration_seconds_count', { route: '/webhook/chatwoot/:instance' })).toBe(N)
    for (const state of ['waiting', 'active', 'delayed', 'failed']) {
      expect(samples.some((s) => s.name === 'hookgate_queue_jobs' && s.labels.queue === 'webhook' && s.labels.state === state)).toBe(true)
    }
    expect(total(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true)
  })

  test('counts the workers\' jobs too, and shows the fleet\'s leader', async () => {
    // The worker routes each webhook (no routes here: nothing to deliver) and takes the leader lease. Every call to
    // Redis queued one job, of one event or of the several that came together.
    const deadline = Date.now() + 10_000
    let samples = await scrape()
    expect(total(samples, 'hookgate_accept_call_events_sum')).toBe(N)
    const jobs = total(samples, 'hookgate_accept_call_events_count')
    const settled = () => total(samples, 'hookgate_jobs_total', { queue: 'webhook', outcome: 'completed' }) >= jobs && total(samples, 'hookgate_leader') === 1
    while (!settled() && Date.now() < deadline) {
      await Bun.sleep(100) // nothing announces a scrape-worthy change: poll, bounded
      samples = await scrape()
    }
    expect(total(samples, 'hookgate_jobs_total', { queue: 'webhook', outcome: 'completed' })).toBe(jobs)
    expect(total(samples, 'hookgate_job_duration_seconds_count', { queue: 'webhook' })).toBe(jobs)
    expect(total(samples, 'hookgate_leader')).toBe(1)
  })

  test('still reports N after an API process is killed and restarted', async () => {
    const victim = [...acceptingPids()][0]!
    process.kill(victim, 'SIGKILL')
    await gateway.waitFor(/"msg":"child died; restarting it"/)
    await gateway.waitFor(/"msg":"api listening"/, 10_000, 3)
    const samples = await scrape()
    expect(total(samples, 'hookgate_webhooks_total', { outcome: 'accepted' })).toBe(N)
    expect(total(samples, 'hookgate_child_restarts_total', { role: 'api' })).toBe(1)
    expect(await sendWebhook()).toBe(202)
    expect(total(await scrape(), 'hookgate_webhooks_total', { outcome: 'accepted' })).toBe(N + 1)
  })
})

describe('reloading the instances file under hookgate start', () => {
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, connection: 'close' }, keepalive: false })

  test('POST /admin/reload and SIGHUP swap the instances in every process under load, with no failed request', async () => {
    let stop = false
    const failures: string[] = []
    let sent = 0
    const client = async () => {
      while (!stop) {
        sent++
        const status = await sendWebhook().catch((error: Error) => error.message)
        if (status !== 202) failures.push(String(status))
      }
    }
    const clients = Array.from({ length: 8 }, client)

    for (let round = 0; round < 3; round++) {
      writeFileSync(instancesFile, JSON.stringify(withNewco))
      const reloaded = await admin('/admin/reload', { method: 'POST' })
      expect(reloaded.status).toBe(200)
      const body = (await reloaded.json()) as { instances: number; processes: { ok: boolean; instances: number }[] }
      expect(body.processes).toHaveLength(3) // 2 API processes and the worker
      expect(body.processes.every((p) => p.ok && p.instances === 3)).toBe(true)
      const newco = await Promise.all(Array.from({ length: 6 }, () => sendWebhook('newco', NEWCO_TOKEN)))
      expect(newco).toEqual(Array(6).fill(202))

      writeFileSync(instancesFile, JSON.stringify(testInstances))
      gateway.proc.kill('SIGHUP')
      // The supervisor logs each fleet reload once: this round's POST, then this SIGHUP.
      await gateway.waitFor(/"processes":3,"msg":"instances reloaded"/, 10_000, 2 * (round + 1))
      const gone = await Promise.all(Array.from({ length: 6 }, () => sendWebhook('newco', NEWCO_TOKEN)))
      expect(gone).toEqual(Array(6).fill(401))
    }
    stop = true
    await Promise.all(clients)
    expect(sent).toBeGreaterThan(50)
    expect(failures).toEqual([])
  })

  test('a bad file is refused everywhere, with its problems, and the instances in use stay', async () => {
    writeFileSync(instancesFile, '{"instances": [ {"id": "acme", ')
    const refused = await admin('/admin/reload', { method: 'POST' })
    expect(refused.status).toBe(422)
    expect(await refused.json()).toMatchObject({ error: 'invalid_instances', message: expect.stringContaining('cannot read') })
    expect(await Promise.all(Array.from({ length: 6 }, () => sendWebhook()))).toEqual(Array(6).fill(202))
    writeFileSync(instancesFile, JSON.stringify(testInstances))
  })
})
