/**
 * The acceptance path for one sealed message from an authenticated peer (spec/node.md §2.3),
 * shared by POST /inbox and offline transfer import: open (decrypt, verify, inner signer = the
 * authenticated peer, audience = us) → duplicate check → expiry → consent and agreement enforced
 * independently → rights effects (withdrawal) → stored exactly once with a signed receipt.
 * Any failure throws a MessageRejected and nothing is stored.
 */
import {
  joinSdJwt,
  messageReceivedEvent,
  MessageTypes,
  open,
  ProtocolError,
  signReceipt,
  toTimestamp,
  type ErrorCode,
  type Opened,
  type SenderKeyResolver,
  type VerifiedConsent,
} from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { NodeEvents } from '../events.js';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { NodeMetrics } from '../observability/node-metrics.js';
import type { PolicyContext } from '../policy/policy-context.js';
import type { InboxEntry, Store } from '../store/types.js';
import { applyWithdrawal, ensureErasureConfirmation, type WithdrawalEffects } from './inbound-withdrawal.js';
import { crashPoint } from '../fault-injection.js';
import { signReceiptNow } from '../identity/receipt-signing.js';

export interface AcceptDeps {
  identity: NodeIdentity;
  store: Store;
  policy: PolicyContext;
  resolveSenderKey: SenderKeyResolver;
  events: NodeEvents;
  metrics: NodeMetrics;
  logger: Logger;
  withdrawals: WithdrawalEffects;
  maxSkewSeconds: number;
  now: () => Date;
  /** Called after an accepted message is committed (webhooks). */
  onAccepted?: (entry: InboxEntry) => void;
  /** devMode fault injection: pause between commit and answer. */
  delayAfterCommitMs?: number;
  /** This node's latest signed audit checkpoint, carried in every accepting receipt (spec/audit.md §3.2). */
  auditCheckpoint?: () => string | undefined;
}

export interface Accepted {
  status: 'stored' | 'duplicate';
  receipt: string;
  entry: InboxEntry;
}

/** A refusal, with a signed rejection receipt when the message id is known. */
export class MessageRejected extends ProtocolError {
  readonly receipt: string | undefined;
  constructor(error: ProtocolError, receipt?: string) {
    super(error.code, error.message, error.details ? { ...error.details } : undefined, { cause: error });
    this.receipt = receipt;
  }
}

function asProtocolError(e: unknown): ProtocolError {
  return e instanceof ProtocolError ? e : new ProtocolError('INTERNAL', undefined, undefined, { cause: e });
}

/** Failures of our own side: the sender should retry the same bytes, so no rejection receipt is signed. */
const OUR_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['STORE_UNAVAILABLE', 'INTERNAL', 'PEER_UNREACHABLE', 'PEER_RESPONSE_INVALID', 'KEY_UNKNOWN']);

export async function acceptInbound(deps: AcceptDeps, jwe: string, sender: string, digest: string): Promise<Accepted> {
  const now = deps.now();
  let opened: Opened;
  try {
    // Expiry is checked below, after the duplicate check: a redelivery of a message accepted
    // before it expired must still get its original receipt.
    opened = await open(jwe, {
      self: deps.identity.id,
      expectedSender: sender,
      decryptionKey: (kid) => deps.identity.decryptionKey(kid),
      resolveSenderKey: deps.resolveSenderKey,
      now,
      maxSkewSeconds: deps.maxSkewSeconds,
      ignoreExpiry: true,
    });
  } catch (e) {
    throw reject(deps, asProtocolError(e), sender);
  }
  const { header } = opened;
  const existing = await deps.store.getInbox(header.id);
  if (existing) return answerExisting(deps, existing, digest, sender, opened);

  const rejectWithReceipt = async (error: ProtocolError): Promise<never> => {
    if (OUR_FAILURES.has(error.code)) throw reject(deps, error, sender, header.id);
    const receipt = await signReceipt(
      { receiver: deps.identity.id, sender, messageId: header.id, digest, status: 'rejected', code: error.code, at: now },
      deps.identity.signingKey(now),
    );
    throw reject(deps, error, sender, header.id, receipt);
  };

  if (Date.parse(header.expires) <= now.getTime()) return rejectWithReceipt(new ProtocolError('EXPIRED'));
  let consent: VerifiedConsent | undefined;
  try {
    ({ consent } = await deps.policy.enforce({ header, original: opened.original }, opened.consentRecord, now));
    // A verified withdrawal takes effect before the message is stored; its effects are idempotent,
    // so a redelivery after a failed store repeats them harmlessly.
    if (header.type === MessageTypes.CONSENT_WITHDRAWAL) {
      if (consent) await rememberConsent(deps.store, consent.jws, consent.record, now);
      await applyWithdrawal(deps.withdrawals, opened, now);
    }
  } catch (e) {
    return rejectWithReceipt(asProtocolError(e));
  }

  const receivedAt = now.toISOString();
  let result;
  try {
    result = await deps.store.acceptInbound(
      {
        id: header.id,
        sender,
        type: header.type,
        threadId: header.threadId,
        ...(header.consentId !== undefined ? { consentId: header.consentId } : {}),
        digest,
        jwe,
        sdJwt: joinSdJwt(opened.jwt, opened.disclosures),
        jwt: opened.jwt,
        categories: header.categories,
        receivedAt,
      },
      // The receipt names this entry (spec/audit.md §3.2); its fields are what an auditor checks.
      withFields(
        messageReceivedEvent(
          { messageId: header.id, peer: sender, digest, type: header.type, threadId: header.threadId, ...(header.consentId !== undefined ? { consentId: header.consentId } : {}) },
          receivedAt,
        ),
        { agreementId: header.agreementId, categories: header.categories },
      ),
      // Signed synchronously: the store holds its write transaction until the receipt exists (receipt-signing.ts).
      async (index) => {
        const checkpoint = deps.auditCheckpoint?.();
        const receipt = signReceiptNow(
          { receiver: deps.identity.id, sender, messageId: header.id, digest, status: 'accepted', log: { index, ...(checkpoint ? { checkpoint } : {}) }, at: now },
          deps.identity.signingKey(now),
        );
        crashPoint('inbox.receipt-signed');
        return receipt;
      },
    );
  } catch (e) {
    throw reject(deps, asProtocolError(e), sender, header.id);
  }
  if (result.status === 'conflict') return rejectWithReceipt(new ProtocolError('DUPLICATE_CONFLICT'));
  if (result.status === 'stored') crashPoint('inbox.stored');
  if (consent) await rememberConsent(deps.store, consent.jws, consent.record, now);
  if (header.type === MessageTypes.CONSENT_WITHDRAWAL) await ensureErasureConfirmation(deps.withdrawals, opened);
  return finish(deps, result.entry, result.status);
}

async function answerExisting(deps: AcceptDeps, existing: InboxEntry, digest: string, sender: string, opened: Opened): Promise<Accepted> {
  if (existing.digest !== digest || existing.sender !== sender) {
    const now = deps.now();
    const receipt = await signReceipt(
      { receiver: deps.identity.id, sender, messageId: existing.id, digest, status: 'rejected', code: 'DUPLICATE_CONFLICT', at: now },
      deps.identity.signingKey(now),
    );
    throw reject(deps, new ProtocolError('DUPLICATE_CONFLICT'), sender, existing.id, receipt);
  }
  // A crash between commit and queueing the confirmation is repaired by the sender's redelivery.
  if (existing.type === MessageTypes.CONSENT_WITHDRAWAL) await ensureErasureConfirmation(deps.withdrawals, opened);
  return finish(deps, existing, 'duplicate');
}

async function finish(deps: AcceptDeps, entry: InboxEntry, status: 'stored' | 'duplicate'): Promise<Accepted> {
  deps.metrics.inbox.inc({ result: status === 'stored' ? 'accepted' : 'duplicate', code: '' });
  deps.logger.info({ messageId: entry.id, sender: entry.sender, type: entry.type, duplicate: status === 'duplicate' }, 'inbound message accepted');
  deps.events.emit('inbox.accepted', { messageId: entry.id, sender: entry.sender, type: entry.type, threadId: entry.threadId, duplicate: status === 'duplicate' });
  if (status === 'stored') deps.onAccepted?.(entry);
  if (deps.delayAfterCommitMs) await new Promise((r) => setTimeout(r, deps.delayAfterCommitMs));
  return { status, receipt: entry.receipt, entry };
}

function reject(deps: AcceptDeps, error: ProtocolError, sender: string, messageId?: string, receipt?: string): MessageRejected {
  deps.metrics.inbox.inc({ result: 'rejected', code: error.code });
  deps.logger.warn({ sender, messageId, code: error.code }, 'inbound message refused');
  deps.events.emit('inbox.rejected', { sender, ...(messageId ? { messageId } : {}), code: error.code });
  return new MessageRejected(error, receipt);
}

function withFields<E extends { fields: Record<string, unknown> }>(event: E, extra: Record<string, string | string[]>): E {
  return { ...event, fields: { ...event.fields, ...extra } };
}

/** Keeps the controller's consent record, so that its later withdrawal can be recorded against it. */
async function rememberConsent(store: Store, jws: string, record: { id: string; controller: string; subject: string; expiresAt: string }, now: Date): Promise<void> {
  const row = await store.getConsent(record.id);
  if (row) return;
  await store.putConsent({
    id: record.id,
    controller: record.controller,
    subject: record.subject,
    jws,
    expiresAt: record.expiresAt,
    recordedAt: toTimestamp(now),
    withdrawnPurposes: [],
  });
}
