import type { Subprocess } from 'bun'
import { Redis } from 'ioredis'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitForLine } from '../../src/embedded-redis.ts'

/** A port that is free and whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000)
    if ((await free(port)) && (await free(port + 10_000))) return port
  }
}

/**
 * A Redis Cluster of three masters from the Debian package (redis-server, and redis-cli --cluster create), on free
 * loopback ports, with AOF fsynced always (`persistent`, as in tests) or no persistence (as the benchmark's single Redis).
 */
export async function startCluster(options: { persistent?: boolean } = {}) {
  const { persistent = true } = options
  const dir = mkdtempSync(join(tmpdir(), 'hookgate-cluster-'))
  const ports = [await freeClusterPort(), await freeClusterPort(), await freeClusterPort()]
  const children: Subprocess[] = []
  for (const port of ports) {
    const child = Bun.spawn(
      ['redis-server', '--bind', '127.0.0.1', '--port', String(port), '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
        '--dir', dir, '--save', '',
        ...(persistent ? ['--appendonly', 'yes', '--appendfsync', 'always', '--appendfilename', `${port}.aof`, '--appenddirname', `aof-${port}`] : ['--appendonly', 'no'])],
      { stdout: 'pipe', stderr: 'inherit', stdin: 'ignore' },
    )
    if (!(await waitForLine(child.stdout, /Ready to accept connections/, 10_000))) throw new Error(`cluster node ${port} did not start`)
    children.push(child)
  }
  const create = Bun.spawnSync(['redis-cli', '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdout: 'pipe', stderr: 'pipe' })
  if (create.exitCode !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`)
  const nodes = ports.map((port) => new Redis({ host: '127.0.0.1', port }))
  try {
    // Every node must agree the cluster is ok before clients use it.
    while (!(await Promise.all(nodes.map((n) => n.call('CLUSTER', 'INFO') as Promise<string>))).every((info) => info.includes('cluster_state:ok'))) {
      await Bun.sleep(100)
    }
  } finally {
    for (const node of nodes) node.disconnect()
  }
  const onEachNode = <T>(work: (node: Redis) => Promise<T>): Promise<T[]> =>
    Promise.all(
      ports.map(async (port) => {
        const node = new Redis({ host: '127.0.0.1', port })
        try {
          return await work(node)
        } finally {
          node.disconnect()
        }
      }),
    )
  return {
    ports,
    env: { REDIS_CLUSTER_NODES: ports.map((p) => `127.0.0.1:${p}`).join(',') },
    /** Keys each master holds (matching `pattern`, or all), in port order. */
    keysPerNode: (pattern?: string) => onEachNode(async (node) => (pattern ? (await node.keys(pattern)).length : node.dbsize())),
    /** Commands each master ran since the last resetStats (INFO commandstats), in port order. */
    commandsPerNode: () =>
      onEachNode(async (node) => {
        const stats = (await node.info('commandstats')) as string
        return [...stats.matchAll(/^cmdstat_(?!info|config)[^:]+:calls=(\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0)
      }),
    async resetStats() {
      await onEachNode((node) => node.config('RESETSTAT'))
    },
    async stop() {
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(children.map((c) => c.exited))
    },
  }
}
