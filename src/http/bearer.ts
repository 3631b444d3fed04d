import { timingSafeEqual } from 'node:crypto'
import { tokenDigest } from '../config/instances.ts'

/** Checks an Authorization header against a token, in constant time; undefined `token` lets everyone in. */
export function tokenGate(token: string | undefined): (authorization: string | null) => boolean {
  if (token === undefined) return () => true
  const expected = tokenDigest(token)
  return (authorization) => {
    const presented = presentedToken(authorization)
    return presented !== undefined && timingSafeEqual(tokenDigest(presented), expected)
  }
}

/** The token of `Bearer <token>`, or the password of `Basic base64(user:password)` (what a browser can send). */
function presentedToken(header: string | null): string | undefined {
  if (!header) return undefined
  const [scheme = '', value = ''] = header.split(' ', 2)
  if (scheme.toLowerCase() === 'bearer') return value.trim() || undefined
  if (scheme.toLowerCase() !== 'basic') return undefined
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon >= 0 ? decoded.slice(colon + 1) : undefined
}
