import { atMost } from './connections.ts'

/** A request that gave up (past its budget) before its call went: it is not sent. */
export const TOO_LATE = new Error('gave up before Redis was asked')

interface Waiting<C, A> {
  call: C
  since: number
  resolve(answer: A): void
  reject(error: Error): void
}

/**
 * Group commit of calls to Redis, per group (a queue shard, a bucket): one call of a group is out at a time; the calls
 * that arrive meanwhile wait for it and then go together (at most `max`), in one script. Alone (the normal case at low
 * rates) a call goes at once; under load, one call carries what arrived during the one before (with AOF `always`,
 * during its fsync), so each shares its script, round trip and fsync, and none waits longer than one call for it.
 * A call waiting past `budgetMs` (its request has given up) is rejected with TOO_LATE instead of sent, and a call that
 * hangs holds the next ones back no longer than that.
 */
export function groupCommit<G, C, A>(options: {
  budgetMs: number
  max: number
  /** Sends the calls of one group together; answers them in order. */
  send(group: G, calls: C[]): Promise<A[]>
}): (group: G, call: C) => Promise<A> {
  const { budgetMs, max, send } = options
  /** The calls waiting in each group whose call is out; a group is here only while it has one out. */
  const groups = new Map<G, Waiting<C, A>[]>()

  async function drain(group: G, waiting: Waiting<C, A>[]): Promise<void> {
    while (waiting.length > 0) {
      const now = performance.now()
      const going: Waiting<C, A>[] = []
      for (const one of waiting.splice(0, max)) {
        if (now - one.since < budgetMs) going.push(one)
        else one.reject(TOO_LATE)
      }
      if (going.length === 0) continue
      const calls = going.map((one) => one.call)
      // A send that throws rejects its calls like one that fails: the group carries on.
      const sent = (async () => send(group, calls))().then(
        (answers) => going.forEach((one, i) => one.resolve(answers[i]!)),
        (error: Error) => going.forEach((one) => one.reject(error)),
      )
      await atMost(budgetMs, sent)
    }
    groups.delete(group)
  }

  return (group, call) =>
    new Promise((resolve, reject) => {
      const one = { call, since: performance.now(), resolve, reject }
      const waiting = groups.get(group)
      if (waiting) return void waiting.push(one)
      const first = [one]
      groups.set(group, first)
      void drain(group, first)
    })
}
