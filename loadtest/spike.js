// @ts-check
/**
 * Spike: the arrival rate ramps from a tenth of the target to SPIKE_FACTOR (5) times it, holds, and falls back; the
 * gateway must keep answering (shaped, never dropped) and recover its latency after the peak.
 *
 *   k6 run -e BASE_URL=… -e TOKEN=… -e RATE=1000 -e SPIKE_FACTOR=5 loadtest/spike.js
 */
import { sendNewMessage, setupFreshIds } from './lib/chatwoot.js'
import { envNumber, TARGET_RATE } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

var PEAK = Math.round(TARGET_RATE * envNumber('SPIKE_FACTOR', 5))

export var options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.round(TARGET_RATE / 10)),
      timeUnit: '1s',
      preAllocatedVUs: Math.max(10, Math.ceil(PEAK / 20)),
      maxVUs: Math.max(50, Math.ceil(PEAK / 4)),
      stages: [
        { target: TARGET_RATE, duration: '30s' },
        { target: PEAK, duration: '20s' },
        { target: PEAK, duration: '30s' },
        { target: TARGET_RATE, duration: '20s' },
        { target: TARGET_RATE, duration: '30s' },
      ],
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    // Nothing refused or lost at the peak; latency may grow there, but not past Chatwoot's 5 s timeout.
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: ['p(99)<5000'],
  },
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export default function (data) {
  sendNewMessage(data.base)
}

export var handleSummary = summaryWriter('spike')
