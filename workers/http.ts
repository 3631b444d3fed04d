import { UnrecoverableError } from 'bullmq'
import { RetryLater, retryAfterMs } from './backoff.ts'

/** The most of an answer's body we read (20 messages of 10,000 characters fit); past it the body is ignored. */
const MAX_ANSWER_BYTES = 256 * 1024

export interface Answer {
  status: number
  /** The parsed JSON body of a 2xx answer, when it is one. */
  json: unknown
}

/** A 4xx other than 408 and 429: no more tries. */
export class Refused extends UnrecoverableError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

/** The HTTP status behind a failed request, when there was an answer. */
export function statusOf(error: Error): number | undefined {
  return error instanceof Refused || error instanceof RetryLater ? error.status : undefined
}

/**
 * Sends a request (POST with a JSON body unless told) and sorts the outcome the way both destinations and the
 * Chatwoot API need: 2xx is an Answer; 408, 429, 5xx, network errors and timeouts are RetryLater (with the server's
 * Retry-After); anything else is permanent (BullMQ's UnrecoverableError: no more tries).
 */
export async function sendJson(url: string, body: string | undefined, headers: Record<string, string>, timeoutMs: number, method = 'POST'): Promise<Answer> {
  let response: Response
  try {
    response = await fetch(url, {
      method,
      body,
      headers: { 'content-type': 'application/json', 'user-agent': 'hookgate', ...headers },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    })
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (error as Error).message
    throw new RetryLater(`${new URL(url).host}: ${reason}`, undefined, true)
  }
  const { status } = response
  if (status === 408 || status === 429 || status >= 500) {
    await response.body?.cancel()
    throw new RetryLater(`${new URL(url).host} answered ${status}`, retryAfterMs(response.headers.get('retry-after')), status !== 429, status)
  }
  if (status < 200 || status >= 300) {
    await response.body?.cancel()
    throw new Refused(`${new URL(url).host} answered ${status}`, status)
  }
  return { status, json: await readJson(response) }
}

/** The answer's JSON, or undefined: not JSON, too big, or cut off. A 2xx stays a 2xx whatever its body does. */
async function readJson(response: Response): Promise<unknown> {
  if (!response.body || !response.headers.get('content-type')?.includes('json')) {
    await response.body?.cancel().catch(() => {})
    return undefined
  }
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > MAX_ANSWER_BYTES) {
        await reader.cancel()
        return undefined
      }
      chunks.push(value)
    }
    return JSON.parse(new TextDecoder().decode(Buffer.concat(chunks)))
  } catch {
    return undefined
  }
}
