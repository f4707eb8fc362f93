/**
 * Audit bundles (spec/audit.md §4): what a node exports so that anyone can check, offline and
 * without trusting it, what it sent and received, under which consent and agreement, and that its
 * audit log was not rewritten. By default a bundle carries no personal data: issuer-signed JWTs
 * (salted digests in place of every personal field), receipts, digests and log records.
 */
import { z } from 'zod';
import { sha256b64uSync } from '../encoding.js';
import { ProtocolError } from '../errors.js';
import { MAX_COMPACT_LENGTH } from '../jose-policy.js';
import { signCompact } from '../jws.js';
import type { SigningKeyPair } from '../keys.js';
import { Digest, NodeId, Purpose, Timestamp, isUtcTimestamp, toEpochSeconds, toTimestamp, Uuid } from '../vocabulary.js';
import { ProofPath, encodeProof } from './checkpoint.js';
import { AuditLeaf, canonicalJson } from './leaf.js';
import type { MerkleTree } from './merkle.js';

export const AUDIT_BUNDLE_FORMAT = 'passerelle-audit-bundle/1';
export const AUDIT_BUNDLE_TYP = 'passerelle-audit-bundle+jwt';

/** Generous bounds: a bundle may cover years of a busy node, but never an unbounded list. */
export const MAX_BUNDLE_RECORDS = 10_000_000;
export const MAX_BUNDLE_LEAVES = 50_000_000;

const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const CompactJwsString = z
  .string()
  .max(MAX_COMPACT_LENGTH)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/, 'must be a compact JWS')
  .meta({ id: 'CompactJws', description: 'A JWS in compact serialisation (RFC 7515 §7.1).' });

export const GeneralJwsObject = z
  .object({
    payload: z.string().max(MAX_COMPACT_LENGTH),
    signatures: z.array(z.object({ protected: z.string().max(2048), signature: z.string().max(128) }).strict()).min(1).max(16),
  })
  .strict()
  .meta({ id: 'GeneralJws', description: 'A JWS in General JSON Serialisation (RFC 7515 §7.2.1).' });

export const BundleScope = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('all') }).strict(),
    z.object({ kind: z.literal('range'), from: Timestamp, to: Timestamp }).strict(),
    z.object({ kind: z.literal('thread'), threadId: Uuid }).strict(),
    z.object({ kind: z.literal('consent'), consentId: Uuid }).strict(),
    z.object({ kind: z.literal('peer'), peer: NodeId }).strict(),
  ])
  .meta({
    id: 'AuditBundleScope',
    description:
      'What the exporter selected: its whole log (all), the messages created in [from, to) (range), one thread, one consent, or the exchanges with one peer.',
  });
export type BundleScope = z.infer<typeof BundleScope>;

export const PERSONAL_DATA_MODES = ['none', 'lawful-full-audit'] as const;
export const PersonalDataMode = z.enum(PERSONAL_DATA_MODES).meta({
  id: 'AuditPersonalDataMode',
  description: 'none: no disclosures (the default). lawful-full-audit: disclosures included for an audit with a legal basis to see the data.',
});

export const BundleNode = z
  .object({ id: NodeId, documents: z.array(GeneralJwsObject).min(1).max(1024) })
  .strict()
  .meta({ id: 'AuditBundleNode', description: "A node's documents, oldest first: its whole key history as a chain of rotations." });
export type BundleNode = z.infer<typeof BundleNode>;

export const BundleAgreement = z
  .object({ jws: GeneralJwsObject, terminations: z.array(CompactJwsString).max(16) })
  .strict()
  .meta({ id: 'AuditBundleAgreement', description: 'A co-signed agreement and the signed terminations known for it.' });
export type BundleAgreement = z.infer<typeof BundleAgreement>;

export const BundleWithdrawal = z
  .object({
    at: Timestamp,
    /** Absent: the whole consent was withdrawn. */
    purposes: z.array(Purpose).min(1).max(16).optional(),
    /** The consent-withdrawal message (issuer-signed JWT) that announced it, when the exporter received one. */
    messageJwt: CompactJwsString.optional(),
    /** The exporter's `consent.withdrawn` log entry that records it. */
    leafIndex: Count.optional(),
  })
  .strict()
  .meta({ id: 'AuditBundleWithdrawal', description: 'A withdrawal of a consent, attested by the signed withdrawal message or by a log entry.' });
export type BundleWithdrawal = z.infer<typeof BundleWithdrawal>;

export const BundleConsent = z
  .object({ jws: CompactJwsString, withdrawals: z.array(BundleWithdrawal).max(64) })
  .strict()
  .meta({ id: 'AuditBundleConsent', description: 'A controller-signed consent record and its withdrawals.' });
export type BundleConsent = z.infer<typeof BundleConsent>;

export const BundleMessage = z
  .object({
    direction: z.enum(['sent', 'received']),
    /** The issuer-signed JWT, exactly as signed: salted digests in place of personal fields. */
    jwt: CompactJwsString,
    /** Only in a lawful-full-audit bundle. */
    disclosures: z.array(z.string().min(1).max(65_536)).max(512).optional(),
    /** base64url SHA-256 of the exact JWE bytes sent or received. */
    jweDigest: Digest,
    /** The `at` of the log entry named by leafIndex (committed for sending, or received). */
    sentAt: Timestamp.optional(),
    /** The recipient's signed receipt (compact JWS). */
    receipt: CompactJwsString.optional(),
    /** The exporter's `message.sent` or `message.received` log entry. */
    leafIndex: Count,
  })
  .strict()
  .meta({ id: 'AuditBundleMessage', description: 'One message the exporter sent or received, with its receipt and its log entry.' });
export type BundleMessage = z.infer<typeof BundleMessage>;

const DIGEST = /^[A-Za-z0-9_-]{43}$/;
const MESSAGE_MEMBERS = new Set(['direction', 'jwt', 'disclosures', 'jweDigest', 'sentAt', 'receipt', 'leafIndex']);

// Three non-empty-ended segments; their alphabet is left to the strict base64url decoding every
// token goes through before it is trusted (a regular expression over every token costs as much as
// the rest of this check).
const isCompactJws = (v: unknown): v is string => {
  if (typeof v !== 'string' || v.length > MAX_COMPACT_LENGTH) return false;
  const first = v.indexOf('.');
  const second = v.indexOf('.', first + 1);
  return first > 0 && second > first && v.indexOf('.', second + 1) === -1 && second < v.length - 1;
};

/**
 * The BundleMessage schema as a hand-written predicate: a bundle may hold a million records, and
 * zod's per-object cost then shows in the time an audit takes. It accepts what the schema accepts
 * and refuses the same shapes (a test keeps them so); the base64url alphabet of the tokens is left
 * to the strict decoding that follows. On a refusal, the zod schema gives the error message.
 */
export function isBundleMessage(value: unknown): value is BundleMessage {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  for (const key in v) if (!MESSAGE_MEMBERS.has(key)) return false;
  if (v.direction !== 'sent' && v.direction !== 'received') return false;
  if (!isCompactJws(v.jwt) || typeof v.jweDigest !== 'string' || !DIGEST.test(v.jweDigest)) return false;
  if (!Number.isSafeInteger(v.leafIndex) || (v.leafIndex as number) < 0) return false;
  if (v.receipt !== undefined && !isCompactJws(v.receipt)) return false;
  if (v.sentAt !== undefined && (typeof v.sentAt !== 'string' || !isUtcTimestamp(v.sentAt))) return false;
  if (v.disclosures !== undefined) {
    const d = v.disclosures;
    if (!Array.isArray(d) || d.length > 512 || !d.every((x) => typeof x === 'string' && x.length >= 1 && x.length <= 65_536)) return false;
  }
  return true;
}

export const BundleInclusionProof = z
  .object({ leafIndex: Count, treeSize: Count, path: ProofPath })
  .strict()
  .meta({ id: 'AuditBundleInclusionProof', description: 'RFC 9162 §2.1.3 inclusion proof of one exported leaf in the tree of a checkpoint of that size.' });
export type BundleInclusionProof = z.infer<typeof BundleInclusionProof>;

export const BundleConsistencyProof = z
  .object({ from: Count, to: Count, path: ProofPath })
  .strict()
  .meta({ id: 'AuditBundleConsistencyProof', description: 'RFC 9162 §2.1.4 consistency proof between two checkpoints of the exporter, by tree size.' });
export type BundleConsistencyProof = z.infer<typeof BundleConsistencyProof>;

export const BundleLog = z
  .object({
    leaves: z.array(AuditLeaf).max(MAX_BUNDLE_LEAVES),
    /** The exporter's signed checkpoints, oldest first. */
    checkpoints: z.array(CompactJwsString).min(1).max(100_000),
    inclusionProofs: z.array(BundleInclusionProof).max(MAX_BUNDLE_LEAVES),
    consistencyProofs: z.array(BundleConsistencyProof).max(100_000),
  })
  .strict()
  .meta({ id: 'AuditBundleLog', description: "The exporter's log records for the exported events, its checkpoints and the proofs tying them together." });
export type BundleLog = z.infer<typeof BundleLog>;

export const BundleCounts = z
  .object({
    nodes: Count,
    documents: Count,
    agreements: Count,
    terminations: Count,
    consents: Count,
    withdrawals: Count,
    messages: Count,
    erasures: Count,
    leaves: Count,
    checkpoints: Count,
    inclusionProofs: Count,
    consistencyProofs: Count,
    peerCheckpoints: Count,
  })
  .strict()
  .meta({ id: 'AuditBundleCounts', description: 'How many entries of each kind the bundle holds.' });
export type BundleCounts = z.infer<typeof BundleCounts>;

export const BundleAttestation = z
  .object({
    iss: NodeId,
    iat: Count,
    format: z.literal(AUDIT_BUNDLE_FORMAT),
    scope: BundleScope,
    personalData: PersonalDataMode,
    counts: BundleCounts,
    /** The exporter's latest checkpoint (base64url SHA-256 of its compact JWS). */
    checkpoint: Digest,
  })
  .strict()
  .meta({
    id: 'AuditBundleAttestation',
    description: `Payload of the exporter's signature over a bundle's own fields (compact JWS, typ ${AUDIT_BUNDLE_TYP}).`,
  });
export type BundleAttestation = z.infer<typeof BundleAttestation>;

export const AuditBundle = z
  .object({
    format: z.literal(AUDIT_BUNDLE_FORMAT),
    exportedBy: NodeId,
    exportedAt: Timestamp,
    scope: BundleScope,
    personalData: PersonalDataMode,
    /** The exporter's signature over format, exportedBy, exportedAt, scope, personalData and counts. */
    attestation: CompactJwsString,
    nodes: z.array(BundleNode).min(1).max(4096),
    agreements: z.array(BundleAgreement).max(4096),
    consents: z.array(BundleConsent).max(MAX_BUNDLE_RECORDS),
    messages: z.array(BundleMessage).max(MAX_BUNDLE_RECORDS),
    /** Erasure confirmations sent or received (a message type of their own, listed apart for the auditor). */
    erasures: z.array(BundleMessage).max(MAX_BUNDLE_RECORDS),
    log: BundleLog,
    /** Checkpoints of the other parties' logs, as received inside their receipts. */
    peerCheckpoints: z.array(CompactJwsString).max(MAX_BUNDLE_RECORDS),
  })
  .strict()
  .meta({
    id: 'AuditBundle',
    description:
      'An audit bundle (spec/audit.md §4): signed objects, receipts and log records of one node, for offline verification. No personal data unless personalData is lawful-full-audit.',
  });
export type AuditBundle = z.infer<typeof AuditBundle>;

/** The counts an attestation must state for a bundle. */
export function bundleCounts(bundle: Omit<AuditBundle, 'attestation'>): BundleCounts {
  return {
    nodes: bundle.nodes.length,
    documents: bundle.nodes.reduce((n, x) => n + x.documents.length, 0),
    agreements: bundle.agreements.length,
    terminations: bundle.agreements.reduce((n, a) => n + a.terminations.length, 0),
    consents: bundle.consents.length,
    withdrawals: bundle.consents.reduce((n, c) => n + c.withdrawals.length, 0),
    messages: bundle.messages.length,
    erasures: bundle.erasures.length,
    leaves: bundle.log.leaves.length,
    checkpoints: bundle.log.checkpoints.length,
    inclusionProofs: bundle.log.inclusionProofs.length,
    consistencyProofs: bundle.log.consistencyProofs.length,
    peerCheckpoints: bundle.peerCheckpoints.length,
  };
}

/** Scopes compare by their canonical JSON (RFC 8785), so member order never matters. */
export function sameScope(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Building

export interface LogProofRequest {
  /** The exporter's log as a tree over every leaf hash up to the latest checkpoint (or beyond). */
  tree: MerkleTree;
  /** Sizes of the checkpoints exported, oldest first. */
  checkpointSizes: readonly number[];
  /** Indexes of the exported leaves. With every leaf up to the latest checkpoint exported, no inclusion proof is needed. */
  leafIndexes: readonly number[];
  /** Sizes of other checkpoints of the exporter (for example inside its own receipts) to tie to the exported ones. */
  extraSizes?: readonly number[];
}

/**
 * Inclusion and consistency proofs for an export (spec/audit.md §4.5): each exported leaf is
 * proved in the smallest exported checkpoint that contains it, and every checkpoint is tied to the
 * next larger exported one. When the leaves are the whole log up to the latest checkpoint, the
 * verifier recomputes every root instead and no inclusion proof is produced.
 */
export function logProofs(request: LogProofRequest): Pick<BundleLog, 'inclusionProofs' | 'consistencyProofs'> {
  const { tree } = request;
  const sizes = [...new Set(request.checkpointSizes)].sort((a, b) => a - b);
  const latest = sizes[sizes.length - 1];
  if (latest === undefined) throw new ProtocolError('SCHEMA_INVALID', 'An export needs at least one checkpoint');
  const indexes = [...new Set(request.leafIndexes)].sort((a, b) => a - b);
  const full = indexes.length >= latest && indexes.slice(0, latest).every((index, i) => index === i);
  const inclusionProofs: BundleInclusionProof[] = [];
  if (!full) {
    for (const leafIndex of indexes) {
      const treeSize = sizes.find((s) => s > leafIndex);
      if (treeSize === undefined) throw new ProtocolError('SCHEMA_INVALID', `Leaf ${leafIndex} is not covered by any exported checkpoint`);
      inclusionProofs.push({ leafIndex, treeSize, path: encodeProof(tree.inclusionProof(leafIndex, treeSize)) });
    }
  }
  const consistencyProofs: BundleConsistencyProof[] = [];
  const seen = new Set<string>();
  const link = (from: number, to: number) => {
    const key = `${from}:${to}`;
    if (from >= to || seen.has(key)) return;
    seen.add(key);
    consistencyProofs.push({ from, to, path: encodeProof(tree.consistencyProof(from, to)) });
  };
  for (let i = 0; i + 1 < sizes.length; i++) link(sizes[i]!, sizes[i + 1]!);
  for (const size of request.extraSizes ?? []) {
    const next = sizes.find((s) => s > size);
    if (next !== undefined && !sizes.includes(size)) link(size, next);
  }
  return { inclusionProofs, consistencyProofs };
}

export interface BuildBundleInput {
  exportedBy: string;
  exportedAt?: Date;
  scope: BundleScope;
  /** 'lawful-full-audit' only when the auditor has a legal basis to see the personal data. */
  personalData?: (typeof PERSONAL_DATA_MODES)[number];
  nodes: BundleNode[];
  agreements: BundleAgreement[];
  consents: BundleConsent[];
  messages: BundleMessage[];
  erasures?: BundleMessage[];
  log: BundleLog;
  peerCheckpoints?: string[];
}

/**
 * Assembles and attests a bundle: checks it against the schema, refuses disclosures unless the
 * bundle is a lawful full audit, counts every list and signs the attestation with the exporter's
 * key. The result is what `verifyBundle` takes.
 */
export async function buildBundle(input: BuildBundleInput, key: SigningKeyPair): Promise<AuditBundle> {
  const personalData = input.personalData ?? 'none';
  const exportedAt = toTimestamp(input.exportedAt ?? new Date());
  const erasures = input.erasures ?? [];
  if (personalData === 'none' && [...input.messages, ...erasures].some((m) => m.disclosures !== undefined)) {
    throw new ProtocolError('SCHEMA_INVALID', 'Disclosures are personal data: only a lawful-full-audit bundle carries them');
  }
  const body = {
    format: AUDIT_BUNDLE_FORMAT,
    exportedBy: input.exportedBy,
    exportedAt,
    scope: input.scope,
    personalData,
    nodes: input.nodes,
    agreements: input.agreements,
    consents: input.consents,
    messages: input.messages,
    erasures,
    log: input.log,
    peerCheckpoints: input.peerCheckpoints ?? [],
  } as const;
  const latest = input.log.checkpoints[input.log.checkpoints.length - 1];
  if (latest === undefined) throw new ProtocolError('SCHEMA_INVALID', 'An export needs at least one checkpoint');
  const attestation: BundleAttestation = {
    iss: input.exportedBy,
    iat: toEpochSeconds(exportedAt),
    format: AUDIT_BUNDLE_FORMAT,
    scope: input.scope,
    personalData,
    counts: bundleCounts(body),
    checkpoint: checkpointDigest(latest),
  };
  const signed = await signCompact(BundleAttestation.parse(attestation), key, AUDIT_BUNDLE_TYP);
  const parsed = AuditBundle.safeParse({ ...body, attestation: signed });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError('SCHEMA_INVALID', `The bundle does not match its schema at ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
  }
  return parsed.data;
}

/** base64url SHA-256 of a checkpoint's compact JWS: how an attestation names it. */
export function checkpointDigest(checkpoint: string): string {
  return sha256b64uSync(checkpoint);
}
