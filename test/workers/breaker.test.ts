import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { createLogger } from '../../src/log.ts'
import { BREAKER_SYNC_MS, createBreaker, type Breaker } from '../../workers/breaker.ts'
import { logCapture } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let client: Redis
let breaker: Breaker
const logs = logCapture()
const OPEN_MS = 150

beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url)
  breaker = createBreaker({ redis: client, prefix: '{t}', config: { failureThreshold: 2, openMs: OPEN_MS }, log: createLogger({ level: 'info' }, logs.stream) })
})
afterAll(async () => {
  client.disconnect()
  await redis.stop()
})

describe('destination circuit breaker', () => {
  test('opens after consecutive failures, lets one probe through when the time is up, and closes on its success', async () => {
    const url = 'https://bot-a.test/hook?secret=x'
    expect(await breaker.allow(url, 'a1', 1000)).toEqual({ allowed: true })
    await breaker.record(url, false, 'a1')
    expect(await breaker.allow(url, 'a2', 1000)).toEqual({ allowed: true })
    await breaker.record(url, false, 'a2')

    const refused = await breaker.allow(url, 'a3', 1000)
    expect(refused.allowed).toBe(false)
    expect(!refused.allowed && refused.waitMs).toBeWithin(1, OPEN_MS + 1)
    expect(logs.lines.filter((l) => l.includes('breaker opened') && l.includes('bot-a.test'))).toHaveLength(1)
    expect(logs.lines.join('\n')).not.toContain('secret=x')

    await Bun.sleep(OPEN_MS + 10) // the open time is the event awaited here
    expect(await breaker.allow(url, 'probe', 1000)).toEqual({ allowed: true })
    expect((await breaker.allow(url, 'other', 1000)).allowed).toBe(false) // one probe at a time
    await breaker.record(url, true, 'probe')
    expect(await breaker.allow(url, 'after', 1000)).toEqual({ allowed: true })
  })

  test('a failed probe opens it again at once; one success in between resets the count', async () => {
    const url = 'https://bot-b.test/hook'
    await breaker.record(url, false, 'a')
    await breaker.record(url, true, 'b')
    await breaker.record(url, false, 'c')
    expect((await breaker.allow(url, 'x', 1000)).allowed).toBe(true)
    await breaker.record(url, false, 'x')
    expect((await breaker.allow(url, 'y', 1000)).allowed).toBe(false)
    await Bun.sleep(OPEN_MS + 10)
    expect(await breaker.allow(url, 'probe', 1000)).toEqual({ allowed: true })
    await breaker.record(url, false, 'probe')
    expect((await breaker.allow(url, 'z', 1000)).allowed).toBe(false)
  })

  test('destinations do not share a breaker', async () => {
    for (let i = 0; i < 3; i++) await breaker.record('https://bot-c.test/down', false, `o${i}`)
    expect((await breaker.allow('https://bot-c.test/down', 'a', 1000)).allowed).toBe(false)
    expect((await breaker.allow('https://bot-c.test/up', 'a', 1000)).allowed).toBe(true)
  })

  test('a healthy destination costs Redis one script a second per process, and another process\'s open breaker is seen within that second', async () => {
    const url = 'https://bot-d.test/hook'
    const scripts = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
    const before = await scripts()
    const started = Date.now()
    for (let i = 0; i < 100; i++) {
      expect(await breaker.allow(url, `h${i}`, 1000)).toEqual({ allowed: true })
      expect(await breaker.record(url, true, `h${i}`)).toBe(false)
    }
    expect((await scripts()) - before).toBe(1 + Math.floor((Date.now() - started) / BREAKER_SYNC_MS))

    // Another worker process: its own view of the same breaker in Redis.
    const other = createBreaker({ redis: client, prefix: '{t}', config: { failureThreshold: 2, openMs: 5000 }, log: createLogger({ level: 'silent' }) })
    await other.record(url, false, 'o1')
    expect(await other.record(url, false, 'o2')).toBe(true)
    const openedAt = Date.now()
    // This process still trusts what it heard less than a second ago, then asks again and is refused.
    while ((await breaker.allow(url, 'p', 1000)).allowed) await Bun.sleep(20)
    expect(Date.now() - openedAt).toBeLessThanOrEqual(BREAKER_SYNC_MS + 100)
  })
})
