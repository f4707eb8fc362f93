/**
 * Shared material for the adversarial suite: one set of genuine signed and sealed objects (message,
 * receipt, consent, node document, agreement), the verifiers an attacker can reach, and the tools
 * an attacker would use (re-signing under any header, HMAC, a hand-rolled ECDH-ES+A256KW encryptor
 * that accepts any protected header or ephemeral key).
 */
import { expect } from 'vitest';
import {
  b64u,
  b64uJson,
  createAgreement,
  createNodeDocument,
  cryptoKeyFor,
  ERROR_CODES,
  fromB64u,
  fromUtf8,
  joinSdJwt,
  MESSAGE_TYPS,
  nodeKeyEntry,
  open,
  parseJsonObject,
  ProtocolError,
  seal,
  signAgreement,
  signConsent,
  signMessage,
  signReceipt,
  toTimestamp,
  utf8,
  verifyAgreement,
  verifyCompact,
  verifyConsent,
  verifyNodeDocument,
  verifyReceipt,
  verifySdJwtMessage,
  type Agreement,
  type ConsentRecord,
  type ErrorCode,
  type GeneralJws,
  type NodeKeyResolver,
  type OpenOptions,
  type PublicEncryptionJwk,
  type Sealed,
  type SigningKeyPair,
  type VerifyReceiptOptions,
} from '../../src/index.js';
import { CONSENT_ID, org, resolverFor, sampleReferral, type Org } from '../fixtures.js';

export { AGREEMENT_ID, CONSENT_ID, org, resolverFor, sampleReferral, type Org } from '../fixtures.js';

export const BE = 'https://accueil.example.be';
export const SN = 'https://reintegration.example.sn';
export const FR = 'https://corridor.example.fr';
export const EVIL = 'https://intrus.example.org';

// ---------------------------------------------------------------------------------------------
// Errors

const NOTHING_THROWN = Symbol('nothing thrown');

/** Runs `step` and returns what it threw, or NOTHING_THROWN. */
export async function caught(step: () => unknown): Promise<unknown> {
  try {
    await step();
  } catch (e) {
    return e;
  }
  return NOTHING_THROWN;
}

export function isNothingThrown(value: unknown): boolean {
  return value === NOTHING_THROWN;
}

/** The code a wrapping verifier (receipt, consent, agreement) reports as the underlying reason. */
export function reasonOf(error: ProtocolError): string | undefined {
  const reason = error.details?.reason;
  if (typeof reason === 'string') return reason;
  return error.cause instanceof ProtocolError ? error.cause.code : undefined;
}

/**
 * Asserts that `step` throws a ProtocolError with `code`. When `wrappedIn` is given, the verifier
 * reports its own code and names `code` as the reason (details.reason or the cause).
 */
export async function expectCode(step: () => unknown, code: ErrorCode, wrappedIn?: ErrorCode, label?: string): Promise<ProtocolError> {
  const error = await caught(step);
  expect(error, `${label ?? ''} should throw ${code}`).toBeInstanceOf(ProtocolError);
  const e = error as ProtocolError;
  if (wrappedIn && wrappedIn !== code) {
    expect(e.code, label).toBe(wrappedIn);
    expect(reasonOf(e), label).toBe(code);
  } else {
    expect(e.code, label).toBe(code);
  }
  return e;
}

/** The fuzzing contract: anything thrown is a ProtocolError with a catalogued code. */
export function assertProtocolError(error: unknown): asserts error is ProtocolError {
  if (!(error instanceof ProtocolError)) {
    throw new Error(`Expected a ProtocolError, got ${String((error as Error)?.stack ?? error)}`);
  }
  if (!Object.hasOwn(ERROR_CODES, error.code)) throw new Error(`Unknown error code ${String(error.code)}`);
}

// ---------------------------------------------------------------------------------------------
// Encoding and signing as an attacker would

export function segmentOf(json: string): string {
  return b64u(utf8(json));
}

export function decodeSegment(segment: string): Record<string, unknown> {
  return parseJsonObject(fromUtf8(fromB64u(segment)));
}

export function compactParts(token: string): [string, string, string] {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('expected a compact JWS');
  return parts as [string, string, string];
}

/** A genuine Ed25519 signature by `key` over `protected.payload` (RFC 7515 §5.1), whatever the header says. */
export async function ed25519Signature(key: SigningKeyPair, protectedB64: string, payloadB64: string): Promise<string> {
  const signature = await crypto.subtle.sign('Ed25519', await cryptoKeyFor(key.privateJwk, 'EdDSA'), utf8(`${protectedB64}.${payloadB64}`) as Uint8Array<ArrayBuffer>);
  return b64u(new Uint8Array(signature));
}

export async function hmacSha256(secret: Uint8Array, input: string, hash: 'SHA-256' | 'SHA-512' = 'SHA-256'): Promise<string> {
  const key = await crypto.subtle.importKey('raw', secret as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash }, false, ['sign']);
  return b64u(new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8(input) as Uint8Array<ArrayBuffer>)));
}

/** A compact JWS with the given header (object or raw JSON text) over `payloadB64`, signed by `key`. */
export async function signWithHeader(header: Record<string, unknown> | string, payloadB64: string, key: SigningKeyPair): Promise<string> {
  const protectedB64 = typeof header === 'string' ? segmentOf(header) : b64uJson(header);
  return `${protectedB64}.${payloadB64}.${await ed25519Signature(key, protectedB64, payloadB64)}`;
}

/** Re-signs `token`'s payload after `edit`, under the same typ (what a malicious but legitimate signer can do). */
export async function resignPayload(token: string, key: SigningKeyPair, edit: (payload: Record<string, unknown>) => Record<string, unknown>, typ?: string): Promise<string> {
  const [protectedB64, payloadB64] = compactParts(token);
  const header = decodeSegment(protectedB64);
  const payload = edit(structuredClone(decodeSegment(payloadB64)));
  return signWithHeader({ alg: 'EdDSA', typ: typ ?? header.typ, kid: key.kid }, b64uJson(payload), key);
}

export function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** Changes one bit of the decoded segment and re-encodes it canonically. */
export function flipBit(segment: string, byteIndex: number, bit: number): string {
  const bytes = new Uint8Array(fromB64u(segment));
  const i = byteIndex < 0 ? bytes.length + byteIndex : byteIndex;
  bytes[i] = bytes[i]! ^ (1 << bit);
  return b64u(bytes);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The same bytes under another base64url spelling: a stray bit in the unused low bits of the last
 * character. Only possible when the length leaves unused bits (length % 4 of 2 or 3).
 */
export function strayTrailingBits(segment: string): string {
  if (segment.length % 4 !== 2 && segment.length % 4 !== 3) throw new Error('segment has no unused bits');
  const last = ALPHABET.indexOf(segment[segment.length - 1]!);
  return segment.slice(0, -1) + ALPHABET[last ^ 1]!;
}

export function replacePart(token: string, index: number, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

// ---------------------------------------------------------------------------------------------
// ECDH-ES+A256KW with A256GCM (RFC 7518 §4.6, §4.4, §5.3) written out, so that a test can encrypt
// under any protected header or ephemeral key, or with a shared secret an attacker forces.

function uint32be(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function concat(...chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Concat KDF (NIST SP 800-56A §5.8.1, RFC 7518 §4.6.2) for a 256-bit key and empty apu/apv. */
async function concatKdf(z: Uint8Array, alg: string): Promise<Uint8Array> {
  const algId = utf8(alg);
  const input = concat(uint32be(1), z, uint32be(algId.length), algId, uint32be(0), uint32be(0), uint32be(256));
  return new Uint8Array(await crypto.subtle.digest('SHA-256', input));
}

export interface EncryptOptions {
  /** Members merged into the standard header (undefined removes a member). */
  header?: Record<string, unknown>;
  /** Ephemeral public key bytes to announce instead of a fresh one (requires `sharedSecret`). */
  epkX?: Uint8Array;
  /** The ECDH output to derive the key-wrapping key from (for a forced, known shared secret). */
  sharedSecret?: Uint8Array;
  /** Rewrites the protected header's JSON text before encoding (whitespace, duplicate members). */
  rawHeader?: (json: string) => string;
  /** Plaintext transformation recorded in the header, for example DEFLATE with zip. */
  compress?: (plaintext: Uint8Array) => Promise<Uint8Array>;
}

/** A compact JWE to `recipient`, encrypted for real; `open` decrypts it unless the header is refused. */
export async function encryptCompact(plaintext: string, recipient: PublicEncryptionJwk & { kid?: string }, options: EncryptOptions = {}): Promise<string> {
  let epkX: Uint8Array;
  let z: Uint8Array;
  if (options.epkX) {
    if (!options.sharedSecret) throw new Error('a forced epk needs the shared secret');
    epkX = options.epkX;
    z = options.sharedSecret;
  } else {
    const eph = (await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair;
    epkX = new Uint8Array(await crypto.subtle.exportKey('raw', eph.publicKey));
    const peer = await crypto.subtle.importKey('raw', fromB64u(recipient.x) as Uint8Array<ArrayBuffer>, { name: 'X25519' }, false, []);
    z = options.sharedSecret ?? new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: peer }, eph.privateKey, 256));
  }
  const header: Record<string, unknown> = {
    alg: 'ECDH-ES+A256KW',
    enc: 'A256GCM',
    kid: recipient.kid,
    typ: 'passerelle-message+jwe',
    cty: 'sd-jwt',
    epk: { kty: 'OKP', crv: 'X25519', x: b64u(epkX) },
    ...options.header,
  };
  for (const name of Object.keys(header)) if (header[name] === undefined) delete header[name];
  const json = JSON.stringify(header);
  const protectedB64 = segmentOf(options.rawHeader ? options.rawHeader(json) : json);
  const kek = await crypto.subtle.importKey('raw', (await concatKdf(z, String(header.alg))) as Uint8Array<ArrayBuffer>, 'AES-KW', false, ['wrapKey']);
  const cek = await crypto.subtle.importKey('raw', randomBytes(32) as Uint8Array<ArrayBuffer>, 'AES-GCM', true, ['encrypt']);
  const encryptedKey = new Uint8Array(await crypto.subtle.wrapKey('raw', cek, kek, 'AES-KW'));
  const iv = randomBytes(12);
  let bytes = utf8(plaintext);
  if (options.compress) bytes = await options.compress(bytes);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: iv as Uint8Array<ArrayBuffer>, additionalData: utf8(protectedB64) as Uint8Array<ArrayBuffer>, tagLength: 128 },
      cek,
      bytes as Uint8Array<ArrayBuffer>,
    ),
  );
  const ciphertext = sealed.slice(0, sealed.length - 16);
  const tag = sealed.slice(sealed.length - 16);
  return [protectedB64, b64u(encryptedKey), b64u(iv), b64u(ciphertext), b64u(tag)].join('.');
}

export async function deflateRaw(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// ---------------------------------------------------------------------------------------------
// Curve25519 u-coordinates (RFC 7748 §5)

export const CURVE25519_P = 2n ** 255n - 19n;

export function uBytes(u: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = u;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return result;
}

/** Whether u lies on Curve25519 itself (u^3 + 486662u^2 + u is a square mod p) rather than on its twist. */
export function onCurve25519(u: bigint): boolean {
  const p = CURVE25519_P;
  const rhs = (((u * u) % p) * u + 486662n * ((u * u) % p) + u) % p;
  return rhs === 0n || modPow(rhs, (p - 1n) / 2n, p) === 1n;
}

/** u-coordinates whose X25519 output is all zero for every private key (points of order 1, 2, 4, 8, and non-canonical forms). */
export const SMALL_ORDER_U: readonly { name: string; bytes: Uint8Array }[] = [
  { name: 'u = 0', bytes: uBytes(0n) },
  { name: 'u = 1 (order 4)', bytes: uBytes(1n) },
  { name: 'u of order 8 (a)', bytes: uBytes(325606250916557431795983626356110631294008115727848805560023387167927233504n) },
  { name: 'u of order 8 (b)', bytes: uBytes(39382357235489614581723060781553021112529911719440698176882885853963445705823n) },
  { name: 'u = p - 1 (order 2)', bytes: uBytes(CURVE25519_P - 1n) },
  { name: 'u = p (non-canonical 0)', bytes: uBytes(CURVE25519_P) },
  { name: 'u = p + 1 (non-canonical 1)', bytes: uBytes(CURVE25519_P + 1n) },
  { name: 'u = 2^255 (masked to 0)', bytes: uBytes(2n ** 255n) },
];

// ---------------------------------------------------------------------------------------------
// One set of genuine objects and the verifiers that face the network

export interface World {
  be: Org;
  sn: Org;
  fr: Org;
  /** An outsider with keys of its own, in nobody's trust store. */
  mallory: Org;
  resolveNode: NodeKeyResolver;
  message: { jwt: string; disclosures: string[]; sdJwt: string };
  sealed: Sealed;
  openAsSn: (jwe: string, extra?: Partial<OpenOptions>) => ReturnType<typeof open>;
  receipt: { token: string; options: VerifyReceiptOptions };
  consent: { jws: string; record: ConsentRecord };
  nodeDocument: { jws: GeneralJws; now: Date };
  agreement: { jws: GeneralJws; agreement: Agreement; now: Date };
}

export const CONSENT_RECORD: ConsentRecord = {
  id: CONSENT_ID,
  version: 1,
  subject: 'case-be-2026-0042',
  controller: BE,
  purposes: ['reintegration-planning', 'referral'],
  recipients: [SN],
  categories: ['identity', 'contact', 'health', 'return-travel'],
  explicitConsent: ['health'],
  collection: {
    method: 'oral',
    interpreter: { kind: 'intercultural-mediator', language: 'wo' },
    language: 'fr',
    text: { version: 'consent-text-v3', digest: 'RHK4k5arg_rZE41AtAyZDJScwYK8K6V98Owvy98qNUs' },
  },
  collectedAt: '2026-03-02T10:30:00Z',
  expiresAt: '2026-09-02T10:30:00Z',
  collectedBy: { role: 'social-worker', staffRef: 'staff-be-117' },
};

export async function world(): Promise<World> {
  const [be, sn, fr, mallory] = await Promise.all([org(BE), org(SN), org(FR), org(EVIL)]);
  const resolveNode: NodeKeyResolver = resolverFor(be, sn, fr);
  const signed = await signMessage(sampleReferral(be, sn), be.sig);
  const disclosures = signed.disclosures.map((d) => d.encoded);
  const sealed = await seal(sampleReferral(be, sn), { signingKey: be.sig, recipientKey: sn.enc.publicJwk as PublicEncryptionJwk & { kid: string } });
  const openAsSn = (jwe: string, extra: Partial<OpenOptions> = {}) =>
    open(jwe, {
      self: sn.id,
      expectedSender: be.id,
      decryptionKey: (kid) => (kid === sn.enc.kid ? sn.enc : undefined),
      resolveSenderKey: resolveNode,
      ...extra,
    });

  const messageId = '0192f3a0-0000-7000-8000-0000000000aa';
  const receiptToken = await signReceipt({ receiver: sn.id, sender: be.id, messageId, digest: sealed.digest, status: 'accepted', log: { index: 7 } }, sn.sig);
  const receiptOptions: VerifyReceiptOptions = {
    receiver: sn.id,
    sender: be.id,
    messageId,
    digest: sealed.digest,
    resolveKey: (kid) => (kid === sn.sig.kid ? sn.sig.publicJwk : undefined),
  };

  const consentJws = await signConsent(CONSENT_RECORD, be.sig);

  const now = new Date();
  const nodeJws = await createNodeDocument(
    {
      id: be.id,
      name: 'Accueil Exemple Belgique',
      country: 'BE',
      roles: ['reception-agency', 'return-counselling'],
      inbox: `${be.id}/passerelle/inbox`,
      keys: [nodeKeyEntry(be.sig, { notBefore: new Date(now.getTime() - 3_600_000) }), nodeKeyEntry(be.enc, { notBefore: new Date(now.getTime() - 3_600_000) })],
      messageTypes: ['referral', 'referral-response'],
      languages: ['fr', 'nl'],
      issuedAt: toTimestamp(new Date(now.getTime() - 60_000)),
    },
    [be.sig],
  );

  const agreement = createAgreement({
    title: 'Assisted return and reintegration, Belgium - Senegal',
    parties: [
      { node: BE, role: 'reception-agency', name: 'Accueil Exemple Belgique' },
      { node: SN, role: 'reintegration-partner', name: 'Réintégration Exemple Sénégal' },
    ],
    purposes: ['reintegration-planning', 'referral'],
    flows: [{ from: BE, to: SN, messageTypes: ['referral'], categories: ['identity', 'contact', 'health', 'return-travel'] }],
    onwardReferral: { allowed: false },
    retention: ['identity', 'contact', 'health', 'return-travel'].map((category) => ({ category, days: 365 })) as Agreement['retention'],
    legalBasis: { basis: 'consent', reference: 'MoU BE-SN/2026/01' },
    validFrom: '2026-01-01T00:00:00Z',
    validUntil: '2028-01-01T00:00:00Z',
    createdAt: '2025-12-15T09:00:00Z',
  });
  const agreementJws = await signAgreement(await signAgreement(agreement, BE, be.sig), SN, sn.sig);

  return {
    be,
    sn,
    fr,
    mallory,
    resolveNode,
    message: { jwt: signed.jwt, disclosures, sdJwt: signed.sdJwt },
    sealed,
    openAsSn,
    receipt: { token: receiptToken, options: receiptOptions },
    consent: { jws: consentJws, record: CONSENT_RECORD },
    nodeDocument: { jws: nodeJws, now },
    agreement: { jws: agreementJws, agreement, now: new Date('2026-03-10T14:00:00Z') },
  };
}

/**
 * One place where a compact JWS (or one signature of a general JWS) reaches a verifier. `wrappedIn`
 * is the verifier's own code when it reports the underlying failure as a reason.
 */
export interface JwsSurface {
  name: string;
  typ: string;
  /** The legitimate signer of the original object. */
  key: SigningKeyPair;
  protectedB64: string;
  payloadB64: string;
  signatureB64: string;
  wrappedIn?: ErrorCode;
  verify: (compact: string) => Promise<unknown>;
}

export function jwsSurfaces(w: World): JwsSurface[] {
  const [mp, mpay, msig] = compactParts(w.message.jwt);
  const [rp, rpay, rsig] = compactParts(w.receipt.token);
  const [cp, cpay, csig] = compactParts(w.consent.jws);
  const nd = w.nodeDocument.jws;
  const ag = w.agreement.jws;
  const message = { protectedB64: mp, payloadB64: mpay, signatureB64: msig, typ: 'passerelle-referral+sd-jwt', key: w.be.sig };
  const asGeneral = (compact: string, rest: GeneralJws['signatures']): GeneralJws => {
    const [p, payload, s] = compactParts(compact);
    return { payload, signatures: [{ protected: p, signature: s }, ...rest] };
  };
  return [
    {
      name: 'open() of a sealed message',
      ...message,
      verify: async (c) => w.openAsSn(await encryptCompact(joinSdJwt(c, w.message.disclosures), w.sn.enc.publicJwk)),
    },
    {
      name: 'verifySdJwtMessage',
      ...message,
      verify: (c) => verifySdJwtMessage(joinSdJwt(c, w.message.disclosures), { resolveSenderKey: w.resolveNode, self: w.sn.id, expectedSender: w.be.id }),
    },
    {
      name: 'verifyCompact',
      ...message,
      verify: (c) => verifyCompact(c, MESSAGE_TYPS, (kid) => w.resolveNode(w.be.id, kid, new Date())),
    },
    {
      name: 'verifyReceipt',
      protectedB64: rp,
      payloadB64: rpay,
      signatureB64: rsig,
      typ: 'passerelle-receipt+jwt',
      key: w.sn.sig,
      wrappedIn: 'RECEIPT_INVALID',
      verify: (c) => verifyReceipt(c, w.receipt.options),
    },
    {
      name: 'verifyConsent',
      protectedB64: cp,
      payloadB64: cpay,
      signatureB64: csig,
      typ: 'passerelle-consent+jwt',
      key: w.be.sig,
      wrappedIn: 'CONSENT_INVALID',
      verify: (c) => verifyConsent(c, w.resolveNode),
    },
    {
      name: 'verifyNodeDocument',
      protectedB64: nd.signatures[0]!.protected,
      payloadB64: nd.payload,
      signatureB64: nd.signatures[0]!.signature,
      typ: 'passerelle-node+json',
      key: w.be.sig,
      verify: (c) => verifyNodeDocument(asGeneral(c, []), { now: w.nodeDocument.now, pinnedFingerprints: [w.be.sig.kid] }),
    },
    {
      name: 'verifyAgreement',
      protectedB64: ag.signatures[0]!.protected,
      payloadB64: ag.payload,
      signatureB64: ag.signatures[0]!.signature,
      typ: 'passerelle-agreement+json',
      key: w.be.sig,
      wrappedIn: 'AGREEMENT_INVALID',
      verify: (c) => verifyAgreement(asGeneral(c, ag.signatures.slice(1)), w.resolveNode, { now: w.agreement.now }),
    },
  ];
}

export function originalCompact(s: JwsSurface): string {
  return `${s.protectedB64}.${s.payloadB64}.${s.signatureB64}`;
}

/** The header the legitimate signer used: alg, typ and kid. */
export function baseHeader(s: JwsSurface): Record<string, unknown> {
  return { alg: 'EdDSA', typ: s.typ, kid: s.key.kid };
}

export type SignatureMode =
  /** No signature at all (the classic `alg: none` form). */
  | 'empty'
  /** The legitimate signature of the original header, left in place. */
  | 'original'
  /** A valid Ed25519 signature by the legitimate key over the forged header: only the policy can refuse it. */
  | 'resigned'
  /** A signature by the outsider's own key. */
  | 'mallory'
  | { random: number };

export async function forge(s: JwsSurface, header: Record<string, unknown> | string, mode: SignatureMode, mallory?: SigningKeyPair): Promise<string> {
  const protectedB64 = typeof header === 'string' ? segmentOf(header) : b64uJson(header);
  let signature: string;
  if (mode === 'empty') signature = '';
  else if (mode === 'original') signature = s.signatureB64;
  else if (mode === 'resigned') signature = await ed25519Signature(s.key, protectedB64, s.payloadB64);
  else if (mode === 'mallory') signature = await ed25519Signature(mallory!, protectedB64, s.payloadB64);
  else signature = b64u(randomBytes(mode.random));
  return `${protectedB64}.${s.payloadB64}.${signature}`;
}

/** Asserts that every surface refuses the token built by `make` with `code`. */
export async function expectRefusedEverywhere(
  surfaces: readonly JwsSurface[],
  make: (s: JwsSurface) => Promise<string> | string,
  code: ErrorCode,
): Promise<void> {
  for (const s of surfaces) {
    const token = await make(s);
    await expectCode(() => s.verify(token), code, s.wrappedIn, s.name);
  }
}
