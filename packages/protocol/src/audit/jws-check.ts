/**
 * Signature checks for the auditor's hot path. A bundle holds one message and one receipt per
 * exchange, so the work per signature decides how close verification gets to the raw Ed25519 rate:
 * the JOSE policy of jose-policy.ts is applied as everywhere else, then WebCrypto verifies the exact
 * signing input once, with no second parse of the token.
 *
 * Every signature segment is also required to be canonical base64url (RFC 7515 §2 with RFC 4648
 * §3.5): a decoder that ignores the spare bits of the last character accepts several spellings of
 * one signature, and an auditor must notice any changed byte.
 */
import { ProtocolError } from '../errors.js';
import { MAX_JSON_DEPTH, fromB64u, fromUtf8, parseJsonObject } from '../encoding.js';
import { MAX_COMPACT_LENGTH, parseCompactJws, type CompactJws, type JwsHeader } from '../jose-policy.js';
import type { GeneralJws } from '../jws.js';
import { cryptoKeyFor, type PublicSigningJwk } from '../keys.js';

const ED25519_SIGNATURE_LENGTH = 64;

/** Decodes a signature segment strictly; MALFORMED unless it is the one spelling of 64 bytes. */
export function canonicalSignature(segment: string): Uint8Array {
  const bytes = fromB64u(segment);
  if (bytes.length !== ED25519_SIGNATURE_LENGTH) throw new ProtocolError('MALFORMED', 'An Ed25519 signature is 64 bytes');
  return bytes;
}

/** Throws MALFORMED unless every signature of a compact or general JWS is canonical. */
export function assertCanonicalSignatures(jws: string | GeneralJws): void {
  if (typeof jws === 'string') {
    const last = jws.lastIndexOf('.');
    canonicalSignature(last < 0 ? '' : jws.slice(last + 1));
    return;
  }
  if (!jws || !Array.isArray(jws.signatures)) throw new ProtocolError('MALFORMED', 'Expected a general JWS JSON object');
  for (const s of jws.signatures) canonicalSignature(typeof s?.signature === 'string' ? s.signature : '');
}

/**
 * parseJsonObject, with its nesting scan skipped when the text cannot nest deeper than the bound:
 * nesting depth never exceeds the number of `{` and `[` characters, which native indexOf counts far
 * faster than a character loop (payloads are the bulk of what an audit parses).
 */
export function parseBoundedJsonObject(text: string): Record<string, unknown> {
  let openers = 0;
  for (const c of ['{', '[']) {
    for (let i = text.indexOf(c); i !== -1 && openers <= MAX_JSON_DEPTH; i = text.indexOf(c, i + 1)) openers++;
  }
  if (openers > MAX_JSON_DEPTH) return parseJsonObject(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError('MALFORMED', 'Invalid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ProtocolError('MALFORMED', 'Expected a JSON object');
  return value as Record<string, unknown>;
}

export interface CheckedJws {
  header: JwsHeader;
  /** The payload parsed from the exact signed bytes. */
  payload: Record<string, unknown>;
  kid: string;
}

/**
 * Chooses the verification key from the header and the (not yet verified) payload, for example
 * the issuer's key valid at `iat`. Throws KEY_UNKNOWN or KEY_NOT_VALID when there is none.
 */
export type SignerKey = (header: JwsHeader, claimed: Record<string, unknown>) => PublicSigningJwk;

// Protected headers that passed the policy, by their exact base64url text. A bundle repeats a few
// headers (one per signing key and type) across every token, and the same bytes always get the same
// verdict; bounded so that a hostile bundle cannot grow it.
const checkedHeaders = new Map<string, JwsHeader>();
const MAX_CHECKED_HEADERS = 256;

function typAccepted(typ: string, expected: string | readonly string[]): boolean {
  return typeof expected === 'string' ? typ === expected : expected.includes(typ);
}

/** parseCompactJws, answering from the header cache when the protected header was seen before. */
function splitCompactJws(token: string, expectedTyp: string | readonly string[]): CompactJws & { signature: Uint8Array } {
  const first = typeof token === 'string' ? token.indexOf('.') : -1;
  const second = first > 0 ? token.indexOf('.', first + 1) : -1;
  const header = second > 0 && token.length <= MAX_COMPACT_LENGTH && token.indexOf('.', second + 1) === -1 ? checkedHeaders.get(token.slice(0, first)) : undefined;
  if (!header) {
    const parsed = parseCompactJws(token, expectedTyp);
    if (checkedHeaders.size >= MAX_CHECKED_HEADERS) checkedHeaders.clear();
    checkedHeaders.set(parsed.protectedB64, parsed.header);
    return { ...parsed, signature: canonicalSignature(parsed.signatureB64) };
  }
  // The checks parseCompactJws makes after the header, in its order and with its codes.
  if (!typAccepted(header.typ, expectedTyp)) throw new ProtocolError('WRONG_TYPE', `Unexpected typ ${header.typ.slice(0, 64)}`);
  const signatureB64 = token.slice(second + 1);
  let signature: Uint8Array;
  try {
    signature = canonicalSignature(signatureB64);
  } catch {
    throw new ProtocolError('SIGNATURE_INVALID');
  }
  return { header, protectedB64: token.slice(0, first), payloadB64: token.slice(first + 1, second), signatureB64, signature };
}

// The signing input is encoded into one reusable buffer: WebCrypto copies its inputs when called
// (W3C Web Cryptography API §14.3.4, "get a copy of the bytes held by the data parameter").
const encoder = new TextEncoder();
let scratch = new Uint8Array(16_384);

function signingInput(protectedB64: string, payloadB64: string): Uint8Array {
  const text = `${protectedB64}.${payloadB64}`;
  // base64url text is ASCII: one byte per character.
  if (text.length > scratch.length) scratch = new Uint8Array(Math.max(text.length, scratch.length * 2));
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

/** Policy check, then one Ed25519 verification of the exact signing input (RFC 7515 §5.2). */
export async function checkCompactJws(token: string, expectedTyp: string | readonly string[], signerKey: SignerKey): Promise<CheckedJws> {
  const parsed = splitCompactJws(token, expectedTyp);
  const payload = parseBoundedJsonObject(fromUtf8(fromB64u(parsed.payloadB64)));
  const jwk = signerKey(parsed.header, payload);
  const key = await cryptoKeyFor(jwk, 'EdDSA');
  let ok: boolean;
  try {
    ok = await crypto.subtle.verify('Ed25519', key, parsed.signature as Uint8Array<ArrayBuffer>, signingInput(parsed.protectedB64, parsed.payloadB64) as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new ProtocolError('SIGNATURE_INVALID', undefined, undefined, { cause: e });
  }
  if (!ok) throw new ProtocolError('SIGNATURE_INVALID');
  return { header: parsed.header, payload, kid: parsed.header.kid };
}
