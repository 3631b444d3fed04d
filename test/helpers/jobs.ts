import { Job, type JobType, type Queue, type QueueEvents } from 'bullmq'

/** Resolves with the job once it exists (it may be added after the call). */
export async function jobOnceAdded(queue: Queue, events: QueueEvents, id: string): Promise<Job> {
  for (;;) {
    // Listening before looking, so a job added in between is not missed.
    const added = new Promise<void>((resolve) => events.once('added', () => resolve()))
    const job = await Job.fromId(queue, id)
    if (job) return job
    await added
  }
}

export interface FinishedJobs {
  /** The job's return value once it has completed (it may have completed, and been removed, before the call). */
  completed(id: string): Promise<unknown>
  /** The job's failure reason once it has failed for good or for a retry, whichever comes first. */
  failed(id: string): Promise<string>
}

/**
 * Records every job a queue's events say completed or failed, from now on. Completed jobs are removed at once, so a
 * test cannot wait on the job itself: it waits on this record, which a job finished before the wait also reaches.
 * An event queued in a webhook batch job is recorded under its own id, as completed with it.
 */
export function recordFinished(events: QueueEvents): FinishedJobs {
  const seen = new Map<string, { completed?: unknown; failed?: string }>()
  const waiters = new Set<() => void>()
  const note = (id: string, outcome: { completed?: unknown; failed?: string }) => {
    seen.set(id, { ...seen.get(id), ...outcome })
    for (const wake of waiters) wake()
  }
  events.on('completed', ({ jobId, returnvalue }) => {
    // A webhook batch job (events accepted together) completes each of its events as if it had been their own job.
    const batch = (returnvalue as { events?: Record<string, number[]> } | null)?.events
    if (batch) for (const [eventId, routes] of Object.entries(batch)) note(eventId, { completed: { routes } })
    note(jobId, { completed: returnvalue ?? null })
  })
  events.on('failed', ({ jobId, failedReason }) => note(jobId, { failed: failedReason }))
  const until = async <T>(pick: () => T | undefined): Promise<T> => {
    for (;;) {
      const found = pick()
      if (found !== undefined) return found
      await new Promise<void>((resolve) => {
        const wake = () => {
          waiters.delete(wake)
          resolve()
        }
        waiters.add(wake)
      })
    }
  }
  return {
    completed: (id) => until(() => seen.get(id)?.completed),
    failed: (id) => until(() => seen.get(id)?.failed),
  }
}

/** The ids of the events a webhook queue holds in these states: a batch job's events each, any other job's own id. */
export async function queuedEventIds(queue: Queue, states: JobType[]): Promise<string[]> {
  const jobs = await queue.getJobs(states)
  return jobs.flatMap((job) => ((job.data as { events?: { id: string }[] }).events ?? [{ id: job.id! }]).map((event) => event.id))
}
