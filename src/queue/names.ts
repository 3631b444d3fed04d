/** Queue names: no string literal names a queue anywhere else. */
export const QUEUE = {
  webhook: 'webhook',
} as const

export const JOB = {
  chatwootEvent: 'chatwoot-event',
} as const

/** One accepted Chatwoot webhook, as the `webhook` queue carries it. */
export interface WebhookJobData {
  instanceId: string
  /** Chatwoot's event name, e.g. `message_created`. */
  event: string
  /** The request body exactly as received (UTF-8), so nothing is lost or re-serialised. */
  body: string
  /** `X-Chatwoot-Delivery`, when Chatwoot sent one. */
  deliveryId: string | undefined
  /** When the API accepted it, ms since the epoch. */
  receivedAt: number
}

/** Redis keys outside BullMQ's own. Every one carries the queue prefix's hash tag, so one Lua script may touch them together. */
export function dedupeLockKey(prefix: string, dedupeKey: string): string {
  return `${prefix}:dedupe:${dedupeKey}`
}

/** The key BullMQ keeps a job's hash under (`<prefix>:<queue>:<jobId>`). */
export function webhookJobKey(prefix: string, jobId: string): string {
  return `${prefix}:${QUEUE.webhook}:${jobId}`
}
