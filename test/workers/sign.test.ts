import { describe, expect, test } from 'bun:test'
import { signStandardWebhook } from '../../workers/sign.ts'

// Expected values computed outside our code with openssl:
//   printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' \
//     | openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of base64-decoded MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw> -binary | base64
//   printf '%s' 'evt-1.1790000000.{"event":"message_created"}' | openssl dgst -sha256 -hmac plain-secret-0123456789 -binary | base64
describe('signStandardWebhook', () => {
  test('signs id.timestamp.body with a whsec_ secret as Standard Webhooks libraries verify it', () => {
    expect(signStandardWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).toEqual({
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    })
  })

  test('uses any other secret as its UTF-8 bytes', () => {
    expect(signStandardWebhook('plain-secret-0123456789', 'evt-1', 1790000000, '{"event":"message_created"}')['webhook-signature']).toBe(
      'v1,o9yuirlhgeMqA8DbEwQFKT2UHQupZa8ykCNmAQ92ndw=',
    )
  })
})
