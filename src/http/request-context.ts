import { randomUUID } from 'node:crypto'
import { Elysia } from 'elysia'

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/

/** A caller's `X-Request-Id` when it is a sane token, else a new one; echoed on every answer. */
export function requestIdOf(request: Request): string {
  const given = request.headers.get('x-request-id')
  return given && REQUEST_ID.test(given) ? given : randomUUID()
}

/** Per-request values every route may read: the request id. Deduplicated by name however often it is used. */
export const requestContext = new Elysia({ name: 'request-context' }).derive({ as: 'global' }, ({ request, set }) => {
  const requestId = requestIdOf(request)
  set.headers['x-request-id'] = requestId
  return { requestId }
})
