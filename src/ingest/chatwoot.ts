import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidEvent, InvalidJson, Unauthorized } from '../errors.ts'
import { tokenDigest, type Instance } from '../config/instances.ts'

/** What a request offers as proof that it comes from the instance's Chatwoot. */
export interface Credentials {
  /** `X-Chatwoot-Signature: sha256=<hex>` (Chatwoot 4.12+). */
  signature: string | null
  /** `X-Chatwoot-Timestamp`: unix seconds, part of the signed string. */
  timestamp: string | null
  /** `?token=`, `Authorization: Bearer …` or `api_access_token` (older Chatwoot, proxies, other senders). */
  token: string | null
}

export function credentialsFrom(headers: Headers, query: Record<string, string | undefined>): Credentials {
  const authorization = headers.get('authorization')
  const bearer = authorization && /^bearer\s+/i.test(authorization) ? authorization.replace(/^bearer\s+/i, '') : null
  return {
    signature: headers.get('x-chatwoot-signature'),
    timestamp: headers.get('x-chatwoot-timestamp'),
    token: query.token || bearer || headers.get('api_access_token') || query.api_access_token || null,
  }
}

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i

/** Checked in place of an unknown instance, so that how long a refusal takes does not tell which instances exist. */
const NO_SUCH_INSTANCE: Instance = {
  id: '',
  tokenDigests: [tokenDigest('hookgate:no-such-instance')],
  webhookSecrets: ['hookgate:no-such-instance'],
  config: { id: '' },
}

/**
 * Accepts a request whose Chatwoot signature is valid and fresh, or which carries one of the instance's tokens.
 * Every comparison is constant-time; an unknown instance is checked like a known one and gets the same error.
 */
export function verifyChatwoot(
  instance: Instance | undefined,
  credentials: Credentials,
  raw: Uint8Array,
  nowSeconds: number,
  toleranceSeconds: number,
): asserts instance is Instance {
  const checked = instance ?? NO_SUCH_INSTANCE
  const valid =
    (checked.webhookSecrets.length > 0 && signatureIsValid(checked, credentials, raw, nowSeconds, toleranceSeconds)) ||
    (credentials.token !== null && tokenIsValid(checked, credentials.token))
  if (!instance || !valid) throw new Unauthorized()
}

function signatureIsValid(
  instance: Instance,
  { signature, timestamp }: Credentials,
  raw: Uint8Array,
  nowSeconds: number,
  toleranceSeconds: number,
): boolean {
  if (!signature || !timestamp || !/^\d{1,12}$/.test(timestamp)) return false
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false
  const hex = SIGNATURE.exec(signature)?.[1]
  if (!hex) return false
  const given = Buffer.from(hex, 'hex')
  let valid = false
  for (const secret of instance.webhookSecrets) {
    const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest()
    valid = timingSafeEqual(given, expected) || valid
  }
  return valid
}

function tokenIsValid(instance: Instance, token: string): boolean {
  const given = tokenDigest(token)
  let valid = false
  for (const digest of instance.tokenDigests) valid = timingSafeEqual(given, digest) || valid
  return valid
}

/** A parsed Chatwoot webhook body: a JSON object with an `event` name. */
export type ChatwootEvent = Record<string, unknown> & { event: string }

const EVENT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/

export function parseEvent(text: string): ChatwootEvent {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new InvalidJson()
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidEvent('The body must be a JSON object.')
  }
  const { event } = body as { event?: unknown }
  if (typeof event !== 'string') throw new InvalidEvent('The body has no "event" string.')
  if (!EVENT_NAME.test(event)) throw new InvalidEvent('"event" must be a Chatwoot event name such as "message_created".')
  return body as ChatwootEvent
}

/**
 * The identity of an event, used as its job id: the same event sent twice yields the same key, distinct events never
 * do. Chatwoot sends one message_created twice with different delivery ids, so messages are keyed by message id;
 * message_updated fires many times per message, so it and every event without an identity of its own is keyed by
 * its body: a retry (same body, new timestamp) or a replay under a forged X-Chatwoot-Delivery (the header is not
 * signed) is the same event. BullMQ job ids may not contain ':'.
 */
export function dedupeKey(instanceId: string, event: ChatwootEvent, raw: Uint8Array): string {
  const parts = identity(event) ?? [`h${sha256(raw)}`]
  return `${instanceId}.${event.event}.${parts.join('.')}`
}

function identity(event: ChatwootEvent): string[] | undefined {
  switch (event.event) {
    case 'message_created': {
      const id = idOf(event.id)
      return id ? [`m${id}`] : undefined
    }
    case 'conversation_created': {
      const id = idOf(event.id)
      return id ? [`a${accountOf(event)}`, `c${id}`] : undefined
    }
    case 'conversation_updated':
    case 'conversation_status_changed':
    case 'conversation_opened':
    case 'conversation_resolved': {
      const id = idOf(event.id)
      const updatedAt = idOf(event.updated_at)
      if (!id || !updatedAt) return undefined
      const status = event.event === 'conversation_updated' ? [] : [`s${idOf(event.status) ?? '_'}`]
      return [`a${accountOf(event)}`, `c${id}`, ...status, `u${updatedAt}`]
    }
    case 'contact_created':
    case 'contact_updated': {
      const id = idOf(event.id)
      if (!id) return undefined
      const changes = event.event === 'contact_updated' ? [`x${sha256(JSON.stringify(event.changed_attributes ?? null))}`] : []
      return [`a${accountOf(event)}`, `ct${id}`, ...changes]
    }
    default:
      return undefined
  }
}

/** Chatwoot ids are integers; conversation `updated_at` is a float. Anything else is not trusted into a key. */
function idOf(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return String(value)
  if (typeof value === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(value)) return value
  return undefined
}

/** Conversation ids are per account. `account` is in payloads from Chatwoot 4.14.2; older ones carry it on messages. */
function accountOf(event: ChatwootEvent): string {
  const account = event.account as { id?: unknown } | undefined
  const messages = event.messages as { account_id?: unknown }[] | undefined
  return idOf(account?.id) ?? idOf(Array.isArray(messages) ? messages[0]?.account_id : undefined) ?? '_'
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32)
}
