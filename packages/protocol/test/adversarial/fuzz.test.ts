/**
 * Bounded property-based fuzzing of everything that parses or verifies untrusted input
 * (docs/attacks.md, "Fuzzing"). Two contracts, checked on every run:
 *   1. nothing throws anything but a ProtocolError whose code is in ERROR_CODES;
 *   2. a mutated input never verifies, unless the mutation left the bytes unchanged (or, for an
 *      SD-JWT, only withheld whole disclosures, which RFC 9901 allows).
 * Seeds are fixed and printed in the test names: re-run one with the same seed to reproduce it.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  b64u,
  b64uJson,
  disclosureDigest,
  fromB64u,
  joinSdJwt,
  MAX_JSON_DEPTH,
  parseCompactJwe,
  parseCompactJws,
  parseDisclosure,
  parseJson,
  utf8,
  verifyAgreement,
  verifyConsent,
  verifyNodeDocument,
  verifyReceipt,
  verifySdJwtMessage,
  type GeneralJws,
} from '../../src/index.js';
import {
  assertProtocolError,
  compactParts,
  decodeSegment,
  encryptCompact,
  jwsSurfaces,
  resignPayload,
  segmentOf,
  signWithHeader,
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

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string };

/** Runs `step`; a throw must be a catalogued ProtocolError (contract 1). */
async function outcome<T>(step: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await step() };
  } catch (e) {
    assertProtocolError(e);
    return { ok: false, code: e.code };
  }
}

function outcomeSync<T>(step: () => T): Outcome<T> {
  try {
    return { ok: true, value: step() };
  } catch (e) {
    assertProtocolError(e);
    return { ok: false, code: e.code };
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const B64URL_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64uChar = fc.constantFrom(...B64URL_CHARS.split(''));
const b64uString = fc.string({ unit: b64uChar, maxLength: 120 });
/** Characters that matter to JOSE and SD-JWT parsing, plus arbitrary ASCII and non-ASCII. */
const nastyChar = fc.oneof(
  b64uChar,
  fc.constantFrom('.', '~', '=', '+', '/', ' ', '\n', '\t', '"', '{', '}', '[', ']', '\\', ':', ',', '\u0000', '\u00e9', '\ud800', '\u{1f600}'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const nastyString = fc.string({ unit: nastyChar, maxLength: 200 });

const json = fc.jsonValue({ maxDepth: 3 });
const oddNumbers = fc.constantFrom(-1, 0.5, 1e308, -0, 8_640_000_000_001, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2);
const value = fc.oneof(json, oddNumbers, fc.constantFrom('EdDSA', 'none', 'ECDH-ES+A256KW', 'A256GCM', '__proto__', 'passerelle-receipt+jwt'));

const segment = fc.oneof(
  nastyString,
  b64uString,
  json.map((v) => b64uJson(v)),
  fc.dictionary(fc.constantFrom('alg', 'typ', 'kid', 'cty', 'enc', 'epk', 'crit', 'jwk', 'zip', 'b64', '__proto__'), value).map((h) => b64uJson(h)),
);
const compactLike = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.'));

interface Mutation {
  op: 'flip' | 'insert' | 'delete' | 'truncate';
  part: number;
  /** Position in the part; negative counts from its end (boundaries are where encodings go wrong). */
  offset: number;
  bit: number;
  char: string;
}

const mutation = fc.record({
  op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'),
  part: fc.nat({ max: 9 }),
  offset: fc.oneof(fc.nat(), fc.integer({ min: -3, max: -1 })),
  bit: fc.nat({ max: 6 }),
  char: nastyChar,
}) as fc.Arbitrary<Mutation>;
const mutations = fc.array(mutation, { minLength: 1, maxLength: 3 });

/**
 * Applies mutations to a string, each aimed at one of its `separator`-delimited parts so that short
 * parts (headers, IVs, tags) are hit as often as the long ciphertext.
 */
function mutate(input: string, list: readonly Mutation[], separator: string): string {
  let s = input;
  for (const m of list) {
    const parts = s.split(separator);
    const index = m.part % parts.length;
    const start = parts.slice(0, index).reduce((n, p) => n + p.length + separator.length, 0);
    const length = parts[index]!.length;
    const at = start + (m.offset < 0 ? Math.max(0, length + m.offset) : m.offset % (length + 1));
    if (m.op === 'truncate') s = s.slice(0, at);
    else if (m.op === 'insert') s = s.slice(0, at) + m.char + s.slice(at);
    else if (s.length > 0) {
      const i = Math.min(at, s.length - 1);
      s = m.op === 'delete' ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << m.bit)) + s.slice(i + 1);
    }
  }
  return s;
}

/** Nesting depth as parseJson counts it: one per array or object level. */
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + children.reduce((max: number, c) => Math.max(max, depthOf(c)), 0);
}

const JWS_HEADER_MEMBERS = new Set(['alg', 'typ', 'kid', 'cty']);
const JWE_HEADER_MEMBERS = new Set(['alg', 'enc', 'epk', 'kid', 'typ', 'cty']);

// ---------------------------------------------------------------------------------------------

describe('fuzz: encoding primitives', () => {
  const SEED = 0x5eed_0001;
  it(`fromB64u accepts exactly the canonical base64url spellings (seed ${SEED})`, () => {
    fc.assert(
      fc.property(fc.oneof(nastyString, b64uString), (text) => {
        const r = outcomeSync(() => fromB64u(text));
        if (r.ok) expect(b64u(r.value)).toBe(text);
        else expect(r.code).toBe('MALFORMED');
      }),
      { seed: SEED, numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromB64u(b64u(bytes))).toEqual(bytes);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  const SEED2 = 0x5eed_0002;
  it(`parseJson agrees with JSON.parse and refuses only what is malformed or too deep (seed ${SEED2})`, () => {
    fc.assert(
      fc.property(fc.oneof(nastyString, fc.json({ maxDepth: 4 }), fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', ':', ',', '1'), maxLength: 80 })), (text) => {
        const r = outcomeSync(() => parseJson(text));
        let reference: { ok: true; value: unknown } | { ok: false };
        try {
          reference = { ok: true, value: JSON.parse(text) };
        } catch {
          reference = { ok: false };
        }
        if (r.ok) {
          expect(reference).toEqual({ ok: true, value: r.value });
        } else {
          expect(['MALFORMED', 'TOO_LARGE']).toContain(r.code);
          if (reference.ok) expect(r.code).toBe('TOO_LARGE');
        }
      }),
      { seed: SEED2, numRuns: 500 },
    );
  });

  const SEED3 = 0x5eed_0003;
  it(`parseJson refuses nesting beyond the bound, whatever the strings inside contain (seed ${SEED3})`, () => {
    const nested = fc
      .tuple(fc.jsonValue({ maxDepth: 2 }), fc.array(fc.oneof(fc.constant('array'), fc.string({ maxLength: 6 })), { maxLength: 45 }))
      .map(([inner, wrappers]) => wrappers.reduce<unknown>((v, k) => (k === 'array' ? [v, '[[{'] : { [k]: v, '}]]': '\\"[' }), inner));
    fc.assert(
      fc.property(nested, (v) => {
        const r = outcomeSync(() => parseJson(JSON.stringify(v)));
        if (depthOf(v) > MAX_JSON_DEPTH) expect(r).toEqual({ ok: false, code: 'TOO_LARGE' });
        else expect(r).toEqual({ ok: true, value: JSON.parse(JSON.stringify(v)) });
      }),
      { seed: SEED3, numRuns: 300 },
    );
  });

  const SEED4 = 0x5eed_0004;
  it(`parseDisclosure accepts only well-formed object-property disclosures (seed ${SEED4})`, () => {
    const candidate = fc.oneof(
      nastyString,
      json.map((v) => segmentOf(JSON.stringify(v))),
      fc.tuple(fc.oneof(fc.string(), b64uString), fc.oneof(fc.string(), fc.constantFrom('_sd', '...', '_sd_alg', '__proto__')), json).map((t) => segmentOf(JSON.stringify(t))),
      fc.tuple(b64uString, json).map((t) => segmentOf(JSON.stringify(t))),
    );
    fc.assert(
      fc.property(candidate, (encoded) => {
        const r = outcomeSync(() => parseDisclosure(encoded));
        if (!r.ok) {
          expect(r.code).toBe('DISCLOSURE_INVALID');
          return;
        }
        const array = JSON.parse(new TextDecoder().decode(fromB64u(encoded))) as unknown[];
        expect(array).toHaveLength(3);
        expect(typeof array[0] === 'string' && array[0].length >= 16).toBe(true);
        expect(['_sd', '...', '_sd_alg', '__proto__']).not.toContain(array[1]);
        expect(r.value.digest).toBe(disclosureDigest(encoded));
      }),
      { seed: SEED4, numRuns: 500 },
    );
  });
});

describe('fuzz: compact serialisations', () => {
  const SEED = 0x5eed_0010;
  it(`parseCompactJws and parseCompactJwe pass only allow-listed headers (seed ${SEED})`, () => {
    fc.assert(
      fc.property(compactLike, (token) => {
        const jws = outcomeSync(() => parseCompactJws(token));
        if (jws.ok) {
          expect(jws.value.header.alg).toBe('EdDSA');
          expect(Object.keys(jws.value.header).every((k) => JWS_HEADER_MEMBERS.has(k))).toBe(true);
        }
        const jwe = outcomeSync(() => parseCompactJwe(token));
        if (jwe.ok) {
          expect([jwe.value.header.alg, jwe.value.header.enc, jwe.value.header.epk.crv]).toEqual(['ECDH-ES+A256KW', 'A256GCM', 'X25519']);
          expect(Object.keys(jwe.value.header).every((k) => JWE_HEADER_MEMBERS.has(k))).toBe(true);
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  const SEED2 = 0x5eed_0011;
  it(`arbitrary strings never open, verify or pass as receipt or consent (seed ${SEED2})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(nastyString, compactLike, compactLike.map((t) => `${t}~`), fc.array(compactLike, { maxLength: 4 }).map((a) => `${a.join('~')}~`)), async (text) => {
        const steps: (() => Promise<unknown>)[] = [
          () => w.openAsSn(text),
          () => verifySdJwtMessage(text, { resolveSenderKey: w.resolveNode }),
          () => verifyReceipt(text, w.receipt.options),
          () => verifyConsent(text, w.resolveNode),
        ];
        for (const step of steps) {
          expect((await outcome(step)).ok).toBe(false);
        }
      }),
      { seed: SEED2, numRuns: 300 },
    );
  });

  const SEED3 = 0x5eed_0012;
  it(`arbitrary JSON values never pass as node documents or agreements (seed ${SEED3})`, async () => {
    const generalish = fc.oneof(
      fc.anything({ maxDepth: 3 }),
      fc.record({ payload: fc.oneof(segment, fc.constant(w.nodeDocument.jws.payload), fc.constant(w.agreement.jws.payload)), signatures: fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }) }),
      fc.record({
        payload: fc.oneof(segment, fc.constant(w.nodeDocument.jws.payload), fc.constant(w.agreement.jws.payload)),
        signatures: fc.array(fc.record({ protected: segment, signature: fc.oneof(segment, b64uString) }), { maxLength: 3 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(generalish, async (jws) => {
        expect((await outcome(() => verifyNodeDocument(jws, { now: w.nodeDocument.now }))).ok).toBe(false);
        expect((await outcome(() => verifyAgreement(jws, w.resolveNode, { now: w.agreement.now }))).ok).toBe(false);
      }),
      { seed: SEED3, numRuns: 300 },
    );
  });
});

describe('fuzz: mutations of genuine objects', () => {
  const SEED = 0x5eed_0020;
  it(`open never accepts a mutated sealed JWE (seed ${SEED})`, async () => {
    const original = w.sealed.jwe;
    await fc.assert(
      fc.asyncProperty(mutations, async (list) => {
        const mutated = mutate(original, list, '.');
        const r = await outcome(() => w.openAsSn(mutated));
        expect(r.ok).toBe(mutated === original);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  const SEED2 = 0x5eed_0021;
  it(`open accepts a re-encrypted mutated SD-JWT only when whole disclosures were withheld (seed ${SEED2})`, async () => {
    const { jwt, disclosures, sdJwt } = w.message;
    await fc.assert(
      fc.asyncProperty(mutations, async (list) => {
        const mutated = mutate(sdJwt, list, '~');
        const r = await outcome(async () => w.openAsSn(await encryptCompact(mutated, w.sn.enc.publicJwk)));
        if (r.ok) {
          const parts = mutated.split('~');
          expect(mutated.endsWith('~')).toBe(true);
          expect(parts[0]).toBe(jwt);
          expect(parts.slice(1, -1).every((d) => disclosures.includes(d))).toBe(true);
        }
      }),
      { seed: SEED2, numRuns: 200 },
    );
  });

  const SEED3 = 0x5eed_0022;
  it(`verifySdJwtMessage never accepts foreign, malformed or repeated disclosures (seed ${SEED3})`, async () => {
    const { jwt, disclosures } = w.message;
    const disclosure = fc.oneof(
      fc.constantFrom(...disclosures),
      nastyString,
      fc.tuple(b64uString, fc.string(), json).map((t) => segmentOf(JSON.stringify(t))),
      fc.tuple(fc.constantFrom(...disclosures), mutations).map(([d, list]) => mutate(d, list, '.')),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(disclosure, { maxLength: 8 }), async (list) => {
        const r = await outcome(() => verifySdJwtMessage(joinSdJwt(jwt, list), { resolveSenderKey: w.resolveNode }));
        const legitimate = list.every((d) => disclosures.includes(d)) && new Set(list).size === list.length;
        expect(r.ok).toBe(legitimate);
      }),
      { seed: SEED3, numRuns: 300 },
    );
  });

  const SEED4 = 0x5eed_0023;
  it(`no verifier accepts a mutated receipt, consent, node document or agreement (seed ${SEED4})`, async () => {
    const nd = w.nodeDocument.jws;
    const ag = w.agreement.jws;
    const generalField = fc.constantFrom('payload', 'protected', 'signature');
    await fc.assert(
      fc.asyncProperty(mutations, generalField, async (list, field) => {
        const receipt = mutate(w.receipt.token, list, '.');
        expect((await outcome(() => verifyReceipt(receipt, w.receipt.options))).ok).toBe(receipt === w.receipt.token);
        const consent = mutate(w.consent.jws, list, '.');
        expect((await outcome(() => verifyConsent(consent, w.resolveNode))).ok).toBe(consent === w.consent.jws);
        const editGeneral = (jws: GeneralJws): GeneralJws => {
          const [first, ...rest] = jws.signatures;
          if (field === 'payload') return { payload: mutate(jws.payload, list, '.'), signatures: jws.signatures };
          return { payload: jws.payload, signatures: [{ ...first!, [field]: mutate(first![field], list, '.') }, ...rest] };
        };
        const doc = editGeneral(nd);
        const docSame = JSON.stringify(doc) === JSON.stringify(nd);
        expect((await outcome(() => verifyNodeDocument(doc, { now: w.nodeDocument.now, pinnedFingerprints: [w.be.sig.kid] }))).ok).toBe(docSame);
        const agreement = editGeneral(ag);
        const agreementSame = JSON.stringify(agreement) === JSON.stringify(ag);
        const verdict = await outcome(() => verifyAgreement(agreement, w.resolveNode, { now: w.agreement.now }));
        expect(verdict.ok).toBe(agreementSame);
      }),
      { seed: SEED4, numRuns: 200 },
    );
  });
});

describe('fuzz: validly signed arbitrary headers and payloads', () => {
  const SEED0 = 0x5eed_002f;
  it(`disclosures the signer committed to reveal exactly their own names and values (seed ${SEED0})`, async () => {
    // Biased towards names and values the schemas accept, so that runs get past validation.
    const name = fc.oneof(
      { arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'placeOfBirth', 'email', 'address', '_sd', '...'), weight: 3 },
      { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
    );
    // Values shaped like sections: schema fields the genuine message does not disclose.
    const fieldsObject = fc.oneof(
      fc.constantFrom({ placeOfBirth: 'Dakar' }, { email: 'x@example.org' }, { address: 'Rue Exemple 1' }, { sex: 'female' }),
      fc.dictionary(fc.constantFrom('placeOfBirth', 'sex', 'email', 'address'), fc.constantFrom('Dakar', 'female'), { minKeys: 1 }),
    );
    const fieldValue = fc.oneof({ arbitrary: fieldsObject, weight: 2 }, { arbitrary: fc.constantFrom('Dakar', 'x@example.org'), weight: 2 }, { arbitrary: value, weight: 1 });
    const disclosure = fc.tuple(fc.oneof(b64uString, fc.constant('c2FsdHNhbHRzYWx0c2FsdA')), name, fieldValue).map((t) => segmentOf(JSON.stringify(t)));
    const category = fc.constantFrom('identity', 'contact', 'health');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(category, disclosure), { minLength: 1, maxLength: 2 }), async (extra) => {
        let signed: Record<string, { _sd: string[] }> = {};
        const jwt = await resignPayload(w.message.jwt, w.be.sig, (p) => {
          const data = p.data as Record<string, { _sd: string[] }>;
          for (const [c, d] of extra) data[c]!._sd.push(disclosureDigest(d));
          signed = data;
          return p;
        });
        const all = [...w.message.disclosures, ...extra.map(([, d]) => d)];
        const r = await outcome(() => verifySdJwtMessage(joinSdJwt(jwt, all), { resolveSenderKey: w.resolveNode }));
        if (!r.ok) return;
        const byDigest = new Map(all.map((d) => [disclosureDigest(d), JSON.parse(new TextDecoder().decode(fromB64u(d))) as [string, string, unknown]]));
        for (const [c, section] of Object.entries(r.value.data as Record<string, Record<string, unknown>>)) {
          const committed = new Map((signed[c]?._sd ?? []).flatMap((digest) => (byDigest.has(digest) ? [[byDigest.get(digest)![1], byDigest.get(digest)![2]] as const] : [])));
          for (const [key, v] of Object.entries(section)) {
            expect(committed.has(key), `${c}.${key} revealed without a disclosure of that name`).toBe(true);
            expect(v).toEqual(committed.get(key));
          }
        }
      }),
      { seed: SEED0, numRuns: 200 },
    );
  });

  const SEED = 0x5eed_0030;
  it(`a validly signed token passes only with an allow-listed header (seed ${SEED})`, async () => {
    const header = fc.dictionary(
      fc.constantFrom('alg', 'typ', 'kid', 'cty', 'crit', 'b64', 'jwk', 'jku', 'x5c', 'zip', 'enc', 'epk', 'crv', '__proto__', 'x'),
      fc.oneof(value, fc.constantFrom('$typ', '$kid', '$typ', '$kid')),
      { maxKeys: 5 },
    );
    await fc.assert(
      fc.asyncProperty(header, fc.nat({ max: 6 }), async (edits, which) => {
        const s = surfaces[which % surfaces.length]!;
        const resolved = Object.fromEntries(Object.entries(edits).map(([k, v]) => [k, v === '$typ' ? s.typ : v === '$kid' ? s.key.kid : v]));
        const full = { alg: 'EdDSA', typ: s.typ, kid: s.key.kid, ...resolved };
        const token = await signWithHeader(full, s.payloadB64, s.key);
        const r = await outcome(() => s.verify(token));
        if (r.ok) {
          const seen = decodeSegment(compactParts(token)[0]);
          expect(Object.keys(seen).every((k) => JWS_HEADER_MEMBERS.has(k))).toBe(true);
          expect([seen.alg, seen.typ, seen.kid]).toEqual(['EdDSA', s.typ, s.key.kid]);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  const SEED1 = 0x5eed_0032;
  it(`validly signed messages with numeric claims of any magnitude only ever fail with a ProtocolError (seed ${SEED1})`, async () => {
    const magnitude = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.maxSafeNat(), fc.double(), fc.integer({ min: 8_639_999_999_000, max: 8_640_000_001_000 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('iat', 'exp'), magnitude, async (claim, n) => {
        const jwt = await resignPayload(w.message.jwt, w.be.sig, (p) => ({ ...p, [claim]: n }));
        const r = await outcome(() => verifySdJwtMessage(joinSdJwt(jwt, w.message.disclosures), { resolveSenderKey: w.resolveNode }));
        if (r.ok) expect(typeof (r.value.header as { expires: unknown }).expires).toBe('string');
      }),
      { seed: SEED1, numRuns: 200 },
    );
  });

  const SEED2 = 0x5eed_0031;
  it(`validly signed arbitrary payloads only ever fail with a ProtocolError (seed ${SEED2})`, async () => {
    // Each surface's own members (plus one unknown), so that edits get past the unknown-member checks.
    const edited = fc.nat({ max: 6 }).chain((which) => {
      const s = surfaces[which % surfaces.length]!;
      const names = [...Object.keys(decodeSegment(s.payloadB64)), 'provenance', 'consent_record', 'x'];
      return fc.tuple(fc.constant(s), fc.dictionary(fc.constantFrom(...names), value, { maxKeys: 3 }), fc.boolean());
    });
    await fc.assert(
      fc.asyncProperty(edited, async ([s, edits, replaceAll]) => {
        const payload = replaceAll ? edits : { ...decodeSegment(s.payloadB64), ...edits };
        const token = await signWithHeader({ alg: 'EdDSA', typ: s.typ, kid: s.key.kid }, b64u(utf8(JSON.stringify(payload))), s.key);
        const r = await outcome(() => s.verify(token));
        if (r.ok && s.name === 'verifySdJwtMessage') {
          expect((r.value as { header: { from: unknown } }).header.from).toBe(payload.iss);
        }
      }),
      { seed: SEED2, numRuns: 300 },
    );
  });
});
