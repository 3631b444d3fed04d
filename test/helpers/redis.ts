import type { Subprocess } from 'bun'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForLine } from '../../src/process/embedded-redis.ts'

export interface TestRedis {
  url: string
  port: number
  pid(): number
  stop(): Promise<void>
  /** Stops it (SIGKILL unless `graceful`) and starts it again on the same port. */
  restart(options?: { graceful?: boolean }): Promise<void>
  /** Kills it (SIGKILL) and leaves it down until start(). */
  kill(): Promise<void>
  /** Starts it again on the same port (and, with AOF, the same data). */
  start(): Promise<void>
  /** SIGSTOP freezes it (connections stay open, nothing answers); SIGCONT thaws it. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void
}

/**
 * A redis-server of the test's own on a free loopback port: never someone's 6379. No persistence by default; with
 * `aof`, an append-only file in a temp dir with that fsync policy. Only `always` keeps everything Redis acknowledged
 * through a SIGKILL: with `everysec`, a write held back while a slow fsync runs is answered and then lost.
 */
export async function startRedis(options: { aof?: 'always' | 'everysec' } = {}): Promise<TestRedis> {
  const port = await freePort()
  const persistence = options.aof
    ? ['--appendonly', 'yes', '--appendfsync', options.aof, '--dir', mkdtempSync(join(tmpdir(), 'hookgate-redis-'))]
    : ['--appendonly', 'no']
  let child = await launch(port, persistence)
  const stop = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM') => {
    if (child.exitCode !== null) return
    child.kill(signal)
    await child.exited
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => child.pid,
    stop: () => stop(),
    async restart(restartOptions = {}) {
      await stop(restartOptions.graceful ? 'SIGTERM' : 'SIGKILL')
      child = await launch(port, persistence)
    },
    kill: () => stop('SIGKILL'),
    async start() {
      child = await launch(port, persistence)
    },
    signal: (signal) => process.kill(child.pid, signal),
  }
}

async function launch(port: number, persistence: string[]): Promise<Subprocess<'ignore', 'pipe', 'inherit'>> {
  const child = Bun.spawn(['redis-server', '--bind', '127.0.0.1', '--port', String(port), '--save', '', ...persistence], {
    stdout: 'pipe',
    stderr: 'inherit',
    stdin: 'ignore',
  })
  if (!(await waitForLine(child.stdout, /Ready to accept connections/, 10_000))) {
    child.kill()
    throw new Error(`test redis-server did not start on port ${port}`)
  }
  return child
}
