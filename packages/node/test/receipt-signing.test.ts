import { describe, expect, it } from 'vitest';
import { generateEncryptionKey, generateSigningKey, isProtocolError, signReceipt, verifyReceipt, type ReceiptInput } from '@passerelle/protocol';
import { signReceiptNow } from '../src/identity/receipt-signing.js';

const RECEIVER = 'https://partenaire.example';
const SENDER = 'https://accueil.example';

const accepted = (index: number): ReceiptInput => ({
  receiver: RECEIVER,
  sender: SENDER,
  messageId: '0193a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b',
  digest: 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg',
  status: 'accepted',
  log: { index },
  at: new Date('2026-05-01T10:00:00Z'),
});

describe('signReceiptNow', () => {
  it('makes the very token the SDK signs, which the SDK verifies', async () => {
    const key = await generateSigningKey();
    for (const index of [0, 7, 123_456]) {
      const now = signReceiptNow(accepted(index), key);
      expect(now).toBe(await signReceipt(accepted(index), key));
      const receipt = await verifyReceipt(now, { receiver: RECEIVER, sender: SENDER, messageId: accepted(index).messageId, digest: accepted(index).digest, resolveKey: () => key.publicJwk });
      expect(receipt.log?.index).toBe(index);
    }
    const rejected = { ...accepted(0), status: 'rejected' as const, code: 'CONSENT_WITHDRAWN' as const, log: undefined };
    delete rejected.log;
    expect(signReceiptNow(rejected, key)).toBe(await signReceipt(rejected, key));
  });

  it('refuses claims the receipt schema refuses, and a key that cannot sign receipts', async () => {
    const key = await generateSigningKey();
    expect(() => signReceiptNow({ ...accepted(0), digest: 'not a digest' }, key)).toThrow();
    const encryption = await generateEncryptionKey();
    let error: unknown;
    try {
      signReceiptNow(accepted(0), { ...key, privateJwk: encryption.privateJwk } as never);
    } catch (e) {
      error = e;
    }
    expect(isProtocolError(error, 'KEY_INVALID')).toBe(true);
  });
});
