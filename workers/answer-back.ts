import type { Instances } from '../src/config/instances.ts'
import type { Log } from '../src/log.ts'
import type { EventLog } from '../src/queue/event-log.ts'
import { JOB, type ChatwootCall, type ConversationRef, type LaneRef } from '../src/queue/names.ts'
import type { ShardQueues } from '../src/queue/queues.ts'
import { planAnswer } from './answer.ts'

/** The delivery a destination answered. */
export interface Answered {
  deliveryId: string
  instanceId: string
  event: string
  conversation: ConversationRef | undefined
  /** An ordered route's lane, headed by this event: its answer holds it until posted. */
  lane?: LaneRef
}

export interface AnswerBack {
  /**
   * Queues the Chatwoot calls a destination's answer asks for (answer-schema.ts), in the event's conversation; true
   * when they hold the event's lane, which they then leave once made. A malformed answer posts nothing: it is logged,
   * gets an `answer_rejected` event-log line and (notifyOnFailure) a private note saying so.
   */
  answer(answered: Answered, json: unknown): Promise<boolean>
  /** Tells the conversation's agents, in a private note, that its automation gave up (the instance's notifyOnFailure). */
  notifyFailure(failed: { deliveryId: string; instanceId: string; event: string; conversation: ConversationRef | undefined }, url: string, reason: string): Promise<void>
}

/**
 * What a destination's answer asks to do in Chatwoot, as one `chatwoot-note` job of calls whose id comes from the
 * delivery's: a delivery run twice queues them once, and each call has its own posted marker.
 */
export function createAnswerBack(deps: { shard: ShardQueues; instances: Instances; eventLog: EventLog; log: Log }): AnswerBack {
  const { shard, instances, eventLog, log } = deps

  const post = (jobId: string, instanceId: string, event: string, conversation: ConversationRef, calls: ChatwootCall[], lane?: LaneRef) =>
    shard.chatwootNote.add(JOB.chatwootNote, { instanceId, event, conversation, calls, ...(lane && { lane }) }, { jobId })

  const privateNote = (content: string): ChatwootCall => ({ kind: 'message', content, private: true })
  const notifies = (instanceId: string) => instances.get(instanceId)?.config.notifyOnFailure === true

  return {
    async answer({ deliveryId, instanceId, event, conversation, lane }, json) {
      const plan = planAnswer(json)
      if ('rejected' in plan) {
        log.warn({ jobId: deliveryId, instance: instanceId, reason: plan.rejected }, 'answer rejected; nothing of it is posted')
        await eventLog.append(instanceId, { kind: 'answer_rejected', jobId: deliveryId, event, at: Date.now(), conversation, error: plan.rejected })
        if (conversation && notifies(instanceId)) {
          await post(`${deliveryId}.rejected`, instanceId, event, conversation, [privateNote(`hookgate did not post the automation's answer: ${plan.rejected}.`)])
        }
        return false
      }
      if (plan.calls.length === 0) return false
      if (!conversation) {
        log.warn({ jobId: deliveryId, instance: instanceId }, 'destination answered with messages or actions, but the event has no conversation')
        return false
      }
      await post(`${deliveryId}.answer`, instanceId, event, conversation, plan.calls, lane)
      return lane !== undefined
    },

    async notifyFailure({ deliveryId, instanceId, event, conversation }, url, reason) {
      if (!conversation) return
      const content = `hookgate could not deliver this event to ${new URL(url).host} and gave up: ${reason}. The automation did not run.`
      await post(`${deliveryId}.failure`, instanceId, event, conversation, [privateNote(content)])
    },
  }
}
