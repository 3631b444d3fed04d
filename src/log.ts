import pino, { type DestinationStream, type Logger } from 'pino'
import type { Config } from './config.ts'

export type Log = Logger

/**
 * Paths that can carry a secret. We never log headers, URLs with query strings or instance configs whole, so this is
 * the second line of defence, not the first.
 */
const REDACT = [
  'token', '*.token', 'tokens', '*.tokens', 'secret', '*.secret', 'webhookSecret', '*.webhookSecret',
  'apiAccessToken', '*.apiAccessToken', 'adminToken', '*.adminToken', 'authorization', '*.authorization',
  'headers.authorization', 'headers["x-chatwoot-signature"]', 'headers.api_access_token', 'password', '*.password',
]

/** pino JSON lines to stdout (no transports: they crash in a compiled binary), or to `destination` in tests. */
export function createLogger(config: Config['log'], destination?: DestinationStream): Log {
  return pino(
    {
      level: config.level,
      base: { pid: process.pid },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  )
}
