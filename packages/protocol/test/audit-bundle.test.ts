/**
 * Audit bundles (spec/audit.md): a bundle built from scratch — three fictional organisations with
 * key histories (one rotation), a co-signed agreement, two consents, messages with receipts, the
 * exporter's Merkle log with checkpoints and proofs, and a peer's log — verifies; every kind of
 * tampering is caught and reported by the check and code that failed.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAgreement, signAgreement, type Agreement } from '../src/agreement.js';
import { signConsent, type ConsentRecord } from '../src/consent.js';
import { b64u, fromB64u, fromUtf8, utf8 } from '../src/encoding.js';
import { open, seal, verifySdJwtMessage } from '../src/envelope.js';
import { ProtocolError } from '../src/errors.js';
import type { GeneralJws } from '../src/jws.js';
import { generateEncryptionKey, generateSigningKey, type EncryptionKeyPair, type PublicEncryptionJwk, type SigningKeyPair } from '../src/keys.js';
import {
  buildConsentWithdrawal,
  buildErasureConfirmation,
  buildReferral,
  buildReintegrationProfile,
  buildReintegrationUpdate,
  type Message,
} from '../src/messages/index.js';
import { createNodeDocument, nodeKeyEntry, rotateNodeDocument, verifyNodeDocument, type NodeDocumentInput } from '../src/node-document.js';
import { Receipt, signReceipt } from '../src/receipt.js';
import { toTimestamp } from '../src/vocabulary.js';
import { AuditBundle, BundleMessage, buildBundle, isBundleMessage, logProofs, type BundleScope } from '../src/audit/bundle.js';
import { isReceiptPayload } from '../src/audit/receipt-check.js';
import { buildCheckpoint, signCheckpoint } from '../src/audit/checkpoint.js';
import { consentWithdrawnEvent, messageOutcomeEvent, messageReceivedEvent, messageSentEvent, type AuditEventInput } from '../src/audit/events.js';
import { KeyHistory, verifyNodeChain } from '../src/audit/key-history.js';
import { AuditLeaf, auditLeafData, auditLeafHash, auditLeafHashBytes, canonicalJson, isAuditLeaf } from '../src/audit/leaf.js';
import { MerkleTree } from '../src/audit/merkle.js';
import { checkMessageJwt } from '../src/audit/message-check.js';
import { formatReport, type AuditFailure, type AuditReport } from '../src/audit/report.js';
import { mergeReports, prepareBundle, recordRanges, splitRanges, verifyBundle, verifyBundleConsents, verifyBundleLog, verifyBundleRecords } from '../src/audit/verify-bundle.js';

// ---------------------------------------------------------------------------------------------
// Scenario

const ACCUEIL = 'https://accueil.example.be';
const CORRIDOR = 'https://corridor.example.fr';
const REINTEGRATION = 'https://reintegration.example.sn';
const AGREEMENT_ID = '0195a000-0000-7000-8000-00000000a001';
const C1 = '0195a000-0000-7000-8000-00000000c001';
const C2 = '0195a000-0000-7000-8000-00000000c002';
const T0 = Date.parse('2026-03-02T09:00:00Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const at = (offset: number) => new Date(T0 + offset);
const ts = (offset: number) => toTimestamp(T0 + offset);
const NOW = at(60 * DAY);

interface Org {
  id: string;
  sig: SigningKeyPair;
  enc: EncryptionKeyPair;
  documents: GeneralJws[];
}

/** A node's audit log: records, their Merkle tree and its signed checkpoints. */
class Log {
  readonly leaves: AuditLeaf[] = [];
  readonly tree = new MerkleTree();
  readonly checkpoints: string[] = [];

  constructor(readonly origin: string) {}

  append(event: AuditEventInput): number {
    const leaf = { index: this.leaves.length, ...event } as AuditLeaf;
    this.leaves.push(leaf);
    return this.tree.append(auditLeafHashBytes(leaf));
  }

  async checkpoint(key: SigningKeyPair, when: Date): Promise<string> {
    const jws = await signCheckpoint(buildCheckpoint({ origin: this.origin, size: this.tree.size, root: this.tree.root(), at: when }), key);
    this.checkpoints.push(jws);
    return jws;
  }
}

interface Scenario {
  accueil: Org;
  corridor: Org;
  reintegration: Org;
  /** Accueil's first signing key, superseded at T0 + 10 days, revoked a day later. */
  k1: SigningKeyPair;
  k2: SigningKeyPair;
  agreement: GeneralJws;
  agreementPayload: Agreement;
  consents: Record<string, string>;
  log: Log;
  peerLog: Log;
  /** Records by name (m1, m3, …): accueil's view. */
  records: Map<string, BundleMessage & { kind: 'message' | 'erasure' }>;
  messages: Map<string, Message>;
  /** The JWEs exactly as they travelled. */
  jwes: Map<string, string>;
  checkpointsByName: Map<string, string>;
}

function docInput(id: string, name: string, country: string, keys: NodeDocumentInput['keys']): NodeDocumentInput {
  return {
    id,
    name,
    country,
    roles: ['reception-agency'],
    inbox: `${id}/passerelle/inbox`,
    keys,
    messageTypes: ['referral', 'referral-response', 'reintegration-profile', 'reintegration-update', 'consent-withdrawal', 'erasure-confirmation'],
    languages: ['fr'],
    issuedAt: toTimestamp(T0),
    expiresAt: ts(400 * DAY),
  };
}

async function org(id: string, name: string, country: string, sig?: SigningKeyPair): Promise<Org> {
  const key = sig ?? (await generateSigningKey());
  const enc = await generateEncryptionKey();
  const doc = await createNodeDocument(
    docInput(id, name, country, [nodeKeyEntry(key, { notBefore: at(0) }), nodeKeyEntry(enc, { notBefore: at(0) })]),
    [key],
    { now: at(0) },
  );
  return { id, sig: key, enc, documents: [doc] };
}

function consentRecord(id: string, subject: string, overrides: Partial<ConsentRecord>): ConsentRecord {
  return {
    id,
    version: 1,
    subject,
    controller: ACCUEIL,
    purposes: ['referral', 'reintegration-planning', 'monitoring'],
    recipients: [REINTEGRATION, CORRIDOR],
    categories: ['identity', 'contact', 'health', 'return-travel', 'monitoring'],
    explicitConsent: ['health'],
    collection: { method: 'written', interpreter: { kind: 'intercultural-mediator', language: 'wo' }, language: 'fr', text: { version: 'fr-2026-01', digest: b64u(new Uint8Array(32).fill(7)) } },
    collectedAt: ts(HOUR),
    expiresAt: ts(300 * DAY),
    collectedBy: { role: 'caseworker', staffRef: 'staff-be-17' },
    ...overrides,
  };
}

/** Simulates accueil (the exporter) and its peers exchanging messages, each side keeping its log. */
class Exchange {
  constructor(readonly s: Scenario) {}

  key(when: number): SigningKeyPair {
    return when < 10 * DAY ? this.s.k1 : this.s.k2;
  }

  async send(name: string, message: Message, to: Org, offset: number, options: { key?: SigningKeyPair; receipt?: boolean } = {}): Promise<void> {
    const s = this.s;
    const sealed = await seal(message, { signingKey: options.key ?? this.key(offset), recipientKey: to.enc.publicJwk as PublicEncryptionJwk & { kid: string } });
    const leafIndex = s.log.append(messageSentEvent({ messageId: message.header.id, peer: to.id, digest: sealed.digest, type: message.header.type }, ts(offset)));
    const record: BundleMessage & { kind: 'message' | 'erasure' } = {
      kind: message.header.type === 'erasure-confirmation' ? 'erasure' : 'message',
      direction: 'sent',
      jwt: sealed.jwt,
      jweDigest: sealed.digest,
      sentAt: ts(offset),
      leafIndex,
    };
    if (options.receipt !== false) {
      // The peer records the message in its own log and answers with its latest checkpoint.
      let log: { index: number; checkpoint?: string } | undefined;
      if (to.id === REINTEGRATION) {
        const index = s.peerLog.append(messageReceivedEvent({ messageId: message.header.id, peer: ACCUEIL, digest: sealed.digest }, ts(offset + MIN)));
        log = { index, checkpoint: await s.peerLog.checkpoint(to.sig, at(offset + MIN)) };
      }
      const receipt = await signReceipt(
        { receiver: to.id, sender: ACCUEIL, messageId: message.header.id, digest: sealed.digest, status: 'accepted', at: at(offset + MIN), ...(log ? { log } : {}) },
        to.sig,
      );
      record.receipt = receipt;
      s.log.append(messageOutcomeEvent({ messageId: message.header.id, peer: to.id, digest: sealed.digest, receipt }, 'accepted', ts(offset + 2 * MIN)));
    }
    s.records.set(name, record);
    s.messages.set(name, message);
    s.jwes.set(name, sealed.jwe);
  }

  async receive(name: string, message: Message, from: Org, offset: number): Promise<void> {
    const s = this.s;
    const sealed = await seal(message, { signingKey: from.sig, recipientKey: s.accueil.enc.publicJwk as PublicEncryptionJwk & { kid: string } });
    const leafIndex = s.log.append(messageReceivedEvent({ messageId: message.header.id, peer: from.id, digest: sealed.digest }, ts(offset + MIN)));
    const latest = s.log.checkpoints[s.log.checkpoints.length - 1];
    const receipt = await signReceipt(
      { receiver: ACCUEIL, sender: from.id, messageId: message.header.id, digest: sealed.digest, status: 'accepted', at: at(offset + MIN), log: { index: leafIndex, ...(latest ? { checkpoint: latest } : {}) } },
      this.key(offset),
    );
    s.records.set(name, {
      kind: message.header.type === 'erasure-confirmation' ? 'erasure' : 'message',
      direction: 'received',
      jwt: sealed.jwt,
      jweDigest: sealed.digest,
      sentAt: ts(offset + MIN),
      receipt,
      leafIndex,
    });
    s.messages.set(name, message);
    s.jwes.set(name, sealed.jwe);
  }

  async checkpoint(name: string, offset: number): Promise<void> {
    this.s.checkpointsByName.set(name, await this.s.log.checkpoint(this.key(offset), at(offset)));
  }
}

const referralBody = (subject: string) => ({ subject, services: ['reintegration-support' as const], urgency: 'routine' as const, reasonCode: 'pre-departure' as const });

async function scenario(): Promise<{ s: Scenario; x: Exchange }> {
  const k1 = await generateSigningKey();
  const k2 = await generateSigningKey();
  const accueil = await org(ACCUEIL, 'Accueil Transit Bruxelles (exemple)', 'BE', k1);
  const corridor = await org(CORRIDOR, 'Corridor Nord Accompagnement (exemple)', 'FR');
  const reintegration = await org(REINTEGRATION, 'Réintégration Thiès (exemple)', 'SN');
  // Accueil rotates at T0 + 10 days; k1 stays valid one more day, then is superseded.
  const v1 = await verifyNodeDocument(accueil.documents[0], { now: at(0) });
  accueil.documents.push(await rotateNodeDocument(v1, {}, { oldKeys: [k1], newKeys: [k2], now: at(10 * DAY), overlapSeconds: 24 * 3600 }));
  accueil.sig = k2;

  const agreementPayload = createAgreement({
    id: AGREEMENT_ID,
    title: 'Accompagnement au retour et à la réintégration (exemple)',
    parties: [
      { node: ACCUEIL, role: 'reception-agency', name: 'Accueil Transit Bruxelles (exemple)' },
      { node: CORRIDOR, role: 'outreach-team', name: 'Corridor Nord Accompagnement (exemple)' },
      { node: REINTEGRATION, role: 'reintegration-partner', name: 'Réintégration Thiès (exemple)' },
    ],
    purposes: ['referral', 'reintegration-planning', 'monitoring', 'case-coordination'],
    flows: [
      { from: ACCUEIL, to: REINTEGRATION, messageTypes: ['referral', 'reintegration-profile'], categories: ['identity', 'contact', 'health', 'return-travel'] },
      { from: REINTEGRATION, to: ACCUEIL, messageTypes: ['reintegration-update'], categories: ['monitoring'] },
      { from: ACCUEIL, to: CORRIDOR, messageTypes: ['referral'], categories: ['identity', 'contact'] },
    ],
    onwardReferral: { allowed: false },
    retention: ['identity', 'contact', 'health', 'return-travel', 'monitoring'].map((category) => ({ category: category as 'identity', days: 365 })),
    legalBasis: { basis: 'consent', reference: 'GDPR art. 6(1)(a), art. 9(2)(a)' },
    validFrom: toTimestamp(T0),
    validUntil: ts(365 * DAY),
    createdAt: toTimestamp(T0),
  });
  let agreement = await signAgreement(agreementPayload, ACCUEIL, k1);
  agreement = await signAgreement(agreement, CORRIDOR, corridor.sig);
  agreement = await signAgreement(agreement, REINTEGRATION, reintegration.sig);

  const consents = {
    [C1]: await signConsent(consentRecord(C1, 'case-be-2026-0042', {}), k1),
    [C2]: await signConsent(consentRecord(C2, 'case-be-2026-0077', { purposes: ['referral'], recipients: [REINTEGRATION], categories: ['identity', 'contact'], explicitConsent: [] }), k1),
  };
  const s: Scenario = {
    accueil,
    corridor,
    reintegration,
    k1,
    k2,
    agreement,
    agreementPayload,
    consents,
    log: new Log(ACCUEIL),
    peerLog: new Log(REINTEGRATION),
    records: new Map(),
    messages: new Map(),
    jwes: new Map(),
    checkpointsByName: new Map(),
  };
  const x = new Exchange(s);
  const common = { agreementId: AGREEMENT_ID };

  await x.send('m1', buildReferral({ ...common, from: ACCUEIL, to: REINTEGRATION, consentId: C1, consentRecord: consents[C1], created: at(DAY), body: referralBody('case-be-2026-0042'), data: { identity: { givenName: 'Awa', familyName: 'Exemple' }, health: { followUpRequired: true } } }), reintegration, DAY);
  await x.send('m3', buildReferral({ ...common, from: ACCUEIL, to: CORRIDOR, consentId: C1, consentRecord: consents[C1], created: at(2 * DAY), body: referralBody('case-be-2026-0042'), data: { identity: { givenName: 'Awa' }, contact: { phone: '+32 470 00 00 00' } } }), corridor, 2 * DAY);
  await x.checkpoint('A0', 2 * DAY + HOUR);
  await x.send('m5', buildReferral({ ...common, from: ACCUEIL, to: REINTEGRATION, consentId: C2, consentRecord: consents[C2], created: at(5 * DAY), body: referralBody('case-be-2026-0077'), data: { identity: { givenName: 'Moussa', familyName: 'Exemple' } } }), reintegration, 5 * DAY);
  await x.send('m2', buildReintegrationProfile({ ...common, from: ACCUEIL, to: REINTEGRATION, consentId: C1, consentRecord: consents[C1], created: at(12 * DAY), body: { subject: 'case-be-2026-0042', dimensions: ['economic', 'social'], assistancePackage: 'standard' }, data: { 'return-travel': { destinationCountry: 'SN', destinationLocality: 'Thiès' } } }), reintegration, 12 * DAY);
  await x.checkpoint('A1', 12 * DAY + HOUR);
  await x.receive('m4', buildReintegrationUpdate({ ...common, from: REINTEGRATION, to: ACCUEIL, consentId: C1, consentRecord: consents[C1], created: at(14 * DAY), body: { subject: 'case-be-2026-0042', period: { from: ts(13 * DAY), to: ts(14 * DAY) }, visit: 'in-person' }, data: { monitoring: { status: 'on-track' } } }), reintegration, 14 * DAY);
  s.log.append(consentWithdrawnEvent({ consentId: C2, withdrawnAt: ts(15 * DAY) }, ts(15 * DAY)));
  const withdrawal = buildConsentWithdrawal({ ...common, from: ACCUEIL, to: REINTEGRATION, created: at(15 * DAY), body: { consentId: C2, withdrawnAt: ts(15 * DAY), erasureRequested: true } });
  await x.send('w', withdrawal, reintegration, 15 * DAY);
  await x.receive('e', buildErasureConfirmation({ ...common, from: REINTEGRATION, to: ACCUEIL, created: at(16 * DAY), body: { consentId: C2, inReplyTo: withdrawal.header.id, erasedAt: ts(16 * DAY), erased: [{ messageId: s.messages.get('m5')!.header.id, categories: ['identity'] }], retained: [] } }), reintegration, 16 * DAY);
  await x.checkpoint('A2', 16 * DAY + HOUR);
  return { s, x };
}

interface ExportOptions {
  scope?: BundleScope;
  /** Names of the records to export (default: all). */
  only?: string[];
  exportedAt?: Date;
  personalData?: 'none' | 'lawful-full-audit';
  disclosures?: Record<string, string[]>;
  /** Whether to hand over every log record (a whole-log export) or only those the records name. */
  fullLog?: boolean;
}

async function exportBundle(s: Scenario, options: ExportOptions = {}): Promise<AuditBundle> {
  const names = options.only ?? [...s.records.keys()];
  const chosen = names.map((n) => ({ name: n, ...s.records.get(n)! }));
  const strip = ({ kind: _k, name: _n, ...m }: BundleMessage & { kind: string; name: string }): BundleMessage => ({
    ...m,
    ...(options.disclosures?.[_n] ? { disclosures: options.disclosures[_n] } : {}),
  });
  const fullLog = options.fullLog ?? (options.scope ?? { kind: 'all' }).kind === 'all';
  const ids = new Set(chosen.map((r) => s.messages.get(r.name)!.header.id));
  const wanted = new Set<number>(chosen.map((r) => r.leafIndex));
  for (const leaf of s.log.leaves) {
    if (typeof leaf.fields.messageId === 'string' && ids.has(leaf.fields.messageId)) wanted.add(leaf.index);
    if (leaf.kind === 'consent.withdrawn' && names.includes('w')) wanted.add(leaf.index);
  }
  const leaves = fullLog ? s.log.leaves : s.log.leaves.filter((l) => wanted.has(l.index));
  const checkpoints = fullLog ? s.log.checkpoints : s.log.checkpoints.filter((_, i) => i > 0);
  const sizes = checkpoints.map((c) => JSON.parse(fromUtf8(fromB64u(c.split('.')[1]!))).size as number);
  const receiptSizes = [s.records.get('m4')!, s.records.get('e')!].map((r) => {
    const cp = JSON.parse(fromUtf8(fromB64u(r.receipt!.split('.')[1]!))).log.checkpoint as string;
    return JSON.parse(fromUtf8(fromB64u(cp.split('.')[1]!))).size as number;
  });
  const proofs = logProofs({ tree: s.log.tree, checkpointSizes: sizes, leafIndexes: leaves.map((l) => l.index), extraSizes: receiptSizes });
  const usesC2 = names.some((n) => ['m5', 'w', 'e', 'm6'].includes(n));
  const usesC1 = names.some((n) => ['m1', 'm2', 'm3', 'm4', 'm7'].includes(n));
  return buildBundle(
    {
      exportedBy: ACCUEIL,
      exportedAt: options.exportedAt ?? at(20 * DAY),
      scope: options.scope ?? { kind: 'all' },
      ...(options.personalData ? { personalData: options.personalData } : {}),
      nodes: [s.accueil, s.corridor, s.reintegration].map((o) => ({ id: o.id, documents: o.documents })),
      agreements: [{ jws: s.agreement, terminations: [] }],
      consents: [
        ...(usesC1 ? [{ jws: s.consents[C1]!, withdrawals: [] }] : []),
        ...(usesC2 ? [{ jws: s.consents[C2]!, withdrawals: [{ at: ts(15 * DAY), leafIndex: s.log.leaves.find((l) => l.kind === 'consent.withdrawn')!.index }] }] : []),
      ],
      messages: chosen.filter((r) => r.kind === 'message').map(strip),
      erasures: chosen.filter((r) => r.kind === 'erasure').map(strip),
      log: { leaves, checkpoints, ...proofs },
      peerCheckpoints: [s.peerLog.checkpoints[s.peerLog.checkpoints.length - 1]!],
    },
    s.k2,
  );
}

/** The fixture: a fresh scenario and a bundle exported from it by accueil. */
async function bundleFromScratch(options: ExportOptions = {}): Promise<{ bundle: AuditBundle; s: Scenario; x: Exchange }> {
  const { s, x } = await scenario();
  return { bundle: await exportBundle(s, options), s, x };
}

// ---------------------------------------------------------------------------------------------
// Helpers

const clone = <T>(v: T): T => structuredClone(v);
const verify = (bundle: unknown) => verifyBundle(bundle, { now: NOW });

function expectFailure(report: AuditReport, expected: Partial<AuditFailure>): AuditFailure {
  const match = report.failures.find((f) => Object.entries(expected).every(([k, v]) => f[k as keyof AuditFailure] === v));
  expect(match, `expected a failure like ${JSON.stringify(expected)} in:\n${formatReport(report)}`).toBeDefined();
  expect(report.ok).toBe(false);
  return match!;
}

/** Replaces one base64url character in the middle of a segment by another valid one. */
function flipChar(text: string, position: number): string {
  const c = text[position]!;
  const replacement = c === 'A' ? 'B' : 'A';
  return text.slice(0, position) + replacement + text.slice(position + 1);
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(fromUtf8(fromB64u(token.split('.')[1]!))) as Record<string, unknown>;
}

/** Re-encodes a compact JWS with a changed payload and the original signature (which then fails). */
function withPayload(token: string, change: (p: Record<string, unknown>) => void): string {
  const [h, , sig] = token.split('.');
  const p = payloadOf(token);
  change(p);
  return `${h}.${b64u(utf8(JSON.stringify(p)))}.${sig}`;
}

const idOf = (s: Scenario, name: string) => s.messages.get(name)!.header.id;

let s: Scenario;
let full: AuditBundle;
let sparse: AuditBundle;

beforeAll(async () => {
  ({ bundle: full, s } = await bundleFromScratch());
  sparse = await exportBundle(s, { scope: { kind: 'consent', consentId: C2 }, only: ['m5', 'w', 'e'] });
});

// ---------------------------------------------------------------------------------------------

describe('audit log records', () => {
  it('hashes SHA-256(0x00 || JCS(record)), the bytes the node stores', () => {
    const leaf = { index: 7, kind: 'message.sent', at: '2026-03-03T09:00:00Z', fields: { peer: REINTEGRATION, messageId: '0195a000-0000-7000-8000-000000000007', digest: 'x', n: 1.5, ok: true, none: null, list: ['b', 'a'] } };
    const text = auditLeafData(leaf);
    expect(text).toBe(
      '{"at":"2026-03-03T09:00:00Z","fields":{"digest":"x","list":["b","a"],"messageId":"0195a000-0000-7000-8000-000000000007","n":1.5,"none":null,"ok":true,"peer":"https://reintegration.example.sn"},"index":7,"kind":"message.sent"}',
    );
    const expected = createHash('sha256').update(Buffer.from([0])).update(text, 'utf8').digest('base64url');
    expect(auditLeafHash(leaf)).toBe(expected);
    expect(canonicalJson({ b: 1, a: undefined, c: [undefined] })).toBe('{"b":1,"c":[null]}');
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(ProtocolError);
  });

  it('takes the short path to the same canonical text', () => {
    const records = [
      { index: 0, kind: 'a', at: 'x', fields: {} },
      { index: 12, kind: 'message.sent', at: '2026-03-03T09:00:00Z', fields: { z: 1e21, y: -0, x: 0.1, 'é': 'é', '\u0001': '\n"', b: [], a: ['\ud83d\ude00', 'a'], u: undefined, n: null, t: false } },
      { index: 3, kind: 'k', at: 'x', fields: { nested: { b: 1, a: 2 }, list: [1, undefined, 'x'] } },
      ...s.log.leaves,
    ];
    for (const r of records) {
      const general = canonicalJson({ kind: r.kind, fields: r.fields, at: r.at, index: r.index });
      expect(auditLeafData(r as AuditLeaf)).toBe(general);
    }
  });

  it('checks exported records with the same rules as the AuditLeaf schema', () => {
    const good = { index: 3, kind: 'consent.withdrawn', at: '2026-03-03T09:00:00Z', fields: { consentId: C2, purposes: null } };
    const cases: unknown[] = [
      good,
      { ...good, extra: 1 },
      { ...good, index: -1 },
      { ...good, index: 1.5 },
      { ...good, kind: 'Consent.Withdrawn' },
      { ...good, kind: '' },
      { ...good, at: '2026-03-03 09:00:00' },
      { ...good, fields: { nested: { a: 1 } } },
      { ...good, fields: { list: [1] } },
      { ...good, fields: [] },
      { index: 3, kind: 'x', at: '2026-03-03T09:00:00Z' },
      null,
      'leaf',
    ];
    for (const c of cases) expect(isAuditLeaf(c), JSON.stringify(c)).toBe(AuditLeaf.safeParse(c).success);
  });
});

describe('hand-written schema predicates', () => {
  it('accept and refuse bundle messages as the BundleMessage schema does', () => {
    const good = { ...full.messages[0]! };
    const cases: unknown[] = [
      good,
      { ...good, extra: 1 },
      { ...good, direction: 'forwarded' },
      { ...good, jwt: 'a.b' },
      { ...good, jwt: 'a.b.c.d' },
      { ...good, jwt: '.b.c' },
      { ...good, jweDigest: 'x' },
      { ...good, leafIndex: -1 },
      { ...good, leafIndex: '3' },
      { ...good, sentAt: '2026-03-03' },
      { ...good, receipt: 5 },
      { ...good, disclosures: [] },
      { ...good, disclosures: [''] },
      { direction: 'sent', jwt: good.jwt, jweDigest: good.jweDigest },
      null,
      [],
    ];
    for (const c of cases) expect(isBundleMessage(c), JSON.stringify(c).slice(0, 80)).toBe(BundleMessage.safeParse(c).success);
  });

  it('accept and refuse receipts as the Receipt schema does', () => {
    const good = payloadOf(full.messages[0]!.receipt!);
    const cases: unknown[] = [
      good,
      { ...good, extra: 1 },
      { ...good, iss: 'https://accueil.example.be/path' },
      { ...good, aud: 'http://corridor.example.fr' },
      { ...good, iat: -1 },
      { ...good, iat: 1.5 },
      { ...good, message: C1 },
      { ...good, digest: 'short' },
      { ...good, status: 'lost' },
      { ...good, status: 'rejected' },
      { ...good, status: 'rejected', code: 'CONSENT_WITHDRAWN' },
      { ...good, status: 'rejected', code: 'NOT_A_CODE' },
      { ...good, code: 'CONSENT_WITHDRAWN' },
      { ...good, log: { index: 1, checkpoint: 'x', extra: 1 } },
      { ...good, log: { index: -1 } },
      { ...good, log: { checkpoint: 'x' } },
      null,
    ];
    for (const c of cases) expect(isReceiptPayload(c), JSON.stringify(c).slice(0, 80)).toBe(Receipt.safeParse(c).success);
  });
});

describe('key histories', () => {
  it('follows a rotation and judges each signature at its own time', async () => {
    const chain = await verifyNodeChain(ACCUEIL, s.accueil.documents);
    expect(chain.failure).toBeUndefined();
    expect(chain.verified.map((d) => d.document.version)).toEqual([1, 2]);
    const keys = KeyHistory.fromChains([chain]);
    expect(keys.signingKey(ACCUEIL, s.k1.kid, at(10 * DAY + HOUR)).x).toBe(s.k1.publicJwk.x);
    expect(() => keys.signingKey(ACCUEIL, s.k1.kid, at(11 * DAY + HOUR))).toThrow(expect.objectContaining({ code: 'KEY_NOT_VALID' }));
    expect(() => keys.signingKey(ACCUEIL, s.k2.kid, at(9 * DAY))).toThrow(expect.objectContaining({ code: 'KEY_NOT_VALID' }));
    expect(() => keys.signingKey(CORRIDOR, s.k2.kid, at(12 * DAY))).toThrow(expect.objectContaining({ code: 'KEY_UNKNOWN' }));
  });

  it('stops a chain at a document listed out of order', async () => {
    const chain = await verifyNodeChain(ACCUEIL, [s.accueil.documents[1]!, s.accueil.documents[0]!]);
    expect(chain.verified).toHaveLength(1);
    expect(chain.failure?.error.code).toBe('NODE_DOCUMENT_STALE');
  });
});

describe('the auditor’s message check', () => {
  // The lean check must agree with envelope.ts's verifier on every input.
  it('gives the verdict and code of verifySdJwtMessage', async () => {
    const keys = new KeyHistory([{ id: ACCUEIL, document: (await verifyNodeDocument(s.accueil.documents[1], { now: at(10 * DAY) })).document }]);
    const jwt = s.records.get('m1')!.jwt;
    const variants: [string, string][] = [
      ['valid', jwt],
      ['payload flipped', flipChar(jwt, jwt.indexOf('.') + 40)],
      ['signature flipped', flipChar(jwt, jwt.length - 30)],
      ['categories', withPayload(jwt, (p) => (p.categories = ['identity']))],
      ['extra claim', withPayload(jwt, (p) => (p.note = 'x'))],
      ['type', withPayload(jwt, (p) => (p.type = 'referral-response'))],
      ['section', withPayload(jwt, (p) => ((p.data as Record<string, unknown>).identity = { _sd: [] }))],
      ['future', withPayload(jwt, (p) => (p.iat = Math.floor(NOW.getTime() / 1000) + 3600))],
    ];
    for (const [label, token] of variants) {
      const lean = await checkMessageJwt(token, keys, NOW).then(() => 'ok', (e: ProtocolError) => e.code);
      const fullVerdict = await verifySdJwtMessage(`${token}~`, {
        resolveSenderKey: (iss, kid, when) => keys.signingKey(iss, kid, when),
        ignoreExpiry: true,
        now: NOW,
      }).then(() => 'ok', (e: ProtocolError) => e.code);
      expect(lean, label).toBe(fullVerdict);
    }
  });
});

describe('verifyBundle', () => {
  it('verifies a whole-log export', async () => {
    expect(AuditBundle.safeParse(full).success).toBe(true);
    const report = await verify(full);
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checked).toMatchObject({ nodes: 3, nodeDocuments: 4, agreements: 1, consents: 2, withdrawals: 1, messages: 6, erasures: 1, receipts: 7, leaves: 13, checkpoints: 3, inclusionProofs: 0 });
    expect(report.checked.consistencyProofs).toBeGreaterThanOrEqual(2);
    expect(report.checked.peerCheckpoints).toBeGreaterThanOrEqual(4);
    expect(report.outcomes).toEqual({ sent: 5, received: 2, accepted: 7, rejected: 0, unacknowledged: 0 });
  });

  it('verifies a consent export with inclusion proofs and carries no personal data', async () => {
    const report = await verify(sparse);
    expect(report.failures).toEqual([]);
    expect(report.checked.inclusionProofs).toBe(sparse.log.leaves.length);
    // Only salted digests in the signed payloads, and no disclosure anywhere.
    const records = [...sparse.messages, ...sparse.erasures];
    expect(records.every((m) => m.disclosures === undefined)).toBe(true);
    const signed = records.map((m) => JSON.stringify(payloadOf(m.jwt))).join('\n');
    expect(signed).toContain('"_sd"');
    for (const name of ['Moussa', 'Awa', '+32 470']) expect(signed).not.toContain(name);
  });

  it('prints a readable report', async () => {
    const ok = formatReport(await verify(full));
    expect(ok.split('\n')[0]).toBe(`Audit bundle from ${ACCUEIL} exported ${ts(20 * DAY)} (whole log): ✓ verified`);
    const bad = clone(full);
    bad.messages[0]!.jweDigest = b64u(new Uint8Array(32));
    const text = formatReport(await verify(bad));
    expect(text.split('\n')[0]).toMatch(/: ✗ \d+ failures$/);
    expect(text).toContain(`✗ receipt for message ${idOf(s, 'm1')} — receipt: RECEIPT_INVALID (Receipt for other bytes than the recorded JWE digest)`);
  });

  it('gives the same report when verified in parts', async () => {
    const whole = await verify(full);
    const prepared = await prepareBundle(full, { now: NOW });
    const n = prepared.recordCount;
    const progress: number[] = [];
    const [first, second] = recordRanges(prepared, 2);
    expect(first).toEqual({ start: 0, end: Math.floor(n / 2) });
    const parts = await Promise.all([
      verifyBundleRecords(full, prepared, first!),
      verifyBundleRecords(full, prepared, second!, { onProgress: (done) => progress.push(done) }),
      verifyBundleLog(full, prepared),
    ]);
    expect(mergeReports(prepared, parts)).toEqual(whole);
    expect(progress.at(-1)).toBe(second!.end - second!.start);
    expect(() => mergeReports(prepared, [parts[0]!, parts[2]!])).toThrow();
    // The prepared context is plain data: it survives a copy to another thread.
    expect(mergeReports(prepared, await Promise.all([verifyBundleRecords(clone(full), clone(prepared), { start: 0, end: n }), verifyBundleLog(full, prepared)]))).toEqual(whole);
  });

  it('prepares the same context from consents verified in parts', async () => {
    const whole = await prepareBundle(full, { now: NOW });
    const parts = await Promise.all(splitRanges(full.consents.length, 2).map((range) => verifyBundleConsents(clone(full), range)));
    expect(parts.map((p) => p.results.length)).toEqual([1, 1]);
    expect(await prepareBundle(full, { now: NOW, consents: parts.reverse() })).toEqual(whole);
    await expect(prepareBundle(full, { now: NOW, consents: [parts[0]!] })).rejects.toThrow();
  });

  it('reports progress up to the total', async () => {
    const seen: [number, number][] = [];
    await verifyBundle(full, { now: NOW, onProgress: (done, total) => seen.push([done, total]) });
    expect(seen.at(-1)).toEqual([full.messages.length + full.erasures.length + full.log.leaves.length, full.messages.length + full.erasures.length + full.log.leaves.length]);
  });

  it('reports a bundle that is not one', async () => {
    for (const bad of [null, 'bundle', { ...full, format: 'passerelle-audit-bundle/2' }, { ...full, extra: 1 }]) {
      const report = await verify(bad);
      expect(report.ok).toBe(false);
      expect(report.failures[0]).toMatchObject({ object: 'bundle', check: 'schema', code: 'SCHEMA_INVALID' });
    }
  });
});

describe('tampering', () => {
  it('a flipped byte in a message JWT payload', async () => {
    const b = clone(full);
    const jwt = b.messages[1]!.jwt;
    b.messages[1]!.jwt = flipChar(jwt, jwt.indexOf('.') + 60);
    expectFailure(await verify(b), { object: `message ${idOf(s, 'm3')}`, check: 'signature', code: 'SIGNATURE_INVALID' });
  });

  it('a flipped byte in a receipt signature', async () => {
    const b = clone(full);
    const receipt = b.messages[0]!.receipt!;
    b.messages[0]!.receipt = flipChar(receipt, receipt.length - 20);
    expectFailure(await verify(b), { object: `receipt for message ${idOf(s, 'm1')}`, check: 'signature', code: 'SIGNATURE_INVALID' });
  });

  it('another spelling of the same signature bytes', async () => {
    const b = clone(full);
    const jwt = b.messages[0]!.jwt;
    // The last character of a 64-byte signature carries 4 spare bits; setting one keeps the bytes.
    const last = jwt[jwt.length - 1]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    b.messages[0]!.jwt = jwt.slice(0, -1) + alphabet[alphabet.indexOf(last) + 1]!;
    expectFailure(await verify(b), { object: `message ${idOf(s, 'm1')}`, check: 'signature', code: 'SIGNATURE_INVALID' });
    // The same for the signatures of a general JWS (node documents, agreements).
    const g = clone(full);
    const sig = g.agreements[0]!.jws.signatures[0]!;
    sig.signature = sig.signature.slice(0, -1) + alphabet[alphabet.indexOf(sig.signature.at(-1)!) + 1]!;
    expectFailure(await verify(g), { object: `agreement ${AGREEMENT_ID}`, check: 'signature', code: 'MALFORMED' });
  });

  it('a flipped byte in an inclusion proof', async () => {
    const b = clone(sparse);
    const proof = b.log.inclusionProofs[1]!;
    proof.path[0] = flipChar(proof.path[0]!, 10);
    expectFailure(await verify(b), { object: `inclusion proof 1 (leaf ${proof.leafIndex})`, check: 'inclusion', code: 'AUDIT_PROOF_INVALID' });
    expectFailure(await verify(b), { object: `leaf ${proof.leafIndex}`, check: 'inclusion', code: 'AUDIT_PROOF_INVALID' });
  });

  it('a flipped byte in a consistency proof', async () => {
    const b = clone(full);
    const proof = b.log.consistencyProofs[0]!;
    proof.path[0] = flipChar(proof.path[0]!, 5);
    expectFailure(await verify(b), { object: `consistency proof 0 (${proof.from} → ${proof.to})`, check: 'consistency', code: 'AUDIT_PROOF_INVALID' });
  });

  it('a flipped byte in a log record field', async () => {
    const b = clone(full);
    const leaf = b.log.leaves[2]!;
    leaf.fields.digest = flipChar(leaf.fields.digest as string, 3);
    const report = await verify(b);
    expectFailure(report, { object: 'checkpoint 0', check: 'inclusion', code: 'AUDIT_PROOF_INVALID' });
    expectFailure(report, { object: `message ${idOf(s, 'm3')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('a flipped byte in a checkpoint root', async () => {
    const b = clone(full);
    b.log.checkpoints[1] = withPayload(b.log.checkpoints[1]!, (p) => (p.root = flipChar(p.root as string, 7)));
    expectFailure(await verify(b), { object: 'checkpoint 1', check: 'signature', code: 'SIGNATURE_INVALID' });
  });

  it('a changed consent record', async () => {
    const b = clone(full);
    b.consents[0]!.jws = withPayload(b.consents[0]!.jws, (p) => (p.subject = 'case-be-2026-0043'));
    const report = await verify(b);
    expectFailure(report, { object: `consent ${C1}`, check: 'signature', code: 'SIGNATURE_INVALID' });
    // The messages that carry it cannot be checked against it.
    expectFailure(report, { object: `message ${idOf(s, 'm1')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('a flipped byte in an agreement signature', async () => {
    const b = clone(full);
    const sig = b.agreements[0]!.jws.signatures[1]!;
    sig.signature = flipChar(sig.signature, 30);
    const report = await verify(b);
    expectFailure(report, { object: `agreement ${AGREEMENT_ID}`, check: 'signature', code: 'SIGNATURE_INVALID' });
    expectFailure(report, { object: `message ${idOf(s, 'm1')}`, check: 'agreement', code: 'AGREEMENT_INVALID' });
  });

  it('a changed node document', async () => {
    const b = clone(full);
    const doc = b.nodes[0]!.documents[1]!;
    const payload = JSON.parse(fromUtf8(fromB64u(doc.payload))) as Record<string, unknown>;
    payload.name = 'Accueil Transit Bruxelles (exemplf)';
    doc.payload = b64u(utf8(JSON.stringify(payload)));
    const report = await verify(b);
    expectFailure(report, { object: `node document ${ACCUEIL} v2`, check: 'signature', code: 'SIGNATURE_INVALID' });
    // k2 was introduced by that version: whatever it signed can no longer be attributed.
    expectFailure(report, { object: `message ${idOf(s, 'm2')}`, check: 'signature', code: 'KEY_UNKNOWN' });
    expectFailure(report, { object: 'bundle attestation', check: 'signature', code: 'KEY_UNKNOWN' });
  });

  it('a removed log record', async () => {
    const b = clone(full);
    b.log.leaves.splice(3, 1);
    const report = await verify(b);
    expectFailure(report, { object: 'checkpoint 2', check: 'inclusion', code: 'AUDIT_PROOF_INVALID' });
    expectFailure(report, { object: `receipt for message ${idOf(s, 'm3')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('reordered log records', async () => {
    const swapped = clone(full);
    [swapped.log.leaves[4], swapped.log.leaves[5]] = [swapped.log.leaves[5]!, swapped.log.leaves[4]!];
    expectFailure(await verify(swapped), { object: 'leaf 4', check: 'consistency', code: 'AUDIT_LOG_INCONSISTENT' });
    // Renumbered so that the order looks right: the recorded history no longer matches the signed roots.
    const renumbered = clone(swapped);
    renumbered.log.leaves[4]!.index = 4;
    renumbered.log.leaves[5]!.index = 5;
    const report = await verify(renumbered);
    expectFailure(report, { object: 'checkpoint 1', check: 'inclusion', code: 'AUDIT_PROOF_INVALID' });
    expectFailure(report, { object: `message ${idOf(s, 'm5')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('rewritten history: the exporter drops a record and re-signs its checkpoints', async () => {
    // The exporter removes m3's records from its log, rebuilds the tree and signs new checkpoints;
    // its old checkpoint, inside a receipt it gave reintegration, now contradicts the log.
    const rewritten = new Log(ACCUEIL);
    const m3 = idOf(s, 'm3');
    const map = new Map<number, number>();
    for (const leaf of s.log.leaves) {
      if (leaf.fields.messageId === m3) continue;
      map.set(leaf.index, rewritten.append({ kind: leaf.kind, fields: leaf.fields, at: leaf.at }));
    }
    await rewritten.checkpoint(s.k2, at(17 * DAY));
    const b = clone(full);
    b.messages = b.messages.filter((m) => payloadOf(m.jwt).jti !== m3).map((m) => ({ ...m, leafIndex: map.get(m.leafIndex)! }));
    b.erasures = b.erasures.map((m) => ({ ...m, leafIndex: map.get(m.leafIndex)! }));
    b.consents[1]!.withdrawals[0]!.leafIndex = map.get(b.consents[1]!.withdrawals[0]!.leafIndex!)!;
    b.log = { leaves: rewritten.leaves, checkpoints: rewritten.checkpoints, inclusionProofs: [], consistencyProofs: [] };
    const resigned = await buildBundle({ ...b, exportedAt: at(20 * DAY) }, s.k2);
    const report = await verify(resigned);
    expectFailure(report, { object: `checkpoint in receipt for message ${idOf(s, 'm4')}`, check: 'consistency', code: 'AUDIT_LOG_INCONSISTENT' });
    // m4's own receipt names a log position the rewritten log moved.
    expectFailure(report, { object: `receipt for message ${idOf(s, 'm4')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('a peer that signed two histories', async () => {
    const forked = new Log(REINTEGRATION);
    forked.append(messageReceivedEvent({ messageId: idOf(s, 'm1'), peer: ACCUEIL, digest: b64u(new Uint8Array(32)) }, ts(DAY)));
    const fork = await forked.checkpoint(s.reintegration.sig, at(30 * DAY));
    const b = clone(full);
    b.peerCheckpoints.push(fork);
    const resigned = await buildBundle({ ...b, exportedAt: at(40 * DAY) }, s.k2);
    expectFailure(await verify(resigned), { object: 'peer checkpoint 1', check: 'consistency', code: 'AUDIT_LOG_INCONSISTENT' });
  });

  it('a receipt for a different message', async () => {
    const b = clone(full);
    [b.messages[0]!.receipt, b.messages[1]!.receipt] = [b.messages[1]!.receipt, b.messages[0]!.receipt];
    const report = await verify(b);
    expectFailure(report, { object: `receipt for message ${idOf(s, 'm1')}`, check: 'receipt', code: 'RECEIPT_INVALID' });
    expectFailure(report, { object: `receipt for message ${idOf(s, 'm3')}`, check: 'receipt', code: 'RECEIPT_INVALID' });
  });

  it('a message sent after its consent was withdrawn', async () => {
    const { s: s2, x: x2 } = await scenario();
    await x2.send('m6', buildReferral({ agreementId: AGREEMENT_ID, from: ACCUEIL, to: REINTEGRATION, consentId: C2, consentRecord: s2.consents[C2], created: at(17 * DAY), body: referralBody('case-be-2026-0077'), data: { identity: { givenName: 'Moussa' } } }), s2.reintegration, 17 * DAY);
    await x2.checkpoint('A3', 17 * DAY + HOUR);
    const report = await verify(await exportBundle(s2));
    const f = expectFailure(report, { object: `message ${idOf(s2, 'm6')}`, check: 'consent', code: 'CONSENT_WITHDRAWN' });
    expect(report.failures).toEqual([f]);
  });

  it('a key used outside its validity', async () => {
    const { s: s2, x: x2 } = await scenario();
    // k1 was superseded at T0 + 11 days; a message signed with it on day 13 must not verify.
    await x2.send('m7', buildReferral({ agreementId: AGREEMENT_ID, from: ACCUEIL, to: CORRIDOR, consentId: C1, consentRecord: s2.consents[C1], created: at(13 * DAY), body: referralBody('case-be-2026-0042'), data: { contact: { phone: '+33 6 00 00 00 00' } } }), s2.corridor, 13 * DAY, { key: s2.k1 });
    await x2.checkpoint('A3', 17 * DAY + HOUR);
    const report = await verify(await exportBundle(s2));
    const f = expectFailure(report, { object: `message ${idOf(s2, 'm7')}`, check: 'key-validity', code: 'KEY_NOT_VALID' });
    expect(report.failures).toEqual([f]);
  });

  it('the bundle’s own fields are attested by the exporter', async () => {
    const later = clone(full);
    later.exportedAt = ts(21 * DAY);
    expectFailure(await verify(later), { object: 'bundle attestation', check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
    const fewer = clone(sparse);
    fewer.messages.splice(0, 1);
    expectFailure(await verify(fewer), { object: 'bundle attestation', check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
    const scoped = clone(sparse);
    scoped.scope = { kind: 'consent', consentId: C1 };
    expectFailure(await verify(scoped), { object: 'bundle attestation', check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('a whole-log export missing a message', async () => {
    const b = clone(full);
    b.messages.splice(1, 1);
    const resigned = await buildBundle({ ...b, exportedAt: at(20 * DAY) }, s.k2);
    expectFailure(await verify(resigned), { object: `leaf ${s.records.get('m3')!.leafIndex}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('a record outside the declared scope', async () => {
    const b = await exportBundle(s, { scope: { kind: 'consent', consentId: C2 }, only: ['m5', 'w', 'e', 'm1'] });
    const f = expectFailure(await verify(b), { object: `message ${idOf(s, 'm1')}`, check: 'scope', code: 'AUDIT_BUNDLE_INCONSISTENT' });
    expect(f.message).toContain(C2);
  });

  it('a withdrawal moved in time', async () => {
    const b = clone(full);
    b.consents[1]!.withdrawals[0]!.at = ts(18 * DAY);
    const resigned = await buildBundle({ ...b, exportedAt: at(20 * DAY) }, s.k2);
    const report = await verify(resigned);
    expectFailure(report, { object: `withdrawal #0 of consent ${C2}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
    expectFailure(report, { object: `message ${idOf(s, 'w')}`, check: 'cross-record', code: 'AUDIT_BUNDLE_INCONSISTENT' });
  });

  it('personal data only in a lawful full audit, and then checked', async () => {
    await expect(exportBundle(s, { disclosures: { m4: ['x'] } })).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
    // The exporter holds the disclosures of what it received: it decrypts the JWE as it did then.
    const opened = await open(s.jwes.get('m4')!, {
      self: ACCUEIL,
      decryptionKey: (kid) => (kid === s.accueil.enc.kid ? s.accueil.enc : undefined),
      resolveSenderKey: () => s.reintegration.sig.publicJwk,
      now: at(14 * DAY),
    });
    expect(opened.disclosures.length).toBeGreaterThan(0);
    const lawful = await exportBundle(s, { personalData: 'lawful-full-audit', disclosures: { m4: opened.disclosures } });
    expect((await verify(lawful)).failures).toEqual([]);
    const tampered = clone(lawful);
    const m4 = tampered.messages.find((m) => m.disclosures)!;
    m4.disclosures![0] = flipChar(m4.disclosures![0]!, 10);
    expectFailure(await verify(tampered), { object: `message ${idOf(s, 'm4')}`, check: 'claims', code: 'DISCLOSURE_INVALID' });
    const unlawful = clone(lawful);
    unlawful.personalData = 'none';
    expectFailure(await verify(unlawful), { object: `message ${idOf(s, 'm4')}`, check: 'schema', code: 'SCHEMA_INVALID' });
  });

  it('catches a flipped byte anywhere in the serialised bundle', async () => {
    const text = JSON.stringify(sparse);
    const samples = 160;
    let parsedButCaught = 0;
    for (let k = 0; k < samples; k++) {
      const position = Math.floor(((k + 0.5) * text.length) / samples);
      const flipped = text.slice(0, position) + String.fromCharCode(text.charCodeAt(position) ^ 0x01) + text.slice(position + 1);
      let parsed: unknown;
      try {
        parsed = JSON.parse(flipped);
      } catch {
        continue;
      }
      const report = await verify(parsed);
      expect(report.ok, `byte ${position} (${JSON.stringify(text.slice(position - 20, position + 20))})`).toBe(false);
      expect(report.failures.filter((f) => f.code === 'INTERNAL')).toEqual([]);
      parsedButCaught++;
    }
    expect(parsedButCaught).toBeGreaterThan(samples / 2);
  }, 120_000);

  // Every byte of both bundles, flipped in turn (minutes; AUDIT_SWEEP=1 to run it).
  it.runIf(process.env.AUDIT_SWEEP)('catches every flipped byte (exhaustive)', async () => {
    const missed: string[] = [];
    for (const bundle of [sparse, full]) {
      const text = JSON.stringify(bundle);
      const stride = Number(process.env.AUDIT_SWEEP_STRIDE ?? 1);
      for (let position = 0; position < text.length; position += stride) {
        const flipped = text.slice(0, position) + String.fromCharCode(text.charCodeAt(position) ^ 0x01) + text.slice(position + 1);
        let parsed: unknown;
        try {
          parsed = JSON.parse(flipped);
        } catch {
          continue;
        }
        const report = await verify(parsed);
        // Caught, and caught by a check rather than by an unexpected error.
        if (report.ok || report.failures.some((f) => f.code === 'INTERNAL')) missed.push(`${position}: ${JSON.stringify(text.slice(position - 30, position + 30))} ${formatReport(report)}`);
      }
    }
    expect(missed).toEqual([]);
  }, 3_600_000);
});
