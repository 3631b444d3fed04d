import { afterAll, describe, expect, test } from 'bun:test'
import { Cluster } from 'ioredis'
import { eventLogKey } from '../../src/queue/names.ts'
import { LOAD_CONVERSATIONS, loadMessage, startFleet, startLoad, summary } from '../faults/fleet.ts'
import { chatwoot, toChatwootJson } from '../fixtures/chatwoot.ts'
import { startCluster } from '../helpers/cluster.ts'
import { ACME_TOKEN } from '../helpers/deps.ts'
import { loadConfig } from '../../src/config/config.ts'
import { routableEvent } from '../../src/ingest/routes.ts'
import { prefixSlot, shardIndex, shardPrefixes } from '../../src/queue/shards.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let cluster: Awaited<ReturnType<typeof startCluster>> | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined
let client: Cluster | undefined
let unused: TestRedis | undefined

afterAll(async () => {
  client?.disconnect()
  await fleet?.stop()
  await cluster?.stop()
  await unused?.stop()
})

describe('Redis Cluster: three masters', () => {
  test('the whole path works (accept, dedupe, rate limit, deliver, event log, leader) and keys land on every master', async () => {
    cluster = await startCluster()
    client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
    unused = await startRedis()
    fleet = await startFleet(unused, cluster.env, undefined, client)
    await cluster.resetStats()

    const load = startLoad(fleet.base)
    await load.answered(600)
    const report = await load.stop()
    const outcome = await fleet.settle(report.accepted)
    summary('cluster, steady load', report, outcome, 0)
    expect(report.statuses).toEqual({ 202: report.sent })
    expect(report.spooled).toBe(0)
    expect(outcome.missing).toEqual([])
    expect(outcome.duplicated).toEqual([])

    // Dedupe: the same event again is already queued.
    const repeat = await fetch(`${fleet.base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: loadMessage([...report.accepted][0]!),
    })
    expect(await repeat.json()).toMatchObject({ status: 'already_queued' })

    // Rate limit: failed requests from one IP meet their bucket (a key of its own slot).
    const refused = await Promise.all(
      Array.from({ length: 80 }, () => fetch(`${fleet!.base}/webhook/chatwoot/acme?token=not-the-token-0123456789`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.status)),
    )
    expect(refused).toContain(401)
    expect(refused).toContain(429)

    // The event log (a stream per instance) and the leader lease.
    expect(await client.xlen(eventLogKey(fleet.env.REDIS_KEY_PREFIX!, 'acme'))).toBeGreaterThan(0)
    await fleet.gateway.waitFor(/"msg":"became leader; running fleet duties"/)

    // Spread: the queues are split into shards (REDIS_QUEUE_SHARDS, 6 by default on a cluster), two per master here:
    // every master holds queue keys, and does its share of the work.
    const name = fleet.env.REDIS_KEY_PREFIX!.slice(1, -1)
    const queueKeys = await cluster.keysPerNode(`{${name}-s*:webhook:*`)
    expect(queueKeys.every((keys) => keys > 0)).toBe(true)
    const commands = await cluster.commandsPerNode()
    const mean = commands.reduce((a, b) => a + b, 0) / commands.length
    console.log(`[cluster] queue keys per master ${queueKeys.join(', ')}; commands per master ${commands.join(', ')} (mean ${Math.round(mean)})`)
    for (const count of commands) expect(Math.abs(count - mean) / mean).toBeLessThanOrEqual(0.35)

    // Order: of two messages of one conversation, the one answered before the other was sent reached the bot first.
    const firstArrival = new Map<number, number>()
    fleet.destination.requests.forEach((request, index) => {
      const id = (JSON.parse(request.body) as { id: number }).id
      if (!firstArrival.has(id)) firstArrival.set(id, index)
    })
    const sent = report.timings.filter((t) => t.status === 202).sort((a, b) => a.at - b.at)
    const outOfOrder = sent.flatMap((later) =>
      sent
        .filter((earlier) => earlier.id % LOAD_CONVERSATIONS === later.id % LOAD_CONVERSATIONS && earlier.at + earlier.ms <= later.at)
        .filter((earlier) => firstArrival.get(earlier.id)! > firstArrival.get(later.id)!)
        .map((earlier) => `${earlier.id} after ${later.id}`),
    )
    expect(outOfOrder).toEqual([])
  }, 120_000)

  // The workers' blocking connections are reset while the cluster fails over; before their Cluster client dropped its
  // ready check (src/redis/connections.ts), such a reset could hang for good and leave the dead master's shards unserved.
  test('a master killed, with a replica per master: the cluster fails over, the spool covers the gap, nothing acknowledged is lost, and the spool empties once the node is back', async () => {
    client?.disconnect()
    await fleet?.stop()
    await cluster?.stop()
    cluster = await startCluster({ replicas: 1 })
    client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
    unused ??= await startRedis()
    // Replication is asynchronous: only with REDIS_WAIT_REPLICAS does an acknowledged event survive its master's death.
    // An event counts as queued once the replica of its shard's master has it too.
    fleet = await startFleet(unused, { ...cluster.env, REDIS_WAIT_REPLICAS: '1' }, undefined, client)
    const { queue } = loadConfig(fleet.env)
    const post = async (payload: ReturnType<typeof chatwoot.messageCreatedIncoming>) => {
      const url = `${fleet!.base}/webhook/chatwoot/acme?token=${ACME_TOKEN}`
      const body = toChatwootJson(payload)
      return (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json()) as { status: string }
    }
    const replicaOfEvent = (payload: ReturnType<typeof chatwoot.messageCreatedIncoming>) => {
      const shard = shardIndex(queue.shards, 'acme', routableEvent(payload).conversation, '')
      return cluster!.replicaOf(prefixSlot(shardPrefixes(queue.prefix, queue.shards)[shard]!))
    }
    const first = chatwoot.messageCreatedIncoming({ messageId: 5_999_999, conversationId: 5_999_999 })
    expect(await post(first)).toMatchObject({ status: 'queued' })
    // Another master's replica stalled: this event's is not asked, and it is queued; its own stalled: spooled too.
    const second = chatwoot.messageCreatedIncoming({ messageId: 5_999_998, conversationId: 5_999_998 })
    const ownReplica = await replicaOfEvent(second)
    const otherReplica = (await Promise.all([0, 6000, 12000].map((slot) => cluster!.replicaOf(slot)))).find((port) => port !== ownReplica)!
    let resume = cluster.stall(otherReplica)
    expect(await post(second).finally(resume)).toMatchObject({ status: 'queued' })
    const third = chatwoot.messageCreatedIncoming({ messageId: 5_999_997, conversationId: 5_999_997 })
    resume = cluster.stall(await replicaOfEvent(third))
    expect(await post(third).finally(resume)).toMatchObject({ status: 'spooled' })

    const load = startLoad(fleet.base)
    await load.answered(200)
    const killed = await cluster.killMaster()
    const killedAt = Date.now()
    await cluster.failedOver(killed)
    const failedOverMs = Date.now() - killedAt
    await load.answered(300)
    const report = await load.stop()
    // The promoted master has no replica: its shards' events are spooled too and their files kept, yet delivered.
    const outcome = await fleet.settle(report.accepted, 60_000)
    summary(`cluster master SIGKILL (failover in ${failedOverMs} ms)`, report, outcome, outcome.settledAt - killedAt)
    expect(Object.keys(report.statuses).filter((status) => status !== '202')).toEqual([])
    expect(report.spooled).toBeGreaterThan(0)
    expect(outcome.missing).toEqual([])
    // The killed node started again, as an orchestrator would, is its successor's replica: it confirms, the files go.
    await cluster.restart(killed)
    expect(await fleet.spoolLeft(30_000)).toEqual([])
  }, 120_000)
})
