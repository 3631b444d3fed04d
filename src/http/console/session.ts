import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

export const SESSION_COOKIE = 'hookgate_admin'
/** How long a console sign-in lasts. */
export const SESSION_TTL_MS = 12 * 3_600_000

/**
 * Console sessions with no server state (every API process of the fleet checks them alike): the cookie is its expiry
 * and an HMAC of it keyed by ADMIN_TOKEN, so changing the token signs everyone out. Forms carry a CSRF token, an HMAC
 * of the session, which a page of another origin cannot read.
 */
export function createSessions(adminToken: string) {
  const mac = (purpose: string, value: string) => createHmac('sha256', adminToken).update(`${purpose}:${value}`).digest('base64url')
  const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
  const tokenDigest = createHash('sha256').update(adminToken).digest()
  return {
    matchesAdminToken(candidate: string): boolean {
      return timingSafeEqual(createHash('sha256').update(candidate).digest(), tokenDigest)
    },
    issue(now = Date.now()): string {
      const expires = String(now + SESSION_TTL_MS)
      return `${expires}.${mac('session', expires)}`
    },
    valid(session: string | undefined): boolean {
      if (!session) return false
      const [expires = '', signature = ''] = session.split('.', 2)
      return /^\d+$/.test(expires) && Number(expires) > Date.now() && same(signature, mac('session', expires))
    },
    csrfToken(session: string): string {
      return mac('csrf', session)
    },
    csrfValid(session: string | undefined, presented: unknown): boolean {
      return session !== undefined && typeof presented === 'string' && same(presented, mac('csrf', session))
    },
  }
}

export type Sessions = ReturnType<typeof createSessions>

/** One cookie's value from a Cookie header. */
export function cookieOf(header: string | null, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim())
  }
  return undefined
}

/** The Set-Cookie of a session: unreadable by scripts, never sent by another site, https-only when served over https. */
export function sessionCookie(value: string, secure: boolean, maxAgeMs = SESSION_TTL_MS): string {
  return `${SESSION_COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(maxAgeMs / 1000)}${secure ? '; Secure' : ''}`
}
