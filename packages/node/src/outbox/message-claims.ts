/**
 * The header of a message we signed, read back from the issuer-signed JWT kept in the outbox.
 * Our own store is the source, so the signature is not re-verified here.
 */
import { peekCompactPayload, toTimestamp, type MessageHeader } from '@passerelle/protocol';

export interface QueuedMessageClaims {
  header: MessageHeader;
  consentRecord?: string;
}

export function claimsOfQueued(jwt: string): QueuedMessageClaims {
  const p = peekCompactPayload(jwt);
  const header = {
    id: p.jti,
    type: p.type,
    from: p.iss,
    to: p.aud,
    created: toTimestamp((p.iat as number) * 1000),
    expires: toTimestamp((p.exp as number) * 1000),
    threadId: p.thread,
    agreementId: p.agreement,
    ...(typeof p.consent === 'string' ? { consentId: p.consent } : {}),
    purpose: p.purpose,
    categories: p.categories,
  } as MessageHeader;
  return { header, ...(typeof p.consent_record === 'string' ? { consentRecord: p.consent_record } : {}) };
}
