import { afterAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { startFleet, startLoad, summary } from '../faults/fleet.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN } from '../helpers/deps.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { REDIS_PASSWORD, startSentinelSet } from '../helpers/sentinel.ts'

let set: Awaited<ReturnType<typeof startSentinelSet>> | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined
let unused: TestRedis | undefined

afterAll(async () => {
  await fleet?.stop()
  await set?.stop()
  await unused?.stop()
})

describe('Redis Sentinel: master, two replicas, three sentinels, passwords on both', () => {
  test('the master is killed under steady load: Sentinel promotes a replica, hookgate follows, and every accepted event is delivered once', async () => {
    set = await startSentinelSet()
    await set.ready()
    // startFleet wants a test Redis for its defaults; the gateway and the test both go through the sentinels instead.
    unused = await startRedis()
    // Replication is asynchronous: only with REDIS_WAIT_REPLICAS does an acknowledged event survive its master's death.
    fleet = await startFleet(unused, { ...set.env, REDIS_WAIT_REPLICAS: '1' }, undefined, set.connection)
    const post = async (messageId: number) => {
      const response = await fetch(`${fleet!.base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId })),
      })
      return ((await response.json()) as { status: string }).status
    }
    expect(await post(4_999_999)).toBe('queued')
    // Events arriving together share their WAITs (each blocks its connection until a replica answers).
    const master = new Redis({ host: '127.0.0.1', port: set.masterPort, password: REDIS_PASSWORD })
    const waitCalls = async () => Number(/^cmdstat_wait:calls=(\d+)/m.exec(await master.info('commandstats'))?.[1] ?? 0)
    const waitsBefore = await waitCalls()
    const together = await Promise.all(Array.from({ length: 30 }, (_, i) => post(4_999_900 + i)))
    expect(together).toEqual(Array(30).fill('queued'))
    expect(await waitCalls()).toBeLessThan(waitsBefore + 30)
    master.disconnect()
    // Replicas that cannot confirm: the event's job is on the master only, so it is spooled as well.
    const resumeReplicas = set.stallReplicas()
    expect(await post(4_999_998).finally(resumeReplicas)).toBe('spooled')

    const load = startLoad(fleet.base)
    await load.answered(200)
    await set.killMaster()
    const killedAt = Date.now()
    // Sentinel needs down-after-milliseconds (3 s) and an election: keep the load on until it names a replica.
    while ((await set.currentMasterPort()) === set.masterPort) await load.answered(20)
    const promotedAfterMs = Date.now() - killedAt
    await load.says('queued') // writes reach the new master again, and its other replica confirms them
    await load.answered(200)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary(`sentinel failover (promoted after ${promotedAfterMs} ms; switched to ${set.switches().join(', then ')})`, report, outcome, outcome.settledAt - killedAt)
    expect(Object.keys(report.statuses).filter((status) => Number(status) >= 500 || status === '0')).toEqual([])
    expect(outcome.missing).toEqual([])
    // With a replica to confirm them again, the spooled events' files go.
    expect(await fleet.spoolLeft()).toEqual([])
    // A delivery made in the instant before the kill may be made again, with the same webhook-id: its marker died
    // with the master. One first made after the kill, never.
    const deliveriesOf = (id: number) => fleet!.destination.requests.filter((request) => (JSON.parse(request.body) as { id: number }).id === id)
    for (const id of outcome.duplicated) {
      const [first, ...again] = deliveriesOf(id)
      expect(first!.at).toBeLessThan(killedAt)
      expect(again.map((request) => request.headers['webhook-id'])).toEqual(again.map(() => first!.headers['webhook-id']))
    }
  }, 120_000)
})
