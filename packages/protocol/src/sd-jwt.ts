/**
 * Selective disclosure for JWTs (RFC 9901), the subset Passerelle uses: object-property disclosures
 * with SHA-256, no key binding. A message's personal fields are replaced by salted digests in the
 * signed payload; the disclosures travel beside it (inside the encryption) and may be withheld.
 */
import { ProtocolError } from './errors.js';
import { b64u, b64uText, fromB64uText, parseJson, randomBytes, sha256b64uText } from './encoding.js';

export const SD_ALG = 'sha-256';
const MAX_DISCLOSURES = 512;

export interface Disclosure {
  /** The base64url disclosure exactly as transmitted. */
  encoded: string;
  /** base64url(SHA-256(ASCII(encoded))), RFC 9901 §4.2.3. */
  digest: string;
  salt: string;
  name: string;
  value: unknown;
}

export function disclosureDigest(encoded: string): string {
  return sha256b64uText(encoded);
}

/**
 * Salts of 18 random bytes (144 bits, above RFC 9901 §9.3's 128): a multiple of three bytes is a
 * whole number of base64url characters, so the salts of a whole message come from one draw and one
 * encoding, sliced every 24 characters.
 */
const SALT_BYTES = 18;
const SALT_CHARS = 24;

export function randomSalts(count: number): string[] {
  const text = b64u(randomBytes(SALT_BYTES * count));
  const salts = new Array<string>(count);
  for (let i = 0; i < count; i++) salts[i] = text.slice(i * SALT_CHARS, (i + 1) * SALT_CHARS);
  return salts;
}

export function makeDisclosure(name: string, value: unknown, salt: string = randomSalts(1)[0]!): Disclosure {
  const encoded = b64uText(JSON.stringify([salt, name, value]));
  return { encoded, digest: disclosureDigest(encoded), salt, name, value };
}

export function parseDisclosure(encoded: string): Disclosure {
  if (typeof encoded !== 'string' || encoded.length === 0 || encoded.length > 65536) {
    throw new ProtocolError('DISCLOSURE_INVALID', 'Malformed disclosure');
  }
  let array: unknown;
  try {
    array = parseJson(fromB64uText(encoded));
  } catch {
    throw new ProtocolError('DISCLOSURE_INVALID', 'Malformed disclosure');
  }
  // Only object-property disclosures (three elements) are used; array-element ones are refused.
  if (!Array.isArray(array) || array.length !== 3 || typeof array[0] !== 'string' || typeof array[1] !== 'string') {
    throw new ProtocolError('DISCLOSURE_INVALID', 'Malformed disclosure');
  }
  const [salt, name, value] = array as [string, string, unknown];
  // `__proto__` would set the revealed object's prototype instead of adding a claim (one disclosure, one claim).
  if (name === '_sd' || name === '...' || name === '_sd_alg' || name === '__proto__' || salt.length < 16) {
    throw new ProtocolError('DISCLOSURE_INVALID', 'Disclosure name or salt not allowed');
  }
  return { encoded, digest: disclosureDigest(encoded), salt, name, value };
}

/** Replaces every property of `fields` with a disclosure; the digests are sorted so order leaks nothing. */
export function concealObject(fields: Record<string, unknown>): { concealed: { _sd: string[] }; disclosures: Disclosure[] } {
  const entries = Object.entries(fields).filter(([, value]) => value !== undefined);
  const salts = randomSalts(entries.length);
  const disclosures = entries.map(([name, value], i) => makeDisclosure(name, value, salts[i]));
  return { concealed: { _sd: disclosures.map((d) => d.digest).sort() }, disclosures };
}

/** `<issuer-signed JWT>~<disclosure>~...~` (RFC 9901 §4). */
export function joinSdJwt(jwt: string, disclosures: readonly string[]): string {
  return `${jwt}~${disclosures.map((d) => `${d}~`).join('')}`;
}

export function splitSdJwt(sdJwt: string): { jwt: string; disclosures: string[] } {
  if (typeof sdJwt !== 'string' || !sdJwt.endsWith('~')) {
    // A trailing part after the last `~` would be a key-binding JWT, which this protocol does not use.
    throw new ProtocolError('MALFORMED', 'Expected an SD-JWT without key binding');
  }
  const parts = sdJwt.split('~');
  parts.pop();
  const jwt = parts.shift();
  if (!jwt) throw new ProtocolError('MALFORMED', 'Missing issuer-signed JWT');
  if (parts.length > MAX_DISCLOSURES) throw new ProtocolError('TOO_LARGE', 'Too many disclosures');
  return { jwt, disclosures: parts };
}

export interface RevealResult {
  /** The object with disclosed claims in place and `_sd` removed. */
  value: Record<string, unknown>;
  /** Disclosures matched, by digest. */
  matched: Map<string, Disclosure>;
}

/**
 * Puts disclosed properties back into a concealed object (RFC 9901 §7.1 steps 3-5). Every disclosure
 * must match exactly one digest of this object; digests without a disclosure are simply withheld.
 */
export function revealObject(
  concealed: unknown,
  disclosures: ReadonlyMap<string, Disclosure>,
  used: Set<string>,
  /** Receives each field disclosed here with the digest it matched. */
  matched?: Record<string, string>,
): Record<string, unknown> {
  if (!concealed || typeof concealed !== 'object' || Array.isArray(concealed)) {
    throw new ProtocolError('SCHEMA_INVALID', 'Expected a concealed object');
  }
  const { _sd: digests, ...clear } = concealed as Record<string, unknown>;
  if (!Array.isArray(digests) || digests.some((d) => typeof d !== 'string')) {
    throw new ProtocolError('SCHEMA_INVALID', 'Expected an _sd array');
  }
  if (new Set(digests).size !== digests.length) throw new ProtocolError('DISCLOSURE_INVALID', 'Duplicate digest');
  const out: Record<string, unknown> = { ...clear };
  for (const digest of digests as string[]) {
    const disclosure = disclosures.get(digest);
    if (!disclosure) continue;
    if (used.has(digest)) throw new ProtocolError('DISCLOSURE_INVALID', 'Digest referenced twice');
    if (Object.hasOwn(out, disclosure.name)) throw new ProtocolError('DISCLOSURE_INVALID', 'Disclosed claim already present');
    used.add(digest);
    out[disclosure.name] = disclosure.value;
    if (matched) matched[disclosure.name] = digest;
  }
  return out;
}

export function indexDisclosures(encoded: readonly string[]): Map<string, Disclosure> {
  const map = new Map<string, Disclosure>();
  for (const e of encoded) {
    const d = parseDisclosure(e);
    if (map.has(d.digest)) throw new ProtocolError('DISCLOSURE_INVALID', 'Duplicate disclosure');
    map.set(d.digest, d);
  }
  return map;
}
