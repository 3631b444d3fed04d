import type { ConversationRef } from './names.ts'

const SLOTS = 16_384

/** CRC16/XMODEM, as Redis Cluster hashes keys. */
function crc16(text: string): number {
  let crc = 0
  for (const byte of new TextEncoder().encode(text)) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** The Redis Cluster hash slot of a hash tag's content. */
function hashSlot(tag: string): number {
  return crc16(tag) % SLOTS
}

/** The Redis Cluster hash slot of every key under a shard's prefix (its hash tag). */
export function prefixSlot(prefix: string): number {
  return hashSlot(/\{([^}]+)\}/.exec(prefix)?.[1] ?? prefix)
}


/**
 * The key prefix of each of `count` queue shards. One: the prefix itself (a single Redis or Sentinel: nothing
 * changes). More: one hash tag each (`{<name>-s<i>-<n>}`), `n` picked so that shard i's slot lies in the i-th of
 * `count` equal parts of the slot space. `redis-cli --cluster create` gives each master an equal run of slots, so the
 * shards spread evenly over its masters; rebalancing or adding masters moves them like any other slots.
 */
export function shardPrefixes(prefix: string, count: number): string[] {
  if (count === 1) return [prefix]
  const name = prefix.replace(/^\{(.*)\}$/, '$1')
  return Array.from({ length: count }, (_, shard) => {
    const from = Math.floor((shard * SLOTS) / count)
    const to = Math.floor(((shard + 1) * SLOTS) / count)
    for (let n = 0; ; n++) {
      const tag = `${name}-s${shard}-${n}`
      const slot = hashSlot(tag)
      if (slot >= from && slot < to) return `{${tag}}`
    }
  })
}

/**
 * The shard of an event: from its instance and conversation, so a conversation's events (and its lanes) stay on one
 * shard; an event without a conversation by its dedupe key. A repeat of an event lands where its first did.
 */
export function shardIndex(count: number, instanceId: string, conversation: ConversationRef | undefined, dedupeKey: string): number {
  if (count === 1) return 0
  const key = conversation ? `${instanceId}:${conversation.accountId}.${conversation.conversationId}` : `${instanceId}:${dedupeKey}`
  return crc16(key) % count
}
