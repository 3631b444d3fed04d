import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// No Docker daemon runs on these machines; this checks what reading can check (hadolint-style rules, compose shape,
// the build context), and test/processes/binary.test.ts runs the binary as the image runs it.
const ROOT = join(import.meta.dir, '../..')
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8')
const yaml = (file: string) => Bun.YAML.parse(read(file)) as { services: Record<string, Record<string, unknown>> }

describe('Dockerfile', () => {
  const lines = read('Dockerfile').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))
  const final = lines.slice(lines.findLastIndex((l) => l.startsWith('FROM ')))

  test('builds in one stage and ships only the compiled binary (and an empty spool dir it owns) on a minimal base, as a non-root user', () => {
    expect(lines.filter((l) => l.startsWith('FROM ')).length).toBe(2)
    expect(final[0]).toMatch(/^FROM gcr\.io\/distroless\/cc-debian12:nonroot$/)
    expect(final.filter((l) => l.startsWith('COPY'))).toEqual([
      'COPY --from=build /out/hookgate /usr/local/bin/hookgate',
      'COPY --from=build --chown=nonroot:nonroot /out/spool /spool',
    ])
    expect(final.find((l) => l.startsWith('ENV'))).toContain('SPOOL_DIR=/spool')
    expect(final).toContain('USER nonroot:nonroot')
  })

  test('needs no BuildKit frontend image (no `# syntax=` line), so an offline builder builds it', () => {
    expect(read('Dockerfile')).not.toMatch(/^#\s*syntax=/im)
  })

  test('.dockerignore lets in what the Dockerfile copies and nothing else: no node_modules, local state, build output or .env', () => {
    const copied = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from=')).flatMap((l) => l.slice(5).trim().split(/\s+/).slice(0, -1))
    expect(copied.length).toBeGreaterThan(0)
    // Docker's matching, for the patterns used here: `*` excludes everything, `!path` lets a path (and what is under it) back in.
    const patterns = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    const inContext = (path: string) =>
      patterns.reduce((included, pattern) => {
        const negated = pattern.startsWith('!')
        const glob = new Bun.Glob(pattern.replace(/^!/, '').replace(/\/$/, ''))
        const matches = glob.match(path) || path.split('/').some((_, i, parts) => glob.match(parts.slice(0, i + 1).join('/')))
        return matches ? negated : included
      }, true)
    for (const source of copied) expect({ source, inContext: inContext(source.replace(/\/$/, '')) }).toEqual({ source, inContext: true })
    expect(inContext('src/main.ts')).toBe(true)
    for (const kept of ['node_modules/elysia/package.json', '.hookgate/default-token', '.hookgate/redis/appendonly.aof', 'dist/hookgate', 'test-artifacts/overview.png', '.env', '.git/config', 'test/config.test.ts']) {
      expect({ kept, inContext: inContext(kept) }).toEqual({ kept, inContext: false })
    }
  })

  test('has a health check that needs no shell, a stop signal, pinned bases and an exec-form entrypoint', () => {
    expect(final.find((l) => l.startsWith('HEALTHCHECK'))).toContain('CMD ["/usr/local/bin/hookgate", "health"]')
    expect(final).toContain('STOPSIGNAL SIGTERM')
    expect(final.find((l) => l.startsWith('ENTRYPOINT'))).toBe('ENTRYPOINT ["/usr/local/bin/hookgate"]')
    for (const from of lines.filter((l) => l.startsWith('FROM '))) expect(from).not.toMatch(/:latest\b|FROM [^:]+$/)
    expect(lines.find((l) => l.includes('bun install'))).toContain('--frozen-lockfile')
  })
})

describe('docker compose and stack files', () => {
  test('compose: Redis with AOF fsynced always and noeviction; api with a shared spool volume; api and worker scalable; nginx in front', () => {
    const { services } = yaml('docker-compose.yml')
    expect(String(services.redis!.command)).toContain('appendonly,yes,--appendfsync,always')
    expect(String(services.redis!.command)).toContain('noeviction')
    expect(services.api!.environment).toMatchObject({ SPOOL_DIR: '/spool' })
    expect(services.api!.volumes).toContain('spool:/spool')
    for (const name of ['api', 'worker']) {
      expect(services[name]!.container_name).toBeUndefined()
      expect(services[name]!.ports).toBeUndefined()
    }
    expect(services.api!.command).toEqual(['api'])
    expect(services.worker!.command).toEqual(['worker'])
    expect(services.nginx!.volumes).toEqual(['./nginx/nginx.conf:/etc/nginx/nginx.conf:ro'])
  })

  test('sentinel override: two replicas, three sentinels, and hookgate told to use them and to wait for a replica; every Redis it runs fsyncs always', () => {
    const { services } = yaml('docker-compose.sentinel.yml')
    for (const name of ['redis', 'redis-replica-1', 'redis-replica-2']) {
      expect(String(services[name]!.command)).toContain('appendonly,yes,--appendfsync,always')
      expect(String(services[name]!.command)).toContain('noeviction')
    }
    expect(Object.keys(services).filter((s) => s.startsWith('sentinel-'))).toHaveLength(3)
    expect(String(services['redis-replica-2']!.command)).toContain('--replicaof,redis,6379')
    expect(services.api!.environment).toMatchObject({ REDIS_SENTINEL_ENABLED: 'true', REDIS_MASTER_NAME: 'hookgate', REDIS_WAIT_REPLICAS: '1' })
    expect(services.worker!.environment).toEqual(services.api!.environment)
  })

  test('swarm stack: replicated api with rolling, start-first updates', () => {
    const { services } = yaml('docker-stack.yml')
    expect(services.api!.deploy).toMatchObject({ replicas: 3, update_config: { order: 'start-first' } })
  })
})
