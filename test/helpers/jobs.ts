import { Job, type Queue, type QueueEvents } from 'bullmq'

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
