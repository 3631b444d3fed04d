import { createHash, randomBytes } from 'node:crypto'
/** Queue names: no string literal names a queue anywhere else. */
export const QUEUE = {
  webhook: 'webhook',
  delivery: 'delivery',
  chatwootNote: 'chatwoot-note',
} as const

export const JOB = {
  chatwootEvent: 'chatwoot-event',
  /** Several events accepted together (src/queue/accept-batch.ts): one job for all of them. */
  chatwootEvents: 'chatwoot-events',
  delivery: 'deliver',
  chatwootNote: 'post-to-chatwoot',
} as const

/** Marks what hookgate posts into Chatwoot (`source_id`), so that its echo is never routed back out: no loops. */
export const OUR_SOURCE_ID_PREFIX = 'hookgate:'

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
  /**
   * The routes (indexes) whose conversation lane (laneKey, on the event's shard) the event joined when accepted: its
   * delivery to such a route waits until it heads the lane.
   */
  lanes?: number[]
}

/**
 * Events an API process accepted while its previous call to Redis was out, queued by one call as one job: each with
 * the id a job of its own would have had (its dedupe key), from which its deliveries take theirs.
 */
export interface WebhookBatchData {
  events: BatchedEvent[]
}
export type BatchedEvent = WebhookJobData & { id: string }

/**
 * What an event is in its conversation lanes: its id, or `<id>@<batch job id>` when it was queued in a batch, so that
 * a look at a stuck lane finds the job that holds it (Lanes.deadHead).
 */
export function laneEntry(eventId: string, batchJobId?: string): string {
  return batchJobId ? `${eventId}@${batchJobId}` : eventId
}

/** A new batch job's id: never a dedupe key (those end in an event's identity, never in `@batch-…`). */
export function newBatchJobId(): string {
  return `batch-${randomBytes(9).toString('base64url')}`
}

/** The event and, when it was queued in a batch, the batch job that a lane entry names. */
export function parseLaneEntry(entry: string): { eventId: string; batchJobId?: string } {
  const match = /^(.*)@(batch-[\w-]+)$/.exec(entry)
  return match ? { eventId: match[1]!, batchJobId: match[2]! } : { eventId: entry }
}

/** An event's place in one conversation's lane of one route: `entry` (laneEntry) in the list `key`. */
export interface LaneRef {
  key: string
  entry: string
  route: number
}

/**
 * One event for one route's destination, as the `delivery` queue carries it: the event's first try is made by its
 * webhook job; this job makes the tries after it, and a debounced route's.
 */
export interface DeliveryJobData {
  instanceId: string
  /** Index of the route in the instance's `routes`. */
  route: number
  /** The route's destination URL when routed, without its query (which may hold a secret): what replays filter on. */
  destination?: string
  event: string
  /** The event body exactly as Chatwoot sent it. */
  body: string
  /** Where the reply or note goes, when the destination answers with one. */
  conversation: ConversationRef | undefined
  /** When the API accepted the event, ms since the epoch (for receive→deliver; absent on jobs of earlier versions). */
  receivedAt?: number
  /**
   * A debounced route's batch of a conversation's events: `body` is empty until the delivery takes the batch, then
   * holds it (`{"event":"message_batch",…}`) for every retry.
   */
  batch?: string
  /** How many batch entries `body` holds; they leave the batch once delivered. */
  batchTaken?: number
  /** Tries made before this job: 1 when the event's webhook job tried and failed (its breaker-open waits are not tries). */
  triedBefore?: number
  /**
   * Why the first try (made by the webhook job) failed for good (a 4xx, or a route with one try): the job fails with
   * this on its first run, without a POST, so that it is a dead letter like any other; a replay sends it.
   */
  failedFirstTry?: string
  /** The HTTP status of that first try, when the destination answered. */
  failedFirstTryStatus?: number
  /** An ordered route's delivery: it goes when its event heads the lane, and leaves the lane once done. */
  lane?: LaneRef
  /** A lane head with no job left, seen by this delivery's last look: seen again, it is dropped from the lane. */
  deadHead?: string
}

/** A destination's identity: its URL without the query, which may carry a secret and is not part of what it is. */
export function destinationId(url: string): string {
  const { origin, pathname } = new URL(url)
  return origin + pathname
}

/** A Chatwoot conversation: `conversationId` is the per-account display id that webhooks carry. */
export interface ConversationRef {
  accountId: number
  conversationId: number
}

/** One call to Chatwoot's API on a conversation, as a destination's answer asked for it (workers/answer.ts). */
export type ChatwootCall =
  | { kind: 'message'; content: string; private: boolean; contentType?: string; contentAttributes?: Record<string, unknown> }
  | { kind: 'custom_attributes'; customAttributes: Record<string, unknown> }
  | { kind: 'labels'; labels: string[] }
  | { kind: 'priority'; priority: string | null }
  | { kind: 'assign'; agentId?: number; teamId?: number }
  | { kind: 'status'; status: string; snoozedUntil?: number }

/**
 * What hookgate posts into one Chatwoot conversation for one delivery (its answer, or the note that it failed): the
 * calls in order. An ordered route's answer holds its lane until it is posted, so the next answer comes after it.
 */
export interface ChatwootCallsJobData {
  instanceId: string
  /** The event whose delivery's answer (or failure note) this is (absent on jobs of earlier versions). */
  event?: string
  conversation: ConversationRef
  /** Messages carry `source_id` `<OUR_SOURCE_ID_PREFIX><job id>.<call index>`: their echo is never routed. */
  calls: ChatwootCall[]
  lane?: LaneRef
}

/**
 * One line of an instance's event log: an event routed, each try of a delivery (`delivered`, `attempt_failed` when it
 * will be tried again, `delivery_failed` when it gave up), what its answer became (`answer_rejected`, or `posted` once
 * the calls into Chatwoot were made).
 */
export interface EventLogLine {
  kind: 'routed' | 'delivered' | 'attempt_failed' | 'delivery_failed' | 'answer_rejected' | 'posted'
  /** The webhook job (for `routed`) or delivery job it is about. */
  jobId: string
  event: string
  at: number
  conversation?: ConversationRef
  routes?: number[]
  host?: string
  /** The destination's HTTP status, when it answered. */
  status?: number
  attempt?: number
  /** How long the try took, ms. */
  ms?: number
  /** From the webhook's acceptance to its delivery, ms. */
  latencyMs?: number
  /** The start of the destination's answer (JSON), or of what was posted into Chatwoot. */
  answer?: string
  error?: string
}

/**
 * The prefix without its hash tag (`{hookgate}` → `hookgate`), for keys no script touches together with the queues':
 * on a Redis Cluster they spread over the slots instead of crowding the queues' one.
 */
export function spreadPrefix(prefix: string): string {
  return prefix.replace(/^\{(.*)\}$/, '$1')
}

/** The dedupe lock shares the queues' hash tag: one script checks it with the webhook job's key. */
export function dedupeLockKey(prefix: string, dedupeKey: string): string {
  return `${prefix}:dedupe:${dedupeKey}`
}

/** The key BullMQ keeps a job's hash under (`<prefix>:<queue>:<jobId>`). */
export function webhookJobKey(prefix: string, jobId: string): string {
  return `${prefix}:${QUEUE.webhook}:${jobId}`
}

/**
 * One delivery's marker: while a try is in flight, that try's owner (so two runs never POST at once); once its
 * destination had it, `delivered` for the dedupe window, so a run of it again never delivers twice.
 */
export function deliveredKey(prefix: string, deliveryId: string): string {
  return `${spreadPrefix(prefix)}:delivered:${deliveryId}`
}

/** A debounced route's pending events of one conversation: a list of "<webhook job id>\n<event body>". */
export function batchKey(prefix: string, batch: string): string {
  return `${spreadPrefix(prefix)}:batch:${batch}`
}

/** An instance's event log: a Redis Stream capped at EVENT_LOG_MAX_LEN entries. */
export function eventLogKey(prefix: string, instanceId: string): string {
  return `${spreadPrefix(prefix)}:events:${instanceId}`
}

/** An instance's latest event bodies (EVENT_BODIES_KEPT of them), for the console's event page: a capped Redis Stream. */
export function eventBodiesKey(prefix: string, instanceId: string): string {
  return `${spreadPrefix(prefix)}:bodies:${instanceId}`
}

/** A destination's circuit breaker, shared by every worker of the fleet (workers/breaker.ts). */
export function breakerKey(prefix: string, destinationUrl: string): string {
  return `${spreadPrefix(prefix)}:breaker:${createHash('sha256').update(destinationId(destinationUrl)).digest('hex').slice(0, 24)}`
}

/** Set once a call to Chatwoot succeeded: its job run again (stalled, retried, replayed) does not make it twice. */
export function postedKey(prefix: string, callsJobId: string, call: number): string {
  return `${spreadPrefix(prefix)}:posted:${callsJobId}.${call}`
}

/**
 * One conversation's lane for one route: the ids of its events not yet done there, in the order they were accepted.
 * It shares the queues' hash tag: the dedupe-lock script appends to it.
 */
export function laneKey(prefix: string, instanceId: string, route: number, conversation: ConversationRef): string {
  return `${prefix}:lane:${instanceId}:r${route}:${conversation.accountId}.${conversation.conversationId}`
}

