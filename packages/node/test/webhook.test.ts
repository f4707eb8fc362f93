import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { webhookSignature } from '../src/webhooks/webhook-notifier.js';

describe('webhook signature', () => {
  it('is HMAC-SHA256 over "<timestamp>.<body>", base64url, versioned', () => {
    const body = '{"event":"message.received","messageId":"x"}';
    const expected = createHmac('sha256', 'a-shared-secret-of-length').update(`1777000000.${body}`).digest('base64url');
    expect(webhookSignature('a-shared-secret-of-length', 1777000000, body)).toBe(`v1=${expected}`);
    expect(webhookSignature('a-shared-secret-of-length', 1777000001, body)).not.toBe(`v1=${expected}`);
  });
});
