import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, tempDir, testEnv } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const ROOT = join(import.meta.dir, '../..')
let redis: TestRedis
let binary: string
const children: Bun.Subprocess[] = []

beforeAll(async () => {
  redis = await startRedis()
  const built = join(tempDir(), 'hookgate')
  const build = Bun.spawn(['bun', 'build', '--compile', '--minify', join(ROOT, 'src/main.ts'), '--outfile', built], { stdout: 'pipe', stderr: 'pipe' })
  expect(await build.exited).toBe(0)
  // Alone in a folder of its own: no node_modules, no sources beside it.
  binary = join(tempDir(), 'hookgate')
  copyFileSync(built, binary)
}, 120_000)

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await redis.stop()
})

function run(args: string[], env: Record<string, string | undefined>) {
  const child = Bun.spawn([binary, ...args], { cwd: join(binary, '..'), env: { PATH: process.env.PATH, ...env } as Record<string, string>, stdout: 'pipe', stderr: 'pipe' })
  children.push(child)
  return child
}

/** Reads a child's output until a line matches; `rest()` then reads what follows, to its end. */
async function firstLine(stream: ReadableStream<Uint8Array>, pattern: RegExp) {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let seen = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`no line matching ${pattern} in:\n${seen}`)
    seen += decoder.decode(value)
    if (seen.split('\n').some((l) => pattern.test(l))) break
  }
  return {
    async rest() {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return seen
        seen += decoder.decode(value)
      }
    },
  }
}

describe('the compiled binary, alone in a folder', () => {
  test('runs check', async () => {
    const check = run(['check'], testEnv(redis))
    expect(await check.exited).toBe(0)
    expect(await new Response(check.stdout).text()).toContain('redis: reachable')
  })

  test('runs api (health, docs assets, webhooks, metrics, the queue dashboard) and health, the container health check', async () => {
    const port = await freePort()
    const adminToken = 'binary-admin-token-012345'
    const api = run(['api'], { ...testEnv(redis), PORT: String(port), LOG_LEVEL: 'info', ADMIN_TOKEN: adminToken })
    await firstLine(api.stdout, /"msg":"api listening"/)
    const base = `http://127.0.0.1:${port}`
    expect(await (await fetch(`${base}/health`)).json()).toMatchObject({ status: 'ok', redis: 'up' })
    expect((await fetch(`${base}/docs/assets/swagger-ui-bundle.js`)).status).toBe(200)
    const accepted = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 123_456 })),
    })
    expect(accepted.status).toBe(202)
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('hookgate_webhooks_total{outcome="accepted",instance="acme",event="message_created"} 1')
    const admin = { headers: { authorization: `Bearer ${adminToken}` } }
    const dashboard = await (await fetch(`${base}/admin/queues`, admin)).text()
    const script = /src="(static\/js\/main\.[0-9a-f]+\.js)"/.exec(dashboard)?.[1]
    expect(script).toBeDefined()
    const asset = await fetch(`${base}/admin/queues/${script}`, admin)
    expect(asset.status).toBe(200)
    expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
    expect(await (await fetch(`${base}/admin/queues/api/queues`, admin)).json()).toMatchObject({ queues: expect.arrayContaining([expect.objectContaining({ name: 'webhook' })]) })
    expect(await run(['health'], { ...testEnv(redis), PORT: String(port) }).exited).toBe(0)
    api.kill('SIGTERM')
    expect(await api.exited).toBe(0)
    expect(await run(['health'], { ...testEnv(redis), PORT: String(port) }).exited).toBe(1)
  })

  test('runs worker, and stops it cleanly', async () => {
    const worker = run(['worker'], { ...testEnv(redis), LOG_LEVEL: 'info' })
    const output = await firstLine(worker.stdout, /"msg":"workers started"/)
    worker.kill('SIGTERM')
    const code = await worker.exited
    expect({ code, output: code === 0 ? '' : await output.rest() }).toEqual({ code: 0, output: '' })
  })
})
