import { Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Log } from '../src/log.ts'
import { JOB, parseLaneEntry, type LaneRef } from '../src/queue/names.ts'
import type { ShardQueues } from '../src/queue/queues.ts'
import type { LocalTurns } from './local-turns.ts'

/**
 * How long a delivery parked right behind its conversation's lane head sleeps before it looks again, when nothing
 * wakes it sooner (the head normally does, as it leaves). It bounds how long a lane waits for a head whose jobs are
 * gone (a webhook accepted while Redis failed over, say): twice this once that delivery looks from right behind it
 * (parked further back, its first look may come up to FURTHEST_RECHECK_FACTOR times this later).
 */
export const LANE_RECHECK_MS = 5000
/** A delivery further back looks again this many times less often at most (see recheckAfterMs). */
const FURTHEST_RECHECK_FACTOR = 3

/**
 * How long a delivery `position` places behind its lane's head sleeps before it looks again. Only the one right
 * behind the head needs to look often (to find a dead head); the others are woken in turn as the events before them
 * leave. Every look costs a few scripts, so in a long lane (a busy conversation, or a backlog) looking every
 * LANE_RECHECK_MS would cost more the longer the lane grew.
 */
export function recheckAfterMs(position: number): number {
  return Math.min(Math.max(1, position), FURTHEST_RECHECK_FACTOR) * LANE_RECHECK_MS
}

/** The delivery job id of a lane entry's event on the lane's route. */
function deliveryOf(entry: string, route: number): string {
  return `${parseLaneEntry(entry).eventId}.r${route}`
}

export interface Lanes {
  /** 0: the event heads its lane (its turn); n > 0: n events are before it; undefined: it is not in the lane (done). */
  position(lane: LaneRef): Promise<number | undefined>
  /** The event leaves its lane; the delivery parked for the event now at its head is woken. */
  leave(lane: LaneRef): Promise<void>
  /**
   * Called once the event's delivery is parked: wakes it if the event heads its lane now (the event before may have
   * left between the look that parked it and the parking; it woke no one then).
   */
  parked(lane: LaneRef): Promise<void>
  /**
   * The lane's head when none of its jobs is alive any more (its webhook was accepted but never queued, or a worker
   * died between failing a delivery for good and leaving): it would hold the lane for ever. undefined otherwise.
   */
  deadHead(lane: LaneRef): Promise<string | undefined>
  /** Removes a dead head, if it still heads the lane. */
  drop(lane: LaneRef, head: string): Promise<void>
}

/**
 * Each ordered route keeps a lane per conversation: a Redis list of its events (laneEntry) in the order the API
 * accepted them (the dedupe-lock script appends). A delivery goes only when its event heads the lane, and leaves it
 * once delivered or failed for good, with its answer posted; the event behind it waits as a delayed delivery job,
 * woken by the one before as it leaves. Parking, then looking again, against leaving, then waking, means no wake is
 * ever missed.
 */
export function createLanes(deps: { redis: Redis; shard: ShardQueues; localTurns: LocalTurns; log: Log }): Lanes {
  const { redis, shard, localTurns, log } = deps

  async function wake(deliveryId: string): Promise<void> {
    // BullMQ's promote script on the id alone (no read of the job first): it refuses a job that is not delayed
    // (running already, or not parked yet), which is then nothing to do.
    await new Job(shard.delivery, JOB.delivery, {}, {}, deliveryId).promote().catch((error: Error) => {
      log.debug({ jobId: deliveryId, err: error.message }, 'delivery not parked; nothing to wake')
    })
  }

  const alive = async (state: Promise<string>) => !['unknown', 'completed', 'failed'].includes(await state)
  const position = async (lane: LaneRef) => (await redis.lpos(lane.key, lane.entry)) ?? undefined

  return {
    position,

    async leave(lane) {
      // Sent together, in this order, on one connection: the head read is the one after our removal.
      const [removed, next] = await Promise.all([redis.lrem(lane.key, 1, lane.entry), redis.lindex(lane.key, 0)])
      // The next one may wait in this process behind us (LocalTurns): it looks as soon as we are done, unparked.
      if (removed && next && !localTurns.waiting(lane.key, next)) await wake(deliveryOf(next, lane.route))
    },

    async parked(lane) {
      if ((await position(lane)) === 0) await wake(deliveryOf(lane.entry, lane.route))
    },

    async deadHead(lane) {
      const head = await redis.lindex(lane.key, 0)
      if (!head || head === lane.entry) return undefined
      const { eventId, batchJobId } = parseLaneEntry(head)
      const delivery = deliveryOf(head, lane.route)
      const states = await Promise.all([
        alive(shard.webhook.getJobState(batchJobId ?? eventId)),
        alive(shard.delivery.getJobState(delivery)),
        alive(shard.chatwootNote.getJobState(`${delivery}.answer`)),
      ])
      return states.some(Boolean) ? undefined : head
    },

    async drop(lane, head) {
      await redis.lrem(lane.key, 1, head)
      log.warn({ lane: lane.key, head }, 'conversation lane headed by an event with no job left; it was dropped from the lane')
    },
  }
}
