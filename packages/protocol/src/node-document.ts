/**
 * Node documents: who a node is, which keys it holds and when each key is valid.
 *
 * Wire form: a JWS General JSON Serialization (RFC 7515 §7.2.1) whose payload is the document and
 * whose signatures come from the signing keys the document itself lists. Every signing key that is
 * current at `issuedAt` signs, so no single key can speak for the node alone. Versions only go up;
 * a newer version must also be signed by a key of the version the reader already trusts, so a peer
 * follows key rotations from its pinned fingerprint without ever trusting on first use.
 */
import { z } from 'zod';
import { ProtocolError } from './errors.js';
import { fromB64u, fromUtf8, parseJsonObject, sha256b64u } from './encoding.js';
import { MAX_COMPACT_LENGTH } from './jose-policy.js';
import { signGeneral, verifyGeneral, type GeneralJws } from './jws.js';
import {
  PublicEncryptionJwk,
  PublicSigningJwk,
  thumbprint,
  type EncryptionKeyPair,
  type SigningKeyPair,
} from './keys.js';
import { CountryCode, Digest, LanguageTag, NODE_ROLES, NodeId, NodeRole, Timestamp, toTimestamp } from './vocabulary.js';

export const NODE_DOCUMENT_TYP = 'passerelle-node+json';

/** How far `issuedAt` may lie ahead of the verifier's clock. */
export const NODE_DOCUMENT_MAX_SKEW_SECONDS = 300;

export const DEFAULT_NODE_DOCUMENT_LIFETIME_SECONDS = 30 * 24 * 60 * 60;

/**
 * How long a superseded signing key stays valid after the rotation that replaces it. It must be
 * valid at the new `issuedAt` to co-sign the rotation, and peers that have not yet fetched the new
 * document keep verifying messages signed just before the switch.
 */
export const DEFAULT_KEY_OVERLAP_SECONDS = 24 * 60 * 60;

/** verifyGeneral accepts at most this many signatures, so at most this many keys can be current. */
export const MAX_CURRENT_SIGNING_KEYS = 16;

/** Revoked and expired keys stay listed for history, so the list is bounded generously. */
export const MAX_NODE_KEYS = 128;

const Kid = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, 'must be an RFC 7638 SHA-256 JWK thumbprint (base64url)');

export const MessageTypeId = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,63}$/, 'must be a lower-case message type identifier')
  .meta({ id: 'MessageTypeId', description: 'Identifier of a message type (the registry lives with the message schemas).' });

export const REVOCATION_REASONS = ['superseded', 'compromised', 'retired'] as const;
export const RevocationReason = z.enum(REVOCATION_REASONS).meta({
  id: 'RevocationReason',
  description:
    'Why a key was revoked: superseded by a rotation, compromised (its signatures no longer carry a rotation), or retired.',
});
export type RevocationReason = z.infer<typeof RevocationReason>;

const keyWindow = {
  notBefore: Timestamp,
  notAfter: Timestamp.optional(),
  revokedAt: Timestamp.optional(),
  revocationReason: RevocationReason.optional(),
};

export const NodeSigningKey = z
  .object({ kid: Kid, use: z.literal('sig'), jwk: PublicSigningJwk, ...keyWindow })
  .strict()
  .meta({ id: 'NodeSigningKey', description: 'An Ed25519 signing key of a node with its validity window.' });
export type NodeSigningKey = z.infer<typeof NodeSigningKey>;

export const NodeEncryptionKey = z
  .object({ kid: Kid, use: z.literal('enc'), jwk: PublicEncryptionJwk, ...keyWindow })
  .strict()
  .meta({ id: 'NodeEncryptionKey', description: 'An X25519 encryption key of a node with its validity window.' });
export type NodeEncryptionKey = z.infer<typeof NodeEncryptionKey>;

export const NodeKey = z.discriminatedUnion('use', [NodeSigningKey, NodeEncryptionKey]).meta({
  id: 'NodeKey',
  description: 'A key listed in a node document; kid is the RFC 7638 thumbprint of jwk. Valid from notBefore until notAfter or revokedAt.',
});
export type NodeKey = z.infer<typeof NodeKey>;
export type KeyUse = NodeKey['use'];

export const NodeDocumentLink = z
  .object({ version: z.number().int().positive(), digest: Digest })
  .strict()
  .meta({
    id: 'NodeDocumentLink',
    description: 'The previous version of a node document: its version and the base64url SHA-256 of its JWS payload segment.',
  });
export type NodeDocumentLink = z.infer<typeof NodeDocumentLink>;

function ms(timestamp: string): number {
  return Date.parse(timestamp);
}

function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  for (const v of values) (seen.has(v) ? out : seen).add(v);
  return [...out];
}

function checkDocument(doc: z.output<typeof NodeDocumentShape>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });

  let inbox: URL | undefined;
  try {
    inbox = new URL(doc.inbox);
  } catch {
    issue(['inbox'], 'must be an absolute URL');
  }
  if (inbox) {
    // The node id is an origin (https, or http only on loopback), so a same-origin inbox inherits that rule.
    if (inbox.origin !== doc.id) issue(['inbox'], 'must have the same origin as id');
    if (inbox.username || inbox.password || inbox.hash) issue(['inbox'], 'must carry no credentials and no fragment');
    if (inbox.href !== doc.inbox) issue(['inbox'], 'must be in normalised URL form');
  }

  if (ms(doc.expiresAt) <= ms(doc.issuedAt)) issue(['expiresAt'], 'must be after issuedAt');
  if (doc.previous) {
    if (doc.previous.version >= doc.version) issue(['previous', 'version'], 'must be lower than version');
  }

  for (const [field, values] of [
    ['roles', doc.roles],
    ['messageTypes', doc.messageTypes],
    ['languages', doc.languages.map((l) => l.toLowerCase())],
    ['keys', doc.keys.map((k) => k.kid)],
  ] as const) {
    const dup = duplicates(values);
    if (dup.length > 0) issue([field], `must not repeat entries (${dup.slice(0, 3).join(', ')})`);
  }
  if (!doc.keys.some((k) => k.use === 'sig')) issue(['keys'], 'must list at least one signing key');
  doc.keys.forEach((key, i) => {
    if (key.notAfter !== undefined && ms(key.notAfter) <= ms(key.notBefore)) issue(['keys', i, 'notAfter'], 'must be after notBefore');
    if (key.revocationReason !== undefined && key.revokedAt === undefined) issue(['keys', i, 'revocationReason'], 'needs revokedAt');
    if (key.jwk.kid !== undefined && key.jwk.kid !== key.kid) issue(['keys', i, 'jwk', 'kid'], 'must equal kid');
  });
}

const NodeDocumentShape = z
  .object({
    id: NodeId,
    version: z.number().int().positive(),
    name: z.string().min(1).max(200),
    country: CountryCode,
    roles: z.array(NodeRole).min(1).max(NODE_ROLES.length),
    inbox: z.string().max(2048),
    keys: z.array(NodeKey).min(1).max(MAX_NODE_KEYS),
    messageTypes: z.array(MessageTypeId).max(128),
    languages: z.array(LanguageTag).min(1).max(64),
    issuedAt: Timestamp,
    expiresAt: Timestamp,
    previous: NodeDocumentLink.optional(),
  })
  .strict();

export const NodeDocument = NodeDocumentShape.superRefine(checkDocument).meta({
  id: 'NodeDocument',
  description:
    'Who a node is: its origin, organisation, roles, inbox, keys (with history), message types and languages. ' +
    'Carried as the payload of a general JWS signed by every signing key current at issuedAt.',
});
export type NodeDocument = z.infer<typeof NodeDocument>;

export interface VerifiedNodeDocument {
  document: NodeDocument;
  /** The JWS exactly as verified (payload and signatures), for storing and re-serving. */
  jws: GeneralJws;
  /** base64url SHA-256 of the payload segment's ASCII bytes: what a successor's `previous.digest` names. */
  payloadDigest: string;
  /** Key ids whose signatures verified, in signature order. */
  signers: string[];
}

// ---------------------------------------------------------------------------------------------
// Key validity

function instant(at: Date | string): number {
  const t = typeof at === 'string' ? Date.parse(at) : at.getTime();
  if (Number.isNaN(t)) throw new ProtocolError('MALFORMED', 'Invalid time');
  return t;
}

function entryValidAt(entry: NodeKey, t: number): boolean {
  return (
    ms(entry.notBefore) <= t &&
    (entry.notAfter === undefined || t < ms(entry.notAfter)) &&
    (entry.revokedAt === undefined || t < ms(entry.revokedAt))
  );
}

function findKey(doc: NodeDocument, kid: string, use: 'sig'): NodeSigningKey | undefined;
function findKey(doc: NodeDocument, kid: string, use: KeyUse): NodeKey | undefined;
function findKey(doc: NodeDocument, kid: string, use: KeyUse): NodeKey | undefined {
  return doc.keys.find((k) => k.kid === kid && k.use === use);
}

function isCompromised(doc: NodeDocument, kid: string): boolean {
  return doc.keys.some((k) => k.kid === kid && k.revocationReason === 'compromised');
}

/** Whether `kid` is listed with this use and valid at `at`: notBefore <= at < notAfter, at < revokedAt. */
export function keyValidAt(doc: NodeDocument, kid: string, at: Date | string, use: KeyUse = 'sig'): boolean {
  const entry = findKey(doc, kid, use);
  return entry !== undefined && entryValidAt(entry, instant(at));
}

/** The public signing key `kid` of this node, if it was valid at `at` (for example a message's creation time). */
export function resolveSigningKey(doc: NodeDocument, kid: string, at: Date | string): PublicSigningJwk {
  const entry = findKey(doc, kid, 'sig');
  if (!entry) throw new ProtocolError('KEY_UNKNOWN', undefined, { kid });
  if (!entryValidAt(entry, instant(at))) throw new ProtocolError('KEY_NOT_VALID', undefined, { kid });
  return entry.jwk;
}

/** Non-throwing form of resolveSigningKey, in the shape of a NodeKeyResolver (undefined when not valid). */
export function signingKeyAt(doc: NodeDocument, kid: string, at: Date | string): PublicSigningJwk | undefined {
  const entry = findKey(doc, kid, 'sig');
  return entry && entryValidAt(entry, instant(at)) ? entry.jwk : undefined;
}

/** The encryption key to seal to now: the valid 'enc' key with the latest notBefore (the later entry on a tie). */
export function currentEncryptionKey(doc: NodeDocument, now: Date | string = new Date()): NodeEncryptionKey {
  const t = instant(now);
  let best: NodeEncryptionKey | undefined;
  for (const key of doc.keys) {
    if (key.use !== 'enc' || !entryValidAt(key, t)) continue;
    if (!best || ms(key.notBefore) >= ms(best.notBefore)) best = key;
  }
  if (!best) throw new ProtocolError('KEY_NOT_VALID', 'The node has no valid encryption key');
  return best;
}

/** Key ids (RFC 7638 thumbprints) of every signing key listed, current or not: what peers pin. */
export function nodeFingerprints(doc: NodeDocument): string[] {
  return doc.keys.filter((k) => k.use === 'sig').map((k) => k.kid);
}

function currentSigningKids(doc: NodeDocument, t: number): string[] {
  return doc.keys.filter((k) => k.use === 'sig' && entryValidAt(k, t)).map((k) => k.kid);
}

/** A key entry carrying only the public half of a key pair; `use` follows the curve. */
export function nodeKeyEntry(
  pair: SigningKeyPair | EncryptionKeyPair,
  window: { notBefore: Date | Timestamp; notAfter?: Date | Timestamp },
): NodeKey {
  const { kty, crv, x } = pair.publicJwk;
  const ts = (v: Date | Timestamp) => (typeof v === 'string' ? v : toTimestamp(v));
  const entry = {
    kid: pair.kid,
    notBefore: ts(window.notBefore),
    ...(window.notAfter !== undefined ? { notAfter: ts(window.notAfter) } : {}),
  };
  return crv === 'Ed25519'
    ? { ...entry, use: 'sig', jwk: { kty, crv, x } }
    : { ...entry, use: 'enc', jwk: { kty, crv: 'X25519', x } };
}

/**
 * Marks `kid` revoked. A revocation is never moved later: an earlier existing `revokedAt` is kept.
 * Returns a new key list (for `rotateNodeDocument`'s changes).
 */
export function revokeKey(
  keys: readonly NodeKey[],
  kid: string,
  revocation: { at: Date | Timestamp; reason: RevocationReason },
): NodeKey[] {
  if (!keys.some((k) => k.kid === kid)) throw new ProtocolError('KEY_UNKNOWN', undefined, { kid });
  const at = typeof revocation.at === 'string' ? revocation.at : toTimestamp(revocation.at);
  return keys.map((k) => {
    if (k.kid !== kid) return k;
    const revokedAt = k.revokedAt !== undefined && ms(k.revokedAt) <= ms(at) ? k.revokedAt : at;
    return { ...k, revokedAt, revocationReason: revocation.reason };
  });
}

// ---------------------------------------------------------------------------------------------
// Parsing

function schemaError(error: z.ZodError): ProtocolError {
  return new ProtocolError('SCHEMA_INVALID', 'Invalid node document', {
    issues: error.issues.slice(0, 10).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  });
}

/** A private key in a published document is a key disclosure, not a typo: name it as such. */
function refusePrivateKeyMaterial(value: unknown): void {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return;
  for (const entry of keys) {
    const jwk = (entry as { jwk?: unknown } | null)?.jwk;
    if (jwk !== null && typeof jwk === 'object' && Object.hasOwn(jwk, 'd')) {
      throw new ProtocolError('KEY_INVALID', 'A node document must not carry private key material');
    }
  }
}

/**
 * Validates a node document payload: schema (SCHEMA_INVALID), no private key material and every
 * kid equal to its key's RFC 7638 thumbprint (KEY_INVALID). Does not check signatures.
 */
export async function parseNodeDocument(value: unknown): Promise<NodeDocument> {
  refusePrivateKeyMaterial(value);
  const result = NodeDocument.safeParse(value);
  if (!result.success) throw schemaError(result.error);
  const doc = result.data;
  for (const key of doc.keys) {
    if ((await thumbprint(key.jwk)) !== key.kid) {
      throw new ProtocolError('KEY_INVALID', 'kid is not the thumbprint of the listed key', { kid: key.kid });
    }
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Creating

export type NodeDocumentInput = Omit<NodeDocument, 'version' | 'issuedAt' | 'expiresAt'> & {
  /** Defaults to 1. */
  version?: number;
  /** Defaults to `now`. */
  issuedAt?: Timestamp;
  /** Defaults to issuedAt + DEFAULT_NODE_DOCUMENT_LIFETIME_SECONDS. */
  expiresAt?: Timestamp;
};

export interface CreateNodeDocumentOptions {
  now?: Date;
}

function addSeconds(timestamp: string, seconds: number): Timestamp {
  return toTimestamp(ms(timestamp) + seconds * 1000);
}

function uniqueByKid<T extends { kid: string }>(items: readonly T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => !seen.has(i.kid) && seen.add(i.kid));
}

/**
 * Signs a node document. Only keys listed in it as 'sig' and valid at `issuedAt` may sign, and
 * every such key must: a document one current key did not sign is refused by every verifier.
 */
export async function createNodeDocument(
  input: NodeDocumentInput,
  signingKeys: readonly SigningKeyPair[],
  options: CreateNodeDocumentOptions = {},
): Promise<GeneralJws> {
  const issuedAt = input.issuedAt ?? toTimestamp(options.now ?? new Date());
  const document = await parseNodeDocument({
    ...input,
    version: input.version ?? 1,
    issuedAt,
    expiresAt: input.expiresAt ?? addSeconds(issuedAt, DEFAULT_NODE_DOCUMENT_LIFETIME_SECONDS),
  });
  const t = ms(document.issuedAt);
  const signers = uniqueByKid(signingKeys);
  for (const pair of signers) {
    const entry = findKey(document, pair.kid, 'sig');
    if (!entry) throw new ProtocolError('KEY_UNKNOWN', 'Only keys listed in the document may sign it', { kid: pair.kid });
    if (entry.jwk.x !== pair.publicJwk.x) throw new ProtocolError('KEY_INVALID', 'Signing key does not match the listed key', { kid: pair.kid });
    if (!entryValidAt(entry, t)) throw new ProtocolError('KEY_NOT_VALID', 'Signing key is not valid at issuedAt', { kid: pair.kid });
  }
  const signerKids = new Set(signers.map((s) => s.kid));
  const missing = currentSigningKids(document, t).filter((kid) => !signerKids.has(kid));
  if (missing.length > 0) {
    throw new ProtocolError('NODE_DOCUMENT_INVALID', 'Every current signing key must sign', { missing });
  }
  if (signers.length > MAX_CURRENT_SIGNING_KEYS) {
    throw new ProtocolError('NODE_DOCUMENT_INVALID', 'Too many current signing keys');
  }
  return signGeneral(document, signers, NODE_DOCUMENT_TYP);
}

// ---------------------------------------------------------------------------------------------
// Verifying

export interface VerifyNodeDocumentOptions {
  /** The verifier's clock (injectable for tests and for auditors replaying history). */
  now?: Date;
  /** Fingerprints pinned for this peer (from the agreement). At least one must have signed, unless `known` vouches. */
  pinnedFingerprints?: readonly string[];
  /** The version already trusted: rollback is refused and a newer version must chain from it. */
  known?: VerifiedNodeDocument;
  /** The node id the document was fetched for: a document naming another node is refused. */
  expectedId?: string;
}

function isGeneralJwsShape(value: unknown): value is GeneralJws {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as GeneralJws).payload === 'string' &&
    Array.isArray((value as GeneralJws).signatures)
  );
}

/** Signers that count for pinning: their kid is pinned and the document does not call them compromised. */
function pinnedSigners(doc: NodeDocument, signers: readonly string[], pinned: readonly string[] | undefined): string[] {
  if (!pinned) return [];
  return signers.filter((kid) => pinned.includes(kid) && !isCompromised(doc, kid));
}

/**
 * Checks a candidate against the version already trusted. Returns normally when the candidate is
 * that same document or a properly chained successor.
 */
function checkAgainstKnown(
  doc: NodeDocument,
  payloadDigest: string,
  signers: readonly string[],
  known: VerifiedNodeDocument,
  pinned: readonly string[] | undefined,
): void {
  const prior = known.document;
  if (doc.id !== prior.id) throw new ProtocolError('NODE_DOCUMENT_INVALID', 'The document names another node than the known one');
  if (doc.version < prior.version) {
    throw new ProtocolError('NODE_DOCUMENT_STALE', undefined, { knownVersion: prior.version, version: doc.version });
  }
  if (doc.version === prior.version) {
    if (payloadDigest !== known.payloadDigest) {
      throw new ProtocolError('NODE_DOCUMENT_INVALID', 'Two different documents carry the same version', { version: doc.version });
    }
    return;
  }

  // Authority first: a successor speaks for the node only if a key the known version trusts, still
  // valid by the known version's own terms at the new issuedAt, signed it. A key the new document
  // calls compromised does not count, whenever the compromise is dated.
  const chainSigners = signers.filter(
    (kid) => keyValidAt(prior, kid, doc.issuedAt, 'sig') && !isCompromised(doc, kid) && !isCompromised(prior, kid),
  );
  // Recovery when every trusted key is lost: a key pinned out of band (a new agreement annex) stands in for the chain.
  if (chainSigners.length === 0 && pinnedSigners(doc, signers, pinned).length === 0) {
    throw new ProtocolError('ROTATION_INVALID', 'Not signed by a valid key of the known version');
  }
  if (doc.version === prior.version + 1 && !doc.previous) {
    throw new ProtocolError('ROTATION_INVALID', 'The next version must link to the previous one');
  }
  if (doc.previous?.version === prior.version && doc.previous.digest !== known.payloadDigest) {
    throw new ProtocolError('ROTATION_INVALID', 'The previous link does not match the known version');
  }
  // Bounds back-dating: a key that has expired by the known version's terms cannot sign "in the past".
  if (ms(doc.issuedAt) < ms(prior.issuedAt)) {
    throw new ProtocolError('ROTATION_INVALID', 'Issued before the known version');
  }
  // History is kept: every known key stays listed, and a revocation is never undone or postponed.
  for (const old of prior.keys) {
    const listed = findKey(doc, old.kid, old.use);
    if (!listed) throw new ProtocolError('NODE_DOCUMENT_INVALID', 'A key of the known version is no longer listed', { kid: old.kid });
    if (old.revokedAt !== undefined && (listed.revokedAt === undefined || ms(listed.revokedAt) > ms(old.revokedAt))) {
      throw new ProtocolError('NODE_DOCUMENT_INVALID', 'A revocation of the known version was undone', { kid: old.kid });
    }
  }
}

/**
 * Verifies a node document JWS: schema, key thumbprints, every signature (each by a listed signing
 * key valid at issuedAt), every current key's co-signature, freshness, and trust (pinned
 * fingerprint or a chain from the known version). Returns the document with its payload digest.
 */
export async function verifyNodeDocument(jws: unknown, options: VerifyNodeDocumentOptions = {}): Promise<VerifiedNodeDocument> {
  if (!isGeneralJwsShape(jws)) throw new ProtocolError('MALFORMED', 'Expected a general JWS JSON object');
  if (jws.payload.length > MAX_COMPACT_LENGTH) throw new ProtocolError('TOO_LARGE', 'Node document too large');
  const document = await parseNodeDocument(parseJsonObject(fromUtf8(fromB64u(jws.payload))));
  const issuedAt = ms(document.issuedAt);

  // The document names its own keys; trust in them comes afterwards from pins or the known chain.
  const { kids: signers } = await verifyGeneral(jws, NODE_DOCUMENT_TYP, (kid) => {
    const entry = findKey(document, kid, 'sig');
    if (entry && !entryValidAt(entry, issuedAt)) throw new ProtocolError('KEY_NOT_VALID', 'Signed by a key not valid at issuedAt', { kid });
    return entry?.jwk;
  });
  const payloadDigest = await sha256b64u(jws.payload);

  if (options.expectedId !== undefined && document.id !== options.expectedId) {
    throw new ProtocolError('NODE_DOCUMENT_INVALID', 'The document names another node than expected');
  }
  const { known, pinnedFingerprints: pinned } = options;
  if (known) checkAgainstKnown(document, payloadDigest, signers, known, pinned);

  const missing = currentSigningKids(document, issuedAt).filter((kid) => !signers.includes(kid));
  if (missing.length > 0) {
    const code = known && document.version > known.document.version ? 'ROTATION_INVALID' : 'NODE_DOCUMENT_INVALID';
    throw new ProtocolError(code, 'Every current signing key must sign', { missing });
  }

  const now = (options.now ?? new Date()).getTime();
  if (issuedAt > now + NODE_DOCUMENT_MAX_SKEW_SECONDS * 1000) {
    throw new ProtocolError('CLOCK_SKEW', 'issuedAt lies in the future', { serverTime: toTimestamp(now) });
  }
  if (ms(document.expiresAt) <= now) throw new ProtocolError('NODE_DOCUMENT_EXPIRED');
  // Within the allowed skew a key may start at issuedAt, just after our clock: judge it at issuedAt.
  const current = Math.max(now, issuedAt);
  if (!signers.some((kid) => keyValidAt(document, kid, new Date(current), 'sig'))) {
    throw new ProtocolError('KEY_NOT_VALID', 'No signature by a currently valid key');
  }

  if (pinned !== undefined && known === undefined && pinnedSigners(document, signers, pinned).length === 0) {
    throw new ProtocolError('FINGERPRINT_MISMATCH');
  }

  const copy: GeneralJws = {
    payload: jws.payload,
    signatures: jws.signatures.map((s) => ({ protected: s.protected, signature: s.signature })),
  };
  return { document, jws: copy, payloadDigest, signers };
}

/**
 * Accepts `candidate` unless it is older than `known` (NODE_DOCUMENT_STALE). The same version with
 * the same content returns `known` unchanged; a newer one must chain from it.
 */
export async function acceptNewer(
  known: VerifiedNodeDocument | undefined,
  candidate: unknown,
  options: Omit<VerifyNodeDocumentOptions, 'known'> = {},
): Promise<VerifiedNodeDocument> {
  const result = await verifyNodeDocument(candidate, { ...options, known });
  return known && result.document.version === known.document.version ? known : result;
}

// ---------------------------------------------------------------------------------------------
// Rotating

/** Fields a new version may change; id and the version chain are derived. */
export type NodeDocumentChanges = Partial<Omit<NodeDocument, 'id' | 'version' | 'previous'>>;

export interface RotateNodeDocumentOptions {
  /** Keys of the previous version that sign the successor (at least one must carry the chain). */
  oldKeys: readonly SigningKeyPair[];
  /** Keys that are current in the successor; those not yet listed are added with notBefore = issuedAt. */
  newKeys: readonly SigningKeyPair[];
  now?: Date;
  /** When newKeys is not empty, old keys not among them are marked superseded this long after issuedAt. */
  overlapSeconds?: number;
}

/**
 * Issues the next version: version + 1, a `previous` link to `previous`, new signing keys added,
 * old ones superseded after an overlap, signed by old and new keys alike. With `newKeys: []` it is
 * a plain update (name, inbox, message types...) signed by the current keys, which stay current.
 */
export async function rotateNodeDocument(
  previous: VerifiedNodeDocument,
  changes: NodeDocumentChanges,
  options: RotateNodeDocumentOptions,
): Promise<GeneralJws> {
  const prior = previous.document;
  const overlap = options.overlapSeconds ?? DEFAULT_KEY_OVERLAP_SECONDS;
  if (!Number.isInteger(overlap) || overlap <= 0) {
    throw new ProtocolError('ROTATION_INVALID', 'The overlap must be positive so that outgoing keys can co-sign');
  }
  const issuedAt = changes.issuedAt ?? toTimestamp(options.now ?? new Date());
  if (ms(issuedAt) < ms(prior.issuedAt)) throw new ProtocolError('ROTATION_INVALID', 'Issued before the previous version');
  const expiresAt = changes.expiresAt ?? addSeconds(issuedAt, (ms(prior.expiresAt) - ms(prior.issuedAt)) / 1000);

  let keys: NodeKey[] = [...(changes.keys ?? prior.keys)];
  const newKids = new Set(options.newKeys.map((k) => k.kid));
  for (const pair of uniqueByKid(options.newKeys)) {
    if (!keys.some((k) => k.kid === pair.kid)) keys.push(nodeKeyEntry(pair, { notBefore: issuedAt }));
  }
  // Supersession means replacement: with no new key, nothing is superseded.
  for (const pair of newKids.size > 0 ? options.oldKeys : []) {
    const entry = keys.find((k) => k.kid === pair.kid);
    if (entry && !newKids.has(pair.kid) && entry.revokedAt === undefined) {
      keys = revokeKey(keys, pair.kid, { at: addSeconds(issuedAt, overlap), reason: 'superseded' });
    }
  }

  const chains = options.oldKeys.some(
    (pair) =>
      keyValidAt(prior, pair.kid, issuedAt, 'sig') &&
      !isCompromised(prior, pair.kid) &&
      !keys.some((k) => k.kid === pair.kid && k.revocationReason === 'compromised'),
  );
  if (!chains) throw new ProtocolError('ROTATION_INVALID', 'No old key valid in the previous version signs the rotation');

  return createNodeDocument(
    {
      ...prior,
      ...changes,
      keys,
      version: prior.version + 1,
      issuedAt,
      expiresAt,
      previous: { version: prior.version, digest: previous.payloadDigest },
    },
    [...options.oldKeys, ...options.newKeys],
    options.now ? { now: options.now } : {},
  );
}
