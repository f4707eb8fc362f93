/**
 * The audit-log events an auditor relies on (spec/audit.md §3.2). A node records other events too;
 * these are the ones whose fields an audit bundle's records are checked against, so a node must
 * build them with these helpers rather than by hand.
 */
import { sha256b64uSync } from '../encoding.js';
import type { AuditFields } from './leaf.js';

export const AuditEvents = {
  /** The sender committed a sealed message (exact JWE bytes) for delivery. */
  MESSAGE_SENT: 'message.sent',
  /** The recipient's signed receipt accepting the message was stored. */
  MESSAGE_DELIVERED: 'message.delivered',
  /** The recipient's signed receipt rejecting the message was stored. */
  MESSAGE_REJECTED: 'message.rejected',
  /** A message was received and answered with a receipt naming this entry's index. */
  MESSAGE_RECEIVED: 'message.received',
  /** A consent was withdrawn, wholly or for some purposes. */
  CONSENT_WITHDRAWN: 'consent.withdrawn',
} as const;
export type AuditEventKind = (typeof AuditEvents)[keyof typeof AuditEvents];

/** An event as a node appends it (the log assigns the index). */
export interface AuditEventInput {
  kind: string;
  fields: AuditFields;
  at: string;
}

export interface MessageSentFields {
  messageId: string;
  /** The recipient's node id. */
  peer: string;
  /** base64url SHA-256 of the exact JWE bytes. */
  digest: string;
  type?: string;
  threadId?: string;
  consentId?: string;
}

export function messageSentEvent(fields: MessageSentFields, at: string): AuditEventInput {
  return { kind: AuditEvents.MESSAGE_SENT, fields: { ...fields }, at };
}

export interface MessageOutcomeFields {
  messageId: string;
  peer: string;
  digest: string;
  /** The receipt exactly as received (compact JWS); the event keeps its digest only. */
  receipt: string;
}

/** `message.delivered` or `message.rejected`, after the receipt's status. */
export function messageOutcomeEvent(fields: MessageOutcomeFields, status: 'accepted' | 'rejected', at: string): AuditEventInput {
  return {
    kind: status === 'accepted' ? AuditEvents.MESSAGE_DELIVERED : AuditEvents.MESSAGE_REJECTED,
    fields: { messageId: fields.messageId, peer: fields.peer, digest: fields.digest, receipt: receiptDigest(fields.receipt) },
    at,
  };
}

export interface MessageReceivedFields {
  messageId: string;
  /** The sender's node id. */
  peer: string;
  digest: string;
  type?: string;
  threadId?: string;
  consentId?: string;
}

export function messageReceivedEvent(fields: MessageReceivedFields, at: string): AuditEventInput {
  return { kind: AuditEvents.MESSAGE_RECEIVED, fields: { ...fields }, at };
}

export interface ConsentWithdrawnFields {
  consentId: string;
  /** The purposes withdrawn; absent (null in the record) means the whole consent. */
  purposes?: readonly string[];
  /** When the withdrawal takes effect. */
  withdrawnAt: string;
}

export function consentWithdrawnEvent(fields: ConsentWithdrawnFields, at: string): AuditEventInput {
  return {
    kind: AuditEvents.CONSENT_WITHDRAWN,
    fields: { consentId: fields.consentId, purposes: fields.purposes ? [...fields.purposes].sort() : null, withdrawnAt: fields.withdrawnAt },
    at,
  };
}

/** base64url SHA-256 of a receipt's compact serialisation: how log entries name a receipt. */
export function receiptDigest(receipt: string): string {
  return sha256b64uSync(receipt);
}
