import type { Config } from './config.ts'
import { createApp } from './http/app.ts'
import { createInstances } from './instances.ts'
import type { Log } from './log.ts'
import { createEnqueuer } from './queue/enqueue.ts'
import { createQueues } from './queue/queues.ts'
import { createRedis, waitForReady, type ConnectedRedisConfig } from './redis.ts'

export interface RunningApi {
  port: number
  /** Stops accepting, lets in-flight requests finish, then closes queues and connections. Idempotent. */
  stop(): Promise<void>
}

/** Headroom over MAX_BODY_BYTES for Bun's own cap, so a body just over our limit gets our JSON 413. */
const BUN_BODY_HEADROOM_BYTES = 1024 * 1024

/** One API process: builds its dependencies once, in order, and closes them in reverse. */
export async function startApi(config: Config, redisConfig: ConnectedRedisConfig, log: Log): Promise<RunningApi> {
  const producer = createRedis(redisConfig, 'producer', log)
  const commands = createRedis(redisConfig, 'commands', log)
  if (!(await waitForReady(commands, 5000))) log.warn('redis not reachable yet; answering 503 until it is')
  const queues = createQueues({ config: config.queue, producer, log })
  const enqueuer = createEnqueuer({ config: config.queue, commands, queues, log })
  const instances = createInstances(config.instances)
  const app = createApp({ config, log, instances, enqueuer, redis: commands })

  app.listen({
    port: config.http.port,
    hostname: config.http.host,
    reusePort: true,
    maxRequestBodySize: config.http.maxBodyBytes + BUN_BODY_HEADROOM_BYTES,
  })
  const port = app.server?.port ?? config.http.port
  log.info({ port, host: config.http.host, instances: instances.list().length }, 'api listening')

  let stopping: Promise<void> | undefined
  return {
    port,
    stop: () =>
      (stopping ??= (async () => {
        await app.stop()
        await queues.close()
        await Promise.allSettled([producer.quit(), commands.quit()])
        log.info('api stopped')
      })()),
  }
}
