/**
 * Offline verification of an audit bundle (spec/audit.md §5). Pure: no I/O, no clock but the one
 * given, no trust in the exporting node. Every signed object is checked against the key its signer
 * held when signing, every message against its consent and agreement with the nodes' own
 * enforcement function, every receipt against its message, every log record against the signed
 * checkpoints, and the records against each other.
 *
 * The work splits in three so that a caller may spread it over threads (the CLI and the benchmark
 * do): `prepareBundle` checks the shared objects once (key histories, agreements, consents) and
 * returns a plain, cloneable snapshot; `verifyBundleRecords` checks any slice of the messages
 * against that snapshot; `verifyBundleLog` checks the log, the checkpoints and the attestation.
 * `mergeReports` joins the parts. `verifyBundle` does all of it in one call.
 */
import { z } from 'zod';
import { AgreementTermination, verifyAgreement, verifyTermination, type Agreement } from '../agreement.js';
import { CONSENT_TYP, ConsentRecord, type Withdrawal } from '../consent.js';
import { b64u, fromB64u, fromUtf8 } from '../encoding.js';
import { evaluateFlow, type AgreementContext, type FlowFacts } from '../enforcement.js';
import { DEFAULT_MAX_SKEW_SECONDS, verifySdJwtMessage } from '../envelope.js';
import { ERROR_CODES, ProtocolError, isErrorCode, type ErrorCode } from '../errors.js';
import type { GeneralJws } from '../jws.js';
import { MessageTypes } from '../messages/message-types.js';
import type { MessageHeader } from '../messages/define.js';
import type { NodeDocument } from '../node-document.js';
import { RECEIPT_TYP, Receipt } from '../receipt.js';
import { joinSdJwt } from '../sd-jwt.js';
import { NodeId, Timestamp, toTimestamp } from '../vocabulary.js';
import {
  AUDIT_BUNDLE_FORMAT,
  AUDIT_BUNDLE_TYP,
  BundleAgreement,
  BundleAttestation,
  BundleConsent,
  BundleConsistencyProof,
  BundleInclusionProof,
  BundleMessage,
  BundleNode,
  BundleScope,
  CompactJwsString,
  PersonalDataMode,
  checkpointDigest,
  isBundleMessage,
  sameScope,
  type BundleCounts,
  type BundleWithdrawal,
} from './bundle.js';
import { assertConsistentCheckpoints, decodeProof, verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { AuditEvents, receiptDigest } from './events.js';
import { assertCanonicalSignatures, checkCompactJws, parseBoundedJsonObject } from './jws-check.js';
import { KeyHistory, verifyNodeChain, type NodeChain } from './key-history.js';
import { auditLeafHashBytes, isAuditLeaf, type AuditLeaf } from './leaf.js';
import { MerkleTree, verifyInclusion } from './merkle.js';
import { checkMessageJwt } from './message-check.js';
import { isReceiptPayload } from './receipt-check.js';
import type { AuditCheck, AuditCounts, AuditFailure, AuditOutcomes, AuditReport } from './report.js';

export interface VerifyBundleOptions {
  /** The auditor's clock; objects signed after it (beyond the allowed skew) fail. Defaults to now. */
  now?: Date;
  /** Called as work completes: `done` of `total` units (one per message, erasure and log entry). */
  onProgress?: (done: number, total: number) => void;
  /** Fingerprints the auditor holds for some nodes (for example from an agreement annex): their first document must be signed by one. */
  pinnedFingerprints?: Readonly<Record<string, readonly string[]>>;
  /** Messages verified concurrently within one part (signature checks run off the main thread in WebCrypto). */
  concurrency?: number;
}

// ---------------------------------------------------------------------------------------------
// Failures

// Codes that say a signature could not be checked or did not hold, whatever object carried it.
const SIGNATURE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MALFORMED',
  'TOO_LARGE',
  'UNSUPPORTED_ALGORITHM',
  'FORBIDDEN_HEADER',
  'SIGNATURE_INVALID',
  'KEY_UNKNOWN',
  'KEY_INVALID',
]);

/** The innermost protocol code: wrappers such as CONSENT_INVALID keep it in details.reason or as cause. */
function rootCode(e: ProtocolError): ErrorCode {
  const reason = e.details?.reason;
  if (isErrorCode(reason)) return reason;
  if (e.cause instanceof ProtocolError) return rootCode(e.cause);
  return e.code;
}

function failureOf(object: string, e: unknown, fallback: AuditCheck): AuditFailure {
  // A bundle is hostile input: whatever escapes the checks is reported against the object, never thrown.
  if (!(e instanceof ProtocolError)) return { object, check: fallback, code: 'INTERNAL', message: `Unexpected error: ${e instanceof Error ? e.message : String(e)}` };
  const root = rootCode(e);
  if (root === 'KEY_NOT_VALID') return { object, check: 'key-validity', code: root, message: ERROR_CODES.KEY_NOT_VALID };
  if (SIGNATURE_CODES.has(root)) {
    const message = root === e.code ? e.message : ERROR_CODES[root];
    return { object, check: 'signature', code: root, message };
  }
  return { object, check: fallback, code: e.code, message: e.message };
}

function fail(object: string, check: AuditCheck, code: ErrorCode, message: string): AuditFailure {
  return { object, check, code, message };
}

const INCONSISTENT: ErrorCode = 'AUDIT_BUNDLE_INCONSISTENT';

/** Signature checks kept in flight at once: WebCrypto runs them off the JavaScript thread. */
const DEFAULT_CONCURRENCY = 64;

/** `fn` over `items` with at most `limit` calls pending; results in item order. */
async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return out;
}

function emptyCounts(): AuditCounts {
  return {
    nodes: 0,
    nodeDocuments: 0,
    agreements: 0,
    terminations: 0,
    consents: 0,
    withdrawals: 0,
    messages: 0,
    erasures: 0,
    receipts: 0,
    signatures: 0,
    leaves: 0,
    checkpoints: 0,
    peerCheckpoints: 0,
    inclusionProofs: 0,
    consistencyProofs: 0,
  };
}

function emptyOutcomes(): AuditOutcomes {
  return { sent: 0, received: 0, accepted: 0, rejected: 0, unacknowledged: 0 };
}

function addCounts<T extends object>(into: T, from: T): T {
  for (const key of Object.keys(from) as (keyof T)[]) (into[key] as number) += from[key] as number;
  return into;
}

export interface PartialReport {
  part: 'context' | 'log' | { start: number; end: number };
  checked: AuditCounts;
  outcomes: AuditOutcomes;
  failures: AuditFailure[];
}

function partial(part: PartialReport['part']): PartialReport {
  return { part, checked: emptyCounts(), outcomes: emptyOutcomes(), failures: [] };
}

// ---------------------------------------------------------------------------------------------
// The bundle's own fields, checked before anything else; lists are checked entry by entry later,
// so that one damaged entry is reported as such and the rest still verified.

const RawList = z.array(z.unknown());
const BundleHead = z
  .object({
    format: z.literal(AUDIT_BUNDLE_FORMAT),
    exportedBy: NodeId,
    exportedAt: Timestamp,
    scope: BundleScope,
    personalData: PersonalDataMode,
    attestation: CompactJwsString,
    nodes: RawList,
    agreements: RawList,
    consents: RawList,
    messages: RawList,
    erasures: RawList,
    log: z.object({ leaves: RawList, checkpoints: RawList, inclusionProofs: RawList, consistencyProofs: RawList }).strict(),
    peerCheckpoints: RawList,
  })
  .strict();
type BundleHead = z.infer<typeof BundleHead>;

interface HeadFacts {
  exportedBy: string;
  exportedAt: string;
  scope: BundleScope;
  personalData: z.infer<typeof PersonalDataMode>;
}

// ---------------------------------------------------------------------------------------------
// The shared context: verified once, then handed to every part as plain data.

export type ContextAgreement =
  | { id: string; ok: true; agreement: Agreement; signedBy: string[]; terminations: AgreementTermination[] }
  | { id: string; ok: false; code: ErrorCode; message: string };

export type ContextConsent =
  | { jws: string; id: string | undefined; ok: true; record: ConsentRecord }
  | { jws: string; id: string | undefined; ok: false; code: ErrorCode; message: string };

export interface VerifiedContext {
  /** The latest verified document of each node: its key list, with validity windows, is the key history. */
  nodes: { id: string; document: NodeDocument }[];
  agreements: ContextAgreement[];
  consents: ContextConsent[];
  /** Withdrawals as listed (their attestation is checked by verifyBundleLog). */
  withdrawals: Withdrawal[];
}

export interface PreparedBundle {
  /** The bundle's own fields did not verify: nothing else can be checked. */
  fatal: boolean;
  head: HeadFacts | undefined;
  /** Messages plus erasure confirmations: the range verifyBundleRecords slices. */
  recordCount: number;
  leafCount: number;
  /** The auditor's clock, fixed for every part. */
  now: string;
  context: VerifiedContext;
  report: PartialReport;
}

function schemaMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}

function peekPayload(token: unknown): Record<string, unknown> | undefined {
  if (typeof token !== 'string') return undefined;
  try {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    return parseBoundedJsonObject(fromUtf8(fromB64u(parts[1]!)));
  } catch {
    return undefined;
  }
}

function peekGeneral(jws: unknown): Record<string, unknown> | undefined {
  const payload = (jws as { payload?: unknown } | null)?.payload;
  if (typeof payload !== 'string') return undefined;
  try {
    return parseBoundedJsonObject(fromUtf8(fromB64u(payload)));
  } catch {
    return undefined;
  }
}

/** Verifies every node's document chain (§5.1); failures go to `report` when one is given. */
async function verifyNodes(b: BundleHead, options: Pick<VerifyBundleOptions, 'pinnedFingerprints'>, report?: PartialReport): Promise<{ keys: KeyHistory; chains: NodeChain[] }> {
  const seen = new Set<string>();
  const chains: NodeChain[] = [];
  const failures: AuditFailure[] = [];
  const counts = emptyCounts();
  for (const [i, raw] of b.nodes.entries()) {
    const node = BundleNode.safeParse(raw);
    if (!node.success) {
      failures.push(fail(`node #${i}`, 'schema', 'SCHEMA_INVALID', schemaMessage(node.error)));
      continue;
    }
    const { id, documents } = node.data;
    if (seen.has(id)) {
      failures.push(fail(`node ${id}`, 'schema', 'SCHEMA_INVALID', 'The node is listed twice'));
      continue;
    }
    seen.add(id);
    counts.nodes++;
    counts.nodeDocuments += documents.length;
    const chain = await verifyNodeChain(id, documents, options.pinnedFingerprints?.[id]);
    counts.signatures += chain.verified.reduce((n, d) => n + d.jws.signatures.length, 0);
    if (chain.failure) {
      const { position, version, error } = chain.failure;
      counts.signatures += documents[position]?.signatures.length ?? 0;
      failures.push(failureOf(`node document ${id} ${version !== undefined ? `v${version}` : `#${position}`}`, error, 'node-document'));
    }
    chains.push(chain);
  }
  if (report) {
    report.failures.push(...failures);
    addCounts(report.checked, counts);
  }
  return { keys: KeyHistory.fromChains(chains), chains };
}

/**
 * Checks the bundle's own fields, the node key histories, the agreements (with terminations) and
 * the consents. The result's `context` is what every other part verifies against.
 */
export async function prepareBundle(bundle: unknown, options: VerifyBundleOptions & { consents?: readonly ConsentsPart[] } = {}): Promise<PreparedBundle> {
  const now = options.now ?? new Date();
  const report = partial('context');
  const context: VerifiedContext = { nodes: [], agreements: [], consents: [], withdrawals: [] };
  const head = BundleHead.safeParse(bundle);
  if (!head.success) {
    report.failures.push(fail('bundle', 'schema', 'SCHEMA_INVALID', `The bundle does not match its schema at ${schemaMessage(head.error)}`));
    return { fatal: true, head: undefined, recordCount: 0, leafCount: 0, now: now.toISOString(), context, report };
  }
  const b = head.data;
  const counts = report.checked;

  // Key histories (§5.1).
  const { keys, chains } = await verifyNodes(b, options, report);
  for (const chain of chains) {
    const last = chain.verified[chain.verified.length - 1];
    if (last) context.nodes.push({ id: chain.id, document: last.document });
  }

  // Agreements and their terminations (consent-and-agreements.md §2).
  for (const [i, raw] of b.agreements.entries()) {
    const entry = BundleAgreement.safeParse(raw);
    const claimedId = peekGeneral((raw as { jws?: unknown } | null)?.jws)?.id;
    const id = typeof claimedId === 'string' ? claimedId : undefined;
    const name = id ? `agreement ${id}` : `agreement #${i}`;
    if (!entry.success) {
      report.failures.push(fail(name, 'schema', 'SCHEMA_INVALID', schemaMessage(entry.error)));
      if (id) context.agreements.push({ id, ok: false, code: 'SCHEMA_INVALID', message: 'The bundle entry does not match its schema' });
      continue;
    }
    counts.agreements++;
    counts.signatures += entry.data.jws.signatures.length;
    try {
      assertCanonicalSignatures(entry.data.jws as GeneralJws);
      const created = peekGeneral(entry.data.jws)?.createdAt;
      const verified = await verifyAgreement(entry.data.jws, keys.resolver, { now: typeof created === 'string' ? created : now });
      const terminations: AgreementTermination[] = [];
      for (const [j, t] of entry.data.terminations.entries()) {
        counts.terminations++;
        counts.signatures++;
        try {
          assertCanonicalSignatures(t);
          terminations.push((await verifyTermination(t, verified, keys.resolver)).termination);
        } catch (e) {
          report.failures.push(failureOf(`termination #${j} of agreement ${verified.agreement.id}`, e, 'agreement'));
        }
      }
      context.agreements.push({ id: verified.agreement.id, ok: true, agreement: verified.agreement, signedBy: verified.signedBy, terminations });
    } catch (e) {
      const f = failureOf(name, e, 'agreement');
      report.failures.push(f);
      if (id) context.agreements.push({ id, ok: false, code: f.code, message: f.message });
    }
  }

  // Consents (consent-and-agreements.md §3) and the withdrawals listed with them: verified here, or
  // beforehand in slices (verifyBundleConsents) by threads that have nothing else to do yet.
  const results = options.consents ? joinConsentParts(options.consents, b.consents.length) : await checkConsents(b.consents, 0, keys, options.concurrency);
  for (const c of results) {
    if (c.counted) {
      counts.consents++;
      counts.signatures++;
    }
    if (c.failure) report.failures.push(c.failure);
    if (c.consent) context.consents.push(c.consent);
    context.withdrawals.push(...c.withdrawals);
  }

  return {
    fatal: false,
    head: { exportedBy: b.exportedBy, exportedAt: b.exportedAt, scope: b.scope, personalData: b.personalData },
    recordCount: b.messages.length + b.erasures.length,
    leafCount: b.log.leaves.length,
    now: now.toISOString(),
    context,
    report,
  };
}

/**
 * verifyConsent (consent.ts) on the auditor's signature path: the record's schema (CONSENT_INVALID),
 * then the signature by a key its controller held when it was issued. A bundle may list a consent
 * per case, so this runs thousands of times before any message can be checked.
 */
async function checkConsentJws(jws: string, keys: KeyHistory): Promise<ConsentRecord> {
  let record: ConsentRecord | undefined;
  await checkCompactJws(jws, CONSENT_TYP, (header, claimed) => {
    const parsed = ConsentRecord.safeParse(claimed);
    if (!parsed.success) throw new ProtocolError('CONSENT_INVALID', 'The consent record does not match its schema', { issues: parsed.error.issues.slice(0, 10).map((i) => i.path.join('.')) });
    record = parsed.data;
    return keys.signingKey(record.controller, header.kid, new Date(record.issuedAt ?? record.collectedAt));
  });
  return record!;
}

/** The outcome for one consent entry, as plain data. */
export interface ConsentResult {
  consent?: ContextConsent;
  withdrawals: Withdrawal[];
  failure?: AuditFailure;
  /** The entry matched its schema and its signature was checked. */
  counted?: boolean;
}

export interface ConsentsPart {
  start: number;
  end: number;
  results: ConsentResult[];
}

async function checkConsents(entries: readonly unknown[], offset: number, keys: KeyHistory, concurrency?: number): Promise<ConsentResult[]> {
  return mapConcurrent(entries, concurrency ?? DEFAULT_CONCURRENCY, async (raw, k): Promise<ConsentResult> => {
    const i = offset + k;
    const entry = BundleConsent.safeParse(raw);
    const jws = (raw as { jws?: unknown } | null)?.jws;
    const claimedId = peekPayload(jws)?.id;
    const id = typeof claimedId === 'string' ? claimedId : undefined;
    const name = id ? `consent ${id}` : `consent #${i}`;
    if (!entry.success) {
      return {
        failure: fail(name, 'schema', 'SCHEMA_INVALID', schemaMessage(entry.error)),
        ...(typeof jws === 'string' ? { consent: { jws, id, ok: false, code: 'SCHEMA_INVALID', message: 'The bundle entry does not match its schema' } as const } : {}),
        withdrawals: [],
      };
    }
    const withdrawals = id ? entry.data.withdrawals.map((w) => ({ consentId: id, at: w.at, ...(w.purposes ? { purposes: w.purposes } : {}) })) : [];
    try {
      const record = await checkConsentJws(entry.data.jws, keys);
      return { consent: { jws: entry.data.jws, id: record.id, ok: true, record }, withdrawals, counted: true };
    } catch (e) {
      const f = failureOf(name, e, 'consent');
      return { failure: f, consent: { jws: entry.data.jws, id, ok: false, code: f.code, message: f.message }, withdrawals, counted: true };
    }
  });
}

function joinConsentParts(parts: readonly ConsentsPart[], count: number): ConsentResult[] {
  const sorted = [...parts].sort((x, y) => x.start - y.start);
  let covered = 0;
  for (const p of sorted) {
    if (p.start !== covered || p.results.length !== p.end - p.start) throw new Error('The consent parts do not cover the bundle exactly once');
    covered = p.end;
  }
  if (covered !== count) throw new Error('The consent parts do not cover the bundle exactly once');
  return sorted.flatMap((p) => p.results);
}

/** `total` items cut into `parts` contiguous ranges of nearly equal size. */
export function splitRanges(total: number, parts: number): { start: number; end: number }[] {
  const count = Math.max(1, Math.min(Math.floor(parts), Math.max(1, total)));
  return Array.from({ length: count }, (_, i) => ({ start: Math.floor((i * total) / count), end: Math.floor(((i + 1) * total) / count) }));
}

/**
 * Verifies the consents in [start, end) of `bundle.consents` against the node key histories (which
 * it verifies for itself, silently: prepareBundle reports them). Threads can share the consents
 * of a large bundle this way and hand the parts to prepareBundle (`options.consents`).
 */
export async function verifyBundleConsents(
  bundle: unknown,
  range: { start: number; end: number },
  options: Pick<VerifyBundleOptions, 'pinnedFingerprints' | 'concurrency'> = {},
): Promise<ConsentsPart> {
  const head = BundleHead.safeParse(bundle);
  if (!head.success) return { ...range, results: [] };
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > head.data.consents.length || start > end) {
    throw new RangeError('Consent range out of bounds');
  }
  const { keys } = await verifyNodes(head.data, options);
  return { start, end, results: await checkConsents(head.data.consents.slice(start, end), start, keys, options.concurrency) };
}

// ---------------------------------------------------------------------------------------------
// Context lookups for the parts

class Lookups {
  readonly keys: KeyHistory;
  readonly #agreements = new Map<string, ContextAgreement>();
  readonly #consentsByJws = new Map<string, ContextConsent>();
  readonly #consentsById = new Map<string, ContextConsent[]>();
  readonly #withdrawals = new Map<string, Withdrawal[]>();
  readonly #extraConsents = new Map<string, Promise<ContextConsent>>();

  constructor(readonly context: VerifiedContext) {
    this.keys = new KeyHistory(context.nodes);
    for (const a of context.agreements) {
      const prior = this.#agreements.get(a.id);
      // Of several versions, the highest that verified governs.
      if (!prior || (a.ok && (!prior.ok || a.agreement.version > prior.agreement.version))) this.#agreements.set(a.id, a);
    }
    for (const c of context.consents) {
      this.#consentsByJws.set(c.jws.slice(c.jws.lastIndexOf('.') + 1), c);
      if (c.id) this.#consentsById.set(c.id, [...(this.#consentsById.get(c.id) ?? []), c]);
    }
    for (const w of context.withdrawals) this.#withdrawals.set(w.consentId, [...(this.#withdrawals.get(w.consentId) ?? []), w]);
  }

  agreement(id: string): ContextAgreement | undefined {
    return this.#agreements.get(id);
  }

  consentListed(jws: string): ContextConsent | undefined {
    // Keyed by the signature segment: hashing it is cheaper than hashing the whole token, and the
    // full comparison below keeps the lookup exact.
    const found = this.#consentsByJws.get(jws.slice(jws.lastIndexOf('.') + 1));
    return found?.jws === jws ? found : undefined;
  }

  hasConsentId(id: string): boolean {
    return this.#consentsById.has(id);
  }

  /** A consent record carried by a message but not listed in the bundle: verified here, once per part. */
  consentCarried(jws: string): Promise<ContextConsent> {
    let p = this.#extraConsents.get(jws);
    if (!p) {
      p = (async (): Promise<ContextConsent> => {
        try {
          const record = await checkConsentJws(jws, this.keys);
          return { jws, id: record.id, ok: true, record };
        } catch (e) {
          const f = failureOf('consent', e, 'consent');
          return { jws, id: undefined, ok: false, code: f.code, message: f.message };
        }
      })();
      this.#extraConsents.set(jws, p);
    }
    return p;
  }

  /** The version of consent `id` in force for a message created at `created`: the highest issued by then. */
  consentById(id: string, created: string): ContextConsent | undefined {
    const all = this.#consentsById.get(id);
    if (!all) return undefined;
    const ok = all.filter((c): c is Extract<ContextConsent, { ok: true }> => c.ok);
    if (ok.length === 0) return all[0];
    const t = Date.parse(created);
    const issued = ok.filter((c) => Date.parse(c.record.issuedAt ?? c.record.collectedAt) <= t);
    const pool = issued.length > 0 ? issued : ok;
    return pool.reduce((a, c) => (c.record.version > a.record.version ? c : a));
  }

  withdrawals(consentId: string): readonly Withdrawal[] {
    return this.#withdrawals.get(consentId) ?? [];
  }
}

// ---------------------------------------------------------------------------------------------
// Records: messages and erasure confirmations

function recordAt(b: BundleHead, i: number): { entry: unknown; erasure: boolean; position: number } {
  const m = b.messages.length;
  return i < m ? { entry: b.messages[i], erasure: false, position: i } : { entry: b.erasures[i - m], erasure: true, position: i - m };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function recordName(erasure: boolean, id: unknown, position: number): string {
  const what = erasure ? 'erasure confirmation' : 'message';
  return typeof id === 'string' && UUID.test(id) ? `${what} ${id}` : `${what} #${position}`;
}

function sameSet(a: readonly string[] | undefined | null, b: readonly string[] | undefined | null): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if ((a == null) !== (b == null)) return false;
  const sx = new Set(x);
  return sx.size === x.length && sx.size === new Set(y).size && y.every((v) => sx.has(v));
}

function checkOf(code: ErrorCode): AuditCheck {
  if (code.startsWith('CONSENT_')) return 'consent';
  if (code.startsWith('AGREEMENT_') || code === 'ONWARD_NOT_ALLOWED' || code === 'PROVENANCE_INVALID') return 'agreement';
  return 'claims';
}

interface LeafIndex {
  byIndex: { get(index: number): AuditLeaf | undefined };
  outcomes: { get(messageId: string): AuditLeaf[] | undefined };
}

interface RecordEnv {
  head: HeadFacts;
  lookups: Lookups;
  leaves: LeafIndex;
  now: Date;
}

interface VerifiedRecord {
  header: MessageHeader;
  body: unknown;
  consentRecord?: string;
  original?: { from: string; agreementId: string };
  signatures: number;
}

async function verifyRecordJwt(m: BundleMessage, env: RecordEnv): Promise<VerifiedRecord> {
  if (m.disclosures === undefined) {
    const checked = await checkMessageJwt(m.jwt, env.lookups.keys, env.now);
    if (checked) {
      return { header: checked.header, body: checked.body, signatures: 1, ...(checked.consentRecord ? { consentRecord: checked.consentRecord } : {}) };
    }
  }
  const v = await verifySdJwtMessage(joinSdJwt(m.jwt, m.disclosures ?? []), {
    resolveSenderKey: (issuer, kid, at) => env.lookups.keys.signingKey(issuer, kid, at),
    ignoreExpiry: true,
    now: env.now,
  });
  return {
    header: v.header,
    body: v.body,
    signatures: v.original ? 2 : 1,
    ...(v.consentRecord ? { consentRecord: v.consentRecord } : {}),
    ...(v.original ? { original: { from: v.original.header.from, agreementId: v.original.header.agreementId } } : {}),
  };
}

function inScope(scope: BundleScope, h: MessageHeader, body: unknown, direction: 'sent' | 'received'): string | undefined {
  switch (scope.kind) {
    case 'all':
      return undefined;
    case 'thread':
      return h.threadId === scope.threadId ? undefined : `it belongs to thread ${h.threadId}, not ${scope.threadId}`;
    case 'consent': {
      const named = h.consentId ?? (body as { consentId?: unknown } | null)?.consentId;
      return named === scope.consentId ? undefined : `it is not under consent ${scope.consentId}`;
    }
    case 'peer': {
      const peer = direction === 'sent' ? h.to : h.from;
      return peer === scope.peer ? undefined : `it was exchanged with ${peer}, not ${scope.peer}`;
    }
    case 'range': {
      const t = Date.parse(h.created);
      return t >= Date.parse(scope.from) && t < Date.parse(scope.to) ? undefined : `it was created at ${h.created}, outside [${scope.from}, ${scope.to})`;
    }
  }
}

async function checkRecord(raw: unknown, erasure: boolean, position: number, env: RecordEnv, out: PartialReport): Promise<AuditFailure[]> {
  const failures: AuditFailure[] = [];
  if (!isBundleMessage(raw)) {
    const parsed = BundleMessage.safeParse(raw);
    const message = parsed.success ? 'Not a bundle message' : schemaMessage(parsed.error);
    failures.push(fail(recordName(erasure, peekPayload((raw as { jwt?: unknown } | null)?.jwt)?.jti, position), 'schema', 'SCHEMA_INVALID', message));
    return failures;
  }
  const m = raw;
  if (erasure) out.checked.erasures++;
  else out.checked.messages++;
  if (m.direction === 'sent') out.outcomes.sent++;
  else out.outcomes.received++;

  // Signature by the sender's key valid at `iat`, and the message's own claims (§5.3).
  let v: VerifiedRecord;
  try {
    v = await verifyRecordJwt(m, env);
    out.checked.signatures += v.signatures;
  } catch (e) {
    out.checked.signatures++;
    failures.push(failureOf(recordName(erasure, peekPayload(m.jwt)?.jti, position), e, 'claims'));
    return failures;
  }
  const h = v.header;
  const name = recordName(erasure, h.id, position);
  const { head, lookups } = env;

  if (m.disclosures !== undefined && head.personalData !== 'lawful-full-audit') {
    failures.push(fail(name, 'schema', 'SCHEMA_INVALID', 'Disclosures are personal data: only a lawful-full-audit bundle may carry them'));
  }
  if (erasure && h.type !== MessageTypes.ERASURE_CONFIRMATION) failures.push(fail(name, 'schema', 'WRONG_TYPE', `Listed as an erasure confirmation but is a ${h.type}`));
  const ours = m.direction === 'sent' ? h.from : h.to;
  if (ours !== head.exportedBy) {
    failures.push(fail(name, 'cross-record', INCONSISTENT, `Listed as ${m.direction} by ${head.exportedBy}, but the signed message goes from ${h.from} to ${h.to}`));
  }
  const outside = inScope(head.scope, h, v.body, m.direction);
  if (outside) failures.push(fail(name, 'scope', INCONSISTENT, `Outside the bundle's scope: ${outside}`));

  // Consent and agreement, decided by the nodes' own function as of the message's creation (§5.4).
  const decision = await decideFlow(v, env, name, failures);
  if (decision) failures.push(decision);

  // The receipt (§5.5).
  let receiptStatus: 'accepted' | 'rejected' | undefined;
  if (m.receipt !== undefined) {
    out.checked.receipts++;
    out.checked.signatures++;
    const rname = `receipt for ${name}`;
    try {
      const checked = await checkCompactJws(m.receipt, RECEIPT_TYP, (header, claimed) => {
        if (typeof claimed.iss !== 'string' || typeof claimed.iat !== 'number') throw new ProtocolError('RECEIPT_INVALID', 'Receipt is malformed');
        return lookups.keys.signingKey(claimed.iss, header.kid, new Date(claimed.iat * 1000));
      });
      const r = isReceiptPayload(checked.payload) ? { success: true as const, data: checked.payload } : Receipt.safeParse(checked.payload);
      if (!r.success) {
        failures.push(fail(rname, 'receipt', 'RECEIPT_INVALID', `Receipt is malformed (${schemaMessage(r.error)})`));
      } else {
        const problems: string[] = [];
        if (r.data.iss !== h.to) problems.push(`signed by ${r.data.iss}, not by the recipient ${h.to}`);
        if (r.data.aud !== h.from) problems.push(`addressed to ${r.data.aud}, not to the sender ${h.from}`);
        if (r.data.message !== h.id) problems.push(`for message ${r.data.message}`);
        if (r.data.digest !== m.jweDigest) problems.push('for other bytes than the recorded JWE digest');
        if (r.data.iat < Date.parse(h.created) / 1000 - DEFAULT_MAX_SKEW_SECONDS) problems.push('issued before the message was created');
        if (problems.length > 0) {
          failures.push(fail(rname, 'receipt', 'RECEIPT_INVALID', `Receipt ${problems.join('; ')}`));
        } else {
          receiptStatus = r.data.status;
          if (m.direction === 'received' && r.data.log?.index !== m.leafIndex) {
            failures.push(fail(rname, 'cross-record', INCONSISTENT, `The receipt names log position ${r.data.log?.index ?? 'none'}, the bundle entry ${m.leafIndex}`));
          }
        }
      }
    } catch (e) {
      failures.push(failureOf(rname, e, 'receipt'));
    }
  } else if (m.direction === 'received') {
    failures.push(fail(`receipt for ${name}`, 'receipt', 'RECEIPT_INVALID', 'A received message is recorded without the receipt its recipient issued'));
  }
  if (receiptStatus === 'accepted') out.outcomes.accepted++;
  else if (receiptStatus === 'rejected') out.outcomes.rejected++;
  else if (m.receipt === undefined && m.direction === 'sent') out.outcomes.unacknowledged++;

  // The exporter's log records this message, these bytes and this receipt (§5.6).
  const leaf = env.leaves.byIndex.get(m.leafIndex);
  if (!leaf) {
    failures.push(fail(name, 'cross-record', INCONSISTENT, `It names log entry ${m.leafIndex}, which the bundle does not hold`));
  } else {
    const expected = m.direction === 'sent' ? AuditEvents.MESSAGE_SENT : AuditEvents.MESSAGE_RECEIVED;
    const peer = m.direction === 'sent' ? h.to : h.from;
    const differs: string[] = [];
    if (leaf.kind !== expected) differs.push(`kind ${leaf.kind}`);
    if (leaf.fields.messageId !== h.id) differs.push('message id');
    if (leaf.fields.digest !== m.jweDigest) differs.push('JWE digest');
    if (leaf.fields.peer !== peer) differs.push('peer');
    if (m.sentAt !== undefined && leaf.at !== m.sentAt) differs.push('time');
    if (differs.length > 0) failures.push(fail(name, 'cross-record', INCONSISTENT, `Log entry ${m.leafIndex} does not record it (${differs.join(', ')} differ)`));
  }
  if (m.direction === 'sent' && receiptStatus !== undefined && m.receipt !== undefined) {
    const kind = receiptStatus === 'accepted' ? AuditEvents.MESSAGE_DELIVERED : AuditEvents.MESSAGE_REJECTED;
    const digest = receiptDigest(m.receipt);
    const found = (env.leaves.outcomes.get(h.id) ?? []).some((l) => l.kind === kind && l.fields.receipt === digest && l.fields.digest === m.jweDigest);
    if (!found) failures.push(fail(`receipt for ${name}`, 'cross-record', INCONSISTENT, `No ${kind} log entry records this receipt`));
  }

  // A withdrawal announced by message must be among the consent's listed withdrawals.
  if (h.type === MessageTypes.CONSENT_WITHDRAWAL) {
    const body = v.body as { consentId: string; purposes?: string[]; withdrawnAt: string };
    if (lookups.hasConsentId(body.consentId)) {
      const listed = lookups.withdrawals(body.consentId).some((w) => w.at === body.withdrawnAt && sameSet(w.purposes, body.purposes));
      if (!listed) failures.push(fail(name, 'cross-record', INCONSISTENT, `The withdrawal it announces is not listed with consent ${body.consentId}`));
    }
  }
  return failures;
}

/** Consent and agreement for one message, decided by evaluateFlow as of the message's creation. */
async function decideFlow(v: VerifiedRecord, env: RecordEnv, name: string, failures: AuditFailure[]): Promise<AuditFailure | undefined> {
  const h = v.header;
  const { lookups } = env;
  const ag = lookups.agreement(h.agreementId);
  if (ag && !ag.ok) return fail(name, 'agreement', 'AGREEMENT_INVALID', `The agreement it names does not verify (${ag.code})`);
  const origin = v.original ? lookups.agreement(v.original.agreementId) : undefined;
  if (origin && !origin.ok) return fail(name, 'agreement', 'AGREEMENT_INVALID', `The agreement the data was received under does not verify (${origin.code})`);
  let consent: ContextConsent | undefined;
  if (v.consentRecord !== undefined) {
    consent = lookups.consentListed(v.consentRecord);
    if (!consent) {
      failures.push(fail(name, 'cross-record', INCONSISTENT, 'It carries a consent record the bundle does not list'));
      consent = await lookups.consentCarried(v.consentRecord);
    }
  } else if (h.consentId !== undefined) {
    consent = lookups.consentById(h.consentId, h.created);
  }
  if (consent && !consent.ok) return fail(name, 'consent', 'CONSENT_INVALID', `The consent record it relies on does not verify (${consent.code})`);
  const toContext = (a: ContextAgreement | undefined): AgreementContext | undefined =>
    a?.ok ? { agreement: a.agreement, signedBy: a.signedBy, terminations: a.terminations } : undefined;
  const facts: FlowFacts = {
    sender: h.from,
    recipient: h.to,
    messageType: h.type,
    purpose: h.purpose,
    categories: h.categories,
    createdAt: h.created,
    agreementId: h.agreementId,
    ...(h.consentId !== undefined ? { consentId: h.consentId } : {}),
    ...(v.original ? { onward: { originalController: v.original.from, agreementId: v.original.agreementId } } : {}),
  };
  const decision = evaluateFlow(facts, {
    agreement: toContext(ag),
    originAgreement: toContext(origin),
    consent: consent?.ok ? { record: consent.record } : undefined,
    withdrawals: h.consentId !== undefined ? lookups.withdrawals(h.consentId) : [],
    now: h.created,
  });
  return decision.allowed ? undefined : fail(name, checkOf(decision.code), decision.code, decision.message);
}

function checkedHead(bundle: unknown, prepared: PreparedBundle): BundleHead {
  const head = BundleHead.safeParse(bundle);
  if (!head.success || head.data.messages.length + head.data.erasures.length !== prepared.recordCount) {
    throw new Error('This is not the bundle that was prepared');
  }
  return head.data;
}

/** Lookups into the exported log records without validating all of them up front (the log part does). */
function indexLeaves(leaves: readonly unknown[]): LeafIndex {
  const byIndex = new Map<number, AuditLeaf>();
  const outcomes = new Map<string, AuditLeaf[]>();
  for (const raw of leaves) {
    const r = raw as { index?: unknown; kind?: unknown; fields?: { messageId?: unknown } } | null;
    if (typeof r?.index !== 'number' || r.fields === null || typeof r.fields !== 'object') continue;
    if (!byIndex.has(r.index)) byIndex.set(r.index, raw as AuditLeaf);
    if ((r.kind === AuditEvents.MESSAGE_DELIVERED || r.kind === AuditEvents.MESSAGE_REJECTED) && typeof r.fields?.messageId === 'string') {
      const list = outcomes.get(r.fields.messageId);
      if (list) list.push(raw as AuditLeaf);
      else outcomes.set(r.fields.messageId, [raw as AuditLeaf]);
    }
  }
  // Records are compared field by field with values already verified, so a malformed record simply
  // does not match; verifyBundleLog reports it as malformed.
  return {
    byIndex: { get: (index: number) => byIndex.get(index) },
    outcomes: { get: (id: string) => outcomes.get(id) },
  };
}

export interface RecordRange {
  /** First record: messages are 0 … messages.length − 1, erasure confirmations follow. */
  start: number;
  end: number;
}

/** Splits a prepared bundle's records into `parts` contiguous ranges of nearly equal size. */
export function recordRanges(prepared: PreparedBundle, parts: number): RecordRange[] {
  return splitRanges(prepared.recordCount, parts);
}

/**
 * Verifies the records in [start, end) against a prepared context: signature, claims, consent and
 * agreement, receipt, log entry and scope of each. Slices may run in separate threads, each with
 * its own copy of the bundle and of `prepared` (which is plain data).
 */
export async function verifyBundleRecords(
  bundle: unknown,
  prepared: PreparedBundle,
  range: RecordRange,
  options: Pick<VerifyBundleOptions, 'onProgress' | 'concurrency'> = {},
): Promise<PartialReport> {
  const { start, end } = range;
  const out = partial({ start, end });
  if (prepared.fatal || !prepared.head) return out;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > prepared.recordCount || start > end) {
    throw new RangeError('Record range out of bounds');
  }
  const b = checkedHead(bundle, prepared);
  const env: RecordEnv = { head: prepared.head, lookups: new Lookups(prepared.context), leaves: indexLeaves(b.log.leaves), now: new Date(prepared.now) };
  const results: AuditFailure[][] = [];
  const total = end - start;
  let next = start;
  let done = 0;
  const run = async () => {
    for (let i = next++; i < end; i = next++) {
      const { entry, erasure, position } = recordAt(b, i);
      const failures = await checkRecord(entry, erasure, position, env, out);
      if (failures.length > 0) results[i - start] = failures;
      done++;
      if (options.onProgress && (done % 256 === 0 || done === total)) options.onProgress(done, total);
    }
  };
  const lanes = Math.max(1, Math.min(options.concurrency ?? DEFAULT_CONCURRENCY, total));
  await Promise.all(Array.from({ length: lanes }, run));
  // Failures in record order, whatever order the checks finished in.
  out.failures = results.flat();
  return out;
}

// ---------------------------------------------------------------------------------------------
// The log, the checkpoints and the attestation

interface CheckpointNode {
  cp: Checkpoint;
  jws: string;
  name: string;
  /** From log.checkpoints (as opposed to inside a receipt). */
  listed: boolean;
  /** Its root was recomputed from the exported leaves. */
  rooted: boolean;
  /** Already reported as contradicting another signed checkpoint. */
  contradicted: boolean;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function leafRanges(indexes: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < indexes.length; ) {
    let j = i;
    while (j + 1 < indexes.length && indexes[j + 1] === indexes[j]! + 1) j++;
    out.push(i === j ? `leaf ${indexes[i]}` : `leaves ${indexes[i]}–${indexes[j]}`);
    i = j + 1;
  }
  return out;
}

function rawLength(list: unknown, key: string): number {
  if (!Array.isArray(list)) return 0;
  return list.reduce((n: number, x) => n + (Array.isArray((x as Record<string, unknown> | null)?.[key]) ? ((x as Record<string, unknown[]>)[key]!.length) : 0), 0);
}

async function checkAttestation(b: BundleHead, head: HeadFacts, keys: KeyHistory, out: PartialReport): Promise<void> {
  out.checked.signatures++;
  let attested: BundleAttestation;
  try {
    const checked = await checkCompactJws(b.attestation, AUDIT_BUNDLE_TYP, (header, claimed) => {
      if (typeof claimed.iss !== 'string' || typeof claimed.iat !== 'number') throw new ProtocolError('SCHEMA_INVALID', 'iss and iat are required');
      return keys.signingKey(claimed.iss, header.kid, new Date(claimed.iat * 1000));
    });
    const parsed = BundleAttestation.safeParse(checked.payload);
    if (!parsed.success) {
      out.failures.push(fail('bundle attestation', 'schema', 'SCHEMA_INVALID', schemaMessage(parsed.error)));
      return;
    }
    attested = parsed.data;
  } catch (e) {
    out.failures.push(failureOf('bundle attestation', e, 'cross-record'));
    return;
  }
  const actual: BundleCounts = {
    nodes: b.nodes.length,
    documents: rawLength(b.nodes, 'documents'),
    agreements: b.agreements.length,
    terminations: rawLength(b.agreements, 'terminations'),
    consents: b.consents.length,
    withdrawals: rawLength(b.consents, 'withdrawals'),
    messages: b.messages.length,
    erasures: b.erasures.length,
    leaves: b.log.leaves.length,
    checkpoints: b.log.checkpoints.length,
    inclusionProofs: b.log.inclusionProofs.length,
    consistencyProofs: b.log.consistencyProofs.length,
    peerCheckpoints: b.peerCheckpoints.length,
  };
  const differs: string[] = [];
  if (attested.iss !== head.exportedBy) differs.push(`signed by ${attested.iss}, not the exporter`);
  const signedAt = attested.iat <= 8.64e12 ? toTimestamp(attested.iat * 1000) : String(attested.iat);
  if (signedAt !== head.exportedAt) differs.push(`signed at ${signedAt}, exportedAt says ${head.exportedAt}`);
  if (!sameScope(attested.scope, head.scope)) differs.push('another scope');
  if (attested.personalData !== head.personalData) differs.push(`personal data ${attested.personalData}`);
  for (const key of Object.keys(actual) as (keyof BundleCounts)[]) {
    if (attested.counts[key] !== actual[key]) differs.push(`${attested.counts[key]} ${key}, the bundle holds ${actual[key]}`);
  }
  const latest = b.log.checkpoints[b.log.checkpoints.length - 1];
  if (typeof latest !== 'string' || checkpointDigest(latest) !== attested.checkpoint) differs.push('another latest checkpoint');
  if (differs.length > 0) out.failures.push(fail('bundle attestation', 'cross-record', INCONSISTENT, `The exporter attested ${differs.join('; ')}`));
}

/**
 * Verifies the exporter's log: every record hashed and proved in a signed checkpoint, every
 * checkpoint tied to the latest by consistency (recomputed roots or RFC 9162 proofs), the
 * checkpoints inside receipts (the exporter's own and its peers'), the withdrawals' attestation,
 * completeness of a whole-log export, and the exporter's attestation of the bundle.
 */
export async function verifyBundleLog(
  bundle: unknown,
  preparing: PreparedBundle | Promise<PreparedBundle>,
  options: Pick<VerifyBundleOptions, 'onProgress'> = {},
): Promise<PartialReport> {
  const out = partial('log');
  const failures = out.failures;
  const counts = out.checked;

  // Log records first: they need nothing from the prepared context, so a caller may hash them while
  // prepareBundle runs. Hashed in order; the run from index 0 is the prefix whose roots are recomputed.
  const parsedHead = BundleHead.safeParse(bundle);
  const leaves = parsedHead.success ? parsedHead.data.log.leaves : [];
  const byIndex = new Map<number, { leaf: AuditLeaf; hash: Uint8Array }>();
  const prefix: Uint8Array[] = [];
  let prefixOpen = true;
  let previous = -1;
  for (let p = 0; p < leaves.length; p++) {
    const raw = leaves[p];
    if (!isAuditLeaf(raw)) {
      failures.push(fail(`leaf #${p}`, 'schema', 'SCHEMA_INVALID', 'Not a log record (index, kind, fields, at)'));
      prefixOpen = false;
      continue;
    }
    counts.leaves++;
    if (raw.index <= previous) {
      failures.push(fail(`leaf ${raw.index}`, 'consistency', 'AUDIT_LOG_INCONSISTENT', `Log records out of order: ${raw.index} is listed after ${previous}`));
      prefixOpen = false;
      continue;
    }
    previous = raw.index;
    const hash = auditLeafHashBytes(raw);
    byIndex.set(raw.index, { leaf: raw, hash });
    if (prefixOpen && raw.index === prefix.length) prefix.push(hash);
    else prefixOpen = false;
    if ((p & 4095) === 4095) {
      options.onProgress?.(p + 1, leaves.length);
      await yieldToEventLoop();
    }
  }
  const tree = new MerkleTree(prefix);
  options.onProgress?.(leaves.length, leaves.length);
  const recomputedRoot = (size: number): string | undefined => (size <= tree.size ? b64u(tree.root(size)) : undefined);

  const prepared = await preparing;
  if (prepared.fatal || !prepared.head) return partial('log');
  const b = checkedHead(bundle, prepared);
  const head = prepared.head;
  const lookups = new Lookups(prepared.context);
  const keys = lookups.keys;
  const now = new Date(prepared.now);

  await checkAttestation(b, head, keys, out);
  if (Date.parse(head.exportedAt) > now.getTime() + DEFAULT_MAX_SKEW_SECONDS * 1000) {
    failures.push(fail('bundle', 'claims', 'CLOCK_SKEW', `Exported at ${head.exportedAt}, after the auditor's clock`));
  }

  // The exporter's checkpoints: listed, and inside the receipts it issued; its peers' checkpoints.
  const exporter: CheckpointNode[] = [];
  const listed: (CheckpointNode | undefined)[] = [];
  const peers = new Map<string, CheckpointNode[]>();
  const verifiedJws = new Set<string>();
  const addCheckpoint = async (jws: unknown, name: string, expectedOrigin: string | undefined, isListed: boolean): Promise<CheckpointNode | undefined> => {
    counts.signatures++;
    if (expectedOrigin === head.exportedBy || isListed) counts.checkpoints++;
    else counts.peerCheckpoints++;
    if (!CompactJwsString.safeParse(jws).success) {
      failures.push(fail(name, 'schema', 'SCHEMA_INVALID', 'Not a compact JWS'));
      return undefined;
    }
    try {
      assertCanonicalSignatures(jws as string);
      const cp = await verifyCheckpoint(jws as string, keys.resolver, expectedOrigin ? { origin: expectedOrigin } : {});
      if (Date.parse(cp.at) > now.getTime() + DEFAULT_MAX_SKEW_SECONDS * 1000) {
        failures.push(fail(name, 'claims', 'CLOCK_SKEW', `Signed at ${cp.at}, after the auditor's clock`));
      }
      return { cp, jws: jws as string, name, listed: isListed, rooted: false, contradicted: false };
    } catch (e) {
      failures.push(failureOf(name, e, 'checkpoint'));
      return undefined;
    }
  };
  for (const [i, jws] of b.log.checkpoints.entries()) {
    const node = await addCheckpoint(jws, `checkpoint ${i}`, head.exportedBy, true);
    listed.push(node);
    if (node) {
      exporter.push(node);
      verifiedJws.add(node.jws);
    }
  }
  const records = [...b.messages, ...b.erasures];
  for (const raw of records) {
    const receipt = (raw as { receipt?: unknown } | null)?.receipt;
    const payload = peekPayload(receipt);
    const log = payload?.log as { checkpoint?: unknown } | undefined;
    if (typeof log?.checkpoint !== 'string' || verifiedJws.has(log.checkpoint) || typeof payload?.iss !== 'string') continue;
    verifiedJws.add(log.checkpoint);
    const mine = payload.iss === head.exportedBy;
    const node = await addCheckpoint(log.checkpoint, `checkpoint in receipt for ${recordName(false, payload.message, 0)}`, payload.iss, false);
    if (!node) continue;
    if (mine) exporter.push(node);
    else peers.set(node.cp.origin, [...(peers.get(node.cp.origin) ?? []), node]);
  }
  for (const [i, jws] of b.peerCheckpoints.entries()) {
    if (typeof jws === 'string' && verifiedJws.has(jws)) continue;
    if (typeof jws === 'string') verifiedJws.add(jws);
    const node = await addCheckpoint(jws, `peer checkpoint ${i}`, undefined, false);
    if (!node) continue;
    if (node.cp.origin === head.exportedBy) {
      failures.push(fail(node.name, 'checkpoint', 'AUDIT_CHECKPOINT_INVALID', "A checkpoint of the exporter's own log listed as a peer's"));
      continue;
    }
    peers.set(node.cp.origin, [...(peers.get(node.cp.origin) ?? []), node]);
  }

  // Two signed checkpoints of one log that cannot both be true: one size with two roots, or a log
  // that shrank over time (§5.7).
  const contradictions = (nodes: CheckpointNode[]) => {
    const bySize = new Map<number, CheckpointNode>();
    for (const n of nodes) {
      const other = bySize.get(n.cp.size);
      if (!other) bySize.set(n.cp.size, n);
      else if (other.cp.root !== n.cp.root) {
        n.contradicted = true;
        failures.push(fail(n.name, 'consistency', 'AUDIT_LOG_INCONSISTENT', `Size ${n.cp.size} with another root than ${other.name}: ${n.cp.origin} signed two histories`));
      }
    }
    const byTime = [...nodes].sort((x, y) => Date.parse(x.cp.at) - Date.parse(y.cp.at));
    let largest: CheckpointNode | undefined;
    for (const n of byTime) {
      if (largest && n.cp.size < largest.cp.size && Date.parse(n.cp.at) > Date.parse(largest.cp.at)) {
        n.contradicted = true;
        failures.push(fail(n.name, 'consistency', 'AUDIT_LOG_INCONSISTENT', `The log shrank: ${n.cp.size} entries at ${n.cp.at} after ${largest.cp.size} at ${largest.cp.at} (${largest.name})`));
      } else if (!largest || n.cp.size > largest.cp.size) largest = n;
    }
  };
  contradictions(exporter);
  for (const nodes of peers.values()) contradictions(nodes);

  // The listed checkpoints against the records: each root within the prefix is recomputed.
  for (const n of listed) {
    if (!n) continue;
    const root = recomputedRoot(n.cp.size);
    if (root === undefined) continue;
    if (root === n.cp.root) n.rooted = true;
    else failures.push(fail(n.name, 'inclusion', 'AUDIT_PROOF_INVALID', "The exported log records do not produce this checkpoint's root"));
  }
  const latest = listed.reduce<CheckpointNode | undefined>((a, n) => (n && (!a || n.cp.size >= a.cp.size) ? n : a), undefined);
  // Checkpoints the exporter gave out in receipts must be prefixes of the log it exports now.
  if (latest?.rooted) {
    for (const n of exporter) {
      if (n.listed || n.contradicted) continue;
      const root = recomputedRoot(n.cp.size);
      if (root === undefined) continue;
      if (root === n.cp.root) n.rooted = true;
      else {
        n.contradicted = true;
        failures.push(fail(n.name, 'consistency', 'AUDIT_LOG_INCONSISTENT', `The exporter signed this checkpoint of size ${n.cp.size}; the log it exports now has another history at that size`));
      }
    }
  }

  // Consistency proofs between the exporter's checkpoints, by size.
  const edges: [CheckpointNode, CheckpointNode][] = [];
  const bySize = (size: number) => exporter.find((n) => n.cp.size === size && n.listed) ?? exporter.find((n) => n.cp.size === size);
  for (const [j, raw] of b.log.consistencyProofs.entries()) {
    const name = `consistency proof ${j}`;
    const entry = BundleConsistencyProof.safeParse(raw);
    if (!entry.success) {
      failures.push(fail(name, 'schema', 'SCHEMA_INVALID', schemaMessage(entry.error)));
      continue;
    }
    counts.consistencyProofs++;
    const { from, to, path } = entry.data;
    const older = bySize(from);
    const newer = bySize(to);
    if (!older || !newer) {
      failures.push(fail(name, 'consistency', 'AUDIT_PROOF_INVALID', `No verified checkpoint of size ${!older ? from : to} to tie`));
      continue;
    }
    try {
      assertConsistentCheckpoints(older.cp, newer.cp, decodeProof(path));
      edges.push([older, newer]);
    } catch (e) {
      failures.push(failureOf(`${name} (${from} → ${to})`, e, 'consistency'));
    }
  }

  // Every checkpoint of the exporter must extend into the latest listed one.
  if (latest) {
    const reach = new Set<CheckpointNode>([latest]);
    for (let changed = true; changed; ) {
      changed = false;
      for (const [older, newer] of edges) {
        if (reach.has(newer) && !reach.has(older)) {
          reach.add(older);
          changed = true;
        }
      }
      const rootedReach = [...reach].filter((n) => n.rooted).reduce((m, n) => Math.max(m, n.cp.size), -1);
      for (const n of exporter) {
        if (n.rooted && n.cp.size <= rootedReach && !reach.has(n)) {
          reach.add(n);
          changed = true;
        }
      }
    }
    for (const n of exporter) {
      if (reach.has(n) || n.contradicted) continue;
      failures.push(fail(n.name, 'consistency', 'AUDIT_PROOF_INVALID', `Not tied to the latest checkpoint (${latest.name}) by recomputed roots or a consistency proof`));
    }
    if (Date.parse(latest.cp.at) > Date.parse(head.exportedAt)) {
      failures.push(fail(latest.name, 'cross-record', INCONSISTENT, `Signed at ${latest.cp.at}, after the bundle was exported (${head.exportedAt})`));
    }
  }

  // Inclusion proofs for records outside the recomputed prefix.
  const proven = new Set<number>();
  for (const [j, raw] of b.log.inclusionProofs.entries()) {
    const name = `inclusion proof ${j}`;
    const entry = BundleInclusionProof.safeParse(raw);
    if (!entry.success) {
      failures.push(fail(name, 'schema', 'SCHEMA_INVALID', schemaMessage(entry.error)));
      continue;
    }
    counts.inclusionProofs++;
    const { leafIndex, treeSize, path } = entry.data;
    const leaf = byIndex.get(leafIndex);
    const cp = exporter.find((n) => n.listed && n.cp.size === treeSize);
    if (!leaf || !cp) {
      failures.push(fail(`${name} (leaf ${leafIndex})`, 'inclusion', 'AUDIT_PROOF_INVALID', !leaf ? 'It proves a record the bundle does not hold' : `No verified checkpoint of size ${treeSize}`));
      continue;
    }
    try {
      if (!verifyInclusion(leaf.hash, leafIndex, treeSize, decodeProof(path), fromB64u(cp.cp.root))) throw new ProtocolError('AUDIT_PROOF_INVALID', 'Inclusion proof does not verify');
      proven.add(leafIndex);
    } catch (e) {
      failures.push(failureOf(`${name} (leaf ${leafIndex})`, e, 'inclusion'));
    }
  }
  const rootedSize = listed.reduce((m, n) => (n?.rooted ? Math.max(m, n.cp.size) : m), 0);
  const unproven = [...byIndex.keys()].filter((i) => i >= rootedSize && !proven.has(i));
  for (const range of leafRanges(unproven)) {
    failures.push(fail(range, 'inclusion', 'AUDIT_PROOF_INVALID', 'Not proved to be in any signed checkpoint (no recomputed root, no inclusion proof)'));
  }

  // Withdrawals: attested by the signed withdrawal message or by the exporter's log (§5.4).
  const referenced = new Set<number>();
  for (const raw of b.consents) {
    const entry = BundleConsent.safeParse(raw);
    if (!entry.success) continue;
    const consent = lookups.consentListed(entry.data.jws);
    const id = consent?.id;
    if (!id) continue;
    for (const [j, w] of entry.data.withdrawals.entries()) {
      counts.withdrawals++;
      if (w.leafIndex !== undefined) referenced.add(w.leafIndex);
      const problem = await withdrawalProblem(w, id, consent.ok ? consent.record.controller : undefined, byIndex, keys, now, out);
      if (problem) failures.push(problem.check ? { ...problem, object: `withdrawal #${j} of consent ${id}` } : problem);
    }
  }

  // A whole-log export holds every record up to its latest checkpoint, and every message and
  // withdrawal those records name (§4.2).
  if (head.scope.kind === 'all' && latest) {
    if (!latest.rooted && tree.size < latest.cp.size) {
      failures.push(fail(latest.name, 'inclusion', 'AUDIT_PROOF_INVALID', `A whole-log export must hold every record up to its latest checkpoint; records from ${tree.size} are missing`));
    }
    for (const raw of records) {
      const index = (raw as { leafIndex?: unknown } | null)?.leafIndex;
      if (typeof index === 'number') referenced.add(index);
    }
    for (const { leaf } of byIndex.values()) {
      if (referenced.has(leaf.index)) continue;
      if (leaf.kind === AuditEvents.MESSAGE_SENT || leaf.kind === AuditEvents.MESSAGE_RECEIVED) {
        failures.push(fail(`leaf ${leaf.index}`, 'cross-record', INCONSISTENT, `It records message ${String(leaf.fields.messageId)}, which the bundle does not hold`));
      } else if (leaf.kind === AuditEvents.CONSENT_WITHDRAWN) {
        failures.push(fail(`leaf ${leaf.index}`, 'cross-record', INCONSISTENT, `It records a withdrawal of consent ${String(leaf.fields.consentId)} the bundle does not list`));
      }
    }
  }
  return out;
}


async function withdrawalProblem(
  w: BundleWithdrawal,
  consentId: string,
  controller: string | undefined,
  byIndex: Map<number, { leaf: AuditLeaf; hash: Uint8Array }>,
  keys: KeyHistory,
  now: Date,
  out: PartialReport,
): Promise<AuditFailure | undefined> {
  const object = `withdrawal of consent ${consentId}`;
  if (w.messageJwt === undefined && w.leafIndex === undefined) {
    return fail(object, 'cross-record', INCONSISTENT, 'Not attested by a signed withdrawal message or a log record');
  }
  if (w.messageJwt !== undefined) {
    out.checked.signatures++;
    try {
      const m = await checkMessageJwt(w.messageJwt, keys, now);
      if (!m) return fail(object, 'cross-record', INCONSISTENT, 'The withdrawal message is an onward referral');
      const body = m.body as { consentId?: string; purposes?: string[]; withdrawnAt?: string };
      const differs: string[] = [];
      if (m.type !== MessageTypes.CONSENT_WITHDRAWAL) differs.push(`it is a ${m.type}`);
      if (body.consentId !== consentId) differs.push('another consent');
      if (body.withdrawnAt !== w.at) differs.push('another time');
      if (!sameSet(body.purposes, w.purposes)) differs.push('other purposes');
      if (controller !== undefined && m.header.from !== controller) differs.push(`sent by ${m.header.from}, not the controller`);
      if (differs.length > 0) return fail(object, 'cross-record', INCONSISTENT, `The withdrawal message does not match (${differs.join(', ')})`);
    } catch (e) {
      return failureOf(object, e, 'claims');
    }
  }
  if (w.leafIndex !== undefined) {
    const leaf = byIndex.get(w.leafIndex)?.leaf;
    if (!leaf) return fail(object, 'cross-record', INCONSISTENT, `It names log record ${w.leafIndex}, which the bundle does not hold`);
    const f = leaf.fields;
    const purposes = f.purposes === null ? undefined : Array.isArray(f.purposes) ? f.purposes : ['(invalid)'];
    if (leaf.kind !== AuditEvents.CONSENT_WITHDRAWN || f.consentId !== consentId || f.withdrawnAt !== w.at || !sameSet(purposes, w.purposes)) {
      return fail(object, 'cross-record', INCONSISTENT, `Log record ${w.leafIndex} does not record this withdrawal`);
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Joining the parts

/** Joins the context, log and record reports; every record must be covered by exactly one part. */
export function mergeReports(prepared: PreparedBundle, parts: readonly PartialReport[]): AuditReport {
  const checked = addCounts(emptyCounts(), prepared.report.checked);
  const outcomes = emptyOutcomes();
  const failures = [...prepared.report.failures];
  if (!prepared.fatal) {
    const logs = parts.filter((p) => p.part === 'log');
    const ranges = parts.filter((p): p is PartialReport & { part: RecordRange } => typeof p.part === 'object').sort((a, b) => a.part.start - b.part.start);
    let covered = 0;
    for (const r of ranges) {
      if (r.part.start !== covered) throw new Error(`Records ${covered}–${r.part.start} are not covered exactly once`);
      covered = r.part.end;
    }
    if (covered !== prepared.recordCount || logs.length !== 1) throw new Error('The parts do not cover the bundle exactly once');
    for (const p of [...ranges, ...logs]) {
      addCounts(checked, p.checked);
      addCounts(outcomes, p.outcomes);
      failures.push(...p.failures);
    }
  }
  return {
    ok: failures.length === 0,
    exportedBy: prepared.head?.exportedBy,
    exportedAt: prepared.head?.exportedAt,
    scope: prepared.head?.scope,
    verifiedAt: toTimestamp(Date.parse(prepared.now)),
    checked,
    outcomes,
    failures,
  };
}

/**
 * Verifies an audit bundle offline (spec/audit.md §5). Never throws for a bad bundle: everything
 * that does not verify is a failure in the report, and `ok` is true only when there is none.
 */
export async function verifyBundle(bundle: unknown, options: VerifyBundleOptions = {}): Promise<AuditReport> {
  const head = BundleHead.safeParse(bundle);
  const total = head.success ? head.data.messages.length + head.data.erasures.length + head.data.log.leaves.length : 0;
  let recordsDone = 0;
  let leavesDone = 0;
  const progress = options.onProgress ? () => options.onProgress!(recordsDone + leavesDone, total) : undefined;
  // The log records are hashed while the shared objects are verified; the messages need both.
  const preparing = prepareBundle(bundle, options);
  const log = verifyBundleLog(bundle, preparing, progress ? { onProgress: (done: number) => ((leavesDone = done), progress()) } : {});
  const prepared = await preparing;
  if (prepared.fatal) return mergeReports(prepared, []);
  const records = await verifyBundleRecords(bundle, prepared, { start: 0, end: prepared.recordCount }, {
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(progress ? { onProgress: (done: number) => ((recordsDone = done), progress()) } : {}),
  });
  return mergeReports(prepared, [records, await log]);
}
