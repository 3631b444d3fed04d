import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '../../src/process/embedded-redis.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { tempDir } from '../helpers/deps.ts'
import { spawnHookgate, type HookgateProcess } from '../helpers/process.ts'

const running: HookgateProcess[] = []
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')))
})

describe('hookgate start with no REDIS_URL and no instances file', () => {
  test('runs its own Redis, prints the webhook URL, accepts on it, keeps the token, and stops cleanly', async () => {
    const dataDir = tempDir()
    const port = await freePort()
    const env = { PORT: String(port), HOOKGATE_DATA_DIR: dataDir, LOG_LEVEL: 'info' }
    const gateway = spawnHookgate(['start'], env)
    running.push(gateway)
    const urlLine = await gateway.waitFor(/\/webhook\/chatwoot\/default\?token=/)
    const url = urlLine.trim()
    expect(url).toStartWith(`http://localhost:${port}/webhook/chatwoot/default?token=`)
    const redisPort = Number(/"port":(\d+),"dir":.*"msg":"embedded redis started"/.exec(gateway.output())?.[1])
    expect(redisPort).toBeGreaterThan(0)

    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(chatwoot.messageCreatedIncoming()),
    })
    expect(response.status).toBe(202)
    expect(existsSync(join(dataDir, 'redis', 'appendonlydir'))).toBe(true)

    expect(await gateway.stop('SIGTERM')).toBe(0)
    expect(gateway.output()).toContain('embedded redis stopped')
    const refused = await fetch(`http://127.0.0.1:${redisPort}`).then(() => false, () => true)
    expect(refused).toBe(true)

    // The same data dir keeps the same token, so the URL pasted into Chatwoot stays valid.
    const again = spawnHookgate(['start'], env)
    running.push(again)
    expect((await again.waitFor(/\/webhook\/chatwoot\/default\?token=/)).trim()).toBe(url)
    const repeat = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: toChatwootJson(chatwoot.messageCreatedIncoming()) })
    expect(await repeat.json()).toMatchObject({ status: 'already_queued' }) // the job survived the restart (AOF)
    expect(await again.stop('SIGTERM')).toBe(0)
  })

  test('without redis-server on PATH, says how to get one and exits 1', async () => {
    const bin = join(tempDir(), 'bin')
    mkdirSync(bin)
    symlinkSync(process.execPath, join(bin, 'bun'))
    const gateway = spawnHookgate(['start'], { PATH: bin, HOOKGATE_DATA_DIR: tempDir(), PORT: String(await freePort()) })
    expect(await gateway.exit()).toBe(1)
    expect(gateway.output()).toContain('apt-get install redis-server')
    expect(gateway.output()).toContain('REDIS_URL=')
  })
})
