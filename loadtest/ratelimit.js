// @ts-check
/**
 * Rate limiting: one tenant (INSTANCE, TOKEN or SECRET) far over its limit while another (INSTANCE_B, TOKEN_B or
 * SECRET_B) sends at a modest rate. The noisy one's 429s must each carry Retry-After and the rate_limited error; the
 * quiet one must get every event accepted. Give the noisy instance a limit well under NOISY_RATE (in the instances
 * file: "rateLimit": {"perSecond": 20, "burst": 20, "policy": "reject"}, or a ceilingPerSecond under NOISY_RATE).
 *
 *   k6 run -e BASE_URL=… -e INSTANCE=noisy -e TOKEN=… -e INSTANCE_B=quiet -e TOKEN_B=… loadtest/ratelimit.js
 */
import { check } from 'k6'
import { Counter } from 'k6/metrics'
import { answerOf, incomingMessage, sendNewMessage, sendWebhook, setupFreshIds, toChatwootJson, uniqueId } from './lib/chatwoot.js'
import { env, envNumber } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

var rateLimited = new Counter('rate_limited')
var DURATION = env('DURATION', '30s')
var NOISY_RATE = envNumber('NOISY_RATE', 200)
var QUIET_RATE = envNumber('QUIET_RATE', 5)

export var options = {
  scenarios: {
    noisy: {
      executor: 'constant-arrival-rate',
      exec: 'noisy',
      rate: NOISY_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(NOISY_RATE / 10)),
      maxVUs: Math.max(50, Math.ceil(NOISY_RATE / 4)),
    },
    quiet: {
      executor: 'constant-arrival-rate',
      exec: 'quiet',
      rate: QUIET_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 5,
      maxVUs: 50,
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    // The noisy tenant was limited, and every 429 said when to come back.
    rate_limited: ['count>0'],
    'checks{scenario:noisy}': ['rate==1'],
    // The quiet tenant never noticed.
    'http_req_failed{scenario:quiet}': ['rate==0'],
    'checks{scenario:quiet}': ['rate==1'],
  },
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export function noisy(data) {
  var response = sendWebhook(toChatwootJson(incomingMessage(uniqueId(data.base))), { expectedStatuses: [200, 202, 429] })
  if (response.status === 429) rateLimited.add(1)
  var answer = answerOf(response)
  check(response, {
    'accepted, or 429 rate_limited with Retry-After': function (r) {
      if (r.status === 202 || r.status === 200) return true
      var retryAfter = Number(r.headers['Retry-After'])
      return r.status === 429 && retryAfter >= 1 && answer !== null && answer.error === 'rate_limited'
    },
  })
}

/** @param {{ base: number }} data */
export function quiet(data) {
  sendNewMessage(data.base, { instance: env('INSTANCE_B', 'quiet'), token: env('TOKEN_B', ''), secret: env('SECRET_B', '') })
}

export var handleSummary = summaryWriter('ratelimit')
