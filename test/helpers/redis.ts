import type { Subprocess } from 'bun'
import { freePort, waitForLine } from '../../src/embedded-redis.ts'

export interface TestRedis {
  url: string
  port: number
  pid(): number
  stop(): Promise<void>
  /** Stops it (SIGKILL unless `graceful`) and starts it again on the same port. */
  restart(options?: { graceful?: boolean }): Promise<void>
}

/** A redis-server of the test's own on a free loopback port, no persistence: never someone's 6379. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  let child = await launch(port)
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
    async restart(options = {}) {
      await stop(options.graceful ? 'SIGTERM' : 'SIGKILL')
      child = await launch(port)
    },
  }
}

async function launch(port: number): Promise<Subprocess<'ignore', 'pipe', 'inherit'>> {
  const child = Bun.spawn(
    ['redis-server', '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    { stdout: 'pipe', stderr: 'inherit', stdin: 'ignore' },
  )
  if (!(await waitForLine(child.stdout, /Ready to accept connections/, 10_000))) {
    child.kill()
    throw new Error(`test redis-server did not start on port ${port}`)
  }
  return child
}
