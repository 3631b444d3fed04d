import type { RouteConfig } from '../config/instances-schema.ts'
import { OUR_SOURCE_ID_PREFIX, type ConversationRef } from '../queue/names.ts'

/** The fields of a Chatwoot event that routing and answering read. */
export interface RoutableEvent {
  event: string
  messageType: string | undefined
  inboxId: number | undefined
  private: boolean
  /** Posted by hookgate itself (its `source_id` carries our mark): logged, never routed, or bots would talk to themselves. */
  ours: boolean
  conversation: ConversationRef | undefined
}

export function routableEvent(payload: Record<string, unknown> & { event: string }): RoutableEvent {
  const conversation = payload.conversation as { id?: unknown; inbox_id?: unknown; account?: { id?: unknown } } | undefined
  const inbox = payload.inbox as { id?: unknown } | undefined
  const account = payload.account as { id?: unknown } | undefined
  const isMessage = payload.event.startsWith('message_')
  const conversationId = isMessage ? conversation?.id : payload.event.startsWith('conversation_') ? (conversation?.id ?? payload.id) : undefined
  const accountId = account?.id ?? conversation?.account?.id
  return {
    event: payload.event,
    messageType: typeof payload.message_type === 'string' ? payload.message_type : undefined,
    inboxId: integer(inbox?.id ?? payload.inbox_id ?? conversation?.inbox_id),
    private: payload.private === true,
    ours: typeof payload.source_id === 'string' && payload.source_id.startsWith(OUR_SOURCE_ID_PREFIX),
    conversation:
      integer(accountId) !== undefined && integer(conversationId) !== undefined
        ? { accountId: accountId as number, conversationId: conversationId as number }
        : undefined,
  }
}

/**
 * Indexes of the routes an event goes to. A filter a route leaves out matches anything, except `private`: routes skip
 * private notes unless they ask for them with `private: true` (and then get only those).
 */
export function matchRoutes(routes: readonly RouteConfig[], event: RoutableEvent): number[] {
  if (event.ours) return []
  const matched: number[] = []
  routes.forEach((route, index) => {
    if (!route.events.includes(event.event)) return
    if (route.messageTypes && !(event.messageType && (route.messageTypes as string[]).includes(event.messageType))) return
    if (route.inboxes && !(event.inboxId !== undefined && route.inboxes.includes(event.inboxId))) return
    if ((route.private ?? false) !== event.private) return
    matched.push(index)
  })
  return matched
}

/** Whether a route's deliveries of one conversation go one at a time, in the order the events were accepted. */
export function ordered(route: RouteConfig): boolean {
  return route.ordered !== false && !route.destination.debounceMs
}

function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined
}
