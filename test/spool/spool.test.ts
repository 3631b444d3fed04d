import { describe, expect, test } from 'bun:test'
import { appendFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger } from '../../src/log.ts'
import type { WebhookJobData } from '../../src/queue/names.ts'
import { createSpool, SpoolFull, SpoolUnavailable, type SpooledEvent } from '../../src/spool/spool.ts'
import { logCapture, tempDir } from '../helpers/deps.ts'

function event(n: number): SpooledEvent {
  const data: WebhookJobData = { instanceId: 'acme', event: 'message_created', body: `{"event":"message_created","id":${n}}`, deliveryId: undefined, receivedAt: 1_700_000_000_000 + n }
  return { jobId: `acme.message_created.m${n}`, owner: `owner-${n}`, data }
}

function spoolIn(dir: string, options: { maxBytes?: number; staleOwnerMs?: number } = {}) {
  const logs = logCapture()
  const spool = createSpool({ dir, maxBytes: options.maxBytes ?? 1024 * 1024, log: createLogger({ level: 'info' }, logs.stream), staleOwnerMs: options.staleOwnerMs })
  return { spool, logs: logs.lines }
}

describe('the spool', () => {
  test('group commit: a burst of appends is written and fsynced together, and every one resolves once on disk', async () => {
    const { spool } = spoolIn(tempDir())
    await Promise.all(Array.from({ length: 300 }, (_, i) => spool.append(event(i))))
    const { events, fsyncs } = spool.pending()
    expect(events).toBe(300)
    expect(fsyncs).toBeGreaterThan(0)
    expect(fsyncs).toBeLessThanOrEqual(5)
    await spool.close()
  })

  test('gives its events back in order, file by file, and forgets a file once it is done', async () => {
    const { spool } = spoolIn(tempDir())
    for (const n of [1, 2, 3]) await spool.append(event(n))
    await spool.rotate()
    await spool.append(event(4))
    await spool.rotate()
    const segments = await spool.segments()
    expect(segments.map((s) => s.events.map((e) => e.jobId))).toEqual([
      ['acme.message_created.m1', 'acme.message_created.m2', 'acme.message_created.m3'],
      ['acme.message_created.m4'],
    ])
    expect(segments[0]!.events[0]).toEqual(event(1))
    await spool.done(segments[0]!)
    expect(spool.pending()).toMatchObject({ events: 1 })
    expect((await spool.segments()).map((s) => s.events.length)).toEqual([1])
    await spool.close()
  })

  test('never hands out the file being written', async () => {
    const { spool } = spoolIn(tempDir())
    await spool.append(event(1))
    expect(await spool.segments()).toEqual([])
    await spool.rotate()
    expect((await spool.segments()).length).toBe(1)
    await spool.close()
  })

  test('refuses past SPOOL_MAX_BYTES with a 503 and Retry-After, and takes events again once replayed', async () => {
    const { spool } = spoolIn(tempDir(), { maxBytes: 600 })
    await spool.append(event(1))
    await spool.append(event(2))
    await spool.append(event(3))
    const refused = await spool.append(event(4)).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(SpoolFull)
    expect(refused).toMatchObject({ status: 503, headers: { 'retry-after': '5' } })
    await spool.rotate()
    for (const segment of await spool.segments()) await spool.done(segment)
    await spool.append(event(4))
    await spool.close()
  })

  test('an unwritable directory: appends fail with a 503, said once in the log, and nothing throws elsewhere', async () => {
    const file = join(tempDir(), 'not-a-directory')
    writeFileSync(file, '')
    const { spool, logs } = spoolIn(join(file, 'spool'))
    const refused = await spool.append(event(1)).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(SpoolUnavailable)
    expect(await spool.segments()).toEqual([])
    expect(logs.filter((l) => l.includes('spool directory not writable')).length).toBe(1)
    await spool.close()
  })

  test('a dead process\'s files are claimed and replayed by another; a torn last record is skipped with a log line', async () => {
    const dir = tempDir()
    const { spool: dying } = spoolIn(dir)
    await dying.append(event(1))
    await dying.append(event(2))
    // It dies mid-write: a half line at the end, and its heartbeat stops (no close()).
    const [file] = readdirSync(dir).filter((n) => n.endsWith('.spool'))
    appendFileSync(join(dir, file!), '1234abcd {"jobId":"acme.message_created.m3","ow')
    const { spool: survivor, logs } = spoolIn(dir, { staleOwnerMs: 0 })
    const segments = await survivor.segments()
    expect(segments.map((s) => s.events.map((e) => e.jobId))).toEqual([['acme.message_created.m1', 'acme.message_created.m2']])
    expect(logs.some((l) => l.includes('torn last record skipped'))).toBe(true)
    expect(survivor.pending()).toMatchObject({ events: 2 })
    // Claimed, by a process that is alive: a third process finds nothing left to claim.
    const { spool: third } = spoolIn(dir, { staleOwnerMs: 2000 })
    expect(await third.segments()).toEqual([])
    await Promise.all([survivor.close(), third.close()])
  })
})
