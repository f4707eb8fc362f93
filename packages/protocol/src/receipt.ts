/**
 * Receipts (spec/protocol.md §7): the receiver's signed statement of which exact bytes it received,
 * when, whether it accepted them, and its audit-log position. Non-repudiation of receipt.
 */
import { z } from 'zod';
import { ProtocolError, isErrorCode } from './errors.js';
import { signCompact, verifyCompact, type KeyResolver } from './jws.js';
import type { SigningKeyPair } from './keys.js';
import { Digest, MessageId, NodeId, Timestamp, toEpochSeconds, toTimestamp } from './vocabulary.js';
import { constantTimeEqual } from './encoding.js';

export const RECEIPT_TYP = 'passerelle-receipt+jwt';

export const AuditPosition = z
  .object({
    /** Index of the receipt's leaf in the receiver's audit log. */
    index: z.number().int().min(0),
    /** The receiver's latest signed checkpoint (compact JWS) when the receipt was issued. */
    checkpoint: z.string().max(8192).optional(),
  })
  .strict()
  .meta({ id: 'AuditPosition' });

export const Receipt = z
  .object({
    iss: NodeId,
    aud: NodeId,
    iat: z.number().int().min(0),
    message: MessageId,
    digest: Digest,
    status: z.enum(['accepted', 'rejected']),
    code: z.string().refine(isErrorCode, { message: 'must be a protocol error code' }).optional(),
    log: AuditPosition.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.status === 'rejected' && !r.code) ctx.addIssue({ code: 'custom', path: ['code'], message: 'a rejection names its code' });
    if (r.status === 'accepted' && r.code) ctx.addIssue({ code: 'custom', path: ['code'], message: 'an acceptance has no code' });
  })
  .meta({ id: 'Receipt', description: 'Payload of a signed receipt (compact JWS, typ passerelle-receipt+jwt).' });
export type Receipt = z.infer<typeof Receipt>;

export interface ReceiptInput {
  receiver: string;
  sender: string;
  messageId: string;
  digest: string;
  status: 'accepted' | 'rejected';
  code?: Receipt['code'];
  log?: z.infer<typeof AuditPosition>;
  at?: Date;
}

export async function signReceipt(input: ReceiptInput, key: SigningKeyPair): Promise<string> {
  return signCompact(receiptPayload(input), key, RECEIPT_TYP);
}

/** The validated claims signReceipt signs (typ RECEIPT_TYP), for a signer of the caller's own. */
export function receiptPayload(input: ReceiptInput): Receipt {
  return Receipt.parse({
    iss: input.receiver,
    aud: input.sender,
    iat: toEpochSeconds(toTimestamp(input.at ?? new Date())),
    message: input.messageId,
    digest: input.digest,
    status: input.status,
    ...(input.code ? { code: input.code } : {}),
    ...(input.log ? { log: input.log } : {}),
  });
}

export interface VerifyReceiptOptions {
  /** The node we sent to: the receipt must be signed by it. */
  receiver: string;
  /** Ourselves: the receipt must be addressed to us. */
  sender?: string;
  messageId: string;
  /** base64url SHA-256 of the exact bytes we sent. */
  digest: string;
  resolveKey: KeyResolver;
}

/** Any mismatch (signer, message, digest, audience, schema, signature) is RECEIPT_INVALID. */
export async function verifyReceipt(token: string, options: VerifyReceiptOptions): Promise<Receipt> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await verifyCompact(token, RECEIPT_TYP, options.resolveKey));
  } catch (e) {
    throw new ProtocolError('RECEIPT_INVALID', 'Receipt does not verify', undefined, { cause: e });
  }
  const parsed = Receipt.safeParse(payload);
  if (!parsed.success) throw new ProtocolError('RECEIPT_INVALID', 'Receipt is malformed');
  const r = parsed.data;
  if (r.iss !== options.receiver) throw new ProtocolError('RECEIPT_INVALID', 'Receipt signed by another node');
  if (options.sender !== undefined && r.aud !== options.sender) throw new ProtocolError('RECEIPT_INVALID', 'Receipt addressed to another node');
  if (r.message !== options.messageId) throw new ProtocolError('RECEIPT_INVALID', 'Receipt for another message');
  if (!constantTimeEqual(r.digest, options.digest)) throw new ProtocolError('RECEIPT_INVALID', 'Receipt for other bytes');
  return r;
}
