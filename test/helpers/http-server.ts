import { freePort } from '../../src/process/embedded-redis.ts'

export interface Recorded {
  method: string
  path: string
  headers: Record<string, string>
  body: string
  at: number
  /** What it was answered: a status, or `hang`. */
  answered: number | 'hang'
}

/** What the server does with one request: answer (status, JSON body, headers, after delayMs) or hang until the client gives up. */
export type Behaviour = { status: number; json?: unknown; headers?: Record<string, string>; delayMs?: number } | 'hang'

/**
 * A real HTTP server standing in for a destination or the Chatwoot API: it records every request and answers with
 * the behaviours queued by `answer()` in order, then with `fallback`.
 */
export async function startRecorder(fallback: Behaviour = { status: 200, json: { ok: true } }) {
  const requests: Recorded[] = []
  const queued: Behaviour[] = []
  const waiters: { done: () => boolean; resolve: () => void }[] = []
  const port = await freePort()
  const server = Bun.serve({
    port,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      const behaviour = queued.shift() ?? fallback
      const answered = behaviour === 'hang' ? 'hang' : behaviour.status
      requests.push({ method: request.method, path: url.pathname + url.search, headers: Object.fromEntries(request.headers), body: await request.text(), at: Date.now(), answered })
      for (const waiter of waiters.filter((w) => w.done())) waiter.resolve()
      if (behaviour === 'hang') return new Promise<Response>(() => {})
      if (behaviour.delayMs) await Bun.sleep(behaviour.delayMs)
      return Response.json(behaviour.json ?? {}, { status: behaviour.status, headers: behaviour.headers })
    },
  })
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    answer(...behaviours: Behaviour[]) {
      queued.push(...behaviours)
    },
    /** Resolves once `count` requests that match (all, by default) have arrived; returns them. */
    received(count: number, matching: (request: Recorded) => boolean = () => true): Promise<Recorded[]> {
      const found = () => requests.filter(matching)
      if (found().length >= count) return Promise.resolve(found())
      return new Promise((resolve) => waiters.push({ done: () => found().length >= count, resolve: () => resolve(found()) }))
    },
    stop: () => server.stop(true),
  }
}
