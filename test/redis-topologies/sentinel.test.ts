import { afterAll, describe, expect, test } from 'bun:test'
import { startFleet, startLoad, summary } from '../faults/fleet.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startSentinelSet } from '../helpers/sentinel.ts'

let set: Awaited<ReturnType<typeof startSentinelSet>> | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined
let unused: TestRedis | undefined

afterAll(async () => {
  await fleet?.stop()
  await set?.stop()
  await unused?.stop()
})

describe('Redis Sentinel: master, replica, three sentinels, passwords on both', () => {
  test('the master is killed under steady load: Sentinel promotes the replica, hookgate follows, and every accepted event is delivered once', async () => {
    set = await startSentinelSet()
    await set.ready()
    // startFleet wants a test Redis for its defaults; the gateway and the test both go through the sentinels instead.
    unused = await startRedis()
    fleet = await startFleet(unused, set.env, undefined, set.connection)
    const load = startLoad(fleet.base)
    await load.answered(200)
    await set.killMaster()
    const killedAt = Date.now()
    // Sentinel needs down-after-milliseconds (1 s) and an election: keep the load on until it names the replica.
    while ((await set.currentMasterPort()) !== set.replicaPort) await load.answered(20)
    const promotedAfterMs = Date.now() - killedAt
    await load.says('queued') // writes reach Redis again: the new master
    await load.answered(200)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary(`sentinel failover (promoted after ${promotedAfterMs} ms)`, report, outcome, outcome.settledAt - killedAt)
    expect(Object.keys(report.statuses).filter((status) => Number(status) >= 500 || status === '0')).toEqual([])
    expect(outcome.missing).toEqual([])
    expect(outcome.duplicated).toEqual([])
  }, 120_000)
})
