import type { Subprocess } from 'bun'
import type { Config } from './config.ts'
import type { Log } from './log.ts'

export interface Supervisor {
  /** SIGTERM to every child, a wait for them (SHUTDOWN_TIMEOUT_MS and a little), then SIGKILL. Idempotent. */
  stop(): Promise<void>
  /** Resolves when the supervisor gives up on a crash-looping child (it has then stopped the others). */
  failed: Promise<void>
}

type Role = 'api' | 'worker'

/** Restarts of one child within CRASH_WINDOW_MS past which it is crash-looping and the supervisor gives up. */
const MAX_RESTARTS = 5
const CRASH_WINDOW_MS = 60_000
const MAX_RESTART_DELAY_MS = 10_000

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

  function spawn(role: Role, slot: number, restarts: number[] = []) {
    const child = Bun.spawn([...self, role], {
      env: { ...env, HOOKGATE_SUPERVISOR_PID: String(process.pid) },
      stdout: 'inherit',
      stderr: 'inherit',
      stdin: 'ignore',
    })
    children.add(child)
    log.info({ role, slot, pid: child.pid }, 'child started')
    void child.exited.then((code) => {
      children.delete(child)
      if (stopping) return
      const now = Date.now()
      const recent = [...restarts.filter((at) => now - at < CRASH_WINDOW_MS), now]
      log.error({ role, slot, pid: child.pid, code, signal: child.signalCode }, 'child died; restarting it')
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
  return { stop, failed }
}

/** This program again: the compiled binary alone, or `bun <entry script>` when run from source. */
function selfCommand(): string[] {
  return Bun.main.startsWith('/$bunfs/') ? [process.execPath] : [process.execPath, Bun.main]
}
