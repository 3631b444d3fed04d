import { createHmac } from 'node:crypto'

/**
 * Standard Webhooks signature headers (https://www.standardwebhooks.com): `webhook-signature` is
 * `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. A `whsec_`-prefixed secret is base64 and its decoded bytes
 * are the key, as the spec's libraries expect; any other secret is used as its UTF-8 bytes.
 */
export function signStandardWebhook(secret: string, messageId: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8')
  const signature = createHmac('sha256', key).update(`${messageId}.${timestampSeconds}.${body}`).digest('base64')
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  }
}
