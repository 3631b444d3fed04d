import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import { DestinationAnswer } from '../answer-schema.ts'
import swaggerCss from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' }
import swaggerBundle from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' }

const ASSETS = '/docs/assets'

/**
 * Swagger UI at /docs and the OpenAPI document at /docs/json. The UI's files are embedded (imported as files, which
 * `bun build --compile` packs into the binary) and served by us: the plugin's default CDN is unreachable behind a
 * firewall, and the page would be blank.
 */
export function docsRoutes() {
  return new Elysia({ name: 'docs' })
    .use(
      openapi({
        path: '/docs',
        specPath: '/docs/json',
        provider: 'swagger-ui',
        // An absolute spec URL, so /docs/ (trailing slash) finds it too; the plugin's types omit `url`, its page honours it.
        swagger: { theme: `${ASSETS}/swagger-ui.css`, cdn: `${ASSETS}/swagger-ui-bundle.js`, autoDarkMode: false, ...{ url: '/docs/json' } },
        exclude: { paths: [/^\/docs/] },
        documentation: {
          info: {
            title: 'hookgate',
            version: '0.1.0',
            // No double quotes: the UI page copies this into a meta tag's attribute without escaping it.
            description:
              'Chatwoot webhook gateway: receives webhooks from many Chatwoot installations, answers in milliseconds, ' +
              'and queues each event exactly once. Every error is a JSON object with `error` (a stable code), ' +
              '`message` and `requestId`.',
          },
          tags: [
            {
              name: 'webhooks',
              description:
                'Where Chatwoot sends its events. Each is POSTed to the destinations of the routes that want it; a destination\'s 2xx JSON answer may ask hookgate to post messages and apply actions in the conversation (schema DestinationAnswer).',
            },
            { name: 'operations', description: 'Health, metrics and documentation' },
            {
              name: 'admin',
              description:
                'For operators, with ADMIN_TOKEN as a Bearer token (403 while it is unset). The queue dashboard is at /admin/queues (a browser page; Basic auth with the token as password).',
            },
          ],
          components: {
            // Not a request hookgate takes but the answer it reads: what a route's destination may answer to a delivery.
            schemas: { DestinationAnswer },
            securitySchemes: {
              chatwootSignature: {
                type: 'apiKey',
                in: 'header',
                name: 'X-Chatwoot-Signature',
                description:
                  'Chatwoot 4.12+: `sha256=<hex HMAC-SHA256 of "<X-Chatwoot-Timestamp>.<raw body>">` with the instance\'s webhookSecret.',
              },
              queryToken: { type: 'apiKey', in: 'query', name: 'token', description: 'One of the instance\'s tokens.' },
              bearerToken: { type: 'http', scheme: 'bearer', description: 'One of the instance\'s tokens.' },
              apiAccessToken: { type: 'apiKey', in: 'header', name: 'api_access_token', description: 'One of the instance\'s tokens.' },
              adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN.' },
            },
          },
        },
      }),
    )
    .get(`${ASSETS}/swagger-ui.css`, () => asset(swaggerCss, 'text/css; charset=utf-8'))
    .get(`${ASSETS}/swagger-ui-bundle.js`, () => asset(swaggerBundle, 'text/javascript; charset=utf-8'))
}

function asset(path: string, type: string): Response {
  return new Response(Bun.file(path), { headers: { 'content-type': type, 'cache-control': 'public, max-age=86400' } })
}
