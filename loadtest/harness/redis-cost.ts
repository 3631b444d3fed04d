import type { Redis } from 'ioredis'

/** What Redis has done so far: per command, calls and µs (INFO commandstats), and its CPU time. */
export interface RedisSnapshot {
  commands: Map<string, { calls: number; usec: number }>
  cpuUsec: number
  /** Reads Redis made from its clients' sockets: each a round trip some client waited for (total_reads_processed). */
  reads: number
}

export interface RedisCost {
  /** Redis's own CPU time (user + system: commands, network, persistence), per event. */
  cpuUsecPerEvent: number
  /** µs Redis spent running scripts (with the commands they call), per event. */
  scriptUsecPerEvent: number
  /**
   * Socket reads per event: the round trips clients made (a pipeline of commands is one). With AOF fsync always, each
   * of Redis's rounds of writes waits for an fsync, so this, not the number of commands, is what latency follows.
   */
  readsPerEvent: number
  /** EVAL/EVALSHA/FCALL calls per event. */
  scriptsPerEvent: number
  /** Every command counted by commandstats (including those scripts call, which count under their own names), per event. */
  commandsPerEvent: number
  /** The commands with the most calls per event, with their µs per event. */
  breakdown: { command: string; perEvent: number; usecPerEvent: number }[]
}

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])
/** Commands of the harness itself (its snapshots), left out of the counts. */
const OURS = new Set(['info'])

export async function redisSnapshot(redis: Redis): Promise<RedisSnapshot> {
  const [stats, cpu, counters] = await Promise.all([redis.info('commandstats'), redis.info('cpu'), redis.info('stats')])
  const commands = new Map<string, { calls: number; usec: number }>()
  for (const match of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) })
  }
  const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0)
  const reads = Number(/^total_reads_processed:(\d+)/m.exec(counters)?.[1] ?? 0)
  return { commands, cpuUsec: (seconds('used_cpu_sys') + seconds('used_cpu_user')) * 1e6, reads }
}

/** The work between two snapshots, divided by `events`. */
export function redisCost(before: RedisSnapshot, after: RedisSnapshot, events: number): RedisCost {
  const per = (n: number) => Math.round((n / Math.max(1, events)) * 100) / 100
  let scriptUsec = 0
  let calls = 0
  let scripts = 0
  const breakdown: RedisCost['breakdown'] = []
  for (const [command, now] of after.commands) {
    if (OURS.has(command)) continue
    const then = before.commands.get(command) ?? { calls: 0, usec: 0 }
    const deltaCalls = now.calls - then.calls
    const deltaUsec = now.usec - then.usec
    if (deltaCalls <= 0) continue
    calls += deltaCalls
    if (SCRIPT_COMMANDS.has(command)) {
      scripts += deltaCalls
      scriptUsec += deltaUsec
    }
    breakdown.push({ command, perEvent: per(deltaCalls), usecPerEvent: per(deltaUsec) })
  }
  return {
    cpuUsecPerEvent: per(after.cpuUsec - before.cpuUsec),
    scriptUsecPerEvent: per(scriptUsec),
    readsPerEvent: per(after.reads - before.reads),
    scriptsPerEvent: per(scripts),
    commandsPerEvent: per(calls),
    breakdown: breakdown.sort((a, b) => b.perEvent - a.perEvent),
  }
}
