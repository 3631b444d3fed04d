import { UnrecoverableError, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../src/config.ts'
import type { Instances } from '../src/instances.ts'
import type { Log } from '../src/log.ts'
import { postedKey, spreadPrefix, type ChatwootNoteJobData } from '../src/queue/names.ts'
import tokenBucketScript from '../src/ingest/token-bucket.lua' with { type: 'text' }
import { waitWithoutTrying } from './backoff.ts'
import { postJson } from './http.ts'

const CHATWOOT_TIMEOUT_MS = 10_000

/**
 * The `chatwoot-note` queue: post a reply or private note into the conversation through the Chatwoot API
 * (`POST /api/v1/accounts/{account}/conversations/{display id}/messages` with the instance's api_access_token).
 * Its `source_id` marks it as ours, so its echo (a message_created) is never routed again.
 */
export function createChatwootNoteProcessor(deps: { config: Config; instances: Instances; redis: Redis; log: Log }) {
  const { config, instances, log } = deps
  const { perSecond, burst } = config.workers.chatwootApi
  const redis = deps.redis as Redis & { takeToken(keys: 1, key: string, take: 1, capacity: number, rate: number, ceiling: 0, delay: 0): Promise<[number, number]> }
  redis.defineCommand('takeToken', { lua: tokenBucketScript })

  return async function processChatwootNote(job: Job<ChatwootNoteJobData>, token?: string): Promise<{ status: 'posted' | 'posted_before'; httpStatus?: number }> {
    const { instanceId, conversation, content, sourceId } = job.data
    const chatwoot = instances.get(instanceId)?.config.chatwoot
    if (!chatwoot) throw new UnrecoverableError(`instance ${instanceId} has no chatwoot url and apiAccessToken to post with`)
    const posted = postedKey(config.queue.prefix, job.id!)
    if ((await redis.exists(posted)) === 1) return { status: 'posted_before' }
    // The instance's own token bucket, fleet-wide: a burst of replies waits its turn instead of getting its token throttled.
    const [consumed, waitMs] = await redis.takeToken(1, `${spreadPrefix(config.queue.prefix)}:rl:chatwoot-api:${instanceId}`, 1, burst, perSecond, 0, 0)
    if (consumed > burst) return waitWithoutTrying(job, waitMs, token)
    const url = `${chatwoot.url.replace(/\/+$/, '')}/api/v1/accounts/${conversation.accountId}/conversations/${conversation.conversationId}/messages`
    const body = JSON.stringify({ content, message_type: 'outgoing', private: job.data.private, source_id: sourceId })
    const answer = await postJson(url, body, { api_access_token: chatwoot.apiAccessToken }, CHATWOOT_TIMEOUT_MS)
    await redis.set(posted, '1', 'PX', config.queue.dedupeWindowMs)
    log.info({ jobId: job.id, instance: instanceId, conversation: conversation.conversationId, private: job.data.private }, 'posted to chatwoot')
    return { status: 'posted', httpStatus: answer.status }
  }
}
