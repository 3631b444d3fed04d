import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { freePort } from '../../src/process/embedded-redis.ts'
import { testEnv } from '../helpers/deps.ts'
import { spawnHookgate } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(() => redis.stop())

describe('hookgate check', () => {
  test('validates the configuration, reaches Redis and exits 0', async () => {
    const check = spawnHookgate(['check'], testEnv(redis))
    expect(await check.exit()).toBe(0)
    expect(check.output()).toContain('configuration ok: 2 instance(s)')
    expect(check.output()).toMatch(/redis: reachable, version \d+\.\d+/)
  })

  test('exits 2 naming every bad setting', async () => {
    const check = spawnHookgate(['check'], testEnv(redis, { PORT: 'x', MAX_BODY_BYTES: '1e9' }))
    expect(await check.exit()).toBe(2)
    expect(check.output()).toContain('PORT="x"')
    expect(check.output()).toContain('MAX_BODY_BYTES="1e9"')
  })

  test('exits 1 when Redis cannot be reached', async () => {
    const check = spawnHookgate(['check'], testEnv(redis, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }))
    expect(await check.exit()).toBe(1)
    expect(check.output()).toContain('redis: not reachable')
  })

  test('an unknown command prints usage and exits 2', async () => {
    const run = spawnHookgate(['frobnicate'], {})
    expect(await run.exit()).toBe(2)
    expect(run.output()).toContain('usage: hookgate <command>')
  })
})
