/**
 * An ordered route's deliveries of one conversation that this process is making, in the order it started them (the
 * order their webhook jobs were fetched, which is the lane's order on a shard). Each waits here for the one before it
 * to finish its try, so that, in the normal case, it finds its event at the head of the lane and is delivered at once
 * instead of being parked as a delayed job and woken: a job, a promote and a fetch less per event. Under load, when a
 * conversation's events come faster than they are delivered, that cost grew the very backlog that caused it.
 *
 * Only a shortcut: the lane in Redis still decides. An event whose predecessor failed (its retries are in the delivery
 * queue) or is delivered by another process finds itself behind, and is parked as before. So is one that waited here
 * `maxWaitMs` already: each waiting delivery holds one of the worker's job slots, and a slow conversation must not keep
 * them from the others for longer.
 */
export interface LocalTurns {
  /**
   * Runs `deliver` for the lane's `entry` once the deliveries of the lane started before it here are done, or once it
   * has waited `maxWaitMs`.
   */
  inTurn<T>(lane: string, entry: string, deliver: () => Promise<T>): Promise<T>
  /** Whether `entry` waits here for its turn in `lane` (then it needs no waking). */
  waiting(lane: string, entry: string): boolean
}

interface LocalLane {
  /** Settles once the last delivery started here is done. */
  last: Promise<unknown>
  /** Entries waiting for the ones before them. */
  waiting: Set<string>
}

export function createLocalTurns(maxWaitMs: number): LocalTurns {
  const lanes = new Map<string, LocalLane>()
  return {
    inTurn<T>(key: string, entry: string, deliver: () => Promise<T>): Promise<T> {
      const lane = lanes.get(key)
      let mine: Promise<T>
      if (!lane) mine = deliver()
      else {
        lane.waiting.add(entry)
        mine = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, maxWaitMs)
          void lane.last.then(() => {
            clearTimeout(timer)
            resolve()
          })
        }).then(() => {
          lane.waiting.delete(entry)
          return deliver()
        })
      }
      const last = mine.catch(() => {})
      const current = lane ?? { last, waiting: new Set<string>() }
      current.last = last
      lanes.set(key, current)
      void last.then(() => current.last === last && lanes.delete(key))
      return mine
    },
    waiting: (key, entry) => lanes.get(key)?.waiting.has(entry) ?? false,
  }
}
