import { join } from 'node:path'

export interface WrkResult {
  requests: number
  rps: number
  /** Answers outside 2xx/3xx. */
  non2xx: number
  /** Connect, read, write errors and timeouts. */
  socketErrors: number
  p50: number
  p95: number
  p99: number
  max: number
}

/**
 * Peak throughput with wrk (closed loop: `connections` keep one request each in flight), every request a new
 * message_created (loadtest/wrk-webhook.lua). Latencies in ms.
 */
export async function runWrk(options: { url: string; seconds: number; connections: number; threads: number; bodyFile: string }): Promise<WrkResult> {
  const { origin, pathname, search } = new URL(options.url)
  const run = Bun.spawn(
    ['wrk', '-t', String(options.threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '-s', join(import.meta.dir, '../wrk-webhook.lua'), origin],
    { env: { ...process.env, BODY_FILE: options.bodyFile, WEBHOOK_PATH: pathname + search }, stdout: 'pipe', stderr: 'pipe' },
  )
  const [out, err, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited])
  const line = out.split('\n').find((l) => l.startsWith('{"wrk":true'))
  if (code !== 0 || !line) throw new Error(`wrk failed (${code}):\n${out}\n${err}`)
  const result = JSON.parse(line) as { requests: number; durationUs: number; non2xx: number; socketErrors: number; p50: number; p95: number; p99: number; max: number }
  const ms = (us: number) => Math.round(us / 10) / 100
  return {
    requests: result.requests,
    rps: Math.round(result.requests / (result.durationUs / 1e6)),
    non2xx: result.non2xx,
    socketErrors: result.socketErrors,
    p50: ms(result.p50),
    p95: ms(result.p95),
    p99: ms(result.p99),
    max: ms(result.max),
  }
}
