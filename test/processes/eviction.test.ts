import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { freePort } from '../../src/process/embedded-redis.ts'
import { testEnv } from '../helpers/deps.ts'
import { spawnHookgate } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis

beforeAll(async () => {
  redis = await startRedis()
  const admin = new Redis(redis.url)
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru')
  admin.disconnect()
})
afterAll(() => redis.stop())

describe('a Redis that may evict keys (maxmemory-policy not noeviction)', () => {
  test('REDIS_EVICTION_POLICY_CHECK=refuse: api, worker and start refuse to start, saying why', async () => {
    for (const role of ['api', 'worker', 'start']) {
      const child = spawnHookgate([role], { ...testEnv(redis), PORT: String(await freePort()), LOG_LEVEL: 'info', REDIS_EVICTION_POLICY_CHECK: 'refuse' })
      expect(await child.exit()).toBe(1)
      expect(child.output()).toContain('maxmemory-policy is allkeys-lru')
      expect(child.output()).toContain('not starting')
    }
  })

  test('by default (warn): it says so loudly, once, and starts', async () => {
    const child = spawnHookgate(['worker'], { ...testEnv(redis), LOG_LEVEL: 'info' })
    await child.waitFor(/"msg":"workers started"/)
    expect(child.output().split('\n').filter((l) => l.includes('maxmemory-policy is allkeys-lru')).length).toBe(1)
    expect(await child.stop()).toBe(0)
  })
})
