// @ts-check
/**
 * Dedupe: EVENTS distinct messages, each sent by every one of VUS virtual users REPEATS times, the copies of one
 * event racing each other (each iteration sends all EVENTS at once). Exactly one answer per event may say "queued";
 * every other copy must be 200 "already_queued". The thresholds check it: queued_answers == EVENTS.
 *
 *   k6 run -e BASE_URL=… -e TOKEN=… -e EVENTS=50 -e VUS=10 -e REPEATS=3 [-e PAUSE_SECONDS=1] loadtest/dedupe.js
 *
 * It sends about EVENTS × VUS requests every PAUSE_SECONDS: keep that under the instance's ceilingPerSecond (1000 by
 * default), or the copies over it get 429 and count as unexpected.
 */
import { check, sleep } from 'k6'
import http from 'k6/http'
import { Counter } from 'k6/metrics'
import { answerOf, incomingMessage, setupFreshIds, toChatwootJson, webhookRequest } from './lib/chatwoot.js'
import { env, envNumber } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

var EVENTS = envNumber('EVENTS', 50)
/** Between a VU's rounds, so the default load (EVENTS × VUS a second) stays under an instance's default ceiling. */
var PAUSE_SECONDS = Number(env('PAUSE_SECONDS', '1'))
var queuedAnswers = new Counter('queued_answers')
var unexpectedAnswers = new Counter('unexpected_answers')

export var options = {
  scenarios: {
    dedupe: { executor: 'per-vu-iterations', vus: envNumber('VUS', 10), iterations: envNumber('REPEATS', 3), maxDuration: '5m' },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    queued_answers: ['count==' + EVENTS],
    unexpected_answers: ['count==0'],
    checks: ['rate==1'],
  },
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export default function (data) {
  var requests = []
  for (var i = 0; i < EVENTS; i++) requests.push(webhookRequest(toChatwootJson(incomingMessage(data.base + i))))
  var responses = http.batch(requests)
  responses.forEach(function (response) {
    var answer = answerOf(response)
    var queued = response.status === 202 && answer !== null && answer.status === 'queued'
    var repeat = response.status === 200 && answer !== null && answer.status === 'already_queued'
    if (queued) queuedAnswers.add(1)
    if (!queued && !repeat) unexpectedAnswers.add(1)
    check(response, {
      'queued (first copy) or already_queued (every other)': function () {
        return queued || repeat
      },
    })
  })
  sleep(PAUSE_SECONDS)
}

export var handleSummary = summaryWriter('dedupe')
