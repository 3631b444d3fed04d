// @ts-check
/**
 * Soak: the target rate for a long time (DURATION, 30 minutes), to find what only time shows: memory growth, Redis
 * filling up, latency creeping. Same SLO as throughput.js.
 *
 *   k6 run -e BASE_URL=… -e TOKEN=… -e RATE=1000 -e DURATION=2h loadtest/soak.js
 */
import { sendNewMessage, setupFreshIds } from './lib/chatwoot.js'
import { atTargetRate, SLO_THRESHOLDS } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

export var options = {
  scenarios: {
    soak: atTargetRate('30m'),
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
