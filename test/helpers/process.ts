import type { Subprocess } from 'bun'
import { join } from 'node:path'
import type { Env } from '../../src/config/config.ts'

const MAIN = join(import.meta.dir, '../../src/main.ts')

export interface HookgateProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Everything it printed so far, stdout and stderr. */
  output(): string
  /** Resolves with the `count`th output line matching (the first by default), or rejects when the process exits first or time runs out. */
  waitFor(pattern: RegExp, timeoutMs?: number, count?: number): Promise<string>
  /** Resolves with the exit code once the process ends by itself. */
  exit(): Promise<number>
  stop(signal?: NodeJS.Signals): Promise<number>
}

/** Runs `hookgate <args>` as a real child process (what an operator or a Docker replica runs). */
export function spawnHookgate(args: string[], env: Env): HookgateProcess {
  const proc = Bun.spawn(['bun', MAIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as Record<string, string>,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let text = ''
  const waiters = new Set<() => void>()
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true })
      for (const wake of waiters) wake()
    }
  }
  const drained = Promise.all([pump(proc.stdout), pump(proc.stderr)])
  void drained.then(() => {
    for (const wake of waiters) wake()
  })

  return {
    proc,
    output: () => text,
    waitFor(pattern, timeoutMs = 15_000, count = 1) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out waiting for ${pattern}; output:\n${text}`)), timeoutMs)
        const check = () => {
          const line = text.split('\n').filter((l) => pattern.test(l))[count - 1]
          if (line !== undefined) finish(undefined, line)
          else if (proc.exitCode !== null) finish(new Error(`exited ${proc.exitCode} before ${pattern}; output:\n${text}`))
        }
        function finish(error?: Error, line?: string) {
          clearTimeout(timer)
          waiters.delete(check)
          if (error) reject(error)
          else resolve(line!)
        }
        waiters.add(check)
        void proc.exited.then(check)
        check()
      })
    },
    async exit() {
      const code = await proc.exited
      await drained
      return code
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal)
      return this.exit()
    },
  }
}

/** Starts `hookgate api` and resolves once it listens. */
export async function startApiProcess(env: Env): Promise<HookgateProcess & { port: number; pid: number }> {
  const child = spawnHookgate(['api'], { ...env, LOG_LEVEL: 'info' })
  const line = await child.waitFor(/"msg":"api listening"/)
  return Object.assign(child, { port: JSON.parse(line).port as number, pid: child.proc.pid })
}
