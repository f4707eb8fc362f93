/**
 * The envelope's own JWE and JWS code (src/jwe.ts, signCompact) against jose, the reference: each
 * side decrypts and verifies what the other produced, byte for byte.
 */
import { CompactEncrypt, compactDecrypt, compactVerify, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  b64u,
  cryptoKeyFor,
  generateEncryptionKey,
  generateSigningKey,
  parseCompactJwe,
  ProtocolError,
  signCompact,
  utf8,
  verifyCompactWithNoble,
} from '../src/index.js';
import { decryptCompactJwe, encryptCompactJwe } from '../src/jwe.js';

const recipient = await generateEncryptionKey();
const other = await generateEncryptionKey();
const signer = await generateSigningKey();
const publicKey = await cryptoKeyFor(recipient.publicJwk, 'ECDH-ES+A256KW');
const privateKey = await cryptoKeyFor(recipient.privateJwk, 'ECDH-ES+A256KW');

// Lengths around the AES block size and base64 quartets, plus a multi-byte UTF-8 text.
const plaintexts = [0, 1, 2, 3, 15, 16, 17, 4095, 9922].map((n) => utf8('é'.repeat(n % 7) + 'x'.repeat(n)));

async function decryptOurs(token: string, key = privateKey): Promise<Uint8Array> {
  return decryptCompactJwe(parseCompactJwe(token), key);
}

describe('JWE (ECDH-ES+A256KW over X25519, A256GCM)', () => {
  it('what we encrypt, jose decrypts, with the header we set', async () => {
    for (const plaintext of plaintexts) {
      const token = await encryptCompactJwe(plaintext, publicKey, { kid: recipient.kid, typ: 't+jwe', cty: 'sd-jwt' });
      const { plaintext: out, protectedHeader } = await compactDecrypt(token, privateKey, {
        keyManagementAlgorithms: ['ECDH-ES+A256KW'],
        contentEncryptionAlgorithms: ['A256GCM'],
      });
      expect(Buffer.from(out).equals(Buffer.from(plaintext))).toBe(true);
      expect(protectedHeader).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: recipient.kid, typ: 't+jwe', cty: 'sd-jwt' });
      expect(protectedHeader.epk).toMatchObject({ kty: 'OKP', crv: 'X25519' });
    }
  });

  it('what jose encrypts, we decrypt', async () => {
    for (const plaintext of plaintexts) {
      const token = await new CompactEncrypt(plaintext).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: recipient.kid }).encrypt(publicKey);
      expect(Buffer.from(await decryptOurs(token)).equals(Buffer.from(plaintext))).toBe(true);
    }
  });

  it('fresh ephemeral key, content key and IV every time', async () => {
    const a = (await encryptCompactJwe(plaintexts[3]!, publicKey, { kid: recipient.kid })).split('.');
    const b = (await encryptCompactJwe(plaintexts[3]!, publicKey, { kid: recipient.kid })).split('.');
    for (const i of [0, 1, 2, 3, 4]) expect(a[i]).not.toBe(b[i]);
  });

  it('another private key, a low-order ephemeral key or a changed header fail with the one generic error', async () => {
    const token = await encryptCompactJwe(plaintexts[5]!, publicKey, { kid: recipient.kid });
    const wrongKey = await cryptoKeyFor(other.privateJwk, 'ECDH-ES+A256KW');
    const parsed = parseCompactJwe(token);
    const cases: [string, () => Promise<unknown>][] = [
      ['other private key', () => decryptOurs(token, wrongKey)],
      // The all-zero u-coordinate is of small order: X25519 with it yields an all-zero secret.
      ['low-order epk', () => decryptCompactJwe({ ...parsed, header: { ...parsed.header, epk: { ...parsed.header.epk, x: b64u(new Uint8Array(32)) } } }, privateKey)],
      // The protected header is the AAD: a header with the same parameters re-serialised does not decrypt.
      ['header re-encoded', () => decryptCompactJwe({ ...parsed, parts: [b64u(utf8(JSON.stringify(decodeProtectedHeader(token), null, 1))), ...parsed.parts.slice(1)] as typeof parsed.parts }, privateKey)],
    ];
    for (const [label, run] of cases) {
      const error = await run().then(() => undefined, (e: unknown) => e);
      expect(error, label).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).code, label).toBe('DECRYPTION_FAILED');
    }
  });
});

describe('compact JWS signing', () => {
  it('jose and the independent verifier accept what signCompact produces, over the exact payload bytes', async () => {
    for (const payload of [{ a: 1, text: 'é' }, utf8('{"b":2}'), new Uint8Array(0)]) {
      const token = await signCompact(payload, signer, 'test+jwt');
      const { payload: bytes, protectedHeader } = await compactVerify(token, await cryptoKeyFor(signer.publicJwk, 'EdDSA'), { algorithms: ['EdDSA'] });
      const expected = payload instanceof Uint8Array ? payload : utf8(JSON.stringify(payload));
      expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
      expect(protectedHeader).toEqual({ alg: 'EdDSA', typ: 'test+jwt', kid: signer.kid });
      expect(await verifyCompactWithNoble(token, signer.publicJwk)).toBe(true);
    }
  });
});
