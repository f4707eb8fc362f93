/** EdDSA JWS in compact and general JSON serialisation. Signatures cover the exact bytes received. */
import { compactVerify, flattenedVerify } from 'jose';
import * as ed from '@noble/ed25519';
import { ProtocolError } from './errors.js';
import { b64u, b64uJson, b64uText, fromB64u, fromUtf8, parseJsonObject, utf8 } from './encoding.js';
import { JWS_ALG, parseCompactJws, type CompactJws, type JwsHeader } from './jose-policy.js';
import { cryptoKeyFor, type PublicSigningJwk, type SigningKeyPair } from './keys.js';

export type KeyResolver = (kid: string, header: JwsHeader) => PublicSigningJwk | undefined | Promise<PublicSigningJwk | undefined>;

export interface VerifiedJws {
  header: JwsHeader;
  /** The payload parsed from the exact signed bytes. */
  payload: Record<string, unknown>;
  payloadBytes: Uint8Array;
  /** The signer's key id (the RFC 7638 thumbprint). */
  kid: string;
}

/**
 * Signs a compact JWS (RFC 7515 §7.1) with WebCrypto directly: the signing input is built once with
 * native base64url, where a general library would re-encode the payload in JavaScript. Tests verify
 * the output with jose.
 */
export async function signCompact(payload: Uint8Array | Record<string, unknown>, key: SigningKeyPair, typ: string): Promise<string> {
  const input = compactSigningInput(payload, key.kid, typ);
  const signature = await crypto.subtle.sign('Ed25519', await cryptoKeyFor(key.privateJwk, 'EdDSA'), utf8(input) as Uint8Array<ArrayBuffer>);
  return `${input}.${b64u(new Uint8Array(signature))}`;
}

/**
 * The JWS Signing Input (RFC 7515 §5.1) that signCompact signs: the protected header (alg, typ,
 * kid) and the payload, each base64url-encoded. Exposed for platforms that sign it with a
 * synchronous Ed25519 of their own; Ed25519 is deterministic, so the token is the same.
 */
export function compactSigningInput(payload: Uint8Array | Record<string, unknown>, kid: string, typ: string): string {
  const protectedB64 = b64uJson({ alg: JWS_ALG, typ, kid });
  const payloadB64 = payload instanceof Uint8Array ? b64u(payload) : b64uText(JSON.stringify(payload));
  return `${protectedB64}.${payloadB64}`;
}

export async function verifyCompact(token: string, expectedTyp: string | readonly string[], resolveKey: KeyResolver): Promise<VerifiedJws> {
  const parsed = parseCompactJws(token, expectedTyp);
  const jwk = await resolveKey(parsed.header.kid, parsed.header);
  if (!jwk) throw new ProtocolError('KEY_UNKNOWN');
  let payloadBytes: Uint8Array;
  try {
    ({ payload: payloadBytes } = await compactVerify(token, await cryptoKeyFor(jwk, 'EdDSA'), { algorithms: [JWS_ALG] }));
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('SIGNATURE_INVALID', undefined, undefined, { cause: e });
  }
  return { header: parsed.header, payload: parseJsonObject(fromUtf8(payloadBytes)), payloadBytes, kid: parsed.header.kid };
}

/**
 * Verifies the Ed25519 signature of an already parsed (and policy-checked) compact JWS over the
 * exact ASCII bytes `protected.payload` (RFC 7515 §5.2), with no re-parsing or re-serialising.
 */
export async function verifyParsedSignature(parsed: CompactJws, jwk: PublicSigningJwk): Promise<void> {
  let ok = false;
  try {
    const signature = fromB64u(parsed.signatureB64);
    const input = utf8(`${parsed.protectedB64}.${parsed.payloadB64}`);
    ok = await crypto.subtle.verify('Ed25519', await cryptoKeyFor(jwk, 'EdDSA'), signature as Uint8Array<ArrayBuffer>, input as Uint8Array<ArrayBuffer>);
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'KEY_INVALID') throw e;
    ok = false;
  }
  if (!ok) throw new ProtocolError('SIGNATURE_INVALID');
}

/** Decodes a compact JWS payload without verifying it (for routing and display only). */
export function peekCompactPayload(token: string): Record<string, unknown> {
  const parsed = parseCompactJws(token);
  return parseJsonObject(fromUtf8(fromB64u(parsed.payloadB64)));
}

/** JWS General JSON Serialisation (RFC 7515 §7.2.1): one payload, one signature per signer. */
export interface GeneralJws {
  payload: string;
  signatures: { protected: string; signature: string }[];
}

export async function signGeneral(payload: Record<string, unknown>, keys: readonly SigningKeyPair[], typ: string): Promise<GeneralJws> {
  const payloadB64 = b64u(utf8(JSON.stringify(payload)));
  return addSignatures({ payload: payloadB64, signatures: [] }, keys, typ);
}

/** Adds signatures over the same payload bytes (co-signing); existing signatures are kept. */
export async function addSignatures(jws: GeneralJws, keys: readonly SigningKeyPair[], typ: string): Promise<GeneralJws> {
  const signatures = [...jws.signatures];
  for (const key of keys) {
    const compact = await signCompact(fromB64u(jws.payload), key, typ);
    const [protectedB64, , signature] = compact.split('.') as [string, string, string];
    signatures.push({ protected: protectedB64, signature });
  }
  return { payload: jws.payload, signatures };
}

export interface VerifiedGeneralJws {
  payload: Record<string, unknown>;
  /** Key ids whose signatures verified, in signature order. */
  kids: string[];
}

/**
 * Verifies every signature of a general JWS. Any signature that fails, or whose key is unknown,
 * fails the whole object: an extra bad signature is never silently ignored.
 */
export async function verifyGeneral(jws: unknown, expectedTyp: string, resolveKey: KeyResolver): Promise<VerifiedGeneralJws> {
  if (!jws || typeof jws !== 'object' || typeof (jws as GeneralJws).payload !== 'string' || !Array.isArray((jws as GeneralJws).signatures)) {
    throw new ProtocolError('MALFORMED', 'Expected a general JWS JSON object');
  }
  const { payload, signatures } = jws as GeneralJws;
  if (signatures.length === 0 || signatures.length > 16) throw new ProtocolError('MALFORMED', 'Expected 1 to 16 signatures');
  const kids: string[] = [];
  for (const sig of signatures) {
    if (!sig || typeof sig.protected !== 'string' || typeof sig.signature !== 'string' || Object.keys(sig).length !== 2) {
      throw new ProtocolError('MALFORMED', 'Malformed signature entry');
    }
    const { header } = parseCompactJws(`${sig.protected}.${payload}.${sig.signature}`, expectedTyp);
    if (kids.includes(header.kid)) throw new ProtocolError('MALFORMED', 'Duplicate signer');
    const jwk = await resolveKey(header.kid, header);
    if (!jwk) throw new ProtocolError('KEY_UNKNOWN');
    try {
      await flattenedVerify({ payload, protected: sig.protected, signature: sig.signature }, await cryptoKeyFor(jwk, 'EdDSA'), {
        algorithms: [JWS_ALG],
      });
    } catch (e) {
      throw new ProtocolError('SIGNATURE_INVALID', undefined, undefined, { cause: e });
    }
    kids.push(header.kid);
  }
  return { payload: parseJsonObject(fromUtf8(fromB64u(payload))), kids };
}

/** Decodes a general JWS payload without verifying it. */
export function peekGeneralPayload(jws: GeneralJws): Record<string, unknown> {
  return parseJsonObject(fromUtf8(fromB64u(jws.payload)));
}

/**
 * Independent second verifier (@noble/ed25519, RFC 8032 strict decoding, small-order keys refused).
 * Used by conformance tests and auditors to cross-check the WebCrypto path.
 */
export async function verifyEd25519Strict(signingInput: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    if (ed.Point.fromBytes(publicKey, false).isSmallOrder()) return false;
    return await ed.verifyAsync(signature, signingInput, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** Verifies a compact JWS with the independent verifier; returns the verdict only. */
export async function verifyCompactWithNoble(token: string, publicKey: PublicSigningJwk): Promise<boolean> {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  try {
    const header = parseJsonObject(fromUtf8(fromB64u(parts[0]!)));
    if (header.alg !== JWS_ALG) return false;
    return await verifyEd25519Strict(utf8(`${parts[0]}.${parts[1]}`), fromB64u(parts[2]!), fromB64u(publicKey.x));
  } catch {
    return false;
  }
}
