import { describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, loadConfig, type Env } from '../src/config/config.ts'
import { tempDir } from './helpers/deps.ts'

function problemsOf(env: Env): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  throw new Error('expected a ConfigError')
}

function instancesFile(content: unknown): string {
  const path = join(tempDir(), 'instances.json')
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

const base = (): Env => ({ HOOKGATE_DATA_DIR: tempDir(), REDIS_URL: 'redis://127.0.0.1:6399' })

describe('loadConfig', () => {
  test('has documented defaults and is frozen', () => {
    const config = loadConfig(base())
    expect(config.http).toMatchObject({ port: 3000, host: '0.0.0.0', maxBodyBytes: 1024 * 1024, signatureToleranceSeconds: 300 })
    expect(config.queue).toMatchObject({ prefix: '{hookgate}', dedupeWindowMs: 600_000, retentionSeconds: 7 * 86_400 })
    expect(config.workers).toMatchObject({ webhookConcurrency: 200, deliveryConcurrency: 200 })
    expect(config.log.level).toBe('info')
    expect(config.redis).toMatchObject({ mode: 'url', url: 'redis://127.0.0.1:6399' })
    expect(Object.isFrozen(config.http)).toBe(true)
  })

  test('without REDIS_URL asks for an embedded Redis; with Sentinel settings, reads them', () => {
    expect(loadConfig({ HOOKGATE_DATA_DIR: tempDir() }).redis.mode).toBe('embedded')
    const sentinel = loadConfig({ ...base(), REDIS_SENTINEL_ENABLED: 'true', REDIS_SENTINELS: 'a:26379, [::1]:26380', REDIS_MASTER_NAME: 'hg' })
    expect(sentinel.redis).toMatchObject({ mode: 'sentinel', masterName: 'hg', sentinels: [{ host: 'a', port: 26379 }, { host: '::1', port: 26380 }] })
  })

  test('reads a Redis Cluster\'s nodes, and the passwords and TLS that Sentinel and Cluster take from the environment', () => {
    const cluster = loadConfig({ ...base(), REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7001', REDIS_PASSWORD: 'pw', REDIS_TLS: 'true' })
    expect(cluster.redis).toMatchObject({
      mode: 'cluster',
      nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }],
      auth: { password: 'pw', tls: true },
    })
    const sentinel = loadConfig({ ...base(), REDIS_SENTINEL_ENABLED: 'true', REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_PASSWORD: 'spw' })
    expect(sentinel.redis).toMatchObject({ auth: { sentinelPassword: 'spw', tls: false } })
    expect(problemsOf({ ...base(), REDIS_CLUSTER_NODES: 'nohost' })).toEqual(['REDIS_CLUSTER_NODES: "nohost" is not host:port'])
  })

  test('reports every bad setting at once, each by name', () => {
    const problems = problemsOf({
      ...base(),
      PORT: 'eighty',
      MAX_BODY_BYTES: '-1',
      DEDUPE_WINDOW_SECONDS: '5s',
      LOG_LEVEL: 'loud',
      REDIS_URL: 'localhost:6379',
      ADMIN_TOKEN: 'short',
      METRICS_TOKEN: 'short',
      LOG_FORMAT: 'fancy',
      REDIS_KEY_PREFIX: 'nohashtag',
    })
    for (const name of ['PORT', 'MAX_BODY_BYTES', 'DEDUPE_WINDOW_SECONDS', 'LOG_LEVEL', 'REDIS_URL', 'ADMIN_TOKEN', 'METRICS_TOKEN', 'LOG_FORMAT', 'REDIS_KEY_PREFIX']) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true)
    }
    expect(problemsOf({ ...base(), REDIS_SENTINEL_ENABLED: 'true' })).toEqual([expect.stringContaining('REDIS_SENTINELS')])
    // A setting an earlier version read is refused by name with what replaced it, not silently ignored.
    expect(problemsOf({ ...base(), WEBHOOK_JOB_CREATE_LOCK_TTL: '5000' })).toEqual([expect.stringContaining('WEBHOOK_JOB_CREATE_LOCK_TTL: no longer read; use DEDUPE_WINDOW_SECONDS')])
  })

  test('reads rate limits and trusted proxies, and refuses bad ones by name', () => {
    const config = loadConfig({ ...base(), RATE_LIMIT_IP_PER_SECOND: '0.5', RATE_LIMIT_INSTANCE_POLICY: 'reject', TRUSTED_PROXIES: '10.0.0.0/8, ::1' })
    expect(config.rateLimit).toMatchObject({
      enabled: true,
      ip: { perSecond: 0.5, burst: 50 },
      admin: { perSecond: 5, burst: 10 },
      instance: { perSecond: 100, burst: 200, ceilingPerSecond: 1000, policy: 'reject' },
      maxShapeDelayMs: 60_000,
    })
    expect(config.trustedProxies).toEqual(['10.0.0.0/8', '::1'])
    const problems = problemsOf({
      ...base(),
      RATE_LIMIT_IP_PER_SECOND: '0',
      RATE_LIMIT_INSTANCE_POLICY: 'drop',
      TRUSTED_PROXIES: '10.0.0.0/33,localhost',
      RATE_LIMIT_ENABLED: 'maybe',
    })
    expect(problems).toHaveLength(5)
    for (const named of ['RATE_LIMIT_ENABLED', 'RATE_LIMIT_IP_PER_SECOND', 'RATE_LIMIT_INSTANCE_POLICY', '"10.0.0.0/33"', '"localhost"']) {
      expect(problems.some((p) => p.includes(named))).toBe(true)
    }
    expect(problemsOf({ ...base(), RATE_LIMIT_INSTANCE_PER_SECOND: '50', RATE_LIMIT_INSTANCE_CEILING_PER_SECOND: '10' })).toEqual([
      expect.stringContaining('RATE_LIMIT_INSTANCE_CEILING_PER_SECOND'),
    ])
    const instance = { id: 'a', tokens: ['x'.repeat(20)], rateLimit: { perSecond: 10, ceilingPerSecond: 5 } }
    expect(problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [instance] }) })).toEqual([
      expect.stringContaining('/instances/0/rateLimit: ceilingPerSecond (5) is below perSecond (10)'),
    ])
  })

  test('reads the instances file with ${ENV} secrets', () => {
    const path = instancesFile({
      instances: [{ id: 'acme', tokens: ['${ACME_TOKEN}'], webhookSecret: 'sec-${SUFFIX}', chatwoot: { url: 'https://chat.acme.test', apiAccessToken: '${CW}' } }],
    })
    const config = loadConfig({ ...base(), HOOKGATE_CONFIG: path, ACME_TOKEN: 'a'.repeat(20), SUFFIX: 'xyz12345', CW: 'cw-token' })
    expect(config.instances[0]).toMatchObject({ id: 'acme', tokens: ['a'.repeat(20)], webhookSecret: 'sec-xyz12345', chatwoot: { apiAccessToken: 'cw-token' } })
    expect(config.instancesSource).toMatchObject({ kind: 'file', path })
  })

  test('names what is wrong in the instances file', () => {
    const missingVar = problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['${NOPE}'] }] }) })
    expect(missingVar).toEqual([expect.stringContaining('/instances/0/tokens/0: environment variable NOPE is not set')])
    expect(problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile('{ not json') })[0]).toContain('HOOKGATE_CONFIG: cannot read')
    expect(problemsOf({ ...base(), HOOKGATE_CONFIG: '/nonexistent/instances.json' })[0]).toContain('/nonexistent/instances.json')
    const typo = problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokenz: ['x'.repeat(20)] }] }) })
    expect(typo.join('\n')).toContain('/instances/0')
    const badId = problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a b', tokens: ['x'.repeat(20)] }] }) })
    expect(badId.join('\n')).toContain('/instances/0/id')
    const shortToken = problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['short'] }] }) })
    expect(shortToken.join('\n')).toContain('/instances/0/tokens/0')
    const twice = problemsOf({
      ...base(),
      HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['x'.repeat(20)] }, { id: 'a', tokens: ['y'.repeat(20)] }] }),
    })
    expect(twice).toEqual([expect.stringContaining('duplicate instance id "a"')])
    const noCredential = problemsOf({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a' }] }) })
    expect(noCredential).toEqual([expect.stringContaining('give "tokens" or "webhookSecret"')])
  })

  test('accepts routes for the worker and refuses malformed ones', () => {
    const route = { events: ['message_created'], messageTypes: ['incoming'], private: false, destination: { url: 'https://bot.test/hook', timeoutMs: 5000 } }
    const ok = loadConfig({ ...base(), HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['x'.repeat(20)], routes: [route] }] }) })
    expect(ok.instances[0]!.routes as unknown).toEqual([route])
    const bad = problemsOf({
      ...base(),
      HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['x'.repeat(20)], routes: [{ ...route, destination: { url: 'ftp://x' } }] }] }),
    })
    expect(bad.join('\n')).toContain('/instances/0/routes/0/destination/url')
  })

  test('with no instances file, makes one `default` instance whose token is kept (0600) in the data dir', () => {
    const dir = tempDir()
    const first = loadConfig({ HOOKGATE_DATA_DIR: dir })
    const token = first.instances[0]!.tokens![0]!
    expect(first.instances[0]!.id).toBe('default')
    expect(token.length).toBeGreaterThanOrEqual(32)
    expect(loadConfig({ HOOKGATE_DATA_DIR: dir }).instances[0]!.tokens).toEqual([token])
    expect(readFileSync(join(dir, 'default-token'), 'utf8')).toBe(token)
    expect(statSync(join(dir, 'default-token')).mode & 0o777).toBe(0o600)
    expect(loadConfig({ HOOKGATE_DATA_DIR: tempDir() }).instances[0]!.tokens).not.toEqual([token])
  })
  test('the default instance takes HOOKGATE_DEFAULT_TOKEN when given (and writes nothing); where no token may be made, it is asked for', () => {
    const dir = tempDir()
    const given = loadConfig({ HOOKGATE_DATA_DIR: dir, HOOKGATE_DEFAULT_TOKEN: 'given-default-token-0123' }, { command: 'api' })
    expect(given.instances).toEqual([{ id: 'default', tokens: ['given-default-token-0123'], routes: [] }])
    expect(given.instancesSource).toEqual({ kind: 'default', token: 'env' })
    expect(existsSync(join(dir, 'default-token'))).toBe(false)
    let refused: string[] = []
    try {
      loadConfig({ HOOKGATE_DATA_DIR: dir }, { command: 'api' })
    } catch (error) {
      refused = (error as ConfigError).problems
    }
    expect(refused).toEqual([expect.stringMatching(/^no instances: set HOOKGATE_CONFIG .*, or HOOKGATE_DEFAULT_TOKEN/)])
    expect(existsSync(join(dir, 'default-token'))).toBe(false)
    expect(problemsOf({ ...base(), HOOKGATE_DEFAULT_TOKEN: 'short' })).toEqual(['HOOKGATE_DEFAULT_TOKEN: use at least 16 characters'])
    const withFile = problemsOf({ ...base(), HOOKGATE_DEFAULT_TOKEN: 'given-default-token-0123', HOOKGATE_CONFIG: instancesFile({ instances: [{ id: 'a', tokens: ['x'.repeat(20)] }] }) })
    expect(withFile).toEqual([expect.stringContaining('HOOKGATE_DEFAULT_TOKEN: only for the built-in `default` instance')])
  })

  test('LOG_FORMAT: json or pretty as asked; auto (the default) is json when stdout is not a terminal', () => {
    expect(loadConfig({ ...base(), LOG_FORMAT: 'pretty' }).log.format).toBe('pretty')
    expect(loadConfig({ ...base(), LOG_FORMAT: 'json' }).log.format).toBe('json')
    expect(loadConfig(base()).log.format).toBe(process.stdout.isTTY ? 'pretty' : 'json')
    expect(loadConfig({ ...base(), METRICS_TOKEN: 'metrics-token-0123456' }).metrics.token).toBe('metrics-token-0123456')
  })
})
