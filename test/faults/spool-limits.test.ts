import { afterEach, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { appendFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/process/embedded-redis.ts'
import { QUEUE } from '../../src/queue/names.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN, tempDir, testEnv } from '../helpers/deps.ts'
import { startApiProcess, type HookgateProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis | undefined
let api: HookgateProcess | undefined

afterEach(async () => {
  await api?.stop('SIGKILL')
  await redis?.stop()
  api = undefined
  redis = undefined
})

let nextId = 6_000_000
const post = (base: string) =>
  fetch(`${base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: nextId++ })),
  })

/** An API process whose Redis is gone (killed), with the spool settings given. */
async function apiWithoutRedis(env: Record<string, string>) {
  redis = await startRedis()
  const port = await freePort()
  const processEnv: Record<string, string | undefined> = { ...testEnv(redis), PORT: String(port), ...env }
  const started = await startApiProcess(processEnv)
  api = started
  await redis.kill()
  const base = `http://127.0.0.1:${port}`
  return { base, api: started, env: processEnv }
}

describe('when neither Redis nor the spool can take an event', () => {
  test('an unwritable SPOOL_DIR: a clear 503 with Retry-After, said once in the log, and the process stays up', async () => {
    const notADirectory = join(tempDir(), 'a-file')
    writeFileSync(notADirectory, '')
    const { base, api } = await apiWithoutRedis({ SPOOL_DIR: join(notADirectory, 'spool') })
    for (let i = 0; i < 5; i++) {
      const refused = await post(base)
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toBe('5')
      expect(await refused.json()).toMatchObject({ error: 'unavailable', message: expect.stringContaining('spool cannot be written') })
    }
    expect((await fetch(`${base}/health`)).status).toBe(200)
    expect(api.proc.exitCode).toBeNull()
    expect(api.output().split('\n').filter((l) => l.includes('spool directory not writable')).length).toBe(1)
  })

  test('a full disk (SPOOL_DIR on a 32 KiB tmpfs): ENOSPC gives the same clear 503, and the process stays up', async () => {
    const mountPoint = tempDir()
    const mounted = Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=32k', 'tmpfs', mountPoint], { stderr: 'pipe' })
    expect({ mount: mounted.exitCode, stderr: mounted.stderr.toString() }).toEqual({ mount: 0, stderr: '' })
    try {
      const { base, api } = await apiWithoutRedis({ SPOOL_DIR: mountPoint })
      const answers: number[] = []
      for (let i = 0; i < 15; i++) answers.push((await post(base)).status)
      // Some fit on the disk, then ENOSPC: every answer after the first refusal is a refusal too (the disk stays full).
      const firstRefusal = answers.indexOf(503)
      expect(firstRefusal).toBeGreaterThan(0)
      expect(answers.slice(0, firstRefusal).every((status) => status === 202)).toBe(true)
      expect(answers.slice(firstRefusal).every((status) => status === 503)).toBe(true)
      expect(api.output()).toContain('spool write failed')
      expect((await fetch(`${base}/health`)).status).toBe(200)
      expect(api.proc.exitCode).toBeNull()
    } finally {
      await api?.stop('SIGKILL')
      Bun.spawnSync(['umount', mountPoint])
    }
  })

  test('a full spool (SPOOL_MAX_BYTES): 503 with Retry-After past the limit, and what it took is kept', async () => {
    const { base } = await apiWithoutRedis({ SPOOL_MAX_BYTES: '12000' })
    const answers = []
    for (let i = 0; i < 5; i++) answers.push((await post(base)).status)
    // Each event takes about 3.4 KB in the spool (its body escaped inside a JSON line): three fit in 12,000 bytes.
    expect(answers).toEqual([202, 202, 202, 503, 503])
    const refused = await post(base)
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(await refused.json()).toMatchObject({ error: 'unavailable', message: expect.stringContaining('spool is full') })
    expect(await (await fetch(`${base}/health`)).json()).toMatchObject({ redis: 'down', spool: { pending: 3 } })
  })

  test('an API process killed with events spooled: the next one replays them; a torn last record is skipped, said in the log', async () => {
    const { base, api: first, env } = await apiWithoutRedis({})
    for (let i = 0; i < 4; i++) expect((await post(base)).status).toBe(202)
    await first.stop('SIGKILL')
    // It died mid-write of a fifth: half a line at the end of its file.
    const spoolDir = join(env.HOOKGATE_DATA_DIR!, 'spool')
    const [file] = readdirSync(spoolDir).filter((name) => name.endsWith('.spool'))
    appendFileSync(join(spoolDir, file!), '0badc0de {"jobId":"acme.message_created.m1","owner":"x","da')
    await redis!.start()
    const next = await startApiProcess({ ...env, PORT: String(await freePort()) })
    api = next
    await next.waitFor(/"events":4,"msg":"spooled events moved into the queue"/, 25_000) // after the dead one's heartbeat is 10 s stale
    expect(next.output()).toContain('spool: torn last record skipped')
    const queued = new Queue(QUEUE.webhook, { connection: { url: redis!.url }, prefix: env.REDIS_KEY_PREFIX })
    expect(await queued.getWaitingCount()).toBe(4)
    await queued.close()
  }, 30_000)
})
