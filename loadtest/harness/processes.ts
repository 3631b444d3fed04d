import type { Subprocess } from 'bun'

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
