import { BlockList, isIP } from 'node:net'

/** What Bun's server offers to find a request's peer; absent when a test calls `app.handle` directly. */
export interface PeerSource {
  requestIP(request: Request): { address: string } | null
}

export type ClientIp = (request: Request, server: PeerSource | null | undefined) => string

/**
 * The client's address: the socket peer, or, when the peer is one of our trusted proxies, the nearest address in
 * X-Forwarded-For that is not (else X-Real-IP). A header from any other peer is ignored, so it cannot pick a key.
 */
export function createClientIp(trustedProxies: readonly string[]): ClientIp {
  const trusted = new BlockList()
  for (const entry of trustedProxies) {
    const range = parseCidr(entry)
    if (!range) throw new Error(`not an IP address or CIDR: ${entry}`)
    if (range.prefix === undefined) trusted.addAddress(range.address, range.type)
    else trusted.addSubnet(range.address, range.prefix, range.type)
  }
  const isTrusted = (address: string) => trustedProxies.length > 0 && trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')

  return function clientIp(request, server) {
    const peer = normalize(server?.requestIP(request)?.address)
    if (!peer || !isTrusted(peer)) return peer ?? 'unknown'
    const forwarded = request.headers.get('x-forwarded-for')
    if (forwarded) {
      const hops = forwarded.split(',').map((hop) => normalize(hop.trim()))
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]
        if (!hop) break
        if (!isTrusted(hop)) return hop
      }
      return peer
    }
    return normalize(request.headers.get('x-real-ip')?.trim()) ?? peer
  }
}

/** `10.0.0.0/8`, `::1` or `2001:db8::/32` as its parts, or undefined when it is none of these. */
export function parseCidr(entry: string): { address: string; prefix?: number; type: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefix] = entry.split('/')
  const family = isIP(address)
  if (family === 0) return undefined
  if (prefix === undefined) return { address, type: family === 6 ? 'ipv6' : 'ipv4' }
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 6 ? 128 : 32)) return undefined
  return { address, prefix: Number(prefix), type: family === 6 ? 'ipv6' : 'ipv4' }
}

/** A valid IP in its plain form (IPv4-mapped IPv6 as IPv4), or undefined. */
function normalize(address: string | undefined | null): string | undefined {
  if (!address) return undefined
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
  return isIP(plain) ? plain : undefined
}
