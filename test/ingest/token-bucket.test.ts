import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { MemoryTokenBucket, type BucketParams } from '../../src/ingest/memory-bucket.ts'
import tokenBucketScript from '../../src/ingest/token-bucket.lua' with { type: 'text' }
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
let client: Redis
let n = 0
beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url)
})
afterAll(async () => {
  client.disconnect()
  await redis.stop()
})

/** The Lua bucket and the memory bucket (frozen clock) take the same sequence; both answers are returned. */
async function both(params: BucketParams, takes: number) {
  const key = `bucket-${n++}`
  const memory = new MemoryTokenBucket(params, () => 1_000_000)
  const results: { lua: [number, number]; memory: [number, number] }[] = []
  for (let i = 0; i < takes; i++) {
    const lua = (await client.eval(tokenBucketScript, 1, key, 1, params.capacity, params.ratePerSecond, params.ceilingPerSecond, params.maxDelayMs)) as [number, number]
    results.push({ lua, memory: memory.take(key, 1) })
  }
  return results
}

describe('token-bucket.lua and its in-memory twin', () => {
  test('admit the burst, then refuse with the time to the next token', async () => {
    const results = await both({ capacity: 3, ratePerSecond: 1, ceilingPerSecond: 0, maxDelayMs: 0 }, 4)
    for (const { lua, memory } of results) {
      expect(lua[0]).toBe(memory[0])
      expect(Math.abs(lua[1] - memory[1])).toBeLessThan(100) // Redis's clock moves between calls; the twin's does not
    }
    expect(results.map((r) => r.memory)).toEqual([[1, 0], [2, 0], [3, 0], [4, 1000]])
  })

  test('shape: borrow up to the longest delay, each borrowed token one interval later', async () => {
    const results = await both({ capacity: 2, ratePerSecond: 10, ceilingPerSecond: 0, maxDelayMs: 300 }, 6)
    expect(results.map((r) => r.memory)).toEqual([[1, 0], [2, 0], [2, 100], [2, 200], [2, 300], [3, 100]])
    for (const { lua, memory } of results) {
      expect(lua[0]).toBe(memory[0])
      expect(Math.abs(lua[1] - memory[1])).toBeLessThan(60)
    }
  })

  test('the ceiling refuses first, even when shaping could absorb more', async () => {
    const results = await both({ capacity: 1, ratePerSecond: 1, ceilingPerSecond: 3, maxDelayMs: 60_000 }, 4)
    expect(results.map((r) => r.memory[0])).toEqual([1, 1, 1, 2])
    expect(results.map((r) => r.lua[0])).toEqual([1, 1, 1, 2])
    expect(results[3]!.memory[1]).toBe(334)
  })

  test('refills continuously: a partly refilled bucket grants whole tokens only', () => {
    let now = 0
    const bucket = new MemoryTokenBucket({ capacity: 2, ratePerSecond: 4, ceilingPerSecond: 0, maxDelayMs: 0 }, () => now)
    expect(bucket.take('k', 1)[0]).toBe(1)
    expect(bucket.take('k', 1)[0]).toBe(2)
    expect(bucket.take('k', 1)).toEqual([3, 250])
    now = 200
    expect(bucket.take('k', 1)).toEqual([3, 50])
    now = 250
    expect(bucket.take('k', 1)).toEqual([2, 0])
    now = 10_000
    expect(bucket.take('k', 1)).toEqual([1, 0])
  })

  test('the Lua bucket expires its key once it would be full again', async () => {
    await both({ capacity: 5, ratePerSecond: 10, ceilingPerSecond: 0, maxDelayMs: 0 }, 1)
    const ttl = await client.pttl(`bucket-${n - 1}`)
    expect(ttl).toBeGreaterThan(1000)
    expect(ttl).toBeLessThanOrEqual(1500)
  })
})
