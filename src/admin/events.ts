import type { Redis } from 'ioredis'
import { eventLogKey, type ConversationRef, type EventLogLine } from '../queue/names.ts'

export type EventFilter = Omit<EventQuery, 'instance' | 'since' | 'until' | 'before' | 'limit'>

export interface EventQuery {
  instance: string
  conversation?: number
  event?: string
  kind?: EventLogLine['kind']
  /** A destination's host (lines about deliveries to it). */
  host?: string
  /** An event's webhook job id: its own line and its deliveries' (`<job id>.r<route>`). */
  jobId?: string
  /** Logged at or after / before, ms since the epoch. */
  since?: number
  until?: number
  /** Continue a search: only entries older than this entry id (the `next` of the previous page). */
  before?: string
  limit: number
}

export type LoggedEvent = EventLogLine & { id: string }

export interface EventPage {
  events: LoggedEvent[]
  /** Pass as `before` for the next (older) page; absent when the log holds nothing older that was looked at. */
  next?: string
  /** Log entries read to fill the page. */
  scanned: number
}

/**
 * One search reads this many log entries at most (a multiple of PAGE), so a filter that matches little cannot make
 * Redis read the whole log; `next` continues from there.
 */
export const MAX_SCAN = 20_000
const PAGE = 1000

/** Searches an instance's event log (a Redis Stream), newest first. */
export async function searchEvents(redis: Redis, prefix: string, query: EventQuery): Promise<EventPage> {
  const key = eventLogKey(prefix, query.instance)
  const events: LoggedEvent[] = []
  const oldest = query.since === undefined ? '-' : String(query.since)
  let newest = query.before ? `(${query.before}` : query.until === undefined ? '+' : String(query.until - 1)
  let scanned = 0
  for (;;) {
    const entries = await redis.xrevrange(key, newest, oldest, 'COUNT', PAGE)
    for (const [id, fields] of entries) {
      scanned++
      const event = toEvent(id, fields)
      if (matches(event, query) && events.push(event) === query.limit) return { events, scanned, next: id }
    }
    if (entries.length < PAGE) return { events, scanned }
    const lastId = entries[entries.length - 1]![0]
    if (scanned >= MAX_SCAN) return { events, scanned, next: lastId }
    newest = `(${lastId}`
  }
}

export function matches(event: LoggedEvent, query: EventFilter): boolean {
  if (query.event !== undefined && event.event !== query.event) return false
  if (query.kind !== undefined && event.kind !== query.kind) return false
  if (query.conversation !== undefined && event.conversation?.conversationId !== query.conversation) return false
  if (query.host !== undefined && event.host !== query.host) return false
  if (query.jobId !== undefined && event.jobId !== query.jobId && !event.jobId.startsWith(`${query.jobId}.`)) return false
  return true
}

/** Entries logged after `afterId` (exclusive), oldest first, at most `count`: what a live view has not seen yet. */
export async function eventsAfter(redis: Redis, prefix: string, instance: string, afterId: string, count: number): Promise<LoggedEvent[]> {
  const entries = await redis.xrange(eventLogKey(prefix, instance), `(${afterId}`, '+', 'COUNT', count)
  return entries.map(([id, fields]) => toEvent(id, fields))
}

/** The id of an instance's newest log entry ('0-0' when it has none): a live view starts after it. */
export async function newestEventId(redis: Redis, prefix: string, instance: string): Promise<string> {
  const [newest] = await redis.xrevrange(eventLogKey(prefix, instance), '+', '-', 'COUNT', 1)
  return newest?.[0] ?? '0-0'
}

/** A stream entry back into the line that was written (numbers and objects were written as strings). */
export function toEvent(id: string, fields: string[]): LoggedEvent {
  const raw: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) raw[fields[i]!] = fields[i + 1]!
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value))
  const json = <T>(value: string | undefined) => (value === undefined ? undefined : (JSON.parse(value) as T))
  return {
    id,
    kind: raw.kind as EventLogLine['kind'],
    jobId: raw.jobId ?? '',
    event: raw.event ?? '',
    at: Number(raw.at),
    conversation: json<ConversationRef>(raw.conversation),
    routes: json<number[]>(raw.routes),
    host: raw.host,
    status: number(raw.status),
    attempt: number(raw.attempt),
    ms: number(raw.ms),
    latencyMs: number(raw.latencyMs),
    answer: raw.answer,
    error: raw.error,
  }
}
