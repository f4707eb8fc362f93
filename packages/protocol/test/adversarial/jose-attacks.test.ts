/**
 * JOSE-level attacks (spec/errors.md; docs/attacks.md, "Protocol (JOSE)"). Each test names one
 * attack, builds it for real (valid signatures over forged headers, genuine encryption under
 * forged parameters) and asserts the stable error code on every verifier it can reach.
 */
import { compactVerify } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AGREEMENT_TERMINATION_TYP,
  b64u,
  b64uJson,
  createNodeDocument,
  ERROR_CODES,
  fromB64u,
  joinSdJwt,
  MAX_COMPACT_LENGTH,
  MESSAGE_TYPS,
  nodeKeyEntry,
  parseCompactJwe,
  parseCompactJws,
  ProtocolError,
  rawPublicKey,
  resolveSigningKey,
  revokeKey,
  signMessage,
  toTimestamp,
  utf8,
  verifyCompact,
  verifyCompactWithNoble,
  verifyConsent,
  verifyNodeDocument,
  verifyReceipt,
  verifySdJwtMessage,
  generateSigningKey,
  type NodeDocument,
  type SigningKeyPair,
} from '../../src/index.js';
import {
  baseHeader,
  caught,
  compactParts,
  CURVE25519_P,
  decodeSegment,
  deflateRaw,
  encryptCompact,
  expectCode,
  expectRefusedEverywhere,
  flipBit,
  forge,
  hmacSha256,
  isNothingThrown,
  jwsSurfaces,
  onCurve25519,
  originalCompact,
  randomBytes,
  replacePart,
  sampleReferral,
  segmentOf,
  signWithHeader,
  SMALL_ORDER_U,
  strayTrailingBits,
  uBytes,
  world,
  type JwsSurface,
  type World,
} from './helpers.js';

let w: World;
let surfaces: JwsSurface[];

beforeAll(async () => {
  w = await world();
  surfaces = jwsSurfaces(w);
});

afterEach(() => {
  vi.restoreAllMocks();
});

const NONE_CASINGS = ['none', 'None', 'NONE', 'nOnE'] as const;

/** A JWE header with the sealed message's parts kept: only the header policy stands in the way. */
function withJweHeader(edit: (header: Record<string, unknown>) => Record<string, unknown>, jwe = w.sealed.jwe): string {
  const header = decodeSegment(jwe.split('.')[0]!);
  return replacePart(jwe, 0, b64uJson(edit(header)));
}

async function sealedTo(header: Record<string, unknown>, options: Parameters<typeof encryptCompact>[2] = {}): Promise<string> {
  return encryptCompact(w.message.sdJwt, w.sn.enc.publicJwk, { ...options, header: { ...options.header, ...header } });
}

describe('JWS: algorithm confusion', () => {
  it('control: the genuine objects, and their payloads re-signed under the standard header, verify on every surface', async () => {
    for (const s of surfaces) {
      expect(isNothingThrown(await caught(() => s.verify(originalCompact(s)))), s.name).toBe(true);
      const resigned = await forge(s, baseHeader(s), 'resigned');
      expect(isNothingThrown(await caught(() => s.verify(resigned))), s.name).toBe(true);
    }
  });

  for (const alg of NONE_CASINGS) {
    it(`alg "${alg}" with an empty signature (unsecured JWS)`, async () => {
      await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), alg }, 'empty'), 'UNSUPPORTED_ALGORITHM');
    });

    it(`alg "${alg}" with a signature (the original one, and a valid one over the forged header)`, async () => {
      await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), alg }, 'original'), 'UNSUPPORTED_ALGORITHM');
      await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), alg }, 'resigned'), 'UNSUPPORTED_ALGORITHM');
    });
  }

  it("HS256 keyed with the signer's own Ed25519 public key bytes (key confusion)", async () => {
    const make = async (s: JwsSurface) => {
      const protectedB64 = b64uJson({ ...baseHeader(s), alg: 'HS256' });
      return `${protectedB64}.${s.payloadB64}.${await hmacSha256(rawPublicKey(s.key.publicJwk), `${protectedB64}.${s.payloadB64}`)}`;
    };
    // The forgery is genuine: a verifier that lets the header pick the algorithm accepts it.
    for (const s of surfaces) {
      const token = await make(s);
      await expect(compactVerify(token, rawPublicKey(s.key.publicJwk))).resolves.toBeDefined();
    }
    await expectRefusedEverywhere(surfaces, make, 'UNSUPPORTED_ALGORITHM');
  });

  it('HS256 and HS512 keyed with the public JWK text or its base64url x value', async () => {
    for (const [alg, hash] of [
      ['HS256', 'SHA-256'],
      ['HS512', 'SHA-512'],
    ] as const) {
      for (const secretOf of [(s: JwsSurface) => utf8(JSON.stringify(s.key.publicJwk)), (s: JwsSurface) => utf8(s.key.publicJwk.x)]) {
        await expectRefusedEverywhere(
          surfaces,
          async (s) => {
            const protectedB64 = b64uJson({ ...baseHeader(s), alg });
            return `${protectedB64}.${s.payloadB64}.${await hmacSha256(secretOf(s), `${protectedB64}.${s.payloadB64}`, hash)}`;
          },
          'UNSUPPORTED_ALGORITHM',
        );
      }
    }
  });

  it.each([
    ['RS256', 256],
    ['PS256', 256],
    ['ES256', 64],
    ['ES256K', 64],
    ['ES512', 132],
    ['Ed448', 114],
    ['Ed25519', 64],
    ['eddsa', 64],
    ['EDDSA', 64],
    ['EdDSA ', 64],
    ['', 64],
  ] as const)('alg %j outside the allow-list (signature of %i bytes)', async (alg, length) => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), alg }, { random: length }), 'UNSUPPORTED_ALGORITHM');
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), alg }, 'resigned'), 'UNSUPPORTED_ALGORITHM');
  });

  it('alg missing, null, numeric, an array or an object', async () => {
    for (const alg of [undefined, null, 0, ['EdDSA'], { name: 'EdDSA' }]) {
      await expectRefusedEverywhere(
        surfaces,
        (s) => {
          const { alg: _, ...rest } = baseHeader(s);
          return forge(s, alg === undefined ? rest : { ...rest, alg }, 'resigned');
        },
        'UNSUPPORTED_ALGORITHM',
      );
    }
  });

  it('EdDSA naming curve Ed448 in the header (crv)', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), crv: 'Ed448' }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('EdDSA carrying a genuine Ed448 signature, with a resolver that hands out the Ed448 key', async () => {
    const pair = (await crypto.subtle.generateKey({ name: 'Ed448' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
    const s = surfaces.find((x) => x.name === 'verifyCompact')!;
    const protectedB64 = b64uJson({ alg: 'EdDSA', typ: s.typ, kid: s.key.kid });
    const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed448' }, pair.privateKey, utf8(`${protectedB64}.${s.payloadB64}`) as Uint8Array<ArrayBuffer>));
    expect(signature).toHaveLength(114);
    const token = `${protectedB64}.${s.payloadB64}.${b64u(signature)}`;
    const ed448 = { kty: 'OKP', crv: 'Ed448', x: jwk.x } as never;
    await expectCode(() => verifyCompact(token, MESSAGE_TYPS, () => ed448), 'SIGNATURE_INVALID');
    await expectCode(() => verifySdJwtMessage(joinSdJwt(token, []), { resolveSenderKey: () => ed448 }), 'SIGNATURE_INVALID');
  });

  it('signature malleability: S replaced by S + L (RFC 8032 §5.1.7)', async () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    await expectRefusedEverywhere(
      surfaces,
      (s) => {
        const sig = new Uint8Array(fromB64u(s.signatureB64));
        let scalar = 0n;
        for (let i = 31; i >= 0; i--) scalar = (scalar << 8n) | BigInt(sig[32 + i]!);
        sig.set(uBytes(scalar + L), 32);
        return `${s.protectedB64}.${s.payloadB64}.${b64u(sig)}`;
      },
      'SIGNATURE_INVALID',
    );
  });

  it('the same signature bytes spelt differently (stray trailing bits, padding, whitespace)', async () => {
    for (const respell of [strayTrailingBits, (sig: string) => `${sig}==`, (sig: string) => `${sig.slice(0, 40)} ${sig.slice(41)}`, (sig: string) => `${sig.slice(0, 85)}\n`]) {
      await expectRefusedEverywhere(surfaces, (s) => `${s.protectedB64}.${s.payloadB64}.${respell(s.signatureB64)}`, 'SIGNATURE_INVALID');
    }
  });

  it('signature truncated, extended or removed under the genuine header', async () => {
    for (const edit of [(sig: string) => sig.slice(0, 43), (sig: string) => `${sig}AAAA`, () => '']) {
      await expectRefusedEverywhere(surfaces, (s) => `${s.protectedB64}.${s.payloadB64}.${edit(s.signatureB64)}`, 'SIGNATURE_INVALID');
    }
  });
});

describe('JWS: header parameters', () => {
  it.each(['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'])('%s in the header, naming a key the attacker holds', async (name) => {
    const value: Record<string, unknown> = {
      jwk: w.mallory.sig.publicJwk,
      jku: 'https://intrus.example.org/keys.json',
      x5u: 'https://intrus.example.org/cert.pem',
      x5c: ['MIIBszCCAVmgAwIBAgIUexample'],
      x5t: b64u(randomBytes(20)),
      'x5t#S256': b64u(randomBytes(32)),
    };
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), kid: w.mallory.sig.kid, [name]: value[name] }, 'mallory', w.mallory.sig), 'FORBIDDEN_HEADER');
    // Also when the legitimate key signed: the parameter itself is refused, not the signature.
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), [name]: value[name] }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('crit ["b64"] with b64: false (unencoded payload, RFC 7797)', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), b64: false, crit: ['b64'] }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('b64: false without crit', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), b64: false }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('crit naming an unknown extension that is present', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), crit: ['x-passerelle-ext'], 'x-passerelle-ext': true }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('crit as an empty array', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), crit: [] }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('crit naming a header parameter that is absent', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), crit: ['exp'] }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('zip: "DEF" on a JWS', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), zip: 'DEF' }, 'resigned'), 'FORBIDDEN_HEADER');
  });

  it('unknown and prototype-polluting header members (__proto__, constructor, x-custom)', async () => {
    for (const raw of [
      (s: JwsSurface) => `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}","__proto__":{"alg":"none"}}`,
      (s: JwsSurface) => `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}","constructor":{"prototype":{}}}`,
      (s: JwsSurface) => `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}","x-custom":1}`,
    ]) {
      await expectRefusedEverywhere(surfaces, (s) => forge(s, raw(s), 'resigned'), 'FORBIDDEN_HEADER');
    }
  });

  it('kid missing, not a string, empty or over 128 characters', async () => {
    for (const kid of [undefined, 7, '', 'k'.repeat(129)]) {
      await expectRefusedEverywhere(
        surfaces,
        (s) => {
          const { kid: _, ...rest } = baseHeader(s);
          return forge(s, kid === undefined ? rest : { ...rest, kid }, 'resigned');
        },
        'FORBIDDEN_HEADER',
      );
    }
  });

  it('typ missing (WRONG_TYPE) or not a string (MALFORMED)', async () => {
    await expectRefusedEverywhere(
      surfaces,
      (s) => {
        const { typ: _, ...rest } = baseHeader(s);
        return forge(s, rest, 'resigned');
      },
      'WRONG_TYPE',
    );
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), typ: ['JWT'] }, 'resigned'), 'MALFORMED');
  });

  it('a protected header that is not a JSON object (array, string, null, invalid JSON)', async () => {
    for (const raw of ['["EdDSA"]', '"EdDSA"', 'null', '{"alg":"EdDSA",}']) {
      await expectRefusedEverywhere(surfaces, (s) => forge(s, raw, 'resigned'), 'MALFORMED');
    }
  });
});

describe('JWS: duplicate member names in the protected header', () => {
  // RFC 7515 §4: parsers either reject duplicates or keep the lexically last member. Passerelle keeps
  // the last (JSON.parse), and the value the policy checks is the one the verifier then uses.
  it('{"alg":"EdDSA","alg":"none"} is judged by its effective (last) value and refused', async () => {
    await expectRefusedEverywhere(
      surfaces,
      (s) => forge(s, `{"alg":"EdDSA","alg":"none","typ":"${s.typ}","kid":"${s.key.kid}"}`, 'resigned'),
      'UNSUPPORTED_ALGORITHM',
    );
  });

  it('{"alg":"none","alg":"EdDSA"} validly signed verifies as EdDSA, and both verifiers agree', async () => {
    for (const s of surfaces) {
      const token = await forge(s, `{"alg":"none","alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}"}`, 'resigned');
      expect(parseCompactJws(token).header.alg).toBe('EdDSA');
      expect(await verifyCompactWithNoble(token, s.key.publicJwk)).toBe(true);
      expect(isNothingThrown(await caught(() => s.verify(token))), s.name).toBe(true);
    }
  });

  it('{"kid": legitimate, "kid": outsider} signed by the outsider: the lookup uses the outsider kid (KEY_UNKNOWN)', async () => {
    await expectRefusedEverywhere(
      surfaces,
      (s) => forge(s, `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}","kid":"${w.mallory.sig.kid}"}`, 'mallory', w.mallory.sig),
      'KEY_UNKNOWN',
    );
  });

  it('{"alg":"ECDH-ES+A256KW","alg":"RSA1_5"} in a genuinely encrypted JWE header', async () => {
    const jwe = await sealedTo({}, { rawHeader: (json) => json.replace('"alg":"ECDH-ES+A256KW"', '"alg":"ECDH-ES+A256KW","alg":"RSA1_5"') });
    await expectCode(() => w.openAsSn(jwe), 'UNSUPPORTED_ALGORITHM');
  });
});

describe('JWE: algorithms and parameters (open)', () => {
  it('control: a JWE from the independent ECDH-ES+A256KW encryptor opens', async () => {
    const opened = await w.openAsSn(await sealedTo({}));
    expect(opened.header.from).toBe(w.be.id);
    expect(opened.jwt).toBe(w.message.jwt);
  });

  it.each(['RSA1_5', 'RSA-OAEP', 'RSA-OAEP-256', 'dir', 'A128KW', 'A256KW', 'A128GCMKW', 'ECDH-ES', 'ECDH-ES+A128KW', 'PBES2-HS512+A256KW', 'none', 'ecdh-es+a256kw'])(
    'alg %s',
    async (alg) => {
      const decryptionKey = vi.fn(() => w.sn.enc);
      const direct = alg === 'dir' || alg === 'ECDH-ES';
      const jwe = replacePart(withJweHeader((h) => ({ ...h, alg })), 1, direct ? '' : w.sealed.jwe.split('.')[1]!);
      await expectCode(() => w.openAsSn(jwe, { decryptionKey }), 'UNSUPPORTED_ALGORITHM');
      expect(decryptionKey).not.toHaveBeenCalled();
    },
  );

  it('PBES2-HS256+A128KW with p2c = 2^31 - 1 is refused before any key derivation', async () => {
    const subtle = globalThis.crypto.subtle;
    const spies = [vi.spyOn(subtle, 'deriveBits'), vi.spyOn(subtle, 'deriveKey'), vi.spyOn(subtle, 'importKey'), vi.spyOn(subtle, 'decrypt'), vi.spyOn(subtle, 'unwrapKey')];
    const decryptionKey = vi.fn(() => w.sn.enc);
    const jwe = withJweHeader((h) => ({ alg: 'PBES2-HS256+A128KW', enc: h.enc, kid: h.kid, p2s: b64u(randomBytes(16)), p2c: 2 ** 31 - 1 }));
    const started = performance.now();
    await expectCode(() => w.openAsSn(jwe, { decryptionKey }), 'UNSUPPORTED_ALGORITHM');
    // A sanity bound only: the proof is that no key derivation or decryption primitive ran at all.
    expect(performance.now() - started).toBeLessThan(50);
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    expect(decryptionKey).not.toHaveBeenCalled();
  });

  it.each(['A128CBC-HS256', 'A256CBC-HS512', 'A128GCM', 'A192GCM', 'a256gcm'])('enc %s', async (enc) => {
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, enc }))), 'UNSUPPORTED_ALGORITHM');
  });

  it('zip: "DEF" with a genuinely compressed and correctly encrypted payload', async () => {
    const jwe = await sealedTo({ zip: 'DEF' }, { compress: deflateRaw });
    await expectCode(() => w.openAsSn(jwe), 'FORBIDDEN_HEADER');
  });

  it.each([
    ['jwk', { kty: 'OKP', crv: 'X25519', x: b64u(randomBytes(32)) }],
    ['jku', 'https://intrus.example.org/keys.json'],
    ['x5u', 'https://intrus.example.org/cert.pem'],
    ['x5c', ['MIIBszCCAVmgAwIBAgIUexample']],
    ['x5t', 'dGh1bWJwcmludA'],
    ['crit', ['exp']],
    ['apu', 'QWxpY2U'],
    ['apv', 'Qm9i'],
    ['p2c', 1_000_000],
    ['iv', 'AAAAAAAAAAAAAAAA'],
  ])('%s in a correctly encrypted JWE header', async (name, value) => {
    await expectCode(async () => w.openAsSn(await sealedTo({ [name]: value })), 'FORBIDDEN_HEADER');
  });

  it('epk on P-256 (its y member is outside the epk allow-list)', async () => {
    const epk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk }))), 'FORBIDDEN_HEADER');
  });

  it('epk on X448', async () => {
    const epk = { kty: 'OKP', crv: 'X448', x: b64u(randomBytes(56)) };
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk }))), 'KEY_INVALID');
  });

  it('epk on Ed25519 (a signing curve) or under the wrong key type', async () => {
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk: { ...(h.epk as object), crv: 'Ed25519' } }))), 'KEY_INVALID');
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk: { ...(h.epk as object), kty: 'EC' } }))), 'KEY_INVALID');
  });

  it('epk carrying a private part (d)', async () => {
    await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk: { ...(h.epk as object), d: w.mallory.enc.privateJwk.d } }))), 'FORBIDDEN_HEADER');
  });

  it('epk x of the wrong length (0, 31 and 33 bytes) or not base64url', async () => {
    for (const x of ['', b64u(randomBytes(31)), b64u(randomBytes(33)), `${b64u(randomBytes(32)).slice(0, 42)}+`]) {
      await expectCode(() => w.openAsSn(withJweHeader((h) => ({ ...h, epk: { kty: 'OKP', crv: 'X25519', x } }))), 'KEY_INVALID');
    }
  });

  it('epk missing', async () => {
    await expectCode(() => w.openAsSn(withJweHeader(({ epk: _, ...h }) => h)), 'MALFORMED');
  });

  it.each(SMALL_ORDER_U)('small-order epk ($name) with the JWE encrypted under the all-zero shared secret it forces', async ({ bytes }) => {
    const jwe = await sealedTo({}, { epkX: bytes, sharedSecret: new Uint8Array(32) });
    const error = await expectCode(() => w.openAsSn(jwe), 'DECRYPTION_FAILED');
    expect(error.message).toBe(ERROR_CODES.DECRYPTION_FAILED);
  });

  it('epk on the quadratic twist (not on Curve25519) fails as generic decryption failure', async () => {
    let u = 2n;
    while (onCurve25519(u)) u++;
    expect(u < CURVE25519_P).toBe(true);
    const jwe = withJweHeader((h) => ({ ...h, epk: { kty: 'OKP', crv: 'X25519', x: b64u(uBytes(u)) } }));
    const error = await expectCode(() => w.openAsSn(jwe), 'DECRYPTION_FAILED');
    expect(error.message).toBe(ERROR_CODES.DECRYPTION_FAILED);
  });
});

/** Every tampering of one genuine JWE that must end in the one generic decryption failure. */
async function tamperings(jwe: string): Promise<{ label: string; token: string }[]> {
  const parts = jwe.split('.');
  const out: { label: string; token: string }[] = [];
  for (const index of [1, 2, 3, 4]) {
    const part = parts[index]!;
    const length = fromB64u(part).length;
    for (const at of [0, Math.floor(length / 2), -1]) {
      for (const bit of [0, 7]) out.push({ label: `part ${index}: bit ${bit} of byte ${at}`, token: replacePart(jwe, index, flipBit(part, at, bit)) });
    }
    out.push({ label: `part ${index}: last byte removed`, token: replacePart(jwe, index, b64u(fromB64u(part).slice(0, -1))) });
    out.push({ label: `part ${index}: truncated to half`, token: replacePart(jwe, index, b64u(fromB64u(part).slice(0, Math.floor(length / 2)))) });
    out.push({ label: `part ${index}: emptied`, token: replacePart(jwe, index, '') });
    out.push({ label: `part ${index}: one byte appended`, token: replacePart(jwe, index, b64u(new Uint8Array([...fromB64u(part), 0]))) });
  }
  const header = decodeSegment(parts[0]!);
  const epk = header.epk as { x: string };
  for (const at of [0, 15, 31]) {
    out.push({ label: `part 0: bit of epk.x byte ${at}`, token: replacePart(jwe, 0, b64uJson({ ...header, epk: { ...epk, x: flipBit(epk.x, at, 1) } })) });
  }
  out.push({ label: 'part 0: same header with a space (other AAD bytes)', token: replacePart(jwe, 0, segmentOf(JSON.stringify(header, null, 1))) });
  out.push({ label: 'part 0: same header, members reordered', token: replacePart(jwe, 0, b64uJson(Object.fromEntries(Object.entries(header).reverse()))) });
  return out;
}

/** The same bytes spelt another way in parts 1-4: jose would decode them, the policy must not accept them. */
function respellings(jwe: string): { label: string; token: string }[] {
  const parts = jwe.split('.');
  const out: { label: string; token: string }[] = [];
  for (const index of [1, 3, 4]) {
    if (parts[index]!.length % 4 === 2 || parts[index]!.length % 4 === 3) {
      out.push({ label: `part ${index}: stray trailing bits`, token: replacePart(jwe, index, strayTrailingBits(parts[index]!)) });
    }
  }
  const ct = parts[3]!;
  out.push({ label: 'part 3: whitespace inside', token: replacePart(jwe, 3, `${ct.slice(0, 8)} ${ct.slice(8)}`) });
  out.push({ label: 'part 3: line break inside', token: replacePart(jwe, 3, `${ct.slice(0, 8)}\n${ct.slice(8)}`) });
  // A lenient decoder ignores padding, including a whole quartet of it after a complete one.
  out.push({ label: 'part 3: padded', token: replacePart(jwe, 3, `${ct}${'='.repeat(4 - (ct.length % 4))}`) });
  out.push({ label: 'part 4: padded in place of the last characters', token: replacePart(jwe, 4, `${parts[4]!.slice(0, 20)}==`) });
  return out;
}

describe('JWE: tampering gives one generic error (no decryption oracle)', () => {
  for (const index of [0, 1, 2, 3, 4]) {
    it(`part ${index} bit-flipped at several positions and truncated`, async () => {
      const cases = (await tamperings(w.sealed.jwe)).filter((c) => c.label.startsWith(`part ${index}:`));
      expect(cases.length).toBeGreaterThanOrEqual(5);
      for (const c of cases) await expectCode(() => w.openAsSn(c.token), 'DECRYPTION_FAILED', undefined, c.label);
    });
  }

  it('the same ciphertext bytes spelt differently (stray trailing bits, whitespace, padding)', async () => {
    const cases = respellings(w.sealed.jwe);
    expect(cases.length).toBeGreaterThanOrEqual(5);
    for (const c of cases) {
      expect(c.token, c.label).not.toBe(w.sealed.jwe);
      await expectCode(() => w.openAsSn(c.token), 'DECRYPTION_FAILED', undefined, c.label);
    }
  });

  it('every tampering, an unknown recipient kid and a JWE for another recipient fail with identical code, message and no details', async () => {
    const forFr = await encryptCompact(w.message.sdJwt, { ...w.fr.enc.publicJwk, kid: w.sn.enc.kid });
    const cases = [
      ...(await tamperings(w.sealed.jwe)),
      ...respellings(w.sealed.jwe),
      { label: 'unknown kid', token: withJweHeader((h) => ({ ...h, kid: w.mallory.enc.kid })) },
      { label: 'encrypted to another key under our kid', token: forFr },
    ];
    const errors: ProtocolError[] = [];
    for (const c of cases) errors.push(await expectCode(() => w.openAsSn(c.token), 'DECRYPTION_FAILED', undefined, c.label));
    expect(new Set(errors.map((e) => e.message))).toEqual(new Set([ERROR_CODES.DECRYPTION_FAILED]));
    expect(errors.every((e) => e.details === undefined && e.cause === undefined)).toBe(true);
  });

  it('the whole token truncated to fewer than five parts is malformed', async () => {
    const jwe = w.sealed.jwe;
    await expectCode(() => w.openAsSn(jwe.slice(0, jwe.lastIndexOf('.'))), 'MALFORMED');
    await expectCode(() => w.openAsSn(`${jwe}.AAAA`), 'MALFORMED');
  });
});

describe('serialisation and type confusion', () => {
  it('a compact JWS (or the bare SD-JWT) given to open(), where a JWE is required', async () => {
    await expectCode(() => w.openAsSn(w.message.jwt), 'WRONG_TYPE');
    await expectCode(() => w.openAsSn(w.message.sdJwt), 'WRONG_TYPE');
    await expectCode(() => Promise.resolve().then(() => parseCompactJwe(w.receipt.token)), 'WRONG_TYPE');
  });

  it('a JWE given where a JWS is required', async () => {
    const jwe = w.sealed.jwe;
    await expectCode(() => verifyCompact(jwe, MESSAGE_TYPS, () => w.be.sig.publicJwk), 'WRONG_TYPE');
    await expectCode(() => verifySdJwtMessage(`${jwe}~`, { resolveSenderKey: w.resolveNode }), 'WRONG_TYPE');
    await expectCode(() => verifyReceipt(jwe, w.receipt.options), 'WRONG_TYPE', 'RECEIPT_INVALID');
    await expectCode(() => verifyConsent(jwe, w.resolveNode), 'WRONG_TYPE', 'CONSENT_INVALID');
    await expectCode(() => Promise.resolve().then(() => parseCompactJws(jwe)), 'WRONG_TYPE');
  });

  it('a JWE with another typ or cty than the envelope', async () => {
    await expectCode(async () => w.openAsSn(await sealedTo({ typ: 'passerelle-receipt+jwt' })), 'WRONG_TYPE');
    await expectCode(async () => w.openAsSn(await sealedTo({ cty: 'JWT' })), 'WRONG_TYPE');
  });

  it('a JWE whose plaintext is a bare JWS rather than an SD-JWT', async () => {
    await expectCode(async () => w.openAsSn(await encryptCompact(w.message.jwt, w.sn.enc.publicJwk)), 'MALFORMED');
  });

  it('a JWE nested inside a JWE', async () => {
    await expectCode(async () => w.openAsSn(await encryptCompact(`${w.sealed.jwe}~`, w.sn.enc.publicJwk)), 'WRONG_TYPE');
  });

  it('one message type submitted as another (a referral re-signed as a reintegration profile)', async () => {
    const relabelled = await signWithHeader({ alg: 'EdDSA', typ: 'passerelle-reintegration-profile+sd-jwt', kid: w.be.sig.kid }, compactParts(w.message.jwt)[1], w.be.sig);
    await expectCode(async () => w.openAsSn(await encryptCompact(joinSdJwt(relabelled, w.message.disclosures), w.sn.enc.publicJwk)), 'WRONG_TYPE');
    await expectCode(() => w.openAsSn(w.sealed.jwe, { expectedTypes: ['reintegration-update'] }), 'WRONG_TYPE');
  });

  it('every signed object re-signed by its own signer under every other typ', async () => {
    const typs = [
      'passerelle-referral+sd-jwt',
      'passerelle-reintegration-profile+sd-jwt',
      'passerelle-receipt+jwt',
      'passerelle-consent+jwt',
      'passerelle-node+json',
      'passerelle-agreement+json',
      AGREEMENT_TERMINATION_TYP,
      'JWT',
    ];
    for (const s of surfaces) {
      const others = typs.filter((t) => t !== s.typ && !(s.name === 'verifyCompact' && MESSAGE_TYPS.includes(t)));
      for (const typ of others) {
        const token = await forge(s, { ...baseHeader(s), typ }, 'resigned');
        await expectCode(() => s.verify(token), 'WRONG_TYPE', s.wrappedIn, `${s.name} as ${typ}`);
      }
    }
  });
});

describe('keys', () => {
  const DAY = 86_400_000;

  async function beDocument(keys: NodeDocument['keys'], signers: SigningKeyPair[]): Promise<NodeDocument> {
    const now = new Date();
    const jws = await createNodeDocument(
      {
        id: w.be.id,
        name: 'Accueil Exemple Belgique',
        country: 'BE',
        roles: ['reception-agency'],
        inbox: `${w.be.id}/passerelle/inbox`,
        keys,
        messageTypes: ['referral'],
        languages: ['fr'],
        issuedAt: toTimestamp(now.getTime() - 60_000),
      },
      signers,
    );
    return (await verifyNodeDocument(jws, { now })).document;
  }

  /** A sender key resolver backed by node documents, as a node resolves peers. */
  const fromDocument = (doc: NodeDocument) => (iss: string, kid: string, at: Date) => {
    if (iss !== doc.id) return undefined;
    return resolveSigningKey(doc, kid, at);
  };

  it('a signature by another valid key of the same organisation that its node document does not list', async () => {
    const other = await generateSigningKey();
    const doc = await beDocument([nodeKeyEntry(w.be.sig, { notBefore: new Date(Date.now() - DAY) })], [w.be.sig]);
    const { sdJwt } = await signMessage(sampleReferral(w.be, w.sn), other);
    const jwe = await encryptCompact(sdJwt, w.sn.enc.publicJwk);
    const error = await expectCode(() => w.openAsSn(jwe, { resolveSenderKey: fromDocument(doc) }), 'KEY_UNKNOWN');
    expect(error.details).toEqual({ kid: other.kid });
    // The control: the listed key opens the same kind of message through the same resolver.
    const good = await encryptCompact((await signMessage(sampleReferral(w.be, w.sn), w.be.sig)).sdJwt, w.sn.enc.publicJwk);
    await expect(w.openAsSn(good, { resolveSenderKey: fromDocument(doc) })).resolves.toBeDefined();
  });

  it('a message signed with a key revoked before the message was created', async () => {
    const successor = await generateSigningKey();
    const notBefore = new Date(Date.now() - 2 * DAY);
    const keys = revokeKey([nodeKeyEntry(w.be.sig, { notBefore }), nodeKeyEntry(successor, { notBefore })], w.be.sig.kid, {
      at: new Date(Date.now() - DAY),
      reason: 'compromised',
    });
    const doc = await beDocument(keys, [successor]);
    const jwe = await encryptCompact(w.message.sdJwt, w.sn.enc.publicJwk);
    await expectCode(() => w.openAsSn(jwe, { resolveSenderKey: fromDocument(doc) }), 'KEY_NOT_VALID');
  });

  it('a message signed before its key became valid (notBefore after iat)', async () => {
    const early = await signMessage(sampleReferral(w.be, w.sn, new Date(Date.now() - 2 * DAY)), w.be.sig);
    const doc = await beDocument([nodeKeyEntry(w.be.sig, { notBefore: new Date(Date.now() - DAY) })], [w.be.sig]);
    await expectCode(async () => w.openAsSn(await encryptCompact(early.sdJwt, w.sn.enc.publicJwk), { resolveSenderKey: fromDocument(doc) }), 'KEY_NOT_VALID');
  });

  it("the signer's kid on a signature made with an outsider's key", async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, baseHeader(s), 'mallory', w.mallory.sig), 'SIGNATURE_INVALID');
  });

  it("an outsider's own kid and signature", async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, { ...baseHeader(s), kid: w.mallory.sig.kid }, 'mallory', w.mallory.sig), 'KEY_UNKNOWN');
  });

  it("another partner's kid on a message whose iss is the sender", async () => {
    const token = await forge(surfaces[0]!, { ...baseHeader(surfaces[0]!), kid: w.fr.sig.kid }, 'resigned');
    for (const s of surfaces.slice(0, 3)) await expectCode(() => s.verify(token), 'KEY_UNKNOWN', undefined, s.name);
  });
});

describe('sizes and nesting', () => {
  /** A payload the legitimate signer re-signs with an extra member of `extra`. */
  async function withPayloadMember(s: JwsSurface, name: string, value: unknown, rawValue?: string): Promise<string> {
    const payload = decodeSegment(s.payloadB64);
    const json = rawValue === undefined ? JSON.stringify({ ...payload, [name]: value }) : `${JSON.stringify(payload).slice(0, -1)},"${name}":${rawValue}}`;
    return signWithHeader(baseHeader(s), segmentOf(json), s.key);
  }

  it('a validly signed object padded over the size bound', async () => {
    const padding = ' '.repeat(Math.ceil((MAX_COMPACT_LENGTH * 3) / 4) + 16);
    await expectRefusedEverywhere(
      surfaces,
      async (s) => {
        const json = `${JSON.stringify(decodeSegment(s.payloadB64)).slice(0, -1)}${padding}}`;
        return signWithHeader(baseHeader(s), segmentOf(json), s.key);
      },
      'TOO_LARGE',
    );
    await expectCode(() => w.openAsSn(`${w.sealed.jwe.split('.').slice(0, 3).join('.')}.${'A'.repeat(MAX_COMPACT_LENGTH)}.${w.sealed.jwe.split('.')[4]}`), 'TOO_LARGE');
  });

  it('a protected header over its bound', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}"${' '.repeat(2048)}}`, 'resigned'), 'TOO_LARGE');
    await expectCode(async () => w.openAsSn(await sealedTo({}, { rawHeader: (json) => `${json.slice(0, -1)}${' '.repeat(2048)}}` })), 'TOO_LARGE');
  });

  it('more disclosures than the bound', async () => {
    const many = Array.from({ length: 513 }, () => w.message.disclosures[0]!);
    await expectCode(() => verifySdJwtMessage(joinSdJwt(w.message.jwt, many), { resolveSenderKey: w.resolveNode }), 'TOO_LARGE');
    await expectCode(async () => w.openAsSn(await encryptCompact(joinSdJwt(w.message.jwt, many), w.sn.enc.publicJwk)), 'TOO_LARGE');
  });

  it('deeply nested JSON in a validly signed payload (33 levels, and 300 000 levels)', async () => {
    for (const depth of [33, 300_000]) {
      const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      await expectRefusedEverywhere(surfaces, (s) => withPayloadMember(s, 'x', undefined, nested), 'TOO_LARGE');
    }
  });

  it('nesting at the bound (32 levels) is not refused for its depth', async () => {
    const s = surfaces.find((x) => x.name === 'verifyCompact')!;
    const token = await withPayloadMember(s, 'x', undefined, `${'['.repeat(31)}${']'.repeat(31)}`);
    await expect(verifyCompact(token, MESSAGE_TYPS, () => w.be.sig.publicJwk)).resolves.toBeDefined();
  });

  it('deeply nested JSON in a protected header', async () => {
    await expectRefusedEverywhere(surfaces, (s) => forge(s, `{"alg":"EdDSA","typ":"${s.typ}","kid":"${s.key.kid}","x":${'['.repeat(40)}${']'.repeat(40)}}`, 'resigned'), 'TOO_LARGE');
  });

  it('deeply nested JSON inside a disclosure is an invalid disclosure', async () => {
    const encoded = segmentOf(`["${b64u(randomBytes(16))}","givenName",${'['.repeat(40)}${']'.repeat(40)}]`);
    await expectCode(() => verifySdJwtMessage(joinSdJwt(w.message.jwt, [encoded]), { resolveSenderKey: w.resolveNode }), 'DISCLOSURE_INVALID');
  });
});

