import type { Subprocess } from 'bun'

const HIGH = '1000000'

/**
 * The environment the harness runs `hookgate start` with: loopback, its own Redis and instances file, and instance
 * limits as high as they go, so nothing is shaped or refused: the harness measures the path, not the policy.
 */
export function hookgateEnv(options: {
  port: number
  redisUrl: string
  instancesFile: string
  work: string
  apiProcesses: number
  workerProcesses: number
}): Record<string, string> {
  return {
    PORT: String(options.port),
    HOST: '127.0.0.1',
    REDIS_URL: options.redisUrl,
    HOOKGATE_CONFIG: options.instancesFile,
    HOOKGATE_DATA_DIR: options.work,
    LOG_LEVEL: 'info',
    API_PROCESSES: String(options.apiProcesses),
    WORKER_PROCESSES: String(options.workerProcesses),
    RATE_LIMIT_INSTANCE_PER_SECOND: HIGH,
    RATE_LIMIT_INSTANCE_BURST: HIGH,
    RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: HIGH,
  }
}

export interface Server {
  name: string
  pid: number
  stop(): Promise<void>
}

/**
 * Starts a server process and resolves once `readyUrl` answers 200. Its logs go to /dev/null (they cost what they cost
 * in production without filling a terminal); what it says on stderr is shown only if it fails to start.
 */
export async function startServer(name: string, command: string[], env: Record<string, string>, readyUrl: string): Promise<Server> {
  const child: Subprocess<'ignore', 'ignore', 'pipe'> = Bun.spawn(command, { env: { ...process.env, ...env }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
  let stderr = ''
  void (async () => {
    for await (const chunk of child.stderr) stderr += new TextDecoder().decode(chunk)
  })()
  for (let waited = 0; ; waited += 50) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} before serving:\n${stderr}`)
    if (await fetch(readyUrl).then((r) => r.ok, () => false)) break
    if (waited > 20_000) {
      child.kill('SIGKILL')
      throw new Error(`${name} did not answer ${readyUrl} within 20 s:\n${stderr}`)
    }
    await Bun.sleep(50)
  }
  return {
    name,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM')
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await child.exited
      clearTimeout(killer)
    },
  }
}
