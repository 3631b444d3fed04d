import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Log } from '../log.ts'

export interface EmbeddedRedis {
  url: string
  stop(): Promise<void>
}

export class RedisServerMissing extends Error {
  constructor() {
    super(
      'hookgate start needs Redis and found no redis-server on PATH.\n' +
        '  Either install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)\n' +
        '  or point hookgate at your Redis: REDIS_URL=redis://host:6379 bun run start',
    )
  }
}

/**
 * Runs redis-server from PATH as a child for `hookgate start` when no REDIS_URL is set: loopback only, on a free
 * port, data under <dataDir>/redis with AOF on (accepted webhooks survive a restart), stopped with the gateway.
 */
export async function startEmbeddedRedis(dataDir: string, log: Log): Promise<EmbeddedRedis> {
  const binary = Bun.which('redis-server')
  if (!binary) throw new RedisServerMissing()
  const dir = join(dataDir, 'redis')
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const child = Bun.spawn(
    [
      binary, '--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes',
      '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes',
    ],
    { stdout: 'pipe', stderr: 'pipe' },
  )
  const ready = await waitForLine(child.stdout, /Ready to accept connections/, 15_000)
  if (!ready) {
    child.kill()
    throw new Error(`embedded redis-server did not start (exit ${await child.exited}); see ${dir}`)
  }
  log.info({ port, dir }, 'embedded redis started')
  let stopping: Promise<void> | undefined
  child.exited.then((code) => {
    if (!stopping) log.error({ code }, 'embedded redis exited unexpectedly')
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      (stopping ??= (async () => {
        child.kill('SIGTERM')
        await child.exited
        log.info('embedded redis stopped')
      })()),
  }
}

/** A port the kernel says is free now; redis-server binds it a moment later. */
export async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = probe
  probe.stop(true)
  return port
}

/** Reads a child's output until a line matches, then keeps draining it so the child never blocks on a full pipe. */
export async function waitForLine(stream: ReadableStream<Uint8Array>, pattern: RegExp, timeoutMs: number): Promise<boolean> {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let seen = ''
  let timer: Timer | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
  const found = (async () => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return false
      seen = (seen + decoder.decode(value, { stream: true })).slice(-4096)
      if (pattern.test(seen)) return true
    }
  })()
  const result = await Promise.race([found, timeout])
  clearTimeout(timer)
  void (async () => {
    await found.catch(() => false)
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return
  })()
  return result
}
