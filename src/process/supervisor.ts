import type { Subprocess } from 'bun'
import { Counter, Registry } from 'prom-client'
import type { Config } from '../config/config.ts'
import { createFleetMetrics } from './fleet-metrics.ts'
import type { Log } from '../log.ts'
import { pendingRequests, type MetricsJson, type ReloadReport, type ToChild, type ToSupervisor } from './supervisor-link.ts'

export interface Supervisor {
  /** SIGTERM to every child, a wait for them (SHUTDOWN_TIMEOUT_MS and a little), then SIGKILL. Idempotent. */
  stop(): Promise<void>
  /** Resolves when the supervisor gives up on a crash-looping child (it has then stopped the others). */
  failed: Promise<void>
  /** Has every child reload the instances file (SIGHUP); resolves with each child's report. */
  reload(): Promise<ReloadReport[]>
}

type Role = 'api' | 'worker'

/** Restarts of one child within CRASH_WINDOW_MS past which it is crash-looping and the supervisor gives up. */
const MAX_RESTARTS = 5
const CRASH_WINDOW_MS = 60_000
const MAX_RESTART_DELAY_MS = 10_000
/** How long a scrape or a reload waits for each child's answer. */
const CHILD_ANSWER_MS = 2000

/**
 * `hookgate start`: API_PROCESSES `hookgate api` children on one port (SO_REUSEPORT: the kernel spreads connections)
 * and WORKER_PROCESSES `hookgate worker` children, the same executable in another role. A child that dies is restarted
 * with backoff; one that keeps dying stops the whole gateway, loudly.
 */
export function startSupervisor(config: Config, env: Record<string, string | undefined>, log: Log): Supervisor {
  const self = selfCommand()
  let stopping = false
  let giveUp!: () => void
  const failed = new Promise<void>((resolve) => (giveUp = resolve))
  const children = new Set<Subprocess>()
  const registry = new Registry()
  const restartsTotal = new Counter({
    name: 'hookgate_child_restarts_total',
    help: 'Children of `hookgate start` that died and were restarted, by role',
    labelNames: ['role'] as const,
    registers: [registry],
  })
  const fleetMetrics = createFleetMetrics(registry)
  const requests = pendingRequests(CHILD_ANSWER_MS)

  /** Asks every live child and gathers the answers that come within CHILD_ANSWER_MS, by pid. */
  async function askChildren<T>(kind: 'collect-metrics' | 'reload'): Promise<Map<number, T>> {
    const answers = new Map<number, T>()
    await Promise.all(
      [...children].map(async (child) => {
        const answer = await requests.send<T>((id) => child.send({ kind, id } satisfies ToChild))
        if (answer !== undefined) answers.set(child.pid, answer)
      }),
    )
    return answers
  }

  async function reload(): Promise<ReloadReport[]> {
    const reports = [...(await askChildren<ReloadReport>('reload')).values()]
    const refused = reports.filter((report) => !report.ok)
    if (refused.length) log.error({ refused }, 'instances reload refused; the previous instances stay')
    else log.info({ processes: reports.length }, 'instances reloaded')
    return reports
  }

  async function onMessage(child: Subprocess, message: ToSupervisor) {
    switch (message.kind) {
      case 'answer':
        return requests.answered(message.id, message.value)
      case 'counters':
        return fleetMetrics.update(child.pid, message.metrics)
      case 'fleet-metrics':
        return child.send({ kind: 'answer', id: message.id, value: await fleetMetrics.render(await askChildren<MetricsJson>('collect-metrics')) } satisfies ToChild)
      case 'reload-all':
        return child.send({ kind: 'answer', id: message.id, value: await reload() } satisfies ToChild)
    }
  }

  function spawn(role: Role, slot: number, restarts: number[] = []) {
    const child = Bun.spawn([...self, role], {
      env: { ...env, HOOKGATE_SUPERVISOR_PID: String(process.pid) },
      stdout: 'inherit',
      stderr: 'inherit',
      stdin: 'ignore',
      serialization: 'json',
      ipc: (message: ToSupervisor, from) => {
        onMessage(from, message).catch((error: Error) => log.error({ err: error.message, kind: message.kind }, 'child request failed'))
      },
    })
    children.add(child)
    log.info({ role, slot, childPid: child.pid }, 'child started')
    void child.exited.then(async (code) => {
      children.delete(child)
      await fleetMetrics.retire(child.pid)
      if (stopping) return
      restartsTotal.inc({ role })
      const now = Date.now()
      const recent = [...restarts.filter((at) => now - at < CRASH_WINDOW_MS), now]
      log.error({ role, slot, childPid: child.pid, code, signal: child.signalCode }, 'child died; restarting it')
      if (recent.length > MAX_RESTARTS) {
        log.fatal({ role, slot, restarts: recent.length, windowMs: CRASH_WINDOW_MS }, 'child keeps dying; stopping the gateway')
        void stop().then(giveUp)
        return
      }
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, 250 * 2 ** (recent.length - 1))
      setTimeout(() => stopping || spawn(role, slot, recent), delayMs)
    })
  }

  async function stop() {
    if (stopping) return
    stopping = true
    for (const child of children) child.kill('SIGTERM')
    const deadline = setTimeout(() => {
      for (const child of children) child.kill('SIGKILL')
    }, config.workers.shutdownTimeoutMs + 2000)
    await Promise.all([...children].map((child) => child.exited))
    clearTimeout(deadline)
    log.info('all children stopped')
  }

  for (let slot = 0; slot < config.processes.api; slot++) spawn('api', slot)
  for (let slot = 0; slot < config.processes.workers; slot++) spawn('worker', slot)
  return { stop, failed, reload }
}

/** This program again: the compiled binary alone, or `bun <entry script>` when run from source. */
function selfCommand(): string[] {
  return Bun.main.startsWith('/$bunfs/') ? [process.execPath] : [process.execPath, Bun.main]
}
