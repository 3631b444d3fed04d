import { afterEach, describe, expect, test } from 'bun:test'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startFleet, startLoad, summary } from './fleet.ts'

let redis: TestRedis | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined

afterEach(async () => {
  await fleet?.stop()
  await redis?.stop()
  fleet = undefined
  redis = undefined
})

describe('Redis faults under steady load', () => {
  test('Redis killed (SIGKILL) for seconds, then restarted with its AOF: no 5xx, every accepted event delivered once', async () => {
    redis = await startRedis({ aof: 'always' })
    fleet = await startFleet(redis)
    const load = startLoad(fleet.base)
    await load.answered(150)
    await redis.kill()
    await load.answered(300) // all of them while Redis is gone
    await redis.start()
    const backAt = Date.now()
    await load.says('queued') // writes reach Redis again
    await load.answered(300)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary('redis SIGKILL + restart', report, outcome, outcome.settledAt - backAt)

    expect(Object.keys(report.statuses).filter((status) => Number(status) >= 500 || status === '0')).toEqual([])
    expect(report.spooled).toBeGreaterThanOrEqual(300)
    expect(outcome.missing).toEqual([])
    expect(outcome.duplicated).toEqual([])
  }, 120_000)

  test('Redis frozen (SIGSTOP) for 3 s: the breaker trips, answers stay fast (spooled), and all is delivered once after SIGCONT', async () => {
    redis = await startRedis({ aof: 'always' })
    fleet = await startFleet(redis)
    const load = startLoad(fleet.base)
    await load.answered(150)
    redis.signal('SIGSTOP')
    const frozenAt = Date.now()
    await load.answered(200)
    const health = (await (await fetch(`${fleet.base}/health`)).json()) as { redis: string; spool: { pending: number } }
    expect(health.redis).toBe('down')
    await Bun.sleep(Math.max(0, 3000 - (Date.now() - frozenAt))) // the fault itself: frozen for 3 s
    redis.signal('SIGCONT')
    const thawedAt = Date.now()
    await load.says('queued')
    await load.answered(300)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary('redis SIGSTOP 3 s + SIGCONT', report, outcome, outcome.settledAt - thawedAt)

    expect(Object.keys(report.statuses).filter((status) => Number(status) >= 500 || status === '0')).toEqual([])
    expect(report.spooled).toBeGreaterThan(0)
    // Once the breaker is open, a frozen Redis costs a request nothing: only the first few wait out the budget.
    const duringFreeze = report.timings.filter((t) => t.at >= frozenAt + 1000 && t.at < thawedAt).map((t) => t.ms).sort((a, b) => a - b)
    expect(duringFreeze.length).toBeGreaterThan(50)
    expect(duringFreeze[Math.floor(duringFreeze.length * 0.95)]!).toBeLessThan(300)
    expect(outcome.missing).toEqual([])
    expect(outcome.duplicated).toEqual([])
  }, 120_000)
})
