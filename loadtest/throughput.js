// @ts-check
/**
 * Throughput: RATE requests per second per replica × REPLICAS, arriving at a constant rate (open model: a slow answer
 * does not slow the arrivals, so queueing shows in the latency), for DURATION. Every request is a realistic
 * message_created with a message id never sent before. The SLO is the thresholds: p95 under 50 ms, under 0.1 %
 * failed, over 99.9 % of checks passed.
 *
 *   k6 run -e BASE_URL=… -e TOKEN=… -e RATE=1000 -e REPLICAS=1 -e DURATION=2m loadtest/throughput.js
 */
import { sendNewMessage, setupFreshIds } from './lib/chatwoot.js'
import { atTargetRate, SLO_THRESHOLDS } from './lib/config.js'
import { summaryWriter, TREND_STATS } from './lib/summary.js'

export var options = {
  scenarios: {
    throughput: atTargetRate('1m'),
  },
  summaryTrendStats: TREND_STATS,
  thresholds: SLO_THRESHOLDS,
}

export var setup = setupFreshIds

/** @param {{ base: number }} data */
export default function (data) {
  sendNewMessage(data.base)
}

export var handleSummary = summaryWriter('throughput')
