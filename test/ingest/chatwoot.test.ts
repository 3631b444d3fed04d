import { describe, expect, test } from 'bun:test'
import { Unauthorized } from '../../src/errors.ts'
import { credentialsFrom, dedupeKey, parseEvent, verifyChatwoot, type Credentials } from '../../src/ingest/chatwoot.ts'
import { createInstances } from '../../src/config/instances.ts'
import { chatwoot, everyEvent, toChatwootJson } from '../fixtures/chatwoot.ts'
import { signedDelivery } from '../fixtures/signed-delivery.ts'
import { ACME_SECRET_2, ACME_TOKEN, sign, testInstances } from '../helpers/deps.ts'

const instances = createInstances(testInstances.instances)
const acme = instances.get('acme')!
const globex = instances.get('globex')!
const raw = new Uint8Array(signedDelivery.body)
const signed: Credentials = { signature: signedDelivery.signature, timestamp: String(signedDelivery.timestamp), token: null }

function verify(instance = acme, credentials: Credentials = signed, body = raw, now = signedDelivery.timestamp) {
  verifyChatwoot(instance, credentials, body, now, 300)
}

describe('verifyChatwoot', () => {
  test('accepts the signed delivery (signature computed independently with openssl)', () => {
    expect(() => verify()).not.toThrow()
  })

  test('accepts a signature of the instance\'s second secret', () => {
    const signature = sign(ACME_SECRET_2, signedDelivery.timestamp, raw)
    expect(() => verify(acme, { ...signed, signature })).not.toThrow()
  })

  test('refuses a body changed by one byte', () => {
    const changed = Uint8Array.from(raw)
    changed[10] = changed[10]! ^ 1
    expect(() => verify(acme, signed, changed)).toThrow(Unauthorized)
  })

  test('refuses a timestamp outside the window, both ways, and accepts one at its edge', () => {
    expect(() => verify(acme, signed, raw, signedDelivery.timestamp + 301)).toThrow(Unauthorized)
    expect(() => verify(acme, signed, raw, signedDelivery.timestamp - 301)).toThrow(Unauthorized)
    expect(() => verify(acme, signed, raw, signedDelivery.timestamp + 300)).not.toThrow()
  })

  test('refuses a signature replayed with another timestamp', () => {
    expect(() => verify(acme, { ...signed, timestamp: String(signedDelivery.timestamp + 1) }, raw, signedDelivery.timestamp)).toThrow(
      Unauthorized,
    )
  })

  test('refuses malformed signature headers', () => {
    for (const signature of ['', 'sha256=', 'sha1=abc', signedDelivery.signature.slice(0, -2), `${signedDelivery.signature}00`, 'sha256=zz' + 'a'.repeat(62)]) {
      expect(() => verify(acme, { ...signed, signature })).toThrow(Unauthorized)
    }
  })

  test('refuses a valid signature for an instance without that secret', () => {
    expect(() => verify(globex)).toThrow(Unauthorized)
  })

  test('accepts the instance token, refuses others and an unknown instance the same way', () => {
    const body = new TextEncoder().encode('{}')
    expect(() => verify(acme, { signature: null, timestamp: null, token: ACME_TOKEN }, body)).not.toThrow()
    expect(() => verify(acme, { signature: null, timestamp: null, token: `${ACME_TOKEN}x` }, body)).toThrow(Unauthorized)
    expect(() => verify(acme, { signature: null, timestamp: null, token: null }, body)).toThrow(Unauthorized)
    expect(() => verifyChatwoot(undefined, { signature: null, timestamp: null, token: ACME_TOKEN }, body, 0, 300)).toThrow(Unauthorized)
  })
})

describe('credentialsFrom', () => {
  test('reads the token from the query, a Bearer header or api_access_token', () => {
    expect(credentialsFrom(new Headers(), { token: 'q' }).token).toBe('q')
    expect(credentialsFrom(new Headers({ authorization: 'Bearer b-token' }), {}).token).toBe('b-token')
    expect(credentialsFrom(new Headers({ authorization: 'Basic abc' }), {}).token).toBeNull()
    expect(credentialsFrom(new Headers({ api_access_token: 'h' }), {}).token).toBe('h')
    expect(credentialsFrom(new Headers(), { api_access_token: 'qa' }).token).toBe('qa')
  })
})

describe('parseEvent', () => {
  test('parses every Chatwoot event', () => {
    for (const payload of everyEvent()) expect(parseEvent(toChatwootJson(payload)).event).toBe(payload.event as string)
  })

  test('names what is wrong with bad bodies', () => {
    expect(() => parseEvent('{"event":')).toThrow(expect.objectContaining({ code: 'invalid_json' }))
    expect(() => parseEvent('')).toThrow(expect.objectContaining({ code: 'invalid_json' }))
    for (const body of ['[]', 'null', '42', '"message_created"', '{}', '{"event":5}', '{"event":"has space"}', '{"event":"a:b"}']) {
      expect(() => parseEvent(body)).toThrow(expect.objectContaining({ code: 'invalid_event' }))
    }
  })
})

describe('dedupeKey', () => {
  const key = (payload: unknown) => {
    const text = toChatwootJson(payload)
    return dedupeKey('acme', parseEvent(text), new TextEncoder().encode(text))
  }

  test('keys message_created by message id (Chatwoot sends one twice, with different delivery ids)', () => {
    expect(key(chatwoot.messageCreatedIncoming())).toBe('acme.message_created.m50011')
    expect(key({ ...chatwoot.messageCreatedIncoming(), content: 'built again' })).toBe('acme.message_created.m50011')
    expect(key(chatwoot.messageCreatedIncoming({ messageId: 50012 }))).not.toBe(key(chatwoot.messageCreatedIncoming()))
  })

  test('keys message_updated by its body, never by message id alone', () => {
    const update = chatwoot.messageUpdated()
    const deleted = { ...update, content_attributes: { deleted: true } }
    expect(key(update)).toMatch(/^acme\.message_updated\.h[0-9a-f]{32}$/)
    expect(key(update)).not.toBe(key(deleted))
    expect(key(update)).toBe(key(chatwoot.messageUpdated()))
  })

  test('keys conversation events by account, conversation, updated_at and status', () => {
    const updated = key(chatwoot.conversationUpdated({ updatedAt: 1790000095.20871 }))
    expect(updated).toBe('acme.conversation_updated.a31.c77.u1790000095.20871')
    expect(key(chatwoot.conversationUpdated({ updatedAt: 1790000096.1 }))).not.toBe(updated)
    expect(key(chatwoot.conversationStatusChanged({ updatedAt: 1790001310.5521 }))).toBe(
      'acme.conversation_status_changed.a31.c77.sresolved.u1790001310.5521',
    )
    expect(key(chatwoot.conversationCreated())).toBe('acme.conversation_created.a31.c77')
    expect(key(chatwoot.conversationCreated({ conversationId: 78 }))).toBe('acme.conversation_created.a31.c78')
  })

  test('takes the account from messages when the payload predates `account` (Chatwoot < 4.14.2)', () => {
    const { account: _, ...old } = chatwoot.conversationCreated()
    expect(key(old)).toBe('acme.conversation_created.a31.c77')
  })

  test('keys contact events by id and change set', () => {
    expect(key(chatwoot.contactCreated())).toBe('acme.contact_created.a31.ct1207')
    expect(key(chatwoot.contactUpdated('2026-09-21T13:33:20.301Z'))).toBe(key(chatwoot.contactUpdated('2026-09-21T13:33:20.301Z')))
    expect(key(chatwoot.contactUpdated('2026-09-21T13:33:20.301Z'))).not.toBe(key(chatwoot.contactUpdated('2026-09-21T13:40:00.000Z')))
  })

  test('keys other events by a hash of the body', () => {
    expect(key(chatwoot.webwidgetTriggered())).toMatch(/^acme\.webwidget_triggered\.h[0-9a-f]{32}$/)
    expect(key(chatwoot.conversationTypingOn())).not.toBe(key(chatwoot.conversationTypingOff()))
  })

  test('never lets sender-controlled values shape the key', () => {
    const hostile = { event: 'message_created', id: 'x:y/../z' }
    expect(key(hostile)).toMatch(/^acme\.message_created\.h[0-9a-f]{32}$/)
    expect(key({ event: 'conversation_updated', id: 77, updated_at: 'a:b' })).toMatch(/\.h[0-9a-f]{32}$/)
  })

  test('every event of the fixtures gets a distinct key without ":"', () => {
    const keys = everyEvent().map((payload) => key(payload))
    expect(new Set(keys).size).toBe(keys.length)
    for (const k of keys) expect(k).not.toContain(':')
  })
})
