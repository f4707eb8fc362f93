/**
 * The one consent and agreement check (spec/consent-and-agreements.md §5), run by the sender before
 * sealing and again, independently, by the recipient on acceptance. It takes plain facts about the
 * message and already-verified objects, so that it knows nothing of envelopes, transport or storage.
 */
import { z } from 'zod';
import { Agreement, AgreementTermination, agreementStatus, type SignedAgreement } from './agreement.js';
import { ConsentRecord, Withdrawal } from './consent.js';
import { ProtocolError, type ErrorCode } from './errors.js';
import { MessageTypes } from './messages/message-types.js';
import { MessageTypeId } from './node-document.js';
import { DataCategory, isSpecialCategory, NodeId, Purpose, Timestamp, Uuid } from './vocabulary.js';

/** Message types about a person's case by their very nature: consent is needed even when no category is carried (§5.2). */
export const MESSAGE_TYPES_REQUIRING_CONSENT: ReadonlySet<string> = new Set<string>([
  MessageTypes.REFERRAL,
  MessageTypes.REINTEGRATION_PROFILE,
  MessageTypes.REINTEGRATION_UPDATE,
]);

/**
 * Data-subject-rights messages (§5.3): they end processing, so they pass between the parties of a
 * known agreement even when it is no longer in force or lists no flow for them, and need no consent.
 */
export const RIGHTS_MESSAGE_TYPES: ReadonlySet<string> = new Set<string>([MessageTypes.CONSENT_WITHDRAWAL, MessageTypes.ERASURE_CONFIRMATION]);

export const FlowFacts = z
  .strictObject({
    sender: NodeId,
    recipient: NodeId,
    messageType: MessageTypeId,
    purpose: Purpose,
    categories: z.array(DataCategory).max(32),
    createdAt: Timestamp,
    consentId: Uuid.optional(),
    agreementId: Uuid,
    /** Present when the sender passes on data it received from another controller (§5.4). */
    onward: z
      .strictObject({
        originalController: NodeId,
        /** The agreement under which the sender received the data; absent means `agreementId`. */
        agreementId: Uuid.optional(),
      })
      .optional(),
  })
  .meta({
    id: 'FlowFacts',
    description: 'The facts about one message that consent and agreement enforcement decides on (sender, recipient, type, purpose, categories, dates, ids).',
  });
export type FlowFacts = z.infer<typeof FlowFacts>;

/** A verified agreement (or an already-checked payload) with the terminations known for it. */
export interface AgreementContext extends SignedAgreement {
  terminations?: readonly AgreementTermination[];
}

export interface FlowContext {
  /** The agreement the message names, verified. */
  agreement?: AgreementContext | undefined;
  /** For an onward message received under another agreement: that agreement, verified. */
  originAgreement?: AgreementContext | undefined;
  /** The consent record the message carries, verified (a VerifiedConsent fits). */
  consent?: { record: ConsentRecord } | undefined;
  withdrawals: readonly Withdrawal[];
  now: Timestamp | Date;
}

export type FlowDecision =
  | { allowed: true }
  | { allowed: false; code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> | undefined };

function ms(at: Timestamp | Date): number {
  return at instanceof Date ? at.getTime() : Date.parse(at);
}

function deny(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new ProtocolError(code, message, details);
}

function inForceAtBoth(ctx: AgreementContext, created: number, now: number): { ok: true } | { ok: false; at: 'createdAt' | 'now'; state: string } {
  for (const [at, t] of [['createdAt', created], ['now', now]] as const) {
    const status = agreementStatus(ctx, ctx.terminations ?? [], new Date(t));
    if (!status.inForce) return { ok: false, at, state: status.state };
  }
  return { ok: true };
}

function isParty(agreement: Agreement, node: string): boolean {
  return agreement.parties.some((p) => p.node === node);
}

/** Step 4: one flow must cover direction, type, purpose and every category at once. */
function checkAgreementFlow(f: FlowFacts, agreement: Agreement): void {
  const direction = agreement.flows.filter((fl) => fl.from === f.sender && fl.to === f.recipient);
  if (direction.length === 0) deny('AGREEMENT_FLOW_NOT_ALLOWED', 'The agreement has no flow from the sender to the recipient', { reason: 'direction' });
  const typed = direction.filter((fl) => fl.messageTypes.includes(f.messageType));
  if (typed.length === 0) deny('AGREEMENT_FLOW_NOT_ALLOWED', 'The agreement does not allow this message type in this direction', { reason: 'message-type' });
  const purposed = typed.filter((fl) => (fl.purposes ?? agreement.purposes).includes(f.purpose));
  if (purposed.length === 0) deny('AGREEMENT_FLOW_NOT_ALLOWED', 'The agreement does not allow this purpose for this flow', { reason: 'purpose' });
  if (!purposed.some((fl) => f.categories.every((c) => fl.categories.includes(c)))) {
    const allowed = new Set(purposed.flatMap((fl) => fl.categories));
    deny('AGREEMENT_FLOW_NOT_ALLOWED', 'The agreement does not allow every category carried in this flow', {
      reason: 'categories',
      categories: f.categories.filter((c) => !allowed.has(c)),
    });
  }
}

function needsConsent(f: FlowFacts): boolean {
  return f.categories.length > 0 || MESSAGE_TYPES_REQUIRING_CONSENT.has(f.messageType) || f.onward !== undefined;
}

/**
 * Throws the first failing rule as a ProtocolError, in the order of §5.1; returns when the flow is
 * allowed. Facts that do not match their schema are SCHEMA_INVALID.
 */
export function checkFlow(facts: FlowFacts, context: FlowContext): void {
  const parsed = FlowFacts.safeParse(facts);
  if (!parsed.success) {
    deny('SCHEMA_INVALID', 'The flow facts do not match their schema', {
      issues: parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  const f = parsed.data;
  const created = ms(f.createdAt);
  const now = ms(context.now);

  // 1. The named agreement.
  const ag = context.agreement;
  if (!ag || ag.agreement.id !== f.agreementId) deny('AGREEMENT_MISSING', 'The agreement the message names is not known', { agreementId: f.agreementId });
  const agreement = ag.agreement;

  // 2. Rights messages (§5.3).
  if (RIGHTS_MESSAGE_TYPES.has(f.messageType)) {
    if (f.sender === f.recipient || !isParty(agreement, f.sender) || !isParty(agreement, f.recipient)) {
      deny('AGREEMENT_FLOW_NOT_ALLOWED', 'Sender and recipient must be two parties of the agreement', { reason: 'direction' });
    }
    if (f.categories.length > 0) deny('AGREEMENT_FLOW_NOT_ALLOWED', 'A rights message carries no personal data categories', { reason: 'categories' });
    return;
  }

  // 3. In force when the message was created and still now.
  const force = inForceAtBoth(ag, created, now);
  if (!force.ok) deny('AGREEMENT_NOT_IN_FORCE', 'The agreement is not in force', { at: force.at, state: force.state });

  // 4. A flow allowing it.
  checkAgreementFlow(f, agreement);

  // 5. Messages carrying no personal data need no consent (§5.2).
  if (!needsConsent(f)) return;

  // 6. The consent the message names.
  const record = context.consent?.record;
  if (f.consentId === undefined || !record || record.id !== f.consentId) {
    deny('CONSENT_MISSING', 'The message needs the consent record it names', f.consentId ? { consentId: f.consentId } : undefined);
  }

  // 7. Signed by the organisation that holds the case: the sender, the original controller of
  // onward data, or the recipient when a partner reports back to the controller (§5.5).
  const reportingBack = !f.onward && record.controller === f.recipient;
  const controller = f.onward ? f.onward.originalController : reportingBack ? f.recipient : f.sender;
  if (record.controller !== controller) {
    deny('CONSENT_SIGNER_INVALID', f.onward ? 'The consent is not signed by the original controller' : 'The consent is not signed by the sender');
  }

  // 8-9. Valid at creation and still now.
  if (ms(record.collectedAt) > created || ms(record.collectedAt) > now) deny('CONSENT_NOT_YET_VALID', 'The consent was collected after the message was created');
  const expires = ms(record.expiresAt);
  if (expires <= created || expires <= now) deny('CONSENT_EXPIRED', 'The consent has expired', { expiresAt: record.expiresAt });

  // 10. Withdrawn, wholly or for this purpose.
  const withdrawn = context.withdrawals.find(
    (w) => w.consentId === record.id && ms(w.at) <= now && (w.purposes === undefined || w.purposes.includes(f.purpose)),
  );
  if (withdrawn) deny('CONSENT_WITHDRAWN', 'The consent has been withdrawn', { at: withdrawn.at, ...(withdrawn.purposes ? { purpose: f.purpose } : {}) });

  // 11. The organisation the controller discloses to: for an onward message or a report back to
  // the controller, that is the sender (§5.4, §5.5).
  const directRecipient = f.onward || reportingBack ? f.sender : f.recipient;
  if (!record.recipients.includes(directRecipient)) deny('CONSENT_RECIPIENT_NOT_COVERED', 'The consent does not name the recipient', { recipient: directRecipient });

  // 12-14. Purpose, categories, explicit consent for special categories.
  if (!record.purposes.includes(f.purpose)) deny('CONSENT_PURPOSE_NOT_COVERED', 'The consent does not cover this purpose', { purpose: f.purpose });
  const uncovered = f.categories.filter((c) => !record.categories.includes(c));
  if (uncovered.length > 0) deny('CONSENT_CATEGORY_NOT_COVERED', 'The consent does not cover every category carried', { categories: uncovered });
  const notExplicit = f.categories.filter((c) => isSpecialCategory(c) && !record.explicitConsent.includes(c));
  if (notExplicit.length > 0) {
    deny('CONSENT_SPECIAL_CATEGORY_NOT_EXPLICIT', 'A special category is carried without explicit consent', { categories: notExplicit });
  }

  // 15. Children: a guardian and a best-interests determination made before the message.
  const minor = record.minor;
  if (minor?.isMinor) {
    if (!minor.guardian) deny('CONSENT_MINOR_WITHOUT_GUARDIAN', 'The consent of a minor names no guardian', { missing: 'guardian' });
    if (!minor.bestInterests) deny('CONSENT_MINOR_WITHOUT_GUARDIAN', 'The consent of a minor has no best-interests determination', { missing: 'best-interests' });
    if (ms(minor.bestInterests.determinedAt) > created) {
      deny('CONSENT_MINOR_WITHOUT_GUARDIAN', 'The best-interests determination postdates the message', { missing: 'best-interests' });
    }
  }

  // 16-17. Onward referral.
  if (f.onward) checkOnward(f, f.onward, record, context, created, now);
}

function checkOnward(
  f: FlowFacts,
  onward: NonNullable<FlowFacts['onward']>,
  record: ConsentRecord,
  context: FlowContext,
  created: number,
  now: number,
): void {
  if (onward.originalController === f.sender) deny('PROVENANCE_INVALID', 'The original controller of an onward message cannot be its sender');
  const originId = onward.agreementId ?? f.agreementId;
  const origin = [context.agreement, context.originAgreement].find((c) => c?.agreement.id === originId);
  if (!origin) deny('ONWARD_NOT_ALLOWED', 'The agreement under which the data was received is not known', { reason: 'origin-agreement-missing', agreementId: originId });
  const { agreement } = origin;
  const received = agreement.flows.some((fl) => fl.from === onward.originalController && fl.to === f.sender);
  if (!received) deny('PROVENANCE_INVALID', 'The origin agreement has no flow from the original controller to the sender');
  const force = inForceAtBoth(origin, created, now);
  if (!force.ok) deny('ONWARD_NOT_ALLOWED', 'The agreement under which the data was received is not in force', { reason: 'origin-agreement-not-in-force', at: force.at });
  if (!agreement.onwardReferral.allowed) deny('ONWARD_NOT_ALLOWED', 'The agreement does not allow onward referral', { reason: 'agreement' });
  if (agreement.onwardReferral.to && !agreement.onwardReferral.to.includes(f.recipient)) {
    deny('ONWARD_NOT_ALLOWED', 'The agreement does not allow onward referral to this organisation', { reason: 'agreement' });
  }
  if (!record.recipients.includes(f.recipient)) deny('ONWARD_NOT_ALLOWED', 'The consent does not name this organisation', { reason: 'consent' });
}

/** checkFlow as a value: the decision, with the code of the first failing rule. */
export function evaluateFlow(facts: FlowFacts, context: FlowContext): FlowDecision {
  try {
    checkFlow(facts, context);
    return { allowed: true };
  } catch (e) {
    if (e instanceof ProtocolError) return { allowed: false, code: e.code, message: e.message, details: e.details };
    throw e;
  }
}

/** Plain payloads, as in spec/vectors/decisions.json or an audit bundle whose signatures were checked elsewhere. */
export interface FlowPayloads {
  agreement?: unknown;
  agreementSignedBy?: readonly unknown[];
  terminations?: readonly unknown[];
  originAgreement?: { agreement: unknown; signedBy: readonly unknown[]; terminations?: readonly unknown[] };
  consent?: unknown;
  withdrawals?: readonly unknown[];
  now: unknown;
}

function schemaDetails(error: z.ZodError): Record<string, unknown> {
  return { issues: error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })) };
}

function agreementContextFrom(payload: unknown, signedBy: readonly unknown[] | undefined, terminations: readonly unknown[] | undefined): AgreementContext {
  const a = Agreement.safeParse(payload);
  if (!a.success) deny('AGREEMENT_INVALID', 'The agreement does not match its schema', schemaDetails(a.error));
  const signers = z.array(NodeId).safeParse(signedBy ?? []);
  if (!signers.success || signers.data.some((n) => !isParty(a.data, n))) deny('AGREEMENT_INVALID', 'A signer is not a party to the agreement');
  const t = z.array(AgreementTermination).safeParse(terminations ?? []);
  if (!t.success) deny('AGREEMENT_INVALID', 'A termination does not match its schema', schemaDetails(t.error));
  return { agreement: a.data, signedBy: signers.data, terminations: t.data };
}

/**
 * Builds a FlowContext from plain payloads WITHOUT verifying any signature: `agreementSignedBy`
 * is taken as given. For decision vectors, and for auditors who verified the JWS beforehand.
 */
export function contextFromPayloads(input: FlowPayloads): FlowContext {
  const now = Timestamp.safeParse(input.now);
  if (!now.success) deny('SCHEMA_INVALID', 'now must be a timestamp', schemaDetails(now.error));
  const agreement = input.agreement === undefined ? undefined : agreementContextFrom(input.agreement, input.agreementSignedBy, input.terminations);
  const origin = input.originAgreement;
  const originAgreement = origin === undefined ? undefined : agreementContextFrom(origin.agreement, origin.signedBy, origin.terminations);
  let consent: { record: ConsentRecord } | undefined;
  if (input.consent !== undefined) {
    const c = ConsentRecord.safeParse(input.consent);
    if (!c.success) deny('CONSENT_INVALID', 'The consent record does not match its schema', schemaDetails(c.error));
    consent = { record: c.data };
  }
  const withdrawals = z.array(Withdrawal).safeParse(input.withdrawals ?? []);
  if (!withdrawals.success) deny('SCHEMA_INVALID', 'A withdrawal does not match its schema', schemaDetails(withdrawals.error));
  return { agreement, originAgreement, consent, withdrawals: withdrawals.data, now: now.data };
}
