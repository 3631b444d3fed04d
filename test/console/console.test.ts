import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { startChatwootApi } from '../helpers/chatwoot-api.ts'
import { ACME_TOKEN, GLOBEX_TOKEN, testEnv } from '../helpers/deps.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const ADMIN_TOKEN = 'console-admin-token-0123'
const CHATWOOT_TOKEN = 'console-chatwoot-token-01'
const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(import.meta.dir, '../../test-artifacts')
/** The conversation whose deliveries fail until the test says otherwise, and one that always fails. */
const FLAKY = 7
const BROKEN = 13

let redis: TestRedis
let gateway: HookgateProcess
let chatwootApi: Awaited<ReturnType<typeof startChatwootApi>>
let bots: ReturnType<typeof startBots>
let base: string
let browser: Browser
let context: BrowserContext
let page: Page
/** Every request the console's page made: none may leave the gateway. */
const requested: string[] = []

/** The tenants' bots: acme's answers with a reply, but fails for FLAKY (until healed) and BROKEN; globex's is down. */
function startBots(port: number) {
  const seen: { path: string; conversation: number; status: number }[] = []
  const waiters = new Set<() => void>()
  let flakyHealed = false
  const server = Bun.serve({
    port,
    hostname: '127.0.0.1',
    async fetch(request) {
      const body = (await request.json()) as { conversation?: { id?: number } }
      const conversation = body.conversation?.id ?? 0
      const path = new URL(request.url).pathname
      const failing = path === '/globex' || conversation === BROKEN || (conversation === FLAKY && !flakyHealed)
      seen.push({ path, conversation, status: failing ? 500 : 200 })
      for (const wake of waiters) wake()
      return failing ? Response.json({ error: 'down' }, { status: 500 }) : Response.json({ reply: `Olá! Answer to #${conversation}` })
    },
  })
  return {
    heal: () => (flakyHealed = true),
    /** Resolves once a request matching `done` has been answered. */
    until: (done: (s: typeof seen) => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => done(seen) && (waiters.delete(check), resolve())
        waiters.add(check)
        check()
      }),
    stop: () => server.stop(true),
  }
}

function send(instance: 'acme' | 'globex', conversationId: number, messageId: number) {
  const token = instance === 'acme' ? ACME_TOKEN : GLOBEX_TOKEN
  return fetch(`${base}/webhook/chatwoot/${instance}?token=${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId, conversationId })),
  })
}

/** The admin API, as a script would call it, for conditions the browser cannot wait on. */
async function api<T>(path: string): Promise<T> {
  return (await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as Promise<T>
}

/** Waits (on the admin API) until `done` holds: the workers log asynchronously. */
async function untilApi<T>(path: string, done: (value: T) => boolean): Promise<T> {
  for (;;) {
    const value = await api<T>(path)
    if (done(value)) return value
    await Bun.sleep(100)
  }
}

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true })

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  redis = await startRedis()
  chatwootApi = await startChatwootApi(CHATWOOT_TOKEN)
  const botsPort = await freePort()
  bots = startBots(botsPort)
  const route = (path: string, maxAttempts: number) => ({ events: ['message_created'], destination: { url: `http://127.0.0.1:${botsPort}${path}`, maxAttempts } })
  const instances = {
    instances: [
      { id: 'acme', tokens: [ACME_TOKEN], chatwoot: { url: chatwootApi.url, apiAccessToken: CHATWOOT_TOKEN }, routes: [route('/acme', 2)] },
      // globex's fifth failure opens its breaker and is its last try. acme's (FLAKY's two and BROKEN's two) stay under
      // the threshold however they interleave with its deliveries: its breaker must not open before both have failed.
      { id: 'globex', tokens: [GLOBEX_TOKEN], routes: [route('/globex', 5)] },
    ],
  }
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  gateway = spawnHookgate(['start'], {
    ...testEnv(redis, {}, instances),
    PORT: String(port),
    ADMIN_TOKEN,
    API_PROCESSES: '1',
    WORKER_PROCESSES: '1',
    DELIVERY_BACKOFF_MS: '50',
    BREAKER_FAILURE_THRESHOLD: '5',
    BREAKER_OPEN_MS: '600000',
    LOG_LEVEL: 'info',
  })
  await gateway.waitFor(/Point Chatwoot's webhook at/)

  // acme: three delivered (with replies posted back), FLAKY and BROKEN failing; globex: its bot down, its breaker opens.
  for (const [i, conversation] of [5, 5, 5, FLAKY, BROKEN].entries()) expect((await send('acme', conversation, 41_000 + i)).status).toBe(202)
  expect((await send('globex', 9, 42_000)).status).toBe(202)
  await untilApi<{ total: number }>('/admin/failed', (failed) => failed.total === 3)
  await untilApi<{ state: string }[]>('/admin/breakers', (breakers) => breakers.some((b) => b.state === 'open'))
  await chatwootApi.until(() => chatwootApi.calls.length === 3)

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  page = await context.newPage()
  page.on('request', (request) => requested.push(request.url()))
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
  bots?.stop()
  chatwootApi?.stop()
  await redis?.stop()
})

/** Waits for what a locator finds to show (playwright-core has no auto-retrying `expect`). */
const shown = (locator: Locator) => locator.first().waitFor({ state: 'visible', timeout: 10_000 })
/** The text of what a locator finds, once it shows. */
async function textOf(locator: Locator): Promise<string> {
  await shown(locator)
  return (await locator.first().innerText()).trim()
}

describe('the operator console at /admin', () => {
  test('without a session it asks to sign in; a wrong token shows no data', async () => {
    await page.goto(`${base}/admin`)
    expect(new URL(page.url()).pathname).toBe('/admin/login')
    await page.getByLabel('Admin token (ADMIN_TOKEN)').fill('not-the-admin-token-0000')
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await textOf(page.getByRole('alert'))).toBe('That is not the admin token.')
    expect(await page.content()).not.toContain('globex')
    expect((await context.cookies()).filter((c) => c.name === 'hookgate_admin')).toEqual([])
    // The API and the console's pages give nothing without the token or a session either.
    expect((await fetch(`${base}/admin/overview`)).status).toBe(401)
    expect((await fetch(`${base}/admin/console/events`, { redirect: 'manual' })).status).toBe(303)
    expect((await fetch(`${base}/admin/console/events`, { headers: { cookie: 'hookgate_admin=9999999999999.forged' }, redirect: 'manual' })).status).toBe(401)
    await shot('sign-in')
  })

  test('signs in (an HttpOnly, SameSite=Strict cookie) and the overview shows both instances with their counts', async () => {
    await page.getByLabel('Admin token (ADMIN_TOKEN)').fill(ADMIN_TOKEN)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await shown(page.getByRole('heading', { name: 'Overview' }))
    const [cookie] = (await context.cookies()).filter((c) => c.name === 'hookgate_admin')
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin', secure: false })
    const cell = (instance: string, field: string) => textOf(page.locator(`tr[data-instance="${instance}"] [data-field="${field}"]`))
    expect({ delivered: await cell('acme', 'delivered'), failed: await cell('acme', 'failed'), perMinute: await cell('acme', 'eventsPerMinute') }).toEqual({ delivered: '3', failed: '2', perMinute: '5' })
    expect({ delivered: await cell('globex', 'delivered'), failed: await cell('globex', 'failed') }).toEqual({ delivered: '0', failed: '1' })
    expect(await textOf(page.locator('tr[data-instance="globex"]'))).toMatch(/127\.0\.0\.1:\d+/) // its open breaker
    expect(await textOf(page.getByRole('table', { name: 'Queue depths' }))).toContain('delivery')
    await shot('overview')
    await page.setViewportSize({ width: 390, height: 844 })
    await shot('overview-phone')
    await page.setViewportSize({ width: 1280, height: 860 })
  })

  test('finds a failed delivery by conversation, and its page shows every attempt, the body and where it went', async () => {
    await page.getByRole('link', { name: 'Events', exact: true }).click()
    await shown(page.getByRole('heading', { name: 'Events' }))
    await page.getByLabel('Conversation').fill(String(FLAKY))
    await page.getByLabel('Outcome').selectOption({ label: 'failed for good' })
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(/kind=delivery_failed/)
    const rows = page.getByRole('table', { name: 'Events, newest first' }).locator('tbody tr')
    expect(await textOf(rows)).toContain(`#${FLAKY}`)
    expect(await rows.count()).toBe(1)
    await shot('events')
    await rows.first().getByRole('link', { name: 'message_created' }).click()
    const attempts = page.getByRole('table', { name: /Delivery attempts/ }).locator('tbody tr')
    await shown(attempts)
    expect(await attempts.count()).toBe(2)
    expect(await attempts.nth(0).innerText()).toMatch(/try failed \(will retry\)[\s\S]*500/)
    expect(await attempts.nth(1).innerText()).toMatch(/failed for good[\s\S]*answered 500/)
    expect(await textOf(page.getByLabel('Event body'))).toContain('"conversation_id": 7')
    await shown(page.getByRole('button', { name: 'Replay this delivery…' }))
    await shot('event')
  })

  test('closes an open breaker', async () => {
    await page.getByRole('link', { name: 'Destinations' }).click()
    const globex = page.locator('tr', { hasText: '/globex' })
    await shown(globex)
    expect(await globex.locator('[data-state]').getAttribute('data-state')).toBe('open')
    await shot('destinations')
    await globex.getByRole('button', { name: /Close the breaker/ }).click()
    expect(await textOf(page.getByRole('status'))).toContain('closed')
    expect(await page.locator('tr', { hasText: '/globex' }).locator('[data-state]').getAttribute('data-state')).toBe('closed')
    expect(await api<{ destination: string; state: string }[]>('/admin/breakers')).toContainEqual(expect.objectContaining({ destination: expect.stringContaining('/globex'), state: 'closed' }))
  })

  test('replays the failed delivery (asking first, with the count) and its page then shows it delivered and answered', async () => {
    bots.heal()
    await page.getByRole('link', { name: 'Failed deliveries' }).click()
    await shown(page.getByRole('heading', { name: 'Failed deliveries' }))
    await page.getByLabel('Conversation').fill(String(FLAKY))
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(/conversation=7/)
    const listed = page.getByRole('table', { name: 'Failed deliveries, newest first' }).locator('tbody tr')
    await shown(listed)
    expect(await listed.count()).toBe(1)
    await shot('failed')
    await listed.first().getByRole('button', { name: /^Replay / }).click()
    expect(await textOf(page.getByRole('alert'))).toContain('This sends 1 failed delivery again')
    await shot('replay-confirm')
    await page.getByRole('button', { name: 'Replay 1' }).click()
    expect(await textOf(page.getByRole('status'))).toContain('Sent again: 1')
    await bots.until((seen) => seen.some((s) => s.conversation === FLAKY && s.status === 200))
    await chatwootApi.until(() => chatwootApi.calls.some((call) => call.conversationId === FLAKY))
    const path = `acme/acme.message_created.m${41_003}`
    await untilApi<{ deliveries: { outcome: string; answers: unknown[] }[] }>(`/admin/events/${path}`, (h) => h.deliveries[0]?.outcome === 'delivered' && h.deliveries[0].answers.length === 1)
    await page.goto(`${base}/admin/console/events/${path}`)
    const attempts = page.getByRole('table', { name: /Delivery attempts/ }).locator('tbody tr')
    await shown(attempts)
    expect(await attempts.count()).toBe(3)
    expect(await attempts.nth(2).innerText()).toMatch(/delivered[\s\S]*Answer to #7/)
    await shown(page.getByRole('heading', { name: 'Posted back to Chatwoot' }))
    await shown(page.getByText('reply "Olá! Answer to #7"'))
  })

  test('the live list, filtered, shows a new event without reloading', async () => {
    await page.goto(`${base}/admin/console/events?instance=globex&event=message_created`)
    await shown(page.locator('#live-status[data-live="on"]'))
    let navigations = 0
    page.on('framenavigated', () => navigations++)
    expect((await send('acme', 21, 43_000)).status).toBe(202) // filtered out: another instance
    expect((await send('globex', 22, 43_001)).status).toBe(202)
    const rows = page.getByRole('table', { name: 'Events, newest first' }).locator('tbody tr')
    await shown(rows.filter({ hasText: '#22' }))
    expect(await textOf(page.locator('#live-status'))).toContain('new event')
    expect(await rows.filter({ hasText: '#21' }).count()).toBe(0)
    expect(navigations).toBe(0)
    await shot('events-live')
  })

  test('a form posted from another origin does nothing, though the browser sends the session cookie along', async () => {
    const failedBefore = await api<{ total: number }>('/admin/failed?conversation=13')
    expect(failedBefore.total).toBe(1)
    const attackerPort = await freePort()
    const jobId = `acme.message_created.m${41_004}.r0`
    const attacker = Bun.serve({
      port: attackerPort,
      hostname: '127.0.0.1',
      fetch: () =>
        new Response(
          `<form id="f" method="post" action="${base}/admin/console/replay"><input name="jobIds" value="${jobId}"><input name="confirm" value="yes"></form><script>document.getElementById('f').submit()</script>`,
          { headers: { 'content-type': 'text/html' } },
        ),
    })
    try {
      const evil = await context.newPage()
      const answered = evil.waitForResponse((response) => response.url().startsWith(`${base}/admin/console/replay`))
      await evil.goto(`http://127.0.0.1:${attackerPort}/`)
      const response = await answered
      expect(response.status()).toBe(403)
      expect(await response.json()).toMatchObject({ error: 'cross_origin' })
      await evil.close()
    } finally {
      attacker.stop(true)
    }
    // With the right Origin but no CSRF token (a script of this origin that was not the console's form), also nothing.
    const [cookie] = (await context.cookies()).filter((c) => c.name === 'hookgate_admin')
    const noToken = await fetch(`${base}/admin/console/replay`, {
      method: 'POST',
      headers: { cookie: `hookgate_admin=${cookie!.value}`, origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: `jobIds=${jobId}&confirm=yes`,
    })
    expect(noToken.status).toBe(403)
    expect(await api<{ total: number }>('/admin/failed?conversation=13')).toMatchObject({ total: 1 })
  })

  test('is usable with the keyboard: skip link first, then the navigation, and Enter follows a link', async () => {
    await page.goto(`${base}/admin`)
    await page.keyboard.press('Tab')
    expect(await page.locator(':focus').innerText()).toBe('Skip to content')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Tab')
    expect(await page.locator(':focus').innerText()).toBe('Events')
    await page.keyboard.press('Enter')
    await shown(page.getByRole('heading', { name: 'Events' }))
    expect(new URL(page.url()).pathname).toBe('/admin/console/events')
  })

  test('asks for nothing outside the gateway, and its files are small', async () => {
    expect(requested.length).toBeGreaterThan(10)
    expect(requested.filter((url) => !url.startsWith(base))).toEqual([])
    const assets = await Promise.all(['console.css', 'console.js'].map(async (file) => (await fetch(`${base}/admin/console/assets/${file}`)).arrayBuffer()))
    expect(assets.reduce((sum, a) => sum + a.byteLength, 0)).toBeLessThan(200 * 1024)
  })
})
