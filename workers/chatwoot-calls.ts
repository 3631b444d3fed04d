import { DelayedError, UnrecoverableError, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config/config.ts'
import tokenBucketScript from '../src/ingest/token-bucket.lua' with { type: 'text' }
import type { Instances } from '../src/config/instances.ts'
import type { Log } from '../src/log.ts'
import type { EventLog } from '../src/queue/event-log.ts'
import { OUR_SOURCE_ID_PREFIX, postedKey, spreadPrefix, type ChatwootCall, type ChatwootCallsJobData } from '../src/queue/names.ts'
import { defineScript } from '../src/redis/connections.ts'
import { waitWithoutTrying } from './backoff.ts'
import { sendJson } from './http.ts'
import type { Lanes } from './lanes.ts'

const CHATWOOT_TIMEOUT_MS = 10_000

/** A job queued before answers held calls: one message. */
type QueuedBefore = { content: string; private: boolean }

type TakeToken = (key: string, take: number, capacity: number, rate: number, ceiling: 0, delay: 0) => Promise<[number, number]>

/**
 * The `chatwoot-note` queue: make the calls a destination's answer asked for, one after another, through the Chatwoot
 * API with the instance's api_access_token, each through the instance's Chatwoot API bucket. A call that succeeded is
 * never made again (its posted marker); 429, 5xx and timeouts retry the job (with backoff) from the first call not
 * made; any other 4xx fails that call for good (logged) and the rest go on. Messages carry our `source_id`, so their
 * echo (a message_created) is never routed again. An ordered route's answer leaves its lane once done.
 */
export function createChatwootCallsProcessor(deps: { config: Config; instances: Instances; redis: Redis; lanes: Lanes; eventLog: EventLog; log: Log }) {
  const { config, instances, redis, lanes, eventLog, log } = deps
  const { perSecond, burst } = config.workers.chatwootApi
  const { prefix, dedupeWindowMs } = config.queue
  const takeToken = defineScript(redis, tokenBucketScript)(1) as TakeToken

  return async function processChatwootCalls(job: Job<ChatwootCallsJobData>, token?: string): Promise<{ calls: number }> {
    const { instanceId, conversation, lane } = job.data
    const calls = job.data.calls ?? [{ kind: 'message', ...(job.data as unknown as QueuedBefore) }]
    try {
      const chatwoot = instances.get(instanceId)?.config.chatwoot
      if (!chatwoot) throw new UnrecoverableError(`instance ${instanceId} has no chatwoot url and apiAccessToken to post with`)
      const conversationUrl = `${chatwoot.url.replace(/\/+$/, '')}/api/v1/accounts/${conversation.accountId}/conversations/${conversation.conversationId}`
      const headers = { api_access_token: chatwoot.apiAccessToken }
      const send = (path: string, body?: unknown) =>
        sendJson(`${conversationUrl}/${path}`, body === undefined ? undefined : JSON.stringify(body), headers, CHATWOOT_TIMEOUT_MS, body === undefined ? 'GET' : 'POST')
      const made: string[] = []
      for (const [index, call] of calls.entries()) {
        const posted = postedKey(prefix, job.id!, index)
        if ((await redis.exists(posted)) === 1) {
          made.push(describeCall(call))
          continue
        }
        // The instance's own token bucket, fleet-wide: a burst of calls waits its turn instead of getting its token throttled.
        const requests = call.kind === 'labels' ? 2 : 1
        const [consumed, waitMs] = await takeToken(`${spreadPrefix(prefix)}:rl:chatwoot-api:${instanceId}`, requests, burst, perSecond, 0, 0)
        if (consumed > burst) return await waitWithoutTrying(job, waitMs, token)
        try {
          await make(call, send, `${OUR_SOURCE_ID_PREFIX}${job.id}.${index}`)
          made.push(describeCall(call))
        } catch (error) {
          if (!(error instanceof UnrecoverableError)) throw error
          log.warn({ jobId: job.id, instance: instanceId, call: call.kind, err: error.message }, 'chatwoot refused a call; the others go on')
          made.push(`${describeCall(call)}: refused (${error.message})`)
        }
        await redis.set(posted, '1', 'PX', dedupeWindowMs)
      }
      log.info({ jobId: job.id, instance: instanceId, conversation: conversation.conversationId, calls: calls.length }, 'posted to chatwoot')
      const deliveryId = job.id!.slice(0, job.id!.lastIndexOf('.'))
      await eventLog.append(instanceId, { kind: 'posted', jobId: deliveryId, event: job.data.event ?? '', at: Date.now(), conversation, answer: made.join('; ') })
      if (lane) await lanes.leave(lane)
      return { calls: calls.length }
    } catch (error) {
      const final = error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      if (lane && final && !(error instanceof DelayedError)) await lanes.leave(lane)
      throw error
    }
  }
}

/** A call in a few words, for the event log: `reply "Hello…"`, `labels vip, urgent`. */
function describeCall(call: ChatwootCall): string {
  switch (call.kind) {
    case 'message':
      return `${call.private ? 'note' : 'reply'} ${JSON.stringify(call.content.length > 80 ? `${call.content.slice(0, 80)}…` : call.content)}`
    case 'labels':
      return `labels ${call.labels.join(', ')}`
    case 'custom_attributes':
      return `custom attributes ${Object.keys(call.customAttributes).join(', ')}`
    case 'priority':
      return `priority ${call.priority ?? 'none'}`
    case 'assign':
      return call.agentId !== undefined ? `assigned to agent ${call.agentId}` : `assigned to team ${call.teamId}`
    case 'status':
      return `status ${call.status}`
  }
}

type Send = (path: string, body?: unknown) => Promise<{ json: unknown }>

/** One call, as Chatwoot's API takes it (its config/routes.rb and conversation controllers). */
async function make(call: ChatwootCall, send: Send, sourceId: string): Promise<void> {
  switch (call.kind) {
    case 'message':
      await send('messages', {
        content: call.content,
        message_type: 'outgoing',
        private: call.private,
        source_id: sourceId,
        ...(call.contentType && { content_type: call.contentType }),
        ...(call.contentAttributes && { content_attributes: call.contentAttributes }),
      })
      return
    case 'custom_attributes':
      await send('custom_attributes', { custom_attributes: call.customAttributes })
      return
    case 'labels': {
      // Chatwoot's POST replaces the labels: add ours to the ones it has.
      const { json } = await send('labels')
      const current = (json as { payload?: unknown } | undefined)?.payload
      const labels = [...new Set([...(Array.isArray(current) ? current.filter((l): l is string => typeof l === 'string') : []), ...call.labels])]
      await send('labels', { labels })
      return
    }
    case 'priority':
      await send('toggle_priority', { priority: call.priority })
      return
    case 'assign':
      await send('assignments', call.agentId !== undefined ? { assignee_id: call.agentId } : { team_id: call.teamId })
      return
    case 'status':
      await send('toggle_status', { status: call.status, ...(call.snoozedUntil !== undefined && { snoozed_until: call.snoozedUntil }) })
      return
  }
}
