/**
 * Runs every vector of spec/vectors/ (format: spec/vectors/README.md) through the public API, with
 * the clock each vector gives. The committed files are the reference: a failure here means the
 * library and the vectors disagree, and spec/protocol.md decides which one is wrong.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  MESSAGE_TYPE_IDS,
  ProtocolError,
  definitionOf,
  fromB64u,
  fromUtf8,
  importKeyPair,
  isErrorCode,
  messageTypeFromTyp,
  open,
  parseCompactJwe,
  parseCompactJws,
  resolveSigningKey,
  thumbprint,
  verifyCompact,
  verifyNodeDocument,
  verifyReceipt,
  verifySdJwtMessage,
  type EncryptionKeyPair,
  type PrivateJwk,
  type PublicSigningJwk,
  type SenderKeyResolver,
  type VerifiedMessage,
  type VerifiedNodeDocument,
} from '../src/index.js';
import { wirePayloadSchema } from '../scripts/generate-schemas.js';

// ---------------------------------------------------------------------------------------------
// Loading

interface Vector {
  comment: string;
  tags: string[];
  input: Record<string, unknown>;
  expected: { valid: true; output: unknown } | { valid: false; error: string; details?: Record<string, unknown> };
}
interface VectorFile {
  description: string;
  vectors: Vector[];
}

const VECTORS_DIR = new URL('../../../spec/vectors/', import.meta.url);
const load = <T = VectorFile>(name: string): T => JSON.parse(readFileSync(new URL(name, VECTORS_DIR), 'utf8')) as T;

interface KeyEntry {
  name: string;
  node: string;
  use: 'sig' | 'enc';
  testOnly: boolean;
  seed: string;
  kid: string;
  publicJwk: PublicSigningJwk & { kid: string };
  privateJwk: PrivateJwk;
}
const keysFile = load<{ description: string; keys: KeyEntry[] }>('keys.json');
const keyByName = new Map(keysFile.keys.map((k) => [k.name, k]));
const key = (name: string): KeyEntry => {
  const k = keyByName.get(name);
  if (!k) throw new Error(`keys.json has no key ${name}`);
  return k;
};

/** The vector files this suite runs; other files in spec/vectors/ have suites of their own. */
const FILES = ['jose-policy.json', 'messages.json', 'envelopes.json', 'sd-jwt.json', 'receipts.json', 'node-documents.json'] as const;

// ---------------------------------------------------------------------------------------------
// Runners: input -> output, or a thrown ProtocolError

interface KeyWindow {
  node: string;
  key: string;
  notBefore: string;
  notAfter?: string;
}

/** README "senderKeys": unknown kid -> undefined (KEY_UNKNOWN); known but outside its window -> KEY_NOT_VALID. */
function senderResolver(windows: readonly KeyWindow[]): SenderKeyResolver {
  return (iss, kid, signedAt) => {
    const entries = windows.filter((w) => w.node === iss && key(w.key).kid === kid);
    if (entries.length === 0) return undefined;
    const t = signedAt.getTime();
    const valid = entries.find((w) => Date.parse(w.notBefore) <= t && (w.notAfter === undefined || t < Date.parse(w.notAfter)));
    if (!valid) throw new ProtocolError('KEY_NOT_VALID');
    return key(valid.key).publicJwk;
  };
}

function projectMessage(m: VerifiedMessage): Record<string, unknown> {
  return {
    header: m.header,
    body: m.body,
    data: m.data,
    kid: m.kid,
    ...(m.consentRecord !== undefined ? { consentRecord: m.consentRecord } : {}),
    ...(m.original ? { original: projectMessage(m.original) } : {}),
  };
}

function verifyOptions(input: Record<string, unknown>) {
  return {
    resolveSenderKey: senderResolver(input.senderKeys as KeyWindow[]),
    now: new Date(input.now as string),
    ...(input.self !== undefined ? { self: input.self as string } : {}),
    ...(input.expectedSender !== undefined ? { expectedSender: input.expectedSender as string } : {}),
  };
}

async function runSdJwt(input: Record<string, unknown>): Promise<unknown> {
  return projectMessage(await verifySdJwtMessage(input.sdJwt as string, verifyOptions(input)));
}

const pairCache = new Map<string, Promise<EncryptionKeyPair>>();
function encryptionPair(name: string): Promise<EncryptionKeyPair> {
  let p = pairCache.get(name);
  if (!p) {
    p = importKeyPair(key(name).privateJwk) as Promise<EncryptionKeyPair>;
    pairCache.set(name, p);
  }
  return p;
}

async function runEnvelope(input: Record<string, unknown>): Promise<unknown> {
  const pairs = await Promise.all((input.decryptionKeys as string[]).map(encryptionPair));
  const opened = await open(input.jwe as string, {
    ...verifyOptions(input),
    self: input.self as string,
    decryptionKey: (kid) => pairs.find((p) => p.kid === kid),
  });
  return { ...projectMessage(opened), digest: opened.digest };
}

async function runReceipt(input: Record<string, unknown>): Promise<unknown> {
  const receiver = input.receiver as string;
  const windows = (input.senderKeys as KeyWindow[]).filter((w) => w.node === receiver);
  return verifyReceipt(input.receipt as string, {
    receiver,
    sender: input.sender as string,
    messageId: input.messageId as string,
    digest: input.digest as string,
    resolveKey: (kid) => windows.map((w) => key(w.key)).find((k) => k.kid === kid)?.publicJwk,
  });
}

async function verifyDocument(input: Record<string, unknown>): Promise<VerifiedNodeDocument> {
  const known = input.known ? await verifyDocument(input.known as Record<string, unknown>) : undefined;
  return verifyNodeDocument(input.document, {
    now: new Date(input.now as string),
    ...(input.pinnedFingerprints ? { pinnedFingerprints: input.pinnedFingerprints as string[] } : {}),
    ...(input.expectedId ? { expectedId: input.expectedId as string } : {}),
    ...(known ? { known } : {}),
  });
}

async function runNodeDocument(input: Record<string, unknown>): Promise<unknown> {
  const verified = await verifyDocument(input);
  if (input.operation === 'resolveSigningKey') return resolveSigningKey(verified.document, input.kid as string, input.at as string);
  return { document: verified.document, payloadDigest: verified.payloadDigest, signers: verified.signers };
}

/**
 * JOSE policy: the header checks alone. For a valid JWS the signature is verified too, so a valid
 * policy vector is also a token the library accepts.
 */
async function runJosePolicy(input: Record<string, unknown>, expectValid: boolean): Promise<unknown> {
  const token = input.token as string;
  if (input.kind === 'jws') {
    const typ = input.expectedTyp as string;
    const { header } = parseCompactJws(token, typ);
    if (expectValid) await verifyCompact(token, typ, (kid) => keysFile.keys.find((k) => k.kid === kid)?.publicJwk);
    return header;
  }
  return parseCompactJwe(token).header;
}

/** The same token through the full verifier, counting the key lookups it reaches. */
async function josePolicyReachesNoKey(input: Record<string, unknown>): Promise<{ code: string | undefined; lookups: number }> {
  let lookups = 0;
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return undefined;
    } catch (e) {
      return e instanceof ProtocolError ? e.code : `not a ProtocolError: ${String(e)}`;
    }
  };
  if (input.kind === 'jws') {
    const c = await code(
      verifyCompact(input.token as string, input.expectedTyp as string, () => {
        lookups++;
        return undefined;
      }),
    );
    return { code: c, lookups };
  }
  const c = await code(
    open(input.token as string, {
      self: 'https://reintegration.example.sn',
      decryptionKey: () => {
        lookups++;
        return undefined;
      },
      resolveSenderKey: () => {
        lookups++;
        return undefined;
      },
    }),
  );
  return { code: c, lookups };
}

const RUNNERS: Record<(typeof FILES)[number], (input: Record<string, unknown>, expectValid: boolean) => Promise<unknown>> = {
  'jose-policy.json': runJosePolicy,
  'messages.json': runSdJwt,
  'envelopes.json': runEnvelope,
  'sd-jwt.json': runSdJwt,
  'receipts.json': runReceipt,
  'node-documents.json': runNodeDocument,
};

type Outcome = { valid: true; output: unknown } | { valid: false; error: ProtocolError };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { valid: true, output: await run() };
  } catch (e) {
    if (e instanceof ProtocolError) return { valid: false, error: e };
    throw e;
  }
}

/** Compares as JSON: vectors are JSON, so an absent member and an undefined one are the same. */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? null));

// ---------------------------------------------------------------------------------------------

describe('spec/vectors/keys.json', () => {
  it('is marked test-only and names every key once', () => {
    expect(keysFile.description).toMatch(/TEST ONLY/);
    expect(new Set(keysFile.keys.map((k) => k.name)).size).toBe(keysFile.keys.length);
    for (const k of keysFile.keys) expect(k.testOnly, k.name).toBe(true);
  });

  it('derives every key from its seed (PKCS#8 prefix || seed through WebCrypto) with kid = RFC 7638 thumbprint', async () => {
    const PREFIX = { Ed25519: '302e020100300506032b657004220420', X25519: '302e020100300506032b656e04220420' };
    const bytes = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    for (const k of keysFile.keys) {
      const crv = k.use === 'sig' ? 'Ed25519' : 'X25519';
      expect(k.seed, k.name).toMatch(/^[0-9a-f]{64}$/);
      const cryptoKey = await crypto.subtle.importKey('pkcs8', bytes(PREFIX[crv] + k.seed), { name: crv }, true, k.use === 'sig' ? ['sign'] : ['deriveBits']);
      const jwk = await crypto.subtle.exportKey('jwk', cryptoKey);
      expect({ x: jwk.x, d: jwk.d }, k.name).toEqual({ x: k.privateJwk.x, d: k.privateJwk.d });
      expect(k.publicJwk).toEqual({ kty: 'OKP', crv, x: jwk.x, kid: k.kid });
      expect(await thumbprint(k.publicJwk)).toBe(k.kid);
      expect(k.publicJwk).not.toHaveProperty('d');
    }
  });
});

describe.each(FILES)('spec/vectors/%s', (file) => {
  const { description, vectors } = load(file);

  it('follows the vector file format', () => {
    expect(typeof description).toBe('string');
    expect(vectors.length).toBeGreaterThan(0);
    for (const v of vectors) {
      expect(typeof v.comment, JSON.stringify(v).slice(0, 80)).toBe('string');
      expect(Array.isArray(v.tags) && v.tags.length > 0 && v.tags.every((t) => typeof t === 'string'), v.comment).toBe(true);
      expect(typeof v.input, v.comment).toBe('object');
      if (v.expected.valid) expect(v.expected, v.comment).toHaveProperty('output');
      else expect(isErrorCode(v.expected.error), `${v.comment}: ${v.expected.error}`).toBe(true);
      expect(v.tags.includes('valid') || v.tags.includes('invalid'), v.comment).toBe(true);
      expect(v.tags.includes('valid'), v.comment).toBe(v.expected.valid);
    }
  });

  it.each(vectors.map((v, i) => [`#${i} ${v.comment}`, v] as const))('%s', async (_name, v) => {
    const result = await outcome(() => RUNNERS[file](v.input, v.expected.valid));
    if (v.expected.valid) {
      expect(result.valid ? 'valid' : `${(result as { error: ProtocolError }).error.code}: ${(result as { error: ProtocolError }).error.message}`).toBe('valid');
      expect(asJson((result as { output: unknown }).output)).toEqual(v.expected.output);
    } else {
      expect(result.valid ? 'valid' : (result as { error: ProtocolError }).error.code).toBe(v.expected.error);
      if (v.expected.details) expect((result as { error: ProtocolError }).error.details).toMatchObject(v.expected.details);
    }
  });
});

describe('JOSE policy comes before any key lookup (spec/protocol.md §4)', () => {
  const { vectors } = load('jose-policy.json');
  it.each(vectors.filter((v) => !v.expected.valid).map((v) => [v.comment, v] as const))('%s', async (_name, v) => {
    const { code, lookups } = await josePolicyReachesNoKey(v.input);
    expect(code).toBe((v.expected as { error: string }).error);
    expect(lookups).toBe(0);
  });
});

describe('signed payloads of valid message vectors match their wire schema (spec/schemas/*.wire.schema.json)', () => {
  const payloads: [string, string][] = [];
  for (const file of ['messages.json', 'sd-jwt.json'] as const) {
    for (const v of load(file).vectors.filter((x) => x.expected.valid)) {
      const jwt = (v.input.sdJwt as string).split('~')[0]!;
      payloads.push([`${file}: ${v.comment}`, jwt]);
      const provenance = JSON.parse(fromUtf8(fromB64u(jwt.split('.')[1]!))).provenance as { jwt: string } | undefined;
      if (provenance) payloads.push([`${file}: ${v.comment} (original)`, provenance.jwt]);
    }
  }
  it.each(payloads)('%s', (_name, jwt) => {
    const type = messageTypeFromTyp(JSON.parse(fromUtf8(fromB64u(jwt.split('.')[0]!))).typ as string)!;
    const payload = JSON.parse(fromUtf8(fromB64u(jwt.split('.')[1]!))) as unknown;
    const result = wirePayloadSchema(definitionOf(type)).safeParse(payload);
    expect(result.success ? 'ok' : JSON.stringify(result.error.issues.slice(0, 3))).toBe('ok');
  });
});

describe('vector coverage', () => {
  it('has valid and invalid message vectors for every message type', () => {
    const { vectors } = load('messages.json');
    for (const type of MESSAGE_TYPE_IDS) {
      const own = vectors.filter((v) => v.tags.includes(type));
      expect(own.some((v) => v.tags.includes('all-disclosures') && v.expected.valid), type).toBe(true);
      expect(own.some((v) => v.tags.includes('no-disclosures') && v.expected.valid), type).toBe(true);
      for (const error of ['SIGNATURE_INVALID', 'CATEGORIES_MISMATCH', 'WRONG_TYPE', 'SCHEMA_INVALID', 'DISCLOSURE_INVALID']) {
        expect(own.some((v) => !v.expected.valid && v.expected.error === error), `${type} ${error}`).toBe(true);
      }
    }
  });

  it('exercises a good share of the error codes', () => {
    const seen = new Set<string>();
    for (const file of FILES) for (const v of load(file).vectors) if (!v.expected.valid) seen.add(v.expected.error);
    const codes = Object.keys(ERROR_CODES);
    for (const code of seen) expect(codes).toContain(code);
    expect(seen.size).toBeGreaterThanOrEqual(20);
  });
});
