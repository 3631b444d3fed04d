import { afterAll, describe, expect, test } from 'bun:test'
import { Redis } from 'ioredis'
import { freePort } from '../../src/process/embedded-redis.ts'
import { startFleet, startLoad, summary } from '../faults/fleet.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { ACME_TOKEN } from '../helpers/deps.ts'
import { startApiProcess } from '../helpers/process.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { REDIS_PASSWORD, startSentinelSet } from '../helpers/sentinel.ts'

let set: Awaited<ReturnType<typeof startSentinelSet>> | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined
let unused: TestRedis | undefined
/** An API process with REDIS_WAIT_REPLICAS=1, stopped here too should the test fail before it does. */
let waiting: Awaited<ReturnType<typeof startApiProcess>> | undefined

afterAll(async () => {
  await waiting?.stop()
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
    // With REDIS_WAIT_REPLICAS=1 an event counts as queued once the replica has it too: here it does.
    const api = (waiting = await startApiProcess({ ...fleet.env, PORT: String(await freePort()), REDIS_WAIT_REPLICAS: '1' }))
    const confirmed = await fetch(`http://127.0.0.1:${api.port}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 4_999_999 })),
    })
    expect(await confirmed.json()).toMatchObject({ status: 'queued' })
    // Events arriving together share their WAITs (each blocks its connection until the replica answers).
    const master = new Redis({ host: '127.0.0.1', port: set.masterPort, password: REDIS_PASSWORD })
    const waitCalls = async () => Number(/^cmdstat_wait:calls=(\d+)/m.exec(await master.info('commandstats'))?.[1] ?? 0)
    const waitsBefore = await waitCalls()
    const together = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const response = await fetch(`http://127.0.0.1:${api.port}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 4_999_900 + i })),
        })
        return ((await response.json()) as { status: string }).status
      }),
    )
    expect(together).toEqual(Array(30).fill('queued'))
    expect(await waitCalls()).toBeLessThan(waitsBefore + 30)
    master.disconnect()
    // A replica that cannot confirm: the event's job is on the master only, so it is spooled as well.
    const resumeReplica = set.stallReplica()
    const unconfirmed = await fetch(`http://127.0.0.1:${api.port}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: toChatwootJson(chatwoot.messageCreatedIncoming({ messageId: 4_999_998 })),
    }).finally(resumeReplica)
    expect(await unconfirmed.json()).toMatchObject({ status: 'spooled' })
    await api.stop()
    waiting = undefined

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
