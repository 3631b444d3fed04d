import type { Subprocess } from 'bun'
import { Redis } from 'ioredis'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitForLine } from '../../src/process/embedded-redis.ts'

/**
 * A port that is free and whose cluster bus port (port + 10000) is free too, both below Linux's ephemeral range
 * (32768 and up), so that no outgoing connection of another test takes either between this check and the node's bind
 * (a CI run lost a cluster test to that).
 */
async function freeClusterPort(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 12_700)
    if ((await free(port)) && (await free(port + 10_000))) return port
  }
}

/** Runs `work` on a connection of its own to each node. */
function onPorts<T>(ports: number[], work: (node: Redis) => Promise<T>): Promise<T[]> {
  return Promise.all(
    ports.map(async (port) => {
      const node = new Redis({ host: '127.0.0.1', port })
      try {
        return await work(node)
      } finally {
        node.disconnect()
      }
    }),
  )
}

/**
 * A Redis Cluster of three masters from the Debian package (redis-server, and redis-cli --cluster create), on free
 * loopback ports, with AOF fsynced always (`persistent`, as in tests) or no persistence (as the benchmark's single Redis).
 * `replicas: 1`: six nodes, a replica per master, and a node timeout of a second, so that a failover is quick.
 */
export async function startCluster(options: { persistent?: boolean; replicas?: 0 | 1 } = {}) {
  const { persistent = true, replicas = 0 } = options
  const dir = mkdtempSync(join(tmpdir(), 'hookgate-cluster-'))
  const ports: number[] = []
  while (ports.length < 3 * (1 + replicas)) {
    const port = await freeClusterPort()
    if (!ports.includes(port)) ports.push(port)
  }
  const children = new Map<number, Subprocess>()
  /** Starts the node on `port` (again, after it was killed: its nodes file and AOF say who it was). */
  const startNode = async (port: number) => {
    const child = Bun.spawn(
      ['redis-server', '--bind', '127.0.0.1', '--port', String(port), '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
        '--dir', dir, '--save', '', '--cluster-node-timeout', replicas ? '1000' : '15000', '--repl-diskless-sync-delay', '0',
        ...(persistent ? ['--appendonly', 'yes', '--appendfsync', 'always', '--appendfilename', `${port}.aof`, '--appenddirname', `aof-${port}`] : ['--appendonly', 'no'])],
      { stdout: 'pipe', stderr: 'inherit', stdin: 'ignore' },
    )
    if (!(await waitForLine(child.stdout, /Ready to accept connections/, 10_000))) throw new Error(`cluster node ${port} did not start`)
    children.set(port, child)
  }
  for (const port of ports) await startNode(port)
  const create = Bun.spawnSync(['redis-cli', '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { stdout: 'pipe', stderr: 'pipe' })
  if (create.exitCode !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`)

  /**
   * Resolves once every live node says the cluster is ok, with `masters` masters holding slots, and sees `dead` (a
   * killed node) as failed (polled: nothing announces it).
   */
  const settled = async (live: number[], masters: number, dead?: number) => {
    const nodes = live.map((port) => new Redis({ host: '127.0.0.1', port }))
    try {
      for (;;) {
        const states = await Promise.all(
          nodes.map(async (node) => ({ info: (await node.call('CLUSTER', 'INFO')) as string, nodes: (await node.call('CLUSTER', 'NODES')) as string })),
        )
        const agreed = states.every(
          ({ info, nodes: table }) =>
            info.includes('cluster_state:ok') &&
            table.split('\n').filter((line) => /[ ,]master /.test(line) && !line.includes('fail') && /\d+-\d+/.test(line)).length === masters &&
            (dead === undefined || table.split('\n').some((line) => line.includes(`:${dead}@`) && /[ ,]fail[ ,]/.test(line))),
        )
        if (agreed) return
        await Bun.sleep(100)
      }
    } finally {
      for (const node of nodes) node.disconnect()
    }
  }
  await settled(ports, 3)
  // A replica that has not finished its first sync cannot take over ("disconnected from master for longer than allowed").
  await onPorts(ports, async (node) => {
    for (;;) {
      const info = (await node.info('replication')) as string
      if (info.includes('role:master') || info.includes('master_link_status:up')) return
      await Bun.sleep(100)
    }
  })
  const onEachNode = <T>(work: (node: Redis) => Promise<T>): Promise<T[]> => onPorts([...children.keys()], work)
  return {
    ports,
    /** The nodes' process ids. */
    pids: () => [...children.values()].map((child) => child.pid),
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
    /** SIGKILLs the master that holds slot 0; resolves with its port. */
    async killMaster(): Promise<number> {
      const node = new Redis({ host: '127.0.0.1', port: ports[0]! })
      try {
        const slots = (await node.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
        const port = slots.find(([from]) => from === 0)![2][1]
        children.get(port)!.kill('SIGKILL')
        await children.get(port)!.exited
        children.delete(port)
        return port
      } finally {
        node.disconnect()
      }
    },
    /** The port of the replica of the master that serves `slot` now. */
    async replicaOf(slot: number): Promise<number> {
      const node = new Redis({ host: '127.0.0.1', port: [...children.keys()][0]! })
      try {
        // A node lists a replica in CLUSTER SLOTS only once gossip told it of the replica: asked too early, it has none.
        for (;;) {
          const slots = (await node.call('CLUSTER', 'SLOTS')) as [number, number, ...[string, number][]][]
          const [, , , replica] = slots.find(([from, to]) => from <= slot && slot <= to)!
          if (replica) return replica[1]
          await Bun.sleep(100)
        }
      } finally {
        node.disconnect()
      }
    },
    /** Stops a node's process (SIGSTOP) until the returned call continues it: a replica then confirms no write. */
    stall(port: number): () => void {
      const child = children.get(port)!
      child.kill('SIGSTOP')
      return () => child.kill('SIGCONT')
    },
    /** Resolves once the live nodes agree again on three masters (a replica took over the dead one's slots). */
    failedOver: (dead: number) => settled([...children.keys()], 3, dead),
    /** Starts a killed node again, as an orchestrator would; resolves once it is back as a replica, in sync. */
    async restart(port: number) {
      await startNode(port)
      const node = new Redis({ host: '127.0.0.1', port })
      try {
        while (!((await node.info('replication')) as string).includes('master_link_status:up')) await Bun.sleep(100)
      } finally {
        node.disconnect()
      }
    },
    async stop() {
      for (const child of children.values()) child.kill('SIGKILL')
      await Promise.all([...children.values()].map((c) => c.exited))
    },
  }
}
