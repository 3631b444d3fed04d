/** The value below which `p` percent of `sorted` (ascending) falls; nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export interface Latencies {
  p50: number
  p95: number
  p99: number
  max: number
}

/** Percentiles of unsorted values (ms), rounded to 0.01. */
export function latencies(values: readonly number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (ms: number) => Math.round(ms * 100) / 100
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
  }
}
