import { TypeCompiler } from '@sinclair/typebox/compiler'
import { DestinationAnswer } from '../src/answer-schema.ts'
import type { ChatwootCall } from '../src/queue/names.ts'

const checker = TypeCompiler.Compile(DestinationAnswer)

/** What an answer asks for: the Chatwoot calls in the order they are made, or why it was refused. */
export type AnswerPlan = { calls: ChatwootCall[] } | { rejected: string }

/**
 * Reads a destination's 2xx answer: `reply`, `note`, then `messages` in order, then `actions` in a fixed order
 * (customAttributes, labels, priority, assign, status). Anything that is not a JSON object asks for nothing.
 */
export function planAnswer(json: unknown): AnswerPlan {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return { calls: [] }
  if (!checker.Check(json)) {
    const error = checker.Errors(json).First()!
    return { rejected: `${error.path || '/'}: ${error.message}` }
  }
  const { reply, note, messages = [], actions } = json
  if (actions?.snoozedUntil !== undefined && actions.status !== 'snoozed') return { rejected: '/actions/snoozedUntil: only with status snoozed' }
  const calls: ChatwootCall[] = []
  if (reply !== undefined) calls.push({ kind: 'message', content: reply, private: false })
  if (note !== undefined) calls.push({ kind: 'message', content: note, private: true })
  for (const message of messages) {
    calls.push({
      kind: 'message',
      content: message.content,
      private: message.private ?? false,
      ...(message.content_type && { contentType: message.content_type }),
      ...(message.content_attributes && { contentAttributes: message.content_attributes }),
    })
  }
  if (!actions) return { calls }
  if (actions.customAttributes) calls.push({ kind: 'custom_attributes', customAttributes: actions.customAttributes })
  if (actions.labels) calls.push({ kind: 'labels', labels: actions.labels })
  if (actions.priority !== undefined) calls.push({ kind: 'priority', priority: actions.priority })
  if (actions.assign) calls.push({ kind: 'assign', ...actions.assign })
  if (actions.status) calls.push({ kind: 'status', status: actions.status, ...(actions.snoozedUntil !== undefined && { snoozedUntil: actions.snoozedUntil }) })
  return { calls }
}
