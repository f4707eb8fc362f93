/**
 * Consent records (spec/consent-and-agreements.md §3), after ISO/IEC TS 27560 and the Kantara
 * consent receipt: what the person agreed to, in which language, collected how and by whom. Signed
 * by the controller (the organisation holding the case) and carried with every message it covers.
 */
import { z } from 'zod';
import type { NodeKeyResolver } from './agreement.js';
import { ProtocolError, type ErrorCode } from './errors.js';
import { sha256b64u } from './encoding.js';
import { peekCompactPayload, signCompact, verifyCompact } from './jws.js';
import type { SigningKeyPair } from './keys.js';
import { DataCategory, Digest, LanguageTag, NodeId, Purpose, SubjectRef, Timestamp, Uuid } from './vocabulary.js';

export const CONSENT_TYP = 'passerelle-consent+jwt';

function distinct<T extends z.ZodType>(item: T, max: number) {
  return z
    .array(item)
    .max(max)
    .refine((list) => new Set(list).size === list.length, { message: 'must not contain duplicates' });
}

/** Pseudonymous reference to a staff member: an opaque token, no spaces, so never a full name. */
const StaffRef = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{1,63}$/, 'must be a pseudonymous staff reference (2-64 characters, no spaces)');

export const COLLECTION_METHODS = ['written', 'oral', 'electronic'] as const;
export const GUARDIAN_RELATIONSHIPS = ['parent', 'legal-guardian', 'appointed-guardian', 'other'] as const;

export const ConsentCollection = z
  .strictObject({
    method: z.enum(COLLECTION_METHODS),
    interpreter: z.strictObject({ kind: z.enum(['interpreter', 'intercultural-mediator']), language: LanguageTag }).optional(),
    /** Language of the consent text shown or read to the person. */
    language: LanguageTag,
    text: z.strictObject({ version: z.string().trim().min(1).max(64), digest: Digest }),
  })
  .meta({
    id: 'ConsentCollection',
    description: 'How consent was collected: method, interpreter or intercultural mediator, language and a digest of the exact text shown.',
  });
export type ConsentCollection = z.infer<typeof ConsentCollection>;

export const ConsentMinor = z
  .strictObject({
    isMinor: z.boolean(),
    guardian: z.strictObject({ relationship: z.enum(GUARDIAN_RELATIONSHIPS), staffRef: StaffRef.optional() }).optional(),
    bestInterests: z.strictObject({ reference: z.string().trim().min(1).max(256), determinedAt: Timestamp }).optional(),
  })
  .meta({
    id: 'ConsentMinor',
    description:
      'Minor status. A missing guardian or best-interests determination is recorded as is: enforcement refuses it (CONSENT_MINOR_WITHOUT_GUARDIAN).',
  });
export type ConsentMinor = z.infer<typeof ConsentMinor>;

export const ConsentRecord = z
  .strictObject({
    id: Uuid,
    version: z.int().min(1),
    subject: SubjectRef,
    controller: NodeId,
    purposes: distinct(Purpose, 16).min(1),
    recipients: distinct(NodeId, 64).min(1),
    categories: distinct(DataCategory, 32),
    /** Categories the person consented to explicitly (GDPR art. 9(2)(a)); a subset of `categories`. */
    explicitConsent: distinct(DataCategory, 32),
    collection: ConsentCollection,
    collectedAt: Timestamp,
    expiresAt: Timestamp,
    /**
     * When the controller's node signed the record, if later than collection (a paper form entered
     * afterwards). The signing key is looked up at this instant; absent means `collectedAt`.
     */
    issuedAt: Timestamp.optional(),
    collectedBy: z.strictObject({ role: z.string().trim().min(1).max(64), staffRef: StaffRef }),
    minor: ConsentMinor.optional(),
  })
  .superRefine((r, ctx) => {
    const categories = new Set(r.categories);
    for (const c of r.explicitConsent) {
      if (!categories.has(c)) ctx.addIssue({ code: 'custom', message: `explicit consent for ${c}, which is not among the categories`, path: ['explicitConsent'] });
    }
    if (Date.parse(r.expiresAt) <= Date.parse(r.collectedAt)) ctx.addIssue({ code: 'custom', message: 'expiresAt must be after collectedAt', path: ['expiresAt'] });
    if (r.issuedAt !== undefined && Date.parse(r.issuedAt) < Date.parse(r.collectedAt)) {
      ctx.addIssue({ code: 'custom', message: 'issuedAt must not be before collectedAt', path: ['issuedAt'] });
    }
  })
  .meta({
    id: 'ConsentRecord',
    description:
      "A person's consent as recorded by the controller: pseudonymous subject, purposes, recipients, data categories, explicit consent for special categories, collection details, validity and minor status. Signed by the controller (compact JWS, typ passerelle-consent+jwt).",
  });
export type ConsentRecord = z.infer<typeof ConsentRecord>;

/**
 * A withdrawal as a fact for enforcement (§4). The consent-withdrawal message that carries it is a
 * message type of its own; this is only what a node has learnt from it.
 */
export const Withdrawal = z
  .strictObject({
    consentId: Uuid,
    /** The purposes withdrawn; absent means the whole consent. */
    purposes: distinct(Purpose, 16).min(1).optional(),
    at: Timestamp,
  })
  .meta({ id: 'Withdrawal', description: 'Withdrawal of a consent, whole or for some purposes, effective from `at`.' });
export type Withdrawal = z.infer<typeof Withdrawal>;

export interface VerifiedConsent {
  record: ConsentRecord;
  /** The exact compact JWS verified, to be carried on unchanged. */
  jws: string;
  /** base64url SHA-256 of the JWS string: how messages, receipts and audit logs refer to this record. */
  digest: string;
}

function parseRecord(payload: unknown, code: 'CONSENT_INVALID' | 'SCHEMA_INVALID'): ConsentRecord {
  const parsed = ConsentRecord.safeParse(payload);
  if (!parsed.success) {
    throw new ProtocolError(code, 'The consent record does not match its schema', {
      issues: parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return parsed.data;
}

/** Signs a consent record with a signing key of its controller. */
export async function signConsent(record: ConsentRecord, key: SigningKeyPair): Promise<string> {
  return signCompact(parseRecord(record, 'SCHEMA_INVALID'), key, CONSENT_TYP);
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

async function asConsentError<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof ProtocolError && VERIFICATION_CODES.has(e.code)) {
      throw new ProtocolError('CONSENT_INVALID', undefined, { reason: e.code }, { cause: e });
    }
    throw e;
  }
}

/**
 * Verifies a consent record (§3.3): schema, then the signature by a key its controller held when it
 * was issued. Any failure is CONSENT_INVALID; whether the record covers a given message is for
 * enforcement to say.
 */
export async function verifyConsent(jws: string, resolve: NodeKeyResolver): Promise<VerifiedConsent> {
  const claimed = parseRecord(await asConsentError(() => peekCompactPayload(jws)), 'CONSENT_INVALID');
  const issuedAt = new Date(claimed.issuedAt ?? claimed.collectedAt);
  const verified = await asConsentError(() => verifyCompact(jws, CONSENT_TYP, (kid) => resolve(claimed.controller, kid, issuedAt)));
  return { record: parseRecord(verified.payload, 'CONSENT_INVALID'), jws, digest: await sha256b64u(jws) };
}
