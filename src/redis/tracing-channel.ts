import diagnostics from 'node:diagnostics_channel'

type Channels = Record<'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error', { hasSubscribers: boolean }>

/**
 * Bun's TracingChannel has no `hasSubscribers` (Node's has), and ioredis 6 reads a missing one as "someone listens":
 * it then wraps every command in a traced promise and stringifies its arguments for nobody. Measured: ~10 µs of CPU
 * per webhook in an API process. This gives Bun's TracingChannel Node's getter (true when any of its channels has a
 * subscriber), so tracing still works the moment something subscribes. Idempotent; a no-op where it exists.
 */
export function giveTracingChannelHasSubscribers(): void {
  const proto = Object.getPrototypeOf(diagnostics.tracingChannel('hookgate:probe')) as object
  if ('hasSubscribers' in proto) return
  Object.defineProperty(proto, 'hasSubscribers', {
    configurable: true,
    get(this: Channels) {
      return this.start.hasSubscribers || this.end.hasSubscribers || this.asyncStart.hasSubscribers || this.asyncEnd.hasSubscribers || this.error.hasSubscribers
    },
  })
}
