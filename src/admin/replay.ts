import type { Job } from 'bullmq'
import type { DeliveryJobData } from '../queue/names.ts'
import type { Queues, ShardQueues } from '../queue/queues.ts'

/** Which failed deliveries to send again; every given field must match. */
export interface ReplayFilter {
  instance?: string
  /** A destination's URL (without its query) or its host. */
  destination?: string
  /** A conversation's display id (with `instance`, one conversation). */
  conversation?: number
  /** Failed at or after / before, ms since the epoch. */
  since?: number
  until?: number
  jobIds?: string[]
  /** Only say what would be replayed. */
  dryRun?: boolean
}

export interface ReplayResult {
  /** Failed deliveries that matched. */
  matched: number
  /** Moved back to waiting, with their tries reset (on a dry run: would be). */
  replayed: string[]
  /** Asked for by id but not failed (delivered, replayed already, gone): replaying them again changes nothing. */
  skipped: { id: string; reason: string }[]
  /** The failed set holds more than one call looks at (MAX_REPLAY_SCAN): call again once these are replayed. */
  more: boolean
}

/** One call looks at this many failed deliveries at most. */
export const MAX_REPLAY_SCAN = 10_000
const PAGE = 500

/**
 * Sends failed deliveries round again (POST /admin/replay, `hookgate replay`). Idempotent: only a job in the failed set
 * moves (BullMQ checks its state atomically), so a second identical replay finds nothing to do, and a delivery that
 * did reach its destination never goes twice (its delivered marker).
 */
export async function replayFailedDeliveries(queues: Pick<Queues, 'shards' | 'draining'>, filter: ReplayFilter): Promise<ReplayResult> {
  const result: ReplayResult = { matched: 0, replayed: [], skipped: [], more: false }
  const shards = [...queues.shards, ...queues.draining]
  const candidates = filter.jobIds ? await jobsById(shards, filter.jobIds, result) : await failedJobs(shards, result)
  for (const job of candidates.filter((job) => matches(job, filter))) {
    result.matched++
    try {
      // Tries are given back; attemptsStarted is not reset, so the delivery knows it may have run before.
      if (!filter.dryRun) await job.retry('failed', { resetAttemptsMade: true })
      result.replayed.push(job.id!)
    } catch (error) {
      // Another replay, or the retention trim, moved it first.
      result.skipped.push({ id: job.id!, reason: (error as Error).message })
    }
  }
  return result
}

async function jobsById(shards: ShardQueues[], ids: string[], result: ReplayResult): Promise<Job<DeliveryJobData>[]> {
  const found: Job<DeliveryJobData>[] = []
  for (const id of new Set(ids)) {
    // A delivery's shard is its event's, which its id does not say: look in each.
    const job = (await Promise.all(shards.map((shard) => shard.delivery.getJob(id)))).find(Boolean)
    const state = job ? await job.getState() : 'gone'
    if (job && state === 'failed') found.push(job)
    else result.skipped.push({ id, reason: `not failed (${state})` })
  }
  return found
}

export interface FailedDelivery {
  id: string
  instance: string
  /** The destination's URL without its query. */
  destination: string | undefined
  event: string
  conversation: DeliveryJobData['conversation']
  failedAt: number | undefined
  reason: string
  attempts: number
}

/** Failed deliveries that match (dead letters), newest first: what the console lists and replays. */
export async function listFailedDeliveries(queues: Pick<Queues, 'shards' | 'draining'>, filter: Omit<ReplayFilter, 'dryRun' | 'jobIds'>, limit: number) {
  const scan: ReplayResult = { matched: 0, replayed: [], skipped: [], more: false }
  const matching = (await failedJobs([...queues.shards, ...queues.draining], scan)).filter((job) => matches(job, filter))
  matching.sort((a, b) => (b.finishedOn ?? 0) - (a.finishedOn ?? 0))
  const deliveries: FailedDelivery[] = matching.slice(0, limit).map((job) => ({
    id: job.id!,
    instance: job.data.instanceId,
    destination: job.data.destination,
    event: job.data.event,
    conversation: job.data.conversation,
    failedAt: job.finishedOn,
    reason: job.failedReason,
    attempts: (job.data.triedBefore ?? 0) + job.attemptsMade,
  }))
  return { deliveries, total: matching.length, more: scan.more }
}

/** Each shard's failed set, newest first, up to MAX_REPLAY_SCAN jobs in all. */
async function failedJobs(shards: ShardQueues[], result: ReplayResult): Promise<Job<DeliveryJobData>[]> {
  const jobs: Job<DeliveryJobData>[] = []
  for (const { delivery } of shards) {
    for (let start = 0; jobs.length < MAX_REPLAY_SCAN; start += PAGE) {
      const page = (await delivery.getFailed(start, start + PAGE - 1)).filter(Boolean) as Job<DeliveryJobData>[]
      jobs.push(...page)
      if (page.length < PAGE) break
    }
    if (jobs.length >= MAX_REPLAY_SCAN) {
      result.more = true
      return jobs.slice(0, MAX_REPLAY_SCAN)
    }
  }
  return jobs
}

function matches(job: Job<DeliveryJobData>, filter: Omit<ReplayFilter, 'dryRun' | 'jobIds'>): boolean {
  const { data } = job
  if (filter.instance !== undefined && data.instanceId !== filter.instance) return false
  if (filter.conversation !== undefined && data.conversation?.conversationId !== filter.conversation) return false
  if (filter.destination !== undefined) {
    const wanted = filter.destination.replace(/\/+$/, '')
    if (!data.destination || (data.destination !== wanted && new URL(data.destination).host !== wanted)) return false
  }
  const failedAt = job.finishedOn ?? 0
  if (filter.since !== undefined && failedAt < filter.since) return false
  if (filter.until !== undefined && failedAt >= filter.until) return false
  return true
}
