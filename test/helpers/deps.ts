import { afterAll, beforeAll } from 'bun:test'
import { createHmac, randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Queue } from 'bullmq'
import { loadConfig, type Config, type Env } from '../../src/config/config.ts'
import { buildApi } from '../../src/api.ts'
import { createLogger } from '../../src/log.ts'
import { QUEUE } from '../../src/queue/names.ts'
import { waitForReady, type ConnectedRedisConfig } from '../../src/redis/connections.ts'
import { everyEvent } from '../fixtures/chatwoot.ts'
import { signedDelivery } from '../fixtures/signed-delivery.ts'
import { startRedis, type TestRedis } from './redis.ts'

export const ACME_TOKEN = 'acme-token-0123456789abcdef'
export const ACME_SECRET_2 = 'second-secret-abcdefgh'
export const GLOBEX_TOKEN = 'globex-token-0123456789abcd'

/**
 * Routes for every Chatwoot event (private notes too) to a port nothing listens on: an event no route wants is only
 * logged, not queued, so the tests of the API path give their instances routes. No test of these instances looks at
 * what is delivered.
 */
export const everyEventRoutes = [false, true].map((isPrivate) => ({
  events: [...new Set(everyEvent().map((payload) => payload.event as string))],
  private: isPrivate,
  destination: { url: 'http://127.0.0.1:9/unreached', maxAttempts: 1 },
}))

export const testInstances = {
  instances: [
    { id: 'acme', tokens: [ACME_TOKEN], webhookSecret: [signedDelivery.secret, ACME_SECRET_2], routes: everyEventRoutes },
    { id: 'globex', tokens: [GLOBEX_TOKEN], routes: everyEventRoutes },
  ],
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'hookgate-test-'))
}

/** The environment a test process would be started with: its own Redis, key prefix, data dir and instances file. */
export function testEnv(redis: TestRedis, extra: Env = {}, instances: unknown = testInstances): Env {
  const dir = tempDir()
  const instancesFile = join(dir, 'instances.json')
  writeFileSync(instancesFile, JSON.stringify(instances))
  return {
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `{t${randomUUID().slice(0, 8)}}`,
    HOOKGATE_CONFIG: instancesFile,
    HOOKGATE_DATA_DIR: dir,
    LOG_LEVEL: 'silent',
    ...extra,
  }
}

/** Collects every log line the app writes, to check what reaches the logs. */
export function logCapture() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      callback()
    },
  })
  return { stream, lines }
}

/** The production app built by the production factories, on a test Redis, plus a reader of its webhook queue. */
export async function testApp(redis: TestRedis, extra: Env = {}, instances: unknown = testInstances) {
  const config: Config = loadConfig(testEnv(redis, { LOG_LEVEL: 'info', ...extra }, instances))
  const logs = logCapture()
  const api = await buildApi(config, config.redis as ConnectedRedisConfig, createLogger(config.log, logs.stream))
  const reader = new Queue(QUEUE.webhook, { connection: { url: redis.url }, prefix: config.queue.prefix })
  return {
    app: api.app,
    config,
    logs: logs.lines,
    commands: api.commands,
    metrics: api.metrics,
    queue: reader,
    /** Resolves once both connections are back after a Redis restart. */
    async reconnected() {
      return (await waitForReady(api.producer, 5000)) && (await waitForReady(api.commands, 5000))
    },
    /** Serves the app on a real loopback socket (so client IPs are real); returns its base URL. */
    serve(): string {
      api.app.listen({ port: 0, hostname: '127.0.0.1' })
      return `http://127.0.0.1:${api.app.server!.port}`
    },
    async close() {
      if (api.app.server) await api.app.stop()
      await reader.close()
      await api.close()
    },
  }
}

export type TestGateway = Awaited<ReturnType<typeof testApp>>

/** A Redis and the app on it for a whole test file: started before its tests, stopped after. */
export function withTestApp(extra: Env = {}): { redis: TestRedis; gateway: TestGateway } {
  const context = {} as { redis: TestRedis; gateway: TestGateway }
  beforeAll(async () => {
    context.redis = await startRedis()
    context.gateway = await testApp(context.redis, extra)
  })
  afterAll(async () => {
    await context.gateway.close()
    await context.redis.stop()
  })
  return context
}

export function sign(secret: string, timestamp: number, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`
}

export interface PostOptions {
  instance?: string
  token?: string
  headers?: Record<string, string>
  query?: string
}

/** A webhook request as Chatwoot (or a proxy) would send it. */
export function webhookRequest(body: string | Uint8Array, options: PostOptions = {}, base = 'http://localhost'): Request {
  const path = options.instance === undefined ? '/webhook/chatwoot/acme' : `/webhook/chatwoot/${options.instance}`
  const query = options.query ?? (options.token === undefined ? `?token=${ACME_TOKEN}` : options.token ? `?token=${options.token}` : '')
  return new Request(`${base}${path}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body,
  })
}
