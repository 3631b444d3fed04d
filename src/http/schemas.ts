import { t } from 'elysia'

export const ErrorResponse = t.Object(
  {
    error: t.String({ description: 'Stable snake_case code', examples: ['unauthorized'] }),
    message: t.String({ description: 'What went wrong, for humans' }),
    requestId: t.Optional(t.String({ description: 'Also in the X-Request-Id header and our logs' })),
  },
  { description: 'Every error hookgate answers' },
)

export function errorResponse(description: string) {
  return { ...ErrorResponse, description }
}
