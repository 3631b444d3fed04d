import type { Redis } from 'ioredis'
import { eventLogKey, type ConversationRef, type EventLogLine } from '../queue/names.ts'

export interface EventQuery {
  instance: string
  conversation?: number
  event?: string
  kind?: EventLogLine['kind']
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

function matches(event: LoggedEvent, query: EventQuery): boolean {
  if (query.event !== undefined && event.event !== query.event) return false
  if (query.kind !== undefined && event.kind !== query.kind) return false
  if (query.conversation !== undefined && event.conversation?.conversationId !== query.conversation) return false
  return true
}

/** A stream entry back into the line the log worker wrote (numbers and objects were written as strings). */
function toEvent(id: string, fields: string[]): LoggedEvent {
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
    error: raw.error,
  }
}
