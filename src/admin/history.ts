import type { Job } from 'bullmq'
import type { Redis } from 'ioredis'
import { eventBodiesKey, type DeliveryJobData } from '../queue/names.ts'
import type { Queues } from '../queue/queues.ts'
import { searchEvents, type LoggedEvent } from './events.ts'

export interface DeliveryHistory {
  /** `<event's job id>.r<route>`: the delivery job's id, and its webhook-id. */
  id: string
  route: number
  host: string | undefined
  /** Where it stands now, from its log lines and its job. */
  outcome: 'delivered' | 'failed' | 'retrying' | 'pending'
  /** Each try, oldest first: `delivered`, `attempt_failed`, `delivery_failed`. */
  attempts: LoggedEvent[]
  /** What its answer became in Chatwoot: `posted` (the calls made) or `answer_rejected`. */
  answers: LoggedEvent[]
  /** A dead letter that a replay sends again. */
  replayable: boolean
}

export interface EventHistory {
  instance: string
  jobId: string
  event: string | undefined
  routed: LoggedEvent | undefined
  deliveries: DeliveryHistory[]
  /** The body as Chatwoot sent it, when still kept (EVENT_BODIES_KEPT, or a dead letter's). */
  body: string | undefined
}

const ATTEMPT_KINDS = new Set(['delivered', 'attempt_failed', 'delivery_failed'])

/** Everything the log and the queues know of one event: where it went, each try, what was posted back, its body. */
export async function eventHistory(redis: Redis, prefix: string, queues: Pick<Queues, 'shards' | 'draining'>, instance: string, jobId: string): Promise<EventHistory | undefined> {
  const { events } = await searchEvents(redis, prefix, { instance, jobId, limit: 1000 })
  const lines = events.reverse()
  const routed = lines.find((line) => line.kind === 'routed' && line.jobId === jobId)
  const ids = new Set<string>(routed?.routes?.map((route) => `${jobId}.r${route}`))
  for (const line of lines) if (line.jobId !== jobId) ids.add(line.jobId)
  if (!routed && ids.size === 0) return undefined
  const jobs = await Promise.all([...ids].map((id) => deliveryJob(queues, id)))
  const deliveries = await Promise.all(
    [...ids].map(async (id, i) => {
      const own = lines.filter((line) => line.jobId === id)
      const attempts = own.filter((line) => ATTEMPT_KINDS.has(line.kind))
      const job = jobs[i]
      const state = job ? await job.getState() : undefined
      const last = attempts.at(-1)
      const outcome: DeliveryHistory['outcome'] =
        state === 'failed' ? 'failed' : last?.kind === 'delivered' ? 'delivered' : last?.kind === 'delivery_failed' && !job ? 'failed' : last ? 'retrying' : 'pending'
      return {
        id,
        route: Number(id.slice(id.lastIndexOf('.r') + 2)),
        host: attempts.find((line) => line.host)?.host ?? (job?.data.destination ? new URL(job.data.destination).host : undefined),
        outcome,
        attempts,
        answers: own.filter((line) => line.kind === 'posted' || line.kind === 'answer_rejected'),
        replayable: state === 'failed',
      }
    }),
  )
  const body = (routed && (await keptBody(redis, prefix, instance, jobId, routed))) ?? jobs.find((job) => job?.data.body)?.data.body
  return { instance, jobId, event: routed?.event ?? lines[0]?.event, routed, deliveries: deliveries.sort((a, b) => a.route - b.route), body }
}

/** A delivery's job, on whichever shard its event went to. */
async function deliveryJob(queues: Pick<Queues, 'shards' | 'draining'>, id: string): Promise<Job<DeliveryJobData> | undefined> {
  const found = await Promise.all([...queues.shards, ...queues.draining].map((shard) => shard.delivery.getJob(id)))
  return found.find(Boolean) ?? undefined
}

/** The body kept beside the log, written in the same round trip as the `routed` line (so within a second of it). */
async function keptBody(redis: Redis, prefix: string, instance: string, jobId: string, routed: LoggedEvent): Promise<string | undefined> {
  const loggedAt = Number(routed.id.split('-')[0])
  const entries = await redis.xrange(eventBodiesKey(prefix, instance), String(loggedAt - 1000), String(loggedAt + 1000), 'COUNT', 10_000)
  for (const [, fields] of entries) {
    if (fields[1] === jobId) return fields[3]
  }
  return undefined
}
