import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { testApp, webhookRequest, type TestGateway } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const ADMIN_TOKEN = 'dashboard-admin-token-0123'
/** Debian's chromium (`apt-get install chromium`; .ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium'
export const ARTIFACTS = join(import.meta.dir, '../../test-artifacts')

let redis: TestRedis
let gateway: TestGateway
let base: string
let browser: Browser

beforeAll(async () => {
  redis = await startRedis()
  gateway = await testApp(redis, { ADMIN_TOKEN, RATE_LIMIT_ENABLED: 'false' })
  base = gateway.serve()
  for (const messageId of [810_001, 810_002, 810_003]) {
    expect((await gateway.app.handle(webhookRequest(toChatwootJson(chatwoot.messageCreatedIncoming({ messageId }))))).status).toBe(202)
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})
afterAll(async () => {
  await browser?.close()
  await gateway.close()
  await redis.stop()
})

describe('the queue dashboard at /admin/queues', () => {
  test('loads in a browser with the admin token, shows every queue and the waiting webhooks, and fetches nothing from outside', async () => {
    const context = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${ADMIN_TOKEN}` }, viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    const outside: string[] = []
    const failed: string[] = []
    page.on('request', (request) => !request.url().startsWith(base) && outside.push(request.url()))
    page.on('response', (response) => response.status() >= 400 && failed.push(`${response.status()} ${response.url()}`))
    await page.goto(`${base}/admin/queues`)
    for (const queue of ['webhook', 'delivery', 'chatwoot-note']) {
      await page.getByRole('link', { name: queue, exact: true }).first().waitFor({ timeout: 15_000 })
    }
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'queue-dashboard.png'), fullPage: true })

    await page.goto(`${base}/admin/queues/queue/webhook?status=waiting`)
    await page.getByText('chatwoot-event').first().waitFor({ timeout: 15_000 })
    expect(await page.getByText('chatwoot-event').count()).toBeGreaterThanOrEqual(3)
    await page.screenshot({ path: join(ARTIFACTS, 'queue-dashboard-webhook.png'), fullPage: true })
    expect(outside).toEqual([])
    expect(failed).toEqual([])
    await context.close()
  })

  test('a browser answering the Basic auth prompt with the token as password gets in; a wrong password does not', async () => {
    const withToken = await browser.newContext({ httpCredentials: { username: 'ops', password: ADMIN_TOKEN } })
    const page = await withToken.newPage()
    expect((await page.goto(`${base}/admin/queues`))?.status()).toBe(200)
    await page.getByRole('link', { name: 'delivery', exact: true }).first().waitFor({ timeout: 15_000 })
    await withToken.close()

    const wrong = await browser.newContext({ httpCredentials: { username: 'ops', password: 'not-the-token-at-all' } })
    expect((await (await wrong.newPage()).goto(`${base}/admin/queues`))?.status()).toBe(401)
    await wrong.close()
  })
})
