import { Type, type Static } from '@sinclair/typebox'

/** An instance id is a URL path segment and part of every Redis key: keep it plain. */
export const INSTANCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'

/** Routes one instance may have: an event joins at most this many conversation lanes. */
export const MAX_ROUTES = 32

const Destination = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', description: 'Where matching events are POSTed' }),
    secret: Type.Optional(Type.String({ minLength: 16, description: 'Signs deliveries (Standard Webhooks)' })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000 })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    debounceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
)

const Route = Type.Object(
  {
    events: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    messageTypes: Type.Optional(
      Type.Array(Type.Union([Type.Literal('incoming'), Type.Literal('outgoing'), Type.Literal('template')]), { minItems: 1 }),
    ),
    inboxes: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1 })),
    private: Type.Optional(Type.Boolean()),
    ordered: Type.Optional(
      Type.Boolean({
        description:
          'true (the default): a conversation\'s events reach the destination one at a time, in the order they were accepted, and its answers are posted in that order; false: in parallel',
      }),
    ),
    destination: Destination,
  },
  { additionalProperties: false },
)

const RateLimit = Type.Object(
  {
    perSecond: Type.Optional(Type.Number({ minimum: 0.001, maximum: 1_000_000, description: 'Sustained events per second' })),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Events accepted at once above the rate' })),
    ceilingPerSecond: Type.Optional(
      Type.Number({ minimum: 0.001, maximum: 1_000_000, description: 'Arrivals per second past which 429 applies' }),
    ),
    policy: Type.Optional(Type.Union([Type.Literal('shape'), Type.Literal('reject')])),
  },
  { additionalProperties: false },
)

const Instance = Type.Object(
  {
    id: Type.String({ pattern: INSTANCE_ID_PATTERN }),
    /** Shared tokens for `?token=`, `Authorization: Bearer` or `api_access_token`; several allow rotation. */
    tokens: Type.Optional(Type.Array(Type.String({ minLength: 16 }))),
    /** Chatwoot 4.12+ webhook signing secrets (account webhook, API inbox and agent bot each have their own). */
    webhookSecret: Type.Optional(
      Type.Union([Type.String({ minLength: 8 }), Type.Array(Type.String({ minLength: 8 }), { minItems: 1 })]),
    ),
    chatwoot: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^https?://' }),
          apiAccessToken: Type.String({ minLength: 1 }),
        },
        { additionalProperties: false },
      ),
    ),
    routes: Type.Optional(Type.Array(Route, { maxItems: MAX_ROUTES })),
    /** A delivery that fails for good posts a private note saying so into the event's conversation. */
    notifyOnFailure: Type.Optional(Type.Boolean()),
    /** Overrides of the RATE_LIMIT_INSTANCE_* defaults for this instance. */
    rateLimit: Type.Optional(RateLimit),
  },
  { additionalProperties: false },
)

export const InstancesFileSchema = Type.Object(
  { instances: Type.Array(Instance, { minItems: 1 }) },
  { additionalProperties: false },
)

export type InstanceConfig = Static<typeof Instance>
export type RouteConfig = Static<typeof Route>
export type InstanceRateLimitConfig = Static<typeof RateLimit>
