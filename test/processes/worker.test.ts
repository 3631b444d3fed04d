import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Queue, QueueEvents } from 'bullmq'
import { readFileSync, writeFileSync } from 'node:fs'
import { freePort } from '../../src/process/embedded-redis.ts'
import { QUEUE, deliveredKey, eventLogKey } from '../../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testApp, testEnv, webhookRequest, type TestGateway } from '../helpers/deps.ts'
import { startRecorder } from '../helpers/http-server.ts'
import { recordFinished, type FinishedJobs } from '../helpers/jobs.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import { parsePrometheus, total } from '../helpers/prometheus.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let destination: Awaited<ReturnType<typeof startRecorder>>
let gateway: TestGateway
let env: Record<string, string | undefined>
let deliveries: Queue
let deliveryEvents: QueueEvents
let webhookEvents: QueueEvents
let webhookJobs: FinishedJobs
let deliveryJobs: FinishedJobs
const running: HookgateProcess[] = []
let nextMessageId = 800_000

beforeAll(async () => {
  redis = await startRedis()
  destination = await startRecorder()
  const instances = {
    instances: [
      { id: 'acme', tokens: [ACME_TOKEN], routes: [{ events: ['message_created'], destination: { url: `${destination.url}/bot`, timeoutMs: 1000 } }] },
    ],
  }
  env = testEnv(redis, { JOB_LOCK_MS: '1000', DELIVERY_BACKOFF_MS: '10', RATE_LIMIT_ENABLED: 'false' }, instances)
  gateway = await testApp(redis, env, instances)
  const connection = { url: redis.url }
  deliveries = new Queue(QUEUE.delivery, { connection, prefix: gateway.config.queue.prefix })
  deliveryEvents = new QueueEvents(QUEUE.delivery, { connection, prefix: gateway.config.queue.prefix })
  webhookEvents = new QueueEvents(QUEUE.webhook, { connection, prefix: gateway.config.queue.prefix })
  await Promise.all([deliveryEvents.waitUntilReady(), webhookEvents.waitUntilReady()])
  deliveryJobs = recordFinished(deliveryEvents)
  webhookJobs = recordFinished(webhookEvents)
})

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')))
  await Promise.all([deliveries.close(), deliveryEvents.close(), webhookEvents.close()])
  await gateway.close()
  destination.stop()
  await redis.stop()
})

async function worker(): Promise<HookgateProcess> {
  const child = spawnHookgate(['worker'], { ...env, LOG_LEVEL: 'info' })
  running.push(child)
  await child.waitFor(/"msg":"workers started"/)
  return child
}

/** Sends one event through the API; returns its webhook job's id and its delivery's (the webhook-id). */
async function send(): Promise<{ event: string; delivery: string }> {
  const response = await gateway.app.handle(webhookRequest(toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextMessageId++ }))))
  const { jobId } = (await response.json()) as { jobId: string }
  return { event: jobId, delivery: `${jobId}.r0` }
}

/** Resolves once the event's webhook job has routed it and made its first delivery try. */
function routed(sent: { event: string }) {
  return webhookJobs.completed(sent.event)
}

function triesOf(id: string) {
  return destination.requests.filter((r) => r.headers['webhook-id'] === id)
}

describe('hookgate worker processes', () => {
  test('a worker killed mid-delivery: another takes the job up and it is delivered, once', async () => {
    const first = await worker()
    destination.answer('hang')
    const before = destination.requests.length
    const sent = await send()
    await destination.received(before + 1)
    await first.stop('SIGKILL')

    await worker()
    expect(await routed(sent)).toEqual({ routes: [0] })
    expect(triesOf(sent.delivery)).toHaveLength(2) // the one the dead worker never saw answered, and the delivery
  })

  test('with two workers, a delivery job run again after it succeeded delivers nothing more', async () => {
    await worker()
    const sent = await send()
    await routed(sent)
    expect(triesOf(sent.delivery)).toHaveLength(1)
    await deliveries.add('deliver', { instanceId: 'acme', route: 0, event: 'message_created', body: '{}', conversation: undefined }, { jobId: sent.delivery })
    expect(await deliveryJobs.completed(sent.delivery)).toEqual({ status: 'delivered_before' })
    expect(triesOf(sent.delivery)).toHaveLength(1)
  })

  test('SIGTERM lets the delivery in flight finish, then exits 0', async () => {
    const [child, other] = [running.at(-1)!, running.at(-2)!]
    expect(await other.stop('SIGTERM')).toBe(0)
    destination.answer({ status: 200, json: { ok: true }, delayMs: 300 })
    const before = destination.requests.length
    const sent = await send()
    await destination.received(before + 1)
    const exited = child.stop('SIGTERM')
    expect(await routed(sent)).toEqual({ routes: [0] })
    expect(await deliveries.getJob(sent.delivery)).toBeUndefined() // delivered by the webhook job, not handed over
    expect(await exited).toBe(0)
    expect(child.output()).toContain('workers stopped')
  })

  test('a webhook job whose worker dies mid-delivery twice is run a third time and delivered, not failed as a poison', async () => {
    // Every worker above has stopped. Two tries hang; the third is answered.
    destination.answer('hang', 'hang')
    const before = destination.requests.length
    const sent = await send()
    const marker = deliveredKey(gateway.config.queue.prefix, sent.delivery)
    for (const tries of [1, 2]) {
      const doomed = await worker()
      await destination.received(before + tries)
      // The webhook job made this try itself (a try handed over would be a delivery job's, and the job done).
      expect(await deliveries.getJob(sent.delivery)).toBeUndefined()
      await doomed.stop('SIGKILL')
      // The dead run's claim on the delivery expires with its timeout; a run before that would wait, not try.
      while (await gateway.commands.exists(marker)) await Bun.sleep(50)
    }
    const third = await worker()
    const outcome = await Promise.race([routed(sent), webhookJobs.failed(sent.event).then((reason) => ({ failed: reason }))])
    expect(outcome).toEqual({ routes: [0] })
    expect(triesOf(sent.delivery).map((r) => r.answered)).toEqual(['hang', 'hang', 200])
    expect(await third.stop('SIGTERM')).toBe(0)
  }, 30_000)
})

describe('a worker run on its own', () => {
  test('serves its metrics on WORKER_METRICS_PORT (behind METRICS_TOKEN when set), and reloads its instances on SIGHUP, refusing a bad file', async () => {
    const port = await freePort()
    const metricsToken = 'worker-metrics-token-0123'
    const child = spawnHookgate(['worker'], { ...env, LOG_LEVEL: 'info', WORKER_METRICS_PORT: String(port), METRICS_TOKEN: metricsToken })
    running.push(child)
    await child.waitFor(/"msg":"worker metrics listening"/)
    await routed(await send())
    const anonymous = await fetch(`http://127.0.0.1:${port}/metrics`)
    expect([anonymous.status, anonymous.headers.get('www-authenticate'), ((await anonymous.json()) as { error: string }).error]).toEqual([401, 'Bearer realm="hookgate metrics"', 'unauthorized'])
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
    expect(metrics.status).toBe(200)
    const samples = parsePrometheus(await metrics.text())
    expect(total(samples, 'hookgate_deliveries_total', { instance: 'acme', outcome: 'delivered' })).toBeGreaterThanOrEqual(1)
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404)

    const file = env.HOOKGATE_CONFIG!
    const good = readFileSync(file, 'utf8')
    writeFileSync(file, '{"instances": []}')
    child.proc.kill('SIGHUP')
    expect(await child.waitFor(/"msg":"instances reload refused; the previous instances stay"/)).toContain('/instances')
    writeFileSync(file, good)
    child.proc.kill('SIGHUP')
    await child.waitFor(/"instances":1,"msg":"instances reloaded"/)
    const sent = await send()
    await routed(sent)
    expect(triesOf(sent.delivery)).toHaveLength(1)
    expect(await child.stop()).toBe(0)
  })
})

describe('fleet leadership', () => {
  test('one worker leads and runs the duties; when it is killed another takes over with a newer fencing token', async () => {
    // A fleet of its own (its own key prefix): the workers above may still hold a lease on theirs.
    const prefix = '{leadership}'
    const leaderEnv = { ...env, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', LEADER_LEASE_MS: '600', DUTY_INTERVAL_MS: '200', EVENT_LOG_MAX_LEN: '10' }
    const logKey = eventLogKey(prefix, 'acme')
    for (let i = 0; i < 30; i++) await gateway.commands.xadd(logKey, '*', 'kind', 'routed', 'n', String(i))
    const start = async (extra: Record<string, string> = {}) => {
      const child = spawnHookgate(['worker'], { ...leaderEnv, ...extra })
      running.push(child)
      await child.waitFor(/"msg":"workers started"/)
      return child
    }
    const first = await start()
    const firstLine = JSON.parse(await first.waitFor(/"msg":"became leader/)) as { fencingToken: number }
    await first.waitFor(/"msg":"event logs trimmed"/)
    expect(await gateway.commands.xlen(logKey)).toBe(10)

    const second = await start()
    const optedOut = await start({ ENABLE_CRON: 'false' })
    await first.stop('SIGKILL')
    const secondLine = JSON.parse(await second.waitFor(/"msg":"became leader/, 5000)) as { fencingToken: number }
    expect(secondLine.fencingToken).toBeGreaterThan(firstLine.fencingToken)
    expect(optedOut.output()).not.toContain('became leader')
    expect(second.output()).not.toContain('lost leadership')
  })
})

describe('a worker asked to stop while Redis is away', () => {
  test('still stops, within its shutdown timeout and a little, and exits 0', async () => {
    const ownRedis = await startRedis()
    const child = spawnHookgate(['worker'], { ...testEnv(ownRedis), LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '1000' })
    await child.waitFor(/"msg":"workers started"/)
    await ownRedis.stop()
    await child.waitFor(/"msg":"redis connection lost"/)
    const asked = Date.now()
    expect(await child.stop('SIGTERM')).toBe(0)
    expect(Date.now() - asked).toBeLessThan(6000)
    expect(child.output()).toContain('"msg":"workers stopped"')
  })
})
