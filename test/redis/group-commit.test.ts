import { describe, expect, test } from 'bun:test'
import { TOO_LATE, groupCommit } from '../../src/redis/group-commit.ts'

/** A send whose calls are answered (each call doubled) when the test releases them, recording what went together. */
function heldSends() {
  const sent: { group: string; calls: number[] }[] = []
  const releases: (() => void)[] = []
  const send = (group: string, calls: number[]) => {
    sent.push({ group, calls })
    return new Promise<number[]>((resolve) => releases.push(() => resolve(calls.map((n) => n * 2))))
  }
  const releaseNext = async () => {
    while (releases.length === 0) await Bun.sleep(1)
    releases.shift()!()
  }
  return { sent, send, releaseNext }
}

describe('groupCommit', () => {
  test('a call goes at once alone; calls that come while it is out go together next, per group, each answered its own', async () => {
    const { sent, send, releaseNext } = heldSends()
    const call = groupCommit<string, number, number>({ budgetMs: 10_000, max: 64, send })
    const first = call('a', 1)
    const waiting = [call('a', 2), call('a', 3), call('a', 4)]
    const other = call('b', 5)
    expect(sent).toEqual([
      { group: 'a', calls: [1] },
      { group: 'b', calls: [5] },
    ])
    await releaseNext()
    expect(await first).toBe(2)
    await releaseNext()
    expect(await other).toBe(10)
    await releaseNext()
    expect(await Promise.all(waiting)).toEqual([4, 6, 8])
    expect(sent.at(-1)).toEqual({ group: 'a', calls: [2, 3, 4] })
  })

  test('at most `max` a call: the rest go in the next', async () => {
    const { sent, send, releaseNext } = heldSends()
    const call = groupCommit<string, number, number>({ budgetMs: 10_000, max: 2, send })
    const all = [1, 2, 3, 4, 5].map((n) => call('a', n))
    for (let i = 0; i < 3; i++) await releaseNext()
    expect(await Promise.all(all)).toEqual([2, 4, 6, 8, 10])
    expect(sent.map((s) => s.calls)).toEqual([[1], [2, 3], [4, 5]])
  })

  test('a call that waited past the budget is refused, not sent; a call that hangs holds the next back no longer than that', async () => {
    const sent: number[][] = []
    const call = groupCommit<string, number, number>({
      budgetMs: 50,
      max: 64,
      send: (_group, calls) => {
        sent.push(calls)
        return calls[0] === 1 ? new Promise<number[]>(() => {}) : Promise.resolve(calls)
      },
    })
    void call('a', 1) // never answered
    const late = call('a', 2)
    expect(await late.catch((error: Error) => error)).toBe(TOO_LATE)
    expect(sent).toEqual([[1]])
    expect(await call('a', 3)).toBe(3)
  })

  test('a send that throws or fails rejects its calls, and the group carries on', async () => {
    let attempt = 0
    const call = groupCommit<string, number, number>({
      budgetMs: 10_000,
      max: 64,
      send: (_group, calls) => {
        attempt++
        if (attempt === 1) throw new Error('bad arguments')
        if (attempt === 2) return Promise.reject(new Error('Redis said no'))
        return Promise.resolve(calls)
      },
    })
    expect(await call('a', 1).catch((error: Error) => error.message)).toBe('bad arguments')
    expect(await call('a', 2).catch((error: Error) => error.message)).toBe('Redis said no')
    expect(await call('a', 3)).toBe(3)
  })
})
