import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, tempDir, testEnv } from '../helpers/deps.ts'
import { startApiProcess, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let nginx: Bun.Subprocess<'ignore', 'pipe', 'pipe'> | undefined
const apis: HookgateProcess[] = []
let base: string
let config: string
const prefix = tempDir()

/** nginx/nginx.conf as shipped, with the three API processes of this test as its upstream and a free port. */
function testConfig(apiPorts: number[], port: number): string {
  const shipped = readFileSync(join(import.meta.dir, '../../nginx/nginx.conf'), 'utf8')
  const servers = apiPorts.map((p) => `server 127.0.0.1:${p} max_fails=3 fail_timeout=5s;`).join('\n        ')
  return shipped
    .replace(/\n\s*server api:3000[^\n]*/, `\n        ${servers}`)
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replace('worker_processes auto;', `worker_processes 2;\npid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log;`)
    .replace('http {', `http {\n    access_log ${prefix}/access.log;\n    client_body_temp_path ${prefix};\n    proxy_temp_path ${prefix};`)
}

/** nginx prints nothing when it starts well: wait until it answers (5 s at most). */
async function untilAnswering(url: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return true
    await Bun.sleep(50)
  }
  return false
}

beforeAll(async () => {
  redis = await startRedis()
  const env = testEnv(redis, { PORT: '0', TRUSTED_PROXIES: '127.0.0.1' })
  apis.push(...(await Promise.all([startApiProcess(env), startApiProcess(env), startApiProcess(env)])))
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  config = join(prefix, 'nginx.conf')
  writeFileSync(config, testConfig(apis.map((a) => (a as HookgateProcess & { port: number }).port), port))
})

afterAll(async () => {
  nginx?.kill('SIGTERM')
  await nginx?.exited
  await Promise.all(apis.map((a) => a.stop('SIGKILL')))
  await redis.stop()
})

describe('nginx/nginx.conf in front of three API processes', () => {
  test('passes nginx -t', async () => {
    const check = Bun.spawn(['nginx', '-t', '-c', config, '-p', prefix], { stdout: 'pipe', stderr: 'pipe' })
    const output = await new Response(check.stderr).text()
    expect(await check.exited).toBe(0)
    expect(output).toContain('syntax is ok')
  })

  test('spreads requests over every API process, and webhooks go through', async () => {
    nginx = Bun.spawn(['nginx', '-c', config, '-p', prefix, '-g', 'daemon off;'], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
    expect(await untilAnswering(`${base}/health`)).toBe(true)

    const pids = new Set<number>()
    for (let i = 0; i < 60; i++) pids.add(((await (await fetch(`${base}/health`)).json()) as { pid: number }).pid)
    expect([...pids].sort()).toEqual(apis.map((a) => a.proc.pid).sort())

    const accepted = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 650_000 })),
    })
    expect(accepted.status).toBe(202)
    const tooBig = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(2 * 1024 * 1024),
    })
    expect(tooBig.status).toBe(413)
  })
})
