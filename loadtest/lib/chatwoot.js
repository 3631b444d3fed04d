// @ts-check
import { check } from 'k6'
import crypto from 'k6/crypto'
import http from 'k6/http'
import { BASE_URL, CONVERSATIONS, INSTANCE, SECRET, TOKEN } from './config.js'
import { EVENTS } from './events.js'

/** @typedef {{ name: string, payload: Record<string, unknown> }} FixtureEvent */

/** Every event Chatwoot sends, one payload each (lib/events.js, made from the project's test fixtures). */
export var FIXTURE_EVENTS = /** @type {FixtureEvent[]} */ (EVENTS)

var INCOMING = find('messageCreatedIncoming')

/** @param {string} name @returns {Record<string, unknown>} */
function find(name) {
  for (var i = 0; i < FIXTURE_EVENTS.length; i++) if (FIXTURE_EVENTS[i].name === name) return FIXTURE_EVENTS[i].payload
  throw new Error('no fixture event ' + name)
}

/**
 * A copy of `payload` that the gateway sees as a new event: its top-level `id` set to `id` (the message id of message
 * events, the conversation's or contact's id of others; events without an id are deduplicated by their body, which
 * the new field changes).
 * @param {Record<string, unknown>} payload @param {number} id @returns {Record<string, unknown>}
 */
export function withId(payload, id) {
  return Object.assign({}, payload, { id: id })
}

/**
 * A customer's incoming WhatsApp message, as Chatwoot's `message_created`, with message id `id`, in conversation
 * `conversationId` (by default the fixture's).
 * @param {number} id @param {number} [conversationId]
 */
export function incomingMessage(id, conversationId) {
  if (conversationId === undefined) return withId(INCOMING, id)
  var conversation = Object.assign({}, /** @type {Record<string, unknown>} */ (INCOMING.conversation), { id: conversationId })
  return Object.assign(withId(INCOMING, id), { conversation: conversation })
}

/**
 * The conversation of this VU's current event, one of CONVERSATIONS: the VUs sending at one moment write to different
 * conversations, and each VU's next event to another, as customers do.
 */
export function someConversation() {
  return 1 + ((__VU + __ITER * 7919) % CONVERSATIONS)
}

/**
 * Ids no earlier run used: call in setup() and hand the result to every VU, then take `base + n` for the n-th event.
 * Leaves room for 10^7 events per VU; about 1.8e15, so ids stay exact (under 2^53) with up to 7e15 added.
 * @returns {number}
 */
export function freshIdBase() {
  return Date.now() * 1000
}

/** The id of this VU's `iteration`-th event (__VU and __ITER are k6's globals). @param {number} base */
export function uniqueId(base) {
  return base + __VU * 10000000 + __ITER
}

/** A scenario's setup(): the id base every VU builds its unique ids on. */
export function setupFreshIds() {
  return { base: freshIdBase() }
}

/**
 * Sends one new incoming message (an id never sent before) and checks the answer: 202 {"status":"queued"}.
 * @param {number} base from setupFreshIds
 * @param {Parameters<typeof webhookRequest>[1]} [options]
 */
export function sendNewMessage(base, options) {
  var response = sendWebhook(toChatwootJson(incomingMessage(uniqueId(base), someConversation())), options)
  var answer = answerOf(response)
  check(response, {
    '202 queued': function (r) {
      return r.status === 202 && answer !== null && answer.status === 'queued'
    },
  })
}

/**
 * Chatwoot's wire form: compact JSON with <, > and & escaped as \u003c, \u003e, \u0026 (Rails to_json).
 * @param {unknown} payload @returns {string}
 */
export function toChatwootJson(payload) {
  return JSON.stringify(payload).replace(/[<>&]/g, function (c) {
    return '\\u00' + c.charCodeAt(0).toString(16)
  })
}

/** A random UUID v4, as Chatwoot's X-Chatwoot-Delivery. @returns {string} */
export function uuid() {
  var bytes = new Uint8Array(crypto.randomBytes(16))
  bytes[6] = (bytes[6] & 0x0f) | 0x40
  bytes[8] = (bytes[8] & 0x3f) | 0x80
  var hex = ''
  for (var i = 0; i < 16; i++) hex += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16)
  return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20)
}

/**
 * One webhook as Chatwoot sends it, as an http.batch request: signed with SECRET when set (X-Chatwoot-Timestamp and
 * X-Chatwoot-Signature: sha256=hex(HMAC-SHA256(secret, "<timestamp>.<body>"))), else with TOKEN in the query.
 * @param {string} body the exact bytes to send
 * @param {{ instance?: string, token?: string, secret?: string, tags?: Record<string, string>, expectedStatuses?: number[] }} [options]
 *   expectedStatuses: answers that are not failures (http_req_failed); by default 2xx and 3xx
 * @returns {{ method: 'POST', url: string, body: string, params: import('k6/http').RefinedParams<any> }}
 */
export function webhookRequest(body, options) {
  var opts = options || {}
  var instance = opts.instance || INSTANCE
  var token = opts.token === undefined ? TOKEN : opts.token
  var secret = opts.secret === undefined ? SECRET : opts.secret
  /** @type {Record<string, string>} */
  var headers = { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Chatwoot-Delivery': uuid() }
  var url = BASE_URL + '/webhook/chatwoot/' + encodeURIComponent(instance)
  if (secret) {
    var timestamp = String(Math.floor(Date.now() / 1000))
    headers['X-Chatwoot-Timestamp'] = timestamp
    headers['X-Chatwoot-Signature'] = 'sha256=' + crypto.hmac('sha256', secret, timestamp + '.' + body, 'hex')
  } else if (token) {
    url += '?token=' + encodeURIComponent(token)
  }
  /** @type {import('k6/http').RefinedParams<any>} */
  var params = { headers: headers, tags: Object.assign({ name: 'webhook' }, opts.tags || {}) }
  if (opts.expectedStatuses) params.responseCallback = http.expectedStatuses.apply(http, opts.expectedStatuses)
  return { method: 'POST', url: url, body: body, params: params }
}

/**
 * POSTs one webhook (see webhookRequest) and returns the answer.
 * @param {string} body @param {Parameters<typeof webhookRequest>[1]} [options]
 */
export function sendWebhook(body, options) {
  var request = webhookRequest(body, options)
  return http.post(request.url, request.body, request.params)
}

/**
 * The gateway's answer as JSON, or null when it is not JSON.
 * @param {import('k6/http').RefinedResponse<any>} response @returns {Record<string, unknown> | null}
 */
export function answerOf(response) {
  try {
    return /** @type {Record<string, unknown>} */ (response.json())
  } catch (error) {
    return null
  }
}
