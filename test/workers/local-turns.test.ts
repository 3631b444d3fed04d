import { describe, expect, test } from 'bun:test'
import { createLocalTurns } from '../../workers/local-turns.ts'

/** A delivery the test finishes when it chooses, noting when it started. */
function gate(started: string[], name: string) {
  let finish!: (ok: boolean) => void
  const done = new Promise<boolean>((resolve) => (finish = resolve))
  const deliver = async () => {
    started.push(name)
    if (!(await done)) throw new Error(`${name} failed`)
    return name
  }
  return { deliver, finish }
}

describe('a conversation\'s deliveries in one worker process', () => {
  test('go one at a time, in the order they came, whether the one before succeeded or failed; another lane does not wait', async () => {
    const turns = createLocalTurns(10_000)
    const started: string[] = []
    const [a, b, c, other] = ['a', 'b', 'c', 'other'].map((name) => gate(started, name))
    const runs = [turns.inTurn('lane-1', 'a', a!.deliver), turns.inTurn('lane-1', 'b', b!.deliver), turns.inTurn('lane-1', 'c', c!.deliver)]
    const otherRun = turns.inTurn('lane-2', 'other', other!.deliver)
    await Bun.sleep(0)
    expect(started).toEqual(['a', 'other'])
    expect([turns.waiting('lane-1', 'b'), turns.waiting('lane-1', 'c'), turns.waiting('lane-1', 'a')]).toEqual([true, true, false])
    a!.finish(false)
    await expect(runs[0]).rejects.toThrow('a failed')
    await Bun.sleep(0)
    expect(started).toEqual(['a', 'other', 'b'])
    expect(turns.waiting('lane-1', 'b')).toBe(false)
    b!.finish(true)
    c!.finish(true)
    other!.finish(true)
    expect(await Promise.all([runs[1], runs[2], otherRun])).toEqual(['b', 'c', 'other'])
  })

  test('one waits at most maxWaitMs, then goes (to be parked): a slow conversation holds its job slots no longer', async () => {
    const turns = createLocalTurns(50)
    const started: string[] = []
    const [slow, next] = ['slow', 'next'].map((name) => gate(started, name))
    const slowRun = turns.inTurn('lane', 'slow', slow!.deliver)
    const waited = performance.now()
    const nextRun = turns.inTurn('lane', 'next', next!.deliver)
    next!.finish(true)
    expect(await nextRun).toBe('next')
    expect(performance.now() - waited).toBeGreaterThanOrEqual(45)
    expect(started).toEqual(['slow', 'next'])
    expect(turns.waiting('lane', 'next')).toBe(false)
    slow!.finish(true)
    expect(await slowRun).toBe('slow')
  })
})
