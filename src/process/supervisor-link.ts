import { Counter, Histogram, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client'

/** A registry's metrics as prom-client's JSON (what AggregatorRegistry.aggregate sums). */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[]

/** What a child answers when asked to reload the instances file. */
export type ReloadReport = { pid: number; ok: true; instances: number } | { pid: number; ok: false; problems: string[] }

/** Messages between `hookgate start` and its children, over Bun's IPC channel (JSON). */
export type ToChild =
  | { kind: 'collect-metrics'; id: number }
  | { kind: 'reload'; id: number }
  | { kind: 'answer'; id: number; value: unknown }
export type ToSupervisor =
  | { kind: 'answer'; id: number; value: unknown }
  /** A child's counters and histograms, sent every few seconds and before a clean exit: what survives its death. */
  | { kind: 'counters'; metrics: MetricsJson }
  | { kind: 'fleet-metrics'; id: number }
  | { kind: 'reload-all'; id: number }

/** How often a child sends its counters, so a child killed outright loses at most this much of them. */
const COUNTERS_EVERY_MS = 2000
const ASK_TIMEOUT_MS = 5000

export interface SupervisorLink {
  /** The host's metrics: every child's registry summed by the supervisor, in Prometheus text. */
  fleetMetrics(): Promise<string>
  /** Has every child of the host reload the instances file; resolves with each child's report. */
  reloadAll(): Promise<ReloadReport[]>
  /** Sends this process's counters now (before a clean exit). */
  flush(): Promise<void>
}

/**
 * A child's side of the channel to its supervisor; undefined when this process runs alone (HOOKGATE_SUPERVISOR_PID
 * unset, or no IPC channel).
 * `reload` is how this process reloads its instances when the supervisor says so.
 */
export function linkToSupervisor(deps: { supervised: boolean; registry: Registry; reload: () => ReloadReport }): SupervisorLink | undefined {
  if (!deps.supervised || !process.send) return undefined
  const { registry, reload } = deps
  const send = (message: ToSupervisor) => process.send!(message)
  const requests = pendingRequests(ASK_TIMEOUT_MS)

  process.on('message', async (message: ToChild) => {
    switch (message.kind) {
      case 'collect-metrics':
        return send({ kind: 'answer', id: message.id, value: await registry.getMetricsAsJSON() })
      case 'reload':
        return send({ kind: 'answer', id: message.id, value: reload() })
      case 'answer':
        return requests.answered(message.id, message.value)
    }
  })

  async function ask<T>(kind: 'fleet-metrics' | 'reload-all'): Promise<T> {
    const answer = await requests.send<T>((id) => send({ kind, id }))
    if (answer === undefined) throw new Error(`the supervisor did not answer ${kind} within ${ASK_TIMEOUT_MS} ms`)
    return answer
  }

  const flush = async () => {
    send({ kind: 'counters', metrics: await countersOf(registry) })
  }
  setInterval(() => void flush().catch(() => {}), COUNTERS_EVERY_MS).unref()
  return { fleetMetrics: () => ask('fleet-metrics'), reloadAll: () => ask('reload-all'), flush }
}

/** Only what adds up over time: gauges describe a live process and die with it (and may cost a Redis read). */
async function countersOf(registry: Registry): Promise<MetricsJson> {
  const cumulative = registry.getMetricsAsArray().filter((metric) => metric instanceof Counter || metric instanceof Histogram)
  return (await Promise.all(cumulative.map((metric) => metric.get()))) as MetricsJson
}

/**
 * Requests over an IPC channel, each with an id its answer carries back: `send` resolves with the answer, or with
 * undefined when none comes within `timeoutMs` (or the channel is closed).
 */
export function pendingRequests(timeoutMs: number) {
  const waiting = new Map<number, (value: unknown) => void>()
  let nextId = 1
  return {
    send<T>(post: (id: number) => void): Promise<T | undefined> {
      const id = nextId++
      return new Promise((resolve) => {
        const done = (value: unknown) => {
          clearTimeout(timer)
          waiting.delete(id)
          resolve(value as T | undefined)
        }
        const timer = setTimeout(done, timeoutMs)
        waiting.set(id, done)
        try {
          post(id)
        } catch {
          done(undefined) // the other side is exiting: it has no channel any more
        }
      })
    },
    answered(id: number, value: unknown) {
      waiting.get(id)?.(value)
    },
  }
}
