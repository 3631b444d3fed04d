import { describe, expect, test } from 'bun:test'
import type { RouteConfig } from '../../src/config/instances-schema.ts'
import { matchRoutes, routableEvent } from '../../src/ingest/routes.ts'
import { chatwoot } from '../fixtures/chatwoot.ts'

const to = { url: 'https://bot.test/hook' }
const routes: RouteConfig[] = [
  { events: ['message_created'], messageTypes: ['incoming'], destination: to },
  { events: ['message_created', 'message_updated'], destination: to },
  { events: ['message_created'], inboxes: [6], destination: to },
  { events: ['message_created'], private: true, destination: to },
  { events: ['conversation_status_changed'], destination: to },
]
const match = (payload: Record<string, unknown> & { event: string }) => matchRoutes(routes, routableEvent(payload))

describe('matchRoutes', () => {
  test('filters by event, message type and inbox', () => {
    expect(match(chatwoot.messageCreatedIncoming())).toEqual([0, 1])
    expect(match(chatwoot.messageCreatedOutgoing())).toEqual([1])
    expect(match(chatwoot.messageUpdated())).toEqual([1])
    expect(match({ ...chatwoot.messageCreatedIncoming(), inbox: { id: 6, name: 'Site' } })).toEqual([0, 1, 2])
    expect(match(chatwoot.conversationStatusChanged())).toEqual([4])
    expect(match(chatwoot.contactCreated())).toEqual([])
  })

  test('skips private notes unless a route asks for them', () => {
    expect(match(chatwoot.messageCreatedPrivateNote())).toEqual([3])
  })

  test('never routes what hookgate posted itself (its source_id), so bots do not answer themselves', () => {
    expect(match({ ...chatwoot.messageCreatedOutgoing(), source_id: 'hookgate:acme.message_created.m1.r0.reply' })).toEqual([])
    expect(match({ ...chatwoot.messageCreatedBotNote(), source_id: 'hookgate:x.note' })).toEqual([])
  })

  test('finds the conversation to answer in, for message and conversation events', () => {
    expect(routableEvent(chatwoot.messageCreatedIncoming()).conversation).toEqual({ accountId: 31, conversationId: 77 })
    expect(routableEvent(chatwoot.conversationUpdated()).conversation).toEqual({ accountId: 31, conversationId: 77 })
    expect(routableEvent(chatwoot.conversationTypingOn()).conversation).toEqual({ accountId: 31, conversationId: 77 })
    expect(routableEvent(chatwoot.contactCreated()).conversation).toBeUndefined()
  })
})
