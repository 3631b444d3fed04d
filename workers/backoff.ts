import { DelayedError, type BackoffStrategy, type Job } from 'bullmq'

/**
 * A failure worth another try; `retryAfterMs` (from the other side's Retry-After) overrides the backoff.
 * `unhealthy`: the other side is down or failing (5xx, timeout, no connection), which its circuit breaker counts.
 */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    readonly unhealthy = false,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
  ) {
    super(message)
    this.name = 'RetryLater'
  }
}

/** The longest wait between two tries, whatever the attempt count. */
const MAX_BACKOFF_MS = 10 * 60_000

/**
 * The `hookgate` backoff type: what the error asks for, else exponential with full jitter (a uniform wait between 0
 * and base × 2^(attempt-1)), so that many jobs failing together do not retry together.
 */
export function backoffStrategy(baseMs: number): BackoffStrategy {
  return function hookgateBackoff(attemptsMade, _type, error) {
    if (error instanceof RetryLater && error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, MAX_BACKOFF_MS)
    return Math.round(Math.random() * Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1)))
  }
}

/** `Retry-After` as ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** Puts the job back, delayed, without failing it or using up one of its tries. */
export async function waitWithoutTrying(job: Job, waitMs: number, token: string | undefined): Promise<never> {
  await job.moveToDelayed(Date.now() + waitMs, token)
  throw new DelayedError()
}
