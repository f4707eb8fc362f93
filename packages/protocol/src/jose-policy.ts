/**
 * Strict JOSE allow-lists (spec/protocol.md §4.1), applied to the raw protected header before any
 * key lookup, decryption or signature work. Everything not listed is refused.
 */
import { ProtocolError } from './errors.js';
import { decodeCanonicalB64u, fromB64u, fromUtf8, isStrictB64u, parseJsonObject } from './encoding.js';

export const JWS_ALG = 'EdDSA';
export const JWE_ALG = 'ECDH-ES+A256KW';
export const JWE_ENC = 'A256GCM';

/** Upper bound on any compact JOSE object the protocol accepts (bytes of the serialisation). */
export const MAX_COMPACT_LENGTH = 2 * 1024 * 1024;
const MAX_HEADER_LENGTH = 2048;

const JWS_HEADER_ALLOWED = new Set(['alg', 'typ', 'kid', 'cty']);
const JWE_HEADER_ALLOWED = new Set(['alg', 'enc', 'epk', 'kid', 'typ', 'cty']);
const EPK_ALLOWED = new Set(['kty', 'crv', 'x']);

export interface JwsHeader {
  alg: typeof JWS_ALG;
  typ: string;
  kid: string;
  cty?: string;
}

export interface JweHeader {
  alg: typeof JWE_ALG;
  enc: typeof JWE_ENC;
  epk: { kty: 'OKP'; crv: 'X25519'; x: string };
  kid: string;
  typ?: string;
  cty?: string;
}

function decodeHeader(segment: string): Record<string, unknown> {
  if (segment.length > MAX_HEADER_LENGTH) throw new ProtocolError('TOO_LARGE', 'Protected header too large');
  return parseJsonObject(fromUtf8(fromB64u(segment)));
}

function checkCommon(header: Record<string, unknown>, allowed: Set<string>): void {
  // Policy order: forbidden parameters first, so that `crit`, `jwk`, `zip`, `b64` never reach a library.
  for (const name of Object.keys(header)) {
    if (!allowed.has(name)) throw new ProtocolError('FORBIDDEN_HEADER', `Header parameter not allowed: ${name.slice(0, 32)}`);
  }
  if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 128) {
    throw new ProtocolError('FORBIDDEN_HEADER', 'kid is required');
  }
  for (const name of ['typ', 'cty'] as const) {
    if (header[name] !== undefined && (typeof header[name] !== 'string' || (header[name] as string).length > 128)) {
      throw new ProtocolError('MALFORMED', `${name} must be a string`);
    }
  }
}

export interface CompactJws {
  header: JwsHeader;
  protectedB64: string;
  payloadB64: string;
  signatureB64: string;
}

/** Splits and policy-checks a compact JWS without verifying it. */
export function parseCompactJws(token: string, expectedTyp?: string | readonly string[]): CompactJws {
  if (typeof token !== 'string') throw new ProtocolError('MALFORMED', 'Expected a compact JWS string');
  if (token.length > MAX_COMPACT_LENGTH) throw new ProtocolError('TOO_LARGE', 'JWS too large');
  const parts = token.split('.');
  if (parts.length === 5) throw new ProtocolError('WRONG_TYPE', 'Expected a JWS, got a JWE');
  if (parts.length !== 3) throw new ProtocolError('MALFORMED', 'Expected a compact JWS');
  const [protectedB64, payloadB64, signatureB64] = parts as [string, string, string];
  const header = decodeHeader(protectedB64);
  if (header.alg !== JWS_ALG) throw new ProtocolError('UNSUPPORTED_ALGORITHM', 'Only EdDSA signatures are accepted');
  checkCommon(header, JWS_HEADER_ALLOWED);
  if (typeof header.typ !== 'string') throw new ProtocolError('WRONG_TYPE', 'typ is required');
  if (expectedTyp !== undefined) {
    const ok = typeof expectedTyp === 'string' ? header.typ === expectedTyp : expectedTyp.includes(header.typ);
    if (!ok) throw new ProtocolError('WRONG_TYPE', `Unexpected typ ${header.typ.slice(0, 64)}`);
  }
  // Segments must be canonical base64url (no padding, whitespace or stray trailing bits, which lenient
  // decoders accept): one object has one serialisation and one digest.
  if (signatureB64.length !== 86 || !isStrictB64u(signatureB64)) throw new ProtocolError('SIGNATURE_INVALID');
  return { header: header as unknown as JwsHeader, protectedB64, payloadB64, signatureB64 };
}

export interface CompactJwe {
  header: JweHeader;
  parts: [string, string, string, string, string];
  /** Parts 2 to 5 decoded (each checked canonical): encrypted key, IV, ciphertext, tag. */
  decoded: { encryptedKey: Uint8Array; iv: Uint8Array; ciphertext: Uint8Array; tag: Uint8Array };
}

/** Splits and policy-checks a compact JWE without decrypting it. */
export function parseCompactJwe(token: string): CompactJwe {
  if (typeof token !== 'string') throw new ProtocolError('MALFORMED', 'Expected a compact JWE string');
  if (token.length > MAX_COMPACT_LENGTH) throw new ProtocolError('TOO_LARGE', 'JWE too large');
  const parts = token.split('.');
  if (parts.length === 3) throw new ProtocolError('WRONG_TYPE', 'Expected a JWE, got a JWS');
  if (parts.length !== 5) throw new ProtocolError('MALFORMED', 'Expected a compact JWE');
  const header = decodeHeader(parts[0]!);
  if (header.alg !== JWE_ALG || header.enc !== JWE_ENC) {
    throw new ProtocolError('UNSUPPORTED_ALGORITHM', 'Only ECDH-ES+A256KW with A256GCM is accepted');
  }
  checkCommon(header, JWE_HEADER_ALLOWED);
  const epk = header.epk as Record<string, unknown> | undefined;
  if (!epk || typeof epk !== 'object' || Array.isArray(epk)) throw new ProtocolError('MALFORMED', 'epk is required');
  for (const name of Object.keys(epk)) {
    if (!EPK_ALLOWED.has(name)) throw new ProtocolError('FORBIDDEN_HEADER', 'epk carries extra members');
  }
  if (epk.kty !== 'OKP' || epk.crv !== 'X25519' || typeof epk.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(epk.x)) {
    throw new ProtocolError('KEY_INVALID', 'epk must be an X25519 public key');
  }
  // ECDH-ES+A256KW wraps a 32-byte CEK into 40 bytes; A256GCM uses a 96-bit IV and a 128-bit tag.
  if (parts[1]!.length !== 54 || parts[2]!.length !== 16 || parts[4]!.length !== 22) {
    throw new ProtocolError('DECRYPTION_FAILED');
  }
  const [encryptedKey, iv, ciphertext, tag] = parts.slice(1).map(decodeCanonicalB64u);
  if (!encryptedKey || !iv || !ciphertext || !tag) throw new ProtocolError('DECRYPTION_FAILED');
  return { header: header as unknown as JweHeader, parts: parts as CompactJwe['parts'], decoded: { encryptedKey, iv, ciphertext, tag } };
}
