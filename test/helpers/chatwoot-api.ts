import { freePort } from '../../src/process/embedded-redis.ts'

/** One call the stand-in took, as Chatwoot's API would have read it. */
export interface ChatwootApiCall {
  method: string
  /** `messages`, `labels`, `toggle_status`, … : the conversation endpoint called. */
  endpoint: string
  accountId: number
  conversationId: number
  body: Record<string, unknown> | undefined
  at: number
}

type Check = (body: Record<string, unknown>) => string | undefined

const oneOf = (values: unknown[]) => (value: unknown) => values.includes(value)
const only = (body: Record<string, unknown>, allowed: string[]) => Object.keys(body).find((key) => !allowed.includes(key))

/**
 * Chatwoot's conversation endpoints as its config/routes.rb and controllers take them: `POST messages` (content,
 * message_type, private, source_id, content_type, content_attributes), `POST custom_attributes` (custom_attributes),
 * `GET`/`POST labels` (labels: POST replaces them), `POST toggle_priority` (priority), `POST assignments`
 * (assignee_id or team_id), `POST toggle_status` (status, snoozed_until).
 */
const ENDPOINTS: Record<string, { method: string; check?: Check }> = {
  'POST messages': {
    method: 'POST',
    check: (body) => {
      const extra = only(body, ['content', 'message_type', 'private', 'source_id', 'content_type', 'content_attributes'])
      if (extra) return `unknown field ${extra}`
      if (typeof body.content !== 'string' || body.content === '') return 'content must be a string'
      if (body.message_type !== 'outgoing') return 'message_type must be outgoing'
      if (typeof body.private !== 'boolean') return 'private must be a boolean'
      if (body.content_type !== undefined && !oneOf(['text', 'input_select', 'cards', 'form', 'article', 'input_email', 'input_csat'])(body.content_type)) {
        return `unknown content_type ${String(body.content_type)}`
      }
      if (body.content_attributes !== undefined && (typeof body.content_attributes !== 'object' || body.content_attributes === null)) return 'content_attributes must be an object'
      return undefined
    },
  },
  'POST custom_attributes': {
    method: 'POST',
    check: (body) => (only(body, ['custom_attributes']) ?? (typeof body.custom_attributes === 'object' ? undefined : 'custom_attributes must be an object')),
  },
  'GET labels': { method: 'GET' },
  'POST labels': {
    method: 'POST',
    check: (body) => only(body, ['labels']) ?? (Array.isArray(body.labels) && body.labels.every((l) => typeof l === 'string') ? undefined : 'labels must be strings'),
  },
  'POST toggle_priority': {
    method: 'POST',
    check: (body) => only(body, ['priority']) ?? (oneOf(['urgent', 'high', 'medium', 'low', null])(body.priority) ? undefined : 'unknown priority'),
  },
  'POST assignments': {
    method: 'POST',
    check: (body) => {
      const keys = Object.keys(body)
      if (keys.length !== 1 || !['assignee_id', 'team_id'].includes(keys[0]!)) return 'assignee_id or team_id, one of them'
      return Number.isInteger(body[keys[0]!]) ? undefined : `${keys[0]} must be an integer`
    },
  },
  'POST toggle_status': {
    method: 'POST',
    check: (body) =>
      only(body, ['status', 'snoozed_until']) ??
      (oneOf(['open', 'resolved', 'pending', 'snoozed'])(body.status) ? undefined : 'unknown status') ??
      (body.snoozed_until === undefined || Number.isInteger(body.snoozed_until) ? undefined : 'snoozed_until must be unix seconds'),
  },
}

const CONVERSATION_PATH = /^\/api\/v1\/accounts\/(\d+)\/conversations\/(\d+)\/([a-z_]+)$/

/**
 * A real HTTP server standing in for Chatwoot's API: it checks each call's path, method, token, content type and body
 * against the endpoint it names (a call Chatwoot would refuse is answered 404 or 422 and kept in `refused`), and
 * keeps the labels each conversation has, as Chatwoot does. `answer` may override what a call gets (a 500, a delay).
 */
export async function startChatwootApi(token: string) {
  const calls: ChatwootApiCall[] = []
  const refused: string[] = []
  const labels = new Map<string, string[]>()
  const waiters = new Set<() => void>()
  let override: ((call: ChatwootApiCall) => Response | Promise<Response> | undefined) | undefined
  const port = await freePort()
  let nextId = 1

  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!done()) return
        waiters.delete(check)
        resolve()
      }
      waiters.add(check)
      check()
    })

  const refuse = (status: number, why: string) => {
    refused.push(why)
    return Response.json({ error: why }, { status })
  }

  const server = Bun.serve({
    port,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      const match = CONVERSATION_PATH.exec(url.pathname)
      const endpoint = match && ENDPOINTS[`${request.method} ${match[3]}`]
      if (!match || !endpoint) return refuse(404, `${request.method} ${url.pathname}: no such endpoint`)
      if (request.headers.get('api_access_token') !== token) return refuse(401, 'Invalid Access Token')
      let body: Record<string, unknown> | undefined
      if (request.method === 'POST') {
        if (!request.headers.get('content-type')?.startsWith('application/json')) return refuse(415, `${url.pathname}: not JSON`)
        body = (await request.json()) as Record<string, unknown>
        const problem = endpoint.check?.(body)
        if (problem) return refuse(422, `${request.method} ${match[3]}: ${problem}`)
      }
      const call: ChatwootApiCall = { method: request.method, endpoint: match[3]!, accountId: Number(match[1]), conversationId: Number(match[2]), body, at: Date.now() }
      const overridden = await override?.(call)
      if (overridden) return overridden
      calls.push(call)
      for (const wake of waiters) wake()
      const conversation = `${match[1]}.${match[2]}`
      if (call.endpoint === 'labels') {
        if (body) labels.set(conversation, body.labels as string[])
        return Response.json({ payload: labels.get(conversation) ?? [] })
      }
      if (call.endpoint === 'messages') return Response.json({ id: nextId++, content: body!.content, private: body!.private, source_id: body!.source_id })
      return Response.json({ ok: true })
    },
  })

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    refused,
    labels,
    /** Answers calls with what `fn` returns instead (undefined: as Chatwoot would); the call is not recorded then. */
    intercept(fn: typeof override) {
      override = fn
    },
    /** Resolves once `count` calls that match have been taken; returns them. */
    async received(count: number, matching: (call: ChatwootApiCall) => boolean = () => true): Promise<ChatwootApiCall[]> {
      await until(() => calls.filter(matching).length >= count)
      return calls.filter(matching)
    },
    /** Resolves once `done` holds, looking again at every call taken. */
    until,
    stop: () => server.stop(true),
  }
}
