/**
 * Ed25519 signing keys and X25519 encryption keys as JWK (RFC 8037). The `kid` of every key is its
 * RFC 7638 SHA-256 thumbprint, so a pinned fingerprint and a key id are the same string.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import { z } from 'zod';
import { ProtocolError } from './errors.js';
import { fromB64u } from './encoding.js';

const B64U_32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes base64url');

export const PublicSigningJwk = z
  .object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: B64U_32, kid: z.string().optional() })
  .strict()
  .meta({ id: 'PublicSigningJwk' });
export type PublicSigningJwk = z.infer<typeof PublicSigningJwk>;

export const PublicEncryptionJwk = z
  .object({ kty: z.literal('OKP'), crv: z.literal('X25519'), x: B64U_32, kid: z.string().optional() })
  .strict()
  .meta({ id: 'PublicEncryptionJwk' });
export type PublicEncryptionJwk = z.infer<typeof PublicEncryptionJwk>;

export type PublicJwk = PublicSigningJwk | PublicEncryptionJwk;
export interface PrivateJwk {
  kty: 'OKP';
  crv: 'Ed25519' | 'X25519';
  x: string;
  d: string;
  kid?: string;
}

export interface SigningKeyPair {
  kid: string;
  publicJwk: PublicSigningJwk;
  privateJwk: PrivateJwk;
}
export interface EncryptionKeyPair {
  kid: string;
  publicJwk: PublicEncryptionJwk;
  privateJwk: PrivateJwk;
}

export async function thumbprint(jwk: PublicJwk | PrivateJwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, 'sha256');
}

async function generate(crv: 'Ed25519' | 'X25519') {
  const alg = crv === 'Ed25519' ? 'EdDSA' : 'ECDH-ES+A256KW';
  const { privateKey } = await generateKeyPair(alg, { crv, extractable: true });
  const jwk = await exportJWK(privateKey);
  const privateJwk = { kty: 'OKP', crv, x: jwk.x!, d: jwk.d! } as PrivateJwk;
  return importKeyPair(privateJwk);
}

export async function generateSigningKey(): Promise<SigningKeyPair> {
  return (await generate('Ed25519')) as SigningKeyPair;
}

export async function generateEncryptionKey(): Promise<EncryptionKeyPair> {
  return (await generate('X25519')) as EncryptionKeyPair;
}

/** Imports a private JWK (for example from a node's key file), checking it is well-formed. */
export async function importKeyPair(jwk: PrivateJwk): Promise<SigningKeyPair | EncryptionKeyPair> {
  if (jwk?.kty !== 'OKP' || (jwk.crv !== 'Ed25519' && jwk.crv !== 'X25519')) {
    throw new ProtocolError('KEY_INVALID', 'Expected an OKP Ed25519 or X25519 key');
  }
  if (!B64U_32.safeParse(jwk.x).success || !B64U_32.safeParse(jwk.d).success) {
    throw new ProtocolError('KEY_INVALID', 'Key coordinates must be 32 bytes');
  }
  const kid = await thumbprint(jwk);
  const publicJwk = { kty: 'OKP', crv: jwk.crv, x: jwk.x, kid } as PublicJwk;
  const privateJwk: PrivateJwk = { kty: 'OKP', crv: jwk.crv, x: jwk.x, d: jwk.d, kid };
  // Refuse a private key whose public half does not match, before it can sign anything.
  let derived: { x?: string };
  try {
    const alg = jwk.crv === 'Ed25519' ? 'EdDSA' : 'ECDH-ES+A256KW';
    derived = await exportJWK(await importJWK({ kty: 'OKP', crv: jwk.crv, d: jwk.d, x: jwk.x }, alg, { extractable: true }));
  } catch (e) {
    throw new ProtocolError('KEY_INVALID', 'Key cannot be imported', undefined, { cause: e });
  }
  if (derived.x !== jwk.x) throw new ProtocolError('KEY_INVALID', 'Public part does not match private key');
  return { kid, publicJwk, privateJwk } as SigningKeyPair | EncryptionKeyPair;
}

export async function importSigningKey(jwk: PrivateJwk): Promise<SigningKeyPair> {
  if (jwk?.crv !== 'Ed25519') throw new ProtocolError('KEY_INVALID', 'Expected an Ed25519 key');
  return (await importKeyPair(jwk)) as SigningKeyPair;
}

export async function importEncryptionKey(jwk: PrivateJwk): Promise<EncryptionKeyPair> {
  if (jwk?.crv !== 'X25519') throw new ProtocolError('KEY_INVALID', 'Expected an X25519 key');
  return (await importKeyPair(jwk)) as EncryptionKeyPair;
}

/** The public JWK only: never carries `d`, whatever object is given. */
export function publicJwkOf<T extends { publicJwk: PublicJwk }>(pair: T): T['publicJwk'] {
  const { kty, crv, x, kid } = pair.publicJwk;
  return { kty, crv, x, ...(kid ? { kid } : {}) } as T['publicJwk'];
}

// Imported CryptoKeys are cached per JWK object: importing is a measurable part of every seal/open.
const cryptoKeyCache = new WeakMap<object, Promise<CryptoKey>>();

export function cryptoKeyFor(jwk: PublicJwk | PrivateJwk, alg: 'EdDSA' | 'ECDH-ES+A256KW'): Promise<CryptoKey> {
  let key = cryptoKeyCache.get(jwk);
  if (!key) {
    const { kty, crv, x } = jwk;
    const material = 'd' in jwk ? { kty, crv, x, d: jwk.d } : { kty, crv, x };
    key = importJWK(material, alg).then((k) => k as CryptoKey).catch((e: unknown) => {
      cryptoKeyCache.delete(jwk);
      throw new ProtocolError('KEY_INVALID', 'Key cannot be imported', undefined, { cause: e });
    });
    cryptoKeyCache.set(jwk, key);
  }
  return key;
}

/** The 32 raw bytes of a public OKP key. */
export function rawPublicKey(jwk: PublicJwk): Uint8Array {
  return fromB64u(jwk.x);
}
