/**
 * Data-sharing agreements (spec/consent-and-agreements.md §2): the memorandum of understanding the
 * organisations sign, co-signed by every party as a JWS in General JSON Serialisation, and its
 * termination by any one party.
 */
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { ProtocolError, type ErrorCode } from './errors.js';
import { parseCompactJws } from './jose-policy.js';
import { addSignatures, peekCompactPayload, peekGeneralPayload, signCompact, signGeneral, verifyCompact, verifyGeneral, type GeneralJws, type KeyResolver } from './jws.js';
import type { PublicSigningJwk, SigningKeyPair } from './keys.js';
import { MessageTypeId } from './node-document.js';
import { DataCategory, NodeId, NodeRole, Purpose, Timestamp, toTimestamp, Uuid } from './vocabulary.js';

export const AGREEMENT_TYP = 'passerelle-agreement+json';
export const AGREEMENT_TERMINATION_TYP = 'passerelle-agreement-termination+jwt';

/**
 * Answers "which signing key with this kid did node N hold at time T" (the node-document module
 * answers it from validity windows and revocations); undefined when there is none. Same shape as
 * the envelope's SenderKeyResolver, so one resolver serves messages, consents and agreements.
 */
export type NodeKeyResolver = (
  nodeId: string,
  kid: string,
  at: Date,
) => PublicSigningJwk | undefined | Promise<PublicSigningJwk | undefined>;

/** A list without repeated members: order carries no meaning, a duplicate is always a mistake. */
function uniqueList<T extends z.ZodType>(item: T, max: number) {
  return z
    .array(item)
    .max(max)
    .refine((list) => new Set(list).size === list.length, { message: 'must not contain duplicates' });
}

const Text = (max: number) => z.string().trim().min(1).max(max);

// GDPR art. 6(1). The basis is recorded for audit; Passerelle asks for consent whatever it is (§5.1).
export const LEGAL_BASES = ['consent', 'contract', 'legal-obligation', 'vital-interests', 'public-task', 'legitimate-interests'] as const;

export const AgreementParty = z
  .strictObject({ node: NodeId, role: NodeRole, name: Text(200) })
  .meta({ id: 'AgreementParty', description: 'An organisation party to an agreement, by node id.' });
export type AgreementParty = z.infer<typeof AgreementParty>;

export const AgreementFlow = z
  .strictObject({
    from: NodeId,
    to: NodeId,
    messageTypes: uniqueList(MessageTypeId, 32).min(1),
    categories: uniqueList(DataCategory, 32),
    /** Narrows the agreement's purposes for this flow; absent means all of them. */
    purposes: uniqueList(Purpose, 16).min(1).optional(),
  })
  .meta({
    id: 'AgreementFlow',
    description: 'One direction of exchange: which message types may carry which data categories for which purposes.',
  });
export type AgreementFlow = z.infer<typeof AgreementFlow>;

export const AgreementRetention = z
  .strictObject({ category: DataCategory, days: z.int().min(1).max(36_525) })
  .meta({ id: 'AgreementRetention', description: 'How long a recipient may keep data of one category.' });
export type AgreementRetention = z.infer<typeof AgreementRetention>;

export const AgreementLegalBasis = z
  .strictObject({ basis: z.enum(LEGAL_BASES), reference: Text(1000) })
  .meta({ id: 'AgreementLegalBasis', description: 'The lawful basis relied on, with a free-text reference (law, article, decision).' });
export type AgreementLegalBasis = z.infer<typeof AgreementLegalBasis>;

export const Agreement = z
  .strictObject({
    id: Uuid,
    version: z.int().min(1),
    title: Text(200),
    parties: z.array(AgreementParty).min(2).max(16),
    purposes: uniqueList(Purpose, 16).min(1),
    flows: z.array(AgreementFlow).min(1).max(64),
    onwardReferral: z.strictObject({ allowed: z.boolean(), to: uniqueList(NodeId, 64).min(1).optional() }),
    retention: z.array(AgreementRetention).max(32),
    legalBasis: AgreementLegalBasis,
    validFrom: Timestamp,
    validUntil: Timestamp,
    createdAt: Timestamp,
  })
  .superRefine((a, ctx) => {
    const issue = (message: string, path: (string | number)[]) => ctx.addIssue({ code: 'custom', message, path });
    const nodes = new Set(a.parties.map((p) => p.node));
    if (nodes.size !== a.parties.length) issue('a node appears twice among the parties', ['parties']);
    if (Date.parse(a.validUntil) <= Date.parse(a.validFrom)) issue('validUntil must be after validFrom', ['validUntil']);
    const purposes = new Set(a.purposes);
    const retained = new Set(a.retention.map((r) => r.category));
    if (retained.size !== a.retention.length) issue('a category has two retention periods', ['retention']);
    a.flows.forEach((flow, i) => {
      if (!nodes.has(flow.from)) issue('flow source is not a party', ['flows', i, 'from']);
      if (!nodes.has(flow.to)) issue('flow destination is not a party', ['flows', i, 'to']);
      if (flow.from === flow.to) issue('a flow must go from one party to another', ['flows', i, 'to']);
      for (const p of flow.purposes ?? []) if (!purposes.has(p)) issue(`purpose ${p} is not a purpose of the agreement`, ['flows', i, 'purposes']);
      // Storage limitation (GDPR art. 5(1)(e)): nothing may be shared without a retention period.
      for (const c of flow.categories) if (!retained.has(c)) issue(`no retention period for category ${c}`, ['retention']);
    });
    if (!a.onwardReferral.allowed && a.onwardReferral.to) issue('onward recipients listed while onward referral is not allowed', ['onwardReferral', 'to']);
  })
  .meta({
    id: 'Agreement',
    description:
      'Data-sharing agreement (memorandum of understanding) between organisations: parties, purposes, allowed flows, retention, legal basis and validity. Signed by every party (JWS General JSON, typ passerelle-agreement+json).',
  });
export type Agreement = z.infer<typeof Agreement>;

export const AgreementTermination = z
  .strictObject({ agreementId: Uuid, by: NodeId, at: Timestamp, reason: Text(1000) })
  .meta({
    id: 'AgreementTermination',
    description: 'Termination of an agreement by one of its parties, effective from `at` (compact JWS, typ passerelle-agreement-termination+jwt).',
  });
export type AgreementTermination = z.infer<typeof AgreementTermination>;

export type AgreementInput = Omit<Agreement, 'id' | 'version' | 'createdAt'> & {
  id?: string;
  version?: number;
  createdAt?: Timestamp | Date;
};

/** Zod issues reduced to what is safe and useful in ProtocolError details. */
function issueDetails(error: z.ZodError): { issues: { path: string; message: string }[] } {
  return { issues: error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })) };
}

/** Builds the unsigned agreement payload; id (UUID v7), version 1 and createdAt (now) unless given. */
export function createAgreement(input: AgreementInput): Agreement {
  const { createdAt, ...rest } = input;
  const candidate = {
    ...rest,
    id: input.id ?? uuidv7(),
    version: input.version ?? 1,
    createdAt: createdAt instanceof Date || createdAt === undefined ? toTimestamp(createdAt ?? Date.now()) : createdAt,
  };
  const parsed = Agreement.safeParse(candidate);
  if (!parsed.success) throw new ProtocolError('SCHEMA_INVALID', 'The agreement does not match its schema', issueDetails(parsed.error));
  return parsed.data;
}

function isGeneralJws(value: unknown): value is GeneralJws {
  return !!value && typeof value === 'object' && typeof (value as GeneralJws).payload === 'string' && Array.isArray((value as GeneralJws).signatures);
}

function parseAgreementPayload(payload: unknown): Agreement {
  const parsed = Agreement.safeParse(payload);
  if (!parsed.success) throw new ProtocolError('AGREEMENT_INVALID', 'The agreement does not match its schema', issueDetails(parsed.error));
  return parsed.data;
}

function kidsOf(jws: GeneralJws): string[] {
  return jws.signatures.map((s) => parseCompactJws(`${s.protected}.${jws.payload}.${s.signature}`, AGREEMENT_TYP).header.kid);
}

/**
 * Adds the signature of one party. Takes the unsigned payload (first signer) or the JWS signed so
 * far (co-signers), so that every party signs the very same payload bytes. Signing twice with the
 * same key returns the JWS unchanged.
 */
export async function signAgreement(payloadOrJws: Agreement | GeneralJws, partyNodeId: NodeId, key: SigningKeyPair): Promise<GeneralJws> {
  if (isGeneralJws(payloadOrJws)) {
    const agreement = parseAgreementPayload(peekGeneralPayload(payloadOrJws));
    ensureParty(agreement, partyNodeId);
    if (kidsOf(payloadOrJws).includes(key.kid)) return payloadOrJws;
    return addSignatures(payloadOrJws, [key], AGREEMENT_TYP);
  }
  const parsed = Agreement.safeParse(payloadOrJws);
  if (!parsed.success) throw new ProtocolError('SCHEMA_INVALID', 'The agreement does not match its schema', issueDetails(parsed.error));
  ensureParty(parsed.data, partyNodeId);
  return signGeneral(parsed.data, [key], AGREEMENT_TYP);
}

function ensureParty(agreement: Agreement, node: string): void {
  if (!agreement.parties.some((p) => p.node === node)) {
    throw new ProtocolError('AGREEMENT_INVALID', 'The signer is not a party to the agreement', { node });
  }
}

export type AgreementState = 'in-force' | 'awaiting-signatures' | 'not-yet-valid' | 'expired' | 'terminated';

export interface AgreementStatus {
  inForce: boolean;
  state: AgreementState;
  /** Set when not in force: the code a flow under this agreement is refused with. */
  reason?: 'AGREEMENT_NOT_IN_FORCE';
  /** Parties whose signature is missing, in party order. */
  missingSignatures: NodeId[];
  /** The earliest termination in effect, when terminated. */
  terminatedBy?: AgreementTermination;
}

/** What a verified agreement (or, for vectors and audits, an already-checked payload) brings. */
export interface SignedAgreement {
  agreement: Agreement;
  /** Parties whose signature verified. */
  signedBy: readonly NodeId[];
}

export interface VerifiedAgreement extends SignedAgreement, AgreementStatus {
  signedBy: NodeId[];
  jws: GeneralJws;
}

function instant(at: Timestamp | Date): number {
  return at instanceof Date ? at.getTime() : Date.parse(at);
}

/**
 * Status of an agreement at one instant (§2.4). Precedence when several hold: terminated, awaiting
 * signatures, not yet valid, expired. Terminations of other agreements or by non-parties are
 * ignored; a termination counts from its `at`.
 */
export function agreementStatus(verified: SignedAgreement, terminations: readonly AgreementTermination[], at: Timestamp | Date): AgreementStatus {
  const { agreement } = verified;
  const t = instant(at);
  const signed = new Set(verified.signedBy);
  const missingSignatures = agreement.parties.map((p) => p.node).filter((n) => !signed.has(n));
  const parties = new Set(agreement.parties.map((p) => p.node));
  const effective = terminations
    .filter((x) => x.agreementId === agreement.id && parties.has(x.by) && Date.parse(x.at) <= t)
    .sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
  const base = { missingSignatures };
  if (effective[0]) return { ...base, inForce: false, state: 'terminated', reason: 'AGREEMENT_NOT_IN_FORCE', terminatedBy: effective[0] };
  if (missingSignatures.length > 0) return { ...base, inForce: false, state: 'awaiting-signatures', reason: 'AGREEMENT_NOT_IN_FORCE' };
  if (t < Date.parse(agreement.validFrom)) return { ...base, inForce: false, state: 'not-yet-valid', reason: 'AGREEMENT_NOT_IN_FORCE' };
  if (t >= Date.parse(agreement.validUntil)) return { ...base, inForce: false, state: 'expired', reason: 'AGREEMENT_NOT_IN_FORCE' };
  return { ...base, inForce: true, state: 'in-force' };
}

// Failures of the object itself; anything else (a resolver's own error, a store outage) passes through.
const VERIFICATION_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MALFORMED',
  'TOO_LARGE',
  'WRONG_TYPE',
  'UNSUPPORTED_ALGORITHM',
  'FORBIDDEN_HEADER',
  'SIGNATURE_INVALID',
  'KEY_UNKNOWN',
  'KEY_INVALID',
  'KEY_NOT_VALID',
]);

async function asAgreementError<T>(message: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof ProtocolError && VERIFICATION_CODES.has(e.code)) {
      throw new ProtocolError('AGREEMENT_INVALID', message, { reason: e.code }, { cause: e });
    }
    throw e;
  }
}

/**
 * Verifies every signature of an agreement (§2.3). Each signature must come from a signing key that
 * one party's node held at `createdAt`; a signature by anyone else, or one that does not verify,
 * makes the whole agreement AGREEMENT_INVALID. Missing co-signatures are not an error: the result
 * says the agreement is not (yet) in force.
 */
export async function verifyAgreement(
  jws: unknown,
  resolve: NodeKeyResolver,
  options: { now: Timestamp | Date; terminations?: readonly AgreementTermination[] },
): Promise<VerifiedAgreement> {
  if (!isGeneralJws(jws)) throw new ProtocolError('AGREEMENT_INVALID', 'Expected an agreement as a general JWS JSON object');
  const claimed = parseAgreementPayload(await asAgreementError('The agreement cannot be decoded', () => peekGeneralPayload(jws)));
  const nodeOfKid = new Map<string, NodeId>();
  const signedAt = new Date(claimed.createdAt);
  const resolveKid: KeyResolver = async (kid) => {
    const found = await Promise.all(claimed.parties.map(async (p) => ({ node: p.node, jwk: await resolve(p.node, kid, signedAt) })));
    const matches = found.filter((f) => f.jwk !== undefined);
    // A key claimed by two parties cannot say who signed; treat it as unknown.
    if (matches.length !== 1) return undefined;
    nodeOfKid.set(kid, matches[0]!.node);
    return matches[0]!.jwk;
  };
  const verified = await asAgreementError('An agreement signature does not verify', () =>
    verifyGeneral(jws, AGREEMENT_TYP, resolveKid),
  );
  const agreement = parseAgreementPayload(verified.payload);
  const signers = new Set(verified.kids.map((kid) => nodeOfKid.get(kid)));
  const signedBy = agreement.parties.map((p) => p.node).filter((n) => signers.has(n));
  const status = agreementStatus({ agreement, signedBy }, options.terminations ?? [], options.now);
  return { agreement, signedBy, jws, ...status };
}

export async function signTermination(termination: AgreementTermination, key: SigningKeyPair): Promise<string> {
  const parsed = AgreementTermination.safeParse(termination);
  if (!parsed.success) throw new ProtocolError('SCHEMA_INVALID', 'The termination does not match its schema', issueDetails(parsed.error));
  return signCompact(parsed.data, key, AGREEMENT_TERMINATION_TYP);
}

export interface VerifiedTermination {
  termination: AgreementTermination;
  jws: string;
}

/**
 * Verifies a termination (§2.5): it must name this agreement, come from one of its parties and be
 * signed by a key that party held at the termination's `at`. Failures are AGREEMENT_INVALID.
 */
export async function verifyTermination(
  jws: string,
  agreement: Agreement | SignedAgreement,
  resolve: NodeKeyResolver,
): Promise<VerifiedTermination> {
  const target = 'agreement' in agreement ? agreement.agreement : agreement;
  const parse = (payload: unknown): AgreementTermination => {
    const parsed = AgreementTermination.safeParse(payload);
    if (!parsed.success) throw new ProtocolError('AGREEMENT_INVALID', 'The termination does not match its schema', issueDetails(parsed.error));
    return parsed.data;
  };
  const claimed = parse(await asAgreementError('The termination cannot be decoded', () => peekCompactPayload(jws)));
  if (claimed.agreementId !== target.id) throw new ProtocolError('AGREEMENT_INVALID', 'The termination is for another agreement');
  ensureParty(target, claimed.by);
  const verified = await asAgreementError('The termination signature does not verify', () =>
    verifyCompact(jws, AGREEMENT_TERMINATION_TYP, (kid) => resolve(claimed.by, kid, new Date(claimed.at))),
  );
  return { termination: parse(verified.payload), jws };
}
