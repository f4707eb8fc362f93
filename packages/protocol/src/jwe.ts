/**
 * Compact JWE with exactly one algorithm pair: ECDH-ES+A256KW over X25519 (RFC 7518 §4.6, RFC 8037)
 * with A256GCM content encryption (RFC 7518 §5.3). Written directly on WebCrypto because a general
 * JOSE library spends most of its main-thread time on work this profile never needs: JavaScript
 * base64 of the whole ciphertext, an asynchronous digest for a one-block KDF, and unwrapping the
 * content key to raw bytes only to import it again. The crypto itself still runs in WebCrypto (on
 * libuv's thread pool in Node), and jose remains the reference: tests decrypt our JWEs with jose and
 * jose's with this module, and the committed vectors hold both.
 *
 * Callers must have policy-checked the header (parseCompactJwe) before decrypting: this module
 * assumes alg, enc, epk and the part lengths are already the allowed ones.
 */
import { ProtocolError } from './errors.js';
import { b64u, b64uJson, fromB64u, randomBytes, utf8 } from './encoding.js';
import { JWE_ALG, JWE_ENC, type CompactJwe } from './jose-policy.js';
import { sha256Js } from './sha256.js';

type Bytes = Uint8Array<ArrayBuffer>;
const subtle = globalThis.crypto.subtle;

/**
 * Concat KDF (NIST SP 800-56A §5.8.1, RFC 7518 §4.6.2) for a 256-bit key-wrapping key: one SHA-256
 * round over counter ‖ Z ‖ AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo. The header policy
 * forbids `apu` and `apv`, so both are empty (length-prefixed zero).
 */
const KDF_FIXED_INFO = (() => {
  const alg = utf8(JWE_ALG);
  const info = new Uint8Array(4 + alg.length + 4 + 4 + 4);
  const view = new DataView(info.buffer);
  view.setUint32(0, alg.length);
  info.set(alg, 4);
  // PartyUInfo and PartyVInfo: zero-length, then SuppPubInfo: keydatalen in bits.
  view.setUint32(4 + alg.length + 8, 256);
  return info;
})();

function concatKdf(z: Uint8Array): Bytes {
  const input = new Uint8Array(4 + z.length + KDF_FIXED_INFO.length);
  input[3] = 1; // round counter, big-endian 32-bit
  input.set(z, 4);
  input.set(KDF_FIXED_INFO, 4 + z.length);
  return sha256Js(input) as Bytes;
}

async function keyWrappingKey(privateKey: CryptoKey, publicKey: CryptoKey, usage: 'wrapKey' | 'unwrapKey'): Promise<CryptoKey> {
  const z = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: publicKey }, privateKey, 256));
  // RFC 7748 §6.1: an all-zero shared secret means a low-order public key; refuse it.
  if (z.every((b) => b === 0)) throw new ProtocolError('DECRYPTION_FAILED');
  return subtle.importKey('raw', concatKdf(z), 'AES-KW', false, [usage]);
}

export interface JweProtectedHeader {
  kid: string;
  typ?: string;
  cty?: string;
}

/** Encrypts `plaintext` to an X25519 public key (imported with cryptoKeyFor) as a compact JWE. */
export async function encryptCompactJwe(plaintext: Uint8Array, recipient: CryptoKey, header: JweProtectedHeader): Promise<string> {
  const ephemeral = (await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair;
  const [epkRaw, kek, cek] = await Promise.all([
    subtle.exportKey('raw', ephemeral.publicKey),
    keyWrappingKey(ephemeral.privateKey, recipient, 'wrapKey'),
    subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']),
  ]);
  const protectedB64 = b64uJson({
    alg: JWE_ALG,
    enc: JWE_ENC,
    kid: header.kid,
    ...(header.typ !== undefined ? { typ: header.typ } : {}),
    ...(header.cty !== undefined ? { cty: header.cty } : {}),
    epk: { kty: 'OKP', crv: 'X25519', x: b64u(new Uint8Array(epkRaw)) },
  });
  const iv = randomBytes(12) as Bytes;
  const [wrapped, sealed] = await Promise.all([
    subtle.wrapKey('raw', cek, kek, 'AES-KW'),
    subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8(protectedB64) as Bytes, tagLength: 128 }, cek, plaintext as Bytes),
  ]);
  const out = new Uint8Array(sealed);
  const tagAt = out.length - 16;
  return `${protectedB64}.${b64u(new Uint8Array(wrapped))}.${b64u(iv)}.${b64u(out.subarray(0, tagAt))}.${b64u(out.subarray(tagAt))}`;
}

/**
 * Decrypts a policy-checked compact JWE with our X25519 private key. Every failure after the policy
 * check is the one generic DECRYPTION_FAILED: no oracle tells a wrong key from a flipped bit.
 */
export async function decryptCompactJwe(jwe: CompactJwe, privateKey: CryptoKey): Promise<Uint8Array> {
  const { encryptedKey, iv, ciphertext, tag } = jwe.decoded;
  try {
    const epk = await subtle.importKey('raw', fromB64u(jwe.header.epk.x) as Bytes, { name: 'X25519' }, false, []);
    const kek = await keyWrappingKey(privateKey, epk, 'unwrapKey');
    const cek = await subtle.unwrapKey('raw', encryptedKey as Bytes, kek, 'AES-KW', { name: 'AES-GCM' }, false, ['decrypt']);
    const sealed = new Uint8Array(ciphertext.length + tag.length);
    sealed.set(ciphertext);
    sealed.set(tag, ciphertext.length);
    const aad = utf8(jwe.parts[0]) as Bytes;
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv: iv as Bytes, additionalData: aad, tagLength: 128 }, cek, sealed));
  } catch {
    throw new ProtocolError('DECRYPTION_FAILED');
  }
}
