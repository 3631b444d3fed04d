import { createHash } from 'node:crypto'
import type { InstanceConfig } from '../config/instances-schema.ts'

/**
 * An instance as GET /admin/instances shows it: every secret replaced by a fingerprint (`sha256:` and 8 hex digits),
 * enough to tell which token or secret is loaded, never enough to use it. URLs lose their password and query values.
 */
export function maskInstance(instance: InstanceConfig) {
  const { tokens, webhookSecret, chatwoot, routes, ...rest } = instance
  return {
    ...rest,
    ...(tokens ? { tokens: tokens.map(fingerprint) } : {}),
    ...(webhookSecret === undefined ? {} : { webhookSecret: [webhookSecret].flat().map(fingerprint) }),
    ...(chatwoot ? { chatwoot: { url: maskUrl(chatwoot.url), apiAccessToken: fingerprint(chatwoot.apiAccessToken) } } : {}),
    ...(routes
      ? {
          routes: routes.map((route) => ({
            ...route,
            destination: {
              ...route.destination,
              url: maskUrl(route.destination.url),
              ...(route.destination.secret ? { secret: fingerprint(route.destination.secret) } : {}),
            },
          })),
        }
      : {}),
  }
}

export function fingerprint(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex').slice(0, 8)}`
}

function maskUrl(raw: string): string {
  const url = new URL(raw)
  if (url.password) url.password = '***'
  for (const name of [...url.searchParams.keys()]) url.searchParams.set(name, '***')
  return url.toString()
}
