import { createHash } from 'node:crypto'
import { ConfigError, reloadInstancesFile, type Config } from './config.ts'
import type { InstanceConfig } from './instances-schema.ts'
import type { Log } from '../log.ts'
import type { ReloadReport } from '../process/supervisor-link.ts'

/** An instance with its credentials prepared once, so a request only hashes and compares. */
export interface Instance {
  id: string
  /** SHA-256 of each accepted token: equal-length values for a constant-time compare. */
  tokenDigests: readonly Buffer[]
  webhookSecrets: readonly string[]
  config: InstanceConfig
}

export interface Instances {
  get(id: string): Instance | undefined
  list(): readonly Instance[]
  /** Swaps the whole set at once: a request or job that got an instance keeps a consistent one. */
  replace(configs: readonly InstanceConfig[]): void
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

export function createInstances(configs: readonly InstanceConfig[]): Instances {
  let byId = prepare(configs)
  let all = [...byId.values()]
  return {
    get: (id) => byId.get(id),
    list: () => all,
    replace(next) {
      byId = prepare(next)
      all = [...byId.values()]
    },
  }
}

function prepare(configs: readonly InstanceConfig[]): Map<string, Instance> {
  const byId = new Map<string, Instance>()
  for (const config of configs) {
    const secrets = config.webhookSecret === undefined ? [] : [config.webhookSecret].flat()
    byId.set(config.id, {
      id: config.id,
      tokenDigests: (config.tokens ?? []).map(tokenDigest),
      webhookSecrets: secrets,
      config,
    })
  }
  return byId
}

/**
 * This process's reload (SIGHUP, POST /admin/reload): re-reads and re-checks the instances file, and swaps it in
 * only when it is valid; a bad file is refused, with its problems, and the instances in use stay.
 */
export function instancesReloader(deps: { config: Config; instances: Instances; log: Log }): () => ReloadReport {
  const { config, instances, log } = deps
  return () => {
    try {
      const next = reloadInstancesFile(config)
      instances.replace(next)
      log.info({ instances: next.length }, 'instances reloaded')
      return { pid: process.pid, ok: true, instances: next.length }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      log.error({ problems: error.problems }, 'instances reload refused; the previous instances stay')
      return { pid: process.pid, ok: false, problems: error.problems }
    }
  }
}
