import type { Job } from 'bullmq'
import type { Config } from '../src/config.ts'
import type { Instances } from '../src/instances.ts'
import type { Log } from '../src/log.ts'
import { JOB, type WebhookJobData } from '../src/queue/names.ts'
import type { Queues } from '../src/queue/queues.ts'
import { matchRoutes, routableEvent } from './routes.ts'

export interface WebhookDeps {
  config: Config
  instances: Instances
  queues: Queues
  log: Log
}

/** The `webhook` queue: match the instance's routes and fan out one `delivery` job per destination. */
export function createWebhookProcessor(deps: WebhookDeps) {
  const { config, instances, queues, log } = deps
  return async function processWebhook(job: Job<WebhookJobData>): Promise<{ routes: number[] }> {
    const { instanceId, event, body } = job.data
    const instance = instances.get(instanceId)
    if (!instance) {
      log.warn({ jobId: job.id, instance: instanceId }, 'event of an instance no longer configured; not routed')
      return { routes: [] }
    }
    const routable = routableEvent(JSON.parse(body))
    const routes = instance.config.routes ?? []
    const matched = matchRoutes(routes, routable)
    // One job per destination, its id derived from the event's: a duplicate never makes a second one, and one slow
    // or dead destination never delays or re-sends another.
    await queues.delivery.addBulk(
      matched.map((route) => ({
        name: JOB.delivery,
        data: { instanceId, route, event, body, conversation: routable.conversation },
        opts: { jobId: `${job.id}.r${route}`, attempts: routes[route]!.destination.maxAttempts ?? config.workers.deliveryAttempts },
      })),
    )
    log.debug({ jobId: job.id, instance: instanceId, event, routes: matched, ours: routable.ours }, 'routed')
    return { routes: matched }
  }
}
