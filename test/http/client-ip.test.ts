import { describe, expect, test } from 'bun:test'
import { createClientIp, type PeerSource } from '../../src/http/client-ip.ts'

const from = (address: string): PeerSource => ({ requestIP: () => ({ address }) })
const request = (headers: Record<string, string> = {}) => new Request('http://gateway/x', { headers })

describe('clientIp', () => {
  const direct = createClientIp([])
  const behindProxies = createClientIp(['10.0.0.0/8', '::1', '192.168.1.7'])

  test('is the socket peer when no proxy is trusted, whatever the headers say', () => {
    expect(direct(request({ 'x-forwarded-for': '1.2.3.4', 'x-real-ip': '5.6.7.8' }), from('198.51.100.9'))).toBe('198.51.100.9')
    expect(direct(request(), from('::ffff:198.51.100.9'))).toBe('198.51.100.9')
    expect(direct(request(), null)).toBe('unknown')
  })

  test('behind trusted proxies, is the nearest untrusted hop of X-Forwarded-For', () => {
    const xff = { 'x-forwarded-for': '6.6.6.6, 203.0.113.5, 10.1.1.1' }
    expect(behindProxies(request(xff), from('10.2.2.2'))).toBe('203.0.113.5')
    expect(behindProxies(request(xff), from('::1'))).toBe('203.0.113.5')
    expect(behindProxies(request(xff), from('192.168.1.8'))).toBe('192.168.1.8') // not trusted: its header is ignored
    expect(behindProxies(request({ 'x-forwarded-for': '10.3.3.3' }), from('10.2.2.2'))).toBe('10.2.2.2')
    expect(behindProxies(request({ 'x-forwarded-for': 'garbage, 10.3.3.3' }), from('10.2.2.2'))).toBe('10.2.2.2')
  })

  test('falls back to X-Real-IP from a trusted proxy, if it is an address', () => {
    expect(behindProxies(request({ 'x-real-ip': '2001:db8::7' }), from('10.2.2.2'))).toBe('2001:db8::7')
    expect(behindProxies(request({ 'x-real-ip': 'not-an-ip' }), from('10.2.2.2'))).toBe('10.2.2.2')
  })
})
