import { afterEach, describe, expect, test } from 'bun:test'
import type { Socket, TCPSocketListener } from 'bun'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startFleet, startLoad, summary } from './fleet.ts'

let redis: TestRedis | undefined
let fleet: Awaited<ReturnType<typeof startFleet>> | undefined
let front: TCPSocketListener | undefined

afterEach(async () => {
  front?.stop(true)
  await fleet?.stop()
  await redis?.stop()
  front = fleet = redis = undefined
})

/** Breakers that reopen quickly, so a destination's recovery shows within the test. */
const QUICK_BREAKER = { BREAKER_OPEN_MS: '500' }

async function underLoad(name: string, fault: () => void, routeTo?: (recorderUrl: string) => string) {
  redis = await startRedis({ aof: 'always' })
  fleet = await startFleet(redis, QUICK_BREAKER, routeTo)
  fault()
  const faultAt = Date.now()
  const load = startLoad(fleet.base, 4)
  await load.answered(300)
  const report = await load.stop()
  const outcome = await fleet.settle(report.accepted, 90_000)
  summary(name, report, outcome, outcome.settledAt - faultAt)
  expect(Object.keys(report.statuses).filter((status) => status !== '202')).toEqual([])
  expect(outcome.missing).toEqual([])
  // What the destination did not take (timed out, 5xx, reset) is retried; what it took is never sent again.
  expect(outcome.duplicated).toEqual([])
}

describe('destination faults under steady load', () => {
  test('a destination that hangs for a while: deliveries time out, are retried, and all arrive once', async () => {
    await underLoad('destination hangs (first 30 requests)', () => fleet!.destination.answer(...Array<'hang'>(30).fill('hang')))
  }, 120_000)

  test('a destination that answers 500 for a while: retried with backoff, its breaker opens and closes, all arrive once', async () => {
    await underLoad('destination 500 (first 60 requests)', () =>
      fleet!.destination.answer(...Array.from({ length: 60 }, () => ({ status: 500, json: { error: 'down' } }))),
    )
  }, 120_000)

  test('a destination that resets its first connections: retried, and all arrive once', async () => {
    let resets = 25
    // A TCP front before the recorder: the first connections are reset on their first bytes, the rest passed through.
    const resettingFront = (recorderUrl: string) => {
      const target = new URL(recorderUrl)
      front = Bun.listen<{ upstream?: Promise<Socket> }>({
        hostname: '127.0.0.1',
        port: 0,
        socket: {
          open(socket) {
            socket.data = {} // one per connection (the listener's `data` would be shared)
          },
          data(socket, chunk) {
            if (!socket.data.upstream && resets > 0) {
              resets--
              socket.terminate()
              return
            }
            socket.data.upstream ??= Bun.connect({
              hostname: target.hostname,
              port: Number(target.port),
              socket: { data: (_, reply) => void socket.write(reply), close: () => void socket.end() },
            })
            void socket.data.upstream.then((upstream) => upstream.write(chunk))
          },
          close(socket) {
            void socket.data.upstream?.then((upstream) => upstream.end())
          },
        },
        data: {},
      })
      return `http://127.0.0.1:${front.port}`
    }
    await underLoad('destination resets (first 25 connections)', () => {}, resettingFront)
    expect(resets).toBe(0)
  }, 120_000)
})
