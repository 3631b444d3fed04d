import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, testEnv } from '../helpers/deps.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let gateway: HookgateProcess
let base: string

beforeAll(async () => {
  redis = await startRedis()
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  gateway = spawnHookgate(['start'], { ...testEnv(redis), PORT: String(port), API_PROCESSES: '2', WORKER_PROCESSES: '1', LOG_LEVEL: 'info' })
  await gateway.waitFor(/Point Chatwoot's webhook at/)
  await gateway.waitFor(/"msg":"api listening"/, 15_000, 2)
})
afterAll(async () => {
  await gateway.stop('SIGKILL')
  await redis.stop()
})

/** The pids that answer /health over fresh connections, until `want` distinct ones have or `tries` ran out. */
async function answeringPids(want: number, tries = 300): Promise<Set<number>> {
  const pids = new Set<number>()
  for (let i = 0; i < tries && pids.size < want; i++) {
    const response = await fetch(`${base}/health`, { headers: { connection: 'close' }, keepalive: false }).catch(() => undefined)
    if (response?.ok) pids.add(((await response.json()) as { pid: number }).pid)
  }
  return pids
}

describe('hookgate start (the supervisor)', () => {
  test('runs API_PROCESSES API processes on one port, and connections reach all of them', async () => {
    const pids = await answeringPids(2)
    expect(pids.size).toBe(2)
    expect(pids.has(gateway.proc.pid)).toBe(false)
  })

  test('restarts an API process that dies, and the port keeps answering meanwhile', async () => {
    const [victim] = await answeringPids(1)
    process.kill(victim!, 'SIGKILL')
    // Once it is gone (connections the kernel had queued on its socket are reset: SO_REUSEPORT), and before the
    // restart (at least 250 ms later), the other process answers every new connection.
    await gateway.waitFor(/"msg":"child died; restarting it"/)
    const duringGap = await Promise.all(
      Array.from({ length: 20 }, () => fetch(`${base}/health`, { headers: { connection: 'close' }, keepalive: false }).then((r) => r.status)),
    )
    expect(duringGap).toEqual(Array(20).fill(200))
    await gateway.waitFor(/"msg":"api listening"/, 10_000, 3) // the two first ones, then the restarted one
    const pids = await answeringPids(2)
    expect(pids.size).toBe(2)
    expect(pids.has(victim!)).toBe(false)
  })

  test('turns on net.ipv4.tcp_migrate_req, so that a stopping API process hands its queued connections over', async () => {
    expect(readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim()).toBe('1')
  })

  test('a rolling restart of one API process (SIGTERM) under load loses no request', async () => {
    const [victim] = await answeringPids(1)
    const listening = gateway.output().split('"msg":"api listening"').length - 1
    let stop = false
    let sent = 0
    const failures: string[] = []
    const client = async () => {
      while (!stop) {
        const i = sent++
        const outcome = await fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 700_000 + i })),
          keepalive: false,
        }).then(
          (r) => (r.status === 202 ? undefined : `status ${r.status}`),
          (error: Error) => error.message,
        )
        if (outcome) failures.push(outcome)
      }
    }
    const clients = Array.from({ length: 8 }, client)
    await Bun.sleep(100)
    process.kill(victim!, 'SIGTERM')
    await gateway.waitFor(/"msg":"api listening"/, 10_000, listening + 1)
    await Bun.sleep(100)
    stop = true
    await Promise.all(clients)
    expect(sent).toBeGreaterThan(50)
    expect(failures).toEqual([])
  })

  test('SIGTERM under load: every accepted request answered, children stopped, exit 0', async () => {
    let next = 0
    let answered = 0
    let signalled: Promise<number> | undefined
    const send = (i: number) =>
      fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 600_000 + i })),
      }).then(
        (r) => r.status,
        () => 'refused' as const,
      )
    // Eight clients sending back to back; the signal comes once 40 requests have been answered.
    const statuses = (
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const seen: (number | 'refused')[] = []
          while (next < 400) {
            const status = await send(next++)
            seen.push(status)
            if (++answered === 40) signalled = gateway.stop('SIGTERM')
            if (status === 'refused') break
          }
          return seen
        }),
      )
    ).flat()
    expect(await signalled).toBe(0)
    // A request either got its answer (202) or was never accepted (connection refused once the port closed).
    expect(statuses.filter((s) => s !== 202 && s !== 'refused')).toEqual([])
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(40)
    expect(gateway.output()).toContain('all children stopped')
  })
})

describe('a crash-looping child', () => {
  test('makes the supervisor stop everything and exit 1, saying so', async () => {
    // A plain listener (no SO_REUSEPORT) on the port: every API process dies at once, binding it.
    const blocker = Bun.listen({ hostname: '0.0.0.0', port: await freePort(), socket: { data() {} } })
    const looping = spawnHookgate(['start'], {
      ...testEnv(redis),
      PORT: String(blocker.port),
      API_PROCESSES: '1',
      WORKER_PROCESSES: '1',
      LOG_LEVEL: 'info',
    })
    try {
      expect(await looping.exit()).toBe(1)
      expect(looping.output()).toContain('"msg":"child keeps dying; stopping the gateway"')
      expect(looping.output()).toContain('"msg":"all children stopped"')
    } finally {
      blocker.stop(true)
      await looping.stop('SIGKILL')
    }
  }, 30_000)
})
