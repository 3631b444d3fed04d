import { createHttpClient } from './http-client.ts'
import { latencies, type Latencies } from './stats.ts'

export interface ArrivalRateResult {
  rate: number
  seconds: number
  sent: number
  /** Answers by status; 0 for a request that got no answer (connection error, timeout). */
  statuses: Record<number, number>
  /** Each request's status, by its index. */
  statusOf: Uint16Array
  latency: Latencies
  /** Percentiles of each second of the run, for the chart. */
  perSecond: (Latencies & { second: number })[]
}

/** A request that has not answered in this long counts as failed. */
const TIMEOUT_MS = 10_000

/**
 * Latency at a fixed arrival rate (open loop, like k6's constant-arrival-rate): request i is due at start + i/rate and
 * goes then, whether or not earlier ones have answered, and its latency counts from when it was due. So a gateway that
 * stalls shows the stall in every request that waited, instead of the load generator quietly sending less
 * (coordinated omission).
 */
export async function runArrivalRate(options: {
  url: string
  rate: number
  seconds: number
  body: (i: number) => string
}): Promise<ArrivalRateResult> {
  const { url, rate, seconds, body } = options
  const total = Math.round(rate * seconds)
  const latencyMs = new Float64Array(total)
  const statusOf = new Uint16Array(total)
  const pending: Promise<void>[] = []
  const client = createHttpClient(url, { timeoutMs: TIMEOUT_MS })
  const start = performance.now() + 50
  for (let i = 0; i < total; ) {
    const now = performance.now()
    // Send everything that is due, then sleep until the next is.
    for (; i < total && start + (i * 1000) / rate <= now; i++) {
      const due = start + (i * 1000) / rate
      const index = i
      pending.push(
        client
          .post(body(index))
          .then((answer) => {
            statusOf[index] = answer.status
          })
          .catch(() => {
            statusOf[index] = 0
          })
          .finally(() => {
            latencyMs[index] = performance.now() - due
          }),
      )
    }
    // At least a millisecond: a shorter sleep returns at once, and the loop would spin a core the gateway needs.
    if (i < total) await Bun.sleep(Math.max(1, start + (i * 1000) / rate - performance.now()))
  }
  await Promise.all(pending)
  client.close()

  const statuses: Record<number, number> = {}
  for (const status of statusOf) statuses[status] = (statuses[status] ?? 0) + 1
  const perSecond = Array.from({ length: Math.ceil(seconds) }, (_, second) => {
    const from = Math.round(second * rate)
    const to = Math.min(total, Math.round((second + 1) * rate))
    return { second, ...latencies(Array.from(latencyMs.subarray(from, to))) }
  })
  return { rate, seconds, sent: total, statuses, statusOf, latency: latencies(Array.from(latencyMs)), perSecond }
}
