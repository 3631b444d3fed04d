import { Type, type Static } from '@sinclair/typebox'

/** The most messages one answer may post. */
export const MAX_ANSWER_MESSAGES = 20
/** The longest content of one message (Chatwoot messages are meant for people). */
export const MAX_MESSAGE_CHARS = 10_000

const content = (description?: string) => Type.String({ minLength: 1, maxLength: MAX_MESSAGE_CHARS, description })

export const CONTENT_TYPES = ['text', 'input_select', 'cards', 'form', 'article', 'input_email', 'input_csat'] as const

const AnswerMessage = Type.Object(
  {
    content: content(),
    private: Type.Optional(Type.Boolean({ default: false, description: 'true: a private note for the agents' })),
    content_type: Type.Optional(Type.Union(CONTENT_TYPES.map((type) => Type.Literal(type)), { default: 'text' })),
    content_attributes: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'Passed to Chatwoot as it is: `items` of input_select and cards, form fields…' }),
    ),
  },
  { additionalProperties: false },
)

const AnswerActions = Type.Object(
  {
    customAttributes: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'POST …/custom_attributes: Chatwoot replaces the conversation\'s custom attributes with these',
      }),
    ),
    labels: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { minItems: 1, maxItems: 50, description: 'Added to the conversation\'s labels' }),
    ),
    priority: Type.Optional(Type.Union([Type.Literal('urgent'), Type.Literal('high'), Type.Literal('medium'), Type.Literal('low'), Type.Null()])),
    assign: Type.Optional(
      Type.Union([
        Type.Object({ agentId: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
        Type.Object({ teamId: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
      ]),
    ),
    status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved'), Type.Literal('pending'), Type.Literal('snoozed')])),
    snoozedUntil: Type.Optional(Type.Integer({ minimum: 0, description: 'Unix seconds; only with status `snoozed`' })),
  },
  { additionalProperties: false, description: 'Applied after the messages, in this order: customAttributes, labels, priority, assign, status' },
)

/** A bot handing a conversation over to a human: the example of the OpenAPI document and the README. */
export const ANSWER_EXAMPLE = {
  messages: [
    { content: 'Olá! Já vou te ajudar.' },
    {
      content: 'Sobre o que é?',
      content_type: 'input_select',
      content_attributes: { items: [{ title: 'Pedido', value: 'order' }, { title: 'Troca', value: 'exchange' }] },
    },
    { content: 'Cliente VIP, tratar com prioridade', private: true },
  ],
  actions: { labels: ['vip', 'bot-handoff'], priority: 'high', customAttributes: { plan: 'gold' }, assign: { teamId: 3 }, status: 'open' },
}

/**
 * What a destination's 2xx JSON answer may ask hookgate to do in the event's conversation, as a Chatwoot agent would.
 * Other top-level fields are ignored; a malformed answer posts nothing (an `answer_rejected` line says why).
 */
export const DestinationAnswer = Type.Object(
  {
    reply: Type.Optional(content('One outgoing message (before `messages`)')),
    note: Type.Optional(content('One private note (after `reply`, before `messages`)')),
    messages: Type.Optional(Type.Array(AnswerMessage, { maxItems: MAX_ANSWER_MESSAGES, description: 'Posted in this order' })),
    actions: Type.Optional(AnswerActions),
  },
  { additionalProperties: true, examples: [ANSWER_EXAMPLE] },
)

export type DestinationAnswer = Static<typeof DestinationAnswer>
