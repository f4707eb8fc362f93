import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  cryptoKeyFor,
  fromB64u,
  generateSigningKey,
  importSigningKey,
  publicJwkOf,
  utf8,
  verifyEd25519Strict,
  type ErrorCode,
  type PublicSigningJwk,
  type SigningKeyPair,
} from '@passerelle/protocol';
import { contentDigest } from '../src/http/content-digest.js';
import {
  buildSignatureBase,
  signRequest,
  verifyRequest,
  type RequestHeaders,
  type VerifyRequestInput,
} from '../src/http/message-signatures.js';
import { parseDictionary, serializeInnerList, type InnerList } from '../src/http/structured-fields.js';

async function codeOf(promise: Promise<unknown>): Promise<{ code: ErrorCode | undefined; details: unknown; message: string }> {
  try {
    await promise;
  } catch (e) {
    const err = e as { code?: ErrorCode; details?: unknown; message: string };
    return { code: err.code, details: err.details, message: err.message };
  }
  return { code: undefined, details: undefined, message: '' };
}

/**
 * RFC 9421 Appendix B.2.6 ("Signing a Request Using ed25519") with the key test-key-ed25519 of
 * Appendix B.1.4 (given there as PEM; these are the same 32-byte values as a JWK). The RFC prints
 * the signature base and fields wrapped per RFC 8792; they are unwrapped here.
 */
describe('RFC 9421 §B.2.6 test vector', () => {
  const TEST_KEY_ED25519 = {
    kty: 'OKP',
    crv: 'Ed25519',
    x: 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs',
    d: 'n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU',
  } as const;
  const SIGNATURE_INPUT =
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"';
  const SIGNATURE = 'sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:';
  const SIGNATURE_BASE = [
    '"date": Tue, 20 Apr 2021 02:07:55 GMT',
    '"@method": POST',
    '"@path": /foo',
    '"@authority": example.com',
    '"content-type": application/json',
    '"content-length": 18',
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
  ].join('\n');

  // Component values of the RFC's test-request message (Appendix B.2).
  const components = [
    ['date', 'Tue, 20 Apr 2021 02:07:55 GMT'],
    ['@method', 'POST'],
    ['@path', '/foo'],
    ['@authority', 'example.com'],
    ['content-type', 'application/json'],
    ['content-length', '18'],
  ] as const;

  it('rebuilds the signature base from the parsed Signature-Input', () => {
    const params = parseDictionary(SIGNATURE_INPUT, 4096).get('sig-b26') as InnerList;
    expect(params.kind).toBe('inner-list');
    expect(params.items.map((i) => i.value.value)).toEqual(components.map(([name]) => name));
    expect(buildSignatureBase(components, serializeInnerList(params))).toBe(SIGNATURE_BASE);
  });

  it('verifies the published signature with WebCrypto and with the strict verifier', async () => {
    const sig = parseDictionary(SIGNATURE, 4096).get('sig-b26');
    if (sig?.kind !== 'item' || sig.value.type !== 'bytes') throw new Error('vector signature did not parse');
    const signature = sig.value.value;
    const key = await cryptoKeyFor({ kty: 'OKP', crv: 'Ed25519', x: TEST_KEY_ED25519.x }, 'EdDSA');
    expect(await crypto.subtle.verify('Ed25519', key, signature as Uint8Array<ArrayBuffer>, utf8(SIGNATURE_BASE) as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(await verifyEd25519Strict(utf8(SIGNATURE_BASE), signature, fromB64u(TEST_KEY_ED25519.x))).toBe(true);
    const tampered = SIGNATURE_BASE.replace('/foo', '/fop');
    expect(await crypto.subtle.verify('Ed25519', key, signature as Uint8Array<ArrayBuffer>, utf8(tampered) as Uint8Array<ArrayBuffer>)).toBe(false);
  });

  it('reproduces the published signature (Ed25519 is deterministic)', async () => {
    const pair = await importSigningKey({ ...TEST_KEY_ED25519 });
    const key = await cryptoKeyFor(pair.privateJwk, 'EdDSA');
    const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', key, utf8(SIGNATURE_BASE) as Uint8Array<ArrayBuffer>));
    expect(`sig-b26=:${Buffer.from(signature).toString('base64')}:`).toBe(SIGNATURE);
  });

  it('is refused by the Passerelle profile (other components, no tag)', async () => {
    const result = await codeOf(
      verifyRequest({
        method: 'POST',
        url: 'https://example.com/foo',
        headers: { 'signature-input': SIGNATURE_INPUT, signature: SIGNATURE, 'content-type': 'application/json', 'content-digest': 'x' },
        resolveKey: () => ({ kty: 'OKP', crv: 'Ed25519', x: TEST_KEY_ED25519.x }),
        now: 1618884473,
      }),
    );
    expect(result.code).toBe('REQUEST_UNAUTHENTICATED');
  });
});

describe('signRequest / verifyRequest', () => {
  const NOW = 1_750_000_000;
  const URL_ = 'http://127.0.0.1:4001/inbox';
  const body = utf8('{"protected":"eyJ…","ciphertext":"…"}');
  let key: SigningKeyPair;
  let other: SigningKeyPair;
  let pinned: PublicSigningJwk;
  let signed: Record<string, string>;

  const resolveKey = (keyid: string): PublicSigningJwk | undefined => (keyid === key.kid ? pinned : undefined);
  const baseHeaders = (): Record<string, string> => ({ 'content-type': 'application/jose', 'content-digest': contentDigest(body) });
  const verify = (overrides: Partial<VerifyRequestInput> = {}) =>
    verifyRequest({ method: 'POST', url: URL_, headers: signed, resolveKey, now: NOW, ...overrides });

  beforeAll(async () => {
    key = await generateSigningKey();
    other = await generateSigningKey();
    pinned = publicJwkOf(key);
    const headers = baseHeaders();
    signed = { ...headers, ...(await signRequest({ method: 'POST', url: URL_, headers, key, created: NOW })) };
  });

  it('emits the profile fields exactly', () => {
    expect(signed['signature-input']).toBe(
      `pas=("@method" "@target-uri" "content-digest" "content-type");created=${NOW};keyid="${key.kid}";alg="ed25519";tag="passerelle"`,
    );
    expect(signed.signature).toMatch(/^pas=:[A-Za-z0-9+/]{86}==:$/);
  });

  it('signs the RFC 9421 §2.5 signature base', async () => {
    const base = [
      '"@method": POST',
      `"@target-uri": ${URL_}`,
      `"content-digest": ${contentDigest(body)}`,
      '"content-type": application/jose',
      `"@signature-params": ${signed['signature-input']!.slice('pas='.length)}`,
    ].join('\n');
    const signature = Buffer.from(signed.signature!.slice('pas=:'.length, -1), 'base64');
    expect(await verifyEd25519Strict(utf8(base), signature, fromB64u(pinned.x))).toBe(true);
  });

  it('verifies and returns keyid and created', async () => {
    await expect(verify()).resolves.toEqual({ keyid: key.kid, created: NOW });
    await expect(verify({ body })).resolves.toEqual({ keyid: key.kid, created: NOW });
    await expect(verify({ now: NOW + 300 })).resolves.toMatchObject({ keyid: key.kid });
    await expect(verify({ now: NOW - 300 })).resolves.toMatchObject({ keyid: key.kid });
  });

  it('reads header names case-insensitively and combines repeated field lines', async () => {
    const headers: RequestHeaders = {
      'Content-Type': signed['content-type'],
      'CONTENT-DIGEST': [signed['content-digest']!],
      'Signature-Input': signed['signature-input'],
      Signature: ['sig0=:AAAA:', signed.signature!],
    };
    await expect(verify({ headers })).resolves.toMatchObject({ keyid: key.kid });
  });

  it('accepts a single signature under another label', async () => {
    const headers = { ...signed, 'signature-input': signed['signature-input']!.replace(/^pas=/, 'sig1='), signature: signed.signature!.replace(/^pas=/, 'sig1=') };
    await expect(verify({ headers })).resolves.toMatchObject({ keyid: key.kid });
  });

  it('honours expires', async () => {
    const headers = baseHeaders();
    const withExpiry = { ...headers, ...(await signRequest({ method: 'POST', url: URL_, headers, key, created: NOW, expires: NOW + 60 })) };
    expect(withExpiry['signature-input']).toContain(`;created=${NOW};expires=${NOW + 60};keyid=`);
    await expect(verify({ headers: withExpiry, now: NOW + 59 })).resolves.toMatchObject({ created: NOW });
    expect((await codeOf(verify({ headers: withExpiry, now: NOW + 60 }))).code).toBe('REQUEST_UNAUTHENTICATED');
  });

  it('reports clock skew with the server time, both directions', async () => {
    const late = await codeOf(verify({ now: NOW + 301 }));
    expect(late.code).toBe('CLOCK_SKEW');
    expect(late.details).toEqual({ serverTime: new Date((NOW + 301) * 1000).toISOString().replace('.000Z', 'Z') });
    expect((await codeOf(verify({ now: NOW - 301 }))).code).toBe('CLOCK_SKEW');
    expect((await codeOf(verify({ now: NOW + 31, maxSkewSeconds: 30 }))).code).toBe('CLOCK_SKEW');
  });

  it('reports a body that differs from Content-Digest once the signature verifies', async () => {
    expect((await codeOf(verify({ body: utf8('other') }))).code).toBe('CONTENT_DIGEST_MISMATCH');
  });

  it('refuses signing without the covered headers', async () => {
    const result = await codeOf(signRequest({ method: 'POST', url: URL_, headers: { 'content-type': 'application/jose' }, key }));
    expect(result.code).toBe('MALFORMED');
    expect((await codeOf(signRequest({ method: 'POST', url: '/inbox', headers: baseHeaders(), key }))).code).toBe('MALFORMED');
  });

  const replaceInput = (from: string | RegExp, to: string) => (h: Record<string, string>) => ({ ...h, 'signature-input': h['signature-input']!.replace(from, to) });
  it.each<[string, Partial<VerifyRequestInput> | ((h: Record<string, string>) => Record<string, string>)]>([
    ['another method', { method: 'PUT' }],
    ['another path', { url: 'http://127.0.0.1:4001/inbox2' }],
    ['another origin (replayed to a different node)', { url: 'http://127.0.0.1:4002/inbox' }],
    ['another scheme', { url: 'https://127.0.0.1:4001/inbox' }],
    ['a query added', { url: `${URL_}?x=1` }],
    ['a relative target', { url: '/inbox' }],
    ['another content type', (h) => ({ ...h, 'content-type': 'application/json' })],
    ['another content digest', (h) => ({ ...h, 'content-digest': contentDigest(utf8('other')) })],
    ['no content-digest', ({ 'content-digest': _, ...h }) => h],
    ['no content-type', ({ 'content-type': _, ...h }) => h],
    ['no Signature', ({ signature: _, ...h }) => h],
    ['no Signature-Input', ({ 'signature-input': _, ...h }) => h],
    ['a flipped signature bit', (h) => ({ ...h, signature: h.signature!.replace(/^pas=:(.)/, (_m, c: string) => `pas=:${c === 'A' ? 'B' : 'A'}`) })],
    ['a truncated signature', (h) => ({ ...h, signature: 'pas=:AAAA:' })],
    ['a signature as a token', (h) => ({ ...h, signature: 'pas=abc' })],
    ['a signature with parameters', (h) => ({ ...h, signature: `${h.signature};x` })],
    ['an unknown keyid', replaceInput(/keyid="[^"]+"/, `keyid="${'A'.repeat(43)}"`)],
    ['a keyid over the bound', replaceInput(/keyid="[^"]+"/, `keyid="${'A'.repeat(300)}"`)],
    ['another alg', replaceInput('alg="ed25519"', 'alg="rsa-pss-sha512"')],
    ['no alg', replaceInput(';alg="ed25519"', '')],
    ['another tag', replaceInput('tag="passerelle"', 'tag="other"')],
    ['no tag', replaceInput(';tag="passerelle"', '')],
    ['a token tag', replaceInput('tag="passerelle"', 'tag=passerelle')],
    ['an unknown parameter', replaceInput(';tag=', ';nonce="n";tag=')],
    ['no created', replaceInput(`created=${NOW};`, '')],
    ['created as a string', replaceInput(`created=${NOW}`, `created="${NOW}"`)],
    ['created as a decimal', replaceInput(`created=${NOW}`, `created=${NOW}.5`)],
    ['expires before created', replaceInput(`created=${NOW};`, `created=${NOW};expires=${NOW - 1};`)],
    ['a missing component', replaceInput(' "content-type")', ')')],
    ['an extra component', replaceInput('"content-type")', '"content-type" "date")')],
    ['reordered components', replaceInput('"@method" "@target-uri"', '"@target-uri" "@method"')],
    ['a component with parameters', replaceInput('"content-type"', '"content-type";sf')],
    ['a duplicate label', (h) => ({ ...h, 'signature-input': `${h['signature-input']}, ${h['signature-input']}` })],
    ['two other labels', (h) => ({
      ...h,
      'signature-input': `${h['signature-input']!.replace(/^pas=/, 'a=')}, ${h['signature-input']!.replace(/^pas=/, 'b=')}`,
      signature: `${h.signature!.replace(/^pas=/, 'a=')}, ${h.signature!.replace(/^pas=/, 'b=')}`,
    })],
    ['mismatched labels', (h) => ({ ...h, signature: h.signature!.replace(/^pas=/, 'sig1=') })],
    ['Signature-Input not a list', (h) => ({ ...h, 'signature-input': 'pas="x"' })],
    ['unparseable Signature-Input', replaceInput(/\)/, '')],
    ['over-long Signature-Input', (h) => ({ ...h, 'signature-input': `${h['signature-input']}, x="${'a'.repeat(5000)}"` })],
  ])('rejects %s', async (_name, change) => {
    const overrides = typeof change === 'function' ? { headers: change({ ...signed }) } : change;
    const result = await codeOf(verify(overrides));
    expect(result.code).toBe('REQUEST_UNAUTHENTICATED');
    expect(result.message).toBe('The request has no valid HTTP message signature from a pinned peer.');
  });

  it('rejects a signature by a key that is not the one pinned for the keyid', async () => {
    const headers = baseHeaders();
    const forged = { ...headers, ...(await signRequest({ method: 'POST', url: URL_, headers, key: other, created: NOW })) };
    const impersonating = { ...forged, 'signature-input': forged['signature-input']!.replace(other.kid, key.kid) };
    expect((await codeOf(verify({ headers: forged }))).code).toBe('REQUEST_UNAUTHENTICATED');
    expect((await codeOf(verify({ headers: impersonating }))).code).toBe('REQUEST_UNAUTHENTICATED');
  });

  it('rejects a resolved key that is not an Ed25519 public key', async () => {
    const bad = { kty: 'OKP', crv: 'X25519', x: pinned.x } as unknown as PublicSigningJwk;
    expect((await codeOf(verify({ resolveKey: () => bad }))).code).toBe('REQUEST_UNAUTHENTICATED');
  });

  it('does the cheap checks before resolving keys or verifying', async () => {
    const resolver = vi.fn(resolveKey);
    const verifySpy = vi.spyOn(crypto.subtle, 'verify');
    try {
      await codeOf(verify({ resolveKey: resolver, headers: { ...signed, 'signature-input': signed['signature-input']!.replace(';tag="passerelle"', '') } }));
      await codeOf(verify({ resolveKey: resolver, now: NOW + 1000 }));
      expect(resolver).not.toHaveBeenCalled();
      await codeOf(verify({ resolveKey: () => undefined }));
      expect(verifySpy).not.toHaveBeenCalled();
      await verify({ resolveKey: resolver });
      expect(resolver).toHaveBeenCalledWith(key.kid);
      expect(verifySpy).toHaveBeenCalledTimes(1);
    } finally {
      verifySpy.mockRestore();
    }
  });

  it('accepts an asynchronous resolver', async () => {
    await expect(verify({ resolveKey: async (keyid) => resolveKey(keyid) })).resolves.toMatchObject({ keyid: key.kid });
  });
});
