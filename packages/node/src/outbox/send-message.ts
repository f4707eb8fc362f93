/**
 * The sending side of spec/node.md §4: build → enforce (consent and agreement, as the recipient
 * will) → seal to the peer's current encryption key → commit to the outbox → wake the worker.
 * Nothing touches the network before the sealed message is durably queued.
 */
import {
  buildMessage,
  currentEncryptionKey,
  definitionOf,
  messageSentEvent,
  MessageTypes,
  ProtocolError,
  seal,
  type MessageType,
  type Purpose,
} from '@passerelle/protocol';
import type { NodeEvents } from '../events.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { PolicyContext } from '../policy/policy-context.js';
import type { OutboxEntry, Store } from '../store/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import { crashPoint } from '../fault-injection.js';

/** Lower goes first: a withdrawal overtakes anything still queued (DESIGN flow 5). */
export const PRIORITY_WITHDRAWAL = 0;
export const PRIORITY_RIGHTS = 5;
export const PRIORITY_DEFAULT = 10;

export interface SendInput {
  type: MessageType;
  to: string;
  agreementId: string;
  consentId?: string | undefined;
  threadId?: string | undefined;
  purpose?: Purpose | undefined;
  body: unknown;
  data?: Record<string, unknown> | undefined;
  /** Lifetime before delivery gives up; the protocol default when absent. */
  ttlSeconds?: number | undefined;
  /** Creation time (defaults to now); a past value is how tests make an already expired message. */
  created?: Date | undefined;
}

export interface SendDeps {
  identity: NodeIdentity;
  store: Store;
  trust: TrustStore;
  policy: PolicyContext;
  events: NodeEvents;
  /** Wakes the worker; `peer` is told when a rights message to it was queued. */
  wake: (rightsTo?: string) => void;
  now: () => Date;
}

export function priorityOf(type: string): number {
  if (type === MessageTypes.CONSENT_WITHDRAWAL) return PRIORITY_WITHDRAWAL;
  if (type === MessageTypes.ERASURE_CONFIRMATION) return PRIORITY_RIGHTS;
  return PRIORITY_DEFAULT;
}

export async function sendMessage(deps: SendDeps, input: SendInput): Promise<OutboxEntry> {
  const now = deps.now();
  if (input.to === deps.identity.id) throw new ProtocolError('AUDIENCE_MISMATCH', 'A node does not send messages to itself');
  if (!deps.trust.isPinned(input.to)) throw new ProtocolError('PEER_UNKNOWN', 'The recipient is not in the trust store');
  let consentRecord: string | undefined;
  if (input.consentId !== undefined) {
    const row = await deps.store.getConsent(input.consentId);
    if (!row) throw new ProtocolError('CONSENT_MISSING', 'No consent with this id is recorded', { consentId: input.consentId });
    consentRecord = row.jws;
  }
  const created = input.created ?? now;
  const message = buildMessage(definitionOf(input.type), {
    from: deps.identity.id,
    to: input.to,
    agreementId: input.agreementId,
    ...(input.consentId !== undefined ? { consentId: input.consentId } : {}),
    ...(consentRecord !== undefined ? { consentRecord } : {}),
    ...(input.threadId !== undefined ? { threadId: input.threadId } : {}),
    ...(input.purpose !== undefined ? { purpose: input.purpose } : {}),
    ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}),
    created,
    body: input.body as never,
    data: (input.data ?? {}) as never,
  });
  await deps.policy.enforce({ header: message.header }, consentRecord, now);

  const peer = await deps.trust.document(input.to);
  const recipient = currentEncryptionKey(peer.document, now);
  const sealed = await seal(message, {
    signingKey: deps.identity.signingKey(now),
    recipientKey: { ...recipient.jwk, kid: recipient.kid },
  });
  const { header } = message;
  // The sealed message committed for delivery (spec/audit.md §3.2): its id, recipient and the digest of the exact JWE.
  const sent = messageSentEvent(
    {
      messageId: header.id,
      peer: header.to,
      digest: sealed.digest,
      type: header.type,
      threadId: header.threadId,
      ...(header.consentId !== undefined ? { consentId: header.consentId } : {}),
    },
    now.toISOString(),
  );
  const entry = await deps.store.enqueue(
    {
      id: header.id,
      peer: header.to,
      type: header.type,
      threadId: header.threadId,
      ...(header.consentId !== undefined ? { consentId: header.consentId } : {}),
      priority: priorityOf(header.type),
      jwe: sealed.jwe,
      digest: sealed.digest,
      jwt: sealed.jwt,
      expiresAt: header.expires,
    },
    { ...sent, fields: { ...sent.fields, agreementId: header.agreementId, categories: header.categories } },
  );
  crashPoint('outbox.committed');
  deps.events.emit('outbox.queued', { messageId: entry.id, peer: entry.peer, type: entry.type });
  deps.wake(entry.priority < PRIORITY_DEFAULT ? entry.peer : undefined);
  return entry;
}
