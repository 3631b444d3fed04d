import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import type { AppControllerRoute, AppViewRoute, BullBoardQueues, ControllerHandlerReturnType, IServerAdapter, UIConfig } from '@bull-board/api/typings/app'
import { Elysia } from 'elysia'
import type { Queues } from '../queue/queues.ts'
import { dashboardAssets } from './dashboard-assets.gen.ts'

export const DASHBOARD_PATH = '/admin/queues'

/**
 * The BullMQ dashboard (bull-board) for every queue at /admin/queues. Its UI files are embedded (see
 * dashboard-assets.gen.ts) and served by us: bull-board's own Elysia adapter reads them from node_modules, which a
 * compiled binary does not have, and its error handler would leak into the whole app. The admin guard (admin.ts)
 * covers every path under /admin.
 */
export function queueDashboard(queues: Queues) {
  const adapter = new EmbeddedAssetsAdapter(DASHBOARD_PATH)
  createBullBoard({
    // With several shards each queue shows once per shard, named by its shard's prefix (bull-board keys queues by name).
    queues: [...queues.shards, ...queues.draining].flatMap((shard, _, all) =>
      [shard.webhook, shard.delivery, shard.chatwootNote].map((queue) => new BullMQAdapter(queue, all.length > 1 ? { prefix: `${shard.prefix} ` } : {})),
    ),
    serverAdapter: adapter,
    // Given, so that bull-board does not look for its UI with require.resolve (which a compiled binary lacks).
    options: { uiBasePath: '/embedded', uiConfig: { boardTitle: 'hookgate queues' } },
  })
  return adapter.plugin()
}

/** bull-board's server adapter interface, on Elysia, with the UI from the embedded files. */
class EmbeddedAssetsAdapter implements IServerAdapter {
  private queues?: BullBoardQueues
  private uiConfig: UIConfig = {}
  private entry?: AppViewRoute
  private apiRoutes: AppControllerRoute[] = []
  private errorHandler?: (error: Error) => ControllerHandlerReturnType
  private staticsRoute = '/static'

  constructor(private readonly basePath: string) {}

  setViewsPath() {
    return this
  }
  setStaticPath(route: string) {
    this.staticsRoute = route
    return this
  }
  setQueues(queues: BullBoardQueues) {
    this.queues = queues
    return this
  }
  setUIConfig(config: UIConfig = {}) {
    this.uiConfig = config
    return this
  }
  setEntryRoute(route: AppViewRoute) {
    this.entry = route
    return this
  }
  setErrorHandler(handler: (error: Error) => ControllerHandlerReturnType) {
    this.errorHandler = handler
    return this
  }
  setApiRoutes(routes: AppControllerRoute[]) {
    this.apiRoutes = routes
    return this
  }

  plugin() {
    const { entry, queues, uiConfig, basePath, errorHandler } = this
    if (!entry || !queues) throw new Error('createBullBoard has not set up the adapter')
    const hidden = { detail: { hide: true } }
    const app = new Elysia({ name: 'queue-dashboard', prefix: basePath })
    if (errorHandler) {
      app.onError(({ error, set }) => {
        const answer = errorHandler(error as Error)
        set.status = answer.status ?? 500
        return answer.body
      })
    }

    let template: Promise<string> | undefined
    for (const route of [entry.route].flat()) {
      app.get(
        route,
        async () => {
          template ??= Bun.file(dashboardAssets['/index.ejs']!).text()
          const html = renderTemplate(await template, entry.handler({ basePath, uiConfig }).params)
          return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } })
        },
        hidden,
      )
    }

    for (const [file, path] of Object.entries(dashboardAssets)) {
      if (!file.startsWith('/static/')) continue
      // Hashed names never change content; locales and icons may.
      const cache = /\.[0-9a-f]{8}\.(js|css)$/.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache'
      app.get(
        this.staticsRoute + file.slice('/static'.length),
        () => {
          const body = Bun.file(path)
          return new Response(body, { headers: { 'content-type': body.type || 'application/octet-stream', 'cache-control': cache } })
        },
        hidden,
      )
    }

    for (const { method, route, handler } of this.apiRoutes) {
      for (const verb of [method].flat()) {
        for (const path of [route].flat()) {
          app.route(
            verb.toUpperCase(),
            path,
            async ({ params, body, query, headers, set }) => {
              const answer = await handler({
                queues,
                uiConfig,
                query,
                headers,
                params: Object.fromEntries(Object.entries(params ?? {}).map(([name, value]) => [name, safeDecode(value)])),
                body: (body ?? {}) as Record<string, unknown>,
              })
              if (answer.status) set.status = answer.status
              return answer.body
            },
            hidden,
          )
        }
      }
    }
    return app
  }
}

/**
 * bull-board's index.ejs needs only `<%= name %>` (escaped) and `<%- name %>` (raw); anything more fails loudly. The
 * page's web font link is dropped: the dashboard loads nothing from outside the gateway.
 */
function renderTemplate(template: string, params: Record<string, string>): string {
  const html = template
    .replace(/<link[^>]*fonts\.googleapis\.com[^>]*>\s*/g, '')
    .replace(/<%([=-])\s*(\w+)\s*%>/g, (_, kind: string, name: string) => (kind === '=' ? escapeHtml(params[name] ?? '') : (params[name] ?? '')))
  if (html.includes('<%')) throw new Error('the dashboard template uses ejs syntax this renderer does not know')
  return html
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function safeDecode(value: unknown): unknown {
  if (typeof value !== 'string') return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
