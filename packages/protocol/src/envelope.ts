/**
 * The message envelope (spec/protocol.md §6): an SD-JWT signed by the sender, encrypted to the
 * recipient. `seal` = validate → conceal → sign → encrypt; `open` = decrypt → verify → check claims →
 * reveal → validate. Every step throws a ProtocolError with a stable code.
 */
import { ProtocolError } from './errors.js';
import { fromB64u, fromUtf8, parseJsonObject, utf8, sha256b64uSync } from './encoding.js';
import { MAX_COMPACT_LENGTH, parseCompactJwe, parseCompactJws } from './jose-policy.js';
import { decryptCompactJwe, encryptCompactJwe } from './jwe.js';
import { signCompact, verifyParsedSignature } from './jws.js';
import { cryptoKeyFor, type EncryptionKeyPair, type PublicEncryptionJwk, type PublicSigningJwk, type SigningKeyPair } from './keys.js';
import { SD_ALG, concealObject, indexDisclosures, joinSdJwt, revealObject, splitSdJwt, type Disclosure } from './sd-jwt.js';
import { DataCategory, toEpochSeconds, toTimestamp } from './vocabulary.js';
import { isBuiltMessage, sameCategories, validateMessage, type Message, type MessageHeader } from './messages/define.js';
import { messageTyp, messageTypeFromTyp, MESSAGE_TYPS, type MessageType } from './messages/message-types.js';
import { definitionOf } from './messages/registry.js';

/** JWE `cty` of a sealed message: the plaintext is an SD-JWT (RFC 9901 §11.2). */
export const ENVELOPE_CTY = 'sd-jwt';
export const ENVELOPE_TYP = 'passerelle-message+jwe';
/** Allowed clock skew for `iat` (spec/protocol.md §6.3). */
export const DEFAULT_MAX_SKEW_SECONDS = 300;

/** Resolves the sender's signing key valid at the signing time; returns undefined when unknown. */
export type SenderKeyResolver = (
  issuer: string,
  kid: string,
  signedAt: Date,
) => PublicSigningJwk | undefined | Promise<PublicSigningJwk | undefined>;

interface WirePayload {
  iss: string;
  aud: string;
  jti: string;
  iat: number;
  exp: number;
  type: MessageType;
  thread: string;
  agreement: string;
  consent?: string;
  purpose: string;
  categories: string[];
  body: unknown;
  data: Record<string, { _sd: string[] }>;
  consent_record?: string;
  provenance?: { jwt: string; disclosed: string[] };
  _sd_alg: typeof SD_ALG;
}

/** Builds and signs the SD-JWT of a message; returns the SD-JWT and its issuer-signed JWT. */
export async function signMessage(message: Message, key: SigningKeyPair): Promise<{ sdJwt: string; jwt: string; disclosures: Disclosure[] }> {
  const def = definitionOf(message.header.type);
  // Builder output is validated and frozen already; anything else is validated here.
  const parsed = isBuiltMessage(message) ? (message as ReturnType<typeof validateMessage>) : validateMessage(def, message);
  const { header } = parsed;
  if (!sameCategories(header.categories, deriveAll(parsed.data as Record<string, unknown>, message.onward))) {
    throw new ProtocolError('CATEGORIES_MISMATCH');
  }
  if (def.requiresConsent && !header.consentId) throw new ProtocolError('CONSENT_MISSING', `${def.type} needs a consent id`);
  const data: Record<string, { _sd: string[] }> = {};
  const disclosures: Disclosure[] = [];
  for (const [category, section] of Object.entries(parsed.data as Record<string, Record<string, unknown> | undefined>)) {
    if (!section) continue;
    const { concealed, disclosures: d } = concealObject(section);
    if (d.length === 0) continue;
    data[category] = concealed;
    disclosures.push(...d);
  }
  const payload: WirePayload = {
    iss: header.from,
    aud: header.to,
    jti: header.id,
    iat: toEpochSeconds(header.created),
    exp: toEpochSeconds(header.expires),
    type: header.type,
    thread: header.threadId,
    agreement: header.agreementId,
    ...(header.consentId ? { consent: header.consentId } : {}),
    purpose: header.purpose,
    categories: header.categories,
    body: parsed.body,
    data,
    ...(message.consentRecord ? { consent_record: message.consentRecord } : {}),
    ...(message.onward ? { provenance: await provenanceOf(message.onward) } : {}),
    _sd_alg: SD_ALG,
  };
  const jwt = await signCompact(payload as unknown as Record<string, unknown>, key, messageTyp(header.type));
  const encoded = [...disclosures.map((d) => d.encoded), ...(message.onward?.disclosures ?? [])];
  return { sdJwt: joinSdJwt(jwt, encoded), jwt, disclosures };
}

async function provenanceOf(onward: { jwt: string; disclosures: string[] }) {
  const index = indexDisclosures(onward.disclosures);
  return { jwt: onward.jwt, disclosed: [...index.keys()].sort() };
}

function deriveAll(data: Record<string, unknown>, onward?: { jwt: string; disclosures: string[] }): DataCategory[] {
  const own = new Set(DataCategory.options.filter((c) => {
    const s = data[c] as Record<string, unknown> | undefined;
    return s && Object.values(s).some((v) => v !== undefined);
  }));
  if (onward) {
    const original = parseJsonObject(fromUtf8(fromB64u(parseCompactJws(onward.jwt).payloadB64)));
    for (const c of categoriesOfDigests(original, indexDisclosures(onward.disclosures))) own.add(c);
  }
  return DataCategory.options.filter((c) => own.has(c));
}

/** The categories whose concealed sections contain any of the given digests. */
function categoriesOfDigests(payload: Record<string, unknown>, digests: ReadonlyMap<string, unknown>): DataCategory[] {
  const data = (payload.data ?? {}) as Record<string, { _sd?: unknown }>;
  return DataCategory.options.filter((c) => Array.isArray(data[c]?._sd) && (data[c]!._sd as string[]).some((d) => digests.has(d)));
}

export interface SealOptions {
  signingKey: SigningKeyPair;
  /** The recipient's current X25519 key, from its node document (with its kid). */
  recipientKey: PublicEncryptionJwk & { kid: string };
}

export interface Sealed {
  /** Compact JWE: the bytes that travel. */
  jwe: string;
  /** base64url SHA-256 of the JWE's exact bytes; receipts name it. */
  digest: string;
  /** The issuer-signed JWT (no disclosures): what an audit bundle keeps by default. */
  jwt: string;
}

export async function seal(message: Message, options: SealOptions): Promise<Sealed> {
  if (!options.recipientKey?.kid || options.recipientKey.crv !== 'X25519') throw new ProtocolError('KEY_INVALID', 'Recipient key must be X25519 with a kid');
  const { sdJwt, jwt } = await signMessage(message, options.signingKey);
  const jwe = await encryptCompactJwe(utf8(sdJwt), await cryptoKeyFor(options.recipientKey, 'ECDH-ES+A256KW'), {
    kid: options.recipientKey.kid,
    typ: ENVELOPE_TYP,
    cty: ENVELOPE_CTY,
  });
  return { jwe, digest: sha256b64uSync(jwe), jwt };
}

export interface VerifyOptions {
  /** Our node id: the audience every message must name. */
  self?: string;
  /** The authenticated sender (from the transport); the inner signer must be this node. */
  expectedSender?: string;
  resolveSenderKey: SenderKeyResolver;
  now?: Date;
  maxSkewSeconds?: number;
  /** Accept only these message types. */
  expectedTypes?: readonly MessageType[];
  /** Skip the expiry check (auditors verify history, not liveness). */
  ignoreExpiry?: boolean;
}

export interface OpenOptions extends VerifyOptions {
  self: string;
  /** Our X25519 private keys by kid (current and recently rotated). */
  decryptionKey: (kid: string) => EncryptionKeyPair | undefined;
}

export interface VerifiedMessage extends Message {
  /** The issuer-signed JWT exactly as received. */
  jwt: string;
  /** Disclosures received (own and forwarded), exactly as received. */
  disclosures: string[];
  /** The signing key id. */
  kid: string;
  /** Present for onward messages: the verified original (signed part and the data passed on). */
  original?: VerifiedMessage;
  /** For each disclosed field: the digest it matched, by category then field name. */
  disclosedDigests: Record<string, Record<string, string>>;
}

export interface Opened extends VerifiedMessage {
  /** base64url SHA-256 of the exact JWE bytes received. */
  digest: string;
}

export async function open(jwe: string, options: OpenOptions): Promise<Opened> {
  const parsed = parseCompactJwe(jwe);
  const { header } = parsed;
  const key = options.decryptionKey(header.kid);
  // Unknown recipient key and failed decryption look the same from outside (one generic error).
  if (!key) throw new ProtocolError('DECRYPTION_FAILED');
  if (header.typ !== undefined && header.typ !== ENVELOPE_TYP) throw new ProtocolError('WRONG_TYPE', 'Unexpected JWE typ');
  if (header.cty !== undefined && header.cty !== ENVELOPE_CTY) throw new ProtocolError('WRONG_TYPE', 'Unexpected JWE cty');
  const plaintext = await decryptCompactJwe(parsed, await cryptoKeyFor(key.privateJwk, 'ECDH-ES+A256KW'));
  const verified = await verifySdJwtMessage(fromUtf8(plaintext), options);
  // Computed on first use: a node already hashed the request body it received.
  let digest: string | undefined;
  return Object.defineProperty(verified, 'digest', { enumerable: true, get: () => (digest ??= sha256b64uSync(jwe)) }) as Opened;
}

/**
 * Verifies a message's SD-JWT (with all, some or none of its disclosures). This is what a recipient
 * does after decryption and what an auditor does with the signed part alone.
 */
export async function verifySdJwtMessage(sdJwt: string, options: VerifyOptions): Promise<VerifiedMessage> {
  if (sdJwt.length > MAX_COMPACT_LENGTH) throw new ProtocolError('TOO_LARGE');
  const { jwt, disclosures } = splitSdJwt(sdJwt);
  return verifyMessageJwt(jwt, disclosures, options, 0);
}

/** ECMAScript's largest time value (ECMA-262 §21.4.1.1), in seconds. */
const MAX_DATE_SECONDS = 8_640_000_000_000;

function claimsToHeader(p: Record<string, unknown>): Record<string, unknown> {
  // Beyond the largest representable date a number stays a number, so the schema refuses it (SCHEMA_INVALID).
  const num = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_DATE_SECONDS ? toTimestamp(v * 1000) : v);
  return {
    id: p.jti,
    type: p.type,
    from: p.iss,
    to: p.aud,
    created: num(p.iat),
    expires: num(p.exp),
    threadId: p.thread,
    agreementId: p.agreement,
    ...(p.consent !== undefined ? { consentId: p.consent } : {}),
    purpose: p.purpose,
    categories: p.categories,
  };
}

const ALLOWED_CLAIMS = new Set(['iss', 'aud', 'jti', 'iat', 'exp', 'type', 'thread', 'agreement', 'consent', 'purpose', 'categories', 'body', 'data', 'consent_record', 'provenance', '_sd_alg']);

async function verifyMessageJwt(jwt: string, disclosures: string[], options: VerifyOptions, depth: number): Promise<VerifiedMessage> {
  const parsed = parseCompactJws(jwt, MESSAGE_TYPS);
  const type = messageTypeFromTyp(parsed.header.typ)!;
  if (options.expectedTypes && !options.expectedTypes.includes(type)) throw new ProtocolError('WRONG_TYPE', `Unexpected message type ${type}`);
  // Unverified peek, used only to pick the key: the issuer is checked against the transport first.
  const claimed = parseJsonObject(fromUtf8(fromB64u(parsed.payloadB64)));
  if (typeof claimed.iss !== 'string' || typeof claimed.iat !== 'number') throw new ProtocolError('SCHEMA_INVALID', 'iss and iat are required');
  if (depth === 0 && options.expectedSender !== undefined && claimed.iss !== options.expectedSender) throw new ProtocolError('SENDER_MISMATCH');
  const signedAt = new Date(claimed.iat * 1000);
  const jwk = await options.resolveSenderKey(claimed.iss, parsed.header.kid, signedAt);
  if (!jwk) throw new ProtocolError('KEY_UNKNOWN');
  // The claims parsed above came from the very bytes the signature covers, so once it verifies they are the payload.
  await verifyParsedSignature(parsed, jwk);
  const p = claimed;
  for (const name of Object.keys(p)) {
    if (!ALLOWED_CLAIMS.has(name)) throw new ProtocolError('SCHEMA_INVALID', `Unknown claim ${name.slice(0, 32)}`);
  }
  if (p.type !== type) throw new ProtocolError('WRONG_TYPE', 'typ and type disagree');
  if (p._sd_alg !== SD_ALG) throw new ProtocolError('UNSUPPORTED_ALGORITHM', 'Only sha-256 disclosures');
  if (depth === 0 && options.self !== undefined && p.aud !== options.self) throw new ProtocolError('AUDIENCE_MISMATCH');
  const now = options.now ?? new Date();
  const nowSec = Math.floor(now.getTime() / 1000);
  const skew = options.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  if (depth === 0 && typeof p.iat === 'number' && p.iat > nowSec + skew) {
    throw new ProtocolError('CLOCK_SKEW', 'Message created in the future', { serverTime: toTimestamp(now) });
  }
  if (depth === 0 && !options.ignoreExpiry && typeof p.exp === 'number' && p.exp <= nowSec) throw new ProtocolError('EXPIRED');

  // Own disclosures first; the rest must belong to the forwarded original.
  const index = indexDisclosures(disclosures);
  const used = new Set<string>();
  const concealedData = p.data;
  if (!concealedData || typeof concealedData !== 'object' || Array.isArray(concealedData)) throw new ProtocolError('SCHEMA_INVALID', 'data must be an object');
  const data: Record<string, Record<string, unknown>> = {};
  const disclosedDigests: Record<string, Record<string, string>> = {};
  for (const [category, section] of Object.entries(concealedData as Record<string, unknown>)) {
    const s = section as { _sd?: unknown } | undefined;
    if (!s || !Array.isArray(s._sd) || s._sd.length === 0 || Object.keys(s).length !== 1) {
      throw new ProtocolError('SCHEMA_INVALID', `data.${category.slice(0, 32)} must hold only a non-empty _sd array`);
    }
    const matched: Record<string, string> = {};
    data[category] = revealObject(section, index, used, matched);
    disclosedDigests[category] = matched;
  }
  const header = claimsToHeader(p);
  const def = definitionOf(type);
  // Structure-derived categories: an auditor gets the same answer with no disclosure in hand.
  const structural = DataCategory.options.filter((c) => Object.hasOwn(concealedData, c));
  let original: VerifiedMessage | undefined;
  const forwarded = [...index.keys()].filter((d) => !used.has(d));
  if (p.provenance !== undefined) {
    if (depth > 0) throw new ProtocolError('PROVENANCE_INVALID', 'Nested provenance is not allowed');
    const prov = p.provenance as { jwt?: unknown; disclosed?: unknown };
    if (!prov || typeof prov.jwt !== 'string' || !Array.isArray(prov.disclosed) || Object.keys(prov).length !== 2) {
      throw new ProtocolError('PROVENANCE_INVALID', 'Malformed provenance');
    }
    const disclosed = new Set(prov.disclosed as string[]);
    if (forwarded.some((d) => !disclosed.has(d))) throw new ProtocolError('DISCLOSURE_INVALID', 'Disclosure matches no digest');
    try {
      original = await verifyMessageJwt(prov.jwt, forwarded.map((d) => index.get(d)!.encoded), { ...options, ignoreExpiry: true }, depth + 1);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'DISCLOSURE_INVALID') throw e;
      throw new ProtocolError('PROVENANCE_INVALID', 'The original message does not verify', undefined, { cause: e });
    }
    const originalPayload = parseJsonObject(fromUtf8(fromB64u(parseCompactJws(prov.jwt).payloadB64)));
    // The forwarder signs the list of digests it passes on; each must name a field of the original.
    const originalDigests = new Set(
      Object.values((originalPayload.data ?? {}) as Record<string, { _sd?: unknown }>).flatMap((s) => (Array.isArray(s?._sd) ? (s._sd as string[]) : [])),
    );
    if (disclosed.size !== prov.disclosed.length || [...disclosed].some((d) => typeof d !== 'string' || !originalDigests.has(d))) {
      throw new ProtocolError('PROVENANCE_INVALID', 'Provenance lists a digest the original does not hold');
    }
    for (const c of categoriesOfDigests(originalPayload, new Map([...disclosed].map((d) => [d, true])))) {
      if (!structural.includes(c)) structural.push(c);
    }
  } else if (forwarded.length > 0) {
    throw new ProtocolError('DISCLOSURE_INVALID', 'Disclosure matches no digest');
  }
  if (!Array.isArray(header.categories) || !sameCategories(header.categories as string[], structural)) {
    throw new ProtocolError('CATEGORIES_MISMATCH');
  }
  const valid = validateMessage(def, { header, body: p.body, data });
  if (def.requiresConsent && !valid.header.consentId) throw new ProtocolError('CONSENT_MISSING');
  if (p.consent_record !== undefined && typeof p.consent_record !== 'string') throw new ProtocolError('SCHEMA_INVALID', 'consent_record must be a compact JWS');
  return {
    header: valid.header as MessageHeader,
    body: valid.body,
    data: valid.data as Record<string, unknown>,
    ...(typeof p.consent_record === 'string' ? { consentRecord: p.consent_record } : {}),
    jwt,
    disclosures,
    kid: parsed.header.kid,
    disclosedDigests,
    ...(original ? { original } : {}),
  };
}

/**
 * A presentation of a verified message keeping only the selected fields (RFC 9901 §4 presentation):
 * the issuer-signed JWT is unchanged, so the original signature stays valid.
 */
export function present(message: VerifiedMessage, select: Partial<Record<DataCategory, readonly string[] | true>>): { jwt: string; disclosures: string[] } {
  const keep = new Set<string>();
  for (const [category, fields] of Object.entries(select)) {
    const digests = message.disclosedDigests[category] ?? {};
    for (const [field, digest] of Object.entries(digests)) {
      if (fields === true || (fields as readonly string[]).includes(field)) keep.add(digest);
    }
  }
  const index = indexDisclosures(message.disclosures);
  return { jwt: message.jwt, disclosures: [...keep].map((d) => index.get(d)!.encoded) };
}
