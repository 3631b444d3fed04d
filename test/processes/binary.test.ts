import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/process/embedded-redis.ts'
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
    /** What it printed up to the line. */
    upTo: seen,
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

  test('runs api (health, docs assets, webhooks, metrics, the console and the queue dashboard) and health, the container health check', async () => {
    const port = await freePort()
    const adminToken = 'binary-admin-token-012345'
    const metricsToken = 'binary-metrics-token-0123'
    const api = run(['api'], { ...testEnv(redis), PORT: String(port), LOG_LEVEL: 'info', ADMIN_TOKEN: adminToken, METRICS_TOKEN: metricsToken })
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
    const anonymous = await fetch(`${base}/metrics`)
    expect([anonymous.status, anonymous.headers.get('www-authenticate'), await anonymous.json()]).toEqual([
      401,
      'Bearer realm="hookgate metrics"',
      expect.objectContaining({ error: 'unauthorized', message: expect.stringContaining('METRICS_TOKEN') }),
    ])
    expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer not-the-metrics-token' } })).status).toBe(401)
    const scraped = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
    expect(await scraped.text()).toContain('hookgate_webhooks_total{outcome="accepted",instance="acme",event="message_created"} 1')
    const admin = { headers: { authorization: `Bearer ${adminToken}` } }
    // The console's page and files come from the binary too.
    expect(await (await fetch(`${base}/admin/login`)).text()).toContain('Admin token (ADMIN_TOKEN)')
    expect(await (await fetch(`${base}/admin/console/assets/console.js`)).text()).toContain('EventSource')
    expect(await (await fetch(`${base}/admin/console/assets/console.css`)).text()).toContain('prefers-color-scheme')
    expect(await (await fetch(`${base}/admin`, admin)).text()).toContain('<h1>Overview</h1>')
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

describe('the binary as the image runs it (the Dockerfile\'s ENV and CMD)', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n')
  const imageEnv = Object.fromEntries(
    dockerfile.findLast((l) => l.startsWith('ENV '))!.slice(4).trim().split(/\s+/).map((pair) => pair.split('=', 2) as [string, string]),
  )
  const imageCmd = JSON.parse(dockerfile.findLast((l) => l.startsWith('CMD '))!.slice(4)) as string[]
  /** The image's environment, with what `docker run -e` adds; its paths moved into a folder of the test's own. */
  const containerEnv = (extra: Record<string, string>) => ({ ...imageEnv, HOOKGATE_DATA_DIR: tempDir(), SPOOL_DIR: tempDir(), REDIS_URL: redis.url, LOG_LEVEL: 'info', ...extra })

  test('with no instances file and no HOOKGATE_DEFAULT_TOKEN, api and worker refuse to start, saying what to set, and make no token', async () => {
    expect(imageCmd).toEqual(['api'])
    for (const role of [imageCmd[0]!, 'worker']) {
      const env = containerEnv({ PORT: String(await freePort()) })
      const child = run([role], env)
      expect(await child.exited).toBe(2)
      const said = await new Response(child.stderr).text()
      expect(said).toContain('HOOKGATE_DEFAULT_TOKEN')
      expect(said).toContain('HOOKGATE_CONFIG')
      expect(existsSync(join(env.HOOKGATE_DATA_DIR, 'default-token'))).toBe(false)
    }
  })

  test('with HOOKGATE_DEFAULT_TOKEN, every replica takes the same token, and api prints the webhook URL without the token', async () => {
    const token = 'container-default-token-0123456789'
    const replicas = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort()
        const child = run(imageCmd, containerEnv({ PORT: String(port), HOOKGATE_DEFAULT_TOKEN: token }))
        const printed = await firstLine(child.stderr, /webhook\/chatwoot\/default/)
        await firstLine(child.stdout, /"msg":"api listening"/)
        return { child, port, printed }
      }),
    )
    for (const { child, port, printed } of replicas) {
      const said = printed.upTo
      expect(said).toContain(`http://localhost:${port}/webhook/chatwoot/default?token=$HOOKGATE_DEFAULT_TOKEN`)
      expect(said).toContain('PUBLIC_URL')
      expect(said).not.toContain(token)
      const accepted = await fetch(`http://127.0.0.1:${port}/webhook/chatwoot/default?token=${token}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 700_000 + port })),
      })
      expect(accepted.status).toBe(202)
      child.kill('SIGTERM')
      expect(await child.exited).toBe(0)
    }
  })
})

describe('the binary in a terminal', () => {
  /** Runs the binary on a pseudo-terminal (stdout is a TTY, as for a person running it) and collects what it shows. */
  function inTerminal(args: string[], env: Record<string, string | undefined>) {
    let shown = ''
    const wakes = new Set<() => void>()
    const child = Bun.spawn([binary, ...args], {
      cwd: join(binary, '..'),
      env: { PATH: process.env.PATH, TERM: 'xterm-256color', ...env } as Record<string, string>,
      terminal: {
        cols: 200,
        data(_, chunk) {
          shown += new TextDecoder().decode(chunk)
          for (const wake of wakes) wake()
        },
      },
    })
    children.push(child)
    return {
      child,
      shown: () => shown,
      until: (pattern: RegExp) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ${pattern} in:\n${shown}`)), 15_000)
          const check = () => {
            if (!pattern.test(shown)) return
            clearTimeout(timer)
            wakes.delete(check)
            resolve()
          }
          wakes.add(check)
          check()
        }),
    }
  }
  const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '')

  test('start prints its logs for people (time, level, message, fields), in colour, beside its banner; no JSON', async () => {
    const port = await freePort()
    const gateway = inTerminal(['start'], { ...testEnv(redis), PORT: String(port), LOG_LEVEL: 'info', API_PROCESSES: '1', WORKER_PROCESSES: '1' })
    await gateway.until(/Point Chatwoot's webhook at/)
    await gateway.until(/workers started/)
    gateway.child.kill('SIGTERM')
    expect(await gateway.child.exited).toBe(0)
    const lines = plain(gateway.shown()).split('\n').filter(Boolean)
    expect(gateway.shown()).toContain('\x1b[32mINFO \x1b[0m')
    expect(lines.find((l) => l.includes('api listening'))).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  api listening  port=${port} host=0\\.0\\.0\\.0 instances=2  \\(pid \\d+\\)$`))
    expect(lines.find((l) => l.includes('child started'))).toMatch(/INFO  child started  role=api slot=0 childPid=\d+/)
    expect(lines.filter((l) => l.trimStart().startsWith('{'))).toEqual([])
  })

  test('LOG_FORMAT=json keeps JSON lines on a terminal; NO_COLOR drops the colours', async () => {
    const json = inTerminal(['api'], { ...testEnv(redis), PORT: String(await freePort()), LOG_LEVEL: 'info', LOG_FORMAT: 'json' })
    await json.until(/"msg":"api listening"/)
    json.child.kill('SIGTERM')
    expect(await json.child.exited).toBe(0)
    const uncoloured = inTerminal(['api'], { ...testEnv(redis), PORT: String(await freePort()), LOG_LEVEL: 'info', NO_COLOR: '1' })
    await uncoloured.until(/INFO {2}api listening/)
    uncoloured.child.kill('SIGTERM')
    expect(await uncoloured.child.exited).toBe(0)
    expect(uncoloured.shown()).not.toContain('\x1b[')
  })
})
