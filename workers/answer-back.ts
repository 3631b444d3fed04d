import type { Log } from '../src/log.ts'
import { JOB, OUR_SOURCE_ID_PREFIX, type ConversationRef } from '../src/queue/names.ts'
import type { Queues } from '../src/queue/queues.ts'

/** A reply or note longer than this is cut: Chatwoot messages are meant for people. */
const MAX_MESSAGE_CHARS = 10_000

export interface AnswerBack {
  /** `{ "reply": "…" }` becomes an outgoing message, `{ "note": "…" }` a private note, in the event's conversation. */
  answer(deliveryId: string, instanceId: string, conversation: ConversationRef | undefined, json: unknown): Promise<void>
  /** Tells the conversation's agents, in a private note, that its automation gave up (the instance's notifyOnFailure). */
  notifyFailure(deliveryId: string, instanceId: string, conversation: ConversationRef | undefined, url: string, reason: string): Promise<void>
}

/**
 * What a destination's answer asks to post into Chatwoot, as `chatwoot-note` jobs whose ids come from the delivery's:
 * a delivery run twice adds them once.
 */
export function createAnswerBack(deps: { queues: Queues; log: Log }): AnswerBack {
  const { queues, log } = deps
  return {
    async answer(deliveryId, instanceId, conversation, json) {
      if (!json || typeof json !== 'object') return
      const messages = (['reply', 'note'] as const)
        .map((kind) => ({ kind, content: (json as Record<string, unknown>)[kind] }))
        .filter((m): m is { kind: 'reply' | 'note'; content: string } => typeof m.content === 'string' && m.content.trim() !== '')
      if (messages.length === 0) return
      if (!conversation) {
        log.warn({ jobId: deliveryId, instance: instanceId }, 'destination answered a reply or note, but the event has no conversation')
        return
      }
      await queues.chatwootNote.addBulk(
        messages.map(({ kind, content }) => ({
          name: JOB.chatwootNote,
          data: {
            instanceId,
            conversation,
            content: content.slice(0, MAX_MESSAGE_CHARS),
            private: kind === 'note',
            sourceId: `${OUR_SOURCE_ID_PREFIX}${deliveryId}.${kind}`,
          },
          opts: { jobId: `${deliveryId}.${kind}` },
        })),
      )
    },

    async notifyFailure(deliveryId, instanceId, conversation, url, reason) {
      if (!conversation) return
      const content = `hookgate could not deliver this event to ${new URL(url).host} and gave up: ${reason}. The automation did not run.`
      await queues.chatwootNote.add(
        JOB.chatwootNote,
        { instanceId, conversation, content, private: true, sourceId: `${OUR_SOURCE_ID_PREFIX}${deliveryId}.failure` },
        { jobId: `${deliveryId}.failure` },
      )
    },
  }
}
