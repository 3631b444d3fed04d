// @ts-check
/**
 * Smoke: every Chatwoot event once, as a new event, then again: the first answer must be 202 {"status":"queued"},
 * the repeat 200 {"status":"already_queued"} with the same jobId. A few iterations; any failed check fails the run.
 *
 *   k6 run -e BASE_URL=http://localhost:3000 -e INSTANCE=default -e TOKEN=… loadtest/smoke.js
 */
import { check } from 'k6'
import { answerOf, FIXTURE_EVENTS, sendWebhook, setupFreshIds, toChatwootJson, uniqueId, withId } from './lib/chatwoot.js'
import { envNumber } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

export var options = {
  vus: 1,
  iterations: envNumber('ITERATIONS', 3),
  summaryTrendStats: TREND_STATS,
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
  },
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export default function (data) {
  FIXTURE_EVENTS.forEach(function (fixture, i) {
    // A new id per event and iteration: this VU's unique id, shifted far past any other VU's by the event's index.
    var body = toChatwootJson(withId(fixture.payload, uniqueId(data.base) + i * 1e12))
    var tags = { event: fixture.name }
    var first = sendWebhook(body, { tags: tags })
    var queued = answerOf(first)
    check(first, {
      'new event: 202 queued': function (r) {
        return r.status === 202 && queued !== null && queued.status === 'queued'
      },
      'new event: a job id': function () {
        return queued !== null && typeof queued.jobId === 'string' && queued.jobId.length > 0
      },
    }, tags)
    var again = sendWebhook(body, { tags: tags })
    var repeat = answerOf(again)
    check(again, {
      'repeat: 200 already_queued, same job': function (r) {
        return r.status === 200 && repeat !== null && repeat.status === 'already_queued' && queued !== null && repeat.jobId === queued.jobId
      },
    }, tags)
  })
}

export var handleSummary = summaryWriter('smoke')
