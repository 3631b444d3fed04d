// @ts-check
/**
 * Soak: the target rate for a long time (DURATION, 30 minutes), to find what only time shows: memory growth, Redis
 * filling up, latency creeping. Same SLO as throughput.js.
 *
 *   k6 run -e BASE_URL=… -e TOKEN=… -e RATE=1000 -e DURATION=2h loadtest/soak.js
 */
import { sendNewMessage, setupFreshIds } from './lib/chatwoot.js'
import { env, SLO_THRESHOLDS, TARGET_RATE } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

export var options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: TARGET_RATE,
      timeUnit: '1s',
      duration: env('DURATION', '30m'),
      preAllocatedVUs: Math.max(10, Math.ceil(TARGET_RATE / 10)),
      maxVUs: Math.max(50, Math.ceil(TARGET_RATE / 4)),
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: SLO_THRESHOLDS,
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export default function (data) {
  sendNewMessage(data.base)
}

export var handleSummary = summaryWriter('soak')
