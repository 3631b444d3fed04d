import { Elysia } from 'elysia'
import { breakerStates, closeBreaker } from '../../admin/breakers.ts'
import { eventsAfter, matches, newestEventId, searchEvents, type EventFilter, type LoggedEvent } from '../../admin/events.ts'
import { eventHistory } from '../../admin/history.ts'
import { overview } from '../../admin/overview.ts'
import { listFailedDeliveries, replayFailedDeliveries, type ReplayFilter } from '../../admin/replay.ts'
import type { AppDeps } from '../app.ts'
import { parseTime } from '../admin.ts'
import script from './client.browser.js' with { type: 'text' }
import { html, type Html } from './html.ts'
import * as pages from './pages.ts'
import { SESSION_COOKIE, cookieOf, sessionCookie, type Sessions } from './session.ts'
import style from './style.css' with { type: 'text' }

const { CONSOLE } = pages
/** Browsers load nothing but this gateway's own files, and post forms nowhere else. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': CSP,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
}
const OVERVIEW_REFRESH_MS = 5000
const LIVE_POLL_MS = 1000
/** A comment this often keeps the stream's connection from idling out (HTTP_IDLE_TIMEOUT_SECONDS). */
const LIVE_PING_MS = 5000
const LIST_LIMIT = 200

/** The console's own answers: HTML pages and their two files. Its data comes from src/admin, as the admin API's does. */
export function consoleRoutes(deps: AppDeps, sessions: Sessions) {
  const { config, instances, redis, queues, limiter, clientIp } = deps
  const { prefix } = config.queue
  const secure = config.http.publicUrl.startsWith('https:')

  const sessionOf = (request: Request) => cookieOf(request.headers.get('cookie'), SESSION_COOKIE)
  /** The page, or only its <main> when the overview's script asks to refresh it. */
  const page = (request: Request, options: pages.Page, content: Html, status = 200) => {
    const session = sessionOf(request)
    const csrf = session ? sessions.csrfToken(session) : undefined
    const body = request.headers.get('x-console-fragment') ? content : pages.layout({ ...options, csrf }, content)
    return new Response(body.text, { status, headers: PAGE_HEADERS })
  }
  const csrfOf = (request: Request) => sessions.csrfToken(sessionOf(request) ?? '')
  const form = async (request: Request) => new URLSearchParams(await request.text())
  /** A form post of the console: its CSRF token must be the session's (Bearer and Basic callers use the JSON API). */
  const checkedForm = async (request: Request) => {
    const fields = await form(request)
    return sessions.csrfValid(sessionOf(request), fields.get('csrf') ?? undefined) ? fields : undefined
  }
  const forbidden = (request: Request) =>
    page(request, { title: 'Refused' }, pages.messagePage('Refused', 'This form did not come from this console (its CSRF token is missing or wrong). Reload the page and try again.'), 403)
  const instanceIds = () => instances.list().map((i) => i.id)
  const localTime = (value: string | null) => (value ? parseTime('since', value.length === 16 ? `${value}:00Z` : value) : undefined)

  // HTML for browsers: not part of the API's OpenAPI document (the admin API routes are, and give the same data).
  return new Elysia({ name: 'console' })
    .guard({ detail: { hide: true } })
    .get(`${CONSOLE}/assets/console.css`, () => new Response(style, { headers: { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'no-cache' } }))
    .get(`${CONSOLE}/assets/console.js`, () => new Response(script, { headers: { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' } }))
    .get('/admin/login', ({ request }) => {
      const url = new URL(request.url)
      return page(request, { title: 'Sign in' }, pages.signInPage({ next: safeNext(url.searchParams.get('next')), failed: false }))
    })
    .post(
      '/admin/login',
      async ({ request, server }) => {
        const fields = await form(request)
        const next = safeNext(fields.get('next'))
        if (fields.get('token') !== null && sessions.matchesAdminToken(fields.get('token')!)) {
          return new Response(null, { status: 303, headers: { location: next, 'set-cookie': sessionCookie(sessions.issue(), secure) } })
        }
        await limiter.takeForIp('admin', clientIp(request, server))
        return page(request, { title: 'Sign in' }, pages.signInPage({ next, failed: true }), 401)
      },
      { parse: 'none' },
    )
    .post(
      '/admin/logout',
      async ({ request }) => {
        if (!(await checkedForm(request))) return forbidden(request)
        return new Response(null, { status: 303, headers: { location: '/admin/login', 'set-cookie': sessionCookie('', secure, 0) } })
      },
      { parse: 'none' },
    )
    .get('/admin', async ({ request }) => {
      const data = await overview({ redis, prefix, instances: instances.list(), rateDefaults: config.rateLimit.instance, queues })
      return page(request, { title: 'Overview', section: 'overview', refreshMs: OVERVIEW_REFRESH_MS }, pages.overviewPage(data))
    })
    .get(`${CONSOLE}/events`, async ({ request }) => {
      const url = new URL(request.url)
      const { filter, chosen } = eventFilter(url.searchParams, instanceIds())
      const since = localTime(url.searchParams.get('since'))
      const until = localTime(url.searchParams.get('until'))
      const found = await Promise.all(
        chosen.map(async (instance) => {
          const { events } = await searchEvents(redis, prefix, { instance, ...filter, since, until, limit: LIST_LIMIT })
          return events.map((line) => ({ ...line, instance }))
        }),
      )
      const lines = found.flat().sort((a, b) => compareIds(b.id, a.id)).slice(0, LIST_LIMIT)
      const shown = { ...filter, instance: url.searchParams.get('instance') || undefined, since: url.searchParams.get('since') ?? undefined, until: url.searchParams.get('until') ?? undefined }
      return page(request, { title: 'Events', section: 'events' }, pages.eventsPage({ instances: instanceIds(), filter: shown, lines, query: url.searchParams.toString() }))
    })
    .get(`${CONSOLE}/stream`, ({ request }) => {
      const { filter, chosen } = eventFilter(new URL(request.url).searchParams, instanceIds())
      return new Response(liveLines(request.signal, chosen, filter), {
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
      })
    })
    .get(`${CONSOLE}/events/:instance/:jobId`, async ({ request, params }) => {
      const history = instances.get(params.instance) && (await eventHistory(redis, prefix, queues, params.instance, params.jobId))
      if (!history) return page(request, { title: 'Not found', section: 'events' }, pages.messagePage('Not found', `No event ${params.jobId} of instance ${params.instance} is in the log.`), 404)
      return page(request, { title: history.event ?? 'Event', section: 'events' }, pages.eventPage(history, csrfOf(request)))
    })
    .get(`${CONSOLE}/failed`, async ({ request }) => {
      const search = new URL(request.url).searchParams
      const filter = replayFilter(search)
      const { deliveries, total } = await listFailedDeliveries(queues, filter, Number.MAX_SAFE_INTEGER)
      const groups = new Map<string, { instance: string; destination: string; count: number }>()
      for (const d of deliveries) {
        const key = `${d.instance} ${d.destination}`
        const group = groups.get(key) ?? { instance: d.instance, destination: d.destination ?? '', count: 0 }
        group.count++
        groups.set(key, group)
      }
      return page(request, { title: 'Failed deliveries', section: 'failed' }, pages.failedPage({ instances: instanceIds(), filter, deliveries: deliveries.slice(0, LIST_LIMIT), total, groups: [...groups.values()] }, csrfOf(request)))
    })
    .post(
      `${CONSOLE}/replay`,
      async ({ request }) => {
        const fields = await checkedForm(request)
        if (!fields) return forbidden(request)
        const jobIds = fields.getAll('jobIds').filter(Boolean)
        const filter: ReplayFilter = jobIds.length ? { jobIds } : replayFilter(fields)
        if (!jobIds.length && filter.instance === undefined && filter.destination === undefined) {
          return page(request, { title: 'Replay', section: 'failed' }, pages.messagePage('Nothing chosen', 'Choose deliveries, or an instance or destination, to replay.'), 400)
        }
        const csrf = csrfOf(request)
        if (fields.get('confirm') !== 'yes') {
          const wouldReplay = (await replayFailedDeliveries(queues, { ...filter, dryRun: true })).replayed.length
          const kept: Record<string, string | string[]> = {}
          for (const name of ['instance', 'destination', 'conversation', 'back']) if (fields.get(name)) kept[name] = fields.get(name)!
          if (jobIds.length) kept.jobIds = jobIds
          return page(request, { title: 'Replay?', section: 'failed' }, pages.confirmReplayPage(kept, wouldReplay, csrf))
        }
        const result = await replayFailedDeliveries(queues, filter)
        return page(request, { title: 'Replayed', section: 'failed' }, pages.replayResultPage(result, safeNext(fields.get('back') ?? `${CONSOLE}/failed`)))
      },
      { parse: 'none' },
    )
    .get(`${CONSOLE}/destinations`, async ({ request }) => {
      const breakers = await breakerStates(redis, prefix, instances.list())
      return page(request, { title: 'Destinations', section: 'destinations' }, pages.destinationsPage(breakers, csrfOf(request)))
    })
    .post(
      `${CONSOLE}/breakers/close`,
      async ({ request }) => {
        const fields = await checkedForm(request)
        if (!fields) return forbidden(request)
        const closed = await closeBreaker(redis, prefix, instances.list(), fields.get('destination') ?? '')
        const breakers = await breakerStates(redis, prefix, instances.list())
        return page(request, { title: 'Destinations', section: 'destinations' }, pages.destinationsPage(breakers, csrfOf(request), closed?.host), closed ? 200 : 404)
      },
      { parse: 'none' },
    )

  /** Server-sent events: each new log line that matches, as a table row, polled from the logs every second. */
  function liveLines(signal: AbortSignal, chosen: string[], filter: EventFilter): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder()
    let timer: ReturnType<typeof setInterval> | undefined
    return new ReadableStream({
      async start(controller) {
        const after = new Map(await Promise.all(chosen.map(async (instance) => [instance, await newestEventId(redis, prefix, instance)] as const)))
        let sinceWrite = 0
        const send = (text: string) => {
          sinceWrite = 0
          controller.enqueue(encoder.encode(text))
        }
        send('retry: 2000\n\n')
        let polling = false
        timer = setInterval(async () => {
          if (polling || signal.aborted) return
          polling = true
          try {
            for (const instance of chosen) {
              const lines: LoggedEvent[] = await eventsAfter(redis, prefix, instance, after.get(instance)!, 500)
              if (lines.length) after.set(instance, lines.at(-1)!.id)
              for (const line of lines) if (matches(line, filter)) send(`event: line\ndata: ${pages.eventRow({ ...line, instance }).text.replace(/\n\s*/g, ' ')}\n\n`)
            }
            sinceWrite += LIVE_POLL_MS
            if (sinceWrite >= LIVE_PING_MS) send(': ping\n\n')
          } catch {
            // Redis away for a moment: the next poll tries again.
          } finally {
            polling = false
          }
        }, LIVE_POLL_MS)
        signal.addEventListener('abort', () => {
          clearInterval(timer)
          controller.close()
        })
      },
      cancel() {
        clearInterval(timer)
      },
    })
  }
}

/** The events filter of a query string, and the instances it looks at (all when none is chosen). */
function eventFilter(search: URLSearchParams, all: string[]): { filter: EventFilter; chosen: string[] } {
  const text = (name: string) => search.get(name)?.trim() || undefined
  const conversation = text('conversation')
  const instance = text('instance')
  return {
    chosen: instance ? all.filter((id) => id === instance) : all,
    filter: {
      event: text('event'),
      kind: text('kind') as EventFilter['kind'],
      host: text('host'),
      conversation: conversation && /^\d+$/.test(conversation) ? Number(conversation) : undefined,
    },
  }
}

function replayFilter(fields: URLSearchParams): Omit<ReplayFilter, 'jobIds' | 'dryRun'> {
  const text = (name: string) => fields.get(name)?.trim() || undefined
  const conversation = text('conversation')
  return { instance: text('instance'), destination: text('destination'), conversation: conversation && /^\d+$/.test(conversation) ? Number(conversation) : undefined }
}

/** Where to go after signing in or a replay: only a console path of this gateway, never another site. */
function safeNext(next: string | null | undefined): string {
  return next && /^\/admin(\/[^/\\]|$|\?)/.test(next) && !next.startsWith('//') ? next : '/admin'
}

/** Redis Stream ids, by time then sequence. */
function compareIds(a: string, b: string): number {
  const [at = 0, as = 0] = a.split('-').map(Number)
  const [bt = 0, bs = 0] = b.split('-').map(Number)
  return at - bt || as - bs
}
