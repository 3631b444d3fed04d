/**
 * Runs the k6 scenarios of loadtest/ in Bun, for the test suite (k6 itself cannot be installed here): the scripts
 * import `k6`, `k6/http`, `k6/crypto`, `k6/metrics` and `k6/data`, which this maps to small stand-ins with k6's
 * semantics (synchronous HTTP through curl, checks and custom metrics recorded), so the very code an operator runs
 * sends its requests to a real gateway and its checks are judged on the real answers. Executors are not emulated:
 * a run calls a scenario function for the VUs and iterations asked, one at a time.
 */
import { plugin } from 'bun'
import { createHmac, randomBytes } from 'node:crypto'

interface Response {
  status: number
  body: string
  headers: Record<string, string>
  json(): unknown
}

interface Params {
  headers?: Record<string, string>
  tags?: Record<string, string>
}

/** What the running script did: every check's passes and failures, each custom Counter's sum, every answer. */
const current = {
  checks: new Map<string, { passes: number; fails: number }>(),
  counters: new Map<string, number>(),
  responses: [] as Response[],
}
const vuState = globalThis as unknown as { __ENV: Record<string, string>; __VU: number; __ITER: number }

function request(method: string, url: string, body: string | null, params: Params = {}): Response {
  const args = ['curl', '-sS', '-X', method, '-D', '-', '--max-time', '10']
  for (const [name, value] of Object.entries(params.headers ?? {})) args.push('-H', `${name}: ${value}`)
  if (body !== null) args.push('--data-binary', '@-')
  args.push(url)
  const done = Bun.spawnSync(args, { stdin: body === null ? 'ignore' : Buffer.from(body), stdout: 'pipe', stderr: 'pipe' })
  const text = done.stdout.toString()
  const split = text.indexOf('\r\n\r\n')
  const [statusLine = '', ...headerLines] = text.slice(0, split).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    // k6 canonicalises header names: Retry-After, Content-Type.
    const name = line.slice(0, colon).toLowerCase().replace(/(^|-)[a-z]/g, (c) => c.toUpperCase())
    headers[name] = line.slice(colon + 1).trim()
  }
  const responseBody = split < 0 ? '' : text.slice(split + 4)
  const response = {
    status: done.exitCode === 0 ? Number(statusLine.split(' ')[1]) : 0,
    body: responseBody,
    headers,
    json: () => JSON.parse(responseBody),
  }
  current.responses.push(response)
  return response
}

const http = {
  post: (url: string, body: string, params?: Params) => request('POST', url, body, params),
  get: (url: string, params?: Params) => request('GET', url, null, params),
  batch: (requests: { method: string; url: string; body?: string; params?: Params }[]) =>
    requests.map((r) => request(r.method, r.url, r.body ?? null, r.params)),
  expectedStatuses: (...statuses: number[]) => ({ statuses }),
}

function check(value: unknown, sets: Record<string, (value: unknown) => boolean>): boolean {
  let all = true
  for (const [name, predicate] of Object.entries(sets)) {
    const ok = Boolean(predicate(value))
    const seen = current.checks.get(name) ?? { passes: 0, fails: 0 }
    seen[ok ? 'passes' : 'fails']++
    current.checks.set(name, seen)
    all &&= ok
  }
  return all
}

class Counter {
  constructor(readonly name: string) {}
  add(value: number) {
    current.counters.set(this.name, (current.counters.get(this.name) ?? 0) + value)
  }
}

const modules: Record<string, Record<string, unknown>> = {
  k6: { check, sleep: (seconds: number) => Bun.sleepSync(seconds * 1000), group: (_: string, fn: () => unknown) => fn() },
  'k6/http': { default: http, ...http },
  'k6/crypto': {
    default: {
      hmac: (algorithm: string, secret: string, data: string, encoding: 'hex') => createHmac(algorithm, secret).update(data).digest(encoding),
      randomBytes: (size: number) => new Uint8Array(randomBytes(size)).buffer,
    },
  },
  'k6/metrics': { Counter, Rate: Counter, Trend: Counter, Gauge: Counter },
  'k6/data': { SharedArray: class { constructor(_: string, build: () => unknown[]) { return build() } } },
}

plugin({
  name: 'k6 stand-ins',
  setup(build) {
    for (const [specifier, exports] of Object.entries(modules)) build.module(specifier, () => ({ exports, loader: 'object' }))
  },
})

/** What a run reports (printed as JSON by the command below). */
export interface K6RunReport {
  checks: Record<string, { passes: number; fails: number }>
  counters: Record<string, number>
  statuses: Record<string, number>
  options: unknown
  summaryFiles: string[]
  summaryText: string
}

/**
 * `bun test/helpers/k6-shim.ts <script> <exec> <vus> <iterations>`, with the scenario's settings in the environment
 * (k6's __ENV, read by the scripts at init): setup once, then `exec` for each VU and iteration, then handleSummary
 * on a minimal summary. A process per run, so each gets its own __ENV.
 */
if (import.meta.main) {
  const [path, exec = 'default', vus = '1', iterations = '1'] = process.argv.slice(2)
  vuState.__ENV = process.env as Record<string, string>
  vuState.__VU = 0
  vuState.__ITER = 0
  const script = (await import(path!)) as Record<string, unknown>
  const data = (script.setup as () => unknown)()
  for (let iteration = 0; iteration < Number(iterations); iteration++) {
    for (let vu = 1; vu <= Number(vus); vu++) {
      vuState.__VU = vu
      vuState.__ITER = iteration
      ;(script[exec] as (data: unknown) => void)(data)
    }
  }
  const statuses: Record<string, number> = {}
  for (const { status } of current.responses) statuses[status] = (statuses[status] ?? 0) + 1
  const summary = (script.handleSummary as (data: unknown) => Record<string, string>)({
    metrics: {
      http_reqs: { values: { count: current.responses.length, rate: 1 } },
      http_req_duration: { values: { med: 1, 'p(95)': 2, 'p(99)': 3, max: 4 }, thresholds: { 'p(95)<50': { ok: true } } },
    },
  })
  const report: K6RunReport = {
    checks: Object.fromEntries(current.checks),
    counters: Object.fromEntries(current.counters),
    statuses,
    options: script.options,
    summaryFiles: Object.keys(summary),
    summaryText: summary.stdout ?? '',
  }
  console.log(JSON.stringify(report))
}
