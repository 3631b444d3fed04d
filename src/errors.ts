/** Every failure we answer with: a snake_case code and an HTTP status. */
export class HookgateError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Headers the answer carries (Retry-After, RateLimit-*). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message)
    this.name = new.target.name
  }
}

export class InvalidJson extends HookgateError {
  constructor(message = 'The body is not valid JSON.') {
    super('invalid_json', 400, message)
  }
}

export class InvalidEvent extends HookgateError {
  constructor(message: string) {
    super('invalid_event', 400, message)
  }
}

export class InvalidRequest extends HookgateError {
  constructor(message: string) {
    super('invalid_request', 400, message)
  }
}

/** One answer for an unknown instance and a bad credential: it must not tell which instances exist. */
export class Unauthorized extends HookgateError {
  constructor() {
    super('unauthorized', 401, 'Unknown instance or invalid credentials.')
  }
}

/** The admin API's own answer: it may say what to send, since it reveals nothing about instances. */
export class AdminUnauthorized extends HookgateError {
  constructor() {
    super('unauthorized', 401, 'Send the admin token: Authorization: Bearer <ADMIN_TOKEN> (or Basic auth with it as the password).', {
      'www-authenticate': 'Basic realm="hookgate admin", Bearer realm="hookgate admin"',
    })
  }
}

export class MetricsUnauthorized extends HookgateError {
  constructor() {
    super('unauthorized', 401, 'Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.', { 'www-authenticate': 'Bearer realm="hookgate metrics"' })
  }
}

export class CrossOrigin extends HookgateError {
  constructor() {
    super('cross_origin', 403, 'This request came from another site (its Origin is not this gateway); nothing was done.')
  }
}

export class AdminDisabled extends HookgateError {
  constructor() {
    super('admin_disabled', 403, 'The admin API is off: set ADMIN_TOKEN (16 characters or more) and restart hookgate.')
  }
}

export class UnknownInstance extends HookgateError {
  constructor(id: string) {
    super('unknown_instance', 404, `No instance ${JSON.stringify(id)} is configured.`)
  }
}

/** A reload refused: the instances file has problems; the instances in use stay. */
export class InvalidInstances extends HookgateError {
  constructor(readonly problems: string[]) {
    super('invalid_instances', 422, `The instances file was not loaded; the previous instances stay in use. Problems: ${problems.join('; ')}`)
  }
}

export class NotFound extends HookgateError {
  constructor() {
    super('not_found', 404, 'No such route.')
  }
}

export class RequestTimeout extends HookgateError {
  constructor(timeoutMs: number) {
    super('request_timeout', 408, `The body did not arrive within ${timeoutMs} ms.`)
  }
}

export class PayloadTooLarge extends HookgateError {
  constructor(limitBytes: number) {
    super('payload_too_large', 413, `The body is larger than ${limitBytes} bytes.`)
  }
}

export class UnsupportedMediaType extends HookgateError {
  constructor() {
    super('unsupported_media_type', 415, 'Send the event as Content-Type: application/json.')
  }
}

export class RateLimited extends HookgateError {
  constructor(retryAfterSeconds: number, headers: Record<string, string>) {
    super('rate_limited', 429, `Too many requests; retry in ${retryAfterSeconds} s.`, {
      ...headers,
      'retry-after': String(retryAfterSeconds),
    })
  }
}

export class Unavailable extends HookgateError {
  constructor(message = 'The event could not be accepted right now; try again.') {
    super('unavailable', 503, message)
  }
}

export interface ErrorBody {
  error: string
  message: string
  requestId: string
}

export function toErrorBody(error: HookgateError, requestId: string): ErrorBody {
  return { error: error.code, message: error.message, requestId }
}
