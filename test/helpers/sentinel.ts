import type { Subprocess } from 'bun'
import { Redis } from 'ioredis'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForLine } from '../../src/process/embedded-redis.ts'

export const MASTER_NAME = 'hookgate'
/** Redis and the sentinels each require a password, as in production: hookgate must bring both. */
export const REDIS_PASSWORD = 'redis-password-0123'
export const SENTINEL_PASSWORD = 'sentinel-password-0123'

/**
 * Redis Sentinel from the Debian packages (redis-server, redis-sentinel), on free loopback ports: a master and two
 * replicas (AOF fsynced always) watched by three sentinels (quorum 2) that fail over within about four seconds. Two
 * replicas, as Sentinel's own guide sets it up: after a failover the new master still has one, so writes waiting for a
 * replica (REDIS_WAIT_REPLICAS) go on being confirmed.
 */
export async function startSentinelSet() {
  const dir = mkdtempSync(join(tmpdir(), 'hookgate-sentinel-'))
  const children: Subprocess[] = []
  const launch = async (args: string[], ready: RegExp) => {
    const child = Bun.spawn(args, { stdout: 'pipe', stderr: 'inherit', stdin: 'ignore' })
    if (!(await waitForLine(child.stdout, ready, 10_000))) throw new Error(`did not start: ${args.join(' ')}`)
    children.push(child)
    return child
  }
  const server = async (port: number, name: string, extra: string[] = []) =>
    launch(
      ['redis-server', '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
        '--dir', dir, '--appendfilename', `${name}.aof`, '--appenddirname', `${name}-aof`,
        '--requirepass', REDIS_PASSWORD, '--masterauth', REDIS_PASSWORD, ...extra],
      /Ready to accept connections/,
    )

  const masterPort = await freePort()
  const replicaPorts = [await freePort(), await freePort()]
  // Diskless sync at once: by default a master waits 5 s for more replicas before it starts a replica's first sync.
  const syncAtOnce = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0']
  const master = await server(masterPort, 'master', syncAtOnce)
  const replicas: Subprocess[] = []
  for (const [i, port] of replicaPorts.entries()) replicas.push(await server(port, `replica-${i}`, [...syncAtOnce, '--replicaof', '127.0.0.1', String(masterPort)]))
  const sentinelPorts = [await freePort(), await freePort(), await freePort()]
  for (const port of sentinelPorts) {
    // Sentinel rewrites its config file: each gets its own, writable.
    const file = join(dir, `sentinel-${port}.conf`)
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `requirepass ${SENTINEL_PASSWORD}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
        `sentinel auth-pass ${MASTER_NAME} ${REDIS_PASSWORD}`,
        // Not 1 s: a new master stalled that long on its fsyncs (the disk busy elsewhere) was taken for dead and a second
        // failover promoted the other replica, discarding what the first had not yet passed on.
        `sentinel down-after-milliseconds ${MASTER_NAME} 3000`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        '',
      ].join('\n'),
    )
    await launch(['redis-sentinel', file], /Sentinel ID is/)
  }
  const sentinels = sentinelPorts.map((port) => ({ host: '127.0.0.1', port }))
  const ask = new Redis({ host: '127.0.0.1', port: sentinelPorts[0], password: SENTINEL_PASSWORD })
  // The masters the first sentinel switched to (its +switch-master events): a second failover explains a failed test.
  const switches: string[] = []
  const events = new Redis({ host: '127.0.0.1', port: sentinelPorts[0], password: SENTINEL_PASSWORD })
  await events.subscribe('+switch-master')
  events.on('message', (_channel: string, message: string) => switches.push(message.split(' ').slice(3).join(':')))

  /** Resolves when the replicas are in sync and every sentinel knows them and the other sentinels (ready to fail over). */
  async function ready(): Promise<void> {
    for (const port of replicaPorts) {
      const replica = new Redis({ host: '127.0.0.1', port, password: REDIS_PASSWORD })
      try {
        while (!(await replica.info('replication')).includes('master_link_status:up')) await Bun.sleep(100)
      } finally {
        replica.disconnect()
      }
    }
    for (;;) {
      const views = await Promise.all(
        sentinelPorts.map(async (port) => {
          const sentinel = new Redis({ host: '127.0.0.1', port, password: SENTINEL_PASSWORD })
          try {
            const [master] = (await sentinel.call('SENTINEL', 'masters')) as string[][]
            const field = (name: string) => master![master!.indexOf(name) + 1]
            return Number(field('num-slaves')) >= replicaPorts.length && Number(field('num-other-sentinels')) >= 2
          } finally {
            sentinel.disconnect()
          }
        }),
      )
      if (views.every(Boolean)) return
      await Bun.sleep(200) // sentinels discover each other by hello messages: poll, bounded by the test's timeout
    }
  }

  return {
    sentinels,
    masterPort,
    /** REDIS_* settings that point hookgate at this set. */
    env: {
      REDIS_SENTINEL_ENABLED: 'true',
      REDIS_SENTINELS: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
      REDIS_MASTER_NAME: MASTER_NAME,
      REDIS_PASSWORD,
      REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD,
    },
    /** How the test itself reaches the master through the sentinels. */
    connection: { sentinels, name: MASTER_NAME, password: REDIS_PASSWORD, sentinelPassword: SENTINEL_PASSWORD },
    ready,
    /** Each master the sentinels failed over to so far, as host:port. */
    switches: () => [...switches],
    /** The port the sentinels name as master now. */
    async currentMasterPort(): Promise<number> {
      const [, port] = (await ask.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as [string, string]
      return Number(port)
    },
    /** Stops the replicas' processes (SIGSTOP) until the returned call continues them: they confirm no write meanwhile. */
    stallReplicas(): () => void {
      for (const replica of replicas) replica.kill('SIGSTOP')
      return () => {
        for (const replica of replicas) replica.kill('SIGCONT')
      }
    },
    /** SIGKILLs the master. */
    async killMaster(): Promise<void> {
      master.kill('SIGKILL')
      await master.exited
    },
    async stop(): Promise<void> {
      ask.disconnect()
      events.disconnect()
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(children.map((child) => child.exited))
    },
  }
}
