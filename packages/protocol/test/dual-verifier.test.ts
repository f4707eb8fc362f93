/**
 * Two independent Ed25519 verifiers must agree on every signed object in spec/vectors/: the
 * library's path (jose over WebCrypto: verifyCompact / verifyGeneral) and the strict second one
 * (@noble/ed25519 with RFC 8032 decoding, zip215 off and small-order keys refused:
 * verifyCompactWithNoble / verifyEd25519Strict). A disagreement means one of them accepts a
 * signature the other does not, which an attacker could aim at (spec/protocol.md §11).
 *
 * Objects are found by walking every vector file: compact JWS strings, SD-JWTs (their issuer-signed
 * JWT), general JWS objects, compact JWEs (decrypted with the test keys in keys.json), and the
 * signed objects nested in payloads (consent records, provenance, checkpoints).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as ed from '@noble/ed25519';
import { compactDecrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  b64u,
  cryptoKeyFor,
  fromB64u,
  fromUtf8,
  parseCompactJws,
  ProtocolError,
  thumbprint,
  utf8,
  verifyCompact,
  verifyCompactWithNoble,
  verifyEd25519Strict,
  verifyGeneral,
  type GeneralJws,
  type PrivateJwk,
  type PublicSigningJwk,
} from '../src/index.js';

const VECTORS_DIR = new URL('../../../spec/vectors/', import.meta.url);
const files = readdirSync(VECTORS_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const parsed = new Map(files.map((f) => [f, JSON.parse(readFileSync(new URL(f, VECTORS_DIR), 'utf8')) as unknown]));

// ---------------------------------------------------------------------------------------------
// Keys: keys.json, plus every Ed25519 public JWK that appears in any vector file.

interface KeyEntry {
  kid: string;
  use: 'sig' | 'enc';
  publicJwk: PublicSigningJwk;
  privateJwk: PrivateJwk;
}
const testKeys = (parsed.get('keys.json') as { keys: KeyEntry[] }).keys;

function* walk(value: unknown): Generator<unknown> {
  yield value;
  if (Array.isArray(value)) for (const v of value) yield* walk(v);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) yield* walk(v);
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;
const COMPACT_JWE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){4}$/;

function decodeJson(segment: string): unknown {
  try {
    return JSON.parse(fromUtf8(fromB64u(segment)));
  } catch {
    return undefined;
  }
}

function isGeneralJws(value: unknown): value is GeneralJws {
  return (
    !!value &&
    typeof value === 'object' &&
    typeof (value as GeneralJws).payload === 'string' &&
    Array.isArray((value as GeneralJws).signatures) &&
    (value as GeneralJws).signatures.every((s) => s && typeof s.protected === 'string' && typeof s.signature === 'string')
  );
}

interface Corpus {
  compact: Set<string>;
  general: Map<string, GeneralJws>;
  signingKeys: Map<string, PublicSigningJwk>;
  jwes: number;
  decrypted: number;
}

async function collect(): Promise<Corpus> {
  const corpus: Corpus = { compact: new Set(), general: new Map(), signingKeys: new Map(), jwes: 0, decrypted: 0 };
  for (const k of testKeys) if (k.use === 'sig') corpus.signingKeys.set(k.kid, k.publicJwk);
  const decryptionKeys = new Map(testKeys.filter((k) => k.use === 'enc').map((k) => [k.kid, k.privateJwk]));
  const seenStrings = new Set<string>();

  const visitValue = async (root: unknown): Promise<void> => {
    for (const value of walk(root)) {
      if (typeof value === 'string') await visitString(value);
      else if (isGeneralJws(value)) {
        const id = JSON.stringify(value);
        if (!corpus.general.has(id)) {
          corpus.general.set(id, value);
          await visitValue(decodeJson(value.payload));
        }
      } else if (value && typeof value === 'object' && (value as PublicSigningJwk).kty === 'OKP' && (value as PublicSigningJwk).crv === 'Ed25519') {
        const jwk = value as PublicSigningJwk;
        if (typeof jwk.x === 'string' && /^[A-Za-z0-9_-]{43}$/.test(jwk.x)) {
          corpus.signingKeys.set(await thumbprint(jwk), { kty: 'OKP', crv: 'Ed25519', x: jwk.x });
        }
      }
    }
  };

  const visitString = async (value: string): Promise<void> => {
    if (seenStrings.has(value) || value.length < 20) return;
    seenStrings.add(value);
    if (value.includes('~')) {
      await visitString(value.split('~')[0]!);
      return;
    }
    if (COMPACT_JWE.test(value)) {
      corpus.jwes++;
      const header = decodeJson(value.split('.')[0]!) as { kid?: string } | undefined;
      const key = header?.kid ? decryptionKeys.get(header.kid) : undefined;
      if (!key) return;
      try {
        const { plaintext } = await compactDecrypt(value, await cryptoKeyFor(key, 'ECDH-ES+A256KW'));
        corpus.decrypted++;
        await visitString(fromUtf8(plaintext));
      } catch {
        // Deliberately damaged envelopes do not decrypt; there is nothing signed to look at.
      }
      return;
    }
    if (COMPACT_JWS.test(value)) {
      const [h, p] = value.split('.') as [string, string];
      if (!decodeJson(h)) return;
      corpus.compact.add(value);
      await visitValue(decodeJson(p));
    }
  };

  for (const [name, content] of parsed) if (name !== 'keys.json') await visitValue(content);
  return corpus;
}

// ---------------------------------------------------------------------------------------------
// Verdicts

/** jose's verdict on the signature alone: payload problems found after it verified do not count against it. */
async function joseCompact(token: string, typ: string, jwk: PublicSigningJwk): Promise<boolean> {
  try {
    await verifyCompact(token, typ, () => jwk);
    return true;
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'SIGNATURE_INVALID') return false;
    if (e instanceof ProtocolError && (e.code === 'MALFORMED' || e.code === 'TOO_LARGE')) return true;
    throw e;
  }
}

async function joseGeneral(jws: GeneralJws, typ: string, jwk: PublicSigningJwk): Promise<boolean> {
  try {
    await verifyGeneral(jws, typ, () => jwk);
    return true;
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'SIGNATURE_INVALID') return false;
    if (e instanceof ProtocolError && (e.code === 'MALFORMED' || e.code === 'TOO_LARGE')) return true;
    throw e;
  }
}

/** Flips bit 6 of one byte: the vectors' own corruptions flip bit 0, so this never undoes one of them. */
function flip(segment: string, byteIndex: number): string {
  const bytes = fromB64u(segment);
  bytes[byteIndex] = bytes[byteIndex]! ^ 0x40;
  return b64u(bytes);
}

interface Case {
  name: string;
  token: string;
  typ: string;
  jwk: PublicSigningJwk;
}

const corpus = await collect();
const compactCases: Case[] = [];
const skipped = { policy: 0, unknownKey: 0 };
for (const token of corpus.compact) {
  let header;
  try {
    // Objects the JOSE policy refuses never reach a verifier (jose-policy.json covers them).
    ({ header } = parseCompactJws(token));
  } catch {
    skipped.policy++;
    continue;
  }
  const jwk = corpus.signingKeys.get(header.kid);
  if (!jwk) {
    skipped.unknownKey++;
    continue;
  }
  compactCases.push({ name: `#${compactCases.length} ${header.typ}`, token, typ: header.typ, jwk });
}

interface GeneralCase {
  name: string;
  jws: GeneralJws;
  typ: string;
  jwk: PublicSigningJwk;
}
const generalCases: GeneralCase[] = [];
for (const jws of corpus.general.values()) {
  for (const sig of jws.signatures) {
    let header;
    try {
      ({ header } = parseCompactJws(`${sig.protected}.${jws.payload}.${sig.signature}`));
    } catch {
      skipped.policy++;
      continue;
    }
    const jwk = corpus.signingKeys.get(header.kid);
    if (!jwk) {
      skipped.unknownKey++;
      continue;
    }
    generalCases.push({ name: `#${generalCases.length} ${header.typ}`, jws: { payload: jws.payload, signatures: [sig] }, typ: header.typ, jwk });
  }
}

describe('dual verification of every signed object in spec/vectors', () => {
  it('finds the signed objects of every vector file, including those inside envelopes', () => {
    expect(compactCases.length).toBeGreaterThan(60);
    expect(generalCases.length).toBeGreaterThan(10);
    expect(corpus.decrypted).toBeGreaterThan(10);
    const typs = new Set([...compactCases.map((c) => c.typ), ...generalCases.map((c) => c.typ)]);
    for (const typ of ['passerelle-referral+sd-jwt', 'passerelle-receipt+jwt', 'passerelle-consent+jwt', 'passerelle-checkpoint+jwt', 'passerelle-node+json']) {
      expect(typs, typ).toContain(typ);
    }
  });

  it.each(compactCases.map((c) => [c.name, c] as const))('compact %s: jose and noble agree, and both refuse it corrupted', async (_n, c) => {
    const jose = await joseCompact(c.token, c.typ, c.jwk);
    const noble = await verifyCompactWithNoble(c.token, c.jwk);
    expect(noble).toBe(jose);

    const [h, p, s] = c.token.split('.') as [string, string, string];
    for (const corrupted of [`${h}.${p}.${flip(s, 0)}`, `${h}.${p}.${flip(s, 40)}`, ...(p ? [`${h}.${flip(p, 0)}.${s}`] : [])]) {
      expect(await joseCompact(corrupted, c.typ, c.jwk)).toBe(false);
      expect(await verifyCompactWithNoble(corrupted, c.jwk)).toBe(false);
    }
  });

  it.each(generalCases.map((c) => [c.name, c] as const))('general %s: jose and noble agree, and both refuse it corrupted', async (_n, c) => {
    const sig = c.jws.signatures[0]!;
    const input = (payload: string, protectedB64 = sig.protected) => utf8(`${protectedB64}.${payload}`);
    const jose = await joseGeneral(c.jws, c.typ, c.jwk);
    const noble = await verifyEd25519Strict(input(c.jws.payload), fromB64u(sig.signature), fromB64u(c.jwk.x));
    expect(noble).toBe(jose);

    const badSig = flip(sig.signature, 31);
    expect(await joseGeneral({ payload: c.jws.payload, signatures: [{ protected: sig.protected, signature: badSig }] }, c.typ, c.jwk)).toBe(false);
    expect(await verifyEd25519Strict(input(c.jws.payload), fromB64u(badSig), fromB64u(c.jwk.x))).toBe(false);
    const badPayload = flip(c.jws.payload, 1);
    expect(await joseGeneral({ payload: badPayload, signatures: [sig] }, c.typ, c.jwk)).toBe(false);
    expect(await verifyEd25519Strict(input(badPayload), fromB64u(sig.signature), fromB64u(c.jwk.x))).toBe(false);
  });

  it('sees both verdicts: most objects verify, the deliberately tampered ones do not', async () => {
    const verdicts = await Promise.all(compactCases.map((c) => verifyCompactWithNoble(c.token, c.jwk)));
    expect(verdicts.filter(Boolean).length).toBeGreaterThan(50);
    expect(verdicts.filter((v) => !v).length).toBeGreaterThan(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Adversarial keys and signatures (after the ZIP-215 and Wycheproof edge cases noble tests)

const L = ed.Point.CURVE().n;
const le = (n: bigint) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const fromLe = (bytes: Uint8Array) => bytes.reduceRight((acc, b) => (acc << 8n) | BigInt(b), 0n);
const hexBytes = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));

/** Encodings of points of order 1, 2, 4 and 8 (the identity is 01 00..00). */
const SMALL_ORDER_KEYS = {
  'identity (order 1)': '0100000000000000000000000000000000000000000000000000000000000000',
  'order 2': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'order 4': '0000000000000000000000000000000000000000000000000000000000000000',
  'order 4, sign bit set': '0000000000000000000000000000000000000000000000000000000000000080',
  'order 8': '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'order 8, other': 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
} as const;

/**
 * Forges a JWS "signed" by a small-order key A without any private key: pick r, R = [r]B, S = r;
 * then [S]B = R + [k]A holds whenever [k]A is the identity, which a verifier that accepts
 * small-order keys (and checks the cofactored equation) takes as valid.
 */
async function forge(publicKey: Uint8Array): Promise<string> {
  const A = ed.Point.fromBytes(publicKey, true);
  const header = b64u(utf8(JSON.stringify({ alg: 'EdDSA', typ: 'passerelle-receipt+jwt', kid: 'small-order-key' })));
  const payload = b64u(utf8(JSON.stringify({ iss: 'https://outsider.example.net', status: 'accepted' })));
  const message = utf8(`${header}.${payload}`);
  for (let r = 1n; r < 10_000n; r++) {
    const R = ed.Point.BASE.multiply(r).toBytes();
    const h = new Uint8Array(await crypto.subtle.digest('SHA-512', new Uint8Array([...R, ...publicKey, ...message])));
    const k = ed.etc.mod(fromLe(h), L);
    if (!A.multiplyUnsafe(k).is0()) continue;
    return `${header}.${payload}.${b64u(new Uint8Array([...R, ...le(r)]))}`;
  }
  throw new Error('no forgery found');
}

describe('small-order public keys: both verifiers refuse', () => {
  it.each(Object.entries(SMALL_ORDER_KEYS))('%s', async (_name, hex) => {
    const publicKey = hexBytes(hex);
    const token = await forge(publicKey);
    const [h, p, s] = token.split('.') as [string, string, string];
    // The forgery is real: a permissive verifier (ZIP-215 rules, no small-order check) accepts it.
    expect(await ed.verifyAsync(fromB64u(s), utf8(`${h}.${p}`), publicKey, { zip215: true })).toBe(true);

    const jwk: PublicSigningJwk = { kty: 'OKP', crv: 'Ed25519', x: b64u(publicKey) };
    expect(await verifyCompactWithNoble(token, jwk)).toBe(false);
    expect(await verifyEd25519Strict(utf8(`${h}.${p}`), fromB64u(s), publicKey)).toBe(false);
    const jose = await verifyCompact(token, 'passerelle-receipt+jwt', () => jwk).then(
      () => 'accepted',
      (e: unknown) => (e instanceof ProtocolError ? e.code : String(e)),
    );
    expect(['SIGNATURE_INVALID', 'KEY_INVALID']).toContain(jose);
  });
});

describe('non-canonical signatures: both verifiers refuse', () => {
  const valid = compactCases.find((c) => c.typ === 'passerelle-receipt+jwt')!;

  it('S + L (RFC 8032 §5.1.7: S must be below L)', async () => {
    const [h, p, s] = valid.token.split('.') as [string, string, string];
    expect(await verifyCompactWithNoble(valid.token, valid.jwk)).toBe(true);
    const sig = fromB64u(s);
    const S = fromLe(sig.slice(32)) + L;
    expect(S < 2n ** 256n).toBe(true);
    const malleated = `${h}.${p}.${b64u(new Uint8Array([...sig.slice(0, 32), ...le(S)]))}`;
    expect(await verifyCompactWithNoble(malleated, valid.jwk)).toBe(false);
    expect(await joseCompact(malleated, valid.typ, valid.jwk)).toBe(false);
  });

  it('a signature of the wrong length', async () => {
    const [h, p, s] = valid.token.split('.') as [string, string, string];
    const short = `${h}.${p}.${b64u(fromB64u(s).slice(0, 63))}`;
    expect(await verifyCompactWithNoble(short, valid.jwk)).toBe(false);
    expect(await joseCompact(short, valid.typ, valid.jwk)).toBe(false);
  });
});
