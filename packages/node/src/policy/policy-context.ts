/**
 * Builds the facts and context for consent and agreement enforcement (spec/consent-and-agreements.md
 * §5) from what this node holds: registered agreements and their terminations, consent records
 * and the withdrawals learnt. Used by the sender before sealing, by the outbox before every
 * attempt, and by the inbox on acceptance, so that all three decide alike.
 */
import {
  agreementStatus,
  checkFlow,
  ProtocolError,
  verifyAgreement,
  verifyConsent,
  verifyTermination,
  type AgreementContext,
  type FlowContext,
  type FlowFacts,
  type MessageHeader,
  type NodeKeyResolver,
  type VerifiedAgreement,
  type VerifiedConsent,
  type Withdrawal,
} from '@passerelle/protocol';
import type { ConsentRecordRow, Store } from '../store/types.js';
import { VerificationMemo } from './verification-memo.js';

export interface MessageFacts {
  header: MessageHeader;
  /** For onward messages: the original message's header. */
  original?: { header: MessageHeader } | undefined;
}

export class PolicyContext {
  readonly #store: Store;
  readonly #resolve: NodeKeyResolver;
  readonly #memo = new VerificationMemo();

  constructor(store: Store, resolve: NodeKeyResolver) {
    this.#store = store;
    this.#resolve = resolve;
  }

  /** A registered agreement, verified now with its verified terminations; undefined when unknown. */
  async agreement(id: string, now: Date): Promise<VerifiedAgreement | undefined> {
    const row = await this.#store.getAgreement(id);
    if (!row) return undefined;
    // Signatures are checked once per text and keys (verification-memo.ts); the status at `now` every time.
    const signed = await this.#memo.get('agreement', row.jws, this.#resolve, async (resolve) => {
      const { agreement, signedBy, jws } = await verifyAgreement(JSON.parse(row.jws) as unknown, resolve, { now });
      return { agreement, signedBy, jws };
    });
    const terminations = [];
    for (const t of row.terminations) {
      terminations.push((await this.#memo.get(`termination\n${row.jws}`, t, this.#resolve, (resolve) => verifyTermination(t, signed, resolve))).termination);
    }
    return { ...signed, ...agreementStatus(signed, terminations, now) };
  }

  async verifyConsent(jws: string): Promise<VerifiedConsent> {
    return this.#memo.get('consent', jws, this.#resolve, (resolve) => verifyConsent(jws, resolve));
  }

  async withdrawals(consentId: string | undefined): Promise<Withdrawal[]> {
    if (!consentId) return [];
    const row = await this.#store.getConsent(consentId);
    return row ? withdrawalsOf(row) : [];
  }

  /** Throws the first failing rule as a ProtocolError; returns when the flow is allowed. */
  async enforce(message: MessageFacts, consentJws: string | undefined, now: Date): Promise<{ consent?: VerifiedConsent }> {
    const { header } = message;
    const agreement = await this.agreement(header.agreementId, now);
    const facts: FlowFacts = {
      sender: header.from,
      recipient: header.to,
      messageType: header.type,
      purpose: header.purpose,
      categories: header.categories,
      createdAt: header.created,
      agreementId: header.agreementId,
      ...(header.consentId ? { consentId: header.consentId } : {}),
      ...(message.original
        ? { onward: { originalController: message.original.header.from, agreementId: message.original.header.agreementId } }
        : {}),
    };
    let originAgreement: AgreementContext | undefined;
    if (message.original && message.original.header.agreementId !== header.agreementId) {
      originAgreement = await this.agreement(message.original.header.agreementId, now);
    }
    let consent: VerifiedConsent | undefined;
    if (consentJws !== undefined) {
      consent = await this.verifyConsent(consentJws);
      if (header.consentId !== undefined && consent.record.id !== header.consentId) {
        throw new ProtocolError('CONSENT_MISSING', 'The consent record carried is not the one the message names');
      }
    }
    const context: FlowContext = {
      agreement,
      originAgreement,
      consent,
      withdrawals: await this.withdrawals(header.consentId ?? consent?.record.id),
      now,
    };
    checkFlow(facts, context);
    return consent ? { consent } : {};
  }
}

export function withdrawalsOf(row: ConsentRecordRow): Withdrawal[] {
  const out: Withdrawal[] = [];
  if (row.withdrawnAt) out.push({ consentId: row.id, at: row.withdrawnAt });
  // Partial withdrawals keep no date of their own: the record date bounds them from below.
  if (row.withdrawnPurposes.length > 0) out.push({ consentId: row.id, purposes: row.withdrawnPurposes as Withdrawal['purposes'], at: row.recordedAt });
  return out;
}
