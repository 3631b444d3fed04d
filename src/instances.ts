import { createHash } from 'node:crypto'
import type { InstanceConfig } from './instances-schema.ts'

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
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

export function createInstances(configs: readonly InstanceConfig[]): Instances {
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
  const all = [...byId.values()]
  return {
    get: (id) => byId.get(id),
    list: () => all,
  }
}
