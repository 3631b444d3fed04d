import { Queue, type DefaultJobOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config } from '../config/config.ts'
import type { Log } from '../log.ts'
import { JOB, QUEUE, type ChatwootCallsJobData, type ConversationRef, type DeliveryJobData, type WebhookBatchData, type WebhookJobData } from './names.ts'
import { prefixSlot, shardIndex, shardPrefixes } from './shards.ts'

/** One shard's queues: an event's jobs, dedupe lock and conversation lanes all live on its shard (one hash tag). */
export interface ShardQueues {
  /** The shard's key prefix, a hash tag of its own (REDIS_KEY_PREFIX itself when there is one shard). */
  prefix: string
  /** The Redis Cluster hash slot of every key under the prefix. */
  slot: number
  webhook: Queue<WebhookJobData | WebhookBatchData, unknown, typeof JOB.chatwootEvent | typeof JOB.chatwootEvents>
  delivery: Queue<DeliveryJobData, unknown, typeof JOB.delivery>
  chatwootNote: Queue<ChatwootCallsJobData, unknown, typeof JOB.chatwootNote>
}

export interface Queues {
  /** Where new events go. */
  shards: ShardQueues[]
  /** With REDIS_QUEUE_SHARDS_DRAINING: the previous count's shards (those not in `shards`), served until empty. */
  draining: ShardQueues[]
  /** The shard of an event (queue/shards.ts). */
  shardOf(instanceId: string, conversation: ConversationRef | undefined, dedupeKey: string): ShardQueues
  /** Jobs per queue name and state (waiting, active, delayed, failed), summed over the shards: a round trip per queue. */
  depths(): Promise<Record<string, Record<(typeof DEPTH_STATES)[number], number>>>
  close(): Promise<void>
}

const DEPTH_STATES = ['waiting', 'active', 'delayed', 'failed'] as const

/** Tries of a Chatwoot API call before its note is failed for good. */
const CHATWOOT_NOTE_ATTEMPTS = 8

/**
 * Entries each queue's BullMQ event stream keeps (BullMQ's default is 10,000). Every job state change appends one
 * whatever this is; it bounds memory and how far behind a QueueEvents listener (the tests', a dashboard's) may fall
 * before it misses events. hookgate itself never reads these streams.
 */
export const QUEUE_EVENTS_KEPT = 1000

/** The producer side of every queue of every shard, on one fail-fast connection owned by the caller. */
export function createQueues(deps: { config: Config['queue']; producer: Redis; log: Log }): Queues {
  const { config, producer, log } = deps
  const kept = {
    // A completed job goes at once (no kept set for BullMQ to trim on every finish): the dedupe key and the event log
    // remember the event. Failed jobs are the dead letters: kept, bounded, replayable.
    removeOnComplete: true,
    removeOnFail: { age: config.retentionSeconds, count: config.retentionCount },
  }
  const queue = <Data, Name extends string>(prefix: string, name: string, defaultJobOptions: DefaultJobOptions) => {
    const created = new Queue<Data, unknown, Name>(name, {
      connection: producer,
      prefix,
      defaultJobOptions,
      streams: { events: { maxLen: QUEUE_EVENTS_KEPT } },
    })
    // While Redis is away the connection's own log says so once; its queues would say it on every retry.
    created.on('error', (error) => producer.status === 'ready' && log.error({ queue: name, err: error.message }, 'queue error'))
    return created
  }
  const shardAt = (prefix: string): ShardQueues => ({
    prefix,
    slot: prefixSlot(prefix),
    webhook: queue<WebhookJobData | WebhookBatchData, typeof JOB.chatwootEvent | typeof JOB.chatwootEvents>(prefix, QUEUE.webhook, {
      attempts: config.webhookAttempts,
      backoff: { type: 'exponential', delay: config.webhookBackoffMs, jitter: 0.5 },
      ...kept,
    }),
    // Their tries and backoff are set per job and by the workers' backoff strategy (it honours Retry-After).
    delivery: queue<DeliveryJobData, typeof JOB.delivery>(prefix, QUEUE.delivery, { backoff: { type: 'hookgate' }, ...kept }),
    chatwootNote: queue<ChatwootCallsJobData, typeof JOB.chatwootNote>(prefix, QUEUE.chatwootNote, {
      attempts: CHATWOOT_NOTE_ATTEMPTS,
      backoff: { type: 'hookgate' },
      ...kept,
    }),
  })
  const current = shardPrefixes(config.prefix, config.shards)
  const previous = config.drainingShards ? shardPrefixes(config.prefix, config.drainingShards) : []
  const shards = current.map(shardAt)
  const draining = previous.filter((prefix) => !current.includes(prefix)).map(shardAt)

  let closing: Promise<void> | undefined
  const all = [...shards, ...draining].flatMap((shard) => [shard.webhook, shard.delivery, shard.chatwootNote])
  return {
    shards,
    draining,
    shardOf: (instanceId, conversation, dedupeKey) => shards[shardIndex(shards.length, instanceId, conversation, dedupeKey)]!,
    async depths() {
      const depths: Record<string, Record<(typeof DEPTH_STATES)[number], number>> = {}
      const counted = await Promise.all(all.map(async (q) => [q.name, (await q.getJobCounts(...DEPTH_STATES)) as Record<string, number>] as const))
      for (const [name, counts] of counted) {
        const sum = (depths[name] ??= { waiting: 0, active: 0, delayed: 0, failed: 0 })
        for (const state of DEPTH_STATES) sum[state] += counts[state] ?? 0
      }
      return depths
    },
    close: () => (closing ??= Promise.all(all.map((q) => q.close())).then(() => {})),
  }
}
