/**
 * Writes the language-neutral test vectors in spec/vectors/ (format: spec/vectors/README.md).
 *
 * Keys are derived from fixed seeds, and Ed25519 signatures are deterministic (RFC 8032 §5.1.6),
 * but JWE encryption and disclosure salts are random: running this again produces different,
 * equally valid vectors. The committed files are therefore the reference, and this script only
 * writes a file that does not exist yet, unless `--force` is given. keys.json is reproducible and
 * is always rewritten. packages/protocol/test/vectors.test.ts runs every vector through the public
 * API; re-run it after regenerating.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CompactEncrypt, CompactSign } from 'jose';
import {
  b64u,
  buildCaseClosure,
  buildCheckpoint,
  buildConsentWithdrawal,
  buildErasureConfirmation,
  buildProblemReport,
  buildReferral,
  buildReferralResponse,
  buildReintegrationProfile,
  buildReintegrationUpdate,
  createNodeDocument,
  cryptoKeyFor,
  fromB64u,
  fromUtf8,
  importKeyPair,
  joinSdJwt,
  makeDisclosure,
  nodeKeyEntry,
  present,
  rotateNodeDocument,
  seal,
  sha256b64u,
  sha256Sync,
  signCheckpoint,
  signCompact,
  signConsent,
  signGeneral,
  signMessage,
  signReceipt,
  utf8,
  verifyNodeDocument,
  verifySdJwtMessage,
  type ConsentRecord,
  type EncryptionKeyPair,
  type ErrorCode,
  type GeneralJws,
  type Message,
  type MessageType,
  type NodeDocumentInput,
  type PrivateJwk,
  type PublicEncryptionJwk,
  type SigningKeyPair,
} from '../src/index.js';

export const VECTORS_DIR = fileURLToPath(new URL('../../../spec/vectors/', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Vector file format (spec/vectors/README.md)

export type Expected =
  | { valid: true; output: unknown }
  | { valid: false; error: ErrorCode; details?: Record<string, unknown> };

export interface Vector {
  comment: string;
  tags: string[];
  input: Record<string, unknown>;
  expected: Expected;
}

export interface VectorFile {
  description: string;
  vectors: Vector[];
}

const ok = (output: unknown): Expected => ({ valid: true, output });
const fail = (error: ErrorCode, details?: Record<string, unknown>): Expected => ({ valid: false, error, ...(details ? { details } : {}) });

// ---------------------------------------------------------------------------------------------
// The cast (fictional organisations on example domains)

export const BE = 'https://accueil.example.be';
export const FR = 'https://corridor.example.fr';
export const SN = 'https://reintegration.example.sn';
export const OUTSIDER = 'https://outsider.example.net';

// ---------------------------------------------------------------------------------------------
// Deterministic keys

export interface KeySpec {
  name: string;
  node: string;
  use: 'sig' | 'enc';
}

export const KEY_SPECS: readonly KeySpec[] = [
  { name: 'accueil-sig-1', node: BE, use: 'sig' },
  { name: 'accueil-sig-2', node: BE, use: 'sig' },
  { name: 'accueil-enc-1', node: BE, use: 'enc' },
  { name: 'corridor-sig-1', node: FR, use: 'sig' },
  { name: 'corridor-enc-1', node: FR, use: 'enc' },
  { name: 'reintegration-sig-1', node: SN, use: 'sig' },
  { name: 'reintegration-enc-1', node: SN, use: 'enc' },
  { name: 'outsider-sig-1', node: OUTSIDER, use: 'sig' },
  { name: 'outsider-enc-1', node: OUTSIDER, use: 'enc' },
];

/** PKCS#8 (RFC 8410 §7) prefixes: the 32-byte seed follows. */
export const PKCS8_PREFIX = {
  Ed25519: '302e020100300506032b657004220420',
  X25519: '302e020100300506032b656e04220420',
} as const;

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
const fromHex = (text: string) => Uint8Array.from(text.match(/../g)!.map((h) => parseInt(h, 16)));

/** seed = SHA-256(ASCII("passerelle test vector key " || name)). */
export function seedFor(name: string): Uint8Array {
  return sha256Sync(utf8(`passerelle test vector key ${name}`));
}

/** The private JWK of a 32-byte seed, through WebCrypto's PKCS#8 import (README: "Keys"). */
export async function privateJwkFromSeed(seed: Uint8Array, crv: 'Ed25519' | 'X25519'): Promise<PrivateJwk> {
  const pkcs8 = new Uint8Array([...fromHex(PKCS8_PREFIX[crv]), ...seed]);
  const usages: KeyUsage[] = crv === 'Ed25519' ? ['sign'] : ['deriveBits'];
  const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: crv }, true, usages);
  const jwk = await crypto.subtle.exportKey('jwk', key);
  return { kty: 'OKP', crv, x: jwk.x!, d: jwk.d! };
}

export interface TestKey extends KeySpec {
  seed: string;
  pair: SigningKeyPair | EncryptionKeyPair;
}

export async function deriveTestKeys(): Promise<Map<string, TestKey>> {
  const out = new Map<string, TestKey>();
  for (const spec of KEY_SPECS) {
    const seed = seedFor(spec.name);
    const pair = await importKeyPair(await privateJwkFromSeed(seed, spec.use === 'sig' ? 'Ed25519' : 'X25519'));
    out.set(spec.name, { ...spec, seed: hex(seed), pair });
  }
  return out;
}

export function keysFile(keys: Map<string, TestKey>): Record<string, unknown> {
  return {
    description:
      'TEST ONLY. Deterministic keys for the Passerelle test vectors. These private keys are public: never use them for anything but tests.',
    derivation: {
      seed: 'SHA-256 of the ASCII string "passerelle test vector key " followed by the key name',
      Ed25519: `WebCrypto importKey("pkcs8", ${PKCS8_PREFIX.Ed25519} || seed), exported as JWK (d = seed)`,
      X25519: `WebCrypto importKey("pkcs8", ${PKCS8_PREFIX.X25519} || seed), exported as JWK (d = seed)`,
      kid: 'RFC 7638 JWK SHA-256 thumbprint of {crv, kty, x}',
    },
    keys: [...keys.values()].map((k) => ({
      name: k.name,
      node: k.node,
      use: k.use,
      testOnly: true,
      seed: k.seed,
      kid: k.pair.kid,
      publicJwk: k.pair.publicJwk,
      privateJwk: k.pair.privateJwk,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Deterministic UUID v7 (RFC 9562 §5.7) from a time and a label. */
export function uuidV7(at: string, label: string): string {
  const ms = Date.parse(at);
  const r = sha256Sync(utf8(label));
  const b = new Uint8Array(16);
  for (let i = 0; i < 6; i++) b[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  b[6] = 0x70 | (r[0]! & 0x0f);
  b[7] = r[1]!;
  b[8] = 0x80 | (r[2]! & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = r[i]!;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const encJson = (value: unknown) => b64u(utf8(JSON.stringify(value)));
const decodeSegment = (segment: string) => JSON.parse(fromUtf8(fromB64u(segment))) as Record<string, unknown>;
const payloadOf = (jwt: string) => decodeSegment(jwt.split('.')[1]!);
const headerOf = (jwt: string) => decodeSegment(jwt.split('.')[0]!);

const B64U_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Sets a stray low bit in the last character: same bytes for a lenient decoder, not canonical (RFC 4648 §3.5). */
function strayBits(segment: string): string {
  const last = B64U_ALPHABET.indexOf(segment[segment.length - 1]!);
  return segment.slice(0, -1) + B64U_ALPHABET[last | 1];
}

/** Flips one bit of a base64url segment's bytes and re-encodes it canonically. */
function flipBit(segment: string, byteIndex = 0, bit = 0): string {
  const bytes = fromB64u(segment);
  const i = byteIndex < 0 ? bytes.length + byteIndex : byteIndex;
  bytes[i] = bytes[i]! ^ (1 << bit);
  return b64u(bytes);
}

function replacePart(token: string, index: number, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

/** Same header and signature, another payload: the signature no longer matches. */
function swapPayload(jwt: string, payload: Record<string, unknown>): string {
  return replacePart(jwt, 1, encJson(payload));
}

async function resign(jwt: string, mutate: (p: Record<string, unknown>) => void, key: SigningKeyPair, typ?: string): Promise<string> {
  const payload = payloadOf(jwt);
  mutate(payload);
  return signCompact(payload, key, typ ?? (headerOf(jwt).typ as string));
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

// ---------------------------------------------------------------------------------------------
// The story: one person's case, from referral to erasure

const AGREEMENT_ID = uuidV7('2026-02-16T10:00:00Z', 'agreement be-sn');
const AGREEMENT_FR_ID = uuidV7('2026-02-20T10:00:00Z', 'agreement be-fr-sn');
const CONSENT_ID = uuidV7('2026-04-28T10:00:00Z', 'consent case-be-2026-0042');
const THREAD_ID = uuidV7('2026-05-04T09:30:00Z', 'thread case-be-2026-0042');
const SUBJECT = 'case-be-2026-0042';
const SN_CASE = 'sn-thies-2026-0107';

const CONSENT_TEXT =
  "J'accepte que l'Accueil Transit transmette les informations nécessaires à l'organisation de mon retour et de ma réintégration.";

/** What a verifier knows of who held which signing key when (README: "senderKeys"). */
export interface KeyWindow {
  node: string;
  key: string;
  notBefore: string;
  notAfter?: string;
}

const DIRECTORY: KeyWindow[] = [
  { node: BE, key: 'accueil-sig-1', notBefore: '2026-03-01T00:00:00Z', notAfter: '2027-01-16T09:00:00Z' },
  { node: BE, key: 'accueil-sig-2', notBefore: '2027-01-15T09:00:00Z' },
  { node: FR, key: 'corridor-sig-1', notBefore: '2026-03-01T00:00:00Z' },
  { node: SN, key: 'reintegration-sig-1', notBefore: '2026-03-01T00:00:00Z' },
];

function addMinutes(at: string, minutes: number): string {
  return new Date(Date.parse(at) + minutes * 60_000).toISOString().replace('.000Z', 'Z');
}

interface Sample {
  type: MessageType;
  label: string;
  message: Message;
  signer: string;
  recipientEnc: string;
  now: string;
}

function consentRecord(): ConsentRecord {
  return {
    id: CONSENT_ID,
    version: 1,
    subject: SUBJECT,
    controller: BE,
    purposes: ['referral', 'reintegration-planning', 'reintegration-assistance', 'monitoring'],
    recipients: [SN, FR],
    categories: ['identity', 'contact', 'health', 'return-travel', 'education-skills', 'employment', 'reintegration-plan', 'monitoring'],
    explicitConsent: ['health'],
    collection: {
      method: 'written',
      interpreter: { kind: 'intercultural-mediator', language: 'wo' },
      language: 'fr',
      text: { version: '2026-02', digest: '' },
    },
    collectedAt: '2026-04-28T10:00:00Z',
    expiresAt: '2027-04-28T10:00:00Z',
    collectedBy: { role: 'caseworker', staffRef: 'cw-be-017' },
  };
}

function samples(consentJws: string): Sample[] {
  const at = {
    referral: '2026-05-04T09:30:00Z',
    response: '2026-05-05T14:00:00Z',
    profile: '2026-05-20T08:15:00Z',
    update: '2026-10-01T10:00:00Z',
    closure: '2027-03-01T09:00:00Z',
    withdrawal: '2026-11-10T16:20:00Z',
    erasure: '2026-11-12T11:45:00Z',
    problem: '2026-05-04T10:05:00Z',
  };
  const id = (k: keyof typeof at) => uuidV7(at[k], `message ${k}`);
  const common = (k: keyof typeof at, from: string, to: string) => ({
    from,
    to,
    id: id(k),
    created: new Date(at[k]),
    threadId: THREAD_ID,
    agreementId: AGREEMENT_ID,
  });
  const out: Sample[] = [
    {
      type: 'referral',
      label: 'referral',
      signer: 'accueil-sig-1',
      recipientEnc: 'reintegration-enc-1',
      now: addMinutes(at.referral, 30),
      message: buildReferral({
        ...common('referral', BE, SN),
        consentId: CONSENT_ID,
        consentRecord: consentJws,
        body: { subject: SUBJECT, services: ['reintegration-support', 'medical'], urgency: 'routine', reasonCode: 'pre-departure' },
        data: {
          identity: {
            givenName: 'Amina',
            familyName: 'Exemple',
            dateOfBirth: '1994-03-12',
            sex: 'female',
            nationalities: ['SN'],
            preferredLanguages: ['fr', 'wo'],
          },
          contact: { phone: '+32 470 00 00 00', preferredChannel: 'through-caseworker' },
          health: { needs: ['Follow-up for a chronic condition'], fitToTravel: true, followUpRequired: true },
          'return-travel': {
            plannedDeparture: '2026-06-15',
            departureCountry: 'BE',
            destinationCountry: 'SN',
            destinationLocality: 'Thiès',
            arrivalAssistance: true,
          },
        },
      }),
    },
    {
      type: 'referral-response',
      label: 'referral-response',
      signer: 'reintegration-sig-1',
      recipientEnc: 'accueil-enc-1',
      now: addMinutes(at.response, 30),
      message: buildReferralResponse({
        ...common('response', SN, BE),
        body: { inReplyTo: id('referral'), subject: SUBJECT, decision: 'accepted', receiverCaseRef: SN_CASE },
        data: { contact: { phone: '+221 77 000 00 00', preferredChannel: 'phone' } },
      }),
    },
    {
      type: 'reintegration-profile',
      label: 'reintegration-profile',
      signer: 'accueil-sig-1',
      recipientEnc: 'reintegration-enc-1',
      now: addMinutes(at.profile, 30),
      message: buildReintegrationProfile({
        ...common('profile', BE, SN),
        consentId: CONSENT_ID,
        consentRecord: consentJws,
        body: { subject: SUBJECT, dimensions: ['economic', 'social', 'psychosocial'], assistancePackage: 'enhanced' },
        data: {
          identity: { givenName: 'Amina', familyName: 'Exemple' },
          'education-skills': {
            skills: [{ name: 'Tailoring', level: 'advanced' }],
            languages: [
              { tag: 'wo', level: 'native' },
              { tag: 'fr', level: 'fluent' },
            ],
          },
          employment: { workHistory: [{ occupation: 'Tailor', country: 'SN', from: '2012', to: '2019' }], currentSituation: 'not-allowed-to-work' },
          health: { psychosocialNeeds: ['Counselling after return'], ongoingTreatment: false },
          'reintegration-plan': {
            intendedActivities: [{ dimension: 'economic', kind: 'business', description: 'Reopen a tailoring workshop in Thiès' }],
            housing: { arrangement: 'family', supportNeeded: false },
            budgetEur: 2000,
            goals: ['A regular income within six months'],
          },
        },
      }),
    },
    {
      type: 'reintegration-update',
      label: 'reintegration-update',
      signer: 'reintegration-sig-1',
      recipientEnc: 'accueil-enc-1',
      now: addMinutes(at.update, 30),
      message: buildReintegrationUpdate({
        ...common('update', SN, BE),
        consentId: CONSENT_ID,
        body: { subject: SN_CASE, period: { from: '2026-07-01T00:00:00Z', to: '2026-09-30T23:59:59Z' }, visit: 'in-person' },
        data: {
          monitoring: {
            assistanceDelivered: [{ kind: 'Sewing machines and first stock', deliveredOn: '2026-07-20', amountEur: 1500 }],
            progress: { economic: 3, social: 2, psychosocial: 3 },
            status: 'on-track',
            observedAt: '2026-09-28T10:00:00Z',
          },
        },
      }),
    },
    {
      type: 'case-closure',
      label: 'case-closure',
      signer: 'reintegration-sig-1',
      recipientEnc: 'accueil-enc-1',
      now: addMinutes(at.closure, 30),
      message: buildCaseClosure({
        ...common('closure', SN, BE),
        body: { subject: SN_CASE, reason: 'completed', closedAt: '2027-02-28T17:00:00Z' },
        data: { monitoring: { status: 'completed', progress: { economic: 4, social: 3, psychosocial: 4 }, observedAt: '2027-02-20T10:00:00Z' } },
      }),
    },
    {
      type: 'consent-withdrawal',
      label: 'consent-withdrawal',
      signer: 'accueil-sig-1',
      recipientEnc: 'reintegration-enc-1',
      now: addMinutes(at.withdrawal, 30),
      message: buildConsentWithdrawal({
        ...common('withdrawal', BE, SN),
        body: { consentId: CONSENT_ID, purposes: ['monitoring'], withdrawnAt: '2026-11-10T15:00:00Z', erasureRequested: true },
      }),
    },
    {
      type: 'erasure-confirmation',
      label: 'erasure-confirmation',
      signer: 'reintegration-sig-1',
      recipientEnc: 'accueil-enc-1',
      now: addMinutes(at.erasure, 30),
      message: buildErasureConfirmation({
        ...common('erasure', SN, BE),
        body: {
          consentId: CONSENT_ID,
          inReplyTo: id('withdrawal'),
          erasedAt: '2026-11-12T11:30:00Z',
          erased: [{ messageId: id('update'), categories: ['monitoring'] }],
          retained: [
            {
              messageId: id('profile'),
              categories: ['reintegration-plan'],
              legalObligation: 'Grant audit under the reintegration financing agreement (art. 12)',
              until: '2031-12-31T23:59:59Z',
            },
          ],
        },
      }),
    },
    {
      type: 'problem-report',
      label: 'problem-report',
      signer: 'reintegration-sig-1',
      recipientEnc: 'accueil-enc-1',
      now: addMinutes(at.problem, 30),
      message: buildProblemReport({
        ...common('problem', SN, BE),
        body: { code: 'CONSENT_CATEGORY_NOT_COVERED', inReplyTo: id('referral'), description: 'The consent does not list one category sent.', retryable: false },
      }),
    },
  ];
  return out;
}

/** The projection of a verified message that vectors compare (README: "messages.json"). */
function expectedMessage(message: Message, kid: string, disclosed: 'all' | 'none' | Record<string, readonly string[]>): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [category, section] of Object.entries(message.data as Record<string, Record<string, unknown> | undefined>)) {
    if (!section || Object.keys(section).length === 0) continue;
    if (disclosed === 'all') data[category] = section;
    else if (disclosed === 'none') data[category] = {};
    else data[category] = Object.fromEntries(Object.entries(section).filter(([k]) => (disclosed[category] ?? []).includes(k)));
  }
  return {
    header: message.header,
    body: message.body,
    data,
    kid,
    ...(message.consentRecord ? { consentRecord: message.consentRecord } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Generation

interface Context {
  keys: Map<string, TestKey>;
  sig: (name: string) => SigningKeyPair;
  enc: (name: string) => EncryptionKeyPair;
  consentJws: string;
  samples: Sample[];
  signed: Map<string, { sdJwt: string; jwt: string; disclosures: string[] }>;
}

async function context(): Promise<Context> {
  const keys = await deriveTestKeys();
  const sig = (name: string) => keys.get(name)!.pair as SigningKeyPair;
  const enc = (name: string) => keys.get(name)!.pair as EncryptionKeyPair;
  const record = consentRecord();
  record.collection.text.digest = await sha256b64u(CONSENT_TEXT);
  const consentJws = await signConsent(record, sig('accueil-sig-1'));
  const all = samples(consentJws);
  const signed = new Map<string, { sdJwt: string; jwt: string; disclosures: string[] }>();
  for (const s of all) {
    const r = await signMessage(s.message, sig(s.signer));
    signed.set(s.label, { sdJwt: r.sdJwt, jwt: r.jwt, disclosures: r.disclosures.map((d) => d.encoded) });
  }
  return { keys, sig, enc, consentJws, samples: all, signed };
}

function verifierInput(s: Sample, sdJwt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sdJwt, now: s.now, senderKeys: DIRECTORY, ...extra };
}

const otherType: Record<MessageType, MessageType> = {
  referral: 'reintegration-profile',
  'referral-response': 'referral',
  'reintegration-profile': 'referral',
  'reintegration-update': 'case-closure',
  'case-closure': 'reintegration-update',
  'consent-withdrawal': 'erasure-confirmation',
  'erasure-confirmation': 'consent-withdrawal',
  'problem-report': 'referral-response',
};

async function messageVectors(ctx: Context): Promise<VectorFile> {
  const vectors: Vector[] = [];
  for (const s of ctx.samples) {
    const { sdJwt, jwt, disclosures } = ctx.signed.get(s.label)!;
    const key = ctx.sig(s.signer);
    const t = s.type;
    const hasData = disclosures.length > 0;
    const foreign = makeDisclosure('givenName', 'Mallory', 'c2FsdC1ub3QtaW4tdGhpcy1tZXNzYWdl').encoded;
    vectors.push(
      {
        comment: `${t}: verifies with every disclosure`,
        tags: [t, 'valid', 'all-disclosures'],
        input: verifierInput(s, sdJwt),
        expected: ok(expectedMessage(s.message, key.kid, 'all')),
      },
      {
        comment: `${t}: verifies with no disclosure (what an auditor holds); categories still derive from the concealed structure${hasData ? '' : ' (this type carries no personal data)'}`,
        tags: [t, 'valid', 'no-disclosures'],
        input: verifierInput(s, joinSdJwt(jwt, [])),
        expected: ok(expectedMessage(s.message, key.kid, 'none')),
      },
      {
        comment: `${t}: payload changed after signing (thread rewritten), signature kept`,
        tags: [t, 'invalid', 'tampered'],
        input: verifierInput(s, joinSdJwt(swapPayload(jwt, { ...payloadOf(jwt), thread: AGREEMENT_FR_ID }), disclosures)),
        expected: fail('SIGNATURE_INVALID'),
      },
      {
        comment: hasData
          ? `${t}: signed payload whose categories omit one category present in data`
          : `${t}: signed payload declaring a category while data is empty`,
        tags: [t, 'invalid', 'categories'],
        input: verifierInput(
          s,
          joinSdJwt(
            await resign(jwt, (p) => {
              const c = p.categories as string[];
              p.categories = hasData ? c.slice(1) : ['identity'];
            }, key),
            disclosures,
          ),
        ),
        expected: fail('CATEGORIES_MISMATCH'),
      },
      {
        comment: `${t}: the same payload signed with the typ of ${otherType[t]}`,
        tags: [t, 'invalid', 'typ'],
        input: verifierInput(s, joinSdJwt(await resign(jwt, () => {}, key, `passerelle-${otherType[t]}+sd-jwt`), disclosures)),
        expected: fail('WRONG_TYPE'),
      },
      {
        comment: `${t}: signed payload with a claim outside the allow-list`,
        tags: [t, 'invalid', 'unknown-claim'],
        input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void (p.note = 'unexpected'), key), disclosures)),
        expected: fail('SCHEMA_INVALID'),
      },
      {
        comment: `${t}: a well-formed disclosure that matches no digest of the message`,
        tags: [t, 'invalid', 'disclosure'],
        input: verifierInput(s, joinSdJwt(jwt, [...disclosures, foreign])),
        expected: fail('DISCLOSURE_INVALID'),
      },
      {
        comment: `${t}: the same disclosure twice`,
        tags: [t, 'invalid', 'disclosure'],
        input: verifierInput(s, joinSdJwt(jwt, hasData ? [...disclosures, disclosures[0]!] : [foreign, foreign])),
        expected: fail('DISCLOSURE_INVALID'),
      },
    );
  }

  // Checks that do not depend on the type, on the referral.
  const s = ctx.samples[0]!;
  const { sdJwt, jwt, disclosures } = ctx.signed.get('referral')!;
  const be1 = ctx.sig('accueil-sig-1');
  const referralPayload = payloadOf(jwt);
  const iat = referralPayload.iat as number;
  const iso = (sec: number) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
  const health = (referralPayload.data as Record<string, { _sd: string[] }>).health!._sd;
  vectors.push(
    {
      comment: 'referral: verifier bound to its own node id (self) and to the authenticated sender',
      tags: ['referral', 'valid', 'audience', 'sender'],
      input: verifierInput(s, sdJwt, { self: SN, expectedSender: BE }),
      expected: ok(expectedMessage(s.message, be1.kid, 'all')),
    },
    {
      comment: 'referral: addressed to another node than the verifier',
      tags: ['referral', 'invalid', 'audience'],
      input: verifierInput(s, sdJwt, { self: FR }),
      expected: fail('AUDIENCE_MISMATCH'),
    },
    {
      comment: 'referral: the inner issuer is not the authenticated sender (checked before any key lookup)',
      tags: ['referral', 'invalid', 'sender'],
      input: verifierInput(s, sdJwt, { expectedSender: FR }),
      expected: fail('SENDER_MISMATCH'),
    },
    {
      comment: 'referral: iat 300 s ahead of the verifier clock is within the allowed skew',
      tags: ['referral', 'valid', 'time'],
      input: verifierInput(s, sdJwt, { now: iso(iat - 300) }),
      expected: ok(expectedMessage(s.message, be1.kid, 'all')),
    },
    {
      comment: 'referral: iat 301 s ahead of the verifier clock; the error carries the server time',
      tags: ['referral', 'invalid', 'time'],
      input: verifierInput(s, sdJwt, { now: iso(iat - 301) }),
      expected: fail('CLOCK_SKEW', { serverTime: iso(iat - 301) }),
    },
    {
      comment: 'referral: verifier clock exactly at exp (exp is exclusive)',
      tags: ['referral', 'invalid', 'time'],
      input: verifierInput(s, sdJwt, { now: iso(referralPayload.exp as number) }),
      expected: fail('EXPIRED'),
    },
    {
      comment: 'referral: one second before exp',
      tags: ['referral', 'valid', 'time'],
      input: verifierInput(s, sdJwt, { now: iso((referralPayload.exp as number) - 1) }),
      expected: ok(expectedMessage(s.message, be1.kid, 'all')),
    },
    {
      comment: "referral: the verifier does not know the signer's key",
      tags: ['referral', 'invalid', 'key'],
      input: verifierInput(s, sdJwt, { senderKeys: DIRECTORY.filter((k) => k.node !== BE) }),
      expected: fail('KEY_UNKNOWN'),
    },
    {
      comment: "referral: the signer's key had been retired before iat",
      tags: ['referral', 'invalid', 'key', 'validity-window'],
      input: verifierInput(s, sdJwt, {
        senderKeys: [{ node: BE, key: 'accueil-sig-1', notBefore: '2026-03-01T00:00:00Z', notAfter: '2026-05-01T00:00:00Z' }],
      }),
      expected: fail('KEY_NOT_VALID'),
    },
    {
      comment: 'referral: signed by a node that claims to be another (outsider key, iss of accueil)',
      tags: ['referral', 'invalid', 'key', 'impersonation'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, () => {}, ctx.sig('outsider-sig-1')), disclosures)),
      expected: fail('KEY_UNKNOWN'),
    },
    {
      comment: 'referral: a plain JWT typ instead of the message typ',
      tags: ['referral', 'invalid', 'typ'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, () => {}, be1, 'JWT'), disclosures)),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'referral: a receipt where a message is expected',
      tags: ['referral', 'invalid', 'typ'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, () => {}, be1, 'passerelle-receipt+jwt'), [])),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'referral: declared categories include one not carried',
      tags: ['referral', 'invalid', 'categories'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void (p.categories as string[]).push('family'), be1), disclosures)),
      expected: fail('CATEGORIES_MISMATCH'),
    },
    {
      comment: 'referral: a category declared twice',
      tags: ['referral', 'invalid', 'categories'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void (p.categories as string[]).push('identity'), be1), disclosures)),
      expected: fail('CATEGORIES_MISMATCH'),
    },
    {
      comment: 'referral: a data section with an empty _sd array',
      tags: ['referral', 'invalid', 'structure'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void ((p.data as Record<string, unknown>).family = { _sd: [] }), be1), [])),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: a data section with a clear member beside _sd',
      tags: ['referral', 'invalid', 'structure'],
      input: verifierInput(
        s,
        joinSdJwt(await resign(jwt, (p) => void ((p.data as Record<string, { _sd: string[] }>).health = { _sd: health, fitToTravel: true } as never), be1), []),
      ),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: _sd_alg other than sha-256',
      tags: ['referral', 'invalid', 'sd-alg'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void (p._sd_alg = 'sha-512'), be1), [])),
      expected: fail('UNSUPPORTED_ALGORITHM'),
    },
    {
      comment: 'referral: a purpose that is not a purpose of this message type',
      tags: ['referral', 'invalid', 'schema'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void (p.purpose = 'monitoring'), be1), disclosures)),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: body fails its schema (no service requested)',
      tags: ['referral', 'invalid', 'schema'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void ((p.body as Record<string, unknown>).services = []), be1), disclosures)),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: a disclosed value fails the schema of its field (checked after disclosure)',
      tags: ['referral', 'invalid', 'schema'],
      input: await (async () => {
        const bad = makeDisclosure('sex', 'not-a-listed-value');
        const forged = await resign(jwt, (p) => {
          const d = p.data as Record<string, { _sd: string[] }>;
          d.identity = { _sd: [...d.identity!._sd, bad.digest].sort() };
        }, be1);
        return verifierInput(s, joinSdJwt(forged, [bad.encoded]));
      })(),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: the consent claim removed (a referral needs consent)',
      tags: ['referral', 'invalid', 'consent'],
      input: verifierInput(s, joinSdJwt(await resign(jwt, (p) => void delete p.consent, be1), disclosures)),
      expected: fail('CONSENT_MISSING'),
    },
    {
      comment: 'referral: data category not allowed for referral-response (signed, declared and carried)',
      tags: ['referral-response', 'invalid', 'schema'],
      input: await (async () => {
        const r = ctx.samples[1]!;
        const resp = ctx.signed.get('referral-response')!;
        const forged = await resign(resp.jwt, (p) => {
          (p.data as Record<string, unknown>).health = { _sd: [health[0]] };
          (p.categories as string[]).push('health');
        }, ctx.sig('reintegration-sig-1'));
        return verifierInput(r, joinSdJwt(forged, []));
      })(),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'referral: a key-binding JWT after the last disclosure (this profile uses none)',
      tags: ['referral', 'invalid', 'key-binding'],
      input: verifierInput(s, `${sdJwt}${jwt}`),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'referral: the payload is not JSON (signature by the right key over those bytes)',
      tags: ['referral', 'invalid', 'encoding'],
      input: verifierInput(
        s,
        joinSdJwt(
          await new CompactSign(utf8('{"iss":'))
            .setProtectedHeader({ alg: 'EdDSA', typ: 'passerelle-referral+sd-jwt', kid: be1.kid })
            .sign(await cryptoKeyFor(be1.privateJwk, 'EdDSA')),
          [],
        ),
      ),
      expected: fail('MALFORMED'),
    },
  );
  return {
    description:
      'Message SD-JWTs (spec/protocol.md §5): the issuer-signed JWT with all, none or forged disclosures, verified as a recipient does after decryption or as an auditor does with the signed part alone.',
    vectors,
  };
}

async function envelopeVectors(
  ctx: Context,
): Promise<{ file: VectorFile; referralJwe: string; referralDigest: string; referralId: string; smallJwe: string }> {
  const vectors: Vector[] = [];
  const envelope = async (s: Sample) =>
    seal(s.message, { signingKey: ctx.sig(s.signer), recipientKey: ctx.enc(s.recipientEnc).publicJwk as PublicEncryptionJwk & { kid: string } });
  const openInput = (s: Sample, jwe: string, extra: Record<string, unknown> = {}) => ({
    jwe,
    self: s.message.header.to,
    expectedSender: s.message.header.from,
    decryptionKeys: [s.recipientEnc],
    senderKeys: DIRECTORY,
    now: s.now,
    ...extra,
  });
  const withDigest = async (s: Sample, jwe: string, disclosed: Parameters<typeof expectedMessage>[2] = 'all') => ({
    ...expectedMessage(s.message, ctx.sig(s.signer).kid, disclosed),
    digest: await sha256b64u(jwe),
  });

  let smallJwe = '';
  for (const label of ['referral', 'reintegration-profile', 'reintegration-update', 'consent-withdrawal']) {
    const s = ctx.samples.find((x) => x.label === label)!;
    const { jwe } = await envelope(s);
    if (label === 'consent-withdrawal') smallJwe = jwe;
    vectors.push({
      comment: `${s.type}: opens with the recipient's key, from the authenticated sender`,
      tags: [s.type, 'valid'],
      input: openInput(s, jwe),
      expected: ok(await withDigest(s, jwe)),
    });
  }

  const s = ctx.samples[0]!;
  const be1 = ctx.sig('accueil-sig-1');
  const { jwe } = await envelope(s);
  const parts = jwe.split('.');
  const header = decodeSegment(parts[0]!);
  const recipient = ctx.enc('reintegration-enc-1');
  vectors.push({
    comment: 'referral: the reference envelope (receipts.json names its digest)',
    tags: ['referral', 'valid', 'reference'],
    input: openInput(s, jwe),
    expected: ok(await withDigest(s, jwe)),
  });
  vectors.push(
    {
      comment: 'referral: opened by a node that is not the inner audience (sealed for another node, encrypted to this one)',
      tags: ['referral', 'invalid', 'audience'],
      input: await (async () => {
        const misdirected = clone(s.message);
        misdirected.header.to = FR;
        const sealed = await seal(misdirected, { signingKey: be1, recipientKey: recipient.publicJwk as never });
        return openInput(s, sealed.jwe);
      })(),
      expected: fail('AUDIENCE_MISMATCH'),
    },
    {
      comment: 'referral: the transport authenticated another node than the inner issuer',
      tags: ['referral', 'invalid', 'sender'],
      input: openInput(s, jwe, { expectedSender: FR }),
      expected: fail('SENDER_MISMATCH'),
    },
    {
      comment: 'referral: the recipient holds no key with the JWE kid (same answer as a failed decryption)',
      tags: ['referral', 'invalid', 'decryption'],
      input: openInput(s, jwe, { decryptionKeys: ['corridor-enc-1'] }),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'referral: one bit flipped in epk.x inside the protected header',
      tags: ['referral', 'invalid', 'decryption', 'bit-flip'],
      input: openInput(s, replacePart(jwe, 0, encJson({ ...header, epk: { ...(header.epk as object), x: flipBit((header.epk as { x: string }).x, 3) } }))),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'referral: protected header re-serialised with the same members in another order (AAD changes)',
      tags: ['referral', 'invalid', 'decryption', 'aad'],
      input: openInput(s, replacePart(jwe, 0, encJson(Object.fromEntries(Object.entries(header).reverse())))),
      expected: fail('DECRYPTION_FAILED'),
    },
    ...[1, 2, 3, 4].map((i) => ({
      comment: `referral: one bit flipped in JWE part ${i} (${['', 'encrypted key', 'initialisation vector', 'ciphertext', 'authentication tag'][i]})`,
      tags: ['referral', 'invalid', 'decryption', 'bit-flip'],
      input: openInput(s, replacePart(jwe, i, flipBit(parts[i]!, i === 3 ? 7 : 1, 2))),
      expected: fail('DECRYPTION_FAILED'),
    })),
    {
      comment: 'referral: ciphertext truncated by one byte',
      tags: ['referral', 'invalid', 'decryption', 'truncated'],
      input: openInput(s, replacePart(jwe, 3, b64u(fromB64u(parts[3]!).slice(0, -1)))),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'referral: authentication tag truncated to 96 bits',
      tags: ['referral', 'invalid', 'decryption', 'truncated'],
      input: openInput(s, replacePart(jwe, 4, b64u(fromB64u(parts[4]!).slice(0, 12)))),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'referral: the last part cut off (four parts)',
      tags: ['referral', 'invalid', 'truncated'],
      input: openInput(s, parts.slice(0, 4).join('.')),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'referral: the whole envelope cut in half',
      tags: ['referral', 'invalid', 'truncated'],
      input: openInput(s, jwe.slice(0, Math.floor(jwe.length / 2))),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'referral: the signed JWS sent without encryption',
      tags: ['referral', 'invalid', 'wrong-serialisation'],
      input: openInput(s, ctx.signed.get('referral')!.jwt),
      expected: fail('WRONG_TYPE'),
    },
  );

  // Envelopes whose JWE is well-formed but whose content or header is wrong: built directly.
  const encrypt = async (plaintext: string, protectedHeader: Record<string, unknown>) =>
    new CompactEncrypt(utf8(plaintext))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: recipient.kid, ...protectedHeader } as never)
      .encrypt(await cryptoKeyFor(recipient.publicJwk, 'ECDH-ES+A256KW'));
  const { sdJwt, jwt, disclosures } = ctx.signed.get('referral')!;
  const iat = payloadOf(jwt).iat as number;
  const iso = (sec: number) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
  const bare = await encrypt(sdJwt, {});
  vectors.push(
    {
      comment: 'referral: the JWE typ of something else',
      tags: ['referral', 'invalid', 'typ'],
      input: openInput(s, await encrypt(sdJwt, { typ: 'JWT', cty: 'sd-jwt' })),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'referral: the JWE cty of a plain JWT',
      tags: ['referral', 'invalid', 'typ'],
      input: openInput(s, await encrypt(sdJwt, { typ: 'passerelle-message+jwe', cty: 'JWT' })),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'referral: no typ and no cty in the JWE header (both optional)',
      tags: ['referral', 'valid'],
      input: openInput(s, bare),
      expected: ok(await withDigest(s, bare)),
    },
    {
      comment: 'referral: plaintext is a JWS without the SD-JWT trailing tilde',
      tags: ['referral', 'invalid', 'sd-jwt'],
      input: openInput(s, await encrypt(jwt, { typ: 'passerelle-message+jwe', cty: 'sd-jwt' })),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'referral: plaintext SD-JWT whose signature does not verify',
      tags: ['referral', 'invalid', 'signature'],
      input: openInput(
        s,
        await encrypt(joinSdJwt(replacePart(jwt, 2, flipBit(jwt.split('.')[2]!, 10)), disclosures), { typ: 'passerelle-message+jwe', cty: 'sd-jwt' }),
      ),
      expected: fail('SIGNATURE_INVALID'),
    },
    {
      comment: 'referral: sealed by a node signing with its own key under the issuer of another node',
      tags: ['referral', 'invalid', 'impersonation'],
      input: openInput(
        s,
        await encrypt(joinSdJwt(await resign(jwt, () => {}, ctx.sig('outsider-sig-1')), disclosures), { typ: 'passerelle-message+jwe', cty: 'sd-jwt' }),
        { expectedSender: BE },
      ),
      expected: fail('KEY_UNKNOWN'),
    },
    {
      comment: 'referral: opened after exp',
      tags: ['referral', 'invalid', 'time'],
      input: openInput(s, jwe, { now: iso(payloadOf(jwt).exp as number) }),
      expected: fail('EXPIRED'),
    },
    {
      comment: "referral: opened by a node whose clock is 10 minutes behind the sender's",
      tags: ['referral', 'invalid', 'time'],
      input: openInput(s, jwe, { now: iso(iat - 600) }),
      expected: fail('CLOCK_SKEW', { serverTime: iso(iat - 600) }),
    },
  );

  return {
    file: {
      description:
        'Sealed envelopes (spec/protocol.md §6): compact JWE (ECDH-ES+A256KW, X25519, A256GCM) around the SD-JWT, opened with the recipient key named in decryptionKeys.',
      vectors,
    },
    referralJwe: jwe,
    smallJwe,
    referralDigest: await sha256b64u(jwe),
    referralId: s.message.header.id,
  };
}

async function sdJwtVectors(ctx: Context): Promise<VectorFile> {
  const vectors: Vector[] = [];
  const s = ctx.samples[0]!;
  const be1 = ctx.sig('accueil-sig-1');
  const fr1 = ctx.sig('corridor-sig-1');
  const { sdJwt, jwt } = ctx.signed.get('referral')!;
  const input = (sd: string, extra: Record<string, unknown> = {}) => ({ sdJwt: sd, now: s.now, senderKeys: DIRECTORY, ...extra });
  const verified = await verifySdJwtMessage(sdJwt, { resolveSenderKey: (_iss, kid) => (kid === be1.kid ? be1.publicJwk : undefined), now: new Date(s.now) });

  const subset = { identity: ['givenName', 'nationalities'], 'return-travel': ['destinationCountry', 'destinationLocality'] } as const;
  const presentation = present(verified, subset);
  vectors.push(
    {
      comment: 'presentation: a subset of the disclosures with the issuer-signed JWT unchanged',
      tags: ['presentation', 'valid'],
      input: input(joinSdJwt(presentation.jwt, presentation.disclosures)),
      expected: ok(expectedMessage(s.message, be1.kid, subset)),
    },
    {
      comment: 'presentation: the same subset in reverse order (order carries no meaning)',
      tags: ['presentation', 'valid'],
      input: input(joinSdJwt(presentation.jwt, [...presentation.disclosures].reverse())),
      expected: ok(expectedMessage(s.message, be1.kid, subset)),
    },
    {
      comment: 'presentation: one disclosure with its value changed and re-encoded (its digest is in no _sd)',
      tags: ['presentation', 'invalid'],
      input: (() => {
        const [salt, name] = JSON.parse(fromUtf8(fromB64u(presentation.disclosures[0]!))) as [string, string, unknown];
        return input(joinSdJwt(jwt, [makeDisclosure(name, 'Mallory', salt).encoded, ...presentation.disclosures.slice(1)]));
      })(),
      expected: fail('DISCLOSURE_INVALID'),
    },
  );

  // Forged structures, each signed by the issuer so that only the named rule fails.
  const forge = async (mutate: (data: Record<string, { _sd: string[] }>) => void, extraDisclosures: string[]) => {
    const forged = await resign(jwt, (p) => mutate(p.data as Record<string, { _sd: string[] }>), be1);
    return input(joinSdJwt(forged, extraDisclosures));
  };
  const identityDigests = (verified.disclosedDigests.identity ?? {}) as Record<string, string>;
  const givenNameDigest = identityDigests.givenName!;
  const givenNameDisclosure = presentation.disclosures.find((d) => JSON.parse(fromUtf8(fromB64u(d)))[1] === 'givenName')!;
  const addToIdentity = (digest: string) => (data: Record<string, { _sd: string[] }>) => {
    data.identity = { _sd: [...data.identity!._sd, digest].sort() };
  };
  const shortSalt = makeDisclosure('otherNames', ['Ami'], 'c2hvcnQ');
  const arrayElement = { encoded: b64u(utf8(JSON.stringify(['bG9uZy1lbm91Z2gtc2FsdC0x', 'Ami']))) };
  const reserved = makeDisclosure('_sd', ['x'], 'bG9uZy1lbm91Z2gtc2FsdC0y');
  const proto = makeDisclosure('__proto__', { givenName: 'Mallory' }, 'bG9uZy1lbm91Z2gtc2FsdC00');
  const secondGivenName = makeDisclosure('givenName', 'Aminata', 'bG9uZy1lbm91Z2gtc2FsdC0z');
  const digestOf = async (encoded: string) => b64u(sha256Sync(utf8(encoded)));
  vectors.push(
    {
      comment: 'disclosure: salt shorter than 16 characters',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(shortSalt.digest), [shortSalt.encoded]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: an array-element disclosure (two elements) is not used by this profile',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(await digestOf(arrayElement.encoded)), [arrayElement.encoded]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: a reserved claim name (_sd)',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(reserved.digest), [reserved.encoded]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: the claim name __proto__ (would replace the prototype of the revealed object)',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(proto.digest), [proto.encoded]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: two disclosures for the same claim name in one section',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(secondGivenName.digest), [givenNameDisclosure, secondGivenName.encoded]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: the same digest listed twice in one _sd array',
      tags: ['disclosure', 'invalid'],
      input: await forge(addToIdentity(givenNameDigest), [givenNameDisclosure]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: the same digest in two sections, disclosed once',
      tags: ['disclosure', 'invalid'],
      input: await forge((data) => void (data.contact = { _sd: [...data.contact!._sd, givenNameDigest].sort() }), [givenNameDisclosure]),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: not base64url',
      tags: ['disclosure', 'invalid', 'encoding'],
      input: input(joinSdJwt(jwt, ['WyJzYWx0Iiwi+mFtZSIsMV0'])),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: base64url of something that is not a JSON array',
      tags: ['disclosure', 'invalid', 'encoding'],
      input: input(joinSdJwt(jwt, [b64u(utf8('{"salt":"x"}'))])),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'disclosure: an empty disclosure between two tildes',
      tags: ['disclosure', 'invalid', 'encoding'],
      input: input(`${jwt}~~`),
      expected: fail('DISCLOSURE_INVALID'),
    },
  );

  // Onward referral: accueil -> corridor, then corridor passes a consented subset to reintegration.
  const toFr = clone(s.message);
  toFr.header.to = FR;
  toFr.header.id = uuidV7('2026-05-04T09:40:00Z', 'message referral to corridor');
  const firstHop = await signMessage(toFr, be1);
  const received = await verifySdJwtMessage(firstHop.sdJwt, { resolveSenderKey: (_i, kid) => (kid === be1.kid ? be1.publicJwk : undefined), now: new Date(s.now) });
  const onwardCreated = '2026-05-06T11:00:00Z';
  const onwardNow = addMinutes(onwardCreated, 30);
  const forwardedSelect = { identity: ['givenName', 'nationalities'] } as const;
  const forwarded = present(received, forwardedSelect);
  const onward = buildReferral({
    from: FR,
    to: SN,
    id: uuidV7(onwardCreated, 'message onward referral'),
    created: new Date(onwardCreated),
    threadId: THREAD_ID,
    agreementId: AGREEMENT_FR_ID,
    consentId: CONSENT_ID,
    consentRecord: ctx.consentJws,
    body: { subject: 'fr-corridor-2026-0311', services: ['reintegration-support'], urgency: 'routine', reasonCode: 'cross-border-coordination' },
    data: { contact: { preferredChannel: 'through-caseworker' } },
    onward: forwarded,
    onwardCategories: ['identity'],
  });
  const onwardSigned = await signMessage(onward, fr1);
  const onwardOwn = onwardSigned.disclosures.map((d) => d.encoded);
  const onwardExpected = (original: 'forwarded' | 'none' | Record<string, readonly string[]>) => ({
    ...expectedMessage(onward, fr1.kid, 'all'),
    original: expectedMessage(toFr, be1.kid, original === 'forwarded' ? forwardedSelect : original),
  });
  const onwardInput = (sd: string, extra: Record<string, unknown> = {}) => ({ sdJwt: sd, now: onwardNow, senderKeys: DIRECTORY, ...extra });
  const givenOnly = forwarded.disclosures.filter((d) => JSON.parse(fromUtf8(fromB64u(d)))[1] === 'givenName');
  vectors.push(
    {
      comment: "onward: corridor's referral carrying accueil's original JWT (provenance) and two of its disclosures",
      tags: ['onward', 'provenance', 'valid'],
      input: onwardInput(onwardSigned.sdJwt, { self: SN, expectedSender: FR }),
      expected: ok(onwardExpected('forwarded')),
    },
    {
      comment: 'onward: signed part only (an auditor): categories of the original come from the digests named in provenance',
      tags: ['onward', 'provenance', 'valid', 'no-disclosures'],
      input: onwardInput(joinSdJwt(onwardSigned.jwt, [])),
      expected: ok({ ...onwardExpected('none'), data: { contact: {} } }),
    },
    {
      comment: 'onward: a presentation keeping one forwarded disclosure',
      tags: ['onward', 'provenance', 'presentation', 'valid'],
      input: onwardInput(joinSdJwt(onwardSigned.jwt, [...onwardOwn, ...givenOnly])),
      expected: ok(onwardExpected({ identity: ['givenName'] })),
    },
    {
      comment: 'onward: an original disclosure that provenance.disclosed does not list',
      tags: ['onward', 'provenance', 'invalid'],
      input: onwardInput(
        joinSdJwt(onwardSigned.jwt, [
          ...onwardOwn,
          ...forwarded.disclosures,
          ...firstHop.disclosures.filter((d) => d.name === 'familyName').map((d) => d.encoded),
        ]),
      ),
      expected: fail('DISCLOSURE_INVALID'),
    },
    {
      comment: 'onward: the original JWT in provenance has been altered',
      tags: ['onward', 'provenance', 'invalid'],
      input: onwardInput(
        joinSdJwt(
          await resign(onwardSigned.jwt, (p) => {
            const prov = p.provenance as { jwt: string };
            prov.jwt = swapPayload(prov.jwt, { ...payloadOf(prov.jwt), aud: SN });
          }, fr1),
          [...onwardOwn, ...forwarded.disclosures],
        ),
      ),
      expected: fail('PROVENANCE_INVALID'),
    },
    {
      comment: 'onward: provenance with a member outside {jwt, disclosed}',
      tags: ['onward', 'provenance', 'invalid'],
      input: onwardInput(
        joinSdJwt(await resign(onwardSigned.jwt, (p) => void ((p.provenance as Record<string, unknown>).via = BE), fr1), [...onwardOwn, ...forwarded.disclosures]),
      ),
      expected: fail('PROVENANCE_INVALID'),
    },
    {
      comment: 'onward: declared categories omit the category passed on from the original',
      tags: ['onward', 'provenance', 'invalid', 'categories'],
      input: onwardInput(joinSdJwt(await resign(onwardSigned.jwt, (p) => void (p.categories = ['contact']), fr1), [...onwardOwn, ...forwarded.disclosures])),
      expected: fail('CATEGORIES_MISMATCH'),
    },
    {
      comment: "onward: the verifier does not know the original issuer's key",
      tags: ['onward', 'provenance', 'invalid', 'key'],
      input: onwardInput(onwardSigned.sdJwt, { senderKeys: DIRECTORY.filter((k) => k.node !== BE) }),
      expected: fail('PROVENANCE_INVALID'),
    },
    {
      comment: 'onward: an onward message passed on again (provenance inside provenance is refused)',
      tags: ['onward', 'provenance', 'invalid', 'nested'],
      input: await (async () => {
        const onwardVerified = await verifySdJwtMessage(onwardSigned.sdJwt, {
          resolveSenderKey: (_i, kid) => [be1, fr1].find((k) => k.kid === kid)?.publicJwk,
          now: new Date(onwardNow),
        });
        const again = buildReferral({
          from: SN,
          to: FR,
          id: uuidV7('2026-05-07T09:00:00Z', 'message onward again'),
          created: new Date('2026-05-07T09:00:00Z'),
          threadId: THREAD_ID,
          agreementId: AGREEMENT_FR_ID,
          consentId: CONSENT_ID,
          body: { subject: SN_CASE, services: ['social'], urgency: 'routine', reasonCode: 'cross-border-coordination' },
          data: {},
          onward: present(onwardVerified, { contact: true }),
          onwardCategories: ['contact'],
        });
        const signedAgain = await signMessage(again, ctx.sig('reintegration-sig-1'));
        return { sdJwt: signedAgain.sdJwt, now: '2026-05-07T09:30:00Z', senderKeys: DIRECTORY };
      })(),
      expected: fail('PROVENANCE_INVALID'),
    },
  );
  return {
    description:
      'Selective disclosure (spec/protocol.md §5.5, §5.6): presentations of a subset, malformed and misplaced disclosures, and onward referrals carrying the original issuer-signed JWT as provenance.',
    vectors,
  };
}

async function receiptVectors(ctx: Context, env: { referralDigest: string; referralId: string }): Promise<VectorFile> {
  const sn1 = ctx.sig('reintegration-sig-1');
  const at = new Date('2026-05-04T09:31:07Z');
  const base = { receiver: SN, sender: BE, messageId: env.referralId, digest: env.referralDigest, at };
  const checkpoint = await signCheckpoint(
    buildCheckpoint({ origin: SN, size: 42, root: sha256Sync(utf8('reintegration.example.sn audit log, 42 leaves')), at }),
    sn1,
  );
  const accepted = await signReceipt({ ...base, status: 'accepted', log: { index: 41, checkpoint } }, sn1);
  const rejected = await signReceipt({ ...base, status: 'rejected', code: 'CONSENT_CATEGORY_NOT_COVERED' }, sn1);
  const verifyInput = (receipt: string, extra: Record<string, unknown> = {}) => ({
    receipt,
    receiver: SN,
    sender: BE,
    messageId: env.referralId,
    digest: env.referralDigest,
    senderKeys: DIRECTORY,
    ...extra,
  });
  const claims = (status: 'accepted' | 'rejected', extra: Record<string, unknown>) => ({
    iss: SN,
    aud: BE,
    iat: Math.floor(at.getTime() / 1000),
    message: env.referralId,
    digest: env.referralDigest,
    status,
    ...extra,
  });
  const vectors: Vector[] = [
    {
      comment: 'receipt: accepted, with the receiver audit-log position and its signed checkpoint; digest of the reference envelope in envelopes.json',
      tags: ['receipt', 'valid', 'accepted'],
      input: verifyInput(accepted),
      expected: ok(claims('accepted', { log: { index: 41, checkpoint } })),
    },
    {
      comment: 'receipt: rejected, naming the error code',
      tags: ['receipt', 'valid', 'rejected'],
      input: verifyInput(rejected),
      expected: ok(claims('rejected', { code: 'CONSENT_CATEGORY_NOT_COVERED' })),
    },
    {
      comment: 'receipt: signed by another node than the one the message was sent to',
      tags: ['receipt', 'invalid', 'signer'],
      input: verifyInput(await signReceipt({ ...base, status: 'accepted' }, ctx.sig('corridor-sig-1'))),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: claims another receiver (iss) than the node the message was sent to, signed by that other node',
      tags: ['receipt', 'invalid', 'signer'],
      input: verifyInput(await signReceipt({ ...base, receiver: FR, status: 'accepted' }, ctx.sig('corridor-sig-1'))),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: for other bytes than those sent (digest differs)',
      tags: ['receipt', 'invalid', 'digest'],
      input: verifyInput(accepted, { digest: await sha256b64u('other bytes') }),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: for another message id',
      tags: ['receipt', 'invalid', 'message-id'],
      input: verifyInput(accepted, { messageId: uuidV7('2026-05-04T09:30:00Z', 'another message') }),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: addressed to another sender',
      tags: ['receipt', 'invalid', 'audience'],
      input: verifyInput(accepted, { sender: FR }),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: signature corrupted',
      tags: ['receipt', 'invalid', 'signature'],
      input: verifyInput(replacePart(accepted, 2, flipBit(accepted.split('.')[2]!, 0))),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: a rejection without a code',
      tags: ['receipt', 'invalid', 'schema'],
      input: verifyInput(await signCompact(claims('rejected', {}), sn1, 'passerelle-receipt+jwt')),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: an acceptance with a code',
      tags: ['receipt', 'invalid', 'schema'],
      input: verifyInput(await signCompact(claims('accepted', { code: 'INTERNAL' }), sn1, 'passerelle-receipt+jwt')),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: a code that is not a protocol error code',
      tags: ['receipt', 'invalid', 'schema'],
      input: verifyInput(await signCompact(claims('rejected', { code: 'TEAPOT' }), sn1, 'passerelle-receipt+jwt')),
      expected: fail('RECEIPT_INVALID'),
    },
    {
      comment: 'receipt: the right claims signed with a message typ',
      tags: ['receipt', 'invalid', 'typ'],
      input: verifyInput(await signCompact(claims('accepted', {}), sn1, 'passerelle-referral+sd-jwt')),
      expected: fail('RECEIPT_INVALID'),
    },
  ];
  return {
    description:
      "Receipts (spec/protocol.md §7): the receiver's signed statement of the exact bytes received. Verified by the sender against the message id and digest it sent; every failure is RECEIPT_INVALID.",
    vectors,
  };
}

async function nodeDocumentVectors(ctx: Context): Promise<VectorFile> {
  const be1 = ctx.sig('accueil-sig-1');
  const be2 = ctx.sig('accueil-sig-2');
  const beEnc = ctx.enc('accueil-enc-1');
  const issued1 = '2026-03-02T09:00:00Z';
  const input: NodeDocumentInput = {
    id: BE,
    name: 'Accueil Transit (exemple)',
    country: 'BE',
    roles: ['reception-agency', 'return-counselling'],
    inbox: `${BE}/passerelle/inbox`,
    keys: [nodeKeyEntry(be1, { notBefore: '2026-03-01T00:00:00Z' }), nodeKeyEntry(beEnc, { notBefore: '2026-03-01T00:00:00Z' })],
    messageTypes: ['referral', 'referral-response', 'reintegration-profile', 'reintegration-update', 'case-closure', 'consent-withdrawal', 'erasure-confirmation', 'problem-report'],
    languages: ['fr', 'nl', 'en'],
    issuedAt: issued1,
    expiresAt: '2027-03-02T09:00:00Z',
  };
  const v1 = await createNodeDocument(input, [be1]);
  const v1Verified = await verifyNodeDocument(v1, { now: new Date('2026-03-03T00:00:00Z') });
  const rotatedAt = '2027-01-15T09:00:00Z';
  const v2 = await rotateNodeDocument(v1Verified, { expiresAt: '2028-01-15T09:00:00Z' }, { oldKeys: [be1], newKeys: [be2], now: new Date(rotatedAt) });
  const v2Payload = decodeSegment(v2.payload);
  const v2Verified = await verifyNodeDocument(v2, { now: new Date('2027-01-15T10:00:00Z'), known: v1Verified });

  const out = (jws: GeneralJws, signers: string[]) => ({
    document: decodeSegment(jws.payload),
    payloadDigest: b64u(sha256Sync(utf8(jws.payload))),
    signers,
  });
  const verify = (document: unknown, now: string, extra: Record<string, unknown> = {}) => ({ operation: 'verify', document, now, ...extra });
  const v1Now = '2026-03-03T00:00:00Z';
  const v2Now = '2027-01-15T10:00:00Z';
  const knownV1 = { document: v1, now: v1Now, pinnedFingerprints: [be1.kid] };
  const knownV2 = { document: v2, now: v2Now, known: knownV1 };
  const signRaw = (payload: Record<string, unknown>, keys: SigningKeyPair[], typ = 'passerelle-node+json') => signGeneral(payload, keys, typ);
  const v1Payload = decodeSegment(v1.payload);

  const vectors: Vector[] = [
    {
      comment: 'node document v1: signed by its only signing key, which the peer pinned',
      tags: ['node-document', 'valid', 'pinned'],
      input: verify(v1, v1Now, { pinnedFingerprints: [be1.kid], expectedId: BE }),
      expected: ok(out(v1, [be1.kid])),
    },
    {
      comment: 'node document v1: no pin given (signatures and freshness only)',
      tags: ['node-document', 'valid'],
      input: verify(v1, v1Now),
      expected: ok(out(v1, [be1.kid])),
    },
    {
      comment: 'node document v1: the peer pinned another fingerprint',
      tags: ['node-document', 'invalid', 'pinned'],
      input: verify(v1, v1Now, { pinnedFingerprints: [ctx.sig('corridor-sig-1').kid] }),
      expected: fail('FINGERPRINT_MISMATCH'),
    },
    {
      comment: 'node document v1: fetched for another node id',
      tags: ['node-document', 'invalid'],
      input: verify(v1, v1Now, { expectedId: FR }),
      expected: fail('NODE_DOCUMENT_INVALID'),
    },
    {
      comment: 'node document v1: read after expiresAt',
      tags: ['node-document', 'invalid', 'time'],
      input: verify(v1, '2027-03-02T09:00:00Z'),
      expected: fail('NODE_DOCUMENT_EXPIRED'),
    },
    {
      comment: 'node document v1: issuedAt more than 300 s ahead of the reader clock',
      tags: ['node-document', 'invalid', 'time'],
      input: verify(v1, '2026-03-02T08:54:59Z'),
      expected: fail('CLOCK_SKEW', { serverTime: '2026-03-02T08:54:59Z' }),
    },
    {
      comment: 'node document v1: signature corrupted',
      tags: ['node-document', 'invalid', 'signature'],
      input: verify({ payload: v1.payload, signatures: [{ ...v1.signatures[0]!, signature: flipBit(v1.signatures[0]!.signature, 5) }] }, v1Now),
      expected: fail('SIGNATURE_INVALID'),
    },
    {
      comment: 'node document v1: payload changed (inbox moved), signature kept',
      tags: ['node-document', 'invalid', 'signature'],
      input: verify({ payload: encJson({ ...v1Payload, inbox: `${BE}/elsewhere` }), signatures: v1.signatures }, v1Now),
      expected: fail('SIGNATURE_INVALID'),
    },
    {
      comment: 'node document v1: a second signature by a key the document does not list',
      tags: ['node-document', 'invalid', 'key'],
      input: verify(await (async () => ({ payload: v1.payload, signatures: [...v1.signatures, ...(await signRaw(v1Payload, [ctx.sig('outsider-sig-1')])).signatures] }))(), v1Now),
      expected: fail('KEY_UNKNOWN'),
    },
    {
      comment: 'node document: a kid that is not the thumbprint of its key',
      tags: ['node-document', 'invalid', 'key'],
      input: verify(
        await signRaw(
          { ...v1Payload, keys: [...(v1Payload.keys as object[]), { ...nodeKeyEntry(be2, { notBefore: '2026-03-01T00:00:00Z' }), kid: be1.kid.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }] },
          [be1],
        ),
        v1Now,
      ),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'node document: a listed key carrying its private part',
      tags: ['node-document', 'invalid', 'key'],
      input: verify(
        await signRaw({ ...v1Payload, keys: [{ ...(v1Payload.keys as Record<string, unknown>[])[0]!, jwk: { ...be1.publicJwk, kid: undefined, d: be1.privateJwk.d } }, (v1Payload.keys as object[])[1]] }, [be1]),
        v1Now,
      ),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'node document: an http id for a host that is not loopback',
      tags: ['node-document', 'invalid', 'schema'],
      input: verify(await signRaw({ ...v1Payload, id: 'http://accueil.example.be', inbox: 'http://accueil.example.be/passerelle/inbox' }, [be1]), v1Now),
      expected: fail('SCHEMA_INVALID'),
    },
    {
      comment: 'node document: signed with the typ of an agreement',
      tags: ['node-document', 'invalid', 'typ'],
      input: verify(await signRaw(v1Payload, [be1], 'passerelle-agreement+json'), v1Now),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'node document v2 (rotation): signed by the previous key and the new key, chained from the known v1',
      tags: ['node-document', 'valid', 'rotation'],
      input: verify(v2, v2Now, { known: knownV1 }),
      expected: ok(out(v2, v2Verified.signers)),
    },
    {
      comment: 'node document v2 (rotation): first contact, the peer pinned the previous key only',
      tags: ['node-document', 'valid', 'rotation', 'pinned'],
      input: verify(v2, v2Now, { pinnedFingerprints: [be1.kid] }),
      expected: ok(out(v2, v2Verified.signers)),
    },
    {
      comment: 'node document: v1 offered while v2 is known (rollback)',
      tags: ['node-document', 'invalid', 'rotation'],
      input: verify(v1, v2Now, { known: knownV2 }),
      expected: fail('NODE_DOCUMENT_STALE'),
    },
    {
      comment: 'node document v2 signed by the new key only, the previous key removed (no chain from v1)',
      tags: ['node-document', 'invalid', 'rotation'],
      input: verify(
        await signRaw({ ...v2Payload, keys: (v2Payload.keys as { kid: string }[]).filter((k) => k.kid !== be1.kid) }, [be2]),
        v2Now,
        { known: knownV1 },
      ),
      expected: fail('ROTATION_INVALID'),
    },
    {
      comment: 'node document v2 signed by the previous key only: the new current key did not co-sign',
      tags: ['node-document', 'invalid', 'rotation'],
      input: verify(await signRaw(v2Payload, [be1]), v2Now, { known: knownV1 }),
      expected: fail('ROTATION_INVALID'),
    },
    {
      comment: 'node document: another document under the version already known',
      tags: ['node-document', 'invalid', 'rotation'],
      input: verify(await signRaw({ ...v1Payload, name: 'Accueil Transit (renamed)' }, [be1]), v1Now, { known: knownV1 }),
      expected: fail('NODE_DOCUMENT_INVALID'),
    },
    // Key validity windows (spec/protocol.md §8.3), answered from the verified v2.
    ...(
      [
        ['accueil-sig-1', '2027-01-15T12:00:00Z', 'during the overlap after rotation'],
        ['accueil-sig-2', '2027-01-20T00:00:00Z', 'after rotation'],
      ] as const
    ).map(([name, at, when]) => ({
      comment: `key window: ${name} ${when}`,
      tags: ['node-document', 'valid', 'validity-window'],
      input: { operation: 'resolveSigningKey', document: v2, now: v2Now, known: knownV1, kid: ctx.sig(name).kid, at },
      expected: ok({ kty: 'OKP', crv: 'Ed25519', x: ctx.sig(name).publicJwk.x }),
    })),
    {
      comment: 'key window: accueil-sig-1 after its supersession took effect',
      tags: ['node-document', 'invalid', 'validity-window'],
      input: { operation: 'resolveSigningKey', document: v2, now: v2Now, known: knownV1, kid: be1.kid, at: '2027-01-16T09:00:00Z' },
      expected: fail('KEY_NOT_VALID'),
    },
    {
      comment: 'key window: accueil-sig-2 before its notBefore',
      tags: ['node-document', 'invalid', 'validity-window'],
      input: { operation: 'resolveSigningKey', document: v2, now: v2Now, known: knownV1, kid: be2.kid, at: '2027-01-15T08:59:59Z' },
      expected: fail('KEY_NOT_VALID'),
    },
    {
      comment: 'key window: a kid the document does not list',
      tags: ['node-document', 'invalid', 'validity-window'],
      input: { operation: 'resolveSigningKey', document: v2, now: v2Now, known: knownV1, kid: ctx.sig('corridor-sig-1').kid, at: '2027-01-20T00:00:00Z' },
      expected: fail('KEY_UNKNOWN'),
    },
    {
      comment: 'key window: the encryption key is never a signing key',
      tags: ['node-document', 'invalid', 'validity-window'],
      input: { operation: 'resolveSigningKey', document: v2, now: v2Now, known: knownV1, kid: beEnc.kid, at: '2027-01-20T00:00:00Z' },
      expected: fail('KEY_UNKNOWN'),
    },
  ];
  return {
    description:
      'Node documents (spec/protocol.md §8): general JWS signed by every current signing key, verified against pins or the version already known, with key validity windows.',
    vectors,
  };
}

/** Built from small objects (a problem report, a consent withdrawal) to keep the file readable. */
async function josePolicyVectors(ctx: Context, envelopeJwe: string): Promise<VectorFile> {
  const signer = ctx.sig('reintegration-sig-1');
  const { jwt } = ctx.signed.get('problem-report')!;
  const [, payloadB64, signatureB64] = jwt.split('.') as [string, string, string];
  const typ = 'passerelle-problem-report+sd-jwt';
  const good = { alg: 'EdDSA', typ, kid: signer.kid };
  const jws = (header: Record<string, unknown>) => `${encJson(header)}.${payloadB64}.${signatureB64}`;
  const jwsInput = (token: string, expectedTyp: string = typ) => ({ kind: 'jws', token, expectedTyp });
  const [jweHeaderB64, ...jweRest] = envelopeJwe.split('.');
  const jweHeader = decodeSegment(jweHeaderB64!);
  const jwe = (header: Record<string, unknown>) => [encJson(header), ...jweRest].join('.');
  const jweInput = (token: string) => ({ kind: 'jwe', token });
  const epk = jweHeader.epk as Record<string, unknown>;

  const withCty = await new CompactSign(fromB64u(payloadB64))
    .setProtectedHeader({ alg: 'EdDSA', typ, kid: signer.kid, cty: 'json' })
    .sign(await cryptoKeyFor(signer.privateJwk, 'EdDSA'));

  const vectors: Vector[] = [
    { comment: 'JWS: alg EdDSA with typ and kid', tags: ['jws', 'valid'], input: jwsInput(jwt), expected: ok(good) },
    { comment: 'JWS: with cty (allowed)', tags: ['jws', 'valid'], input: jwsInput(withCty), expected: ok({ ...good, cty: 'json' }) },
    ...['none', 'None', 'NONE', 'nOnE'].map((alg) => ({
      comment: `JWS: alg "${alg}" (unsecured JWS)`,
      tags: ['jws', 'invalid', 'alg', 'alg-none'],
      input: jwsInput(`${encJson({ alg, typ, kid: signer.kid })}.${payloadB64}.`),
      expected: fail('UNSUPPORTED_ALGORITHM'),
    })),
    ...['HS256', 'RS256', 'ES256', 'ES256K', 'PS256', 'Ed25519', 'Ed448', 'eddsa'].map((alg) => ({
      comment: `JWS: alg ${alg} is outside the allow-list`,
      tags: ['jws', 'invalid', 'alg'],
      input: jwsInput(jws({ ...good, alg })),
      expected: fail('UNSUPPORTED_ALGORITHM'),
    })),
    { comment: 'JWS: alg missing', tags: ['jws', 'invalid', 'alg'], input: jwsInput(jws({ typ, kid: signer.kid })), expected: fail('UNSUPPORTED_ALGORITHM') },
    ...(
      [
        ['jwk', signer.publicJwk],
        ['jku', `${BE}/keys.json`],
        ['x5u', `${BE}/cert.pem`],
        ['x5c', ['MIIBszCCAVmgAwIBAgIUexample']],
        ['x5t', 'dGh1bWJwcmludA'],
        ['x5t#S256', 'dGh1bWJwcmludA'],
        ['crit', ['exp']],
        ['zip', 'DEF'],
        ['nonce', 'abc'],
        ['url', `${BE}/inbox`],
        ['iss', BE],
      ] as const
    ).map(([name, value]) => ({
      comment: `JWS: header parameter ${name}`,
      tags: ['jws', 'invalid', 'header', name],
      input: jwsInput(jws({ ...good, [name]: value })),
      expected: fail('FORBIDDEN_HEADER'),
    })),
    {
      comment: 'JWS: b64 false with crit (RFC 7797 unencoded payload)',
      tags: ['jws', 'invalid', 'header', 'b64'],
      input: jwsInput(jws({ ...good, b64: false, crit: ['b64'] })),
      expected: fail('FORBIDDEN_HEADER'),
    },
    { comment: 'JWS: b64 false without crit', tags: ['jws', 'invalid', 'header', 'b64'], input: jwsInput(jws({ ...good, b64: false })), expected: fail('FORBIDDEN_HEADER') },
    { comment: 'JWS: kid missing', tags: ['jws', 'invalid', 'kid'], input: jwsInput(jws({ alg: 'EdDSA', typ })), expected: fail('FORBIDDEN_HEADER') },
    { comment: 'JWS: kid empty', tags: ['jws', 'invalid', 'kid'], input: jwsInput(jws({ ...good, kid: '' })), expected: fail('FORBIDDEN_HEADER') },
    { comment: 'JWS: kid not a string', tags: ['jws', 'invalid', 'kid'], input: jwsInput(jws({ ...good, kid: 7 })), expected: fail('FORBIDDEN_HEADER') },
    { comment: 'JWS: typ missing', tags: ['jws', 'invalid', 'typ'], input: jwsInput(jws({ alg: 'EdDSA', kid: signer.kid })), expected: fail('WRONG_TYPE') },
    { comment: 'JWS: typ not a string', tags: ['jws', 'invalid', 'typ'], input: jwsInput(jws({ ...good, typ: ['JWT'] })), expected: fail('MALFORMED') },
    {
      comment: 'JWS: typ other than expected',
      tags: ['jws', 'invalid', 'typ'],
      input: jwsInput(jwt, 'passerelle-receipt+jwt'),
      expected: fail('WRONG_TYPE'),
    },
    {
      comment: 'JWS: typ differs only in case (typ is compared exactly)',
      tags: ['jws', 'invalid', 'typ'],
      input: jwsInput(jws({ ...good, typ: typ.toUpperCase() })),
      expected: fail('WRONG_TYPE'),
    },
    { comment: 'JWS: a JWE where a JWS is expected', tags: ['jws', 'invalid', 'serialisation'], input: jwsInput(envelopeJwe), expected: fail('WRONG_TYPE') },
    { comment: 'JWS: four segments', tags: ['jws', 'invalid', 'serialisation'], input: jwsInput(`${jwt}.AAAA`), expected: fail('MALFORMED') },
    {
      comment: 'JWS: protected header is not JSON',
      tags: ['jws', 'invalid', 'encoding'],
      input: jwsInput(`${b64u(utf8('alg=EdDSA'))}.${payloadB64}.${signatureB64}`),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'JWS: protected header is a JSON array',
      tags: ['jws', 'invalid', 'encoding'],
      input: jwsInput(`${encJson(['EdDSA'])}.${payloadB64}.${signatureB64}`),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'JWS: protected header with base64 padding',
      tags: ['jws', 'invalid', 'encoding'],
      input: jwsInput(`${encJson(good)}==.${payloadB64}.${signatureB64}`),
      expected: fail('MALFORMED'),
    },
    {
      comment: 'JWS: protected header over the size bound',
      tags: ['jws', 'invalid', 'size'],
      input: jwsInput(jws({ ...good, kid: 'k'.repeat(2000) })),
      expected: fail('TOO_LARGE'),
    },
    {
      comment: 'JWS: signature with non-zero trailing bits (non-canonical base64url of the same bytes)',
      tags: ['jws', 'invalid', 'signature', 'encoding'],
      input: jwsInput(replacePart(jwt, 2, strayBits(signatureB64))),
      expected: fail('SIGNATURE_INVALID'),
    },
    {
      comment: 'JWS: signature of the wrong length for Ed25519',
      tags: ['jws', 'invalid', 'signature'],
      input: jwsInput(`${jwt.split('.').slice(0, 2).join('.')}.${signatureB64.slice(0, 43)}`),
      expected: fail('SIGNATURE_INVALID'),
    },

    { comment: 'JWE: ECDH-ES+A256KW, A256GCM, X25519 epk, kid, typ, cty', tags: ['jwe', 'valid'], input: jweInput(envelopeJwe), expected: ok(jweHeader) },
    ...['RSA1_5', 'RSA-OAEP', 'RSA-OAEP-256', 'dir', 'A256KW', 'ECDH-ES', 'ECDH-ES+A128KW', 'PBES2-HS256+A128KW', 'PBES2-HS512+A256KW', 'none'].map((alg) => ({
      comment: `JWE: alg ${alg} is outside the allow-list`,
      tags: ['jwe', 'invalid', 'alg'],
      input: jweInput(jwe({ ...jweHeader, alg, ...(alg.startsWith('PBES2') ? { p2s: 'c2FsdA', p2c: 1000000 } : {}) })),
      expected: fail('UNSUPPORTED_ALGORITHM'),
    })),
    ...['A128GCM', 'A192GCM', 'A256CBC-HS512', 'A128CBC-HS256'].map((enc) => ({
      comment: `JWE: enc ${enc} is outside the allow-list`,
      tags: ['jwe', 'invalid', 'enc'],
      input: jweInput(jwe({ ...jweHeader, enc })),
      expected: fail('UNSUPPORTED_ALGORITHM'),
    })),
    ...(
      [
        ['zip', 'DEF'],
        ['jwk', ctx.enc('outsider-enc-1').publicJwk],
        ['jku', `${BE}/keys.json`],
        ['x5u', `${BE}/cert.pem`],
        ['x5c', ['MIIBszCCAVmgAwIBAgIUexample']],
        ['crit', ['exp']],
        ['apu', 'QWxpY2U'],
        ['apv', 'Qm9i'],
        ['iv', 'AAAAAAAAAAAAAAAA'],
        ['tag', 'AAAAAAAAAAAAAAAAAAAAAA'],
      ] as const
    ).map(([name, value]) => ({
      comment: `JWE: header parameter ${name}`,
      tags: ['jwe', 'invalid', 'header', name],
      input: jweInput(jwe({ ...jweHeader, [name]: value })),
      expected: fail('FORBIDDEN_HEADER'),
    })),
    {
      comment: 'JWE: epk on P-256 (EC key: its y member is outside the epk allow-list)',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(
        jwe({ ...jweHeader, epk: { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' } }),
      ),
      expected: fail('FORBIDDEN_HEADER'),
    },
    {
      comment: 'JWE: epk on Ed25519 (a signing curve)',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(jwe({ ...jweHeader, epk: { ...epk, crv: 'Ed25519' } })),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'JWE: epk on X448',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(jwe({ ...jweHeader, epk: { kty: 'OKP', crv: 'X448', x: b64u(new Uint8Array(56).fill(9)) } })),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'JWE: epk with kty EC but no y (curve X25519 claimed under the wrong key type)',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(jwe({ ...jweHeader, epk: { ...epk, kty: 'EC' } })),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'JWE: epk x of the wrong length',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(jwe({ ...jweHeader, epk: { ...epk, x: b64u(new Uint8Array(31).fill(9)) } })),
      expected: fail('KEY_INVALID'),
    },
    {
      comment: 'JWE: epk carrying a private part',
      tags: ['jwe', 'invalid', 'epk'],
      input: jweInput(jwe({ ...jweHeader, epk: { ...epk, d: ctx.enc('outsider-enc-1').privateJwk.d } })),
      expected: fail('FORBIDDEN_HEADER'),
    },
    { comment: 'JWE: epk missing', tags: ['jwe', 'invalid', 'epk'], input: jweInput(jwe({ ...jweHeader, epk: undefined })), expected: fail('MALFORMED') },
    { comment: 'JWE: kid missing', tags: ['jwe', 'invalid', 'kid'], input: jweInput(jwe({ ...jweHeader, kid: undefined })), expected: fail('FORBIDDEN_HEADER') },
    {
      comment: 'JWE: typ and cty absent (both optional for the envelope)',
      tags: ['jwe', 'valid'],
      input: jweInput(jwe({ ...jweHeader, typ: undefined, cty: undefined })),
      expected: ok({ alg: jweHeader.alg, enc: jweHeader.enc, epk, kid: jweHeader.kid }),
    },
    { comment: 'JWE: a JWS where a JWE is expected', tags: ['jwe', 'invalid', 'serialisation'], input: jweInput(jwt), expected: fail('WRONG_TYPE') },
    { comment: 'JWE: six segments', tags: ['jwe', 'invalid', 'serialisation'], input: jweInput(`${envelopeJwe}.AAAA`), expected: fail('MALFORMED') },
    {
      comment: 'JWE: encrypted key of the wrong length for A256KW of a 256-bit key',
      tags: ['jwe', 'invalid', 'length'],
      input: jweInput(replacePart(envelopeJwe, 1, b64u(fromB64u(jweRest[0]!).slice(0, 32)))),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'JWE: empty encrypted key (as with alg dir)',
      tags: ['jwe', 'invalid', 'length'],
      input: jweInput(replacePart(envelopeJwe, 1, '')),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'JWE: authentication tag with non-zero trailing bits (non-canonical base64url of the same bytes)',
      tags: ['jwe', 'invalid', 'encoding'],
      input: jweInput(replacePart(envelopeJwe, 4, strayBits(jweRest[3]!))),
      expected: fail('DECRYPTION_FAILED'),
    },
    {
      comment: 'JWE: initialisation vector of 128 bits',
      tags: ['jwe', 'invalid', 'length'],
      input: jweInput(replacePart(envelopeJwe, 2, b64u(new Uint8Array(16)))),
      expected: fail('DECRYPTION_FAILED'),
    },
  ];
  // JSON.stringify drops members set to undefined: the vectors above carry the header without them.
  return {
    description:
      'JOSE allow-lists (spec/protocol.md §4), applied to the protected header before any key lookup, decryption or signature verification.',
    vectors: clone(vectors),
  };
}

// ---------------------------------------------------------------------------------------------
// Main

export async function generateVectors(): Promise<Map<string, unknown>> {
  const ctx = await context();
  const env = await envelopeVectors(ctx);
  return new Map<string, unknown>([
    ['keys.json', keysFile(ctx.keys)],
    ['jose-policy.json', await josePolicyVectors(ctx, env.smallJwe)],
    ['messages.json', await messageVectors(ctx)],
    ['envelopes.json', env.file],
    ['sd-jwt.json', await sdJwtVectors(ctx)],
    ['receipts.json', await receiptVectors(ctx, env)],
    ['node-documents.json', await nodeDocumentVectors(ctx)],
  ]);
}

async function main(argv: readonly string[]): Promise<number> {
  const force = argv.includes('--force');
  const files = await generateVectors();
  for (const [name, content] of files) {
    const path = `${VECTORS_DIR}${name}`;
    if (existsSync(path) && !force && name !== 'keys.json') {
      console.log(`kept      spec/vectors/${name} (exists; --force to regenerate)`);
      continue;
    }
    writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
    const count = (content as { vectors?: unknown[]; keys?: unknown[] }).vectors?.length ?? (content as { keys: unknown[] }).keys.length;
    console.log(`wrote     spec/vectors/${name} (${count})`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
