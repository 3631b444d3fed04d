import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { HookgateError } from '../errors.ts'
import { createOutageReporter, type Log } from '../log.ts'
import type { WebhookJobData } from '../queue/names.ts'

/**
 * One accepted event that Redis could not take: its dedupe key (the job id), the owner of its dedupe lock (a call that
 * timed out may still have taken the lock for it; the replay takes it as the same owner) and the job's data.
 */
export interface SpooledEvent {
  jobId: string
  owner: string
  data: WebhookJobData
}

/** A closed spool file ready to be replayed, its events in the order they were accepted. */
export interface Segment {
  path: string
  events: SpooledEvent[]
}

export class SpoolFull extends HookgateError {
  constructor(retryAfterSeconds: number) {
    super('unavailable', 503, 'Redis is unavailable and the local spool is full; send the event again shortly.', {
      'retry-after': String(retryAfterSeconds),
    })
  }
}

export class SpoolUnavailable extends HookgateError {
  constructor(retryAfterSeconds: number) {
    super('unavailable', 503, 'Redis is unavailable and the local spool cannot be written; send the event again shortly.', {
      'retry-after': String(retryAfterSeconds),
    })
  }
}

export interface Spool {
  /** Resolves once the event is on disk (fsynced, shared with the appends of the same few milliseconds). */
  append(event: SpooledEvent): Promise<void>
  /** Closes the file being written, if it has events, so that it can be replayed; new appends go to a new file. */
  rotate(): Promise<void>
  /** This process's closed files, oldest first, then those of processes that are gone (claimed: now ours). */
  segments(): Promise<Segment[]>
  /** A segment's events are all in the queue: its file goes. */
  done(segment: Segment): Promise<void>
  /** Events on disk not replayed yet, their bytes, and the fsyncs it took to write all events so far. */
  pending(): { events: number; bytes: number; fsyncs: number }
  close(): Promise<void>
}

/** Appends arriving within this long of each other share one write and one fsync. */
const GROUP_COMMIT_MS = 2
/**
 * How often a process says it is alive; a file whose owner has been silent for STALE_OWNER_MS is an orphan. Long
 * enough that a live process (a stalled event loop, a slow disk) is never taken for dead: its file is claimed only when
 * nothing can write to it any more.
 */
const HEARTBEAT_MS = 1000
const STALE_OWNER_MS = 10_000
/** What a refused webhook is told: roughly how long a Redis failover or restart takes. */
const RETRY_AFTER_SECONDS = 5

/**
 * The API's durable fallback when Redis cannot take an event: append-only files in SPOOL_DIR, one per process
 * (`<owner>.<seq>.spool`, the owner unique to this process's life), each line `<crc32 hex> <json>\n`. A torn last
 * line (a crash mid-write) fails its checksum or lacks its newline, and is skipped with a log line: its request was
 * never answered, since an append resolves only after its fsync. A process that
 * dies leaves its files and a heartbeat that goes stale; any live process of the host then claims them by renaming
 * them into its own name (atomic: one claimer wins) and replays them.
 */
export function createSpool(deps: { dir: string; maxBytes: number; log: Log; staleOwnerMs?: number }): Spool {
  const { dir, maxBytes, log, staleOwnerMs = STALE_OWNER_MS } = deps
  const owner = `${process.pid}-${randomUUID().slice(0, 8)}`
  const heartbeatPath = join(dir, `${owner}.alive`)
  let sequence = 0
  let file: { handle: FileHandle; path: string; events: number } | undefined
  let batch: { line: string; resolve: () => void; reject: (error: Error) => void }[] = []
  let batchBytes = 0
  let flushing: Promise<void> | undefined
  let writing: Promise<void> = Promise.resolve()
  /** Events and bytes in this process's files (written or claimed) not yet replayed, in all and by file. */
  const pendingCount = { events: 0, bytes: 0 }
  const byFile = new Map<string, { events: number; bytes: number }>()
  let fsyncs = 0
  const count = (path: string, events: number, bytes: number) => {
    const counted = byFile.get(path) ?? { events: 0, bytes: 0 }
    byFile.set(path, { events: counted.events + events, bytes: counted.bytes + bytes })
    pendingCount.events += events
    pendingCount.bytes += bytes
  }

  // An unwritable SPOOL_DIR is said once (and when it is writable again); appends then fail with a 503.
  const dirState = createOutageReporter(log, { dir }, { down: 'spool directory not writable', up: 'spool directory writable again' })
  const beat = () =>
    mkdir(dir, { recursive: true })
      .then(() => writeFile(heartbeatPath, owner))
      .then(() => dirState.up(), (error: Error) => dirState.down(error.message))
  void beat()
  const heartbeat = setInterval(() => void utimes(heartbeatPath, new Date(), new Date()).then(() => dirState.up(), beat), HEARTBEAT_MS)
  heartbeat.unref()

  /** Writes what has been appended, batch after batch, each after a short wait so that a burst shares one fsync. */
  async function flush(): Promise<void> {
    while (batch.length > 0) {
      await Bun.sleep(GROUP_COMMIT_MS)
      const taken = batch
      const bytes = batchBytes
      batch = []
      batchBytes = 0
      writing = write(taken, bytes)
      await writing
    }
    flushing = undefined
  }

  async function write(taken: typeof batch, bytes: number): Promise<void> {
    let target: typeof file
    try {
      target = file ??= await openNext()
      await target.handle.write(taken.map((entry) => entry.line).join(''))
      await target.handle.datasync()
      fsyncs++
      target.events += taken.length
      count(target.path, taken.length, bytes)
      for (const entry of taken) entry.resolve()
    } catch (error) {
      log.error({ err: (error as Error).message, events: taken.length }, 'spool write failed')
      // The file may hold part of this batch: go on in a new one; the replay skips a torn line.
      if (target && file === target) file = undefined
      await target?.handle.close().catch(() => {})
      for (const entry of taken) entry.reject(new SpoolUnavailable(RETRY_AFTER_SECONDS))
    }
  }

  async function openNext() {
    const path = join(dir, `${owner}.${String(++sequence).padStart(6, '0')}.spool`)
    await mkdir(dir, { recursive: true })
    return { handle: await open(path, 'a'), path, events: 0 }
  }

  async function orphans(): Promise<string[]> {
    const names = await readdir(dir).catch(() => [] as string[])
    const now = Date.now()
    const alive = new Set<string>()
    for (const name of names.filter((n) => n.endsWith('.alive'))) {
      const beatAt = await stat(join(dir, name)).then((s) => s.mtimeMs, () => 0)
      if (now - beatAt < staleOwnerMs) alive.add(name.slice(0, -'.alive'.length))
    }
    const claimed: string[] = []
    for (const name of names.filter((n) => n.endsWith('.spool')).sort()) {
      const fileOwner = name.split('.')[0]!
      if (fileOwner === owner || alive.has(fileOwner)) continue
      // Ours now, named after the original so the original order is kept among claimed files.
      const path = join(dir, `${owner}.${String(++sequence).padStart(6, '0')}.claimed-${name}`)
      try {
        await rename(join(dir, name), path)
        claimed.push(path)
      } catch {
        // Another process claimed it first.
      }
    }
    // The heartbeats of the dead (with their files claimed, or none): gone, so that restarts leave nothing behind.
    for (const name of names.filter((n) => n.endsWith('.alive'))) {
      const deadOwner = name.slice(0, -'.alive'.length)
      if (deadOwner !== owner && !alive.has(deadOwner)) await unlink(join(dir, name)).catch(() => {})
    }
    return claimed
  }

  async function read(path: string): Promise<SpooledEvent[]> {
    const text = await readFile(path, 'utf8')
    const events: SpooledEvent[] = []
    const lines = text.split('\n')
    lines.forEach((line, i) => {
      const last = i === lines.length - 1
      if (last && line === '') return
      const space = line.indexOf(' ')
      const json = line.slice(space + 1)
      const intact = !last && space > 0 && line.slice(0, space) === checksum(json)
      if (!intact) {
        log.error({ file: path, line: i + 1 }, last ? 'spool: torn last record skipped (a crash mid-write)' : 'spool: corrupt record skipped')
        return
      }
      events.push(JSON.parse(json) as SpooledEvent)
    })
    return events
  }

  return {
    append(event) {
      const json = JSON.stringify(event)
      const line = `${checksum(json)} ${json}\n`
      const bytes = Buffer.byteLength(line)
      if (pendingCount.bytes + batchBytes + bytes > maxBytes) return Promise.reject(new SpoolFull(RETRY_AFTER_SECONDS))
      batchBytes += bytes
      return new Promise<void>((resolve, reject) => {
        batch.push({ line, resolve, reject })
        flushing ??= flush()
      })
    },

    async rotate() {
      const closing = file
      if (!closing || closing.events === 0) return
      file = undefined
      await writing // a write to it may be under way
      await closing.handle.close()
    },

    async segments() {
      for (const path of await orphans()) {
        count(path, (await read(path)).length, await stat(path).then((s) => s.size, () => 0))
      }
      const names = await readdir(dir).catch(() => [] as string[])
      // Never the file being written (read after the listing, with no await between: the one open now).
      const ours = names
        .filter((name) => name.startsWith(`${owner}.`) && name.includes('.spool') && join(dir, name) !== file?.path)
        .sort()
        .map((name) => join(dir, name))
      return Promise.all(ours.map(async (path) => ({ path, events: await read(path) })))
    },

    async done(segment) {
      await unlink(segment.path)
      const counted = byFile.get(segment.path) ?? { events: 0, bytes: 0 }
      byFile.delete(segment.path)
      pendingCount.events -= counted.events
      pendingCount.bytes -= counted.bytes
    },

    pending: () => ({ ...pendingCount, fsyncs }),

    async close() {
      clearInterval(heartbeat)
      await flushing
      await file?.handle.close()
      file = undefined
      // Leaving: any unreplayed file becomes an orphan at once, for another process or the next start.
      await unlink(heartbeatPath).catch(() => {})
    },
  }
}

function checksum(text: string): string {
  return Bun.hash.crc32(text).toString(16).padStart(8, '0')
}
