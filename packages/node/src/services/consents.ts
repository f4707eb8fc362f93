/**
 * Consent as this node's caseworkers record it (DESIGN flow 2) and withdraw it (flow 5). The node
 * is the controller: it fills in id, version and controller and signs the record.
 */
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import {
  ConsentRecord,
  consentWithdrawnEvent,
  MessageTypes,
  peekCompactPayload,
  Purpose,
  ProtocolError,
  signConsent,
  toTimestamp,
} from '@passerelle/protocol';
import type { NodeEvents } from '../events.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import { claimsOfQueued } from '../outbox/message-claims.js';
import type { SendInput } from '../outbox/send-message.js';
import type { ConsentRecordRow, OutboxEntry, Store } from '../store/types.js';

/** What a caseworker supplies; the rest of the ConsentRecord is the node's. */
const { id: _id, version: _version, controller: _controller, ...consentFields } = ConsentRecord.shape;
export const RecordConsentInput = z
  .strictObject({ ...consentFields, explicitConsent: consentFields.explicitConsent.optional() })
  .meta({ id: 'RecordConsentInput', description: 'A consent as a caseworker records it; the node adds id, version and controller and signs it.' });
export type RecordConsentInput = z.input<typeof RecordConsentInput>;

export const WithdrawConsentInput = z.strictObject({
  purposes: z.array(Purpose).min(1).optional(),
  erasureRequested: z.boolean().default(true),
}).meta({ id: 'WithdrawConsentInput', description: 'Withdraws a consent wholly (no purposes) or for some purposes; erasure is requested from recipients unless false.' });
export type WithdrawConsentInput = z.input<typeof WithdrawConsentInput>;

export interface ConsentDeps {
  identity: NodeIdentity;
  store: Store;
  events: NodeEvents;
  send: (input: SendInput) => Promise<OutboxEntry>;
  now: () => Date;
  /** Whether a delivery attempt of this message is under way (the outbox worker's view). */
  attempting?: (messageId: string) => boolean;
}

export interface RecordedConsent {
  id: string;
  jws: string;
  record: ConsentRecord;
}

export async function recordConsent(deps: ConsentDeps, input: RecordConsentInput): Promise<RecordedConsent> {
  const now = deps.now();
  const parsed = ConsentRecord.safeParse({
    explicitConsent: [],
    ...input,
    id: uuidv7(),
    version: 1,
    controller: deps.identity.id,
  });
  if (!parsed.success) {
    throw new ProtocolError('SCHEMA_INVALID', 'The consent record does not match its schema', {
      issues: parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  const record = parsed.data;
  const signedAt = new Date(record.issuedAt ?? record.collectedAt);
  if (signedAt.getTime() > now.getTime() + 300_000) throw new ProtocolError('CLOCK_SKEW', 'A consent cannot be recorded in the future', { serverTime: toTimestamp(now) });
  // The record is verified at issuedAt (or collectedAt): sign with a key valid then, or name the signing time.
  const key = deps.identity.currentSigningKeys(signedAt)[0];
  const signable = key ? record : { ...record, issuedAt: toTimestamp(now) };
  const jws = await signConsent(signable, key ?? deps.identity.signingKey(now));
  const row: ConsentRecordRow = {
    id: signable.id,
    controller: signable.controller,
    subject: signable.subject,
    jws,
    expiresAt: signable.expiresAt,
    recordedAt: now.toISOString(),
    withdrawnPurposes: [],
  };
  await deps.store.putConsent(row);
  await deps.store.appendAudit({
    kind: 'consent.recorded',
    fields: { consentId: signable.id, purposes: signable.purposes, recipients: signable.recipients, categories: signable.categories, expiresAt: signable.expiresAt },
    at: now.toISOString(),
  });
  return { id: signable.id, jws, record: signable };
}

export interface WithdrawalResult {
  consentId: string;
  /** Queued messages under the consent that will never be sent. */
  cancelled: string[];
  /** Peers a consent-withdrawal message was queued to. */
  notified: string[];
  withdrawalMessages: string[];
}

/**
 * Peers that may hold data under the consent: delivered, or attempted (a lost answer may hide an
 * acceptance), including an attempt under way right now: cancelling its entry cannot recall a
 * request already on its way, and the peer may accept it before the withdrawal arrives.
 */
function recipientsOf(entries: readonly OutboxEntry[], cancelledNow: ReadonlySet<string>, attempting: (id: string) => boolean): Map<string, OutboxEntry> {
  const out = new Map<string, OutboxEntry>();
  for (const e of entries) {
    if (e.type === MessageTypes.CONSENT_WITHDRAWAL || e.type === MessageTypes.ERASURE_CONFIRMATION) continue;
    const mayHold = e.state === 'delivered' || e.attempts > 0 || (e.state === 'queued' && !cancelledNow.has(e.id)) || (cancelledNow.has(e.id) && attempting(e.id));
    if (mayHold) out.set(e.peer, e);
  }
  return out;
}

export async function withdrawConsent(deps: ConsentDeps, consentId: string, input: WithdrawConsentInput = {}): Promise<WithdrawalResult> {
  const options = WithdrawConsentInput.parse(input);
  const row = await deps.store.getConsent(consentId);
  if (!row) throw new ProtocolError('NOT_FOUND', 'No consent with this id');
  if (row.controller !== deps.identity.id) throw new ProtocolError('FORBIDDEN', 'Only the controller withdraws a consent; ask the organisation that recorded it');
  const now = deps.now();
  const at = now.toISOString();
  const attempting = deps.attempting ?? (() => false);
  // An attempt under way now may also end before the recipients are listed below.
  const underWay = new Set((await deps.store.listOutbox({ consentId, state: 'queued' })).filter((e) => attempting(e.id)).map((e) => e.id));
  // Message times have one-second precision and a withdrawal covers messages created at or after it
  // (consent-and-agreements.md §5 rule 10): dated to the next second, it follows every message this
  // node created before it, in the same second too (spec/node.md §4.6). Later ones are refused here.
  const withdrawnAt = toTimestamp(now.getTime() + 1000);
  // The log entry states the time the withdrawal messages announce: an auditor matches the two (spec/audit.md §5.4).
  const withdrawn = consentWithdrawnEvent({ consentId, ...(options.purposes ? { purposes: options.purposes } : {}), withdrawnAt }, at);
  const cancelled = await deps.store.withdrawConsent(consentId, options.purposes, at, {
    ...withdrawn,
    fields: { ...withdrawn.fields, erasureRequested: options.erasureRequested },
  });
  const entries = await deps.store.listOutbox({ consentId });
  const recipients = recipientsOf(entries, new Set(cancelled), (id) => underWay.has(id) || attempting(id));
  const withdrawalMessages: string[] = [];
  for (const [peer, entry] of recipients) {
    const sent = await deps.send({
      type: MessageTypes.CONSENT_WITHDRAWAL,
      to: peer,
      agreementId: claimsOfQueued(entry.jwt).header.agreementId,
      consentId,
      body: {
        consentId,
        ...(options.purposes ? { purposes: options.purposes } : {}),
        withdrawnAt,
        erasureRequested: options.erasureRequested,
      },
    });
    withdrawalMessages.push(sent.id);
  }
  const result = { consentId, cancelled, notified: [...recipients.keys()], withdrawalMessages };
  deps.events.emit('consent.withdrawn', { consentId, cancelled, notified: result.notified });
  return result;
}

export interface ConsentView {
  id: string;
  controller: string;
  /** Pseudonymous subject reference (never a name), still personal data: reads are audited. */
  subject: string;
  purposes: string[];
  recipients: string[];
  categories: string[];
  explicitConsent: string[];
  collectedAt: string;
  expiresAt: string;
  recordedAt: string;
  withdrawnAt?: string;
  withdrawnPurposes: string[];
  jws: string;
}

function consentView(row: ConsentRecordRow): ConsentView {
  const r = peekCompactPayload(row.jws) as unknown as ConsentRecord;
  return {
    id: row.id,
    controller: row.controller,
    subject: row.subject,
    purposes: r.purposes,
    recipients: r.recipients,
    categories: r.categories,
    explicitConsent: r.explicitConsent,
    collectedAt: r.collectedAt,
    expiresAt: row.expiresAt,
    recordedAt: row.recordedAt,
    ...(row.withdrawnAt ? { withdrawnAt: row.withdrawnAt } : {}),
    withdrawnPurposes: row.withdrawnPurposes,
    jws: row.jws,
  };
}

export async function listConsents(deps: ConsentDeps, reader: string): Promise<ConsentView[]> {
  const rows = await deps.store.listConsents();
  await deps.store.appendAudit({ kind: 'personal-data.read', fields: { consents: rows.map((r) => r.id), reader }, at: deps.now().toISOString() });
  return rows.map(consentView);
}

export async function readConsent(deps: ConsentDeps, id: string, reader: string): Promise<ConsentView> {
  const row = await deps.store.getConsent(id);
  if (!row) throw new ProtocolError('NOT_FOUND', 'No consent with this id');
  await deps.store.appendAudit({ kind: 'personal-data.read', fields: { consentId: id, reader }, at: deps.now().toISOString() });
  return consentView(row);
}
