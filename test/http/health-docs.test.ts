import { describe, expect, test } from 'bun:test'
import { withTestApp } from '../helpers/deps.ts'

const file = withTestApp()


const get = (path: string) => file.gateway.app.handle(new Request(`http://localhost${path}`))

describe('/health', () => {
  test('says ok, redis up, which process and for how long', async () => {
    const response = await get('/health')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ok', redis: 'up', spool: { pending: 0, bytes: 0 }, pid: process.pid, uptimeSeconds: expect.any(Number) })
  })

  test('still answers 200 with redis down while Redis is away', async () => {
    await file.redis.stop()
    try {
      const disconnected = new Promise((resolve) => file.gateway.commands.once('close', resolve))
      if (file.gateway.commands.status === 'ready') await disconnected
      const response = await get('/health')
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ status: 'ok', redis: 'down' })
    } finally {
      await file.redis.restart()
      await file.gateway.reconnected()
    }
    expect(await (await get('/health')).json()).toMatchObject({ redis: 'up' })
  })
})

describe('/docs', () => {
  test('serves Swagger UI that loads nothing from the internet', async () => {
    const response = await get('/docs')
    expect(response.status).toBe(200)
    const html = await response.text()
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(urls.sort()).toEqual(['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css'])
    expect(html).not.toMatch(/https?:\/\//)
    expect(html).toContain('"url":"/docs/json"') // absolute, so /docs/ works as well as /docs
    expect(await (await get('/docs/')).text()).toBe(html)
    for (const [, content] of html.matchAll(/<meta[^>]*content="([^"]*)"\s*\/?>/g)) expect(content).not.toContain('<')
    for (const [url, type] of [['/docs/assets/swagger-ui-bundle.js', 'text/javascript'], ['/docs/assets/swagger-ui.css', 'text/css']] as const) {
      const asset = await get(url)
      expect(asset.status).toBe(200)
      expect(asset.headers.get('content-type')).toStartWith(type)
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(100_000)
    }
  })

  test('/docs/json documents every route, its auth and every error it answers', async () => {
    const doc = (await (await get('/docs/json')).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>
      components: { securitySchemes: Record<string, unknown> }
    }
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/admin/breakers',
      '/admin/breakers/close',
      '/admin/events',
      '/admin/events/{instance}/{jobId}',
      '/admin/failed',
      '/admin/instances',
      '/admin/overview',
      '/admin/reload',
      '/admin/replay',
      '/health',
      '/metrics',
      '/webhook/chatwoot',
      '/webhook/chatwoot/{instance}',
    ])
    for (const path of ['/webhook/chatwoot', '/webhook/chatwoot/{instance}']) {
      const post = doc.paths[path]!.post!
      expect(Object.keys(post.responses).sort()).toEqual(['200', '202', '400', '401', '408', '413', '415', '429', '503'])
      expect(post.security).toHaveLength(4)
    }
    const adminOperations = [
      ['/admin/events', 'get'],
      ['/admin/events/{instance}/{jobId}', 'get'],
      ['/admin/failed', 'get'],
      ['/admin/overview', 'get'],
      ['/admin/breakers', 'get'],
      ['/admin/breakers/close', 'post'],
      ['/admin/instances', 'get'],
      ['/admin/reload', 'post'],
      ['/admin/replay', 'post'],
    ] as const
    for (const [path, method] of adminOperations) {
      const operation = doc.paths[path]![method]!
      expect(operation.security).toEqual([{ adminToken: [] }])
      expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['200', '401', '403', '429']))
    }
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['adminToken', 'apiAccessToken', 'bearerToken', 'chatwootSignature', 'queryToken'])
  })

  test('/docs/json holds what a destination may answer, with the handoff example', async () => {
    const doc = (await (await get('/docs/json')).json()) as { components: { schemas: Record<string, { properties: Record<string, { properties?: Record<string, unknown> }>; examples: unknown[] }> } }
    const answer = doc.components.schemas.DestinationAnswer!
    expect(Object.keys(answer.properties).sort()).toEqual(['actions', 'messages', 'note', 'reply'])
    expect(Object.keys(answer.properties.actions!.properties!).sort()).toEqual(['assign', 'customAttributes', 'labels', 'priority', 'snoozedUntil', 'status'])
    expect(answer.examples[0]).toMatchObject({ actions: { assign: { teamId: 3 }, status: 'open' } })
  })
})
